//! End to end, as a user runs it: `pinfeed simulate` serves every bundled recording over WSS,
//! the `pinfeed run` binary connects to it on the config the simulator wrote, and clients (one
//! of ours, and the Python `websockets` library) subscribe to trades and book snapshots of
//! every symbol with `withSeq`.
//!
//! Checked: every recorded trade arrives exactly once, in order, with contiguous `seq`; each
//! book's final snapshot equals what `pinfeed replay` computes; the engine's queues drop
//! nothing. Then the simulator is killed mid-run and restarted: clients get `disconnect`, then
//! `book_invalid`, then fresh snapshots equal to the replay again.

mod util;

use std::collections::{BTreeMap, HashMap};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use pinfeed::model::Event;
use pinfeed::replay::Replay;
use pinfeed::sim::server::{SimOptions, Simulator};

type Key = (String, String);
/// Top levels of a book: `(bids, asks)`, each `(price, amount)` best first.
type Sides = (Vec<(f64, f64)>, Vec<(f64, f64)>);

/// What `pinfeed replay` says the clients must see: trade ids per instrument in order, and
/// the final top 20 levels per side.
struct Reference {
    trades: BTreeMap<Key, Vec<String>>,
    books: BTreeMap<Key, Sides>,
}

fn reference() -> Reference {
    let recs = util::recordings();
    let mut replay = Replay::prepare(&recs).unwrap();
    let mut trades: BTreeMap<Key, Vec<String>> = BTreeMap::new();
    replay
        .run::<Vec<u8>>(None, |ev, _, instruments| {
            if let Event::Trade(t) = ev {
                let (e, s) = instruments.name(t.instrument);
                trades
                    .entry((e.id().to_string(), s.to_string()))
                    .or_default()
                    .push(t.id.expect("trade id").as_str().to_string());
            }
        })
        .unwrap();
    let mut books = BTreeMap::new();
    let side = |v: &Value| -> Vec<(f64, f64)> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|l| {
                (
                    l[0].as_str().unwrap().parse().unwrap(),
                    l[1].as_str().unwrap().parse().unwrap(),
                )
            })
            .collect()
    };
    for (exchange, symbols) in replay.books_json().as_object().unwrap() {
        for (symbol, b) in symbols.as_object().unwrap() {
            books.insert(
                (exchange.clone(), symbol.clone()),
                (side(&b["bids"]), side(&b["asks"])),
            );
        }
    }
    Reference { trades, books }
}

/// Levels of a `book_snapshot` message, `{}` padding dropped.
fn snapshot_side(v: &Value) -> Vec<(f64, f64)> {
    v.as_array()
        .unwrap()
        .iter()
        .filter(|l| l.get("price").is_some())
        .map(|l| (l["price"].as_f64().unwrap(), l["amount"].as_f64().unwrap()))
        .collect()
}

fn options(reference: &Reference) -> Value {
    let mut by_exchange: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (e, s) in reference.books.keys() {
        by_exchange.entry(e).or_default().push(s);
    }
    Value::Array(
        by_exchange
            .iter()
            .map(|(e, symbols)| {
                json!({
                    "exchange": e,
                    "symbols": symbols,
                    "dataTypes": ["trade", "book_snapshot_20_0ms"],
                    "withSeq": true,
                    "withDisconnectMessages": true,
                    "withIntegrityMessages": true,
                    "withErrorMessages": true,
                })
            })
            .collect(),
    )
}

fn python_client(addr: std::net::SocketAddr, options: &Value, count: usize) -> Option<Child> {
    let ok = Command::new("python3")
        .args(["-c", "import websockets"])
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        // scripts/test.sh installs it (and CI runs that); a bare `cargo test` skips it
        assert!(
            std::env::var_os("CI").is_none(),
            "python3 websockets is not installed (scripts/test.sh installs it)"
        );
        eprintln!("python3 websockets not installed: skipping the Python client");
        return None;
    }
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/ws_client.py");
    Some(
        Command::new("python3")
            .arg(script)
            .arg("--url")
            .arg(format!("ws://{addr}"))
            .arg("--options")
            .arg(options.to_string())
            .arg("--count")
            .arg(count.to_string())
            .arg("--seconds")
            .arg("60")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    )
}

/// Client-side view of the stream.
#[derive(Default)]
struct Seen {
    seq: u64,
    trades: BTreeMap<Key, Vec<String>>,
    snapshots: HashMap<Key, Value>,
    disconnects: Vec<String>,
    invalid: Vec<Key>,
    snapshots_after_invalid: HashMap<Key, Value>,
}

impl Seen {
    fn take(&mut self, m: &Value) {
        let seq = m["seq"].as_u64().expect("withSeq: every message has seq");
        assert_eq!(seq, self.seq + 1, "seq gap: {m}");
        self.seq = seq;
        let key = || {
            (
                m["exchange"].as_str().unwrap().to_string(),
                m["symbol"].as_str().unwrap().to_string(),
            )
        };
        match m["type"].as_str().unwrap() {
            "trade" => self
                .trades
                .entry(key())
                .or_default()
                .push(m["id"].as_str().unwrap().to_string()),
            "book_snapshot" => {
                let k = key();
                if self.invalid.contains(&k) {
                    self.snapshots_after_invalid.insert(k.clone(), m.clone());
                }
                self.snapshots.insert(k, m.clone());
            }
            "disconnect" => self
                .disconnects
                .push(m["exchange"].as_str().unwrap().to_string()),
            "book_invalid" => {
                let k = key();
                assert!(
                    self.disconnects.contains(&k.0),
                    "book_invalid before disconnect: {m}"
                );
                self.invalid.push(k);
            }
            "error" => panic!("error message: {m}"),
            _ => {}
        }
    }

    fn books_match(&self, reference: &Reference, after_invalid: bool) -> Result<(), String> {
        let snaps = if after_invalid {
            &self.snapshots_after_invalid
        } else {
            &self.snapshots
        };
        for (key, (bids, asks)) in &reference.books {
            if bids.is_empty() && asks.is_empty() {
                continue;
            }
            let Some(s) = snaps.get(key) else {
                return Err(format!("{key:?}: no snapshot"));
            };
            let (b, a) = (snapshot_side(&s["bids"]), snapshot_side(&s["asks"]));
            if &b != bids || &a != asks {
                return Err(format!(
                    "{key:?}: snapshot differs from replay: bids {:?} vs {:?}",
                    b.first(),
                    bids.first()
                ));
            }
        }
        Ok(())
    }
}

/// Reads messages until `done` holds or `timeout` passes.
fn read_until(
    ws: &mut util::Ws,
    seen: &mut Seen,
    timeout: Duration,
    done: impl Fn(&Seen) -> bool,
) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        match ws.read() {
            Ok(tungstenite::Message::Text(t)) => {
                let m: Value = serde_json::from_str(t.as_str()).unwrap();
                seen.take(&m);
                if done(seen) {
                    return true;
                }
            }
            Ok(tungstenite::Message::Close(c)) => panic!("engine closed the client: {c:?}"),
            Ok(_) => {}
            Err(tungstenite::Error::Io(e))
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                if done(seen) {
                    return true;
                }
            }
            Err(e) => panic!("read: {e}"),
        }
    }
    done(seen)
}

#[test]
fn simulator_engine_and_clients_agree_with_replay() {
    agree_with_replay(1);
}

/// The same with two fan-out shards: the kernel spreads the clients over them, and every
/// client's trades and books equal the replay's.
#[test]
fn two_fanout_shards_agree_with_replay() {
    agree_with_replay(2);
}

fn agree_with_replay(shards: usize) {
    let reference = reference();
    let total_trades: usize = reference.trades.values().map(Vec::len).sum();
    assert!(total_trades > 500);
    let dir = std::env::temp_dir().join(format!("pinfeed-e2e-{}-{shards}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let ca_key = dir.join("ca-key.pem");
    let config = dir.join("run.toml");
    let sim_options = |listen| SimOptions {
        recordings: util::recordings(),
        listen,
        tls: true,
        speed: 0.0,
        looped: false,
        ca_key: Some(ca_key.clone()),
        synthetic: None,
        faults: Vec::new(),
    };

    // The simulator writes the engine's config and CA, then goes away until the clients are
    // connected, so that no frame is served before they listen.
    let mut sim = Simulator::start(sim_options("127.0.0.1:0".parse().unwrap())).unwrap();
    let sim_addr = sim.addr();
    sim.write_config(&config).unwrap();
    sim.stop();
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &config,
        text.replace("[server]\n", "[server]\nlisten = \"127.0.0.1:0\"\n"),
    )
    .unwrap();

    let (mut engine, addr) = util::start_engine(&config, shards);
    let opts = options(&reference);
    let mut ws = util::connect(addr, &opts);
    ws.get_mut()
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    // with shards, more clients: each lands on a shard by the hash of its port
    let mut others: Vec<util::Ws> = (1..shards * 4)
        .map(|_| {
            let mut w = util::connect(addr, &opts);
            w.get_mut()
                .set_read_timeout(Some(Duration::from_millis(200)))
                .unwrap();
            w
        })
        .collect();
    let trades_only: Vec<Value> = opts
        .as_array()
        .unwrap()
        .iter()
        .map(|o| {
            let mut o = o.clone();
            o["dataTypes"] = json!(["trade"]);
            o
        })
        .collect();
    let python = python_client(addr, &Value::Array(trades_only), total_trades);
    std::thread::sleep(Duration::from_millis(500));

    // First pass: every trade once, in order; books equal the replay's.
    let mut sim = Simulator::start(sim_options(sim_addr)).unwrap();
    let mut seen = Seen::default();
    let ok = read_until(&mut ws, &mut seen, Duration::from_secs(60), |s| {
        s.trades.values().map(Vec::len).sum::<usize>() >= total_trades
            && s.books_match(&reference, false).is_ok()
    });
    assert!(
        ok,
        "first pass incomplete: {} of {total_trades} trades; books: {:?}; engine: {:?}",
        seen.trades.values().map(Vec::len).sum::<usize>(),
        seen.books_match(&reference, false),
        engine.stderr.lock().unwrap().last()
    );
    assert_eq!(seen.trades, reference.trades, "trades differ from replay");
    for (k, other) in others.iter_mut().enumerate() {
        let mut seen = Seen::default();
        let ok = read_until(other, &mut seen, Duration::from_secs(60), |s| {
            s.trades.values().map(Vec::len).sum::<usize>() >= total_trades
                && s.books_match(&reference, false).is_ok()
        });
        assert!(ok, "client {k}: {:?}", seen.books_match(&reference, false));
        assert_eq!(seen.trades, reference.trades, "client {k}: trades differ");
    }
    drop(others);

    // Kill the simulator mid-run and restart it: disconnect, book_invalid, fresh snapshots.
    sim.stop();
    let books: Vec<Key> = reference
        .books
        .iter()
        .filter(|(_, (b, a))| !b.is_empty() || !a.is_empty())
        .map(|(k, _)| k.clone())
        .collect();
    let ok = read_until(&mut ws, &mut seen, Duration::from_secs(20), |s| {
        books.iter().all(|k| s.invalid.contains(k))
    });
    assert!(ok, "no book_invalid for every book: {:?}", seen.invalid);
    let exchanges: Vec<&String> = reference.books.keys().map(|k| &k.0).collect();
    for e in exchanges {
        assert!(seen.disconnects.contains(e), "no disconnect for {e}");
    }
    let sim2 = Simulator::start(sim_options(sim_addr)).unwrap();
    let ok = read_until(&mut ws, &mut seen, Duration::from_secs(60), |s| {
        s.books_match(&reference, true).is_ok()
    });
    assert!(
        ok,
        "books not rebuilt after the restart: {:?}",
        seen.books_match(&reference, true)
    );
    drop(sim2);

    // The Python websockets client saw every trade once, in order, with contiguous seq.
    if let Some(child) = python {
        let out = child.wait_with_output().unwrap();
        let mut trades: BTreeMap<Key, Vec<String>> = BTreeMap::new();
        let mut last_seq = 0;
        for line in String::from_utf8(out.stdout).unwrap().lines() {
            let m: Value = serde_json::from_str(line).unwrap();
            let seq = m["seq"].as_u64().unwrap();
            assert_eq!(seq, last_seq + 1, "python client: seq gap at {m}");
            last_seq = seq;
            if m["type"] == "trade" {
                trades
                    .entry((
                        m["exchange"].as_str().unwrap().to_string(),
                        m["symbol"].as_str().unwrap().to_string(),
                    ))
                    .or_default()
                    .push(m["id"].as_str().unwrap().to_string());
            }
        }
        // it stops after `total_trades` messages: the first pass
        assert_eq!(
            trades,
            reference.trades,
            "python client: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    // ctrl-c: the engine closes clients and exits 0; its queues dropped nothing.
    let pid = engine.child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-INT", &pid])
            .status()
            .unwrap()
            .success()
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(s) = engine.child.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "engine did not stop on ctrl-c");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "engine exit: {status:?}");
    std::thread::sleep(Duration::from_millis(200));
    let lines = engine.stderr.lock().unwrap().clone();
    let status_line = lines
        .iter()
        .rev()
        .find(|l| l.contains("queues"))
        .expect("final status line");
    let queues = status_line.split(" queues ").nth(1).unwrap();
    for q in queues
        .trim_end_matches(" (pushed/dropped/high-water)")
        .split(' ')
    {
        let (name, counts) = q.split_once('=').unwrap();
        let dropped: u64 = counts.split('/').nth(1).unwrap().parse().unwrap();
        assert_eq!(dropped, 0, "queue {name} dropped: {status_line}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

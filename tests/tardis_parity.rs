//! Computed types against tardis-node's own computables (issue 10): `pinfeed simulate` serves
//! every bundled recording, `pinfeed run` serves it, and one client takes `trade` (the source)
//! and the computed types of every symbol. `scripts/tardis_reference.mjs` then runs the `trade`
//! messages that client received through tardis-dev's `compute()` with the same data types,
//! and pinfeed's computed messages must equal tardis-node's byte for byte, in order.
//!
//! Needs Node and the npm package `tardis-dev` (scripts/test.sh installs it under
//! `target/tardis-node`; `TARDIS_NODE_MODULES` names another `node_modules`). Without them
//! the test is skipped, except under `CI`, where it fails.

mod util;

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use pinfeed::model::Event;
use pinfeed::replay::Replay;
use pinfeed::sim::server::{SimOptions, Simulator};

/// The `node_modules` holding `tardis-dev`, or `None` (skip) outside CI.
fn tardis_node_modules() -> Option<PathBuf> {
    let dir = std::env::var_os("TARDIS_NODE_MODULES")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/tardis-node/node_modules")
        });
    let node = Command::new("node")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if node && dir.join("tardis-dev/package.json").exists() {
        return Some(dir);
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "node or tardis-dev missing ({}): scripts/test.sh installs them",
        dir.display()
    );
    eprintln!("node or tardis-dev missing: skipping the tardis-node comparison");
    None
}

/// Trades in the bundled recordings, as `pinfeed replay` parses them.
fn recorded_trades() -> usize {
    let mut replay = Replay::prepare(&util::recordings()).unwrap();
    let mut n = 0;
    replay
        .run::<Vec<u8>>(None, |ev, _, _| {
            if let Event::Trade(_) = ev {
                n += 1;
            }
        })
        .unwrap();
    n
}

/// Every message (raw text) one client of a fresh engine receives while the simulator serves
/// every recording once at `speed`, subscribed to `types` on every served exchange and
/// symbol; returns once `trades` trades arrived and the stream went quiet. `server`: extra
/// `[server]` config lines.
fn capture(types: &[&str], trades: usize, speed: f64, server: &str) -> Vec<String> {
    capture_options(everywhere(types), trades, speed, server)
}

/// One option per exchange pinfeed serves, every symbol, `types`.
fn everywhere(types: &[&str]) -> Vec<Value> {
    pinfeed::model::Exchange::ALL
        .iter()
        .map(|e| json!({"exchange": e.id(), "dataTypes": types}))
        .collect()
}

/// [`capture`] with the request's `options` array as given.
fn capture_options(options: Vec<Value>, trades: usize, speed: f64, server: &str) -> Vec<String> {
    // one engine at a time: the tests in this file would share the cores
    static ONE: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _one = ONE.lock().unwrap_or_else(|e| e.into_inner());
    let dir = std::env::temp_dir().join(format!(
        "pinfeed-tardis-{}-{}",
        std::process::id(),
        options.len()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("run.toml");
    let sim_options = |listen| SimOptions {
        recordings: util::recordings(),
        listen,
        tls: false,
        speed,
        looped: false,
        ca_key: None,
        synthetic: None,
        faults: Vec::new(),
    };
    // the simulator writes the config, then goes away until the client listens
    let mut sim = Simulator::start(sim_options("127.0.0.1:0".parse().unwrap())).unwrap();
    let sim_addr = sim.addr();
    sim.write_config(&config).unwrap();
    sim.stop();
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &config,
        text.replace(
            "[server]\n",
            &format!("[server]\nlisten = \"127.0.0.1:0\"\n{server}"),
        ),
    )
    .unwrap();
    let (engine, addr) = util::start_engine(&config, 1);
    let mut ws = util::connect(addr, &Value::Array(options));
    ws.get_mut()
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let _sim = Simulator::start(sim_options(sim_addr)).unwrap();
    let (mut lines, mut seen) = (Vec::new(), 0);
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut quiet_since = Instant::now();
    while Instant::now() < deadline {
        match ws.read() {
            Ok(tungstenite::Message::Text(t)) => {
                let m: Value = serde_json::from_str(t.as_str()).unwrap();
                assert_ne!(m["type"], "error", "{m}");
                seen += usize::from(m["type"] == "trade");
                lines.push(t.as_str().to_string());
                quiet_since = Instant::now();
            }
            Ok(tungstenite::Message::Close(c)) => panic!("engine closed the client: {c:?}"),
            Ok(_) => {}
            Err(tungstenite::Error::Io(e))
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                if seen >= trades && quiet_since.elapsed() > Duration::from_millis(500) {
                    break;
                }
            }
            Err(e) => panic!("read: {e}"),
        }
    }
    assert_eq!(
        seen,
        trades,
        "trades received; engine: {:?}",
        engine.stderr.lock().unwrap().last()
    );
    let _ = std::fs::remove_dir_all(&dir);
    lines
}

/// tardis-node's computed messages for the source messages in `lines`.
fn tardis_reference(modules: &std::path::Path, lines: &[String], types: &[&str]) -> Vec<String> {
    let dir = std::env::temp_dir().join(format!(
        "pinfeed-tardis-ref-{}-{}",
        std::process::id(),
        types.len()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let input = dir.join("source.jsonl");
    let source: Vec<&str> = lines
        .iter()
        .map(String::as_str)
        .filter(|l| {
            l.starts_with("{\"type\":\"trade\"") || l.starts_with("{\"type\":\"book_change\"")
        })
        .collect();
    std::fs::write(&input, source.join("\n") + "\n").unwrap();
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scripts/tardis_reference.mjs");
    let out = Command::new("node")
        .arg(script)
        .arg("--types")
        .arg(types.join(","))
        .arg(&input)
        .env("TARDIS_NODE_MODULES", modules)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "tardis_reference.mjs: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let _ = std::fs::remove_dir_all(&dir);
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

/// Asserts `ours` equals `reference` line by line, naming the first difference.
fn assert_same(ours: &[String], reference: &[String], what: &str) {
    for (i, (a, b)) in ours.iter().zip(reference).enumerate() {
        assert_eq!(
            a, b,
            "{what}: message {i} differs (pinfeed, then tardis-node)"
        );
    }
    assert_eq!(
        ours.len(),
        reference.len(),
        "{what}: pinfeed sent {} messages, tardis-node computed {}",
        ours.len(),
        reference.len()
    );
}

#[test]
fn trade_bars_equal_tardis_node() {
    let Some(modules) = tardis_node_modules() else {
        return;
    };
    let bars = [
        "trade_bar_100ms",
        "trade_bar_1s",
        "trade_bar_5s",
        "trade_bar_1m",
        "trade_bar_3ticks",
        "trade_bar_10ticks",
        "trade_bar_0.01vol",
        "trade_bar_1vol",
        "trade_bar_50vol",
        "trade_bar_5000vol",
    ];
    let mut types = vec!["trade"];
    types.extend(bars);
    // 10 bar series of 27 symbols on one connection is past the default cap of 256
    let lines = capture(
        &types,
        recorded_trades(),
        0.0,
        "max_snapshot_series_per_client = 1024\n",
    );
    let ours: Vec<String> = lines
        .iter()
        .filter(|l| l.starts_with("{\"type\":\"trade_bar\""))
        .cloned()
        .collect();
    let reference = tardis_reference(&modules, &lines, &bars);
    // every kind closed some bars, so the comparison has something to compare
    for name in bars {
        let tag = format!("\"name\":\"{name}\"");
        assert!(
            reference.iter().any(|l| l.contains(&tag)),
            "tardis-node closed no {name} bar"
        );
    }
    assert_same(&ours, &reference, "trade_bar");
    eprintln!(
        "{} trade_bar messages equal tardis-node's; first: {}",
        ours.len(),
        ours[0]
    );
}

/// A wire timestamp as `(date and time to the second, microseconds)`, comparable whether it
/// has 3 or 6 fraction digits.
fn instant(v: &Value) -> (String, u32) {
    let t = v.as_str().expect("timestamp");
    let (head, frac) = t.trim_end_matches('Z').split_once('.').expect("fraction");
    let micros = format!("{frac:0<6}").parse().expect("digits");
    (head.to_string(), micros)
}

/// Snapshot messages by `(exchange, symbol, name)`, in order.
fn series(lines: &[String]) -> std::collections::BTreeMap<(String, String, String), Vec<Value>> {
    let mut out: std::collections::BTreeMap<_, Vec<Value>> = Default::default();
    for l in lines {
        let m: Value = serde_json::from_str(l).unwrap();
        let key = (
            m["exchange"].as_str().unwrap().to_string(),
            m["symbol"].as_str().unwrap().to_string(),
            m["name"].as_str().unwrap().to_string(),
        );
        out.entry(key).or_default().push(m);
    }
    out
}

/// Snapshot series and quotes against tardis-node's `computeBookSnapshots` on the same
/// `book_change` messages. pinfeed's series read the book thread's latest-state slot, so a
/// state the book thread replaced before the shard read it is conflated (DESIGN.md). So a
/// pinfeed snapshot either equals one of tardis-node's exactly (levels and `timestamp`), or is
/// conflated: then an interval-0 series or `quote` shows the book tardis-node shows at its
/// `timestamp` (the levels of tardis-node's latest snapshot at or before it), and an interval
/// series shows a book that existed at or before its `timestamp` (levels of tardis-node's
/// interval-0 series of the same depth; the bucket's last state may be one the shard never
/// read). Each series' last snapshot equals tardis-node's last one: no final state is lost.
#[test]
fn book_snapshots_and_quotes_equal_tardis_node() {
    let Some(modules) = tardis_node_modules() else {
        return;
    };
    // (series, the interval-0 series of its depth)
    let snapshots = [
        ("quote", "quote"),
        ("quote_1s", "quote"),
        ("book_snapshot_3_0ms", "book_snapshot_3_0ms"),
        ("book_snapshot_3_100ms", "book_snapshot_3_0ms"),
        ("book_snapshot_10_0ms", "book_snapshot_10_0ms"),
        ("book_snapshot_10_1s", "book_snapshot_10_0ms"),
        (
            "book_snapshot_3_grouped0.5_0ms",
            "book_snapshot_3_grouped0.5_0ms",
        ),
        (
            "book_snapshot_4_grouped10_0ms",
            "book_snapshot_4_grouped10_0ms",
        ),
        (
            "book_snapshot_4_grouped10_1s",
            "book_snapshot_4_grouped10_0ms",
        ),
        (
            "book_snapshot_2_grouped0.001_100ms",
            "book_snapshot_2_grouped0.001_0ms",
        ),
        (
            "book_snapshot_2_grouped0.001_0ms",
            "book_snapshot_2_grouped0.001_0ms",
        ),
    ];
    let names: Vec<&str> = snapshots.iter().map(|s| s.0).collect();
    let (grouped, plain): (Vec<&str>, Vec<&str>) =
        names.iter().partition(|n| n.contains("_grouped"));
    let mut types = vec!["trade", "book_change"];
    types.extend(&plain);
    let mut options = everywhere(&types);
    // A grouped series groups the levels the slot holds (here up to 1000 per side), not the
    // whole book as tardis-node does: on the venues whose books stay within that (Bybit's
    // 200 levels, OKX's 400, Deribit's), the two agree; a Binance book is 1000 REST levels
    // plus what deltas add, and a wide group (`grouped10` on a $7 coin) can reach past them.
    let grouped_on = [
        "bybit",
        "bybit-spot",
        "okex",
        "okex-swap",
        "okex-futures",
        "deribit",
    ];
    for e in grouped_on {
        options.push(json!({"exchange": e, "dataTypes": grouped}));
    }
    // 11 series of 27 symbols on one connection is past the default caps of 256 series and
    // 32,768 levels (a grouped series counts the 1000 levels it reads)
    let server = "slot_depth = 1000\nmax_snapshot_series_per_client = 1024\n\
                  max_snapshot_levels_per_client = 1048576\nmax_snapshot_levels = 1048576\n";
    let lines = capture_options(options, recorded_trades(), 10.0, server);
    let ours: Vec<String> = lines
        .iter()
        .filter(|l| l.starts_with("{\"type\":\"book_snapshot\""))
        .cloned()
        .collect();
    let reference = tardis_reference(&modules, &lines, &names);
    for name in &names {
        let tag = format!("\"name\":\"{name}\"");
        assert!(
            reference.iter().any(|l| l.contains(&tag)),
            "tardis-node computed no {name} snapshot"
        );
    }
    let (ours, mut theirs) = (series(&ours), series(&reference));
    // tardis-node computed every series for every book_change: keep what was asked
    theirs.retain(|k, _| !k.2.contains("_grouped") || grouped_on.contains(&k.0.as_str()));
    let levels = |m: &Value| (m["bids"].clone(), m["asks"].clone());
    let (mut exact, mut conflated) = (0, 0);
    for (key, want) in &theirs {
        let got = ours
            .get(key)
            .unwrap_or_else(|| panic!("{key:?}: pinfeed sent no snapshot"));
        let zero = snapshots.iter().find(|s| s.0 == key.2).unwrap().1;
        let states = &theirs[&(key.0.clone(), key.1.clone(), zero.to_string())];
        for m in got {
            let at = instant(&m["timestamp"]);
            if want
                .iter()
                .any(|w| levels(w) == levels(m) && instant(&w["timestamp"]) == at)
            {
                exact += 1;
                continue;
            }
            let mut before = states
                .iter()
                .filter(|w| instant(&w["timestamp"]) <= at)
                .peekable();
            assert!(
                before.peek().is_some(),
                "{key:?}: {m} comes before tardis-node's first"
            );
            if key.2 == zero {
                let shown = before.last().unwrap();
                assert_eq!(
                    levels(shown),
                    levels(m),
                    "{key:?}: pinfeed's {m} is not tardis-node's book at its time ({shown})"
                );
            } else {
                assert!(
                    before.any(|w| levels(w) == levels(m)),
                    "{key:?}: pinfeed's {m} shows no book tardis-node had by then"
                );
            }
            conflated += 1;
        }
        assert_eq!(
            levels(got.last().unwrap()),
            levels(want.last().unwrap()),
            "{key:?}: last snapshot"
        );
    }
    assert_eq!(
        ours.keys().collect::<Vec<_>>(),
        theirs.keys().collect::<Vec<_>>(),
        "series"
    );
    assert!(exact > conflated, "{exact} exact, {conflated} conflated");
    eprintln!(
        "{} book_snapshot messages in {} series: {exact} equal tardis-node's, {conflated} \
         conflated (tardis-node computed {})",
        exact + conflated,
        theirs.len(),
        reference.len()
    );
}

/// tardis-node's normalizer `data_type` for `exchange` over the recorded frames of the
/// connections `conns` picks (every recording), with their recorded arrival times.
fn tardis_map(
    modules: &std::path::Path,
    exchange: &str,
    data_type: &str,
    conns: impl Fn(&str) -> bool,
) -> Vec<String> {
    let dir = std::env::temp_dir().join(format!(
        "pinfeed-tardis-map-{}-{exchange}",
        std::process::id()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let input = dir.join("frames.jsonl");
    let mut frames = String::new();
    for rec in util::recordings() {
        for r in &rec.records {
            if let pinfeed::sim::recording::Record::Recv { conn, data, ts } = r {
                if conns(conn) {
                    let local = (ts * 1e3).round() as i64 * 1_000_000;
                    let mut iso = Vec::new();
                    pinfeed::fanout::encode::write_timestamp(&mut iso, local, true);
                    let iso: String = serde_json::from_slice(&iso).unwrap();
                    frames.push_str(&json!({"localTimestamp": iso, "message": data}).to_string());
                    frames.push('\n');
                }
            }
        }
    }
    std::fs::write(&input, frames).unwrap();
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scripts/tardis_reference.mjs");
    let out = Command::new("node")
        .arg(script)
        .args(["--map", exchange, "--types", data_type])
        .arg(&input)
        .env("TARDIS_NODE_MODULES", modules)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "tardis_reference.mjs: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let _ = std::fs::remove_dir_all(&dir);
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

/// A message without its `localTimestamp` (the last field): pinfeed's is the engine's
/// arrival time (or the recording's, to the ms), tardis-node's here the recorded one.
fn without_local(l: &str) -> String {
    let at = l
        .rfind(",\"localTimestamp\":")
        .expect("localTimestamp last");
    l[..at].to_string()
}

/// `derivative_ticker` (merged state, sent when one of its seven fields changed) from
/// `pinfeed replay --events-out` of Bybit's linear connection, against tardis-node's
/// `normalizeDerivativeTickers` on the same frames: equal byte for byte up to
/// `localTimestamp`, in order. (Deribit's recording has option tickers only, which neither
/// sends as `derivative_ticker`.)
#[test]
fn derivative_tickers_equal_tardis_node() {
    let Some(modules) = tardis_node_modules() else {
        return;
    };
    let bybit = util::recording_paths()
        .into_iter()
        .find(|p| p.to_string_lossy().contains("BYBIT"))
        .unwrap();
    let rec = pinfeed::sim::recording::Recording::open(&bybit).unwrap();
    let linear: Vec<String> = rec
        .ws_connections()
        .into_iter()
        .filter(|c| rec.connect_addr(c).is_some_and(|a| a.contains("/linear")))
        .collect();
    assert_eq!(linear.len(), 1, "{:?}", rec.ws_connections());
    let out = Command::new(env!("CARGO_BIN_EXE_pinfeed"))
        .arg("replay")
        .arg(&bybit)
        .args(["--events-out", "-"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let ours: Vec<String> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .filter(|l| l.starts_with("{\"type\":\"derivative_ticker\""))
        .map(without_local)
        .collect();
    let reference: Vec<String> = tardis_map(&modules, "bybit", "derivative_ticker", |c| {
        linear.iter().any(|l| l == c)
    })
    .iter()
    .map(|l| without_local(l))
    .collect();
    assert!(reference.len() > 100, "{}", reference.len());
    assert_same(&ours, &reference, "derivative_ticker");
    eprintln!(
        "{} derivative_ticker messages equal tardis-node's",
        ours.len()
    );
}

/// Deribit's option tickers as `option_summary`, against tardis-node's own
/// `normalizeOptionsSummary` run over the same recorded frames: every message equal byte for
/// byte up to its `localTimestamp` (pinfeed's is the engine's arrival time, tardis-node's the
/// recorded one), in order.
#[test]
fn option_summaries_equal_tardis_node() {
    let Some(modules) = tardis_node_modules() else {
        return;
    };
    let mut options = everywhere(&["trade"]);
    options.push(json!({"exchange": "deribit", "dataTypes": ["option_summary"]}));
    let lines = capture_options(options, recorded_trades(), 0.0, "");
    let strip = |l: &str| -> String {
        let at = l
            .rfind(",\"localTimestamp\":")
            .expect("localTimestamp last");
        l[..at].to_string()
    };
    let ours: Vec<String> = lines
        .iter()
        .filter(|l| l.starts_with("{\"type\":\"option_summary\""))
        .map(|l| strip(l))
        .collect();
    let reference: Vec<String> = tardis_map(&modules, "deribit", "option_summary", |c| {
        c.starts_with("DERIBIT")
    })
    .iter()
    .map(|l| strip(l))
    .collect();
    assert!(reference.len() > 50, "{} option summaries", reference.len());
    assert_same(&ours, &reference, "option_summary");
    eprintln!(
        "{} option_summary messages equal tardis-node's; first: {}",
        ours.len(),
        ours[0]
    );
}

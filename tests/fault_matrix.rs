//! The fault matrix: for each fault kind of `pinfeed simulate --fault`, synthetic flow with that
//! fault on one feed, the engine, an auditing client on the affected feed's books
//! (`withSeq`, `withIntegrityMessages`, `withUpdateId`, `book_change` and a snapshot series)
//! and a canary client on an untouched feed (`bybit-inverse`: trades and `book_change`).
//!
//! Asserted per kind:
//! - zero wrong books served unflagged: every `book_snapshot`, and the book rebuilt from the
//!   `book_change` stream after every message, equals the simulator's ground truth
//!   (`truth_out`) at its update id ([`pinfeed::audit`]);
//! - the kinds that break a book flag it (`book_invalid` or `disconnect`) and rebuild it (a
//!   `book_change` with `isSnapshot`) within [`RECOVERY_BOUND`]; a flag raised earlier than
//!   that before the end of the capture must have been rebuilt;
//! - the canary is never flagged, its `seq` has no gap and its trades arrive once, in order;
//!   its connection counts no resync;
//! - the counter in `/metrics` that names the fault is above zero, and the simulator fired it.
//!
//! Each case runs its own simulator and engine for [`CAPTURE`]; cases run in parallel.

mod util;

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tungstenite::Message;

use pinfeed::audit::{Audit, Truth};
use pinfeed::config::Config;
use pinfeed::run::{RunOptions, start};
use pinfeed::sim::fault::FaultSpec;
use pinfeed::sim::server::{SimOptions, Simulator};
use pinfeed::sim::synthetic::{SyntheticOptions, instruments};
use pinfeed::venue::Feed;

/// A flagged book gets its fresh snapshot within this long (the first resync goes out at once;
/// a reconnect waits 1 s plus jitter; a Binance resync waits for its REST snapshot).
const RECOVERY_BOUND: Duration = Duration::from_secs(5);
/// How long each case captures.
const CAPTURE: Duration = Duration::from_secs(9);
/// The untouched feed.
const CANARY: Feed = Feed::BybitInverse;

struct Case {
    /// The `--fault` text.
    fault: &'static str,
    /// The feed it hits.
    feed: Feed,
    /// The fault breaks books: they must be flagged, then rebuilt.
    breaks_books: bool,
    /// A counter that names the fault (name, labels it must carry); `None`: the engine sees
    /// nothing to count (the fault does not reach it while data flows).
    metric: Option<(&'static str, &'static [(&'static str, &'static str)])>,
    /// Extra lines for the affected `[[venue]]`.
    venue_extra: &'static str,
    /// Extra sections for the engine's config (before the venues).
    engine_extra: &'static str,
}

/// What one client saw: messages with their arrival time.
type Capture = Vec<(Instant, Value)>;

fn client(addr: SocketAddr, options: Value, until: Instant) -> std::thread::JoinHandle<Capture> {
    std::thread::spawn(move || {
        let mut ws = util::connect(addr, &options);
        ws.get_ref()
            .set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        let mut out = Vec::new();
        while Instant::now() < until {
            match ws.read() {
                Ok(Message::Text(t)) => {
                    out.push((Instant::now(), serde_json::from_str(t.as_str()).unwrap()));
                }
                Ok(Message::Close(c)) => panic!("client closed by the engine: {c:?}"),
                Ok(_) => {}
                Err(tungstenite::Error::Io(e))
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) => {}
                Err(e) => panic!("client read: {e}"),
            }
        }
        let _ = ws.close(None);
        out
    })
}

/// `(exchange, symbol)` of a feed's synthetic books.
fn books(feed: Feed) -> Vec<(String, String)> {
    instruments(feed)
        .iter()
        .map(|s| (s.exchange.id().to_string(), s.symbol.to_string()))
        .collect()
}

/// One options object per exchange of `feed`.
fn options(feed: Feed, types: &[&str], extra: &Value) -> Value {
    let mut by_exchange: Vec<(String, Vec<String>)> = Vec::new();
    for (e, s) in books(feed) {
        match by_exchange.iter_mut().find(|(x, _)| *x == e) {
            Some((_, syms)) => syms.push(s),
            None => by_exchange.push((e, vec![s])),
        }
    }
    Value::Array(
        by_exchange
            .into_iter()
            .map(|(e, syms)| {
                let mut o = json!({"exchange": e, "symbols": syms, "dataTypes": types});
                for (k, v) in extra.as_object().unwrap() {
                    o[k] = v.clone();
                }
                o
            })
            .collect(),
    )
}

/// The simulator's config with only the `keep` feeds, `extra` added to `feed`'s block and
/// `engine_extra` before the venues.
fn config(sim: &Simulator, keep: &[Feed], feed: Feed, extra: &str, engine_extra: &str) -> Config {
    let text = sim.config_toml(None);
    let mut parts = text.split("\n[[venue]]\n");
    let head = parts
        .next()
        .unwrap()
        .replace("[server]\n", "[server]\nlisten = \"127.0.0.1:0\"\n");
    let mut out = head;
    out.push('\n');
    out.push_str(engine_extra);
    for block in parts {
        let name = block
            .lines()
            .find_map(|l| l.strip_prefix("feed = "))
            .unwrap()
            .trim_matches('"')
            .to_string();
        if keep.iter().any(|f| f.name() == name) {
            out.push_str("\n[[venue]]\n");
            out.push_str(block);
            if name == feed.name() {
                out.push('\n');
                out.push_str(extra);
                out.push('\n');
            }
        }
    }
    Config::parse(&out).unwrap_or_else(|e| panic!("{e}\n{out}"))
}

fn scrape(addr: SocketAddr) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out
}

/// The sum of `name`'s samples whose labels include every one of `labels`.
fn metric(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with(['{', ' ']))
        .filter(|l| {
            labels
                .iter()
                .all(|(k, v)| l.contains(&format!("{k}=\"{v}\"")))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Per book: flags (arrival) and how long each took to its fresh snapshot.
#[derive(Debug, Default)]
struct Recovery {
    flagged_at: HashMap<(String, String), Instant>,
    flags: u64,
    recoveries: Vec<Duration>,
    first_snapshot: HashMap<(String, String), Instant>,
}

impl Recovery {
    fn take(&mut self, at: Instant, m: &Value, books: &[(String, String)]) {
        let ex = m["exchange"].as_str().unwrap_or_default();
        match m["type"].as_str() {
            Some("book_invalid") => {
                let key = (ex.to_string(), m["symbol"].as_str().unwrap().to_string());
                self.flags += 1;
                self.flagged_at.entry(key).or_insert(at);
            }
            Some("disconnect") => {
                for b in books.iter().filter(|b| b.0 == ex) {
                    self.flags += 1;
                    self.flagged_at.entry(b.clone()).or_insert(at);
                }
            }
            Some("book_change") if m["isSnapshot"] == true => {
                let key = (ex.to_string(), m["symbol"].as_str().unwrap().to_string());
                self.first_snapshot.entry(key.clone()).or_insert(at);
                if let Some(t) = self.flagged_at.remove(&key) {
                    self.recoveries.push(at - t);
                }
            }
            _ => {}
        }
    }
}

fn run_case(case: Case) {
    let spec: FaultSpec = case.fault.parse().unwrap();
    let dir = std::env::temp_dir().join(format!(
        "pinfeed-fault-matrix-{}-{}",
        std::process::id(),
        case.fault.replace([':', ',', '='], "_")
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let truth_path = dir.join("truth.jsonl");
    let mut sim = Simulator::start(SimOptions {
        synthetic: Some(SyntheticOptions {
            rate_per_s: 1500.0,
            seed: 9,
            truth_out: Some(truth_path.clone()),
            truth_depth: 10,
            ..SyntheticOptions::default()
        }),
        faults: vec![spec],
        ..SimOptions::default()
    })
    .unwrap();
    let config = config(
        &sim,
        &[case.feed, CANARY],
        case.feed,
        case.venue_extra,
        case.engine_extra,
    );
    let handle = start(
        &config,
        RunOptions {
            status_interval: None,
            metrics_listen: Some("127.0.0.1:0".parse().unwrap()),
            ..RunOptions::default()
        },
    )
    .unwrap();
    let addr = handle.local_addr.unwrap();
    let started = Instant::now();
    let until = started + CAPTURE;
    let audited = client(
        addr,
        options(
            case.feed,
            &["book_change", "book_snapshot_5_100ms"],
            &json!({"withSeq": true, "withIntegrityMessages": true, "withUpdateId": true,
                    "withDisconnectMessages": true}),
        ),
        until,
    );
    let canary = client(
        addr,
        options(
            CANARY,
            &["trade", "book_change"],
            &json!({"withSeq": true, "withIntegrityMessages": true,
                    "withDisconnectMessages": true}),
        ),
        until,
    );
    let audited = audited.join().unwrap();
    let canary = canary.join().unwrap();
    let metrics = scrape(handle.metrics_addr.unwrap());
    let fired = sim.fault_counts();
    drop(handle.stop());
    sim.flush_truth();
    sim.stop();
    let end = Instant::now().min(until);

    // the audit: zero wrong books unflagged
    let truth = Truth::open(&truth_path).unwrap();
    let mut audit = Audit::new(&truth);
    let mut rec = Recovery::default();
    let affected = books(case.feed);
    let mut last_seq = None;
    for (at, m) in &audited {
        audit.take(m);
        rec.take(*at, m, &affected);
        if let Some(seq) = m["seq"].as_u64() {
            if let Some(prev) = last_seq {
                assert_eq!(seq, prev + 1, "{}: audited client seq gap", case.fault);
            }
            last_seq = Some(seq);
        }
    }
    let total = audit.total();
    let report = audit.report();
    let max_recovery = rec.recoveries.iter().max().copied().unwrap_or_default();
    let first_snapshot_ms = affected
        .iter()
        .filter_map(|b| rec.first_snapshot.get(b))
        .map(|t| (*t - started).as_millis())
        .max()
        .unwrap_or_default();
    eprintln!(
        "fault matrix | {} | {} | first snapshots by {first_snapshot_ms} ms | flags {} | rebuilt {} | max recovery {} ms | compared {} | wrong {} | fired {:?}\n{report}",
        case.fault,
        case.feed.name(),
        rec.flags,
        rec.recoveries.len(),
        max_recovery.as_millis(),
        total.compared(),
        total.wrong_unflagged(),
        fired,
    );
    assert!(
        fired
            .iter()
            .any(|(k, n)| *k == spec_kind(case.fault) && *n > 0),
        "{}: the simulator never fired it: {fired:?}",
        case.fault
    );
    assert!(
        total.compared() > 50,
        "{}: too few books compared\n{report}",
        case.fault
    );
    assert_eq!(
        total.wrong_unflagged(),
        0,
        "{}: wrong books served unflagged\n{report}",
        case.fault
    );
    for ((e, s), t) in &rec.flagged_at {
        assert!(
            end.saturating_duration_since(*t) < RECOVERY_BOUND,
            "{}: {e}/{s} flagged {:?} before the end and never rebuilt\n{report}",
            case.fault,
            end.saturating_duration_since(*t)
        );
    }
    assert!(
        max_recovery <= RECOVERY_BOUND,
        "{}: a book took {max_recovery:?} to rebuild",
        case.fault
    );
    if case.breaks_books {
        assert!(
            rec.flags > 0 && !rec.recoveries.is_empty(),
            "{}: no book flagged and rebuilt\n{report}",
            case.fault
        );
    }
    for b in &affected {
        let first = rec.first_snapshot.get(b).copied();
        assert!(
            first.is_some_and(|t| t - started <= RECOVERY_BOUND + Duration::from_secs(2)),
            "{}: {b:?} first snapshot {:?} after start",
            case.fault,
            first.map(|t| t - started)
        );
    }
    if let Some((name, labels)) = case.metric {
        assert!(
            metric(&metrics, name, labels) > 0.0,
            "{}: {name}{labels:?} is zero",
            case.fault
        );
    }

    // the canary: never flagged, no seq gap, trades once and in order
    let mut last_seq = None;
    let mut last_trade: HashMap<String, u64> = HashMap::new();
    let mut trades = 0;
    for (_, m) in &canary {
        let kind = m["type"].as_str().unwrap_or_default();
        assert!(
            kind != "book_invalid" && kind != "disconnect",
            "{}: canary flagged: {m}",
            case.fault
        );
        let seq = m["seq"].as_u64().unwrap();
        if let Some(prev) = last_seq {
            assert_eq!(seq, prev + 1, "{}: canary seq gap", case.fault);
        }
        last_seq = Some(seq);
        if kind == "trade" {
            trades += 1;
            let sym = m["symbol"].as_str().unwrap().to_string();
            let id: u64 = m["id"].as_str().unwrap().parse().unwrap();
            if let Some(prev) = last_trade.insert(sym.clone(), id) {
                assert!(
                    id > prev,
                    "{}: canary trade {sym} {id} after {prev}",
                    case.fault
                );
            }
        }
    }
    assert!(trades > 10, "{}: canary got {trades} trades", case.fault);
    assert_eq!(
        metric(
            &metrics,
            "pinfeed_connection_book_resyncs_total",
            &[("feed", CANARY.name())]
        ),
        0.0,
        "{}: the canary's books resynced",
        case.fault
    );
    let _ = std::fs::remove_dir_all(&dir);
}

fn spec_kind(fault: &str) -> pinfeed::sim::fault::FaultKind {
    fault.parse::<FaultSpec>().unwrap().kind
}

#[test]
fn gap() {
    run_case(Case {
        fault: "gap:feed=binance-futures,every=1000",
        feed: Feed::BinanceFutures,
        breaks_books: true,
        metric: Some((
            "pinfeed_book_resyncs_by_reason_total",
            &[("exchange", "binance-futures"), ("reason", "gap")],
        )),
        venue_extra: "",
        engine_extra: "",
    });
}

#[test]
fn checksum() {
    run_case(Case {
        fault: "checksum:feed=okx,every=1000",
        feed: Feed::Okx,
        breaks_books: true,
        metric: Some((
            "pinfeed_book_resyncs_by_reason_total",
            &[("reason", "checksum_mismatch")],
        )),
        venue_extra: "",
        engine_extra: "",
    });
}

#[test]
fn garbage() {
    run_case(Case {
        fault: "garbage:feed=deribit,every=400",
        feed: Feed::Deribit,
        breaks_books: true,
        metric: Some(("pinfeed_parse_errors_total", &[("feed", "deribit")])),
        venue_extra: "",
        engine_extra: "",
    });
}

#[test]
fn oversized() {
    run_case(Case {
        // 2 MiB against a limit lowered to 1 MiB ([ingest] max_message_bytes): the limit is
        // the config's
        fault: "oversized:feed=bybit-linear,at=2,bytes=2097152",
        feed: Feed::BybitLinear,
        breaks_books: true,
        metric: Some((
            "pinfeed_connection_ends_total",
            &[("feed", "bybit-linear"), ("cause", "message_too_big")],
        )),
        venue_extra: "",
        engine_extra: "[ingest]\nmax_message_bytes = 1048576\n",
    });
}

#[test]
fn stall() {
    run_case(Case {
        fault: "stall:feed=bybit-linear,at=2,secs=4",
        feed: Feed::BybitLinear,
        breaks_books: true,
        metric: Some((
            "pinfeed_connection_ends_total",
            &[("feed", "bybit-linear"), ("cause", "silence_timeout")],
        )),
        venue_extra: "silence_timeout_ms = 1500",
        engine_extra: "",
    });
}

#[test]
fn disconnect() {
    run_case(Case {
        fault: "disconnect:feed=deribit,at=2",
        feed: Feed::Deribit,
        breaks_books: true,
        metric: Some((
            "pinfeed_connection_ends_total",
            &[("feed", "deribit"), ("cause", "reset")],
        )),
        venue_extra: "",
        engine_extra: "",
    });
}

#[test]
fn close() {
    run_case(Case {
        fault: "close:feed=binance-futures,at=2,code=1001",
        feed: Feed::BinanceFutures,
        breaks_books: true,
        metric: Some((
            "pinfeed_connection_ends_total",
            &[("feed", "binance-futures"), ("cause", "venue_close")],
        )),
        venue_extra: "",
        engine_extra: "",
    });
}

#[test]
fn rest_429() {
    run_case(Case {
        fault: "rest:feed=binance-futures,status=429,count=2",
        feed: Feed::BinanceFutures,
        breaks_books: false,
        metric: Some(("pinfeed_rest_rate_limited_total", &[])),
        venue_extra: "",
        engine_extra: "",
    });
}

#[test]
fn rest_timeout() {
    run_case(Case {
        fault: "rest:feed=binance-futures,status=timeout,secs=2,count=1",
        feed: Feed::BinanceFutures,
        breaks_books: false,
        metric: Some(("pinfeed_rest_failures_total", &[])),
        venue_extra: "",
        engine_extra: "",
    });
}

#[test]
fn dup() {
    run_case(Case {
        fault: "dup:feed=binance-futures,every=300",
        feed: Feed::BinanceFutures,
        breaks_books: false,
        metric: Some((
            "pinfeed_connection_book_stale_deltas_total",
            &[("feed", "binance-futures")],
        )),
        venue_extra: "",
        engine_extra: "",
    });
}

#[test]
fn reorder() {
    run_case(Case {
        fault: "reorder:feed=okx,every=300",
        feed: Feed::Okx,
        breaks_books: true,
        metric: Some((
            "pinfeed_book_resyncs_by_reason_total",
            &[("exchange", "okex-swap"), ("reason", "gap")],
        )),
        venue_extra: "",
        engine_extra: "",
    });
}

#[test]
fn no_pong() {
    run_case(Case {
        fault: "no-pong:feed=deribit,at=1",
        feed: Feed::Deribit,
        breaks_books: false,
        metric: None,
        venue_extra: "",
        engine_extra: "",
    });
}

#[test]
fn slow() {
    run_case(Case {
        fault: "slow:feed=bybit-linear,bytes_per_s=20000",
        feed: Feed::BybitLinear,
        breaks_books: false,
        metric: None,
        venue_extra: "",
        engine_extra: "",
    });
}

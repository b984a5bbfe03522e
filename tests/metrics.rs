//! Measurement end to end: a Bybit venue on 127.0.0.1 plays the recorded `BYBIT.ws.2` frames
//! through the whole pipeline (ingest, book thread, fan-out) to one WebSocket client; then
//! every stage has latency values, `/metrics` serves well-formed Prometheus text whose
//! counters match what happened, survives malformed HTTP, and the stop writes `.hgrm` and
//! `.hlog` files that agree with the exporter's counts.

mod util;

use std::collections::HashSet;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use hdrhistogram::serialization::Deserializer;
use hdrhistogram::serialization::interval_log::{IntervalLogIterator, LogEntry};
use serde_json::json;
use tungstenite::Message;

use pinfeed::config::Config;
use pinfeed::metrics::{LatencyConfig, Stage};
use pinfeed::run::{RunOptions, start};
use pinfeed::sim::recording::{Record, Recording, data_dir};
use pinfeed::venue::{self, Feed};

/// Bybit linear frames of the recording and the subscriptions they answer.
fn bybit() -> (Vec<String>, Vec<String>) {
    let rec = Recording::open(&data_dir().join("recordings").join("BYBIT.jsonl.zst")).unwrap();
    let conn = "BYBIT.ws.2";
    let addr = rec.connect_addr(conn).unwrap().to_string();
    let subs = venue::subscriptions_from_wire(Feed::BybitLinear, &addr, &rec.sent_frames(conn));
    let frames = rec
        .records
        .iter()
        .filter_map(|r| match r {
            Record::Recv { conn: c, data, .. } if c == conn => Some(data.clone()),
            _ => None,
        })
        .collect();
    (frames, subs.into_iter().map(|s| s.symbol).collect())
}

/// Accepts one connection, reads its subscribes, waits for `go`, plays `frames`, then holds
/// the connection until `stop`.
fn venue(
    frames: Vec<String>,
    go: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
) -> (u16, std::thread::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let thread = std::thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        let mut ws = tungstenite::accept(stream).unwrap();
        ws.get_ref()
            .set_read_timeout(Some(Duration::from_millis(300)))
            .unwrap();
        while let Ok(Message::Text(_)) = ws.read() {}
        let until = Instant::now() + Duration::from_secs(10);
        while !go.load(Ordering::SeqCst) && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(5));
        }
        for f in &frames {
            if ws.send(Message::Text(f.as_str().into())).is_err() {
                return;
            }
        }
        ws.get_ref()
            .set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        while !stop.load(Ordering::SeqCst) {
            match ws.read() {
                Ok(_) => {}
                Err(tungstenite::Error::Io(e))
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) => {}
                Err(_) => return,
            }
        }
    });
    (port, thread)
}

/// One raw HTTP exchange: status code, head, body.
fn http(addr: SocketAddr, request: &[u8]) -> (u16, String, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(request).unwrap();
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    let text = String::from_utf8_lossy(&buf).to_string();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, head.to_string(), body.to_string())
}

fn scrape(addr: SocketAddr) -> String {
    let (status, head, body) = http(
        addr,
        b"GET /metrics HTTP/1.1\r\nHost: pinfeed\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(status, 200, "{head}");
    let head = head.to_ascii_lowercase();
    assert!(
        head.contains("content-type: text/plain; version=0.0.4"),
        "{head}"
    );
    body
}

/// A parsed sample: metric name, labels, value.
type Sample = (String, Vec<(String, String)>, f64);

/// Checks the exposition format line by line (HELP and TYPE once per family, before its
/// samples; every sample of a declared family; valid names, labels and values; no series
/// twice) and returns the samples.
fn parse_exposition(text: &str) -> Vec<Sample> {
    let name_ok = |n: &str| {
        !n.is_empty()
            && n.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
            && !n.starts_with(|c: char| c.is_ascii_digit())
    };
    let mut helps = HashSet::new();
    let mut types = std::collections::HashMap::new();
    let mut series = HashSet::new();
    let mut samples = Vec::new();
    for line in text.lines() {
        assert!(!line.is_empty(), "empty line in exposition");
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let name = rest.split(' ').next().unwrap();
            assert!(name_ok(name), "{line}");
            assert!(helps.insert(name.to_string()), "HELP twice: {line}");
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut it = rest.split(' ');
            let (name, kind) = (it.next().unwrap(), it.next().unwrap());
            assert!(
                ["counter", "gauge", "summary", "histogram", "untyped"].contains(&kind),
                "{line}"
            );
            assert!(helps.contains(name), "TYPE before HELP: {line}");
            assert!(
                types.insert(name.to_string(), kind.to_string()).is_none(),
                "TYPE twice: {line}"
            );
            continue;
        }
        assert!(!line.starts_with('#'), "stray comment {line}");
        let (series_text, value) = line.rsplit_once(' ').expect("name value");
        let value: f64 = value.parse().unwrap_or_else(|_| panic!("value in {line}"));
        let (name, labels) = match series_text.split_once('{') {
            Some((n, l)) => {
                let l = l.strip_suffix('}').expect("closing brace");
                let mut labels = Vec::new();
                for pair in l.split("\",") {
                    let (k, v) = pair.split_once("=\"").expect("label=\"value\"");
                    assert!(name_ok(k), "{line}");
                    labels.push((k.to_string(), v.trim_end_matches('"').to_string()));
                }
                (n.to_string(), labels)
            }
            None => (series_text.to_string(), Vec::new()),
        };
        assert!(name_ok(&name), "{line}");
        let family = types
            .keys()
            .find(|f| {
                name == **f
                    || (types[*f] == "summary"
                        && (name == format!("{f}_sum") || name == format!("{f}_count")))
            })
            .unwrap_or_else(|| panic!("sample of an undeclared family: {line}"));
        if types[family] == "counter" {
            assert!(name.ends_with("_total"), "counter without _total: {line}");
            assert!(value >= 0.0, "{line}");
        }
        assert!(name.starts_with("pinfeed_"), "{line}");
        assert!(
            series.insert(series_text.to_string()),
            "series twice: {line}"
        );
        samples.push((name, labels, value));
    }
    samples
}

fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> f64 {
    samples
        .iter()
        .filter(|(n, l, _)| {
            n == name
                && labels
                    .iter()
                    .all(|(k, v)| l.iter().any(|(a, b)| a == k && b == v))
        })
        .map(|s| s.2)
        .sum()
}

fn decode_hlog(path: &PathBuf) -> u64 {
    use base64::Engine as _;
    let bytes = std::fs::read(path).unwrap();
    let mut total = 0;
    for entry in IntervalLogIterator::new(&bytes) {
        if let LogEntry::Interval(iv) = entry.expect("log entry") {
            let raw = base64::engine::general_purpose::STANDARD
                .decode(iv.encoded_histogram())
                .unwrap();
            let h: Histogram<u64> = Deserializer::new()
                .deserialize(&mut raw.as_slice())
                .unwrap();
            total += h.len();
        }
    }
    total
}

fn hgrm_total(path: &PathBuf) -> u64 {
    let text = std::fs::read_to_string(path).unwrap();
    let line = text
        .lines()
        .find(|l| l.starts_with("#[Max"))
        .expect("footer");
    line.rsplit('=')
        .next()
        .unwrap()
        .trim_end_matches(']')
        .trim()
        .parse()
        .unwrap()
}

#[test]
fn stage_latency_metrics_and_dumps_end_to_end() {
    let (frames, symbols) = bybit();
    let go = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let (port, venue_thread) = venue(frames.clone(), go.clone(), stop.clone());
    let quoted: Vec<String> = symbols.iter().map(|s| format!("\"{s}\"")).collect();
    let config = Config::parse(&format!(
        r#"
        [server]
        listen = "127.0.0.1:0"
        [cpu]
        pin = false
        [memory]
        trim_interval_ms = 50
        [[venue]]
        feed = "bybit-linear"
        ws_url = "ws://127.0.0.1:{port}/v5/public/linear"
        symbols = [{}]
        "#,
        quoted.join(", ")
    ))
    .unwrap();
    let dir = std::env::temp_dir().join(format!("pinfeed-metrics-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let options = RunOptions {
        status_interval: None,
        latency: LatencyConfig {
            enabled: true,
            handoff: Duration::from_millis(50),
            hdr_dir: Some(dir.clone()),
            hdr_interval: Duration::from_millis(300),
        },
        metrics_listen: Some("127.0.0.1:0".parse().unwrap()),
        ..RunOptions::default()
    };
    let handle = start(&config, options).expect("start");
    let metrics = handle.metrics_addr.expect("metrics served");
    let mut ws = util::connect(
        handle.local_addr.unwrap(),
        &json!({"exchange": "bybit", "dataTypes": ["trade", "book_change"]}),
    );
    go.store(true, Ordering::SeqCst);

    // messages reach the client, then every stage has values
    let mut trades = 0;
    let mut books = 0;
    let deadline = Instant::now() + Duration::from_secs(20);
    while (trades < 10 || books < 10) && Instant::now() < deadline {
        let m = util::next(&mut ws);
        match m["type"].as_str() {
            Some("trade") => trades += 1,
            Some("book_change") => books += 1,
            _ => {}
        }
    }
    assert!(
        trades >= 10 && books >= 10,
        "{trades} trades, {books} books"
    );
    let all_frames = frames.len() as u64;
    let ok = loop {
        let snap = handle.latency();
        let filled = Stage::ALL.iter().all(|s| snap.stage(*s).count > 0);
        if filled && handle.stats.connections[0].frames_total() == all_frames {
            break true;
        }
        if Instant::now() > deadline {
            break false;
        }
        // keep reading so the client's writes complete
        ws.get_ref()
            .set_read_timeout(Some(Duration::from_millis(20)))
            .unwrap();
        let _ = ws.read();
    };
    let snap = handle.latency();
    assert!(ok, "{snap:#?}");
    for q in &snap.cumulative {
        assert!(q.p50_ns <= q.p99_ns && q.p99_ns <= q.max_ns, "{q:?}");
        if q.stage == Stage::VenueToRead {
            // the recording's venue times are months old: every value is clamped to 60 s
            assert_eq!(q.clamped, q.count, "{q:?}");
        } else {
            assert_eq!(q.clamped, 0, "{q:?}");
        }
    }
    // the whole path contains its parts
    assert!(
        snap.stage(Stage::ReadToWritten).max_ns >= snap.stage(Stage::ReadToPush).p50_ns,
        "{snap:#?}"
    );
    // one read → push value per frame that pushed events, at most one per frame
    assert!(snap.stage(Stage::ReadToPush).count <= all_frames);

    // malformed HTTP: 400, and the server stays up
    let (status, head, _) = http(metrics, b"garbage\r\n\r\n");
    assert_eq!(status, 400, "{head}");
    let (status, head, _) = http(metrics, b"GET /metrics HTTP/9.9\r\n\r\n");
    assert_eq!(status, 400, "{head}");
    let (status, head, _) = http(metrics, b"GET /metrics HTTP/1.1\r\nno colon here\r\n\r\n");
    assert_eq!(status, 400, "{head}");
    // bytes that are not ASCII (a TLS hello on the plain port): tiny_http closes the
    // connection without an answer; the server stays up
    let (status, _, _) = http(metrics, b"\x16\x03\x01\x00\xff\xfe\r\n\r\n");
    assert!(status == 0 || status == 400, "{status}");
    let (status, _, _) = http(metrics, b"GET /nope HTTP/1.1\r\nConnection: close\r\n\r\n");
    assert_eq!(status, 404);
    let (status, _, _) = http(
        metrics,
        b"POST /metrics HTTP/1.1\r\nConnection: close\r\nContent-Length: 0\r\n\r\n",
    );
    assert_eq!(status, 405);

    // the book thread publishes its gauges on its housekeeping tick, after the last frame
    let deadline = Instant::now() + Duration::from_secs(10);
    let samples = loop {
        let samples = parse_exposition(&scrape(metrics));
        if value(&samples, "pinfeed_books_synced", &[]) > 0.0 || Instant::now() > deadline {
            break samples;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let ingest_queue = "ingest-0-bybit-linear";
    assert!(
        value(
            &samples,
            "pinfeed_queue_pushed_total",
            &[("queue", ingest_queue)]
        ) > 0.0
    );
    assert!(value(&samples, "pinfeed_queue_high_water", &[("queue", "fanout")]) > 0.0);
    assert!(value(&samples, "pinfeed_frames_total", &[("kind", "trade")]) > 0.0);
    assert!(value(&samples, "pinfeed_frames_total", &[("kind", "book_delta")]) > 0.0);
    assert_eq!(
        value(
            &samples,
            "pinfeed_frames_total",
            &[("feed", "bybit-linear")]
        ) + value(&samples, "pinfeed_parse_errors_total", &[]),
        all_frames as f64
    );
    assert_eq!(
        value(
            &samples,
            "pinfeed_connection_state",
            &[("feed", "bybit-linear"), ("state", "connected")]
        ),
        1.0
    );
    assert_eq!(value(&samples, "pinfeed_clients", &[]), 1.0);
    assert!(value(&samples, "pinfeed_client_sent_bytes_total", &[]) > 1000.0);
    assert!(value(&samples, "pinfeed_books_synced", &[]) > 0.0);
    // one connection: its book counters are the totals
    for (per_conn, total) in [
        (
            "pinfeed_connection_book_resyncs_total",
            "pinfeed_book_resyncs_total",
        ),
        (
            "pinfeed_connection_book_gaps_total",
            "pinfeed_book_gaps_total",
        ),
    ] {
        assert_eq!(
            value(&samples, per_conn, &[("feed", "bybit-linear")]),
            value(&samples, total, &[]),
            "{per_conn}"
        );
    }
    // per book and reason, summing to the total
    assert_eq!(
        value(&samples, "pinfeed_book_resyncs_by_reason_total", &[]),
        value(&samples, "pinfeed_book_resyncs_total", &[])
    );
    assert!(
        samples
            .iter()
            .filter(|s| s.0 == "pinfeed_book_resyncs_by_reason_total")
            .any(|s| s.1.iter().any(|(k, v)| k == "reason" && v == "gap")),
        "no per-book resync series"
    );
    assert_eq!(
        value(&samples, "pinfeed_client_slow_closes_total", &[]),
        0.0
    );
    assert!(value(&samples, "pinfeed_process_resident_memory_bytes", &[]) > 1e6);
    // the trim thread ran (every 50 ms here) and says so
    assert!(value(&samples, "pinfeed_allocator_trims_total", &[]) >= 1.0);
    let rw = [("stage", "read_to_written")];
    let count = value(&samples, "pinfeed_stage_latency_seconds_count", &rw);
    assert!(count >= snap.stage(Stage::ReadToWritten).count as f64);
    let p99 = value(
        &samples,
        "pinfeed_stage_latency_seconds",
        &[("stage", "read_to_written"), ("quantile", "0.99")],
    );
    assert!(p99 > 0.0 && p99 < 60.0, "{p99}");
    // the garbage request before was counted by nobody else: the fan-out saw none
    assert_eq!(
        value(&samples, "pinfeed_client_bad_requests_total", &[]),
        0.0
    );

    // tardis-machine's /health-check (trailing `/` allowed), and readiness: the connection is
    // up and every book it carries synced, until the venue goes away
    let (status, head, body) = http(
        metrics,
        b"GET /health-check/ HTTP/1.1\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(status, 200, "{head}");
    assert!(head.contains("application/json"), "{head}");
    let health: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(health["status"], "Healthy", "{body}");
    assert!(
        health["memoryInfo"]["rssMB"].as_f64().unwrap() > 1.0,
        "{body}"
    );
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as f64;
    assert!((health["timestampMs"].as_f64().unwrap() - now_ms).abs() < 60_000.0);
    assert!(health["uptimeHours"].as_f64().unwrap() < 1.0);
    let ready = |want: u16| {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let (status, _, body) =
                http(metrics, b"GET /ready HTTP/1.1\r\nConnection: close\r\n\r\n");
            if status == want || Instant::now() > deadline {
                return (
                    status,
                    serde_json::from_str::<serde_json::Value>(&body).unwrap(),
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    let (status, body) = ready(200);
    assert_eq!(status, 200, "{body}");
    let conn = &body["connections"][0];
    assert_eq!(
        (&body["ready"], &conn["feed"], &conn["state"]),
        (&json!(true), &json!("bybit-linear"), &json!("connected")),
        "{body}"
    );
    assert!(conn["books"].as_u64().unwrap() > 0, "{body}");
    assert_eq!(conn["books"], conn["booksSynced"], "{body}");
    stop.store(true, Ordering::SeqCst);
    venue_thread.join().unwrap();
    let (status, body) = ready(503);
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["ready"], json!(false), "{body}");
    assert_ne!(
        body["connections"][0]["state"],
        json!("connected"),
        "{body}"
    );

    drop(ws);
    let latency = handle.latency_handle();
    handle.stop();

    // the stop wrote one .hgrm and one .hlog per stage, with the exporter's final counts
    let last = latency.snapshot();
    for s in Stage::ALL {
        let hgrm = dir.join(format!("{}.hgrm", s.name()));
        let hlog = dir.join(format!("{}.hlog", s.name()));
        let want = last.stage(s).count;
        assert!(want > 0, "{s:?}");
        assert_eq!(hgrm_total(&hgrm), want, "{}", hgrm.display());
        assert_eq!(decode_hlog(&hlog), want, "{}", hlog.display());
    }
    // and the metrics server is gone with the run
    assert!(TcpStream::connect(metrics).is_err());
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A taken `/metrics` address stops the start, unless best effort (`pinfeed run`'s
/// default address), where the run goes on without `/metrics`.
#[test]
fn a_taken_metrics_address() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let config = Config::parse(
        r#"
        [server]
        listen = "127.0.0.1:0"
        [cpu]
        pin = false
        [[venue]]
        feed = "bybit-linear"
        ws_url = "ws://127.0.0.1:9/v5/public/linear"
        symbols = ["BTCUSDT"]
        "#,
    )
    .unwrap();
    let options = |best_effort| RunOptions {
        status_interval: None,
        metrics_listen: Some(addr),
        metrics_listen_best_effort: best_effort,
        ..RunOptions::default()
    };
    let e = start(&config, options(false)).err().expect("bind error");
    assert!(e.to_string().contains("--metrics-listen"), "{e}");
    let handle = start(&config, options(true)).expect("runs without /metrics");
    assert_eq!(handle.metrics_addr, None);
    assert!(handle.local_addr.is_some());
    handle.stop();
}

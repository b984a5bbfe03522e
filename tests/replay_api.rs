//! The replay API end to end: `pinfeed::run::start` with `[replay] dir` holding the Bybit and
//! Deribit recordings (symlinked into a temporary directory, never copied), then
//! `GET /replay-normalized` (HTTP, chunked NDJSON) and `/ws-replay-normalized` (WebSocket)
//! answer exactly the lines `pinfeed replay --events-out` writes for the same recordings,
//! filtered by the request's exchange, symbols, data types and `[from, to)` range; several
//! options merge by `localTimestamp`; bad options get tardis's errors.

mod util;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::time::Duration;

use serde_json::{Value, json};
use tungstenite::Message;
use tungstenite::protocol::frame::coding::CloseCode;

use pinfeed::config::Config;
use pinfeed::replay::Replay;
use pinfeed::run::{RunHandle, RunOptions, start};
use pinfeed::sim::recording::{Recording, data_dir};

const FILES: [&str; 2] = ["BYBIT.jsonl.zst", "DERIBIT.jsonl.zst"];

/// A temporary capture directory of symlinks to the recordings.
fn capture_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("pinfeed-replay-api-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    for f in FILES {
        let src = data_dir().join("recordings").join(f);
        std::os::unix::fs::symlink(&src, dir.join(f)).unwrap();
    }
    dir
}

/// What `pinfeed replay --events-out` writes for the same files, parsed, in order.
fn events_out() -> Vec<(String, Value)> {
    let recordings: Vec<Recording> = FILES
        .iter()
        .map(|f| Recording::open(&data_dir().join("recordings").join(f)).unwrap())
        .collect();
    let mut replay = Replay::prepare(&recordings).unwrap();
    let mut out: Vec<u8> = Vec::new();
    replay.run(Some(&mut out), |_, _, _| {}).unwrap();
    String::from_utf8(out)
        .unwrap()
        .lines()
        .map(|l| (l.to_string(), serde_json::from_str(l).unwrap()))
        .collect()
}

fn engine(dir: &std::path::Path) -> RunHandle {
    // a venue is required; this one is never reached (the replay needs none)
    let config = Config::parse(&format!(
        r#"
        [server]
        listen = "127.0.0.1:0"
        [cpu]
        pin = false
        [replay]
        dir = "{}"
        [[venue]]
        feed = "bybit-linear"
        ws_url = "ws://127.0.0.1:1/v5/public/linear"
        symbols = ["BTCUSDT"]
        "#,
        dir.display()
    ))
    .unwrap();
    start(
        &config,
        RunOptions {
            status_interval: None,
            metrics_listen: Some("127.0.0.1:0".parse().unwrap()),
            ..RunOptions::default()
        },
    )
    .unwrap()
}

/// `GET path?options=...`: status, headers and the de-chunked body.
fn get(addr: SocketAddr, options: &Value) -> (u16, String, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let target = format!(
        "/replay-normalized?options={}",
        util::encode_component(&options.to_string())
    );
    write!(s, "GET {target} HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let text = String::from_utf8(raw).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    let status = head[9..12].parse().unwrap();
    if !head.contains("Transfer-Encoding: chunked") {
        return (status, head.to_string(), body.to_string());
    }
    let (mut rest, mut out) = (body, String::new());
    loop {
        let (size, tail) = rest.split_once("\r\n").unwrap();
        let n = usize::from_str_radix(size, 16).unwrap();
        if n == 0 {
            break;
        }
        out.push_str(&tail[..n]);
        assert_eq!(&tail[n..n + 2], "\r\n");
        rest = &tail[n + 2..];
    }
    (status, head.to_string(), out)
}

/// `/ws-replay-normalized`: every text message, then the close code and reason.
fn ws(addr: SocketAddr, options: &Value) -> (Vec<String>, u16, String) {
    let mut ws = util::connect_url(
        addr,
        &format!(
            "/ws-replay-normalized?options={}",
            util::encode_component(&options.to_string())
        ),
    );
    let mut lines = Vec::new();
    loop {
        match ws.read() {
            Ok(Message::Text(t)) => lines.push(t.as_str().to_string()),
            Ok(Message::Close(Some(c))) => return (lines, c.code.into(), c.reason.to_string()),
            Ok(Message::Close(None)) => return (lines, 1005, String::new()),
            Ok(_) => {}
            Err(e) => panic!("read: {e}"),
        }
    }
}

fn keep(v: &Value, exchange: &str, symbols: &[&str], types: &[&str], from: &str, to: &str) -> bool {
    let local = v["localTimestamp"].as_str().unwrap();
    v["exchange"] == exchange
        && (symbols.is_empty() || symbols.iter().any(|s| v["symbol"] == *s))
        && types.iter().any(|t| v["type"] == *t)
        && local >= from
        && local < to
}

#[test]
fn replay_endpoints_serve_what_replay_writes() {
    let dir = capture_dir();
    let all = events_out();
    let handle = engine(&dir);
    let http = handle.metrics_addr.unwrap();
    let wsaddr = handle.local_addr.unwrap();
    let types = [
        "trade",
        "book_change",
        "derivative_ticker",
        "liquidation",
        "option_summary",
    ];

    // 1. one option, every type, the whole day of the recording
    let first = all
        .iter()
        .find(|(_, v)| v["exchange"] == "bybit")
        .map(|(_, v)| v["localTimestamp"].as_str().unwrap().to_string())
        .expect("bybit events");
    let day = &first[..10];
    let next_day = "2100-01-01";
    let options = json!({"exchange": "bybit", "dataTypes": types, "from": day, "to": next_day});
    let expected: Vec<&str> = all
        .iter()
        .filter(|(_, v)| keep(v, "bybit", &[], &types, day, next_day))
        .map(|(l, _)| l.as_str())
        .collect();
    assert!(expected.len() > 1000, "{} bybit events", expected.len());
    let (status, head, body) = get(http, &options);
    assert_eq!(status, 200, "{head}\n{body}");
    assert!(
        head.contains("Content-Type: application/x-json-stream"),
        "{head}"
    );
    let got: Vec<&str> = body.lines().collect();
    assert_eq!(got.len(), expected.len());
    assert!(got == expected, "HTTP lines differ from --events-out");
    let (lines, code, reason) = ws(wsaddr, &options);
    assert_eq!(
        (code, reason.as_str()),
        (1000, "WS replay-normalized finished")
    );
    assert!(
        lines == expected,
        "WebSocket lines differ from --events-out"
    );

    // 2. a minute range, one symbol in lower case, trades only: the first trade's minute
    let trade = &all
        .iter()
        .find(|(_, v)| v["exchange"] == "bybit" && v["type"] == "trade")
        .unwrap()
        .1;
    let sym = trade["symbol"].as_str().unwrap().to_string();
    let at = trade["localTimestamp"].as_str().unwrap();
    let (h, m): (u32, u32) = (at[11..13].parse().unwrap(), at[14..16].parse().unwrap());
    let minute = |n: u32| {
        assert!(
            n < 24 * 60,
            "the recording's first trade is too late in its day for this test"
        );
        format!("{}T{:02}:{:02}", &at[..10], n / 60, n % 60)
    };
    let (from, to) = (minute(h * 60 + m), minute(h * 60 + m + 1));
    let options = json!({"exchange": "bybit", "symbols": [sym.to_lowercase()],
        "dataTypes": ["trade"], "from": format!("{from}Z"), "to": to});
    let expected: Vec<&str> = all
        .iter()
        .filter(|(_, v)| keep(v, "bybit", &[&sym], &["trade"], &from, &to))
        .map(|(l, _)| l.as_str())
        .collect();
    assert!(!expected.is_empty());
    let (status, _, body) = get(http, &options);
    assert_eq!(status, 200);
    assert!(
        body.lines().eq(expected.iter().copied()),
        "minute range differs"
    );

    // 3. two options, two exchanges: merged by localTimestamp, each option's lines in order
    // (the recordings are of different days)
    let since = "2000-01-01";
    let a = json!({"exchange": "bybit", "dataTypes": ["trade"], "from": since, "to": next_day});
    let b = json!({"exchange": "deribit", "dataTypes": types, "from": since, "to": next_day});
    let (status, _, body) = get(http, &json!([a, b]));
    assert_eq!(status, 200);
    let merged: Vec<Value> = body
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let stamps: Vec<&str> = merged
        .iter()
        .map(|v| v["localTimestamp"].as_str().unwrap())
        .collect();
    assert!(
        stamps.windows(2).all(|w| w[0] <= w[1]),
        "not merged by localTimestamp"
    );
    let end = next_day;
    for (exchange, types) in [("bybit", &["trade"][..]), ("deribit", &types[..])] {
        let want: Vec<&Value> = all
            .iter()
            .map(|(_, v)| v)
            .filter(|v| keep(v, exchange, &[], types, since, end))
            .collect();
        let have: Vec<&Value> = merged
            .iter()
            .filter(|v| v["exchange"] == exchange)
            .collect();
        assert!(!want.is_empty(), "{exchange}");
        assert!(
            have == want,
            "{exchange}: its lines are not its own stream in order"
        );
    }

    // 4. tardis's errors
    let (status, _, body) = get(
        http,
        &json!({"exchange": "ftx", "dataTypes": ["trade"],
        "from": day, "to": next_day}),
    );
    assert_eq!(status, 500);
    let msg: Value = serde_json::from_str(&body).unwrap();
    assert!(
        msg["message"]
            .as_str()
            .unwrap()
            .starts_with("Invalid \"exchange\" argument: ftx.")
    );
    let (status, _, body) = get(
        http,
        &json!({"exchange": "bybit", "dataTypes": ["trade"],
        "from": next_day, "to": day}),
    );
    assert_eq!(status, 500, "{body}");
    let (lines, code, reason) = ws(
        wsaddr,
        &json!({"exchange": "bybit", "dataTypes": ["trade"], "to": day}),
    );
    assert!(lines.is_empty());
    assert_eq!(code, u16::from(CloseCode::Error));
    assert_eq!(
        reason,
        "Error: Invalid \"from\" argument: undefined. Please provide valid date string."
    );
    // an empty range is an empty stream, not an error (tardis: `to` may equal `from`)
    let (status, _, body) = get(
        http,
        &json!({"exchange": "bybit", "dataTypes": ["trade"],
        "from": day, "to": day}),
    );
    assert_eq!((status, body.as_str()), (200, ""));

    // 5. counted in /metrics
    let mut s = TcpStream::connect(http).unwrap();
    write!(s, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let sample = |name: &str| -> f64 {
        text.lines()
            .find_map(|l| l.strip_prefix(name).and_then(|r| r.trim().parse().ok()))
            .unwrap_or_else(|| panic!("{name} missing"))
    };
    assert_eq!(
        sample("pinfeed_replay_requests_total{outcome=\"completed\"}"),
        5.0
    );
    assert_eq!(
        sample("pinfeed_replay_requests_total{outcome=\"error\"}"),
        3.0
    );
    assert_eq!(sample("pinfeed_fanout_replay_handoffs_total"), 2.0);
    handle.stop();
    let _ = std::fs::remove_dir_all(&dir);
}

//! The fan-out server's limits and bad input on 127.0.0.1: malformed requests and frames,
//! plain HTTP, heartbeats, slow clients (conflation, close 1008), stop, the wake-ups, the
//! client cap and stalled handshakes, each with the outcome PROTOCOL.md defines.

mod fanout_util;
mod util;

use fanout_util::*;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};
use util::{connect, connect_url, encode_component, next};

use pinfeed::config::ServerConfig;
use pinfeed::fanout::{BadRequest, Tuning};
use serde_json::json;
use tungstenite::Message;
use tungstenite::protocol::frame::coding::CloseCode;
#[test]
fn malformed_requests_close_as_tardis_machine_does() {
    let h = Harness::new();
    let cases: Vec<(String, u16, &str)> = vec![
        (
            "/ws-stream-normalized?options=%7Bnope".into(),
            1011,
            "SyntaxError: ",
        ),
        (
            "/ws-stream-normalized".into(),
            1011,
            "SyntaxError: \"undefined\" is not valid JSON",
        ),
        (
            format!(
                "/ws-stream-normalized?options={}",
                encode_component(r#"{"exchange":"binance"}"#)
            ),
            1011,
            "TypeError: Cannot read properties of undefined (reading 'includes')",
        ),
        (
            format!(
                "/ws-stream-normalized?options={}",
                encode_component(r#"{"exchange":"deribit","dataTypes":["book_snapshot_x_1s"]}"#)
            ),
            1011,
            "Error: invalid depth: x, data type: book_snapshot_x_1s",
        ),
        (
            "/ws-stream-normalized?options=%5B%5D".into(),
            1000,
            "WS stream-normalized finished",
        ),
        ("/ws-replay-normalized?options=%5B%5D".into(), 1008, ""),
        ("/ws-stream-normalized/?options=%5B%5D".into(), 1008, ""),
        ("/nope".into(), 1008, ""),
    ];
    for (path, want_code, want_reason) in &cases {
        let mut ws = connect_url(h.addr, path);
        let (code, reason, texts) = close_of(&mut ws);
        assert!(texts.is_empty());
        assert_eq!(code, *want_code, "{path}");
        if want_reason.ends_with(": ") {
            assert!(reason.starts_with(want_reason), "{path}: {reason}");
            assert!(reason.len() <= 123);
        } else {
            assert_eq!(reason, *want_reason, "{path}");
        }
    }
    // a long reason is cut to 123 bytes
    let long = format!(
        r#"{{"exchange":"deribit","dataTypes":["book_snapshot_{}_1s"]}}"#,
        "x".repeat(300)
    );
    let mut ws = connect_url(
        h.addr,
        &format!("/ws-stream-normalized?options={}", encode_component(&long)),
    );
    let (code, reason, _) = close_of(&mut ws);
    assert_eq!(code, 1011);
    assert!(
        reason.starts_with("Error: invalid depth: xxx") && reason.len() == 120,
        "{reason}"
    );
    // routing is case-insensitive and tolerates a doubled leading slash
    for path in [
        "/WS-Stream-Normalized?options=%5B%5D",
        "//ws-stream-normalized?options=%5B%5D",
    ] {
        let (code, _, _) = close_of(&mut connect_url(h.addr, path));
        assert_eq!(code, 1000, "{path}");
    }
    let c = h.wait("counters", |c| c.bad_request(BadRequest::EmptyOptions) == 3);
    assert_eq!(c.bad_request(BadRequest::MalformedOptions), 5);
    assert_eq!(c.bad_request(BadRequest::UnknownPath), 3);
    assert_eq!(c.sessions, 0);
}

/// Sends raw bytes, returns the HTTP response the server sends before closing.
fn raw_http(addr: SocketAddr, request: &[u8]) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(request).unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

#[test]
fn http_requests_get_426_431_400() {
    let h = Harness::new();
    let r = raw_http(
        h.addr,
        b"GET /ws-stream-normalized HTTP/1.1\r\nHost: x\r\n\r\n",
    );
    assert!(r.starts_with("HTTP/1.1 426 Upgrade Required\r\n"), "{r}");
    let mut big = b"GET /ws-stream-normalized HTTP/1.1\r\nHost: x\r\nX-Pad: ".to_vec();
    big.extend(std::iter::repeat_n(b'a', 21_000));
    big.extend_from_slice(b"\r\n\r\n");
    let r = raw_http(h.addr, &big);
    assert!(r.starts_with("HTTP/1.1 431 "), "{r}");
    let r = raw_http(
        h.addr,
        b"GET / HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: bad\r\nSec-WebSocket-Version: 13\r\n\r\n",
    );
    assert!(r.starts_with("HTTP/1.1 400 "), "{r}");
    let r = raw_http(h.addr, b"\x16\x03\x01 not http at all\r\n\r\n");
    assert!(r.starts_with("HTTP/1.1 400 "), "{r}");
    let c = h.wait("counters", |c| c.bad_request(BadRequest::BadHandshake) == 2);
    assert_eq!(c.bad_request(BadRequest::NotWebSocket), 1);
    assert_eq!(c.bad_request(BadRequest::HeaderTooLarge), 1);
    h.wait("closed", |c| c.clients == 0);
}

#[test]
fn client_frames_pings_binary_and_oversize() {
    let mut h = Harness::new();
    let mut ws = connect(
        h.addr,
        &json!({"exchange":"binance-futures","symbols":["BTCUSDT"],"dataTypes":["trade"]}),
    );
    h.sessions(1);
    ws.send(Message::Binary(vec![1u8, 2, 3].into())).unwrap();
    ws.send(Message::Text("hello".into())).unwrap();
    ws.send(Message::Ping(b"hb".to_vec().into())).unwrap();
    match ws.read().unwrap() {
        Message::Pong(p) => assert_eq!(&p[..], b"hb"),
        other => panic!("{other:?}"),
    }
    h.wait("ignored", |c| c.client_frames_ignored == 2);
    // still subscribed after ignored frames
    h.push([trade(BTC, 1)]);
    assert_eq!(next(&mut ws)["id"], json!("1"));
    // a message over 512 KiB: 1009
    ws.send(Message::Binary(vec![0u8; 512 * 1024 + 1].into()))
        .unwrap();
    let (code, _, _) = close_of(&mut ws);
    assert_eq!(code, 1009);
    // a client close: answered with the same code
    let mut other = connect(
        h.addr,
        &json!({"exchange":"binance-futures","symbols":["BTCUSDT"],"dataTypes":["trade"]}),
    );
    other
        .close(Some(tungstenite::protocol::CloseFrame {
            code: CloseCode::Away,
            reason: "bye".into(),
        }))
        .unwrap();
    let (code, _, _) = close_of(&mut other);
    assert_eq!(code, 1001);
    drop(ws);
    drop(other);
    let c = h.wait("closed", |c| c.clients == 0);
    assert_eq!(c.bad_request(BadRequest::OversizedFrame), 1);
    assert!(c.client_disconnects >= 1);
}

#[test]
fn silent_clients_are_terminated_by_the_heartbeat() {
    let tuning = Tuning {
        heartbeat_interval: Duration::from_millis(150),
        ..Tuning::default()
    };
    let h = Harness::start(1 << 20, 5 << 20, tuning);
    let silent = connect(
        h.addr,
        &json!({"exchange":"binance-futures","symbols":["BTCUSDT"],"dataTypes":["trade"]}),
    );
    let mut alive = connect(
        h.addr,
        &json!({"exchange":"binance-futures","symbols":["BTCUSDT"],"dataTypes":["trade"]}),
    );
    alive
        .get_mut()
        .set_read_timeout(Some(Duration::from_millis(20)))
        .unwrap();
    // the live client reads (tungstenite answers each ping); the silent one never does
    let start = Instant::now();
    let mut pings = 0;
    while start.elapsed() < Duration::from_millis(800) {
        match alive.read() {
            Ok(Message::Ping(_)) => pings += 1,
            Ok(m) => panic!("{m:?}"),
            Err(tungstenite::Error::Io(_)) => {}
            Err(e) => panic!("{e}"),
        }
        let _ = alive.flush();
    }
    assert!(pings >= 3, "{pings}");
    let c = h.wait("timeout", |c| c.heartbeat_timeouts == 1);
    assert_eq!(c.clients, 1);
    drop(silent);
}

#[test]
fn a_slow_client_is_closed_1008_and_never_delays_the_others() {
    let tuning = Tuning {
        close_timeout: Duration::from_secs(15),
        ..Tuning::default()
    };
    let mut h = Harness::start(16 << 10, 64 << 10, tuning);
    let options = json!({"exchange":"binance-futures","symbols":["BTCUSDT"],"dataTypes":["trade"],"withSeq":true});
    let mut slow = connect(h.addr, &options);
    let fast = connect(h.addr, &options);
    h.sessions(2);
    let received = Arc::new(AtomicU64::new(0));
    let target = Arc::new(AtomicU64::new(u64::MAX));
    let reader = {
        let received = received.clone();
        let target = target.clone();
        thread::spawn(move || {
            let mut fast = fast;
            let mut n = 0u64;
            while n < target.load(Ordering::Relaxed) {
                let m = next(&mut fast);
                assert_eq!(
                    m["id"],
                    json!(n.to_string()),
                    "fast client: every trade, in order"
                );
                assert_eq!(m["seq"], json!(n + 1));
                n += 1;
                received.store(n, Ordering::Relaxed);
            }
            n
        })
    };
    // paced so that the fast client never falls behind by more than a batch
    let mut n = 0u64;
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut closed_at = None;
    while closed_at.is_none_or(|at| n < at + 2000) {
        assert!(Instant::now() < deadline, "slow client never closed");
        h.push((n..n + 500).map(|i| trade(BTC, i)));
        n += 500;
        while received.load(Ordering::Relaxed) + 500 < n {
            assert!(Instant::now() < deadline, "fast client stalled");
            thread::sleep(Duration::from_micros(200));
        }
        if closed_at.is_none() && h.stats.load().slow_client_closes == 1 {
            closed_at = Some(n);
        }
    }
    target.store(n, Ordering::Relaxed);
    let got = reader.join().unwrap();
    assert_eq!(got, n, "the fast client got every trade");
    // the slow client finally reads: what was queued, then 1008
    let (code, reason, texts) = close_of(&mut slow);
    assert_eq!((code, reason.as_str()), (1008, "Too much backpressure"));
    assert!(!texts.is_empty() && (texts.len() as u64) < n);
    for (i, m) in texts.iter().enumerate() {
        assert_eq!(m["seq"], json!(i as u64 + 1), "contiguous up to the close");
    }
    let c = h.wait("closed", |c| c.clients == 1);
    assert_eq!(c.slow_client_closes, 1);
    // issue 9 item 7: the close went out ahead of the backlog (dropped at a frame boundary:
    // the texts above parsed, and their seq is contiguous), so the client saw its 1008
    assert!(c.slow_close_dropped_bytes > 0, "{c:?}");
}

#[test]
fn conflation_sends_a_fresh_snapshot_once_drained() {
    let mut h = Harness::start(16 << 10, 64 << 20, Tuning::default());
    h.push(book(
        ETH,
        true,
        &[(Bid, "100", "1"), (Ask, "101", "1")],
        T0_MS,
    ));
    let mut ws = connect(
        h.addr,
        &json!({"exchange":"binance-futures","symbols":["ETHUSDT"],"dataTypes":["trade","book_change"]}),
    );
    h.sessions(1);
    // the client does not read: trades fill the socket buffers, then book changes are dropped
    let mut expected: BTreeMap<(bool, i64), i64> = BTreeMap::new();
    expected.insert((true, 100), 1);
    expected.insert((false, 101), 1);
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut i = 0u64;
    while h.stats.load().conflations < 50 {
        assert!(Instant::now() < deadline, "never conflated");
        h.push((0..200).map(|k| trade(ETH, i * 200 + k)));
        let price = 90 + (i % 10) as i64;
        let qty = (i % 7) as i64;
        h.push(book(
            ETH,
            false,
            &[(Bid, &price.to_string(), &qty.to_string())],
            T0_MS + 1 + i as i64,
        ));
        if qty == 0 {
            expected.remove(&(true, price));
        } else {
            expected.insert((true, price), qty);
        }
        i += 1;
    }
    let trades_pushed = i * 200;
    // now read everything: the client's book, rebuilt from what it got, must be the true one
    let mut book: BTreeMap<(bool, i64), i64> = BTreeMap::new();
    let mut trades = 0u64;
    let mut snapshots = 0;
    loop {
        let m = next(&mut ws);
        match m["type"].as_str().unwrap() {
            "trade" => {
                assert_eq!(
                    m["id"],
                    json!(trades.to_string()),
                    "trades are never conflated"
                );
                trades += 1;
            }
            "book_change" => {
                if m["isSnapshot"] == json!(true) {
                    book.clear();
                    snapshots += 1;
                }
                for (side, bid) in [("bids", true), ("asks", false)] {
                    for l in m[side].as_array().unwrap() {
                        let p = l["price"].as_i64().unwrap();
                        let q = l["amount"].as_i64().unwrap();
                        if q == 0 {
                            book.remove(&(bid, p));
                        } else {
                            book.insert((bid, p), q);
                        }
                    }
                }
            }
            t => panic!("{t}"),
        }
        if trades == trades_pushed && book == expected && snapshots >= 2 {
            break;
        }
    }
    let c = h.wait("resnapshot", |c| c.resnapshots >= 1);
    assert!(c.conflations >= 50);
    assert_eq!(c.slow_client_closes, 0);
}

#[test]
fn stop_sends_going_away() {
    let h = Harness::new();
    let mut ws = connect(
        h.addr,
        &json!({"exchange":"binance-futures","symbols":["BTCUSDT"],"dataTypes":["trade"]}),
    );
    h.sessions(1);
    h.stop.stop();
    let (code, reason, _) = close_of(&mut ws);
    assert_eq!((code, reason.as_str()), (1001, "going away"));
}

#[test]
fn delivers_with_the_notifier_or_with_no_wake_up_at_all() {
    for wake in [1, 2] {
        let mut h = Harness::start_with(1 << 20, 5 << 20, 64, Tuning::default(), wake);
        let mut ws = connect(
            h.addr,
            &json!({"exchange":"binance-futures","symbols":["BTCUSDT"],"dataTypes":["trade"]}),
        );
        h.sessions(1);
        for round in 0..20u64 {
            h.push((0..10).map(|i| trade(BTC, round * 10 + i)));
            for i in 0..10 {
                assert_eq!(next(&mut ws)["id"], json!((round * 10 + i).to_string()));
            }
            // let the loop go idle between rounds, so it parks in poll
            thread::sleep(Duration::from_millis(3));
        }
    }
}

#[test]
fn connections_over_max_clients_are_refused() {
    let h = Harness::start_with(1 << 20, 5 << 20, 2, Tuning::default(), 0);
    let options = json!({"exchange":"binance-futures","symbols":["BTCUSDT"],"dataTypes":["trade"]});
    let _a = connect(h.addr, &options);
    let _b = connect(h.addr, &options);
    let stream = TcpStream::connect(h.addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let url = format!("ws://{}/ws-stream-normalized", h.addr);
    assert!(tungstenite::client(url, stream).is_err());
    let c = h.wait("refused", |c| {
        c.bad_request(BadRequest::TooManyClients) == 1
    });
    assert_eq!((c.clients, c.accepted), (2, 3));
}

/// A harness on `[server]` defaults changed by `f`, with slots deep enough for depth-1000
/// series (these tests are about the series limits).
fn limited(f: impl FnOnce(&mut ServerConfig)) -> Harness {
    let mut cfg = ServerConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        slot_depth: 1000,
        ..ServerConfig::default()
    };
    f(&mut cfg);
    Harness::start_config(cfg, Tuning::default(), 0, None, |_| {})
}

#[test]
fn a_stalled_handshake_is_dropped_at_the_handshake_timeout() {
    // the heartbeat (30 s) no longer decides: handshake_timeout_ms does
    let h = limited(|c| c.handshake_timeout_ms = 200);
    let started = Instant::now();
    let mut s = TcpStream::connect(h.addr).unwrap();
    s.write_all(b"GET /ws-stream-normalized HTTP/1.1\r\nHost: x\r\n")
        .unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut buf = [0u8; 16];
    assert_eq!(s.read(&mut buf).unwrap(), 0, "closed without a response");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    let c = h.wait("dropped", |c| c.clients == 0);
    assert_eq!((c.handshake_timeouts, c.heartbeat_timeouts), (1, 0));
}

/// Issue 9 item 3: 300 sockets that sent 2 bytes locked out every client for 42 s. Now the
/// oldest pending handshakes make room, and a real client is served at once.
#[test]
fn half_open_handshakes_do_not_lock_out_clients() {
    let h = limited(|c| {
        c.max_pending_handshakes = 50;
        c.max_pending_handshakes_per_ip = 50;
        c.max_clients = 400;
        c.handshake_timeout_ms = 10_000;
    });
    let mut idle = Vec::new();
    for _ in 0..300 {
        let mut s = TcpStream::connect(h.addr).unwrap();
        s.write_all(b"GE").unwrap();
        idle.push(s);
    }
    h.wait("accepted", |c| c.accepted == 300);
    let started = Instant::now();
    let mut ws = connect(
        h.addr,
        &json!({"exchange":"binance-futures","symbols":["BTCUSDT"],"dataTypes":["trade"]}),
    );
    h.sessions(1);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    let c = h.stats.load();
    // each socket past the 50th closed the oldest pending one; so did the real client
    assert_eq!(
        (c.handshakes_refused, c.handshakes_evicted),
        (0, 251),
        "{c:?}"
    );
    assert_eq!(c.clients, 50, "{c:?}");
    ws.close(None).unwrap();
}

#[test]
fn pending_handshakes_per_ip_are_capped() {
    let h = limited(|c| c.max_pending_handshakes_per_ip = 3);
    let mut idle = Vec::new();
    for _ in 0..3 {
        let mut s = TcpStream::connect(h.addr).unwrap();
        s.write_all(b"GE").unwrap();
        idle.push(s);
    }
    h.wait("accepted", |c| c.accepted == 3 && c.clients == 3);
    // a fourth from the same address closes that address's oldest, and is served
    let mut ws = connect(
        h.addr,
        &json!({"exchange":"binance-futures","symbols":["BTCUSDT"],"dataTypes":["trade"]}),
    );
    h.sessions(1);
    idle[0]
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut buf = [0u8; 16];
    assert_eq!(
        idle[0].read(&mut buf).unwrap_or(0),
        0,
        "the oldest was closed"
    );
    let c = h.wait("evicted", |c| c.handshakes_evicted == 1);
    assert_eq!((c.clients, c.handshakes_refused), (3, 0));
    ws.close(None).unwrap();
}

/// Issue 9 item 2: one request for 700 depth-1000 series on 10 instruments took ~460 MB that
/// was never returned. Now it gets an `error` and close 1008, and no series is created.
#[test]
fn snapshot_series_over_the_limits_are_refused() {
    let h = limited(|_| {});
    let types: Vec<String> = (1..=300)
        .map(|n| format!("book_snapshot_1000_{n}ms"))
        .collect();
    let mut ws = connect(
        h.addr,
        &json!({"exchange":"binance-futures","symbols":["BTCUSDT","ETHUSDT"],"dataTypes":types}),
    );
    assert_limit_close(&mut ws, "server.max_snapshot_series_per_client");
    let c = h.wait("refused", |c| {
        c.bad_request(BadRequest::SubscriptionLimit) == 1
    });
    assert_eq!(c.sessions, 0);

    // levels per client: 40 series x 1000 levels = 40,000 > 32,768
    let types: Vec<String> = (1..=40)
        .map(|n| format!("book_snapshot_1000_{n}ms"))
        .collect();
    let mut ws = connect(
        h.addr,
        &json!({"exchange":"binance-futures","symbols":["BTCUSDT"],"dataTypes":types}),
    );
    assert_limit_close(&mut ws, "server.max_snapshot_levels_per_client");
    // a request within the limits is served
    let mut ok = connect(
        h.addr,
        &json!({"exchange":"binance-futures","symbols":["BTCUSDT"],"dataTypes":["book_snapshot_1000_1s","quote"]}),
    );
    h.sessions(1);
    ok.close(None).unwrap();
}

/// Trade bar series count against the series caps, and a grouped snapshot series counts
/// every level the slot holds (what it reads per change), not its grouped depth.
#[test]
fn trade_bar_and_grouped_series_count_against_the_caps() {
    let h = limited(|_| {});
    let bars: Vec<String> = (1..=300).map(|n| format!("trade_bar_{n}ticks")).collect();
    let mut ws = connect(
        h.addr,
        &json!({"exchange":"binance-futures","symbols":["BTCUSDT"],"dataTypes":bars}),
    );
    assert_limit_close(&mut ws, "server.max_snapshot_series_per_client");
    // 40 grouped series of depth 1 on 1000-level slots: 40,000 levels > 32,768
    let grouped: Vec<String> = (1..=40)
        .map(|n| format!("book_snapshot_1_grouped{n}_1s"))
        .collect();
    let mut ws = connect(
        h.addr,
        &json!({"exchange":"binance-futures","symbols":["BTCUSDT"],"dataTypes":grouped}),
    );
    assert_limit_close(&mut ws, "server.max_snapshot_levels_per_client");
    let c = h.wait("refused", |c| {
        c.bad_request(BadRequest::SubscriptionLimit) == 2
    });
    assert_eq!(c.sessions, 0);
    let mut ok = connect(
        h.addr,
        &json!({"exchange":"binance-futures","symbols":["BTCUSDT"],
                "dataTypes":["trade_bar_10ticks","book_snapshot_5_grouped10_1s"]}),
    );
    h.sessions(1);
    ok.close(None).unwrap();
}

/// A series or imbalance stream deeper than the book slots (`server.slot_depth`) is refused
/// like a data type pinfeed does not serve: an `error` naming the field, and the rest of the
/// request is served.
#[test]
fn series_deeper_than_the_slots_get_an_error() {
    let mut h = limited(|c| c.slot_depth = 20);
    let mut ws = connect(
        h.addr,
        &json!({"exchange":"binance-futures","symbols":["BTCUSDT"],"withErrorMessages":true,
            "dataTypes":["book_snapshot_25_0ms","imbalance_21","book_snapshot_20_0ms"]}),
    );
    h.sessions(1);
    let mut errors = Vec::new();
    for _ in 0..2 {
        let m = next(&mut ws);
        assert_eq!(m["type"], "error", "{m}");
        errors.push(m["details"].as_str().unwrap().to_string());
    }
    assert!(
        errors[0].starts_with("book_snapshot_25_0ms: depth over 20"),
        "{errors:?}"
    );
    assert!(
        errors[1].starts_with("imbalance_21: depth over 20"),
        "{errors:?}"
    );
    assert!(errors.iter().all(|e| e.contains("server.slot_depth")));
    h.push(book(
        BTC,
        true,
        &[(Bid, "10", "1"), (Ask, "11", "2")],
        T0_MS,
    ));
    let m = next(&mut ws);
    assert_eq!(m["name"], "book_snapshot_20_0ms", "{m}");
    assert_eq!(h.stats.load().unknown_data_type, 2);
}

/// The client gets one `error` naming `field`, then close 1008 `subscription limit`.
fn assert_limit_close(ws: &mut util::Ws, field: &str) {
    let (code, reason, texts) = close_of(ws);
    assert_eq!((code, reason.as_str()), (1008, "subscription limit"));
    assert_eq!(texts.len(), 1, "{texts:?}");
    assert_eq!(texts[0]["type"], "error");
    let details = texts[0]["details"].as_str().unwrap();
    assert!(details.contains(field), "{details}");
}

#[test]
fn snapshot_capacity_over_all_clients_is_capped() {
    // two clients of 3 distinct depth-100 series each, 500 levels in all: the second is refused
    let h = limited(|c| c.max_snapshot_levels = 500);
    let a_types: Vec<String> = (1..=3).map(|n| format!("book_snapshot_100_{n}s")).collect();
    let b_types: Vec<String> = (4..=6).map(|n| format!("book_snapshot_100_{n}s")).collect();
    let options =
        |t: &[String]| json!({"exchange":"binance-futures","symbols":["BTCUSDT"],"dataTypes":t});
    let mut a = connect(h.addr, &options(&a_types));
    h.sessions(1);
    // the same series again share what exists: served
    let mut again = connect(h.addr, &options(&a_types));
    h.sessions(2);
    let mut b = connect(h.addr, &options(&b_types));
    assert_limit_close(&mut b, "server.max_snapshot_levels");
    a.close(None).unwrap();
    again.close(None).unwrap();
}

/// Issue 9 item 4: due timer series were refreshed and encoded for clients that were all
/// conflating, then dropped: three non-reading clients kept the fan-out thread at 100 %.
/// Now such a series is neither refreshed nor encoded (counted), and a reading client of
/// another series still gets every snapshot.
#[test]
fn timer_snapshots_for_conflating_clients_are_not_encoded() {
    let mut h = limited(|c| {
        c.send_buffer_soft_bytes = 16 << 10;
        c.send_buffer_hard_bytes = 64 << 20;
        c.max_clients = 64;
    });
    let prices: Vec<(String, String)> = (0..1000)
        .map(|i| (format!("{}", 10_000 - i), format!("{}", 10_001 + i)))
        .collect();
    let mut levels = Vec::new();
    for (b, a) in &prices {
        levels.push((Bid, b.as_str(), "1.5"));
        levels.push((Ask, a.as_str(), "2.5"));
    }
    h.push(book(BTC, true, &levels, T0_MS));
    // a client that never reads, on a 10 ms depth-1000 timer series
    let _stuck = connect(
        h.addr,
        &json!({"exchange":"binance-futures","symbols":["BTCUSDT"],
            "dataTypes":["book_snapshot_1000_10ms"],"timerSnapshots":true}),
    );
    h.sessions(1);
    let c = h.wait("skipping", |c| c.timer_snapshots_skipped >= 20);
    assert!(c.conflations >= 20, "{c:?}");
    // a reading client on its own series is served on time
    let mut reader = connect(
        h.addr,
        &json!({"exchange":"binance-futures","symbols":["BTCUSDT"],
            "dataTypes":["quote_100ms"],"timerSnapshots":true}),
    );
    for _ in 0..4 {
        let q = next(&mut reader);
        assert_eq!(q["name"], json!("quote_100ms"));
        assert_eq!(q["bids"], json!([{"price":10000,"amount":1.5}]));
    }
}

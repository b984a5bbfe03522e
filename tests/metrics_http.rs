//! The `/metrics` server under hostile connections (issue 9 items 1 and 6): a head over the
//! limit gets 431 after at most `max_request_bytes`, a connection over the limit closes the
//! oldest idle one, idle and slow connections are closed at the request timeout, and one
//! thread serves them all.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use pinfeed::metrics::{HttpLimits, MetricsServer, Sources};
use pinfeed::pipeline::RunStats;

fn server(limits: HttpLimits) -> MetricsServer {
    let sources = Sources {
        run: Arc::new(RunStats::default()),
        fanout: None,
        latency: None,
        replay: None,
    };
    MetricsServer::start_with("127.0.0.1:0".parse().unwrap(), sources, limits).unwrap()
}

/// Sends `request`, reads to the end: status (0: no answer) and the whole text.
fn http(addr: SocketAddr, request: &[u8]) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let _ = s.write_all(request);
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    let text = String::from_utf8_lossy(&buf).to_string();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, text)
}

const SCRAPE: &[u8] = b"GET /metrics HTTP/1.1\r\nHost: pinfeed\r\n\r\n";

fn counter(text: &str, outcome: &str) -> u64 {
    let key = format!("pinfeed_metrics_http_total{{outcome=\"{outcome}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(key.as_str()))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {key} in the scrape"))
}

/// Threads of this process named like the `/metrics` server's (the other tests of this
/// binary start threads of their own at the same time).
fn threads() -> usize {
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(Result::ok)
        .filter(|t| {
            std::fs::read_to_string(t.path().join("comm")).is_ok_and(|c| c.starts_with("metrics"))
        })
        .count()
}

#[test]
fn an_endless_header_gets_431_without_being_buffered() {
    let m = server(HttpLimits::default());
    let mut s = TcpStream::connect(m.local_addr()).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\nX-Big: ").unwrap();
    // 64 MiB offered; the server answers after 8 KiB and stops reading
    let chunk = vec![b'a'; 64 << 10];
    let mut sent = 0usize;
    s.set_write_timeout(Some(Duration::from_secs(2))).unwrap();
    while sent < 64 << 20 {
        match s.write(&chunk) {
            Ok(n) => sent += n,
            Err(_) => break,
        }
    }
    assert!(sent < 64 << 20, "the server kept reading: {sent} bytes");
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    let text = String::from_utf8_lossy(&buf);
    assert!(text.starts_with("HTTP/1.1 431"), "{text:?}");
    let (status, text) = http(m.local_addr(), SCRAPE);
    assert_eq!(status, 200);
    assert_eq!(counter(&text, "too_large"), 1);
}

#[test]
fn idle_connections_are_capped_and_timed_out_on_one_thread() {
    let limits = HttpLimits {
        max_connections: 16,
        request_timeout: Duration::from_millis(500),
        ..HttpLimits::default()
    };
    let m = server(limits);
    let before = threads();
    // 300 slow connections (tiny_http: 300 threads, never timed out)
    let mut idle = Vec::new();
    for _ in 0..300 {
        let mut s = TcpStream::connect(m.local_addr()).unwrap();
        let _ = s.write_all(b"GE");
        idle.push(s);
    }
    std::thread::sleep(Duration::from_millis(100));
    // the two other tests of this binary may start a server each meanwhile
    assert!(
        threads() <= before + 2,
        "{} threads, {before} before",
        threads()
    );
    // a scrape is served at once: it takes the place of the oldest idle connection
    let (status, text) = http(m.local_addr(), SCRAPE);
    assert_eq!(status, 200);
    // past the cap, each idle connection was evicted, or (a loaded machine accepting slowly)
    // timed out first
    let gone = |t: &str| counter(t, "evicted") + counter(t, "timeout");
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    let mut text = text;
    while gone(&text) < 300 - 16 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
        text = http(m.local_addr(), SCRAPE).1;
    }
    assert!(counter(&text, "evicted") > 0, "{text}");
    assert!(gone(&text) >= 300 - 16, "{text}");
    // the idle ones left are closed at the request timeout
    std::thread::sleep(Duration::from_millis(800));
    let (_, text) = http(m.local_addr(), SCRAPE);
    assert!(counter(&text, "timeout") >= 15, "{text}");
    // every idle connection was closed by the server: end of stream or reset, no timeout
    for s in &mut idle {
        s.set_read_timeout(Some(Duration::from_millis(500)))
            .unwrap();
        let mut buf = [0u8; 256];
        match s.read(&mut buf) {
            Ok(0) => {}
            Ok(n) => panic!("{n} bytes for an idle connection"),
            Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset, "{e}"),
        }
    }
}

#[test]
fn malformed_requests_get_400_404_405() {
    let m = server(HttpLimits::default());
    let a = m.local_addr();
    assert_eq!(http(a, b"garbage\r\n\r\n").0, 400);
    assert_eq!(http(a, b"\x16\x03\x01\x00\xff\xfe\r\n\r\n").0, 400);
    assert_eq!(http(a, b"GET /nope HTTP/1.1\r\n\r\n").0, 404);
    assert_eq!(http(a, b"POST /metrics HTTP/1.1\r\n\r\n").0, 405);
    let (status, head) = http(a, b"HEAD /metrics HTTP/1.1\r\n\r\n");
    assert_eq!(status, 200);
    assert!(head.ends_with("\r\n\r\n"), "HEAD has no body: {head:?}");
    let (_, text) = http(a, SCRAPE);
    assert_eq!(counter(&text, "malformed"), 2);
}

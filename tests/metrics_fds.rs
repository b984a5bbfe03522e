//! Issue 9 item 1: with the file-descriptor table full, a connection to `/metrics` aborted the
//! engine (tiny_http unwraps `try_clone`; `panic = "abort"`). Now the failed `accept` is
//! counted and the server serves again once descriptors are free. Its own test binary: it
//! lowers this process's `RLIMIT_NOFILE`.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

use pinfeed::limits::{fd_limit, raise_fd_limit};
use pinfeed::metrics::{MetricsServer, Sources};
use pinfeed::pipeline::RunStats;

#[test]
fn exhausted_fds_do_not_kill_the_metrics_server() {
    let sources = Sources {
        run: Arc::new(RunStats::default()),
        fanout: None,
        latency: None,
        replay: None,
    };
    let m = MetricsServer::start("127.0.0.1:0".parse().unwrap(), sources).unwrap();
    let addr = m.local_addr();
    let open = std::fs::read_dir("/proc/self/fd").unwrap().count() as u64;
    let limit = fd_limit().unwrap();
    raise_fd_limit(open + 40, limit.hard).unwrap();
    // fill the table: each connection costs this side one fd and the server one
    let mut held = Vec::new();
    while let Ok(s) = TcpStream::connect(addr) {
        held.push(s);
        if held.len() > 200 {
            break;
        }
    }
    assert!(held.len() < 200, "the limit did not bite");
    // the server's accepts now fail for lack of fds; give it turns to try
    std::thread::sleep(Duration::from_millis(500));
    drop(held);
    raise_fd_limit(limit.soft, limit.hard).unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    let text = loop {
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s.write_all(b"GET /metrics HTTP/1.1\r\n\r\n").unwrap();
        let mut buf = String::new();
        let _ = s.read_to_string(&mut buf);
        if buf.starts_with("HTTP/1.1 200") {
            break buf;
        }
        assert!(Instant::now() < deadline, "not served again: {buf:?}");
        std::thread::sleep(Duration::from_millis(100));
    };
    let errors: u64 = text
        .lines()
        .find_map(|l| l.strip_prefix("pinfeed_metrics_http_total{outcome=\"accept_error\"} "))
        .and_then(|v| v.parse().ok())
        .unwrap();
    assert!(
        errors > 0,
        "accept never failed: the test did not reach EMFILE"
    );
}

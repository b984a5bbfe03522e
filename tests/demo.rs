//! `pinfeed demo`, the README's first command: offline, synthetic venues and the engine in
//! one process; a client gets trades and quotes, the status line counts it and shows the
//! engine's internal latency, `/metrics` answers, ctrl-c stops it with exit 0.

mod util;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The address after `prefix` in a line, up to the next `/`.
fn addr_after(line: &str, prefix: &str) -> Option<SocketAddr> {
    let rest = &line[line.find(prefix)? + prefix.len()..];
    rest.split('/').next()?.parse().ok()
}

#[test]
fn demo_serves_clients_and_reports_status() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_pinfeed"))
        .args([
            "demo",
            "--listen",
            "127.0.0.1:0",
            "--metrics-listen",
            "127.0.0.1:0",
            "--rate",
            "3000",
            // a cap: the test stops it with SIGINT (ctrl-c) once it has seen what it needs
            "--duration",
            "120",
        ])
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut lines = Vec::new();
    let (mut clients_addr, mut metrics_addr) = (None, None);
    let deadline = Instant::now() + Duration::from_secs(20);
    while (clients_addr.is_none() || metrics_addr.is_none()) && Instant::now() < deadline {
        let Ok(line) = rx.recv_timeout(Duration::from_secs(1)) else {
            continue;
        };
        clients_addr = clients_addr.or_else(|| addr_after(&line, "clients on ws://"));
        metrics_addr = metrics_addr.or_else(|| addr_after(&line, "metrics on http://"));
        lines.push(line);
    }
    let clients_addr = clients_addr.unwrap_or_else(|| panic!("no client address in {lines:#?}"));
    let metrics_addr = metrics_addr.unwrap_or_else(|| panic!("no metrics address in {lines:#?}"));

    // a client of one instrument gets its trades and quotes
    let mut ws = util::connect(
        clients_addr,
        &serde_json::json!({"exchange":"binance-futures","symbols":["BTCUSDT"],
            "dataTypes":["trade","quote"]}),
    );
    let (mut trades, mut quotes) = (0, 0);
    while trades < 3 || quotes < 3 {
        let m = util::next(&mut ws);
        assert_eq!(m["symbol"], "BTCUSDT", "{m}");
        // tardis-machine sends a quote as a depth-1 book_snapshot named `quote`
        match (m["type"].as_str(), m["name"].as_str()) {
            (Some("trade"), _) => trades += 1,
            (Some("book_snapshot"), Some("quote")) => {
                let (bid, ask) = (
                    m["bids"][0]["price"].as_f64(),
                    m["asks"][0]["price"].as_f64(),
                );
                assert!(bid.unwrap() < ask.unwrap(), "crossed quote {m}");
                quotes += 1;
            }
            _ => panic!("unexpected {m}"),
        }
    }

    // /metrics answers in Prometheus text
    let mut s = TcpStream::connect(metrics_addr).unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut body = String::new();
    s.read_to_string(&mut body).unwrap();
    assert!(body.starts_with("HTTP/1.1 200"), "{body}");
    assert!(body.contains("pinfeed_clients 1"), "{body}");

    // a status line that sees the client, its messages and their latency
    let mut seen = None;
    while seen.is_none() {
        let line = rx
            .recv_timeout(Duration::from_secs(30))
            .unwrap_or_else(|_| panic!("no status line with the client in {lines:#?}"));
        if line.starts_with("demo: ") && line.contains("clients 1 ") && line.contains("p99") {
            seen = Some(line.clone());
        }
        lines.push(line);
    }
    let line = seen.unwrap();
    assert!(
        line.contains("drops 0") && line.contains("gaps 0"),
        "{line}"
    );
    let in_rate: f64 = line
        .split("in ")
        .nth(1)
        .and_then(|r| r.split(' ').next())
        .and_then(|r| r.parse().ok())
        .unwrap();
    assert!(in_rate > 0.0, "{line}");
    drop(ws);

    // ctrl-c: the demo stops cleanly, prints its totals and exits 0
    let pid = libc::pid_t::try_from(child.id()).unwrap();
    // SAFETY: kill(2) with a child's pid and a valid signal number has no memory effects.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGINT) }, 0);
    let status = child.wait().unwrap();
    assert!(status.success(), "{status:?}");
    let last: Vec<String> = rx.iter().collect();
    let totals = last
        .iter()
        .find(|l| l.starts_with("pinfeed demo: ") && l.contains("frames in"))
        .unwrap_or_else(|| panic!("no totals in {last:#?}"));
    assert!(totals.contains(" 0 drops, 0 gaps"), "{totals}");
}

#[test]
fn a_taken_client_port_is_a_clear_error() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_pinfeed"))
        .args(["demo", "--metrics-listen", "off", "--listen"])
        .arg(taken.local_addr().unwrap().to_string())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(e.contains(&taken.local_addr().unwrap().to_string()), "{e}");
}

/// Issue 9 item 7: SIGTERM (systemd, Docker, Kubernetes) stops the engine like ctrl-c: clients
/// get a close frame, the process exits 0 (it used to die at once with 143).
#[test]
fn sigterm_stops_like_ctrl_c() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_pinfeed"))
        .args(["demo", "--listen", "127.0.0.1:0", "--metrics-listen", "off"])
        .args(["--rate", "1000", "--duration", "60"])
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let stderr = BufReader::new(child.stderr.take().unwrap());
    let mut lines = stderr.lines().map_while(Result::ok);
    let addr = lines
        .by_ref()
        .find_map(|l| addr_after(&l, "clients on ws://"))
        .expect("no client address");
    let mut ws = util::connect(
        addr,
        &serde_json::json!({"exchange":"binance-futures","symbols":["BTCUSDT"],
            "dataTypes":["trade"]}),
    );
    util::next(&mut ws);
    // keep draining stderr (a closed pipe would fail the demo's last lines)
    let rest = std::thread::spawn(move || lines.collect::<Vec<String>>());
    let pid = libc::pid_t::try_from(child.id()).unwrap();
    // SAFETY: kill(2) with a child's pid and a valid signal number has no memory effects.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    let close = loop {
        match ws.read() {
            Ok(tungstenite::Message::Close(frame)) => break frame,
            Ok(_) => {}
            Err(e) => panic!("no close frame: {e}"),
        }
    };
    assert_eq!(close.map(|f| u16::from(f.code)), Some(1001));
    let status = child.wait().unwrap();
    assert!(status.success(), "{status:?}");
    let rest = rest.join().unwrap();
    assert!(
        rest.iter().any(|l| l.contains("frames in")),
        "no totals: {rest:#?}"
    );
}

/// Runs the binary with `RLIMIT_NOFILE` soft 256, hard 1024.
fn with_fd_limit_1024(args: &[&str]) -> Command {
    use std::os::unix::process::CommandExt;
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_pinfeed"));
    cmd.args(args);
    // SAFETY: setrlimit is async-signal-safe; the closure touches no shared state.
    unsafe {
        cmd.pre_exec(|| {
            let r = libc::rlimit {
                rlim_cur: 256,
                rlim_max: 1024,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &r) == 0 {
                Ok(())
            } else {
                Err(std::io::Error::last_os_error())
            }
        });
    }
    cmd
}

/// Issue 9 item 1: a soft `RLIMIT_NOFILE` is raised to the hard one at start, and a hard limit
/// that cannot cover `max_clients` (4096 by default) plus the engine's own needs refuses to
/// start, naming the numbers.
#[test]
fn a_file_descriptor_limit_below_max_clients_refuses_to_start() {
    let dir = std::env::temp_dir().join(format!("pinfeed-fd-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("run.toml");
    std::fs::write(
        &config,
        "[server]\nlisten = \"127.0.0.1:0\"\n[cpu]\npin = false\n\
         [[venue]]\nfeed = \"bybit-linear\"\nws_url = \"ws://127.0.0.1:9/v5/public/linear\"\n\
         symbols = [\"BTCUSDT\"]\n",
    )
    .unwrap();
    let out = with_fd_limit_1024(&["run", "--metrics-listen", "off", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(e.contains("server.max_clients"), "{e}");
    assert!(
        e.contains("allows 1024 (hard limit 1024)"),
        "raised to the hard limit: {e}"
    );
}

/// The quick start still starts there: the demo serves fewer clients instead.
#[test]
fn the_demo_fits_max_clients_to_a_low_file_descriptor_limit() {
    let out = with_fd_limit_1024(&[
        "demo",
        "--listen",
        "127.0.0.1:0",
        "--metrics-listen",
        "off",
        "--duration",
        "1",
    ])
    .output()
    .unwrap();
    assert!(out.status.success(), "{out:?}");
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(e.contains("max_clients lowered to 880"), "{e}");
}

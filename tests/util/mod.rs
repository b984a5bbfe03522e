//! Helpers shared by the integration tests: WebSocket clients of pinfeed's tardis-machine
//! endpoint, and the recordings.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use tungstenite::{Message, WebSocket};

use pinfeed::sim::recording::Recording;

/// A blocking client connection.
pub type Ws = WebSocket<TcpStream>;

pub use pinfeed::bench::encode_component;

/// Opens `ws://addr{path_and_query}`; reads time out after 5 s.
pub fn connect_url(addr: SocketAddr, path_and_query: &str) -> Ws {
    let stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let url = format!("ws://{addr}{path_and_query}");
    let (ws, response) = tungstenite::client(url, stream).expect("handshake");
    assert_eq!(response.status(), 101);
    ws
}

/// Opens `/ws-stream-normalized` with `options`.
pub fn connect(addr: SocketAddr, options: &Value) -> Ws {
    connect_url(
        addr,
        &format!(
            "/ws-stream-normalized?options={}",
            encode_component(&options.to_string())
        ),
    )
}

/// The next text message as JSON (answering pings as tungstenite does); panics on close.
pub fn next(ws: &mut Ws) -> Value {
    loop {
        match ws.read().expect("read") {
            Message::Text(t) => return serde_json::from_str(t.as_str()).unwrap(),
            Message::Close(c) => panic!("closed: {c:?}"),
            _ => {}
        }
    }
}

/// Every bundled recording, sorted by file name.
pub fn recording_paths() -> Vec<PathBuf> {
    pinfeed::sim::recording::bundled_recordings().unwrap()
}

/// Every bundled recording, read.
pub fn recordings() -> Vec<Recording> {
    recording_paths()
        .iter()
        .map(|p| Recording::open(p).unwrap())
        .collect()
}

/// The engine process; killed if the test fails before stopping it.
pub struct Engine {
    /// The process.
    pub child: Child,
    /// Its stderr lines so far.
    pub stderr: Arc<Mutex<Vec<String>>>,
}

impl Drop for Engine {
    fn drop(&mut self) {
        let _ = self.child.kill();
    }
}

/// Starts `pinfeed run --no-pin` on `config` with `shards` fan-out shards and a free metrics
/// port; returns once it serves, with its client address.
pub fn start_engine(config: &Path, shards: usize) -> (Engine, SocketAddr) {
    let cores: Vec<String> = (0..shards).map(|c| c.to_string()).collect();
    let mut child = Command::new(env!("CARGO_BIN_EXE_pinfeed"))
        .args([
            "run",
            "--no-pin",
            "--metrics-listen",
            "127.0.0.1:0",
            "--cpu-fanout",
            &cores.join(","),
            "--config",
        ])
        .arg(config)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let lines = Arc::new(Mutex::new(Vec::new()));
    let (tx, rx) = std::sync::mpsc::channel();
    let sink = lines.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(rest) = line.strip_prefix("pinfeed: serving ws://") {
                let addr = rest.split('/').next().unwrap().to_string();
                let _ = tx.send(addr);
            }
            sink.lock().unwrap().push(line);
        }
    });
    let addr = rx
        .recv_timeout(Duration::from_secs(20))
        .unwrap_or_else(|_| panic!("engine did not start: {:?}", lines.lock().unwrap()));
    (
        Engine {
            child,
            stderr: lines,
        },
        addr.parse().unwrap(),
    )
}

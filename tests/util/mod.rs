//! Helpers shared by the integration tests: WebSocket clients of pinfeed's tardis-machine
//! endpoint, and the recordings.

#![allow(dead_code)]

use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
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

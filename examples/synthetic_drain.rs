//! Drains one feed of a synthetic simulator as fast as it can and prints the frames/s it
//! received and the end-to-end latency (receive wall clock minus trade id) percentiles.
//!
//! `pinfeed simulate --synthetic --rate R --listen ADDR &` then
//! `cargo run --release --example synthetic_drain -- ADDR [SECONDS]`.

use std::net::TcpStream;
use std::time::{Duration, Instant};

use tungstenite::Message;

fn main() {
    let mut args = std::env::args().skip(1);
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:9000".into());
    let secs: f64 = args.next().and_then(|s| s.parse().ok()).unwrap_or(3.0);
    let streams = "btcusdt@depth@100ms/btcusdt@aggTrade/btcusdt@bookTicker/btcusdt@markPrice@1s/\
                   btcusdt@forceOrder/ethusdt@depth@100ms/ethusdt@aggTrade/ethusdt@bookTicker";
    let url = format!("ws://{addr}/binance-futures/stream?streams={streams}");
    let stream = TcpStream::connect(&addr).expect("connect");
    stream.set_nodelay(true).unwrap();
    let (mut ws, _) = tungstenite::client(url, stream).expect("handshake");
    let (mut frames, mut bytes) = (0u64, 0u64);
    let mut latencies_us: Vec<i64> = Vec::with_capacity(1 << 20);
    let start = Instant::now();
    let end = start + Duration::from_secs_f64(secs);
    while Instant::now() < end {
        let Ok(Message::Text(t)) = ws.read() else {
            continue;
        };
        let now = pinfeed::clock::wall_ns();
        frames += 1;
        bytes += t.len() as u64;
        if let Some(i) = t.find("\"a\":") {
            let id: String = t[i + 4..]
                .chars()
                .take_while(char::is_ascii_digit)
                .collect();
            if let Ok(id) = id.parse::<i64>() {
                latencies_us.push((now - id) / 1000);
            }
        }
    }
    let el = start.elapsed().as_secs_f64();
    latencies_us.sort_unstable();
    let p = |q: f64| {
        latencies_us
            .get(((latencies_us.len() as f64 - 1.0) * q) as usize)
            .copied()
            .unwrap_or(-1)
    };
    println!(
        "{frames} frames in {el:.2} s: {:.0} frames/s, {:.1} MB/s; trade e2e us p50 {} p99 {} max {}",
        frames as f64 / el,
        bytes as f64 / el / 1e6,
        p(0.5),
        p(0.99),
        p(1.0)
    );
}

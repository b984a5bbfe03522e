//! The trade lane and fan-out shards over the wire, on the synthetic simulator (issue 8):
//! a trade client receives every trade the engine published, once, in order, with `seq`
//! contiguous, while a `book_change` client on the same shard that does not read is
//! conflated; and with two shards every client on either shard receives the same trades.

mod util;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tungstenite::Message;

use pinfeed::config::Config;
use pinfeed::run::{RunHandle, RunOptions, start};
use pinfeed::sim::server::{SimOptions, Simulator};
use pinfeed::sim::synthetic::{Burst, SyntheticOptions};

fn simulator(listen: SocketAddr, rate_per_s: f64, burst: Option<Burst>) -> Simulator {
    Simulator::start(SimOptions {
        recordings: Vec::new(),
        listen,
        tls: false,
        speed: 1.0,
        looped: false,
        ca_key: None,
        synthetic: Some(SyntheticOptions {
            rate_per_s,
            burst,
            seed: 8,
            ..SyntheticOptions::default()
        }),
        faults: Vec::new(),
    })
    .unwrap()
}

/// The engine on the simulator's config with `shards` fan-out shards and a small soft
/// limit, so a client that does not read is conflated quickly. The simulator is stopped
/// first and its address returned: the test restarts it once its clients listen, so that
/// they see every trade the engine publishes.
fn engine(sim: Simulator, shards: usize) -> (RunHandle, SocketAddr) {
    let mut config = Config::parse(&sim.config_toml(None)).unwrap();
    let sim_addr = sim.addr();
    drop(sim);
    config.server.listen = "127.0.0.1:0".parse().unwrap();
    config.server.send_buffer_soft_bytes = 64 << 10;
    config.server.send_buffer_hard_bytes = 256 << 20;
    config.cpu.pin = false;
    config.cpu.fanout = (0..shards).collect();
    let handle = start(
        &config,
        RunOptions {
            status_interval: None,
            ..RunOptions::default()
        },
    )
    .unwrap();
    (handle, sim_addr)
}

fn any_port() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

/// Every exchange the engine serves, all symbols, `types`.
fn all(handle: &RunHandle, types: &[&str]) -> Value {
    let mut exchanges: Vec<&str> = handle.instruments.iter().map(|(_, e, _)| e.id()).collect();
    exchanges.sort_unstable();
    exchanges.dedup();
    Value::Array(
        exchanges
            .iter()
            .map(|e| json!({"exchange": e, "dataTypes": types, "withSeq": true}))
            .collect(),
    )
}

/// What a reading client saw.
#[derive(Default)]
struct Seen {
    /// Trade ids per (exchange, symbol), in arrival order.
    trades: BTreeMap<(String, String), Vec<i64>>,
    /// `book_change` exchange timestamps per (exchange, symbol), in arrival order.
    changes: BTreeMap<(String, String), Vec<String>>,
    last_seq: u64,
    seq_gaps: u64,
}

impl Seen {
    fn take(&mut self, m: &Value) {
        let seq = m["seq"].as_u64().unwrap_or(0);
        if seq != self.last_seq + 1 {
            self.seq_gaps += 1;
        }
        self.last_seq = seq;
        let key = (
            m["exchange"].as_str().unwrap_or("").to_string(),
            m["symbol"].as_str().unwrap_or("").to_string(),
        );
        match m["type"].as_str() {
            Some("trade") => {
                let id = m["id"].as_str().and_then(|s| s.parse().ok()).unwrap_or(-1);
                self.trades.entry(key).or_default().push(id);
            }
            Some("book_change") if m["isSnapshot"] == json!(false) => {
                let ts = m["timestamp"].as_str().unwrap_or("").to_string();
                self.changes.entry(key).or_default().push(ts);
            }
            _ => {}
        }
    }

    fn trade_count(&self) -> usize {
        self.trades.values().map(Vec::len).sum()
    }
}

/// A client reading on its own thread until `stop`.
fn reader(addr: SocketAddr, options: Value, stop: Arc<AtomicBool>) -> Arc<Mutex<Seen>> {
    let seen = Arc::new(Mutex::new(Seen::default()));
    let out = seen.clone();
    let mut ws = util::connect(addr, &options);
    ws.get_mut()
        .set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    std::thread::spawn(move || {
        while !stop.load(Ordering::Relaxed) {
            match ws.read() {
                Ok(Message::Text(t)) => {
                    let m: Value = serde_json::from_str(t.as_str()).unwrap();
                    out.lock().unwrap().take(&m);
                }
                Ok(Message::Close(_)) => return,
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
    seen
}

/// Waits until the engine published trades and every reader saw all of them (the simulator
/// stopped, so the count is final), at most 30 s.
fn wait_all_trades(handle: &RunHandle, readers: &[Arc<Mutex<Seen>>]) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut settled = 0;
    loop {
        let published = handle.stats.trades();
        let all = readers
            .iter()
            .all(|r| r.lock().unwrap().trade_count() as u64 == published);
        // the count holds still for 300 ms: nothing was in flight
        settled = if all && published > 0 { settled + 1 } else { 0 };
        if settled >= 3 {
            return published;
        }
        assert!(
            Instant::now() < deadline,
            "published {published}, seen {:?}",
            readers
                .iter()
                .map(|r| r.lock().unwrap().trade_count())
                .collect::<Vec<_>>()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn assert_lanes_dropped_nothing(handle: &RunHandle) {
    for q in &handle.stats.queues {
        if q.name().starts_with("lane-") {
            assert_eq!(q.dropped(), 0, "{}", q.name());
        }
    }
}

fn assert_in_order(seen: &Seen, what: &str) {
    assert_eq!(seen.seq_gaps, 0, "{what}: seq not contiguous");
    for (key, ids) in &seen.trades {
        assert!(
            ids.windows(2).all(|w| w[0] < w[1]),
            "{what}: trades of {key:?} out of order or repeated"
        );
    }
    for (key, ts) in &seen.changes {
        assert!(
            ts.windows(2).all(|w| w[0] <= w[1]),
            "{what}: book_change of {key:?} out of order"
        );
    }
}

/// Issue 8: L2 bursts must never delay or drop trades. One shard: a `book_change` client
/// that never reads is conflated (counted), and a trade client on the same shard receives
/// every trade the engine published, once, in order; a client of both trades and
/// `book_change` keeps both streams in order with contiguous `seq`.
#[test]
fn trades_arrive_whole_and_in_order_while_book_change_is_conflated() {
    let burst = Some("10x:300ms/1s".parse().unwrap());
    let (handle, sim_addr) = engine(simulator(any_port(), 6_000.0, burst), 1);
    let addr = handle.local_addr.unwrap();
    // the stuck client: a tiny receive buffer, never read
    let stuck = util::connect(addr, &all(&handle, &["book_change"]));
    socket2::SockRef::from(stuck.get_ref())
        .set_recv_buffer_size(4096)
        .unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let trades = reader(addr, all(&handle, &["trade"]), stop.clone());
    let both = reader(
        addr,
        json!([{"exchange":"okex","dataTypes":["trade","book_change"],"withSeq":true}]),
        stop.clone(),
    );
    let sim = simulator(sim_addr, 6_000.0, burst);
    let deadline = Instant::now() + Duration::from_secs(30);
    while handle.fanout_stats.as_ref().unwrap().load().conflations < 100 {
        assert!(
            Instant::now() < deadline,
            "the stuck client was never conflated"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_secs(1));
    drop(sim);
    let published = wait_all_trades(&handle, std::slice::from_ref(&trades));
    stop.store(true, Ordering::Relaxed);
    let c = handle.fanout_stats.as_ref().unwrap().load();
    assert!(c.lane_msgs as usize >= published as usize, "{c:?}");
    assert!(c.conflations >= 100 && c.slow_client_closes == 0, "{c:?}");
    let trades = trades.lock().unwrap();
    assert!(published > 100, "{published} trades");
    assert_in_order(&trades, "trade client");
    let both = both.lock().unwrap();
    assert_in_order(&both, "trade and book_change client");
    assert!(!both.changes.is_empty() && !both.trades.is_empty());
    assert_lanes_dropped_nothing(&handle);
    drop(stuck);
    handle.stop();
}

/// Two shards: the kernel spreads 16 clients over both (SO_REUSEPORT), and every client, on
/// either shard, receives the same trades, once, in order.
#[test]
fn two_shards_serve_every_client_the_same_trades() {
    let (handle, sim_addr) = engine(simulator(any_port(), 4_000.0, None), 2);
    let addr = handle.local_addr.unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let readers: Vec<_> = (0..16)
        .map(|_| {
            reader(
                addr,
                all(&handle, &["trade", "book_snapshot_5_0ms"]),
                stop.clone(),
            )
        })
        .collect();
    let stats = handle.fanout_stats.clone().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while stats.load().sessions < 16 {
        assert!(Instant::now() < deadline, "{:?}", stats.load());
        std::thread::sleep(Duration::from_millis(20));
    }
    let per_shard: Vec<u64> = stats.per_shard().iter().map(|c| c.clients).collect();
    assert_eq!(per_shard.len(), 2);
    assert!(per_shard.iter().all(|&n| n > 0), "{per_shard:?}");
    let sim = simulator(sim_addr, 4_000.0, None);
    std::thread::sleep(Duration::from_secs(3));
    drop(sim);
    wait_all_trades(&handle, &readers);
    stop.store(true, Ordering::Relaxed);
    let first = readers[0].lock().unwrap().trades.clone();
    for r in &readers {
        let r = r.lock().unwrap();
        assert_in_order(&r, "client");
        assert_eq!(r.trades, first, "clients of different shards differ");
    }
    assert_lanes_dropped_nothing(&handle);
    handle.stop();
}

//! The fan-out server end to end on 127.0.0.1: a `Server` on port 0 fed synthetic
//! `FanoutMsg`s through an rtrb ring, tungstenite clients, and the outcome PROTOCOL.md defines
//! for every request, good or bad. Every wait is bounded.

mod util;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};
use util::{Ws, connect, connect_url, encode_component, next};

use pinfeed::book::TickerState;
use pinfeed::config::ServerConfig;
use pinfeed::fanout::{
    BadRequest, FanoutCounters, FanoutMsg, FanoutStats, Notifier, Server, StopHandle, Tuning,
};
use pinfeed::model::{
    BookBegin, BookEnd, BookSide, Decimal, DerivativeTicker, Event, Exchange, InstrumentId,
    Instruments, Level, Liquidation, Sequence, ShortId, Side, Stamps, Trade,
};
use serde_json::{Value, json};
use tungstenite::Message;
use tungstenite::protocol::frame::coding::CloseCode;

/// Counts heap allocations made on the fan-out thread of the one harness being watched (tests
/// run in parallel, each with its own fan-out thread: only the watched one counts).
struct CountingAlloc;

thread_local! {
    /// The listen port of the harness whose fan-out thread this is; 0 on other threads.
    static COUNTED: std::cell::Cell<u16> = const { std::cell::Cell::new(0) };
}
static FANOUT_ALLOCS: AtomicU64 = AtomicU64::new(0);
/// Listen port of the harness whose fan-out thread is counted; 0: none.
static WATCHED_PORT: std::sync::atomic::AtomicU16 = std::sync::atomic::AtomicU16::new(0);

fn counted_thread() -> bool {
    let port = COUNTED.try_with(|c| c.get()).unwrap_or(0);
    port != 0 && port == WATCHED_PORT.load(Ordering::Relaxed)
}

// SAFETY: forwards to the system allocator unchanged; the counter has no effect on memory.
unsafe impl std::alloc::GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: std::alloc::Layout) -> *mut u8 {
        if counted_thread() {
            FANOUT_ALLOCS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: same contract as ours.
        unsafe { std::alloc::System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: std::alloc::Layout) {
        // SAFETY: same contract as ours.
        unsafe { std::alloc::System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: std::alloc::Layout, new_size: usize) -> *mut u8 {
        if counted_thread() {
            FANOUT_ALLOCS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: same contract as ours.
        unsafe { std::alloc::System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

const BTC: InstrumentId = InstrumentId(0); // binance-futures BTCUSDT
const ETH: InstrumentId = InstrumentId(1); // binance-futures ETHUSDT
const SPOT: InstrumentId = InstrumentId(2); // binance BTCUSDT
const PERP: InstrumentId = InstrumentId(3); // deribit BTC-PERPETUAL

/// 2024-01-01T00:00:00Z
const T0_MS: i64 = 1_704_067_200_000;

fn instruments() -> Instruments {
    let mut i = Instruments::new();
    assert_eq!(i.intern(Exchange::BinanceFutures, "BTCUSDT"), BTC);
    assert_eq!(i.intern(Exchange::BinanceFutures, "ETHUSDT"), ETH);
    assert_eq!(i.intern(Exchange::Binance, "BTCUSDT"), SPOT);
    assert_eq!(i.intern(Exchange::Deribit, "BTC-PERPETUAL"), PERP);
    i
}

fn d(s: &str) -> Decimal {
    Decimal::parse(s.as_bytes()).unwrap()
}

fn stamps(ms: i64) -> Stamps {
    Stamps {
        exch_ts_ns: ms * 1_000_000,
        recv_ts_ns: (ms + 5) * 1_000_000,
        recv_mono_ns: 77,
        push_delta_ns: 0,
        applied_delta_ns: 0,
    }
}

fn trade(id: InstrumentId, n: u64) -> FanoutMsg {
    FanoutMsg::Event(Event::Trade(Trade {
        instrument: id,
        id: Some(ShortId::from_u64(n)),
        price: Decimal::new(4_200_000 + n as i64, 2),
        qty: d("0.5"),
        side: if n % 2 == 0 { Side::Buy } else { Side::Sell },
        stamps: stamps(T0_MS + n as i64),
    }))
}

/// A book message: begin, levels `(side, price, qty)`, end.
fn book(
    id: InstrumentId,
    snapshot: bool,
    levels: &[(BookSide, &str, &str)],
    ms: i64,
) -> Vec<FanoutMsg> {
    let mut v = vec![FanoutMsg::Event(Event::BookBegin(BookBegin {
        instrument: id,
        is_snapshot: snapshot,
        seq: Sequence::None,
        stamps: stamps(ms),
    }))];
    for &(side, p, q) in levels {
        v.push(FanoutMsg::Event(Event::Level(Level {
            side,
            price: d(p),
            qty: d(q),
        })));
    }
    v.push(FanoutMsg::Event(Event::BookEnd(BookEnd {
        instrument: id,
        checksum: None,
        aborted: false,
    })));
    v
}

use BookSide::{Ask, Bid};

/// How the producer wakes the loop.
enum Wake {
    Waker(Arc<mio::Waker>),
    Notifier(Notifier),
    /// Never: the loop's poll timeout alone must do.
    Nothing,
}

impl Wake {
    fn wake(&self) {
        match self {
            Wake::Waker(w) => w.wake().unwrap(),
            Wake::Notifier(n) => n.notify(),
            Wake::Nothing => {}
        }
    }
}

struct Harness {
    addr: SocketAddr,
    producer: rtrb::Producer<FanoutMsg>,
    wake: Wake,
    stop: StopHandle,
    stats: Arc<FanoutStats>,
    thread: Option<JoinHandle<std::io::Result<()>>>,
}

impl Harness {
    fn start(soft: usize, hard: usize, tuning: Tuning) -> Harness {
        Harness::start_with(soft, hard, 64, tuning, 0)
    }

    /// `wake`: 0 the waker, 1 the notifier, 2 nothing.
    fn start_with(
        soft: usize,
        hard: usize,
        max_clients: usize,
        tuning: Tuning,
        wake: u8,
    ) -> Harness {
        Harness::start_recording(soft, hard, max_clients, tuning, wake, None)
    }

    /// As [`Harness::start_with`], recording stage latency with `latency`.
    fn start_recording(
        soft: usize,
        hard: usize,
        max_clients: usize,
        tuning: Tuning,
        wake: u8,
        latency: Option<pinfeed::metrics::StageRecorder>,
    ) -> Harness {
        let cfg = ServerConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            max_clients,
            send_buffer_soft_bytes: soft,
            send_buffer_hard_bytes: hard,
        };
        let mut server = Server::bind_tuned(&cfg, Arc::new(instruments()), tuning).unwrap();
        if let Some(rec) = latency {
            server.set_latency(rec);
        }
        let (producer, consumer) = rtrb::RingBuffer::new(1 << 16);
        let addr = server.local_addr();
        let wake = match wake {
            0 => Wake::Waker(server.waker()),
            1 => Wake::Notifier(server.notifier()),
            _ => Wake::Nothing,
        };
        let stop = server.stop_handle();
        let stats = server.stats();
        let thread = thread::Builder::new()
            .name("fanout".into())
            .spawn(move || {
                COUNTED.with(|c| c.set(addr.port()));
                server.run(consumer)
            })
            .unwrap();
        Harness {
            addr,
            producer,
            wake,
            stop,
            stats,
            thread: Some(thread),
        }
    }

    fn new() -> Harness {
        Harness::start(1 << 20, 5 << 20, Tuning::default())
    }

    fn push(&mut self, msgs: impl IntoIterator<Item = FanoutMsg>) {
        let deadline = Instant::now() + Duration::from_secs(10);
        for m in msgs {
            let mut m = m;
            loop {
                match self.producer.push(m) {
                    Ok(()) => break,
                    Err(rtrb::PushError::Full(back)) => {
                        m = back;
                        self.wake.wake();
                        assert!(Instant::now() < deadline, "ring stayed full");
                        thread::sleep(Duration::from_micros(200));
                    }
                }
            }
        }
        self.wake.wake();
    }

    /// Waits (at most 10 s) until the published counters satisfy `pred`.
    fn wait(&self, what: &str, pred: impl Fn(&FanoutCounters) -> bool) -> FanoutCounters {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let c = self.stats.load();
            if pred(&c) {
                return c;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}: {c:?}"
            );
            thread::sleep(Duration::from_millis(2));
        }
    }

    fn sessions(&self, n: u64) {
        self.wait("sessions", |c| c.sessions >= n);
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        self.stop.stop();
        if let Some(t) = self.thread.take() {
            t.join().unwrap().unwrap();
        }
    }
}

/// Reads until the close frame; returns its code and reason and the texts before it.
fn close_of(ws: &mut Ws) -> (u16, String, Vec<Value>) {
    let mut texts = Vec::new();
    loop {
        match ws.read() {
            Ok(Message::Text(t)) => texts.push(serde_json::from_str(t.as_str()).unwrap()),
            Ok(Message::Close(Some(f))) => return (u16::from(f.code), f.reason.to_string(), texts),
            Ok(Message::Close(None)) => return (1005, String::new(), texts),
            Ok(_) => {}
            Err(e) => panic!("no close frame: {e}"),
        }
    }
}

/// Asserts that no text message arrives within `ms`.
fn quiet(ws: &mut Ws, ms: u64) {
    ws.get_mut()
        .set_read_timeout(Some(Duration::from_millis(ms)))
        .unwrap();
    match ws.read() {
        Ok(Message::Text(t)) => panic!("unexpected message {t}"),
        Ok(_) => {}
        Err(tungstenite::Error::Io(e))
            if matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ) => {}
        Err(e) => panic!("{e}"),
    }
    ws.get_mut()
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
}

#[test]
fn trades_arrive_once_in_order_with_contiguous_seq() {
    let mut h = Harness::new();
    let mut a = connect(
        h.addr,
        &json!([{"exchange":"binance-futures","symbols":["btcusdt","ETHUSDT"],"dataTypes":["trade"],"withSeq":true},
                {"exchange":"binance-futures","symbols":["BTCUSDT"],"dataTypes":["trade"]}]),
    );
    let mut b = connect(
        h.addr,
        &json!({"exchange":"binance-futures","symbols":["ETHUSDT"],"dataTypes":["trade"]}),
    );
    h.sessions(2);
    let n = 2000u64;
    h.push((0..n).map(|i| trade(if i % 2 == 0 { BTC } else { ETH }, i)));
    let first = next(&mut a);
    assert_eq!(
        first,
        json!({"type":"trade","symbol":"BTCUSDT","exchange":"binance-futures","id":"0","price":42000,
               "amount":0.5,"side":"buy","timestamp":"2024-01-01T00:00:00.000Z",
               "localTimestamp":"2024-01-01T00:00:00.005Z","seq":1})
    );
    for i in 1..n {
        let m = next(&mut a);
        assert_eq!(m["id"], json!(i.to_string()), "trade {i} once, in order");
        assert_eq!(m["seq"], json!(i + 1));
        assert_eq!(m["symbol"], if i % 2 == 0 { "BTCUSDT" } else { "ETHUSDT" });
    }
    for i in (1..n).step_by(2) {
        let m = next(&mut b);
        assert_eq!(m["id"], json!(i.to_string()));
        assert!(m.get("seq").is_none(), "seq only when asked");
    }
    quiet(&mut a, 100);
    let c = h.wait("messages", |c| c.messages_sent >= n + n / 2);
    assert_eq!(c.messages_sent, n + n / 2);
    assert_eq!(c.fanout_msgs, n);
    assert_eq!(c.clients, 2);
    assert!(c.bytes_sent > 0);
}

#[test]
fn book_change_starts_with_a_snapshot() {
    let mut h = Harness::new();
    // a client that connects before any book gets the upstream snapshot first
    let mut early = connect(
        h.addr,
        &json!({"exchange":"binance-futures","symbols":["BTCUSDT"],"dataTypes":["book_change"]}),
    );
    h.sessions(1);
    // a delta before the first snapshot is not forwarded (tardis ignores it)
    h.push(book(BTC, false, &[(Bid, "1", "1")], T0_MS));
    h.push(book(
        BTC,
        true,
        &[(Bid, "100.5", "1"), (Bid, "100", "2.50"), (Ask, "101", "3")],
        T0_MS + 1,
    ));
    let m = next(&mut early);
    assert_eq!(
        m,
        json!({"type":"book_change","symbol":"BTCUSDT","exchange":"binance-futures","isSnapshot":true,
               "bids":[{"price":100.5,"amount":1},{"price":100,"amount":2.5}],"asks":[{"price":101,"amount":3}],
               "timestamp":"2024-01-01T00:00:00.001Z","localTimestamp":"2024-01-01T00:00:00.006Z"})
    );
    h.push(book(
        BTC,
        false,
        &[(Ask, "101", "0"), (Ask, "102", "4")],
        T0_MS + 2,
    ));
    let m = next(&mut early);
    assert_eq!(m["isSnapshot"], json!(false));
    assert_eq!(
        m["asks"],
        json!([{"price":101,"amount":0},{"price":102,"amount":4}])
    );
    // a client that connects later gets the fan-out's book as a snapshot, then changes
    let mut late = connect(
        h.addr,
        &json!({"exchange":"binance-futures","symbols":["BTCUSDT"],"dataTypes":["book_change"]}),
    );
    let m = next(&mut late);
    assert_eq!(m["isSnapshot"], json!(true));
    assert_eq!(
        m["bids"],
        json!([{"price":100.5,"amount":1},{"price":100,"amount":2.5}])
    );
    assert_eq!(m["asks"], json!([{"price":102,"amount":4}]));
    assert_eq!(m["timestamp"], json!("2024-01-01T00:00:00.002Z"));
    h.push(book(BTC, false, &[(Bid, "100.5", "0")], T0_MS + 3));
    for ws in [&mut early, &mut late] {
        let m = next(ws);
        assert_eq!(m["isSnapshot"], json!(false));
        assert_eq!(m["bids"], json!([{"price":100.5,"amount":0}]));
    }
}

#[test]
fn snapshots_and_quotes_pad_missing_levels() {
    let mut h = Harness::new();
    let mut ws = connect(
        h.addr,
        &json!({"exchange":"deribit","symbols":["BTC-PERPETUAL"],"dataTypes":["book_snapshot_2_0ms","quote"]}),
    );
    h.sessions(1);
    h.push(book(
        PERP,
        true,
        &[
            (Bid, "60000", "10"),
            (Ask, "60000.5", "20"),
            (Ask, "60001", "30"),
        ],
        T0_MS,
    ));
    let s = next(&mut ws);
    assert_eq!(
        s,
        json!({"type":"book_snapshot","symbol":"BTC-PERPETUAL","exchange":"deribit","name":"book_snapshot_2_0ms",
               "depth":2,"interval":0,"bids":[{"price":60000,"amount":10},{}],
               "asks":[{"price":60000.5,"amount":20},{"price":60001,"amount":30}],
               "timestamp":"2024-01-01T00:00:00.000Z","localTimestamp":"2024-01-01T00:00:00.005Z"})
    );
    let q = next(&mut ws);
    assert_eq!(q["name"], json!("quote"));
    assert_eq!(q["depth"], json!(1));
    assert_eq!(q["bids"], json!([{"price":60000,"amount":10}]));
    assert_eq!(q["asks"], json!([{"price":60000.5,"amount":20}]));
    // below the top 2: nothing; the second level: the snapshot only, not the quote
    h.push(book(PERP, false, &[(Ask, "60002", "1")], T0_MS + 1));
    h.push(book(PERP, false, &[(Bid, "59999", "5")], T0_MS + 2));
    let s = next(&mut ws);
    assert_eq!(s["name"], json!("book_snapshot_2_0ms"));
    assert_eq!(
        s["bids"],
        json!([{"price":60000,"amount":10},{"price":59999,"amount":5}])
    );
    assert_eq!(s["timestamp"], json!("2024-01-01T00:00:00.002Z"));
    h.push(book(PERP, false, &[(Bid, "60000", "11")], T0_MS + 3));
    let s = next(&mut ws);
    assert_eq!(s["name"], json!("book_snapshot_2_0ms"));
    let q = next(&mut ws);
    assert_eq!(q["name"], json!("quote"));
    assert_eq!(q["bids"], json!([{"price":60000,"amount":11}]));
    quiet(&mut ws, 100);
}

#[test]
fn interval_snapshots_imbalance_latency_and_timers() {
    let mut h = Harness::new();
    let mut ws = connect(
        h.addr,
        &json!({"exchange":"deribit","symbols":["BTC-PERPETUAL"],
                "dataTypes":["book_snapshot_1_1s","imbalance_2"],"withLatency":true}),
    );
    h.sessions(1);
    let base = T0_MS + 10_000;
    h.push(book(
        PERP,
        true,
        &[(Bid, "10", "1"), (Bid, "9", "3"), (Ask, "11", "4")],
        base + 100,
    ));
    // first change: the snapshot right away, then the imbalance (3 bid / 8 total... top 2)
    let s = next(&mut ws);
    assert_eq!(s["timestamp"], json!("2024-01-01T00:00:10.100Z"));
    assert_eq!(s["bids"], json!([{"price":10,"amount":1}]));
    assert_eq!(s["recvNs"], json!(77));
    assert!(s["sentNs"].as_u64().unwrap() > 0);
    let i = next(&mut ws);
    assert_eq!(
        (
            i["type"].clone(),
            i["depth"].clone(),
            i["imbalance"].clone()
        ),
        (json!("imbalance"), json!(2), json!(50))
    );
    // same bucket: no snapshot; the imbalance follows every change of its top 2
    h.push(book(PERP, false, &[(Bid, "10", "2")], base + 500));
    let i = next(&mut ws);
    assert_eq!(i["imbalance"], json!(55.56));
    // two buckets later: the top before this change, stamped with the bucket end
    h.push(book(PERP, false, &[(Bid, "10", "5")], base + 2_300));
    let s = next(&mut ws);
    assert_eq!(s["timestamp"], json!("2024-01-01T00:00:11.000Z"));
    assert_eq!(s["bids"], json!([{"price":10,"amount":2}]));
    assert_eq!(s["localTimestamp"], json!("2024-01-01T00:00:12.305Z"));
    assert_eq!(next(&mut ws)["type"], json!("imbalance"));
    drop(ws);
    // timerSnapshots: a quote every 100 ms on a quiet book
    let mut t = connect(
        h.addr,
        &json!({"exchange":"deribit","symbols":["BTC-PERPETUAL"],"dataTypes":["quote_100ms"],"timerSnapshots":true}),
    );
    let first = next(&mut t); // the current state at subscription
    assert_eq!(first["name"], json!("quote_100ms"));
    let mut stamps = Vec::new();
    for _ in 0..3 {
        let q = next(&mut t);
        assert_eq!(q["bids"], json!([{"price":10,"amount":5}]));
        let ts = q["timestamp"].as_str().unwrap().to_string();
        assert!(ts.ends_with("00Z"), "{ts} is a 100 ms boundary");
        stamps.push(ts);
    }
    stamps.dedup();
    assert_eq!(stamps.len(), 3);
}

#[test]
fn derivative_ticker_and_liquidation() {
    let mut h = Harness::new();
    let mut ws = connect(
        h.addr,
        &json!({"exchange":"deribit","symbols":["BTC-PERPETUAL"],"dataTypes":["derivative_ticker","liquidation"]}),
    );
    h.sessions(1);
    let mut merged = DerivativeTicker {
        instrument: PERP,
        last_price: Some(d("10095.5")),
        open_interest: Some(d("66128281")),
        funding_rate: Some(d("0")),
        index_price: Some(d("10091.15")),
        mark_price: Some(d("10094.1")),
        stamps: stamps(T0_MS),
        ..Default::default()
    };
    merged.stamps.recv_ts_ns = 1_559_347_228_619_000_000;
    h.push([FanoutMsg::Ticker(
        (&TickerState {
            merged,
            max_exch_ts_ns: 1_564_617_604_229_000_000,
        })
            .into(),
    )]);
    assert_eq!(
        next(&mut ws),
        json!({"type":"derivative_ticker","symbol":"BTC-PERPETUAL","exchange":"deribit","lastPrice":10095.5,
               "openInterest":66128281,"fundingRate":0,"indexPrice":10091.15,"markPrice":10094.1,
               "timestamp":"2019-08-01T00:00:04.229Z","localTimestamp":"2019-06-01T00:00:28.619Z"})
    );
    h.push([FanoutMsg::Event(Event::Liquidation(Liquidation {
        instrument: PERP,
        id: Some(ShortId::new("66460626")),
        price: d("4458.5"),
        qty: d("2500"),
        side: Side::Sell,
        stamps: stamps(T0_MS),
    }))]);
    let l = next(&mut ws);
    assert_eq!(l["type"], json!("liquidation"));
    assert_eq!(l["id"], json!("66460626"));
    assert_eq!(l["side"], json!("sell"));
}

#[test]
fn disconnect_then_book_invalid_then_a_fresh_snapshot() {
    let mut h = Harness::new();
    h.push(book(BTC, true, &[(Bid, "1", "1"), (Ask, "2", "1")], T0_MS));
    let mut ws = connect(
        h.addr,
        &json!([{"exchange":"binance-futures","symbols":["btcusdt"],"dataTypes":["book_change","trade"],
                 "withDisconnectMessages":true,"withIntegrityMessages":true,"withSeq":true},
                {"exchange":"deribit","symbols":["BTC-PERPETUAL"],"dataTypes":["trade"]}]),
    );
    let plain = &mut connect(
        h.addr,
        &json!({"exchange":"binance-futures","symbols":["BTCUSDT"],"dataTypes":["book_change"]}),
    );
    h.sessions(2);
    assert_eq!(next(&mut ws)["isSnapshot"], json!(true));
    assert_eq!(next(plain)["isSnapshot"], json!(true));
    // an exchange the client does not follow: nothing
    h.push([FanoutMsg::Disconnect {
        exchange: Exchange::Okex,
        last_recv_ts_ns: 1,
    }]);
    h.push([FanoutMsg::Disconnect {
        exchange: Exchange::BinanceFutures,
        last_recv_ts_ns: 1_571_830_469_416_000_000,
    }]);
    assert_eq!(
        next(&mut ws),
        json!({"type":"disconnect","exchange":"binance-futures","localTimestamp":"2019-10-23T11:34:29.416Z",
               "symbols":["btcusdt"],"seq":2})
    );
    let inv = next(&mut ws);
    assert_eq!(inv["type"], json!("book_invalid"));
    assert_eq!(inv["symbol"], json!("BTCUSDT"));
    assert_eq!(inv["seq"], json!(3));
    h.push(book(
        BTC,
        true,
        &[(Bid, "3", "1"), (Ask, "4", "1")],
        T0_MS + 9,
    ));
    let snap = next(&mut ws);
    assert_eq!(snap["isSnapshot"], json!(true));
    assert_eq!(snap["bids"], json!([{"price":3,"amount":1}]));
    assert_eq!(snap["seq"], json!(4));
    // the plain tardis client sees only the new snapshot
    let m = next(plain);
    assert_eq!(m["isSnapshot"], json!(true));
    // a book that loses sync without a disconnect
    h.push([FanoutMsg::BookInvalid(BTC), FanoutMsg::BookInvalid(BTC)]);
    assert_eq!(next(&mut ws)["type"], json!("book_invalid"));
    h.push(book(BTC, false, &[(Bid, "3", "2")], T0_MS + 10)); // not applied: book invalid
    h.push(book(BTC, true, &[(Bid, "5", "1")], T0_MS + 11));
    let snap = next(&mut ws);
    assert_eq!(
        (snap["isSnapshot"].clone(), snap["seq"].clone()),
        (json!(true), json!(6))
    );
    let c = h.wait("counters", |c| c.book_invalid_sent >= 2);
    assert_eq!(c.disconnects_sent, 1);
    assert_eq!(c.book_invalid_sent, 2, "once per loss of sync");
}

#[test]
fn unknown_exchange_symbol_and_type_get_error_messages() {
    let mut h = Harness::new();
    let mut ws = connect(
        h.addr,
        &json!([{"exchange":"kraken","symbols":["XBTUSD"],"dataTypes":["trade"],"withErrorMessages":true},
                {"exchange":"binance-futures","symbols":["BTCUSDT","NOPEUSDT"],"dataTypes":["trade","foo","trade_bar_1m"],
                 "withErrorMessages":true},
                {"exchange":"binance","symbols":["btcusdt"],"dataTypes":["derivative_ticker","trade"],"withErrorMessages":true},
                {"exchange":"deribit","symbols":["NOPE"],"dataTypes":["trade"]}]),
    );
    h.sessions(1);
    let mut errors = Vec::new();
    for _ in 0..5 {
        let e = next(&mut ws);
        assert_eq!(e["type"], json!("error"));
        assert!(e["localTimestamp"].as_str().unwrap().ends_with('Z'));
        errors.push((
            e["exchange"].as_str().unwrap().to_string(),
            e["details"].as_str().unwrap().to_string(),
            e["subSequentErrorsCount"].as_u64().unwrap(),
        ));
    }
    assert_eq!(errors[0].0, "kraken");
    assert!(errors[0].1.contains("kraken"), "{errors:?}");
    assert_eq!(errors[1].0, "binance-futures");
    assert!(errors[1].1.contains("NOPEUSDT"));
    assert!(errors[2].1.contains("foo"));
    assert_eq!(errors[2].2, 2);
    assert!(errors[3].1.contains("trade_bar_1m"));
    assert_eq!(errors[3].2, 3);
    assert_eq!(
        errors[4],
        (
            "binance".into(),
            "normalizeDerivativeTickers: binance not supported".into(),
            1
        )
    );
    // the valid parts are served
    h.push([trade(SPOT, 7), trade(BTC, 8)]);
    assert_eq!(next(&mut ws)["exchange"], json!("binance"));
    assert_eq!(next(&mut ws)["exchange"], json!("binance-futures"));
    let c = h.wait("counters", |c| c.unknown_data_type >= 3);
    assert_eq!(
        (c.unknown_exchange, c.unknown_symbol, c.unknown_data_type),
        (1, 2, 3)
    );
    // without withErrorMessages: counted, nothing sent
    let mut silent = connect(
        h.addr,
        &json!({"exchange":"binance-futures","symbols":["BTCUSDT"],"dataTypes":["trade","bogus"]}),
    );
    h.sessions(2);
    h.push([trade(BTC, 9)]);
    assert_eq!(next(&mut silent)["type"], json!("trade"));
    assert_eq!(
        h.wait("counted", |c| c.unknown_data_type >= 4)
            .unknown_data_type,
        4
    );
    // nothing servable at all: tardis-machine's final 1011
    let mut none = connect(
        h.addr,
        &json!({"exchange":"kraken","dataTypes":["trade"],"withErrorMessages":true}),
    );
    let (code, reason, texts) = close_of(&mut none);
    assert_eq!(texts.len(), 1);
    assert_eq!(
        (code, reason.as_str()),
        (
            1011,
            "Too many subsequent errors when connecting to  kraken WS API"
        )
    );
    assert_eq!(
        h.wait("bad", |c| c.bad_request(BadRequest::NothingToServe) == 1)
            .sessions,
        2
    );
}

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

#[test]
fn a_stalled_handshake_is_dropped() {
    let tuning = Tuning {
        heartbeat_interval: Duration::from_millis(100),
        ..Tuning::default()
    };
    let h = Harness::start(1 << 20, 5 << 20, tuning);
    let mut s = TcpStream::connect(h.addr).unwrap();
    s.write_all(b"GET /ws-stream-normalized HTTP/1.1\r\nHost: x\r\n")
        .unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut buf = [0u8; 16];
    assert_eq!(s.read(&mut buf).unwrap(), 0, "closed without a response");
    let c = h.wait("dropped", |c| c.clients == 0);
    assert_eq!(c.heartbeat_timeouts, 1);
}

/// With stage latency recorded (per-client write stamps, hand-offs to a running exporter).
#[test]
fn the_hot_path_does_not_allocate_once_warm() {
    use pinfeed::metrics::{Exporter, LatencyConfig, Stage};
    let mut exporter = Exporter::new(LatencyConfig {
        handoff: Duration::from_millis(5),
        ..LatencyConfig::default()
    });
    let latency = exporter.latency();
    let rec = exporter.recorder(&[
        Stage::AppliedToEncoded,
        Stage::EncodedToWritten,
        Stage::ReadToWritten,
    ]);
    let exporter = exporter.spawn().unwrap();
    let mut h = Harness::start_recording(1 << 20, 5 << 20, 64, Tuning::default(), 0, rec);
    WATCHED_PORT.store(h.addr.port(), Ordering::Relaxed);
    h.push(book(
        ETH,
        true,
        &[(Bid, "100", "1"), (Bid, "99", "2"), (Ask, "101", "1")],
        T0_MS,
    ));
    let mut ws = connect(
        h.addr,
        &json!({"exchange":"binance-futures","symbols":["ETHUSDT"],
                "dataTypes":["trade","book_change","book_snapshot_2_0ms","quote","imbalance_2"],
                "withSeq":true,"withLatency":true}),
    );
    h.sessions(1);
    let round = |h: &mut Harness, ws: &mut Ws, k: u64| {
        for i in 0..200u64 {
            let n = k * 1000 + i;
            h.push([trade(ETH, n)]);
            let price = (95 + i % 5).to_string();
            let qty = (1 + i % 3).to_string();
            h.push(book(
                ETH,
                false,
                &[(Bid, &price, &qty), (Ask, "101", &qty)],
                T0_MS + n as i64,
            ));
        }
        // everything queued is read: the last trade's change closes the round
        let mut trades = 0;
        while trades < 200 {
            if next(ws)["type"] == json!("trade") {
                trades += 1;
            }
        }
    };
    round(&mut h, &mut ws, 1); // warm up: buffers reach their working sizes
    round(&mut h, &mut ws, 2);
    let before = FANOUT_ALLOCS.load(Ordering::Relaxed);
    assert!(
        before > 0,
        "the counter sees the fan-out thread (set-up allocates)"
    );
    round(&mut h, &mut ws, 3);
    round(&mut h, &mut ws, 4);
    let after = FANOUT_ALLOCS.load(Ordering::Relaxed);
    assert_eq!(after - before, 0, "allocations on the fan-out thread");
    // the stamps were taken and reached the exporter
    let deadline = Instant::now() + Duration::from_secs(5);
    while latency.snapshot().stage(Stage::ReadToWritten).count < 1600 {
        assert!(Instant::now() < deadline, "{:?}", latency.snapshot());
        thread::sleep(Duration::from_millis(10));
    }
    drop(h);
    exporter.stop();
}

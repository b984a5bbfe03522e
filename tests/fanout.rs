//! The fan-out server end to end on 127.0.0.1: a `Server` on port 0 fed synthetic
//! `FanoutMsg`s through an rtrb ring (the harness in `fanout_util`), tungstenite clients, and
//! what each data type delivers; requests tardis-machine would refuse and the limits are in
//! `fanout_limits.rs`. Every wait is bounded. The hot path's no-allocation check lives here,
//! with the counting global allocator.

mod util;

use std::sync::atomic::{AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};
use util::{Ws, connect, next};

use pinfeed::book::TickerState;
use pinfeed::fanout::{BadRequest, FanoutMsg, Tuning};
use pinfeed::model::{DerivativeTicker, Event, Exchange, Liquidation, ShortId, Side};
use serde_json::json;

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

mod fanout_util;
use fanout_util::*;

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
    // writes are batched per client per loop turn: 2000 trades pushed at once need far fewer
    // write calls than the 3000 messages queued
    assert!(c.socket_writes > 0, "{c:?}");
    assert!(c.socket_writes < c.messages_sent / 2, "{c:?}");
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
        conn: 0,
        last_recv_ts_ns: 1,
    }]);
    h.push([FanoutMsg::Disconnect {
        exchange: Exchange::BinanceFutures,
        conn: 0,
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
                {"exchange":"binance-futures","symbols":["BTCUSDT","NOPEUSDT"],"dataTypes":["trade","foo","option_summary"],
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
    assert!(
        errors[3].1.contains("normalizeOptionsSummary"),
        "{errors:?}"
    );
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
    let mut h = Harness::start_recording(1 << 20, 5 << 20, 64, Tuning::default(), 0, rec, |port| {
        COUNTED.with(|c| c.set(port))
    });
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
                "dataTypes":["trade","book_change","book_snapshot_2_0ms","quote","imbalance_2",
                             "trade_bar_3ticks","trade_bar_5ms","trade_bar_2vol"],
                "withSeq":true,"withLatency":true}),
    );
    h.sessions(1);
    // the book thread's snapshot comes first: deltas before it do not reach a joiner
    while !(next(&mut ws)["isSnapshot"] == json!(true)) {}
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
    // the stamps were taken and reached the exporter: each message is stamped, or counted
    // as skipped when the client's stamp queue was full (a loaded machine reads slowly)
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let snap = latency.snapshot();
        let stamped = snap.stage(Stage::ReadToWritten).count;
        if stamped > 0 && stamped + snap.stamps_skipped >= 1600 {
            break;
        }
        assert!(Instant::now() < deadline, "{snap:?}");
        thread::sleep(Duration::from_millis(10));
    }
    drop(h);
    exporter.stop();
}

/// A timer series whose ticks come while its slot still lacks the depth it needs (the book
/// thread has not answered the refresh yet) skips those ticks and goes on ticking once the
/// slot is rewritten (the skipped tick once stopped every later one).
#[test]
fn timer_series_tick_on_after_waiting_for_the_slot() {
    let mut h = Harness::new();
    h.push(book(
        PERP,
        true,
        &[(Bid, "100", "1"), (Bid, "99", "2"), (Ask, "101", "3")],
        T0_MS,
    ));
    h.hold_requests.store(true, Ordering::Relaxed);
    let mut ws = connect(
        h.addr,
        &json!({"exchange":"deribit","symbols":["BTC-PERPETUAL"],
            "dataTypes":["book_snapshot_2_10ms"],"timerSnapshots":true}),
    );
    h.sessions(1);
    // several ticks pass with the slot written at depth 0: nothing can be sent
    thread::sleep(Duration::from_millis(60));
    assert_eq!(h.stats.load().messages_sent, 0);
    h.hold_requests.store(false, Ordering::Relaxed);
    for _ in 0..3 {
        let m = next(&mut ws);
        assert_eq!(m["name"], "book_snapshot_2_10ms");
        assert_eq!(
            m["bids"],
            json!([{"price":100,"amount":1},{"price":99,"amount":2}])
        );
    }
}

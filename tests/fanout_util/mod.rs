//! The fan-out test harness: a `Server` on port 0 fed synthetic `FanoutMsg`s through an rtrb
//! ring, with the instruments and message builders the fan-out tests share.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use pinfeed::config::ServerConfig;
use pinfeed::fanout::{
    FanoutCounters, FanoutMsg, FanoutStats, Notifier, Server, StopHandle, Tuning,
};
use pinfeed::model::{
    BookBegin, BookEnd, BookSide, Decimal, Event, Exchange, InstrumentId, Instruments, Level,
    Sequence, ShortId, Side, Stamps, Trade,
};
use serde_json::Value;
use tungstenite::Message;

use super::util::Ws;

pub const BTC: InstrumentId = InstrumentId(0); // binance-futures BTCUSDT
pub const ETH: InstrumentId = InstrumentId(1); // binance-futures ETHUSDT
pub const SPOT: InstrumentId = InstrumentId(2); // binance BTCUSDT
pub const PERP: InstrumentId = InstrumentId(3); // deribit BTC-PERPETUAL

/// 2024-01-01T00:00:00Z
pub const T0_MS: i64 = 1_704_067_200_000;

pub fn instruments() -> Instruments {
    let mut i = Instruments::new();
    assert_eq!(i.intern(Exchange::BinanceFutures, "BTCUSDT"), BTC);
    assert_eq!(i.intern(Exchange::BinanceFutures, "ETHUSDT"), ETH);
    assert_eq!(i.intern(Exchange::Binance, "BTCUSDT"), SPOT);
    assert_eq!(i.intern(Exchange::Deribit, "BTC-PERPETUAL"), PERP);
    i
}

pub fn d(s: &str) -> Decimal {
    Decimal::parse(s.as_bytes()).unwrap()
}

pub fn stamps(ms: i64) -> Stamps {
    Stamps {
        exch_ts_ns: ms * 1_000_000,
        recv_ts_ns: (ms + 5) * 1_000_000,
        recv_mono_ns: 77,
        push_delta_ns: 0,
        applied_delta_ns: 0,
    }
}

pub fn trade(id: InstrumentId, n: u64) -> FanoutMsg {
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
pub fn book(
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

pub use BookSide::{Ask, Bid};

/// How the producer wakes the loop.
pub enum Wake {
    Waker(Arc<mio::Waker>),
    Notifier(Notifier),
    /// Never: the loop's poll timeout alone must do.
    Nothing,
}

impl Wake {
    pub fn wake(&self) {
        match self {
            Wake::Waker(w) => w.wake().unwrap(),
            Wake::Notifier(n) => n.notify(),
            Wake::Nothing => {}
        }
    }
}

pub struct Harness {
    pub addr: SocketAddr,
    pub producer: rtrb::Producer<FanoutMsg>,
    pub wake: Wake,
    pub stop: StopHandle,
    pub stats: Arc<FanoutStats>,
    pub thread: Option<JoinHandle<std::io::Result<()>>>,
}

impl Harness {
    pub fn start(soft: usize, hard: usize, tuning: Tuning) -> Harness {
        Harness::start_with(soft, hard, 64, tuning, 0)
    }

    /// `wake`: 0 the waker, 1 the notifier, 2 nothing.
    pub fn start_with(
        soft: usize,
        hard: usize,
        max_clients: usize,
        tuning: Tuning,
        wake: u8,
    ) -> Harness {
        Harness::start_recording(soft, hard, max_clients, tuning, wake, None, |_| {})
    }

    /// As [`Harness::start_with`], recording stage latency with `latency`; the fan-out thread
    /// calls `on_thread` with the listen port first.
    pub fn start_recording(
        soft: usize,
        hard: usize,
        max_clients: usize,
        tuning: Tuning,
        wake: u8,
        latency: Option<pinfeed::metrics::StageRecorder>,
        on_thread: fn(u16),
    ) -> Harness {
        let cfg = ServerConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            max_clients,
            send_buffer_soft_bytes: soft,
            send_buffer_hard_bytes: hard,
            ..ServerConfig::default()
        };
        Harness::start_config(cfg, tuning, wake, latency, on_thread)
    }

    /// A server on `cfg` (its `listen` should be port 0).
    pub fn start_config(
        cfg: ServerConfig,
        tuning: Tuning,
        wake: u8,
        latency: Option<pinfeed::metrics::StageRecorder>,
        on_thread: fn(u16),
    ) -> Harness {
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
                on_thread(addr.port());
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

    pub fn new() -> Harness {
        Harness::start(1 << 20, 5 << 20, Tuning::default())
    }

    pub fn push(&mut self, msgs: impl IntoIterator<Item = FanoutMsg>) {
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
    pub fn wait(&self, what: &str, pred: impl Fn(&FanoutCounters) -> bool) -> FanoutCounters {
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

    pub fn sessions(&self, n: u64) {
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
pub fn close_of(ws: &mut Ws) -> (u16, String, Vec<Value>) {
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
pub fn quiet(ws: &mut Ws, ms: u64) {
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

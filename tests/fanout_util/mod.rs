//! The fan-out test harness: a `Server` on port 0 fed synthetic `FanoutMsg`s through an rtrb
//! ring, with the instruments and message builders the fan-out tests share.
//!
//! The harness plays the book thread's part ([`BookWriter`]): it applies the book messages a
//! test pushes to books of its own, publishes each into the latest-state slots before
//! forwarding the message and its `Book` notice, and answers the shard's snapshot requests
//! from a thread of its own, as `pinfeed::pipeline::book_thread` does.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use pinfeed::book::Book;
use pinfeed::config::ServerConfig;
use pinfeed::fanout::{
    BookNotice, BookSlots, FanoutCounters, FanoutInputs, FanoutMsg, FanoutStats, Notifier, Server,
    ShardRequest, SnapshotRequests, StopHandle, Tuning,
};
use pinfeed::model::{
    BookBegin, BookEnd, BookSide, Decimal, Event, Exchange, InstrumentId, Instruments, Level,
    Sequence, ShortId, Side, Stamps, Trade,
};
use pinfeed::pipeline::Wakeup;
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

/// The book thread's part: books, slots, the ring to the shard.
pub struct BookWriter {
    producer: rtrb::Producer<FanoutMsg>,
    wake: Wake,
    slots: Arc<BookSlots>,
    instruments: Instruments,
    books: Vec<Book>,
    synced: Vec<bool>,
    stamps: Vec<Stamps>,
    current: Option<(InstrumentId, bool)>,
    message: Vec<FanoutMsg>,
}

impl BookWriter {
    fn send(&mut self, m: FanoutMsg) {
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut m = m;
        loop {
            match self.producer.push(m) {
                Ok(()) => return,
                Err(rtrb::PushError::Full(back)) => {
                    m = back;
                    self.wake.wake();
                    assert!(Instant::now() < deadline, "ring stayed full");
                    thread::sleep(Duration::from_micros(200));
                }
            }
        }
    }

    fn unsync(&mut self, id: InstrumentId) {
        let i = id.index();
        if self.synced[i] {
            self.synced[i] = false;
            self.slots.publish(id, false, 0, self.stamps[i], None);
        }
    }

    /// Applies and forwards one message as the book thread would.
    fn take(&mut self, m: FanoutMsg) {
        match m {
            FanoutMsg::Event(Event::BookBegin(b)) => {
                if b.is_snapshot {
                    self.books[b.instrument.index()].begin_snapshot();
                }
                self.current = Some((b.instrument, b.is_snapshot));
                self.message.clear();
                self.message.push(m);
            }
            FanoutMsg::Event(Event::Level(l)) => {
                if let Some((id, _)) = self.current {
                    let _ = self.books[id.index()].apply(l.side, l.price, l.qty);
                }
                self.message.push(m);
            }
            FanoutMsg::Event(Event::BookEnd(e)) => {
                self.message.push(m);
                let Some((id, snapshot)) = self.current.take() else {
                    return;
                };
                let i = id.index();
                if snapshot {
                    self.books[i].end_snapshot();
                    self.synced[i] = true;
                }
                let begin = match self.message[0] {
                    FanoutMsg::Event(Event::BookBegin(b)) => b,
                    _ => unreachable!(),
                };
                let message = std::mem::take(&mut self.message);
                if !self.synced[i] || e.aborted {
                    // a delta before the first snapshot is not applied: not published
                    self.message = message;
                    return;
                }
                self.stamps[i] = begin.stamps;
                let version = self
                    .slots
                    .publish(id, true, 0, begin.stamps, Some(&self.books[i]));
                for m in &message {
                    self.send(*m);
                }
                self.send(FanoutMsg::Book(BookNotice {
                    instrument: id,
                    version,
                    stamps: begin.stamps,
                }));
                self.message = message;
            }
            FanoutMsg::BookInvalid(id) => {
                self.unsync(id);
                self.books[id.index()].clear();
                self.send(m);
            }
            FanoutMsg::Disconnect { exchange, .. } => {
                self.send(m);
                for i in 0..self.books.len() {
                    let id = InstrumentId(i as u32);
                    if self.instruments.name(id).0 == exchange {
                        self.unsync(id);
                        self.books[i].clear();
                    }
                }
            }
            m => self.send(m),
        }
    }

    /// Answers one request: a `Resnapshot` marker and the whole book, or a slot rewrite and
    /// its notice.
    fn answer(&mut self, r: ShardRequest) {
        let (ShardRequest::Snapshot(id) | ShardRequest::Refresh(id)) = r;
        let i = id.index();
        if !self.synced.get(i).copied().unwrap_or(false) {
            return;
        }
        if let ShardRequest::Refresh(_) = r {
            let version = self
                .slots
                .publish(id, true, 0, self.stamps[i], Some(&self.books[i]));
            self.send(FanoutMsg::Book(BookNotice {
                instrument: id,
                version,
                stamps: self.stamps[i],
            }));
            self.wake.wake();
            return;
        }
        let mut msgs = vec![FanoutMsg::Resnapshot(id)];
        msgs.push(FanoutMsg::Event(Event::BookBegin(BookBegin {
            instrument: id,
            is_snapshot: true,
            seq: Sequence::None,
            stamps: self.stamps[i],
        })));
        for side in [BookSide::Bid, BookSide::Ask] {
            for (price, qty) in self.books[i].decimal_levels(side) {
                msgs.push(FanoutMsg::Event(Event::Level(Level { side, price, qty })));
            }
        }
        msgs.push(FanoutMsg::Event(Event::BookEnd(BookEnd {
            instrument: id,
            checksum: None,
            aborted: false,
        })));
        for m in msgs {
            self.send(m);
        }
        self.wake.wake();
    }
}

pub struct Harness {
    pub addr: SocketAddr,
    pub writer: Arc<Mutex<BookWriter>>,
    pub stop: StopHandle,
    pub stats: Arc<FanoutStats>,
    pub thread: Option<JoinHandle<std::io::Result<()>>>,
    responder: Option<JoinHandle<()>>,
    responder_stop: Arc<AtomicBool>,
    /// While set, the book thread's part answers no request (they wait in the ring).
    pub hold_requests: Arc<AtomicBool>,
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
        let (req_tx, mut req_rx) = rtrb::RingBuffer::new(64);
        let addr = server.local_addr();
        let wake = match wake {
            0 => Wake::Waker(server.waker()),
            1 => Wake::Notifier(server.notifier()),
            _ => Wake::Nothing,
        };
        let stop = server.stop_handle();
        let stats = server.stats();
        let instruments = instruments();
        let n = instruments.len();
        let slots = Arc::new(BookSlots::new(n, cfg.slot_depth, 1));
        let inputs = FanoutInputs {
            book: consumer,
            lanes: Vec::new(),
            slots: slots.clone(),
            shard: 0,
            requests: Some(SnapshotRequests {
                ring: req_tx,
                wakeup: Arc::new(Wakeup::new()),
            }),
            conn_of: Vec::new(),
        };
        let thread = thread::Builder::new()
            .name("fanout".into())
            .spawn(move || {
                on_thread(addr.port());
                server.run(inputs)
            })
            .unwrap();
        let writer = Arc::new(Mutex::new(BookWriter {
            producer,
            wake,
            slots,
            instruments,
            books: (0..n).map(|_| Book::default()).collect(),
            synced: vec![false; n],
            stamps: vec![Stamps::default(); n],
            current: None,
            message: Vec::new(),
        }));
        let responder_stop = Arc::new(AtomicBool::new(false));
        let hold_requests = Arc::new(AtomicBool::new(false));
        let responder = {
            let (writer, stop) = (writer.clone(), responder_stop.clone());
            let hold = hold_requests.clone();
            thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    while !hold.load(Ordering::Relaxed) {
                        let Ok(r) = req_rx.pop() else { break };
                        writer.lock().unwrap().answer(r);
                    }
                    thread::sleep(Duration::from_millis(1));
                }
            })
        };
        Harness {
            addr,
            writer,
            stop,
            stats,
            thread: Some(thread),
            responder: Some(responder),
            responder_stop,
            hold_requests,
        }
    }

    pub fn new() -> Harness {
        Harness::start(1 << 20, 5 << 20, Tuning::default())
    }

    /// Pushes `msgs` as the book thread would publish them (book messages applied to the
    /// harness's books and slots first), then wakes the loop.
    pub fn push(&mut self, msgs: impl IntoIterator<Item = FanoutMsg>) {
        let mut w = self.writer.lock().unwrap();
        for m in msgs {
            w.take(m);
        }
        w.wake.wake();
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
        self.responder_stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.responder.take() {
            let _ = t.join();
        }
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

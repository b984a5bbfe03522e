//! Ingest: one OS thread per upstream venue connection.
//!
//! Each thread connects ([`ws`]), sends the connect plan's subscribe frames, then reads
//! frames in a blocking loop: it stamps each with the wall and monotonic clocks, copies it
//! into a scratch buffer, parses it with the venue module straight into its own ring to the
//! book thread, and answers what the venue expects (keep-alive frames at the venue's
//! interval, WebSocket pings when the line is quiet, Deribit `test_request` heartbeats).
//!
//! Ring policy (DESIGN.md, ingest → book): **on full, drop and count**. A dropped event of a
//! book message breaks that book's chain, so the rest of the message is dropped too and an
//! [`IngestItem::Lost`] marker for the instrument is queued; markers are delivered before any
//! later event (and on every read timeout), so the book thread resyncs that instrument alone
//! before it sees anything newer. Other instruments stay live.
//!
//! Connection life: a silence watchdog (no text or binary frame for `silence_timeout_ms`;
//! WebSocket pongs do not count) or any read error
//! ends the session; the thread pushes [`IngestItem::Disconnected`] (the book thread then
//! invalidates the connection's books and tells the fan-out), waits per [`backoff_delay`]
//! (1 s · 2ⁿ capped at 32 s, plus up to 25 % jitter; `n` resets once data flows again),
//! reconnects, resubscribes and pushes [`IngestItem::Connected`].
//!
//! Hot path: no allocation once warm other than tungstenite's per-message buffer, no lock,
//! no logging (connection changes are logged: they are rare).

pub mod rest;
pub mod tls;
pub mod ws;

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crossbeam_channel::Receiver;
use crossbeam_utils::CachePadded;
use tungstenite::Message;

use crate::book::{PackedTickerState, TickerState};
use crate::clock::{mono_ns, wall_ns};
use crate::config::Connection;
use crate::fanout::{FanoutMsg, Notifier};
use crate::metrics::{Stage, StageRecorder, offset_ns, stamps_mut};
use crate::model::{Event, InstrumentId, Instruments, Stamps};
use crate::pipeline::stats::{ConnEnd, bump};
use crate::pipeline::{ConnState, ConnStats, RingProducer, Wakeup};
use crate::venue::{self, Channels, ConnectPlan, Feed, FrameKind, Sink, Subscription, VenueParser};

pub use ws::ConnectOptions;

pub use crate::pipeline::msg::{IngestControl, IngestItem};

/// First reconnect delay.
pub const BACKOFF_BASE: Duration = Duration::from_secs(1);
/// Longest reconnect delay before jitter.
pub const BACKOFF_CAP: Duration = Duration::from_secs(32);

/// Delay before reconnect attempt `attempt` (0-based): `1 s · 2^attempt`, capped at 32 s,
/// plus `jitter` (in `[0, 1)`) times a quarter of that, so clients of one venue do not
/// reconnect in lockstep.
pub fn backoff_delay(attempt: u32, jitter: f64) -> Duration {
    let exp = BACKOFF_BASE
        .saturating_mul(1u32 << attempt.min(16))
        .min(BACKOFF_CAP);
    exp + exp.mul_f64(jitter.clamp(0.0, 1.0) * 0.25)
}

/// A small xorshift generator for backoff jitter (no dependency, no lock).
#[derive(Clone, Debug)]
pub struct Jitter(u64);

impl Jitter {
    /// Seeded from `seed` and the clock.
    pub fn new(seed: u64) -> Jitter {
        Jitter((wall_ns() as u64 ^ seed.wrapping_mul(0x9e37_79b9_7f4a_7c15)) | 1)
    }

    /// The next value in `[0, 1)`.
    pub fn next_unit(&mut self) -> f64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        (x >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// The unsubscribe and subscribe frames that make the venue send a fresh WebSocket snapshot
/// of one book, or `None` where books are not seeded from the WebSocket (Binance) or the
/// venue's frame format is not known.
pub fn resubscribe_frames(
    conn: &Connection,
    sub: &Subscription,
) -> Option<(Vec<String>, Vec<String>)> {
    let one = Subscription {
        exchange: sub.exchange,
        symbol: sub.symbol.clone(),
        channels: Channels::BOOK,
    };
    let plan = venue::connect_plan(conn.feed, &conn.ws_url, &conn.rest_url, &[one]);
    let (from, to) = match conn.feed {
        Feed::BybitLinear | Feed::BybitInverse | Feed::BybitSpot | Feed::Okx => {
            ("\"op\":\"subscribe\"", "\"op\":\"unsubscribe\"")
        }
        Feed::Deribit => ("public/subscribe", "public/unsubscribe"),
        Feed::BinanceFutures | Feed::BinanceDelivery | Feed::BinanceSpot => return None,
    };
    let subscribe: Vec<String> = plan
        .subscribe_frames
        .into_iter()
        .filter(|f| f.contains(from))
        .collect();
    if subscribe.is_empty() {
        return None;
    }
    let unsubscribe = subscribe.iter().map(|f| f.replace(from, to)).collect();
    Some((unsubscribe, subscribe))
}

/// Instruments whose book lost events, waiting for their [`IngestItem::Lost`] marker to be
/// delivered.
struct LostBooks {
    pending: VecDeque<InstrumentId>,
    marked: Vec<bool>,
}

impl LostBooks {
    fn new(instruments: usize) -> LostBooks {
        LostBooks {
            pending: VecDeque::with_capacity(instruments),
            marked: vec![false; instruments],
        }
    }

    /// Queues a marker; false when one is already queued.
    fn mark(&mut self, id: InstrumentId) -> bool {
        match self.marked.get_mut(id.index()) {
            Some(m) if !*m => {
                *m = true;
                self.pending.push_back(id);
                true
            }
            _ => false,
        }
    }

    /// Delivers queued markers while there is room; true when none is left.
    #[inline]
    fn flush(&mut self, ring: &mut RingProducer<IngestItem>) -> bool {
        while let Some(&id) = self.pending.front() {
            if ring.slots() == 0 {
                return false;
            }
            // a free slot: the push cannot fail
            let _ = ring.push(IngestItem::Lost(id));
            self.pending.pop_front();
            self.marked[id.index()] = false;
        }
        true
    }
}

/// An ingest thread's trade lanes: one ring per fan-out shard for what does not touch a
/// book (trades, liquidations, book tickers, merged derivative tickers), so L2 work in the
/// book thread never delays it. Derivative tickers are merged here (one connection carries an
/// instrument, so this thread sees every update of it); a full lane drops and counts.
pub struct TradeLanes {
    rings: Vec<RingProducer<FanoutMsg>>,
    wakers: Vec<Notifier>,
    tickers: Vec<TickerState>,
    pushed: bool,
}

impl TradeLanes {
    /// Lanes `rings[s]` to shard `s`, woken with `wakers` after each frame that pushed, for
    /// `instruments` instruments.
    pub fn new(
        rings: Vec<RingProducer<FanoutMsg>>,
        wakers: Vec<Notifier>,
        instruments: usize,
    ) -> TradeLanes {
        TradeLanes {
            rings,
            wakers,
            tickers: vec![TickerState::default(); instruments],
            pushed: false,
        }
    }

    /// Publishes `ev` (not a book event) to every shard; a derivative ticker only when it
    /// changed a merged value (tardis-machine emits `derivative_ticker` only then).
    #[inline]
    fn publish(&mut self, ev: Event, stats: &ConnStats) {
        let msg = match ev {
            Event::DerivativeTicker(t) => {
                let Some(state) = self.tickers.get_mut(t.instrument.index()) else {
                    return;
                };
                if !state.merge(&t.unpack()) {
                    return;
                }
                let mut packed = PackedTickerState::from(&*state);
                packed.merged.stamps = t.stamps;
                FanoutMsg::Ticker(packed)
            }
            Event::Trade(_) => {
                bump(&stats.trades, 1);
                FanoutMsg::Event(ev)
            }
            _ => FanoutMsg::Event(ev),
        };
        for ring in &mut self.rings {
            if ring.push(msg).is_ok() {
                self.pushed = true;
            }
        }
    }

    fn wake(&mut self) {
        if std::mem::take(&mut self.pushed) {
            for w in &self.wakers {
                w.notify();
            }
        }
    }
}

/// The parser's sink: pushes events into the ring with the drop policy above; with trade
/// lanes, what is not a book event goes down the lanes instead.
struct RingSink<'a> {
    ring: &'a mut RingProducer<IngestItem>,
    lanes: Option<&'a mut TradeLanes>,
    lost: &'a mut LostBooks,
    stats: &'a ConnStats,
    message: Option<InstrumentId>,
    dropping: bool,
    pushed: bool,
    /// Stamp pushed events (latency recording on).
    stamp: bool,
    /// Monotonic clock at the frame's first push (0: none yet); one clock read per frame.
    push_mono_ns: u64,
    /// Venue time of the first pushed event that carries one (0: none).
    exch_ts_ns: i64,
}

impl RingSink<'_> {
    #[cold]
    fn lose_message(&mut self, ev: &Event) {
        if let Some(id) = self.message {
            if self.lost.mark(id) {
                bump(&self.stats.books_lost, 1);
            }
        }
        self.dropping = !matches!(ev, Event::BookEnd(_));
    }
}

impl RingSink<'_> {
    /// Sets the push stamp of an event (the frame's first push reads the clock).
    #[inline]
    fn stamp_push(&mut self, ev: &mut Event) {
        let Some(st) = stamps_mut(ev) else { return };
        if st.recv_mono_ns == 0 {
            return;
        }
        if self.push_mono_ns == 0 {
            self.push_mono_ns = mono_ns();
        }
        st.push_delta_ns = offset_ns(st.recv_mono_ns, self.push_mono_ns);
        if self.exch_ts_ns == 0 {
            self.exch_ts_ns = st.exch_ts_ns;
        }
    }
}

impl Sink for RingSink<'_> {
    #[inline]
    fn event(&mut self, ev: Event) {
        let book = matches!(
            ev,
            Event::BookBegin(_) | Event::Level(_) | Event::BookEnd(_)
        );
        if !book && self.lanes.is_some() {
            let mut ev = ev;
            if self.stamp {
                self.stamp_push(&mut ev);
            }
            if let Some(lanes) = self.lanes.as_deref_mut() {
                lanes.publish(ev, self.stats);
            }
            return;
        }
        if let Event::BookBegin(b) = &ev {
            self.message = Some(b.instrument);
            self.dropping = false;
        }
        if book && self.dropping {
            self.ring.count_dropped(1);
            if matches!(ev, Event::BookEnd(_)) {
                self.dropping = false;
            }
            return;
        }
        if !self.lost.pending.is_empty() && !self.lost.flush(self.ring) {
            // markers first: nothing newer may overtake them
            self.ring.count_dropped(1);
            if book {
                self.lose_message(&ev);
            }
            return;
        }
        let mut ev = ev;
        if self.stamp {
            self.stamp_push(&mut ev);
        }
        match self.ring.push(IngestItem::Event(ev)) {
            Ok(()) => self.pushed = true,
            Err(_) => {
                if book {
                    self.lose_message(&ev);
                }
            }
        }
    }
}

/// Everything one ingest thread owns.
pub struct Ingest {
    /// Connection index (config order).
    pub index: usize,
    /// The validated connection config.
    pub conn: Connection,
    /// Its connect plan.
    pub plan: ConnectPlan,
    /// Interned instruments (read only).
    pub instruments: Arc<Instruments>,
    /// TLS configuration with the connection's trust roots.
    pub tls: Arc<rustls::ClientConfig>,
    /// Timeouts.
    pub options: ConnectOptions,
    /// Ring to the book thread.
    pub ring: RingProducer<IngestItem>,
    /// Trade lanes to the fan-out shards (`None`: everything goes to the book thread).
    pub lanes: Option<TradeLanes>,
    /// Wakes the book thread.
    pub wakeup: Arc<Wakeup>,
    /// Counters.
    pub stats: Arc<CachePadded<ConnStats>>,
    /// Requests from the book thread.
    pub control: Receiver<IngestControl>,
    /// Set to end the thread.
    pub stop: Arc<AtomicBool>,
    /// Records [`Stage::ReadToPush`] and [`Stage::VenueToRead`]; `None`: no stamping.
    pub latency: Option<StageRecorder>,
}

/// How a session ended.
enum End {
    Stop,
    Silence,
    Requested,
    Failed(ConnEnd, String),
}

impl Ingest {
    /// Runs until `stop` is set: connect, read, reconnect.
    pub fn run(mut self) {
        let name = format!("{}#{}", self.conn.feed.name(), self.index);
        let mut parser = VenueParser::new(self.conn.feed);
        let mut lost = LostBooks::new(self.instruments.len());
        let mut frame: Vec<u8> = Vec::with_capacity(64 * 1024);
        let mut jitter = Jitter::new(self.index as u64 + 1);
        let mut attempt: u32 = 0;
        let mut ever_connected = false;
        let mut last_error = String::new();
        while !self.stop.load(Ordering::Relaxed) {
            self.stats.set_state(ConnState::Connecting);
            match ws::connect(&self.plan.ws_url, &self.tls, &self.options) {
                Ok(mut socket) => {
                    if ever_connected {
                        bump(&self.stats.reconnects, 1);
                    }
                    ever_connected = true;
                    eprintln!("pinfeed: {name}: connected to {}", self.conn.ws_url);
                    last_error.clear();
                    let end = self.session(
                        &mut socket,
                        &mut parser,
                        &mut lost,
                        &mut frame,
                        &mut attempt,
                    );
                    let _ = socket.close(None);
                    let _ = socket.flush();
                    // markers first, then the disconnect, so the book thread sees them in order
                    self.deliver_lost(&mut lost);
                    if matches!(end, End::Stop) {
                        // shutting down: the books stay as they are (final state), and the
                        // fan-out closes its clients itself
                        break;
                    }
                    self.deliver(IngestItem::Disconnected {
                        last_recv_ts_ns: self.stats.last_recv_ts_ns.load(Ordering::Relaxed),
                    });
                    ConnEnd::count(
                        match &end {
                            End::Silence => ConnEnd::Silence,
                            End::Requested => ConnEnd::Requested,
                            End::Failed(cause, _) => *cause,
                            End::Stop => ConnEnd::Other,
                        },
                        &self.stats,
                    );
                    match end {
                        End::Stop => break,
                        End::Silence => {
                            bump(&self.stats.silence_timeouts, 1);
                            eprintln!(
                                "pinfeed: {name}: silent for {} ms, reconnecting",
                                self.conn.silence_timeout_ms
                            );
                        }
                        End::Requested => eprintln!("pinfeed: {name}: resync by reconnect"),
                        End::Failed(_, e) => eprintln!("pinfeed: {name}: connection lost: {e}"),
                    }
                }
                Err(e) => {
                    bump(&self.stats.connect_failures, 1);
                    let text = e.to_string();
                    if text != last_error {
                        eprintln!("pinfeed: {name}: {text}");
                        last_error = text;
                    }
                }
            }
            self.stats.set_state(ConnState::Backoff);
            let delay = backoff_delay(attempt, jitter.next_unit());
            attempt = attempt.saturating_add(1);
            let until = Instant::now() + delay;
            while Instant::now() < until && !self.stop.load(Ordering::Relaxed) {
                // drain control requests meant for the lost connection
                while self.control.try_recv().is_ok() {}
                std::thread::sleep(Duration::from_millis(20).min(delay));
            }
        }
        self.stats.set_state(ConnState::Stopped);
        if let Some(rec) = self.latency.take() {
            rec.finish();
        }
    }

    /// Reads one connection until it ends.
    fn session(
        &mut self,
        socket: &mut ws::Socket,
        parser: &mut VenueParser,
        lost: &mut LostBooks,
        frame: &mut Vec<u8>,
        attempt: &mut u32,
    ) -> End {
        for f in &self.plan.subscribe_frames {
            if let Err(e) = socket.send(Message::Text(f.as_str().into())) {
                return End::Failed(ConnEnd::of(&e), format!("subscribe: {e}"));
            }
        }
        self.stats.set_state(ConnState::Connected);
        self.deliver(IngestItem::Connected);
        let silence = Duration::from_millis(self.conn.silence_timeout_ms);
        let ping_after = silence / 3;
        let keepalive = self
            .plan
            .keepalive
            .clone()
            .map(|(text, ms)| (text, Duration::from_millis(ms.max(1))));
        let mut last_frame = Instant::now();
        let mut next_keepalive = keepalive.as_ref().map(|(_, p)| last_frame + *p);
        let mut pinged = false;
        let is_deribit = self.conn.feed == Feed::Deribit;
        while self.control.try_recv().is_ok() {}
        loop {
            let read = socket.read();
            let now = Instant::now();
            match read {
                Ok(msg) => {
                    let bytes: &[u8] = match &msg {
                        Message::Text(t) => t.as_bytes(),
                        Message::Binary(b) => {
                            bump(&self.stats.binary_frames, 1);
                            b
                        }
                        _ => &[],
                    };
                    if !bytes.is_empty() {
                        // only data frames feed the watchdog: a venue that answers pings
                        // but has stopped sending data is reconnected too
                        last_frame = now;
                        pinged = false;
                        let recv = Stamps {
                            exch_ts_ns: 0,
                            recv_ts_ns: wall_ns(),
                            recv_mono_ns: mono_ns(),
                            push_delta_ns: 0,
                            applied_delta_ns: 0,
                        };
                        self.stats
                            .last_recv_ts_ns
                            .store(recv.recv_ts_ns, Ordering::Relaxed);
                        bump(&self.stats.bytes, bytes.len() as u64);
                        frame.clear();
                        frame.extend_from_slice(bytes);
                        let mut sink = RingSink {
                            ring: &mut self.ring,
                            lanes: self.lanes.as_mut(),
                            lost,
                            stats: &self.stats,
                            message: None,
                            dropping: false,
                            pushed: false,
                            stamp: self.latency.is_some(),
                            push_mono_ns: 0,
                            exch_ts_ns: 0,
                        };
                        let result = parser.parse_frame(frame, recv, &self.instruments, &mut sink);
                        let pushed = sink.pushed;
                        if let (Some(rec), true) = (&mut self.latency, sink.push_mono_ns != 0) {
                            rec.record_between(
                                Stage::ReadToPush,
                                recv.recv_mono_ns,
                                sink.push_mono_ns,
                            );
                            rec.record_venue(sink.exch_ts_ns, recv.recv_ts_ns);
                        }
                        self.stats.count_frame(result);
                        if pushed {
                            self.wakeup.notify();
                        }
                        if let Some(lanes) = &mut self.lanes {
                            lanes.wake();
                        }
                        match result {
                            Ok(FrameKind::Heartbeat)
                                if is_deribit && contains(bytes, b"test_request") =>
                            {
                                if let Err(e) = socket
                                    .send(Message::Text(venue::deribit::PUBLIC_TEST_FRAME.into()))
                                {
                                    return End::Failed(
                                        ConnEnd::of(&e),
                                        format!("heartbeat answer: {e}"),
                                    );
                                }
                                bump(&self.stats.heartbeats_answered, 1);
                            }
                            Ok(
                                FrameKind::Trade
                                | FrameKind::BookSnapshot
                                | FrameKind::BookDelta
                                | FrameKind::BookTicker
                                | FrameKind::DerivativeTicker
                                | FrameKind::Liquidation,
                            ) => *attempt = 0,
                            _ => {}
                        }
                    }
                }
                Err(e) if ws::is_timeout(&e) => {}
                Err(e) => return End::Failed(ConnEnd::of(&e), e.to_string()),
            }
            // housekeeping: cheap checks, run after every frame and every read timeout
            if self.stop.load(Ordering::Relaxed) {
                return End::Stop;
            }
            if let Some(rec) = &mut self.latency {
                rec.tick(mono_ns());
            }
            if !lost.pending.is_empty() && lost.flush(&mut self.ring) {
                self.wakeup.notify();
            }
            let quiet = now.saturating_duration_since(last_frame);
            if quiet >= silence {
                return End::Silence;
            }
            if quiet >= ping_after && !pinged {
                pinged = true;
                if let Err(e) = socket.send(Message::Ping(Vec::new().into())) {
                    return End::Failed(ConnEnd::of(&e), format!("ping: {e}"));
                }
                bump(&self.stats.keepalives_sent, 1);
            }
            if let (Some((text, period)), Some(due)) = (&keepalive, next_keepalive) {
                if now >= due {
                    next_keepalive = Some(now + *period);
                    if let Err(e) = socket.send(Message::Text(text.as_str().into())) {
                        return End::Failed(ConnEnd::of(&e), format!("keep-alive: {e}"));
                    }
                    bump(&self.stats.keepalives_sent, 1);
                }
            }
            if !self.control.is_empty() {
                match self.control.try_recv() {
                    Ok(IngestControl::Reconnect) => return End::Requested,
                    Ok(IngestControl::Resubscribe(id)) => {
                        if let Err(e) = self.resubscribe(socket, id) {
                            return End::Failed(ConnEnd::Other, format!("resubscribe: {e}"));
                        }
                    }
                    Err(_) => {}
                }
            }
        }
    }

    /// Sends unsubscribe + subscribe for the book of `id`; asks for a reconnect where the
    /// venue has no such frames.
    fn resubscribe(&mut self, socket: &mut ws::Socket, id: InstrumentId) -> Result<(), String> {
        let (exchange, symbol) = self.instruments.name(id);
        let Some(sub) = self
            .conn
            .subscriptions
            .iter()
            .find(|s| s.exchange == exchange && s.symbol == symbol)
        else {
            return Ok(());
        };
        match resubscribe_frames(&self.conn, sub) {
            Some((unsubscribe, subscribe)) => {
                for f in unsubscribe.iter().chain(subscribe.iter()) {
                    socket
                        .send(Message::Text(f.as_str().into()))
                        .map_err(|e| e.to_string())?;
                }
                Ok(())
            }
            None => Ok(()),
        }
    }

    /// Pushes a marker that must arrive, waiting for room (the book thread drains
    /// constantly); gives up only when the book thread is gone.
    fn deliver(&mut self, item: IngestItem) {
        loop {
            if self.ring.slots() > 0 {
                let _ = self.ring.push(item);
                self.wakeup.notify();
                return;
            }
            if self.ring.is_abandoned() {
                return;
            }
            self.wakeup.notify();
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    fn deliver_lost(&mut self, lost: &mut LostBooks) {
        while !lost.flush(&mut self.ring) {
            if self.ring.is_abandoned() {
                return;
            }
            self.wakeup.notify();
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{BookBegin, BookEnd, BookSide, Decimal, Level, Sequence};
    use crate::pipeline::ring;

    #[test]
    fn backoff_schedule() {
        let secs = |a| backoff_delay(a, 0.0).as_secs();
        assert_eq!(
            (0..8).map(secs).collect::<Vec<_>>(),
            [1, 2, 4, 8, 16, 32, 32, 32]
        );
        assert_eq!(backoff_delay(100, 0.0), BACKOFF_CAP);
        // jitter adds at most a quarter
        assert_eq!(backoff_delay(2, 0.999_999).as_millis(), 4999);
        assert_eq!(backoff_delay(5, 1.0), Duration::from_secs(40));
        let mut j = Jitter::new(7);
        for _ in 0..1000 {
            let u = j.next_unit();
            assert!((0.0..1.0).contains(&u));
            let d = backoff_delay(0, u);
            assert!(d >= Duration::from_secs(1) && d < Duration::from_millis(1250));
        }
    }

    fn begin(id: u32) -> Event {
        Event::BookBegin(BookBegin {
            instrument: InstrumentId(id),
            is_snapshot: false,
            seq: Sequence::None,
            stamps: Stamps::default(),
        })
    }

    fn level() -> Event {
        Event::Level(Level {
            side: BookSide::Bid,
            price: Decimal::new(1, 0),
            qty: Decimal::new(1, 0),
        })
    }

    fn end(id: u32) -> Event {
        Event::BookEnd(BookEnd {
            instrument: InstrumentId(id),
            checksum: None,
            aborted: false,
        })
    }

    #[test]
    fn a_dropped_book_event_drops_the_message_and_queues_a_marker() {
        let (mut p, mut c, q) = ring::<IngestItem>("t", 3);
        let stats = ConnStats::new(0, Feed::BybitLinear);
        let mut lost = LostBooks::new(4);
        {
            let mut sink = RingSink {
                ring: &mut p,
                lanes: None,
                lost: &mut lost,
                stats: &stats,
                message: None,
                dropping: false,
                pushed: false,
                stamp: false,
                push_mono_ns: 0,
                exch_ts_ns: 0,
            };
            // a 5-event message into 3 slots: begin + 2 levels fit, the rest is dropped
            for ev in [begin(2), level(), level(), level(), end(2)] {
                sink.event(ev);
            }
            assert!(sink.pushed);
        }
        assert_eq!(q.pushed(), 3);
        assert_eq!(q.dropped(), 2);
        assert_eq!(stats.books_lost.load(Ordering::Relaxed), 1);
        // the book thread drains; the next event must come after the marker
        for _ in 0..3 {
            c.pop().unwrap();
        }
        {
            let mut sink = RingSink {
                ring: &mut p,
                lanes: None,
                lost: &mut lost,
                stats: &stats,
                message: None,
                dropping: false,
                pushed: false,
                stamp: false,
                push_mono_ns: 0,
                exch_ts_ns: 0,
            };
            sink.event(begin(1));
            sink.event(end(1));
        }
        assert_eq!(c.pop().unwrap(), IngestItem::Lost(InstrumentId(2)));
        assert_eq!(c.pop().unwrap(), IngestItem::Event(begin(1)));
        assert_eq!(c.pop().unwrap(), IngestItem::Event(end(1)));
        assert!(lost.pending.is_empty());
    }

    #[test]
    fn markers_are_not_overtaken_when_the_ring_stays_full() {
        let (mut p, mut c, q) = ring::<IngestItem>("t", 1);
        let stats = ConnStats::new(0, Feed::Okx);
        let mut lost = LostBooks::new(4);
        let mut sink = RingSink {
            ring: &mut p,
            lanes: None,
            lost: &mut lost,
            stats: &stats,
            message: None,
            dropping: false,
            pushed: false,
            stamp: false,
            push_mono_ns: 0,
            exch_ts_ns: 0,
        };
        sink.event(begin(0)); // fits
        sink.event(end(0)); // dropped: book 0 lost
        sink.event(begin(1)); // marker cannot be delivered: dropped, book 1 lost too
        sink.event(end(1));
        assert_eq!(q.dropped(), 3);
        assert_eq!(lost.pending.len(), 2);
        c.pop().unwrap();
        assert!(!lost.flush(&mut p));
        assert_eq!(c.pop().unwrap(), IngestItem::Lost(InstrumentId(0)));
        assert!(lost.flush(&mut p));
        assert_eq!(c.pop().unwrap(), IngestItem::Lost(InstrumentId(1)));
    }

    #[test]
    fn resubscribe_frames_per_venue() {
        let conn = |feed: Feed, symbol: &str| {
            let exchange = crate::config::exchange_of(feed, symbol).unwrap();
            let (ws, rest) = feed.default_endpoints();
            Connection {
                feed,
                ws_url: ws.into(),
                rest_url: rest.into(),
                ca_file: None,
                subscriptions: vec![Subscription {
                    exchange,
                    symbol: symbol.into(),
                    channels: Channels::ALL,
                }],
                silence_timeout_ms: 10_000,
            }
        };
        let c = conn(Feed::BybitLinear, "BTCUSDT");
        let (un, sub) = resubscribe_frames(&c, &c.subscriptions[0]).unwrap();
        assert_eq!(
            sub,
            [r#"{"op":"subscribe","args":["orderbook.200.BTCUSDT"]}"#]
        );
        assert_eq!(
            un,
            [r#"{"op":"unsubscribe","args":["orderbook.200.BTCUSDT"]}"#]
        );
        let c = conn(Feed::Okx, "BTC-USDT");
        let (un, sub) = resubscribe_frames(&c, &c.subscriptions[0]).unwrap();
        assert!(sub[0].contains("\"op\":\"subscribe\"") && sub[0].contains("books"));
        assert!(un[0].contains("\"op\":\"unsubscribe\""));
        let c = conn(Feed::Deribit, "BTC-PERPETUAL");
        let (un, sub) = resubscribe_frames(&c, &c.subscriptions[0]).unwrap();
        assert!(
            sub.iter().all(|f| f.contains("public/subscribe")),
            "{sub:?}"
        );
        assert!(un[0].contains("public/unsubscribe"));
        assert!(!sub.iter().any(|f| f.contains("set_heartbeat")));
        let c = conn(Feed::BinanceFutures, "BTCUSDT");
        assert!(resubscribe_frames(&c, &c.subscriptions[0]).is_none());
    }

    #[test]
    fn finds_test_requests() {
        assert!(contains(
            br#"{"method":"heartbeat","params":{"type":"test_request"}}"#,
            b"test_request"
        ));
        assert!(!contains(br#"{"type":"heartbeat"}"#, b"test_request"));
    }

    /// One Deribit connection against a scripted server: subscribe frames, keep-alives at
    /// the plan's interval, the `test_request` answer, a resubscribe on request, the silence
    /// watchdog, the Disconnected/Connected markers and the reconnect after the backoff.
    #[test]
    fn connection_life_against_a_scripted_venue() {
        use std::net::TcpListener;
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let received = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
        let got = received.clone();
        let server = std::thread::spawn(move || {
            let mut accepted = Vec::new();
            for round in 0..2 {
                let (s, _) = listener.accept().unwrap();
                accepted.push(Instant::now());
                let mut ws = tungstenite::accept(s).unwrap();
                ws.get_ref()
                    .set_read_timeout(Some(Duration::from_millis(20)))
                    .unwrap();
                let start = Instant::now();
                let mut sent_heartbeat = false;
                // round 0: talk for a while, then fall silent (but keep answering pings)
                while start.elapsed() < Duration::from_millis(if round == 0 { 2500 } else { 100 }) {
                    if !sent_heartbeat && start.elapsed() > Duration::from_millis(150) {
                        sent_heartbeat = true;
                        ws.send(Message::Text(
                            r#"{"jsonrpc":"2.0","method":"heartbeat","params":{"type":"test_request"}}"#.into(),
                        ))
                        .unwrap();
                    }
                    match ws.read() {
                        Ok(Message::Text(t)) => got.lock().unwrap().push(t.to_string()),
                        Ok(_) => {}
                        Err(e) if ws::is_timeout(&e) => {}
                        Err(_) => break,
                    }
                }
            }
            accepted
        });

        let subs = vec![Subscription {
            exchange: crate::model::Exchange::Deribit,
            symbol: "BTC-PERPETUAL".into(),
            channels: Channels::ALL,
        }];
        let conn = Connection {
            feed: Feed::Deribit,
            ws_url: format!("ws://127.0.0.1:{port}/ws/api/v2"),
            rest_url: "http://127.0.0.1:1".into(),
            ca_file: None,
            subscriptions: subs.clone(),
            silence_timeout_ms: 600,
        };
        let mut plan = venue::connect_plan(Feed::Deribit, &conn.ws_url, &conn.rest_url, &subs);
        plan.keepalive = Some(("keepalive".into(), 100));
        let mut instruments = Instruments::new();
        let id = instruments.intern(crate::model::Exchange::Deribit, "BTC-PERPETUAL");
        let (ring, mut rx, _) = ring::<IngestItem>("t", 64);
        let stats = Arc::new(CachePadded::new(ConnStats::new(0, Feed::Deribit)));
        let (control_tx, control) = crossbeam_channel::bounded(4);
        let stop = Arc::new(AtomicBool::new(false));
        let ingest = Ingest {
            index: 0,
            conn,
            plan: plan.clone(),
            instruments: Arc::new(instruments),
            tls: tls::client_config(&tls::trust_roots(None).unwrap()).unwrap(),
            options: ConnectOptions {
                read_timeout: Duration::from_millis(20),
                ..ConnectOptions::default()
            },
            ring,
            lanes: None,
            wakeup: Arc::new(Wakeup::new()),
            stats: stats.clone(),
            control,
            stop: stop.clone(),
            latency: None,
        };
        let thread = std::thread::spawn(move || ingest.run());
        // ask for a resubscribe while connected
        let until = Instant::now() + Duration::from_secs(5);
        while stats.state() != ConnState::Connected && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(5));
        }
        std::thread::sleep(Duration::from_millis(300));
        control_tx.send(IngestControl::Resubscribe(id)).unwrap();
        let accepted = server.join().unwrap();
        stop.store(true, Ordering::SeqCst);
        thread.join().unwrap();

        let items: Vec<IngestItem> = std::iter::from_fn(|| rx.pop().ok()).collect();
        assert_eq!(items[0], IngestItem::Connected);
        assert!(
            matches!(items[1], IngestItem::Disconnected { .. }),
            "{items:?}"
        );
        assert_eq!(items[2], IngestItem::Connected);
        assert_eq!(stats.silence_timeouts.load(Ordering::Relaxed), 1);
        assert_eq!(stats.reconnects.load(Ordering::Relaxed), 1);
        assert_eq!(stats.heartbeats_answered.load(Ordering::Relaxed), 1);
        assert_eq!(stats.frames_of(FrameKind::Heartbeat), 1);
        assert!(stats.keepalives_sent.load(Ordering::Relaxed) >= 3);
        // the reconnect waited for the backoff: silence (600 ms) + at least 1 s
        let gap = accepted[1].duration_since(accepted[0]);
        assert!(gap >= Duration::from_millis(1600), "{gap:?}");
        let got = received.lock().unwrap().clone();
        for f in &plan.subscribe_frames {
            assert!(got.contains(f), "missing subscribe {f}");
        }
        assert!(got.iter().filter(|f| *f == "keepalive").count() >= 3);
        assert!(got.contains(&venue::deribit::PUBLIC_TEST_FRAME.to_string()));
        assert!(
            got.iter()
                .any(|f| f.contains("public/unsubscribe") && f.contains("BTC-PERPETUAL"))
        );
        assert_eq!(stats.state(), ConnState::Stopped);
    }
}

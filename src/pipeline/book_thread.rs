//! The book thread: the single writer of every book.
//!
//! It drains every ingest ring and the REST ring in batches, feeds the [`BookEngine`] one
//! whole book message at a time (a message's events are gathered per ring until its
//! `BookEnd`, so messages of different rings never interleave in the engine), and publishes
//! to the fan-out ring:
//! - trades, liquidations and book tickers as they come; merged derivative-ticker state
//!   ([`FanoutMsg::Ticker`]) when a value changed;
//! - applied deltas as their `BookBegin`/`Level`/`BookEnd` events; applied snapshots as the
//!   engine's whole book after the snapshot (so deltas the engine buffered before a REST
//!   snapshot and applied with it are included);
//! - [`FanoutMsg::BookInvalid`] when a published book leaves `synced`, and
//!   [`FanoutMsg::Disconnect`] per exchange when a connection drops (before the
//!   `BookInvalid`s of its books).
//!
//! It wakes the fan-out once per batch through its [`Notifier`], which skips the wake-up
//! syscall while the fan-out loop is awake.
//!
//! Fan-out ring policy (DESIGN.md, book → fan-out): trades, liquidations and tickers are
//! dropped and counted on a full ring; a book message that does not fit whole is dropped and
//! the book is marked stale, then republished as its latest state (a `BookInvalid` and a full
//! snapshot) as soon as there is room: books travel as conflated latest state, so a book
//! burst never blocks trades. `BookInvalid` and `Disconnect` are never dropped: they wait in
//! a small queue that is flushed before anything else.
//!
//! Resyncs: the engine's resync requests go to the REST thread (REST-snapshot books) or to
//! the connection's ingest thread as a resubscribe (WebSocket-snapshot books); a WebSocket
//! book still unsynced after [`RESUBSCRIBE_TIMEOUT`] gets its connection reconnected.
//! Requests for books of a connection that is down wait for its reconnect, which brings
//! fresh snapshots of every book of the connection.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use crossbeam_channel::Sender;
use crossbeam_utils::CachePadded;
use rtrb::Consumer;

use crate::book::{BookEngine, Disposition, PackedTickerState, ResyncReason, SyncState};
use crate::fanout::{FanoutMsg, Notifier};
use crate::metrics::{Stage, StageRecorder, offset_ns, stamps_mut};
use crate::model::{BookBegin, BookEnd, BookSide, Event, Exchange, InstrumentId, Level, Stamps};

use crate::ingest::IngestControl;
pub use crate::ingest::IngestItem;
use crate::ingest::rest::RestRequest;

use super::stats::{BookThreadStats, bump};
use super::wait::{WaitStrategy, Waiter, Wakeup};
use super::{RingProducer, mono_ns};

/// Most items taken from one ring before the next ring gets its turn.
pub const BATCH: usize = 1024;

/// A WebSocket-snapshot book still unsynced this long after its resubscribe gets its
/// connection reconnected.
pub const RESUBSCRIBE_TIMEOUT: Duration = Duration::from_secs(15);

/// Housekeeping period (stale republish, resync escalation, counters).
const HOUSEKEEPING_NS: u64 = 100_000_000;

/// Which books a connection carries.
#[derive(Clone, Debug, Default)]
pub struct Topology {
    /// Per instrument: the connection that carries it.
    pub conn_of: Vec<Option<usize>>,
    /// Per instrument: its book is seeded by a REST snapshot.
    pub rest_book: Vec<bool>,
    /// Per connection: the exchange ids it carries (one `Disconnect` each).
    pub conn_exchanges: Vec<Vec<Exchange>>,
    /// Per connection: the instruments whose books it carries.
    pub conn_books: Vec<Vec<InstrumentId>>,
}

/// One input ring.
pub struct Input {
    /// The ring.
    pub consumer: Consumer<IngestItem>,
    /// The connection it comes from; `None` for the REST ring.
    pub conn: Option<usize>,
    message: Vec<Event>,
    open: bool,
}

impl Input {
    /// An input ring of connection `conn` (`None`: the REST ring).
    pub fn new(consumer: Consumer<IngestItem>, conn: Option<usize>) -> Input {
        Input {
            consumer,
            conn,
            message: Vec::with_capacity(4096),
            open: false,
        }
    }
}

/// The book thread's state. Build it, then call [`BookThread::run`] on the thread.
pub struct BookThread {
    engine: BookEngine,
    inputs: Vec<Input>,
    out: RingProducer<FanoutMsg>,
    fanout_waker: Option<Notifier>,
    strategy: WaitStrategy,
    wakeup: Arc<Wakeup>,
    topo: Topology,
    rest: Sender<RestRequest>,
    ingest_control: Vec<Sender<IngestControl>>,
    stats: Arc<CachePadded<BookThreadStats>>,
    is_book: Vec<bool>,
    last_stamps: Vec<Stamps>,
    published_valid: Vec<bool>,
    stale: Vec<bool>,
    stale_list: Vec<InstrumentId>,
    connected: Vec<bool>,
    resubscribed_at_ns: Vec<Option<u64>>,
    pending_ctl: VecDeque<FanoutMsg>,
    scratch: Vec<FanoutMsg>,
    resyncs: Vec<InstrumentId>,
    batch: Vec<IngestItem>,
    pushed: bool,
    latency: Option<StageRecorder>,
    conn_stats: Vec<Arc<CachePadded<super::ConnStats>>>,
    conn_sums: Vec<[u64; 3]>,
}

impl BookThread {
    /// Assembles the thread. `engine` has every book registered; `topo` says which
    /// connection carries what; `ingest_control[c]` reaches connection `c`.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        engine: BookEngine,
        inputs: Vec<Input>,
        out: RingProducer<FanoutMsg>,
        fanout_waker: Option<Notifier>,
        strategy: WaitStrategy,
        wakeup: Arc<Wakeup>,
        topo: Topology,
        rest: Sender<RestRequest>,
        ingest_control: Vec<Sender<IngestControl>>,
        stats: Arc<CachePadded<BookThreadStats>>,
    ) -> BookThread {
        let n = topo.conn_of.len();
        let conns = topo.conn_books.len();
        let mut is_book = vec![false; n];
        for id in topo.conn_books.iter().flatten() {
            if let Some(b) = is_book.get_mut(id.index()) {
                *b = true;
            }
        }
        BookThread {
            engine,
            inputs,
            out,
            fanout_waker,
            strategy,
            wakeup,
            topo,
            rest,
            ingest_control,
            stats,
            is_book,
            last_stamps: vec![Stamps::default(); n],
            published_valid: vec![false; n],
            stale: vec![false; n],
            stale_list: Vec::with_capacity(n),
            connected: vec![false; conns],
            resubscribed_at_ns: vec![None; n],
            pending_ctl: VecDeque::with_capacity(64),
            scratch: Vec::with_capacity(4096),
            resyncs: Vec::with_capacity(n),
            batch: Vec::with_capacity(BATCH),
            pushed: false,
            latency: None,
            conn_stats: Vec::new(),
            conn_sums: Vec::new(),
        }
    }

    /// Publishes per-connection book counters (gaps, resyncs, checksum failures) into
    /// `conn_stats[c]` for connection `c`, besides the totals.
    pub fn with_conn_stats(mut self, conn_stats: Vec<Arc<CachePadded<super::ConnStats>>>) -> Self {
        self.conn_sums = vec![[0; 3]; conn_stats.len()];
        self.conn_stats = conn_stats;
        self
    }

    /// Records [`Stage::PushToApplied`] with `recorder` and stamps `applied_delta_ns` on what
    /// is published (`None`: no stamping).
    pub fn with_latency(mut self, recorder: Option<StageRecorder>) -> BookThread {
        self.latency = recorder;
        self
    }

    /// Stamps `st` as applied now and records push → applied (when latency is on and the
    /// event has a read stamp).
    #[inline]
    fn stamp_applied(&mut self, st: &mut Stamps) {
        let Some(rec) = &mut self.latency else { return };
        if st.recv_mono_ns == 0 {
            return;
        }
        let now = mono_ns();
        st.applied_delta_ns = offset_ns(st.recv_mono_ns, now);
        if st.push_delta_ns != 0 {
            rec.record_between(
                Stage::PushToApplied,
                st.recv_mono_ns + st.push_delta_ns as u64,
                now,
            );
        }
    }

    /// Runs until every input's producer is gone and every ring is drained; returns the
    /// engine with the final books.
    pub fn run(mut self) -> BookEngine {
        let mut waiter = Waiter::new(self.strategy, self.wakeup.clone());
        let mut next_housekeeping = mono_ns();
        loop {
            let mut work = 0;
            for i in 0..self.inputs.len() {
                work += self.drain(i);
            }
            if work > 0 {
                self.dispatch_resyncs();
            }
            self.wake_fanout();
            let now = mono_ns();
            if now >= next_housekeeping {
                self.housekeeping(now);
                next_housekeeping = now + HOUSEKEEPING_NS;
            }
            if work > 0 {
                waiter.reset();
                continue;
            }
            let inputs = &self.inputs;
            if inputs
                .iter()
                .all(|i| i.consumer.is_abandoned() && i.consumer.is_empty())
            {
                break;
            }
            waiter.idle(|| inputs.iter().all(|i| i.consumer.is_empty()));
        }
        // final flush: control messages wait for room while the fan-out still reads
        for _ in 0..1000 {
            if self.flush_ctl() || self.out.is_abandoned() {
                break;
            }
            self.wake_fanout_now();
            std::thread::sleep(Duration::from_millis(1));
        }
        self.publish_stats();
        self.wake_fanout_now();
        if let Some(rec) = self.latency.take() {
            rec.finish();
        }
        self.engine
    }

    /// Drains up to [`BATCH`] items of input `i`; returns how many.
    fn drain(&mut self, i: usize) -> usize {
        let consumer = &mut self.inputs[i].consumer;
        let n = consumer.slots().min(BATCH);
        if n == 0 {
            return 0;
        }
        let mut batch = std::mem::take(&mut self.batch);
        batch.clear();
        if let Ok(chunk) = consumer.read_chunk(n) {
            let (a, b) = chunk.as_slices();
            batch.extend_from_slice(a);
            batch.extend_from_slice(b);
            chunk.commit_all();
        }
        for item in &batch {
            self.handle(i, *item);
        }
        self.batch = batch;
        n
    }

    fn handle(&mut self, i: usize, item: IngestItem) {
        match item {
            IngestItem::Event(ev) => match ev {
                Event::BookBegin(_) => {
                    let input = &mut self.inputs[i];
                    if input.open {
                        bump(&self.stats.truncated_messages, 1);
                    }
                    input.message.clear();
                    input.message.push(ev);
                    input.open = true;
                }
                Event::Level(_) => {
                    let input = &mut self.inputs[i];
                    if input.open {
                        input.message.push(ev);
                    } else {
                        bump(&self.stats.truncated_messages, 1);
                    }
                }
                Event::BookEnd(end) => {
                    let input = &mut self.inputs[i];
                    let matches = input.open
                        && matches!(input.message.first(), Some(Event::BookBegin(b)) if b.instrument == end.instrument);
                    if matches {
                        input.message.push(ev);
                        input.open = false;
                        self.apply_message(i);
                    } else {
                        input.open = false;
                        bump(&self.stats.truncated_messages, 1);
                    }
                }
                _ => {
                    if self.inputs[i].open {
                        self.inputs[i].open = false;
                        bump(&self.stats.truncated_messages, 1);
                    }
                    self.apply_simple(ev);
                }
            },
            IngestItem::Lost(id) => {
                let input = &mut self.inputs[i];
                if input.open {
                    input.open = false;
                }
                self.engine.invalidate(id, ResyncReason::DroppedDelta);
                self.check_invalid(id);
            }
            IngestItem::Connected => {
                if let Some(c) = self.inputs[i].conn {
                    self.on_connected(c);
                }
            }
            IngestItem::Disconnected { last_recv_ts_ns } => {
                self.inputs[i].open = false;
                if let Some(c) = self.inputs[i].conn {
                    self.on_disconnected(c, last_recv_ts_ns);
                }
            }
        }
    }

    /// Feeds one whole book message (in `inputs[i].message`) to the engine and publishes
    /// what it applied.
    fn apply_message(&mut self, i: usize) {
        let message = std::mem::take(&mut self.inputs[i].message);
        let Some(Event::BookBegin(begin)) = message.first().copied() else {
            self.inputs[i].message = message;
            return;
        };
        let id = begin.instrument;
        for ev in &message {
            self.engine.on_event(ev);
        }
        let synced = self.engine.state(id) == Some(SyncState::Synced);
        if self.engine.last_message_applied() && synced && id.index() < self.stale.len() {
            let mut stamps = begin.stamps;
            self.stamp_applied(&mut stamps);
            self.last_stamps[id.index()] = stamps;
            if self.engine.disposition() == Disposition::ApplySnapshot {
                self.publish_snapshot(id, stamps, false);
            } else if self.published_valid[id.index()] && !self.stale[id.index()] {
                self.scratch.clear();
                self.scratch
                    .extend(message.iter().map(|e| FanoutMsg::Event(*e)));
                if let Some(FanoutMsg::Event(Event::BookBegin(b))) = self.scratch.first_mut() {
                    b.stamps = stamps;
                }
                self.publish_book(id, false);
            }
        }
        self.check_invalid(id);
        self.inputs[i].message = message;
    }

    fn apply_simple(&mut self, mut ev: Event) {
        self.engine.on_event(&ev);
        if self.latency.is_some() {
            if let Some(st) = stamps_mut(&mut ev) {
                let mut s = *st;
                self.stamp_applied(&mut s);
                *st = s;
            }
        }
        let msg = match ev {
            Event::Trade(_) => {
                bump(&self.stats.trades, 1);
                FanoutMsg::Event(ev)
            }
            Event::Liquidation(_) | Event::BookTicker(_) => FanoutMsg::Event(ev),
            Event::DerivativeTicker(t) => {
                if !self.engine.last_ticker_changed() {
                    return;
                }
                match self.engine.ticker(t.instrument) {
                    Some(state) => {
                        let mut state = PackedTickerState::from(state);
                        // the merged state carries this update's stamps
                        state.merged.stamps = t.stamps;
                        FanoutMsg::Ticker(state)
                    }
                    None => return,
                }
            }
            Event::BookBegin(_) | Event::Level(_) | Event::BookEnd(_) => return,
        };
        if !self.flush_ctl() {
            self.out.count_dropped(1);
            return;
        }
        if self.out.push(msg).is_ok() {
            self.pushed = true;
        }
    }

    /// Publishes the engine's whole book of `id` as a snapshot message. `invalid_first`
    /// marks the republish of a stale book: a `BookInvalid` goes first when the fan-out
    /// held a copy, and a republish that still does not fit is not counted as a drop.
    fn publish_snapshot(&mut self, id: InstrumentId, stamps: Stamps, retry: bool) {
        let invalid_first = retry && self.published_valid[id.index()];
        self.scratch.clear();
        if invalid_first {
            self.scratch.push(FanoutMsg::BookInvalid(id));
        }
        let Some(book) = self.engine.book(id) else {
            return;
        };
        self.scratch
            .push(FanoutMsg::Event(Event::BookBegin(BookBegin {
                instrument: id,
                is_snapshot: true,
                seq: self.engine.last_sequence(id).unwrap_or_default(),
                stamps,
            })));
        for side in [BookSide::Bid, BookSide::Ask] {
            for (price, qty) in book.decimal_levels(side) {
                self.scratch
                    .push(FanoutMsg::Event(Event::Level(Level { side, price, qty })));
            }
        }
        self.scratch.push(FanoutMsg::Event(Event::BookEnd(BookEnd {
            instrument: id,
            checksum: None,
            aborted: false,
        })));
        if self.publish_book(id, retry) {
            if invalid_first {
                bump(&self.stats.invalidations, 1);
            }
            self.published_valid[id.index()] = true;
        }
    }

    /// Pushes `self.scratch` (one book message of `id`) whole, or marks the book stale. A
    /// republish of a stale book (`retry`) that still does not fit is not counted again.
    fn publish_book(&mut self, id: InstrumentId, retry: bool) -> bool {
        let room = self.flush_ctl() && (!retry || self.out.slots() >= self.scratch.len());
        if room && self.out.push_all(&self.scratch).is_ok() {
            self.pushed = true;
            bump(&self.stats.book_messages_published, 1);
            return true;
        }
        if !retry {
            bump(&self.stats.book_messages_dropped, 1);
        }
        if !self.stale[id.index()] {
            self.stale[id.index()] = true;
            self.stale_list.push(id);
        }
        false
    }

    /// Publishes `BookInvalid` if the fan-out holds a valid copy of a book that is no longer
    /// synced.
    fn check_invalid(&mut self, id: InstrumentId) {
        let Some(valid) = self.published_valid.get_mut(id.index()) else {
            return;
        };
        if *valid && self.engine.state(id) != Some(SyncState::Synced) {
            *valid = false;
            self.publish_ctl(FanoutMsg::BookInvalid(id));
            bump(&self.stats.invalidations, 1);
        }
    }

    /// Queues a message that must not be dropped.
    fn publish_ctl(&mut self, msg: FanoutMsg) {
        self.pending_ctl.push_back(msg);
        self.flush_ctl();
    }

    /// Delivers queued control messages while there is room; true when none is left.
    fn flush_ctl(&mut self) -> bool {
        while let Some(msg) = self.pending_ctl.front() {
            if self.out.slots() == 0 {
                return false;
            }
            let _ = self.out.push(*msg);
            self.pending_ctl.pop_front();
            self.pushed = true;
        }
        true
    }

    fn on_connected(&mut self, c: usize) {
        if let Some(flag) = self.connected.get_mut(c) {
            *flag = true;
        }
        // the engine's queued requests for this connection are covered below
        self.dispatch_resyncs();
        let books = self.topo.conn_books.get(c).cloned().unwrap_or_default();
        for id in books {
            self.resubscribed_at_ns[id.index()] = None;
            if self.topo.rest_book[id.index()] && self.engine.state(id) != Some(SyncState::Synced) {
                self.request_rest(c, id);
            }
        }
    }

    fn on_disconnected(&mut self, c: usize, last_recv_ts_ns: i64) {
        if let Some(flag) = self.connected.get_mut(c) {
            *flag = false;
        }
        let exchanges = self.topo.conn_exchanges.get(c).cloned().unwrap_or_default();
        for exchange in exchanges {
            self.publish_ctl(FanoutMsg::Disconnect {
                exchange,
                last_recv_ts_ns,
            });
        }
        let books = self.topo.conn_books.get(c).cloned().unwrap_or_default();
        for id in books {
            self.engine.invalidate(id, ResyncReason::Disconnected);
            self.check_invalid(id);
            self.resubscribed_at_ns[id.index()] = None;
        }
        // requests the invalidation queued wait for the reconnect
        self.dispatch_resyncs();
    }

    fn request_rest(&mut self, c: usize, id: InstrumentId) {
        if self
            .rest
            .try_send(RestRequest::Snapshot {
                conn: c,
                instrument: id,
            })
            .is_ok()
        {
            bump(&self.stats.rest_requests, 1);
        }
    }

    /// Sends the engine's resync requests where they can be served now.
    fn dispatch_resyncs(&mut self) {
        self.engine.take_resync_requests(&mut self.resyncs);
        if self.resyncs.is_empty() {
            return;
        }
        let mut resyncs = std::mem::take(&mut self.resyncs);
        for &id in &resyncs {
            let Some(Some(c)) = self.topo.conn_of.get(id.index()).copied() else {
                continue;
            };
            if !self.connected.get(c).copied().unwrap_or(false) {
                continue; // the reconnect brings fresh snapshots
            }
            if self.topo.rest_book[id.index()] {
                self.request_rest(c, id);
            } else if let Some(tx) = self.ingest_control.get(c) {
                if tx.try_send(IngestControl::Resubscribe(id)).is_ok() {
                    bump(&self.stats.resubscribes, 1);
                    self.resubscribed_at_ns[id.index()] = Some(mono_ns());
                }
            }
        }
        resyncs.clear();
        self.resyncs = resyncs;
    }

    fn housekeeping(&mut self, now_ns: u64) {
        self.flush_ctl();
        // republish stale books as their latest state (a failure queues the book again)
        let stale = std::mem::take(&mut self.stale_list);
        for &id in &stale {
            self.stale[id.index()] = false;
            if self.engine.state(id) == Some(SyncState::Synced) {
                self.publish_snapshot(id, self.last_stamps[id.index()], true);
            }
        }
        // WebSocket books that a resubscribe did not resync: reconnect their connection
        let timeout_ns = RESUBSCRIBE_TIMEOUT.as_nanos() as u64;
        for i in 0..self.resubscribed_at_ns.len() {
            let Some(at) = self.resubscribed_at_ns[i] else {
                continue;
            };
            let id = InstrumentId(i as u32);
            if self.engine.state(id) == Some(SyncState::Synced) {
                self.resubscribed_at_ns[i] = None;
            } else if now_ns.saturating_sub(at) > timeout_ns {
                self.resubscribed_at_ns[i] = None;
                if let Some(Some(c)) = self.topo.conn_of.get(i).copied() {
                    if let Some(tx) = self.ingest_control.get(c) {
                        let _ = tx.try_send(IngestControl::Reconnect);
                    }
                }
            }
        }
        self.publish_stats();
        self.wake_fanout();
        if let Some(rec) = &mut self.latency {
            rec.tick(now_ns);
        }
    }

    fn publish_stats(&mut self) {
        let (mut books, mut synced, mut snapshots, mut deltas, mut gaps, mut resyncs, mut fails) =
            (0, 0, 0, 0, 0, 0, 0);
        for sums in &mut self.conn_sums {
            *sums = [0; 3];
        }
        for id in self.engine.registered() {
            if !self.is_book.get(id.index()).copied().unwrap_or(false) {
                continue;
            }
            books += 1;
            if self.engine.state(id) == Some(SyncState::Synced) {
                synced += 1;
            }
            if let Some(s) = self.engine.stats(id) {
                snapshots += s.snapshots;
                deltas += s.deltas;
                gaps += s.gaps;
                resyncs += s.resyncs.iter().sum::<u64>();
                fails += s.checksum_fail;
                if let Some(Some(c)) = self.topo.conn_of.get(id.index()) {
                    if let Some(sums) = self.conn_sums.get_mut(*c) {
                        sums[0] += s.gaps;
                        sums[1] += s.resyncs.iter().sum::<u64>();
                        sums[2] += s.checksum_fail;
                    }
                }
            }
        }
        for (c, sums) in self.conn_stats.iter().zip(&self.conn_sums) {
            c.book_gaps.store(sums[0], Ordering::Relaxed);
            c.book_resyncs.store(sums[1], Ordering::Relaxed);
            c.book_checksum_failures.store(sums[2], Ordering::Relaxed);
        }
        let st = &self.stats;
        st.books.store(books, Ordering::Relaxed);
        st.books_synced.store(synced, Ordering::Relaxed);
        st.snapshots.store(snapshots, Ordering::Relaxed);
        st.deltas.store(deltas, Ordering::Relaxed);
        st.gaps.store(gaps, Ordering::Relaxed);
        st.resyncs.store(resyncs, Ordering::Relaxed);
        st.checksum_failures.store(fails, Ordering::Relaxed);
    }

    #[inline]
    fn wake_fanout(&mut self) {
        if self.pushed {
            self.pushed = false;
            self.wake_fanout_now();
        }
    }

    fn wake_fanout_now(&self) {
        if let Some(n) = &self.fanout_waker {
            n.notify();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Decimal, Sequence, Side, Trade};
    use crate::pipeline::ring;
    use crossbeam_channel::Receiver;

    const A: InstrumentId = InstrumentId(0);
    const B: InstrumentId = InstrumentId(1);

    fn book_message(
        id: InstrumentId,
        snapshot: bool,
        update_id: u64,
        levels: u32,
    ) -> Vec<IngestItem> {
        let mut v = vec![IngestItem::Event(Event::BookBegin(BookBegin {
            instrument: id,
            is_snapshot: snapshot,
            seq: Sequence::Bybit {
                update_id,
                cross_seq: update_id,
            },
            stamps: Stamps::default(),
        }))];
        for i in 0..levels {
            v.push(IngestItem::Event(Event::Level(Level {
                side: if i % 2 == 0 {
                    BookSide::Bid
                } else {
                    BookSide::Ask
                },
                price: Decimal::new(
                    if i % 2 == 0 {
                        100 - i as i64
                    } else {
                        101 + i as i64
                    },
                    0,
                ),
                qty: Decimal::new(update_id as i64, 0),
            })));
        }
        v.push(IngestItem::Event(Event::BookEnd(BookEnd {
            instrument: id,
            checksum: None,
            aborted: false,
        })));
        v
    }

    fn trade(id: InstrumentId) -> IngestItem {
        IngestItem::Event(Event::Trade(Trade {
            instrument: id,
            id: None,
            price: Decimal::new(1, 0),
            qty: Decimal::new(1, 0),
            side: Side::Buy,
            stamps: Stamps::default(),
        }))
    }

    struct Rig {
        ingest: RingProducer<IngestItem>,
        rest_ring: RingProducer<IngestItem>,
        out: Consumer<FanoutMsg>,
        out_stats: Arc<crate::pipeline::QueueStats>,
        rest: Receiver<RestRequest>,
        control: Receiver<IngestControl>,
        stats: Arc<CachePadded<BookThreadStats>>,
        thread: std::thread::JoinHandle<BookEngine>,
        wakeup: Arc<Wakeup>,
    }

    /// Two books A and B on connection 0 of Bybit; `rest_books` makes them REST-seeded.
    fn rig(out_slots: usize, rest_books: bool) -> Rig {
        let mut engine = BookEngine::new();
        for id in [A, B] {
            engine.register(id, crate::venue::bybit::check_sequence, None, rest_books);
        }
        let (ingest, ingest_rx, _) = ring("ingest", 1024);
        let (rest_ring, rest_rx, _) = ring("rest", 1024);
        let (out_tx, out, out_stats) = ring("fanout", out_slots);
        let (rest_tx, rest) = crossbeam_channel::bounded(16);
        let (control_tx, control) = crossbeam_channel::bounded(16);
        let stats = Arc::new(CachePadded::new(BookThreadStats::default()));
        let wakeup = Arc::new(Wakeup::new());
        let topo = Topology {
            conn_of: vec![Some(0), Some(0)],
            rest_book: vec![rest_books; 2],
            conn_exchanges: vec![vec![Exchange::Bybit]],
            conn_books: vec![vec![A, B]],
        };
        let t = BookThread::new(
            engine,
            vec![Input::new(ingest_rx, Some(0)), Input::new(rest_rx, None)],
            out_tx,
            None,
            WaitStrategy::Backoff,
            wakeup.clone(),
            topo,
            rest_tx,
            vec![control_tx],
            stats.clone(),
        );
        let thread = std::thread::spawn(move || t.run());
        Rig {
            ingest,
            rest_ring,
            out,
            out_stats,
            rest,
            control,
            stats,
            thread,
            wakeup,
        }
    }

    impl Rig {
        fn send(&mut self, items: &[IngestItem]) {
            for it in items {
                self.ingest.push(*it).unwrap();
            }
            self.wakeup.notify();
        }

        /// Waits (at most 5 s) until the book thread has taken everything sent on the ingest
        /// ring, so that what is pushed next on another ring is seen after it.
        fn wait_ingest_drained(&self) {
            let until = std::time::Instant::now() + Duration::from_secs(5);
            while self.ingest.slots() < 1024 && std::time::Instant::now() < until {
                std::thread::sleep(Duration::from_millis(1));
            }
            assert_eq!(
                self.ingest.slots(),
                1024,
                "book thread did not drain the ingest ring"
            );
        }

        fn finish(self) -> (BookEngine, Vec<FanoutMsg>, Rig2) {
            let Rig {
                ingest,
                rest_ring,
                mut out,
                out_stats,
                rest,
                control,
                stats,
                thread,
                ..
            } = self;
            drop(ingest);
            drop(rest_ring);
            let engine = thread.join().unwrap();
            let msgs = std::iter::from_fn(|| out.pop().ok()).collect();
            (
                engine,
                msgs,
                Rig2 {
                    rest,
                    control,
                    stats,
                    out_stats,
                },
            )
        }
    }

    struct Rig2 {
        rest: Receiver<RestRequest>,
        control: Receiver<IngestControl>,
        stats: Arc<CachePadded<BookThreadStats>>,
        out_stats: Arc<crate::pipeline::QueueStats>,
    }

    fn kinds(msgs: &[FanoutMsg]) -> Vec<String> {
        msgs.iter()
            .filter_map(|m| match m {
                FanoutMsg::Event(Event::BookBegin(b)) => Some(format!(
                    "{}{}",
                    if b.is_snapshot { "snap" } else { "delta" },
                    b.instrument.0
                )),
                FanoutMsg::Event(Event::Trade(t)) => Some(format!("trade{}", t.instrument.0)),
                FanoutMsg::BookInvalid(id) => Some(format!("invalid{}", id.0)),
                FanoutMsg::Disconnect { exchange, .. } => {
                    Some(format!("disconnect-{}", exchange.id()))
                }
                _ => None,
            })
            .collect()
    }

    #[test]
    fn a_lost_delta_resyncs_that_book_alone() {
        let mut r = rig(1024, false);
        r.send(&[IngestItem::Connected]);
        r.send(&book_message(A, true, 10, 4));
        r.send(&book_message(B, true, 20, 4));
        r.send(&[IngestItem::Lost(A)]);
        r.send(&book_message(B, false, 21, 2));
        r.send(&book_message(A, false, 11, 2)); // A is resyncing: not applied, not published
        r.send(&[trade(A)]);
        let (engine, msgs, rest) = r.finish();
        assert_eq!(
            kinds(&msgs),
            ["snap0", "snap1", "invalid0", "delta1", "trade0"]
        );
        assert_eq!(
            engine.state(A),
            Some(SyncState::Resyncing(ResyncReason::DroppedDelta))
        );
        assert_eq!(engine.state(B), Some(SyncState::Synced));
        // a WebSocket-snapshot book: the ingest thread resubscribes it
        assert_eq!(rest.control.try_recv(), Ok(IngestControl::Resubscribe(A)));
        assert!(rest.control.try_recv().is_err());
        assert!(rest.rest.try_recv().is_err());
        assert_eq!(rest.stats.invalidations.load(Ordering::Relaxed), 1);
        assert_eq!(rest.stats.trades.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn truncated_messages_are_discarded_and_counted() {
        let mut r = rig(1024, false);
        r.send(&[IngestItem::Connected]);
        let snap = book_message(A, true, 10, 4);
        r.send(&snap[..3]); // begin + 2 levels, then the rest never comes
        r.send(&[trade(B)]);
        r.send(&snap[3..]); // orphan levels and end
        r.send(&book_message(B, true, 1, 2));
        let (engine, msgs, rest) = r.finish();
        assert_eq!(kinds(&msgs), ["trade1", "snap1"]);
        assert_eq!(engine.state(A), Some(SyncState::AwaitingSnapshot));
        assert!(rest.stats.truncated_messages.load(Ordering::Relaxed) >= 2);
    }

    #[test]
    fn disconnect_comes_before_book_invalid_and_waits_for_reconnect() {
        let mut r = rig(1024, false);
        r.send(&[IngestItem::Connected]);
        r.send(&book_message(A, true, 10, 4));
        r.send(&[IngestItem::Disconnected { last_recv_ts_ns: 5 }]);
        r.send(&[IngestItem::Connected]);
        r.send(&book_message(A, true, 1, 2));
        let (engine, msgs, rest) = r.finish();
        assert_eq!(
            kinds(&msgs),
            ["snap0", "disconnect-bybit", "invalid0", "snap0"]
        );
        assert!(msgs.contains(&FanoutMsg::Disconnect {
            exchange: Exchange::Bybit,
            last_recv_ts_ns: 5
        }));
        assert_eq!(engine.state(A), Some(SyncState::Synced));
        // no resubscribe while down: the reconnect brought the snapshots
        assert!(rest.control.try_recv().is_err());
    }

    #[test]
    fn rest_books_ask_for_snapshots_and_publish_the_merged_book() {
        let mut r = rig(1024, true);
        r.send(&[IngestItem::Connected]);
        let mut asked = Vec::new();
        let until = std::time::Instant::now() + Duration::from_secs(5);
        while asked.len() < 2 && std::time::Instant::now() < until {
            if let Ok(req) = r.rest.recv_timeout(Duration::from_millis(10)) {
                asked.push(req);
            }
        }
        assert_eq!(
            asked,
            [
                RestRequest::Snapshot {
                    conn: 0,
                    instrument: A
                },
                RestRequest::Snapshot {
                    conn: 0,
                    instrument: B
                }
            ]
        );
        // a delta arrives before the snapshot: buffered, then applied with it, and the
        // published snapshot is the merged book
        r.send(&book_message(A, false, 11, 2));
        // the two rings are independent: make sure the delta was taken first
        r.wait_ingest_drained();
        for it in book_message(A, true, 10, 4) {
            r.rest_ring.push(it).unwrap();
        }
        r.wakeup.notify();
        let (engine, msgs, _) = r.finish();
        assert_eq!(kinds(&msgs), ["snap0"]);
        assert_eq!(engine.state(A), Some(SyncState::Synced));
        let published: Vec<(BookSide, i64, i64)> = msgs
            .iter()
            .filter_map(|m| match m {
                FanoutMsg::Event(Event::Level(l)) => {
                    Some((l.side, l.price.mantissa, l.qty.mantissa))
                }
                _ => None,
            })
            .collect();
        let book = engine.book(A).unwrap();
        let want: Vec<(BookSide, i64, i64)> = [BookSide::Bid, BookSide::Ask]
            .into_iter()
            .flat_map(|s| {
                book.decimal_levels(s)
                    .map(move |(p, q)| (s, p.mantissa, q.mantissa))
            })
            .collect();
        assert_eq!(published, want);
        // the delta's size (11) won over the snapshot's (10) at the levels it touched
        assert!(published.iter().any(|l| l.2 == 11));
    }

    #[test]
    fn a_full_fanout_ring_drops_trades_and_republishes_books() {
        let mut r = rig(16, false);
        r.send(&[IngestItem::Connected]);
        r.send(&book_message(A, true, 10, 4)); // 6 items
        r.send(&book_message(A, false, 11, 10)); // 12 items: does not fit
        for _ in 0..20 {
            r.send(&[trade(B)]); // 10 fit, 10 dropped
        }
        // wait until the ring is full, then drain it: the book comes back whole
        let until = std::time::Instant::now() + Duration::from_secs(5);
        while r.out_stats.dropped() < 22 && std::time::Instant::now() < until {
            std::thread::sleep(Duration::from_millis(1));
        }
        let mut msgs = Vec::new();
        let until = std::time::Instant::now() + Duration::from_secs(5);
        while std::time::Instant::now() < until
            && !kinds(&msgs).ends_with(&["invalid0".to_string(), "snap0".to_string()])
        {
            while let Ok(m) = r.out.pop() {
                msgs.push(m);
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        let (engine, rest_msgs, rest) = r.finish();
        msgs.extend(rest_msgs);
        let k = kinds(&msgs);
        assert_eq!(k[0], "snap0");
        assert_eq!(k.iter().filter(|k| *k == "trade1").count(), 10, "{k:?}");
        assert_eq!(&k[k.len() - 2..], ["invalid0", "snap0"], "{k:?}");
        assert_eq!(rest.stats.book_messages_dropped.load(Ordering::Relaxed), 1);
        assert_eq!(rest.out_stats.dropped(), 12 + 10);
        // the republished snapshot is the engine's latest book
        let last_snapshot_levels = msgs
            .iter()
            .rev()
            .take_while(|m| !matches!(m, FanoutMsg::Event(Event::BookBegin(_))))
            .filter(|m| matches!(m, FanoutMsg::Event(Event::Level(_))))
            .count();
        let book = engine.book(A).unwrap();
        assert_eq!(
            last_snapshot_levels,
            book.depth(BookSide::Bid) + book.depth(BookSide::Ask)
        );
    }
}

//! The book thread: the single writer of every book.
//!
//! It drains every ingest ring and the REST ring in batches, feeds the [`BookEngine`] one
//! whole book message at a time (a message's events are gathered per ring until its
//! `BookEnd`, so messages of different rings never interleave in the engine). After each
//! applied book message it writes the book's state into the instrument's latest-state slot
//! ([`BookSlots`]: best levels, update id, sync status, stamps) and publishes to each fan-out
//! shard's ring ([`ShardOut`]):
//! - a [`FanoutMsg::Book`] notice of the slot version, for snapshots, quotes and imbalance
//!   (when the shard takes no deltas of the book, only while it has none of the book queued:
//!   [`BookSlots::claim_notice`]);
//! - before it, only when the shard has `book_change` subscribers of the instrument
//!   ([`BookSlots::want_deltas`]): applied deltas as their `BookBegin`/`Level`/`BookEnd`
//!   events, applied snapshots as the engine's whole book after the snapshot (so deltas the
//!   engine buffered before a REST snapshot and applied with it are included);
//! - a full-book snapshot after a [`FanoutMsg::Resnapshot`] marker in answer to the shard's
//!   snapshot request (a `book_change` subscriber joining or recovering);
//! - [`FanoutMsg::BookInvalid`] when a book the shard was told about leaves `synced`, and
//!   [`FanoutMsg::Disconnect`] per exchange when a connection drops (before the
//!   `BookInvalid`s of its books).
//!
//! Trades, liquidations and tickers do not come here: each ingest thread sends them down its
//! own trade lane to every shard (`FanoutMsg::Event`, `FanoutMsg::Ticker`), so L2 work never
//! delays them. Those that do arrive on an input (tests, replays) are published as they come.
//!
//! It wakes each shard once per batch through its [`Notifier`], which skips the wake-up
//! syscall while the fan-out loop is awake.
//!
//! Fan-out ring policy (DESIGN.md, book → fan-out): a book message (with its notice) that does
//! not fit whole is dropped and the book is marked stale on that shard, then republished as
//! its latest state as soon as there is room: a notice, preceded by a `BookInvalid` and a full
//! snapshot when the shard takes deltas. Books travel as conflated latest state, so a book
//! burst never blocks anything. `BookInvalid` and `Disconnect` are never dropped: they wait in
//! a small queue per shard that is flushed before anything else. Trades that reach this
//! thread are dropped and counted on a full ring.
//!
//! Resyncs: the engine's resync requests go to the REST thread (REST-snapshot books) or to
//! the connection's ingest thread as a resubscribe (WebSocket-snapshot books); a WebSocket
//! book still unsynced `[resync] resubscribe_timeout_ms` after its resubscribe went out gets
//! its connection reconnected.
//! Requests for books of a connection that is down wait for its reconnect, which brings
//! fresh snapshots of every book of the connection.

mod resync;

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use crossbeam_channel::Sender;
use crossbeam_utils::CachePadded;
use rtrb::Consumer;

use crate::book::{BookEngine, Disposition, PackedTickerState, ResyncReason, SyncState};
use crate::config::ResyncConfig;
use crate::fanout::{BookNotice, FanoutMsg, Notifier};
use crate::metrics::{Stage, StageRecorder, offset_ns, stamps_mut};
use crate::model::{BookBegin, BookEnd, BookSide, Event, Exchange, InstrumentId, Level, Stamps};
use crate::pipeline::slot::{BookSlots, MAX_SHARDS, ShardRequest};

use crate::ingest::IngestControl;
pub use crate::ingest::IngestItem;
use crate::ingest::rest::RestRequest;

use super::RingProducer;
use super::stats::{BookThreadStats, bump};
use super::wait::{WaitStrategy, Waiter, Wakeup};
use crate::clock::mono_ns;

/// Most items taken from one ring before the next ring gets its turn.
pub const BATCH: usize = 1024;

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

/// One fan-out shard as the book thread publishes to it.
pub struct ShardOut {
    out: RingProducer<FanoutMsg>,
    waker: Option<Notifier>,
    requests: Option<Consumer<ShardRequest>>,
    all_deltas: bool,
    pending_ctl: VecDeque<FanoutMsg>,
    /// Per instrument: the shard was told the book is synced (a notice) and not told since
    /// that it is not.
    valid: Vec<bool>,
    /// Per instrument: a publish to the shard was dropped; republished by housekeeping.
    stale: Vec<bool>,
    stale_list: Vec<InstrumentId>,
    /// Requests taken from the shard and not answered yet (no room on its ring).
    waiting: Vec<ShardRequest>,
    pushed: bool,
}

impl ShardOut {
    /// A shard fed over `out`, woken with `waker` after each batch.
    pub fn new(out: RingProducer<FanoutMsg>, waker: Option<Notifier>) -> ShardOut {
        ShardOut {
            out,
            waker,
            requests: None,
            all_deltas: false,
            pending_ctl: VecDeque::with_capacity(64),
            valid: Vec::new(),
            stale: Vec::new(),
            stale_list: Vec::new(),
            waiting: Vec::new(),
            pushed: false,
        }
    }

    /// Answers the shard's requests (`book_change` snapshots, slot refreshes) from `requests`.
    pub fn with_requests(mut self, requests: Consumer<ShardRequest>) -> ShardOut {
        self.requests = Some(requests);
        self
    }

    /// Publishes every instrument's deltas whatever the shard's wants (a consumer that
    /// rebuilds books from the ring: tests, an external fan-out).
    pub fn with_all_deltas(mut self) -> ShardOut {
        self.all_deltas = true;
        self
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

    fn mark_stale(&mut self, id: InstrumentId) {
        if let Some(flag) = self.stale.get_mut(id.index()) {
            if !*flag {
                *flag = true;
                self.stale_list.push(id);
            }
        }
    }
}

/// The book thread's state. Build it, then call [`BookThread::run`] on the thread.
pub struct BookThread {
    engine: BookEngine,
    inputs: Vec<Input>,
    shards: Vec<ShardOut>,
    slots: Arc<BookSlots>,
    /// Per instrument: the slot says synced.
    slot_synced: Vec<bool>,
    /// Per instrument: the last slot version written.
    slot_version: Vec<u64>,
    strategy: WaitStrategy,
    wakeup: Arc<Wakeup>,
    topo: Topology,
    rest: Sender<RestRequest>,
    ingest_control: Vec<Sender<IngestControl>>,
    stats: Arc<CachePadded<BookThreadStats>>,
    is_book: Vec<bool>,
    last_stamps: Vec<Stamps>,
    connected: Vec<bool>,
    resubscribed_at_ns: Vec<Option<u64>>,
    scratch: Vec<FanoutMsg>,
    resyncs: Vec<InstrumentId>,
    batch: Vec<IngestItem>,
    latency: Option<StageRecorder>,
    conn_stats: Vec<Arc<CachePadded<super::ConnStats>>>,
    /// Per connection: gaps, resyncs, checksum failures, stale deltas, books, synced books.
    conn_sums: Vec<[u64; 6]>,
    book_resyncs: Arc<[super::stats::BookResyncs]>,
    resync_policy: ResyncConfig,
    /// Per instrument: resyncs sent since it was last synced for `reset_after_ms`.
    resync_attempts: Vec<u32>,
    /// Per instrument: monotonic ns of the last resync sent (0: never).
    resync_sent_ns: Vec<u64>,
    /// Per instrument: no resync before this monotonic ns.
    resync_not_before_ns: Vec<u64>,
    /// Resyncs held back by the backoff, in no order; `deferred_flag` marks members.
    deferred: Vec<InstrumentId>,
    deferred_flag: Vec<bool>,
    /// Per connection: start of the budget window (monotonic ns) and resyncs sent in it.
    budget: Vec<(u64, u32)>,
    jitter: u64,
}

impl BookThread {
    /// Assembles the thread. `engine` has every book registered; `shards` are the fan-out
    /// shards in index order (at most [`MAX_SHARDS`]; more are ignored), all reading `slots`;
    /// `topo` says which connection carries what; `ingest_control[c]` reaches connection `c`.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        engine: BookEngine,
        inputs: Vec<Input>,
        mut shards: Vec<ShardOut>,
        slots: Arc<BookSlots>,
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
        shards.truncate(MAX_SHARDS);
        for sh in &mut shards {
            sh.valid = vec![false; n];
            sh.stale = vec![false; n];
            sh.stale_list = Vec::with_capacity(n);
            sh.waiting = Vec::with_capacity(n);
        }
        BookThread {
            engine,
            inputs,
            shards,
            slots,
            slot_synced: vec![false; n],
            slot_version: vec![0; n],
            strategy,
            wakeup,
            topo,
            rest,
            ingest_control,
            stats,
            is_book,
            last_stamps: vec![Stamps::default(); n],
            connected: vec![false; conns],
            resubscribed_at_ns: vec![None; n],
            scratch: Vec::with_capacity(4096),
            resyncs: Vec::with_capacity(n),
            batch: Vec::with_capacity(BATCH),
            latency: None,
            conn_stats: Vec::new(),
            conn_sums: Vec::new(),
            book_resyncs: Arc::new([]),
            resync_policy: ResyncConfig::default(),
            resync_attempts: vec![0; n],
            resync_sent_ns: vec![0; n],
            resync_not_before_ns: vec![0; n],
            deferred: Vec::with_capacity(n),
            deferred_flag: vec![false; n],
            budget: vec![(0, 0); conns],
            jitter: 0x9E37_79B9_7F4A_7C15 ^ mono_ns(),
        }
    }

    /// Paces resyncs with `policy` (default [`ResyncConfig::default`]).
    pub fn with_resync_policy(mut self, policy: ResyncConfig) -> BookThread {
        self.resync_policy = policy;
        self
    }

    /// Publishes per-connection book counters (gaps, resyncs, checksum failures) into
    /// `conn_stats[c]` for connection `c`, besides the totals.
    pub fn with_conn_stats(mut self, conn_stats: Vec<Arc<CachePadded<super::ConnStats>>>) -> Self {
        self.conn_sums = vec![[0; 6]; conn_stats.len()];
        self.conn_stats = conn_stats;
        self
    }

    /// Publishes each book's resyncs by reason into `book_resyncs[id]` as well.
    pub fn with_book_resyncs(mut self, book_resyncs: Arc<[super::stats::BookResyncs]>) -> Self {
        self.book_resyncs = book_resyncs;
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
            work += self.serve_requests();
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
            let shards = &self.shards;
            waiter.idle(|| {
                inputs.iter().all(|i| i.consumer.is_empty())
                    && shards
                        .iter()
                        .all(|s| s.requests.as_ref().is_none_or(Consumer::is_empty))
            });
        }
        // final flush: control messages wait for room while the fan-out still reads
        for _ in 0..1000 {
            let mut done = true;
            for sh in &mut self.shards {
                done &= sh.flush_ctl() || sh.out.is_abandoned();
            }
            if done {
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
    /// what it applied: the slot, then each shard's notice (and deltas, where wanted).
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
        if self.engine.last_message_applied() && synced && id.index() < self.slot_version.len() {
            let mut stamps = begin.stamps;
            self.stamp_applied(&mut stamps);
            self.last_stamps[id.index()] = stamps;
            let version = self.publish_slot(id, stamps);
            let snapshot = self.engine.disposition() == Disposition::ApplySnapshot;
            let mask = self.slots.deltas_wanted(id);
            for s in 0..self.shards.len() {
                self.scratch.clear();
                let deltas = self.shards[s].all_deltas || mask >> s & 1 == 1;
                if !deltas && !self.slots.claim_notice(id, s) {
                    bump(&self.stats.book_notices_coalesced, 1);
                    continue;
                }
                if deltas {
                    if snapshot {
                        self.snapshot_events(id, stamps);
                    } else if !self.shards[s].stale[id.index()] {
                        self.scratch
                            .extend(message.iter().map(|e| FanoutMsg::Event(*e)));
                        if let Some(FanoutMsg::Event(Event::BookBegin(b))) =
                            self.scratch.first_mut()
                        {
                            b.stamps = stamps;
                        }
                    }
                }
                self.scratch.push(FanoutMsg::Book(BookNotice {
                    instrument: id,
                    version,
                    stamps,
                }));
                if !self.push_book(s, id, false) && !deltas {
                    self.slots.unclaim_notice(id, s);
                }
            }
        }
        self.check_invalid(id);
        self.inputs[i].message = message;
    }

    /// Writes the engine's book of `id` (synced) into its slot; returns the version.
    fn publish_slot(&mut self, id: InstrumentId, stamps: Stamps) -> u64 {
        let update_id = self.engine.last_sequence(id).map_or(0, |s| s.update_id());
        let version = self
            .slots
            .publish(id, true, update_id, stamps, self.engine.book(id));
        self.slot_synced[id.index()] = true;
        self.slot_version[id.index()] = version;
        version
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
            Event::Liquidation(_) | Event::BookTicker(_) | Event::OptionHalf(_) => {
                FanoutMsg::Event(ev)
            }
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
        for sh in &mut self.shards {
            if !sh.flush_ctl() {
                sh.out.count_dropped(1);
                continue;
            }
            if sh.out.push(msg).is_ok() {
                sh.pushed = true;
            }
        }
    }

    /// Appends the engine's whole book of `id` as one snapshot message to `self.scratch`.
    fn snapshot_events(&mut self, id: InstrumentId, stamps: Stamps) {
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
    }

    /// Pushes `self.scratch` (one book message of `id` and its notice) whole to shard `s`, or
    /// marks the book stale there. A republish of a stale book (`retry`) that still does not
    /// fit is not counted again.
    fn push_book(&mut self, s: usize, id: InstrumentId, retry: bool) -> bool {
        let sh = &mut self.shards[s];
        let room = sh.flush_ctl() && (!retry || sh.out.slots() >= self.scratch.len());
        if room && sh.out.push_all(&self.scratch).is_ok() {
            sh.pushed = true;
            sh.valid[id.index()] = true;
            bump(&self.stats.book_messages_published, 1);
            return true;
        }
        if !retry {
            bump(&self.stats.book_messages_dropped, 1);
        }
        sh.mark_stale(id);
        false
    }

    /// Republishes the books marked stale on shard `s` as their latest state: a notice, and
    /// for a shard taking deltas a `BookInvalid` (when it was told the book is synced) and a
    /// full snapshot first. A failure marks the book stale again.
    fn republish_stale(&mut self, s: usize) {
        let stale = std::mem::take(&mut self.shards[s].stale_list);
        for &id in &stale {
            let i = id.index();
            self.shards[s].stale[i] = false;
            if self.engine.state(id) != Some(SyncState::Synced) {
                continue;
            }
            let stamps = self.last_stamps[i];
            let deltas = self.shards[s].all_deltas || self.slots.deltas_wanted(id) >> s & 1 == 1;
            let invalid_first = deltas && self.shards[s].valid[i];
            self.scratch.clear();
            if invalid_first {
                self.scratch.push(FanoutMsg::BookInvalid(id));
            }
            if deltas {
                self.snapshot_events(id, stamps);
            }
            self.scratch.push(FanoutMsg::Book(BookNotice {
                instrument: id,
                version: self.slot_version[i],
                stamps,
            }));
            if self.push_book(s, id, true) && invalid_first {
                bump(&self.stats.invalidations, 1);
            }
        }
        let mut stale = stale;
        stale.clear();
        if self.shards[s].stale_list.is_empty() {
            self.shards[s].stale_list = stale;
        }
    }

    /// Answers the shards' requests: for a snapshot, a [`FanoutMsg::Resnapshot`] marker and
    /// the engine's whole book; for a refresh, the slot rewritten at the depth now wanted and
    /// a notice. Only for a synced book: one that is not gets its snapshot from the venue,
    /// which every `book_change` subscriber receives, and its slot then. Returns how many
    /// requests were taken.
    fn serve_requests(&mut self) -> usize {
        let mut taken = 0;
        for s in 0..self.shards.len() {
            let sh = &mut self.shards[s];
            if let Some(req) = sh.requests.as_mut() {
                while let Ok(r) = req.pop() {
                    if !sh.waiting.contains(&r) {
                        sh.waiting.push(r);
                    }
                    taken += 1;
                }
            }
            if sh.waiting.is_empty() {
                continue;
            }
            let mut waiting = std::mem::take(&mut self.shards[s].waiting);
            let mut k = 0;
            while k < waiting.len() {
                let (ShardRequest::Snapshot(id) | ShardRequest::Refresh(id)) = waiting[k];
                let i = id.index();
                if i >= self.slot_version.len() || self.engine.state(id) != Some(SyncState::Synced)
                {
                    waiting.swap_remove(k);
                    continue;
                }
                let stamps = self.last_stamps[i];
                self.scratch.clear();
                match waiting[k] {
                    ShardRequest::Snapshot(_) => {
                        self.scratch.push(FanoutMsg::Resnapshot(id));
                        self.snapshot_events(id, stamps);
                    }
                    ShardRequest::Refresh(_) => {
                        let version = self.publish_slot(id, stamps);
                        self.scratch.push(FanoutMsg::Book(BookNotice {
                            instrument: id,
                            version,
                            stamps,
                        }));
                    }
                }
                let sh = &mut self.shards[s];
                if sh.flush_ctl() && sh.out.push_all(&self.scratch).is_ok() {
                    sh.pushed = true;
                    if matches!(waiting[k], ShardRequest::Snapshot(_)) {
                        bump(&self.stats.snapshot_requests_served, 1);
                    }
                    waiting.swap_remove(k);
                } else {
                    k += 1;
                }
            }
            self.shards[s].waiting = waiting;
        }
        taken
    }

    /// A book that is no longer synced: the slot says so (once), and each shard that was
    /// told it is synced gets a `BookInvalid`.
    fn check_invalid(&mut self, id: InstrumentId) {
        let i = id.index();
        if i >= self.slot_synced.len() || self.engine.state(id) == Some(SyncState::Synced) {
            return;
        }
        if self.slot_synced[i] {
            self.slot_synced[i] = false;
            self.slot_version[i] = self.slots.publish(id, false, 0, self.last_stamps[i], None);
        }
        let mut any = false;
        for s in 0..self.shards.len() {
            if self.shards[s].valid[i] {
                self.shards[s].valid[i] = false;
                self.publish_ctl_to(s, FanoutMsg::BookInvalid(id));
                any = true;
            }
        }
        if any {
            bump(&self.stats.invalidations, 1);
        }
    }

    /// Queues a message that must not be dropped to every shard.
    fn publish_ctl(&mut self, msg: FanoutMsg) {
        for s in 0..self.shards.len() {
            self.publish_ctl_to(s, msg);
        }
    }

    fn publish_ctl_to(&mut self, s: usize, msg: FanoutMsg) {
        if let FanoutMsg::BookInvalid(id) = msg {
            // a notice queued before it is read before it: the book's next state needs a
            // notice of its own after it (else the shard sees the fresh state, then the
            // `BookInvalid`, and waits for an update that may never come)
            self.slots.unclaim_notice(id, s);
        }
        let sh = &mut self.shards[s];
        sh.pending_ctl.push_back(msg);
        sh.flush_ctl();
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
                conn: c as u32,
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

    fn publish_stats(&mut self) {
        let (mut books, mut synced, mut snapshots, mut deltas, mut gaps, mut resyncs, mut fails) =
            (0, 0, 0, 0, 0, 0, 0);
        for sums in &mut self.conn_sums {
            *sums = [0; 6];
        }
        for id in self.engine.registered() {
            if !self.is_book.get(id.index()).copied().unwrap_or(false) {
                continue;
            }
            books += 1;
            let is_synced = self.engine.state(id) == Some(SyncState::Synced);
            synced += u64::from(is_synced);
            if let Some(Some(c)) = self.topo.conn_of.get(id.index()) {
                if let Some(sums) = self.conn_sums.get_mut(*c) {
                    sums[4] += 1;
                    sums[5] += u64::from(is_synced);
                }
            }
            if let Some(s) = self.engine.stats(id) {
                snapshots += s.snapshots;
                deltas += s.deltas;
                gaps += s.gaps;
                resyncs += s.resyncs.iter().sum::<u64>();
                fails += s.checksum_fail;
                if let Some(b) = self.book_resyncs.get(id.index()) {
                    for (a, v) in b.by_reason.iter().zip(s.resyncs) {
                        a.store(v, Ordering::Relaxed);
                    }
                }
                if let Some(Some(c)) = self.topo.conn_of.get(id.index()) {
                    if let Some(sums) = self.conn_sums.get_mut(*c) {
                        sums[0] += s.gaps;
                        sums[1] += s.resyncs.iter().sum::<u64>();
                        sums[2] += s.checksum_fail;
                        sums[3] += s.stale;
                    }
                }
            }
        }
        for (c, sums) in self.conn_stats.iter().zip(&self.conn_sums) {
            c.book_gaps.store(sums[0], Ordering::Relaxed);
            c.book_resyncs.store(sums[1], Ordering::Relaxed);
            c.book_checksum_failures.store(sums[2], Ordering::Relaxed);
            c.book_stale_deltas.store(sums[3], Ordering::Relaxed);
            c.books.store(sums[4], Ordering::Relaxed);
            c.books_synced.store(sums[5], Ordering::Relaxed);
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
        for sh in &mut self.shards {
            if sh.pushed {
                sh.pushed = false;
                if let Some(n) = &sh.waker {
                    n.notify();
                }
            }
        }
    }

    fn wake_fanout_now(&self) {
        for sh in &self.shards {
            if let Some(n) = &sh.waker {
                n.notify();
            }
        }
    }
}

#[cfg(test)]
mod tests;

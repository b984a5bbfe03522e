//! The book engine: the single writer of every book. It consumes normalized events in order,
//! checks each book message against its venue's sync rule, buffers deltas that arrive before a
//! REST snapshot, verifies checksums, merges derivative tickers, and counts everything.
//!
//! Per book it keeps a [`SyncState`]: `synced`, `awaiting_snapshot` (never synced yet) or
//! `resyncing` (after a gap, checksum mismatch, malformed message or overflow, with the reason
//! counted). A broken chain affects that instrument alone; the engine queues a resync request
//! for it, which the caller drains with [`BookEngine::take_resync_requests`].

use std::collections::VecDeque;

use crate::model::{
    BookSide, ChecksumFn, Decimal, DerivativeTicker, Event, InstrumentId, PackedTicker, Sequence,
    SyncRule, SyncVerdict,
};

use super::Book;

/// Sync state of one book.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum SyncState {
    /// The book follows the venue's chain.
    Synced,
    /// No snapshot applied yet.
    AwaitingSnapshot,
    /// The chain broke; waiting for a fresh snapshot.
    Resyncing(ResyncReason),
}

impl SyncState {
    /// `synced`, `awaiting_snapshot` or `resyncing`.
    pub fn as_str(self) -> &'static str {
        match self {
            SyncState::Synced => "synced",
            SyncState::AwaitingSnapshot => "awaiting_snapshot",
            SyncState::Resyncing(_) => "resyncing",
        }
    }
}

/// Why a book left `synced`.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum ResyncReason {
    /// A sequence gap.
    Gap,
    /// The venue's checksum did not match the book.
    ChecksumMismatch,
    /// A book message could not be parsed to its end.
    MalformedMessage,
    /// A price or size out of fixed-point range.
    Overflow,
    /// A delta was dropped before reaching the engine (full ring).
    DroppedDelta,
    /// The pre-snapshot delta buffer overflowed.
    BufferOverflow,
    /// The connection carrying the book was lost.
    Disconnected,
    /// A side passed [`BookEngine::max_levels_per_side`] (a runaway or hostile delta).
    TooManyLevels,
    /// After a whole message the best bid was at or above the best ask.
    Crossed,
}

impl ResyncReason {
    /// Every reason, in counter order.
    pub const ALL: [ResyncReason; 9] = [
        ResyncReason::Gap,
        ResyncReason::ChecksumMismatch,
        ResyncReason::MalformedMessage,
        ResyncReason::Overflow,
        ResyncReason::DroppedDelta,
        ResyncReason::BufferOverflow,
        ResyncReason::Disconnected,
        ResyncReason::TooManyLevels,
        ResyncReason::Crossed,
    ];

    /// Name for summaries and metrics.
    pub fn name(self) -> &'static str {
        match self {
            ResyncReason::Gap => "gap",
            ResyncReason::ChecksumMismatch => "checksum_mismatch",
            ResyncReason::MalformedMessage => "malformed_message",
            ResyncReason::Overflow => "overflow",
            ResyncReason::DroppedDelta => "dropped_delta",
            ResyncReason::BufferOverflow => "buffer_overflow",
            ResyncReason::Disconnected => "disconnected",
            ResyncReason::TooManyLevels => "too_many_levels",
            ResyncReason::Crossed => "crossed",
        }
    }
}

/// Counters of one book. Plain integers: the engine thread owns them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BookStats {
    /// Snapshots applied (including `Reset`s).
    pub snapshots: u64,
    /// Deltas applied.
    pub deltas: u64,
    /// Deltas dropped as already covered by the book (`u < lastUpdateId`, duplicates).
    pub stale: u64,
    /// Sequence gaps.
    pub gaps: u64,
    /// Checksums verified equal.
    pub checksum_pass: u64,
    /// Checksums that did not match.
    pub checksum_fail: u64,
    /// Deltas buffered while awaiting a REST snapshot.
    pub buffered: u64,
    /// Deltas skipped because the book was not synced and cannot buffer (WS-snapshot venues).
    pub skipped_unsynced: u64,
    /// Times the book left `synced`, by [`ResyncReason::ALL`] index.
    pub resyncs: [u64; ResyncReason::ALL.len()],
    /// Trades seen.
    pub trades: u64,
}

/// Merged derivative-ticker state of one instrument: every field holds its last known value.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct TickerState {
    /// All fields merged so far (`instrument`/`stamps` of the latest update).
    pub merged: DerivativeTicker,
    /// Latest venue time seen, unix ns (tardis' `timestamp` = max exchange time).
    pub max_exch_ts_ns: i64,
}

impl TickerState {
    /// Merges `u` (only its present fields); returns true when one of the seven fields a
    /// `derivative_ticker` message carries changed (last price, open interest, funding rate,
    /// funding timestamp, predicted funding rate, index price, mark price). The best bid/ask
    /// are merged too but do not count: the message does not carry them, and tardis-node's
    /// `PendingDerivativeTickerInfo` (src/mappers/mapper.ts, `update*` and `hasChanged`) sets
    /// its changed flag only for those seven.
    pub fn merge(&mut self, u: &DerivativeTicker) -> bool {
        let m = &mut self.merged;
        let mut changed = false;
        macro_rules! take {
            ($flag:expr; $($f:ident),*) => {$(
                if let Some(v) = u.$f {
                    if m.$f != Some(v) {
                        m.$f = Some(v);
                        changed |= $flag;
                    }
                }
            )*};
        }
        take!(
            true;
            last_price,
            open_interest,
            funding_rate,
            funding_ts_ns,
            predicted_funding_rate,
            index_price,
            mark_price
        );
        take!(false; best_bid_price, best_bid_qty, best_ask_price, best_ask_qty);
        m.instrument = u.instrument;
        m.stamps = u.stamps;
        self.max_exch_ts_ns = self.max_exch_ts_ns.max(u.stamps.exch_ts_ns);
        changed
    }
}

/// [`TickerState`] packed for the fan-out ring (152 bytes instead of 304).
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct PackedTickerState {
    /// All fields merged so far, packed.
    pub merged: PackedTicker,
    /// Latest venue time seen, unix ns.
    pub max_exch_ts_ns: i64,
}

impl PackedTickerState {
    /// The state with its optional fields.
    pub fn unpack(&self) -> TickerState {
        TickerState {
            merged: self.merged.unpack(),
            max_exch_ts_ns: self.max_exch_ts_ns,
        }
    }
}

impl From<&TickerState> for PackedTickerState {
    fn from(s: &TickerState) -> PackedTickerState {
        PackedTickerState {
            merged: PackedTicker::pack(&s.merged),
            max_exch_ts_ns: s.max_exch_ts_ns,
        }
    }
}

/// What the engine did with the current book message, known from its `BookBegin` on.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Disposition {
    /// No book message in progress.
    Idle,
    /// Applied to the book.
    Apply,
    /// Applied as a snapshot (book cleared first).
    ApplySnapshot,
    /// Kept for after the REST snapshot.
    Buffer,
    /// Dropped (stale, unsynced, or the book broke during it).
    Skip,
}

/// Per-instrument configuration and state.
struct Slot {
    book: Book,
    state: SyncState,
    last_seq: Sequence,
    after_snapshot: bool,
    rule: SyncRule,
    checksum: Option<(ChecksumFn, usize)>,
    rest_snapshot: bool,
    pending: VecDeque<Event>,
    pending_limit: usize,
    /// The buffer dropped its oldest messages since the last snapshot (counted once).
    pending_overflowed: bool,
    ticker: TickerState,
    stats: BookStats,
    registered: bool,
}

fn apply_always(_: &Sequence, _: bool, _: &Sequence) -> SyncVerdict {
    SyncVerdict::Apply
}

impl Slot {
    fn new() -> Slot {
        Slot {
            book: Book::with_capacity(0),
            state: SyncState::AwaitingSnapshot,
            last_seq: Sequence::None,
            after_snapshot: false,
            rule: apply_always,
            checksum: None,
            rest_snapshot: false,
            pending: VecDeque::new(),
            pending_limit: 0,
            pending_overflowed: false,
            ticker: TickerState::default(),
            stats: BookStats::default(),
            registered: false,
        }
    }
}

/// Maximum events buffered per book while awaiting a REST snapshot.
pub const PENDING_EVENTS: usize = 8192;

/// The single writer of every book.
pub struct BookEngine {
    slots: Vec<Slot>,
    current: InstrumentId,
    disposition: Disposition,
    message_ok: bool,
    ticker_changed: bool,
    resync_requests: Vec<InstrumentId>,
    checksum_scratch: Vec<(Decimal, Decimal)>,
    checksum_scratch_asks: Vec<(Decimal, Decimal)>,
    max_levels_per_side: usize,
}

/// Default of [`BookEngine::max_levels_per_side`]: far above any venue's depth (Binance's
/// deepest REST snapshot is 1000 levels; its diff stream grows books to a few thousand).
pub const DEFAULT_MAX_LEVELS_PER_SIDE: usize = 20_000;

impl Default for BookEngine {
    fn default() -> Self {
        BookEngine::new()
    }
}

impl BookEngine {
    /// An engine with no books.
    pub fn new() -> BookEngine {
        BookEngine {
            slots: Vec::new(),
            current: InstrumentId(0),
            disposition: Disposition::Idle,
            message_ok: true,
            ticker_changed: false,
            resync_requests: Vec::with_capacity(1024),
            checksum_scratch: vec![(Decimal::ZERO, Decimal::ZERO); 64],
            checksum_scratch_asks: vec![(Decimal::ZERO, Decimal::ZERO); 64],
            max_levels_per_side: DEFAULT_MAX_LEVELS_PER_SIDE,
        }
    }

    /// Levels a side may hold; a level that would pass it resyncs the book
    /// ([`ResyncReason::TooManyLevels`]).
    pub fn max_levels_per_side(&self) -> usize {
        self.max_levels_per_side
    }

    /// Sets [`BookEngine::max_levels_per_side`] (at least 1).
    pub fn set_max_levels_per_side(&mut self, levels: usize) {
        self.max_levels_per_side = levels.max(1);
    }

    /// Registers the book of `id` with its venue's sync rule, optional checksum (function and
    /// levels per side), and whether it is seeded by a REST snapshot (then deltas that arrive
    /// first are buffered). Allocates the book's levels and buffer: call at start-up.
    pub fn register(
        &mut self,
        id: InstrumentId,
        rule: SyncRule,
        checksum: Option<(ChecksumFn, usize)>,
        rest_snapshot: bool,
    ) {
        while self.slots.len() <= id.index() {
            self.slots.push(Slot::new());
        }
        let s = &mut self.slots[id.index()];
        s.book = Book::default();
        s.rule = rule;
        s.checksum = checksum;
        s.rest_snapshot = rest_snapshot;
        s.pending_limit = if rest_snapshot { PENDING_EVENTS } else { 0 };
        s.pending = VecDeque::with_capacity(s.pending_limit);
        s.registered = true;
        if let Some((_, n)) = checksum {
            if self.checksum_scratch.len() < n {
                self.checksum_scratch
                    .resize(n, (Decimal::ZERO, Decimal::ZERO));
                self.checksum_scratch_asks
                    .resize(n, (Decimal::ZERO, Decimal::ZERO));
            }
        }
    }

    /// The book of `id`, if registered.
    pub fn book(&self, id: InstrumentId) -> Option<&Book> {
        self.slot(id).map(|s| &s.book)
    }

    /// Sync state of `id`.
    pub fn state(&self, id: InstrumentId) -> Option<SyncState> {
        self.slot(id).map(|s| s.state)
    }

    /// Counters of `id`.
    pub fn stats(&self, id: InstrumentId) -> Option<&BookStats> {
        self.slot(id).map(|s| &s.stats)
    }

    /// Merged derivative ticker of `id`.
    pub fn ticker(&self, id: InstrumentId) -> Option<&TickerState> {
        self.slot(id).map(|s| &s.ticker)
    }

    /// Last sequence applied to `id`'s book.
    pub fn last_sequence(&self, id: InstrumentId) -> Option<Sequence> {
        self.slot(id).map(|s| s.last_seq)
    }

    /// What happened to the book message in progress (or the last one, until the next begins).
    pub fn disposition(&self) -> Disposition {
        self.disposition
    }

    /// True when the last completed book message was applied in full and kept the book synced.
    pub fn last_message_applied(&self) -> bool {
        matches!(
            self.disposition,
            Disposition::Apply | Disposition::ApplySnapshot
        ) && self.message_ok
    }

    /// True when the last derivative ticker event changed a merged value (tardis-machine emits
    /// `derivative_ticker` only then).
    pub fn last_ticker_changed(&self) -> bool {
        self.ticker_changed
    }

    /// Takes the instruments that need a fresh snapshot (in order, no duplicates per take).
    pub fn take_resync_requests(&mut self, out: &mut Vec<InstrumentId>) {
        out.append(&mut self.resync_requests);
    }

    fn slot(&self, id: InstrumentId) -> Option<&Slot> {
        self.slots.get(id.index()).filter(|s| s.registered)
    }

    /// Marks `id` as resyncing for `reason` (e.g. a delta was dropped before reaching the
    /// engine, or its connection was lost) and queues a resync request.
    pub fn invalidate(&mut self, id: InstrumentId, reason: ResyncReason) {
        if let Some(s) = self.slots.get_mut(id.index()).filter(|s| s.registered) {
            Self::break_chain(s, id, reason, &mut self.resync_requests);
        }
    }

    fn break_chain(
        s: &mut Slot,
        id: InstrumentId,
        reason: ResyncReason,
        requests: &mut Vec<InstrumentId>,
    ) {
        if let ResyncReason::Gap = reason {
            s.stats.gaps += 1;
        }
        let already = matches!(s.state, SyncState::Resyncing(_));
        s.stats.resyncs[reason as usize] += 1;
        s.state = SyncState::Resyncing(reason);
        s.book.clear();
        s.last_seq = Sequence::None;
        s.after_snapshot = false;
        // deltas buffered before the break are older than the snapshot to come
        s.pending.clear();
        s.pending_overflowed = false;
        if !already && !requests.contains(&id) {
            requests.push(id);
        }
    }

    /// Consumes one event. Returns the current book message's disposition for book events,
    /// `Disposition::Idle` for others. Never panics; events for unregistered instruments are
    /// ignored (the parser already rejects unknown symbols).
    #[inline]
    pub fn on_event(&mut self, event: &Event) -> Disposition {
        match event {
            Event::BookBegin(b) => {
                self.current = b.instrument;
                self.message_ok = true;
                let Some(s) = self
                    .slots
                    .get_mut(b.instrument.index())
                    .filter(|s| s.registered)
                else {
                    self.disposition = Disposition::Skip;
                    return self.disposition;
                };
                self.disposition = if b.is_snapshot {
                    s.book.begin_snapshot();
                    Disposition::ApplySnapshot
                } else {
                    match s.state {
                        SyncState::Synced => {
                            match (s.rule)(&s.last_seq, s.after_snapshot, &b.seq) {
                                SyncVerdict::Apply => Disposition::Apply,
                                SyncVerdict::Stale => {
                                    s.stats.stale += 1;
                                    Disposition::Skip
                                }
                                SyncVerdict::Reset => {
                                    s.book.begin_snapshot();
                                    Disposition::ApplySnapshot
                                }
                                SyncVerdict::Gap => {
                                    Self::break_chain(
                                        s,
                                        b.instrument,
                                        ResyncReason::Gap,
                                        &mut self.resync_requests,
                                    );
                                    if s.rest_snapshot {
                                        Self::buffer(s, event)
                                    } else {
                                        Disposition::Skip
                                    }
                                }
                            }
                        }
                        SyncState::AwaitingSnapshot | SyncState::Resyncing(_) => {
                            if s.rest_snapshot {
                                Self::buffer(s, event)
                            } else {
                                s.stats.skipped_unsynced += 1;
                                Disposition::Skip
                            }
                        }
                    }
                };
                if matches!(
                    self.disposition,
                    Disposition::Apply | Disposition::ApplySnapshot
                ) {
                    s.last_seq = b.seq;
                }
                self.disposition
            }
            Event::Level(l) => {
                let id = self.current;
                match self.disposition {
                    Disposition::Apply | Disposition::ApplySnapshot => {
                        let s = &mut self.slots[id.index()];
                        let reason = if s.book.apply(l.side, l.price, l.qty).is_err() {
                            Some(ResyncReason::Overflow)
                        } else if s.book.depth(l.side) > self.max_levels_per_side {
                            Some(ResyncReason::TooManyLevels)
                        } else {
                            None
                        };
                        if let Some(reason) = reason {
                            Self::break_chain(s, id, reason, &mut self.resync_requests);
                            self.message_ok = false;
                            self.disposition = Disposition::Skip;
                        }
                    }
                    Disposition::Buffer => {
                        let s = &mut self.slots[id.index()];
                        self.disposition = Self::buffer(s, event);
                    }
                    Disposition::Skip | Disposition::Idle => {}
                }
                self.disposition
            }
            Event::BookEnd(e) => {
                let id = e.instrument;
                match self.disposition {
                    Disposition::Apply | Disposition::ApplySnapshot => {
                        let s = &mut self.slots[id.index()];
                        s.book.end_snapshot();
                        if e.aborted {
                            Self::break_chain(
                                s,
                                id,
                                ResyncReason::MalformedMessage,
                                &mut self.resync_requests,
                            );
                            self.message_ok = false;
                        } else {
                            let ok = match (e.checksum, s.checksum) {
                                (Some(expected), Some((f, n))) => {
                                    let nb = s
                                        .book
                                        .top_into(BookSide::Bid, &mut self.checksum_scratch[..n]);
                                    let na = s.book.top_into(
                                        BookSide::Ask,
                                        &mut self.checksum_scratch_asks[..n],
                                    );
                                    let got = f(
                                        &self.checksum_scratch[..nb],
                                        &self.checksum_scratch_asks[..na],
                                    );
                                    if got == expected {
                                        s.stats.checksum_pass += 1;
                                        true
                                    } else {
                                        s.stats.checksum_fail += 1;
                                        false
                                    }
                                }
                                _ => true,
                            };
                            let crossed = match (s.book.best_bid(), s.book.best_ask()) {
                                (Some((bid, _)), Some((ask, _))) => bid.cmp_value(ask).is_ge(),
                                _ => false,
                            };
                            if ok && crossed {
                                Self::break_chain(
                                    s,
                                    id,
                                    ResyncReason::Crossed,
                                    &mut self.resync_requests,
                                );
                                self.message_ok = false;
                            } else if ok {
                                if self.disposition == Disposition::ApplySnapshot {
                                    s.stats.snapshots += 1;
                                    s.after_snapshot = true;
                                    s.state = SyncState::Synced;
                                    if !s.pending.is_empty() {
                                        self.drain_pending(id);
                                        // drain_pending leaves the last buffered message's
                                        // disposition; the snapshot itself was applied
                                        self.disposition = Disposition::ApplySnapshot;
                                        self.current = id;
                                        self.message_ok = true;
                                    }
                                } else {
                                    s.stats.deltas += 1;
                                    s.after_snapshot = false;
                                }
                            } else {
                                Self::break_chain(
                                    s,
                                    id,
                                    ResyncReason::ChecksumMismatch,
                                    &mut self.resync_requests,
                                );
                                self.message_ok = false;
                            }
                        }
                    }
                    Disposition::Buffer => {
                        let s = &mut self.slots[id.index()];
                        self.disposition = Self::buffer(s, event);
                    }
                    Disposition::Skip | Disposition::Idle => {}
                }
                self.disposition
            }
            Event::Trade(t) => {
                if let Some(s) = self
                    .slots
                    .get_mut(t.instrument.index())
                    .filter(|s| s.registered)
                {
                    s.stats.trades += 1;
                }
                Disposition::Idle
            }
            Event::DerivativeTicker(t) => {
                if let Some(s) = self
                    .slots
                    .get_mut(t.instrument.index())
                    .filter(|s| s.registered)
                {
                    self.ticker_changed = s.ticker.merge(&t.unpack());
                } else {
                    self.ticker_changed = false;
                }
                Disposition::Idle
            }
            Event::BookTicker(_) | Event::Liquidation(_) | Event::OptionHalf(_) => {
                Disposition::Idle
            }
        }
    }

    /// Buffers one event of a delta that arrived before the REST snapshot.
    fn buffer(s: &mut Slot, event: &Event) -> Disposition {
        if s.pending_limit == 0 {
            return Disposition::Skip;
        }
        if s.pending.len() >= s.pending_limit {
            // Drop the oldest whole message, keep the newest: the snapshot being fetched is
            // newer than the deltas buffered first, so those are the ones it makes stale
            // (Binance: "drop any event where u is < lastUpdateId"). If the snapshot turns
            // out older than what is left, the chain check after it finds the gap and the
            // book resyncs again. Counted once per wait for a snapshot.
            if !s.pending_overflowed {
                s.pending_overflowed = true;
                s.stats.resyncs[ResyncReason::BufferOverflow as usize] += 1;
            }
            while let Some(ev) = s.pending.pop_front() {
                if matches!(ev, Event::BookEnd(_)) {
                    break;
                }
            }
        }
        if let Event::BookBegin(_) = event {
            s.stats.buffered += 1;
        }
        s.pending.push_back(*event);
        Disposition::Buffer
    }

    /// Replays the buffered deltas of `id` through the sync rule after its snapshot.
    #[cold]
    fn drain_pending(&mut self, id: InstrumentId) {
        let mut pending = std::mem::take(&mut self.slots[id.index()].pending);
        self.slots[id.index()].pending_overflowed = false;
        self.disposition = Disposition::Idle;
        for ev in pending.iter() {
            self.on_event(ev);
        }
        pending.clear();
        // Deltas buffered again during the drain (after a gap in the buffer) stay pending.
        let s = &mut self.slots[id.index()];
        let again = std::mem::replace(&mut s.pending, pending);
        s.pending.extend(again.iter().copied());
    }

    /// Ids of every registered book.
    pub fn registered(&self) -> impl Iterator<Item = InstrumentId> + '_ {
        self.slots
            .iter()
            .enumerate()
            .filter(|(_, s)| s.registered)
            .map(|(i, _)| InstrumentId(i as u32))
    }
}

#[cfg(test)]
#[path = "engine_tests.rs"]
mod tests;

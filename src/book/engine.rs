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
}

impl ResyncReason {
    /// Every reason, in counter order.
    pub const ALL: [ResyncReason; 7] = [
        ResyncReason::Gap,
        ResyncReason::ChecksumMismatch,
        ResyncReason::MalformedMessage,
        ResyncReason::Overflow,
        ResyncReason::DroppedDelta,
        ResyncReason::BufferOverflow,
        ResyncReason::Disconnected,
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
    pub resyncs: [u64; 7],
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
    /// Merges `u` (only its present fields); returns true when a value changed.
    pub fn merge(&mut self, u: &DerivativeTicker) -> bool {
        let m = &mut self.merged;
        let mut changed = false;
        macro_rules! take {
            ($($f:ident),*) => {$(
                if let Some(v) = u.$f {
                    if m.$f != Some(v) {
                        m.$f = Some(v);
                        changed = true;
                    }
                }
            )*};
        }
        take!(
            last_price,
            open_interest,
            funding_rate,
            funding_ts_ns,
            predicted_funding_rate,
            index_price,
            mark_price,
            best_bid_price,
            best_bid_qty,
            best_ask_price,
            best_ask_qty
        );
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
}

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
        }
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
                        if s.book.apply(l.side, l.price, l.qty).is_err() {
                            Self::break_chain(
                                s,
                                id,
                                ResyncReason::Overflow,
                                &mut self.resync_requests,
                            );
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
                            if ok {
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
            Event::BookTicker(_) | Event::Liquidation(_) => Disposition::Idle,
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
mod tests {
    use super::*;
    use crate::model::{BookBegin, BookEnd, Level, Stamps};

    fn d(s: &str) -> Decimal {
        Decimal::parse(s.as_bytes()).unwrap()
    }

    /// A toy chain rule: `Deribit { change_id, prev_change_id }` must link.
    fn linked(last: &Sequence, _after: bool, next: &Sequence) -> SyncVerdict {
        match (last, next) {
            (
                Sequence::Deribit { change_id: a, .. },
                Sequence::Deribit {
                    change_id: b,
                    prev_change_id: Some(p),
                },
            ) => {
                if p == a {
                    SyncVerdict::Apply
                } else if b <= a {
                    SyncVerdict::Stale
                } else {
                    SyncVerdict::Gap
                }
            }
            _ => SyncVerdict::Gap,
        }
    }

    fn msg(
        engine: &mut BookEngine,
        id: u32,
        snapshot: bool,
        change: u64,
        prev: Option<u64>,
        levels: &[(BookSide, &str, &str)],
        checksum: Option<i32>,
    ) -> bool {
        let instrument = InstrumentId(id);
        engine.on_event(&Event::BookBegin(BookBegin {
            instrument,
            is_snapshot: snapshot,
            seq: Sequence::Deribit {
                change_id: change,
                prev_change_id: prev,
            },
            stamps: Stamps::default(),
        }));
        for (side, p, q) in levels {
            engine.on_event(&Event::Level(Level {
                side: *side,
                price: d(p),
                qty: d(q),
            }));
        }
        engine.on_event(&Event::BookEnd(BookEnd {
            instrument,
            checksum,
            aborted: false,
        }));
        engine.last_message_applied()
    }

    #[test]
    fn chain_gap_resyncs_only_that_book() {
        let mut e = BookEngine::new();
        e.register(InstrumentId(0), linked, None, false);
        e.register(InstrumentId(1), linked, None, false);
        assert!(!msg(&mut e, 0, false, 5, Some(4), &[], None));
        assert_eq!(e.stats(InstrumentId(0)).unwrap().skipped_unsynced, 1);
        assert!(msg(
            &mut e,
            0,
            true,
            10,
            None,
            &[(BookSide::Bid, "1", "1")],
            None
        ));
        assert!(msg(
            &mut e,
            1,
            true,
            10,
            None,
            &[(BookSide::Bid, "1", "1")],
            None
        ));
        assert!(msg(
            &mut e,
            0,
            false,
            11,
            Some(10),
            &[(BookSide::Ask, "2", "1")],
            None
        ));
        // stale duplicate
        assert!(!msg(
            &mut e,
            0,
            false,
            11,
            Some(10),
            &[(BookSide::Ask, "3", "1")],
            None
        ));
        assert_eq!(e.stats(InstrumentId(0)).unwrap().stale, 1);
        assert_eq!(e.book(InstrumentId(0)).unwrap().depth(BookSide::Ask), 1);
        // gap
        assert!(!msg(&mut e, 0, false, 13, Some(12), &[], None));
        assert_eq!(
            e.state(InstrumentId(0)),
            Some(SyncState::Resyncing(ResyncReason::Gap))
        );
        assert_eq!(e.state(InstrumentId(1)), Some(SyncState::Synced));
        let mut req = Vec::new();
        e.take_resync_requests(&mut req);
        assert_eq!(req, vec![InstrumentId(0)]);
        assert_eq!(e.stats(InstrumentId(0)).unwrap().gaps, 1);
        // a new snapshot recovers
        assert!(msg(
            &mut e,
            0,
            true,
            20,
            None,
            &[(BookSide::Bid, "1", "1")],
            None
        ));
        assert_eq!(e.state(InstrumentId(0)), Some(SyncState::Synced));
    }

    fn binance_like(last: &Sequence, after: bool, next: &Sequence) -> SyncVerdict {
        // uses Deribit fields: change_id = u, prev_change_id = U
        let (
            Sequence::Deribit { change_id: l, .. },
            Sequence::Deribit {
                change_id: u,
                prev_change_id: Some(first),
            },
        ) = (last, next)
        else {
            return SyncVerdict::Gap;
        };
        if *u <= *l {
            SyncVerdict::Stale
        } else if (after && *first <= *l + 1) || *first == *l + 1 {
            SyncVerdict::Apply
        } else {
            SyncVerdict::Gap
        }
    }

    #[test]
    fn buffers_deltas_until_rest_snapshot() {
        let mut e = BookEngine::new();
        e.register(InstrumentId(0), binance_like, None, true);
        // deltas (first=U, u) arrive before the snapshot: 1..=3, 4..=6, 7..=7
        msg(
            &mut e,
            0,
            false,
            3,
            Some(1),
            &[(BookSide::Bid, "1", "1")],
            None,
        );
        msg(
            &mut e,
            0,
            false,
            6,
            Some(4),
            &[(BookSide::Bid, "2", "1")],
            None,
        );
        msg(
            &mut e,
            0,
            false,
            7,
            Some(7),
            &[(BookSide::Bid, "3", "1")],
            None,
        );
        assert_eq!(e.disposition(), Disposition::Buffer);
        assert_eq!(e.stats(InstrumentId(0)).unwrap().buffered, 3);
        // snapshot at 5: the first delta is stale, 4..=6 brackets it, 7 follows
        assert!(msg(
            &mut e,
            0,
            true,
            5,
            None,
            &[(BookSide::Ask, "9", "1")],
            None
        ));
        let s = e.stats(InstrumentId(0)).unwrap();
        assert_eq!((s.stale, s.deltas, s.gaps), (1, 2, 0));
        let book = e.book(InstrumentId(0)).unwrap();
        assert_eq!(book.best_bid(), Some((d("3"), d("1"))));
        assert_eq!(book.depth(BookSide::Bid), 2);
        assert_eq!(e.state(InstrumentId(0)), Some(SyncState::Synced));
    }

    /// Deltas `U..=u` with `u = U` for `first..=last`, one bid level each (3 events).
    fn single_deltas(e: &mut BookEngine, first: u64, last: u64) {
        for u in first..=last {
            let price = (u % 50 + 1).to_string();
            msg(
                e,
                0,
                false,
                u,
                Some(u),
                &[(BookSide::Bid, &price, "1")],
                None,
            );
        }
    }

    #[test]
    fn a_full_pre_snapshot_buffer_keeps_the_newest_deltas() {
        let mut e = BookEngine::new();
        e.register(InstrumentId(0), binance_like, None, true);
        // three events per message: twice the buffer's worth of deltas 1..=N
        let n = (2 * PENDING_EVENTS / 3) as u64;
        single_deltas(&mut e, 1, n);
        assert_eq!(e.disposition(), Disposition::Buffer);
        let s = e.stats(InstrumentId(0)).unwrap();
        assert_eq!(s.resyncs[ResyncReason::BufferOverflow as usize], 1);
        // a snapshot newer than the oldest kept delta: the rest chains on, no gap
        let snapshot_at = n - 100;
        assert!(msg(&mut e, 0, true, snapshot_at, None, &[], None));
        let s = e.stats(InstrumentId(0)).unwrap();
        assert_eq!((s.gaps, s.deltas), (0, 100));
        assert_eq!(e.state(InstrumentId(0)), Some(SyncState::Synced));
        assert_eq!(
            e.last_sequence(InstrumentId(0)),
            Some(Sequence::Deribit {
                change_id: n,
                prev_change_id: Some(n)
            })
        );
    }

    #[test]
    fn a_snapshot_older_than_the_kept_deltas_is_a_gap() {
        let mut e = BookEngine::new();
        e.register(InstrumentId(0), binance_like, None, true);
        let n = (2 * PENDING_EVENTS / 3) as u64;
        single_deltas(&mut e, 1, n);
        // deltas 1..=~n/2 were dropped to make room: a snapshot at 10 cannot be bridged
        msg(&mut e, 0, true, 10, None, &[], None);
        let s = e.stats(InstrumentId(0)).unwrap();
        assert_eq!(s.gaps, 1);
        assert!(matches!(
            e.state(InstrumentId(0)),
            Some(SyncState::Resyncing(ResyncReason::Gap))
        ));
        let mut requests = Vec::new();
        e.take_resync_requests(&mut requests);
        assert_eq!(requests, vec![InstrumentId(0)]);
    }

    #[test]
    fn a_break_discards_deltas_buffered_before_it() {
        let mut e = BookEngine::new();
        e.register(InstrumentId(0), binance_like, None, true);
        single_deltas(&mut e, 1, 5);
        e.invalidate(InstrumentId(0), ResyncReason::Disconnected);
        // the new connection's stream: 100..=102; the snapshot at 100 bridges it alone
        single_deltas(&mut e, 100, 102);
        assert!(msg(&mut e, 0, true, 100, None, &[], None));
        let s = e.stats(InstrumentId(0)).unwrap();
        assert_eq!((s.stale, s.deltas, s.gaps), (1, 2, 0));
    }

    fn sum_checksum(bids: &[(Decimal, Decimal)], asks: &[(Decimal, Decimal)]) -> i32 {
        bids.iter()
            .chain(asks)
            .map(|(p, q)| (p.mantissa + q.mantissa) as i32)
            .sum()
    }

    #[test]
    fn checksum_mismatch_resyncs() {
        let mut e = BookEngine::new();
        e.register(
            InstrumentId(0),
            apply_always,
            Some((sum_checksum, 25)),
            false,
        );
        assert!(msg(
            &mut e,
            0,
            true,
            1,
            None,
            &[(BookSide::Bid, "1", "2")],
            Some(3)
        ));
        assert!(msg(
            &mut e,
            0,
            false,
            2,
            None,
            &[(BookSide::Ask, "4", "1")],
            Some(8)
        ));
        assert!(!msg(
            &mut e,
            0,
            false,
            3,
            None,
            &[(BookSide::Ask, "5", "1")],
            Some(99)
        ));
        let s = e.stats(InstrumentId(0)).unwrap();
        assert_eq!((s.checksum_pass, s.checksum_fail), (2, 1));
        assert_eq!(
            e.state(InstrumentId(0)),
            Some(SyncState::Resyncing(ResyncReason::ChecksumMismatch))
        );
    }

    #[test]
    fn aborted_and_overflowing_messages_resync() {
        let mut e = BookEngine::new();
        e.register(InstrumentId(0), apply_always, None, false);
        assert!(msg(
            &mut e,
            0,
            true,
            1,
            None,
            &[(BookSide::Bid, "1", "2")],
            None
        ));
        e.on_event(&Event::BookBegin(BookBegin {
            instrument: InstrumentId(0),
            is_snapshot: false,
            seq: Sequence::None,
            stamps: Stamps::default(),
        }));
        e.on_event(&Event::BookEnd(BookEnd {
            instrument: InstrumentId(0),
            checksum: None,
            aborted: true,
        }));
        assert_eq!(
            e.state(InstrumentId(0)),
            Some(SyncState::Resyncing(ResyncReason::MalformedMessage))
        );
        assert!(msg(
            &mut e,
            0,
            true,
            1,
            None,
            &[(BookSide::Bid, "900000000000", "1")],
            None
        ));
        assert!(!msg(
            &mut e,
            0,
            false,
            2,
            None,
            &[(BookSide::Bid, "0.00000001", "1")],
            None
        ));
        assert_eq!(
            e.state(InstrumentId(0)),
            Some(SyncState::Resyncing(ResyncReason::Overflow))
        );
    }

    #[test]
    fn ticker_merge_keeps_known_fields() {
        let mut t = TickerState::default();
        let a = DerivativeTicker {
            open_interest: Some(d("10")),
            funding_rate: Some(d("0.0001")),
            ..Default::default()
        };
        assert!(t.merge(&a));
        assert!(!t.merge(&a));
        let b = DerivativeTicker {
            mark_price: Some(d("5")),
            ..Default::default()
        };
        assert!(t.merge(&b));
        assert_eq!(t.merged.open_interest, Some(d("10")));
        assert_eq!(t.merged.mark_price, Some(d("5")));
    }
}

//! Latest-state slots: the book thread, the only writer of books, publishes each
//! instrument's book state here after every applied book message; every fan-out shard reads
//! it when it encodes snapshots, quotes and imbalance.
//!
//! A slot is a sequence lock over atomic words (the shape of Boehm's "Can seqlocks get along
//! with programming language memory models?", 2012, figure 6, and of crossbeam's `SeqLock`):
//! the writer makes the sequence odd, stores the words with `Relaxed`, and makes it even again
//! with `Release`; a reader loads the sequence with `Acquire`, copies the words with
//! `Relaxed`, fences with `Acquire` and retries when the sequence moved. The writer never
//! waits and never allocates; a reader that falls behind sees the latest state (state is
//! conflated by construction), never a backlog, and retries only while a write overlaps its
//! copy. Every word is an atomic, so a torn read is detected, never undefined behaviour.
//!
//! What a slot holds (fixed at [`BookSlots::new`]): a [`SlotHeader`] (version, synced,
//! update id, scales, level counts, stamps) and the top `max_depth` levels per side as the
//! book stores them ([`PriceLevel`]: integer price and size at the book's scales plus the
//! venue's fraction digits, 3 words each). The writer copies only as many levels as a reader
//! asked for: each shard stores the largest depth its subscriptions need in
//! [`BookSlots::want_depth`], and which instruments need `book_change` deltas in
//! [`BookSlots::want_deltas`].
//!
//! Why a seqlock and not a triple buffer: the writer publishes up to ~10^6 times a second
//! and readers read a small fraction of those states; a seqlock write is one store per word
//! plus two sequence stores, with no buffer index exchange, and a reader pays only when it
//! reads. `benches/slot.rs` measures both sides.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering, fence};

use crossbeam_utils::CachePadded;

use crate::book::{Book, PriceLevel, to_decimal};
use crate::model::{BookSide, Decimal, InstrumentId, Stamps};
pub use crate::pipeline::msg::ShardRequest;

/// Default largest depth a slot holds per side (`[fanout] slot_depth`).
pub const DEFAULT_SLOT_DEPTH: usize = 50;
/// Most fan-out shards a slot set serves (the width of [`BookSlots::want_deltas`]' mask).
pub const MAX_SHARDS: usize = 64;

const HEADER_WORDS: usize = 8;
const LEVEL_WORDS: usize = 3;

/// The scalar part of a slot.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct SlotHeader {
    /// Book messages applied since start (0: never published). Grows by one per publish.
    pub version: u64,
    /// The book is synced (a snapshot applied and no gap since).
    pub synced: bool,
    /// The venue's update id of the last applied message (`Sequence::update_id`).
    pub update_id: u64,
    /// Fraction digits of stored prices.
    pub price_scale: u8,
    /// Fraction digits of stored sizes.
    pub qty_scale: u8,
    /// Bid levels held (at most the depth written).
    pub bids: u16,
    /// Ask levels held.
    pub asks: u16,
    /// Levels per side the writer copied at most (the wanted depth then): a reader needing
    /// more asks for a [`ShardRequest::Refresh`].
    pub depth: u16,
    /// Stamps of the last applied message.
    pub stamps: Stamps,
}

impl SlotHeader {
    /// The `timestamp` of the state: exchange time, else receive time truncated to the ms
    /// (tardis' `localTimestamp`, a JavaScript `Date`), unix ns.
    pub fn ts_ns(&self) -> i64 {
        if self.stamps.exch_ts_ns != 0 {
            self.stamps.exch_ts_ns
        } else {
            self.stamps.recv_ts_ns.div_euclid(1_000_000) * 1_000_000
        }
    }
}

/// A reader's copy of a slot. Allocated once with room for `max_depth` levels per side.
#[derive(Clone, Debug, Default)]
pub struct SlotView {
    /// The header as read.
    pub header: SlotHeader,
    /// Bids, best first (`header.bids` of them, or fewer when the reader asked for less).
    pub bids: Vec<PriceLevel>,
    /// Asks, best first.
    pub asks: Vec<PriceLevel>,
}

impl SlotView {
    /// An empty view with room for `depth` levels per side.
    pub fn with_depth(depth: usize) -> SlotView {
        SlotView {
            header: SlotHeader::default(),
            bids: Vec::with_capacity(depth),
            asks: Vec::with_capacity(depth),
        }
    }

    /// Levels of `side`, best first.
    pub fn levels(&self, side: BookSide) -> &[PriceLevel] {
        match side {
            BookSide::Bid => &self.bids,
            BookSide::Ask => &self.asks,
        }
    }

    /// Levels of `side`, best first, as exact decimals written as the venue wrote them.
    pub fn decimal_levels(&self, side: BookSide) -> impl Iterator<Item = (Decimal, Decimal)> + '_ {
        let (ps, qs) = (self.header.price_scale, self.header.qty_scale);
        self.levels(side).iter().map(move |l| {
            (
                to_decimal(l.price, ps, l.price_decimals),
                to_decimal(l.qty, qs, l.qty_decimals),
            )
        })
    }
}

/// One instrument's slot.
struct Slot {
    seq: CachePadded<AtomicU64>,
    header: [AtomicU64; HEADER_WORDS],
    levels: Box<[AtomicU64]>,
}

/// What readers ask of one instrument: per shard, the depth it reads; the mask of shards
/// that need `book_change` deltas on their ring; and the mask of shards with a notice of it
/// queued and not yet taken (see [`BookSlots::claim_notice`]).
struct Wants {
    depth: Box<[AtomicU32]>,
    deltas: AtomicU64,
    notices: AtomicU64,
}

/// Every instrument's slot, shared (`Arc`) by the book thread (the only writer) and the
/// fan-out shards. Indexed by [`InstrumentId`]; an id out of range is ignored on write and
/// reads as an empty, unsynced slot.
pub struct BookSlots {
    slots: Box<[Slot]>,
    wants: Box<[CachePadded<Wants>]>,
    max_depth: usize,
}

impl std::fmt::Debug for BookSlots {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BookSlots")
            .field("instruments", &self.slots.len())
            .field("max_depth", &self.max_depth)
            .finish()
    }
}

fn pack_header(h: &SlotHeader) -> [u64; HEADER_WORDS] {
    [
        h.version,
        u64::from(h.synced)
            | u64::from(h.price_scale) << 8
            | u64::from(h.qty_scale) << 16
            | u64::from(h.bids) << 24
            | u64::from(h.asks) << 40,
        h.update_id,
        h.stamps.exch_ts_ns as u64,
        h.stamps.recv_ts_ns as u64,
        h.stamps.recv_mono_ns,
        u64::from(h.stamps.push_delta_ns) | u64::from(h.stamps.applied_delta_ns) << 32,
        u64::from(h.depth),
    ]
}

fn unpack_header(w: &[u64; HEADER_WORDS]) -> SlotHeader {
    SlotHeader {
        version: w[0],
        synced: w[1] & 1 != 0,
        price_scale: (w[1] >> 8) as u8,
        qty_scale: (w[1] >> 16) as u8,
        bids: (w[1] >> 24) as u16,
        asks: (w[1] >> 40) as u16,
        depth: w[7] as u16,
        update_id: w[2],
        stamps: Stamps {
            exch_ts_ns: w[3] as i64,
            recv_ts_ns: w[4] as i64,
            recv_mono_ns: w[5],
            push_delta_ns: w[6] as u32,
            applied_delta_ns: (w[6] >> 32) as u32,
        },
    }
}

impl BookSlots {
    /// Slots for `instruments` instruments holding up to `max_depth` levels per side (at most
    /// `u16::MAX`), read by `shards` fan-out shards (1 to [`MAX_SHARDS`]; clamped). Allocates
    /// `instruments × (64 + 48 × max_depth)` bytes, about 2.4 KiB per instrument at 50.
    pub fn new(instruments: usize, max_depth: usize, shards: usize) -> BookSlots {
        let max_depth = max_depth.min(usize::from(u16::MAX));
        let shards = shards.clamp(1, MAX_SHARDS);
        let slots = (0..instruments)
            .map(|_| Slot {
                seq: CachePadded::new(AtomicU64::new(0)),
                header: Default::default(),
                levels: (0..2 * max_depth * LEVEL_WORDS)
                    .map(|_| AtomicU64::new(0))
                    .collect(),
            })
            .collect();
        let wants = (0..instruments)
            .map(|_| {
                CachePadded::new(Wants {
                    depth: (0..shards).map(|_| AtomicU32::new(0)).collect(),
                    deltas: AtomicU64::new(0),
                    notices: AtomicU64::new(0),
                })
            })
            .collect();
        BookSlots {
            slots,
            wants,
            max_depth,
        }
    }

    /// Instruments covered.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// True when no instrument is covered.
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// Largest depth a slot holds per side.
    pub fn max_depth(&self) -> usize {
        self.max_depth
    }

    /// Reader side: shard `shard` reads up to `depth` levels per side of `id` (0: only the
    /// header). The writer copies the largest depth any shard asked for, at most
    /// [`BookSlots::max_depth`], from its next publish on.
    pub fn want_depth(&self, id: InstrumentId, shard: usize, depth: usize) {
        if let Some(w) = self.wants.get(id.index()).and_then(|w| w.depth.get(shard)) {
            w.store(depth.min(self.max_depth) as u32, Ordering::Relaxed);
        }
    }

    /// Reader side: whether shard `shard` (below [`MAX_SHARDS`]) needs `book_change` deltas
    /// of `id` on its ring.
    pub fn want_deltas(&self, id: InstrumentId, shard: usize, on: bool) {
        let (Some(w), true) = (self.wants.get(id.index()), shard < MAX_SHARDS) else {
            return;
        };
        let bit = 1u64 << shard;
        if on {
            w.deltas.fetch_or(bit, Ordering::Release);
        } else {
            w.deltas.fetch_and(!bit, Ordering::Release);
        }
    }

    /// Writer side: the mask of shards that need deltas of `id` (bit `s` = shard `s`).
    #[inline]
    pub fn deltas_wanted(&self, id: InstrumentId) -> u64 {
        self.wants
            .get(id.index())
            .map_or(0, |w| w.deltas.load(Ordering::Acquire))
    }

    /// Writer side, after publishing `id`: true when a notice of `id` should go on shard
    /// `shard`'s ring (none of its notices is queued untaken; the shard's bit is now set),
    /// false when one is queued: the shard reads the slot when it takes that one, after this
    /// publish (this read-modify-write and [`BookSlots::take_notice`]'s are ordered on one
    /// word, and the slot was written before this one), so a second notice would only say
    /// the same. Only for a shard that takes no deltas of `id`: deltas and their notices keep
    /// their order on the ring. A shard at or past [`MAX_SHARDS`] always gets one.
    #[inline]
    pub fn claim_notice(&self, id: InstrumentId, shard: usize) -> bool {
        let (Some(w), true) = (self.wants.get(id.index()), shard < MAX_SHARDS) else {
            return true;
        };
        let bit = 1u64 << shard;
        w.notices.fetch_or(bit, Ordering::AcqRel) & bit == 0
    }

    /// Writer side: forgets the claim on `id` for shard `shard`, so the next publish sends a
    /// notice: the one [`BookSlots::claim_notice`] allowed did not fit the ring, or a
    /// `BookInvalid` goes out after it (the state after that needs a notice after it).
    #[inline]
    pub fn unclaim_notice(&self, id: InstrumentId, shard: usize) {
        self.clear_notice(id, shard);
    }

    /// Reader side: shard `shard` takes a notice of `id` off its ring, before reading the
    /// slot; the writer's next publish sends a new notice.
    #[inline]
    pub fn take_notice(&self, id: InstrumentId, shard: usize) {
        self.clear_notice(id, shard);
    }

    #[inline]
    fn clear_notice(&self, id: InstrumentId, shard: usize) {
        if let (Some(w), true) = (self.wants.get(id.index()), shard < MAX_SHARDS) {
            w.notices.fetch_and(!(1u64 << shard), Ordering::AcqRel);
        }
    }

    /// Writer side: the depth to copy for `id`.
    #[inline]
    fn depth_wanted(&self, id: InstrumentId) -> usize {
        self.wants.get(id.index()).map_or(0, |w| {
            w.depth
                .iter()
                .map(|d| d.load(Ordering::Relaxed) as usize)
                .max()
                .unwrap_or(0)
                .min(self.max_depth)
        })
    }

    /// Writer side (the book thread only: one writer per slot): publishes `book`'s state
    /// (`None`: an empty book) as the next version of `id`'s slot; returns that version (0:
    /// `id` out of range). Copies the top [`want_depth`](Self::want_depth) levels; no
    /// allocation, no waiting.
    pub fn publish(
        &self,
        id: InstrumentId,
        synced: bool,
        update_id: u64,
        stamps: Stamps,
        book: Option<&Book>,
    ) -> u64 {
        let depth = self.depth_wanted(id);
        let Some(slot) = self.slots.get(id.index()) else {
            return 0;
        };
        let version = slot.header[0].load(Ordering::Relaxed) + 1;
        let seq = slot.seq.load(Ordering::Relaxed);
        slot.seq.store(seq.wrapping_add(1), Ordering::Relaxed);
        fence(Ordering::Release);
        let mut counts = [0u16; 2];
        let mut scales = (0, 0);
        if let Some(book) = book {
            scales = (book.price_scale(), book.qty_scale());
            for (s, side) in [BookSide::Bid, BookSide::Ask].into_iter().enumerate() {
                let base = s * self.max_depth * LEVEL_WORDS;
                let mut n = 0;
                for l in book.levels(side).take(depth) {
                    let w = &slot.levels[base + n * LEVEL_WORDS..base + (n + 1) * LEVEL_WORDS];
                    w[0].store(l.price as u64, Ordering::Relaxed);
                    w[1].store(l.qty as u64, Ordering::Relaxed);
                    w[2].store(
                        u64::from(l.price_decimals) | u64::from(l.qty_decimals) << 8,
                        Ordering::Relaxed,
                    );
                    n += 1;
                }
                counts[s] = n as u16;
            }
        }
        let header = pack_header(&SlotHeader {
            version,
            synced,
            update_id,
            price_scale: scales.0,
            qty_scale: scales.1,
            bids: counts[0],
            asks: counts[1],
            depth: depth as u16,
            stamps,
        });
        for (w, v) in slot.header.iter().zip(header) {
            w.store(v, Ordering::Relaxed);
        }
        slot.seq.store(seq.wrapping_add(2), Ordering::Release);
        version
    }

    /// Reader side: copies `id`'s state into `view`, at most `depth` levels per side; returns
    /// how many times the copy was retried because a write overlapped it. No allocation while
    /// `depth` fits the view's capacity.
    pub fn read(&self, id: InstrumentId, depth: usize, view: &mut SlotView) -> u32 {
        view.bids.clear();
        view.asks.clear();
        let Some(slot) = self.slots.get(id.index()) else {
            view.header = SlotHeader::default();
            return 0;
        };
        let depth = depth.min(self.max_depth);
        let mut retries = 0;
        loop {
            let s1 = slot.seq.load(Ordering::Acquire);
            if s1 & 1 == 1 {
                retries += 1;
                std::hint::spin_loop();
                continue;
            }
            let mut words = [0u64; HEADER_WORDS];
            for (w, a) in words.iter_mut().zip(slot.header.iter()) {
                *w = a.load(Ordering::Relaxed);
            }
            let header = unpack_header(&words);
            view.bids.clear();
            view.asks.clear();
            for (s, n) in [header.bids, header.asks].into_iter().enumerate() {
                let base = s * self.max_depth * LEVEL_WORDS;
                let out = if s == 0 {
                    &mut view.bids
                } else {
                    &mut view.asks
                };
                for k in 0..usize::from(n).min(depth) {
                    let w = &slot.levels[base + k * LEVEL_WORDS..base + (k + 1) * LEVEL_WORDS];
                    let d = w[2].load(Ordering::Relaxed);
                    out.push(PriceLevel {
                        price: w[0].load(Ordering::Relaxed) as i64,
                        qty: w[1].load(Ordering::Relaxed) as i64,
                        price_decimals: d as u8,
                        qty_decimals: (d >> 8) as u8,
                    });
                }
            }
            fence(Ordering::Acquire);
            if slot.seq.load(Ordering::Relaxed) == s1 {
                view.header = header;
                return retries;
            }
            retries += 1;
        }
    }

    /// Reader side: the latest version of `id` (0: never published, or out of range). One
    /// load, no copy: taken before a full [`BookSlots::read`] to skip one that would bring
    /// nothing new. A write in progress may show its new version (the read then waits for it).
    #[inline]
    pub fn version(&self, id: InstrumentId) -> u64 {
        self.slots
            .get(id.index())
            .map_or(0, |s| s.header[0].load(Ordering::Acquire))
    }

    /// Reader side: only the header of `id` (version, synced, stamps).
    pub fn header(&self, id: InstrumentId) -> SlotHeader {
        let mut view = SlotView::default();
        self.read(id, 0, &mut view);
        view.header
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::AtomicBool;

    fn d(s: &str) -> Decimal {
        Decimal::parse(s.as_bytes()).unwrap()
    }

    #[test]
    fn publishes_the_top_levels_a_reader_asked_for() {
        let slots = BookSlots::new(2, 3, 1);
        let id = InstrumentId(1);
        let mut book = Book::default();
        for (p, q) in [("100.5", "1"), ("100", "2.25"), ("99", "3"), ("98", "4")] {
            book.apply(BookSide::Bid, d(p), d(q)).unwrap();
        }
        book.apply(BookSide::Ask, d("101"), d("0.5")).unwrap();
        let stamps = Stamps {
            exch_ts_ns: 7,
            recv_ts_ns: 8,
            recv_mono_ns: 9,
            push_delta_ns: 10,
            applied_delta_ns: 11,
        };
        // nobody asked for levels yet: only the header
        assert_eq!(slots.publish(id, true, 42, stamps, Some(&book)), 1);
        let mut view = SlotView::with_depth(3);
        slots.read(id, 3, &mut view);
        assert_eq!(
            (view.header.bids, view.header.asks, view.header.depth),
            (0, 0, 0)
        );
        assert_eq!(view.header.stamps, stamps);
        assert!(view.header.synced && view.header.update_id == 42);
        slots.want_depth(id, 0, 10); // clamped to 3
        assert_eq!(slots.publish(id, true, 43, stamps, Some(&book)), 2);
        slots.read(id, 2, &mut view);
        assert_eq!(
            (view.header.bids, view.header.asks, view.header.depth),
            (3, 1, 3)
        );
        assert_eq!(view.bids.len(), 2);
        let bids: Vec<_> = view.decimal_levels(BookSide::Bid).collect();
        assert_eq!(bids, [(d("100.5"), d("1")), (d("100"), d("2.25"))]);
        let asks: Vec<_> = view.decimal_levels(BookSide::Ask).collect();
        assert_eq!(asks, [(d("101"), d("0.5"))]);
        // the same digits as the venue wrote them
        assert_eq!(bids[1].1.to_string(), "2.25");
        slots.publish(id, false, 44, Stamps::default(), None);
        slots.read(id, 3, &mut view);
        assert!(!view.header.synced && view.bids.is_empty() && view.header.version == 3);
        // out of range: ignored, reads empty
        assert_eq!(slots.publish(InstrumentId(9), true, 1, stamps, None), 0);
        assert_eq!(slots.header(InstrumentId(9)), SlotHeader::default());
    }

    #[test]
    fn delta_wants_are_a_mask_of_shards() {
        let slots = BookSlots::new(1, 1, 3);
        let id = InstrumentId(0);
        slots.want_deltas(id, 2, true);
        slots.want_deltas(id, 0, true);
        assert_eq!(slots.deltas_wanted(id), 0b101);
        slots.want_deltas(id, 2, false);
        assert_eq!(slots.deltas_wanted(id), 0b1);
        slots.want_deltas(InstrumentId(5), 0, true);
        assert_eq!(slots.deltas_wanted(InstrumentId(5)), 0);
    }

    /// The slot protocol under concurrent writing and reading: the writer publishes books
    /// whose every level encodes the version (price = base + version, size = version), and a
    /// checksum in the update id; readers on other threads check every state they copy is
    /// one whole version, never a mix of two.
    #[test]
    fn readers_never_see_a_torn_state() {
        const DEPTH: usize = 20;
        let slots = Arc::new(BookSlots::new(1, DEPTH, 2));
        let id = InstrumentId(0);
        slots.want_depth(id, 0, DEPTH);
        let stop = Arc::new(AtomicBool::new(false));
        let readers: Vec<_> = (0..2)
            .map(|_| {
                let (slots, stop) = (slots.clone(), stop.clone());
                std::thread::spawn(move || {
                    let mut view = SlotView::with_depth(DEPTH);
                    let (mut reads, mut retries, mut last) = (0u64, 0u64, 0u64);
                    while !stop.load(Ordering::Relaxed) {
                        retries += u64::from(slots.read(id, DEPTH, &mut view));
                        reads += 1;
                        let h = view.header;
                        assert!(h.version >= last, "versions go back");
                        last = h.version;
                        if h.version == 0 {
                            continue;
                        }
                        let v = h.version as i64;
                        let n = (h.version % DEPTH as u64) as usize + 1;
                        assert_eq!(usize::from(h.bids), n, "count of version {v}");
                        assert_eq!(view.bids.len(), n);
                        let mut sum = 0u64;
                        for l in view.bids.iter().chain(&view.asks) {
                            assert_eq!(l.qty, v, "a level of another version");
                            sum = sum.wrapping_add(l.price as u64);
                        }
                        assert_eq!(h.update_id, sum, "checksum of version {v}");
                        assert_eq!(h.stamps.exch_ts_ns, v);
                    }
                    (reads, retries)
                })
            })
            .collect();
        let mut book = Book::default();
        let started = std::time::Instant::now();
        let mut version = 0u64;
        while started.elapsed() < std::time::Duration::from_millis(300) || version < 10_000 {
            version += 1;
            let n = (version % DEPTH as u64) as usize + 1;
            book.begin_snapshot();
            let mut sum = 0u64;
            for k in 0..n {
                let (bid, ask) = (1_000_000 + version as i64 - k as i64, 2_000_000 + k as i64);
                let q = Decimal::new(version as i64, 0);
                book.apply(BookSide::Bid, Decimal::new(bid, 0), q).unwrap();
                book.apply(BookSide::Ask, Decimal::new(ask, 0), q).unwrap();
                sum = sum.wrapping_add(bid as u64).wrapping_add(ask as u64);
            }
            book.end_snapshot();
            let stamps = Stamps {
                exch_ts_ns: version as i64,
                ..Stamps::default()
            };
            assert_eq!(slots.publish(id, true, sum, stamps, Some(&book)), version);
        }
        stop.store(true, Ordering::Relaxed);
        for r in readers {
            let (reads, _retries) = r.join().unwrap();
            assert!(reads > 0);
        }
    }
}

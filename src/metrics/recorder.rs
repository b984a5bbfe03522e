//! The hot side: stage histograms owned by one thread, handed to the exporter through a pair
//! of `rtrb` rings.
//!
//! Hand-off policy: on its housekeeping tick (about once a second) a hot thread takes an
//! empty [`Interval`] from its `spare` ring, swaps it with the one it has been recording into,
//! and pushes the full one to its `full` ring. When either ring has no room (the exporter is
//! late) nothing moves: the thread keeps accumulating into the same interval, never blocks,
//! and no value is lost. Recording and hand-off allocate nothing and take no lock.

use hdrhistogram::Histogram;

use crate::model::{Event, Stamps};

/// Lowest value a stage histogram tells apart from 0: 1 ns.
pub const LOWEST_NS: u64 = 1;
/// Highest value a stage histogram holds: 60 s. Larger values are recorded as 60 s and
/// counted as clamped.
pub const HIGHEST_NS: u64 = 60_000_000_000;
/// Significant decimal digits of every stage histogram.
pub const SIGNIFICANT_DIGITS: u8 = 3;

/// A pair of pipeline stamps whose distance is measured.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum Stage {
    /// Socket read to ingest ring push (parse and normalize); ingest threads, once per frame.
    ReadToPush = 0,
    /// Ingest ring push to book applied (ring wait and book apply); the book thread, once per
    /// book message or event.
    PushToApplied = 1,
    /// Book applied to fan-out encoded (fan-out ring wait and encode); the fan-out thread,
    /// once per encoded client message.
    AppliedToEncoded = 2,
    /// Fan-out encoded to the socket write that completed it; the fan-out thread, per message
    /// per client.
    EncodedToWritten = 3,
    /// Socket read to the client socket write: the whole internal path; the fan-out thread,
    /// per message per client.
    ReadToWritten = 4,
    /// The venue's event time to the socket read, on the wall clock (network and venue
    /// delay plus clock skew; a negative difference counts as 0); ingest threads, once per
    /// frame that carries a venue time.
    VenueToRead = 5,
}

impl Stage {
    /// Every stage, in index order.
    pub const ALL: [Stage; 6] = [
        Stage::ReadToPush,
        Stage::PushToApplied,
        Stage::AppliedToEncoded,
        Stage::EncodedToWritten,
        Stage::ReadToWritten,
        Stage::VenueToRead,
    ];

    /// The label and file-name stem: `read_to_push`, ..., `venue_to_read`.
    pub fn name(self) -> &'static str {
        match self {
            Stage::ReadToPush => "read_to_push",
            Stage::PushToApplied => "push_to_applied",
            Stage::AppliedToEncoded => "applied_to_encoded",
            Stage::EncodedToWritten => "encoded_to_written",
            Stage::ReadToWritten => "read_to_written",
            Stage::VenueToRead => "venue_to_read",
        }
    }

    /// Index in [`Stage::ALL`].
    #[inline]
    pub fn index(self) -> usize {
        self as usize
    }
}

/// A fresh, empty stage histogram: ns, 1 ns..60 s, 3 significant digits, fixed size.
pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(LOWEST_NS, HIGHEST_NS, SIGNIFICANT_DIGITS)
        .expect("constant bounds are valid")
}

/// The ns from `from_ns` to `to_ns` as a stamp offset: at least 1 (0 means "not stamped"),
/// at most `u32::MAX` (4.29 s).
#[inline]
pub fn offset_ns(from_ns: u64, to_ns: u64) -> u32 {
    to_ns.saturating_sub(from_ns).clamp(1, u32::MAX as u64) as u32
}

/// The stamps of an event that carries them (`Level` and `BookEnd` do not).
#[inline]
pub fn stamps_mut(ev: &mut Event) -> Option<&mut Stamps> {
    match ev {
        Event::Trade(e) => Some(&mut e.stamps),
        Event::BookBegin(e) => Some(&mut e.stamps),
        Event::BookTicker(e) => Some(&mut e.stamps),
        Event::DerivativeTicker(e) => Some(&mut e.stamps),
        Event::Liquidation(e) => Some(&mut e.stamps),
        Event::OptionHalf(e) => Some(&mut e.stamps),
        Event::Level(_) | Event::BookEnd(_) => None,
    }
}

/// One thread's histograms of one interval, with the counts of values that did not fit.
#[derive(Debug)]
pub struct Interval {
    /// Per [`Stage::ALL`] index: `Some` for the stages the owning thread records.
    pub hists: [Option<Histogram<u64>>; 6],
    /// Per stage: values over [`HIGHEST_NS`] recorded as [`HIGHEST_NS`].
    pub clamped: [u64; 6],
    /// Venue times later than the read (clock skew), recorded as 0.
    pub negative_skews: u64,
    /// Messages not stamped because a client's stamp queue was full.
    pub stamps_skipped: u64,
}

impl Interval {
    /// Empty histograms for `stages`.
    pub fn new(stages: &[Stage]) -> Interval {
        let mut hists: [Option<Histogram<u64>>; 6] = Default::default();
        for s in stages {
            hists[s.index()] = Some(new_histogram());
        }
        Interval {
            hists,
            clamped: [0; 6],
            negative_skews: 0,
            stamps_skipped: 0,
        }
    }

    /// Empties every histogram and count (keeps the memory).
    pub fn reset(&mut self) {
        for h in self.hists.iter_mut().flatten() {
            h.reset();
        }
        self.clamped = [0; 6];
        self.negative_skews = 0;
        self.stamps_skipped = 0;
    }
}

/// A hot thread's stage recorder. Made by [`Exporter::recorder`](super::Exporter::recorder);
/// moved to the thread that records.
pub struct StageRecorder {
    current: Interval,
    full: rtrb::Producer<Interval>,
    spare: rtrb::Consumer<Interval>,
    period_ns: u64,
    next_handoff_ns: u64,
}

impl std::fmt::Debug for StageRecorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StageRecorder")
            .field("period_ns", &self.period_ns)
            .finish_non_exhaustive()
    }
}

/// Spare intervals per recorder (besides the one being recorded).
pub(super) const SPARES: usize = 2;

impl StageRecorder {
    pub(super) fn new(
        stages: &[Stage],
        full: rtrb::Producer<Interval>,
        spare: rtrb::Consumer<Interval>,
        period_ns: u64,
    ) -> StageRecorder {
        StageRecorder {
            current: Interval::new(stages),
            full,
            spare,
            period_ns,
            next_handoff_ns: crate::clock::mono_ns() + period_ns,
        }
    }

    /// Records `value_ns` for `stage` (a stage this thread does not record is ignored).
    /// Values over [`HIGHEST_NS`] are recorded as [`HIGHEST_NS`] and counted.
    #[inline]
    pub fn record(&mut self, stage: Stage, value_ns: u64) {
        let i = stage.index();
        if let Some(h) = &mut self.current.hists[i] {
            if value_ns > HIGHEST_NS {
                self.current.clamped[i] += 1;
            }
            h.saturating_record(value_ns.min(HIGHEST_NS));
        }
    }

    /// Records `to_ns - from_ns` (0 when `to_ns` is earlier) for `stage`.
    #[inline]
    pub fn record_between(&mut self, stage: Stage, from_ns: u64, to_ns: u64) {
        self.record(stage, to_ns.saturating_sub(from_ns));
    }

    /// Records [`Stage::VenueToRead`]: wall-clock read time minus venue time, both unix ns. A
    /// venue time after the read (skew) records 0 and is counted; a missing venue time (0)
    /// records nothing.
    #[inline]
    pub fn record_venue(&mut self, exch_ts_ns: i64, recv_ts_ns: i64) {
        if exch_ts_ns == 0 {
            return;
        }
        let d = recv_ts_ns.saturating_sub(exch_ts_ns);
        if d < 0 {
            self.current.negative_skews += 1;
        }
        self.record(Stage::VenueToRead, d.max(0) as u64);
    }

    /// Counts a message that could not be stamped.
    #[inline]
    pub fn count_skipped(&mut self) {
        self.current.stamps_skipped += 1;
    }

    /// Hands the interval off when a period has passed since the last hand-off; call on the
    /// thread's housekeeping tick with [`crate::clock::mono_ns`].
    #[inline]
    pub fn tick(&mut self, now_ns: u64) {
        if now_ns >= self.next_handoff_ns {
            self.next_handoff_ns = now_ns + self.period_ns;
            self.handoff();
        }
    }

    /// Swaps the current interval for an empty one and passes it to the exporter; false (and
    /// nothing changes) when either ring has no room.
    pub fn handoff(&mut self) -> bool {
        if self.full.slots() == 0 {
            return false;
        }
        let Ok(mut next) = self.spare.pop() else {
            return false;
        };
        std::mem::swap(&mut self.current, &mut next);
        // room was checked above and this thread is the only producer
        self.full.push(next).is_ok()
    }

    /// The final hand-off when the thread ends (cold): waits up to 1 s for room.
    pub fn finish(mut self) {
        for _ in 0..200 {
            if self.handoff() || self.full.is_abandoned() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
    }
}

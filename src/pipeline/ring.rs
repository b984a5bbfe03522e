//! Bounded SPSC rings (rtrb) with per-queue counters: pushed, dropped, high-water mark.
//!
//! The producer end owns the counters and is their only writer, so each update is a plain
//! relaxed store of a thread-local count (no read-modify-write); every counter sits on its
//! own cache line, so the status thread reading them never disturbs the producer's line
//! with the ring indices. Readers see monotone, possibly slightly stale values.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crossbeam_utils::CachePadded;
use rtrb::{Consumer, Producer, PushError, RingBuffer};

/// Counters of one queue. Shared between the producer (writer) and any reader.
#[derive(Debug)]
pub struct QueueStats {
    name: String,
    capacity: usize,
    pushed: CachePadded<AtomicU64>,
    dropped: CachePadded<AtomicU64>,
    high_water: CachePadded<AtomicU64>,
}

/// A point-in-time copy of a [`QueueStats`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueueCounts {
    /// Queue name, e.g. `ingest-0-bybit-linear`.
    pub name: String,
    /// Slots.
    pub capacity: usize,
    /// Items pushed.
    pub pushed: u64,
    /// Items dropped because the queue was full (or dropped with a message they belonged to).
    pub dropped: u64,
    /// Highest occupancy seen right after a push, items.
    pub high_water: u64,
}

impl QueueStats {
    /// Queue name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Slots.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Items pushed so far.
    pub fn pushed(&self) -> u64 {
        self.pushed.load(Ordering::Relaxed)
    }

    /// Items dropped so far.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Highest occupancy seen right after a push, items.
    pub fn high_water(&self) -> u64 {
        self.high_water.load(Ordering::Relaxed)
    }

    /// Copies the counters.
    pub fn counts(&self) -> QueueCounts {
        QueueCounts {
            name: self.name.clone(),
            capacity: self.capacity,
            pushed: self.pushed(),
            dropped: self.dropped(),
            high_water: self.high_water(),
        }
    }
}

/// Why a push did not happen: the ring was full. The value is handed back (rtrb style).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Full<T>(pub T);

/// Producer end of a counted ring.
///
/// **Full-queue policy: drop the newest and count it.** [`RingProducer::push`] never blocks
/// and never waits: on a full ring it counts a drop and hands the value back, and the caller
/// applies its stage's policy (ingest marks the book of a dropped delta for resync; the book
/// thread republishes a dropped book as its latest state). [`RingProducer::push_all`] is the
/// all-or-nothing variant for multi-item messages. Cold producers that may wait (the REST
/// thread) check [`RingProducer::slots`] first.
pub struct RingProducer<T> {
    inner: Producer<T>,
    stats: Arc<QueueStats>,
    capacity: u64,
    pushed: u64,
    dropped: u64,
    high_water: u64,
}

/// A ring of `capacity` slots named `name`: its producer, its consumer and its counters.
///
/// # Panics
/// Panics if `capacity` is 0.
pub fn ring<T>(
    name: impl Into<String>,
    capacity: usize,
) -> (RingProducer<T>, Consumer<T>, Arc<QueueStats>) {
    assert!(capacity > 0, "a ring needs at least one slot");
    let (inner, consumer) = RingBuffer::new(capacity);
    let stats = Arc::new(QueueStats {
        name: name.into(),
        capacity,
        pushed: CachePadded::new(AtomicU64::new(0)),
        dropped: CachePadded::new(AtomicU64::new(0)),
        high_water: CachePadded::new(AtomicU64::new(0)),
    });
    let producer = RingProducer {
        inner,
        stats: stats.clone(),
        capacity: capacity as u64,
        pushed: 0,
        dropped: 0,
        high_water: 0,
    };
    (producer, consumer, stats)
}

impl<T> RingProducer<T> {
    /// Pushes `value`, or counts a drop and hands it back when the ring is full.
    ///
    /// # Errors
    /// [`Full`] with the value when no slot is free.
    #[inline]
    pub fn push(&mut self, value: T) -> Result<(), Full<T>> {
        match self.inner.push(value) {
            Ok(()) => {
                self.pushed += 1;
                self.stats.pushed.store(self.pushed, Ordering::Relaxed);
                self.note_occupancy();
                Ok(())
            }
            Err(PushError::Full(value)) => {
                self.count_dropped(1);
                Err(Full(value))
            }
        }
    }

    /// Counts `n` items dropped without a push attempt (the rest of a message whose start was
    /// dropped).
    #[inline]
    pub fn count_dropped(&mut self, n: u64) {
        self.dropped += n;
        self.stats.dropped.store(self.dropped, Ordering::Relaxed);
    }

    /// Free slots now.
    #[inline]
    pub fn slots(&self) -> usize {
        self.inner.slots()
    }

    /// True when the consumer is gone.
    pub fn is_abandoned(&self) -> bool {
        self.inner.is_abandoned()
    }

    /// The counters.
    pub fn stats(&self) -> &Arc<QueueStats> {
        &self.stats
    }

    #[inline]
    fn note_occupancy(&mut self) {
        let used = self.capacity - self.inner.slots() as u64;
        if used > self.high_water {
            self.high_water = used;
            self.stats.high_water.store(used, Ordering::Relaxed);
        }
    }
}

impl<T: Copy> RingProducer<T> {
    /// Pushes every item of `items` or none: when fewer slots are free, all of them are
    /// counted as dropped.
    ///
    /// # Errors
    /// `Err(free_slots)` when the message does not fit.
    #[inline]
    pub fn push_all(&mut self, items: &[T]) -> Result<(), usize> {
        match self.inner.push_entire_slice(items) {
            Ok(()) => {
                self.pushed += items.len() as u64;
                self.stats.pushed.store(self.pushed, Ordering::Relaxed);
                self.note_occupancy();
                Ok(())
            }
            Err(rtrb::chunks::ChunkError::TooFewSlots(free)) => {
                self.count_dropped(items.len() as u64);
                Err(free)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_pushes_drops_and_high_water() {
        let (mut p, mut c, stats) = ring::<u32>("t", 4);
        for i in 0..4 {
            p.push(i).unwrap();
        }
        assert_eq!(p.push(99), Err(Full(99)));
        assert_eq!(p.push(100), Err(Full(100)));
        assert_eq!(stats.pushed(), 4);
        assert_eq!(stats.dropped(), 2);
        assert_eq!(stats.high_water(), 4);
        assert_eq!(c.pop().unwrap(), 0);
        assert_eq!(c.pop().unwrap(), 1);
        p.push(5).unwrap();
        // occupancy is 3 now; the high-water mark stays at 4
        assert_eq!(stats.high_water(), 4);
        assert_eq!(stats.pushed(), 5);
        let counts = stats.counts();
        assert_eq!(counts.name, "t");
        assert_eq!(counts.capacity, 4);
    }

    #[test]
    fn high_water_follows_the_peak() {
        let (mut p, mut c, stats) = ring::<u8>("hw", 16);
        for _ in 0..3 {
            p.push(1).unwrap();
        }
        assert_eq!(stats.high_water(), 3);
        while c.pop().is_ok() {}
        p.push(1).unwrap();
        assert_eq!(stats.high_water(), 3);
        for _ in 0..9 {
            p.push(1).unwrap();
        }
        assert_eq!(stats.high_water(), 10);
    }

    #[test]
    fn push_all_is_all_or_nothing() {
        let (mut p, mut c, stats) = ring::<u16>("all", 5);
        p.push_all(&[1, 2, 3]).unwrap();
        assert_eq!(p.push_all(&[4, 5, 6]), Err(2));
        assert_eq!(stats.dropped(), 3);
        assert_eq!(stats.pushed(), 3);
        p.push_all(&[4, 5]).unwrap();
        let got: Vec<u16> = std::iter::from_fn(|| c.pop().ok()).collect();
        assert_eq!(got, [1, 2, 3, 4, 5]);
        assert_eq!(stats.high_water(), 5);
    }

    #[test]
    fn count_dropped_adds_up() {
        let (mut p, _c, stats) = ring::<u8>("d", 1);
        p.count_dropped(3);
        p.push(1).unwrap();
        assert!(p.push(2).is_err());
        assert_eq!(stats.dropped(), 4);
        assert!(!p.is_abandoned());
    }

    #[test]
    fn sees_an_abandoned_consumer() {
        let (p, c, _) = ring::<u8>("a", 2);
        drop(c);
        assert!(p.is_abandoned());
    }

    #[test]
    fn counters_travel_across_threads() {
        let (mut p, mut c, stats) = ring::<u64>("x", 64);
        let t = std::thread::spawn(move || {
            let mut sent = 0u64;
            for i in 0..10_000u64 {
                if p.push(i).is_ok() {
                    sent += 1;
                }
            }
            sent
        });
        let mut got = 0u64;
        let mut last = None;
        loop {
            match c.pop() {
                Ok(v) => {
                    if let Some(l) = last {
                        assert!(v > l, "order kept");
                    }
                    last = Some(v);
                    got += 1;
                }
                Err(_) if c.is_abandoned() && c.is_empty() => break,
                Err(_) => std::hint::spin_loop(),
            }
        }
        let sent = t.join().unwrap();
        assert_eq!(got, sent);
        assert_eq!(stats.pushed(), sent);
        assert_eq!(stats.pushed() + stats.dropped(), 10_000);
        assert!(stats.high_water() <= 64);
    }
}

//! Pipeline building blocks: bounded rings with counters, wait strategies, pinned threads,
//! the book thread, run-wide counters and the clocks every stage stamps with.
//!
//! Real-time contract: [`RingProducer::push`] never blocks or allocates; [`Waiter`] spins,
//! yields, then parks (backoff) or only spins (spin); [`pin::spawn`] pins before the thread
//! body runs and fails loudly when it cannot.

pub mod book_thread;
pub mod pin;
pub mod ring;
pub mod slot;
pub mod stats;
pub mod wait;

pub use book_thread::{BookThread, IngestItem};
pub use pin::PinError;
pub use ring::{QueueStats, RingProducer, ring};
pub use slot::{BookSlots, ShardRequest, SlotHeader, SlotView};
pub use stats::{ConnState, ConnStats, RunStats};
pub use wait::{WaitStrategy, Waiter, Wakeup};

/// Monotonic clock, ns since the first call in this process. Every stage stamps with it, so
/// stamps of different threads compare (`recv_mono_ns`, fan-out `sentNs`).
#[inline]
pub fn mono_ns() -> u64 {
    crate::clock::mono_ns()
}

/// Wall clock, unix ns (0 if the clock is before 1970).
#[inline]
pub fn wall_ns() -> i64 {
    crate::clock::wall_ns()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clocks_advance() {
        let a = mono_ns();
        std::thread::sleep(std::time::Duration::from_millis(2));
        assert!(mono_ns() >= a + 1_000_000);
        assert!(wall_ns() > 1_600_000_000_000_000_000);
    }
}

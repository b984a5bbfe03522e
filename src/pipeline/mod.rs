//! Pipeline building blocks: bounded rings with counters, latest-state slots, wait
//! strategies, pinned threads, the book thread and run-wide counters. Every stage stamps with
//! [`crate::clock`].
//!
//! Real-time contract: [`RingProducer::push`] never blocks or allocates; [`Waiter`] spins,
//! yields, then parks (backoff) or only spins (spin); [`pin::spawn`] pins before the thread
//! body runs and fails loudly when it cannot.

pub mod book_thread;
pub mod msg;
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

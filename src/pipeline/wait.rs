//! What a hot consumer thread does when its input rings are empty.
//!
//! Two strategies, chosen from [`WaitMode`]:
//! - [`WaitStrategy::Spin`]: busy-spin with the CPU's spin hint. Lowest latency; burns the
//!   core. Only for isolated cores on tuned hosts.
//! - [`WaitStrategy::Backoff`] (default): spin a little (exponentially longer each idle
//!   round), then yield to the scheduler, then park with a short timeout. Producers call
//!   [`Wakeup::notify`] after publishing, which unparks the consumer only when it sleeps, so a
//!   busy pipeline pays one fence and one load per batch and an idle one costs no CPU. This is
//!   what runs well when six hot threads share two cores.
//!
//! Shape after crossbeam-utils' `Backoff` and disruptor-rs' wait strategies.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering, fence};
use std::thread::Thread;
use std::time::Duration;

use crate::config::WaitMode;

/// Idle rounds that spin, each twice as long as the one before (1, 2, 4, ... 64 hints).
pub const SPIN_ROUNDS: u32 = 7;
/// Idle rounds that yield after spinning.
pub const YIELD_ROUNDS: u32 = 10;
/// Longest park of one idle round. A producer's [`Wakeup::notify`] ends it early; the timeout
/// bounds a missed wake-up and lets the thread do its housekeeping.
pub const PARK_TIMEOUT: Duration = Duration::from_millis(1);

/// The wait policy of a hot consumer thread.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum WaitStrategy {
    /// Busy-spin.
    Spin,
    /// Spin, then yield, then park with [`PARK_TIMEOUT`].
    Backoff,
}

impl From<WaitMode> for WaitStrategy {
    fn from(mode: WaitMode) -> WaitStrategy {
        match mode {
            WaitMode::Spin => WaitStrategy::Spin,
            WaitMode::Backoff => WaitStrategy::Backoff,
        }
    }
}

/// What a producer holds to wake a sleeping consumer: the one wake-up handshake of the
/// pipeline. The consumer marks itself sleeping, fences, re-checks its rings and sleeps; the
/// producer, after pushing, fences and wakes it only when it is marked sleeping, so a busy
/// pipeline pays one fence and one load per batch and no syscall.
///
/// Two kinds of consumer: a thread that parks ([`Wakeup::new`]; it registers with
/// [`Waiter::new`]) and a mio loop that sleeps in `poll` ([`Wakeup::for_poll`]; it marks
/// itself with [`Wakeup::set_sleeping`]).
#[derive(Debug, Default)]
pub struct Wakeup {
    thread: OnceLock<Thread>,
    poll: Option<std::sync::Arc<mio::Waker>>,
    sleeping: AtomicBool,
}

impl Wakeup {
    /// A handle for a parking thread, none registered yet.
    pub fn new() -> Wakeup {
        Wakeup::default()
    }

    /// A handle for a mio loop woken through `waker`.
    pub fn for_poll(waker: std::sync::Arc<mio::Waker>) -> Wakeup {
        Wakeup {
            poll: Some(waker),
            ..Wakeup::default()
        }
    }

    /// Call after publishing. The fence pairs with the consumer's: either it sees the new
    /// items before it sleeps, or this call sees it sleeping and wakes it.
    #[inline]
    pub fn notify(&self) {
        fence(Ordering::SeqCst);
        if self.sleeping.load(Ordering::Relaxed) {
            if let Some(w) = &self.poll {
                let _ = w.wake();
            } else if let Some(t) = self.thread.get() {
                t.unpark();
            }
        }
    }

    /// Consumer side (a mio loop): about to sleep (`true`, then it fences and re-checks its
    /// rings) or awake again (`false`).
    #[inline]
    pub fn set_sleeping(&self, sleeping: bool) {
        self.sleeping.store(sleeping, Ordering::Relaxed);
        if sleeping {
            fence(Ordering::SeqCst);
        }
    }

    /// True while the consumer sleeps (tests, diagnostics).
    pub fn is_sleeping(&self) -> bool {
        self.sleeping.load(Ordering::Relaxed)
    }
}

/// The consumer side: call [`Waiter::idle`] when every input was empty, [`Waiter::reset`]
/// when work was found.
#[derive(Debug)]
pub struct Waiter {
    strategy: WaitStrategy,
    round: u32,
    wakeup: std::sync::Arc<Wakeup>,
}

impl Waiter {
    /// A waiter for the current thread; registers it in `wakeup` so producers can unpark it.
    pub fn new(strategy: WaitStrategy, wakeup: std::sync::Arc<Wakeup>) -> Waiter {
        let _ = wakeup.thread.set(std::thread::current());
        Waiter {
            strategy,
            round: 0,
            wakeup,
        }
    }

    /// The strategy.
    pub fn strategy(&self) -> WaitStrategy {
        self.strategy
    }

    /// Idle rounds since the last [`Waiter::reset`] (saturating).
    pub fn round(&self) -> u32 {
        self.round
    }

    /// Work was found: the next idle round starts spinning again.
    #[inline]
    pub fn reset(&mut self) {
        self.round = 0;
    }

    /// One idle round. `still_empty` re-checks the inputs after the consumer has announced
    /// that it will park, so an item published in between is never slept over.
    #[inline]
    pub fn idle(&mut self, still_empty: impl FnOnce() -> bool) {
        match self.strategy {
            WaitStrategy::Spin => std::hint::spin_loop(),
            WaitStrategy::Backoff => {
                if self.round < SPIN_ROUNDS {
                    for _ in 0..(1u32 << self.round) {
                        std::hint::spin_loop();
                    }
                } else if self.round < SPIN_ROUNDS + YIELD_ROUNDS {
                    std::thread::yield_now();
                } else {
                    self.wakeup.sleeping.store(true, Ordering::Relaxed);
                    fence(Ordering::SeqCst);
                    if still_empty() {
                        std::thread::park_timeout(PARK_TIMEOUT);
                    }
                    self.wakeup.sleeping.store(false, Ordering::Relaxed);
                }
                self.round = self.round.saturating_add(1);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::AtomicU64;
    use std::time::Instant;

    #[test]
    fn from_config() {
        assert_eq!(WaitStrategy::from(WaitMode::Spin), WaitStrategy::Spin);
        assert_eq!(WaitStrategy::from(WaitMode::Backoff), WaitStrategy::Backoff);
    }

    #[test]
    fn backoff_escalates_to_park_and_resets() {
        let wakeup = Arc::new(Wakeup::new());
        let mut w = Waiter::new(WaitStrategy::Backoff, wakeup.clone());
        for _ in 0..SPIN_ROUNDS + YIELD_ROUNDS {
            let t = Instant::now();
            w.idle(|| panic!("no re-check before parking"));
            assert!(t.elapsed() < Duration::from_millis(50));
        }
        // parking rounds re-check and sleep up to the timeout
        let t = Instant::now();
        let mut checked = false;
        w.idle(|| {
            checked = true;
            true
        });
        assert!(checked);
        assert!(
            t.elapsed() >= Duration::from_micros(100),
            "{:?}",
            t.elapsed()
        );
        assert!(!wakeup.is_sleeping());
        // an item seen on the re-check: no park
        let t = Instant::now();
        w.idle(|| false);
        assert!(t.elapsed() < PARK_TIMEOUT);
        w.reset();
        assert_eq!(w.round(), 0);
    }

    #[test]
    fn spin_never_parks() {
        let mut w = Waiter::new(WaitStrategy::Spin, Arc::new(Wakeup::new()));
        for _ in 0..1000 {
            w.idle(|| panic!("spin does not park"));
        }
        assert_eq!(w.strategy(), WaitStrategy::Spin);
    }

    #[test]
    fn notify_wakes_a_parked_consumer() {
        // the consumer waits for `flag`; the producer sets it and notifies. Every item must
        // be seen, whatever the interleaving, and quickly.
        let wakeup = Arc::new(Wakeup::new());
        let flag = Arc::new(AtomicU64::new(0));
        let (w2, f2) = (wakeup.clone(), flag.clone());
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let consumer = std::thread::spawn(move || {
            let mut w = Waiter::new(WaitStrategy::Backoff, w2);
            ready_tx.send(()).unwrap();
            let mut seen = 0;
            while seen < 200 {
                let v = f2.load(Ordering::SeqCst);
                if v > seen {
                    seen = v;
                    w.reset();
                } else {
                    w.idle(|| f2.load(Ordering::SeqCst) == seen);
                }
            }
        });
        ready_rx.recv().unwrap();
        let start = Instant::now();
        for i in 1..=200 {
            flag.store(i, Ordering::SeqCst);
            wakeup.notify();
            std::thread::sleep(Duration::from_micros(50));
        }
        consumer.join().unwrap();
        assert!(start.elapsed() < Duration::from_secs(5));
    }
}

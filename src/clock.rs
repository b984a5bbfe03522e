//! The process's clocks, shared by every stage so that stamps taken on different threads
//! compare: a monotonic clock in ns since a process-wide origin, and the wall clock in unix ns.

use std::sync::OnceLock;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// Monotonic ns since the process-wide origin (set on first use). Never 0: 0 means "no stamp".
#[inline]
pub fn mono_ns() -> u64 {
    static ORIGIN: OnceLock<Instant> = OnceLock::new();
    ORIGIN.get_or_init(Instant::now).elapsed().as_nanos() as u64 + 1
}

/// Wall clock, unix ns (0 if the clock is before 1970).
#[inline]
pub fn wall_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i64)
}

#[cfg(test)]
mod tests {
    #[test]
    fn monotonic_and_nonzero() {
        let a = super::mono_ns();
        let b = super::mono_ns();
        assert!(a > 0 && b >= a);
        assert!(super::wall_ns() > 1_700_000_000_000_000_000);
    }
}

//! The physical floor: how long one hop takes on this machine, measured in the same run on
//! the same cores as the engine's book and fan-out threads, so that every latency of the
//! bench reads as a ratio to it.
//!
//! - [`ring_hop`]: two threads ping-pong one value over a pair of `rtrb` rings (the engine's
//!   queue type); one hop is half a round trip.
//! - [`tcp_hop`]: two threads ping-pong a 64-byte message over a loopback TCP connection with
//!   `TCP_NODELAY` (what a fan-out write and a client read cost at least); one hop is half a
//!   round trip.
//!
//! Waiting spins a little, then yields, so two threads sharing one core still make progress
//! (on a shared host the figure then includes a context switch, which is the honest floor of
//! such a placement).

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

/// Percentiles of one floor measurement.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Floor {
    /// Round trips measured.
    pub round_trips: u64,
    /// Median hop (half a round trip), µs.
    pub hop_p50_us: f64,
    /// 99th percentile hop, µs.
    pub hop_p99_us: f64,
}

/// Where the two ping-pong threads run: a core each, or unpinned.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FloorCores {
    /// Core of the pinging thread (the engine's book core).
    pub ping: Option<usize>,
    /// Core of the echoing thread (the engine's fan-out core).
    pub echo: Option<usize>,
}

/// Why a floor could not be measured.
#[derive(Debug, thiserror::Error)]
pub enum FloorError {
    /// Socket setup or I/O failed.
    #[error("floor: {0}")]
    Io(#[from] std::io::Error),
    /// A helper thread could not start or panicked.
    #[error("floor: echo thread failed")]
    Thread,
    /// No round trip completed.
    #[error("floor: no round trip completed")]
    Empty,
}

fn pin(core: Option<usize>) {
    if let Some(id) = core {
        // best effort: the floor of an unpinned placement is still a floor
        let _ = core_affinity::set_for_current(core_affinity::CoreId { id });
    }
}

/// Runs the pinging side on a thread of its own, so pinning never sticks to the caller.
fn on_ping_thread(
    body: impl FnOnce() -> Result<Floor, FloorError> + Send + 'static,
) -> Result<Floor, FloorError> {
    std::thread::Builder::new()
        .name("floor-ping".into())
        .spawn(body)
        .map_err(|_| FloorError::Thread)?
        .join()
        .map_err(|_| FloorError::Thread)?
}

/// Spins briefly, then yields.
#[inline]
fn backoff(spins: &mut u32) {
    if *spins < 64 {
        std::hint::spin_loop();
        *spins += 1;
    } else {
        std::thread::yield_now();
    }
}

fn hist() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000_000, 3).expect("valid histogram bounds")
}

fn summarize(h: &Histogram<u64>) -> Result<Floor, FloorError> {
    if h.is_empty() {
        return Err(FloorError::Empty);
    }
    let hop_us = |q: f64| h.value_at_quantile(q) as f64 / 2.0 / 1000.0;
    Ok(Floor {
        round_trips: h.len(),
        hop_p50_us: hop_us(0.5),
        hop_p99_us: hop_us(0.99),
    })
}

/// Ping-pongs over two `rtrb` rings for about `duration`.
///
/// # Errors
/// [`FloorError`] when the echo thread fails or nothing was measured.
pub fn ring_hop(duration: Duration, cores: FloorCores) -> Result<Floor, FloorError> {
    on_ping_thread(move || ring_hop_here(duration, cores))
}

fn ring_hop_here(duration: Duration, cores: FloorCores) -> Result<Floor, FloorError> {
    let (mut to_echo, mut from_ping) = rtrb::RingBuffer::<u64>::new(64);
    let (mut to_ping, mut from_echo) = rtrb::RingBuffer::<u64>::new(64);
    let echo = std::thread::Builder::new()
        .name("floor-ring".into())
        .spawn(move || {
            pin(cores.echo);
            let mut spins = 0;
            loop {
                match from_ping.pop() {
                    Ok(u64::MAX) => return,
                    Ok(v) => {
                        spins = 0;
                        while to_ping.push(v).is_err() {
                            std::hint::spin_loop();
                        }
                    }
                    Err(_) => {
                        if from_ping.is_abandoned() {
                            return;
                        }
                        backoff(&mut spins);
                    }
                }
            }
        })
        .map_err(|_| FloorError::Thread)?;
    pin(cores.ping);
    let mut h = hist();
    let end = Instant::now() + duration;
    let mut i = 0u64;
    let mut failed = false;
    while Instant::now() < end && !failed {
        let t0 = Instant::now();
        if to_echo.push(i).is_err() {
            break;
        }
        let mut spins = 0;
        loop {
            match from_echo.pop() {
                Ok(_) => break,
                Err(_) if echo.is_finished() => {
                    failed = true;
                    break;
                }
                Err(_) => backoff(&mut spins),
            }
        }
        if !failed {
            h.saturating_record(t0.elapsed().as_nanos() as u64);
        }
        i += 1;
    }
    let _ = to_echo.push(u64::MAX);
    echo.join().map_err(|_| FloorError::Thread)?;
    summarize(&h)
}

/// Ping-pongs 64-byte messages over loopback TCP (`TCP_NODELAY`) for about `duration`.
///
/// # Errors
/// [`FloorError`] when the sockets cannot be set up, an echo fails or nothing was measured.
pub fn tcp_hop(duration: Duration, cores: FloorCores) -> Result<Floor, FloorError> {
    on_ping_thread(move || tcp_hop_here(duration, cores))
}

fn tcp_hop_here(duration: Duration, cores: FloorCores) -> Result<Floor, FloorError> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let echo = std::thread::Builder::new()
        .name("floor-tcp".into())
        .spawn(move || -> std::io::Result<()> {
            pin(cores.echo);
            let (mut s, _) = listener.accept()?;
            s.set_nodelay(true)?;
            let mut buf = [0u8; 64];
            loop {
                match s.read_exact(&mut buf) {
                    Ok(()) => s.write_all(&buf)?,
                    Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(()),
                    Err(e) => return Err(e),
                }
            }
        })
        .map_err(|_| FloorError::Thread)?;
    pin(cores.ping);
    let mut s = TcpStream::connect(addr)?;
    s.set_nodelay(true)?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut h = hist();
    let mut buf = [7u8; 64];
    let end = Instant::now() + duration;
    while Instant::now() < end {
        let t0 = Instant::now();
        s.write_all(&buf)?;
        s.read_exact(&mut buf)?;
        h.saturating_record(t0.elapsed().as_nanos() as u64);
    }
    drop(s);
    echo.join().map_err(|_| FloorError::Thread)??;
    summarize(&h)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ring_floor_is_positive_and_finite() {
        let f = ring_hop(Duration::from_millis(100), FloorCores::default()).unwrap();
        assert!(f.round_trips > 10, "{f:?}");
        assert!(f.hop_p50_us > 0.0 && f.hop_p50_us.is_finite(), "{f:?}");
        assert!(f.hop_p99_us >= f.hop_p50_us, "{f:?}");
    }

    #[test]
    fn tcp_floor_is_positive_and_finite() {
        let f = tcp_hop(Duration::from_millis(100), FloorCores::default()).unwrap();
        assert!(f.round_trips > 10, "{f:?}");
        assert!(f.hop_p50_us > 0.0 && f.hop_p50_us.is_finite(), "{f:?}");
        assert!(f.hop_p99_us >= f.hop_p50_us, "{f:?}");
    }

    #[test]
    fn an_empty_histogram_is_an_error() {
        assert!(matches!(summarize(&hist()), Err(FloorError::Empty)));
    }
}

//! Pacing of synthetic flow: the message mix, the `--burst` spec and its schedule, and the
//! per-class arrival clocks of one session.

use std::fmt;
use std::str::FromStr;
use std::time::{Duration, Instant};

use super::market::Rng;

/// Message classes of the mix, in [`MIX_PERCENT`] order.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Class {
    /// L2 book deltas.
    L2 = 0,
    /// Trades.
    Trade = 1,
    /// Best bid/offer feeds and derivative tickers.
    Ticker = 2,
    /// Liquidations.
    Liquidation = 3,
}

impl Class {
    /// Every class.
    pub const ALL: [Class; 4] = [Class::L2, Class::Trade, Class::Ticker, Class::Liquidation];
}

/// Share of the total rate per [`Class`], percent: 70 % L2 deltas, 20 % trades, 8 % book
/// tickers and derivative tickers, 2 % liquidations. Classes no client subscribed are left
/// out and the others scaled up, so the total stays `--rate`.
pub const MIX_PERCENT: [u32; 4] = [70, 20, 8, 2];

/// A burst profile, `--burst FACTORx:LENGTH/PERIOD` (`10x:1s/10s`): the L2 share of the rate
/// is multiplied by `factor` for `length` at the start of every `period`.
#[derive(Copy, Clone, Debug, PartialEq)]
pub struct Burst {
    /// Multiplier of the L2 rate inside a burst; finite, `>= 1`.
    pub factor: f64,
    /// Length of each burst; `> 0` and `< period`.
    pub length: Duration,
    /// Time from the start of one burst to the start of the next.
    pub period: Duration,
}

/// Why a `--burst` spec was rejected.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BurstError {
    /// Not of the form `FACTORx:LENGTH/PERIOD`.
    #[error("expected FACTORx:LENGTH/PERIOD, e.g. 10x:1s/10s")]
    Shape,
    /// The factor is not a finite number `>= 1`.
    #[error("factor must be a number >= 1 followed by `x`, got `{0}`")]
    Factor(String),
    /// A duration is not a positive number followed by `ms` or `s`.
    #[error("duration must be a positive number followed by `ms` or `s`, got `{0}`")]
    Duration(String),
    /// The burst is not shorter than its period.
    #[error("burst length must be shorter than its period")]
    TooLong,
}

fn parse_duration(text: &str) -> Result<Duration, BurstError> {
    let bad = || BurstError::Duration(text.to_string());
    let (number, unit_s) = if let Some(n) = text.strip_suffix("ms") {
        (n, 1e-3)
    } else if let Some(n) = text.strip_suffix('s') {
        (n, 1.0)
    } else {
        return Err(bad());
    };
    let value: f64 = number.parse().map_err(|_| bad())?;
    if !value.is_finite() || value <= 0.0 {
        return Err(bad());
    }
    let d = Duration::try_from_secs_f64(value * unit_s).map_err(|_| bad())?;
    if d.is_zero() || d > Duration::from_secs(86_400) {
        return Err(bad());
    }
    Ok(d)
}

impl FromStr for Burst {
    type Err = BurstError;

    /// Parses `FACTORx:LENGTH/PERIOD`: factor a number `>= 1` followed by `x`, durations a
    /// positive number followed by `ms` or `s` (at most a day), length shorter than period.
    fn from_str(spec: &str) -> Result<Burst, BurstError> {
        let (factor, rest) = spec.trim().split_once(':').ok_or(BurstError::Shape)?;
        let (length, period) = rest.split_once('/').ok_or(BurstError::Shape)?;
        let factor_num = factor
            .strip_suffix('x')
            .ok_or_else(|| BurstError::Factor(factor.to_string()))?;
        let factor_val: f64 = factor_num
            .parse()
            .map_err(|_| BurstError::Factor(factor.to_string()))?;
        if !factor_val.is_finite() || factor_val < 1.0 {
            return Err(BurstError::Factor(factor.to_string()));
        }
        let length = parse_duration(length)?;
        let period = parse_duration(period)?;
        if length >= period {
            return Err(BurstError::TooLong);
        }
        Ok(Burst {
            factor: factor_val,
            length,
            period,
        })
    }
}

impl fmt::Display for Burst {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}x:{}ms/{}ms",
            self.factor,
            self.length.as_millis(),
            self.period.as_millis()
        )
    }
}

/// When bursts happen: from `start`, a burst of `length` at the start of every `period`.
/// Anchored on both clocks so a client can classify a send time taken from either (trade ids
/// carry the wall clock, see the module docs).
#[derive(Copy, Clone, Debug)]
pub struct BurstSchedule {
    /// The profile.
    pub burst: Burst,
    /// Monotonic start of the first burst (the simulator's start).
    pub start: Instant,
    /// Wall clock of `start`, unix ns.
    pub start_wall_ns: i64,
}

impl BurstSchedule {
    /// True when the monotonic instant `t` falls inside a burst (never before `start`).
    pub fn in_burst(&self, t: Instant) -> bool {
        match t.checked_duration_since(self.start) {
            Some(d) => self.phase_ns(d.as_nanos() as i64),
            None => false,
        }
    }

    /// True when the wall-clock time `wall_ns` (unix ns, e.g. a synthetic trade id) falls
    /// inside a burst (never before `start_wall_ns`).
    pub fn in_burst_wall_ns(&self, wall_ns: i64) -> bool {
        let since = wall_ns.saturating_sub(self.start_wall_ns);
        since >= 0 && self.phase_ns(since)
    }

    fn phase_ns(&self, since_ns: i64) -> bool {
        let period = self.burst.period.as_nanos() as i64;
        period > 0 && since_ns.rem_euclid(period) < self.burst.length.as_nanos() as i64
    }

    /// The L2 rate multiplier at `t`: `factor` inside a burst, else 1.
    pub fn l2_factor(&self, t: Instant) -> f64 {
        if self.in_burst(t) {
            self.burst.factor
        } else {
            1.0
        }
    }
}

/// Frames due later than this after their scheduled time count as behind schedule.
pub const LAG_LIMIT: Duration = Duration::from_millis(5);

/// A backlog older than this is dropped (counted as skipped) instead of sent in a rush.
pub const MAX_BACKLOG: Duration = Duration::from_millis(250);

/// Poisson arrivals of one class in one session: exponential gaps at the current rate.
#[derive(Debug, Default, Clone)]
pub struct Arrivals {
    next_due: Option<Instant>,
}

/// What [`Arrivals::take`] decided.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Due {
    /// A frame is due now.
    pub send: bool,
    /// It was due more than [`LAG_LIMIT`] ago.
    pub behind: bool,
}

impl Arrivals {
    /// The next arrival, if one is scheduled.
    pub fn next_due(&self) -> Option<Instant> {
        self.next_due
    }

    /// Whether a frame of this class is due at `now` with `rate_per_s` (0 stops the clock).
    /// Each call that returns `send` consumes one arrival. A backlog beyond [`MAX_BACKLOG`] is
    /// dropped: returns how many arrivals that skipped, in `skipped`.
    pub fn take(&mut self, now: Instant, rate_per_s: f64, rng: &mut Rng, skipped: &mut u64) -> Due {
        if rate_per_s <= 0.0 || !rate_per_s.is_finite() {
            self.next_due = None;
            return Due::default();
        }
        let gap = |rng: &mut Rng| Duration::from_secs_f64(rng.exp() / rate_per_s);
        let due = match self.next_due {
            Some(d) => d,
            None => {
                self.next_due = Some(now + gap(rng));
                return Due::default();
            }
        };
        if due > now {
            return Due::default();
        }
        let late = now - due;
        if late > MAX_BACKLOG {
            *skipped += (late.as_secs_f64() * rate_per_s) as u64;
            self.next_due = Some(now + gap(rng));
            return Due::default();
        }
        self.next_due = Some(due + gap(rng));
        Due {
            send: true,
            behind: late > LAG_LIMIT,
        }
    }
}

/// The rate of each class for one session: `total_per_s` split by [`MIX_PERCENT`] over the
/// classes any session subscribed (`global` topics per class), times the burst factor for L2,
/// times this session's share of each class's topics (`mine`).
pub fn class_rates(total_per_s: f64, l2_factor: f64, global: [u64; 4], mine: [u64; 4]) -> [f64; 4] {
    let live: u32 = Class::ALL
        .iter()
        .filter(|c| global[**c as usize] > 0)
        .map(|c| MIX_PERCENT[*c as usize])
        .sum();
    let mut out = [0.0; 4];
    if live == 0 {
        return out;
    }
    for c in Class::ALL {
        let i = c as usize;
        if global[i] == 0 || mine[i] == 0 {
            continue;
        }
        let share = f64::from(MIX_PERCENT[i]) / f64::from(live);
        let burst = if c == Class::L2 { l2_factor } else { 1.0 };
        out[i] = total_per_s * share * burst * mine[i] as f64 / global[i] as f64;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_specs() {
        let b: Burst = "10x:1s/10s".parse().unwrap();
        assert_eq!(b.factor, 10.0);
        assert_eq!(b.length, Duration::from_secs(1));
        assert_eq!(b.period, Duration::from_secs(10));
        let b: Burst = "2.5x:250ms/1s".parse().unwrap();
        assert_eq!(b.factor, 2.5);
        assert_eq!(b.length, Duration::from_millis(250));
        assert_eq!(b.period, Duration::from_secs(1));
        assert_eq!("1x:1ms/2ms".parse::<Burst>().unwrap().factor, 1.0);
        for (bad, err) in [
            ("", BurstError::Shape),
            ("10x", BurstError::Shape),
            ("10x:1s", BurstError::Shape),
            ("10:1s/10s", BurstError::Factor("10".into())),
            ("0.5x:1s/10s", BurstError::Factor("0.5x".into())),
            ("NaNx:1s/10s", BurstError::Factor("NaNx".into())),
            ("infx:1s/10s", BurstError::Factor("infx".into())),
            ("10x:1m/10s", BurstError::Duration("1m".into())),
            ("10x:0s/10s", BurstError::Duration("0s".into())),
            ("10x:-1s/10s", BurstError::Duration("-1s".into())),
            ("10x:1s/ten s", BurstError::Duration("ten s".into())),
            ("10x:10s/10s", BurstError::TooLong),
            ("10x:2s/1000ms", BurstError::TooLong),
        ] {
            assert_eq!(bad.parse::<Burst>(), Err(err), "{bad}");
        }
    }

    #[test]
    fn schedule_arithmetic() {
        let start = Instant::now();
        let s = BurstSchedule {
            burst: "10x:1s/10s".parse().unwrap(),
            start,
            start_wall_ns: 1_000_000_000_000,
        };
        let at = |ms: u64| start + Duration::from_millis(ms);
        assert!(s.in_burst(at(0)));
        assert!(s.in_burst(at(999)));
        assert!(!s.in_burst(at(1000)));
        assert!(!s.in_burst(at(9999)));
        assert!(s.in_burst(at(10_000)));
        assert!(s.in_burst(at(20_500)));
        assert!(!s.in_burst(at(21_000)));
        assert_eq!(s.l2_factor(at(500)), 10.0);
        assert_eq!(s.l2_factor(at(5000)), 1.0);
        let w = |ms: i64| s.start_wall_ns + ms * 1_000_000;
        assert!(s.in_burst_wall_ns(w(10_999)));
        assert!(!s.in_burst_wall_ns(w(11_000)));
        assert!(!s.in_burst_wall_ns(w(-1)));
    }

    #[test]
    fn rates_follow_the_mix() {
        let all = [1, 1, 1, 1];
        let r = class_rates(10_000.0, 1.0, all, all);
        assert_eq!(r, [7000.0, 2000.0, 800.0, 200.0]);
        // a burst multiplies the L2 share only
        let r = class_rates(10_000.0, 10.0, all, all);
        assert_eq!(r, [70_000.0, 2000.0, 800.0, 200.0]);
        // classes nobody subscribed are left out: trades alone get the whole rate
        let r = class_rates(1000.0, 1.0, [0, 2, 0, 0], [0, 1, 0, 0]);
        assert_eq!(r, [0.0, 500.0, 0.0, 0.0]);
        assert_eq!(class_rates(1000.0, 1.0, [0; 4], [0; 4]), [0.0; 4]);
    }

    #[test]
    fn arrivals_average_the_rate_and_count_lag() {
        let mut rng = Rng::new(7);
        let mut a = Arrivals::default();
        let start = Instant::now();
        let mut skipped = 0;
        let mut sent = 0;
        // 1 ms ticks over 2 s at 5000/s: about 10,000 arrivals, none behind
        for ms in 0..2000u64 {
            let now = start + Duration::from_millis(ms);
            loop {
                let due = a.take(now, 5000.0, &mut rng, &mut skipped);
                if !due.send {
                    break;
                }
                assert!(!due.behind);
                sent += 1;
            }
        }
        assert!((9000..11_000).contains(&sent), "{sent}");
        assert_eq!(skipped, 0);
        // a 100 ms stall: the next frames are behind; a 1 s stall is skipped
        let now = start + Duration::from_millis(2100);
        assert!(a.take(now, 5000.0, &mut rng, &mut skipped).behind);
        let now = start + Duration::from_millis(3200);
        assert!(!a.take(now, 5000.0, &mut rng, &mut skipped).send);
        assert!(skipped > 4000, "{skipped}");
        // rate 0 stops the clock
        assert!(!a.take(now, 0.0, &mut rng, &mut skipped).send);
        assert_eq!(a.next_due(), None);
    }
}

//! The market model behind synthetic flow: one instrument's L2 book on an integer tick
//! ladder (prices in ticks, sizes in lots), its chain counters, and the derivative state
//! (open interest, funding, index). Deterministic for a given seed.
//!
//! Dynamics, per L2 delta (1 to 3 level changes): the touch improves inside the spread or
//! retreats (the best level is pulled), levels near the touch are resized, inserted or deleted;
//! the depth index of a change is geometric from the touch (60 % chance of going one level
//! deeper), so churn concentrates at the touch and the mid follows a random walk. Each side
//! keeps [`MIN_LEVELS`]..=[`MAX_LEVELS`] levels; the book is never crossed or locked.

use crate::model::{Exchange, write_scaled};

/// Fewest levels a side keeps.
pub const MIN_LEVELS: usize = 20;
/// Most levels a side keeps.
pub const MAX_LEVELS: usize = 60;
/// Levels per side of a fresh book.
const START_LEVELS: usize = 40;
/// The spread, in ticks, beyond which the touch is always improved.
const MAX_SPREAD_TICKS: i64 = 20;

/// A small, fast, seedable generator (SplitMix64). Not for cryptography.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// A generator seeded with `seed`.
    pub fn new(seed: u64) -> Rng {
        Rng(seed ^ 0x9E37_79B9_7F4A_7C15)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next_u64() % n }
    }

    /// Uniform in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Exponential with mean 1.
    pub fn exp(&mut self) -> f64 {
        -(1.0 - self.unit()).ln()
    }

    /// True with probability `percent` / 100.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

/// A synthetic instrument: its venue-native name and how the venue writes its numbers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InstrumentSpec {
    /// Client-facing exchange id.
    pub exchange: Exchange,
    /// Venue-native symbol as the venue writes it (Binance streams use it lower-cased).
    pub symbol: &'static str,
    /// Price of the first mid, in ticks.
    pub start_ticks: i64,
    /// One tick as a mantissa at `price_decimals` (0.10 at 2 decimals is 10).
    pub tick: i64,
    /// Decimals the venue writes prices with.
    pub price_decimals: u8,
    /// One lot as a mantissa at `qty_decimals`.
    pub lot: i64,
    /// Decimals the venue writes sizes with.
    pub qty_decimals: u8,
    /// Largest level size, lots.
    pub max_level_lots: i64,
    /// A derivative (tickers with open interest, funding, liquidations).
    pub derivative: bool,
}

impl InstrumentSpec {
    /// Writes the price of `ticks` as the venue does (fixed decimals).
    pub fn write_price(&self, out: &mut Vec<u8>, ticks: i64) {
        write_scaled(out, ticks * self.tick, self.price_decimals, false);
    }

    /// Writes the size of `lots` as the venue does (fixed decimals).
    pub fn write_qty(&self, out: &mut Vec<u8>, lots: i64) {
        write_scaled(out, lots * self.lot, self.qty_decimals, false);
    }

    /// Writes `[["price","size"<tail>,...]` for `(ticks, lots)` levels: each level is an
    /// array of quoted price and size, closed by `tail` (`"]` for Binance and Bybit,
    /// `","0","1"]` for OKX's four-element levels).
    pub fn write_levels(
        &self,
        out: &mut Vec<u8>,
        levels: impl Iterator<Item = (i64, i64)>,
        tail: &[u8],
    ) {
        out.push(b'[');
        for (n, (ticks, lots)) in levels.enumerate() {
            if n > 0 {
                out.push(b',');
            }
            out.extend_from_slice(b"[\"");
            self.write_price(out, ticks);
            out.extend_from_slice(b"\",\"");
            self.write_qty(out, lots);
            out.extend_from_slice(tail);
        }
        out.push(b']');
    }
}

/// Bid or ask.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum BookSide {
    /// Bids, best (highest) first.
    Bid,
    /// Asks, best (lowest) first.
    Ask,
}

/// What a level change did, as Deribit names it.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// A level that was not in the book.
    New,
    /// A new size for a level in the book.
    Change,
    /// A level removed (size 0).
    Delete,
}

/// One level change of a delta.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Change {
    /// The side.
    pub side: BookSide,
    /// Price, ticks.
    pub ticks: i64,
    /// New size, lots (0 for a delete).
    pub lots: i64,
    /// What happened to the level.
    pub action: Action,
}

/// One instrument's synthetic market.
#[derive(Clone, Debug)]
pub struct Market {
    /// The instrument.
    pub spec: InstrumentSpec,
    rng: Rng,
    /// `(ticks, lots)`, best first (descending prices).
    pub bids: Vec<(i64, i64)>,
    /// `(ticks, lots)`, best first (ascending prices).
    pub asks: Vec<(i64, i64)>,
    /// The changes of the last [`Market::step`], in order.
    pub changes: Vec<Change>,
    /// The venue's book chain counter: advanced by the frame writers (Binance `u`, Bybit `u`,
    /// OKX `seqId`, Deribit `change_id`).
    pub update_id: u64,
    /// Bybit's cross sequence `seq`.
    pub cross_seq: u64,
    /// Open interest, lots.
    pub open_interest_lots: i64,
    /// Funding rate, 1e-8 units.
    pub funding_e8: i64,
    /// Index minus mid, ticks.
    pub index_offset_ticks: i64,
}

impl Market {
    /// A fresh book around `spec.start_ticks`, seeded with `seed`.
    pub fn new(spec: InstrumentSpec, seed: u64) -> Market {
        let mut rng = Rng::new(seed);
        let mid = spec.start_ticks;
        let mut bids = Vec::with_capacity(MAX_LEVELS + 4);
        let mut asks = Vec::with_capacity(MAX_LEVELS + 4);
        let (mut b, mut a) = (mid - 1, mid + 1);
        for _ in 0..START_LEVELS {
            bids.push((b, 1 + rng.below(spec.max_level_lots as u64) as i64));
            asks.push((a, 1 + rng.below(spec.max_level_lots as u64) as i64));
            b -= 1 + rng.below(3) as i64;
            a += 1 + rng.below(3) as i64;
        }
        Market {
            spec,
            rng,
            bids,
            asks,
            changes: Vec::with_capacity(16),
            update_id: 1_000_000 + (seed % 1000) * 1000,
            cross_seq: 50_000_000,
            open_interest_lots: 1_000_000,
            funding_e8: 10_000,
            index_offset_ticks: 0,
        }
    }

    /// The generator (for choices the frame writers make).
    pub fn rng(&mut self) -> &mut Rng {
        &mut self.rng
    }

    /// Best bid `(ticks, lots)`.
    pub fn best_bid(&self) -> (i64, i64) {
        self.bids[0]
    }

    /// Best ask `(ticks, lots)`.
    pub fn best_ask(&self) -> (i64, i64) {
        self.asks[0]
    }

    /// Mid price, ticks (rounded down).
    pub fn mid_ticks(&self) -> i64 {
        (self.bids[0].0 + self.asks[0].0) / 2
    }

    /// One L2 delta: 1 to 3 level changes near the touch (into [`Market::changes`]), then
    /// depth kept within bounds.
    pub fn step(&mut self) {
        self.changes.clear();
        let n = 1 + self.rng.below(3);
        for _ in 0..n {
            self.one_change();
        }
        for side in [BookSide::Bid, BookSide::Ask] {
            while self.side(side).len() > MAX_LEVELS {
                let (ticks, _) = self.side_mut(side).pop().expect("non-empty");
                self.push(side, ticks, 0, Action::Delete);
            }
            while self.side(side).len() < MIN_LEVELS {
                let last = self.side(side).last().expect("non-empty").0;
                let gap = 1 + self.rng.below(3) as i64;
                let ticks = match side {
                    BookSide::Bid => last - gap,
                    BookSide::Ask => last + gap,
                };
                let lots = self.lots();
                self.side_mut(side).push((ticks, lots));
                self.push(side, ticks, lots, Action::New);
            }
        }
    }

    /// Advances open interest, funding and index by a small random step.
    pub fn step_ticker(&mut self) {
        let oi = self.rng.below(2001) as i64 - 1000;
        self.open_interest_lots = (self.open_interest_lots + oi).max(1000);
        let f = self.rng.below(21) as i64 - 10;
        self.funding_e8 = (self.funding_e8 + f).clamp(-75_000, 75_000);
        let i = self.rng.below(3) as i64 - 1;
        self.index_offset_ticks = (self.index_offset_ticks + i).clamp(-10, 10);
    }

    fn lots(&mut self) -> i64 {
        1 + self.rng.below(self.spec.max_level_lots as u64) as i64
    }

    fn side(&self, side: BookSide) -> &Vec<(i64, i64)> {
        match side {
            BookSide::Bid => &self.bids,
            BookSide::Ask => &self.asks,
        }
    }

    fn side_mut(&mut self, side: BookSide) -> &mut Vec<(i64, i64)> {
        match side {
            BookSide::Bid => &mut self.bids,
            BookSide::Ask => &mut self.asks,
        }
    }

    fn push(&mut self, side: BookSide, ticks: i64, lots: i64, action: Action) {
        self.changes.push(Change {
            side,
            ticks,
            lots,
            action,
        });
    }

    /// A depth index near the touch: geometric, 60 % chance of each further level.
    fn depth_index(&mut self, len: usize) -> usize {
        let mut d = 0;
        while d + 1 < len && self.rng.chance(60) {
            d += 1;
        }
        d
    }

    fn one_change(&mut self) {
        let side = if self.rng.chance(50) {
            BookSide::Bid
        } else {
            BookSide::Ask
        };
        let spread = self.asks[0].0 - self.bids[0].0;
        let roll = if spread > MAX_SPREAD_TICKS {
            0
        } else {
            self.rng.below(100)
        };
        let len = self.side(side).len();
        if roll < 12 && spread >= 2 {
            // the touch improves inside the spread
            let inside = 1 + self.rng.below(spread as u64 - 1) as i64;
            let ticks = match side {
                BookSide::Bid => self.bids[0].0 + inside,
                BookSide::Ask => self.asks[0].0 - inside,
            };
            let lots = self.lots();
            self.side_mut(side).insert(0, (ticks, lots));
            self.push(side, ticks, lots, Action::New);
        } else if roll < 24 && len > MIN_LEVELS {
            // the touch retreats
            let (ticks, _) = self.side_mut(side).remove(0);
            self.push(side, ticks, 0, Action::Delete);
        } else if roll < 40 {
            // a level appears behind level d, where there is room
            let d = self.depth_index(len);
            let levels = self.side(side);
            let here = levels[d].0;
            let next = levels.get(d + 1).map(|l| l.0);
            let gap = next.map_or(4, |n| (here - n).abs());
            if gap < 2 {
                return self.resize(side, len);
            }
            let back = 1 + self.rng.below(gap as u64 - 1) as i64;
            let ticks = match side {
                BookSide::Bid => here - back,
                BookSide::Ask => here + back,
            };
            let lots = self.lots();
            self.side_mut(side).insert(d + 1, (ticks, lots));
            self.push(side, ticks, lots, Action::New);
        } else if roll < 50 && len > MIN_LEVELS {
            // a level behind the touch is pulled
            let d = 1 + self.depth_index(len - 1);
            let (ticks, _) = self.side_mut(side).remove(d.min(len - 1));
            self.push(side, ticks, 0, Action::Delete);
        } else {
            self.resize(side, len);
        }
    }

    fn resize(&mut self, side: BookSide, len: usize) {
        let d = self.depth_index(len);
        let lots = self.lots();
        let level = &mut self.side_mut(side)[d];
        level.1 = lots;
        let ticks = level.0;
        self.push(side, ticks, lots, Action::Change);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn spec() -> InstrumentSpec {
        InstrumentSpec {
            exchange: Exchange::BinanceFutures,
            symbol: "BTCUSDT",
            start_ticks: 600_000,
            tick: 10,
            price_decimals: 2,
            lot: 1,
            qty_decimals: 3,
            max_level_lots: 5000,
            derivative: true,
        }
    }

    #[test]
    fn books_stay_sorted_uncrossed_and_bounded() {
        let mut m = Market::new(spec(), 42);
        let mut mids = Vec::new();
        for _ in 0..20_000 {
            m.step();
            assert!(!m.changes.is_empty());
            assert!(m.bids.windows(2).all(|w| w[0].0 > w[1].0));
            assert!(m.asks.windows(2).all(|w| w[0].0 < w[1].0));
            assert!(m.bids[0].0 < m.asks[0].0, "crossed");
            assert!((MIN_LEVELS..=MAX_LEVELS).contains(&m.bids.len()));
            assert!((MIN_LEVELS..=MAX_LEVELS).contains(&m.asks.len()));
            assert!(m.bids.iter().chain(&m.asks).all(|l| l.1 > 0));
            mids.push(m.mid_ticks());
        }
        // the mid walks
        let (lo, hi) = (mids.iter().min().unwrap(), mids.iter().max().unwrap());
        assert!(hi - lo > 5, "{lo}..{hi}");
    }

    #[test]
    fn changes_replayed_on_a_copy_give_the_book() {
        let mut m = Market::new(spec(), 3);
        let mut copy: std::collections::BTreeMap<(bool, i64), i64> = m
            .bids
            .iter()
            .map(|l| ((true, l.0), l.1))
            .chain(m.asks.iter().map(|l| ((false, l.0), l.1)))
            .collect();
        let mut near_touch = 0;
        let mut total = 0;
        for _ in 0..5000 {
            let (bb, ba) = (m.bids[0].0, m.asks[0].0);
            m.step();
            for c in &m.changes {
                let key = (c.side == BookSide::Bid, c.ticks);
                match c.action {
                    Action::Delete => assert!(copy.remove(&key).is_some(), "{c:?}"),
                    Action::New => assert!(copy.insert(key, c.lots).is_none(), "{c:?}"),
                    Action::Change => assert!(copy.insert(key, c.lots).is_some(), "{c:?}"),
                }
                total += 1;
                if (c.ticks - if key.0 { bb } else { ba }).abs() <= 3 {
                    near_touch += 1;
                }
            }
        }
        let rebuilt: Vec<(i64, i64)> = copy
            .iter()
            .filter(|(k, _)| k.0)
            .rev()
            .map(|(k, v)| (k.1, *v))
            .collect();
        assert_eq!(rebuilt, m.bids);
        // churn concentrates near the touch
        assert!(near_touch * 2 > total, "{near_touch} of {total}");
    }

    #[test]
    fn same_seed_same_market() {
        let (mut a, mut b) = (Market::new(spec(), 9), Market::new(spec(), 9));
        for _ in 0..100 {
            a.step();
            b.step();
        }
        assert_eq!(a.bids, b.bids);
        assert_eq!(a.changes, b.changes);
        let mut c = Market::new(spec(), 10);
        c.step();
        assert_ne!(a.bids, c.bids);
    }

    #[test]
    fn numbers_as_the_venue_writes_them() {
        let s = spec();
        let mut out = Vec::new();
        s.write_price(&mut out, 600_001);
        out.push(b' ');
        s.write_qty(&mut out, 5);
        assert_eq!(out, b"60000.10 0.005");
    }
}

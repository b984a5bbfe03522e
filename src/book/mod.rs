//! Order books: fixed-point L2 books, top of book and bid/ask imbalance, and the engine that
//! keeps every book in sync with its venue's sequence chain.
//!
//! A book knows prices and levels, not any venue's wire format: sync rules and checksums come
//! in as plain functions from `venue/`.

mod engine;

pub use engine::{
    BookEngine, BookStats, DEFAULT_MAX_LEVELS_PER_SIDE, Disposition, PackedTickerState,
    ResyncReason, SyncState, TickerState,
};

use crate::model::{BookSide, Decimal, MAX_DECIMALS, pow10};

/// One price level: price and size as integers at the book's scales, plus the number of
/// fraction digits the venue wrote, so the exact text can be rebuilt.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct PriceLevel {
    /// Price in units of `10^-price_scale`.
    pub price: i64,
    /// Size in units of `10^-qty_scale`; always positive in a book.
    pub qty: i64,
    /// Fraction digits of the price as sent.
    pub price_decimals: u8,
    /// Fraction digits of the size as sent.
    pub qty_decimals: u8,
}

/// Why a level could not be applied. The book is left unchanged and must resync.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum BookError {
    /// A price or size does not fit the fixed-point range (after widening the scale).
    Overflow,
    /// A negative price or size.
    Negative,
}

/// Levels of one side, sorted so that the best level is **last** (bids ascending, asks
/// descending): updates near the touch, the common case, move the fewest bytes.
#[derive(Clone, Debug, Default)]
struct Ladder {
    levels: Vec<PriceLevel>,
}

impl Ladder {
    /// Position of `price`, or where it would be inserted. Most updates land near the touch,
    /// which is the end of the vector: probe the last few levels before a binary search.
    #[inline]
    fn find(&self, price: i64, side: BookSide) -> Result<usize, usize> {
        const PROBE: usize = 8;
        let n = self.levels.len();
        // `better(a, b)`: price a is closer to the touch than b
        let better = |a: i64, b: i64| match side {
            BookSide::Bid => a > b,
            BookSide::Ask => a < b,
        };
        let mut i = n;
        while i > 0 && n - i < PROBE {
            let level = self.levels[i - 1].price;
            if level == price {
                return Ok(i - 1);
            }
            if better(price, level) {
                // price sits between levels[i - 1] and levels[i]
                return Err(i);
            }
            i -= 1;
        }
        if i == 0 {
            return Err(0);
        }
        match side {
            BookSide::Bid => self.levels[..i].binary_search_by(|l| l.price.cmp(&price)),
            BookSide::Ask => self.levels[..i].binary_search_by(|l| price.cmp(&l.price)),
        }
    }
}

/// Capacity reserved per side at creation; a deeper book grows once (cold).
pub const DEFAULT_LEVELS_PER_SIDE: usize = 1024;

/// An L2 order book with fixed-point prices and sizes.
///
/// Scales start at 0 decimals and widen (rescaling stored levels, a cold path) the first time a
/// value needs more digits, so no value is ever rounded. Applying a level does not allocate
/// while a side holds at most its reserved capacity.
#[derive(Clone, Debug)]
pub struct Book {
    price_scale: u8,
    qty_scale: u8,
    bids: Ladder,
    asks: Ladder,
    /// Between [`Book::begin_snapshot`] and [`Book::end_snapshot`]: levels are appended
    /// unsorted and sorted once at the end.
    loading: bool,
}

impl Default for Book {
    fn default() -> Self {
        Book::with_capacity(DEFAULT_LEVELS_PER_SIDE)
    }
}

impl Book {
    /// An empty book with room for `levels_per_side` levels on each side.
    pub fn with_capacity(levels_per_side: usize) -> Book {
        Book {
            price_scale: 0,
            qty_scale: 0,
            bids: Ladder {
                levels: Vec::with_capacity(levels_per_side),
            },
            asks: Ladder {
                levels: Vec::with_capacity(levels_per_side),
            },
            loading: false,
        }
    }

    /// Removes every level and ends any snapshot load; keeps scales and capacity.
    pub fn clear(&mut self) {
        self.bids.levels.clear();
        self.asks.levels.clear();
        self.loading = false;
    }

    /// Clears the book and starts loading a snapshot: levels given to [`Book::apply`] until
    /// [`Book::end_snapshot`] are appended and sorted once, so a 1,000-level snapshot costs
    /// O(n log n) (O(n) for the usual best-first order) instead of O(n²) insertions. The book
    /// must not be read while loading.
    pub fn begin_snapshot(&mut self) {
        self.clear();
        self.loading = true;
    }

    /// Ends a snapshot load: sorts each side; when a price repeats, its last size wins.
    pub fn end_snapshot(&mut self) {
        if !self.loading {
            return;
        }
        self.loading = false;
        // stable sorts keep arrival order among equal prices, so the last one can win
        self.bids.levels.sort_by_key(|l| l.price);
        self.asks.levels.sort_by_key(|l| std::cmp::Reverse(l.price));
        for ladder in [&mut self.bids, &mut self.asks] {
            ladder.levels.dedup_by(|later, kept| {
                if later.price == kept.price {
                    *kept = *later;
                    true
                } else {
                    false
                }
            });
        }
    }

    /// Fraction digits of stored prices.
    pub fn price_scale(&self) -> u8 {
        self.price_scale
    }

    /// Fraction digits of stored sizes.
    pub fn qty_scale(&self) -> u8 {
        self.qty_scale
    }

    /// Number of levels on `side`.
    pub fn depth(&self, side: BookSide) -> usize {
        self.ladder(side).levels.len()
    }

    fn ladder(&self, side: BookSide) -> &Ladder {
        match side {
            BookSide::Bid => &self.bids,
            BookSide::Ask => &self.asks,
        }
    }

    /// Sets the size at `price` on `side` (absolute); a zero size deletes the level. Deleting a
    /// level the book does not hold is a no-op (Binance and OKX do send such deletes).
    ///
    /// # Errors
    /// [`BookError::Overflow`] when a value does not fit `i64` at the needed scale,
    /// [`BookError::Negative`] for a negative value. The book is unchanged.
    #[inline]
    pub fn apply(&mut self, side: BookSide, price: Decimal, qty: Decimal) -> Result<(), BookError> {
        if price.mantissa < 0 || qty.mantissa < 0 {
            return Err(BookError::Negative);
        }
        // fast path: the value is written with the book's scale, as nearly all are
        let p = if price.decimals == self.price_scale {
            price.mantissa
        } else {
            self.scale_price(price)?
        };
        let q = if qty.decimals == self.qty_scale {
            qty.mantissa
        } else {
            self.scale_qty(qty)?
        };
        let ladder = match side {
            BookSide::Bid => &mut self.bids,
            BookSide::Ask => &mut self.asks,
        };
        if self.loading {
            // a zero size in a snapshot is an empty level: nothing to hold
            if q != 0 {
                ladder.levels.push(PriceLevel {
                    price: p,
                    qty: q,
                    price_decimals: price.decimals,
                    qty_decimals: qty.decimals,
                });
            }
            return Ok(());
        }
        match ladder.find(p, side) {
            Ok(i) => {
                if q == 0 {
                    ladder.levels.remove(i);
                } else {
                    let l = &mut ladder.levels[i];
                    l.qty = q;
                    l.qty_decimals = qty.decimals;
                }
            }
            Err(i) => {
                if q != 0 {
                    ladder.levels.insert(
                        i,
                        PriceLevel {
                            price: p,
                            qty: q,
                            price_decimals: price.decimals,
                            qty_decimals: qty.decimals,
                        },
                    );
                }
            }
        }
        Ok(())
    }

    /// A price written with another number of decimals than the book's scale: widen the
    /// scale to the written one when the stored levels allow it (so later values take the
    /// fast path), else convert exactly, widening only as far as the digits need.
    #[cold]
    fn scale_price(&mut self, price: Decimal) -> Result<i64, BookError> {
        if price.decimals > self.price_scale && self.widen_price_scale(price.decimals).is_ok() {
            return Ok(price.mantissa);
        }
        loop {
            match price.to_scaled(self.price_scale) {
                Ok(p) => return Ok(p),
                Err(u8::MAX) => return Err(BookError::Overflow),
                Err(needed) => self.widen_price_scale(needed)?,
            }
        }
    }

    /// As [`Book::scale_price`], for sizes.
    #[cold]
    fn scale_qty(&mut self, qty: Decimal) -> Result<i64, BookError> {
        if qty.decimals > self.qty_scale && self.widen_qty_scale(qty.decimals).is_ok() {
            return Ok(qty.mantissa);
        }
        loop {
            match qty.to_scaled(self.qty_scale) {
                Ok(q) => return Ok(q),
                Err(u8::MAX) => return Err(BookError::Overflow),
                Err(needed) => self.widen_qty_scale(needed)?,
            }
        }
    }

    #[cold]
    fn widen_price_scale(&mut self, needed: u8) -> Result<(), BookError> {
        if needed > MAX_DECIMALS {
            return Err(BookError::Overflow);
        }
        let mul = pow10(needed - self.price_scale);
        for l in self.bids.levels.iter().chain(self.asks.levels.iter()) {
            l.price.checked_mul(mul).ok_or(BookError::Overflow)?;
        }
        for l in self
            .bids
            .levels
            .iter_mut()
            .chain(self.asks.levels.iter_mut())
        {
            l.price *= mul;
        }
        self.price_scale = needed;
        Ok(())
    }

    #[cold]
    fn widen_qty_scale(&mut self, needed: u8) -> Result<(), BookError> {
        if needed > MAX_DECIMALS {
            return Err(BookError::Overflow);
        }
        let mul = pow10(needed - self.qty_scale);
        for l in self.bids.levels.iter().chain(self.asks.levels.iter()) {
            l.qty.checked_mul(mul).ok_or(BookError::Overflow)?;
        }
        for l in self
            .bids
            .levels
            .iter_mut()
            .chain(self.asks.levels.iter_mut())
        {
            l.qty *= mul;
        }
        self.qty_scale = needed;
        Ok(())
    }

    /// Levels of `side`, best first, as stored.
    pub fn levels(&self, side: BookSide) -> impl Iterator<Item = &PriceLevel> {
        self.ladder(side).levels.iter().rev()
    }

    /// Levels of `side`, best first, as exact decimals `(price, size)` written as the venue
    /// wrote them.
    pub fn decimal_levels(&self, side: BookSide) -> impl Iterator<Item = (Decimal, Decimal)> + '_ {
        let (ps, qs) = (self.price_scale, self.qty_scale);
        self.levels(side).map(move |l| {
            (
                to_decimal(l.price, ps, l.price_decimals),
                to_decimal(l.qty, qs, l.qty_decimals),
            )
        })
    }

    /// Best level of `side` as exact decimals.
    pub fn best(&self, side: BookSide) -> Option<(Decimal, Decimal)> {
        self.decimal_levels(side).next()
    }

    /// Best bid `(price, size)`.
    pub fn best_bid(&self) -> Option<(Decimal, Decimal)> {
        self.best(BookSide::Bid)
    }

    /// Best ask `(price, size)`.
    pub fn best_ask(&self) -> Option<(Decimal, Decimal)> {
        self.best(BookSide::Ask)
    }

    /// Bid share of the top `n` levels of each side, in percent:
    /// `100 * Σ bid size / (Σ bid size + Σ ask size)`. A side with fewer levels uses those it
    /// has; `None` when both sides are empty (or all sizes are zero).
    pub fn imbalance(&self, n: usize) -> Option<f64> {
        let bid: i128 = self
            .levels(BookSide::Bid)
            .take(n)
            .map(|l| i128::from(l.qty))
            .sum();
        let ask: i128 = self
            .levels(BookSide::Ask)
            .take(n)
            .map(|l| i128::from(l.qty))
            .sum();
        let total = bid + ask;
        if total == 0 {
            None
        } else {
            Some(100.0 * bid as f64 / total as f64)
        }
    }

    /// Copies up to `out.len()` best levels of `side` into `out` as exact decimals; returns how
    /// many. No allocation (used for checksums).
    pub fn top_into(&self, side: BookSide, out: &mut [(Decimal, Decimal)]) -> usize {
        let mut n = 0;
        for (slot, level) in out.iter_mut().zip(self.decimal_levels(side)) {
            *slot = level;
            n += 1;
        }
        n
    }
}

/// Rebuilds the exact decimal of a stored value: `value` at `scale`, written with `decimals`
/// fraction digits.
#[inline]
pub(crate) fn to_decimal(value: i64, scale: u8, decimals: u8) -> Decimal {
    if decimals >= scale {
        Decimal::new(value * pow10(decimals - scale), decimals)
    } else {
        Decimal::new(value / pow10(scale - decimals), decimals)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> Decimal {
        Decimal::parse(s.as_bytes()).unwrap()
    }

    #[test]
    fn keeps_sorted_sides_and_exact_text() {
        let mut b = Book::default();
        b.apply(BookSide::Bid, d("100.5"), d("1.000")).unwrap();
        b.apply(BookSide::Bid, d("101.25"), d("2")).unwrap();
        b.apply(BookSide::Bid, d("99"), d("3")).unwrap();
        b.apply(BookSide::Ask, d("102.0"), d("0.5")).unwrap();
        b.apply(BookSide::Ask, d("103"), d("1")).unwrap();
        assert_eq!(b.best_bid(), Some((d("101.25"), d("2"))));
        assert_eq!(b.best_ask(), Some((d("102.0"), d("0.5"))));
        let bids: Vec<_> = b
            .decimal_levels(BookSide::Bid)
            .map(|(p, _)| p.to_string())
            .collect();
        assert_eq!(bids, ["101.25", "100.5", "99"]);
        let qty: Vec<_> = b
            .decimal_levels(BookSide::Bid)
            .map(|(_, q)| q.to_string())
            .collect();
        assert_eq!(qty, ["2", "1.000", "3"]);
        assert_eq!(b.price_scale(), 2);
    }

    #[test]
    fn snapshot_load_sorts_once_and_last_size_wins() {
        let mut a = Book::default();
        let mut b = Book::default();
        b.apply(BookSide::Bid, d("1"), d("1")).unwrap();
        b.begin_snapshot();
        let levels = [
            (BookSide::Bid, "100", "1"),
            (BookSide::Bid, "99.5", "2"),
            (BookSide::Ask, "101", "3"),
            (BookSide::Bid, "100.25", "4"),
            (BookSide::Ask, "100.5", "0"),
            (BookSide::Ask, "101", "5"),
            (BookSide::Ask, "102", "6"),
        ];
        for (side, p, q) in levels {
            a.apply(side, d(p), d(q)).unwrap();
            b.apply(side, d(p), d(q)).unwrap();
        }
        b.end_snapshot();
        for side in [BookSide::Bid, BookSide::Ask] {
            let x: Vec<_> = a.decimal_levels(side).collect();
            let y: Vec<_> = b.decimal_levels(side).collect();
            assert_eq!(x, y);
        }
        assert_eq!(b.best_ask(), Some((d("101"), d("5"))));
        assert_eq!(b.best_bid(), Some((d("100.25"), d("4"))));
    }

    proptest::proptest! {
        /// Any sequence of updates leaves the same levels as a `BTreeMap` model, best first,
        /// whatever the decimal formats.
        #[test]
        fn matches_a_map_model(ops in proptest::collection::vec((proptest::bool::ANY, 0i64..60, 0u8..3, 0i64..4, 0u8..3), 1..300)) {
            let mut book = Book::default();
            let mut bids = std::collections::BTreeMap::new();
            let mut asks = std::collections::BTreeMap::new();
            for (is_bid, price, pd, qty, qd) in ops {
                // the same value written with 0..2 extra trailing zeros
                let p = Decimal::new(price * pow10(pd), pd);
                let q = Decimal::new(qty * pow10(qd), qd);
                let (side, map) = if is_bid { (BookSide::Bid, &mut bids) } else { (BookSide::Ask, &mut asks) };
                book.apply(side, p, q).unwrap();
                if qty == 0 { map.remove(&price); } else { map.insert(price, qty); }
            }
            let got: Vec<(i64, i64)> = book.decimal_levels(BookSide::Bid).map(|(p, q)| (p.mantissa / pow10(p.decimals), q.mantissa / pow10(q.decimals))).collect();
            let want: Vec<(i64, i64)> = bids.iter().rev().map(|(p, q)| (*p, *q)).collect();
            proptest::prop_assert_eq!(got, want);
            let got: Vec<(i64, i64)> = book.decimal_levels(BookSide::Ask).map(|(p, q)| (p.mantissa / pow10(p.decimals), q.mantissa / pow10(q.decimals))).collect();
            let want: Vec<(i64, i64)> = asks.iter().map(|(p, q)| (*p, *q)).collect();
            proptest::prop_assert_eq!(got, want);
        }
    }

    #[test]
    fn deletes_and_ignores_unknown_deletes() {
        let mut b = Book::default();
        b.apply(BookSide::Ask, d("10"), d("1")).unwrap();
        b.apply(BookSide::Ask, d("11"), d("0")).unwrap();
        assert_eq!(b.depth(BookSide::Ask), 1);
        b.apply(BookSide::Ask, d("10.0"), d("0")).unwrap();
        assert_eq!(b.depth(BookSide::Ask), 0);
        assert_eq!(b.best_ask(), None);
    }

    #[test]
    fn overflow_and_negative_leave_book_unchanged() {
        let mut b = Book::default();
        b.apply(BookSide::Bid, d("9000000000"), d("1")).unwrap();
        assert_eq!(
            b.apply(BookSide::Bid, d("1.0000000001"), d("1")),
            Err(BookError::Overflow)
        );
        assert_eq!(b.best_bid(), Some((d("9000000000"), d("1"))));
        assert_eq!(
            b.apply(BookSide::Bid, d("1"), d("-1")),
            Err(BookError::Negative)
        );
        assert_eq!(b.depth(BookSide::Bid), 1);
    }

    #[test]
    fn imbalance_over_top_levels() {
        let mut b = Book::default();
        assert_eq!(b.imbalance(5), None);
        b.apply(BookSide::Bid, d("10"), d("3")).unwrap();
        assert_eq!(b.imbalance(5), Some(100.0));
        b.apply(BookSide::Ask, d("11"), d("1")).unwrap();
        assert_eq!(b.imbalance(5), Some(75.0));
        for i in 0..10 {
            b.apply(BookSide::Ask, Decimal::new(12 + i, 0), d("1"))
                .unwrap();
        }
        // top 5: bids 3, asks 5 -> 37.5; top 20: bids 3, asks 11
        assert_eq!(b.imbalance(5), Some(37.5));
        assert_eq!(b.imbalance(20), Some(100.0 * 3.0 / 14.0));
    }
}

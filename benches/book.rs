//! Book apply on the recordings' real book messages, in recorded order: pinfeed's fixed-point
//! sorted-array book against a `BTreeMap` keyed by a decimal type (`rust_decimal`), the usual
//! approach. After every message both compute best bid/ask and the top-20 imbalance, as the
//! book thread does. Ratios print at the end.
//!
//! Run: `cargo bench --bench book`.

mod common;

use std::collections::BTreeMap;
use std::hint::black_box;

use criterion::{Criterion, Throughput};
use rust_decimal::Decimal as RustDecimal;

use common::{Op, ops};
use pinfeed::book::Book;
use pinfeed::model::{BookSide, Decimal};

#[derive(Default, Clone)]
struct BTreeBook {
    bids: BTreeMap<RustDecimal, RustDecimal>,
    asks: BTreeMap<RustDecimal, RustDecimal>,
}

fn rd(d: Decimal) -> RustDecimal {
    RustDecimal::new(d.mantissa, u32::from(d.decimals))
}

impl BTreeBook {
    fn apply(&mut self, side: BookSide, price: Decimal, qty: Decimal) {
        let map = match side {
            BookSide::Bid => &mut self.bids,
            BookSide::Ask => &mut self.asks,
        };
        let p = rd(price);
        if qty.is_zero() {
            map.remove(&p);
        } else {
            map.insert(p, rd(qty));
        }
    }

    fn top(&self) -> (Option<RustDecimal>, Option<RustDecimal>, Option<f64>) {
        let bid: RustDecimal = self.bids.values().rev().take(20).sum();
        let ask: RustDecimal = self.asks.values().take(20).sum();
        let total = bid + ask;
        let imb = if total.is_zero() {
            None
        } else {
            Some(100.0 * f64::try_from(bid / total).unwrap_or(0.0))
        };
        (
            self.bids.last_key_value().map(|(p, _)| *p),
            self.asks.first_key_value().map(|(p, _)| *p),
            imb,
        )
    }
}

fn main() {
    let (n, ops) = ops();
    let levels = ops.iter().filter(|o| matches!(o, Op::Level(..))).count() as u64;
    let messages = ops.iter().filter(|o| matches!(o, Op::End(..))).count();
    println!("book bench: {levels} level updates in {messages} book messages, {n} instruments");
    let mut c = Criterion::default().configure_from_args();
    let mut g = c.benchmark_group("book/apply");
    g.throughput(Throughput::Elements(levels));
    let mut books: Vec<Book> = (0..n).map(|_| Book::default()).collect();
    g.bench_function("pinfeed", |b| {
        b.iter(|| {
            let mut acc = 0i64;
            for op in &ops {
                match *op {
                    Op::Clear(i) => books[i].begin_snapshot(),
                    Op::Level(i, side, p, q) => {
                        let _ = books[i].apply(side, p, q);
                    }
                    Op::End(i) => {
                        books[i].end_snapshot();
                        let book = &books[i];
                        acc ^= book.best_bid().map_or(0, |l| l.0.mantissa)
                            ^ book.best_ask().map_or(0, |l| l.0.mantissa)
                            ^ book.imbalance(20).map_or(0, |x| x as i64);
                    }
                }
            }
            black_box(acc)
        })
    });
    let mut trees: Vec<BTreeBook> = vec![BTreeBook::default(); n];
    g.bench_function("btreemap_decimal", |b| {
        b.iter(|| {
            let mut acc = 0u64;
            for op in &ops {
                match *op {
                    Op::Clear(i) => {
                        trees[i].bids.clear();
                        trees[i].asks.clear();
                    }
                    Op::Level(i, side, p, q) => trees[i].apply(side, p, q),
                    Op::End(i) => {
                        let (b, a, imb) = trees[i].top();
                        acc ^= b.map_or(0, |x| x.mantissa() as u64)
                            ^ a.map_or(0, |x| x.mantissa() as u64)
                            ^ imb.map_or(0, |x| x as u64);
                    }
                }
            }
            black_box(acc)
        })
    });
    g.finish();
    // the two books must agree
    for i in 0..n {
        let a: Vec<_> = books[i]
            .decimal_levels(BookSide::Bid)
            .map(|(p, q)| (rd(p), rd(q)))
            .collect();
        let b: Vec<_> = trees[i].bids.iter().rev().map(|(p, q)| (*p, *q)).collect();
        assert_eq!(a, b, "instrument {i}: books disagree");
    }
    c.final_summary();
    println!("\nbook ratios (baseline time / pinfeed time; >1 means pinfeed is faster):");
    common::print_ratios("book/apply", "pinfeed", &["btreemap_decimal"], levels);
}

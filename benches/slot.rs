//! Book state from the book thread to the fan-out, per applied book message of the
//! recordings (issue 8). Before: the fan-out applied every level a second time to a book of
//! its own and copied its top levels for snapshots and imbalance. Now: the book thread writes
//! the top levels into the instrument's latest-state slot (a seqlock over atomic words) and
//! the fan-out reads them. Both at depth 10 and at the default slot depth of 50; the writer
//! pays only for the depth readers ask for. Ratios print at the end.
//!
//! Run: `cargo bench --bench slot`.

mod common;

use std::hint::black_box;

use criterion::{Criterion, Throughput};

use common::{Op, ops};
use pinfeed::book::Book;
use pinfeed::model::{BookSide, Decimal, InstrumentId, Stamps};
use pinfeed::pipeline::{BookSlots, SlotView};

fn main() {
    let (n, ops) = ops();
    let messages = ops.iter().filter(|o| matches!(o, Op::End(..))).count() as u64;
    println!("slot bench: {messages} applied book messages, {n} instruments");
    // the writer's books, applied once outside the measurement: each End publishes them
    let mut c = Criterion::default().configure_from_args();
    for depth in [10usize, 50] {
        let group = format!("slot/depth{depth}");
        let mut g = c.benchmark_group(&group);
        g.throughput(Throughput::Elements(messages));
        // before: a second book on the fan-out thread, fed every level, top copied per message
        let mut copies: Vec<Book> = (0..n).map(|_| Book::default()).collect();
        let mut top = vec![(Decimal::ZERO, Decimal::ZERO); depth];
        g.bench_function("fanout_book_copy", |b| {
            b.iter(|| {
                let mut acc = 0i64;
                for op in &ops {
                    match *op {
                        Op::Clear(i) => copies[i].begin_snapshot(),
                        Op::Level(i, side, p, q) => {
                            let _ = copies[i].apply(side, p, q);
                        }
                        Op::End(i) => {
                            copies[i].end_snapshot();
                            for side in [BookSide::Bid, BookSide::Ask] {
                                let k = copies[i].top_into(side, &mut top);
                                acc ^= top[..k].iter().map(|l| l.1.mantissa).sum::<i64>();
                            }
                        }
                    }
                }
                black_box(acc)
            })
        });
        // now: the book thread's own book (applied outside the measurement) published into
        // the slot, read back by a shard
        let mut books: Vec<Book> = (0..n).map(|_| Book::default()).collect();
        let slots = BookSlots::new(n, depth, 1);
        for i in 0..n {
            slots.want_depth(InstrumentId(i as u32), 0, depth);
        }
        let mut view = SlotView::with_depth(depth);
        let mut ends = Vec::with_capacity(messages as usize);
        for op in &ops {
            match *op {
                Op::Clear(i) => books[i].begin_snapshot(),
                Op::Level(i, side, p, q) => {
                    let _ = books[i].apply(side, p, q);
                }
                Op::End(i) => {
                    books[i].end_snapshot();
                    ends.push(i);
                }
            }
        }
        g.bench_function("slot_publish_read", |b| {
            b.iter(|| {
                let mut acc = 0i64;
                for &i in &ends {
                    let id = InstrumentId(i as u32);
                    slots.publish(id, true, 0, Stamps::default(), Some(&books[i]));
                    slots.read(id, depth, &mut view);
                    acc ^= view
                        .bids
                        .iter()
                        .chain(&view.asks)
                        .map(|l| l.qty)
                        .sum::<i64>();
                }
                black_box(acc)
            })
        });
        g.bench_function("slot_publish", |b| {
            b.iter(|| {
                for &i in &ends {
                    let id = InstrumentId(i as u32);
                    black_box(slots.publish(id, true, 0, Stamps::default(), Some(&books[i])));
                }
            })
        });
        g.finish();
    }
    c.final_summary();
    println!("\nslot ratios (baseline time / slot time; >1 means the slot is cheaper):");
    for depth in [10, 50] {
        let group = format!("slot/depth{depth}");
        common::print_ratios(&group, "slot_publish_read", &["fanout_book_copy"], messages);
    }
}

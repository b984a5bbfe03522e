//! Unit tests of the binance venue module.
use std::collections::HashMap;

use proptest::prelude::*;

use super::*;
use crate::model::{BookEnd, Decimal, Level};
use crate::sim::recording::Record;
use crate::testutil::{fixture_lines, instruments, parse, recording, recv_frames};
use crate::venue::VenueParser;

fn dec(s: &str) -> Decimal {
    Decimal::parse(s.as_bytes()).unwrap()
}

fn seq(first: u64, last: u64, prev: Option<u64>) -> Sequence {
    Sequence::Binance {
        first_update_id: first,
        last_update_id: last,
        prev_update_id: prev,
    }
}

/// The stamps `testutil::parse` passes, with the venue time `exch_ms`.
fn stamps_ms(exch_ms: i64) -> Stamps {
    Stamps {
        exch_ts_ns: exch_ms * 1_000_000,
        recv_ts_ns: 1,
        recv_mono_ns: 2,
        push_delta_ns: 0,
        applied_delta_ns: 0,
    }
}

const NO_EXCH: Stamps = Stamps {
    exch_ts_ns: 0,
    recv_ts_ns: 1,
    recv_mono_ns: 2,
    push_delta_ns: 0,
    applied_delta_ns: 0,
};

fn level(side: BookSide, price: &str, qty: &str) -> Event {
    Event::Level(Level {
        side,
        price: dec(price),
        qty: dec(qty),
    })
}

fn end(instrument: InstrumentId) -> Event {
    Event::BookEnd(BookEnd {
        instrument,
        checksum: None,
        aborted: false,
    })
}

/// Every `BookBegin` is closed by a `BookEnd` of the same instrument, with only levels
/// between them.
fn assert_books_closed(events: &[Event]) {
    let mut open: Option<InstrumentId> = None;
    for e in events {
        match e {
            Event::BookBegin(b) => {
                assert!(open.is_none(), "nested BookBegin");
                open = Some(b.instrument);
            }
            Event::Level(_) => assert!(open.is_some(), "level outside a book message"),
            Event::BookEnd(b) => {
                assert_eq!(open.take(), Some(b.instrument), "BookEnd without BookBegin");
            }
            _ => assert!(open.is_none(), "event inside a book message"),
        }
    }
    assert!(open.is_none(), "BookBegin not closed");
}

fn book_seq(events: &[Event]) -> Sequence {
    match events.first() {
        Some(Event::BookBegin(b)) => b.seq,
        other => panic!("expected BookBegin, got {other:?}"),
    }
}

// ---------------------------------------------------------------- sync rules

#[test]
fn futures_rule_after_snapshot() {
    let snap = seq(100, 100, None);
    // u < L: already in the snapshot.
    assert_eq!(
        check_futures_sequence(&snap, true, &seq(90, 99, Some(89))),
        SyncVerdict::Stale
    );
    // U <= L <= u brackets the snapshot, including both edges.
    assert_eq!(
        check_futures_sequence(&snap, true, &seq(95, 105, Some(94))),
        SyncVerdict::Apply
    );
    assert_eq!(
        check_futures_sequence(&snap, true, &seq(95, 100, Some(94))),
        SyncVerdict::Apply
    );
    assert_eq!(
        check_futures_sequence(&snap, true, &seq(100, 103, Some(99))),
        SyncVerdict::Apply
    );
    // U > L: events between the snapshot and this one are missing.
    assert_eq!(
        check_futures_sequence(&snap, true, &seq(101, 105, Some(100))),
        SyncVerdict::Gap
    );
}

#[test]
fn futures_rule_chain() {
    let last = seq(95, 105, Some(94));
    // pu == previous u.
    assert_eq!(
        check_futures_sequence(&last, false, &seq(110, 120, Some(105))),
        SyncVerdict::Apply
    );
    // A repeat of an applied event.
    assert_eq!(
        check_futures_sequence(&last, false, &seq(95, 105, Some(94))),
        SyncVerdict::Stale
    );
    assert_eq!(
        check_futures_sequence(&last, false, &seq(90, 100, Some(80))),
        SyncVerdict::Stale
    );
    // pu ahead of the previous u: a lost event.
    assert_eq!(
        check_futures_sequence(&last, false, &seq(130, 140, Some(125))),
        SyncVerdict::Gap
    );
    // No pu cannot be verified.
    assert_eq!(
        check_futures_sequence(&last, false, &seq(106, 110, None)),
        SyncVerdict::Gap
    );
    // Not a Binance sequence.
    assert_eq!(
        check_futures_sequence(&Sequence::None, false, &seq(1, 2, Some(0))),
        SyncVerdict::Gap
    );
}

#[test]
fn spot_rule_after_snapshot() {
    let snap = seq(100, 100, None);
    // u <= L: already in the snapshot (u == L included, unlike futures).
    assert_eq!(
        check_spot_sequence(&snap, true, &seq(95, 100, None)),
        SyncVerdict::Stale
    );
    assert_eq!(
        check_spot_sequence(&snap, true, &seq(90, 99, None)),
        SyncVerdict::Stale
    );
    // U <= L+1 <= u.
    assert_eq!(
        check_spot_sequence(&snap, true, &seq(98, 103, None)),
        SyncVerdict::Apply
    );
    assert_eq!(
        check_spot_sequence(&snap, true, &seq(101, 101, None)),
        SyncVerdict::Apply
    );
    // U > L+1.
    assert_eq!(
        check_spot_sequence(&snap, true, &seq(102, 104, None)),
        SyncVerdict::Gap
    );
}

#[test]
fn spot_rule_chain() {
    let last = seq(98, 103, None);
    assert_eq!(
        check_spot_sequence(&last, false, &seq(104, 110, None)),
        SyncVerdict::Apply
    );
    assert_eq!(
        check_spot_sequence(&last, false, &seq(98, 103, None)),
        SyncVerdict::Stale
    );
    assert_eq!(
        check_spot_sequence(&last, false, &seq(105, 110, None)),
        SyncVerdict::Gap
    );
    // Overlapping the book: resync rather than guess.
    assert_eq!(
        check_spot_sequence(&last, false, &seq(100, 110, None)),
        SyncVerdict::Gap
    );
    assert_eq!(
        check_spot_sequence(&Sequence::None, true, &seq(1, 2, None)),
        SyncVerdict::Gap
    );
    // No overflow at the top of the id range.
    let top = seq(u64::MAX, u64::MAX, None);
    assert_eq!(
        check_spot_sequence(&top, false, &seq(u64::MAX, u64::MAX, None)),
        SyncVerdict::Stale
    );
}

fn spot_registry() -> Instruments {
    instruments(&[
        (Exchange::Binance, "BNBBTC"),
        (Exchange::Binance, "BTCUSDT"),
        (Exchange::Binance, "DOGEBNB"),
        (Exchange::Binance, "BTCUSDC"),
        (Exchange::Binance, "GNTBTC"),
    ])
}

fn futures_registry() -> Instruments {
    instruments(&[
        (Exchange::BinanceFutures, "BTCUSDT"),
        (Exchange::BinanceFutures, "ETHUSDT"),
        (Exchange::BinanceFutures, "BTCBUSD_210129"),
    ])
}

mod bad_input;
mod fixtures;
mod recordings;

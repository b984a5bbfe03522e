//! Unit tests of the deribit venue module.
use std::collections::HashMap;

use proptest::prelude::*;

use super::*;
use crate::model::DecimalError;
use crate::sim::recording::Record;
use crate::testutil;
use crate::venue::VenueParser;

const X: Exchange = Exchange::Deribit;

fn d(s: &str) -> Decimal {
    Decimal::parse(s.as_bytes()).unwrap()
}

fn ns(ms: i64) -> i64 {
    ms * 1_000_000
}

fn parser() -> VenueParser {
    VenueParser::new(Feed::Deribit)
}

/// Every symbol of deribit.jsonl.
fn fixture_instruments() -> Instruments {
    testutil::instruments(&[
        (X, "BTC-PERPETUAL"),
        (X, "ETH-PERPETUAL"),
        (X, "BTC-8JUN20-8750-P"),
        (X, "BTC-5JUN20-9250-C"),
        (X, "ETH-5JUN20-310-P"),
        (X, "ETH-10JUN20-270-C"),
        (X, "ETH-10SEP21-3350-P"),
        (X, "LINK_USDC-PERPETUAL"),
        (X, "BTC-STRD-30SEP22-20000"),
        (X, "BTC-FS-30SEP22_PERP"),
        (X, "BTC-CSR12-16SEP22-21000_23000"),
        // interned upper case; the venue sends `1d02`
        (X, "MATIC_USDC-9MAR24-1D02-C"),
    ])
}

fn fixture(i: usize) -> String {
    let lines = testutil::fixture_lines("deribit.jsonl");
    assert_eq!(lines.len(), 18);
    lines[i - 1].clone()
}

/// Parses fixture line `i` (1-based).
fn parse_fixture(i: usize) -> (Result<FrameKind, ParseError>, Vec<Event>, Instruments) {
    let reg = fixture_instruments();
    let (r, ev) = testutil::parse(&mut parser(), &fixture(i), &reg);
    (r, ev, reg)
}

fn id(reg: &Instruments, s: &str) -> InstrumentId {
    reg.get(X, s).unwrap()
}

fn stamps(ms: i64) -> Stamps {
    Stamps {
        exch_ts_ns: ns(ms),
        recv_ts_ns: 1,
        recv_mono_ns: 2,
        push_delta_ns: 0,
        applied_delta_ns: 0,
    }
}

fn trade(ev: &Event) -> Trade {
    match ev {
        Event::Trade(t) => *t,
        other => panic!("not a trade: {other:?}"),
    }
}

/// The one derivative ticker of `ev`; an option's ticker is followed by its two halves.
fn ticker(ev: &[Event]) -> DerivativeTicker {
    let t = match ev[0] {
        Event::DerivativeTicker(t) => t.unpack(),
        other => panic!("not a ticker: {other:?}"),
    };
    match ev[1..] {
        [] => {}
        [Event::OptionHalf(a), Event::OptionHalf(b)] => {
            assert_eq!((a.half, b.half), (0, 1));
            assert_eq!((a.instrument, a.stamps), (t.instrument, t.stamps));
            assert_eq!((b.instrument, b.stamps), (t.instrument, t.stamps));
        }
        _ => panic!("after the ticker: {ev:?}"),
    }
    t
}

/// Splits a book message into its begin, levels and end.
fn book(ev: &[Event]) -> (BookBegin, Vec<Level>, crate::model::BookEnd) {
    let Event::BookBegin(begin) = ev[0] else {
        panic!("no BookBegin: {ev:?}")
    };
    let Event::BookEnd(end) = ev[ev.len() - 1] else {
        panic!("no BookEnd: {ev:?}")
    };
    let levels = ev[1..ev.len() - 1]
        .iter()
        .map(|e| match e {
            Event::Level(l) => *l,
            other => panic!("not a level: {other:?}"),
        })
        .collect();
    (begin, levels, end)
}

fn lvl(side: BookSide, price: &str, qty: &str) -> Level {
    Level {
        side,
        price: d(price),
        qty: d(qty),
    }
}

fn seq(change_id: u64, prev_change_id: Option<u64>) -> Sequence {
    Sequence::Deribit {
        change_id,
        prev_change_id,
    }
}

// ---- sync rule ----

#[test]
fn sync_first_change_after_snapshot_applies() {
    let snapshot = seq(100, None);
    assert_eq!(
        check_sequence(&snapshot, true, &seq(105, Some(100))),
        SyncVerdict::Apply
    );
}

#[test]
fn sync_chained_change_applies() {
    assert_eq!(
        check_sequence(&seq(105, Some(100)), false, &seq(109, Some(105))),
        SyncVerdict::Apply
    );
}

#[test]
fn sync_old_change_is_stale() {
    // already covered: same change again, or an older one
    assert_eq!(
        check_sequence(&seq(105, Some(100)), false, &seq(105, Some(100))),
        SyncVerdict::Stale
    );
    assert_eq!(
        check_sequence(&seq(105, None), true, &seq(103, Some(99))),
        SyncVerdict::Stale
    );
}

#[test]
fn sync_missed_change_is_gap() {
    assert_eq!(
        check_sequence(&seq(105, Some(100)), false, &seq(120, Some(110))),
        SyncVerdict::Gap
    );
    // first change after the snapshot that does not chain onto it
    assert_eq!(
        check_sequence(&seq(100, None), true, &seq(120, Some(110))),
        SyncVerdict::Gap
    );
    // the fixture's change with prev_change_id 0 does not continue anything
    assert_eq!(
        check_sequence(&seq(14617771000, None), true, &seq(14617771529, Some(0))),
        SyncVerdict::Gap
    );
}

#[test]
fn sync_snapshot_resets_and_foreign_sequences_gap() {
    assert_eq!(
        check_sequence(&seq(105, Some(100)), false, &seq(200, None)),
        SyncVerdict::Reset
    );
    assert_eq!(
        check_sequence(&Sequence::None, false, &seq(10, Some(9))),
        SyncVerdict::Gap
    );
    assert_eq!(
        check_sequence(&seq(10, None), false, &Sequence::None),
        SyncVerdict::Gap
    );
}

fn parse_str(frame: &str) -> (Result<FrameKind, ParseError>, Vec<Event>) {
    testutil::parse(&mut parser(), frame, &fixture_instruments())
}

mod bad_input;
mod fixtures;
mod recordings;

//! Unit tests of the bybit venue module.
use std::collections::HashMap;
use std::sync::OnceLock;

use proptest::prelude::*;

use super::*;
use crate::model::{BookEnd, Level};
use crate::sim::recording::Record;
use crate::testutil;
use crate::venue::{VenueParser, feed_from_url};

fn d(s: &str) -> Decimal {
    Decimal::parse(s.as_bytes()).unwrap()
}

fn seq(update_id: u64) -> Sequence {
    Sequence::Bybit {
        update_id,
        cross_seq: 0,
    }
}

fn stamps_ms(ms: i64) -> Stamps {
    Stamps {
        exch_ts_ns: ms * 1_000_000,
        recv_ts_ns: 1,
        recv_mono_ns: 2,
        push_delta_ns: 0,
        applied_delta_ns: 0,
    }
}

// ---------------------------------------------------------------- sync rule

#[test]
fn sync_rule_applies_the_next_update_id() {
    assert_eq!(
        check_sequence(&seq(100), false, &seq(101)),
        SyncVerdict::Apply
    );
    // the first delta after a snapshot continues the snapshot's own `u`
    assert_eq!(
        check_sequence(&seq(20683568), true, &seq(20683569)),
        SyncVerdict::Apply
    );
}

#[test]
fn sync_rule_drops_stale_messages() {
    assert_eq!(
        check_sequence(&seq(100), false, &seq(100)),
        SyncVerdict::Stale
    );
    assert_eq!(
        check_sequence(&seq(100), false, &seq(42)),
        SyncVerdict::Stale
    );
    assert_eq!(
        check_sequence(&seq(100), true, &seq(99)),
        SyncVerdict::Stale
    );
}

#[test]
fn sync_rule_detects_gaps() {
    assert_eq!(
        check_sequence(&seq(100), false, &seq(102)),
        SyncVerdict::Gap
    );
    assert_eq!(
        check_sequence(&seq(100), true, &seq(5000)),
        SyncVerdict::Gap
    );
    assert_eq!(
        check_sequence(&seq(u64::MAX), false, &seq(u64::MAX - 1)),
        SyncVerdict::Stale
    );
    // not a Bybit sequence: cannot be checked, resync
    assert_eq!(
        check_sequence(&Sequence::None, true, &seq(101)),
        SyncVerdict::Gap
    );
    assert_eq!(
        check_sequence(&seq(100), false, &Sequence::None),
        SyncVerdict::Gap
    );
}

#[test]
fn sync_rule_resets_on_update_id_one() {
    assert_eq!(
        check_sequence(&seq(100), false, &seq(1)),
        SyncVerdict::Reset
    );
    assert_eq!(check_sequence(&seq(100), true, &seq(1)), SyncVerdict::Reset);
    // after a restart snapshot (`u` = 1) the chain continues at 2
    assert_eq!(check_sequence(&seq(1), true, &seq(2)), SyncVerdict::Apply);
}

fn fixture_instruments() -> Instruments {
    testutil::instruments(&[
        (Exchange::Bybit, "BTCUSD"),
        (Exchange::Bybit, "LTCUSDT"),
        (Exchange::Bybit, "BTCUSDT"),
        (Exchange::Bybit, "BTCPERP"),
        (Exchange::Bybit, "BTCUSDU23"),
        (Exchange::Bybit, "GALAUSDT"),
        (Exchange::Bybit, "XRPUSD"),
        (Exchange::Bybit, "PIPPINUSDT"),
        (Exchange::BybitSpot, "BTCUSDT"),
        (Exchange::BybitSpot, "BTCUSDC"),
    ])
}

fn level(side: BookSide, price: &str, qty: &str) -> Event {
    Event::Level(Level {
        side,
        price: d(price),
        qty: d(qty),
    })
}

mod bad_input;
mod fixtures;
mod recordings;

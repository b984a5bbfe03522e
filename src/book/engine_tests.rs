//! Unit tests of `engine.rs`.

use super::*;
use crate::model::{BookBegin, BookEnd, Level, Stamps};

fn d(s: &str) -> Decimal {
    Decimal::parse(s.as_bytes()).unwrap()
}

/// A toy chain rule: `Deribit { change_id, prev_change_id }` must link.
fn linked(last: &Sequence, _after: bool, next: &Sequence) -> SyncVerdict {
    match (last, next) {
        (
            Sequence::Deribit { change_id: a, .. },
            Sequence::Deribit {
                change_id: b,
                prev_change_id: Some(p),
            },
        ) => {
            if p == a {
                SyncVerdict::Apply
            } else if b <= a {
                SyncVerdict::Stale
            } else {
                SyncVerdict::Gap
            }
        }
        _ => SyncVerdict::Gap,
    }
}

fn msg(
    engine: &mut BookEngine,
    id: u32,
    snapshot: bool,
    change: u64,
    prev: Option<u64>,
    levels: &[(BookSide, &str, &str)],
    checksum: Option<i32>,
) -> bool {
    let instrument = InstrumentId(id);
    engine.on_event(&Event::BookBegin(BookBegin {
        instrument,
        is_snapshot: snapshot,
        seq: Sequence::Deribit {
            change_id: change,
            prev_change_id: prev,
        },
        stamps: Stamps::default(),
    }));
    for (side, p, q) in levels {
        engine.on_event(&Event::Level(Level {
            side: *side,
            price: d(p),
            qty: d(q),
        }));
    }
    engine.on_event(&Event::BookEnd(BookEnd {
        instrument,
        checksum,
        aborted: false,
    }));
    engine.last_message_applied()
}

#[test]
fn chain_gap_resyncs_only_that_book() {
    let mut e = BookEngine::new();
    e.register(InstrumentId(0), linked, None, false);
    e.register(InstrumentId(1), linked, None, false);
    assert!(!msg(&mut e, 0, false, 5, Some(4), &[], None));
    assert_eq!(e.stats(InstrumentId(0)).unwrap().skipped_unsynced, 1);
    assert!(msg(
        &mut e,
        0,
        true,
        10,
        None,
        &[(BookSide::Bid, "1", "1")],
        None
    ));
    assert!(msg(
        &mut e,
        1,
        true,
        10,
        None,
        &[(BookSide::Bid, "1", "1")],
        None
    ));
    assert!(msg(
        &mut e,
        0,
        false,
        11,
        Some(10),
        &[(BookSide::Ask, "2", "1")],
        None
    ));
    // stale duplicate
    assert!(!msg(
        &mut e,
        0,
        false,
        11,
        Some(10),
        &[(BookSide::Ask, "3", "1")],
        None
    ));
    assert_eq!(e.stats(InstrumentId(0)).unwrap().stale, 1);
    assert_eq!(e.book(InstrumentId(0)).unwrap().depth(BookSide::Ask), 1);
    // gap
    assert!(!msg(&mut e, 0, false, 13, Some(12), &[], None));
    assert_eq!(
        e.state(InstrumentId(0)),
        Some(SyncState::Resyncing(ResyncReason::Gap))
    );
    assert_eq!(e.state(InstrumentId(1)), Some(SyncState::Synced));
    let mut req = Vec::new();
    e.take_resync_requests(&mut req);
    assert_eq!(req, vec![InstrumentId(0)]);
    assert_eq!(e.stats(InstrumentId(0)).unwrap().gaps, 1);
    // a new snapshot recovers
    assert!(msg(
        &mut e,
        0,
        true,
        20,
        None,
        &[(BookSide::Bid, "1", "1")],
        None
    ));
    assert_eq!(e.state(InstrumentId(0)), Some(SyncState::Synced));
}

fn binance_like(last: &Sequence, after: bool, next: &Sequence) -> SyncVerdict {
    // uses Deribit fields: change_id = u, prev_change_id = U
    let (
        Sequence::Deribit { change_id: l, .. },
        Sequence::Deribit {
            change_id: u,
            prev_change_id: Some(first),
        },
    ) = (last, next)
    else {
        return SyncVerdict::Gap;
    };
    if *u <= *l {
        SyncVerdict::Stale
    } else if (after && *first <= *l + 1) || *first == *l + 1 {
        SyncVerdict::Apply
    } else {
        SyncVerdict::Gap
    }
}

#[test]
fn buffers_deltas_until_rest_snapshot() {
    let mut e = BookEngine::new();
    e.register(InstrumentId(0), binance_like, None, true);
    // deltas (first=U, u) arrive before the snapshot: 1..=3, 4..=6, 7..=7
    msg(
        &mut e,
        0,
        false,
        3,
        Some(1),
        &[(BookSide::Bid, "1", "1")],
        None,
    );
    msg(
        &mut e,
        0,
        false,
        6,
        Some(4),
        &[(BookSide::Bid, "2", "1")],
        None,
    );
    msg(
        &mut e,
        0,
        false,
        7,
        Some(7),
        &[(BookSide::Bid, "3", "1")],
        None,
    );
    assert_eq!(e.disposition(), Disposition::Buffer);
    assert_eq!(e.stats(InstrumentId(0)).unwrap().buffered, 3);
    // snapshot at 5: the first delta is stale, 4..=6 brackets it, 7 follows
    assert!(msg(
        &mut e,
        0,
        true,
        5,
        None,
        &[(BookSide::Ask, "9", "1")],
        None
    ));
    let s = e.stats(InstrumentId(0)).unwrap();
    assert_eq!((s.stale, s.deltas, s.gaps), (1, 2, 0));
    let book = e.book(InstrumentId(0)).unwrap();
    assert_eq!(book.best_bid(), Some((d("3"), d("1"))));
    assert_eq!(book.depth(BookSide::Bid), 2);
    assert_eq!(e.state(InstrumentId(0)), Some(SyncState::Synced));
}

/// Deltas `U..=u` with `u = U` for `first..=last`, one bid level each (3 events).
fn single_deltas(e: &mut BookEngine, first: u64, last: u64) {
    for u in first..=last {
        let price = (u % 50 + 1).to_string();
        msg(
            e,
            0,
            false,
            u,
            Some(u),
            &[(BookSide::Bid, &price, "1")],
            None,
        );
    }
}

#[test]
fn a_full_pre_snapshot_buffer_keeps_the_newest_deltas() {
    let mut e = BookEngine::new();
    e.register(InstrumentId(0), binance_like, None, true);
    // three events per message: twice the buffer's worth of deltas 1..=N
    let n = (2 * PENDING_EVENTS / 3) as u64;
    single_deltas(&mut e, 1, n);
    assert_eq!(e.disposition(), Disposition::Buffer);
    let s = e.stats(InstrumentId(0)).unwrap();
    assert_eq!(s.resyncs[ResyncReason::BufferOverflow as usize], 1);
    // a snapshot newer than the oldest kept delta: the rest chains on, no gap
    let snapshot_at = n - 100;
    assert!(msg(&mut e, 0, true, snapshot_at, None, &[], None));
    let s = e.stats(InstrumentId(0)).unwrap();
    assert_eq!((s.gaps, s.deltas), (0, 100));
    assert_eq!(e.state(InstrumentId(0)), Some(SyncState::Synced));
    assert_eq!(
        e.last_sequence(InstrumentId(0)),
        Some(Sequence::Deribit {
            change_id: n,
            prev_change_id: Some(n)
        })
    );
}

#[test]
fn a_snapshot_older_than_the_kept_deltas_is_a_gap() {
    let mut e = BookEngine::new();
    e.register(InstrumentId(0), binance_like, None, true);
    let n = (2 * PENDING_EVENTS / 3) as u64;
    single_deltas(&mut e, 1, n);
    // deltas 1..=~n/2 were dropped to make room: a snapshot at 10 cannot be bridged
    msg(&mut e, 0, true, 10, None, &[], None);
    let s = e.stats(InstrumentId(0)).unwrap();
    assert_eq!(s.gaps, 1);
    assert!(matches!(
        e.state(InstrumentId(0)),
        Some(SyncState::Resyncing(ResyncReason::Gap))
    ));
    let mut requests = Vec::new();
    e.take_resync_requests(&mut requests);
    assert_eq!(requests, vec![InstrumentId(0)]);
}

#[test]
fn a_break_discards_deltas_buffered_before_it() {
    let mut e = BookEngine::new();
    e.register(InstrumentId(0), binance_like, None, true);
    single_deltas(&mut e, 1, 5);
    e.invalidate(InstrumentId(0), ResyncReason::Disconnected);
    // the new connection's stream: 100..=102; the snapshot at 100 bridges it alone
    single_deltas(&mut e, 100, 102);
    assert!(msg(&mut e, 0, true, 100, None, &[], None));
    let s = e.stats(InstrumentId(0)).unwrap();
    assert_eq!((s.stale, s.deltas, s.gaps), (1, 2, 0));
}

fn sum_checksum(bids: &[(Decimal, Decimal)], asks: &[(Decimal, Decimal)]) -> i32 {
    bids.iter()
        .chain(asks)
        .map(|(p, q)| (p.mantissa + q.mantissa) as i32)
        .sum()
}

#[test]
fn checksum_mismatch_resyncs() {
    let mut e = BookEngine::new();
    e.register(
        InstrumentId(0),
        apply_always,
        Some((sum_checksum, 25)),
        false,
    );
    assert!(msg(
        &mut e,
        0,
        true,
        1,
        None,
        &[(BookSide::Bid, "1", "2")],
        Some(3)
    ));
    assert!(msg(
        &mut e,
        0,
        false,
        2,
        None,
        &[(BookSide::Ask, "4", "1")],
        Some(8)
    ));
    assert!(!msg(
        &mut e,
        0,
        false,
        3,
        None,
        &[(BookSide::Ask, "5", "1")],
        Some(99)
    ));
    let s = e.stats(InstrumentId(0)).unwrap();
    assert_eq!((s.checksum_pass, s.checksum_fail), (2, 1));
    assert_eq!(
        e.state(InstrumentId(0)),
        Some(SyncState::Resyncing(ResyncReason::ChecksumMismatch))
    );
}

#[test]
fn aborted_and_overflowing_messages_resync() {
    let mut e = BookEngine::new();
    e.register(InstrumentId(0), apply_always, None, false);
    assert!(msg(
        &mut e,
        0,
        true,
        1,
        None,
        &[(BookSide::Bid, "1", "2")],
        None
    ));
    e.on_event(&Event::BookBegin(BookBegin {
        instrument: InstrumentId(0),
        is_snapshot: false,
        seq: Sequence::None,
        stamps: Stamps::default(),
    }));
    e.on_event(&Event::BookEnd(BookEnd {
        instrument: InstrumentId(0),
        checksum: None,
        aborted: true,
    }));
    assert_eq!(
        e.state(InstrumentId(0)),
        Some(SyncState::Resyncing(ResyncReason::MalformedMessage))
    );
    assert!(msg(
        &mut e,
        0,
        true,
        1,
        None,
        &[(BookSide::Bid, "900000000000", "1")],
        None
    ));
    assert!(!msg(
        &mut e,
        0,
        false,
        2,
        None,
        &[(BookSide::Bid, "0.00000001", "1")],
        None
    ));
    assert_eq!(
        e.state(InstrumentId(0)),
        Some(SyncState::Resyncing(ResyncReason::Overflow))
    );
}

#[test]
fn ticker_merge_keeps_known_fields() {
    let mut t = TickerState::default();
    let a = DerivativeTicker {
        open_interest: Some(d("10")),
        funding_rate: Some(d("0.0001")),
        ..Default::default()
    };
    assert!(t.merge(&a));
    assert!(!t.merge(&a));
    let b = DerivativeTicker {
        mark_price: Some(d("5")),
        ..Default::default()
    };
    assert!(t.merge(&b));
    assert_eq!(t.merged.open_interest, Some(d("10")));
    assert_eq!(t.merged.mark_price, Some(d("5")));
}

/// Issue 10 item 2: a ticker whose only new values are the best bid/ask (Bybit sends them in
/// most `tickers` deltas) is merged but is no change: `derivative_ticker` does not carry them.
#[test]
fn ticker_merge_ignores_best_bid_ask_for_changes() {
    let mut t = TickerState::default();
    let a = DerivativeTicker {
        mark_price: Some(d("5")),
        best_bid_price: Some(d("4.9")),
        ..Default::default()
    };
    assert!(t.merge(&a));
    let b = DerivativeTicker {
        mark_price: Some(d("5")),
        best_bid_price: Some(d("4.8")),
        best_ask_qty: Some(d("3")),
        ..Default::default()
    };
    assert!(!t.merge(&b));
    assert_eq!(t.merged.best_bid_price, Some(d("4.8")));
    assert_eq!(t.merged.best_ask_qty, Some(d("3")));
    let c = DerivativeTicker {
        funding_ts_ns: Some(1),
        ..Default::default()
    };
    assert!(t.merge(&c));
}

/// Issue 9 item 7: one 2 MB Bybit delta of 130,000 levels left a crossed book marked
/// `synced`. A side past `max_levels_per_side` resyncs the book, and so does a crossed book.
#[test]
fn runaway_and_crossed_books_resync() {
    use BookSide::{Ask, Bid};
    let mut e = BookEngine::new();
    e.set_max_levels_per_side(16);
    e.register(InstrumentId(0), linked, None, false);
    let touch = [(Bid, "100", "1"), (Ask, "101", "1")];
    assert!(msg(&mut e, 0, true, 1, None, &touch, None));
    let prices: Vec<String> = (0..17).map(|i| format!("{}", 50 + i)).collect();
    let many: Vec<(BookSide, &str, &str)> = prices.iter().map(|p| (Bid, p.as_str(), "1")).collect();
    assert!(!msg(&mut e, 0, false, 2, Some(1), &many, None));
    assert_eq!(
        e.state(InstrumentId(0)),
        Some(SyncState::Resyncing(ResyncReason::TooManyLevels))
    );
    // 16 levels fit
    assert!(msg(&mut e, 0, true, 3, None, &many[..15], None));
    assert_eq!(e.state(InstrumentId(0)), Some(SyncState::Synced));
    // a bid at the ask crosses the book
    assert!(msg(&mut e, 0, true, 4, None, &touch, None));
    assert!(!msg(
        &mut e,
        0,
        false,
        5,
        Some(4),
        &[(Bid, "101", "2")],
        None
    ));
    assert_eq!(
        e.state(InstrumentId(0)),
        Some(SyncState::Resyncing(ResyncReason::Crossed))
    );
    let stats = e.stats(InstrumentId(0)).unwrap();
    let idx = |r: ResyncReason| ResyncReason::ALL.iter().position(|x| *x == r).unwrap();
    assert_eq!(stats.resyncs[idx(ResyncReason::TooManyLevels)], 1);
    assert_eq!(stats.resyncs[idx(ResyncReason::Crossed)], 1);
}

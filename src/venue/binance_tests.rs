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
    }
}

const NO_EXCH: Stamps = Stamps {
    exch_ts_ns: 0,
    recv_ts_ns: 1,
    recv_mono_ns: 2,
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

// ---------------------------------------------------------------- spot fixtures

fn spot_registry() -> Instruments {
    instruments(&[
        (Exchange::Binance, "BNBBTC"),
        (Exchange::Binance, "BTCUSDT"),
        (Exchange::Binance, "DOGEBNB"),
        (Exchange::Binance, "BTCUSDC"),
        (Exchange::Binance, "GNTBTC"),
    ])
}

#[test]
fn spot_fixture_every_line() {
    let reg = spot_registry();
    let id = |s| reg.get(Exchange::Binance, s).unwrap();
    let mut p = VenueParser::new(Feed::BinanceSpot);
    let lines = fixture_lines("binance.jsonl");
    assert_eq!(lines.len(), 10);
    let out: Vec<_> = lines.iter().map(|l| parse(&mut p, l, &reg)).collect();
    for (r, events) in &out {
        assert!(r.is_ok(), "{r:?}");
        assert_books_closed(events);
    }

    // 1-2: @trade, id `t`, side from `m`, stamped with `T`.
    assert_eq!(out[0].0, Ok(FrameKind::Trade));
    assert_eq!(
        out[0].1,
        vec![Event::Trade(Trade {
            instrument: id("BNBBTC"),
            id: Some(ShortId::new("40756030")),
            price: dec("0.00426990"),
            qty: dec("33.82000000"),
            side: Side::Buy,
            stamps: stamps_ms(1554076800940),
        })]
    );
    let Event::Trade(t) = out[1].1[0] else {
        panic!()
    };
    assert_eq!(t.id.unwrap().as_str(), "60276726");
    assert_eq!((t.price, t.qty), (dec("0.00219650"), dec("6.48000000")));
    assert_eq!(t.side, Side::Sell);
    assert_eq!(t.stamps.exch_ts_ns, 1567296001034 * 1_000_000);

    // 3: spot bookTicker, no time.
    assert_eq!(out[2].0, Ok(FrameKind::BookTicker));
    assert_eq!(
        out[2].1,
        vec![Event::BookTicker(BookTicker {
            instrument: id("BTCUSDT"),
            update_id: Some(1127645101),
            bid_price: Some(dec("8010.00000000")),
            bid_qty: Some(dec("0.14245900")),
            ask_price: Some(dec("8012.15000000")),
            ask_qty: Some(dec("0.03120100")),
            stamps: NO_EXCH,
        })]
    );

    // 4: spot 24 h ticker is not normalized.
    assert_eq!(out[3], (Ok(FrameKind::Ignored), vec![]));

    // 5: generated depthSnapshot; symbol from the stream name.
    assert_eq!(out[4].0, Ok(FrameKind::BookSnapshot));
    assert_eq!(
        out[4].1,
        vec![
            Event::BookBegin(BookBegin {
                instrument: id("BTCUSDC"),
                is_snapshot: true,
                seq: seq(16084251, 16084251, None),
                stamps: NO_EXCH,
            }),
            level(BookSide::Bid, "4091.92000000", "0.00976500"),
            level(BookSide::Bid, "4089.09000000", "0.76393100"),
            level(BookSide::Ask, "4095.99000000", "2.31652000"),
            level(BookSide::Ask, "4096.00000000", "1.42541900"),
            end(id("BTCUSDC")),
        ]
    );

    // 6: delta deleting one level per side.
    assert_eq!(out[5].0, Ok(FrameKind::BookDelta));
    assert_eq!(
        out[5].1,
        vec![
            Event::BookBegin(BookBegin {
                instrument: id("BTCUSDC"),
                is_snapshot: false,
                seq: seq(16084252, 16084253, None),
                stamps: stamps_ms(1554076801699),
            }),
            level(BookSide::Bid, "4084.88000000", "0.00000000"),
            level(BookSide::Ask, "4111.84000000", "0.00000000"),
            end(id("BTCUSDC")),
        ]
    );
    // The snapshot of line 5 is followed by line 6: U = L + 1.
    assert_eq!(
        check_spot_sequence(&book_seq(&out[4].1), true, &book_seq(&out[5].1)),
        SyncVerdict::Apply
    );

    // 7, 8: GNTBTC deltas.
    let e = &out[6].1;
    assert_eq!(e.len(), 1 + 4 + 2 + 1);
    assert_eq!(book_seq(e), seq(41603407, 41603413, None));
    assert_eq!(e[1], level(BookSide::Bid, "0.00002246", "1215.00000000"));
    assert_eq!(e[4], level(BookSide::Bid, "0.00002239", "2126.00000000"));
    assert_eq!(e[5], level(BookSide::Ask, "0.00002267", "0.00000000"));
    assert_eq!(e[6], level(BookSide::Ask, "0.00002269", "7840.00000000"));
    let Event::BookBegin(b) = e[0] else { panic!() };
    assert_eq!(b.stamps.exch_ts_ns, 1554076807698 * 1_000_000);
    let e = &out[7].1;
    assert_eq!(e.len(), 1 + 2 + 1 + 1);
    assert_eq!(book_seq(e), seq(41603414, 41603418, None));
    assert_eq!(e[3], level(BookSide::Ask, "0.00002253", "3945.00000000"));
    // Consecutive deltas chain: U = previous u + 1.
    assert_eq!(
        check_spot_sequence(&book_seq(&out[6].1), false, &book_seq(&out[7].1)),
        SyncVerdict::Apply
    );

    // 9: GNTBTC snapshot, 5 bids and 3 asks.
    let e = &out[8].1;
    assert_eq!(e.len(), 1 + 5 + 3 + 1);
    assert_eq!(book_seq(e), seq(41603417, 41603417, None));
    assert_eq!(e[1], level(BookSide::Bid, "0.00002248", "114.00000000"));
    assert_eq!(e[6], level(BookSide::Ask, "0.00002253", "3945.00000000"));
    assert_eq!(e[8], level(BookSide::Ask, "0.00002258", "1777.00000000"));

    // 10: empty bids; brackets the snapshot (U = L <= L+1 <= u).
    let e = &out[9].1;
    assert_eq!(e.len(), 1 + 2 + 1);
    assert_eq!(book_seq(e), seq(41603417, 41603419, None));
    assert_eq!(e[1], level(BookSide::Ask, "0.00002257", "0.00000000"));
    assert_eq!(e[2], level(BookSide::Ask, "0.00002262", "6080.00000000"));
    assert_eq!(
        check_spot_sequence(&book_seq(&out[8].1), true, &book_seq(e)),
        SyncVerdict::Apply
    );
    // Line 8 (u = 41603418 > L) also brackets it; line 7 is covered by it.
    assert_eq!(
        check_spot_sequence(&book_seq(&out[8].1), true, &book_seq(&out[7].1)),
        SyncVerdict::Apply
    );
    assert_eq!(
        check_spot_sequence(&book_seq(&out[8].1), true, &book_seq(&out[6].1)),
        SyncVerdict::Stale
    );
}

// ---------------------------------------------------------------- futures fixtures

fn futures_registry() -> Instruments {
    instruments(&[
        (Exchange::BinanceFutures, "BTCUSDT"),
        (Exchange::BinanceFutures, "ETHUSDT"),
        (Exchange::BinanceFutures, "BTCBUSD_210129"),
    ])
}

#[test]
fn futures_fixture_every_line() {
    let reg = futures_registry();
    let btc = reg.get(Exchange::BinanceFutures, "BTCUSDT").unwrap();
    let mut p = VenueParser::new(Feed::BinanceFutures);
    let lines = fixture_lines("binance-futures.jsonl");
    assert_eq!(lines.len(), 14);
    let out: Vec<_> = lines.iter().map(|l| parse(&mut p, l, &reg)).collect();
    for (r, events) in &out {
        assert!(r.is_ok(), "{r:?}");
        assert_books_closed(events);
    }

    // 1: aggTrade without an `a` id in this fixture.
    assert_eq!(out[0].0, Ok(FrameKind::Trade));
    assert_eq!(
        out[0].1,
        vec![Event::Trade(Trade {
            instrument: btc,
            id: None,
            price: dec("10223.74"),
            qty: dec("0.236"),
            side: Side::Buy,
            stamps: stamps_ms(1568693103463),
        })]
    );

    // 2: 24 h ticker gives the last price only.
    assert_eq!(out[1].0, Ok(FrameKind::DerivativeTicker));
    assert_eq!(
        out[1].1,
        vec![Event::DerivativeTicker(DerivativeTicker {
            instrument: btc,
            last_price: Some(dec("10223.74")),
            stamps: stamps_ms(1568693103467),
            ..DerivativeTicker::default()
        })]
    );

    // 3: markPrice without index.
    assert_eq!(
        out[2].1,
        vec![Event::DerivativeTicker(DerivativeTicker {
            instrument: btc,
            mark_price: Some(dec("8291.34697815")),
            funding_rate: Some(dec("0.00010000")),
            funding_ts_ns: Some(1569916800000 * 1_000_000),
            stamps: stamps_ms(1569888003001),
            ..DerivativeTicker::default()
        })]
    );

    // 4: @trade, id `t`, stamped with `T` not `E`.
    assert_eq!(
        out[3].1,
        vec![Event::Trade(Trade {
            instrument: btc,
            id: Some(ShortId::new("10934580")),
            price: dec("7627.60"),
            qty: dec("0.044"),
            side: Side::Buy,
            stamps: stamps_ms(1574381164086),
        })]
    );

    // 5: delta with pu.
    assert_eq!(out[4].0, Ok(FrameKind::BookDelta));
    assert_eq!(
        out[4].1,
        vec![
            Event::BookBegin(BookBegin {
                instrument: btc,
                is_snapshot: false,
                seq: seq(687687944, 687687946, Some(687687946)),
                stamps: stamps_ms(1573948821952),
            }),
            level(BookSide::Bid, "8493.78", "0.162"),
            level(BookSide::Ask, "4096.00000000", "2.42541900"),
            end(btc),
        ]
    );

    // 6: snapshot; 7: delta with no asks.
    assert_eq!(out[5].0, Ok(FrameKind::BookSnapshot));
    assert_eq!(
        out[5].1,
        vec![
            Event::BookBegin(BookBegin {
                instrument: btc,
                is_snapshot: true,
                seq: seq(687687945, 687687945, None),
                stamps: NO_EXCH,
            }),
            level(BookSide::Bid, "8488.36", "1.501"),
            level(BookSide::Ask, "4095.99000000", "2.31652000"),
            level(BookSide::Ask, "4096.00000000", "1.42541900"),
            end(btc),
        ]
    );
    assert_eq!(out[6].1.len(), 3);
    assert_eq!(
        book_seq(&out[6].1),
        seq(687687944, 687687946, Some(687690832))
    );
    assert_eq!(out[6].1[1], level(BookSide::Bid, "8493.78", "0.162"));
    // Line 5 brackets the snapshot of line 6 (U <= L <= u); line 7 repeats its u: stale.
    let snap = book_seq(&out[5].1);
    assert_eq!(
        check_futures_sequence(&snap, true, &book_seq(&out[4].1)),
        SyncVerdict::Apply
    );
    assert_eq!(
        check_futures_sequence(&book_seq(&out[4].1), false, &book_seq(&out[6].1)),
        SyncVerdict::Stale
    );

    // 8: generated openInterest.
    assert_eq!(
        out[7],
        (
            Ok(FrameKind::DerivativeTicker),
            vec![Event::DerivativeTicker(DerivativeTicker {
                instrument: btc,
                open_interest: Some(dec("26286.181")),
                stamps: NO_EXCH,
                ..DerivativeTicker::default()
            })]
        )
    );

    // 9: markPrice@1s with index and funding.
    assert_eq!(
        out[8].1,
        vec![Event::DerivativeTicker(DerivativeTicker {
            instrument: btc,
            mark_price: Some(dec("11857.56000000")),
            index_price: Some(dec("11851.86949091")),
            funding_rate: Some(dec("0.00015640")),
            funding_ts_ns: Some(1597564800000 * 1_000_000),
            stamps: stamps_ms(1597536008000),
            ..DerivativeTicker::default()
        })]
    );

    // 10: insurance-fund trade is off-book.
    assert_eq!(out[9], (Ok(FrameKind::Ignored), vec![]));

    // 11: MARKET trade, buyer maker: sell.
    let Event::Trade(t) = out[10].1[0] else {
        panic!()
    };
    assert_eq!(t.id.unwrap().as_str(), "173525189");
    assert_eq!(
        (t.price, t.qty, t.side),
        (dec("11343.67"), dec("0.467"), Side::Sell)
    );
    assert_eq!(t.stamps.exch_ts_ns, 1596240000519 * 1_000_000);

    // 12: forceOrder BUY, filled qty z and average price ap.
    assert_eq!(
        out[11],
        (
            Ok(FrameKind::Liquidation),
            vec![Event::Liquidation(Liquidation {
                instrument: btc,
                id: None,
                price: dec("4706.04"),
                qty: dec("0.014"),
                side: Side::Buy,
                stamps: stamps_ms(1584059031421),
            })]
        )
    );

    // 13: dated future: T = 0, no funding fields.
    assert_eq!(
        out[12].1,
        vec![Event::DerivativeTicker(DerivativeTicker {
            instrument: reg.get(Exchange::BinanceFutures, "BTCBUSD_210129").unwrap(),
            mark_price: Some(dec("31799.27730000")),
            index_price: Some(dec("31307.03400000")),
            stamps: stamps_ms(1609830121004),
            ..DerivativeTicker::default()
        })]
    );

    // 14: futures bookTicker stamped with T.
    assert_eq!(
        out[13].1,
        vec![Event::BookTicker(BookTicker {
            instrument: btc,
            update_id: Some(185130926750),
            bid_price: Some(dec("33134.42")),
            bid_qty: Some(dec("0.170")),
            ask_price: Some(dec("33139.39")),
            ask_qty: Some(dec("0.380")),
            stamps: stamps_ms(1612137603568),
        })]
    );
}

// ---------------------------------------------------------------- delivery fixtures

#[test]
fn delivery_fixture_every_line() {
    let reg = instruments(&[
        (Exchange::BinanceDelivery, "BTCUSD_200925"),
        (Exchange::BinanceDelivery, "ETCUSDT"),
        (Exchange::BinanceDelivery, "BNBUSD_PERP"),
        // Another exchange's BTCUSD_PERP must not get the COIN-M index.
        (Exchange::BinanceFutures, "BTCUSD_PERP"),
    ]);
    let q = reg.get(Exchange::BinanceDelivery, "BTCUSD_200925").unwrap();
    let mut p = VenueParser::new(Feed::BinanceDelivery);
    let lines = fixture_lines("binance-delivery.jsonl");
    assert_eq!(lines.len(), 12);
    let out: Vec<_> = lines.iter().map(|l| parse(&mut p, l, &reg)).collect();
    for (r, events) in &out {
        assert!(r.is_ok(), "{r:?}");
        assert_books_closed(events);
    }

    // 1: subscription ack.
    assert_eq!(out[0], (Ok(FrameKind::Ack), vec![]));

    // 2: snapshot with `symbol`, stamped with T.
    assert_eq!(out[1].0, Ok(FrameKind::BookSnapshot));
    assert_eq!(
        out[1].1,
        vec![
            Event::BookBegin(BookBegin {
                instrument: q,
                is_snapshot: true,
                seq: seq(37471290, 37471290, None),
                stamps: stamps_ms(1592265600229),
            }),
            level(BookSide::Bid, "9504.8", "181"),
            level(BookSide::Ask, "99999.0", "4090"),
            end(q),
        ]
    );

    // 3: @depth@0ms delta bracketing the snapshot.
    assert_eq!(
        out[2].1,
        vec![
            Event::BookBegin(BookBegin {
                instrument: q,
                is_snapshot: false,
                seq: seq(37471290, 37471292, Some(37471291)),
                stamps: stamps_ms(1592265600422),
            }),
            level(BookSide::Bid, "9498.9", "13"),
            end(q),
        ]
    );
    assert_eq!(
        check_futures_sequence(&book_seq(&out[1].1), true, &book_seq(&out[2].1)),
        SyncVerdict::Apply
    );

    // 4: markPrice with neither index nor funding.
    assert_eq!(
        out[3].1,
        vec![Event::DerivativeTicker(DerivativeTicker {
            instrument: q,
            mark_price: Some(dec("9501.15723333")),
            stamps: stamps_ms(1592265602000),
            ..DerivativeTicker::default()
        })]
    );

    // 5: pair index goes to the pair's COIN-M instruments only.
    assert_eq!(
        out[4],
        (
            Ok(FrameKind::DerivativeTicker),
            vec![Event::DerivativeTicker(DerivativeTicker {
                instrument: q,
                index_price: Some(dec("9429.39675000")),
                stamps: stamps_ms(1592265601001),
                ..DerivativeTicker::default()
            })]
        )
    );

    // 6: pu (37471321) is past line 3's u (37471292): a gap.
    assert_eq!(book_seq(&out[5].1), seq(37471322, 37471322, Some(37471321)));
    assert_eq!(out[5].1[1], level(BookSide::Bid, "9504.8", "181"));
    assert_eq!(
        check_futures_sequence(&book_seq(&out[2].1), false, &book_seq(&out[5].1)),
        SyncVerdict::Gap
    );

    // 7: ticker last price.
    assert_eq!(
        out[6].1,
        vec![Event::DerivativeTicker(DerivativeTicker {
            instrument: q,
            last_price: Some(dec("9504.9")),
            stamps: stamps_ms(1592265616654),
            ..DerivativeTicker::default()
        })]
    );

    // 8: generated openInterest with `time`.
    assert_eq!(
        out[7].1,
        vec![Event::DerivativeTicker(DerivativeTicker {
            instrument: q,
            open_interest: Some(dec("15279")),
            stamps: stamps_ms(1592265372706),
            ..DerivativeTicker::default()
        })]
    );

    // 9: trade in contracts.
    assert_eq!(
        out[8].1,
        vec![Event::Trade(Trade {
            instrument: q,
            id: Some(ShortId::new("173906")),
            price: dec("9504.9"),
            qty: dec("1"),
            side: Side::Buy,
            stamps: stamps_ms(1592265616653),
        })]
    );

    // 10: forceOrder SELL: a long liquidated.
    assert_eq!(
        out[9].1,
        vec![Event::Liquidation(Liquidation {
            instrument: q,
            id: None,
            price: dec("9352.7"),
            qty: dec("3"),
            side: Side::Sell,
            stamps: stamps_ms(1594622954021),
        })]
    );

    // 11: ADL trade is off-book.
    assert_eq!(out[10], (Ok(FrameKind::Ignored), vec![]));

    // 12: bookTicker.
    assert_eq!(
        out[11].1,
        vec![Event::BookTicker(BookTicker {
            instrument: reg.get(Exchange::BinanceDelivery, "BNBUSD_PERP").unwrap(),
            update_id: Some(129067660302),
            bid_price: Some(dec("353.401")),
            bid_qty: Some(dec("271")),
            ask_price: Some(dec("353.477")),
            ask_qty: Some(dec("6")),
            stamps: stamps_ms(1622505600000),
        })]
    );
}

#[test]
fn raw_frames_dispatch_on_event_type() {
    let reg = futures_registry();
    let btc = reg.get(Exchange::BinanceFutures, "BTCUSDT").unwrap();
    let mut p = VenueParser::new(Feed::BinanceFutures);
    let (r, e) = parse(
        &mut p,
        r#"{"e":"aggTrade","E":1,"a":26129,"s":"BTCUSDT","p":"0.01633102","q":"4.7","f":1,"l":2,"T":1591,"m":true}"#,
        &reg,
    );
    assert_eq!(r, Ok(FrameKind::Trade));
    let Event::Trade(t) = e[0] else { panic!() };
    assert_eq!((t.instrument, t.id.unwrap().as_str()), (btc, "26129"));
    assert_eq!(
        (t.side, t.stamps.exch_ts_ns),
        (Side::Sell, 1591 * 1_000_000)
    );
    let (r, e) = parse(
        &mut p,
        r#"{"e":"depthUpdate","E":5,"T":4,"s":"BTCUSDT","U":10,"u":12,"pu":9,"b":[["1.5","2"]],"a":[]}"#,
        &reg,
    );
    assert_eq!(r, Ok(FrameKind::BookDelta));
    assert_eq!(book_seq(&e), seq(10, 12, Some(9)));
    let mut spot = VenueParser::new(Feed::BinanceSpot);
    let spot_reg = spot_registry();
    let (r, e) = parse(
        &mut spot,
        r#"{"u":400900217,"s":"BTCUSDT","b":"25.35","B":"31.21","a":"25.36","A":"40.66"}"#,
        &spot_reg,
    );
    assert_eq!(r, Ok(FrameKind::BookTicker));
    let Event::BookTicker(b) = e[0] else { panic!() };
    assert_eq!(
        (b.update_id, b.ask_qty),
        (Some(400900217), Some(dec("40.66")))
    );
    for (frame, kind) in [
        (
            r#"{"e":"kline","E":1,"s":"BTCUSDT","k":{}}"#,
            FrameKind::Kline,
        ),
        (
            r#"{"e":"24hrMiniTicker","E":1,"s":"BTCUSDT"}"#,
            FrameKind::Ignored,
        ),
        (
            r#"{"lastUpdateId":1,"bids":[],"asks":[]}"#,
            FrameKind::Ignored,
        ),
        (r#"[{"e":"24hrTicker"}]"#, FrameKind::Ignored),
        (r#"{"result":["btcusdt@aggTrade"],"id":3}"#, FrameKind::Ack),
    ] {
        assert_eq!(parse(&mut p, frame, &reg), (Ok(kind), vec![]), "{frame}");
    }
    // Combined streams pinfeed does not normalize.
    for (frame, kind) in [
        (
            r#"{"stream":"btcusdt@kline_1m","data":{"e":"kline"}}"#,
            FrameKind::Kline,
        ),
        (
            r#"{"stream":"btcusdt@depth20@100ms","data":{"e":"depthUpdate"}}"#,
            FrameKind::Ignored,
        ),
        (
            r#"{"stream":"!forceOrder@arr","data":{"e":"forceOrder"}}"#,
            FrameKind::Ignored,
        ),
        (
            r#"{"stream":"btcusdt@forceOrder","data":{"e":"forceOrder","E":1,"o":{"s":"BTCUSDT","S":"SELL","X":"NEW","z":"0","p":"1"}}}"#,
            FrameKind::Ignored,
        ),
    ] {
        assert_eq!(parse(&mut p, frame, &reg), (Ok(kind), vec![]), "{frame}");
    }
}

// ---------------------------------------------------------------- recordings

/// What [`replay`] saw of a recording.
struct Replay {
    /// Frames per kind.
    counts: HashMap<FrameKind, usize>,
    /// The parser, warm.
    parser: VenueParser,
    /// Instruments from `subscriptions_from_wire`.
    reg: Instruments,
    /// Each book message's instrument and sequence, in order.
    books: Vec<(InstrumentId, Sequence)>,
}

/// Parses every received frame of a recording with instruments from
/// `subscriptions_from_wire`; every frame must parse.
fn replay(name: &str, feed: Feed) -> Replay {
    let rec = recording(name);
    let mut reg = Instruments::new();
    for conn in rec.ws_connections() {
        let url = rec.connect_addr(&conn).unwrap();
        let subs = subscriptions_from_wire(feed, url, &rec.sent_frames(&conn));
        assert_eq!(subs.len(), 4, "{url}");
        for s in subs {
            assert_eq!(
                s.channels,
                Channels::BOOK | Channels::TRADES | Channels::BOOK_TICKER
            );
            reg.intern(s.exchange, &s.symbol);
        }
    }
    let mut p = VenueParser::new(feed);
    let mut counts = HashMap::new();
    let mut books = Vec::new();
    for (_, frame) in recv_frames(&rec) {
        let (r, events) = parse(&mut p, &frame, &reg);
        let kind = r.unwrap_or_else(|e| panic!("{e}: {frame}"));
        *counts.entry(kind).or_insert(0) += 1;
        assert_books_closed(&events);
        for e in &events {
            if let Event::BookBegin(b) = e {
                books.push((b.instrument, b.seq));
            }
        }
    }
    Replay {
        counts,
        parser: p,
        reg,
        books,
    }
}

/// Every delta after each REST snapshot must be stale, then apply, never a gap.
fn check_chains(name: &str, feed: Feed, replayed: &mut Replay, rule: crate::model::SyncRule) {
    let Replay {
        parser: p,
        reg,
        books,
        ..
    } = replayed;
    let rec = recording(name);
    let mut snapshots = 0;
    for r in &rec.records {
        let Record::Http { url, data, .. } = r else {
            continue;
        };
        let mut body = data.clone().into_bytes();
        let mut events = Vec::new();
        let kind = p
            .parse_rest(url, &mut body, Stamps::default(), reg, &mut |e| {
                events.push(e)
            })
            .unwrap();
        if !url.contains("/depth") {
            assert_eq!(kind, FrameKind::Ignored, "{url}");
            assert!(events.is_empty());
            continue;
        }
        snapshots += 1;
        assert_eq!(kind, FrameKind::BookSnapshot, "{url}");
        assert_books_closed(&events);
        let body: serde_json::Value = serde_json::from_str(data).unwrap();
        let bids = body["bids"].as_array().unwrap();
        let asks = body["asks"].as_array().unwrap();
        assert_eq!(events.len(), bids.len() + asks.len() + 2, "{url}");
        assert_eq!(
            events[1],
            level(
                BookSide::Bid,
                bids[0][0].as_str().unwrap(),
                bids[0][1].as_str().unwrap()
            )
        );
        let Event::BookBegin(snap) = events[0] else {
            panic!()
        };
        let last_update_id = body["lastUpdateId"].as_u64().unwrap();
        assert_eq!(snap.seq, seq(last_update_id, last_update_id, None));
        if feed == Feed::BinanceFutures {
            let t = body["T"].as_i64().unwrap();
            assert_eq!(snap.stamps.exch_ts_ns, t * 1_000_000);
        }
        let mut last = snap.seq;
        let mut after_snapshot = true;
        let mut verdicts = String::new();
        for (_, s) in books.iter().filter(|(i, _)| *i == snap.instrument) {
            let v = rule(&last, after_snapshot, s);
            verdicts.push(match v {
                SyncVerdict::Apply => 'A',
                SyncVerdict::Stale => 'S',
                SyncVerdict::Gap => 'G',
                SyncVerdict::Reset => 'R',
            });
            if v == SyncVerdict::Apply {
                last = *s;
                after_snapshot = false;
            }
        }
        let applied = verdicts.trim_start_matches('S');
        assert!(
            !applied.is_empty() && applied.chars().all(|c| c == 'A'),
            "{url}: {verdicts}"
        );
    }
    assert_eq!(snapshots, 4);
}

#[test]
fn spot_recording_parses_and_chains() {
    let mut r = replay("BINANCE.jsonl.zst", Feed::BinanceSpot);
    assert_eq!(r.counts.get(&FrameKind::BookDelta), Some(&177));
    assert_eq!(r.counts.get(&FrameKind::BookTicker), Some(&84));
    assert_eq!(r.counts.get(&FrameKind::Trade), Some(&2));
    assert_eq!(r.counts.get(&FrameKind::Kline), Some(&2));
    assert_eq!(r.counts.values().sum::<usize>(), 265);
    check_chains(
        "BINANCE.jsonl.zst",
        Feed::BinanceSpot,
        &mut r,
        check_spot_sequence,
    );
}

#[test]
fn futures_recording_parses_and_chains() {
    let mut r = replay("BINANCE_FUTURES.jsonl.zst", Feed::BinanceFutures);
    assert_eq!(r.counts.get(&FrameKind::BookDelta), Some(&764));
    assert_eq!(r.counts.get(&FrameKind::BookTicker), Some(&613));
    assert_eq!(r.counts.get(&FrameKind::Trade), Some(&91));
    assert_eq!(r.counts.get(&FrameKind::Kline), Some(&67));
    assert_eq!(r.counts.values().sum::<usize>(), 1535);
    check_chains(
        "BINANCE_FUTURES.jsonl.zst",
        Feed::BinanceFutures,
        &mut r,
        check_futures_sequence,
    );
}

// ---------------------------------------------------------------- REST

#[test]
fn rest_bodies() {
    let reg = futures_registry();
    let btc = reg.get(Exchange::BinanceFutures, "BTCUSDT").unwrap();
    let mut p = VenueParser::new(Feed::BinanceFutures);
    let mut rest = |url: &str, body: &str| {
        let mut events = Vec::new();
        let mut body = body.as_bytes().to_vec();
        let r = p.parse_rest(url, &mut body, NO_EXCH, &reg, &mut |e| events.push(e));
        (r, events)
    };
    let (r, e) = rest(
        "https://fapi.binance.com/fapi/v1/openInterest?symbol=BTCUSDT",
        r#"{"openInterest":"10659.509","symbol":"BTCUSDT","time":1589437530011}"#,
    );
    assert_eq!(r, Ok(FrameKind::DerivativeTicker));
    assert_eq!(
        e,
        vec![Event::DerivativeTicker(DerivativeTicker {
            instrument: btc,
            open_interest: Some(dec("10659.509")),
            stamps: Stamps {
                exch_ts_ns: 1589437530011 * 1_000_000,
                ..NO_EXCH
            },
            ..DerivativeTicker::default()
        })]
    );
    let (r, e) = rest(
        "https://fapi.binance.com/fapi/v1/depth?limit=5&symbol=BTCUSDT",
        r#"{"lastUpdateId":7,"E":2,"T":1,"bids":[],"asks":[["2","3"]]}"#,
    );
    assert_eq!(r, Ok(FrameKind::BookSnapshot));
    assert_eq!(e.len(), 3);
    assert_eq!(book_seq(&e), seq(7, 7, None));
    // Error bodies, unknown symbols, bodies of URLs that are not snapshots.
    assert_eq!(
        rest(
            "https://fapi.binance.com/fapi/v1/depth?symbol=XYZ",
            r#"{"code":-1121,"msg":"Invalid symbol."}"#
        ),
        (Err(ParseError::VenueError), vec![])
    );
    assert_eq!(
        rest(
            "https://fapi.binance.com/fapi/v1/depth?symbol=XYZUSDT",
            r#"{"lastUpdateId":7,"bids":[],"asks":[]}"#
        ),
        (Err(ParseError::UnknownSymbol), vec![])
    );
    assert_eq!(
        rest(
            "https://fapi.binance.com/fapi/v1/depth",
            r#"{"lastUpdateId":7,"bids":[],"asks":[]}"#
        ),
        (Err(ParseError::MissingField("symbol")), vec![])
    );
    assert_eq!(
        rest("https://fapi.binance.com/fapi/v1/exchangeInfo", "not json"),
        (Ok(FrameKind::Ignored), vec![])
    );
    assert_eq!(
        rest(
            "https://fapi.binance.com/fapi/v1/depth?symbol=BTCUSDT",
            "[1]"
        ),
        (Err(ParseError::Schema), vec![])
    );
}

// ---------------------------------------------------------------- bad input

#[test]
fn bad_input_gives_the_right_error() {
    let reg = futures_registry();
    let btc = reg.get(Exchange::BinanceFutures, "BTCUSDT").unwrap();
    let mut p = VenueParser::new(Feed::BinanceFutures);
    let cases: &[(&str, ParseError)] = &[
        (r#"{"stream":"btcusdt@aggTrade","data":{"#, ParseError::Json),
        ("", ParseError::Json),
        ("not json", ParseError::Json),
        ("42", ParseError::Schema),
        (r#"{"stream":7,"data":{}}"#, ParseError::Schema),
        (
            r#"{"stream":"btcusdt@trade","data":[1]}"#,
            ParseError::Schema,
        ),
        (
            r#"{"stream":"btcusdt@trade"}"#,
            ParseError::MissingField("data"),
        ),
        (
            r#"{"stream":"btcusdt@trade","data":{"e":"trade","s":"BTCUSDT","t":1,"q":"1"}}"#,
            ParseError::MissingField("p"),
        ),
        (
            r#"{"stream":"btcusdt@trade","data":{"e":"trade","s":"BTCUSDT","t":1,"p":"1.2.3","q":"1"}}"#,
            ParseError::BadNumber(crate::model::DecimalError::Invalid),
        ),
        (
            r#"{"stream":"btcusdt@trade","data":{"e":"trade","s":"BTCUSDT","t":1,"p":"12345678901234567890","q":"1"}}"#,
            ParseError::BadNumber(crate::model::DecimalError::Overflow),
        ),
        (
            r#"{"stream":"btcusdt@trade","data":{"e":"trade","s":"BTCUSDT","t":-1,"p":"1","q":"1"}}"#,
            ParseError::Schema,
        ),
        (
            r#"{"stream":"xyzusdt@trade","data":{"e":"trade","s":"XYZUSDT","t":1,"p":"1","q":"1"}}"#,
            ParseError::UnknownSymbol,
        ),
        (
            r#"{"stream":"btcusdt@foo","data":{"e":"foo"}}"#,
            ParseError::UnknownMessage,
        ),
        (
            r#"{"stream":"nochannel","data":{}}"#,
            ParseError::UnknownMessage,
        ),
        (r#"{"e":"foo","E":1}"#, ParseError::UnknownMessage),
        (r#"{"E":1}"#, ParseError::UnknownMessage),
        (
            r#"{"code":2,"msg":"Invalid request: unknown variant","id":1}"#,
            ParseError::VenueError,
        ),
        (
            r#"{"error":{"code":2,"msg":"Invalid request"},"id":1}"#,
            ParseError::VenueError,
        ),
        (
            r#"{"stream":"btcusdt@depth@100ms","data":{"e":"depthUpdate","E":1,"s":"BTCUSDT","U":1,"u":2,"b":[],"a":{}}}"#,
            ParseError::Schema,
        ),
        (
            r#"{"stream":"btcusdt@depth@100ms","data":{"e":"depthUpdate","E":1,"s":"BTCUSDT","U":1,"b":[],"a":[]}}"#,
            ParseError::MissingField("u"),
        ),
        (
            r#"{"stream":"btcusdt@forceOrder","data":{"e":"forceOrder","E":1,"o":"x"}}"#,
            ParseError::Schema,
        ),
    ];
    for (frame, want) in cases {
        let (r, events) = parse(&mut p, frame, &reg);
        assert_eq!(r, Err(*want), "{frame}");
        assert!(events.is_empty(), "{frame}: {events:?}");
    }
    // A number that overflows fixed point midway through a book message: the message is
    // closed as aborted so the book resyncs.
    let (r, events) = parse(
        &mut p,
        r#"{"stream":"btcusdt@depth@100ms","data":{"e":"depthUpdate","E":1,"s":"BTCUSDT","U":1,"u":2,"pu":0,"b":[["1.5","2"],["1.4","99999999999999999999"]],"a":[]}}"#,
        &reg,
    );
    assert_eq!(
        r,
        Err(ParseError::BadNumber(crate::model::DecimalError::Overflow))
    );
    assert_eq!(events.len(), 3);
    assert_eq!(events[1], level(BookSide::Bid, "1.5", "2"));
    assert_eq!(
        events[2],
        Event::BookEnd(BookEnd {
            instrument: btc,
            checksum: None,
            aborted: true,
        })
    );
    // A level that is not an array.
    let (r, events) = parse(
        &mut p,
        r#"{"stream":"btcusdt@depth@100ms","data":{"e":"depthUpdate","E":1,"s":"BTCUSDT","U":1,"u":2,"pu":0,"b":["x"],"a":[]}}"#,
        &reg,
    );
    assert_eq!(r, Err(ParseError::Schema));
    assert_books_closed(&events);
    // A long lower-case symbol does not overflow the stack buffer.
    let long = "x".repeat(200);
    let frame = format!(
        r#"{{"stream":"{long}@depthSnapshot","data":{{"lastUpdateId":1,"bids":[],"asks":[]}}}}"#
    );
    assert_eq!(
        parse(&mut p, &frame, &reg),
        (Err(ParseError::UnknownSymbol), vec![])
    );
}

/// Real frames, one of each kind, for the truncation and mutation tests.
fn seed_frames() -> Vec<(Feed, String)> {
    let mut frames = Vec::new();
    for (name, feed) in [
        ("binance.jsonl", Feed::BinanceSpot),
        ("binance-futures.jsonl", Feed::BinanceFutures),
        ("binance-delivery.jsonl", Feed::BinanceDelivery),
    ] {
        frames.extend(fixture_lines(name).into_iter().map(|l| (feed, l)));
    }
    frames
}

fn all_registry() -> Instruments {
    let mut reg = Instruments::new();
    for (e, s) in [
        (Exchange::Binance, "BNBBTC"),
        (Exchange::Binance, "BTCUSDT"),
        (Exchange::Binance, "BTCUSDC"),
        (Exchange::Binance, "GNTBTC"),
        (Exchange::BinanceFutures, "BTCUSDT"),
        (Exchange::BinanceFutures, "ETHUSDT"),
        (Exchange::BinanceFutures, "BTCBUSD_210129"),
        (Exchange::BinanceDelivery, "BTCUSD_200925"),
        (Exchange::BinanceDelivery, "ETCUSDT"),
        (Exchange::BinanceDelivery, "BNBUSD_PERP"),
    ] {
        reg.intern(e, s);
    }
    reg
}

#[test]
fn every_prefix_of_real_frames_is_malformed() {
    let reg = all_registry();
    for (feed, frame) in seed_frames() {
        let mut p = VenueParser::new(feed);
        for cut in 0..frame.len() {
            let (r, events) = parse(&mut p, &frame[..cut], &reg);
            assert_eq!(r, Err(ParseError::Json), "{}", &frame[..cut]);
            assert!(events.is_empty());
        }
        // The whole frame still parses after all those failures (scratch reuse).
        assert!(parse(&mut p, &frame, &reg).0.is_ok(), "{frame}");
    }
}

#[derive(Clone, Debug)]
enum Mutation {
    Flip(usize, u8),
    Truncate(usize),
    Insert(usize, u8),
    Remove(usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Mutation::Flip(i, b)),
        any::<usize>().prop_map(Mutation::Truncate),
        (
            any::<usize>(),
            prop::sample::select(b"0123456789.-e\"{}[],:9 ".to_vec())
        )
            .prop_map(|(i, b)| Mutation::Insert(i, b)),
        any::<usize>().prop_map(Mutation::Remove),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn mutated_frames_never_panic(
        pick in any::<prop::sample::Index>(),
        mutations in prop::collection::vec(mutation(), 1..6),
    ) {
        let seeds = seed_frames();
        let (feed, frame) = &seeds[pick.index(seeds.len())];
        let mut bytes = frame.clone().into_bytes();
        for m in mutations {
            let n = bytes.len().max(1);
            match m {
                Mutation::Flip(i, b) if !bytes.is_empty() => bytes[i % n] ^= b,
                Mutation::Truncate(i) => bytes.truncate(i % n),
                Mutation::Insert(i, b) => bytes.insert(i % (bytes.len() + 1), b),
                Mutation::Remove(i) if !bytes.is_empty() => {
                    bytes.remove(i % n);
                }
                _ => {}
            }
        }
        let reg = all_registry();
        let mut p = Parser::new(*feed);
        let mut events = Vec::new();
        let mut frame_bytes = bytes.clone();
        let _ = p.parse_frame(&mut frame_bytes, NO_EXCH, &reg, &mut |e| events.push(e));
        assert_books_closed(&events);
        let mut events = Vec::new();
        let _ = p.parse_rest(
            "https://fapi.binance.com/fapi/v1/depth?symbol=BTCUSDT&limit=1000",
            &mut bytes,
            NO_EXCH,
            &reg,
            &mut |e| events.push(e),
        );
        assert_books_closed(&events);
    }
}

// ---------------------------------------------------------------- connect plan

#[test]
fn connect_plan_round_trips() {
    let subs = vec![
        Subscription {
            exchange: Exchange::BinanceFutures,
            symbol: "BTCUSDT".into(),
            channels: Channels::ALL,
        },
        Subscription {
            exchange: Exchange::BinanceFutures,
            symbol: "ETHUSDT".into(),
            channels: Channels::TRADES | Channels::BOOK_TICKER,
        },
    ];
    let (ws, rest) = Feed::BinanceFutures.default_endpoints();
    let plan = connect_plan(Feed::BinanceFutures, ws, rest, &subs);
    assert_eq!(
        plan.ws_url,
        "wss://fstream.binance.com/stream?streams=btcusdt@depth@100ms/btcusdt@aggTrade/\
         btcusdt@bookTicker/btcusdt@markPrice@1s/btcusdt@ticker/btcusdt@forceOrder/\
         ethusdt@aggTrade/ethusdt@bookTicker"
    );
    assert!(plan.subscribe_frames.is_empty());
    assert_eq!(plan.keepalive, None);
    assert_eq!(
        plan.snapshot_urls,
        vec![(
            "BTCUSDT".to_string(),
            "https://fapi.binance.com/fapi/v1/depth?symbol=BTCUSDT&limit=1000".to_string()
        )]
    );
    assert_eq!(
        subscriptions_from_wire(Feed::BinanceFutures, &plan.ws_url, &[]),
        subs
    );

    // COIN-M and spot paths; spot has no derivative streams.
    let coin = [Subscription {
        exchange: Exchange::BinanceDelivery,
        symbol: "BTCUSD_PERP".into(),
        channels: Channels::BOOK | Channels::LIQUIDATIONS,
    }];
    let (ws, rest) = Feed::BinanceDelivery.default_endpoints();
    let plan = connect_plan(Feed::BinanceDelivery, ws, rest, &coin);
    assert_eq!(
        plan.ws_url,
        "wss://dstream.binance.com/stream?streams=btcusd_perp@depth@100ms/btcusd_perp@forceOrder"
    );
    assert_eq!(
        plan.snapshot_urls[0].1,
        "https://dapi.binance.com/dapi/v1/depth?symbol=BTCUSD_PERP&limit=1000"
    );
    assert_eq!(
        subscriptions_from_wire(Feed::BinanceDelivery, &plan.ws_url, &[]),
        coin
    );
    let spot = [Subscription {
        exchange: Exchange::Binance,
        symbol: "BNBBTC".into(),
        channels: Channels::ALL,
    }];
    let (ws, rest) = Feed::BinanceSpot.default_endpoints();
    let plan = connect_plan(Feed::BinanceSpot, ws, rest, &spot);
    assert_eq!(
        plan.ws_url,
        "wss://stream.binance.com:9443/stream?streams=bnbbtc@depth@100ms/bnbbtc@aggTrade/bnbbtc@bookTicker"
    );
    assert_eq!(
        plan.snapshot_urls[0].1,
        "https://api.binance.com/api/v3/depth?symbol=BNBBTC&limit=1000"
    );
    assert_eq!(
        subscriptions_from_wire(Feed::BinanceSpot, &plan.ws_url, &[]),
        vec![Subscription {
            channels: Channels::BOOK | Channels::TRADES | Channels::BOOK_TICKER,
            ..spot[0].clone()
        }]
    );
    assert_eq!(
        open_interest_url(Feed::BinanceFutures, rest, "btcusdt").as_deref(),
        Some("https://api.binance.com/fapi/v1/openInterest?symbol=BTCUSDT")
    );
    assert_eq!(open_interest_url(Feed::BinanceSpot, rest, "BNBBTC"), None);
}

#[test]
fn subscriptions_from_raw_urls_and_subscribe_frames() {
    let sent = [
        r#"{"method":"SUBSCRIBE","params":["btcusdt@trade","ethusdt@depth","btcusdt@kline_1m","!ticker@arr"],"id":1}"#.to_string(),
        r#"{"method":"LIST_SUBSCRIPTIONS","id":2}"#.to_string(),
        "garbage".to_string(),
    ];
    let subs = subscriptions_from_wire(
        Feed::BinanceSpot,
        "wss://stream.binance.com:9443/ws/btcusdt@bookTicker",
        &sent,
    );
    assert_eq!(
        subs,
        vec![
            Subscription {
                exchange: Exchange::Binance,
                symbol: "BTCUSDT".into(),
                channels: Channels::BOOK_TICKER | Channels::TRADES,
            },
            Subscription {
                exchange: Exchange::Binance,
                symbol: "ETHUSDT".into(),
                channels: Channels::BOOK,
            },
        ]
    );
    // Recorded URLs carry klines: skipped.
    let rec = recording("BINANCE_FUTURES.jsonl.zst");
    let conn = &rec.ws_connections()[0];
    let subs = subscriptions_from_wire(
        Feed::BinanceFutures,
        rec.connect_addr(conn).unwrap(),
        &rec.sent_frames(conn),
    );
    let symbols: Vec<_> = subs.iter().map(|s| s.symbol.as_str()).collect();
    assert_eq!(symbols, ["SUSHIUSDT", "AKROUSDT", "KEEPUSDT", "CTKUSDT"]);
    assert!(subs.iter().all(|s| s.exchange == Exchange::BinanceFutures));
}

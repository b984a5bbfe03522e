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

// ---------------------------------------------------------------- fixtures

/// Parses `line` with the parser of `feed`, registering the fixture symbols.
fn parse_line(feed: Feed, line: &str) -> (Result<FrameKind, ParseError>, Vec<Event>) {
    let instruments = fixture_instruments();
    let mut parser = VenueParser::new(feed);
    testutil::parse(&mut parser, line, &instruments)
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

fn id(exchange: Exchange, symbol: &str) -> InstrumentId {
    fixture_instruments().get(exchange, symbol).unwrap()
}

fn trade(e: &Event) -> Trade {
    match e {
        Event::Trade(t) => *t,
        other => panic!("not a trade: {other:?}"),
    }
}

fn book_ticker(events: &[Event]) -> BookTicker {
    assert_eq!(events.len(), 1, "{events:?}");
    match events[0] {
        Event::BookTicker(t) => t,
        other => panic!("not a book ticker: {other:?}"),
    }
}

fn ticker(events: &[Event]) -> DerivativeTicker {
    assert_eq!(events.len(), 1, "{events:?}");
    match events[0] {
        Event::DerivativeTicker(t) => t,
        other => panic!("not a derivative ticker: {other:?}"),
    }
}

fn liq(events: &[Event]) -> Liquidation {
    assert_eq!(events.len(), 1, "{events:?}");
    match events[0] {
        Event::Liquidation(l) => l,
        other => panic!("not a liquidation: {other:?}"),
    }
}

fn level(side: BookSide, price: &str, qty: &str) -> Event {
    Event::Level(Level {
        side,
        price: d(price),
        qty: d(qty),
    })
}

fn book_end(instrument: InstrumentId) -> Event {
    Event::BookEnd(BookEnd {
        instrument,
        checksum: None,
        aborted: false,
    })
}

#[test]
fn fixture_bybit_has_the_lines_checked_here() {
    assert_eq!(testutil::fixture_lines("bybit.jsonl").len(), 15);
    assert_eq!(testutil::fixture_lines("bybit-spot.jsonl").len(), 6);
}

#[test]
fn fixture_bybit_trades() {
    let lines = testutil::fixture_lines("bybit.jsonl");
    // line 1: inverse BTCUSD, three taker buys in one frame
    let (r, ev) = parse_line(linear_or_inverse("BTCUSD"), &lines[0]);
    assert_eq!(r, Ok(FrameKind::Trade));
    assert_eq!(ev.len(), 3);
    let btcusd = id(Exchange::Bybit, "BTCUSD");
    let t: Vec<Trade> = ev.iter().map(trade).collect();
    assert_eq!(
        t[0],
        Trade {
            instrument: btcusd,
            id: Some(ShortId::new("0cbf2330-952d-5d03-a462-4bf826c867af")),
            price: Decimal::new(2856050, 2),
            qty: Decimal::new(5823, 0),
            side: Side::Buy,
            stamps: stamps_ms(1680673823564),
        }
    );
    assert_eq!(
        t[1].id.unwrap().as_str(),
        "912e56de-9ed6-5f4f-9421-f0ff5a42d84a"
    );
    assert_eq!(t[1].qty, d("3"));
    assert_eq!(t[2].qty, d("5593"));
    assert_eq!(
        t[2].id.unwrap().as_str(),
        "cb558b74-cf72-5157-b53b-93944db336ad"
    );
    assert!(
        t.iter()
            .all(|t| t.price == d("28560.50") && t.side == Side::Buy)
    );

    // line 2: linear LTCUSDT
    let (r, ev) = parse_line(linear_or_inverse("LTCUSDT"), &lines[1]);
    assert_eq!(r, Ok(FrameKind::Trade));
    assert_eq!(
        ev,
        vec![Event::Trade(Trade {
            instrument: id(Exchange::Bybit, "LTCUSDT"),
            id: Some(ShortId::new("4c7b6bdc-b4a3-5716-9c7b-bbe01dc7072f")),
            price: d("94.53"),
            qty: d("0.4"),
            side: Side::Buy,
            stamps: stamps_ms(1680688979983),
        })]
    );
}

#[test]
fn fixture_bybit_book_ticker_from_orderbook_1() {
    let lines = testutil::fixture_lines("bybit.jsonl");
    let btcusdt = id(Exchange::Bybit, "BTCUSDT");
    // line 3: snapshot, both sides
    let (r, ev) = parse_line(Feed::BybitLinear, &lines[2]);
    assert_eq!(r, Ok(FrameKind::BookTicker));
    assert_eq!(
        book_ticker(&ev),
        BookTicker {
            instrument: btcusdt,
            update_id: Some(7003305),
            bid_price: Some(d("28552.00")),
            bid_qty: Some(d("0.047")),
            ask_price: Some(d("28552.10")),
            ask_qty: Some(d("25.433")),
            stamps: stamps_ms(1680673820717),
        }
    );
    // line 4: delta with the bid only: the ask stays unknown
    let (r, ev) = parse_line(Feed::BybitLinear, &lines[3]);
    assert_eq!(r, Ok(FrameKind::BookTicker));
    assert_eq!(
        book_ticker(&ev),
        BookTicker {
            instrument: btcusdt,
            update_id: Some(7003306),
            bid_price: Some(d("28552.00")),
            bid_qty: Some(d("0.012")),
            ask_price: None,
            ask_qty: None,
            stamps: stamps_ms(1680673821137),
        }
    );
    // line 14: delta that deletes the old best (size 0) and lists the new one per side
    let (r, ev) = parse_line(Feed::BybitLinear, &lines[13]);
    assert_eq!(r, Ok(FrameKind::BookTicker));
    assert_eq!(
        book_ticker(&ev),
        BookTicker {
            instrument: btcusdt,
            update_id: Some(1188472),
            bid_price: Some(d("27991.70")),
            bid_qty: Some(d("0.777")),
            ask_price: Some(d("27994.40")),
            ask_qty: Some(d("0.058")),
            stamps: stamps_ms(1682092584425),
        }
    );
}

#[test]
fn fixture_bybit_orderbook_50_snapshot_then_delta() {
    let lines = testutil::fixture_lines("bybit.jsonl");
    let btcperp = id(Exchange::Bybit, "BTCPERP");
    assert_eq!(linear_or_inverse("BTCPERP"), Feed::BybitLinear);
    // line 5
    let (r, ev) = parse_line(Feed::BybitLinear, &lines[4]);
    assert_eq!(r, Ok(FrameKind::BookSnapshot));
    let snapshot_seq = Sequence::Bybit {
        update_id: 20683568,
        cross_seq: 10916156551,
    };
    assert_eq!(
        ev,
        vec![
            Event::BookBegin(BookBegin {
                instrument: btcperp,
                is_snapshot: true,
                seq: snapshot_seq,
                stamps: stamps_ms(1680673821591),
            }),
            level(BookSide::Bid, "28555.20", "0.597"),
            level(BookSide::Ask, "28555.30", "0.225"),
            book_end(btcperp),
        ]
    );
    // line 6
    let (r, ev) = parse_line(Feed::BybitLinear, &lines[5]);
    assert_eq!(r, Ok(FrameKind::BookDelta));
    let delta_seq = Sequence::Bybit {
        update_id: 20683569,
        cross_seq: 10916156553,
    };
    assert_eq!(
        ev,
        vec![
            Event::BookBegin(BookBegin {
                instrument: btcperp,
                is_snapshot: false,
                seq: delta_seq,
                stamps: stamps_ms(1680673821651),
            }),
            level(BookSide::Bid, "28555.20", "0.677"),
            level(BookSide::Ask, "28555.30", "0.029"),
            book_end(btcperp),
        ]
    );
    assert_eq!(
        check_sequence(&snapshot_seq, true, &delta_seq),
        SyncVerdict::Apply
    );
}

#[test]
fn fixture_bybit_tickers() {
    let lines = testutil::fixture_lines("bybit.jsonl");
    // line 7: inverse perpetual snapshot
    let (r, ev) = parse_line(linear_or_inverse("BTCUSD"), &lines[6]);
    assert_eq!(r, Ok(FrameKind::DerivativeTicker));
    assert_eq!(
        ticker(&ev),
        DerivativeTicker {
            instrument: id(Exchange::Bybit, "BTCUSD"),
            last_price: Some(d("28560.00")),
            open_interest: Some(d("449736676")),
            funding_rate: Some(d("0.0001")),
            funding_ts_ns: Some(1680681600000 * 1_000_000),
            predicted_funding_rate: None,
            index_price: Some(d("28566.94")),
            mark_price: Some(d("28560.00")),
            best_bid_price: Some(d("28560.00")),
            best_bid_qty: Some(d("340549")),
            best_ask_price: Some(d("28560.50")),
            best_ask_qty: Some(d("70817")),
            stamps: stamps_ms(1680673822577),
        }
    );
    // line 8: delta: only the changed fields
    let (r, ev) = parse_line(linear_or_inverse("BTCUSD"), &lines[7]);
    assert_eq!(r, Ok(FrameKind::DerivativeTicker));
    assert_eq!(
        ticker(&ev),
        DerivativeTicker {
            instrument: id(Exchange::Bybit, "BTCUSD"),
            open_interest: Some(d("449736674")),
            funding_rate: Some(d("0.0001")),
            best_bid_price: Some(d("28560.00")),
            best_bid_qty: Some(d("340549")),
            best_ask_price: Some(d("28560.50")),
            best_ask_qty: Some(d("70817")),
            stamps: stamps_ms(1680673822776),
            ..DerivativeTicker::default()
        }
    );
    // line 9: inverse future: empty funding fields stay absent
    assert_eq!(linear_or_inverse("BTCUSDU23"), Feed::BybitInverse);
    let (r, ev) = parse_line(Feed::BybitInverse, &lines[8]);
    assert_eq!(r, Ok(FrameKind::DerivativeTicker));
    assert_eq!(
        ticker(&ev),
        DerivativeTicker {
            instrument: id(Exchange::Bybit, "BTCUSDU23"),
            last_price: Some(d("29026.00")),
            open_interest: Some(d("4547176")),
            funding_rate: None,
            funding_ts_ns: None,
            index_price: Some(d("28566.94")),
            mark_price: Some(d("29023.60")),
            best_bid_price: Some(d("29025.00")),
            best_bid_qty: Some(d("3100")),
            best_ask_price: Some(d("29027.00")),
            best_ask_qty: Some(d("3095")),
            stamps: stamps_ms(1680673822099),
            ..DerivativeTicker::default()
        }
    );
    // line 10: delta of the future: best bid/ask only
    let (r, ev) = parse_line(Feed::BybitInverse, &lines[9]);
    assert_eq!(r, Ok(FrameKind::DerivativeTicker));
    assert_eq!(
        ticker(&ev),
        DerivativeTicker {
            instrument: id(Exchange::Bybit, "BTCUSDU23"),
            best_bid_price: Some(d("29025.00")),
            best_bid_qty: Some(d("3100")),
            best_ask_price: Some(d("29027.00")),
            best_ask_qty: Some(d("3095")),
            stamps: stamps_ms(1680673822199),
            ..DerivativeTicker::default()
        }
    );
    // line 11: linear snapshot (tardis "map bybit messages 49", PROTOCOL.md section 5)
    let (r, ev) = parse_line(Feed::BybitLinear, &lines[10]);
    assert_eq!(r, Ok(FrameKind::DerivativeTicker));
    assert_eq!(
        ticker(&ev),
        DerivativeTicker {
            instrument: id(Exchange::Bybit, "BTCUSDT"),
            last_price: Some(d("28550.70")),
            open_interest: Some(d("52774.528")),
            funding_rate: Some(d("0.0001")),
            // 2023-04-05T08:00:00.000Z
            funding_ts_ns: Some(1_680_681_600_000_000_000),
            predicted_funding_rate: None,
            index_price: Some(d("28562.25")),
            mark_price: Some(d("28552.81")),
            best_bid_price: Some(d("28550.70")),
            best_bid_qty: Some(d("2.049")),
            best_ask_price: Some(d("28550.80")),
            best_ask_qty: Some(d("15.328")),
            stamps: stamps_ms(1680673821770),
        }
    );
}

#[test]
fn fixture_bybit_liquidations() {
    let lines = testutil::fixture_lines("bybit.jsonl");
    // line 12: deprecated `liquidation` topic; Bybit Buy = a long liquidated = our Sell
    let (r, ev) = parse_line(Feed::BybitLinear, &lines[11]);
    assert_eq!(r, Ok(FrameKind::Liquidation));
    assert_eq!(
        liq(&ev),
        Liquidation {
            instrument: id(Exchange::Bybit, "GALAUSDT"),
            id: None,
            price: d("0.03803"),
            qty: d("1637"),
            side: Side::Sell,
            stamps: stamps_ms(1673251091822),
        }
    );
    // line 13: inverse, Bybit Sell = a short liquidated = our Buy
    let (r, ev) = parse_line(linear_or_inverse("XRPUSD"), &lines[12]);
    assert_eq!(r, Ok(FrameKind::Liquidation));
    assert_eq!(
        liq(&ev),
        Liquidation {
            instrument: id(Exchange::Bybit, "XRPUSD"),
            id: None,
            price: d("0.5149"),
            qty: d("6949"),
            side: Side::Buy,
            stamps: stamps_ms(1680673944093),
        }
    );
    // line 15: allLiquidation (tardis "map bybit messages 54": side buy, 2025-02-25T10:43:27.110Z)
    let (r, ev) = parse_line(Feed::BybitLinear, &lines[14]);
    assert_eq!(r, Ok(FrameKind::Liquidation));
    assert_eq!(
        liq(&ev),
        Liquidation {
            instrument: id(Exchange::Bybit, "PIPPINUSDT"),
            id: None,
            price: d("0.02456"),
            qty: d("2846"),
            side: Side::Buy,
            stamps: stamps_ms(1740480207110),
        }
    );
}

#[test]
fn fixture_bybit_spot() {
    let lines = testutil::fixture_lines("bybit-spot.jsonl");
    let btcusdt = id(Exchange::BybitSpot, "BTCUSDT");
    // line 1: four taker sells
    let (r, ev) = parse_line(Feed::BybitSpot, &lines[0]);
    assert_eq!(r, Ok(FrameKind::Trade));
    let t: Vec<Trade> = ev.iter().map(trade).collect();
    assert_eq!(t.len(), 4);
    let ids: Vec<&str> = t.iter().map(|t| t.id.as_ref().unwrap().as_str()).collect();
    assert_eq!(
        ids,
        [
            "2290000000050703789",
            "2290000000050703790",
            "2290000000050703791",
            "2290000000050703792"
        ]
    );
    let qtys: Vec<Decimal> = t.iter().map(|t| t.qty).collect();
    assert_eq!(
        qtys,
        [d("0.041732"), d("0.008513"), d("0.042384"), d("0.055371")]
    );
    for t in &t {
        assert_eq!(t.instrument, btcusdt);
        assert_eq!(t.price, d("28165.38"));
        assert_eq!(t.side, Side::Sell);
        assert_eq!(t.stamps, stamps_ms(1680652847524));
    }
    // line 2
    let (r, ev) = parse_line(Feed::BybitSpot, &lines[1]);
    assert_eq!(r, Ok(FrameKind::Trade));
    assert_eq!(
        ev,
        vec![Event::Trade(Trade {
            instrument: id(Exchange::BybitSpot, "BTCUSDC"),
            id: Some(ShortId::new("2240000000041223438")),
            price: d("28528.98"),
            qty: d("0.00433"),
            side: Side::Buy,
            stamps: stamps_ms(1680688979998),
        })]
    );
    // line 3: orderbook.1 snapshot
    let (r, ev) = parse_line(Feed::BybitSpot, &lines[2]);
    assert_eq!(r, Ok(FrameKind::BookTicker));
    assert_eq!(
        book_ticker(&ev),
        BookTicker {
            instrument: btcusdt,
            update_id: Some(20404754),
            bid_price: Some(d("28165.07")),
            bid_qty: Some(d("0.175231")),
            ask_price: Some(d("28165.08")),
            ask_qty: Some(d("0.996816")),
            stamps: stamps_ms(1680652806504),
        }
    );
    // line 4: orderbook.1 delta, bid only
    let (r, ev) = parse_line(Feed::BybitSpot, &lines[3]);
    assert_eq!(r, Ok(FrameKind::BookTicker));
    let bt = book_ticker(&ev);
    assert_eq!(bt.update_id, Some(20404755));
    assert_eq!(
        (bt.bid_price, bt.bid_qty),
        (Some(d("28165.07")), Some(d("0.166754")))
    );
    assert_eq!((bt.ask_price, bt.ask_qty), (None, None));
    assert_eq!(bt.stamps, stamps_ms(1680652806615));
    // line 5: orderbook.50 snapshot
    let (r, ev) = parse_line(Feed::BybitSpot, &lines[4]);
    assert_eq!(r, Ok(FrameKind::BookSnapshot));
    let snapshot_seq = Sequence::Bybit {
        update_id: 59438060,
        cross_seq: 4281282229,
    };
    assert_eq!(
        ev,
        vec![
            Event::BookBegin(BookBegin {
                instrument: btcusdt,
                is_snapshot: true,
                seq: snapshot_seq,
                stamps: stamps_ms(1680652808065),
            }),
            level(BookSide::Bid, "28162.57", "0.07562"),
            level(BookSide::Ask, "28162.58", "0.506829"),
            book_end(btcusdt),
        ]
    );
    // line 6: delta with deletions (size 0)
    let (r, ev) = parse_line(Feed::BybitSpot, &lines[5]);
    assert_eq!(r, Ok(FrameKind::BookDelta));
    let delta_seq = Sequence::Bybit {
        update_id: 59438061,
        cross_seq: 4281282232,
    };
    assert_eq!(
        ev,
        vec![
            Event::BookBegin(BookBegin {
                instrument: btcusdt,
                is_snapshot: false,
                seq: delta_seq,
                stamps: stamps_ms(1680652808085),
            }),
            level(BookSide::Bid, "28161.04", "0.177474"),
            level(BookSide::Bid, "28145.71", "0"),
            level(BookSide::Ask, "28184.33", "0"),
            book_end(btcusdt),
        ]
    );
    assert_eq!(
        check_sequence(&snapshot_seq, true, &delta_seq),
        SyncVerdict::Apply
    );
}

#[test]
fn spot_symbols_do_not_resolve_as_derivatives() {
    // BTCUSDT exists in both categories: each connection resolves its own exchange id
    let spot_line = &testutil::fixture_lines("bybit-spot.jsonl")[2];
    let only_linear = testutil::instruments(&[(Exchange::Bybit, "BTCUSDT")]);
    let mut parser = VenueParser::new(Feed::BybitSpot);
    let (r, ev) = testutil::parse(&mut parser, spot_line, &only_linear);
    assert_eq!(r, Err(ParseError::UnknownSymbol));
    assert!(ev.is_empty());
}

// ---------------------------------------------------------------- control frames

#[test]
fn control_frames() {
    let cases: [(&str, Result<FrameKind, ParseError>); 9] = [
        (
            r#"{"success":true,"ret_msg":"","conn_id":"d8bu1olkndm7crnfs1e0-j6akw","req_id":"","op":"subscribe"}"#,
            Ok(FrameKind::Ack),
        ),
        (
            r#"{"success":true,"ret_msg":"subscribe","conn_id":"x","op":"subscribe"}"#,
            Ok(FrameKind::Ack),
        ),
        (
            r#"{"success":true,"ret_msg":"","conn_id":"x","op":"unsubscribe"}"#,
            Ok(FrameKind::Ack),
        ),
        (
            r#"{"success":true,"ret_msg":"pong","conn_id":"0970e817-426e-429a-a679-ff7f55e0b16a","op":"ping"}"#,
            Ok(FrameKind::Pong),
        ),
        (
            r#"{"req_id":"test","op":"pong","args":["1675418560633"],"conn_id":"cfcb4ocsvfriu23r3er0-1b"}"#,
            Ok(FrameKind::Pong),
        ),
        (
            r#"{"success":false,"ret_msg":"error:handler not found","conn_id":"x","req_id":"","op":"subscribe"}"#,
            Err(ParseError::VenueError),
        ),
        (
            r#"{"success":false,"ret_msg":"Invalid topic","op":"ping"}"#,
            Err(ParseError::VenueError),
        ),
        (
            r#"{"op":"auth","success":true}"#,
            Err(ParseError::UnknownMessage),
        ),
        (r#"{"hello":"world"}"#, Err(ParseError::UnknownMessage)),
    ];
    let instruments = fixture_instruments();
    let mut parser = VenueParser::new(Feed::BybitLinear);
    for (frame, expected) in cases {
        let (r, ev) = testutil::parse(&mut parser, frame, &instruments);
        assert_eq!(r, expected, "{frame}");
        assert!(ev.is_empty());
    }
}

#[test]
fn klines_and_other_topics() {
    let instruments = fixture_instruments();
    let mut parser = VenueParser::new(Feed::BybitLinear);
    let kline = r#"{"topic":"kline.1.BTCUSDT","data":[{"start":1786310760000,"end":1786310819999,"interval":"1","open":"65119.9","close":"65114.3","high":"65119.9","low":"65114.2","volume":"1.576","turnover":"102627.995","confirm":false,"timestamp":1786310818440}],"ts":1786310818440,"type":"snapshot"}"#;
    assert_eq!(
        testutil::parse(&mut parser, kline, &instruments),
        (Ok(FrameKind::Kline), vec![])
    );
    let insurance = r#"{"topic":"insurance.USDT","type":"delta","ts":1,"data":[]}"#;
    assert_eq!(
        testutil::parse(&mut parser, insurance, &instruments),
        (Ok(FrameKind::Ignored), vec![])
    );
    // a ticker delta that changes nothing pinfeed maps: recognised, no event
    let tick = r#"{"topic":"tickers.BTCUSDT","type":"delta","data":{"symbol":"BTCUSDT","tickDirection":"PlusTick"},"cs":1,"ts":2}"#;
    assert_eq!(
        testutil::parse(&mut parser, tick, &instruments),
        (Ok(FrameKind::DerivativeTicker), vec![])
    );
}

// ---------------------------------------------------------------- bad input

#[test]
fn malformed_json_is_a_json_error() {
    let instruments = fixture_instruments();
    let mut parser = VenueParser::new(Feed::BybitLinear);
    for frame in [
        "",
        "not json",
        "{\"topic\":",
        "{\"topic\":\"orderbook.50.BTCPERP\"}}",
    ] {
        let (r, ev) = testutil::parse(&mut parser, frame, &instruments);
        assert_eq!(r, Err(ParseError::Json), "{frame:?}");
        assert!(ev.is_empty());
    }
    // valid JSON, wrong shape
    for frame in ["[1,2]", "42", "\"text\"", r#"{"topic":7}"#] {
        let (r, _) = testutil::parse(&mut parser, frame, &instruments);
        assert_eq!(r, Err(ParseError::Schema), "{frame:?}");
    }
}

#[test]
fn every_prefix_of_real_frames_is_rejected_without_events() {
    let instruments = fixture_instruments();
    let lines = testutil::fixture_lines("bybit.jsonl");
    let mut parser = VenueParser::new(Feed::BybitLinear);
    for line in [&lines[0], &lines[4], &lines[6], &lines[14]] {
        // the whole frame parses
        assert!(testutil::parse(&mut parser, line, &instruments).0.is_ok());
        for cut in 0..line.len() {
            let (r, ev) = testutil::parse(&mut parser, &line[..cut], &instruments);
            assert_eq!(r, Err(ParseError::Json), "{}", &line[..cut]);
            assert!(ev.is_empty());
        }
    }
}

#[test]
fn overflowing_numbers_are_bad_numbers() {
    let instruments = fixture_instruments();
    let mut parser = VenueParser::new(Feed::BybitLinear);
    // in a book: the message is closed as aborted so the book resyncs
    let book = r#"{"topic":"orderbook.50.BTCPERP","type":"delta","ts":1,"data":{"s":"BTCPERP","b":[["28555.20","0.677"],["1234567890123456789.5","1"]],"a":[],"u":2,"seq":3}}"#;
    let (r, ev) = testutil::parse(&mut parser, book, &instruments);
    assert_eq!(
        r,
        Err(ParseError::BadNumber(crate::model::DecimalError::Overflow))
    );
    assert!(matches!(ev.first(), Some(Event::BookBegin(_))));
    assert_eq!(ev.len(), 3);
    assert!(matches!(
        ev.last(),
        Some(Event::BookEnd(BookEnd { aborted: true, .. }))
    ));
    // in a trade frame: the frame yields nothing, not the trades before the bad one
    let trades = r#"{"topic":"publicTrade.BTCUSDT","type":"snapshot","ts":1,"data":[{"T":1,"s":"BTCUSDT","S":"Buy","v":"1","p":"2","i":"a"},{"T":1,"s":"BTCUSDT","S":"Buy","v":"1","p":"0.0000000000000000001","i":"b"}]}"#;
    let (r, ev) = testutil::parse(&mut parser, trades, &instruments);
    assert_eq!(
        r,
        Err(ParseError::BadNumber(crate::model::DecimalError::Overflow))
    );
    assert!(ev.is_empty());
    // a time stamp past u64
    let ticker = r#"{"topic":"tickers.BTCUSDT","type":"delta","data":{"nextFundingTime":"99999999999999999999999"},"ts":1}"#;
    let (r, ev) = testutil::parse(&mut parser, ticker, &instruments);
    assert!(matches!(r, Err(ParseError::BadNumber(_))), "{r:?}");
    assert!(ev.is_empty());
}

#[test]
fn unknown_symbols_and_messages() {
    let instruments = fixture_instruments();
    let mut parser = VenueParser::new(Feed::BybitLinear);
    let unknown_symbol = r#"{"topic":"orderbook.200.XYZUSDT","type":"snapshot","ts":1,"data":{"s":"XYZUSDT","b":[],"a":[],"u":1,"seq":1}}"#;
    assert_eq!(
        testutil::parse(&mut parser, unknown_symbol, &instruments),
        (Err(ParseError::UnknownSymbol), vec![])
    );
    for frame in [
        r#"{"topic":"foo.BTCUSDT","type":"snapshot","ts":1,"data":{}}"#,
        r#"{"topic":"orderbook.deep.BTCUSDT","type":"snapshot","ts":1,"data":{}}"#,
        r#"{"topic":"orderbook","type":"snapshot","ts":1,"data":{}}"#,
    ] {
        let (r, ev) = testutil::parse(&mut parser, frame, &instruments);
        assert_eq!(r, Err(ParseError::UnknownMessage), "{frame}");
        assert!(ev.is_empty());
    }
}

#[test]
fn missing_fields_and_wrong_shapes() {
    let instruments = fixture_instruments();
    let mut parser = VenueParser::new(Feed::BybitLinear);
    let cases: [(&str, ParseError); 7] = [
        (
            r#"{"topic":"orderbook.50.BTCPERP","type":"delta","ts":1,"data":{"s":"BTCPERP","b":[],"a":[],"seq":1}}"#,
            ParseError::MissingField("u"),
        ),
        (
            r#"{"topic":"orderbook.50.BTCPERP","ts":1,"data":{"s":"BTCPERP","b":[],"a":[],"u":1}}"#,
            ParseError::MissingField("type"),
        ),
        (
            r#"{"topic":"orderbook.50.BTCPERP","type":"partial","ts":1,"data":{"b":[],"a":[],"u":1}}"#,
            ParseError::Schema,
        ),
        (
            r#"{"topic":"orderbook.1.BTCUSDT","type":"delta","ts":1}"#,
            ParseError::MissingField("data"),
        ),
        (
            r#"{"topic":"publicTrade.BTCUSDT","type":"snapshot","ts":1,"data":{"p":"1"}}"#,
            ParseError::Schema,
        ),
        (
            r#"{"topic":"publicTrade.BTCUSDT","type":"snapshot","ts":1,"data":[{"T":1,"S":"Buy","v":"1"}]}"#,
            ParseError::MissingField("p"),
        ),
        (
            r#"{"topic":"allLiquidation.PIPPINUSDT","type":"snapshot","ts":1,"data":[{"T":1,"S":"Buy","p":"1"}]}"#,
            ParseError::MissingField("size"),
        ),
    ];
    for (frame, expected) in cases {
        let (r, ev) = testutil::parse(&mut parser, frame, &instruments);
        assert_eq!(r, Err(expected), "{frame}");
        assert!(ev.is_empty(), "{frame}");
    }
}

// ---------------------------------------------------------------- recording

/// Per connection of a recording: its feed, URL and sent frames.
fn recorded_connections(records: &[Record]) -> HashMap<String, (Feed, String, Vec<String>)> {
    let mut conns: HashMap<String, (Feed, String, Vec<String>)> = HashMap::new();
    for r in records {
        match r {
            Record::Connect { conn, addr, .. } => {
                let feed = feed_from_url(addr, "BYBIT").unwrap();
                conns.insert(conn.clone(), (feed, addr.clone(), Vec::new()));
            }
            Record::Send { conn, data, .. } => {
                conns.get_mut(conn).unwrap().2.push(data.clone());
            }
            _ => {}
        }
    }
    conns
}

#[test]
fn recording_subscriptions_from_wire() {
    let rec = testutil::recording("BYBIT.jsonl.zst");
    let conns = recorded_connections(&rec.records);
    let (feed, url, sent) = &conns["BYBIT.ws.2"];
    assert_eq!(*feed, Feed::BybitLinear);
    let linear = subscriptions_from_wire(*feed, url, sent);
    let all_but_bbo =
        Channels::BOOK | Channels::TRADES | Channels::DERIVATIVE_TICKER | Channels::LIQUIDATIONS;
    let expected: Vec<Subscription> = ["BTCUSDT", "DOGEUSDT", "ETHUSDT", "SOLUSDT"]
        .iter()
        .map(|s| Subscription {
            exchange: Exchange::Bybit,
            symbol: s.to_string(),
            channels: all_but_bbo,
        })
        .collect();
    assert_eq!(linear, expected);
    let (feed, url, sent) = &conns["BYBIT.ws.3"];
    assert_eq!(*feed, Feed::BybitSpot);
    let spot = subscriptions_from_wire(*feed, url, sent);
    let expected: Vec<Subscription> = ["BTCUSDT", "ETHUSDT"]
        .iter()
        .map(|s| Subscription {
            exchange: Exchange::BybitSpot,
            symbol: s.to_string(),
            channels: Channels::BOOK | Channels::TRADES | Channels::DERIVATIVE_TICKER,
        })
        .collect();
    assert_eq!(spot, expected);
}

#[test]
fn recording_parses_without_errors_and_book_chains_hold() {
    let rec = testutil::recording("BYBIT.jsonl.zst");
    let conns = recorded_connections(&rec.records);
    let mut instruments = Instruments::new();
    let mut parsers: HashMap<String, Parser> = HashMap::new();
    for (conn, (feed, url, sent)) in &conns {
        for sub in subscriptions_from_wire(*feed, url, sent) {
            instruments.intern(sub.exchange, &sub.symbol);
        }
        parsers.insert(conn.clone(), Parser::new(*feed));
    }
    let btc_linear = instruments.get(Exchange::Bybit, "BTCUSDT").unwrap();
    let btc_spot = instruments.get(Exchange::BybitSpot, "BTCUSDT").unwrap();
    assert_ne!(btc_linear, btc_spot);

    let mut kinds: HashMap<FrameKind, usize> = HashMap::new();
    let mut events: Vec<(String, Event)> = Vec::new();
    for (conn, data) in testutil::recv_frames(&rec) {
        let parser = parsers.get_mut(&conn).unwrap();
        let mut bytes = data.clone().into_bytes();
        let recv = Stamps {
            exch_ts_ns: 0,
            recv_ts_ns: 1,
            recv_mono_ns: 2,
        };
        let r = parser.parse_frame(&mut bytes, recv, &instruments, &mut |e| {
            events.push((conn.clone(), e))
        });
        match r {
            Ok(k) => *kinds.entry(k).or_default() += 1,
            Err(e) => panic!("{conn}: {e}: {data}"),
        }
    }
    let count = |k: FrameKind| kinds.get(&k).copied().unwrap_or(0);
    assert_eq!(count(FrameKind::Ack), 17 + 7);
    assert_eq!(count(FrameKind::Kline), 71 + 25);
    assert_eq!(count(FrameKind::BookSnapshot), 4 + 2);
    assert_eq!(count(FrameKind::BookDelta), 1594 + 548);
    assert_eq!(count(FrameKind::Trade), 102 + 18);
    assert_eq!(count(FrameKind::DerivativeTicker), 4 + 754 + 81);
    assert_eq!(kinds.values().sum::<usize>(), 3227);

    // Per book: a snapshot first, then every delta's `u` is the previous `u` + 1, and
    // the sync rule says Apply for each.
    let mut last: HashMap<InstrumentId, Sequence> = HashMap::new();
    let mut deltas_checked = 0;
    let mut open: Option<InstrumentId> = None;
    for (_, e) in &events {
        match e {
            Event::BookBegin(b) => {
                assert_eq!(open, None);
                open = Some(b.instrument);
                let Sequence::Bybit { update_id, .. } = b.seq else {
                    panic!("{b:?}")
                };
                if b.is_snapshot {
                    last.insert(b.instrument, b.seq);
                    continue;
                }
                let prev = last.get(&b.instrument).expect("delta before snapshot");
                let Sequence::Bybit {
                    update_id: prev_id, ..
                } = *prev
                else {
                    unreachable!()
                };
                assert_eq!(update_id, prev_id + 1);
                assert_eq!(check_sequence(prev, true, &b.seq), SyncVerdict::Apply);
                last.insert(b.instrument, b.seq);
                deltas_checked += 1;
            }
            Event::Level(l) => {
                assert!(open.is_some());
                assert!(l.price.mantissa > 0 && l.qty.mantissa >= 0);
            }
            Event::BookEnd(end) => {
                assert_eq!(open, Some(end.instrument));
                assert!(!end.aborted);
                open = None;
            }
            _ => {}
        }
    }
    assert_eq!(deltas_checked, 1594 + 548);
    assert_eq!(last.len(), 6);

    // the first linear BTCUSDT snapshot
    let first = events
        .iter()
        .position(|(_, e)| matches!(e, Event::BookBegin(b) if b.instrument == btc_linear))
        .unwrap();
    assert_eq!(
        events[first].1,
        Event::BookBegin(BookBegin {
            instrument: btc_linear,
            is_snapshot: true,
            seq: Sequence::Bybit {
                update_id: 15076952,
                cross_seq: 753843911359,
            },
            stamps: Stamps {
                exch_ts_ns: 1786310818129 * 1_000_000,
                recv_ts_ns: 1,
                recv_mono_ns: 2,
            },
        })
    );
    // 200 bids then 200 asks
    let levels: Vec<Level> = events[first + 1..]
        .iter()
        .map_while(|(_, e)| match e {
            Event::Level(l) => Some(*l),
            _ => None,
        })
        .collect();
    assert_eq!(levels.len(), 400);
    assert!(levels[..200].iter().all(|l| l.side == BookSide::Bid));
    assert!(levels[200..].iter().all(|l| l.side == BookSide::Ask));
    assert_eq!(levels[200].price, d("65114.30"));
    assert_eq!(levels[200].qty, d("10.486"));
    assert_eq!(
        events[first + 1].1,
        level(BookSide::Bid, "65114.20", "6.054")
    );

    // spot tickers carry the last price only
    let spot_ticker = events
        .iter()
        .find_map(|(c, e)| match e {
            Event::DerivativeTicker(t) if c == "BYBIT.ws.3" => Some(*t),
            _ => None,
        })
        .unwrap();
    assert_eq!(spot_ticker.last_price, Some(d("65140.5")));
    assert_eq!(spot_ticker.open_interest, None);
    assert_eq!(spot_ticker.mark_price, None);
    assert_eq!(spot_ticker.instrument, btc_spot);

    // the first linear BTCUSDT ticker snapshot carries funding and open interest
    let linear_ticker = events
        .iter()
        .find_map(|(_, e)| match e {
            Event::DerivativeTicker(t) if t.instrument == btc_linear => Some(*t),
            _ => None,
        })
        .unwrap();
    assert_eq!(linear_ticker.open_interest, Some(d("59891.732")));
    assert_eq!(linear_ticker.funding_rate, Some(d("0.0001")));
    assert_eq!(
        linear_ticker.funding_ts_ns,
        Some(1_786_320_000_000 * 1_000_000)
    );
    assert_eq!(linear_ticker.mark_price, Some(d("65117.44")));
    assert_eq!(linear_ticker.index_price, Some(d("65137.76")));
}

// ---------------------------------------------------------------- connect plan

fn sub(exchange: Exchange, symbol: &str, channels: Channels) -> Subscription {
    Subscription {
        exchange,
        symbol: symbol.to_string(),
        channels,
    }
}

#[test]
fn connect_plan_round_trips_linear() {
    let subs = vec![
        sub(Exchange::Bybit, "BTCUSDT", Channels::ALL),
        sub(Exchange::Bybit, "ETHUSDT", Channels::ALL),
        sub(
            Exchange::Bybit,
            "SOLUSDT",
            Channels::BOOK | Channels::TRADES,
        ),
    ];
    let (ws, rest) = Feed::BybitLinear.default_endpoints();
    let plan = connect_plan(Feed::BybitLinear, ws, rest, &subs);
    assert_eq!(plan.ws_url, "wss://stream.bybit.com/v5/public/linear");
    assert!(plan.snapshot_urls.is_empty());
    assert_eq!(
        plan.keepalive,
        Some((r#"{"op":"ping"}"#.to_string(), 20_000))
    );
    // 5 + 5 + 2 topics, at most 10 per frame
    assert_eq!(plan.subscribe_frames.len(), 2);
    assert_eq!(
        plan.subscribe_frames[0],
        r#"{"op":"subscribe","args":["orderbook.200.BTCUSDT","orderbook.1.BTCUSDT","publicTrade.BTCUSDT","tickers.BTCUSDT","allLiquidation.BTCUSDT","orderbook.200.ETHUSDT","orderbook.1.ETHUSDT","publicTrade.ETHUSDT","tickers.ETHUSDT","allLiquidation.ETHUSDT"]}"#
    );
    assert_eq!(
        plan.subscribe_frames[1],
        r#"{"op":"subscribe","args":["orderbook.200.SOLUSDT","publicTrade.SOLUSDT"]}"#
    );
    assert_eq!(
        subscriptions_from_wire(Feed::BybitLinear, &plan.ws_url, &plan.subscribe_frames),
        subs
    );
}

#[test]
fn connect_plan_round_trips_inverse_and_spot() {
    let subs = vec![sub(Exchange::Bybit, "BTCUSD", Channels::ALL)];
    let (ws, rest) = Feed::BybitInverse.default_endpoints();
    let plan = connect_plan(Feed::BybitInverse, ws, rest, &subs);
    assert_eq!(plan.ws_url, "wss://stream.bybit.com/v5/public/inverse");
    assert_eq!(
        subscriptions_from_wire(Feed::BybitInverse, &plan.ws_url, &plan.subscribe_frames),
        subs
    );

    // spot has no tickers with OI/funding and no liquidations: not subscribed
    let spot_subs = vec![
        sub(Exchange::BybitSpot, "BTCUSDT", Channels::ALL),
        sub(Exchange::BybitSpot, "ETHUSDT", Channels::BOOK_TICKER),
    ];
    let (ws, rest) = Feed::BybitSpot.default_endpoints();
    let plan = connect_plan(Feed::BybitSpot, ws, rest, &spot_subs);
    assert_eq!(plan.ws_url, "wss://stream.bybit.com/v5/public/spot");
    assert_eq!(
        plan.subscribe_frames,
        vec![
            r#"{"op":"subscribe","args":["orderbook.200.BTCUSDT","orderbook.1.BTCUSDT","publicTrade.BTCUSDT","orderbook.1.ETHUSDT"]}"#
        ]
    );
    assert_eq!(
        subscriptions_from_wire(Feed::BybitSpot, &plan.ws_url, &plan.subscribe_frames),
        vec![
            sub(
                Exchange::BybitSpot,
                "BTCUSDT",
                Channels::BOOK | Channels::BOOK_TICKER | Channels::TRADES
            ),
            sub(Exchange::BybitSpot, "ETHUSDT", Channels::BOOK_TICKER),
        ]
    );
}

#[test]
fn connect_plan_chunks_many_topics() {
    let subs: Vec<Subscription> = (0..7)
        .map(|i| sub(Exchange::BybitSpot, &format!("COIN{i}USDT"), Channels::ALL))
        .collect();
    let plan = connect_plan(
        Feed::BybitSpot,
        "ws://127.0.0.1:9000/v5/public/spot",
        "",
        &subs,
    );
    assert_eq!(plan.ws_url, "ws://127.0.0.1:9000/v5/public/spot");
    // 7 symbols x 3 spot topics = 21 topics: 10 + 10 + 1
    let sizes: Vec<usize> = plan
        .subscribe_frames
        .iter()
        .map(|f| {
            let v: serde_json::Value = serde_json::from_str(f).unwrap();
            assert_eq!(v["op"], "subscribe");
            v["args"].as_array().unwrap().len()
        })
        .collect();
    assert_eq!(sizes, [10, 10, 1]);
    let back = subscriptions_from_wire(Feed::BybitSpot, &plan.ws_url, &plan.subscribe_frames);
    assert_eq!(back.len(), 7);
    assert!(
        back.iter()
            .all(|s| s.channels == Channels::BOOK | Channels::BOOK_TICKER | Channels::TRADES)
    );
    assert!(
        connect_plan(Feed::BybitLinear, "ws://x", "", &[])
            .subscribe_frames
            .is_empty()
    );
}

#[test]
fn subscriptions_from_wire_skips_what_it_does_not_know() {
    let sent = vec![
        "not json".to_string(),
        r#"{"op":"ping"}"#.to_string(),
        r#"{"op":"unsubscribe","args":["publicTrade.BTCUSDT"]}"#.to_string(),
        r#"{"op":"subscribe","args":["kline.1.BTCUSDT","orderbook.50.BTCUSDT","liquidation.BTCUSDT","orderbook.x.BTCUSDT","weird"]}"#.to_string(),
    ];
    assert_eq!(
        subscriptions_from_wire(Feed::BybitLinear, "wss://x", &sent),
        vec![sub(
            Exchange::Bybit,
            "BTCUSDT",
            Channels::BOOK | Channels::LIQUIDATIONS
        )]
    );
}

#[test]
fn symbols_split_into_linear_and_inverse() {
    for s in [
        "BTCUSDT",
        "BTCPERP",
        "BTCUSDC",
        "BTC-26JUN26",
        "ETHUSDT-27MAR26",
    ] {
        assert_eq!(linear_or_inverse(s), Feed::BybitLinear, "{s}");
        assert_eq!(Feed::for_symbol(Exchange::Bybit, s), Feed::BybitLinear);
    }
    for s in ["BTCUSD", "BTCUSDU23", "XRPUSD", "ETHUSDH26"] {
        assert_eq!(linear_or_inverse(s), Feed::BybitInverse, "{s}");
    }
    assert_eq!(Parser::new(Feed::BybitSpot).feed(), Feed::BybitSpot);
}

#[test]
fn rest_bodies_are_ignored() {
    let mut parser = Parser::new(Feed::BybitLinear);
    let mut body = br#"{"retCode":0}"#.to_vec();
    let r = parser.parse_rest(
        "https://api.bybit.com/v5/market/instruments-info?category=linear",
        &mut body,
        Stamps::default(),
        &Instruments::new(),
        &mut |_e: Event| panic!("no event expected"),
    );
    assert_eq!(r, Ok(FrameKind::Ignored));
}

// ---------------------------------------------------------------- property test

/// Real frames to mutate: every fixture line and the first frames of the recording.
fn seeds() -> &'static [(Feed, String)] {
    static SEEDS: OnceLock<Vec<(Feed, String)>> = OnceLock::new();
    SEEDS.get_or_init(|| {
        let mut seeds: Vec<(Feed, String)> = testutil::fixture_lines("bybit.jsonl")
            .into_iter()
            .map(|l| (Feed::BybitLinear, l))
            .collect();
        seeds.extend(
            testutil::fixture_lines("bybit-spot.jsonl")
                .into_iter()
                .map(|l| (Feed::BybitSpot, l)),
        );
        let rec = testutil::recording("BYBIT.jsonl.zst");
        let mut per_conn: HashMap<String, usize> = HashMap::new();
        for (conn, data) in testutil::recv_frames(&rec) {
            let n = per_conn.entry(conn.clone()).or_default();
            if *n < 40 {
                *n += 1;
                let feed = if conn == "BYBIT.ws.3" {
                    Feed::BybitSpot
                } else {
                    Feed::BybitLinear
                };
                seeds.push((feed, data));
            }
        }
        seeds
    })
}

fn proptest_instruments() -> &'static Instruments {
    static INSTRUMENTS: OnceLock<Instruments> = OnceLock::new();
    INSTRUMENTS.get_or_init(|| {
        let mut reg = fixture_instruments();
        for s in ["ETHUSDT", "SOLUSDT", "DOGEUSDT"] {
            reg.intern(Exchange::Bybit, s);
        }
        reg.intern(Exchange::BybitSpot, "ETHUSDT");
        reg
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    #[test]
    fn mutated_frames_never_panic(
        pick in any::<usize>(),
        flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 0..6),
        insert in proptest::option::of((any::<usize>(), proptest::collection::vec(any::<u8>(), 1..6))),
        cut in proptest::option::of(any::<usize>()),
    ) {
        let seeds = seeds();
        let (feed, frame) = &seeds[pick % seeds.len()];
        let mut bytes = frame.clone().into_bytes();
        for (at, byte) in flips {
            let i = at % bytes.len();
            bytes[i] = byte;
        }
        if let Some((at, extra)) = insert {
            let i = at % (bytes.len() + 1);
            bytes.splice(i..i, extra);
        }
        if let Some(at) = cut {
            bytes.truncate(at % (bytes.len() + 1));
        }
        let mut parser = Parser::new(*feed);
        let mut events = Vec::new();
        let _ = parser.parse_frame(
            &mut bytes,
            Stamps::default(),
            proptest_instruments(),
            &mut |e| events.push(e),
        );
        // book messages stay bracketed whatever happens
        let begins = events.iter().filter(|e| matches!(e, Event::BookBegin(_))).count();
        let ends = events.iter().filter(|e| matches!(e, Event::BookEnd(_))).count();
        prop_assert_eq!(begins, ends);
        if begins > 0 {
            prop_assert!(matches!(events.first(), Some(Event::BookBegin(_))));
            prop_assert!(matches!(events.last(), Some(Event::BookEnd(_))));
        }
    }
}

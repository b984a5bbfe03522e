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
    }
}

fn trade(ev: &Event) -> Trade {
    match ev {
        Event::Trade(t) => *t,
        other => panic!("not a trade: {other:?}"),
    }
}

fn ticker(ev: &[Event]) -> DerivativeTicker {
    assert_eq!(ev.len(), 1);
    match ev[0] {
        Event::DerivativeTicker(t) => t,
        other => panic!("not a ticker: {other:?}"),
    }
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

// ---- fixtures, line by line ----

#[test]
fn fixture_01_trades() {
    let (r, ev, reg) = parse_fixture(1);
    assert_eq!(r, Ok(FrameKind::Trade));
    assert_eq!(ev.len(), 2);
    let t0 = trade(&ev[0]);
    assert_eq!(t0.instrument, id(&reg, "BTC-PERPETUAL"));
    assert_eq!(t0.id.unwrap().as_str(), "39355898");
    assert_eq!(t0.price, d("9598.5"));
    assert_eq!(t0.qty, d("2000.0"));
    assert_eq!(t0.side, Side::Sell);
    assert_eq!(t0.stamps, stamps(1567296022565));
    let t1 = trade(&ev[1]);
    assert_eq!(t1.id.unwrap().as_str(), "39355899");
    assert_eq!(t1.price, d("9598.5"));
    assert_eq!(t1.qty, d("50.0"));
    assert_eq!(t1.side, Side::Sell);
}

#[test]
fn fixture_02_quote() {
    let (r, ev, reg) = parse_fixture(2);
    assert_eq!(r, Ok(FrameKind::BookTicker));
    assert_eq!(
        ev,
        vec![Event::BookTicker(BookTicker {
            instrument: id(&reg, "BTC-PERPETUAL"),
            update_id: None,
            bid_price: Some(d("9600.5")),
            bid_qty: Some(d("162800.0")),
            ask_price: Some(d("9601.0")),
            ask_qty: Some(d("49710.0")),
            stamps: stamps(1567296000183),
        })]
    );
}

#[test]
fn fixture_03_book_without_type_or_prev_is_snapshot() {
    let (r, ev, reg) = parse_fixture(3);
    assert_eq!(r, Ok(FrameKind::BookSnapshot));
    let (begin, levels, end) = book(&ev);
    assert_eq!(begin.instrument, id(&reg, "ETH-PERPETUAL"));
    assert!(begin.is_snapshot);
    assert_eq!(begin.seq, seq(1776289261, None));
    assert_eq!(begin.stamps, stamps(1564617600273));
    assert_eq!(
        levels,
        vec![
            lvl(BookSide::Bid, "217.8", "1895.0"),
            lvl(BookSide::Bid, "217.75", "712.0"),
            lvl(BookSide::Ask, "218.6", "179803.0"),
            lvl(BookSide::Ask, "218.65", "7887.0"),
        ]
    );
    assert!(!end.aborted);
    assert_eq!(end.checksum, None);
}

#[test]
fn fixture_04_book_change_with_delete() {
    let (r, ev, reg) = parse_fixture(4);
    assert_eq!(r, Ok(FrameKind::BookDelta));
    let (begin, levels, end) = book(&ev);
    assert_eq!(begin.instrument, id(&reg, "ETH-PERPETUAL"));
    assert!(!begin.is_snapshot);
    assert_eq!(begin.seq, seq(1776294623, Some(1776294621)));
    assert_eq!(begin.stamps, stamps(1564617654272));
    assert_eq!(
        levels,
        vec![
            Level {
                side: BookSide::Bid,
                price: d("217.8"),
                qty: Decimal::ZERO
            },
            lvl(BookSide::Ask, "219.2", "64903.0"),
            lvl(BookSide::Ask, "219.1", "19343.0"),
        ]
    );
    assert!(!end.aborted);
}

#[test]
fn fixture_05_perpetual_ticker_with_funding() {
    let (r, ev, reg) = parse_fixture(5);
    assert_eq!(r, Ok(FrameKind::DerivativeTicker));
    assert_eq!(
        ticker(&ev),
        DerivativeTicker {
            instrument: id(&reg, "BTC-PERPETUAL"),
            last_price: Some(d("10095.5")),
            open_interest: Some(d("66128281")),
            funding_rate: Some(d("0.0")),
            funding_ts_ns: None,
            predicted_funding_rate: None,
            index_price: Some(d("10091.15")),
            mark_price: Some(d("10094.1")),
            best_bid_price: Some(d("10095.0")),
            best_bid_qty: Some(d("7000.0")),
            best_ask_price: Some(d("10095.5")),
            best_ask_qty: Some(d("250.0")),
            stamps: stamps(1564617604229),
        }
    );
}

#[test]
fn fixture_06_perpetual_ticker_funding_8h_not_normalized() {
    let (r, ev, reg) = parse_fixture(6);
    assert_eq!(r, Ok(FrameKind::DerivativeTicker));
    let t = ticker(&ev);
    assert_eq!(t.instrument, id(&reg, "BTC-PERPETUAL"));
    assert_eq!(t.last_price, Some(d("8304.5")));
    assert_eq!(t.open_interest, Some(d("84844461")));
    // current_funding, not funding_8h (-0.00008477)
    assert_eq!(t.funding_rate, Some(d("0.0")));
    assert_eq!(t.index_price, Some(d("8305.94")));
    assert_eq!(t.mark_price, Some(d("8304.39")));
    assert_eq!(t.best_bid_price, Some(d("8304.0")));
    assert_eq!(t.best_bid_qty, Some(d("267900.0")));
    assert_eq!(t.best_ask_price, Some(d("8304.5")));
    assert_eq!(t.best_ask_qty, Some(d("5260.0")));
    assert_eq!(t.stamps, stamps(1569888003897));
}

#[test]
fn fixture_07_closed_option_ticker() {
    let (r, ev, reg) = parse_fixture(7);
    assert_eq!(r, Ok(FrameKind::DerivativeTicker));
    let t = ticker(&ev);
    assert_eq!(t.instrument, id(&reg, "BTC-8JUN20-8750-P"));
    assert_eq!(t.last_price, Some(d("0.0005")));
    assert_eq!(t.open_interest, Some(d("0.0")));
    assert_eq!(t.funding_rate, None, "options have no current_funding");
    assert_eq!(t.index_price, Some(d("9729.25")));
    assert_eq!(t.mark_price, Some(d("0.0")));
    assert_eq!(t.best_bid_price, Some(d("0.0")));
    assert_eq!(t.best_bid_qty, Some(d("0.0")));
    assert_eq!(t.best_ask_price, Some(d("0.0")));
    assert_eq!(t.best_ask_qty, Some(d("0.0")));
    assert_eq!(t.stamps, stamps(1591603200048));
}

#[test]
fn fixture_08_option_ticker_greeks_ignored() {
    let (r, ev, reg) = parse_fixture(8);
    assert_eq!(r, Ok(FrameKind::DerivativeTicker));
    let t = ticker(&ev);
    assert_eq!(t.instrument, id(&reg, "BTC-5JUN20-9250-C"));
    assert_eq!(t.last_price, Some(d("0.038")));
    assert_eq!(t.open_interest, Some(d("533.2")));
    assert_eq!(t.funding_rate, None);
    assert_eq!(t.index_price, Some(d("9434.36")));
    assert_eq!(t.mark_price, Some(d("0.03847784")));
    assert_eq!(t.best_bid_price, Some(d("0.0365")));
    assert_eq!(t.best_bid_qty, Some(d("15.4")));
    assert_eq!(t.best_ask_price, Some(d("0.04")));
    assert_eq!(t.best_ask_qty, Some(d("4.8")));
    assert_eq!(t.stamps, stamps(1590969652595));
}

#[test]
fn fixture_09_option_ticker_null_last_price() {
    let (r, ev, reg) = parse_fixture(9);
    assert_eq!(r, Ok(FrameKind::DerivativeTicker));
    let t = ticker(&ev);
    assert_eq!(t.instrument, id(&reg, "ETH-5JUN20-310-P"));
    assert_eq!(t.last_price, None);
    assert_eq!(t.open_interest, Some(d("0.0")));
    assert_eq!(t.index_price, Some(d("231.54")));
    assert_eq!(t.mark_price, Some(d("0.33859")));
    assert_eq!(t.best_bid_price, Some(d("0.0")));
    assert_eq!(t.stamps, stamps(1590969597073));
}

#[test]
fn fixture_10_option_ticker() {
    let (r, ev, reg) = parse_fixture(10);
    assert_eq!(r, Ok(FrameKind::DerivativeTicker));
    let t = ticker(&ev);
    assert_eq!(t.instrument, id(&reg, "ETH-10JUN20-270-C"));
    assert_eq!(t.last_price, None);
    assert_eq!(t.mark_price, Some(d("0.000632")));
    assert_eq!(t.index_price, Some(d("243.98")));
    assert_eq!(t.open_interest, Some(d("0.0")));
    assert_eq!(t.funding_rate, None);
    assert_eq!(t.stamps, stamps(1591608298178));
}

#[test]
fn fixture_11_taker_liquidation_takes_trade_direction() {
    let (r, ev, reg) = parse_fixture(11);
    assert_eq!(r, Ok(FrameKind::Trade));
    assert_eq!(ev.len(), 2);
    let t = trade(&ev[0]);
    assert_eq!(t.instrument, id(&reg, "BTC-PERPETUAL"));
    assert_eq!(t.id.unwrap().as_str(), "66460463");
    assert_eq!(t.price, d("4469.5"));
    assert_eq!(t.qty, d("1120"));
    assert_eq!(t.side, Side::Sell);
    assert_eq!(t.stamps, stamps(1584058044032));
    let Event::Liquidation(l) = ev[1] else {
        panic!("no liquidation: {ev:?}")
    };
    assert_eq!(l.instrument, t.instrument);
    assert_eq!(l.id.unwrap().as_str(), "66460463");
    assert_eq!(l.price, d("4469.5"));
    assert_eq!(l.qty, d("1120"));
    // "T": the taker sold to close a long
    assert_eq!(l.side, Side::Sell);
    assert_eq!(l.stamps, stamps(1584058044032));
}

#[test]
fn fixture_12_maker_liquidation_takes_opposite_side() {
    let (r, ev, reg) = parse_fixture(12);
    assert_eq!(r, Ok(FrameKind::Trade));
    assert_eq!(ev.len(), 2);
    let t = trade(&ev[0]);
    assert_eq!(t.instrument, id(&reg, "BTC-PERPETUAL"));
    assert_eq!(t.id.unwrap().as_str(), "66460626");
    assert_eq!(t.side, Side::Buy);
    let Event::Liquidation(l) = ev[1] else {
        panic!("no liquidation: {ev:?}")
    };
    // PROTOCOL.md section 5, "map deribit messages 12": side sell, price 4458.5, 2500
    assert_eq!(l.id.unwrap().as_str(), "66460626");
    assert_eq!(l.price, d("4458.5"));
    assert_eq!(l.qty, d("2500"));
    assert_eq!(l.side, Side::Sell);
    assert_eq!(l.stamps, stamps(1584058067675));
}

#[test]
fn fixture_13_typed_change() {
    let (r, ev, reg) = parse_fixture(13);
    assert_eq!(r, Ok(FrameKind::BookDelta));
    let (begin, levels, end) = book(&ev);
    assert_eq!(begin.instrument, id(&reg, "ETH-10SEP21-3350-P"));
    assert!(!begin.is_snapshot);
    assert_eq!(begin.seq, seq(14617771529, Some(0)));
    assert_eq!(begin.stamps, stamps(1631026812566));
    assert_eq!(
        levels,
        vec![
            lvl(BookSide::Bid, "0.019", "93.0"),
            lvl(BookSide::Ask, "0.037", "93.0"),
        ]
    );
    assert!(!end.aborted);
}

#[test]
fn fixture_14_typed_snapshot_drops_its_prev_change_id() {
    let (r, ev, reg) = parse_fixture(14);
    assert_eq!(r, Ok(FrameKind::BookSnapshot));
    let (begin, levels, end) = book(&ev);
    assert_eq!(begin.instrument, id(&reg, "LINK_USDC-PERPETUAL"));
    assert!(begin.is_snapshot);
    // the message carries prev_change_id 20; a snapshot starts the chain regardless
    assert_eq!(begin.seq, seq(1232767964, None));
    assert_eq!(begin.stamps, stamps(1654041599955));
    assert_eq!(levels.len(), 5);
    assert!(levels.iter().all(|l| l.side == BookSide::Bid));
    assert_eq!(levels[0], lvl(BookSide::Bid, "7.562", "34.0"));
    assert_eq!(levels[4], lvl(BookSide::Bid, "7.558", "660.0"));
    assert!(!end.aborted);
}

#[test]
fn fixture_15_straddle_ticker() {
    let (r, ev, reg) = parse_fixture(15);
    assert_eq!(r, Ok(FrameKind::DerivativeTicker));
    let t = ticker(&ev);
    assert_eq!(t.instrument, id(&reg, "BTC-STRD-30SEP22-20000"));
    assert_eq!(t.last_price, None);
    assert_eq!(t.mark_price, Some(d("0.1922")));
    assert_eq!(t.index_price, Some(d("21478.45")));
    assert_eq!(t.open_interest, Some(d("0.0")));
    assert_eq!(t.stamps, stamps(1661274180291));
}

#[test]
fn fixture_16_future_spread_ticker_negative_prices() {
    let (r, ev, reg) = parse_fixture(16);
    assert_eq!(r, Ok(FrameKind::DerivativeTicker));
    let t = ticker(&ev);
    assert_eq!(t.instrument, id(&reg, "BTC-FS-30SEP22_PERP"));
    assert_eq!(t.last_price, Some(d("-13.5")));
    assert_eq!(t.open_interest, Some(d("0")));
    assert_eq!(t.funding_rate, None);
    assert_eq!(t.mark_price, Some(d("10.12")));
    assert_eq!(t.index_price, Some(d("19320.68")));
    assert_eq!(t.best_bid_price, Some(d("-7.0")));
    assert_eq!(t.best_bid_qty, Some(d("300000.0")));
    assert_eq!(t.best_ask_price, Some(d("-5.0")));
    assert_eq!(t.best_ask_qty, Some(d("300000.0")));
    assert_eq!(t.stamps, stamps(1662681659203));
}

#[test]
fn fixture_17_call_spread_ticker() {
    let (r, ev, reg) = parse_fixture(17);
    assert_eq!(r, Ok(FrameKind::DerivativeTicker));
    let t = ticker(&ev);
    assert_eq!(t.instrument, id(&reg, "BTC-CSR12-16SEP22-21000_23000"));
    assert_eq!(t.last_price, None);
    assert_eq!(t.mark_price, Some(d("0.0053")));
    assert_eq!(t.index_price, Some(d("19322.48")));
    assert_eq!(t.best_bid_price, Some(d("0.003")));
    assert_eq!(t.best_bid_qty, Some(d("18.0")));
    assert_eq!(t.best_ask_price, Some(d("0.008")));
    assert_eq!(t.best_ask_qty, Some(d("18.0")));
    assert_eq!(t.stamps, stamps(1662681656186));
}

#[test]
fn fixture_18_decimal_strike_symbol_resolves_upper_case() {
    let (r, ev, reg) = parse_fixture(18);
    assert_eq!(r, Ok(FrameKind::DerivativeTicker));
    let t = ticker(&ev);
    assert_eq!(t.instrument, id(&reg, "MATIC_USDC-9MAR24-1D02-C"));
    assert_eq!(t.last_price, None);
    assert_eq!(t.mark_price, Some(d("0.139")));
    assert_eq!(t.index_price, Some(d("1.1367")));
    assert_eq!(t.open_interest, Some(d("0.0")));
    assert_eq!(t.best_bid_price, Some(d("0.0")));
    assert_eq!(t.best_ask_qty, Some(d("0.0")));
    assert_eq!(t.stamps, stamps(1709809020064));
    // and exactly as sent, when interned that way
    let reg = testutil::instruments(&[(X, "MATIC_USDC-9MAR24-1d02-C")]);
    let (r, ev) = testutil::parse(&mut parser(), &fixture(18), &reg);
    assert_eq!(r, Ok(FrameKind::DerivativeTicker));
    assert_eq!(ev[0].instrument(), InstrumentId(0));
}

// ---- other frame kinds ----

fn parse_str(frame: &str) -> (Result<FrameKind, ParseError>, Vec<Event>) {
    testutil::parse(&mut parser(), frame, &fixture_instruments())
}

#[test]
fn control_frames() {
    let cases = [
        (
            r#"{"jsonrpc":"2.0","id":1,"result":["book.BTC-PERPETUAL.100ms"],"usIn":1,"usOut":2,"usDiff":1,"testnet":false}"#,
            Ok(FrameKind::Ack),
        ),
        (
            r#"{"jsonrpc":"2.0","id":2,"result":"ok"}"#,
            Ok(FrameKind::Ack),
        ),
        (
            r#"{"jsonrpc":"2.0","id":3,"result":{"version":"1.2.26"}}"#,
            Ok(FrameKind::Pong),
        ),
        (
            r#"{"jsonrpc":"2.0","method":"heartbeat","params":{"type":"test_request"}}"#,
            Ok(FrameKind::Heartbeat),
        ),
        (
            r#"{"jsonrpc":"2.0","method":"heartbeat","params":{"type":"heartbeat"}}"#,
            Ok(FrameKind::Heartbeat),
        ),
        (
            r#"{"jsonrpc":"2.0","id":1,"error":{"message":"Invalid params","code":-32602}}"#,
            Err(ParseError::VenueError),
        ),
        (
            r#"{"jsonrpc":"2.0","method":"subscription","params":{"channel":"chart.trades.BTC-PERPETUAL.1","data":{"tick":1,"open":1.0}}}"#,
            Ok(FrameKind::Kline),
        ),
        (
            r#"{"jsonrpc":"2.0","method":"subscription","params":{"channel":"deribit_price_index.btc_usd","data":{"timestamp":1,"price":6521.17,"index_name":"btc_usd"}}}"#,
            Ok(FrameKind::Ignored),
        ),
        (
            r#"{"jsonrpc":"2.0","method":"subscription","params":{"channel":"perpetual.BTC-PERPETUAL.100ms","data":{"interest":0.0}}}"#,
            Ok(FrameKind::Ignored),
        ),
    ];
    for (frame, want) in cases {
        let (r, ev) = parse_str(frame);
        assert_eq!(r, want, "{frame}");
        assert!(ev.is_empty(), "{frame}");
    }
    // the frame the ingest thread answers test_requests with is a public/test request
    let v: serde_json::Value = serde_json::from_str(PUBLIC_TEST_FRAME).unwrap();
    assert_eq!(v["method"], "public/test");
}

#[test]
fn grouped_book_is_a_snapshot() {
    let frame = r#"{"jsonrpc":"2.0","method":"subscription","params":{"channel":"book.BTC-PERPETUAL.1.10.100ms","data":{"timestamp":1554375447971,"instrument_name":"BTC-PERPETUAL","change_id":109615,"bids":[[160,40]],"asks":[[161,20],[162.5,1.5]]}}}"#;
    let (r, ev) = parse_str(frame);
    assert_eq!(r, Ok(FrameKind::BookSnapshot));
    let (begin, levels, end) = book(&ev);
    assert!(begin.is_snapshot);
    assert_eq!(begin.seq, seq(109615, None));
    assert_eq!(begin.stamps, stamps(1554375447971));
    assert_eq!(
        levels,
        vec![
            lvl(BookSide::Bid, "160", "40"),
            lvl(BookSide::Ask, "161", "20"),
            lvl(BookSide::Ask, "162.5", "1.5"),
        ]
    );
    assert!(!end.aborted);
    // without change_id
    let frame = r#"{"jsonrpc":"2.0","method":"subscription","params":{"channel":"book.BTC-PERPETUAL.none.1.100ms","data":{"timestamp":1,"instrument_name":"BTC-PERPETUAL","bids":[],"asks":[]}}}"#;
    let (r, ev) = parse_str(frame);
    assert_eq!(r, Ok(FrameKind::BookSnapshot));
    let (begin, levels, _) = book(&ev);
    assert_eq!(begin.seq, Sequence::None);
    assert!(levels.is_empty());
}

#[test]
fn currency_wide_trades_skip_other_instruments() {
    let frame = r#"{"jsonrpc":"2.0","method":"subscription","params":{"channel":"trades.future.BTC.100ms","data":[{"trade_id":"1","instrument_name":"BTC-27JUN25","timestamp":5,"price":1.5,"amount":10,"direction":"buy"},{"trade_id":"2","instrument_name":"BTC-PERPETUAL","timestamp":6,"price":2.5,"amount":20,"direction":"sell","liquidation":"MT"}]}}"#;
    let (r, ev) = parse_str(frame);
    assert_eq!(r, Ok(FrameKind::Trade));
    assert_eq!(ev.len(), 2);
    let t = trade(&ev[0]);
    assert_eq!(t.id.unwrap().as_str(), "2");
    assert_eq!(t.price, d("2.5"));
    assert_eq!(t.side, Side::Sell);
    assert_eq!(t.stamps, stamps(6));
    // "MT": one liquidation, the maker's side (opposite of the taker's), as tardis does
    let Event::Liquidation(l) = ev[1] else {
        panic!("{ev:?}")
    };
    assert_eq!(l.side, Side::Buy);
    // nothing interned in it
    let frame = r#"{"jsonrpc":"2.0","method":"subscription","params":{"channel":"trades.option.ETH.100ms","data":[{"trade_id":"1","instrument_name":"ETH-1JAN30-1-C","timestamp":5,"price":1.5,"amount":10,"direction":"buy"}]}}"#;
    assert_eq!(parse_str(frame), (Ok(FrameKind::Ignored), vec![]));
}

// ---- bad input ----

#[test]
fn malformed_and_truncated_frames_are_json_errors() {
    assert_eq!(parse_str("{").0, Err(ParseError::Json));
    assert_eq!(parse_str("not json").0, Err(ParseError::Json));
    assert_eq!(parse_str("").0, Err(ParseError::Json));
    for i in [1, 3, 4, 5, 12, 14] {
        let frame = fixture(i);
        for end in 0..frame.len() {
            let (r, _) = parse_str(&frame[..end]);
            assert_eq!(r, Err(ParseError::Json), "line {i} cut at {end}");
        }
    }
}

#[test]
fn unexpected_shapes() {
    assert_eq!(parse_str("[1,2]").0, Err(ParseError::Schema));
    assert_eq!(parse_str("42").0, Err(ParseError::Schema));
    // unknown book action
    let frame = fixture(4).replace("\"change\"", "\"move\"");
    let (r, ev) = parse_str(&frame);
    assert_eq!(r, Err(ParseError::Schema));
    let (_, _, end) = book(&ev);
    assert!(
        end.aborted,
        "a book message failing midway is closed as aborted"
    );
    // unknown type
    let frame = fixture(13).replace("\"type\":\"change\"", "\"type\":\"partial\"");
    assert_eq!(parse_str(&frame), (Err(ParseError::Schema), vec![]));
    // unknown direction, unknown liquidation flag
    let frame = fixture(11).replace("\"sell\"", "\"up\"");
    assert_eq!(parse_str(&frame), (Err(ParseError::Schema), vec![]));
    let frame = fixture(11).replace("\"T\"", "\"X\"");
    assert_eq!(parse_str(&frame), (Err(ParseError::Schema), vec![]));
    // a change without prev_change_id
    let frame = fixture(13).replace("\"prev_change_id\":0,", "");
    assert_eq!(
        parse_str(&frame),
        (Err(ParseError::MissingField("prev_change_id")), vec![])
    );
    // missing fields
    let frame = fixture(3).replace("\"change_id\"", "\"xchange_id\"");
    assert_eq!(
        parse_str(&frame),
        (Err(ParseError::MissingField("change_id")), vec![])
    );
    let frame = fixture(1).replace("\"price\"", "\"xprice\"");
    assert_eq!(parse_str(&frame).0, Err(ParseError::MissingField("price")));
}

#[test]
fn overflowing_numbers_are_bad_numbers() {
    let frame = fixture(1).replace("\"amount\":2000.0", "\"amount\":1e30");
    assert_eq!(
        parse_str(&frame),
        (Err(ParseError::BadNumber(DecimalError::Overflow)), vec![])
    );
    // mid-book: the message is closed as aborted
    let frame = fixture(3).replace("[\"new\",218.65,7887.0]", "[\"new\",218.65,1e30]");
    let (r, ev) = parse_str(&frame);
    assert_eq!(r, Err(ParseError::BadNumber(DecimalError::Overflow)));
    let (_, levels, end) = book(&ev);
    assert_eq!(levels.len(), 3);
    assert!(end.aborted);
    // a change_id past u64: as text it overflows; as a bare JSON integer simd-json
    // itself refuses it (no big-integer support), which is a JSON error
    let frame = fixture(3).replace("1776289261", "\"99999999999999999999999\"");
    assert_eq!(
        parse_str(&frame),
        (Err(ParseError::BadNumber(DecimalError::Overflow)), vec![])
    );
    let frame = fixture(3).replace("1776289261", "99999999999999999999999");
    assert_eq!(parse_str(&frame), (Err(ParseError::Json), vec![]));
    // a negative change_id is not a change id
    let frame = fixture(3).replace("1776289261", "-1");
    assert_eq!(parse_str(&frame), (Err(ParseError::Schema), vec![]));
}

#[test]
fn unknown_symbols_and_messages() {
    let reg = testutil::instruments(&[(X, "BTC-PERPETUAL")]);
    for i in [3, 13, 14, 7] {
        let (r, ev) = testutil::parse(&mut parser(), &fixture(i), &reg);
        assert_eq!(r, Err(ParseError::UnknownSymbol), "line {i}");
        assert!(ev.is_empty());
    }
    let reg = testutil::instruments(&[(X, "ETH-PERPETUAL")]);
    let (r, ev) = testutil::parse(&mut parser(), &fixture(1), &reg);
    assert_eq!((r, ev), (Err(ParseError::UnknownSymbol), vec![]));
    let unknown = [
        r#"{"jsonrpc":"2.0","method":"subscription","params":{"channel":"bogus.BTC-PERPETUAL","data":{}}}"#,
        r#"{"jsonrpc":"2.0","method":"subscription","params":{"channel":"book.BTC-PERPETUAL","data":{}}}"#,
        r#"{"jsonrpc":"2.0","method":"notify","params":{}}"#,
        r#"{"jsonrpc":"2.0"}"#,
    ];
    for frame in unknown {
        assert_eq!(
            parse_str(frame).0,
            Err(ParseError::UnknownMessage),
            "{frame}"
        );
    }
}

#[test]
fn rest_bodies() {
    let mut p = Parser::new(Feed::Deribit);
    let reg = Instruments::new();
    let mut sink = |_e: Event| panic!("no events from REST");
    let mut body = br#"{"jsonrpc":"2.0","result":[]}"#.to_vec();
    let url = "https://www.deribit.com/api/v2/public/get_instruments?currency=BTC";
    assert_eq!(
        p.parse_rest(url, &mut body, Stamps::default(), &reg, &mut sink),
        Ok(FrameKind::Ignored)
    );
    // Deribit needs no REST body: none is parsed, whatever it holds
    let mut body = br#"{"jsonrpc":"2.0","error":{"code":1}}"#.to_vec();
    assert_eq!(
        p.parse_rest(url, &mut body, Stamps::default(), &reg, &mut sink),
        Ok(FrameKind::Ignored)
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Mutated real frames (byte flips, truncation, insertion) never panic.
    #[test]
    fn mutated_frames_never_panic(
        line in 1usize..=18,
        ops in proptest::collection::vec((0u8..3, any::<prop::sample::Index>(), any::<u8>()), 1..6),
    ) {
        let mut bytes = fixture(line).into_bytes();
        for (op, at, byte) in ops {
            match op {
                0 if !bytes.is_empty() => {
                    let i = at.index(bytes.len());
                    bytes[i] ^= byte | 1;
                }
                1 => {
                    let i = at.index(bytes.len() + 1);
                    bytes.truncate(i);
                }
                _ => {
                    let i = at.index(bytes.len() + 1);
                    bytes.insert(i, byte);
                }
            }
        }
        let reg = fixture_instruments();
        let mut p = parser();
        let mut n = 0usize;
        let _ = p.parse_frame(&mut bytes, Stamps::default(), &reg, &mut |_e: Event| n += 1);
    }
}

// ---- recording ----

/// Subscriptions and received frames of DERIBIT.jsonl.zst.
fn recording() -> (Vec<Subscription>, Vec<String>) {
    let rec = testutil::recording("DERIBIT.jsonl.zst");
    let mut url = String::new();
    let mut sent = Vec::new();
    for r in &rec.records {
        match r {
            Record::Connect { addr, .. } => url = addr.clone(),
            Record::Send { data, .. } => sent.push(data.clone()),
            _ => {}
        }
    }
    let subs = subscriptions_from_wire(Feed::Deribit, &url, &sent);
    let frames = testutil::recv_frames(&rec)
        .into_iter()
        .map(|(_, data)| data)
        .collect();
    (subs, frames)
}

#[test]
fn recording_parses_without_errors() {
    let (subs, frames) = recording();
    assert_eq!(subs.len(), 10);
    assert!(subs.iter().all(|s| s.channels
        == Channels::BOOK
            | Channels::TRADES
            | Channels::LIQUIDATIONS
            | Channels::DERIVATIVE_TICKER));
    assert_eq!(subs[0].symbol, "BTC-24SEP21-8000-P");
    let mut reg = Instruments::new();
    for s in &subs {
        reg.intern(s.exchange, &s.symbol);
    }
    let mut p = parser();
    let mut kinds: HashMap<FrameKind, usize> = HashMap::new();
    for frame in &frames {
        let (r, _) = testutil::parse(&mut p, frame, &reg);
        let kind = r.unwrap_or_else(|e| panic!("{e}: {frame}"));
        *kinds.entry(kind).or_default() += 1;
    }
    assert_eq!(frames.len(), 136);
    assert_eq!(kinds[&FrameKind::Ack], 1);
    assert_eq!(kinds[&FrameKind::BookSnapshot], 10);
    assert_eq!(kinds[&FrameKind::BookDelta], 36);
    assert_eq!(kinds[&FrameKind::DerivativeTicker], 89);
}

#[test]
fn recording_book_chains_hold() {
    let (subs, frames) = recording();
    let mut reg = Instruments::new();
    for s in &subs {
        reg.intern(s.exchange, &s.symbol);
    }
    let mut p = parser();
    let mut last: HashMap<InstrumentId, Sequence> = HashMap::new();
    let mut after_snapshot: HashMap<InstrumentId, bool> = HashMap::new();
    let mut applied = 0;
    for frame in &frames {
        let (_, ev) = testutil::parse(&mut p, frame, &reg);
        let Some(Event::BookBegin(begin)) = ev.first() else {
            continue;
        };
        let Sequence::Deribit {
            change_id,
            prev_change_id,
        } = begin.seq
        else {
            panic!("no Deribit sequence: {begin:?}");
        };
        if begin.is_snapshot {
            assert_eq!(prev_change_id, None);
            after_snapshot.insert(begin.instrument, true);
        } else {
            let prev = last.get(&begin.instrument).expect("change before snapshot");
            let Sequence::Deribit {
                change_id: last_change_id,
                ..
            } = *prev
            else {
                unreachable!()
            };
            assert_eq!(prev_change_id, Some(last_change_id));
            assert!(change_id > last_change_id);
            let after = after_snapshot.insert(begin.instrument, false).unwrap();
            assert_eq!(check_sequence(prev, after, &begin.seq), SyncVerdict::Apply);
            applied += 1;
        }
        last.insert(begin.instrument, begin.seq);
    }
    assert_eq!(last.len(), 10);
    assert_eq!(applied, 36);
}

// ---- connect plan ----

#[test]
fn connect_plan_frames() {
    let subs = vec![
        Subscription {
            exchange: X,
            symbol: "BTC-PERPETUAL".into(),
            channels: Channels::ALL,
        },
        Subscription {
            exchange: X,
            symbol: "MATIC_USDC-9MAR24-1D02-C".into(),
            channels: Channels::BOOK,
        },
    ];
    let (ws, rest) = Feed::Deribit.default_endpoints();
    let plan = connect_plan(Feed::Deribit, ws, rest, &subs);
    assert_eq!(plan.ws_url, "wss://www.deribit.com/ws/api/v2");
    assert!(plan.snapshot_urls.is_empty());
    assert_eq!(plan.keepalive, None);
    assert_eq!(
        plan.subscribe_frames,
        vec![
            r#"{"jsonrpc":"2.0","id":1,"method":"public/subscribe","params":{"channels":["book.BTC-PERPETUAL.100ms","trades.BTC-PERPETUAL.100ms","ticker.BTC-PERPETUAL.100ms","quote.BTC-PERPETUAL","book.MATIC_USDC-9MAR24-1d02-C.100ms"]}}"#.to_string(),
            r#"{"jsonrpc":"2.0","id":2,"method":"public/set_heartbeat","params":{"interval":30}}"#.to_string(),
        ]
    );
    // liquidations alone still subscribe trades
    let plan = connect_plan(
        Feed::Deribit,
        ws,
        rest,
        &[Subscription {
            exchange: X,
            symbol: "ETH-PERPETUAL".into(),
            channels: Channels::LIQUIDATIONS,
        }],
    );
    assert!(plan.subscribe_frames[0].contains(r#"["trades.ETH-PERPETUAL.100ms"]"#));
}

#[test]
fn connect_plan_round_trips() {
    let subs = vec![
        Subscription {
            exchange: X,
            symbol: "BTC-PERPETUAL".into(),
            channels: Channels::ALL,
        },
        Subscription {
            exchange: X,
            symbol: "ETH-24SEP21-3000-C".into(),
            channels: Channels::BOOK | Channels::DERIVATIVE_TICKER,
        },
        Subscription {
            exchange: X,
            symbol: "XRP_USDC-30JUN23-0D625-C".into(),
            channels: Channels::TRADES | Channels::LIQUIDATIONS | Channels::BOOK_TICKER,
        },
        Subscription {
            exchange: X,
            symbol: "BTC-FS-30SEP22_PERP".into(),
            channels: Channels::BOOK,
        },
    ];
    let (ws, rest) = Feed::Deribit.default_endpoints();
    let plan = connect_plan(Feed::Deribit, ws, rest, &subs);
    assert_eq!(
        subscriptions_from_wire(Feed::Deribit, &plan.ws_url, &plan.subscribe_frames),
        subs
    );
    // through the shared dispatch too
    let plan = crate::venue::connect_plan(Feed::Deribit, ws, rest, &subs);
    assert_eq!(
        crate::venue::subscriptions_from_wire(Feed::Deribit, &plan.ws_url, &plan.subscribe_frames),
        subs
    );
    assert!(std::ptr::fn_addr_eq(
        crate::venue::sync_rule(X),
        check_sequence as crate::model::SyncRule
    ));
}

#[test]
fn subscriptions_from_wire_reads_any_interval() {
    let sent = vec![
        r#"{"jsonrpc":"2.0","id":2,"method":"public/set_heartbeat","params":{"interval":10}}"#.to_string(),
        r#"{"jsonrpc":"2.0","id":0,"method":"public/subscribe","params":{"channels":["book.BTC-PERPETUAL.raw","trades.BTC-PERPETUAL.agg2","book.ETH-PERPETUAL.1.10.100ms","trades.option.BTC.100ms","quote.ETH-PERPETUAL","deribit_price_index.btc_usd"]}}"#.to_string(),
        "garbage".to_string(),
    ];
    let subs = subscriptions_from_wire(Feed::Deribit, "wss://www.deribit.com/ws/api/v2", &sent);
    assert_eq!(
        subs,
        vec![
            Subscription {
                exchange: X,
                symbol: "BTC-PERPETUAL".into(),
                channels: Channels::BOOK | Channels::TRADES | Channels::LIQUIDATIONS,
            },
            Subscription {
                exchange: X,
                symbol: "ETH-PERPETUAL".into(),
                channels: Channels::BOOK | Channels::BOOK_TICKER,
            },
        ]
    );
}

#[test]
fn wire_names_keep_the_strike_decimal_mark() {
    assert_eq!(wire_instrument_name("BTC-PERPETUAL"), "BTC-PERPETUAL");
    assert_eq!(
        wire_instrument_name("BTC-24SEP21-8000-P"),
        "BTC-24SEP21-8000-P"
    );
    assert_eq!(
        wire_instrument_name("MATIC_USDC-9MAR24-1D02-C"),
        "MATIC_USDC-9MAR24-1d02-C"
    );
    assert_eq!(wire_instrument_name("BTC-27DEC24"), "BTC-27DEC24");
    assert_eq!(
        wire_instrument_name("BTC-CSR12-16SEP22-21000_23000"),
        "BTC-CSR12-16SEP22-21000_23000"
    );
}

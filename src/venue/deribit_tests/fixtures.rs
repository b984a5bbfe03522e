//! Every line of the Deribit fixture file, and other frame kinds.

use super::*;

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
    // issue 10: the option_summary fields, in two halves
    let [Event::OptionHalf(a), Event::OptionHalf(b)] = ev[1..] else {
        panic!("no option halves: {ev:?}");
    };
    let fields = |h: &crate::model::OptionHalf| (0..8).map(|i| h.field(i)).collect::<Vec<_>>();
    let some = |s: &str| Some(d(s));
    assert_eq!(
        fields(&a),
        [
            some("0.0365"),
            some("15.4"),
            some("58.39"),
            some("0.04"),
            some("4.8"),
            some("66.9"),
            some("0.038"),
            some("533.2")
        ]
    );
    assert_eq!(
        fields(&b),
        [
            some("0.03847784"),
            some("63.21"),
            some("0.62959"),
            some("0.00058"),
            some("3.88497"),
            some("-28.34113"),
            some("0.66242"),
            some("9440.73")
        ]
    );
    assert_eq!(b.underlying_index.as_str(), "SYN.BTC-5JUN20");
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
    // not `-C`/`-P`: no option_summary, as tardis-node
    assert_eq!(ev.len(), 1, "{ev:?}");
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
    // not `-C`/`-P`: no option_summary, as tardis-node
    assert_eq!(ev.len(), 1, "{ev:?}");
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

//! Every line of the Bybit fixture files, and control frames.

use super::*;

// ---------------------------------------------------------------- fixtures

/// Parses `line` with the parser of `feed`, registering the fixture symbols.
fn parse_line(feed: Feed, line: &str) -> (Result<FrameKind, ParseError>, Vec<Event>) {
    let instruments = fixture_instruments();
    let mut parser = VenueParser::new(feed);
    testutil::parse(&mut parser, line, &instruments)
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
        Event::DerivativeTicker(t) => t.unpack(),
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

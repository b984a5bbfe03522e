//! Every line of the Binance fixture files, and raw (non-combined) frames.

use super::*;

// ---------------------------------------------------------------- spot fixtures

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
        vec![Event::ticker(DerivativeTicker {
            instrument: btc,
            last_price: Some(dec("10223.74")),
            stamps: stamps_ms(1568693103467),
            ..DerivativeTicker::default()
        })]
    );

    // 3: markPrice without index.
    assert_eq!(
        out[2].1,
        vec![Event::ticker(DerivativeTicker {
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
            vec![Event::ticker(DerivativeTicker {
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
        vec![Event::ticker(DerivativeTicker {
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
        vec![Event::ticker(DerivativeTicker {
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
        vec![Event::ticker(DerivativeTicker {
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
            vec![Event::ticker(DerivativeTicker {
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
        vec![Event::ticker(DerivativeTicker {
            instrument: q,
            last_price: Some(dec("9504.9")),
            stamps: stamps_ms(1592265616654),
            ..DerivativeTicker::default()
        })]
    );

    // 8: generated openInterest with `time`.
    assert_eq!(
        out[7].1,
        vec![Event::ticker(DerivativeTicker {
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

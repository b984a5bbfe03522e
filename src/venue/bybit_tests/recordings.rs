//! The Bybit recording, and connect plans.

use super::*;

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
            push_delta_ns: 0,
            applied_delta_ns: 0,
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
                push_delta_ns: 0,
                applied_delta_ns: 0,
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
            Event::DerivativeTicker(t) if c == "BYBIT.ws.3" => Some(t.unpack()),
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
            Event::DerivativeTicker(t) if t.instrument == btc_linear => Some(t.unpack()),
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

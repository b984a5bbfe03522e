//! Bad input of every kind, mutated real frames, and connect plans.

use super::*;

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

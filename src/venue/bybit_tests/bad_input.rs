//! Bad input of every kind and mutated real frames.

use super::*;

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

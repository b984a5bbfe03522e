//! Bad input of every kind and mutated real frames.

use super::*;

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

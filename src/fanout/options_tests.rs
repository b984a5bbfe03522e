//! Tests of the `options` grammar and its resolution.

use super::*;

fn snap(name: &str, depth: usize, interval_ms: u64) -> DataType {
    DataType::BookSnapshot(SnapshotSpec {
        name: name.into(),
        depth,
        interval_ms,
        grouping_bits: None,
    })
}

#[test]
fn data_type_grammar() {
    let ok = [
        ("trade", DataType::Trade),
        ("book_change", DataType::BookChange),
        ("book_ticker", DataType::BookTicker),
        ("derivative_ticker", DataType::DerivativeTicker),
        ("liquidation", DataType::Liquidation),
        ("option_summary", DataType::OptionSummary),
        ("quote", snap("quote", 1, 0)),
        ("quote_1s", snap("quote_1s", 1, 1000)),
        ("quote_100ms", snap("quote_100ms", 1, 100)),
        ("quote_2m", snap("quote_2m", 1, 120_000)),
        ("book_snapshot_25_0ms", snap("book_snapshot_25_0ms", 25, 0)),
        (
            "book_snapshot_10_100ms",
            snap("book_snapshot_10_100ms", 10, 100),
        ),
        ("book_snapshot_2_1s", snap("book_snapshot_2_1s", 2, 1000)),
        ("book_snapshot_2_0.5s", snap("book_snapshot_2_0.5s", 2, 500)),
        ("book_snapshot_5_1m", snap("book_snapshot_5_1m", 5, 60_000)),
        ("imbalance_5", DataType::Imbalance(5)),
        ("trades", DataType::Unknown("trades".into())),
        ("imbalance", DataType::Unknown("imbalance".into())),
        ("", DataType::Unknown(String::new())),
    ];
    for (s, want) in ok {
        assert_eq!(parse_data_type(s), Ok(want), "{s}");
    }
    // tardis-machine: suffixes tested as ticks, ms, s, m, vol; time intervals in ms
    for (s, kind, interval) in [
        ("trade_bar_10s", BarKind::Time, 10_000.0),
        ("trade_bar_1m", BarKind::Time, 60_000.0),
        ("trade_bar_250ms", BarKind::Time, 250.0),
        ("trade_bar_0.5s", BarKind::Time, 500.0),
        ("trade_bar_100ticks", BarKind::Tick, 100.0),
        ("trade_bar_10.5vol", BarKind::Volume, 10.5),
        ("trade_bar_0.001vol", BarKind::Volume, 0.001),
    ] {
        let Ok(DataType::TradeBar(b)) = parse_data_type(s) else {
            panic!("{s}: not a trade bar");
        };
        assert_eq!((b.name.as_str(), b.kind, b.interval()), (s, kind, interval));
    }
    let Ok(DataType::BookSnapshot(g)) = parse_data_type("book_snapshot_10_grouped0.5_100ms") else {
        panic!("grouped snapshot not parsed");
    };
    assert_eq!((g.depth, g.interval_ms, g.grouping()), (10, 100, Some(0.5)));
    for s in ["book_snapshot_5000_1s", "imbalance_5000"] {
        assert!(
            matches!(parse_data_type(s), Ok(DataType::Unsupported { .. })),
            "{s}"
        );
    }
    let bad = [
        (
            "book_snapshot_x_1s",
            "Error: invalid depth: x, data type: book_snapshot_x_1s",
        ),
        (
            "book_snapshot_0_1s",
            "Error: invalid depth: 0, data type: book_snapshot_0_1s",
        ),
        (
            "book_snapshot_10_xms",
            "Error: invalid interval: x, data type: book_snapshot_10_xms",
        ),
        (
            "book_snapshot_10_100",
            "Error: invalid data type: book_snapshot_10_100",
        ),
        (
            "book_snapshot_10",
            "Error: invalid data type: book_snapshot_10",
        ),
        (
            "book_snapshot_1_2_3_4_5s",
            "Error: invalid data type: book_snapshot_1_2_3_4_5s",
        ),
        (
            "book_snapshot_10_groupedx_1s",
            "Error: invalid grouping: groupedx, data type: book_snapshot_10_groupedx_1s",
        ),
        (
            "book_snapshot_10_0.0001s",
            "Error: invalid interval: 0.0001, data type: book_snapshot_10_0.0001s",
        ),
        ("quotes", "Error: invalid data type: quotes"),
        (
            "quote_xs",
            "Error: invalid interval: x, data type: quote_xs",
        ),
        ("quote_1h", "Error: invalid data type: quote_1h"),
        ("trade_bar_5x", "Error: invalid data type: trade_bar_5x"),
        (
            "trade_bar_ams",
            "Error: invalid interval: a, data type: trade_bar_ams",
        ),
        ("trade_barx", "Error: invalid data type: trade_barx"),
        (
            "trade_bar_0ticks",
            "Error: invalid interval: 0, data type: trade_bar_0ticks",
        ),
        (
            "trade_bar_1.5ticks",
            "Error: invalid interval: 1.5, data type: trade_bar_1.5ticks",
        ),
        (
            "imbalance_0",
            "Error: invalid depth: 0, data type: imbalance_0",
        ),
        (
            "imbalance_x",
            "Error: invalid depth: x, data type: imbalance_x",
        ),
    ];
    for (s, want) in bad {
        assert_eq!(parse_data_type(s), Err(want.to_string()), "{s}");
    }
}

#[test]
fn query_decoding_like_node_querystring() {
    assert_eq!(url_decode("a+b%20c%2B"), "a b c+");
    assert_eq!(url_decode("100%"), "100%");
    assert_eq!(url_decode("%zz%4"), "%zz%4");
    assert_eq!(url_decode("%E2%82%AC"), "€");
    assert_eq!(url_decode("%FF"), "\u{FFFD}");
    assert_eq!(
        options_param("x=1&options=%7B%22a%22%3A1%7D&y").as_deref(),
        Some(r#"{"a":1}"#)
    );
    assert_eq!(options_param("options=1&options=2").as_deref(), Some("1,2"));
    assert_eq!(options_param("opts=1"), None);
    // quote_plus, as the tardis docs' Python sample encodes
    let q = "options=%7B%22exchange%22%3A+%22bybit%22%2C+%22dataTypes%22%3A+%5B%22trade%22%5D%7D";
    let e = parse_query(q).unwrap();
    assert_eq!(e[0].exchange, "bybit");
    assert_eq!(e[0].data_types, [DataType::Trade]);
}

#[test]
fn options_shapes_and_errors() {
    let one = parse_options(
        r#"{"exchange":"deribit","symbols":["btc-perpetual"],"dataTypes":["trade","quote"],
            "withDisconnectMessages":true,"withErrorMessages":1,"withSeq":"yes",
            "withIntegrityMessages":false,"timerSnapshots":0,"withLatency":null,"other":5}"#,
    )
    .unwrap();
    assert_eq!(one.len(), 1);
    let e = &one[0];
    assert_eq!(
        e.symbols.as_deref(),
        Some(&["btc-perpetual".to_string()][..])
    );
    assert_eq!(e.symbols_json.as_deref(), Some(r#"["btc-perpetual"]"#));
    assert!(e.with_disconnect_messages && e.with_error_messages && e.with_seq);
    assert!(!e.with_integrity_messages && !e.timer_snapshots && !e.with_latency);
    let many = parse_options(
        r#"[{"exchange":"bybit","dataTypes":["trade"]},{"exchange":"okex","dataTypes":[]}]"#,
    )
    .unwrap();
    assert_eq!(many.len(), 2);
    assert_eq!(many[1].symbols, None);
    assert_eq!(parse_options("[]"), Err(OptionsError::Empty));
    assert_eq!(
        parse_query(""),
        Err(OptionsError::Malformed(
            "SyntaxError: \"undefined\" is not valid JSON".into()
        ))
    );
    let malformed = [
        "{",
        "nope",
        r#"{"exchange":"bybit"}"#,
        r#"{"exchange":"bybit","dataTypes":null}"#,
        r#"{"exchange":"bybit","dataTypes":"trade"}"#,
        r#"{"exchange":"bybit","dataTypes":[1]}"#,
        r#"{"exchange":"bybit","dataTypes":["trade"],"symbols":"BTCUSDT"}"#,
        r#"{"exchange":"bybit","dataTypes":["trade"],"symbols":[1]}"#,
        r#"[{"exchange":"bybit","dataTypes":["trade"]}, 5]"#,
        r#"[null]"#,
        r#"{"exchange":"bybit","dataTypes":["book_snapshot_x_1s"]}"#,
    ];
    for text in malformed {
        match parse_options(text) {
            Err(OptionsError::Malformed(reason)) => assert!(!reason.is_empty()),
            other => panic!("{text}: {other:?}"),
        }
    }
    let Err(OptionsError::Malformed(reason)) = parse_options("{") else {
        panic!()
    };
    assert!(reason.starts_with("SyntaxError: "), "{reason}");
    let Err(OptionsError::Malformed(reason)) =
        parse_options(r#"{"exchange":"bybit","symbols":["X"]}"#)
    else {
        panic!()
    };
    assert_eq!(
        reason,
        "TypeError: Cannot read properties of undefined (reading 'includes')"
    );
}

fn registry() -> Instruments {
    let mut i = Instruments::new();
    i.intern(Exchange::BinanceFutures, "BTCUSDT");
    i.intern(Exchange::BinanceFutures, "ETHUSDT");
    i.intern(Exchange::Binance, "BTCUSDT");
    i
}

#[test]
fn resolution_merges_and_names_what_is_unknown() {
    let inst = registry();
    let entries = parse_options(
        r#"[{"exchange":"binance-futures","symbols":["btcusdt"],"dataTypes":["trade"],"withSeq":true},
            {"exchange":"binance-futures","symbols":["BTCUSDT","XRPUSDT"],"dataTypes":["trade","book_change","foo"],
             "withErrorMessages":true,"withIntegrityMessages":true},
            {"exchange":"binance","dataTypes":["derivative_ticker","liquidation","trade","option_summary"]},
            {"exchange":"kraken","symbols":["XBTUSD"],"dataTypes":["trade"],"withDisconnectMessages":true}]"#,
    )
    .unwrap();
    let r = resolve(&entries, &inst, MAX_DEPTH_LEVELS);
    let btc = inst.get(Exchange::BinanceFutures, "BTCUSDT").unwrap();
    let spot = inst.get(Exchange::Binance, "BTCUSDT").unwrap();
    assert_eq!(
        r.subs,
        [
            (btc, SubKind::Trade),
            (btc, SubKind::BookChange),
            (btc, SubKind::Integrity),
            (spot, SubKind::Trade),
        ]
    );
    assert!(r.with_seq && !r.with_latency);
    let errors: Vec<_> = r
        .errors
        .iter()
        .map(|e| (e.exchange.as_str(), e.kind, e.send))
        .collect();
    assert_eq!(
        errors,
        [
            ("binance-futures", UnknownKind::Symbol, true),
            ("binance-futures", UnknownKind::DataType, true),
            ("binance", UnknownKind::DataType, false),
            ("binance", UnknownKind::DataType, false),
            ("binance", UnknownKind::DataType, false),
            ("kraken", UnknownKind::Exchange, false),
        ]
    );
    assert_eq!(
        r.errors[2].details,
        "normalizeDerivativeTickers: binance not supported"
    );
    assert!(r.errors[0].details.contains("XRPUSDT"));
    assert!(r.errors[1].details.contains("foo"));
    // withDisconnectMessages on one option applies to every served option
    assert_eq!(
        r.disconnects,
        [
            (Exchange::BinanceFutures, Some(r#"["btcusdt"]"#.to_string())),
            (
                Exchange::BinanceFutures,
                Some(r#"["BTCUSDT","XRPUSDT"]"#.to_string())
            ),
            (Exchange::Binance, None),
        ]
    );
}

#[test]
fn timer_snapshots_apply_to_intervals_only() {
    let inst = registry();
    let entries = parse_options(
        r#"{"exchange":"binance","dataTypes":["quote","quote_1s","imbalance_3"],"timerSnapshots":true}"#,
    )
    .unwrap();
    let r = resolve(&entries, &inst, MAX_DEPTH_LEVELS);
    let timers: Vec<_> = r
        .subs
        .iter()
        .filter_map(|(_, k)| match k {
            SubKind::Snapshot { spec, timer } => Some((spec.name.as_str(), *timer)),
            _ => None,
        })
        .collect();
    assert_eq!(timers, [("quote", false), ("quote_1s", true)]);
    assert!(r.subs.iter().any(|(_, k)| *k == SubKind::Imbalance(3)));
}

/// Issue 10: as tardis-node, a Deribit option has `option_summary` and no
/// `derivative_ticker`; a perpetual the other way round.
#[test]
fn deribit_options_get_summaries_not_derivative_tickers() {
    let mut inst = Instruments::new();
    let perp = inst.intern(Exchange::Deribit, "BTC-PERPETUAL");
    let call = inst.intern(Exchange::Deribit, "ETH-30JUL21-2800-C");
    let entries = parse_options(
        r#"{"exchange":"deribit","dataTypes":["derivative_ticker","option_summary","trade"]}"#,
    )
    .unwrap();
    let r = resolve(&entries, &inst, MAX_DEPTH_LEVELS);
    assert_eq!(
        r.subs,
        [
            (perp, SubKind::DerivativeTicker),
            (perp, SubKind::Trade),
            (call, SubKind::OptionSummary),
            (call, SubKind::Trade),
        ]
    );
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    assert!(r.quiet);
}

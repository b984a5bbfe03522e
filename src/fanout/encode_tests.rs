//! Tests of the message encoders: wire texts as tardis-machine writes them.

use super::*;
use crate::model::{ShortId, Side, Stamps};

fn d(s: &str) -> Decimal {
    Decimal::parse(s.as_bytes()).unwrap()
}

fn num(s: &str) -> String {
    let mut v = Vec::new();
    write_number(&mut v, d(s));
    String::from_utf8(v).unwrap()
}

#[test]
fn numbers_in_js_shortest_form() {
    assert_eq!(num("7996.00"), "7996");
    assert_eq!(num("0.00002257"), "0.00002257");
    assert_eq!(num("0.0000004"), "4e-7");
    assert_eq!(num("0.00000015"), "1.5e-7");
    assert_eq!(num("0.000001"), "0.000001");
    assert_eq!(num("-0.50"), "-0.5");
    assert_eq!(num("0.000"), "0");
    assert_eq!(num("11343.67"), "11343.67");
}

fn js(x: f64) -> String {
    let mut v = Vec::new();
    write_f64(&mut v, x);
    String::from_utf8(v).unwrap()
}

/// Expected texts are what node prints for `JSON.stringify(x)` (ECMA-262 examples).
#[test]
fn doubles_as_javascript_prints_them() {
    for (x, want) in [
        (0.1 + 0.2, "0.30000000000000004"),
        (7996.0, "7996"),
        (0.000001, "0.000001"),
        (0.0000001, "1e-7"),
        (1.5e-7, "1.5e-7"),
        (-0.5, "-0.5"),
        (-0.0, "0"),
        (1e21, "1e+21"),
        (123456789012345680000.0, "123456789012345680000"),
        (1.7976931348623157e308, "1.7976931348623157e+308"),
        (5e-324, "5e-324"),
        (11343.67, "11343.67"),
        (f64::NAN, "null"),
        (f64::INFINITY, "null"),
    ] {
        assert_eq!(js(x), want, "{x:e}");
    }
}

fn ts(ns: i64, millis_only: bool) -> String {
    let mut v = Vec::new();
    write_timestamp(&mut v, ns, millis_only);
    String::from_utf8(v).unwrap()
}

#[test]
fn option_fields_from_deribit_names() {
    assert_eq!(
        option_static("BTC-24SEP21-8000-P").as_deref(),
        Some(
            r#","optionType":"put","strikePrice":8000,"expirationDate":"2021-09-24T08:00:00.000Z""#
        )
    );
    assert_eq!(
        option_static("MATIC_USDC-9MAR24-1D02-C").as_deref(),
        Some(
            r#","optionType":"call","strikePrice":1.02,"expirationDate":"2024-03-09T08:00:00.000Z""#
        )
    );
    for not_option in [
        "BTC-PERPETUAL",
        "BTC-24SEP21",
        "BTC-XX-1-C",
        "BTC-32JAN21-1-C",
    ] {
        assert_eq!(option_static(not_option), None, "{not_option}");
    }
}

#[test]
fn option_summary_leaves_out_zero_quotes() {
    use crate::model::{OptionHalf, ShortName};
    let st = Stamps {
        exch_ts_ns: 1_626_993_723_632_000_000,
        recv_ts_ns: 1_626_993_723_700_000_000,
        ..Stamps::default()
    };
    let id = Default::default();
    let a = OptionHalf::new(
        id,
        0,
        [
            Some(d("0")),
            Some(d("0")),
            None,
            Some(d("0.0025")),
            Some(d("873.0")),
            Some(d("125.63")),
            None,
            Some(d("0")),
        ],
        ShortName::default(),
        st,
    );
    let b = OptionHalf::new(
        id,
        1,
        [
            Some(d("0.001972")),
            Some(d("120.74")),
            Some(d("0.03127")),
            Some(d("0.0002")),
            Some(d("0.20072")),
            Some(d("-1.64029")),
            Some(d("0.01188")),
            Some(d("2003.61")),
        ],
        ShortName::new("ETH-30JUL21"),
        st,
    );
    let mut out = Vec::new();
    let fields = option_static("ETH-30JUL21-2800-C").unwrap();
    option_summary(
        &mut out,
        Exchange::Deribit,
        "ETH-30JUL21-2800-C",
        &fields,
        &a,
        &b,
        st.recv_ts_ns,
    );
    assert_eq!(
        text(out),
        r#"{"type":"option_summary","symbol":"ETH-30JUL21-2800-C","exchange":"deribit","optionType":"call","strikePrice":2800,"expirationDate":"2021-07-30T08:00:00.000Z","bestAskPrice":0.0025,"bestAskAmount":873,"bestAskIV":125.63,"openInterest":0,"markPrice":0.001972,"markIV":120.74,"delta":0.03127,"gamma":0.0002,"vega":0.20072,"theta":-1.64029,"rho":0.01188,"underlyingPrice":2003.61,"underlyingIndex":"ETH-30JUL21","timestamp":"2021-07-22T22:42:03.632Z","localTimestamp":"2021-07-22T22:42:03.700Z"}"#
    );
}

/// Issue 10: an event without a venue time (Binance spot's REST snapshot) gets its
/// arrival as `timestamp`, printed as `localTimestamp` is (ms), never after it.
#[test]
fn a_missing_venue_time_is_the_local_time_to_the_ms() {
    let mut out = Vec::new();
    times(&mut out, 0, 1_559_347_210_426_995_000);
    assert_eq!(
        text(out),
        r#","timestamp":"2019-06-01T00:00:10.426Z","localTimestamp":"2019-06-01T00:00:10.426Z""#
    );
}

#[test]
fn timestamps_like_tardis() {
    // 2019-10-23T10:32:49.669Z = 1571826769669 ms
    assert_eq!(
        ts(1_571_826_769_669_000_000, false),
        "\"2019-10-23T10:32:49.669Z\""
    );
    assert_eq!(
        ts(1_559_347_210_426_995_000, false),
        "\"2019-06-01T00:00:10.426995Z\""
    );
    assert_eq!(
        ts(1_559_347_210_426_995_000, true),
        "\"2019-06-01T00:00:10.426Z\""
    );
    assert_eq!(ts(0, false), "\"1970-01-01T00:00:00.000Z\"");
    assert_eq!(
        ts(951_782_400_000_000_000, false),
        "\"2000-02-29T00:00:00.000Z\""
    );
}

#[test]
fn trade_matches_the_protocol_example() {
    // PROTOCOL.md section 5, "map binance futures messages 12"
    let t = Trade {
        instrument: Default::default(),
        id: Some(ShortId::new("173525189")),
        price: d("11343.67"),
        qty: d("0.467"),
        side: Side::Sell,
        stamps: Stamps {
            exch_ts_ns: 1_596_240_000_519_000_000,
            recv_ts_ns: 1_567_296_001_275_000_000,
            recv_mono_ns: 0,
            push_delta_ns: 0,
            applied_delta_ns: 0,
        },
    };
    let mut out = Vec::new();
    trade(&mut out, Exchange::BinanceFutures, "BTCUSDT", &t);
    assert_eq!(
        String::from_utf8(out).unwrap(),
        r#"{"type":"trade","symbol":"BTCUSDT","exchange":"binance-futures","id":"173525189","price":11343.67,"amount":0.467,"side":"sell","timestamp":"2020-08-01T00:00:00.519Z","localTimestamp":"2019-09-01T00:00:01.275Z"}"#
    );
}

#[test]
fn book_change_groups_sides() {
    let mut w = BookChangeWriter::default();
    w.begin();
    w.level(&Level {
        side: BookSide::Bid,
        price: d("217.80"),
        qty: d("0"),
    });
    w.level(&Level {
        side: BookSide::Ask,
        price: d("219.2"),
        qty: d("64903"),
    });
    w.level(&Level {
        side: BookSide::Ask,
        price: d("219.1"),
        qty: d("19343"),
    });
    let mut out = Vec::new();
    w.finish(
        &mut out,
        Exchange::Deribit,
        "ETH-PERPETUAL",
        false,
        1_564_617_654_272_000_000,
        1_559_347_228_619_000_000,
    );
    assert_eq!(
        String::from_utf8(out).unwrap(),
        r#"{"type":"book_change","symbol":"ETH-PERPETUAL","exchange":"deribit","isSnapshot":false,"bids":[{"price":217.8,"amount":0}],"asks":[{"price":219.2,"amount":64903},{"price":219.1,"amount":19343}],"timestamp":"2019-08-01T00:00:54.272Z","localTimestamp":"2019-06-01T00:00:28.619Z"}"#
    );
}

fn text(v: Vec<u8>) -> String {
    String::from_utf8(v).unwrap()
}

#[test]
fn book_snapshot_matches_the_protocol_example() {
    // PROTOCOL.md section 5, "should produce correct book snapshots"
    let mut out = Vec::new();
    book_snapshot(
        &mut out,
        Exchange::Deribit,
        "XBTUSD",
        "book_snapshot_2_1000ms",
        1000,
        None,
        &[Some((d("119"), d("20"))), None],
        &[Some((d("120"), d("10"))), Some((d("200"), d("20")))],
        1_564_617_611_000_000_000,
        1_564_617_612_132_000_000,
    );
    assert_eq!(
        text(out),
        r#"{"type":"book_snapshot","symbol":"XBTUSD","exchange":"deribit","name":"book_snapshot_2_1000ms","depth":2,"interval":1000,"bids":[{"price":119,"amount":20},{}],"asks":[{"price":120,"amount":10},{"price":200,"amount":20}],"timestamp":"2019-08-01T00:00:11.000Z","localTimestamp":"2019-08-01T00:00:12.132Z"}"#
    );
}

#[test]
fn disconnect_error_invalid_imbalance() {
    let mut out = Vec::new();
    disconnect(&mut out, Exchange::Deribit, 1_571_830_469_416_000_000, None);
    assert_eq!(
        text(std::mem::take(&mut out)),
        r#"{"type":"disconnect","exchange":"deribit","localTimestamp":"2019-10-23T11:34:29.416Z"}"#
    );
    disconnect(
        &mut out,
        Exchange::Deribit,
        1_571_830_469_416_000_000,
        Some(r#"["BTC-PERPETUAL"]"#),
    );
    assert_eq!(
        text(std::mem::take(&mut out)),
        r#"{"type":"disconnect","exchange":"deribit","localTimestamp":"2019-10-23T11:34:29.416Z","symbols":["BTC-PERPETUAL"]}"#
    );
    error(
        &mut out,
        "binance",
        1_787_392_800_123_000_000,
        "normalizeDerivativeTickers: binance not supported",
        1,
    );
    assert_eq!(
        text(std::mem::take(&mut out)),
        r#"{"type":"error","exchange":"binance","localTimestamp":"2026-08-22T10:00:00.123Z","details":"normalizeDerivativeTickers: binance not supported","subSequentErrorsCount":1}"#
    );
    book_invalid(
        &mut out,
        Exchange::Bybit,
        "BTCUSDT",
        1_787_392_800_123_456_789,
    );
    assert_eq!(
        text(std::mem::take(&mut out)),
        r#"{"type":"book_invalid","symbol":"BTCUSDT","exchange":"bybit","localTimestamp":"2026-08-22T10:00:00.123Z"}"#
    );
    imbalance(
        &mut out,
        Exchange::Bybit,
        "BTCUSDT",
        5,
        4119,
        1_787_392_800_123_000_000,
        1_787_392_800_124_000_000,
    );
    assert_eq!(
        text(std::mem::take(&mut out)),
        r#"{"type":"imbalance","symbol":"BTCUSDT","exchange":"bybit","depth":5,"imbalance":41.19,"timestamp":"2026-08-22T10:00:00.123Z","localTimestamp":"2026-08-22T10:00:00.124Z"}"#
    );
    imbalance(&mut out, Exchange::Bybit, "X", 1, 10000, 1, 1);
    assert!(text(out).contains(r#""imbalance":100,"#));
}

//! Unit tests of `model.rs`.

use super::*;

fn d(s: &str) -> Decimal {
    Decimal::parse(s.as_bytes()).unwrap()
}

#[test]
fn parses_exact_decimals() {
    assert_eq!(d("0.35210000"), Decimal::new(35210000, 8));
    assert_eq!(d("65114.20"), Decimal::new(6511420, 2));
    assert_eq!(d("-0.0001"), Decimal::new(-1, 4));
    assert_eq!(d("415"), Decimal::new(415, 0));
    assert_eq!(d("4e-7"), Decimal::new(4, 7));
    assert_eq!(d("1.5E+3"), Decimal::new(1500, 0));
    assert_eq!(d("000123.4"), Decimal::new(1234, 1));
}

#[test]
fn rejects_bad_text() {
    assert_eq!(Decimal::parse(b""), Err(DecimalError::Empty));
    assert_eq!(Decimal::parse(b"-"), Err(DecimalError::Invalid));
    assert_eq!(Decimal::parse(b"1.2.3"), Err(DecimalError::Invalid));
    assert_eq!(Decimal::parse(b"12a"), Err(DecimalError::Invalid));
    assert_eq!(Decimal::parse(b"1e"), Err(DecimalError::Invalid));
    assert_eq!(
        Decimal::parse(b"1234567890123456789"),
        Err(DecimalError::Overflow)
    );
    assert_eq!(
        Decimal::parse(b"0.0000000000000000001"),
        Err(DecimalError::Overflow)
    );
    assert_eq!(Decimal::parse(b"1e40"), Err(DecimalError::Overflow));
}

#[test]
fn writes_exact_and_trimmed() {
    for s in [
        "0.35210000",
        "65114.20",
        "-0.0001",
        "415",
        "0.0015",
        "4714.0",
    ] {
        let mut v = Vec::new();
        d(s).write_exact(&mut v);
        assert_eq!(std::str::from_utf8(&v).unwrap(), s);
    }
    let mut v = Vec::new();
    d("0.35210000").write_trimmed(&mut v);
    assert_eq!(v, b"0.3521");
    v.clear();
    d("7.00").write_trimmed(&mut v);
    assert_eq!(v, b"7");
}

#[test]
fn from_f64_gives_shortest_text() {
    assert_eq!(Decimal::from_f64(0.0015).unwrap(), Decimal::new(15, 4));
    assert_eq!(Decimal::from_f64(4714.0).unwrap(), Decimal::new(47140, 1));
    assert_eq!(Decimal::from_f64(f64::NAN), Err(DecimalError::Invalid));
}

#[test]
fn scales_exactly() {
    assert_eq!(d("1.50").to_scaled(4), Ok(15000));
    assert_eq!(d("1.50").to_scaled(1), Ok(15));
    assert_eq!(d("1.55").to_scaled(1), Err(2));
    assert_eq!(d("9000000000").to_scaled(10), Err(u8::MAX));
    assert_eq!(d("1.5").cmp_value(d("1.50")), std::cmp::Ordering::Equal);
}

proptest::proptest! {
    /// The fast path agrees with the general parser on every plain decimal shape.
    #[test]
    fn fast_path_matches_general_parser(text in "-?[0-9]{0,21}(\\.[0-9]{0,21})?") {
        proptest::prop_assert_eq!(
            Decimal::parse(text.as_bytes()),
            Decimal::parse_slow(text.as_bytes())
        );
    }

    /// Exact text survives a parse and write round trip.
    #[test]
    fn exact_text_round_trips(int in 0u64..1_000_000_000, frac in "[0-9]{0,8}") {
        let text = if frac.is_empty() { int.to_string() } else { format!("{int}.{frac}") };
        let mut out = Vec::new();
        Decimal::parse(text.as_bytes()).unwrap().write_exact(&mut out);
        proptest::prop_assert_eq!(String::from_utf8(out).unwrap(), text);
    }
}

#[test]
fn exchange_ids_round_trip() {
    for e in Exchange::ALL {
        assert_eq!(Exchange::from_id(e.id()), Some(e));
    }
    assert_eq!(Exchange::from_id("kraken"), None);
}

fn full_ticker() -> DerivativeTicker {
    DerivativeTicker {
        instrument: InstrumentId(7),
        last_price: Some(d("65140.5")),
        open_interest: Some(d("59891.732")),
        funding_rate: Some(d("-0.0001")),
        funding_ts_ns: Some(1_786_320_000_000_000_000),
        predicted_funding_rate: Some(d("0.00012")),
        index_price: Some(d("65137.76")),
        mark_price: Some(d("65117.44")),
        best_bid_price: Some(d("65140.4")),
        best_bid_qty: Some(d("1.234")),
        best_ask_price: Some(d("65140.5")),
        best_ask_qty: Some(d("0")),
        stamps: Stamps {
            exch_ts_ns: 1,
            recv_ts_ns: 2,
            recv_mono_ns: 3,
            push_delta_ns: 4,
            applied_delta_ns: 5,
        },
    }
}

#[test]
fn packed_ticker_round_trips_every_field_alone_and_all_together() {
    let full = full_ticker();
    assert_eq!(PackedTicker::pack(&full).unpack(), full);
    let empty = DerivativeTicker::default();
    assert_eq!(PackedTicker::pack(&empty).unpack(), empty);
    // each field alone: the others stay absent, so merging a packed delta cannot invent values
    let setters: [fn(&mut DerivativeTicker, &DerivativeTicker); 11] = [
        |t, f| t.last_price = f.last_price,
        |t, f| t.open_interest = f.open_interest,
        |t, f| t.funding_rate = f.funding_rate,
        |t, f| t.funding_ts_ns = f.funding_ts_ns,
        |t, f| t.predicted_funding_rate = f.predicted_funding_rate,
        |t, f| t.index_price = f.index_price,
        |t, f| t.mark_price = f.mark_price,
        |t, f| t.best_bid_price = f.best_bid_price,
        |t, f| t.best_bid_qty = f.best_bid_qty,
        |t, f| t.best_ask_price = f.best_ask_price,
        |t, f| t.best_ask_qty = f.best_ask_qty,
    ];
    for set in setters {
        let mut one = DerivativeTicker {
            instrument: full.instrument,
            ..DerivativeTicker::default()
        };
        set(&mut one, &full);
        assert_eq!(PackedTicker::pack(&one).unpack(), one);
        assert_ne!(PackedTicker::pack(&one), PackedTicker::pack(&empty));
    }
    // exact text survives: "0.00012" and "0.000120" stay distinct
    let a = DerivativeTicker {
        funding_rate: Some(d("0.000120")),
        ..DerivativeTicker::default()
    };
    assert_eq!(
        PackedTicker::pack(&a)
            .unpack()
            .funding_rate
            .unwrap()
            .to_string(),
        "0.000120"
    );
}

/// Ring slots are sized by the largest event; the packed ticker keeps that at a trade or a
/// book ticker, not at the 288-byte wide ticker.
#[test]
fn events_stay_small_for_the_rings() {
    assert!(
        size_of::<PackedTicker>() <= size_of::<BookTicker>(),
        "{}",
        size_of::<PackedTicker>()
    );
    assert!(size_of::<Event>() < size_of::<DerivativeTicker>());
    assert_eq!(
        size_of::<Event>(),
        size_of::<BookTicker>().max(size_of::<Trade>())
    );
}

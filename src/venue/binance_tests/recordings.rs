//! The Binance recordings and REST bodies.

use super::*;

// ---------------------------------------------------------------- recordings

/// What [`replay`] saw of a recording.
struct Replay {
    /// Frames per kind.
    counts: HashMap<FrameKind, usize>,
    /// The parser, warm.
    parser: VenueParser,
    /// Instruments from `subscriptions_from_wire`.
    reg: Instruments,
    /// Each book message's instrument and sequence, in order.
    books: Vec<(InstrumentId, Sequence)>,
}

/// Parses every received frame of a recording with instruments from
/// `subscriptions_from_wire`; every frame must parse.
fn replay(name: &str, feed: Feed) -> Replay {
    let rec = recording(name);
    let mut reg = Instruments::new();
    for conn in rec.ws_connections() {
        let url = rec.connect_addr(&conn).unwrap();
        let subs = subscriptions_from_wire(feed, url, &rec.sent_frames(&conn));
        assert_eq!(subs.len(), 4, "{url}");
        for s in subs {
            assert_eq!(
                s.channels,
                Channels::BOOK | Channels::TRADES | Channels::BOOK_TICKER
            );
            reg.intern(s.exchange, &s.symbol);
        }
    }
    let mut p = VenueParser::new(feed);
    let mut counts = HashMap::new();
    let mut books = Vec::new();
    for (_, frame) in recv_frames(&rec) {
        let (r, events) = parse(&mut p, &frame, &reg);
        let kind = r.unwrap_or_else(|e| panic!("{e}: {frame}"));
        *counts.entry(kind).or_insert(0) += 1;
        assert_books_closed(&events);
        for e in &events {
            if let Event::BookBegin(b) = e {
                books.push((b.instrument, b.seq));
            }
        }
    }
    Replay {
        counts,
        parser: p,
        reg,
        books,
    }
}

/// Every delta after each REST snapshot must be stale, then apply, never a gap.
fn check_chains(name: &str, feed: Feed, replayed: &mut Replay, rule: crate::model::SyncRule) {
    let Replay {
        parser: p,
        reg,
        books,
        ..
    } = replayed;
    let rec = recording(name);
    let mut snapshots = 0;
    for r in &rec.records {
        let Record::Http { url, data, .. } = r else {
            continue;
        };
        let mut body = data.clone().into_bytes();
        let mut events = Vec::new();
        let kind = p
            .parse_rest(url, &mut body, Stamps::default(), reg, &mut |e| {
                events.push(e)
            })
            .unwrap();
        if !url.contains("/depth") {
            assert_eq!(kind, FrameKind::Ignored, "{url}");
            assert!(events.is_empty());
            continue;
        }
        snapshots += 1;
        assert_eq!(kind, FrameKind::BookSnapshot, "{url}");
        assert_books_closed(&events);
        let body: serde_json::Value = serde_json::from_str(data).unwrap();
        let bids = body["bids"].as_array().unwrap();
        let asks = body["asks"].as_array().unwrap();
        assert_eq!(events.len(), bids.len() + asks.len() + 2, "{url}");
        assert_eq!(
            events[1],
            level(
                BookSide::Bid,
                bids[0][0].as_str().unwrap(),
                bids[0][1].as_str().unwrap()
            )
        );
        let Event::BookBegin(snap) = events[0] else {
            panic!()
        };
        let last_update_id = body["lastUpdateId"].as_u64().unwrap();
        assert_eq!(snap.seq, seq(last_update_id, last_update_id, None));
        if feed == Feed::BinanceFutures {
            let t = body["T"].as_i64().unwrap();
            assert_eq!(snap.stamps.exch_ts_ns, t * 1_000_000);
        }
        let mut last = snap.seq;
        let mut after_snapshot = true;
        let mut verdicts = String::new();
        for (_, s) in books.iter().filter(|(i, _)| *i == snap.instrument) {
            let v = rule(&last, after_snapshot, s);
            verdicts.push(match v {
                SyncVerdict::Apply => 'A',
                SyncVerdict::Stale => 'S',
                SyncVerdict::Gap => 'G',
                SyncVerdict::Reset => 'R',
            });
            if v == SyncVerdict::Apply {
                last = *s;
                after_snapshot = false;
            }
        }
        let applied = verdicts.trim_start_matches('S');
        assert!(
            !applied.is_empty() && applied.chars().all(|c| c == 'A'),
            "{url}: {verdicts}"
        );
    }
    assert_eq!(snapshots, 4);
}

#[test]
fn spot_recording_parses_and_chains() {
    let mut r = replay("BINANCE.jsonl.zst", Feed::BinanceSpot);
    assert_eq!(r.counts.get(&FrameKind::BookDelta), Some(&177));
    assert_eq!(r.counts.get(&FrameKind::BookTicker), Some(&84));
    assert_eq!(r.counts.get(&FrameKind::Trade), Some(&2));
    assert_eq!(r.counts.get(&FrameKind::Kline), Some(&2));
    assert_eq!(r.counts.values().sum::<usize>(), 265);
    check_chains(
        "BINANCE.jsonl.zst",
        Feed::BinanceSpot,
        &mut r,
        check_spot_sequence,
    );
}

#[test]
fn futures_recording_parses_and_chains() {
    let mut r = replay("BINANCE_FUTURES.jsonl.zst", Feed::BinanceFutures);
    assert_eq!(r.counts.get(&FrameKind::BookDelta), Some(&764));
    assert_eq!(r.counts.get(&FrameKind::BookTicker), Some(&613));
    assert_eq!(r.counts.get(&FrameKind::Trade), Some(&91));
    assert_eq!(r.counts.get(&FrameKind::Kline), Some(&67));
    assert_eq!(r.counts.values().sum::<usize>(), 1535);
    check_chains(
        "BINANCE_FUTURES.jsonl.zst",
        Feed::BinanceFutures,
        &mut r,
        check_futures_sequence,
    );
}

// ---------------------------------------------------------------- REST

#[test]
fn rest_bodies() {
    let reg = futures_registry();
    let btc = reg.get(Exchange::BinanceFutures, "BTCUSDT").unwrap();
    let mut p = VenueParser::new(Feed::BinanceFutures);
    let mut rest = |url: &str, body: &str| {
        let mut events = Vec::new();
        let mut body = body.as_bytes().to_vec();
        let r = p.parse_rest(url, &mut body, NO_EXCH, &reg, &mut |e| events.push(e));
        (r, events)
    };
    let (r, e) = rest(
        "https://fapi.binance.com/fapi/v1/openInterest?symbol=BTCUSDT",
        r#"{"openInterest":"10659.509","symbol":"BTCUSDT","time":1589437530011}"#,
    );
    assert_eq!(r, Ok(FrameKind::DerivativeTicker));
    assert_eq!(
        e,
        vec![Event::ticker(DerivativeTicker {
            instrument: btc,
            open_interest: Some(dec("10659.509")),
            stamps: Stamps {
                exch_ts_ns: 1589437530011 * 1_000_000,
                ..NO_EXCH
            },
            ..DerivativeTicker::default()
        })]
    );
    let (r, e) = rest(
        "https://fapi.binance.com/fapi/v1/depth?limit=5&symbol=BTCUSDT",
        r#"{"lastUpdateId":7,"E":2,"T":1,"bids":[],"asks":[["2","3"]]}"#,
    );
    assert_eq!(r, Ok(FrameKind::BookSnapshot));
    assert_eq!(e.len(), 3);
    assert_eq!(book_seq(&e), seq(7, 7, None));
    // Error bodies, unknown symbols, bodies of URLs that are not snapshots.
    assert_eq!(
        rest(
            "https://fapi.binance.com/fapi/v1/depth?symbol=XYZ",
            r#"{"code":-1121,"msg":"Invalid symbol."}"#
        ),
        (Err(ParseError::VenueError), vec![])
    );
    assert_eq!(
        rest(
            "https://fapi.binance.com/fapi/v1/depth?symbol=XYZUSDT",
            r#"{"lastUpdateId":7,"bids":[],"asks":[]}"#
        ),
        (Err(ParseError::UnknownSymbol), vec![])
    );
    assert_eq!(
        rest(
            "https://fapi.binance.com/fapi/v1/depth",
            r#"{"lastUpdateId":7,"bids":[],"asks":[]}"#
        ),
        (Err(ParseError::MissingField("symbol")), vec![])
    );
    assert_eq!(
        rest("https://fapi.binance.com/fapi/v1/exchangeInfo", "not json"),
        (Ok(FrameKind::Ignored), vec![])
    );
    assert_eq!(
        rest(
            "https://fapi.binance.com/fapi/v1/depth?symbol=BTCUSDT",
            "[1]"
        ),
        (Err(ParseError::Schema), vec![])
    );
}

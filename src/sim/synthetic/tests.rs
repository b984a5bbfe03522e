//! Every feed's synthetic frames through pinfeed's own parser and book engine: zero parse
//! errors, zero gaps, OKX checksums passing, books never crossed, trade ids increasing.

use std::time::{Duration, Instant};

use tungstenite::Utf8Bytes;

use super::pacing::Class;
use super::session::SynthSession;
use super::{Synthetic, SyntheticOptions};
use crate::book::{BookEngine, SyncState};
use crate::model::{BookSide, Event, InstrumentId, Instruments, Stamps};
use crate::sim::catalog::split_url;
use crate::sim::session::{SETTLE, Session};
use crate::venue::{self, Channels, Feed, FrameKind, VenueParser};

fn synthetic(feed: Feed) -> Synthetic {
    let opts = SyntheticOptions {
        rate_per_s: 20_000.0,
        feeds: vec![feed],
        seed: 11,
        ..SyntheticOptions::default()
    };
    Synthetic::new(opts, Instant::now()).unwrap()
}

/// What `pinfeed run` would subscribe for every synthetic instrument of `feed`: the session
/// that answered, its client-side plan, and the URL path/query it connected to.
fn subscribed<'a>(
    syn: &Synthetic,
    cat: &'a crate::sim::catalog::FeedCatalog,
) -> (Session<'a>, venue::ConnectPlan) {
    let plan = venue::connect_plan(
        cat.feed,
        &format!("ws://sim/{}", cat.feed.name()),
        "http://sim",
        &syn.subscriptions(cat.feed),
    );
    let (path, query) = split_url(&plan.ws_url);
    let now = Instant::now();
    let mut s = Session::new(cat, false, path, query, "c".into(), now);
    for f in &plan.subscribe_frames {
        s.on_text(f, now);
    }
    (s, plan)
}

struct Engine {
    instruments: Instruments,
    engine: BookEngine,
    parser: VenueParser,
    trade_ids: Vec<u64>,
    errors: u64,
    kinds: Vec<FrameKind>,
    books: Vec<InstrumentId>,
}

impl Engine {
    fn new(syn: &Synthetic, feed: Feed) -> Engine {
        let mut instruments = Instruments::new();
        let mut engine = BookEngine::new();
        let mut books = Vec::new();
        for sub in syn.subscriptions(feed) {
            let id = instruments.intern(sub.exchange, &sub.symbol);
            engine.register(
                id,
                venue::sync_rule(sub.exchange),
                venue::checksum_fn(sub.exchange),
                venue::needs_rest_snapshot(sub.exchange),
            );
            if sub.channels.contains(Channels::BOOK) {
                books.push(id);
            }
        }
        Engine {
            instruments,
            engine,
            parser: VenueParser::new(feed),
            trade_ids: Vec::new(),
            errors: 0,
            kinds: Vec::new(),
            books,
        }
    }

    fn feed(&mut self, frame: &[u8], rest_url: Option<&str>) {
        let mut buf = frame.to_vec();
        let Engine {
            instruments,
            engine,
            parser,
            trade_ids,
            ..
        } = self;
        let mut sink = |ev: Event| {
            engine.on_event(&ev);
            match &ev {
                Event::Trade(t) => {
                    trade_ids.push(t.id.expect("trade id").as_str().parse().unwrap());
                }
                Event::BookEnd(end) => {
                    if let Some(book) = engine.book(end.instrument) {
                        let bid = book.decimal_levels(BookSide::Bid).next();
                        let ask = book.decimal_levels(BookSide::Ask).next();
                        if let (Some(b), Some(a)) = (bid, ask) {
                            assert!(b.0.cmp_value(a.0).is_lt(), "crossed: {b:?} {a:?}");
                        }
                    }
                }
                _ => {}
            }
        };
        let r = match rest_url {
            Some(url) => {
                parser.parse_rest(url, &mut buf, Stamps::default(), instruments, &mut sink)
            }
            None => parser.parse_frame(&mut buf, Stamps::default(), instruments, &mut sink),
        };
        match r {
            Ok(k) => self.kinds.push(k),
            Err(e) => {
                self.errors += 1;
                panic!("{e}: {}", String::from_utf8_lossy(frame));
            }
        }
    }

    fn check(&self, feed: Feed) {
        assert_eq!(self.errors, 0);
        for id in &self.books {
            let st = self.engine.stats(*id).unwrap();
            assert_eq!(st.gaps, 0, "{feed:?} {:?}", self.instruments.name(*id));
            assert_eq!(st.checksum_fail, 0);
            assert!(st.deltas > 100, "{feed:?} {st:?}");
            assert_eq!(self.engine.state(*id), Some(SyncState::Synced));
            if feed == Feed::Okx {
                assert!(st.checksum_pass > 100, "{st:?}");
            }
        }
        assert!(self.trade_ids.len() > 50, "{feed:?}");
        assert!(self.trade_ids.windows(2).all(|w| w[0] < w[1]));
        let kinds = |k: FrameKind| self.kinds.iter().filter(|x| **x == k).count();
        assert!(kinds(FrameKind::BookTicker) > 0, "{feed:?}");
        if feed != Feed::BinanceSpot && feed != Feed::BybitSpot {
            assert!(kinds(FrameKind::DerivativeTicker) > 0, "{feed:?}");
            assert!(kinds(FrameKind::Liquidation) > 0 || feed == Feed::Deribit);
        }
    }
}

/// Runs `ms` simulated milliseconds of flow.
fn run(flow: &mut SynthSession<'_>, start: Instant, ms: u64, out: &mut Vec<Utf8Bytes>) {
    for t in 0..ms {
        flow.generate(start + Duration::from_millis(t), usize::MAX, |f, _| {
            out.push(f)
        });
    }
}

#[test]
fn every_feed_parses_and_chains() {
    for feed in Feed::ALL {
        let syn = synthetic(feed);
        let cat = syn.catalog();
        let fc = &cat.feeds[0];
        let (session, plan) = subscribed(&syn, fc);
        assert!(!session.topics().is_empty());
        let mut flow = SynthSession::new(&syn, 0, false);
        let mut frames = Vec::new();
        flow.sync_topics(session.topics(), &mut frames);
        assert_eq!(
            flow.topic_keys().count(),
            session.topics().len(),
            "{feed:?}: every subscribed topic is served"
        );
        let mut engine = Engine::new(&syn, feed);
        // Binance: the REST snapshot of the live book first
        for (_, url) in &plan.snapshot_urls {
            let (path, query) = split_url(url);
            let body = syn.http_body(path, query).expect("snapshot body");
            engine.feed(&body, Some(url));
        }
        for (_, url, _) in &plan.poll_urls {
            let (path, query) = split_url(url);
            let body = syn.http_body(path, query).expect("open interest body");
            engine.feed(&body, Some(url));
        }
        let start = Instant::now() + SETTLE;
        run(&mut flow, start, 1000, &mut frames);
        for f in &frames {
            engine.feed(f.as_bytes(), None);
        }
        engine.check(feed);
        // the mix: L2 deltas dominate
        let deltas = engine
            .kinds
            .iter()
            .filter(|k| **k == FrameKind::BookDelta)
            .count();
        assert!(
            deltas * 2 > frames.len(),
            "{feed:?}: {deltas} of {}",
            frames.len()
        );
    }
}

#[test]
fn binance_rest_snapshot_mid_stream_is_bracketed_by_the_next_diff() {
    for feed in [
        Feed::BinanceFutures,
        Feed::BinanceDelivery,
        Feed::BinanceSpot,
    ] {
        let syn = synthetic(feed);
        let cat = syn.catalog();
        let (session, plan) = subscribed(&syn, &cat.feeds[0]);
        let mut flow = SynthSession::new(&syn, 0, false);
        let mut frames = Vec::new();
        flow.sync_topics(session.topics(), &mut frames);
        let start = Instant::now();
        run(&mut flow, start, 500, &mut frames);
        // a client that connected late: the last few diffs in flight, then the snapshot
        let mut engine = Engine::new(&syn, feed);
        let in_flight = frames.len() - 20;
        for f in &frames[in_flight..] {
            engine.feed(f.as_bytes(), None);
        }
        for (_, url) in &plan.snapshot_urls {
            let (path, query) = split_url(url);
            engine.feed(&syn.http_body(path, query).unwrap(), Some(url));
        }
        frames.clear();
        run(
            &mut flow,
            start + Duration::from_millis(500),
            1500,
            &mut frames,
        );
        for f in &frames {
            engine.feed(f.as_bytes(), None);
        }
        for id in &engine.books {
            let st = engine.engine.stats(*id).unwrap();
            assert_eq!(st.gaps, 0, "{feed:?} {st:?}");
            assert_eq!(engine.engine.state(*id), Some(SyncState::Synced));
        }
    }
}

#[test]
fn resubscribing_a_book_sends_a_fresh_snapshot() {
    let syn = synthetic(Feed::BybitLinear);
    let cat = syn.catalog();
    let now = Instant::now();
    let mut s = Session::new(
        &cat.feeds[0],
        false,
        "/v5/public/linear",
        "",
        "c".into(),
        now,
    );
    let mut flow = SynthSession::new(&syn, 0, false);
    let sub = r#"{"op":"subscribe","args":["orderbook.50.BTCUSDT"]}"#;
    let unsub = r#"{"op":"unsubscribe","args":["orderbook.50.BTCUSDT"]}"#;
    let mut out = s.on_text(sub, now);
    flow.sync_topics(s.topics(), &mut out);
    assert_eq!(out.len(), 2);
    assert!(out[1].contains(r#""type":"snapshot""#));
    let mut frames = vec![out[1].clone()];
    run(&mut flow, now, 200, &mut frames);
    assert!(!frames.is_empty());
    let mut out = s.on_text(unsub, now);
    flow.sync_topics(s.topics(), &mut out);
    assert_eq!(out.len(), 1, "ack only");
    assert_eq!(flow.topic_keys().count(), 0);
    let mut out = s.on_text(sub, now);
    flow.sync_topics(s.topics(), &mut out);
    assert_eq!(out.len(), 2);
    assert!(out[1].contains(r#""type":"snapshot""#));
    // the snapshot continues the chain: parsed after the earlier frames, no gap
    let mut engine = Engine::new(&syn, Feed::BybitLinear);
    for f in frames.iter().chain(out[1..].iter()) {
        engine.feed(f.as_bytes(), None);
    }
    frames.clear();
    run(
        &mut flow,
        now + Duration::from_millis(200),
        200,
        &mut frames,
    );
    for f in &frames {
        engine.feed(f.as_bytes(), None);
    }
    let id = engine.books[0];
    assert_eq!(engine.engine.stats(id).unwrap().gaps, 0);
    let snapshots = engine
        .kinds
        .iter()
        .filter(|k| **k == FrameKind::BookSnapshot)
        .count();
    assert_eq!(snapshots, 2);
    assert_eq!(engine.engine.state(id), Some(SyncState::Synced));
}

#[test]
fn session_rates_share_the_total_by_topics() {
    let syn = synthetic(Feed::Deribit);
    let cat = syn.catalog();
    let (session, _) = subscribed(&syn, &cat.feeds[0]);
    let mut a = SynthSession::new(&syn, 0, false);
    let mut sink = Vec::new();
    a.sync_topics(session.topics(), &mut sink);
    let mut b = SynthSession::new(&syn, 0, false);
    b.sync_topics(session.topics(), &mut sink);
    // two sessions with the same topics: half each of the 20,000/s total
    let (mut na, mut nb) = (0, 0);
    let start = Instant::now();
    for t in 0..1000 {
        let now = start + Duration::from_millis(t);
        na += a.generate(now, usize::MAX, |_, _| {});
        nb += b.generate(now, usize::MAX, |_, _| {});
    }
    assert!((8_000..12_000).contains(&na), "{na}");
    assert!((8_000..12_000).contains(&nb), "{nb}");
    drop(b);
    assert_eq!(
        syn.class_topics[Class::L2 as usize].load(std::sync::atomic::Ordering::Relaxed),
        2
    );
}

#[test]
fn unknown_topics_are_acknowledged_counted_and_silent() {
    for (feed, keys) in [
        (
            Feed::BinanceFutures,
            vec![
                "dogeusdt@depth@100ms",
                "btcusdt@kline_1m",
                "btcusdt@depth20",
                "nope",
                "@",
            ],
        ),
        (
            Feed::BinanceSpot,
            vec!["btcusdt@markPrice@1s", "btcusdt@forceOrder"],
        ),
        (
            Feed::BybitSpot,
            vec![
                "allLiquidation.BTCUSDT",
                "orderbook.x.BTCUSDT",
                "kline.1.BTCUSDT",
            ],
        ),
        (
            Feed::Okx,
            vec![
                r#"{"channel":"tickers","instId":"BTC-USDT"}"#,
                r#"{"channel":"books","instId":"SOL-USDT"}"#,
                r#"{"channel":"liquidation-orders","instType":"OPTION"}"#,
                "{not json",
            ],
        ),
        (
            Feed::Deribit,
            vec!["book.SOL-PERPETUAL.100ms", "book.BTC-PERPETUAL", "x"],
        ),
    ] {
        let syn = synthetic(feed);
        let mut flow = SynthSession::new(&syn, 0, false);
        let keys: Vec<String> = keys.iter().map(|k| k.to_string()).collect();
        let mut out = Vec::new();
        flow.sync_topics(&keys, &mut out);
        flow.sync_topics(&keys, &mut out);
        assert!(out.is_empty(), "{feed:?}");
        assert_eq!(flow.topic_keys().count(), 0, "{feed:?}");
        assert_eq!(syn.stats().unknown_topics, keys.len() as u64, "{feed:?}");
        let mut frames = 0;
        run(&mut flow, Instant::now(), 100, &mut Vec::new());
        frames += flow.frames_sent;
        assert_eq!(frames, 0);
    }
}

#[test]
fn rest_requests_the_simulator_cannot_answer() {
    let syn = synthetic(Feed::BinanceFutures);
    for (path, query) in [
        ("/fapi/v1/depth", ""),
        ("/fapi/v1/depth", "symbol=DOGEUSDT"),
        ("/dapi/v1/depth", "symbol=BTCUSD_PERP"), // feed not served
        ("/api/v3/depth", "symbol=BTCUSDT"),
        ("/fapi/v1/exchangeInfo", ""),
    ] {
        assert!(syn.http_body(path, query).is_none(), "{path}?{query}");
    }
    // a bad or zero limit gives the default or one level, never an error
    for (query, levels) in [
        ("symbol=BTCUSDT&limit=abc", 40),
        ("symbol=btcusdt&limit=0", 1),
    ] {
        let body = syn
            .http_body("/binance-futures/fapi/v1/depth", query)
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["bids"].as_array().unwrap().len(), levels, "{query}");
        assert!(v["lastUpdateId"].as_u64().unwrap() > 0);
    }
}

#[test]
fn binance_raw_streams_are_payloads() {
    let syn = synthetic(Feed::BinanceFutures);
    let mut flow = SynthSession::new(&syn, 0, true);
    let mut out = Vec::new();
    flow.sync_topics(&["btcusdt@aggTrade".to_string()], &mut out);
    let mut frames = Vec::new();
    run(&mut flow, Instant::now(), 200, &mut frames);
    assert!(!frames.is_empty());
    let mut engine = Engine::new(&syn, Feed::BinanceFutures);
    for f in &frames {
        assert!(f.starts_with(r#"{"e":"aggTrade""#), "{f}");
        engine.feed(f.as_bytes(), None);
    }
    assert_eq!(engine.trade_ids.len(), frames.len());
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(128))]

    /// Whatever topic keys a client subscribes, no feed panics, and only known topics serve.
    #[test]
    fn arbitrary_topic_keys_never_panic(keys in proptest::collection::vec(
        proptest::prop_oneof![
            "[a-z@.0-9]{0,24}",
            "(book|trades|ticker|quote|orderbook|publicTrade|tickers)\\.[A-Z-]{0,14}\\.[0-9a-z]{0,6}",
            "[a-z]{0,8}@(depth|aggTrade|bookTicker|markPrice|forceOrder)(@[0-9a-z]{0,5})?",
            "\\{\"channel\":\"[a-z-]{0,12}\",\"inst(Id|Type)\":\"[A-Z-]{0,14}\"\\}",
            ".{0,40}",
        ],
        0..8,
    )) {
        for feed in Feed::ALL {
            let syn = synthetic(feed);
            let mut flow = SynthSession::new(&syn, 0, false);
            let mut out = Vec::new();
            flow.sync_topics(&keys, &mut out);
            run(&mut flow, Instant::now(), 5, &mut out);
            proptest::prop_assert!(flow.topic_keys().count() <= keys.len());
        }
    }
}

#[test]
fn bursts_multiply_the_l2_rate_inside_the_window_only() {
    let start = Instant::now();
    let opts = SyntheticOptions {
        rate_per_s: 10_000.0,
        burst: Some("10x:100ms/1s".parse().unwrap()),
        feeds: vec![Feed::Deribit],
        ..SyntheticOptions::default()
    };
    let syn = Synthetic::new(opts, start).unwrap();
    let cat = syn.catalog();
    let (session, _) = subscribed(&syn, &cat.feeds[0]);
    let mut flow = SynthSession::new(&syn, 0, false);
    flow.sync_topics(session.topics(), &mut Vec::new());
    let schedule = syn.schedule().unwrap();
    let (mut l2_in, mut l2_out, mut other_in, mut other_out) = (0, 0, 0, 0);
    for t in 0..2000u64 {
        let now = start + Duration::from_millis(t);
        let inside = schedule.in_burst(now);
        flow.generate(now, usize::MAX, |f, _| {
            let l2 = f.contains(r#""channel":"book."#) && !f.contains(r#""type":"snapshot""#);
            match (l2, inside) {
                (true, true) => l2_in += 1,
                (true, false) => l2_out += 1,
                (false, true) => other_in += 1,
                (false, false) => other_out += 1,
            }
        });
    }
    // 0.2 s inside, 1.8 s outside: L2 at 70,000/s vs 7,000/s; the rest unchanged
    let per_s = |n: i32, s: f64| f64::from(n) / s;
    let (l2_in, l2_out) = (per_s(l2_in, 0.2), per_s(l2_out, 1.8));
    assert!((50_000.0..90_000.0).contains(&l2_in), "{l2_in}");
    assert!((5_000.0..9_000.0).contains(&l2_out), "{l2_out}");
    let (o_in, o_out) = (per_s(other_in, 0.2), per_s(other_out, 1.8));
    assert!((1_500.0..4_500.0).contains(&o_in), "{o_in}");
    assert!((2_300.0..3_700.0).contains(&o_out), "{o_out}");
}

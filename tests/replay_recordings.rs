//! Replays every recording in `../shared/data/recordings` (or `$PINFEED_DATA/recordings`) and
//! checks what the data proves on its own: no unparsed frames, no gaps, every OKX checksum
//! passes, Binance books agree with the venue's own `bookTicker`, Deribit books agree with the
//! venue's own tickers, trade ids are unique per symbol.

use std::collections::{HashMap, HashSet};

use pinfeed::book::Disposition;
use pinfeed::model::{Decimal, Event, Exchange, InstrumentId};
use pinfeed::replay::Replay;
use pinfeed::sim::recording::{Recording, data_dir};

fn load(name: &str) -> Recording {
    Recording::open(&data_dir().join("recordings").join(name)).expect("recording")
}

/// A best level: `(price, size)`.
type Top = Option<(Decimal, Decimal)>;
/// A bookTicker: `(u, (bid, bid size), (ask, ask size))`.
type Bbo = (u64, (Decimal, Decimal), (Decimal, Decimal));

fn same(a: Option<(Decimal, Decimal)>, b: Option<(Decimal, Decimal)>) -> bool {
    match (a, b) {
        (None, None) => true,
        (Some((p1, q1)), Some((p2, q2))) => p1.cmp_value(p2).is_eq() && q1.cmp_value(q2).is_eq(),
        _ => false,
    }
}

/// Replays one recording and runs the checks common to all venues; returns the replay.
fn replay_checked(
    name: &str,
    observe: impl FnMut(&Event, &pinfeed::book::BookEngine, &pinfeed::model::Instruments),
) -> Replay {
    let rec = load(name);
    let mut replay = Replay::prepare(&[rec]).expect("prepare");
    replay.run::<Vec<u8>>(None, observe).expect("run");
    for r in &replay.reports {
        assert_eq!(
            r.unparsed(),
            0,
            "{name} {:?}: unparsed frames {:?}",
            r.feed,
            r.unparsed_by_kind
        );
        assert!(r.frames > 0);
    }
    let totals = replay.book_totals(None);
    assert_eq!(totals.gaps, 0, "{name}: gaps");
    assert_eq!(totals.checksum_fail, 0, "{name}: checksum failures");
    assert!(totals.snapshots > 0, "{name}: no snapshot applied");
    assert!(totals.deltas > 0, "{name}: no delta applied");
    assert_eq!(
        totals.synced, totals.books,
        "{name}: books not synced at the end: {totals:?}"
    );
    replay
}

/// Trade ids never repeat within a symbol.
fn unique_trade_ids() -> (impl FnMut(&Event), impl FnOnce() -> usize) {
    let seen = std::rc::Rc::new(std::cell::RefCell::new(
        HashSet::<(InstrumentId, String)>::new(),
    ));
    let s2 = seen.clone();
    (
        move |ev: &Event| {
            if let Event::Trade(t) = ev {
                let id = t.id.expect("trade id").as_str().to_string();
                assert!(
                    seen.borrow_mut().insert((t.instrument, id.clone())),
                    "duplicate trade id {id}"
                );
            }
        },
        move || s2.borrow().len(),
    )
}

#[test]
fn binance_books_match_book_ticker() {
    for name in ["BINANCE.jsonl.zst", "BINANCE_FUTURES.jsonl.zst"] {
        // (instrument, u, best bid, best ask) after every applied depth event
        let mut after_depth = Vec::new();
        // (instrument, u, bid, ask) of every bookTicker
        let mut tickers: HashMap<InstrumentId, Vec<Bbo>> = HashMap::new();
        let (mut trades, trade_count) = unique_trade_ids();
        replay_checked(name, |ev, engine, _| {
            trades(ev);
            match ev {
                Event::BookEnd(end)
                    if engine.last_message_applied()
                        && engine.disposition() == Disposition::Apply =>
                {
                    let book = engine.book(end.instrument).unwrap();
                    let Some(pinfeed::model::Sequence::Binance { last_update_id, .. }) =
                        engine.last_sequence(end.instrument)
                    else {
                        panic!("binance book without binance sequence")
                    };
                    after_depth.push((
                        end.instrument,
                        last_update_id,
                        book.best_bid(),
                        book.best_ask(),
                    ));
                }
                Event::BookTicker(t) => {
                    tickers.entry(t.instrument).or_default().push((
                        t.update_id.expect("bookTicker u"),
                        (t.bid_price.unwrap(), t.bid_qty.unwrap()),
                        (t.ask_price.unwrap(), t.ask_qty.unwrap()),
                    ));
                }
                _ => {}
            }
        });
        assert!(trade_count() > 0, "{name}: no trades");
        let mut checked = 0;
        for (id, u, bid, ask) in &after_depth {
            let Some(list) = tickers.get(id) else {
                continue;
            };
            // latest bookTicker whose update id is at most the event's u
            let Some(t) = list.iter().filter(|t| t.0 <= *u).max_by_key(|t| t.0) else {
                continue;
            };
            assert!(
                same(*bid, Some(t.1)),
                "{name} {id:?} u={u}: book bid {bid:?} != bookTicker {:?} (u={})",
                t.1,
                t.0
            );
            assert!(
                same(*ask, Some(t.2)),
                "{name} {id:?} u={u}: book ask {ask:?} != bookTicker {:?} (u={})",
                t.2,
                t.0
            );
            checked += 1;
        }
        assert!(
            checked > 50,
            "{name}: only {checked} depth events had a bookTicker to compare"
        );
    }
}

#[test]
fn okx_every_checksum_passes() {
    let (mut trades, trade_count) = unique_trade_ids();
    let replay = replay_checked("OKX.jsonl.zst", |ev, _, _| trades(ev));
    let totals = replay.book_totals(None);
    let book_frames: u64 = replay
        .reports
        .iter()
        .map(|r| r.frames_by_kind[1] + r.frames_by_kind[2])
        .sum();
    assert_eq!(
        totals.checksum_pass, book_frames,
        "every books message carries a checksum that passes"
    );
    assert!(totals.checksum_pass >= 290);
    assert!(trade_count() > 0);
}

#[test]
fn deribit_books_match_tickers() {
    // (instrument, exchange ts, best bid, best ask) after every applied book message
    let mut states: Vec<(InstrumentId, i64, Top, Top)> = Vec::new();
    let mut tickers = Vec::new();
    let mut begin_ts = 0;
    replay_checked("DERIBIT.jsonl.zst", |ev, engine, _| match ev {
        Event::BookBegin(b) => begin_ts = b.stamps.exch_ts_ns,
        Event::BookEnd(end) if engine.last_message_applied() => {
            let book = engine.book(end.instrument).unwrap();
            states.push((end.instrument, begin_ts, book.best_bid(), book.best_ask()));
        }
        Event::DerivativeTicker(t) => tickers.push(t.unpack()),
        _ => {}
    });
    let mut checked = 0;
    for t in &tickers {
        let Some(state) = states
            .iter()
            .rfind(|s| s.0 == t.instrument && s.1 <= t.stamps.exch_ts_ns)
        else {
            continue;
        };
        // Deribit reports an empty side as price 0 / amount 0
        let side = |p: Option<Decimal>, q: Option<Decimal>| match (p, q) {
            (Some(p), Some(q)) if !p.is_zero() => Some((p, q)),
            _ => None,
        };
        assert!(
            same(state.2, side(t.best_bid_price, t.best_bid_qty)),
            "{:?} at {}: book bid {:?} != ticker {:?}",
            t.instrument,
            t.stamps.exch_ts_ns,
            state.2,
            t.best_bid_price
        );
        assert!(
            same(state.3, side(t.best_ask_price, t.best_ask_qty)),
            "{:?} at {}: book ask {:?} != ticker {:?}",
            t.instrument,
            t.stamps.exch_ts_ns,
            state.3,
            t.best_ask_price
        );
        checked += 1;
    }
    assert!(checked > 50, "only {checked} tickers compared");
}

#[test]
fn bybit_replays_without_gaps_and_merges_tickers() {
    let (mut trades, trade_count) = unique_trade_ids();
    let replay = replay_checked("BYBIT.jsonl.zst", |ev, _, _| trades(ev));
    assert!(trade_count() > 0);
    // linear BTCUSDT and spot BTCUSDT are two books
    let linear = replay.instruments.get(Exchange::Bybit, "BTCUSDT").unwrap();
    let spot = replay
        .instruments
        .get(Exchange::BybitSpot, "BTCUSDT")
        .unwrap();
    assert_ne!(linear, spot);
    let lb = replay.engine.book(linear).unwrap().best_bid().unwrap().0;
    let sb = replay.engine.book(spot).unwrap().best_bid().unwrap().0;
    assert_ne!(lb, sb, "linear and spot books must not be mixed");
    // ticker deltas carry changed fields only: the merged state keeps open interest and funding
    let t = replay.engine.ticker(linear).unwrap().merged;
    assert!(t.open_interest.is_some() && t.funding_rate.is_some() && t.mark_price.is_some());
}

#[test]
fn all_recordings_together_give_books_and_events() {
    let paths = pinfeed::sim::recording::bundled_recordings().unwrap();
    let recs: Vec<_> = paths.iter().map(|p| Recording::open(p).unwrap()).collect();
    let mut replay = Replay::prepare(&recs).unwrap();
    let mut out = Vec::new();
    replay.run(Some(&mut out), |_, _, _| {}).unwrap();
    let text = String::from_utf8(out).unwrap();
    let mut types = HashMap::new();
    for line in text.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        for key in ["type", "symbol", "exchange", "timestamp", "localTimestamp"] {
            assert!(v.get(key).is_some(), "{key} missing in {line}");
        }
        let ty = v["type"].as_str().unwrap().to_string();
        if ty == "trade" || ty == "liquidation" {
            assert!(v["price"].is_number() && v["amount"].is_number(), "{line}");
        }
        *types.entry(ty).or_insert(0) += 1;
    }
    for ty in ["trade", "book_change", "book_ticker", "derivative_ticker"] {
        assert!(
            types.get(ty).copied().unwrap_or(0) > 0,
            "no {ty} events: {types:?}"
        );
    }
    let books = replay.books_json();
    for (exchange, symbols) in books.as_object().unwrap() {
        assert!(Exchange::from_id(exchange).is_some());
        for (symbol, b) in symbols.as_object().unwrap() {
            assert_eq!(b["status"], "synced", "{exchange} {symbol}");
            let bids = b["bids"].as_array().unwrap();
            assert!(bids.len() <= 20);
            assert_eq!(bids.len() as u64, b["bid_levels"].as_u64().unwrap().min(20));
            // best first: bids descending, asks ascending
            let prices = |side: &str| -> Vec<f64> {
                b[side]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|l| l[0].as_str().unwrap().parse().unwrap())
                    .collect()
            };
            let bp = prices("bids");
            assert!(
                bp.windows(2).all(|w| w[0] > w[1]),
                "{exchange} {symbol} bids not descending"
            );
            let ap = prices("asks");
            assert!(
                ap.windows(2).all(|w| w[0] < w[1]),
                "{exchange} {symbol} asks not ascending"
            );
            if let (Some(b0), Some(a0)) = (bp.first(), ap.first()) {
                assert!(b0 < a0, "{exchange} {symbol} crossed book");
            }
        }
    }
    let summary = replay.summary();
    let last = summary.lines().last().unwrap();
    assert!(
        last.starts_with("total: 5573 frames, 0 gaps, 0 checksum failures, "),
        "{last}"
    );
}

//! Unit tests of the okx venue module.
use std::collections::{BTreeMap, HashMap};

use proptest::prelude::*;

use super::*;
use crate::model::{BookEnd, Level};
use crate::sim::recording::Record;
use crate::testutil::{self, fixture_lines, recording, recv_frames};
use crate::venue::{VenueParser, connect_plan as plan_for, subscriptions_from_wire as wire};

fn d(s: &str) -> Decimal {
    Decimal::parse(s.as_bytes()).unwrap()
}

fn okx(seq_id: i64, prev_seq_id: i64) -> Sequence {
    Sequence::Okx {
        seq_id,
        prev_seq_id,
    }
}

fn ms(ms: i64) -> Stamps {
    Stamps {
        exch_ts_ns: ms * 1_000_000,
        recv_ts_ns: 1,
        recv_mono_ns: 2,
        push_delta_ns: 0,
        applied_delta_ns: 0,
    }
}

fn parser() -> VenueParser {
    VenueParser::new(Feed::Okx)
}

fn one(events: &[Event]) -> Event {
    assert_eq!(events.len(), 1, "{events:?}");
    events[0]
}

/// A book message split into its parts.
fn book(events: &[Event]) -> (BookBegin, Vec<Level>, BookEnd) {
    let Event::BookBegin(begin) = events[0] else {
        panic!("{events:?}")
    };
    let Event::BookEnd(end) = events[events.len() - 1] else {
        panic!("{events:?}")
    };
    let levels = events[1..events.len() - 1]
        .iter()
        .map(|e| match e {
            Event::Level(l) => *l,
            other => panic!("{other:?}"),
        })
        .collect();
    (begin, levels, end)
}

fn level(side: BookSide, price: &str, qty: &str) -> Level {
    Level {
        side,
        price: d(price),
        qty: d(qty),
    }
}

// ---- checksum -----------------------------------------------------------------------

#[test]
fn checksum_matches_the_documented_examples() {
    // docs-v5 "Checksum": "3366.1:7:3366.8:9:3366:6:3368:8" (more than 25 levels, 2 shown)
    let bids = [(d("3366.1"), d("7")), (d("3366"), d("6"))];
    let asks = [(d("3366.8"), d("9")), (d("3368"), d("8"))];
    assert_eq!(checksum(&bids, &asks), -1881014294);
    // "3366.1:7:3366.8:9:3368:8:3372:8" (less than 25 levels: the ask side continues alone)
    let bids = [(d("3366.1"), d("7"))];
    let asks = [
        (d("3366.8"), d("9")),
        (d("3368"), d("8")),
        (d("3372"), d("8")),
    ];
    assert_eq!(checksum(&bids, &asks), 831078360);
    assert_eq!(checksum(&[], &[]), crc32fast::hash(b"") as i32);
}

#[test]
fn checksum_keeps_the_exact_text_and_caps_at_25_levels() {
    let exact = [(d("0.50"), d("0.000100")), (d("-1.5"), d("7.00"))];
    assert_eq!(
        checksum(&exact, &[]),
        crc32fast::hash(b"0.50:0.000100:-1.5:7.00") as i32
    );
    assert_ne!(
        checksum(&[(d("0.50"), d("1"))], &[]),
        checksum(&[(d("0.5"), d("1"))], &[])
    );
    // the longest numbers fit the stack buffer: 21 bytes each
    let longest = [Decimal::new(i64::MIN, 18), Decimal::new(-1, 18)];
    let many = vec![(longest[0], longest[1]); 30];
    let mut text = Vec::new();
    for (p, q) in many.iter().take(CHECKSUM_LEVELS).flat_map(|l| [*l, *l]) {
        for v in [p, q] {
            if !text.is_empty() {
                text.push(b':');
            }
            v.write_exact(&mut text);
        }
    }
    assert_eq!(text.len(), 100 * 21 + 99);
    assert_eq!(checksum(&many, &many), crc32fast::hash(&text) as i32);
    assert_eq!(checksum(&many[..25], &many[..25]), checksum(&many, &many));
}

/// Sorted sides of a test book keyed by value; the text of the latest update is kept.
#[derive(Default)]
struct TestBook {
    bids: BTreeMap<i128, (Decimal, Decimal)>,
    asks: BTreeMap<i128, (Decimal, Decimal)>,
}

impl TestBook {
    fn key(price: Decimal) -> i128 {
        i128::from(price.mantissa) * 10i128.pow(u32::from(18 - price.decimals))
    }

    fn apply(&mut self, l: Level) {
        let side = match l.side {
            BookSide::Bid => &mut self.bids,
            BookSide::Ask => &mut self.asks,
        };
        if l.qty.is_zero() {
            side.remove(&Self::key(l.price));
        } else {
            side.insert(Self::key(l.price), (l.price, l.qty));
        }
    }

    fn checksum(&self) -> i32 {
        let bids: Vec<_> = self.bids.values().rev().take(25).copied().collect();
        let asks: Vec<_> = self.asks.values().take(25).copied().collect();
        checksum(&bids, &asks)
    }
}

fn recording_instruments() -> (Instruments, Vec<Subscription>) {
    let rec = recording("OKX.jsonl.zst");
    let mut url = String::new();
    let mut sent = Vec::new();
    for r in &rec.records {
        match r {
            Record::Connect { addr, .. } => url = addr.clone(),
            Record::Send { data, .. } => sent.push(data.clone()),
            _ => {}
        }
    }
    let subs = wire(Feed::Okx, &url, &sent);
    let mut instruments = Instruments::new();
    for s in &subs {
        instruments.intern(s.exchange, &s.symbol);
    }
    (instruments, subs)
}

#[test]
fn every_recorded_books_checksum_matches_once_applied() {
    let (instruments, _) = recording_instruments();
    let mut p = parser();
    let mut books: HashMap<InstrumentId, TestBook> = HashMap::new();
    let mut checked = 0;
    for (_, frame) in recv_frames(&recording("OKX.jsonl.zst")) {
        let (result, events) = testutil::parse(&mut p, &frame, &instruments);
        result.unwrap();
        let mut current = None;
        for e in events {
            match e {
                Event::BookBegin(b) => {
                    if b.is_snapshot {
                        books.insert(b.instrument, TestBook::default());
                    }
                    current = Some(b.instrument);
                }
                Event::Level(l) => books.get_mut(&current.unwrap()).unwrap().apply(l),
                Event::BookEnd(end) => {
                    let want = end.checksum.expect("recorded books carry checksums");
                    assert_eq!(books[&end.instrument].checksum(), want, "{frame}");
                    checked += 1;
                }
                _ => {}
            }
        }
    }
    assert_eq!(checked, 3 + 287);
}

// ---- recording ----------------------------------------------------------------------

#[test]
fn every_recorded_frame_parses() {
    let (instruments, subs) = recording_instruments();
    let spot = Channels::TRADES | Channels::BOOK;
    let derivative = spot | Channels::DERIVATIVE_TICKER;
    let expected = [
        (Exchange::OkexFutures, "BTC-USD-220527", derivative),
        (Exchange::OkexSwap, "UNI-USD-SWAP", derivative),
        (Exchange::Okex, "BTC-USDT", spot),
    ];
    let got: Vec<_> = subs
        .iter()
        .map(|s| (s.exchange, s.symbol.as_str(), s.channels))
        .collect();
    assert_eq!(got, expected);
    let mut p = parser();
    let mut kinds: HashMap<FrameKind, usize> = HashMap::new();
    let mut tickers = 0;
    for (_, frame) in recv_frames(&recording("OKX.jsonl.zst")) {
        let (result, events) = testutil::parse(&mut p, &frame, &instruments);
        let kind = result.unwrap_or_else(|e| panic!("{e}: {frame}"));
        *kinds.entry(kind).or_default() += 1;
        for e in events {
            if let Event::DerivativeTicker(t) = e {
                let t = t.unpack();
                assert!(t.last_price.is_some() && t.best_bid_price.is_some());
                assert!(t.stamps.exch_ts_ns > 1_652_000_000_000_000_000);
                tickers += 1;
            }
        }
    }
    assert_eq!(kinds[&FrameKind::Ack], 18);
    assert_eq!(kinds[&FrameKind::Trade], 74);
    assert_eq!(kinds[&FrameKind::BookSnapshot], 3);
    assert_eq!(kinds[&FrameKind::BookDelta], 287);
    assert_eq!(kinds[&FrameKind::DerivativeTicker], 3);
    assert_eq!(kinds[&FrameKind::Ignored], 25); // spot tickers
    assert_eq!(tickers, 3);
}

// ---- fixtures -----------------------------------------------------------------------

fn fixture_instruments() -> Instruments {
    use Exchange::*;
    testutil::instruments(&[
        (Okex, "CRV-USDT"),
        (Okex, "BTC-DAI"),
        (Okex, "ETC-ETH"),
        (Okex, "ACT-USDT"),
        (Okex, "BSV-USDT"),
        (OkexFutures, "ADA-USDT-211224"),
        (OkexFutures, "FIL-USD-220325"),
        (OkexFutures, "FIL-USDT-220325"),
        (OkexFutures, "XRP-USD-211231"),
        (OkexFutures, "LTC-USDT-220624"),
        (OkexFutures, "BTC-USD-220624"),
        (OkexFutures, "BTC-USDT-211231"),
        (OkexFutures, "XRP-USD-230929"),
        (OkexFutures, "BTC-USD_UM_XPERP-310404"),
        (OkexSwap, "REN-USDT-SWAP"),
        (OkexSwap, "WNCG-USDT-SWAP"),
        (OkexSwap, "BTC-USDT-SWAP"),
        (OkexSwap, "SOS-USDT-SWAP"),
        (OkexSwap, "BTC-USDC-SWAP"),
    ])
}

struct Fixture {
    instruments: Instruments,
    parser: VenueParser,
}

impl Fixture {
    fn new() -> Fixture {
        Fixture {
            instruments: fixture_instruments(),
            parser: parser(),
        }
    }

    fn id(&self, symbol: &str) -> InstrumentId {
        self.instruments
            .get(exchange_of(symbol).unwrap(), symbol)
            .unwrap()
    }

    fn parse(&mut self, line: &str) -> (FrameKind, Vec<Event>) {
        let (r, events) = testutil::parse(&mut self.parser, line, &self.instruments);
        (r.unwrap_or_else(|e| panic!("{e}: {line}")), events)
    }

    fn trade(&mut self, line: &str, symbol: &str, want: (&str, &str, &str, Side, i64)) {
        let (kind, events) = self.parse(line);
        assert_eq!(kind, FrameKind::Trade);
        let Event::Trade(t) = one(&events) else {
            panic!("{events:?}")
        };
        assert_eq!(t.instrument, self.id(symbol));
        assert_eq!(t.id.unwrap().as_str(), want.0);
        assert_eq!((t.price, t.qty, t.side), (d(want.1), d(want.2), want.3));
        assert_eq!(t.stamps, ms(want.4));
    }

    fn ticker(&mut self, line: &str, symbol: &str) -> DerivativeTicker {
        let (kind, events) = self.parse(line);
        assert_eq!(kind, FrameKind::DerivativeTicker);
        let Event::DerivativeTicker(t) = one(&events) else {
            panic!("{events:?}")
        };
        assert_eq!(t.instrument, self.id(symbol));
        t.unpack()
    }

    fn liquidation(&mut self, line: &str, symbol: &str, want: (&str, &str, i64)) {
        let (kind, events) = self.parse(line);
        assert_eq!(kind, FrameKind::Liquidation);
        let Event::Liquidation(l) = one(&events) else {
            panic!("{events:?}")
        };
        assert_eq!(l.instrument, self.id(symbol));
        assert_eq!((l.price, l.qty, l.side), (d(want.0), d(want.1), Side::Buy));
        assert_eq!((l.id, l.stamps), (None, ms(want.2)));
    }

    fn ignored(&mut self, line: &str) {
        assert_eq!(self.parse(line), (FrameKind::Ignored, vec![]));
    }
}

fn ticker_fields(t: &DerivativeTicker) -> [Option<Decimal>; 5] {
    [
        t.last_price,
        t.best_bid_price,
        t.best_bid_qty,
        t.best_ask_price,
        t.best_ask_qty,
    ]
}

#[test]
fn spot_fixture() {
    use BookSide::*;
    let lines = fixture_lines("okex.jsonl");
    assert_eq!(lines.len(), 6);
    let mut f = Fixture::new();
    assert_eq!(f.parse(&lines[0]), (FrameKind::Ack, vec![]));
    f.trade(
        &lines[1],
        "CRV-USDT",
        ("21300150", "3.973", "13.491146", Side::Buy, 1639999319938),
    );

    let (kind, events) = f.parse(&lines[2]);
    assert_eq!(kind, FrameKind::BookSnapshot);
    let (begin, levels, end) = book(&events);
    assert_eq!(begin.instrument, f.id("BTC-DAI"));
    assert_eq!(f.instruments.name(begin.instrument).0, Exchange::Okex);
    assert!(begin.is_snapshot);
    assert_eq!(
        (begin.seq, begin.stamps),
        (Sequence::None, ms(1639999305247))
    );
    assert_eq!(levels.len(), 5);
    assert_eq!(levels[0], level(Bid, "46043.4", "0.00375882"));
    assert_eq!(levels[2], level(Bid, "45906.8", "0.0435796"));
    assert_eq!(levels[3], level(Ask, "46167.8", "0.02250534"));
    assert_eq!(end.checksum, Some(-1971869027));
    assert!(!end.aborted);

    let (kind, events) = f.parse(&lines[3]);
    assert_eq!(kind, FrameKind::BookDelta);
    let (begin, levels, end) = book(&events);
    assert_eq!(begin.instrument, f.id("ETC-ETH"));
    assert!(!begin.is_snapshot);
    assert_eq!(begin.stamps, ms(1639999318695));
    assert_eq!(levels, vec![level(Bid, "0.00895", "3.5")]);
    assert_eq!(end.checksum, Some(386150553));

    f.ignored(&lines[4]); // spot tickers carry no derivative data
    f.trade(
        &lines[5],
        "BSV-USDT",
        ("84834539", "42.52", "3.75", Side::Buy, 1697760012017),
    );
}

#[test]
fn futures_fixture() {
    use BookSide::*;
    let lines = fixture_lines("okex-futures.jsonl");
    assert_eq!(lines.len(), 15);
    let mut f = Fixture::new();
    assert_eq!(f.parse(&lines[0]), (FrameKind::Ack, vec![]));

    let (kind, events) = f.parse(&lines[1]);
    assert_eq!(kind, FrameKind::BookSnapshot);
    let (begin, levels, end) = book(&events);
    assert_eq!(begin.instrument, f.id("ADA-USDT-211224"));
    assert_eq!(
        f.instruments.name(begin.instrument).0,
        Exchange::OkexFutures
    );
    assert_eq!(begin.stamps, ms(1640131206623));
    assert_eq!(
        levels,
        vec![
            level(Bid, "1.27803", "2"),
            level(Bid, "1.27802", "65"),
            level(Ask, "1.27898", "65")
        ]
    );
    assert_eq!(end.checksum, Some(-44519492));

    f.trade(
        &lines[2],
        "FIL-USD-220325",
        ("1271987", "36.239", "11", Side::Buy, 1640131185600),
    );
    let t = f.ticker(&lines[3], "FIL-USDT-220325");
    let want = DerivativeTicker {
        instrument: t.instrument,
        mark_price: Some(d("36.232")),
        stamps: ms(1640131204676),
        ..DerivativeTicker::default()
    };
    assert_eq!(t, want);
    let t = f.ticker(&lines[4], "FIL-USDT-220325");
    let want = DerivativeTicker {
        instrument: t.instrument,
        open_interest: Some(d("236870")),
        stamps: ms(1640131202886),
        ..DerivativeTicker::default()
    };
    assert_eq!(t, want);
    f.ignored(&lines[5]); // price-limit
    let t = f.ticker(&lines[6], "FIL-USDT-220325");
    assert_eq!(
        ticker_fields(&t),
        ["36.245", "36.214", "240", "36.251", "900"].map(|s| Some(d(s)))
    );
    assert_eq!((t.open_interest, t.mark_price), (None, None));
    assert_eq!(t.stamps, ms(1640131209045));

    let (kind, events) = f.parse(&lines[7]);
    assert_eq!(kind, FrameKind::BookDelta);
    let (begin, levels, end) = book(&events);
    assert_eq!(begin.instrument, f.id("LTC-USDT-220624"));
    assert_eq!(
        levels,
        vec![level(Bid, "161.26", "6"), level(Bid, "161.24", "0")]
    );
    assert_eq!(end.checksum, Some(-465502296));

    f.liquidation(
        &lines[8],
        "BTC-USD-220624",
        ("51886.2", "12", 1640140210617),
    );
    f.liquidation(
        &lines[9],
        "BTC-USDT-211231",
        ("49674.2", "40", 1640140211925),
    );
    let t = f.ticker(&lines[10], "FIL-USDT-220325"); // index FIL-USDT
    assert_eq!(t.index_price, Some(d("35.583")));
    assert_eq!((t.mark_price, t.stamps), (None, ms(1640140200581)));
    let t = f.ticker(&lines[11], "FIL-USDT-220325");
    assert_eq!(t.mark_price, Some(d("36.662")));
    assert_eq!(t.stamps, ms(1640140257676));
    f.liquidation(
        &lines[12],
        "XRP-USD-230929",
        ("0.55205", "39", 1680173247614),
    );
    // index BTC-USD feeds BTC-USD-220624 only (not BTC-USDT-211231, not the X-Perp)
    let t = f.ticker(&lines[13], "BTC-USD-220624");
    assert_eq!(t.index_price, Some(d("64280")));
    assert_eq!(t.stamps, ms(1785870839964));
    let t = f.ticker(&lines[14], "BTC-USD_UM_XPERP-310404");
    let want = DerivativeTicker {
        instrument: t.instrument,
        funding_rate: Some(Decimal::new(-4270396398519, 16)),
        funding_ts_ns: Some(1785888000000 * 1_000_000),
        predicted_funding_rate: None, // "nextFundingRate":""
        stamps: ms(1785870855692),
        ..DerivativeTicker::default()
    };
    assert_eq!(t, want);
}

#[test]
fn swap_fixture() {
    use BookSide::*;
    let lines = fixture_lines("okex-swap.jsonl");
    assert_eq!(lines.len(), 15);
    let mut f = Fixture::new();

    let (kind, events) = f.parse(&lines[0]);
    assert_eq!(kind, FrameKind::BookDelta);
    let (begin, levels, end) = book(&events);
    assert_eq!(begin.instrument, f.id("REN-USDT-SWAP"));
    assert_eq!(f.instruments.name(begin.instrument).0, Exchange::OkexSwap);
    assert_eq!(
        (begin.seq, begin.stamps),
        (Sequence::None, ms(1640131236035))
    );
    assert_eq!(
        levels,
        vec![
            level(Bid, "0.65441", "1"),
            level(Bid, "0.65418", "0"),
            level(Ask, "0.65442", "14")
        ]
    );
    assert_eq!(end.checksum, Some(2017579879));

    let t = f.ticker(&lines[1], "WNCG-USDT-SWAP");
    let want = DerivativeTicker {
        instrument: t.instrument,
        funding_rate: Some(d("0.00048105")),
        funding_ts_ns: Some(1640131200000 * 1_000_000),
        predicted_funding_rate: Some(d("0.00114")),
        stamps: ms(0),
        ..DerivativeTicker::default()
    };
    assert_eq!(t, want);
    f.trade(
        &lines[2],
        "BTC-USDT-SWAP",
        ("148266905", "48938.5", "5", Side::Buy, 1640131236050),
    );
    let t = f.ticker(&lines[3], "WNCG-USDT-SWAP");
    assert_eq!(
        ticker_fields(&t),
        ["2.1729", "2.1737", "2", "2.1738", "168"].map(|s| Some(d(s)))
    );
    assert_eq!(t.stamps, ms(1640131263109));
    let t = f.ticker(&lines[4], "WNCG-USDT-SWAP");
    assert_eq!(t.index_price, Some(d("2.1675")));
    assert_eq!(t.stamps, ms(1640131290649));
    let t = f.ticker(&lines[5], "WNCG-USDT-SWAP");
    assert_eq!(t.mark_price, Some(d("2.1729")));
    assert_eq!(t.stamps, ms(1640131259180));
    let t = f.ticker(&lines[6], "WNCG-USDT-SWAP");
    assert_eq!(t.open_interest, Some(d("644195")));
    assert_eq!(t.stamps, ms(1640131258756));
    let t = f.ticker(&lines[7], "SOS-USDT-SWAP");
    assert_eq!(t.funding_rate, None);
    assert_eq!(t.funding_ts_ns, Some(1640851200000 * 1_000_000));
    assert_eq!(t.predicted_funding_rate, Some(d("0.0003")));

    let (kind, events) = f.parse(&lines[8]);
    assert_eq!(kind, FrameKind::BookTicker);
    let want = BookTicker {
        instrument: f.id("BTC-USDT-SWAP"),
        update_id: None,
        bid_price: Some(d("38632.3")),
        bid_qty: Some(d("990")),
        ask_price: Some(d("38632.4")),
        ask_qty: Some(d("727")),
        stamps: ms(1651761120004),
    };
    assert_eq!(one(&events), Event::BookTicker(want));

    // index BTC-USD: the one BTC-USD future interned (no BTC-USD swap)
    let t = f.ticker(&lines[9], "BTC-USD-220624");
    assert_eq!(t.index_price, Some(d("27938.9")));
    assert_eq!(t.stamps, ms(1681041600310));
    let t = f.ticker(&lines[10], "BTC-USDC-SWAP");
    assert_eq!(t.last_price, Some(d("27927.4")));
    assert_eq!(t.best_bid_qty, Some(d("6538")));
    assert_eq!(t.stamps, ms(1681041600614));
    let t = f.ticker(&lines[11], "BTC-USDC-SWAP");
    assert_eq!(t.index_price, Some(d("28621.8")));
    assert_eq!(t.stamps, ms(1681992000093));
    let t = f.ticker(&lines[12], "BTC-USDC-SWAP");
    assert_eq!(t.last_price, Some(d("28620.3")));
    assert_eq!(t.best_ask_price, Some(d("28618.8")));
    let t = f.ticker(&lines[13], "BTC-USD-220624");
    assert_eq!(t.index_price, Some(d("28612.1")));
    // an index no interned future or swap follows
    f.ignored(&lines[13].replace("BTC-USD", "ZZZ-USD"));
    let t = f.ticker(&lines[14], "BTC-USDC-SWAP");
    assert_eq!(t.last_price, Some(d("28595.6")));
    assert_eq!(t.stamps, ms(1681992004315));
}

#[test]
fn documented_seq_id_books_and_books5() {
    let mut f = Fixture::new();
    // docs-v5 "Push Data Example: Incremental Data" (trimmed to 1 level a side)
    let update = r#"{"arg":{"channel":"books","instId":"BTC-USDC-SWAP"},"action":"update","data":[{"asks":[["8476.98","415","0","13"]],"bids":[["8476.97","256","0","12"]],"ts":"1597026383085","checksum":-855196043,"prevSeqId":123456,"seqId":123457}]}"#;
    let (kind, events) = f.parse(update);
    assert_eq!(kind, FrameKind::BookDelta);
    let (begin, levels, end) = book(&events);
    assert_eq!(begin.seq, okx(123457, 123456));
    assert_eq!(levels.len(), 2);
    assert_eq!(end.checksum, Some(-855196043));
    // after the 2026 deprecation the checksum is always 0: no checksum to verify
    let zero = update.replace("-855196043", "0");
    let (_, events) = f.parse(&zero);
    assert_eq!(book(&events).2.checksum, None);
    // snapshot: prevSeqId -1
    let snapshot = update.replace("update", "snapshot").replace("123456", "-1");
    let (kind, events) = f.parse(&snapshot);
    assert_eq!(kind, FrameKind::BookSnapshot);
    assert_eq!(book(&events).0.seq, okx(123457, -1));
    // keep-alive: empty sides, seqId == prevSeqId
    let keepalive = r#"{"arg":{"channel":"books","instId":"BTC-USDC-SWAP"},"action":"update","data":[{"asks":[],"bids":[],"ts":"1597026383085","checksum":0,"prevSeqId":7,"seqId":7}]}"#;
    let (kind, events) = f.parse(keepalive);
    assert_eq!(kind, FrameKind::BookDelta);
    assert_eq!(events.len(), 2);
    assert_eq!(book(&events).0.seq, okx(7, 7));
    // books5 pushes a snapshot each time (docs example)
    let books5 = r#"{"arg":{"channel":"books5","instId":"BTC-USDC-SWAP"},"data":[{"asks":[["111.06","55154","0","2"],["111.07","53276","0","2"]],"bids":[["111.05","57745","0","2"]],"instId":"BTC-USDC-SWAP","ts":"1670324386802","seqId":363996337}]}"#;
    let (kind, events) = f.parse(books5);
    assert_eq!(kind, FrameKind::BookSnapshot);
    let (begin, levels, end) = book(&events);
    assert!(begin.is_snapshot);
    assert_eq!(begin.seq, okx(363996337, -1));
    assert_eq!((levels.len(), end.checksum), (3, None));
    // bbo-tbt carries seqId
    let bbo = r#"{"arg":{"channel":"bbo-tbt","instId":"BTC-USDC-SWAP"},"data":[{"asks":[],"bids":[["111.05","57745","0","2"]],"ts":"1670324386802","seqId":363996337}]}"#;
    let (_, events) = f.parse(bbo);
    let Event::BookTicker(t) = one(&events) else {
        panic!()
    };
    assert_eq!(t.update_id, Some(363996337));
    assert_eq!((t.ask_price, t.bid_qty), (None, Some(d("57745"))));
}

#[test]
fn liquidation_orders_skip_other_instruments() {
    let mut f = Fixture::new();
    let line = r#"{"arg":{"channel":"liquidation-orders","instType":"SWAP"},"data":[{"details":[{"bkPx":"0.007831","posSide":"short","side":"buy","sz":"13","ts":"1692266434010"}],"instId":"IOST-USDT-SWAP","instType":"SWAP"},{"details":[{"bkPx":"38000.1","posSide":"long","side":"sell","sz":"2","ts":"1692266434011"},{"bkPx":"38000.2","posSide":"long","sz":"3","ts":"1692266434012"}],"instId":"BTC-USDT-SWAP","instType":"SWAP"}]}"#;
    let (kind, events) = f.parse(line);
    assert_eq!(kind, FrameKind::Liquidation);
    assert_eq!(events.len(), 2);
    let Event::Liquidation(l) = events[1] else {
        panic!()
    };
    assert_eq!(l.instrument, f.id("BTC-USDT-SWAP"));
    assert_eq!((l.price, l.qty, l.side), (d("38000.2"), d("3"), Side::Sell));
    assert_eq!(l.stamps, ms(1692266434012));
    let only_other = line.replace("BTC-USDT-SWAP", "ETH-USDT-SWAP");
    f.ignored(&only_other);
}

// ---- control frames, REST, errors -----------------------------------------------------

#[test]
fn control_frames() {
    let mut f = Fixture::new();
    assert_eq!(f.parse("pong"), (FrameKind::Pong, vec![]));
    assert_eq!(f.parse("pong\n"), (FrameKind::Pong, vec![]));
    let unsub = r#"{"event":"unsubscribe","arg":{"channel":"books","instId":"BTC-USDT"},"connId":"a4d3ae55"}"#;
    assert_eq!(f.parse(unsub), (FrameKind::Ack, vec![]));
    let notice = r#"{"event":"notice","code":"64008","msg":"The connection will soon be closed for a service upgrade.","connId":"a4d3ae55"}"#;
    f.ignored(notice);
    let candle = r#"{"arg":{"channel":"candle1D","instId":"BTC-USDT"},"data":[["1597026383085","8533.02","8553.74","8527.17","8548.26","45247","529.5858061","5529.5858061","0"]]}"#;
    assert_eq!(f.parse(candle), (FrameKind::Kline, vec![]));
}

#[test]
fn errors_are_reported_not_panics() {
    let instruments = fixture_instruments();
    let mut p = parser();
    let mut err = |frame: &str| {
        let (r, events) = testutil::parse(&mut p, frame, &instruments);
        (r.unwrap_err(), events.len())
    };
    let venue_error =
        r#"{"event":"error","code":"60012","msg":"Invalid request","connId":"a4d3ae55"}"#;
    assert_eq!(err(venue_error), (ParseError::VenueError, 0));
    assert_eq!(err("{\"arg\":"), (ParseError::Json, 0));
    assert_eq!(err("ping"), (ParseError::Json, 0));
    assert_eq!(err("[1,2]"), (ParseError::Schema, 0));
    assert_eq!(err(r#"{"event":"party"}"#), (ParseError::UnknownMessage, 0));
    let unknown_channel = r#"{"arg":{"channel":"gossip","instId":"BTC-USDT"},"data":[]}"#;
    assert_eq!(err(unknown_channel), (ParseError::UnknownMessage, 0));
    let trade = r#"{"arg":{"channel":"trades","instId":"CRV-USDT"},"data":[{"instId":"CRV-USDT","tradeId":"1","px":"3.973","sz":"13.491146","side":"buy","ts":"1639999319938"}]}"#;
    assert_eq!(
        err(&trade.replace("CRV-USDT", "DOGE-USDT")),
        (ParseError::UnknownSymbol, 0)
    );
    let option = trade.replace("CRV-USDT", "BTC-USD-220514-22000-C");
    assert_eq!(err(&option), (ParseError::UnknownSymbol, 0));
    assert_eq!(
        err(&trade.replace("3.973", "12345678901234567890")),
        (ParseError::BadNumber(DecimalError::Overflow), 0)
    );
    assert_eq!(
        err(&trade.replace("\"px\"", "\"price\"")),
        (ParseError::MissingField("px"), 0)
    );
    let no_data = r#"{"arg":{"channel":"trades","instId":"CRV-USDT"}}"#;
    assert_eq!(err(no_data), (ParseError::MissingField("data"), 0));
    // a bad level inside a book closes the message as aborted
    let bad_book = r#"{"arg":{"channel":"books","instId":"ETC-ETH"},"action":"update","data":[{"asks":[],"bids":[["0.00895","3.5x","0","1"]],"ts":"1639999318695","checksum":386150553}]}"#;
    let (r, events) = testutil::parse(&mut parser(), bad_book, &instruments);
    assert_eq!(r, Err(ParseError::BadNumber(DecimalError::Invalid)));
    assert_eq!(events.len(), 2);
    assert!(matches!(
        events[1],
        Event::BookEnd(BookEnd { aborted: true, .. })
    ));
    let big_checksum = bad_book
        .replace("3.5x", "3.5")
        .replace("386150553", "4294967296");
    let (r, events) = testutil::parse(&mut parser(), &big_checksum, &instruments);
    assert_eq!(r, Err(ParseError::BadNumber(DecimalError::Overflow)));
    assert!(events.is_empty());
}

#[test]
fn truncated_frames_fail_cleanly() {
    let (instruments, _) = recording_instruments();
    let frames = recv_frames(&recording("OKX.jsonl.zst"));
    let mut p = parser();
    for (_, frame) in frames.iter().filter(|(_, f)| f.len() < 2000).take(12) {
        for end in 0..frame.len() {
            let (r, _) = testutil::parse(&mut p, &frame[..end], &instruments);
            assert!(r.is_err(), "prefix {end} of {frame}");
        }
    }
}

#[test]
fn rest_snapshot() {
    let instruments = fixture_instruments();
    let mut p = parser();
    let stamps = ms(0);
    let url = "https://www.okx.com/api/v5/market/books?instId=BTC-USDT-SWAP&sz=400";
    let body = r#"{"code":"0","msg":"","data":[{"asks":[["41006.8","0.60038921","0","1"]],"bids":[["41006.3","0.30178218","0","2"]],"ts":"1629966436396","seqId":3235851742}]}"#;
    let mut events = Vec::new();
    let r = p.parse_rest(
        url,
        &mut body.as_bytes().to_vec(),
        stamps,
        &instruments,
        &mut |e| events.push(e),
    );
    assert_eq!(r, Ok(FrameKind::BookSnapshot));
    let (begin, levels, end) = book(&events);
    assert!(begin.is_snapshot);
    assert_eq!(begin.seq, okx(3235851742, -1));
    assert_eq!(begin.stamps, ms(1629966436396));
    assert_eq!(levels[0], level(BookSide::Bid, "41006.3", "0.30178218"));
    assert_eq!(end.checksum, None);
    let mut sink = |_| {};
    let mut rest = |url: &str, body: &str| {
        p.parse_rest(
            url,
            &mut body.as_bytes().to_vec(),
            stamps,
            &instruments,
            &mut sink,
        )
    };
    let no_seq = body.replace(r#","seqId":3235851742"#, "");
    assert_eq!(rest(url, &no_seq), Ok(FrameKind::BookSnapshot));
    let error = r#"{"code":"51001","msg":"Instrument ID does not exist","data":[]}"#;
    assert_eq!(rest(url, error), Err(ParseError::VenueError));
    let other = url.replace("BTC-USDT-SWAP", "ETH-USDT-SWAP");
    assert_eq!(rest(&other, body), Err(ParseError::UnknownSymbol));
    assert_eq!(
        rest(
            &rest_snapshot_url("https://www.okx.com/", "BTC-USDT-SWAP"),
            body
        ),
        Ok(FrameKind::BookSnapshot)
    );
    let instruments_url = "https://www.okx.com/api/v5/public/instruments?instType=SPOT";
    assert_eq!(
        rest(instruments_url, "{\"code\":\"0\""),
        Ok(FrameKind::Ignored)
    );
}

// ---- sync rule ------------------------------------------------------------------------

#[test]
fn sync_rule_follows_the_seq_id_chain() {
    use SyncVerdict::*;
    // the documented example: snapshot 10, update 10->15, keep-alive 15->15,
    // maintenance reset 15->3, update 3->5
    let chain = [okx(10, -1), okx(15, 10), okx(15, 15), okx(3, 15), okx(5, 3)];
    for pair in chain.windows(2) {
        assert_eq!(
            check_sequence(&pair[0], pair[0] == chain[0], &pair[1]),
            Apply
        );
    }
    // gap: a message is missing
    assert_eq!(check_sequence(&okx(15, 10), false, &okx(20, 16)), Gap);
    // a reset we cannot chain is a gap, and so is an old-looking message mid-chain
    assert_eq!(check_sequence(&okx(15, 10), false, &okx(3, 14)), Gap);
    assert_eq!(check_sequence(&okx(15, 10), false, &okx(12, 11)), Gap);
    // a new snapshot replaces the book
    assert_eq!(check_sequence(&okx(15, 10), false, &okx(40, -1)), Apply);
    // no seqId on either side: the checksum guards the book
    assert_eq!(check_sequence(&Sequence::None, false, &okx(5, 3)), Apply);
    assert_eq!(check_sequence(&okx(5, 3), false, &Sequence::None), Apply);
    assert_eq!(
        check_sequence(&Sequence::None, false, &Sequence::None),
        Apply
    );
}

#[test]
fn sync_rule_brackets_a_rest_snapshot() {
    use SyncVerdict::*;
    let snapshot = okx(100, -1); // REST seqId 100
    // already in the snapshot
    assert_eq!(check_sequence(&snapshot, true, &okx(90, 80)), Stale);
    assert_eq!(check_sequence(&snapshot, true, &okx(100, 95)), Stale);
    assert_eq!(check_sequence(&snapshot, true, &okx(95, 95)), Stale); // keep-alive
    // continues it exactly, or spans it
    assert_eq!(check_sequence(&snapshot, true, &okx(104, 100)), Apply);
    assert_eq!(check_sequence(&snapshot, true, &okx(104, 97)), Apply);
    // starts after it
    assert_eq!(check_sequence(&snapshot, true, &okx(110, 104)), Gap);
    // a reset that does not chain
    assert_eq!(check_sequence(&snapshot, true, &okx(3, 90)), Gap);
    // once the first update is applied the plain chain rule holds
    assert_eq!(check_sequence(&okx(104, 97), false, &okx(100, 95)), Gap);
}

#[test]
fn exchange_ids_by_inst_id_shape() {
    assert_eq!(exchange_of("BTC-USDT"), Some(Exchange::Okex));
    assert_eq!(exchange_of("BTC-USD-220527"), Some(Exchange::OkexFutures));
    assert_eq!(
        exchange_of("BTC-USD_UM_XPERP-310404"),
        Some(Exchange::OkexFutures)
    );
    assert_eq!(exchange_of("UNI-USD-SWAP"), Some(Exchange::OkexSwap));
    assert_eq!(exchange_of("BTC-USD-220514-22000-C"), None);
    assert_eq!(exchange_of("BTC-USD-SWAPX"), None);
    assert_eq!(exchange_of("BTC"), None);
    assert_eq!(exchange_of("-USDT"), None);
}

// ---- connect plan -----------------------------------------------------------------------

#[test]
fn connect_plan_round_trips() {
    let sub = |exchange, symbol: &str, channels| Subscription {
        exchange,
        symbol: symbol.to_string(),
        channels,
    };
    let subs = vec![
        sub(
            Exchange::Okex,
            "BTC-USDT",
            Channels::BOOK | Channels::TRADES | Channels::BOOK_TICKER,
        ),
        sub(Exchange::OkexSwap, "BTC-USDT-SWAP", Channels::ALL),
        sub(Exchange::OkexSwap, "ETH-USDT-SWAP", Channels::ALL),
        sub(Exchange::OkexFutures, "BTC-USD-220527", Channels::ALL),
    ];
    let (ws, rest) = Feed::Okx.default_endpoints();
    let plan = plan_for(Feed::Okx, ws, rest, &subs);
    assert_eq!(plan.ws_url, "wss://ws.okx.com:8443/ws/v5/public");
    assert_eq!(plan.keepalive, Some(("ping".to_string(), 25_000)));
    assert!(plan.snapshot_urls.is_empty());
    assert_eq!(plan.subscribe_frames.len(), 1);
    let frame: serde_json::Value = serde_json::from_str(&plan.subscribe_frames[0]).unwrap();
    assert_eq!(frame["op"], "subscribe");
    let args = frame["args"].as_array().unwrap();
    assert_eq!(
        args[0],
        serde_json::json!({"channel":"books","instId":"BTC-USDT"})
    );
    let count = |channel: &str| args.iter().filter(|a| a["channel"] == channel).count();
    assert_eq!(count("books"), 4);
    assert_eq!(count("bbo-tbt"), 4);
    assert_eq!(count("tickers"), 3);
    assert_eq!(count("funding-rate"), 2); // swaps only
    assert_eq!(count("index-tickers"), 3); // BTC-USDT, ETH-USDT, BTC-USD
    assert_eq!(count("liquidation-orders"), 2); // SWAP, FUTURES
    assert!(args.contains(&serde_json::json!({"channel":"index-tickers","instId":"BTC-USD"})));
    assert!(
        args.contains(&serde_json::json!({"channel":"liquidation-orders","instType":"FUTURES"}))
    );
    assert_eq!(wire(Feed::Okx, &plan.ws_url, &plan.subscribe_frames), subs);
    // many subscriptions are split into frames
    let many: Vec<_> = (0..150)
        .map(|i| sub(Exchange::Okex, &format!("C{i}-USDT"), Channels::BOOK))
        .collect();
    let plan = plan_for(Feed::Okx, ws, rest, &many);
    assert_eq!(plan.subscribe_frames.len(), 2);
    assert_eq!(wire(Feed::Okx, &plan.ws_url, &plan.subscribe_frames), many);
}

// ---- property test ------------------------------------------------------------------

fn seed_frames() -> &'static [String] {
    static SEEDS: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
    SEEDS.get_or_init(load_seed_frames)
}

fn load_seed_frames() -> Vec<String> {
    let mut seeds: Vec<String> = recv_frames(&recording("OKX.jsonl.zst"))
        .into_iter()
        .map(|(_, f)| f)
        .filter(|f| f.len() < 4000)
        .step_by(7)
        .collect();
    for name in ["okex.jsonl", "okex-futures.jsonl", "okex-swap.jsonl"] {
        seeds.extend(fixture_lines(name));
    }
    seeds
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]
    #[test]
    fn mutated_frames_never_panic(
        pick in any::<prop::sample::Index>(),
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0u8..3), 1..6),
        cut in any::<prop::sample::Index>(),
    ) {
        let seeds = seed_frames();
        let mut bytes = seeds[pick.index(seeds.len())].as_bytes().to_vec();
        for (at, byte, op) in edits {
            let i = at.index(bytes.len().max(1));
            match op {
                0 if !bytes.is_empty() => bytes[i] = byte,
                1 => bytes.insert(i.min(bytes.len()), byte),
                _ if !bytes.is_empty() => { bytes.remove(i); }
                _ => {}
            }
        }
        let keep = cut.index(bytes.len() + 1);
        bytes.truncate(keep.max(bytes.len() / 2));
        let instruments = fixture_instruments();
        let mut p = Parser::new(Feed::Okx);
        let mut n = 0usize;
        let _ = p.parse_frame(&mut bytes.clone(), Stamps::default(), &instruments, &mut |_| n += 1);
        let _ = p.parse_rest("https://www.okx.com/api/v5/market/books?instId=BTC-USDT-SWAP", &mut bytes, Stamps::default(), &instruments, &mut |_| n += 1);
    }
}

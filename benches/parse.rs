//! Frame parse per venue and message type, on the recordings' real frames: pinfeed's venue
//! parsers (simd-json tape, numbers straight to fixed point, no allocation) against
//! `serde_json` into typed structs and against `serde_json::Value` (the approach pinfeed
//! replaces). Every variant produces the same decimals. Ratios print at the end.
//!
//! Run: `cargo bench --bench parse`.

mod common;

use std::hint::black_box;

use criterion::{Criterion, Throughput};
use serde::Deserialize;
use serde_json::Value;

use pinfeed::model::{Decimal, Event, Stamps};
use pinfeed::venue::{Feed, VenueParser};

fn dec(s: &str) -> i64 {
    Decimal::parse(s.as_bytes())
        .map(|d| d.mantissa)
        .unwrap_or(0)
}
fn decf(f: f64) -> i64 {
    Decimal::from_f64(f).map(|d| d.mantissa).unwrap_or(0)
}
fn vdec(v: &Value) -> i64 {
    match v {
        Value::String(s) => dec(s),
        Value::Number(n) => n.as_f64().map(decf).unwrap_or(0),
        _ => 0,
    }
}
fn levels<'a>(l: &'a [[&'a str; 2]]) -> i64 {
    l.iter()
        .map(|[p, q]| dec(p) ^ dec(q))
        .fold(0, i64::wrapping_add)
}

// ---- typed serde structs, one per message type ----
#[derive(Deserialize)]
struct Wrap<T> {
    data: T,
}
#[derive(Deserialize)]
struct BinanceDepth<'a> {
    #[serde(rename = "E")]
    e: u64,
    #[serde(borrow)]
    s: &'a str,
    #[serde(rename = "U")]
    first: u64,
    u: u64,
    pu: Option<u64>,
    #[serde(borrow)]
    b: Vec<[&'a str; 2]>,
    #[serde(borrow)]
    a: Vec<[&'a str; 2]>,
}
#[derive(Deserialize)]
struct BinanceBookTicker<'a> {
    u: u64,
    s: &'a str,
    b: &'a str,
    #[serde(rename = "B")]
    bq: &'a str,
    a: &'a str,
    #[serde(rename = "A")]
    aq: &'a str,
}
#[derive(Deserialize)]
struct BinanceAggTrade<'a> {
    a: u64,
    s: &'a str,
    p: &'a str,
    q: &'a str,
    #[serde(rename = "T")]
    t: u64,
    m: bool,
}
#[derive(Deserialize)]
struct BybitBook<'a> {
    #[serde(borrow)]
    topic: &'a str,
    ts: u64,
    #[serde(borrow)]
    data: BybitBookData<'a>,
}
#[derive(Deserialize)]
struct BybitBookData<'a> {
    s: &'a str,
    #[serde(borrow)]
    b: Vec<[&'a str; 2]>,
    #[serde(borrow)]
    a: Vec<[&'a str; 2]>,
    u: u64,
    seq: u64,
}
#[derive(Deserialize)]
struct BybitTrades<'a> {
    #[serde(borrow)]
    data: Vec<BybitTrade<'a>>,
}
#[derive(Deserialize)]
struct BybitTrade<'a> {
    #[serde(rename = "T")]
    t: u64,
    s: &'a str,
    #[serde(rename = "S")]
    side: &'a str,
    v: &'a str,
    p: &'a str,
    i: &'a str,
}
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct BybitTicker<'a> {
    symbol: &'a str,
    last_price: Option<&'a str>,
    open_interest: Option<&'a str>,
    funding_rate: Option<&'a str>,
    mark_price: Option<&'a str>,
    index_price: Option<&'a str>,
    bid1_price: Option<&'a str>,
    bid1_size: Option<&'a str>,
    ask1_price: Option<&'a str>,
    ask1_size: Option<&'a str>,
}
#[derive(Deserialize)]
struct OkxArg<'a> {
    #[serde(rename = "instId")]
    inst_id: &'a str,
}
#[derive(Deserialize)]
struct OkxMsg<'a, T> {
    #[serde(borrow)]
    arg: OkxArg<'a>,
    data: Vec<T>,
}
#[derive(Deserialize)]
struct OkxBook<'a> {
    #[serde(borrow)]
    asks: Vec<Vec<&'a str>>,
    #[serde(borrow)]
    bids: Vec<Vec<&'a str>>,
    ts: &'a str,
    checksum: i64,
}
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct OkxTrade<'a> {
    trade_id: &'a str,
    px: &'a str,
    sz: &'a str,
    side: &'a str,
    ts: &'a str,
}
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct OkxTicker<'a> {
    last: &'a str,
    ask_px: &'a str,
    ask_sz: &'a str,
    bid_px: &'a str,
    bid_sz: &'a str,
    ts: &'a str,
}
#[derive(Deserialize)]
struct DeribitMsg<T> {
    params: DeribitParams<T>,
}
#[derive(Deserialize)]
struct DeribitParams<T> {
    data: T,
}
#[derive(Deserialize)]
struct DeribitBook<'a> {
    timestamp: u64,
    instrument_name: &'a str,
    change_id: u64,
    prev_change_id: Option<u64>,
    #[serde(borrow)]
    bids: Vec<(&'a str, f64, f64)>,
    #[serde(borrow)]
    asks: Vec<(&'a str, f64, f64)>,
}
#[derive(Deserialize)]
struct DeribitTicker<'a> {
    timestamp: u64,
    instrument_name: &'a str,
    open_interest: f64,
    mark_price: f64,
    index_price: f64,
    last_price: Option<f64>,
    best_bid_price: Option<f64>,
    best_bid_amount: f64,
    best_ask_price: Option<f64>,
    best_ask_amount: f64,
}

fn okx_levels(l: &[Vec<&str>]) -> i64 {
    l.iter()
        .map(|x| dec(x[0]) ^ dec(x[1]))
        .fold(0, i64::wrapping_add)
}

fn opt(s: Option<&str>) -> i64 {
    s.map(dec).unwrap_or(0)
}

fn typed(class: &str, buf: &[u8]) -> i64 {
    match class {
        "binance depth" => {
            let m: Wrap<BinanceDepth> = serde_json::from_slice(buf).unwrap();
            let d = m.data;
            levels(&d.b)
                ^ levels(&d.a)
                ^ (d.e ^ d.first ^ d.u ^ d.pu.unwrap_or(0)) as i64
                ^ d.s.len() as i64
        }
        "binance bookTicker" => {
            let m: Wrap<BinanceBookTicker> = serde_json::from_slice(buf).unwrap();
            let d = m.data;
            dec(d.b) ^ dec(d.bq) ^ dec(d.a) ^ dec(d.aq) ^ d.u as i64 ^ d.s.len() as i64
        }
        "binance aggTrade" => {
            let m: Wrap<BinanceAggTrade> = serde_json::from_slice(buf).unwrap();
            let d = m.data;
            dec(d.p) ^ dec(d.q) ^ (d.a ^ d.t) as i64 ^ d.m as i64 ^ d.s.len() as i64
        }
        "bybit orderbook" => {
            let m: BybitBook = serde_json::from_slice(buf).unwrap();
            let d = m.data;
            levels(&d.b)
                ^ levels(&d.a)
                ^ (d.u ^ d.seq ^ m.ts) as i64
                ^ (d.s.len() + m.topic.len()) as i64
        }
        "bybit publicTrade" => {
            let m: BybitTrades = serde_json::from_slice(buf).unwrap();
            m.data
                .iter()
                .map(|t| {
                    dec(t.p) ^ dec(t.v) ^ t.t as i64 ^ (t.s.len() + t.side.len() + t.i.len()) as i64
                })
                .fold(0, i64::wrapping_add)
        }
        "bybit tickers" => {
            let m: Wrap<BybitTicker> = serde_json::from_slice(buf).unwrap();
            let d = m.data;
            opt(d.last_price)
                ^ opt(d.open_interest)
                ^ opt(d.funding_rate)
                ^ opt(d.mark_price)
                ^ opt(d.index_price)
                ^ opt(d.bid1_price)
                ^ opt(d.bid1_size)
                ^ opt(d.ask1_price)
                ^ opt(d.ask1_size)
                ^ d.symbol.len() as i64
        }
        "okx books" => {
            let m: OkxMsg<OkxBook> = serde_json::from_slice(buf).unwrap();
            m.data
                .iter()
                .map(|b| okx_levels(&b.asks) ^ okx_levels(&b.bids) ^ b.checksum ^ dec(b.ts))
                .fold(m.arg.inst_id.len() as i64, i64::wrapping_add)
        }
        "okx trades" => {
            let m: OkxMsg<OkxTrade> = serde_json::from_slice(buf).unwrap();
            m.data
                .iter()
                .map(|t| {
                    dec(t.px) ^ dec(t.sz) ^ dec(t.ts) ^ (t.trade_id.len() + t.side.len()) as i64
                })
                .fold(m.arg.inst_id.len() as i64, i64::wrapping_add)
        }
        "okx tickers" => {
            let m: OkxMsg<OkxTicker> = serde_json::from_slice(buf).unwrap();
            m.data
                .iter()
                .map(|t| {
                    dec(t.last)
                        ^ dec(t.ask_px)
                        ^ dec(t.ask_sz)
                        ^ dec(t.bid_px)
                        ^ dec(t.bid_sz)
                        ^ dec(t.ts)
                })
                .fold(m.arg.inst_id.len() as i64, i64::wrapping_add)
        }
        "deribit book" => {
            let m: DeribitMsg<DeribitBook> = serde_json::from_slice(buf).unwrap();
            let d = m.params.data;
            let l = |v: &[(&str, f64, f64)]| {
                v.iter()
                    .map(|(a, p, q)| decf(*p) ^ decf(*q) ^ a.len() as i64)
                    .fold(0, i64::wrapping_add)
            };
            l(&d.bids)
                ^ l(&d.asks)
                ^ (d.timestamp ^ d.change_id ^ d.prev_change_id.unwrap_or(0)) as i64
                ^ d.instrument_name.len() as i64
        }
        "deribit ticker" => {
            let m: DeribitMsg<DeribitTicker> = serde_json::from_slice(buf).unwrap();
            let d = m.params.data;
            decf(d.open_interest)
                ^ decf(d.mark_price)
                ^ decf(d.index_price)
                ^ d.last_price.map(decf).unwrap_or(0)
                ^ d.best_bid_price.map(decf).unwrap_or(0)
                ^ decf(d.best_bid_amount)
                ^ d.best_ask_price.map(decf).unwrap_or(0)
                ^ decf(d.best_ask_amount)
                ^ d.timestamp as i64
                ^ d.instrument_name.len() as i64
        }
        _ => unreachable!(),
    }
}

fn vlevels(v: &Value) -> i64 {
    v.as_array()
        .map(|a| {
            a.iter()
                .map(|l| {
                    // [price, qty] or Deribit [action, price, qty]
                    let n = l.as_array().map_or(0, |x| x.len());
                    if n == 3 && l[0].is_string() {
                        vdec(&l[1]) ^ vdec(&l[2])
                    } else {
                        vdec(&l[0]) ^ vdec(&l[1])
                    }
                })
                .fold(0, i64::wrapping_add)
        })
        .unwrap_or(0)
}

fn untyped(class: &str, buf: &[u8]) -> i64 {
    let v: Value = serde_json::from_slice(buf).unwrap();
    let fields = |d: &Value, keys: &[&str]| keys.iter().map(|k| vdec(&d[*k])).fold(0, |a, b| a ^ b);
    match class {
        "binance depth" => {
            let d = &v["data"];
            vlevels(&d["b"])
                ^ vlevels(&d["a"])
                ^ fields(d, &["E", "U", "u", "pu"])
                ^ d["s"].as_str().map_or(0, |s| s.len() as i64)
        }
        "binance bookTicker" => fields(&v["data"], &["u", "b", "B", "a", "A"]),
        "binance aggTrade" => {
            fields(&v["data"], &["a", "p", "q", "T"])
                ^ v["data"]["m"].as_bool().unwrap_or(false) as i64
        }
        "bybit orderbook" => {
            let d = &v["data"];
            vlevels(&d["b"]) ^ vlevels(&d["a"]) ^ fields(d, &["u", "seq"]) ^ vdec(&v["ts"])
        }
        "bybit publicTrade" => v["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| fields(t, &["T", "v", "p"]) ^ t["i"].as_str().map_or(0, |s| s.len() as i64))
            .fold(0, i64::wrapping_add),
        "bybit tickers" => fields(
            &v["data"],
            &[
                "lastPrice",
                "openInterest",
                "fundingRate",
                "markPrice",
                "indexPrice",
                "bid1Price",
                "bid1Size",
                "ask1Price",
                "ask1Size",
            ],
        ),
        "okx books" => v["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| vlevels(&b["asks"]) ^ vlevels(&b["bids"]) ^ fields(b, &["ts", "checksum"]))
            .fold(0, i64::wrapping_add),
        "okx trades" => v["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| fields(t, &["px", "sz", "ts"]))
            .fold(0, i64::wrapping_add),
        "okx tickers" => v["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| fields(t, &["last", "askPx", "askSz", "bidPx", "bidSz", "ts"]))
            .fold(0, i64::wrapping_add),
        "deribit book" => {
            let d = &v["params"]["data"];
            vlevels(&d["bids"])
                ^ vlevels(&d["asks"])
                ^ fields(d, &["timestamp", "change_id", "prev_change_id"])
        }
        "deribit ticker" => fields(
            &v["params"]["data"],
            &[
                "open_interest",
                "mark_price",
                "index_price",
                "last_price",
                "best_bid_price",
                "best_bid_amount",
                "best_ask_price",
                "best_ask_amount",
                "timestamp",
            ],
        ),
        _ => unreachable!(),
    }
}

/// Message classes: name, feeds, a substring that identifies the frames.
const CLASSES: &[(&str, &[Feed], &str)] = &[
    (
        "binance depth",
        &[Feed::BinanceFutures, Feed::BinanceSpot],
        "@depth",
    ),
    (
        "binance bookTicker",
        &[Feed::BinanceFutures, Feed::BinanceSpot],
        "@bookTicker",
    ),
    (
        "binance aggTrade",
        &[Feed::BinanceFutures, Feed::BinanceSpot],
        "@aggTrade",
    ),
    (
        "bybit orderbook",
        &[Feed::BybitLinear, Feed::BybitSpot],
        "\"topic\":\"orderbook.",
    ),
    (
        "bybit publicTrade",
        &[Feed::BybitLinear, Feed::BybitSpot],
        "\"topic\":\"publicTrade.",
    ),
    (
        "bybit tickers",
        &[Feed::BybitLinear],
        "\"topic\":\"tickers.",
    ),
    ("okx books", &[Feed::Okx], "\"channel\":\"books\""),
    ("okx trades", &[Feed::Okx], "\"channel\":\"trades\""),
    ("okx tickers", &[Feed::Okx], "\"channel\":\"tickers\""),
    ("deribit book", &[Feed::Deribit], "\"channel\":\"book."),
    ("deribit ticker", &[Feed::Deribit], "\"channel\":\"ticker."),
];

fn main() {
    let (instruments, all) = common::frames();
    let mut c = Criterion::default().configure_from_args();
    let mut counts = Vec::new();
    for (class, feeds, needle) in CLASSES {
        let frames: Vec<(Feed, Vec<u8>)> = all
            .iter()
            .filter(|(f, url, data)| {
                url.is_none()
                    && feeds.contains(f)
                    && std::str::from_utf8(data)
                        .is_ok_and(|s| s.contains(needle) && !s.contains("\"event\""))
            })
            .map(|(f, _, d)| (*f, d.clone()))
            .collect();
        if frames.is_empty() {
            continue;
        }
        // every variant must read every frame
        for (_, f) in &frames {
            typed(class, f);
            untyped(class, f);
        }
        let n = frames.len() as u64;
        counts.push((class.to_string(), n));
        let mut g = c.benchmark_group(format!("parse/{class}"));
        g.throughput(Throughput::Elements(n));
        let mut buf = Vec::with_capacity(64 * 1024);
        let mut parsers: Vec<(Feed, VenueParser)> = Vec::new();
        for (f, _) in &frames {
            if !parsers.iter().any(|p| p.0 == *f) {
                parsers.push((*f, VenueParser::new(*f)));
            }
        }
        g.bench_function("pinfeed", |b| {
            b.iter(|| {
                let mut acc = 0i64;
                for (feed, frame) in &frames {
                    buf.clear();
                    buf.extend_from_slice(frame);
                    let p = &mut parsers.iter_mut().find(|p| p.0 == *feed).unwrap().1;
                    let _ = p.parse_frame(
                        &mut buf,
                        Stamps::default(),
                        &instruments,
                        &mut |e: Event| {
                            if let Event::Level(l) = e {
                                acc = acc.wrapping_add(l.price.mantissa ^ l.qty.mantissa);
                            }
                        },
                    );
                }
                black_box(acc)
            })
        });
        g.bench_function("serde_typed", |b| {
            b.iter(|| {
                let mut acc = 0i64;
                for (_, frame) in &frames {
                    buf.clear();
                    buf.extend_from_slice(frame);
                    acc = acc.wrapping_add(typed(class, &buf));
                }
                black_box(acc)
            })
        });
        g.bench_function("serde_value", |b| {
            b.iter(|| {
                let mut acc = 0i64;
                for (_, frame) in &frames {
                    buf.clear();
                    buf.extend_from_slice(frame);
                    acc = acc.wrapping_add(untyped(class, &buf));
                }
                black_box(acc)
            })
        });
        g.finish();
    }
    c.final_summary();
    println!("\nparse ratios (baseline time / pinfeed time; >1 means pinfeed is faster):");
    for (class, n) in counts {
        common::print_ratios(
            &format!("parse/{class}"),
            "pinfeed",
            &["serde_typed", "serde_value"],
            n,
        );
    }
}

//! OKX v5 public frames, shaped as <https://www.okx.com/docs-v5/en/#order-book-trading-market-data>
//! and <https://www.okx.com/docs-v5/en/#public-data-websocket> show them. Book messages carry
//! `seqId`/`prevSeqId` and the CRC32 `checksum` of the 25 best levels per side, computed on
//! the text written (section "Checksum"; the rule is [`crate::venue::okx::checksum`]).

use super::market::{BookSide, InstrumentSpec, Market};
use super::pacing::Class;
use super::session::{Kind, Tick, Topic};
use super::{FeedState, int, ms, quoted};
use crate::model::{Exchange, write_scaled};
use crate::venue::okx::CHECKSUM_LEVELS;

/// What an OKX argument (canonical JSON, keys sorted) carries, and for which instruments.
pub(super) fn parse_topic(key: &str, specs: &[InstrumentSpec]) -> Option<(Kind, Vec<usize>)> {
    let arg: serde_json::Value = serde_json::from_str(key).ok()?;
    let channel = arg.get("channel")?.as_str()?;
    let inst_id = arg.get("instId").and_then(|v| v.as_str());
    let one = |derivative_only: bool| -> Option<Vec<usize>> {
        let i = specs
            .iter()
            .position(|s| Some(s.symbol) == inst_id && (s.derivative || !derivative_only))?;
        Some(vec![i])
    };
    let (kind, insts) = match channel {
        "books" | "books-l2-tbt" | "books50-l2-tbt" => (Kind::Depth, one(false)?),
        "trades" | "trades-all" => (Kind::Trades { raw_trade: false }, one(false)?),
        "bbo-tbt" => (Kind::BookTicker, one(false)?),
        "tickers" => (Kind::Ticker(Tick::OkxTickers), one(true)?),
        "open-interest" => (Kind::Ticker(Tick::OkxOpenInterest), one(true)?),
        "mark-price" => (Kind::Ticker(Tick::OkxMarkPrice), one(true)?),
        "funding-rate" => (Kind::Ticker(Tick::OkxFunding), one(true)?),
        "index-tickers" => {
            let index = inst_id?;
            let insts: Vec<usize> = (0..specs.len())
                .filter(|i| {
                    specs[*i].derivative
                        && specs[*i].symbol.rsplit_once('-').map(|(u, _)| u) == Some(index)
                })
                .collect();
            (Kind::Ticker(Tick::OkxIndex), insts)
        }
        "liquidation-orders" => {
            let exchange = match arg.get("instType")?.as_str()? {
                "SWAP" => Exchange::OkexSwap,
                "FUTURES" => Exchange::OkexFutures,
                _ => return None,
            };
            let insts: Vec<usize> = (0..specs.len())
                .filter(|i| specs[*i].exchange == exchange)
                .collect();
            (Kind::Liquidations, insts)
        }
        _ => return None,
    };
    (!insts.is_empty()).then_some((kind, insts))
}

fn inst_type(spec: &InstrumentSpec) -> &'static str {
    match spec.exchange {
        Exchange::OkexSwap => "SWAP",
        Exchange::OkexFutures => "FUTURES",
        _ => "SPOT",
    }
}

fn levels(out: &mut Vec<u8>, spec: &InstrumentSpec, levels: impl Iterator<Item = (i64, i64)>) {
    spec.write_levels(out, levels, b"\",\"0\",\"1\"]");
}

/// The CRC32 checksum of `m`'s 25 best levels per side, as OKX defines it, on the text the
/// frames carry (`scratch` is reused).
pub(super) fn checksum(m: &Market, scratch: &mut Vec<u8>) -> i32 {
    scratch.clear();
    let spec = m.spec;
    let n = m.bids.len().max(m.asks.len()).min(CHECKSUM_LEVELS);
    for i in 0..n {
        for level in [m.bids.get(i), m.asks.get(i)].into_iter().flatten() {
            if !scratch.is_empty() {
                scratch.push(b':');
            }
            spec.write_price(scratch, level.0);
            scratch.push(b':');
            spec.write_qty(scratch, level.1);
        }
    }
    crc32fast::hash(scratch) as i32
}

fn head(out: &mut Vec<u8>, topic: &Topic) {
    out.extend_from_slice(b"{\"arg\":");
    out.extend_from_slice(topic.key.as_bytes());
}

fn field(out: &mut Vec<u8>, key: &str, write: impl FnOnce(&mut Vec<u8>)) {
    out.extend_from_slice(b",\"");
    out.extend_from_slice(key.as_bytes());
    out.extend_from_slice(b"\":\"");
    write(out);
    out.push(b'"');
}

/// A `books` message: the whole book (`snapshot`) or the last step's changes (`update`).
fn book(out: &mut Vec<u8>, topic: &Topic, m: &Market, prev: i64, scratch: &mut Vec<u8>) {
    let spec = m.spec;
    let snapshot = prev == -1;
    head(out, topic);
    out.extend_from_slice(if snapshot {
        b",\"action\":\"snapshot\",\"data\":[{\"asks\":"
    } else {
        b",\"action\":\"update\",\"data\":[{\"asks\":"
    });
    if snapshot {
        levels(out, &spec, m.asks.iter().copied());
        out.extend_from_slice(b",\"bids\":");
        levels(out, &spec, m.bids.iter().copied());
    } else {
        let side = |s: BookSide| {
            m.changes
                .iter()
                .filter(move |c| c.side == s)
                .map(|c| (c.ticks, c.lots))
        };
        levels(out, &spec, side(BookSide::Ask));
        out.extend_from_slice(b",\"bids\":");
        levels(out, &spec, side(BookSide::Bid));
    }
    field(out, "ts", |o| int(o, ms(crate::clock::wall_ns())));
    out.extend_from_slice(b",\"checksum\":");
    int(out, i64::from(checksum(m, scratch)));
    out.extend_from_slice(b",\"prevSeqId\":");
    int(out, prev);
    out.extend_from_slice(b",\"seqId\":");
    int(out, m.update_id as i64);
    out.extend_from_slice(b"}]}");
}

/// The `books` snapshot of `m` at its current `seqId`.
pub(super) fn snapshot(out: &mut Vec<u8>, topic: &Topic, m: &Market, scratch: &mut Vec<u8>) {
    book(out, topic, m, -1, scratch);
}

/// Writes one data frame of `topic` for instrument market `m` into `out`.
pub(super) fn write(
    out: &mut Vec<u8>,
    fs: &FeedState,
    topic: &Topic,
    m: &mut Market,
    class: Class,
    scratch: &mut Vec<u8>,
) {
    let _ = class;
    let spec = m.spec;
    let now = ms(crate::clock::wall_ns());
    match topic.kind {
        Kind::Depth => {
            m.step();
            let prev = m.update_id;
            m.update_id += m.changes.len() as u64;
            book(out, topic, m, prev as i64, scratch);
        }
        Kind::Trades { .. } => {
            let id = fs.next_trade_id();
            let buy = m.rng().chance(50);
            let ticks = if buy { m.best_ask().0 } else { m.best_bid().0 };
            let lots = 1 + m.rng().below((spec.max_level_lots / 10).max(1) as u64) as i64;
            head(out, topic);
            out.extend_from_slice(b",\"data\":[{\"instId\":");
            quoted(out, spec.symbol);
            field(out, "tradeId", |o| int(o, id));
            field(out, "px", |o| spec.write_price(o, ticks));
            field(out, "sz", |o| spec.write_qty(o, lots));
            out.extend_from_slice(if buy {
                b",\"side\":\"buy\""
            } else {
                b",\"side\":\"sell\""
            });
            field(out, "ts", |o| int(o, ms(id)));
            out.extend_from_slice(b"}]}");
        }
        Kind::BookTicker => {
            head(out, topic);
            out.extend_from_slice(b",\"data\":[{\"asks\":");
            levels(out, &spec, std::iter::once(m.best_ask()));
            out.extend_from_slice(b",\"bids\":");
            levels(out, &spec, std::iter::once(m.best_bid()));
            field(out, "ts", |o| int(o, now));
            out.extend_from_slice(b",\"seqId\":");
            int(out, m.update_id as i64);
            out.extend_from_slice(b"}]}");
        }
        Kind::Ticker(tick) => {
            m.step_ticker();
            let mark = m.mid_ticks();
            head(out, topic);
            out.extend_from_slice(b",\"data\":[{\"instId\":");
            match tick {
                Tick::OkxIndex => {
                    let index = spec.symbol.rsplit_once('-').map_or(spec.symbol, |(u, _)| u);
                    quoted(out, index);
                    field(out, "idxPx", |o| {
                        spec.write_price(o, mark + m.index_offset_ticks)
                    });
                }
                _ => {
                    quoted(out, spec.symbol);
                    field(out, "instType", |o| {
                        o.extend_from_slice(inst_type(&spec).as_bytes())
                    });
                    match tick {
                        Tick::OkxOpenInterest => {
                            field(out, "oi", |o| spec.write_qty(o, m.open_interest_lots));
                            field(out, "oiCcy", |o| spec.write_qty(o, m.open_interest_lots));
                        }
                        Tick::OkxMarkPrice => field(out, "markPx", |o| spec.write_price(o, mark)),
                        Tick::OkxFunding => {
                            field(out, "fundingRate", |o| {
                                write_scaled(o, m.funding_e8, 8, true)
                            });
                            let next_ms = (now / 28_800_000 + 1) * 28_800_000;
                            field(out, "fundingTime", |o| int(o, next_ms));
                        }
                        _ => {
                            let (b, bq) = m.best_bid();
                            let (a, aq) = m.best_ask();
                            field(out, "last", |o| spec.write_price(o, mark));
                            field(out, "lastSz", |o| spec.write_qty(o, 1));
                            field(out, "askPx", |o| spec.write_price(o, a));
                            field(out, "askSz", |o| spec.write_qty(o, aq));
                            field(out, "bidPx", |o| spec.write_price(o, b));
                            field(out, "bidSz", |o| spec.write_qty(o, bq));
                        }
                    }
                }
            }
            field(out, "ts", |o| int(o, now));
            out.extend_from_slice(b"}]}");
        }
        Kind::Liquidations => {
            // the liquidation order's side: sell closes a long
            let sell = m.rng().chance(50);
            let off = m.rng().below(5) as i64;
            let ticks = if sell {
                m.best_bid().0 - off
            } else {
                m.best_ask().0 + off
            };
            let lots = 1 + m.rng().below((spec.max_level_lots / 20).max(1) as u64) as i64;
            head(out, topic);
            out.extend_from_slice(b",\"data\":[{\"instId\":");
            quoted(out, spec.symbol);
            field(out, "instType", |o| {
                o.extend_from_slice(inst_type(&spec).as_bytes())
            });
            out.extend_from_slice(b",\"details\":[{");
            out.extend_from_slice(if sell {
                b"\"side\":\"sell\",\"posSide\":\"long\""
            } else {
                b"\"side\":\"buy\",\"posSide\":\"short\""
            });
            field(out, "bkPx", |o| spec.write_price(o, ticks));
            field(out, "sz", |o| spec.write_qty(o, lots));
            field(out, "ts", |o| int(o, now));
            out.extend_from_slice(b"}]}]}");
        }
    }
}

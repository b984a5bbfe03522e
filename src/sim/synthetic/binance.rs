//! Binance frames (futures, COIN-M, spot) and REST bodies, in the shapes of the streams
//! reference (<https://developers.binance.com/docs/derivatives/usds-margined-futures/websocket-market-streams>,
//! <https://developers.binance.com/docs/binance-spot-api-docs/web-socket-streams>).

use super::market::{InstrumentSpec, Market};
use super::pacing::Class;
use super::session::{Kind, Tick, Topic};
use super::{FeedState, int, ms, quoted};
use crate::venue::Feed;

/// What a (canonical, lower-case symbol) stream name carries.
pub(super) fn parse_topic(
    feed: Feed,
    key: &str,
    specs: &[InstrumentSpec],
) -> Option<(Kind, usize)> {
    let (symbol, rest) = key.split_once('@')?;
    let i = specs
        .iter()
        .position(|s| s.symbol.eq_ignore_ascii_case(symbol))?;
    let derivative = feed != Feed::BinanceSpot;
    let kind = match rest {
        "depth" | "depth@100ms" | "depth@0ms" | "depth@250ms" | "depth@500ms" => Kind::Depth,
        "aggTrade" => Kind::Trades { raw_trade: false },
        "trade" => Kind::Trades { raw_trade: true },
        "bookTicker" => Kind::BookTicker,
        "markPrice" | "markPrice@1s" if derivative => Kind::Ticker(Tick::BinanceMark),
        "ticker" if derivative => Kind::Ticker(Tick::Binance24h),
        "forceOrder" if derivative => Kind::Liquidations,
        _ => return None,
    };
    Some((kind, i))
}

fn levels(out: &mut Vec<u8>, spec: &InstrumentSpec, levels: impl Iterator<Item = (i64, i64)>) {
    spec.write_levels(out, levels, b"\"]");
}

fn str_field(out: &mut Vec<u8>, key: &str, write: impl FnOnce(&mut Vec<u8>)) {
    out.extend_from_slice(b",\"");
    out.extend_from_slice(key.as_bytes());
    out.extend_from_slice(b"\":\"");
    write(out);
    out.push(b'"');
}

fn int_field(out: &mut Vec<u8>, key: &str, value: i64) {
    out.extend_from_slice(b",\"");
    out.extend_from_slice(key.as_bytes());
    out.extend_from_slice(b"\":");
    int(out, value);
}

/// `"ps":"BTCUSD"` for COIN-M (the pair: the symbol before `_`).
fn pair(out: &mut Vec<u8>, feed: Feed, spec: &InstrumentSpec) {
    if feed == Feed::BinanceDelivery {
        let p = spec.symbol.split('_').next().unwrap_or(spec.symbol);
        str_field(out, "ps", |o| o.extend_from_slice(p.as_bytes()));
    }
}

/// Writes one data frame of `topic` (class `class`) into `out`; `raw` leaves out the
/// combined-stream wrapper.
pub(super) fn write(
    out: &mut Vec<u8>,
    fs: &FeedState,
    raw: bool,
    topic: &Topic,
    m: &mut Market,
    class: Class,
) {
    let _ = class;
    let feed = fs.feed;
    let spec = m.spec;
    if !raw {
        out.extend_from_slice(b"{\"stream\":");
        quoted(out, &topic.key);
        out.extend_from_slice(b",\"data\":");
    }
    let now_ns = crate::clock::wall_ns();
    let futures = feed != Feed::BinanceSpot;
    match topic.kind {
        Kind::Depth => {
            m.step();
            let prev = m.update_id;
            let last = prev + m.changes.len() as u64;
            m.update_id = last;
            // futures diffs start at the previous `u` so that a REST snapshot taken at any
            // `u` is bracketed by the next diff; spot diffs start at `u + 1`
            let first = if futures { prev } else { prev + 1 };
            out.extend_from_slice(b"{\"e\":\"depthUpdate\"");
            int_field(out, "E", ms(now_ns));
            if futures {
                int_field(out, "T", ms(now_ns));
            }
            str_field(out, "s", |o| o.extend_from_slice(spec.symbol.as_bytes()));
            pair(out, feed, &spec);
            int_field(out, "U", first as i64);
            int_field(out, "u", last as i64);
            if futures {
                int_field(out, "pu", prev as i64);
            }
            let changes = &m.changes;
            out.extend_from_slice(b",\"b\":");
            levels(
                out,
                &spec,
                changes
                    .iter()
                    .filter(|c| c.side == super::market::BookSide::Bid)
                    .map(|c| (c.ticks, c.lots)),
            );
            out.extend_from_slice(b",\"a\":");
            levels(
                out,
                &spec,
                changes
                    .iter()
                    .filter(|c| c.side == super::market::BookSide::Ask)
                    .map(|c| (c.ticks, c.lots)),
            );
            out.push(b'}');
        }
        Kind::Trades { raw_trade } => {
            let id = fs.next_trade_id();
            let t = ms(id);
            let buy = m.rng().chance(50);
            let ticks = if buy { m.best_ask().0 } else { m.best_bid().0 };
            let lots = 1 + m.rng().below((spec.max_level_lots / 10).max(1) as u64) as i64;
            if raw_trade {
                out.extend_from_slice(b"{\"e\":\"trade\"");
                int_field(out, "E", t);
                int_field(out, "T", t);
                str_field(out, "s", |o| o.extend_from_slice(spec.symbol.as_bytes()));
                int_field(out, "t", id);
            } else {
                out.extend_from_slice(b"{\"e\":\"aggTrade\"");
                int_field(out, "E", t);
                int_field(out, "a", id);
                str_field(out, "s", |o| o.extend_from_slice(spec.symbol.as_bytes()));
            }
            str_field(out, "p", |o| spec.write_price(o, ticks));
            str_field(out, "q", |o| spec.write_qty(o, lots));
            if raw_trade {
                if futures {
                    out.extend_from_slice(b",\"X\":\"MARKET\"");
                }
            } else {
                int_field(out, "f", id);
                int_field(out, "l", id);
                int_field(out, "T", t);
            }
            // `m`: the buyer is the maker, i.e. the seller was the aggressor
            out.extend_from_slice(if buy {
                b",\"m\":false}"
            } else {
                b",\"m\":true}"
            });
        }
        Kind::BookTicker => {
            let (b, bq) = m.best_bid();
            let (a, aq) = m.best_ask();
            out.push(b'{');
            if futures {
                out.extend_from_slice(b"\"e\":\"bookTicker\",");
            }
            out.extend_from_slice(b"\"u\":");
            int(out, m.update_id as i64);
            str_field(out, "s", |o| o.extend_from_slice(spec.symbol.as_bytes()));
            pair(out, feed, &spec);
            str_field(out, "b", |o| spec.write_price(o, b));
            str_field(out, "B", |o| spec.write_qty(o, bq));
            str_field(out, "a", |o| spec.write_price(o, a));
            str_field(out, "A", |o| spec.write_qty(o, aq));
            if futures {
                int_field(out, "T", ms(now_ns));
                int_field(out, "E", ms(now_ns));
            }
            out.push(b'}');
        }
        Kind::Ticker(Tick::Binance24h) => {
            m.step_ticker();
            let last = m.mid_ticks();
            out.extend_from_slice(b"{\"e\":\"24hrTicker\"");
            int_field(out, "E", ms(now_ns));
            str_field(out, "s", |o| o.extend_from_slice(spec.symbol.as_bytes()));
            pair(out, feed, &spec);
            str_field(out, "c", |o| spec.write_price(o, last));
            str_field(out, "o", |o| spec.write_price(o, spec.start_ticks));
            str_field(out, "h", |o| {
                spec.write_price(o, last.max(spec.start_ticks))
            });
            str_field(out, "l", |o| {
                spec.write_price(o, last.min(spec.start_ticks))
            });
            out.push(b'}');
        }
        Kind::Ticker(_) => {
            // markPriceUpdate: mark, index, funding rate and next funding time (8 h grid)
            m.step_ticker();
            let mark = m.mid_ticks();
            let index = mark + m.index_offset_ticks;
            let next_funding_ms = (ms(now_ns) / 28_800_000 + 1) * 28_800_000;
            out.extend_from_slice(b"{\"e\":\"markPriceUpdate\"");
            int_field(out, "E", ms(now_ns));
            str_field(out, "s", |o| o.extend_from_slice(spec.symbol.as_bytes()));
            str_field(out, "p", |o| spec.write_price(o, mark));
            str_field(out, "i", |o| spec.write_price(o, index));
            str_field(out, "P", |o| spec.write_price(o, mark));
            str_field(out, "r", |o| {
                crate::model::write_scaled(o, m.funding_e8, 8, false)
            });
            int_field(out, "T", next_funding_ms);
            out.push(b'}');
        }
        Kind::Liquidations => {
            let sell = m.rng().chance(50);
            let off = m.rng().below(5) as i64;
            let ticks = if sell {
                m.best_bid().0 - off
            } else {
                m.best_ask().0 + off
            };
            let lots = 1 + m.rng().below((spec.max_level_lots / 20).max(1) as u64) as i64;
            out.extend_from_slice(b"{\"e\":\"forceOrder\"");
            int_field(out, "E", ms(now_ns));
            out.extend_from_slice(b",\"o\":{\"s\":");
            quoted(out, spec.symbol);
            pair(out, feed, &spec);
            out.extend_from_slice(if sell {
                b",\"S\":\"SELL\""
            } else {
                b",\"S\":\"BUY\""
            });
            out.extend_from_slice(b",\"o\":\"LIMIT\",\"f\":\"IOC\"");
            str_field(out, "q", |o| spec.write_qty(o, lots));
            str_field(out, "p", |o| spec.write_price(o, ticks));
            str_field(out, "ap", |o| spec.write_price(o, ticks));
            out.extend_from_slice(b",\"X\":\"FILLED\"");
            str_field(out, "l", |o| spec.write_qty(o, lots));
            str_field(out, "z", |o| spec.write_qty(o, lots));
            int_field(out, "T", ms(now_ns));
            out.extend_from_slice(b"}}");
        }
    }
    if !raw {
        out.push(b'}');
    }
}

/// A REST depth body of the live book: `lastUpdateId` is the `u` of the last diff generated.
pub(super) fn rest_depth(feed: Feed, m: &Market, limit: usize, now_ns: i64, out: &mut Vec<u8>) {
    let spec = m.spec;
    out.extend_from_slice(b"{\"lastUpdateId\":");
    int(out, m.update_id as i64);
    if feed != Feed::BinanceSpot {
        int_field(out, "E", ms(now_ns));
        int_field(out, "T", ms(now_ns));
    }
    if feed == Feed::BinanceDelivery {
        str_field(out, "symbol", |o| {
            o.extend_from_slice(spec.symbol.as_bytes())
        });
        let p = spec.symbol.split('_').next().unwrap_or(spec.symbol);
        str_field(out, "pair", |o| o.extend_from_slice(p.as_bytes()));
    }
    out.extend_from_slice(b",\"bids\":");
    levels(out, &spec, m.bids.iter().take(limit).copied());
    out.extend_from_slice(b",\"asks\":");
    levels(out, &spec, m.asks.iter().take(limit).copied());
    out.push(b'}');
}

/// A REST open-interest body.
pub(super) fn rest_open_interest(feed: Feed, m: &Market, now_ns: i64, out: &mut Vec<u8>) {
    let spec = m.spec;
    out.extend_from_slice(b"{\"symbol\":");
    quoted(out, spec.symbol);
    if feed == Feed::BinanceDelivery {
        let p = spec.symbol.split('_').next().unwrap_or(spec.symbol);
        str_field(out, "pair", |o| o.extend_from_slice(p.as_bytes()));
        out.extend_from_slice(b",\"contractType\":\"PERPETUAL\"");
    }
    str_field(out, "openInterest", |o| {
        spec.write_qty(o, m.open_interest_lots)
    });
    int_field(out, "time", ms(now_ns));
    out.push(b'}');
}

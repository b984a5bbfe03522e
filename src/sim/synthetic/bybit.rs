//! Bybit v5 public frames (linear, inverse, spot), shaped as the docs under
//! <https://bybit-exchange.github.io/docs/v5/websocket/public/orderbook> (and `trade`,
//! `ticker`, `all-liquidation`) show them.

use super::market::{BookSide, InstrumentSpec, Market};
use super::pacing::Class;
use super::session::{Kind, Tick, Topic};
use super::{FeedState, int, ms, quoted};
use crate::model::write_scaled;
use crate::venue::Feed;

/// What a topic carries: `orderbook.{depth}.{s}` (depth 1 is the book ticker),
/// `publicTrade.{s}`, `tickers.{s}`, `allLiquidation.{s}` / `liquidation.{s}`.
pub(super) fn parse_topic(
    feed: Feed,
    key: &str,
    specs: &[InstrumentSpec],
) -> Option<(Kind, usize)> {
    let (channel, rest) = key.split_once('.')?;
    let derivative = feed != Feed::BybitSpot;
    let (kind, symbol) = match channel {
        "orderbook" => {
            let (depth, symbol) = rest.split_once('.')?;
            match depth.parse::<u32>().ok()? {
                1 => (Kind::BookTicker, symbol),
                _ => (Kind::Depth, symbol),
            }
        }
        "publicTrade" => (Kind::Trades { raw_trade: false }, rest),
        "tickers" => (Kind::Ticker(Tick::Bybit), rest),
        "allLiquidation" | "liquidation" if derivative => (Kind::Liquidations, rest),
        _ => return None,
    };
    let i = specs.iter().position(|s| s.symbol == symbol)?;
    Some((kind, i))
}

/// The book depth of an `orderbook.{depth}.{s}` topic.
fn depth_of(key: &str) -> usize {
    key.split('.')
        .nth(1)
        .and_then(|d| d.parse().ok())
        .unwrap_or(200)
}

fn levels(out: &mut Vec<u8>, spec: &InstrumentSpec, levels: impl Iterator<Item = (i64, i64)>) {
    spec.write_levels(out, levels, b"\"]");
}

fn head(out: &mut Vec<u8>, topic: &Topic, kind: &str, now_ms: i64) {
    out.extend_from_slice(b"{\"topic\":");
    quoted(out, &topic.key);
    out.extend_from_slice(b",\"type\":\"");
    out.extend_from_slice(kind.as_bytes());
    out.extend_from_slice(b"\",\"ts\":");
    int(out, now_ms);
}

fn field(out: &mut Vec<u8>, key: &str, write: impl FnOnce(&mut Vec<u8>)) {
    out.extend_from_slice(b",\"");
    out.extend_from_slice(key.as_bytes());
    out.extend_from_slice(b"\":\"");
    write(out);
    out.push(b'"');
}

/// The `orderbook` snapshot of `m` at its current `u`.
pub(super) fn snapshot(out: &mut Vec<u8>, topic: &Topic, m: &Market) {
    let spec = m.spec;
    let now = ms(crate::clock::wall_ns());
    let depth = depth_of(&topic.key);
    head(out, topic, "snapshot", now);
    out.extend_from_slice(b",\"data\":{\"s\":");
    quoted(out, spec.symbol);
    out.extend_from_slice(b",\"b\":");
    levels(out, &spec, m.bids.iter().take(depth).copied());
    out.extend_from_slice(b",\"a\":");
    levels(out, &spec, m.asks.iter().take(depth).copied());
    out.extend_from_slice(b",\"u\":");
    int(out, m.update_id as i64);
    out.extend_from_slice(b",\"seq\":");
    int(out, m.cross_seq as i64);
    out.extend_from_slice(b"},\"cts\":");
    int(out, now);
    out.push(b'}');
}

/// Writes one data frame of `topic` into `out`.
pub(super) fn write(
    out: &mut Vec<u8>,
    fs: &FeedState,
    topic: &mut Topic,
    m: &mut Market,
    class: Class,
) {
    let _ = class;
    let spec = m.spec;
    let now_ns = crate::clock::wall_ns();
    let now = ms(now_ns);
    match topic.kind {
        Kind::Depth => {
            m.step();
            m.update_id += 1;
            m.cross_seq += m.changes.len() as u64;
            head(out, topic, "delta", now);
            out.extend_from_slice(b",\"data\":{\"s\":");
            quoted(out, spec.symbol);
            let changes = &m.changes;
            out.extend_from_slice(b",\"b\":");
            levels(
                out,
                &spec,
                changes
                    .iter()
                    .filter(|c| c.side == BookSide::Bid)
                    .map(|c| (c.ticks, c.lots)),
            );
            out.extend_from_slice(b",\"a\":");
            levels(
                out,
                &spec,
                changes
                    .iter()
                    .filter(|c| c.side == BookSide::Ask)
                    .map(|c| (c.ticks, c.lots)),
            );
            out.extend_from_slice(b",\"u\":");
            int(out, m.update_id as i64);
            out.extend_from_slice(b",\"seq\":");
            int(out, m.cross_seq as i64);
            out.extend_from_slice(b"},\"cts\":");
            int(out, now);
            out.push(b'}');
        }
        Kind::BookTicker => {
            head(out, topic, "snapshot", now);
            out.extend_from_slice(b",\"data\":{\"s\":");
            quoted(out, spec.symbol);
            out.extend_from_slice(b",\"b\":");
            levels(out, &spec, std::iter::once(m.best_bid()));
            out.extend_from_slice(b",\"a\":");
            levels(out, &spec, std::iter::once(m.best_ask()));
            out.extend_from_slice(b",\"u\":");
            int(out, m.cross_seq as i64);
            out.extend_from_slice(b",\"seq\":");
            int(out, m.cross_seq as i64);
            out.extend_from_slice(b"},\"cts\":");
            int(out, now);
            out.push(b'}');
        }
        Kind::Trades { .. } => {
            let id = fs.next_trade_id();
            let buy = m.rng().chance(50);
            let ticks = if buy { m.best_ask().0 } else { m.best_bid().0 };
            let lots = 1 + m.rng().below((spec.max_level_lots / 10).max(1) as u64) as i64;
            head(out, topic, "snapshot", ms(id));
            out.extend_from_slice(b",\"data\":[{\"T\":");
            int(out, ms(id));
            out.extend_from_slice(b",\"s\":");
            quoted(out, spec.symbol);
            out.extend_from_slice(if buy {
                b",\"S\":\"Buy\""
            } else {
                b",\"S\":\"Sell\""
            });
            field(out, "v", |o| spec.write_qty(o, lots));
            field(out, "p", |o| spec.write_price(o, ticks));
            out.extend_from_slice(if buy {
                b",\"L\":\"PlusTick\""
            } else {
                b",\"L\":\"MinusTick\""
            });
            field(out, "i", |o| int(o, id));
            out.extend_from_slice(b",\"BT\":false}]}");
        }
        Kind::Ticker(_) => {
            m.step_ticker();
            let mark = m.mid_ticks();
            let (b, bq) = m.best_bid();
            let (a, aq) = m.best_ask();
            let delta = topic.started && fs.feed != Feed::BybitSpot;
            out.extend_from_slice(b"{\"topic\":");
            quoted(out, &topic.key);
            out.extend_from_slice(if delta {
                b",\"type\":\"delta\""
            } else {
                b",\"type\":\"snapshot\""
            });
            out.extend_from_slice(b",\"data\":{\"symbol\":");
            quoted(out, spec.symbol);
            if !delta {
                field(out, "lastPrice", |o| spec.write_price(o, mark));
            }
            if spec.derivative {
                field(out, "markPrice", |o| spec.write_price(o, mark));
                field(out, "indexPrice", |o| {
                    spec.write_price(o, mark + m.index_offset_ticks)
                });
                field(out, "openInterest", |o| {
                    spec.write_qty(o, m.open_interest_lots)
                });
                let next_funding_ms = (now / 28_800_000 + 1) * 28_800_000;
                field(out, "nextFundingTime", |o| int(o, next_funding_ms));
                field(out, "fundingRate", |o| {
                    write_scaled(o, m.funding_e8, 8, true)
                });
            }
            field(out, "bid1Price", |o| spec.write_price(o, b));
            field(out, "bid1Size", |o| spec.write_qty(o, bq));
            field(out, "ask1Price", |o| spec.write_price(o, a));
            field(out, "ask1Size", |o| spec.write_qty(o, aq));
            out.extend_from_slice(b"},\"cs\":");
            int(out, m.cross_seq as i64);
            out.extend_from_slice(b",\"ts\":");
            int(out, now);
            out.push(b'}');
            topic.started = true;
        }
        Kind::Liquidations => {
            // `S` is the liquidated position's side: Buy = a long was liquidated
            let long = m.rng().chance(50);
            let off = m.rng().below(5) as i64;
            let ticks = if long {
                m.best_bid().0 - off
            } else {
                m.best_ask().0 + off
            };
            let lots = 1 + m.rng().below((spec.max_level_lots / 20).max(1) as u64) as i64;
            head(out, topic, "snapshot", now);
            out.extend_from_slice(b",\"data\":[{\"T\":");
            int(out, now);
            out.extend_from_slice(b",\"s\":");
            quoted(out, spec.symbol);
            out.extend_from_slice(if long {
                b",\"S\":\"Buy\""
            } else {
                b",\"S\":\"Sell\""
            });
            field(out, "v", |o| spec.write_qty(o, lots));
            field(out, "p", |o| spec.write_price(o, ticks));
            out.extend_from_slice(b"}]}");
        }
    }
}

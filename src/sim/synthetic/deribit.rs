//! Deribit v2 subscription notifications, shaped as <https://docs.deribit.com/> shows them
//! (`book.{i}.{interval}`, `trades.{i}.{interval}`, `ticker.{i}.{interval}`, `quote.{i}`).
//! Prices and amounts are JSON numbers.

use super::market::{Action, BookSide, InstrumentSpec, Market};
use super::pacing::Class;
use super::session::{Kind, Tick, Topic};
use super::{FeedState, int, ms, quoted};
use crate::model::write_scaled;

/// What a channel carries: `book.{i}.{interval}`, `trades.{i}.{interval}`,
/// `ticker.{i}.{interval}`, `quote.{i}`.
pub(super) fn parse_topic(key: &str, specs: &[InstrumentSpec]) -> Option<(Kind, usize)> {
    let parts: Vec<&str> = key.split('.').collect();
    let (kind, symbol) = match parts.as_slice() {
        ["book", i, _] => (Kind::Depth, *i),
        ["trades", i, _] => (Kind::Trades { raw_trade: false }, *i),
        ["ticker", i, _] => (Kind::Ticker(Tick::Deribit), *i),
        ["quote", i] => (Kind::BookTicker, *i),
        _ => return None,
    };
    let i = specs.iter().position(|s| s.symbol == symbol)?;
    Some((kind, i))
}

fn price(out: &mut Vec<u8>, spec: &InstrumentSpec, ticks: i64) {
    write_scaled(out, ticks * spec.tick, spec.price_decimals, true);
}

fn amount(out: &mut Vec<u8>, spec: &InstrumentSpec, lots: i64) {
    write_scaled(out, lots * spec.lot, spec.qty_decimals, true);
}

fn head(out: &mut Vec<u8>, topic: &Topic) {
    out.extend_from_slice(
        b"{\"jsonrpc\":\"2.0\",\"method\":\"subscription\",\"params\":{\"channel\":",
    );
    quoted(out, &topic.key);
    out.extend_from_slice(b",\"data\":");
}

fn num(out: &mut Vec<u8>, key: &str, write: impl FnOnce(&mut Vec<u8>)) {
    out.extend_from_slice(b",\"");
    out.extend_from_slice(key.as_bytes());
    out.extend_from_slice(b"\":");
    write(out);
}

fn level(out: &mut Vec<u8>, spec: &InstrumentSpec, action: Action, ticks: i64, lots: i64) {
    out.extend_from_slice(match action {
        Action::New => b"[\"new\",",
        Action::Change => b"[\"change\",",
        Action::Delete => b"[\"delete\",",
    });
    price(out, spec, ticks);
    out.push(b',');
    amount(out, spec, lots);
    out.push(b']');
}

/// A `book` message: the whole book (`snapshot`, no `prev_change_id`) or the last step's
/// changes (`change`, `prev_change_id` = `prev`).
fn book(out: &mut Vec<u8>, topic: &Topic, m: &Market, prev: Option<u64>) {
    let spec = m.spec;
    head(out, topic);
    out.extend_from_slice(if prev.is_none() {
        b"{\"type\":\"snapshot\""
    } else {
        b"{\"type\":\"change\""
    });
    num(out, "timestamp", |o| int(o, ms(crate::clock::wall_ns())));
    if let Some(p) = prev {
        num(out, "prev_change_id", |o| int(o, p as i64));
    }
    out.extend_from_slice(b",\"instrument_name\":");
    quoted(out, spec.symbol);
    num(out, "change_id", |o| int(o, m.update_id as i64));
    for (key, side) in [("bids", BookSide::Bid), ("asks", BookSide::Ask)] {
        out.extend_from_slice(b",\"");
        out.extend_from_slice(key.as_bytes());
        out.extend_from_slice(b"\":[");
        let mut n = 0;
        if prev.is_none() {
            let levels = if side == BookSide::Bid {
                &m.bids
            } else {
                &m.asks
            };
            for (ticks, lots) in levels {
                if n > 0 {
                    out.push(b',');
                }
                level(out, &spec, Action::New, *ticks, *lots);
                n += 1;
            }
        } else {
            for c in m.changes.iter().filter(|c| c.side == side) {
                if n > 0 {
                    out.push(b',');
                }
                level(out, &spec, c.action, c.ticks, c.lots);
                n += 1;
            }
        }
        out.push(b']');
    }
    out.extend_from_slice(b"}}}");
}

/// The `book` snapshot of `m` at its current `change_id`.
pub(super) fn snapshot(out: &mut Vec<u8>, topic: &Topic, m: &Market) {
    book(out, topic, m, None);
}

/// Writes one data frame of `topic` into `out`; a trades topic in the liquidation class
/// writes a liquidation trade (`"liquidation":"T"`, the taker was liquidated).
pub(super) fn write(
    out: &mut Vec<u8>,
    fs: &FeedState,
    topic: &Topic,
    m: &mut Market,
    class: Class,
) {
    let spec = m.spec;
    let now = ms(crate::clock::wall_ns());
    match topic.kind {
        Kind::Depth => {
            m.step();
            let prev = m.update_id;
            m.update_id += 1;
            book(out, topic, m, Some(prev));
        }
        Kind::Trades { .. } | Kind::Liquidations => {
            let id = fs.next_trade_id();
            let buy = m.rng().chance(50);
            let ticks = if buy { m.best_ask().0 } else { m.best_bid().0 };
            let lots = 1 + m.rng().below((spec.max_level_lots / 10).max(1) as u64) as i64;
            m.cross_seq += 1;
            head(out, topic);
            out.extend_from_slice(b"[{\"trade_seq\":");
            int(out, m.cross_seq as i64);
            out.extend_from_slice(b",\"trade_id\":\"");
            int(out, id);
            out.push(b'"');
            num(out, "timestamp", |o| int(o, ms(id)));
            out.extend_from_slice(b",\"tick_direction\":0");
            num(out, "price", |o| price(o, &spec, ticks));
            num(out, "mark_price", |o| price(o, &spec, m.mid_ticks()));
            out.extend_from_slice(b",\"instrument_name\":");
            quoted(out, spec.symbol);
            num(out, "index_price", |o| price(o, &spec, m.mid_ticks()));
            out.extend_from_slice(if buy {
                b",\"direction\":\"buy\""
            } else {
                b",\"direction\":\"sell\""
            });
            num(out, "amount", |o| amount(o, &spec, lots));
            if class == Class::Liquidation {
                out.extend_from_slice(b",\"liquidation\":\"T\"");
            }
            out.extend_from_slice(b"}]}}");
        }
        Kind::BookTicker => {
            let (b, bq) = m.best_bid();
            let (a, aq) = m.best_ask();
            head(out, topic);
            out.extend_from_slice(b"{\"timestamp\":");
            int(out, now);
            out.extend_from_slice(b",\"instrument_name\":");
            quoted(out, spec.symbol);
            num(out, "best_bid_price", |o| price(o, &spec, b));
            num(out, "best_bid_amount", |o| amount(o, &spec, bq));
            num(out, "best_ask_price", |o| price(o, &spec, a));
            num(out, "best_ask_amount", |o| amount(o, &spec, aq));
            out.extend_from_slice(b"}}}");
        }
        Kind::Ticker(_) => {
            m.step_ticker();
            let mark = m.mid_ticks();
            let (b, bq) = m.best_bid();
            let (a, aq) = m.best_ask();
            head(out, topic);
            out.extend_from_slice(b"{\"timestamp\":");
            int(out, now);
            out.extend_from_slice(b",\"state\":\"open\"");
            num(out, "open_interest", |o| {
                amount(o, &spec, m.open_interest_lots)
            });
            num(out, "mark_price", |o| price(o, &spec, mark));
            num(out, "last_price", |o| price(o, &spec, mark));
            out.extend_from_slice(b",\"instrument_name\":");
            quoted(out, spec.symbol);
            num(out, "index_price", |o| {
                price(o, &spec, mark + m.index_offset_ticks)
            });
            num(out, "funding_8h", |o| {
                write_scaled(o, m.funding_e8, 8, true)
            });
            num(out, "current_funding", |o| {
                write_scaled(o, m.funding_e8, 8, true)
            });
            num(out, "best_bid_price", |o| price(o, &spec, b));
            num(out, "best_bid_amount", |o| amount(o, &spec, bq));
            num(out, "best_ask_price", |o| price(o, &spec, a));
            num(out, "best_ask_amount", |o| amount(o, &spec, aq));
            out.extend_from_slice(b"}}}");
        }
    }
}

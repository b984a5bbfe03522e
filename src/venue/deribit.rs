//! Deribit v2: JSON-RPC 2.0 over one WebSocket (`Feed::Deribit` -> `Exchange::Deribit`).
//!
//! Source: Deribit API documentation, <https://docs.deribit.com/> ("Notifications",
//! "Subscriptions": `book.{instrument_name}.{interval}`,
//! `book.{instrument_name}.{group}.{depth}.{interval}`, `trades.{instrument_name}.{interval}`,
//! `trades.{kind}.{currency}.{interval}`, `ticker.{instrument_name}.{interval}`,
//! `quote.{instrument_name}`; "Session management": `public/set_heartbeat`; "Supporting":
//! `public/test`).
//!
//! What a received frame becomes:
//!
//! | frame | result |
//! |---|---|
//! | `{"method":"subscription","params":{"channel":"book.I.{raw,100ms,agg2}","data":{..}}}` | one book message ([`FrameKind::BookSnapshot`] or [`FrameKind::BookDelta`]), [`Sequence::Deribit`] |
//! | `book.I.{group}.{depth}.{interval}` (grouped: a full snapshot each time, levels `[price, amount]`) | a book snapshot |
//! | `trades.I.{interval}`, `trades.{kind}.{currency}.{interval}` | one [`Event::Trade`] per entry, plus an [`Event::Liquidation`] for entries carrying `liquidation`; [`FrameKind::Trade`] |
//! | `ticker.I.{interval}` | [`Event::DerivativeTicker`]; for an option also two [`Event::OptionHalf`]s |
//! | `quote.I` | [`Event::BookTicker`] |
//! | `chart.trades.*` | [`FrameKind::Kline`] |
//! | other public channels (`perpetual`, `deribit_price_index`, `incremental_ticker`, ...) | [`FrameKind::Ignored`] |
//! | `{"method":"heartbeat","params":{"type":"heartbeat" or "test_request"}}` | [`FrameKind::Heartbeat`] (the ingest thread answers a `test_request` with [`PUBLIC_TEST_FRAME`]) |
//! | reply `{"id":N,"result":[channels]}` (`public/subscribe`) or `"result":"ok"` (`public/set_heartbeat`) | [`FrameKind::Ack`] |
//! | reply `{"id":N,"result":{"version":..}}` (`public/test`) | [`FrameKind::Pong`] |
//! | reply with `"error"` | [`ParseError::VenueError`] |
//!
//! Prices and amounts are JSON numbers (doubles); [`json::decimal`] turns each into the shortest
//! decimal that round-trips, which is the text Deribit wrote. Amounts are USD for futures and
//! perpetuals and base-currency contracts for options, as sent. Time stamps are unix ms.
//!
//! Parsing allocates nothing once warm: the simd-json tape is kept in the [`Parser`], symbols
//! are looked up as borrowed `&str` (upper-cased into a stack buffer only when the venue's name
//! carries a lower-case letter, as decimal option strikes such as `1d02` do).

use simd_json::prelude::*;
use simd_json::tape::Value;

use crate::model::{
    BookBegin, BookSide, BookTicker, Decimal, DerivativeTicker, Event, Exchange, InstrumentId,
    Instruments, Level, Liquidation, OptionHalf, Sequence, ShortId, ShortName, Side, Stamps,
    SyncVerdict, Trade, ms_to_ns,
};

use super::json::{self, JsonScratch};
use super::{
    Channels, ConnectPlan, Feed, FrameKind, ParseError, Sink, Subscription, emit_book, emit_levels,
};

/// JSON-RPC id of the `public/subscribe` request [`connect_plan`] sends.
pub const SUBSCRIBE_ID: u64 = 1;

/// JSON-RPC id of the `public/set_heartbeat` request [`connect_plan`] sends.
pub const SET_HEARTBEAT_ID: u64 = 2;

/// Heartbeat interval asked of Deribit, in seconds (Deribit's minimum is 10).
pub const HEARTBEAT_INTERVAL_S: u64 = 30;

/// The frame that answers a `{"method":"heartbeat","params":{"type":"test_request"}}`.
///
/// Deribit, "public/set_heartbeat" (<https://docs.deribit.com/api-reference/session-management/public-set_heartbeat>):
/// once heartbeats are set up the server sends `test_request` messages, which the client must
/// answer with a `public/test` request or the connection is closed. Its reply
/// (`"result":{"version":..}`) parses as [`FrameKind::Pong`].
pub const PUBLIC_TEST_FRAME: &str =
    r#"{"jsonrpc":"2.0","id":3,"method":"public/test","params":{}}"#;

/// Longest instrument name that the upper-casing fallback lookup handles, in bytes.
const MAX_SYMBOL_BYTES: usize = 64;

/// Parser for one Deribit connection. Keeps the simd-json scratch between frames.
pub struct Parser {
    scratch: JsonScratch,
}

impl Parser {
    /// A parser for `feed` (always [`Feed::Deribit`]).
    pub fn new(feed: Feed) -> Parser {
        debug_assert_eq!(feed, Feed::Deribit);
        Parser {
            scratch: JsonScratch::new(),
        }
    }

    /// Parses one received text frame (modified in place) into events for `sink`.
    /// See [`super::VenueParser::parse_frame`] and the module docs for what each frame yields.
    ///
    /// # Errors
    /// [`ParseError::Json`] for malformed or truncated JSON, [`ParseError::Schema`] for an
    /// unexpected shape (a non-object root, an unknown book action, an unknown `type` or
    /// `direction`), [`ParseError::MissingField`], [`ParseError::BadNumber`] (a number out of
    /// fixed-point range), [`ParseError::UnknownMessage`] for an unknown method or channel,
    /// [`ParseError::UnknownSymbol`] for an instrument not in `instruments`, and
    /// [`ParseError::VenueError`] for an RPC reply carrying `error`.
    pub fn parse_frame<S: Sink>(
        &mut self,
        frame: &mut [u8],
        recv: Stamps,
        instruments: &Instruments,
        sink: &mut S,
    ) -> Result<FrameKind, ParseError> {
        self.scratch
            .parse(frame, |root| parse_message(root, recv, instruments, sink))
    }

    /// Handles a REST response body. Deribit books are seeded by the WebSocket snapshot, so no
    /// REST body (`public/get_instruments`, ...) yields events, and none is parsed: always
    /// [`FrameKind::Ignored`].
    ///
    /// # Errors
    /// None; the `Result` matches the other venues.
    pub fn parse_rest<S: Sink>(
        &mut self,
        _url: &str,
        _body: &mut [u8],
        _recv: Stamps,
        _instruments: &Instruments,
        _sink: &mut S,
    ) -> Result<FrameKind, ParseError> {
        // Deribit books start from the WebSocket snapshot; no REST body (instrument lists)
        // carries anything pinfeed normalizes, so none is parsed.
        Ok(FrameKind::Ignored)
    }
}

/// Deribit's book sync rule on [`Sequence::Deribit`] `change_id`/`prev_change_id`.
///
/// Deribit, subscription `book.{instrument_name}.{interval}`
/// (<https://docs.deribit.com/subscriptions/orderbook/bookinstrument_nameinterval>): "The
/// first notification contains a full snapshot of the book ... Each notification includes a
/// `change_id`. Every message except the first also contains `prev_change_id`. If
/// `prev_change_id` equals the `change_id` of the previous message, it indicates that no
/// messages were missed." Deribit also guarantees per-instrument ordering ("Market Data
/// Collection", <https://docs.deribit.com/articles/market-data-collection-best-practices>).
///
/// So: a snapshot (`prev_change_id` `None`, as the parser marks every snapshot) restarts the
/// chain: [`SyncVerdict::Reset`]. A change whose `prev_change_id` equals `last`'s `change_id`
/// continues it: [`SyncVerdict::Apply`] (the same test holds for the first change after the
/// snapshot, whose `change_id` is `last` when `after_snapshot`; Deribit has no bracketing).
/// A change with `change_id <= last`'s is already in the book: [`SyncVerdict::Stale`].
/// Anything else (a later change that does not chain, or sequences of another kind) is a
/// [`SyncVerdict::Gap`].
pub fn check_sequence(last: &Sequence, _after_snapshot: bool, next: &Sequence) -> SyncVerdict {
    let Sequence::Deribit {
        change_id: next_change_id,
        prev_change_id: next_prev,
    } = *next
    else {
        return SyncVerdict::Gap;
    };
    let Some(next_prev) = next_prev else {
        return SyncVerdict::Reset;
    };
    let Sequence::Deribit {
        change_id: last_change_id,
        ..
    } = *last
    else {
        return SyncVerdict::Gap;
    };
    if next_prev == last_change_id {
        SyncVerdict::Apply
    } else if next_change_id <= last_change_id {
        SyncVerdict::Stale
    } else {
        SyncVerdict::Gap
    }
}

/// The connection plan: `ws_base` as is, one `public/subscribe` frame (id [`SUBSCRIBE_ID`])
/// for every channel of `subs`, then one `public/set_heartbeat` frame (id
/// [`SET_HEARTBEAT_ID`], [`HEARTBEAT_INTERVAL_S`] s). No REST snapshots (the first book
/// notification is the snapshot).
///
/// Channels per subscription: BOOK => `book.{i}.100ms`, TRADES or LIQUIDATIONS =>
/// `trades.{i}.100ms` (liquidations are trades carrying `liquidation`), DERIVATIVE_TICKER =>
/// `ticker.{i}.100ms`, BOOK_TICKER => `quote.{i}`.
///
/// The `100ms` interval, not `raw`: Deribit's channel docs say of `interval` "The value raw
/// means no aggregation will be applied (Please note that raw interval is only available to
/// authorized users)" (<https://docs.deribit.com/subscriptions/orderbook/bookinstrument_nameinterval>,
/// parameter `interval`), and pinfeed connects without credentials. `100ms` books still carry
/// `change_id`/`prev_change_id` and chain the same way; the parser accepts any interval.
///
/// Keep-alive: `None`. Deribit does not need client pings; it sends `heartbeat`
/// notifications, and its `test_request`s must be answered with [`PUBLIC_TEST_FRAME`], which
/// the ingest thread does on seeing [`FrameKind::Heartbeat`] with `test_request` (answering
/// every heartbeat that way is also harmless).
///
/// Symbols are sent as Deribit spells them: upper case, except the decimal mark of an option
/// strike (`MATIC_USDC-9MAR24-1D02-C` is sent as `...-1d02-C`).
pub fn connect_plan(
    _feed: Feed,
    ws_base: &str,
    _rest_base: &str,
    subs: &[Subscription],
) -> ConnectPlan {
    let mut channels: Vec<String> = Vec::new();
    for sub in subs {
        let name = wire_instrument_name(&sub.symbol);
        if sub.channels.contains(Channels::BOOK) {
            channels.push(format!("book.{name}.100ms"));
        }
        if sub.channels.contains(Channels::TRADES) || sub.channels.contains(Channels::LIQUIDATIONS)
        {
            channels.push(format!("trades.{name}.100ms"));
        }
        if sub.channels.contains(Channels::DERIVATIVE_TICKER) {
            channels.push(format!("ticker.{name}.100ms"));
        }
        if sub.channels.contains(Channels::BOOK_TICKER) {
            channels.push(format!("quote.{name}"));
        }
    }
    let mut subscribe_frames = Vec::with_capacity(2);
    if !channels.is_empty() {
        let list = serde_json::to_string(&channels).unwrap_or_else(|_| "[]".to_string());
        subscribe_frames.push(format!(
            r#"{{"jsonrpc":"2.0","id":{SUBSCRIBE_ID},"method":"public/subscribe","params":{{"channels":{list}}}}}"#
        ));
    }
    subscribe_frames.push(format!(
        r#"{{"jsonrpc":"2.0","id":{SET_HEARTBEAT_ID},"method":"public/set_heartbeat","params":{{"interval":{HEARTBEAT_INTERVAL_S}}}}}"#
    ));
    ConnectPlan {
        ws_url: ws_base.to_string(),
        subscribe_frames,
        snapshot_urls: Vec::new(),
        poll_urls: Vec::new(),
        keepalive: None,
    }
}

/// Recovers the subscriptions from the frames sent on a Deribit connection: the `channels` of
/// every `public/subscribe` (or `private/subscribe`) request, any interval. `book.{i}.*`
/// (plain or grouped) => BOOK, `trades.{i}.*` => TRADES | LIQUIDATIONS, `ticker.{i}.*` =>
/// DERIVATIVE_TICKER, `quote.{i}` => BOOK_TICKER; channels per symbol are merged, symbols
/// upper-cased, in first-seen order. Currency-wide channels (`trades.option.BTC.100ms`) name
/// no instrument and are skipped, as are frames that are not subscribe requests. `ws_url` is
/// not needed (Deribit has one endpoint).
pub fn subscriptions_from_wire(_feed: Feed, _ws_url: &str, sent: &[String]) -> Vec<Subscription> {
    let mut subs: Vec<Subscription> = Vec::new();
    for frame in sent {
        let Ok(msg) = serde_json::from_str::<serde_json::Value>(frame) else {
            continue;
        };
        let is_subscribe = msg
            .get("method")
            .and_then(|m| m.as_str())
            .is_some_and(|m| m.ends_with("/subscribe"));
        if !is_subscribe {
            continue;
        }
        let Some(list) = msg
            .get("params")
            .and_then(|p| p.get("channels"))
            .and_then(|c| c.as_array())
        else {
            continue;
        };
        for channel in list.iter().filter_map(|c| c.as_str()) {
            let parts: Vec<&str> = channel.split('.').collect();
            let wanted = match (parts[0], parts.len()) {
                ("book", 3 | 5) => Channels::BOOK,
                ("trades", 3) => Channels::TRADES | Channels::LIQUIDATIONS,
                ("ticker", 3) => Channels::DERIVATIVE_TICKER,
                ("quote", 2) => Channels::BOOK_TICKER,
                _ => continue,
            };
            let symbol = parts[1].to_ascii_uppercase();
            match subs.iter_mut().find(|s| s.symbol == symbol) {
                Some(s) => s.channels |= wanted,
                None => subs.push(Subscription {
                    exchange: Exchange::Deribit,
                    symbol,
                    channels: wanted,
                }),
            }
        }
    }
    subs
}

/// An interned (upper-case) symbol as Deribit spells it on the wire: the decimal mark of an
/// option strike is a lower-case `d` (`XRP_USDC-30JUN23-0d625-C`).
fn wire_instrument_name(symbol: &str) -> String {
    let parts: Vec<&str> = symbol.split('-').collect();
    let n = parts.len();
    let is_option = n >= 4 && matches!(parts[n - 1], "C" | "P");
    if !is_option {
        return symbol.to_string();
    }
    let strike = parts[n - 2];
    let decimal_strike = strike.bytes().filter(|&b| b == b'D').count() == 1
        && strike.bytes().all(|b| b.is_ascii_digit() || b == b'D')
        && !strike.starts_with('D')
        && !strike.ends_with('D');
    if !decimal_strike {
        return symbol.to_string();
    }
    let mut out = parts[..n - 2].join("-");
    out.push('-');
    out.push_str(&strike.replace('D', "d"));
    out.push('-');
    out.push_str(parts[n - 1]);
    out
}

/// Dispatches one frame by its JSON-RPC shape.
fn parse_message<S: Sink>(
    root: Value<'_, '_>,
    recv: Stamps,
    instruments: &Instruments,
    sink: &mut S,
) -> Result<FrameKind, ParseError> {
    if !root.is_object() {
        return Err(ParseError::Schema);
    }
    if let Some(method) = root.get("method") {
        return match method.as_str() {
            Some("subscription") => {
                let params = root
                    .get("params")
                    .ok_or(ParseError::MissingField("params"))?;
                let channel = json::str_field(params, "channel")?;
                let data = params.get("data").ok_or(ParseError::MissingField("data"))?;
                parse_notification(channel, data, recv, instruments, sink)
            }
            Some("heartbeat") => Ok(FrameKind::Heartbeat),
            Some(_) => Err(ParseError::UnknownMessage),
            None => Err(ParseError::Schema),
        };
    }
    if root.get("error").is_some_and(|e| !e.is_null()) {
        return Err(ParseError::VenueError);
    }
    if let Some(result) = root.get("result") {
        // `public/subscribe` answers with the list of channels subscribed,
        // `public/set_heartbeat` with "ok", `public/test` with {"version": ..}.
        if result.is_array() || result.as_str() == Some("ok") {
            return Ok(FrameKind::Ack);
        }
        if result.get("version").is_some() {
            return Ok(FrameKind::Pong);
        }
        return Ok(FrameKind::Ignored);
    }
    Err(ParseError::UnknownMessage)
}

/// Dispatches a subscription notification by its channel name.
fn parse_notification<S: Sink>(
    channel: &str,
    data: Value<'_, '_>,
    recv: Stamps,
    instruments: &Instruments,
    sink: &mut S,
) -> Result<FrameKind, ParseError> {
    let dots = channel.bytes().filter(|&b| b == b'.').count();
    let kind = channel.split('.').next().unwrap_or("");
    match (kind, dots) {
        ("book", 2) => parse_book(data, recv, instruments, sink),
        ("book", 4) => parse_grouped_book(data, recv, instruments, sink),
        // trades.{instrument}.{interval}: every entry is for the subscribed instrument.
        ("trades", 2) => parse_trades(data, true, recv, instruments, sink),
        // trades.{kind}.{currency}.{interval}: entries of instruments not interned are skipped.
        ("trades", 3) => parse_trades(data, false, recv, instruments, sink),
        ("ticker", 2) => parse_ticker(data, recv, instruments, sink),
        ("quote", 1) => parse_quote(data, recv, instruments, sink),
        ("chart", _) => Ok(FrameKind::Kline),
        (
            "perpetual"
            | "incremental_ticker"
            | "deribit_price_index"
            | "deribit_price_ranking"
            | "deribit_price_statistics"
            | "deribit_volatility_index"
            | "estimated_expiration_price"
            | "markprice"
            | "instrument"
            | "platform_state"
            | "announcements"
            | "block_rfq"
            | "block_trade_confirmations"
            | "user",
            _,
        ) => Ok(FrameKind::Ignored),
        _ => Err(ParseError::UnknownMessage),
    }
}

/// Resolves a Deribit instrument name: exact first, then upper-cased in a stack buffer (option
/// strikes with a decimal mark, `1d02`, are interned upper case).
#[inline]
fn lookup(instruments: &Instruments, name: &str) -> Result<InstrumentId, ParseError> {
    if let Some(id) = instruments.get(Exchange::Deribit, name) {
        return Ok(id);
    }
    if name.len() <= MAX_SYMBOL_BYTES && name.bytes().any(|b| b.is_ascii_lowercase()) {
        let mut buf = [0u8; MAX_SYMBOL_BYTES];
        let upper = &mut buf[..name.len()];
        upper.copy_from_slice(name.as_bytes());
        upper.make_ascii_uppercase();
        if let Some(id) = std::str::from_utf8(upper)
            .ok()
            .and_then(|upper| instruments.get(Exchange::Deribit, upper))
        {
            return Ok(id);
        }
    }
    Err(ParseError::UnknownSymbol)
}

/// Stamps with the venue time of `obj.timestamp` (unix ms; 0 when absent).
#[inline]
fn stamps_of(obj: Value<'_, '_>, recv: Stamps) -> Result<Stamps, ParseError> {
    let exch_ts_ns = match obj.get("timestamp") {
        Some(ts) if !ts.is_null() => ms_to_ns(json::int(ts)?),
        _ => 0,
    };
    Ok(Stamps {
        exch_ts_ns,
        recv_ts_ns: recv.recv_ts_ns,
        recv_mono_ns: recv.recv_mono_ns,
        push_delta_ns: 0,
        applied_delta_ns: 0,
    })
}

/// `book.{instrument}.{interval}`: `{type, timestamp, instrument_name, change_id,
/// prev_change_id, bids, asks}` with levels `[action, price, amount]`.
///
/// A snapshot is `type: "snapshot"`, or, in older messages without `type`, one without
/// `prev_change_id`. Snapshots carry `prev_change_id: None` in their [`Sequence`] (whatever
/// the message says: some snapshots carry one), changes carry it as sent.
fn parse_book<S: Sink>(
    data: Value<'_, '_>,
    recv: Stamps,
    instruments: &Instruments,
    sink: &mut S,
) -> Result<FrameKind, ParseError> {
    let instrument = lookup(instruments, json::str_field(data, "instrument_name")?)?;
    let change_id = json::uint_field(data, "change_id")?;
    let prev_change_id = match data.get("prev_change_id") {
        Some(p) if !p.is_null() => Some(json::uint(p)?),
        _ => None,
    };
    let is_snapshot = match data.get("type") {
        None => prev_change_id.is_none(),
        Some(t) => match t.as_str() {
            Some("snapshot") => true,
            Some("change") => false,
            _ => return Err(ParseError::Schema),
        },
    };
    let prev_change_id = if is_snapshot {
        None
    } else {
        Some(prev_change_id.ok_or(ParseError::MissingField("prev_change_id"))?)
    };
    let bids = data.get("bids").ok_or(ParseError::MissingField("bids"))?;
    let asks = data.get("asks").ok_or(ParseError::MissingField("asks"))?;
    if !bids.is_array() || !asks.is_array() {
        return Err(ParseError::Schema);
    }
    let stamps = stamps_of(data, recv)?;
    emit_book(
        sink,
        BookBegin {
            instrument,
            is_snapshot,
            seq: Sequence::Deribit {
                change_id,
                prev_change_id,
            },
            stamps,
        },
        |sink| {
            emit_actions(sink, BookSide::Bid, bids)?;
            emit_actions(sink, BookSide::Ask, asks)?;
            Ok(None)
        },
    )?;
    Ok(if is_snapshot {
        FrameKind::BookSnapshot
    } else {
        FrameKind::BookDelta
    })
}

/// Emits `[action, price, amount]` levels: `new`/`change` set the amount, `delete` sets 0.
#[inline]
fn emit_actions<S: Sink>(
    sink: &mut S,
    side: BookSide,
    levels: Value<'_, '_>,
) -> Result<(), ParseError> {
    let arr = levels.as_array().ok_or(ParseError::Schema)?;
    for entry in arr.iter() {
        let action = entry
            .get_idx(0)
            .and_then(|a| a.into_string())
            .ok_or(ParseError::Schema)?;
        let price = json::decimal(entry.get_idx(1).ok_or(ParseError::Schema)?)?;
        let qty = match action {
            "delete" => Decimal::ZERO,
            "new" | "change" => json::decimal(entry.get_idx(2).ok_or(ParseError::Schema)?)?,
            _ => return Err(ParseError::Schema),
        };
        sink.event(Event::Level(Level { side, price, qty }));
    }
    Ok(())
}

/// `book.{instrument}.{group}.{depth}.{interval}`: a full snapshot of the top `depth` grouped
/// levels each time, levels `[price, amount]`. Its `change_id`, when present, is kept (with no
/// `prev_change_id`); without one the sequence is [`Sequence::None`].
fn parse_grouped_book<S: Sink>(
    data: Value<'_, '_>,
    recv: Stamps,
    instruments: &Instruments,
    sink: &mut S,
) -> Result<FrameKind, ParseError> {
    let instrument = lookup(instruments, json::str_field(data, "instrument_name")?)?;
    let seq = match data.get("change_id") {
        Some(c) if !c.is_null() => Sequence::Deribit {
            change_id: json::uint(c)?,
            prev_change_id: None,
        },
        _ => Sequence::None,
    };
    let bids = data.get("bids").ok_or(ParseError::MissingField("bids"))?;
    let asks = data.get("asks").ok_or(ParseError::MissingField("asks"))?;
    if !bids.is_array() || !asks.is_array() {
        return Err(ParseError::Schema);
    }
    let stamps = stamps_of(data, recv)?;
    emit_book(
        sink,
        BookBegin {
            instrument,
            is_snapshot: true,
            seq,
            stamps,
        },
        |sink| {
            emit_levels(sink, BookSide::Bid, bids, 0, 1)?;
            emit_levels(sink, BookSide::Ask, asks, 0, 1)?;
            Ok(None)
        },
    )?;
    Ok(FrameKind::BookSnapshot)
}

/// `trades.*`: an array of `{trade_id, instrument_name, timestamp, price, amount, direction,
/// liquidation?}`; `direction` is the taker's side.
///
/// `liquidation` (Deribit, `trades.{instrument_name}.{interval}`: "M" when the maker side of
/// the trade was under liquidation, "T" the taker side, "MT" both) also yields a
/// [`Liquidation`] whose side is the liquidated position's closing order, as tardis-node's
/// deribit mapper derives it (`src/mappers/deribit.ts`, `deribitLiquidationsMapper`): "T"
/// takes the trade's direction (a taker selling closes a long: `sell`), "M" and "MT" the
/// opposite (a maker whose resting order was hit by a buy was selling: `sell`). For "MT"
/// one liquidation is emitted, the maker side's, exactly as tardis-machine does, so clients
/// see the same stream.
///
/// With `strict`, an unknown instrument fails the frame ([`ParseError::UnknownSymbol`]);
/// otherwise (currency-wide channels) its entries are skipped and a frame with no interned
/// entry is [`FrameKind::Ignored`]. Each entry is read fully before its events are emitted.
fn parse_trades<S: Sink>(
    data: Value<'_, '_>,
    strict: bool,
    recv: Stamps,
    instruments: &Instruments,
    sink: &mut S,
) -> Result<FrameKind, ParseError> {
    let arr = data.as_array().ok_or(ParseError::Schema)?;
    let mut emitted = false;
    for entry in arr.iter() {
        let instrument = match lookup(instruments, json::str_field(entry, "instrument_name")?) {
            Ok(id) => id,
            Err(_) if !strict => continue,
            Err(e) => return Err(e),
        };
        let price = json::decimal_field(entry, "price")?;
        let qty = json::decimal_field(entry, "amount")?;
        let side = match json::str_field(entry, "direction")? {
            "buy" => Side::Buy,
            "sell" => Side::Sell,
            _ => return Err(ParseError::Schema),
        };
        let id = match entry.get("trade_id") {
            Some(v) if !v.is_null() => Some(if let Some(s) = v.as_str() {
                ShortId::new(s)
            } else if let Some(u) = v.as_u64() {
                ShortId::from_u64(u)
            } else {
                return Err(ParseError::Schema);
            }),
            _ => None,
        };
        let liquidation_side = match entry.get("liquidation") {
            Some(l) if !l.is_null() => Some(match l.as_str() {
                Some("T") => side,
                Some("M" | "MT") => opposite(side),
                _ => return Err(ParseError::Schema),
            }),
            _ => None,
        };
        let stamps = stamps_of(entry, recv)?;
        sink.event(Event::Trade(Trade {
            instrument,
            id,
            price,
            qty,
            side,
            stamps,
        }));
        if let Some(side) = liquidation_side {
            sink.event(Event::Liquidation(Liquidation {
                instrument,
                id,
                price,
                qty,
                side,
                stamps,
            }));
        }
        emitted = true;
    }
    Ok(if strict || emitted {
        FrameKind::Trade
    } else {
        FrameKind::Ignored
    })
}

/// The other side.
#[inline]
fn opposite(side: Side) -> Side {
    match side {
        Side::Buy => Side::Sell,
        Side::Sell => Side::Buy,
        Side::Unknown => Side::Unknown,
    }
}

/// `ticker.{instrument}.{interval}`: `last_price` (null before any trade), `open_interest`,
/// `current_funding` (perpetuals only) as the funding rate, `index_price`, `mark_price`,
/// `best_bid_price`/`best_bid_amount`/`best_ask_price`/`best_ask_amount` (`0`/`0` on an empty
/// side, kept as sent). Only the fields present (and not null) are set. `funding_8h` is not
/// normalized (DerivativeTicker has no 8-hour rate), nor are the option fields (greeks, IVs,
/// underlying), `stats`, `settlement_price`, `min_price`/`max_price`; there is no next
/// funding time or predicted rate on Deribit.
fn parse_ticker<S: Sink>(
    data: Value<'_, '_>,
    recv: Stamps,
    instruments: &Instruments,
    sink: &mut S,
) -> Result<FrameKind, ParseError> {
    let name = json::str_field(data, "instrument_name")?;
    // tardis-node's option summaries: names ending `-C` or `-P` (not combos, spreads)
    let is_option = is_option(name);
    let instrument = lookup(instruments, name)?;
    let ticker = DerivativeTicker {
        instrument,
        last_price: json::opt_decimal_field(data, "last_price")?,
        open_interest: json::opt_decimal_field(data, "open_interest")?,
        funding_rate: json::opt_decimal_field(data, "current_funding")?,
        funding_ts_ns: None,
        predicted_funding_rate: None,
        index_price: json::opt_decimal_field(data, "index_price")?,
        mark_price: json::opt_decimal_field(data, "mark_price")?,
        best_bid_price: json::opt_decimal_field(data, "best_bid_price")?,
        best_bid_qty: json::opt_decimal_field(data, "best_bid_amount")?,
        best_ask_price: json::opt_decimal_field(data, "best_ask_price")?,
        best_ask_qty: json::opt_decimal_field(data, "best_ask_amount")?,
        stamps: stamps_of(data, recv)?,
    };
    sink.event(Event::ticker(ticker));
    if is_option {
        option_halves(data, ticker.instrument, ticker.stamps, sink);
    }
    Ok(FrameKind::DerivativeTicker)
}

/// A Deribit option's name, as tardis-node's mappers tell one: it ends `-C` or `-P`
/// (`DeribitOptionSummaryMapper.canHandle`; combos and spreads do not). Deribit names options
/// `{base}-{DMMMYY}-{strike}-{C|P}` (<https://docs.deribit.com/#public-get_instruments>).
pub fn is_option(name: &str) -> bool {
    name.ends_with("-C") || name.ends_with("-P")
}

/// An option's ticker: the `option_summary` fields as two
/// [`OptionHalf`]s, back to back. tardis-node's `DeribitOptionSummaryMapper`
/// (`src/mappers/deribit.ts`) reads `best_bid_price`, `best_bid_amount`, `bid_iv`,
/// `best_ask_price`, `best_ask_amount`, `ask_iv`, `last_price`, `open_interest`, `mark_price`,
/// `mark_iv`, `greeks.{delta,gamma,vega,theta,rho}`, `underlying_price`, `underlying_index`
/// (<https://docs.deribit.com/#ticker-instrument_name-interval>). A field that is not a number
/// pinfeed's decimals hold (below 1e-18) is left out of the summary rather than failing the
/// ticker.
fn option_halves<S: Sink>(
    data: Value<'_, '_>,
    instrument: InstrumentId,
    stamps: Stamps,
    sink: &mut S,
) {
    // one pass over the ticker's ~25 keys and one over the greeks (`json::fields`)
    let f = json::fields(
        data,
        [
            "best_bid_price",
            "best_bid_amount",
            "bid_iv",
            "best_ask_price",
            "best_ask_amount",
            "ask_iv",
            "last_price",
            "open_interest",
            "mark_price",
            "mark_iv",
            "underlying_price",
            "underlying_index",
            "greeks",
        ],
    );
    let g = f[12].map_or([None; 5], |g| {
        json::fields(g, ["delta", "gamma", "vega", "theta", "rho"])
    });
    let num = |v: Option<Value<'_, '_>>| {
        v.filter(|x| !x.is_null() && x.as_str() != Some(""))
            .and_then(|x| json::decimal(x).ok())
    };
    let a = [
        num(f[0]),
        num(f[1]),
        num(f[2]),
        num(f[3]),
        num(f[4]),
        num(f[5]),
        num(f[6]),
        num(f[7]),
    ];
    let b = [
        num(f[8]),
        num(f[9]),
        num(g[0]),
        num(g[1]),
        num(g[2]),
        num(g[3]),
        num(g[4]),
        num(f[10]),
    ];
    let index = f[11]
        .and_then(|v| v.into_string())
        .map(ShortName::new)
        .unwrap_or_default();
    sink.event(Event::OptionHalf(OptionHalf::new(
        instrument,
        0,
        a,
        ShortName::default(),
        stamps,
    )));
    sink.event(Event::OptionHalf(OptionHalf::new(
        instrument, 1, b, index, stamps,
    )));
}

/// `quote.{instrument}`: `{timestamp, instrument_name, best_bid_price, best_bid_amount,
/// best_ask_price, best_ask_amount}`; absent or null fields stay `None`.
fn parse_quote<S: Sink>(
    data: Value<'_, '_>,
    recv: Stamps,
    instruments: &Instruments,
    sink: &mut S,
) -> Result<FrameKind, ParseError> {
    let instrument = lookup(instruments, json::str_field(data, "instrument_name")?)?;
    let quote = BookTicker {
        instrument,
        update_id: None,
        bid_price: json::opt_decimal_field(data, "best_bid_price")?,
        bid_qty: json::opt_decimal_field(data, "best_bid_amount")?,
        ask_price: json::opt_decimal_field(data, "best_ask_price")?,
        ask_qty: json::opt_decimal_field(data, "best_ask_amount")?,
        stamps: stamps_of(data, recv)?,
    };
    sink.event(Event::BookTicker(quote));
    Ok(FrameKind::BookTicker)
}

#[cfg(test)]
#[path = "deribit_tests/mod.rs"]
mod tests;

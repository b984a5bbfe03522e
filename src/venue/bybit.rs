//! Bybit v5 public WebSocket: `linear`, `inverse` ([`Exchange::Bybit`]) and `spot`
//! ([`Exchange::BybitSpot`]).
//!
//! Sources, all under <https://bybit-exchange.github.io/docs/v5/>:
//! - `ws/connect` ("How to Send the Heartbeat Packet", "Public channel - Args limits",
//!   "Understanding the Subscription Response"): `{"op":"subscribe","args":[...]}`, acks
//!   `{"success":true,"ret_msg":"","op":"subscribe",...}`, pongs
//!   `{"success":true,"ret_msg":"pong","op":"ping",...}` (linear/inverse/spot) or
//!   `{"op":"pong","args":[...]}` (private/option form), a `ping` every 20 s, and at most 10
//!   args per subscribe request on spot.
//! - `websocket/public/orderbook`: `orderbook.{depth}.{symbol}`, `type` `snapshot`/`delta`,
//!   `ts` (ms), `data` `{s, b, a, u, seq}`, `cts`. The sync rule is at [`check_sequence`].
//! - `websocket/public/trade`: `publicTrade.{symbol}`, `data` an array of
//!   `{T, s, S (taker side), v, p, L, i, BT, RPI, seq}`.
//! - `websocket/public/ticker`: `tickers.{symbol}`; linear/inverse send a `snapshot`, then
//!   `delta`s where "if a response param is not found in the message, then its value has not
//!   changed"; spot sends snapshots only.
//! - `websocket/public/all-liquidation`: `allLiquidation.{symbol}`, `data` an array of
//!   `{T, s, S, v, p}`; `websocket/public/liquidation` (deprecated): `liquidation.{symbol}`,
//!   `data` an object `{updatedTime, symbol, side, size, price}`. For both, `side` is the
//!   *position* side: "When you receive a Buy update, this means that a long position has been
//!   liquidated", so Bybit `Buy` becomes [`Side::Sell`] and `Sell` becomes [`Side::Buy`]
//!   (tardis-machine's convention, PROTOCOL.md section 6).
//!
//! What each topic becomes:
//!
//! | topic | events | [`FrameKind`] |
//! |---|---|---|
//! | `orderbook.{50,200,500,...}.{s}` | `BookBegin` (seq [`Sequence::Bybit`]), `Level`s, `BookEnd` | `BookSnapshot` / `BookDelta` |
//! | `orderbook.1.{s}` | one [`BookTicker`]; a side absent or only deleted in the message is `None` | `BookTicker` |
//! | `publicTrade.{s}` | one [`Trade`] per entry | `Trade` |
//! | `tickers.{s}` | one [`DerivativeTicker`] with only the fields present (none when nothing mapped changed) | `DerivativeTicker` |
//! | `allLiquidation.{s}`, `liquidation.{s}` | one [`Liquidation`] per entry | `Liquidation` |
//! | `kline.*`, `kline_lt.*` | none | `Kline` |
//! | `tickers_lt`, `lt`, `insurance`, `priceLimit`, `adlAlert` | none | `Ignored` |
//!
//! Spot tickers carry no open interest, funding, mark or index price: they still become a
//! [`DerivativeTicker`] with what they carry (`lastPrice`), so the book engine keeps one
//! per-instrument state for every ticker; the fan-out decides what a client sees (tardis
//! serves no `derivative_ticker` for `bybit-spot`). `usdIndexPrice` is not the instrument's
//! index price and is not mapped.
//!
//! The symbol comes from the topic (one lookup per frame, not one per entry). Parsing
//! allocates nothing once warm: the JSON tape and the buffer that makes multi-entry frames
//! all-or-nothing are kept in the [`Parser`].

use simd_json::prelude::*;
use simd_json::tape::Value;

use crate::model::{
    BookBegin, BookSide, BookTicker, Decimal, DerivativeTicker, Event, Exchange, InstrumentId,
    Instruments, Liquidation, Sequence, ShortId, Side, Stamps, SyncVerdict, Trade, ms_to_ns,
};

use super::json::{self, JsonScratch};
use super::{
    Channels, ConnectPlan, Feed, FrameKind, ParseError, Sink, Subscription, emit_book, emit_levels,
};

/// Book depth pinfeed subscribes for [`Channels::BOOK`] on every category.
///
/// 200 levels: deep enough for `book_snapshot_{depth}` clients and imbalance over many levels,
/// pushed every 100 ms on linear/inverse and 200 ms on spot (docs `websocket/public/orderbook`,
/// "Depths"); `orderbook.50` would push every 20 ms but only 50 levels. The recordings use 200.
pub const BOOK_DEPTH: u32 = 200;

/// Most topics per subscribe request: spot "can input up to 10 args for each subscription
/// request" (docs `ws/connect`, "Public channel - Args limits"); linear/inverse have no limit,
/// the same chunking is used for them.
pub const MAX_ARGS_PER_SUBSCRIBE: usize = 10;

/// Keep-alive period: "we recommend that you send the ping heartbeat packet every 20 seconds to
/// maintain the WebSocket connection" (docs `ws/connect`, "How to Send the Heartbeat Packet").
pub const PING_INTERVAL_MS: u64 = 20_000;

/// The keep-alive frame (`req_id` is optional and not sent).
pub const PING_FRAME: &str = r#"{"op":"ping"}"#;

/// Events a multi-entry frame buffers before it is known to parse in full.
const PENDING_CAPACITY: usize = 256;

/// Parser for one Bybit v5 public connection (linear, inverse or spot).
pub struct Parser {
    feed: Feed,
    exchange: Exchange,
    scratch: JsonScratch,
    /// Trades and liquidations of the current frame, emitted only once every entry parsed, so
    /// a frame that fails midway yields no event. Keeps its capacity between frames.
    pending: Vec<Event>,
}

impl Parser {
    /// A parser for `feed`: [`Feed::BybitLinear`] and [`Feed::BybitInverse`] resolve symbols
    /// as [`Exchange::Bybit`], [`Feed::BybitSpot`] as [`Exchange::BybitSpot`].
    pub fn new(feed: Feed) -> Parser {
        Parser {
            feed,
            exchange: exchange_of(feed),
            scratch: JsonScratch::new(),
            pending: Vec::with_capacity(PENDING_CAPACITY),
        }
    }

    /// The feed this parser serves.
    pub fn feed(&self) -> Feed {
        self.feed
    }

    /// Parses one received text frame (modified in place) into events for `sink`. See
    /// [`super::VenueParser::parse_frame`] and the module docs for what each topic yields.
    ///
    /// # Errors
    /// [`ParseError::Json`] for malformed or truncated frames; [`ParseError::Schema`] for an
    /// unexpected shape (a non-object root, `data` of the wrong type, an unknown `type`);
    /// [`ParseError::MissingField`] (`data`, `type`, `u`, `b`, `a`, `p`, `v`, ...);
    /// [`ParseError::BadNumber`]; [`ParseError::UnknownMessage`] for an unknown topic or
    /// operation; [`ParseError::UnknownSymbol`] for a symbol not in `instruments`;
    /// [`ParseError::VenueError`] for a `"success":false` reply. A book message that fails
    /// after its `BookBegin` is closed with `BookEnd { aborted: true }`; a trade or
    /// liquidation frame that fails emits nothing.
    pub fn parse_frame<S: Sink>(
        &mut self,
        frame: &mut [u8],
        recv: Stamps,
        instruments: &Instruments,
        sink: &mut S,
    ) -> Result<FrameKind, ParseError> {
        let Parser {
            exchange,
            scratch,
            pending,
            ..
        } = self;
        pending.clear();
        let ctx = Ctx {
            exchange: *exchange,
            recv,
            instruments,
        };
        scratch.parse(frame, |root| parse_root(root, &ctx, pending, sink))
    }

    /// Bybit books are seeded by the WebSocket snapshot, so pinfeed requests no REST body:
    /// every body gives `Ok(FrameKind::Ignored)`.
    ///
    /// # Errors
    /// None.
    pub fn parse_rest<S: Sink>(
        &mut self,
        _url: &str,
        _body: &mut [u8],
        _recv: Stamps,
        _instruments: &Instruments,
        _sink: &mut S,
    ) -> Result<FrameKind, ParseError> {
        Ok(FrameKind::Ignored)
    }
}

/// Bybit v5 book sync rule (`orderbook.{depth}.{symbol}`, depth > 1).
///
/// Source: <https://bybit-exchange.github.io/docs/v5/websocket/public/orderbook>, section
/// "Process snapshot/delta": "Once you have subscribed successfully, you will receive a
/// snapshot. The WebSocket will keep pushing delta messages every time the orderbook changes.
/// If you receive a new snapshot message, you will have to reset your local orderbook."; and
/// the response parameter `u` (Update ID): "Occasionally, you'll receive "u"=1, which is a
/// snapshot data due to the restart of the service. So please overwrite your local orderbook".
/// The `u` of one topic and symbol advances by one per message (the recording shows it on
/// every `orderbook.200` delta, see the tests).
///
/// - `u == 1`: the service restarted, [`SyncVerdict::Reset`] (apply the message as a snapshot);
/// - `u == last u + 1`: [`SyncVerdict::Apply`], also for the first delta after a snapshot
///   (`after_snapshot` changes nothing: the snapshot's own `u` is `last`);
/// - `u <= last u`: already in the book, [`SyncVerdict::Stale`];
/// - anything else, or a sequence that is not [`Sequence::Bybit`]: [`SyncVerdict::Gap`].
///
/// A `type: snapshot` message never reaches this rule: the book engine resets the book on
/// every `BookBegin { is_snapshot: true }`.
pub fn check_sequence(last: &Sequence, _after_snapshot: bool, next: &Sequence) -> SyncVerdict {
    let (
        Sequence::Bybit {
            update_id: last_id, ..
        },
        Sequence::Bybit {
            update_id: next_id, ..
        },
    ) = (last, next)
    else {
        return SyncVerdict::Gap;
    };
    if *next_id == 1 {
        SyncVerdict::Reset
    } else if Some(*next_id) == last_id.checked_add(1) {
        SyncVerdict::Apply
    } else if next_id <= last_id {
        SyncVerdict::Stale
    } else {
        SyncVerdict::Gap
    }
}

/// The connection plan for `subs` on `feed`: connect to `ws_base` as is (it already ends in
/// `/v5/public/{category}`), then send `{"op":"subscribe","args":[...]}` frames of at most
/// [`MAX_ARGS_PER_SUBSCRIBE`] topics, and [`PING_FRAME`] every [`PING_INTERVAL_MS`].
///
/// Topics per channel: [`Channels::BOOK`] `orderbook.200` ([`BOOK_DEPTH`]),
/// [`Channels::BOOK_TICKER`] `orderbook.1`, [`Channels::TRADES`] `publicTrade`,
/// [`Channels::DERIVATIVE_TICKER`] `tickers` and [`Channels::LIQUIDATIONS`] `allLiquidation`
/// (the last two on linear/inverse only: spot has neither). No REST snapshot: books start from
/// the WebSocket snapshot. `rest_base` is unused.
pub fn connect_plan(
    feed: Feed,
    ws_base: &str,
    _rest_base: &str,
    subs: &[Subscription],
) -> ConnectPlan {
    let derivatives = feed != Feed::BybitSpot;
    let mut topics: Vec<String> = Vec::new();
    for sub in subs {
        let s = &sub.symbol;
        let c = sub.channels;
        if c.contains(Channels::BOOK) {
            topics.push(format!("orderbook.{BOOK_DEPTH}.{s}"));
        }
        if c.contains(Channels::BOOK_TICKER) {
            topics.push(format!("orderbook.1.{s}"));
        }
        if c.contains(Channels::TRADES) {
            topics.push(format!("publicTrade.{s}"));
        }
        if derivatives && c.contains(Channels::DERIVATIVE_TICKER) {
            topics.push(format!("tickers.{s}"));
        }
        if derivatives && c.contains(Channels::LIQUIDATIONS) {
            topics.push(format!("allLiquidation.{s}"));
        }
    }
    let subscribe_frames = topics
        .chunks(MAX_ARGS_PER_SUBSCRIBE)
        .map(|chunk| {
            let args = serde_json::Value::from(chunk.to_vec());
            format!(r#"{{"op":"subscribe","args":{args}}}"#)
        })
        .collect();
    ConnectPlan {
        ws_url: ws_base.to_string(),
        subscribe_frames,
        snapshot_urls: Vec::new(),
        poll_urls: Vec::new(),
        keepalive: Some((PING_FRAME.to_string(), PING_INTERVAL_MS)),
    }
}

/// Recovers the subscriptions of a recorded connection from the `subscribe` frames it sent
/// (the inverse of [`connect_plan`]), channels merged per symbol in first-seen order.
///
/// `orderbook.1` gives [`Channels::BOOK_TICKER`], any deeper `orderbook.{depth}`
/// [`Channels::BOOK`], `publicTrade` [`Channels::TRADES`], `tickers`
/// [`Channels::DERIVATIVE_TICKER`] (also on spot, where it was sent), `allLiquidation` and
/// `liquidation` [`Channels::LIQUIDATIONS`]. `kline` and other topics, other operations and
/// frames that are not JSON are skipped. The exchange comes from `feed`; `ws_url` is not needed.
pub fn subscriptions_from_wire(feed: Feed, _ws_url: &str, sent: &[String]) -> Vec<Subscription> {
    let exchange = exchange_of(feed);
    let mut subs: Vec<Subscription> = Vec::new();
    for frame in sent {
        let Ok(msg) = serde_json::from_str::<serde_json::Value>(frame) else {
            continue;
        };
        if msg.get("op").and_then(|o| o.as_str()) != Some("subscribe") {
            continue;
        }
        let Some(args) = msg.get("args").and_then(|a| a.as_array()) else {
            continue;
        };
        for topic in args.iter().filter_map(|a| a.as_str()) {
            let Some((symbol, channels)) = topic_channels(topic) else {
                continue;
            };
            match subs.iter_mut().find(|s| s.symbol == symbol) {
                Some(sub) => sub.channels |= channels,
                None => subs.push(Subscription {
                    exchange,
                    symbol: symbol.to_string(),
                    channels,
                }),
            }
        }
    }
    subs
}

/// The feed of a [`Exchange::Bybit`] symbol, as tardis-machine splits it: symbols ending in
/// `USDT`, `PERP` or `USDC`, or containing `-` (USDC futures, `BTC-26JUN26`), are v5
/// `linear`; the rest (`BTCUSD`, `BTCUSDU23`) are `inverse`.
pub fn linear_or_inverse(symbol: &str) -> Feed {
    if symbol.ends_with("USDT")
        || symbol.ends_with("PERP")
        || symbol.ends_with("USDC")
        || symbol.contains('-')
    {
        Feed::BybitLinear
    } else {
        Feed::BybitInverse
    }
}

/// The exchange id a Bybit feed's symbols belong to.
fn exchange_of(feed: Feed) -> Exchange {
    if feed == Feed::BybitSpot {
        Exchange::BybitSpot
    } else {
        Exchange::Bybit
    }
}

/// Symbol and channel of a subscribed topic; `None` for topics pinfeed does not normalize.
fn topic_channels(topic: &str) -> Option<(&str, Channels)> {
    let (channel, rest) = topic.split_once('.')?;
    match channel {
        "orderbook" => {
            let (depth, symbol) = rest.split_once('.')?;
            match depth.parse::<u32>().ok()? {
                0 => None,
                1 => Some((symbol, Channels::BOOK_TICKER)),
                _ => Some((symbol, Channels::BOOK)),
            }
        }
        "publicTrade" => Some((rest, Channels::TRADES)),
        "tickers" => Some((rest, Channels::DERIVATIVE_TICKER)),
        "allLiquidation" | "liquidation" => Some((rest, Channels::LIQUIDATIONS)),
        _ => None,
    }
}

/// What every topic handler needs besides the frame.
struct Ctx<'a> {
    exchange: Exchange,
    recv: Stamps,
    instruments: &'a Instruments,
}

impl Ctx<'_> {
    #[inline]
    fn instrument(&self, symbol: &str) -> Result<InstrumentId, ParseError> {
        self.instruments
            .get(self.exchange, symbol)
            .ok_or(ParseError::UnknownSymbol)
    }

    /// Stamps with venue time `exch_ms` (unix ms).
    #[inline]
    fn stamps(&self, exch_ms: i64) -> Stamps {
        Stamps {
            exch_ts_ns: ms_to_ns(exch_ms),
            recv_ts_ns: self.recv.recv_ts_ns,
            recv_mono_ns: self.recv.recv_mono_ns,
            push_delta_ns: 0,
            applied_delta_ns: 0,
        }
    }
}

/// The top-level fields of a frame, read in one pass.
#[derive(Default)]
struct Envelope<'t, 'i> {
    topic: Option<Value<'t, 'i>>,
    kind: Option<Value<'t, 'i>>,
    ts: Option<Value<'t, 'i>>,
    data: Option<Value<'t, 'i>>,
    op: Option<Value<'t, 'i>>,
    success: Option<Value<'t, 'i>>,
}

impl<'t, 'i> Envelope<'t, 'i> {
    /// The `data` field.
    #[inline]
    fn data(&self) -> Result<Value<'t, 'i>, ParseError> {
        self.data.ok_or(ParseError::MissingField("data"))
    }

    /// Top-level `ts` in unix ms; 0 when absent.
    #[inline]
    fn ts_ms(&self) -> Result<i64, ParseError> {
        self.ts.map_or(Ok(0), json::int)
    }
}

fn parse_root<S: Sink>(
    root: Value<'_, '_>,
    ctx: &Ctx<'_>,
    pending: &mut Vec<Event>,
    sink: &mut S,
) -> Result<FrameKind, ParseError> {
    let obj = root.as_object().ok_or(ParseError::Schema)?;
    let mut env = Envelope::default();
    for (key, value) in obj.iter() {
        match key {
            "topic" => env.topic = Some(value),
            "type" => env.kind = Some(value),
            "ts" => env.ts = Some(value),
            "data" => env.data = Some(value),
            "op" => env.op = Some(value),
            "success" => env.success = Some(value),
            _ => {}
        }
    }
    let Some(topic) = env.topic else {
        return parse_control(&env);
    };
    let topic = topic.as_str().ok_or(ParseError::Schema)?;
    let (channel, rest) = topic.split_once('.').ok_or(ParseError::UnknownMessage)?;
    match channel {
        "orderbook" => {
            let (depth, symbol) = rest.split_once('.').ok_or(ParseError::UnknownMessage)?;
            match parse_depth(depth)? {
                1 => parse_book_ticker(&env, ctx.instrument(symbol)?, ctx, sink),
                _ => parse_book(&env, ctx.instrument(symbol)?, ctx, sink),
            }
        }
        "publicTrade" => parse_trades(&env, ctx.instrument(rest)?, ctx, pending, sink),
        "tickers" => parse_ticker(&env, ctx.instrument(rest)?, ctx, sink),
        "allLiquidation" | "liquidation" => {
            parse_liquidations(&env, ctx.instrument(rest)?, ctx, pending, sink)
        }
        "kline" | "kline_lt" => Ok(FrameKind::Kline),
        "tickers_lt" | "lt" | "insurance" | "priceLimit" | "adlAlert" => Ok(FrameKind::Ignored),
        _ => Err(ParseError::UnknownMessage),
    }
}

/// Replies to our own requests: subscribe acks, pongs, errors (docs `ws/connect`).
fn parse_control(env: &Envelope<'_, '_>) -> Result<FrameKind, ParseError> {
    if env.success.and_then(|s| s.as_bool()) == Some(false) {
        return Err(ParseError::VenueError);
    }
    match env.op.and_then(|o| o.into_string()) {
        Some("subscribe" | "unsubscribe") => Ok(FrameKind::Ack),
        // public linear/inverse/spot answer `{"success":true,"ret_msg":"pong","op":"ping"}`,
        // private and option `{"op":"pong","args":[...]}`
        Some("ping" | "pong") => Ok(FrameKind::Pong),
        _ => Err(ParseError::UnknownMessage),
    }
}

/// The `{depth}` of an `orderbook.{depth}.{symbol}` topic.
fn parse_depth(depth: &str) -> Result<u32, ParseError> {
    match depth.parse::<u32>() {
        Ok(0) | Err(_) => Err(ParseError::UnknownMessage),
        Ok(d) => Ok(d),
    }
}

/// `orderbook.{depth}.{symbol}` with depth > 1: one book message.
fn parse_book<S: Sink>(
    env: &Envelope<'_, '_>,
    instrument: InstrumentId,
    ctx: &Ctx<'_>,
    sink: &mut S,
) -> Result<FrameKind, ParseError> {
    let is_snapshot = match env.kind.ok_or(ParseError::MissingField("type"))?.as_str() {
        Some("snapshot") => true,
        Some("delta") => false,
        _ => return Err(ParseError::Schema),
    };
    let data = env.data()?.as_object().ok_or(ParseError::Schema)?;
    let (mut bids, mut asks, mut update_id, mut cross_seq) = (None, None, None, None);
    for (key, value) in data.iter() {
        match key {
            "b" => bids = Some(value),
            "a" => asks = Some(value),
            "u" => update_id = Some(value),
            "seq" => cross_seq = Some(value),
            _ => {}
        }
    }
    let update_id = json::uint(update_id.ok_or(ParseError::MissingField("u"))?)?;
    // `seq` is informational (the rule uses `u`); 0 if a message ever lacks it
    let cross_seq = cross_seq.map_or(Ok(0), json::uint)?;
    let bids = bids.ok_or(ParseError::MissingField("b"))?;
    let asks = asks.ok_or(ParseError::MissingField("a"))?;
    let begin = BookBegin {
        instrument,
        is_snapshot,
        seq: Sequence::Bybit {
            update_id,
            cross_seq,
        },
        stamps: ctx.stamps(env.ts_ms()?),
    };
    emit_book(sink, begin, |sink| {
        emit_levels(sink, BookSide::Bid, bids, 0, 1)?;
        emit_levels(sink, BookSide::Ask, asks, 0, 1)?;
        Ok(None)
    })?;
    Ok(if is_snapshot {
        FrameKind::BookSnapshot
    } else {
        FrameKind::BookDelta
    })
}

/// `orderbook.1.{symbol}`: the best bid and ask. A delta lists the new best level and deletes
/// the old one (size 0) on the sides that changed, so each side's best is its first entry
/// with a non-zero size; a side with none is left `None` (unchanged or unknown).
fn parse_book_ticker<S: Sink>(
    env: &Envelope<'_, '_>,
    instrument: InstrumentId,
    ctx: &Ctx<'_>,
    sink: &mut S,
) -> Result<FrameKind, ParseError> {
    let data = env.data()?.as_object().ok_or(ParseError::Schema)?;
    let (mut bids, mut asks, mut update_id) = (None, None, None);
    for (key, value) in data.iter() {
        match key {
            "b" => bids = Some(value),
            "a" => asks = Some(value),
            "u" => update_id = Some(value),
            _ => {}
        }
    }
    let best_bid = best_level(bids.ok_or(ParseError::MissingField("b"))?)?;
    let best_ask = best_level(asks.ok_or(ParseError::MissingField("a"))?)?;
    let update_id = update_id.map(json::uint).transpose()?;
    sink.event(Event::BookTicker(BookTicker {
        instrument,
        update_id,
        bid_price: best_bid.map(|(p, _)| p),
        bid_qty: best_bid.map(|(_, q)| q),
        ask_price: best_ask.map(|(p, _)| p),
        ask_qty: best_ask.map(|(_, q)| q),
        stamps: ctx.stamps(env.ts_ms()?),
    }));
    Ok(FrameKind::BookTicker)
}

/// First `[price, size]` entry of `levels` with a non-zero size.
fn best_level(levels: Value<'_, '_>) -> Result<Option<(Decimal, Decimal)>, ParseError> {
    let levels = levels.as_array().ok_or(ParseError::Schema)?;
    for entry in levels.iter() {
        let price = json::decimal(entry.get_idx(0).ok_or(ParseError::Schema)?)?;
        let qty = json::decimal(entry.get_idx(1).ok_or(ParseError::Schema)?)?;
        if !qty.is_zero() {
            return Ok(Some((price, qty)));
        }
    }
    Ok(None)
}

/// `publicTrade.{symbol}`: one trade per `data` entry, stamped with its fill time `T`.
fn parse_trades<S: Sink>(
    env: &Envelope<'_, '_>,
    instrument: InstrumentId,
    ctx: &Ctx<'_>,
    pending: &mut Vec<Event>,
    sink: &mut S,
) -> Result<FrameKind, ParseError> {
    let entries = env.data()?.as_array().ok_or(ParseError::Schema)?;
    let frame_ts_ms = env.ts_ms()?;
    for entry in entries.iter() {
        let entry = entry.as_object().ok_or(ParseError::Schema)?;
        let (mut time, mut side, mut qty, mut price, mut id) = (None, None, None, None, None);
        for (key, value) in entry.iter() {
            match key {
                "T" => time = Some(value),
                "S" => side = Some(value),
                "v" => qty = Some(value),
                "p" => price = Some(value),
                "i" => id = Some(value),
                _ => {}
            }
        }
        let price = json::decimal(price.ok_or(ParseError::MissingField("p"))?)?;
        let qty = json::decimal(qty.ok_or(ParseError::MissingField("v"))?)?;
        let side = match side.and_then(|s| s.into_string()) {
            Some("Buy") => Side::Buy,
            Some("Sell") => Side::Sell,
            _ => Side::Unknown,
        };
        let id = match id {
            None => None,
            Some(v) => match v.as_str() {
                Some(s) => Some(ShortId::new(s)),
                None => Some(ShortId::from_u64(json::uint(v)?)),
            },
        };
        let time_ms = time.map_or(Ok(frame_ts_ms), json::int)?;
        pending.push(Event::Trade(Trade {
            instrument,
            id,
            price,
            qty,
            side,
            stamps: ctx.stamps(time_ms),
        }));
    }
    for event in pending.drain(..) {
        sink.event(event);
    }
    Ok(FrameKind::Trade)
}

/// `tickers.{symbol}`: the fields present, each set only when the message carries it.
fn parse_ticker<S: Sink>(
    env: &Envelope<'_, '_>,
    instrument: InstrumentId,
    ctx: &Ctx<'_>,
    sink: &mut S,
) -> Result<FrameKind, ParseError> {
    let data = env.data()?.as_object().ok_or(ParseError::Schema)?;
    let mut ticker = DerivativeTicker {
        instrument,
        stamps: ctx.stamps(env.ts_ms()?),
        ..DerivativeTicker::default()
    };
    let mut any = false;
    for (key, value) in data.iter() {
        let slot = match key {
            "lastPrice" => &mut ticker.last_price,
            "openInterest" => &mut ticker.open_interest,
            "fundingRate" => &mut ticker.funding_rate,
            "indexPrice" => &mut ticker.index_price,
            "markPrice" => &mut ticker.mark_price,
            "bid1Price" => &mut ticker.best_bid_price,
            "bid1Size" => &mut ticker.best_bid_qty,
            "ask1Price" => &mut ticker.best_ask_price,
            "ask1Size" => &mut ticker.best_ask_qty,
            "nextFundingTime" => {
                ticker.funding_ts_ns = opt_time_ms(value)?.map(ms_to_ns);
                any |= ticker.funding_ts_ns.is_some();
                continue;
            }
            _ => continue,
        };
        *slot = opt_decimal(value)?;
        any |= slot.is_some();
    }
    if any {
        sink.event(Event::ticker(ticker));
    }
    Ok(FrameKind::DerivativeTicker)
}

/// A decimal, or `None` for `null` and `""` (dated futures send `"fundingRate":""`).
#[inline]
fn opt_decimal(value: Value<'_, '_>) -> Result<Option<Decimal>, ParseError> {
    if value.is_null() || value.as_str() == Some("") {
        return Ok(None);
    }
    json::decimal(value).map(Some)
}

/// A unix-ms time, or `None` for `null`, `""` and `0` (no next funding on dated futures).
#[inline]
fn opt_time_ms(value: Value<'_, '_>) -> Result<Option<i64>, ParseError> {
    if value.is_null() || value.as_str() == Some("") {
        return Ok(None);
    }
    let ms = json::int(value)?;
    Ok((ms != 0).then_some(ms))
}

/// `allLiquidation.{symbol}` (`data` an array of `{T, s, S, v, p}`) and the deprecated
/// `liquidation.{symbol}` (`data` one object `{updatedTime, symbol, side, size, price}`).
fn parse_liquidations<S: Sink>(
    env: &Envelope<'_, '_>,
    instrument: InstrumentId,
    ctx: &Ctx<'_>,
    pending: &mut Vec<Event>,
    sink: &mut S,
) -> Result<FrameKind, ParseError> {
    let data = env.data()?;
    let frame_ts_ms = env.ts_ms()?;
    if let Some(entries) = data.as_array() {
        for entry in entries.iter() {
            pending.push(liquidation(entry, instrument, frame_ts_ms, ctx)?);
        }
    } else {
        pending.push(liquidation(data, instrument, frame_ts_ms, ctx)?);
    }
    for event in pending.drain(..) {
        sink.event(event);
    }
    Ok(FrameKind::Liquidation)
}

/// One liquidation, in either topic's field names. Bybit's side is the liquidated
/// *position*: `Buy` (a long) becomes [`Side::Sell`], `Sell` (a short) [`Side::Buy`].
fn liquidation(
    entry: Value<'_, '_>,
    instrument: InstrumentId,
    frame_ts_ms: i64,
    ctx: &Ctx<'_>,
) -> Result<Event, ParseError> {
    let entry = entry.as_object().ok_or(ParseError::Schema)?;
    let (mut time, mut side, mut qty, mut price) = (None, None, None, None);
    for (key, value) in entry.iter() {
        match key {
            "T" | "updatedTime" | "updateTime" => time = Some(value),
            "S" | "side" => side = Some(value),
            "v" | "size" => qty = Some(value),
            "p" | "price" => price = Some(value),
            _ => {}
        }
    }
    let price = json::decimal(price.ok_or(ParseError::MissingField("price"))?)?;
    let qty = json::decimal(qty.ok_or(ParseError::MissingField("size"))?)?;
    let side = match side.and_then(|s| s.into_string()) {
        Some("Buy") => Side::Sell,
        Some("Sell") => Side::Buy,
        _ => Side::Unknown,
    };
    let time_ms = time.map_or(Ok(frame_ts_ms), json::int)?;
    Ok(Event::Liquidation(Liquidation {
        instrument,
        id: None,
        price,
        qty,
        side,
        stamps: ctx.stamps(time_ms),
    }))
}

#[cfg(test)]
#[path = "bybit_tests/mod.rs"]
mod tests;

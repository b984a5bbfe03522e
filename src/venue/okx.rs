//! OKX v5 public WebSocket (`/ws/v5/public`) and its REST order-book snapshot.
//!
//! One [`Feed::Okx`] connection carries three client-facing exchange ids, chosen per `instId`
//! shape (see [`exchange_of`]): `BTC-USDT` is [`Exchange::Okex`] (spot), `BTC-USD-220527`
//! [`Exchange::OkexFutures`] (dated; X-Perps such as `BTC-USD_UM_XPERP-310404` too) and
//! `BTC-USDT-SWAP` [`Exchange::OkexSwap`]. Options (`BTC-USD-220514-22000-C`) are not served.
//!
//! Channels (docs: <https://www.okx.com/docs-v5/en/#order-book-trading-market-data> and
//! <https://www.okx.com/docs-v5/en/#public-data-websocket>):
//!
//! | channel | normalized as |
//! |---|---|
//! | `books`, `books-l2-tbt`, `books50-l2-tbt` | book snapshot (`action: snapshot`) / delta (`update`), `seqId`/`prevSeqId`, `checksum` |
//! | `books5` | a 5-level book snapshot on every push (`seqId`, no `prevSeqId`) |
//! | `bbo-tbt` | [`BookTicker`] (`seqId` as `update_id`) |
//! | `trades`, `trades-all` | [`Trade`] (`tradeId`, `side` = taker side) |
//! | `tickers` | [`DerivativeTicker`] (`last`, `bidPx`/`bidSz`/`askPx`/`askSz`) for futures and swaps; spot tickers are [`FrameKind::Ignored`]: spot has no derivative data and its BBO comes from `bbo-tbt` |
//! | `open-interest` | [`DerivativeTicker::open_interest`] (`oi`, contracts) |
//! | `funding-rate` | `fundingRate`, `fundingTime` (next settlement, ns) and `nextFundingRate` (predicted; `""` since OKX dropped it) |
//! | `mark-price` | [`DerivativeTicker::mark_price`] |
//! | `index-tickers` | `instId` is an index (`BTC-USD`): `idxPx` becomes the `index_price` of every interned future or swap whose underlying (symbol without its last `-part`) is that index; none interned: [`FrameKind::Ignored`] |
//! | `liquidation-orders` | subscribed per `instType`: one [`Liquidation`] per `details` entry of interned futures and swaps; others are skipped silently (the channel is instType-wide) |
//! | `liquidations` | tardis' REST-polled wrapper (`"generated": true`), read like `details` |
//! | `price-limit`, `opt-summary`, `estimated-price`, `instruments`, `status`, `books-elp`, `call-auction-details` | [`FrameKind::Ignored`] |
//! | `candle*`, `mark-price-candle*`, `index-candle*` | [`FrameKind::Kline`] |
//!
//! Control frames: `{"event":"subscribe"|"unsubscribe"|"login"}` is an [`FrameKind::Ack`],
//! `{"event":"error"}` a [`ParseError::VenueError`], the text `pong` (not JSON) a
//! [`FrameKind::Pong`].
//!
//! Parsing allocates nothing once the [`JsonScratch`] is warm; [`checksum`] builds its string in
//! a stack buffer.

use simd_json::prelude::*;
use simd_json::tape::Value;

use crate::model::{
    BookBegin, BookSide, BookTicker, Decimal, DecimalError, DerivativeTicker, Event, Exchange,
    InstrumentId, Instruments, Liquidation, MAX_DECIMALS, Sequence, ShortId, Side, Stamps,
    SyncVerdict, Trade, ms_to_ns,
};

use super::json::{self, JsonScratch};
use super::{
    Channels, ConnectPlan, Feed, FrameKind, ParseError, Sink, Subscription, emit_book, emit_levels,
};

/// Keep-alive text frame: OKX closes a connection that sees nothing for 30 s.
const PING: &str = "ping";

/// How often the keep-alive text `ping` is sent, in ms.
///
/// <https://www.okx.com/docs-v5/en/#overview-websocket-overview>: "The connection will break
/// automatically if the subscription is not established or data has not been pushed for more
/// than 30 seconds. ... Set a timer of N seconds whenever a response message is received, where
/// N is less than 30. ... send the String 'ping'. Expect a 'pong' as a response."
pub const KEEPALIVE_INTERVAL_MS: u64 = 25_000;

/// Arguments per subscribe frame. OKX caps a request at 64 KB of channels
/// (<https://www.okx.com/docs-v5/en/#overview-websocket-subscribe>); 100 args stay far below.
const ARGS_PER_FRAME: usize = 100;

/// Parser for one OKX v5 public connection.
pub struct Parser {
    feed: Feed,
    scratch: JsonScratch,
}

impl Parser {
    /// A parser for `feed` (always [`Feed::Okx`]).
    pub fn new(feed: Feed) -> Parser {
        Parser {
            feed,
            scratch: JsonScratch::new(),
        }
    }

    /// The feed this parser was made for.
    pub fn feed(&self) -> Feed {
        self.feed
    }

    /// See [`super::VenueParser::parse_frame`].
    ///
    /// A trades, liquidation or ticker frame with several `data` entries emits the entries
    /// before a bad one.
    ///
    /// # Errors
    /// A [`ParseError`]: [`ParseError::Json`] for malformed JSON, [`ParseError::Schema`] for
    /// another shape, [`ParseError::MissingField`], [`ParseError::BadNumber`],
    /// [`ParseError::UnknownMessage`] for an unknown channel or event,
    /// [`ParseError::UnknownSymbol`] for an `instId` that is not interned (or an option), and
    /// [`ParseError::VenueError`] for `{"event":"error"}`.
    pub fn parse_frame<S: Sink>(
        &mut self,
        frame: &mut [u8],
        recv: Stamps,
        instruments: &Instruments,
        sink: &mut S,
    ) -> Result<FrameKind, ParseError> {
        if frame.trim_ascii() == b"pong" {
            return Ok(FrameKind::Pong);
        }
        self.scratch
            .parse(frame, |root| parse_message(root, recv, instruments, sink))
    }

    /// See [`super::VenueParser::parse_rest`]: a `GET /api/v5/market/books` (or `books-full`)
    /// body becomes a book snapshot of the `instId=` of `url`, with
    /// `Sequence::Okx { seq_id: seqId, prev_seq_id: -1 }` when the body carries `seqId`
    /// (documented since 2026) and [`Sequence::None`] otherwise. Other URLs (instrument lists)
    /// give [`FrameKind::Ignored`].
    ///
    /// # Errors
    /// [`ParseError::VenueError`] for a `code` other than `"0"`, [`ParseError::UnknownSymbol`],
    /// [`ParseError::MissingField`]`("instId")` for a book URL without it, and JSON errors.
    pub fn parse_rest<S: Sink>(
        &mut self,
        url: &str,
        body: &mut [u8],
        recv: Stamps,
        instruments: &Instruments,
        sink: &mut S,
    ) -> Result<FrameKind, ParseError> {
        if !rest_body_wanted(url) {
            return Ok(FrameKind::Ignored);
        }
        let inst_id = query_param(url, "instId").ok_or(ParseError::MissingField("instId"))?;
        let (_, instrument) = resolve(instruments, inst_id)?;
        self.scratch.parse(body, |root| {
            if root.as_object().is_none() {
                return Err(ParseError::Schema);
            }
            if let Some(code) = root.get("code") {
                if code.as_str() != Some("0") {
                    return Err(ParseError::VenueError);
                }
            }
            let item = first_item(root)?;
            let seq = match present(item, "seqId") {
                Some(v) => Sequence::Okx {
                    seq_id: json::int(v)?,
                    prev_seq_id: -1,
                },
                None => Sequence::None,
            };
            let exch_ts_ns = ts_field(item, "ts")?;
            emit_book_body(
                sink,
                item,
                instrument,
                true,
                seq,
                stamps(recv, exch_ts_ns),
                None,
            )?;
            Ok(FrameKind::BookSnapshot)
        })
    }
}

/// The client-facing exchange id of an OKX `instId`, by its shape: two dash-separated parts is
/// spot ([`Exchange::Okex`]), a third part of digits a dated future ([`Exchange::OkexFutures`]),
/// a third part `SWAP` a perpetual swap ([`Exchange::OkexSwap`]); anything else (options,
/// indexes with more parts) is `None`.
pub fn exchange_of(inst_id: &str) -> Option<Exchange> {
    let mut parts = inst_id.split('-');
    let base = parts.next()?;
    let quote = parts.next()?;
    if base.is_empty() || quote.is_empty() {
        return None;
    }
    match (parts.next(), parts.next()) {
        (None, _) => Some(Exchange::Okex),
        (Some("SWAP"), None) => Some(Exchange::OkexSwap),
        (Some(d), None) if !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()) => {
            Some(Exchange::OkexFutures)
        }
        _ => None,
    }
}

/// The URL of a REST order-book snapshot of `inst_id` (`sz=400`, the documented maximum of
/// `GET /api/v5/market/books`), for a resync by REST.
pub fn rest_snapshot_url(rest_base: &str, inst_id: &str) -> String {
    format!(
        "{}/api/v5/market/books?instId={inst_id}&sz=400",
        rest_base.trim_end_matches('/')
    )
}

/// OKX order-book sync rule.
///
/// Source: <https://www.okx.com/docs-v5/en/#order-book-trading-market-data-ws-order-book-channel>,
/// section "Sequence ID": "The `prevSeqId` in the new message matches with `seqId` of the
/// previous message. The smallest possible sequence ID value is 0, except in snapshot messages
/// where the prevSeqId is always -1." Exceptions: "1. If there are no updates to the depth for
/// an extended period ... OKX will send a message with `'asks': [], 'bids': []` ... `seqId` is
/// the same as the last sent message and `prevSeqId` equals to `seqId`. 2. The sequence number
/// may be reset due to maintenance, and in this case, users will receive an incremental message
/// with `seqId` smaller than `prevSeqId`. However, subsequent messages will follow the regular
/// sequencing rule." (example: `prevSeqId = 15, seqId = 3`, then `prevSeqId = 3, seqId = 5`).
///
/// - `next.prev_seq_id == last.seq_id` => [`SyncVerdict::Apply`]. This covers the keep-alive
///   (`seqId == prevSeqId ==` last, no levels) and the maintenance reset: the reset message is
///   documented as an *incremental* message that still names the last `seqId` as its
///   `prevSeqId`, so it is applied as a delta, and the chain continues from its smaller `seqId`.
///   [`SyncVerdict::Reset`] (clear the book) would be wrong for it, so this rule never returns it.
/// - `next.prev_seq_id == -1`: a snapshot, which replaces the book => Apply.
/// - After a REST snapshot (`GET /api/v5/market/books` carries `seqId`, "Sequence ID of the
///   current message", section "GET / Order book"): an update with `seqId <=` the snapshot's
///   `seqId` is already in it => [`SyncVerdict::Stale`]; the first update applied must bracket
///   it, `prevSeqId < snapshot seqId < seqId` (levels carry absolute sizes, so applying the
///   message that spans the snapshot point yields the book at its `seqId`); `prevSeqId >`
///   snapshot `seqId` => [`SyncVerdict::Gap`]. A reset message (`seqId < prevSeqId`) that does
///   not chain => Gap, so a stale-looking post-reset chain is never dropped forever.
/// - Otherwise => Gap (over one TCP stream nothing arrives twice: a mismatch is a loss).
/// - Either side without `seqId` ([`Sequence::None`], the pre-2026 `books` and the recordings)
///   => Apply: the CRC32 checksum guards those books.
pub fn check_sequence(last: &Sequence, after_snapshot: bool, next: &Sequence) -> SyncVerdict {
    let Sequence::Okx {
        seq_id,
        prev_seq_id,
    } = *next
    else {
        return SyncVerdict::Apply;
    };
    if prev_seq_id == -1 {
        return SyncVerdict::Apply;
    }
    let Sequence::Okx {
        seq_id: last_seq_id,
        ..
    } = *last
    else {
        return SyncVerdict::Apply;
    };
    if prev_seq_id == last_seq_id {
        return SyncVerdict::Apply;
    }
    if after_snapshot {
        if seq_id < prev_seq_id {
            return SyncVerdict::Gap;
        }
        if seq_id <= last_seq_id {
            return SyncVerdict::Stale;
        }
        if prev_seq_id < last_seq_id {
            return SyncVerdict::Apply;
        }
    }
    SyncVerdict::Gap
}

/// True for the REST URLs whose bodies carry data: order-book snapshots
/// (`/api/v5/market/books`, `books-full`); instrument lists are not parsed.
pub fn rest_body_wanted(url: &str) -> bool {
    url.contains("/api/v5/market/books")
}

/// Levels per side the checksum covers.
pub const CHECKSUM_LEVELS: usize = 25;

/// Longest text of one [`Decimal`]: `-` and 19 digits and `.`, or `-0.` and 18 decimals.
const NUMBER_MAX_BYTES: usize = 21;

/// The checksum string of 25 levels per side: 100 numbers, each followed by a `:` at most.
const CHECKSUM_BUF_BYTES: usize = CHECKSUM_LEVELS * 2 * 2 * (NUMBER_MAX_BYTES + 1);

/// OKX's order-book checksum ([`crate::model::ChecksumFn`]): CRC32 of
/// `bid1px:bid1sz:ask1px:ask1sz:bid2px:...` over the best [`CHECKSUM_LEVELS`] levels of each
/// side (best first; extra levels are ignored), alternating bid and ask; when one side runs
/// out, the other continues alone. Prices and sizes are written exactly as sent (`"0.50"` stays
/// `"0.50"`, as [`Decimal::write_exact`] writes them). The CRC32 is read as a signed 32-bit
/// integer. No allocation: the string is built in a stack buffer.
///
/// Source: <https://www.okx.com/docs-v5/en/#order-book-trading-market-data-ws-order-book-channel>,
/// section "Checksum": "Use the first 25 bids and asks in the full load to form a string (where
/// a colon connects the price and size in an ask or a bid), and then calculate the CRC32 value
/// (32-bit signed integer)"; "When the bid or ask depth data is less than 25 levels, the missing
/// depth data will be ignored." Examples there: `"3366.1:7:3366.8:9:3366:6:3368:8"` and
/// `"3366.1:7:3366.8:9:3368:8:3372:8"`. OKX fixed the field to 0 in production on
/// 2026-06-23 (help-centre notice "OKX Order Book Channels Checksum Field Deprecation"); the
/// parser then reports no checksum.
pub fn checksum(bids: &[(Decimal, Decimal)], asks: &[(Decimal, Decimal)]) -> i32 {
    let mut buf = [0u8; CHECKSUM_BUF_BYTES];
    let mut out = StackWriter {
        buf: &mut buf,
        len: 0,
    };
    let bids = &bids[..bids.len().min(CHECKSUM_LEVELS)];
    let asks = &asks[..asks.len().min(CHECKSUM_LEVELS)];
    for i in 0..bids.len().max(asks.len()) {
        for level in [bids.get(i), asks.get(i)].into_iter().flatten() {
            out.number(level.0);
            out.number(level.1);
        }
    }
    crc32fast::hash(out.text()) as i32
}

/// Writes `:`-separated exact decimals into a fixed buffer sized for [`CHECKSUM_LEVELS`].
struct StackWriter<'a> {
    buf: &'a mut [u8; CHECKSUM_BUF_BYTES],
    len: usize,
}

impl StackWriter<'_> {
    fn push(&mut self, byte: u8) {
        self.buf[self.len] = byte;
        self.len += 1;
    }

    fn extend(&mut self, bytes: &[u8]) {
        self.buf[self.len..self.len + bytes.len()].copy_from_slice(bytes);
        self.len += bytes.len();
    }

    /// Appends `:` (unless first) and the exact text of `value`, as
    /// [`crate::model::write_scaled`] writes it untrimmed. At most [`NUMBER_MAX_BYTES`] + 1.
    fn number(&mut self, value: Decimal) {
        if self.len > 0 {
            self.push(b':');
        }
        if value.mantissa < 0 {
            self.push(b'-');
        }
        let mut itoa_buf = itoa::Buffer::new();
        let digits = itoa_buf.format(value.mantissa.unsigned_abs()).as_bytes();
        let decimals = usize::from(value.decimals.min(MAX_DECIMALS));
        if decimals == 0 {
            self.extend(digits);
        } else if digits.len() > decimals {
            let split = digits.len() - decimals;
            self.extend(&digits[..split]);
            self.push(b'.');
            self.extend(&digits[split..]);
        } else {
            self.extend(b"0.");
            for _ in digits.len()..decimals {
                self.push(b'0');
            }
            self.extend(digits);
        }
    }

    fn text(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

/// See [`super::connect_plan`]. URL: `ws_base` itself (`wss://ws.okx.com:8443/ws/v5/public`).
/// Frames: `{"op":"subscribe","args":[{"channel":..,"instId":..},...]}` (at most 100 args
/// each), in subscription order, duplicates dropped:
/// - [`Channels::BOOK`] => `books` (400 levels, public, no login);
/// - [`Channels::TRADES`] => `trades`;
/// - [`Channels::BOOK_TICKER`] => `bbo-tbt`;
/// - [`Channels::DERIVATIVE_TICKER`] (futures and swaps; spot has none) => `tickers`,
///   `open-interest`, `mark-price`, `funding-rate` (swaps and X-Perps) and `index-tickers` of
///   the underlying (`BTC-USD` for `BTC-USD-SWAP`);
/// - [`Channels::LIQUIDATIONS`] (futures and swaps) => `liquidation-orders` once per `instType`
///   (`FUTURES`, `SWAP`).
///
/// Keep-alive: the text `ping` every [`KEEPALIVE_INTERVAL_MS`]. No REST snapshot URLs: the
/// `books` channel still opens with a WebSocket snapshot (see [`rest_snapshot_url`] for a REST
/// resync).
pub fn connect_plan(
    _feed: Feed,
    ws_base: &str,
    _rest_base: &str,
    subs: &[Subscription],
) -> ConnectPlan {
    let mut args: Vec<String> = Vec::new();
    let mut add = |key: &str, value: &str, channel: &str| {
        let arg = serde_json::json!({ "channel": channel, key: value }).to_string();
        if !args.contains(&arg) {
            args.push(arg);
        }
    };
    for sub in subs {
        let symbol = sub.symbol.as_str();
        let derivative = matches!(sub.exchange, Exchange::OkexFutures | Exchange::OkexSwap);
        if sub.channels.contains(Channels::BOOK) {
            add("instId", symbol, "books");
        }
        if sub.channels.contains(Channels::TRADES) {
            add("instId", symbol, "trades");
        }
        if sub.channels.contains(Channels::BOOK_TICKER) {
            add("instId", symbol, "bbo-tbt");
        }
        if derivative && sub.channels.contains(Channels::DERIVATIVE_TICKER) {
            add("instId", symbol, "tickers");
            add("instId", symbol, "open-interest");
            add("instId", symbol, "mark-price");
            if sub.exchange == Exchange::OkexSwap || symbol.contains("XPERP") {
                add("instId", symbol, "funding-rate");
            }
            if let Some(index) = underlying(symbol).filter(|u| !u.contains('_')) {
                add("instId", index, "index-tickers");
            }
        }
        if derivative && sub.channels.contains(Channels::LIQUIDATIONS) {
            let inst_type = if sub.exchange == Exchange::OkexSwap {
                "SWAP"
            } else {
                "FUTURES"
            };
            add("instType", inst_type, "liquidation-orders");
        }
    }
    let subscribe_frames = args
        .chunks(ARGS_PER_FRAME)
        .map(|chunk| format!(r#"{{"op":"subscribe","args":[{}]}}"#, chunk.join(",")))
        .collect();
    ConnectPlan {
        ws_url: ws_base.to_string(),
        subscribe_frames,
        snapshot_urls: vec![],
        poll_urls: Vec::new(),
        keepalive: Some((PING.to_string(), KEEPALIVE_INTERVAL_MS)),
    }
}

/// See [`super::subscriptions_from_wire`]: reads the `args` of every `{"op":"subscribe"}`
/// frame (other frames, `unsubscribe` included, are skipped), merging channels per
/// `(exchange, symbol)` in first-seen order. `books*` => BOOK, `trades*` => TRADES, `bbo-tbt` =>
/// BOOK_TICKER, `tickers`/`open-interest`/`funding-rate`/`mark-price` of a future or swap =>
/// DERIVATIVE_TICKER (spot tickers normalize to nothing). `index-tickers` names an index, not
/// an instrument, and is skipped. `liquidation-orders` names an `instType`, not symbols: it
/// adds LIQUIDATIONS to every future (`FUTURES`) or swap (`SWAP`) the frames name, so a
/// symbol subscribed for liquidations alone is not recovered. Options are skipped.
pub fn subscriptions_from_wire(_feed: Feed, _ws_url: &str, sent: &[String]) -> Vec<Subscription> {
    let mut subs: Vec<Subscription> = Vec::new();
    let mut liquidation_types: Vec<Exchange> = Vec::new();
    for frame in sent {
        let Ok(msg) = serde_json::from_str::<serde_json::Value>(frame) else {
            continue;
        };
        if msg.get("op").and_then(|v| v.as_str()) != Some("subscribe") {
            continue;
        }
        let Some(args) = msg.get("args").and_then(|v| v.as_array()) else {
            continue;
        };
        for arg in args {
            let Some(channel) = arg.get("channel").and_then(|v| v.as_str()) else {
                continue;
            };
            if channel == "liquidation-orders" {
                match arg.get("instType").and_then(|v| v.as_str()) {
                    Some("SWAP") => liquidation_types.push(Exchange::OkexSwap),
                    Some("FUTURES") => liquidation_types.push(Exchange::OkexFutures),
                    _ => {}
                }
                continue;
            }
            let Some(symbol) = arg.get("instId").and_then(|v| v.as_str()) else {
                continue;
            };
            let Some(exchange) = exchange_of(symbol) else {
                continue;
            };
            let bits = match channel {
                "books" | "books5" | "books-l2-tbt" | "books50-l2-tbt" => Channels::BOOK,
                "trades" | "trades-all" => Channels::TRADES,
                "bbo-tbt" => Channels::BOOK_TICKER,
                "tickers" | "open-interest" | "funding-rate" | "mark-price"
                    if exchange != Exchange::Okex =>
                {
                    Channels::DERIVATIVE_TICKER
                }
                _ => continue,
            };
            merge(&mut subs, exchange, symbol, bits);
        }
    }
    for sub in &mut subs {
        if liquidation_types.contains(&sub.exchange) {
            sub.channels |= Channels::LIQUIDATIONS;
        }
    }
    subs
}

fn merge(subs: &mut Vec<Subscription>, exchange: Exchange, symbol: &str, bits: Channels) {
    match subs
        .iter_mut()
        .find(|s| s.exchange == exchange && s.symbol == symbol)
    {
        Some(sub) => sub.channels |= bits,
        None => subs.push(Subscription {
            exchange,
            symbol: symbol.to_string(),
            channels: bits,
        }),
    }
}

/// The underlying index of a future or swap: the symbol without its last `-part`.
fn underlying(symbol: &str) -> Option<&str> {
    symbol.rsplit_once('-').map(|(u, _)| u)
}

/// The value of `key=` in the query string of `url`.
fn query_param<'u>(url: &'u str, key: &str) -> Option<&'u str> {
    let (_, query) = url.split_once('?')?;
    query.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=')?;
        (k == key && !v.is_empty()).then_some(v)
    })
}

// ---------------------------------------------------------------------------------------------
// Frame parsing. Every function reads only the fields its message needs.

fn parse_message<S: Sink>(
    root: Value<'_, '_>,
    recv: Stamps,
    instruments: &Instruments,
    sink: &mut S,
) -> Result<FrameKind, ParseError> {
    if root.as_object().is_none() {
        return Err(ParseError::Schema);
    }
    if let Some(event) = root.get("event") {
        // https://www.okx.com/docs-v5/en/#overview-websocket-subscribe: `event` is
        // `subscribe`, `unsubscribe` or `error`; `notice` announces a service upgrade.
        return match event.as_str() {
            Some("subscribe" | "unsubscribe" | "login") => Ok(FrameKind::Ack),
            Some("error" | "channel-conn-count-error") => Err(ParseError::VenueError),
            Some("notice" | "channel-conn-count") => Ok(FrameKind::Ignored),
            Some(_) => Err(ParseError::UnknownMessage),
            None => Err(ParseError::Schema),
        };
    }
    let arg = root.get("arg").ok_or(ParseError::MissingField("arg"))?;
    let channel = json::str_field(arg, "channel")?;
    let data = root.get("data").ok_or(ParseError::MissingField("data"))?;
    if data.as_array().is_none() {
        return Err(ParseError::Schema);
    }
    match channel {
        "books" | "books-l2-tbt" | "books50-l2-tbt" | "books5" => {
            parse_book(root, arg, channel, recv, instruments, sink)
        }
        "bbo-tbt" => parse_bbo(root, arg, recv, instruments, sink),
        "trades" | "trades-all" => parse_trades(data, arg, recv, instruments, sink),
        "tickers" | "open-interest" | "funding-rate" | "mark-price" => {
            parse_derivative(channel, data, arg, recv, instruments, sink)
        }
        "index-tickers" => parse_index(data, arg, recv, instruments, sink),
        "liquidation-orders" => parse_liquidation_orders(data, recv, instruments, sink),
        "liquidations" => {
            let (_, instrument) = resolve(instruments, json::str_field(arg, "instId")?)?;
            for detail in data.as_array().into_iter().flat_map(|a| a.iter()) {
                sink.event(Event::Liquidation(liquidation(detail, instrument, recv)?));
            }
            Ok(FrameKind::Liquidation)
        }
        "price-limit"
        | "opt-summary"
        | "estimated-price"
        | "instruments"
        | "status"
        | "books-elp"
        | "call-auction-details" => Ok(FrameKind::Ignored),
        c if c.starts_with("candle")
            || c.starts_with("mark-price-candle")
            || c.starts_with("index-candle") =>
        {
            Ok(FrameKind::Kline)
        }
        _ => Err(ParseError::UnknownMessage),
    }
}

/// `books`, `books-l2-tbt`, `books50-l2-tbt` (`action` snapshot/update) and `books5`
/// (a snapshot on every push). `data[0]`: `{asks:[[px,sz,"0",orders]], bids, ts, checksum,
/// seqId?, prevSeqId?}`.
fn parse_book<S: Sink>(
    root: Value<'_, '_>,
    arg: Value<'_, '_>,
    channel: &str,
    recv: Stamps,
    instruments: &Instruments,
    sink: &mut S,
) -> Result<FrameKind, ParseError> {
    let (_, instrument) = resolve(instruments, json::str_field(arg, "instId")?)?;
    let item = first_item(root)?;
    let is_snapshot = match root.get("action") {
        Some(action) => match action.as_str() {
            Some("snapshot") => true,
            Some("update") => false,
            _ => return Err(ParseError::Schema),
        },
        None if channel == "books5" => true,
        None => return Err(ParseError::MissingField("action")),
    };
    let seq = match present(item, "seqId") {
        None => Sequence::None,
        Some(v) => Sequence::Okx {
            seq_id: json::int(v)?,
            prev_seq_id: match present(item, "prevSeqId") {
                Some(p) => json::int(p)?,
                None if is_snapshot => -1,
                None => return Err(ParseError::MissingField("prevSeqId")),
            },
        },
    };
    // Since 2026-06-23 the field stays but is always 0 ("must no longer be used"): no checksum.
    let checksum = match present(item, "checksum") {
        None => None,
        Some(v) => match json::int(v)? {
            0 => None,
            c => Some(i32::try_from(c).map_err(|_| ParseError::BadNumber(DecimalError::Overflow))?),
        },
    };
    let exch_ts_ns = ts_field(item, "ts")?;
    emit_book_body(
        sink,
        item,
        instrument,
        is_snapshot,
        seq,
        stamps(recv, exch_ts_ns),
        checksum,
    )?;
    Ok(if is_snapshot {
        FrameKind::BookSnapshot
    } else {
        FrameKind::BookDelta
    })
}

/// Emits `item`'s `bids` and `asks` as one book message. Both arrays are checked before the
/// `BookBegin`, so a message without them emits nothing.
fn emit_book_body<S: Sink>(
    sink: &mut S,
    item: Value<'_, '_>,
    instrument: InstrumentId,
    is_snapshot: bool,
    seq: Sequence,
    stamps: Stamps,
    checksum: Option<i32>,
) -> Result<(), ParseError> {
    let bids = item.get("bids").ok_or(ParseError::MissingField("bids"))?;
    let asks = item.get("asks").ok_or(ParseError::MissingField("asks"))?;
    if bids.as_array().is_none() || asks.as_array().is_none() {
        return Err(ParseError::Schema);
    }
    let begin = BookBegin {
        instrument,
        is_snapshot,
        seq,
        stamps,
    };
    emit_book(sink, begin, |sink| {
        emit_levels(sink, BookSide::Bid, bids, 0, 1)?;
        emit_levels(sink, BookSide::Ask, asks, 0, 1)?;
        Ok(checksum)
    })
}

/// `bbo-tbt`: `data[0]` `{asks:[[px,sz,..]], bids, ts, seqId?}`; an empty side stays `None`.
fn parse_bbo<S: Sink>(
    root: Value<'_, '_>,
    arg: Value<'_, '_>,
    recv: Stamps,
    instruments: &Instruments,
    sink: &mut S,
) -> Result<FrameKind, ParseError> {
    let (_, instrument) = resolve(instruments, json::str_field(arg, "instId")?)?;
    let item = first_item(root)?;
    let (bid_price, bid_qty) = best_level(item, "bids")?;
    let (ask_price, ask_qty) = best_level(item, "asks")?;
    let update_id = match present(item, "seqId") {
        Some(v) => u64::try_from(json::int(v)?).ok(),
        None => None,
    };
    sink.event(Event::BookTicker(BookTicker {
        instrument,
        update_id,
        bid_price,
        bid_qty,
        ask_price,
        ask_qty,
        stamps: stamps(recv, ts_field(item, "ts")?),
    }));
    Ok(FrameKind::BookTicker)
}

type PriceQty = (Option<Decimal>, Option<Decimal>);

fn best_level(item: Value<'_, '_>, key: &'static str) -> Result<PriceQty, ParseError> {
    let side = item.get(key).ok_or(ParseError::MissingField(key))?;
    let levels = side.as_array().ok_or(ParseError::Schema)?;
    match levels.get(0) {
        None => Ok((None, None)),
        Some(level) => {
            let price = json::decimal(level.get_idx(0).ok_or(ParseError::Schema)?)?;
            let qty = json::decimal(level.get_idx(1).ok_or(ParseError::Schema)?)?;
            Ok((Some(price), Some(qty)))
        }
    }
}

/// `trades` / `trades-all`: `[{instId, tradeId, px, sz, side, ts}]`, `side` = taker side.
fn parse_trades<S: Sink>(
    data: Value<'_, '_>,
    arg: Value<'_, '_>,
    recv: Stamps,
    instruments: &Instruments,
    sink: &mut S,
) -> Result<FrameKind, ParseError> {
    let (_, instrument) = resolve(instruments, json::str_field(arg, "instId")?)?;
    for item in data.as_array().into_iter().flat_map(|a| a.iter()) {
        let id = match present(item, "tradeId") {
            None => None,
            Some(v) => match v.into_string() {
                Some(s) => Some(ShortId::new(s)),
                None => Some(ShortId::from_u64(json::uint(v)?)),
            },
        };
        sink.event(Event::Trade(Trade {
            instrument,
            id,
            price: json::decimal_field(item, "px")?,
            qty: json::decimal_field(item, "sz")?,
            side: side_of(item.get("side")),
            stamps: stamps(recv, ts_field(item, "ts")?),
        }));
    }
    Ok(FrameKind::Trade)
}

/// `tickers`, `open-interest`, `funding-rate`, `mark-price` of a future or swap: one
/// [`DerivativeTicker`] per `data` entry with the fields the channel carries. Spot instruments
/// (`tickers` of `BTC-USDT`, `mark-price` of margin pairs) give [`FrameKind::Ignored`].
fn parse_derivative<S: Sink>(
    channel: &str,
    data: Value<'_, '_>,
    arg: Value<'_, '_>,
    recv: Stamps,
    instruments: &Instruments,
    sink: &mut S,
) -> Result<FrameKind, ParseError> {
    let inst_id = json::str_field(arg, "instId")?;
    if exchange_of(inst_id) == Some(Exchange::Okex) {
        return Ok(FrameKind::Ignored);
    }
    let (_, instrument) = resolve(instruments, inst_id)?;
    for item in data.as_array().into_iter().flat_map(|a| a.iter()) {
        let mut ticker = DerivativeTicker {
            instrument,
            stamps: stamps(recv, ts_field(item, "ts")?),
            ..DerivativeTicker::default()
        };
        match channel {
            "tickers" => {
                ticker.last_price = json::opt_decimal_field(item, "last")?;
                ticker.best_bid_price = json::opt_decimal_field(item, "bidPx")?;
                ticker.best_bid_qty = json::opt_decimal_field(item, "bidSz")?;
                ticker.best_ask_price = json::opt_decimal_field(item, "askPx")?;
                ticker.best_ask_qty = json::opt_decimal_field(item, "askSz")?;
            }
            "open-interest" => ticker.open_interest = Some(json::decimal_field(item, "oi")?),
            "mark-price" => ticker.mark_price = Some(json::decimal_field(item, "markPx")?),
            _ => {
                // funding-rate: `fundingTime` is the settlement time of `fundingRate`.
                ticker.funding_rate = json::opt_decimal_field(item, "fundingRate")?;
                ticker.predicted_funding_rate = json::opt_decimal_field(item, "nextFundingRate")?;
                ticker.funding_ts_ns = match present(item, "fundingTime") {
                    Some(v) => Some(ms_to_ns(json::int(v)?)),
                    None => None,
                };
            }
        }
        sink.event(Event::ticker(ticker));
    }
    Ok(FrameKind::DerivativeTicker)
}

/// `index-tickers`: `arg.instId` is an index (`BTC-USD`); `idxPx` goes to every interned
/// future and swap on that underlying.
fn parse_index<S: Sink>(
    data: Value<'_, '_>,
    arg: Value<'_, '_>,
    recv: Stamps,
    instruments: &Instruments,
    sink: &mut S,
) -> Result<FrameKind, ParseError> {
    let index = json::str_field(arg, "instId")?;
    let mut emitted = false;
    for item in data.as_array().into_iter().flat_map(|a| a.iter()) {
        let index_price = json::decimal_field(item, "idxPx")?;
        let ticker_stamps = stamps(recv, ts_field(item, "ts")?);
        for (instrument, exchange, symbol) in instruments.iter() {
            if matches!(exchange, Exchange::OkexFutures | Exchange::OkexSwap)
                && underlying(symbol) == Some(index)
            {
                emitted = true;
                sink.event(Event::ticker(DerivativeTicker {
                    instrument,
                    index_price: Some(index_price),
                    stamps: ticker_stamps,
                    ..DerivativeTicker::default()
                }));
            }
        }
    }
    Ok(if emitted {
        FrameKind::DerivativeTicker
    } else {
        FrameKind::Ignored
    })
}

/// `liquidation-orders`: `[{instId, instType, details:[{side, posSide, bkPx, sz, ts}]}]`.
/// Entries of instruments that are not interned futures or swaps are skipped.
fn parse_liquidation_orders<S: Sink>(
    data: Value<'_, '_>,
    recv: Stamps,
    instruments: &Instruments,
    sink: &mut S,
) -> Result<FrameKind, ParseError> {
    let mut emitted = false;
    for item in data.as_array().into_iter().flat_map(|a| a.iter()) {
        let inst_id = json::str_field(item, "instId")?;
        let Some(exchange) = exchange_of(inst_id).filter(|e| *e != Exchange::Okex) else {
            continue;
        };
        let Some(instrument) = instruments.get(exchange, inst_id) else {
            continue;
        };
        let details = item
            .get("details")
            .ok_or(ParseError::MissingField("details"))?;
        let details = details.as_array().ok_or(ParseError::Schema)?;
        for detail in details.iter() {
            sink.event(Event::Liquidation(liquidation(detail, instrument, recv)?));
            emitted = true;
        }
    }
    Ok(if emitted {
        FrameKind::Liquidation
    } else {
        FrameKind::Ignored
    })
}

/// One liquidation detail: price `bkPx` (bankruptcy price), size `sz` (contracts). `side` is
/// the liquidation order's side: `buy` closes a short (`posSide: short`) => [`Side::Buy`];
/// without `side`, `posSide` decides.
fn liquidation(
    detail: Value<'_, '_>,
    instrument: InstrumentId,
    recv: Stamps,
) -> Result<Liquidation, ParseError> {
    let side = match side_of(detail.get("side")) {
        Side::Unknown => match detail.get("posSide").and_then(|v| v.into_string()) {
            Some("short") => Side::Buy,
            Some("long") => Side::Sell,
            _ => Side::Unknown,
        },
        side => side,
    };
    Ok(Liquidation {
        instrument,
        id: None,
        price: json::decimal_field(detail, "bkPx")?,
        qty: json::decimal_field(detail, "sz")?,
        side,
        stamps: stamps(recv, ts_field(detail, "ts")?),
    })
}

/// The interned instrument of `inst_id`.
fn resolve(
    instruments: &Instruments,
    inst_id: &str,
) -> Result<(Exchange, InstrumentId), ParseError> {
    let exchange = exchange_of(inst_id).ok_or(ParseError::UnknownSymbol)?;
    let id = instruments
        .get(exchange, inst_id)
        .ok_or(ParseError::UnknownSymbol)?;
    Ok((exchange, id))
}

/// `data[0]` of a push or REST body.
fn first_item<'t, 'i>(root: Value<'t, 'i>) -> Result<Value<'t, 'i>, ParseError> {
    let data = root.get("data").ok_or(ParseError::MissingField("data"))?;
    data.as_array()
        .ok_or(ParseError::Schema)?
        .get(0)
        .ok_or(ParseError::Schema)
}

/// Field `key` unless absent, null or `""`.
fn present<'t, 'i>(v: Value<'t, 'i>, key: &str) -> Option<Value<'t, 'i>> {
    v.get(key)
        .filter(|x| !x.is_null() && x.as_str() != Some(""))
}

/// Millisecond field `key` in unix ns; 0 when absent.
fn ts_field(v: Value<'_, '_>, key: &str) -> Result<i64, ParseError> {
    match present(v, key) {
        Some(x) => Ok(ms_to_ns(json::int(x)?)),
        None => Ok(0),
    }
}

fn side_of(v: Option<Value<'_, '_>>) -> Side {
    match v.and_then(|v| v.into_string()) {
        Some("buy") => Side::Buy,
        Some("sell") => Side::Sell,
        _ => Side::Unknown,
    }
}

fn stamps(recv: Stamps, exch_ts_ns: i64) -> Stamps {
    Stamps {
        exch_ts_ns,
        recv_ts_ns: recv.recv_ts_ns,
        recv_mono_ns: recv.recv_mono_ns,
        push_delta_ns: 0,
        applied_delta_ns: 0,
    }
}

#[cfg(test)]
#[path = "okx_tests.rs"]
mod tests;

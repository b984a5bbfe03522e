//! Venue protocols: stream names and subscribe messages, REST snapshot requests, frame parsing
//! into normalized [`Event`]s, and each venue's book sync rule.
//!
//! This module does no I/O: bytes in, events out. `replay`, `run` and `simulate` share it.
//! Parsing allocates nothing once warm: each [`VenueParser`] keeps its simd-json scratch.

pub mod binance;
pub mod bybit;
pub mod deribit;
pub mod json;
pub mod okx;

use std::fmt;

use simd_json::tape::Value;

use crate::model::{
    BookBegin, BookEnd, BookSide, ChecksumFn, DecimalError, Event, Exchange, Instruments, Level,
    Stamps, SyncRule,
};

/// One upstream connection kind. A feed may carry several exchange ids (one OKX socket carries
/// spot, futures and swaps).
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum Feed {
    /// Binance USD-M futures, `wss://fstream.binance.com`.
    BinanceFutures,
    /// Binance COIN-M futures, `wss://dstream.binance.com`.
    BinanceDelivery,
    /// Binance spot, `wss://stream.binance.com:9443`.
    BinanceSpot,
    /// Bybit v5 public `linear`.
    BybitLinear,
    /// Bybit v5 public `inverse`.
    BybitInverse,
    /// Bybit v5 public `spot`.
    BybitSpot,
    /// OKX v5 public.
    Okx,
    /// Deribit v2.
    Deribit,
}

impl Feed {
    /// Every feed.
    pub const ALL: [Feed; 8] = [
        Feed::BinanceFutures,
        Feed::BinanceDelivery,
        Feed::BinanceSpot,
        Feed::BybitLinear,
        Feed::BybitInverse,
        Feed::BybitSpot,
        Feed::Okx,
        Feed::Deribit,
    ];

    /// Short name for logs, config and counters, e.g. `bybit-linear`.
    pub fn name(self) -> &'static str {
        match self {
            Feed::BinanceFutures => "binance-futures",
            Feed::BinanceDelivery => "binance-delivery",
            Feed::BinanceSpot => "binance",
            Feed::BybitLinear => "bybit-linear",
            Feed::BybitInverse => "bybit-inverse",
            Feed::BybitSpot => "bybit-spot",
            Feed::Okx => "okx",
            Feed::Deribit => "deribit",
        }
    }

    /// The feed that serves `exchange` for `symbol` (Bybit splits `bybit` into linear and
    /// inverse by symbol: USDT/USDC/PERP-quoted and dashed symbols are linear).
    pub fn for_symbol(exchange: Exchange, symbol: &str) -> Feed {
        match exchange {
            Exchange::BinanceFutures => Feed::BinanceFutures,
            Exchange::BinanceDelivery => Feed::BinanceDelivery,
            Exchange::Binance => Feed::BinanceSpot,
            Exchange::Bybit => bybit::linear_or_inverse(symbol),
            Exchange::BybitSpot => Feed::BybitSpot,
            Exchange::Okex | Exchange::OkexFutures | Exchange::OkexSwap => Feed::Okx,
            Exchange::Deribit => Feed::Deribit,
        }
    }

    /// Public production endpoints: `(websocket base URL, REST base URL)`.
    pub fn default_endpoints(self) -> (&'static str, &'static str) {
        match self {
            Feed::BinanceFutures => ("wss://fstream.binance.com", "https://fapi.binance.com"),
            Feed::BinanceDelivery => ("wss://dstream.binance.com", "https://dapi.binance.com"),
            Feed::BinanceSpot => ("wss://stream.binance.com:9443", "https://api.binance.com"),
            Feed::BybitLinear => (
                "wss://stream.bybit.com/v5/public/linear",
                "https://api.bybit.com",
            ),
            Feed::BybitInverse => (
                "wss://stream.bybit.com/v5/public/inverse",
                "https://api.bybit.com",
            ),
            Feed::BybitSpot => (
                "wss://stream.bybit.com/v5/public/spot",
                "https://api.bybit.com",
            ),
            Feed::Okx => ("wss://ws.okx.com:8443/ws/v5/public", "https://www.okx.com"),
            Feed::Deribit => ("wss://www.deribit.com/ws/api/v2", "https://www.deribit.com"),
        }
    }
}

/// Which normalized data a subscription asks for. A bit set.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, Default)]
pub struct Channels(pub u8);

impl Channels {
    /// Public trades.
    pub const TRADES: Channels = Channels(1);
    /// The L2 book (snapshot + deltas).
    pub const BOOK: Channels = Channels(2);
    /// The venue's best bid/offer feed.
    pub const BOOK_TICKER: Channels = Channels(4);
    /// Open interest, funding, mark and index prices.
    pub const DERIVATIVE_TICKER: Channels = Channels(8);
    /// Liquidations.
    pub const LIQUIDATIONS: Channels = Channels(16);
    /// Everything.
    pub const ALL: Channels = Channels(31);

    /// True when every bit of `other` is set.
    pub fn contains(self, other: Channels) -> bool {
        self.0 & other.0 == other.0
    }
}

impl std::ops::BitOr for Channels {
    type Output = Channels;
    fn bitor(self, rhs: Channels) -> Channels {
        Channels(self.0 | rhs.0)
    }
}

impl std::ops::BitOrAssign for Channels {
    fn bitor_assign(&mut self, rhs: Channels) {
        self.0 |= rhs.0;
    }
}

/// One instrument and the data wanted of it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Subscription {
    /// Client-facing exchange id.
    pub exchange: Exchange,
    /// Venue-native symbol, upper case.
    pub symbol: String,
    /// What to subscribe.
    pub channels: Channels,
}

/// How to open and subscribe one connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnectPlan {
    /// Full WebSocket URL to connect to (Binance puts its streams in the query string).
    pub ws_url: String,
    /// Text frames to send once connected, in order.
    pub subscribe_frames: Vec<String>,
    /// REST URLs whose bodies seed books (Binance depth snapshots), one per book symbol.
    pub snapshot_urls: Vec<(String, String)>,
    /// REST URLs to poll, `(symbol, url, period_ms)`; bodies go to `parse_rest` (Binance open
    /// interest, which has no stream: every 5,000 ms at the least).
    pub poll_urls: Vec<(String, String, u64)>,
    /// A keep-alive text frame the venue expects and how often, in ms (Bybit `{"op":"ping"}`
    /// every 20 s, OKX `ping` every 25 s); `None` where WebSocket pings suffice.
    pub keepalive: Option<(String, u64)>,
}

/// What a frame turned out to be. Counted per venue.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum FrameKind {
    /// Public trades.
    Trade,
    /// A book snapshot (WS or REST).
    BookSnapshot,
    /// A book delta.
    BookDelta,
    /// Best bid/offer feed.
    BookTicker,
    /// Derivative ticker (OI, funding, mark, index).
    DerivativeTicker,
    /// Liquidations.
    Liquidation,
    /// Subscription acknowledgement.
    Ack,
    /// Reply to our keep-alive.
    Pong,
    /// Candles: recognised, not normalized.
    Kline,
    /// Venue heartbeat or test request.
    Heartbeat,
    /// Another recognised message that carries nothing pinfeed normalizes.
    Ignored,
}

impl FrameKind {
    /// Every kind, in counter order.
    pub const ALL: [FrameKind; 11] = [
        FrameKind::Trade,
        FrameKind::BookSnapshot,
        FrameKind::BookDelta,
        FrameKind::BookTicker,
        FrameKind::DerivativeTicker,
        FrameKind::Liquidation,
        FrameKind::Ack,
        FrameKind::Pong,
        FrameKind::Kline,
        FrameKind::Heartbeat,
        FrameKind::Ignored,
    ];

    /// Name for summaries and metrics.
    pub fn name(self) -> &'static str {
        match self {
            FrameKind::Trade => "trade",
            FrameKind::BookSnapshot => "book_snapshot",
            FrameKind::BookDelta => "book_delta",
            FrameKind::BookTicker => "book_ticker",
            FrameKind::DerivativeTicker => "derivative_ticker",
            FrameKind::Liquidation => "liquidation",
            FrameKind::Ack => "ack",
            FrameKind::Pong => "pong",
            FrameKind::Kline => "kline",
            FrameKind::Heartbeat => "heartbeat",
            FrameKind::Ignored => "ignored",
        }
    }
}

/// Why a frame could not be normalized. The frame is skipped and counted by kind.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum ParseError {
    /// Not valid JSON (malformed or truncated).
    Json,
    /// Valid JSON of an unexpected shape.
    Schema,
    /// A required field is absent.
    MissingField(&'static str),
    /// A number that is not a decimal or is out of fixed-point range.
    BadNumber(DecimalError),
    /// A message type or channel pinfeed does not know.
    UnknownMessage,
    /// A symbol that was not subscribed (not interned).
    UnknownSymbol,
    /// The venue answered with an error (failed subscription, bad request).
    VenueError,
}

impl ParseError {
    /// Every kind, in counter order (`MissingField` and `BadNumber` count as one kind each).
    pub const KIND_NAMES: [&'static str; 7] = [
        "malformed_json",
        "schema",
        "missing_field",
        "bad_number",
        "unknown_message",
        "unknown_symbol",
        "venue_error",
    ];

    /// Index into [`ParseError::KIND_NAMES`].
    pub fn kind_index(self) -> usize {
        match self {
            ParseError::Json => 0,
            ParseError::Schema => 1,
            ParseError::MissingField(_) => 2,
            ParseError::BadNumber(_) => 3,
            ParseError::UnknownMessage => 4,
            ParseError::UnknownSymbol => 5,
            ParseError::VenueError => 6,
        }
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParseError::Json => f.write_str("malformed JSON"),
            ParseError::Schema => f.write_str("unexpected JSON shape"),
            ParseError::MissingField(k) => write!(f, "missing field `{k}`"),
            ParseError::BadNumber(e) => write!(f, "bad number: {e}"),
            ParseError::UnknownMessage => f.write_str("unknown message"),
            ParseError::UnknownSymbol => f.write_str("unknown symbol"),
            ParseError::VenueError => f.write_str("venue error"),
        }
    }
}

impl std::error::Error for ParseError {}

/// Receives the events a frame yields, in order.
pub trait Sink {
    /// One event.
    fn event(&mut self, event: Event);
}

impl<F: FnMut(Event)> Sink for F {
    #[inline]
    fn event(&mut self, event: Event) {
        self(event)
    }
}

/// A parser for one upstream connection.
pub enum VenueParser {
    /// Binance futures, COIN-M or spot.
    Binance(binance::Parser),
    /// Bybit v5 linear, inverse or spot.
    Bybit(bybit::Parser),
    /// OKX v5.
    Okx(okx::Parser),
    /// Deribit v2.
    Deribit(deribit::Parser),
}

impl VenueParser {
    /// A parser for `feed`.
    pub fn new(feed: Feed) -> VenueParser {
        match feed {
            Feed::BinanceFutures | Feed::BinanceDelivery | Feed::BinanceSpot => {
                VenueParser::Binance(binance::Parser::new(feed))
            }
            Feed::BybitLinear | Feed::BybitInverse | Feed::BybitSpot => {
                VenueParser::Bybit(bybit::Parser::new(feed))
            }
            Feed::Okx => VenueParser::Okx(okx::Parser::new(feed)),
            Feed::Deribit => VenueParser::Deribit(deribit::Parser::new(feed)),
        }
    }

    /// Parses one received text frame (modified in place) into events for `sink`, stamped
    /// with `recv`. Symbols are resolved in `instruments`; no allocation once warm.
    ///
    /// # Errors
    /// A [`ParseError`]: the frame is skipped and counted. A book message that fails after its
    /// `BookBegin` was emitted is closed with `BookEnd { aborted: true }` (see [`emit_book`]),
    /// so the book engine resyncs that book.
    #[inline]
    pub fn parse_frame<S: Sink>(
        &mut self,
        frame: &mut [u8],
        recv: Stamps,
        instruments: &Instruments,
        sink: &mut S,
    ) -> Result<FrameKind, ParseError> {
        match self {
            VenueParser::Binance(p) => p.parse_frame(frame, recv, instruments, sink),
            VenueParser::Bybit(p) => p.parse_frame(frame, recv, instruments, sink),
            VenueParser::Okx(p) => p.parse_frame(frame, recv, instruments, sink),
            VenueParser::Deribit(p) => p.parse_frame(frame, recv, instruments, sink),
        }
    }

    /// Parses a REST response body for `url` (a depth snapshot) into events. Bodies of other
    /// URLs (instrument lists) give `Ok(FrameKind::Ignored)`.
    ///
    /// # Errors
    /// A [`ParseError`].
    pub fn parse_rest<S: Sink>(
        &mut self,
        url: &str,
        body: &mut [u8],
        recv: Stamps,
        instruments: &Instruments,
        sink: &mut S,
    ) -> Result<FrameKind, ParseError> {
        match self {
            VenueParser::Binance(p) => p.parse_rest(url, body, recv, instruments, sink),
            VenueParser::Bybit(p) => p.parse_rest(url, body, recv, instruments, sink),
            VenueParser::Okx(p) => p.parse_rest(url, body, recv, instruments, sink),
            VenueParser::Deribit(p) => p.parse_rest(url, body, recv, instruments, sink),
        }
    }
}

/// True when a REST body from `url` carries data for `feed` (a depth snapshot, open
/// interest); other bodies (instrument lists) need not be read at all.
pub fn rest_body_wanted(feed: Feed, url: &str) -> bool {
    match feed {
        Feed::BinanceFutures | Feed::BinanceDelivery | Feed::BinanceSpot => {
            binance::rest_body_wanted(url)
        }
        Feed::Okx => okx::rest_body_wanted(url),
        // Bybit and Deribit books start from the WebSocket snapshot
        Feed::BybitLinear | Feed::BybitInverse | Feed::BybitSpot | Feed::Deribit => false,
    }
}

/// The book sync rule of `exchange`.
pub fn sync_rule(exchange: Exchange) -> SyncRule {
    match exchange {
        Exchange::BinanceFutures | Exchange::BinanceDelivery => binance::check_futures_sequence,
        Exchange::Binance => binance::check_spot_sequence,
        Exchange::Bybit | Exchange::BybitSpot => bybit::check_sequence,
        Exchange::Okex | Exchange::OkexFutures | Exchange::OkexSwap => okx::check_sequence,
        Exchange::Deribit => deribit::check_sequence,
    }
}

/// The book checksum of `exchange` and how many levels per side it covers, for venues that
/// send one (OKX: 25).
pub fn checksum_fn(exchange: Exchange) -> Option<(ChecksumFn, usize)> {
    match exchange {
        Exchange::Okex | Exchange::OkexFutures | Exchange::OkexSwap => {
            Some((okx::checksum, okx::CHECKSUM_LEVELS))
        }
        _ => None,
    }
}

/// True when books of `exchange` are seeded from a REST snapshot rather than the WebSocket
/// (Binance; the book stays `awaiting_snapshot` until the REST body arrives).
pub fn needs_rest_snapshot(exchange: Exchange) -> bool {
    matches!(
        exchange,
        Exchange::BinanceFutures | Exchange::BinanceDelivery | Exchange::Binance
    )
}

/// The connection plan for `feed` at `ws_base`/`rest_base` (see [`Feed::default_endpoints`])
/// for `subs`, all of which must belong to `feed`.
pub fn connect_plan(
    feed: Feed,
    ws_base: &str,
    rest_base: &str,
    subs: &[Subscription],
) -> ConnectPlan {
    match feed {
        Feed::BinanceFutures | Feed::BinanceDelivery | Feed::BinanceSpot => {
            binance::connect_plan(feed, ws_base, rest_base, subs)
        }
        Feed::BybitLinear | Feed::BybitInverse | Feed::BybitSpot => {
            bybit::connect_plan(feed, ws_base, rest_base, subs)
        }
        Feed::Okx => okx::connect_plan(feed, ws_base, rest_base, subs),
        Feed::Deribit => deribit::connect_plan(feed, ws_base, rest_base, subs),
    }
}

/// Recovers the subscriptions of a recorded connection from its URL and the frames the
/// client sent, the inverse of [`connect_plan`]. Used by `replay` and `simulate`.
pub fn subscriptions_from_wire(feed: Feed, ws_url: &str, sent: &[String]) -> Vec<Subscription> {
    match feed {
        Feed::BinanceFutures | Feed::BinanceDelivery | Feed::BinanceSpot => {
            binance::subscriptions_from_wire(feed, ws_url, sent)
        }
        Feed::BybitLinear | Feed::BybitInverse | Feed::BybitSpot => {
            bybit::subscriptions_from_wire(feed, ws_url, sent)
        }
        Feed::Okx => okx::subscriptions_from_wire(feed, ws_url, sent),
        Feed::Deribit => deribit::subscriptions_from_wire(feed, ws_url, sent),
    }
}

/// Identifies the feed of a WebSocket URL by its host and path (`fstream.binance.com`,
/// `/v5/public/spot`, …); `venue_hint` (a recording's `exchange`, e.g. `BYBIT`) decides for
/// hosts that are not the venue's own (a simulator on 127.0.0.1).
pub fn feed_from_url(ws_url: &str, venue_hint: &str) -> Option<Feed> {
    let url = ws_url.to_ascii_lowercase();
    let hint = venue_hint.to_ascii_lowercase();
    if url.contains("fstream") || hint == "binance_futures" || hint == "binance-futures" {
        return Some(Feed::BinanceFutures);
    }
    if url.contains("dstream") || hint == "binance_delivery" || hint == "binance-delivery" {
        return Some(Feed::BinanceDelivery);
    }
    if url.contains("binance") || hint == "binance" {
        return Some(Feed::BinanceSpot);
    }
    if url.contains("bybit") || hint.starts_with("bybit") {
        if url.ends_with("/spot") {
            return Some(Feed::BybitSpot);
        }
        if url.ends_with("/inverse") {
            return Some(Feed::BybitInverse);
        }
        return Some(Feed::BybitLinear);
    }
    if url.contains("okx") || url.contains("okex") || hint == "okx" || hint.starts_with("okex") {
        return Some(Feed::Okx);
    }
    if url.contains("deribit") || hint == "deribit" {
        return Some(Feed::Deribit);
    }
    None
}

/// Emits one book message: `begin`, the levels `body` emits, then a `BookEnd` carrying the
/// checksum `body` returns. When `body` fails midway the message is closed with
/// `BookEnd { aborted: true }` and the error is returned.
///
/// # Errors
/// What `body` returns.
#[inline]
pub fn emit_book<S: Sink>(
    sink: &mut S,
    begin: BookBegin,
    body: impl FnOnce(&mut S) -> Result<Option<i32>, ParseError>,
) -> Result<(), ParseError> {
    let instrument = begin.instrument;
    sink.event(Event::BookBegin(begin));
    match body(sink) {
        Ok(checksum) => {
            sink.event(Event::BookEnd(BookEnd {
                instrument,
                checksum,
                aborted: false,
            }));
            Ok(())
        }
        Err(e) => {
            sink.event(Event::BookEnd(BookEnd {
                instrument,
                checksum: None,
                aborted: true,
            }));
            Err(e)
        }
    }
}

/// Emits every level of a JSON array of level arrays (`[["price","qty",...], ...]`), reading
/// price and quantity at positions `price_idx` and `qty_idx` of each entry.
///
/// # Errors
/// [`ParseError::Schema`] when `levels` is not an array of arrays; number errors.
#[inline]
pub fn emit_levels<S: Sink>(
    sink: &mut S,
    side: BookSide,
    levels: Value<'_, '_>,
    price_idx: usize,
    qty_idx: usize,
) -> Result<(), ParseError> {
    let arr = levels.as_array().ok_or(ParseError::Schema)?;
    for entry in arr.iter() {
        let price = json::decimal(entry.get_idx(price_idx).ok_or(ParseError::Schema)?)?;
        let qty = json::decimal(entry.get_idx(qty_idx).ok_or(ParseError::Schema)?)?;
        sink.event(Event::Level(Level { side, price, qty }));
    }
    Ok(())
}

//! Binance: USD-M futures (`fstream`, [`Exchange::BinanceFutures`]), COIN-M futures (`dstream`,
//! [`Exchange::BinanceDelivery`]) and spot (`stream.binance.com:9443`, [`Exchange::Binance`]).
//!
//! One module serves the three feeds: their market streams share one wire format.
//!
//! # Wire format
//! - Combined streams, `{"stream":"btcusdt@depth@100ms","data":{...}}`, which [`connect_plan`]
//!   opens: the message is dispatched on the stream name (the part after the first `@`).
//! - Raw streams (`/ws/<stream>`): the payload alone, dispatched on its event type `e` (or on
//!   its shape for spot `bookTicker`, which has no `e`).
//! - Subscription replies `{"result":null,"id":1}` are [`FrameKind::Ack`]; `{"code":..,"msg":..}`
//!   or `{"error":{..}}` replies are [`ParseError::VenueError`]. Binance pings with WebSocket
//!   ping frames; it sends no application-level heartbeat.
//!
//! | stream | normalized |
//! |---|---|
//! | `<s>@depth`, `@depth@100ms`, `@depth@0ms`, `@depth@500ms` (`depthUpdate`) | book delta, [`Sequence::Binance`] `U`/`u`/`pu` |
//! | `<s>@depthSnapshot` (tardis: a REST depth body wrapped as a stream), REST `/depth` | book snapshot |
//! | `<s>@aggTrade` (id `a`), `<s>@trade` (id `t`) | trade; `m` (buyer is maker) gives side sell |
//! | `<s>@bookTicker` | book ticker |
//! | `<s>@markPrice`, `@markPrice@1s` | derivative ticker: mark, index, funding |
//! | `<s>@ticker` | derivative ticker: last price (futures); ignored on spot |
//! | `<s>@openInterest` (tardis: a REST body wrapped), REST `/openInterest` | derivative ticker: open interest |
//! | `<pair>@indexPrice@1s` (COIN-M) | derivative ticker: index price of every instrument of the pair |
//! | `<s>@forceOrder` | liquidation (`FILLED` orders only) |
//! | `<s>@kline_*` and other candles | [`FrameKind::Kline`] |
//!
//! Stream reference: <https://developers.binance.com/docs/binance-spot-api-docs/web-socket-streams>,
//! <https://developers.binance.com/docs/derivatives/usds-margined-futures/websocket-market-streams>,
//! <https://developers.binance.com/docs/derivatives/coin-margined-futures/websocket-market-streams>.
//!
//! Parsing allocates nothing once the [`JsonScratch`] is warm: fields are read from the
//! simd-json tape straight into [`Decimal`](crate::model::Decimal)s, and lower-case stream
//! symbols are upper-cased on the stack.

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

/// Longest symbol that is upper-cased on the stack (Binance symbols are under 32 bytes).
const MAX_SYMBOL_BYTES: usize = 64;

/// Depth levels asked of the REST snapshot, as Binance's local order book procedure does (spot
/// allows up to 5000).
const SNAPSHOT_LIMIT: u32 = 1000;

/// Parser for one Binance connection (futures, COIN-M or spot).
///
/// Holds the reusable simd-json scratch: parsing allocates nothing once warm.
pub struct Parser {
    exchange: Exchange,
    scratch: JsonScratch,
}

impl Parser {
    /// A parser for `feed`. A feed that is not a Binance one is parsed as spot.
    pub fn new(feed: Feed) -> Parser {
        Parser {
            exchange: exchange_of(feed),
            scratch: JsonScratch::new(),
        }
    }

    /// Parses one received text frame (modified in place) into events for `sink`; see
    /// [`super::VenueParser::parse_frame`] and the module docs for the streams understood.
    ///
    /// # Errors
    /// [`ParseError::Json`] for malformed JSON, [`ParseError::Schema`] for an unexpected shape,
    /// [`ParseError::MissingField`], [`ParseError::BadNumber`], [`ParseError::UnknownMessage`]
    /// for a stream or event type this module does not know, [`ParseError::UnknownSymbol`] for a
    /// symbol not in `instruments`, [`ParseError::VenueError`] for an error reply. A book message
    /// that fails after its `BookBegin` is closed with an aborted `BookEnd`.
    pub fn parse_frame<S: Sink>(
        &mut self,
        frame: &mut [u8],
        recv: Stamps,
        instruments: &Instruments,
        sink: &mut S,
    ) -> Result<FrameKind, ParseError> {
        let cx = Ctx {
            exchange: self.exchange,
            recv,
            instruments,
        };
        self.scratch.parse(frame, |root| cx.frame(root, sink))
    }

    /// Parses a REST response `body` fetched from `url`: a depth snapshot
    /// (`/api/v3/depth`, `/fapi/v1/depth`, `/dapi/v1/depth`, symbol taken from the `symbol=`
    /// query parameter) or an open-interest body (`/fapi/v1/openInterest`,
    /// `/dapi/v1/openInterest`). Bodies of other URLs (`exchangeInfo`) give
    /// `Ok(FrameKind::Ignored)` without being parsed.
    ///
    /// A snapshot carries [`Sequence::Binance`] with `first_update_id == last_update_id ==
    /// lastUpdateId` and `prev_update_id: None`; its time stamp is `T` (futures), else `E`, else 0.
    ///
    /// # Errors
    /// As [`Parser::parse_frame`]; an error body (`{"code":-1121,"msg":..}`) is
    /// [`ParseError::VenueError`].
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
        let (path, query) = url.split_once('?').unwrap_or((url, ""));
        let is_depth = path.ends_with("/depth");
        let url_symbol = query_param(query, "symbol");
        let cx = Ctx {
            exchange: self.exchange,
            recv,
            instruments,
        };
        self.scratch.parse(body, |root| {
            if !root.is_object() {
                return Err(ParseError::Schema);
            }
            if root.contains_key("code") || root.contains_key("error") {
                return Err(ParseError::VenueError);
            }
            if is_depth {
                cx.depth_snapshot(url_symbol, root, sink)
            } else {
                cx.open_interest(url_symbol, root, sink)
            }
        })
    }
}

/// The client-facing exchange id of a Binance feed (spot for any other feed).
fn exchange_of(feed: Feed) -> Exchange {
    match feed {
        Feed::BinanceFutures => Exchange::BinanceFutures,
        Feed::BinanceDelivery => Exchange::BinanceDelivery,
        _ => Exchange::Binance,
    }
}

/// What a stream (or a raw payload's event type) carries.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
enum Channel {
    /// Diff depth (`depthUpdate`).
    DiffDepth,
    /// tardis' generated `depthSnapshot`: a REST depth body.
    DepthSnapshot,
    /// Aggregate trades (`aggTrade`, id `a`).
    AggTrade,
    /// Raw trades (`trade`, id `t`).
    Trade,
    /// Best bid/offer (`bookTicker`).
    BookTicker,
    /// Liquidation orders (`forceOrder`).
    ForceOrder,
    /// Mark price, index price and funding (`markPriceUpdate`).
    MarkPrice,
    /// 24 h rolling ticker (`24hrTicker`): last price.
    Ticker,
    /// COIN-M index price per pair (`indexPriceUpdate`).
    IndexPrice,
    /// tardis' generated `openInterest`: a REST open-interest body.
    OpenInterest,
    /// Candles of any kind.
    Kline,
    /// Recognised streams pinfeed does not normalize: partial depth (`depth5/10/20`),
    /// mini tickers, rolling-window tickers, average price, composite index, contract info,
    /// asset index, and all-market (`!...@arr`) streams.
    Unused,
}

/// Splits a stream name into its symbol part and channel: `btcusdt@depth@100ms` gives
/// `("btcusdt", DiffDepth)`. All-market streams (`!forceOrder@arr`) are [`Channel::Unused`].
fn classify_stream(stream: &str) -> Result<(&str, Channel), ParseError> {
    if stream.starts_with('!') {
        return Ok(("", Channel::Unused));
    }
    let (symbol, rest) = stream.split_once('@').ok_or(ParseError::UnknownMessage)?;
    let token = rest.split('@').next().unwrap_or(rest);
    let channel = channel_from_token(token).ok_or(ParseError::UnknownMessage)?;
    Ok((symbol, channel))
}

/// The channel of a stream-name token (the part after the symbol, without the speed suffix).
fn channel_from_token(token: &str) -> Option<Channel> {
    Some(match token {
        "depth" => Channel::DiffDepth,
        "depthSnapshot" => Channel::DepthSnapshot,
        "aggTrade" => Channel::AggTrade,
        "trade" => Channel::Trade,
        "bookTicker" => Channel::BookTicker,
        "forceOrder" => Channel::ForceOrder,
        "markPrice" => Channel::MarkPrice,
        "ticker" => Channel::Ticker,
        "indexPrice" => Channel::IndexPrice,
        "openInterest" => Channel::OpenInterest,
        "depth5" | "depth10" | "depth20" | "miniTicker" | "avgPrice" | "compositeIndex"
        | "contractInfo" | "assetIndex" => Channel::Unused,
        t if t.starts_with("ticker_") => Channel::Unused,
        t if t.starts_with("kline_")
            || t.starts_with("continuousKline_")
            || t.starts_with("markPriceKline_")
            || t.starts_with("indexPriceKline_") =>
        {
            Channel::Kline
        }
        _ => return None,
    })
}

/// The channel of a raw payload's event type `e`.
fn channel_from_event(e: &str) -> Option<Channel> {
    Some(match e {
        "depthUpdate" => Channel::DiffDepth,
        "aggTrade" => Channel::AggTrade,
        "trade" => Channel::Trade,
        "bookTicker" => Channel::BookTicker,
        "forceOrder" => Channel::ForceOrder,
        "markPriceUpdate" => Channel::MarkPrice,
        "24hrTicker" => Channel::Ticker,
        "indexPriceUpdate" => Channel::IndexPrice,
        "kline" | "continuous_kline" | "markPrice_kline" | "indexPrice_kline" => Channel::Kline,
        "24hrMiniTicker" | "avgPrice" | "1hTicker" | "4hTicker" | "1dTicker" | "compositeIndex"
        | "contractInfo" | "assetIndexUpdate" => Channel::Unused,
        _ => return None,
    })
}

/// Everything a message handler needs besides the message.
struct Ctx<'a> {
    exchange: Exchange,
    recv: Stamps,
    instruments: &'a Instruments,
}

impl Ctx<'_> {
    /// Looks `symbol` up; a lower-case symbol (from a stream name) is upper-cased on the stack.
    fn instrument(&self, symbol: &str) -> Result<InstrumentId, ParseError> {
        if let Some(id) = self.instruments.get(self.exchange, symbol) {
            return Ok(id);
        }
        let mut buf = [0u8; MAX_SYMBOL_BYTES];
        let upper = upper_ascii(symbol, &mut buf).ok_or(ParseError::UnknownSymbol)?;
        self.instruments
            .get(self.exchange, upper)
            .ok_or(ParseError::UnknownSymbol)
    }

    /// The receive stamps with the venue time `exch_ms` (milliseconds; 0 when absent).
    fn stamps(&self, exch_ms: Option<i64>) -> Stamps {
        Stamps {
            exch_ts_ns: exch_ms.map_or(0, ms_to_ns),
            ..self.recv
        }
    }

    /// Dispatches one whole frame.
    fn frame<S: Sink>(&self, root: Value<'_, '_>, sink: &mut S) -> Result<FrameKind, ParseError> {
        if !root.is_object() {
            // Raw all-market streams (`!ticker@arr`) push arrays; pinfeed uses none of them.
            return if root.is_array() {
                Ok(FrameKind::Ignored)
            } else {
                Err(ParseError::Schema)
            };
        }
        let [stream, data] = json::fields(root, ["stream", "data"]);
        if let Some(stream) = stream {
            let stream = stream.as_str().ok_or(ParseError::Schema)?;
            let data = data.ok_or(ParseError::MissingField("data"))?;
            let (symbol, channel) = classify_stream(stream)?;
            return self.payload(channel, Some(symbol), data, sink);
        }
        // Replies to SUBSCRIBE and friends: https://developers.binance.com/docs/binance-spot-api-docs/web-socket-streams
        // "Live Subscribing/Unsubscribing to streams" and "Error Messages".
        if root.contains_key("code") || root.contains_key("error") {
            return Err(ParseError::VenueError);
        }
        if root.contains_key("result") {
            return Ok(FrameKind::Ack);
        }
        let channel = match root.get("e") {
            Some(e) => {
                let e = e.as_str().ok_or(ParseError::Schema)?;
                channel_from_event(e).ok_or(ParseError::UnknownMessage)?
            }
            // Spot bookTicker has no `e`; raw spot partial depth (`depth5`) is a bare
            // `lastUpdateId`/`bids`/`asks` object.
            None if root.contains_key("lastUpdateId") => Channel::Unused,
            None if root.contains_key("u") && root.contains_key("s") && root.contains_key("b") => {
                Channel::BookTicker
            }
            None => return Err(ParseError::UnknownMessage),
        };
        self.payload(channel, None, root, sink)
    }

    /// Dispatches one payload (`data` of a combined frame, or a raw frame).
    fn payload<S: Sink>(
        &self,
        channel: Channel,
        stream_symbol: Option<&str>,
        d: Value<'_, '_>,
        sink: &mut S,
    ) -> Result<FrameKind, ParseError> {
        match channel {
            Channel::Unused => Ok(FrameKind::Ignored),
            Channel::Kline => Ok(FrameKind::Kline),
            _ if !d.is_object() => Err(ParseError::Schema),
            Channel::DiffDepth => self.depth_delta(d, sink),
            Channel::DepthSnapshot => self.depth_snapshot(stream_symbol, d, sink),
            Channel::AggTrade => self.trade(d, "a", sink),
            Channel::Trade => self.trade(d, "t", sink),
            Channel::BookTicker => self.book_ticker(d, sink),
            Channel::ForceOrder => self.force_order(d, sink),
            Channel::MarkPrice => self.mark_price(d, sink),
            Channel::Ticker => self.ticker(d, sink),
            Channel::IndexPrice => self.index_price(d, sink),
            Channel::OpenInterest => self.open_interest(stream_symbol, d, sink),
        }
    }

    /// Diff depth: `{"e":"depthUpdate","E":..,"T":..,"s":..,"U":..,"u":..,"pu":..,"b":[[p,q]..],"a":[..]}`
    /// (`T` and `pu` on futures only). Quantities are absolute, 0 deletes. Stamped with `E`.
    fn depth_delta<S: Sink>(
        &self,
        d: Value<'_, '_>,
        sink: &mut S,
    ) -> Result<FrameKind, ParseError> {
        let [s, first, last, prev, bids, asks, event_ms] =
            json::fields(d, ["s", "U", "u", "pu", "b", "a", "E"]);
        let symbol = json::required(s, "s")?
            .into_string()
            .ok_or(ParseError::MissingField("s"))?;
        let instrument = self.instrument(symbol)?;
        let first_update_id = json::uint(json::required(first, "U")?)?;
        let last_update_id = json::uint(json::required(last, "u")?)?;
        let prev_update_id = match prev {
            Some(v) if !v.is_null() => Some(json::uint(v)?),
            _ => None,
        };
        let bids = json::required(bids, "b")?;
        let asks = json::required(asks, "a")?;
        if !bids.is_array() || !asks.is_array() {
            return Err(ParseError::Schema);
        }
        let event_ms = match event_ms {
            Some(v) if !v.is_null() => Some(json::int(v)?),
            _ => None,
        };
        let stamps = self.stamps(event_ms);
        let begin = BookBegin {
            instrument,
            is_snapshot: false,
            seq: Sequence::Binance {
                first_update_id,
                last_update_id,
                prev_update_id,
            },
            stamps,
        };
        emit_book(sink, begin, |sink| {
            emit_levels(sink, BookSide::Bid, bids, 0, 1)?;
            emit_levels(sink, BookSide::Ask, asks, 0, 1)?;
            Ok(None)
        })?;
        Ok(FrameKind::BookDelta)
    }

    /// A depth snapshot body `{"lastUpdateId":L,"E":..,"T":..,"bids":[[p,q]..],"asks":[..]}`
    /// (REST, or tardis' `depthSnapshot` stream). The symbol is the body's `symbol` (COIN-M),
    /// else `fallback_symbol` (URL query or stream name).
    fn depth_snapshot<S: Sink>(
        &self,
        fallback_symbol: Option<&str>,
        d: Value<'_, '_>,
        sink: &mut S,
    ) -> Result<FrameKind, ParseError> {
        let symbol = match d.get("symbol").and_then(|s| s.into_string()) {
            Some(s) => s,
            None => fallback_symbol.ok_or(ParseError::MissingField("symbol"))?,
        };
        let instrument = self.instrument(symbol)?;
        let last_update_id = json::uint_field(d, "lastUpdateId")?;
        let bids = d.get("bids").ok_or(ParseError::MissingField("bids"))?;
        let asks = d.get("asks").ok_or(ParseError::MissingField("asks"))?;
        if !bids.is_array() || !asks.is_array() {
            return Err(ParseError::Schema);
        }
        let stamps = self.stamps(first_ms(d, "T", "E")?);
        let begin = BookBegin {
            instrument,
            is_snapshot: true,
            seq: Sequence::Binance {
                first_update_id: last_update_id,
                last_update_id,
                prev_update_id: None,
            },
            stamps,
        };
        emit_book(sink, begin, |sink| {
            emit_levels(sink, BookSide::Bid, bids, 0, 1)?;
            emit_levels(sink, BookSide::Ask, asks, 0, 1)?;
            Ok(None)
        })?;
        Ok(FrameKind::BookSnapshot)
    }

    /// `aggTrade` (id `a`) or `trade` (id `t`): `p`, `q`, `T` (trade time, the stamp), `m`
    /// (buyer is the maker, so the seller was the aggressor: side sell).
    ///
    /// Futures `trade` messages flagged `X` = `INSURANCE_FUND` or `ADL` are off-book transfers,
    /// not market trades: they are [`FrameKind::Ignored`], as tardis-machine drops them.
    fn trade<S: Sink>(
        &self,
        d: Value<'_, '_>,
        id_key: &'static str,
        sink: &mut S,
    ) -> Result<FrameKind, ParseError> {
        let [s, kind, p, q, id, m, trade_ms, event_ms] =
            json::fields(d, ["s", "X", "p", "q", id_key, "m", "T", "E"]);
        let symbol = json::required(s, "s")?
            .into_string()
            .ok_or(ParseError::MissingField("s"))?;
        let instrument = self.instrument(symbol)?;
        if let Some("INSURANCE_FUND" | "ADL") = kind.and_then(|x| x.into_string()) {
            return Ok(FrameKind::Ignored);
        }
        let price = json::decimal(json::required(p, "p")?)?;
        let qty = json::decimal(json::required(q, "q")?)?;
        let id = match id {
            Some(v) if !v.is_null() => Some(ShortId::from_u64(json::uint(v)?)),
            _ => None,
        };
        let side = match m.and_then(|m| m.as_bool()) {
            Some(true) => Side::Sell,
            Some(false) => Side::Buy,
            None => Side::Unknown,
        };
        let stamps = self.stamps(first_present_ms(trade_ms, event_ms)?);
        sink.event(Event::Trade(Trade {
            instrument,
            id,
            price,
            qty,
            side,
            stamps,
        }));
        Ok(FrameKind::Trade)
    }

    /// `bookTicker`: `u` (book update id), `b`/`B` best bid price/size, `a`/`A` best ask;
    /// futures add `T` (the stamp) and `E`; spot has no time (stamp 0).
    fn book_ticker<S: Sink>(
        &self,
        d: Value<'_, '_>,
        sink: &mut S,
    ) -> Result<FrameKind, ParseError> {
        let [s, u, b, bq, a, aq, trade_ms, event_ms] =
            json::fields(d, ["s", "u", "b", "B", "a", "A", "T", "E"]);
        let symbol = json::required(s, "s")?
            .into_string()
            .ok_or(ParseError::MissingField("s"))?;
        let instrument = self.instrument(symbol)?;
        let opt_dec = |v: Option<Value<'_, '_>>| -> Result<Option<Decimal>, ParseError> {
            match v {
                Some(x) if !x.is_null() && x.as_str() != Some("") => json::decimal(x).map(Some),
                _ => Ok(None),
            }
        };
        let ticker = BookTicker {
            instrument,
            update_id: match u {
                Some(v) if !v.is_null() => Some(json::uint(v)?),
                _ => None,
            },
            bid_price: opt_dec(b)?,
            bid_qty: opt_dec(bq)?,
            ask_price: opt_dec(a)?,
            ask_qty: opt_dec(aq)?,
            stamps: self.stamps(first_present_ms(trade_ms, event_ms)?),
        };
        sink.event(Event::BookTicker(ticker));
        Ok(FrameKind::BookTicker)
    }

    /// `forceOrder`: `{"e":"forceOrder","E":..,"o":{"s","S","q","p","ap","X","z","T",..}}`.
    ///
    /// As tardis-machine maps it: `FILLED` orders only (others are [`FrameKind::Ignored`]),
    /// size = filled accumulated quantity `z`, price = average price `ap` (the order price `p`
    /// when `ap` is absent or zero), side = the liquidation order's side `S` (`SELL`: a long
    /// position was liquidated), stamped with the order's trade time `T`.
    fn force_order<S: Sink>(
        &self,
        d: Value<'_, '_>,
        sink: &mut S,
    ) -> Result<FrameKind, ParseError> {
        let o = d.get("o").ok_or(ParseError::MissingField("o"))?;
        if !o.is_object() {
            return Err(ParseError::Schema);
        }
        let instrument = self.instrument(json::str_field(o, "s")?)?;
        if json::str_field(o, "X")? != "FILLED" {
            return Ok(FrameKind::Ignored);
        }
        let side = match json::str_field(o, "S")? {
            "SELL" => Side::Sell,
            "BUY" => Side::Buy,
            _ => Side::Unknown,
        };
        let qty = json::decimal_field(o, "z")?;
        let price = match json::opt_decimal_field(o, "ap")? {
            Some(ap) if !ap.is_zero() => ap,
            _ => json::decimal_field(o, "p")?,
        };
        let exch_ms = match opt_int(o, "T")? {
            Some(t) => Some(t),
            None => opt_int(d, "E")?,
        };
        sink.event(Event::Liquidation(Liquidation {
            instrument,
            id: None,
            price,
            qty,
            side,
            stamps: self.stamps(exch_ms),
        }));
        Ok(FrameKind::Liquidation)
    }

    /// `markPriceUpdate`: mark price `p`, index price `i`, funding rate `r` and next funding
    /// time `T`, stamped with `E`. Only the fields present are set. Dated futures send `T = 0`
    /// (and `r` zero or empty): they have no funding, so neither funding field is set then, as
    /// tardis-machine does. The estimated settle price `P` is not normalized.
    fn mark_price<S: Sink>(&self, d: Value<'_, '_>, sink: &mut S) -> Result<FrameKind, ParseError> {
        let instrument = self.instrument(json::str_field(d, "s")?)?;
        let rate = json::opt_decimal_field(d, "r")?;
        let next_funding_ms = opt_int(d, "T")?;
        let (funding_rate, funding_ts_ns) = match (rate, next_funding_ms) {
            (Some(rate), Some(t)) if t != 0 => (Some(rate), Some(ms_to_ns(t))),
            _ => (None, None),
        };
        sink.event(Event::ticker(DerivativeTicker {
            instrument,
            mark_price: json::opt_decimal_field(d, "p")?,
            index_price: json::opt_decimal_field(d, "i")?,
            funding_rate,
            funding_ts_ns,
            stamps: self.stamps(opt_int(d, "E")?),
            ..DerivativeTicker::default()
        }));
        Ok(FrameKind::DerivativeTicker)
    }

    /// `24hrTicker`: last price `c` for futures and COIN-M, stamped with `E`. Spot has no
    /// derivative ticker: [`FrameKind::Ignored`] there.
    fn ticker<S: Sink>(&self, d: Value<'_, '_>, sink: &mut S) -> Result<FrameKind, ParseError> {
        if self.exchange == Exchange::Binance {
            return Ok(FrameKind::Ignored);
        }
        let instrument = self.instrument(json::str_field(d, "s")?)?;
        sink.event(Event::ticker(DerivativeTicker {
            instrument,
            last_price: Some(json::decimal_field(d, "c")?),
            stamps: self.stamps(opt_int(d, "E")?),
            ..DerivativeTicker::default()
        }));
        Ok(FrameKind::DerivativeTicker)
    }

    /// COIN-M `indexPriceUpdate` `{"e":"indexPriceUpdate","E":..,"i":"BTCUSD","p":..}`: the index
    /// of a pair, not of one contract. As tardis-machine does, the index price goes to every
    /// interned instrument of the pair (`BTCUSD_PERP`, `BTCUSD_200925`, ...), one derivative
    /// ticker each (a walk over the registry, no allocation). [`FrameKind::Ignored`] when no
    /// interned instrument belongs to the pair.
    fn index_price<S: Sink>(
        &self,
        d: Value<'_, '_>,
        sink: &mut S,
    ) -> Result<FrameKind, ParseError> {
        let pair = json::str_field(d, "i")?;
        let index_price = json::decimal_field(d, "p")?;
        let stamps = self.stamps(opt_int(d, "E")?);
        let mut any = false;
        for (instrument, exchange, symbol) in self.instruments.iter() {
            let symbol_pair = symbol.split('_').next().unwrap_or(symbol);
            if exchange == self.exchange && symbol_pair.eq_ignore_ascii_case(pair) {
                any = true;
                sink.event(Event::ticker(DerivativeTicker {
                    instrument,
                    index_price: Some(index_price),
                    stamps,
                    ..DerivativeTicker::default()
                }));
            }
        }
        Ok(if any {
            FrameKind::DerivativeTicker
        } else {
            FrameKind::Ignored
        })
    }

    /// Open interest body `{"symbol":..,"openInterest":"26286.181","time":..}` (REST, or tardis'
    /// `openInterest` stream), stamped with `time` when present. The symbol is the body's,
    /// else `fallback_symbol`.
    fn open_interest<S: Sink>(
        &self,
        fallback_symbol: Option<&str>,
        d: Value<'_, '_>,
        sink: &mut S,
    ) -> Result<FrameKind, ParseError> {
        let symbol = match d.get("symbol").and_then(|s| s.into_string()) {
            Some(s) => s,
            None => fallback_symbol.ok_or(ParseError::MissingField("symbol"))?,
        };
        let instrument = self.instrument(symbol)?;
        sink.event(Event::ticker(DerivativeTicker {
            instrument,
            open_interest: Some(json::decimal_field(d, "openInterest")?),
            stamps: self.stamps(opt_int(d, "time")?),
            ..DerivativeTicker::default()
        }));
        Ok(FrameKind::DerivativeTicker)
    }
}

/// Field `key` as a signed integer (a time in ms) when present and not null.
fn opt_int(v: Value<'_, '_>, key: &str) -> Result<Option<i64>, ParseError> {
    match v.get(key) {
        None => Ok(None),
        Some(x) if x.is_null() => Ok(None),
        Some(x) => json::int(x).map(Some),
    }
}

/// The time in ms at `preferred`, else at `fallback`, else `None`.
fn first_ms(v: Value<'_, '_>, preferred: &str, fallback: &str) -> Result<Option<i64>, ParseError> {
    match opt_int(v, preferred)? {
        Some(t) => Ok(Some(t)),
        None => opt_int(v, fallback),
    }
}

/// A time in ms from the first present, non-null value of `preferred`, `fallback`.
fn first_present_ms(
    preferred: Option<Value<'_, '_>>,
    fallback: Option<Value<'_, '_>>,
) -> Result<Option<i64>, ParseError> {
    for v in [preferred, fallback].into_iter().flatten() {
        if !v.is_null() {
            return json::int(v).map(Some);
        }
    }
    Ok(None)
}

/// `s` upper-cased into `buf`; `None` when it does not fit.
fn upper_ascii<'b>(s: &str, buf: &'b mut [u8; MAX_SYMBOL_BYTES]) -> Option<&'b str> {
    let bytes = s.as_bytes();
    let out = buf.get_mut(..bytes.len())?;
    for (o, b) in out.iter_mut().zip(bytes) {
        *o = b.to_ascii_uppercase();
    }
    std::str::from_utf8(out).ok()
}

/// The value of `key` in a URL query string (`symbol=BTCUSDT&limit=1000`), undecoded.
fn query_param<'q>(query: &'q str, key: &str) -> Option<&'q str> {
    query.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=')?;
        (k == key && !v.is_empty()).then_some(v)
    })
}

/// Book sync rule of Binance USD-M futures and COIN-M futures diff depth.
///
/// Source: "How to manage a local order book correctly",
/// <https://developers.binance.com/docs/derivatives/usds-margined-futures/websocket-market-streams/How-to-manage-a-local-order-book-correctly>
/// and, worded the same, the COIN-M page
/// <https://developers.binance.com/docs/derivatives/coin-margined-futures/websocket-market-streams/How-to-manage-a-local-order-book-correctly>:
/// with `lastUpdateId` (L) from the REST snapshot,
/// - step 4: drop any event whose `u` is below L;
/// - step 5: the first processed event has `U <= L` and `u >= L`;
/// - step 6: afterwards each event's `pu` equals the previous event's `u`, otherwise the book
///   must be rebuilt from a new snapshot.
///
/// Verdicts: after the snapshot (`last` = the snapshot, L = its `last_update_id`): `u < L` is
/// [`SyncVerdict::Stale`], `U <= L <= u` is [`SyncVerdict::Apply`], `U > L` is a
/// [`SyncVerdict::Gap`]. Later: `pu` = previous `u` applies; an event with `u <=` previous
/// `u` (a repeat) is stale; anything else, including a missing `pu`, is a gap.
pub fn check_futures_sequence(
    last: &Sequence,
    after_snapshot: bool,
    next: &Sequence,
) -> SyncVerdict {
    let (
        &Sequence::Binance {
            last_update_id: last_u,
            ..
        },
        &Sequence::Binance {
            first_update_id: next_first,
            last_update_id: next_u,
            prev_update_id: next_pu,
        },
    ) = (last, next)
    else {
        return SyncVerdict::Gap;
    };
    if after_snapshot {
        // Steps 4 and 5: last_u is the snapshot's lastUpdateId.
        if next_u < last_u {
            SyncVerdict::Stale
        } else if next_first <= last_u {
            SyncVerdict::Apply
        } else {
            SyncVerdict::Gap
        }
    } else if next_pu == Some(last_u) {
        // Step 6.
        SyncVerdict::Apply
    } else if next_u <= last_u {
        SyncVerdict::Stale
    } else {
        SyncVerdict::Gap
    }
}

/// Book sync rule of Binance spot diff depth.
///
/// Source: "How to manage a local order book correctly" in
/// <https://developers.binance.com/docs/binance-spot-api-docs/web-socket-streams>
/// (binance-spot-api-docs `web-socket-streams.md`, 2023-12-04 edition): with `lastUpdateId`
/// (L) from the REST snapshot,
/// - step 4: drop any event whose `u` is `<= L`;
/// - step 5: the first processed event has `U <= L + 1` and `u >= L + 1`;
/// - step 6: afterwards each event's `U` equals the previous event's `u + 1`.
///
/// Verdicts: after the snapshot: `u <= L` is [`SyncVerdict::Stale`], `U <= L + 1 <= u` is
/// [`SyncVerdict::Apply`], `U > L + 1` is a [`SyncVerdict::Gap`]. Later: `U` = previous `u + 1`
/// applies, `u <=` previous `u` is stale, anything else is a gap. (Later editions of the
/// page word the later check as "ignore `u <=` book id, restart if `U >` book id + 1", which
/// also accepts an event overlapping the book; Binance does not send those, and this rule
/// resyncs on one rather than guess.)
pub fn check_spot_sequence(last: &Sequence, after_snapshot: bool, next: &Sequence) -> SyncVerdict {
    let (
        &Sequence::Binance {
            last_update_id: last_u,
            ..
        },
        &Sequence::Binance {
            first_update_id: next_first,
            last_update_id: next_u,
            ..
        },
    ) = (last, next)
    else {
        return SyncVerdict::Gap;
    };
    if after_snapshot {
        // Steps 4 and 5: last_u is the snapshot's lastUpdateId (u > last_u, so no overflow).
        if next_u <= last_u {
            SyncVerdict::Stale
        } else if next_first <= last_u + 1 {
            SyncVerdict::Apply
        } else {
            SyncVerdict::Gap
        }
    } else if last_u.checked_add(1) == Some(next_first) {
        // Step 6.
        SyncVerdict::Apply
    } else if next_u <= last_u {
        SyncVerdict::Stale
    } else {
        SyncVerdict::Gap
    }
}

/// REST path of the depth snapshot of `feed`.
fn depth_path(feed: Feed) -> &'static str {
    match feed {
        Feed::BinanceFutures => "/fapi/v1/depth",
        Feed::BinanceDelivery => "/dapi/v1/depth",
        _ => "/api/v3/depth",
    }
}

/// True for the REST URLs whose bodies carry data: depth snapshots (`/depth`) and open
/// interest (`/openInterest`); `exchangeInfo` and the rest are not parsed.
pub fn rest_body_wanted(url: &str) -> bool {
    let path = url.split_once('?').map_or(url, |(p, _)| p);
    path.ends_with("/depth") || path.ends_with("/openInterest")
}

/// The REST URL that gives the open interest of `symbol` (`/fapi/v1/openInterest`,
/// `/dapi/v1/openInterest`), which Binance only serves by REST: poll it (tardis-machine polls
/// every 5 s or more) and feed the body to [`Parser::parse_rest`]. `None` for spot.
pub fn open_interest_url(feed: Feed, rest_base: &str, symbol: &str) -> Option<String> {
    let path = match feed {
        Feed::BinanceFutures => "/fapi/v1/openInterest",
        Feed::BinanceDelivery => "/dapi/v1/openInterest",
        _ => return None,
    };
    Some(format!(
        "{}{path}?symbol={}",
        rest_base.trim_end_matches('/'),
        symbol.to_ascii_uppercase()
    ))
}

/// How often open interest is polled, ms (tardis-machine polls every 5 s or more).
pub const OPEN_INTEREST_POLL_MS: u64 = 5_000;

/// The connection plan of `feed` for `subs` (see [`super::connect_plan`]).
///
/// One combined-stream URL, `{ws_base}/stream?streams=a/b/c`, with lower-case stream names:
/// `<s>@depth@100ms` for [`Channels::BOOK`], `<s>@aggTrade` for [`Channels::TRADES`],
/// `<s>@bookTicker` for [`Channels::BOOK_TICKER`]; on futures and COIN-M only,
/// `<s>@markPrice@1s` (mark, index, funding) and `<s>@ticker` (last price) for
/// [`Channels::DERIVATIVE_TICKER`] and `<s>@forceOrder` for [`Channels::LIQUIDATIONS`]
/// (spot has neither). No subscribe frames. One REST snapshot URL per book symbol
/// (`/api/v3/depth`, `/fapi/v1/depth` or `/dapi/v1/depth`, `limit=1000`). No keep-alive:
/// Binance sends WebSocket pings and the client answers with pongs. Open interest is REST
/// only: polled every [`OPEN_INTEREST_POLL_MS`] through `poll_urls` ([`open_interest_url`]).
///
/// Binance caps a connection at 1024 streams (spot) or 200 (futures); the caller splits
/// larger subscription sets over several connections.
pub fn connect_plan(
    feed: Feed,
    ws_base: &str,
    rest_base: &str,
    subs: &[Subscription],
) -> ConnectPlan {
    let derivatives = matches!(feed, Feed::BinanceFutures | Feed::BinanceDelivery);
    let rest_base = rest_base.trim_end_matches('/');
    let mut streams: Vec<String> = Vec::new();
    let mut snapshot_urls = Vec::new();
    let mut poll_urls = Vec::new();
    for sub in subs {
        let lower = sub.symbol.to_ascii_lowercase();
        let upper = sub.symbol.to_ascii_uppercase();
        if sub.channels.contains(Channels::BOOK) {
            streams.push(format!("{lower}@depth@100ms"));
            snapshot_urls.push((
                upper.clone(),
                format!(
                    "{rest_base}{}?symbol={upper}&limit={SNAPSHOT_LIMIT}",
                    depth_path(feed)
                ),
            ));
        }
        if sub.channels.contains(Channels::TRADES) {
            streams.push(format!("{lower}@aggTrade"));
        }
        if sub.channels.contains(Channels::BOOK_TICKER) {
            streams.push(format!("{lower}@bookTicker"));
        }
        if derivatives && sub.channels.contains(Channels::DERIVATIVE_TICKER) {
            streams.push(format!("{lower}@markPrice@1s"));
            streams.push(format!("{lower}@ticker"));
            if let Some(url) = open_interest_url(feed, rest_base, &upper) {
                poll_urls.push((upper.clone(), url, OPEN_INTEREST_POLL_MS));
            }
        }
        if derivatives && sub.channels.contains(Channels::LIQUIDATIONS) {
            streams.push(format!("{lower}@forceOrder"));
        }
    }
    ConnectPlan {
        ws_url: format!(
            "{}/stream?streams={}",
            ws_base.trim_end_matches('/'),
            streams.join("/")
        ),
        subscribe_frames: Vec::new(),
        snapshot_urls,
        poll_urls,
        keepalive: None,
    }
}

/// The subscriptions of a recorded Binance connection (see [`super::subscriptions_from_wire`]):
/// the streams of a combined-stream URL (`/stream?streams=a/b/c`), of a raw-stream URL
/// (`/ws/<stream>`) and of any `{"method":"SUBSCRIBE","params":[..]}` frame sent, merged per
/// symbol (upper case) in first-seen order. Candles, partial depth, index-price and
/// all-market streams map to no channel and are skipped; so are derivative streams on spot.
pub fn subscriptions_from_wire(feed: Feed, ws_url: &str, sent: &[String]) -> Vec<Subscription> {
    let exchange = exchange_of(feed);
    let mut subs: Vec<Subscription> = Vec::new();
    let mut add = |stream: &str| {
        let Some((symbol, channels)) = wire_stream(feed, stream) else {
            return;
        };
        let symbol = symbol.to_ascii_uppercase();
        match subs.iter_mut().find(|s| s.symbol == symbol) {
            Some(sub) => sub.channels |= channels,
            None => subs.push(Subscription {
                exchange,
                symbol,
                channels,
            }),
        }
    };
    let (before_query, query) = ws_url.split_once('?').unwrap_or((ws_url, ""));
    for param in query.split('&') {
        if let Some(list) = param.strip_prefix("streams=") {
            list.split('/').for_each(&mut add);
        }
    }
    let path = before_query
        .split_once("://")
        .map_or(before_query, |(_, rest)| rest);
    let path = path.find('/').map_or("", |i| &path[i..]);
    if let Some(stream) = path.strip_prefix("/ws/") {
        add(stream);
    }
    for frame in sent {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(frame) else {
            continue;
        };
        if v.get("method").and_then(|m| m.as_str()) != Some("SUBSCRIBE") {
            continue;
        }
        if let Some(params) = v.get("params").and_then(|p| p.as_array()) {
            params.iter().filter_map(|p| p.as_str()).for_each(&mut add);
        }
    }
    subs
}

/// The symbol and channels one stream name subscribes, when it maps to any.
fn wire_stream(feed: Feed, stream: &str) -> Option<(&str, Channels)> {
    let (symbol, channel) = classify_stream(stream).ok()?;
    if symbol.is_empty() {
        return None;
    }
    let derivatives = matches!(feed, Feed::BinanceFutures | Feed::BinanceDelivery);
    let channels = match channel {
        Channel::DiffDepth => Channels::BOOK,
        Channel::AggTrade | Channel::Trade => Channels::TRADES,
        Channel::BookTicker => Channels::BOOK_TICKER,
        Channel::MarkPrice | Channel::Ticker | Channel::OpenInterest if derivatives => {
            Channels::DERIVATIVE_TICKER
        }
        Channel::ForceOrder if derivatives => Channels::LIQUIDATIONS,
        _ => return None,
    };
    Some((symbol, channels))
}

#[cfg(test)]
#[path = "binance_tests/mod.rs"]
mod tests;

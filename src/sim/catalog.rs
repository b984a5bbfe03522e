//! What `pinfeed simulate` serves, built once from the recordings: per feed, the recorded data
//! frames in order with the topic each belongs to; and every recorded REST body.
//!
//! A *topic* is what a client subscribes on the wire, in a canonical form per venue: a Binance
//! stream name (`sushiusdt@depth@100ms`, symbol part lower-cased), a Bybit topic
//! (`orderbook.200.BTCUSDT`), an OKX argument object (`{"channel":"books","instId":"BTC-USDT"}`,
//! keys sorted) or a Deribit channel (`book.BTC-PERPETUAL.raw`). Received frames that belong to
//! no topic (subscription acks, pongs, RPC results, heartbeats) are not replayed: the simulator
//! answers those itself. Each topic is also classified into `(exchange, symbol, channels)` with
//! the venue module's own [`subscriptions_from_wire`], so a client that subscribes a variant
//! that was not recorded (Deribit `book.X.100ms` where `book.X.raw` was recorded, Bybit
//! `orderbook.50` where `orderbook.200` was) still gets the recorded data of that channel.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;

use serde_json::Value;
use tungstenite::Utf8Bytes;

use crate::sim::http::query_value;
use crate::sim::recording::{Record, Recording};
use crate::venue::{Channels, Feed, Subscription, feed_from_url, subscriptions_from_wire};

/// Why the recordings cannot be served.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    /// A WebSocket connection whose venue could not be identified.
    #[error("{path}: cannot tell the venue of connection {conn} ({addr})")]
    UnknownVenue {
        /// The recording.
        path: PathBuf,
        /// Connection name.
        conn: String,
        /// Its URL.
        addr: String,
    },
    /// Two recordings carry the same feed: the simulator serves one recording per feed.
    #[error("feed {feed} is in both {first} and {second}: give one recording per feed")]
    DuplicateFeed {
        /// The feed name.
        feed: &'static str,
        /// The first recording.
        first: PathBuf,
        /// The second recording.
        second: PathBuf,
    },
    /// A recording without any WebSocket connection.
    #[error("{0}: no WebSocket connection recorded")]
    NoConnection(PathBuf),
}

/// One recorded data frame.
#[derive(Clone, Debug)]
pub struct SimFrame {
    /// Seconds after the feed's first data frame (recorded `ts` deltas, never decreasing).
    pub at_s: f64,
    /// Index into [`FeedCatalog::topics`].
    pub topic: u32,
    /// The frame as the venue sent it (Binance: the combined-stream form).
    pub text: Utf8Bytes,
    /// Binance only: the payload alone, as a raw-stream (`/ws/<stream>`) client receives it.
    pub raw: Option<Utf8Bytes>,
    /// True for a frame that starts a topic's chain afresh (a book snapshot; Bybit's ticker
    /// snapshot), from which a late subscriber is caught up.
    pub snapshot: bool,
}

/// One topic of a feed.
#[derive(Clone, Debug)]
pub struct Topic {
    /// Canonical wire name (see the module docs).
    pub key: String,
    /// What the topic carries, by the venue module's reading of it (empty for candles and other
    /// channels pinfeed does not normalize).
    pub subs: Vec<Subscription>,
}

/// Everything served for one feed.
#[derive(Clone, Debug)]
pub struct FeedCatalog {
    /// The feed.
    pub feed: Feed,
    /// The recording it came from.
    pub recording: PathBuf,
    /// Data frames in recorded order.
    pub frames: Vec<SimFrame>,
    /// Topics, indexed by [`SimFrame::topic`].
    pub topics: Vec<Topic>,
    topic_index: HashMap<String, u32>,
    /// What the recorded client subscribed, merged per instrument (for `--write-config`).
    pub subscriptions: Vec<Subscription>,
    /// Upper-case symbols of the feed (to route Binance `/stream` requests).
    pub symbols: HashSet<String>,
    /// Bybit: the first recorded subscribe ack, reused as the shape of every reply.
    pub bybit_ack: Option<serde_json::Map<String, Value>>,
}

impl FeedCatalog {
    /// A feed with no recorded frames, serving `subscriptions` (synthetic flow: the session
    /// replies and routing work from it, the data comes from [`crate::sim::synthetic`]).
    pub fn synthetic(feed: Feed, subscriptions: Vec<Subscription>) -> FeedCatalog {
        FeedCatalog {
            feed,
            recording: PathBuf::from("synthetic"),
            frames: Vec::new(),
            topics: Vec::new(),
            topic_index: HashMap::new(),
            symbols: subscriptions
                .iter()
                .map(|s| s.symbol.to_ascii_uppercase())
                .collect(),
            subscriptions,
            bybit_ack: None,
        }
    }

    /// Index of the topic with canonical key `key`.
    pub fn topic_id(&self, key: &str) -> Option<u32> {
        self.topic_index.get(key).copied()
    }
}

/// A recorded REST response.
#[derive(Clone, Debug)]
pub struct HttpEntry {
    /// Request path, e.g. `/fapi/v1/depth`.
    pub path: String,
    /// The `symbol` (or `instId`) query value, upper case, when the URL had one.
    pub key: Option<String>,
    /// The recorded body.
    pub body: Arc<[u8]>,
}

/// Everything the simulator serves.
#[derive(Clone, Debug)]
pub struct Catalog {
    /// One entry per feed, in order of first appearance.
    pub feeds: Vec<FeedCatalog>,
    /// Every recorded REST response, in recorded order.
    pub http: Vec<HttpEntry>,
}

/// Canonical Binance stream name: the symbol part lower-cased, the rest as sent
/// (`markPrice@1s` keeps its case).
pub fn binance_key(stream: &str) -> String {
    match stream.split_once('@') {
        Some((symbol, rest)) => format!("{}@{rest}", symbol.to_ascii_lowercase()),
        None => stream.to_ascii_lowercase(),
    }
}

/// Canonical OKX argument: its string fields, keys sorted, as JSON.
pub fn okx_key(arg: &serde_json::Map<String, Value>) -> String {
    let fields: BTreeMap<&str, &str> = arg
        .iter()
        .filter_map(|(k, v)| v.as_str().map(|s| (k.as_str(), s)))
        .collect();
    serde_json::to_string(&fields).unwrap_or_default()
}

/// What a topic carries, read by the venue module's own [`subscriptions_from_wire`] from a
/// one-topic subscription.
pub fn classify(feed: Feed, key: &str) -> Vec<Subscription> {
    let frame = |v: Value| vec![v.to_string()];
    match feed {
        Feed::BinanceFutures | Feed::BinanceDelivery | Feed::BinanceSpot => {
            subscriptions_from_wire(feed, &format!("ws://simulator/ws/{key}"), &[])
        }
        Feed::BybitLinear | Feed::BybitInverse | Feed::BybitSpot => subscriptions_from_wire(
            feed,
            "",
            &frame(serde_json::json!({"op": "subscribe", "args": [key]})),
        ),
        Feed::Okx => match serde_json::from_str::<Value>(key) {
            Ok(arg) => subscriptions_from_wire(
                feed,
                "",
                &frame(serde_json::json!({"op": "subscribe", "args": [arg]})),
            ),
            Err(_) => Vec::new(),
        },
        Feed::Deribit => subscriptions_from_wire(
            feed,
            "",
            &frame(serde_json::json!({
                "jsonrpc": "2.0", "id": 0, "method": "public/subscribe",
                "params": {"channels": [key]}
            })),
        ),
    }
}

/// `(path, query)` of a URL or request target: scheme and host removed.
pub fn split_url(url: &str) -> (&str, &str) {
    let rest = match url.split_once("://") {
        Some((_, rest)) => rest.find('/').map_or("/", |i| &rest[i..]),
        None => url,
    };
    rest.split_once('?').unwrap_or((rest, ""))
}

/// The REST lookup key of a query string: its `symbol` or `instId` value, upper case.
pub fn http_key(query: &str) -> Option<String> {
    query_value(query, "symbol")
        .or_else(|| query_value(query, "instId"))
        .map(str::to_ascii_uppercase)
}

/// The Binance streams a connection URL names (`/stream?streams=a/b`, `/ws/<stream>`),
/// canonical.
pub fn binance_url_streams(path: &str, query: &str) -> Vec<String> {
    let mut out = Vec::new();
    for param in query.split('&') {
        if let Some(list) = param.strip_prefix("streams=") {
            out.extend(list.split('/').filter(|s| !s.is_empty()).map(binance_key));
        }
    }
    if let Some(stream) = path.strip_prefix("/ws/") {
        out.extend(stream.split('/').filter(|s| !s.is_empty()).map(binance_key));
    }
    out
}

/// How a recorded data frame is served.
#[derive(Debug)]
struct FrameTopic {
    /// Canonical topic key.
    key: String,
    /// Starts a chain (see [`SimFrame::snapshot`]).
    snapshot: bool,
    /// Binance: the payload alone.
    raw: Option<String>,
    /// Binance frames recorded raw: the combined-stream form, built here.
    combined: Option<String>,
}

/// A recorded frame's topic, or `None` for control frames.
fn frame_topic(feed: Feed, text: &str, conn_streams: &[String]) -> Option<FrameTopic> {
    let v: Value = serde_json::from_str(text).ok()?;
    let obj = v.as_object()?;
    let str_at = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).map(str::to_string);
    match feed {
        Feed::BinanceFutures | Feed::BinanceDelivery | Feed::BinanceSpot => {
            if let (Some(stream), Some(data)) = (str_at(&v, "stream"), obj.get("data")) {
                let prefix = format!(r#"{{"stream":{},"data":"#, Value::from(stream.clone()));
                let raw = match text.strip_prefix(&prefix).and_then(|r| r.strip_suffix('}')) {
                    Some(payload) => payload.to_string(),
                    None => data.to_string(),
                };
                return Some(FrameTopic {
                    key: binance_key(&stream),
                    snapshot: false,
                    raw: Some(raw),
                    combined: None,
                });
            }
            if obj.contains_key("result") || obj.contains_key("id") || obj.contains_key("code") {
                return None;
            }
            let key = if conn_streams.len() == 1 {
                conn_streams[0].clone()
            } else {
                binance_raw_stream(&v, conn_streams)?
            };
            let combined = format!(r#"{{"stream":{},"data":{text}}}"#, Value::from(key.clone()));
            Some(FrameTopic {
                key,
                snapshot: false,
                raw: Some(text.to_string()),
                combined: Some(combined),
            })
        }
        Feed::BybitLinear | Feed::BybitInverse | Feed::BybitSpot => {
            let topic = str_at(&v, "topic")?;
            let snapshot = (topic.starts_with("orderbook.") || topic.starts_with("tickers."))
                && str_at(&v, "type").as_deref() == Some("snapshot");
            Some(FrameTopic {
                key: topic,
                snapshot,
                raw: None,
                combined: None,
            })
        }
        Feed::Okx => {
            if obj.contains_key("event") {
                return None;
            }
            let arg = obj.get("arg")?.as_object()?;
            let snapshot = str_at(&v, "action").as_deref() == Some("snapshot");
            Some(FrameTopic {
                key: okx_key(arg),
                snapshot,
                raw: None,
                combined: None,
            })
        }
        Feed::Deribit => {
            if str_at(&v, "method").as_deref() != Some("subscription") {
                return None;
            }
            let params = obj.get("params")?;
            let channel = str_at(params, "channel")?;
            let data_type = params.get("data").and_then(|d| str_at(d, "type"));
            let snapshot = channel.starts_with("book.")
                && (data_type.as_deref() == Some("snapshot") || channel.split('.').count() == 5);
            Some(FrameTopic {
                key: channel,
                snapshot,
                raw: None,
                combined: None,
            })
        }
    }
}

/// The stream of a raw-stream Binance payload on a connection that carried several streams:
/// the one whose symbol and kind match the payload's `s` and event type `e`.
fn binance_raw_stream(v: &Value, conn_streams: &[String]) -> Option<String> {
    let kind = match v.get("e").and_then(Value::as_str) {
        Some("aggTrade") => "aggTrade",
        Some("trade") => "trade",
        Some("depthUpdate") => "depth",
        Some("kline") => "kline",
        Some("markPriceUpdate") => "markPrice",
        Some("24hrTicker") => "ticker",
        Some("forceOrder") => "forceOrder",
        Some("bookTicker") => "bookTicker",
        None if v.get("u").is_some() && v.get("b").is_some() => "bookTicker",
        _ => return None,
    };
    let symbol = v
        .get("s")
        .or_else(|| v.get("o").and_then(|o| o.get("s")))
        .and_then(Value::as_str)?
        .to_ascii_lowercase();
    let prefix = format!("{symbol}@{kind}");
    conn_streams
        .iter()
        .find(|s| {
            s.strip_prefix(&prefix).is_some_and(|rest| {
                rest.is_empty() || rest.starts_with('@') || rest.starts_with('_')
            })
        })
        .cloned()
}

impl Catalog {
    /// Builds the catalog of `recordings`: one feed per distinct feed of their WebSocket
    /// connections (identified with [`feed_from_url`] and the recording's exchange).
    ///
    /// # Errors
    /// [`CatalogError`]: an unknown venue, a feed in two recordings, a recording without a
    /// WebSocket connection.
    pub fn build(recordings: &[Recording]) -> Result<Catalog, CatalogError> {
        let mut cat = Catalog {
            feeds: Vec::new(),
            http: Vec::new(),
        };
        for rec in recordings {
            let conns = rec.ws_connections();
            if conns.is_empty() {
                return Err(CatalogError::NoConnection(rec.path.clone()));
            }
            // connection name -> (feed index, Binance streams of its URL and frames)
            let mut by_conn: HashMap<String, (usize, Vec<String>)> = HashMap::new();
            for conn in &conns {
                let addr = rec.connect_addr(conn).unwrap_or_default().to_string();
                let feed = feed_from_url(&addr, &rec.exchange).ok_or_else(|| {
                    CatalogError::UnknownVenue {
                        path: rec.path.clone(),
                        conn: conn.clone(),
                        addr: addr.clone(),
                    }
                })?;
                let idx = match cat.feeds.iter().position(|f| f.feed == feed) {
                    Some(i) if cat.feeds[i].recording != rec.path => {
                        return Err(CatalogError::DuplicateFeed {
                            feed: feed.name(),
                            first: cat.feeds[i].recording.clone(),
                            second: rec.path.clone(),
                        });
                    }
                    Some(i) => i,
                    None => {
                        cat.feeds.push(FeedCatalog {
                            feed,
                            recording: rec.path.clone(),
                            frames: Vec::new(),
                            topics: Vec::new(),
                            topic_index: HashMap::new(),
                            subscriptions: Vec::new(),
                            symbols: HashSet::new(),
                            bybit_ack: None,
                        });
                        cat.feeds.len() - 1
                    }
                };
                let sent = rec.sent_frames(conn);
                let fc = &mut cat.feeds[idx];
                for sub in subscriptions_from_wire(feed, &addr, &sent) {
                    fc.symbols.insert(sub.symbol.to_ascii_uppercase());
                    match fc
                        .subscriptions
                        .iter_mut()
                        .find(|s| s.exchange == sub.exchange && s.symbol == sub.symbol)
                    {
                        Some(s) => s.channels |= sub.channels,
                        None => fc.subscriptions.push(sub),
                    }
                }
                let mut streams = Vec::new();
                if matches!(
                    feed,
                    Feed::BinanceFutures | Feed::BinanceDelivery | Feed::BinanceSpot
                ) {
                    let (path, query) = split_url(&addr);
                    streams = binance_url_streams(path, query);
                    for frame in &sent {
                        if let Ok(v) = serde_json::from_str::<Value>(frame) {
                            if let Some(p) = v.get("params").and_then(Value::as_array) {
                                streams.extend(p.iter().filter_map(Value::as_str).map(binance_key));
                            }
                        }
                    }
                }
                by_conn.insert(conn.clone(), (idx, streams));
            }
            let mut first_ts: HashMap<usize, (f64, f64)> = HashMap::new();
            for record in &rec.records {
                match record {
                    Record::Http { url, data, .. } => {
                        let (path, query) = split_url(url);
                        cat.http.push(HttpEntry {
                            path: path.to_string(),
                            key: http_key(query),
                            body: Arc::from(data.as_bytes()),
                        });
                    }
                    Record::Recv { conn, ts, data } => {
                        let Some((idx, streams)) = by_conn.get(conn) else {
                            continue;
                        };
                        let fc = &mut cat.feeds[*idx];
                        let Some(FrameTopic {
                            key,
                            snapshot,
                            raw,
                            combined,
                        }) = frame_topic(fc.feed, data, streams)
                        else {
                            if fc.bybit_ack.is_none() {
                                fc.bybit_ack = bybit_ack_of(fc.feed, data);
                            }
                            continue;
                        };
                        let topic = match fc.topic_index.get(&key) {
                            Some(t) => *t,
                            None => {
                                let id = fc.topics.len() as u32;
                                let subs = classify(fc.feed, &key);
                                for s in &subs {
                                    fc.symbols.insert(s.symbol.to_ascii_uppercase());
                                }
                                fc.topics.push(Topic {
                                    key: key.clone(),
                                    subs,
                                });
                                fc.topic_index.insert(key.clone(), id);
                                id
                            }
                        };
                        // (first ts, last offset): offsets never decrease
                        let (t0, last) = first_ts.entry(*idx).or_insert((*ts, 0.0));
                        let at_s = (*ts - *t0).max(*last);
                        *last = at_s;
                        let text = combined.unwrap_or_else(|| data.clone());
                        fc.frames.push(SimFrame {
                            at_s,
                            topic,
                            text: Utf8Bytes::from(text),
                            raw: raw.map(Utf8Bytes::from),
                            snapshot,
                        });
                    }
                    Record::Connect { .. } | Record::Send { .. } => {}
                }
            }
        }
        Ok(cat)
    }

    /// The recorded REST body for a request `path` and `query`: same path (a leading
    /// `/<feed name>` is ignored) and the same `symbol`/`instId` value, first recorded wins.
    pub fn http_body(&self, path: &str, query: &str) -> Option<&HttpEntry> {
        let (_, path) = strip_feed_prefix(path);
        let key = http_key(query);
        self.http.iter().find(|e| e.path == path && e.key == key)
    }

    /// The feed a WebSocket request path serves, and whether it is a Binance raw-stream path
    /// (`/ws/<stream>`, payloads without the `{"stream":..,"data":..}` wrapper).
    ///
    /// Paths: Binance `/stream?streams=..` and `/ws/<stream>`, Bybit `/v5/public/{linear,spot,
    /// inverse}`, OKX `/ws/v5/public`, Deribit `/ws/api/v2`; each may be prefixed with
    /// `/<feed name>` (`/binance-futures/stream?..`), which Binance needs when several Binance
    /// feeds are served (they share paths); without it the Binance feed is the one serving the
    /// URL's symbols.
    pub fn route_ws(&self, path: &str, query: &str) -> Option<(usize, bool)> {
        let (prefix, path) = strip_feed_prefix(path);
        let find = |feed: Feed| {
            if prefix.is_some_and(|p| p != feed) {
                return None;
            }
            self.feeds.iter().position(|f| f.feed == feed)
        };
        let path = path.trim_end_matches('/');
        match path {
            "/ws/v5/public" => return find(Feed::Okx).map(|i| (i, false)),
            "/ws/api/v2" => return find(Feed::Deribit).map(|i| (i, false)),
            "/v5/public/linear" => return find(Feed::BybitLinear).map(|i| (i, false)),
            "/v5/public/inverse" => return find(Feed::BybitInverse).map(|i| (i, false)),
            "/v5/public/spot" => return find(Feed::BybitSpot).map(|i| (i, false)),
            _ => {}
        }
        let raw = if path == "/stream" {
            false
        } else if path == "/ws" || path.starts_with("/ws/") {
            true
        } else {
            return None;
        };
        let binance: Vec<usize> = self
            .feeds
            .iter()
            .enumerate()
            .filter(|(_, f)| {
                matches!(
                    f.feed,
                    Feed::BinanceFutures | Feed::BinanceDelivery | Feed::BinanceSpot
                ) && prefix.is_none_or(|p| p == f.feed)
            })
            .map(|(i, _)| i)
            .collect();
        if binance.len() <= 1 {
            return binance.first().map(|i| (*i, raw));
        }
        let symbols: Vec<String> = binance_url_streams(path, query)
            .iter()
            .map(|s| s.split('@').next().unwrap_or("").to_ascii_uppercase())
            .collect();
        binance
            .iter()
            .map(|i| {
                let hits = symbols
                    .iter()
                    .filter(|s| self.feeds[*i].symbols.contains(*s))
                    .count();
                (hits, *i)
            })
            .filter(|(hits, _)| *hits > 0)
            .max_by_key(|(hits, i)| (*hits, std::cmp::Reverse(*i)))
            .map(|(_, i)| (i, raw))
    }
}

/// Splits a leading `/<feed name>` off a path: `(Some(feed), rest)`.
pub fn strip_feed_prefix(path: &str) -> (Option<Feed>, &str) {
    let Some(rest) = path.strip_prefix('/') else {
        return (None, path);
    };
    let (first, tail) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    match Feed::ALL.into_iter().find(|f| f.name() == first) {
        Some(feed) => (Some(feed), if tail.is_empty() { "/" } else { tail }),
        None => (None, path),
    }
}

fn bybit_ack_of(feed: Feed, text: &str) -> Option<serde_json::Map<String, Value>> {
    if !matches!(
        feed,
        Feed::BybitLinear | Feed::BybitInverse | Feed::BybitSpot
    ) {
        return None;
    }
    let v: Value = serde_json::from_str(text).ok()?;
    let obj = v.as_object()?;
    (obj.get("op").and_then(Value::as_str) == Some("subscribe")
        && obj.get("success").and_then(Value::as_bool) == Some(true))
    .then(|| obj.clone())
}

/// The config channel names of a channel set, in the order of `config.rs`.
pub fn channel_names(c: Channels) -> Vec<&'static str> {
    [
        ("trades", Channels::TRADES),
        ("book", Channels::BOOK),
        ("book_ticker", Channels::BOOK_TICKER),
        ("derivative_ticker", Channels::DERIVATIVE_TICKER),
        ("liquidations", Channels::LIQUIDATIONS),
    ]
    .into_iter()
    .filter(|(_, bit)| c.contains(*bit))
    .map(|(name, _)| name)
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Exchange;
    use crate::testutil::recording;

    fn all() -> Catalog {
        let recs: Vec<Recording> = [
            "BINANCE.jsonl.zst",
            "BINANCE_FUTURES.jsonl.zst",
            "BYBIT.jsonl.zst",
            "OKX.jsonl.zst",
            "DERIBIT.jsonl.zst",
        ]
        .iter()
        .map(|n| recording(n))
        .collect();
        Catalog::build(&recs).unwrap()
    }

    #[test]
    fn every_recording_is_catalogued() {
        let cat = all();
        let feeds: Vec<Feed> = cat.feeds.iter().map(|f| f.feed).collect();
        assert_eq!(
            feeds,
            [
                Feed::BinanceSpot,
                Feed::BinanceFutures,
                Feed::BybitLinear,
                Feed::BybitSpot,
                Feed::Okx,
                Feed::Deribit
            ]
        );
        let futures = &cat.feeds[1];
        // 1,535 frames received, every one data
        assert_eq!(futures.frames.len(), 1535);
        assert_eq!(futures.topics.len(), 16);
        let agg = futures.topic_id("sushiusdt@aggTrade").unwrap();
        assert_eq!(
            futures.topics[agg as usize].subs,
            vec![Subscription {
                exchange: Exchange::BinanceFutures,
                symbol: "SUSHIUSDT".into(),
                channels: Channels::TRADES
            }]
        );
        let f = futures.frames.iter().find(|f| f.topic == agg).unwrap();
        let raw = f.raw.as_ref().unwrap().as_str();
        assert!(raw.starts_with(r#"{"e":"aggTrade""#), "{raw}");
        assert!(f.text.as_str().ends_with(&format!("{raw}}}")));
        // candles map to no channel
        let kline = futures.topic_id("sushiusdt@kline_1m").unwrap();
        assert!(futures.topics[kline as usize].subs.is_empty());
        // offsets never decrease
        assert!(futures.frames.windows(2).all(|w| w[0].at_s <= w[1].at_s));
        assert!(futures.frames.last().unwrap().at_s > 29.0);

        let linear = &cat.feeds[2];
        assert!(linear.bybit_ack.is_some());
        // acks are not data
        assert!(
            linear
                .frames
                .iter()
                .all(|f| !f.text.contains(r#""op":"subscribe""#))
        );
        let ob = linear.topic_id("orderbook.200.BTCUSDT").unwrap();
        assert!(linear.frames.iter().any(|f| f.topic == ob && f.snapshot));
        let okx = &cat.feeds[4];
        let key = r#"{"channel":"books","instId":"BTC-USDT"}"#;
        let books = okx.topic_id(key).unwrap();
        assert_eq!(okx.topics[books as usize].subs[0].channels, Channels::BOOK);
        assert!(okx.frames.iter().any(|f| f.topic == books && f.snapshot));
        let deribit = &cat.feeds[5];
        assert_eq!(deribit.frames.len(), 135);
        assert_eq!(deribit.frames.iter().filter(|f| f.snapshot).count(), 10);
    }

    #[test]
    fn duplicate_feeds_are_refused() {
        let okx = recording("OKX.jsonl.zst");
        let mut other = okx.clone();
        other.path = PathBuf::from("copy.jsonl");
        let err = Catalog::build(&[okx, other]).unwrap_err();
        assert!(err.to_string().contains("feed okx"), "{err}");
    }

    #[test]
    fn routes_paths_to_feeds() {
        let cat = all();
        let route = |p: &str, q: &str| cat.route_ws(p, q).map(|(i, raw)| (cat.feeds[i].feed, raw));
        assert_eq!(
            route("/stream", "streams=sushiusdt@aggTrade"),
            Some((Feed::BinanceFutures, false))
        );
        assert_eq!(
            route("/stream", "streams=nknusdt@aggTrade/blzeth@depth@100ms"),
            Some((Feed::BinanceSpot, false))
        );
        assert_eq!(
            route("/ws/nknusdt@aggTrade", ""),
            Some((Feed::BinanceSpot, true))
        );
        assert_eq!(
            route("/binance-futures/stream", ""),
            Some((Feed::BinanceFutures, false))
        );
        assert_eq!(route("/binance/ws", ""), Some((Feed::BinanceSpot, true)));
        // ambiguous without symbols or prefix
        assert_eq!(route("/stream", ""), None);
        assert_eq!(
            route("/v5/public/linear", ""),
            Some((Feed::BybitLinear, false))
        );
        assert_eq!(route("/v5/public/spot", ""), Some((Feed::BybitSpot, false)));
        assert_eq!(route("/v5/public/inverse", ""), None);
        assert_eq!(route("/ws/v5/public", ""), Some((Feed::Okx, false)));
        assert_eq!(route("/okx/ws/v5/public", ""), Some((Feed::Okx, false)));
        assert_eq!(route("/deribit/ws/v5/public", ""), None);
        assert_eq!(route("/ws/api/v2", ""), Some((Feed::Deribit, false)));
        assert_eq!(route("/", ""), None);
        assert_eq!(route("/nope", ""), None);
        assert_eq!(route("", ""), None);
    }

    #[test]
    fn finds_rest_bodies_by_path_and_symbol() {
        let cat = all();
        let e = cat
            .http_body("/fapi/v1/depth", "symbol=SUSHIUSDT&limit=1000")
            .unwrap();
        assert!(e.body.starts_with(b"{\"lastUpdateId\""));
        assert!(
            cat.http_body("/fapi/v1/depth", "symbol=sushiusdt")
                .is_some()
        );
        assert!(
            cat.http_body("/binance-futures/fapi/v1/depth", "symbol=SUSHIUSDT")
                .is_some()
        );
        assert!(cat.http_body("/fapi/v1/depth", "symbol=BTCUSDT").is_none());
        assert!(cat.http_body("/fapi/v1/depth", "").is_none());
        assert!(cat.http_body("/api/v3/exchangeInfo", "").is_some());
        assert!(cat.http_body("/nope", "").is_none());
    }

    #[test]
    fn raw_binance_frames_get_their_stream() {
        let streams = vec![
            "btcusdt@depth@100ms".to_string(),
            "btcusdt@trade".to_string(),
        ];
        let depth = r#"{"e":"depthUpdate","E":1,"s":"BTCUSDT","U":1,"u":2,"b":[],"a":[]}"#;
        let t = frame_topic(Feed::BinanceSpot, depth, &streams).unwrap();
        assert_eq!(t.key, "btcusdt@depth@100ms");
        assert_eq!(t.raw.as_deref(), Some(depth));
        assert_eq!(
            t.combined.as_deref(),
            Some(format!(r#"{{"stream":"btcusdt@depth@100ms","data":{depth}}}"#).as_str())
        );
        let trade = r#"{"e":"trade","s":"BTCUSDT","t":5}"#;
        assert_eq!(
            frame_topic(Feed::BinanceSpot, trade, &streams).unwrap().key,
            "btcusdt@trade"
        );
        assert!(frame_topic(Feed::BinanceSpot, r#"{"result":null,"id":1}"#, &streams).is_none());
        assert!(frame_topic(Feed::BinanceSpot, r#"{"e":"kline","s":"X"}"#, &streams).is_none());
        assert!(frame_topic(Feed::BinanceSpot, "not json", &streams).is_none());
        assert!(frame_topic(Feed::Okx, "pong", &[]).is_none());
    }
}

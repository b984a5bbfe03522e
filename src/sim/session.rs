//! One simulated venue WebSocket session: what the client subscribed, the venue's replies to
//! its requests, and which recorded frame goes out next. No I/O here: the server feeds client
//! text frames in and writes what comes out, so every reply is unit-tested.
//!
//! # Pass
//! A session replays its feed's recorded data frames from the first, once per connection (a
//! *pass*), sending only the frames of the topics the client subscribed. The pass starts once
//! the client has subscribed something and then sent no subscription request for
//! [`SETTLE`] (Binance URL streams start it at once), so clients that subscribe with many
//! frames (Bybit: at most 10 topics a request) get every topic from the start. A topic
//! subscribed after the pass started is caught up the way the venue would answer it: for a
//! topic with snapshots, its last snapshot before the current position and every frame of it
//! since; other topics start from the current position.
//!
//! # Replies
//! - Binance: `SUBSCRIBE`/`UNSUBSCRIBE` -> `{"result":null,"id":..}`, `LIST_SUBSCRIPTIONS`,
//!   errors `{"code":..,"msg":..,"id":..}` (spot docs, "Live Subscribing/Unsubscribing to
//!   streams" and "Error Messages").
//! - Bybit v5: `subscribe`/`unsubscribe` -> the recorded ack shape
//!   `{"success":true,"ret_msg":..,"conn_id":..,"req_id":..,"op":..}`, `ping` ->
//!   `{"success":true,"ret_msg":"pong",..,"op":"ping"}`, errors with `"success":false`
//!   (docs `ws/connect`).
//! - OKX v5: text `ping` -> `pong`; `subscribe`/`unsubscribe` -> one
//!   `{"event":"subscribe","arg":{..}}` per argument; errors `{"event":"error","code":..,
//!   "msg":..}` (docs "WebSocket", "Subscribe").
//! - Deribit v2 (JSON-RPC): `public/subscribe`, `public/unsubscribe`,
//!   `public/unsubscribe_all`, `public/set_heartbeat` (then a `test_request` heartbeat every
//!   interval; the simulator accepts intervals from 1 s, Deribit from 10 s),
//!   `public/disable_heartbeat`, `public/test`, `public/hello`; unknown methods get JSON-RPC
//!   error -32601, text that is not JSON -32700.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tungstenite::Utf8Bytes;

use crate::sim::catalog::{FeedCatalog, binance_key, binance_url_streams, classify, okx_key};
use crate::venue::{Feed, Subscription};

/// Quiet time after the last subscription request before a pass starts.
pub const SETTLE: Duration = Duration::from_millis(100);

/// The version `public/test` and `public/hello` report.
const DERIBIT_VERSION: &str = "1.2.26";

/// Counters of one session, added to the server's totals when it ends.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SessionCounters {
    /// Subscribe and unsubscribe requests answered.
    pub subscribe_requests: u64,
    /// Application-level pings answered (Bybit `ping`, OKX `ping`, Deribit `public/test`).
    pub pings: u64,
    /// Client frames that were not a request the venue understands (answered with an error).
    pub invalid_requests: u64,
    /// Frames re-sent to catch up a topic subscribed mid-pass.
    pub catch_up_frames: u64,
    /// Heartbeats sent (Deribit `test_request`).
    pub heartbeats: u64,
}

/// What to do next for the data stream of a session.
#[derive(Debug, PartialEq)]
pub enum Next {
    /// Send this recorded frame now.
    Frame(Utf8Bytes),
    /// Nothing due before this instant.
    Wait(Instant),
    /// The pass has not started (nothing subscribed yet).
    Idle,
    /// Every frame of the pass has been considered.
    PassDone,
}

/// One client's session with a simulated venue.
pub struct Session<'a> {
    cat: &'a FeedCatalog,
    raw: bool,
    /// Client topics (canonical keys), in subscription order.
    topics: Vec<String>,
    /// Per catalog topic: does the client get its frames.
    wanted: Vec<bool>,
    cursor: usize,
    started: Option<Instant>,
    settle_from: Option<Instant>,
    heartbeat: Option<(Duration, Instant)>,
    conn_id: String,
    /// Counters.
    pub counters: SessionCounters,
}

impl<'a> Session<'a> {
    /// A session on `cat` for a client that connected to `path?query` (Binance streams in the
    /// URL are subscribed at once; `raw` sends Binance payloads without the combined-stream
    /// wrapper). `conn_id` names the connection in Bybit replies.
    pub fn new(
        cat: &'a FeedCatalog,
        raw: bool,
        path: &str,
        query: &str,
        conn_id: String,
        now: Instant,
    ) -> Session<'a> {
        let mut s = Session {
            cat,
            raw,
            topics: Vec::new(),
            wanted: vec![false; cat.topics.len()],
            cursor: 0,
            started: None,
            settle_from: None,
            heartbeat: None,
            conn_id,
            counters: SessionCounters::default(),
        };
        if is_binance(cat.feed) {
            let (_, path) = crate::sim::catalog::strip_feed_prefix(path);
            let streams = binance_url_streams(path, query);
            if !streams.is_empty() {
                s.change_topics(&streams, &[], false, now);
                // URL streams are all there is: start at once
                s.settle_from = Some(now.checked_sub(SETTLE).unwrap_or(now));
            }
        }
        s
    }

    /// The feed served.
    pub fn feed(&self) -> Feed {
        self.cat.feed
    }

    /// The topics the client subscribed (canonical keys).
    pub fn topics(&self) -> &[String] {
        &self.topics
    }

    /// True once the pass has started.
    pub fn started(&self) -> bool {
        self.started.is_some()
    }

    /// Handles one text frame from the client: the venue's replies, then any catch-up frames,
    /// in sending order.
    pub fn on_text(&mut self, text: &str, now: Instant) -> Vec<Utf8Bytes> {
        let mut out = Vec::new();
        match self.cat.feed {
            Feed::BinanceFutures | Feed::BinanceDelivery | Feed::BinanceSpot => {
                self.binance(text, now, &mut out)
            }
            Feed::BybitLinear | Feed::BybitInverse | Feed::BybitSpot => {
                self.bybit(text, now, &mut out)
            }
            Feed::Okx => self.okx(text, now, &mut out),
            Feed::Deribit => self.deribit(text, now, &mut out),
        }
        out
    }

    /// The next data frame of the pass, or how long to wait for it. `speed` 1 paces frames as
    /// recorded, 10 ten times faster, 0 sends them as fast as possible.
    pub fn poll(&mut self, now: Instant, speed: f64) -> Next {
        let start = match (self.started, self.settle_from) {
            (Some(t), _) => t,
            (None, Some(t)) if now >= t + SETTLE => {
                self.started = Some(now);
                now
            }
            (None, Some(t)) => return Next::Wait(t + SETTLE),
            (None, None) => return Next::Idle,
        };
        while let Some(f) = self.cat.frames.get(self.cursor) {
            if !self.wanted[f.topic as usize] {
                self.cursor += 1;
                continue;
            }
            if speed > 0.0 {
                // a tiny speed must not overflow: nothing is due later than a day ahead
                let offset = Duration::try_from_secs_f64(f.at_s / speed).unwrap_or(Duration::MAX);
                let due = start
                    .checked_add(offset)
                    .unwrap_or(now + Duration::from_secs(86_400))
                    .min(now + Duration::from_secs(86_400));
                if due > now {
                    return Next::Wait(due);
                }
            }
            self.cursor += 1;
            return Next::Frame(self.frame_text(self.cursor - 1));
        }
        Next::PassDone
    }

    /// A heartbeat to send now, if one is due (Deribit `test_request`).
    pub fn heartbeat_due(&mut self, now: Instant) -> Option<Utf8Bytes> {
        let (every, next) = self.heartbeat.as_mut()?;
        if now < *next {
            return None;
        }
        *next = now + *every;
        self.counters.heartbeats += 1;
        Some(Utf8Bytes::from_static(
            r#"{"jsonrpc":"2.0","method":"heartbeat","params":{"type":"test_request"}}"#,
        ))
    }

    /// When the next heartbeat is due.
    pub fn next_heartbeat(&self) -> Option<Instant> {
        self.heartbeat.map(|(_, t)| t)
    }

    fn frame_text(&self, i: usize) -> Utf8Bytes {
        let f = &self.cat.frames[i];
        match (&f.raw, self.raw) {
            (Some(raw), true) => raw.clone(),
            _ => f.text.clone(),
        }
    }

    /// Adds and removes client topics; `all` clears them first. Before the pass starts this
    /// restarts the settle time; after, newly wanted topics are caught up into `out`.
    fn change_topics(&mut self, add: &[String], remove: &[String], all: bool, now: Instant) {
        self.change_topics_into(add, remove, all, now, &mut Vec::new());
    }

    fn change_topics_into(
        &mut self,
        add: &[String],
        remove: &[String],
        all: bool,
        now: Instant,
        out: &mut Vec<Utf8Bytes>,
    ) {
        if all {
            self.topics.clear();
        }
        self.topics.retain(|t| !remove.contains(t));
        for t in add {
            if !self.topics.contains(t) {
                self.topics.push(t.clone());
            }
        }
        let old = std::mem::take(&mut self.wanted);
        self.wanted = self.compute_wanted();
        if self.started.is_none() {
            if !add.is_empty() {
                self.settle_from = Some(now);
            }
            return;
        }
        // catch up topics that became wanted: from their last snapshot before the cursor
        let mut from: HashMap<u32, usize> = HashMap::new();
        for i in (0..self.cursor).rev() {
            let f = &self.cat.frames[i];
            let t = f.topic as usize;
            if f.snapshot && self.wanted[t] && !old[t] {
                from.entry(f.topic).or_insert(i);
            }
        }
        let Some(first) = from.values().min().copied() else {
            return;
        };
        for i in first..self.cursor {
            let f = &self.cat.frames[i];
            if from.get(&f.topic).is_some_and(|s| *s <= i) {
                out.push(self.frame_text(i));
                self.counters.catch_up_frames += 1;
            }
        }
    }

    /// Which catalog topics the client gets: those it named, and those carrying a channel of
    /// an instrument it subscribed through a topic that was not recorded.
    fn compute_wanted(&self) -> Vec<bool> {
        let cover: Vec<Subscription> = self
            .topics
            .iter()
            .filter(|t| self.cat.topic_id(t).is_none())
            .flat_map(|t| classify(self.cat.feed, t))
            .collect();
        self.cat
            .topics
            .iter()
            .map(|topic| {
                self.topics.contains(&topic.key)
                    || topic.subs.iter().any(|s| {
                        cover.iter().any(|c| {
                            c.exchange == s.exchange
                                && c.symbol == s.symbol
                                && c.channels.0 & s.channels.0 != 0
                        })
                    })
            })
            .collect()
    }

    fn binance(&mut self, text: &str, now: Instant, out: &mut Vec<Utf8Bytes>) {
        let v: Value = match serde_json::from_str(text) {
            Ok(v) => v,
            Err(e) => {
                self.counters.invalid_requests += 1;
                out.push(reply(
                    json!({"code": 3, "msg": format!("Invalid JSON: {e}")}),
                ));
                return;
            }
        };
        let id = v.get("id").cloned().unwrap_or(Value::Null);
        let method = v.get("method").and_then(Value::as_str).unwrap_or("");
        let params: Option<Vec<String>> = v.get("params").and_then(Value::as_array).and_then(|a| {
            a.iter()
                .map(|p| p.as_str().map(binance_key))
                .collect::<Option<Vec<_>>>()
        });
        match (method, params) {
            ("SUBSCRIBE", Some(streams)) => {
                self.counters.subscribe_requests += 1;
                out.push(reply(json!({"result": null, "id": id})));
                self.change_topics_into(&streams, &[], false, now, out);
            }
            ("UNSUBSCRIBE", Some(streams)) => {
                self.counters.subscribe_requests += 1;
                out.push(reply(json!({"result": null, "id": id})));
                self.change_topics_into(&[], &streams, false, now, out);
            }
            ("LIST_SUBSCRIPTIONS", _) => {
                out.push(reply(json!({"result": self.topics, "id": id})));
            }
            ("SET_PROPERTY" | "GET_PROPERTY", _) => {
                out.push(reply(json!({"result": null, "id": id})));
            }
            ("SUBSCRIBE" | "UNSUBSCRIBE", None) => {
                self.counters.invalid_requests += 1;
                out.push(reply(json!({
                    "code": 2, "msg": "Invalid request: params must be a list of stream names", "id": id
                })));
            }
            _ => {
                self.counters.invalid_requests += 1;
                out.push(reply(json!({
                    "code": 2, "msg": format!("Invalid request: unknown method `{method}`"), "id": id
                })));
            }
        }
    }

    fn bybit_reply(&self, op: &str, success: bool, ret_msg: &str, req_id: &Value) -> Utf8Bytes {
        let mut m = self.cat.bybit_ack.clone().unwrap_or_else(|| {
            let mut m = serde_json::Map::new();
            m.insert("success".into(), json!(true));
            m.insert("ret_msg".into(), json!(""));
            m.insert("conn_id".into(), json!(""));
            m.insert("req_id".into(), json!(""));
            m.insert("op".into(), json!("subscribe"));
            m
        });
        m.insert("success".into(), json!(success));
        let keep_template_msg = success && op == "subscribe";
        if !keep_template_msg {
            m.insert("ret_msg".into(), json!(ret_msg));
        }
        m.insert("conn_id".into(), json!(self.conn_id));
        if !req_id.is_null() || m.contains_key("req_id") {
            let id = if req_id.is_null() {
                json!("")
            } else {
                req_id.clone()
            };
            m.insert("req_id".into(), id);
        }
        m.insert("op".into(), json!(op));
        reply(Value::Object(m))
    }

    fn bybit(&mut self, text: &str, now: Instant, out: &mut Vec<Utf8Bytes>) {
        let Ok(v) = serde_json::from_str::<Value>(text) else {
            self.counters.invalid_requests += 1;
            out.push(self.bybit_reply("", false, "error:request is not JSON", &Value::Null));
            return;
        };
        let req_id = v.get("req_id").cloned().unwrap_or(Value::Null);
        let op = v
            .get("op")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let args: Option<Vec<String>> = v.get("args").and_then(Value::as_array).and_then(|a| {
            a.iter()
                .map(|x| x.as_str().map(str::to_string))
                .collect::<Option<Vec<_>>>()
        });
        match (op.as_str(), args) {
            ("ping", _) => {
                self.counters.pings += 1;
                out.push(self.bybit_reply("ping", true, "pong", &req_id));
            }
            ("subscribe", Some(topics)) => {
                self.counters.subscribe_requests += 1;
                out.push(self.bybit_reply("subscribe", true, "", &req_id));
                self.change_topics_into(&topics, &[], false, now, out);
            }
            ("unsubscribe", Some(topics)) => {
                self.counters.subscribe_requests += 1;
                out.push(self.bybit_reply("unsubscribe", true, "", &req_id));
                self.change_topics_into(&[], &topics, false, now, out);
            }
            ("subscribe" | "unsubscribe", None) => {
                self.counters.invalid_requests += 1;
                out.push(self.bybit_reply(
                    &op,
                    false,
                    "error:args must be a list of topics",
                    &req_id,
                ));
            }
            _ => {
                self.counters.invalid_requests += 1;
                out.push(self.bybit_reply(&op, false, "error:handler not found", &req_id));
            }
        }
    }

    fn okx(&mut self, text: &str, now: Instant, out: &mut Vec<Utf8Bytes>) {
        if text.trim() == "ping" {
            self.counters.pings += 1;
            out.push(Utf8Bytes::from_static("pong"));
            return;
        }
        let error =
            |code: &str, msg: String| reply(json!({"event": "error", "code": code, "msg": msg}));
        let Ok(v) = serde_json::from_str::<Value>(text) else {
            self.counters.invalid_requests += 1;
            out.push(error(
                "60012",
                format!("Invalid request: {}", truncate(text)),
            ));
            return;
        };
        let op = v.get("op").and_then(Value::as_str).unwrap_or("");
        let args: Option<Vec<serde_json::Map<String, Value>>> =
            v.get("args").and_then(Value::as_array).and_then(|a| {
                a.iter()
                    .map(|x| {
                        x.as_object()
                            .filter(|o| o.get("channel").is_some_and(Value::is_string))
                            .cloned()
                    })
                    .collect::<Option<Vec<_>>>()
            });
        match (op, args) {
            ("subscribe" | "unsubscribe", Some(args)) if !args.is_empty() => {
                self.counters.subscribe_requests += 1;
                let keys: Vec<String> = args.iter().map(okx_key).collect();
                for arg in args {
                    let mut ack = json!({"event": op, "arg": arg});
                    if let Some(id) = v.get("id") {
                        ack["id"] = id.clone();
                    }
                    out.push(reply(ack));
                }
                if op == "subscribe" {
                    self.change_topics_into(&keys, &[], false, now, out);
                } else {
                    self.change_topics_into(&[], &keys, false, now, out);
                }
            }
            ("subscribe" | "unsubscribe", _) => {
                self.counters.invalid_requests += 1;
                out.push(error(
                    "60018",
                    format!("Wrong URL or channel:{}", truncate(text)),
                ));
            }
            _ => {
                self.counters.invalid_requests += 1;
                out.push(error(
                    "60012",
                    format!("Invalid request: {}", truncate(text)),
                ));
            }
        }
    }

    fn deribit(&mut self, text: &str, now: Instant, out: &mut Vec<Utf8Bytes>) {
        let Ok(v) = serde_json::from_str::<Value>(text) else {
            self.counters.invalid_requests += 1;
            out.push(reply(json!({
                "jsonrpc": "2.0", "id": null, "error": {"code": -32700, "message": "Parse error"}
            })));
            return;
        };
        let id = v.get("id").cloned().unwrap_or(Value::Null);
        let result = |r: Value| reply(json!({"jsonrpc": "2.0", "id": id, "result": r}));
        let error = |code: i64, message: &str| {
            reply(json!({"jsonrpc": "2.0", "id": id, "error": {"code": code, "message": message}}))
        };
        let method = v.get("method").and_then(Value::as_str).unwrap_or("");
        let params = v.get("params").cloned().unwrap_or(Value::Null);
        let channels: Option<Vec<String>> = params
            .get("channels")
            .and_then(Value::as_array)
            .and_then(|a| {
                a.iter()
                    .map(|c| c.as_str().map(str::to_string))
                    .collect::<Option<Vec<_>>>()
            });
        match (method, channels) {
            ("public/subscribe" | "private/subscribe", Some(ch)) => {
                self.counters.subscribe_requests += 1;
                out.push(result(json!(ch)));
                self.change_topics_into(&ch, &[], false, now, out);
            }
            ("public/unsubscribe" | "private/unsubscribe", Some(ch)) => {
                self.counters.subscribe_requests += 1;
                out.push(result(json!(ch)));
                self.change_topics_into(&[], &ch, false, now, out);
            }
            ("public/unsubscribe_all" | "private/unsubscribe_all", _) => {
                self.counters.subscribe_requests += 1;
                out.push(result(json!("ok")));
                self.change_topics_into(&[], &[], true, now, out);
            }
            ("public/set_heartbeat", _) => match params.get("interval").and_then(Value::as_f64) {
                Some(s) if (1.0..=3600.0).contains(&s) => {
                    let every = Duration::from_secs_f64(s);
                    self.heartbeat = Some((every, now + every));
                    out.push(result(json!("ok")));
                }
                _ => {
                    self.counters.invalid_requests += 1;
                    out.push(error(-32602, "Invalid params: interval"));
                }
            },
            ("public/disable_heartbeat", _) => {
                self.heartbeat = None;
                out.push(result(json!("ok")));
            }
            ("public/test" | "public/hello", _) => {
                self.counters.pings += 1;
                out.push(result(json!({"version": DERIBIT_VERSION})));
            }
            ("public/get_time", _) => {
                let ms = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_millis() as u64);
                out.push(result(json!(ms)));
            }
            (
                "public/subscribe"
                | "private/subscribe"
                | "public/unsubscribe"
                | "private/unsubscribe",
                None,
            ) => {
                self.counters.invalid_requests += 1;
                out.push(error(-32602, "Invalid params: channels"));
            }
            _ => {
                self.counters.invalid_requests += 1;
                out.push(error(-32601, "Method not found"));
            }
        }
    }
}

fn is_binance(feed: Feed) -> bool {
    matches!(
        feed,
        Feed::BinanceFutures | Feed::BinanceDelivery | Feed::BinanceSpot
    )
}

fn reply(v: Value) -> Utf8Bytes {
    Utf8Bytes::from(v.to_string())
}

/// At most 200 bytes of a client frame, for error messages.
fn truncate(text: &str) -> &str {
    let mut end = text.len().min(200);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::catalog::Catalog;
    use crate::testutil::recording;

    fn catalog(name: &str) -> Catalog {
        Catalog::build(&[recording(name)]).unwrap()
    }

    fn drain(s: &mut Session, now: Instant) -> Vec<String> {
        let mut out = Vec::new();
        loop {
            match s.poll(now, 0.0) {
                Next::Frame(f) => out.push(f.to_string()),
                Next::PassDone => return out,
                other => panic!("{other:?}"),
            }
        }
    }

    fn json_of(s: &Utf8Bytes) -> Value {
        serde_json::from_str(s.as_str()).unwrap()
    }

    #[test]
    fn binance_url_streams_start_at_once() {
        let cat = catalog("BINANCE_FUTURES.jsonl.zst");
        let now = Instant::now();
        let mut s = Session::new(
            &cat.feeds[0],
            false,
            "/stream",
            "streams=sushiusdt@aggTrade/akrousdt@aggTrade",
            "c".into(),
            now,
        );
        let frames = drain(&mut s, now);
        assert!(!frames.is_empty());
        assert!(
            frames
                .iter()
                .all(|f| f.starts_with(r#"{"stream":"sushiusdt@aggTrade""#)
                    || f.starts_with(r#"{"stream":"akrousdt@aggTrade""#))
        );
        // the same through a raw-stream path: payloads only
        let mut raw = Session::new(
            &cat.feeds[0],
            true,
            "/ws/sushiusdt@aggTrade",
            "",
            "c".into(),
            now,
        );
        let frames = drain(&mut raw, now);
        assert!(!frames.is_empty());
        assert!(
            frames
                .iter()
                .all(|f| f.starts_with(r#"{"e":"aggTrade""#) && f.contains("SUSHIUSDT"))
        );
    }

    #[test]
    fn binance_requests() {
        let cat = catalog("BINANCE_FUTURES.jsonl.zst");
        let now = Instant::now();
        let mut s = Session::new(&cat.feeds[0], false, "/stream", "", "c".into(), now);
        assert_eq!(s.poll(now, 0.0), Next::Idle);
        let out = s.on_text(
            r#"{"method":"SUBSCRIBE","params":["CTKUSDT@aggTrade"],"id":7}"#,
            now,
        );
        assert_eq!(json_of(&out[0]), json!({"result": null, "id": 7}));
        assert_eq!(s.topics(), ["ctkusdt@aggTrade"]);
        let out = s.on_text(r#"{"method":"LIST_SUBSCRIPTIONS","id":8}"#, now);
        assert_eq!(
            json_of(&out[0]),
            json!({"result": ["ctkusdt@aggTrade"], "id": 8})
        );
        assert!(matches!(s.poll(now, 0.0), Next::Wait(_)));
        let later = now + SETTLE;
        assert!(
            drain(&mut s, later)
                .iter()
                .all(|f| f.contains("ctkusdt@aggTrade"))
        );
        for bad in [
            "{",
            r#"{"method":"NOPE","id":1}"#,
            r#"{"method":"SUBSCRIBE","params":[1]}"#,
            "[]",
        ] {
            let out = s.on_text(bad, now);
            assert!(json_of(&out[0]).get("code").is_some(), "{bad}");
        }
        assert_eq!(s.counters.invalid_requests, 4);
    }

    #[test]
    fn bybit_acks_pongs_and_errors() {
        let cat = catalog("BYBIT.jsonl.zst");
        let now = Instant::now();
        let linear = &cat.feeds[0];
        assert_eq!(linear.feed, Feed::BybitLinear);
        let mut s = Session::new(linear, false, "/v5/public/linear", "", "sim-1".into(), now);
        let out = s.on_text(
            r#"{"op":"subscribe","args":["publicTrade.BTCUSDT"],"req_id":"a"}"#,
            now,
        );
        assert_eq!(
            json_of(&out[0]),
            json!({"success": true, "ret_msg": "", "conn_id": "sim-1", "req_id": "a", "op": "subscribe"})
        );
        let out = s.on_text(r#"{"op":"ping"}"#, now);
        assert_eq!(json_of(&out[0])["ret_msg"], "pong");
        assert_eq!(json_of(&out[0])["op"], "ping");
        for bad in [
            "nope",
            r#"{"op":"subscribe","args":"x"}"#,
            r#"{"op":"fly"}"#,
        ] {
            let out = s.on_text(bad, now);
            assert_eq!(json_of(&out[0])["success"], false, "{bad}");
        }
        assert_eq!(s.counters.invalid_requests, 3);
        let frames = drain(&mut s, now + SETTLE);
        assert!(!frames.is_empty());
        assert!(
            frames
                .iter()
                .all(|f| f.contains(r#""topic":"publicTrade.BTCUSDT""#))
        );
        // spot acks keep the recorded shape
        let spot = &cat.feeds[1];
        let mut s = Session::new(spot, false, "/v5/public/spot", "", "sim-2".into(), now);
        let out = s.on_text(r#"{"op":"subscribe","args":["publicTrade.BTCUSDT"]}"#, now);
        assert_eq!(json_of(&out[0])["ret_msg"], "subscribe");
    }

    #[test]
    fn okx_pings_acks_and_errors() {
        let cat = catalog("OKX.jsonl.zst");
        let now = Instant::now();
        let mut s = Session::new(&cat.feeds[0], false, "/ws/v5/public", "", "c".into(), now);
        assert_eq!(s.on_text("ping", now), vec![Utf8Bytes::from_static("pong")]);
        let out = s.on_text(
            r#"{"op":"subscribe","args":[{"channel":"trades","instId":"BTC-USDT"},{"channel":"books","instId":"BTC-USDT"}]}"#,
            now,
        );
        assert_eq!(out.len(), 2);
        assert_eq!(
            json_of(&out[1]),
            json!({"event": "subscribe", "arg": {"channel": "books", "instId": "BTC-USDT"}})
        );
        for bad in [
            "nope",
            r#"{"op":"subscribe","args":[{"instId":"X"}]}"#,
            r#"{"op":"login"}"#,
        ] {
            let out = s.on_text(bad, now);
            assert_eq!(json_of(&out[0])["event"], "error", "{bad}");
        }
        let frames = drain(&mut s, now + SETTLE);
        assert!(frames.iter().any(|f| f.contains(r#""action":"snapshot""#)));
        assert!(frames.iter().all(|f| f.contains(r#""instId":"BTC-USDT"}"#)));
    }

    #[test]
    fn deribit_rpc() {
        let cat = catalog("DERIBIT.jsonl.zst");
        let now = Instant::now();
        let mut s = Session::new(&cat.feeds[0], false, "/ws/api/v2", "", "c".into(), now);
        let out = s.on_text(
            r#"{"jsonrpc":"2.0","id":4,"method":"public/subscribe","params":{"channels":["book.BTC-24SEP21-8000-P.100ms"]}}"#,
            now,
        );
        assert_eq!(
            json_of(&out[0]),
            json!({"jsonrpc": "2.0", "id": 4, "result": ["book.BTC-24SEP21-8000-P.100ms"]})
        );
        let out = s.on_text(
            r#"{"jsonrpc":"2.0","id":5,"method":"public/set_heartbeat","params":{"interval":1}}"#,
            now,
        );
        assert_eq!(json_of(&out[0])["result"], "ok");
        assert!(s.heartbeat_due(now).is_none());
        let hb = s.heartbeat_due(now + Duration::from_secs(1)).unwrap();
        assert_eq!(json_of(&hb)["params"]["type"], "test_request");
        let out = s.on_text(
            r#"{"jsonrpc":"2.0","id":6,"method":"public/test","params":{}}"#,
            now,
        );
        assert_eq!(json_of(&out[0])["result"]["version"], DERIBIT_VERSION);
        for (bad, code) in [
            ("{", -32700),
            (r#"{"jsonrpc":"2.0","id":1,"method":"public/nope"}"#, -32601),
            (
                r#"{"jsonrpc":"2.0","id":1,"method":"public/subscribe","params":{}}"#,
                -32602,
            ),
            (
                r#"{"jsonrpc":"2.0","id":1,"method":"public/set_heartbeat","params":{"interval":0}}"#,
                -32602,
            ),
        ] {
            let out = s.on_text(bad, now);
            assert_eq!(json_of(&out[0])["error"]["code"], code, "{bad}");
        }
        // an interval variant that was not recorded still gets the recorded book (`.raw`)
        let frames = drain(&mut s, now + SETTLE);
        assert!(!frames.is_empty());
        assert!(
            frames
                .iter()
                .all(|f| f.contains(r#""channel":"book.BTC-24SEP21-8000-P.raw""#))
        );
    }

    #[test]
    fn late_subscription_is_caught_up_from_the_last_snapshot() {
        let cat = catalog("OKX.jsonl.zst");
        let feed = &cat.feeds[0];
        let now = Instant::now();
        let mut s = Session::new(feed, false, "/ws/v5/public", "", "c".into(), now);
        s.on_text(
            r#"{"op":"subscribe","args":[{"channel":"trades","instId":"BTC-USDT"}]}"#,
            now,
        );
        let t = now + SETTLE;
        // send half of the pass
        let books = feed
            .topic_id(r#"{"channel":"books","instId":"BTC-USDT"}"#)
            .unwrap();
        let half = feed.frames.len() / 2;
        while s.cursor < half {
            assert!(matches!(s.poll(t, 0.0), Next::Frame(_)));
        }
        let cursor = s.cursor;
        let out = s.on_text(
            r#"{"op":"subscribe","args":[{"channel":"books","instId":"BTC-USDT"}]}"#,
            t,
        );
        // ack, then the last snapshot before the cursor and every update since
        let last_snapshot = (0..cursor)
            .rev()
            .find(|i| feed.frames[*i].topic == books && feed.frames[*i].snapshot)
            .unwrap();
        let expected: Vec<&str> = (last_snapshot..cursor)
            .filter(|i| feed.frames[*i].topic == books)
            .map(|i| feed.frames[i].text.as_str())
            .collect();
        assert_eq!(out.len(), 1 + expected.len());
        assert!(out[1].contains(r#""action":"snapshot""#));
        assert_eq!(
            out[1..].iter().map(|f| f.as_str()).collect::<Vec<_>>(),
            expected
        );
        assert_eq!(s.counters.catch_up_frames, expected.len() as u64);
        // unsubscribing stops the topic
        s.on_text(
            r#"{"op":"unsubscribe","args":[{"channel":"books","instId":"BTC-USDT"}]}"#,
            t,
        );
        assert!(
            drain(&mut s, t)
                .iter()
                .all(|f| !f.contains(r#""channel":"books""#))
        );
    }

    fn every_feed() -> &'static Catalog {
        static CAT: std::sync::OnceLock<Catalog> = std::sync::OnceLock::new();
        CAT.get_or_init(|| {
            let recs: Vec<_> = [
                "BINANCE_FUTURES.jsonl.zst",
                "BYBIT.jsonl.zst",
                "OKX.jsonl.zst",
                "DERIBIT.jsonl.zst",
            ]
            .iter()
            .map(|n| recording(n))
            .collect();
            Catalog::build(&recs).unwrap()
        })
    }

    /// JSON-ish text built from the tokens the venues' requests are made of.
    fn requestish() -> impl proptest::strategy::Strategy<Value = String> {
        use proptest::prelude::*;
        let token = prop_oneof![
            Just("{".to_string()),
            Just("}".to_string()),
            Just("[".to_string()),
            Just("]".to_string()),
            Just(",".to_string()),
            Just(":".to_string()),
            Just(r#""op""#.to_string()),
            Just(r#""args""#.to_string()),
            Just(r#""subscribe""#.to_string()),
            Just(r#""unsubscribe""#.to_string()),
            Just(r#""ping""#.to_string()),
            Just(r#""method""#.to_string()),
            Just(r#""params""#.to_string()),
            Just(r#""channels""#.to_string()),
            Just(r#""channel""#.to_string()),
            Just(r#""instId""#.to_string()),
            Just(r#""SUBSCRIBE""#.to_string()),
            Just(r#""public/subscribe""#.to_string()),
            Just(r#""public/set_heartbeat""#.to_string()),
            Just(r#""interval""#.to_string()),
            Just(r#""id""#.to_string()),
            Just(r#""book.BTC-24SEP21-8000-P.raw""#.to_string()),
            Just(r#""orderbook.200.BTCUSDT""#.to_string()),
            Just(r#""sushiusdt@aggTrade""#.to_string()),
            Just("null".to_string()),
            Just("-1e999".to_string()),
            Just("0".to_string()),
            "[a-z]{0,4}",
        ];
        proptest::collection::vec(token, 0..24).prop_map(|t| t.concat())
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]

        /// Whatever a client sends, every feed answers without panicking, and the data stream
        /// still works afterwards.
        #[test]
        fn arbitrary_client_frames_never_panic(
            texts in proptest::collection::vec(
                proptest::prop_oneof![requestish(), ".{0,120}"],
                1..6,
            ),
        ) {
            let now = Instant::now();
            for fc in &every_feed().feeds {
                let mut s = Session::new(fc, false, "/stream", "", "c".into(), now);
                for t in &texts {
                    s.on_text(t, now);
                }
                let mut n = 0;
                let later = now + SETTLE + Duration::from_secs(3600);
                while let Next::Frame(_) = s.poll(later, 0.0) {
                    n += 1;
                }
                proptest::prop_assert!(n <= fc.frames.len());
                let _ = s.heartbeat_due(later);
            }
        }
    }

    #[test]
    fn tiny_speeds_do_not_overflow() {
        let cat = catalog("OKX.jsonl.zst");
        let now = Instant::now();
        let mut s = Session::new(&cat.feeds[0], false, "/ws/v5/public", "", "c".into(), now);
        s.on_text(
            r#"{"op":"subscribe","args":[{"channel":"trades","instId":"BTC-USDT"}]}"#,
            now,
        );
        let t = now + SETTLE;
        for speed in [f64::MIN_POSITIVE, 1e-300, 1e-9] {
            match s.poll(t, speed) {
                Next::Frame(_) => {}
                Next::Wait(w) => assert!(w <= t + Duration::from_secs(86_400)),
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn pacing_follows_recorded_offsets() {
        let cat = catalog("DERIBIT.jsonl.zst");
        let feed = &cat.feeds[0];
        let now = Instant::now();
        let mut s = Session::new(feed, false, "/ws/api/v2", "", "c".into(), now);
        let all: Vec<String> = feed.topics.iter().map(|t| t.key.clone()).collect();
        let msg =
            json!({"jsonrpc":"2.0","id":1,"method":"public/subscribe","params":{"channels": all}});
        s.on_text(&msg.to_string(), now);
        let start = now + SETTLE;
        assert!(matches!(s.poll(start, 2.0), Next::Frame(_)));
        // the last frame is ~30 s after the first: at speed 2 it is due ~15 s after the start
        let last = feed.frames.last().unwrap().at_s;
        let mut n = 1;
        loop {
            match s.poll(start + Duration::from_secs_f64(last / 2.0), 2.0) {
                Next::Frame(_) => n += 1,
                Next::PassDone => break,
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(n, feed.frames.len());
        let mut s = Session::new(feed, false, "/ws/api/v2", "", "c".into(), now);
        s.on_text(&msg.to_string(), now);
        assert!(matches!(s.poll(start, 1.0), Next::Frame(_)));
        match s.poll(start, 1.0) {
            Next::Wait(t) => assert!(t > start),
            Next::Frame(_) => {} // frames recorded in the same instant
            other => panic!("{other:?}"),
        }
    }
}

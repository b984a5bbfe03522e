//! Fault injection for `pinfeed simulate --fault KIND[:key=value,...]`: a venue that
//! misbehaves on purpose, repeatably, on recorded and synthetic flow alike.
//!
//! Each [`FaultSpec`] names a kind and its keys. Every WebSocket connection of a matching feed
//! gets its own [`ConnFaults`]: `every=N` counts that connection's matching frames (the Nth,
//! 2Nth, ... are hit), `at=S` fires once, S seconds after the connection opened (a reconnect
//! gets it again). REST faults ([`FaultKind::Rest`]) are shared by the whole simulator: the
//! next `count` depth snapshots fail. Every fault that fires is counted per kind and logged to
//! stderr with its time, connection, feed and what it hit ([`FaultLog`]).
//!
//! Kinds and keys (`feed` = a feed name as in the config, e.g. `bybit-linear`; every kind
//! takes it; without it every feed is hit):
//!
//! | kind | keys (default) | what happens |
//! |---|---|---|
//! | `gap` | `every` (100) | a book delta is not sent |
//! | `checksum` | `every` (100) | an OKX book frame's `checksum` is off by one |
//! | `garbage` | `every` (100), `seed` (1) | a data frame is replaced by malformed JSON |
//! | `oversized` | `bytes` (32 MiB: twice the engine's 16 MiB frame limit), `at` (5) | one text frame of `bytes` bytes |
//! | `stall` | `secs` (10), `at` (5) | nothing sent, nothing read (no pongs) for `secs` |
//! | `disconnect` | `at` (5) | TCP closed with no WebSocket close frame |
//! | `close` | `code` (1001), `at` (5) | a WebSocket close frame with `code` |
//! | `rest` | `count` (3), `status` (429; 500; `timeout`), `secs` (30) | the next `count` depth snapshots fail (429 with `Retry-After: 1`; `timeout`: no answer for `secs`) |
//! | `dup` | `every` (100) | a data frame is sent twice |
//! | `reorder` | `every` (100) | a book delta is held back and sent after the next delta of the same book (the pair swapped; sent alone if none comes within 200 ms) |
//! | `no-pong` | `at` (5) | from `at` on, client frames (pings, WebSocket and venue-level) go unread and unanswered; data flows |
//! | `slow` | `bytes_per_s` (20000) | data is throttled to `bytes_per_s` |

use std::fmt;
use std::str::FromStr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tungstenite::Utf8Bytes;

use super::synthetic::market::Rng;
use crate::venue::Feed;

/// A fault kind.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum FaultKind {
    /// Drop a book delta.
    Gap,
    /// Corrupt a book checksum (OKX).
    Checksum,
    /// Replace a frame by malformed JSON.
    Garbage,
    /// Send one huge frame.
    Oversized,
    /// Stop sending and reading for a while.
    Stall,
    /// Drop TCP without a close frame.
    Disconnect,
    /// Send a WebSocket close frame.
    Close,
    /// Fail REST snapshots.
    Rest,
    /// Send a frame twice.
    Dup,
    /// Swap two adjacent frames.
    Reorder,
    /// Stop answering pings.
    NoPong,
    /// Throttle the connection.
    Slow,
}

impl FaultKind {
    /// Every kind, in the order of the table above.
    pub const ALL: [FaultKind; 12] = [
        FaultKind::Gap,
        FaultKind::Checksum,
        FaultKind::Garbage,
        FaultKind::Oversized,
        FaultKind::Stall,
        FaultKind::Disconnect,
        FaultKind::Close,
        FaultKind::Rest,
        FaultKind::Dup,
        FaultKind::Reorder,
        FaultKind::NoPong,
        FaultKind::Slow,
    ];

    /// The name used on the command line and in logs.
    pub fn name(self) -> &'static str {
        match self {
            FaultKind::Gap => "gap",
            FaultKind::Checksum => "checksum",
            FaultKind::Garbage => "garbage",
            FaultKind::Oversized => "oversized",
            FaultKind::Stall => "stall",
            FaultKind::Disconnect => "disconnect",
            FaultKind::Close => "close",
            FaultKind::Rest => "rest",
            FaultKind::Dup => "dup",
            FaultKind::Reorder => "reorder",
            FaultKind::NoPong => "no-pong",
            FaultKind::Slow => "slow",
        }
    }

    fn keys(self) -> &'static [&'static str] {
        match self {
            FaultKind::Gap | FaultKind::Checksum | FaultKind::Dup | FaultKind::Reorder => {
                &["feed", "every"]
            }
            FaultKind::Garbage => &["feed", "every", "seed"],
            FaultKind::Oversized => &["feed", "bytes", "at"],
            FaultKind::Stall => &["feed", "secs", "at"],
            FaultKind::Disconnect | FaultKind::NoPong => &["feed", "at"],
            FaultKind::Close => &["feed", "code", "at"],
            FaultKind::Rest => &["feed", "count", "status", "secs"],
            FaultKind::Slow => &["feed", "bytes_per_s"],
        }
    }
}

impl fmt::Display for FaultKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// How a failing REST snapshot fails.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum RestFailure {
    /// This HTTP status (429 carries `Retry-After: 1`).
    Status(u16),
    /// No answer for [`FaultSpec::secs`], then the connection is closed.
    Timeout,
}

/// One `--fault` argument, parsed. Keys a kind does not use keep their defaults.
#[derive(Clone, Debug, PartialEq)]
pub struct FaultSpec {
    /// The kind.
    pub kind: FaultKind,
    /// Only this feed's connections (and, for `rest`, its snapshots); `None`: every feed.
    pub feed: Option<Feed>,
    /// Every Nth matching frame, N >= 1.
    pub every: u64,
    /// Seconds after the connection opens.
    pub at: Duration,
    /// `stall`: how long; `rest` with `timeout`: how long the request goes unanswered.
    pub secs: Duration,
    /// `oversized`: the frame's size, bytes.
    pub bytes: usize,
    /// `close`: the close code.
    pub code: u16,
    /// `rest`: how many snapshots fail.
    pub count: u64,
    /// `rest`: how they fail.
    pub rest: RestFailure,
    /// `slow`: the throttle, bytes per second.
    pub bytes_per_s: u64,
    /// `garbage`: seed of the malformed frames' choice.
    pub seed: u64,
}

/// Largest `oversized` frame accepted, bytes.
pub const MAX_OVERSIZED_BYTES: usize = 256 << 20;

impl FaultSpec {
    /// The defaults of `kind` (see the module's table).
    pub fn new(kind: FaultKind) -> FaultSpec {
        FaultSpec {
            kind,
            feed: None,
            every: 100,
            at: Duration::from_secs(5),
            secs: Duration::from_secs(match kind {
                FaultKind::Rest => 30,
                _ => 10,
            }),
            bytes: 32 << 20,
            code: 1001,
            count: 3,
            rest: RestFailure::Status(429),
            bytes_per_s: 20_000,
            seed: 1,
        }
    }

    /// True when this fault applies to `feed`.
    pub fn hits(&self, feed: Feed) -> bool {
        self.feed.is_none_or(|f| f == feed)
    }
}

/// Parses `KIND[:key=value,...]`.
///
/// # Errors
/// A message naming the unknown kind, the unknown or repeated key, or the bad value.
impl FromStr for FaultSpec {
    type Err = String;

    fn from_str(s: &str) -> Result<FaultSpec, String> {
        let (kind, rest) = s.split_once(':').unwrap_or((s, ""));
        let kind = FaultKind::ALL
            .into_iter()
            .find(|k| k.name() == kind)
            .ok_or_else(|| {
                let names: Vec<&str> = FaultKind::ALL.iter().map(|k| k.name()).collect();
                format!("unknown fault kind {kind:?} (one of {})", names.join(", "))
            })?;
        let mut spec = FaultSpec::new(kind);
        let mut seen: Vec<&str> = Vec::new();
        for pair in rest.split(',').filter(|p| !p.is_empty()) {
            let (key, value) = pair
                .split_once('=')
                .ok_or_else(|| format!("fault {kind}: {pair:?} is not key=value"))?;
            if !kind.keys().contains(&key) {
                return Err(format!(
                    "fault {kind}: unknown key {key:?} (keys: {})",
                    kind.keys().join(", ")
                ));
            }
            if seen.contains(&key) {
                return Err(format!("fault {kind}: {key} given twice"));
            }
            seen.push(key);
            let bad = |what: &str| format!("fault {kind}: {key}={value:?}: {what}");
            let int = |min: u64, max: u64| -> Result<u64, String> {
                value
                    .parse::<u64>()
                    .ok()
                    .filter(|v| (min..=max).contains(v))
                    .ok_or_else(|| bad(&format!("an integer in {min}..={max}")))
            };
            let seconds = || -> Result<Duration, String> {
                value
                    .parse::<f64>()
                    .ok()
                    .filter(|v| v.is_finite() && (0.0..=86_400.0).contains(v))
                    .map(Duration::from_secs_f64)
                    .ok_or_else(|| bad("seconds in 0..=86400"))
            };
            match key {
                "feed" => {
                    spec.feed = Some(
                        Feed::ALL
                            .into_iter()
                            .find(|f| f.name() == value)
                            .ok_or_else(|| bad("not a feed name"))?,
                    )
                }
                "every" => spec.every = int(1, u64::MAX)?,
                "at" => spec.at = seconds()?,
                "secs" => spec.secs = seconds()?,
                "bytes" => spec.bytes = int(1, MAX_OVERSIZED_BYTES as u64)? as usize,
                "code" => spec.code = int(1000, 4999)? as u16,
                "count" => spec.count = int(1, u64::MAX)?,
                "status" => {
                    spec.rest = match value {
                        "timeout" => RestFailure::Timeout,
                        _ => RestFailure::Status(int(400, 599)? as u16),
                    }
                }
                "bytes_per_s" => spec.bytes_per_s = int(1, u64::MAX)?,
                "seed" => spec.seed = int(0, u64::MAX)?,
                _ => unreachable!("keys() lists every key"),
            }
        }
        Ok(spec)
    }
}

/// Faults fired, per kind, and the log line of each (stderr, `[sim] fault ...`).
#[derive(Debug)]
pub struct FaultLog {
    start: Instant,
    fired: [AtomicU64; FaultKind::ALL.len()],
    quiet: bool,
    /// REST faults still to fire: `(spec, remaining)`.
    rest: Mutex<Vec<(FaultSpec, u64)>>,
}

impl FaultLog {
    /// A log for `specs`, times relative to now; `quiet`: count without printing.
    pub fn new(specs: &[FaultSpec], quiet: bool) -> FaultLog {
        FaultLog {
            start: Instant::now(),
            fired: Default::default(),
            quiet,
            rest: Mutex::new(
                specs
                    .iter()
                    .filter(|s| s.kind == FaultKind::Rest)
                    .map(|s| (s.clone(), s.count))
                    .collect(),
            ),
        }
    }

    /// Counts one fault of `kind` and logs what it hit.
    pub fn fired(&self, kind: FaultKind, conn: u64, feed: Feed, what: fmt::Arguments<'_>) {
        let i = FaultKind::ALL.iter().position(|k| *k == kind).unwrap_or(0);
        let n = self.fired[i].fetch_add(1, Ordering::Relaxed) + 1;
        if !self.quiet {
            eprintln!(
                "[sim] fault {kind} #{n} t={:.3}s conn={conn} feed={}: {what}",
                self.start.elapsed().as_secs_f64(),
                feed.name()
            );
        }
    }

    /// Faults fired so far, per kind (kinds that never fired left out).
    pub fn counts(&self) -> Vec<(FaultKind, u64)> {
        FaultKind::ALL
            .iter()
            .zip(&self.fired)
            .map(|(k, n)| (*k, n.load(Ordering::Relaxed)))
            .filter(|(_, n)| *n > 0)
            .collect()
    }

    /// A REST fault for a depth snapshot of `feed` at `path`, when one is still due (counted
    /// and logged).
    pub fn rest_failure(&self, feed: Option<Feed>, path: &str) -> Option<(RestFailure, Duration)> {
        let mut rest = self.rest.lock().unwrap_or_else(|e| e.into_inner());
        let (spec, left) = rest
            .iter_mut()
            .find(|(s, left)| *left > 0 && feed.is_none_or(|f| s.hits(f)))?;
        *left -= 1;
        let failure = spec.rest;
        let secs = spec.secs;
        drop(rest);
        self.fired(
            FaultKind::Rest,
            0,
            feed.unwrap_or(Feed::BinanceFutures),
            format_args!("snapshot {path} fails with {failure:?}"),
        );
        Some((failure, secs))
    }
}

/// What the WebSocket loop does this turn ([`ConnFaults::control`]).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Control {
    /// Carry on.
    Run,
    /// Send nothing and read nothing (a stall).
    Pause,
    /// Drop the TCP connection now, without a close frame.
    Disconnect,
    /// Start a closing handshake with this code.
    Close(u16),
    /// Send one text frame of this many bytes, then carry on.
    Oversized(usize),
}

#[derive(Debug)]
struct Active {
    spec: FaultSpec,
    /// Matching frames seen.
    seen: u64,
    /// An `at` fault fired on this connection.
    fired: bool,
    /// `stall`: until when.
    until: Option<Instant>,
}

/// One connection's faults.
#[derive(Debug)]
pub struct ConnFaults {
    faults: Vec<Active>,
    opened: Instant,
    feed: Feed,
    conn: u64,
    rng: Rng,
    /// `reorder`: a book delta held back to go out after the next delta of the same book,
    /// with that book's topic and when it was held.
    held: Option<(Utf8Bytes, String, Instant)>,
    /// `slow`: start of the current one-second window and bytes sent in it.
    window: (Instant, u64),
    /// Frames hit, any kind.
    pub hits: u64,
}

impl ConnFaults {
    /// The faults of `specs` that hit `feed`, for connection `conn` opened now; `None` when
    /// none does (REST faults are not per connection).
    pub fn new(specs: &[FaultSpec], feed: Feed, conn: u64) -> Option<ConnFaults> {
        let faults: Vec<Active> = specs
            .iter()
            .filter(|s| s.kind != FaultKind::Rest && s.hits(feed))
            .map(|s| Active {
                spec: s.clone(),
                seen: 0,
                fired: false,
                until: None,
            })
            .collect();
        if faults.is_empty() {
            return None;
        }
        let seed = faults.iter().map(|a| a.spec.seed).fold(conn, |a, s| a ^ s);
        let now = Instant::now();
        Some(ConnFaults {
            faults,
            opened: now,
            feed,
            conn,
            rng: Rng::new(seed),
            held: None,
            window: (now, 0),
            hits: 0,
        })
    }

    /// The time-triggered faults (`stall`, `disconnect`, `close`, `oversized`) at `now`.
    pub fn control(&mut self, now: Instant, log: &FaultLog) -> Control {
        let age = now.saturating_duration_since(self.opened);
        let mut out = Control::Run;
        for a in &mut self.faults {
            if let Some(until) = a.until {
                if now < until {
                    return Control::Pause;
                }
                a.until = None;
            }
            let timed = matches!(
                a.spec.kind,
                FaultKind::Stall
                    | FaultKind::Disconnect
                    | FaultKind::Close
                    | FaultKind::Oversized
                    | FaultKind::NoPong
            );
            // `slow` holds from the start: logged once, on the connection's first turn
            let slow = a.spec.kind == FaultKind::Slow;
            if !(timed || slow) || a.fired || (timed && age < a.spec.at) {
                continue;
            }
            a.fired = true;
            self.hits += 1;
            let (conn, feed) = (self.conn, self.feed);
            match a.spec.kind {
                FaultKind::NoPong => log.fired(
                    a.spec.kind,
                    conn,
                    feed,
                    format_args!("client frames (pings) go unread and unanswered from now on"),
                ),
                FaultKind::Slow => log.fired(
                    a.spec.kind,
                    conn,
                    feed,
                    format_args!("data throttled to {} bytes/s", a.spec.bytes_per_s),
                ),
                FaultKind::Stall => {
                    a.until = Some(now + a.spec.secs);
                    log.fired(
                        a.spec.kind,
                        conn,
                        feed,
                        format_args!("stalls for {:.1} s", a.spec.secs.as_secs_f64()),
                    );
                    return Control::Pause;
                }
                FaultKind::Disconnect => {
                    log.fired(a.spec.kind, conn, feed, format_args!("TCP dropped"));
                    return Control::Disconnect;
                }
                FaultKind::Close => {
                    log.fired(
                        a.spec.kind,
                        conn,
                        feed,
                        format_args!("close frame {}", a.spec.code),
                    );
                    return Control::Close(a.spec.code);
                }
                FaultKind::Oversized => {
                    log.fired(
                        a.spec.kind,
                        conn,
                        feed,
                        format_args!("one frame of {} bytes", a.spec.bytes),
                    );
                    out = Control::Oversized(a.spec.bytes);
                }
                _ => {}
            }
        }
        out
    }

    /// True while client frames must go unread (`no-pong` from its `at` on, or a stall).
    pub fn reads_paused(&self, now: Instant) -> bool {
        let age = now.saturating_duration_since(self.opened);
        self.faults.iter().any(|a| {
            (a.spec.kind == FaultKind::NoPong && age >= a.spec.at)
                || a.until.is_some_and(|u| now < u)
        })
    }

    /// `slow`: true when data may be sent at `now` (the current second's budget is not spent).
    pub fn may_send(&mut self, now: Instant) -> bool {
        let Some(limit) = self
            .faults
            .iter()
            .filter(|a| a.spec.kind == FaultKind::Slow)
            .map(|a| a.spec.bytes_per_s)
            .min()
        else {
            return true;
        };
        if now.saturating_duration_since(self.window.0) >= Duration::from_secs(1) {
            self.window = (now, 0);
        }
        self.window.1 < limit
    }

    /// One oversized frame's text: a JSON object padded to `bytes` bytes.
    pub fn oversized_frame(bytes: usize) -> Utf8Bytes {
        let head = "{\"fault\":\"oversized\",\"pad\":\"";
        let pad = bytes.saturating_sub(head.len() + 2);
        let mut s = String::with_capacity(bytes);
        s.push_str(head);
        s.extend(std::iter::repeat_n('x', pad));
        s.push_str("\"}");
        Utf8Bytes::from(s)
    }

    /// Passes one data frame through the per-frame faults (`gap`, `checksum`, `garbage`,
    /// `dup`, `reorder`), calling `send` with what goes out (nothing, the frame, a changed
    /// frame, or two frames). `book_delta`: the frame is a book delta (what `gap` drops).
    pub fn on_frame(
        &mut self,
        frame: Utf8Bytes,
        book_delta: bool,
        log: &FaultLog,
        mut send: impl FnMut(Utf8Bytes),
    ) {
        self.window.1 += frame.len() as u64;
        let mut frame = Some(frame);
        let mut twice = false;
        let mut hold = false;
        let (conn, feed) = (self.conn, self.feed);
        for a in &mut self.faults {
            let Some(f) = frame.as_ref() else { break };
            let matches = match a.spec.kind {
                FaultKind::Gap => book_delta,
                // one held at a time; a delta whose book cannot be told is not held
                FaultKind::Reorder => {
                    book_delta && self.held.is_none() && book_topic(feed, f.as_str()).is_some()
                }
                FaultKind::Checksum => checksum_span(f.as_str()).is_some(),
                FaultKind::Garbage | FaultKind::Dup => true,
                _ => false,
            };
            if !matches {
                continue;
            }
            a.seen += 1;
            if a.seen % a.spec.every != 0 {
                continue;
            }
            self.hits += 1;
            let what = summary(f.as_str());
            match a.spec.kind {
                FaultKind::Gap => {
                    log.fired(a.spec.kind, conn, feed, format_args!("dropped {what}"));
                    frame = None;
                }
                FaultKind::Checksum => {
                    log.fired(a.spec.kind, conn, feed, format_args!("corrupted {what}"));
                    frame = Some(corrupt_checksum(f.as_str()));
                }
                FaultKind::Garbage => {
                    log.fired(a.spec.kind, conn, feed, format_args!("replaced {what}"));
                    frame = Some(garbage(f.as_str(), &mut self.rng));
                }
                FaultKind::Dup => {
                    log.fired(a.spec.kind, conn, feed, format_args!("sent twice {what}"));
                    twice = true;
                }
                FaultKind::Reorder => {
                    log.fired(
                        a.spec.kind,
                        conn,
                        feed,
                        format_args!("held behind the next delta of its book {what}"),
                    );
                    hold = true;
                }
                _ => {}
            }
        }
        let Some(frame) = frame else { return };
        if twice {
            send(frame.clone());
        }
        if hold {
            if let Some(topic) = book_topic(feed, frame.as_str()) {
                let topic = topic.to_string();
                self.held = Some((frame, topic, Instant::now()));
                return;
            }
        }
        let swap = book_delta
            && self.held.as_ref().is_some_and(|(_, topic, _)| {
                book_topic(feed, frame.as_str()).is_some_and(|t| t == topic.as_str())
            });
        send(frame);
        if swap {
            if let Some((h, _, _)) = self.held.take() {
                send(h);
            }
        }
    }

    /// A delta held for `reorder` whose book sent no next delta within 200 ms: it goes out
    /// now (late, not swapped). Called at the end of each turn.
    pub fn take_held(&mut self) -> Option<Utf8Bytes> {
        let (_, _, since) = self.held.as_ref()?;
        if since.elapsed() < Duration::from_millis(200) {
            return None;
        }
        self.held.take().map(|(h, _, _)| h)
    }
}

/// A short description of a frame for the log: its first 80 characters.
fn summary(text: &str) -> String {
    let end = text.char_indices().nth(80).map_or(text.len(), |(i, _)| i);
    format!(
        "{}{}",
        &text[..end],
        if end < text.len() { "..." } else { "" }
    )
}

/// The byte range of the integer after `"checksum":`.
fn checksum_span(text: &str) -> Option<(usize, usize)> {
    let key = "\"checksum\":";
    let start = text.find(key)? + key.len();
    let bytes = text.as_bytes();
    let mut end = start;
    if bytes.get(end) == Some(&b'-') {
        end += 1;
    }
    while bytes.get(end).is_some_and(u8::is_ascii_digit) {
        end += 1;
    }
    (end > start).then_some((start, end))
}

fn corrupt_checksum(text: &str) -> Utf8Bytes {
    let Some((start, end)) = checksum_span(text) else {
        return Utf8Bytes::from(text.to_string());
    };
    let value: i64 = text[start..end].parse().unwrap_or(0);
    // OKX's checksum is a signed 32-bit CRC: stay in range
    let wrong = (value as i32).wrapping_add(1);
    Utf8Bytes::from(format!("{}{wrong}{}", &text[..start], &text[end..]))
}

/// A malformed replacement for `text`: cut in half, unbalanced, or not JSON at all.
fn garbage(text: &str, rng: &mut Rng) -> Utf8Bytes {
    let half = text
        .char_indices()
        .nth(text.chars().count() / 2)
        .map_or(0, |(i, _)| i);
    Utf8Bytes::from(match rng.below(3) {
        0 => text[..half].to_string(),
        1 => format!("{}}}]{{\"", &text[..half]),
        _ => format!("garbage {}", rng.next_u64()),
    })
}

/// The book a delta frame of `feed` belongs to, as its text names it: Binance `stream`,
/// Bybit `topic`, OKX `instId`, Deribit `channel`.
pub fn book_topic(feed: Feed, text: &str) -> Option<&str> {
    let key = match feed {
        Feed::BinanceFutures | Feed::BinanceDelivery | Feed::BinanceSpot => "\"stream\":\"",
        Feed::BybitLinear | Feed::BybitInverse | Feed::BybitSpot => "\"topic\":\"",
        Feed::Okx => "\"instId\":\"",
        Feed::Deribit => "\"channel\":\"",
    };
    let start = text.find(key)? + key.len();
    let len = text[start..].find('"')?;
    Some(&text[start..start + len])
}

/// True for a frame of `feed` that carries a book delta, judged by its text (the recorded
/// flow, whose frames are not generated by kind): Binance `depthUpdate`, Bybit `delta` of an
/// `orderbook` topic, OKX `books` with `"action":"update"`, Deribit `book.` changes.
pub fn is_book_delta(feed: Feed, text: &str) -> bool {
    match feed {
        Feed::BinanceFutures | Feed::BinanceDelivery | Feed::BinanceSpot => {
            text.contains("\"depthUpdate\"")
        }
        Feed::BybitLinear | Feed::BybitInverse | Feed::BybitSpot => {
            text.contains("\"orderbook.") && text.contains("\"type\":\"delta\"")
        }
        Feed::Okx => text.contains("\"books") && text.contains("\"action\":\"update\""),
        Feed::Deribit => text.contains("\"book.") && text.contains("\"type\":\"change\""),
    }
}

/// What a WebSocket loop does after [`before_turn`].
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) enum Turn {
    /// Read, send and flush as usual.
    Go,
    /// Skip this turn (stalled; the loop has slept).
    Skip,
    /// End the session now, with no close frame.
    End,
}

/// Applies the time-triggered faults to one turn of a simulator WebSocket loop: a stall
/// sleeps and skips the turn, a `disconnect` ends the session, a `close` starts the closing
/// handshake (`closing` set), an `oversized` frame is queued.
pub(crate) fn before_turn(
    faults: &mut ConnFaults,
    log: &FaultLog,
    ws: &mut tungstenite::WebSocket<super::tls::Stream>,
    now: Instant,
    closing: &mut Option<Instant>,
) -> Turn {
    use tungstenite::protocol::CloseFrame;
    use tungstenite::protocol::frame::coding::CloseCode;
    let would_block = |e: &tungstenite::Error| matches!(e, tungstenite::Error::Io(io) if io.kind() == std::io::ErrorKind::WouldBlock);
    if closing.is_some() {
        return Turn::Go;
    }
    match faults.control(now, log) {
        Control::Run => Turn::Go,
        Control::Pause => {
            std::thread::sleep(Duration::from_millis(5));
            Turn::Skip
        }
        Control::Disconnect => Turn::End,
        Control::Close(code) => {
            *closing = Some(now);
            let frame = CloseFrame {
                code: CloseCode::from(code),
                reason: "fault injected".into(),
            };
            match ws.close(Some(frame)) {
                Err(e) if !would_block(&e) => Turn::End,
                _ => Turn::Go,
            }
        }
        Control::Oversized(bytes) => {
            match ws.write(tungstenite::Message::Text(ConnFaults::oversized_frame(
                bytes,
            ))) {
                Err(e) if !would_block(&e) => Turn::End,
                _ => Turn::Go,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_parse_with_defaults_and_reject_bad_keys() {
        let s: FaultSpec = "gap:feed=bybit-linear,every=7".parse().unwrap();
        assert_eq!(
            (s.kind, s.feed, s.every),
            (FaultKind::Gap, Some(Feed::BybitLinear), 7)
        );
        let s: FaultSpec = "rest:status=timeout,count=2".parse().unwrap();
        assert_eq!((s.rest, s.count), (RestFailure::Timeout, 2));
        let s: FaultSpec = "stall".parse().unwrap();
        assert_eq!(
            (s.at, s.secs),
            (Duration::from_secs(5), Duration::from_secs(10))
        );
        for bad in [
            "nope",
            "gap:bytes=3",
            "gap:every=0",
            "gap:every=1,every=2",
            "close:code=99",
            "gap:feed=nasdaq",
            "rest:status=200",
            "stall:secs=-1",
            "gap:every",
        ] {
            assert!(bad.parse::<FaultSpec>().is_err(), "{bad}");
        }
    }

    fn run(faults: &mut ConnFaults, frames: &[&str], delta: bool) -> Vec<String> {
        let log = FaultLog::new(&[], true);
        let mut out = Vec::new();
        for f in frames {
            faults.on_frame(Utf8Bytes::from(f.to_string()), delta, &log, |x| {
                out.push(x.as_str().to_string())
            });
        }
        if let Some((h, _, _)) = faults.held.take() {
            out.push(h.as_str().to_string());
        }
        out
    }

    fn conn(spec: &str) -> ConnFaults {
        ConnFaults::new(&[spec.parse().unwrap()], Feed::Okx, 1).unwrap()
    }

    #[test]
    fn frame_faults_hit_every_nth_frame() {
        let frames = ["a", "b", "c", "d", "e"];
        assert_eq!(
            run(&mut conn("gap:every=2"), &frames, true),
            ["a", "c", "e"]
        );
        assert_eq!(run(&mut conn("gap:every=2"), &frames, false), frames);
        assert_eq!(
            run(&mut conn("dup:every=2"), &frames, false),
            ["a", "b", "b", "c", "d", "d", "e"]
        );
        // reorder: the 2nd delta waits for the next delta of its own book
        let deltas = [
            r#"{"arg":{"instId":"A"},"n":1}"#,
            r#"{"arg":{"instId":"A"},"n":2}"#,
            r#"{"arg":{"instId":"B"},"n":1}"#,
            r#"{"arg":{"instId":"A"},"n":3}"#,
            r#"{"arg":{"instId":"A"},"n":4}"#,
        ];
        let n = |s: &String| {
            let v: serde_json::Value = serde_json::from_str(s).unwrap();
            format!("{}{}", v["n"], v["arg"]["instId"].as_str().unwrap())
        };
        let out = run(&mut conn("reorder:every=2"), &deltas, true);
        assert_eq!(
            out.iter().map(n).collect::<Vec<_>>(),
            ["1A", "1B", "3A", "2A", "4A"]
        );
        assert_eq!(run(&mut conn("reorder:every=2"), &frames, false), frames);
        let g = run(&mut conn("garbage:every=5"), &["{\"a\":1}"; 5], false);
        assert!(serde_json::from_str::<serde_json::Value>(&g[4]).is_err());
        assert_eq!(g[..4], ["{\"a\":1}"; 4]);
    }

    #[test]
    fn checksum_is_off_by_one_and_stays_an_i32() {
        let out = run(
            &mut conn("checksum:every=1"),
            &[
                r#"{"data":[{"checksum":-5,"seqId":1}]}"#,
                r#"{"checksum":2147483647}"#,
            ],
            false,
        );
        assert_eq!(
            out,
            [
                r#"{"data":[{"checksum":-4,"seqId":1}]}"#,
                r#"{"checksum":-2147483648}"#
            ]
        );
    }

    #[test]
    fn timed_faults_fire_once_per_connection() {
        let log = FaultLog::new(&[], true);
        let mut c = conn("stall:at=0,secs=0.05");
        let t0 = Instant::now();
        assert_eq!(c.control(t0, &log), Control::Pause);
        assert!(c.reads_paused(t0));
        assert_eq!(
            c.control(t0 + Duration::from_millis(60), &log),
            Control::Run
        );
        assert!(!c.reads_paused(t0 + Duration::from_millis(60)));
        let mut c = conn("close:at=0,code=4000");
        assert_eq!(c.control(Instant::now(), &log), Control::Close(4000));
        assert_eq!(c.control(Instant::now(), &log), Control::Run);
        assert!(ConnFaults::new(&["gap:feed=deribit".parse().unwrap()], Feed::Okx, 1).is_none());
        // no-pong from `at` on, logged once; slow from the first turn, logged once
        let mut c = conn("no-pong:at=0.05");
        assert_eq!(c.control(t0, &log), Control::Run);
        assert!(!c.reads_paused(t0));
        let later = t0 + Duration::from_millis(60);
        assert_eq!(c.control(later, &log), Control::Run);
        assert_eq!(c.control(later, &log), Control::Run);
        assert!(c.reads_paused(later));
        let mut c = conn("slow:bytes_per_s=100");
        assert_eq!(c.control(Instant::now(), &log), Control::Run);
        assert_eq!(c.control(Instant::now(), &log), Control::Run);
        assert_eq!(
            log.counts(),
            vec![
                (FaultKind::Stall, 1),
                (FaultKind::Close, 1),
                (FaultKind::NoPong, 1),
                (FaultKind::Slow, 1)
            ]
        );
    }

    #[test]
    fn rest_faults_fail_the_next_count_snapshots() {
        let log = FaultLog::new(&["rest:count=2,status=500".parse().unwrap()], true);
        let f = Some(Feed::BinanceFutures);
        assert!(log.rest_failure(f, "/fapi/v1/depth").is_some());
        assert!(log.rest_failure(f, "/fapi/v1/depth").is_some());
        assert!(log.rest_failure(f, "/fapi/v1/depth").is_none());
    }

    #[test]
    fn oversized_frames_have_the_asked_size_and_parse() {
        let f = ConnFaults::oversized_frame(1000);
        assert_eq!(f.len(), 1000);
        assert!(serde_json::from_str::<serde_json::Value>(f.as_str()).is_ok());
    }
}

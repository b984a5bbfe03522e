//! tardis-machine's replay API over the engine's own captures: `GET /replay-normalized` on the
//! HTTP listener (`--metrics-listen`), newline-delimited JSON, with the options and errors of
//! tardis-machine (`src/http/replaynormalized.ts`) and tardis-node (`src/replay.ts`
//! `validateReplayOptions`, `src/handy.ts` `parseAsUTCDate`).
//!
//! The captures are the recordings in `[replay] dir` (the cryptofeed capture format that
//! `pinfeed replay` and `pinfeed simulate` read). A request runs them through the same
//! parsers and books as `pinfeed replay` (one [`Replay`] per request, on a thread of its own
//! off the hot path) and answers with exactly the lines `pinfeed replay --events-out` writes,
//! kept when they match one of the request's options:
//! - `exchange`: required, one of pinfeed's tardis exchange ids, else tardis's `Invalid
//!   "exchange" argument` error (listing pinfeed's ids, not tardis's 50);
//! - `symbols`: optional, matched without regard to case; absent or empty: every symbol;
//! - `dataTypes`: `trade`, `book_change`, `derivative_ticker`, `liquidation`,
//!   `option_summary` (and pinfeed's `book_ticker`); unknown names are ignored as tardis
//!   ignores them; a computed type (`book_snapshot_*`, `quote*`, `trade_bar_*`) is refused
//!   with an error naming it: pinfeed computes those on the live fan-out only, so far;
//! - `from`, `to`: required date strings (`YYYY-MM-DD`, `YYYY-MM-DDTHH:MM[:SS[.fff]]`, `Z`
//!   optional: read as UTC), truncated to the minute as tardis does; a line is kept when its
//!   `localTimestamp` is in `[from, to)`; `to` before `from` is tardis's combination error.
//!
//! Several options make one stream merged by `localTimestamp` (ties: option order), as
//! tardis-node's `combine`; within one option lines keep the captures' order (file name
//! order, then capture order), as `--events-out` writes them. The answer is built whole
//! before its first byte (so an error still gets its status), bounded by
//! `[replay] max_buffer_bytes`, then written in chunks of 32 lines (HTTP chunked encoding),
//! as fast as the client reads, each write bounded by `[replay] write_timeout_ms`. At most
//! `[replay] max_streams` run at once; one more is answered 503. Errors: status 500 with
//! tardis-machine's body `{"message":"..."}`. Every outcome is counted ([`ReplayStats`]).

use std::io::Write;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use crate::fanout::options::{self, DataType, OptionsError};
use crate::metrics::{Reply, Takeover};
use crate::model::Exchange;
use crate::replay::{LineKind, Replay};
use crate::sim::recording::Recording;

/// Lines per write, as tardis-machine batches them.
const BATCH_LINES: usize = 32;

/// Limits of the replay API (`[replay]`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReplayLimits {
    /// Streams served at once; one more gets 503.
    pub max_streams: usize,
    /// Largest answer, bytes; a range that would pass it gets 500.
    pub max_buffer_bytes: usize,
    /// One write to a client that does not read: past it the stream is dropped.
    pub write_timeout: Duration,
}

/// Counters of the replay API (monotonic, `Relaxed`).
#[derive(Debug, Default)]
pub struct ReplayStats {
    /// Requests that reached `/replay-normalized`.
    pub requests: AtomicU64,
    /// Answered 503: `max_streams` were running.
    pub refused_busy: AtomicU64,
    /// Answered 500: bad options, an unreadable capture, a range over `max_buffer_bytes`.
    pub errors: AtomicU64,
    /// Streams written to their end.
    pub completed: AtomicU64,
    /// Streams the client stopped taking (a write failed or timed out).
    pub aborted: AtomicU64,
    /// Lines sent.
    pub messages: AtomicU64,
    /// Body bytes sent (without chunk framing).
    pub bytes: AtomicU64,
}

/// An error answer: HTTP status and tardis-machine's `message`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReplayApiError {
    /// HTTP status.
    pub status: u16,
    /// The `message` of the body.
    pub message: String,
}

impl ReplayApiError {
    fn new(message: impl Into<String>) -> ReplayApiError {
        ReplayApiError {
            status: 500,
            message: message.into(),
        }
    }

    /// The error as JavaScript's `e.toString()` prints it (what tardis-machine's WebSocket
    /// close reason carries): `Error: message`, or the message itself when it already names
    /// its error (`SyntaxError: ...`, `TypeError: ...`).
    pub fn js_error(&self) -> String {
        if self.message.starts_with("SyntaxError:") || self.message.starts_with("TypeError:") {
            self.message.clone()
        } else {
            format!("Error: {}", self.message)
        }
    }

    /// tardis-machine's error body: `{"message":"..."}`.
    pub fn body(&self) -> String {
        serde_json::json!({ "message": self.message }).to_string()
    }
}

/// One validated option: what lines it keeps.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReplayFilter {
    /// Its exchange.
    pub exchange: Exchange,
    /// Symbols to keep (any case); empty: all.
    pub symbols: Vec<String>,
    /// Message types to keep.
    pub kinds: Vec<LineKind>,
    /// First minute kept, unix ns.
    pub from_ns: i64,
    /// End of the range (exclusive), unix ns.
    pub to_ns: i64,
}

impl ReplayFilter {
    fn keeps(&self, exchange: Exchange, symbol: &str, kind: LineKind, local_ts_ns: i64) -> bool {
        exchange == self.exchange
            && (self.from_ns..self.to_ns).contains(&local_ts_ns)
            && self.kinds.contains(&kind)
            && (self.symbols.is_empty()
                || self.symbols.iter().any(|s| s.eq_ignore_ascii_case(symbol)))
    }
}

/// A tardis replay date: `YYYY-MM-DD`, or that with `THH:MM`, `:SS` and `.fraction`, and an
/// optional `Z` (UTC either way, as tardis-node's `parseAsUTCDate` appends one), truncated to
/// the minute; unix ns. `None` for anything else (JavaScript's `Date.parse` accepts more
/// shapes; these are the ones the tardis docs use).
pub fn parse_date_ns(text: &str) -> Option<i64> {
    let s = text.strip_suffix('Z').unwrap_or(text);
    let b = s.as_bytes();
    let digits = |r: std::ops::Range<usize>| -> Option<i64> {
        let part = s.get(r)?;
        part.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| part.parse().ok())?
    };
    if b.len() < 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let (y, mo, d) = (digits(0..4)?, digits(5..7)?, digits(8..10)?);
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let month_days = [
        31,
        if leap { 29 } else { 28 },
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ];
    if !(1..=12).contains(&mo) || d < 1 || d > month_days[(mo - 1) as usize] {
        return None;
    }
    let (mut h, mut mi) = (0, 0);
    if b.len() > 10 {
        if b[10] != b'T' || b.len() < 16 || b[13] != b':' {
            return None;
        }
        (h, mi) = (digits(11..13)?, digits(14..16)?);
        if h > 23 || mi > 59 {
            return None;
        }
        let rest = &s[16..];
        if !rest.is_empty() {
            // `:SS`, then an optional `.fraction`: checked, then dropped (minute precision)
            let sec = rest.strip_prefix(':')?;
            let (ss, frac) = sec.split_once('.').unwrap_or((sec, "0"));
            let ok = ss.len() == 2
                && ss.parse::<u8>().is_ok_and(|v| v < 60)
                && ss.bytes().all(|c| c.is_ascii_digit())
                && !frac.is_empty()
                && frac.bytes().all(|c| c.is_ascii_digit());
            if !ok {
                return None;
            }
        }
    }
    let days = crate::fanout::encode::days_from_civil(y, mo, d);
    Some((days * 86_400 + h * 3600 + mi * 60) * 1_000_000_000)
}

/// JavaScript's rendering of an absent option (`${undefined}`).
fn js_text(v: &Option<String>) -> &str {
    v.as_deref().unwrap_or("undefined")
}

/// Parses and validates `options` (the request's query string), as tardis-node validates a
/// replay: one [`ReplayFilter`] per option object, in order; `[]` gives none (an empty
/// stream).
///
/// # Errors
/// The first invalid option's tardis error (status 500).
pub fn parse_request(query: &str) -> Result<Vec<ReplayFilter>, ReplayApiError> {
    let entries = match options::parse_query(query) {
        Ok(entries) => entries,
        Err(OptionsError::Empty) => return Ok(Vec::new()),
        Err(OptionsError::Malformed(reason)) => return Err(ReplayApiError::new(reason)),
    };
    let mut filters = Vec::with_capacity(entries.len());
    for e in &entries {
        let Some(exchange) = Exchange::from_id(&e.exchange) else {
            let ids: Vec<&str> = Exchange::ALL.iter().map(|x| x.id()).collect();
            return Err(ReplayApiError::new(format!(
                "Invalid \"exchange\" argument: {}. Please provide one of the following \
                 exchanges: {}.",
                e.exchange,
                ids.join(", ")
            )));
        };
        let from_ns = e.from.as_deref().and_then(parse_date_ns).ok_or_else(|| {
            ReplayApiError::new(format!(
                "Invalid \"from\" argument: {}. Please provide valid date string.",
                js_text(&e.from)
            ))
        })?;
        let to_ns = e.to.as_deref().and_then(parse_date_ns).ok_or_else(|| {
            ReplayApiError::new(format!(
                "Invalid \"to\" argument: {}. Please provide valid date string.",
                js_text(&e.to)
            ))
        })?;
        if to_ns < from_ns {
            return Err(ReplayApiError::new(
                "Invalid \"to\" and \"from\" arguments combination. Please provide \"to\" date \
                 that is later than \"from\" date.",
            ));
        }
        let mut kinds = Vec::new();
        for t in &e.data_types {
            let kind = match t {
                DataType::Trade => LineKind::Trade,
                DataType::BookChange => LineKind::BookChange,
                DataType::BookTicker => LineKind::BookTicker,
                DataType::DerivativeTicker => LineKind::DerivativeTicker,
                DataType::Liquidation => LineKind::Liquidation,
                DataType::OptionSummary => LineKind::OptionSummary,
                DataType::BookSnapshot(s) => return Err(computed(&s.name)),
                DataType::TradeBar(b) => return Err(computed(&b.name)),
                DataType::Imbalance(n) => return Err(computed(&format!("imbalance_{n}"))),
                DataType::Unsupported { .. } | DataType::Unknown(_) => continue,
            };
            if !kinds.contains(&kind) {
                kinds.push(kind);
            }
        }
        if kinds.is_empty() {
            return Err(ReplayApiError::new(
                "Can't normalize data without any normalizers provided",
            ));
        }
        filters.push(ReplayFilter {
            exchange,
            symbols: e.symbols.clone().unwrap_or_default(),
            kinds,
            from_ns,
            to_ns,
        });
    }
    Ok(filters)
}

fn computed(name: &str) -> ReplayApiError {
    ReplayApiError::new(format!(
        "pinfeed: {name} is computed by the live stream only; replay serves trade, \
         book_change, book_ticker, derivative_ticker, liquidation and option_summary"
    ))
}

/// The capture files of `dir` (`*.jsonl`, `*.jsonl.zst`), sorted by name.
///
/// # Errors
/// The directory cannot be read.
pub fn capture_files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
            p.is_file() && (name.ends_with(".jsonl") || name.ends_with(".jsonl.zst"))
        })
        .collect();
    files.sort();
    Ok(files)
}

/// The lines `filters` keep from the captures in `dir`, merged: one `\n`-terminated JSON
/// line each. Returns the body and its line count.
///
/// # Errors
/// An unreadable capture, a capture no venue module serves, or a body over
/// `max_buffer_bytes`.
pub fn collect(
    dir: &Path,
    filters: &[ReplayFilter],
    max_buffer_bytes: usize,
) -> Result<(Vec<u8>, u64), ReplayApiError> {
    if filters.is_empty() {
        return Ok((Vec::new(), 0));
    }
    let files = capture_files(dir)
        .map_err(|e| ReplayApiError::new(format!("replay dir {}: {e}", dir.display())))?;
    let mut recordings = Vec::with_capacity(files.len());
    for f in &files {
        recordings.push(Recording::open(f).map_err(|e| ReplayApiError::new(e.to_string()))?);
    }
    let mut replay =
        Replay::prepare(&recordings).map_err(|e| ReplayApiError::new(e.to_string()))?;
    drop(recordings);
    // per option: (localTimestamp, offset, length) into `text`
    let mut kept: Vec<Vec<(i64, usize, usize)>> = vec![Vec::new(); filters.len()];
    let mut text: Vec<u8> = Vec::new();
    let mut too_large = false;
    let result = replay.run_lines(
        true,
        |meta, names, line| {
            let (exchange, symbol) = names.name(meta.instrument);
            let mut stored: Option<(usize, usize)> = None;
            for (i, f) in filters.iter().enumerate() {
                if !f.keeps(exchange, symbol, meta.kind, meta.local_ts_ns) {
                    continue;
                }
                let at = match stored {
                    Some(at) => at,
                    None => {
                        if text.len() + line.len() + 1 > max_buffer_bytes {
                            too_large = true;
                            return Err(std::io::Error::other("over max_buffer_bytes"));
                        }
                        text.extend_from_slice(line);
                        text.push(b'\n');
                        let at = (text.len() - line.len() - 1, line.len() + 1);
                        stored = Some(at);
                        at
                    }
                };
                kept[i].push((meta.local_ts_ns, at.0, at.1));
            }
            Ok(())
        },
        |_, _, _| {},
    );
    if too_large {
        return Err(ReplayApiError::new(format!(
            "pinfeed: the range is over [replay] max_buffer_bytes ({max_buffer_bytes} bytes); \
             ask for a shorter one"
        )));
    }
    result.map_err(|e| ReplayApiError::new(e.to_string()))?;
    if let [only] = &kept[..] {
        // one option: `text` holds its lines, in order, each once
        return Ok((text, only.len() as u64));
    }
    // merge by localTimestamp, ties in option order (a line two options keep is sent twice,
    // as tardis sends each option's stream in full)
    let mut heads = vec![0usize; kept.len()];
    let total: usize = kept
        .iter()
        .map(|k| k.iter().map(|e| e.2).sum::<usize>())
        .sum();
    if total > max_buffer_bytes {
        return Err(ReplayApiError::new(format!(
            "pinfeed: the range is over [replay] max_buffer_bytes ({max_buffer_bytes} bytes); \
             ask for a shorter one"
        )));
    }
    let mut body = Vec::with_capacity(total);
    let mut lines = 0u64;
    loop {
        let next = (0..kept.len())
            .filter(|&i| heads[i] < kept[i].len())
            .min_by_key(|&i| (kept[i][heads[i]].0, i));
        let Some(i) = next else { break };
        let (_, at, len) = kept[i][heads[i]];
        body.extend_from_slice(&text[at..at + len]);
        heads[i] += 1;
        lines += 1;
    }
    Ok((body, lines))
}

/// The replay API of one engine: its capture directory, limits and counters.
#[derive(Debug)]
pub struct ReplayService {
    dir: PathBuf,
    limits: ReplayLimits,
    active: AtomicUsize,
    /// What it did.
    pub stats: ReplayStats,
}

/// A running stream's claim on [`ReplayLimits::max_streams`], given back on drop.
pub struct Claim(Arc<ReplayService>);

impl Drop for Claim {
    fn drop(&mut self) {
        self.0.active.fetch_sub(1, Ordering::AcqRel);
    }
}

impl ReplayService {
    /// A service over the captures in `dir` (read per request, so files added later are
    /// served).
    pub fn new(dir: PathBuf, limits: ReplayLimits) -> ReplayService {
        ReplayService {
            dir,
            limits,
            active: AtomicUsize::new(0),
            stats: ReplayStats::default(),
        }
    }

    /// Streams running now.
    pub fn active(&self) -> usize {
        self.active.load(Ordering::Acquire)
    }

    /// Claims one of `max_streams`; `None` (counted as `refused_busy`) when all are taken.
    pub fn claim(self: &Arc<Self>) -> Option<Claim> {
        let max = self.limits.max_streams;
        self.active
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max).then_some(n + 1)
            })
            .ok()
            .map(|_| Claim(self.clone()))
            .or_else(|| {
                self.stats.refused_busy.fetch_add(1, Ordering::Relaxed);
                None
            })
    }

    /// The close reason for a stream refused by [`ReplayService::claim`].
    pub fn busy_reason(&self) -> String {
        format!(
            "pinfeed: {} replay streams are running ([replay] max_streams); try again",
            self.limits.max_streams
        )
    }

    /// `/ws-replay-normalized?{query}`, upgrade head read (`key` its `Sec-WebSocket-Key`),
    /// nothing written: a thread of its own answers the upgrade, then sends each line the
    /// options keep as one text frame and closes 1000 `WS replay-normalized finished`, as
    /// tardis-machine; bad options or a failed replay close 1011 with the JavaScript error
    /// text (`Error: ...`, at most 123 bytes). A thread that cannot be spawned drops the
    /// socket (the client sees it closed).
    pub fn ws(self: Arc<Self>, claim: Claim, stream: TcpStream, query: String, key: String) {
        self.stats.requests.fetch_add(1, Ordering::Relaxed);
        let spawned = std::thread::Builder::new()
            .name("replay-ws".into())
            .spawn(move || {
                let _claim = claim;
                self.serve_ws(stream, &query, &key);
            });
        if spawned.is_err() {
            eprintln!("pinfeed: replay: no thread for a stream");
        }
    }

    fn serve_ws(&self, stream: TcpStream, query: &str, key: &str) {
        use crate::fanout::ws;
        let _ = stream.set_write_timeout(Some(self.limits.write_timeout));
        let mut out = std::io::BufWriter::with_capacity(64 << 10, &stream);
        let mut head = Vec::with_capacity(160);
        ws::accept_response(key, &mut head);
        if out.write_all(&head).is_err() {
            self.stats.aborted.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let answer =
            parse_request(query).and_then(|f| collect(&self.dir, &f, self.limits.max_buffer_bytes));
        let mut tail = Vec::with_capacity(128);
        let sent = match answer {
            Ok((body, lines)) => {
                let mut header = [0u8; 10];
                let written = body
                    .split(|&b| b == b'\n')
                    .filter(|l| !l.is_empty())
                    .try_for_each(|line| {
                        let n = ws::frame_header(0x1, line.len(), &mut header);
                        out.write_all(&header[..n])?;
                        out.write_all(line)
                    });
                ws::close_frame(1000, "WS replay-normalized finished", &mut tail);
                written.map(|()| Some((lines, body.len() as u64)))
            }
            Err(e) => {
                self.stats.errors.fetch_add(1, Ordering::Relaxed);
                ws::close_frame(1011, &e.js_error(), &mut tail);
                Ok(None)
            }
        };
        let done = sent.and_then(|s| {
            out.write_all(&tail)?;
            out.flush()?;
            Ok(s)
        });
        drop(out);
        match done {
            Ok(sent) => {
                if let Some((lines, bytes)) = sent {
                    self.stats.completed.fetch_add(1, Ordering::Relaxed);
                    self.stats.messages.fetch_add(lines, Ordering::Relaxed);
                    self.stats.bytes.fetch_add(bytes, Ordering::Relaxed);
                }
                // the client answers the close; wait for it briefly, then close the socket
                let _ = stream.set_read_timeout(Some(Duration::from_secs(1)));
                let mut buf = [0u8; 256];
                let mut s = &stream;
                while matches!(std::io::Read::read(&mut s, &mut buf), Ok(n) if n > 0) {}
            }
            Err(_) => {
                self.stats.aborted.fetch_add(1, Ordering::Relaxed);
            }
        }
        let _ = stream.shutdown(std::net::Shutdown::Both);
    }

    /// `GET /replay-normalized?{query}` on the HTTP server thread: bad options and a full
    /// house are answered at once; otherwise the connection is taken over by a thread of its
    /// own that builds and writes the answer.
    pub fn http(self: Arc<Self>, query: &str) -> Reply {
        self.stats.requests.fetch_add(1, Ordering::Relaxed);
        let filters = match parse_request(query) {
            Ok(f) => f,
            Err(e) => {
                self.stats.errors.fetch_add(1, Ordering::Relaxed);
                return Reply::Answer((e.status, "application/json", e.body()));
            }
        };
        let Some(claim) = self.claim() else {
            let e = ReplayApiError {
                status: 503,
                message: self.busy_reason(),
            };
            return Reply::Answer((e.status, "application/json", e.body()));
        };
        let takeover: Takeover = Box::new(move |stream: TcpStream| {
            let service = claim.0.clone();
            let spawned = std::thread::Builder::new()
                .name("replay-http".into())
                .spawn(move || {
                    let _claim = claim;
                    service.serve_http(stream, &filters);
                });
            if spawned.is_err() {
                // the socket and the claim went down with the closure: the client sees a close
                eprintln!("pinfeed: replay: no thread for a stream");
            }
        });
        Reply::Stream(takeover)
    }

    fn serve_http(&self, mut stream: TcpStream, filters: &[ReplayFilter]) {
        let _ = stream.set_write_timeout(Some(self.limits.write_timeout));
        let (body, lines) = match collect(&self.dir, filters, self.limits.max_buffer_bytes) {
            Ok(b) => b,
            Err(e) => {
                self.stats.errors.fetch_add(1, Ordering::Relaxed);
                let body = e.body();
                let head = format!(
                    "HTTP/1.1 {} Internal Server Error\r\nContent-Type: application/json\r\n\
                     Content-Length: {}\r\nConnection: close\r\n\r\n",
                    e.status,
                    body.len()
                );
                let _ = stream
                    .write_all(head.as_bytes())
                    .and_then(|_| stream.write_all(body.as_bytes()));
                return;
            }
        };
        match write_chunked(&mut stream, &body) {
            Ok(()) => {
                self.stats.completed.fetch_add(1, Ordering::Relaxed);
                self.stats.messages.fetch_add(lines, Ordering::Relaxed);
                self.stats
                    .bytes
                    .fetch_add(body.len() as u64, Ordering::Relaxed);
            }
            Err(_) => {
                self.stats.aborted.fetch_add(1, Ordering::Relaxed);
            }
        }
        let _ = stream.shutdown(std::net::Shutdown::Both);
    }
}

/// Writes a 200 with `body` (whole lines) in chunks of [`BATCH_LINES`] lines.
fn write_chunked(out: &mut impl Write, body: &[u8]) -> std::io::Result<()> {
    out.write_all(
        b"HTTP/1.1 200 OK\r\nContent-Type: application/x-json-stream\r\n\
          Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
    )?;
    let mut rest = body;
    while !rest.is_empty() {
        let mut end = 0;
        for _ in 0..BATCH_LINES {
            match memchr::memchr(b'\n', &rest[end..]) {
                Some(i) => end += i + 1,
                None => {
                    end = rest.len();
                    break;
                }
            }
            if end == rest.len() {
                break;
            }
        }
        let (chunk, tail) = rest.split_at(end);
        write!(out, "{:x}\r\n", chunk.len())?;
        out.write_all(chunk)?;
        out.write_all(b"\r\n")?;
        rest = tail;
    }
    out.write_all(b"0\r\n\r\n")?;
    out.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_as_tardis_reads_them() {
        let day = 1_559_347_200_000_000_000; // 2019-06-01T00:00Z
        let minute = 60_000_000_000;
        assert_eq!(parse_date_ns("2019-06-01"), Some(day));
        assert_eq!(parse_date_ns("2019-06-01Z"), Some(day));
        assert_eq!(parse_date_ns("2019-06-01T00:01Z"), Some(day + minute));
        assert_eq!(parse_date_ns("2019-06-01T00:01"), Some(day + minute));
        // seconds and fractions are truncated to the minute
        assert_eq!(
            parse_date_ns("2019-06-01T00:01:59.999Z"),
            Some(day + minute)
        );
        assert_eq!(parse_date_ns("2020-02-29"), Some(1_582_934_400_000_000_000));
        for bad in [
            "",
            "2019",
            "2019-6-01",
            "2019-13-01",
            "2019-02-29",
            "2019-06-01T",
            "2019-06-01T24:00",
            "2019-06-01T00:60",
            "2019-06-01 00:01",
            "2019-06-01T00:01:60",
            "2019-06-01T00:01:5",
            "2019-06-01T00:01:05.",
            "x019-06-01",
            "2019-06-01T00:01ZZ",
        ] {
            assert_eq!(parse_date_ns(bad), None, "{bad:?}");
        }
    }

    fn query(options: &str) -> String {
        let mut q = String::from("options=");
        for b in options.bytes() {
            q.push_str(&format!("%{b:02X}"));
        }
        q
    }

    #[test]
    fn request_errors_are_tardis_errors() {
        let err = |o: &str| parse_request(&query(o)).unwrap_err().message;
        let e = err(
            r#"{"exchange":"ftx","dataTypes":["trade"],"from":"2019-06-01","to":"2019-06-02"}"#,
        );
        assert!(
            e.starts_with("Invalid \"exchange\" argument: ftx. Please provide one of"),
            "{e}"
        );
        assert!(e.contains("binance-futures"), "{e}");
        let e = err(r#"{"exchange":"bybit","dataTypes":["trade"],"to":"2019-06-02"}"#);
        assert_eq!(
            e,
            "Invalid \"from\" argument: undefined. Please provide valid date string."
        );
        let e = err(r#"{"exchange":"bybit","dataTypes":["trade"],"from":"2019-06-01","to":"x"}"#);
        assert_eq!(
            e,
            "Invalid \"to\" argument: x. Please provide valid date string."
        );
        let e = err(
            r#"{"exchange":"bybit","dataTypes":["trade"],"from":"2019-06-02","to":"2019-06-01"}"#,
        );
        assert!(
            e.starts_with("Invalid \"to\" and \"from\" arguments combination."),
            "{e}"
        );
        let e = err(
            r#"{"exchange":"bybit","dataTypes":["book_snapshot_10_1s"],"from":"2019-06-01","to":"2019-06-02"}"#,
        );
        assert!(e.contains("book_snapshot_10_1s"), "{e}");
        let e = err(
            r#"{"exchange":"bybit","dataTypes":["nope"],"from":"2019-06-01","to":"2019-06-02"}"#,
        );
        assert_eq!(e, "Can't normalize data without any normalizers provided");
        assert!(err("{").starts_with("SyntaxError"));
        assert!(parse_request(&query("[]")).unwrap().is_empty());
        let f = parse_request(&query(
            r#"[{"exchange":"bybit","symbols":["btcusdt"],"dataTypes":["trade","nope","trade"],"from":"2019-06-01","to":"2019-06-01T00:02"}]"#,
        ))
        .unwrap();
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].kinds, vec![LineKind::Trade]);
        assert!(f[0].keeps(Exchange::Bybit, "BTCUSDT", LineKind::Trade, f[0].from_ns));
        assert!(!f[0].keeps(Exchange::Bybit, "BTCUSDT", LineKind::Trade, f[0].to_ns));
        assert!(!f[0].keeps(Exchange::Bybit, "ETHUSDT", LineKind::Trade, f[0].from_ns));
        assert!(!f[0].keeps(Exchange::Deribit, "BTCUSDT", LineKind::Trade, f[0].from_ns));
        assert!(!f[0].keeps(
            Exchange::Bybit,
            "BTCUSDT",
            LineKind::BookChange,
            f[0].from_ns
        ));
    }

    #[test]
    fn an_answer_over_max_buffer_bytes_is_an_error() {
        let dir = crate::sim::recording::data_dir().join("recordings");
        let q = query(
            r#"{"exchange":"deribit","dataTypes":["trade","book_change"],"from":"2000-01-01","to":"2100-01-01"}"#,
        );
        let filters = parse_request(&q).unwrap();
        let (body, lines) = collect(&dir, &filters, 512 << 20).unwrap();
        assert!(
            lines > 10 && body.len() > 4096,
            "{lines} lines, {} bytes",
            body.len()
        );
        // one byte short of the whole answer: refused, nothing partial
        let e = collect(&dir, &filters, body.len() - 1).unwrap_err();
        assert_eq!(e.status, 500);
        assert!(e.message.contains("max_buffer_bytes"), "{}", e.message);
        assert_eq!(collect(&dir, &filters, body.len()).unwrap().0, body);
    }

    #[test]
    fn max_streams_bounds_claims() {
        let service = Arc::new(ReplayService::new(
            PathBuf::from("."),
            ReplayLimits {
                max_streams: 2,
                max_buffer_bytes: 1 << 20,
                write_timeout: Duration::from_secs(1),
            },
        ));
        let a = service.claim().unwrap();
        let b = service.claim().unwrap();
        assert!(service.claim().is_none());
        assert_eq!(service.stats.refused_busy.load(Ordering::Relaxed), 1);
        assert_eq!(service.active(), 2);
        drop(a);
        let c = service.claim();
        assert!(c.is_some());
        drop((b, c));
        assert_eq!(service.active(), 0);
    }

    #[test]
    fn chunks_of_32_lines() {
        let body: Vec<u8> = (0..70)
            .flat_map(|i| format!("{{\"n\":{i}}}\n").into_bytes())
            .collect();
        let mut out = Vec::new();
        write_chunked(&mut out, &body).unwrap();
        let text = String::from_utf8(out).unwrap();
        let (head, mut rest) = text.split_once("\r\n\r\n").unwrap();
        assert!(head.contains("Transfer-Encoding: chunked"));
        let mut decoded = String::new();
        let mut sizes = Vec::new();
        loop {
            let (size, tail) = rest.split_once("\r\n").unwrap();
            let n = usize::from_str_radix(size, 16).unwrap();
            if n == 0 {
                assert_eq!(tail, "\r\n");
                break;
            }
            decoded.push_str(&tail[..n]);
            sizes.push(tail[..n].matches('\n').count());
            rest = &tail[n + 2..];
        }
        assert_eq!(decoded.as_bytes(), &body[..]);
        assert_eq!(sizes, vec![32, 32, 6]);
    }
}

//! `pinfeed replay`: feeds recorded sessions through the same parse and book code that `run`
//! uses, with no network, and reports final books, normalized events and counters.
//!
//! Subscriptions are inferred from each recording (connect URLs and sent frames, see
//! [`crate::venue::subscriptions_from_wire`]). REST bodies and received frames are processed
//! in recorded order. Timing covers parsing, books and event encoding only: reading and
//! decompressing the file happen before, in [`Replay::prepare`].

use std::io::Write;
use std::time::Instant;

use crate::book::{BookEngine, Disposition, SyncState};
use crate::fanout::encode;
use crate::model::{BookSide, Event, Exchange, InstrumentId, Instruments, Stamps};
use crate::sim::recording::{Record, Recording};
use crate::venue::{
    self, Channels, Feed, FrameKind, ParseError, VenueParser, feed_from_url,
    subscriptions_from_wire,
};

/// Why a replay could not start.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    /// A WebSocket connection whose venue could not be identified.
    #[error("{path}: cannot tell the venue of connection {conn} ({addr})")]
    UnknownVenue {
        /// The recording.
        path: String,
        /// Connection name.
        conn: String,
        /// Its URL.
        addr: String,
    },
    /// Writing `--events-out` failed.
    #[error("writing events: {0}")]
    Io(#[from] std::io::Error),
}

/// Normalized event types, for counting.
pub const EVENT_TYPES: [&str; 5] = [
    "trade",
    "book_change",
    "book_ticker",
    "derivative_ticker",
    "liquidation",
];

/// Counters of one feed (one venue connection kind) over a replay.
#[derive(Clone, Debug)]
pub struct FeedReport {
    /// The feed.
    pub feed: Feed,
    /// Received frames.
    pub frames: u64,
    /// REST bodies processed.
    pub rest_bodies: u64,
    /// Frames by [`FrameKind::ALL`] index.
    pub frames_by_kind: [u64; 11],
    /// Frames that failed to parse, by [`ParseError::KIND_NAMES`] index.
    pub unparsed_by_kind: [u64; 7],
    /// Events by [`EVENT_TYPES`] index (book messages count once, as `book_change`).
    pub events_by_type: [u64; 5],
    /// Processing time, ns.
    pub elapsed_ns: u64,
}

impl FeedReport {
    fn new(feed: Feed) -> FeedReport {
        FeedReport {
            feed,
            frames: 0,
            rest_bodies: 0,
            frames_by_kind: [0; 11],
            unparsed_by_kind: [0; 7],
            events_by_type: [0; 5],
            elapsed_ns: 0,
        }
    }

    /// Frames that did not parse.
    pub fn unparsed(&self) -> u64 {
        self.unparsed_by_kind.iter().sum()
    }
}

enum WorkKind {
    Rest { url: String },
    Frame,
}

struct Work {
    feed: usize,
    kind: WorkKind,
    data: Vec<u8>,
    recv: Stamps,
}

/// What one normalized line of [`Replay::run_lines`] is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LineMeta {
    /// Its instrument.
    pub instrument: InstrumentId,
    /// Its message type.
    pub kind: LineKind,
    /// Its `localTimestamp`: when the frame it came from was received, unix ns.
    pub local_ts_ns: i64,
}

/// The message types `pinfeed replay --events-out` writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LineKind {
    /// `trade`.
    Trade,
    /// `book_change`.
    BookChange,
    /// `book_ticker` (pinfeed's).
    BookTicker,
    /// `derivative_ticker`.
    DerivativeTicker,
    /// `liquidation`.
    Liquidation,
    /// `option_summary`.
    OptionSummary,
}

/// Recordings loaded and ready to run: instruments interned, books registered, frames copied.
pub struct Replay {
    /// Every instrument the recordings subscribed.
    pub instruments: Instruments,
    /// The books.
    pub engine: BookEngine,
    parsers: Vec<VenueParser>,
    /// One report per feed, in order of first appearance.
    pub reports: Vec<FeedReport>,
    work: Vec<Work>,
}

fn secs_to_ns(ts: f64) -> i64 {
    (ts * 1e9).round() as i64
}

impl Replay {
    /// Infers subscriptions, interns instruments, registers books, and copies every REST body
    /// and received frame for [`Replay::run`].
    ///
    /// # Errors
    /// [`ReplayError::UnknownVenue`] for a connection no venue module serves.
    pub fn prepare(recordings: &[Recording]) -> Result<Replay, ReplayError> {
        let mut r = Replay {
            instruments: Instruments::new(),
            engine: BookEngine::new(),
            parsers: Vec::new(),
            reports: Vec::new(),
            work: Vec::new(),
        };
        for rec in recordings {
            // connection name -> feed index
            let mut conns: Vec<(String, usize)> = Vec::new();
            for conn in rec.ws_connections() {
                let addr = rec.connect_addr(&conn).unwrap_or_default().to_string();
                let feed = feed_from_url(&addr, &rec.exchange).ok_or_else(|| {
                    ReplayError::UnknownVenue {
                        path: rec.path.display().to_string(),
                        conn: conn.clone(),
                        addr: addr.clone(),
                    }
                })?;
                let idx = match r.reports.iter().position(|f| f.feed == feed) {
                    Some(i) => i,
                    None => {
                        r.reports.push(FeedReport::new(feed));
                        r.parsers.push(VenueParser::new(feed));
                        r.reports.len() - 1
                    }
                };
                for sub in subscriptions_from_wire(feed, &addr, &rec.sent_frames(&conn)) {
                    let known = r.instruments.get(sub.exchange, &sub.symbol).is_some();
                    let id = r.instruments.intern(sub.exchange, &sub.symbol);
                    if !known || sub.channels.contains(Channels::BOOK) {
                        r.engine.register(
                            id,
                            venue::sync_rule(sub.exchange),
                            venue::checksum_fn(sub.exchange),
                            venue::needs_rest_snapshot(sub.exchange),
                        );
                    }
                }
                conns.push((conn, idx));
            }
            // REST bodies belong to the recording's first WebSocket feed (they seed its books)
            let rest_feed = conns.first().map(|c| c.1);
            for record in &rec.records {
                match record {
                    Record::Http { ts, url, data, .. } => {
                        if let Some(feed) = rest_feed {
                            if !venue::rest_body_wanted(r.reports[feed].feed, url) {
                                // instrument lists and the like: counted, never read
                                r.reports[feed].rest_bodies += 1;
                                continue;
                            }
                            r.work.push(Work {
                                feed,
                                kind: WorkKind::Rest { url: url.clone() },
                                data: data.as_bytes().to_vec(),
                                recv: Stamps {
                                    exch_ts_ns: 0,
                                    recv_ts_ns: secs_to_ns(*ts),
                                    recv_mono_ns: 0,
                                    push_delta_ns: 0,
                                    applied_delta_ns: 0,
                                },
                            });
                        }
                    }
                    Record::Recv { conn, ts, data } => {
                        if let Some((_, feed)) = conns.iter().find(|(c, _)| c == conn) {
                            r.work.push(Work {
                                feed: *feed,
                                kind: WorkKind::Frame,
                                data: data.as_bytes().to_vec(),
                                recv: Stamps {
                                    exch_ts_ns: 0,
                                    recv_ts_ns: secs_to_ns(*ts),
                                    recv_mono_ns: 0,
                                    push_delta_ns: 0,
                                    applied_delta_ns: 0,
                                },
                            });
                        }
                    }
                    Record::Connect { .. } | Record::Send { .. } => {}
                }
            }
        }
        Ok(r)
    }

    /// Runs every prepared frame through parser and books. `observe` sees each event after
    /// the book engine has applied it; `events_out` receives normalized events as JSON lines.
    /// Each frame is copied into a scratch buffer first (as ingest copies out of its socket
    /// buffer), so the replay can be run again; counters accumulate.
    ///
    /// # Errors
    /// [`ReplayError::Io`] when writing `events_out` fails.
    pub fn run<W: Write>(
        &mut self,
        events_out: Option<&mut W>,
        observe: impl FnMut(&Event, &BookEngine, &Instruments),
    ) -> Result<(), ReplayError> {
        let write_events = events_out.is_some();
        let mut out_buf: Vec<u8> = Vec::with_capacity(1 << 20);
        let mut events_out = events_out;
        self.run_lines(
            write_events,
            |_, _, line| {
                out_buf.extend_from_slice(line);
                out_buf.push(b'\n');
                match events_out.as_mut() {
                    Some(out) if out_buf.len() > (1 << 19) => {
                        out.write_all(&out_buf)?;
                        out_buf.clear();
                        Ok(())
                    }
                    _ => Ok(()),
                }
            },
            observe,
        )?;
        if let Some(out) = events_out {
            out.write_all(&out_buf)?;
            out.flush()?;
        }
        Ok(())
    }

    /// [`Replay::run`] with each normalized event handed to `on_line` as one JSON line
    /// (without its `\n`), what it is ([`LineMeta`]) and the instruments (to name its
    /// instrument), in the order `--events-out` writes them; with `write_events` false no line is
    /// built and `on_line` is never called.
    ///
    /// # Errors
    /// [`ReplayError::Io`]: the first error `on_line` returned (the replay stops there).
    pub fn run_lines(
        &mut self,
        write_events: bool,
        mut on_line: impl FnMut(&LineMeta, &Instruments, &[u8]) -> std::io::Result<()>,
        mut observe: impl FnMut(&Event, &BookEngine, &Instruments),
    ) -> Result<(), ReplayError> {
        let work = std::mem::take(&mut self.work);
        // frames are parsed in place (simd-json unescapes into them): parse a copy, so the
        // prepared frames stay intact and `run` can be called again
        let mut frame: Vec<u8> = Vec::with_capacity(64 * 1024);
        let mut line: Vec<u8> = Vec::with_capacity(64 * 1024);
        let mut change = encode::BookChangeWriter::default();
        let mut book_msg: (bool, Stamps) = (false, Stamps::default());
        // the first half of an option ticker, until its second half
        let mut option_half: Option<crate::model::OptionHalf> = None;
        let mut line_error: Option<std::io::Error> = None;
        for w in &work {
            let start = Instant::now();
            frame.clear();
            frame.extend_from_slice(&w.data);
            let report = &mut self.reports[w.feed];
            let engine = &mut self.engine;
            let instruments = &self.instruments;
            let mut sink = |ev: Event| {
                let disposition = engine.on_event(&ev);
                match &ev {
                    Event::Trade(_) => report.events_by_type[0] += 1,
                    Event::BookEnd(_) if engine.last_message_applied() => {
                        report.events_by_type[1] += 1
                    }
                    Event::BookTicker(_) => report.events_by_type[2] += 1,
                    Event::DerivativeTicker(_) if engine.last_ticker_changed() => {
                        report.events_by_type[3] += 1
                    }
                    Event::Liquidation(_) => report.events_by_type[4] += 1,
                    _ => {}
                }
                observe(&ev, engine, instruments);
                if write_events && line_error.is_none() {
                    line.clear();
                    let mut meta = LineMeta {
                        instrument: InstrumentId(0),
                        kind: LineKind::Trade,
                        local_ts_ns: 0,
                    };
                    let mut set = |instrument, kind, local_ts_ns| {
                        meta = LineMeta {
                            instrument,
                            kind,
                            local_ts_ns,
                        }
                    };
                    match &ev {
                        Event::Trade(t) => {
                            let (e, s) = instruments.name(t.instrument);
                            encode::trade(&mut line, e, s, t);
                            set(t.instrument, LineKind::Trade, t.stamps.recv_ts_ns);
                        }
                        Event::Liquidation(l) => {
                            let (e, s) = instruments.name(l.instrument);
                            encode::liquidation(&mut line, e, s, l);
                            set(l.instrument, LineKind::Liquidation, l.stamps.recv_ts_ns);
                        }
                        Event::BookTicker(t) => {
                            let (e, s) = instruments.name(t.instrument);
                            encode::book_ticker(&mut line, e, s, t);
                            set(t.instrument, LineKind::BookTicker, t.stamps.recv_ts_ns);
                        }
                        Event::DerivativeTicker(t) => {
                            let (e, s) = instruments.name(t.instrument);
                            // tardis: a Deribit option's ticker is an option_summary only
                            let option =
                                e == Exchange::Deribit && crate::venue::deribit::is_option(s);
                            if is_derivatives(e) && !option && engine.last_ticker_changed() {
                                if let Some(state) = engine.ticker(t.instrument) {
                                    encode::derivative_ticker(&mut line, e, s, state);
                                    set(
                                        t.instrument,
                                        LineKind::DerivativeTicker,
                                        t.stamps.recv_ts_ns,
                                    );
                                }
                            }
                        }
                        Event::OptionHalf(h) if h.half == 0 => option_half = Some(*h),
                        Event::OptionHalf(h) => {
                            let (e, s) = instruments.name(h.instrument);
                            if let (Some(a), Some(fields)) =
                                (option_half.take(), encode::option_static(s))
                            {
                                encode::option_summary(
                                    &mut line,
                                    e,
                                    s,
                                    &fields,
                                    &a,
                                    h,
                                    h.stamps.recv_ts_ns,
                                );
                                set(h.instrument, LineKind::OptionSummary, h.stamps.recv_ts_ns);
                            }
                        }
                        Event::BookBegin(b) => {
                            change.begin();
                            book_msg = (b.is_snapshot, b.stamps);
                        }
                        Event::Level(l) => {
                            if matches!(
                                disposition,
                                Disposition::Apply | Disposition::ApplySnapshot
                            ) {
                                change.level(l);
                            }
                        }
                        Event::BookEnd(end) => {
                            if engine.last_message_applied() {
                                let (e, s) = instruments.name(end.instrument);
                                let snapshot = book_msg.0
                                    || engine.disposition() == Disposition::ApplySnapshot;
                                change.finish(
                                    &mut line,
                                    e,
                                    s,
                                    snapshot,
                                    book_msg.1.exch_ts_ns,
                                    book_msg.1.recv_ts_ns,
                                );
                                set(end.instrument, LineKind::BookChange, book_msg.1.recv_ts_ns);
                            }
                        }
                    }
                    if !line.is_empty() {
                        if let Err(e) = on_line(&meta, instruments, &line) {
                            line_error = Some(e);
                        }
                    }
                }
            };
            let parser = &mut self.parsers[w.feed];
            let result = match &w.kind {
                WorkKind::Rest { url } => {
                    parser.parse_rest(url, &mut frame, w.recv, instruments, &mut sink)
                }
                WorkKind::Frame => parser.parse_frame(&mut frame, w.recv, instruments, &mut sink),
            };
            match (&w.kind, result) {
                (WorkKind::Rest { .. }, Ok(_)) => report.rest_bodies += 1,
                (WorkKind::Frame, Ok(kind)) => {
                    report.frames += 1;
                    report.frames_by_kind[kind_index(kind)] += 1;
                }
                (WorkKind::Rest { .. }, Err(e)) => {
                    report.rest_bodies += 1;
                    report.unparsed_by_kind[e.kind_index()] += 1;
                }
                (WorkKind::Frame, Err(e)) => {
                    report.frames += 1;
                    report.unparsed_by_kind[e.kind_index()] += 1;
                }
            }
            report.elapsed_ns += start.elapsed().as_nanos() as u64;
            if line_error.is_some() {
                break;
            }
        }
        self.work = work;
        match line_error {
            Some(e) => Err(e.into()),
            None => Ok(()),
        }
    }

    /// Gaps, checksum passes and failures, summed over the books of `feed` (all feeds when
    /// `None`).
    pub fn book_totals(&self, feed: Option<Feed>) -> BookTotals {
        let mut t = BookTotals::default();
        for id in self.engine.registered() {
            let (e, s) = self.instruments.name(id);
            if feed.is_some_and(|f| Feed::for_symbol(e, s) != f) {
                continue;
            }
            let st = self.engine.stats(id).expect("registered");
            t.books += 1;
            t.snapshots += st.snapshots;
            t.deltas += st.deltas;
            t.stale += st.stale;
            t.gaps += st.gaps;
            t.checksum_pass += st.checksum_pass;
            t.checksum_fail += st.checksum_fail;
            t.resyncs += st.resyncs.iter().sum::<u64>();
            if self.engine.state(id) == Some(SyncState::Synced) {
                t.synced += 1;
            }
        }
        t
    }

    /// The final books as the `--books-out` JSON document:
    /// `{exchange: {symbol: {status, bids, asks, bid_levels, ask_levels, imbalance_5,
    /// imbalance_20, trades, open_interest, funding_rate}}}` with the top 20 levels per side.
    pub fn books_json(&self) -> serde_json::Value {
        use serde_json::{Map, Value, json};
        let mut root = Map::new();
        for (id, exchange, symbol) in self.instruments.iter() {
            let Some(book) = self.engine.book(id) else {
                continue;
            };
            let side = |s: BookSide| -> Vec<Value> {
                book.decimal_levels(s)
                    .take(20)
                    .map(|(p, q)| json!([p.to_string(), q.to_string()]))
                    .collect()
            };
            let ticker = self.engine.ticker(id).map(|t| t.merged);
            let stats = self.engine.stats(id).expect("registered");
            let round2 = |v: Option<f64>| v.map(|x| (x * 100.0).round() / 100.0);
            let entry = json!({
                "status": self.engine.state(id).map_or("awaiting_snapshot", |s| s.as_str()),
                "bids": side(BookSide::Bid),
                "asks": side(BookSide::Ask),
                "bid_levels": book.depth(BookSide::Bid),
                "ask_levels": book.depth(BookSide::Ask),
                "imbalance_5": round2(book.imbalance(5)),
                "imbalance_20": round2(book.imbalance(20)),
                "trades": stats.trades,
                "open_interest": ticker.and_then(|t| t.open_interest).map(|d| d.to_string()),
                "funding_rate": ticker.and_then(|t| t.funding_rate).map(|d| d.to_string()),
            });
            root.entry(exchange.id().to_string())
                .or_insert_with(|| Value::Object(Map::new()))
                .as_object_mut()
                .expect("object")
                .insert(symbol.to_string(), entry);
        }
        Value::Object(root)
    }

    /// The human summary: one block per feed, then the `total:` line.
    pub fn summary(&self) -> String {
        use std::fmt::Write as _;
        let mut s = String::new();
        let mut frames = 0u64;
        let mut elapsed_ns = 0u64;
        for r in &self.reports {
            let b = self.book_totals(Some(r.feed));
            frames += r.frames;
            elapsed_ns += r.elapsed_ns;
            let kinds: Vec<String> = FrameKind::ALL
                .iter()
                .zip(r.frames_by_kind)
                .filter(|(_, n)| *n > 0)
                .map(|(k, n)| format!("{} {n}", k.name()))
                .collect();
            let unparsed: Vec<String> = ParseError::KIND_NAMES
                .iter()
                .zip(r.unparsed_by_kind)
                .filter(|(_, n)| *n > 0)
                .map(|(k, n)| format!("{k} {n}"))
                .collect();
            let events: Vec<String> = EVENT_TYPES
                .iter()
                .zip(r.events_by_type)
                .map(|(k, n)| format!("{k} {n}"))
                .collect();
            let _ = writeln!(
                s,
                "{}: {} frames ({}), {} REST bodies",
                r.feed.name(),
                r.frames,
                kinds.join(", "),
                r.rest_bodies
            );
            let _ = writeln!(s, "  events: {}", events.join(", "));
            let _ = writeln!(
                s,
                "  books: {} ({} synced), {} snapshots, {} deltas applied, {} stale dropped, {} gaps, {} resyncs, checksums {} passed / {} failed",
                b.books,
                b.synced,
                b.snapshots,
                b.deltas,
                b.stale,
                b.gaps,
                b.resyncs,
                b.checksum_pass,
                b.checksum_fail
            );
            let _ = writeln!(
                s,
                "  unparsed: {} ({})",
                r.unparsed(),
                if unparsed.is_empty() {
                    "none".to_string()
                } else {
                    unparsed.join(", ")
                }
            );
            let secs = r.elapsed_ns as f64 / 1e9;
            let _ = writeln!(
                s,
                "  {:.6} s, {:.0} frames/s",
                secs,
                rate(r.frames, r.elapsed_ns)
            );
        }
        let all = self.book_totals(None);
        let _ = writeln!(
            s,
            "total: {} frames, {} gaps, {} checksum failures, {:.6} s, {:.0} frames/s",
            frames,
            all.gaps,
            all.checksum_fail,
            elapsed_ns as f64 / 1e9,
            rate(frames, elapsed_ns)
        );
        s
    }
}

fn rate(n: u64, ns: u64) -> f64 {
    if ns == 0 {
        0.0
    } else {
        n as f64 * 1e9 / ns as f64
    }
}

fn kind_index(kind: FrameKind) -> usize {
    FrameKind::ALL
        .iter()
        .position(|k| *k == kind)
        .unwrap_or(FrameKind::ALL.len() - 1)
}

/// True for exchange ids that serve `derivative_ticker` (tardis-machine has no derivative
/// ticker for spot venues).
pub fn is_derivatives(e: Exchange) -> bool {
    !matches!(e, Exchange::Binance | Exchange::BybitSpot | Exchange::Okex)
}

/// Book counters summed over many books.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BookTotals {
    /// Books counted.
    pub books: u64,
    /// Books synced at the end.
    pub synced: u64,
    /// Snapshots applied.
    pub snapshots: u64,
    /// Deltas applied.
    pub deltas: u64,
    /// Stale deltas dropped.
    pub stale: u64,
    /// Sequence gaps.
    pub gaps: u64,
    /// Checksums passed.
    pub checksum_pass: u64,
    /// Checksums failed.
    pub checksum_fail: u64,
    /// Times a book left `synced`.
    pub resyncs: u64,
}

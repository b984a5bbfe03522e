//! Run-wide counters: every queue, every upstream connection, the REST thread and the book
//! thread. Each counter has one writer (the thread that owns the stage) and is read by the
//! status printer and tests; single-writer counters are updated with relaxed stores.

use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU8, AtomicU64, Ordering};

use crossbeam_utils::CachePadded;

use crate::venue::{Feed, FrameKind, ParseError};

use super::ring::QueueStats;

/// Adds `n` to a counter that has one writer (a load and a store, no locked instruction).
#[inline]
pub fn bump(counter: &AtomicU64, n: u64) {
    counter.store(
        counter.load(Ordering::Relaxed).wrapping_add(n),
        Ordering::Relaxed,
    );
}

/// Life-cycle state of one upstream connection.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum ConnState {
    /// Opening the socket, TLS and WebSocket handshakes, subscribing.
    Connecting = 0,
    /// Subscribed and reading.
    Connected = 1,
    /// Waiting before the next attempt.
    Backoff = 2,
    /// The thread has ended.
    Stopped = 3,
}

impl ConnState {
    /// `connecting`, `connected`, `backoff` or `stopped`.
    pub fn as_str(self) -> &'static str {
        match self {
            ConnState::Connecting => "connecting",
            ConnState::Connected => "connected",
            ConnState::Backoff => "backoff",
            ConnState::Stopped => "stopped",
        }
    }

    fn from_u8(v: u8) -> ConnState {
        match v {
            0 => ConnState::Connecting,
            1 => ConnState::Connected,
            2 => ConnState::Backoff,
            _ => ConnState::Stopped,
        }
    }
}

/// Why an upstream session ended (`pinfeed_connection_ends_total{cause}`).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum ConnEnd {
    /// The venue sent a WebSocket close frame (e.g. Binance's 24 h rotation).
    VenueClose,
    /// The TCP connection dropped (reset, EOF) with no close frame.
    Reset,
    /// A frame or message over `max_message_bytes`.
    MessageTooBig,
    /// A WebSocket protocol violation or invalid UTF-8 in a text frame.
    Protocol,
    /// The silence watchdog: no data frame for `silence_timeout_ms`.
    Silence,
    /// The book thread asked for it (a resubscribe that did not resync, the resync budget).
    Requested,
    /// Anything else (a failed send, TLS).
    Other,
}

impl ConnEnd {
    /// Every cause, in counter index order.
    pub const ALL: [ConnEnd; 7] = [
        ConnEnd::VenueClose,
        ConnEnd::Reset,
        ConnEnd::MessageTooBig,
        ConnEnd::Protocol,
        ConnEnd::Silence,
        ConnEnd::Requested,
        ConnEnd::Other,
    ];

    /// The `cause` label.
    pub fn name(self) -> &'static str {
        match self {
            ConnEnd::VenueClose => "venue_close",
            ConnEnd::Reset => "reset",
            ConnEnd::MessageTooBig => "message_too_big",
            ConnEnd::Protocol => "protocol_error",
            ConnEnd::Silence => "silence_timeout",
            ConnEnd::Requested => "requested",
            ConnEnd::Other => "other",
        }
    }

    /// The cause of a read error.
    pub fn of(e: &tungstenite::Error) -> ConnEnd {
        use tungstenite::error::ProtocolError;
        match e {
            tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed => {
                ConnEnd::VenueClose
            }
            tungstenite::Error::Io(_)
            | tungstenite::Error::Protocol(ProtocolError::ResetWithoutClosingHandshake) => {
                ConnEnd::Reset
            }
            tungstenite::Error::Capacity(_) => ConnEnd::MessageTooBig,
            tungstenite::Error::Protocol(_) | tungstenite::Error::Utf8(_) => ConnEnd::Protocol,
            _ => ConnEnd::Other,
        }
    }

    /// Counts one end of `self` in `stats`.
    pub fn count(self, stats: &ConnStats) {
        let i = ConnEnd::ALL.iter().position(|c| *c == self).unwrap_or(0);
        stats.ends[i].fetch_add(1, Ordering::Relaxed);
    }
}

/// Counters of one upstream connection; written by its ingest thread only.
#[derive(Debug)]
pub struct ConnStats {
    /// Index of the connection in the config.
    pub index: usize,
    /// The feed.
    pub feed: Feed,
    state: AtomicU8,
    /// Connections established after the first one.
    pub reconnects: AtomicU64,
    /// Connection attempts that failed (DNS, TCP, TLS, WebSocket handshake).
    pub connect_failures: AtomicU64,
    /// Connections ended by the silence watchdog.
    pub silence_timeouts: AtomicU64,
    /// Sessions ended, by [`ConnEnd::ALL`] index.
    pub ends: [AtomicU64; ConnEnd::ALL.len()],
    /// Frames received, by [`FrameKind::ALL`] index (parse failures are not in here).
    pub frames: [AtomicU64; 11],
    /// Frames that failed to parse, by [`ParseError::KIND_NAMES`] index.
    pub parse_errors: [AtomicU64; 7],
    /// Payload bytes received.
    pub bytes: AtomicU64,
    /// Keep-alive frames sent (venue text pings and WebSocket pings).
    pub keepalives_sent: AtomicU64,
    /// Venue heartbeats answered (Deribit `test_request`).
    pub heartbeats_answered: AtomicU64,
    /// Book messages of which an event was dropped on a full ring (each resyncs its book).
    pub books_lost: AtomicU64,
    /// Trades parsed and published down the trade lanes.
    pub trades: AtomicU64,
    /// Binary or otherwise non-text data frames received.
    pub binary_frames: AtomicU64,
    /// Wall clock of the last frame received, unix ns.
    pub last_recv_ts_ns: AtomicI64,
    /// Sequence gaps in the books this connection carries (written by the book thread).
    pub book_gaps: AtomicU64,
    /// Times a book of this connection left `synced` (written by the book thread).
    pub book_resyncs: AtomicU64,
    /// Checksum mismatches in the books of this connection (written by the book thread).
    pub book_checksum_failures: AtomicU64,
    /// Deltas the books of this connection already covered (a repeated frame, `u` below the
    /// snapshot's `lastUpdateId`): skipped (written by the book thread).
    pub book_stale_deltas: AtomicU64,
    /// Books this connection carries (gauge, written by the book thread).
    pub books: AtomicU64,
    /// Of them, the books currently synced (gauge, written by the book thread).
    pub books_synced: AtomicU64,
}

impl ConnStats {
    /// Fresh counters for connection `index` of `feed`.
    pub fn new(index: usize, feed: Feed) -> ConnStats {
        ConnStats {
            index,
            feed,
            state: AtomicU8::new(ConnState::Connecting as u8),
            reconnects: AtomicU64::new(0),
            connect_failures: AtomicU64::new(0),
            silence_timeouts: AtomicU64::new(0),
            ends: Default::default(),
            frames: Default::default(),
            parse_errors: Default::default(),
            bytes: AtomicU64::new(0),
            keepalives_sent: AtomicU64::new(0),
            heartbeats_answered: AtomicU64::new(0),
            books_lost: AtomicU64::new(0),
            trades: AtomicU64::new(0),
            binary_frames: AtomicU64::new(0),
            last_recv_ts_ns: AtomicI64::new(0),
            book_gaps: AtomicU64::new(0),
            book_resyncs: AtomicU64::new(0),
            book_checksum_failures: AtomicU64::new(0),
            book_stale_deltas: AtomicU64::new(0),
            books: AtomicU64::new(0),
            books_synced: AtomicU64::new(0),
        }
    }

    /// Current state.
    pub fn state(&self) -> ConnState {
        ConnState::from_u8(self.state.load(Ordering::Relaxed))
    }

    /// Sets the state.
    pub fn set_state(&self, s: ConnState) {
        self.state.store(s as u8, Ordering::Relaxed);
    }

    /// Frames of `kind` so far.
    pub fn frames_of(&self, kind: FrameKind) -> u64 {
        let i = FrameKind::ALL.iter().position(|k| *k == kind).unwrap_or(0);
        self.frames[i].load(Ordering::Relaxed)
    }

    /// Every frame received so far (parsed or not).
    pub fn frames_total(&self) -> u64 {
        self.frames
            .iter()
            .chain(self.parse_errors.iter())
            .map(|c| c.load(Ordering::Relaxed))
            .sum()
    }

    /// Parse failures so far.
    pub fn parse_errors_total(&self) -> u64 {
        self.parse_errors
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .sum()
    }

    /// Counts a parsed frame.
    #[inline]
    pub fn count_frame(&self, result: Result<FrameKind, ParseError>) {
        match result {
            Ok(kind) => {
                let i = match kind {
                    FrameKind::Trade => 0,
                    FrameKind::BookSnapshot => 1,
                    FrameKind::BookDelta => 2,
                    FrameKind::BookTicker => 3,
                    FrameKind::DerivativeTicker => 4,
                    FrameKind::Liquidation => 5,
                    FrameKind::Ack => 6,
                    FrameKind::Pong => 7,
                    FrameKind::Kline => 8,
                    FrameKind::Heartbeat => 9,
                    FrameKind::Ignored => 10,
                };
                bump(&self.frames[i], 1);
            }
            Err(e) => bump(&self.parse_errors[e.kind_index()], 1),
        }
    }
}

/// Counters of the allocator trim thread (`[memory] trim_interval_ms`).
#[derive(Debug, Default)]
pub struct MemoryStats {
    /// Trims run ([`crate::limits::trim_allocator`]).
    pub trims: AtomicU64,
    /// Resident set given back by them: the fall of VmRSS across each trim, summed, bytes
    /// (a trim while other threads allocate can see RSS rise; that counts as 0).
    pub trim_released_bytes: AtomicU64,
}

/// Counters of the REST thread.
#[derive(Debug, Default)]
pub struct RestStats {
    /// Snapshot bodies fetched and parsed.
    pub snapshots: AtomicU64,
    /// Poll bodies fetched and parsed (open interest).
    pub polls: AtomicU64,
    /// Requests that failed (transport, HTTP status, body too large).
    pub failures: AtomicU64,
    /// Of those, 429 and 418 answers (rate limited; their `Retry-After` is honoured).
    pub rate_limited: AtomicU64,
    /// Bodies that did not parse.
    pub parse_errors: AtomicU64,
    /// Body bytes received.
    pub bytes: AtomicU64,
}

/// Counters of the book thread, published by it about twice a second and at exit.
#[derive(Debug, Default)]
pub struct BookThreadStats {
    /// Registered books.
    pub books: AtomicU64,
    /// Books currently `synced`.
    pub books_synced: AtomicU64,
    /// Snapshots applied, all books.
    pub snapshots: AtomicU64,
    /// Deltas applied, all books.
    pub deltas: AtomicU64,
    /// Sequence gaps, all books.
    pub gaps: AtomicU64,
    /// Times a book left `synced`, all reasons.
    pub resyncs: AtomicU64,
    /// Checksums that did not match.
    pub checksum_failures: AtomicU64,
    /// Book messages (with their slot notice) published to the fan-out shards, per shard.
    pub book_messages_published: AtomicU64,
    /// Book messages that did not fit a shard's ring (the book is republished as its latest
    /// state).
    pub book_messages_dropped: AtomicU64,
    /// Slot notices not sent because the shard had one of the same book still queued (it
    /// reads the latest state when it takes that one): a shard behind gets one notice per
    /// book, not one per update.
    pub book_notices_coalesced: AtomicU64,
    /// `book_change` snapshot requests of the shards answered with a full book.
    pub snapshot_requests_served: AtomicU64,
    /// Resubscribe, reconnect and REST snapshot requests that found their channel full and
    /// were queued to be asked again.
    pub requests_requeued: AtomicU64,
    /// Book messages cut short by a drop upstream and discarded.
    pub truncated_messages: AtomicU64,
    /// `BookInvalid` messages published.
    pub invalidations: AtomicU64,
    /// Trades published.
    pub trades: AtomicU64,
    /// Snapshot requests sent to the REST thread.
    pub rest_requests: AtomicU64,
    /// Resubscribe requests sent to ingest threads (WebSocket-snapshot books).
    pub resubscribes: AtomicU64,
    /// Resync requests held back by the per-instrument backoff (sent when it expires).
    pub resyncs_deferred: AtomicU64,
    /// Connections rebuilt for spending their resync budget.
    pub resync_budget_reconnects: AtomicU64,
}

/// Resyncs of one book by reason, published by the book thread with its other counters.
#[derive(Debug)]
pub struct BookResyncs {
    /// The book's exchange.
    pub exchange: crate::model::Exchange,
    /// Its symbol.
    pub symbol: Box<str>,
    /// Times it left `synced`, by [`crate::book::ResyncReason::ALL`] index.
    pub by_reason: [AtomicU64; crate::book::ResyncReason::ALL.len()],
}

impl BookResyncs {
    /// Zeroed counters of `exchange`/`symbol`.
    pub fn new(exchange: crate::model::Exchange, symbol: &str) -> BookResyncs {
        BookResyncs {
            exchange,
            symbol: symbol.into(),
            by_reason: Default::default(),
        }
    }
}

/// Every counter of a running `pinfeed run`.
#[derive(Debug, Default)]
pub struct RunStats {
    /// Per instrument (by [`crate::model::InstrumentId`] index): its book's resyncs by reason.
    pub book_resyncs: Arc<[BookResyncs]>,
    /// Every queue: ingest rings, the REST ring, the fan-out ring.
    pub queues: Vec<Arc<QueueStats>>,
    /// One per upstream connection, in config order.
    pub connections: Vec<Arc<CachePadded<ConnStats>>>,
    /// The REST thread.
    pub rest: Arc<CachePadded<RestStats>>,
    /// The book thread.
    pub book: Arc<CachePadded<BookThreadStats>>,
    /// The allocator trim thread.
    pub memory: Arc<MemoryStats>,
}

impl RunStats {
    /// Trades published to the fan-out: down the trade lanes, and through the book thread
    /// where an input carried them.
    pub fn trades(&self) -> u64 {
        let lanes: u64 = self
            .connections
            .iter()
            .map(|c| c.trades.load(Ordering::Relaxed))
            .sum();
        lanes + self.book.trades.load(Ordering::Relaxed)
    }

    /// Items dropped on every queue together.
    pub fn total_dropped(&self) -> u64 {
        self.queues.iter().map(|q| q.dropped()).sum()
    }

    /// One status line: connections (state, frames, reconnects, parse errors), queues
    /// (pushed/dropped/high-water), books synced, resyncs.
    pub fn status_line(&self) -> String {
        let r = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let mut s = String::with_capacity(256);
        s.push_str("pinfeed:");
        for c in &self.connections {
            let _ = write!(
                s,
                " {}#{}={} frames={} rc={} err={}",
                c.feed.name(),
                c.index,
                c.state().as_str(),
                c.frames_total(),
                r(&c.reconnects),
                c.parse_errors_total(),
            );
            if r(&c.books_lost) > 0 {
                let _ = write!(s, " lost={}", r(&c.books_lost));
            }
            s.push(';');
        }
        let b = &self.book;
        let _ = write!(
            s,
            " books {}/{} synced, resyncs={} gaps={}; rest ok={} fail={};",
            r(&b.books_synced),
            r(&b.books),
            r(&b.resyncs),
            r(&b.gaps),
            r(&self.rest.snapshots) + r(&self.rest.polls),
            r(&self.rest.failures),
        );
        let _ = write!(s, " queues");
        for q in &self.queues {
            let _ = write!(
                s,
                " {}={}/{}/{}",
                q.name(),
                q.pushed(),
                q.dropped(),
                q.high_water()
            );
        }
        s.push_str(" (pushed/dropped/high-water)");
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::ring;

    #[test]
    fn status_line_names_everything() {
        let (mut p, _c, q) = ring::<u8>("ingest-0", 2);
        p.push(1).unwrap();
        p.push(1).unwrap();
        let _ = p.push(1);
        let conn = Arc::new(CachePadded::new(ConnStats::new(0, Feed::BybitLinear)));
        conn.set_state(ConnState::Backoff);
        conn.count_frame(Ok(FrameKind::Trade));
        conn.count_frame(Err(ParseError::Json));
        bump(&conn.reconnects, 2);
        let stats = RunStats {
            queues: vec![q],
            connections: vec![conn.clone()],
            ..RunStats::default()
        };
        let line = stats.status_line();
        assert!(line.contains("bybit-linear#0=backoff"), "{line}");
        assert!(line.contains("frames=2 rc=2 err=1"), "{line}");
        assert!(line.contains("ingest-0=2/1/2"), "{line}");
        assert_eq!(stats.total_dropped(), 1);
        assert_eq!(conn.frames_of(FrameKind::Trade), 1);
        assert_eq!(conn.state(), ConnState::Backoff);
    }
}

//! `GET /metrics`: every counter of a run in the Prometheus text exposition format (0.0.4),
//! served by [`super::http::HttpServer`] on a cold thread.
//!
//! Names follow Prometheus conventions: `pinfeed_` prefix, `_total` on counters, base units
//! (`_seconds`, `_bytes`), labels for queue, feed, connection, kind, stage and quantile.
//! Malformed HTTP gets 400 and the server keeps serving; other paths get 404, other methods
//! 405; a head over the limit 431, a connection over the limit 503.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::fanout::{BadRequest, ShardStats};
use crate::pipeline::{ConnState, RunStats};
use crate::venue::{FrameKind, ParseError};

use super::exporter::Latency;
use super::http::{HttpCounters, HttpLimits, HttpServer, Reply, Request};
use super::recorder::Stage;

/// The content type of the exposition format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// What `/metrics` reports on.
#[derive(Clone, Debug)]
pub struct Sources {
    /// Pipeline counters.
    pub run: Arc<RunStats>,
    /// Fan-out counters of every shard (`None` without a fan-out server), reported as
    /// their sum.
    pub fanout: Option<ShardStats>,
    /// Stage latency (`None` or disabled: no latency families).
    pub latency: Option<Latency>,
    /// The replay API (`[replay] dir`): `GET /replay-normalized` and its counters; `None`:
    /// not served (404).
    pub replay: Option<Arc<crate::replay_api::ReplayService>>,
}

/// Process memory from `/proc/self/status`: `(VmRSS, VmHWM)` in bytes; `None` where the file
/// or a field is missing (not Linux).
pub fn process_memory_bytes() -> Option<(u64, u64)> {
    let text = std::fs::read_to_string("/proc/self/status").ok()?;
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|rest| rest.trim().strip_suffix("kB"))
            .and_then(|kb| kb.trim().parse::<u64>().ok())
            .map(|kb| kb * 1024)
    };
    Some((field("VmRSS:")?, field("VmHWM:")?))
}

/// Builds exposition text: one HELP and TYPE per family, samples after it.
struct Text {
    out: String,
    family: &'static str,
}

impl Text {
    fn family(&mut self, name: &'static str, kind: &str, help: &str) {
        self.family = name;
        let _ = writeln!(self.out, "# HELP {name} {help}");
        let _ = writeln!(self.out, "# TYPE {name} {kind}");
    }

    fn sample(&mut self, suffix: &str, labels: &[(&str, &str)], value: f64) {
        self.out.push_str(self.family);
        self.out.push_str(suffix);
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                self.out.push_str(k);
                self.out.push_str("=\"");
                for c in v.chars() {
                    match c {
                        '\\' => self.out.push_str("\\\\"),
                        '"' => self.out.push_str("\\\""),
                        '\n' => self.out.push_str("\\n"),
                        c => self.out.push(c),
                    }
                }
                self.out.push('"');
            }
            self.out.push('}');
        }
        if value.is_finite() {
            let _ = writeln!(self.out, " {value}");
        } else {
            let _ = writeln!(self.out, " NaN");
        }
    }

    fn value(&mut self, labels: &[(&str, &str)], value: u64) {
        self.sample("", labels, value as f64);
    }

    fn one(&mut self, name: &'static str, kind: &str, help: &str, value: u64) {
        self.family(name, kind, help);
        self.value(&[], value);
    }
}

fn load(c: &AtomicU64) -> u64 {
    c.load(Ordering::Relaxed)
}

/// The whole exposition text for `src`.
pub fn render(src: &Sources) -> String {
    let mut t = Text {
        out: String::with_capacity(16 * 1024),
        family: "",
    };
    queues(&mut t, &src.run);
    connections(&mut t, &src.run);
    book(&mut t, &src.run);
    if let Some(f) = &src.fanout {
        fanout(&mut t, f);
    }
    if let Some(l) = src.latency.as_ref().filter(|l| l.enabled()) {
        latency(&mut t, l);
    }
    if let Some(r) = &src.replay {
        replay(&mut t, r);
    }
    let m = &src.run.memory;
    t.one(
        "pinfeed_allocator_trims_total",
        "counter",
        "Allocator trims run (malloc_trim, every [memory] trim_interval_ms).",
        load(&m.trims),
    );
    t.one(
        "pinfeed_allocator_trim_released_bytes_total",
        "counter",
        "Resident set the allocator trims gave back to the kernel (VmRSS before minus after).",
        load(&m.trim_released_bytes),
    );
    if let Some((rss, hwm)) = process_memory_bytes() {
        t.one(
            "pinfeed_process_resident_memory_bytes",
            "gauge",
            "Resident set size (VmRSS).",
            rss,
        );
        t.one(
            "pinfeed_process_resident_memory_max_bytes",
            "gauge",
            "Peak resident set size (VmHWM).",
            hwm,
        );
    }
    t.out
}

fn replay(t: &mut Text, r: &crate::replay_api::ReplayService) {
    let s = &r.stats;
    t.family(
        "pinfeed_replay_requests_total",
        "counter",
        "GET /replay-normalized requests, by outcome (503 busy, 500 error, completed, aborted by the client; the rest are running).",
    );
    t.value(&[("outcome", "all")], load(&s.requests));
    t.value(&[("outcome", "refused_busy")], load(&s.refused_busy));
    t.value(&[("outcome", "error")], load(&s.errors));
    t.value(&[("outcome", "completed")], load(&s.completed));
    t.value(&[("outcome", "aborted")], load(&s.aborted));
    t.one(
        "pinfeed_replay_messages_total",
        "counter",
        "Lines sent by completed replay streams.",
        load(&s.messages),
    );
    t.one(
        "pinfeed_replay_bytes_total",
        "counter",
        "Body bytes sent by completed replay streams.",
        load(&s.bytes),
    );
    t.one(
        "pinfeed_replay_streams",
        "gauge",
        "Replay streams running now ([replay] max_streams at most).",
        r.active() as u64,
    );
}

fn queues(t: &mut Text, run: &RunStats) {
    let names: Vec<String> = run.queues.iter().map(|q| q.name().to_string()).collect();
    let families: [(&'static str, &str, &str); 4] = [
        (
            "pinfeed_queue_pushed_total",
            "counter",
            "Items pushed into the ring.",
        ),
        (
            "pinfeed_queue_dropped_total",
            "counter",
            "Items dropped because the ring was full.",
        ),
        (
            "pinfeed_queue_high_water",
            "gauge",
            "Most items the ring has held at once.",
        ),
        ("pinfeed_queue_capacity", "gauge", "Slots of the ring."),
    ];
    for (k, (name, kind, help)) in families.iter().enumerate() {
        t.family(name, kind, help);
        for (q, n) in run.queues.iter().zip(&names) {
            let v = match k {
                0 => q.pushed(),
                1 => q.dropped(),
                2 => q.high_water(),
                _ => q.capacity() as u64,
            };
            t.value(&[("queue", n)], v);
        }
    }
}

fn connections(t: &mut Text, run: &RunStats) {
    let ids: Vec<(String, &str)> = run
        .connections
        .iter()
        .map(|c| (c.index.to_string(), c.feed.name()))
        .collect();
    t.family(
        "pinfeed_connection_state",
        "gauge",
        "1 for the current state of each upstream venue connection.",
    );
    for (c, (i, feed)) in run.connections.iter().zip(&ids) {
        let now = c.state();
        for s in [
            ConnState::Connecting,
            ConnState::Connected,
            ConnState::Backoff,
            ConnState::Stopped,
        ] {
            t.value(
                &[("feed", feed), ("connection", i), ("state", s.as_str())],
                (s == now) as u64,
            );
        }
    }
    type Get = fn(&crate::pipeline::ConnStats) -> u64;
    let simple: [(&'static str, &str, Get); 12] = [
        (
            "pinfeed_connection_reconnects_total",
            "Connections established after the first one.",
            |c| load(&c.reconnects),
        ),
        (
            "pinfeed_connection_connect_failures_total",
            "Connection attempts that failed.",
            |c| load(&c.connect_failures),
        ),
        (
            "pinfeed_connection_silence_timeouts_total",
            "Connections ended by the silence watchdog.",
            |c| load(&c.silence_timeouts),
        ),
        (
            "pinfeed_connection_received_bytes_total",
            "Payload bytes received from the venue.",
            |c| load(&c.bytes),
        ),
        (
            "pinfeed_connection_keepalives_sent_total",
            "Keep-alive frames sent to the venue.",
            |c| load(&c.keepalives_sent),
        ),
        (
            "pinfeed_connection_heartbeats_answered_total",
            "Venue heartbeats answered.",
            |c| load(&c.heartbeats_answered),
        ),
        (
            "pinfeed_connection_books_lost_total",
            "Book messages with an event dropped on a full ingest ring.",
            |c| load(&c.books_lost),
        ),
        (
            "pinfeed_connection_binary_frames_total",
            "Binary data frames received.",
            |c| load(&c.binary_frames),
        ),
        (
            "pinfeed_connection_book_gaps_total",
            "Sequence gaps in the books the connection carries.",
            |c| load(&c.book_gaps),
        ),
        (
            "pinfeed_connection_book_resyncs_total",
            "Times a book the connection carries left synced.",
            |c| load(&c.book_resyncs),
        ),
        (
            "pinfeed_connection_book_checksum_failures_total",
            "Checksum mismatches in the books the connection carries.",
            |c| load(&c.book_checksum_failures),
        ),
        (
            "pinfeed_connection_book_stale_deltas_total",
            "Deltas the connection's books already covered (repeated frames), skipped.",
            |c| load(&c.book_stale_deltas),
        ),
    ];
    for (name, help, get) in simple {
        t.family(name, "counter", help);
        for (c, (i, feed)) in run.connections.iter().zip(&ids) {
            t.value(&[("feed", feed), ("connection", i)], get(c));
        }
    }
    let gauges: [(&'static str, &str, Get); 2] = [
        (
            "pinfeed_connection_books",
            "Books the connection carries.",
            |c| load(&c.books),
        ),
        (
            "pinfeed_connection_books_synced",
            "Books of the connection currently synced.",
            |c| load(&c.books_synced),
        ),
    ];
    for (name, help, get) in gauges {
        t.family(name, "gauge", help);
        for (c, (i, feed)) in run.connections.iter().zip(&ids) {
            t.value(&[("feed", feed), ("connection", i)], get(c));
        }
    }
    t.family(
        "pinfeed_frames_total",
        "counter",
        "Venue frames parsed, by kind.",
    );
    for (c, (i, feed)) in run.connections.iter().zip(&ids) {
        for (k, kind) in FrameKind::ALL.iter().enumerate() {
            t.value(
                &[("feed", feed), ("connection", i), ("kind", kind.name())],
                load(&c.frames[k]),
            );
        }
    }
    t.family(
        "pinfeed_connection_ends_total",
        "counter",
        "Upstream sessions ended, by cause (venue_close, reset, message_too_big, protocol_error, silence_timeout, requested, other).",
    );
    for (c, (i, feed)) in run.connections.iter().zip(&ids) {
        for (k, cause) in crate::pipeline::stats::ConnEnd::ALL.iter().enumerate() {
            t.value(
                &[("feed", feed), ("connection", i), ("cause", cause.name())],
                load(&c.ends[k]),
            );
        }
    }
    t.family(
        "pinfeed_parse_errors_total",
        "counter",
        "Venue frames that failed to parse, by kind of error.",
    );
    for (c, (i, feed)) in run.connections.iter().zip(&ids) {
        for (k, kind) in ParseError::KIND_NAMES.iter().enumerate() {
            t.value(
                &[("feed", feed), ("connection", i), ("kind", kind)],
                load(&c.parse_errors[k]),
            );
        }
    }
}

fn book(t: &mut Text, run: &RunStats) {
    let b = &run.book;
    t.one(
        "pinfeed_books",
        "gauge",
        "Order books registered.",
        load(&b.books),
    );
    t.one(
        "pinfeed_books_synced",
        "gauge",
        "Order books currently synced.",
        load(&b.books_synced),
    );
    let counters: [(&'static str, &str, &AtomicU64); 16] = [
        (
            "pinfeed_book_snapshots_total",
            "Book snapshots applied.",
            &b.snapshots,
        ),
        (
            "pinfeed_book_deltas_total",
            "Book deltas applied.",
            &b.deltas,
        ),
        (
            "pinfeed_book_gaps_total",
            "Sequence gaps detected, all books.",
            &b.gaps,
        ),
        (
            "pinfeed_book_resyncs_total",
            "Times a book left synced, all reasons.",
            &b.resyncs,
        ),
        (
            "pinfeed_book_checksum_failures_total",
            "Venue book checksums that did not match.",
            &b.checksum_failures,
        ),
        (
            "pinfeed_book_messages_published_total",
            "Book messages published to the fan-out.",
            &b.book_messages_published,
        ),
        (
            "pinfeed_book_messages_dropped_total",
            "Book messages that did not fit the fan-out ring.",
            &b.book_messages_dropped,
        ),
        (
            "pinfeed_book_notices_coalesced_total",
            "Slot notices not sent: the shard still had one of the same book queued.",
            &b.book_notices_coalesced,
        ),
        (
            "pinfeed_snapshot_requests_served_total",
            "book_change snapshot requests of the fan-out shards answered with a full book.",
            &b.snapshot_requests_served,
        ),
        (
            "pinfeed_book_requests_requeued_total",
            "Resync requests (resubscribe, reconnect, REST snapshot) that found their channel full and were asked again.",
            &b.requests_requeued,
        ),
        (
            "pinfeed_book_truncated_messages_total",
            "Book messages cut short by an upstream drop.",
            &b.truncated_messages,
        ),
        (
            "pinfeed_book_invalidations_total",
            "book_invalid messages published.",
            &b.invalidations,
        ),
        (
            "pinfeed_book_rest_requests_total",
            "Snapshot requests sent to the REST thread.",
            &b.rest_requests,
        ),
        (
            "pinfeed_book_resubscribes_total",
            "Resubscribe requests sent to ingest threads.",
            &b.resubscribes,
        ),
        (
            "pinfeed_book_resyncs_deferred_total",
            "Resync requests held back by the per-instrument backoff.",
            &b.resyncs_deferred,
        ),
        (
            "pinfeed_book_resync_budget_reconnects_total",
            "Connections rebuilt for spending their resync budget.",
            &b.resync_budget_reconnects,
        ),
    ];
    for (name, help, c) in counters {
        t.one(name, "counter", help, load(c));
    }
    t.family(
        "pinfeed_book_resyncs_by_reason_total",
        "counter",
        "Times each book left synced, by reason.",
    );
    for b in run.book_resyncs.iter() {
        for (reason, v) in crate::book::ResyncReason::ALL.iter().zip(&b.by_reason) {
            t.value(
                &[
                    ("exchange", b.exchange.id()),
                    ("symbol", &b.symbol),
                    ("reason", reason.name()),
                ],
                load(v),
            );
        }
    }
    t.one(
        "pinfeed_trades_total",
        "counter",
        "Trades published to the fan-out (trade lanes and book thread).",
        run.trades(),
    );
    let r = &run.rest;
    let rest: [(&'static str, &str, &AtomicU64); 6] = [
        (
            "pinfeed_rest_rate_limited_total",
            "REST requests answered 429 or 418 (rate limited; Retry-After honoured).",
            &r.rate_limited,
        ),
        (
            "pinfeed_rest_snapshots_total",
            "REST snapshot bodies fetched and parsed.",
            &r.snapshots,
        ),
        (
            "pinfeed_rest_polls_total",
            "REST poll bodies fetched and parsed.",
            &r.polls,
        ),
        (
            "pinfeed_rest_failures_total",
            "REST requests that failed.",
            &r.failures,
        ),
        (
            "pinfeed_rest_parse_errors_total",
            "REST bodies that did not parse.",
            &r.parse_errors,
        ),
        (
            "pinfeed_rest_received_bytes_total",
            "REST body bytes received.",
            &r.bytes,
        ),
    ];
    for (name, help, c) in rest {
        t.one(name, "counter", help, load(c));
    }
}

fn fanout(t: &mut Text, f: &ShardStats) {
    let c = f.load();
    t.one("pinfeed_clients", "gauge", "Connected clients.", c.clients);
    t.one(
        "pinfeed_fanout_shards",
        "gauge",
        "Fan-out shards (threads owning client sockets).",
        f.shards.len() as u64,
    );
    let counters: [(&'static str, &str, u64); 23] = [
        (
            "pinfeed_fanout_replay_handoffs_total",
            "Upgrades to /ws-replay-normalized handed to the replay API.",
            c.replay_handoffs,
        ),
        (
            "pinfeed_fanout_lane_messages_total",
            "Messages taken from the trade lanes (trades, liquidations, tickers).",
            c.lane_msgs,
        ),
        (
            "pinfeed_fanout_book_states_conflated_total",
            "Book notices skipped because the slot already held a later state.",
            c.book_states_conflated,
        ),
        (
            "pinfeed_fanout_slot_read_retries_total",
            "Latest-state slot reads retried because a write overlapped.",
            c.slot_read_retries,
        ),
        (
            "pinfeed_fanout_snapshot_requests_total",
            "Full-book snapshot requests sent to the book thread (book_change joins, recoveries).",
            c.snapshot_requests,
        ),
        (
            "pinfeed_fanout_snapshot_requests_dropped_total",
            "Snapshot requests that found the request ring full.",
            c.snapshot_requests_dropped,
        ),
        (
            "pinfeed_client_requested_snapshots_total",
            "book_change snapshots queued to waiting subscribers in answer to a request.",
            c.resnapshots_sent,
        ),
        (
            "pinfeed_client_connections_total",
            "Client TCP connections accepted.",
            c.accepted,
        ),
        (
            "pinfeed_client_sessions_total",
            "Client WebSocket sessions that subscribed.",
            c.sessions,
        ),
        (
            "pinfeed_fanout_messages_total",
            "Messages taken from the book thread's rings and the trade lanes.",
            c.fanout_msgs,
        ),
        (
            "pinfeed_client_messages_sent_total",
            "Messages queued to clients (one per client per message).",
            c.messages_sent,
        ),
        (
            "pinfeed_client_sent_bytes_total",
            "Bytes written to client sockets.",
            c.bytes_sent,
        ),
        (
            "pinfeed_client_socket_writes_total",
            "write calls on client sockets (messages per call = messages / writes).",
            c.socket_writes,
        ),
        (
            "pinfeed_client_conflations_total",
            "Book messages dropped for clients over their soft limit.",
            c.conflations,
        ),
        (
            "pinfeed_client_resnapshots_total",
            "Fresh state sent after a conflated backlog drained.",
            c.resnapshots,
        ),
        (
            "pinfeed_timer_snapshots_skipped_total",
            "Timer snapshots due while every subscriber was conflating (not encoded).",
            c.timer_snapshots_skipped,
        ),
        (
            "pinfeed_client_slow_closes_total",
            "Clients closed with 1008 over their hard limit.",
            c.slow_client_closes,
        ),
        (
            "pinfeed_client_slow_close_dropped_bytes_total",
            "Queued bytes dropped when closing slow clients (the close goes first).",
            c.slow_close_dropped_bytes,
        ),
        (
            "pinfeed_client_heartbeat_timeouts_total",
            "Clients terminated by the heartbeat.",
            c.heartbeat_timeouts,
        ),
        (
            "pinfeed_client_handshake_timeouts_total",
            "Connections closed for not completing the request within handshake_timeout_ms.",
            c.handshake_timeouts,
        ),
        (
            "pinfeed_client_handshakes_evicted_total",
            "Oldest pending handshakes closed to make room (max_pending_handshakes).",
            c.handshakes_evicted,
        ),
        (
            "pinfeed_client_handshakes_refused_total",
            "Connections refused: pending handshakes full or per-IP limit.",
            c.handshakes_refused,
        ),
        (
            "pinfeed_client_disconnects_total",
            "Clients that closed or failed on I/O.",
            c.client_disconnects,
        ),
    ];
    for (name, help, v) in counters {
        t.one(name, "counter", help, v);
    }
    t.family(
        "pinfeed_client_bad_requests_total",
        "counter",
        "Refused client requests and connections, by kind.",
    );
    for kind in BadRequest::ALL {
        t.value(&[("kind", kind.name())], c.bad_request(kind));
    }
}

fn latency(t: &mut Text, l: &Latency) {
    let snap = l.snapshot();
    t.family(
        "pinfeed_stage_latency_seconds",
        "summary",
        "Latency between pipeline stamps, cumulative since start or reset.",
    );
    for q in &snap.cumulative {
        let stage = q.stage.name();
        for (label, ns) in [
            ("0.5", q.p50_ns),
            ("0.9", q.p90_ns),
            ("0.99", q.p99_ns),
            ("0.999", q.p999_ns),
            ("1", q.max_ns),
        ] {
            t.sample(
                "",
                &[("stage", stage), ("quantile", label)],
                ns as f64 / 1e9,
            );
        }
        t.sample("_sum", &[("stage", stage)], q.sum_ns / 1e9);
        t.sample("_count", &[("stage", stage)], q.count as f64);
    }
    t.family(
        "pinfeed_stage_latency_clamped_total",
        "counter",
        "Stage values over 60 s recorded as 60 s.",
    );
    for s in Stage::ALL {
        t.value(&[("stage", s.name())], snap.stage(s).clamped);
    }
    t.one(
        "pinfeed_venue_clock_skew_total",
        "counter",
        "Venue event times later than the local read time (recorded as 0).",
        snap.negative_skews,
    );
    t.one(
        "pinfeed_latency_stamps_skipped_total",
        "counter",
        "Client messages not stamped because the client's stamp queue was full.",
        snap.stamps_skipped,
    );
}

/// `GET /health-check`: tardis-machine's answer (its `src/http/healthCheck.ts`), HTTP 200 with
/// `{"status":"Healthy","uptimeHours":H,"timestampMs":MS,"memoryInfo":{"rssMB":MB}}`: uptime
/// in hours (2 decimals), wall clock in unix ms, resident set in MiB (1 decimal). Node's
/// `heapTotalMB`, `heapUsedMB` and `externalMB` have no meaning here and are left out.
pub fn health_check(started: std::time::Instant) -> String {
    let uptime_hours = started.elapsed().as_secs_f64() / 3600.0;
    let now_ms = crate::clock::wall_ns().div_euclid(1_000_000);
    let mut body = format!(
        "{{\"status\":\"Healthy\",\"uptimeHours\":{},\"timestampMs\":{now_ms}",
        (uptime_hours * 100.0).round() / 100.0
    );
    if let Some((rss, _)) = process_memory_bytes() {
        let mb = (rss as f64 / (1024.0 * 1024.0) * 10.0).round() / 10.0;
        let _ = write!(body, ",\"memoryInfo\":{{\"rssMB\":{mb}}}");
    }
    body.push('}');
    body
}

/// `GET /ready`: whether every upstream venue connection is connected and every book it
/// carries is synced (a load balancer routes on the status: 200 ready, 503 not). The body
/// says which: `{"ready":bool,"connections":[{"feed","connection","state","books",
/// "booksSynced","ready"}]}`, one entry per connection in config order. A run without venue
/// connections is ready.
pub fn readiness(run: &RunStats) -> (bool, String) {
    let mut all = true;
    let mut entries = Vec::with_capacity(run.connections.len());
    for c in &run.connections {
        let state = c.state();
        let (books, synced) = (load(&c.books), load(&c.books_synced));
        let ready = state == ConnState::Connected && synced == books;
        all &= ready;
        entries.push(format!(
            "{{\"feed\":\"{}\",\"connection\":{},\"state\":\"{}\",\"books\":{books},\
             \"booksSynced\":{synced},\"ready\":{ready}}}",
            c.feed.name(),
            c.index,
            state.as_str()
        ));
    }
    (
        all,
        format!(
            "{{\"ready\":{all},\"connections\":[{}]}}",
            entries.join(",")
        ),
    )
}

/// The `/metrics` HTTP server thread (see [`super::http`] for its limits).
pub struct MetricsServer {
    server: HttpServer,
}

impl MetricsServer {
    /// Binds `addr` (port 0: any free port) and serves `GET /metrics` from a thread named
    /// `metrics-http`, with the default [`HttpLimits`].
    ///
    /// # Errors
    /// The bind error.
    pub fn start(addr: SocketAddr, sources: Sources) -> std::io::Result<MetricsServer> {
        MetricsServer::start_with(addr, sources, HttpLimits::default())
    }

    /// [`MetricsServer::start`] with explicit limits.
    ///
    /// # Errors
    /// The bind error.
    pub fn start_with(
        addr: SocketAddr,
        sources: Sources,
        limits: HttpLimits,
    ) -> std::io::Result<MetricsServer> {
        let counters = Arc::new(HttpCounters::default());
        let own = counters.clone();
        let started = std::time::Instant::now();
        let server = HttpServer::start(
            addr,
            "metrics-http",
            limits,
            counters,
            move |request: &Request| {
                // tardis-machine allows a trailing `/`
                let path = match request.path.strip_suffix('/') {
                    Some(p) if !p.is_empty() => p,
                    _ => request.path,
                };
                if let (Some(replay), "/replay-normalized") = (&sources.replay, path) {
                    return if request.method == "GET" {
                        replay.clone().http(request.query)
                    } else {
                        Reply::Answer((405, "text/plain", "method not allowed\n".into()))
                    };
                }
                Reply::Answer(match (request.method, path) {
                    ("GET" | "HEAD", "/metrics") => {
                        let mut body = render(&sources);
                        render_http(&mut body, &own);
                        (200, CONTENT_TYPE, body)
                    }
                    ("GET" | "HEAD", "/health-check") => {
                        (200, "application/json", health_check(started))
                    }
                    ("GET" | "HEAD", "/ready") => {
                        let (ready, body) = readiness(&sources.run);
                        (if ready { 200 } else { 503 }, "application/json", body)
                    }
                    (_, "/metrics" | "/health-check" | "/ready") => {
                        (405, "text/plain", "method not allowed\n".into())
                    }
                    _ => (
                        404,
                        "text/plain",
                        "not found; try /metrics, /health-check or /ready\n".into(),
                    ),
                })
            },
        )?;
        Ok(MetricsServer { server })
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.server.local_addr()
    }

    /// Stops serving and joins the thread.
    pub fn stop(self) {
        self.server.stop();
    }
}

/// The `/metrics` server's own counters.
fn render_http(out: &mut String, c: &HttpCounters) {
    let mut t = Text {
        out: std::mem::take(out),
        family: "",
    };
    t.family(
        "pinfeed_metrics_http_total",
        "counter",
        "Requests and refusals of the /metrics server, by outcome.",
    );
    for (outcome, v) in [
        ("answered", &c.requests),
        ("refused_busy", &c.refused),
        ("evicted", &c.evicted),
        ("accept_error", &c.accept_errors),
        ("timeout", &c.timeouts),
        ("too_large", &c.too_large),
        ("malformed", &c.malformed),
    ] {
        t.value(&[("outcome", outcome)], v.load(Ordering::Relaxed));
    }
    *out = t.out;
}

//! `pinfeed run`: wires the pipeline of DESIGN.md and runs it until ctrl-c.
//!
//! ```text
//! ingest thread per connection ──ring──┐
//! REST cold thread ──────────────ring──┼─> book thread ──ring──> fan-out thread ──> clients
//!        ^ crossbeam (snapshot requests) ┘        │ crossbeam (resubscribe / reconnect)
//!        └────────────────────────────────────────┘──────────────> ingest threads
//! ```
//!
//! [`start`] interns the configured instruments, registers their books, validates core ids,
//! binds the client listener and spawns every thread (hot ones named and pinned);
//! [`RunHandle::stop`] stops ingest, lets the book thread drain, stops the fan-out (clients
//! get a close frame) and returns the final books and counters. A status line goes to stderr
//! every 10 s and at exit.

mod layout;

pub use layout::{Layout, layout};
use layout::{Queues, build_queues};

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::book::BookEngine;
use crate::config::{Config, WaitMode};
use crate::fanout::{
    FanoutInputs, FanoutMsg, Server, ShardStats, SnapshotRequests, StopHandle, Tuning,
};
use crate::ingest::rest::{RestClient, RestConnection, RestWorker};
use crate::ingest::{Ingest, TradeLanes, tls};
use crate::metrics::{
    Exporter, ExporterError, ExporterHandle, Latency, LatencyConfig, LatencySnapshot,
    MetricsServer, Sources, Stage,
};
use crate::model::{Exchange, InstrumentId, Instruments};
use crate::pipeline::book_thread::ShardOut;
use crate::pipeline::pin::{self, PinError, PinnedThread};
use crate::pipeline::stats::{BookResyncs, MemoryStats};
use crate::pipeline::{BookThread, RunStats, WaitStrategy, Wakeup};
use crate::replay_api::ReplayService;

/// Why `pinfeed run` could not start. Each names the field, flag or address at fault.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// A bad flag or a config value that only makes sense at run time.
    #[error("{field}: {message}")]
    Invalid {
        /// Flag or config field.
        field: String,
        /// What is wrong.
        message: String,
    },
    /// A core that does not exist, or pinning failed.
    #[error(transparent)]
    Pin(#[from] PinError),
    /// The CA file of a venue could not be used.
    #[error("{field}: {source}")]
    Tls {
        /// `venue[i].ca_file`.
        field: String,
        /// The cause.
        source: tls::TlsError,
    },
    /// The client listener could not be bound.
    #[error("server.listen {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The cause.
        source: std::io::Error,
    },
    /// `[replay] dir` (`--replay-dir`) cannot be read.
    #[error("replay.dir {path}: {source}")]
    ReplayDir {
        /// The directory.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The `/metrics` listener could not be bound.
    #[error("--metrics-listen {addr}: {source}")]
    MetricsBind {
        /// The address.
        addr: SocketAddr,
        /// The cause.
        source: std::io::Error,
    },
    /// The latency exporter could not start (dump directory).
    #[error(transparent)]
    Exporter(#[from] ExporterError),
}

/// Sizes and hooks of a run. [`RunOptions::default`] is what `pinfeed run` uses.
#[derive(Clone, Debug)]
pub struct RunOptions {
    /// Status line period; `None`: no periodic line. Default 10 s.
    pub status_interval: Option<Duration>,
    /// Test hook: do not start the fan-out server; hand its rings to the caller
    /// ([`RunHandle::fanout`]); the book thread publishes every delta to them.
    pub external_fanout: bool,
    /// Stage latency recording and HDR dumps (`--hdr-dir`, `--hdr-interval`).
    pub latency: LatencyConfig,
    /// `--metrics-listen`: where `GET /metrics` is served; `None`: not served. Default
    /// `None` here; `pinfeed run` defaults to 127.0.0.1:9101.
    pub metrics_listen: Option<SocketAddr>,
    /// True: a `metrics_listen` that cannot be bound is reported on stderr and the run goes
    /// on without `/metrics` (how `pinfeed run` treats its default address, so a second
    /// engine on a host still starts); false: it is a [`RunError::MetricsBind`]. Default
    /// false.
    pub metrics_listen_best_effort: bool,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            status_interval: Some(Duration::from_secs(10)),
            external_fanout: false,
            latency: LatencyConfig::default(),
            metrics_listen: None,
            metrics_listen_best_effort: false,
        }
    }
}

/// Command-line overrides of the `[cpu]` section.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CpuOverrides {
    /// `--cpu-ingest LIST`.
    pub ingest: Option<Vec<usize>>,
    /// `--cpu-book N`.
    pub book: Option<usize>,
    /// `--cpu-fanout LIST`: one fan-out shard per core.
    pub fanout: Option<Vec<usize>>,
    /// `--wait spin|backoff`.
    pub wait: Option<WaitMode>,
    /// `--no-pin`.
    pub no_pin: bool,
}

impl CpuOverrides {
    /// Applies the flags over the config file's `[cpu]`.
    pub fn apply(&self, config: &mut Config) {
        if let Some(list) = &self.ingest {
            config.cpu.ingest = list.clone();
        }
        if let Some(n) = self.book {
            config.cpu.book = n;
        }
        if let Some(list) = &self.fanout {
            config.cpu.fanout = list.clone();
        }
        if let Some(w) = self.wait {
            config.cpu.wait = w;
        }
        if self.no_pin {
            config.cpu.pin = false;
        }
    }
}

/// Parses a core list: `0`, `0,2,3`, `0-3`, `0-1,4`.
///
/// # Errors
/// [`RunError::Invalid`] naming `flag`.
pub fn parse_core_list(flag: &str, text: &str) -> Result<Vec<usize>, RunError> {
    let bad = || RunError::Invalid {
        field: flag.to_string(),
        message: format!("`{text}` is not a core list (e.g. `0`, `0,2`, `0-3`)"),
    };
    let mut cores = Vec::new();
    for part in text.split(',') {
        let part = part.trim();
        match part.split_once('-') {
            Some((a, b)) => {
                let a: usize = a.trim().parse().map_err(|_| bad())?;
                let b: usize = b.trim().parse().map_err(|_| bad())?;
                if a > b || b - a > 4096 {
                    return Err(bad());
                }
                cores.extend(a..=b);
            }
            None => cores.push(part.parse().map_err(|_| bad())?),
        }
    }
    if cores.is_empty() {
        return Err(bad());
    }
    Ok(cores)
}

/// Parses `--metrics-listen`: `HOST:PORT`, or `off` (also `none`, `0`, empty) for no
/// `/metrics` server.
///
/// # Errors
/// [`RunError::Invalid`] naming `--metrics-listen`.
pub fn parse_metrics_listen(text: &str) -> Result<Option<SocketAddr>, RunError> {
    match text.trim() {
        "" | "off" | "none" | "0" => Ok(None),
        t => t.parse().map(Some).map_err(|_| RunError::Invalid {
            field: "--metrics-listen".into(),
            message: format!("`{t}` is not HOST:PORT (e.g. 127.0.0.1:9101) or `off`"),
        }),
    }
}

/// What [`RunOptions::external_fanout`] hands over instead of a fan-out server: the book
/// thread's ring (every delta, every notice) and one trade lane per connection.
pub struct ExternalFanout {
    /// The book thread's ring.
    pub book: rtrb::Consumer<FanoutMsg>,
    /// Trade lanes, by connection.
    pub lanes: Vec<rtrb::Consumer<FanoutMsg>>,
}

impl ExternalFanout {
    /// The next message: the trade lanes first, then the book ring (the order the fan-out
    /// drains them in; order holds within each ring).
    ///
    /// # Errors
    /// [`rtrb::PopError::Empty`] when every ring is empty.
    pub fn pop(&mut self) -> Result<FanoutMsg, rtrb::PopError> {
        for lane in &mut self.lanes {
            if let Ok(m) = lane.pop() {
                return Ok(m);
            }
        }
        self.book.pop()
    }
}

/// A running pipeline.
pub struct RunHandle {
    /// Every counter.
    pub stats: Arc<RunStats>,
    /// Every subscribed instrument.
    pub instruments: Arc<Instruments>,
    /// The client listener's address (`None` with [`RunOptions::external_fanout`]).
    pub local_addr: Option<SocketAddr>,
    /// With [`RunOptions::external_fanout`]: the book thread's ring and the trade lanes.
    pub fanout: Option<ExternalFanout>,
    /// The fan-out shards' counters (`None` with [`RunOptions::external_fanout`]).
    pub fanout_stats: Option<ShardStats>,
    stop_ingest: Arc<AtomicBool>,
    stop_rest: Arc<AtomicBool>,
    stop_status: Arc<AtomicBool>,
    ingest: Vec<PinnedThread<()>>,
    rest: Option<JoinHandle<()>>,
    book: PinnedThread<BookEngine>,
    fanout_threads: Vec<PinnedThread<()>>,
    fanout_stops: Vec<StopHandle>,
    status: Option<JoinHandle<()>>,
    trim: Option<JoinHandle<()>>,
    /// The address `/metrics` is served on, when it is.
    pub metrics_addr: Option<SocketAddr>,
    /// The replay API, when `[replay] dir` is set.
    pub replay: Option<Arc<ReplayService>>,
    latency: Latency,
    exporter: Option<ExporterHandle>,
    metrics: Option<MetricsServer>,
}

/// What a stopped run leaves.
pub struct RunReport {
    /// The final books and their counters.
    pub engine: BookEngine,
    /// Every counter.
    pub stats: Arc<RunStats>,
    /// Every subscribed instrument.
    pub instruments: Arc<Instruments>,
}

/// File descriptors the engine holds besides client sockets: stdio, polls, wakers, dump
/// files and the REST client's pool.
pub const FD_RESERVE: u64 = 64;

/// Descriptors a run may need at once: `max_clients` client sockets, two per venue connection
/// (WebSocket and REST), the `/metrics` server's connection limit, and [`FD_RESERVE`].
pub fn fd_budget(config: &Config) -> u64 {
    config.server.max_clients as u64
        + 2 * config.connections.len() as u64
        + config.metrics.max_connections as u64
        + FD_RESERVE
}

/// Raises the soft `RLIMIT_NOFILE` to the hard limit, and refuses to start when the hard limit
/// cannot cover [`fd_budget`]: a run that would hit `EMFILE` under load fails at start, naming
/// the numbers, instead.
///
/// # Errors
/// [`RunError::Invalid`] on `server.max_clients` when the limit is too low.
pub fn ensure_fd_budget(config: &Config) -> Result<(), RunError> {
    use crate::limits::{fd_limit, raise_fd_limit};
    let Some(limit) = fd_limit() else {
        return Ok(());
    };
    let need = fd_budget(config);
    if limit.soft < limit.hard {
        // best effort: a failure leaves the soft limit, judged below
        let _ = raise_fd_limit(limit.hard, limit.hard);
    }
    let soft = fd_limit().map_or(limit.soft, |l| l.soft);
    if soft < need {
        return Err(RunError::Invalid {
            field: "server.max_clients".into(),
            message: format!(
                "needs {need} file descriptors ({} clients + {} venue connections x 2 + {} \
                 metrics connections + {FD_RESERVE} reserved), but RLIMIT_NOFILE allows {soft} \
                 (hard limit {}); lower max_clients or raise the limit (ulimit -Hn)",
                config.server.max_clients,
                config.connections.len(),
                config.metrics.max_connections,
                limit.hard
            ),
        });
    }
    Ok(())
}

/// Starts the pipeline for `config`.
///
/// # Errors
/// A [`RunError`] naming the core, CA file, listen address or config field at fault.
pub fn start(config: &Config, options: RunOptions) -> Result<RunHandle, RunError> {
    ensure_fd_budget(config)?;
    crate::limits::fix_mmap_threshold();
    let replay = match &config.replay.dir {
        Some(dir) => {
            crate::replay_api::capture_files(dir).map_err(|source| RunError::ReplayDir {
                path: dir.clone(),
                source,
            })?;
            if options.metrics_listen.is_none() {
                eprintln!("pinfeed: replay.dir is set but the HTTP listener is off: no replay");
            }
            Some(Arc::new(ReplayService::new(
                dir.clone(),
                config.replay.limits(),
            )))
        }
        None => None,
    };
    let cpu = &config.cpu;
    if cpu.pin {
        let available = pin::available_cores()?;
        pin::validate_config(cpu, &available)?;
    }
    let core = |c: usize| cpu.pin.then_some(c);
    let Layout {
        instruments,
        engine,
        topology,
        plans,
    } = layout(config)?;
    let instruments = Arc::new(instruments);

    // trust roots per connection, checked before anything starts
    let mut tls_configs = Vec::new();
    let mut rest_connections = Vec::new();
    for (i, conn) in config.connections.iter().enumerate() {
        let tls_err = |source| RunError::Tls {
            field: format!("venue[{i}].ca_file"),
            source,
        };
        let roots = tls::trust_roots(conn.ca_file.as_deref()).map_err(tls_err)?;
        tls_configs.push(tls::client_config(&roots).map_err(tls_err)?);
        rest_connections.push(RestConnection {
            feed: conn.feed,
            plan: plans[i].clone(),
            client: RestClient::new(&roots, config.ingest.rest_timeout()),
        });
    }

    let Queues {
        stats,
        ingest_rings,
        inputs,
        rest_tx,
        shard_outs,
        mut shard_inputs,
        mut lanes,
        lane_producers,
        slots,
    } = build_queues(config, &options, instruments.len());
    let mut stats = stats;
    stats.book_resyncs = instruments
        .iter()
        .map(|(_, exchange, symbol)| BookResyncs::new(exchange, symbol))
        .collect();
    let stats = Arc::new(stats);
    let shards = shard_inputs.len();

    // the fan-out servers bind first: a taken port fails before any connection opens
    let servers = if options.external_fanout {
        Vec::new()
    } else {
        // spin: the fan-out busy-polls its sockets and ring instead of sleeping in epoll
        let tuning = Tuning {
            spin: config.cpu.wait == WaitMode::Spin,
            ..Tuning::default()
        };
        Server::bind_shards(&config.server, instruments.clone(), tuning, shards).map_err(
            |source| RunError::Bind {
                addr: config.server.listen,
                source,
            },
        )?
    };
    let mut exporter = Exporter::new(options.latency.clone());
    let latency = exporter.latency();
    let mut servers = servers;
    for s in &mut servers {
        if let Some(r) = &replay {
            s.set_replay(r.clone());
        }
        if let Some(rec) = exporter.recorder(&[
            Stage::AppliedToEncoded,
            Stage::EncodedToWritten,
            Stage::ReadToWritten,
        ]) {
            s.set_latency(rec);
        }
    }
    let fanout_stats = (!servers.is_empty()).then(|| ShardStats {
        shards: servers.iter().map(Server::stats).collect(),
    });
    let metrics = match options.metrics_listen {
        Some(addr) => {
            let sources = Sources {
                run: stats.clone(),
                fanout: fanout_stats.clone(),
                latency: Some(latency.clone()),
                replay: replay.clone(),
            };
            match MetricsServer::start_with(addr, sources, config.metrics.limits()) {
                Ok(m) => Some(m),
                Err(e) if options.metrics_listen_best_effort => {
                    eprintln!("pinfeed: /metrics not served: {addr}: {e}");
                    None
                }
                Err(source) => return Err(RunError::MetricsBind { addr, source }),
            }
        }
        None => None,
    };
    let metrics_addr = metrics.as_ref().map(|m| m.local_addr());
    let local_addr = servers.first().map(Server::local_addr);
    let notifiers: Vec<_> = servers.iter().map(Server::notifier).collect();
    let fanout_stops: Vec<_> = servers.iter().map(Server::stop_handle).collect();

    let (rest_req_tx, rest_req_rx) = crossbeam_channel::bounded(4096);
    let mut control_txs = Vec::new();
    let mut control_rxs = Vec::new();
    for _ in &config.connections {
        let (tx, rx) = crossbeam_channel::bounded(256);
        control_txs.push(tx);
        control_rxs.push(rx);
    }
    let wakeup = Arc::new(Wakeup::new());
    let mut outs = Vec::with_capacity(shards);
    for (s, (out, requests)) in shard_outs.into_iter().enumerate() {
        let out = ShardOut::new(out, notifiers.get(s).cloned());
        outs.push(if options.external_fanout {
            out.with_all_deltas()
        } else {
            out.with_requests(requests)
        });
    }
    let conn_of: Vec<u32> = topology
        .conn_of
        .iter()
        .map(|c| c.map_or(u32::MAX, |c| c as u32))
        .collect();
    let book_thread = BookThread::new(
        engine,
        inputs,
        outs,
        slots.clone(),
        WaitStrategy::from(cpu.wait),
        wakeup.clone(),
        topology,
        rest_req_tx,
        control_txs,
        stats.book.clone(),
    )
    .with_latency(exporter.recorder(&[Stage::PushToApplied]))
    .with_conn_stats(stats.connections.clone())
    .with_book_resyncs(stats.book_resyncs.clone())
    .with_resync_policy(config.resync.clone());
    let book = pin::spawn("book", core(cpu.book), move || book_thread.run())?;
    let external = if options.external_fanout {
        let (book_rx, _) = shard_inputs.remove(0);
        Some(ExternalFanout {
            book: book_rx,
            lanes: lanes.remove(0),
        })
    } else {
        None
    };
    let mut fanout_threads = Vec::with_capacity(servers.len());
    for (s, (server, (book_rx, requests))) in servers.into_iter().zip(shard_inputs).enumerate() {
        let inputs = FanoutInputs {
            book: book_rx,
            lanes: std::mem::take(&mut lanes[s]),
            slots: slots.clone(),
            shard: s,
            requests: Some(SnapshotRequests {
                ring: requests,
                wakeup: wakeup.clone(),
            }),
            conn_of: conn_of.clone(),
        };
        let name = if shards == 1 {
            "fanout".to_string()
        } else {
            format!("fanout-{s}")
        };
        let cores = &cpu.fanout;
        let pinned = core(cores[s % cores.len()]);
        fanout_threads.push(pin::spawn(&name, pinned, move || {
            // the loop returns only on stop or on a poll failure, which ends serving
            if let Err(e) = server.run(inputs) {
                eprintln!("pinfeed: fan-out thread failed: {e}");
            }
        })?);
    }

    let stop_rest = Arc::new(AtomicBool::new(false));
    let worker = RestWorker {
        connections: rest_connections,
        instruments: instruments.clone(),
        ring: rest_tx,
        wakeup: wakeup.clone(),
        stats: stats.rest.clone(),
        requests: rest_req_rx,
        stop: stop_rest.clone(),
    };
    let rest = std::thread::Builder::new()
        .name("rest".into())
        .spawn(move || worker.run())
        .map_err(|source| PinError::Spawn {
            thread: "rest".into(),
            source,
        })?;

    let stop_ingest = Arc::new(AtomicBool::new(false));
    let mut ingest = Vec::new();
    let rings = ingest_rings
        .into_iter()
        .zip(control_rxs)
        .zip(lane_producers);
    for (c, ((ring, control), lane_rings)) in rings.enumerate() {
        let conn = config.connections[c].clone();
        let name = format!("ingest-{c}-{}", conn.feed.name());
        let thread = Ingest {
            index: c,
            conn,
            plan: plans[c].clone(),
            instruments: instruments.clone(),
            tls: tls_configs[c].clone(),
            options: config.ingest.connect_options(),
            ring,
            lanes: Some(TradeLanes::new(
                lane_rings,
                notifiers.clone(),
                instruments.len(),
            )),
            wakeup: wakeup.clone(),
            stats: stats.connections[c].clone(),
            control,
            stop: stop_ingest.clone(),
            latency: exporter.recorder(&[Stage::ReadToPush, Stage::VenueToRead]),
        };
        let cores = &cpu.ingest;
        let pinned = core(cores[c % cores.len()]);
        match pin::spawn(&name, pinned, move || thread.run()) {
            Ok(t) => ingest.push(t),
            Err(e) => {
                stop_ingest.store(true, Ordering::SeqCst);
                return Err(e.into());
            }
        }
    }

    let exporter = match exporter.spawn() {
        Ok(e) => e,
        Err(e) => {
            stop_ingest.store(true, Ordering::SeqCst);
            return Err(e.into());
        }
    };

    let stop_status = Arc::new(AtomicBool::new(false));
    let status = options.status_interval.map(|every| {
        let (stats, stop) = (stats.clone(), stop_status.clone());
        let latency = latency.clone();
        std::thread::Builder::new()
            .name("status".into())
            .spawn(move || {
                let mut next = Instant::now() + every;
                while !stop.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(100));
                    if Instant::now() >= next {
                        eprintln!("{}", stats.status_line());
                        print_latency_status(&latency);
                        next += every;
                    }
                }
            })
            .expect("spawn status thread")
    });
    let trim = (config.memory.trim_interval_ms > 0)
        .then(|| {
            spawn_trim(
                Duration::from_millis(config.memory.trim_interval_ms),
                stats.memory.clone(),
                stop_status.clone(),
            )
            .map_err(|e| eprintln!("pinfeed: no allocator trim thread: {e}"))
            .ok()
        })
        .flatten();

    Ok(RunHandle {
        stats,
        instruments,
        local_addr,
        fanout: external,
        fanout_stats,
        stop_ingest,
        stop_rest,
        stop_status,
        ingest,
        rest: Some(rest),
        book,
        fanout_threads,
        fanout_stops,
        status,
        trim,
        metrics_addr,
        replay,
        latency,
        exporter: Some(exporter),
        metrics,
    })
}

impl RunHandle {
    /// Stops the run: ingest first (each connection closes), then the REST thread; the book
    /// thread drains its rings and ends; then the fan-out closes its clients. Prints the
    /// final status line and returns the final books.
    pub fn stop(mut self) -> RunReport {
        self.stop_ingest.store(true, Ordering::SeqCst);
        self.stop_rest.store(true, Ordering::SeqCst);
        for t in self.ingest.drain(..) {
            let _ = t.join();
        }
        if let Some(t) = self.rest.take() {
            let _ = t.join();
        }
        let engine = self.book.join().unwrap_or_default();
        for stop in self.fanout_stops.drain(..) {
            stop.stop();
        }
        for t in self.fanout_threads.drain(..) {
            let _ = t.join();
        }
        self.stop_status.store(true, Ordering::SeqCst);
        for t in [self.status.take(), self.trim.take()].into_iter().flatten() {
            let _ = t.join();
        }
        // the hot threads handed their last intervals off as they ended
        if let Some(e) = self.exporter.take() {
            e.stop();
        }
        if let Some(m) = self.metrics.take() {
            m.stop();
        }
        eprintln!("{}", self.stats.status_line());
        print_latency_status(&self.latency);
        RunReport {
            engine,
            stats: self.stats,
            instruments: self.instruments,
        }
    }

    /// Per-stage latency quantiles (cumulative since start or the last
    /// [`RunHandle::reset_latency`], and of the last `hdr_interval`). Values reach the
    /// exporter once a second, so the newest second may be missing.
    pub fn latency(&self) -> LatencySnapshot {
        self.latency.snapshot()
    }

    /// Empties the cumulative latency histograms (e.g. after a benchmark's warm-up).
    pub fn reset_latency(&self) {
        self.latency.reset();
    }

    /// A handle on the latency histograms for another thread (status lines).
    pub fn latency_handle(&self) -> Latency {
        self.latency.clone()
    }

    /// Instrument id of `(exchange, symbol)`.
    pub fn instrument(&self, exchange: Exchange, symbol: &str) -> Option<InstrumentId> {
        self.instruments.get(exchange, symbol)
    }
}

/// `read→written p50=12.3us p99=45.6us n=1234` from the cumulative histograms; `None`
/// when latency is off or nothing was recorded yet.
pub fn latency_status(latency: &Latency) -> Option<String> {
    if !latency.enabled() {
        return None;
    }
    let snap = latency.snapshot();
    let q = snap.stage(Stage::ReadToWritten);
    (q.count > 0).then(|| {
        format!(
            "read→written p50={:.1}us p99={:.1}us n={}",
            q.p50_ns as f64 / 1e3,
            q.p99_ns as f64 / 1e3,
            q.count
        )
    })
}

/// Starts the cold thread that trims the allocator every `every` until `stop`
/// ([`crate::limits::trim_allocator`]), counting each trim and the resident set it gave back
/// in `stats`.
///
/// # Errors
/// The thread could not be spawned.
fn spawn_trim(
    every: Duration,
    stats: Arc<MemoryStats>,
    stop: Arc<AtomicBool>,
) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name("mem-trim".into())
        .spawn(move || {
            let rss = || crate::metrics::process_memory_bytes().map_or(0, |(rss, _)| rss);
            let mut next = Instant::now() + every;
            while !stop.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(100).min(every));
                if Instant::now() < next {
                    continue;
                }
                let before = rss();
                crate::limits::trim_allocator();
                let released = before.saturating_sub(rss());
                stats.trims.fetch_add(1, Ordering::Relaxed);
                stats
                    .trim_released_bytes
                    .fetch_add(released, Ordering::Relaxed);
                next = Instant::now() + every;
            }
        })
}

/// The latency line under the status line (stderr), when there is one.
fn print_latency_status(latency: &Latency) {
    if let Some(line) = latency_status(latency) {
        eprintln!("pinfeed: latency {line}");
    }
}

/// `pinfeed run`: starts the pipeline and runs until ctrl-c (a second ctrl-c exits at once).
///
/// # Errors
/// A [`RunError`] when the pipeline cannot start.
pub fn run_until_ctrl_c(config: &Config) -> Result<(), RunError> {
    run_until_ctrl_c_with(config, RunOptions::default())
}

/// `pinfeed run` with explicit options (`--hdr-dir`, `--metrics-listen`, ...): starts the
/// pipeline and runs until ctrl-c; on the first ctrl-c stops in order and writes the HDR
/// dumps (a second ctrl-c exits at once).
///
/// # Errors
/// A [`RunError`] when the pipeline cannot start.
pub fn run_until_ctrl_c_with(config: &Config, options: RunOptions) -> Result<(), RunError> {
    let (tx, rx) = crossbeam_channel::bounded::<()>(1);
    let seen = Arc::new(AtomicBool::new(false));
    ctrlc::set_handler(move || {
        if seen.swap(true, Ordering::SeqCst) {
            std::process::exit(130);
        }
        let _ = tx.try_send(());
    })
    .map_err(|e| RunError::Invalid {
        field: "signal handler".into(),
        message: e.to_string(),
    })?;
    let handle = start(config, options)?;
    if let Some(addr) = handle.metrics_addr {
        eprintln!("pinfeed: metrics at http://{addr}/metrics");
    }
    if let Some(addr) = handle.local_addr {
        eprintln!(
            "pinfeed: serving ws://{addr}/ws-stream-normalized ({} connections, {} instruments); ctrl-c to stop",
            config.connections.len(),
            handle.instruments.len()
        );
    }
    let _ = rx.recv();
    eprintln!("pinfeed: stopping");
    handle.stop();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn core_lists() {
        assert_eq!(parse_core_list("--cpu-ingest", "0").unwrap(), [0]);
        assert_eq!(
            parse_core_list("--cpu-ingest", "0,2, 3").unwrap(),
            [0, 2, 3]
        );
        assert_eq!(
            parse_core_list("--cpu-ingest", "0-2,5").unwrap(),
            [0, 1, 2, 5]
        );
        for bad in ["", "a", "1,,2", "3-1", "-1", "0-99999"] {
            let e = parse_core_list("--cpu-ingest", bad)
                .unwrap_err()
                .to_string();
            assert!(e.starts_with("--cpu-ingest:"), "{bad:?}: {e}");
        }
    }

    #[test]
    fn metrics_listen_flag() {
        assert_eq!(
            parse_metrics_listen("127.0.0.1:9101").unwrap(),
            Some("127.0.0.1:9101".parse().unwrap())
        );
        assert_eq!(parse_metrics_listen("off").unwrap(), None);
        let e = parse_metrics_listen("localhost").unwrap_err().to_string();
        assert!(e.starts_with("--metrics-listen:"), "{e}");
    }

    #[test]
    fn overrides_win_over_the_file() {
        let mut c = Config::default();
        CpuOverrides {
            ingest: Some(vec![1]),
            book: Some(0),
            fanout: Some(vec![0, 1]),
            wait: Some(WaitMode::Spin),
            no_pin: true,
        }
        .apply(&mut c);
        assert_eq!(c.cpu.ingest, [1]);
        assert_eq!((c.cpu.book, c.cpu.fanout), (0, vec![0, 1]));
        assert_eq!(c.cpu.wait, WaitMode::Spin);
        assert!(!c.cpu.pin);
    }

    #[test]
    fn layout_of_the_default_config() {
        let c = Config::default();
        let l = layout(&c).unwrap();
        assert_eq!(l.plans.len(), c.connections.len());
        let okx = c
            .connections
            .iter()
            .position(|c| c.feed == crate::venue::Feed::Okx)
            .unwrap();
        assert_eq!(
            l.topology.conn_exchanges[okx],
            [Exchange::OkexSwap, Exchange::Okex]
        );
        let id = l
            .instruments
            .get(Exchange::BinanceFutures, "BTCUSDT")
            .unwrap();
        assert!(l.topology.rest_book[id.index()]);
        let id = l
            .instruments
            .get(Exchange::Deribit, "BTC-PERPETUAL")
            .unwrap();
        assert!(!l.topology.rest_book[id.index()]);
        assert_eq!(l.engine.registered().count(), l.instruments.len());
    }

    #[test]
    fn one_instrument_on_two_connections_is_an_error() {
        let text = r#"
            [[venue]]
            feed = "bybit-linear"
            symbols = ["BTCUSDT"]
            [[venue]]
            feed = "bybit-linear"
            symbols = ["BTCUSDT"]
        "#;
        let c = Config::parse(text).unwrap();
        let e = layout(&c).err().unwrap().to_string();
        assert!(e.contains("venue[1].symbols"), "{e}");
    }

    #[test]
    fn a_missing_core_stops_the_start() {
        let mut c = Config::default();
        c.cpu.book = 9999;
        c.cpu.pin = true;
        let e = start(&c, RunOptions::default()).err().unwrap().to_string();
        assert!(e.contains("cpu.book") && e.contains("9999"), "{e}");
    }
}

//! `pinfeed bench`: the simulator, the engine and K load clients in one process, measured
//! together, with the physical floor of the same machine beside every figure.
//!
//! One run, in order:
//! 1. refuse what the machine cannot do (bad flags, more clients than file descriptors or
//!    ephemeral ports; the soft fd limit is raised up to the hard one first);
//! 2. the floor ([`floor`]): an `rtrb` ping-pong and a loopback TCP ping-pong, ~1 s each, on
//!    the engine's book and fan-out cores, before any load runs;
//! 3. the input ([`BenchInput`]): the recorded simulator, looped, its pace set so the
//!    recorded frame rate times the speed gives `--rate`, or synthetic flow at `--rate`
//!    with `--burst` ([`BenchInput::Synthetic`], the default);
//! 4. the engine (`run::start`, fan-out on 127.0.0.1:0) and the load clients ([`client`]),
//!    subscribed to everything (`--scenario all`) or to one symbol's trades and quotes each
//!    (`--scenario fanout`), with `withSeq` and `withLatency`;
//! 5. a warm-up, then every counter and histogram restarts; the measured window; snapshots
//!    of CPU per thread, queue drops and fan-out counters at both ends ([`procstat`]);
//! 6. the report ([`BenchReport`]): a table, or one JSON object.
//!
//! Nothing here is on the engine's hot path; the load clients are hot in their own right
//! (no allocation per message once their buffers have grown), but they are the measuring
//! instrument, not the product.

pub mod client;
pub mod floor;
pub mod procstat;
mod report;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

pub use report::{BenchReport, ClientSummary, FloorReport, Quantiles, TradeIsolation};

use crate::config::{Config, ConfigError, WaitMode};
use crate::metrics::StageQuantiles;
use crate::model::{Exchange, Instruments};
use crate::run::{self, RunError, RunHandle, RunOptions};
use crate::sim::recording::{Record, Recording, RecordingError};
use crate::sim::server::{SimError, SimOptions, Simulator};
use crate::sim::synthetic::{Burst, SyntheticOptions};
use client::{LoadHandle, LoadOptions};
use floor::{FloorCores, FloorError};

/// Highest input rate accepted, frames per second.
pub const MAX_RATE_PER_S: f64 = 10_000_000.0;

/// File descriptors kept free beyond two per client (simulator, engine, files).
pub const FD_MARGIN: u64 = 256;

/// Where the input comes from.
#[derive(Clone, Debug, PartialEq)]
pub enum BenchInput {
    /// Recorded sessions served by the simulator in a loop.
    Recording {
        /// Recording files; empty means every bundled recording.
        paths: Vec<PathBuf>,
        /// Target input rate, frames per second over all feeds; `None`: as fast as possible.
        rate_per_s: Option<f64>,
    },
    /// The synthetic simulator ([`crate::sim::synthetic`]) at a set rate, optionally with L2
    /// bursts. Its trade ids are send stamps, so trades give end-to-end latency.
    Synthetic {
        /// Target input rate, frames per second over all feeds.
        rate_per_s: f64,
        /// L2 bursts.
        burst: Option<Burst>,
        /// Seed of the market model.
        seed: u64,
    },
}

impl BenchInput {
    /// The target rate, frames per second, when one is set.
    pub fn rate_per_s(&self) -> Option<f64> {
        match self {
            BenchInput::Recording { rate_per_s, .. } => *rate_per_s,
            BenchInput::Synthetic { rate_per_s, .. } => Some(*rate_per_s),
        }
    }
}

/// What each load client subscribes to.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Scenario {
    /// Every exchange and symbol the engine serves: trade, book_change,
    /// book_snapshot_10_100ms, quote, and on derivatives exchanges derivative_ticker and
    /// liquidation.
    #[default]
    All,
    /// Client k: one symbol's trade and quote, round-robin over the symbols.
    Fanout,
    /// As `All`, split over two connections: even clients take only trades, odd clients
    /// everything else (with one client, a second is added), so trades do not queue behind
    /// L2 bytes on the client's own connection: the trade lane's isolation, measured.
    Split,
}

/// Everything a bench run needs. [`BenchOptions::default`] is `pinfeed bench` without flags.
#[derive(Clone, Debug, PartialEq)]
pub struct BenchOptions {
    /// The input. Default: synthetic flow at 10,000 frames/s, no bursts (the latency
    /// scenario).
    pub input: BenchInput,
    /// Load clients (>= 1). Default 1.
    pub clients: usize,
    /// Measured window. Default 10 s.
    pub duration: Duration,
    /// Warm-up before the window; its figures are discarded. Default 2 s.
    pub warmup: Duration,
    /// What clients subscribe to. Default [`Scenario::All`].
    pub scenario: Scenario,
    /// Threads of the load clients; 0 picks 1 up to 100 clients, else 2. Default 0.
    pub load_threads: usize,
    /// Length of each floor measurement. Default 1 s.
    pub floor_duration: Duration,
    /// Pin the engine's hot threads (and the floor's) to their configured cores.
    /// Default false (shared hosts).
    pub pin: bool,
    /// Wait strategy of the engine's hot threads. Default [`WaitMode::Backoff`].
    pub wait: WaitMode,
    /// Cores of the fan-out shards (`--cpu-fanout LIST`), one shard each. Default `[1]`.
    pub fanout_cores: Vec<usize>,
    /// Slots of each trade lane (`--lane-slots N`, `[queues] lane_slots`); `None`: the
    /// config default.
    pub lane_slots: Option<usize>,
}

impl Default for BenchOptions {
    fn default() -> Self {
        BenchOptions {
            input: BenchInput::Synthetic {
                rate_per_s: 10_000.0,
                burst: None,
                seed: 1,
            },
            clients: 1,
            duration: Duration::from_secs(10),
            warmup: Duration::from_secs(2),
            scenario: Scenario::All,
            load_threads: 0,
            floor_duration: Duration::from_secs(1),
            pin: false,
            wait: WaitMode::Backoff,
            fanout_cores: vec![1],
            lane_slots: None,
        }
    }
}

/// Why a bench could not run. Refusals name the flag and what the machine allows.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// A flag out of range.
    #[error("{flag}: {message}")]
    Invalid {
        /// The flag.
        flag: &'static str,
        /// What is wrong.
        message: String,
    },
    /// More clients than file descriptors.
    #[error(
        "--clients {clients}: needs about {needed} file descriptors but the limit is {hard} \
         (soft {soft}); raise it (e.g. `ulimit -n {needed}`) or use at most {max_clients} clients"
    )]
    FdLimit {
        /// Clients asked for.
        clients: usize,
        /// Descriptors needed: two per client plus a margin.
        needed: u64,
        /// Soft limit.
        soft: u64,
        /// Hard limit.
        hard: u64,
        /// Most clients the hard limit allows.
        max_clients: u64,
    },
    /// More clients than ephemeral ports.
    #[error(
        "--clients {clients}: only {ports} ephemeral ports (net.ipv4.ip_local_port_range); \
         use at most {max_clients} clients"
    )]
    Ports {
        /// Clients asked for.
        clients: usize,
        /// Ports in the range.
        ports: u64,
        /// Most clients allowed.
        max_clients: u64,
    },
    /// A recording could not be read.
    #[error(transparent)]
    Recording(#[from] RecordingError),
    /// The simulator could not start.
    #[error("simulator: {0}")]
    Sim(#[from] SimError),
    /// The simulator's config did not parse (a bug).
    #[error("engine config: {0}")]
    Config(#[from] ConfigError),
    /// The engine could not start.
    #[error("engine: {0}")]
    Run(#[from] RunError),
    /// The floor could not be measured.
    #[error(transparent)]
    Floor(#[from] FloorError),
    /// Load clients could not start, or none connected.
    #[error("load clients: {0}")]
    Load(String),
}

impl BenchOptions {
    /// Checks ranges.
    ///
    /// # Errors
    /// [`BenchError::Invalid`] naming the flag.
    pub fn validate(&self) -> Result<(), BenchError> {
        let invalid = |flag, message: &str| {
            Err(BenchError::Invalid {
                flag,
                message: message.to_string(),
            })
        };
        if let Some(r) = self.input.rate_per_s()
            && (!r.is_finite() || r <= 0.0 || r > MAX_RATE_PER_S)
        {
            return invalid(
                "--rate",
                &format!("{r} frames/s is out of range: above 0, at most 10,000,000"),
            );
        }
        if self.clients == 0 {
            return invalid("--clients", "at least one client");
        }
        if self.duration.is_zero() || self.duration > Duration::from_secs(3600) {
            return invalid("--duration", "above 0 s, at most 3600 s");
        }
        if self.warmup > Duration::from_secs(600) {
            return invalid("--warmup", "at most 600 s");
        }
        if self.floor_duration.is_zero() || self.floor_duration > Duration::from_secs(60) {
            return invalid("--floor-duration", "above 0 s, at most 60 s");
        }
        if self.load_threads > 64 {
            return invalid("--load-threads", "at most 64");
        }
        if self.fanout_cores.is_empty()
            || self.fanout_cores.len() > crate::pipeline::slot::MAX_SHARDS
        {
            return invalid("--cpu-fanout", "1 to 64 cores");
        }
        if self
            .lane_slots
            .is_some_and(|n| !(16..=1 << 24).contains(&n))
        {
            return invalid("--lane-slots", "16 to 16777216 slots");
        }
        if let BenchInput::Recording { .. } = self.input
            && self.scenario == Scenario::Fanout
            && self.clients > 100_000
        {
            return invalid("--clients", "at most 100,000");
        }
        Ok(())
    }
}

/// Checks that `clients` load clients fit the fd limit (raising the soft limit up to the
/// hard one when needed) and the ephemeral port range.
///
/// # Errors
/// [`BenchError::FdLimit`] or [`BenchError::Ports`] with what the machine allows.
pub fn check_limits(clients: usize) -> Result<(), BenchError> {
    let needed = clients as u64 * 2 + FD_MARGIN;
    if let Some(l) = procstat::fd_limit()
        && l.soft < needed
    {
        let refuse = BenchError::FdLimit {
            clients,
            needed,
            soft: l.soft,
            hard: l.hard,
            max_clients: l.hard.saturating_sub(FD_MARGIN) / 2,
        };
        if l.hard < needed || procstat::raise_fd_limit(needed, l.hard).is_err() {
            return Err(refuse);
        }
    }
    if let Some(ports) = procstat::ephemeral_ports() {
        // the simulator's and engine's own connections need a few ports too
        let max_clients = ports.saturating_sub(64);
        if clients as u64 > max_clients {
            return Err(BenchError::Ports {
                clients,
                ports,
                max_clients,
            });
        }
    }
    Ok(())
}

/// Recorded data frames per second of the recordings served together: per recording, its
/// received frames over its span, summed (the simulator serves the feeds side by side).
pub fn recorded_rate_per_s(recordings: &[Recording]) -> f64 {
    let mut total = 0.0;
    for rec in recordings {
        let (mut n, mut first, mut last) = (0u64, f64::MAX, f64::MIN);
        for r in &rec.records {
            if let Record::Recv { .. } = r {
                n += 1;
                first = first.min(r.ts());
                last = last.max(r.ts());
            }
        }
        if n > 1 && last > first {
            total += n as f64 / (last - first);
        }
    }
    total
}

/// Percent-encodes a URL query component (RFC 3986 unreserved characters stay as they are).
pub fn encode_component(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn is_derivatives(exchange: Exchange) -> bool {
    !matches!(
        exchange,
        Exchange::Binance | Exchange::BybitSpot | Exchange::Okex
    )
}

/// The request target of each of `clients` load clients: `/ws-stream-normalized?options=`
/// with `withSeq` and `withLatency` set.
pub fn client_targets(
    instruments: &Instruments,
    scenario: Scenario,
    clients: usize,
) -> Vec<String> {
    let target = |options: serde_json::Value| {
        format!(
            "/ws-stream-normalized?options={}",
            encode_component(&options.to_string())
        )
    };
    match scenario {
        Scenario::All | Scenario::Split => {
            let mut by_exchange: BTreeMap<&str, (Exchange, Vec<&str>)> = BTreeMap::new();
            for (_, exchange, symbol) in instruments.iter() {
                by_exchange
                    .entry(exchange.id())
                    .or_insert((exchange, Vec::new()))
                    .1
                    .push(symbol);
            }
            let options = |trades: bool, rest: bool| -> serde_json::Value {
                by_exchange
                    .values()
                    .map(|(exchange, symbols)| {
                        let mut types = Vec::new();
                        if trades {
                            types.push("trade");
                        }
                        if rest {
                            types.extend(["book_change", "book_snapshot_10_100ms", "quote"]);
                            if is_derivatives(*exchange) {
                                types.extend(["derivative_ticker", "liquidation"]);
                            }
                        }
                        serde_json::json!({
                            "exchange": exchange.id(),
                            "symbols": symbols,
                            "dataTypes": types,
                            "withSeq": true,
                            "withLatency": true,
                        })
                    })
                    .collect()
            };
            if scenario == Scenario::All {
                return vec![target(options(true, true)); clients];
            }
            (0..clients.max(2))
                .map(|k| target(options(k % 2 == 0, k % 2 == 1)))
                .collect()
        }
        Scenario::Fanout => {
            let all: Vec<(Exchange, &str)> = instruments.iter().map(|(_, e, s)| (e, s)).collect();
            (0..clients)
                .map(|k| {
                    let (exchange, symbol) = all[k % all.len().max(1)];
                    target(serde_json::json!({
                        "exchange": exchange.id(),
                        "symbols": [symbol],
                        "dataTypes": ["trade", "quote"],
                        "withSeq": true,
                        "withLatency": true,
                    }))
                })
                .collect()
        }
    }
}

/// Per-stage latency percentiles from the engine's own histograms (stage name -> µs),
/// cumulative since the reset at the end of the warm-up.
fn engine_stages(handle: &RunHandle) -> BTreeMap<String, Quantiles> {
    let snap = handle.latency();
    snap.cumulative
        .iter()
        .filter(|q| q.count > 0)
        .map(|q| {
            let us = StageQuantiles::us;
            (
                q.stage.name().to_string(),
                Quantiles {
                    count: q.count,
                    p50_us: us(q.p50_ns),
                    p99_us: us(q.p99_ns),
                    p999_us: us(q.p999_ns),
                    max_us: us(q.max_ns),
                },
            )
        })
        .collect()
}

/// Counters read at both ends of the window.
struct Counters {
    frames_in: u64,
    shards: Vec<crate::fanout::FanoutCounters>,
    queues: Vec<(String, u64)>,
    conflations: u64,
    slow_client_closes: u64,
    messages_sent: u64,
    socket_writes: u64,
}

fn counters(handle: &RunHandle) -> Counters {
    let f = handle.fanout_stats.as_ref().map(|s| s.load());
    Counters {
        shards: handle
            .fanout_stats
            .as_ref()
            .map(|s| s.per_shard())
            .unwrap_or_default(),
        frames_in: handle
            .stats
            .connections
            .iter()
            .map(|c| c.frames_total())
            .sum(),
        queues: handle
            .stats
            .queues
            .iter()
            .map(|q| (q.name().to_string(), q.dropped()))
            .collect(),
        conflations: f.as_ref().map_or(0, |f| f.conflations),
        slow_client_closes: f.as_ref().map_or(0, |f| f.slow_client_closes),
        messages_sent: f.as_ref().map_or(0, |f| f.messages_sent),
        socket_writes: f.as_ref().map_or(0, |f| f.socket_writes),
    }
}

/// The simulator's input, resolved from [`BenchInput`].
struct Source {
    recordings: Vec<Recording>,
    speed: f64,
    synthetic: Option<SyntheticOptions>,
    /// For the report: what was served.
    label: String,
}

impl Source {
    fn open(input: &BenchInput) -> Result<Source, BenchError> {
        match input {
            BenchInput::Synthetic {
                rate_per_s,
                burst,
                seed,
            } => Ok(Source {
                recordings: Vec::new(),
                speed: 1.0,
                synthetic: Some(SyntheticOptions {
                    rate_per_s: *rate_per_s,
                    burst: *burst,
                    seed: *seed,
                    ..SyntheticOptions::default()
                }),
                label: match burst {
                    Some(b) => format!(
                        "synthetic ({rate_per_s:.0} frames/s, L2 x{} for {:?} every {:?})",
                        b.factor, b.length, b.period
                    ),
                    None => format!("synthetic ({rate_per_s:.0} frames/s)"),
                },
            }),
            BenchInput::Recording { paths, rate_per_s } => {
                let paths = if paths.is_empty() {
                    crate::sim::recording::bundled_recordings().map_err(|e| {
                        BenchError::Load(format!(
                            "listing {}: {e}",
                            crate::sim::recording::data_dir().display()
                        ))
                    })?
                } else {
                    paths.clone()
                };
                let recordings = paths
                    .iter()
                    .map(|p| Recording::open(p))
                    .collect::<Result<Vec<_>, _>>()?;
                let recorded = recorded_rate_per_s(&recordings);
                let speed = match rate_per_s {
                    Some(r) if recorded > 0.0 => r / recorded,
                    _ => 0.0,
                };
                let label = format!(
                    "recording ({} files, {recorded:.0} frames/s recorded, speed {})",
                    paths.len(),
                    if speed > 0.0 {
                        format!("{speed:.1}x")
                    } else {
                        "max".into()
                    }
                );
                Ok(Source {
                    recordings,
                    speed,
                    synthetic: None,
                    label,
                })
            }
        }
    }
}

fn progress(msg: impl std::fmt::Display) {
    eprintln!("bench: {msg}");
}

/// Runs one bench (see the module docs for the sequence). Progress goes to stderr.
///
/// # Errors
/// A [`BenchError`]: a refusal (flags, limits), an input that is not available, or a part
/// that could not start.
pub fn run(opts: &BenchOptions) -> Result<BenchReport, BenchError> {
    opts.validate()?;
    check_limits(opts.clients)?;
    let source = Source::open(&opts.input)?;
    // the floor, on the engine's cores, before any load
    let cpu = crate::config::CpuConfig::default();
    let cores = if opts.pin {
        FloorCores {
            ping: Some(cpu.book),
            echo: opts.fanout_cores.first().copied(),
        }
    } else {
        FloorCores::default()
    };
    progress(format_args!(
        "floor: rtrb ping-pong ({:?})",
        opts.floor_duration
    ));
    let ring = floor::ring_hop(opts.floor_duration, cores)?;
    progress(format_args!(
        "floor: loopback TCP ping-pong ({:?})",
        opts.floor_duration
    ));
    let tcp = floor::tcp_hop(opts.floor_duration, cores)?;

    let sim = Simulator::start(SimOptions {
        recordings: source.recordings,
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        tls: false,
        speed: source.speed,
        looped: true,
        ca_key: None,
        synthetic: source.synthetic,
        faults: Vec::new(),
    })?;
    let burst = sim.synthetic().and_then(|s| s.schedule());
    let mut cfg = Config::parse(&sim.config_toml(None))?;
    cfg.server.listen = SocketAddr::from(([127, 0, 0, 1], 0));
    cfg.server.max_clients = cfg.server.max_clients.max(opts.clients + 64);
    cfg.cpu.pin = opts.pin;
    cfg.cpu.wait = opts.wait;
    cfg.cpu.fanout = opts.fanout_cores.clone();
    if let Some(n) = opts.lane_slots {
        cfg.queues.lane_slots = n;
    }
    let handle = run::start(
        &cfg,
        RunOptions {
            status_interval: None,
            ..RunOptions::default()
        },
    )?;
    let addr = handle
        .local_addr
        .ok_or_else(|| BenchError::Load("the engine has no client listener".into()))?;
    progress(format_args!(
        "simulator on {} ({}), engine on {addr}",
        sim.addr(),
        source.label
    ));

    let targets = client_targets(&handle.instruments, opts.scenario, opts.clients);
    let threads = match opts.load_threads {
        0 if opts.clients <= 100 => 1,
        0 => 2,
        n => n,
    };
    let load = LoadHandle::start(LoadOptions {
        addr,
        targets,
        threads,
        burst,
    })
    .map_err(|e| BenchError::Load(e.to_string()))?;
    let deadline = Instant::now() + Duration::from_secs(30);
    while load.settled() < opts.clients && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let connected = load.connected();
    progress(format_args!(
        "{connected}/{} clients connected; warm-up {:?}",
        opts.clients, opts.warmup
    ));
    if connected == 0 {
        let _ = load.stop();
        handle.stop();
        return Err(BenchError::Load("no client could connect".into()));
    }
    std::thread::sleep(opts.warmup);

    let total_start = counters(&handle);
    load.reset();
    handle.reset_latency();
    let cpu_start = procstat::thread_cpu();
    let start = counters(&handle);
    let t0 = Instant::now();
    progress(format_args!("measuring {:?}", opts.duration));
    std::thread::sleep(opts.duration);
    let end = counters(&handle);
    let cpu_end = procstat::thread_cpu();
    let window = t0.elapsed();
    let stats = load.stop();
    let rss_peak_bytes = procstat::peak_rss_bytes();
    let stages = engine_stages(&handle);
    let books_synced = handle.stats.book.books_synced.load(Ordering::Relaxed);
    let report = handle.stop();
    let _ = total_start;
    drop(sim);

    let window_s = window.as_secs_f64();
    let mut drops = BTreeMap::new();
    let mut drops_total = BTreeMap::new();
    for ((name, before), (_, after)) in start.queues.iter().zip(&end.queues) {
        drops.insert(name.clone(), after.saturating_sub(*before));
    }
    for q in &report.stats.queues {
        drops_total.insert(q.name().to_string(), q.dropped());
    }
    Ok(report::build(report::Parts {
        input: source.label,
        rate_target_per_s: opts.input.rate_per_s(),
        frames_in: end.frames_in.saturating_sub(start.frames_in),
        window_s,
        clients: opts.clients,
        connected,
        scenario: opts.scenario,
        wait: match opts.wait {
            WaitMode::Spin => "spin",
            WaitMode::Backoff => "backoff",
        },
        lane_slots: cfg.queues.lane_slots,
        load: stats,
        engine_stages: stages,
        floor: FloorReport { ring, tcp, cores },
        burst,
        drops,
        drops_total,
        conflations: end.conflations.saturating_sub(start.conflations),
        slow_client_closes: end
            .slow_client_closes
            .saturating_sub(start.slow_client_closes),
        fanout_messages_sent: end.messages_sent.saturating_sub(start.messages_sent),
        fanout_socket_writes: end.socket_writes.saturating_sub(start.socket_writes),
        cpu: procstat::cpu_between(&cpu_start, &cpu_end, window_s, procstat::ticks_per_s()),
        shards: start
            .shards
            .iter()
            .zip(&end.shards)
            .map(|(a, b)| report::ShardFigures {
                clients: b.clients,
                messages_sent: b.messages_sent.saturating_sub(a.messages_sent),
                socket_writes: b.socket_writes.saturating_sub(a.socket_writes),
                lane_msgs: b.lane_msgs.saturating_sub(a.lane_msgs),
                book_states_conflated: b
                    .book_states_conflated
                    .saturating_sub(a.book_states_conflated),
            })
            .collect(),
        rss_peak_bytes,
        books_synced,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn option_ranges() {
        assert!(BenchOptions::default().validate().is_ok());
        let with_rate = |r| BenchOptions {
            input: BenchInput::Recording {
                paths: vec![],
                rate_per_s: Some(r),
            },
            ..BenchOptions::default()
        };
        for r in [0.0, -1.0, f64::NAN, f64::INFINITY, 10_000_001.0] {
            let e = with_rate(r).validate().unwrap_err().to_string();
            assert!(e.starts_with("--rate:"), "{r}: {e}");
        }
        assert!(with_rate(10_000_000.0).validate().is_ok());
        let e = BenchOptions {
            clients: 0,
            ..BenchOptions::default()
        }
        .validate()
        .unwrap_err()
        .to_string();
        assert!(e.starts_with("--clients:"), "{e}");
        let e = BenchOptions {
            duration: Duration::ZERO,
            ..BenchOptions::default()
        }
        .validate()
        .unwrap_err()
        .to_string();
        assert!(e.starts_with("--duration:"), "{e}");
        for (n, ok) in [
            (15, false),
            (16, true),
            (1 << 24, true),
            ((1 << 24) + 1, false),
        ] {
            let r = BenchOptions {
                lane_slots: Some(n),
                ..BenchOptions::default()
            }
            .validate();
            assert_eq!(r.is_ok(), ok, "--lane-slots {n}: {r:?}");
            if let Err(e) = r {
                assert!(e.to_string().starts_with("--lane-slots:"), "{e}");
            }
        }
    }

    #[test]
    fn too_many_clients_for_the_fd_limit() {
        let hard = procstat::fd_limit().unwrap().hard;
        let clients = (hard / 2 + 1).min(usize::MAX as u64) as usize;
        let e = check_limits(clients).unwrap_err().to_string();
        assert!(
            e.contains("file descriptors") || e.contains("ephemeral ports"),
            "{e}"
        );
        assert!(e.starts_with(&format!("--clients {clients}:")), "{e}");
    }

    /// The decoded `options` of a request target.
    fn options_of(target: &str) -> String {
        let enc = target.split_once("options=").unwrap().1.as_bytes();
        let mut out = Vec::new();
        let mut i = 0;
        while i < enc.len() {
            if enc[i] == b'%' {
                let hex = std::str::from_utf8(&enc[i + 1..i + 3]).unwrap();
                out.push(u8::from_str_radix(hex, 16).unwrap());
                i += 3;
            } else {
                out.push(enc[i]);
                i += 1;
            }
        }
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn targets_cover_every_instrument() {
        let mut ins = Instruments::new();
        ins.intern(Exchange::BinanceFutures, "BTCUSDT");
        ins.intern(Exchange::BinanceFutures, "ETHUSDT");
        ins.intern(Exchange::Binance, "BTCUSDT");
        let all = client_targets(&ins, Scenario::All, 3);
        assert_eq!(all.len(), 3);
        assert!(all.iter().all(|t| t == &all[0]));
        let q = options_of(&all[0]);
        let v: serde_json::Value = serde_json::from_str(&q).unwrap();
        let arr = v.as_array().unwrap();
        assert_eq!(arr.len(), 2);
        let spot = arr.iter().find(|o| o["exchange"] == "binance").unwrap();
        assert_eq!(spot["symbols"], serde_json::json!(["BTCUSDT"]));
        assert!(
            !spot["dataTypes"]
                .as_array()
                .unwrap()
                .contains(&"liquidation".into())
        );
        let fut = arr
            .iter()
            .find(|o| o["exchange"] == "binance-futures")
            .unwrap();
        assert_eq!(fut["symbols"].as_array().unwrap().len(), 2);
        assert!(
            fut["dataTypes"]
                .as_array()
                .unwrap()
                .contains(&"derivative_ticker".into())
        );
        assert_eq!(fut["withSeq"], true);

        let fan = client_targets(&ins, Scenario::Fanout, 4);
        let sym = |t: &String| {
            let v: serde_json::Value = serde_json::from_str(&options_of(t)).unwrap();
            (
                v["exchange"].as_str().unwrap().to_string(),
                v["symbols"][0].as_str().unwrap().to_string(),
            )
        };
        assert_eq!(sym(&fan[0]), sym(&fan[3]));
        assert_ne!(sym(&fan[0]), sym(&fan[1]));
        assert_ne!(sym(&fan[1]), sym(&fan[2]));

        // split: one client asked for, two connections; trades only on the even one
        let split = client_targets(&ins, Scenario::Split, 1);
        assert_eq!(split.len(), 2);
        let types = |t: &String| -> Vec<String> {
            let v: serde_json::Value = serde_json::from_str(&options_of(t)).unwrap();
            let mut all: Vec<String> = v
                .as_array()
                .unwrap()
                .iter()
                .flat_map(|o| o["dataTypes"].as_array().unwrap().clone())
                .map(|t| t.as_str().unwrap().to_string())
                .collect();
            all.sort();
            all.dedup();
            all
        };
        assert_eq!(types(&split[0]), ["trade"]);
        let rest = types(&split[1]);
        assert!(!rest.contains(&"trade".to_string()) && rest.contains(&"book_change".to_string()));
    }
}

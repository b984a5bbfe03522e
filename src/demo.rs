//! `pinfeed demo`: the whole system offline in one process. The synthetic venue simulator
//! ([`crate::sim::synthetic`]) serves every feed on a loopback port, the engine
//! ([`crate::run`]) connects to it exactly as it connects to the venues, and clients connect
//! to the engine on `127.0.0.1:9100` as they would in production. Once a second a status
//! line goes to stderr: frames in, events out of the book thread, messages written to
//! clients, clients, drops, and the engine's internal latency (socket read to client socket
//! write, p50/p99 over the last second's window of the cumulative histogram).
//!
//! Nothing here needs the network or the recordings; it is the README's first command.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crossbeam_channel::Receiver;

use crate::config::{Config, ConfigError};
use crate::metrics::{LatencyConfig, Stage};
use crate::run::{self, RunError, RunHandle, RunOptions};
use crate::sim::server::{SimError, SimOptions, Simulator};
use crate::sim::synthetic::{Burst, SyntheticOptions};

/// What a demo runs. [`DemoOptions::default`] is `pinfeed demo` without flags.
#[derive(Clone, Debug)]
pub struct DemoOptions {
    /// Where clients connect. Default 127.0.0.1:9100.
    pub listen: SocketAddr,
    /// Synthetic input rate, frames per second over all feeds. Default 2,000.
    pub rate_per_s: f64,
    /// L2 bursts of the synthetic input.
    pub burst: Option<Burst>,
    /// Seed of the synthetic market.
    pub seed: u64,
    /// Stop after this long; `None`: at ctrl-c.
    pub duration: Option<Duration>,
    /// `GET /metrics` address; `None`: not served. Default 127.0.0.1:9101 (best effort: a
    /// port in use is reported and the demo goes on).
    pub metrics_listen: Option<SocketAddr>,
    /// Status line period. Default 1 s.
    pub status_interval: Duration,
}

impl Default for DemoOptions {
    fn default() -> Self {
        DemoOptions {
            listen: SocketAddr::from(([127, 0, 0, 1], 9100)),
            rate_per_s: 2_000.0,
            burst: None,
            seed: 1,
            duration: None,
            metrics_listen: Some(SocketAddr::from(([127, 0, 0, 1], 9101))),
            status_interval: Duration::from_secs(1),
        }
    }
}

/// Why the demo could not run.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    /// The simulator could not start (bad rate, port).
    #[error("simulator: {0}")]
    Sim(#[from] SimError),
    /// The simulator's config did not parse (a bug).
    #[error("engine config: {0}")]
    Config(#[from] ConfigError),
    /// The engine could not start (the client port is taken, ...).
    #[error("engine: {0}")]
    Run(#[from] RunError),
}

/// Totals of a finished demo.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DemoTotals {
    /// Upstream frames the engine read.
    pub frames_in: u64,
    /// Messages the book thread published to the fan-out.
    pub events_out: u64,
    /// Messages written to clients.
    pub client_messages: u64,
    /// Drops over every queue.
    pub drops: u64,
    /// Sequence gaps the book engine found.
    pub gaps: u64,
}

/// Counters the status line differences.
#[derive(Clone, Copy, Default)]
struct Sample {
    totals: DemoTotals,
    clients: u64,
}

fn sample(h: &RunHandle) -> Sample {
    let fanout = h.fanout_stats.as_ref().map(|s| s.load());
    Sample {
        totals: DemoTotals {
            frames_in: h.stats.connections.iter().map(|c| c.frames_total()).sum(),
            events_out: h
                .stats
                .queues
                .iter()
                .find(|q| q.name() == "fanout")
                .map_or(0, |q| q.pushed()),
            client_messages: fanout.as_ref().map_or(0, |f| f.messages_sent),
            drops: h.stats.total_dropped(),
            gaps: h.stats.book.gaps.load(Ordering::Relaxed),
        },
        clients: fanout.as_ref().map_or(0, |f| f.clients),
    }
}

/// One status line: rates over `dt` between two samples, latency from the engine.
fn status_line(h: &RunHandle, a: &Sample, b: &Sample, dt: Duration) -> String {
    let rate = |x: u64, y: u64| (y.saturating_sub(x)) as f64 / dt.as_secs_f64().max(1e-9);
    let lat = h.latency();
    let q = lat.stage(Stage::ReadToWritten);
    let latency = if q.count == 0 {
        "read→written: no client writes yet".to_string()
    } else {
        format!(
            "read→written p50 {:.1} µs p99 {:.1} µs",
            q.p50_ns as f64 / 1e3,
            q.p99_ns as f64 / 1e3
        )
    };
    format!(
        "demo: in {:.0} frames/s | events {:.0}/s | to clients {:.0} msgs/s | clients {} | drops {} | gaps {} | {latency}",
        rate(a.totals.frames_in, b.totals.frames_in),
        rate(a.totals.events_out, b.totals.events_out),
        rate(a.totals.client_messages, b.totals.client_messages),
        b.clients,
        b.totals.drops,
        b.totals.gaps,
    )
}

/// Runs the demo until `stop` receives (or is dropped) or `duration` passes; prints where
/// clients connect, then a status line per `status_interval`, to stderr.
///
/// # Errors
/// A [`DemoError`] when the simulator or the engine cannot start (e.g. port 9100 in use).
pub fn run(opts: &DemoOptions, stop: &Receiver<()>) -> Result<DemoTotals, DemoError> {
    let sim = Simulator::start(SimOptions {
        synthetic: Some(SyntheticOptions {
            rate_per_s: opts.rate_per_s,
            burst: opts.burst,
            seed: opts.seed,
            ..SyntheticOptions::default()
        }),
        ..SimOptions::default()
    })?;
    let mut cfg = Config::parse(&sim.config_toml(None))?;
    cfg.server.listen = opts.listen;
    cfg.cpu.pin = false;
    // the demo is the quick start: where the hard descriptor limit cannot cover the default
    // max_clients, it serves fewer clients instead of refusing (`run` refuses)
    if let Some(limit) = crate::limits::fd_limit() {
        let need = run::fd_budget(&cfg);
        if limit.hard < need {
            let others = need - cfg.server.max_clients as u64;
            cfg.server.max_clients = limit.hard.saturating_sub(others).max(1) as usize;
            eprintln!(
                "pinfeed demo: RLIMIT_NOFILE hard limit {} < {need}: max_clients lowered to {}",
                limit.hard, cfg.server.max_clients
            );
        }
    }
    let handle = run::start(
        &cfg,
        RunOptions {
            status_interval: None,
            latency: LatencyConfig::default(),
            metrics_listen: opts.metrics_listen,
            metrics_listen_best_effort: true,
            ..RunOptions::default()
        },
    )?;
    let addr = handle
        .local_addr
        .map_or_else(|| "-".to_string(), |a| a.to_string());
    eprintln!(
        "pinfeed demo: synthetic venues on {} ({} feeds, {} instruments, {:.0} frames/s) -> engine -> clients on ws://{addr}/ws-stream-normalized",
        sim.addr(),
        sim.feeds().len(),
        handle.instruments.len(),
        opts.rate_per_s,
    );
    if let Some(m) = handle.metrics_addr {
        eprintln!("pinfeed demo: metrics on http://{m}/metrics");
    }
    eprintln!(
        "pinfeed demo: try  python3 scripts/ws_client.py --url ws://{addr} --options '[{{\"exchange\":\"binance-futures\",\"symbols\":[\"BTCUSDT\"],\"dataTypes\":[\"trade\",\"quote\"]}}]'"
    );
    let started = Instant::now();
    let mut last = sample(&handle);
    let mut last_at = Instant::now();
    loop {
        let mut wait = opts.status_interval;
        if let Some(d) = opts.duration {
            wait = wait.min(d.saturating_sub(started.elapsed()));
        }
        match stop.recv_timeout(wait) {
            Err(crossbeam_channel::RecvTimeoutError::Timeout) => {}
            _ => break,
        }
        let now = sample(&handle);
        let at = Instant::now();
        eprintln!("{}", status_line(&handle, &last, &now, at - last_at));
        (last, last_at) = (now, at);
        if opts.duration.is_some_and(|d| started.elapsed() >= d) {
            break;
        }
    }
    let totals = sample(&handle).totals;
    eprintln!("pinfeed demo: stopping");
    handle.stop();
    drop(sim);
    Ok(totals)
}

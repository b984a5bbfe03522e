//! The `pinfeed` command: parses arguments, validates them, runs the command, returns an exit
//! code (0 success, 2 bad input or usage).

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};

use pinfeed::config::{Config, WaitMode};
use pinfeed::metrics::LatencyConfig;
use pinfeed::replay::Replay;
use pinfeed::run::{CpuOverrides, RunOptions, parse_core_list, parse_metrics_listen};
use pinfeed::sim::recording::Recording;
use pinfeed::sim::server::SimOptions;

/// pinfeed: exact order books and normalized market data from crypto venues.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Replay recorded venue sessions (cryptofeed capture format, plain or zstd) through the
    /// parsers and books, with no network; print a summary per venue to stderr.
    Replay {
        /// Recording files (`.jsonl` or `.jsonl.zst`).
        #[arg(required = true)]
        recordings: Vec<PathBuf>,
        /// Write the final books (top 20 levels per side, state, imbalance) as JSON here.
        #[arg(long, value_name = "FILE")]
        books_out: Option<PathBuf>,
        /// Write normalized events as JSON lines (tardis-machine format) here; `-` for stdout.
        #[arg(long, value_name = "FILE|-")]
        events_out: Option<String>,
    },
    /// Serve recorded sessions on loopback the way the venues serve them: their WebSocket
    /// paths and subscribe messages, their REST snapshot URLs, optionally over TLS with a
    /// certificate generated at start-up. Prints `listening on ADDR` on stdout.
    Simulate {
        /// Recording files (`.jsonl` or `.jsonl.zst`), at most one per feed.
        #[arg(long = "recording", value_name = "FILE", required = true, num_args = 1..)]
        recordings: Vec<PathBuf>,
        /// Listen address; port 0 picks a free one.
        #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:9000")]
        listen: SocketAddr,
        /// Serve WSS and HTTPS with a self-signed CA generated at start-up.
        #[arg(long)]
        tls: bool,
        /// Pace: 1 as recorded, X times faster, 0 as fast as possible.
        #[arg(long, value_name = "X", default_value_t = 1.0)]
        speed: f64,
        /// Close each connection at the end of its pass; clients reconnect for a fresh pass.
        #[arg(long = "loop")]
        looped: bool,
        /// Write a `pinfeed run` config pointing at the simulator here (and, with --tls, the
        /// CA certificate next to it as `<stem>-ca.pem`).
        #[arg(long, value_name = "FILE")]
        write_config: Option<PathBuf>,
        /// With --tls: keep the CA's private key in FILE (created when missing), so a
        /// restarted simulator is trusted by clients configured for the earlier run.
        #[arg(long, value_name = "FILE", requires = "tls")]
        ca_key: Option<PathBuf>,
    },
    /// Connect to the configured venues and serve normalized data to WebSocket clients
    /// (tardis-machine API) until ctrl-c. Flags override the config file.
    Run {
        /// TOML config file; without one, the live public feeds of a default symbol set,
        /// served on ws://127.0.0.1:9100.
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
        /// Cores of the ingest threads, round-robin per connection: `0`, `0,2`, `0-3`.
        #[arg(long, value_name = "LIST")]
        cpu_ingest: Option<String>,
        /// Core of the book thread.
        #[arg(long, value_name = "N")]
        cpu_book: Option<usize>,
        /// Core of the fan-out thread.
        #[arg(long, value_name = "N")]
        cpu_fanout: Option<usize>,
        /// Wait strategy of the hot threads: `spin` (isolated cores) or `backoff`.
        #[arg(long, value_enum)]
        wait: Option<WaitArg>,
        /// Do not pin threads to cores (shared hosts, CI).
        #[arg(long)]
        no_pin: bool,
        /// Write HdrHistogram dumps here: `<stage>.hlog` interval logs while running and
        /// `<stage>.hgrm` percentile distributions (µs) at shutdown.
        #[arg(long, value_name = "DIR")]
        hdr_dir: Option<PathBuf>,
        /// Interval of the `.hlog` entries, seconds.
        #[arg(long, value_name = "SECS", default_value_t = 10,
              value_parser = clap::value_parser!(u64).range(1..=86_400))]
        hdr_interval: u64,
        /// Serve Prometheus text at `GET http://ADDR/metrics`; `off` to disable. Default
        /// 127.0.0.1:9101 (when taken, the engine runs without /metrics and says so).
        #[arg(long, value_name = "ADDR|off")]
        metrics_listen: Option<String>,
        /// Do not stamp or record stage latency (measures the stamping overhead).
        #[arg(long)]
        no_latency: bool,
    },
}

#[derive(Copy, Clone, clap::ValueEnum)]
enum WaitArg {
    Spin,
    Backoff,
}

/// `pinfeed run`'s `/metrics` address when `--metrics-listen` is not given.
const DEFAULT_METRICS_LISTEN: &str = "127.0.0.1:9101";

fn main() -> ExitCode {
    let cli = Cli::parse();
    match try_main(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("pinfeed: {e}");
            ExitCode::from(2)
        }
    }
}

fn try_main(cli: Cli) -> Result<ExitCode, Box<dyn std::error::Error>> {
    match cli.command {
        Command::Replay {
            recordings,
            books_out,
            events_out,
        } => replay(&recordings, books_out, events_out),
        Command::Simulate {
            recordings,
            listen,
            tls,
            speed,
            looped,
            write_config,
            ca_key,
        } => {
            let recordings = recordings
                .iter()
                .map(|p| Recording::open(p))
                .collect::<Result<Vec<_>, _>>()?;
            let opts = SimOptions {
                recordings,
                listen,
                tls,
                speed,
                looped,
                ca_key,
            };
            pinfeed::sim::server::run(opts, write_config.as_deref())?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Run {
            config,
            cpu_ingest,
            cpu_book,
            cpu_fanout,
            wait,
            no_pin,
            hdr_dir,
            hdr_interval,
            metrics_listen,
            no_latency,
        } => {
            let mut cfg = match config {
                Some(path) => Config::load(&path)?,
                None => Config::default(),
            };
            CpuOverrides {
                ingest: cpu_ingest
                    .map(|l| parse_core_list("--cpu-ingest", &l))
                    .transpose()?,
                book: cpu_book,
                fanout: cpu_fanout,
                wait: wait.map(|w| match w {
                    WaitArg::Spin => WaitMode::Spin,
                    WaitArg::Backoff => WaitMode::Backoff,
                }),
                no_pin,
            }
            .apply(&mut cfg);
            let options = RunOptions {
                latency: LatencyConfig {
                    enabled: !no_latency,
                    hdr_dir,
                    hdr_interval: Duration::from_secs(hdr_interval),
                    ..LatencyConfig::default()
                },
                metrics_listen: parse_metrics_listen(
                    metrics_listen.as_deref().unwrap_or(DEFAULT_METRICS_LISTEN),
                )?,
                metrics_listen_best_effort: metrics_listen.is_none(),
                ..RunOptions::default()
            };
            pinfeed::run::run_until_ctrl_c_with(&cfg, options)?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn replay(
    paths: &[PathBuf],
    books_out: Option<PathBuf>,
    events_out: Option<String>,
) -> Result<ExitCode, Box<dyn std::error::Error>> {
    let recordings = paths
        .iter()
        .map(|p| Recording::open(p))
        .collect::<Result<Vec<_>, _>>()?;
    let mut replay = Replay::prepare(&recordings)?;
    let mut sink: Option<Box<dyn Write>> = match events_out.as_deref() {
        None => None,
        Some("-") => Some(Box::new(std::io::stdout().lock())),
        Some(path) => Some(Box::new(std::io::BufWriter::new(
            std::fs::File::create(path).map_err(|e| format!("{path}: {e}"))?,
        ))),
    };
    replay.run(sink.as_mut(), |_, _, _| {})?;
    drop(sink);
    if let Some(path) = books_out {
        let text = serde_json::to_string_pretty(&replay.books_json())?;
        std::fs::write(&path, text + "\n").map_err(|e| format!("{}: {e}", path.display()))?;
    }
    eprint!("{}", replay.summary());
    Ok(ExitCode::SUCCESS)
}

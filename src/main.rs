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
        #[arg(
            long = "recording",
            value_name = "FILE",
            required_unless_present = "synthetic",
            conflicts_with = "synthetic",
            num_args = 1..
        )]
        recordings: Vec<PathBuf>,
        /// Serve synthetic flow for every feed instead of recordings: a market model written
        /// in each venue's wire format, trade ids stamped with the send time (unix ns).
        #[arg(long)]
        synthetic: bool,
        /// With --synthetic: total data frames per second over all subscribed topics
        /// [default: 10000].
        #[arg(long, value_name = "MSGS_PER_S", requires = "synthetic", value_parser = parse_rate)]
        rate: Option<f64>,
        /// With --synthetic: multiply the L2 rate by FACTOR for LENGTH every PERIOD, e.g.
        /// `10x:1s/10s` (units ms or s).
        #[arg(long, value_name = "FACTORx:LENGTH/PERIOD", requires = "synthetic")]
        burst: Option<pinfeed::sim::synthetic::Burst>,
        /// With --synthetic: seed of the market model, for a reproducible stream [default: 1].
        #[arg(long, value_name = "N", requires = "synthetic")]
        seed: Option<u64>,
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
        /// Misbehave on purpose (repeatable): gap, checksum, garbage, oversized, stall,
        /// disconnect, close, rest, dup, reorder, no-pong, slow, with keys such as
        /// `feed=okx`, `every=N` (every Nth matching frame), `at=SECS` (after the connection
        /// opens), e.g. `gap:feed=bybit-linear,every=50`, `rest:status=429,count=3`. Each fault
        /// is logged to stderr when it fires. See README "Fault injection".
        #[arg(long = "fault", value_name = "KIND[:KEY=VALUE,...]", value_parser = parse_fault)]
        faults: Vec<pinfeed::sim::fault::FaultSpec>,
        /// With --synthetic: write the true book after each update id of each instrument to
        /// FILE, one JSON line each (for `pinfeed audit`).
        #[arg(long, value_name = "FILE", requires = "synthetic")]
        truth_out: Option<PathBuf>,
        /// Levels per side in each --truth-out line.
        #[arg(long, value_name = "N", default_value_t = 10, requires = "truth_out",
              value_parser = clap::value_parser!(u64).range(1..=1000))]
        truth_depth: u64,
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
        /// Cores of the fan-out shards, one shard per core: `1`, `0,1` (each shard owns a
        /// disjoint set of client sockets on the same port, SO_REUSEPORT).
        #[arg(long, value_name = "LIST")]
        cpu_fanout: Option<String>,
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
        /// Serve tardis-machine's `GET /replay-normalized` on the --metrics-listen address
        /// over the capture files (`*.jsonl`, `*.jsonl.zst`) in DIR (`[replay] dir`).
        #[arg(long, value_name = "DIR")]
        replay_dir: Option<PathBuf>,
    },
    /// Simulator, engine and load clients in one process: input rate, messages delivered,
    /// latency percentiles beside the physical floor (rtrb and loopback TCP ping-pong),
    /// drops per queue, CPU per thread, peak RSS. A table on stdout, or with --json exactly
    /// one JSON object (latencies in µs, rates per second); progress on stderr.
    Bench(BenchArgs),
    /// Audit a client's captured stream against the simulator's ground truth
    /// (`simulate --synthetic --truth-out`): per book, snapshots and rebuilt `book_change`
    /// books equal to the truth at their update id, differing while flagged, and differing
    /// unflagged. Exit status 1 when any book was served wrong unflagged.
    Audit {
        /// The truth file written by `pinfeed simulate --synthetic --truth-out`.
        #[arg(long, value_name = "FILE")]
        truth: PathBuf,
        /// The client's messages as JSON lines (`scripts/ws_client.py` output), asked with
        /// `"withUpdateId": true` and `"withIntegrityMessages": true`.
        #[arg(long, value_name = "FILE")]
        capture: PathBuf,
    },
    /// Offline demo: the synthetic venue simulator and the engine in one process, serving
    /// clients on 127.0.0.1:9100, with a status line per second (frames in, events out,
    /// clients, drops, internal latency p50/p99). Ctrl-c stops it.
    Demo {
        /// Where clients connect.
        #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:9100")]
        listen: SocketAddr,
        /// Synthetic input rate, frames/s over all feeds.
        #[arg(long, value_name = "MSGS_PER_S", default_value = "2000", value_parser = parse_rate)]
        rate: f64,
        /// L2 bursts: FACTORx:LENGTH/PERIOD, units ms|s (10x:1s/10s).
        #[arg(long, value_name = "SPEC")]
        burst: Option<pinfeed::sim::synthetic::Burst>,
        /// Seed of the synthetic market.
        #[arg(long, value_name = "N", default_value_t = 1)]
        seed: u64,
        /// Stop after this many seconds (default: at ctrl-c).
        #[arg(long, value_name = "S")]
        duration: Option<f64>,
        /// `GET /metrics` address, or `off`.
        #[arg(long, value_name = "ADDR|off", default_value = "127.0.0.1:9101")]
        metrics_listen: String,
    },
}

#[derive(clap::Args)]
struct BenchArgs {
    /// Target input rate, frames/s over all feeds (recordings: the recorded pace is scaled
    /// to it); 0 < R <= 10,000,000.
    #[arg(long, value_name = "R", default_value_t = 10_000.0)]
    rate: f64,
    /// Load clients.
    #[arg(long, value_name = "K", default_value_t = 1)]
    clients: usize,
    /// Measured window, seconds.
    #[arg(long, value_name = "S", default_value_t = 10.0)]
    duration: f64,
    /// Warm-up before the window, seconds.
    #[arg(long, value_name = "S", default_value_t = 2.0)]
    warmup: f64,
    /// L2 bursts of the synthetic input: FACTORx:DURATION/PERIOD, units ms|s (10x:1s/10s).
    #[arg(long, value_name = "SPEC", conflicts_with = "recordings")]
    burst: Option<pinfeed::sim::synthetic::Burst>,
    /// Seed of the synthetic market model.
    #[arg(
        long,
        value_name = "N",
        default_value_t = 1,
        conflicts_with = "recordings"
    )]
    seed: u64,
    /// Loop these recordings instead of synthetic flow.
    #[arg(long = "recording", value_name = "FILE", num_args = 1..)]
    recordings: Vec<PathBuf>,
    /// Synthetic flow (the default; kept for explicit command lines).
    #[arg(long, conflicts_with = "recordings")]
    synthetic: bool,
    /// `all`: every client subscribes to everything; `fanout`: each client one symbol's
    /// trades and quotes, round-robin; `split`: even clients only trades, odd clients the
    /// rest of `all` (at least two clients).
    #[arg(long, value_enum, default_value = "all")]
    scenario: ScenarioArg,
    /// Threads of the load clients (0: 1 up to 100 clients, else 2).
    #[arg(long, value_name = "N", default_value_t = 0)]
    load_threads: usize,
    /// Length of each floor measurement, seconds.
    #[arg(long, value_name = "S", default_value_t = 1.0)]
    floor_duration: f64,
    /// Pin the engine's hot threads and the floor's threads to the default cores.
    #[arg(long)]
    pin: bool,
    /// Wait strategy of the engine's hot threads [default: backoff].
    #[arg(long, value_enum)]
    wait: Option<WaitArg>,
    /// Cores of the fan-out shards, one shard each (`0,1`: two shards) [default: 1].
    #[arg(long, value_name = "LIST")]
    cpu_fanout: Option<String>,
    /// Slots of each trade lane (`[queues] lane_slots`) [default: the config default].
    #[arg(long, value_name = "N")]
    lane_slots: Option<usize>,
    /// Print exactly one JSON object on stdout instead of the table.
    #[arg(long)]
    json: bool,
}

#[derive(Copy, Clone, clap::ValueEnum)]
enum ScenarioArg {
    All,
    Fanout,
    Split,
}

/// `--rate`: a finite number of frames per second above 0.
fn parse_fault(text: &str) -> Result<pinfeed::sim::fault::FaultSpec, String> {
    text.parse()
}

fn parse_rate(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(r) if r.is_finite() && r > 0.0 => Ok(r),
        _ => Err(format!(
            "expected a number of frames per second > 0, got `{text}`"
        )),
    }
}

impl From<WaitArg> for WaitMode {
    fn from(w: WaitArg) -> WaitMode {
        match w {
            WaitArg::Spin => WaitMode::Spin,
            WaitArg::Backoff => WaitMode::Backoff,
        }
    }
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
            synthetic,
            rate,
            burst,
            seed,
            listen,
            tls,
            speed,
            looped,
            write_config,
            ca_key,
            faults,
            truth_out,
            truth_depth,
        } => {
            if !synthetic && (rate.is_some() || burst.is_some() || seed.is_some()) {
                return Err("--rate, --burst and --seed need --synthetic".into());
            }
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
                synthetic: synthetic.then(|| pinfeed::sim::synthetic::SyntheticOptions {
                    rate_per_s: rate.unwrap_or(pinfeed::sim::synthetic::DEFAULT_RATE_PER_S),
                    burst,
                    seed: seed.unwrap_or(1),
                    truth_out,
                    truth_depth: truth_depth as usize,
                    ..Default::default()
                }),
                faults,
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
            replay_dir,
        } => {
            let mut cfg = match config {
                Some(path) => Config::load(&path)?,
                None => Config::default(),
            };
            if replay_dir.is_some() {
                cfg.replay.dir = replay_dir;
            }
            CpuOverrides {
                ingest: cpu_ingest
                    .map(|l| parse_core_list("--cpu-ingest", &l))
                    .transpose()?,
                book: cpu_book,
                fanout: cpu_fanout
                    .map(|l| parse_core_list("--cpu-fanout", &l))
                    .transpose()?,
                wait: wait.map(WaitMode::from),
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
        Command::Bench(args) => bench(args),
        Command::Audit { truth, capture } => {
            let truth = pinfeed::audit::Truth::open(&truth)?;
            let mut audit = pinfeed::audit::Audit::new(&truth);
            audit.take_file(&capture)?;
            print!("{}", audit.report());
            let total = audit.total();
            if total.compared() == 0 {
                return Err(format!(
                    "{}: no book message to compare (asked withUpdateId?)",
                    capture.display()
                )
                .into());
            }
            Ok(if total.wrong_unflagged() == 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Command::Demo {
            listen,
            rate,
            burst,
            seed,
            duration,
            metrics_listen,
        } => {
            let opts = pinfeed::demo::DemoOptions {
                listen,
                rate_per_s: rate,
                burst,
                seed,
                duration: duration.map(|d| seconds("--duration", d)).transpose()?,
                metrics_listen: parse_metrics_listen(&metrics_listen)?,
                ..pinfeed::demo::DemoOptions::default()
            };
            let (tx, rx) = crossbeam_channel::bounded::<()>(1);
            ctrlc::set_handler(move || {
                let _ = tx.try_send(());
            })?;
            let totals = pinfeed::demo::run(&opts, &rx)?;
            eprintln!(
                "pinfeed demo: {} frames in, {} events out, {} client messages, {} drops, {} gaps",
                totals.frames_in,
                totals.events_out,
                totals.client_messages,
                totals.drops,
                totals.gaps
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Seconds from a flag; out-of-range values become a refusal naming the flag.
fn seconds(flag: &str, s: f64) -> Result<std::time::Duration, String> {
    std::time::Duration::try_from_secs_f64(s)
        .map_err(|_| format!("{flag}: `{s}` is not a number of seconds >= 0"))
}

fn bench(a: BenchArgs) -> Result<ExitCode, Box<dyn std::error::Error>> {
    use pinfeed::bench::{BenchInput, BenchOptions, Scenario};
    let input = if a.recordings.is_empty() {
        BenchInput::Synthetic {
            rate_per_s: a.rate,
            burst: a.burst,
            seed: a.seed,
        }
    } else {
        BenchInput::Recording {
            paths: a.recordings,
            rate_per_s: Some(a.rate),
        }
    };
    let opts = BenchOptions {
        input,
        clients: a.clients,
        duration: seconds("--duration", a.duration)?,
        warmup: seconds("--warmup", a.warmup)?,
        scenario: match a.scenario {
            ScenarioArg::All => Scenario::All,
            ScenarioArg::Fanout => Scenario::Fanout,
            ScenarioArg::Split => Scenario::Split,
        },
        load_threads: a.load_threads,
        floor_duration: seconds("--floor-duration", a.floor_duration)?,
        pin: a.pin,
        wait: a.wait.map(WaitMode::from).unwrap_or_default(),
        fanout_cores: match &a.cpu_fanout {
            Some(l) => parse_core_list("--cpu-fanout", l)?,
            None => vec![1],
        },
        lane_slots: a.lane_slots,
    };
    let report = pinfeed::bench::run(&opts)?;
    let mut out = std::io::stdout().lock();
    if a.json {
        writeln!(out, "{}", report.to_json())?;
    } else {
        write!(out, "{}", report.table())?;
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
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

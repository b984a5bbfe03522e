//! The `pinfeed` command: parses arguments, validates them, runs the command, returns an exit
//! code (0 success, 2 bad input or usage).

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use pinfeed::replay::Replay;
use pinfeed::sim::recording::Recording;

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
}

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

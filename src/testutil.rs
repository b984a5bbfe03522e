//! Helpers shared by the unit tests: fixture and recording access, event collection.

use std::path::PathBuf;

use crate::model::{Event, Exchange, Instruments, Stamps};
use crate::sim::recording::{Record, Recording, data_dir};
use crate::venue::{FrameKind, ParseError, VenueParser};

/// Path of a fixture file, e.g. `fixtures("bybit.jsonl")`.
pub fn fixture_path(name: &str) -> PathBuf {
    data_dir().join("fixtures").join(name)
}

/// Every non-empty line of a fixture file.
pub fn fixture_lines(name: &str) -> Vec<String> {
    std::fs::read_to_string(fixture_path(name))
        .unwrap_or_else(|e| panic!("{}: {e}", fixture_path(name).display()))
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(str::to_string)
        .collect()
}

/// The recording `name` (e.g. `OKX.jsonl.zst`).
pub fn recording(name: &str) -> Recording {
    Recording::open(&data_dir().join("recordings").join(name)).unwrap()
}

/// Received frames of a recording, with their connection name.
pub fn recv_frames(rec: &Recording) -> Vec<(String, String)> {
    rec.records
        .iter()
        .filter_map(|r| match r {
            Record::Recv { conn, data, .. } => Some((conn.clone(), data.clone())),
            _ => None,
        })
        .collect()
}

/// A registry holding `symbols`.
pub fn instruments(symbols: &[(Exchange, &str)]) -> Instruments {
    let mut reg = Instruments::new();
    for (e, s) in symbols {
        reg.intern(*e, s);
    }
    reg
}

/// Parses one frame, collecting its events.
pub fn parse(
    parser: &mut VenueParser,
    frame: &str,
    instruments: &Instruments,
) -> (Result<FrameKind, ParseError>, Vec<Event>) {
    let mut events = Vec::new();
    let mut bytes = frame.as_bytes().to_vec();
    let stamps = Stamps {
        exch_ts_ns: 0,
        recv_ts_ns: 1,
        recv_mono_ns: 2,
        push_delta_ns: 0,
        applied_delta_ns: 0,
    };
    let r = parser.parse_frame(&mut bytes, stamps, instruments, &mut |e| events.push(e));
    (r, events)
}

//! Whole-pipeline replay of every recording (parse + books, no decompression), in frames per
//! second, against two baselines in the same process: parsing each frame into
//! `serde_json::Value` (and nothing else), and a bare simd-json tape parse (the floor: the
//! whole per-frame work should cost about what this costs).
//!
//! Run: `cargo bench --bench replay`.

mod common;

use std::hint::black_box;

use criterion::{Criterion, Throughput};

use pinfeed::replay::Replay;
use pinfeed::sim::recording::Recording;

fn main() {
    let paths = pinfeed::sim::recording::bundled_recordings().unwrap();
    let recs: Vec<_> = paths.iter().map(|p| Recording::open(p).unwrap()).collect();
    let mut replay = Replay::prepare(&recs).unwrap();
    let (_, frames) = common::frames();
    let ws_frames: Vec<Vec<u8>> = frames
        .into_iter()
        .filter(|f| f.1.is_none())
        .map(|f| f.2)
        .collect();
    let n = ws_frames.len() as u64;
    let mut c = Criterion::default().configure_from_args();
    let mut g = c.benchmark_group("replay/all");
    g.throughput(Throughput::Elements(n));
    g.bench_function("pinfeed", |b| {
        b.iter(|| replay.run::<Vec<u8>>(None, |_, _, _| {}).unwrap())
    });
    g.bench_function("serde_value_parse_only", |b| {
        b.iter(|| {
            for f in &ws_frames {
                let v: serde_json::Value = serde_json::from_slice(f).unwrap();
                black_box(v);
            }
        })
    });
    let mut buffers = simd_json::Buffers::new(64 * 1024);
    let mut tape = simd_json::tape::Tape::null().reset();
    let mut scratch = Vec::with_capacity(64 * 1024);
    g.bench_function("simd_json_tape_only", |b| {
        b.iter(|| {
            for f in &ws_frames {
                scratch.clear();
                scratch.extend_from_slice(f);
                let mut t =
                    std::mem::replace(&mut tape, simd_json::tape::Tape::null().reset()).reset();
                simd_json::fill_tape(&mut scratch, &mut buffers, &mut t).unwrap();
                black_box(t.0.len());
                tape = t.reset();
            }
        })
    });
    g.finish();
    c.final_summary();
    println!("\nreplay ratios (baseline time / pinfeed time; >1 means pinfeed is faster):");
    common::print_ratios(
        "replay/all",
        "pinfeed",
        &["serde_value_parse_only", "simd_json_tape_only"],
        n,
    );
    if let Some(t) = common::mean_ns("replay/all", "pinfeed") {
        println!("replay/all: {:.0} frames/s", n as f64 * 1e9 / t);
    }
}

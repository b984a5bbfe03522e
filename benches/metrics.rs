//! Cost of stage stamping on the hot path: a clock read, a histogram record, and what one
//! frame pays through the whole pipeline with latency on and one client (the read stamp,
//! taken anyway, plus 4 clock reads and 6 records).
//!
//! `cargo bench --bench metrics -- --warm-up-time 1 --measurement-time 3`

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use pinfeed::clock::mono_ns;
use pinfeed::metrics::{Exporter, LatencyConfig, Stage};

fn stamping(c: &mut Criterion) {
    let mut exporter = Exporter::new(LatencyConfig::default());
    let mut rec = exporter
        .recorder(&Stage::ALL)
        .expect("latency is on by default");
    let mut g = c.benchmark_group("stamping");
    g.bench_function("mono_ns", |b| b.iter(|| black_box(mono_ns())));
    let mut v = 1u64;
    g.bench_function("record", |b| {
        b.iter(|| {
            v = v.wrapping_mul(6364136223846793005).wrapping_add(1);
            rec.record(Stage::ReadToWritten, black_box(v >> 44));
        })
    });
    g.bench_function("per_frame_one_client", |b| {
        b.iter(|| {
            let read = black_box(mono_ns());
            let push = mono_ns();
            rec.record_between(Stage::ReadToPush, read, push);
            rec.record_venue(
                black_box(1_700_000_000_000_000_000),
                1_700_000_000_001_000_000,
            );
            let applied = mono_ns();
            rec.record_between(Stage::PushToApplied, push, applied);
            let encoded = mono_ns();
            rec.record_between(Stage::AppliedToEncoded, applied, encoded);
            let written = mono_ns();
            rec.record_between(Stage::EncodedToWritten, encoded, written);
            rec.record_between(Stage::ReadToWritten, read, written);
        })
    });
    g.finish();
}

criterion_group!(benches, stamping);
criterion_main!(benches);

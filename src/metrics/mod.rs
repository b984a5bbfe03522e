//! Measurement: stage stamps, per-thread HDR histograms, dumps and `/metrics`.
//!
//! Stamps (all from [`crate::clock::mono_ns`], so threads compare): socket read
//! (`Stamps::recv_mono_ns`, ingest), ring push (`push_delta_ns`, ingest), book applied
//! (`applied_delta_ns`, book thread), fan-out encode and client socket write (fan-out
//! thread), plus the venue's event time against the wall-clock read time. Each [`Stage`] is
//! recorded by the one thread that sees its end:
//!
//! | thread | stages |
//! |---|---|
//! | ingest (each) | [`Stage::ReadToPush`], [`Stage::VenueToRead`] (once per frame) |
//! | book | [`Stage::PushToApplied`] (once per book message or event) |
//! | fan-out | [`Stage::AppliedToEncoded`] (per encoded message), [`Stage::EncodedToWritten`] and [`Stage::ReadToWritten`] (per message per client) |
//!
//! Real-time contract: a [`StageRecorder`] is owned by its hot thread; recording touches only
//! its own preallocated histograms (ns, 1 ns..60 s, 3 significant digits; larger values are
//! clamped and counted). About once a second, on the thread's housekeeping tick, it swaps
//! them for empty ones through a pair of `rtrb` rings (no lock, no syscall; a full ring means
//! keep accumulating). The [`Exporter`] thread (cold) merges per stage across threads, keeps
//! cumulative and last-interval histograms behind a mutex for [`Latency::snapshot`], writes
//! `<stage>.hlog` interval logs and, at the end, `<stage>.hgrm` percentile distributions.
//! [`MetricsServer`] serves [`render`]ed Prometheus text on a cold thread.

mod dump;
mod exporter;
mod http;
mod prom;
mod recorder;

pub use dump::{HGRM_VALUE_SCALE, HLOG_LEGEND, HlogWriter, hgrm_text, write_hgrm};
pub use exporter::{
    Exporter, ExporterError, ExporterHandle, Latency, LatencyConfig, LatencySnapshot,
    StageQuantiles,
};
pub use http::{
    Answer, HttpCounters, HttpLimits, HttpServer, Reply, Request, Takeover, into_blocking,
};
pub use prom::{CONTENT_TYPE, MetricsServer, Sources, process_memory_bytes, render};
pub use recorder::{
    HIGHEST_NS, Interval, LOWEST_NS, SIGNIFICANT_DIGITS, Stage, StageRecorder, new_histogram,
    offset_ns, stamps_mut,
};

//! The cold side: one exporter thread merges every hot thread's intervals per stage, keeps
//! cumulative and last-interval histograms, writes the interval logs and, at the end, the
//! percentile distributions.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use hdrhistogram::Histogram;

use super::dump::{HlogWriter, write_hgrm};
use super::recorder::{Interval, SPARES, Stage, StageRecorder, new_histogram};

/// How latency is recorded and dumped. [`LatencyConfig::default`]: recording on, hand-off
/// every second, no dumps.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LatencyConfig {
    /// Stamp and record at all. Off: no clock read or histogram touch on the hot path.
    pub enabled: bool,
    /// How often a hot thread hands its histograms to the exporter. Default 1 s.
    pub handoff: Duration,
    /// `--hdr-dir`: where `<stage>.hlog` and `<stage>.hgrm` go; `None`: no files.
    pub hdr_dir: Option<PathBuf>,
    /// `--hdr-interval`: period of the interval logs (and of the last-interval view).
    /// Default 10 s.
    pub hdr_interval: Duration,
}

impl Default for LatencyConfig {
    fn default() -> Self {
        LatencyConfig {
            enabled: true,
            handoff: Duration::from_secs(1),
            hdr_dir: None,
            hdr_interval: Duration::from_secs(10),
        }
    }
}

/// Quantiles of one stage, in ns.
#[derive(Copy, Clone, Debug, PartialEq)]
pub struct StageQuantiles {
    /// The stage.
    pub stage: Stage,
    /// Values recorded.
    pub count: u64,
    /// Median, ns.
    pub p50_ns: u64,
    /// 90th percentile, ns.
    pub p90_ns: u64,
    /// 99th percentile, ns.
    pub p99_ns: u64,
    /// 99.9th percentile, ns.
    pub p999_ns: u64,
    /// Largest value (to the histogram's precision), ns.
    pub max_ns: u64,
    /// Mean, ns.
    pub mean_ns: f64,
    /// Sum of the values (mean times count), ns.
    pub sum_ns: f64,
    /// Values over 60 s recorded as 60 s.
    pub clamped: u64,
}

impl StageQuantiles {
    fn of(stage: Stage, h: &Histogram<u64>, clamped: u64) -> StageQuantiles {
        let q = |p| {
            if h.is_empty() {
                0
            } else {
                h.value_at_quantile(p)
            }
        };
        StageQuantiles {
            stage,
            count: h.len(),
            p50_ns: q(0.5),
            p90_ns: q(0.9),
            p99_ns: q(0.99),
            p999_ns: q(0.999),
            max_ns: if h.is_empty() { 0 } else { h.max() },
            mean_ns: h.mean(),
            sum_ns: h.mean() * h.len() as f64,
            clamped,
        }
    }

    /// A quantile in µs (for status lines and bench tables).
    pub fn us(ns: u64) -> f64 {
        ns as f64 / 1000.0
    }
}

/// Per-stage quantiles since the start (or the last [`Latency::reset`]) and of the last
/// complete dump interval.
#[derive(Clone, Debug, PartialEq)]
pub struct LatencySnapshot {
    /// Cumulative, per [`Stage::ALL`] index.
    pub cumulative: Vec<StageQuantiles>,
    /// The last complete interval of `hdr_interval`, per [`Stage::ALL`] index.
    pub interval: Vec<StageQuantiles>,
    /// Venue times after the read time (clock skew), recorded as 0.
    pub negative_skews: u64,
    /// Client messages not stamped because the client's stamp queue was full.
    pub stamps_skipped: u64,
}

impl LatencySnapshot {
    /// The cumulative quantiles of `stage`.
    pub fn stage(&self, stage: Stage) -> &StageQuantiles {
        &self.cumulative[stage.index()]
    }
}

/// What the exporter shares with readers (cold: a mutex).
struct State {
    cumulative: Vec<Histogram<u64>>,
    last_interval: Vec<Histogram<u64>>,
    clamped: [u64; 6],
    last_clamped: [u64; 6],
    negative_skews: u64,
    stamps_skipped: u64,
}

/// A handle on the exporter's histograms: snapshots and reset, from any thread.
#[derive(Clone)]
pub struct Latency {
    state: Arc<Mutex<State>>,
    enabled: bool,
}

impl std::fmt::Debug for Latency {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Latency")
            .field("enabled", &self.enabled)
            .finish_non_exhaustive()
    }
}

impl Latency {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether stages are stamped at all.
    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// Quantiles of every stage. Values reach the exporter on the hot threads' hand-off
    /// period (1 s by default), so the newest second may be missing.
    pub fn snapshot(&self) -> LatencySnapshot {
        let st = self.lock();
        LatencySnapshot {
            cumulative: Stage::ALL
                .iter()
                .map(|s| StageQuantiles::of(*s, &st.cumulative[s.index()], st.clamped[s.index()]))
                .collect(),
            interval: Stage::ALL
                .iter()
                .map(|s| {
                    StageQuantiles::of(*s, &st.last_interval[s.index()], st.last_clamped[s.index()])
                })
                .collect(),
            negative_skews: st.negative_skews,
            stamps_skipped: st.stamps_skipped,
        }
    }

    /// Empties the cumulative histograms (e.g. after a benchmark's warm-up). Values still in
    /// a hot thread's current interval arrive after the reset.
    pub fn reset(&self) {
        let mut st = self.lock();
        for h in &mut st.cumulative {
            h.reset();
        }
        st.clamped = [0; 6];
        st.negative_skews = 0;
        st.stamps_skipped = 0;
    }
}

struct Link {
    full: rtrb::Consumer<Interval>,
    spare: rtrb::Producer<Interval>,
}

/// Builds the recorders of a run, then runs the exporter thread.
pub struct Exporter {
    config: LatencyConfig,
    links: Vec<Link>,
    state: Arc<Mutex<State>>,
}

/// Why the exporter could not start.
#[derive(Debug, thiserror::Error)]
pub enum ExporterError {
    /// The dump directory or a file in it could not be created.
    #[error("--hdr-dir {path}: {source}")]
    Dir {
        /// The path.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The thread could not be spawned.
    #[error("spawn metrics exporter: {0}")]
    Spawn(std::io::Error),
}

impl Exporter {
    /// An exporter for `config`; make the recorders, then [`Exporter::spawn`].
    pub fn new(config: LatencyConfig) -> Exporter {
        let hists = || Stage::ALL.iter().map(|_| new_histogram()).collect();
        Exporter {
            config,
            links: Vec::new(),
            state: Arc::new(Mutex::new(State {
                cumulative: hists(),
                last_interval: hists(),
                clamped: [0; 6],
                last_clamped: [0; 6],
                negative_skews: 0,
                stamps_skipped: 0,
            })),
        }
    }

    /// A recorder for a thread that records `stages`; `None` when latency is disabled.
    pub fn recorder(&mut self, stages: &[Stage]) -> Option<StageRecorder> {
        if !self.config.enabled {
            return None;
        }
        let (full_tx, full_rx) = rtrb::RingBuffer::new(SPARES + 1);
        let (spare_tx, spare_rx) = rtrb::RingBuffer::new(SPARES + 1);
        // the exporter gives emptied intervals back through the spare ring; it starts full
        let mut link_spare = spare_tx;
        for _ in 0..SPARES {
            let _ = link_spare.push(Interval::new(stages));
        }
        let period_ns = self.config.handoff.as_nanos().max(1) as u64;
        let recorder = StageRecorder::new(stages, full_tx, spare_rx, period_ns);
        self.links.push(Link {
            full: full_rx,
            spare: link_spare,
        });
        Some(recorder)
    }

    /// The handle for snapshots and reset.
    pub fn latency(&self) -> Latency {
        Latency {
            state: self.state.clone(),
            enabled: self.config.enabled,
        }
    }

    /// Starts the exporter thread (named `metrics`, not pinned). It merges every 50 ms, rolls
    /// the interval (and writes the interval logs) every `hdr_interval`, and on
    /// [`ExporterHandle::stop`] merges what is left and writes the `.hgrm` files.
    ///
    /// # Errors
    /// [`ExporterError::Dir`] when the dump directory or files cannot be created.
    pub fn spawn(self) -> Result<ExporterHandle, ExporterError> {
        let Exporter {
            config,
            links,
            state,
        } = self;
        let start_wall = SystemTime::now();
        let mut logs = Vec::new();
        if let Some(dir) = &config.hdr_dir {
            std::fs::create_dir_all(dir).map_err(|source| ExporterError::Dir {
                path: dir.clone(),
                source,
            })?;
            for s in Stage::ALL {
                let path = dir.join(format!("{}.hlog", s.name()));
                let log = HlogWriter::create(&path, s, start_wall)
                    .map_err(|source| ExporterError::Dir { path, source })?;
                logs.push(log);
            }
        }
        let stop = Arc::new(AtomicBool::new(false));
        let mut worker = Worker {
            config,
            links,
            state,
            pending: Stage::ALL.iter().map(|_| new_histogram()).collect(),
            pending_clamped: [0; 6],
            logs,
            start: Instant::now(),
            interval_start: Duration::ZERO,
        };
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("metrics".into())
            .spawn(move || worker.run(&flag))
            .map_err(ExporterError::Spawn)?;
        Ok(ExporterHandle {
            stop,
            thread: Some(thread),
        })
    }
}

/// The running exporter thread.
pub struct ExporterHandle {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl ExporterHandle {
    /// Stops the thread after a last merge and the final dumps (call after the hot threads
    /// ended, so their final intervals are in). Errors writing files go to stderr.
    pub fn stop(mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for ExporterHandle {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

struct Worker {
    config: LatencyConfig,
    links: Vec<Link>,
    state: Arc<Mutex<State>>,
    /// The current dump interval, per stage.
    pending: Vec<Histogram<u64>>,
    pending_clamped: [u64; 6],
    logs: Vec<HlogWriter>,
    start: Instant,
    interval_start: Duration,
}

impl Worker {
    fn run(&mut self, stop: &AtomicBool) {
        let mut next_roll = self.start + self.config.hdr_interval;
        loop {
            let stopping = stop.load(Ordering::SeqCst);
            self.collect();
            let now = Instant::now();
            if now >= next_roll || stopping {
                self.roll(now);
                next_roll += self.config.hdr_interval;
                if next_roll < now {
                    next_roll = now + self.config.hdr_interval;
                }
            }
            if stopping {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        if let Some(dir) = &self.config.hdr_dir {
            let st = self.state.lock().unwrap_or_else(|e| e.into_inner());
            for s in Stage::ALL {
                let path = dir.join(format!("{}.hgrm", s.name()));
                if let Err(e) = write_hgrm(&path, s, &st.cumulative[s.index()]) {
                    eprintln!("pinfeed: {}: {e}", path.display());
                }
            }
        }
    }

    /// Merges every interval the hot threads handed off and gives the emptied ones back.
    fn collect(&mut self) {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        for link in &mut self.links {
            while let Ok(mut iv) = link.full.pop() {
                for (i, h) in iv.hists.iter().enumerate() {
                    if let Some(h) = h {
                        if h.is_empty() {
                            continue;
                        }
                        // equal bounds: `add` cannot fail
                        let _ = self.pending[i].add(h);
                        let _ = st.cumulative[i].add(h);
                    }
                }
                for i in 0..6 {
                    self.pending_clamped[i] += iv.clamped[i];
                    st.clamped[i] += iv.clamped[i];
                }
                st.negative_skews += iv.negative_skews;
                st.stamps_skipped += iv.stamps_skipped;
                iv.reset();
                let _ = link.spare.push(iv);
            }
        }
    }

    /// Ends the dump interval: interval log entries, last-interval view, fresh interval.
    fn roll(&mut self, now: Instant) {
        let end = now.duration_since(self.start);
        let length = end.saturating_sub(self.interval_start);
        for log in &mut self.logs {
            let h = &self.pending[log.stage().index()];
            if let Err(e) = log.append(h, self.interval_start, length) {
                eprintln!("pinfeed: {}: {e}", log.path().display());
            }
        }
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        std::mem::swap(&mut st.last_interval, &mut self.pending);
        st.last_clamped = self.pending_clamped;
        drop(st);
        for h in &mut self.pending {
            h.reset();
        }
        self.pending_clamped = [0; 6];
        self.interval_start = end;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::recorder::HIGHEST_NS;

    fn temp_dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("pinfeed-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    #[test]
    fn disabled_gives_no_recorder() {
        let mut e = Exporter::new(LatencyConfig {
            enabled: false,
            ..LatencyConfig::default()
        });
        assert!(e.recorder(&[Stage::ReadToPush]).is_none());
        assert!(!e.latency().enabled());
    }

    /// Two threads' recorders, hand-offs past what the rings hold (the recorder keeps
    /// accumulating), clamping and skew counts, then the merged snapshot and the files.
    #[test]
    fn intervals_merge_across_threads_without_loss() {
        let dir = temp_dir("exporter");
        let mut e = Exporter::new(LatencyConfig {
            enabled: true,
            handoff: Duration::from_secs(3600),
            hdr_dir: Some(dir.clone()),
            hdr_interval: Duration::from_secs(3600),
        });
        let latency = e.latency();
        let mut ingest = e
            .recorder(&[Stage::ReadToPush, Stage::VenueToRead])
            .unwrap();
        let mut book = e.recorder(&[Stage::PushToApplied]).unwrap();
        // nobody collects yet: the spare ring runs dry after SPARES hand-offs
        let mut handed = 0;
        for round in 0..5u64 {
            for v in 1..=100u64 {
                ingest.record(Stage::ReadToPush, v * 1000 + round);
                book.record(Stage::PushToApplied, v * 10);
            }
            if ingest.handoff() {
                handed += 1;
            }
        }
        assert_eq!(handed, SPARES);
        // a stage this thread does not record is ignored
        ingest.record(Stage::ReadToWritten, 5);
        ingest.record(Stage::ReadToPush, HIGHEST_NS * 2);
        ingest.record_venue(1_000, 3_000);
        ingest.record_venue(5_000, 3_000); // venue clock ahead: 0, counted
        ingest.record_venue(0, 3_000); // no venue time: nothing
        let handle = e.spawn().unwrap();
        ingest.finish();
        book.finish();
        handle.stop();

        let snap = latency.snapshot();
        let rp = snap.stage(Stage::ReadToPush);
        assert_eq!(rp.count, 501);
        assert_eq!(rp.clamped, 1);
        assert!(rp.max_ns >= HIGHEST_NS && rp.max_ns <= HIGHEST_NS + HIGHEST_NS / 500);
        // 501 values: the 251st is 51 µs (each of 1..=100 µs five times, plus the clamped one)
        assert!((rp.p50_ns as i64 - 51_000).abs() <= 40, "{rp:?}");
        assert_eq!(snap.stage(Stage::PushToApplied).count, 500);
        assert_eq!(snap.stage(Stage::ReadToWritten).count, 0);
        let venue = snap.stage(Stage::VenueToRead);
        assert_eq!(venue.count, 2);
        assert_eq!(snap.negative_skews, 1);
        assert_eq!(venue.p50_ns, 0);
        // the final interval went to the last-interval view as well
        assert_eq!(snap.interval[Stage::ReadToPush.index()].count, 501);

        // .hgrm per stage with the right totals
        let text = std::fs::read_to_string(dir.join("read_to_push.hgrm")).unwrap();
        assert!(text.contains("Total count    =          501"), "{text}");
        let text = std::fs::read_to_string(dir.join("encoded_to_written.hgrm")).unwrap();
        assert!(text.contains("Total count    =            0"), "{text}");
        // the .hlog has the interval with every value
        let log = std::fs::read(dir.join("push_to_applied.hlog")).unwrap();
        let intervals = hdrhistogram::serialization::interval_log::IntervalLogIterator::new(&log)
            .filter_map(|e| match e.unwrap() {
                hdrhistogram::serialization::interval_log::LogEntry::Interval(iv) => Some(iv.max()),
                _ => None,
            })
            .count();
        assert_eq!(intervals, 1);

        // reset empties the cumulative view
        latency.reset();
        assert_eq!(latency.snapshot().stage(Stage::ReadToPush).count, 0);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

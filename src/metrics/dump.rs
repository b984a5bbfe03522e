//! HdrHistogram files: interval logs (`.hlog`, the format of HdrHistogram's
//! `HistogramLogWriter`, read by `HistogramLogProcessor`, HdrHistogramVisualizer and the
//! hdrhistogram crate's `IntervalLogIterator`) and percentile distributions (`.hgrm`, the
//! format of `outputPercentileDistribution`, read by the HdrHistogram plotter and
//! `scripts/plot_hdr.py`).
//!
//! Units: `.hlog` histograms hold ns (as recorded); `.hgrm` values are µs (ns / 1000), which
//! the file's first comment line says.

use std::fmt::Write as _;
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use hdrhistogram::Histogram;
use hdrhistogram::serialization::V2DeflateSerializer;
use hdrhistogram::serialization::interval_log::IntervalLogWriterBuilder;

use super::recorder::{SIGNIFICANT_DIGITS, Stage};

/// The legend line of an interval log (as HdrHistogram's Java writer puts it).
pub const HLOG_LEGEND: &str =
    "\"StartTimestamp\",\"Interval_Length\",\"Interval_Max\",\"Interval_Compressed_Histogram\"";

/// `.hgrm` values are ns divided by this (µs).
pub const HGRM_VALUE_SCALE: f64 = 1000.0;

/// An open interval log of one stage.
pub struct HlogWriter {
    stage: Stage,
    path: PathBuf,
    file: BufWriter<File>,
    serializer: V2DeflateSerializer,
    line: Vec<u8>,
}

impl HlogWriter {
    /// Creates `path` and writes the header: a comment naming the stage and unit,
    /// `#[StartTime: ...]`, `#[BaseTime: ...]` (both `start`) and the legend. Interval
    /// timestamps are seconds since `start`.
    ///
    /// # Errors
    /// The file's I/O error.
    pub fn create(path: &Path, stage: Stage, start: SystemTime) -> io::Result<HlogWriter> {
        let mut file = BufWriter::new(File::create(path)?);
        let mut serializer = V2DeflateSerializer::new();
        IntervalLogWriterBuilder::new()
            .add_comment(&format!(
                "pinfeed stage {} latency, values in ns (1 ns..60 s, {} significant digits)",
                stage.name(),
                SIGNIFICANT_DIGITS
            ))
            .with_start_time(start)
            .with_base_time(start)
            .begin_log_with(&mut file, &mut serializer)?;
        writeln!(file, "{HLOG_LEGEND}")?;
        file.flush()?;
        Ok(HlogWriter {
            stage,
            path: path.to_path_buf(),
            file,
            serializer,
            line: Vec::with_capacity(4096),
        })
    }

    /// The stage logged.
    pub fn stage(&self) -> Stage {
        self.stage
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends one interval (V2 deflate serialized) and flushes.
    ///
    /// # Errors
    /// Serialization or I/O failure.
    pub fn append(
        &mut self,
        h: &Histogram<u64>,
        start: Duration,
        length: Duration,
    ) -> io::Result<()> {
        self.line.clear();
        // a builder without headers writes only the interval line
        let mut w =
            IntervalLogWriterBuilder::new().begin_log_with(&mut self.line, &mut self.serializer)?;
        w.write_histogram(h, start, length, None)
            .map_err(|e| io::Error::other(e.to_string()))?;
        self.file.write_all(&self.line)?;
        self.file.flush()
    }
}

/// The percentile distribution of `h` (ns) in HdrHistogram's `.hgrm` text, values in µs:
/// `Value Percentile TotalCount 1/(1-Percentile)` rows at 5 ticks per half distance, then
/// the Mean/StdDeviation, Max/Total count and Buckets/SubBuckets footer.
pub fn hgrm_text(stage: Stage, h: &Histogram<u64>) -> String {
    let mut s = String::with_capacity(8192);
    let _ = writeln!(
        s,
        "# pinfeed stage {} latency, values in microseconds (us)",
        stage.name()
    );
    let _ = write!(
        s,
        "{:>12} {:>14} {:>10} {:>14}\n\n",
        "Value", "Percentile", "TotalCount", "1/(1-Percentile)"
    );
    let scale = HGRM_VALUE_SCALE;
    let mut total = 0u64;
    if !h.is_empty() {
        for v in h.iter_quantiles(5) {
            total += v.count_since_last_iteration();
            let value = v.value_iterated_to() as f64 / scale;
            let q = v.quantile_iterated_to();
            if q < 1.0 {
                let _ = writeln!(
                    s,
                    "{value:12.3} {q:2.12} {total:10} {:14.2}",
                    1.0 / (1.0 - q)
                );
            } else {
                let _ = writeln!(s, "{value:12.3} {q:2.12} {total:10}");
            }
        }
    }
    let sub_buckets = 1u64 << ((2.0 * 10f64.powi(SIGNIFICANT_DIGITS as i32)).log2().ceil() as u32);
    let _ = writeln!(
        s,
        "#[Mean    = {:12.3}, StdDeviation   = {:12.3}]",
        h.mean() / scale,
        h.stdev() / scale
    );
    let max = if h.is_empty() { 0 } else { h.max() };
    let _ = writeln!(
        s,
        "#[Max     = {:12.3}, Total count    = {:12}]",
        max as f64 / scale,
        h.len()
    );
    let _ = writeln!(
        s,
        "#[Buckets = {:12}, SubBuckets     = {:12}]",
        h.buckets(),
        sub_buckets
    );
    s
}

/// Writes [`hgrm_text`] to `path`.
///
/// # Errors
/// The file's I/O error.
pub fn write_hgrm(path: &Path, stage: Stage, h: &Histogram<u64>) -> io::Result<()> {
    std::fs::write(path, hgrm_text(stage, h))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::recorder::new_histogram;
    use hdrhistogram::serialization::Deserializer;
    use hdrhistogram::serialization::interval_log::{IntervalLogIterator, LogEntry};

    fn sample(n: u64, step_ns: u64) -> Histogram<u64> {
        let mut h = new_histogram();
        for i in 1..=n {
            h.record(i * step_ns).unwrap();
        }
        h
    }

    #[test]
    fn hlog_decodes_back_to_the_recorded_counts() {
        let dir = std::env::temp_dir().join(format!("pinfeed-hlog-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("read_to_written.hlog");
        let start = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let mut w = HlogWriter::create(&path, Stage::ReadToWritten, start).unwrap();
        let a = sample(1000, 1_000); // 1..1000 µs
        let b = sample(250, 7_000_000); // up to 1.75 s
        w.append(&a, Duration::ZERO, Duration::from_secs(1))
            .unwrap();
        w.append(&b, Duration::from_secs(1), Duration::from_secs(1))
            .unwrap();
        w.append(
            &new_histogram(),
            Duration::from_secs(2),
            Duration::from_secs(1),
        )
        .unwrap();
        drop(w);
        let text = std::fs::read(&path).unwrap();
        let head = String::from_utf8_lossy(&text);
        assert!(head.contains("#[StartTime: 1700000000.000"), "{head}");
        assert!(head.contains("#[BaseTime: 1700000000.000"), "{head}");
        assert!(head.contains(HLOG_LEGEND));
        let mut intervals = Vec::new();
        let mut start_time = None;
        for entry in IntervalLogIterator::new(&text) {
            match entry.expect("log entry") {
                LogEntry::StartTime(t) => start_time = Some(t),
                LogEntry::BaseTime(_) => {}
                LogEntry::Interval(iv) => {
                    let bytes = base64_decode(iv.encoded_histogram());
                    let h: Histogram<u64> = Deserializer::new()
                        .deserialize(&mut bytes.as_slice())
                        .expect("V2 deflate histogram");
                    intervals.push((iv.start_timestamp(), iv.duration(), h));
                }
            }
        }
        assert_eq!(start_time, Some(Duration::from_secs(1_700_000_000)));
        assert_eq!(intervals.len(), 3);
        assert_eq!(intervals[0].2.len(), 1000);
        assert_eq!(intervals[0].2, a);
        assert_eq!(intervals[1].0, Duration::from_secs(1));
        assert_eq!(intervals[1].2.len(), 250);
        assert_eq!(
            intervals[1].2.value_at_quantile(1.0),
            b.value_at_quantile(1.0)
        );
        assert_eq!(intervals[2].2.len(), 0);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// Standard base64 (the interval log's encoding), decoded here so the test does not lean
    /// on the writer's own dependency.
    fn base64_decode(s: &str) -> Vec<u8> {
        let val = |c: u8| match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => panic!("bad base64 {c}"),
        };
        let bytes: Vec<u8> = s.bytes().filter(|&c| c != b'=').collect();
        let mut out = Vec::new();
        for chunk in bytes.chunks(4) {
            let mut n = 0u32;
            for (i, &c) in chunk.iter().enumerate() {
                n |= (val(c) as u32) << (18 - 6 * i);
            }
            let k = chunk.len() * 6 / 8;
            for i in 0..k {
                out.push((n >> (16 - 8 * i)) as u8);
            }
        }
        out
    }

    /// Parses `.hgrm` text: (value, percentile, total count) rows and the footer's total.
    pub(crate) fn parse_hgrm(text: &str) -> (Vec<(f64, f64, u64)>, u64) {
        let mut rows = Vec::new();
        let mut total = None;
        for line in text.lines() {
            let t = line.trim();
            if let Some(rest) = t.strip_prefix("#[Max") {
                let n = rest
                    .rsplit('=')
                    .next()
                    .unwrap()
                    .trim_end_matches(']')
                    .trim();
                total = Some(n.parse().unwrap());
                continue;
            }
            if t.is_empty() || t.starts_with('#') || t.starts_with("Value") {
                continue;
            }
            let f: Vec<&str> = t.split_whitespace().collect();
            assert!(f.len() == 3 || f.len() == 4, "{line}");
            rows.push((
                f[0].parse().unwrap(),
                f[1].parse().unwrap(),
                f[2].parse().unwrap(),
            ));
        }
        (rows, total.expect("footer"))
    }

    #[test]
    fn hgrm_parses_monotone_to_percentile_one() {
        let mut h = sample(10_000, 100); // 0.1..1000 µs
        h.record(5_000_000).unwrap(); // one 5 ms outlier
        let text = hgrm_text(Stage::PushToApplied, &h);
        assert!(text.starts_with("# pinfeed stage push_to_applied"));
        assert!(text.contains("microseconds"));
        let (rows, total) = parse_hgrm(&text);
        assert!(rows.len() > 20, "{text}");
        for w in rows.windows(2) {
            assert!(w[1].0 >= w[0].0, "values {w:?}");
            assert!(w[1].1 >= w[0].1, "percentiles {w:?}");
            assert!(w[1].2 >= w[0].2, "counts {w:?}");
        }
        let last = rows.last().unwrap();
        assert_eq!(last.1, 1.0);
        assert_eq!(last.2, 10_001);
        assert_eq!(total, 10_001);
        // the max row is the outlier, in µs to 3 significant digits
        assert!((last.0 - 5000.0).abs() < 5.0, "{last:?}");
        // the median is near 500 µs
        let median = rows.iter().find(|r| r.1 >= 0.5).unwrap();
        assert!((median.0 - 500.0).abs() < 1.0, "{median:?}");
        assert!(text.contains("SubBuckets     =         2048"), "{text}");
    }

    #[test]
    fn empty_hgrm_has_a_footer() {
        let (rows, total) = parse_hgrm(&hgrm_text(Stage::VenueToRead, &new_histogram()));
        assert!(rows.is_empty());
        assert_eq!(total, 0);
    }
}

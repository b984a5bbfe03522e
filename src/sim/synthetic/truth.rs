//! Ground truth of synthetic flow (`pinfeed simulate --synthetic --truth-out FILE`): one JSON
//! line per book state, written when the market model changes, before any fault is applied:
//!
//! ```text
//! {"exchange":"bybit","symbol":"BTCUSDT","updateId":1000123,"bids":[["64000.5","1.2"],...],"asks":[...]}
//! ```
//!
//! `exchange` and `symbol` are as pinfeed's client messages name them; `updateId` is the
//! venue's chain counter the state follows (Binance `u`, Bybit `u`, OKX `seqId`, Deribit
//! `change_id`: what `"withUpdateId": true` adds to `book_change` and `book_snapshot`); the
//! levels are the top `depth` per side, best first, as the venue writes prices and sizes.
//! Each instrument's lines are in update-id order (the first is the book before any delta).

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::market::Market;

/// How often written lines are flushed to the file.
const FLUSH_EVERY: Duration = Duration::from_millis(100);

/// The truth file being written.
#[derive(Debug)]
pub struct Truth {
    depth: usize,
    out: Mutex<(BufWriter<File>, Instant)>,
}

impl Truth {
    /// Creates (truncates) `path`; `depth` levels per side per line (at least 1).
    ///
    /// # Errors
    /// The file cannot be created.
    pub fn create(path: &Path, depth: usize) -> std::io::Result<Truth> {
        Ok(Truth {
            depth: depth.max(1),
            out: Mutex::new((BufWriter::new(File::create(path)?), Instant::now())),
        })
    }

    /// Writes the state of `m` (best effort: a write error is ignored, the flow goes on).
    pub fn record(&self, m: &Market) {
        let mut line = Vec::with_capacity(64 + 40 * self.depth);
        line.extend_from_slice(b"{\"exchange\":\"");
        line.extend_from_slice(m.spec.exchange.id().as_bytes());
        line.extend_from_slice(b"\",\"symbol\":\"");
        line.extend_from_slice(m.spec.symbol.as_bytes());
        line.extend_from_slice(b"\",\"updateId\":");
        line.extend_from_slice(itoa::Buffer::new().format(m.update_id).as_bytes());
        line.extend_from_slice(b",\"bids\":");
        m.spec
            .write_levels(&mut line, m.bids.iter().take(self.depth).copied(), b"\"]");
        line.extend_from_slice(b",\"asks\":");
        m.spec
            .write_levels(&mut line, m.asks.iter().take(self.depth).copied(), b"\"]");
        line.extend_from_slice(b"}\n");
        let mut out = self.out.lock().unwrap_or_else(|e| e.into_inner());
        let (w, flushed) = &mut *out;
        let _ = w.write_all(&line);
        if flushed.elapsed() >= FLUSH_EVERY {
            let _ = w.flush();
            *flushed = Instant::now();
        }
    }

    /// Flushes what was written.
    pub fn flush(&self) {
        let mut out = self.out.lock().unwrap_or_else(|e| e.into_inner());
        let _ = out.0.flush();
    }
}

impl Drop for Truth {
    fn drop(&mut self) {
        self.flush();
    }
}

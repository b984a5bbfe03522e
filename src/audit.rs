//! `pinfeed audit`: joins a client's captured stream with the simulator's ground truth and
//! counts, per book, the served books that equal the true book at their update id, those that
//! differ while the book was flagged, and those that differ unflagged (which must be zero).
//!
//! Inputs:
//! - the truth, from `pinfeed simulate --synthetic --truth-out FILE`
//!   ([`crate::sim::synthetic::truth`]): one line per book state,
//!   `{"exchange","symbol","updateId","bids":[["price","amount"],..],"asks":[..]}`, the top
//!   `D` levels per side;
//! - a capture: the JSON messages one client received, one per line (`scripts/ws_client.py`
//!   prints that), asked with `"withUpdateId": true` so that `book_change` and `book_snapshot`
//!   carry the venue update id they reflect, and with `"withIntegrityMessages": true` so that
//!   the client hears when a book loses sync.
//!
//! What is compared: a `book_snapshot` (name depth `n`) against the truth's top `min(n, D)`
//! levels at its `updateId`; after each `book_change`, the book rebuilt from the client's own
//! `book_change` stream (an `isSnapshot` message replaces it, a delta sets or removes levels)
//! against the truth's top `D` levels at that `updateId`. Prices and amounts are compared as
//! numbers (the truth writes strings, the client messages JSON numbers).
//!
//! Flagged: a book is flagged from a `book_invalid` naming it or a `disconnect` of its exchange
//! (all its symbols, or those listed) until its fresh snapshot: the next `book_change` with
//! `isSnapshot: true`, or for a client without `book_change` on that book, the next
//! `book_snapshot` (pinfeed emits snapshot series only from a synced book). A book the client
//! has not yet had an `isSnapshot` `book_change` for cannot be rebuilt; its deltas are counted
//! and skipped.

use std::collections::{BTreeMap, HashMap};
use std::io::BufRead;
use std::path::Path;

use serde_json::Value;

/// One side's levels, best first: `(price, amount)`.
pub type Side = Vec<(f64, f64)>;

/// The true top levels of one book at one update id.
#[derive(Clone, Debug, PartialEq)]
pub struct TrueBook {
    /// Bids, best (highest) first.
    pub bids: Side,
    /// Asks, best (lowest) first.
    pub asks: Side,
}

/// `(exchange, symbol)` as the client messages name them.
pub type BookKey = (String, String);

/// Errors reading the truth or a capture.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// A file could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// What failed.
        source: std::io::Error,
    },
    /// A truth line is not a truth record.
    #[error("truth line {line}: {what}")]
    Truth {
        /// 1-based line number.
        line: usize,
        /// What is wrong with it.
        what: String,
    },
}

/// The ground truth: every recorded state of every book, by update id.
#[derive(Debug, Default)]
pub struct Truth {
    books: HashMap<BookKey, HashMap<u64, TrueBook>>,
    /// Levels per side the truth was written with (the most any line holds).
    pub depth: usize,
    /// Lines read.
    pub lines: u64,
}

impl Truth {
    /// Reads a truth file.
    ///
    /// # Errors
    /// The file cannot be read, or a line is not a truth record (a torn last line, from a
    /// simulator killed mid-write, is skipped).
    pub fn open(path: &Path) -> Result<Truth, AuditError> {
        let io = |source| AuditError::Io {
            path: path.display().to_string(),
            source,
        };
        Truth::read(std::io::BufReader::new(
            std::fs::File::open(path).map_err(io)?,
        ))
    }

    /// Reads truth lines from `r` (see [`Truth::open`]).
    ///
    /// # Errors
    /// As [`Truth::open`].
    pub fn read(r: impl BufRead) -> Result<Truth, AuditError> {
        let mut truth = Truth::default();
        let mut lines = r.lines().enumerate().peekable();
        while let Some((i, line)) = lines.next() {
            let line = line.map_err(|source| AuditError::Io {
                path: "truth".into(),
                source,
            })?;
            if line.trim().is_empty() {
                continue;
            }
            let last = lines.peek().is_none();
            let bad = |what: &str| AuditError::Truth {
                line: i + 1,
                what: what.to_string(),
            };
            let v: Value = match serde_json::from_str(&line) {
                Ok(v) => v,
                Err(_) if last => break,
                Err(e) => return Err(bad(&e.to_string())),
            };
            let key = (
                v["exchange"].as_str().ok_or_else(|| bad("no exchange"))?,
                v["symbol"].as_str().ok_or_else(|| bad("no symbol"))?,
            );
            let id = v["updateId"].as_u64().ok_or_else(|| bad("no updateId"))?;
            let side = |name: &str| -> Result<Side, AuditError> {
                let Some(levels) = v[name].as_array() else {
                    return Err(bad(&format!("no {name}")));
                };
                levels
                    .iter()
                    .map(|l| {
                        let num = |j: usize| {
                            l[j].as_str()
                                .and_then(|s| s.parse::<f64>().ok())
                                .ok_or_else(|| bad(&format!("bad level in {name}: {l}")))
                        };
                        Ok((num(0)?, num(1)?))
                    })
                    .collect()
            };
            let book = TrueBook {
                bids: side("bids")?,
                asks: side("asks")?,
            };
            truth.depth = truth.depth.max(book.bids.len()).max(book.asks.len());
            truth.lines += 1;
            truth
                .books
                .entry((key.0.to_string(), key.1.to_string()))
                .or_default()
                .insert(id, book);
        }
        Ok(truth)
    }

    /// The true book of `key` at update id `id`.
    pub fn at(&self, key: &BookKey, id: u64) -> Option<&TrueBook> {
        self.books.get(key)?.get(&id)
    }

    /// The books the truth covers.
    pub fn keys(&self) -> impl Iterator<Item = &BookKey> {
        self.books.keys()
    }
}

/// What the audit counted for one book (or in total).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BookCounts {
    /// `book_snapshot` messages equal to the truth at their update id.
    pub snapshots_equal: u64,
    /// `book_snapshot` messages that differ while the book was flagged.
    pub snapshots_differ_flagged: u64,
    /// `book_snapshot` messages that differ while the book was not flagged: wrong books
    /// served as good. Must be zero.
    pub snapshots_differ_unflagged: u64,
    /// Books rebuilt from `book_change` equal to the truth at the message's update id.
    pub changes_equal: u64,
    /// Rebuilt books that differ from the truth: wrong books served as good. Must be zero.
    pub changes_differ: u64,
    /// `book_change` deltas for a book without a snapshot yet or flagged (not rebuilt).
    pub deltas_unrebuilt: u64,
    /// Book messages whose update id the truth lacks (or that carry none).
    pub no_truth: u64,
    /// `book_invalid` messages, and `disconnect` messages covering the book.
    pub invalidations: u64,
    /// Fresh snapshots after a flag.
    pub rebuilds: u64,
    /// Longest time from a flag to its fresh snapshot, by the messages' `localTimestamp`, ms.
    pub max_recovery_ms: u64,
}

impl BookCounts {
    /// Books compared with the truth.
    pub fn compared(&self) -> u64 {
        self.snapshots_equal
            + self.snapshots_differ_flagged
            + self.snapshots_differ_unflagged
            + self.changes_equal
            + self.changes_differ
    }

    /// Wrong books served as good: must be zero.
    pub fn wrong_unflagged(&self) -> u64 {
        self.snapshots_differ_unflagged + self.changes_differ
    }

    fn add(&mut self, o: &BookCounts) {
        self.snapshots_equal += o.snapshots_equal;
        self.snapshots_differ_flagged += o.snapshots_differ_flagged;
        self.snapshots_differ_unflagged += o.snapshots_differ_unflagged;
        self.changes_equal += o.changes_equal;
        self.changes_differ += o.changes_differ;
        self.deltas_unrebuilt += o.deltas_unrebuilt;
        self.no_truth += o.no_truth;
        self.invalidations += o.invalidations;
        self.rebuilds += o.rebuilds;
        self.max_recovery_ms = self.max_recovery_ms.max(o.max_recovery_ms);
    }
}

/// Price as an ordered map key: positive finite `f64` bit patterns order as their values.
type PriceKey = u64;

#[derive(Debug, Default)]
struct BookAudit {
    counts: BookCounts,
    /// Flagged since this `localTimestamp` (unix ns; 0 when the message had none).
    flagged_since: Option<i64>,
    /// The client takes `book_change` for this book.
    sees_changes: bool,
    /// The book rebuilt from `book_change`, when a snapshot started it and no flag broke it.
    rebuilt: Option<(BTreeMap<PriceKey, f64>, BTreeMap<PriceKey, f64>)>,
}

impl BookAudit {
    fn flag(&mut self, ts_ns: i64) {
        self.counts.invalidations += 1;
        self.flagged_since.get_or_insert(ts_ns);
        self.rebuilt = None;
    }

    fn unflag(&mut self, ts_ns: i64) {
        if let Some(since) = self.flagged_since.take() {
            self.counts.rebuilds += 1;
            if since != 0 && ts_ns > since {
                let ms = ((ts_ns - since) / 1_000_000) as u64;
                self.counts.max_recovery_ms = self.counts.max_recovery_ms.max(ms);
            }
        }
    }
}

/// Best bid and best ask, `(price, amount)` each, `None` for an empty side.
pub type BestBidAsk = (Option<(f64, f64)>, Option<(f64, f64)>);

/// One wrong book served unflagged, for the report.
#[derive(Clone, Debug)]
pub struct Mismatch {
    /// The book.
    pub key: BookKey,
    /// Its update id.
    pub update_id: u64,
    /// `book_snapshot` or `book_change`.
    pub kind: &'static str,
    /// Best bid and ask served.
    pub served_top: BestBidAsk,
    /// Best bid and ask of the truth.
    pub true_top: BestBidAsk,
}

/// The audit of one capture against one truth: feed it messages in the order received.
#[derive(Debug)]
pub struct Audit<'t> {
    truth: &'t Truth,
    books: HashMap<BookKey, BookAudit>,
    /// Captured lines that are not JSON objects.
    pub unparsed: u64,
    /// Messages taken.
    pub messages: u64,
    /// The first wrong books served unflagged (at most 20).
    pub mismatches: Vec<Mismatch>,
}

impl<'t> Audit<'t> {
    /// An audit against `truth`.
    pub fn new(truth: &'t Truth) -> Audit<'t> {
        Audit {
            truth,
            books: HashMap::new(),
            unparsed: 0,
            messages: 0,
            mismatches: Vec::new(),
        }
    }

    /// Takes one captured line (a client message as JSON).
    pub fn take_line(&mut self, line: &str) {
        match serde_json::from_str::<Value>(line) {
            Ok(v) if v.is_object() => self.take(&v),
            _ if line.trim().is_empty() => {}
            _ => self.unparsed += 1,
        }
    }

    /// Takes every line of a capture file.
    ///
    /// # Errors
    /// The file cannot be read.
    pub fn take_file(&mut self, path: &Path) -> Result<(), AuditError> {
        let io = |source| AuditError::Io {
            path: path.display().to_string(),
            source,
        };
        let file = std::fs::File::open(path).map_err(io)?;
        for line in std::io::BufReader::new(file).lines() {
            self.take_line(&line.map_err(io)?);
        }
        Ok(())
    }

    /// Takes one client message; messages other than book messages, `book_invalid` and
    /// `disconnect` are ignored.
    pub fn take(&mut self, m: &Value) {
        self.messages += 1;
        let (Some(kind), Some(exchange)) = (m["type"].as_str(), m["exchange"].as_str()) else {
            return;
        };
        let ts_ns = m["localTimestamp"].as_str().and_then(iso_ns).unwrap_or(0);
        if kind == "disconnect" {
            let listed: Option<Vec<&str>> = m["symbols"]
                .as_array()
                .map(|a| a.iter().filter_map(Value::as_str).collect());
            for ((e, s), b) in self.books.iter_mut() {
                if e == exchange && listed.as_ref().is_none_or(|l| l.contains(&s.as_str())) {
                    b.flag(ts_ns);
                }
            }
            return;
        }
        let Some(symbol) = m["symbol"].as_str() else {
            return;
        };
        let key = (exchange.to_string(), symbol.to_string());
        match kind {
            "book_invalid" => self.books.entry(key).or_default().flag(ts_ns),
            "book_change" => self.book_change(key, m, ts_ns),
            "book_snapshot" => self.book_snapshot(key, m, ts_ns),
            _ => {}
        }
    }

    fn book_change(&mut self, key: BookKey, m: &Value, ts_ns: i64) {
        let b = self.books.entry(key.clone()).or_default();
        b.sees_changes = true;
        if m["isSnapshot"].as_bool() == Some(true) {
            b.unflag(ts_ns);
            b.rebuilt = Some((BTreeMap::new(), BTreeMap::new()));
        } else if b.rebuilt.is_none() {
            b.counts.deltas_unrebuilt += 1;
            return;
        }
        let Some((bids, asks)) = b.rebuilt.as_mut() else {
            return;
        };
        for (levels, name) in [(&mut *bids, "bids"), (&mut *asks, "asks")] {
            for l in m[name].as_array().into_iter().flatten() {
                let (Some(price), Some(amount)) = (l["price"].as_f64(), l["amount"].as_f64())
                else {
                    continue;
                };
                if amount == 0.0 {
                    levels.remove(&price.to_bits());
                } else {
                    levels.insert(price.to_bits(), amount);
                }
            }
        }
        let depth = self.truth.depth;
        let served = TrueBook {
            bids: bids
                .iter()
                .rev()
                .take(depth)
                .map(|(p, a)| (f64::from_bits(*p), *a))
                .collect(),
            asks: asks
                .iter()
                .take(depth)
                .map(|(p, a)| (f64::from_bits(*p), *a))
                .collect(),
        };
        let Some(truth) = m["updateId"]
            .as_u64()
            .and_then(|id| self.truth.at(&key, id))
        else {
            b.counts.no_truth += 1;
            return;
        };
        if same(&served, truth, depth) {
            b.counts.changes_equal += 1;
        } else {
            b.counts.changes_differ += 1;
            let id = m["updateId"].as_u64().unwrap_or(0);
            push_mismatch(&mut self.mismatches, key, id, "book_change", &served, truth);
        }
    }

    fn book_snapshot(&mut self, key: BookKey, m: &Value, ts_ns: i64) {
        let b = self.books.entry(key.clone()).or_default();
        if !b.sees_changes {
            // snapshot series run only while the book is synced: this is the fresh one
            b.unflag(ts_ns);
        }
        let side = |name: &str| -> Side {
            m[name]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|l| Some((l["price"].as_f64()?, l["amount"].as_f64()?)))
                .collect()
        };
        let served = TrueBook {
            bids: side("bids"),
            asks: side("asks"),
        };
        let Some(truth) = m["updateId"]
            .as_u64()
            .and_then(|id| self.truth.at(&key, id))
        else {
            b.counts.no_truth += 1;
            return;
        };
        let depth = m["depth"]
            .as_u64()
            .map_or(self.truth.depth, |d| (d as usize).min(self.truth.depth));
        if same(&served, truth, depth) {
            b.counts.snapshots_equal += 1;
        } else if b.flagged_since.is_some() {
            b.counts.snapshots_differ_flagged += 1;
        } else {
            b.counts.snapshots_differ_unflagged += 1;
            let id = m["updateId"].as_u64().unwrap_or(0);
            push_mismatch(
                &mut self.mismatches,
                key,
                id,
                "book_snapshot",
                &served,
                truth,
            );
        }
    }

    /// Counts per book, sorted by exchange and symbol.
    pub fn books(&self) -> Vec<(BookKey, BookCounts)> {
        let mut out: Vec<_> = self
            .books
            .iter()
            .map(|(k, b)| (k.clone(), b.counts.clone()))
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    /// The counts of `key` (zero when the capture has none of it).
    pub fn book(&self, key: &BookKey) -> BookCounts {
        self.books
            .get(key)
            .map(|b| b.counts.clone())
            .unwrap_or_default()
    }

    /// Books flagged at the end of the capture (never rebuilt).
    pub fn still_flagged(&self) -> Vec<BookKey> {
        let mut out: Vec<_> = self
            .books
            .iter()
            .filter(|(_, b)| b.flagged_since.is_some())
            .map(|(k, _)| k.clone())
            .collect();
        out.sort();
        out
    }

    /// The counts over every book.
    pub fn total(&self) -> BookCounts {
        let mut t = BookCounts::default();
        for b in self.books.values() {
            t.add(&b.counts);
        }
        t
    }

    /// A plain-text report: one row per book, the total, the first mismatches.
    pub fn report(&self) -> String {
        use std::fmt::Write;
        let mut out = String::new();
        let _ = writeln!(
            out,
            "{:<16} {:<22} {:>9} {:>8} {:>8} {:>9} {:>8} {:>8} {:>8} {:>7} {:>8}",
            "exchange",
            "symbol",
            "snap_eq",
            "snap_fl",
            "snap_BAD",
            "change_eq",
            "chg_BAD",
            "no_truth",
            "invalid",
            "rebuilt",
            "max_rec",
        );
        let row = |out: &mut String, e: &str, s: &str, c: &BookCounts| {
            let _ = writeln!(
                out,
                "{:<16} {:<22} {:>9} {:>8} {:>8} {:>9} {:>8} {:>8} {:>8} {:>7} {:>6}ms",
                e,
                s,
                c.snapshots_equal,
                c.snapshots_differ_flagged,
                c.snapshots_differ_unflagged,
                c.changes_equal,
                c.changes_differ,
                c.no_truth,
                c.invalidations,
                c.rebuilds,
                c.max_recovery_ms,
            );
        };
        for ((e, s), c) in self.books() {
            row(&mut out, &e, &s, &c);
        }
        row(&mut out, "total", "", &self.total());
        let _ = writeln!(
            out,
            "{} messages, {} unparsed lines, truth: {} states, depth {}; still flagged: {:?}",
            self.messages,
            self.unparsed,
            self.truth.lines,
            self.truth.depth,
            self.still_flagged()
        );
        for m in &self.mismatches {
            let _ = writeln!(
                out,
                "WRONG {} {}/{} updateId {}: served bid/ask {:?}, true {:?}",
                m.kind, m.key.0, m.key.1, m.update_id, m.served_top, m.true_top
            );
        }
        out
    }
}

fn push_mismatch(
    out: &mut Vec<Mismatch>,
    key: BookKey,
    update_id: u64,
    kind: &'static str,
    served: &TrueBook,
    truth: &TrueBook,
) {
    if out.len() < 20 {
        let top = |b: &TrueBook| (b.bids.first().copied(), b.asks.first().copied());
        out.push(Mismatch {
            key,
            update_id,
            kind,
            served_top: top(served),
            true_top: top(truth),
        });
    }
}

/// The top `depth` levels of both sides agree (a side shorter than `depth` must be equally
/// short); numbers agree to 1e-12 relative (JSON number parsing may differ in the last bit).
fn same(served: &TrueBook, truth: &TrueBook, depth: usize) -> bool {
    let close = |a: f64, b: f64| (a - b).abs() <= 1e-12 * a.abs().max(b.abs());
    let side = |a: &Side, b: &Side| {
        let (a, b) = (&a[..a.len().min(depth)], &b[..b.len().min(depth)]);
        a.len() == b.len()
            && a.iter()
                .zip(b)
                .all(|(x, y)| close(x.0, y.0) && close(x.1, y.1))
    };
    side(&served.bids, &truth.bids) && side(&served.asks, &truth.asks)
}

/// `YYYY-MM-DDTHH:MM:SS[.fraction]Z` as unix ns; `None` when it is not that shape.
pub fn iso_ns(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || b[10] != b'T' || !s.ends_with('Z') {
        return None;
    }
    let num = |r: std::ops::Range<usize>| s.get(r)?.parse::<i64>().ok();
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
    let frac = &s[19..s.len() - 1];
    let frac_ns = match frac.strip_prefix('.') {
        Some(f) if !f.is_empty() && f.len() <= 9 && f.bytes().all(|c| c.is_ascii_digit()) => {
            f.parse::<i64>().ok()? * 10i64.pow(9 - f.len() as u32)
        }
        None if frac.is_empty() => 0,
        _ => return None,
    };
    let days = crate::fanout::encode::days_from_civil(y, mo, d);
    Some(((days * 86_400 + h * 3600 + mi * 60 + sec) * 1_000_000_000) + frac_ns)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TRUTH: &str = concat!(
        r#"{"exchange":"bybit","symbol":"BTCUSDT","updateId":1,"bids":[["100.5","2"],["100","1"]],"asks":[["101","3"]]}"#,
        "\n",
        r#"{"exchange":"bybit","symbol":"BTCUSDT","updateId":2,"bids":[["100.5","2"]],"asks":[["101","3"]]}"#,
        "\n",
        r#"{"exchange":"bybit","symbol":"BTCUSDT","updateId":3,"bids":[["100.5","1"]],"asks":[["101","3"]]}"#,
        "\n",
    );

    fn truth() -> Truth {
        Truth::read(TRUTH.as_bytes()).unwrap()
    }

    fn snapshot(id: u64, bid: &str) -> String {
        format!(
            r#"{{"type":"book_snapshot","symbol":"BTCUSDT","exchange":"bybit","name":"book_snapshot_1_100ms","depth":1,"interval":100,"bids":[{{"price":{bid},"amount":2}}],"asks":[{{"price":101,"amount":3}}],"timestamp":"2026-12-03T10:00:00.000Z","localTimestamp":"2026-12-03T10:00:00.000Z","updateId":{id}}}"#
        )
    }

    #[test]
    fn truth_lines_are_indexed_by_book_and_update_id() {
        let t = truth();
        assert_eq!((t.lines, t.depth), (3, 2));
        let key = ("bybit".to_string(), "BTCUSDT".to_string());
        assert_eq!(
            t.at(&key, 1).unwrap().bids,
            vec![(100.5, 2.0), (100.0, 1.0)]
        );
        assert!(t.at(&key, 4).is_none());
        // a torn last line is skipped; a bad line elsewhere is an error
        let torn = format!("{TRUTH}{{\"exchange\":\"by");
        assert_eq!(Truth::read(torn.as_bytes()).unwrap().lines, 3);
        let bad = format!("x\n{TRUTH}");
        assert!(matches!(
            Truth::read(bad.as_bytes()),
            Err(AuditError::Truth { line: 1, .. })
        ));
    }

    #[test]
    fn snapshots_are_judged_against_the_truth_and_the_flag() {
        let t = truth();
        let mut a = Audit::new(&t);
        a.take_line(&snapshot(1, "100.5"));
        a.take_line(&snapshot(1, "100"));
        a.take_line(r#"{"type":"book_invalid","symbol":"BTCUSDT","exchange":"bybit","localTimestamp":"2026-12-03T10:00:01.000Z"}"#);
        // a client without book_change: the next snapshot is the fresh one
        a.take_line(&snapshot(2, "100"));
        a.take_line(&snapshot(9, "100.5"));
        a.take_line("not json");
        let c = a.total();
        assert_eq!(c.snapshots_equal, 1);
        assert_eq!(c.snapshots_differ_unflagged, 2);
        assert_eq!((c.invalidations, c.rebuilds, c.no_truth), (1, 1, 1));
        assert_eq!(a.unparsed, 1);
        assert_eq!(a.mismatches.len(), 2);
        assert!(
            a.report()
                .contains("WRONG book_snapshot bybit/BTCUSDT updateId 2")
        );
    }

    #[test]
    fn book_changes_are_rebuilt_and_flags_last_until_the_fresh_snapshot() {
        let t = truth();
        let mut a = Audit::new(&t);
        let change = |snap: bool, id: u64, bids: &str, ts: &str| {
            format!(
                r#"{{"type":"book_change","symbol":"BTCUSDT","exchange":"bybit","isSnapshot":{snap},"bids":[{bids}],"asks":{asks},"timestamp":"{ts}","localTimestamp":"{ts}","updateId":{id}}}"#,
                asks = if snap {
                    r#"[{"price":101,"amount":3}]"#
                } else {
                    "[]"
                },
            )
        };
        // a delta before any snapshot cannot be rebuilt
        a.take_line(&change(false, 2, "", "2026-12-03T10:00:00.000Z"));
        a.take_line(&change(
            true,
            1,
            r#"{"price":100.5,"amount":2},{"price":100,"amount":1}"#,
            "2026-12-03T10:00:00.000Z",
        ));
        a.take_line(&change(
            false,
            2,
            r#"{"price":100,"amount":0}"#,
            "2026-12-03T10:00:00.100Z",
        ));
        a.take_line(r#"{"type":"disconnect","exchange":"bybit","localTimestamp":"2026-12-03T10:00:00.200Z"}"#);
        a.take_line(&change(
            false,
            3,
            r#"{"price":100.5,"amount":1}"#,
            "2026-12-03T10:00:00.300Z",
        ));
        // while flagged, a wrong snapshot is counted as flagged
        a.take_line(&snapshot(3, "100"));
        a.take_line(&change(
            true,
            3,
            r#"{"price":100.5,"amount":1}"#,
            "2026-12-03T10:00:00.450Z",
        ));
        // a wrong delta after the rebuild is a wrong book
        a.take_line(&change(
            false,
            3,
            r#"{"price":99,"amount":1}"#,
            "2026-12-03T10:00:00.500Z",
        ));
        let c = a.total();
        assert_eq!(c.changes_equal, 3, "{c:?}");
        assert_eq!(c.changes_differ, 1, "{c:?}");
        assert_eq!(c.deltas_unrebuilt, 2, "{c:?}");
        assert_eq!(c.snapshots_differ_flagged, 1, "{c:?}");
        assert_eq!(
            (c.invalidations, c.rebuilds, c.max_recovery_ms),
            (1, 1, 250)
        );
        assert!(a.still_flagged().is_empty());
    }

    #[test]
    fn iso_timestamps() {
        assert_eq!(iso_ns("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(iso_ns("1970-01-01T00:00:01.5Z"), Some(1_500_000_000));
        assert_eq!(
            iso_ns("2026-12-03T10:00:00.123456Z"),
            Some(1_796_292_000_123_456_000)
        );
        assert_eq!(iso_ns("2026-12-03 10:00:00Z"), None);
        assert_eq!(iso_ns("2026-12-03T10:00:00.Z"), None);
    }
}

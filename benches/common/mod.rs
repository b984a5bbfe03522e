//! Shared by the benches: real frames from the recordings, and criterion ratio reports.

#![allow(dead_code)]

use std::path::Path;

use pinfeed::book::Disposition;
use pinfeed::model::{BookSide, Decimal, Event, Instruments};
use pinfeed::replay::Replay;
use pinfeed::sim::recording::{Record, Recording};
use pinfeed::venue::{Feed, feed_from_url};

/// A recorded frame: its feed, the REST URL for a REST body, the bytes.
pub type Frame = (Feed, Option<String>, Vec<u8>);

/// Every received frame of every recording, with its feed, in recorded order, plus REST
/// bodies as `(feed, Some(url), body)`.
pub fn frames() -> (Instruments, Vec<Frame>) {
    let paths = pinfeed::sim::recording::bundled_recordings().unwrap();
    let recs: Vec<Recording> = paths.iter().map(|p| Recording::open(p).unwrap()).collect();
    let instruments = pinfeed::replay::Replay::prepare(&recs).unwrap().instruments;
    let mut out = Vec::new();
    for rec in recs {
        let conns: Vec<(String, Feed)> = rec
            .ws_connections()
            .into_iter()
            .map(|c| {
                let feed = feed_from_url(rec.connect_addr(&c).unwrap(), &rec.exchange).unwrap();
                (c, feed)
            })
            .collect();
        for r in &rec.records {
            match r {
                Record::Recv { conn, data, .. } => {
                    let feed = conns.iter().find(|c| &c.0 == conn).unwrap().1;
                    out.push((feed, None, data.as_bytes().to_vec()));
                }
                Record::Http { url, data, .. } => {
                    out.push((conns[0].1, Some(url.clone()), data.as_bytes().to_vec()));
                }
                _ => {}
            }
        }
    }
    (instruments, out)
}

/// Mean time of a finished criterion benchmark, ns, from `target/criterion`.
pub fn mean_ns(group: &str, id: &str) -> Option<f64> {
    let base = std::env::var("CARGO_TARGET_DIR").unwrap_or_else(|_| "target".into());
    let path = Path::new(&base)
        .join("criterion")
        .join(group.replace('/', "_"))
        .join(id)
        .join("new/estimates.json");
    let text = std::fs::read_to_string(path).ok()?;
    let v: serde_json::Value = serde_json::from_str(&text).ok()?;
    v["mean"]["point_estimate"].as_f64()
}

/// Prints `group: baseline / ours = ratio` for each baseline.
pub fn print_ratios(group: &str, ours: &str, baselines: &[&str], items: u64) {
    let Some(o) = mean_ns(group, ours) else {
        return;
    };
    let mut line = format!("{group:<34} {ours} {:>9.1} ns/msg", o / items.max(1) as f64);
    for b in baselines {
        if let Some(t) = mean_ns(group, b) {
            line.push_str(&format!(
                "  {b} {:>9.1} ns/msg ({:.2}x)",
                t / items.max(1) as f64,
                t / o
            ));
        }
    }
    println!("{line}");
}

/// One step of applying the recordings' book messages as the book engine applied them.
#[derive(Clone, Copy)]
pub enum Op {
    /// A snapshot of instrument `.0` begins.
    Clear(usize),
    /// A level of the message.
    Level(usize, BookSide, Decimal, Decimal),
    /// The message ended, applied.
    End(usize),
}

/// Every applied book message of the recordings, as steps per instrument index; and the
/// instrument count.
pub fn ops() -> (usize, Vec<Op>) {
    let paths = pinfeed::sim::recording::bundled_recordings().unwrap();
    let recs: Vec<_> = paths.iter().map(|p| Recording::open(p).unwrap()).collect();
    let mut replay = Replay::prepare(&recs).unwrap();
    let n = replay.instruments.len();
    let mut ops = Vec::new();
    let mut current = 0;
    replay
        .run::<Vec<u8>>(None, |ev, engine, _| match ev {
            Event::BookBegin(b) => {
                current = b.instrument.index();
                if engine.disposition() == Disposition::ApplySnapshot {
                    ops.push(Op::Clear(current));
                }
            }
            Event::Level(l)
                if matches!(
                    engine.disposition(),
                    Disposition::Apply | Disposition::ApplySnapshot
                ) =>
            {
                ops.push(Op::Level(current, l.side, l.price, l.qty))
            }
            Event::BookEnd(_) if engine.last_message_applied() => ops.push(Op::End(current)),
            _ => {}
        })
        .unwrap();
    (n, ops)
}

//! Replays fuzz inputs through `pinfeed::fuzzing`'s targets on the stable toolchain: seeds
//! built at run time from the recordings (never copied into the project), and every file
//! under `fuzz/corpus/<target>/` and `fuzz/artifacts/<target>/` (corpora a campaign grew, and
//! crashes it found, once fixed). A panic here is a finding.

use std::path::Path;

use pinfeed::fuzzing::{TARGETS, feed_selector};
use pinfeed::sim::recording::{Record, Recording, bundled_recordings};
use pinfeed::venue::feed_from_url;

/// One masked client frame.
fn client_frame(fin: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mask = [0x37, 0xFA, 0x21, 0x3D];
    let mut out = vec![(if fin { 0x80 } else { 0 }) | opcode];
    match payload.len() {
        n if n < 126 => out.push(0x80 | n as u8),
        n if n <= 0xFFFF => {
            out.push(0x80 | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(0x80 | 127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    out.extend_from_slice(&mask);
    out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    out
}

/// Seeds per target, from the recordings.
pub fn seeds() -> Vec<(&'static str, Vec<u8>)> {
    let mut out = Vec::new();
    let paths = bundled_recordings().expect("recordings under the data directory");
    let mut sends = Vec::new();
    for path in &paths {
        let rec = Recording::open(path).unwrap();
        for r in &rec.records {
            match r {
                Record::Recv { conn, data, .. } => {
                    let feed =
                        feed_from_url(rec.connect_addr(conn).unwrap(), &rec.exchange).unwrap();
                    let mut input = vec![feed_selector(feed)];
                    input.extend_from_slice(data.as_bytes());
                    out.push(("book_ops", data.as_bytes()[..data.len().min(400)].to_vec()));
                    out.push(("venue_input", input));
                }
                Record::Http {
                    conn, url, data, ..
                } => {
                    let feed = rec
                        .records
                        .iter()
                        .find_map(|r| match r {
                            Record::Connect { addr, .. } => feed_from_url(addr, &rec.exchange),
                            _ => None,
                        })
                        .unwrap_or_else(|| panic!("{conn}: no feed"));
                    let mut input = vec![feed_selector(feed) | 0x80];
                    input.extend_from_slice(url.as_bytes());
                    input.push(b'\n');
                    input.extend_from_slice(data.as_bytes());
                    out.push(("venue_input", input));
                }
                Record::Send { data, .. } => sends.push(data.clone()),
                _ => {}
            }
        }
        // the reader: the file's first short lines, as JSON lines (long REST snapshot lines
        // are left out: a seed of megabytes runs the target a few hundred times a second)
        let text = zstd::decode_all(std::fs::File::open(path).unwrap()).unwrap();
        let head: Vec<u8> = text
            .split_inclusive(|b| *b == b'\n')
            .filter(|line| line.len() <= 4096)
            .take(20)
            .flatten()
            .copied()
            .collect();
        out.push(("recording", head));
    }
    // client frames: what clients send (subscribe texts, pings, closes), split and whole
    for (i, s) in sends.iter().enumerate() {
        let mut bytes = vec![(i % 7) as u8];
        bytes.extend(client_frame(true, 0x1, s.as_bytes()));
        bytes.extend(client_frame(true, 0x9, b"ping"));
        bytes.extend(client_frame(false, 0x1, &s.as_bytes()[..s.len() / 2]));
        bytes.extend(client_frame(true, 0x0, &s.as_bytes()[s.len() / 2..]));
        bytes.extend(client_frame(true, 0x8, &[0x03, 0xE8, b'b', b'y', b'e']));
        out.push(("client_frames", bytes));
    }
    // request heads and options, as tardis-machine clients send them
    let options = [
        r#"{"exchange":"bybit","symbols":["BTCUSDT"],"dataTypes":["trade","book_snapshot_25_100ms"]}"#,
        r#"[{"exchange":"binance-futures","symbols":["BTCUSDT"],"dataTypes":["quote","imbalance_5"],"withSeq":true},{"exchange":"deribit","dataTypes":["book_change"],"timerSnapshots":true}]"#,
        r#"{"exchange":"okex-swap","symbols":["BTC-USDT-SWAP"],"dataTypes":["book_snapshot_1000_1m","derivative_ticker"],"withIntegrityMessages":true}"#,
    ];
    for o in options {
        let query = format!("options={}", urlencode(o));
        out.push(("options_query", query.clone().into_bytes()));
        let head = format!(
            "GET /ws-stream-normalized?{query} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n\
             Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
             Sec-WebSocket-Version: 13\r\n\r\n"
        );
        out.push(("request_head", head.into_bytes()));
    }
    out
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn run(target: &str, data: &[u8]) {
    let f = TARGETS.iter().find(|t| t.0 == target).unwrap().1;
    f(data);
}

#[test]
fn every_seed_passes_every_target_invariant() {
    let seeds = seeds();
    for (target, _) in TARGETS {
        let n = seeds.iter().filter(|s| s.0 == target).count();
        assert!(n > 0, "no seeds for {target}");
    }
    for (target, data) in &seeds {
        run(target, data);
    }
    // each seed cut short and flipped: the targets' own invariants still hold
    for (target, data) in seeds.iter().step_by(7) {
        run(target, &data[..data.len() / 2]);
        let mut flipped = data.clone();
        for i in (1..flipped.len()).step_by(13) {
            flipped[i] ^= 0x5A;
        }
        run(target, &flipped);
    }
}

#[test]
fn committed_corpora_and_crashes_replay() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let mut replayed = 0;
    for dir in ["corpus", "artifacts"] {
        for (target, f) in TARGETS {
            let Ok(entries) = std::fs::read_dir(root.join(dir).join(target)) else {
                continue;
            };
            for entry in entries {
                let path = entry.unwrap().path();
                if path.is_file() {
                    f(&std::fs::read(&path).unwrap());
                    replayed += 1;
                }
            }
        }
    }
    eprintln!("replayed {replayed} committed fuzz inputs");
}

/// `scripts/fuzz.sh` writes the seeds to `fuzz/corpus/<target>/` (ignored by git: they are
/// derived from the third-party recordings) with this.
#[test]
#[ignore = "run by scripts/fuzz.sh"]
fn write_seed_corpora() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus");
    for (i, (target, data)) in seeds().iter().enumerate() {
        let dir = root.join(target);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(format!("seed-{i:05}")), data).unwrap();
    }
}

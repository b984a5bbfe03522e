//! Reader for the cryptofeed capture format: JSON Lines, plain or zstd-compressed, one record
//! per line with a type tag `t` (`header`, `http`, `connect`, `send`, `recv`).
//!
//! This is how users bring their own captures to `pinfeed replay` and `pinfeed simulate`.
//! Format reference: cryptofeed's capture tool (github.com/bmoscon/cryptofeed, branch v3), and
//! `recordings/README.md` of the data directory.
//!
//! # Examples
//! ```no_run
//! use pinfeed::sim::recording::{Record, Recording};
//! let rec = Recording::open("BYBIT.jsonl.zst".as_ref()).unwrap();
//! let frames = rec.records.iter().filter(|r| matches!(r, Record::Recv { .. })).count();
//! println!("{} {frames}", rec.exchange);
//! ```

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

/// One line of a recording.
#[derive(Clone, Debug, PartialEq)]
pub enum Record {
    /// A REST request (`url`) and its response body.
    Http {
        /// Connection name, e.g. `BINANCE.http.0`.
        conn: String,
        /// Recorder wall clock, unix seconds.
        ts: f64,
        /// Request URL.
        url: String,
        /// Response body.
        data: String,
    },
    /// A WebSocket connection opened to `addr`.
    Connect {
        /// Connection name, e.g. `BYBIT.ws.2`.
        conn: String,
        /// Recorder wall clock, unix seconds.
        ts: f64,
        /// The wss URL with its query string.
        addr: String,
    },
    /// A text frame the client sent.
    Send {
        /// Connection name.
        conn: String,
        /// Recorder wall clock, unix seconds.
        ts: f64,
        /// The frame.
        data: String,
    },
    /// A text frame the venue sent, exactly as received.
    Recv {
        /// Connection name.
        conn: String,
        /// Recorder wall clock at arrival, unix seconds.
        ts: f64,
        /// The frame.
        data: String,
    },
}

impl Record {
    /// Connection name of the record.
    pub fn conn(&self) -> &str {
        match self {
            Record::Http { conn, .. }
            | Record::Connect { conn, .. }
            | Record::Send { conn, .. }
            | Record::Recv { conn, .. } => conn,
        }
    }

    /// Recorder time, unix seconds.
    pub fn ts(&self) -> f64 {
        match self {
            Record::Http { ts, .. }
            | Record::Connect { ts, .. }
            | Record::Send { ts, .. }
            | Record::Recv { ts, .. } => *ts,
        }
    }
}

/// A whole recording, read into memory.
#[derive(Clone, Debug)]
pub struct Recording {
    /// Where it was read from.
    pub path: PathBuf,
    /// cryptofeed's exchange name from the header, e.g. `BINANCE_FUTURES`.
    pub exchange: String,
    /// Header `config`: channel to cryptofeed symbols subscribed.
    pub config: BTreeMap<String, Vec<String>>,
    /// Header `recorded`, unix seconds.
    pub recorded: f64,
    /// Every record after the header, in recorded order.
    pub records: Vec<Record>,
}

/// Why a recording could not be read. Names the file and, for content errors, the line.
#[derive(Debug, thiserror::Error)]
pub enum RecordingError {
    /// The file could not be opened or read (or its zstd stream is corrupt).
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A line is not a record of the format.
    #[error("{path}:{line}: {message}")]
    Malformed {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        message: String,
    },
}

impl Recording {
    /// Reads a recording; zstd is detected by its magic number, so `.jsonl` and `.jsonl.zst`
    /// both work.
    ///
    /// # Errors
    /// [`RecordingError::Io`] when the file cannot be read or decompressed,
    /// [`RecordingError::Malformed`] for a line that is not JSON, has no `t`, lacks a field
    /// its type needs, or a missing or misplaced header.
    pub fn open(path: &Path) -> Result<Recording, RecordingError> {
        let io = |source| RecordingError::Io {
            path: path.to_path_buf(),
            source,
        };
        let mut file = File::open(path).map_err(io)?;
        let mut magic = [0u8; 4];
        let n = file.read(&mut magic).map_err(io)?;
        drop(file);
        let file = File::open(path).map_err(io)?;
        let reader: Box<dyn Read> = if n == 4 && magic == [0x28, 0xb5, 0x2f, 0xfd] {
            Box::new(zstd::Decoder::new(file).map_err(io)?)
        } else {
            Box::new(file)
        };
        Recording::from_reader(path, BufReader::new(reader))
    }

    /// Reads a recording from any buffered reader; `path` only names it in errors.
    ///
    /// # Errors
    /// As [`Recording::open`].
    pub fn from_reader(path: &Path, reader: impl BufRead) -> Result<Recording, RecordingError> {
        let malformed = |line: usize, message: String| RecordingError::Malformed {
            path: path.to_path_buf(),
            line,
            message,
        };
        let mut rec = Recording {
            path: path.to_path_buf(),
            exchange: String::new(),
            config: BTreeMap::new(),
            recorded: 0.0,
            records: Vec::new(),
        };
        let mut seen_header = false;
        for (i, line) in reader.lines().enumerate() {
            let lineno = i + 1;
            let line = line.map_err(|source| RecordingError::Io {
                path: path.to_path_buf(),
                source,
            })?;
            if line.trim().is_empty() {
                continue;
            }
            let v: serde_json::Value = serde_json::from_str(&line)
                .map_err(|e| malformed(lineno, format!("not JSON: {e}")))?;
            let t = v
                .get("t")
                .and_then(|t| t.as_str())
                .ok_or_else(|| malformed(lineno, "no type tag `t`".into()))?;
            let s = |key: &str| -> Result<String, RecordingError> {
                v.get(key)
                    .and_then(|x| x.as_str())
                    .map(str::to_string)
                    .ok_or_else(|| malformed(lineno, format!("`{t}` record without `{key}`")))
            };
            let ts = || -> Result<f64, RecordingError> {
                v.get("ts")
                    .and_then(|x| x.as_f64())
                    .ok_or_else(|| malformed(lineno, format!("`{t}` record without `ts`")))
            };
            if t != "header" && !seen_header {
                return Err(malformed(lineno, "first record is not a header".into()));
            }
            match t {
                "header" => {
                    if seen_header {
                        return Err(malformed(lineno, "second header".into()));
                    }
                    seen_header = true;
                    rec.exchange = s("exchange")?;
                    rec.recorded = v.get("recorded").and_then(|x| x.as_f64()).unwrap_or(0.0);
                    if let Some(cfg) = v.get("config").and_then(|c| c.as_object()) {
                        for (k, syms) in cfg {
                            let list = syms
                                .as_array()
                                .map(|a| {
                                    a.iter()
                                        .filter_map(|x| x.as_str().map(str::to_string))
                                        .collect()
                                })
                                .unwrap_or_default();
                            rec.config.insert(k.clone(), list);
                        }
                    }
                }
                "http" => rec.records.push(Record::Http {
                    conn: s("conn")?,
                    ts: ts()?,
                    url: s("url")?,
                    data: s("data")?,
                }),
                "connect" => rec.records.push(Record::Connect {
                    conn: s("conn")?,
                    ts: ts()?,
                    addr: s("addr")?,
                }),
                "send" => rec.records.push(Record::Send {
                    conn: s("conn")?,
                    ts: ts()?,
                    data: s("data")?,
                }),
                "recv" => rec.records.push(Record::Recv {
                    conn: s("conn")?,
                    ts: ts()?,
                    data: s("data")?,
                }),
                other => return Err(malformed(lineno, format!("unknown record type `{other}`"))),
            }
        }
        if !seen_header {
            return Err(malformed(0, "empty recording (no header)".into()));
        }
        Ok(rec)
    }

    /// The WebSocket URL of connection `conn`, from its `connect` record.
    pub fn connect_addr(&self, conn: &str) -> Option<&str> {
        self.records.iter().find_map(|r| match r {
            Record::Connect { conn: c, addr, .. } if c == conn => Some(addr.as_str()),
            _ => None,
        })
    }

    /// Frames the client sent on `conn`, in order.
    pub fn sent_frames(&self, conn: &str) -> Vec<String> {
        self.records
            .iter()
            .filter_map(|r| match r {
                Record::Send { conn: c, data, .. } if c == conn => Some(data.clone()),
                _ => None,
            })
            .collect()
    }

    /// Names of the WebSocket connections, in order of their `connect` records.
    pub fn ws_connections(&self) -> Vec<String> {
        self.records
            .iter()
            .filter_map(|r| match r {
                Record::Connect { conn, .. } => Some(conn.clone()),
                _ => None,
            })
            .collect()
    }
}

/// Every recording (`*.jsonl.zst`) in the data directory's `recordings/`, sorted by name.
///
/// # Errors
/// The directory cannot be read.
pub fn bundled_recordings() -> std::io::Result<Vec<PathBuf>> {
    let mut paths = Vec::new();
    for entry in std::fs::read_dir(data_dir().join("recordings"))? {
        let path = entry?.path();
        if path.to_string_lossy().ends_with(".jsonl.zst") {
            paths.push(path);
        }
    }
    paths.sort();
    Ok(paths)
}

/// The data directory: `$PINFEED_DATA`, else `../shared/data` beside the crate.
pub fn data_dir() -> PathBuf {
    match std::env::var_os("PINFEED_DATA") {
        Some(d) => PathBuf::from(d),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_every_recording() {
        let dir = data_dir().join("recordings");
        let mut n = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if !path.to_string_lossy().ends_with(".jsonl.zst") {
                continue;
            }
            let rec = Recording::open(&path).unwrap();
            assert!(!rec.exchange.is_empty());
            assert!(!rec.ws_connections().is_empty(), "{}", path.display());
            assert!(rec.records.iter().any(|r| matches!(r, Record::Recv { .. })));
            n += 1;
        }
        assert_eq!(n, 5);
    }

    #[test]
    fn malformed_lines_name_the_line() {
        let text = "{\"t\":\"header\",\"exchange\":\"X\",\"config\":{}}\n{\"t\":\"recv\",\"conn\":\"a\"}\n";
        let err = Recording::from_reader(Path::new("x.jsonl"), text.as_bytes()).unwrap_err();
        assert!(err.to_string().starts_with("x.jsonl:2:"), "{err}");
        let err = Recording::from_reader(Path::new("y"), "not json\n".as_bytes()).unwrap_err();
        assert!(err.to_string().starts_with("y:1:"), "{err}");
        let err = Recording::from_reader(Path::new("z"), "".as_bytes()).unwrap_err();
        assert!(matches!(err, RecordingError::Malformed { .. }));
    }
}

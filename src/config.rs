//! `pinfeed run` configuration: a TOML file, validated into an immutable [`Config`].
//!
//! Every field has a unit and a default; an unknown field or a bad value is a [`ConfigError`]
//! naming the field. With no file, [`Config::default`] connects to the live public feeds for a
//! default set of symbols and serves clients on `ws://127.0.0.1:9100`.
//!
//! ```toml
//! [server]
//! listen = "127.0.0.1:9100"         # client WebSocket address
//! max_clients = 4096                # connections beyond this are refused
//! send_buffer_soft_bytes = 1048576  # over this, book/L1 messages for a client are conflated
//! send_buffer_hard_bytes = 5242880  # over this, the client is closed with 1008
//! max_subscriptions_per_client = 4096    # a request over any of these limits gets an
//! max_snapshot_series_per_client = 256   # `error` message and close 1008
//! max_snapshot_levels_per_client = 32768 # (sum of series depths)
//! max_snapshot_series = 4096             # distinct series, all clients
//! max_snapshot_levels = 262144           # sum of their depths, all clients
//! slot_depth = 50                        # levels per side of the book slots
//! max_pending_handshakes = 1024          # accepted, upgrade not complete (oldest evicted)
//! max_pending_handshakes_per_ip = 1024   # the same per source address (its oldest evicted)
//! handshake_timeout_ms = 5000            # accept to complete request head
//!
//! [resync]
//! backoff_initial_ms = 100    # a book's second resync waits this long, doubling per retry
//! backoff_max_ms = 30000      # up to this (plus up to 50 % jitter)
//! reset_after_ms = 60000      # synced this long: the next resync goes out at once
//! budget_per_connection = 50  # resyncs per window before the connection is rebuilt
//! budget_window_ms = 60000
//! resubscribe_timeout_ms = 15000 # a resubscribe that brought no snapshot: reconnect
//! max_levels_per_side = 20000 # a book side past this resyncs (so does a crossed book)
//!
//! [ingest]
//! connect_timeout_ms = 10000     # TCP connect, TLS and WebSocket handshakes, each
//! write_timeout_ms = 5000        # subscribe frames, keep-alives
//! max_message_bytes = 16777216   # a larger venue message ends the connection
//! rest_timeout_ms = 10000        # one REST snapshot request, connect to last byte
//!
//! [queues]
//! ingest_slots = 8192   # events, per ingest connection (to the book thread)
//! rest_slots = 16384    # events, REST snapshots (to the book thread)
//! fanout_slots = 131072 # messages, book thread to each fan-out shard
//! lane_slots = 8192     # messages, trade lane per connection and shard
//!
//! [replay]
//! # dir = "captures"            # serve GET /replay-normalized over these captures (none: off)
//! max_streams = 4               # replay answers being built or written at once
//! max_buffer_bytes = 536870912  # largest replay answer
//! write_timeout_ms = 30000      # one write to a replay client
//!
//! [memory]
//! trim_interval_ms = 10000 # return the allocator's free pages to the kernel this often; 0: never
//!
//! [cpu]
//! ingest = [0]      # cores for ingest threads, assigned round-robin per connection
//! book = 1          # core of the book thread
//! fanout = [1]      # cores of the fan-out shards, one shard each
//! pin = true        # false: no pinning (shared hosts, CI)
//! wait = "backoff"  # "spin" (isolated cores) or "backoff" (spin, yield, park)
//!
//! [[venue]]
//! feed = "binance-futures"    # one of venue::Feed::name()
//! ws_url = "wss://fstream.binance.com"      # default: the venue's public endpoint
//! rest_url = "https://fapi.binance.com"     # default: the venue's public endpoint
//! ca_file = "sim-ca.pem"      # optional PEM file of extra CA certificates to trust
//! symbols = ["BTCUSDT", "ETHUSDT"]
//! channels = ["trades", "book", "book_ticker", "derivative_ticker", "liquidations"]
//! silence_timeout_ms = 10000  # no frame for this long: reconnect
//! ```

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::model::Exchange;
use crate::venue::{Channels, Feed, Subscription};

/// A configuration error, naming the field.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// TOML syntax, an unknown field or a value of the wrong type.
    #[error("{path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parser's message (it names the field and line).
        message: String,
    },
    /// A value that parses but is not allowed.
    #[error("config field `{field}`: {message}")]
    Invalid {
        /// Dotted path of the field, e.g. `venue[2].symbols`.
        field: String,
        /// What is wrong.
        message: String,
    },
}

/// Wait strategy of the hot threads when their input is empty.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum WaitMode {
    /// Busy-spin: lowest latency, burns the core. For isolated cores.
    Spin,
    /// Spin briefly, then yield, then park with a short timeout. Behaves on shared hosts.
    #[default]
    Backoff,
}

/// `[server]`: the client-facing WebSocket server.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Listen address. Default `127.0.0.1:9100`.
    pub listen: SocketAddr,
    /// Maximum client connections; more are refused. Default 4096.
    pub max_clients: usize,
    /// Per-client send buffer, bytes, above which book and L1 messages are conflated.
    /// Default 1 MiB.
    pub send_buffer_soft_bytes: usize,
    /// Per-client send buffer, bytes, above which the client is closed with 1008.
    /// Default 5 MiB (tardis-machine's limit).
    pub send_buffer_hard_bytes: usize,
    /// Subscriptions (instrument x data type) one connection may ask for; a request over it
    /// gets an `error` message and close 1008. Default 4096.
    pub max_subscriptions_per_client: usize,
    /// Computed series (`book_snapshot_*`, `quote*`, `trade_bar_*`, per instrument) one
    /// connection may ask for; over it: `error`, close 1008. Default 256.
    pub max_snapshot_series_per_client: usize,
    /// Sum of the depths (levels per side) of the snapshot series one connection asks for (a
    /// grouped series counts `slot_depth`, the levels it reads); over it: `error`, close 1008.
    /// Default 32768.
    pub max_snapshot_levels_per_client: usize,
    /// Distinct computed series (snapshot and trade bar) over all connections (shared by
    /// name); a request that would pass it: `error`, close 1008. Default 4096.
    pub max_snapshot_series: usize,
    /// Sum of the depths of every distinct snapshot series over all connections: the memory
    /// bound of snapshot state (about 64 bytes per level per side). Default 262144 (32 MiB).
    pub max_snapshot_levels: usize,
    /// Connections accepted but not yet through their WebSocket upgrade, at once. When full,
    /// the oldest pending one is closed to make room (counted), so stalled handshakes cannot
    /// lock real clients out. Default 1024.
    pub max_pending_handshakes: usize,
    /// Pending handshakes from one source IP address; past it, that address's oldest pending
    /// one is closed to make room (counted), so one address cannot take the whole of
    /// `max_pending_handshakes` when set lower. Default 1024 (a burst of 1000 loopback load
    /// clients, all from one address, connects at once; public-facing hosts want less).
    pub max_pending_handshakes_per_ip: usize,
    /// Time from accept to a complete request head; a connection still short of it is closed
    /// and counted. Default 5000 ms.
    pub handshake_timeout_ms: u64,
    /// Levels per side the book thread's latest-state slots hold (the deepest snapshot
    /// series or `imbalance_N` served; deeper ones get an `error` message). The book thread
    /// copies only the depth subscribers need. 1 to 1000; default 50 (about 2.4 KiB per
    /// instrument).
    pub slot_depth: usize,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 9100)),
            max_clients: 4096,
            send_buffer_soft_bytes: 1 << 20,
            send_buffer_hard_bytes: 5 << 20,
            max_subscriptions_per_client: 4096,
            max_snapshot_series_per_client: 256,
            max_snapshot_levels_per_client: 32_768,
            max_snapshot_series: 4096,
            max_snapshot_levels: 262_144,
            max_pending_handshakes: 1024,
            max_pending_handshakes_per_ip: 1024,
            handshake_timeout_ms: 5000,
            slot_depth: crate::pipeline::slot::DEFAULT_SLOT_DEPTH,
        }
    }
}

/// `[cpu]`: thread placement and waiting.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct CpuConfig {
    /// Cores for ingest threads, round-robin per connection. Default `[0]`.
    pub ingest: Vec<usize>,
    /// Core of the book thread. Default 1.
    pub book: usize,
    /// Cores of the fan-out shards, one shard per listed core (a bare integer is one shard).
    /// Default `[1]`: one shard.
    #[serde(deserialize_with = "one_or_many")]
    pub fanout: Vec<usize>,
    /// Pin threads to their cores. Default true.
    pub pin: bool,
    /// Wait strategy. Default `backoff`.
    pub wait: WaitMode,
}

impl Default for CpuConfig {
    fn default() -> Self {
        CpuConfig {
            ingest: vec![0],
            book: 1,
            fanout: vec![1],
            pin: true,
            wait: WaitMode::Backoff,
        }
    }
}

/// A core list written as a list or, as before shards existed, one integer.
fn one_or_many<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<usize>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(usize),
        Many(Vec<usize>),
    }
    let list = match OneOrMany::deserialize(d)? {
        OneOrMany::One(n) => vec![n],
        OneOrMany::Many(v) => v,
    };
    if list.is_empty() {
        return Err(serde::de::Error::custom(
            "cpu.fanout needs at least one core",
        ));
    }
    if list.len() > crate::pipeline::slot::MAX_SHARDS {
        return Err(serde::de::Error::custom(format!(
            "cpu.fanout lists {} cores, at most {} shards",
            list.len(),
            crate::pipeline::slot::MAX_SHARDS
        )));
    }
    Ok(list)
}

/// One `[[venue]]`: one upstream connection.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct VenueConfig {
    /// Feed name: `binance-futures`, `binance-delivery`, `binance`, `bybit-linear`,
    /// `bybit-inverse`, `bybit-spot`, `okx`, `deribit`.
    pub feed: String,
    /// WebSocket base URL. Default: the venue's public endpoint.
    #[serde(default)]
    pub ws_url: Option<String>,
    /// REST base URL. Default: the venue's public endpoint.
    #[serde(default)]
    pub rest_url: Option<String>,
    /// PEM file of extra CA certificates to trust (besides the bundled web PKI roots).
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Venue-native symbols, e.g. `BTCUSDT`, `BTC-USDT-SWAP`, `BTC-PERPETUAL`.
    pub symbols: Vec<String>,
    /// Data wanted: `trades`, `book`, `book_ticker`, `derivative_ticker`, `liquidations`.
    /// Default: all that the feed serves.
    #[serde(default)]
    pub channels: Option<Vec<String>>,
    /// No frame for this long, ms: the connection is deemed dead and reconnected.
    /// Default 10,000 (tardis-machine's `timeoutIntervalMS`).
    #[serde(default = "default_silence_ms")]
    pub silence_timeout_ms: u64,
}

fn default_silence_ms() -> u64 {
    10_000
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    server: ServerConfig,
    #[serde(default)]
    resync: ResyncConfig,
    #[serde(default)]
    metrics: MetricsConfig,
    #[serde(default)]
    cpu: CpuConfig,
    #[serde(default)]
    ingest: IngestConfig,
    #[serde(default)]
    queues: QueueConfig,
    #[serde(default)]
    memory: MemoryConfig,
    #[serde(default)]
    replay: ReplayConfig,
    #[serde(default)]
    venue: Vec<VenueConfig>,
}

/// A validated venue connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Connection {
    /// The feed.
    pub feed: Feed,
    /// WebSocket base URL.
    pub ws_url: String,
    /// REST base URL.
    pub rest_url: String,
    /// Extra CA file.
    pub ca_file: Option<PathBuf>,
    /// What to subscribe.
    pub subscriptions: Vec<Subscription>,
    /// Silence watchdog, ms.
    pub silence_timeout_ms: u64,
}

/// The validated configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// Client server.
    pub server: ServerConfig,
    /// Threads.
    pub cpu: CpuConfig,
    /// Resync pacing and book sanity limits.
    pub resync: ResyncConfig,
    /// The `/metrics` server's limits.
    pub metrics: MetricsConfig,
    /// Upstream connection timeouts and limits.
    pub ingest: IngestConfig,
    /// Queue sizes.
    pub queues: QueueConfig,
    /// Allocator housekeeping.
    pub memory: MemoryConfig,
    /// The replay API.
    pub replay: ReplayConfig,
    /// Upstream connections.
    pub connections: Vec<Connection>,
}

/// `[ingest]`: timeouts and limits of every upstream connection (WebSocket and REST).
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct IngestConfig {
    /// TCP connect, TLS and WebSocket handshakes, each, ms. Default 10000.
    pub connect_timeout_ms: u64,
    /// Write timeout (subscribe frames, keep-alives), ms. Default 5000.
    pub write_timeout_ms: u64,
    /// Largest venue WebSocket message (and frame), bytes; a larger one ends the connection
    /// (counted as a connection end, then reconnect and resync). Default 16 MiB (OKX's
    /// 400-level snapshots are 25 KB).
    pub max_message_bytes: usize,
    /// One REST snapshot request, connect to last byte, ms; a timeout is retried with
    /// backoff. Default 10000.
    pub rest_timeout_ms: u64,
}

impl Default for IngestConfig {
    fn default() -> Self {
        let d = crate::ingest::ws::ConnectOptions::default();
        IngestConfig {
            connect_timeout_ms: d.connect_timeout.as_millis() as u64,
            write_timeout_ms: d.write_timeout.as_millis() as u64,
            max_message_bytes: d.max_message_bytes,
            rest_timeout_ms: 10_000,
        }
    }
}

impl IngestConfig {
    /// As the WebSocket connection's options (the read timeout is the ingest loop's own).
    pub fn connect_options(&self) -> crate::ingest::ws::ConnectOptions {
        crate::ingest::ws::ConnectOptions {
            connect_timeout: std::time::Duration::from_millis(self.connect_timeout_ms),
            write_timeout: std::time::Duration::from_millis(self.write_timeout_ms),
            max_message_bytes: self.max_message_bytes,
            ..crate::ingest::ws::ConnectOptions::default()
        }
    }

    /// The REST request timeout.
    pub fn rest_timeout(&self) -> std::time::Duration {
        std::time::Duration::from_millis(self.rest_timeout_ms)
    }
}

/// `[queues]`: slots of the lock-free rings between the threads. A full ring drops and counts
/// (`pinfeed_queue_dropped_total{queue}`), never blocks: a dropped book message marks that
/// book stale and it is republished whole from its latest state; a dropped trade is lost to
/// the shard's clients (counted per lane; clients cannot see it, so size lanes for the
/// longest stall of a shard).
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct QueueConfig {
    /// Each ingest connection's ring to the book thread, events. Default 8192 (1.2 MiB at
    /// 152-byte events; at 200k frames/s over 8 connections `pinfeed bench` saw at most
    /// 1,176 in use).
    pub ingest_slots: usize,
    /// The REST snapshots' ring to the book thread, events. Default 16384.
    pub rest_slots: usize,
    /// The book thread's ring to each fan-out shard, messages (at least 4096: a
    /// `book_change` snapshot goes on it whole). Default 131072: 19 MiB at 152-byte
    /// messages, ~0.5 s of `pinfeed bench --scenario all` at 100k frames/s (255k ring
    /// messages/s); 32768 (0.13 s) overflowed a few times an hour in `scripts/soak.sh`
    /// whenever the shard's thread lost its core for longer on a shared host.
    pub fanout_slots: usize,
    /// Each trade lane (one per connection and shard: trades, liquidations, tickers),
    /// messages. Default 8192 (1.2 MiB): about 2 s of one synthetic feed's trades and
    /// tickers at 100k frames/s over 8 feeds; drained first and during writes.
    pub lane_slots: usize,
}

impl Default for QueueConfig {
    fn default() -> Self {
        QueueConfig {
            ingest_slots: 1 << 13,
            rest_slots: 1 << 14,
            fanout_slots: 1 << 17,
            lane_slots: 1 << 13,
        }
    }
}

/// `[replay]`: tardis-machine's `/replay-normalized` over captures ([`crate::replay_api`]).
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct ReplayConfig {
    /// Directory of capture files (`*.jsonl`, `*.jsonl.zst`) served by `GET
    /// /replay-normalized` on the HTTP listener; `None`: not served. `pinfeed run
    /// --replay-dir` sets it. Default none.
    pub dir: Option<std::path::PathBuf>,
    /// Replay answers being built or written at once; one more gets 503. Default 4.
    pub max_streams: usize,
    /// Largest replay answer, bytes (it is built whole before it is sent); a range over it
    /// gets 500. Default 512 MiB.
    pub max_buffer_bytes: usize,
    /// One write to a replay client, ms; a client that takes nothing for this long is
    /// dropped. Default 30000.
    pub write_timeout_ms: u64,
}

impl Default for ReplayConfig {
    fn default() -> Self {
        ReplayConfig {
            dir: None,
            max_streams: 4,
            max_buffer_bytes: 512 << 20,
            write_timeout_ms: 30_000,
        }
    }
}

impl ReplayConfig {
    /// As the replay API's limits.
    pub fn limits(&self) -> crate::replay_api::ReplayLimits {
        crate::replay_api::ReplayLimits {
            max_streams: self.max_streams,
            max_buffer_bytes: self.max_buffer_bytes,
            write_timeout: std::time::Duration::from_millis(self.write_timeout_ms),
        }
    }
}

/// `[memory]`: allocator housekeeping.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct MemoryConfig {
    /// How often a cold thread hands the allocator's free pages back to the kernel
    /// ([`crate::limits::trim_allocator`]: glibc's `malloc_trim(0)`), ms; 0: never. Without it,
    /// pages freed inside glibc's arenas (what clients that left used) stay resident. Default
    /// 10000.
    pub trim_interval_ms: u64,
}

impl Default for MemoryConfig {
    fn default() -> Self {
        MemoryConfig {
            trim_interval_ms: 10_000,
        }
    }
}

/// `[metrics]`: limits of the `/metrics` HTTP server (its address is `--metrics-listen`).
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    /// Connections open at once; when full the oldest one without a complete request is
    /// closed to make room, and with none such a new one gets 503. Default 64.
    pub max_connections: usize,
    /// Longest request head, bytes; longer gets 431. Default 8192.
    pub max_request_bytes: usize,
    /// Time a connection has to send its request and take the answer. Default 5000 ms.
    pub request_timeout_ms: u64,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        let d = crate::metrics::HttpLimits::default();
        MetricsConfig {
            max_connections: d.max_connections,
            max_request_bytes: d.max_request_bytes,
            request_timeout_ms: d.request_timeout.as_millis() as u64,
        }
    }
}

impl MetricsConfig {
    /// As the HTTP server's limits.
    pub fn limits(&self) -> crate::metrics::HttpLimits {
        crate::metrics::HttpLimits {
            max_connections: self.max_connections,
            max_request_bytes: self.max_request_bytes,
            request_timeout: std::time::Duration::from_millis(self.request_timeout_ms),
        }
    }
}

/// `[resync]`: how often a book may ask for a fresh snapshot.
///
/// The first resync of an instrument goes out at once; each further one within
/// `reset_after_ms` of the previous waits `backoff_initial_ms`, doubling up to
/// `backoff_max_ms`, with up to 50 % random jitter added (so books that broke together do not
/// ask together). A connection whose books ask more than `budget_per_connection` times within
/// `budget_window_ms` is rebuilt (reconnect: fresh subscriptions and snapshots for all).
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct ResyncConfig {
    /// Backoff after the first resync, ms. Default 100.
    pub backoff_initial_ms: u64,
    /// Longest backoff, ms. Default 30000.
    pub backoff_max_ms: u64,
    /// A book synced this long since its last resync starts over with no backoff, ms.
    /// Default 60000.
    pub reset_after_ms: u64,
    /// Resyncs one connection's books may send per window before it is rebuilt. Default 50.
    pub budget_per_connection: u32,
    /// The budget's window, ms. Default 60000.
    pub budget_window_ms: u64,
    /// A WebSocket book still unsynced this long after its resubscribe went out gets its
    /// connection rebuilt, ms (the wait for our own backoff does not count). Default 15000.
    pub resubscribe_timeout_ms: u64,
    /// Levels one side of a book may hold; a delta that would pass it resyncs the book
    /// (reason `too_many_levels`). Default 20000.
    pub max_levels_per_side: usize,
}

impl Default for ResyncConfig {
    fn default() -> Self {
        ResyncConfig {
            backoff_initial_ms: 100,
            backoff_max_ms: 30_000,
            reset_after_ms: 60_000,
            budget_per_connection: 50,
            budget_window_ms: 60_000,
            resubscribe_timeout_ms: 15_000,
            max_levels_per_side: crate::book::DEFAULT_MAX_LEVELS_PER_SIDE,
        }
    }
}

impl Default for Config {
    /// Live public feeds: BTC and ETH perpetuals on every derivatives venue, BTC spot on
    /// `binance`, `bybit-spot` and `okex`, Deribit `BTC-PERPETUAL` and `ETH-PERPETUAL`.
    fn default() -> Self {
        let venues = [
            (Feed::BinanceFutures, &["BTCUSDT", "ETHUSDT"][..]),
            (Feed::BinanceDelivery, &["BTCUSD_PERP", "ETHUSD_PERP"][..]),
            (Feed::BinanceSpot, &["BTCUSDT"][..]),
            (Feed::BybitLinear, &["BTCUSDT", "ETHUSDT"][..]),
            (Feed::BybitInverse, &["BTCUSD", "ETHUSD"][..]),
            (Feed::BybitSpot, &["BTCUSDT"][..]),
            (
                Feed::Okx,
                &["BTC-USDT-SWAP", "ETH-USDT-SWAP", "BTC-USDT"][..],
            ),
            (Feed::Deribit, &["BTC-PERPETUAL", "ETH-PERPETUAL"][..]),
        ];
        let raw = RawConfig {
            server: ServerConfig::default(),
            resync: ResyncConfig::default(),
            metrics: MetricsConfig::default(),
            cpu: CpuConfig::default(),
            ingest: IngestConfig::default(),
            queues: QueueConfig::default(),
            memory: MemoryConfig::default(),
            replay: ReplayConfig::default(),
            venue: venues
                .iter()
                .map(|(feed, symbols)| VenueConfig {
                    feed: feed.name().to_string(),
                    ws_url: None,
                    rest_url: None,
                    ca_file: None,
                    symbols: symbols.iter().map(|s| s.to_string()).collect(),
                    channels: None,
                    silence_timeout_ms: default_silence_ms(),
                })
                .collect(),
        };
        Config::validate(raw).expect("the built-in default is valid")
    }
}

const CHANNEL_NAMES: [(&str, Channels); 5] = [
    ("trades", Channels::TRADES),
    ("book", Channels::BOOK),
    ("book_ticker", Channels::BOOK_TICKER),
    ("derivative_ticker", Channels::DERIVATIVE_TICKER),
    ("liquidations", Channels::LIQUIDATIONS),
];

/// The exchange id a feed serves for `symbol` (OKX by instrument shape).
pub fn exchange_of(feed: Feed, symbol: &str) -> Option<Exchange> {
    match feed {
        Feed::BinanceFutures => Some(Exchange::BinanceFutures),
        Feed::BinanceDelivery => Some(Exchange::BinanceDelivery),
        Feed::BinanceSpot => Some(Exchange::Binance),
        Feed::BybitLinear | Feed::BybitInverse => Some(Exchange::Bybit),
        Feed::BybitSpot => Some(Exchange::BybitSpot),
        Feed::Okx => crate::venue::okx::exchange_of(symbol),
        Feed::Deribit => Some(Exchange::Deribit),
    }
}

impl Config {
    /// Reads and validates a TOML file.
    ///
    /// # Errors
    /// [`ConfigError`] naming the file, field or line.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Config::parse(&text).map_err(|e| match e {
            ConfigError::Parse { message, .. } => ConfigError::Parse {
                path: path.to_path_buf(),
                message,
            },
            other => other,
        })
    }

    /// Parses and validates TOML text.
    ///
    /// # Errors
    /// [`ConfigError::Parse`] or [`ConfigError::Invalid`].
    pub fn parse(text: &str) -> Result<Config, ConfigError> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: PathBuf::from("<config>"),
            message: e.to_string(),
        })?;
        Config::validate(raw)
    }

    fn validate(raw: RawConfig) -> Result<Config, ConfigError> {
        let invalid = |field: String, message: String| ConfigError::Invalid { field, message };
        let s = &raw.server;
        if s.max_clients == 0 {
            return Err(invalid(
                "server.max_clients".into(),
                "must be at least 1".into(),
            ));
        }
        if s.send_buffer_soft_bytes == 0 || s.send_buffer_hard_bytes < s.send_buffer_soft_bytes {
            return Err(invalid(
                "server.send_buffer_hard_bytes".into(),
                format!(
                    "must be at least send_buffer_soft_bytes ({}) and both non-zero",
                    s.send_buffer_soft_bytes
                ),
            ));
        }
        if !(1..=crate::fanout::options::MAX_DEPTH_LEVELS).contains(&s.slot_depth) {
            return Err(invalid(
                "server.slot_depth".into(),
                format!(
                    "must be 1 to {} levels",
                    crate::fanout::options::MAX_DEPTH_LEVELS
                ),
            ));
        }
        let m = &raw.metrics;
        if m.max_connections == 0 || m.max_request_bytes < 64 || m.request_timeout_ms == 0 {
            return Err(invalid(
                "metrics".into(),
                "max_connections and request_timeout_ms must be positive, max_request_bytes \
                 at least 64"
                    .into(),
            ));
        }
        let r = &raw.replay;
        if r.max_streams == 0 || r.max_buffer_bytes < 1024 || r.write_timeout_ms == 0 {
            return Err(invalid(
                "replay".into(),
                "max_streams and write_timeout_ms must be positive, max_buffer_bytes at least \
                 1024"
                    .into(),
            ));
        }
        let g = &raw.ingest;
        if g.connect_timeout_ms == 0
            || g.write_timeout_ms == 0
            || g.rest_timeout_ms == 0
            || g.max_message_bytes < 1024
        {
            return Err(invalid(
                "ingest".into(),
                "timeouts must be positive, max_message_bytes at least 1024".into(),
            ));
        }
        let q = &raw.queues;
        // a whole book goes on the fan-out ring at once (a snapshot for `book_change`)
        for (name, slots, min) in [
            ("ingest_slots", q.ingest_slots, 16),
            ("rest_slots", q.rest_slots, 16),
            ("fanout_slots", q.fanout_slots, 4096),
            ("lane_slots", q.lane_slots, 16),
        ] {
            if !(min..=1 << 24).contains(&slots) {
                return Err(invalid(
                    format!("queues.{name}"),
                    format!("must be {min} to 16777216 slots"),
                ));
            }
        }
        if raw.cpu.ingest.is_empty() {
            return Err(invalid(
                "cpu.ingest".into(),
                "needs at least one core".into(),
            ));
        }
        if raw.venue.is_empty() {
            return Err(invalid("venue".into(), "no [[venue]] configured".into()));
        }
        let mut connections = Vec::new();
        for (i, v) in raw.venue.iter().enumerate() {
            let feed = Feed::ALL
                .into_iter()
                .find(|f| f.name() == v.feed)
                .ok_or_else(|| {
                    invalid(
                        format!("venue[{i}].feed"),
                        format!(
                            "unknown feed `{}` (one of: {})",
                            v.feed,
                            Feed::ALL.map(|f| f.name()).join(", ")
                        ),
                    )
                })?;
            if v.symbols.is_empty() {
                return Err(invalid(format!("venue[{i}].symbols"), "is empty".into()));
            }
            let mut channels = Channels::default();
            match &v.channels {
                None => channels = Channels::ALL,
                Some(list) => {
                    for name in list {
                        let c = CHANNEL_NAMES
                            .iter()
                            .find(|(n, _)| n == name)
                            .ok_or_else(|| {
                                invalid(
                                    format!("venue[{i}].channels"),
                                    format!(
                                        "unknown channel `{name}` (one of: {})",
                                        CHANNEL_NAMES.map(|c| c.0).join(", ")
                                    ),
                                )
                            })?;
                        channels |= c.1;
                    }
                }
            }
            if v.silence_timeout_ms == 0 {
                return Err(invalid(
                    format!("venue[{i}].silence_timeout_ms"),
                    "must be positive".into(),
                ));
            }
            let mut subscriptions = Vec::new();
            for symbol in &v.symbols {
                let upper = symbol.to_ascii_uppercase();
                let exchange = exchange_of(feed, &upper).ok_or_else(|| {
                    invalid(
                        format!("venue[{i}].symbols"),
                        format!("`{symbol}` is not an instrument {} serves", feed.name()),
                    )
                })?;
                subscriptions.push(Subscription {
                    exchange,
                    symbol: upper,
                    channels,
                });
            }
            let (ws, rest) = feed.default_endpoints();
            for (name, url) in [("ws_url", &v.ws_url), ("rest_url", &v.rest_url)] {
                if let Some(u) = url {
                    let ok = match name {
                        "ws_url" => u.starts_with("ws://") || u.starts_with("wss://"),
                        _ => u.starts_with("http://") || u.starts_with("https://"),
                    };
                    if !ok {
                        return Err(invalid(
                            format!("venue[{i}].{name}"),
                            format!("`{u}` has the wrong scheme"),
                        ));
                    }
                }
            }
            if let Some(ca) = &v.ca_file {
                if !ca.is_file() {
                    return Err(invalid(
                        format!("venue[{i}].ca_file"),
                        format!("{} is not a readable file", ca.display()),
                    ));
                }
            }
            connections.push(Connection {
                feed,
                ws_url: v.ws_url.clone().unwrap_or_else(|| ws.to_string()),
                rest_url: v.rest_url.clone().unwrap_or_else(|| rest.to_string()),
                ca_file: v.ca_file.clone(),
                subscriptions,
                silence_timeout_ms: v.silence_timeout_ms,
            });
        }
        Ok(Config {
            server: raw.server,
            cpu: raw.cpu,
            resync: raw.resync,
            metrics: raw.metrics,
            ingest: raw.ingest,
            queues: raw.queues,
            memory: raw.memory,
            replay: raw.replay,
            connections,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_covers_every_feed() {
        let c = Config::default();
        assert_eq!(c.connections.len(), Feed::ALL.len());
        assert_eq!(c.server.listen.to_string(), "127.0.0.1:9100");
        let okx = c.connections.iter().find(|c| c.feed == Feed::Okx).unwrap();
        let ids: Vec<_> = okx.subscriptions.iter().map(|s| s.exchange).collect();
        assert_eq!(
            ids,
            [Exchange::OkexSwap, Exchange::OkexSwap, Exchange::Okex]
        );
    }

    #[test]
    fn parses_a_full_file() {
        let c = Config::parse(
            r#"
            [server]
            listen = "127.0.0.1:9200"
            [cpu]
            ingest = [0, 1]
            pin = false
            wait = "spin"
            [[venue]]
            feed = "bybit-spot"
            ws_url = "ws://127.0.0.1:9000/v5/public/spot"
            symbols = ["btcusdt"]
            channels = ["trades", "book"]
            "#,
        )
        .unwrap();
        assert_eq!(c.cpu.wait, WaitMode::Spin);
        assert!(!c.cpu.pin);
        let v = &c.connections[0];
        assert_eq!(v.subscriptions[0].symbol, "BTCUSDT");
        assert_eq!(v.subscriptions[0].exchange, Exchange::BybitSpot);
        assert_eq!(
            v.subscriptions[0].channels,
            Channels::TRADES | Channels::BOOK
        );
        assert_eq!(v.rest_url, "https://api.bybit.com");
    }

    #[test]
    fn metrics_limits_and_fanout_cores_parse() {
        const VENUE: &str = "[[venue]]\nfeed = \"okx\"\nsymbols = [\"BTC-USDT\"]\n";
        let parse = |text: &str| Config::parse(&format!("{text}{VENUE}"));
        let c = parse(
            "[metrics]\nmax_connections = 8\nrequest_timeout_ms = 250\n[cpu]\nfanout = [0, 1]\n[server]\nslot_depth = 10\n",
        )
        .unwrap();
        let l = c.metrics.limits();
        assert_eq!((l.max_connections, l.max_request_bytes), (8, 8192));
        assert_eq!(l.request_timeout, std::time::Duration::from_millis(250));
        assert_eq!(
            (c.cpu.fanout.clone(), c.server.slot_depth),
            (vec![0, 1], 10)
        );
        // one shard written as before shards existed
        assert_eq!(parse("[cpu]\nfanout = 1\n").unwrap().cpu.fanout, [1]);
        for (text, field) in [
            ("[metrics]\nmax_connections = 0\n", "metrics"),
            ("[server]\nslot_depth = 0\n", "server.slot_depth"),
            ("[server]\nslot_depth = 1001\n", "server.slot_depth"),
            ("[cpu]\nfanout = []\n", "cpu.fanout"),
        ] {
            let e = parse(text).unwrap_err().to_string();
            assert!(e.contains(field), "{text}: {e}");
        }
    }

    #[test]
    fn ingest_limits_and_queue_sizes_parse() {
        const VENUE: &str = "[[venue]]\nfeed = \"okx\"\nsymbols = [\"BTC-USDT\"]\n";
        let parse = |text: &str| Config::parse(&format!("{text}{VENUE}"));
        let d = parse("").unwrap();
        assert_eq!(d.ingest, IngestConfig::default());
        assert_eq!(d.ingest.max_message_bytes, 16 << 20);
        assert_eq!(d.queues, QueueConfig::default());
        let c = parse(
            "[ingest]\nmax_message_bytes = 65536\nrest_timeout_ms = 2500\n\
             [queues]\nlane_slots = 4096\nfanout_slots = 4096\n",
        )
        .unwrap();
        let o = c.ingest.connect_options();
        assert_eq!(o.max_message_bytes, 65536);
        assert_eq!(o.connect_timeout, std::time::Duration::from_secs(10));
        assert_eq!(
            c.ingest.rest_timeout(),
            std::time::Duration::from_millis(2500)
        );
        assert_eq!((c.queues.lane_slots, c.queues.fanout_slots), (4096, 4096));
        assert_eq!(c.queues.ingest_slots, 8192);
        for (text, field) in [
            ("[ingest]\nrest_timeout_ms = 0\n", "ingest"),
            ("[ingest]\nmax_message_bytes = 10\n", "ingest"),
            ("[ingest]\nbogus = 1\n", "bogus"),
            ("[queues]\nfanout_slots = 100\n", "queues.fanout_slots"),
            ("[queues]\nlane_slots = 0\n", "queues.lane_slots"),
        ] {
            let e = parse(text).unwrap_err().to_string();
            assert!(e.contains(field), "{text}: {e}");
        }
    }

    #[test]
    fn errors_name_the_field() {
        let cases = [
            ("[server]\nlisten = 5\n", "listen"),
            ("[server]\nbogus = 1\n", "bogus"),
            (
                "[[venue]]\nfeed = \"kraken\"\nsymbols = [\"X\"]\n",
                "venue[0].feed",
            ),
            (
                "[[venue]]\nfeed = \"okx\"\nsymbols = [\"BTC-USD-220527-30000-C\"]\n",
                "venue[0].symbols",
            ),
            (
                "[[venue]]\nfeed = \"okx\"\nsymbols = [\"BTC-USDT\"]\nchannels = [\"candles\"]\n",
                "venue[0].channels",
            ),
            (
                "[[venue]]\nfeed = \"okx\"\nsymbols = [\"BTC-USDT\"]\nws_url = \"http://x\"\n",
                "venue[0].ws_url",
            ),
            (
                "[[venue]]\nfeed = \"okx\"\nsymbols = [\"BTC-USDT\"]\nca_file = \"/nonexistent.pem\"\n",
                "venue[0].ca_file",
            ),
            (
                "[cpu]\ningest = []\n[[venue]]\nfeed = \"okx\"\nsymbols = [\"BTC-USDT\"]\n",
                "cpu.ingest",
            ),
            ("", "venue"),
        ];
        for (text, field) in cases {
            let e = Config::parse(text).unwrap_err().to_string();
            assert!(e.contains(field), "{text:?}: {e}");
        }
    }
}

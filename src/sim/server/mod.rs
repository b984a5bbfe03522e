//! `pinfeed simulate`: serves recorded venue sessions on loopback the way the venues serve
//! them, so `pinfeed run` and the tests exercise real sockets, TLS, subscribe messages and
//! REST snapshots without the network.
//!
//! One listen address serves everything. Each connection gets a thread (blocking I/O is fine
//! for a test tool; the data path of `run` is what must be fast). The request head decides:
//! - `Upgrade: websocket` on a venue path ([`Catalog::route_ws`]: Binance `/stream?streams=`
//!   and `/ws/<stream>`, Bybit `/v5/public/{linear,spot,inverse}`, OKX `/ws/v5/public`,
//!   Deribit `/ws/api/v2`, each optionally behind `/<feed name>`) becomes a
//!   [`Session`](crate::sim::session::Session): the recorded frames of the subscribed
//!   topics, paced as recorded (or `speed` times faster, 0 = at once), and the venue's
//!   replies to subscribes and pings.
//!   WebSocket pings are answered by tungstenite. An unknown path gets 404.
//! - Any other GET is answered from the recorded REST bodies (same path, same
//!   `symbol`/`instId`), else 404; a venue WebSocket path without the upgrade gets 426.
//!
//! # Passes and `--loop`
//! A connection replays its feed's recording once (a pass). Without `--loop` it then stays
//! open and idle (replies and heartbeats continue). With `--loop` the server closes the
//! connection at the end of each pass (close code 1000, reason `end of recording pass`): the
//! client reconnects and resubscribes, and the next pass starts afresh with the recorded
//! snapshots (WebSocket snapshots; for Binance the client fetches the REST snapshot again),
//! so every sequence chain a client sees is the recorded, valid one. Re-sending snapshots
//! with shifted update ids on one connection was the alternative; it would have to rewrite
//! every venue's sequence fields and REST bodies, and clients reconnect anyway.
//!
//! # TLS
//! With `tls`, connections are TLS (WSS and HTTPS) with a certificate generated at start-up
//! for `localhost`, `127.0.0.1` and `::1`, signed by a CA generated with it
//! ([`super::tls`]). [`Simulator::write_config`] writes that CA next to the config. With
//! [`SimOptions::ca_key`] the CA key is kept in a file, so a simulator restarted on the same
//! config is still trusted (`pinfeed run` loads its CA file once).
//!
//! Every malformed request has a defined outcome and a counter ([`StatsSnapshot`]): bad
//! request heads 400 (431 when too large), other methods 405, unknown paths 404, TLS
//! handshake failures close the connection, client frames a venue would reject get the
//! venue's error reply.
//!
//! `rest.rs` answers the plain GETs; `ws.rs` runs the WebSocket sessions.

use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

mod rest;
mod ws;

use crate::sim::catalog::{Catalog, CatalogError, channel_names};
use crate::sim::fault::{FaultLog, FaultSpec};
use crate::sim::http::{self, HeadError};
use crate::sim::recording::Recording;
use crate::sim::synthetic::{Synthetic, SyntheticError, SyntheticOptions, SyntheticStats};
use crate::sim::tls::{self, Stream, TlsError, TlsMaterial};
use crate::venue::{Channels, Feed};

/// Most connections served at once; more are closed at once and counted.
pub const MAX_CONNECTIONS: usize = 1024;

/// Socket read timeout while waiting for a request head: how often the stop flag is checked.
const POLL_INTERVAL: Duration = Duration::from_millis(100);

/// Time a new connection has to send its first request head.
const HEAD_TIMEOUT: Duration = Duration::from_secs(10);

/// An idle keep-alive HTTP connection is closed after this long.
const KEEP_ALIVE_TIMEOUT: Duration = Duration::from_secs(30);

/// Blocking writes (handshake, HTTP responses) give up after this long.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// A WebSocket client that accepts no data for this long is dropped.
pub const STALL_LIMIT: Duration = Duration::from_secs(30);

/// Time given to a closing handshake.
const CLOSE_GRACE: Duration = Duration::from_secs(1);

/// Longest sleep of an idle WebSocket loop.
const IDLE_POLL: Duration = Duration::from_millis(5);

/// Bytes written per loop turn before client frames are read again.
const BATCH_BYTES: usize = 256 * 1024;

/// Largest client WebSocket message accepted, bytes.
const MAX_CLIENT_MESSAGE_BYTES: usize = 1 << 20;

/// How to run the simulator.
#[derive(Clone, Debug)]
pub struct SimOptions {
    /// The recordings to serve, at most one per feed.
    pub recordings: Vec<Recording>,
    /// Listen address; port 0 picks a free port ([`Simulator::addr`] tells which).
    pub listen: SocketAddr,
    /// Serve WSS and HTTPS with a certificate generated at start-up.
    pub tls: bool,
    /// Pace: 1 as recorded, `x` times faster, 0 as fast as possible. Finite, not negative.
    pub speed: f64,
    /// Close each connection at the end of its pass, so clients reconnect for the next.
    pub looped: bool,
    /// With `tls`: keep the CA's private key in this PEM file (read when it exists, created
    /// when not), so a restarted simulator is trusted by clients of the earlier run.
    pub ca_key: Option<PathBuf>,
    /// Serve synthetic flow ([`crate::sim::synthetic`]) instead of recordings (which must then
    /// be empty); `speed` and `looped` do not apply.
    pub synthetic: Option<SyntheticOptions>,
    /// Faults to inject ([`crate::sim::fault`]); empty: a well-behaved venue.
    pub faults: Vec<FaultSpec>,
}

impl Default for SimOptions {
    /// No recording, no synthetic flow (one of them must be set), 127.0.0.1 on a free port,
    /// plain, as recorded, not looped, no faults.
    fn default() -> SimOptions {
        SimOptions {
            recordings: Vec::new(),
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            tls: false,
            speed: 1.0,
            looped: false,
            ca_key: None,
            synthetic: None,
            faults: Vec::new(),
        }
    }
}

/// Why the simulator could not start or write its config.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// No recording given.
    #[error("no recording to serve")]
    NoRecording,
    /// Both recordings and synthetic flow given.
    #[error("give either recordings or synthetic flow, not both")]
    RecordingAndSynthetic,
    /// Synthetic options rejected.
    #[error(transparent)]
    Synthetic(#[from] SyntheticError),
    /// `speed` is negative or not a number.
    #[error("--speed must be a finite number >= 0, got {0}")]
    BadSpeed(f64),
    /// The recordings cannot be served.
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    /// The listen address could not be bound.
    #[error("listening on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The cause.
        source: std::io::Error,
    },
    /// Certificate generation or TLS configuration failed.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// Writing the config or CA file failed.
    #[error("writing {path}: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
}

macro_rules! stats {
    ($($(#[$doc:meta])* $name:ident),* $(,)?) => {
        /// Server counters (relaxed atomics, shared by every connection thread).
        #[derive(Debug, Default)]
        struct SimStats {
            $($name: AtomicU64,)*
        }

        /// A copy of the simulator's counters.
        #[derive(Clone, Debug, Default, PartialEq, Eq)]
        pub struct StatsSnapshot {
            $($(#[$doc])* pub $name: u64,)*
        }

        impl SimStats {
            fn snapshot(&self) -> StatsSnapshot {
                StatsSnapshot { $($name: self.$name.load(Ordering::Relaxed),)* }
            }
        }
    };
}

stats! {
    /// Connections accepted.
    connections,
    /// Connections closed at once because [`MAX_CONNECTIONS`] were open.
    refused_connections,
    /// HTTP requests answered with a recorded body.
    http_ok,
    /// HTTP requests for a path or symbol that was not recorded (404).
    http_not_found,
    /// Malformed, oversized or unsupported requests (400, 405, 426, 431).
    bad_requests,
    /// WebSocket upgrades on a path no served feed answers (404).
    ws_rejected,
    /// WebSocket sessions opened.
    ws_sessions,
    /// TLS handshakes that failed.
    tls_errors,
    /// Connections that failed or timed out before a complete request.
    io_errors,
    /// Recorded data frames sent.
    frames_sent,
    /// Passes completed (every frame of the recording considered).
    passes,
    /// Subscribe and unsubscribe requests answered.
    subscribe_requests,
    /// Application pings answered.
    pings,
    /// Client frames rejected with the venue's error reply.
    invalid_requests,
    /// Frames re-sent to catch up a topic subscribed mid-pass.
    catch_up_frames,
    /// Heartbeats sent (Deribit `test_request`).
    heartbeats,
    /// Binary frames received from clients (ignored: venues take text).
    binary_frames,
    /// WebSocket clients dropped for not reading for 30 s, or for a protocol error.
    dropped_clients,
    /// Synthetic frames sent more than [`crate::sim::synthetic::LAG_LIMIT`] after their
    /// scheduled time.
    frames_behind,
    /// Synthetic frames skipped: a backlog older than
    /// [`crate::sim::synthetic::MAX_BACKLOG`] (a client not reading) is dropped.
    frames_skipped,
}

struct Shared {
    catalog: Catalog,
    synthetic: Option<Synthetic>,
    tls: Option<Arc<rustls::ServerConfig>>,
    speed: f64,
    looped: bool,
    stop: AtomicBool,
    stats: SimStats,
    active: AtomicUsize,
    next_id: AtomicU64,
    faults: Vec<FaultSpec>,
    fault_log: FaultLog,
}

/// A running simulator. Dropping it stops it.
pub struct Simulator {
    addr: SocketAddr,
    tls: Option<TlsMaterial>,
    shared: Arc<Shared>,
    accept: Option<JoinHandle<()>>,
    conns: Arc<Mutex<Vec<JoinHandle<()>>>>,
}

impl Simulator {
    /// Binds `opts.listen`, generates the certificate when `opts.tls`, and starts serving on a
    /// background thread.
    ///
    /// # Errors
    /// [`SimError`]: no recording, a bad speed, recordings that cannot be served (unknown
    /// venue, a feed twice), the address cannot be bound, TLS setup failed.
    pub fn start(opts: SimOptions) -> Result<Simulator, SimError> {
        if opts.recordings.is_empty() && opts.synthetic.is_none() {
            return Err(SimError::NoRecording);
        }
        if !opts.recordings.is_empty() && opts.synthetic.is_some() {
            return Err(SimError::RecordingAndSynthetic);
        }
        if !opts.speed.is_finite() || opts.speed < 0.0 {
            return Err(SimError::BadSpeed(opts.speed));
        }
        let synthetic = match opts.synthetic.clone() {
            Some(o) => Some(Synthetic::new(o, Instant::now())?),
            None => None,
        };
        let catalog = match &synthetic {
            Some(s) => s.catalog(),
            None => Catalog::build(&opts.recordings)?,
        };
        let listener = TcpListener::bind(opts.listen).map_err(|source| SimError::Bind {
            addr: opts.listen,
            source,
        })?;
        let bind_err = |source| SimError::Bind {
            addr: opts.listen,
            source,
        };
        let addr = listener.local_addr().map_err(bind_err)?;
        listener.set_nonblocking(true).map_err(bind_err)?;
        let tls = if opts.tls {
            Some(tls::generate(addr.ip(), opts.ca_key.as_deref())?)
        } else {
            None
        };
        let shared = Arc::new(Shared {
            catalog,
            synthetic,
            tls: tls.as_ref().map(|t| t.server_config.clone()),
            speed: opts.speed,
            looped: opts.looped,
            stop: AtomicBool::new(false),
            stats: SimStats::default(),
            active: AtomicUsize::new(0),
            next_id: AtomicU64::new(1),
            fault_log: FaultLog::new(&opts.faults, false),
            faults: opts.faults.clone(),
        });
        let conns = Arc::new(Mutex::new(Vec::new()));
        let accept = {
            let shared = shared.clone();
            let conns = conns.clone();
            std::thread::Builder::new()
                .name("sim-accept".into())
                .spawn(move || accept_loop(listener, shared, conns))
                .map_err(bind_err)?
        };
        Ok(Simulator {
            addr,
            tls,
            shared,
            accept: Some(accept),
            conns,
        })
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The generated CA certificate (PEM) clients must trust, when serving TLS.
    pub fn ca_pem(&self) -> Option<&str> {
        self.tls.as_ref().map(|t| t.ca_pem.as_str())
    }

    /// The generated CA certificate (DER), when serving TLS.
    pub fn ca_der(&self) -> Option<&rustls::pki_types::CertificateDer<'static>> {
        self.tls.as_ref().map(|t| &t.ca_der)
    }

    /// The feeds served, in order of first appearance in the recordings.
    pub fn feeds(&self) -> Vec<Feed> {
        self.shared.catalog.feeds.iter().map(|f| f.feed).collect()
    }

    /// A copy of the counters (with synthetic flow, `frames_behind` and `frames_skipped`
    /// are its pacing counters).
    pub fn stats(&self) -> StatsSnapshot {
        let mut s = self.shared.stats.snapshot();
        if let Some(syn) = &self.shared.synthetic {
            let st = syn.stats();
            // synthetic frames are counted live per feed
            s.frames_sent += st.frames_by_feed.iter().map(|(_, n)| n).sum::<u64>();
            s.frames_behind = st.frames_behind;
            s.frames_skipped = st.frames_skipped;
        }
        s
    }

    /// The synthetic flow's state (burst schedule, options), when serving it.
    pub fn synthetic(&self) -> Option<&Synthetic> {
        self.shared.synthetic.as_ref()
    }

    /// Frames sent per feed and pacing counters of synthetic flow, when serving it.
    pub fn synthetic_stats(&self) -> Option<SyntheticStats> {
        self.shared.synthetic.as_ref().map(Synthetic::stats)
    }

    /// How often each fault kind of [`SimOptions::faults`] fired so far.
    pub fn fault_counts(&self) -> Vec<(crate::sim::fault::FaultKind, u64)> {
        self.shared.fault_log.counts()
    }

    /// Writes out what the truth file (`SyntheticOptions::truth_out`) has buffered.
    pub fn flush_truth(&self) {
        if let Some(t) = self
            .shared
            .synthetic
            .as_ref()
            .and_then(|s| s.truth.as_ref())
        {
            t.flush();
        }
    }

    /// `host:port` for URLs: the bound address, loopback when bound to "any".
    fn url_host(&self) -> SocketAddr {
        let ip = match self.addr.ip() {
            IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
            ip => ip,
        };
        SocketAddr::new(ip, self.addr.port())
    }

    /// The WebSocket base URL of `feed` on this simulator, as `pinfeed run`'s `ws_url` takes it
    /// (Binance: `ws://HOST:PORT/<feed name>`, to which the client adds `/stream?streams=..`;
    /// Bybit `/v5/public/{category}`; OKX `/ws/v5/public`; Deribit `/ws/api/v2`).
    pub fn ws_url(&self, feed: Feed) -> String {
        let scheme = if self.tls.is_some() { "wss" } else { "ws" };
        let path = match feed {
            Feed::BinanceFutures | Feed::BinanceDelivery | Feed::BinanceSpot => {
                format!("/{}", feed.name())
            }
            Feed::BybitLinear => "/v5/public/linear".into(),
            Feed::BybitInverse => "/v5/public/inverse".into(),
            Feed::BybitSpot => "/v5/public/spot".into(),
            Feed::Okx => "/ws/v5/public".into(),
            Feed::Deribit => "/ws/api/v2".into(),
        };
        format!("{scheme}://{}{path}", self.url_host())
    }

    /// The REST base URL (`http://HOST:PORT`, or `https://`), the same for every feed.
    pub fn rest_url(&self) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        format!("{scheme}://{}", self.url_host())
    }

    /// A `pinfeed run` config (TOML, see [`crate::config`]) that points every served feed at
    /// this simulator: one `[[venue]]` per feed, with the symbols the recording subscribed and
    /// the union of their channels (a channel a symbol did not record simply stays silent),
    /// `ca_file` when serving TLS; `[server]` left at its defaults and `[cpu] pin = false`.
    pub fn config_toml(&self, ca_file: Option<&Path>) -> String {
        use std::fmt::Write as _;
        let quote = |s: &str| toml::Value::String(s.to_string()).to_string();
        let list = |items: &[&str]| {
            let quoted: Vec<String> = items.iter().map(|s| quote(s)).collect();
            format!("[{}]", quoted.join(", "))
        };
        let mut out = String::new();
        let _ = writeln!(
            out,
            "# Written by `pinfeed simulate` for the simulator on {}: every recorded feed\n\
             # points at it. Start the engine with `pinfeed run --config <this file>`.\n",
            self.url_host()
        );
        let _ = writeln!(out, "[server]\n# listen = \"127.0.0.1:9100\" (default)\n");
        let _ = writeln!(out, "[cpu]\npin = false");
        for fc in &self.shared.catalog.feeds {
            if fc.subscriptions.is_empty() {
                let _ = writeln!(
                    out,
                    "\n# {}: the recording subscribed no channel pinfeed normalizes",
                    fc.feed.name()
                );
                continue;
            }
            let mut channels = Channels::default();
            for sub in &fc.subscriptions {
                channels |= sub.channels;
            }
            let symbols: Vec<&str> = fc.subscriptions.iter().map(|s| s.symbol.as_str()).collect();
            let _ = writeln!(out, "\n[[venue]]");
            let _ = writeln!(out, "feed = {}", quote(fc.feed.name()));
            let _ = writeln!(out, "ws_url = {}", quote(&self.ws_url(fc.feed)));
            let _ = writeln!(out, "rest_url = {}", quote(&self.rest_url()));
            if let Some(ca) = ca_file {
                let _ = writeln!(out, "ca_file = {}", quote(&ca.to_string_lossy()));
            }
            let _ = writeln!(out, "symbols = {}", list(&symbols));
            let _ = writeln!(out, "channels = {}", list(&channel_names(channels)));
        }
        out
    }

    /// Writes [`Simulator::config_toml`] to `path` and, when serving TLS, the CA certificate
    /// next to it (`<stem>-ca.pem`, named by absolute path in the config). Returns the CA
    /// file's path.
    ///
    /// # Errors
    /// [`SimError::Write`] naming the file that could not be written.
    pub fn write_config(&self, path: &Path) -> Result<Option<PathBuf>, SimError> {
        let write_err = |path: &Path| {
            let path = path.to_path_buf();
            move |source| SimError::Write { path, source }
        };
        let abs = std::path::absolute(path).map_err(write_err(path))?;
        let ca_path = match &self.tls {
            Some(t) => {
                let stem = abs
                    .file_stem()
                    .map_or("simulate".into(), |s| s.to_string_lossy().into_owned());
                let ca = abs.with_file_name(format!("{stem}-ca.pem"));
                std::fs::write(&ca, &t.ca_pem).map_err(write_err(&ca))?;
                Some(ca)
            }
            None => None,
        };
        std::fs::write(&abs, self.config_toml(ca_path.as_deref())).map_err(write_err(&abs))?;
        Ok(ca_path)
    }

    /// Stops accepting, closes every connection (WebSocket clients get close code 1001) and
    /// waits for the connection threads.
    pub fn stop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.accept.take() {
            let _ = h.join();
        }
        let handles = std::mem::take(&mut *self.conns.lock().unwrap_or_else(|e| e.into_inner()));
        for h in handles {
            let _ = h.join();
        }
    }
}

impl Drop for Simulator {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Runs `pinfeed simulate`: starts the simulator, writes the config when asked, prints
/// `listening on ADDR` on stdout (after the config is written, so a script that reads the line
/// can read the config), and serves until the process is killed.
///
/// # Errors
/// [`SimError`] when the simulator cannot start or the config cannot be written.
pub fn run(opts: SimOptions, write_config: Option<&Path>) -> Result<(), SimError> {
    let (speed, looped) = (opts.speed, opts.looped);
    let sim = Simulator::start(opts)?;
    if let Some(path) = write_config {
        let ca = sim.write_config(path)?;
        match ca {
            Some(ca) => eprintln!("wrote {} (trusting {})", path.display(), ca.display()),
            None => eprintln!("wrote {}", path.display()),
        }
    }
    if let Some(syn) = &sim.shared.synthetic {
        for fc in &sim.shared.catalog.feeds {
            let symbols: Vec<&str> = fc.subscriptions.iter().map(|s| s.symbol.as_str()).collect();
            eprintln!(
                "{}: synthetic {} at {}",
                fc.feed.name(),
                symbols.join(", "),
                sim.ws_url(fc.feed)
            );
        }
        let o = syn.options();
        eprintln!(
            "REST at {}; synthetic rate {}/s{}, seed {}",
            sim.rest_url(),
            o.rate_per_s,
            o.burst.map_or(String::new(), |b| format!(", burst {b}")),
            o.seed
        );
    }
    for fc in sim
        .shared
        .catalog
        .feeds
        .iter()
        .filter(|_| sim.shared.synthetic.is_none())
    {
        eprintln!(
            "{}: {} frames, {} topics from {} at {}",
            fc.feed.name(),
            fc.frames.len(),
            fc.topics.len(),
            fc.recording.display(),
            sim.ws_url(fc.feed)
        );
    }
    if sim.shared.synthetic.is_none() {
        eprintln!(
            "REST at {}; speed {speed}{}",
            sim.rest_url(),
            if looped { ", looping" } else { "" }
        );
    }
    let mut stdout = std::io::stdout().lock();
    let _ = writeln!(stdout, "listening on {}", sim.addr());
    let _ = stdout.flush();
    drop(stdout);
    loop {
        std::thread::park();
    }
}

fn accept_loop(listener: TcpListener, shared: Arc<Shared>, conns: Arc<Mutex<Vec<JoinHandle<()>>>>) {
    while !shared.stop.load(Ordering::Relaxed) {
        match listener.accept() {
            Ok((tcp, _peer)) => {
                shared.stats.connections.fetch_add(1, Ordering::Relaxed);
                if shared.active.load(Ordering::Relaxed) >= MAX_CONNECTIONS {
                    shared
                        .stats
                        .refused_connections
                        .fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                shared.active.fetch_add(1, Ordering::Relaxed);
                let id = shared.next_id.fetch_add(1, Ordering::Relaxed);
                let s = shared.clone();
                let spawned = std::thread::Builder::new()
                    .name(format!("sim-conn-{id}"))
                    .spawn(move || {
                        // released even if the connection thread panics
                        struct Active<'a>(&'a AtomicUsize);
                        impl Drop for Active<'_> {
                            fn drop(&mut self) {
                                self.0.fetch_sub(1, Ordering::Relaxed);
                            }
                        }
                        let _active = Active(&s.active);
                        serve_conn(&s, tcp, id);
                    });
                let mut list = conns.lock().unwrap_or_else(|e| e.into_inner());
                list.retain(|h| !h.is_finished());
                match spawned {
                    Ok(h) => list.push(h),
                    Err(_) => {
                        shared.active.fetch_sub(1, Ordering::Relaxed);
                        shared
                            .stats
                            .refused_connections
                            .fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(IDLE_POLL);
            }
            Err(_) => {
                shared.stats.io_errors.fetch_add(1, Ordering::Relaxed);
                std::thread::sleep(IDLE_POLL);
            }
        }
    }
}

fn count(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

/// Serves one connection: HTTP requests until it closes, or one WebSocket session.
fn serve_conn(shared: &Shared, tcp: TcpStream, id: u64) {
    let stats = &shared.stats;
    let _ = tcp.set_nonblocking(false);
    let _ = tcp.set_nodelay(true);
    let _ = tcp.set_read_timeout(Some(POLL_INTERVAL));
    let _ = tcp.set_write_timeout(Some(WRITE_TIMEOUT));
    let Ok(mut stream) = Stream::new(tcp, shared.tls.as_ref()) else {
        count(&stats.tls_errors);
        return;
    };
    let mut buf = Vec::new();
    let mut deadline = Instant::now() + HEAD_TIMEOUT;
    loop {
        let n = match http::read_head(&mut stream, &mut buf, &shared.stop, deadline) {
            Ok(n) => n,
            Err(HeadError::Eof) => break,
            Err(HeadError::Timeout) => {
                if buf.is_empty() {
                    break;
                }
                count(&stats.io_errors);
                break;
            }
            Err(HeadError::TooLarge) => {
                count(&stats.bad_requests);
                let _ = respond(
                    &mut stream,
                    &http::error_response(431, "request head too large", false),
                );
                break;
            }
            Err(HeadError::Io(e)) => {
                let tls_failure = matches!(stream, Stream::Tls(ref s) if s.conn.is_handshaking())
                    || e.kind() == std::io::ErrorKind::InvalidData;
                count(if tls_failure {
                    &stats.tls_errors
                } else {
                    &stats.io_errors
                });
                return;
            }
        };
        let head: Vec<u8> = buf.drain(..n).collect();
        let req = match http::parse_head(&head) {
            Ok(r) => r,
            Err(msg) => {
                count(&stats.bad_requests);
                let _ = respond(&mut stream, &http::error_response(400, msg, false));
                break;
            }
        };
        if req.is_websocket() {
            ws::serve_ws(shared, stream, &req, buf, id);
            return;
        }
        if !rest::serve_http(shared, &mut stream, &req) {
            break;
        }
        deadline = Instant::now() + KEEP_ALIVE_TIMEOUT;
    }
    stream.shutdown();
}

fn respond(stream: &mut Stream, bytes: &[u8]) -> std::io::Result<()> {
    stream.write_all(bytes)?;
    stream.flush()
}

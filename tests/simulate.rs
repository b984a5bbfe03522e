//! `pinfeed simulate` end to end on 127.0.0.1: the simulator serves every recording in
//! `../shared/data/recordings` (plain and TLS), clients subscribe the way the recorded client
//! (or `pinfeed run`'s connect plan) did, everything received goes through the venue parsers
//! and a `BookEngine`, and the data must be the recording's: no parse error, no gap, every OKX
//! checksum passing, the recording's trades in order. Also: per-symbol filtering, bad
//! requests, `--loop` passes, pacing, heartbeats, the CLI, and stopping.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use pinfeed::book::{BookEngine, ResyncReason, SyncState};
use pinfeed::config::Config;
use pinfeed::model::{Event, Exchange, Instruments, Stamps};
use pinfeed::replay::Replay;
use pinfeed::sim::recording::{Record, Recording, data_dir};
use pinfeed::sim::server::{SimOptions, Simulator};
use pinfeed::venue::{
    self, Feed, FrameKind, Subscription, VenueParser, connect_plan, feed_from_url,
    subscriptions_from_wire,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tungstenite::{Message, WebSocket};

const NAMES: [&str; 5] = [
    "BINANCE.jsonl.zst",
    "BINANCE_FUTURES.jsonl.zst",
    "BYBIT.jsonl.zst",
    "OKX.jsonl.zst",
    "DERIBIT.jsonl.zst",
];

fn load(name: &str) -> Recording {
    Recording::open(&data_dir().join("recordings").join(name)).expect("recording")
}

fn start(names: &[&str], tls: bool, speed: f64, looped: bool) -> Simulator {
    Simulator::start(SimOptions {
        recordings: names.iter().map(|n| load(n)).collect(),
        listen: "127.0.0.1:0".parse().unwrap(),
        tls,
        speed,
        looped,
        ca_key: None,
        synthetic: None,
        faults: Vec::new(),
    })
    .expect("simulator starts")
}

fn tmp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("pinfeed-sim-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

// ---------------------------------------------------------------------------------------------
// clients

enum ClientStream {
    Plain(TcpStream),
    Tls(Box<rustls::StreamOwned<rustls::ClientConnection, TcpStream>>),
}

impl Read for ClientStream {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            ClientStream::Plain(s) => s.read(buf),
            ClientStream::Tls(s) => s.read(buf),
        }
    }
}

impl Write for ClientStream {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            ClientStream::Plain(s) => s.write(buf),
            ClientStream::Tls(s) => s.write(buf),
        }
    }
    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            ClientStream::Plain(s) => s.flush(),
            ClientStream::Tls(s) => s.flush(),
        }
    }
}

type Ws = WebSocket<ClientStream>;

/// A rustls client configuration that trusts only the CA in `ca_pem`.
fn client_tls(ca_pem: &[u8]) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem) {
        roots.add(cert.expect("PEM certificate")).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Arc::new(
        rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth(),
    )
}

fn host_of(url: &str) -> (&str, SocketAddr) {
    let rest = url.split_once("://").unwrap().1;
    let host = rest.split('/').next().unwrap();
    (host, host.parse().unwrap())
}

/// A TCP (or TLS, for `wss://` and `https://`) connection to the simulator in `url`.
fn open(url: &str, ca_pem: Option<&[u8]>) -> ClientStream {
    let (_, addr) = host_of(url);
    let tcp = TcpStream::connect(addr).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    if url.starts_with("wss://") || url.starts_with("https://") {
        let config = client_tls(ca_pem.expect("a CA for TLS"));
        let name = ServerName::from(addr.ip());
        let conn = rustls::ClientConnection::new(config, name).unwrap();
        ClientStream::Tls(Box::new(rustls::StreamOwned::new(conn, tcp)))
    } else {
        ClientStream::Plain(tcp)
    }
}

fn connect(url: &str, ca_pem: Option<&[u8]>) -> Result<Ws, tungstenite::Error> {
    match tungstenite::client(url, open(url, ca_pem)) {
        Ok((ws, _)) => Ok(ws),
        Err(tungstenite::HandshakeError::Failure(e)) => Err(e),
        Err(tungstenite::HandshakeError::Interrupted(_)) => panic!("blocking handshake"),
    }
}

fn agent(ca_pem: Option<&[u8]>) -> ureq::Agent {
    let mut tls = ureq::tls::TlsConfig::builder();
    if let Some(pem) = ca_pem {
        let cert = ureq::tls::Certificate::from_pem(pem).unwrap();
        tls = tls.root_certs(ureq::tls::RootCerts::new_with_certs(&[cert]));
    }
    ureq::Agent::config_builder()
        .tls_config(tls.build())
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(10)))
        .build()
        .into()
}

/// `(status, body)` of a GET.
fn get(agent: &ureq::Agent, url: &str) -> (u16, Vec<u8>) {
    let mut resp = agent.get(url).call().expect("HTTP response");
    let status = resp.status().as_u16();
    let body = resp
        .body_mut()
        .with_config()
        .limit(64 << 20)
        .read_to_vec()
        .unwrap();
    (status, body)
}

/// Every text frame until the server closes the connection.
fn read_until_close(ws: &mut Ws) -> Vec<String> {
    let mut out = Vec::new();
    loop {
        match ws.read() {
            Ok(Message::Text(t)) => out.push(t.to_string()),
            Ok(Message::Close(_)) | Ok(_) => {}
            Err(tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed) => {
                return out;
            }
            Err(tungstenite::Error::Io(e))
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                panic!("no close after {} frames", out.len())
            }
            // the server may drop the socket right after its close frame
            Err(_) => return out,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// checking what arrives

/// Trade ids per instrument, in arrival order.
type Trades = HashMap<(Exchange, String), Vec<String>>;

/// Parses frames and REST bodies like `pinfeed run` would and keeps books and counters.
struct Checker {
    instruments: Instruments,
    engine: BookEngine,
    parsers: HashMap<Feed, VenueParser>,
    unparsed: Vec<String>,
    kinds: HashMap<FrameKind, u64>,
    trades: Trades,
}

impl Checker {
    fn new(subs: &[Subscription]) -> Checker {
        let mut c = Checker {
            instruments: Instruments::new(),
            engine: BookEngine::new(),
            parsers: HashMap::new(),
            unparsed: Vec::new(),
            kinds: HashMap::new(),
            trades: Trades::new(),
        };
        for sub in subs {
            let known = c.instruments.get(sub.exchange, &sub.symbol).is_some();
            let id = c.instruments.intern(sub.exchange, &sub.symbol);
            if !known {
                c.engine.register(
                    id,
                    venue::sync_rule(sub.exchange),
                    venue::checksum_fn(sub.exchange),
                    venue::needs_rest_snapshot(sub.exchange),
                );
            }
        }
        c
    }

    /// A checker for everything `rec` subscribed.
    fn for_recording(rec: &Recording) -> Checker {
        Checker::new(&recorded_subscriptions(rec))
    }

    fn feed(&mut self, feed: Feed, rest_url: Option<&str>, data: &str) {
        let parser = self
            .parsers
            .entry(feed)
            .or_insert_with(|| VenueParser::new(feed));
        let mut bytes = data.as_bytes().to_vec();
        let (engine, instruments, trades) = (&mut self.engine, &self.instruments, &mut self.trades);
        let mut sink = |ev: Event| {
            engine.on_event(&ev);
            if let Event::Trade(t) = ev {
                let (e, s) = instruments.name(t.instrument);
                trades
                    .entry((e, s.to_string()))
                    .or_default()
                    .push(t.id.map(|i| i.as_str().to_string()).unwrap_or_default());
            }
        };
        let stamps = Stamps::default();
        let result = match rest_url {
            Some(url) => parser.parse_rest(url, &mut bytes, stamps, instruments, &mut sink),
            None => parser.parse_frame(&mut bytes, stamps, instruments, &mut sink),
        };
        match result {
            Ok(kind) => *self.kinds.entry(kind).or_default() += 1,
            Err(e) => self
                .unparsed
                .push(format!("{e}: {}", &data[..data.len().min(200)])),
        }
    }

    /// Marks every book as lost, as a reconnect does.
    fn disconnect(&mut self) {
        let ids: Vec<_> = self.engine.registered().collect();
        for id in ids {
            self.engine.invalidate(id, ResyncReason::Disconnected);
        }
    }

    /// `(gaps, checksum passes, checksum failures, books, synced books)`.
    fn totals(&self) -> (u64, u64, u64, usize, usize) {
        let mut t = (0, 0, 0, 0, 0);
        for id in self.engine.registered() {
            let st = self.engine.stats(id).unwrap();
            t.0 += st.gaps;
            t.1 += st.checksum_pass;
            t.2 += st.checksum_fail;
            if st.snapshots > 0 {
                t.3 += 1;
                if self.engine.state(id) == Some(SyncState::Synced) {
                    t.4 += 1;
                }
            }
        }
        t
    }

    fn assert_clean(&self, what: &str) {
        assert!(
            self.unparsed.is_empty(),
            "{what}: unparsed {:?}",
            self.unparsed
        );
        let (gaps, pass, fail, books, synced) = self.totals();
        assert_eq!(gaps, 0, "{what}: gaps");
        assert_eq!(fail, 0, "{what}: checksum failures ({pass} passed)");
        assert!(books > 0, "{what}: no book got a snapshot");
        assert_eq!(synced, books, "{what}: books not synced");
    }
}

fn recorded_subscriptions(rec: &Recording) -> Vec<Subscription> {
    let mut subs = Vec::new();
    for conn in rec.ws_connections() {
        let addr = rec.connect_addr(&conn).unwrap();
        let feed = feed_from_url(addr, &rec.exchange).unwrap();
        subs.extend(subscriptions_from_wire(feed, addr, &rec.sent_frames(&conn)));
    }
    subs
}

/// The recording's trades per instrument, in order, as `pinfeed replay` reads them.
fn expected_trades(rec: &Recording) -> Trades {
    let mut replay = Replay::prepare(std::slice::from_ref(rec)).unwrap();
    let mut trades = Trades::new();
    replay
        .run::<Vec<u8>>(None, |ev, _, instruments| {
            if let Event::Trade(t) = ev {
                let (e, s) = instruments.name(t.instrument);
                trades
                    .entry((e, s.to_string()))
                    .or_default()
                    .push(t.id.map(|i| i.as_str().to_string()).unwrap_or_default());
            }
        })
        .unwrap();
    trades
}

/// The simulator URL of a recorded URL: same path and query, simulator host and scheme.
fn sim_url(sim: &Simulator, recorded: &str, websocket: bool) -> String {
    let rest = recorded.split_once("://").unwrap().1;
    let path = rest.find('/').map_or("/", |i| &rest[i..]);
    let base = sim.rest_url();
    let base = if websocket {
        base.replacen("http", "ws", 1)
    } else {
        base
    };
    format!("{base}{path}")
}

/// One pass of recorded connection `conn`: connect to the recorded path, send the recorded
/// frames, fetch the recorded REST snapshots, read until the server ends the pass.
fn recorded_pass(sim: &Simulator, rec: &Recording, conn: &str, checker: &mut Checker) {
    let ca = sim.ca_pem().map(str::as_bytes);
    let addr = rec.connect_addr(conn).unwrap();
    let feed = feed_from_url(addr, &rec.exchange).unwrap();
    let mut ws = connect(&sim_url(sim, addr, true), ca).expect("connect");
    for frame in rec.sent_frames(conn) {
        ws.send(Message::text(frame)).unwrap();
    }
    let agent = agent(ca);
    for record in &rec.records {
        if let Record::Http { url, .. } = record {
            if venue::rest_body_wanted(feed, url) {
                let (status, body) = get(&agent, &sim_url(sim, url, false));
                assert_eq!(status, 200, "{url}");
                checker.feed(feed, Some(url), std::str::from_utf8(&body).unwrap());
            }
        }
    }
    for frame in read_until_close(&mut ws) {
        checker.feed(feed, None, &frame);
    }
}

/// Waits (at most 5 s) until the simulator's counters satisfy `done`, and returns them.
fn wait_stats(
    sim: &Simulator,
    done: impl Fn(&pinfeed::sim::server::StatsSnapshot) -> bool,
) -> pinfeed::sim::server::StatsSnapshot {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let stats = sim.stats();
        if done(&stats) || Instant::now() > deadline {
            return stats;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn assert_trades(got: &Trades, expected: &Trades, what: &str) {
    assert!(
        !expected.is_empty() || what.contains("DERIBIT"),
        "{what}: no trades"
    );
    for (key, ids) in expected {
        assert_eq!(got.get(key), Some(ids), "{what}: trades of {key:?}");
    }
    assert_eq!(
        got.len(),
        expected.len(),
        "{what}: trades of other instruments"
    );
}

// ---------------------------------------------------------------------------------------------
// tests

/// Every recording, plain and TLS, each connection subscribed exactly as recorded: the data
/// that arrives is the recording's.
#[test]
fn every_recording_replays_exactly_plain_and_tls() {
    for tls in [false, true] {
        let sim = start(&NAMES, tls, 0.0, true);
        let dir = tmp_dir(if tls { "exact-tls" } else { "exact" });
        let config_path = dir.join("sim.toml");
        let ca = sim.write_config(&config_path).unwrap();
        assert_eq!(ca.is_some(), tls);
        let config = Config::load(&config_path).expect("written config loads");
        let feeds: Vec<Feed> = config.connections.iter().map(|c| c.feed).collect();
        assert_eq!(feeds, sim.feeds());
        for c in &config.connections {
            assert_eq!(c.ws_url.starts_with("wss://"), tls, "{}", c.ws_url);
            assert_eq!(c.rest_url.starts_with("https://"), tls, "{}", c.rest_url);
            assert_eq!(c.ca_file.is_some(), tls);
            assert!(!config.cpu.pin);
        }
        for name in NAMES {
            let rec = load(name);
            let mut checker = Checker::for_recording(&rec);
            for conn in rec.ws_connections() {
                recorded_pass(&sim, &rec, &conn, &mut checker);
            }
            let what = format!("{name} (tls {tls})");
            checker.assert_clean(&what);
            if name.starts_with("OKX") {
                assert!(checker.totals().1 > 100, "{what}: OKX checksums verified");
            }
            assert_trades(&checker.trades, &expected_trades(&rec), &what);
        }
        let stats = sim.stats();
        assert_eq!(stats.invalid_requests, 0, "{stats:?}");
        assert_eq!(stats.http_not_found, 0, "{stats:?}");
        assert_eq!(stats.tls_errors, 0, "{stats:?}");
        assert_eq!(stats.passes, 6, "{stats:?}");
        let _ = std::fs::remove_dir_all(dir);
    }
}

/// Clients built from the written config with `connect_plan`, as `pinfeed run` builds them,
/// over TLS with the written CA file: the same data arrives.
#[test]
fn clients_from_the_written_config_get_the_recordings() {
    let sim = start(&NAMES, true, 0.0, true);
    let dir = tmp_dir("plan");
    let config_path = dir.join("run.toml");
    let ca_path = sim.write_config(&config_path).unwrap().unwrap();
    assert_eq!(ca_path, dir.join("run-ca.pem"));
    let config = Config::load(&config_path).unwrap();
    let mut expected = Trades::new();
    for name in NAMES {
        expected.extend(expected_trades(&load(name)));
    }
    let mut got = Trades::new();
    for c in &config.connections {
        let ca = std::fs::read(c.ca_file.as_ref().unwrap()).unwrap();
        let plan = connect_plan(c.feed, &c.ws_url, &c.rest_url, &c.subscriptions);
        let mut checker = Checker::new(&c.subscriptions);
        let mut ws = connect(&plan.ws_url, Some(&ca)).expect("connect");
        for frame in &plan.subscribe_frames {
            ws.send(Message::text(frame.clone())).unwrap();
        }
        let agent = agent(Some(&ca));
        for (_, url) in &plan.snapshot_urls {
            let (status, body) = get(&agent, url);
            assert_eq!(status, 200, "{url}");
            checker.feed(c.feed, Some(url), std::str::from_utf8(&body).unwrap());
        }
        for frame in read_until_close(&mut ws) {
            checker.feed(c.feed, None, &frame);
        }
        checker.assert_clean(c.feed.name());
        got.extend(checker.trades);
    }
    assert_trades(&got, &expected, "connect plans");
    let _ = std::fs::remove_dir_all(dir);
}

/// A client subscribed to one symbol gets nothing of the others.
#[test]
fn one_symbol_gets_only_its_frames() {
    let sim = start(&NAMES, false, 0.0, true);
    let base = sim.rest_url().replacen("http", "ws", 1);
    let cases: [(String, Vec<&str>, &str); 4] = [
        (
            format!("{base}/stream?streams=sushiusdt@aggTrade/sushiusdt@depth@100ms"),
            vec![],
            r#""stream":"sushiusdt@"#,
        ),
        (
            format!("{base}/v5/public/linear"),
            vec![r#"{"op":"subscribe","args":["orderbook.200.ETHUSDT","publicTrade.ETHUSDT"]}"#],
            r#""topic":"#,
        ),
        (
            format!("{base}/ws/v5/public"),
            vec![
                r#"{"op":"subscribe","args":[{"channel":"books","instId":"UNI-USD-SWAP"},{"channel":"trades","instId":"UNI-USD-SWAP"}]}"#,
            ],
            r#""instId":"UNI-USD-SWAP"#,
        ),
        (
            format!("{base}/ws/api/v2"),
            vec![
                r#"{"jsonrpc":"2.0","id":1,"method":"public/subscribe","params":{"channels":["ticker.BTC-24SEP21-8000-P.100ms"]}}"#,
            ],
            r#""channel":"ticker.BTC-24SEP21-8000-P.raw""#,
        ),
    ];
    for (url, frames, marker) in cases {
        let mut ws = connect(&url, None).unwrap();
        for f in &frames {
            ws.send(Message::text(*f)).unwrap();
        }
        let received = read_until_close(&mut ws);
        let data: Vec<&String> = received
            .iter()
            .filter(|f| !f.contains(r#""op":"subscribe""#) && !f.contains(r#""event":"subscribe""#))
            .filter(|f| !f.contains(r#""result":"#))
            .collect();
        assert!(data.len() > 5, "{url}: {} frames", data.len());
        for f in data {
            let ok = match marker {
                r#""topic":"# => f.contains(r#"ETHUSDT""#) && !f.contains("BTCUSDT"),
                m => f.contains(m),
            };
            assert!(ok, "{url}: foreign frame {}", &f[..f.len().min(200)]);
        }
    }
}

/// Bad requests get their defined outcome and are counted; nothing brings the server down.
#[test]
fn bad_requests_have_defined_outcomes() {
    let sim = start(
        &["OKX.jsonl.zst", "BINANCE_FUTURES.jsonl.zst"],
        false,
        0.0,
        false,
    );
    let base = sim.rest_url();
    let ws_base = base.replacen("http", "ws", 1);
    // WebSocket upgrade on an unknown path: 404
    match connect(&format!("{ws_base}/nope"), None) {
        Err(tungstenite::Error::Http(resp)) => assert_eq!(resp.status(), 404),
        Err(e) => panic!("{e}"),
        Ok(_) => panic!("upgrade accepted on an unknown path"),
    }
    // a venue that is not served: 404
    match connect(&format!("{ws_base}/v5/public/linear"), None) {
        Err(tungstenite::Error::Http(resp)) => assert_eq!(resp.status(), 404),
        other => panic!("{:?}", other.map(|_| ())),
    }
    let agent = agent(None);
    assert_eq!(get(&agent, &format!("{base}/nope")).0, 404);
    assert_eq!(
        get(&agent, &format!("{base}/fapi/v1/depth?symbol=BTCUSDT")).0,
        404
    );
    assert_eq!(get(&agent, &format!("{base}/ws/v5/public")).0, 426);
    let (status, body) = get(
        &agent,
        &format!("{base}/fapi/v1/depth?symbol=CTKUSDT&limit=1000"),
    );
    assert_eq!(status, 200);
    assert!(body.starts_with(b"{\"lastUpdateId\""));
    // raw requests: every one gets its status, then the connection closes
    let (_, addr) = host_of(&base);
    let raw = |request: &[u8]| -> String {
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s.write_all(request).unwrap();
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out);
        String::from_utf8_lossy(&out).into_owned()
    };
    assert!(raw(b"hello\r\n\r\n").starts_with("HTTP/1.1 400 "));
    assert!(raw(b"POST /fapi/v1/depth HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 405 "));
    let mut big = b"GET / HTTP/1.1\r\nX: ".to_vec();
    big.extend(std::iter::repeat_n(b'a', 40_000));
    assert!(raw(&big).starts_with("HTTP/1.1 431 "));
    assert!(
        raw(b"GET /ws/v5/public HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
            .starts_with("HTTP/1.1 400 ")
    );
    assert!(raw(b"\x16\x03\x01\x00\x05hello\r\n\r\n").starts_with("HTTP/1.1 400 "));
    // an unmasked frame sent with the upgrade (read past the head): 101, then dropped
    let upgraded = raw(
        b"GET /ws/v5/public HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
          Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n\x81\x04ping",
    );
    assert!(upgraded.starts_with("HTTP/1.1 101 "), "{upgraded}");
    assert!(upgraded.contains("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo="));
    assert!(!upgraded.contains("pong"));
    // HEAD: headers only; keep-alive serves several requests on one connection
    let two = raw(
        b"HEAD /fapi/v1/exchangeInfo HTTP/1.1\r\n\r\nGET /nope HTTP/1.1\r\nConnection: close\r\n\r\n",
    );
    assert!(two.starts_with("HTTP/1.1 200 "), "{two}");
    assert_eq!(two.matches("HTTP/1.1 ").count(), 2, "{two}");
    assert!(two.contains("HTTP/1.1 404 "));
    // a connection that closes mid-head, and one that says nothing
    let mut s = TcpStream::connect(addr).unwrap();
    s.write_all(b"GET / HT").unwrap();
    s.shutdown(std::net::Shutdown::Write).unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    assert!(out.is_empty());
    drop(TcpStream::connect(addr).unwrap());
    // frames a venue rejects get its error reply; binary frames are ignored
    let mut ws = connect(&format!("{ws_base}/ws/v5/public"), None).unwrap();
    ws.send(Message::text("not json")).unwrap();
    let reply = ws.read().unwrap().into_text().unwrap();
    assert!(reply.contains(r#""event":"error""#), "{reply}");
    ws.send(Message::binary(vec![1u8, 2, 3])).unwrap();
    ws.send(Message::text("ping")).unwrap();
    assert_eq!(ws.read().unwrap().into_text().unwrap().as_str(), "pong");
    // a message over the limit ends the session
    ws.send(Message::text("x".repeat(2 << 20))).unwrap();
    let mut closed = false;
    for _ in 0..10 {
        match ws.read() {
            Ok(Message::Close(_)) | Err(_) => {
                closed = true;
                break;
            }
            Ok(_) => {}
        }
    }
    assert!(closed);
    // the server still serves
    let mut ws = connect(&format!("{ws_base}/ws/v5/public"), None).unwrap();
    ws.send(Message::text("ping")).unwrap();
    assert_eq!(ws.read().unwrap().into_text().unwrap().as_str(), "pong");
    drop(ws);
    let stats = wait_stats(&sim, |s| s.pings >= 2);
    assert_eq!(stats.ws_rejected, 2, "{stats:?}");
    assert_eq!(stats.ws_sessions, 3, "{stats:?}");
    assert_eq!(stats.http_not_found, 3, "{stats:?}");
    assert!(stats.bad_requests >= 6, "{stats:?}");
    assert_eq!(stats.http_ok, 2, "{stats:?}");
    assert_eq!(stats.invalid_requests, 1, "{stats:?}");
    assert_eq!(stats.binary_frames, 1, "{stats:?}");
    assert_eq!(stats.dropped_clients, 2, "{stats:?}");
    assert_eq!(stats.io_errors, 1, "{stats:?}");
    assert!(stats.pings >= 2, "{stats:?}");
}

/// Over TLS, a client that does not speak TLS is dropped and counted; one that does not trust
/// the CA fails its handshake.
#[test]
fn tls_refuses_what_it_must() {
    let sim = start(&["OKX.jsonl.zst"], true, 0.0, false);
    let base = sim.rest_url();
    let (_, addr) = host_of(&base);
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(b"GET / HTTP/1.1\r\n\r\n").unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    assert!(!String::from_utf8_lossy(&out).contains("HTTP/1.1"));
    // a CA of another simulator is not trusted
    let other = start(&["OKX.jsonl.zst"], true, 0.0, false);
    let url = format!("{}/ws/v5/public", base.replacen("https", "wss", 1));
    assert!(connect(&url, other.ca_pem().map(str::as_bytes)).is_err());
    assert!(connect(&url, sim.ca_pem().map(str::as_bytes)).is_ok());
    let stats = wait_stats(&sim, |s| s.tls_errors >= 2);
    assert_eq!(stats.tls_errors, 2, "{stats:?}");
}

/// With `--loop`, each pass ends with a close; the reconnecting client gets a fresh pass whose
/// chains continue to validate (Binance re-fetches its REST snapshot).
#[test]
fn loop_passes_keep_chains_valid() {
    let names = [
        "BINANCE_FUTURES.jsonl.zst",
        "BYBIT.jsonl.zst",
        "OKX.jsonl.zst",
    ];
    let sim = start(&names, false, 0.0, true);
    for name in names {
        let rec = load(name);
        let mut checker = Checker::for_recording(&rec);
        for pass in 0..2 {
            if pass > 0 {
                checker.disconnect();
            }
            for conn in rec.ws_connections() {
                recorded_pass(&sim, &rec, &conn, &mut checker);
            }
        }
        checker.assert_clean(&format!("{name}, two passes"));
        let mut expected = expected_trades(&rec);
        for ids in expected.values_mut() {
            let again = ids.clone();
            ids.extend(again);
        }
        assert_trades(&checker.trades, &expected, name);
    }
    assert_eq!(sim.stats().passes, 8);
}

/// Without `--loop` the connection stays open after the pass: requests are still answered.
#[test]
fn without_loop_the_connection_stays_open() {
    let sim = start(&["OKX.jsonl.zst"], false, 0.0, false);
    let url = format!("{}/ws/v5/public", sim.rest_url().replacen("http", "ws", 1));
    let mut ws = connect(&url, None).unwrap();
    ws.send(Message::text(
        r#"{"op":"subscribe","args":[{"channel":"trades","instId":"BTC-USDT"}]}"#,
    ))
    .unwrap();
    let rec = load("OKX.jsonl.zst");
    let expected = rec
        .records
        .iter()
        .filter(|r| matches!(r, Record::Recv { data, .. } if data.starts_with(r#"{"arg":{"channel":"trades","instId":"BTC-USDT"}"#)))
        .count();
    assert!(expected > 0);
    let mut frames = 0;
    while frames < expected + 1 {
        ws.read().unwrap();
        frames += 1;
    }
    assert_eq!(
        wait_stats(&sim, |s| s.passes > 0).passes,
        1,
        "pass never ended"
    );
    ws.send(Message::text("ping")).unwrap();
    assert_eq!(ws.read().unwrap().into_text().unwrap().as_str(), "pong");
}

/// `speed` paces the pass: the OKX recording spans 10.8 s, at speed 10 about 1.1 s.
#[test]
fn speed_paces_frames() {
    let sim = start(&["OKX.jsonl.zst"], false, 10.0, true);
    let rec = load("OKX.jsonl.zst");
    let url = format!("{}/ws/v5/public", sim.rest_url().replacen("http", "ws", 1));
    let mut ws = connect(&url, None).unwrap();
    for f in rec.sent_frames("OKX.ws.1") {
        ws.send(Message::text(f)).unwrap();
    }
    let mut first: Option<Instant> = None;
    let mut n = 0;
    loop {
        match ws.read() {
            Ok(Message::Text(t)) if !t.contains(r#""event":"subscribe""#) => {
                first.get_or_insert_with(Instant::now);
                n += 1;
            }
            Ok(_) => {}
            Err(_) => break,
        }
    }
    let span = first.unwrap().elapsed();
    assert_eq!(n, 392, "every data frame");
    assert!(
        span > Duration::from_millis(900) && span < Duration::from_secs(4),
        "{span:?}"
    );
}

/// Deribit heartbeats: after `public/set_heartbeat` the server sends `test_request`s, and a
/// `public/test` is answered.
#[test]
fn deribit_heartbeats() {
    let sim = start(&["DERIBIT.jsonl.zst"], false, 0.0, false);
    let url = format!("{}/ws/api/v2", sim.rest_url().replacen("http", "ws", 1));
    let mut ws = connect(&url, None).unwrap();
    ws.send(Message::text(
        r#"{"jsonrpc":"2.0","id":9,"method":"public/set_heartbeat","params":{"interval":1}}"#,
    ))
    .unwrap();
    assert!(
        ws.read()
            .unwrap()
            .into_text()
            .unwrap()
            .contains(r#""result":"ok""#)
    );
    let start = Instant::now();
    let hb = ws.read().unwrap().into_text().unwrap();
    assert!(hb.contains("test_request"), "{hb}");
    assert!(start.elapsed() < Duration::from_secs(3));
    ws.send(Message::text(
        r#"{"jsonrpc":"2.0","id":3,"method":"public/test","params":{}}"#,
    ))
    .unwrap();
    let reply = ws.read().unwrap().into_text().unwrap();
    assert!(reply.contains(r#""version""#), "{reply}");
}

/// With a CA key file, a restarted simulator is trusted through the CA file of the first run.
#[test]
fn restarted_simulator_keeps_its_ca() {
    let dir = tmp_dir("ca-key");
    let key = dir.join("ca-key.pem");
    let _ = std::fs::remove_file(&key);
    let opts = |listen: SocketAddr| SimOptions {
        recordings: vec![load("OKX.jsonl.zst")],
        listen,
        tls: true,
        speed: 0.0,
        looped: false,
        ca_key: Some(key.clone()),
        synthetic: None,
        faults: Vec::new(),
    };
    let mut first = Simulator::start(opts("127.0.0.1:0".parse().unwrap())).unwrap();
    let config_path = dir.join("run.toml");
    let ca_file = first.write_config(&config_path).unwrap().unwrap();
    let addr = first.addr();
    first.stop();
    drop(first);
    assert!(key.is_file());
    let second = Simulator::start(opts(addr)).unwrap();
    let ca = std::fs::read(&ca_file).unwrap();
    let url = second.ws_url(Feed::Okx);
    let mut ws = connect(&url, Some(&ca)).expect("the first run's CA verifies the second");
    ws.send(Message::text("ping")).unwrap();
    assert_eq!(ws.read().unwrap().into_text().unwrap().as_str(), "pong");
    // without the key file, a new CA that the old file does not trust
    let third = start(&["OKX.jsonl.zst"], true, 0.0, false);
    assert!(connect(&third.ws_url(Feed::Okx), Some(&ca)).is_err());
    // a key file that holds no key is a clear error
    std::fs::write(&key, "not a key").unwrap();
    let err = Simulator::start(opts("127.0.0.1:0".parse().unwrap()))
        .err()
        .unwrap();
    assert!(err.to_string().contains("ca-key.pem"), "{err}");
    let _ = std::fs::remove_dir_all(dir);
}

/// Stopping closes every client with 1001 and returns promptly.
#[test]
fn stop_closes_clients() {
    let mut sim = start(&["OKX.jsonl.zst"], false, 1.0, false);
    let url = format!("{}/ws/v5/public", sim.rest_url().replacen("http", "ws", 1));
    let mut ws = connect(&url, None).unwrap();
    ws.send(Message::text("ping")).unwrap();
    assert_eq!(ws.read().unwrap().into_text().unwrap().as_str(), "pong");
    let t = Instant::now();
    sim.stop();
    assert!(t.elapsed() < Duration::from_secs(3));
    match ws.read() {
        Ok(Message::Close(Some(f))) => assert_eq!(u16::from(f.code), 1001),
        other => panic!("{other:?}"),
    }
    assert!(TcpStream::connect(sim.addr()).is_err() || connect(&url, None).is_err());
}

/// The command: `pinfeed simulate --tls --write-config` prints the bound address after writing
/// a config that loads and a CA that verifies the server.
#[test]
fn command_writes_config_and_prints_address() {
    let dir = tmp_dir("cli");
    let config_path = dir.join("sim.toml");
    let recordings = data_dir().join("recordings");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_pinfeed"))
        .arg("simulate")
        .arg("--recording")
        .arg(recordings.join("OKX.jsonl.zst"))
        .arg(recordings.join("BYBIT.jsonl.zst"))
        .args(["--listen", "127.0.0.1:0", "--tls", "--speed", "0", "--loop"])
        .arg("--write-config")
        .arg(&config_path)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line.trim().strip_prefix("listening on ").expect(&line);
    let addr: SocketAddr = addr.parse().unwrap();
    let config = Config::load(&config_path).unwrap();
    let feeds: Vec<Feed> = config.connections.iter().map(|c| c.feed).collect();
    assert_eq!(feeds, [Feed::Okx, Feed::BybitLinear, Feed::BybitSpot]);
    let okx = &config.connections[0];
    assert_eq!(okx.ws_url, format!("wss://{addr}/ws/v5/public"));
    let ca = std::fs::read(okx.ca_file.as_ref().unwrap()).unwrap();
    assert!(Path::new(okx.ca_file.as_ref().unwrap()).is_absolute());
    let plan = connect_plan(okx.feed, &okx.ws_url, &okx.rest_url, &okx.subscriptions);
    let mut ws = connect(&plan.ws_url, Some(&ca)).unwrap();
    for f in &plan.subscribe_frames {
        ws.send(Message::text(f.clone())).unwrap();
    }
    let frames = read_until_close(&mut ws);
    assert!(frames.len() > 100, "{}", frames.len());
    child.kill().unwrap();
    child.wait().unwrap();
    // a bad invocation is a clear error, exit 2
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_pinfeed"))
        .arg("simulate")
        .arg("--recording")
        .arg(recordings.join("OKX.jsonl.zst"))
        .arg("--speed=-1")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--speed"));
    let _ = std::fs::remove_dir_all(dir);
}

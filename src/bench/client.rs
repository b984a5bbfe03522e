//! Load clients: many tardis-machine WebSocket clients on one or two mio threads.
//!
//! Each thread owns a `Poll`, its clients (a `Token` per client, its index) and its
//! histograms; nothing is shared on the read path but two atomics the orchestrator writes
//! (stop, and a reset epoch that starts the measured window). The client is a small one of
//! our own for the reading side: it writes the upgrade request, checks the `101`, then
//! parses server frames (unmasked, unfragmented text, ping, close) from one growing read
//! buffer and answers pings with masked pongs, and closes with a masked close frame.
//!
//! Per message the work is a scan, not a JSON parse: the `"type"` at the start, the trade
//! `"id"`, and the `seq`/`recvNs`/`sentNs` fields that `withSeq`/`withLatency` append at the
//! end. A trade whose id looks like unix ns (the synthetic simulator stamps its send wall
//! clock there) gives an end-to-end latency: receive wall clock minus the id.

use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use hdrhistogram::Histogram;
use memchr::memmem;
use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};

/// Message types counted per client, in [`MessageType::ALL`] order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MessageType {
    /// `trade`.
    Trade,
    /// `book_change`.
    BookChange,
    /// `book_snapshot` (quotes included: they are depth-1 snapshots).
    BookSnapshot,
    /// `book_ticker`.
    BookTicker,
    /// `derivative_ticker`.
    DerivativeTicker,
    /// `liquidation`.
    Liquidation,
    /// `disconnect`.
    Disconnect,
    /// `error`.
    Error,
    /// Anything else (`book_invalid`, `imbalance`, unknown).
    Other,
}

impl MessageType {
    /// Every type, in counter order.
    pub const ALL: [MessageType; 9] = [
        MessageType::Trade,
        MessageType::BookChange,
        MessageType::BookSnapshot,
        MessageType::BookTicker,
        MessageType::DerivativeTicker,
        MessageType::Liquidation,
        MessageType::Disconnect,
        MessageType::Error,
        MessageType::Other,
    ];

    /// The wire name (`other` for [`MessageType::Other`]).
    pub fn name(self) -> &'static str {
        match self {
            MessageType::Trade => "trade",
            MessageType::BookChange => "book_change",
            MessageType::BookSnapshot => "book_snapshot",
            MessageType::BookTicker => "book_ticker",
            MessageType::DerivativeTicker => "derivative_ticker",
            MessageType::Liquidation => "liquidation",
            MessageType::Disconnect => "disconnect",
            MessageType::Error => "error",
            MessageType::Other => "other",
        }
    }

    fn of(name: &[u8]) -> MessageType {
        match name {
            b"trade" => MessageType::Trade,
            b"book_change" => MessageType::BookChange,
            b"book_snapshot" => MessageType::BookSnapshot,
            b"book_ticker" => MessageType::BookTicker,
            b"derivative_ticker" => MessageType::DerivativeTicker,
            b"liquidation" => MessageType::Liquidation,
            b"disconnect" => MessageType::Disconnect,
            b"error" => MessageType::Error,
            _ => MessageType::Other,
        }
    }
}

/// What [`scan`] found in one message.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Scanned {
    /// Index into [`MessageType::ALL`].
    pub kind: usize,
    /// Trade `id` as a number when it is all digits (at most 19).
    pub trade_id: Option<u64>,
    /// `seq` (withSeq).
    pub seq: Option<u64>,
    /// `recvNs` (withLatency): upstream frame receive, monotonic ns.
    pub recv_ns: Option<u64>,
    /// `sentNs` (withLatency): fan-out queued, monotonic ns.
    pub sent_ns: Option<u64>,
}

/// Smallest trade id read as a unix-ns send stamp (2020-09-13).
pub const MIN_STAMP_NS: u64 = 1_600_000_000_000_000_000;

/// A trade id is read as a send stamp only within this distance of the receive wall clock
/// (behind it; ahead of it by at most [`STAMP_AHEAD_NS`]): some venues' own trade ids are
/// 19-digit numbers too (Deribit's and OKX's are past 2.2e18).
pub const STAMP_WINDOW_NS: i64 = 60_000_000_000;

/// How far a send stamp may be ahead of the receive clock (clock steps) and still count.
pub const STAMP_AHEAD_NS: i64 = 1_000_000_000;

/// Whether trade id `id` reads as a send stamp of a message received at `recv_wall_ns`.
pub fn is_send_stamp(id: u64, recv_wall_ns: i64) -> bool {
    if id < MIN_STAMP_NS || id > i64::MAX as u64 {
        return false;
    }
    let id = id as i64;
    id <= recv_wall_ns.saturating_add(STAMP_AHEAD_NS)
        && recv_wall_ns.saturating_sub(id) <= STAMP_WINDOW_NS
}

/// Bytes at the end of a message searched for the appended `seq`/`recvNs`/`sentNs`.
const TAIL_BYTES: usize = 96;

fn digits(s: &[u8]) -> Option<u64> {
    let end = s
        .iter()
        .position(|b| !b.is_ascii_digit())
        .unwrap_or(s.len());
    if end == 0 || end > 19 {
        return None;
    }
    let mut v = 0u64;
    for &b in &s[..end] {
        v = v * 10 + u64::from(b - b'0');
    }
    Some(v)
}

fn number_after(hay: &[u8], key: &[u8]) -> Option<u64> {
    let at = memmem::rfind(hay, key)?;
    digits(&hay[at + key.len()..])
}

/// Scans one message (a JSON object as pinfeed's fan-out writes it: `{"type":"..."` first,
/// pinfeed's per-connection fields last) without parsing it. Unknown shapes count as
/// [`MessageType::Other`] with no fields.
pub fn scan(msg: &[u8]) -> Scanned {
    const TYPE: &[u8] = b"{\"type\":\"";
    let mut out = Scanned {
        kind: MessageType::Other as usize,
        ..Scanned::default()
    };
    if let Some(rest) = msg.strip_prefix(TYPE)
        && let Some(end) = memchr::memchr(b'"', rest)
    {
        let kind = MessageType::of(&rest[..end]);
        out.kind = kind as usize;
        if kind == MessageType::Trade
            && let Some(at) = memmem::find(rest, b"\"id\":\"")
        {
            let id = &rest[at + 6..];
            let n = id.iter().take_while(|b| b.is_ascii_digit()).count();
            if id.get(n) == Some(&b'"') {
                out.trade_id = digits(id);
            }
        }
    }
    let tail = &msg[msg.len().saturating_sub(TAIL_BYTES)..];
    out.seq = number_after(tail, b",\"seq\":");
    out.recv_ns = number_after(tail, b",\"recvNs\":");
    out.sent_ns = number_after(tail, b",\"sentNs\":");
    out
}

pub use crate::sim::synthetic::BurstSchedule;

/// What the load clients measure.
pub struct LoadStats {
    /// One entry per client, in request order.
    pub clients: Vec<ClientCounts>,
    /// Latencies of every client together.
    pub latency: Latencies,
}

/// Latency histograms (ns) of the load clients.
pub struct Latencies {
    /// Trade end-to-end latency (receive wall clock − trade id as unix ns), ns.
    pub e2e_ns: Histogram<u64>,
    /// Trades sent outside bursts (with a [`BurstSchedule`]), ns.
    pub e2e_quiet_ns: Histogram<u64>,
    /// Trades sent during bursts (with a [`BurstSchedule`]), ns.
    pub e2e_burst_ns: Histogram<u64>,
    /// Engine: upstream frame read to fan-out queued (`sentNs − recvNs`), ns.
    pub ingest_to_fanout_ns: Histogram<u64>,
    /// Fan-out queued to client read (`receive mono − sentNs`), ns.
    pub fanout_to_client_ns: Histogram<u64>,
    /// Upstream frame read to client read (`receive mono − recvNs`), ns.
    pub ingest_to_client_ns: Histogram<u64>,
    /// Stamps that went backwards (a clock or id that is not a stamp); not recorded.
    pub negative: u64,
}

impl Latencies {
    fn new() -> Latencies {
        Latencies {
            e2e_ns: hist(),
            e2e_quiet_ns: hist(),
            e2e_burst_ns: hist(),
            ingest_to_fanout_ns: hist(),
            fanout_to_client_ns: hist(),
            ingest_to_client_ns: hist(),
            negative: 0,
        }
    }

    /// Every histogram, for resets and merges.
    pub fn all(&mut self) -> [&mut Histogram<u64>; 6] {
        [
            &mut self.e2e_ns,
            &mut self.e2e_quiet_ns,
            &mut self.e2e_burst_ns,
            &mut self.ingest_to_fanout_ns,
            &mut self.fanout_to_client_ns,
            &mut self.ingest_to_client_ns,
        ]
    }

    #[inline]
    fn record(h: &mut Histogram<u64>, negative: &mut u64, later: i64, earlier: i64) {
        if later >= earlier {
            h.saturating_record((later - earlier).max(1) as u64);
        } else {
            *negative += 1;
        }
    }
}

/// Counters of one client over the measured window (since the last reset).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClientCounts {
    /// Messages per [`MessageType::ALL`] index.
    pub by_type: [u64; 9],
    /// Text messages received.
    pub messages: u64,
    /// Bytes of text messages received.
    pub bytes: u64,
    /// `seq` values skipped (withSeq), summed.
    pub seq_gaps: u64,
    /// The upgrade completed.
    pub connected: bool,
    /// Close code received from the server (1006 for a TCP close without a close frame).
    pub close_code: Option<u16>,
    /// The connection failed (connect, handshake, or a protocol error).
    pub failed: bool,
}

/// How to run the load clients.
#[derive(Clone, Debug)]
pub struct LoadOptions {
    /// The fan-out server.
    pub addr: SocketAddr,
    /// One request target per client (`/ws-stream-normalized?options=...`).
    pub targets: Vec<String>,
    /// Threads the clients are spread over (1 or 2 is plenty).
    pub threads: usize,
    /// Split trade latencies by this schedule.
    pub burst: Option<BurstSchedule>,
}

struct Control {
    stop: AtomicBool,
    epoch: AtomicU64,
    connected: AtomicUsize,
    finished: AtomicUsize,
}

/// Running load clients.
pub struct LoadHandle {
    control: Arc<Control>,
    threads: Vec<JoinHandle<(Vec<usize>, LoadStats)>>,
    clients: usize,
}

fn hist() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000_000, 3).expect("valid histogram bounds")
}

impl LoadStats {
    /// Empty counters for `clients` clients.
    pub fn new(clients: usize) -> LoadStats {
        LoadStats {
            clients: vec![ClientCounts::default(); clients],
            latency: Latencies::new(),
        }
    }

    fn reset(&mut self) {
        for c in &mut self.clients {
            c.by_type = [0; 9];
            c.messages = 0;
            c.bytes = 0;
            c.seq_gaps = 0;
        }
        for h in self.latency.all() {
            h.reset();
        }
        self.latency.negative = 0;
    }

    fn merge(&mut self, other: &mut LoadStats) {
        for (a, b) in self.latency.all().into_iter().zip(other.latency.all()) {
            // same bounds on both sides: cannot fail
            let _ = a.add(&*b);
        }
        self.latency.negative += other.latency.negative;
    }

    /// Messages received by every client together.
    pub fn messages(&self) -> u64 {
        self.clients.iter().map(|c| c.messages).sum()
    }
}

impl LoadHandle {
    /// Starts the clients: each connects, upgrades and subscribes at once.
    ///
    /// # Errors
    /// A `Poll` or thread could not be created. Connection failures are per client
    /// ([`ClientCounts::failed`]).
    pub fn start(opts: LoadOptions) -> io::Result<LoadHandle> {
        let control = Arc::new(Control {
            stop: AtomicBool::new(false),
            epoch: AtomicU64::new(0),
            connected: AtomicUsize::new(0),
            finished: AtomicUsize::new(0),
        });
        let threads_n = opts.threads.clamp(1, opts.targets.len().max(1));
        let mut threads = Vec::new();
        for t in 0..threads_n {
            let mine: Vec<usize> = (t..opts.targets.len()).step_by(threads_n).collect();
            let targets: Vec<String> = mine.iter().map(|&i| opts.targets[i].clone()).collect();
            let poll = Poll::new()?;
            let (control, addr, burst) = (control.clone(), opts.addr, opts.burst);
            let h = std::thread::Builder::new()
                .name(format!("bench-load-{t}"))
                .spawn(move || {
                    let stats = run_thread(poll, addr, &targets, burst, &control);
                    (mine, stats)
                })?;
            threads.push(h);
        }
        Ok(LoadHandle {
            control,
            threads,
            clients: opts.targets.len(),
        })
    }

    /// Clients whose upgrade completed so far.
    pub fn connected(&self) -> usize {
        self.control.connected.load(Ordering::Relaxed)
    }

    /// Clients done connecting, one way or the other (upgraded or failed).
    pub fn settled(&self) -> usize {
        self.control.finished.load(Ordering::Relaxed)
    }

    /// Starts the measured window: every thread clears its counters and histograms at its
    /// next loop turn (within a few ms).
    pub fn reset(&self) {
        self.control.epoch.fetch_add(1, Ordering::Release);
    }

    /// Stops the clients (each sends a close frame) and returns what they measured.
    pub fn stop(self) -> LoadStats {
        self.control.stop.store(true, Ordering::Release);
        let mut all = LoadStats::new(self.clients);
        for t in self.threads {
            if let Ok((indices, mut stats)) = t.join() {
                all.merge(&mut stats);
                for (i, c) in indices.into_iter().zip(stats.clients) {
                    all.clients[i] = c;
                }
            }
        }
        all
    }
}

/// Initial read buffer per client, bytes; grows for larger frames.
const READ_BUF_BYTES: usize = 16 * 1024;
/// Largest frame accepted, bytes (pinfeed's largest snapshot is far below).
const MAX_FRAME_BYTES: usize = 16 << 20;
/// Fixed masking key of client frames (RFC 6455 lets it be any value; this is a bench).
const MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

#[derive(PartialEq, Eq)]
enum Phase {
    Connecting,
    Handshake,
    Open,
    Done,
}

struct Client {
    stream: TcpStream,
    phase: Phase,
    rbuf: Vec<u8>,
    start: usize,
    end: usize,
    wbuf: Vec<u8>,
    next_seq: u64,
}

fn run_thread(
    mut poll: Poll,
    addr: SocketAddr,
    targets: &[String],
    burst: Option<BurstSchedule>,
    control: &Control,
) -> LoadStats {
    let mut stats = LoadStats::new(targets.len());
    let mut clients: Vec<Option<Client>> = Vec::with_capacity(targets.len());
    for (i, target) in targets.iter().enumerate() {
        let stream = TcpStream::connect(addr);
        let mut c = match stream {
            Ok(s) => Client {
                stream: s,
                phase: Phase::Connecting,
                rbuf: vec![0; READ_BUF_BYTES],
                start: 0,
                end: 0,
                wbuf: upgrade_request(addr, target),
                next_seq: 1,
            },
            Err(_) => {
                stats.clients[i].failed = true;
                control.finished.fetch_add(1, Ordering::Relaxed);
                clients.push(None);
                continue;
            }
        };
        let ok = poll
            .registry()
            .register(
                &mut c.stream,
                Token(i),
                Interest::READABLE | Interest::WRITABLE,
            )
            .is_ok();
        if !ok {
            stats.clients[i].failed = true;
            control.finished.fetch_add(1, Ordering::Relaxed);
            c.phase = Phase::Done;
        }
        clients.push(Some(c));
    }
    let mut events = Events::with_capacity(1024);
    let mut epoch = control.epoch.load(Ordering::Acquire);
    while !control.stop.load(Ordering::Acquire) {
        let e = control.epoch.load(Ordering::Acquire);
        if e != epoch {
            epoch = e;
            stats.reset();
        }
        if let Err(e) = poll.poll(&mut events, Some(Duration::from_millis(5)))
            && e.kind() != io::ErrorKind::Interrupted
        {
            break;
        }
        for ev in events.iter() {
            let i = ev.token().0;
            let Some(Some(c)) = clients.get_mut(i) else {
                continue;
            };
            drive(c, i, &mut stats, burst, control);
        }
    }
    // close politely; the server may already be gone
    for c in clients
        .iter_mut()
        .flatten()
        .filter(|c| c.phase == Phase::Open)
    {
        c.wbuf.clear();
        push_frame(&mut c.wbuf, 0x8, &1000u16.to_be_bytes());
        let _ = c.stream.write(&c.wbuf);
    }
    stats
}

fn upgrade_request(addr: SocketAddr, target: &str) -> Vec<u8> {
    format!(
        "GET {target} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    .into_bytes()
}

/// Appends one masked client frame.
fn push_frame(out: &mut Vec<u8>, opcode: u8, payload: &[u8]) {
    out.push(0x80 | opcode);
    // control frames only: payload < 126
    out.push(0x80 | payload.len().min(125) as u8);
    out.extend_from_slice(&MASK);
    for (k, b) in payload.iter().take(125).enumerate() {
        out.push(b ^ MASK[k % 4]);
    }
}

fn finish(c: &mut Client, i: usize, stats: &mut LoadStats, control: &Control, failed: bool) {
    if c.phase == Phase::Connecting || c.phase == Phase::Handshake {
        control.finished.fetch_add(1, Ordering::Relaxed);
    }
    if failed {
        stats.clients[i].failed = true;
    }
    c.phase = Phase::Done;
    let _ = c.stream.shutdown(std::net::Shutdown::Both);
}

fn flush(c: &mut Client) -> io::Result<()> {
    while !c.wbuf.is_empty() {
        match c.stream.write(&c.wbuf) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => {
                c.wbuf.drain(..n);
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotConnected => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

fn drive(
    c: &mut Client,
    i: usize,
    stats: &mut LoadStats,
    burst: Option<BurstSchedule>,
    control: &Control,
) {
    if c.phase == Phase::Done {
        return;
    }
    if c.phase == Phase::Connecting {
        match c.stream.take_error() {
            Ok(None) => {}
            _ => return finish(c, i, stats, control, true),
        }
        if c.stream.peer_addr().is_err() {
            return; // not connected yet
        }
        c.phase = Phase::Handshake;
    }
    if flush(c).is_err() {
        return finish(c, i, stats, control, true);
    }
    loop {
        if c.end == c.rbuf.len() {
            if c.start > 0 {
                c.rbuf.copy_within(c.start..c.end, 0);
                c.end -= c.start;
                c.start = 0;
            } else if c.rbuf.len() < MAX_FRAME_BYTES + 16 {
                let n = c.rbuf.len() * 2;
                c.rbuf.resize(n, 0);
            } else {
                return finish(c, i, stats, control, true);
            }
        }
        let end = c.end;
        match c.stream.read(&mut c.rbuf[end..]) {
            Ok(0) => {
                let first_close = stats.clients[i].close_code.is_none();
                if first_close {
                    stats.clients[i].close_code = Some(1006);
                }
                let failed = c.phase != Phase::Open;
                return finish(c, i, stats, control, failed);
            }
            Ok(n) => {
                c.end += n;
                let recv_wall_ns = crate::clock::wall_ns();
                let recv_mono_ns = crate::clock::mono_ns();
                if let Err(failed) =
                    consume(c, i, stats, burst, control, recv_wall_ns, recv_mono_ns)
                {
                    return finish(c, i, stats, control, failed);
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => {
                if stats.clients[i].close_code.is_none() {
                    stats.clients[i].close_code = Some(1006);
                }
                let failed = c.phase != Phase::Open;
                return finish(c, i, stats, control, failed);
            }
        }
    }
    if flush(c).is_err() {
        finish(c, i, stats, control, true);
    }
}

/// Handles the complete frames (or the response head) in the read buffer. `Err(failed)`
/// ends the connection.
fn consume(
    c: &mut Client,
    i: usize,
    stats: &mut LoadStats,
    burst: Option<BurstSchedule>,
    control: &Control,
    recv_wall_ns: i64,
    recv_mono_ns: u64,
) -> Result<(), bool> {
    if c.phase == Phase::Handshake {
        let buf = &c.rbuf[c.start..c.end];
        let Some(head_end) = memmem::find(buf, b"\r\n\r\n") else {
            return if buf.len() > 16 * 1024 {
                Err(true)
            } else {
                Ok(())
            };
        };
        if !buf.starts_with(b"HTTP/1.1 101") {
            return Err(true);
        }
        c.start += head_end + 4;
        c.phase = Phase::Open;
        stats.clients[i].connected = true;
        control.connected.fetch_add(1, Ordering::Relaxed);
        control.finished.fetch_add(1, Ordering::Relaxed);
    }
    loop {
        let buf = &c.rbuf[c.start..c.end];
        if buf.len() < 2 {
            break;
        }
        let (fin, opcode) = (buf[0] & 0x80 != 0, buf[0] & 0x0f);
        if buf[1] & 0x80 != 0 || !fin {
            return Err(true); // servers do not mask; pinfeed does not fragment
        }
        let (len, head) = match buf[1] & 0x7f {
            126 if buf.len() >= 4 => (u16::from_be_bytes([buf[2], buf[3]]) as usize, 4),
            127 if buf.len() >= 10 => {
                let mut b = [0u8; 8];
                b.copy_from_slice(&buf[2..10]);
                (u64::from_be_bytes(b).min(u64::MAX >> 1) as usize, 10)
            }
            126 | 127 => break,
            n => (n as usize, 2),
        };
        if len > MAX_FRAME_BYTES {
            return Err(true);
        }
        if buf.len() < head + len {
            break;
        }
        let payload = &buf[head..head + len];
        match opcode {
            0x1 | 0x2 => on_message(
                payload,
                &mut c.next_seq,
                &mut stats.clients[i],
                &mut stats.latency,
                burst,
                recv_wall_ns,
                recv_mono_ns,
            ),
            0x9 => push_frame(&mut c.wbuf, 0xA, payload),
            0xA => {}
            0x8 => {
                let code = if len >= 2 {
                    u16::from_be_bytes([payload[0], payload[1]])
                } else {
                    1005
                };
                stats.clients[i].close_code = Some(code);
                push_frame(&mut c.wbuf, 0x8, &code.to_be_bytes());
                let _ = flush(c);
                return Err(false);
            }
            _ => return Err(true),
        }
        c.start += head + len;
    }
    if c.start == c.end {
        c.start = 0;
        c.end = 0;
    }
    Ok(())
}

#[inline]
fn on_message(
    payload: &[u8],
    next_seq: &mut u64,
    counts: &mut ClientCounts,
    lat: &mut Latencies,
    burst: Option<BurstSchedule>,
    recv_wall_ns: i64,
    recv_mono_ns: u64,
) {
    let s = scan(payload);
    counts.messages += 1;
    counts.bytes += payload.len() as u64;
    counts.by_type[s.kind] += 1;
    if let Some(seq) = s.seq {
        if seq > *next_seq {
            counts.seq_gaps += seq - *next_seq;
        }
        *next_seq = seq + 1;
    }
    let neg = &mut lat.negative;
    if let Some(id) = s.trade_id.filter(|&id| is_send_stamp(id, recv_wall_ns)) {
        let sent = id as i64;
        Latencies::record(&mut lat.e2e_ns, neg, recv_wall_ns, sent);
        if let Some(b) = burst {
            let h = if b.in_burst_wall_ns(sent) {
                &mut lat.e2e_burst_ns
            } else {
                &mut lat.e2e_quiet_ns
            };
            Latencies::record(h, neg, recv_wall_ns, sent);
        }
    }
    let mono = recv_mono_ns as i64;
    if let Some(sent) = s.sent_ns {
        Latencies::record(&mut lat.fanout_to_client_ns, neg, mono, sent as i64);
        if let Some(recv) = s.recv_ns {
            Latencies::record(&mut lat.ingest_to_fanout_ns, neg, sent as i64, recv as i64);
        }
    }
    if let Some(recv) = s.recv_ns {
        Latencies::record(&mut lat.ingest_to_client_ns, neg, mono, recv as i64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scans_a_trade_with_pinfeed_fields() {
        let m = br#"{"type":"trade","symbol":"BTCUSDT","exchange":"binance-futures","id":"1763780000123456789","price":1,"amount":2,"side":"buy","timestamp":"2025-11-22T03:00:00.000Z","localTimestamp":"2025-11-22T03:00:00.000Z","seq":42,"recvNs":1000,"sentNs":2500}"#;
        let s = scan(m);
        assert_eq!(MessageType::ALL[s.kind], MessageType::Trade);
        assert_eq!(s.trade_id, Some(1_763_780_000_123_456_789));
        assert_eq!(
            (s.seq, s.recv_ns, s.sent_ns),
            (Some(42), Some(1000), Some(2500))
        );
    }

    #[test]
    fn scans_other_shapes() {
        let s = scan(br#"{"type":"book_snapshot","name":"quote","seq":7,"sentNs":9}"#);
        assert_eq!(MessageType::ALL[s.kind], MessageType::BookSnapshot);
        assert_eq!(
            (s.trade_id, s.seq, s.recv_ns, s.sent_ns),
            (None, Some(7), None, Some(9))
        );
        // a venue id that is not all digits, or no id at all
        let s = scan(br#"{"type":"trade","id":"abc-1","price":1}"#);
        assert_eq!((s.kind, s.trade_id), (0, None));
        let s = scan(br#"{"type":"trade","id":"12x","price":1}"#);
        assert_eq!(s.trade_id, None);
        let s = scan(br#"{"type":"trade","price":1}"#);
        assert_eq!(s.trade_id, None);
        for junk in [
            &b""[..],
            b"{",
            b"{\"type\":\"",
            b"[1,2]",
            b"\xff\xfe",
            b"{\"type\":\"imbalance\"}",
        ] {
            let s = scan(junk);
            assert_eq!(MessageType::ALL[s.kind], MessageType::Other, "{junk:?}");
            assert_eq!(s.seq, None);
        }
        // 20 digits overflow u64: not a number
        assert_eq!(
            scan(br#"{"type":"x","seq":99999999999999999999}"#).seq,
            None
        );
    }

    #[test]
    fn only_plausible_ids_are_send_stamps() {
        let now = 1_763_780_000_000_000_000i64;
        assert!(is_send_stamp(now as u64 - 150_000, now));
        assert!(is_send_stamp(now as u64 + 500_000_000, now)); // a small clock step
        assert!(!is_send_stamp(now as u64 - 61_000_000_000, now));
        // venue ids that are 19-digit numbers (Deribit, OKX)
        assert!(!is_send_stamp(2_280_000_001_739_247_417, now));
        assert!(!is_send_stamp(173_525_189, now));
        assert!(!is_send_stamp(u64::MAX, now));
    }

    #[test]
    fn client_frames_are_masked() {
        let mut out = Vec::new();
        push_frame(&mut out, 0x8, &1000u16.to_be_bytes());
        assert_eq!(out[0], 0x88);
        assert_eq!(out[1], 0x82);
        assert_eq!(&out[2..6], &MASK);
        assert_eq!([out[6] ^ MASK[0], out[7] ^ MASK[1]], 1000u16.to_be_bytes());
    }
}

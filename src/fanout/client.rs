//! One client connection: its socket, its bounded send buffer and its subscriptions.
//!
//! The send buffer is allocated once at accept with room for the hard limit (plus a close
//! frame) and never grows: a message that would take the unsent bytes over the hard limit is
//! refused and the caller closes the client with 1008. Writing drains it to `WouldBlock`.

use std::collections::VecDeque;
use std::io::{self, Write};
use std::time::Instant;

use mio::net::TcpStream;

use super::ws::{self, FrameDecoder};
use crate::metrics::{Stage, StageRecorder};
use crate::model::Exchange;

/// A queued message waiting for the write that completes it (stage latency).
#[derive(Copy, Clone, Debug)]
pub struct WriteStamp {
    /// [`Client::queued_bytes`] after the message: it is written once
    /// [`Client::written_bytes`] reaches this.
    pub end_bytes: u64,
    /// Monotonic ns when the message was encoded.
    pub encoded_mono_ns: u64,
    /// Monotonic ns when its upstream frame was read.
    pub recv_mono_ns: u64,
}

/// A flush that leaves unsent bytes moves them to the front of the send buffer once the
/// written part before them reaches this and they are at most a quarter of it. A client that
/// keeps up but never drains completely (a loopback socket takes part of each write) would
/// otherwise walk its writes through the whole multi-MiB buffer, every push landing on a
/// cold cache line and, the first time, a fresh page. The move costs at most a quarter of the
/// bytes written since the last one.
pub const COMPACT_AT_BYTES: usize = 64 * 1024;

/// Room reserved past the hard limit for control frames (a pong, then a close frame).
pub const CONTROL_ROOM_BYTES: usize = 2 * (2 + 125);

/// Where a connection is in its life.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Reading the HTTP request head.
    Handshake,
    /// Subscribed: receiving messages.
    Open,
    /// A close frame or HTTP error response is queued; nothing more is sent.
    Closing,
    /// Everything was sent and the write side shut down: reading until EOF or the deadline.
    Draining,
}

/// What one subscription of a client points at in its instrument's state.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Slot {
    /// `trade`.
    Trade,
    /// `book_change`.
    BookChange,
    /// `book_ticker`.
    BookTicker,
    /// `derivative_ticker`.
    DerivativeTicker,
    /// `liquidation`.
    Liquidation,
    /// `book_invalid`.
    Integrity,
    /// Index into the instrument's snapshot series.
    Snap(u32),
    /// Index into the instrument's imbalance streams.
    Imb(u32),
    /// Index into the instrument's trade bar series.
    Bar(u32),
    /// `option_summary`.
    OptionSummary,
}

/// One subscription of a client.
#[derive(Copy, Clone, Debug)]
pub struct ClientSub {
    /// Instrument index.
    pub instr: u32,
    /// What it receives.
    pub slot: Slot,
    /// A message of it was dropped by conflation: send fresh state once the backlog drains.
    pub dirty: bool,
    /// `book_change` only: waiting for an `isSnapshot` (a join, a recovery, a lost book);
    /// deltas are not sent to it meanwhile.
    pub awaiting: bool,
}

/// One connection.
pub struct Client {
    /// The socket.
    pub stream: TcpStream,
    /// Life phase.
    pub phase: Phase,
    /// Closing/Draining: when the socket is dropped regardless.
    pub deadline: Option<Instant>,
    /// Request head being read (Handshake only).
    pub head: Vec<u8>,
    out: Vec<u8>,
    out_start: usize,
    /// Unsent bytes after the last write (what conflation looks at).
    pub backlog: usize,
    /// Client frame decoder.
    pub decoder: FrameDecoder,
    /// Received anything since the last heartbeat tick.
    pub alive: bool,
    /// While handshaking: when the request head must be complete.
    pub handshake_deadline: Instant,
    seq: u64,
    /// `withSeq`.
    pub with_seq: bool,
    /// `withLatency`.
    pub with_latency: bool,
    /// `withUpdateId`.
    pub with_update_id: bool,
    /// Over the soft limit: book messages are being dropped.
    pub conflating: bool,
    /// Subscriptions.
    pub subs: Vec<ClientSub>,
    /// Options that get `disconnect` messages: exchange and `symbols` JSON.
    pub disconnects: Vec<(Exchange, Option<String>)>,
    /// In the server's dirty list.
    pub in_dirty: bool,
    /// In the server's closing list.
    pub in_closing: bool,
    /// Bytes ever queued (frames, control frames, raw bytes).
    pub queued_bytes: u64,
    /// Bytes ever written to the socket.
    pub written_bytes: u64,
    /// [`Client::queued_bytes`] at the end of the first queued unit (frame, or the raw
    /// upgrade response) not completely written; equal to `written_bytes` when none. The
    /// backlog can be dropped at this frame boundary ([`Client::drop_backlog`]).
    head_unit_end: u64,
    /// Stamped messages not yet completely written, oldest first; capacity fixed at accept
    /// (0: latency off), never grown.
    pub stamps: VecDeque<WriteStamp>,
}

impl Client {
    /// A new connection with a send buffer of `hard_bytes` (plus control room).
    pub fn new(stream: TcpStream, hard_bytes: usize) -> Client {
        Client {
            stream,
            phase: Phase::Handshake,
            deadline: None,
            head: Vec::with_capacity(1024),
            out: Vec::with_capacity(hard_bytes + CONTROL_ROOM_BYTES),
            out_start: 0,
            backlog: 0,
            decoder: FrameDecoder::default(),
            alive: true,
            handshake_deadline: Instant::now(),
            seq: 0,
            with_seq: false,
            with_latency: false,
            with_update_id: false,
            conflating: false,
            subs: Vec::new(),
            disconnects: Vec::new(),
            in_dirty: false,
            in_closing: false,
            queued_bytes: 0,
            written_bytes: 0,
            head_unit_end: 0,
            stamps: VecDeque::new(),
        }
    }

    /// Drops a conflatable message of subscription `sub`: the client conflates, and the
    /// subscription gets fresh state once the backlog drains.
    #[inline]
    pub fn conflate(&mut self, sub: u32) {
        self.conflating = true;
        if let Some(s) = self.subs.get_mut(sub as usize) {
            s.dirty = true;
        }
    }

    /// Remembers the last queued message for latency, to be completed by the write that
    /// sends its last byte; false (nothing kept) when the stamp queue is full.
    #[inline]
    pub fn stamp_last(&mut self, encoded_mono_ns: u64, recv_mono_ns: u64) -> bool {
        if self.stamps.len() >= self.stamps.capacity() {
            return false;
        }
        self.stamps.push_back(WriteStamp {
            end_bytes: self.queued_bytes,
            encoded_mono_ns,
            recv_mono_ns,
        });
        true
    }

    /// Records [`Stage::EncodedToWritten`] and [`Stage::ReadToWritten`] for every stamped
    /// message the writes so far have completed (one clock read).
    #[inline]
    pub fn complete_stamps(&mut self, rec: &mut StageRecorder) {
        if self
            .stamps
            .front()
            .is_none_or(|s| s.end_bytes > self.written_bytes)
        {
            return;
        }
        let now = crate::clock::mono_ns();
        while let Some(s) = self.stamps.front() {
            if s.end_bytes > self.written_bytes {
                break;
            }
            rec.record_between(Stage::EncodedToWritten, s.encoded_mono_ns, now);
            rec.record_between(Stage::ReadToWritten, s.recv_mono_ns, now);
            self.stamps.pop_front();
        }
    }

    /// Unsent bytes.
    #[inline]
    pub fn pending(&self) -> usize {
        self.out.len() - self.out_start
    }

    /// Makes room for `n` more bytes without growing the buffer (moves unsent bytes to the
    /// front when needed). The caller checked that they fit the capacity.
    #[inline]
    fn reserve(&mut self, n: usize) {
        if self.out.len() + n > self.out.capacity() && self.out_start > 0 {
            self.compact();
        }
    }

    /// Moves the unsent bytes to the front of the buffer.
    #[inline]
    fn compact(&mut self) {
        self.out.copy_within(self.out_start.., 0);
        self.out.truncate(self.out.len() - self.out_start);
        self.out_start = 0;
    }

    /// Queues one JSON message (`msg` is one object) as a text frame, adding this client's
    /// `updateId` (a book message's `update_id`, when not 0), `seq`, `recvNs` and `sentNs`
    /// fields when it asked for them. Returns false, queuing nothing, when the unsent bytes
    /// would pass `hard_bytes`.
    #[inline]
    pub fn push_message(
        &mut self,
        msg: &[u8],
        update_id: u64,
        recv_mono_ns: u64,
        sent_mono_ns: u64,
        hard_bytes: usize,
    ) -> bool {
        // the longest suffix: updateId, seq, recvNs and sentNs of 20 digits each and `}`
        // (32 + 27 + 30 + 30 + 1 = 120 bytes)
        let mut suffix = [0u8; 128];
        let mut n = 0;
        let with_update_id = self.with_update_id && update_id != 0;
        let extra = self.with_seq || self.with_latency || with_update_id;
        if extra {
            let mut put = |bytes: &[u8]| {
                suffix[n..n + bytes.len()].copy_from_slice(bytes);
                n += bytes.len();
            };
            let mut buf = itoa::Buffer::new();
            if with_update_id {
                put(b",\"updateId\":");
                put(buf.format(update_id).as_bytes());
            }
            if self.with_seq {
                put(b",\"seq\":");
                put(buf.format(self.seq + 1).as_bytes());
            }
            if self.with_latency {
                if recv_mono_ns != 0 {
                    put(b",\"recvNs\":");
                    put(buf.format(recv_mono_ns).as_bytes());
                }
                put(b",\"sentNs\":");
                put(buf.format(sent_mono_ns).as_bytes());
            }
            put(b"}");
        }
        let body = if extra { msg.len() - 1 + n } else { msg.len() };
        let mut header = [0u8; 10];
        let h = ws::frame_header(ws::OP_TEXT, body, &mut header);
        if self.pending() + h + body > hard_bytes {
            return false;
        }
        self.reserve(h + body);
        self.out.extend_from_slice(&header[..h]);
        if extra {
            self.out.extend_from_slice(&msg[..msg.len() - 1]);
            self.out.extend_from_slice(&suffix[..n]);
        } else {
            self.out.extend_from_slice(msg);
        }
        self.queued_bytes += (h + body) as u64;
        self.seq += 1;
        self.unit_queued(h + body);
        true
    }

    /// Queues a control frame (ping, pong) under the hard limit; false when over it.
    pub fn push_control(&mut self, opcode: u8, payload: &[u8], hard_bytes: usize) -> bool {
        let mut header = [0u8; 10];
        let h = ws::frame_header(opcode, payload.len(), &mut header);
        if self.pending() + h + payload.len() > hard_bytes {
            return false;
        }
        self.reserve(h + payload.len());
        self.out.extend_from_slice(&header[..h]);
        self.out.extend_from_slice(payload);
        self.queued_bytes += (h + payload.len()) as u64;
        self.unit_queued(h + payload.len());
        true
    }

    /// Queues raw bytes (HTTP responses, close frames) past the hard limit, within the
    /// control room; bytes that do not fit are not queued.
    pub fn push_raw(&mut self, bytes: &[u8]) {
        self.reserve(bytes.len());
        if self.out.len() + bytes.len() <= self.out.capacity() {
            self.out.extend_from_slice(bytes);
            self.queued_bytes += bytes.len() as u64;
            self.unit_queued(bytes.len());
        }
    }

    /// After queuing a unit of `n` bytes: it is the head unit when nothing else was pending.
    #[inline]
    fn unit_queued(&mut self, n: usize) {
        if self.pending() == n {
            self.head_unit_end = self.queued_bytes;
        }
    }

    /// Moves [`Client::head_unit_end`] past every unit the writes completed, reading the
    /// frame headers still in the buffer (units after the first are frames).
    #[inline]
    fn advance_head_unit(&mut self) {
        while self.head_unit_end <= self.written_bytes && self.head_unit_end < self.queued_bytes {
            let behind = (self.written_bytes - self.head_unit_end) as usize;
            let Some(at) = self.out_start.checked_sub(behind) else {
                // not reachable by the invariant; fall back to "no boundary known"
                self.head_unit_end = self.queued_bytes;
                return;
            };
            let h = &self.out[at..];
            let (header, len) = match h.get(1).map(|b| b & 0x7F) {
                Some(126) if h.len() >= 4 => (4, u64::from(u16::from_be_bytes([h[2], h[3]]))),
                Some(127) if h.len() >= 10 => {
                    let mut b = [0u8; 8];
                    b.copy_from_slice(&h[2..10]);
                    (10, u64::from_be_bytes(b))
                }
                Some(n) if n < 126 => (2, u64::from(n)),
                _ => {
                    self.head_unit_end = self.queued_bytes;
                    return;
                }
            };
            self.head_unit_end += header + len;
        }
    }

    /// Drops every queued byte after the frame being written (so a close frame queued next
    /// goes out at once, not behind the backlog); returns the bytes dropped. Stamps of dropped
    /// messages are forgotten.
    pub fn drop_backlog(&mut self) -> u64 {
        let keep = self
            .head_unit_end
            .saturating_sub(self.written_bytes)
            .min(self.pending() as u64);
        let dropped = self.pending() as u64 - keep;
        self.out.truncate(self.out_start + keep as usize);
        self.queued_bytes = self.written_bytes + keep;
        let end = self.queued_bytes;
        self.stamps.retain(|s| s.end_bytes <= end);
        self.backlog = self.pending();
        dropped
    }

    /// Writes unsent bytes until done or `WouldBlock`; returns the bytes written.
    ///
    /// # Errors
    /// The socket's error (the connection is gone).
    pub fn flush(&mut self, writes: &mut u64) -> io::Result<usize> {
        let mut written = 0;
        while self.out_start < self.out.len() {
            *writes += 1;
            match self.stream.write(&self.out[self.out_start..]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => {
                    self.out_start += n;
                    written += n;
                    self.written_bytes += n as u64;
                    self.advance_head_unit();
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        self.after_writes();
        Ok(written)
    }

    /// After the writes of a flush: an empty buffer starts over at its front, a short
    /// remainder far into it is moved there ([`COMPACT_AT_BYTES`]).
    fn after_writes(&mut self) {
        if self.out_start == self.out.len() {
            self.out.clear();
            self.out_start = 0;
        } else if self.out_start >= COMPACT_AT_BYTES && self.pending() <= self.out_start / 4 {
            self.compact();
        }
        self.backlog = self.pending();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(hard_bytes: usize) -> Client {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let stream = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        Client::new(TcpStream::from_std(stream), hard_bytes)
    }

    /// As if the socket took the first `n` unsent bytes.
    fn written(c: &mut Client, n: usize) {
        c.out_start += n;
        c.written_bytes += n as u64;
        c.advance_head_unit();
        c.after_writes();
    }

    /// A client that keeps up without ever draining completely stays at the front of its
    /// buffer: once 64 KiB are written ahead of a short remainder, the remainder moves to
    /// the front, whole frames and frame boundaries intact.
    #[test]
    fn a_short_remainder_far_into_the_buffer_moves_to_the_front() {
        let mut c = client(1 << 20);
        let msg = [b'x'; 1000];
        let frame = 4 + msg.len();
        for _ in 0..70 {
            assert!(c.push_message(&msg, 0, 0, 0, 1 << 20));
        }
        // all but two frames and a half written: past 64 KiB, remainder 2.5 frames
        let n = 70 * frame - 5 * frame / 2;
        written(&mut c, n);
        assert_eq!(c.out_start, 0, "moved to the front");
        assert_eq!(c.pending(), 5 * frame / 2);
        assert_eq!(&c.out[c.pending() - frame + 4..], &msg[..]);
        // the frame being written is kept whole by a backlog drop, the two after it go
        assert_eq!(c.drop_backlog(), 2 * frame as u64);
        assert_eq!(c.pending(), frame / 2);
        // a remainder larger than a quarter of what was written stays where it is
        let mut c = client(1 << 20);
        for _ in 0..100 {
            assert!(c.push_message(&msg, 0, 0, 0, 1 << 20));
        }
        written(&mut c, 70 * frame);
        assert_eq!(c.out_start, 70 * frame);
        assert_eq!(c.pending(), 30 * frame);
        // and so does a short one near the front
        let mut c = client(1 << 20);
        for _ in 0..10 {
            assert!(c.push_message(&msg, 0, 0, 0, 1 << 20));
        }
        written(&mut c, 9 * frame);
        assert_eq!(c.out_start, 9 * frame);
    }

    /// Every opt-in field at its widest (20 digits each) fits the suffix buffer.
    #[test]
    fn the_longest_suffix_fits() {
        let mut c = client(1 << 20);
        (c.with_seq, c.with_latency, c.with_update_id) = (true, true, true);
        c.seq = u64::MAX - 1;
        let msg = br#"{"type":"book_change"}"#;
        assert!(c.push_message(msg, u64::MAX, u64::MAX, u64::MAX - 1, 1 << 20));
        let start = c.out.iter().position(|b| *b == b'{').unwrap();
        let v: serde_json::Value = serde_json::from_slice(&c.out[start..]).unwrap();
        assert_eq!(v["updateId"], u64::MAX);
        assert_eq!(v["seq"], u64::MAX);
        assert_eq!(v["recvNs"], u64::MAX);
        assert_eq!(v["sentNs"], u64::MAX - 1);
        // an update id of 0 (none) is left out
        c.out.clear();
        c.seq = 0;
        assert!(c.push_message(msg, 0, 0, 5, 1 << 20));
        let start = c.out.iter().position(|b| *b == b'{').unwrap();
        assert_eq!(
            &c.out[start..],
            br#"{"type":"book_change","seq":1,"sentNs":5}"#
        );
    }
}

//! The client table of the fan-out loop and the sending side: queue a message to many
//! clients, conflate for the slow ones, close the ones over their hard limit.

use std::time::{Duration, Instant};

use super::client::{Client, Phase};
use super::state::SubRef;
use super::stats::{BadRequest, FanoutCounters};
use super::ws::{self, ClientFrame, FrameError};
use crate::metrics::{Stage, StageRecorder};
use crate::model::Stamps;

/// Messages per client whose write completion is waited for to record
/// [`Stage::EncodedToWritten`] and [`Stage::ReadToWritten`]; past it messages go unstamped
/// (counted). 256 slots of 24 bytes (6 KiB per client, all of it resident once the queue has
/// wrapped): a client keeping up has a few dozen messages in flight (10-25 per write in
/// `pinfeed bench`); one that does not is being conflated anyway.
pub(super) const STAMP_SLOTS: usize = 256;

/// Which subscribers of a list get a message, by their [`ClientSub::awaiting`] flag.
///
/// [`ClientSub::awaiting`]: super::client::ClientSub::awaiting
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(super) enum Pick {
    /// Every subscriber (flags untouched).
    All,
    /// `book_change` deltas: only subscribers not waiting for a snapshot.
    Synced,
    /// A snapshot for everyone (a venue snapshot, a republish): clears the flags.
    Snapshot,
    /// A snapshot answering this shard's request: only the waiting subscribers.
    Waiting,
}

impl Pick {
    #[inline]
    fn takes(self, awaiting: bool) -> bool {
        match self {
            Pick::All | Pick::Snapshot => true,
            Pick::Synced => !awaiting,
            Pick::Waiting => awaiting,
        }
    }
}

/// Every client and what is sent to them.
pub(super) struct Sessions {
    pub(super) clients: Vec<Option<Client>>,
    pub(super) free: Vec<u32>,
    pub(super) live: usize,
    /// Clients with queued bytes to write this turn.
    pub(super) dirty: Vec<u32>,
    /// Clients in `Closing`/`Draining`, checked against their deadline.
    pub(super) closing: Vec<u32>,
    pub(super) counters: FanoutCounters,
    pub(super) soft: usize,
    pub(super) hard: usize,
    pub(super) close_timeout: Duration,
    pub(super) latency_clients: usize,
    /// Stage latency recorder (`None`: no stamping).
    pub(super) lat: Option<StageRecorder>,
}

impl Sessions {
    #[inline]
    pub(super) fn get(&mut self, ci: u32) -> Option<&mut Client> {
        self.clients.get_mut(ci as usize).and_then(Option::as_mut)
    }

    #[inline]
    pub(super) fn sent_ns(&self) -> u64 {
        if self.latency_clients > 0 {
            crate::clock::mono_ns()
        } else {
            0
        }
    }

    #[inline]
    pub(super) fn mark_dirty(&mut self, ci: u32) {
        if let Some(c) = self.clients.get_mut(ci as usize).and_then(Option::as_mut) {
            if !c.in_dirty {
                c.in_dirty = true;
                self.dirty.push(ci);
            }
        }
    }

    /// True when some open subscriber in `subs` would take a conflatable message now (is not
    /// conflating and not over the soft limit).
    pub(super) fn any_takes(&self, subs: &[SubRef]) -> bool {
        subs.iter().any(|r| {
            matches!(
                self.clients.get(r.client as usize),
                Some(Some(c)) if c.phase == Phase::Open && !c.conflating && c.backlog <= self.soft
            )
        })
    }

    /// Conflates a message nobody in `subs` would take, without encoding it: every open
    /// subscriber's subscription is marked for fresh state, and each is counted.
    pub(super) fn conflate_all(&mut self, subs: &[SubRef]) {
        for r in subs {
            if let Some(c) = open_mut(&mut self.clients, r) {
                c.conflate(r.sub);
                self.counters.conflations += 1;
            }
        }
    }

    /// Queues one encoded message to every open subscriber; returns how many got it.
    /// `conflatable` messages are dropped (and remembered) for clients over the soft limit.
    #[inline]
    pub(super) fn deliver(
        &mut self,
        subs: &[SubRef],
        msg: &[u8],
        conflatable: bool,
        stamps: &Stamps,
        sent_mono_ns: u64,
    ) -> u64 {
        self.deliver_to(subs, msg, conflatable, stamps, sent_mono_ns, Pick::All, 0)
    }

    /// True when some open `book_change` subscriber in `subs` would take a message picked
    /// with `pick`.
    pub(super) fn any_picked(&self, subs: &[SubRef], pick: Pick) -> bool {
        subs.iter()
            .any(|r| match self.clients.get(r.client as usize) {
                Some(Some(c)) if c.phase == Phase::Open => c
                    .subs
                    .get(r.sub as usize)
                    .is_some_and(|s| pick.takes(s.awaiting)),
                _ => false,
            })
    }

    /// [`Sessions::deliver`] to the subscribers `pick` selects by their `awaiting` flag
    /// (`book_change`); a snapshot that reaches a subscriber clears its flag. `update_id` is
    /// the venue update id the message reflects (0: none), appended for `withUpdateId` clients.
    #[inline]
    #[allow(clippy::too_many_arguments)]
    pub(super) fn deliver_to(
        &mut self,
        subs: &[SubRef],
        msg: &[u8],
        conflatable: bool,
        stamps: &Stamps,
        sent_mono_ns: u64,
        pick: Pick,
        update_id: u64,
    ) -> u64 {
        let recv_mono_ns = stamps.recv_mono_ns;
        // encoded: one clock read per encoded message, when it has subscribers
        let encoded_ns = match &mut self.lat {
            Some(rec) if recv_mono_ns != 0 && !subs.is_empty() => {
                let now = crate::clock::mono_ns();
                if stamps.applied_delta_ns != 0 {
                    rec.record_between(
                        Stage::AppliedToEncoded,
                        recv_mono_ns + stamps.applied_delta_ns as u64,
                        now,
                    );
                }
                now
            }
            _ => 0,
        };
        let mut queued = 0;
        for r in subs {
            let Some(c) = open_mut(&mut self.clients, r) else {
                continue;
            };
            if pick != Pick::All {
                let Some(s) = c.subs.get_mut(r.sub as usize) else {
                    continue;
                };
                if !pick.takes(s.awaiting) {
                    continue;
                }
                if pick != Pick::Synced {
                    // a snapshot: taken now, or conflated and asked for again on recovery
                    s.awaiting = false;
                }
            }
            if conflatable && (c.conflating || c.backlog > self.soft) {
                c.conflate(r.sub);
                self.counters.conflations += 1;
                continue;
            }
            let mut ok = c.push_message(msg, update_id, recv_mono_ns, sent_mono_ns, self.hard);
            if !ok {
                // a burst within one turn: write what the socket takes before judging
                if let Ok(n) = c.flush(&mut self.counters.socket_writes) {
                    self.counters.bytes_sent += n as u64;
                }
                ok = c.push_message(msg, update_id, recv_mono_ns, sent_mono_ns, self.hard);
            }
            if ok {
                queued += 1;
                if encoded_ns != 0 && !c.stamp_last(encoded_ns, recv_mono_ns) {
                    if let Some(rec) = &mut self.lat {
                        rec.count_skipped();
                    }
                }
                if !c.in_dirty {
                    c.in_dirty = true;
                    self.dirty.push(r.client);
                }
            } else {
                self.slow_close(r.client);
            }
        }
        self.counters.messages_sent += queued;
        queued
    }

    /// Queues one message to one open client (cold: connection start, recovery, disconnect).
    pub(super) fn push_one(
        &mut self,
        ci: u32,
        msg: &[u8],
        recv_mono_ns: u64,
        update_id: u64,
    ) -> bool {
        let sent = self.sent_ns();
        let hard = self.hard;
        let Some(c) = self.get(ci) else { return false };
        if c.phase != Phase::Open {
            return false;
        }
        let mut ok = c.push_message(msg, update_id, recv_mono_ns, sent, hard);
        if !ok {
            // a burst: write what the socket takes before judging
            let mut writes = 0;
            let written = c.flush(&mut writes).unwrap_or(0);
            ok = c.push_message(msg, update_id, recv_mono_ns, sent, hard);
            self.counters.bytes_sent += written as u64;
            self.counters.socket_writes += writes;
        }
        if ok {
            self.counters.messages_sent += 1;
            self.mark_dirty(ci);
            true
        } else {
            self.slow_close(ci);
            false
        }
    }

    #[cold]
    pub(super) fn slow_close(&mut self, ci: u32) {
        self.counters.slow_client_closes += 1;
        // the close goes out ahead of the backlog, so the client can tell it from a crash
        if let Some(c) = self.get(ci) {
            if c.phase == Phase::Open {
                let dropped = c.drop_backlog();
                self.counters.slow_close_dropped_bytes += dropped;
            }
        }
        self.start_close(ci, 1008, "Too much backpressure");
    }

    /// Queues a close frame (`code` 0: empty payload) after what the client has, and stops
    /// sending it anything else.
    pub(super) fn start_close(&mut self, ci: u32, code: u16, reason: &str) {
        let mut frame = Vec::with_capacity(2 + 2 + ws::MAX_CLOSE_REASON_BYTES);
        ws::close_frame(code, reason, &mut frame);
        self.closing_with(ci, &frame);
    }

    /// Queues an HTTP error response, then closes.
    pub(super) fn http_close(&mut self, ci: u32, status: u16) {
        let mut response = Vec::with_capacity(128);
        ws::error_response(status, &mut response);
        self.closing_with(ci, &response);
    }

    pub(super) fn closing_with(&mut self, ci: u32, bytes: &[u8]) {
        let deadline = Instant::now() + self.close_timeout;
        let Some(c) = self.get(ci) else { return };
        if matches!(c.phase, Phase::Closing | Phase::Draining) {
            return;
        }
        if c.phase == Phase::Open && c.with_latency {
            self.latency_clients -= 1;
        }
        let c = self.get(ci).expect("checked above");
        c.push_raw(bytes);
        c.phase = Phase::Closing;
        c.deadline = Some(deadline);
        if !c.in_closing {
            c.in_closing = true;
            self.closing.push(ci);
        }
        self.mark_dirty(ci);
    }

    /// Client frames received while open.
    pub(super) fn on_frames(&mut self, ci: u32, bytes: &[u8]) {
        let hard = self.hard;
        let Some(c) = self.get(ci) else { return };
        c.alive = true;
        let mut ping: Option<([u8; 125], usize)> = None;
        let mut close: Option<Option<u16>> = None;
        let mut data = 0u64;
        let result = c.decoder.feed(bytes, |frame| match frame {
            ClientFrame::Data => data += 1,
            ClientFrame::Ping(p) => {
                let mut b = [0u8; 125];
                b[..p.len()].copy_from_slice(p);
                ping = Some((b, p.len()));
            }
            ClientFrame::Pong => {}
            ClientFrame::Close(code) => close = Some(code),
        });
        self.counters.client_frames_ignored += data;
        if let Some((b, n)) = ping {
            let c = self.get(ci).expect("checked above");
            if c.push_control(ws::OP_PONG, &b[..n], hard) {
                self.mark_dirty(ci);
            } else {
                self.slow_close(ci);
                return;
            }
        }
        match result {
            Err(e) => {
                let kind = match e {
                    FrameError::TooBig => BadRequest::OversizedFrame,
                    FrameError::Protocol | FrameError::InvalidUtf8 => BadRequest::ProtocolError,
                };
                self.counters.bad_requests[kind as usize] += 1;
                self.start_close(ci, e.code(), "");
            }
            Ok(()) => {
                if let Some(code) = close {
                    self.counters.client_disconnects += 1;
                    self.start_close(ci, code.unwrap_or(0), "");
                }
            }
        }
    }
}

/// The client of `r` while its session is open.
#[inline]
fn open_mut<'a>(clients: &'a mut [Option<Client>], r: &SubRef) -> Option<&'a mut Client> {
    clients
        .get_mut(r.client as usize)
        .and_then(Option::as_mut)
        .filter(|c| c.phase == Phase::Open)
}

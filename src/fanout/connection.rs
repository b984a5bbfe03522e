//! Connection handling of the fan-out loop: accept, the HTTP upgrade, options and
//! subscriptions, the initial and recovered state of a client, and its removal.

use std::io::{self, Read};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use mio::{Interest, Token};

use super::ShardRequest;
use super::client::{Client, ClientSub, Phase, Slot};
use super::encode;
use super::options::{self, OptionsError, SubKind, UnknownKind};
use super::server::{FIRST_CLIENT, Fanout};
use super::sessions::Sessions;
use super::state::{BarStream, ImbStream, SnapStream, SubRef};
use super::stats::BadRequest;
use super::ws;
use crate::model::InstrumentId;

/// Pending handshakes, oldest first: slot, deadline, source address.
type PendingQueue = std::collections::VecDeque<(u32, std::time::Instant, std::net::IpAddr)>;

/// Socket reads (of the 64 KiB buffer) per client per turn.
const READS_PER_TURN: usize = 16;

/// The answer to a connection refused at accept (`max_clients`, pending handshakes).
const SERVICE_UNAVAILABLE: &[u8] =
    b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";

impl Fanout {
    pub(super) fn accept(&mut self) {
        loop {
            match self.listener.accept() {
                Ok((mut stream, peer)) => {
                    self.s.counters.accepted += 1;
                    if self.s.live >= self.max_clients {
                        self.s.counters.bad_requests[BadRequest::TooManyClients as usize] += 1;
                        let _ = io::Write::write(&mut stream, SERVICE_UNAVAILABLE);
                        continue;
                    }
                    let now = std::time::Instant::now();
                    if !self.admit_handshake(peer.ip()) {
                        self.s.counters.handshakes_refused += 1;
                        let _ = io::Write::write(&mut stream, SERVICE_UNAVAILABLE);
                        continue;
                    }
                    let _ = stream.set_nodelay(true);
                    let ci = match self.s.free.pop() {
                        Some(ci) => ci,
                        None => {
                            self.s.clients.push(None);
                            (self.s.clients.len() - 1) as u32
                        }
                    };
                    let token = Token(ci as usize + FIRST_CLIENT);
                    if self
                        .poll
                        .registry()
                        .register(&mut stream, token, Interest::READABLE | Interest::WRITABLE)
                        .is_err()
                    {
                        self.s.free.push(ci);
                        continue;
                    }
                    let mut client = Client::new(stream, self.s.hard);
                    let deadline = now + self.handshake_timeout();
                    client.handshake_deadline = deadline;
                    self.pending.push_back((ci, deadline, peer.ip()));
                    if self.s.lat.is_some() {
                        client.stamps =
                            std::collections::VecDeque::with_capacity(super::sessions::STAMP_SLOTS);
                    }
                    self.s.clients[ci as usize] = Some(client);
                    self.s.live += 1;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
    }

    fn handshake_timeout(&self) -> std::time::Duration {
        std::time::Duration::from_millis(self.cfg.handshake_timeout_ms)
    }

    /// True while slot `ci` is the handshake queued with `deadline`.
    fn still_pending(&self, ci: u32, deadline: std::time::Instant) -> bool {
        matches!(
            self.s.clients.get(ci as usize),
            Some(Some(c)) if c.phase == Phase::Handshake && c.handshake_deadline == deadline
        )
    }

    /// Makes room for one more pending handshake from `ip`: forgets finished ones when a limit
    /// is reached, then closes the oldest pending one of `ip` (at its own limit) or of all (at
    /// the total). A real client is through its upgrade in microseconds, so the oldest pending
    /// one is the likeliest to be stalled on purpose; one address can hold at most its share.
    fn admit_handshake(&mut self, ip: std::net::IpAddr) -> bool {
        let (max, per_ip) = (
            self.cfg.max_pending_handshakes,
            self.cfg.max_pending_handshakes_per_ip,
        );
        let count_ip = |p: &PendingQueue| p.iter().filter(|e| e.2 == ip).count();
        if self.pending.len() >= max || count_ip(&self.pending) >= per_ip {
            let mut queue = std::mem::take(&mut self.pending);
            queue.retain(|&(ci, d, _)| self.still_pending(ci, d));
            self.pending = queue;
        }
        // bounded: each turn takes one entry off the queue
        loop {
            let victim = if count_ip(&self.pending) >= per_ip {
                self.pending.iter().position(|e| e.2 == ip)
            } else if self.pending.len() >= max {
                Some(0)
            } else {
                return true;
            };
            // a limit of 0: no handshake may wait
            let Some((ci, deadline, _)) = victim.and_then(|i| self.pending.remove(i)) else {
                return false;
            };
            // its request may be waiting in the socket (a burst of connects is accepted
            // before anything is read): read it first, evict only a stalled one
            self.on_readable(ci);
            if self.still_pending(ci, deadline) {
                self.s.counters.handshakes_evicted += 1;
                self.remove(ci);
                return true;
            }
        }
    }

    /// Closes every connection past its handshake deadline (the queue is in deadline order).
    pub(super) fn expire_handshakes(&mut self, now: std::time::Instant) {
        while let Some(&(ci, deadline, _)) = self.pending.front() {
            if !self.still_pending(ci, deadline) {
                self.pending.pop_front();
                continue;
            }
            if deadline > now {
                break;
            }
            self.pending.pop_front();
            self.s.counters.handshake_timeouts += 1;
            self.remove(ci);
        }
    }

    /// Reads until `WouldBlock`, at most [`READS_PER_TURN`] times; a client with more to read
    /// is read again next turn, so one flooding client cannot hold the loop.
    pub(super) fn on_readable(&mut self, ci: u32) {
        for _ in 0..READS_PER_TURN {
            let Some(c) = self.s.get(ci) else { return };
            let n = match c.stream.read(&mut self.read_buf) {
                Ok(0) => {
                    if c.phase == Phase::Open {
                        self.s.counters.client_disconnects += 1;
                    }
                    self.remove(ci);
                    return;
                }
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => {
                    if c.phase == Phase::Open {
                        self.s.counters.client_disconnects += 1;
                    }
                    self.remove(ci);
                    return;
                }
            };
            match c.phase {
                Phase::Handshake => self.on_head_bytes(ci, n),
                Phase::Open => self.s.on_frames(ci, &self.read_buf[..n]),
                Phase::Closing | Phase::Draining => {}
            }
        }
        if self.s.get(ci).is_some() && !self.reread.contains(&ci) {
            self.reread.push(ci);
        }
    }

    pub(super) fn on_head_bytes(&mut self, ci: u32, n: usize) {
        let Some(c) = self.s.get(ci) else { return };
        let old = c.head.len();
        c.head.extend_from_slice(&self.read_buf[..n]);
        let from = old.saturating_sub(3);
        let end = ws::head_end(&c.head[from..]).map(|e| e + from);
        match end {
            Some(end) if end <= ws::MAX_HEAD_BYTES => {
                let head = std::mem::take(&mut c.head);
                self.on_head(ci, &head[..end]);
                let open = self.s.get(ci).is_some_and(|c| c.phase == Phase::Open);
                if open && head.len() > end {
                    self.s.on_frames(ci, &head[end..]);
                }
            }
            None if c.head.len() <= ws::MAX_HEAD_BYTES => {}
            _ => {
                c.head = Vec::new();
                self.s.counters.bad_requests[BadRequest::HeaderTooLarge as usize] += 1;
                self.s.http_close(ci, 431);
            }
        }
    }

    pub(super) fn on_head(&mut self, ci: u32, head: &[u8]) {
        match ws::parse_head(head) {
            ws::Handshake::Upgrade { target, key } => {
                let mut busy: Option<String> = None;
                if let Some(service) = &self.replay {
                    let (path, query) = ws::route(target);
                    if path == "/ws-replay-normalized" {
                        match service.claim() {
                            Some(claim) => {
                                let (service, query, key) =
                                    (service.clone(), query.to_string(), key.to_string());
                                if let Some(c) = self.detach(ci) {
                                    self.s.counters.replay_handoffs += 1;
                                    hand_off_replay(c, service, claim, query, key);
                                }
                                return;
                            }
                            // every replay stream taken: upgrade, then close 1013 (try again)
                            None => {
                                service.stats.requests.fetch_add(1, Ordering::Relaxed);
                                busy = Some(service.busy_reason());
                            }
                        }
                    }
                }
                let mut response = Vec::with_capacity(160);
                ws::accept_response(key, &mut response);
                if let Some(c) = self.s.get(ci) {
                    c.push_raw(&response);
                }
                self.s.mark_dirty(ci);
                match busy {
                    Some(reason) => self.s.start_close(ci, 1013, &reason),
                    None => self.open_session(ci, target),
                }
            }
            other => {
                let (kind, status) = match other {
                    ws::Handshake::NotUpgrade => (BadRequest::NotWebSocket, 426),
                    ws::Handshake::BadMethod => (BadRequest::BadHandshake, 405),
                    _ => (BadRequest::BadHandshake, 400),
                };
                self.s.counters.bad_requests[kind as usize] += 1;
                self.s.http_close(ci, status);
            }
        }
    }

    /// After the `101`: routes, parses options, subscribes, sends the initial state.
    pub(super) fn open_session(&mut self, ci: u32, target: &str) {
        let (path, query) = ws::route(target);
        let bad = |s: &mut Sessions, kind: BadRequest| s.counters.bad_requests[kind as usize] += 1;
        if path != "/ws-stream-normalized" {
            bad(&mut self.s, BadRequest::UnknownPath);
            // tardis-machine accepts the upgrade, then closes 1008 with no reason
            self.s.start_close(ci, 1008, "");
            return;
        }
        let entries = match options::parse_query(query) {
            Ok(entries) => entries,
            Err(OptionsError::Malformed(reason)) => {
                bad(&mut self.s, BadRequest::MalformedOptions);
                self.s.start_close(ci, 1011, &reason);
                return;
            }
            Err(OptionsError::Empty) => {
                bad(&mut self.s, BadRequest::EmptyOptions);
                self.s
                    .start_close(ci, 1000, "WS stream-normalized finished");
                return;
            }
        };
        let resolved = options::resolve(&entries, &self.instruments, self.slots.max_depth());
        {
            let Some(c) = self.s.get(ci) else { return };
            c.phase = Phase::Open;
            c.with_seq = resolved.with_seq;
            c.with_latency = resolved.with_latency;
            c.with_update_id = resolved.with_update_id;
            c.disconnects = resolved.disconnects;
            c.head = Vec::new();
        }
        if resolved.with_latency {
            self.s.latency_clients += 1;
        }
        let now = crate::clock::wall_ns();
        let mut per_exchange: Vec<(&str, u32)> = Vec::new();
        for e in &resolved.errors {
            let c = &mut self.s.counters;
            match e.kind {
                UnknownKind::Exchange => c.unknown_exchange += 1,
                UnknownKind::Symbol => c.unknown_symbol += 1,
                UnknownKind::DataType => c.unknown_data_type += 1,
            }
            if !e.send {
                continue;
            }
            let count = match per_exchange.iter_mut().find(|(x, _)| *x == e.exchange) {
                Some((_, n)) => {
                    *n += 1;
                    *n
                }
                None => {
                    per_exchange.push((&e.exchange, 1));
                    1
                }
            };
            self.cold.clear();
            encode::error(&mut self.cold, &e.exchange, now, &e.details, count);
            self.s.push_one(ci, &self.cold, 0, 0);
        }
        if resolved.subs.is_empty() && !resolved.quiet {
            bad(&mut self.s, BadRequest::NothingToServe);
            let exchange = resolved
                .errors
                .first()
                .map_or(entries[0].exchange.as_str(), |e| e.exchange.as_str());
            let reason =
                format!("Too many subsequent errors when connecting to  {exchange} WS API");
            self.s.start_close(ci, 1011, &reason);
            return;
        }
        if let Some(details) = self.subscription_limit(&resolved.subs) {
            bad(&mut self.s, BadRequest::SubscriptionLimit);
            self.cold.clear();
            encode::error(&mut self.cold, &entries[0].exchange, now, &details, 1);
            self.s.push_one(ci, &self.cold, 0, 0);
            self.s.start_close(ci, 1008, "subscription limit");
            return;
        }
        self.s.counters.sessions += 1;
        let mut touched: Vec<InstrumentId> = Vec::new();
        for (id, kind) in resolved.subs {
            self.subscribe(ci, id, kind, now);
            if !touched.contains(&id) {
                touched.push(id);
            }
        }
        for id in touched {
            self.update_wants(id.index());
        }
        // initial state (isSnapshot book_change, current snapshots): sent like a recovery
        if let Some(c) = self.s.get(ci) {
            let mut any = false;
            for sub in &mut c.subs {
                if matches!(sub.slot, Slot::BookChange | Slot::Snap(_) | Slot::Imb(_)) {
                    sub.dirty = true;
                    any = true;
                }
            }
            if any {
                c.conflating = true;
                self.recover(ci);
            }
        }
    }

    /// The `[server]` limit a request of `subs` passes, as the `error` message's details.
    fn subscription_limit(&self, subs: &[(InstrumentId, SubKind)]) -> Option<String> {
        let cfg = &self.cfg;
        if subs.len() > cfg.max_subscriptions_per_client {
            return Some(format!(
                "{} subscriptions requested, at most {} per connection \
                 (server.max_subscriptions_per_client)",
                subs.len(),
                cfg.max_subscriptions_per_client
            ));
        }
        // computed series: snapshot series count their levels (a grouped one every level
        // the slot holds, what it reads per change), trade bar series one each and no levels
        let (mut series, mut levels) = (0usize, 0usize);
        let mut new: Vec<(u32, &str, bool, usize)> = Vec::new();
        for (id, kind) in subs {
            let instr = self.instrs.get(id.index());
            let (name, timer, depth, exists) = match kind {
                SubKind::Snapshot { spec, timer } => {
                    let depth = match spec.grouping_bits {
                        Some(_) => self.slots.max_depth(),
                        None => spec.depth,
                    };
                    let exists = instr.is_some_and(|i| {
                        i.snaps
                            .iter()
                            .any(|s| *s.name == *spec.name && s.timer == *timer)
                    });
                    (spec.name.as_str(), *timer, depth, exists)
                }
                SubKind::TradeBar(spec) => {
                    let exists =
                        instr.is_some_and(|i| i.bars.iter().any(|b| *b.name == *spec.name));
                    (spec.name.as_str(), false, 0, exists)
                }
                _ => continue,
            };
            series += 1;
            levels += depth;
            let key = (id.0, name, timer, depth);
            if !exists && !new.contains(&key) {
                new.push(key);
            }
        }
        if series > cfg.max_snapshot_series_per_client {
            return Some(format!(
                "{series} snapshot series requested, at most {} per connection \
                 (server.max_snapshot_series_per_client)",
                cfg.max_snapshot_series_per_client
            ));
        }
        if levels > cfg.max_snapshot_levels_per_client {
            return Some(format!(
                "snapshot series of {levels} levels in all requested, at most {} per \
                 connection (server.max_snapshot_levels_per_client)",
                cfg.max_snapshot_levels_per_client
            ));
        }
        if new.is_empty() {
            return None;
        }
        let (mut total_series, mut total_levels) = (0usize, 0usize);
        let max_depth = self.slots.max_depth();
        for i in &self.instrs {
            total_series += i.snaps.len() + i.bars.len();
            total_levels += i
                .snaps
                .iter()
                .map(|s| s.read_depth().min(max_depth))
                .sum::<usize>();
        }
        let new_levels: usize = new.iter().map(|k| k.3).sum();
        if total_series + new.len() > cfg.max_snapshot_series
            || total_levels + new_levels > cfg.max_snapshot_levels
        {
            return Some(format!(
                "server snapshot capacity reached: {} new series of {new_levels} levels \
                 requested, {total_series} series of {total_levels} levels exist, at most {} \
                 series and {} levels (server.max_snapshot_series, server.max_snapshot_levels)",
                new.len(),
                cfg.max_snapshot_series,
                cfg.max_snapshot_levels
            ));
        }
        None
    }

    pub(super) fn subscribe(&mut self, ci: u32, id: InstrumentId, kind: SubKind, now_ns: i64) {
        let Some(instr) = self.instrs.get_mut(id.index()) else {
            return;
        };
        let Some(c) = self.s.clients.get_mut(ci as usize).and_then(Option::as_mut) else {
            return;
        };
        let r = SubRef {
            client: ci,
            sub: c.subs.len() as u32,
        };
        let slot = match kind {
            SubKind::Trade => {
                instr.trade.push(r);
                Slot::Trade
            }
            SubKind::BookChange => {
                instr.book_change.push(r);
                Slot::BookChange
            }
            SubKind::BookTicker => {
                instr.book_ticker.push(r);
                Slot::BookTicker
            }
            SubKind::DerivativeTicker => {
                instr.derivative_ticker.push(r);
                Slot::DerivativeTicker
            }
            SubKind::Liquidation => {
                instr.liquidation.push(r);
                Slot::Liquidation
            }
            SubKind::Integrity => {
                instr.integrity.push(r);
                Slot::Integrity
            }
            SubKind::Snapshot { spec, timer } => {
                let i = match instr
                    .snaps
                    .iter()
                    .position(|s| *s.name == *spec.name && s.timer == timer)
                {
                    Some(i) => i,
                    None => {
                        instr.snaps.push(
                            SnapStream::new(
                                &spec.name,
                                spec.depth,
                                spec.interval_ms,
                                timer,
                                now_ns,
                            )
                            .grouped_by(spec.grouping()),
                        );
                        if timer {
                            self.timer_streams += 1;
                            self.next_timer_ns = self
                                .next_timer_ns
                                .min(instr.snaps[instr.snaps.len() - 1].next_due_ns);
                        }
                        instr.snaps.len() - 1
                    }
                };
                instr.snaps[i].subs.push(r);
                Slot::Snap(i as u32)
            }
            SubKind::Imbalance(depth) => {
                let i = match instr.imbs.iter().position(|s| s.depth == depth) {
                    Some(i) => i,
                    None => {
                        instr.imbs.push(ImbStream::new(depth));
                        instr.imbs.len() - 1
                    }
                };
                instr.imbs[i].subs.push(r);
                Slot::Imb(i as u32)
            }
            SubKind::OptionSummary => {
                if instr.option_static.is_none() {
                    instr.option_static = encode::option_static(&instr.symbol).map(Into::into);
                }
                instr.option_summary.push(r);
                Slot::OptionSummary
            }
            SubKind::TradeBar(spec) => {
                let i = match instr.bars.iter().position(|b| *b.name == *spec.name) {
                    Some(i) => i,
                    None => {
                        instr.bars.push(BarStream::new(&spec));
                        instr.bars.len() - 1
                    }
                };
                instr.bars[i].subs.push(r);
                Slot::Bar(i as u32)
            }
        };
        c.subs.push(ClientSub {
            instr: id.0,
            slot,
            dirty: false,
            awaiting: false,
        });
    }

    /// Sends fresh state for every dirty subscription of `ci` (a `book_change` one waits for
    /// its requested snapshot); the client stops conflating.
    pub(super) fn recover(&mut self, ci: u32) {
        let Some(c) = self.s.get(ci) else {
            return;
        };
        let n = c.subs.len();
        for si in 0..n {
            let Some(c) = self.s.get(ci) else { return };
            if c.phase != Phase::Open {
                return;
            }
            let sub = c.subs[si];
            if !sub.dirty {
                continue;
            }
            c.subs[si].dirty = false;
            self.send_state(ci, si, sub);
        }
        if let Some(c) = self.s.get(ci) {
            c.conflating = false;
        }
    }

    /// Fresh state of subscription `si` of client `ci`: the current snapshot or imbalance
    /// from the slot, the last book ticker; for `book_change`, a full-book snapshot request to
    /// the book thread (the subscriber waits for it, deltas skip it meanwhile).
    pub(super) fn send_state(&mut self, ci: u32, si: usize, sub: ClientSub) {
        let id = InstrumentId(sub.instr);
        let Some(instr) = self.instrs.get_mut(sub.instr as usize) else {
            return;
        };
        self.cold.clear();
        let depth = match sub.slot {
            Slot::Snap(i) => instr
                .snaps
                .get(i as usize)
                .map_or(0, |s| s.read_depth().min(self.slots.max_depth())),
            Slot::Imb(i) => instr.imbs.get(i as usize).map_or(0, |s| s.depth),
            _ => 0,
        };
        if matches!(sub.slot, Slot::Snap(_) | Slot::Imb(_)) {
            self.s.counters.slot_read_retries +=
                u64::from(self.slots.read(id, depth, &mut self.cold_view));
        }
        let h = self.cold_view.header;
        let mono = h.stamps.recv_mono_ns;
        let mut update_id = 0;
        match sub.slot {
            Slot::BookChange => {
                if let Some(c) = self.s.get(ci) {
                    c.subs[si].awaiting = true;
                }
                self.request_snapshot(sub.instr as usize);
                return;
            }
            // a slot written before this depth was wanted: the refresh's notice brings it
            Slot::Snap(_) | Slot::Imb(_) if usize::from(h.depth) < depth => return,
            Slot::Snap(i) if h.synced => {
                let Some(s) = instr.snaps.get_mut(i as usize) else {
                    return;
                };
                let ts = s.current(&self.cold_view, h.ts_ns());
                update_id = s.top.update_id;
                s.encode(
                    &mut self.cold,
                    instr.exchange,
                    &instr.symbol,
                    ts,
                    h.stamps.recv_ts_ns,
                );
            }
            Slot::Imb(i) if h.synced => {
                let Some(s) = instr.imbs.get_mut(i as usize) else {
                    return;
                };
                let Some(bp) = s.current(&self.cold_view) else {
                    return;
                };
                encode::imbalance(
                    &mut self.cold,
                    instr.exchange,
                    &instr.symbol,
                    s.depth,
                    bp,
                    h.stamps.exch_ts_ns,
                    h.stamps.recv_ts_ns,
                );
            }
            Slot::BookTicker => {
                let Some(t) = instr.last_book_ticker else {
                    return;
                };
                encode::book_ticker(&mut self.cold, instr.exchange, &instr.symbol, &t);
            }
            _ => return,
        }
        self.s.push_one(ci, &self.cold, mono, update_id);
    }

    /// Asks the book thread for a full snapshot of instrument `i` for its waiting
    /// `book_change` subscribers, unless one is already asked for. Without a request ring
    /// (or with it full) they wait for the next snapshot the venue sends.
    pub(super) fn request_snapshot(&mut self, i: usize) {
        let Some(instr) = self.instrs.get_mut(i) else {
            return;
        };
        if instr.snapshot_requested {
            return;
        }
        let Some(req) = self.requests.as_mut() else {
            return;
        };
        if req
            .ring
            .push(ShardRequest::Snapshot(InstrumentId(i as u32)))
            .is_ok()
        {
            instr.snapshot_requested = true;
            self.s.counters.snapshot_requests += 1;
            req.wakeup.notify();
        } else {
            self.s.counters.snapshot_requests_dropped += 1;
        }
    }

    /// Tells the book thread what this shard reads of instrument `i`: the slot depth its
    /// series and imbalance streams need, and whether it wants `book_change` deltas.
    pub(super) fn update_wants(&mut self, i: usize) {
        let Some(instr) = self.instrs.get_mut(i) else {
            return;
        };
        let id = InstrumentId(i as u32);
        let before = instr.depth;
        instr.depth = instr.wanted_depth().min(self.slots.max_depth());
        self.slots.want_depth(id, self.shard, instr.depth);
        self.slots
            .want_deltas(id, self.shard, !instr.book_change.is_empty());
        if instr.depth > before {
            // the slot holds fewer levels until its next write: ask for one now
            if let Some(req) = self.requests.as_mut() {
                if req.ring.push(ShardRequest::Refresh(id)).is_ok() {
                    req.wakeup.notify();
                } else {
                    self.s.counters.snapshot_requests_dropped += 1;
                }
            }
        }
    }

    /// Drops a client: its socket closes and its subscriptions go.
    pub(super) fn remove(&mut self, ci: u32) {
        drop(self.detach(ci));
    }

    /// Takes a client out of the shard (out of the poll, its subscriptions gone) and returns
    /// it with its socket still open.
    pub(super) fn detach(&mut self, ci: u32) -> Option<Client> {
        let mut c = self.s.clients.get_mut(ci as usize).and_then(Option::take)?;
        let _ = self.poll.registry().deregister(&mut c.stream);
        if c.phase == Phase::Open && c.with_latency {
            self.s.latency_clients -= 1;
        }
        let mut touched: Vec<u32> = Vec::new();
        for (si, sub) in c.subs.iter().enumerate() {
            let r = SubRef {
                client: ci,
                sub: si as u32,
            };
            let Some(instr) = self.instrs.get_mut(sub.instr as usize) else {
                continue;
            };
            let list = match sub.slot {
                Slot::Trade => &mut instr.trade,
                Slot::BookChange => &mut instr.book_change,
                Slot::BookTicker => &mut instr.book_ticker,
                Slot::DerivativeTicker => &mut instr.derivative_ticker,
                Slot::Liquidation => &mut instr.liquidation,
                Slot::Integrity => &mut instr.integrity,
                Slot::Snap(k) => &mut instr.snaps[k as usize].subs,
                Slot::Imb(k) => &mut instr.imbs[k as usize].subs,
                Slot::Bar(k) => &mut instr.bars[k as usize].subs,
                Slot::OptionSummary => &mut instr.option_summary,
            };
            if let Some(p) = list.iter().position(|x| *x == r) {
                list.remove(p);
            }
            if !touched.contains(&sub.instr) {
                touched.push(sub.instr);
            }
        }
        for i in touched {
            self.prune_streams(i as usize);
            self.update_wants(i as usize);
        }
        if c.in_closing {
            self.s.closing.retain(|&x| x != ci);
        }
        if c.in_dirty {
            self.s.dirty.retain(|&x| x != ci);
        }
        self.reread.retain(|&x| x != ci);
        self.s.free.push(ci);
        self.s.live -= 1;
        Some(c)
    }

    /// Removes snapshot series, imbalance streams and trade bar series nobody subscribes to
    /// any more.
    pub(super) fn prune_streams(&mut self, i: usize) {
        let instr = &mut self.instrs[i];
        let mut k = instr.snaps.len();
        while k > 0 {
            k -= 1;
            if !instr.snaps[k].subs.is_empty() {
                continue;
            }
            if instr.snaps[k].timer {
                self.timer_streams -= 1;
            }
            instr.snaps.swap_remove(k);
            if let Some(moved) = instr.snaps.get(k) {
                for r in &moved.subs {
                    if let Some(Some(c)) = self.s.clients.get_mut(r.client as usize) {
                        c.subs[r.sub as usize].slot = Slot::Snap(k as u32);
                    }
                }
            }
        }
        let mut k = instr.imbs.len();
        while k > 0 {
            k -= 1;
            if !instr.imbs[k].subs.is_empty() {
                continue;
            }
            instr.imbs.swap_remove(k);
            if let Some(moved) = instr.imbs.get(k) {
                for r in &moved.subs {
                    if let Some(Some(c)) = self.s.clients.get_mut(r.client as usize) {
                        c.subs[r.sub as usize].slot = Slot::Imb(k as u32);
                    }
                }
            }
        }
        let mut k = instr.bars.len();
        while k > 0 {
            k -= 1;
            if !instr.bars[k].subs.is_empty() {
                continue;
            }
            instr.bars.swap_remove(k);
            if let Some(moved) = instr.bars.get(k) {
                for r in &moved.subs {
                    if let Some(Some(c)) = self.s.clients.get_mut(r.client as usize) {
                        c.subs[r.sub as usize].slot = Slot::Bar(k as u32);
                    }
                }
            }
        }
    }
}

/// Gives a client whose upgrade asked for `/ws-replay-normalized` (nothing written to it yet)
/// to the replay API as a blocking socket; a socket that cannot be made blocking is closed.
fn hand_off_replay(
    c: Client,
    service: Arc<crate::replay_api::ReplayService>,
    claim: crate::replay_api::Claim,
    query: String,
    key: String,
) {
    if let Some(stream) = crate::metrics::into_blocking(c.stream) {
        service.ws(claim, stream, query, key);
    }
}

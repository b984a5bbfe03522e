//! Ring messages of the fan-out loop: each is encoded once and queued to its subscribers.
//! Book notices drive the snapshot series and imbalance streams from the latest-state slot;
//! book messages are `book_change` deltas and snapshots, encoded as they stream by.

use rtrb::Consumer;

use super::client::Phase;
use super::encode;
use super::server::{Fanout, LANE_CHECK_MSGS};
use super::sessions::Pick;
use super::state::InstrState;
use super::{BookNotice, FanoutMsg};
use crate::model::{BookBegin, BookEnd, Event, Exchange, Level, OptionHalf, Stamps, Trade};

/// Stamps of messages that do not come from a venue frame (integrity, timer snapshots).
const NO_STAMPS: Stamps = Stamps {
    exch_ts_ns: 0,
    recv_ts_ns: 0,
    recv_mono_ns: 0,
    push_delta_ns: 0,
    applied_delta_ns: 0,
};

/// A book message being received.
#[derive(Copy, Clone, Debug)]
pub(super) struct Current {
    pub(super) instr: usize,
    pub(super) is_snapshot: bool,
    /// Who gets it: deltas the synced subscribers, snapshots everyone or the waiting ones.
    pub(super) pick: Pick,
    pub(super) stamps: Stamps,
    /// The venue's update id of the message (`Sequence::update_id`; `withUpdateId`).
    pub(super) update_id: u64,
    /// Encode a `book_change` (it had takers when it began).
    pub(super) encode: bool,
}

impl Fanout {
    /// One turn's ring work, at most `max` messages: the trade lanes first, then the book ring
    /// in chunks of [`LANE_CHECK_MSGS`] with the lanes drained again after each, so a trade
    /// waits behind at most one chunk of L2 work. Returns how many messages were taken.
    pub(super) fn drain_all(
        &mut self,
        book: &mut Consumer<FanoutMsg>,
        lanes: &mut [Consumer<FanoutMsg>],
        max: usize,
    ) -> usize {
        let mut n = self.drain_lanes(lanes, max);
        while n < max {
            let k = self.drain(book, (max - n).min(LANE_CHECK_MSGS));
            n += k;
            n += self.drain_lanes(lanes, max.saturating_sub(n));
            if k == 0 {
                break;
            }
        }
        n
    }

    pub(super) fn drain_lanes(&mut self, lanes: &mut [Consumer<FanoutMsg>], max: usize) -> usize {
        let mut n = 0;
        for lane in lanes {
            let k = self.drain(lane, max.saturating_sub(n));
            self.s.counters.lane_msgs += k as u64;
            n += k;
        }
        n
    }

    /// Takes at most `max` messages from the ring in one chunk; returns how many.
    pub(super) fn drain(&mut self, consumer: &mut Consumer<FanoutMsg>, max: usize) -> usize {
        let n = consumer.slots().min(max);
        if n == 0 {
            return 0;
        }
        let Ok(chunk) = consumer.read_chunk(n) else {
            return 0;
        };
        let (a, b) = chunk.as_slices();
        for m in a.iter().chain(b) {
            self.on_msg(m);
        }
        chunk.commit_all();
        n
    }

    #[inline]
    pub(super) fn on_msg(&mut self, msg: &FanoutMsg) {
        self.s.counters.fanout_msgs += 1;
        match msg {
            FanoutMsg::Event(e) => self.on_event(e),
            FanoutMsg::Ticker(t) => {
                let Some(instr) = self.instrs.get(t.merged.instrument.index()) else {
                    self.s.counters.bad_fanout_msgs += 1;
                    return;
                };
                if instr.derivative_ticker.is_empty() {
                    return;
                }
                let sent = self.s.sent_ns();
                self.scratch.clear();
                encode::derivative_ticker(
                    &mut self.scratch,
                    instr.exchange,
                    &instr.symbol,
                    &t.unpack(),
                );
                self.s.deliver(
                    &instr.derivative_ticker,
                    &self.scratch,
                    false,
                    &t.merged.stamps,
                    sent,
                );
            }
            FanoutMsg::Book(n) => self.on_book(n),
            FanoutMsg::Resnapshot(id) => self.resnapshot_next = Some(*id),
            FanoutMsg::BookInvalid(id) => {
                if id.index() < self.instrs.len() {
                    self.invalidate(id.index(), crate::clock::wall_ns());
                } else {
                    self.s.counters.bad_fanout_msgs += 1;
                }
            }
            FanoutMsg::Disconnect {
                exchange,
                conn,
                last_recv_ts_ns,
            } => self.on_disconnect(*exchange, *conn, *last_recv_ts_ns),
        }
    }

    #[inline]
    pub(super) fn on_event(&mut self, event: &Event) {
        let sent = self.s.sent_ns();
        match event {
            Event::Trade(t) => {
                let Some(instr) = self.instrs.get_mut(t.instrument.index()) else {
                    self.s.counters.bad_fanout_msgs += 1;
                    return;
                };
                if !instr.trade.is_empty() {
                    self.scratch.clear();
                    encode::trade(&mut self.scratch, instr.exchange, &instr.symbol, t);
                    self.s
                        .deliver(&instr.trade, &self.scratch, false, &t.stamps, sent);
                }
                if !instr.bars.is_empty() {
                    self.trade_bars(t, sent);
                }
            }
            Event::Liquidation(l) => {
                let Some(instr) = self.instrs.get(l.instrument.index()) else {
                    self.s.counters.bad_fanout_msgs += 1;
                    return;
                };
                if instr.liquidation.is_empty() {
                    return;
                }
                self.scratch.clear();
                encode::liquidation(&mut self.scratch, instr.exchange, &instr.symbol, l);
                self.s
                    .deliver(&instr.liquidation, &self.scratch, false, &l.stamps, sent);
            }
            Event::BookTicker(t) => {
                let Some(instr) = self.instrs.get_mut(t.instrument.index()) else {
                    self.s.counters.bad_fanout_msgs += 1;
                    return;
                };
                instr.last_book_ticker = Some(*t);
                if instr.book_ticker.is_empty() {
                    return;
                }
                self.scratch.clear();
                encode::book_ticker(&mut self.scratch, instr.exchange, &instr.symbol, t);
                self.s
                    .deliver(&instr.book_ticker, &self.scratch, true, &t.stamps, sent);
            }
            // merged derivative-ticker state arrives as `FanoutMsg::Ticker`
            Event::DerivativeTicker(_) => {}
            Event::OptionHalf(h) => self.option_half(h, sent),
            Event::BookBegin(b) => self.book_begin(b),
            Event::Level(l) => self.book_level(l),
            Event::BookEnd(e) => self.book_end(e, sent),
        }
    }

    /// Takes trade `t` into its instrument's trade bar series (tardis-node
    /// `TradeBarComputable.compute`): a time bar whose bucket `t` is past goes out first, a
    /// tick or volume bar that `t` completes right after it; each after the `trade` itself.
    fn trade_bars(&mut self, t: &Trade, sent: u64) {
        let Some(instr) = self.instrs.get_mut(t.instrument.index()) else {
            return;
        };
        let InstrState {
            exchange,
            symbol,
            bars,
            ..
        } = instr;
        let st = &t.stamps;
        // the trade's `timestamp`: the venue's time, else its arrival (PROTOCOL.md section 2)
        let ts = if st.exch_ts_ns != 0 {
            (st.exch_ts_ns, false)
        } else {
            (st.recv_ts_ns, true)
        };
        for b in bars.iter_mut() {
            if b.is_done(ts.0) {
                self.scratch.clear();
                encode::trade_bar(&mut self.scratch, *exchange, symbol, b, st.recv_ts_ns);
                self.s.deliver(&b.subs, &self.scratch, false, st, sent);
                b.reset();
            }
            b.update(t.price, t.qty, t.side, ts);
            if b.is_done(ts.0) {
                self.scratch.clear();
                encode::trade_bar(&mut self.scratch, *exchange, symbol, b, st.recv_ts_ns);
                self.s.deliver(&b.subs, &self.scratch, false, st, sent);
                b.reset();
            }
        }
    }

    /// Half of an option ticker: the first is kept, the second (of the same ticker: same
    /// stamps) completes an `option_summary`. A second half without its first (the first was
    /// dropped on a full lane) is counted as a bad message.
    fn option_half(&mut self, h: &OptionHalf, sent: u64) {
        let Some(instr) = self.instrs.get_mut(h.instrument.index()) else {
            self.s.counters.bad_fanout_msgs += 1;
            return;
        };
        if instr.option_summary.is_empty() {
            instr.option_half = None;
            return;
        }
        if h.half == 0 {
            instr.option_half = Some(*h);
            return;
        }
        let first = instr.option_half.take().filter(|a| {
            a.stamps.exch_ts_ns == h.stamps.exch_ts_ns && a.stamps.recv_ts_ns == h.stamps.recv_ts_ns
        });
        let (Some(a), Some(fields)) = (first, instr.option_static.as_deref()) else {
            self.s.counters.bad_fanout_msgs += u64::from(instr.option_static.is_some());
            return;
        };
        self.scratch.clear();
        encode::option_summary(
            &mut self.scratch,
            instr.exchange,
            &instr.symbol,
            fields,
            &a,
            h,
            h.stamps.recv_ts_ns,
        );
        self.s
            .deliver(&instr.option_summary, &self.scratch, false, &h.stamps, sent);
    }

    pub(super) fn book_begin(&mut self, b: &BookBegin) {
        if let Some(cur) = self.current.take() {
            // the previous message never ended: its deltas are incomplete
            self.s.counters.bad_fanout_msgs += 1;
            self.invalidate(cur.instr, crate::clock::wall_ns());
        }
        let i = b.instrument.index();
        let targeted = self.resnapshot_next.take() == Some(b.instrument) && b.is_snapshot;
        let Some(instr) = self.instrs.get(i) else {
            self.s.counters.bad_fanout_msgs += 1;
            return;
        };
        let pick = match (b.is_snapshot, targeted) {
            (true, true) => Pick::Waiting,
            (true, false) => Pick::Snapshot,
            (false, _) => Pick::Synced,
        };
        let encode = self.s.any_picked(&instr.book_change, pick);
        if encode {
            self.writer.begin();
        }
        self.current = Some(Current {
            instr: i,
            is_snapshot: b.is_snapshot,
            pick,
            stamps: b.stamps,
            update_id: b.seq.update_id(),
            encode,
        });
    }

    #[inline]
    pub(super) fn book_level(&mut self, l: &Level) {
        let Some(cur) = self.current.as_ref() else {
            self.s.counters.bad_fanout_msgs += 1;
            return;
        };
        if cur.encode {
            self.writer.level(l);
        }
    }

    pub(super) fn book_end(&mut self, e: &BookEnd, sent: u64) {
        let Some(cur) = self.current.take() else {
            self.s.counters.bad_fanout_msgs += 1;
            return;
        };
        if e.instrument.index() != cur.instr {
            self.s.counters.bad_fanout_msgs += 1;
            self.invalidate(cur.instr, crate::clock::wall_ns());
            return;
        }
        if e.aborted {
            self.invalidate(cur.instr, crate::clock::wall_ns());
            return;
        }
        let instr = &mut self.instrs[cur.instr];
        if cur.is_snapshot {
            instr.synced = true;
            instr.snapshot_requested = false;
        }
        if cur.encode {
            let st = cur.stamps;
            self.scratch.clear();
            self.writer.finish(
                &mut self.scratch,
                instr.exchange,
                &instr.symbol,
                cur.is_snapshot,
                st.exch_ts_ns,
                st.recv_ts_ns,
            );
            let n = self.s.deliver_to(
                &instr.book_change,
                &self.scratch,
                true,
                &st,
                sent,
                cur.pick,
                cur.update_id,
            );
            if cur.pick == Pick::Waiting {
                self.s.counters.resnapshots_sent += n;
            }
        }
    }

    /// A new state in the slot of `n.instrument`: the snapshot series and imbalance streams
    /// read it (the latest version, which may be newer than the notice's).
    pub(super) fn on_book(&mut self, n: &BookNotice) {
        // before the read: the book thread's next publish sends a new notice
        self.slots.take_notice(n.instrument, self.shard);
        let Some(instr) = self.instrs.get_mut(n.instrument.index()) else {
            self.s.counters.bad_fanout_msgs += 1;
            return;
        };
        // the slot's version, not the notice's: a notice means "read the latest", and it
        // may stand for later versions coalesced into it after an earlier read took its own
        let latest = self.slots.version(n.instrument);
        if latest <= instr.seen_version {
            // an earlier read already took this state
            return;
        }
        if instr.snaps.is_empty() && instr.imbs.is_empty() {
            instr.seen_version = latest;
            instr.synced = true;
            return;
        }
        self.s.counters.slot_read_retries +=
            u64::from(self.slots.read(n.instrument, instr.depth, &mut self.view));
        let h = self.view.header;
        // after the read: the state read may be newer than the notice
        let sent = self.s.sent_ns();
        self.s.counters.book_states_conflated += h.version.saturating_sub(n.version);
        instr.seen_version = h.version;
        if !h.synced {
            // a BookInvalid follows on the ring
            return;
        }
        if usize::from(h.depth) < instr.depth {
            // written before a deeper series came: the refresh's notice follows
            return;
        }
        instr.synced = true;
        let InstrState {
            exchange,
            symbol,
            snaps,
            imbs,
            ..
        } = instr;
        let st = h.stamps;
        let ts = h.ts_ns();
        for s in snaps.iter_mut() {
            if let Some(t) = s.before_change(ts) {
                self.scratch.clear();
                s.encode(&mut self.scratch, *exchange, symbol, t, st.recv_ts_ns);
                let id = s.top.update_id;
                self.s
                    .deliver_to(&s.subs, &self.scratch, true, &st, sent, Pick::All, id);
            }
            if let Some(t) = s.after_change(&self.view, ts) {
                self.scratch.clear();
                s.encode(&mut self.scratch, *exchange, symbol, t, st.recv_ts_ns);
                let id = s.top.update_id;
                self.s
                    .deliver_to(&s.subs, &self.scratch, true, &st, sent, Pick::All, id);
            }
        }
        for m in imbs.iter_mut() {
            if let Some(bp) = m.after_change(&self.view) {
                self.scratch.clear();
                encode::imbalance(
                    &mut self.scratch,
                    *exchange,
                    symbol,
                    m.depth,
                    bp,
                    st.exch_ts_ns,
                    st.recv_ts_ns,
                );
                self.s.deliver(&m.subs, &self.scratch, true, &st, sent);
            }
        }
    }

    /// The book of instrument `i` lost sync: reset it and tell `withIntegrityMessages`
    /// clients (once per loss: only when it was synced).
    pub(super) fn invalidate(&mut self, i: usize, now_ns: i64) {
        if self.current.is_some_and(|c| c.instr == i) {
            self.current = None;
        }
        let Some(instr) = self.instrs.get_mut(i) else {
            return;
        };
        // deltas stop until the next snapshot
        for r in &instr.book_change {
            if let Some(Some(c)) = self.s.clients.get_mut(r.client as usize) {
                if let Some(sub) = c.subs.get_mut(r.sub as usize) {
                    sub.awaiting = true;
                }
            }
        }
        if !instr.invalidate() || instr.integrity.is_empty() {
            return;
        }
        self.scratch.clear();
        encode::book_invalid(&mut self.scratch, instr.exchange, &instr.symbol, now_ns);
        let sent = self.s.sent_ns();
        let n = self
            .s
            .deliver(&instr.integrity, &self.scratch, false, &NO_STAMPS, sent);
        self.s.counters.book_invalid_sent += n;
    }

    /// Upstream connection `conn` dropped: `disconnect` to the clients that asked and take
    /// something of its books, then those books reset. An exchange served by several
    /// connections (`bybit`: linear and inverse) keeps the other connections' books and
    /// clients untouched.
    #[cold]
    pub(super) fn on_disconnect(&mut self, exchange: Exchange, conn: u32, last_recv_ts_ns: i64) {
        let now = crate::clock::wall_ns();
        let local = if last_recv_ts_ns != 0 {
            last_recv_ts_ns
        } else {
            now
        };
        let instrs = &self.instrs;
        let hit = |i: usize| {
            instrs
                .get(i)
                .is_some_and(|s| s.exchange == exchange && (s.conn == conn || s.conn == u32::MAX))
        };
        for ci in 0..self.s.clients.len() as u32 {
            let Some(c) = self.s.get(ci) else { continue };
            if c.phase != Phase::Open
                || !c.disconnects.iter().any(|(e, _)| *e == exchange)
                || !c.subs.iter().any(|s| hit(s.instr as usize))
            {
                continue;
            }
            let list = std::mem::take(&mut c.disconnects);
            for (e, symbols) in &list {
                if *e == exchange {
                    self.cold.clear();
                    encode::disconnect(&mut self.cold, exchange, local, symbols.as_deref());
                    if self.s.push_one(ci, &self.cold, 0, 0) {
                        self.s.counters.disconnects_sent += 1;
                    }
                }
            }
            if let Some(c) = self.s.get(ci) {
                c.disconnects = list;
            }
        }
        for i in 0..self.instrs.len() {
            let s = &self.instrs[i];
            if s.exchange == exchange && (s.conn == conn || s.conn == u32::MAX) {
                self.invalidate(i, now);
                // tardis resets every computable of the exchange on a disconnect
                for b in &mut self.instrs[i].bars {
                    b.reset();
                }
            }
        }
    }

    /// `timerSnapshots`: each series due emits the book as it stands, stamped with the
    /// boundary.
    pub(super) fn timer_snapshots(&mut self, wall: i64) {
        let mut next = i64::MAX;
        let sent = self.s.sent_ns();
        for i in 0..self.instrs.len() {
            let mut read = false;
            let InstrState {
                exchange,
                symbol,
                synced,
                snaps,
                depth,
                ..
            } = &mut self.instrs[i];
            for s in snaps.iter_mut().filter(|s| s.timer) {
                if let Some(ts) = s.timer_due(wall) {
                    if *synced && !self.s.any_takes(&s.subs) {
                        // every subscriber is conflating: no refresh, no encoding
                        self.s.counters.timer_snapshots_skipped += 1;
                        self.s.conflate_all(&s.subs);
                    } else if *synced {
                        if !read {
                            read = true;
                            let id = crate::model::InstrumentId(i as u32);
                            self.s.counters.slot_read_retries +=
                                u64::from(self.slots.read(id, *depth, &mut self.view));
                        }
                        let h = self.view.header;
                        // a slot written before this depth was wanted: its refresh comes
                        if h.synced && usize::from(h.depth) >= *depth {
                            s.refresh(&self.view);
                            self.scratch.clear();
                            s.encode(&mut self.scratch, *exchange, symbol, ts, wall);
                            let id = s.top.update_id;
                            self.s.deliver_to(
                                &s.subs,
                                &self.scratch,
                                true,
                                &NO_STAMPS,
                                sent,
                                Pick::All,
                                id,
                            );
                        }
                    }
                }
                next = next.min(s.next_due_ns);
            }
        }
        self.next_timer_ns = next;
    }
}

//! One connection's synthetic flow: the topics it subscribed (read from the recorded
//! simulator's [`Session`], which answers the requests), the markets behind them, Poisson
//! arrivals per class, and the WebSocket loop that sends each wake-up's due frames as one
//! batch.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tungstenite::error::ProtocolError;
use tungstenite::protocol::CloseFrame;
use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::{Message, Utf8Bytes, WebSocket};

use super::market::{Market, Rng};
use super::pacing::{Arrivals, Class, class_rates};
use super::{Synthetic, binance, bybit, deribit, okx};
use crate::sim::fault::{ConnFaults, FaultLog, Turn, before_turn};
use crate::sim::session::Session;
use crate::sim::tls::Stream;
use crate::venue::Feed;

/// Derivative-ticker flavours.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Tick {
    /// Binance `markPriceUpdate`.
    BinanceMark,
    /// Binance `24hrTicker`.
    Binance24h,
    /// Bybit `tickers`.
    Bybit,
    /// OKX `tickers`.
    OkxTickers,
    /// OKX `open-interest`.
    OkxOpenInterest,
    /// OKX `mark-price`.
    OkxMarkPrice,
    /// OKX `funding-rate`.
    OkxFunding,
    /// OKX `index-tickers`.
    OkxIndex,
    /// Deribit `ticker`.
    Deribit,
}

/// What a topic carries.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Kind {
    /// The L2 book: a snapshot on subscribe (except Binance), then deltas.
    Depth,
    /// Trades (`raw_trade`: Binance `@trade` rather than `@aggTrade`).
    Trades {
        /// Binance `@trade`.
        raw_trade: bool,
    },
    /// The venue's best bid/offer feed.
    BookTicker,
    /// A derivative ticker.
    Ticker(Tick),
    /// Liquidations.
    Liquidations,
}

/// One subscribed topic.
#[derive(Clone, Debug)]
pub struct Topic {
    /// The canonical key the client subscribed.
    pub key: String,
    /// What it carries.
    pub kind: Kind,
    /// Instruments (indexes into the feed's specs) it carries.
    pub insts: Vec<usize>,
    /// A first frame was sent (Bybit tickers: snapshot first, then deltas).
    pub started: bool,
}

/// What a topic key of `feed` carries, or `None` for topics the simulator does not serve.
fn parse_topic(feed: Feed, key: &str, syn: &Synthetic, idx: usize) -> Option<Topic> {
    let specs = syn.feeds[idx].specs;
    let (kind, insts) = match feed {
        Feed::BinanceFutures | Feed::BinanceDelivery | Feed::BinanceSpot => {
            let (k, i) = binance::parse_topic(feed, key, specs)?;
            (k, vec![i])
        }
        Feed::BybitLinear | Feed::BybitInverse | Feed::BybitSpot => {
            let (k, i) = bybit::parse_topic(feed, key, specs)?;
            (k, vec![i])
        }
        Feed::Okx => okx::parse_topic(key, specs)?,
        Feed::Deribit => {
            let (k, i) = deribit::parse_topic(key, specs)?;
            (k, vec![i])
        }
    };
    Some(Topic {
        key: key.to_string(),
        kind,
        insts,
        started: false,
    })
}

/// The classes a topic's frames count in.
fn classes_of(feed: Feed, kind: Kind) -> &'static [Class] {
    match kind {
        Kind::Depth => &[Class::L2],
        // Deribit liquidations are trades flagged `liquidation`
        Kind::Trades { .. } if feed == Feed::Deribit => &[Class::Trade, Class::Liquidation],
        Kind::Trades { .. } => &[Class::Trade],
        Kind::BookTicker | Kind::Ticker(_) => &[Class::Ticker],
        Kind::Liquidations => &[Class::Liquidation],
    }
}

/// Counters of one synthetic WebSocket loop, added to the server's totals.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LoopCounters {
    /// Binary frames received (ignored).
    pub binary_frames: u64,
    /// The client was dropped (protocol error or not reading).
    pub dropped: bool,
}

/// One connection's synthetic flow.
pub struct SynthSession<'a> {
    syn: &'a Synthetic,
    idx: usize,
    feed: Feed,
    raw: bool,
    markets: Vec<Arc<Mutex<Market>>>,
    topics: Vec<Topic>,
    /// Per class: `(topic index)` entries.
    classes: [Vec<usize>; 4],
    /// Keys already found unknown (counted once).
    unknown: Vec<String>,
    /// Topics this session counts in the global per-class totals.
    counted: [u64; 4],
    arrivals: [Arrivals; 4],
    rng: Rng,
    scratch: Vec<u8>,
    checksum_scratch: Vec<u8>,
    /// Frames sent by this session.
    pub frames_sent: u64,
}

fn lock(m: &Mutex<Market>) -> MutexGuard<'_, Market> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl<'a> SynthSession<'a> {
    /// A session of feed `idx` of `syn`; `raw` sends Binance payloads without the
    /// combined-stream wrapper.
    pub fn new(syn: &'a Synthetic, idx: usize, raw: bool) -> SynthSession<'a> {
        let feed = syn.feeds[idx].feed;
        SynthSession {
            syn,
            idx,
            feed,
            raw,
            markets: syn.markets_for(idx),
            topics: Vec::new(),
            classes: Default::default(),
            unknown: Vec::new(),
            counted: [0; 4],
            arrivals: Default::default(),
            rng: Rng::new(syn.opts.seed ^ 0x5EED ^ idx as u64),
            scratch: Vec::with_capacity(64 * 1024),
            checksum_scratch: Vec::with_capacity(4096),
            frames_sent: 0,
        }
    }

    /// The topics served (keys), in subscription order.
    pub fn topic_keys(&self) -> impl Iterator<Item = &str> {
        self.topics.iter().map(|t| t.key.as_str())
    }

    /// Brings the served topics in line with `keys` (what the client has subscribed now).
    /// Book topics that are new (or subscribed again) get a fresh snapshot, pushed to `out`
    /// (Binance books start from the REST snapshot instead).
    pub fn sync_topics(&mut self, keys: &[String], out: &mut Vec<Utf8Bytes>) {
        let mut next: Vec<Topic> = Vec::with_capacity(keys.len());
        for key in keys {
            if let Some(t) = self.topics.iter().find(|t| &t.key == key) {
                next.push(t.clone());
                continue;
            }
            let Some(topic) = parse_topic(self.feed, key, self.syn, self.idx) else {
                if !self.unknown.contains(key) {
                    self.unknown.push(key.clone());
                    self.syn.unknown_topics.fetch_add(1, Ordering::Relaxed);
                }
                continue;
            };
            if topic.kind == Kind::Depth {
                self.scratch.clear();
                let m = lock(&self.markets[topic.insts[0]]);
                match self.feed {
                    Feed::BybitLinear | Feed::BybitInverse | Feed::BybitSpot => {
                        bybit::snapshot(&mut self.scratch, &topic, &m)
                    }
                    Feed::Okx => {
                        okx::snapshot(&mut self.scratch, &topic, &m, &mut self.checksum_scratch)
                    }
                    Feed::Deribit => deribit::snapshot(&mut self.scratch, &topic, &m),
                    _ => {}
                }
                drop(m);
                if !self.scratch.is_empty() {
                    out.push(self.take_frame());
                }
            }
            next.push(topic);
        }
        self.topics = next;
        let mut classes: [Vec<usize>; 4] = Default::default();
        for (i, t) in self.topics.iter().enumerate() {
            for c in classes_of(self.feed, t.kind) {
                classes[*c as usize].push(i);
            }
        }
        self.classes = classes;
        self.recount();
    }

    fn recount(&mut self) {
        for c in 0..4 {
            let now = self.classes[c].len() as u64;
            let was = self.counted[c];
            if now > was {
                self.syn.class_topics[c].fetch_add(now - was, Ordering::Relaxed);
            } else if was > now {
                self.syn.class_topics[c].fetch_sub(was - now, Ordering::Relaxed);
            }
            self.counted[c] = now;
        }
    }

    fn take_frame(&mut self) -> Utf8Bytes {
        self.frames_sent += 1;
        self.syn.feeds[self.idx]
            .frames_sent
            .fetch_add(1, Ordering::Relaxed);
        // every writer emits ASCII JSON
        let text = String::from_utf8_lossy(&self.scratch).into_owned();
        Utf8Bytes::from(text)
    }

    /// The class rates of this session at `now`.
    fn rates(&self, now: Instant) -> [f64; 4] {
        let global = std::array::from_fn(|c| self.syn.class_topics[c].load(Ordering::Relaxed));
        let l2 = self.syn.schedule.map_or(1.0, |s| s.l2_factor(now));
        class_rates(self.syn.opts.rate_per_s, l2, global, self.counted)
    }

    /// The earliest scheduled arrival.
    pub fn next_due(&self) -> Option<Instant> {
        self.arrivals.iter().filter_map(Arrivals::next_due).min()
    }

    /// Generates the frames due at `now`, at most `max_frames`, calling `send` with each.
    /// Returns how many were generated.
    pub fn generate(
        &mut self,
        now: Instant,
        max_frames: usize,
        mut send: impl FnMut(Utf8Bytes, Class),
    ) -> usize {
        let rates = self.rates(now);
        let mut n = 0;
        let (mut behind, mut skipped) = (0u64, 0u64);
        for c in Class::ALL {
            let ci = c as usize;
            while n < max_frames {
                let due = self.arrivals[ci].take(now, rates[ci], &mut self.rng, &mut skipped);
                if !due.send {
                    break;
                }
                if due.behind {
                    behind += 1;
                }
                let list = &self.classes[ci];
                if list.is_empty() {
                    break;
                }
                let ti = list[self.rng.below(list.len() as u64) as usize];
                let frame = self.write_frame(ti, c);
                send(frame, c);
                n += 1;
            }
        }
        if behind > 0 {
            self.syn.frames_behind.fetch_add(behind, Ordering::Relaxed);
        }
        if skipped > 0 {
            self.syn
                .frames_skipped
                .fetch_add(skipped, Ordering::Relaxed);
        }
        n
    }

    fn write_frame(&mut self, ti: usize, class: Class) -> Utf8Bytes {
        self.scratch.clear();
        let topic = &mut self.topics[ti];
        let inst = if topic.insts.len() == 1 {
            topic.insts[0]
        } else {
            topic.insts[self.rng.below(topic.insts.len() as u64) as usize]
        };
        let fs = &self.syn.feeds[self.idx];
        let mut m = lock(&self.markets[inst]);
        match self.feed {
            Feed::BinanceFutures | Feed::BinanceDelivery | Feed::BinanceSpot => {
                binance::write(&mut self.scratch, fs, self.raw, topic, &mut m, class)
            }
            Feed::BybitLinear | Feed::BybitInverse | Feed::BybitSpot => {
                bybit::write(&mut self.scratch, fs, topic, &mut m, class)
            }
            Feed::Okx => okx::write(
                &mut self.scratch,
                fs,
                topic,
                &mut m,
                class,
                &mut self.checksum_scratch,
            ),
            Feed::Deribit => deribit::write(&mut self.scratch, fs, topic, &mut m, class),
        }
        if let (Some(t), Class::L2, Kind::Depth) = (&self.syn.truth, class, topic.kind) {
            t.record(&m);
        }
        drop(m);
        self.take_frame()
    }
}

impl Drop for SynthSession<'_> {
    fn drop(&mut self) {
        self.classes = Default::default();
        self.recount();
    }
}

/// Longest sleep of the loop.
const IDLE_POLL: Duration = Duration::from_millis(5);
/// Shortest sleep between batches: frames due meanwhile go out together.
const MIN_TICK: Duration = Duration::from_micros(200);
/// Frames generated per batch before client frames are read again.
const BATCH_FRAMES: usize = 2048;
/// A client that accepts no data for this long is dropped.
const STALL_LIMIT: Duration = Duration::from_secs(30);
/// Time given to a closing handshake.
const CLOSE_GRACE: Duration = Duration::from_secs(1);

fn would_block(e: &tungstenite::Error) -> bool {
    matches!(e, tungstenite::Error::Io(io) if io.kind() == std::io::ErrorKind::WouldBlock)
}

/// The WebSocket loop of a synthetic session on a non-blocking socket: read client frames
/// (answered by `s`, topics then synced into `syn`), generate and write the due frames as one
/// batch, flush once, sleep until the next arrival (at least [`MIN_TICK`], at most 5 ms).
/// While the socket is full no frame is generated (arrivals fall behind and are counted).
pub(crate) fn run_ws(
    stop: &AtomicBool,
    ws: &mut WebSocket<Stream>,
    s: &mut Session<'_>,
    syn: &mut SynthSession<'_>,
    mut faults: Option<(&mut ConnFaults, &FaultLog)>,
) -> LoopCounters {
    let mut counters = LoopCounters::default();
    let mut pending = false;
    let mut closing: Option<Instant> = None;
    let mut blocked_since: Option<Instant> = None;
    let mut replies: Vec<Utf8Bytes> = Vec::new();
    loop {
        let now = Instant::now();
        if closing.is_none() && stop.load(Ordering::Relaxed) {
            closing = Some(now);
            let frame = CloseFrame {
                code: CloseCode::Away,
                reason: "simulator stopping".into(),
            };
            if let Err(e) = ws.close(Some(frame)) {
                if !would_block(&e) {
                    break;
                }
            }
        }
        if let Some((f, log)) = faults.as_mut() {
            match before_turn(f, log, ws, now, &mut closing) {
                Turn::Go => {}
                Turn::Skip => continue,
                Turn::End => return counters,
            }
        }
        let mut changed = false;
        let reads_paused = faults.as_ref().is_some_and(|(f, _)| f.reads_paused(now));
        loop {
            if reads_paused {
                break;
            }
            match ws.read() {
                Ok(Message::Text(text)) => {
                    if closing.is_some() {
                        continue;
                    }
                    replies.extend(s.on_text(text.as_str(), now));
                    // after each request: an unsubscribe and a subscribe read in one turn
                    // (a resubscribe) must still send the fresh snapshot
                    syn.sync_topics(s.topics(), &mut replies);
                    changed = true;
                }
                Ok(Message::Binary(_)) => counters.binary_frames += 1,
                Ok(_) => {}
                Err(e) if would_block(&e) => break,
                Err(tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed) => {
                    return counters;
                }
                Err(tungstenite::Error::Io(_))
                | Err(tungstenite::Error::Protocol(ProtocolError::ResetWithoutClosingHandshake)) => {
                    return counters;
                }
                Err(_) => {
                    counters.dropped = true;
                    return counters;
                }
            }
        }
        if changed || (syn.topics.is_empty() && !s.topics().is_empty()) {
            // replies first, then the snapshots of new book topics
            syn.sync_topics(s.topics(), &mut replies);
        }
        for r in replies.drain(..) {
            match ws.write(Message::Text(r)) {
                Ok(()) => {}
                Err(e) if would_block(&e) => pending = true,
                Err(_) => return counters,
            }
        }
        if let Some(since) = closing {
            match ws.flush() {
                Err(e) if !would_block(&e) => break,
                _ => {}
            }
            if now.duration_since(since) > CLOSE_GRACE {
                break;
            }
            std::thread::sleep(Duration::from_millis(2));
            continue;
        }
        if let Some(hb) = s.heartbeat_due(now) {
            match ws.write(Message::Text(hb)) {
                Ok(()) => {}
                Err(e) if would_block(&e) => pending = true,
                Err(_) => return counters,
            }
        }
        let mut wake = now + IDLE_POLL;
        let may_send = match faults.as_mut() {
            Some((f, _)) => f.may_send(now),
            None => true,
        };
        if !pending && may_send {
            let mut failed = false;
            let mut write = |f: Utf8Bytes| {
                if failed {
                    return;
                }
                match ws.write(Message::Text(f)) {
                    Ok(()) => {}
                    Err(e) if would_block(&e) => pending = true,
                    Err(_) => failed = true,
                }
            };
            let n = match faults.as_mut() {
                Some((f, log)) => {
                    let n = syn.generate(now, BATCH_FRAMES, |frame, class| {
                        f.on_frame(frame, class == Class::L2, log, &mut write)
                    });
                    if let Some(h) = f.take_held() {
                        write(h);
                    }
                    n
                }
                None => syn.generate(now, BATCH_FRAMES, |frame, _| write(frame)),
            };
            if failed {
                return counters;
            }
            if n >= BATCH_FRAMES {
                wake = now;
            }
        }
        match ws.flush() {
            Ok(()) => {
                pending = false;
                blocked_since = None;
            }
            Err(e) if would_block(&e) => pending = true,
            Err(_) => return counters,
        }
        if pending {
            let since = *blocked_since.get_or_insert(now);
            if now.duration_since(since) > STALL_LIMIT {
                counters.dropped = true;
                return counters;
            }
            wake = now + Duration::from_millis(1);
        }
        if let Some(t) = syn.next_due() {
            wake = wake.min(t);
        }
        if let Some(h) = s.next_heartbeat() {
            wake = wake.min(h);
        }
        let after = Instant::now();
        if wake > after {
            std::thread::sleep((wake - after).clamp(MIN_TICK, IDLE_POLL));
        } else if !pending && wake < now {
            std::thread::sleep(MIN_TICK);
        }
    }
    counters
}

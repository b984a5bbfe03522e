//! Unit tests of the book thread (`mod.rs`, `resync.rs`).

use super::*;
use crate::model::{Decimal, Sequence, Side, Trade};
use crate::pipeline::ring;
use crate::pipeline::slot::SlotView;
use crossbeam_channel::Receiver;

const A: InstrumentId = InstrumentId(0);
const B: InstrumentId = InstrumentId(1);

fn book_message(id: InstrumentId, snapshot: bool, update_id: u64, levels: u32) -> Vec<IngestItem> {
    let mut v = vec![IngestItem::Event(Event::BookBegin(BookBegin {
        instrument: id,
        is_snapshot: snapshot,
        seq: Sequence::Bybit {
            update_id,
            cross_seq: update_id,
        },
        stamps: Stamps::default(),
    }))];
    for i in 0..levels {
        v.push(IngestItem::Event(Event::Level(Level {
            side: if i % 2 == 0 {
                BookSide::Bid
            } else {
                BookSide::Ask
            },
            price: Decimal::new(
                if i % 2 == 0 {
                    100 - i as i64
                } else {
                    101 + i as i64
                },
                0,
            ),
            qty: Decimal::new(update_id as i64, 0),
        })));
    }
    v.push(IngestItem::Event(Event::BookEnd(BookEnd {
        instrument: id,
        checksum: None,
        aborted: false,
    })));
    v
}

fn trade(id: InstrumentId) -> IngestItem {
    IngestItem::Event(Event::Trade(Trade {
        instrument: id,
        id: None,
        price: Decimal::new(1, 0),
        qty: Decimal::new(1, 0),
        side: Side::Buy,
        stamps: Stamps::default(),
    }))
}

struct Rig {
    ingest: RingProducer<IngestItem>,
    rest_ring: RingProducer<IngestItem>,
    out: Consumer<FanoutMsg>,
    out_stats: Arc<crate::pipeline::QueueStats>,
    rest: Receiver<RestRequest>,
    control: Receiver<IngestControl>,
    stats: Arc<CachePadded<BookThreadStats>>,
    thread: std::thread::JoinHandle<BookEngine>,
    wakeup: Arc<Wakeup>,
    slots: Arc<BookSlots>,
    requests: Option<rtrb::Producer<ShardRequest>>,
}

/// Two books A and B on connection 0 of Bybit; `rest_books` makes them REST-seeded. The one
/// shard takes every delta (as an external fan-out does).
fn rig(out_slots: usize, rest_books: bool) -> Rig {
    rig_with(
        out_slots,
        rest_books,
        crate::config::ResyncConfig::default(),
    )
}

fn rig_with(out_slots: usize, rest_books: bool, policy: crate::config::ResyncConfig) -> Rig {
    rig_full(out_slots, rest_books, policy, true)
}

/// A shard that takes deltas only where it says so in the slots, and sends requests.
fn rig_wanting() -> Rig {
    rig_full(1024, false, crate::config::ResyncConfig::default(), false)
}

fn rig_full(
    out_slots: usize,
    rest_books: bool,
    policy: crate::config::ResyncConfig,
    all_deltas: bool,
) -> Rig {
    let mut engine = BookEngine::new();
    for id in [A, B] {
        engine.register(id, crate::venue::bybit::check_sequence, None, rest_books);
    }
    let (ingest, ingest_rx, _) = ring("ingest", 1024);
    let (rest_ring, rest_rx, _) = ring("rest", 1024);
    let (out_tx, out, out_stats) = ring("fanout", out_slots);
    let (rest_tx, rest) = crossbeam_channel::bounded(16);
    let (control_tx, control) = crossbeam_channel::bounded(16);
    let stats = Arc::new(CachePadded::new(BookThreadStats::default()));
    let wakeup = Arc::new(Wakeup::new());
    let topo = Topology {
        conn_of: vec![Some(0), Some(0)],
        rest_book: vec![rest_books; 2],
        conn_exchanges: vec![vec![Exchange::Bybit]],
        conn_books: vec![vec![A, B]],
    };
    let slots = Arc::new(BookSlots::new(2, 4, 1));
    let (req_tx, req_rx) = rtrb::RingBuffer::new(16);
    let shard = if all_deltas {
        ShardOut::new(out_tx, None).with_all_deltas()
    } else {
        ShardOut::new(out_tx, None).with_requests(req_rx)
    };
    let t = BookThread::new(
        engine,
        vec![Input::new(ingest_rx, Some(0)), Input::new(rest_rx, None)],
        vec![shard],
        slots.clone(),
        WaitStrategy::Backoff,
        wakeup.clone(),
        topo,
        rest_tx,
        vec![control_tx],
        stats.clone(),
    )
    .with_resync_policy(policy);
    let thread = std::thread::spawn(move || t.run());
    Rig {
        ingest,
        rest_ring,
        out,
        out_stats,
        rest,
        control,
        stats,
        thread,
        wakeup,
        slots,
        requests: (!all_deltas).then_some(req_tx),
    }
}

impl Rig {
    fn send(&mut self, items: &[IngestItem]) {
        for it in items {
            self.ingest.push(*it).unwrap();
        }
        self.wakeup.notify();
    }

    /// Waits (at most 5 s) until the book thread has taken everything sent on the ingest
    /// ring, so that what is pushed next on another ring is seen after it.
    fn wait_ingest_drained(&self) {
        let until = std::time::Instant::now() + Duration::from_secs(5);
        while self.ingest.slots() < 1024 && std::time::Instant::now() < until {
            std::thread::sleep(Duration::from_millis(1));
        }
        assert_eq!(
            self.ingest.slots(),
            1024,
            "book thread did not drain the ingest ring"
        );
    }

    /// Pops what the book thread published until `done` holds of it (at most 5 s), taking
    /// each slot notice as shard 0 does ([`BookSlots::take_notice`]).
    fn take_until(&mut self, mut done: impl FnMut(&[FanoutMsg]) -> bool) -> Vec<FanoutMsg> {
        let mut msgs = Vec::new();
        let until = std::time::Instant::now() + Duration::from_secs(5);
        while !done(&msgs) {
            assert!(std::time::Instant::now() < until, "{msgs:?}");
            while let Ok(m) = self.out.pop() {
                if let FanoutMsg::Book(n) = m {
                    self.slots.take_notice(n.instrument, 0);
                }
                msgs.push(m);
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        msgs
    }

    fn request(&mut self, r: ShardRequest) {
        self.requests.as_mut().unwrap().push(r).unwrap();
        self.wakeup.notify();
    }

    fn finish(self) -> (BookEngine, Vec<FanoutMsg>, Rig2) {
        let Rig {
            ingest,
            rest_ring,
            mut out,
            out_stats,
            rest,
            control,
            stats,
            thread,
            ..
        } = self;
        drop(ingest);
        drop(rest_ring);
        let engine = thread.join().unwrap();
        let msgs = std::iter::from_fn(|| out.pop().ok()).collect();
        (
            engine,
            msgs,
            Rig2 {
                rest,
                control,
                stats,
                out_stats,
            },
        )
    }
}

struct Rig2 {
    rest: Receiver<RestRequest>,
    control: Receiver<IngestControl>,
    stats: Arc<CachePadded<BookThreadStats>>,
    out_stats: Arc<crate::pipeline::QueueStats>,
}

/// What was published, without the slot notices (see [`kinds_with_notices`]).
fn kinds(msgs: &[FanoutMsg]) -> Vec<String> {
    kinds_with_notices(msgs)
        .into_iter()
        .filter(|k| !k.starts_with("notice"))
        .collect()
}

fn kinds_with_notices(msgs: &[FanoutMsg]) -> Vec<String> {
    msgs.iter()
        .filter_map(|m| match m {
            FanoutMsg::Event(Event::BookBegin(b)) => Some(format!(
                "{}{}",
                if b.is_snapshot { "snap" } else { "delta" },
                b.instrument.0
            )),
            FanoutMsg::Event(Event::Trade(t)) => Some(format!("trade{}", t.instrument.0)),
            FanoutMsg::BookInvalid(id) => Some(format!("invalid{}", id.0)),
            FanoutMsg::Book(n) => Some(format!("notice{}", n.instrument.0)),
            FanoutMsg::Resnapshot(id) => Some(format!("resnapshot{}", id.0)),
            FanoutMsg::Disconnect { exchange, .. } => Some(format!("disconnect-{}", exchange.id())),
            _ => None,
        })
        .collect()
}

#[test]
fn a_lost_delta_resyncs_that_book_alone() {
    let mut r = rig(1024, false);
    r.send(&[IngestItem::Connected]);
    r.send(&book_message(A, true, 10, 4));
    r.send(&book_message(B, true, 20, 4));
    r.send(&[IngestItem::Lost(A)]);
    r.send(&book_message(B, false, 21, 2));
    r.send(&book_message(A, false, 11, 2)); // A is resyncing: not applied, not published
    r.send(&[trade(A)]);
    let (engine, msgs, rest) = r.finish();
    assert_eq!(
        kinds(&msgs),
        ["snap0", "snap1", "invalid0", "delta1", "trade0"]
    );
    assert_eq!(
        engine.state(A),
        Some(SyncState::Resyncing(ResyncReason::DroppedDelta))
    );
    assert_eq!(engine.state(B), Some(SyncState::Synced));
    // a WebSocket-snapshot book: the ingest thread resubscribes it
    assert_eq!(rest.control.try_recv(), Ok(IngestControl::Resubscribe(A)));
    assert!(rest.control.try_recv().is_err());
    assert!(rest.rest.try_recv().is_err());
    assert_eq!(rest.stats.invalidations.load(Ordering::Relaxed), 1);
    assert_eq!(rest.stats.trades.load(Ordering::Relaxed), 1);
}

#[test]
fn truncated_messages_are_discarded_and_counted() {
    let mut r = rig(1024, false);
    r.send(&[IngestItem::Connected]);
    let snap = book_message(A, true, 10, 4);
    r.send(&snap[..3]); // begin + 2 levels, then the rest never comes
    r.send(&[trade(B)]);
    r.send(&snap[3..]); // orphan levels and end
    r.send(&book_message(B, true, 1, 2));
    let (engine, msgs, rest) = r.finish();
    assert_eq!(kinds(&msgs), ["trade1", "snap1"]);
    assert_eq!(engine.state(A), Some(SyncState::AwaitingSnapshot));
    assert!(rest.stats.truncated_messages.load(Ordering::Relaxed) >= 2);
}

#[test]
fn disconnect_comes_before_book_invalid_and_waits_for_reconnect() {
    let mut r = rig(1024, false);
    r.send(&[IngestItem::Connected]);
    r.send(&book_message(A, true, 10, 4));
    r.send(&[IngestItem::Disconnected { last_recv_ts_ns: 5 }]);
    r.send(&[IngestItem::Connected]);
    r.send(&book_message(A, true, 1, 2));
    let (engine, msgs, rest) = r.finish();
    assert_eq!(
        kinds(&msgs),
        ["snap0", "disconnect-bybit", "invalid0", "snap0"]
    );
    assert!(msgs.contains(&FanoutMsg::Disconnect {
        exchange: Exchange::Bybit,
        conn: 0,
        last_recv_ts_ns: 5
    }));
    assert_eq!(engine.state(A), Some(SyncState::Synced));
    // no resubscribe while down: the reconnect brought the snapshots
    assert!(rest.control.try_recv().is_err());
}

#[test]
fn rest_books_ask_for_snapshots_and_publish_the_merged_book() {
    let mut r = rig(1024, true);
    r.send(&[IngestItem::Connected]);
    let mut asked = Vec::new();
    let until = std::time::Instant::now() + Duration::from_secs(5);
    while asked.len() < 2 && std::time::Instant::now() < until {
        if let Ok(req) = r.rest.recv_timeout(Duration::from_millis(10)) {
            asked.push(req);
        }
    }
    assert_eq!(
        asked,
        [
            RestRequest::Snapshot {
                conn: 0,
                instrument: A
            },
            RestRequest::Snapshot {
                conn: 0,
                instrument: B
            }
        ]
    );
    // a delta arrives before the snapshot: buffered, then applied with it, and the
    // published snapshot is the merged book
    r.send(&book_message(A, false, 11, 2));
    // the two rings are independent: make sure the delta was taken first
    r.wait_ingest_drained();
    for it in book_message(A, true, 10, 4) {
        r.rest_ring.push(it).unwrap();
    }
    r.wakeup.notify();
    let (engine, msgs, _) = r.finish();
    assert_eq!(kinds(&msgs), ["snap0"]);
    assert_eq!(engine.state(A), Some(SyncState::Synced));
    let published: Vec<(BookSide, i64, i64)> = msgs
        .iter()
        .filter_map(|m| match m {
            FanoutMsg::Event(Event::Level(l)) => Some((l.side, l.price.mantissa, l.qty.mantissa)),
            _ => None,
        })
        .collect();
    let book = engine.book(A).unwrap();
    let want: Vec<(BookSide, i64, i64)> = [BookSide::Bid, BookSide::Ask]
        .into_iter()
        .flat_map(|s| {
            book.decimal_levels(s)
                .map(move |(p, q)| (s, p.mantissa, q.mantissa))
        })
        .collect();
    assert_eq!(published, want);
    // the delta's size (11) won over the snapshot's (10) at the levels it touched
    assert!(published.iter().any(|l| l.2 == 11));
}

#[test]
fn a_full_fanout_ring_drops_trades_and_republishes_books() {
    let mut r = rig(16, false);
    r.send(&[IngestItem::Connected]);
    r.send(&book_message(A, true, 10, 4)); // 6 items and a notice
    r.send(&book_message(A, false, 11, 10)); // 12 items and a notice: does not fit
    for _ in 0..20 {
        r.send(&[trade(B)]); // 9 fit, 11 dropped
    }
    // wait until the ring is full, then drain it: the book comes back whole
    let until = std::time::Instant::now() + Duration::from_secs(5);
    while r.out_stats.dropped() < 24 && std::time::Instant::now() < until {
        std::thread::sleep(Duration::from_millis(1));
    }
    let mut msgs = Vec::new();
    let until = std::time::Instant::now() + Duration::from_secs(5);
    while std::time::Instant::now() < until
        && !kinds(&msgs).ends_with(&["invalid0".to_string(), "snap0".to_string()])
    {
        while let Ok(m) = r.out.pop() {
            msgs.push(m);
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    let (engine, rest_msgs, rest) = r.finish();
    msgs.extend(rest_msgs);
    let k = kinds(&msgs);
    assert_eq!(k[0], "snap0");
    assert_eq!(k.iter().filter(|k| *k == "trade1").count(), 9, "{k:?}");
    assert_eq!(&k[k.len() - 2..], ["invalid0", "snap0"], "{k:?}");
    assert_eq!(rest.stats.book_messages_dropped.load(Ordering::Relaxed), 1);
    assert_eq!(rest.out_stats.dropped(), 13 + 11);
    // the republished snapshot is the engine's latest book
    let last_snapshot_levels = msgs
        .iter()
        .rev()
        .take_while(|m| !matches!(m, FanoutMsg::Event(Event::BookBegin(_))))
        .filter(|m| matches!(m, FanoutMsg::Event(Event::Level(_))))
        .count();
    let book = engine.book(A).unwrap();
    assert_eq!(
        last_snapshot_levels,
        book.depth(BookSide::Bid) + book.depth(BookSide::Ask)
    );
}

/// Issue 9 item 5: a book whose fresh snapshot keeps breaking resubscribed at once, forever
/// (26,410 times in 60 s). The second resync now waits out the backoff.
#[test]
fn repeated_resyncs_back_off() {
    let policy = crate::config::ResyncConfig {
        backoff_initial_ms: 300,
        ..Default::default()
    };
    let mut r = rig_with(1024, false, policy);
    r.send(&[IngestItem::Connected]);
    r.send(&book_message(A, true, 10, 4));
    r.send(&[IngestItem::Lost(A)]);
    let first = r.control.recv_timeout(Duration::from_secs(5));
    assert_eq!(
        first,
        Ok(IngestControl::Resubscribe(A)),
        "the first goes out at once"
    );
    let resynced = std::time::Instant::now();
    r.send(&book_message(A, true, 20, 4));
    r.send(&[IngestItem::Lost(A)]);
    r.wait_ingest_drained();
    // held back: 300 ms plus up to 50 % jitter
    assert!(
        r.control.recv_timeout(Duration::from_millis(150)).is_err(),
        "sent inside the backoff"
    );
    assert_eq!(r.stats.resyncs_deferred.load(Ordering::Relaxed), 1);
    let second = r.control.recv_timeout(Duration::from_secs(5));
    assert_eq!(second, Ok(IngestControl::Resubscribe(A)));
    let waited = resynced.elapsed();
    assert!(waited >= Duration::from_millis(290), "{waited:?}");
    let (_, _, rest) = r.finish();
    assert_eq!(rest.stats.resubscribes.load(Ordering::Relaxed), 2);
}

/// A resync held back by our own backoff is not a resubscribe the venue failed to answer:
/// the resubscribe timeout must not rebuild the connection meanwhile (it did, when the book
/// resynced and broke again between two housekeeping rounds).
#[test]
fn a_resync_waiting_for_backoff_does_not_trip_the_resubscribe_timeout() {
    let policy = crate::config::ResyncConfig {
        backoff_initial_ms: 1000,
        resubscribe_timeout_ms: 200,
        ..Default::default()
    };
    let mut r = rig_with(1024, false, policy);
    r.send(&[IngestItem::Connected]);
    r.send(&book_message(A, true, 10, 4));
    r.send(&[IngestItem::Lost(A)]);
    assert_eq!(
        r.control.recv_timeout(Duration::from_secs(5)),
        Ok(IngestControl::Resubscribe(A))
    );
    // the fresh snapshot, and at once the next loss: deferred for 1 s (plus jitter)
    let mut items = book_message(A, true, 20, 4);
    items.push(IngestItem::Lost(A));
    r.send(&items);
    let next = r.control.recv_timeout(Duration::from_secs(5));
    assert_eq!(next, Ok(IngestControl::Resubscribe(A)), "not a reconnect");
    let (_, _, rest) = r.finish();
    assert_eq!(rest.stats.resyncs_deferred.load(Ordering::Relaxed), 1);
}

#[test]
fn a_spent_resync_budget_rebuilds_the_connection() {
    let policy = crate::config::ResyncConfig {
        backoff_initial_ms: 0,
        budget_per_connection: 2,
        ..Default::default()
    };
    let mut r = rig_with(1024, false, policy);
    r.send(&[IngestItem::Connected]);
    let mut got = Vec::new();
    for round in 0..3u64 {
        r.send(&book_message(A, true, 10 + round * 10, 4));
        r.send(&[IngestItem::Lost(A)]);
        got.push(r.control.recv_timeout(Duration::from_secs(5)).unwrap());
    }
    assert_eq!(
        got,
        [
            IngestControl::Resubscribe(A),
            IngestControl::Resubscribe(A),
            IngestControl::Reconnect
        ]
    );
    let (_, _, rest) = r.finish();
    assert_eq!(
        rest.stats.resync_budget_reconnects.load(Ordering::Relaxed),
        1
    );
}

fn notices(msgs: &[FanoutMsg]) -> usize {
    msgs.iter()
        .filter(|m| matches!(m, FanoutMsg::Book(_)))
        .count()
}

/// Issue 8: the book thread is the only writer. A shard without `book_change` subscribers
/// gets a notice per applied message while it has none queued, and reads the state from the
/// slot; once it wants deltas it gets them, and a snapshot request is answered with the
/// whole book after a `Resnapshot` marker, a refresh with a deeper slot and a notice.
#[test]
fn a_shard_reads_state_from_the_slot_and_asks_for_the_rest() {
    let mut r = rig_wanting();
    r.slots.want_depth(A, 0, 2);
    r.send(&[IngestItem::Connected]);
    r.send(&book_message(A, true, 10, 6));
    let msgs = r.take_until(|m| notices(m) == 1);
    assert_eq!(kinds_with_notices(&msgs), ["notice0"]);
    r.send(&book_message(A, false, 11, 2));
    let msgs = r.take_until(|m| notices(m) == 1);
    assert_eq!(kinds_with_notices(&msgs), ["notice0"]);
    let FanoutMsg::Book(n) = msgs[0] else {
        panic!("{msgs:?}")
    };
    let mut view = SlotView::with_depth(4);
    r.slots.read(A, 4, &mut view);
    assert_eq!(view.header.version, n.version);
    assert!(view.header.synced && view.header.update_id == 11);
    // the top 2 levels per side, as the engine's book has them after the delta
    assert_eq!(
        (view.header.depth, view.bids.len(), view.asks.len()),
        (2, 2, 2)
    );
    assert_eq!(view.bids[0].qty, 11);
    assert_eq!(view.bids[1].qty, 10);

    // a book_change subscriber arrives: deltas from now on, and its snapshot on request
    r.slots.want_deltas(A, 0, true);
    r.request(ShardRequest::Snapshot(A));
    let msgs = r.take_until(|m| {
        m.iter()
            .any(|m| matches!(m, FanoutMsg::Event(Event::BookEnd(_))))
    });
    assert_eq!(kinds_with_notices(&msgs), ["resnapshot0", "snap0"]);
    let levels = msgs
        .iter()
        .filter(|m| matches!(m, FanoutMsg::Event(Event::Level(_))))
        .count();
    assert_eq!(levels, 6, "the whole book, not the slot's top");
    r.send(&book_message(A, false, 12, 2));
    let msgs = r.take_until(|m| notices(m) == 1);
    assert_eq!(kinds_with_notices(&msgs), ["delta0", "notice0"]);

    // a deeper series: the slot is rewritten at once, with a notice
    r.slots.want_depth(A, 0, 4);
    r.request(ShardRequest::Refresh(A));
    let msgs = r.take_until(|m| notices(m) == 1);
    assert_eq!(kinds_with_notices(&msgs), ["notice0"]);
    r.slots.read(A, 4, &mut view);
    assert_eq!((view.header.depth, view.bids.len()), (4, 3));

    // B is not synced: its requests are dropped (its venue snapshot will reach everyone)
    r.request(ShardRequest::Snapshot(B));
    r.request(ShardRequest::Refresh(B));
    // a lost delta: the slot says unsynced, the shard gets BookInvalid
    r.send(&[IngestItem::Lost(A)]);
    let msgs = r.take_until(|m| !m.is_empty());
    assert_eq!(kinds_with_notices(&msgs), ["invalid0"]);
    assert!(!r.slots.header(A).synced);
    let (_, rest_msgs, rest) = r.finish();
    assert!(rest_msgs.is_empty(), "{rest_msgs:?}");
    assert_eq!(
        rest.stats.snapshot_requests_served.load(Ordering::Relaxed),
        1
    );
}

/// Soak at 100 k frames/s and 1000 clients: a shard that fell behind found its ring full of
/// notices that all said "read the slot", and dropped (0.85 M in 25 s, each a republish). Now
/// a shard without deltas of a book has at most one notice of it queued: the rest are
/// coalesced and counted, none is dropped, and the one it takes reads the latest state.
#[test]
fn a_shard_behind_gets_one_notice_per_book_not_one_per_update() {
    let mut r = rig_wanting();
    r.slots.want_depth(A, 0, 2);
    r.send(&[IngestItem::Connected]);
    r.send(&book_message(A, true, 10, 6));
    for u in 11..=40 {
        r.send(&book_message(A, false, u, 2));
    }
    r.send(&book_message(B, true, 5, 2));
    // the shard takes nothing until everything is published (B's snapshot comes last)
    let until = std::time::Instant::now() + Duration::from_secs(5);
    while r.stats.book_notices_coalesced.load(Ordering::Relaxed) < 30 {
        assert!(std::time::Instant::now() < until, "not coalesced");
        std::thread::sleep(Duration::from_millis(1));
    }
    let msgs = r.take_until(|m| notices(m) == 2);
    assert_eq!(kinds_with_notices(&msgs), ["notice0", "notice1"]);
    assert_eq!(r.stats.book_notices_coalesced.load(Ordering::Relaxed), 30);
    assert_eq!(r.stats.book_messages_dropped.load(Ordering::Relaxed), 0);
    let mut view = SlotView::with_depth(2);
    r.slots.read(A, 2, &mut view);
    assert_eq!(
        view.header.update_id, 40,
        "the queued notice reads the latest state"
    );
    // taken: the next update is notified again, with a later version
    let FanoutMsg::Book(first) = msgs[0] else {
        panic!("{msgs:?}")
    };
    r.send(&book_message(A, false, 41, 2));
    let msgs = r.take_until(|m| notices(m) == 1);
    let FanoutMsg::Book(next) = msgs[0] else {
        panic!("{msgs:?}")
    };
    assert!(next.version > first.version);
    let (_, rest_msgs, rest) = r.finish();
    assert!(rest_msgs.is_empty(), "{rest_msgs:?}");
    assert_eq!(rest.out_stats.dropped(), 0);
}

/// A notice still queued when its book lost sync comes before the `BookInvalid`: the fresh
/// snapshot after the resync gets a notice of its own after it. (Coalesced into the queued
/// one, the shard read the fresh state, then the `BookInvalid`, and served the book as
/// invalid until its next update: e2e's two-shard test saw a stale snapshot.)
#[test]
fn the_state_after_a_book_invalid_is_notified_after_it() {
    let mut r = rig_wanting();
    r.slots.want_depth(A, 0, 2);
    r.send(&[IngestItem::Connected]);
    r.send(&book_message(A, true, 10, 6));
    r.send(&[IngestItem::Lost(A)]);
    r.send(&book_message(A, true, 20, 6));
    // nothing taken until the fresh snapshot is applied
    let until = std::time::Instant::now() + Duration::from_secs(5);
    while r.slots.header(A).update_id != 20 {
        assert!(std::time::Instant::now() < until, "snapshot not applied");
        std::thread::sleep(Duration::from_millis(1));
    }
    let msgs = r.take_until(|m| notices(m) == 2);
    assert_eq!(
        kinds_with_notices(&msgs),
        ["notice0", "invalid0", "notice0"]
    );
    let (_, rest_msgs, _) = r.finish();
    assert!(rest_msgs.is_empty(), "{rest_msgs:?}");
}

/// A resync request that finds the ingest thread's control channel full is counted and asked
/// again once the channel has room, never lost.
#[test]
fn a_full_control_channel_requeues_the_resync() {
    let policy = crate::config::ResyncConfig {
        backoff_initial_ms: 0,
        budget_per_connection: 1000,
        ..Default::default()
    };
    let mut r = rig_with(1024, false, policy);
    r.send(&[IngestItem::Connected]);
    // the channel holds 16: the 17th resubscribe of A does not fit
    for round in 0..17u64 {
        r.send(&book_message(A, true, 10 + round * 10, 4));
        r.send(&[IngestItem::Lost(A)]);
        r.wait_ingest_drained();
    }
    let until = std::time::Instant::now() + Duration::from_secs(5);
    while r.stats.requests_requeued.load(Ordering::Relaxed) == 0 {
        assert!(std::time::Instant::now() < until, "nothing requeued");
        std::thread::sleep(Duration::from_millis(2));
    }
    let mut got = 0;
    while r.control.try_recv().is_ok() {
        got += 1;
    }
    assert_eq!(got, 16);
    // room again: housekeeping asks for the requeued one
    assert_eq!(
        r.control.recv_timeout(Duration::from_secs(5)),
        Ok(IngestControl::Resubscribe(A))
    );
    let (_, _, rest) = r.finish();
    assert!(rest.stats.requests_requeued.load(Ordering::Relaxed) >= 1);
}

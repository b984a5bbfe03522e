//! What a config becomes before any thread starts: the instrument registry, the books with
//! their sync rules, which connection carries which book ([`Layout`]), and every ring between
//! the threads with the `[queues]` sizes.

use std::sync::Arc;

use crossbeam_utils::CachePadded;

use super::{RunError, RunOptions};
use crate::book::BookEngine;
use crate::config::Config;
use crate::fanout::FanoutMsg;
use crate::ingest::IngestItem;
use crate::model::{Exchange, Instruments};
use crate::pipeline::book_thread::{Input, Topology};
use crate::pipeline::slot::{BookSlots, ShardRequest};
use crate::pipeline::{ConnStats, RingProducer, RunStats, ring};
use crate::venue::{self, Channels, ConnectPlan};

/// Instruments, books and plans derived from a config.
pub struct Layout {
    /// Every subscribed instrument.
    pub instruments: Instruments,
    /// Every instrument registered, books with their venue's sync rule.
    pub engine: BookEngine,
    /// Which connection carries what.
    pub topology: Topology,
    /// One connect plan per connection.
    pub plans: Vec<ConnectPlan>,
}

/// Interns the config's instruments, registers their books and builds the connect plans.
///
/// # Errors
/// [`RunError::Invalid`] when one instrument is configured on two connections (its book
/// would have two writers).
pub fn layout(config: &Config) -> Result<Layout, RunError> {
    let mut instruments = Instruments::new();
    let mut engine = BookEngine::new();
    engine.set_max_levels_per_side(config.resync.max_levels_per_side);
    let mut owner: Vec<usize> = Vec::new();
    let mut conn_books = Vec::new();
    let mut conn_exchanges = Vec::new();
    let mut plans = Vec::new();
    for (c, conn) in config.connections.iter().enumerate() {
        let mut books = Vec::new();
        let mut exchanges: Vec<Exchange> = Vec::new();
        for sub in &conn.subscriptions {
            let known = instruments.get(sub.exchange, &sub.symbol).is_some();
            let id = instruments.intern(sub.exchange, &sub.symbol);
            if known {
                if owner[id.index()] != c {
                    return Err(RunError::Invalid {
                        field: format!("venue[{c}].symbols"),
                        message: format!(
                            "{} {} is already configured on venue[{}]",
                            sub.exchange.id(),
                            sub.symbol,
                            owner[id.index()]
                        ),
                    });
                }
            } else {
                owner.push(c);
                engine.register(
                    id,
                    venue::sync_rule(sub.exchange),
                    venue::checksum_fn(sub.exchange),
                    venue::needs_rest_snapshot(sub.exchange),
                );
            }
            if sub.channels.contains(Channels::BOOK) && !books.contains(&id) {
                books.push(id);
            }
            if !exchanges.contains(&sub.exchange) {
                exchanges.push(sub.exchange);
            }
        }
        plans.push(venue::connect_plan(
            conn.feed,
            &conn.ws_url,
            &conn.rest_url,
            &conn.subscriptions,
        ));
        conn_books.push(books);
        conn_exchanges.push(exchanges);
    }
    let n = instruments.len();
    let mut rest_book = vec![false; n];
    for (id, exchange, _) in instruments.iter() {
        rest_book[id.index()] = venue::needs_rest_snapshot(exchange);
    }
    let topology = Topology {
        conn_of: owner.into_iter().map(Some).collect(),
        rest_book,
        conn_exchanges,
        conn_books,
    };
    Ok(Layout {
        instruments,
        engine,
        topology,
        plans,
    })
}

/// Every queue of a run, counted in [`RunStats::queues`]: the ingest rings and the REST
/// ring into the book thread, per fan-out shard its ring from the book thread and its
/// snapshot-request ring back, per connection and shard a trade lane, and the slots.
pub(super) struct Queues {
    pub(super) stats: RunStats,
    pub(super) ingest_rings: Vec<RingProducer<IngestItem>>,
    pub(super) inputs: Vec<Input>,
    pub(super) rest_tx: RingProducer<IngestItem>,
    /// Per shard: the book thread's producer and the request consumer.
    pub(super) shard_outs: Vec<(RingProducer<FanoutMsg>, rtrb::Consumer<ShardRequest>)>,
    /// Per shard: the ring's consumer and the request producer.
    pub(super) shard_inputs: Vec<(rtrb::Consumer<FanoutMsg>, rtrb::Producer<ShardRequest>)>,
    /// Per shard, per connection: trade lane consumers.
    pub(super) lanes: Vec<Vec<rtrb::Consumer<FanoutMsg>>>,
    /// Per connection, per shard: trade lane producers.
    pub(super) lane_producers: Vec<Vec<RingProducer<FanoutMsg>>>,
    pub(super) slots: Arc<BookSlots>,
}

/// Builds every queue of a run with the sizes of `[queues]` (one shard per `cpu.fanout` core;
/// one with an external fan-out).
pub(super) fn build_queues(config: &Config, options: &RunOptions, instruments: usize) -> Queues {
    let shards = if options.external_fanout {
        1
    } else {
        config.cpu.fanout.len().max(1)
    };
    let suffix = |s: usize| {
        if shards == 1 {
            String::new()
        } else {
            format!("-{s}")
        }
    };
    let mut stats = RunStats::default();
    let mut ingest_rings = Vec::new();
    let mut inputs = Vec::new();
    let mut lane_producers = Vec::new();
    let mut lanes: Vec<Vec<rtrb::Consumer<FanoutMsg>>> = (0..shards).map(|_| Vec::new()).collect();
    for (c, conn) in config.connections.iter().enumerate() {
        let (tx, rx, q) = ring::<IngestItem>(
            format!("ingest-{c}-{}", conn.feed.name()),
            config.queues.ingest_slots,
        );
        stats.queues.push(q);
        ingest_rings.push(tx);
        inputs.push(Input::new(rx, Some(c)));
        stats
            .connections
            .push(Arc::new(CachePadded::new(ConnStats::new(c, conn.feed))));
        let mut producers = Vec::with_capacity(shards);
        for (s, lane) in lanes.iter_mut().enumerate() {
            let (tx, rx, q) = ring::<FanoutMsg>(
                format!("lane-{c}-{}{}", conn.feed.name(), suffix(s)),
                config.queues.lane_slots,
            );
            stats.queues.push(q);
            producers.push(tx);
            lane.push(rx);
        }
        lane_producers.push(producers);
    }
    let (rest_tx, rest_rx, rest_q) = ring::<IngestItem>("rest", config.queues.rest_slots);
    stats.queues.push(rest_q);
    inputs.push(Input::new(rest_rx, None));
    let mut shard_outs = Vec::with_capacity(shards);
    let mut shard_inputs = Vec::with_capacity(shards);
    for s in 0..shards {
        let (tx, rx, q) =
            ring::<FanoutMsg>(format!("fanout{}", suffix(s)), config.queues.fanout_slots);
        stats.queues.push(q);
        // at most one snapshot request per instrument is outstanding per shard (twice for a
        // race with an invalidation), refreshes come with new series: this ring does not fill
        let (req_tx, req_rx) = rtrb::RingBuffer::new(4 * instruments + 64);
        shard_outs.push((tx, req_rx));
        shard_inputs.push((rx, req_tx));
    }
    let slots = Arc::new(BookSlots::new(
        instruments,
        config.server.slot_depth,
        shards,
    ));
    Queues {
        stats,
        ingest_rings,
        inputs,
        rest_tx,
        shard_outs,
        shard_inputs,
        lanes,
        lane_producers,
        slots,
    }
}

//! Synthetic venue flow for `pinfeed simulate --synthetic`: every feed's own wire format,
//! generated from a market model instead of replayed from a recording.
//!
//! # What is served
//! Per feed a couple of instruments ([`instruments`]) with the venue's tick and lot sizes and
//! number formats, and per instrument the messages pinfeed's parsers read (the topics
//! [`crate::venue::connect_plan`] subscribes, and a few neighbours):
//! - Binance (`binance-futures`, `binance-delivery`, `binance`): `@depth@100ms` diff depth with
//!   `U`/`u`/`pu`, `@aggTrade` and `@trade`, `@bookTicker`, `@markPrice@1s`, `@ticker`,
//!   `@forceOrder`; REST depth snapshots (`/fapi/v1/depth`, `/dapi/v1/depth`, `/api/v3/depth`)
//!   and open interest (`/fapi/v1/openInterest`, `/dapi/v1/openInterest`) taken from the live
//!   book: `lastUpdateId` is the `u` of the last diff generated, and futures diffs start at the
//!   previous `u` (`U = pu`), so the first diff after any snapshot brackets it
//!   (`U <= lastUpdateId <= u`); spot diffs start at `u + 1`.
//! - Bybit v5 (linear, inverse, spot): `orderbook.{depth}` snapshot on subscribe, then deltas
//!   with `u` + 1 and `seq`; `orderbook.1`, `publicTrade`, `tickers` (a snapshot, then deltas
//!   of changed fields), `allLiquidation`.
//! - OKX v5: `books` snapshot on subscribe (`prevSeqId` -1), updates chaining
//!   `prevSeqId` = previous `seqId`, each with the CRC32 `checksum` of the 25 best levels per
//!   side as written; `trades`, `bbo-tbt`, `tickers`, `open-interest`, `mark-price`,
//!   `funding-rate`, `index-tickers`, `liquidation-orders` (per `instType`).
//! - Deribit v2: `book.{i}.{interval}` snapshot on subscribe, then changes chaining
//!   `prev_change_id`; `trades.{i}.{interval}` (liquidations are trades carrying
//!   `"liquidation"`), `ticker.{i}.{interval}`, `quote.{i}`.
//!
//! Unsubscribing and subscribing a book topic again yields a fresh WebSocket snapshot, as the
//! venues do. Replies to requests, pings and heartbeats are the recorded simulator's
//! ([`crate::sim::session`]).
//!
//! # Send-time contract
//! Every trade's venue trade id is the simulator's wall clock when the frame is generated,
//! immediately before it is written to the socket, in unix ns ([`crate::clock::wall_ns`]),
//! made strictly increasing per feed (`max(previous + 1, now)`): Binance `a` (aggTrade) and `t`
//! (trade) numbers, Bybit `i`, OKX `tradeId` and Deribit `trade_id` strings. Event-time fields
//! (`E`, `T`, `ts`, `timestamp`, `cts`) carry the same send time in the venue's unit (ms on
//! every venue served). A client on the same host computes end-to-end latency as its receive
//! wall clock minus the trade id; [`BurstSchedule`] tells whether a send time fell inside a
//! burst.
//!
//! # Rate, mix and bursts
//! `rate_per_s` is the total data-frame rate over every subscribed topic of every connection,
//! split by a fixed mix ([`MIX_PERCENT`]): 70 % L2 deltas, 20 % trades, 8 % book tickers and
//! derivative tickers, 2 % liquidations; classes nobody subscribed are left out and the others
//! scaled up. Within a class the rate is shared equally by the subscribed topics, and arrivals
//! are Poisson (exponential gaps). A [`Burst`] multiplies the L2 share by its factor for its
//! length at the start of every period, from the simulator's start. Snapshots sent on
//! subscribe are extra. Each connection thread sends the frames due at each wake-up as one
//! batch and flushes once; frames sent more than [`LAG_LIMIT`] after their scheduled time are
//! counted as behind schedule, a backlog older than [`MAX_BACKLOG`] is skipped and counted.
//!
//! # Limits
//! Each connection has its own market per instrument (deterministic for a seed), except
//! Binance, whose books are shared by every connection so that REST snapshots match the live
//! chain: two connections subscribing the same Binance depth stream each see the other's
//! updates as gaps (`pinfeed run` opens one).

mod binance;
mod bybit;
mod deribit;
pub mod market;
mod okx;
pub mod pacing;
pub mod session;
#[cfg(test)]
mod tests;
pub mod truth;

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use crate::model::Exchange;
use crate::sim::catalog::{Catalog, FeedCatalog, http_key, strip_feed_prefix};
use crate::venue::{Channels, Feed, Subscription};

pub use market::{InstrumentSpec, Market};
pub use pacing::{Burst, BurstError, BurstSchedule, LAG_LIMIT, MAX_BACKLOG, MIX_PERCENT};
pub use session::LoopCounters;
pub(crate) use session::{SynthSession, run_ws};

/// Default `--rate`, frames per second over all topics.
pub const DEFAULT_RATE_PER_S: f64 = 10_000.0;

/// Options of synthetic flow.
#[derive(Clone, Debug, PartialEq)]
pub struct SyntheticOptions {
    /// Total data frames per second over every subscribed topic of every connection; finite,
    /// `> 0`. Default [`DEFAULT_RATE_PER_S`].
    pub rate_per_s: f64,
    /// Burst profile of the L2 share; `None` for a steady rate.
    pub burst: Option<Burst>,
    /// Seed of the market models and choices: the same seed gives the same books and prices.
    pub seed: u64,
    /// Feeds to serve; empty serves every [`Feed::ALL`].
    pub feeds: Vec<Feed>,
    /// Instruments per feed, at most what [`instruments`] lists (extra is ignored); 0 is all.
    pub instruments_per_feed: usize,
    /// Write the true books here ([`truth`]); every feed then keeps one market per instrument
    /// across connections, so update ids stay unique in the file.
    pub truth_out: Option<std::path::PathBuf>,
    /// Levels per side in each truth line. Default 10.
    pub truth_depth: usize,
}

impl Default for SyntheticOptions {
    fn default() -> SyntheticOptions {
        SyntheticOptions {
            rate_per_s: DEFAULT_RATE_PER_S,
            burst: None,
            seed: 1,
            feeds: Vec::new(),
            instruments_per_feed: 0,
            truth_out: None,
            truth_depth: 10,
        }
    }
}

const fn spec(
    exchange: Exchange,
    symbol: &'static str,
    start_ticks: i64,
    (tick, price_decimals): (i64, u8),
    (lot, qty_decimals): (i64, u8),
    max_level_lots: i64,
    derivative: bool,
) -> InstrumentSpec {
    InstrumentSpec {
        exchange,
        symbol,
        start_ticks,
        tick,
        price_decimals,
        lot,
        qty_decimals,
        max_level_lots,
        derivative,
    }
}

use Exchange as E;

const BINANCE_FUTURES: [InstrumentSpec; 2] = [
    spec(
        E::BinanceFutures,
        "BTCUSDT",
        600_000,
        (10, 2),
        (1, 3),
        5_000,
        true,
    ),
    spec(
        E::BinanceFutures,
        "ETHUSDT",
        300_000,
        (1, 2),
        (1, 3),
        50_000,
        true,
    ),
];
const BINANCE_DELIVERY: [InstrumentSpec; 2] = [
    spec(
        E::BinanceDelivery,
        "BTCUSD_PERP",
        600_000,
        (1, 1),
        (1, 0),
        2_000,
        true,
    ),
    spec(
        E::BinanceDelivery,
        "ETHUSD_PERP",
        300_000,
        (1, 2),
        (1, 0),
        5_000,
        true,
    ),
];
const BINANCE_SPOT: [InstrumentSpec; 2] = [
    spec(
        E::Binance,
        "BTCUSDT",
        6_000_000,
        (1_000_000, 8),
        (1_000, 8),
        100_000,
        false,
    ),
    spec(
        E::Binance,
        "ETHUSDT",
        300_000,
        (1_000_000, 8),
        (10_000, 8),
        100_000,
        false,
    ),
];
const BYBIT_LINEAR: [InstrumentSpec; 2] = [
    spec(E::Bybit, "BTCUSDT", 600_000, (10, 2), (1, 3), 5_000, true),
    spec(E::Bybit, "ETHUSDT", 300_000, (1, 2), (1, 2), 5_000, true),
];
const BYBIT_INVERSE: [InstrumentSpec; 2] = [
    spec(E::Bybit, "BTCUSD", 120_000, (50, 2), (1, 0), 50_000, true),
    spec(E::Bybit, "ETHUSD", 60_000, (5, 2), (1, 0), 50_000, true),
];
const BYBIT_SPOT: [InstrumentSpec; 2] = [
    spec(
        E::BybitSpot,
        "BTCUSDT",
        6_000_000,
        (1, 2),
        (1, 6),
        500_000,
        false,
    ),
    spec(
        E::BybitSpot,
        "ETHUSDT",
        300_000,
        (1, 2),
        (1, 5),
        500_000,
        false,
    ),
];
const OKX: [InstrumentSpec; 3] = [
    spec(
        E::OkexSwap,
        "BTC-USDT-SWAP",
        600_000,
        (1, 1),
        (1, 0),
        2_000,
        true,
    ),
    spec(
        E::OkexSwap,
        "ETH-USDT-SWAP",
        300_000,
        (1, 2),
        (1, 0),
        5_000,
        true,
    ),
    spec(
        E::Okex,
        "BTC-USDT",
        600_000,
        (1, 1),
        (1, 8),
        10_000_000,
        false,
    ),
];
const DERIBIT: [InstrumentSpec; 2] = [
    spec(
        E::Deribit,
        "BTC-PERPETUAL",
        120_000,
        (5, 1),
        (10, 0),
        10_000,
        true,
    ),
    spec(
        E::Deribit,
        "ETH-PERPETUAL",
        60_000,
        (5, 2),
        (1, 0),
        100_000,
        true,
    ),
];

/// The synthetic instruments of `feed`, as the venue names and writes them.
pub fn instruments(feed: Feed) -> &'static [InstrumentSpec] {
    match feed {
        Feed::BinanceFutures => &BINANCE_FUTURES,
        Feed::BinanceDelivery => &BINANCE_DELIVERY,
        Feed::BinanceSpot => &BINANCE_SPOT,
        Feed::BybitLinear => &BYBIT_LINEAR,
        Feed::BybitInverse => &BYBIT_INVERSE,
        Feed::BybitSpot => &BYBIT_SPOT,
        Feed::Okx => &OKX,
        Feed::Deribit => &DERIBIT,
    }
}

/// The channels served for an instrument: everything for derivatives, book, trades and book
/// ticker for spot.
pub fn channels_of(spec: &InstrumentSpec) -> Channels {
    if spec.derivative {
        Channels::ALL
    } else {
        Channels::BOOK | Channels::TRADES | Channels::BOOK_TICKER
    }
}

/// The seed of one instrument's market.
fn market_seed(seed: u64, feed: Feed, instrument: usize) -> u64 {
    let f = Feed::ALL.iter().position(|x| *x == feed).unwrap_or(0) as u64;
    seed.wrapping_mul(0x100_0000_01B3) ^ (f << 32) ^ instrument as u64
}

/// What one served feed shares between its connections.
pub(crate) struct FeedState {
    pub(crate) feed: Feed,
    pub(crate) specs: &'static [InstrumentSpec],
    /// Binance: the books every connection and the REST snapshots share.
    pub(crate) shared_markets: Option<Vec<Arc<Mutex<Market>>>>,
    /// Last trade id handed out (unix ns).
    pub(crate) last_trade_id: AtomicI64,
    /// Data frames sent.
    pub(crate) frames_sent: AtomicU64,
}

impl FeedState {
    /// The next trade id: `max(previous + 1, wall clock ns)`.
    pub(crate) fn next_trade_id(&self) -> i64 {
        let now = crate::clock::wall_ns();
        let mut prev = self.last_trade_id.load(Ordering::Relaxed);
        loop {
            let id = now.max(prev + 1);
            match self.last_trade_id.compare_exchange_weak(
                prev,
                id,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => return id,
                Err(p) => prev = p,
            }
        }
    }
}

/// Synthetic flow state shared by the simulator's connection threads.
pub struct Synthetic {
    pub(crate) opts: SyntheticOptions,
    pub(crate) schedule: Option<BurstSchedule>,
    pub(crate) feeds: Vec<FeedState>,
    /// Topics subscribed per class over every connection.
    pub(crate) class_topics: [AtomicU64; 4],
    /// Frames sent more than [`LAG_LIMIT`] late.
    pub(crate) frames_behind: AtomicU64,
    /// Frames skipped because the backlog exceeded [`MAX_BACKLOG`].
    pub(crate) frames_skipped: AtomicU64,
    /// Subscribed topics no synthetic instrument or channel answers (acknowledged, silent).
    pub(crate) unknown_topics: AtomicU64,
    /// The truth file, with `truth_out`.
    pub(crate) truth: Option<truth::Truth>,
}

/// Why synthetic options were rejected.
#[derive(Debug, thiserror::Error)]
pub enum SyntheticError {
    /// The rate is not a finite number above 0.
    #[error("--rate must be a finite number > 0, got {0}")]
    BadRate(f64),
    /// The truth file could not be created.
    #[error("--truth-out {path}: {source}")]
    Truth {
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// Frames sent per feed and the pacing counters, a copy.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SyntheticStats {
    /// Data frames sent per served feed (snapshots on subscribe included).
    pub frames_by_feed: Vec<(Feed, u64)>,
    /// Frames sent more than [`LAG_LIMIT`] after their scheduled time.
    pub frames_behind: u64,
    /// Frames not sent because the backlog exceeded [`MAX_BACKLOG`] (a client not reading).
    pub frames_skipped: u64,
    /// Subscribed topics that no synthetic instrument or channel answers: acknowledged as the
    /// venue would, then silent.
    pub unknown_topics: u64,
}

impl Synthetic {
    /// Validates `opts` and builds the markets; `start` anchors the burst schedule.
    ///
    /// # Errors
    /// [`SyntheticError::BadRate`].
    pub fn new(opts: SyntheticOptions, start: Instant) -> Result<Synthetic, SyntheticError> {
        if !opts.rate_per_s.is_finite() || opts.rate_per_s <= 0.0 {
            return Err(SyntheticError::BadRate(opts.rate_per_s));
        }
        let feeds: Vec<Feed> = if opts.feeds.is_empty() {
            Feed::ALL.to_vec()
        } else {
            Feed::ALL
                .into_iter()
                .filter(|f| opts.feeds.contains(f))
                .collect()
        };
        let feeds: Vec<FeedState> = feeds
            .into_iter()
            .map(|feed| {
                let all = instruments(feed);
                let n = match opts.instruments_per_feed {
                    0 => all.len(),
                    n => n.min(all.len()),
                };
                let specs = &all[..n];
                let binance = matches!(
                    feed,
                    Feed::BinanceFutures | Feed::BinanceDelivery | Feed::BinanceSpot
                );
                let shared_markets = (binance || opts.truth_out.is_some()).then(|| {
                    specs
                        .iter()
                        .enumerate()
                        .map(|(i, s)| {
                            Arc::new(Mutex::new(Market::new(*s, market_seed(opts.seed, feed, i))))
                        })
                        .collect()
                });
                FeedState {
                    feed,
                    specs,
                    shared_markets,
                    last_trade_id: AtomicI64::new(0),
                    frames_sent: AtomicU64::new(0),
                }
            })
            .collect();
        let schedule = opts.burst.map(|burst| BurstSchedule {
            burst,
            start,
            start_wall_ns: crate::clock::wall_ns() - start.elapsed().as_nanos() as i64,
        });
        let truth = match &opts.truth_out {
            Some(path) => {
                let t = truth::Truth::create(path, opts.truth_depth).map_err(|source| {
                    SyntheticError::Truth {
                        path: path.clone(),
                        source,
                    }
                })?;
                for f in &feeds {
                    for m in f.shared_markets.iter().flatten() {
                        t.record(&m.lock().unwrap_or_else(|e| e.into_inner()));
                    }
                }
                t.flush();
                Some(t)
            }
            None => None,
        };
        Ok(Synthetic {
            truth,
            opts,
            schedule,
            feeds,
            class_topics: Default::default(),
            frames_behind: AtomicU64::new(0),
            frames_skipped: AtomicU64::new(0),
            unknown_topics: AtomicU64::new(0),
        })
    }

    /// The burst schedule, when a burst profile was given.
    pub fn schedule(&self) -> Option<BurstSchedule> {
        self.schedule
    }

    /// The options.
    pub fn options(&self) -> &SyntheticOptions {
        &self.opts
    }

    /// The served feeds' subscriptions (every instrument, [`channels_of`]).
    pub fn subscriptions(&self, feed: Feed) -> Vec<Subscription> {
        self.feeds
            .iter()
            .filter(|f| f.feed == feed)
            .flat_map(|f| f.specs.iter())
            .map(|s| Subscription {
                exchange: s.exchange,
                symbol: s.symbol.to_string(),
                channels: channels_of(s),
            })
            .collect()
    }

    /// The catalog the request router and session replies work from: one feed per served feed,
    /// no recorded frames.
    pub(crate) fn catalog(&self) -> Catalog {
        Catalog {
            feeds: self
                .feeds
                .iter()
                .map(|f| FeedCatalog::synthetic(f.feed, self.subscriptions(f.feed)))
                .collect(),
            http: Vec::new(),
        }
    }

    /// A copy of the counters.
    pub fn stats(&self) -> SyntheticStats {
        SyntheticStats {
            frames_by_feed: self
                .feeds
                .iter()
                .map(|f| (f.feed, f.frames_sent.load(Ordering::Relaxed)))
                .collect(),
            frames_behind: self.frames_behind.load(Ordering::Relaxed),
            frames_skipped: self.frames_skipped.load(Ordering::Relaxed),
            unknown_topics: self.unknown_topics.load(Ordering::Relaxed),
        }
    }

    /// A fresh market per instrument of feed `idx` for one connection (Binance: the shared
    /// ones).
    pub(crate) fn markets_for(&self, idx: usize) -> Vec<Arc<Mutex<Market>>> {
        let f = &self.feeds[idx];
        match &f.shared_markets {
            Some(m) => m.clone(),
            None => f
                .specs
                .iter()
                .enumerate()
                .map(|(i, s)| {
                    Arc::new(Mutex::new(Market::new(
                        *s,
                        market_seed(self.opts.seed, f.feed, i),
                    )))
                })
                .collect(),
        }
    }

    /// The REST body for `path?query`: Binance depth snapshots of the live shared book
    /// (`limit` levels per side, default 1000) and open interest. `None` for anything else.
    pub fn http_body(&self, path: &str, query: &str) -> Option<Vec<u8>> {
        let (_, path) = strip_feed_prefix(path);
        let (feed, what) = match path {
            "/fapi/v1/depth" => (Feed::BinanceFutures, true),
            "/dapi/v1/depth" => (Feed::BinanceDelivery, true),
            "/api/v3/depth" => (Feed::BinanceSpot, true),
            "/fapi/v1/openInterest" => (Feed::BinanceFutures, false),
            "/dapi/v1/openInterest" => (Feed::BinanceDelivery, false),
            _ => return None,
        };
        let symbol = http_key(query)?;
        let state = self.feeds.iter().find(|f| f.feed == feed)?;
        let i = state.specs.iter().position(|s| s.symbol == symbol)?;
        let market = state.shared_markets.as_ref()?.get(i)?;
        let m = market.lock().unwrap_or_else(|e| e.into_inner());
        let mut out = Vec::with_capacity(16 * 1024);
        let now_ns = crate::clock::wall_ns();
        if what {
            let limit = crate::sim::http::query_value(query, "limit")
                .and_then(|l| l.parse::<usize>().ok())
                .unwrap_or(1000)
                .max(1);
            binance::rest_depth(feed, &m, limit, now_ns, &mut out);
        } else {
            binance::rest_open_interest(feed, &m, now_ns, &mut out);
        }
        Some(out)
    }
}

/// Milliseconds of a unix-ns time.
fn ms(ns: i64) -> i64 {
    ns / 1_000_000
}

/// Appends `n` in decimal.
fn int(out: &mut Vec<u8>, n: i64) {
    out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
}

/// Appends `"text"` (no escaping: symbols and keys are plain ASCII).
fn quoted(out: &mut Vec<u8>, text: &str) {
    out.push(b'"');
    out.extend_from_slice(text.as_bytes());
    out.push(b'"');
}

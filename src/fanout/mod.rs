//! Fan-out to clients: the tardis-machine WebSocket API on one mio thread that owns the
//! listener and every client socket.
//!
//! [`Server`] serves `ws://HOST:PORT/ws-stream-normalized?options=...` exactly as
//! `PROTOCOL.md` records tardis-machine's real-time API, plus pinfeed's opt-in additions of
//! `DESIGN.md`. It consumes [`FanoutMsg`]s from the book thread's ring and from one trade lane
//! per ingest connection, encodes each message once and appends the same bytes to every
//! subscribed client's bounded send buffer. It holds no book: snapshots, quotes and imbalance
//! read the book thread's latest-state slots ([`BookSlots`]); `book_change` deltas arrive in
//! order on the ring, and a `book_change` subscriber that joins or falls behind asks the book
//! thread for a full `isSnapshot` ([`FanoutMsg::Resnapshot`]). See [`server`](self::Server)
//! for the loop, the wake-up and the backpressure policy; [`Server::bind_shards`] for shards.
//!
//! # Choices where PROTOCOL.md leaves room
//! - Unknown exchange, symbol or data type (or one pinfeed does not compute: grouped
//!   snapshots, trade bars, option summaries, `derivative_ticker`/`liquidation` on a spot
//!   exchange): an `error` message naming it when the option sets `withErrorMessages`, always
//!   counted; the valid rest of the request is served. When nothing at all can be served, the
//!   connection closes 1011 `Too many subsequent errors when connecting to  <exchange> WS API`,
//!   tardis-machine's final outcome for such a request.
//! - A missing or empty `symbols` means every symbol pinfeed serves on that exchange.
//! - Options repeating a symbol and type are merged: each message is sent once.
//! - A client that subscribes gets, at once, the current state of what it asked for:
//!   `book_change` with `isSnapshot: true` and the current snapshot of each series (its
//!   `timestamp` is the last change's). Then it follows the shared series.
//! - `withSeq`, `withLatency`, `withIntegrityMessages` and `timerSnapshots` apply to the whole
//!   connection when any option sets them (`timerSnapshots` only to series with an interval).
//!
//! # pinfeed's messages and fields (opt-in)
//! - `imbalance_{N}`: after each book change that alters the top N levels,
//!   `{"type":"imbalance","symbol","exchange","depth":N,"imbalance":41.19,"timestamp",
//!   "localTimestamp"}`: the bid share of the summed sizes of the top N levels per side, in
//!   percent, two decimals (rounded half up), omitted while both sides are empty.
//! - `withSeq`: `"seq"` on every message of the connection, contiguous from 1.
//! - `withIntegrityMessages`: `{"type":"book_invalid","symbol","exchange","localTimestamp"}`
//!   when a book the client follows (book_change, snapshots, quotes, imbalance) loses sync or
//!   its connection drops; a `book_change` with `isSnapshot: true` follows once rebuilt.
//! - `timerSnapshots`: snapshot series with an interval are emitted at every epoch-aligned
//!   wall-clock boundary (`timestamp` = the boundary, `localTimestamp` = now), changes or not,
//!   instead of on the first change of the next bucket.
//! - `withLatency`: `"recvNs"` (the upstream frame's monotonic receive stamp, when it has one)
//!   and `"sentNs"` (when the fan-out queued the message), both from [`crate::clock::mono_ns`].

mod client;
mod connection;
pub mod encode;
pub(crate) mod options;
mod route;
mod server;
mod sessions;
mod state;
mod stats;
pub(crate) mod ws;

pub use server::{FanoutInputs, Notifier, Server, SnapshotRequests, StopHandle, Tuning};
pub use stats::{BadRequest, FanoutCounters, FanoutStats, ShardStats};

pub use crate::pipeline::msg::{BookNotice, FanoutMsg, ShardRequest};
pub use crate::pipeline::slot::{BookSlots, SlotHeader, SlotView};

//! Fan-out counters. The fan-out thread counts in plain integers ([`FanoutCounters`]) and
//! publishes them into [`FanoutStats`] once per loop turn (relaxed stores: one writer, no
//! read-modify-write on the hot path); any thread may read them.

use std::sync::atomic::{AtomicU64, Ordering};

/// Why a request or connection was refused, by the outcome PROTOCOL.md defines.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum BadRequest {
    /// Request head over 20,000 bytes: HTTP 431.
    HeaderTooLarge,
    /// A plain HTTP request on the WebSocket port: HTTP 426.
    NotWebSocket,
    /// A malformed request or upgrade: HTTP 400 (405 for a method other than GET).
    BadHandshake,
    /// A path other than `/ws-stream-normalized`: upgrade, then close 1008.
    UnknownPath,
    /// Malformed `options`: close 1011 with the reason.
    MalformedOptions,
    /// `options` is `[]`: close 1000 `WS stream-normalized finished`.
    EmptyOptions,
    /// Nothing of the request can be served (every exchange, symbol or type unknown): close
    /// 1011 `Too many subsequent errors when connecting to  <exchange> WS API`.
    NothingToServe,
    /// A client message over 512 KiB: close 1009.
    OversizedFrame,
    /// A WebSocket protocol violation by the client: close 1002 (1007 for a bad close reason).
    ProtocolError,
    /// Over `max_clients`: the TCP connection is closed at once.
    TooManyClients,
    /// Over a subscription or snapshot-series limit of `[server]`: `error`, close 1008.
    SubscriptionLimit,
}

impl BadRequest {
    /// Every kind, in counter order.
    pub const ALL: [BadRequest; 11] = [
        BadRequest::HeaderTooLarge,
        BadRequest::NotWebSocket,
        BadRequest::BadHandshake,
        BadRequest::UnknownPath,
        BadRequest::MalformedOptions,
        BadRequest::EmptyOptions,
        BadRequest::NothingToServe,
        BadRequest::OversizedFrame,
        BadRequest::ProtocolError,
        BadRequest::TooManyClients,
        BadRequest::SubscriptionLimit,
    ];

    /// Name for metrics.
    pub fn name(self) -> &'static str {
        match self {
            BadRequest::HeaderTooLarge => "header_too_large",
            BadRequest::NotWebSocket => "not_websocket",
            BadRequest::BadHandshake => "bad_handshake",
            BadRequest::UnknownPath => "unknown_path",
            BadRequest::MalformedOptions => "malformed_options",
            BadRequest::EmptyOptions => "empty_options",
            BadRequest::NothingToServe => "nothing_to_serve",
            BadRequest::OversizedFrame => "oversized_frame",
            BadRequest::ProtocolError => "protocol_error",
            BadRequest::TooManyClients => "too_many_clients",
            BadRequest::SubscriptionLimit => "subscription_limit",
        }
    }
}

macro_rules! counters {
    ($($(#[$doc:meta])* $name:ident),* $(,)?) => {
        /// A plain copy of the fan-out counters (see [`FanoutStats`]).
        #[derive(Clone, Debug, Default, PartialEq, Eq)]
        pub struct FanoutCounters {
            $($(#[$doc])* pub $name: u64,)*
            /// Refused requests and connections, by [`BadRequest::ALL`] index.
            pub bad_requests: [u64; BadRequest::ALL.len()],
        }

        /// Fan-out counters, published by the fan-out thread once per loop turn.
        #[derive(Debug, Default)]
        pub struct FanoutStats {
            $($(#[$doc])* pub $name: AtomicU64,)*
            /// Refused requests and connections, by [`BadRequest::ALL`] index.
            pub bad_requests: [AtomicU64; BadRequest::ALL.len()],
        }

        impl FanoutCounters {
            /// Adds `other` counter by counter (the sum over shards).
            pub fn add(&mut self, other: &FanoutCounters) {
                $(self.$name += other.$name;)*
                for (a, v) in self.bad_requests.iter_mut().zip(other.bad_requests) {
                    *a += v;
                }
            }
        }

        impl FanoutStats {
            /// Stores `c` (called by the fan-out thread only).
            pub fn publish(&self, c: &FanoutCounters) {
                $(self.$name.store(c.$name, Ordering::Relaxed);)*
                for (a, v) in self.bad_requests.iter().zip(c.bad_requests) {
                    a.store(v, Ordering::Relaxed);
                }
            }

            /// Reads every counter.
            pub fn load(&self) -> FanoutCounters {
                FanoutCounters {
                    $($name: self.$name.load(Ordering::Relaxed),)*
                    bad_requests: std::array::from_fn(|i| {
                        self.bad_requests[i].load(Ordering::Relaxed)
                    }),
                }
            }
        }
    };
}

counters! {
    /// Connected clients (a gauge: WebSocket sessions and connections still handshaking).
    clients,
    /// TCP connections accepted.
    accepted,
    /// WebSocket sessions that subscribed.
    sessions,
    /// Messages taken from the book thread's ring and the trade lanes.
    fanout_msgs,
    /// Messages queued to clients (one per client per message).
    messages_sent,
    /// Bytes written to client sockets.
    bytes_sent,
    /// `write` calls on client sockets (batching: `messages_sent / socket_writes` messages
    /// per call).
    socket_writes,
    /// Book, snapshot, quote, book ticker and imbalance messages dropped for clients over
    /// their soft limit.
    conflations,
    /// Fresh state sent to a client after its conflated backlog drained.
    resnapshots,
    /// Timer snapshots due while every subscriber was conflating: neither refreshed nor
    /// encoded (each subscriber gets fresh state once it drains).
    timer_snapshots_skipped,
    /// Clients closed with 1008 `Too much backpressure` (over the hard limit).
    slow_client_closes,
    /// Queued bytes dropped at those closes (the close frame goes ahead of the backlog).
    slow_close_dropped_bytes,
    /// Clients terminated for sending nothing between two heartbeat pings.
    heartbeat_timeouts,
    /// Connections closed for not completing their request head within
    /// `handshake_timeout_ms`.
    handshake_timeouts,
    /// Pending handshakes closed to make room under `max_pending_handshakes` or
    /// `max_pending_handshakes_per_ip`.
    handshakes_evicted,
    /// Connections refused at accept with 503 because a pending-handshake limit is 0.
    handshakes_refused,
    /// Clients that closed the connection (close frame or TCP close) or failed on I/O.
    client_disconnects,
    /// Client data frames (text, binary) received and ignored.
    client_frames_ignored,
    /// Upgrades to `/ws-replay-normalized` handed to the replay API (its own counters say
    /// how they ended).
    replay_handoffs,
    /// Options naming an exchange pinfeed does not serve.
    unknown_exchange,
    /// Options naming a symbol pinfeed does not serve on that exchange.
    unknown_symbol,
    /// Options naming an unknown data type, or one pinfeed or the exchange does not provide.
    unknown_data_type,
    /// `disconnect` messages queued.
    disconnects_sent,
    /// `book_invalid` messages queued.
    book_invalid_sent,
    /// Book notices whose state a shard never read because a later version was already in
    /// the slot (latest-state conflation of snapshots, quotes and imbalance).
    book_states_conflated,
    /// Slot reads retried because the book thread was writing the slot at the same time.
    slot_read_retries,
    /// Full-book snapshot requests sent to the book thread (`book_change` joins and
    /// recoveries; at most one outstanding per instrument and shard).
    snapshot_requests,
    /// Snapshot requests that found the request ring full (the subscriber waits for the
    /// next venue snapshot instead).
    snapshot_requests_dropped,
    /// `book_change` snapshots queued to waiting subscribers in answer to a request.
    resnapshots_sent,
    /// Messages taken from the trade lanes (trades, liquidations, tickers).
    lane_msgs,
    /// Ring messages for an instrument id not in the registry, or out of sequence (a level
    /// outside a book message); ignored.
    bad_fanout_msgs,
}

impl FanoutCounters {
    /// The counter of one kind of refused request.
    pub fn bad_request(&self, kind: BadRequest) -> u64 {
        self.bad_requests[kind as usize]
    }
}

impl FanoutStats {
    /// The counter of one kind of refused request.
    pub fn bad_request(&self, kind: BadRequest) -> u64 {
        self.bad_requests[kind as usize].load(Ordering::Relaxed)
    }
}

/// The counters of every fan-out shard, in shard order.
#[derive(Clone, Debug, Default)]
pub struct ShardStats {
    /// One per shard.
    pub shards: Vec<std::sync::Arc<FanoutStats>>,
}

impl ShardStats {
    /// The sum over shards (`clients` is the total connected).
    pub fn load(&self) -> FanoutCounters {
        let mut sum = FanoutCounters::default();
        for s in &self.shards {
            sum.add(&s.load());
        }
        sum
    }

    /// Each shard's counters.
    pub fn per_shard(&self) -> Vec<FanoutCounters> {
        self.shards.iter().map(|s| s.load()).collect()
    }
}

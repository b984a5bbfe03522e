//! Every message type that crosses between the engine's threads, in one place, each with
//! the queue it travels on and that queue's drop policy (`DESIGN.md`, queues):
//!
//! | type | from → to | queue | when full |
//! |---|---|---|---|
//! | [`IngestItem`] | ingest / REST thread → book thread | SPSC ring per connection, one for REST | book event: the message is dropped and its book resyncs ([`IngestItem::Lost`] goes first once there is room); markers wait |
//! | [`FanoutMsg`] (book) | book thread → fan-out shard | SPSC ring per shard | the book message and its notice are dropped, the book is republished as its latest state; `BookInvalid`/`Disconnect` wait in a queue and are never dropped |
//! | [`FanoutMsg`] (trade lane) | ingest thread → fan-out shard | SPSC ring per connection and shard | dropped and counted |
//! | [`ShardRequest`] | fan-out shard → book thread | SPSC ring per shard (4 per instrument + 64) | counted (`snapshot_requests_dropped`); the subscriber waits for the venue's next snapshot |
//! | [`IngestControl`] | book thread → ingest thread | bounded channel (256) | counted (`requests_requeued`), asked again by housekeeping |
//! | [`RestRequest`] | book thread → REST thread | bounded channel (4096) | counted (`requests_requeued`), asked again by housekeeping |
//!
//! Book state itself does not travel as messages: it sits in the latest-state slots
//! ([`crate::pipeline::slot`]), and a [`FanoutMsg::Book`] notice says a new version is there.

use crate::book::PackedTickerState;
use crate::model::{Event, Exchange, InstrumentId, Stamps};

/// What an ingest thread (or the REST thread) sends the book thread, in order, over its ring.
///
/// Items travel by value through preallocated ring slots, so every variant takes the size of
/// an [`Event`]; boxing the large one would allocate per event on the hot path.
#[derive(Copy, Clone, Debug, PartialEq)]
#[allow(clippy::large_enum_variant)]
pub enum IngestItem {
    /// A normalized event.
    Event(Event),
    /// Events of a book message of this instrument were dropped on a full ring: its chain is
    /// broken and it must resync (the message's other events were dropped too).
    Lost(InstrumentId),
    /// The connection is open and subscribed.
    Connected,
    /// The connection dropped.
    Disconnected {
        /// Wall clock of the last frame received before the drop, unix ns (0 if none).
        last_recv_ts_ns: i64,
    },
}

/// A request from the book thread to an ingest thread.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum IngestControl {
    /// Unsubscribe and resubscribe the book of this instrument, so the venue sends a fresh
    /// WebSocket snapshot (Bybit, OKX, Deribit).
    Resubscribe(InstrumentId),
    /// Drop the connection and reconnect (a resync that resubscribing did not fix).
    Reconnect,
}

/// A request to the REST thread.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum RestRequest {
    /// Fetch a fresh depth snapshot of `instrument`, carried by connection `conn`.
    Snapshot {
        /// Connection index.
        conn: usize,
        /// The book.
        instrument: InstrumentId,
    },
}

/// A new state in an instrument's latest-state slot.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct BookNotice {
    /// The instrument.
    pub instrument: InstrumentId,
    /// The slot version written ([`SlotHeader::version`]).
    pub version: u64,
    /// Stamps of the applied message.
    pub stamps: Stamps,
}

/// What the book thread publishes to a fan-out shard, in order, over one SPSC ring; and what
/// an ingest thread publishes over its trade lane (`Event` trades, liquidations and book
/// tickers, and `Ticker`).
///
/// Book messages (a `BookBegin`, its `Level`s, a `BookEnd`) arrive only when the book engine
/// applied them and the shard has `book_change` subscribers of the instrument
/// ([`BookSlots::want_deltas`]); every applied message is announced by a [`FanoutMsg::Book`]
/// after its slot was written.
#[derive(Copy, Clone, Debug, PartialEq)]
pub enum FanoutMsg {
    /// A trade, liquidation, book ticker, or one event of an applied book message. (Raw
    /// `DerivativeTicker` events are not sent: see `Ticker`.)
    Event(Event),
    /// The book thread published version `version` of the instrument's slot. The slot may
    /// already hold a later version: the shard reads the latest (conflation by construction)
    /// and skips notices of versions it has seen.
    Book(BookNotice),
    /// The snapshot book message that follows answers this shard's snapshot request: only the
    /// `book_change` subscribers waiting for a snapshot of the instrument get it.
    Resnapshot(InstrumentId),
    /// Merged derivative-ticker state after a value changed.
    Ticker(PackedTickerState),
    /// The book of the instrument lost sync (gap, checksum mismatch, dropped delta, lost
    /// connection). Clients asking `withIntegrityMessages` get `book_invalid`; the next
    /// applied snapshot for it is sent with `isSnapshot: true`.
    BookInvalid(InstrumentId),
    /// Upstream connection `conn` carrying `exchange` dropped; `disconnect` messages follow
    /// for the clients of its books, whose state resets (a fresh snapshot comes after the
    /// reconnect). Books of the same exchange on other connections are untouched.
    Disconnect {
        /// The exchange id.
        exchange: Exchange,
        /// The connection's index in the config.
        conn: u32,
        /// Wall clock of the last frame received before the drop, unix ns.
        last_recv_ts_ns: i64,
    },
}

/// What a fan-out shard asks of the book thread, over its request ring.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum ShardRequest {
    /// The instrument's whole book as a snapshot message after a `Resnapshot` marker, for
    /// the shard's `book_change` subscribers waiting for one.
    Snapshot(InstrumentId),
    /// Rewrite the instrument's slot at the depth now wanted and send a notice: the shard's
    /// wanted depth grew (a deeper series), and the book may be quiet.
    Refresh(InstrumentId),
}

//! Fan-out to clients: the tardis-machine WebSocket API on one mio thread that owns the
//! listener and every client socket.

pub mod encode;

use crate::book::TickerState;
use crate::model::{Event, Exchange, InstrumentId};

/// What the book thread publishes to the fan-out thread, in order, over one SPSC ring.
///
/// Book messages arrive only when the book engine applied them (a `BookBegin`, its `Level`s,
/// a `BookEnd`), so the fan-out can keep its own copy of each book for snapshots and quotes.
#[derive(Copy, Clone, Debug, PartialEq)]
pub enum FanoutMsg {
    /// A trade, liquidation, book ticker, or one event of an applied book message. (Raw
    /// `DerivativeTicker` events are not sent: see `Ticker`.)
    Event(Event),
    /// Merged derivative-ticker state after a value changed.
    Ticker(TickerState),
    /// The book of the instrument lost sync (gap, checksum mismatch, dropped delta, lost
    /// connection). Clients asking `withIntegrityMessages` get `book_invalid`; the next
    /// applied snapshot for it is sent with `isSnapshot: true`.
    BookInvalid(InstrumentId),
    /// An upstream connection carrying `exchange` dropped; `disconnect` messages follow, and
    /// book state of that exchange resets (a fresh snapshot comes after the reconnect).
    Disconnect {
        /// The exchange id.
        exchange: Exchange,
        /// Wall clock of the last frame received before the drop, unix ns.
        last_recv_ts_ns: i64,
    },
}

//! pinfeed: a market-data engine for crypto venues.
#![deny(missing_docs, unsafe_op_in_unsafe_fn)]
#![warn(clippy::undocumented_unsafe_blocks)]

pub mod book;
pub mod config;
pub mod fanout;
pub mod model;
pub mod replay;
pub mod sim;
#[cfg(test)]
pub(crate) mod testutil;
pub mod venue;

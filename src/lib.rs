//! pinfeed: a market-data engine for crypto venues.
#![deny(missing_docs, unsafe_op_in_unsafe_fn)]
#![warn(clippy::undocumented_unsafe_blocks)]

pub mod audit;
pub mod bench;
pub mod book;
pub mod clock;
pub mod config;
pub mod demo;
pub mod fanout;
pub mod fuzzing;
pub mod ingest;
pub mod limits;
pub mod metrics;
pub mod model;
pub mod pipeline;
pub mod replay;
pub mod replay_api;
pub mod run;
pub mod sim;
#[cfg(test)]
pub(crate) mod testutil;
pub mod venue;

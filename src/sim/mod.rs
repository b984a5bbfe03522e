//! Venue simulation and recording formats.

pub mod catalog;
pub mod fault;
pub mod http;
pub mod recording;
pub mod server;
pub mod session;
pub mod synthetic;
pub mod tls;

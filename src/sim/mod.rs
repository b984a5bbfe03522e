//! Venue simulation and recording formats.

pub mod recording;

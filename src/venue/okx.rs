//! STUB: to be written.

use crate::model::{Instruments, Sequence, Stamps, SyncVerdict};

use super::{ConnectPlan, Feed, FrameKind, ParseError, Sink, Subscription};

/// Parser for one connection.
pub struct Parser {
    _feed: Feed,
}

impl Parser {
    /// A parser for `feed`.
    pub fn new(feed: Feed) -> Parser {
        Parser { _feed: feed }
    }

    /// See [`super::VenueParser::parse_frame`].
    ///
    /// # Errors
    /// A [`ParseError`].
    pub fn parse_frame<S: Sink>(
        &mut self,
        _frame: &mut [u8],
        _recv: Stamps,
        _instruments: &Instruments,
        _sink: &mut S,
    ) -> Result<FrameKind, ParseError> {
        Err(ParseError::UnknownMessage)
    }

    /// See [`super::VenueParser::parse_rest`].
    ///
    /// # Errors
    /// A [`ParseError`].
    pub fn parse_rest<S: Sink>(
        &mut self,
        _url: &str,
        _body: &mut [u8],
        _recv: Stamps,
        _instruments: &Instruments,
        _sink: &mut S,
    ) -> Result<FrameKind, ParseError> {
        Ok(FrameKind::Ignored)
    }
}

/// Sync rule.
pub fn check_sequence(_last: &Sequence, _after_snapshot: bool, _next: &Sequence) -> SyncVerdict {
    SyncVerdict::Apply
}

/// See [`super::connect_plan`].
pub fn connect_plan(
    _feed: Feed,
    ws_base: &str,
    _rest_base: &str,
    _subs: &[Subscription],
) -> ConnectPlan {
    ConnectPlan {
        ws_url: ws_base.to_string(),
        subscribe_frames: vec![],
        snapshot_urls: vec![],
        keepalive: None,
    }
}

/// See [`super::subscriptions_from_wire`].
pub fn subscriptions_from_wire(_feed: Feed, _ws_url: &str, _sent: &[String]) -> Vec<Subscription> {
    vec![]
}

/// Levels per side the checksum covers.
pub const CHECKSUM_LEVELS: usize = 25;

/// STUB checksum.
pub fn checksum(
    _bids: &[(crate::model::Decimal, crate::model::Decimal)],
    _asks: &[(crate::model::Decimal, crate::model::Decimal)],
) -> i32 {
    0
}

//! The simulator's REST side: depth snapshots and other recorded GETs, with the `rest`
//! faults (429 with `Retry-After`, 500, timeout).

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::{Shared, count, respond};
use crate::sim::fault::RestFailure;
use crate::sim::http::{self, Request};
use crate::sim::tls::Stream;
use crate::venue::Feed;

/// Answers one plain HTTP request; returns whether the connection stays open.
pub(super) fn serve_http(shared: &Shared, stream: &mut Stream, req: &Request) -> bool {
    let stats = &shared.stats;
    let keep = req.keep_alive();
    let head_only = req.method == "HEAD";
    if req.method != "GET" && !head_only {
        count(&stats.bad_requests);
        let _ = respond(
            stream,
            &http::error_response(405, "only GET is served", false),
        );
        return false;
    }
    if req.path.ends_with("/depth") {
        if let Some((failure, secs)) = shared
            .fault_log
            .rest_failure(rest_feed(&req.path), &req.path)
        {
            match failure {
                RestFailure::Status(status) => {
                    let mut r = http::error_response(status, "fault injected", false);
                    if status == 429 {
                        // RFC 9110 section 10.2.3; Binance sends it with its 429s
                        let at = r.windows(4).position(|w| w == b"\r\n\r\n").unwrap_or(0);
                        r.splice(at..at, b"\r\nRetry-After: 1".iter().copied());
                    }
                    let _ = respond(stream, &r);
                }
                RestFailure::Timeout => {
                    let until = Instant::now() + secs;
                    while Instant::now() < until && !shared.stop.load(Ordering::Relaxed) {
                        std::thread::sleep(Duration::from_millis(20));
                    }
                }
            }
            return false;
        }
    }
    let synthetic = shared
        .synthetic
        .as_ref()
        .and_then(|s| s.http_body(&req.path, &req.query));
    let response = if let Some(body) = synthetic {
        count(&stats.http_ok);
        http::response(200, "application/json", &body, keep, head_only)
    } else if let Some(entry) = shared.catalog.http_body(&req.path, &req.query) {
        count(&stats.http_ok);
        http::response(200, "application/json", &entry.body, keep, head_only)
    } else if shared.catalog.route_ws(&req.path, &req.query).is_some() {
        count(&stats.bad_requests);
        http::error_response(426, "this is a WebSocket endpoint: send an upgrade", keep)
    } else {
        count(&stats.http_not_found);
        let msg = format!("{} was not recorded", req.path);
        http::error_response(404, &msg, keep)
    };
    respond(stream, &response).is_ok() && keep
}

/// The Binance feed whose REST depth snapshots are served at `path`.
fn rest_feed(path: &str) -> Option<Feed> {
    if path.starts_with("/fapi/") {
        Some(Feed::BinanceFutures)
    } else if path.starts_with("/dapi/") {
        Some(Feed::BinanceDelivery)
    } else if path.starts_with("/api/") {
        Some(Feed::BinanceSpot)
    } else {
        None
    }
}

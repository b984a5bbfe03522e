//! The simulator's WebSocket side: the upgrade on a venue path, then the session loop
//! (recorded or synthetic flow, venue replies, faults).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tungstenite::error::ProtocolError;
use tungstenite::handshake::derive_accept_key;
use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::protocol::{CloseFrame, Role, WebSocketConfig};
use tungstenite::{Message, Utf8Bytes, WebSocket};

use super::{
    BATCH_BYTES, CLOSE_GRACE, IDLE_POLL, MAX_CLIENT_MESSAGE_BYTES, STALL_LIMIT, Shared, count,
    respond,
};
use crate::sim::fault::{ConnFaults, FaultLog, Turn, before_turn, is_book_delta};
use crate::sim::http::{self, Request};
use crate::sim::session::{Next, Session, SessionCounters};
use crate::sim::synthetic::{SynthSession, run_ws};
use crate::sim::tls::Stream;

/// Completes a WebSocket handshake on a venue path and runs the session.
pub(super) fn serve_ws(
    shared: &Shared,
    mut stream: Stream,
    req: &Request,
    leftover: Vec<u8>,
    id: u64,
) {
    let stats = &shared.stats;
    let Some((feed_idx, raw)) = shared.catalog.route_ws(&req.path, &req.query) else {
        count(&stats.ws_rejected);
        let msg = format!("no venue WebSocket at {}", req.path);
        let _ = respond(&mut stream, &http::error_response(404, &msg, false));
        stream.shutdown();
        return;
    };
    let key = req.header("sec-websocket-key").filter(|k| !k.is_empty());
    let valid = req.method == "GET"
        && req.header_has("connection", "upgrade")
        && req.header("sec-websocket-version") == Some("13");
    let (Some(key), true) = (key, valid) else {
        count(&stats.bad_requests);
        let _ = respond(
            &mut stream,
            &http::error_response(400, "malformed WebSocket upgrade", false),
        );
        stream.shutdown();
        return;
    };
    let accept = derive_accept_key(key.as_bytes());
    let response = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n\r\n"
    );
    if respond(&mut stream, response.as_bytes()).is_err() {
        count(&stats.io_errors);
        return;
    }
    if stream.tcp().set_nonblocking(true).is_err() {
        count(&stats.io_errors);
        return;
    }
    count(&stats.ws_sessions);
    let config = WebSocketConfig::default()
        .max_message_size(Some(MAX_CLIENT_MESSAGE_BYTES))
        .max_frame_size(Some(MAX_CLIENT_MESSAGE_BYTES))
        .max_write_buffer_size(64 << 20);
    let mut ws = WebSocket::from_partially_read(stream, leftover, Role::Server, Some(config));
    let cat = &shared.catalog.feeds[feed_idx];
    let mut faults = ConnFaults::new(&shared.faults, cat.feed, id);
    let mut session = Session::new(
        cat,
        raw,
        &req.path,
        &req.query,
        format!("pinfeed-sim-{id}"),
        Instant::now(),
    );
    match &shared.synthetic {
        Some(syn) => {
            let mut flow = SynthSession::new(syn, feed_idx, raw);
            let c = run_ws(
                &shared.stop,
                &mut ws,
                &mut session,
                &mut flow,
                faults.as_mut().map(|f| (f, &shared.fault_log)),
            );
            stats
                .binary_frames
                .fetch_add(c.binary_frames, Ordering::Relaxed);
            if c.dropped {
                count(&stats.dropped_clients);
            }
        }
        None => ws_loop(
            shared,
            &mut ws,
            &mut session,
            faults.as_mut().map(|f| (f, &shared.fault_log)),
        ),
    }
    let SessionCounters {
        subscribe_requests,
        pings,
        invalid_requests,
        catch_up_frames,
        heartbeats,
    } = session.counters;
    let add = |c: &AtomicU64, n: u64| c.fetch_add(n, Ordering::Relaxed);
    add(&stats.subscribe_requests, subscribe_requests);
    add(&stats.pings, pings);
    add(&stats.invalid_requests, invalid_requests);
    add(&stats.catch_up_frames, catch_up_frames);
    add(&stats.heartbeats, heartbeats);
    let stream = ws.get_mut();
    let _ = stream.tcp().set_nonblocking(false);
    stream.shutdown();
}

fn would_block(e: &tungstenite::Error) -> bool {
    matches!(e, tungstenite::Error::Io(io) if io.kind() == std::io::ErrorKind::WouldBlock)
}

/// The WebSocket loop of one session, on a non-blocking socket: read client frames until
/// `WouldBlock`, send what is due, flush, sleep until the next frame is due (at most
/// [`IDLE_POLL`]). A write that would block keeps its frame queued in tungstenite and pauses
/// the data until the client reads again.
fn ws_loop(
    shared: &Shared,
    ws: &mut WebSocket<Stream>,
    s: &mut Session<'_>,
    mut faults: Option<(&mut ConnFaults, &FaultLog)>,
) {
    let stats = &shared.stats;
    let mut pending = false;
    let mut closing: Option<Instant> = None;
    let mut blocked_since: Option<Instant> = None;
    let mut pass_counted = false;
    loop {
        let now = Instant::now();
        if closing.is_none() && shared.stop.load(Ordering::Relaxed) {
            closing = Some(now);
            let frame = CloseFrame {
                code: CloseCode::Away,
                reason: "simulator stopping".into(),
            };
            if let Err(e) = ws.close(Some(frame)) {
                if !would_block(&e) {
                    return;
                }
            }
        }
        if let Some((f, log)) = faults.as_mut() {
            match before_turn(f, log, ws, now, &mut closing) {
                Turn::Go => {}
                Turn::Skip => continue,
                Turn::End => return,
            }
        }
        let reads_paused = faults.as_ref().is_some_and(|(f, _)| f.reads_paused(now));
        loop {
            if reads_paused {
                break;
            }
            match ws.read() {
                Ok(Message::Text(text)) => {
                    if closing.is_some() {
                        continue;
                    }
                    for out in s.on_text(text.as_str(), now) {
                        match ws.write(Message::Text(out)) {
                            Ok(()) => {}
                            Err(e) if would_block(&e) => pending = true,
                            Err(_) => return,
                        }
                    }
                }
                Ok(Message::Binary(_)) => count(&stats.binary_frames),
                Ok(_) => {}
                Err(e) if would_block(&e) => break,
                Err(tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed) => {
                    return;
                }
                Err(tungstenite::Error::Io(_))
                | Err(tungstenite::Error::Protocol(ProtocolError::ResetWithoutClosingHandshake)) => {
                    return;
                }
                Err(_) => {
                    // protocol violations, oversized messages, invalid UTF-8
                    count(&stats.dropped_clients);
                    return;
                }
            }
        }
        if let Some(since) = closing {
            match ws.flush() {
                Err(e) if !would_block(&e) => return,
                _ => {}
            }
            if now.duration_since(since) > CLOSE_GRACE {
                return;
            }
            std::thread::sleep(Duration::from_millis(2));
            continue;
        }
        if let Some(hb) = s.heartbeat_due(now) {
            match ws.write(Message::Text(hb)) {
                Ok(()) => {}
                Err(e) if would_block(&e) => pending = true,
                Err(_) => return,
            }
        }
        let mut wake = now + IDLE_POLL;
        let may_send = match faults.as_mut() {
            Some((f, _)) => f.may_send(now),
            None => true,
        };
        if !pending && may_send {
            let mut bytes = 0usize;
            loop {
                match s.poll(now, shared.speed) {
                    Next::Frame(f) => {
                        bytes += f.len();
                        count(&stats.frames_sent);
                        let (mut blocked, mut failed) = (false, false);
                        let mut write = |f: Utf8Bytes| match ws.write(Message::Text(f)) {
                            Ok(()) => {}
                            // queued; the flush below finds the socket full
                            Err(e) if would_block(&e) => blocked = true,
                            Err(_) => failed = true,
                        };
                        match faults.as_mut() {
                            Some((fs, log)) => {
                                let delta = is_book_delta(s.feed(), f.as_str());
                                fs.on_frame(f, delta, log, &mut write);
                            }
                            None => write(f),
                        }
                        if failed {
                            return;
                        }
                        if blocked {
                            break;
                        }
                        if bytes >= BATCH_BYTES {
                            wake = now;
                            break;
                        }
                    }
                    Next::Wait(t) => {
                        wake = wake.min(t);
                        break;
                    }
                    Next::Idle => break,
                    Next::PassDone => {
                        if !pass_counted {
                            pass_counted = true;
                            count(&stats.passes);
                            if shared.looped {
                                closing = Some(now);
                                let frame = CloseFrame {
                                    code: CloseCode::Normal,
                                    reason: "end of recording pass".into(),
                                };
                                if let Err(e) = ws.close(Some(frame)) {
                                    if !would_block(&e) {
                                        return;
                                    }
                                }
                            }
                        }
                        break;
                    }
                }
            }
        }
        if let Some(h) = faults.as_mut().and_then(|(f, _)| f.take_held()) {
            match ws.write(Message::Text(h)) {
                Ok(()) => {}
                Err(e) if would_block(&e) => {}
                Err(_) => return,
            }
        }
        match ws.flush() {
            Ok(()) => {
                pending = false;
                blocked_since = None;
            }
            Err(e) if would_block(&e) => pending = true,
            Err(_) => return,
        }
        if pending {
            let since = *blocked_since.get_or_insert(now);
            if now.duration_since(since) > STALL_LIMIT {
                count(&stats.dropped_clients);
                return;
            }
            wake = now + Duration::from_millis(1);
        }
        if let Some(h) = s.next_heartbeat() {
            wake = wake.min(h);
        }
        let after = Instant::now();
        if wake > after {
            std::thread::sleep((wake - after).min(IDLE_POLL));
        }
    }
}

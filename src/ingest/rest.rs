//! REST snapshots and polls, on one cold thread.
//!
//! The book thread asks for a depth snapshot of one instrument through a crossbeam channel
//! ([`RestRequest`]); the thread fetches the connection's `snapshot_urls` entry with ureq
//! (rustls, the same trust roots as the WebSocket), parses the body with the venue parser
//! and hands the events to the book thread through a ring of its own. Repeated requests for
//! one instrument are spaced by the reconnect backoff (a snapshot that keeps arriving too
//! old must not hammer the venue); failures are retried with the same backoff. `poll_urls`
//! (Binance open interest) are fetched at their period.
//!
//! Ring policy: this producer is cold, so it waits for room for a whole message rather than
//! dropping it ([`RestWorker`] never calls a dropping push on a full ring).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError};
use crossbeam_utils::CachePadded;
use rustls_pki_types::CertificateDer;

use crate::clock::{mono_ns, wall_ns};
use crate::model::{Event, InstrumentId, Instruments, Stamps};
use crate::pipeline::stats::{RestStats, bump};
use crate::pipeline::{RingProducer, Wakeup};
use crate::venue::{ConnectPlan, Feed, VenueParser};

use super::{IngestItem, backoff_delay};

/// Largest REST body read, bytes (a 1,000-level depth snapshot is about 60 KB).
pub const MAX_BODY_BYTES: u64 = 16 << 20;

/// Requests a snapshot whose last fetch was longer ago than this start from no spacing.
const SPACING_RESET: Duration = Duration::from_secs(60);

pub use crate::pipeline::msg::RestRequest;

/// Why a REST request failed.
#[derive(Debug, thiserror::Error)]
pub enum RestError {
    /// Transport, TLS, HTTP status or body-size failure.
    #[error("GET {url}: {message}")]
    Http {
        /// The URL.
        url: String,
        /// What went wrong.
        message: String,
    },
    /// A non-2xx status; `retry_after` from the `Retry-After` header (seconds), when given.
    #[error("GET {url}: status {status}{}", retry_after.map(|d| format!(" (Retry-After {} s)", d.as_secs())).unwrap_or_default())]
    Status {
        /// The URL.
        url: String,
        /// The HTTP status.
        status: u16,
        /// How long the venue asks to wait before the next request.
        retry_after: Option<Duration>,
    },
}

impl RestError {
    /// The wait the venue asked for (`Retry-After`), capped at [`MAX_RETRY_AFTER`].
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            RestError::Status { retry_after, .. } => retry_after.map(|d| d.min(MAX_RETRY_AFTER)),
            RestError::Http { .. } => None,
        }
    }

    /// True for 429 (rate limited) and 418 (Binance: IP banned for ignoring 429s).
    pub fn rate_limited(&self) -> bool {
        matches!(
            self,
            RestError::Status {
                status: 418 | 429,
                ..
            }
        )
    }
}

/// Longest `Retry-After` honoured; a longer one (a Binance 418 ban can last days) waits this
/// long, then asks again.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(300);

/// A blocking HTTP client trusting given roots.
#[derive(Clone, Debug)]
pub struct RestClient {
    agent: ureq::Agent,
}

impl RestClient {
    /// A client trusting `roots` (see [`super::tls::trust_roots`]), with `timeout` for the
    /// whole request.
    pub fn new(roots: &[CertificateDer<'static>], timeout: Duration) -> RestClient {
        let certs: Vec<ureq::tls::Certificate<'static>> = roots
            .iter()
            .map(|c| ureq::tls::Certificate::from_der(c.as_ref()).to_owned())
            .collect();
        let tls = ureq::tls::TlsConfig::builder()
            .root_certs(ureq::tls::RootCerts::new_with_certs(&certs))
            .build();
        let agent = ureq::Agent::config_builder()
            .tls_config(tls)
            // statuses come back as responses, so that Retry-After can be read
            .http_status_as_error(false)
            .timeout_global(Some(timeout))
            .user_agent(concat!("pinfeed/", env!("CARGO_PKG_VERSION")))
            .build()
            .into();
        RestClient { agent }
    }

    /// GETs `url` and returns its body.
    ///
    /// # Errors
    /// [`RestError::Http`] for transport errors, non-2xx statuses and bodies over
    /// [`MAX_BODY_BYTES`].
    pub fn get(&self, url: &str) -> Result<Vec<u8>, RestError> {
        let err = |e: ureq::Error| RestError::Http {
            url: url.to_string(),
            message: e.to_string(),
        };
        let mut response = self.agent.get(url).call().map_err(err)?;
        let status = response.status();
        if !status.is_success() {
            // Binance (https://developers.binance.com/docs/derivatives/usds-margined-futures/
            // general-info, "LIMITS"): "A Retry-After header is sent with a 418 or 429
            // responses and will give the number of seconds required to wait"
            let retry_after = response
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map(Duration::from_secs);
            return Err(RestError::Status {
                url: url.to_string(),
                status: status.as_u16(),
                retry_after,
            });
        }
        response
            .body_mut()
            .with_config()
            .limit(MAX_BODY_BYTES)
            .read_to_vec()
            .map_err(err)
    }
}

/// One connection as the REST thread sees it.
pub struct RestConnection {
    /// The feed (picks the parser).
    pub feed: Feed,
    /// Its plan: `snapshot_urls` and `poll_urls`.
    pub plan: ConnectPlan,
    /// A client trusting the connection's roots.
    pub client: RestClient,
}

enum JobKind {
    Snapshot { conn: usize, id: InstrumentId },
    Poll { conn: usize, index: usize },
}

struct Job {
    due: Instant,
    kind: JobKind,
}

/// A fetch: `Ok` delivered (or nothing to fetch), `Err` failed, with the venue's
/// `Retry-After` when it gave one.
type Fetched = Result<(), Option<Duration>>;

/// The REST cold thread.
pub struct RestWorker {
    /// Connections, by index.
    pub connections: Vec<RestConnection>,
    /// Interned instruments.
    pub instruments: Arc<Instruments>,
    /// Ring to the book thread.
    pub ring: RingProducer<IngestItem>,
    /// Wakes the book thread.
    pub wakeup: Arc<Wakeup>,
    /// Counters.
    pub stats: Arc<CachePadded<RestStats>>,
    /// Snapshot requests from the book thread.
    pub requests: Receiver<RestRequest>,
    /// Set to end the thread.
    pub stop: Arc<AtomicBool>,
}

/// Per-instrument request state.
#[derive(Clone, Default)]
struct Pacing {
    queued: bool,
    failures: u32,
    recent: u32,
    last_fetch: Option<Instant>,
}

impl RestWorker {
    /// Runs until `stop` is set or the request channel closes.
    pub fn run(mut self) {
        let mut parsers: Vec<VenueParser> = self
            .connections
            .iter()
            .map(|c| VenueParser::new(c.feed))
            .collect();
        let mut jobs: Vec<Job> = Vec::new();
        let now = Instant::now();
        for (conn, c) in self.connections.iter().enumerate() {
            for index in 0..c.plan.poll_urls.len() {
                jobs.push(Job {
                    due: now,
                    kind: JobKind::Poll { conn, index },
                });
            }
        }
        let mut pacing = vec![Pacing::default(); self.instruments.len()];
        let mut events: Vec<Event> = Vec::with_capacity(4096);
        let mut rng = super::Jitter::new(0x5eed);
        loop {
            if self.stop.load(Ordering::Relaxed) {
                break;
            }
            // run the first due job
            let now = Instant::now();
            if let Some(i) = jobs
                .iter()
                .enumerate()
                .filter(|(_, j)| j.due <= now)
                .min_by_key(|(_, j)| j.due)
                .map(|(i, _)| i)
            {
                let job = jobs.swap_remove(i);
                match job.kind {
                    JobKind::Snapshot { conn, id } => {
                        let p = &mut pacing[id.index()];
                        p.last_fetch = Some(Instant::now());
                        let fetched = self.snapshot(&mut parsers, conn, id, &mut events);
                        let p = &mut pacing[id.index()];
                        if fetched.is_ok() {
                            p.queued = false;
                            p.failures = 0;
                        } else {
                            p.failures += 1;
                            // the venue's Retry-After, when longer than our own backoff
                            let wait = backoff_delay(p.failures - 1, rng.next_unit())
                                .max(fetched.err().flatten().unwrap_or_default());
                            jobs.push(Job {
                                due: Instant::now() + wait,
                                kind: JobKind::Snapshot { conn, id },
                            });
                        }
                    }
                    JobKind::Poll { conn, index } => {
                        let (_, url, period_ms) =
                            self.connections[conn].plan.poll_urls[index].clone();
                        let _ =
                            self.fetch_and_deliver(&mut parsers, conn, &url, &mut events, false);
                        jobs.push(Job {
                            due: Instant::now() + Duration::from_millis(period_ms.max(100)),
                            kind: JobKind::Poll { conn, index },
                        });
                    }
                }
                continue;
            }
            let next = jobs.iter().map(|j| j.due).min();
            let wait = next
                .map(|d| d.saturating_duration_since(now))
                .unwrap_or(Duration::from_millis(100))
                .min(Duration::from_millis(100));
            match self.requests.recv_timeout(wait) {
                Ok(RestRequest::Snapshot { conn, instrument }) => {
                    let Some(p) = pacing.get_mut(instrument.index()) else {
                        continue;
                    };
                    if p.queued || conn >= self.connections.len() {
                        continue;
                    }
                    p.queued = true;
                    let now = Instant::now();
                    let mut due = now;
                    if let Some(last) = p.last_fetch {
                        if now.duration_since(last) > SPACING_RESET {
                            p.recent = 0;
                        }
                        if p.recent > 0 {
                            due = last + backoff_delay(p.recent - 1, rng.next_unit());
                        }
                    }
                    p.recent += 1;
                    jobs.push(Job {
                        due,
                        kind: JobKind::Snapshot {
                            conn,
                            id: instrument,
                        },
                    });
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
            }
        }
    }

    /// Fetches the snapshot of `id` ([`Fetched`]).
    fn snapshot(
        &mut self,
        parsers: &mut [VenueParser],
        conn: usize,
        id: InstrumentId,
        events: &mut Vec<Event>,
    ) -> Fetched {
        let (_, symbol) = self.instruments.name(id);
        let Some(url) = self.connections[conn]
            .plan
            .snapshot_urls
            .iter()
            .find(|(s, _)| s == symbol)
            .map(|(_, u)| u.clone())
        else {
            return Ok(());
        };
        self.fetch_and_deliver(parsers, conn, &url, events, true)
    }

    fn fetch_and_deliver(
        &mut self,
        parsers: &mut [VenueParser],
        conn: usize,
        url: &str,
        events: &mut Vec<Event>,
        snapshot: bool,
    ) -> Fetched {
        let mut body = match self.connections[conn].client.get(url) {
            Ok(b) => b,
            Err(e) => {
                bump(&self.stats.failures, 1);
                if e.rate_limited() {
                    bump(&self.stats.rate_limited, 1);
                }
                let retry_after = e.retry_after();
                eprintln!("pinfeed: rest: {e}");
                return Err(retry_after);
            }
        };
        bump(&self.stats.bytes, body.len() as u64);
        let recv = Stamps {
            exch_ts_ns: 0,
            recv_ts_ns: wall_ns(),
            recv_mono_ns: mono_ns(),
            push_delta_ns: 0,
            applied_delta_ns: 0,
        };
        events.clear();
        let result = parsers[conn].parse_rest(url, &mut body, recv, &self.instruments, &mut |ev| {
            events.push(ev)
        });
        if let Err(e) = result {
            bump(&self.stats.parse_errors, 1);
            eprintln!("pinfeed: rest: GET {url}: {e}");
            return Err(None);
        }
        if !self.deliver(events) {
            return Err(None);
        }
        bump(
            if snapshot {
                &self.stats.snapshots
            } else {
                &self.stats.polls
            },
            1,
        );
        Ok(())
    }

    /// Waits for room for all of `events`, then pushes them.
    fn deliver(&mut self, events: &[Event]) -> bool {
        if events.is_empty() {
            return true;
        }
        let items: Vec<IngestItem> = events.iter().map(|e| IngestItem::Event(*e)).collect();
        while self.ring.slots() < items.len() {
            if self.stop.load(Ordering::Relaxed) || self.ring.is_abandoned() {
                return false;
            }
            if items.len() > self.ring.stats().capacity() {
                // can never fit: count it and give up
                self.ring.count_dropped(items.len() as u64);
                return false;
            }
            self.wakeup.notify();
            std::thread::sleep(Duration::from_millis(1));
        }
        let ok = self.ring.push_all(&items).is_ok();
        self.wakeup.notify();
        ok
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::TcpListener;

    /// A one-shot HTTP responder on 127.0.0.1.
    fn serve_once(status: &str, body: &'static str) -> (String, std::thread::JoinHandle<String>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let status = status.to_string();
        let h = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            let mut req = Vec::new();
            let mut buf = [0u8; 1024];
            while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                let n = s.read(&mut buf).unwrap();
                if n == 0 {
                    break;
                }
                req.extend_from_slice(&buf[..n]);
            }
            let _ = write!(
                s,
                "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            String::from_utf8_lossy(&req).to_string()
        });
        (format!("http://{addr}"), h)
    }

    fn client() -> RestClient {
        RestClient::new(
            &super::super::tls::trust_roots(None).unwrap(),
            Duration::from_secs(5),
        )
    }

    #[test]
    fn gets_a_body() {
        let (base, h) = serve_once("200 OK", "{\"ok\":1}");
        let body = client()
            .get(&format!("{base}/fapi/v1/depth?symbol=X"))
            .unwrap();
        assert_eq!(body, b"{\"ok\":1}");
        let req = h.join().unwrap();
        assert!(
            req.starts_with("GET /fapi/v1/depth?symbol=X HTTP/1.1"),
            "{req}"
        );
    }

    #[test]
    fn http_errors_are_errors() {
        let (base, h) = serve_once("418 I'm a teapot", "no");
        let e = client().get(&format!("{base}/x")).unwrap_err().to_string();
        assert!(e.contains("418"), "{e}");
        h.join().unwrap();
        let port = {
            let l = TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        assert!(client().get(&format!("http://127.0.0.1:{port}/")).is_err());
    }

    #[test]
    fn a_429_carries_its_retry_after_capped() {
        let (base, h) = serve_once("429 Too Many Requests\r\nRetry-After: 7", "slow down");
        let e = client().get(&format!("{base}/x")).unwrap_err();
        assert!(e.rate_limited(), "{e}");
        assert_eq!(e.retry_after(), Some(Duration::from_secs(7)));
        assert!(
            e.to_string().contains("status 429 (Retry-After 7 s)"),
            "{e}"
        );
        h.join().unwrap();
        let (base, h) = serve_once("418 I'm a teapot\r\nRetry-After: 86400", "banned");
        let e = client().get(&format!("{base}/x")).unwrap_err();
        assert_eq!(e.retry_after(), Some(MAX_RETRY_AFTER));
        h.join().unwrap();
        let (base, h) = serve_once("500 Internal Server Error", "oops");
        let e = client().get(&format!("{base}/x")).unwrap_err();
        assert!(!e.rate_limited() && e.retry_after().is_none(), "{e}");
        h.join().unwrap();
    }
}

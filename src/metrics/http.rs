//! The `/metrics` HTTP server: one cold thread, one `mio` poll, every connection bounded.
//!
//! It replaces `tiny_http` 0.12, which unwraps `TcpStream::try_clone` (with `panic = "abort"`
//! an exhausted fd table killed the engine at the next scrape), holds a thread per connection
//! and buffers request heads of any size. Here:
//! - at most [`HttpLimits::max_connections`] connections are open at once; one over it
//!   closes the oldest connection still short of a request (counted as `evicted`: a scraper
//!   sends its request at once, so idle connections cannot lock it out), or, when all are
//!   answering, is answered `503` (`refused`); an `accept` error (`EMFILE`) is counted and the
//!   listener is retried on the next turn, never unwrapped;
//! - a request head is parsed with `httparse` and may be at most
//!   [`HttpLimits::max_request_bytes`]; longer gets `431` (counted as `too_large`);
//! - a connection that has not sent a whole head within [`HttpLimits::request_timeout`], or
//!   not taken its answer within the same time, is closed (counted as `timeouts`);
//! - one request per connection (`Connection: close`); malformed requests get `400`;
//! - a handler may take a connection over ([`Reply::Stream`]): it leaves the poll as a
//!   blocking `std` socket for the handler's own thread (the replay API's streamed answers),
//!   and no longer counts against `max_connections`.

use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token, Waker};

/// Limits of the `/metrics` server; every one is counted when hit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HttpLimits {
    /// Connections open at once. Default 64.
    pub max_connections: usize,
    /// Longest request head, bytes. Default 8192.
    pub max_request_bytes: usize,
    /// Time a connection has to send its request and take the answer. Default 5 s.
    pub request_timeout: Duration,
}

impl Default for HttpLimits {
    fn default() -> Self {
        HttpLimits {
            max_connections: 64,
            max_request_bytes: 8192,
            request_timeout: Duration::from_secs(5),
        }
    }
}

/// Counters of the `/metrics` server (monotonic, read with `Relaxed`).
#[derive(Debug, Default)]
pub struct HttpCounters {
    /// Requests answered (any status).
    pub requests: AtomicU64,
    /// Connections refused with `503` over `max_connections` (every one busy answering).
    pub refused: AtomicU64,
    /// Connections without a complete request closed to make room over `max_connections`.
    pub evicted: AtomicU64,
    /// `accept` failures (e.g. `EMFILE`: no file descriptor left).
    pub accept_errors: AtomicU64,
    /// Connections closed for passing `request_timeout`.
    pub timeouts: AtomicU64,
    /// Requests answered `431` for a head over `max_request_bytes`.
    pub too_large: AtomicU64,
    /// Requests answered `400`.
    pub malformed: AtomicU64,
}

/// What a request gets: status, content type and body.
pub type Answer = (u16, &'static str, String);

/// A complete request head, as the handler sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Request<'a> {
    /// `GET`, `HEAD`, ...
    pub method: &'a str,
    /// The target up to its `?`.
    pub path: &'a str,
    /// The target after its `?` (empty without one).
    pub query: &'a str,
}

/// Hands a connection over: called on the server thread with the connection as a blocking
/// socket (its request head read, nothing written); it must not block (spawn a thread).
pub type Takeover = Box<dyn FnOnce(std::net::TcpStream) + Send>;

/// What the handler does with a request.
pub enum Reply {
    /// Answer it from the server thread and close.
    Answer(Answer),
    /// Take the connection over.
    Stream(Takeover),
}

/// A (deregistered) mio socket as a blocking `std` one, for a thread of its own; `None`
/// (the socket closed) when it cannot be made blocking.
pub fn into_blocking(stream: TcpStream) -> Option<std::net::TcpStream> {
    use std::os::fd::{FromRawFd, IntoRawFd};
    // SAFETY: `into_raw_fd` gives up mio's ownership of the descriptor, so the std socket
    // built from it is its only owner (closed once, when dropped).
    let stream = unsafe { std::net::TcpStream::from_raw_fd(stream.into_raw_fd()) };
    stream.set_nonblocking(false).ok().map(|()| stream)
}

const LISTENER: Token = Token(0);
const WAKER: Token = Token(1);
const FIRST_CONN: usize = 2;

struct Conn {
    stream: TcpStream,
    head: Vec<u8>,
    out: Vec<u8>,
    written: usize,
    /// Answer written: reading what is left until the peer closes (so the answer is not
    /// lost to a reset), at most until the deadline.
    done: bool,
    /// Bytes read and discarded after the answer; past [`DRAIN_BYTES`] the connection is
    /// left unread until its deadline.
    drained: usize,
    deadline: Instant,
}

/// Bytes read and discarded after an answer (a client still sending an oversized head).
const DRAIN_BYTES: usize = 64 << 10;

/// A running HTTP server thread; stopped and joined on [`HttpServer::stop`] or drop.
pub struct HttpServer {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    waker: Arc<Waker>,
    counters: Arc<HttpCounters>,
    thread: Option<JoinHandle<()>>,
}

impl HttpServer {
    /// Binds `addr` (port 0: any free port) and answers every request with
    /// `handler(&request)` on a thread named `name`, counting into `counters`.
    ///
    /// # Errors
    /// The bind, poll or thread spawn error.
    pub fn start<H>(
        addr: SocketAddr,
        name: &str,
        limits: HttpLimits,
        counters: Arc<HttpCounters>,
        handler: H,
    ) -> io::Result<Self>
    where
        H: Fn(&Request) -> Reply + Send + 'static,
    {
        let mut listener = TcpListener::bind(addr)?;
        let addr = listener.local_addr()?;
        let poll = Poll::new()?;
        poll.registry()
            .register(&mut listener, LISTENER, Interest::READABLE)?;
        let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
        let stop = Arc::new(AtomicBool::new(false));
        let mut worker = Worker {
            poll,
            listener,
            conns: Vec::new(),
            limits,
            counters: counters.clone(),
            handler,
        };
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name(name.into())
            .spawn(move || worker.run(&flag))?;
        Ok(HttpServer {
            addr,
            stop,
            waker,
            counters,
            thread: Some(thread),
        })
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The server's counters.
    pub fn counters(&self) -> Arc<HttpCounters> {
        self.counters.clone()
    }

    /// Stops serving and joins the thread.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.waker.wake();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        self.shutdown();
    }
}

struct Worker<H> {
    poll: Poll,
    listener: TcpListener,
    conns: Vec<Option<Conn>>,
    limits: HttpLimits,
    counters: Arc<HttpCounters>,
    handler: H,
}

fn response(status: u16, kind: &str, body: &str, head_only: bool) -> Vec<u8> {
    let reason = match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        431 => "Request Header Fields Too Large",
        503 => "Service Unavailable",
        _ => "Error",
    };
    let mut out = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: {kind}\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    if !head_only {
        out.extend_from_slice(body.as_bytes());
    }
    out
}

impl<H: Fn(&Request) -> Reply> Worker<H> {
    fn run(&mut self, stop: &AtomicBool) {
        let mut events = Events::with_capacity(256);
        while !stop.load(Ordering::Relaxed) {
            if self
                .poll
                .poll(&mut events, Some(Duration::from_millis(200)))
                .is_err()
            {
                std::thread::sleep(Duration::from_millis(10));
                continue;
            }
            for ev in events.iter() {
                match ev.token() {
                    LISTENER => self.accept(),
                    WAKER => {}
                    Token(t) => self.serve(t - FIRST_CONN),
                }
            }
            // an accept that failed for lack of fds leaves connections queued: retry
            if self.counters.accept_errors.load(Ordering::Relaxed) > 0 {
                self.accept();
            }
            self.expire(Instant::now());
        }
    }

    fn open(&self) -> usize {
        self.conns.iter().filter(|c| c.is_some()).count()
    }

    fn accept(&mut self) {
        loop {
            match self.listener.accept() {
                Ok((mut stream, _)) => {
                    if self.open() >= self.limits.max_connections {
                        // the oldest connection still short of a request makes room (a
                        // scraper sends its request at once); with none, refuse
                        let oldest = (0..self.conns.len())
                            .filter(|&i| self.conns[i].as_ref().is_some_and(|c| c.out.is_empty()))
                            .min_by_key(|&i| self.conns[i].as_ref().map(|c| c.deadline));
                        match oldest {
                            Some(i) => {
                                self.counters.evicted.fetch_add(1, Ordering::Relaxed);
                                self.close(i);
                            }
                            None => {
                                self.counters.refused.fetch_add(1, Ordering::Relaxed);
                                let busy =
                                    response(503, "text/plain", "too many connections\n", false);
                                let _ = stream.write(&busy);
                                continue;
                            }
                        }
                    }
                    let i = match self.conns.iter().position(Option::is_none) {
                        Some(i) => i,
                        None => {
                            self.conns.push(None);
                            self.conns.len() - 1
                        }
                    };
                    if self
                        .poll
                        .registry()
                        .register(
                            &mut stream,
                            Token(i + FIRST_CONN),
                            Interest::READABLE | Interest::WRITABLE,
                        )
                        .is_err()
                    {
                        continue;
                    }
                    self.conns[i] = Some(Conn {
                        stream,
                        head: Vec::new(),
                        out: Vec::new(),
                        written: 0,
                        done: false,
                        drained: 0,
                        deadline: Instant::now() + self.limits.request_timeout,
                    });
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => {
                    self.counters.accept_errors.fetch_add(1, Ordering::Relaxed);
                    return;
                }
            }
        }
    }

    /// Takes connection `i` out of the poll and gives it to `takeover` as a blocking socket;
    /// a socket that cannot be made blocking is closed.
    fn take_over(&mut self, i: usize, takeover: Takeover) {
        let Some(mut c) = self.conns.get_mut(i).and_then(Option::take) else {
            return;
        };
        let _ = self.poll.registry().deregister(&mut c.stream);
        if let Some(stream) = into_blocking(c.stream) {
            takeover(stream);
        }
    }

    fn close(&mut self, i: usize) {
        if let Some(mut c) = self.conns.get_mut(i).and_then(Option::take) {
            let _ = self.poll.registry().deregister(&mut c.stream);
        }
    }

    fn expire(&mut self, now: Instant) {
        for i in 0..self.conns.len() {
            if let Some(c) = self.conns[i].as_ref().filter(|c| c.deadline <= now) {
                if !c.done {
                    self.counters.timeouts.fetch_add(1, Ordering::Relaxed);
                }
                self.close(i);
            }
        }
    }

    fn serve(&mut self, i: usize) {
        let limit = self.limits.max_request_bytes;
        let Some(c) = self.conns.get_mut(i).and_then(Option::as_mut) else {
            return;
        };
        let mut buf = [0u8; 4096];
        if c.done {
            loop {
                if c.drained > DRAIN_BYTES {
                    return;
                }
                match c.stream.read(&mut buf) {
                    Ok(n) if n > 0 => c.drained += n,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    _ => break,
                }
            }
            self.close(i);
            return;
        }
        if c.out.is_empty() {
            loop {
                match c.stream.read(&mut buf) {
                    Ok(0) => {
                        self.close(i);
                        return;
                    }
                    Ok(n) => {
                        let room = (limit + 1).saturating_sub(c.head.len());
                        c.head.extend_from_slice(&buf[..n.min(room)]);
                        if c.head.len() > limit {
                            break;
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(_) => {
                        self.close(i);
                        return;
                    }
                }
            }
            let mut headers = [httparse::EMPTY_HEADER; 32];
            let mut req = httparse::Request::new(&mut headers);
            let parsed = req.parse(&c.head);
            let (status, kind, body, head_only) = match parsed {
                Ok(httparse::Status::Partial) if c.head.len() <= limit => return,
                Ok(httparse::Status::Partial) => {
                    self.counters.too_large.fetch_add(1, Ordering::Relaxed);
                    (431, "text/plain", "request head too large\n".into(), false)
                }
                Ok(httparse::Status::Complete(_)) => {
                    let method = req.method.unwrap_or("");
                    let target = req.path.unwrap_or("");
                    let (path, query) = target.split_once('?').unwrap_or((target, ""));
                    let request = Request {
                        method,
                        path,
                        query,
                    };
                    match (self.handler)(&request) {
                        Reply::Answer((status, kind, body)) => {
                            (status, kind, body, method == "HEAD")
                        }
                        Reply::Stream(takeover) => {
                            self.counters.requests.fetch_add(1, Ordering::Relaxed);
                            self.take_over(i, takeover);
                            return;
                        }
                    }
                }
                Err(_) => {
                    self.counters.malformed.fetch_add(1, Ordering::Relaxed);
                    (400, "text/plain", "malformed request\n".into(), false)
                }
            };
            self.counters.requests.fetch_add(1, Ordering::Relaxed);
            c.head = Vec::new();
            c.out = response(status, kind, &body, head_only);
        }
        while c.written < c.out.len() {
            match c.stream.write(&c.out[c.written..]) {
                Ok(0) => break,
                Ok(n) => c.written += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
        let _ = c.stream.shutdown(std::net::Shutdown::Write);
        c.done = true;
        // edge-triggered: what the peer already sent raises no new event
        self.serve(i);
    }
}

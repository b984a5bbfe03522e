//! The small HTTP/1.1 layer of `pinfeed simulate`: reads a request head, parses it, writes
//! responses. Enough for REST GETs (keep-alive and pipelining included) and to tell a WebSocket
//! upgrade from a plain request before handing the socket to tungstenite.
//!
//! Every malformed head has a defined outcome (RFC 9112): bad syntax 400, a head over
//! [`MAX_HEAD_BYTES`] 431, a method other than GET/HEAD 405; the connection is closed after
//! each of them.

use std::io::{self, Read};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

/// Longest request head accepted, bytes (request line and headers).
pub const MAX_HEAD_BYTES: usize = 16 * 1024;

/// Most header lines accepted.
pub const MAX_HEADERS: usize = 64;

/// One parsed request head.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    /// `GET`, `HEAD`, ...
    pub method: String,
    /// The path, without the query string, e.g. `/fapi/v1/depth`.
    pub path: String,
    /// The query string without `?` (empty when none).
    pub query: String,
    /// True for `HTTP/1.1`, false for `HTTP/1.0`.
    pub http11: bool,
    /// Header lines as sent, names as sent.
    pub headers: Vec<(String, String)>,
}

impl Request {
    /// The value of header `name` (case-insensitive), first occurrence.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// True when the header's comma-separated value list holds `token` (case-insensitive).
    pub fn header_has(&self, name: &str, token: &str) -> bool {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .flat_map(|(_, v)| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case(token))
    }

    /// True for a WebSocket upgrade request (`Upgrade: websocket`).
    pub fn is_websocket(&self) -> bool {
        self.header_has("upgrade", "websocket")
    }

    /// True when the connection stays open after the response (HTTP/1.1 unless
    /// `Connection: close`; HTTP/1.0 only with `Connection: keep-alive`).
    pub fn keep_alive(&self) -> bool {
        if self.http11 {
            !self.header_has("connection", "close")
        } else {
            self.header_has("connection", "keep-alive")
        }
    }

    /// The value of query parameter `key`, if present.
    pub fn query_value(&self, key: &str) -> Option<&str> {
        query_value(&self.query, key)
    }
}

/// The value of parameter `key` in a query string `a=1&b=2`.
pub fn query_value<'q>(query: &'q str, key: &str) -> Option<&'q str> {
    query
        .split('&')
        .filter_map(|p| p.split_once('='))
        .find(|(k, _)| *k == key)
        .map(|(_, v)| v)
}

/// Why no request head could be read.
#[derive(Debug)]
pub enum HeadError {
    /// The peer closed the connection before sending anything (normal end of keep-alive).
    Eof,
    /// Nothing complete arrived before the deadline, or the server is stopping.
    Timeout,
    /// The head grew past [`MAX_HEAD_BYTES`].
    TooLarge,
    /// The connection failed (a TLS handshake failure shows up here).
    Io(io::Error),
}

/// Reads until `buf` holds a complete head (`\r\n\r\n`) and returns its length; bytes after it
/// stay in `buf` (a pipelined request, or a WebSocket frame sent right after the upgrade).
/// The socket must have a read timeout, so `stop` and `deadline` are checked between reads.
///
/// # Errors
/// [`HeadError`].
pub fn read_head<R: Read>(
    r: &mut R,
    buf: &mut Vec<u8>,
    stop: &AtomicBool,
    deadline: Instant,
) -> Result<usize, HeadError> {
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = find_head_end(buf) {
            return Ok(end);
        }
        if buf.len() > MAX_HEAD_BYTES {
            return Err(HeadError::TooLarge);
        }
        if stop.load(Ordering::Relaxed) || Instant::now() >= deadline {
            return Err(HeadError::Timeout);
        }
        match r.read(&mut chunk) {
            Ok(0) if buf.is_empty() => return Err(HeadError::Eof),
            Ok(0) => {
                return Err(HeadError::Io(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "connection closed inside a request head",
                )));
            }
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock
                        | io::ErrorKind::TimedOut
                        | io::ErrorKind::Interrupted
                ) => {}
            Err(e) => return Err(HeadError::Io(e)),
        }
    }
}

fn find_head_end(buf: &[u8]) -> Option<usize> {
    buf.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4)
}

/// Parses a request head (request line and headers, ending in an empty line).
///
/// # Errors
/// A short description of what is malformed (the 400 response carries it).
pub fn parse_head(head: &[u8]) -> Result<Request, &'static str> {
    let text = std::str::from_utf8(head).map_err(|_| "request head is not UTF-8")?;
    let mut lines = text.split("\r\n");
    let request_line = lines.next().ok_or("empty request")?;
    let mut parts = request_line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err("malformed request line");
    };
    if method.is_empty() || !method.bytes().all(|b| b.is_ascii_uppercase()) {
        return Err("malformed method");
    }
    let http11 = match version {
        "HTTP/1.1" => true,
        "HTTP/1.0" => false,
        _ => return Err("unsupported HTTP version"),
    };
    // origin-form `/path?query`, or absolute-form `http://host/path?query`
    let target = match target.split_once("://") {
        Some((_, rest)) => rest.find('/').map_or("/", |i| &rest[i..]),
        None => target,
    };
    if !target.starts_with('/') {
        return Err("malformed request target");
    }
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let mut headers = Vec::new();
    for line in lines {
        if line.is_empty() {
            break;
        }
        let (name, value) = line.split_once(':').ok_or("malformed header line")?;
        if name.is_empty() || name.bytes().any(|b| b.is_ascii_whitespace() || b < 0x21) {
            return Err("malformed header name");
        }
        if headers.len() == MAX_HEADERS {
            return Err("too many header lines");
        }
        headers.push((name.to_string(), value.trim().to_string()));
    }
    Ok(Request {
        method: method.to_string(),
        path: path.to_string(),
        query: query.to_string(),
        http11,
        headers,
    })
}

/// A complete response: status line, `Content-Type`, `Content-Length`, `Connection`, then the
/// body (omitted for HEAD requests when `head_only`).
pub fn response(
    status: u16,
    content_type: &str,
    body: &[u8],
    keep_alive: bool,
    head_only: bool,
) -> Vec<u8> {
    let mut out = format!(
        "HTTP/1.1 {status} {}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: {}\r\nServer: pinfeed-simulate\r\n\r\n",
        reason(status),
        body.len(),
        if keep_alive { "keep-alive" } else { "close" }
    )
    .into_bytes();
    if !head_only {
        out.extend_from_slice(body);
    }
    out
}

/// A JSON error body `{"code":status,"msg":message}` as a complete response that closes the
/// connection unless `keep_alive`.
pub fn error_response(status: u16, message: &str, keep_alive: bool) -> Vec<u8> {
    let body = serde_json::json!({ "code": -(i64::from(status)), "msg": message }).to_string();
    response(
        status,
        "application/json",
        body.as_bytes(),
        keep_alive,
        false,
    )
}

fn reason(status: u16) -> &'static str {
    match status {
        101 => "Switching Protocols",
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        426 => "Upgrade Required",
        431 => "Request Header Fields Too Large",
        503 => "Service Unavailable",
        _ => "Error",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_websocket_upgrade() {
        let head = b"GET /stream?streams=btcusdt@aggTrade HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: keep-alive, Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n";
        let r = parse_head(head).unwrap();
        assert_eq!(r.method, "GET");
        assert_eq!(r.path, "/stream");
        assert_eq!(r.query, "streams=btcusdt@aggTrade");
        assert!(r.is_websocket());
        assert!(r.header_has("connection", "upgrade"));
        assert_eq!(
            r.header("sec-websocket-key"),
            Some("dGhlIHNhbXBsZSBub25jZQ==")
        );
        assert!(r.keep_alive());
    }

    #[test]
    fn absolute_form_and_http10() {
        let r = parse_head(
            b"GET https://fapi.binance.com/fapi/v1/depth?symbol=X&limit=5 HTTP/1.0\r\n\r\n",
        )
        .unwrap();
        assert_eq!(r.path, "/fapi/v1/depth");
        assert_eq!(r.query_value("symbol"), Some("X"));
        assert_eq!(r.query_value("limit"), Some("5"));
        assert_eq!(r.query_value("nope"), None);
        assert!(!r.keep_alive());
    }

    #[test]
    fn malformed_heads_are_errors() {
        for head in [
            &b"\r\n\r\n"[..],
            b"GET\r\n\r\n",
            b"GET / HTTP/1.1 extra\r\n\r\n",
            b"get / HTTP/1.1\r\n\r\n",
            b"GET / HTTP/2\r\n\r\n",
            b"GET nopath HTTP/1.1\r\n\r\n",
            b"GET / HTTP/1.1\r\nno colon\r\n\r\n",
            b"GET / HTTP/1.1\r\n: empty\r\n\r\n",
            b"GET / HTTP/1.1\r\nbad name: x\r\n\r\n",
            b"GET /\xff HTTP/1.1\r\n\r\n",
        ] {
            assert!(
                parse_head(head).is_err(),
                "{:?}",
                String::from_utf8_lossy(head)
            );
        }
        let many: String = (0..=MAX_HEADERS).map(|i| format!("h{i}: v\r\n")).collect();
        let head = format!("GET / HTTP/1.1\r\n{many}\r\n");
        assert_eq!(parse_head(head.as_bytes()), Err("too many header lines"));
    }

    #[test]
    fn reads_heads_and_keeps_the_rest() {
        let stop = AtomicBool::new(false);
        let deadline = Instant::now() + std::time::Duration::from_secs(5);
        let data = b"GET /a HTTP/1.1\r\n\r\nGET /b HTTP/1.1\r\n\r\n".to_vec();
        let mut src = &data[..];
        let mut buf = Vec::new();
        let n = read_head(&mut src, &mut buf, &stop, deadline).unwrap();
        assert_eq!(parse_head(&buf[..n]).unwrap().path, "/a");
        buf.drain(..n);
        let n = read_head(&mut src, &mut buf, &stop, deadline).unwrap();
        assert_eq!(parse_head(&buf[..n]).unwrap().path, "/b");
        buf.drain(..n);
        assert!(matches!(
            read_head(&mut src, &mut buf, &stop, deadline),
            Err(HeadError::Eof)
        ));
        let mut partial = &b"GET / HTTP/1.1\r\n"[..];
        assert!(matches!(
            read_head(&mut partial, &mut Vec::new(), &stop, deadline),
            Err(HeadError::Io(_))
        ));
        let big = vec![b'a'; MAX_HEAD_BYTES + 5000];
        assert!(matches!(
            read_head(&mut &big[..], &mut Vec::new(), &stop, deadline),
            Err(HeadError::TooLarge)
        ));
    }

    proptest::proptest! {
        /// Arbitrary bytes are a request or an error, never a panic.
        #[test]
        fn arbitrary_heads_never_panic(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..400)) {
            let _ = parse_head(&bytes);
            let mut with_end = bytes.clone();
            with_end.extend_from_slice(b"\r\n\r\n");
            let stop = AtomicBool::new(false);
            let deadline = Instant::now() + std::time::Duration::from_secs(1);
            let mut buf = Vec::new();
            if let Ok(n) = read_head(&mut &with_end[..], &mut buf, &stop, deadline) {
                let _ = parse_head(&buf[..n]);
            }
        }
    }

    #[test]
    fn responses_carry_length_and_connection() {
        let r = String::from_utf8(response(200, "application/json", b"{}", true, false)).unwrap();
        assert!(r.starts_with("HTTP/1.1 200 OK\r\n"));
        assert!(r.contains("Content-Length: 2\r\n"));
        assert!(r.contains("Connection: keep-alive\r\n"));
        assert!(r.ends_with("\r\n\r\n{}"));
        let r = String::from_utf8(error_response(404, "nope", false)).unwrap();
        assert!(r.starts_with("HTTP/1.1 404 Not Found\r\n"));
        assert!(r.ends_with(r#"{"code":-404,"msg":"nope"}"#));
    }
}

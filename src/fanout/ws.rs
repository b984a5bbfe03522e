//! The WebSocket server protocol by hand (RFC 6455), as tardis-machine's `ws` server applies it
//! (PROTOCOL.md section 1 and 4): the HTTP upgrade, server frames (unmasked), and a streaming
//! decoder of client frames that never buffers a data payload.
//!
//! Limits (tardis-machine `src/ws/server.ts`): request head over 20,000 bytes → 431; a request
//! without `Upgrade` → 426; a client message over 512 KiB → close 1009; a close reason is cut
//! to 123 bytes.

/// Largest request head (request line and headers), bytes.
pub const MAX_HEAD_BYTES: usize = 20_000;
/// Largest client message payload, bytes (fragments summed).
pub const MAX_PAYLOAD_BYTES: u64 = 512 * 1024;
/// Longest close reason, bytes.
pub const MAX_CLOSE_REASON_BYTES: usize = 123;

/// Text frame opcode.
pub const OP_TEXT: u8 = 0x1;
/// Close frame opcode.
pub const OP_CLOSE: u8 = 0x8;
/// Ping frame opcode.
pub const OP_PING: u8 = 0x9;
/// Pong frame opcode.
pub const OP_PONG: u8 = 0xA;

/// Offset just past the `\r\n\r\n` that ends the request head, if it is in `buf`.
pub fn head_end(buf: &[u8]) -> Option<usize> {
    buf.windows(4).position(|w| w == b"\r\n\r\n").map(|p| p + 4)
}

/// What an HTTP request head asks for.
#[derive(Debug, PartialEq, Eq)]
pub enum Handshake<'a> {
    /// A valid WebSocket upgrade.
    Upgrade {
        /// The request target (path and query).
        target: &'a str,
        /// `Sec-WebSocket-Key`.
        key: &'a str,
    },
    /// An HTTP request without `Upgrade`/`Connection: upgrade`: answered 426.
    NotUpgrade,
    /// An upgrade with a method other than GET: answered 405.
    BadMethod,
    /// A malformed head or upgrade: answered 400.
    Bad,
}

/// Parses a complete request head (`head_end` bytes).
pub fn parse_head(head: &[u8]) -> Handshake<'_> {
    let Ok(text) = std::str::from_utf8(head) else {
        return Handshake::Bad;
    };
    let mut lines = text.split("\r\n");
    let Some(request_line) = lines.next() else {
        return Handshake::Bad;
    };
    let mut parts = request_line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Handshake::Bad;
    };
    if method.is_empty() || target.is_empty() || !version.starts_with("HTTP/1.") {
        return Handshake::Bad;
    }
    let mut upgrade = None;
    let mut connection_upgrade = false;
    let mut key = None;
    let mut ws_version = None;
    for line in lines {
        if line.is_empty() {
            break;
        }
        let Some((name, value)) = line.split_once(':') else {
            return Handshake::Bad;
        };
        if name.is_empty() || name.bytes().any(|c| c == b' ' || c == b'\t') {
            return Handshake::Bad;
        }
        let value = value.trim_matches(|c| c == ' ' || c == '\t');
        if name.eq_ignore_ascii_case("upgrade") {
            upgrade = Some(value);
        } else if name.eq_ignore_ascii_case("connection") {
            connection_upgrade |= value
                .split(',')
                .any(|t| t.trim().eq_ignore_ascii_case("upgrade"));
        } else if name.eq_ignore_ascii_case("sec-websocket-key") {
            key = Some(value);
        } else if name.eq_ignore_ascii_case("sec-websocket-version") {
            ws_version = Some(value);
        }
    }
    // Node's HTTP server raises `upgrade` only with both headers; otherwise the request
    // handler answers 426.
    let Some(upgrade) = upgrade.filter(|_| connection_upgrade) else {
        return Handshake::NotUpgrade;
    };
    if method != "GET" {
        return Handshake::BadMethod;
    }
    if !upgrade.eq_ignore_ascii_case("websocket") {
        return Handshake::Bad;
    }
    // `ws`: the key is 16 bytes in base64, the version 8 or 13
    let key_ok = key.is_some_and(|k| {
        k.len() == 24
            && k.ends_with("==")
            && k[..22]
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'+' || c == b'/')
    });
    if !key_ok || !matches!(ws_version, Some("13") | Some("8")) {
        return Handshake::Bad;
    }
    Handshake::Upgrade {
        target,
        key: key.unwrap_or_default(),
    }
}

/// Splits a request target into the lower-cased route path and the query (after `?`).
/// Leading slashes collapse to one (`//ws-stream-normalized`, PROTOCOL.md section 7).
pub fn route(target: &str) -> (String, &str) {
    let target = target.split('#').next().unwrap_or("");
    // absolute-form `http://host/path`
    let target = match target.split_once("://") {
        Some((_, rest)) if !target.starts_with('/') => rest.find('/').map_or("/", |i| &rest[i..]),
        _ => target,
    };
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let path = format!("/{}", path.trim_start_matches('/'));
    (path.to_ascii_lowercase(), query)
}

/// The `101 Switching Protocols` response for `key`.
pub fn accept_response(key: &str, out: &mut Vec<u8>) {
    let accept = tungstenite::handshake::derive_accept_key(key.as_bytes());
    out.extend_from_slice(
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ",
    );
    out.extend_from_slice(accept.as_bytes());
    out.extend_from_slice(b"\r\n\r\n");
}

/// A plain HTTP error response that closes the connection.
pub fn error_response(status: u16, out: &mut Vec<u8>) {
    let reason = match status {
        400 => "Bad Request",
        405 => "Method Not Allowed",
        426 => "Upgrade Required",
        431 => "Request Header Fields Too Large",
        _ => "Error",
    };
    let mut buf = itoa::Buffer::new();
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(buf.format(status).as_bytes());
    out.push(b' ');
    out.extend_from_slice(reason.as_bytes());
    out.extend_from_slice(b"\r\nConnection: close\r\nContent-Length: 0\r\n");
    if status == 400 {
        out.extend_from_slice(b"Sec-WebSocket-Version: 13, 8\r\n");
    }
    out.extend_from_slice(b"\r\n");
}

/// Writes the header of an unmasked final frame with `len` payload bytes; returns its length.
#[inline]
pub fn frame_header(opcode: u8, len: usize, out: &mut [u8; 10]) -> usize {
    out[0] = 0x80 | opcode;
    if len < 126 {
        out[1] = len as u8;
        2
    } else if len <= 0xFFFF {
        out[1] = 126;
        out[2..4].copy_from_slice(&(len as u16).to_be_bytes());
        4
    } else {
        out[1] = 127;
        out[2..10].copy_from_slice(&(len as u64).to_be_bytes());
        10
    }
}

/// Appends a close frame with `code` and `reason` (cut to 123 bytes as `ws` cuts it: 120
/// bytes then lossy UTF-8); `code` 0 sends an empty close payload.
pub fn close_frame(code: u16, reason: &str, out: &mut Vec<u8>) {
    let reason = cut_reason(reason);
    let len = if code == 0 { 0 } else { 2 + reason.len() };
    let mut header = [0u8; 10];
    let n = frame_header(OP_CLOSE, len, &mut header);
    out.extend_from_slice(&header[..n]);
    if code != 0 {
        out.extend_from_slice(&code.to_be_bytes());
        out.extend_from_slice(reason.as_bytes());
    }
}

/// A close reason of at most 123 bytes (tardis-machine `truncateCloseReason`).
pub fn cut_reason(reason: &str) -> std::borrow::Cow<'_, str> {
    if reason.len() <= MAX_CLOSE_REASON_BYTES {
        return reason.into();
    }
    let cut = &reason.as_bytes()[..MAX_CLOSE_REASON_BYTES - 3];
    String::from_utf8_lossy(cut).into_owned().into()
}

/// A complete client frame, as the decoder reports it.
#[derive(Debug, PartialEq, Eq)]
pub enum ClientFrame<'a> {
    /// Text, binary or continuation frame: ignored, but it counts as liveness.
    Data,
    /// Ping with its (unmasked) payload: answer with a pong.
    Ping(&'a [u8]),
    /// Pong.
    Pong,
    /// Close with its code (`None` for an empty payload).
    Close(Option<u16>),
}

/// Why the decoder stopped: the connection must close with this code.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum FrameError {
    /// A message over 512 KiB: close 1009.
    TooBig,
    /// A protocol violation (unmasked frame, reserved bits or opcode, bad control frame,
    /// continuation out of place, bad close payload): close 1002.
    Protocol,
    /// A close reason that is not UTF-8: close 1007.
    InvalidUtf8,
}

impl FrameError {
    /// The close code.
    pub fn code(self) -> u16 {
        match self {
            FrameError::TooBig => 1009,
            FrameError::Protocol => 1002,
            FrameError::InvalidUtf8 => 1007,
        }
    }
}

/// Streaming decoder of client frames. Data payloads are skipped, never stored; control
/// payloads (at most 125 bytes) are unmasked into a fixed buffer. No allocation.
#[derive(Clone, Debug)]
pub struct FrameDecoder {
    header: [u8; 14],
    header_len: usize,
    /// Payload bytes of the current frame still to come; `None` while reading a header.
    remaining: Option<u64>,
    opcode: u8,
    mask: [u8; 4],
    control: [u8; 125],
    control_len: usize,
    /// Inside a fragmented data message.
    in_message: bool,
    message_bytes: u64,
    /// A close frame was decoded: nothing after it is looked at.
    closed: bool,
    /// The current data message is text: its payload must be UTF-8 (RFC 6455 section 8.1,
    /// close 1007 otherwise), checked as it streams by.
    text: bool,
    /// Payload bytes of the current frame already seen (the mask index).
    payload_pos: u64,
    /// The start of a UTF-8 sequence cut by a frame or read boundary.
    utf8_carry: [u8; 4],
    utf8_carry_len: usize,
    /// The current data frame ends its message.
    fin: bool,
}

impl Default for FrameDecoder {
    fn default() -> Self {
        FrameDecoder {
            header: [0; 14],
            header_len: 0,
            remaining: None,
            opcode: 0,
            mask: [0; 4],
            control: [0; 125],
            control_len: 0,
            in_message: false,
            message_bytes: 0,
            closed: false,
            text: false,
            payload_pos: 0,
            utf8_carry: [0; 4],
            utf8_carry_len: 0,
            fin: false,
        }
    }
}

impl FrameDecoder {
    /// Feeds received bytes; calls `on_frame` for each complete frame. Stops at the first
    /// error, or after a close frame (bytes after it are not looked at).
    ///
    /// # Errors
    /// [`FrameError`] with the close code to send.
    pub fn feed(
        &mut self,
        mut data: &[u8],
        mut on_frame: impl FnMut(ClientFrame<'_>),
    ) -> Result<(), FrameError> {
        while !data.is_empty() && !self.closed {
            match self.remaining {
                None => {
                    let need = self.header_needed();
                    let take = (need - self.header_len).min(data.len());
                    self.header[self.header_len..self.header_len + take]
                        .copy_from_slice(&data[..take]);
                    self.header_len += take;
                    data = &data[take..];
                    // the first two bytes tell the full header length
                    if self.header_len == need && self.header_needed() == need {
                        self.start_frame()?;
                        if self.remaining == Some(0) && self.finish_frame(&mut on_frame)? {
                            return Ok(());
                        }
                    }
                }
                Some(remaining) => {
                    let take = remaining.min(data.len() as u64) as usize;
                    if self.opcode >= 0x8 {
                        for (i, &b) in data[..take].iter().enumerate() {
                            let pos = self.control_len + i;
                            self.control[pos] = b ^ self.mask[pos % 4];
                        }
                        self.control_len += take;
                    } else if self.text {
                        self.check_utf8(&data[..take])?;
                    }
                    data = &data[take..];
                    self.remaining = Some(remaining - take as u64);
                    if remaining == take as u64 && self.finish_frame(&mut on_frame)? {
                        return Ok(());
                    }
                }
            }
        }
        Ok(())
    }

    /// Header length implied by the bytes read so far (2 until the length byte is known).
    fn header_needed(&self) -> usize {
        if self.header_len < 2 {
            return 2;
        }
        let masked = self.header[1] & 0x80 != 0;
        let ext = match self.header[1] & 0x7F {
            126 => 2,
            127 => 8,
            _ => 0,
        };
        2 + ext + if masked { 4 } else { 0 }
    }

    fn start_frame(&mut self) -> Result<(), FrameError> {
        let b0 = self.header[0];
        let b1 = self.header[1];
        if b0 & 0x70 != 0 || b1 & 0x80 == 0 {
            // reserved bits without an extension, or an unmasked client frame
            return Err(FrameError::Protocol);
        }
        let fin = b0 & 0x80 != 0;
        let opcode = b0 & 0x0F;
        let (len, mask_at) = match b1 & 0x7F {
            126 => (
                u64::from(u16::from_be_bytes([self.header[2], self.header[3]])),
                4,
            ),
            127 => {
                let mut b = [0u8; 8];
                b.copy_from_slice(&self.header[2..10]);
                let len = u64::from_be_bytes(b);
                if len >> 63 != 0 {
                    return Err(FrameError::Protocol);
                }
                (len, 10)
            }
            n => (u64::from(n), 2),
        };
        self.mask
            .copy_from_slice(&self.header[mask_at..mask_at + 4]);
        match opcode {
            0x0..=0x2 => {
                if (opcode == 0) != self.in_message {
                    return Err(FrameError::Protocol);
                }
                if opcode != 0 {
                    self.message_bytes = 0;
                    self.text = opcode == 0x1;
                    self.utf8_carry_len = 0;
                }
                self.fin = fin;
                self.message_bytes += len;
                if self.message_bytes > MAX_PAYLOAD_BYTES {
                    return Err(FrameError::TooBig);
                }
                self.in_message = !fin;
            }
            0x8..=0xA => {
                if !fin || len > 125 {
                    return Err(FrameError::Protocol);
                }
            }
            _ => return Err(FrameError::Protocol),
        }
        self.opcode = opcode;
        self.control_len = 0;
        self.payload_pos = 0;
        self.remaining = Some(len);
        Ok(())
    }

    /// Checks masked text payload bytes as UTF-8, carrying a sequence cut at the end.
    fn check_utf8(&mut self, masked: &[u8]) -> Result<(), FrameError> {
        let mut block = [0u8; 4096];
        for chunk in masked.chunks(block.len() - 4) {
            let carry = self.utf8_carry_len;
            block[..carry].copy_from_slice(&self.utf8_carry[..carry]);
            for (i, &b) in chunk.iter().enumerate() {
                let pos = (self.payload_pos + i as u64) % 4;
                block[carry + i] = b ^ self.mask[pos as usize];
            }
            self.payload_pos += chunk.len() as u64;
            let n = carry + chunk.len();
            match std::str::from_utf8(&block[..n]) {
                Ok(_) => self.utf8_carry_len = 0,
                Err(e) if e.error_len().is_none() => {
                    let tail = &block[e.valid_up_to()..n];
                    self.utf8_carry[..tail.len()].copy_from_slice(tail);
                    self.utf8_carry_len = tail.len();
                }
                Err(_) => return Err(FrameError::InvalidUtf8),
            }
        }
        Ok(())
    }

    /// Reports the finished frame; true when it was a close (stop decoding).
    fn finish_frame(
        &mut self,
        on_frame: &mut impl FnMut(ClientFrame<'_>),
    ) -> Result<bool, FrameError> {
        self.remaining = None;
        self.header_len = 0;
        match self.opcode {
            0x9 => on_frame(ClientFrame::Ping(&self.control[..self.control_len])),
            0xA => on_frame(ClientFrame::Pong),
            0x8 => {
                let payload = &self.control[..self.control_len];
                let code = match payload.len() {
                    0 => None,
                    1 => return Err(FrameError::Protocol),
                    _ => {
                        let code = u16::from_be_bytes([payload[0], payload[1]]);
                        // `ws` isValidStatusCode
                        let valid = (1000..=1014).contains(&code) && !matches!(code, 1004..=1006)
                            || (3000..=4999).contains(&code);
                        if !valid {
                            return Err(FrameError::Protocol);
                        }
                        if std::str::from_utf8(&payload[2..]).is_err() {
                            return Err(FrameError::InvalidUtf8);
                        }
                        Some(code)
                    }
                };
                on_frame(ClientFrame::Close(code));
                self.closed = true;
                return Ok(true);
            }
            _ => {
                if self.text && self.fin && self.utf8_carry_len != 0 {
                    // the message ended inside a UTF-8 sequence
                    return Err(FrameError::InvalidUtf8);
                }
                on_frame(ClientFrame::Data)
            }
        }
        Ok(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A masked client frame.
    fn client_frame(fin: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
        let mask = [0x12, 0x34, 0x56, 0x78];
        let mut out = vec![(if fin { 0x80 } else { 0 }) | opcode];
        let len = payload.len();
        if len < 126 {
            out.push(0x80 | len as u8);
        } else if len <= 0xFFFF {
            out.push(0x80 | 126);
            out.extend_from_slice(&(len as u16).to_be_bytes());
        } else {
            out.push(0x80 | 127);
            out.extend_from_slice(&(len as u64).to_be_bytes());
        }
        out.extend_from_slice(&mask);
        out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        out
    }

    #[derive(Debug, PartialEq)]
    enum Seen {
        Data,
        Ping(Vec<u8>),
        Pong,
        Close(Option<u16>),
    }

    fn decode(bytes: &[u8], chunk: usize) -> (Vec<Seen>, Result<(), FrameError>) {
        let mut d = FrameDecoder::default();
        let mut seen = Vec::new();
        for part in bytes.chunks(chunk.max(1)) {
            let r = d.feed(part, |f| {
                seen.push(match f {
                    ClientFrame::Data => Seen::Data,
                    ClientFrame::Ping(p) => Seen::Ping(p.to_vec()),
                    ClientFrame::Pong => Seen::Pong,
                    ClientFrame::Close(c) => Seen::Close(c),
                })
            });
            if r.is_err() {
                return (seen, r);
            }
        }
        (seen, Ok(()))
    }

    #[test]
    fn decodes_frames_in_any_split() {
        let mut bytes = client_frame(true, 0x1, b"hello");
        bytes.extend(client_frame(true, 0x9, b"abc"));
        bytes.extend(client_frame(false, 0x2, &[7; 300]));
        bytes.extend(client_frame(true, 0xA, b""));
        bytes.extend(client_frame(true, 0x0, &[1; 70_000]));
        bytes.extend(client_frame(true, 0x8, &[0x03, 0xE8, b'b', b'y', b'e']));
        bytes.extend(client_frame(true, 0x1, b"after close"));
        for chunk in [1, 3, 7, 1000, bytes.len()] {
            let (seen, r) = decode(&bytes, chunk);
            assert_eq!(r, Ok(()));
            assert_eq!(
                seen,
                [
                    Seen::Data,
                    Seen::Ping(b"abc".to_vec()),
                    Seen::Data,
                    Seen::Pong,
                    Seen::Data,
                    Seen::Close(Some(1000)),
                ],
                "chunk {chunk}"
            );
        }
    }

    #[test]
    fn refuses_bad_frames() {
        let big = client_frame(true, 0x2, &vec![0; MAX_PAYLOAD_BYTES as usize + 1]);
        // refused on the header, before the payload arrives
        assert_eq!(decode(&big[..14], 14).1, Err(FrameError::TooBig));
        let mut fragmented = client_frame(false, 0x1, &vec![0; 300_000]);
        fragmented.extend(client_frame(true, 0x0, &vec![0; 300_000]));
        assert_eq!(decode(&fragmented, 4096).1, Err(FrameError::TooBig));
        let exact = client_frame(true, 0x2, &vec![0; MAX_PAYLOAD_BYTES as usize]);
        assert_eq!(decode(&exact, 65536), (vec![Seen::Data], Ok(())));
        let mut unmasked = client_frame(true, 0x1, b"x");
        unmasked[1] &= 0x7F;
        let cases: Vec<(Vec<u8>, FrameError)> = vec![
            (unmasked, FrameError::Protocol),
            (
                {
                    let mut f = client_frame(true, 0x1, b"x");
                    f[0] |= 0x40;
                    f
                },
                FrameError::Protocol,
            ),
            (client_frame(true, 0x3, b""), FrameError::Protocol),
            (client_frame(false, 0x9, b""), FrameError::Protocol),
            (client_frame(true, 0x9, &[0; 126]), FrameError::Protocol),
            (client_frame(true, 0x0, b"x"), FrameError::Protocol),
            (
                {
                    let mut f = client_frame(false, 0x1, b"x");
                    f.extend(client_frame(true, 0x1, b"y"));
                    f
                },
                FrameError::Protocol,
            ),
            (client_frame(true, 0x8, &[3]), FrameError::Protocol),
            (client_frame(true, 0x8, &[0x03, 0xED]), FrameError::Protocol),
            (
                client_frame(true, 0x8, &[0x03, 0xE8, 0xFF]),
                FrameError::InvalidUtf8,
            ),
        ];
        for (bytes, want) in cases {
            assert_eq!(decode(&bytes, 5).1, Err(want), "{bytes:?}");
        }
        assert_eq!(
            decode(&client_frame(true, 0x8, b""), 1),
            (vec![Seen::Close(None)], Ok(()))
        );
    }

    /// Issue 9 item 7: invalid UTF-8 in text frames was ignored; RFC 6455 section 8.1 asks
    /// for close 1007. Valid text split anywhere (frames, reads, mid-sequence) still passes.
    #[test]
    fn text_frames_must_be_utf8() {
        let text = "prix €, größe ✓ 𝄞".as_bytes();
        let mut bytes = client_frame(false, 0x1, &text[..9]);
        bytes.extend(client_frame(false, 0x0, &text[9..17]));
        bytes.extend(client_frame(true, 0x0, &text[17..]));
        // binary frames carry anything
        bytes.extend(client_frame(true, 0x2, &[0xFF, 0xFE]));
        for chunk in [1, 2, 3, 7, 1000] {
            assert_eq!(
                decode(&bytes, chunk),
                (vec![Seen::Data, Seen::Data, Seen::Data, Seen::Data], Ok(())),
                "chunk {chunk}"
            );
        }
        let bad: [Vec<u8>; 3] = [
            client_frame(true, 0x1, &[b'a', 0xFF, b'b']),
            // the message ends inside a sequence (the first two bytes of `€`)
            client_frame(true, 0x1, &[b'a', 0xE2, 0x82]),
            {
                let mut b = client_frame(false, 0x1, &[0xE2]);
                b.extend(client_frame(true, 0x0, b"x"));
                b
            },
        ];
        for bytes in bad {
            for chunk in [1, 1000] {
                assert_eq!(decode(&bytes, chunk).1, Err(FrameError::InvalidUtf8));
            }
        }
        assert_eq!(FrameError::InvalidUtf8.code(), 1007);
        // long text: the 4 KiB blocks of the check
        let long = "é".repeat(10_000);
        assert_eq!(
            decode(&client_frame(true, 0x1, long.as_bytes()), 4093).1,
            Ok(())
        );
    }

    #[test]
    fn parses_upgrade_heads() {
        let good = b"GET /ws-stream-normalized?options=x HTTP/1.1\r\nHost: a\r\nUpgrade: WebSocket\r\nConnection: keep-alive, Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
        assert_eq!(head_end(good), Some(good.len()));
        assert_eq!(
            parse_head(good),
            Handshake::Upgrade {
                target: "/ws-stream-normalized?options=x",
                key: "dGhlIHNhbXBsZSBub25jZQ=="
            }
        );
        let plain = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n";
        assert_eq!(parse_head(plain), Handshake::NotUpgrade);
        let post = b"POST / HTTP/1.1\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n";
        assert_eq!(parse_head(post), Handshake::BadMethod);
        for bad in [
            &b"garbage\r\n\r\n"[..],
            b"GET / HTTP/1.1\r\nno colon\r\n\r\n",
            b"GET / HTTP/1.1\r\nUpgrade: h2c\r\nConnection: upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
            b"GET / HTTP/1.1\r\nUpgrade: websocket\r\nConnection: upgrade\r\nSec-WebSocket-Key: short\r\nSec-WebSocket-Version: 13\r\n\r\n",
            b"GET / HTTP/1.1\r\nUpgrade: websocket\r\nConnection: upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 12\r\n\r\n",
            b"\xff\xfe\r\n\r\n",
        ] {
            assert_eq!(parse_head(bad), Handshake::Bad, "{:?}", String::from_utf8_lossy(bad));
        }
        // RFC 6455 section 1.3 example
        let mut out = Vec::new();
        accept_response("dGhlIHNhbXBsZSBub25jZQ==", &mut out);
        assert!(
            String::from_utf8(out)
                .unwrap()
                .contains("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n")
        );
    }

    #[test]
    fn routes_like_tardis_machine() {
        assert_eq!(
            route("/WS-Stream-Normalized?options=A"),
            ("/ws-stream-normalized".to_string(), "options=A")
        );
        assert_eq!(route("//ws-stream-normalized?x").0, "/ws-stream-normalized");
        assert_eq!(route("/ws-stream-normalized/").0, "/ws-stream-normalized/");
        assert_eq!(
            route("http://h:1/ws-stream-normalized?q#f"),
            ("/ws-stream-normalized".to_string(), "q")
        );
        assert_eq!(route("/").0, "/");
    }

    #[test]
    fn frames_and_close_reasons() {
        let mut h = [0u8; 10];
        assert_eq!(frame_header(OP_TEXT, 5, &mut h), 2);
        assert_eq!(&h[..2], &[0x81, 5]);
        assert_eq!(frame_header(OP_TEXT, 300, &mut h), 4);
        assert_eq!(&h[..4], &[0x81, 126, 1, 44]);
        assert_eq!(frame_header(OP_TEXT, 70_000, &mut h), 10);
        assert_eq!(h[1], 127);
        let mut out = Vec::new();
        close_frame(1008, "Too much backpressure", &mut out);
        assert_eq!(&out[..4], &[0x88, 23, 0x03, 0xF0]);
        let long = "é".repeat(100);
        assert!(cut_reason(&long).len() <= MAX_CLOSE_REASON_BYTES);
        out.clear();
        close_frame(0, "", &mut out);
        assert_eq!(out, [0x88, 0]);
    }
}

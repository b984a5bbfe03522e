//! Blocking WebSocket client: tungstenite over a `TcpStream` (`ws://`) or rustls (`wss://`,
//! certificates always verified against [`super::tls`] roots).
//!
//! The socket has `TCP_NODELAY` (keep-alive and heartbeat answers leave at once) and a read
//! timeout, so a blocked read returns every [`ConnectOptions::read_timeout`] and the ingest
//! loop can run its silence watchdog, keep-alives and stop flag. tungstenite keeps partial
//! frames across such timeouts (a `WouldBlock`/`TimedOut` read error is not fatal), and so
//! does rustls for partial TLS records.

use std::io::{self, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::ServerName;
use rustls::{ClientConnection, StreamOwned};
use tungstenite::client::IntoClientRequest;
use tungstenite::handshake::HandshakeError;
use tungstenite::protocol::WebSocketConfig;

/// The byte stream under the WebSocket: plain TCP or TLS over TCP.
#[derive(Debug)]
pub enum Stream {
    /// `ws://`.
    Plain(TcpStream),
    /// `wss://`.
    Tls(Box<StreamOwned<ClientConnection, TcpStream>>),
}

impl Stream {
    /// The TCP socket.
    pub fn tcp(&self) -> &TcpStream {
        match self {
            Stream::Plain(s) => s,
            Stream::Tls(s) => s.get_ref(),
        }
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(s) => s.read(buf),
            Stream::Tls(s) => s.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(s) => s.write(buf),
            Stream::Tls(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Stream::Plain(s) => s.flush(),
            Stream::Tls(s) => s.flush(),
        }
    }
}

/// A connected WebSocket.
pub type Socket = tungstenite::WebSocket<Stream>;

/// Timeouts and limits of one connection.
#[derive(Copy, Clone, Debug)]
pub struct ConnectOptions {
    /// TCP connect, TLS and WebSocket handshakes, each. Default 10 s.
    pub connect_timeout: Duration,
    /// Read timeout once connected: how often a quiet read returns to the ingest loop.
    /// Default 200 ms.
    pub read_timeout: Duration,
    /// Write timeout (subscribe frames, keep-alives). Default 5 s.
    pub write_timeout: Duration,
    /// Largest message accepted, bytes. Default 16 MiB (OKX snapshots are 25 KB).
    pub max_message_bytes: usize,
}

impl Default for ConnectOptions {
    fn default() -> Self {
        ConnectOptions {
            connect_timeout: Duration::from_secs(10),
            read_timeout: Duration::from_millis(200),
            write_timeout: Duration::from_secs(5),
            max_message_bytes: 16 << 20,
        }
    }
}

/// Why a connection could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum WsError {
    /// The URL is not a `ws://` or `wss://` URL with a host.
    #[error("bad WebSocket URL `{0}`")]
    BadUrl(String),
    /// DNS resolution or TCP connect failed.
    #[error("connect to {addr}: {source}")]
    Connect {
        /// `host:port`.
        addr: String,
        /// The cause.
        source: io::Error,
    },
    /// TLS set-up failed (bad server name).
    #[error("TLS: {0}")]
    Tls(String),
    /// The TLS or WebSocket handshake failed (certificate rejected, HTTP error status, …).
    #[error("handshake with {addr}: {message}")]
    Handshake {
        /// `host:port`.
        addr: String,
        /// What went wrong.
        message: String,
    },
}

/// Opens `url` (`ws://` or `wss://`), verifying TLS certificates with `tls`.
///
/// # Errors
/// A [`WsError`] for each stage that can fail.
pub fn connect(
    url: &str,
    tls: &Arc<rustls::ClientConfig>,
    opts: &ConnectOptions,
) -> Result<Socket, WsError> {
    let request = url
        .into_client_request()
        .map_err(|_| WsError::BadUrl(url.to_string()))?;
    let uri = request.uri();
    let secure = match uri.scheme_str() {
        Some("wss") => true,
        Some("ws") => false,
        _ => return Err(WsError::BadUrl(url.to_string())),
    };
    let host = uri
        .host()
        .ok_or_else(|| WsError::BadUrl(url.to_string()))?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    let port = uri.port_u16().unwrap_or(if secure { 443 } else { 80 });
    let addr = format!("{host}:{port}");
    let connect_err = |source: io::Error| WsError::Connect {
        addr: addr.clone(),
        source,
    };
    let mut last_err = io::Error::new(io::ErrorKind::NotFound, "no address");
    let mut tcp = None;
    for sa in (host.as_str(), port)
        .to_socket_addrs()
        .map_err(connect_err)?
    {
        match TcpStream::connect_timeout(&sa, opts.connect_timeout) {
            Ok(s) => {
                tcp = Some(s);
                break;
            }
            Err(e) => last_err = e,
        }
    }
    let tcp = tcp.ok_or_else(|| connect_err(last_err))?;
    tcp.set_nodelay(true).map_err(connect_err)?;
    tcp.set_read_timeout(Some(opts.connect_timeout))
        .map_err(connect_err)?;
    tcp.set_write_timeout(Some(opts.write_timeout))
        .map_err(connect_err)?;
    let stream = if secure {
        let name = ServerName::try_from(host.clone()).map_err(|e| WsError::Tls(e.to_string()))?;
        let conn =
            ClientConnection::new(tls.clone(), name).map_err(|e| WsError::Tls(e.to_string()))?;
        Stream::Tls(Box::new(StreamOwned::new(conn, tcp)))
    } else {
        Stream::Plain(tcp)
    };
    let config = WebSocketConfig::default()
        .max_message_size(Some(opts.max_message_bytes))
        .max_frame_size(Some(opts.max_message_bytes));
    let (socket, _response) =
        tungstenite::client::client_with_config(request, stream, Some(config)).map_err(|e| {
            WsError::Handshake {
                addr: addr.clone(),
                message: match e {
                    HandshakeError::Interrupted(_) => "timed out".to_string(),
                    HandshakeError::Failure(e) => e.to_string(),
                },
            }
        })?;
    socket
        .get_ref()
        .tcp()
        .set_read_timeout(Some(opts.read_timeout))
        .map_err(connect_err)?;
    Ok(socket)
}

/// True for the read errors a read timeout produces (the connection is still good).
pub fn is_timeout(e: &tungstenite::Error) -> bool {
    matches!(e, tungstenite::Error::Io(io) if matches!(io.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;
    use tungstenite::Message;

    fn tls() -> Arc<rustls::ClientConfig> {
        super::super::tls::client_config(&super::super::tls::trust_roots(None).unwrap()).unwrap()
    }

    #[test]
    fn bad_urls() {
        let o = ConnectOptions::default();
        assert!(matches!(
            connect("http://x/", &tls(), &o),
            Err(WsError::BadUrl(_))
        ));
        assert!(matches!(
            connect("not a url", &tls(), &o),
            Err(WsError::BadUrl(_))
        ));
    }

    #[test]
    fn refused_connection_is_an_error() {
        let port = {
            let l = TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let e = connect(
            &format!("ws://127.0.0.1:{port}/"),
            &tls(),
            &ConnectOptions::default(),
        )
        .unwrap_err();
        assert!(matches!(e, WsError::Connect { .. }), "{e}");
    }

    #[test]
    fn plain_round_trip_with_read_timeouts() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = std::thread::spawn(move || {
            let (s, _) = listener.accept().unwrap();
            let mut ws = tungstenite::accept(s).unwrap();
            let m = ws.read().unwrap();
            assert_eq!(m, Message::Text("hello".into()));
            std::thread::sleep(Duration::from_millis(300));
            ws.send(Message::Text("world".into())).unwrap();
            let _ = ws.close(None);
            while ws.read().is_ok() {}
        });
        let opts = ConnectOptions {
            read_timeout: Duration::from_millis(50),
            ..ConnectOptions::default()
        };
        let mut ws = connect(&format!("ws://127.0.0.1:{port}/path?x=1"), &tls(), &opts).unwrap();
        assert!(ws.get_ref().tcp().nodelay().unwrap());
        ws.send(Message::Text("hello".into())).unwrap();
        let mut timeouts = 0;
        let got = loop {
            match ws.read() {
                Ok(Message::Text(t)) => break t.to_string(),
                Ok(_) => {}
                Err(e) if is_timeout(&e) => timeouts += 1,
                Err(e) => panic!("{e}"),
            }
        };
        assert_eq!(got, "world");
        assert!(timeouts >= 2, "{timeouts}");
        drop(ws);
        server.join().unwrap();
    }

    #[test]
    fn tls_to_an_untrusted_server_fails_the_handshake() {
        // a plain-TCP server that speaks no TLS: the handshake must fail, not hang
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            let mut buf = [0u8; 512];
            let _ = s.read(&mut buf);
            let _ = s.write_all(b"HTTP/1.1 400 Bad Request\r\n\r\n");
        });
        let opts = ConnectOptions {
            connect_timeout: Duration::from_secs(2),
            ..ConnectOptions::default()
        };
        let e = connect(&format!("wss://127.0.0.1:{port}/"), &tls(), &opts).unwrap_err();
        assert!(matches!(e, WsError::Handshake { .. }), "{e}");
        server.join().unwrap();
    }

    /// A WSS server on 127.0.0.1 with a fresh self-signed certificate; sends "hi" to each
    /// of `clients` connections. Returns the port and the certificate as PEM.
    fn wss_server(clients: usize) -> (u16, String, std::thread::JoinHandle<()>) {
        let ck = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()]).unwrap();
        let pem = ck.cert.pem();
        let key = rustls::pki_types::PrivateKeyDer::Pkcs8(ck.signing_key.serialize_der().into());
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![ck.cert.der().clone()], key)
        .unwrap();
        let config = Arc::new(config);
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let h = std::thread::spawn(move || {
            for _ in 0..clients {
                let (tcp, _) = listener.accept().unwrap();
                tcp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
                let conn = rustls::ServerConnection::new(config.clone()).unwrap();
                let tls = StreamOwned::new(conn, tcp);
                // an untrusting client aborts the TLS handshake: that is the expected end
                if let Ok(mut ws) = tungstenite::accept(tls) {
                    ws.send(Message::Text("hi".into())).unwrap();
                    let _ = ws.close(None);
                    while ws.read().is_ok() {}
                }
            }
        });
        (port, pem, h)
    }

    #[test]
    fn wss_verifies_certificates_against_the_configured_ca() {
        let (port, pem, server) = wss_server(2);
        let url = format!("wss://127.0.0.1:{port}/ws");
        let opts = ConnectOptions {
            connect_timeout: Duration::from_secs(5),
            ..ConnectOptions::default()
        };
        // bundled roots only: the self-signed certificate is rejected
        let e = connect(&url, &tls(), &opts).unwrap_err();
        assert!(matches!(e, WsError::Handshake { .. }), "{e}");
        assert!(e.to_string().to_lowercase().contains("certificate"), "{e}");
        // with the CA file: accepted, and the data flows
        let dir = std::env::temp_dir().join(format!("pinfeed-wss-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let ca = dir.join("ca.pem");
        std::fs::write(&ca, pem).unwrap();
        let roots = super::super::tls::trust_roots(Some(&ca)).unwrap();
        let config = super::super::tls::client_config(&roots).unwrap();
        let mut ws = connect(&url, &config, &opts).unwrap();
        let got = loop {
            match ws.read() {
                Ok(Message::Text(t)) => break t.to_string(),
                Ok(_) => {}
                Err(e) if is_timeout(&e) => {}
                Err(e) => panic!("{e}"),
            }
        };
        assert_eq!(got, "hi");
        drop(ws);
        server.join().unwrap();
        let _ = std::fs::remove_dir_all(&dir);
    }
}

//! TLS for `pinfeed simulate`: a CA and a server certificate generated at start-up (rcgen),
//! served with rustls, and the stream type the server reads requests from.
//!
//! The CA is written next to a `--write-config` file (`ca_file`), so `pinfeed run` and test
//! clients verify the simulator's certificate the way they verify a venue's: no verification is
//! ever turned off. The server certificate names `localhost`, `127.0.0.1`, `::1` and the bound
//! address; it is signed by the CA, which is a proper trust anchor (a self-signed leaf used as
//! its own root is not what real chains look like). The CA key can be kept in a file so a
//! restarted simulator is trusted by clients configured for the earlier run.

use std::io::{self, Read, Write};
use std::net::{IpAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::{ServerConfig, ServerConnection, StreamOwned};

/// Certificates of one simulator run.
pub struct TlsMaterial {
    /// The CA certificate, PEM: what clients must trust (`ca_file`).
    pub ca_pem: String,
    /// The CA certificate, DER.
    pub ca_der: CertificateDer<'static>,
    /// The rustls server configuration (server certificate chain and key).
    pub server_config: Arc<ServerConfig>,
}

/// Why TLS could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// Certificate generation failed.
    #[error("generating the certificate: {0}")]
    Rcgen(#[from] rcgen::Error),
    /// rustls refused the configuration.
    #[error("TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
    /// The CA key file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// The CA key file holds no usable private key.
    #[error("{path}: not a PEM private key: {message}")]
    Key {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
}

/// The CA's private key: read from `ca_key` when that file exists, else generated (and
/// written there, PKCS#8 PEM, when a path is given).
fn ca_key_pair(ca_key: Option<&Path>) -> Result<KeyPair, TlsError> {
    let Some(path) = ca_key else {
        return Ok(KeyPair::generate()?);
    };
    let io = |source| TlsError::Io {
        path: path.to_path_buf(),
        source,
    };
    match std::fs::read_to_string(path) {
        Ok(pem) => KeyPair::from_pem(&pem).map_err(|e| TlsError::Key {
            path: path.to_path_buf(),
            message: e.to_string(),
        }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let key = KeyPair::generate()?;
            std::fs::write(path, key.serialize_pem()).map_err(io)?;
            Ok(key)
        }
        Err(e) => Err(io(e)),
    }
}

/// Generates a CA and a server certificate for `localhost`, `127.0.0.1`, `::1` and `bound_ip`,
/// and the rustls server configuration that serves them.
///
/// With `ca_key`, the CA's key is kept in that file (read when it exists, written when not):
/// the CA's name and key then stay the same across runs, so a client that trusts the CA file of
/// an earlier run (a trust anchor is a name and a key) still verifies a restarted simulator.
///
/// # Errors
/// [`TlsError`] when key generation, signing, the key file or the rustls configuration fails.
pub fn generate(bound_ip: IpAddr, ca_key: Option<&Path>) -> Result<TlsMaterial, TlsError> {
    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "pinfeed simulate CA");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca_key = ca_key_pair(ca_key)?;
    let ca_cert = ca_params.self_signed(&ca_key)?;
    let issuer = Issuer::new(ca_params, ca_key);

    let mut names = vec![
        "localhost".to_string(),
        "127.0.0.1".to_string(),
        "::1".to_string(),
    ];
    if !bound_ip.is_unspecified() && !names.contains(&bound_ip.to_string()) {
        names.push(bound_ip.to_string());
    }
    let mut leaf_params = CertificateParams::new(names)?;
    leaf_params
        .distinguished_name
        .push(DnType::CommonName, "localhost");
    leaf_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    leaf_params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    let leaf_key = KeyPair::generate()?;
    let leaf_cert = leaf_params.signed_by(&leaf_key, &issuer)?;

    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der()));
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let server_config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(vec![leaf_cert.der().clone(), ca_cert.der().clone()], key)?;
    Ok(TlsMaterial {
        ca_pem: ca_cert.pem(),
        ca_der: ca_cert.der().clone(),
        server_config: Arc::new(server_config),
    })
}

/// Longest lingering close.
const LINGER: std::time::Duration = std::time::Duration::from_millis(500);

/// Read timeout while lingering.
const LINGER_POLL: std::time::Duration = std::time::Duration::from_millis(100);

/// Most bytes drained while lingering.
const LINGER_MAX_BYTES: usize = 1 << 20;

/// A client connection: plain TCP or TLS over TCP.
pub enum Stream {
    /// `ws://` and `http://`.
    Plain(TcpStream),
    /// `wss://` and `https://`.
    Tls(Box<StreamOwned<ServerConnection, TcpStream>>),
}

impl Stream {
    /// Wraps `tcp` in a server-side TLS session when `config` is given (the handshake happens
    /// on the first read).
    ///
    /// # Errors
    /// rustls' error when the session cannot be created.
    pub fn new(
        tcp: TcpStream,
        config: Option<&Arc<ServerConfig>>,
    ) -> Result<Stream, rustls::Error> {
        Ok(match config {
            None => Stream::Plain(tcp),
            Some(c) => Stream::Tls(Box::new(StreamOwned::new(
                ServerConnection::new(c.clone())?,
                tcp,
            ))),
        })
    }

    /// The TCP socket underneath (for timeouts and blocking mode).
    pub fn tcp(&self) -> &TcpStream {
        match self {
            Stream::Plain(s) => s,
            Stream::Tls(s) => &s.sock,
        }
    }

    /// Ends the connection politely: a TLS `close_notify` (best effort), the TCP write side
    /// shut down, then what the peer still sends is read and dropped for a moment (a
    /// "lingering close", RFC 9112 section 9.6), so an unread request body does not turn the
    /// close into a reset that destroys the response in flight.
    pub fn shutdown(&mut self) {
        if let Stream::Tls(s) = self {
            s.conn.send_close_notify();
            let _ = s.flush();
        }
        let tcp = self.tcp();
        let _ = tcp.set_nonblocking(false);
        let _ = tcp.shutdown(std::net::Shutdown::Write);
        let _ = tcp.set_read_timeout(Some(LINGER_POLL));
        let deadline = std::time::Instant::now() + LINGER;
        let mut sink = [0u8; 8192];
        let mut drained = 0usize;
        while std::time::Instant::now() < deadline && drained < LINGER_MAX_BYTES {
            match (&mut &*tcp).read(&mut sink) {
                Ok(0) => break,
                Ok(n) => drained += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => break,
            }
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

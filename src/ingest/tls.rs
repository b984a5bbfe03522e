//! Trust roots for venue connections: the bundled web PKI roots (Mozilla's, from
//! `webpki-root-certs`) plus an optional PEM file of extra CA certificates (a simulator's
//! self-signed CA). Certificates are always verified; there is no switch to turn that off.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::RootCertStore;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;

/// Why the trust roots or TLS configuration could not be built.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The CA file could not be read or is not PEM.
    #[error("{path}: {message}")]
    CaFile {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// rustls rejected the configuration.
    #[error("TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
}

/// The bundled web PKI roots followed by every certificate of `ca_file`.
///
/// # Errors
/// [`TlsError::CaFile`] when the file cannot be read, is not PEM, or holds no certificate.
pub fn trust_roots(ca_file: Option<&Path>) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let mut roots: Vec<CertificateDer<'static>> = webpki_root_certs::TLS_SERVER_ROOT_CERTS.to_vec();
    if let Some(path) = ca_file {
        let err = |message: String| TlsError::CaFile {
            path: path.to_path_buf(),
            message,
        };
        let iter = CertificateDer::pem_file_iter(path).map_err(|e| err(e.to_string()))?;
        let mut n = 0;
        for cert in iter {
            roots.push(cert.map_err(|e| err(e.to_string()))?);
            n += 1;
        }
        if n == 0 {
            return Err(err("no CERTIFICATE block in the PEM file".into()));
        }
    }
    Ok(roots)
}

/// A rustls client configuration (ring provider, TLS 1.2 and 1.3) trusting `roots`.
///
/// # Errors
/// [`TlsError::Rustls`]; [`TlsError::CaFile`] when none of `roots` is a usable CA.
pub fn client_config(
    roots: &[CertificateDer<'static>],
) -> Result<Arc<rustls::ClientConfig>, TlsError> {
    let mut store = RootCertStore::empty();
    let (added, _ignored) = store.add_parsable_certificates(roots.iter().cloned());
    if added == 0 {
        return Err(TlsError::CaFile {
            path: PathBuf::from("<roots>"),
            message: "no usable CA certificate".into(),
        });
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_root_certificates(store)
    .with_no_client_auth();
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bundled_roots_build_a_config() {
        let roots = trust_roots(None).unwrap();
        assert!(roots.len() > 100);
        client_config(&roots).unwrap();
    }

    #[test]
    fn bad_ca_files_are_errors_naming_the_file() {
        let dir = std::env::temp_dir().join(format!("pinfeed-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let empty = dir.join("empty.pem");
        std::fs::write(&empty, "not a pem\n").unwrap();
        let e = trust_roots(Some(&empty)).unwrap_err().to_string();
        assert!(e.contains("empty.pem"), "{e}");
        let missing = dir.join("missing.pem");
        let e = trust_roots(Some(&missing)).unwrap_err().to_string();
        assert!(e.contains("missing.pem"), "{e}");
        // a real CA certificate from the bundle, written as PEM, is accepted and appended
        let der = webpki_root_certs::TLS_SERVER_ROOT_CERTS[0].as_ref();
        let pem = pem_encode(der);
        let good = dir.join("good.pem");
        std::fs::write(&good, pem).unwrap();
        let roots = trust_roots(Some(&good)).unwrap();
        assert_eq!(roots.last().unwrap().as_ref(), der);
        let _ = std::fs::remove_dir_all(&dir);
    }

    fn pem_encode(der: &[u8]) -> String {
        const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let mut b = String::new();
        for chunk in der.chunks(3) {
            let n = chunk.len();
            let v = (chunk[0] as u32) << 16
                | (*chunk.get(1).unwrap_or(&0) as u32) << 8
                | *chunk.get(2).unwrap_or(&0) as u32;
            for i in 0..4 {
                if i <= n {
                    b.push(B64[(v >> (18 - 6 * i) & 63) as usize] as char);
                } else {
                    b.push('=');
                }
            }
        }
        let mut out = String::from("-----BEGIN CERTIFICATE-----\n");
        for line in b.as_bytes().chunks(64) {
            out.push_str(std::str::from_utf8(line).unwrap());
            out.push('\n');
        }
        out.push_str("-----END CERTIFICATE-----\n");
        out
    }
}

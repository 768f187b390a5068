//! HTTPS for the listener (docs/operations.md, "TLS"): the certificate chain and private key of
//! `[tls] cert_file` / `key_file` (PEM), served with rustls to HTTP/1.1 and HTTP/2 clients (ALPN
//! `h2`, `http/1.1`).
//!
//! The pair in use lives in [`CertStore`], the rustls certificate resolver: each new handshake
//! takes the current pair, so [`CertStore::reload`] (run on SIGHUP) swaps it for new connections
//! while open connections keep the session they negotiated. A pair that cannot be read, is not
//! PEM, or whose key is not the certificate's is refused with a message naming the file, at
//! start-up (the server does not start) and on reload (the old pair stays).

use anyhow::Context;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use tessera_core::config::TlsSettings;
use tokio_rustls::TlsAcceptor;

/// The certificate and key presented to new connections; swapped by [`CertStore::reload`].
pub struct CertStore {
    cert_file: PathBuf,
    key_file: PathBuf,
    provider: Arc<CryptoProvider>,
    current: RwLock<Arc<CertifiedKey>>,
}

impl std::fmt::Debug for CertStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertStore").field("cert_file", &self.cert_file).field("key_file", &self.key_file).finish_non_exhaustive()
    }
}

impl ResolvesServerCert for CertStore {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.read().unwrap_or_else(|e| e.into_inner()).clone())
    }
}

impl CertStore {
    /// Reads the configured pair again; on success new handshakes use it, on error the pair in use
    /// stays and the error says why.
    pub fn reload(&self) -> anyhow::Result<()> {
        let key = load_pair(&self.cert_file, &self.key_file, &self.provider)?;
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(key);
        Ok(())
    }

    /// The DER of the leaf certificate in use.
    pub fn current_leaf(&self) -> Option<CertificateDer<'static>> {
        self.current.read().unwrap_or_else(|e| e.into_inner()).cert.first().cloned()
    }
}

/// The listener's TLS side: the acceptor for new connections and the pair it presents.
#[derive(Clone)]
pub struct Tls {
    pub acceptor: TlsAcceptor,
    pub certs: Arc<CertStore>,
}

/// Builds the TLS side from `[tls]`; `None` when it is not configured (plain HTTP).
pub fn from_settings(settings: &TlsSettings) -> anyhow::Result<Option<Tls>> {
    if !settings.enabled() {
        return Ok(None);
    }
    let (Some(cert_file), Some(key_file)) = (settings.cert_file.clone(), settings.key_file.clone()) else {
        return Ok(None);
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let first = load_pair(&cert_file, &key_file, &provider)?;
    let certs = Arc::new(CertStore { cert_file, key_file, provider: provider.clone(), current: RwLock::new(Arc::new(first)) });
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS: no protocol version available")?
        .with_no_client_auth()
        .with_cert_resolver(certs.clone());
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Some(Tls { acceptor: TlsAcceptor::from(Arc::new(config)), certs }))
}

/// Reads and checks a certificate chain and its private key.
pub fn load_pair(cert_file: &Path, key_file: &Path, provider: &CryptoProvider) -> anyhow::Result<CertifiedKey> {
    let cert_pem = std::fs::read(cert_file).with_context(|| format!("cannot read [tls] cert_file {}", cert_file.display()))?;
    let chain = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| anyhow::anyhow!("[tls] cert_file {} is not a PEM certificate chain: {e}", cert_file.display()))?;
    if chain.is_empty() {
        anyhow::bail!("[tls] cert_file {} holds no certificate (expected PEM \"BEGIN CERTIFICATE\" blocks)", cert_file.display());
    }
    let key_pem = std::fs::read(key_file).with_context(|| format!("cannot read [tls] key_file {}", key_file.display()))?;
    let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| {
        anyhow::anyhow!("[tls] key_file {} holds no usable PEM private key (PKCS#8, PKCS#1 or SEC1): {e}", key_file.display())
    })?;
    let signing = provider
        .key_provider
        .load_private_key(key)
        .map_err(|e| anyhow::anyhow!("[tls] key_file {}: unsupported private key: {e}", key_file.display()))?;
    let pair = CertifiedKey::new(chain, signing);
    pair.keys_match().map_err(|e| {
        anyhow::anyhow!(
            "[tls] cert_file {} and key_file {} do not match: the key is not the certificate's ({e})",
            cert_file.display(),
            key_file.display()
        )
    })?;
    Ok(pair)
}

//! Transport security in the process: TLS on the service port and towards other
//! services, mutual TLS when asked for.
//!
//! Plaintext (h2c) stays the default: in Kubernetes a service mesh or the ingress usually
//! terminates TLS. A deployment that wants each process to speak TLS itself sets:
//!
//! | variable | meaning |
//! |---|---|
//! | `CREDMESH_TLS_CERT_FILE`, `CREDMESH_TLS_KEY_FILE` | PEM certificate chain and private key (PKCS#8, PKCS#1 or SEC1). The port then speaks TLS only, gRPC and HTTP alike (ALPN `h2` and `http/1.1`); the same pair is the client certificate shown to other services that ask for one. Both or neither. |
//! | `CREDMESH_TLS_CLIENT_CA_FILE` | Mutual TLS: every client must present a certificate issued by a CA in this PEM bundle, or the handshake fails. Needs the pair above. Access tokens are still checked on every call: the certificate admits a connection, the token names the caller. |
//! | `CREDMESH_TLS_CA_FILE` | CAs (PEM) trusted for `https://` URLs of other credmesh services, besides the system's roots. |
//!
//! Files are read once at start; a mistake (a missing file, a key that does not match
//! its certificate, a bundle without certificates) stops the process with the file named.
//! Rotating certificates means restarting the pods (a Deployment's rolling restart), which
//! cert-manager's reloader or `kubectl rollout restart` does.

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    sync::{Arc, OnceLock},
};

use anyhow::{Context as _, bail};
use tokio_rustls::rustls::{
    self, RootCertStore,
    crypto::ring,
    pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject as _},
    server::WebPkiClientVerifier,
};

/// The TLS settings of a process, as read from its environment.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TlsFiles {
    /// Certificate chain and key: serve TLS, and show them to servers that ask.
    pub identity: Option<(PathBuf, PathBuf)>,
    /// Require client certificates issued by these CAs.
    pub client_ca: Option<PathBuf>,
    /// Extra CAs for `https://` service URLs.
    pub ca: Option<PathBuf>,
}

impl TlsFiles {
    /// Reads the `CREDMESH_TLS_*` variables; refuses half a pair and mutual TLS without
    /// a certificate of the server's own.
    pub fn from_env(env: &HashMap<String, String>) -> anyhow::Result<TlsFiles> {
        let path = |key: &str| {
            env.get(key)
                .map(String::as_str)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        };
        let identity = match (
            path("CREDMESH_TLS_CERT_FILE"),
            path("CREDMESH_TLS_KEY_FILE"),
        ) {
            (Some(cert), Some(key)) => Some((cert, key)),
            (None, None) => None,
            (Some(_), None) => {
                bail!("CREDMESH_TLS_CERT_FILE is set but CREDMESH_TLS_KEY_FILE is not: set both")
            }
            (None, Some(_)) => {
                bail!("CREDMESH_TLS_KEY_FILE is set but CREDMESH_TLS_CERT_FILE is not: set both")
            }
        };
        let client_ca = path("CREDMESH_TLS_CLIENT_CA_FILE");
        if client_ca.is_some() && identity.is_none() {
            bail!(
                "CREDMESH_TLS_CLIENT_CA_FILE asks for mutual TLS, which needs the server's own \
                 CREDMESH_TLS_CERT_FILE and CREDMESH_TLS_KEY_FILE"
            );
        }
        Ok(TlsFiles {
            identity,
            client_ca,
            ca: path("CREDMESH_TLS_CA_FILE"),
        })
    }

    /// The server side, or `None` for plaintext.
    pub fn server(&self) -> anyhow::Result<Option<ServerTls>> {
        let Some((cert_file, key_file)) = &self.identity else {
            return Ok(None);
        };
        let (chain, key) = read_identity(cert_file, key_file)?;
        let provider = Arc::new(ring::default_provider());
        let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .context("the TLS provider offers no safe protocol version")?;
        let builder = match &self.client_ca {
            None => builder.with_no_client_auth(),
            Some(path) => {
                let roots = Arc::new(read_roots(path, RootCertStore::empty())?);
                let verifier = WebPkiClientVerifier::builder_with_provider(roots, provider)
                    .build()
                    .with_context(|| format!("the client CA bundle {}", path.display()))?;
                builder.with_client_cert_verifier(verifier)
            }
        };
        let mut config = builder.with_single_cert(chain, key).with_context(|| {
            format!(
                "the key {} does not belong to the certificate {}",
                key_file.display(),
                cert_file.display()
            )
        })?;
        // gRPC needs h2; pages, status lists and /metrics are also served over HTTP/1.1.
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Some(ServerTls {
            config: Arc::new(config),
            mutual: self.client_ca.is_some(),
        }))
    }

    /// The client side for `https://` URLs of other services.
    pub fn client(&self) -> anyhow::Result<ClientTls> {
        let mut roots = RootCertStore::empty();
        let native = rustls_native_certs::load_native_certs();
        for err in &native.errors {
            tracing::debug!(error = %err, "a system CA certificate was not loaded");
        }
        roots.add_parsable_certificates(native.certs);
        if let Some(path) = &self.ca {
            roots = read_roots(path, roots)?;
        }
        let (identity, pair) = match &self.identity {
            None => (None, None),
            Some((cert_file, key_file)) => {
                // Read here so a bad pair is refused at start, not at the first call.
                let (chain, key) = read_identity(cert_file, key_file)?;
                let read =
                    |p: &Path| std::fs::read(p).with_context(|| format!("reading {}", p.display()));
                let identity =
                    tonic::transport::Identity::from_pem(read(cert_file)?, read(key_file)?);
                (Some(identity), Some((chain, Arc::new(key))))
            }
        };
        Ok(ClientTls {
            roots: Arc::new(roots),
            identity,
            pair,
            server_name: None,
        })
    }
}

/// A server's TLS configuration: what [`crate::Server`] terminates connections with.
#[derive(Clone)]
pub struct ServerTls {
    config: Arc<rustls::ServerConfig>,
    mutual: bool,
}

impl ServerTls {
    /// The acceptor for accepted TCP connections.
    pub fn acceptor(&self) -> tokio_rustls::TlsAcceptor {
        tokio_rustls::TlsAcceptor::from(self.config.clone())
    }

    /// Whether clients must present a certificate.
    pub fn is_mutual(&self) -> bool {
        self.mutual
    }
}

impl std::fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerTls")
            .field("mutual", &self.mutual)
            .finish_non_exhaustive()
    }
}

/// What `https://` channels to other services trust and show.
#[derive(Clone)]
pub struct ClientTls {
    roots: Arc<RootCertStore>,
    /// The process's certificate and key, for tonic.
    identity: Option<tonic::transport::Identity>,
    /// The same, for rustls clients (HTTP fetches).
    pair: Option<(Vec<CertificateDer<'static>>, Arc<PrivateKeyDer<'static>>)>,
    /// The name the server's certificate must carry, when not the URL's host (a probe
    /// dialling 127.0.0.1 checks the certificate of the Service it stands behind).
    server_name: Option<String>,
}

impl std::fmt::Debug for ClientTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientTls")
            .field("roots", &self.roots.len())
            .field("client_certificate", &self.identity.is_some())
            .field("server_name", &self.server_name)
            .finish()
    }
}

static CLIENT: OnceLock<ClientTls> = OnceLock::new();

impl ClientTls {
    /// Makes `tls` what every `https://` channel of this process uses (see
    /// [`crate::client::channel`]). Called once at start, before any channel is made;
    /// a second call is refused.
    pub fn install(self) -> anyhow::Result<()> {
        CLIENT
            .set(self)
            .map_err(|_| anyhow::anyhow!("the client TLS settings were already installed"))
    }

    /// The installed settings, or the system's roots and no client certificate.
    pub fn installed() -> &'static ClientTls {
        CLIENT.get_or_init(|| {
            TlsFiles::default().client().unwrap_or_else(|_| ClientTls {
                roots: Arc::new(RootCertStore::empty()),
                identity: None,
                pair: None,
                server_name: None,
            })
        })
    }

    /// These settings verifying the server's certificate against `server_name` instead of
    /// the URL's host: `credmesh probe` dials the pod's own port on 127.0.0.1 and checks
    /// the certificate names the Service.
    pub fn for_server_name(mut self, server_name: impl Into<String>) -> ClientTls {
        self.server_name = Some(server_name.into());
        self
    }

    /// The trusted roots.
    pub fn roots(&self) -> &RootCertStore {
        &self.roots
    }

    /// tonic's configuration for one channel.
    pub fn tonic(&self) -> tonic::transport::ClientTlsConfig {
        self.tonic_with_roots(&self.roots)
    }

    /// tonic's configuration trusting `roots` instead, still showing the process's own
    /// certificate (channels to partner regions, whose CAs are configured apart).
    pub fn tonic_with_roots(&self, roots: &RootCertStore) -> tonic::transport::ClientTlsConfig {
        let mut config =
            tonic::transport::ClientTlsConfig::new().trust_anchors(roots.roots.clone());
        if let Some(name) = &self.server_name {
            config = config.domain_name(name.clone());
        }
        match &self.identity {
            Some(identity) => config.identity(identity.clone()),
            None => config,
        }
    }

    /// A rustls client configuration trusting `roots`, showing the process's own
    /// certificate when it has one, offering `alpn` (HTTP clients).
    pub fn rustls_with_roots(
        &self,
        roots: RootCertStore,
        alpn: Vec<Vec<u8>>,
    ) -> anyhow::Result<rustls::ClientConfig> {
        let builder =
            rustls::ClientConfig::builder_with_provider(Arc::new(ring::default_provider()))
                .with_safe_default_protocol_versions()
                .context("the TLS provider offers no safe protocol version")?
                .with_root_certificates(roots);
        let mut config = match &self.pair {
            None => builder.with_no_client_auth(),
            Some((chain, key)) => builder
                .with_client_auth_cert(chain.clone(), key.clone_key())
                .context("the client certificate and key")?,
        };
        config.alpn_protocols = alpn;
        Ok(config)
    }
}

/// A certificate chain and its key, checked to be readable PEM.
fn read_identity(
    cert_file: &Path,
    key_file: &Path,
) -> anyhow::Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)> {
    let pem = std::fs::read(cert_file)
        .with_context(|| format!("reading the certificate {}", cert_file.display()))?;
    let chain = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("the certificate {} is not valid PEM", cert_file.display()))?;
    if chain.is_empty() {
        bail!(
            "the certificate file {} holds no PEM certificate (-----BEGIN CERTIFICATE-----)",
            cert_file.display()
        );
    }
    let pem = std::fs::read(key_file)
        .with_context(|| format!("reading the private key {}", key_file.display()))?;
    let key = PrivateKeyDer::from_pem_slice(&pem).with_context(|| {
        format!(
            "the private key {} holds no PEM private key",
            key_file.display()
        )
    })?;
    Ok((chain, key))
}

/// `roots` plus every certificate of the PEM bundle at `path`.
fn read_roots(path: &Path, mut roots: RootCertStore) -> anyhow::Result<RootCertStore> {
    let pem =
        std::fs::read(path).with_context(|| format!("reading the CA bundle {}", path.display()))?;
    add_pem_bundle(&mut roots, &pem)
        .with_context(|| format!("the CA bundle {}", path.display()))?;
    Ok(roots)
}

/// Adds every certificate of a PEM bundle to `roots`; answers how many. Refuses a bundle
/// with none, so a mistyped file is noticed at start, not at the first connection.
pub fn add_pem_bundle(roots: &mut RootCertStore, pem: &[u8]) -> anyhow::Result<usize> {
    let mut added = 0;
    for (i, cert) in CertificateDer::pem_slice_iter(pem).enumerate() {
        let cert = cert.with_context(|| format!("certificate {} is not valid PEM", i + 1))?;
        roots
            .add(cert)
            .with_context(|| format!("certificate {} is not a usable CA certificate", i + 1))?;
        added += 1;
    }
    if added == 0 {
        bail!("holds no PEM certificate (-----BEGIN CERTIFICATE-----)");
    }
    Ok(added)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn nothing_set_means_plaintext() {
        let files = TlsFiles::from_env(&env(&[])).unwrap();
        assert_eq!(files, TlsFiles::default());
        assert!(files.server().unwrap().is_none());
    }

    #[test]
    fn half_a_pair_and_mutual_tls_without_a_certificate_are_refused_by_name() {
        let e = TlsFiles::from_env(&env(&[("CREDMESH_TLS_CERT_FILE", "/c.pem")])).unwrap_err();
        assert!(e.to_string().contains("CREDMESH_TLS_KEY_FILE"), "{e}");
        let e = TlsFiles::from_env(&env(&[("CREDMESH_TLS_KEY_FILE", "/k.pem")])).unwrap_err();
        assert!(e.to_string().contains("CREDMESH_TLS_CERT_FILE"), "{e}");
        let e =
            TlsFiles::from_env(&env(&[("CREDMESH_TLS_CLIENT_CA_FILE", "/ca.pem")])).unwrap_err();
        assert!(e.to_string().contains("mutual TLS"), "{e}");
    }

    #[test]
    fn missing_and_empty_files_are_named() {
        let files = TlsFiles::from_env(&env(&[
            ("CREDMESH_TLS_CERT_FILE", "/nonexistent/cert.pem"),
            ("CREDMESH_TLS_KEY_FILE", "/nonexistent/key.pem"),
        ]))
        .unwrap();
        let e = format!("{:#}", files.server().unwrap_err());
        assert!(e.contains("/nonexistent/cert.pem"), "{e}");

        let dir = std::env::temp_dir().join(format!("credmesh-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let empty = dir.join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        let files = TlsFiles {
            ca: Some(empty.clone()),
            ..TlsFiles::default()
        };
        let e = format!("{:#}", files.client().unwrap_err());
        assert!(e.contains("holds no PEM certificate"), "{e}");
        assert!(e.contains("empty.pem"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

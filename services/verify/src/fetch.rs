//! A small HTTP/1.1 GET client on hyper for status lists and dispute notices, over plain
//! `http://` or `https://` (rustls).
//!
//! One connection per request: status lists are fetched in the background every few
//! seconds, not on the hot path, so pooling buys little. `https://` servers are checked
//! against [`PartnerTls`]: the system's roots plus an optional extra CA bundle
//! (`CREDMESH_PARTNER_CA_FILE`), the same roots the federation's gRPC channels to
//! partner identity services use. The deadline covers connect, TLS handshake, request
//! and body alike, so a TLS partner gets the same deadline as a plain one.

use std::{fmt, path::Path, sync::Arc, time::Duration};

use anyhow::{Context as _, bail};
use bytes::Bytes;
use credmesh_runtime::tls::{ClientTls, add_pem_bundle};
use http::{Request, StatusCode, Uri, header};
use http_body_util::{BodyExt as _, Empty, Limited};
use hyper_util::rt::TokioIo;
use tokio::{
    io::{AsyncRead, AsyncWrite},
    net::TcpStream,
};
use tokio_rustls::{
    TlsConnector,
    rustls::{ClientConfig, RootCertStore, pki_types::ServerName},
};

/// The largest body accepted (a status list of 131,072 entries is about 16 KB raw).
pub const MAX_BODY: usize = 4 * 1024 * 1024;

/// The roots `https://` partner endpoints are verified against: the system's trusted
/// roots plus the certificates of an optional extra CA bundle (a partner region whose
/// endpoints use a government or private CA the system does not carry). Loaded once at
/// start; cheap to clone.
#[derive(Clone)]
pub struct PartnerTls {
    roots: Arc<RootCertStore>,
    /// HTTP/1.1 client configuration over `roots` (status lists, dispute notices).
    http1: Arc<ClientConfig>,
    system_roots: usize,
    extra_roots: usize,
}

impl fmt::Debug for PartnerTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PartnerTls")
            .field("system_roots", &self.system_roots)
            .field("extra_roots", &self.extra_roots)
            .finish()
    }
}

impl PartnerTls {
    /// The system's roots plus every certificate in the PEM file `extra_ca_file`.
    ///
    /// A system without a CA store is not an error here (a deployment may trust only
    /// its extra bundle); an unreadable, empty or malformed bundle is, naming the file.
    pub fn load(extra_ca_file: Option<&Path>) -> anyhow::Result<PartnerTls> {
        // The process's roots: the system's plus CREDMESH_TLS_CA_FILE (own-region services).
        let mut roots = ClientTls::installed().roots().clone();
        let system_roots = roots.len();
        let mut extra_roots = 0;
        if let Some(path) = extra_ca_file {
            let pem = std::fs::read(path)
                .with_context(|| format!("reading the partner CA bundle {}", path.display()))?;
            extra_roots = add_pem_bundle(&mut roots, &pem)
                .with_context(|| format!("the partner CA bundle {}", path.display()))?;
        }
        Self::from_roots(roots, system_roots, extra_roots)
    }

    /// Only the certificates of the PEM bundle `pem`, without the system's roots (tests,
    /// and deployments that pin their partners' CAs).
    pub fn from_pem(pem: &[u8]) -> anyhow::Result<PartnerTls> {
        let mut roots = RootCertStore::empty();
        let extra = add_pem_bundle(&mut roots, pem)?;
        Self::from_roots(roots, 0, extra)
    }

    fn from_roots(
        roots: RootCertStore,
        system_roots: usize,
        extra_roots: usize,
    ) -> anyhow::Result<PartnerTls> {
        // The process's own certificate (CREDMESH_TLS_CERT_FILE) is shown to servers that
        // ask for one: mutual TLS within the region and towards partners alike.
        let http1 =
            ClientTls::installed().rustls_with_roots(roots.clone(), vec![b"http/1.1".to_vec()])?;
        Ok(PartnerTls {
            roots: Arc::new(roots),
            http1: Arc::new(http1),
            system_roots,
            extra_roots,
        })
    }

    /// tonic's TLS configuration over these roots, showing the process's own certificate
    /// (gRPC to partner identities).
    pub fn tonic(&self) -> tonic::transport::ClientTlsConfig {
        ClientTls::installed().tonic_with_roots(&self.roots)
    }

    /// How many roots came from the system and from the extra bundle.
    pub fn counts(&self) -> (usize, usize) {
        (self.system_roots, self.extra_roots)
    }
}

/// An HTTP GET client for `http://` and `https://` URLs.
#[derive(Clone, Debug, Default)]
pub struct Client {
    /// `None`: the system's roots, loaded when an `https://` URL is first fetched.
    tls: Option<PartnerTls>,
}

impl Client {
    /// A client verifying `https://` servers against `tls`.
    pub fn new(tls: PartnerTls) -> Client {
        Client { tls: Some(tls) }
    }

    /// GETs `url` with `accept`, within `timeout`; answers the status and the body.
    pub async fn get(
        &self,
        url: &str,
        accept: &str,
        timeout: Duration,
    ) -> anyhow::Result<(StatusCode, Bytes)> {
        let fetched = self.get_unless_held(url, accept, None, timeout).await?;
        Ok((fetched.status, fetched.body))
    }

    /// GETs `url` with `accept`, within `timeout`; with `held`, the `ETag` of the copy
    /// held, a server that still has that copy answers `304 Not Modified` and no body.
    pub async fn get_unless_held(
        &self,
        url: &str,
        accept: &str,
        held: Option<&str>,
        timeout: Duration,
    ) -> anyhow::Result<Fetched> {
        let ask = Ask { accept, held };
        tokio::time::timeout(timeout, self.get_inner(url, ask))
            .await
            .with_context(|| format!("no answer from {url} within {timeout:?}"))?
    }

    async fn get_inner(&self, url: &str, ask: Ask<'_>) -> anyhow::Result<Fetched> {
        let uri: Uri = url
            .parse()
            .with_context(|| format!("'{url}' is not a URL"))?;
        let tls = match uri.scheme_str() {
            Some("http") => false,
            Some("https") => true,
            _ => bail!("only http:// and https:// URLs can be fetched: {url}"),
        };
        let host = uri.host().context("the URL has no host")?;
        let port = uri.port_u16().unwrap_or(if tls { 443 } else { 80 });
        let authority = uri
            .authority()
            .context("the URL has no authority")?
            .to_string();
        let stream = TcpStream::connect((host, port))
            .await
            .with_context(|| format!("connecting to {authority}"))?;
        stream.set_nodelay(true).ok();
        let path = uri.path_and_query().map_or("/", |p| p.as_str()).to_string();
        if !tls {
            return exchange(stream, &authority, &path, ask).await;
        }
        let config = match &self.tls {
            Some(t) => t.http1.clone(),
            None => PartnerTls::load(None)?.http1,
        };
        // `[::1]` → `::1`: an IP literal is checked against the certificate's IP names.
        let name = ServerName::try_from(host.trim_start_matches('[').trim_end_matches(']'))
            .with_context(|| format!("'{host}' is not a TLS server name"))?
            .to_owned();
        let stream = TlsConnector::from(config)
            .connect(name, stream)
            .await
            .with_context(|| format!("TLS handshake with {authority}"))?;
        exchange(stream, &authority, &path, ask).await
    }
}

/// What a GET asks for.
#[derive(Clone, Copy, Debug)]
struct Ask<'a> {
    accept: &'a str,
    /// The `ETag` of the copy held, sent as `If-None-Match`.
    held: Option<&'a str>,
}

/// The `ETag` of a signed document held, with the trust version its signature was
/// checked under. It is sent as `If-None-Match` only while the trust is the same, so a
/// trust change (a key revoked, say) fetches and checks the document again.
#[derive(Clone, Debug)]
pub struct HeldTag {
    trust_version: u64,
    tag: String,
}

impl HeldTag {
    /// `tag`, of a copy checked under `trust_version`.
    pub fn new(trust_version: u64, tag: String) -> Self {
        HeldTag { trust_version, tag }
    }

    /// The tag to send when the trust is at `trust_version`.
    pub fn under(&self, trust_version: u64) -> Option<&str> {
        (self.trust_version == trust_version).then_some(self.tag.as_str())
    }
}

/// An answer to a GET.
#[derive(Debug)]
pub struct Fetched {
    /// Its status (`304` when the copy held is current).
    pub status: StatusCode,
    /// Its `ETag`, when it has one.
    pub etag: Option<String>,
    /// Its body (empty for `304`).
    pub body: Bytes,
}

/// GETs `url` with `accept`, within `timeout`, verifying `https://` servers against the
/// system's roots (the CLI; the gateway uses its configured [`Client`]).
pub async fn get(
    url: &str,
    accept: &str,
    timeout: Duration,
) -> anyhow::Result<(StatusCode, Bytes)> {
    Client::default().get(url, accept, timeout).await
}

/// One HTTP/1.1 request on an established stream.
async fn exchange<S>(
    stream: S,
    authority: &str,
    path: &str,
    ask: Ask<'_>,
) -> anyhow::Result<Fetched>
where
    S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .context("http handshake")?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    let mut request = Request::get(path)
        .header(header::HOST, authority)
        .header(header::ACCEPT, ask.accept)
        .header(header::USER_AGENT, "credmesh-verify");
    if let Some(tag) = ask.held {
        request = request.header(header::IF_NONE_MATCH, tag);
    }
    let request = request.body(Empty::<Bytes>::new())?;
    let response = sender
        .send_request(request)
        .await
        .context("sending the request")?;
    let status = response.status();
    let etag = response
        .headers()
        .get(header::ETAG)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body = Limited::new(response.into_body(), MAX_BODY)
        .collect()
        .await
        .map_err(|e| anyhow::anyhow!("reading the body: {e}"))?
        .to_bytes();
    Ok(Fetched { status, etag, body })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bundle_without_certificates_is_refused() {
        let err = PartnerTls::from_pem(b"not a certificate").unwrap_err();
        assert!(format!("{err:#}").contains("no PEM certificate"), "{err:#}");
    }

    /// A copy held is not sent again: the server's `ETag` comes back with the body, and
    /// a GET naming it is answered `304` with no body until the document changes.
    #[tokio::test]
    async fn a_document_held_is_answered_not_modified_until_it_changes() {
        use std::sync::{Arc, Mutex};

        let document = Arc::new(Mutex::new(b"list v1".to_vec()));
        let served = document.clone();
        let app = axum::Router::new().route(
            "/doc",
            axum::routing::get(move |headers: http::HeaderMap| {
                let body = served.lock().unwrap().clone();
                async move {
                    credmesh_runtime::http_cache::public(
                        &headers,
                        "application/x-protobuf",
                        "public, max-age=30",
                        credmesh_runtime::http_cache::Negotiated::No,
                        body,
                    )
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/doc", listener.local_addr().unwrap());
        let server = tokio::spawn(async move { axum::serve(listener, app).await });
        let client = Client::default();
        let timeout = Duration::from_secs(5);

        let first = client
            .get_unless_held(&url, "*/*", None, timeout)
            .await
            .unwrap();
        assert_eq!(first.status, StatusCode::OK);
        assert_eq!(&first.body[..], b"list v1");
        let tag = first.etag.expect("the server tags its documents");

        let again = client
            .get_unless_held(&url, "*/*", Some(&tag), timeout)
            .await
            .unwrap();
        assert_eq!(again.status, StatusCode::NOT_MODIFIED);
        assert!(again.body.is_empty());

        *document.lock().unwrap() = b"list v2".to_vec();
        let changed = client
            .get_unless_held(&url, "*/*", Some(&tag), timeout)
            .await
            .unwrap();
        assert_eq!(changed.status, StatusCode::OK);
        assert_eq!(&changed.body[..], b"list v2");
        assert_ne!(changed.etag.as_deref(), Some(tag.as_str()));
        server.abort();
    }

    #[tokio::test]
    async fn other_schemes_are_refused_by_name() {
        let err = get("ftp://example.org/x", "*/*", Duration::from_secs(1))
            .await
            .unwrap_err();
        assert!(
            format!("{err:#}").contains("http:// and https://"),
            "{err:#}"
        );
    }
}

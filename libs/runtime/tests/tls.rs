//! TLS and mutual TLS on the service port against real sockets, with certificates from a
//! CA made in the test: gRPC and HTTP are served over TLS on one port, a client without a
//! certificate from the client CA is refused at the handshake, plaintext is refused.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{path::Path, sync::Arc, time::Duration};

use credmesh_auth::{Jwks, StaticJwks, TokenValidator, ValidatorConfig};
use credmesh_runtime::{
    ClientOptions, Server, ServerConfig,
    client::channel_with,
    tls::{ClientTls, TlsFiles},
};
use credmesh_telemetry::metrics::Metrics;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
};
use tokio_rustls::rustls::{
    self,
    crypto::ring,
    pki_types::{CertificateDer, PrivateKeyDer, ServerName, pem::PemObject as _},
};
use tonic_health::pb::{HealthCheckRequest, health_check_response::ServingStatus};

/// A CA made for the test, able to sign leaf certificates.
struct Ca {
    pem: String,
    issuer: Issuer<'static, KeyPair>,
}

fn ca(name: &str) -> Ca {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(DnType::CommonName, format!("{name} test CA"));
    let cert = params.self_signed(&key).unwrap();
    Ca {
        pem: cert.pem(),
        issuer: Issuer::new(params, key),
    }
}

/// Writes a leaf certificate for `names` signed by `ca` and its key into `dir`; answers
/// their paths.
fn leaf(
    dir: &Path,
    file: &str,
    ca: &Ca,
    names: &[&str],
) -> (std::path::PathBuf, std::path::PathBuf) {
    let key = KeyPair::generate().unwrap();
    let cert = CertificateParams::new(names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>())
        .unwrap()
        .signed_by(&key, &ca.issuer)
        .unwrap();
    let cert_path = dir.join(format!("{file}.crt"));
    let key_path = dir.join(format!("{file}.key"));
    std::fs::write(&cert_path, cert.pem()).unwrap();
    std::fs::write(&key_path, key.serialize_pem()).unwrap();
    (cert_path, key_path)
}

struct Pki {
    dir: std::path::PathBuf,
    ca_file: std::path::PathBuf,
    server: (std::path::PathBuf, std::path::PathBuf),
    client: (std::path::PathBuf, std::path::PathBuf),
    stranger: (std::path::PathBuf, std::path::PathBuf),
}

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn pki(test: &str) -> Pki {
    let dir = std::env::temp_dir().join(format!("credmesh-tls-{test}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mesh = ca("mesh");
    let other = ca("other");
    let ca_file = dir.join("ca.pem");
    std::fs::write(&ca_file, &mesh.pem).unwrap();
    Pki {
        server: leaf(&dir, "server", &mesh, &["localhost", "127.0.0.1"]),
        client: leaf(&dir, "client", &mesh, &["license"]),
        stranger: leaf(&dir, "stranger", &other, &["license"]),
        ca_file,
        dir,
    }
}

async fn serve(files: &TlsFiles) -> (u16, tokio::sync::oneshot::Sender<()>) {
    let validator = TokenValidator::new(
        Arc::new(StaticJwks::new(Jwks::new([]))),
        ValidatorConfig::new("credmesh-identity:SH", ["credmesh"]),
    );
    let config = ServerConfig {
        tls: files.server().unwrap(),
        header_read_timeout: Duration::from_secs(2),
        ..ServerConfig::default()
    };
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(Server::new(config, Metrics::new(), validator).serve(
        vec![listener],
        async move {
            let _ = stopped.await;
        },
    ));
    (port, stop)
}

/// Liveness over gRPC through `tls`; the error's text when the call fails.
async fn health(url: &str, tls: &ClientTls) -> Result<ServingStatus, String> {
    let options = ClientOptions {
        connect_timeout: Duration::from_secs(3),
        request_timeout: Duration::from_secs(3),
    };
    let channel = channel_with(url, &options, tls).unwrap();
    let mut client = tonic_health::pb::health_client::HealthClient::new(channel);
    client
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .map(|r| r.into_inner().status())
        .map_err(|s| format!("{s:?}"))
}

/// `GET path` over HTTP/1.1 through TLS, showing `client` if given; the response text.
async fn https_get(
    port: u16,
    ca_file: &Path,
    client: Option<&(std::path::PathBuf, std::path::PathBuf)>,
    path: &str,
) -> std::io::Result<String> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca_file).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    let builder = rustls::ClientConfig::builder_with_provider(Arc::new(ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    let mut config = match client {
        None => builder.with_no_client_auth(),
        Some((cert, key)) => builder
            .with_client_auth_cert(
                CertificateDer::pem_file_iter(cert)
                    .unwrap()
                    .map(Result::unwrap)
                    .collect(),
                PrivateKeyDer::from_pem_file(key).unwrap(),
            )
            .unwrap(),
    };
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = TcpStream::connect(("127.0.0.1", port)).await?;
    let mut tls = connector
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await?;
    tls.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await?;
    let mut out = String::new();
    tls.read_to_string(&mut out).await?;
    Ok(out)
}

#[tokio::test]
async fn grpc_and_http_are_served_over_tls_on_one_port_and_plaintext_is_refused() {
    let pki = pki("one-way");
    let server = TlsFiles {
        identity: Some(pki.server.clone()),
        ..TlsFiles::default()
    };
    let (port, _stop) = serve(&server).await;
    let client = TlsFiles {
        ca: Some(pki.ca_file.clone()),
        ..TlsFiles::default()
    }
    .client()
    .unwrap();

    let url = format!("https://localhost:{port}");
    assert_eq!(health(&url, &client).await, Ok(ServingStatus::Serving));
    let page = https_get(port, &pki.ca_file, None, "/healthz")
        .await
        .unwrap();
    assert!(page.starts_with("HTTP/1.1 200"), "{page}");
    assert!(page.ends_with("ok\n"), "{page}");

    // A plaintext client gets no answer from the TLS port.
    let plain = health(&format!("http://127.0.0.1:{port}"), &client).await;
    assert!(plain.is_err(), "plaintext was served: {plain:?}");
    // A client that does not trust the mesh CA refuses the server.
    let untrusting = TlsFiles::default().client().unwrap();
    let refused = health(&url, &untrusting).await;
    assert!(
        refused.is_err(),
        "an untrusted server was accepted: {refused:?}"
    );
}

#[tokio::test]
async fn mutual_tls_admits_only_clients_with_a_certificate_from_the_client_ca() {
    let pki = pki("mutual");
    let server = TlsFiles {
        identity: Some(pki.server.clone()),
        client_ca: Some(pki.ca_file.clone()),
        ca: None,
    };
    assert!(server.server().unwrap().unwrap().is_mutual());
    let (port, _stop) = serve(&server).await;
    let url = format!("https://localhost:{port}");
    let with = |identity: Option<&(std::path::PathBuf, std::path::PathBuf)>| {
        TlsFiles {
            identity: identity.cloned(),
            client_ca: None,
            ca: Some(pki.ca_file.clone()),
        }
        .client()
        .unwrap()
    };

    // The mesh's own certificate is admitted, over gRPC and HTTP alike.
    assert_eq!(
        health(&url, &with(Some(&pki.client))).await,
        Ok(ServingStatus::Serving)
    );
    let page = https_get(port, &pki.ca_file, Some(&pki.client), "/healthz")
        .await
        .unwrap();
    assert!(page.starts_with("HTTP/1.1 200"), "{page}");

    // No certificate, or one from another CA: the handshake fails, nothing is served.
    let none = health(&url, &with(None)).await;
    assert!(
        none.is_err(),
        "a client without a certificate was served: {none:?}"
    );
    let stranger = health(&url, &with(Some(&pki.stranger))).await;
    assert!(
        stranger.is_err(),
        "a stranger's certificate was accepted: {stranger:?}"
    );
    for client in [None, Some(&pki.stranger)] {
        let page = https_get(port, &pki.ca_file, client, "/healthz").await;
        assert!(
            page.as_ref().map_or(true, |p| !p.contains("200")),
            "served over HTTP without an admitted certificate: {page:?}"
        );
    }
}

#[tokio::test]
async fn a_key_that_is_not_the_certificates_own_is_refused_at_start() {
    let pki = pki("mismatch");
    let files = TlsFiles {
        identity: Some((pki.server.0.clone(), pki.client.1.clone())),
        ..TlsFiles::default()
    };
    let e = format!("{:#}", files.server().unwrap_err());
    assert!(e.contains("does not belong to the certificate"), "{e}");
    assert!(e.contains("server.crt"), "{e}");
}

#[tokio::test]
async fn a_server_name_set_on_the_client_is_what_the_certificate_must_carry() {
    // `credmesh probe` dials 127.0.0.1 and checks the certificate names the Service.
    let pki = pki("server-name");
    let server = TlsFiles {
        identity: Some(pki.server.clone()),
        ..TlsFiles::default()
    };
    let (port, _stop) = serve(&server).await;
    let client = TlsFiles {
        ca: Some(pki.ca_file.clone()),
        ..TlsFiles::default()
    }
    .client()
    .unwrap();
    let url = format!("https://127.0.0.1:{port}");

    let named = client.clone().for_server_name("localhost");
    assert_eq!(health(&url, &named).await, Ok(ServingStatus::Serving));
    // The certificate names localhost and 127.0.0.1, not credmesh-license.
    let other = client.for_server_name("credmesh-license");
    let refused = health(&url, &other).await;
    assert!(
        refused.is_err(),
        "a certificate without the server name was accepted: {refused:?}"
    );
}

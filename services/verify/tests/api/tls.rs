//! A partner region behind TLS: Jiangsu serves its trust list (gRPC) and its status
//! lists (HTTP) only through a TLS front on loopback whose certificate comes from a CA
//! made in the test, as a partner behind its ingress would. Shanghai's own region stays
//! plain http.

use std::{
    net::SocketAddr,
    sync::{Arc, Mutex},
};

use credmesh_proto::credential::v1::VerificationOutcome;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::{
    TlsAcceptor,
    rustls::{
        ServerConfig,
        crypto::ring,
        pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer},
    },
};

use crate::helpers::*;

/// A CA made for the test and a server certificate it signed for 127.0.0.1.
struct TestCa {
    pem: String,
    server: Arc<ServerConfig>,
}

fn test_ca(name: &str) -> TestCa {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, format!("{name} test root CA"));
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);
    let leaf_key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()])
        .unwrap()
        .signed_by(&leaf_key, &issuer)
        .unwrap();
    let mut server = ServerConfig::builder_with_provider(Arc::new(ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![
                CertificateDer::from(leaf.der().to_vec()),
                CertificateDer::from(ca_cert.der().to_vec()),
            ],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der())),
        )
        .unwrap();
    // gRPC needs h2; the status lists are fetched over HTTP/1.1.
    server.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    TestCa {
        pem: ca_cert.pem(),
        server: Arc::new(server),
    }
}

/// Terminates TLS on `listener` and relays each connection to `backend` (the region's
/// plain server) with the current certificate; a new certificate closes the open
/// connections, as a restarted ingress would, so clients handshake again.
fn tls_front(
    listener: TcpListener,
    backend: Arc<Mutex<Option<SocketAddr>>>,
    config: tokio::sync::watch::Receiver<Arc<ServerConfig>>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let mut changed = config.clone();
            let acceptor = TlsAcceptor::from(changed.borrow_and_update().clone());
            let backend = *backend.lock().unwrap();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let Some(backend) = backend else { return };
                let Ok(mut upstream) = TcpStream::connect(backend).await else {
                    return;
                };
                tokio::select! {
                    _ = tokio::io::copy_bidirectional(&mut tls, &mut upstream) => {}
                    _ = changed.changed() => {}
                }
            });
        }
    })
}

#[tokio::test]
async fn a_partner_behind_tls_verifies_with_its_ca_and_is_unreachable_without_it() {
    let clock = credmesh_runtime::ManualClock::new(T0);
    let js_ca = test_ca("Jiangsu");
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let front = listener.local_addr().unwrap();
    let https = format!("https://{front}");
    let backend = Arc::new(Mutex::new(None));
    let (certificate, current) = tokio::sync::watch::channel(js_ca.server.clone());
    let _front = tls_front(listener, backend.clone(), current);

    let sh = spawn_region("SH", Backend::Sqlite, clock.clone()).await;
    let js = spawn_region_at("JS", Backend::Sqlite, clock.clone(), Some(https.clone())).await;
    *backend.lock().unwrap() = Some(js.addr);
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("partner-ca.pem");
    std::fs::write(&ca_file, &js_ca.pem).unwrap();

    // With the CA: the trust list comes over gRPC on TLS, the status list over HTTPS.
    let with_ca = spawn_gateway(
        &sh,
        &[&js],
        Backend::Sqlite,
        Options {
            endpoints: vec![("JS", https.clone())],
            extra: vec![
                ("CREDMESH_PARTNER_CA_FILE", ca_file.display().to_string()),
                ("CREDMESH_RESULT_CACHE_SECONDS", "0".into()),
            ],
            ..Options::default()
        },
    )
    .await;
    let bank = sh.partner("bank-tls").await;
    let js_license = license_qr(&js.establish(1).await);
    let r = with_ca.verify_text(&bank, &js_license).await;
    assert_outcome(&r, VerificationOutcome::Valid);
    assert_eq!(r.region, "JS");
    let status = r.status.unwrap();
    assert!(status.consulted && !status.stale, "{r:?}");
    assert_eq!(with_ca.federation.last_failure("JS"), None);
    // Plain http keeps working beside it: Shanghai's own identity and status lists.
    let own = license_qr(&sh.establish(2).await);
    assert_outcome(
        &with_ca.verify_text(&bank, &own).await,
        VerificationOutcome::Valid,
    );

    // Without the CA: the partner is unreachable, and the reason says why.
    let without_ca = spawn_gateway(
        &sh,
        &[&js],
        Backend::Sqlite,
        Options {
            endpoints: vec![("JS", https.clone())],
            partners_may_fail: true,
            ..Options::default()
        },
    )
    .await;
    let reason = without_ca
        .federation
        .last_failure("JS")
        .expect("JS is unreachable without its CA");
    eprintln!("without the CA: {reason}");
    assert!(
        reason.contains("invalid peer certificate: UnknownIssuer"),
        "{reason}"
    );
    let r = without_ca.verify_text(&bank, &js_license).await;
    assert_ne!(r.outcome, VerificationOutcome::Valid as i32, "{r:?}");
    assert_outcome(&r, VerificationOutcome::UnknownIssuer);
    // The status documents refuse the same way.
    let err = credmesh_verify::fetch::get(
        &format!("{https}/v1/status/JS/license/0/revocation"),
        "application/x-protobuf",
        std::time::Duration::from_secs(5),
    )
    .await
    .unwrap_err();
    assert!(format!("{err:#}").contains("certificate"), "{err:#}");

    // Jiangsu's front switches to a certificate from a CA Shanghai does not trust: the
    // gateway that could reach it answers from what it holds, stale, then status
    // unknown — never valid past the bound.
    certificate.send_replace(test_ca("Rogue").server);
    clock.advance(300);
    assert!(
        with_ca
            .gateway
            .refresh_trust()
            .await
            .contains(&"JS".to_string())
    );
    assert!(
        with_ca
            .federation
            .last_failure("JS")
            .is_some_and(|r| r.contains("certificate") || r.contains("UnknownIssuer"))
    );
    with_ca.gateway.refresh_status().await;
    let stale = with_ca.verify_text(&bank, &js_license).await;
    assert_outcome(&stale, VerificationOutcome::Valid);
    assert!(stale.status.unwrap().stale, "{stale:?}");
    clock.advance(301);
    with_ca.gateway.refresh_status().await;
    assert_outcome(
        &with_ca.verify_text(&bank, &js_license).await,
        VerificationOutcome::StatusUnknown,
    );
}

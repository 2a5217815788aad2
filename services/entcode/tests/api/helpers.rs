//! `spawn_app`: identity, license and entcode served together from one real server on an
//! ephemeral loopback port, on fresh databases, with a manual clock. The identity and
//! license start-up follows the license service's own test helpers. [`spawn_with_sources`]
//! also serves the certificate and inspection services, wired to entcode as its permit
//! and credit grade sources, as their own test helpers start them.

use std::{ops::Deref, sync::Arc, time::Duration};

use credmesh_auth::PrincipalKind;
use credmesh_credential::keys::IssuerKey;
pub use credmesh_harness::restaurant;
use credmesh_harness::{Running, Stack, env, migrated};
use credmesh_proto::{
    certificate::v1::certificate_service_client::CertificateServiceClient,
    entcode::v1::{self as epb, enterprise_code_service_client::EnterpriseCodeServiceClient},
    license::v1 as pb,
};
use credmesh_runtime::{ServerConfig, issuer_key::KeyRegistration};
pub use credmesh_testkit::{BOTH, Backend, with_token};
use tonic::transport::Channel;

pub const JINGAN: &str = credmesh_license::domain::authority::SHANGHAI_JINGAN;

pub struct TestApp {
    /// The certificate service, when spawned with sources.
    pub certificate: Option<CertificateServiceClient<Channel>>,
    pub entcode: EnterpriseCodeServiceClient<Channel>,
    /// The key of entcode's identity client (may register entcode issuer keys).
    pub entcode_client: IssuerKey,
    /// entcode's cache: its URL and key prefix.
    pub cache: (String, String),
    /// entcode's database URL and the service itself, for a second replica on the same
    /// data.
    pub entcode_db: String,
    pub entcode_service: Arc<credmesh_entcode::Entcode>,
    stack: Running,
}

/// Identity's and license's clients, the clock and tokens come from the stack.
impl Deref for TestApp {
    type Target = Running;

    fn deref(&self) -> &Running {
        &self.stack
    }
}

pub async fn spawn_app(backend: Backend) -> TestApp {
    spawn_with_cache(backend, None).await
}

/// Like [`spawn_app`], with entcode's cache at `cache_url` when given.
pub async fn spawn_with_cache(backend: Backend, cache_url: Option<String>) -> TestApp {
    spawn(backend, cache_url, Sources::None).await
}

/// Which optional services entcode is given.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sources {
    /// Neither the certificate nor the inspection service is configured.
    None,
    /// Both are served, and entcode asks them.
    Live,
    /// Both, and the verify gateway, are configured at an address where nothing answers.
    Down,
}

/// Like [`spawn_app`], with the certificate and inspection services too (inspection's
/// default credit grade is A), and entcode asking them for permits and credit grades.
pub async fn spawn_with_sources(backend: Backend, sources: Sources) -> TestApp {
    spawn(backend, None, sources).await
}

async fn spawn(backend: Backend, cache_url: Option<String>, sources: Sources) -> TestApp {
    let server = ServerConfig {
        max_message_bytes: 256 * 1024,
        readiness_interval: Duration::from_millis(50),
        ..ServerConfig::default()
    };
    let mut entcode_scopes = vec!["identity.keys", "license.read"];
    if sources != Sources::None {
        entcode_scopes.extend(["certificate.read", "inspection.credit"]);
    }
    if sources == Sources::Down {
        entcode_scopes.push("verify");
    }
    let mut clients: Vec<(&str, &[&str])> = vec![("entcode", &entcode_scopes)];
    if sources == Sources::Live {
        clients.push(("certificate", &["identity.keys", "license.read"]));
        clients.push((
            "inspection",
            &["identity.keys", "license.read", "identity.clients.read"],
        ));
    }
    let mut stack = Stack::start(backend, server, &clients).await;
    let channel = |url: &str| credmesh_runtime::client::service_channel(url).unwrap();

    let cache_url = cache_url.unwrap_or_else(|| match backend {
        Backend::Sqlite => "memory://".into(),
        Backend::Postgres => credmesh_testkit::redis::shared_url(),
    });
    let prefix = credmesh_testkit::redis::unique_prefix();
    let cache = (cache_url.clone(), prefix.clone());
    let (entcode_db, mut environment) = stack.issuing_env("entcode").await;
    environment.extend(env(&[
        ("REDIS_URL", cache_url),
        ("CREDMESH_CACHE_PREFIX", prefix),
    ]));
    let source_url = match sources {
        Sources::None => None,
        Sources::Live => Some(stack.url.clone()),
        // Port 9 (discard) on loopback: nothing listens, the connection is refused.
        Sources::Down => Some("http://127.0.0.1:9".to_string()),
    };
    if let Some(url) = source_url {
        environment.insert("CREDMESH_CERTIFICATE_URL".into(), url.clone());
        environment.insert("CREDMESH_INSPECTION_URL".into(), url.clone());
        if sources == Sources::Down {
            environment.insert("CREDMESH_VERIFY_URL".into(), url);
        }
    }
    let config = credmesh_entcode::EntcodeConfig::from_env(&environment).unwrap();
    let entcode = credmesh_entcode::build(
        &config,
        migrated(&entcode_db, credmesh_entcode::migrations()).await,
        stack.clock(),
        &stack.server,
        config
            .client()
            .registrar(channel(&config.identity_url), stack.clock())
            .unwrap(),
        credmesh_entcode::grpc_license(
            &config,
            channel(&config.identity_url),
            channel(&config.license_url),
            stack.clock(),
        )
        .unwrap(),
    )
    .await
    .unwrap();
    let mut parts = vec![entcode.parts];
    let mut registrations = vec![("entcode", entcode.registration.clone())];

    if sources == Sources::Live {
        let (db, environment) = stack.issuing_env("certificate").await;
        let config = credmesh_certificate::CertificateConfig::from_env(&environment).unwrap();
        let certificate = credmesh_certificate::build(
            &config,
            migrated(&db, credmesh_certificate::migrations()).await,
            stack.clock(),
            &stack.server,
            config
                .client()
                .registrar(channel(&stack.url), stack.clock())
                .unwrap(),
            credmesh_certificate::grpc_license_check(
                &config,
                channel(&stack.url),
                channel(&stack.url),
                stack.clock(),
            )
            .unwrap(),
            Arc::new(config.credit_grades.clone()),
        )
        .await
        .unwrap();
        parts.push(certificate.parts);
        registrations.push(("certificate", certificate.registration));

        let (db, mut environment) = stack.issuing_env("inspection").await;
        environment.insert("CREDMESH_INSPECTION_DEFAULT_GRADE".into(), "A".into());
        let config = credmesh_inspection::InspectionConfig::from_env(&environment).unwrap();
        let inspection = credmesh_inspection::build(
            &config,
            migrated(&db, credmesh_inspection::migrations()).await,
            stack.clock(),
            &stack.server,
            config
                .client()
                .registrar(channel(&stack.url), stack.clock())
                .unwrap(),
            credmesh_inspection::grpc_license(
                &config,
                channel(&stack.url),
                channel(&stack.url),
                stack.clock(),
            )
            .unwrap(),
        )
        .await
        .unwrap();
        parts.push(inspection.parts);
        registrations.push(("inspection", inspection.registration));
    }
    let entcode_client = stack.files.key("entcode-client.pem").0;
    let waits: Vec<(&str, &KeyRegistration)> =
        registrations.iter().map(|(s, r)| (*s, &**r)).collect();
    let stack = stack.serve(parts, &waits).await;
    TestApp {
        certificate: (sources == Sources::Live)
            .then(|| CertificateServiceClient::new(stack.channel.clone())),
        entcode: EnterpriseCodeServiceClient::new(stack.channel.clone()),
        entcode_client,
        cache,
        entcode_db,
        entcode_service: entcode.entcode,
        stack,
    }
}

impl TestApp {
    /// The Jing'an bureau's department token.
    pub async fn department(&self) -> String {
        self.client(
            "sh-jingan",
            PrincipalKind::Department,
            &["license.issue", "license.read"],
            JINGAN,
        )
        .await
    }

    /// A token of the enterprise `uscc`.
    pub async fn enterprise(&self, uscc: &str) -> String {
        self.client(
            &format!("ent-{}", uscc.to_ascii_lowercase()),
            PrincipalKind::Enterprise,
            &["entcode.present", "verify"],
            uscc,
        )
        .await
    }

    /// A relying party (a partner bank) allowed to verify.
    pub async fn bank(&self) -> String {
        self.client("js-bank", PrincipalKind::Partner, &["verify"], "")
            .await
    }

    pub async fn establish(&self, dept: &str, uscc: &str) {
        self.license
            .clone()
            .establish_enterprise(with_token(restaurant(uscc), dept))
            .await
            .unwrap();
    }

    pub async fn code(
        &self,
        token: &str,
        uscc: &str,
    ) -> Result<epb::GetEnterpriseCodeResponse, tonic::Status> {
        self.entcode
            .clone()
            .get_enterprise_code(with_token(
                epb::GetEnterpriseCodeRequest {
                    uscc: uscc.to_string(),
                },
                token,
            ))
            .await
            .map(|r| r.into_inner())
    }

    pub async fn present(
        &self,
        token: &str,
        uscc: &str,
        scenario: &str,
    ) -> Result<epb::CreatePresentationResponse, tonic::Status> {
        self.entcode
            .clone()
            .create_presentation(with_token(
                epb::CreatePresentationRequest {
                    uscc: uscc.to_string(),
                    scenario: scenario.to_string(),
                },
                token,
            ))
            .await
            .map(|r| r.into_inner())
    }

    pub async fn verify(
        &self,
        token: &str,
        qr: &str,
    ) -> Result<epb::VerifyPresentationResponse, tonic::Status> {
        self.entcode
            .clone()
            .verify_presentation(with_token(
                epb::VerifyPresentationRequest {
                    qr_text: qr.to_string(),
                },
                token,
            ))
            .await
            .map(|r| r.into_inner())
    }

    pub async fn revoke(&self, dept: &str, uscc: &str) {
        self.license
            .clone()
            .revoke_license(with_token(
                pb::RevokeLicenseRequest {
                    uscc: uscc.to_string(),
                    reason: "沪市监静处〔2026〕123号行政处罚决定".into(),
                    ..Default::default()
                },
                dept,
            ))
            .await
            .unwrap();
    }

    /// GET `path` on the HTTP side of the server: status and body.
    pub async fn http_get(&self, path: &str) -> (u16, String) {
        self.http("GET", path).await
    }

    /// POST to `path` with an empty form, as the scan page's button does: status and body.
    pub async fn http_post(&self, path: &str) -> (u16, String) {
        self.http("POST", path).await
    }

    async fn http(&self, method: &str, path: &str) -> (u16, String) {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let mut s = tokio::net::TcpStream::connect(self.addr).await.unwrap();
        let req = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/x-www-form-urlencoded\r\n\
             Content-Length: 0\r\nConnection: close\r\n\r\n",
            self.addr
        );
        s.write_all(req.as_bytes()).await.unwrap();
        let mut buf = Vec::new();
        s.read_to_end(&mut buf).await.unwrap();
        let text = String::from_utf8_lossy(&buf).to_string();
        let status = text
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        let body = text
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_string())
            .unwrap_or_default();
        (status, body)
    }
}

/// A valid Shanghai enterprise code in Jing'an, varied by `n`.
pub fn sh_uscc(n: u32) -> String {
    credmesh_uscc::Uscc::from_parts('9', '1', "310106", &format!("MA1{n:05}"))
        .unwrap()
        .to_string()
}

/// What a phone camera reads from `png`, a QR image the service made: the PNG taken
/// apart as `qr_png` writes it (1-bit grayscale, unfiltered rows, zlib IDAT) and read by
/// rqrr, a QR reader written apart from the encoder.
pub fn read_qr(png: &[u8]) -> String {
    use std::io::Read as _;
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    let (mut width, mut height, mut idat) = (0, 0, Vec::new());
    let mut at = 8;
    while at + 8 <= png.len() {
        let word = |i: usize| u32::from_be_bytes(png[i..i + 4].try_into().unwrap()) as usize;
        let len = word(at);
        let data = &png[at + 8..at + 8 + len];
        match &png[at + 4..at + 8] {
            b"IHDR" => {
                (width, height) = (word(at + 8), word(at + 12));
                assert_eq!(&data[8..10], &[1, 0], "1-bit grayscale");
            }
            b"IDAT" => idat.extend_from_slice(data),
            _ => {}
        }
        at += 12 + len;
    }
    let mut rows = Vec::new();
    flate2::read::ZlibDecoder::new(idat.as_slice())
        .read_to_end(&mut rows)
        .unwrap();
    let stride = 1 + width.div_ceil(8);
    let mut image = rqrr::PreparedImage::prepare_from_bitmap(width, height, |x, y| {
        rows[y * stride + 1 + x / 8] & (0x80 >> (x % 8)) == 0
    });
    let grids = image.detect_grids();
    assert_eq!(grids.len(), 1, "one QR code in the image");
    grids[0].decode().expect("the QR code reads").1
}

//! Real deployments on loopback: a *region* is identity + license served together (as
//! `credmesh dev` does) on fresh databases; a *gateway* is the verify service in its own
//! server, pointed at its region's identity and at pinned partner regions.

#![allow(dead_code)]

use std::{sync::Arc, time::Duration};

use base64::Engine as _;
use credmesh_auth::{GrpcJwksSource, PrincipalKind, TokenValidator, ValidatorConfig};
use credmesh_credential::{keys::IssuerKey, sign_credential, to_qr};
use credmesh_harness::{Files, StopGuard, env, migrated};
use credmesh_proto::{
    credential::v1::{Claim, Credential, CredentialKind, Envelope, VerificationOutcome},
    identity::v1::{self as ipb, identity_service_client::IdentityServiceClient},
    license::v1::{self as lpb, license_service_client::LicenseServiceClient},
    verify::v1::{
        PresentedCredential, VerificationResult, VerifyRequest, presented_credential::Form,
        verify_service_client::VerifyServiceClient,
    },
};
use credmesh_runtime::{Clock, ManualClock, Server, ServerConfig};
use credmesh_telemetry::metrics::Metrics;
pub use credmesh_testkit::{BOTH, Backend, Databases, T0, with_token};
use tonic::transport::Channel;

/// A valid USCC in `division` (GB/T 2260).
pub fn uscc(department: char, category: char, division: &str, n: u32) -> String {
    credmesh_uscc::Uscc::from_parts(department, category, division, &format!("MA1{n:05}"))
        .unwrap()
        .to_string()
}

/// One region's identity and license services on one server.
pub struct Region {
    pub code: &'static str,
    pub addr: std::net::SocketAddr,
    pub clock: Arc<ManualClock>,
    pub identity: IdentityServiceClient<Channel>,
    pub license: LicenseServiceClient<Channel>,
    pub operator: IssuerKey,
    pub anchor_public: [u8; 32],
    /// The registration authority licenses are issued by.
    pub authority: String,
    pub division: &'static str,
    env: Option<RegionEnv>,
    stop: StopGuard,
    server: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

/// What outlives one run of a region: key files and databases.
pub struct RegionEnv {
    code: &'static str,
    clock: Arc<ManualClock>,
    dir: Files,
    identity_db: String,
    license_db: String,
    /// The public base URL published in the trust list, when not the server's own
    /// (a TLS front on another port).
    public_url: Option<String>,
    _databases: Databases,
}

pub async fn spawn_region(code: &'static str, backend: Backend, clock: Arc<ManualClock>) -> Region {
    spawn_region_at(code, backend, clock, None).await
}

/// A region publishing `public_url` as its public HTTP base (where partners fetch its
/// status lists) instead of its own address.
pub async fn spawn_region_at(
    code: &'static str,
    backend: Backend,
    clock: Arc<ManualClock>,
    public_url: Option<String>,
) -> Region {
    credmesh_telemetry::init_for_tests();
    let mut databases = Databases::new();
    let env = RegionEnv {
        code,
        clock,
        dir: Files::new(),
        identity_db: databases.fresh(backend).await,
        license_db: databases.fresh(backend).await,
        public_url,
        _databases: databases,
    };
    start_region(env, None).await
}

async fn start_region(region_env: RegionEnv, addr: Option<std::net::SocketAddr>) -> Region {
    let RegionEnv {
        code,
        ref clock,
        ref dir,
        ref identity_db,
        ref license_db,
        ref public_url,
        ..
    } = region_env;
    let clock = clock.clone();
    let server_config = ServerConfig {
        readiness_interval: Duration::from_millis(50),
        ..ServerConfig::default()
    };
    let dyn_clock: Arc<dyn Clock> = clock.clone();
    let listener = bind(addr.unwrap_or_else(|| "127.0.0.1:0".parse().unwrap())).await;
    let addr = listener.local_addr().unwrap();
    let url = format!("http://{addr}");
    let public_url = public_url.clone().unwrap_or_else(|| url.clone());
    let settings = [
        ("CREDMESH_REGION", code.to_string()),
        ("CREDMESH_PUBLIC_URL", public_url),
    ];

    let identity = credmesh_harness::identity(
        dir,
        identity_db,
        dyn_clock.clone(),
        &server_config,
        &settings,
    )
    .await;
    let client_key = dir.key("license-client.pem").0;
    credmesh_harness::register_service(
        &identity.identity,
        "license",
        &client_key,
        &["identity.keys"],
    )
    .await;

    let (division, authority) = match code {
        "SH" => (
            "310106",
            credmesh_license::domain::authority::SHANGHAI_JINGAN.to_string(),
        ),
        _ => ("320506", uscc('1', '1', "320506", 7)),
    };
    let mut license_settings = settings.to_vec();
    if code != "SH" {
        let table = dir.path().join("authorities.toml");
        std::fs::write(
            &table,
            format!(
                "[[authority]]\nuscc = \"{authority}\"\nname = \"苏州市吴中区市场监督管理局\"\n"
            ),
        )
        .unwrap();
        license_settings.push((
            "CREDMESH_LICENSE_AUTHORITIES_FILE",
            table.display().to_string(),
        ));
    }
    let built = credmesh_harness::license(
        dir,
        license_db,
        &url,
        dyn_clock,
        &server_config,
        &license_settings,
    )
    .await;
    let (stop, server) = credmesh_harness::serve(
        Server::new(server_config, Metrics::new(), identity.validator)
            .with_service(identity.parts)
            .with_service(built.parts),
        listener,
    );
    credmesh_harness::wait_registered(&built.registration, "license").await;
    let channel = credmesh_harness::connect(&url).await;
    Region {
        code,
        addr,
        clock,
        identity: IdentityServiceClient::new(channel.clone()),
        license: LicenseServiceClient::new(channel),
        operator: dir.operator(),
        anchor_public: dir.key("anchor.pem").0.public_key_bytes(),
        authority,
        division,
        env: Some(region_env),
        stop,
        server: Some(server),
    }
}

/// Binds `addr`, retrying briefly while a stopped server still holds the port.
async fn bind(addr: std::net::SocketAddr) -> tokio::net::TcpListener {
    for _ in 0..100 {
        if let Ok(l) = tokio::net::TcpListener::bind(addr).await {
            return l;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("cannot bind {addr}")
}

impl Region {
    /// Starts the stopped region again on the same address, keys and databases.
    pub async fn restart(&mut self) {
        self.stop().await;
        let env = self.env.take().expect("a region restarts once at a time");
        *self = start_region(env, Some(self.addr)).await;
    }

    /// Stops the region's server (the partner "goes dark").
    pub async fn stop(&mut self) {
        self.stop.stop();
        if let Some(server) = self.server.take() {
            let _ = tokio::time::timeout(Duration::from_secs(10), server).await;
        }
    }

    pub async fn token_for(&self, client_id: &str, key: &IssuerKey) -> String {
        credmesh_harness::token(&self.identity, client_id, key, self.clock.now()).await
    }

    /// Registers a client with `scopes` and returns a token for it.
    pub async fn client(
        &self,
        id: &str,
        kind: PrincipalKind,
        scopes: &[&str],
        org: &str,
    ) -> String {
        let request = credmesh_harness::client_request(id, kind, scopes, org);
        credmesh_harness::new_client(&self.identity, &self.operator, self.clock.now(), request)
            .await
            .1
    }

    /// A partner system (scope `verify`) and its token.
    pub async fn partner(&self, id: &str) -> String {
        self.client(
            id,
            PrincipalKind::Partner,
            &["verify"],
            &uscc('9', '1', "320506", 900),
        )
        .await
    }

    /// Establishes enterprise number `n`; its license version 1.
    pub async fn establish(&self, n: u32) -> lpb::LicenseVersion {
        let dept = self
            .client(
                &format!("dept-{n}"),
                PrincipalKind::Department,
                &["license.issue", "license.read"],
                &self.authority,
            )
            .await;
        let req = lpb::EstablishEnterpriseRequest {
            uscc: uscc('9', '1', self.division, n),
            name: format!("{}示例科技有限公司{n}", self.code),
            entity_type: "有限责任公司（自然人投资或控股）".into(),
            legal_representative: "王小明".into(),
            legal_representative_id_number: String::new(),
            registered_capital: Some(lpb::Money {
                amount: "500000.00".into(),
                currency_code: "CNY".into(),
            }),
            establishment_date: "2026-03-01".into(),
            business_term: Some(lpb::BusinessTerm {
                start_date: String::new(),
                end_date: String::new(),
                long_term: true,
            }),
            domicile: "示例路1号".into(),
            business_scope: "技术开发。".into(),
            registration_authority: self.authority.clone(),
            issue_date: String::new(),
            idempotency_key: String::new(),
        };
        self.license
            .clone()
            .establish_enterprise(with_token(req, &dept))
            .await
            .unwrap()
            .into_inner()
            .license
            .unwrap()
    }

    /// Revokes (吊销) enterprise `n`'s license.
    pub async fn revoke(&self, n: u32) {
        let dept = self
            .client(
                &format!("dept-r{n}"),
                PrincipalKind::Department,
                &["license.issue", "license.read"],
                &self.authority,
            )
            .await;
        self.license
            .clone()
            .revoke_license(with_token(
                lpb::RevokeLicenseRequest {
                    uscc: uscc('9', '1', self.division, n),
                    reason: "以欺骗手段取得登记".into(),
                    expected_version: 0,
                    idempotency_key: String::new(),
                },
                &dept,
            ))
            .await
            .unwrap();
    }

    /// Registers a test issuer key for `<region>/<service>` (as the operator) and
    /// returns it, for kinds no service issues yet.
    pub async fn issuer_key(&self, service: &str, kinds: &[CredentialKind]) -> IssuerKey {
        let probe = IssuerKey::generate("p").unwrap();
        let kid = credmesh_credential::kid_for(self.code, service, &probe.public_key_bytes());
        let pem = probe.to_pkcs8_pem();
        let key = IssuerKey::from_pkcs8_pem(&kid, &pem).unwrap();
        let operator = self.token_for("operator", &self.operator).await;
        self.identity
            .clone()
            .register_issuer_key(with_token(
                ipb::RegisterIssuerKeyRequest {
                    issuer: format!("{}/{service}", self.code),
                    kid: kid.clone(),
                    public_key: key.public_key_bytes().to_vec(),
                    kinds: kinds.iter().map(|k| *k as i32).collect(),
                    not_after: 0,
                },
                &operator,
            ))
            .await
            .unwrap();
        key
    }

    /// A presentation signed by `key` for this region, valid `[from, until)`.
    pub fn presentation(&self, key: &IssuerKey, service: &str, from: i64, until: i64) -> Envelope {
        let claim = |n: &str, v: &str| Claim {
            name: n.into(),
            value: v.into(),
        };
        sign_credential(
            &Credential {
                id: format!("urn:credmesh:presentation:{from}-{until}"),
                kind: CredentialKind::Presentation as i32,
                issuer: format!("{}/{service}", self.code),
                region: self.code.into(),
                subject: uscc('9', '1', self.division, 1),
                issued_at: from,
                not_before: from,
                not_after: until,
                status: None,
                claims: vec![claim("scenario", "bank-loan"), claim("name", "示例科技")],
                version: 0,
                nonce: [from.to_be_bytes(), until.to_be_bytes()].concat(),
            },
            key,
        )
    }
}

/// A verify gateway in its own server.
pub struct Gateway {
    pub addr: std::net::SocketAddr,
    pub client: VerifyServiceClient<Channel>,
    pub gateway: Arc<credmesh_verify::Gateway>,
    pub federation: Arc<credmesh_verify::federation::Federation>,
    pub db_url: String,
    _databases: Databases,
    _stop: StopGuard,
}

/// Gateway options beyond the defaults.
#[derive(Clone, Debug, Default)]
pub struct Options {
    pub cache_url: Option<String>,
    pub cache_prefix: Option<String>,
    pub extra: Vec<(&'static str, String)>,
    /// Partners read from the own identity's imported lists instead of directly.
    pub imported: bool,
    /// Partner endpoints to use instead of the partner's own address (region code, URL).
    pub endpoints: Vec<(&'static str, String)>,
    /// Start even when a partner's trust list cannot be loaded.
    pub partners_may_fail: bool,
}

fn b64(key: &[u8; 32]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(key)
}

pub async fn spawn_gateway(
    own: &Region,
    partners: &[&Region],
    backend: Backend,
    options: Options,
) -> Gateway {
    let mut databases = Databases::new();
    let db_url = databases.fresh(backend).await;
    let partners = partners
        .iter()
        .map(|p| {
            let endpoint = if options.imported {
                "identity".to_string()
            } else if let Some((_, url)) = options.endpoints.iter().find(|(c, _)| *c == p.code) {
                url.clone()
            } else {
                format!("http://{}", p.addr)
            };
            format!("{}={endpoint}@{}", p.code, b64(&p.anchor_public))
        })
        .collect::<Vec<_>>()
        .join(",");
    let mut pairs = vec![
        ("CREDMESH_REGION", own.code.to_string()),
        ("DATABASE_URL", db_url.clone()),
        ("CREDMESH_IDENTITY_URL", format!("http://{}", own.addr)),
        ("CREDMESH_ANCHOR_PUBLIC_KEY", b64(&own.anchor_public)),
        ("CREDMESH_PARTNERS", partners),
        (
            "REDIS_URL",
            options
                .cache_url
                .clone()
                .unwrap_or_else(|| "memory://".into()),
        ),
        (
            "CREDMESH_CACHE_PREFIX",
            options
                .cache_prefix
                .clone()
                .unwrap_or_else(credmesh_testkit::redis::unique_prefix),
        ),
    ];
    pairs.extend(options.extra.iter().cloned());
    let config = credmesh_verify::VerifyConfig::from_env(&env(&pairs)).unwrap();
    let db = migrated(&db_url, credmesh_verify::migrations()).await;
    let clock = own.clock.clone();
    let for_validator = clock.clone();
    let validator = TokenValidator::new(
        Arc::new(GrpcJwksSource::new(
            credmesh_verify::federation::channel(&config.identity_url).unwrap(),
        )),
        ValidatorConfig::new(
            credmesh_auth::issuer_for_region(own.code),
            ["verify", "credmesh"],
        )
        .with_clock(Arc::new(move || for_validator.now())),
    );
    // The serving stack's settings (the per-partner rate limit among them) from the
    // same environment, as `credmesh serve verify` reads them.
    let server_config = ServerConfig::from_env(&env(&pairs)).unwrap();
    let built = credmesh_verify::build(&config, db, clock, &server_config, validator.clone())
        .await
        .unwrap();
    let failed = built.gateway.refresh_trust().await;
    assert!(
        failed.is_empty() || options.partners_may_fail,
        "every region's trust list loads: {failed:?} failed"
    );
    let (listener, url) = credmesh_harness::loopback().await;
    let addr = listener.local_addr().unwrap();
    let (stop, _) = credmesh_harness::serve(
        Server::new(server_config, Metrics::new(), validator).with_service(built.parts),
        listener,
    );
    let channel = credmesh_harness::connect(&url).await;
    Gateway {
        addr,
        client: VerifyServiceClient::new(channel),
        gateway: built.gateway,
        federation: built.federation,
        db_url,
        _databases: databases,
        _stop: stop,
    }
}

impl Region {
    /// Pins `partner`'s anchor in this region's identity and imports its trust list.
    pub async fn import_partner(&self, partner: &Region) {
        let operator = self.token_for("operator", &self.operator).await;
        let list = partner
            .identity
            .clone()
            .get_trust_list(ipb::GetTrustListRequest {})
            .await
            .unwrap()
            .into_inner();
        self.identity
            .clone()
            .pin_partner_anchor(with_token(
                ipb::PinPartnerAnchorRequest {
                    anchor: Some(ipb::PartnerAnchor {
                        region: partner.code.into(),
                        kid: list.anchor_kid.clone(),
                        public_key: partner.anchor_public.to_vec(),
                        pinned_at: 0,
                        endpoint: format!("http://{}", partner.addr),
                    }),
                },
                &operator,
            ))
            .await
            .unwrap();
        self.identity
            .clone()
            .import_partner_trust_list(with_token(
                ipb::ImportPartnerTrustListRequest {
                    trust_list: list.trust_list,
                },
                &operator,
            ))
            .await
            .unwrap();
    }
}

pub fn text(t: &str) -> Option<PresentedCredential> {
    Some(PresentedCredential {
        form: Some(Form::Text(t.to_string())),
    })
}

pub fn native(bytes: Vec<u8>) -> Option<PresentedCredential> {
    Some(PresentedCredential {
        form: Some(Form::Envelope(bytes)),
    })
}

pub fn qr_of(envelope: &Envelope) -> String {
    to_qr(envelope)
}

impl Gateway {
    pub async fn verify(
        &self,
        token: &str,
        credential: Option<PresentedCredential>,
    ) -> Result<VerificationResult, tonic::Status> {
        self.client
            .clone()
            .verify(with_token(VerifyRequest { credential }, token))
            .await
            .map(|r| r.into_inner().result.unwrap())
    }

    pub async fn verify_text(&self, token: &str, t: &str) -> VerificationResult {
        self.verify(token, text(t)).await.unwrap()
    }
}

/// The QR text of a license version.
pub fn license_qr(v: &lpb::LicenseVersion) -> String {
    v.credential.as_ref().unwrap().qr_text.clone()
}

#[track_caller]
pub fn assert_outcome(r: &VerificationResult, outcome: VerificationOutcome) {
    assert_eq!(
        r.outcome,
        outcome as i32,
        "expected {outcome:?}, got {:?} ({}: {})",
        VerificationOutcome::try_from(r.outcome),
        r.reason,
        r.detail
    );
}

use credmesh_auth::PrincipalKind;
use credmesh_credential::{
    envelope::{self, Context},
    keys::IssuerKey,
};
use credmesh_proto::{
    credential::v1::{CredentialKind, Envelope, KeyStatus, TrustList},
    identity::v1 as pb,
};
use tonic::Code;

use crate::helpers::*;

async fn register_key(
    app: &TestApp,
    token: &str,
    kid: &str,
    key: &IssuerKey,
) -> Result<pb::RegisterIssuerKeyResponse, tonic::Status> {
    app.client
        .clone()
        .register_issuer_key(with_token(
            pb::RegisterIssuerKeyRequest {
                issuer: "SH/license".into(),
                kid: kid.into(),
                public_key: key.public_key_bytes().to_vec(),
                kinds: vec![CredentialKind::BusinessLicense as i32],
                not_after: 0,
            },
            token,
        ))
        .await
        .map(|r| r.into_inner())
}

async fn trust_list(app: &TestApp) -> (TrustList, Envelope, [u8; 32]) {
    let r = app
        .client
        .clone()
        .get_trust_list(pb::GetTrustListRequest {})
        .await
        .unwrap()
        .into_inner();
    let env = r.trust_list.unwrap();
    let anchor: [u8; 32] = r.anchor_public_key.as_slice().try_into().unwrap();
    let vk = ed25519_dalek::VerifyingKey::from_bytes(&anchor).unwrap();
    let list: TrustList = envelope::open(Context::TrustList, &env, &vk)
        .expect("the trust list verifies against the anchor");
    (list, env, anchor)
}

#[tokio::test]
async fn rotating_a_service_key_retires_the_old_one_and_both_stay_in_the_signed_trust_list() {
    for backend in BOTH {
        let app = spawn_app(backend).await;
        let svc = app
            .register("license", PrincipalKind::Service, &["identity.keys"], "")
            .await;
        let token = app.token_for("license", &svc, &[]).await.unwrap();
        let (before, _, _) = trust_list(&app).await;

        let k1 = IssuerKey::generate("k1").unwrap();
        let first = register_key(&app, &token, "SH-license-1", &k1)
            .await
            .unwrap();
        assert!(first.retired.is_none());
        // Registering the same key again is harmless.
        register_key(&app, &token, "SH-license-1", &k1)
            .await
            .unwrap();

        app.clock.advance(60);
        let k2 = IssuerKey::generate("k2").unwrap();
        let second = register_key(&app, &token, "SH-license-2", &k2)
            .await
            .unwrap();
        let retired = second.retired.unwrap().key.unwrap();
        assert_eq!(retired.kid, "SH-license-1", "{backend:?}");
        assert_eq!(retired.status, KeyStatus::Retired as i32);
        assert_eq!(retired.retired_at, app.now());

        let (list, _, _) = trust_list(&app).await;
        assert!(list.sequence > before.sequence);
        let status_of = |kid: &str| list.keys.iter().find(|k| k.kid == kid).map(|k| k.status);
        assert_eq!(status_of("SH-license-1"), Some(KeyStatus::Retired as i32));
        assert_eq!(status_of("SH-license-2"), Some(KeyStatus::Active as i32));

        // Another key under a taken kid is refused; a service cannot register for another issuer.
        assert_status(
            register_key(&app, &token, "SH-license-2", &k1).await,
            Code::AlreadyExists,
            "KEY_EXISTS",
        );
        let r = app
            .client
            .clone()
            .register_issuer_key(with_token(
                pb::RegisterIssuerKeyRequest {
                    issuer: "SH/certificate".into(),
                    kid: "SH-certificate-1".into(),
                    public_key: k1.public_key_bytes().to_vec(),
                    kinds: vec![CredentialKind::Certificate as i32],
                    not_after: 0,
                },
                &token,
            ))
            .await;
        assert_status(r, Code::PermissionDenied, "NOT_OWN_ISSUER");
        assert_eq!(app.audit_count("SH-license-2").await, 1);
    }
}

#[tokio::test]
async fn a_partner_trust_list_is_imported_only_against_its_pinned_anchor() {
    for backend in BOTH {
        let sh = spawn_app(backend).await;
        let js = spawn_region(backend, "JS").await;
        let js_svc = js
            .register("license", PrincipalKind::Service, &["identity.keys"], "")
            .await;
        let js_token = js.token_for("license", &js_svc, &[]).await.unwrap();
        let k = IssuerKey::generate("js").unwrap();
        js.client
            .clone()
            .register_issuer_key(with_token(
                pb::RegisterIssuerKeyRequest {
                    issuer: "JS/license".into(),
                    kid: "JS-license-1".into(),
                    public_key: k.public_key_bytes().to_vec(),
                    kinds: vec![CredentialKind::BusinessLicense as i32],
                    not_after: 0,
                },
                &js_token,
            ))
            .await
            .unwrap();
        let js_list = js
            .client
            .clone()
            .get_trust_list(pb::GetTrustListRequest {})
            .await
            .unwrap()
            .into_inner();
        let signed = js_list.trust_list.clone().unwrap();

        // Not pinned yet.
        let import = |env: Envelope| {
            let sh = &sh;
            async move {
                let req = sh
                    .as_operator(pb::ImportPartnerTrustListRequest {
                        trust_list: Some(env),
                    })
                    .await;
                sh.client.clone().import_partner_trust_list(req).await
            }
        };
        assert_status(
            import(signed.clone()).await,
            Code::InvalidArgument,
            "TRUST_LIST_UNKNOWN_ANCHOR",
        );

        let pin = sh
            .as_operator(pb::PinPartnerAnchorRequest {
                anchor: Some(pb::PartnerAnchor {
                    region: "JS".into(),
                    kid: js_list.anchor_kid.clone(),
                    public_key: js_list.anchor_public_key.clone(),
                    endpoint: format!("http://{}", js.addr),
                    pinned_at: 0,
                }),
            })
            .await;
        sh.client.clone().pin_partner_anchor(pin).await.unwrap();

        // Tampered payload: refused.
        let mut tampered = signed.clone();
        let last = tampered.payload.len() - 1;
        tampered.payload[last] ^= 1;
        assert_status(
            import(tampered).await,
            Code::InvalidArgument,
            "TRUST_LIST_SIGNATURE",
        );

        let imported = import(signed.clone()).await.unwrap().into_inner();
        assert_eq!(imported.region, "JS", "{backend:?}");
        assert_eq!(imported.key_count, 1);

        // It is served back exactly as signed, publicly.
        let back = sh
            .client
            .clone()
            .get_partner_trust_list(pb::GetPartnerTrustListRequest {
                region: "JS".into(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(back.trust_list.unwrap(), signed);

        // An older list after a newer one is a rollback.
        js.clock.advance(10);
        let k2 = IssuerKey::generate("js2").unwrap();
        js.client
            .clone()
            .register_issuer_key(with_token(
                pb::RegisterIssuerKeyRequest {
                    issuer: "JS/license".into(),
                    kid: "JS-license-2".into(),
                    public_key: k2.public_key_bytes().to_vec(),
                    kinds: vec![CredentialKind::BusinessLicense as i32],
                    not_after: 0,
                },
                &js_token,
            ))
            .await
            .unwrap();
        let newer = js
            .client
            .clone()
            .get_trust_list(pb::GetTrustListRequest {})
            .await
            .unwrap()
            .into_inner();
        import(newer.trust_list.unwrap()).await.unwrap();
        assert_status(
            import(signed).await,
            Code::FailedPrecondition,
            "TRUST_LIST_ROLLBACK",
        );

        // A region cannot pin itself.
        let own = sh
            .as_operator(pb::PinPartnerAnchorRequest {
                anchor: Some(pb::PartnerAnchor {
                    region: "SH".into(),
                    kid: "x".into(),
                    public_key: k.public_key_bytes().to_vec(),
                    ..Default::default()
                }),
            })
            .await;
        assert_status(
            sh.client.clone().pin_partner_anchor(own).await,
            Code::InvalidArgument,
            "ANCHOR_INVALID",
        );
    }
}

#[tokio::test]
async fn health_reports_serving_and_reflection_lists_the_service() {
    let app = spawn_app(Backend::Sqlite).await;
    let channel = tonic::transport::Channel::from_shared(format!("http://{}", app.addr))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut health = tonic_health::pb::health_client::HealthClient::new(channel.clone());
    let mut serving = false;
    for _ in 0..50 {
        let r = health
            .check(tonic_health::pb::HealthCheckRequest {
                service: credmesh_identity::GRPC_NAME.into(),
            })
            .await
            .unwrap()
            .into_inner();
        if r.status == tonic_health::pb::health_check_response::ServingStatus::Serving as i32 {
            serving = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(
        serving,
        "the identity service should report SERVING once its database answers"
    );

    use tonic_reflection::pb::v1::{
        ServerReflectionRequest, server_reflection_client::ServerReflectionClient,
        server_reflection_request::MessageRequest, server_reflection_response::MessageResponse,
    };
    let mut reflection = ServerReflectionClient::new(channel);
    let req = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut stream = reflection
        .server_reflection_info(tokio_stream::iter(vec![req]))
        .await
        .unwrap()
        .into_inner();
    let resp = stream.message().await.unwrap().unwrap();
    let Some(MessageResponse::ListServicesResponse(list)) = resp.message_response else {
        panic!("unexpected reflection answer");
    };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    assert!(
        names.contains(&credmesh_identity::GRPC_NAME.to_string()),
        "{names:?}"
    );
    assert!(
        names.contains(&"grpc.health.v1.Health".to_string()),
        "{names:?}"
    );
}

/// The Helm chart's partner file pins its partners' anchors at start, once: a restart
/// with the same file pins nothing again, a changed key replaces the pin, and a file
/// naming the deployment's own region stops the start with the reason.
#[tokio::test]
async fn the_partner_file_pins_its_anchors_at_start_once() {
    use base64::Engine as _;
    use std::collections::HashMap;
    credmesh_telemetry::init_for_tests();
    let dir = tempfile::tempdir().unwrap();
    let pem = |name: &str| {
        let path = dir.path().join(name);
        std::fs::write(
            &path,
            IssuerKey::generate("t").unwrap().to_pkcs8_pem().as_bytes(),
        )
        .unwrap();
        path.display().to_string()
    };
    let (anchor, token) = (pem("anchor.pem"), pem("token.pem"));
    let sqlite = credmesh_testkit::sqlite::SqliteDb::new().unwrap();
    let file = dir.path().join("partners.json");
    let write = |key: &IssuerKey, own: &str| {
        let text = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(key.public_key_bytes());
        std::fs::write(
            &file,
            format!(
                r#"{{"region": "{own}", "partners": [{{"region": "JS", "url": "https://identity.js.example.gov.cn", "anchor_kid": "js-anchor-1", "anchor_public_key": "{text}"}}, {{"region": "ZJ", "url": "identity", "anchor_kid": "", "anchor_public_key": "{text}"}}]}}"#
            ),
        )
        .unwrap();
    };
    let config = || {
        let env: HashMap<String, String> = [
            ("DATABASE_URL", sqlite.url()),
            ("CREDMESH_ANCHOR_KEY_FILE", anchor.clone()),
            ("CREDMESH_TOKEN_KEY_FILE", token.clone()),
            ("CREDMESH_PARTNERS_FILE", file.display().to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        credmesh_identity::IdentityConfig::from_env(&env)
    };
    let start = |config: credmesh_identity::IdentityConfig| {
        let url = sqlite.url();
        async move {
            let db = credmesh_store::Db::connect(&url, &credmesh_store::DbOptions::default())
                .await
                .unwrap();
            db.migrate(credmesh_identity::migrations()).await.unwrap();
            credmesh_identity::build(
                &config,
                db,
                credmesh_runtime::ManualClock::new(T0),
                &credmesh_runtime::ServerConfig::default(),
            )
            .await
            .map(|built| built.identity)
        }
    };

    let js = IssuerKey::generate("js-anchor-1").unwrap();
    write(&js, "SH");
    let identity = start(config().unwrap()).await.unwrap();
    let anchors = identity.anchors().await.unwrap();
    assert_eq!(anchors.len(), 2, "{anchors:?}");
    let pinned = |region: &str| anchors.iter().find(|a| a.region == region).unwrap().clone();
    assert_eq!(pinned("JS").kid, "js-anchor-1");
    assert_eq!(pinned("JS").public_key, js.public_key_bytes());
    assert_eq!(pinned("JS").endpoint, "https://identity.js.example.gov.cn");
    assert_eq!(pinned("ZJ").kid, "ZJ-anchor");
    assert_eq!(pinned("ZJ").endpoint, "");
    let first = pinned("JS").pinned_at;
    drop(identity);

    // Restarted with the same file: nothing is pinned again.
    let identity = start(config().unwrap()).await.unwrap();
    let again = identity.anchors().await.unwrap();
    assert_eq!(again.len(), 2);
    assert!(
        again
            .iter()
            .all(|a| a.region != "JS" || a.pinned_at == first)
    );
    drop(identity);

    // JS rotated its anchor: the file's key replaces the pin.
    let rotated = IssuerKey::generate("js-anchor-1").unwrap();
    write(&rotated, "SH");
    let identity = start(config().unwrap()).await.unwrap();
    let anchors = identity.anchors().await.unwrap();
    assert_eq!(anchors.len(), 2, "{anchors:?}");
    assert_eq!(
        anchors
            .iter()
            .find(|a| a.region == "JS")
            .unwrap()
            .public_key,
        rotated.public_key_bytes()
    );

    // A file written for another region is refused before anything starts.
    write(&rotated, "JS");
    let err = format!("{:#}", config().unwrap_err());
    assert!(err.contains("CREDMESH_PARTNERS_FILE"), "{err}");
    assert!(err.contains("written for region JS"), "{err}");
}

use credmesh_auth::PrincipalKind;
use credmesh_credential::keys::IssuerKey;
use credmesh_proto::identity::v1 as pb;
use tonic::Code;

use crate::helpers::*;

#[tokio::test]
async fn a_client_assertion_buys_a_token_with_the_granted_scopes() {
    for backend in BOTH {
        let app = spawn_app(backend).await;
        let key = app
            .register(
                "license",
                PrincipalKind::Service,
                &["identity.keys", "identity.read"],
                "",
            )
            .await;
        let assertion =
            credmesh_auth::client_assertion("license", key.signing_key(), app.now()).unwrap();
        let resp = app
            .client
            .clone()
            .issue_token(pb::IssueTokenRequest {
                client_id: "license".into(),
                scopes: vec!["identity.read".into()],
                audience: "identity".into(),
                credential: Some(pb::issue_token_request::Credential::ClientAssertion(
                    assertion.clone(),
                )),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(resp.scopes, ["identity.read"], "{backend:?}");
        assert_eq!(resp.token_type, "Bearer");
        assert_eq!(resp.expires_in, 900);

        // The same assertion again is a replay.
        let replay = app
            .client
            .clone()
            .issue_token(pb::IssueTokenRequest {
                client_id: "license".into(),
                credential: Some(pb::issue_token_request::Credential::ClientAssertion(
                    assertion,
                )),
                ..Default::default()
            })
            .await;
        assert_status(replay, Code::Unauthenticated, "CLIENT_ASSERTION_REPLAYED");

        // A scope the client does not hold.
        let r = app.token_for("license", &key, &["identity.admin"]).await;
        assert_status(r, Code::PermissionDenied, "SCOPE_NOT_GRANTED");
    }
}

#[tokio::test]
async fn an_assertion_signed_by_another_key_or_for_an_unknown_client_fails_alike() {
    let app = spawn_app(Backend::Sqlite).await;
    app.register("license", PrincipalKind::Service, &["identity.keys"], "")
        .await;
    let stranger = IssuerKey::generate("s").unwrap();
    let a = assert_status(
        app.token_for("license", &stranger, &[]).await,
        Code::Unauthenticated,
        "CLIENT_AUTH_FAILED",
    );
    let b = assert_status(
        app.token_for("nobody", &stranger, &[]).await,
        Code::Unauthenticated,
        "CLIENT_AUTH_FAILED",
    );
    assert_eq!(
        a.message(),
        b.message(),
        "the answer must not reveal whether the client exists"
    );
}

#[tokio::test]
async fn calls_without_a_token_or_with_a_bad_one_are_unauthenticated() {
    let app = spawn_app(Backend::Sqlite).await;
    let list = |req: tonic::Request<pb::ListIssuerKeysRequest>| {
        let mut c = app.client.clone();
        async move { c.list_issuer_keys(req).await }
    };
    assert_status(
        list(tonic::Request::new(Default::default())).await,
        Code::Unauthenticated,
        "AUTH_TOKEN_MISSING",
    );
    assert_status(
        list(with_token(Default::default(), "not.a.jwt")).await,
        Code::Unauthenticated,
        "AUTH_TOKEN_MALFORMED",
    );

    // A token forged with another key under the real kid.
    let real = app.operator_token().await;
    let mut parts: Vec<&str> = real.split('.').collect();
    let forged_sig = "A".repeat(parts[2].len());
    parts[2] = &forged_sig;
    assert_status(
        list(with_token(Default::default(), &parts.join("."))).await,
        Code::Unauthenticated,
        "AUTH_BAD_SIGNATURE",
    );

    // A well-formed token under a key id nobody published.
    let stranger = IssuerKey::generate("s").unwrap();
    let claims = credmesh_auth::AccessClaims {
        iss: credmesh_auth::issuer_for_region("SH"),
        sub: "operator".into(),
        aud: "credmesh".into(),
        exp: app.now() + 300,
        iat: app.now(),
        nbf: app.now(),
        jti: "j1".into(),
        scope: "identity.read".into(),
        kind: PrincipalKind::Operator,
        org: None,
        region: "SH".into(),
        cert: None,
    };
    let unknown = credmesh_auth::TokenSigner::new(
        "SH-token-unknown".into(),
        stranger.signing_key().clone(),
        credmesh_auth::issuer_for_region("SH"),
    )
    .unwrap()
    .sign(&claims)
    .unwrap();
    assert_status(
        list(with_token(Default::default(), &unknown)).await,
        Code::Unauthenticated,
        "AUTH_UNKNOWN_KEY",
    );

    // Expired: the clock moves past the token's lifetime.
    app.clock.advance(3600);
    assert_status(
        list(with_token(Default::default(), &real)).await,
        Code::Unauthenticated,
        "AUTH_TOKEN_EXPIRED",
    );
}

#[tokio::test]
async fn a_token_for_another_audience_is_refused() {
    let app = spawn_app(Backend::Sqlite).await;
    let assertion =
        credmesh_auth::client_assertion("operator", app.operator.signing_key(), app.now()).unwrap();
    let token = app
        .client
        .clone()
        .issue_token(pb::IssueTokenRequest {
            client_id: "operator".into(),
            audience: "license".into(),
            credential: Some(pb::issue_token_request::Credential::ClientAssertion(
                assertion,
            )),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .access_token;
    let r = app
        .client
        .clone()
        .list_issuer_keys(with_token(pb::ListIssuerKeysRequest::default(), &token))
        .await;
    assert_status(r, Code::Unauthenticated, "AUTH_WRONG_AUDIENCE");
}

#[tokio::test]
async fn a_partner_token_cannot_administer_identity() {
    let app = spawn_app(Backend::Sqlite).await;
    let key = app
        .register("bank-js", PrincipalKind::Partner, &["verify"], "")
        .await;
    let token = app.token_for("bank-js", &key, &[]).await.unwrap();
    let r = app
        .client
        .clone()
        .list_clients(with_token(pb::ListClientsRequest::default(), &token))
        .await;
    assert_status(r, Code::PermissionDenied, "AUTH_SCOPE_MISSING");
}

#[tokio::test]
async fn the_jwks_is_served_over_grpc_and_http_alike() {
    let app = spawn_app(Backend::Sqlite).await;
    let grpc = app
        .client
        .clone()
        .get_jwks(pb::GetJwksRequest {})
        .await
        .unwrap()
        .into_inner()
        .jwks_json;
    let grpc: serde_json::Value = serde_json::from_str(&grpc).unwrap();
    let http = http_get(app.addr, "/.well-known/jwks.json").await;
    let http: serde_json::Value = serde_json::from_str(&http).unwrap();
    assert_eq!(grpc, http);
    assert_eq!(http["keys"][0]["kty"], "OKP");
    assert_eq!(http["keys"][0]["crv"], "Ed25519");
}

/// A minimal HTTP/1.1 GET over a raw socket (no HTTP client dependency needed).
pub async fn http_get(addr: std::net::SocketAddr, path: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).await.unwrap();
    let text = String::from_utf8_lossy(&buf).to_string();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    body.to_string()
}

//! The OAuth 2.0 token endpoint, `POST /v1/token`: what a partner's HTTP client gets,
//! and the RFC 6749 error object for each way a request can be wrong.

use base64::Engine as _;
use credmesh_auth::PrincipalKind;
use credmesh_proto::identity::v1 as pb;

use crate::helpers::*;

const FORM: &str = "application/x-www-form-urlencoded";
const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// An HTTP answer: status, headers (lowercase names) and the JSON body.
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: serde_json::Value,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Asserts an RFC 6749 §5.2 error with its stable reason.
    fn refused(&self, status: u16, error: &str, reason: &str) {
        assert_eq!(
            (
                self.status,
                self.body["error"].as_str(),
                self.body["reason"].as_str()
            ),
            (status, Some(error), Some(reason)),
            "{}",
            self.body
        );
        let description = self.body["error_description"].as_str().unwrap_or("");
        assert!(description.len() > 20, "a sentence: {}", self.body);
        assert_eq!(self.header("cache-control"), Some("no-store"));
    }
}

/// One HTTP/1.1 request over a raw socket.
async fn request(
    addr: std::net::SocketAddr,
    method: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Answer {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut head = format!(
        "{method} /v1/token HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes()).await.unwrap();
    s.write_all(body.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).await.unwrap();
    let text = String::from_utf8(buf).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    let mut lines = head.lines();
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    Answer {
        status,
        headers,
        body: serde_json::from_str(body).unwrap_or(serde_json::Value::Null),
    }
}

/// A form-encoded POST.
async fn post(app: &TestApp, params: &[(&str, &str)]) -> Answer {
    post_with(app, &[], params).await
}

async fn post_with(app: &TestApp, headers: &[(&str, &str)], params: &[(&str, &str)]) -> Answer {
    let body = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(params)
        .finish();
    let mut all = vec![("Content-Type", FORM)];
    all.extend_from_slice(headers);
    request(app.addr, "POST", &all, &body).await
}

#[tokio::test]
async fn a_client_assertion_buys_a_token_over_http_that_the_services_accept() {
    for backend in BOTH {
        let app = spawn_app(backend).await;
        let partner = app
            .register("bank-suzhou", PrincipalKind::Partner, &["verify"], "")
            .await;

        // A partner, with the parameters an OAuth 2.0 library sends: no client_id (the
        // assertion's subject names the client), the scope it needs.
        let assertion =
            credmesh_auth::client_assertion("bank-suzhou", partner.signing_key(), app.now())
                .unwrap();
        let answer = post(
            &app,
            &[
                ("grant_type", "client_credentials"),
                ("client_assertion_type", ASSERTION_TYPE),
                ("client_assertion", &assertion),
                ("scope", "verify"),
            ],
        )
        .await;
        assert_eq!(answer.status, 200, "{backend:?}: {}", answer.body);
        assert_eq!(answer.body["token_type"], "Bearer");
        assert_eq!(answer.body["expires_in"], 900);
        assert_eq!(answer.body["scope"], "verify");
        assert_eq!(answer.header("cache-control"), Some("no-store"));
        assert_eq!(answer.header("pragma"), Some("no-cache"));
        assert!(
            answer
                .header("content-type")
                .is_some_and(|t| t.starts_with("application/json"))
        );

        // The same assertion again is a replay.
        let replay = post(
            &app,
            &[
                ("grant_type", "client_credentials"),
                ("client_assertion_type", ASSERTION_TYPE),
                ("client_assertion", &assertion),
            ],
        )
        .await;
        replay.refused(401, "invalid_client", "CLIENT_ASSERTION_REPLAYED");

        // The operator's token from the endpoint calls the gRPC API.
        let assertion =
            credmesh_auth::client_assertion("operator", app.operator.signing_key(), app.now())
                .unwrap();
        let answer = post(
            &app,
            &[
                ("grant_type", "client_credentials"),
                ("client_id", "operator"),
                ("client_assertion_type", ASSERTION_TYPE),
                ("client_assertion", &assertion),
                ("scope", "identity.read identity.admin"),
                ("audience", "identity"),
            ],
        )
        .await;
        assert_eq!(answer.status, 200, "{}", answer.body);
        assert_eq!(answer.body["scope"], "identity.read identity.admin");
        let token = answer.body["access_token"].as_str().unwrap();
        let clients = app
            .client
            .clone()
            .list_clients(with_token(pb::ListClientsRequest::default(), token))
            .await
            .unwrap()
            .into_inner()
            .clients;
        assert!(clients.iter().any(|c| c.client_id == "bank-suzhou"));
    }
}

#[tokio::test]
async fn refusals_are_rfc_6749_errors_that_say_what_to_send() {
    let app = spawn_app(Backend::Sqlite).await;
    let partner = app
        .register("bank-suzhou", PrincipalKind::Partner, &["verify"], "")
        .await;
    let fresh = || {
        credmesh_auth::client_assertion("bank-suzhou", partner.signing_key(), app.now()).unwrap()
    };
    let grant = ("grant_type", "client_credentials");
    let kind = ("client_assertion_type", ASSERTION_TYPE);

    // JSON where a form belongs.
    request(
        app.addr,
        "POST",
        &[("Content-Type", "application/json")],
        r#"{"grant_type":"client_credentials"}"#,
    )
    .await
    .refused(400, "invalid_request", "CONTENT_TYPE_UNSUPPORTED");
    // No grant type, another grant type, a parameter twice.
    let a = fresh();
    post(&app, &[kind, ("client_assertion", &a)]).await.refused(
        400,
        "invalid_request",
        "GRANT_TYPE_MISSING",
    );
    post(
        &app,
        &[("grant_type", "password"), kind, ("client_assertion", &a)],
    )
    .await
    .refused(400, "unsupported_grant_type", "UNSUPPORTED_GRANT_TYPE");
    post(&app, &[grant, ("scope", "verify"), ("scope", "verify")])
        .await
        .refused(400, "invalid_request", "PARAMETER_REPEATED");
    // No client authentication, an assertion without its type, two ways at once, a bearer
    // token where client credentials belong.
    post(&app, &[grant, ("scope", "verify")]).await.refused(
        401,
        "invalid_client",
        "CLIENT_CREDENTIAL_MISSING",
    );
    post(&app, &[grant, ("client_assertion", &a)])
        .await
        .refused(400, "invalid_request", "CLIENT_ASSERTION_TYPE_MISSING");
    post(
        &app,
        &[
            grant,
            ("client_assertion_type", "urn:x"),
            ("client_assertion", &a),
        ],
    )
    .await
    .refused(400, "invalid_request", "CLIENT_ASSERTION_TYPE_INVALID");
    let basic = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode("bank-suzhou:x")
    );
    post_with(
        &app,
        &[("Authorization", &basic)],
        &[grant, kind, ("client_assertion", &a)],
    )
    .await
    .refused(400, "invalid_request", "CLIENT_AUTHENTICATION_AMBIGUOUS");
    post_with(
        &app,
        &[("Authorization", "Bearer abc")],
        &[grant, ("scope", "verify")],
    )
    .await
    .refused(400, "invalid_request", "AUTHORIZATION_SCHEME_UNSUPPORTED");
    // None of the above spent the assertion: it still buys a token.
    let answer = post(&app, &[grant, kind, ("client_assertion", &a)]).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    // A scope the client does not hold, an audience that is no service name.
    let a = fresh();
    post(
        &app,
        &[
            grant,
            kind,
            ("client_assertion", &a),
            ("scope", "identity.admin"),
        ],
    )
    .await
    .refused(400, "invalid_scope", "SCOPE_NOT_GRANTED");
    let b = fresh();
    post(
        &app,
        &[
            grant,
            kind,
            ("client_assertion", &b),
            ("audience", "https://x/"),
        ],
    )
    .await
    .refused(400, "invalid_target", "AUDIENCE_INVALID");
    // Someone else's key, a client nobody registered, a client_id the assertion does not
    // name: the same refusal, with what an assertion must be.
    let stranger = credmesh_credential::keys::IssuerKey::generate("x").unwrap();
    let forged =
        credmesh_auth::client_assertion("bank-suzhou", stranger.signing_key(), app.now()).unwrap();
    let unknown =
        credmesh_auth::client_assertion("nobody", stranger.signing_key(), app.now()).unwrap();
    let c = fresh();
    for refused in [
        post(&app, &[grant, kind, ("client_assertion", &forged)]).await,
        post(&app, &[grant, kind, ("client_assertion", &unknown)]).await,
        post(
            &app,
            &[
                grant,
                ("client_id", "operator"),
                kind,
                ("client_assertion", &c),
            ],
        )
        .await,
        post(&app, &[grant, kind, ("client_assertion", "not-a-jwt")]).await,
    ] {
        refused.refused(401, "invalid_client", "CLIENT_AUTH_FAILED");
        let said = refused.body["error_description"].as_str().unwrap();
        assert!(said.contains("aud = \"credmesh-identity\""), "{said}");
        assert_eq!(refused.header("www-authenticate"), None);
    }
    // Only POST.
    assert_eq!(request(app.addr, "GET", &[], "").await.status, 405);
}

#[tokio::test]
async fn where_secrets_are_allowed_a_client_may_send_its_secret_in_basic_or_the_body() {
    let app = spawn_configured(
        Backend::Sqlite,
        "SH",
        &[("CREDMESH_ALLOW_CLIENT_SECRETS", "true")],
    )
    .await;
    let secret = "a secret of 32 characters, or more";
    let req = app
        .as_operator(pb::RegisterClientRequest {
            client_id: "dev-partner".into(),
            kind: PrincipalKind::Partner.to_proto(),
            display_name: "dev partner".into(),
            scopes: vec!["verify".into()],
            client_secret: secret.into(),
            ..Default::default()
        })
        .await;
    app.client.clone().register_client(req).await.unwrap();
    let grant = ("grant_type", "client_credentials");

    // HTTP Basic: each half form-encoded, then base64 (RFC 6749 §2.3.1).
    let encoded = |id: &str, secret: &str| {
        let half = |s: &str| form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!(
                "{}:{}",
                half(id),
                half(secret)
            ))
        )
    };
    let answer = post_with(
        &app,
        &[("Authorization", &encoded("dev-partner", secret))],
        &[grant],
    )
    .await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(answer.body["scope"], "verify");
    // The secret in the body.
    let answer = post(
        &app,
        &[
            grant,
            ("client_id", "dev-partner"),
            ("client_secret", secret),
        ],
    )
    .await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    // A wrong secret in Basic is a 401 that names the scheme; in the body, without it.
    let wrong = post_with(
        &app,
        &[("Authorization", &encoded("dev-partner", "not the secret"))],
        &[grant],
    )
    .await;
    wrong.refused(401, "invalid_client", "CLIENT_AUTH_FAILED");
    assert_eq!(
        wrong.header("www-authenticate"),
        Some("Basic realm=\"credmesh\"")
    );
    post(&app, &[grant, ("client_secret", secret)])
        .await
        .refused(400, "invalid_request", "CLIENT_ID_MISSING");

    // A disabled client authenticates but gets no token.
    let req = app
        .as_operator(pb::DisableClientRequest {
            client_id: "dev-partner".into(),
            reason: "contract ended".into(),
        })
        .await;
    app.client.clone().disable_client(req).await.unwrap();
    post(
        &app,
        &[
            grant,
            ("client_id", "dev-partner"),
            ("client_secret", secret),
        ],
    )
    .await
    .refused(400, "unauthorized_client", "CLIENT_DISABLED");
}

/// A client assertion for `client` signed with `key` and naming `aud`, built by hand as
/// an OAuth library builds it (the `aud` it chose, a string or an array).
fn assertion_naming(
    client: &str,
    key: &ed25519_dalek::SigningKey,
    now: i64,
    aud: &serde_json::Value,
    jti: usize,
) -> String {
    use ed25519_dalek::Signer as _;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let header = b64.encode(br#"{"alg":"EdDSA","typ":"JWT"}"#);
    let claims = serde_json::json!({
        "iss": client, "sub": client, "aud": aud,
        "iat": now, "exp": now + 60, "jti": format!("jti-{jti}"),
    });
    let input = format!("{header}.{}", b64.encode(claims.to_string()));
    let signature = b64.encode(key.sign(input.as_bytes()).to_bytes());
    format!("{input}.{signature}")
}

#[tokio::test]
async fn an_assertion_may_name_the_token_endpoints_url_as_its_audience() {
    use serde_json::json;
    const ENDPOINT: &str = "https://verify.sh.example.gov.cn/v1/token";
    let app = spawn_configured(
        Backend::Sqlite,
        "SH",
        &[("CREDMESH_PUBLIC_URL", "https://verify.sh.example.gov.cn/")],
    )
    .await;
    let partner = app
        .register("bank-suzhou", PrincipalKind::Partner, &["verify"], "")
        .await;
    let grant = ("grant_type", "client_credentials");
    let kind = ("client_assertion_type", ASSERTION_TYPE);
    let send = |aud: serde_json::Value, jti: usize| {
        let assertion =
            assertion_naming("bank-suzhou", partner.signing_key(), app.now(), &aud, jti);
        let app = &app;
        async move { post(app, &[grant, kind, ("client_assertion", &assertion)]).await }
    };

    // What OAuth libraries send: the endpoint's URL, as a string or in an array; and the
    // service's name among other audiences.
    for (jti, aud) in [
        json!(ENDPOINT),
        json!([ENDPOINT]),
        json!(["https://elsewhere.example", "credmesh-identity"]),
    ]
    .into_iter()
    .enumerate()
    {
        let answer = send(aud.clone(), jti).await;
        assert_eq!(answer.status, 200, "{aud}: {}", answer.body);
        assert_eq!(answer.body["scope"], "verify");
    }
    // Any other audience: another server's token URL (an assertion made for it must not
    // buy a token here), another path of ours, none at all.
    for (jti, aud) in [
        json!("https://bank.example/v1/token"),
        json!("https://verify.sh.example.gov.cn/v1/verify"),
        json!([]),
    ]
    .into_iter()
    .enumerate()
    {
        let answer = send(aud.clone(), 10 + jti).await;
        answer.refused(401, "invalid_client", "CLIENT_AUTH_FAILED");
        let said = answer.body["error_description"].as_str().unwrap();
        assert!(said.contains("token endpoint's URL"), "{said}");
    }

    // A deployment without a public URL knows no URL of its own: only the name will do.
    let app = spawn_app(Backend::Sqlite).await;
    let partner = app
        .register("bank-suzhou", PrincipalKind::Partner, &["verify"], "")
        .await;
    let own_url = json!(format!("http://{}/v1/token", app.addr));
    let assertion = assertion_naming(
        "bank-suzhou",
        partner.signing_key(),
        app.now(),
        &own_url,
        20,
    );
    post(&app, &[grant, kind, ("client_assertion", &assertion)])
        .await
        .refused(401, "invalid_client", "CLIENT_AUTH_FAILED");
}

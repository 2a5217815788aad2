use credmesh_auth::PrincipalKind;
use credmesh_proto::{identity::v1 as pb, status};
use tonic::Code;

use crate::helpers::*;

#[tokio::test]
async fn a_department_is_registered_audited_and_listed_on_both_backends() {
    for backend in BOTH {
        let app = spawn_app(backend).await;
        let org = sh_uscc(1);
        app.register(
            "smr-jingan",
            PrincipalKind::Department,
            &["license.issue"],
            &org,
        )
        .await;
        let req = app
            .as_operator(pb::GetClientRequest {
                client_id: "smr-jingan".into(),
            })
            .await;
        let c = app
            .client
            .clone()
            .get_client(req)
            .await
            .unwrap()
            .into_inner()
            .client
            .unwrap();
        assert_eq!(c.organization, org, "{backend:?}");
        assert_eq!(c.scopes, ["license.issue"]);
        assert_eq!(app.audit_count("smr-jingan").await, 1, "{backend:?}");

        let req = app
            .as_operator(pb::ListClientsRequest {
                page_size: 1,
                page_token: String::new(),
            })
            .await;
        let page = app
            .client
            .clone()
            .list_clients(req)
            .await
            .unwrap()
            .into_inner();
        assert_eq!(page.clients.len(), 1);
        assert!(
            !page.next_page_token.is_empty(),
            "two clients exist, so a second page"
        );
        let req = app
            .as_operator(pb::ListClientsRequest {
                page_size: 1,
                page_token: page.next_page_token,
            })
            .await;
        let page2 = app
            .client
            .clone()
            .list_clients(req)
            .await
            .unwrap()
            .into_inner();
        assert_eq!(page2.clients.len(), 1);
        assert_ne!(page2.clients[0].client_id, page.clients[0].client_id);
    }
}

#[tokio::test]
async fn a_retried_registration_with_the_same_idempotency_key_registers_once() {
    for backend in BOTH {
        let app = spawn_app(backend).await;
        let key = credmesh_credential::keys::IssuerKey::generate("x").unwrap();
        let request = pb::RegisterClientRequest {
            client_id: "bank-suzhou".into(),
            kind: PrincipalKind::Partner.to_proto(),
            display_name: "苏州银行".into(),
            scopes: vec!["verify".into()],
            public_key: key.public_key_bytes().to_vec(),
            idempotency_key: "reg-42".into(),
            ..Default::default()
        };
        let first = app
            .client
            .clone()
            .register_client(app.as_operator(request.clone()).await)
            .await
            .unwrap()
            .into_inner();
        let again = app
            .client
            .clone()
            .register_client(app.as_operator(request.clone()).await)
            .await
            .unwrap()
            .into_inner();
        assert_eq!(first, again, "{backend:?}");
        assert_eq!(app.audit_count("bank-suzhou").await, 1);

        let mut different = request.clone();
        different.display_name = "another bank".into();
        let r = app
            .client
            .clone()
            .register_client(app.as_operator(different).await)
            .await;
        assert_status(r, Code::FailedPrecondition, "IDEMPOTENCY_KEY_REUSED");

        let mut fresh_key = request;
        fresh_key.idempotency_key = "reg-43".into();
        let r = app
            .client
            .clone()
            .register_client(app.as_operator(fresh_key).await)
            .await;
        assert_status(r, Code::AlreadyExists, "CLIENT_EXISTS");
    }
}

#[tokio::test]
async fn an_invalid_registration_lists_every_bad_field_and_stores_nothing() {
    let app = spawn_app(Backend::Sqlite).await;
    let req = app
        .as_operator(pb::RegisterClientRequest {
            client_id: "X".into(),
            kind: PrincipalKind::Partner.to_proto(),
            display_name: String::new(),
            scopes: vec!["license.issue".into()],
            organization: "91310000MA1FL0000X".into(),
            public_key: vec![1, 2, 3],
            ..Default::default()
        })
        .await;
    let s = assert_status(
        app.client.clone().register_client(req).await,
        Code::InvalidArgument,
        "CLIENT_INVALID",
    );
    let fields: Vec<String> = status::field_violations(&s)
        .into_iter()
        .map(|v| v.field)
        .collect();
    assert_eq!(
        fields,
        [
            "client_id",
            "display_name",
            "scopes[0]",
            "organization",
            "public_key"
        ]
    );
    assert_eq!(app.audit_count("X").await, 0);
}

#[tokio::test]
async fn a_department_without_a_valid_uscc_is_refused_with_the_failed_rule() {
    let app = spawn_app(Backend::Sqlite).await;
    let mut org = sh_uscc(7);
    let last = org.pop().unwrap();
    org.push(if last == '0' { '1' } else { '0' });
    let req = app
        .as_operator(pb::RegisterClientRequest {
            client_id: "smr-x".into(),
            kind: PrincipalKind::Department.to_proto(),
            display_name: "市场监管".into(),
            scopes: vec!["license.issue".into()],
            organization: org,
            public_key: credmesh_credential::keys::IssuerKey::generate("x")
                .unwrap()
                .public_key_bytes()
                .to_vec(),
            ..Default::default()
        })
        .await;
    let s = assert_status(
        app.client.clone().register_client(req).await,
        Code::InvalidArgument,
        "CLIENT_INVALID",
    );
    let v = status::field_violations(&s);
    assert_eq!(v[0].field, "organization");
    assert!(v[0].description.contains("check"), "{}", v[0].description);
}

#[tokio::test]
async fn a_disabled_client_gets_no_token_and_its_token_stops_working() {
    for backend in BOTH {
        let app = spawn_app(backend).await;
        let key = app
            .register("ops-2", PrincipalKind::Operator, &["identity.read"], "")
            .await;
        let token = app.token_for("ops-2", &key, &[]).await.unwrap();
        let list = |t: String| {
            let mut c = app.client.clone();
            async move {
                c.list_issuer_keys(with_token(pb::ListIssuerKeysRequest::default(), &t))
                    .await
            }
        };
        list(token.clone()).await.unwrap();
        let req = app
            .as_operator(pb::DisableClientRequest {
                client_id: "ops-2".into(),
                reason: "left the team".into(),
            })
            .await;
        app.client.clone().disable_client(req).await.unwrap();
        assert_status(
            app.token_for("ops-2", &key, &[]).await,
            Code::PermissionDenied,
            "CLIENT_DISABLED",
        );
        assert_status(
            list(token).await,
            Code::PermissionDenied,
            "AUTH_CLIENT_DISABLED",
        );
    }
}

#[tokio::test]
async fn an_oversized_message_is_refused_without_reaching_the_service() {
    let app = spawn_app(Backend::Sqlite).await;
    let req = app
        .as_operator(pb::RegisterClientRequest {
            client_id: "big".into(),
            display_name: "x".repeat(100 * 1024),
            ..Default::default()
        })
        .await;
    let r = app.client.clone().register_client(req).await;
    assert_status(r, Code::ResourceExhausted, "MESSAGE_TOO_LARGE");
    assert_eq!(app.audit_count("big").await, 0);
}

#[tokio::test]
async fn a_malformed_protobuf_body_is_invalid_argument_and_stores_nothing() {
    let app = spawn_app(Backend::Sqlite).await;
    let channel = tonic::transport::Channel::from_shared(format!("http://{}", app.addr))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let token = app.operator_token().await;
    // Field 1 announced as a 100-byte string, then the body ends: truncated protobuf.
    let body = vec![0x0a, 100, b'a', b'b'];
    let r = credmesh_testkit::grpc::raw_unary(
        channel,
        "/credmesh.identity.v1.IdentityService/RegisterClient",
        body,
        &[("authorization", format!("Bearer {token}"))],
    )
    .await;
    assert_status(r, Code::InvalidArgument, "MALFORMED_REQUEST");
    assert_eq!(app.audit_count("ab").await, 0);
}

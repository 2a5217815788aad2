//! The auth pieces wired as services wire them: a tonic server behind an `AuthLayer`
//! whose validator fetches keys over gRPC, and a client obtaining tokens with client
//! assertions and sending them through a `BearerLayer`.

use std::sync::Arc;

use credmesh_auth::{
    Access, AccessClaims, AccessPolicy, AuthLayer, BearerLayer, GrpcJwksSource, Jwks, Principal,
    PrincipalKind, TokenSigner, TokenSource, TokenValidator, ValidatorConfig, system_clock,
    verify_client_assertion,
};
use credmesh_proto::identity::v1::identity_service_client::IdentityServiceClient;
use credmesh_proto::identity::v1::identity_service_server::{
    IdentityService, IdentityServiceServer,
};
use credmesh_proto::identity::v1::issue_token_request::Credential;
use credmesh_proto::identity::v1::*;
use ed25519_dalek::SigningKey;
use tonic::service::Routes;
use tonic::transport::{Channel, Server};
use tonic::{Code, Request, Response, Status};
use tower::{Layer, ServiceBuilder};

const ISSUER: &str = "credmesh-identity:sh";
const SERVICE: &str = "credmesh.identity.v1.IdentityService";
const OPERATOR: &str = "operator-1";

fn operator_key() -> SigningKey {
    SigningKey::from_bytes(&[5; 32])
}

/// Just enough of an identity service: tokens for one operator, the key set, and
/// `GetClient` answering with the caller's own id.
struct FakeIdentity {
    signer: TokenSigner,
}

#[tonic::async_trait]
impl IdentityService for FakeIdentity {
    async fn issue_token(
        &self,
        request: Request<IssueTokenRequest>,
    ) -> Result<Response<IssueTokenResponse>, Status> {
        let request = request.into_inner();
        let Some(Credential::ClientAssertion(assertion)) = request.credential else {
            return Err(Status::unauthenticated("assertion required"));
        };
        let now = (system_clock())();
        verify_client_assertion(
            &assertion,
            &request.client_id,
            operator_key().verifying_key().as_bytes(),
            now,
            None,
        )?;
        let claims = AccessClaims {
            iss: ISSUER.into(),
            sub: request.client_id,
            aud: request.audience,
            exp: now + 300,
            iat: now,
            nbf: now,
            jti: "t1".into(),
            scope: "identity.admin".into(),
            kind: PrincipalKind::Operator,
            org: None,
            region: "sh".into(),
            cert: None,
        };
        Ok(Response::new(IssueTokenResponse {
            access_token: self.signer.sign(&claims)?,
            token_type: "Bearer".into(),
            expires_in: 300,
            scopes: vec!["identity.admin".into()],
        }))
    }

    async fn get_jwks(
        &self,
        _: Request<GetJwksRequest>,
    ) -> Result<Response<GetJwksResponse>, Status> {
        let jwks = Jwks::new([self.signer.jwk()]);
        Ok(Response::new(GetJwksResponse {
            jwks_json: jwks.to_json(),
        }))
    }

    async fn get_client(
        &self,
        request: Request<GetClientRequest>,
    ) -> Result<Response<GetClientResponse>, Status> {
        let caller = Principal::from_request(&request)?;
        Ok(Response::new(GetClientResponse {
            client: Some(Client {
                client_id: caller.client_id.clone(),
                kind: caller.kind.to_proto(),
                ..Default::default()
            }),
        }))
    }

    async fn register_client(
        &self,
        _: Request<RegisterClientRequest>,
    ) -> Result<Response<RegisterClientResponse>, Status> {
        Err(Status::unimplemented("not in this test"))
    }

    async fn list_clients(
        &self,
        _: Request<ListClientsRequest>,
    ) -> Result<Response<ListClientsResponse>, Status> {
        Err(Status::unimplemented("not in this test"))
    }

    async fn disable_client(
        &self,
        _: Request<DisableClientRequest>,
    ) -> Result<Response<DisableClientResponse>, Status> {
        Err(Status::unimplemented("not in this test"))
    }

    async fn register_issuer_key(
        &self,
        _: Request<RegisterIssuerKeyRequest>,
    ) -> Result<Response<RegisterIssuerKeyResponse>, Status> {
        Err(Status::unimplemented("not in this test"))
    }

    async fn revoke_issuer_key(
        &self,
        _: Request<RevokeIssuerKeyRequest>,
    ) -> Result<Response<RevokeIssuerKeyResponse>, Status> {
        Err(Status::unimplemented("not in this test"))
    }

    async fn list_issuer_keys(
        &self,
        _: Request<ListIssuerKeysRequest>,
    ) -> Result<Response<ListIssuerKeysResponse>, Status> {
        Err(Status::unimplemented("not in this test"))
    }

    async fn get_trust_list(
        &self,
        _: Request<GetTrustListRequest>,
    ) -> Result<Response<GetTrustListResponse>, Status> {
        Err(Status::unimplemented("not in this test"))
    }

    async fn pin_partner_anchor(
        &self,
        _: Request<PinPartnerAnchorRequest>,
    ) -> Result<Response<PinPartnerAnchorResponse>, Status> {
        Err(Status::unimplemented("not in this test"))
    }

    async fn list_partner_anchors(
        &self,
        _: Request<ListPartnerAnchorsRequest>,
    ) -> Result<Response<ListPartnerAnchorsResponse>, Status> {
        Err(Status::unimplemented("not in this test"))
    }

    async fn import_partner_trust_list(
        &self,
        _: Request<ImportPartnerTrustListRequest>,
    ) -> Result<Response<ImportPartnerTrustListResponse>, Status> {
        Err(Status::unimplemented("not in this test"))
    }

    async fn get_partner_trust_list(
        &self,
        _: Request<GetPartnerTrustListRequest>,
    ) -> Result<Response<GetPartnerTrustListResponse>, Status> {
        Err(Status::unimplemented("not in this test"))
    }
}

/// Starts the fake identity behind an `AuthLayer` on an ephemeral port; returns a
/// channel to it. `per_service` wraps the one service instead of the whole server.
/// The server stops when the test's runtime ends.
async fn spawn_identity(per_service: bool) -> Channel {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind an ephemeral port");
    let channel = Channel::from_shared(format!(
        "http://{}",
        listener.local_addr().expect("local address")
    ))
    .expect("a valid uri")
    .connect_lazy();

    let signer = TokenSigner::new(
        "sh-1".into(),
        SigningKey::from_bytes(&[1; 32]),
        ISSUER.into(),
    )
    .expect("a signer");
    let validator = TokenValidator::new(
        Arc::new(GrpcJwksSource::new(channel.clone())),
        ValidatorConfig::new(ISSUER, ["credmesh"]),
    );
    let _refresh = validator.spawn_refresh();
    let policy = AccessPolicy::new()
        .rule(&format!("{SERVICE}/IssueToken"), Access::Public)
        .rule(&format!("{SERVICE}/GetJwks"), Access::Public)
        .rule(
            &format!("{SERVICE}/GetClient"),
            Access::Scope("identity.admin"),
        );

    let auth = AuthLayer::new(validator, Arc::new(policy));
    let identity = IdentityServiceServer::new(FakeIdentity { signer });
    let incoming = tonic::transport::server::TcpIncoming::from(listener);
    if per_service {
        // Wrapping one service, as when tonic `Routes` are merged into an axum router.
        let routes = Routes::new(auth.layer(identity));
        tokio::spawn(
            Server::builder()
                .add_routes(routes)
                .serve_with_incoming(incoming),
        );
    } else {
        let router = Server::builder().layer(auth).add_service(identity);
        tokio::spawn(router.serve_with_incoming(incoming));
    }
    channel
}

#[tokio::test]
async fn a_client_with_a_bearer_layer_reaches_a_scoped_method_and_the_handler_sees_it() {
    let channel = spawn_identity(false).await;
    let source = TokenSource::grpc(OPERATOR, operator_key(), "credmesh", channel.clone());
    let authed = ServiceBuilder::new()
        .layer(BearerLayer::new(Arc::new(source)))
        .service(channel);
    let mut client = IdentityServiceClient::new(authed);

    let response = client
        .get_client(GetClientRequest {
            client_id: OPERATOR.into(),
        })
        .await
        .unwrap()
        .into_inner();
    let caller = response.client.unwrap();
    assert_eq!(caller.client_id, OPERATOR);
    assert_eq!(
        PrincipalKind::from_proto(caller.kind),
        Some(PrincipalKind::Operator)
    );

    // A method with no policy entry is refused even with a good token.
    let refused = client
        .list_clients(ListClientsRequest::default())
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied);
    assert_eq!(
        credmesh_proto::status::reason(&refused).as_deref(),
        Some("AUTH_METHOD_NOT_IN_POLICY")
    );
}

#[tokio::test]
async fn a_call_without_a_token_is_refused_before_the_handler() {
    let channel = spawn_identity(true).await;
    let mut client = IdentityServiceClient::new(channel);
    let refused = client
        .get_client(GetClientRequest {
            client_id: OPERATOR.into(),
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::Unauthenticated);
    assert_eq!(
        credmesh_proto::status::reason(&refused).as_deref(),
        Some("AUTH_TOKEN_MISSING")
    );
    // Public methods need no token.
    assert!(client.get_jwks(GetJwksRequest {}).await.is_ok());
}

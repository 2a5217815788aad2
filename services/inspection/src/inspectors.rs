//! Who may be named on an inspection code: registered inspector principals.
//!
//! DOMAIN.md: inspectors are registered principals holding law-enforcement certificate
//! numbers, and a code names them. A plan or join naming an inspector is checked against
//! identity's client registry: the client exists, is an inspector of the department that
//! plans or joins, is not disabled, and holds the certificate number the plan gives.

use std::sync::Arc;

use credmesh_auth::{BearerLayer, BearerService, TokenSource};
use credmesh_proto::identity::v1::{
    GetClientRequest, PrincipalKind, identity_service_client::IdentityServiceClient,
};
use credmesh_telemetry::propagation::{ClientTrace, ClientTraceLayer};
use futures::future::BoxFuture;
use tonic::{Code, transport::Channel};
use tower::ServiceBuilder;

/// A registered client as the check needs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Registered {
    /// Whether the client is an inspector.
    pub is_inspector: bool,
    /// Whether the client is disabled.
    pub disabled: bool,
    /// Its law-enforcement certificate number.
    pub certificate: String,
    /// The department it inspects for (its organisation's USCC).
    pub department: String,
}

/// Whatever answers "who is this client?".
pub trait InspectorRegistry: Send + Sync + std::fmt::Debug + 'static {
    /// The client `client_id`, `None` when no such client is registered, `Err` with a
    /// sentence when the registry cannot answer.
    fn lookup(&self, client_id: &str) -> BoxFuture<'_, Result<Option<Registered>, String>>;
}

/// Identity's registry over gRPC (`GetClient`, scope `identity.clients.read`).
#[derive(Debug, Clone)]
pub struct GrpcInspectorRegistry {
    client: IdentityServiceClient<BearerService<ClientTrace<Channel>>>,
    tokens: Arc<TokenSource>,
}

impl GrpcInspectorRegistry {
    /// Asks identity over `identity` with tokens from `tokens`.
    pub fn new(identity: Channel, tokens: Arc<TokenSource>) -> Self {
        let service = ServiceBuilder::new()
            .layer(BearerLayer::new(tokens.clone()))
            .layer(ClientTraceLayer)
            .service(identity);
        GrpcInspectorRegistry {
            client: IdentityServiceClient::new(service),
            tokens,
        }
    }
}

impl InspectorRegistry for GrpcInspectorRegistry {
    fn lookup(&self, client_id: &str) -> BoxFuture<'_, Result<Option<Registered>, String>> {
        let client_id = client_id.to_string();
        Box::pin(async move {
            let answer = self
                .client
                .clone()
                .get_client(GetClientRequest { client_id })
                .await;
            match answer {
                Ok(r) => Ok(r.into_inner().client.map(|c| Registered {
                    is_inspector: c.kind == PrincipalKind::Inspector as i32,
                    disabled: c.disabled,
                    certificate: c.enforcement_certificate,
                    department: c.organization,
                })),
                Err(s) if s.code() == Code::NotFound => Ok(None),
                Err(s) => {
                    if s.code() == Code::Unauthenticated {
                        self.tokens.invalidate();
                    }
                    Err(format!(
                        "identity did not answer ({:?}: {})",
                        s.code(),
                        s.message()
                    ))
                }
            }
        })
    }
}

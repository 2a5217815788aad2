//! Where a validator gets its keys.

use std::sync::RwLock;
use std::time::Duration;

use credmesh_proto::identity::v1::GetJwksRequest;
use credmesh_proto::identity::v1::identity_service_client::IdentityServiceClient;
use credmesh_telemetry::propagation::{TracedChannel, traced};
use futures::future::BoxFuture;
use tonic::transport::Channel;

use crate::{AuthError, Jwk, Jwks};

/// A source of token signing keys: the identity service over gRPC in production, a
/// fixed set in tests and in-process wiring.
pub trait JwksSource: Send + Sync + 'static {
    /// The current key set.
    fn fetch(&self) -> BoxFuture<'_, Result<Jwks, AuthError>>;
}

/// A key set held in memory and updated by its owner: the identity service's own
/// signer in `credmesh dev`, fixed keys in tests.
#[derive(Debug, Default)]
pub struct StaticJwks {
    jwks: RwLock<Jwks>,
}

impl StaticJwks {
    /// A source serving `jwks` until it is replaced.
    pub fn new(jwks: Jwks) -> Self {
        StaticJwks {
            jwks: RwLock::new(jwks),
        }
    }

    /// Serves `jwks` from now on.
    pub fn replace(&self, jwks: Jwks) {
        *self.jwks.write().unwrap_or_else(|e| e.into_inner()) = jwks;
    }

    /// Adds `jwk`, replacing a key with the same id.
    pub fn insert(&self, jwk: Jwk) {
        let mut jwks = self.jwks.write().unwrap_or_else(|e| e.into_inner());
        jwks.keys.retain(|k| k.kid != jwk.kid);
        jwks.keys.push(jwk);
    }

    /// The key set served now.
    pub fn current(&self) -> Jwks {
        self.jwks.read().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

impl JwksSource for StaticJwks {
    fn fetch(&self) -> BoxFuture<'_, Result<Jwks, AuthError>> {
        let jwks = self.current();
        Box::pin(async move { Ok(jwks) })
    }
}

/// How long a key set fetch may take before it counts as failed.
pub const DEFAULT_FETCH_TIMEOUT: Duration = Duration::from_secs(5);

/// Fetches the key set from the identity service's `GetJwks` (a public method).
#[derive(Debug, Clone)]
pub struct GrpcJwksSource {
    client: IdentityServiceClient<TracedChannel>,
    timeout: Duration,
}

impl GrpcJwksSource {
    /// A source calling identity over `channel`, giving up after
    /// [`DEFAULT_FETCH_TIMEOUT`]. Fetches are traced: one made while validating a call's
    /// token is a child of that call's span.
    pub fn new(channel: Channel) -> Self {
        GrpcJwksSource {
            client: IdentityServiceClient::new(traced(channel)),
            timeout: DEFAULT_FETCH_TIMEOUT,
        }
    }

    /// Sets how long one fetch may take.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }
}

impl JwksSource for GrpcJwksSource {
    fn fetch(&self) -> BoxFuture<'_, Result<Jwks, AuthError>> {
        let mut client = self.client.clone();
        let timeout = self.timeout;
        Box::pin(async move {
            let mut request = tonic::Request::new(GetJwksRequest {});
            request.set_timeout(timeout);
            let response = tokio::time::timeout(timeout, client.get_jwks(request))
                .await
                .map_err(|_| {
                    AuthError::KeySource(format!("identity did not answer within {timeout:?}"))
                })?
                .map_err(|status| {
                    AuthError::KeySource(format!(
                        "identity answered {:?}: {}",
                        status.code(),
                        status.message()
                    ))
                })?;
            Jwks::from_json(&response.into_inner().jwks_json)
        })
    }
}

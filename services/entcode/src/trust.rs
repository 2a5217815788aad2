//! Keys this service signed with before: an enterprise code is printed and lives as long
//! as the enterprise, so a code signed by a key since rotated must still resolve. The
//! current key is known locally; any other kid is looked up in identity's trust list
//! (public, over the internal channel, its anchor signature checked), at most once per
//! [`REFRESH_SECS`] so unknown kids cannot make the service hammer identity. Only keys
//! of issuer `<REGION>/entcode` that are not revoked count.

use std::{collections::HashMap, sync::Mutex};

use credmesh_credential::VerifyingKey;
use credmesh_proto::{
    credential::v1::KeyStatus, identity::v1::identity_service_client::IdentityServiceClient,
};
use futures::future::BoxFuture;
use tonic::transport::Channel;

/// Seconds between trust-list fetches for unknown kids.
pub const REFRESH_SECS: i64 = 30;

/// Whatever finds the public key of one of this service's earlier kids.
pub trait KeyDirectory: Send + Sync + std::fmt::Debug + 'static {
    /// The key `kid` of `issuer`, if trusted, as of `now`.
    fn key(&self, issuer: &str, kid: &str, now: i64) -> BoxFuture<'_, Option<VerifyingKey>>;
}

/// Trusted keys by issuer and kid.
type Keys = HashMap<(String, String), VerifyingKey>;

/// Identity's trust list over gRPC, cached.
#[derive(Debug)]
pub struct TrustListKeys {
    client: IdentityServiceClient<Channel>,
    /// When the list was last fetched, and its keys.
    state: Mutex<(i64, Keys)>,
}

impl TrustListKeys {
    /// Reads identity's trust list over `identity`.
    pub fn new(identity: Channel) -> Self {
        TrustListKeys {
            client: IdentityServiceClient::new(identity),
            state: Mutex::new((i64::MIN, HashMap::new())),
        }
    }

    async fn fetch(&self) -> Option<Keys> {
        let list = credmesh_runtime::trust::fetch_trust_list(&self.client)
            .await
            .ok()?;
        Some(
            list.keys
                .into_iter()
                .filter(|k| k.status != KeyStatus::Revoked as i32)
                .filter_map(|k| {
                    let bytes: [u8; 32] = k.public_key.as_slice().try_into().ok()?;
                    Some(((k.issuer, k.kid), VerifyingKey::from_bytes(&bytes).ok()?))
                })
                .collect(),
        )
    }
}

impl KeyDirectory for TrustListKeys {
    fn key(&self, issuer: &str, kid: &str, now: i64) -> BoxFuture<'_, Option<VerifyingKey>> {
        let id = (issuer.to_string(), kid.to_string());
        Box::pin(async move {
            {
                let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
                if let Some(k) = state.1.get(&id) {
                    return Some(*k);
                }
                if now.saturating_sub(state.0) < REFRESH_SECS {
                    return None;
                }
            }
            self.state.lock().unwrap_or_else(|e| e.into_inner()).0 = now;
            let keys = self.fetch().await?;
            let found = keys.get(&id).copied();
            self.state.lock().unwrap_or_else(|e| e.into_inner()).1 = keys;
            found
        })
    }
}

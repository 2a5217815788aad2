//! The region's trust list as a relying party inside the region reads it: identity's
//! `GetTrustList` over the internal channel, its anchor signature checked before a
//! single key is believed. Services that verify credentials issued by other services
//! (entcode for its own earlier keys, certificate for license credentials) fetch it
//! here, so there is one way of doing it.

use std::time::Duration;

use anyhow::Context as _;
use credmesh_credential::{
    TrustSnapshot, VerifyingKey,
    envelope::{Context, open},
};
use credmesh_proto::{
    credential::v1::TrustList,
    identity::v1::{GetTrustListRequest, identity_service_client::IdentityServiceClient},
};
use tonic::transport::Channel;

/// How long one trust-list call may take.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(5);

/// Fetches identity's trust list and opens it with the anchor key identity names.
///
/// The anchor comes from the same answer: inside one region the channel to identity is
/// the trusted path (as for tokens and JWKS); partner regions' lists are checked
/// against pinned anchors by the verify gateway instead.
pub async fn fetch_trust_list(
    identity: &IdentityServiceClient<Channel>,
) -> anyhow::Result<TrustList> {
    let mut client = identity.clone();
    let mut request = tonic::Request::new(GetTrustListRequest {});
    request.set_timeout(CALL_TIMEOUT);
    let answer = client
        .get_trust_list(request)
        .await
        .context("identity GetTrustList")?
        .into_inner();
    let anchor: [u8; 32] = answer
        .anchor_public_key
        .as_slice()
        .try_into()
        .context("identity's anchor key is not 32 bytes")?;
    let anchor = VerifyingKey::from_bytes(&anchor).context("identity's anchor key")?;
    let envelope = answer
        .trust_list
        .context("identity answered without a trust list")?;
    open(Context::TrustList, &envelope, &anchor).context("the trust list's anchor signature")
}

/// [`fetch_trust_list`] as a verifier's [`TrustSnapshot`] taken at `now`.
pub async fn fetch_trust_snapshot(
    identity: &IdentityServiceClient<Channel>,
    now: i64,
) -> anyhow::Result<TrustSnapshot> {
    let list = fetch_trust_list(identity).await?;
    TrustSnapshot::from_trust_list(&list, now).context("the trust list's keys")
}

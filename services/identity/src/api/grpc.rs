//! The tonic adapter: decode, call the service, encode. No rules live here.

use std::sync::Arc;

use credmesh_auth::Principal;
use credmesh_proto::{
    identity::v1::{self as pb, identity_service_server::IdentityService},
    prost::Message as _,
    status::{self, FieldViolation},
};
use credmesh_store::{
    idempotency::{IdempotencyKey, Outcome},
    page,
    requests::decode_replay,
};
use tonic::{Code, Request, Response, Status};

use crate::{
    domain::{
        client::{Client, ClientAuth, Registration},
        issuer::KeyRegistration,
    },
    service::{Credential, Identity},
    store::{Actor, AnchorRecord, IssuerKeyRecord},
};

/// The gRPC face of the identity service.
#[derive(Clone, Debug)]
pub struct IdentityApi {
    inner: Arc<Identity>,
}

impl IdentityApi {
    /// Wraps the service.
    pub fn new(inner: Arc<Identity>) -> Self {
        Self { inner }
    }
}

fn actor<'a, T>(req: &'a Request<T>, principal: &'a Principal) -> Actor<'a> {
    let _ = req;
    Actor {
        client_id: &principal.client_id,
        kind: principal.kind.as_str(),
        trace_id: "",
    }
}

fn client_to_proto(c: &Client) -> pb::Client {
    pb::Client {
        client_id: c.client_id.clone(),
        kind: c.kind.to_proto(),
        display_name: c.display_name.clone(),
        scopes: c.scopes.clone(),
        organization: c
            .organization
            .as_ref()
            .map(|u| u.as_str().to_string())
            .unwrap_or_default(),
        public_key: match &c.auth {
            ClientAuth::PublicKey(pk) => pk.to_vec(),
            ClientAuth::Secret(_) => Vec::new(),
        },
        has_secret: matches!(c.auth, ClientAuth::Secret(_)),
        disabled: c.disabled,
        created_at: c.created_at,
        enforcement_certificate: c.enforcement_certificate.clone().unwrap_or_default(),
    }
}

fn key_to_proto(r: IssuerKeyRecord) -> pb::IssuerKey {
    pb::IssuerKey {
        key: Some(r.key),
        registered_at: r.registered_at,
    }
}

fn anchor_to_proto(a: AnchorRecord) -> pb::PartnerAnchor {
    pb::PartnerAnchor {
        region: a.region,
        kid: a.kid,
        public_key: a.public_key,
        pinned_at: a.pinned_at,
        endpoint: a.endpoint,
    }
}

#[tonic::async_trait]
impl IdentityService for IdentityApi {
    #[tracing::instrument(skip_all, fields(rpc = "RegisterClient"))]
    async fn register_client(
        &self,
        request: Request<pb::RegisterClientRequest>,
    ) -> Result<Response<pb::RegisterClientResponse>, Status> {
        let principal = Principal::from_request(&request)?.clone();
        let req = request.get_ref();
        // The stored request hash excludes the secret: a replay carries the same secret
        // anyway, and secrets never reach the database in clear.
        let mut hashed = req.clone();
        hashed.client_secret = String::new();
        let key = IdempotencyKey::new(
            "identity.RegisterClient",
            &principal.client_id,
            &req.idempotency_key,
            &hashed.encode_to_vec(),
        )
        .map_err(|e| {
            status::invalid_argument(
                "IDEMPOTENCY_KEY_INVALID",
                e.to_string(),
                [FieldViolation::new("idempotency_key", e.to_string())],
            )
        })?;
        let registration = Registration {
            client_id: &req.client_id,
            kind: req.kind,
            display_name: &req.display_name,
            scopes: &req.scopes,
            organization: &req.organization,
            public_key: &req.public_key,
            client_secret: &req.client_secret,
            enforcement_certificate: &req.enforcement_certificate,
        };
        let encode = |c: &Client| {
            pb::RegisterClientResponse {
                client: Some(client_to_proto(c)),
            }
            .encode_to_vec()
        };
        let outcome = self
            .inner
            .register_client(
                &registration,
                actor(&request, &principal),
                key.as_ref(),
                &encode,
            )
            .await?;
        Ok(Response::new(match outcome {
            Outcome::Done(c) => pb::RegisterClientResponse {
                client: Some(client_to_proto(&c)),
            },
            Outcome::Replayed(bytes) => decode_replay(&bytes)?,
        }))
    }

    async fn get_client(
        &self,
        request: Request<pb::GetClientRequest>,
    ) -> Result<Response<pb::GetClientResponse>, Status> {
        let c = self.inner.client(&request.get_ref().client_id).await?;
        Ok(Response::new(pb::GetClientResponse {
            client: Some(client_to_proto(&c)),
        }))
    }

    async fn list_clients(
        &self,
        request: Request<pb::ListClientsRequest>,
    ) -> Result<Response<pb::ListClientsResponse>, Status> {
        let req = request.get_ref();
        let after = page::decode_token(&req.page_token).map_err(|e| {
            status::invalid_argument(
                "PAGE_TOKEN_INVALID",
                e.to_string(),
                [FieldViolation::new("page_token", e.to_string())],
            )
        })?;
        let size = page::page_size(req.page_size);
        let clients = self.inner.clients(&after, size).await?;
        let next_page_token = match clients.last() {
            Some(last) if clients.len() == size as usize => page::encode_token(&last.client_id),
            _ => String::new(),
        };
        Ok(Response::new(pb::ListClientsResponse {
            clients: clients.iter().map(client_to_proto).collect(),
            next_page_token,
        }))
    }

    async fn disable_client(
        &self,
        request: Request<pb::DisableClientRequest>,
    ) -> Result<Response<pb::DisableClientResponse>, Status> {
        let principal = Principal::from_request(&request)?.clone();
        let req = request.get_ref();
        let c = self
            .inner
            .disable_client(&req.client_id, &req.reason, actor(&request, &principal))
            .await?;
        Ok(Response::new(pb::DisableClientResponse {
            client: Some(client_to_proto(&c)),
        }))
    }

    #[tracing::instrument(skip_all, fields(rpc = "IssueToken", client_id = %request.get_ref().client_id))]
    async fn issue_token(
        &self,
        request: Request<pb::IssueTokenRequest>,
    ) -> Result<Response<pb::IssueTokenResponse>, Status> {
        let req = request.get_ref();
        let credential = match &req.credential {
            Some(pb::issue_token_request::Credential::ClientAssertion(a)) => {
                Credential::Assertion(a)
            }
            Some(pb::issue_token_request::Credential::ClientSecret(s)) => Credential::Secret(s),
            None => {
                return Err(status::invalid_argument(
                    "CLIENT_CREDENTIAL_MISSING",
                    "a token request needs a client assertion (or, in dev, a client secret)",
                    [FieldViolation::new("client_assertion", "required")],
                ));
            }
        };
        let issued = self
            .inner
            .issue_token(&req.client_id, credential, &req.scopes, &req.audience)
            .await?;
        Ok(Response::new(pb::IssueTokenResponse {
            access_token: issued.token,
            token_type: "Bearer".to_string(),
            expires_in: issued.expires_in,
            scopes: issued.scopes,
        }))
    }

    async fn get_jwks(
        &self,
        _request: Request<pb::GetJwksRequest>,
    ) -> Result<Response<pb::GetJwksResponse>, Status> {
        let jwks_json = serde_json::to_string(self.inner.jwks()).map_err(|_| {
            status::error(
                Code::Internal,
                "INTERNAL",
                "the key set could not be encoded",
            )
        })?;
        Ok(Response::new(pb::GetJwksResponse { jwks_json }))
    }

    #[tracing::instrument(skip_all, fields(rpc = "RegisterIssuerKey", kid = %request.get_ref().kid))]
    async fn register_issuer_key(
        &self,
        request: Request<pb::RegisterIssuerKeyRequest>,
    ) -> Result<Response<pb::RegisterIssuerKeyResponse>, Status> {
        let principal = Principal::from_request(&request)?.clone();
        let req = request.get_ref();
        let (key, retired) = self
            .inner
            .register_issuer_key(
                &principal,
                &KeyRegistration {
                    issuer: &req.issuer,
                    kid: &req.kid,
                    public_key: &req.public_key,
                    kinds: &req.kinds,
                    not_after: req.not_after,
                },
                actor(&request, &principal),
            )
            .await?;
        Ok(Response::new(pb::RegisterIssuerKeyResponse {
            key: Some(key_to_proto(key)),
            retired: retired.map(key_to_proto),
        }))
    }

    async fn revoke_issuer_key(
        &self,
        request: Request<pb::RevokeIssuerKeyRequest>,
    ) -> Result<Response<pb::RevokeIssuerKeyResponse>, Status> {
        let principal = Principal::from_request(&request)?.clone();
        let req = request.get_ref();
        let key = self
            .inner
            .revoke_issuer_key(&req.kid, &req.reason, actor(&request, &principal))
            .await?;
        Ok(Response::new(pb::RevokeIssuerKeyResponse {
            key: Some(key_to_proto(key)),
        }))
    }

    async fn list_issuer_keys(
        &self,
        request: Request<pb::ListIssuerKeysRequest>,
    ) -> Result<Response<pb::ListIssuerKeysResponse>, Status> {
        let keys = self.inner.issuer_keys(&request.get_ref().issuer).await?;
        Ok(Response::new(pb::ListIssuerKeysResponse {
            keys: keys.into_iter().map(key_to_proto).collect(),
        }))
    }

    async fn get_trust_list(
        &self,
        _request: Request<pb::GetTrustListRequest>,
    ) -> Result<Response<pb::GetTrustListResponse>, Status> {
        let envelope = self.inner.trust_list().await?;
        let (anchor_kid, anchor_public_key) = self.inner.anchor_public();
        Ok(Response::new(pb::GetTrustListResponse {
            trust_list: Some(envelope),
            anchor_kid,
            anchor_public_key: anchor_public_key.to_vec(),
        }))
    }

    async fn pin_partner_anchor(
        &self,
        request: Request<pb::PinPartnerAnchorRequest>,
    ) -> Result<Response<pb::PinPartnerAnchorResponse>, Status> {
        let principal = Principal::from_request(&request)?.clone();
        let Some(a) = request.get_ref().anchor.as_ref() else {
            return Err(status::invalid_argument(
                "ANCHOR_INVALID",
                "the partner anchor is required",
                [FieldViolation::new("anchor", "required")],
            ));
        };
        let anchor = self
            .inner
            .pin_anchor(
                &a.region,
                &a.kid,
                &a.public_key,
                &a.endpoint,
                actor(&request, &principal),
            )
            .await?;
        Ok(Response::new(pb::PinPartnerAnchorResponse {
            anchor: Some(anchor_to_proto(anchor)),
        }))
    }

    async fn list_partner_anchors(
        &self,
        _request: Request<pb::ListPartnerAnchorsRequest>,
    ) -> Result<Response<pb::ListPartnerAnchorsResponse>, Status> {
        let anchors = self.inner.anchors().await?;
        Ok(Response::new(pb::ListPartnerAnchorsResponse {
            anchors: anchors.into_iter().map(anchor_to_proto).collect(),
        }))
    }

    async fn import_partner_trust_list(
        &self,
        request: Request<pb::ImportPartnerTrustListRequest>,
    ) -> Result<Response<pb::ImportPartnerTrustListResponse>, Status> {
        let principal = Principal::from_request(&request)?.clone();
        let Some(signed) = request.get_ref().trust_list.as_ref() else {
            return Err(status::invalid_argument(
                "TRUST_LIST_MISSING",
                "the signed trust list is required",
                [FieldViolation::new("trust_list", "required")],
            ));
        };
        let list = self
            .inner
            .import_partner_trust_list(signed, actor(&request, &principal))
            .await?;
        Ok(Response::new(pb::ImportPartnerTrustListResponse {
            region: list.region,
            sequence: list.sequence,
            key_count: list.keys.len() as u32,
        }))
    }

    async fn get_partner_trust_list(
        &self,
        request: Request<pb::GetPartnerTrustListRequest>,
    ) -> Result<Response<pb::GetPartnerTrustListResponse>, Status> {
        let (envelope, imported_at) = self
            .inner
            .partner_trust_list(&request.get_ref().region)
            .await?;
        Ok(Response::new(pb::GetPartnerTrustListResponse {
            trust_list: Some(envelope),
            imported_at,
        }))
    }
}

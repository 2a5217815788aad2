//! The identity service's operations: validation, then the store, then the answer.
//! The gRPC and HTTP adapters in `api` call these and only convert.

use std::sync::{Arc, Mutex};

use credmesh_auth::{AccessClaims, Jwks, Principal, PrincipalKind, TokenSigner, TokenValidator};
use credmesh_credential::{
    envelope::{self, Context},
    keys::IssuerKey,
};
use credmesh_proto::{
    credential::v1::{Envelope, KeyStatus, TrustList},
    prost::Message as _,
    status::FieldViolation,
};
use credmesh_runtime::Clock;
use credmesh_store::idempotency::{IdempotencyKey, Outcome};
use credmesh_uscc::Region;

use crate::{
    domain::{
        client::{Client, ClientAuth, Registration, hash_secret},
        issuer::{self, KeyRegistration, NewIssuerKey},
    },
    error::IdentityError,
    store::{Actor, AnchorRecord, EncodeResponse, IdentityStore, IssuerKeyRecord},
};

/// The audience of client assertions.
pub const ASSERTION_AUDIENCE: &str = "credmesh-identity";
/// The audience tokens get when the client asks for none: every service of the region.
pub const DEFAULT_AUDIENCE: &str = "credmesh";

/// The issuer (`iss`) of access tokens in `region`.
pub fn token_issuer(region: Region) -> String {
    credmesh_auth::issuer_for_region(region.code())
}

/// The URL of the token endpoint (`POST /v1/token`) under the deployment's public URL.
fn token_endpoint(public_url: &str) -> Option<String> {
    let base = public_url.trim().trim_end_matches('/');
    (!base.is_empty()).then(|| format!("{base}/v1/token"))
}

/// The identity service.
pub struct Identity {
    pub(crate) region: Region,
    pub(crate) store: Arc<dyn IdentityStore>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) signer: Arc<TokenSigner>,
    pub(crate) jwks: Jwks,
    pub(crate) anchor: IssuerKey,
    pub(crate) allow_secrets: bool,
    pub(crate) token_ttl: i64,
    pub(crate) public_url: String,
    /// The URL of the OAuth token endpoint under `public_url`, when there is one: client
    /// assertions may name it as their audience.
    token_endpoint: Option<String>,
    pub(crate) validator: Arc<TokenValidator>,
    trust_cache: Mutex<Option<CachedTrustList>>,
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Identity")
            .field("region", &self.region)
            .field("anchor", &self.anchor.kid())
            .finish_non_exhaustive()
    }
}

#[derive(Clone)]
struct CachedTrustList {
    sequence: u64,
    issued_at: i64,
    envelope: Envelope,
}

/// A freshly issued access token.
#[derive(Clone, Debug)]
pub struct IssuedToken {
    /// The compact JWS.
    pub token: String,
    /// Seconds to expiry.
    pub expires_in: u32,
    /// Granted scopes.
    pub scopes: Vec<String>,
}

/// How a client proves itself when asking for a token.
#[derive(Clone, Debug)]
pub enum Credential<'a> {
    /// An RFC 7523-style client assertion.
    Assertion(&'a str),
    /// A client secret.
    Secret(&'a str),
}

impl Identity {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        region: Region,
        store: Arc<dyn IdentityStore>,
        clock: Arc<dyn Clock>,
        signer: Arc<TokenSigner>,
        jwks: Jwks,
        anchor: IssuerKey,
        allow_secrets: bool,
        token_ttl: i64,
        public_url: String,
        validator: Arc<TokenValidator>,
    ) -> Self {
        Self {
            region,
            store,
            clock,
            signer,
            jwks,
            anchor,
            allow_secrets,
            token_ttl,
            token_endpoint: token_endpoint(&public_url),
            public_url,
            validator,
            trust_cache: Mutex::new(None),
        }
    }

    /// The region this deployment serves.
    pub fn region(&self) -> Region {
        self.region
    }

    /// The token JWKS.
    pub fn jwks(&self) -> &Jwks {
        &self.jwks
    }

    /// The anchor key id and raw public key.
    pub fn anchor_public(&self) -> (String, [u8; 32]) {
        (
            self.anchor.kid().to_string(),
            self.anchor.public_key_bytes(),
        )
    }

    /// Registers a client.
    pub async fn register_client(
        &self,
        registration: &Registration<'_>,
        actor: Actor<'_>,
        key: Option<&IdempotencyKey>,
        encode: EncodeResponse<'_, Client>,
    ) -> Result<Outcome<Client>, IdentityError> {
        let client = registration
            .validate(self.allow_secrets, self.clock.now())
            .map_err(|v| {
                IdentityError::invalid(
                    "CLIENT_INVALID",
                    format!("the client registration has {} invalid field(s)", v.len()),
                    v,
                )
            })?;
        let outcome = self
            .store
            .register_client(&client, actor, key, encode)
            .await?;
        if let Outcome::Done(c) = &outcome {
            tracing::info!(client_id = %c.client_id, kind = c.kind.as_str(), "client registered");
        }
        Ok(outcome)
    }

    /// One client, or NOT_FOUND.
    pub async fn client(&self, client_id: &str) -> Result<Client, IdentityError> {
        self.store
            .get_client(client_id)
            .await?
            .ok_or_else(|| IdentityError::ClientNotFound(client_id.to_string()))
    }

    /// A page of clients after `after`.
    pub async fn clients(&self, after: &str, limit: u32) -> Result<Vec<Client>, IdentityError> {
        self.store.list_clients(after, limit).await
    }

    /// Disables a client; its tokens are refused by this process at once and by other
    /// services when they next refresh (tokens are short-lived regardless).
    pub async fn disable_client(
        &self,
        client_id: &str,
        reason: &str,
        actor: Actor<'_>,
    ) -> Result<Client, IdentityError> {
        let reason = required_reason(reason)?;
        let client = self
            .store
            .disable_client(client_id, reason, actor, self.clock.now())
            .await?;
        self.validator.deny_client(client_id);
        tracing::info!(client_id, "client disabled");
        Ok(client)
    }

    /// Issues an access token by client credentials.
    pub async fn issue_token(
        &self,
        client_id: &str,
        credential: Credential<'_>,
        scopes: &[String],
        audience: &str,
    ) -> Result<IssuedToken, IdentityError> {
        let now = self.clock.now();
        let audience = if audience.is_empty() {
            DEFAULT_AUDIENCE
        } else {
            audience
        };
        if audience.len() > 64
            || !audience
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-.".contains(&b))
        {
            return Err(IdentityError::invalid(
                "AUDIENCE_INVALID",
                "the audience is a service name such as 'license', or 'credmesh'",
                vec![FieldViolation::new(
                    "audience",
                    "lowercase letters, digits, '-' and '.' only, at most 64",
                )],
            ));
        }
        let failed = |reason: &'static str| {
            tracing::warn!(client_id, reason, "token request refused");
            IdentityError::AuthenticationFailed { reason }
        };
        let client = self
            .store
            .get_client(client_id)
            .await?
            .ok_or_else(|| failed("CLIENT_AUTH_FAILED"))?;
        match (&client.auth, credential) {
            (ClientAuth::PublicKey(pk), Credential::Assertion(assertion)) => {
                let claims = credmesh_auth::verify_client_assertion(
                    assertion,
                    client_id,
                    pk,
                    now,
                    self.token_endpoint.as_deref(),
                )
                .map_err(|_| failed("CLIENT_AUTH_FAILED"))?;
                if !self
                    .store
                    .use_assertion(&claims.jti, client_id, claims.exp, now)
                    .await?
                {
                    return Err(failed("CLIENT_ASSERTION_REPLAYED"));
                }
            }
            (ClientAuth::Secret(hash), Credential::Secret(secret)) if self.allow_secrets => {
                if !constant_time_eq(hash, &hash_secret(client_id, secret)) {
                    return Err(failed("CLIENT_AUTH_FAILED"));
                }
            }
            _ => return Err(failed("CLIENT_AUTH_FAILED")),
        }
        if client.disabled {
            return Err(IdentityError::ClientDisabled(client_id.to_string()));
        }
        let granted: Vec<String> = if scopes.is_empty() {
            client.scopes.clone()
        } else {
            for s in scopes {
                if !client.scopes.contains(s) {
                    return Err(IdentityError::ScopeNotGranted(s.clone()));
                }
            }
            scopes.to_vec()
        };
        let claims = AccessClaims {
            iss: token_issuer(self.region),
            sub: client.client_id.clone(),
            aud: audience.to_string(),
            exp: now + self.token_ttl,
            iat: now,
            nbf: now,
            jti: random_id(),
            scope: granted.join(" "),
            kind: client.kind,
            org: client.organization.as_ref().map(|u| u.as_str().to_string()),
            region: self.region.code().to_string(),
            cert: client.enforcement_certificate.clone(),
        };
        let token = self
            .signer
            .sign(&claims)
            .map_err(|e| IdentityError::Internal(anyhow::anyhow!("signing a token: {e}")))?;
        tracing::info!(client_id, audience, "token issued");
        Ok(IssuedToken {
            token,
            expires_in: self.token_ttl as u32,
            scopes: granted,
        })
    }

    /// Registers an issuer key for `principal`'s issuer.
    pub async fn register_issuer_key(
        &self,
        principal: &Principal,
        registration: &KeyRegistration<'_>,
        actor: Actor<'_>,
    ) -> Result<(IssuerKeyRecord, Option<IssuerKeyRecord>), IdentityError> {
        let now = self.clock.now();
        let key: NewIssuerKey = issuer::validate_issuer_key(self.region, registration, now)
            .map_err(|v| {
                IdentityError::invalid(
                    "ISSUER_KEY_INVALID",
                    "the issuer key registration is invalid",
                    v,
                )
            })?;
        if principal.kind == PrincipalKind::Service {
            let service = principal.client_id.split('.').next().unwrap_or_default();
            let expected = format!("{}/{}", self.region.code(), service);
            if expected != key.issuer {
                return Err(IdentityError::NotOwnIssuer {
                    expected,
                    found: key.issuer,
                });
            }
        }
        let trusted = key.into_trusted(self.region, now);
        let out = self.store.register_issuer_key(trusted, actor, now).await?;
        tracing::info!(
            kid = registration.kid,
            issuer = registration.issuer,
            retired = ?out.1.as_ref().map(|r| &r.key.kid),
            "issuer key registered"
        );
        Ok(out)
    }

    /// Revokes an issuer key.
    pub async fn revoke_issuer_key(
        &self,
        kid: &str,
        reason: &str,
        actor: Actor<'_>,
    ) -> Result<IssuerKeyRecord, IdentityError> {
        let reason = required_reason(reason)?;
        let rec = self
            .store
            .revoke_issuer_key(kid, reason, actor, self.clock.now())
            .await?;
        tracing::warn!(kid, "issuer key revoked");
        Ok(rec)
    }

    /// Issuer keys, optionally of one issuer.
    pub async fn issuer_keys(&self, issuer: &str) -> Result<Vec<IssuerKeyRecord>, IdentityError> {
        self.store
            .list_issuer_keys((!issuer.is_empty()).then_some(issuer))
            .await
    }

    /// The region's trust list, signed by the anchor key. Re-signed only when the key
    /// registry changed or half the list's lifetime has passed, so a busy public
    /// endpoint does not sign per request.
    pub async fn trust_list(&self) -> Result<Envelope, IdentityError> {
        let now = self.clock.now();
        let (sequence, keys) = self.store.trust_snapshot().await?;
        if let Ok(guard) = self.trust_cache.lock()
            && let Some(c) = guard.as_ref()
            && c.sequence == sequence
            && now - c.issued_at < issuer::TRUST_LIST_LIFETIME_SECS / 2
        {
            return Ok(c.envelope.clone());
        }
        let list = issuer::trust_list(self.region, keys, sequence, now, &self.public_url);
        let envelope = envelope::seal(Context::TrustList, list.encode_to_vec(), &self.anchor);
        if let Ok(mut guard) = self.trust_cache.lock() {
            *guard = Some(CachedTrustList {
                sequence,
                issued_at: now,
                envelope: envelope.clone(),
            });
        }
        Ok(envelope)
    }

    /// Pins a partner region's anchor.
    pub async fn pin_anchor(
        &self,
        region: &str,
        kid: &str,
        public_key: &[u8],
        endpoint: &str,
        actor: Actor<'_>,
    ) -> Result<AnchorRecord, IdentityError> {
        let mut v = Vec::new();
        let partner = Region::from_code(region).filter(|r| *r != Region::Other);
        match partner {
            None => v.push(FieldViolation::new(
                "anchor.region",
                "a region is SH, JS, ZJ or AH",
            )),
            Some(r) if r == self.region => v.push(FieldViolation::new(
                "anchor.region",
                "this is the deployment's own region; pin partner regions only",
            )),
            Some(_) => {}
        }
        if kid.is_empty() || kid.len() > 96 {
            v.push(FieldViolation::new(
                "anchor.kid",
                "the anchor key id is 1 to 96 characters",
            ));
        }
        let valid_key = <[u8; 32]>::try_from(public_key)
            .ok()
            .filter(|k| ed25519_dalek::VerifyingKey::from_bytes(k).is_ok());
        if valid_key.is_none() {
            v.push(FieldViolation::new(
                "anchor.public_key",
                "the anchor public key must be a raw 32-byte Ed25519 public key",
            ));
        }
        if endpoint.len() > 512 {
            v.push(FieldViolation::new(
                "anchor.endpoint",
                "the endpoint is at most 512 characters",
            ));
        }
        if !v.is_empty() {
            return Err(IdentityError::invalid(
                "ANCHOR_INVALID",
                "the partner anchor is invalid",
                v,
            ));
        }
        let anchor = AnchorRecord {
            region: partner.map(|r| r.code().to_string()).unwrap_or_default(),
            kid: kid.to_string(),
            public_key: public_key.to_vec(),
            endpoint: endpoint.to_string(),
            pinned_at: self.clock.now(),
        };
        self.store.pin_anchor(&anchor, actor).await?;
        tracing::info!(region = %anchor.region, kid, "partner anchor pinned");
        Ok(anchor)
    }

    /// The pinned partner anchors.
    pub async fn anchors(&self) -> Result<Vec<AnchorRecord>, IdentityError> {
        self.store.list_anchors().await
    }

    /// Imports a partner's signed trust list after checking it against the pinned anchor.
    pub async fn import_partner_trust_list(
        &self,
        signed: &Envelope,
        actor: Actor<'_>,
    ) -> Result<TrustList, IdentityError> {
        let now = self.clock.now();
        let anchors = self.store.list_anchors().await?;
        let anchor = anchors
            .iter()
            .find(|a| a.kid == signed.kid)
            .ok_or_else(|| IdentityError::TrustListRejected {
                reason: "TRUST_LIST_UNKNOWN_ANCHOR",
                message: format!(
                    "the trust list is signed by key '{}', which is not a pinned partner anchor",
                    truncate(&signed.kid, 96)
                ),
            })?;
        let key = <[u8; 32]>::try_from(anchor.public_key.as_slice())
            .ok()
            .and_then(|k| ed25519_dalek::VerifyingKey::from_bytes(&k).ok())
            .ok_or_else(|| {
                IdentityError::Internal(anyhow::anyhow!("stored anchor key is invalid"))
            })?;
        let list: TrustList = envelope::open(Context::TrustList, signed, &key).map_err(|e| {
            IdentityError::TrustListRejected {
                reason: "TRUST_LIST_SIGNATURE",
                message: format!(
                    "the trust list does not verify against the pinned anchor of {}: {e}",
                    anchor.region
                ),
            }
        })?;
        if list.region != anchor.region {
            return Err(IdentityError::TrustListRejected {
                reason: "TRUST_LIST_REGION",
                message: format!(
                    "the anchor of {} signed a trust list for region '{}'",
                    anchor.region,
                    truncate(&list.region, 8)
                ),
            });
        }
        if let Some(k) = list.keys.iter().find(|k| k.region != anchor.region) {
            return Err(IdentityError::TrustListRejected {
                reason: "TRUST_LIST_FOREIGN_KEY",
                message: format!(
                    "the trust list of {} carries key '{}' of another region; a region vouches only for its own issuers",
                    anchor.region,
                    truncate(&k.kid, 96)
                ),
            });
        }
        const MAX_SKEW: i64 = 300;
        if list.issued_at > now + MAX_SKEW {
            return Err(IdentityError::TrustListRejected {
                reason: "TRUST_LIST_FROM_FUTURE",
                message: format!(
                    "the trust list of {} claims to be issued {} s in the future, beyond the tolerated clock skew of {MAX_SKEW} s",
                    anchor.region,
                    list.issued_at - now
                ),
            });
        }
        self.store
            .save_partner_trust_list(
                &anchor.region,
                &signed.encode_to_vec(),
                list.sequence,
                actor,
                now,
            )
            .await?;
        tracing::info!(region = %anchor.region, sequence = list.sequence, keys = list.keys.len(), "partner trust list imported");
        Ok(list)
    }

    /// A partner's imported trust list as it was signed, with its import time.
    pub async fn partner_trust_list(&self, region: &str) -> Result<(Envelope, i64), IdentityError> {
        if region.parse::<Region>().is_err() {
            return Err(IdentityError::invalid(
                "REGION_UNKNOWN",
                format!(
                    "'{}' is not a region: name SH, JS, ZJ or AH",
                    truncate(region, 8)
                ),
                vec![FieldViolation::new("region", "one of SH, JS, ZJ, AH")],
            ));
        }
        let (bytes, at) = self
            .store
            .partner_trust_list(region)
            .await?
            .ok_or_else(|| IdentityError::AnchorNotPinned(truncate(region, 8)))?;
        let envelope = Envelope::decode(bytes.as_slice())
            .map_err(|e| IdentityError::Internal(anyhow::anyhow!("stored trust list: {e}")))?;
        Ok((envelope, at))
    }

    /// Whether an issuer key may still verify (for the credential JWKS).
    pub fn publishable(status: i32) -> bool {
        status == KeyStatus::Active as i32 || status == KeyStatus::Retired as i32
    }
}

fn required_reason(reason: &str) -> Result<&str, IdentityError> {
    let reason = reason.trim();
    if reason.is_empty() || reason.chars().count() > 500 {
        return Err(IdentityError::invalid(
            "REASON_REQUIRED",
            "a reason (1 to 500 characters) is required for the audit log",
            vec![FieldViolation::new(
                "reason",
                "give a reason of 1 to 500 characters",
            )],
        ));
    }
    Ok(reason)
}

fn truncate(s: &str, max: usize) -> String {
    s.chars().take(max).collect()
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// 128 random bits, base64url.
pub fn random_id() -> String {
    use base64::Engine as _;
    let mut bytes = [0u8; 16];
    if getrandom::fill(&mut bytes).is_err() {
        // The OS random source failing is not recoverable; refuse to mint predictable ids.
        panic!("the operating system's random source failed");
    }
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

//! Validating access tokens locally with cached keys.
//!
//! Validation is on every request's hot path, so keys are decoded once per `kid` and
//! kept; a request takes a read lock, verifies, checks claims against the injected
//! clock and builds the [`Principal`]. Only an unknown `kid` reaches the key source,
//! and at most once per `min_refetch_interval`, so a flood of tokens naming made-up keys
//! cannot hammer the identity service.
//!
//! A client sends the same token with every call for its whole lifetime, so a token
//! whose signature verified is remembered (by the SHA-256 of its text, never the text)
//! with its claims and the [`Principal`] built from them: the next call skips the
//! Ed25519 check, the most expensive step, and shares that principal instead of building
//! another. Every call still checks the expiry, and that the signing key is installed (a
//! key dropped from the key set invalidates its tokens at once) and the deny lists do not
//! name the client or the token. Those last two change rarely, so the validator counts
//! their changes (a generation) and a remembered token records the generation it was
//! last checked against: while nothing changed, the answer cannot have either, and the
//! call skips the lookups.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard, Weak};
use std::time::Duration;

use base64::Engine as _;
use ed25519_dalek::{Signature, VerifyingKey};
use jsonwebtoken::Algorithm;
use jsonwebtoken::errors::ErrorKind;
use sha2::Digest as _;
use tokio::sync::{Mutex, watch};

use crate::{AccessClaims, AuthError, JwksSource, Principal};

/// A token whose signature verified: the key that signed it, its claims (checked again
/// on every use) and the principal built from them once, shared by every call with it.
#[derive(Debug)]
struct Remembered {
    kid: String,
    claims: AccessClaims,
    principal: Arc<Principal>,
    /// The validator's generation when the key and the deny lists last passed.
    checked: AtomicU64,
}

/// The current time in Unix seconds; injected so tests move time instead of sleeping.
pub type Clock = Arc<dyn Fn() -> i64 + Send + Sync>;

/// A [`Clock`] reading the system time.
pub fn system_clock() -> Clock {
    Arc::new(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
            .unwrap_or(0)
    })
}

/// What a [`TokenValidator`] accepts and how it keeps its keys fresh.
#[derive(Clone)]
pub struct ValidatorConfig {
    /// The only accepted `iss`: `credmesh-identity:<region>`.
    pub issuer: String,
    /// Accepted `aud` values; any one of them, for example `["license", "credmesh"]`.
    pub audiences: Vec<String>,
    /// Clock skew allowed on `exp` and `nbf`. Default 30 s.
    pub leeway: Duration,
    /// How often [`TokenValidator::spawn_refresh`] refetches the key set. Default 5 min.
    pub refresh_interval: Duration,
    /// The least time between two fetches caused by unknown key ids. Default 10 s.
    pub min_refetch_interval: Duration,
    /// How long a token id given to [`TokenValidator::deny_token`] is remembered; it
    /// must exceed the longest token lifetime. Default 24 h.
    pub denied_token_retention: Duration,
    /// The time source. Default: system time.
    pub clock: Clock,
}

impl ValidatorConfig {
    /// Defaults for a validator accepting tokens from `issuer` for any of `audiences`.
    pub fn new<A: Into<String>>(
        issuer: impl Into<String>,
        audiences: impl IntoIterator<Item = A>,
    ) -> Self {
        ValidatorConfig {
            issuer: issuer.into(),
            audiences: audiences.into_iter().map(Into::into).collect(),
            leeway: Duration::from_secs(30),
            refresh_interval: Duration::from_secs(300),
            min_refetch_interval: Duration::from_secs(10),
            denied_token_retention: Duration::from_secs(24 * 3600),
            clock: system_clock(),
        }
    }

    /// The same configuration reading time from `clock`.
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }
}

impl std::fmt::Debug for ValidatorConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ValidatorConfig")
            .field("issuer", &self.issuer)
            .field("audiences", &self.audiences)
            .field("leeway", &self.leeway)
            .field("refresh_interval", &self.refresh_interval)
            .field("min_refetch_interval", &self.min_refetch_interval)
            .field("denied_token_retention", &self.denied_token_retention)
            .finish_non_exhaustive()
    }
}

/// Validates access tokens locally with cached keys.
///
/// Create one per process with [`TokenValidator::new`], share the `Arc`, and call
/// [`spawn_refresh`](Self::spawn_refresh) once to keep keys fresh.
pub struct TokenValidator {
    source: Arc<dyn JwksSource>,
    config: ValidatorConfig,
    /// Keys decoded once per kid: the Ed25519 point is decompressed when the key set is
    /// installed, not on every request (jsonwebtoken would redo it per token).
    keys: RwLock<HashMap<String, VerifyingKey>>,
    /// Serialises fetches and remembers when the last one started.
    fetch: Mutex<Option<i64>>,
    denied_clients: RwLock<HashSet<String>>,
    /// Denied token ids and when they were denied.
    denied_tokens: RwLock<HashMap<String, i64>>,
    /// Tokens whose signature verified, by the SHA-256 of the token.
    verified: RwLock<HashMap<[u8; 32], Arc<Remembered>>>,
    /// Counts changes of the key set and the deny lists (see the module's notes).
    generation: AtomicU64,
    /// Dropped with the validator, which wakes and ends the refresh task at once.
    alive: watch::Sender<()>,
}

impl std::fmt::Debug for TokenValidator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenValidator")
            .field("config", &self.config)
            .field("kids", &read(&self.keys).keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

/// Key ids are echoed in errors and logs; a made-up one is cut to this many bytes.
const MAX_ECHOED_KID: usize = 64;

/// Verified tokens remembered at most (about 10 MB at the limit).
const MAX_REMEMBERED: usize = 65_536;

impl TokenValidator {
    /// A validator with no keys yet: the first token fetches them.
    pub fn new(source: Arc<dyn JwksSource>, config: ValidatorConfig) -> Arc<Self> {
        Arc::new(TokenValidator {
            source,
            config,
            keys: RwLock::new(HashMap::new()),
            fetch: Mutex::new(None),
            denied_clients: RwLock::new(HashSet::new()),
            denied_tokens: RwLock::new(HashMap::new()),
            verified: RwLock::new(HashMap::new()),
            generation: AtomicU64::new(0),
            alive: watch::channel(()).0,
        })
    }

    /// The validator a credmesh service checks its callers' tokens with: identity's
    /// keys over `identity`, refreshed in the background (call within a Tokio runtime),
    /// accepting tokens of `region`'s identity for `service` (`license`, …) or for every
    /// service (`credmesh`).
    pub fn for_service(
        service: &str,
        region: &str,
        identity: tonic::transport::Channel,
    ) -> Arc<Self> {
        let validator = TokenValidator::new(
            Arc::new(crate::GrpcJwksSource::new(identity)),
            ValidatorConfig::new(crate::issuer_for_region(region), [service, "credmesh"]),
        );
        validator.spawn_refresh();
        validator
    }

    /// The configuration this validator was built with.
    pub fn config(&self) -> &ValidatorConfig {
        &self.config
    }

    /// The caller a token speaks for, after checking signature, issuer, audience,
    /// validity period and the deny lists.
    pub async fn validate(&self, token: &str) -> Result<Arc<Principal>, AuthError> {
        if let Some(decided) = self.validate_now(token) {
            return decided;
        }
        // The token names a key this validator does not hold: fetch the key set (at
        // most every `min_refetch_interval`), then verify with what it brought.
        let generation = self.generation.load(Ordering::Acquire);
        let kid = key_id(token)?;
        self.refetch_for_unknown(&kid).await?;
        let claims = self
            .verify_with_known_key(token, &kid)
            .ok_or_else(|| AuthError::UnknownKey(echoable(&kid)))??;
        self.accept(digest_of(token), kid, claims, generation)
    }

    /// [`validate`](Self::validate) without waiting: the answer, or `None` when the
    /// token names a key this validator does not hold yet, which only `validate` can
    /// fetch. A remembered token costs a hash and a map lookup; any other token one
    /// signature check.
    pub fn validate_now(&self, token: &str) -> Option<Result<Arc<Principal>, AuthError>> {
        let digest = digest_of(token);
        // Read before any check, so a change during them makes the next call look again.
        let generation = self.generation.load(Ordering::Acquire);
        let remembered = read(&self.verified).get(&digest).cloned();
        if let Some(known) = remembered {
            if known.checked.load(Ordering::Relaxed) == generation {
                // Issuer and audience passed before and cannot change; only time can.
                return Some(
                    self.check_time(&known.claims)
                        .map(|()| known.principal.clone()),
                );
            }
            if read(&self.keys).contains_key(&known.kid) {
                return Some(self.check_claims(&known.claims).map(|()| {
                    known.checked.store(generation, Ordering::Relaxed);
                    known.principal.clone()
                }));
            }
        }
        let kid = match key_id(token) {
            Ok(kid) => kid,
            Err(err) => return Some(Err(err)),
        };
        let claims = match self.verify_with_known_key(token, &kid)? {
            Ok(claims) => claims,
            Err(err) => return Some(Err(err)),
        };
        Some(self.accept(digest, kid, claims, generation))
    }

    /// Checks the claims of a token (by its digest) whose signature verified and
    /// remembers it, checked as of `generation`.
    fn accept(
        &self,
        digest: [u8; 32],
        kid: String,
        claims: AccessClaims,
        generation: u64,
    ) -> Result<Arc<Principal>, AuthError> {
        self.check_claims(&claims)?;
        let principal = Arc::new(Principal::from(claims.clone()));
        self.remember(
            digest,
            Remembered {
                kid,
                claims,
                principal: principal.clone(),
                checked: AtomicU64::new(generation),
            },
        );
        Ok(principal)
    }

    /// Remembers a verified token until it expires; past [`MAX_REMEMBERED`] tokens the
    /// expired ones are dropped, and if that is not enough, all of them.
    fn remember(&self, digest: [u8; 32], known: Remembered) {
        let mut verified = write(&self.verified);
        if verified.len() >= MAX_REMEMBERED {
            let now = (self.config.clock)();
            let leeway = secs(self.config.leeway);
            verified.retain(|_, k| k.claims.exp.saturating_add(leeway) >= now);
            if verified.len() >= MAX_REMEMBERED {
                verified.clear();
            }
        }
        verified.insert(digest, Arc::new(known));
    }

    /// Fetches the key set now and installs it (keys gone from the set are dropped).
    pub async fn refresh(&self) -> Result<(), AuthError> {
        let mut last_fetch = self.fetch.lock().await;
        *last_fetch = Some((self.config.clock)());
        let result = self.fetch_and_install().await;
        drop(last_fetch);
        self.prune_denied_tokens();
        result
    }

    /// Refreshes keys every `refresh_interval`, starting now. The task holds only a
    /// weak reference and ends as soon as the validator is dropped.
    pub fn spawn_refresh(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let weak: Weak<Self> = Arc::downgrade(self);
        let mut alive = self.alive.subscribe();
        let period = self.config.refresh_interval;
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(period);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = ticks.tick() => {}
                    // Err: the sender, owned by the validator, was dropped.
                    _ = alive.changed() => break,
                }
                let Some(validator) = weak.upgrade() else {
                    break;
                };
                if let Err(err) = validator.refresh().await {
                    tracing::warn!(reason = err.reason(), error = %err, "token key refresh failed");
                }
            }
            tracing::debug!("token key refresh stopped");
        })
    }

    /// Refuses every token of `client_id` from now on, even unexpired ones.
    pub fn deny_client(&self, client_id: &str) {
        write(&self.denied_clients).insert(client_id.to_owned());
        self.changed();
        tracing::info!(client_id, "client denied");
    }

    /// Accepts tokens of `client_id` again.
    pub fn allow_client(&self, client_id: &str) {
        write(&self.denied_clients).remove(client_id);
        self.changed();
    }

    /// Refuses the token with this `jti` for `denied_token_retention`.
    pub fn deny_token(&self, jti: &str) {
        let now = (self.config.clock)();
        write(&self.denied_tokens).insert(jti.to_owned(), now);
        self.changed();
    }

    /// Marks the key set or a deny list changed: remembered tokens are checked again.
    /// Called after the change is made, so a call that sees the new generation sees it.
    fn changed(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
    }

    fn verify_with_known_key(
        &self,
        token: &str,
        kid: &str,
    ) -> Option<Result<AccessClaims, AuthError>> {
        let key = *read(&self.keys).get(kid)?;
        Some(verify_compact(token, &key))
    }

    /// Checks what can change after a token verified: issuer and audience against this
    /// validator, the time window, and the deny lists.
    fn check_claims(&self, claims: &AccessClaims) -> Result<(), AuthError> {
        if claims.iss != self.config.issuer {
            return Err(AuthError::WrongIssuer);
        }
        if !self.config.audiences.contains(&claims.aud) {
            return Err(AuthError::WrongAudience {
                expected: self.config.audiences.clone(),
                found: claims.aud.clone(),
            });
        }
        self.check_time(claims)?;
        if read(&self.denied_clients).contains(&claims.sub) {
            return Err(AuthError::ClientDisabled(claims.sub.clone()));
        }
        if read(&self.denied_tokens).contains_key(&claims.jti) {
            return Err(AuthError::TokenRevoked);
        }
        Ok(())
    }

    /// Checks the time window, with the configured leeway.
    fn check_time(&self, claims: &AccessClaims) -> Result<(), AuthError> {
        let now = (self.config.clock)();
        let leeway = secs(self.config.leeway);
        if claims.exp.saturating_add(leeway) < now {
            return Err(AuthError::Expired);
        }
        if claims.nbf.saturating_sub(leeway) > now {
            return Err(AuthError::NotYetValid);
        }
        Ok(())
    }

    async fn refetch_for_unknown(&self, kid: &str) -> Result<(), AuthError> {
        let mut last_fetch = self.fetch.lock().await;
        if read(&self.keys).contains_key(kid) {
            // Another request fetched the key set while this one waited.
            return Ok(());
        }
        let now = (self.config.clock)();
        if let Some(last) = *last_fetch
            && now < last.saturating_add(secs(self.config.min_refetch_interval))
        {
            tracing::debug!(kid = %echoable(kid), "unknown key id; key set fetched recently");
            return Err(AuthError::UnknownKey(echoable(kid)));
        }
        *last_fetch = Some(now);
        tracing::debug!(kid = %echoable(kid), "unknown key id; fetching the key set");
        self.fetch_and_install().await
    }

    /// Call with the fetch lock held.
    async fn fetch_and_install(&self) -> Result<(), AuthError> {
        let jwks = self.source.fetch().await?;
        let mut fresh = HashMap::with_capacity(jwks.keys.len());
        for jwk in &jwks.keys {
            match jwk.verifying_key() {
                Ok(key) => {
                    fresh.insert(jwk.kid.clone(), key);
                }
                Err(err) => tracing::warn!(kid = %jwk.kid, error = %err, "skipped unusable key"),
            }
        }
        let mut keys = write(&self.keys);
        let changed = keys.len() != fresh.len() || fresh.keys().any(|k| !keys.contains_key(k));
        *keys = fresh;
        if changed {
            let kids: Vec<&str> = keys.keys().map(String::as_str).collect();
            tracing::info!(?kids, "installed token signing keys");
        }
        drop(keys);
        self.changed();
        Ok(())
    }

    fn prune_denied_tokens(&self) {
        let horizon =
            (self.config.clock)().saturating_sub(secs(self.config.denied_token_retention));
        write(&self.denied_tokens).retain(|_, denied_at| *denied_at >= horizon);
    }
}

/// Checks a compact JWS's Ed25519 signature over `header.payload` as received and
/// decodes its claims; the header was checked by the caller. Never quotes the token.
fn verify_compact(token: &str, key: &VerifyingKey) -> Result<AccessClaims, AuthError> {
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let malformed = |what: &str| AuthError::Malformed(what.into());
    let (signing_input, signature) = token
        .rsplit_once('.')
        .ok_or_else(|| malformed("not a compact jws"))?;
    let (_, payload) = signing_input
        .split_once('.')
        .ok_or_else(|| malformed("not a compact jws"))?;
    let signature = b64
        .decode(signature)
        .map_err(|_| malformed("a part is not base64url"))?;
    let signature = Signature::from_slice(&signature).map_err(|_| AuthError::BadSignature)?;
    key.verify_strict(signing_input.as_bytes(), &signature)
        .map_err(|_| AuthError::BadSignature)?;
    let payload = b64
        .decode(payload)
        .map_err(|_| malformed("a part is not base64url"))?;
    serde_json::from_slice(&payload)
        .map_err(|_| malformed("header or claims do not have the expected json shape"))
}

fn secs(d: Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX)
}

/// What a verified token is remembered by.
fn digest_of(token: &str) -> [u8; 32] {
    sha2::Sha256::digest(token.as_bytes()).into()
}

/// The key id in a token's header; the token is refused unless it is signed with EdDSA
/// and names its key.
fn key_id(token: &str) -> Result<String, AuthError> {
    let header = jsonwebtoken::decode_header(token).map_err(jwt_error)?;
    if header.alg != Algorithm::EdDSA {
        return Err(AuthError::Malformed("algorithm is not EdDSA".into()));
    }
    header
        .kid
        .ok_or_else(|| AuthError::Malformed("header names no key id".into()))
}

fn echoable(kid: &str) -> String {
    if kid.len() <= MAX_ECHOED_KID {
        return kid.to_owned();
    }
    let mut end = MAX_ECHOED_KID;
    while !kid.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &kid[..end])
}

// A poisoned lock only means a panic elsewhere while holding it; the maps stay usable.
fn read<T>(lock: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(|e| e.into_inner())
}

fn write<T>(lock: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(|e| e.into_inner())
}

/// Maps a jsonwebtoken error without quoting any part of the token.
pub(crate) fn jwt_error(err: jsonwebtoken::errors::Error) -> AuthError {
    let detail = match err.kind() {
        ErrorKind::InvalidSignature => return AuthError::BadSignature,
        ErrorKind::ExpiredSignature => return AuthError::Expired,
        ErrorKind::ImmatureSignature => return AuthError::NotYetValid,
        ErrorKind::InvalidIssuer => return AuthError::WrongIssuer,
        ErrorKind::InvalidEddsaKey | ErrorKind::InvalidKeyFormat => {
            return AuthError::InvalidKey("cached key is unusable".into());
        }
        ErrorKind::InvalidToken => "not a compact jws",
        ErrorKind::Base64(_) => "a part is not base64url",
        ErrorKind::Json(_) => "header or claims do not have the expected json shape",
        ErrorKind::Utf8(_) => "a part is not utf-8",
        ErrorKind::InvalidAlgorithm
        | ErrorKind::InvalidAlgorithmName
        | ErrorKind::UnsupportedAlgorithm
        | ErrorKind::MissingAlgorithm => "algorithm is not EdDSA",
        ErrorKind::MissingRequiredClaim(_) | ErrorKind::InvalidClaimFormat(_) => {
            "a required claim is missing or mistyped"
        }
        _ => "token could not be decoded",
    };
    AuthError::Malformed(detail.to_owned())
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use futures::future::BoxFuture;

    use super::*;
    use crate::test_support::{ISSUER, NOW, TestClock, claims, jwks_of, signer};
    use crate::{Jwks, PrincipalKind, StaticJwks, TokenSigner};

    /// Serves a `StaticJwks` and counts fetches.
    struct Counting {
        inner: Arc<StaticJwks>,
        fetches: AtomicUsize,
    }

    impl Counting {
        fn new(inner: Arc<StaticJwks>) -> Arc<Self> {
            Arc::new(Counting {
                inner,
                fetches: AtomicUsize::new(0),
            })
        }
        fn fetches(&self) -> usize {
            self.fetches.load(Ordering::SeqCst)
        }
    }

    impl JwksSource for Counting {
        fn fetch(&self) -> BoxFuture<'_, Result<Jwks, AuthError>> {
            self.fetches.fetch_add(1, Ordering::SeqCst);
            self.inner.fetch()
        }
    }

    fn validator(source: Arc<dyn JwksSource>, clock: &TestClock) -> Arc<TokenValidator> {
        let config =
            ValidatorConfig::new(ISSUER, ["license", "credmesh"]).with_clock(clock.clock());
        TokenValidator::new(source, config)
    }

    #[tokio::test]
    async fn a_signed_token_validates_into_its_principal() {
        let signer = signer("sh-1", 1);
        let clock = TestClock::at(NOW);
        let v = validator(jwks_of(&[&signer]), &clock);
        let mut claims = claims("svc-license", "license.read license.write");
        claims.org = Some("91310000MA1FL0XXXX".into());
        let token = signer.sign(&claims).unwrap();

        let principal = v.validate(&token).await.unwrap();
        assert_eq!(principal.client_id, "svc-license");
        assert_eq!(principal.kind, PrincipalKind::Service);
        assert_eq!(principal.scopes, ["license.read", "license.write"]);
        assert_eq!(
            principal.organization.as_deref(),
            Some("91310000MA1FL0XXXX")
        );
        assert_eq!(principal.expires_at, NOW + 300);
    }

    #[tokio::test]
    async fn a_service_validator_accepts_its_regions_tokens_for_itself_or_every_service() {
        let identity = tonic::transport::Channel::from_static("http://127.0.0.1:9").connect_lazy();
        let v = TokenValidator::for_service("entcode", "JS", identity);
        assert_eq!(v.config().issuer, "credmesh-identity:JS");
        assert_eq!(v.config().audiences, ["entcode", "credmesh"]);
    }

    #[tokio::test]
    async fn a_token_past_expiry_and_leeway_is_expired() {
        let signer = signer("sh-1", 1);
        let clock = TestClock::at(NOW);
        let v = validator(jwks_of(&[&signer]), &clock);
        let token = signer.sign(&claims("c", "s")).unwrap();

        clock.set(NOW + 300 + 30);
        assert!(v.validate(&token).await.is_ok(), "within leeway");
        clock.set(NOW + 300 + 31);
        assert!(matches!(v.validate(&token).await, Err(AuthError::Expired)));
    }

    #[tokio::test]
    async fn a_token_before_its_not_before_is_not_yet_valid() {
        let signer = signer("sh-1", 1);
        let clock = TestClock::at(NOW - 31);
        let v = validator(jwks_of(&[&signer]), &clock);
        let token = signer.sign(&claims("c", "s")).unwrap();
        assert!(matches!(
            v.validate(&token).await,
            Err(AuthError::NotYetValid)
        ));
    }

    #[tokio::test]
    async fn a_token_for_another_audience_is_refused() {
        let signer = signer("sh-1", 1);
        let clock = TestClock::at(NOW);
        let v = validator(jwks_of(&[&signer]), &clock);
        let mut claims = claims("c", "s");
        claims.aud = "inspection".into();
        let token = signer.sign(&claims).unwrap();
        match v.validate(&token).await {
            Err(AuthError::WrongAudience { expected, found }) => {
                assert_eq!(found, "inspection");
                assert_eq!(expected, ["license", "credmesh"]);
            }
            other => panic!("expected wrong audience, got {other:?}"),
        }
        // Any of the configured audiences is accepted.
        let mut claims = crate::test_support::claims("c", "s");
        claims.aud = "credmesh".into();
        assert!(v.validate(&signer.sign(&claims).unwrap()).await.is_ok());
    }

    #[tokio::test]
    async fn a_token_from_another_issuer_is_refused() {
        let other = TokenSigner::new(
            "sh-1".into(),
            ed25519_dalek::SigningKey::from_bytes(&[1; 32]),
            "credmesh-identity:js".into(),
        )
        .unwrap();
        let clock = TestClock::at(NOW);
        let v = validator(jwks_of(&[&other]), &clock);
        let mut claims = claims("c", "s");
        claims.iss = "credmesh-identity:js".into();
        let token = other.sign(&claims).unwrap();
        assert!(matches!(
            v.validate(&token).await,
            Err(AuthError::WrongIssuer)
        ));
    }

    #[tokio::test]
    async fn a_token_signed_by_a_different_key_with_the_same_kid_is_forged() {
        let genuine = signer("sh-1", 1);
        let forger = signer("sh-1", 2);
        let clock = TestClock::at(NOW);
        let v = validator(jwks_of(&[&genuine]), &clock);
        let token = forger.sign(&claims("c", "s")).unwrap();
        assert!(matches!(
            v.validate(&token).await,
            Err(AuthError::BadSignature)
        ));
    }

    #[tokio::test]
    async fn a_token_with_a_tampered_payload_does_not_verify() {
        let signer = signer("sh-1", 1);
        let clock = TestClock::at(NOW);
        let v = validator(jwks_of(&[&signer]), &clock);
        let token = signer.sign(&claims("c", "s")).unwrap();
        let other = signer.sign(&claims("admin", "identity.admin")).unwrap();
        let parts: Vec<&str> = token.split('.').collect();
        let other_parts: Vec<&str> = other.split('.').collect();
        let spliced = format!("{}.{}.{}", parts[0], other_parts[1], parts[2]);
        assert!(matches!(
            v.validate(&spliced).await,
            Err(AuthError::BadSignature)
        ));
        assert!(matches!(
            v.validate("not-a-token").await,
            Err(AuthError::Malformed(_))
        ));
    }

    #[tokio::test]
    async fn an_unknown_kid_refetches_once_and_succeeds_when_the_source_has_it() {
        let old = signer("sh-1", 1);
        let new = signer("sh-2", 2);
        let keys = jwks_of(&[&old]);
        let source = Counting::new(keys.clone());
        let clock = TestClock::at(NOW);
        let v = validator(source.clone(), &clock);

        v.validate(&old.sign(&claims("c", "s")).unwrap())
            .await
            .unwrap();
        assert_eq!(source.fetches(), 1, "first token loads the key set");
        v.validate(&old.sign(&claims("c", "s")).unwrap())
            .await
            .unwrap();
        assert_eq!(source.fetches(), 1, "known kid needs no fetch");

        // Identity rotates; a token with the new kid arrives after the refetch interval.
        keys.insert(new.jwk());
        clock.set(NOW + 10);
        v.validate(&new.sign(&claims("c", "s")).unwrap())
            .await
            .unwrap();
        assert_eq!(source.fetches(), 2);
    }

    #[tokio::test]
    async fn a_second_unknown_kid_within_the_refetch_interval_does_not_refetch() {
        let known = signer("sh-1", 1);
        let source = Counting::new(jwks_of(&[&known]));
        let clock = TestClock::at(NOW);
        let v = validator(source.clone(), &clock);
        v.validate(&known.sign(&claims("c", "s")).unwrap())
            .await
            .unwrap();
        assert_eq!(source.fetches(), 1);

        clock.set(NOW + 20);
        let bogus_a = signer("bogus-a", 3).sign(&claims("c", "s")).unwrap();
        let bogus_b = signer("bogus-b", 4).sign(&claims("c", "s")).unwrap();
        assert!(
            matches!(v.validate(&bogus_a).await, Err(AuthError::UnknownKey(k)) if k == "bogus-a")
        );
        assert_eq!(source.fetches(), 2, "first unknown kid refetches");
        clock.set(NOW + 29);
        assert!(matches!(
            v.validate(&bogus_b).await,
            Err(AuthError::UnknownKey(_))
        ));
        assert_eq!(
            source.fetches(),
            2,
            "second unknown kid within 10 s does not"
        );
        clock.set(NOW + 30);
        assert!(matches!(
            v.validate(&bogus_b).await,
            Err(AuthError::UnknownKey(_))
        ));
        assert_eq!(source.fetches(), 3, "after the interval it may fetch again");
    }

    #[tokio::test]
    async fn a_denied_client_is_refused_even_with_an_unexpired_token() {
        let signer = signer("sh-1", 1);
        let clock = TestClock::at(NOW);
        let v = validator(jwks_of(&[&signer]), &clock);
        let token = signer.sign(&claims("partner-js-bank", "verify")).unwrap();
        v.validate(&token).await.unwrap();

        v.deny_client("partner-js-bank");
        assert!(matches!(
            v.validate(&token).await,
            Err(AuthError::ClientDisabled(c)) if c == "partner-js-bank"
        ));
        v.allow_client("partner-js-bank");
        assert!(v.validate(&token).await.is_ok());
    }

    #[tokio::test]
    async fn a_denied_token_id_is_refused_until_its_retention_ends() {
        let signer = signer("sh-1", 1);
        let clock = TestClock::at(NOW);
        let v = validator(jwks_of(&[&signer]), &clock);
        let claims = claims("c", "s");
        let token = signer.sign(&claims).unwrap();
        v.deny_token(&claims.jti);
        assert!(matches!(
            v.validate(&token).await,
            Err(AuthError::TokenRevoked)
        ));

        clock.set(NOW + 24 * 3600 + 1);
        v.refresh().await.unwrap();
        assert!(read(&v.denied_tokens).is_empty(), "pruned after retention");
    }

    #[tokio::test]
    async fn a_remembered_token_still_expires_and_still_meets_the_deny_lists() {
        let signer = signer("sh-1", 1);
        let clock = TestClock::at(NOW);
        let v = validator(jwks_of(&[&signer]), &clock);
        let token = signer.sign(&claims("c", "s")).unwrap();
        v.validate(&token).await.unwrap();
        assert_eq!(
            read(&v.verified).len(),
            1,
            "the verified token is remembered"
        );
        v.validate(&token).await.unwrap();

        v.deny_client("c");
        assert!(matches!(
            v.validate(&token).await,
            Err(AuthError::ClientDisabled(_))
        ));
        v.allow_client("c");
        v.validate(&token).await.unwrap();
        v.validate(&token).await.unwrap();

        clock.set(NOW + 10_000);
        assert!(matches!(v.validate(&token).await, Err(AuthError::Expired)));
    }

    #[tokio::test]
    async fn a_remembered_token_meets_every_later_change_at_its_next_call() {
        let (a, b) = (signer("sh-1", 1), signer("sh-2", 2));
        let clock = TestClock::at(NOW);
        let source = jwks_of(&[&a, &b]);
        let v = validator(source.clone(), &clock);
        let claims = claims("c", "s");
        let token = a.sign(&claims).unwrap();
        let other = b.sign(&crate::test_support::claims("d", "s")).unwrap();
        // Verified, then answered from memory (the fast path) a few times.
        for _ in 0..3 {
            v.validate(&token).await.unwrap();
            v.validate(&other).await.unwrap();
        }

        // Its token id denied: refused at once, though nothing else changed.
        v.deny_token(&claims.jti);
        assert!(matches!(
            v.validate(&token).await,
            Err(AuthError::TokenRevoked)
        ));
        v.validate(&other).await.unwrap();

        // Its key dropped from the key set: refused at once; the other key's token not.
        source.replace(Jwks::new([b.jwk()]));
        v.refresh().await.unwrap();
        assert!(v.validate(&token).await.is_err());
        v.validate(&other).await.unwrap();
        v.validate(&other).await.unwrap();
    }

    #[tokio::test]
    async fn a_forged_token_is_never_remembered() {
        let a = signer("sh-1", 1);
        let clock = TestClock::at(NOW);
        let v = validator(jwks_of(&[&a]), &clock);
        let token = a.sign(&claims("c", "s")).unwrap();
        let mut forged = token.clone();
        forged.pop();
        forged.push(if token.ends_with('A') { 'B' } else { 'A' });
        assert!(v.validate(&forged).await.is_err());
        assert!(v.validate(&forged).await.is_err());
        assert!(read(&v.verified).is_empty());
    }

    #[tokio::test]
    async fn refresh_drops_keys_that_left_the_key_set() {
        let a = signer("sh-1", 1);
        let keys = jwks_of(&[&a]);
        let clock = TestClock::at(NOW);
        let v = validator(keys.clone(), &clock);
        let token = a.sign(&claims("c", "s")).unwrap();
        v.validate(&token).await.unwrap();

        keys.replace(Jwks::default());
        v.refresh().await.unwrap();
        assert!(matches!(
            v.validate(&token).await,
            Err(AuthError::UnknownKey(_))
        ));
    }

    #[tokio::test]
    async fn the_refresh_task_fetches_periodically_and_ends_when_the_validator_is_dropped() {
        /// Reports every fetch on a channel, so the test waits for events, not time.
        struct Notifying(tokio::sync::mpsc::UnboundedSender<()>);
        impl JwksSource for Notifying {
            fn fetch(&self) -> BoxFuture<'_, Result<Jwks, AuthError>> {
                let _ = self.0.send(());
                Box::pin(async { Ok(Jwks::default()) })
            }
        }
        let (tx, mut fetched) = tokio::sync::mpsc::unbounded_channel();
        let clock = TestClock::at(NOW);
        let mut config = ValidatorConfig::new(ISSUER, ["license"]).with_clock(clock.clock());
        config.refresh_interval = Duration::from_millis(5);
        let v = TokenValidator::new(Arc::new(Notifying(tx)), config);
        let task = v.spawn_refresh();
        for _ in 0..3 {
            fetched.recv().await.expect("a fetch");
        }

        drop(v);
        tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .expect("refresh task ends once the validator is gone")
            .unwrap();
    }
}

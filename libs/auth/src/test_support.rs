//! Keys, claims and clocks shared by the unit tests.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use ed25519_dalek::SigningKey;

use crate::{AccessClaims, Clock, Jwks, PrincipalKind, StaticJwks, TokenSigner};

pub const ISSUER: &str = "credmesh-identity:sh";
pub const NOW: i64 = 1_800_000_000;

/// A clock the test moves.
#[derive(Clone)]
pub struct TestClock(pub Arc<AtomicI64>);

impl TestClock {
    pub fn at(now: i64) -> Self {
        TestClock(Arc::new(AtomicI64::new(now)))
    }
    pub fn set(&self, now: i64) {
        self.0.store(now, Ordering::SeqCst);
    }
    pub fn clock(&self) -> Clock {
        let now = self.0.clone();
        Arc::new(move || now.load(Ordering::SeqCst))
    }
}

pub fn signer(kid: &str, seed: u8) -> TokenSigner {
    TokenSigner::new(
        kid.into(),
        SigningKey::from_bytes(&[seed; 32]),
        ISSUER.into(),
    )
    .unwrap()
}

pub fn jwks_of(signers: &[&TokenSigner]) -> Arc<StaticJwks> {
    Arc::new(StaticJwks::new(Jwks::new(signers.iter().map(|s| s.jwk()))))
}

/// Claims for `client` with `scope`, valid for five minutes from `NOW`.
pub fn claims(client: &str, scope: &str) -> AccessClaims {
    AccessClaims {
        iss: ISSUER.into(),
        sub: client.into(),
        aud: "license".into(),
        exp: NOW + 300,
        iat: NOW,
        nbf: NOW,
        jti: format!("jti-{client}-{scope}"),
        scope: scope.into(),
        kind: PrincipalKind::Service,
        org: None,
        region: "sh".into(),
        cert: None,
    }
}

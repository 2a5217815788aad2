//! The cost of authenticating one request, next to its baselines measured in the same
//! run: a raw `ed25519-dalek` verify of the token's signing input, and
//! `jsonwebtoken::decode` of the same token with the same key.
//!
//! Run with `cargo bench -p credmesh-auth --bench token`.

#![allow(clippy::unwrap_used)]

use std::{hint::black_box, sync::Arc, time::Duration};

use base64::Engine as _;
use credmesh_auth::{
    AccessClaims, Jwk, Jwks, PrincipalKind, StaticJwks, TokenSigner, TokenValidator,
    ValidatorConfig, issuer_for_region,
};
use criterion::{Criterion, criterion_group, criterion_main};
use ed25519_dalek::{Signature, SigningKey};

const NOW: i64 = 1_750_000_000;

fn token(c: &mut Criterion) {
    let key = SigningKey::from_bytes(&[42; 32]);
    let issuer = issuer_for_region("SH");
    let signer = TokenSigner::new("SH-token-1".into(), key.clone(), issuer.clone()).unwrap();
    let claims = AccessClaims {
        iss: issuer.clone(),
        sub: "bank-suzhou".into(),
        aud: "credmesh".into(),
        exp: NOW + 900,
        iat: NOW,
        nbf: NOW,
        jti: "b2f1c0d4e5a6".into(),
        scope: "verify".into(),
        kind: PrincipalKind::Partner,
        org: None,
        region: "JS".into(),
        cert: None,
    };
    let token = signer.sign(&claims).unwrap();
    let jwks = Jwks {
        keys: vec![Jwk::from_ed25519("SH-token-1", &key.verifying_key())],
    };
    let validator = TokenValidator::new(
        Arc::new(StaticJwks::new(jwks)),
        ValidatorConfig::new(issuer, ["credmesh"]).with_clock(Arc::new(|| NOW)),
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(validator.validate(&token)).unwrap();

    let (signing_input, sig_b64) = token.rsplit_once('.').unwrap();
    let sig = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(sig_b64)
        .unwrap();
    let sig = Signature::from_slice(&sig).unwrap();
    let vk = key.verifying_key();
    let decoding = jsonwebtoken::DecodingKey::from_ed_der(vk.as_bytes());
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::EdDSA);
    validation.set_audience(&["credmesh"]);
    validation.validate_exp = false;

    let mut g = c.benchmark_group("token");
    g.bench_function("ed25519_dalek_verify_strict", |b| {
        b.iter(|| vk.verify_strict(black_box(signing_input.as_bytes()), black_box(&sig)))
    });
    g.bench_function("jsonwebtoken_decode", |b| {
        b.iter(|| {
            jsonwebtoken::decode::<AccessClaims>(black_box(&token), &decoding, &validation).unwrap()
        })
    });
    g.bench_function("credmesh_validate", |b| {
        b.iter(|| rt.block_on(validator.validate(black_box(&token))).unwrap())
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    targets = token
}
criterion_main!(benches);

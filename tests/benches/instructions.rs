//! Hot paths for instruction counting (`make bench` runs each under
//! `valgrind --tool=callgrind`; counts are repeatable where wall time on a shared machine
//! is not). `instructions <path> <n>` does one warm-up operation, then `n` operations
//! inside [`measured`] — the only function callgrind collects
//! (`--toggle-collect='*measured*'`), so the total is the operations' cost alone:
//!
//! - `raw_verify`, `native`: raw ed25519-dalek strict verify of a native credential's
//!   signed bytes, and [`verify`] of the whole credential (decoding, trust lookup, checks,
//!   the status lookup in a 1,000,000-bit list);
//! - `raw_verify_jwt`, `vc_jwt`: the same for the VC-JWT form, and `jsonwebtoken_jwt`:
//!   `jsonwebtoken::decode` of the same token (key decoded once, as the criterion bench);
//! - `raw_verify_token`, `token_first`, `token_cached`: an access token's signature, its
//!   validation the first time it is seen (`n` distinct tokens) and again (one token);
//! - `status_lookup`: one status-list lookup.
//!
//! The credential fixture is `libs/credential/benches/support/fixture.rs`, shared with
//! the criterion bench; the token fixture mirrors `libs/auth/benches/token.rs`. Run: `scripts/bench_callgrind.py` (or `cargo bench -p
//! credmesh-e2e --bench instructions -- native 100` for a plain run).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{hint::black_box, sync::Arc};

use base64::Engine as _;
use credmesh_auth::{
    AccessClaims, Jwk, Jwks, PrincipalKind, StaticJwks, TokenSigner, TokenValidator,
    ValidatorConfig, issuer_for_region,
};
use credmesh_credential::{
    Context, IssuerKey, Presented, Signature, StatusSource as _, VcOptions, encode_envelope,
    sign_credential, signing_input, to_vc_jwt, verify,
};

#[path = "../../libs/credential/benches/support/fixture.rs"]
mod fixture;

use fixture::{NOW, credential, fixture};

/// Runs `op` `n` times; callgrind collects inside this function only.
#[inline(never)]
fn measured(n: u64, op: &mut dyn FnMut()) {
    for _ in 0..n {
        op();
    }
}

/// The signing input and signature of a compact JWS.
fn jws_parts(token: &str) -> (Vec<u8>, Signature) {
    let (input, sig) = token.rsplit_once('.').unwrap();
    let sig = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(sig)
        .unwrap();
    (
        input.as_bytes().to_vec(),
        Signature::from_slice(&sig).unwrap(),
    )
}

/// Polls `fut` once: the validator with its keys loaded never waits.
fn ready<T>(fut: impl std::future::Future<Output = T>) -> T {
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    match std::pin::pin!(fut).poll(&mut cx) {
        std::task::Poll::Ready(v) => v,
        std::task::Poll::Pending => panic!("the operation waited"),
    }
}

fn token_fixture(n: u64) -> (Arc<TokenValidator>, Vec<String>, IssuerKey) {
    let key = IssuerKey::from_bytes("SH-token-1", &[42; 32]);
    let issuer = issuer_for_region("SH");
    let signer = TokenSigner::new(
        "SH-token-1".into(),
        key.signing_key().clone(),
        issuer.clone(),
    )
    .unwrap();
    let tokens = (0..n)
        .map(|i| {
            signer
                .sign(&AccessClaims {
                    iss: issuer.clone(),
                    sub: "bank-suzhou".into(),
                    aud: "credmesh".into(),
                    exp: NOW + 900,
                    iat: NOW,
                    nbf: NOW,
                    jti: format!("b2f1c0d4e5a6-{i:08}"),
                    scope: "verify".into(),
                    kind: PrincipalKind::Partner,
                    org: None,
                    region: "JS".into(),
                    cert: None,
                })
                .unwrap()
        })
        .collect();
    let jwks = Jwks {
        keys: vec![Jwk::from_ed25519("SH-token-1", &key.verifying_key())],
    };
    let validator = TokenValidator::new(
        Arc::new(StaticJwks::new(jwks)),
        ValidatorConfig::new(issuer, ["credmesh"]).with_clock(Arc::new(|| NOW)),
    );
    (validator, tokens, key)
}

const PATHS: &[&str] = &[
    "raw_verify",
    "native",
    "raw_verify_jwt",
    "vc_jwt",
    "jsonwebtoken_jwt",
    "raw_verify_token",
    "token_first",
    "token_cached",
    "status_lookup",
];

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    // `cargo bench` passes `--bench`; skip flags.
    let args: Vec<&str> = args
        .iter()
        .map(String::as_str)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let (Some(path), n) = (
        args.first().copied(),
        args.get(1)
            .and_then(|n| n.parse::<u64>().ok())
            .unwrap_or(100),
    ) else {
        println!("usage: instructions <path> [n]; paths: {}", PATHS.join(" "));
        return;
    };
    let f = fixture();
    let env = sign_credential(&credential(42), &f.key);
    let vk = f.key.verifying_key();
    let mut op: Box<dyn FnMut() + '_> = match path {
        "raw_verify" => {
            let message = signing_input(Context::Credential, &env.payload);
            let signature = Signature::from_slice(&env.signature).unwrap();
            Box::new(move || {
                assert!(
                    vk.verify_strict(black_box(&message), black_box(&signature))
                        .is_ok()
                );
            })
        }
        "native" => {
            let bytes = encode_envelope(&env);
            let f = &f;
            Box::new(move || {
                black_box(verify(
                    Presented::Native(black_box(&bytes)),
                    &f.trust,
                    &f.status,
                    &f.policy,
                    NOW,
                ));
            })
        }
        "raw_verify_jwt" | "vc_jwt" | "jsonwebtoken_jwt" => {
            let token = to_vc_jwt(
                &credential(42),
                &f.key,
                &VcOptions {
                    status_base_url: "https://verify.sh.example".into(),
                },
            );
            if path == "jsonwebtoken_jwt" {
                use jsonwebtoken::{Algorithm, DecodingKey, Validation, decode};
                let key = DecodingKey::from_ed_der(&f.key.public_key_bytes());
                let mut validation = Validation::new(Algorithm::EdDSA);
                validation.validate_aud = false;
                assert!(decode::<serde_json::Value>(&token, &key, &validation).is_ok());
                Box::new(move || {
                    assert!(
                        decode::<serde_json::Value>(black_box(&token), &key, &validation).is_ok()
                    );
                })
            } else if path == "raw_verify_jwt" {
                let (message, signature) = jws_parts(&token);
                Box::new(move || {
                    assert!(
                        vk.verify_strict(black_box(&message), black_box(&signature))
                            .is_ok()
                    );
                })
            } else {
                let f = &f;
                Box::new(move || {
                    black_box(verify(
                        Presented::VcJwt(black_box(&token)),
                        &f.trust,
                        &f.status,
                        &f.policy,
                        NOW,
                    ));
                })
            }
        }
        "raw_verify_token" => {
            let (_, tokens, key) = token_fixture(1);
            let (message, signature) = jws_parts(&tokens[0]);
            let vk = key.verifying_key();
            Box::new(move || {
                assert!(
                    vk.verify_strict(black_box(&message), black_box(&signature))
                        .is_ok()
                );
            })
        }
        "token_first" => {
            // One more than measured: the warm-up takes the first.
            let (validator, tokens, _) = token_fixture(n + 1);
            let mut next = tokens.into_iter();
            Box::new(move || {
                let token = next.next().unwrap();
                assert!(ready(validator.validate(black_box(&token))).is_ok());
            })
        }
        "token_cached" => {
            let (validator, tokens, _) = token_fixture(1);
            Box::new(move || {
                assert!(ready(validator.validate(black_box(&tokens[0]))).is_ok());
            })
        }
        "status_lookup" => {
            let mut i = 0u64;
            let f = &f;
            Box::new(move || {
                i = (i + 7919) % 1_000_000;
                black_box(f.status.lookup(black_box("SH/license/0"), black_box(i)));
            })
        }
        other => {
            eprintln!("unknown path {other}; paths: {}", PATHS.join(" "));
            std::process::exit(2);
        }
    };
    op();
    measured(n, &mut op);
    println!("{path}: {n} operations");
}

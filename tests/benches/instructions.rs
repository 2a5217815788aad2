//! Hot paths for instruction counting (`make bench` runs each under
//! `valgrind --tool=callgrind`; counts are repeatable where wall time on a shared machine
//! is not). `instructions <path> <n>` does one warm-up operation, then `n` operations
//! inside [`measured`] — the only function callgrind collects
//! (`--toggle-collect='*measured*'`), so the total is the operations' cost alone:
//!
//! - `raw_verify`, `native`: raw ed25519-dalek strict verify of a native credential's
//!   signed bytes, and [`verify`] of the whole credential (decoding, trust lookup, checks,
//!   the status lookup in a 1,000,000-bit list);
//! - `raw_verify_jwt`, `vc_jwt`: the same for the VC-JWT form;
//! - `raw_verify_token`, `token_first`, `token_cached`: an access token's signature, its
//!   validation the first time it is seen (`n` distinct tokens) and again (one token);
//! - `status_lookup`: one status-list lookup.
//!
//! The fixtures are those of `libs/credential/benches/credential.rs` and
//! `libs/auth/benches/token.rs`. Run: `scripts/bench_callgrind.py` (or `cargo bench -p
//! credmesh-e2e --bench instructions -- native 100` for a plain run).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{hint::black_box, sync::Arc};

use base64::Engine as _;
use credmesh_auth::{
    AccessClaims, Jwk, Jwks, PrincipalKind, StaticJwks, TokenSigner, TokenValidator,
    ValidatorConfig, issuer_for_region,
};
use credmesh_credential::{
    Bitstring, Context, IssuerKey, Policy, Presented, Signature, StatusCache, StatusSource as _,
    TrustSnapshot, VcOptions, encode_envelope, sign_credential, signing_input, to_vc_jwt, verify,
};
use credmesh_proto::credential::v1::{
    Claim, Credential, CredentialKind, StatusPurpose, StatusReference,
};

const NOW: i64 = 1_750_000_000;

/// Runs `op` `n` times; callgrind collects inside this function only.
#[inline(never)]
fn measured(n: u64, op: &mut dyn FnMut()) {
    for _ in 0..n {
        op();
    }
}

fn credential(i: u64) -> Credential {
    let claim = |name: &str, value: &str| Claim {
        name: name.into(),
        value: value.into(),
    };
    Credential {
        id: format!("1.2.156.3005.2.11100000000013127D001.11310000002420813X.{i:08}.001.7"),
        kind: CredentialKind::BusinessLicense as i32,
        issuer: "SH/license".into(),
        region: "SH".into(),
        subject: "91310000MA1FL8TQ2X".into(),
        issued_at: NOW - 86_400,
        not_before: NOW - 86_400,
        not_after: 4_102_444_800,
        status: Some(StatusReference {
            list_id: "SH/license/0".into(),
            index: i,
        }),
        claims: vec![
            claim("name", "上海示例科技有限公司"),
            claim("uscc", "91310000MA1FL8TQ2X"),
            claim("entity_type", "有限责任公司（自然人投资或控股）"),
            claim("legal_representative", "张三"),
            claim("registered_capital", "人民币100.0000万元"),
            claim("established", "2020-05-18"),
            claim("domicile", "上海市浦东新区示例路1号"),
            claim("business_scope", "技术开发、技术咨询、技术服务。"),
            claim("registration_authority", "上海市市场监督管理局"),
        ],
        version: 1,
        nonce: Vec::new(),
    }
}

struct Fixture {
    key: IssuerKey,
    trust: TrustSnapshot,
    status: StatusCache,
    policy: Policy,
}

fn fixture() -> Fixture {
    let key = IssuerKey::from_bytes("SH-license-bench", &[7u8; 32]);
    let mut trust = TrustSnapshot::new();
    let trusted = key.to_trusted_key("SH/license", "SH", &[CredentialKind::BusinessLicense], 0);
    trust.insert(&trusted, NOW).unwrap();
    let mut status = StatusCache::new();
    for purpose in [StatusPurpose::Revocation, StatusPurpose::Suspension] {
        let mut bits = Bitstring::new(1_000_000);
        bits.set(999_999, true).unwrap();
        status
            .insert_list("SH/license/0", purpose, bits, NOW)
            .unwrap();
    }
    Fixture {
        key,
        trust,
        status,
        policy: Policy::default(),
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
        "raw_verify_jwt" | "vc_jwt" => {
            let token = to_vc_jwt(
                &credential(42),
                &f.key,
                &VcOptions {
                    status_base_url: "https://verify.sh.example".into(),
                },
            );
            if path == "raw_verify_jwt" {
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

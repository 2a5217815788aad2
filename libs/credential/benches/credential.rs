//! Verification costs, each next to its baseline:
//!
//! - raw `ed25519-dalek` strict verify of the signed bytes vs [`verify`] of a native
//!   credential (what decoding, key lookup, checks and status add);
//! - [`verify`] of a VC-JWT vs `jsonwebtoken::decode` of the same token;
//! - one status-list lookup in a 1,000,000-bit list;
//! - [`verify_batch`] of 64 credentials vs 64 single [`verify`] calls;
//! - issuing: [`sign_credential`], [`to_vc_jwt`] and [`to_qr`] of one credential, what
//!   an issuing service spends on the three forms of every credential it answers.
//!
//! Run with `cargo bench -p credmesh-credential --bench credential -- --quick`.

// A bench is test code: a fixture that fails to build should stop it loudly.
#![allow(clippy::unwrap_used)]

use std::hint::black_box;
use std::time::Duration;

use credmesh_credential::{
    Bitstring, Context, Presented, StatusCache, StatusSource, VcOptions, encode_envelope,
    sign_credential, signing_input, to_qr, to_vc_jwt, verify, verify_batch,
};
use credmesh_proto::credential::v1::{StatusPurpose, StatusReference};
use criterion::{Criterion, criterion_group, criterion_main};
use ed25519_dalek::Signature;

#[path = "support/fixture.rs"]
mod fixture;

use fixture::{NOW, credential, fixture};

fn native(c: &mut Criterion) {
    let f = fixture();
    let env = sign_credential(&credential(42), &f.key);
    let bytes = encode_envelope(&env);
    let qr = to_qr(&env);
    let message = signing_input(Context::Credential, &env.payload);
    let signature = Signature::from_slice(&env.signature).unwrap();
    let vk = f.key.verifying_key();

    let mut g = c.benchmark_group("native");
    g.bench_function("ed25519_dalek_verify_strict", |b| {
        b.iter(|| vk.verify_strict(black_box(&message), black_box(&signature)))
    });
    g.bench_function("ed25519_dalek_verify_non_strict", |b| {
        use ed25519_dalek::Verifier as _;
        b.iter(|| vk.verify(black_box(&message), black_box(&signature)))
    });
    g.bench_function("credmesh_verify_native", |b| {
        b.iter(|| {
            verify(
                Presented::Native(black_box(&bytes)),
                &f.trust,
                &f.status,
                &f.policy,
                NOW,
            )
        })
    });
    g.bench_function("credmesh_verify_qr", |b| {
        b.iter(|| {
            verify(
                Presented::Qr(black_box(&qr)),
                &f.trust,
                &f.status,
                &f.policy,
                NOW,
            )
        })
    });
    g.finish();
}

fn vc_jwt(c: &mut Criterion) {
    use jsonwebtoken::{Algorithm, DecodingKey, Validation, decode};
    let f = fixture();
    let token = to_vc_jwt(
        &credential(42),
        &f.key,
        &VcOptions {
            status_base_url: "https://verify.sh.example".into(),
        },
    );
    let decoding = DecodingKey::from_ed_der(&f.key.public_key_bytes());
    let mut validation = Validation::new(Algorithm::EdDSA);
    validation.validate_aud = false;
    assert!(decode::<serde_json::Value>(&token, &decoding, &validation).is_ok());

    let mut g = c.benchmark_group("vc_jwt");
    g.bench_function("jsonwebtoken_decode", |b| {
        b.iter(|| decode::<serde_json::Value>(black_box(&token), &decoding, &validation))
    });
    g.bench_function("credmesh_parse_and_rebuild_without_signature", |b| {
        b.iter(|| {
            credmesh_credential::parse_vc_jwt(black_box(&token))
                .and_then(|p| p.credential())
                .is_ok()
        })
    });
    g.bench_function("credmesh_verify_vc_jwt", |b| {
        b.iter(|| {
            verify(
                Presented::VcJwt(black_box(&token)),
                &f.trust,
                &f.status,
                &f.policy,
                NOW,
            )
        })
    });
    g.finish();
}

fn status_lookup(c: &mut Criterion) {
    let f = fixture();
    c.bench_function("status_cache_lookup_1m_bits", |b| {
        let mut i = 0u64;
        b.iter(|| {
            i = (i + 7919) % 1_000_000;
            f.status.lookup(black_box("SH/license/0"), black_box(i))
        })
    });
}

/// Entries per status list at national scale: the gateway's ceiling per list (16 Mi).
const LIST_BITS: usize = 16 * 1024 * 1024;

/// A cache holding `lists` lists of `bits` entries for each of the three purposes, with
/// one entry in a thousand revoked, like a mature register.
fn population(lists: usize, bits: usize) -> StatusCache {
    let mut cache = StatusCache::new();
    for n in 0..lists {
        for purpose in [
            StatusPurpose::Revocation,
            StatusPurpose::Suspension,
            StatusPurpose::Superseded,
        ] {
            let mut list = Bitstring::new(bits);
            for i in (0..bits as u64).step_by(1000) {
                list.set(i, true).unwrap();
            }
            cache
                .insert_list(format!("SH/license/{n}"), purpose, list, NOW)
                .unwrap();
        }
    }
    cache
}

/// China has about 190 million business entities: status for 200 million credentials
/// (12 lists of 16 Mi entries, three purposes each) beside a 10,000-credential register.
/// Lookups and revocations must cost the same at both sizes.
fn national_scale(c: &mut Criterion) {
    const NATIONAL: u64 = 200_000_000;
    let lists = (NATIONAL as usize).div_ceil(LIST_BITS);
    let small = population(1, 10_000);
    let large = population(lists, LIST_BITS);
    let bytes_per_100m = 3 * 100_000_000 / 8;
    println!(
        "status lists for {NATIONAL} credentials: {lists} lists x 3 purposes, {:.1} MiB held; \
         {:.1} MiB per 100 million credentials",
        (lists * 3 * LIST_BITS / 8) as f64 / (1024.0 * 1024.0),
        bytes_per_100m as f64 / (1024.0 * 1024.0)
    );
    let ids: Vec<String> = (0..lists).map(|n| format!("SH/license/{n}")).collect();

    let mut g = c.benchmark_group("status_scale");
    g.bench_function("lookup_10k", |b| {
        let mut i = 0u64;
        b.iter(|| {
            i = (i + 7919) % 10_000;
            small.lookup(black_box("SH/license/0"), black_box(i))
        })
    });
    g.bench_function("lookup_200m", |b| {
        let mut i = 0u64;
        b.iter(|| {
            i = (i + 104_729) % NATIONAL;
            let list = &ids[(i / LIST_BITS as u64) as usize];
            large.lookup(black_box(list), black_box(i % LIST_BITS as u64))
        })
    });
    // Whole verifications: a credential at a random place of the national population
    // beside one in the small register, same key, same checks.
    let f = fixture();
    let signed = |list: String, index: u64| {
        let mut c = credential(index);
        c.status = Some(StatusReference {
            list_id: list,
            index,
        });
        encode_envelope(&sign_credential(&c, &f.key))
    };
    let small_inputs: Vec<Vec<u8>> = (0..64)
        .map(|i| signed("SH/license/0".into(), (i * 7919) % 10_000))
        .collect();
    let large_inputs: Vec<Vec<u8>> = (0..64u64)
        .map(|i| {
            let n = (i * 104_729 * 1_000_003) % NATIONAL;
            signed(
                ids[(n / LIST_BITS as u64) as usize].clone(),
                n % LIST_BITS as u64,
            )
        })
        .collect();
    g.bench_function("verify_10k", |b| {
        let mut i = 0;
        b.iter(|| {
            i = (i + 1) % small_inputs.len();
            verify(
                Presented::Native(black_box(&small_inputs[i])),
                &f.trust,
                &small,
                &f.policy,
                NOW,
            )
        })
    });
    g.bench_function("verify_200m", |b| {
        let mut i = 0;
        b.iter(|| {
            i = (i + 1) % large_inputs.len();
            verify(
                Presented::Native(black_box(&large_inputs[i])),
                &f.trust,
                &large,
                &f.policy,
                NOW,
            )
        })
    });
    let mut small_list = Bitstring::new(10_000);
    let mut large_list = Bitstring::new(LIST_BITS);
    g.bench_function("revoke_10k", |b| {
        let mut i = 0u64;
        b.iter(|| {
            i = (i + 7919) % 10_000;
            small_list.set(black_box(i), true)
        })
    });
    g.bench_function("revoke_200m", |b| {
        let mut i = 0u64;
        b.iter(|| {
            i = (i + 104_729) % LIST_BITS as u64;
            large_list.set(black_box(i), true)
        })
    });
    g.finish();
}

fn batch(c: &mut Criterion) {
    let f = fixture();
    let encoded: Vec<Vec<u8>> = (0..64)
        .map(|i| encode_envelope(&sign_credential(&credential(i), &f.key)))
        .collect();
    let inputs: Vec<Presented<'_>> = encoded.iter().map(|e| Presented::Native(e)).collect();

    let mut g = c.benchmark_group("batch_64");
    g.bench_function("verify_batch", |b| {
        b.iter(|| verify_batch(black_box(&inputs), &f.trust, &f.status, &f.policy, NOW))
    });
    g.bench_function("single_verify_x64", |b| {
        b.iter(|| {
            inputs
                .iter()
                .map(|i| verify(*i, &f.trust, &f.status, &f.policy, NOW))
                .collect::<Vec<_>>()
        })
    });
    g.finish();
}

fn issue(c: &mut Criterion) {
    let f = fixture();
    let credential = credential(42);
    let env = sign_credential(&credential, &f.key);
    let options = VcOptions {
        status_base_url: "https://verify.sh.example".into(),
    };
    let mut g = c.benchmark_group("issue");
    g.bench_function("sign_credential", |b| {
        b.iter(|| sign_credential(black_box(&credential), &f.key))
    });
    g.bench_function("to_vc_jwt", |b| {
        b.iter(|| to_vc_jwt(black_box(&credential), &f.key, &options))
    });
    g.bench_function("to_qr", |b| b.iter(|| to_qr(black_box(&env))));
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    targets = native, vc_jwt, status_lookup, national_scale, batch, issue
}
criterion_main!(benches);

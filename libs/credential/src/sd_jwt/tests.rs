use super::*;
use crate::testing::{key, presentation};

/// A presentation shaped as entcode issues it (version 1, 16-byte nonce).
fn credential() -> Credential {
    let mut c = presentation();
    c.id = "urn:credmesh:entcode:presentation:bank-loan:0102030405060708090a0b0c0d0e0f10".into();
    c.version = 1;
    c.nonce = (1..=16).collect();
    c.claims = vec![
        Claim {
            name: "name".into(),
            value: "上海示例科技有限公司".into(),
        },
        Claim {
            name: "uscc".into(),
            value: "91310000MA1FL8TQ2X".into(),
        },
        Claim {
            name: "credit_grade".into(),
            value: "A \"quoted\" \\ line\nbreak".into(),
        },
    ];
    c
}

fn salts() -> impl FnMut() -> [u8; 16] {
    let mut n = 0u8;
    move || {
        n += 1;
        [n; 16]
    }
}

fn issued() -> String {
    issue(
        &credential(),
        &key("SH-entcode-a"),
        &[("scenario", "bank-loan")],
        salts(),
    )
    .unwrap()
}

fn check(text: &str) -> Result<Disclosed, SdJwtError> {
    parse(text)?.verify(&key("SH-entcode-a").verifying_key())
}

fn b64(s: &str) -> String {
    URL_SAFE_NO_PAD.encode(s)
}

/// Signs any payload as an issuer JWT and appends `disclosures`.
fn signed(payload: &Value, disclosures: &[String]) -> String {
    let k = key("SH-entcode-a");
    let header = json!({"alg": "EdDSA", "typ": TYP, "kid": k.kid()});
    let mut out = format!("{}.{}", b64(&header.to_string()), b64(&payload.to_string()));
    let sig = k.sign(out.as_bytes());
    out.push('.');
    out.push_str(&URL_SAFE_NO_PAD.encode(sig.to_bytes()));
    out.push('~');
    for d in disclosures {
        out.push_str(d);
        out.push('~');
    }
    out
}

fn disclosure(json: Value) -> String {
    b64(&json.to_string())
}

#[test]
fn an_issued_sd_jwt_round_trips_to_the_identical_credential() {
    let text = issued();
    let parsed = parse(&text).unwrap();
    assert_eq!(parsed.kid(), "SH-entcode-a");
    assert_eq!(parsed.disclosures().len(), 3);
    assert_eq!(parsed.to_compact(), text);
    let disclosed = parsed.verify(&key("SH-entcode-a").verifying_key()).unwrap();
    assert_eq!(disclosed.credential().unwrap(), credential());
    let names: Vec<&str> = disclosed.claims.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["name", "uscc", "credit_grade"], "disclosure order");
    assert_eq!(disclosed.payload["scenario"], "bank-loan");
    assert!(disclosed.payload.get("_sd").is_none());
    assert!(disclosed.payload.get("_sd_alg").is_none());
}

#[test]
fn the_signed_part_carries_digests_not_values() {
    let text = issued();
    let jwt = text.split('~').next().unwrap();
    let payload: Value = serde_json::from_slice(
        &URL_SAFE_NO_PAD
            .decode(jwt.split('.').nth(1).unwrap())
            .unwrap(),
    )
    .unwrap();
    assert_eq!(payload["_sd"].as_array().unwrap().len(), 3);
    assert!(payload.get("name").is_none());
    assert_eq!(payload["vct"], PRESENTATION_VCT);
    assert_eq!(payload["_sd_alg"], "sha-256");
}

#[test]
fn a_tampered_disclosure_is_refused() {
    let text = issued();
    let mut parts: Vec<String> = text.split('~').map(String::from).collect();
    parts[2] = disclosure(json!([
        "AQEBAQEBAQEBAQEBAQEBAQ",
        "uscc",
        "91310000MA1FL8TQ2Y"
    ]));
    let err = check(&parts.join("~")).unwrap_err();
    assert_eq!(err, SdJwtError::Unreferenced { index: 2 });
    assert!(err.is_tampering());
    assert_eq!(err.reason(), "SD_JWT_UNREFERENCED_DISCLOSURE");
    assert!(
        err.to_string().contains("not one the issuer signed"),
        "{err}"
    );
}

#[test]
fn a_dropped_disclosure_leaves_a_valid_sd_jwt_without_that_claim() {
    let text = issued();
    let parts: Vec<&str> = text.split('~').collect();
    let fewer = format!("{}~{}~{}~", parts[0], parts[1], parts[3]);
    let disclosed = check(&fewer).unwrap();
    let c = disclosed.credential().unwrap();
    let names: Vec<&str> = c.claims.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["name", "credit_grade"]);
    assert!(disclosed.payload.get("uscc").is_none());
    // None at all is valid too: only the clear claims remain.
    let none = format!("{}~", parts[0]);
    assert!(check(&none).unwrap().claims.is_empty());
}

#[test]
fn a_duplicate_disclosure_is_refused() {
    let text = issued();
    let parts: Vec<&str> = text.split('~').collect();
    let twice = format!("{}~{}~{}~{}~", parts[0], parts[1], parts[2], parts[1]);
    assert_eq!(
        parse(&twice).unwrap_err(),
        SdJwtError::DuplicateDisclosure { index: 3 }
    );
}

#[test]
fn the_wrong_key_is_refused() {
    let text = issued();
    let err = parse(&text)
        .unwrap()
        .verify(&key("SH-entcode-b").verifying_key())
        .unwrap_err();
    assert_eq!(err, SdJwtError::Signature(SignatureError::Mismatch));
    assert_eq!(err.reason(), "SIGNATURE_MISMATCH");
}

#[test]
fn every_truncation_is_refused_or_a_valid_subset() {
    let text = issued();
    let full = check(&text).unwrap();
    for end in 0..text.len() {
        let Some(prefix) = text.get(..end) else {
            continue;
        };
        match check(prefix) {
            Err(_) => {}
            // Cut right after a `~`: a valid SD-JWT with fewer disclosures.
            Ok(d) => {
                assert!(prefix.ends_with('~'), "{prefix}");
                assert!(d.claims.len() < full.claims.len());
                assert!(d.claims.iter().all(|c| full.claims.contains(c)));
            }
        }
    }
    assert_eq!(
        parse("").unwrap_err().reason(),
        "SD_JWT_SHAPE",
        "the empty text"
    );
}

#[test]
fn the_issuer_jwt_header_must_be_eddsa_and_dc_sd_jwt() {
    let payload = b64("{}");
    let sig = URL_SAFE_NO_PAD.encode([0u8; 64]);
    for (header, reason) in [
        (r#"{"alg":"EdDSA","kid":"k","typ":"vc+jwt"}"#, "JWT_TYP"),
        (r#"{"alg":"none","kid":"k","typ":"dc+sd-jwt"}"#, "JWT_ALG"),
        (r#"{"alg":"EdDSA","typ":"dc+sd-jwt"}"#, "JWT_KID"),
        (
            r#"{"alg":"EdDSA","kid":"k","typ":"dc+sd-jwt","crit":["x"]}"#,
            "JWT_HEADER",
        ),
    ] {
        let text = format!("{}.{payload}.{sig}~", b64(header));
        let err = parse(&text).unwrap_err();
        assert_eq!(err.reason(), reason, "{header}");
        assert!(matches!(err, SdJwtError::Jwt(_)));
    }
}

#[test]
fn base64url_must_be_canonical_and_unpadded() {
    let text = issued();
    let parts: Vec<&str> = text.split('~').collect();
    let padded = format!("{}~{}=~", parts[0], parts[1]);
    assert_eq!(
        parse(&padded).unwrap_err(),
        SdJwtError::DisclosureBase64 { index: 1 }
    );
    // "QR" decodes to one byte only if the unused low bits are zero; "QS" has them set.
    let loose = format!("{}~QS~", parts[0]);
    assert_eq!(
        parse(&loose).unwrap_err(),
        SdJwtError::DisclosureBase64 { index: 1 }
    );
    let std_alphabet = format!("{}~{}+~", parts[0], &parts[1][..parts[1].len() - 1]);
    assert!(parse(&std_alphabet).is_err());
}

#[test]
fn malformed_disclosures_are_refused() {
    let jwt = issued().split('~').next().unwrap().to_owned();
    for (d, reason) in [
        (b64("not json"), "SD_JWT_DISCLOSURE"),
        (b64(r#"{"a":1}"#), "SD_JWT_DISCLOSURE"),
        (b64(r#"["salt"]"#), "SD_JWT_DISCLOSURE"),
        (b64(r#"["salt","a","b","c"]"#), "SD_JWT_DISCLOSURE"),
        (b64(r#"[1,"a","b"]"#), "SD_JWT_DISCLOSURE"),
        (b64(r#"["","a","b"]"#), "SD_JWT_DISCLOSURE"),
        (b64(r#"["salt",2,"b"]"#), "SD_JWT_DISCLOSURE"),
        (b64(r#"["salt","_sd","b"]"#), "SD_JWT_RESERVED_NAME"),
        (b64(r#"["salt","...","b"]"#), "SD_JWT_RESERVED_NAME"),
    ] {
        let err = parse(&format!("{jwt}~{d}~")).unwrap_err();
        assert_eq!(err.reason(), reason, "{d}: {err}");
    }
    assert_eq!(
        parse(&format!("{jwt}~~")).unwrap_err().reason(),
        "SD_JWT_SHAPE"
    );
    assert_eq!(parse(&jwt).unwrap_err().reason(), "SD_JWT_SHAPE");
    // Only the whole text is trimmed: white space inside is not signed, so it is refused.
    assert_eq!(
        parse(&format!("{jwt} ~")).unwrap_err().reason(),
        "SD_JWT_SHAPE"
    );
    assert!(parse(&format!("  {jwt}~\n")).is_ok());
}

#[test]
fn reserved_and_colliding_names_and_repeated_digests_are_refused() {
    let iss = disclosure(json!(["c2FsdA", "iss", "SH/other"]));
    let name = disclosure(json!(["c2FsdA", "name", "forged"]));
    let base = json!({"iss": "SH/entcode", "name": "clear"});
    let mut p = base.clone();
    p["_sd"] = json!([digest(&iss)]);
    assert_eq!(
        check(&signed(&p, std::slice::from_ref(&iss)))
            .unwrap_err()
            .reason(),
        "SD_JWT_RESERVED_NAME"
    );
    let mut p = base.clone();
    p["_sd"] = json!([digest(&name)]);
    assert_eq!(
        check(&signed(&p, std::slice::from_ref(&name))).unwrap_err(),
        SdJwtError::ClaimCollision("name".into())
    );
    let other = disclosure(json!(["c2FsdA", "other", "x"]));
    let mut p = base.clone();
    p["_sd"] = json!([digest(&other), digest(&other)]);
    assert_eq!(
        check(&signed(&p, std::slice::from_ref(&other)))
            .unwrap_err()
            .reason(),
        "SD_JWT_DUPLICATE_DIGEST"
    );
    let mut p = base;
    p["_sd_alg"] = json!("sha-512");
    assert_eq!(
        check(&signed(&p, &[])).unwrap_err(),
        SdJwtError::SdAlg("sha-512".into())
    );
}

#[test]
fn nested_and_array_disclosures_resolve_and_decoys_are_ignored() {
    let street = disclosure(json!(["c2FsdDE", "street", "示例路1号"]));
    let address =
        disclosure(json!(["c2FsdDI", "address", {"city": "上海", "_sd": [digest(&street)]}]));
    let element = disclosure(json!(["c2FsdDM", "食品经营"]));
    let payload = json!({
        "iss": "SH/entcode",
        "_sd": [digest(&address), "ZGVjb3k"],
        "permits": [{"...": digest(&element)}, "clear", {"...": "ZGVjb3ktZWxlbWVudA"}],
    });
    let d = check(&signed(&payload, &[street, address, element])).unwrap();
    assert_eq!(
        d.payload["address"],
        json!({"city": "上海", "street": "示例路1号"})
    );
    assert_eq!(d.payload["permits"], json!(["食品经营", "clear"]));
    assert_eq!(d.claims.len(), 1, "only address is a top-level disclosure");
}

#[test]
fn a_key_binding_jwt_is_refused_and_a_bad_tail_is_malformed() {
    let text = issued();
    let with_kb = format!("{text}eyJhbGciOiJFZERTQSJ9.e30.c2ln");
    let parsed = parse(&with_kb).unwrap();
    assert!(parsed.key_binding().is_some());
    assert_eq!(parsed.to_compact(), with_kb);
    assert_eq!(
        parsed
            .verify(&key("SH-entcode-a").verifying_key())
            .unwrap_err()
            .reason(),
        "SD_JWT_KEY_BINDING"
    );
    assert_eq!(
        parse(&format!("{text}garbage!")).unwrap_err().reason(),
        "SD_JWT_SHAPE"
    );
}

#[test]
fn sizes_are_bounded() {
    let jwt = issued().split('~').next().unwrap().to_owned();
    let huge = format!("{jwt}~{}~", "A".repeat(MAX_SD_JWT_LEN));
    assert_eq!(parse(&huge).unwrap_err().reason(), "SD_JWT_TOO_LARGE");
    let many: Vec<String> = (0..=MAX_DISCLOSURES)
        .map(|i| disclosure(json!(["c2FsdA", format!("f{i}"), "v"])))
        .collect();
    let text = format!("{jwt}~{}~", many.join("~"));
    assert_eq!(
        parse(&text).unwrap_err(),
        SdJwtError::TooManyDisclosures {
            count: MAX_DISCLOSURES + 1,
            max: MAX_DISCLOSURES
        }
    );
    // Nesting beyond the bound.
    let mut value = json!("leaf");
    for _ in 0..=MAX_DEPTH {
        value = json!([value]);
    }
    let deep = json!({"iss": "SH/entcode", "deep": value});
    assert_eq!(check(&signed(&deep, &[])).unwrap_err(), SdJwtError::TooDeep);
}

#[test]
fn credentials_the_verifier_would_refuse_are_not_issued() {
    let k = key("SH-entcode-a");
    let mut c = credential();
    c.claims[1].name = "name".into();
    assert_eq!(
        issue(&c, &k, &[], salts()).unwrap_err().reason(),
        "SD_JWT_UNISSUABLE"
    );
    let mut c = credential();
    c.claims[0].name = "iss".into();
    assert!(issue(&c, &k, &[], salts()).is_err());
    assert!(issue(&credential(), &k, &[("exp", "1")], salts()).is_err());
}

#[test]
fn the_shape_test_tells_sd_jwts_from_other_text() {
    assert!(looks_like_sd_jwt(&issued()));
    assert!(!looks_like_sd_jwt("CM1:ABC~"));
    assert!(!looks_like_sd_jwt("a.b.c"));
    assert!(!looks_like_sd_jwt("a.b~"));
}

#[test]
fn a_status_reference_round_trips_so_the_sd_jwt_form_is_revocable_too() {
    let k = key("SH-entcode-a");
    let mut c = credential();
    c.status = Some(credmesh_proto::credential::v1::StatusReference {
        list_id: "SH/license/e0".into(),
        index: 42,
    });
    let text = issue(&c, &k, &[("scenario", "bank-loan")], salts()).unwrap();
    let disclosed = parse(&text).unwrap().verify(&k.verifying_key()).unwrap();
    assert_eq!(disclosed.credential().unwrap(), c);
    assert_eq!(disclosed.payload["cm"]["status"]["list"], "SH/license/e0");
    assert_eq!(disclosed.payload["cm"]["status"]["index"], 42);
}

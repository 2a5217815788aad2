//! The bad-input catalogue: malformed and hostile inputs across every public RPC and
//! HTTP route of `credmesh dev`, each with the answer it must get.
//!
//! One table. Each row is sent as the principal it names over real gRPC (raw bytes, so
//! rows can also carry what no typed client would send) or HTTP, and must get the
//! expected gRPC code or HTTP status, the expected `ErrorInfo` reason where one is named,
//! and a message a person can read. Verification RPCs answer a bad credential with an
//! outcome, not an error, so their rows name the outcome. After the table: the process
//! never panicked, and nothing was stored (clients, enterprises and issuer keys are
//! counted before and after).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use base64::Engine as _;
use credmesh_auth::PrincipalKind;
use credmesh_e2e::{Dev, DevOptions, client_token, establishment, operator_token};
use credmesh_proto::{
    credential::v1::{CredentialKind, Envelope, StatusPurpose, VerificationOutcome},
    entcode::v1 as epb,
    identity::v1 as ipb,
    inspection::v1 as ipb_inspection,
    license::v1 as lpb,
    prost::Message,
    verify::v1 as vpb,
};
use tonic::{Code, transport::Channel};

/// Who sends a row.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Who {
    Anonymous,
    Operator,
    Partner,
    Enterprise,
}

/// What a row must get back.
#[derive(Clone, Debug)]
enum Expect {
    /// A gRPC error with this code and, when given, this `ErrorInfo` reason.
    Grpc(Code, Option<&'static str>),
    /// An OK `Verify`/`BatchVerify` answer whose (first) result has this outcome.
    Outcome(VerificationOutcome),
    /// An OK `VerifyPresentation` answer with this outcome.
    Presentation(epb::PresentationOutcome),
    /// An HTTP status and, when given, the JSON error reason.
    Http(u16, Option<&'static str>),
    /// An OAuth 2.0 token endpoint refusal (RFC 6749 §5.2): HTTP status, `error` and the
    /// stable reason beside it.
    OAuth(u16, &'static str, &'static str),
    /// An HTTP 200 scan page that shows "not valid" and does not contain this text
    /// unescaped.
    Page(&'static str),
}

enum Send {
    Grpc(&'static str, Vec<u8>),
    Http {
        method: &'static str,
        path: String,
        content_type: &'static str,
        body: Vec<u8>,
    },
}

struct Row {
    name: String,
    who: Who,
    send: Send,
    expect: Expect,
}

fn grpc<M: Message>(name: &str, who: Who, path: &'static str, msg: M, expect: Expect) -> Row {
    Row {
        name: name.into(),
        who,
        send: Send::Grpc(path, msg.encode_to_vec()),
        expect,
    }
}

fn raw(name: &str, who: Who, path: &'static str, body: Vec<u8>, expect: Expect) -> Row {
    Row {
        name: name.into(),
        who,
        send: Send::Grpc(path, body),
        expect,
    }
}

fn post(name: &str, who: Who, path: &str, body: impl Into<Vec<u8>>, expect: Expect) -> Row {
    Row {
        name: name.into(),
        who,
        send: Send::Http {
            method: "POST",
            path: path.into(),
            content_type: "application/json",
            body: body.into(),
        },
        expect,
    }
}

/// A form-encoded POST to identity's token endpoint, `/v1/token`.
fn token_request(name: &str, body: impl Into<Vec<u8>>, expect: Expect) -> Row {
    Row {
        name: name.into(),
        who: Who::Anonymous,
        send: Send::Http {
            method: "POST",
            path: "/v1/token".into(),
            content_type: "application/x-www-form-urlencoded",
            body: body.into(),
        },
        expect,
    }
}

fn get(name: &str, path: &str, expect: Expect) -> Row {
    Row {
        name: name.into(),
        who: Who::Anonymous,
        send: Send::Http {
            method: "GET",
            path: path.into(),
            content_type: "text/plain",
            body: Vec::new(),
        },
        expect,
    }
}

const INVALID: Code = Code::InvalidArgument;

fn bad(reason: &'static str) -> Expect {
    Expect::Grpc(INVALID, Some(reason))
}

fn invalid() -> Expect {
    Expect::Grpc(INVALID, None)
}

fn verify_text(text: impl Into<String>) -> vpb::VerifyRequest {
    vpb::VerifyRequest {
        credential: Some(vpb::PresentedCredential {
            form: Some(vpb::presented_credential::Form::Text(text.into())),
        }),
    }
}

fn verify_envelope(bytes: Vec<u8>) -> vpb::VerifyRequest {
    vpb::VerifyRequest {
        credential: Some(vpb::PresentedCredential {
            form: Some(vpb::presented_credential::Form::Envelope(bytes)),
        }),
    }
}

/// A protobuf field `number` of wire type "length-delimited" holding `bytes` as is:
/// lets a row put invalid UTF-8 where a string belongs.
fn length_delimited(number: u8, bytes: &[u8]) -> Vec<u8> {
    let mut out = vec![(number << 3) | 2];
    let mut len = bytes.len();
    while len >= 0x80 {
        out.push((len as u8) | 0x80);
        len >>= 7;
    }
    out.push(len as u8);
    out.extend_from_slice(bytes);
    out
}

/// A valid USCC of `division` that no enterprise has.
fn unused_uscc(division: &str) -> String {
    credmesh_uscc::Uscc::from_parts('9', '1', division, "MA1BAD7N")
        .unwrap()
        .to_string()
}

/// The catalogue. `uscc` is a seeded enterprise, `qr` its license's QR text.
fn catalogue(uscc: &str, qr: &str, presentation_qr: &str) -> Vec<Row> {
    use Who::*;
    let fresh = unused_uscc("310101");
    let wrong_check = {
        let mut s = fresh.clone();
        let last = s.pop().unwrap();
        s.push(if last == '0' { '1' } else { '0' });
        s
    };
    const REGISTER: &str = "/credmesh.identity.v1.IdentityService/RegisterClient";
    const GET_CLIENT: &str = "/credmesh.identity.v1.IdentityService/GetClient";
    const LIST_CLIENTS: &str = "/credmesh.identity.v1.IdentityService/ListClients";
    const DISABLE: &str = "/credmesh.identity.v1.IdentityService/DisableClient";
    const TOKEN: &str = "/credmesh.identity.v1.IdentityService/IssueToken";
    const REGISTER_KEY: &str = "/credmesh.identity.v1.IdentityService/RegisterIssuerKey";
    const REVOKE_KEY: &str = "/credmesh.identity.v1.IdentityService/RevokeIssuerKey";
    const PIN: &str = "/credmesh.identity.v1.IdentityService/PinPartnerAnchor";
    const IMPORT: &str = "/credmesh.identity.v1.IdentityService/ImportPartnerTrustList";
    const PARTNER_LIST: &str = "/credmesh.identity.v1.IdentityService/GetPartnerTrustList";
    const ESTABLISH: &str = "/credmesh.license.v1.LicenseService/EstablishEnterprise";
    const AMEND: &str = "/credmesh.license.v1.LicenseService/AmendLicense";
    const DEREGISTER: &str = "/credmesh.license.v1.LicenseService/DeregisterEnterprise";
    const REVOKE: &str = "/credmesh.license.v1.LicenseService/RevokeLicense";
    const GET_LICENSE: &str = "/credmesh.license.v1.LicenseService/GetLicense";
    const GET_VERSION: &str = "/credmesh.license.v1.LicenseService/GetLicenseVersion";
    const VERSIONS: &str = "/credmesh.license.v1.LicenseService/ListLicenseVersions";
    const HISTORY: &str = "/credmesh.license.v1.LicenseService/GetEnterpriseHistory";
    const ENTERPRISES: &str = "/credmesh.license.v1.LicenseService/ListEnterprises";
    const STATUS: &str = "/credmesh.license.v1.LicenseService/GetStatusList";
    const CODE: &str = "/credmesh.entcode.v1.EnterpriseCodeService/GetEnterpriseCode";
    const PRESENT: &str = "/credmesh.entcode.v1.EnterpriseCodeService/CreatePresentation";
    const CHECK: &str = "/credmesh.entcode.v1.EnterpriseCodeService/VerifyPresentation";
    const PUT_SCENARIO: &str = "/credmesh.entcode.v1.EnterpriseCodeService/PutScenario";
    const GET_SCENARIO: &str = "/credmesh.entcode.v1.EnterpriseCodeService/GetScenario";
    const RETIRE_SCENARIO: &str = "/credmesh.entcode.v1.EnterpriseCodeService/RetireScenario";
    const SCENARIO_HISTORY: &str = "/credmesh.entcode.v1.EnterpriseCodeService/ListScenarioHistory";
    const VERIFY: &str = "/credmesh.verify.v1.VerifyService/Verify";
    const BATCH: &str = "/credmesh.verify.v1.VerifyService/BatchVerify";
    const AUDIT: &str = "/credmesh.verify.v1.VerifyService/ListVerificationAudit";
    const PLAN: &str = "/credmesh.inspection.v1.InspectionService/PlanInspection";
    const JOIN: &str = "/credmesh.inspection.v1.InspectionService/JoinInspection";
    const SCAN: &str = "/credmesh.inspection.v1.InspectionService/ScanCode";
    const EVALUATE: &str = "/credmesh.inspection.v1.InspectionService/EvaluateInspection";
    const STATISTICS: &str = "/credmesh.inspection.v1.InspectionService/GetStatistics";
    const POLICY_IMPORT: &str = "/credmesh.inspection.v1.InspectionService/ImportPolicyData";
    const GRADE: &str = "/credmesh.inspection.v1.InspectionService/GetCreditGrade";
    const INSPECTION_STATUS: &str = "/credmesh.inspection.v1.InspectionService/GetStatusList";
    /// A department an operator plans for (the Jing'an market bureau).
    const DEPARTMENT: &str = "11310106MB2F10062C";

    let client = |id: &str| ipb::RegisterClientRequest {
        client_id: id.into(),
        kind: PrincipalKind::Partner.to_proto(),
        display_name: "a partner".into(),
        scopes: vec!["verify".into()],
        public_key: vec![9; 32],
        ..Default::default()
    };
    let with = |f: &dyn Fn(&mut lpb::EstablishEnterpriseRequest)| {
        let mut r = establishment(&fresh);
        f(&mut r);
        r
    };
    let envelope_of_qr = credmesh_credential::from_qr(qr).unwrap();
    let forged = {
        let mut e = envelope_of_qr.clone();
        e.signature[5] ^= 0x40;
        credmesh_credential::to_qr(&e)
    };
    let altered_payload = {
        let mut e = envelope_of_qr.clone();
        let n = e.payload.len();
        e.payload[n / 2] ^= 1;
        credmesh_credential::encode_envelope(&e)
    };
    let foreign = {
        // A well-formed license signed by a key no trusted region knows, claiming ZJ.
        let key = credmesh_credential::IssuerKey::generate("ZJ-license-x").unwrap();
        let mut c: credmesh_proto::credential::v1::Credential =
            Message::decode(envelope_of_qr.payload.as_slice()).unwrap();
        c.region = "ZJ".into();
        c.issuer = "ZJ/license".into();
        credmesh_credential::to_qr(&credmesh_credential::sign_credential(&c, &key))
    };
    let jwt_none = {
        let b64 = |v: serde_json::Value| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
        };
        format!(
            "{}.{}.",
            b64(serde_json::json!({"alg": "none", "typ": "vc+jwt"})),
            b64(serde_json::json!({"iss": "SH/license", "sub": uscc}))
        )
    };
    let long = "长".repeat(5000);
    let mut rows = vec![
        // ---- identity
        grpc("client id empty", Operator, REGISTER, client(""), invalid()),
        grpc(
            "client id with SQL",
            Operator,
            REGISTER,
            client("x'; DROP TABLE clients;--"),
            invalid(),
        ),
        grpc(
            "client key of 31 bytes",
            Operator,
            REGISTER,
            ipb::RegisterClientRequest {
                public_key: vec![9; 31],
                ..client("short-key")
            },
            invalid(),
        ),
        grpc(
            "client kind unspecified",
            Operator,
            REGISTER,
            ipb::RegisterClientRequest {
                kind: 0,
                ..client("no-kind")
            },
            invalid(),
        ),
        grpc(
            "client kind out of range",
            Operator,
            REGISTER,
            ipb::RegisterClientRequest {
                kind: 99,
                ..client("kind-99")
            },
            invalid(),
        ),
        grpc(
            "client with an unknown scope",
            Operator,
            REGISTER,
            ipb::RegisterClientRequest {
                scopes: vec!["license.everything".into()],
                ..client("bad-scope")
            },
            invalid(),
        ),
        grpc(
            "client display name of 5000 characters",
            Operator,
            REGISTER,
            ipb::RegisterClientRequest {
                display_name: long.clone(),
                ..client("long-name")
            },
            invalid(),
        ),
        grpc(
            "client registered by a partner",
            Partner,
            REGISTER,
            client("self-made"),
            Expect::Grpc(Code::PermissionDenied, None),
        ),
        grpc(
            "client registered anonymously",
            Anonymous,
            REGISTER,
            client("anon-made"),
            Expect::Grpc(Code::Unauthenticated, None),
        ),
        grpc(
            "unknown client read",
            Operator,
            GET_CLIENT,
            ipb::GetClientRequest {
                client_id: "nobody".into(),
            },
            Expect::Grpc(Code::NotFound, None),
        ),
        grpc(
            "client page token forged",
            Operator,
            LIST_CLIENTS,
            ipb::ListClientsRequest {
                page_size: 10,
                page_token: "eyJhZnRlciI6IngifQ".into(),
            },
            invalid(),
        ),
        grpc(
            "unknown client disabled",
            Operator,
            DISABLE,
            ipb::DisableClientRequest {
                client_id: "nobody".into(),
                reason: "test".into(),
            },
            Expect::Grpc(Code::NotFound, None),
        ),
        grpc(
            "token for an unknown client",
            Anonymous,
            TOKEN,
            ipb::IssueTokenRequest {
                client_id: "nobody".into(),
                credential: Some(ipb::issue_token_request::Credential::ClientAssertion(
                    "a.b.c".into(),
                )),
                ..Default::default()
            },
            Expect::Grpc(Code::Unauthenticated, None),
        ),
        grpc(
            "token with a garbage assertion",
            Anonymous,
            TOKEN,
            ipb::IssueTokenRequest {
                client_id: "operator".into(),
                credential: Some(ipb::issue_token_request::Credential::ClientAssertion(
                    "not-a-jwt".into(),
                )),
                ..Default::default()
            },
            Expect::Grpc(Code::Unauthenticated, None),
        ),
        grpc(
            "token with no credential",
            Anonymous,
            TOKEN,
            ipb::IssueTokenRequest {
                client_id: "operator".into(),
                ..Default::default()
            },
            invalid(),
        ),
        grpc(
            "issuer key of the wrong length",
            Operator,
            REGISTER_KEY,
            ipb::RegisterIssuerKeyRequest {
                issuer: "SH/license".into(),
                kid: "SH-license-bad".into(),
                public_key: vec![1; 33],
                kinds: vec![CredentialKind::BusinessLicense as i32],
                not_after: 0,
            },
            invalid(),
        ),
        grpc(
            "issuer key of small order (the identity point)",
            Operator,
            REGISTER_KEY,
            ipb::RegisterIssuerKeyRequest {
                issuer: "SH/license".into(),
                kid: "SH-license-weak".into(),
                public_key: {
                    let mut k = vec![0; 32];
                    k[0] = 1;
                    k
                },
                kinds: vec![CredentialKind::BusinessLicense as i32],
                not_after: 0,
            },
            invalid(),
        ),
        grpc(
            "unknown issuer key revoked",
            Operator,
            REVOKE_KEY,
            ipb::RevokeIssuerKeyRequest {
                kid: "SH-nothing-0000".into(),
                reason: "test".into(),
            },
            Expect::Grpc(Code::NotFound, None),
        ),
        grpc(
            "partner anchor for an unknown region",
            Operator,
            PIN,
            ipb::PinPartnerAnchorRequest {
                anchor: Some(ipb::PartnerAnchor {
                    region: "XX".into(),
                    public_key: vec![3; 32],
                    ..Default::default()
                }),
            },
            invalid(),
        ),
        grpc(
            "partner trust list that is not signed",
            Operator,
            IMPORT,
            ipb::ImportPartnerTrustListRequest {
                trust_list: Some(Envelope {
                    payload: b"garbage".to_vec(),
                    signature: vec![0; 64],
                    kid: "JS-anchor-x".into(),
                }),
            },
            invalid(),
        ),
        grpc(
            "partner trust list for region ''",
            Anonymous,
            PARTNER_LIST,
            ipb::GetPartnerTrustListRequest { region: "".into() },
            bad("REGION_UNKNOWN"),
        ),
        // ---- license
        grpc(
            "USCC of 17 characters",
            Operator,
            ESTABLISH,
            with(&|r| r.uscc = fresh[..17].into()),
            bad("USCC_LENGTH"),
        ),
        grpc(
            "USCC with a wrong check character",
            Operator,
            ESTABLISH,
            with(&|r| r.uscc = wrong_check.clone()),
            bad("USCC_CHECK_DIGIT"),
        ),
        grpc(
            "USCC in full-width digits",
            Operator,
            ESTABLISH,
            with(&|r| {
                r.uscc = fresh
                    .chars()
                    .map(|c| char::from_u32(c as u32 + 0xFEE0).unwrap())
                    .collect()
            }),
            invalid(),
        ),
        grpc(
            "USCC with SQL injection",
            Operator,
            ESTABLISH,
            with(&|r| r.uscc = format!("{fresh}' OR '1'='1")),
            invalid(),
        ),
        grpc(
            "USCC of another region",
            Operator,
            ESTABLISH,
            with(&|r| r.uscc = unused_uscc("320100")),
            invalid(),
        ),
        grpc(
            "name empty",
            Operator,
            ESTABLISH,
            with(&|r| r.name = String::new()),
            invalid(),
        ),
        grpc(
            "name of 5000 characters",
            Operator,
            ESTABLISH,
            with(&|r| r.name = long.clone()),
            bad("FIELD_LENGTH"),
        ),
        grpc(
            "name with a NUL character",
            Operator,
            ESTABLISH,
            with(&|r| r.name = "上海\0公司".into()),
            bad("FIELD_CHARACTERS"),
        ),
        grpc(
            "domicile with a bidi override",
            Operator,
            ESTABLISH,
            with(&|r| r.domicile = "上海市\u{202e}路1号".into()),
            bad("FIELD_CHARACTERS"),
        ),
        grpc(
            "establishment on 30 February",
            Operator,
            ESTABLISH,
            with(&|r| r.establishment_date = "2021-02-30".into()),
            bad("DATE_INVALID"),
        ),
        grpc(
            "business term ending before establishment",
            Operator,
            ESTABLISH,
            with(&|r| {
                r.business_term = Some(lpb::BusinessTerm {
                    long_term: false,
                    end_date: "2020-01-01".into(),
                    ..Default::default()
                })
            }),
            bad("DATES_INCONSISTENT"),
        ),
        grpc(
            "negative registered capital",
            Operator,
            ESTABLISH,
            with(&|r| {
                r.registered_capital = Some(lpb::Money {
                    amount: "-5".into(),
                    currency_code: "CNY".into(),
                })
            }),
            bad("MONEY_INVALID"),
        ),
        grpc(
            "registered capital in exponent notation",
            Operator,
            ESTABLISH,
            with(&|r| {
                r.registered_capital = Some(lpb::Money {
                    amount: "1e9".into(),
                    currency_code: "CNY".into(),
                })
            }),
            bad("MONEY_INVALID"),
        ),
        grpc(
            "unknown registration authority",
            Operator,
            ESTABLISH,
            with(&|r| r.registration_authority = "11310000MB2F10099X".into()),
            invalid(),
        ),
        grpc(
            "representative ID number with a bad check digit",
            Operator,
            ESTABLISH,
            with(&|r| r.legal_representative_id_number = "110101199003070000".into()),
            bad("ID_NUMBER_INVALID"),
        ),
        grpc(
            "establishment by an enterprise",
            Enterprise,
            ESTABLISH,
            with(&|_| {}),
            Expect::Grpc(Code::PermissionDenied, None),
        ),
        grpc(
            "amendment of an unknown enterprise",
            Operator,
            AMEND,
            lpb::AmendLicenseRequest {
                uscc: fresh.clone(),
                expected_version: 1,
                name: Some("新名字有限公司".into()),
                reason: "更名".into(),
                ..Default::default()
            },
            Expect::Grpc(Code::NotFound, None),
        ),
        grpc(
            "amendment that changes nothing",
            Operator,
            AMEND,
            lpb::AmendLicenseRequest {
                uscc: uscc.into(),
                expected_version: 1,
                reason: "无".into(),
                ..Default::default()
            },
            bad("AMENDMENT_EMPTY"),
        ),
        grpc(
            "amendment against a stale version",
            Operator,
            AMEND,
            lpb::AmendLicenseRequest {
                uscc: uscc.into(),
                expected_version: 7,
                name: Some("新名字有限公司".into()),
                reason: "更名".into(),
                ..Default::default()
            },
            Expect::Grpc(Code::Aborted, Some("VERSION_MISMATCH")),
        ),
        grpc(
            "revocation without a reason",
            Operator,
            REVOKE,
            lpb::RevokeLicenseRequest {
                uscc: uscc.into(),
                reason: String::new(),
                ..Default::default()
            },
            bad("REASON_INVALID"),
        ),
        grpc(
            "deregistration of an unknown enterprise",
            Operator,
            DEREGISTER,
            lpb::DeregisterEnterpriseRequest {
                uscc: fresh.clone(),
                reason: "注销".into(),
                ..Default::default()
            },
            Expect::Grpc(Code::NotFound, None),
        ),
        grpc(
            "license read with a malformed USCC",
            Operator,
            GET_LICENSE,
            lpb::GetLicenseRequest {
                uscc: "<script>".into(),
            },
            invalid(),
        ),
        grpc(
            "license version 0",
            Operator,
            GET_VERSION,
            lpb::GetLicenseVersionRequest {
                uscc: uscc.into(),
                version: 0,
            },
            bad("VERSION_INVALID"),
        ),
        grpc(
            "license version 999",
            Operator,
            GET_VERSION,
            lpb::GetLicenseVersionRequest {
                uscc: uscc.into(),
                version: 999,
            },
            Expect::Grpc(Code::NotFound, None),
        ),
        grpc(
            "version page token forged",
            Operator,
            VERSIONS,
            lpb::ListLicenseVersionsRequest {
                uscc: uscc.into(),
                page_size: 5,
                page_token: "AAAA".into(),
            },
            invalid(),
        ),
        grpc(
            "history page token of another list",
            Operator,
            HISTORY,
            lpb::GetEnterpriseHistoryRequest {
                uscc: uscc.into(),
                page_size: 5,
                page_token: "%%%".into(),
            },
            invalid(),
        ),
        grpc(
            "enterprise state out of range",
            Operator,
            ENTERPRISES,
            lpb::ListEnterprisesRequest {
                state: 42,
                ..Default::default()
            },
            invalid(),
        ),
        grpc(
            "status list that does not exist",
            Anonymous,
            STATUS,
            lpb::GetStatusListRequest {
                list_id: "SH/license/999".into(),
                purpose: StatusPurpose::Revocation as i32,
            },
            Expect::Grpc(Code::NotFound, None),
        ),
        grpc(
            "status list without a purpose",
            Anonymous,
            STATUS,
            lpb::GetStatusListRequest {
                list_id: "SH/license/0".into(),
                purpose: 0,
            },
            invalid(),
        ),
        // ---- entcode
        grpc(
            "enterprise code of a malformed USCC",
            Operator,
            CODE,
            epb::GetEnterpriseCodeRequest {
                uscc: "1 OR 1=1".into(),
            },
            invalid(),
        ),
        grpc(
            "enterprise code of an unknown enterprise",
            Operator,
            CODE,
            epb::GetEnterpriseCodeRequest {
                uscc: fresh.clone(),
            },
            Expect::Grpc(Code::NotFound, None),
        ),
        grpc(
            "presentation for an unknown scenario",
            Enterprise,
            PRESENT,
            epb::CreatePresentationRequest {
                uscc: uscc.into(),
                scenario: "everything".into(),
            },
            invalid(),
        ),
        grpc(
            "presentation of another enterprise",
            Enterprise,
            PRESENT,
            epb::CreatePresentationRequest {
                uscc: unused_uscc("310115"),
                scenario: "basic".into(),
            },
            Expect::Grpc(Code::PermissionDenied, None),
        ),
        grpc(
            "scenario disclosing a field no license has",
            Operator,
            PUT_SCENARIO,
            epb::PutScenarioRequest {
                name: "kyc".into(),
                description: "know your customer".into(),
                fields: vec!["name".into(), "legal_representative_id_number".into()],
                reason: "a bank asked".into(),
                ..Default::default()
            },
            Expect::Grpc(INVALID, Some("SCENARIO_FIELD_UNKNOWN")),
        ),
        grpc(
            "scenario with a hostile name",
            Operator,
            PUT_SCENARIO,
            epb::PutScenarioRequest {
                name: "basic'; DROP TABLE scenarios; --".into(),
                description: "x".into(),
                fields: vec!["name".into()],
                reason: "x".into(),
                ..Default::default()
            },
            Expect::Grpc(INVALID, Some("SCENARIO_NAME_INVALID")),
        ),
        grpc(
            "scenario change without a reason",
            Operator,
            PUT_SCENARIO,
            epb::PutScenarioRequest {
                name: "basic".into(),
                description: "x".into(),
                fields: vec!["name".into()],
                reason: " ".into(),
                ..Default::default()
            },
            Expect::Grpc(INVALID, Some("REASON_REQUIRED")),
        ),
        grpc(
            "scenario change on a version that is not current",
            Operator,
            PUT_SCENARIO,
            epb::PutScenarioRequest {
                name: "basic".into(),
                description: "x".into(),
                fields: vec!["name".into()],
                reason: "x".into(),
                expected_version: Some(7),
                ..Default::default()
            },
            Expect::Grpc(Code::Aborted, Some("SCENARIO_VERSION_CONFLICT")),
        ),
        grpc(
            "scenario version that does not exist",
            Anonymous,
            GET_SCENARIO,
            epb::GetScenarioRequest {
                name: "basic".into(),
                version: 99,
            },
            Expect::Grpc(Code::NotFound, Some("SCENARIO_NOT_FOUND")),
        ),
        grpc(
            "retiring a scenario that does not exist",
            Operator,
            RETIRE_SCENARIO,
            epb::RetireScenarioRequest {
                name: "nothing-here".into(),
                reason: "x".into(),
                ..Default::default()
            },
            Expect::Grpc(Code::NotFound, Some("SCENARIO_NOT_FOUND")),
        ),
        grpc(
            "scenario history with a forged page token",
            Operator,
            SCENARIO_HISTORY,
            epb::ListScenarioHistoryRequest {
                name: "basic".into(),
                page_size: 0,
                page_token: "not-a-token".into(),
            },
            Expect::Grpc(INVALID, Some("PAGE_TOKEN_INVALID")),
        ),
        grpc(
            "presentation check of nothing",
            Partner,
            CHECK,
            epb::VerifyPresentationRequest {
                qr_text: String::new(),
            },
            invalid(),
        ),
        grpc(
            "presentation check of garbage",
            Partner,
            CHECK,
            epb::VerifyPresentationRequest {
                qr_text: "CM1:%%%%".into(),
            },
            Expect::Presentation(epb::PresentationOutcome::Malformed),
        ),
        grpc(
            "presentation replayed",
            Partner,
            CHECK,
            epb::VerifyPresentationRequest {
                qr_text: presentation_qr.into(),
            },
            Expect::Presentation(epb::PresentationOutcome::AlreadyUsed),
        ),
        grpc(
            "a license passed off as a presentation",
            Partner,
            CHECK,
            epb::VerifyPresentationRequest { qr_text: qr.into() },
            Expect::Presentation(epb::PresentationOutcome::UnknownIssuer),
        ),
        // ---- verify
        grpc(
            "verify with no credential",
            Partner,
            VERIFY,
            vpb::VerifyRequest { credential: None },
            invalid(),
        ),
        grpc(
            "verify garbage envelope bytes",
            Partner,
            VERIFY,
            verify_envelope(vec![0xff; 64]),
            Expect::Outcome(VerificationOutcome::Malformed),
        ),
        grpc(
            "verify broken QR text",
            Partner,
            VERIFY,
            verify_text("CM1:!!!!"),
            Expect::Outcome(VerificationOutcome::Malformed),
        ),
        grpc(
            "verify a forged signature",
            Partner,
            VERIFY,
            verify_text(forged),
            Expect::Outcome(VerificationOutcome::BadSignature),
        ),
        grpc(
            "verify an altered payload",
            Partner,
            VERIFY,
            verify_envelope(altered_payload),
            Expect::Outcome(VerificationOutcome::BadSignature),
        ),
        grpc(
            "verify a credential of an untrusted region",
            Partner,
            VERIFY,
            verify_text(foreign),
            Expect::Outcome(VerificationOutcome::UnknownIssuer),
        ),
        grpc(
            "verify an unsigned alg=none JWT",
            Partner,
            VERIFY,
            verify_text(jwt_none),
            Expect::Outcome(VerificationOutcome::Malformed),
        ),
        grpc(
            "verify HTML in place of a credential",
            Partner,
            VERIFY,
            verify_text("<img src=x onerror=alert(1)>"),
            Expect::Outcome(VerificationOutcome::Malformed),
        ),
        grpc(
            "verify without a token",
            Anonymous,
            VERIFY,
            verify_text(qr),
            Expect::Grpc(Code::Unauthenticated, None),
        ),
        grpc(
            "batch of nothing",
            Partner,
            BATCH,
            vpb::BatchVerifyRequest {
                credentials: vec![],
            },
            invalid(),
        ),
        grpc(
            "batch of 5000",
            Partner,
            BATCH,
            vpb::BatchVerifyRequest {
                credentials: vec![
                    vpb::PresentedCredential {
                        form: Some(vpb::presented_credential::Form::Text("x".into())),
                    };
                    5000
                ],
            },
            invalid(),
        ),
        // ---- the verification audit
        grpc(
            "audit with a page token it never issued",
            Operator,
            AUDIT,
            vpb::ListVerificationAuditRequest {
                page_token: "zz".into(),
                ..Default::default()
            },
            bad("PAGE_TOKEN"),
        ),
        grpc(
            "audit with a well-formed page token of another shape",
            Partner,
            AUDIT,
            vpb::ListVerificationAuditRequest {
                page_token: "6e6f2d636f6c6f6e".into(),
                ..Default::default()
            },
            bad("PAGE_TOKEN"),
        ),
        grpc(
            "audit with an inverted time range",
            Partner,
            AUDIT,
            vpb::ListVerificationAuditRequest {
                since: 1_790_000_000,
                until: 1_780_000_000,
                ..Default::default()
            },
            bad("TIME_RANGE"),
        ),
        grpc(
            "audit with a negative time",
            Operator,
            AUDIT,
            vpb::ListVerificationAuditRequest {
                since: -5,
                ..Default::default()
            },
            bad("TIME_RANGE"),
        ),
        grpc(
            "audit with an outcome that does not exist",
            Operator,
            AUDIT,
            vpb::ListVerificationAuditRequest {
                outcome: 99,
                ..Default::default()
            },
            bad("OUTCOME_UNKNOWN"),
        ),
        grpc(
            "a partner reading another partner's audit",
            Partner,
            AUDIT,
            vpb::ListVerificationAuditRequest {
                client_id: "someone-else".into(),
                ..Default::default()
            },
            Expect::Grpc(Code::PermissionDenied, Some("AUDIT_OF_ANOTHER_PARTNER")),
        ),
        Row {
            name: "audit over HTTP with an inverted time range".into(),
            who: Partner,
            send: Send::Http {
                method: "GET",
                path: "/v1/verify/audit?since=20&until=10".into(),
                content_type: "text/plain",
                body: Vec::new(),
            },
            expect: Expect::Http(400, Some("TIME_RANGE")),
        },
        Row {
            name: "audit over HTTP with an unknown query parameter".into(),
            who: Partner,
            send: Send::Http {
                method: "GET",
                path: "/v1/verify/audit?partner=x%00".into(),
                content_type: "text/plain",
                body: Vec::new(),
            },
            expect: Expect::Http(400, Some("INVALID_QUERY")),
        },
        Row {
            name: "audit over HTTP with a bad page token".into(),
            who: Operator,
            send: Send::Http {
                method: "GET",
                path: "/v1/verify/audit?page_token=%3Cscript%3E".into(),
                content_type: "text/plain",
                body: Vec::new(),
            },
            expect: Expect::Http(400, Some("PAGE_TOKEN")),
        },
        // ---- the OAuth 2.0 token endpoint (identity, HTTP)
        post(
            "token request as JSON",
            Anonymous,
            "/v1/token",
            r#"{"grant_type":"client_credentials"}"#,
            Expect::OAuth(400, "invalid_request", "CONTENT_TYPE_UNSUPPORTED"),
        ),
        token_request(
            "token request of bytes that are not UTF-8",
            vec![0xff, 0xfe, b'=', 0xc3, 0x28],
            Expect::OAuth(400, "invalid_request", "GRANT_TYPE_MISSING"),
        ),
        token_request(
            "token request with a hostile grant type",
            "grant_type=%3Cscript%3Ealert(1)%3C%2Fscript%3E",
            Expect::OAuth(400, "unsupported_grant_type", "UNSUPPORTED_GRANT_TYPE"),
        ),
        token_request(
            "token request without client authentication",
            "grant_type=client_credentials&scope=verify",
            Expect::OAuth(401, "invalid_client", "CLIENT_CREDENTIAL_MISSING"),
        ),
        token_request(
            "token request with an assertion that is not a JWT",
            "grant_type=client_credentials&client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer&client_assertion=%27%20OR%201%3D1%20--",
            Expect::OAuth(401, "invalid_client", "CLIENT_AUTH_FAILED"),
        ),
        token_request(
            "token request for an unknown client by secret",
            "grant_type=client_credentials&client_id=%27%3B%20DROP%20TABLE%20clients%3B--&client_secret=x",
            Expect::OAuth(401, "invalid_client", "CLIENT_AUTH_FAILED"),
        ),
        // ---- the wire itself
        raw(
            "bytes that are not protobuf",
            Operator,
            ESTABLISH,
            vec![0xff, 0xff, 0xff, 0x0f, 0x01],
            bad("MALFORMED_REQUEST"),
        ),
        raw(
            "invalid UTF-8 in a string field",
            Operator,
            ESTABLISH,
            length_delimited(1, &[0x39, 0x31, 0xc3, 0x28, 0xff]),
            bad("MALFORMED_REQUEST"),
        ),
        raw(
            "a 5 MiB message",
            Operator,
            ESTABLISH,
            length_delimited(2, &vec![b'a'; 5 * 1024 * 1024]),
            Expect::Grpc(Code::ResourceExhausted, Some("MESSAGE_TOO_LARGE")),
        ),
        raw(
            "a method that does not exist",
            Operator,
            "/credmesh.license.v1.LicenseService/DropEverything",
            Vec::new(),
            Expect::Grpc(Code::Unimplemented, Some("METHOD_UNKNOWN")),
        ),
        raw(
            "a token that is not a JWT",
            Who::Anonymous,
            GET_LICENSE,
            Vec::new(),
            Expect::Grpc(Code::Unauthenticated, None),
        ),
        // ---- HTTP
        post(
            "HTTP verify without a token",
            Anonymous,
            "/v1/verify",
            r#"{"credential":"x"}"#,
            Expect::Http(401, None),
        ),
        post(
            "HTTP verify with broken JSON",
            Partner,
            "/v1/verify",
            r#"{"credential":"#,
            Expect::Http(400, Some("INVALID_JSON")),
        ),
        post(
            "HTTP verify with an unknown field",
            Partner,
            "/v1/verify",
            r#"{"credential":"x","admin":true}"#,
            Expect::Http(400, Some("INVALID_JSON")),
        ),
        post(
            "HTTP verify with a number for a string",
            Partner,
            "/v1/verify",
            r#"{"credential":5}"#,
            Expect::Http(400, Some("INVALID_JSON")),
        ),
        post(
            "HTTP verify with both forms",
            Partner,
            "/v1/verify",
            format!(r#"{{"credential":"{qr}","envelope":"AAAA"}}"#),
            Expect::Http(400, None),
        ),
        post(
            "HTTP verify with neither form",
            Partner,
            "/v1/verify",
            "{}",
            Expect::Http(400, None),
        ),
        post(
            "HTTP verify with invalid UTF-8",
            Partner,
            "/v1/verify",
            b"{\"credential\":\"\xff\xfe\"}".to_vec(),
            Expect::Http(400, Some("INVALID_JSON")),
        ),
        post(
            "HTTP verify with an envelope that is not base64",
            Partner,
            "/v1/verify",
            r#"{"envelope":"***"}"#,
            Expect::Http(400, None),
        ),
        post(
            "HTTP batch of 5000",
            Partner,
            "/v1/verify/batch",
            format!(
                r#"{{"credentials":[{}]}}"#,
                vec![r#"{"credential":"x"}"#; 5000].join(",")
            ),
            Expect::Http(400, None),
        ),
        post(
            "HTTP body of 8 MiB",
            Partner,
            "/v1/verify",
            format!(r#"{{"credential":"{}"}}"#, "a".repeat(8 * 1024 * 1024)),
            Expect::Http(413, None),
        ),
        get(
            "scan page with a script",
            "/v/%3Cscript%3Ealert(1)%3C%2Fscript%3E",
            Expect::Page("<script>alert(1)"),
        ),
        get(
            "scan page with an attribute breakout",
            "/v/%22%3E%3Cimg%20src%3Dx%20onerror%3Dalert(1)%3E",
            Expect::Page("<img src=x"),
        ),
        get(
            "scan page with SQL",
            "/v/CM1%3A'%20OR%201%3D1%20--",
            Expect::Page("' OR 1=1"),
        ),
        get(
            "scan page with invalid percent-encoded UTF-8",
            "/v/%FF%FE%FD",
            Expect::Page("\u{fffd}\u{fffd}"),
        ),
        get(
            "status list with an unknown purpose",
            "/v1/status/SH/license/0/everything",
            Expect::Http(404, None),
        ), // The inspection code service.
        grpc(
            "inspection plan with no items, no type and a window ending before it starts",
            Operator,
            PLAN,
            ipb_inspection::PlanInspectionRequest {
                enterprise_uscc: uscc.to_string(),
                department: DEPARTMENT.into(),
                window_start: 2_000_000_000,
                window_end: 1_000_000_000,
                ..Default::default()
            },
            invalid(),
        ),
        grpc(
            "inspection plan of an enterprise code with a wrong check character",
            Operator,
            PLAN,
            ipb_inspection::PlanInspectionRequest {
                enterprise_uscc: wrong_check.clone(),
                department: DEPARTMENT.into(),
                items: vec!["food-safety".into()],
                r#type: ipb_inspection::InspectionType::Routine as i32,
                plan_number: "P-1".into(),
                inspectors: vec![ipb_inspection::Inspector {
                    client_id: "nobody".into(),
                    enforcement_certificate: "c".into(),
                    department: String::new(),
                }],
                window_start: 2_000_000_000,
                window_end: 2_000_086_400,
                ..Default::default()
            },
            invalid(),
        ),
        grpc(
            "inspection join of a 10 kB inspection id",
            Operator,
            JOIN,
            ipb_inspection::JoinInspectionRequest {
                inspection_id: "I".repeat(10_000),
                department: DEPARTMENT.into(),
                ..Default::default()
            },
            invalid(),
        ),
        grpc(
            "inspection scan of an empty code",
            Enterprise,
            SCAN,
            ipb_inspection::ScanCodeRequest { code: " ".into() },
            bad("CODE_REQUIRED"),
        ),
        grpc(
            "inspection scan of a license QR instead of an inspection code",
            Enterprise,
            SCAN,
            ipb_inspection::ScanCodeRequest { code: qr.into() },
            Expect::Grpc(Code::FailedPrecondition, None),
        ),
        grpc(
            "inspection evaluation scored 9 with an unknown tag",
            Enterprise,
            EVALUATE,
            ipb_inspection::EvaluateInspectionRequest {
                inspection_id: "INS-0".into(),
                score: 9,
                tags: vec!["<script>".into()],
                ..Default::default()
            },
            invalid(),
        ),
        grpc(
            "inspection statistics of a department and an enterprise at once",
            Operator,
            STATISTICS,
            ipb_inspection::GetStatisticsRequest {
                department: DEPARTMENT.into(),
                enterprise_uscc: uscc.to_string(),
                ..Default::default()
            },
            invalid(),
        ),
        grpc(
            "policy import of nothing",
            Operator,
            POLICY_IMPORT,
            ipb_inspection::ImportPolicyDataRequest::default(),
            invalid(),
        ),
        grpc(
            "policy import of a credit grade without a grade",
            Operator,
            POLICY_IMPORT,
            ipb_inspection::ImportPolicyDataRequest {
                entries: vec![ipb_inspection::PolicyEntry {
                    kind: ipb_inspection::PolicyKind::CreditGrade as i32,
                    enterprise_uscc: uscc.to_string(),
                    ..Default::default()
                }],
                idempotency_key: String::new(),
            },
            invalid(),
        ),
        grpc(
            "credit grade of a malformed enterprise code",
            Operator,
            GRADE,
            ipb_inspection::GetCreditGradeRequest {
                uscc: "' OR 1=1 --".into(),
            },
            invalid(),
        ),
        grpc(
            "inspection status list of another service",
            Anonymous,
            INSPECTION_STATUS,
            ipb_inspection::GetStatusListRequest {
                list_id: "SH/license/0".into(),
                purpose: StatusPurpose::Revocation as i32,
            },
            Expect::Grpc(Code::NotFound, None),
        ),
    ];
    for (i, row) in rows.iter_mut().enumerate() {
        row.name = format!("{:02} {}", i + 1, row.name);
    }
    rows
}

/// Sends an HTTP request; (status, headers, body).
async fn http(
    addr: &str,
    method: &str,
    path: &str,
    content_type: &str,
    token: Option<&str>,
    body: &[u8],
) -> (u16, String, Vec<u8>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let auth = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Type: {content_type}\r\n{auth}Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).await.unwrap();
    // The server may answer (413) and close before reading a large body.
    let _ = s.write_all(body).await;
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf).await;
    let split = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or(buf.len());
    let head = String::from_utf8_lossy(&buf[..split]).to_string();
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (
        code,
        head,
        buf.get(split + 4..).unwrap_or_default().to_vec(),
    )
}

/// Counts of what bad input must never create.
async fn stored(channel: &Channel, operator: &str) -> (usize, usize, usize) {
    use credmesh_e2e::with_token;
    use credmesh_proto::{
        identity::v1::identity_service_client::IdentityServiceClient,
        license::v1::license_service_client::LicenseServiceClient,
    };
    let mut identity = IdentityServiceClient::new(channel.clone());
    let mut clients = 0;
    let mut token = String::new();
    loop {
        let page = identity
            .list_clients(with_token(
                ipb::ListClientsRequest {
                    page_size: 100,
                    page_token: token,
                },
                operator,
            ))
            .await
            .unwrap()
            .into_inner();
        clients += page.clients.len();
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    let keys = identity
        .list_issuer_keys(with_token(ipb::ListIssuerKeysRequest::default(), operator))
        .await
        .unwrap()
        .into_inner()
        .keys
        .len();
    let mut license = LicenseServiceClient::new(channel.clone());
    let mut enterprises = 0;
    let mut token = String::new();
    loop {
        let page = license
            .list_enterprises(with_token(
                lpb::ListEnterprisesRequest {
                    page_size: 100,
                    page_token: token,
                    ..Default::default()
                },
                operator,
            ))
            .await
            .unwrap()
            .into_inner();
        enterprises += page.enterprises.len();
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    (clients, keys, enterprises)
}

/// A message a person can read: a sentence, not a dump.
fn readable(message: &str) -> bool {
    let m = message.trim();
    m.chars().count() >= 12
        && m.contains(' ')
        && !m.contains("panicked")
        && !m.contains("Status {")
        && !m.contains("Error(")
}

#[tokio::test]
async fn every_bad_input_gets_its_answer_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("dev.log");
    let dev = Dev::start_with(
        &dir.path().join("data"),
        &DevOptions {
            stderr: Some(log.clone()),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let channel = Channel::from_shared(format!("http://{}", dev.grpc))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let operator = operator_token(&dev.banner);
    let lines: Vec<&str> = dev.banner.lines().collect();
    let at = lines
        .iter()
        .position(|l| l.starts_with("demo license of"))
        .expect("the banner shows a demo license");
    let uscc = lines[at].split_whitespace().nth(3).unwrap().to_string();
    let qr = lines[at + 1].trim().to_string();

    let partner = client_token(
        &channel,
        &operator,
        PrincipalKind::Partner,
        "bad-input-partner",
        vec!["verify".into()],
        "",
    )
    .await
    .unwrap();
    let enterprise = client_token(
        &channel,
        &operator,
        PrincipalKind::Enterprise,
        "bad-input-enterprise",
        vec!["entcode.present".into(), "inspection.respond".into()],
        &uscc,
    )
    .await
    .unwrap();

    // A presentation used once, to be replayed in the table.
    let presentation_qr = {
        use credmesh_proto::entcode::v1::enterprise_code_service_client::EnterpriseCodeServiceClient;
        let mut entcode = EnterpriseCodeServiceClient::new(channel.clone());
        let created = entcode
            .create_presentation(credmesh_e2e::with_token(
                epb::CreatePresentationRequest {
                    uscc: uscc.clone(),
                    scenario: "basic".into(),
                },
                &enterprise,
            ))
            .await
            .unwrap()
            .into_inner();
        let qr_text = created.presentation.unwrap().qr_text;
        let first = entcode
            .verify_presentation(credmesh_e2e::with_token(
                epb::VerifyPresentationRequest {
                    qr_text: qr_text.clone(),
                },
                &partner,
            ))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(first.outcome(), epb::PresentationOutcome::Valid);
        qr_text
    };

    let before = stored(&channel, &operator).await;
    let rows = catalogue(&uscc, &qr, &presentation_qr);
    assert!(rows.len() >= 60, "the catalogue has {} rows", rows.len());
    let mut wrong = Vec::new();
    for row in &rows {
        let token = match row.who {
            Who::Anonymous => None,
            Who::Operator => Some(operator.as_str()),
            Who::Partner => Some(partner.as_str()),
            Who::Enterprise => Some(enterprise.as_str()),
        };
        let problem = match &row.send {
            Send::Grpc(path, body) => {
                let metadata: Vec<(&'static str, String)> = match (row.who, token) {
                    (_, Some(t)) => vec![("authorization", format!("Bearer {t}"))],
                    _ if row.name.ends_with("a token that is not a JWT") => {
                        vec![("authorization", "Bearer not.a.jwt".into())]
                    }
                    _ => vec![],
                };
                let path: &'static str = path;
                let answer = credmesh_testkit::grpc::raw_unary(
                    channel.clone(),
                    path,
                    body.clone(),
                    &metadata,
                )
                .await;
                check_grpc(&row.expect, answer)
            }
            Send::Http {
                method,
                path,
                content_type,
                body,
            } => {
                let (code, head, body) =
                    http(&dev.http, method, path, content_type, token, body).await;
                check_http(&row.expect, code, &head, &body)
            }
        };
        if let Some(p) = problem {
            wrong.push(format!("{}: {p}", row.name));
        }
    }
    let after = stored(&channel, &operator).await;
    let logs = std::fs::read_to_string(&log).unwrap_or_default();
    dev.stop().await.unwrap();

    assert!(
        wrong.is_empty(),
        "{} of {} rows got the wrong answer:\n{}",
        wrong.len(),
        rows.len(),
        wrong.join("\n")
    );
    assert_eq!(
        before, after,
        "bad input changed what is stored (clients, issuer keys, enterprises)"
    );
    assert!(!logs.contains("panicked"), "a handler panicked:\n{logs}");
    eprintln!(
        "bad-input catalogue: {} rows, all answered as expected",
        rows.len()
    );
}

fn check_grpc(expect: &Expect, answer: Result<Vec<u8>, tonic::Status>) -> Option<String> {
    match (expect, answer) {
        (Expect::Grpc(code, reason), Err(status)) => {
            if status.code() != *code {
                return Some(format!(
                    "expected {code:?}, got {:?}: {}",
                    status.code(),
                    status.message()
                ));
            }
            let got = credmesh_proto::status::reason(&status);
            if let Some(r) = reason
                && got.as_deref() != Some(*r)
            {
                return Some(format!(
                    "expected reason {r}, got {got:?}: {}",
                    status.message()
                ));
            }
            if !readable(status.message()) {
                return Some(format!("unreadable message: {:?}", status.message()));
            }
            None
        }
        (Expect::Grpc(code, _), Ok(_)) => Some(format!("expected {code:?}, got OK")),
        (Expect::Outcome(outcome), Ok(bytes)) => {
            let result = vpb::VerifyResponse::decode(bytes.as_slice())
                .ok()
                .and_then(|r| r.result);
            match result {
                Some(r) if r.outcome() == *outcome => {
                    if r.reason.is_empty() || !readable(&r.detail) {
                        Some(format!(
                            "outcome without a reason or readable detail: {r:?}"
                        ))
                    } else {
                        None
                    }
                }
                other => Some(format!("expected {outcome:?}, got {other:?}")),
            }
        }
        (Expect::Presentation(outcome), Ok(bytes)) => {
            match epb::VerifyPresentationResponse::decode(bytes.as_slice()) {
                Ok(r) if r.outcome() == *outcome => {
                    if r.reason.is_empty() || !readable(&r.detail) {
                        Some(format!(
                            "outcome without a reason or readable detail: {r:?}"
                        ))
                    } else {
                        None
                    }
                }
                other => Some(format!("expected {outcome:?}, got {other:?}")),
            }
        }
        (expect, Err(status)) => Some(format!(
            "expected {expect:?}, got {:?}: {}",
            status.code(),
            status.message()
        )),
        (expect, Ok(_)) => Some(format!(
            "expected {expect:?}, got an HTTP-only row over gRPC"
        )),
    }
}

fn check_http(expect: &Expect, code: u16, head: &str, body: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(body);
    match expect {
        Expect::Http(want, reason) => {
            if code != *want {
                return Some(format!("expected HTTP {want}, got {code}: {text:.200}"));
            }
            if let Some(r) = reason {
                let json: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
                let got = json["error"]["reason"].as_str().unwrap_or_default();
                if got != *r {
                    return Some(format!("expected reason {r}, got {got:?}: {text:.200}"));
                }
                let message = json["error"]["message"].as_str().unwrap_or_default();
                if !readable(message) {
                    return Some(format!("unreadable message: {message:?}"));
                }
            }
            None
        }
        Expect::OAuth(want, error, reason) => {
            let json: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
            let got = (
                code,
                json["error"].as_str().unwrap_or_default(),
                json["reason"].as_str().unwrap_or_default(),
            );
            if got != (*want, *error, *reason) {
                return Some(format!(
                    "expected HTTP {want} {error} ({reason}), got {got:?}: {text:.200}"
                ));
            }
            let description = json["error_description"].as_str().unwrap_or_default();
            if !readable(description) {
                return Some(format!("unreadable error_description: {description:?}"));
            }
            if !head
                .to_ascii_lowercase()
                .contains("cache-control: no-store")
            {
                return Some("a token endpoint answer without Cache-Control: no-store".into());
            }
            None
        }
        Expect::Page(hostile) => {
            if code != 200 {
                return Some(format!("expected the scan page, got HTTP {code}"));
            }
            if !head.to_ascii_lowercase().contains("text/html") {
                return Some("the scan page is not HTML".into());
            }
            if text.contains(hostile) {
                return Some(format!("the page carries {hostile:?} unescaped"));
            }
            let verdicts = ["无效", "Not valid", "无法识别", "Not readable"];
            if !verdicts.iter().any(|v| text.contains(v)) {
                return Some(format!(
                    "the page gives no 'not valid' verdict: {text:.300}"
                ));
            }
            None
        }
        other => Some(format!(
            "expected {other:?} from a gRPC row, sent over HTTP"
        )),
    }
}

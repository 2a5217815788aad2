use base64::Engine as _;
use credmesh_auth::PrincipalKind;
use credmesh_credential::from_qr;
use credmesh_proto::license::v1 as pb;
use tonic::Code;

use crate::helpers::*;

#[tokio::test]
async fn departments_act_only_for_their_authority_and_enterprises_read_only_their_own() {
    for backend in BOTH {
        let app = spawn_app(backend).await;
        let jingan = app.department("sh-jingan", JINGAN).await;
        let municipal = app.department("sh-samr", MUNICIPAL).await;
        let uscc = sh_uscc("310115", 21);
        let mut pudong = restaurant(&uscc);
        pudong.registration_authority = PUDONG.into();
        pudong.domicile = "上海市浦东新区世纪大道100号".into();

        let status = assert_status(
            app.establish(&jingan, pudong.clone()).await,
            Code::PermissionDenied,
            "NOT_REGISTRATION_AUTHORITY",
        );
        assert!(status.message().contains(PUDONG), "{}", status.message());
        // The municipal bureau acts for every district.
        app.establish(&municipal, pudong).await.unwrap();
        assert_status(
            app.amend(
                &jingan,
                pb::AmendLicenseRequest {
                    uscc: uscc.clone(),
                    name: Some("别人的公司".into()),
                    ..Default::default()
                },
            )
            .await,
            Code::PermissionDenied,
            "NOT_REGISTRATION_AUTHORITY",
        );

        // An enterprise reads its own license, not another's, and not the register.
        let own = app
            .client(
                "ent-pudong",
                PrincipalKind::Enterprise,
                &["license.read"],
                &uscc,
            )
            .await;
        assert_eq!(app.get(&own, &uscc).await.enterprise.unwrap().uscc, uscc);
        let other = sh_uscc("310106", 22);
        app.establish(&municipal, restaurant(&other)).await.unwrap();
        let refused = app
            .license
            .clone()
            .get_license(with_token(pb::GetLicenseRequest { uscc: other }, &own))
            .await;
        assert_status(refused, Code::PermissionDenied, "NOT_OWN_ENTERPRISE");
        let listed = app
            .license
            .clone()
            .list_enterprises(with_token(pb::ListEnterprisesRequest::default(), &own))
            .await;
        assert_status(listed, Code::PermissionDenied, "NOT_OWN_ENTERPRISE");
        // Reading does not allow issuing; a partner may not even read.
        assert_status(
            app.establish(&own, restaurant(&sh_uscc("310106", 23)))
                .await,
            Code::PermissionDenied,
            "AUTH_SCOPE_MISSING",
        );
        let partner = app
            .client("bank-suzhou", PrincipalKind::Partner, &["verify"], "")
            .await;
        let read = app
            .license
            .clone()
            .get_license(with_token(
                pb::GetLicenseRequest { uscc: uscc.clone() },
                &partner,
            ))
            .await;
        assert_status(read, Code::PermissionDenied, "AUTH_SCOPE_MISSING");
        // No token at all; the status lists stay public.
        let anonymous = app
            .license
            .clone()
            .get_license(pb::GetLicenseRequest { uscc: uscc.clone() })
            .await;
        assert_eq!(anonymous.unwrap_err().code(), Code::Unauthenticated);
        app.status_list(
            "SH/license/0",
            credmesh_proto::credential::v1::StatusPurpose::Revocation,
        )
        .await;
    }
}

#[tokio::test]
async fn an_id_number_never_appears_in_any_credential_form_answer_or_history() {
    const ID: &str = "11010519491231002X";
    for backend in BOTH {
        let app = spawn_app(backend).await;
        let dept = app.department("sh-jingan", JINGAN).await;
        let uscc = sh_uscc("310106", 31);
        let mut req = restaurant(&uscc);
        req.legal_representative_id_number = ID.to_string();
        let bad = {
            let mut r = req.clone();
            r.legal_representative_id_number = "110105194912310021".into();
            r
        };
        let status = assert_status(
            app.establish(&dept, bad).await,
            Code::InvalidArgument,
            "ID_NUMBER_INVALID",
        );
        assert!(!format!("{status:?}").contains("11010519491231"));

        let done = app.establish(&dept, req).await.unwrap();
        let v = done.license.unwrap();
        assert!(v.legal_representative_id_recorded);
        app.amend(
            &dept,
            pb::AmendLicenseRequest {
                uscc: uscc.clone(),
                legal_representative_id_number: Some(ID.to_lowercase()),
                legal_representative: Some("王大明".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
        let current = app.get(&dept, &uscc).await;
        let mut everything = format!("{done_v:?}{current:?}", done_v = v);
        for version in [&v, current.license.as_ref().unwrap()] {
            let c = version.credential.as_ref().unwrap();
            let env = c.envelope.as_ref().unwrap();
            everything.push_str(&String::from_utf8_lossy(&env.payload));
            let from_qr = from_qr(&c.qr_text).unwrap();
            everything.push_str(&String::from_utf8_lossy(&from_qr.payload));
            for part in c.vc_jwt.split('.').take(2) {
                let json = base64::engine::general_purpose::URL_SAFE_NO_PAD
                    .decode(part)
                    .unwrap();
                everything.push_str(&String::from_utf8_lossy(&json));
            }
        }
        let history = app
            .license
            .clone()
            .get_enterprise_history(with_token(
                pb::GetEnterpriseHistoryRequest {
                    uscc: uscc.clone(),
                    ..Default::default()
                },
                &dept,
            ))
            .await
            .unwrap()
            .into_inner();
        everything.push_str(&format!("{history:?}"));
        assert!(
            everything.contains("王大明"),
            "the search covers the answers"
        );
        for needle in [ID, &ID.to_lowercase(), "19491231"] {
            assert!(
                !everything.contains(needle),
                "{backend:?}: the ID number leaked ({needle})"
            );
        }
        let amended: serde_json::Value =
            serde_json::from_str(&history.entries[1].detail_json).unwrap();
        let changes = amended["changes"].as_array().unwrap();
        assert!(
            changes
                .iter()
                .any(|c| c["field"] == "legal_representative_id" && c["to"] == "replaced"),
            "{changes:?}"
        );
        // Nor is it stored in clear.
        let db = app.license_db().await;
        let leaked: i64 = match &db {
            credmesh_store::Db::Sqlite(p) => sqlx::query_scalar(
                "SELECT count(*) FROM license_versions WHERE rep_id_hash IS NOT NULL",
            )
            .fetch_one(p)
            .await
            .unwrap(),
            credmesh_store::Db::Postgres(p) => sqlx::query_scalar(
                "SELECT count(*) FROM license_versions WHERE rep_id_hash IS NOT NULL",
            )
            .fetch_one(p)
            .await
            .unwrap(),
        };
        assert_eq!(leaked, 2, "both versions keep only a salted hash");
        db.close().await;
    }
}

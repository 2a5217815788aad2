use credmesh_proto::{license::v1 as pb, status::field_violations};
use tonic::Code;

use crate::helpers::*;

/// A code with one character replaced.
fn with_char(code: &str, at: usize, c: char) -> String {
    let mut chars: Vec<char> = code.chars().collect();
    chars[at] = c;
    chars.into_iter().collect()
}

#[tokio::test]
async fn bad_usccs_are_refused_with_the_rule_that_failed() {
    for backend in BOTH {
        let app = spawn_app(backend).await;
        let dept = app.department("sh-jingan", JINGAN).await;
        let good = sh_uscc("310106", 11);
        // Position 17 (org check) and 18 (code check) of the good code, changed.
        let org = good.chars().nth(16).unwrap();
        let bad_org = with_char(&good, 16, if org == '0' { '1' } else { '0' });
        let last = good.chars().nth(17).unwrap();
        let bad_check = with_char(&good, 17, if last == '0' { '1' } else { '0' });
        let cases = [
            ("", "USCC_EMPTY"),
            ("91310106MA1", "USCC_LENGTH"),
            (&with_char(&good, 10, 'I') as &str, "USCC_CHARSET"),
            (&with_char(&good, 0, 'H'), "USCC_DEPARTMENT"),
            (&with_char(&good, 1, '8'), "USCC_CATEGORY"),
            (&with_char(&good, 2, '0'), "USCC_DIVISION"),
            (&bad_org, "USCC_ORG_CODE_CHECK"),
            (&bad_check, "USCC_CHECK_DIGIT"),
        ];
        for (code, reason) in cases {
            let status = assert_status(
                app.establish(&dept, restaurant(code)).await,
                Code::InvalidArgument,
                reason,
            );
            let v = field_violations(&status);
            assert_eq!(v[0].field, "uscc", "{code}");
            assert!(
                status.message().contains("GB") || status.message().contains("empty"),
                "{reason}: the message names the rule: {}",
                status.message()
            );
        }
        // Reads refuse a bad code the same way.
        let get = app
            .license
            .clone()
            .get_license(with_token(
                pb::GetLicenseRequest {
                    uscc: bad_check.clone(),
                },
                &dept,
            ))
            .await;
        assert_status(get, Code::InvalidArgument, "USCC_CHECK_DIGIT");
    }
}

#[tokio::test]
async fn region_mismatch_unknown_authority_and_inconsistent_dates_are_refused() {
    for backend in BOTH {
        let app = spawn_app(backend).await;
        let op = app.operator_token().await;

        // A Suzhou (Jiangsu) enterprise registered by a Shanghai bureau.
        let status = assert_status(
            app.establish(&op, restaurant(&sh_uscc("320500", 1))).await,
            Code::InvalidArgument,
            "USCC_REGION_MISMATCH",
        );
        assert!(status.message().contains("Jiangsu"), "{}", status.message());

        // A social organisation's code (department 5) is not a market entity.
        let social = credmesh_uscc::Uscc::from_parts('5', '1', "310106", "MA1DH001")
            .unwrap()
            .to_string();
        assert_status(
            app.establish(&op, restaurant(&social)).await,
            Code::InvalidArgument,
            "USCC_NOT_MARKET_ENTITY",
        );

        let mut unknown = restaurant(&sh_uscc("310106", 12));
        unknown.registration_authority =
            credmesh_uscc::Uscc::from_parts('1', '1', "310106", "MB2F9999")
                .unwrap()
                .to_string();
        let status = assert_status(
            app.establish(&op, unknown).await,
            Code::InvalidArgument,
            "AUTHORITY_UNKNOWN",
        );
        assert_eq!(field_violations(&status)[0].field, "registration_authority");

        let mut future = restaurant(&sh_uscc("310106", 13));
        future.establishment_date = "2026-10-01".into();
        let status = assert_status(
            app.establish(&op, future).await,
            Code::InvalidArgument,
            "DATES_INCONSISTENT",
        );
        assert!(
            status.message().contains("in the future"),
            "{}",
            status.message()
        );

        let mut ends_early = restaurant(&sh_uscc("310106", 14));
        ends_early.business_term = Some(pb::BusinessTerm {
            start_date: String::new(),
            end_date: "2026-02-28".into(),
            long_term: false,
        });
        ends_early.issue_date = "2026-02-01".into();
        let status = assert_status(
            app.establish(&op, ends_early).await,
            Code::InvalidArgument,
            "DATES_INCONSISTENT",
        );
        let fields: Vec<_> = field_violations(&status)
            .into_iter()
            .map(|v| v.field)
            .collect();
        assert_eq!(fields, ["issue_date", "business_term.end_date"]);

        let mut sloppy = restaurant(&sh_uscc("310106", 15));
        sloppy.name = "面".into();
        sloppy.domicile = "上海\u{202E}市".into();
        sloppy.registered_capital = Some(pb::Money {
            amount: "1,000".into(),
            currency_code: "RMB1".into(),
        });
        sloppy.establishment_date = "2026/03/01".into();
        let status = assert_status(
            app.establish(&op, sloppy).await,
            Code::InvalidArgument,
            "FIELD_LENGTH",
        );
        let fields: Vec<_> = field_violations(&status)
            .into_iter()
            .map(|v| v.field)
            .collect();
        assert_eq!(
            fields,
            [
                "name",
                "registered_capital.amount",
                "registered_capital.currency_code",
                "domicile",
                "establishment_date"
            ],
            "every violation, in one answer"
        );
    }
}

#[tokio::test]
async fn a_real_published_code_is_registered_with_its_full_unicode_fields() {
    for backend in BOTH {
        let app = spawn_app(backend).await;
        let op = app.operator_token().await;
        // SAIC Motor's published code, registered in the municipal division 310000.
        let mut req = restaurant("91310000132260250X");
        req.name = "上海汽车集团股份有限公司".into();
        req.entity_type = "其他股份有限公司（上市）".into();
        req.registration_authority = MUNICIPAL.into();
        req.business_scope = "汽车，摩托车，拖拉机等各种机动车整车，机械设备，总成及零部件的生产、销售；\n国内贸易（除专项规定）；咨询服务。𠮷野家 ★".into();
        let done = app.establish(&op, req.clone()).await.unwrap();
        let content = done.license.unwrap().content.unwrap();
        assert_eq!(content.business_scope, req.business_scope);
        assert_eq!(content.registration_authority_name, "上海市市场监督管理局");
    }
}

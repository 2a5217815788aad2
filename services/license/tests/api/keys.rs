use std::time::Duration;

use credmesh_credential::{Outcome, keys::IssuerKey};
use credmesh_proto::{credential::v1::KeyStatus, identity::v1 as ipb};
use tonic::Code;
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};

use crate::helpers::*;

async fn license_health(app: &TestApp) -> i32 {
    let channel = tonic::transport::Channel::from_shared(format!("http://{}", app.addr))
        .unwrap()
        .connect()
        .await
        .unwrap();
    HealthClient::new(channel)
        .check(HealthCheckRequest {
            service: credmesh_license::GRPC_NAME.into(),
        })
        .await
        .unwrap()
        .into_inner()
        .status
}

async fn wait_health(app: &TestApp, want: ServingStatus) {
    for _ in 0..200 {
        if license_health(app).await == want as i32 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("the license service never reported {want:?}");
}

#[tokio::test]
async fn the_service_is_not_ready_and_issues_nothing_until_its_key_is_registered() {
    for backend in BOTH {
        let app = spawn_with(
            backend,
            Options {
                without_service_client: true,
                no_wait: true,
                ..Options::default()
            },
        )
        .await;
        let op = app.operator_token().await;
        // Identity refuses the unknown client: registration keeps retrying.
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(app.service.registration().check().is_err());
        wait_health(&app, ServingStatus::NotServing).await;
        assert_status(
            app.establish(&op, restaurant(&sh_uscc("310106", 51))).await,
            Code::Unavailable,
            "ISSUER_KEY_NOT_REGISTERED",
        );

        // Once the operator registers the service client, the retry succeeds.
        let pem = std::fs::read_to_string(app.env.dir.path().join("license-client.pem")).unwrap();
        let client_key = IssuerKey::from_pkcs8_pem("license", &pem).unwrap();
        register_service_client(&app.identity_service, &client_key).await;
        assert!(
            app.service
                .registration()
                .wait(Duration::from_secs(20))
                .await,
            "{backend:?}: {:?}",
            app.service.registration().state()
        );
        wait_health(&app, ServingStatus::Serving).await;
        app.establish(&op, restaurant(&sh_uscc("310106", 51)))
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn rotating_the_signing_key_keeps_old_licenses_verifying() {
    for backend in BOTH {
        let app = spawn_app(backend).await;
        let op = app.operator_token().await;
        let old_uscc = sh_uscc("310106", 61);
        let old = app
            .establish(&op, restaurant(&old_uscc))
            .await
            .unwrap()
            .license
            .unwrap();
        let old_kid = old.kid.clone();
        assert!(old_kid.starts_with("SH-license-"));

        // Restart with a new key file: a rotation.
        let dir = app.env.dir.path().to_path_buf();
        std::fs::copy(
            dir.join("license-signing.pem"),
            dir.join("license-signing.old.pem"),
        )
        .unwrap();
        app.env.clock.advance(60);
        let app = app.restart(true).await;
        let new_kid = app.service.kid().to_string();
        assert_ne!(new_kid, old_kid);
        let keys = app
            .identity
            .clone()
            .list_issuer_keys(with_token(
                ipb::ListIssuerKeysRequest {
                    issuer: "SH/license".into(),
                },
                &app.operator_token().await,
            ))
            .await
            .unwrap()
            .into_inner()
            .keys;
        let status_of = |kid: &str| {
            keys.iter()
                .filter_map(|k| k.key.as_ref())
                .find(|k| k.kid == kid)
                .map(|k| k.status)
        };
        assert_eq!(
            status_of(&old_kid),
            Some(KeyStatus::Retired as i32),
            "{backend:?}"
        );
        assert_eq!(status_of(&new_kid), Some(KeyStatus::Active as i32));

        // New licenses carry the new key; the old license still verifies, against
        // status lists now signed by the new key.
        let op = app.operator_token().await;
        let new = app
            .establish(&op, restaurant(&sh_uscc("310106", 62)))
            .await
            .unwrap()
            .license
            .unwrap();
        assert_eq!(new.kid, new_kid);
        assert_eq!(app.verify_all_forms(&new).await.outcome, Outcome::Valid);
        let old_again = app.version(&op, &old_uscc, 1).await;
        assert_eq!(old_again.kid, old_kid);
        let checked = app.verify_all_forms(&old_again).await;
        assert_eq!(
            checked.outcome,
            Outcome::Valid,
            "{backend:?}: {}",
            checked.detail
        );

        // An amendment of the old license is signed by the new key and supersedes the
        // old-key version.
        let amended = app
            .amend(
                &op,
                credmesh_proto::license::v1::AmendLicenseRequest {
                    uscc: old_uscc.clone(),
                    domicile: Some("上海市静安区延安中路1号".into()),
                    ..Default::default()
                },
            )
            .await
            .unwrap()
            .license
            .unwrap();
        assert_eq!(amended.kid, new_kid);
        let old_again = app.version(&op, &old_uscc, 1).await;
        assert_eq!(
            app.verify_all_forms(&old_again).await.outcome,
            Outcome::Revoked { superseded: true }
        );

        // Starting again with the retired key is refused: it would sign credentials
        // nobody accepts, so the service stays not ready and issues nothing.
        let dir = app.env.dir.path().to_path_buf();
        std::fs::copy(
            dir.join("license-signing.old.pem"),
            dir.join("license-signing.pem"),
        )
        .unwrap();
        let app = app
            .restart_with(
                false,
                Options {
                    no_wait: true,
                    ..Options::default()
                },
            )
            .await;
        assert!(
            !app.service
                .registration()
                .wait(Duration::from_secs(20))
                .await
        );
        assert!(matches!(
            app.service.registration().state(),
            credmesh_license::KeyState::Refused(_)
        ));
        assert_status(
            app.establish(
                &app.operator_token().await,
                restaurant(&sh_uscc("310106", 63)),
            )
            .await,
            Code::Unavailable,
            "ISSUER_KEY_NOT_REGISTERED",
        );
        drop(app);
    }
}

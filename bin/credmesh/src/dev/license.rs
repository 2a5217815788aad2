//! The license service inside `credmesh dev`: its keys under `data/keys/`, its identity
//! client registered in-process, its key registered with identity over the loopback
//! gRPC address like in production, and a handful of demo enterprises seeded once.

use std::{net::SocketAddr, path::Path, sync::Arc, time::Duration};

use anyhow::Context as _;
use credmesh_auth::{Principal, PrincipalKind};
use credmesh_identity::Identity;
use credmesh_license::{
    License,
    domain::license::{EstablishInput, MoneyInput, TermInput},
    error::LicenseError,
    service::Caller,
};
use credmesh_proto::credential::v1::Envelope;
use credmesh_proto::prost::Message as _;
use credmesh_runtime::{Clock, ServerConfig};
use credmesh_store::{Db, DbOptions};

/// Builds the license service for `credmesh dev`.
#[allow(clippy::too_many_arguments)]
pub async fn build(
    data: &Path,
    keys: &Path,
    region: &str,
    identity: &Identity,
    grpc: SocketAddr,
    http: SocketAddr,
    server: &ServerConfig,
    clock: Arc<dyn Clock>,
) -> anyhow::Result<credmesh_license::Built> {
    let mut env = super::IssuingService {
        name: "license",
        display_name: "License service",
        scopes: &["identity.keys"],
    }
    .prepare(data, keys, region, identity, grpc)
    .await?;
    env.insert("CREDMESH_PUBLIC_URL".into(), format!("http://{http}"));
    let config = credmesh_license::LicenseConfig::from_env(&env)?;
    let db = Db::connect(&config.database_url, &DbOptions::default()).await?;
    db.migrate(credmesh_license::migrations()).await?;
    let channel = credmesh_runtime::client::service_channel(&config.identity_url)?;
    let registrar = config.client().registrar(channel, clock.clone())?;
    credmesh_license::build(&config, db, clock, server, registrar).await
}

/// A demo enterprise: code, name, type, representative, capital, established,
/// domicile, scope, authority.
type Demo = (
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    &'static str,
);

/// The first demo enterprise: the restaurant of the journeys.
pub const DEMO_USCC: &str = "91310106MA1FL3Q19D";

/// Demo enterprises with valid, generated Shanghai codes in their district's division.
const DEMO: &[Demo] = &[
    (
        DEMO_USCC,
        "上海静安面馆有限公司",
        "有限责任公司（自然人投资或控股）",
        "王小明",
        "500000.00",
        "2021-05-18",
        "上海市静安区南京西路1266号",
        "餐饮服务；食品销售（仅销售预包装食品）。",
        "11310106MB2F10062C",
    ),
    (
        "91310115MA1HK7R20K",
        "上海浦东智造科技有限公司",
        "有限责任公司（外商投资企业法人独资）",
        "陈静",
        "20000000.00",
        "2018-09-03",
        "中国（上海）自由贸易试验区张江路88号",
        "智能制造技术开发、技术咨询、技术服务；工业机器人销售。",
        "11310115MB2F10150U",
    ),
    (
        "91310104MA1G2W5B38",
        "上海徐汇书香文化传播有限公司",
        "有限责任公司（自然人独资）",
        "李书文",
        "1000000.00",
        "2019-11-12",
        "上海市徐汇区漕溪北路595号",
        "组织文化艺术交流活动；图书零售；会议及展览服务。",
        "11310104MB2F10046R",
    ),
    (
        "91310101MA1K8N3D91",
        "上海外滩咖啡有限公司",
        "有限责任公司（自然人投资或控股）",
        "周可",
        "300000.00",
        "2022-03-08",
        "上海市黄浦区中山东一路18号",
        "餐饮服务；咖啡制品销售。",
        "11310101MB2F10011U",
    ),
    (
        "91310112MA7C4P6E3R",
        "上海闵行绿运物流有限公司",
        "有限责任公司（自然人投资或控股）",
        "赵远",
        "5000000.00",
        "2023-07-21",
        "上海市闵行区莘庄工业区申富路1号",
        "道路货物运输（不含危险货物）；仓储服务。",
        "11310112MB2F101260",
    ),
];

/// Waits for the signing key's registration, then establishes the demo enterprises that
/// are not registered yet. Returns the first demo license's QR text.
pub async fn seed(license: &License) -> anyhow::Result<String> {
    if !license.registration().wait(Duration::from_secs(30)).await {
        anyhow::bail!(
            "the license signing key was not registered with identity: {:?}",
            license.registration().state()
        );
    }
    let principal = Principal {
        client_id: "credmesh-dev".into(),
        kind: PrincipalKind::Operator,
        scopes: vec![credmesh_license::SCOPE_ISSUE.into()],
        organization: None,
        region: license.region().code().into(),
        token_id: String::new(),
        expires_at: 0,
        enforcement_certificate: None,
    };
    let caller = Caller {
        principal: &principal,
        trace_id: "",
    };
    for (uscc, name, entity_type, rep, capital, established, domicile, scope, authority) in DEMO {
        let input = EstablishInput {
            uscc,
            name,
            entity_type,
            legal_representative: rep,
            legal_representative_id_number: "",
            capital: Some(MoneyInput {
                amount: capital,
                currency: "CNY",
            }),
            establishment_date: established,
            term: Some(TermInput {
                start: "",
                end: "",
                long_term: true,
            }),
            domicile,
            business_scope: scope,
            registration_authority: authority,
            issue_date: "",
        };
        match license
            .establish(caller, &input, None, &|_| Vec::new())
            .await
        {
            Ok(_) | Err(LicenseError::EnterpriseExists(_)) => {}
            Err(e) => return Err(anyhow::anyhow!("seeding {name}: {e}")),
        }
    }
    let (_, v) = license
        .license(&principal, DEMO[0].0)
        .await
        .map_err(|e| anyhow::anyhow!("reading the demo license: {e}"))?;
    let envelope = Envelope::decode(v.envelope.as_slice()).context("the demo license")?;
    Ok(credmesh_credential::qr::to_qr(&envelope))
}

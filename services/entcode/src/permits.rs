//! The permits (许可证) linked to an enterprise: `ListCertificates` with `holder = USCC` on
//! the certificate service over gRPC, as a service client holding `certificate.read`, and
//! `ListCertificateTypes` for the types' and departments' names. The certificate service
//! is the authority on its register; an unreachable one is an error, never an empty list.

use std::{collections::HashMap, sync::Arc, time::Duration};

use credmesh_auth::{BearerLayer, BearerService, TokenSource};
use credmesh_proto::certificate::v1::{
    self as cpb, certificate_service_client::CertificateServiceClient,
};
use credmesh_telemetry::propagation::{ClientTrace, ClientTraceLayer};
use futures::future::BoxFuture;
use tonic::{Code, transport::Channel};
use tower::ServiceBuilder;

/// Where a permit stands; only [`PermitState::Valid`] is in force.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PermitState {
    /// Active and within its validity period.
    Valid,
    /// Suspended until reinstated.
    Suspended,
    /// Revoked permanently.
    Revoked,
    /// Its validity period has ended.
    Expired,
}

impl PermitState {
    /// Chinese and English words for people.
    pub fn words(self) -> (&'static str, &'static str) {
        match self {
            PermitState::Valid => ("有效", "valid"),
            PermitState::Suspended => ("已暂停", "suspended"),
            PermitState::Revoked => ("已撤销", "revoked"),
            PermitState::Expired => ("已过期", "expired"),
        }
    }
}

/// One permit of an enterprise.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Permit {
    /// The certificate type code.
    pub type_code: String,
    /// The type's name ("食品经营许可证"); the type code when the type is unknown.
    pub type_name: String,
    /// The certificate's serial.
    pub serial: String,
    /// Where it stands.
    pub state: PermitState,
    /// The issuing department's USCC.
    pub department: String,
    /// The issuing department's name; empty when unknown.
    pub department_name: String,
    /// Last day of validity, `YYYY-MM-DD`.
    pub valid_until: String,
    /// The fields of its data under an open dispute (异议) at the issuer; empty when none.
    pub disputed_fields: Vec<String>,
}

/// The value of the disclosable field `permits`: the valid permits, as
/// `<type name> <serial> 至<last day>` joined by `; `, or `无` when none is in force.
pub fn disclosed_value(permits: &[Permit]) -> String {
    let valid: Vec<String> = permits
        .iter()
        .filter(|p| p.state == PermitState::Valid)
        .map(|p| format!("{} {} 至{}", p.type_name, p.serial, p.valid_until))
        .collect();
    if valid.is_empty() {
        "无".to_string()
    } else {
        valid.join("; ")
    }
}

/// Whatever answers "which permits does this enterprise hold?".
pub trait PermitSource: Send + Sync + std::fmt::Debug + 'static {
    /// Every permit of `uscc`, in serial order; `Err` with a sentence when the source
    /// cannot answer.
    fn permits(&self, uscc: &str) -> BoxFuture<'_, Result<Vec<Permit>, String>>;
}

/// The certificate service over gRPC.
#[derive(Debug, Clone)]
pub struct GrpcCertificates {
    client: CertificateServiceClient<BearerService<ClientTrace<Channel>>>,
    tokens: Arc<TokenSource>,
}

/// How long one certificate call may take: the scan page waits for it.
const CALL_TIMEOUT: Duration = Duration::from_secs(3);
/// Most pages read of one list: an enterprise with more than 2,500 permits (or a
/// register of more types) is shown the first ones.
const MAX_PAGES: usize = 5;
const PAGE_SIZE: u32 = 500;

impl GrpcCertificates {
    /// A client of the certificate service over `certificate`, with `certificate.read`
    /// tokens from `tokens`.
    pub fn new(certificate: Channel, tokens: Arc<TokenSource>) -> Self {
        let service = ServiceBuilder::new()
            .layer(BearerLayer::new(tokens.clone()))
            .layer(ClientTraceLayer)
            .service(certificate);
        GrpcCertificates {
            client: CertificateServiceClient::new(service),
            tokens,
        }
    }

    fn refused(&self, s: &tonic::Status) -> String {
        if s.code() == Code::Unauthenticated {
            self.tokens.invalidate();
        }
        format!(
            "the certificate service did not answer ({:?}: {})",
            s.code(),
            s.message()
        )
    }

    async fn certificates(&self, uscc: &str) -> Result<Vec<cpb::Certificate>, String> {
        let mut out = Vec::new();
        let mut token = String::new();
        for _ in 0..MAX_PAGES {
            let mut request = tonic::Request::new(cpb::ListCertificatesRequest {
                holder: uscc.to_string(),
                page_size: PAGE_SIZE,
                page_token: token,
            });
            request.set_timeout(CALL_TIMEOUT);
            let page = self
                .client
                .clone()
                .list_certificates(request)
                .await
                .map_err(|s| self.refused(&s))?
                .into_inner();
            out.extend(page.certificates);
            if page.next_page_token.is_empty() {
                break;
            }
            token = page.next_page_token;
        }
        Ok(out)
    }

    async fn types(&self) -> Result<HashMap<String, cpb::CertificateType>, String> {
        let mut out = HashMap::new();
        let mut token = String::new();
        for _ in 0..MAX_PAGES {
            let mut request = tonic::Request::new(cpb::ListCertificateTypesRequest {
                page_size: PAGE_SIZE,
                page_token: token,
            });
            request.set_timeout(CALL_TIMEOUT);
            let page = self
                .client
                .clone()
                .list_certificate_types(request)
                .await
                .map_err(|s| self.refused(&s))?
                .into_inner();
            out.extend(page.types.into_iter().map(|t| (t.type_code.clone(), t)));
            if page.next_page_token.is_empty() {
                break;
            }
            token = page.next_page_token;
        }
        Ok(out)
    }
}

impl PermitSource for GrpcCertificates {
    fn permits(&self, uscc: &str) -> BoxFuture<'_, Result<Vec<Permit>, String>> {
        let uscc = uscc.to_string();
        Box::pin(async move {
            let certificates = self.certificates(&uscc).await?;
            if certificates.is_empty() {
                return Ok(Vec::new());
            }
            let types = self.types().await?;
            Ok(certificates
                .into_iter()
                .map(|c| {
                    let state = match c.state() {
                        cpb::CertificateState::Active => PermitState::Valid,
                        cpb::CertificateState::Suspended => PermitState::Suspended,
                        cpb::CertificateState::Expired => PermitState::Expired,
                        // Revoked, or a state this client does not know: never valid.
                        _ => PermitState::Revoked,
                    };
                    let t = types.get(&c.type_code);
                    Permit {
                        type_name: t
                            .map(|t| t.name.clone())
                            .unwrap_or_else(|| c.type_code.clone()),
                        department_name: t.map(|t| t.department_name.clone()).unwrap_or_default(),
                        type_code: c.type_code,
                        serial: c.serial,
                        state,
                        department: c.department,
                        valid_until: c.valid_until,
                        disputed_fields: c.disputed_fields,
                    }
                })
                .collect())
        })
    }
}

/// Whatever answers "what is this enterprise's credit grade?".
pub trait GradeSource: Send + Sync + std::fmt::Debug + 'static {
    /// The grade of `uscc`, `A` to `D`; `Err` with a sentence when the source cannot
    /// answer.
    fn grade(&self, uscc: &str) -> BoxFuture<'_, Result<String, String>>;
}

/// Grades from the inspection service (`GetCreditGrade`), with `inspection.credit`
/// tokens from identity. An unreachable service is an error, never a guess.
#[derive(Debug, Clone)]
pub struct InspectionGrades {
    client: credmesh_proto::inspection::v1::inspection_service_client::InspectionServiceClient<
        BearerService<ClientTrace<Channel>>,
    >,
    tokens: Arc<TokenSource>,
}

impl InspectionGrades {
    /// Asks the inspection service over `inspection` with tokens from `tokens`.
    pub fn new(inspection: Channel, tokens: Arc<TokenSource>) -> Self {
        let service = ServiceBuilder::new()
            .layer(BearerLayer::new(tokens.clone()))
            .layer(ClientTraceLayer)
            .service(inspection);
        InspectionGrades {
            client:
                credmesh_proto::inspection::v1::inspection_service_client::InspectionServiceClient::new(
                    service,
                ),
            tokens,
        }
    }
}

impl GradeSource for InspectionGrades {
    fn grade(&self, uscc: &str) -> BoxFuture<'_, Result<String, String>> {
        use credmesh_proto::inspection::v1 as ipb;
        let uscc = uscc.to_string();
        Box::pin(async move {
            let mut request = tonic::Request::new(ipb::GetCreditGradeRequest { uscc });
            request.set_timeout(CALL_TIMEOUT);
            match self.client.clone().get_credit_grade(request).await {
                Ok(r) => match r.into_inner().grade() {
                    ipb::CreditGrade::A => Ok("A".into()),
                    ipb::CreditGrade::B => Ok("B".into()),
                    ipb::CreditGrade::C => Ok("C".into()),
                    ipb::CreditGrade::D => Ok("D".into()),
                    ipb::CreditGrade::Unspecified => {
                        Err("the inspection service answered no grade".to_string())
                    }
                },
                Err(s) => {
                    if s.code() == Code::Unauthenticated {
                        self.tokens.invalidate();
                    }
                    Err(format!(
                        "the inspection service did not answer ({:?}: {})",
                        s.code(),
                        s.message()
                    ))
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn permit(serial: &str, state: PermitState) -> Permit {
        Permit {
            type_code: "t".into(),
            type_name: "食品经营许可证".into(),
            serial: serial.into(),
            state,
            department: String::new(),
            department_name: String::new(),
            valid_until: "2031-05-01".into(),
            disputed_fields: Vec::new(),
        }
    }

    #[test]
    fn only_valid_permits_are_disclosed() {
        let all = [
            permit("JY1", PermitState::Valid),
            permit("JY2", PermitState::Revoked),
            permit("JY3", PermitState::Valid),
        ];
        assert_eq!(
            disclosed_value(&all),
            "食品经营许可证 JY1 至2031-05-01; 食品经营许可证 JY3 至2031-05-01"
        );
        assert_eq!(
            disclosed_value(&[permit("JY2", PermitState::Suspended)]),
            "无"
        );
    }
}

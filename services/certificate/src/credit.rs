//! Where the notification-commitment path learns an enterprise's credit grade (A–D).
//!
//! The inspection service keeps credit grades (imported by departments) and answers them
//! over gRPC ([`InspectionCreditGrades`], when `CREDMESH_INSPECTION_URL` is set);
//! without it, grades come from configuration ([`ConfigCreditGrades`], from
//! `CREDMESH_CREDIT_GRADE_SOURCE`). Both sit behind [`CreditGrades`], so the rule that
//! refuses a D grade does not know which one answered.

use std::collections::HashMap;

use futures::future::BoxFuture;

/// A credit grade, A (best) to D (worst).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CreditGrade {
    /// Good.
    A,
    /// Fair.
    B,
    /// Watch.
    C,
    /// Poor: no issuance on commitment.
    D,
}

impl CreditGrade {
    /// The grade of a letter.
    pub fn parse(s: &str) -> Option<Self> {
        match s.trim() {
            "A" | "a" => Some(Self::A),
            "B" | "b" => Some(Self::B),
            "C" | "c" => Some(Self::C),
            "D" | "d" => Some(Self::D),
            _ => None,
        }
    }

    /// The letter.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::A => "A",
            Self::B => "B",
            Self::C => "C",
            Self::D => "D",
        }
    }
}

/// Whatever answers "what is this enterprise's credit grade?".
pub trait CreditGrades: Send + Sync + std::fmt::Debug + 'static {
    /// The grade of `uscc`; `Err` with a sentence when the source cannot answer.
    fn grade(&self, uscc: &str) -> BoxFuture<'_, Result<CreditGrade, String>>;
}

/// Grades from configuration: listed enterprises have their grade, every other one
/// the default.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigCreditGrades {
    grades: HashMap<String, CreditGrade>,
    default: CreditGrade,
}

impl ConfigCreditGrades {
    /// Parses `CREDMESH_CREDIT_GRADE_SOURCE`: `static:` followed by comma-separated
    /// `USCC=GRADE` pairs and optionally `*=GRADE` for everyone else (default B, the
    /// grade of an enterprise without a record), e.g. `static:9131000010000595XD=D,*=B`.
    pub fn parse(spec: &str) -> Result<Self, String> {
        let body = spec.strip_prefix("static:").ok_or_else(|| {
            format!("the credit grade source must start with 'static:', not '{spec}'")
        })?;
        let mut grades = HashMap::new();
        let mut default = CreditGrade::B;
        for pair in body.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (who, grade) = pair
                .split_once('=')
                .ok_or_else(|| format!("'{pair}' is not USCC=GRADE"))?;
            let grade = CreditGrade::parse(grade)
                .ok_or_else(|| format!("'{grade}' in '{pair}' is not a grade A-D"))?;
            if who.trim() == "*" {
                default = grade;
            } else {
                let code = credmesh_uscc::Uscc::parse(who.trim())
                    .map_err(|e| format!("'{who}' in '{pair}': {e}"))?;
                grades.insert(code.to_string(), grade);
            }
        }
        Ok(ConfigCreditGrades { grades, default })
    }
}

impl CreditGrades for ConfigCreditGrades {
    fn grade(&self, uscc: &str) -> BoxFuture<'_, Result<CreditGrade, String>> {
        let g = self.grades.get(uscc).copied().unwrap_or(self.default);
        Box::pin(async move { Ok(g) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listed_enterprises_have_their_grade_and_the_rest_the_default() {
        let code = "9131000010000595XD";
        let g = ConfigCreditGrades::parse(&format!("static:{code}=D,*=A")).unwrap();
        assert_eq!(g.grades.get(code), Some(&CreditGrade::D));
        assert_eq!(g.default, CreditGrade::A);
        assert!(ConfigCreditGrades::parse("static:nonsense=D").is_err());
        assert!(ConfigCreditGrades::parse("grpc://x").is_err());
    }
}

/// Grades from the inspection service (`GetCreditGrade`), with `inspection.credit`
/// tokens from identity. An enterprise without an imported grade gets the inspection
/// service's default; an unreachable service is an error, never a guess.
#[derive(Debug, Clone)]
pub struct InspectionCreditGrades {
    client: credmesh_proto::inspection::v1::inspection_service_client::InspectionServiceClient<
        credmesh_auth::BearerService<
            credmesh_telemetry::propagation::ClientTrace<tonic::transport::Channel>,
        >,
    >,
    tokens: std::sync::Arc<credmesh_auth::TokenSource>,
}

impl InspectionCreditGrades {
    /// Asks the inspection service over `inspection` with tokens from `tokens`.
    pub fn new(
        inspection: tonic::transport::Channel,
        tokens: std::sync::Arc<credmesh_auth::TokenSource>,
    ) -> Self {
        let service = tower::ServiceBuilder::new()
            .layer(credmesh_auth::BearerLayer::new(tokens.clone()))
            .layer(credmesh_telemetry::propagation::ClientTraceLayer)
            .service(inspection);
        InspectionCreditGrades {
            client:
                credmesh_proto::inspection::v1::inspection_service_client::InspectionServiceClient::new(
                    service,
                ),
            tokens,
        }
    }
}

impl CreditGrades for InspectionCreditGrades {
    fn grade(&self, uscc: &str) -> BoxFuture<'_, Result<CreditGrade, String>> {
        use credmesh_proto::inspection::v1 as ipb;
        let uscc = uscc.to_string();
        Box::pin(async move {
            let answer = self
                .client
                .clone()
                .get_credit_grade(ipb::GetCreditGradeRequest { uscc })
                .await;
            match answer {
                Ok(r) => match r.into_inner().grade() {
                    ipb::CreditGrade::A => Ok(CreditGrade::A),
                    ipb::CreditGrade::B => Ok(CreditGrade::B),
                    ipb::CreditGrade::C => Ok(CreditGrade::C),
                    ipb::CreditGrade::D => Ok(CreditGrade::D),
                    ipb::CreditGrade::Unspecified => {
                        Err("the inspection service answered no grade".to_string())
                    }
                },
                Err(s) => {
                    if s.code() == tonic::Code::Unauthenticated {
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

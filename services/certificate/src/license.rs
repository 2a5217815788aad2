//! Whether an enterprise's business license allows a certificate: the shared check of
//! [`credmesh_runtime::license`] (the license credential fetched from the license
//! service over gRPC and verified against identity's trust list and the license
//! service's signed status lists, like any relying party), its refusals mapped to this
//! service's errors with their stable reasons. The certificate service reads no license
//! table and believes no unsigned answer.

use credmesh_credential::{StatusCache, TrustSnapshot};
use credmesh_proto::credential::v1::Envelope;
pub use credmesh_runtime::license::{
    ActiveLicense, GrpcLicenseCheck, LicenseCheck, LicenseCheckError, RegisterState,
};

use crate::error::CertificateError;

impl From<LicenseCheckError> for CertificateError {
    fn from(e: LicenseCheckError) -> Self {
        match e {
            LicenseCheckError::NotActive { uscc, reason, why } => {
                CertificateError::LicenseNotActive {
                    uscc,
                    reason,
                    detail: why,
                }
            }
            LicenseCheckError::Unavailable { uscc, why } => {
                CertificateError::LicenseUnavailable { uscc, detail: why }
            }
        }
    }
}

/// [`credmesh_runtime::license::judge`], answering this service's error.
pub fn judge(
    uscc: &str,
    envelope: &Envelope,
    register: &RegisterState,
    trust: &TrustSnapshot,
    status: &StatusCache,
    now: i64,
) -> Result<ActiveLicense, CertificateError> {
    credmesh_runtime::license::judge(uscc, envelope, register, trust, status, now)
        .map_err(CertificateError::from)
}

//! The license check: the shared one of [`credmesh_runtime::license`] (the license
//! credential fetched over gRPC and verified like a verifier would), its errors mapped to
//! this service's.

pub use credmesh_runtime::license::{
    ActiveLicense, GrpcLicenseCheck, LicenseCheck, LicenseCheckError,
};

use crate::error::InspectionError;

impl From<LicenseCheckError> for InspectionError {
    fn from(e: LicenseCheckError) -> Self {
        match e {
            LicenseCheckError::NotActive { uscc, why, .. } => {
                InspectionError::LicenseNotActive { uscc, why }
            }
            LicenseCheckError::Unavailable { why, .. } => InspectionError::LicenseUnavailable(why),
        }
    }
}

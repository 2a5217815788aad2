//! The inspection service's issuer key: the shared mechanism of
//! [`credmesh_runtime::issuer_key`] with this service's issuer (`<region>/inspection`)
//! and kind (the key may sign inspection codes).

use std::{path::Path, sync::Arc};

use credmesh_credential::keys::IssuerKey;
use credmesh_proto::credential::v1::CredentialKind;
pub use credmesh_runtime::issuer_key::{
    GrpcRegistrar, KeyReady, KeyRegistrar, KeyRegistration, KeyState,
};
use credmesh_uscc::Region;

use crate::domain::code::issuer_id;

/// The issuer service name in kids and issuer ids.
pub const SERVICE: &str = "inspection";

/// The kinds this service's key may sign.
pub const KINDS: &[CredentialKind] = &[CredentialKind::InspectionCode];

/// Loads the PKCS#8 PEM signing key at `path`, naming it `<region>-inspection-<hash>`.
pub fn load_signing_key(path: &Path, region: Region) -> anyhow::Result<IssuerKey> {
    credmesh_runtime::issuer_key::load_signing_key(path, region.code(), SERVICE)
}

/// Registers `key` as the issuer key of `<region>/inspection` in the background,
/// retrying until identity answers.
pub fn spawn_registration(
    registrar: Arc<dyn KeyRegistrar>,
    key: &IssuerKey,
    region: Region,
    registration: Arc<KeyRegistration>,
) -> tokio::task::JoinHandle<()> {
    credmesh_runtime::issuer_key::spawn_registration(
        registrar,
        key,
        issuer_id(region),
        KINDS,
        registration,
    )
}

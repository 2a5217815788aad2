//! The certificate service's issuer key: the shared mechanism of
//! [`credmesh_runtime::issuer_key`] with this service's issuer (`<region>/certificate`)
//! and kinds (the key may sign certificates).

use std::{path::Path, sync::Arc};

use credmesh_credential::keys::IssuerKey;
use credmesh_proto::credential::v1::CredentialKind;
pub use credmesh_runtime::issuer_key::{
    GrpcRegistrar, KeyReady, KeyRegistrar, KeyRegistration, KeyState,
};
use credmesh_uscc::Region;

use crate::domain::credential::issuer_id;

/// The issuer service name in kids and issuer ids.
pub const SERVICE: &str = "certificate";

/// The kinds this service's key may sign.
pub const KINDS: &[CredentialKind] = &[CredentialKind::Certificate];

/// Loads the PKCS#8 PEM signing key at `path`, naming it `<region>-certificate-<hash>`.
pub fn load_signing_key(path: &Path, region: Region) -> anyhow::Result<IssuerKey> {
    credmesh_runtime::issuer_key::load_signing_key(path, region.code(), SERVICE)
}

/// Registers `key` as the issuer key of `<region>/certificate` in the background,
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

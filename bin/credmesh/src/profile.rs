//! The CLI profile: which endpoint to call and as which client. `credmesh dev` writes
//! one for its operator; operators of real deployments write their own.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use serde::{Deserialize, Serialize};

/// A CLI profile (TOML).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Profile {
    /// The gRPC endpoint, e.g. `http://127.0.0.1:50051`.
    pub endpoint: String,
    /// The identity service's gRPC endpoint, where tokens are asked for and `credmesh
    /// identity` commands go, when it is not `endpoint`: in a deployment of one service
    /// per process (`credmesh serve`, the Helm chart). Unset: `endpoint` (`credmesh dev`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity_endpoint: Option<String>,
    /// The client id to act as.
    pub client_id: String,
    /// The client's PKCS#8 PEM key file (absolute, or relative to the profile).
    pub key_file: PathBuf,
}

impl Profile {
    /// Reads a profile.
    pub fn load(path: &Path) -> anyhow::Result<Profile> {
        let text = std::fs::read_to_string(path).with_context(|| {
            format!(
                "reading the CLI profile {} (run `credmesh dev` once, or pass --profile)",
                path.display()
            )
        })?;
        let mut p: Profile = toml::from_str(&text)
            .with_context(|| format!("parsing the CLI profile {}", path.display()))?;
        if p.key_file.is_relative()
            && let Some(dir) = path.parent()
        {
            p.key_file = dir.join(&p.key_file);
        }
        Ok(p)
    }

    /// A fresh client assertion for the profile's client, signed with its key: what
    /// proves the client to the identity service (IssueToken, or `POST /v1/token`).
    pub fn client_assertion(&self) -> anyhow::Result<String> {
        let pem = std::fs::read_to_string(&self.key_file)
            .with_context(|| format!("reading {}", self.key_file.display()))?;
        let key = credmesh_credential::keys::IssuerKey::from_pkcs8_pem("cli", &pem)?;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_secs() as i64;
        Ok(credmesh_auth::client_assertion(
            &self.client_id,
            key.signing_key(),
            now,
        )?)
    }

    /// Writes a profile.
    pub fn save(&self, path: &Path) -> anyhow::Result<()> {
        crate::keyfile::write_private(path, &toml::to_string_pretty(self)?)
    }
}

//! Ed25519 key files (PKCS#8 PEM), created with owner-only permissions.

use std::{fs, path::Path};

use anyhow::Context as _;
use credmesh_credential::keys::IssuerKey;

/// Reads the key at `path`, generating and writing a new one first if the file does not
/// exist. Returns whether it was generated.
pub fn load_or_generate(path: &Path) -> anyhow::Result<(IssuerKey, bool)> {
    if path.exists() {
        let pem =
            fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        return Ok((IssuerKey::from_pkcs8_pem("local", &pem)?, false));
    }
    let key = IssuerKey::generate("local")?;
    write_private(path, &key.to_pkcs8_pem())?;
    Ok((key, true))
}

/// Writes `contents` to `path`, readable by the owner only.
pub fn write_private(path: &Path, contents: &str) -> anyhow::Result<()> {
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    #[cfg(unix)]
    {
        use std::{io::Write as _, os::unix::fs::OpenOptionsExt as _};
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(path)
            .with_context(|| format!("creating {}", path.display()))?;
        f.write_all(contents.as_bytes())?;
    }
    #[cfg(not(unix))]
    fs::write(path, contents)?;
    Ok(())
}

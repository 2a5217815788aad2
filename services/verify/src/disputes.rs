//! Data disputes: each issuer that publishes a signed dispute notice
//! (`/v1/disputes/<issuer>` under its region's status base URL) lists the credentials
//! whose data is under an open dispute, with the disputed fields. The gateway fetches an
//! issuer's notice when it verifies one of its certificates, at most once a second per
//! issuer, checks its signature against the trust snapshot (the key must be the
//! issuer's and not revoked) and answers "disputed" with the field names.
//!
//! Deliberate simplifications: notices live in process memory only (not in the shared
//! cache), and certificate answers bypass the result cache, since a dispute filed must
//! show in the next verification; when a notice cannot be fetched the last good one is
//! used, and without one the answer carries no dispute flag (the outcome, decided by
//! signature and status, is unaffected).

use std::{collections::HashMap, sync::Mutex, time::Duration};

use credmesh_credential::{
    TrustSnapshot,
    envelope::{Context, open},
};
use credmesh_proto::credential::v1::{DisputeNotice, Envelope, KeyStatus};
use credmesh_proto::prost::Message as _;
use http::StatusCode;

use crate::{federation::Trust, fetch::HeldTag};

#[derive(Debug, Default)]
struct Held {
    last_attempt: i64,
    sequence: u64,
    disputed: HashMap<String, Vec<String>>,
    raw: Option<Envelope>,
    /// The issuer's `ETag` of the notice held and the trust version it was opened
    /// under: sent with the next fetch, whose `304` then needs no download and no
    /// signature check.
    etag: Option<HeldTag>,
}

/// Opens a signed dispute notice: its key must be trusted, not revoked, and belong to
/// the issuer the notice speaks for.
pub fn open_notice(envelope: &Envelope, trust: &TrustSnapshot) -> anyhow::Result<DisputeNotice> {
    let entry = trust
        .get(&envelope.kid)
        .ok_or_else(|| anyhow::anyhow!("the notice's key {} is not trusted", envelope.kid))?;
    if entry.status == KeyStatus::Revoked {
        anyhow::bail!("the notice's key {} is revoked", envelope.kid);
    }
    let notice: DisputeNotice = open(Context::DisputeNotice, envelope, &entry.key)?;
    if notice.issuer != entry.issuer {
        anyhow::bail!(
            "the notice names issuer {} but is signed by {}",
            notice.issuer,
            entry.issuer
        );
    }
    Ok(notice)
}

/// The dispute notices held, by issuer.
#[derive(Debug, Default)]
pub struct DisputeStore {
    held: Mutex<HashMap<String, Held>>,
}

impl DisputeStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// The disputed fields of `credential_id` of `issuer`, if it is disputed; refreshes
    /// the issuer's notice first when it was not fetched this second.
    pub async fn disputed(
        &self,
        issuer: &str,
        credential_id: &str,
        trust: &Trust,
        now: i64,
    ) -> Option<Vec<String>> {
        let due = self
            .held
            .lock()
            .map(|h| h.get(issuer).is_none_or(|h| h.last_attempt < now))
            .unwrap_or(false);
        if due {
            if let Ok(mut h) = self.held.lock() {
                h.entry(issuer.to_owned()).or_default().last_attempt = now;
            }
            if let Err(err) = self.fetch(issuer, trust).await {
                tracing::warn!(issuer, error = %format!("{err:#}"), "dispute notice not fetched");
            }
        }
        self.held
            .lock()
            .ok()?
            .get(issuer)?
            .disputed
            .get(credential_id)
            .cloned()
    }

    /// Fetches `issuer`'s notice now (unless it was fetched this second), as a trust
    /// bundle needs it whether or not a verification asked.
    pub async fn refresh(&self, issuer: &str, trust: &Trust, now: i64) {
        let _ = self.disputed(issuer, "", trust, now).await;
    }

    /// Every raw signed notice held, for trust bundles.
    pub fn raw_notices(&self) -> Vec<Envelope> {
        self.held
            .lock()
            .map(|h| h.values().filter_map(|h| h.raw.clone()).collect())
            .unwrap_or_default()
    }

    async fn fetch(&self, issuer: &str, trust: &Trust) -> anyhow::Result<()> {
        let region = issuer.split('/').next().unwrap_or_default();
        let base = trust
            .status_base
            .get(region)
            .ok_or_else(|| anyhow::anyhow!("region {region} publishes no status base URL"))?;
        let url = format!("{base}/v1/disputes/{issuer}");
        let held_tag = self.held.lock().ok().and_then(|h| {
            let h = h.get(issuer)?;
            h.raw.as_ref()?;
            h.etag.as_ref()?.under(trust.version).map(str::to_owned)
        });
        let fetched = trust
            .http
            .get_unless_held(
                &url,
                "application/x-protobuf",
                held_tag.as_deref(),
                Duration::from_secs(2),
            )
            .await?;
        let (code, body) = (fetched.status, fetched.body);
        if code == StatusCode::NOT_MODIFIED && held_tag.is_some() {
            // The issuer still has the notice held.
            return Ok(());
        }
        if code == StatusCode::NOT_FOUND {
            // This issuer publishes no notices (not a certificate issuer).
            return Ok(());
        }
        if code != StatusCode::OK {
            anyhow::bail!("{url} answered {code}");
        }
        let envelope = Envelope::decode(body.as_ref())?;
        let notice = open_notice(&envelope, &trust.snapshot)?;
        if notice.issuer != issuer {
            anyhow::bail!("the notice names issuer {}, not {issuer}", notice.issuer);
        }
        let mut held = self
            .held
            .lock()
            .map_err(|_| anyhow::anyhow!("dispute state poisoned"))?;
        let h = held.entry(issuer.to_owned()).or_default();
        if notice.sequence >= h.sequence {
            h.sequence = notice.sequence;
            h.etag = fetched.etag.map(|tag| HeldTag::new(trust.version, tag));
            h.raw = Some(envelope);
            h.disputed = notice
                .credentials
                .into_iter()
                .map(|c| (c.credential_id, c.fields))
                .collect();
        }
        Ok(())
    }
}

//! Offline verification from a [`TrustBundle`]: the `credmesh verify FILE` command and
//! any partner tool without a network. The same checks and the same answer as the
//! gateway; the bundle's anchor keys are the trust root.

use std::{collections::HashMap, time::Duration};

use anyhow::Context as _;
use credmesh_credential::{Policy, StatusCache, TrustSnapshot, VerifyingKey, verify};
use credmesh_proto::verify::v1::{TrustBundle, VerificationResult};

use crate::{
    disputes::open_notice,
    domain::answer::{self, Freshness},
    federation::open_trust_list,
    service::Input,
    status::MAX_BITS,
};

/// The trust and status data of a bundle, every signature checked.
#[derive(Debug)]
pub struct Offline {
    trust: TrustSnapshot,
    status: StatusCache,
    /// Disputed fields by (issuer, credential id), from the bundle's dispute notices.
    disputed: HashMap<(String, String), Vec<String>>,
    /// Problems with individual status lists (they are skipped, not fatal).
    pub warnings: Vec<String>,
}

impl Offline {
    /// Checks every trust list against its anchor and every status list against the
    /// trust lists. A bad trust list is an error; a bad status list a warning.
    pub fn from_bundle(bundle: &TrustBundle) -> anyhow::Result<Offline> {
        let mut trust = TrustSnapshot::new();
        for r in &bundle.regions {
            let key: [u8; 32] = r
                .anchor_public_key
                .as_slice()
                .try_into()
                .with_context(|| format!("the anchor key of {} is not 32 bytes", r.region))?;
            let anchor = VerifyingKey::from_bytes(&key)
                .with_context(|| format!("the anchor key of {} is not an Ed25519 key", r.region))?;
            let envelope = r
                .trust_list
                .as_ref()
                .with_context(|| format!("region {} has no trust list", r.region))?;
            let list = open_trust_list(envelope, &r.region, &anchor)?;
            trust
                .extend_from_trust_list(&list, r.fetched_at)
                .with_context(|| format!("the trust list of {}", r.region))?;
        }
        let mut status = StatusCache::new();
        let mut warnings = Vec::new();
        for (i, list) in bundle.status_lists.iter().enumerate() {
            if let Err(err) = status.insert_signed(list, &trust, MAX_BITS) {
                warnings.push(format!("status list {i} skipped: {err}"));
            }
        }
        let mut disputed = HashMap::new();
        for (i, envelope) in bundle.dispute_notices.iter().enumerate() {
            match open_notice(envelope, &trust) {
                Ok(notice) => {
                    for c in notice.credentials {
                        disputed.insert((notice.issuer.clone(), c.credential_id), c.fields);
                    }
                }
                Err(err) => warnings.push(format!("dispute notice {i} skipped: {err:#}")),
            }
        }
        Ok(Offline {
            trust,
            status,
            disputed,
            warnings,
        })
    }

    /// Verifies one credential at `now`; data older than `max_staleness` never answers
    /// valid.
    pub fn verify(&self, input: &Input, now: i64, max_staleness: Duration) -> VerificationResult {
        let policy = Policy {
            max_status_age: max_staleness,
            max_clock_skew: Duration::from_secs(300),
        };
        let v = verify(input.presented(), &self.trust, &self.status, &policy, now);
        let mut result = answer::to_result(
            &v,
            Freshness {
                max_staleness,
                fresh: max_staleness,
            },
            now,
        );
        if let Some(c) = &v.credential
            && let Some(fields) = self.disputed.get(&(c.issuer.clone(), c.id.clone()))
        {
            result.disputed = true;
            result.disputed_fields = fields.clone();
        }
        result
    }
}

/// Reads a credential file's bytes: UTF-8 text (QR text, VC-JWT) or native envelope
/// bytes otherwise.
pub fn input_from_bytes(bytes: Vec<u8>) -> Input {
    match String::from_utf8(bytes) {
        Ok(text) => Input::Text(text.trim().to_owned()),
        Err(e) => Input::Envelope(e.into_bytes()),
    }
}

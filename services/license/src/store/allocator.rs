//! Serials and status-list entries, claimed from the database in blocks and handed out
//! from memory.
//!
//! Every establishment needs a GB/T 36904 serial of its authority and every version a
//! status-list entry. Taking each from its counter row inside the issuing transaction
//! made every writer of the service queue on one row (two rows per establishment) for
//! the whole transaction, and cost two round trips. Instead a process claims a block of
//! consecutive values with one short statement of its own (`UPDATE … RETURNING`,
//! committed at once) and hands them out one by one; the version row records the value
//! in the issuing transaction, where the unique constraints on `license_id` and
//! `(list_no, list_index)` would refuse a value used twice.
//!
//! A value whose transaction certainly wrote nothing (the enterprise already existed, a
//! retried request, a refused amendment) is handed back and given out next, so serials
//! stay gapless while the process runs. What a process had claimed and not used when it
//! stops is never used: a gap in the serials (ids stay unique and are never reused) and
//! unused status entries. Blocks start at one value and double with each claim up to a
//! cap, so a quiet authority loses at most a value or two and a busy one claims rarely.

use std::{
    collections::HashMap,
    future::Future,
    sync::{Arc, Mutex},
};

use crate::error::LicenseError;

/// The largest block of serials claimed at once, per authority.
pub const SERIAL_BLOCK: u64 = 32;
/// The largest block of status entries claimed at once.
pub const ENTRY_BLOCK: u64 = 256;

#[derive(Debug, Default)]
struct Free {
    /// Values handed back, given out first.
    returned: Vec<u64>,
    /// The unused rest of the last block.
    next: u64,
    end: u64,
    /// The size of the next claim.
    block: u64,
}

impl Free {
    fn pop(&mut self) -> Option<u64> {
        if let Some(v) = self.returned.pop() {
            return Some(v);
        }
        (self.next < self.end).then(|| {
            self.next += 1;
            self.next - 1
        })
    }
}

/// One counter's values, handed out from claimed blocks.
#[derive(Debug)]
pub struct Blocks {
    free: Mutex<Free>,
    /// Held while claiming, so concurrent callers wait for one claim instead of each
    /// claiming a block.
    claiming: tokio::sync::Mutex<()>,
    cap: u64,
}

impl Blocks {
    /// Blocks of at most `cap` values.
    pub fn new(cap: u64) -> Self {
        Blocks {
            free: Mutex::new(Free {
                block: 1,
                ..Free::default()
            }),
            claiming: tokio::sync::Mutex::new(()),
            cap: cap.max(1),
        }
    }

    fn pop(&self) -> Option<u64> {
        self.free.lock().ok()?.pop()
    }

    /// The next value; `claim(n)` claims `n` values from the database and answers the
    /// first.
    pub async fn take<F, Fut>(self: &Arc<Self>, claim: F) -> Result<Reserved, LicenseError>
    where
        F: FnOnce(u64) -> Fut,
        Fut: Future<Output = Result<u64, LicenseError>>,
    {
        let reserved = |value| Reserved {
            blocks: self.clone(),
            value: Some(value),
        };
        if let Some(v) = self.pop() {
            return Ok(reserved(v));
        }
        let _claiming = self.claiming.lock().await;
        if let Some(v) = self.pop() {
            return Ok(reserved(v));
        }
        let n = self.free.lock().map(|f| f.block).unwrap_or(1);
        let first = claim(n).await?;
        let mut free = self
            .free
            .lock()
            .map_err(|_| LicenseError::Internal(anyhow::anyhow!("allocator lock poisoned")))?;
        free.next = first + 1;
        free.end = first + n;
        free.block = (n * 2).min(self.cap);
        Ok(reserved(first))
    }

    fn give_back(&self, value: u64) {
        if let Ok(mut free) = self.free.lock() {
            free.returned.push(value);
        }
    }
}

/// A value taken from [`Blocks`]. Dropped, it is lost (the safe default once a write
/// may have happened); [`Reserved::give_back`] returns it when nothing was written.
#[derive(Debug)]
pub struct Reserved {
    blocks: Arc<Blocks>,
    value: Option<u64>,
}

impl Reserved {
    /// The value.
    pub fn value(&self) -> u64 {
        self.value.unwrap_or_default()
    }

    /// Hands the value back, to be given out next: only when it was certainly not
    /// stored.
    pub fn give_back(mut self) {
        if let Some(v) = self.value.take() {
            self.blocks.give_back(v);
        }
    }
}

/// The service's counters: status entries and each authority's serials.
#[derive(Debug)]
pub struct Allocator {
    /// Status-list entries.
    pub entries: Arc<Blocks>,
    serials: Mutex<HashMap<String, Arc<Blocks>>>,
}

impl Default for Allocator {
    fn default() -> Self {
        Allocator {
            entries: Arc::new(Blocks::new(ENTRY_BLOCK)),
            serials: Mutex::new(HashMap::new()),
        }
    }
}

impl Allocator {
    /// The serials of `authority`.
    pub fn serials(&self, authority: &str) -> Arc<Blocks> {
        let mut map = match self.serials.lock() {
            Ok(m) => m,
            Err(p) => p.into_inner(),
        };
        map.entry(authority.to_string())
            .or_insert_with(|| Arc::new(Blocks::new(SERIAL_BLOCK)))
            .clone()
    }
}

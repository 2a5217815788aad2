//! Idempotency keys: a retried mutation answers the first result and never acts twice.
//!
//! A mutating RPC carries a client-chosen key. Inside the transaction that performs the
//! change, [`IdempotencyStore::claim`] inserts a placeholder row for (scope, key): the
//! first request owns it and does the work; a concurrent duplicate blocks on the row
//! (PostgreSQL) or on the write lock (SQLite) until the first commits, then reads the
//! stored answer. [`IdempotencyStore::complete`] stores the answer in the same
//! transaction, so either both the change and its answer are committed, or neither.
//! The same key with a different request is a conflict, not a replay.
//!
//! A mutation that is written in one go, after its answer is known, can instead insert
//! the record with its answer in the same transaction ([`IdempotencyKey::request_hash`]
//! gives the column): a duplicate then fails on the record's primary key, the
//! transaction writes nothing, and [`IdempotencyStore::recorded`] reads the first
//! answer.

use std::future::Future;

use sha2::{Digest, Sha256};

/// Longest key a client may send.
pub const MAX_KEY_LEN: usize = 128;

/// A validated idempotency key bound to one operation, one caller and one request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdempotencyKey {
    scope: String,
    key: String,
    request_hash: Vec<u8>,
}

/// Why a client's idempotency key was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum InvalidKey {
    /// Longer than [`MAX_KEY_LEN`].
    #[error("the idempotency key is longer than {MAX_KEY_LEN} characters")]
    TooLong,
    /// Characters outside printable ASCII.
    #[error("the idempotency key may contain only printable ASCII characters")]
    Charset,
}

impl IdempotencyKey {
    /// A key for `operation` (for example `identity.RegisterClient`) sent by `caller`;
    /// `request` is the canonical encoding of the request, so that a reused key with a
    /// different request is detected. `Ok(None)` when the client sent no key.
    pub fn new(
        operation: &str,
        caller: &str,
        key: &str,
        request: &[u8],
    ) -> Result<Option<IdempotencyKey>, InvalidKey> {
        if key.is_empty() {
            return Ok(None);
        }
        if key.len() > MAX_KEY_LEN {
            return Err(InvalidKey::TooLong);
        }
        if !key.bytes().all(|b| (0x21..0x7f).contains(&b)) {
            return Err(InvalidKey::Charset);
        }
        Ok(Some(IdempotencyKey {
            scope: format!("{operation}:{caller}"),
            key: key.to_string(),
            request_hash: Sha256::digest(request).to_vec(),
        }))
    }

    /// The operation and caller the key is bound to.
    pub fn scope(&self) -> &str {
        &self.scope
    }

    /// The client's key.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// SHA-256 of the request the key was sent with.
    pub fn request_hash(&self) -> &[u8] {
        &self.request_hash
    }

    /// What a stored record of this key, made for `request_hash` and answered
    /// `response`, means for this request: a replay of it, or a conflict.
    pub fn against(&self, request_hash: &[u8], response: Vec<u8>) -> Claim {
        if request_hash == self.request_hash.as_slice() {
            Claim::Replay(response)
        } else {
            Claim::Conflict
        }
    }
}

/// What claiming a key found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Claim {
    /// First use: do the work, then call `complete`.
    Fresh,
    /// Already done: answer with these stored response bytes.
    Replay(Vec<u8>),
    /// The key was used before for a different request.
    Conflict,
}

/// The result of an idempotent mutation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome<T> {
    /// The change was made now.
    Done(T),
    /// The change was made before; these are the response bytes answered then.
    Replayed(Vec<u8>),
}

/// Idempotency records on a connection inside the caller's transaction.
pub trait IdempotencyStore {
    /// Claims the key (see the module docs).
    fn claim(
        &mut self,
        key: &IdempotencyKey,
        now: i64,
    ) -> impl Future<Output = Result<Claim, sqlx::Error>> + Send;
    /// The record of a key already used: a replay or a conflict; `None` when unused.
    fn recorded(
        &mut self,
        key: &IdempotencyKey,
    ) -> impl Future<Output = Result<Option<Claim>, sqlx::Error>> + Send;
    /// Stores the response of a fresh claim.
    fn complete(
        &mut self,
        key: &IdempotencyKey,
        response: &[u8],
    ) -> impl Future<Output = Result<(), sqlx::Error>> + Send;
}

macro_rules! impl_idempotency_store {
    ($conn:ty) => {
        impl IdempotencyStore for $conn {
            async fn claim(
                &mut self,
                key: &IdempotencyKey,
                now: i64,
            ) -> Result<Claim, sqlx::Error> {
                let inserted = sqlx::query(
                    "INSERT INTO idempotency (scope, key, request_hash, response, created_at) \
                     VALUES ($1, $2, $3, $4, $5) ON CONFLICT (scope, key) DO NOTHING",
                )
                .bind(&key.scope)
                .bind(&key.key)
                .bind(&key.request_hash)
                .bind(Vec::<u8>::new())
                .bind(now)
                .execute(&mut *self)
                .await?
                .rows_affected();
                if inserted == 1 {
                    return Ok(Claim::Fresh);
                }
                self.recorded(key).await?.ok_or(sqlx::Error::RowNotFound)
            }

            async fn recorded(
                &mut self,
                key: &IdempotencyKey,
            ) -> Result<Option<Claim>, sqlx::Error> {
                let row: Option<(Vec<u8>, Vec<u8>)> = sqlx::query_as(
                    "SELECT request_hash, response FROM idempotency WHERE scope = $1 AND key = $2",
                )
                .bind(&key.scope)
                .bind(&key.key)
                .fetch_optional(&mut *self)
                .await?;
                Ok(row.map(|(hash, response)| key.against(&hash, response)))
            }

            async fn complete(
                &mut self,
                key: &IdempotencyKey,
                response: &[u8],
            ) -> Result<(), sqlx::Error> {
                sqlx::query("UPDATE idempotency SET response = $1 WHERE scope = $2 AND key = $3")
                    .bind(response)
                    .bind(&key.scope)
                    .bind(&key.key)
                    .execute(&mut *self)
                    .await?;
                Ok(())
            }
        }
    };
}

impl_idempotency_store!(sqlx::SqliteConnection);
impl_idempotency_store!(sqlx::PgConnection);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_key_means_no_idempotency() {
        assert_eq!(IdempotencyKey::new("op", "me", "", b"x"), Ok(None));
    }

    #[test]
    fn keys_with_spaces_or_control_characters_are_refused() {
        assert_eq!(
            IdempotencyKey::new("op", "me", "a b", b"x"),
            Err(InvalidKey::Charset)
        );
        assert_eq!(
            IdempotencyKey::new("op", "me", &"k".repeat(129), b"x"),
            Err(InvalidKey::TooLong)
        );
    }

    #[test]
    fn the_same_key_from_two_callers_is_two_scopes() {
        let a = IdempotencyKey::new("op", "alice", "k1", b"x")
            .unwrap()
            .unwrap();
        let b = IdempotencyKey::new("op", "bob", "k1", b"x")
            .unwrap()
            .unwrap();
        assert_ne!(a.scope(), b.scope());
    }
}

//! The identity service's repository: one trait, a SQLite and a PostgreSQL
//! implementation generated from one body (see `credmesh_store` for why).

use async_trait::async_trait;
use credmesh_auth::PrincipalKind;
use credmesh_proto::credential::v1::{KeyStatus, TrustedKey};
use credmesh_store::{
    Db,
    audit::{AuditEntry, AuditLog as _},
    idempotency::{Claim, IdempotencyKey, IdempotencyStore as _, Outcome},
    sqlx::{self, PgPool, SqlitePool},
};
use credmesh_uscc::Uscc;
use std::sync::Arc;

use crate::{
    domain::client::{Client, ClientAuth},
    error::IdentityError,
};

/// Who is making a change, for the audit log.
#[derive(Clone, Copy, Debug)]
pub struct Actor<'a> {
    /// Client id.
    pub client_id: &'a str,
    /// Principal kind.
    pub kind: &'a str,
    /// Trace id of the request.
    pub trace_id: &'a str,
}

impl<'a> Actor<'a> {
    /// The audit entry recording that this actor did `action` to `target` at `at`.
    pub fn entry(
        self,
        at: i64,
        action: &'a str,
        target: &'a str,
        detail: serde_json::Value,
    ) -> AuditEntry<'a> {
        AuditEntry {
            at,
            actor: self.client_id,
            actor_kind: self.kind,
            action,
            target,
            detail,
            trace_id: self.trace_id,
        }
    }
}

/// An issuer key with its registration time.
#[derive(Clone, Debug, PartialEq)]
pub struct IssuerKeyRecord {
    /// The key as published.
    pub key: TrustedKey,
    /// When it was registered.
    pub registered_at: i64,
}

/// A pinned partner anchor.
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct AnchorRecord {
    /// Partner region code.
    pub region: String,
    /// Anchor key id.
    pub kid: String,
    /// Raw public key.
    pub public_key: Vec<u8>,
    /// Where its trust list is fetched.
    pub endpoint: String,
    /// When pinned.
    pub pinned_at: i64,
}

/// Encodes the response stored for idempotent replays.
pub type EncodeResponse<'a, T> = &'a (dyn Fn(&T) -> Vec<u8> + Send + Sync);

/// Everything the identity service stores.
#[async_trait]
pub trait IdentityStore: Send + Sync + std::fmt::Debug + 'static {
    /// Registers a client (idempotent on `key`).
    async fn register_client(
        &self,
        client: &Client,
        actor: Actor<'_>,
        key: Option<&IdempotencyKey>,
        encode: EncodeResponse<'_, Client>,
    ) -> Result<Outcome<Client>, IdentityError>;
    /// One client.
    async fn get_client(&self, client_id: &str) -> Result<Option<Client>, IdentityError>;
    /// Clients with ids after `after`, in id order.
    async fn list_clients(&self, after: &str, limit: u32) -> Result<Vec<Client>, IdentityError>;
    /// Disables a client.
    async fn disable_client(
        &self,
        client_id: &str,
        reason: &str,
        actor: Actor<'_>,
        now: i64,
    ) -> Result<Client, IdentityError>;
    /// Records a client assertion id; `false` when it was used before (a replay).
    async fn use_assertion(
        &self,
        jti: &str,
        client_id: &str,
        expires_at: i64,
        now: i64,
    ) -> Result<bool, IdentityError>;
    /// Registers an issuer key, retiring the issuer's previously active key. Registering
    /// the same kid and public key again answers the stored key.
    async fn register_issuer_key(
        &self,
        key: TrustedKey,
        actor: Actor<'_>,
        now: i64,
    ) -> Result<(IssuerKeyRecord, Option<IssuerKeyRecord>), IdentityError>;
    /// Revokes an issuer key.
    async fn revoke_issuer_key(
        &self,
        kid: &str,
        reason: &str,
        actor: Actor<'_>,
        now: i64,
    ) -> Result<IssuerKeyRecord, IdentityError>;
    /// Issuer keys, newest first, optionally of one issuer.
    async fn list_issuer_keys(
        &self,
        issuer: Option<&str>,
    ) -> Result<Vec<IssuerKeyRecord>, IdentityError>;
    /// The trust list sequence and every key, in kid order.
    async fn trust_snapshot(&self) -> Result<(u64, Vec<TrustedKey>), IdentityError>;
    /// Pins (or re-pins) a partner anchor.
    async fn pin_anchor(
        &self,
        anchor: &AnchorRecord,
        actor: Actor<'_>,
    ) -> Result<(), IdentityError>;
    /// The pinned anchors, by region.
    async fn list_anchors(&self) -> Result<Vec<AnchorRecord>, IdentityError>;
    /// Stores a verified partner trust list unless an equal or newer one is held.
    async fn save_partner_trust_list(
        &self,
        region: &str,
        envelope: &[u8],
        sequence: u64,
        actor: Actor<'_>,
        now: i64,
    ) -> Result<(), IdentityError>;
    /// The stored partner trust list and when it was imported.
    async fn partner_trust_list(
        &self,
        region: &str,
    ) -> Result<Option<(Vec<u8>, i64)>, IdentityError>;
}

/// The store for `db`.
pub fn for_db(db: &Db) -> Arc<dyn IdentityStore> {
    match db {
        Db::Sqlite(pool) => Arc::new(SqliteIdentityStore { pool: pool.clone() }),
        Db::Postgres(pool) => Arc::new(PgIdentityStore { pool: pool.clone() }),
    }
}

/// SQLite implementation.
#[derive(Debug, Clone)]
pub struct SqliteIdentityStore {
    pool: SqlitePool,
}

/// PostgreSQL implementation.
#[derive(Debug, Clone)]
pub struct PgIdentityStore {
    pool: PgPool,
}

#[derive(sqlx::FromRow)]
struct ClientRow {
    client_id: String,
    kind: String,
    display_name: String,
    scopes: String,
    organization: String,
    public_key: Option<Vec<u8>>,
    secret_hash: Option<Vec<u8>>,
    enforcement_certificate: String,
    disabled: bool,
    created_at: i64,
}

impl TryFrom<ClientRow> for Client {
    type Error = IdentityError;
    fn try_from(r: ClientRow) -> Result<Client, IdentityError> {
        let corrupt = |what: &str| {
            IdentityError::Internal(anyhow::anyhow!(
                "stored client {} has an invalid {what}",
                r.client_id
            ))
        };
        let kind = PrincipalKind::parse(&r.kind).ok_or_else(|| corrupt("kind"))?;
        let auth = match (&r.public_key, &r.secret_hash) {
            (Some(pk), _) => ClientAuth::PublicKey(
                pk.as_slice()
                    .try_into()
                    .map_err(|_| corrupt("public key"))?,
            ),
            (None, Some(h)) => ClientAuth::Secret(h.clone()),
            (None, None) => return Err(corrupt("credential")),
        };
        let organization = if r.organization.is_empty() {
            None
        } else {
            // Stored organisations were validated on entry; pilot codes may have been
            // admitted by an audited override, so only the structure is re-checked.
            Some(
                Uscc::parse_pilot_override(&r.organization)
                    .map(|(u, _)| u)
                    .map_err(|_| corrupt("organization"))?,
            )
        };
        Ok(Client {
            client_id: r.client_id.clone(),
            kind,
            display_name: r.display_name,
            scopes: r.scopes.split_whitespace().map(str::to_string).collect(),
            organization,
            auth,
            enforcement_certificate: (!r.enforcement_certificate.is_empty())
                .then_some(r.enforcement_certificate),
            disabled: r.disabled,
            created_at: r.created_at,
        })
    }
}

#[derive(sqlx::FromRow)]
struct KeyRow {
    kid: String,
    issuer: String,
    region: String,
    public_key: Vec<u8>,
    kinds: String,
    not_before: i64,
    not_after: i64,
    status: i64,
    retired_at: i64,
    registered_at: i64,
}

impl From<KeyRow> for IssuerKeyRecord {
    fn from(r: KeyRow) -> IssuerKeyRecord {
        IssuerKeyRecord {
            key: TrustedKey {
                kid: r.kid,
                issuer: r.issuer,
                region: r.region,
                public_key: r.public_key,
                not_before: r.not_before,
                not_after: r.not_after,
                status: r.status as i32,
                kinds: r.kinds.split(',').filter_map(|k| k.parse().ok()).collect(),
                retired_at: r.retired_at,
            },
            registered_at: r.registered_at,
        }
    }
}

fn kinds_text(kinds: &[i32]) -> String {
    kinds
        .iter()
        .map(i32::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

const CLIENT_COLUMNS: &str = "client_id, kind, display_name, scopes, organization, public_key, secret_hash, enforcement_certificate, disabled, created_at";
const KEY_COLUMNS: &str = "kid, issuer, region, public_key, kinds, not_before, not_after, status, retired_at, registered_at";

macro_rules! impl_identity_store {
    ($store:ident, $begin:path, $dialect:tt) => {
        #[async_trait]
        impl IdentityStore for $store {
            #[tracing::instrument(skip_all, fields(otel.kind = "client", db.system.name = credmesh_store::system_name(stringify!($dialect)), client_id = %client.client_id))]
            async fn register_client(
                &self,
                client: &Client,
                actor: Actor<'_>,
                key: Option<&IdempotencyKey>,
                encode: EncodeResponse<'_, Client>,
            ) -> Result<Outcome<Client>, IdentityError> {
                let mut tx = $begin(&self.pool).await?;
                if let Some(key) = key {
                    match tx.claim(key, client.created_at).await? {
                        Claim::Fresh => {}
                        Claim::Replay(bytes) => return Ok(Outcome::Replayed(bytes)),
                        Claim::Conflict => return Err(IdentityError::IdempotencyConflict),
                    }
                }
                let (public_key, secret_hash) = match &client.auth {
                    ClientAuth::PublicKey(pk) => (Some(pk.to_vec()), None),
                    ClientAuth::Secret(h) => (None, Some(h.clone())),
                };
                let inserted = sqlx::query(concat!(
                    "INSERT INTO clients (client_id, kind, display_name, scopes, organization, public_key, ",
                    "secret_hash, enforcement_certificate, disabled, created_at) ",
                    "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT (client_id) DO NOTHING"
                ))
                .bind(&client.client_id)
                .bind(client.kind.as_str())
                .bind(&client.display_name)
                .bind(client.scopes.join(" "))
                .bind(client.organization.as_ref().map(|u| u.as_str().to_string()).unwrap_or_default())
                .bind(public_key)
                .bind(secret_hash)
                .bind(client.enforcement_certificate.clone().unwrap_or_default())
                .bind(client.disabled)
                .bind(client.created_at)
                .execute(&mut *tx)
                .await?
                .rows_affected();
                if inserted == 0 {
                    return Err(IdentityError::ClientExists(client.client_id.clone()));
                }
                tx.append(&actor.entry(client.created_at, "identity.register_client", &client.client_id, serde_json::json!({
                        "kind": client.kind.as_str(),
                        "scopes": client.scopes,
                        "organization": client.organization.as_ref().map(|u| u.as_str()),
                    })))
                .await?;
                if let Some(key) = key {
                    tx.complete(key, &encode(client)).await?;
                }
                tx.commit().await?;
                Ok(Outcome::Done(client.clone()))
            }

            #[tracing::instrument(skip_all, fields(otel.kind = "client", db.system.name = credmesh_store::system_name(stringify!($dialect))))]
            async fn get_client(&self, client_id: &str) -> Result<Option<Client>, IdentityError> {
                let row: Option<ClientRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                    "SELECT {CLIENT_COLUMNS} FROM clients WHERE client_id = $1"
                )))
                .bind(client_id)
                .fetch_optional(&self.pool)
                .await?;
                row.map(Client::try_from).transpose()
            }

            #[tracing::instrument(skip_all, fields(otel.kind = "client", db.system.name = credmesh_store::system_name(stringify!($dialect))))]
            async fn list_clients(&self, after: &str, limit: u32) -> Result<Vec<Client>, IdentityError> {
                let rows: Vec<ClientRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                    "SELECT {CLIENT_COLUMNS} FROM clients WHERE client_id > $1 ORDER BY client_id LIMIT $2"
                )))
                .bind(after)
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await?;
                rows.into_iter().map(Client::try_from).collect()
            }

            #[tracing::instrument(skip_all, fields(otel.kind = "client", db.system.name = credmesh_store::system_name(stringify!($dialect))))]
            async fn disable_client(
                &self,
                client_id: &str,
                reason: &str,
                actor: Actor<'_>,
                now: i64,
            ) -> Result<Client, IdentityError> {
                let mut tx = $begin(&self.pool).await?;
                let updated = sqlx::query("UPDATE clients SET disabled = TRUE WHERE client_id = $1")
                    .bind(client_id)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                if updated == 0 {
                    return Err(IdentityError::ClientNotFound(client_id.to_string()));
                }
                tx.append(&actor.entry(now, "identity.disable_client", client_id, serde_json::json!({ "reason": reason })))
                .await?;
                let row: ClientRow = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                    "SELECT {CLIENT_COLUMNS} FROM clients WHERE client_id = $1"
                )))
                .bind(client_id)
                .fetch_one(&mut *tx)
                .await?;
                tx.commit().await?;
                Client::try_from(row)
            }

            #[tracing::instrument(skip_all, fields(otel.kind = "client", db.system.name = credmesh_store::system_name(stringify!($dialect))))]
            async fn use_assertion(
                &self,
                jti: &str,
                client_id: &str,
                expires_at: i64,
                now: i64,
            ) -> Result<bool, IdentityError> {
                let mut tx = $begin(&self.pool).await?;
                sqlx::query("DELETE FROM used_assertions WHERE expires_at < $1")
                    .bind(now - 600)
                    .execute(&mut *tx)
                    .await?;
                let inserted = sqlx::query(
                    "INSERT INTO used_assertions (jti, client_id, expires_at) VALUES ($1, $2, $3) ON CONFLICT (jti) DO NOTHING",
                )
                .bind(jti)
                .bind(client_id)
                .bind(expires_at)
                .execute(&mut *tx)
                .await?
                .rows_affected();
                tx.commit().await?;
                Ok(inserted == 1)
            }

            #[tracing::instrument(skip_all, fields(otel.kind = "client", db.system.name = credmesh_store::system_name(stringify!($dialect)), kid = %key.kid))]
            async fn register_issuer_key(
                &self,
                key: TrustedKey,
                actor: Actor<'_>,
                now: i64,
            ) -> Result<(IssuerKeyRecord, Option<IssuerKeyRecord>), IdentityError> {
                let mut tx = $begin(&self.pool).await?;
                let existing: Option<KeyRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                    "SELECT {KEY_COLUMNS} FROM issuer_keys WHERE kid = $1"
                )))
                .bind(&key.kid)
                .fetch_optional(&mut *tx)
                .await?;
                if let Some(row) = existing {
                    if row.public_key == key.public_key && row.issuer == key.issuer {
                        return Ok((row.into(), None));
                    }
                    return Err(IdentityError::KeyExists(key.kid));
                }
                let previous: Option<KeyRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                    "SELECT {KEY_COLUMNS} FROM issuer_keys WHERE issuer = $1 AND status = $2{}",
                    credmesh_store::for_update!($dialect)
                )))
                .bind(&key.issuer)
                .bind(KeyStatus::Active as i64)
                .fetch_optional(&mut *tx)
                .await?;
                let retired = match previous {
                    Some(row) => {
                        sqlx::query("UPDATE issuer_keys SET status = $1, retired_at = $2 WHERE kid = $3")
                            .bind(KeyStatus::Retired as i64)
                            .bind(now)
                            .bind(&row.kid)
                            .execute(&mut *tx)
                            .await?;
                        let mut rec = IssuerKeyRecord::from(row);
                        rec.key.status = KeyStatus::Retired as i32;
                        rec.key.retired_at = now;
                        Some(rec)
                    }
                    None => None,
                };
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "INSERT INTO issuer_keys ({KEY_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
                )))
                .bind(&key.kid)
                .bind(&key.issuer)
                .bind(&key.region)
                .bind(&key.public_key)
                .bind(kinds_text(&key.kinds))
                .bind(key.not_before)
                .bind(key.not_after)
                .bind(i64::from(key.status))
                .bind(key.retired_at)
                .bind(now)
                .execute(&mut *tx)
                .await?;
                sqlx::query("UPDATE trust_state SET sequence = sequence + 1 WHERE id = 1")
                    .execute(&mut *tx)
                    .await?;
                tx.append(&actor.entry(now, "identity.register_issuer_key", &key.kid, serde_json::json!({
                        "issuer": key.issuer,
                        "kinds": key.kinds,
                        "retired": retired.as_ref().map(|r| r.key.kid.clone()),
                    })))
                .await?;
                tx.commit().await?;
                Ok((
                    IssuerKeyRecord {
                        key,
                        registered_at: now,
                    },
                    retired,
                ))
            }

            #[tracing::instrument(skip_all, fields(otel.kind = "client", db.system.name = credmesh_store::system_name(stringify!($dialect))))]
            async fn revoke_issuer_key(
                &self,
                kid: &str,
                reason: &str,
                actor: Actor<'_>,
                now: i64,
            ) -> Result<IssuerKeyRecord, IdentityError> {
                let mut tx = $begin(&self.pool).await?;
                let updated = sqlx::query("UPDATE issuer_keys SET status = $1 WHERE kid = $2")
                    .bind(KeyStatus::Revoked as i64)
                    .bind(kid)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                if updated == 0 {
                    return Err(IdentityError::KeyNotFound(kid.to_string()));
                }
                sqlx::query("UPDATE trust_state SET sequence = sequence + 1 WHERE id = 1")
                    .execute(&mut *tx)
                    .await?;
                tx.append(&actor.entry(now, "identity.revoke_issuer_key", kid, serde_json::json!({ "reason": reason })))
                .await?;
                let row: KeyRow = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                    "SELECT {KEY_COLUMNS} FROM issuer_keys WHERE kid = $1"
                )))
                .bind(kid)
                .fetch_one(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok(row.into())
            }

            #[tracing::instrument(skip_all, fields(otel.kind = "client", db.system.name = credmesh_store::system_name(stringify!($dialect))))]
            async fn list_issuer_keys(&self, issuer: Option<&str>) -> Result<Vec<IssuerKeyRecord>, IdentityError> {
                let rows: Vec<KeyRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                    "SELECT {KEY_COLUMNS} FROM issuer_keys WHERE ($1 = '' OR issuer = $1) ORDER BY registered_at DESC, kid"
                )))
                .bind(issuer.unwrap_or_default())
                .fetch_all(&self.pool)
                .await?;
                Ok(rows.into_iter().map(IssuerKeyRecord::from).collect())
            }

            #[tracing::instrument(skip_all, fields(otel.kind = "client", db.system.name = credmesh_store::system_name(stringify!($dialect))))]
            async fn trust_snapshot(&self) -> Result<(u64, Vec<TrustedKey>), IdentityError> {
                let mut tx = self.pool.begin().await?;
                let (sequence,): (i64,) = sqlx::query_as("SELECT sequence FROM trust_state WHERE id = 1")
                    .fetch_one(&mut *tx)
                    .await?;
                let rows: Vec<KeyRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                    "SELECT {KEY_COLUMNS} FROM issuer_keys ORDER BY kid"
                )))
                .fetch_all(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok((
                    sequence as u64,
                    rows.into_iter().map(|r| IssuerKeyRecord::from(r).key).collect(),
                ))
            }

            #[tracing::instrument(skip_all, fields(otel.kind = "client", db.system.name = credmesh_store::system_name(stringify!($dialect))))]
            async fn pin_anchor(&self, anchor: &AnchorRecord, actor: Actor<'_>) -> Result<(), IdentityError> {
                let mut tx = $begin(&self.pool).await?;
                sqlx::query(concat!(
                    "INSERT INTO partner_anchors (region, kid, public_key, endpoint, pinned_at) ",
                    "VALUES ($1, $2, $3, $4, $5) ON CONFLICT (region) DO UPDATE SET ",
                    "kid = excluded.kid, public_key = excluded.public_key, endpoint = excluded.endpoint, pinned_at = excluded.pinned_at"
                ))
                .bind(&anchor.region)
                .bind(&anchor.kid)
                .bind(&anchor.public_key)
                .bind(&anchor.endpoint)
                .bind(anchor.pinned_at)
                .execute(&mut *tx)
                .await?;
                tx.append(&actor.entry(anchor.pinned_at, "identity.pin_partner_anchor", &anchor.region, serde_json::json!({ "kid": anchor.kid, "endpoint": anchor.endpoint })))
                .await?;
                tx.commit().await?;
                Ok(())
            }

            #[tracing::instrument(skip_all, fields(otel.kind = "client", db.system.name = credmesh_store::system_name(stringify!($dialect))))]
            async fn list_anchors(&self) -> Result<Vec<AnchorRecord>, IdentityError> {
                Ok(sqlx::query_as(
                    "SELECT region, kid, public_key, endpoint, pinned_at FROM partner_anchors ORDER BY region",
                )
                .fetch_all(&self.pool)
                .await?)
            }

            #[tracing::instrument(skip_all, fields(otel.kind = "client", db.system.name = credmesh_store::system_name(stringify!($dialect))))]
            async fn save_partner_trust_list(
                &self,
                region: &str,
                envelope: &[u8],
                sequence: u64,
                actor: Actor<'_>,
                now: i64,
            ) -> Result<(), IdentityError> {
                let mut tx = $begin(&self.pool).await?;
                let held: Option<(i64,)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                    "SELECT sequence FROM partner_trust_lists WHERE region = $1{}",
                    credmesh_store::for_update!($dialect)
                )))
                .bind(region)
                .fetch_optional(&mut *tx)
                .await?;
                if let Some((held,)) = held {
                    if (held as u64) > sequence {
                        return Err(IdentityError::TrustListRollback {
                            region: region.to_string(),
                            offered: sequence,
                            held: held as u64,
                        });
                    }
                }
                sqlx::query(concat!(
                    "INSERT INTO partner_trust_lists (region, envelope, sequence, imported_at) VALUES ($1, $2, $3, $4) ",
                    "ON CONFLICT (region) DO UPDATE SET envelope = excluded.envelope, sequence = excluded.sequence, ",
                    "imported_at = excluded.imported_at"
                ))
                .bind(region)
                .bind(envelope)
                .bind(sequence as i64)
                .bind(now)
                .execute(&mut *tx)
                .await?;
                tx.append(&actor.entry(now, "identity.import_partner_trust_list", region, serde_json::json!({ "sequence": sequence })))
                .await?;
                tx.commit().await?;
                Ok(())
            }

            #[tracing::instrument(skip_all, fields(otel.kind = "client", db.system.name = credmesh_store::system_name(stringify!($dialect))))]
            async fn partner_trust_list(&self, region: &str) -> Result<Option<(Vec<u8>, i64)>, IdentityError> {
                Ok(sqlx::query_as("SELECT envelope, imported_at FROM partner_trust_lists WHERE region = $1")
                    .bind(region)
                    .fetch_optional(&self.pool)
                    .await?)
            }
        }
    };
}

impl_identity_store!(
    SqliteIdentityStore,
    credmesh_store::begin_sqlite_write,
    sqlite
);
impl_identity_store!(
    PgIdentityStore,
    credmesh_store::begin_postgres_write,
    postgres
);

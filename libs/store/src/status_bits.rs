//! The status-list tables every issuing service keeps in its own database, in one
//! shape: `status_allocator` (one row: the next status entry to hand out) and
//! `status_bits` (one row per set bit: list, purpose, index). The queries that read
//! them for publishing a list, once per backend, for the services' store macros to call
//! as `status_bits::$dialect::…`.

macro_rules! queries {
    ($dialect:ident, $pool:ty, $name:literal) => {
        #[doc = concat!("The queries on ", $name, ".")]
        pub mod $dialect {
            /// How many status entries were handed out: the next free index, so list
            /// `n` exists when `n * size` is below it (list 0 always does).
            pub async fn allocated_entries(pool: &$pool) -> Result<u64, sqlx::Error> {
                let (n,): (i64,) =
                    sqlx::query_as("SELECT next_index FROM status_allocator WHERE id = 1")
                        .fetch_one(pool)
                        .await?;
                Ok(u64::try_from(n).unwrap_or(0))
            }

            /// How many bits of list `list_no` are set for `purpose`: the list's version
            /// where bits are only ever set.
            pub async fn count(
                pool: &$pool,
                list_no: u64,
                purpose: i32,
            ) -> Result<u64, sqlx::Error> {
                let (n,): (i64,) = sqlx::query_as(
                    "SELECT count(*) FROM status_bits WHERE list_no = $1 AND purpose = $2",
                )
                .bind(list_no as i64)
                .bind(i64::from(purpose))
                .fetch_one(pool)
                .await?;
                Ok(u64::try_from(n).unwrap_or(0))
            }

            /// The indexes of the set bits of list `list_no` for `purpose`, ascending.
            pub async fn indexes(
                pool: &$pool,
                list_no: u64,
                purpose: i32,
            ) -> Result<Vec<u64>, sqlx::Error> {
                let rows: Vec<(i64,)> = sqlx::query_as(
                    "SELECT list_index FROM status_bits WHERE list_no = $1 AND purpose = $2 \
                     ORDER BY list_index",
                )
                .bind(list_no as i64)
                .bind(i64::from(purpose))
                .fetch_all(pool)
                .await?;
                Ok(rows.into_iter().map(|(i,)| i as u64).collect())
            }
        }
    };
}

queries!(sqlite, sqlx::SqlitePool, "SQLite");
queries!(postgres, sqlx::PgPool, "PostgreSQL");

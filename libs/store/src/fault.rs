//! Telling a database that is down from a database that refused a request.
//!
//! A connection cut, a pool that timed out, a server shutting down or a busy SQLite file
//! are transient: the caller should retry (with the same idempotency key), so services
//! answer `UNAVAILABLE` for them rather than `INTERNAL`. Everything else stays internal.
//! [`to_status`] is the one place a service's unexpected error becomes a gRPC status.

use credmesh_proto::{
    status,
    tonic::{Code, Status},
};

/// The status for an unexpected error: `UNAVAILABLE DATABASE_UNAVAILABLE` when the
/// database is down (logged as a warning), otherwise `INTERNAL` (logged as an error with
/// its whole chain; the caller sees no internals).
pub fn to_status(err: &anyhow::Error) -> Status {
    if is_unavailable(err) {
        tracing::warn!(error = format!("{err:#}"), "database unavailable");
        return status::database_unavailable();
    }
    tracing::error!(error = format!("{err:#}"), "internal error");
    status::error(
        Code::Internal,
        "INTERNAL",
        "an internal error occurred; it has been logged",
    )
}

/// Whether `err`, or anything in its chain, is a transient database failure.
pub fn is_unavailable(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        cause
            .downcast_ref::<sqlx::Error>()
            .is_some_and(is_transient)
    })
}

/// Whether one sqlx error is transient.
pub fn is_transient(err: &sqlx::Error) -> bool {
    match err {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed
        | sqlx::Error::BeginFailed => true,
        sqlx::Error::Database(db) => db.code().is_some_and(|code| transient_code(&code)),
        _ => false,
    }
}

/// PostgreSQL SQLSTATEs of connection loss, shutdown and overload; SQLite's BUSY and
/// LOCKED (primary result codes 5 and 6, also in extended form).
fn transient_code(code: &str) -> bool {
    code.starts_with("08") // connection exception
        || matches!(code, "57P01" | "57P02" | "57P03" | "53300" | "53400")
        || matches!(code.parse::<i32>().map(|c| c & 0xff), Ok(5 | 6))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_failures_are_transient_and_bad_requests_are_not() {
        let io = anyhow::Error::new(sqlx::Error::Io(std::io::Error::new(
            std::io::ErrorKind::ConnectionReset,
            "reset",
        )))
        .context("license database");
        assert!(is_unavailable(&io));
        assert!(is_unavailable(&anyhow::Error::new(
            sqlx::Error::PoolTimedOut
        )));
        assert!(!is_unavailable(&anyhow::Error::new(
            sqlx::Error::RowNotFound
        )));
        assert!(!is_unavailable(&anyhow::anyhow!("a bug")));
        assert!(transient_code("08006") && transient_code("57P01") && transient_code("517"));
        assert!(!transient_code("23505") && !transient_code("19"));
    }
}

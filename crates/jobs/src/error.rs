//! Errors of the job store.

use atelier_core::job::JobId;

/// What can go wrong reading or writing jobs.
#[derive(Debug, thiserror::Error)]
pub enum JobStoreError {
    /// The database failed or refused a statement.
    #[error("job database error")]
    Database(#[from] sqlx::Error),
    /// The schema could not be brought up to date.
    #[error("job database migration failed")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// `database.schema` is not a plain lowercase SQL identifier.
    #[error("invalid database schema name `{0}`: expected [a-z_][a-z0-9_]*, at most 63 bytes")]
    InvalidSchema(String),
    /// `database.url` names no store this build has (password redacted).
    #[error("unsupported job store URL `{0}` (use postgres://, sqlite:// or memory://)")]
    UnsupportedUrl(String),
    /// A stored row holds a value this version does not understand.
    #[error("corrupt job row: {0}")]
    Corrupt(String),
    /// A value could not be written as JSON.
    #[error("cannot encode {what} as JSON")]
    Encode {
        what: &'static str,
        #[source]
        source: serde_json::Error,
    },
    /// A job with this id already exists under a different idempotency key (a
    /// caller bug: ids are fresh UUIDv7s).
    #[error("job {id} already exists with another idempotency key")]
    JobConflict { id: JobId },
    /// An API key of this name exists.
    #[error("an API key named `{0}` exists already")]
    KeyNameTaken(String),
}

impl JobStoreError {
    /// True when retrying later may succeed (the database, not the request, failed).
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Database(e) => is_transient_sqlx(e),
            Self::Migrate(sqlx::migrate::MigrateError::Execute(e)) => is_transient_sqlx(e),
            _ => false,
        }
    }
}

/// SQLSTATE classes worth retrying: connection exception, transaction rollback
/// (serialisation failure, deadlock), insufficient resources, operator
/// intervention (shutdown, restart) and system error. SQLite's BUSY and LOCKED
/// (codes 5 and 6) pass too.
const TRANSIENT_SQLSTATE_CLASSES: [&str; 5] = ["08", "40", "53", "57", "58"];
const TRANSIENT_SQLITE_CODES: [&str; 2] = ["5", "6"];

/// Connection trouble and server-side hiccups pass; constraint violations, bad
/// statements and rows that do not decode would fail the same way again.
fn is_transient_sqlx(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Database(db) => db.code().is_some_and(|code| {
            TRANSIENT_SQLSTATE_CLASSES
                .iter()
                .any(|class| code.starts_with(class))
                || TRANSIENT_SQLITE_CODES.contains(&code.as_ref())
        }),
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => true,
        _ => false,
    }
}

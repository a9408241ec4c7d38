//! Errors of the storage crate.

use atelier_core::job::JobId;

/// What can go wrong reading or writing a blob or a job.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// No blob under that key (a missing input, a stage that never ran).
    #[error("blob not found: {key}")]
    NotFound { key: String },
    /// The key is not a valid object path (empty segment, `..`, control characters).
    #[error("invalid blob key `{key}`: {reason}")]
    InvalidKey { key: String, reason: String },
    /// The backing store failed (disk full, permission, network).
    #[error("blob store failed on `{key}`")]
    Backend {
        key: String,
        #[source]
        source: object_store::Error,
    },
    /// The local folder could not be created or opened.
    #[error("cannot open blob folder {path}")]
    Folder {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// The job database failed or refused a statement.
    #[error("job database error")]
    Database(#[from] sqlx::Error),
    /// The job schema could not be brought up to date.
    #[error("job database migration failed")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// `database.schema` is not a plain lowercase SQL identifier.
    #[error("invalid database schema name `{0}`: expected [a-z_][a-z0-9_]*, at most 63 bytes")]
    InvalidSchema(String),
    /// A stored row holds a value this version does not understand.
    #[error("corrupt job row: {0}")]
    Corrupt(String),
    /// A job with this id already exists under a different idempotency key (a
    /// caller bug: ids are fresh UUIDv7s).
    #[error("job {id} already exists with another idempotency key")]
    JobConflict { id: JobId },
}

impl StorageError {
    /// True when retrying later may succeed (the backend, not the request, failed).
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Backend { .. } => true,
            Self::Database(e) => is_transient_sqlx(e),
            Self::Migrate(sqlx::migrate::MigrateError::Execute(e)) => is_transient_sqlx(e),
            _ => false,
        }
    }
}

/// SQLSTATE classes worth retrying: connection exception, transaction rollback
/// (serialisation failure, deadlock), insufficient resources, operator
/// intervention (shutdown, restart) and system error.
const TRANSIENT_SQLSTATE_CLASSES: [&str; 5] = ["08", "40", "53", "57", "58"];

/// Connection trouble and server-side hiccups pass; constraint violations, bad
/// statements and rows that do not decode would fail the same way again.
fn is_transient_sqlx(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Database(db) => db.code().is_some_and(|code| {
            TRANSIENT_SQLSTATE_CLASSES
                .iter()
                .any(|class| code.starts_with(class))
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

//! Errors of the blob store.

/// What can go wrong reading or writing a blob.
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
}

impl StorageError {
    /// True when retrying later may succeed (the backend, not the request, failed).
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Backend { .. })
    }
}

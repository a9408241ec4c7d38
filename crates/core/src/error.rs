//! Errors of the core crate: invalid requests and unreadable configuration.

use std::fmt;

/// A request field that breaks the API contract.
///
/// `field` is the JSON path a client would recognise (`inputImages[1].backgrounds`),
/// so the gateway can return it verbatim in its `{"error": {"field": ...}}` body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidationError {
    /// JSON path of the offending field, in the request's own (camelCase) names.
    pub field: String,
    /// Human-readable reason, phrased for the client.
    pub message: String,
}

impl ValidationError {
    /// Builds an error for `field` with `message`.
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for ValidationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

impl std::error::Error for ValidationError {}

/// Everything that can go wrong inside `atelier-core`.
#[derive(Debug, thiserror::Error)]
pub enum CoreError {
    /// A request does not satisfy the API contract.
    #[error("invalid request: {0}")]
    Validation(#[from] ValidationError),
    /// Settings files or environment overrides could not be read or parsed.
    #[error("invalid configuration")]
    Config(#[source] config::ConfigError),
    /// A settings value parsed but makes no sense (zero canvas, factor 3, ...).
    #[error("invalid configuration: {0}")]
    InvalidSetting(String),
}

/// `error: cause: cause …`, each error of the chain once: the message of a job
/// that failed, or a log line, says what really happened.
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut out = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        out.push_str(": ");
        out.push_str(&cause.to_string());
        source = cause.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("outer")]
    struct Outer(#[source] std::io::Error);

    #[test]
    fn chains_name_each_cause_once() {
        let e = Outer(std::io::Error::other("disk full"));
        assert_eq!(error_chain(&e), "outer: disk full");
    }
}

//! Errors of the broker layer and of stage handlers.

/// What can go wrong talking to RabbitMQ. Callers map these to user-facing
/// answers (the gateway turns `QueueFull` and `Unavailable` into 503), so the
/// variants name the *cause*, not the AMQP method that failed.
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    /// The broker nacked the publish: the bounded queue is full
    /// (`x-overflow: reject-publish`).
    #[error("queue full: the broker rejected the message")]
    QueueFull,
    /// The message was returned as unroutable (mandatory publish, no queue bound).
    #[error("message unroutable: no queue is bound for it")]
    Unroutable,
    /// Not connected, the connection broke mid-operation, or the confirm did not
    /// arrive within `publish_timeout_ms`.
    #[error("broker unavailable: {0}")]
    Unavailable(String),
    /// Waiting for something (a connection) took longer than asked.
    #[error("timed out")]
    Timeout,
    /// A protocol-level error RabbitMQ reported (e.g. a declare with conflicting
    /// arguments).
    #[error("amqp: {0}")]
    Amqp(#[from] lapin::Error),
    /// Settings that cannot work (empty prefix, no retry delays, ...).
    #[error("configuration: {0}")]
    Config(String),
}

impl BrokerError {
    /// Wraps a lapin error met while the connection may be gone: to callers a
    /// dead socket and a closed channel both mean "try again later".
    pub(crate) fn unavailable(context: &str, err: &lapin::Error) -> Self {
        Self::Unavailable(format!("{context}: {err}"))
    }
}

/// How a stage handler failed; decides between retry and dead-letter.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HandlerError {
    /// Worth retrying later (provider timeout, storage hiccup, broker down).
    #[error("transient: {0}")]
    Transient(String),
    /// Retrying cannot help (undecodable input, invalid request).
    #[error("permanent: {0}")]
    Permanent(String),
}

//! Errors of the transports and of stage handlers.

use std::fmt;

/// What can go wrong talking to a transport. Callers map these to user-facing
/// answers (the gateway turns `QueueFull` and `Unavailable` into 503), so the
/// variants name the *cause*, not the protocol method that failed.
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    /// The bounded first queue is full (RabbitMQ nacked the publish:
    /// `x-overflow: reject-publish`; in process: the bound was reached).
    #[error("queue full: the first stage's queue is at its limit")]
    QueueFull,
    /// The message was returned as unroutable (mandatory publish, no queue bound).
    #[error("message unroutable: no queue is bound for it")]
    Unroutable,
    /// Not connected, the connection broke mid-operation, or the confirm did not
    /// arrive within `publish_timeout_ms`.
    #[error("message broker unavailable: {0}")]
    Unavailable(String),
    /// Waiting for something (a connection) took longer than asked.
    #[error("timed out")]
    Timeout,
    /// A protocol-level error RabbitMQ reported (e.g. a declare with conflicting
    /// arguments).
    #[error("AMQP operation failed")]
    Amqp(#[from] lapin::Error),
    /// Settings that cannot work (empty prefix, no retry delays, ...).
    #[error("invalid broker configuration: {0}")]
    Config(String),
}

impl BrokerError {
    /// Wraps a lapin error met while the connection may be gone: to callers a
    /// dead socket and a closed channel both mean "try again later".
    pub(crate) fn unavailable(context: &str, err: &lapin::Error) -> Self {
        Self::Unavailable(format!("{context}: {err}"))
    }
}

/// How a stage handler failed; decides between retry and dead-letter. `E` is
/// the handler's own description of the failure, handed back to it when the
/// message is given up (see `StageHandler::dead`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HandlerError<E = String> {
    /// Worth retrying later (provider timeout, storage hiccup, broker down).
    Transient(E),
    /// Retrying cannot help (undecodable input, invalid request).
    Permanent(E),
}

impl<E> HandlerError<E> {
    /// The handler's description of the failure.
    pub fn into_inner(self) -> E {
        match self {
            Self::Transient(e) | Self::Permanent(e) => e,
        }
    }
}

impl<E: fmt::Display> fmt::Display for HandlerError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Transient(e) => write!(f, "transient: {e}"),
            Self::Permanent(e) => write!(f, "permanent: {e}"),
        }
    }
}

impl<E: fmt::Debug + fmt::Display> std::error::Error for HandlerError<E> {}

//! Errors of the providers crate.

use std::time::Duration;

use atelier_imaging::ImagingError;

/// What kind of failure a remote API reported, which decides whether our HTTP
/// client retries it at once and whether the job can succeed on a later attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RemoteKind {
    /// 400/404/422: the request is wrong for this API or model.
    Rejected,
    /// 401/403 or an invalid key: nothing works until the credentials change.
    Unauthorized,
    /// 429: too many requests now; retried after the server's delay.
    Throttled,
    /// A daily (or otherwise long) quota is spent: fail fast, no retry loop.
    QuotaExhausted,
    /// 5xx: the service is failing or overloaded; retried with backoff.
    Unavailable,
    /// No answer within our timeout.
    Timeout,
    /// Connection, TLS or protocol failure before an answer.
    Transport,
    /// The answer does not have the documented shape, or fails our validation.
    InvalidResponse,
    /// The model refused the input (a blocked prompt, a safety stop).
    Blocked,
    /// The model stopped before a usable answer (Gemini `MAX_TOKENS`).
    Truncated,
    /// A prediction ran and failed (model error).
    Failed,
    /// A prediction was cancelled or aborted, by us at our deadline or by the service.
    Canceled,
    /// An output URL was gone (Replicate deletes outputs after about an hour).
    OutputExpired,
}

impl RemoteKind {
    /// Short label for metrics and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Rejected => "rejected",
            Self::Unauthorized => "unauthorized",
            Self::Throttled => "throttled",
            Self::QuotaExhausted => "quota_exhausted",
            Self::Unavailable => "unavailable",
            Self::Timeout => "timeout",
            Self::Transport => "transport",
            Self::InvalidResponse => "invalid_response",
            Self::Blocked => "blocked",
            Self::Truncated => "truncated",
            Self::Failed => "failed",
            Self::Canceled => "canceled",
            Self::OutputExpired => "output_expired",
        }
    }

    /// Worth retrying within the same call (after a backoff).
    pub fn is_retryable(self) -> bool {
        matches!(
            self,
            Self::Throttled | Self::Unavailable | Self::Timeout | Self::Transport
        )
    }

    /// A later attempt of the job cannot succeed either: the same request, key or
    /// image meets the same answer.
    pub fn is_permanent(self) -> bool {
        matches!(
            self,
            Self::Rejected | Self::Unauthorized | Self::QuotaExhausted | Self::Blocked
        )
    }
}

/// What an analyzer, generator or upscaler can fail with.
#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    /// Pixel work failed; see [`ImagingError::is_input_error`] for whose fault.
    #[error(transparent)]
    Imaging(#[from] ImagingError),
    /// The CPU task died (a bug): reported, never swallowed.
    #[error("{provider} task failed: {message}")]
    Task { provider: &'static str, message: String },
    /// A remote API call failed; `message` is the API's own words when it gave any.
    #[error("{provider} {}{}: {message}", kind.as_str(), status.map(|s| format!(" (HTTP {s})")).unwrap_or_default())]
    Remote {
        provider: &'static str,
        kind: RemoteKind,
        /// HTTP status, when the failure was an HTTP answer.
        status: Option<u16>,
        message: String,
        /// How long the server asked us to wait (Retry-After, RetryInfo).
        retry_after: Option<Duration>,
    },
    /// A provider is switched on but cannot be built (no key, bad settings).
    #[error("{provider} is not configured: {message}")]
    Config { provider: &'static str, message: String },
    /// The segmentation model (`analysis.segmenter = "onnx"`) cannot be loaded:
    /// a start-up error that names `analysis.onnx_model`.
    #[error(transparent)]
    Segmenter(#[from] atelier_segment::SegmentError),
    /// The remote backend failed and so did the local fallback.
    #[error("{remote}; local fallback failed too: {local}")]
    Fallback {
        remote: Box<ProviderError>,
        #[source]
        local: Box<ProviderError>,
    },
}

impl ProviderError {
    /// A remote failure without a server-requested delay.
    pub fn remote(
        provider: &'static str,
        kind: RemoteKind,
        status: Option<u16>,
        message: impl Into<String>,
    ) -> Self {
        Self::Remote {
            provider,
            kind,
            status,
            message: message.into(),
            retry_after: None,
        }
    }

    /// True when the input itself is at fault and retrying cannot help.
    pub fn is_permanent(&self) -> bool {
        match self {
            Self::Imaging(e) => e.is_input_error(),
            Self::Task { .. } => false,
            Self::Remote { kind, .. } => kind.is_permanent(),
            Self::Config { .. } | Self::Segmenter(_) => true,
            Self::Fallback { local, .. } => local.is_permanent(),
        }
    }

    /// True when the photo itself is at fault (undecodable, no garment, refused
    /// by the model's safety checks), so the error should name the input.
    pub fn is_input_error(&self) -> bool {
        match self {
            Self::Imaging(e) => e.is_input_error(),
            Self::Remote { kind, .. } => *kind == RemoteKind::Blocked,
            _ => false,
        }
    }

    /// The remote failure kind, if this is one.
    pub fn remote_kind(&self) -> Option<RemoteKind> {
        match self {
            Self::Remote { kind, .. } => Some(*kind),
            _ => None,
        }
    }

    /// Short label for metrics.
    pub fn label(&self) -> &'static str {
        match self {
            Self::Imaging(_) => "imaging",
            Self::Task { .. } => "task",
            Self::Remote { kind, .. } => kind.as_str(),
            Self::Config { .. } => "config",
            Self::Segmenter(_) => "segmenter",
            Self::Fallback { .. } => "fallback",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permanence_follows_the_kind() {
        let e = |kind| ProviderError::remote("x", kind, Some(400), "m");
        assert!(e(RemoteKind::Rejected).is_permanent());
        assert!(e(RemoteKind::QuotaExhausted).is_permanent());
        assert!(!e(RemoteKind::Throttled).is_permanent());
        assert!(!e(RemoteKind::OutputExpired).is_permanent());
        assert!(RemoteKind::Unavailable.is_retryable());
        assert!(!RemoteKind::QuotaExhausted.is_retryable());
        assert_eq!(e(RemoteKind::Rejected).to_string(), "x rejected (HTTP 400): m");
    }
}

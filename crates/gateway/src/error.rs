//! Every way a request can fail, and the one place each becomes an HTTP status
//! and the API's JSON error body `{"error": {"code", "message", "field"}}`.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// A request that cannot be served, with what the client needs to know.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The body is not JSON (400).
    #[error("{0}")]
    MalformedJson(String),
    /// A field breaks the contract (422).
    #[error("{field}: {message}")]
    InvalidField { field: String, message: String },
    /// The body or an input image is over a limit (413).
    #[error("{message}")]
    TooLarge { field: Option<String>, message: String },
    /// An input is not an image Atelier reads (415).
    #[error("{field}: {message}")]
    UnsupportedMedia { field: String, message: String },
    /// An input URL could not be fetched (422, naming the URL).
    #[error("{field}: {message}")]
    Fetch { field: String, message: String },
    /// Unknown job or file (404).
    #[error("{0}")]
    NotFound(String),
    /// The job exists but is in a state that forbids the operation (409).
    #[error("{0}")]
    Conflict(String),
    /// The first queue is full (503 + Retry-After).
    #[error("the pipeline is at capacity; retry later")]
    QueueFull { retry_after: u64 },
    /// A dependency (broker, database, status service) is down (503 + Retry-After).
    #[error("{message}")]
    Unavailable { message: String, retry_after: u64 },
    /// The job ran and failed (500 with the job's reason).
    #[error("job {job} failed: {reason}")]
    JobFailed { job: String, reason: String },
    /// A bug or an unexpected failure of ours (500).
    #[error("{0}")]
    Internal(String),
}

impl ApiError {
    /// The HTTP status and the stable machine-readable code of this error.
    pub fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            Self::MalformedJson(_) => (StatusCode::BAD_REQUEST, "malformed_json"),
            Self::InvalidField { .. } => (StatusCode::UNPROCESSABLE_ENTITY, "invalid_field"),
            Self::TooLarge { .. } => (StatusCode::PAYLOAD_TOO_LARGE, "too_large"),
            Self::UnsupportedMedia { .. } => (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type"),
            Self::Fetch { .. } => (StatusCode::UNPROCESSABLE_ENTITY, "input_unreachable"),
            Self::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            Self::Conflict(_) => (StatusCode::CONFLICT, "conflict"),
            Self::QueueFull { .. } => (StatusCode::SERVICE_UNAVAILABLE, "queue_full"),
            Self::Unavailable { .. } => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
            Self::JobFailed { .. } => (StatusCode::INTERNAL_SERVER_ERROR, "job_failed"),
            Self::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        }
    }

    fn field(&self) -> Option<&str> {
        match self {
            Self::InvalidField { field, .. }
            | Self::UnsupportedMedia { field, .. }
            | Self::Fetch { field, .. } => Some(field),
            Self::TooLarge { field, .. } => field.as_deref(),
            _ => None,
        }
    }

    fn message(&self) -> String {
        match self {
            Self::InvalidField { message, .. }
            | Self::UnsupportedMedia { message, .. }
            | Self::Fetch { message, .. } => message.clone(),
            other => other.to_string(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        if status.is_server_error() {
            tracing::warn!(error = %self, code, "request failed");
        }
        let mut error = json!({ "code": code, "message": self.message() });
        if let Some(field) = self.field() {
            error["field"] = json!(field);
        }
        if let Self::JobFailed { job, .. } = &self {
            error["request_id"] = json!(job);
        }
        let mut response = (status, Json(json!({ "error": error }))).into_response();
        if let Self::QueueFull { retry_after } | Self::Unavailable { retry_after, .. } = self
            && let Ok(v) = HeaderValue::from_str(&retry_after.to_string())
        {
            response.headers_mut().insert(header::RETRY_AFTER, v);
        }
        response
    }
}

impl From<atelier_core::ValidationError> for ApiError {
    fn from(e: atelier_core::ValidationError) -> Self {
        Self::InvalidField {
            field: e.field,
            message: e.message,
        }
    }
}

//! Every way a request can fail, and the one place each becomes an HTTP status
//! and the API's JSON error body `{"error": {"code", "message", "field"}}`.
//!
//! Dependencies' errors (broker, job store, blob store, status service) become
//! [`ApiError`]s here and nowhere else. Their causes are logged with the
//! request id; the client gets an opaque message and the same request id.

use atelier_bus::BrokerError;
use atelier_core::error::error_chain;
use atelier_core::event::JobFailure;
use atelier_jobs::JobStoreError;
use atelier_storage::StorageError;
use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

/// A request that cannot be served, with what the client needs to know.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The body is not JSON (400).
    #[error("{0}")]
    MalformedJson(String),
    /// A `multipart/form-data` body that does not parse (400).
    #[error("{0}")]
    MalformedMultipart(String),
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
    /// No API key, or one that is unknown or revoked (401 + WWW-Authenticate).
    #[error("{0}")]
    Unauthorized(String),
    /// A valid key without the right (403).
    #[error("{0}")]
    Forbidden(String),
    /// Unknown job or file (404).
    #[error("{0}")]
    NotFound(String),
    /// The body took longer than `gateway.body_timeout_seconds` to arrive (408).
    #[error("the request body did not arrive in time")]
    BodyTimeout,
    /// A `Range` that starts past the end of the file (416 + `Content-Range: bytes */LENGTH`).
    #[error("the range starts past the end of the file ({length} bytes)")]
    RangeNotSatisfiable { length: u64 },
    /// The body's media type is not one the endpoint takes (415).
    #[error("{0}")]
    WrongContentType(String),
    /// The key's request rate is spent (429 + Retry-After and RateLimit headers).
    #[error("the API key's request rate is exceeded; retry later")]
    RateLimited { retry_after: u64 },
    /// The tenant has as many unfinished jobs as its key allows (429).
    #[error("{limit} jobs of this API key are still unfinished; retry when one ends")]
    TooManyInFlight { limit: u32 },
    /// The Idempotency-Key was used for another body (422).
    #[error("this Idempotency-Key was used for a different request (job {existing})")]
    IdempotencyKeyReused { existing: String },
    /// This gateway handles as many submissions as it may right now (503).
    #[error("the gateway is busy; retry later")]
    Busy,
    /// The job exists but is in a state that forbids the operation (409).
    #[error("{0}")]
    Conflict(String),
    /// The first queue is full (503 + Retry-After).
    #[error("the pipeline is at capacity; retry later")]
    QueueFull,
    /// A dependency is down (503 + Retry-After). The cause is logged, not shown.
    #[error("{dependency} is unavailable; retry later")]
    Unavailable { dependency: &'static str, cause: String },
    /// The job ran and failed: a client error (its input, found bad only when
    /// decoded: 422 with the input's code and field), refused at intake (the
    /// same 503 its submitter got) or the pipeline's (500).
    #[error("job {job} failed: {failure}")]
    JobFailed { job: String, failure: JobFailure },
    /// A bug or an unexpected failure of ours (500). The cause is logged, not shown.
    #[error("internal error")]
    Internal(String),
}

/// The JSON body of every error response.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

/// What went wrong.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable machine-readable code (`invalid_field`, `queue_full`, ...).
    pub code: String,
    /// For people.
    pub message: String,
    /// This request's id (`X-Request-Id`), also in the gateway's logs, on
    /// server errors.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
    /// The request field at fault (`inputImages[0].url`), when one is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// The job concerned, when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}

impl ApiError {
    /// 422 naming the request field or query parameter that is wrong.
    pub(crate) fn invalid(field: &str, message: impl Into<String>) -> Self {
        Self::InvalidField {
            field: field.to_string(),
            message: message.into(),
        }
    }

    /// A list endpoint's `limit` query parameter: `default` when absent, else
    /// a whole number from 1 to `max` (422 naming `limit` otherwise).
    pub(crate) fn parse_limit(raw: Option<&str>, default: u32, max: u32) -> Result<u32, Self> {
        match raw {
            None => Ok(default),
            Some(raw) => raw
                .parse::<u32>()
                .ok()
                .filter(|n| (1..=max).contains(n))
                .ok_or_else(|| Self::invalid("limit", format!("expected a whole number from 1 to {max}"))),
        }
    }
    /// A dependency failed: `dependency` is named to the client, `cause` only logged.
    pub fn unavailable(dependency: &'static str, cause: &dyn std::error::Error) -> Self {
        Self::Unavailable {
            dependency,
            cause: error_chain(cause),
        }
    }

    /// The HTTP status and the stable machine-readable code of this error.
    pub fn status_and_code(&self) -> (StatusCode, &str) {
        match self {
            Self::MalformedJson(_) => (StatusCode::BAD_REQUEST, "malformed_json"),
            Self::MalformedMultipart(_) => (StatusCode::BAD_REQUEST, "malformed_multipart"),
            Self::InvalidField { .. } => (StatusCode::UNPROCESSABLE_ENTITY, "invalid_field"),
            Self::TooLarge { .. } => (StatusCode::PAYLOAD_TOO_LARGE, "too_large"),
            Self::UnsupportedMedia { .. } => (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type"),
            Self::Fetch { .. } => (StatusCode::UNPROCESSABLE_ENTITY, "input_unreachable"),
            Self::Unauthorized(_) => (StatusCode::UNAUTHORIZED, "unauthorized"),
            Self::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
            Self::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            Self::BodyTimeout => (StatusCode::REQUEST_TIMEOUT, "request_timeout"),
            Self::WrongContentType(_) => (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type"),
            Self::RangeNotSatisfiable { .. } => (StatusCode::RANGE_NOT_SATISFIABLE, "range_not_satisfiable"),
            Self::RateLimited { .. } => (StatusCode::TOO_MANY_REQUESTS, "rate_limited"),
            Self::TooManyInFlight { .. } => (StatusCode::TOO_MANY_REQUESTS, "too_many_in_flight"),
            Self::IdempotencyKeyReused { .. } => (StatusCode::UNPROCESSABLE_ENTITY, "idempotency_key_reused"),
            Self::Busy => (StatusCode::SERVICE_UNAVAILABLE, "busy"),
            Self::Conflict(_) => (StatusCode::CONFLICT, "conflict"),
            Self::QueueFull => (StatusCode::SERVICE_UNAVAILABLE, "queue_full"),
            Self::Unavailable { .. } => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
            Self::JobFailed { failure, .. } if failure.is_client_error() => {
                (client_failure_status(&failure.code), failure.code.as_str())
            }
            Self::JobFailed { failure, .. } if failure.code == JobFailure::QUEUE_FULL => {
                (StatusCode::SERVICE_UNAVAILABLE, "queue_full")
            }
            Self::JobFailed { failure, .. } if failure.code == JobFailure::UNAVAILABLE => {
                (StatusCode::SERVICE_UNAVAILABLE, "unavailable")
            }
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
            Self::JobFailed { failure, .. } => failure.field.as_deref(),
            Self::IdempotencyKeyReused { .. } => Some("Idempotency-Key"),
            _ => None,
        }
    }

    fn message(&self) -> String {
        match self {
            Self::InvalidField { message, .. }
            | Self::UnsupportedMedia { message, .. }
            | Self::Fetch { message, .. } => message.clone(),
            Self::JobFailed { job, failure } if failure.is_client_error() => {
                format!("job {job} failed: {}", failure.message)
            }
            other => other.to_string(),
        }
    }

    /// The body this error answers with.
    pub fn body(&self) -> ErrorBody {
        let (status, code) = self.status_and_code();
        ErrorBody {
            error: ErrorDetail {
                code: code.to_string(),
                message: self.message(),
                field: self.field().map(str::to_string),
                request_id: match self {
                    Self::JobFailed { job, .. } => Some(job.clone()),
                    _ => None,
                },
                reference: status
                    .is_server_error()
                    .then(crate::middleware::current_request_id)
                    .flatten(),
            },
        }
    }
}

/// The status of a job that failed on its client's input.
fn client_failure_status(code: &str) -> StatusCode {
    match code {
        "too_large" => StatusCode::PAYLOAD_TOO_LARGE,
        "unsupported_media_type" => StatusCode::UNSUPPORTED_MEDIA_TYPE,
        _ => StatusCode::UNPROCESSABLE_ENTITY,
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        let reference = crate::middleware::current_request_id();
        match &self {
            Self::Unavailable { dependency, cause } => {
                tracing::warn!(code, dependency, cause, request_id = reference, "request failed");
            }
            Self::Internal(cause) => tracing::error!(code, cause, request_id = reference, "request failed"),
            _ if status.is_server_error() => {
                tracing::warn!(code, error = %self, request_id = reference, "request failed");
            }
            _ => {}
        }
        let mut response = (status, Json(self.body())).into_response();
        let headers = response.headers_mut();
        match &self {
            Self::Unauthorized(_) => {
                headers.insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static(WWW_AUTHENTICATE),
                );
            }
            Self::RateLimited { retry_after } => {
                if let Ok(v) = HeaderValue::from_str(&retry_after.to_string()) {
                    headers.insert(header::RETRY_AFTER, v);
                }
            }
            Self::RangeNotSatisfiable { length } => {
                if let Ok(v) = HeaderValue::from_str(&format!("bytes */{length}")) {
                    headers.insert(header::CONTENT_RANGE, v);
                }
            }
            _ => {}
        }
        response
    }
}

/// The challenge of a 401: a bearer token (`X-API-Key` works too).
const WWW_AUTHENTICATE: &str = "Bearer realm=\"atelier\"";

impl From<atelier_core::ValidationError> for ApiError {
    fn from(e: atelier_core::ValidationError) -> Self {
        Self::InvalidField {
            field: e.field,
            message: e.message,
        }
    }
}

impl From<BrokerError> for ApiError {
    fn from(e: BrokerError) -> Self {
        match e {
            BrokerError::QueueFull => Self::QueueFull,
            other => Self::unavailable("the message broker", &other),
        }
    }
}

impl From<JobStoreError> for ApiError {
    fn from(e: JobStoreError) -> Self {
        Self::unavailable("the job store", &e)
    }
}

/// A missing blob is the caller's business (usually a 404); everything else
/// about the blob store is an outage.
impl From<StorageError> for ApiError {
    fn from(e: StorageError) -> Self {
        Self::unavailable("the blob store", &e)
    }
}

impl From<tonic::Status> for ApiError {
    fn from(status: tonic::Status) -> Self {
        Self::Unavailable {
            dependency: "the status service",
            cause: format!("{:?}: {}", status.code(), status.message()),
        }
    }
}

impl From<tokio::task::JoinError> for ApiError {
    fn from(e: tokio::task::JoinError) -> Self {
        Self::Internal(format!("a blocking task died: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_late_input_failure_is_the_clients_422_naming_the_field() {
        let failure = JobFailure::new("invalid_image", "truncated").with_field("inputImages[0].url");
        let e = ApiError::JobFailed {
            job: "j1".into(),
            failure,
        };
        let (status, code) = e.status_and_code();
        assert_eq!(
            (status, code),
            (StatusCode::UNPROCESSABLE_ENTITY, "invalid_image")
        );
        let body = e.body();
        assert_eq!(body.error.field.as_deref(), Some("inputImages[0].url"));
        assert_eq!(body.error.request_id.as_deref(), Some("j1"));
        let refused = ApiError::JobFailed {
            job: "j2".into(),
            failure: JobFailure::new("unsuitable_photo", "not plain enough").with_field("inputImages[1].url"),
        };
        assert_eq!(
            refused.status_and_code(),
            (StatusCode::UNPROCESSABLE_ENTITY, "unsuitable_photo")
        );
        assert_eq!(refused.body().error.field.as_deref(), Some("inputImages[1].url"));
    }

    #[test]
    fn outages_say_which_dependency_and_nothing_internal() {
        let e = ApiError::from(BrokerError::Unavailable(
            "amqp://guest:secret@rabbit: refused".into(),
        ));
        let body = e.body();
        assert_eq!(e.status_and_code().0, StatusCode::SERVICE_UNAVAILABLE);
        assert!(!body.error.message.contains("secret"), "{body:?}");
        assert!(body.error.message.contains("message broker"));
        assert_eq!(
            ApiError::from(BrokerError::QueueFull).status_and_code().1,
            "queue_full"
        );
    }
}

//! What wraps every request: its id (in the logs, in the `X-Request-Id`
//! header and in 5xx bodies), its span (continuing the client's `traceparent`,
//! the root of the job's trace), the access log line, `Retry-After` on every
//! 503, and the request metrics.

use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, StatusCode, Version, header};
use axum::middleware::Next;
use axum::response::Response;
use tracing::Instrument;
use tracing::field::Empty;

use atelier_telemetry::metrics::{HTTP_REQUEST_DURATION, HTTP_REQUESTS};

use crate::AppState;

/// The header carrying a request's id, both ways.
pub const REQUEST_ID_HEADER: &str = "x-request-id";
/// Longest client-supplied request id that is kept (others are replaced).
const MAX_REQUEST_ID: usize = 64;

tokio::task_local! {
    static REQUEST_ID: String;
}

/// The id of the request being served on this task, if any.
pub fn current_request_id() -> Option<String> {
    REQUEST_ID.try_with(Clone::clone).ok()
}

/// The route of a request as its matched path template (`/api/v1/jobs/{id}`),
/// so labels and span names stay few; `unmatched` for unknown paths.
fn route_of(request: &Request) -> String {
    request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_string(), |p| p.as_str().to_string())
}

/// Gives every request an id (the client's `X-Request-Id` when it is sane) and
/// a server span continuing the client's `traceparent` (or starting a trace);
/// logs under both and returns the id.
pub async fn request_id(mut request: Request, next: Next) -> Response {
    let id = request
        .headers()
        .get(REQUEST_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= MAX_REQUEST_ID && v.bytes().all(|b| b.is_ascii_graphic()))
        .map_or_else(|| uuid::Uuid::now_v7().simple().to_string(), str::to_string);
    if let Ok(value) = HeaderValue::from_str(&id) {
        request.headers_mut().insert(REQUEST_ID_HEADER, value);
    }
    let route = route_of(&request);
    let method = request.method().clone();
    let span = tracing::info_span!(
        "request",
        otel.name = %format!("{method} {route}"),
        otel.kind = "server",
        otel.status_code = Empty,
        http.request.method = %method,
        http.route = %route,
        http.response.status_code = Empty,
        request_id = %id,
        trace_id = Empty,
    );
    let traceparent = request
        .headers()
        .get(atelier_telemetry::trace::TRACEPARENT)
        .and_then(|v| v.to_str().ok());
    atelier_telemetry::continue_trace(&span, traceparent);
    let mut response = REQUEST_ID
        .scope(id.clone(), next.run(request).instrument(span.clone()))
        .await;
    span.record("http.response.status_code", response.status().as_u16());
    if response.status().is_server_error() {
        span.record("otel.status_code", "ERROR");
    }
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(REQUEST_ID_HEADER, value);
    }
    response
}

/// Every 503 says when to come back.
pub async fn retry_after(State(app): State<AppState>, request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    if response.status() == StatusCode::SERVICE_UNAVAILABLE
        && !response.headers().contains_key(header::RETRY_AFTER)
        && let Ok(v) = HeaderValue::from_str(&app.settings.gateway.retry_after_seconds.to_string())
    {
        response.headers_mut().insert(header::RETRY_AFTER, v);
    }
    response
}

/// Counts requests and their latency per route and status, and writes the
/// access log line (INFO, inside the request's span so it carries the request
/// id and trace id). An event stream is counted but not timed: it lasts as
/// long as its client listens, which says nothing about the gateway.
pub async fn record_metrics(request: Request, next: Next) -> Response {
    let route = route_of(&request);
    let method = request.method().to_string();
    let started = Instant::now();
    let response = next.run(request).await;
    let latency = started.elapsed().as_secs_f64();
    let status = response.status().as_u16();
    tracing::info!(
        target: "atelier::access",
        method = %method,
        route = %route,
        status,
        latency_ms = latency * 1_000.0,
        request_id = current_request_id().as_deref().unwrap_or_default(),
        "request"
    );
    if !is_event_stream(&response) {
        metrics::histogram!(HTTP_REQUEST_DURATION, "method" => method.clone(), "route" => route.clone())
            .record(latency);
    }
    metrics::counter!(HTTP_REQUESTS, "route" => route, "method" => method, "status" => status.to_string())
        .increment(1);
    response
}

/// A `text/event-stream` answer (the job events route).
fn is_event_stream(response: &Response) -> bool {
    response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/event-stream"))
}

/// An HTTP/1.1 request refused with a body that may be unread (401 before
/// the body, 413, 415, 429 …) closes its connection, and says so: hyper
/// cannot reuse a connection with a body left on it and would close it
/// silently, and a client reusing it would see its next request fail.
pub async fn close_after_refused_body(request: Request, next: Next) -> Response {
    let has_body = request.headers().contains_key(header::TRANSFER_ENCODING)
        || request
            .headers()
            .get(header::CONTENT_LENGTH)
            .is_some_and(|v| v.as_bytes() != b"0");
    let http1 = request.version() <= Version::HTTP_11;
    let mut response = next.run(request).await;
    if has_body && http1 && (response.status().is_client_error() || response.status().is_server_error()) {
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    response
}

#[cfg(test)]
mod tests {
    use axum::Router;
    use axum::body::Body;
    use axum::routing::post;
    use tower::ServiceExt;

    use super::*;

    async fn answer(status: StatusCode, length: &str) -> Option<HeaderValue> {
        let app = Router::new()
            .route("/", post(move || async move { status }))
            .layer(axum::middleware::from_fn(close_after_refused_body));
        let request = Request::post("/")
            .header(header::CONTENT_LENGTH, length)
            .body(Body::from(vec![b'x'; length.parse().unwrap_or(0)]))
            .unwrap_or_default();
        let response = app.oneshot(request).await.unwrap_or_default();
        response.headers().get(header::CONNECTION).cloned()
    }

    #[tokio::test]
    async fn refused_bodies_close_the_connection_and_others_keep_it() {
        assert_eq!(
            answer(StatusCode::UNAUTHORIZED, "5")
                .await
                .as_ref()
                .map(HeaderValue::as_bytes),
            Some(&b"close"[..])
        );
        assert_eq!(answer(StatusCode::UNAUTHORIZED, "0").await, None);
        assert_eq!(answer(StatusCode::ACCEPTED, "5").await, None);
    }
}

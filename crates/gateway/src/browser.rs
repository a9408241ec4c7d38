//! What HTTP clients and browsers expect of every answer: JSON compressed when
//! the client accepts gzip, and CORS for the configured origins only.

use std::time::Duration;

use atelier_core::settings::CorsSettings;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Version, header};
use tower_http::compression::CompressionLayer;
use tower_http::compression::predicate::{Predicate, SizeAbove};
use tower_http::cors::{AllowOrigin, CorsLayer};

/// JSON bodies smaller than this go as they are: gzip's header and the CPU
/// would cost more than the bytes saved.
const COMPRESS_MIN_BYTES: u64 = 1_024;

/// Request headers a browser may send cross-origin.
const ALLOWED_HEADERS: [&str; 12] = [
    "authorization",
    "content-type",
    "x-api-key",
    "idempotency-key",
    "prefer",
    "last-event-id",
    "cache-control",
    "range",
    "if-range",
    "if-none-match",
    "x-request-id",
    "accept-encoding",
];

/// Response headers a browser script may read.
const EXPOSED_HEADERS: [&str; 11] = [
    "location",
    "retry-after",
    "ratelimit",
    "ratelimit-policy",
    "x-request-id",
    "etag",
    "content-range",
    "accept-ranges",
    "content-disposition",
    "content-length",
    "cache-control",
];

/// Compresses JSON answers (gzip, when accepted). Files are already
/// compressed (JPEG, PNG, WebP, MP4, XLSX) and served by ranges; event streams
/// must reach the client event by event: neither is touched.
pub fn compression() -> CompressionLayer<impl Predicate> {
    CompressionLayer::new()
        .gzip(true)
        .compress_when(SizeAbove::new(COMPRESS_MIN_BYTES).and(is_json))
}

fn is_json(_: StatusCode, _: Version, headers: &HeaderMap, _: &axum::http::Extensions) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"))
}

/// The CORS layer of `settings`, or `None` when no origin is allowed (off).
/// Preflights are answered before the API key is checked: a browser never
/// sends credentials on one.
pub fn cors(settings: &CorsSettings) -> Option<CorsLayer> {
    if settings.allowed_origins.is_empty() {
        return None;
    }
    let origin = if settings.allowed_origins.iter().any(|o| o == "*") {
        AllowOrigin::any()
    } else {
        AllowOrigin::list(
            settings
                .allowed_origins
                .iter()
                .filter_map(|o| HeaderValue::from_str(o).ok()),
        )
    };
    let names = |list: &[&'static str]| {
        list.iter()
            .copied()
            .map(HeaderName::from_static)
            .collect::<Vec<_>>()
    };
    Some(
        CorsLayer::new()
            .allow_origin(origin)
            .allow_methods([Method::GET, Method::POST, Method::DELETE, Method::OPTIONS])
            .allow_headers(names(&ALLOWED_HEADERS))
            .expose_headers(names(&EXPOSED_HEADERS))
            .max_age(Duration::from_secs(settings.max_age_seconds)),
    )
}

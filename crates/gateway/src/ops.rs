//! Liveness, readiness, metrics and the OpenAPI document.

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::AppState;
use crate::model::{HealthBody, ReadyBody, ReadyChecks};

/// A key that never exists: its lookup proves the blob store answers.
const BLOB_PROBE_KEY: &str = "readyz-probe";

/// The process is alive.
#[utoipa::path(get, path = "/healthz", operation_id = "healthz", tag = "ops",
    responses((status = 200, description = "Alive", body = HealthBody)))]
pub async fn healthz() -> Json<HealthBody> {
    Json(HealthBody { status: "ok".into() })
}

/// The broker, the job store and the blob store are reachable.
#[utoipa::path(get, path = "/readyz", operation_id = "readyz", tag = "ops",
    responses(
        (status = 200, description = "Ready", body = ReadyBody),
        (status = 503, description = "A dependency does not answer", body = ReadyBody),
    ))]
pub async fn readyz(State(app): State<AppState>) -> Response {
    let checks = ReadyChecks {
        broker: app.bus.is_connected(),
        job_store: app.jobs.ping().await.is_ok(),
        blob_store: app.blobs.size(BLOB_PROBE_KEY).await.is_ok(),
    };
    // A draining gateway is alive but wants no more traffic.
    let ready = checks.broker && checks.job_store && checks.blob_store && !app.drain.is_draining();
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = ReadyBody {
        status: if ready { "ready" } else { "not_ready" }.into(),
        checks,
    };
    (status, Json(body)).into_response()
}

/// Prometheus text format.
#[utoipa::path(get, path = "/metrics", operation_id = "metrics", tag = "ops",
    responses((status = 200, description = "Prometheus text exposition", content_type = "text/plain", body = String)))]
pub async fn metrics(State(app): State<AppState>) -> Response {
    atelier_telemetry::ops::metrics_response(app.metrics.as_ref())
}

/// This document.
#[utoipa::path(get, path = "/api/v1/openapi.json", operation_id = "openapi", tag = "ops",
    responses((status = 200, description = "The OpenAPI 3.1 document of this API", content_type = "application/json", body = Object)))]
pub async fn openapi() -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        crate::openapi::document_json(),
    )
        .into_response()
}

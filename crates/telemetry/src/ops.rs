//! The ops listener every service but the gateway serves as is (the gateway
//! adds its own readiness and drain to the same three routes): `/healthz`
//! (alive), `/readyz` (its dependencies answer) and `/metrics` (Prometheus).
//! It listens on `ops.bind`, never the public port, so it takes no API key.

use std::sync::Arc;

use async_trait::async_trait;
use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::metrics::Metrics;

/// The content type of the Prometheus text exposition.
pub const PROMETHEUS_CONTENT_TYPE: &str = "text/plain; version=0.0.4";

/// What a service checks before it says it is ready.
#[async_trait]
pub trait Readiness: Send + Sync + 'static {
    /// Each dependency by name, and whether it answers now.
    async fn checks(&self) -> Vec<(&'static str, bool)>;
}

/// Errors of the ops listener.
#[derive(Debug, thiserror::Error)]
pub enum OpsError {
    #[error("cannot listen on {addr} for the ops listener")]
    Listen {
        addr: String,
        #[source]
        source: std::io::Error,
    },
}

#[derive(Clone)]
struct OpsState {
    metrics: Option<Metrics>,
    ready: Arc<dyn Readiness>,
    stopping: CancellationToken,
}

/// Binds `addr`, naming it in the error.
pub async fn bind(addr: &str) -> Result<TcpListener, OpsError> {
    let listener = TcpListener::bind(addr).await.map_err(|source| OpsError::Listen {
        addr: addr.to_string(),
        source,
    })?;
    if let Ok(local) = listener.local_addr() {
        tracing::info!(addr = %local, "ops listener (/healthz, /readyz, /metrics)");
    }
    Ok(listener)
}

/// Serves the three routes on `listener` until `stop`. Once `stopping` fires
/// (the service is draining) `/readyz` answers 503 while `/metrics` goes on.
pub fn spawn(
    listener: TcpListener,
    metrics: Option<Metrics>,
    ready: Arc<dyn Readiness>,
    stopping: CancellationToken,
    stop: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    let state = OpsState {
        metrics,
        ready,
        stopping,
    };
    let router = Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(render_metrics))
        .with_state(state);
    tokio::spawn(async move {
        if let Err(error) = axum::serve(listener, router)
            .with_graceful_shutdown(stop.cancelled_owned())
            .await
        {
            tracing::warn!(%error, "the ops listener stopped");
        }
    })
}

async fn healthz() -> Response {
    json(StatusCode::OK, &serde_json::json!({ "status": "ok" }))
}

async fn readyz(State(state): State<OpsState>) -> Response {
    let checks = state.ready.checks().await;
    let ready = checks.iter().all(|(_, ok)| *ok) && !state.stopping.is_cancelled();
    let body = serde_json::json!({
        "status": if ready { "ready" } else { "not_ready" },
        "checks": checks
            .into_iter()
            .map(|(name, ok)| (name.to_string(), serde_json::Value::Bool(ok)))
            .collect::<serde_json::Map<_, _>>(),
    });
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    json(status, &body)
}

async fn render_metrics(State(state): State<OpsState>) -> Response {
    metrics_response(state.metrics.as_ref())
}

/// `/metrics` over `metrics` (404 in a process without a recorder, such as a
/// test harness's embedded gateway).
pub fn metrics_response(metrics: Option<&Metrics>) -> Response {
    match metrics {
        Some(metrics) => (
            [(header::CONTENT_TYPE, PROMETHEUS_CONTENT_TYPE)],
            metrics.render(),
        )
            .into_response(),
        None => (StatusCode::NOT_FOUND, "metrics are not enabled in this process").into_response(),
    }
}

fn json(status: StatusCode, body: &serde_json::Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

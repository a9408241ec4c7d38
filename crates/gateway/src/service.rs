//! The router and the process around it.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use atelier_broker::Broker;
use atelier_core::settings::Settings;
use atelier_proto::v1::status_service_client::StatusServiceClient;
use atelier_storage::{BlobStore, JobStore, PgJobStore};
use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{get, post};
use tokio_util::sync::CancellationToken;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::trace::TraceLayer;

use crate::{ApiError, AppState, EventFeed, Fetcher, files, jobs, ops, queue, submit};

/// Errors that stop the gateway.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    #[error("broker: {0}")]
    Broker(#[from] atelier_broker::BrokerError),
    #[error("storage: {0}")]
    Storage(#[from] atelier_storage::StorageError),
    #[error("HTTP client: {0}")]
    Http(#[from] reqwest::Error),
    #[error("status service URL: {0}")]
    StatusUrl(#[from] tonic::transport::Error),
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: String,
        #[source]
        source: std::io::Error,
    },
}

/// Every route of API.md over `app`.
pub fn router(app: AppState) -> Router {
    let body_limit = app.settings.gateway.max_body_bytes;
    Router::new()
        .route("/api/v1/generate/image", post(submit::generate_images))
        .route("/api/v1/generate", post(submit::generate_full))
        .route("/api/v1/status/queue", get(queue::queue_status))
        .route("/api/v1/jobs/{id}", get(jobs::get_job).delete(jobs::cancel_job))
        .route("/api/v1/jobs/{id}/events", get(jobs::job_events))
        .route("/api/v1/files/{id}/{*path}", get(files::get_file))
        .route("/healthz", get(ops::healthz))
        .route("/readyz", get(ops::readyz))
        .route("/metrics", get(ops::metrics))
        .route("/api/v1/openapi.json", get(ops::openapi))
        .fallback(|| async { ApiError::NotFound("no such endpoint".into()) })
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(middleware::from_fn_with_state(app.clone(), record_metrics))
        .layer(TraceLayer::new_for_http())
        .layer(CatchPanicLayer::new())
        .with_state(app)
}

/// Counts requests and their latency per route and status.
async fn record_metrics(State(_app): State<AppState>, request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_string(), |p| p.as_str().to_string());
    let method = request.method().to_string();
    let started = Instant::now();
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    metrics::counter!("atelier_gateway_requests_total", "route" => route.clone(), "method" => method, "status" => status)
        .increment(1);
    metrics::histogram!("atelier_gateway_request_seconds", "route" => route)
        .record(started.elapsed().as_secs_f64());
    response
}

/// Builds the shared state from `settings`.
pub async fn build_state(
    settings: Settings,
    metrics: Option<metrics_exporter_prometheus::PrometheusHandle>,
    shutdown: &CancellationToken,
) -> Result<AppState, GatewayError> {
    let settings = Arc::new(settings);
    let jobs: Arc<dyn JobStore> = Arc::new(PgJobStore::connect(&settings.database).await?);
    let broker = Broker::connect(
        settings.broker.clone(),
        settings.pipeline.max_queue_size,
        "atelier-gateway",
    )
    .await?;
    let blobs = BlobStore::from_url(&settings.blobs.url)?;
    let fetcher = Fetcher::new(&settings.gateway, settings.limits.clone())?;
    let channel = tonic::transport::Endpoint::from_shared(settings.gateway.status_url.clone())?
        .connect_timeout(Duration::from_millis(settings.gateway.status_timeout_ms))
        .timeout(Duration::from_millis(settings.gateway.status_timeout_ms))
        .connect_lazy();
    let events = EventFeed::default();
    tokio::spawn(events.clone().run(broker.clone(), shutdown.clone()));
    Ok(AppState {
        settings,
        broker,
        jobs,
        blobs,
        events,
        fetcher,
        status: StatusServiceClient::new(channel),
        metrics,
    })
}

/// Serves until `shutdown`; `ready` receives the bound address once listening.
pub async fn serve(
    settings: Settings,
    metrics: Option<metrics_exporter_prometheus::PrometheusHandle>,
    shutdown: CancellationToken,
    ready: Option<tokio::sync::oneshot::Sender<SocketAddr>>,
) -> Result<(), GatewayError> {
    let bind = settings.gateway.bind.clone();
    let app = build_state(settings, metrics, &shutdown).await?;
    let listener = tokio::net::TcpListener::bind(&bind)
        .await
        .map_err(|source| GatewayError::Listen {
            addr: bind.clone(),
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| GatewayError::Listen {
        addr: bind.clone(),
        source,
    })?;
    tracing::info!(%addr, "gateway listening");
    if let Some(ready) = ready {
        let _ = ready.send(addr);
    }
    axum::serve(listener, router(app))
        .with_graceful_shutdown(shutdown.clone().cancelled_owned())
        .await
        .map_err(|source| GatewayError::Listen { addr: bind, source })?;
    shutdown.cancel();
    tracing::info!("gateway stopped");
    Ok(())
}

/// The whole `main` of `atelier-gateway`.
pub fn run_main() -> anyhow::Result<()> {
    let settings = Settings::load()?;
    atelier_telemetry::init(&settings.telemetry, "gateway");
    let metrics = metrics_exporter_prometheus::PrometheusBuilder::new().install_recorder()?;
    atelier_telemetry::run_until_signal(|shutdown| serve(settings, Some(metrics), shutdown, None))??;
    Ok(())
}

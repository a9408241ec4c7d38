//! The router and the process around it. [`run`] serves a ready [`AppState`]
//! on a given listener (so `atelier serve` and tests pass their own); [`serve`]
//! builds everything from settings for the gateway binary.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use atelier_bus::JobBus;
use atelier_core::settings::Settings;
use atelier_jobs::JobStore;
use atelier_proto::v1::status_service_client::StatusServiceClient;
use atelier_storage::BlobStore;
use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::get;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::trace::TraceLayer;

use crate::{ApiError, AppState, EventFeed, Fetcher};

/// Errors that stop the gateway.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    #[error("cannot reach the message broker")]
    Broker(#[from] atelier_bus::BrokerError),
    #[error("cannot open the blob store")]
    Blobs(#[from] atelier_storage::StorageError),
    #[error("cannot open the job store")]
    Jobs(#[from] atelier_jobs::JobStoreError),
    #[error("cannot build the HTTP client")]
    Http(#[from] reqwest::Error),
    #[error("invalid status service URL")]
    StatusUrl(#[from] tonic::transport::Error),
    #[error("cannot listen on {addr}")]
    Listen {
        addr: String,
        #[source]
        source: std::io::Error,
    },
}

/// Every route of the API over `app`.
pub fn router(app: AppState) -> Router {
    let body_limit = app.settings.gateway.max_body_bytes;
    let (routes, _) = crate::openapi::api_router().split_for_parts();
    routes
        .route(crate::openapi::FILES_ROUTE, get(crate::files::get_file))
        .fallback(|| async { ApiError::NotFound("no such endpoint".into()) })
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(middleware::from_fn_with_state(app.clone(), retry_after))
        .layer(middleware::from_fn(record_metrics))
        .layer(TraceLayer::new_for_http())
        .layer(CatchPanicLayer::new())
        .with_state(app)
}

/// Every 503 says when to come back.
async fn retry_after(State(app): State<AppState>, request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    if response.status() == StatusCode::SERVICE_UNAVAILABLE
        && !response.headers().contains_key(header::RETRY_AFTER)
        && let Ok(v) = HeaderValue::from_str(&app.settings.gateway.retry_after_seconds.to_string())
    {
        response.headers_mut().insert(header::RETRY_AFTER, v);
    }
    response
}

/// Counts requests and their latency per route and status.
async fn record_metrics(request: Request, next: Next) -> Response {
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

/// The shared state over ready dependencies; starts this gateway's event feed
/// (until `shutdown`).
pub async fn build_state(
    settings: Arc<Settings>,
    bus: JobBus,
    jobs: Arc<dyn JobStore>,
    blobs: BlobStore,
    metrics: Option<metrics_exporter_prometheus::PrometheusHandle>,
    shutdown: &CancellationToken,
) -> Result<AppState, GatewayError> {
    let fetcher = Fetcher::new(&settings.gateway, settings.limits.clone())?;
    let channel = tonic::transport::Endpoint::from_shared(settings.gateway.status_url.clone())?
        .connect_timeout(Duration::from_millis(settings.gateway.status_timeout_ms))
        .timeout(Duration::from_millis(settings.gateway.status_timeout_ms))
        .connect_lazy();
    let events = EventFeed::default();
    events.clone().start(&bus, shutdown.clone()).await?;
    Ok(AppState {
        settings,
        bus,
        jobs,
        blobs,
        events,
        fetcher,
        status: StatusServiceClient::new(channel),
        metrics,
    })
}

/// Binds `addr`, naming it in the error.
pub async fn bind(addr: &str) -> Result<TcpListener, GatewayError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| GatewayError::Listen {
            addr: addr.to_string(),
            source,
        })
}

/// Serves `app` on `listener` until `shutdown`.
pub async fn run(
    app: AppState,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> Result<(), GatewayError> {
    let addr = listener
        .local_addr()
        .map_or_else(|_| "?".to_string(), |a| a.to_string());
    tracing::info!(%addr, "gateway listening");
    axum::serve(listener, router(app))
        .with_graceful_shutdown(shutdown.clone().cancelled_owned())
        .await
        .map_err(|source| GatewayError::Listen { addr, source })?;
    shutdown.cancel();
    Ok(())
}

/// The gateway process: PostgreSQL, RabbitMQ, the configured blob store, on
/// `gateway.bind`. `ready` receives the bound address once listening.
pub async fn serve(
    settings: Settings,
    metrics: Option<metrics_exporter_prometheus::PrometheusHandle>,
    shutdown: CancellationToken,
    ready: Option<tokio::sync::oneshot::Sender<SocketAddr>>,
) -> Result<(), GatewayError> {
    let settings = Arc::new(settings);
    let jobs = atelier_jobs::connect(&settings.database).await?;
    let bus = JobBus::rabbitmq(&settings, "atelier-gateway").await?;
    let blobs = BlobStore::from_url(&settings.blobs.url)?;
    let app = build_state(settings.clone(), bus.clone(), jobs, blobs, metrics, &shutdown).await?;
    let listener = bind(&settings.gateway.bind).await?;
    if let Some(ready) = ready
        && let Ok(addr) = listener.local_addr()
    {
        let _ = ready.send(addr);
    }
    run(app, listener, shutdown).await?;
    bus.close().await;
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

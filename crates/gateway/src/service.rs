//! The router and the process around it. [`run`] serves a ready [`AppState`]
//! on given listeners (so `atelier serve` and tests pass their own); [`serve`]
//! builds everything from settings for the gateway binary.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use atelier_bus::JobBus;
use atelier_core::settings::Settings;
use atelier_jobs::Store;
use atelier_proto::v1::status_service_client::StatusServiceClient;
use atelier_storage::BlobStore;
use axum::Router;
use axum::middleware;
use axum::routing::get;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tower_http::catch_panic::CatchPanicLayer;

use crate::server::{Drain, ServerLimits};
use crate::{ApiError, AppState, EventFeed, Fetcher, auth, middleware as mw, ops};

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

/// Every route of the API over `app`, behind its keys.
pub fn router(app: AppState) -> Router {
    let (routes, _) = crate::openapi::api_router().split_for_parts();
    let cors = crate::browser::cors(&app.settings.gateway.cors);
    let router = routes
        .route(crate::openapi::FILES_ROUTE, get(crate::files::get_file))
        .route(crate::console::FILES_ROUTE, get(crate::console::console_file))
        .route("/console", get(crate::console::page))
        .route("/console/app.js", get(crate::console::script))
        .route("/console/app.css", get(crate::console::style))
        .route("/console/config.json", get(crate::console::config))
        .fallback(|| async { ApiError::NotFound("no such endpoint".into()) })
        .layer(middleware::from_fn_with_state(app.clone(), auth::authenticate))
        .layer(middleware::from_fn_with_state(app.clone(), mw::retry_after))
        .layer(middleware::from_fn(mw::record_metrics))
        .layer(crate::browser::compression())
        .layer(middleware::from_fn(mw::request_id))
        .layer(middleware::from_fn(mw::close_after_refused_body))
        .layer(CatchPanicLayer::new())
        .with_state(app);
    // Outermost: preflights are answered before the key is asked for, and
    // every answer (errors too) carries the CORS headers.
    match cors {
        Some(cors) => router.layer(cors),
        None => router,
    }
}

/// The ops listener's routes: health, readiness and metrics, without keys
/// (it listens on 127.0.0.1 or the pod network, never the public port).
pub fn ops_router(app: AppState) -> Router {
    Router::new()
        .route("/healthz", get(ops::healthz))
        .route("/readyz", get(ops::readyz))
        .route("/metrics", get(ops::metrics))
        .with_state(app)
}

/// The shared state over ready dependencies; starts this gateway's event feed
/// (until `shutdown`).
pub async fn build_state(
    settings: Arc<Settings>,
    bus: JobBus,
    jobs: Arc<dyn Store>,
    blobs: BlobStore,
    metrics: Option<atelier_telemetry::Metrics>,
    shutdown: &CancellationToken,
) -> Result<AppState, GatewayError> {
    let fetcher = Fetcher::new(&settings.gateway.fetch, settings.limits.clone())?;
    let channel = tonic::transport::Endpoint::from_shared(settings.gateway.status_url.clone())?
        .connect_timeout(Duration::from_millis(settings.gateway.status_timeout_ms))
        .timeout(Duration::from_millis(settings.gateway.status_timeout_ms))
        .connect_lazy();
    let events = EventFeed::default();
    events.clone().start(&bus, shutdown.clone()).await?;
    Ok(AppState {
        submissions: Arc::new(Semaphore::new(settings.gateway.max_concurrent_submissions)),
        settings,
        bus,
        jobs,
        blobs,
        events,
        fetcher,
        status: StatusServiceClient::new(channel),
        metrics,
        keys: Arc::default(),
        drain: Drain::default(),
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

/// Serves `app` on `listener` (and its ops routes on `ops`) until `shutdown`,
/// then drains.
pub async fn run(
    app: AppState,
    listener: TcpListener,
    ops: Option<TcpListener>,
    shutdown: CancellationToken,
) -> Result<(), GatewayError> {
    let addr = listener
        .local_addr()
        .map_or_else(|_| "?".to_string(), |a| a.to_string());
    tracing::info!(%addr, "gateway listening");
    let gateway = &app.settings.gateway;
    let limits = ServerLimits {
        max_connections: gateway.max_connections,
        header_read_timeout: Duration::from_secs(gateway.header_read_timeout_seconds),
        idle_timeout: Duration::from_secs(gateway.idle_timeout_seconds),
        drain_delay: Duration::from_secs(gateway.drain_delay_seconds),
        grace: Duration::from_secs(gateway.shutdown_grace_seconds),
    };
    let ops = ops.map(|listener| {
        let router = ops_router(app.clone());
        let stop = app.drain.stop.clone();
        tokio::spawn(async move {
            axum::serve(listener, router)
                .with_graceful_shutdown(stop.cancelled_owned())
                .await
        })
    });
    let drain = app.drain.clone();
    crate::server::serve(listener, router(app), limits, drain, shutdown.clone())
        .await
        .map_err(|source| GatewayError::Listen { addr, source })?;
    shutdown.cancel();
    if let Some(ops) = ops {
        let _ = ops.await;
    }
    Ok(())
}

/// The gateway process: PostgreSQL, RabbitMQ, the configured blob store, on
/// `gateway.bind` and `ops.bind`. `ready` receives the bound address once listening.
pub async fn serve(
    settings: Settings,
    metrics: Option<atelier_telemetry::Metrics>,
    shutdown: CancellationToken,
    ready: Option<tokio::sync::oneshot::Sender<SocketAddr>>,
) -> Result<(), GatewayError> {
    let settings = Arc::new(settings);
    let jobs = atelier_jobs::connect(&settings.database).await?;
    let bus = JobBus::rabbitmq(&settings, "atelier-gateway").await?;
    let blobs = BlobStore::from_url(&settings.blobs.url)?;
    let app = build_state(settings.clone(), bus.clone(), jobs, blobs, metrics, &shutdown).await?;
    let listener = bind(&settings.gateway.bind).await?;
    let ops = bind(&settings.ops.bind_for("gateway")).await?;
    if let Some(ready) = ready
        && let Ok(addr) = listener.local_addr()
    {
        let _ = ready.send(addr);
    }
    run(app, listener, Some(ops), shutdown).await?;
    bus.close().await;
    tracing::info!("gateway stopped");
    Ok(())
}

/// The whole `main` of `atelier-gateway`.
pub fn run_main() -> anyhow::Result<()> {
    let settings = Settings::load()?;
    let _telemetry = atelier_telemetry::init(&settings.telemetry, "atelier-gateway");
    let metrics = atelier_telemetry::Metrics::install()?;
    atelier_telemetry::run_until_signal(|shutdown| serve(settings, Some(metrics), shutdown, None))??;
    Ok(())
}

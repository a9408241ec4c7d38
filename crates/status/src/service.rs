//! Wiring the status service: recorder, queue view and gRPC server over a job
//! store and a bus. [`run`] takes them ready-made (so `atelier serve` passes its
//! embedded ones); [`serve`] builds them from settings for the status binary.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use atelier_bus::JobBus;
use atelier_core::settings::Settings;
use atelier_jobs::Store;
use atelier_proto::v1::status_service_server::StatusServiceServer;
use atelier_storage::BlobStore;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::{EventHub, QueueWatch, StatusApi, record_events};

/// Errors that stop the status service.
#[derive(Debug, thiserror::Error)]
pub enum StatusError {
    #[error("cannot reach the message broker")]
    Broker(#[from] atelier_bus::BrokerError),
    #[error("cannot open the job store")]
    Storage(#[from] atelier_jobs::JobStoreError),
    #[error("cannot open the blob store (the retention sweeper deletes old jobs' files)")]
    Blobs(#[from] atelier_storage::StorageError),
    #[error("cannot listen on {addr}")]
    Listen {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    #[error("the gRPC server failed")]
    Server(#[from] tonic::transport::Error),
    #[error("cannot build the reflection service")]
    Reflection(#[from] tonic_reflection::server::Error),
    #[error("cannot start the webhook sender")]
    Webhooks(#[from] atelier_webhooks::WebhookError),
    #[error(transparent)]
    Ops(#[from] atelier_telemetry::ops::OpsError),
}

/// The status service is ready when it reaches the broker and the job store.
struct Readiness {
    bus: JobBus,
    store: Arc<dyn Store>,
}

#[async_trait::async_trait]
impl atelier_telemetry::ops::Readiness for Readiness {
    async fn checks(&self) -> Vec<(&'static str, bool)> {
        vec![
            ("broker", self.bus.is_connected()),
            ("job_store", self.store.ping().await.is_ok()),
        ]
    }
}

/// Records events from `bus` into `store`, sends their webhooks, and serves `StatusService` (with
/// health and reflection) on `listener` until `shutdown`, then drains: health
/// NOT_SERVING at once, calls served for `status.drain_delay_seconds`, then
/// `WatchJob` streams end with UNAVAILABLE and the server stops.
pub async fn run(
    settings: Arc<Settings>,
    store: Arc<dyn Store>,
    bus: JobBus,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> Result<(), StatusError> {
    let hub = EventHub::default();
    let queues = QueueWatch::default();
    queues.refresh(&bus).await;
    // The webhook sender runs here, beside the recorder that adds deliveries
    // (in the stack's status service, and in-process in `atelier serve`).
    let sender = atelier_webhooks::Sender::new(store.clone(), &settings)?;
    let webhooks = tokio::spawn(sender.clone().run(shutdown.clone()));
    let recorder = tokio::spawn(record_events(
        bus.clone(),
        store.clone(),
        hub.clone(),
        sender,
        shutdown.clone(),
    ));
    let poll = Duration::from_millis(settings.status.rabbitmq_poll_ms);
    let watcher = tokio::spawn(queues.clone().run(bus.clone(), poll, shutdown.clone()));
    let reaper = tokio::spawn(crate::run_reaper(
        store.clone(),
        bus.clone(),
        queues.clone(),
        settings.reaper.clone(),
        shutdown.clone(),
    ));
    let sweeper = tokio::spawn(crate::run_sweeper(
        store.clone(),
        BlobStore::from_url(&settings.blobs.url)?,
        settings.retention.clone(),
        settings.cache.clone(),
        shutdown.clone(),
    ));

    let (health, health_service) = tonic_health::server::health_reporter();
    health.set_serving::<StatusServiceServer<StatusApi>>().await;
    let reflection_v1 = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(atelier_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()?;
    let reflection_v1alpha = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(atelier_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1alpha()?;

    // Drain: on `shutdown`, health says NOT_SERVING while calls are still
    // served for the drain delay, then streams end and the server stops.
    let streams_end = CancellationToken::new();
    let drainer = {
        let (shutdown, streams_end) = (shutdown.clone(), streams_end.clone());
        let delay = Duration::from_secs(settings.status.drain_delay_seconds);
        let health = health.clone();
        tokio::spawn(async move {
            shutdown.cancelled().await;
            health.set_not_serving::<StatusServiceServer<StatusApi>>().await;
            health
                .set_service_status("", tonic_health::ServingStatus::NotServing)
                .await;
            tracing::info!(?delay, "draining: health NOT_SERVING, still serving");
            tokio::time::sleep(delay).await;
            streams_end.cancel();
        })
    };
    let api = StatusApi::new(store, queues, hub, settings).ending_streams_on(streams_end.clone());
    let served = tonic::transport::Server::builder()
        .add_service(health_service)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(StatusServiceServer::new(api))
        .serve_with_incoming_shutdown(
            tokio_stream::wrappers::TcpListenerStream::new(listener),
            streams_end.cancelled_owned(),
        )
        .await;
    shutdown.cancel();
    drainer.abort();
    match recorder.await {
        Ok(Err(error)) => tracing::warn!(%error, "the event recorder stopped"),
        Err(error) => tracing::warn!(%error, "the event recorder died"),
        Ok(Ok(())) => {}
    }
    let _ = watcher.await;
    let _ = reaper.await;
    let _ = sweeper.await;
    let _ = webhooks.await;
    served?;
    Ok(())
}

/// The status process: PostgreSQL, RabbitMQ, `status.bind`; with `metrics`
/// (the process's recorder), the ops listener on `ops.bind`. `ready` receives
/// the bound address once listening.
pub async fn serve(
    settings: Settings,
    metrics: Option<atelier_telemetry::Metrics>,
    shutdown: CancellationToken,
    ready: Option<tokio::sync::oneshot::Sender<SocketAddr>>,
) -> Result<(), StatusError> {
    let settings = Arc::new(settings);
    let store = atelier_jobs::connect(&settings.database).await?;
    let bus = JobBus::rabbitmq(&settings, "atelier-status").await?;
    let ops_stop = CancellationToken::new();
    let _ops_stop = ops_stop.clone().drop_guard();
    if let Some(metrics) = metrics {
        let listener = atelier_telemetry::ops::bind(&settings.ops.bind_for("status")).await?;
        let ready = Arc::new(Readiness {
            bus: bus.clone(),
            store: store.clone(),
        });
        atelier_telemetry::ops::spawn(listener, Some(metrics), ready, shutdown.clone(), ops_stop);
    }
    let listener = bind(&settings.status.bind).await?;
    if let Some(ready) = ready
        && let Ok(addr) = listener.local_addr()
    {
        let _ = ready.send(addr);
    }
    run(settings, store, bus.clone(), listener, shutdown).await?;
    bus.close().await;
    tracing::info!("status service stopped");
    Ok(())
}

/// Binds `addr`, naming it in the error.
pub async fn bind(addr: &str) -> Result<TcpListener, StatusError> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| StatusError::Listen {
            addr: addr.to_string(),
            source,
        })?;
    if let Ok(local) = listener.local_addr() {
        tracing::info!(addr = %local, "status service listening");
    }
    Ok(listener)
}

/// The whole `main` of `atelier-status`.
pub fn run_main() -> anyhow::Result<()> {
    let settings = Settings::load()?;
    let _telemetry = atelier_telemetry::init(&settings.telemetry, "atelier-status");
    let metrics = atelier_telemetry::Metrics::install()?;
    atelier_telemetry::run_until_signal(|shutdown| serve(settings, Some(metrics), shutdown, None))??;
    Ok(())
}

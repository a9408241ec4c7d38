//! Wiring the status process: stores, broker, recorder, queue view, gRPC server.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use atelier_broker::{Broker, Names};
use atelier_core::settings::Settings;
use atelier_proto::v1::status_service_server::StatusServiceServer;
use atelier_storage::{JobStore, PgJobStore};
use tokio_util::sync::CancellationToken;

use crate::{EventHub, QueueWatch, StatusApi, record_events};

/// Errors that stop the status service.
#[derive(Debug, thiserror::Error)]
pub enum StatusError {
    #[error("broker: {0}")]
    Broker(#[from] atelier_broker::BrokerError),
    #[error("job store: {0}")]
    Storage(#[from] atelier_storage::StorageError),
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    #[error("gRPC server: {0}")]
    Server(#[from] tonic::transport::Error),
    #[error("reflection: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
}

/// Serves until `shutdown`; `ready` receives the bound address once listening.
pub async fn serve(
    settings: Settings,
    shutdown: CancellationToken,
    ready: Option<tokio::sync::oneshot::Sender<SocketAddr>>,
) -> Result<(), StatusError> {
    let settings = Arc::new(settings);
    let store: Arc<dyn JobStore> = Arc::new(PgJobStore::connect(&settings.database).await?);
    let broker = Broker::connect(
        settings.broker.clone(),
        settings.pipeline.max_queue_size,
        "atelier-status",
    )
    .await?;
    let hub = EventHub::default();
    let queues = QueueWatch::default();
    queues.refresh(&broker).await;

    let names = Names::new(&settings.broker.prefix);
    let recorder = tokio::spawn(record_events(
        broker.clone(),
        names.status_queue(),
        store.clone(),
        hub.clone(),
        shutdown.clone(),
    ));
    let poll = Duration::from_millis(settings.status.rabbitmq_poll_ms);
    let watcher = tokio::spawn(queues.clone().run(broker.clone(), poll, shutdown.clone()));

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

    let api = StatusApi::new(store, queues, hub, settings.clone());
    let listener = tokio::net::TcpListener::bind(&settings.status.bind)
        .await
        .map_err(|source| StatusError::Listen {
            addr: settings.status.bind.clone(),
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| StatusError::Listen {
        addr: settings.status.bind.clone(),
        source,
    })?;
    tracing::info!(%addr, "status service listening");
    if let Some(ready) = ready {
        let _ = ready.send(addr);
    }
    tonic::transport::Server::builder()
        .add_service(health_service)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(StatusServiceServer::new(api))
        .serve_with_incoming_shutdown(
            tokio_stream::wrappers::TcpListenerStream::new(listener),
            shutdown.clone().cancelled_owned(),
        )
        .await?;
    shutdown.cancel();
    let _ = recorder.await;
    let _ = watcher.await;
    tracing::info!("status service stopped");
    Ok(())
}

/// The whole `main` of `atelier-status`.
pub fn run_main() -> anyhow::Result<()> {
    let settings = Settings::load()?;
    atelier_telemetry::init(&settings.telemetry, "status");
    atelier_telemetry::run_until_signal(|shutdown| serve(settings, shutdown, None))??;
    Ok(())
}

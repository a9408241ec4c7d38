//! Wiring a worker process: settings → broker, blob store, providers → the
//! consumer runtime, until SIGTERM.

use std::sync::Arc;
use std::time::Duration;

use atelier_broker::Broker;
use atelier_core::pipeline::Stage;
use atelier_core::settings::Settings;
use atelier_providers::Providers;
use atelier_stages::StageContext;
use atelier_storage::BlobStore;
use futures::StreamExt;
use tokio_util::sync::CancellationToken;

use crate::{CancelledJobs, StageWorker, WorkerError};

/// Runs the worker for `stage` until `shutdown` fires, then lets in-flight jobs
/// finish (up to `worker.shutdown_grace_seconds`) and returns.
pub async fn serve(stage: Stage, settings: Settings, shutdown: CancellationToken) -> Result<(), WorkerError> {
    let settings = Arc::new(settings);
    let name = format!("atelier-{}", stage.as_str());
    let broker = Broker::connect(settings.broker.clone(), settings.pipeline.max_queue_size, &name).await?;
    let blobs = BlobStore::from_url(&settings.blobs.url)?;
    let providers = Providers::from_settings(&settings)?;
    let ctx = StageContext::new(settings.clone(), providers);
    let cancelled = Arc::new(CancelledJobs::default());
    let listener = tokio::spawn(listen_for_cancels(
        broker.clone(),
        cancelled.clone(),
        shutdown.clone(),
    ));

    let concurrency = settings.worker_concurrency();
    let worker = Arc::new(StageWorker::new(stage, ctx, blobs, broker.clone(), cancelled));
    tracing::info!(stage = stage.as_str(), concurrency, "consuming");
    let grace = Duration::from_secs(settings.worker.shutdown_grace_seconds);
    let consumer = broker.run_stage_consumer(stage, concurrency, worker, shutdown.clone());
    tokio::pin!(consumer);
    let result = tokio::select! {
        r = &mut consumer => r,
        () = async { shutdown.cancelled().await; tokio::time::sleep(grace).await } => {
            tracing::warn!(?grace, "in-flight jobs outlived the shutdown grace; their messages will be redelivered");
            Ok(())
        }
    };
    listener.abort();
    result?;
    tracing::info!(stage = stage.as_str(), "stopped");
    Ok(())
}

/// Records every cancel broadcast until shutdown.
async fn listen_for_cancels(broker: Broker, cancelled: Arc<CancelledJobs>, shutdown: CancellationToken) {
    let mut control = match broker.subscribe_control().await {
        Ok(stream) => stream,
        Err(error) => {
            tracing::error!(%error, "cannot listen for cancels; relying on the cancel markers");
            return;
        }
    };
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            next = control.next() => match next {
                Some((body, acker)) => {
                    match atelier_proto::decode_cancel(&body) {
                        Ok(cancel) => cancelled.insert(cancel.job),
                        Err(error) => tracing::warn!(%error, "undecodable cancel message"),
                    }
                    if let Err(error) = acker.ack().await {
                        tracing::debug!(%error, "ack failed; the message comes back");
                    }
                }
                None => return,
            }
        }
    }
}

/// The whole `main` of a worker binary: settings, telemetry, serve until a
/// signal. Returns the process's outcome for `anyhow` at the top.
pub fn run_main(stage: Stage) -> anyhow::Result<()> {
    let settings = Settings::load()?;
    atelier_telemetry::init(&settings.telemetry, stage.as_str());
    atelier_telemetry::run_until_signal(|shutdown| serve(stage, settings, shutdown))??;
    Ok(())
}

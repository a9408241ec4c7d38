//! Wiring a worker: settings → bus, blob store, providers → the stage runtime,
//! until shutdown. [`run_workers`] runs any set of stages over one bus, so the
//! worker binaries (one stage each) and `atelier serve` (all four) share it.

use std::sync::Arc;
use std::time::Duration;

use atelier_bus::JobBus;
use atelier_core::pipeline::Stage;
use atelier_core::settings::{SegmenterKind, Settings};
use atelier_jobs::Store;
use atelier_providers::{Providers, QuotaGate};
use atelier_stages::StageContext;
use atelier_storage::BlobStore;
use tokio_util::sync::CancellationToken;

use crate::quota::SharedQuota;
use crate::{CancelledJobs, StageWorker, WorkerError};

/// The providers `settings` selects; with `store`, the AI vendors' quotas are
/// counted there, shared by every worker. Built on the blocking pool: a
/// segmentation model is loaded, optimised and warmed up here. Call it before
/// serving anything, so a bad model stops the process at start-up.
pub async fn build_providers(
    settings: &Arc<Settings>,
    store: Option<Arc<dyn Store>>,
) -> Result<Providers, WorkerError> {
    let quota = store.map(|store| Arc::new(SharedQuota::new(store)) as Arc<dyn QuotaGate>);
    let settings = Arc::clone(settings);
    tokio::task::spawn_blocking(move || Providers::from_settings_with_quotas(&settings, quota))
        .await
        .map_err(|e| {
            WorkerError::Providers(atelier_providers::ProviderError::Task {
                provider: "providers",
                message: e.to_string(),
            })
        })?
        .map_err(WorkerError::from)
}

/// The settings a `stage` worker builds its providers from: only analysis
/// segments photos, so the other workers neither load the segmentation model
/// (seconds and hundreds of MB for a real one) nor fail on a bad one.
fn provider_settings(stage: Stage, settings: &Arc<Settings>) -> Arc<Settings> {
    if stage == Stage::Analysis || settings.analysis.segmenter == SegmenterKind::Classic {
        return Arc::clone(settings);
    }
    let mut own = Settings::clone(settings);
    own.analysis.segmenter = SegmenterKind::Classic;
    Arc::new(own)
}

/// Runs `stages` over `bus` with `providers` (see [`build_providers`]) until
/// `shutdown` fires, then lets in-flight jobs finish (up to
/// `worker.shutdown_grace_seconds`) and returns.
pub async fn run_workers(
    stages: &[Stage],
    settings: Arc<Settings>,
    bus: JobBus,
    blobs: BlobStore,
    providers: Providers,
    shutdown: CancellationToken,
) -> Result<(), WorkerError> {
    let ctx = StageContext::new(settings.clone(), providers);
    let cancelled = Arc::new(CancelledJobs::default());
    let listener = tokio::spawn(listen_for_cancels(
        bus.clone(),
        cancelled.clone(),
        shutdown.clone(),
    ));
    let concurrency = settings.worker_concurrency();
    let consumers = stages.iter().map(|&stage| {
        let worker = Arc::new(StageWorker::new(
            stage,
            ctx.clone(),
            blobs.clone(),
            bus.clone(),
            cancelled.clone(),
        ));
        tracing::info!(stage = stage.as_str(), concurrency, "consuming");
        let bus = bus.clone();
        let shutdown = shutdown.clone();
        async move { bus.run_stage(stage, concurrency, worker, shutdown).await }
    });
    let all = futures::future::try_join_all(consumers);
    tokio::pin!(all);
    let grace = Duration::from_secs(settings.worker.shutdown_grace_seconds);
    let result = tokio::select! {
        r = &mut all => r.map(drop),
        () = async { shutdown.cancelled().await; tokio::time::sleep(grace).await } => {
            tracing::warn!(?grace, "in-flight jobs outlived the shutdown grace; their messages will be redelivered");
            Ok(())
        }
    };
    listener.abort();
    result?;
    Ok(())
}

/// A worker is ready while it reaches the broker (it consumes through it).
struct Readiness {
    bus: JobBus,
}

#[async_trait::async_trait]
impl atelier_telemetry::ops::Readiness for Readiness {
    async fn checks(&self) -> Vec<(&'static str, bool)> {
        vec![("broker", self.bus.is_connected())]
    }
}

/// One stage's worker process: RabbitMQ, the configured blob store; with
/// `metrics` (the process's recorder), the ops listener on `ops.bind`.
pub async fn serve(
    stage: Stage,
    settings: Settings,
    metrics: Option<atelier_telemetry::Metrics>,
    shutdown: CancellationToken,
) -> Result<(), WorkerError> {
    let settings = Arc::new(settings);
    // Workers touch the job store only to share the vendors' quotas.
    let store = if Providers::any_remote(&settings) {
        Some(atelier_jobs::connect(&settings.database).await?)
    } else {
        None
    };
    // Before the broker: a service that cannot build its providers (a bad
    // segmentation model) exits at once with the reason.
    let providers = build_providers(&provider_settings(stage, &settings), store).await?;
    let bus = JobBus::rabbitmq(&settings, &format!("atelier-{}", stage.service_name())).await?;
    let blobs = BlobStore::from_url(&settings.blobs.url)?;
    let ops_stop = CancellationToken::new();
    let _ops_stop = ops_stop.clone().drop_guard();
    if let Some(metrics) = metrics {
        let listener = atelier_telemetry::ops::bind(&settings.ops.bind_for(stage.service_name())).await?;
        let ready = Arc::new(Readiness { bus: bus.clone() });
        atelier_telemetry::ops::spawn(listener, Some(metrics), ready, shutdown.clone(), ops_stop);
    }
    run_workers(&[stage], settings, bus.clone(), blobs, providers, shutdown).await?;
    bus.close().await;
    tracing::info!(stage = stage.as_str(), "stopped");
    Ok(())
}

/// Records every cancel broadcast until shutdown.
async fn listen_for_cancels(bus: JobBus, cancelled: Arc<CancelledJobs>, shutdown: CancellationToken) {
    let mut cancels = match bus.cancels().await {
        Ok(feed) => feed,
        Err(error) => {
            tracing::error!(%error, "cannot listen for cancels; relying on the cancel markers");
            return;
        }
    };
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            next = cancels.next() => match next {
                Some(job) => cancelled.insert(job),
                None => return,
            }
        }
    }
}

/// The whole `main` of a worker binary: settings, telemetry, serve until a
/// signal. Returns the process's outcome for `anyhow` at the top.
pub fn run_main(stage: Stage) -> anyhow::Result<()> {
    atelier_imaging::memory::return_large_buffers_to_the_system();
    let settings = Settings::load()?;
    let _telemetry =
        atelier_telemetry::init(&settings.telemetry, &format!("atelier-{}", stage.service_name()));
    let metrics = atelier_telemetry::Metrics::install()?;
    atelier_telemetry::run_until_signal(|shutdown| serve(stage, settings, Some(metrics), shutdown))??;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_analysis_worker_loads_a_segmentation_model() {
        let mut settings = Settings::defaults();
        settings.analysis.segmenter = SegmenterKind::Onnx;
        settings.analysis.onnx_model = "/models/u2netp.onnx".into();
        let settings = Arc::new(settings);
        let analysis = provider_settings(Stage::Analysis, &settings);
        assert_eq!(analysis.analysis.segmenter, SegmenterKind::Onnx);
        for stage in [Stage::Generation, Stage::Upscaling, Stage::PostProcessing] {
            let own = provider_settings(stage, &settings);
            assert_eq!(own.analysis.segmenter, SegmenterKind::Classic, "{stage:?}");
            assert_eq!(own.providers, settings.providers, "{stage:?}");
        }
    }
}

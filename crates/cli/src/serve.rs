//! `atelier serve`: the whole API in one process. The gateway, the four stage
//! workers and the status service run over the in-process bus, with jobs in a
//! SQLite file and blobs in a folder under `--data`. Unfinished jobs resume
//! from their checkpoints when it starts again.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use atelier_bus::JobBus;
use atelier_core::pipeline::Stage;
use atelier_core::settings::Settings;
use atelier_jobs::ApiKey;
use atelier_storage::BlobStore;
use tokio_util::sync::CancellationToken;

use crate::args::ServeArgs;

/// Name of the job database under `--data`.
const DATABASE_FILE: &str = "atelier.db";
/// Name of the blob folder under `--data`.
const BLOB_FOLDER: &str = "blobs";

/// Runs until SIGTERM or ctrl-c.
pub fn run(settings: Settings, args: ServeArgs) -> anyhow::Result<()> {
    let settings = embedded_settings(settings, &args)?;
    let metrics = atelier_telemetry::Metrics::install().context("installing the metrics recorder")?;
    atelier_telemetry::run_until_signal(|shutdown| serve(settings, args.data, Some(metrics), shutdown))?
}

/// The job database of a `--data` folder (created when missing).
pub fn database_url(data: &Path) -> anyhow::Result<String> {
    std::fs::create_dir_all(data).with_context(|| format!("creating {}", data.display()))?;
    let data = data
        .canonicalize()
        .with_context(|| format!("opening {}", data.display()))?;
    Ok(format!("sqlite://{}", data.join(DATABASE_FILE).display()))
}

/// Settings of the embedded stack: the flags' addresses, the data folder's
/// database and blobs.
fn embedded_settings(mut settings: Settings, args: &ServeArgs) -> anyhow::Result<Settings> {
    settings.database.url = database_url(&args.data)?;
    let data = args
        .data
        .canonicalize()
        .with_context(|| format!("opening {}", args.data.display()))?;
    if let Some(bind) = &args.bind {
        settings.gateway.bind = bind.clone();
    }
    if let Some(grpc) = &args.grpc {
        settings.status.bind = grpc.clone();
    }
    settings.gateway.status_url = format!("http://{}", settings.status.bind);
    settings.blobs.url = data.join(BLOB_FOLDER).display().to_string();
    Ok(settings)
}

async fn serve(
    settings: Settings,
    data: PathBuf,
    metrics: Option<atelier_telemetry::Metrics>,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let settings = Arc::new(settings);
    let jobs = atelier_jobs::connect(&settings.database)
        .await
        .context("opening the job database")?;
    // Before anything listens: a bad segmentation model stops `serve` here.
    let providers = atelier_worker::build_providers(&settings, Some(jobs.clone())).await?;
    let bus = JobBus::in_process(&settings)?;
    let blobs = BlobStore::from_url(&settings.blobs.url)?;

    // The status service first: its gRPC port is the gateway's queue status.
    let grpc = atelier_status::bind(&settings.status.bind).await?;
    let grpc_addr = grpc.local_addr()?;
    let status = tokio::spawn(atelier_status::run(
        settings.clone(),
        jobs.clone(),
        bus.clone(),
        grpc,
        shutdown.clone(),
    ));
    let resumed = atelier_status::resume_unfinished(&*jobs, &bus, atelier_core::clock::now_ms()).await?;
    if resumed.requeued + resumed.failed > 0 {
        tracing::info!(
            requeued = resumed.requeued,
            failed = resumed.failed,
            "unfinished jobs from the last run"
        );
    }
    let workers = tokio::spawn(atelier_worker::run_workers(
        &Stage::ALL,
        settings.clone(),
        bus.clone(),
        blobs.clone(),
        providers,
        shutdown.clone(),
    ));
    let keys = jobs.keys().await?;
    let app =
        atelier_gateway::build_state(settings.clone(), bus.clone(), jobs, blobs, metrics, &shutdown).await?;
    let http = atelier_gateway::bind(&settings.gateway.bind).await?;
    let ops = atelier_gateway::bind(&settings.ops.bind_for("serve")).await?;
    announce(http.local_addr()?, grpc_addr, &data);
    if settings.gateway.auth.required && !keys.iter().any(ApiKey::is_active) {
        eprintln!(
            "atelier serve: no API key yet; make one with `atelier keys create --name me --data {}`",
            data.display()
        );
    }
    let gateway = atelier_gateway::run(app, http, Some(ops), shutdown.clone()).await;
    shutdown.cancel();
    let workers = workers.await.context("the workers died")?;
    let status = status.await.context("the status service died")?;
    bus.close().await;
    gateway?;
    workers?;
    status?;
    tracing::info!("atelier serve stopped");
    Ok(())
}

/// One line on stderr once everything listens (scripts and tests wait for it).
fn announce(http: SocketAddr, grpc: SocketAddr, data: &Path) {
    eprintln!(
        "atelier serve: API on http://{http}, gRPC on {grpc}, data in {}",
        data.display()
    );
}

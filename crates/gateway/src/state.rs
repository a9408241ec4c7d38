//! What every handler shares. Cheap to clone; holds no job state of its own, so
//! any number of gateways can serve the same jobs.

use std::sync::Arc;

use atelier_bus::JobBus;
use atelier_core::settings::Settings;
use atelier_jobs::Store;
use atelier_proto::v1::status_service_client::StatusServiceClient;
use atelier_storage::BlobStore;
use tokio::sync::Semaphore;
use tonic::transport::Channel;

use crate::auth::Keys;
use crate::inputs::Fetcher;
use crate::server::Drain;
use crate::watch::EventFeed;

/// Shared handles of the gateway.
#[derive(Debug, Clone)]
pub struct AppState {
    pub settings: Arc<Settings>,
    pub bus: JobBus,
    pub jobs: Arc<dyn Store>,
    pub blobs: BlobStore,
    pub events: EventFeed,
    pub fetcher: Fetcher,
    pub status: StatusServiceClient<Channel>,
    /// This process's Prometheus recorder (`None`: `/metrics` answers 404).
    pub metrics: Option<atelier_telemetry::Metrics>,
    /// Cached API key lookups.
    pub keys: Keys,
    /// Submissions handled at once (`gateway.max_concurrent_submissions`).
    pub submissions: Arc<Semaphore>,
    /// Set while the server drains on shutdown.
    pub drain: Drain,
}

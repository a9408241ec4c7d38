//! What every handler shares. Cheap to clone; holds no job state of its own, so
//! any number of gateways can serve the same jobs.

use std::sync::Arc;

use atelier_broker::Broker;
use atelier_core::job::JobId;
use atelier_core::settings::Settings;
use atelier_proto::v1::status_service_client::StatusServiceClient;
use atelier_storage::{BlobStore, JobStore};
use metrics_exporter_prometheus::PrometheusHandle;
use tonic::transport::Channel;

use crate::events::EventFeed;
use crate::inputs::Fetcher;

/// Shared handles of the gateway.
#[derive(Debug, Clone)]
pub struct AppState {
    pub settings: Arc<Settings>,
    pub broker: Broker,
    pub jobs: Arc<dyn JobStore>,
    pub blobs: BlobStore,
    pub events: EventFeed,
    pub fetcher: Fetcher,
    pub status: StatusServiceClient<Channel>,
    pub metrics: Option<PrometheusHandle>,
}

impl AppState {
    /// The URL a client fetches a job's artefact `key` from.
    pub fn file_url(id: &JobId, key: &str) -> String {
        format!("/api/v1/files/{id}/{key}")
    }

    /// Seconds a client should wait before retrying after a 503.
    pub fn retry_after(&self) -> u64 {
        self.settings.gateway.retry_after_seconds
    }
}

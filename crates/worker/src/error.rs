//! Errors that stop a worker from starting or running.

/// Why a worker service cannot run.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    #[error("cannot reach the message broker")]
    Broker(#[from] atelier_broker::BrokerError),
    #[error("cannot open the blob store")]
    Storage(#[from] atelier_storage::StorageError),
    #[error("cannot build the AI providers")]
    Providers(#[from] atelier_providers::ProviderError),
    #[error("invalid settings")]
    Settings(#[from] atelier_core::CoreError),
    #[error("cannot open the job store (for the shared vendor quotas)")]
    Jobs(#[from] atelier_jobs::JobStoreError),
    #[error(transparent)]
    Ops(#[from] atelier_telemetry::ops::OpsError),
}

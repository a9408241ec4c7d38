//! Errors that stop a worker from starting or running.

/// Why a worker service cannot run.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    #[error("broker: {0}")]
    Broker(#[from] atelier_broker::BrokerError),
    #[error("blob store: {0}")]
    Storage(#[from] atelier_storage::StorageError),
    #[error("providers: {0}")]
    Providers(#[from] atelier_providers::ProviderError),
    #[error("settings: {0}")]
    Settings(#[from] atelier_core::CoreError),
}

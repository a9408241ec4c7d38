//! Errors of the stages, classified so the broker runtime can decide between
//! retrying and failing the job at once.

use atelier_imaging::ImagingError;
use atelier_providers::ProviderError;
use atelier_storage::StorageError;

/// Why a stage failed.
#[derive(Debug, thiserror::Error)]
pub enum StageError {
    /// An input photo is unusable (format, size, damage, no garment).
    #[error("input {index} ({source_name}): {error}")]
    Input {
        index: usize,
        /// The URL or file name the client gave, so the message names it.
        source_name: String,
        #[source]
        error: ProviderOrImaging,
    },
    /// A provider failed on our own intermediate data.
    #[error("{stage} provider failed")]
    Provider {
        stage: &'static str,
        #[source]
        error: ProviderError,
    },
    /// Reading or writing a blob failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// Encoding or decoding our own artefacts failed.
    #[error(transparent)]
    Imaging(#[from] ImagingError),
    /// A stage ran on a job that lacks what earlier stages should have produced.
    #[error("job state is inconsistent: {0}")]
    State(String),
    /// A CPU task died.
    #[error("{0} task failed")]
    Task(String),
}

/// The cause of an input error: decoding (imaging) or the analyzer (provider).
#[derive(Debug, thiserror::Error)]
pub enum ProviderOrImaging {
    #[error(transparent)]
    Imaging(#[from] ImagingError),
    #[error(transparent)]
    Provider(#[from] ProviderError),
}

impl StageError {
    /// True when retrying cannot help: the job must fail now with this reason.
    pub fn is_permanent(&self) -> bool {
        match self {
            Self::Input { .. } | Self::State(_) => true,
            Self::Provider { error, .. } => error.is_permanent(),
            Self::Storage(e) => !e.is_transient(),
            Self::Imaging(_) | Self::Task(_) => false,
        }
    }
}

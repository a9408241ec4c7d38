//! Errors of the providers crate.

use atelier_imaging::ImagingError;

/// What an analyzer, generator or upscaler can fail with.
#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    /// Pixel work failed; see [`ImagingError::is_input_error`] for whose fault.
    #[error(transparent)]
    Imaging(#[from] ImagingError),
    /// The CPU task died (a bug): reported, never swallowed.
    #[error("{provider} task failed: {message}")]
    Task { provider: &'static str, message: String },
}

impl ProviderError {
    /// True when the input itself is at fault and retrying cannot help.
    pub fn is_permanent(&self) -> bool {
        match self {
            Self::Imaging(e) => e.is_input_error(),
            Self::Task { .. } => false,
        }
    }
}

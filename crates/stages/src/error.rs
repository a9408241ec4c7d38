//! Errors of the stages, classified so the broker runtime can decide between
//! retrying and failing the job at once.

use atelier_core::error::error_chain;
use atelier_core::event::JobFailure;
use atelier_imaging::ImagingError;
use atelier_providers::ProviderError;
use atelier_storage::StorageError;

/// Why a stage failed.
#[derive(Debug, thiserror::Error)]
pub enum StageError {
    /// An input photo is unusable (format, size, damage, no garment).
    #[error("input {index} ({source_name}) is unusable")]
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
    /// The failure a job that died of this error reports, in the API's terms:
    /// an unusable input names its field (`inputImages[0].url`) and an error
    /// code, so the client gets the 4xx it would have had at intake.
    pub fn failure(&self) -> JobFailure {
        let message = error_chain(self);
        match self {
            Self::Input { index, error, .. } => {
                JobFailure::new(input_code(error), message).with_field(format!("inputImages[{index}].url"))
            }
            _ => JobFailure::stage(message),
        }
    }

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

/// The API error code of an unusable input.
fn input_code(error: &ProviderOrImaging) -> &'static str {
    let imaging = match error {
        ProviderOrImaging::Imaging(e) | ProviderOrImaging::Provider(ProviderError::Imaging(e)) => e,
        ProviderOrImaging::Provider(_) => return "invalid_image",
    };
    match imaging {
        ImagingError::UnsupportedFormat(_) => "unsupported_media_type",
        ImagingError::TooLarge(_) => "too_large",
        ImagingError::NoForeground(_) => "no_garment_found",
        ImagingError::UnsuitablePhoto { .. } => "unsuitable_photo",
        _ => "invalid_image",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unusable_input_names_its_field_and_code() {
        let error = StageError::Input {
            index: 2,
            source_name: "https://shop.example/a.jpg".into(),
            error: ProviderOrImaging::Imaging(ImagingError::Corrupt("ends early".into())),
        };
        let failure = error.failure();
        assert_eq!(failure.code, "invalid_image");
        assert_eq!(failure.field.as_deref(), Some("inputImages[2].url"));
        assert_eq!(
            failure.message,
            "input 2 (https://shop.example/a.jpg) is unusable: truncated or corrupt image data: ends early"
        );
        assert!(!StageError::State("x".into()).failure().is_client_error());
    }

    #[test]
    fn an_untrusted_cut_out_is_an_unsuitable_photo() {
        let error = StageError::Input {
            index: 0,
            source_name: "street.jpg".into(),
            error: ProviderOrImaging::Imaging(ImagingError::UnsuitablePhoto {
                confidence: 0.1,
                minimum: 0.5,
            }),
        };
        let failure = error.failure();
        assert_eq!(failure.code, "unsuitable_photo");
        assert_eq!(failure.field.as_deref(), Some("inputImages[0].url"));
        assert!(
            failure.message.contains("not plain enough"),
            "{}",
            failure.message
        );
        assert!(error.is_permanent());
    }
}

//! Typed errors of the imaging crate.

/// Everything pixel work can fail with. Input errors (the first group) are the
/// client's fault and permanent; the rest are ours.
#[derive(Debug, thiserror::Error)]
pub enum ImagingError {
    /// The bytes are not an image format Atelier reads (JPEG, PNG, WebP).
    #[error("unsupported image format{}", detail(.0))]
    UnsupportedFormat(Option<String>),
    /// The file ends early or its data is damaged.
    #[error("truncated or corrupt image data: {0}")]
    Corrupt(String),
    /// Over the configured size or pixel limits (decompression-bomb guard).
    #[error("image too large: {0}")]
    TooLarge(String),
    /// Structured to cost far more to decode than its size suggests (a JPEG
    /// with thousands of scans).
    #[error("image too costly to decode: {0}")]
    TooComplex(String),
    /// Under the configured minimum side.
    #[error("image too small: {width}x{height}, each side must be at least {min_side} px")]
    TooSmall { width: u32, height: u32, min_side: u32 },
    /// The analysis found nothing that looks like a garment.
    #[error("no garment found in the image: {0}")]
    NoForeground(String),
    /// The photo is not a plain-backdrop product shot: its cut-out cannot be
    /// trusted (mask confidence below the configured minimum).
    #[error(
        "the backdrop is not plain enough to cut the garment out locally (mask confidence {confidence:.2} < {minimum:.2}); use a plain backdrop or the AI generator"
    )]
    UnsuitablePhoto { confidence: f32, minimum: f32 },
    /// Encoding an output (JPEG, PNG) failed.
    #[error("encoding {format} failed: {message}")]
    Encode { format: &'static str, message: String },
    /// Resizing failed (invalid dimensions).
    #[error("resize failed: {0}")]
    Resize(String),
    /// The video encoder or muxer failed.
    #[error("video encoding failed: {0}")]
    Video(String),
    /// The segmentation model (a mask prior source) failed on a photo.
    #[error("segmentation model failed: {0}")]
    Segmentation(String),
    /// The Excel writer failed.
    #[error("report writing failed")]
    Report(#[source] rust_xlsxwriter::XlsxError),
    /// A temporary file could not be used.
    #[error("temporary file I/O failed")]
    Io(#[from] std::io::Error),
}

fn detail(d: &Option<String>) -> String {
    d.as_ref().map(|d| format!(": {d}")).unwrap_or_default()
}

impl ImagingError {
    /// True when the input itself is at fault, so retrying cannot help.
    pub fn is_input_error(&self) -> bool {
        matches!(
            self,
            Self::UnsupportedFormat(_)
                | Self::Corrupt(_)
                | Self::TooLarge(_)
                | Self::TooComplex(_)
                | Self::TooSmall { .. }
                | Self::NoForeground(_)
                | Self::UnsuitablePhoto { .. }
        )
    }
}

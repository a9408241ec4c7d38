//! Typed errors of the segment crate.

use std::path::PathBuf;

use atelier_imaging::ImagingError;

/// The setting every start-up error names, so an operator knows what to fix.
pub const SETTING: &str = "analysis.onnx_model";

/// What loading or running a segmentation model can fail with. The first three
/// are start-up errors: the service must not start with them.
#[derive(Debug, thiserror::Error)]
pub enum SegmentError {
    /// The model file cannot be read (missing, unreadable).
    #[error("{SETTING}: cannot read the model file {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The file is not an ONNX model tract can load and optimise.
    #[error("{SETTING}: {} is not a usable ONNX model: {message}", path.display())]
    Load { path: PathBuf, message: String },
    /// The model's input or output does not fit the interface.
    #[error(
        "{SETTING}: {} has the wrong shape: {found}; expected one f32 input [1, 3, {size}, {size}] \
         (analysis.onnx_input_size = {size}) and output 0 a foreground map [1, 1, {size}, {size}] or [1, {size}, {size}]",
        path.display()
    )]
    Shape {
        path: PathBuf,
        size: usize,
        found: String,
    },
    /// Inference on one photo failed (an internal error: the model was checked at start-up).
    #[error("inference failed: {0}")]
    Inference(String),
    /// Resizing the photo or building the prior failed.
    #[error(transparent)]
    Imaging(#[from] ImagingError),
}

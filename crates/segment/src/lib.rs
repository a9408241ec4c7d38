//! Pluggable segmentation models for the local cut-out (`analysis.segmenter =
//! "onnx"`): a salient-object model (U²-Net, IS-Net, BiRefNet class) run with
//! tract-onnx, pure Rust, on the CPU.
//!
//! [`OnnxSegmenter::from_settings`] loads the model once at start-up: the file is
//! read, its input fixed to `[1, 3, S, S]` f32 (S = `analysis.onnx_input_size`),
//! the graph optimised and made runnable, and one warm-up inference checks that
//! output 0 is a foreground map (`[1, 1, S, S]` or `[1, S, S]`). Anything else is
//! an error naming `analysis.onnx_model`, so a service refuses to start rather
//! than failing every job. Per photo, [`OnnxSegmenter::map`] resizes it to S×S,
//! normalises it, runs the plan and returns the map as an
//! [`atelier_imaging::analysis::MaskPrior`], which the classic cut-out refines
//! (see docs/segmentation.md).
//!
//! [`test_models`] writes tiny ONNX models for tests (the repository makes its
//! own; none is downloaded).

mod error;
mod model;
pub mod test_models;

pub use error::SegmentError;
pub use model::{InputSpec, OnnxSegmenter};

//! One ONNX segmentation model: loaded, shape-checked, optimised and made
//! runnable once; then run per photo on the caller's (CPU pool) thread.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use atelier_core::settings::AnalysisSettings;
use atelier_imaging::ImagingError;
use atelier_imaging::analysis::{MaskPrior, PriorSource};
use atelier_imaging::resize::{self, Filter};
use image::{Rgb, RgbImage};
use sha2::{Digest, Sha256};
use tract_onnx::prelude::*;
use tract_onnx::tract_hir::infer::Factoid;

use crate::error::SegmentError;

/// Output values further than this outside 0–1 mark the map as logits (a graph
/// exported without its final sigmoid, as BiRefNet's usually is): the sigmoid is
/// then applied here. A probability map stays within 0–1 up to rounding.
const PROBABILITY_SLACK: f32 = 1e-3;
/// Grey level of the start-up warm-up photo: the run checks that the plan
/// executes and what it returns, not the answer.
const WARM_UP_GREY: u8 = 128;

/// How a photo becomes the model's input tensor.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct InputSpec {
    /// Square input side S (`analysis.onnx_input_size`).
    pub size: u32,
    /// Per-channel mean of RGB in 0–1 the model was trained with (`onnx_mean`).
    pub mean: [f32; 3],
    /// Per-channel standard deviation (`onnx_std`): the model sees (x − mean) / std.
    pub std: [f32; 3],
}

impl InputSpec {
    /// The spec `[analysis]` configures.
    pub fn from_settings(settings: &AnalysisSettings) -> Self {
        Self {
            size: settings.onnx_input_size,
            mean: settings.onnx_mean,
            std: settings.onnx_std,
        }
    }

    /// The normalised value of every 8-bit level, per channel.
    fn lut(&self) -> [[f32; 256]; 3] {
        std::array::from_fn(|c| std::array::from_fn(|v| (v as f32 / 255.0 - self.mean[c]) / self.std[c]))
    }
}

/// A loaded, checked and optimised segmentation model, ready to run. Cheap to
/// share (`Arc`); runs are independent, so several photos may use it at once.
pub struct OnnxSegmenter {
    plan: Arc<TypedRunnableModel>,
    input: InputSpec,
    lut: [[f32; 256]; 3],
    path: PathBuf,
    /// SHA-256 of the model file: part of the analysis cache key, so replacing
    /// the file at the same path does not reuse the old model's results.
    digest: String,
}

impl fmt::Debug for OnnxSegmenter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OnnxSegmenter")
            .field("path", &self.path)
            .field("input", &self.input)
            .field("digest", &self.digest)
            .finish_non_exhaustive()
    }
}

impl OnnxSegmenter {
    /// The model `analysis.onnx_model` names, with the configured input size and
    /// normalisation.
    ///
    /// # Errors
    ///
    /// See [`OnnxSegmenter::load`].
    pub fn from_settings(settings: &AnalysisSettings) -> Result<Self, SegmentError> {
        Self::load(
            Path::new(&settings.onnx_model),
            InputSpec::from_settings(settings),
        )
    }

    /// Reads, checks, optimises and warms up the model at `path`.
    ///
    /// # Errors
    ///
    /// [`SegmentError::Read`] when the file cannot be read, [`SegmentError::Load`]
    /// when it is not an ONNX model tract can optimise and run,
    /// [`SegmentError::Shape`] when its input cannot be `[1, 3, S, S]` f32 or its
    /// output 0 is not a `[1, 1, S, S]` or `[1, S, S]` map.
    pub fn load(path: &Path, input: InputSpec) -> Result<Self, SegmentError> {
        let bytes = std::fs::read(path).map_err(|source| SegmentError::Read {
            path: path.to_owned(),
            source,
        })?;
        let digest = hex::encode(Sha256::digest(&bytes));
        let s = input.size as usize;
        let load = |e: TractError| SegmentError::Load {
            path: path.to_owned(),
            message: format!("{e:#}"),
        };
        let shape = |found: String| SegmentError::Shape {
            path: path.to_owned(),
            size: s,
            found,
        };

        let mut model = tract_onnx::onnx()
            .model_for_read(&mut bytes.as_slice())
            .map_err(load)?;
        let inputs = model.input_outlets().map_err(load)?.len();
        if inputs != 1 {
            return Err(shape(format!("{inputs} inputs")));
        }
        let wanted = InferenceFact::dt_shape(f32::datum_type(), [1, 3, s, s]);
        let declared = model.input_fact(0).map_err(load)?.clone();
        if declared.unify(&wanted).is_err() {
            return Err(shape(format!("input {declared:?}")));
        }
        // Only output 0 is used; other heads (U²-Net's side outputs) are pruned.
        let first = *model
            .output_outlets()
            .map_err(load)?
            .first()
            .ok_or_else(|| shape("no output".into()))?;
        model.select_output_outlets(&[first]).map_err(load)?;
        let typed = model
            .with_input_fact(0, wanted)
            .map_err(load)?
            .into_optimized()
            .map_err(load)?;
        let out = typed.output_fact(0).map_err(load)?;
        let is_map = matches!(
            out.shape.as_concrete(),
            Some(&[1, 1, h, w]) | Some(&[1, h, w]) if h == s && w == s
        );
        if !is_map {
            return Err(shape(format!(
                "input [1, 3, {s}, {s}] gives output 0 {:?} {:?}",
                out.shape, out.datum_type
            )));
        }
        let plan = typed.into_runnable().map_err(load)?;
        let segmenter = Self {
            plan,
            lut: input.lut(),
            input,
            path: path.to_owned(),
            digest,
        };
        let grey = RgbImage::from_pixel(input.size, input.size, Rgb([WARM_UP_GREY; 3]));
        segmenter.map(&grey).map_err(|e| SegmentError::Load {
            path: path.to_owned(),
            message: format!("the warm-up inference failed: {e}"),
        })?;
        Ok(segmenter)
    }

    /// What identifies this model's output: the file's digest and the input spec.
    pub fn identity(&self) -> String {
        format!("onnx:{}:{:?}", self.digest, self.input)
    }

    /// The model file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The model's foreground map for `rgb` (any size; resized to S×S), as a
    /// prior of S×S probabilities. Runs on the calling thread.
    ///
    /// # Errors
    ///
    /// [`SegmentError::Inference`] when the plan fails, [`SegmentError::Imaging`]
    /// when the photo cannot be resized.
    pub fn map(&self, rgb: &RgbImage) -> Result<MaskPrior, SegmentError> {
        let size = self.input.size;
        let s = size as usize;
        let small;
        let photo = if rgb.dimensions() == (size, size) {
            rgb
        } else {
            small = resize::rgb(rgb, size, size, Filter::Bilinear)?;
            &small
        };
        // Planar CHW, normalised through the per-channel table.
        let plane = s * s;
        let mut data = vec![0.0f32; 3 * plane];
        for (i, px) in photo.pixels().enumerate() {
            for (c, lut) in self.lut.iter().enumerate() {
                data[c * plane + i] = lut[usize::from(px[c])];
            }
        }
        let infer = |e: TractError| SegmentError::Inference(format!("{e:#}"));
        let tensor = Tensor::from_shape(&[1, 3, s, s], &data).map_err(infer)?;
        let outputs = self.plan.run(tvec!(tensor.into_tvalue())).map_err(infer)?;
        let first = outputs
            .first()
            .ok_or_else(|| SegmentError::Inference("the model returned no output".into()))?;
        let map = first.cast_to::<f32>().map_err(infer)?;
        let mut values: Vec<f32> = map
            .to_plain_array_view::<f32>()
            .map_err(infer)?
            .iter()
            .copied()
            .collect();
        if values.len() != plane {
            return Err(SegmentError::Inference(format!(
                "the map has {} values, not {s}×{s}",
                values.len()
            )));
        }
        if values
            .iter()
            .any(|&v| !(-PROBABILITY_SLACK..=1.0 + PROBABILITY_SLACK).contains(&v))
        {
            values.iter_mut().for_each(|v| *v = 1.0 / (1.0 + (-*v).exp()));
        }
        Ok(MaskPrior::from_probabilities(size, size, &values)?)
    }
}

impl PriorSource for OnnxSegmenter {
    fn prior(&self, work: &RgbImage) -> Result<MaskPrior, ImagingError> {
        self.map(work).map_err(|e| match e {
            SegmentError::Imaging(e) => e,
            other => ImagingError::Segmentation(other.to_string()),
        })
    }
}

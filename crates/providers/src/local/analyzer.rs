//! Local analysis: backdrop separation (optionally from a segmentation model's
//! prior), palette, exposure and sharpness.

use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use atelier_core::settings::{AnalysisSettings, SegmenterKind};
use atelier_imaging::analysis::{self, Analyzed, PriorSource};
use atelier_segment::OnnxSegmenter;

use crate::{AnalyzeInput, Analyzer, ProviderError, cpu};

/// Analyses photos with `atelier_imaging::analysis` on the blocking pool.
#[derive(Debug, Clone)]
pub struct LocalAnalyzer {
    settings: AnalysisSettings,
    /// The segmentation model (`analysis.segmenter = "onnx"`), loaded and checked
    /// once, shared by every analysis; its map is the cut-out's prior.
    segmenter: Option<Arc<OnnxSegmenter>>,
}

impl LocalAnalyzer {
    /// An analyzer with the given working resolution and palette size; with
    /// `analysis.segmenter = "onnx"`, the model is loaded, optimised and warmed up
    /// here, on the calling thread (call it at start-up, off the async runtime).
    ///
    /// # Errors
    ///
    /// [`ProviderError::Segmenter`] when the model cannot be loaded or has the
    /// wrong shape; the message names `analysis.onnx_model`.
    pub fn new(settings: AnalysisSettings) -> Result<Self, ProviderError> {
        let segmenter = match settings.segmenter {
            SegmenterKind::Classic => None,
            SegmenterKind::Onnx => {
                let started = Instant::now();
                let model = OnnxSegmenter::from_settings(&settings)?;
                tracing::info!(
                    model = %settings.onnx_model,
                    input_size = settings.onnx_input_size,
                    load_ms = started.elapsed().as_millis() as u64,
                    "segmentation model loaded"
                );
                Some(Arc::new(model))
            }
        };
        Ok(Self { settings, segmenter })
    }
}

#[async_trait]
impl Analyzer for LocalAnalyzer {
    fn name(&self) -> &'static str {
        "local"
    }

    /// Pixels only: the request's product type, gender, view and text do not
    /// change a local analysis.
    fn uses_context(&self) -> bool {
        false
    }

    /// The settings, and the model file's digest: a new model at the same path
    /// must not reuse the old one's analyses.
    fn cache_id(&self) -> Option<String> {
        let base = format!("local/{}/{:?}", super::VERSION, self.settings);
        Some(match &self.segmenter {
            Some(model) => format!("{base}/{}", model.identity()),
            None => base,
        })
    }

    async fn analyze(&self, input: AnalyzeInput) -> Result<Analyzed, ProviderError> {
        let settings = self.settings.clone();
        let segmenter = self.segmenter.clone();
        cpu::blocking("local analyzer", move || {
            let prior = segmenter.as_deref().map(|s| s as &dyn PriorSource);
            analysis::analyze_with_prior(&input.rgb, input.alpha.as_deref(), &settings, prior)
        })
        .await?
        .map_err(ProviderError::from)
    }
}

//! Local analysis: backdrop separation, palette, exposure and sharpness.

use async_trait::async_trait;
use atelier_core::settings::{AnalysisSettings, SegmenterKind};
use atelier_imaging::analysis::{self, Analyzed};

use crate::{AnalyzeInput, Analyzer, ProviderError, cpu};

/// Analyses photos with `atelier_imaging::analysis` on the blocking pool.
#[derive(Debug, Clone)]
pub struct LocalAnalyzer {
    settings: AnalysisSettings,
}

impl LocalAnalyzer {
    /// An analyzer with the given working resolution and palette size.
    ///
    /// `analysis.segmenter = "onnx"` is not built in yet (docs/segmentation.md):
    /// the classic cut-out runs, and the process says so at start-up.
    pub fn new(settings: AnalysisSettings) -> Self {
        if settings.segmenter == SegmenterKind::Onnx {
            tracing::warn!(
                model = %settings.onnx_model,
                "analysis.segmenter = \"onnx\" is not available in this build; using the classic cut-out"
            );
        }
        Self { settings }
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

    fn cache_id(&self) -> Option<String> {
        Some(format!("local/{}/{:?}", super::VERSION, self.settings))
    }

    async fn analyze(&self, input: AnalyzeInput) -> Result<Analyzed, ProviderError> {
        let settings = self.settings.clone();
        cpu::blocking("local analyzer", move || {
            analysis::analyze(&input.rgb, input.alpha.as_deref(), &settings)
        })
        .await?
        .map_err(ProviderError::from)
    }
}

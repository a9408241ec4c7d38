//! The Gemini analyzer: the local analysis (mask, palette, exposure) always runs,
//! and Gemini's description of the garment enriches it.
//!
//! When Gemini fails, the local result stands: the failure is logged, counted in
//! `atelier_provider_fallbacks_total` and the analysis has no `ai` entry. With
//! `providers.gemini.required = true` the failure fails the analysis instead.

mod client;
mod wire;

pub use client::GeminiClient;

use std::sync::Arc;

use async_trait::async_trait;
use atelier_core::analysis::GarmentDescription;
use atelier_core::settings::{GeminiSettings, Settings};
use atelier_imaging::analysis::Analyzed;
use atelier_imaging::{encode, resize};
use image::RgbImage;

use crate::http::METRIC_FALLBACKS;
use crate::local::LocalAnalyzer;
use crate::{AnalyzeInput, Analyzer, PromptContext, ProviderError, cpu};

/// Local analysis enriched by Gemini.
#[derive(Debug, Clone)]
pub struct GeminiAnalyzer {
    local: LocalAnalyzer,
    client: GeminiClient,
    max_inline_side: u32,
    jpeg_quality: u8,
    required: bool,
}

impl GeminiAnalyzer {
    /// An analyzer from the whole settings (local analysis + `[providers.gemini]`).
    pub fn new(settings: &Settings) -> Result<Self, ProviderError> {
        Self::with_client(settings, GeminiClient::new(&settings.providers.gemini)?)
    }

    /// The same, with Gemini's quota counted by `quota`.
    pub fn with_quota(
        settings: &Settings,
        quota: std::sync::Arc<dyn crate::QuotaGate>,
    ) -> Result<Self, ProviderError> {
        Self::with_client(
            settings,
            GeminiClient::with_quota(&settings.providers.gemini, quota)?,
        )
    }

    fn with_client(settings: &Settings, client: GeminiClient) -> Result<Self, ProviderError> {
        let gemini: &GeminiSettings = &settings.providers.gemini;
        Ok(Self {
            local: LocalAnalyzer::new(settings.analysis.clone())?,
            client,
            max_inline_side: gemini.max_inline_side,
            jpeg_quality: settings.output.jpeg_quality,
            required: gemini.required,
        })
    }

    /// Downscales and encodes the photo, then asks Gemini.
    async fn describe(
        &self,
        rgb: Arc<RgbImage>,
        context: &PromptContext,
    ) -> Result<GarmentDescription, ProviderError> {
        let side = self.max_inline_side;
        let quality = self.jpeg_quality;
        let jpeg = cpu::blocking("gemini encode", move || {
            let (w, h) = resize::fit_within(rgb.width(), rgb.height(), side);
            if (w, h) == rgb.dimensions() {
                encode::jpeg(&rgb, quality)
            } else {
                encode::jpeg(&resize::rgb(&rgb, w, h, resize::Filter::Box)?, quality)
            }
        })
        .await??;
        self.client.describe(&jpeg, context).await
    }
}

#[async_trait]
impl Analyzer for GeminiAnalyzer {
    fn name(&self) -> &'static str {
        "gemini"
    }

    /// The model, its sampling and prompt settings, and the local analysis
    /// it enriches. Answers without Gemini's part (a tolerated failure) are
    /// not cached: the stage skips analyses whose `ai` is missing.
    fn cache_id(&self) -> Option<String> {
        Some(format!(
            "gemini/{}/{:?}/side={}/q={}+{}",
            self.client.model(),
            self.client.sampling(),
            self.max_inline_side,
            self.jpeg_quality,
            self.local.cache_id()?
        ))
    }

    async fn analyze(&self, input: AnalyzeInput) -> Result<Analyzed, ProviderError> {
        let rgb = Arc::clone(&input.rgb);
        let context = input.context.clone();
        // Both at once: the CPU work hides behind the network round trip. A
        // failed local analysis (an unusable photo) drops the Gemini call.
        let (mut analyzed, remote) = tokio::try_join!(self.local.analyze(input), async {
            Ok(self.describe(rgb, &context).await)
        })?;
        match remote {
            Ok(description) => analyzed.analysis.ai = Some(description),
            Err(error) if self.required => return Err(error),
            Err(error) => {
                metrics::counter!(METRIC_FALLBACKS, "provider" => "gemini", "stage" => "analysis", "reason" => error.label())
                    .increment(1);
                tracing::warn!(%error, "gemini analysis failed; the local analysis stands");
            }
        }
        Ok(analyzed)
    }
}

//! The provider traits. Inputs are shared (`Arc`) decoded pixels so a remote client
//! can re-encode what it needs and a local one can work without copies.

use std::sync::Arc;

use async_trait::async_trait;
use atelier_core::analysis::ImageAnalysis;
use atelier_core::output::OutputSpec;
use atelier_core::pipeline::VariationPlan;
use atelier_core::request::{BackgroundKind, Gender, ProductType, UpscaleFactor, View};
use atelier_imaging::analysis::Analyzed;
use image::{GrayImage, RgbImage};

use crate::ProviderError;

/// What a prompt-driven backend needs to know about the request.
#[derive(Debug, Clone, PartialEq)]
pub struct PromptContext {
    pub product_type: ProductType,
    pub gender: Gender,
    pub view: View,
    /// The client's free text, if any.
    pub text: Option<String>,
}

/// One photo to analyse.
#[derive(Debug, Clone)]
pub struct AnalyzeInput {
    /// Upright pixels of the photo.
    pub rgb: Arc<RgbImage>,
    /// Its alpha channel when it has a meaningful one.
    pub alpha: Option<Arc<GrayImage>>,
    pub context: PromptContext,
}

/// One variation to render.
#[derive(Debug, Clone)]
pub struct GenerateInput {
    /// Upright pixels of the source photo.
    pub source: Arc<RgbImage>,
    /// The garment's mask from analysis (may be lower resolution than `source`).
    pub mask: Arc<GrayImage>,
    pub analysis: Arc<ImageAnalysis>,
    pub plan: VariationPlan,
    /// Stable seed for this variation (`pipeline::variation_seed`).
    pub seed: u64,
    /// Canvas size, margin and plain colour the client asked for. A generator
    /// that cannot choose its size may answer another; the stage brings it to
    /// the canvas.
    pub output: OutputSpec,
    pub context: PromptContext,
}

/// Understands a garment photo: where the garment is and what it looks like.
#[async_trait]
pub trait Analyzer: Send + Sync + std::fmt::Debug {
    /// Short name for logs, metrics and reports (`local`, `gemini`).
    fn name(&self) -> &'static str;
    /// What decides this backend's answers for a given photo and context
    /// (provider id, model and version, the settings that shape its output),
    /// so the result cache keys on it and a version bump misses. `None`: its
    /// answers are never cached (the safe default for a backend that cannot say).
    fn cache_id(&self) -> Option<String> {
        None
    }
    /// Whether answers depend on [`AnalyzeInput::context`] (a prompt), so the
    /// cache keys on it too. True unless the backend knows better.
    fn uses_context(&self) -> bool {
        true
    }
    /// Analyses one photo; the mask is always part of the answer.
    async fn analyze(&self, input: AnalyzeInput) -> Result<Analyzed, ProviderError>;
}

/// Renders the garment on a background.
#[async_trait]
pub trait Generator: Send + Sync + std::fmt::Debug {
    /// Short name for logs, metrics and reports (`local`, `replicate`).
    fn name(&self) -> &'static str;
    /// As [`Analyzer::cache_id`]: `None` = renders are never cached.
    fn cache_id(&self) -> Option<String> {
        None
    }
    /// Whether the render of a `background` variation depends on
    /// [`GenerateInput::seed`]; when it does, the seed is part of the cache
    /// key. True unless the backend knows better.
    fn uses_seed(&self, _background: BackgroundKind) -> bool {
        true
    }
    /// Renders one variation.
    async fn generate(&self, input: GenerateInput) -> Result<RgbImage, ProviderError>;
}

/// An enlarged image, and why it did not come from the configured backend when a
/// fallback made it (shown in the result's `fallback`).
#[derive(Debug, Clone)]
pub struct UpscaleOutput {
    pub image: RgbImage,
    pub fallback: Option<String>,
}

/// Enlarges a finished image.
#[async_trait]
pub trait Upscaler: Send + Sync + std::fmt::Debug {
    /// Short name for logs, metrics and reports (`local`, `replicate`).
    fn name(&self) -> &'static str;
    /// As [`Analyzer::cache_id`]: `None` = upscales are never cached. A
    /// fallback's output is never cached either (see [`UpscaleOutput`]).
    fn cache_id(&self) -> Option<String> {
        None
    }
    /// Returns `image` enlarged by `factor`.
    async fn upscale(
        &self,
        image: Arc<RgbImage>,
        factor: UpscaleFactor,
    ) -> Result<UpscaleOutput, ProviderError>;
}

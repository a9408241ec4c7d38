//! The AI seams of the pipeline: [`Analyzer`], [`Generator`] and [`Upscaler`].
//!
//! Stages hold them as trait objects, so a remote backend plugs in by
//! configuration without touching stage code. The local implementations in
//! [`local`] do real image work on the CPU and are the default and the fallback;
//! [`gemini`] enriches the analysis and [`replicate`] generates and upscales
//! through hosted models, over the shared client plumbing in [`http`].

pub mod cpu;
mod error;
pub mod gemini;
pub mod http;
pub mod local;
pub mod replicate;
mod traits;

pub use error::{ProviderError, RemoteKind};
pub use http::{LocalQuota, QuotaGate};
pub use traits::{AnalyzeInput, Analyzer, GenerateInput, Generator, PromptContext, UpscaleOutput, Upscaler};

use std::sync::Arc;

use atelier_core::settings::{AnalyzerKind, GeneratorKind, Settings, UpscalerKind};

/// The three providers a pipeline runs with.
#[derive(Debug, Clone)]
pub struct Providers {
    pub analyzer: Arc<dyn Analyzer>,
    pub generator: Arc<dyn Generator>,
    pub upscaler: Arc<dyn Upscaler>,
}

impl Providers {
    /// The local, on-CPU providers configured from `settings`.
    pub fn local(settings: &Settings) -> Result<Self, ProviderError> {
        Ok(Self {
            analyzer: Arc::new(local::LocalAnalyzer::new(settings.analysis.clone())?),
            generator: Arc::new(local::LocalGenerator::new(settings.generation.clone())),
            upscaler: Arc::new(local_upscaler(settings)?),
        })
    }

    /// The providers `settings.providers` selects. A remote provider without a
    /// key is an error here, at start-up, rather than in the middle of a job.
    pub fn from_settings(settings: &Settings) -> Result<Self, ProviderError> {
        Self::from_settings_with_quotas(settings, None)
    }

    /// Whether any remote (quota-limited) backend is switched on.
    pub fn any_remote(settings: &Settings) -> bool {
        let p = &settings.providers;
        p.analyzer == AnalyzerKind::Gemini
            || p.generator == GeneratorKind::Replicate
            || p.upscaler == UpscalerKind::Replicate
    }

    /// The providers, with the vendors' quotas counted by `quota` (shared by a
    /// fleet of workers) instead of in this process, when given.
    pub fn from_settings_with_quotas(
        settings: &Settings,
        quota: Option<Arc<dyn QuotaGate>>,
    ) -> Result<Self, ProviderError> {
        let p = &settings.providers;
        let mut providers = Self::local(settings)?;
        if p.analyzer == AnalyzerKind::Gemini {
            providers.analyzer = Arc::new(match &quota {
                Some(q) => gemini::GeminiAnalyzer::with_quota(settings, q.clone())?,
                None => gemini::GeminiAnalyzer::new(settings)?,
            });
        }
        let wants_replicate =
            p.generator == GeneratorKind::Replicate || p.upscaler == UpscalerKind::Replicate;
        if wants_replicate {
            let client = match &quota {
                Some(q) => replicate::ReplicateClient::with_quota(&p.replicate, q.clone())?,
                None => replicate::ReplicateClient::new(&p.replicate)?,
            };
            if p.generator == GeneratorKind::Replicate {
                providers.generator = Arc::new(replicate::ReplicateGenerator::new(client.clone(), settings)?);
            }
            if p.upscaler == UpscalerKind::Replicate {
                let local: Arc<dyn Upscaler> = Arc::clone(&providers.upscaler);
                providers.upscaler = Arc::new(replicate::ReplicateUpscaler::new(client, settings, local)?);
            }
        }
        tracing::info!(
            analyzer = providers.analyzer.name(),
            generator = providers.generator.name(),
            upscaler = providers.upscaler.name(),
            "providers selected"
        );
        Ok(providers)
    }
}

fn local_upscaler(settings: &Settings) -> Result<local::LocalUpscaler, ProviderError> {
    local::LocalUpscaler::new(settings.upscaler_threads(), settings.upscaler.sharpen)
}

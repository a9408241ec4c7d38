//! The AI seams of the pipeline: [`Analyzer`], [`Generator`] and [`Upscaler`].
//!
//! Stages hold them as trait objects, so a remote backend (Gemini, Replicate)
//! plugs in by configuration without touching stage code. The local
//! implementations in [`local`] do real image work on the CPU and are the default
//! and the fallback.

pub mod cpu;
mod error;
pub mod local;
mod traits;

pub use error::ProviderError;
pub use traits::{AnalyzeInput, Analyzer, GenerateInput, Generator, PromptContext, Upscaler};

use std::sync::Arc;

use atelier_core::settings::Settings;

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
            analyzer: Arc::new(local::LocalAnalyzer::new(settings.analysis.clone())),
            generator: Arc::new(local::LocalGenerator::new(settings.generation.clone())),
            upscaler: Arc::new(local::LocalUpscaler::new(
                settings.upscaler_threads(),
                settings.upscaler.sharpen,
            )?),
        })
    }
}

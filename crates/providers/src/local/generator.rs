//! Local generation: the garment cut out and composited on white, plain and
//! procedural scene backgrounds.

use async_trait::async_trait;
use atelier_core::request::BackgroundKind;
use atelier_core::settings::GenerationSettings;
use atelier_imaging::generate::{self, Background};
use image::RgbImage;

use crate::{GenerateInput, Generator, ProviderError, cpu};

/// Renders variations with `atelier_imaging::generate` on the blocking pool.
#[derive(Debug, Clone)]
pub struct LocalGenerator {
    settings: GenerationSettings,
}

impl LocalGenerator {
    /// A generator rendering onto the configured canvas.
    pub fn new(settings: GenerationSettings) -> Self {
        Self { settings }
    }
}

#[async_trait]
impl Generator for LocalGenerator {
    fn name(&self) -> &'static str {
        "local"
    }

    fn cache_id(&self) -> Option<String> {
        Some(format!("local/{}/{:?}", super::VERSION, self.settings))
    }

    /// Only scenes are seeded: white and plain backgrounds are the same for
    /// every seed, so they are shared across jobs.
    fn uses_seed(&self, background: BackgroundKind) -> bool {
        background == BackgroundKind::Random
    }

    async fn generate(&self, input: GenerateInput) -> Result<RgbImage, ProviderError> {
        let background = match input.plan.background {
            BackgroundKind::White => Background::White,
            BackgroundKind::Plain => match input.output.background {
                Some(rgb) => Background::Color(rgb),
                None => Background::Plain {
                    ordinal: input.plan.ordinal,
                },
            },
            BackgroundKind::Random => Background::Random { seed: input.seed },
        };
        let settings = GenerationSettings {
            canvas_width: input.output.width,
            canvas_height: input.output.height,
            padding: input.output.margin,
            ..self.settings.clone()
        };
        cpu::blocking("local generator", move || {
            generate::render(&input.source, &input.mask, &input.analysis, background, &settings)
        })
        .await?
        .map_err(ProviderError::from)
    }
}

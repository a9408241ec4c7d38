//! Generation through a Replicate model: the source photo (and optionally the
//! mask) plus a prompt built from the analysis and the request.

use async_trait::async_trait;
use atelier_core::settings::{DecodeLimits, ReplicateModel, Settings};
use atelier_imaging::{decode, encode};
use image::RgbImage;
use serde_json::{Map, Value};

use super::client::ReplicateClient;
use super::prompt::generation_prompt;
use super::{extra_input, set_field};
use crate::{GenerateInput, Generator, ProviderError, cpu};

/// Seeds are sent modulo this: Replicate models take a 32-bit signed seed.
const SEED_MODULUS: u64 = 1 << 31;

/// Renders variations with a Replicate model.
#[derive(Debug, Clone)]
pub struct ReplicateGenerator {
    client: ReplicateClient,
    model: ReplicateModel,
    extra: Map<String, Value>,
    limits: DecodeLimits,
    jpeg_quality: u8,
}

impl ReplicateGenerator {
    /// A generator over a shared client, from `[providers.replicate.generator]`.
    pub fn new(client: ReplicateClient, settings: &Settings) -> Result<Self, ProviderError> {
        let model = settings.providers.replicate.generator.clone();
        Ok(Self {
            extra: extra_input(&model)?,
            client,
            model,
            limits: settings.limits.clone(),
            jpeg_quality: settings.output.jpeg_quality,
        })
    }
}

#[async_trait]
impl Generator for ReplicateGenerator {
    fn name(&self) -> &'static str {
        "replicate"
    }

    /// Model, version and every input mapping (a new version misses).
    fn cache_id(&self) -> Option<String> {
        Some(format!("replicate/{:?}/q={}", self.model, self.jpeg_quality))
    }

    async fn generate(&self, input: GenerateInput) -> Result<RgbImage, ProviderError> {
        let m = &self.model;
        let quality = self.jpeg_quality;
        let source = std::sync::Arc::clone(&input.source);
        let mask = std::sync::Arc::clone(&input.mask);
        let want_mask = !m.mask_field.is_empty();
        let (jpeg, png) = cpu::blocking("replicate encode", move || {
            let jpeg = encode::jpeg(&source, quality)?;
            let png = if want_mask {
                Some(encode::png_gray(&mask)?)
            } else {
                None
            };
            Ok::<_, atelier_imaging::ImagingError>((jpeg, png))
        })
        .await??;

        let mut fields = self.extra.clone();
        let image = self.client.file_input(&m.model, jpeg, "image/jpeg").await?;
        set_field(&mut fields, &m.image_field, Value::String(image));
        if let Some(png) = png {
            let mask = self.client.file_input(&m.model, png, "image/png").await?;
            set_field(&mut fields, &m.mask_field, Value::String(mask));
        }
        set_field(
            &mut fields,
            &m.prompt_field,
            Value::String(generation_prompt(&input)),
        );
        set_field(
            &mut fields,
            &m.negative_prompt_field,
            Value::String(m.negative_prompt.clone()),
        );
        set_field(&mut fields, &m.seed_field, Value::from(input.seed % SEED_MODULUS));

        let bytes = self.client.run(m, fields).await?;
        let limits = self.limits.clone();
        let decoded = cpu::blocking("replicate decode", move || decode::decode(&bytes, &limits)).await??;
        Ok(decoded.rgb)
    }
}

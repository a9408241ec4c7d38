//! Upscaling through a Replicate model (Real-ESRGAN style), falling back to the
//! local upscaler when the remote one fails or runs out of time, and saying so.

use std::sync::Arc;

use async_trait::async_trait;
use atelier_core::request::UpscaleFactor;
use atelier_core::settings::{DecodeLimits, ReplicateModel, Settings};
use atelier_imaging::{decode, encode};
use image::RgbImage;
use serde_json::{Map, Value};

use super::client::{PROVIDER, ReplicateClient};
use super::{extra_input, set_field};
use crate::http::METRIC_FALLBACKS;
use crate::{ProviderError, RemoteKind, UpscaleOutput, Upscaler, cpu};

/// Remote upscaling with the local upscaler as the fallback.
#[derive(Debug)]
pub struct ReplicateUpscaler {
    client: ReplicateClient,
    model: ReplicateModel,
    extra: Map<String, Value>,
    limits: DecodeLimits,
    jpeg_quality: u8,
    /// Runs when the remote upscale fails (the local upscaler in production).
    fallback: Arc<dyn Upscaler>,
}

impl ReplicateUpscaler {
    /// An upscaler over a shared client, from `[providers.replicate.upscaler]`.
    pub fn new(
        client: ReplicateClient,
        settings: &Settings,
        fallback: Arc<dyn Upscaler>,
    ) -> Result<Self, ProviderError> {
        let model = settings.providers.replicate.upscaler.clone();
        Ok(Self {
            extra: extra_input(&model)?,
            client,
            model,
            limits: settings.limits.clone(),
            jpeg_quality: settings.output.jpeg_quality,
            fallback,
        })
    }

    async fn remote(&self, image: Arc<RgbImage>, factor: UpscaleFactor) -> Result<RgbImage, ProviderError> {
        let m = &self.model;
        let (w, h) = image.dimensions();
        let quality = self.jpeg_quality;
        let jpeg = cpu::blocking("replicate encode", move || encode::jpeg(&image, quality)).await??;
        let mut fields = self.extra.clone();
        let url = self.client.file_input(&m.model, jpeg, "image/jpeg").await?;
        set_field(&mut fields, &m.image_field, Value::String(url));
        set_field(&mut fields, &m.scale_field, Value::from(factor.get()));
        let bytes = self.client.run(m, fields).await?;
        let limits = self.limits.clone();
        let out = cpu::blocking("replicate decode", move || decode::decode(&bytes, &limits))
            .await??
            .rgb;
        let want = (w * factor.get(), h * factor.get());
        if out.dimensions() != want {
            return Err(ProviderError::remote(
                PROVIDER,
                RemoteKind::InvalidResponse,
                None,
                format!(
                    "output is {:?}, expected {want:?} for x{}",
                    out.dimensions(),
                    factor.get()
                ),
            ));
        }
        Ok(out)
    }
}

#[async_trait]
impl Upscaler for ReplicateUpscaler {
    fn name(&self) -> &'static str {
        "replicate"
    }

    /// Model, version and input mapping; the fallback's output says so and
    /// is not cached.
    fn cache_id(&self) -> Option<String> {
        Some(format!("replicate/{:?}/q={}", self.model, self.jpeg_quality))
    }

    async fn upscale(
        &self,
        image: Arc<RgbImage>,
        factor: UpscaleFactor,
    ) -> Result<UpscaleOutput, ProviderError> {
        let remote = match self.remote(Arc::clone(&image), factor).await {
            Ok(image) => {
                return Ok(UpscaleOutput {
                    image,
                    fallback: None,
                });
            }
            Err(error) => error,
        };
        metrics::counter!(METRIC_FALLBACKS, "provider" => PROVIDER, "stage" => "upscaling", "reason" => remote.label())
            .increment(1);
        tracing::warn!(error = %remote, fallback = self.fallback.name(), "replicate upscale failed; upscaling locally");
        match self.fallback.upscale(image, factor).await {
            Ok(local) => Ok(UpscaleOutput {
                image: local.image,
                fallback: Some(format!(
                    "replicate failed: {remote}; upscaled {}",
                    self.fallback_word()
                )),
            }),
            Err(local) => Err(ProviderError::Fallback {
                remote: Box::new(remote),
                local: Box::new(local),
            }),
        }
    }
}

impl ReplicateUpscaler {
    fn fallback_word(&self) -> String {
        match self.fallback.name() {
            "local" => "locally".to_string(),
            other => format!("with {other}"),
        }
    }
}

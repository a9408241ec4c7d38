//! Local upscaling: SIMD Lanczos3 and a mild unsharp mask on a bounded CPU pool.

use std::sync::Arc;

use async_trait::async_trait;
use atelier_core::request::UpscaleFactor;
use atelier_imaging::upscale;
use image::RgbImage;

use crate::cpu::CpuPool;
use crate::{ProviderError, UpscaleOutput, Upscaler};

/// Upscales on its own rayon pool of `upscaler.max_workers` threads, so a job
/// with many images cannot starve the rest of the process.
#[derive(Debug, Clone)]
pub struct LocalUpscaler {
    pool: CpuPool,
    sharpen: f32,
}

impl LocalUpscaler {
    /// An upscaler with `threads` CPU workers and the given sharpening strength.
    pub fn new(threads: usize, sharpen: f32) -> Result<Self, ProviderError> {
        Ok(Self {
            pool: CpuPool::new("upscale", threads)?,
            sharpen,
        })
    }
}

#[async_trait]
impl Upscaler for LocalUpscaler {
    fn name(&self) -> &'static str {
        "local"
    }

    fn cache_id(&self) -> Option<String> {
        // "+border": a flat backdrop is filled instead of resampled, which can
        // round a level apart from the whole-image path (`upscale::upscale`).
        Some(format!(
            "local/{}+border/sharpen={:?}",
            super::VERSION,
            self.sharpen
        ))
    }

    async fn upscale(
        &self,
        image: Arc<RgbImage>,
        factor: UpscaleFactor,
    ) -> Result<UpscaleOutput, ProviderError> {
        let sharpen = self.sharpen;
        let image = self
            .pool
            .run("local upscaler", move || {
                upscale::upscale(&image, factor.get(), sharpen)
            })
            .await??;
        Ok(UpscaleOutput {
            image,
            fallback: None,
        })
    }
}

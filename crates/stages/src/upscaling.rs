//! Stage 3: upscale every variation, keeping the original when upscaling fails
//! (the old service's fallback), and saying so in the result. A remote upscaler
//! may itself fall back to the local one; its reason is reported the same way.

use std::sync::Arc;
use std::time::Instant;

use atelier_core::job::JobSpec;
use atelier_core::keys;
use atelier_core::output::OutputSpec;
use atelier_core::pipeline::{Stage, Upscaled, Variation};
use atelier_core::request::UpscaleFactor;
use atelier_imaging::encode::{self, Pixels};
use atelier_imaging::upscale;
use atelier_storage::JobBlobs;
use bytes::Bytes;
use futures::future::try_join_all;
use serde::{Deserialize, Serialize};

use crate::cache::key::{content_hash, output_request};
use crate::cache::{CacheKey, KeyBuilder, Lookup, Made};
use crate::load::{self, blocking};
use crate::{Progress, StageContext, StageError, Timed};

/// Upscales every variation when the request asks for it; does nothing otherwise.
pub async fn run(
    ctx: &StageContext,
    blobs: &JobBlobs,
    spec: &JobSpec,
    variations: &[Variation],
    bypass_cache: bool,
    progress: &dyn Progress,
) -> Result<Timed<Vec<Upscaled>>, StageError> {
    let started = Instant::now();
    let Some(factor) = spec.request.effective_upscale() else {
        progress.stage_started(Stage::Upscaling, 0);
        return Ok(Timed::since(started, 0.0, Vec::new()));
    };
    let output = spec
        .request
        .output_spec(&ctx.settings)
        .map_err(|e| StageError::State(format!("the request's output no longer fits the settings: {e}")))?;
    progress.stage_started(Stage::Upscaling, variations.len());
    let requested = output_request(&spec.request);
    let upscaled = try_join_all(variations.iter().map(|variation| {
        let requested = &requested;
        async move {
            let out = upscale_one(ctx, blobs, variation, factor, output, requested, bypass_cache).await?;
            progress.item_done(Stage::Upscaling);
            Ok::<_, StageError>(out)
        }
    }))
    .await?;
    let (upscaled, hits): (Vec<_>, Vec<_>) = upscaled.into_iter().unzip();
    Ok(Timed::since(started, blobs.write_seconds(), upscaled).reusing(hits))
}

/// What the cache keeps of an upscale besides its image.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
struct Enlarged {
    factor: u32,
    width: u32,
    height: u32,
}

/// The upscaling cache key: the variation's content, the factor, the
/// upscaler's identity and version, and the encoding (the resolved output,
/// settings included, and the request's `output` choices).
fn key(
    ctx: &StageContext,
    variation_hash: &str,
    factor: UpscaleFactor,
    output: &OutputSpec,
    requested: &str,
) -> Option<CacheKey> {
    Some(
        KeyBuilder::new(Stage::Upscaling)
            .part("variation", variation_hash)
            .part("factor", factor.get().to_string())
            .part("upscaler", ctx.providers.upscaler.cache_id()?)
            .part("encoding", format!("{:?}/{}", output.format, output.quality))
            .part("output", requested)
            .finish(),
    )
}

/// Upscales one variation, or reuses the upscale of an identical image.
async fn upscale_one(
    ctx: &StageContext,
    blobs: &JobBlobs,
    variation: &Variation,
    factor: UpscaleFactor,
    output: OutputSpec,
    requested: &str,
    bypass: bool,
) -> Result<(Upscaled, bool), StageError> {
    let started = Instant::now();
    // The variation's own extension: the format it was stored in.
    let ext = variation
        .key
        .rsplit_once('.')
        .map_or(output.format.extension(), |(_, ext)| ext);
    let key = keys::upscaled(variation.plan.index, ext);
    let bytes = blobs.get(&variation.key).await?;
    let cache_key = if ctx.cache.enabled() {
        self::key(
            ctx,
            &content_hash(bytes.clone()).await?,
            factor,
            &output,
            requested,
        )
    } else {
        None
    };
    let lookup = Lookup {
        key: cache_key.as_ref(),
        target: &key,
        ext,
        bypass,
    };
    let mut fallback = None;
    let reason_slot = &mut fallback;
    let (enlarged, hit) = ctx
        .cache
        .reuse_or_make(blobs, lookup, move || async move {
            let (enlarged, reason) =
                enlarge(ctx, blobs, variation, factor, output, bytes, lookup.target).await?;
            let reusable = reason.is_none();
            *reason_slot = reason;
            Ok(Made {
                meta: enlarged,
                reusable,
            })
        })
        .await?;
    Ok((
        Upscaled {
            variation: variation.plan.index,
            key,
            factor: enlarged.factor,
            width: enlarged.width,
            height: enlarged.height,
            fallback,
            seconds: started.elapsed().as_secs_f64(),
        },
        hit,
    ))
}

/// Upscales one variation's `bytes` and stores the result under `key`; the
/// reason when a fallback made it or the original was kept.
async fn enlarge(
    ctx: &StageContext,
    blobs: &JobBlobs,
    variation: &Variation,
    factor: UpscaleFactor,
    output: OutputSpec,
    bytes: Bytes,
    key: &str,
) -> Result<(Enlarged, Option<String>), StageError> {
    let _slot = ctx
        .upscale_slots
        .acquire()
        .await
        .map_err(|_| StageError::Task("upscale semaphore closed".into()))?;
    let decoded = load::decode_bytes(ctx, bytes.clone()).await?;
    // Upscalers enlarge colour; a cut-out's alpha is enlarged here, to the
    // colour's size, and joined again so the upscale keeps its transparency.
    let alpha = decoded.alpha;
    let original = Arc::new(decoded.rgb);
    match ctx
        .providers
        .upscaler
        .upscale(Arc::clone(&original), factor)
        .await
    {
        Ok(out) => {
            let image = out.image;
            if let Some(reason) = &out.fallback {
                tracing::warn!(variation = variation.plan.index, %reason, "upscaled by the fallback");
            }
            let (width, height) = image.dimensions();
            let (format, quality) = (output.format, output.quality);
            let encoded = blocking("encode upscale", move || {
                let pixels = match alpha {
                    None => Pixels::Rgb(image),
                    Some(alpha) => {
                        let alpha = upscale::alpha(&alpha, width, height)?;
                        let mut rgba = image::RgbaImage::new(width, height);
                        for ((o, c), a) in rgba.pixels_mut().zip(image.pixels()).zip(alpha.iter()) {
                            o.0 = [c.0[0], c.0[1], c.0[2], *a];
                        }
                        Pixels::Rgba(rgba)
                    }
                };
                encode::encode(&pixels, format, quality)
            })
            .await??;
            blobs.put(key, encoded).await?;
            let enlarged = Enlarged {
                factor: factor.get(),
                width,
                height,
            };
            Ok((enlarged, out.fallback))
        }
        Err(error) => {
            let reason = format!("upscaling failed, original kept: {error}");
            tracing::warn!(variation = variation.plan.index, %error, "upscaling failed; keeping the original");
            blobs.put(key, bytes).await?;
            let kept = Enlarged {
                factor: 1,
                width: variation.width,
                height: variation.height,
            };
            Ok((kept, Some(reason)))
        }
    }
}

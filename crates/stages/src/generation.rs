//! Stage 2: render every requested variation onto its background.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Instant;

use atelier_core::job::JobSpec;
use atelier_core::keys;
use atelier_core::pipeline::{AnalysisOutput, Stage, Variation, VariationPlan, plan_variations};
use atelier_imaging::encode;
use atelier_providers::{GenerateInput, PromptContext};
use atelier_storage::JobBlobs;
use bytes::Bytes;
use futures::future::try_join_all;
use image::{GrayImage, RgbImage};
use serde::{Deserialize, Serialize};
use tokio::sync::OnceCell;

use crate::cache::key::{content_hash, pixel_request};
use crate::cache::{CacheKey, KeyBuilder, Lookup, Made};
use crate::load::{self, blocking};
use crate::{Progress, StageContext, StageError, Timed};

/// Renders every variation of `spec`, at most `max_concurrent_generations` at a
/// time across the process, and stores each as a JPEG; a variation rendered
/// before for the same photo, analysis and parameters is reused instead.
pub async fn run(
    ctx: &StageContext,
    blobs: &JobBlobs,
    spec: &JobSpec,
    analyses: &[AnalysisOutput],
    bypass_cache: bool,
    progress: &dyn Progress,
) -> Result<Timed<Vec<Variation>>, StageError> {
    let started = Instant::now();
    let plans = plan_variations(&spec.request);
    progress.stage_started(Stage::Generation, plans.len());

    // Read each source photo and mask once, shared by all its variations;
    // decoded only when one of them is not in the cache.
    let needed: BTreeSet<usize> = plans.iter().map(|p| p.input).collect();
    let sources = try_join_all(
        needed
            .iter()
            .map(|&input| load_source(ctx, blobs, spec, analyses, input)),
    )
    .await?;
    let sources: BTreeMap<usize, Source> = sources.into_iter().collect();
    let request = pixel_request(&spec.request);

    let variations = try_join_all(plans.iter().map(|plan| {
        let source = sources.get(&plan.input);
        let request = &request;
        async move {
            let source =
                source.ok_or_else(|| StageError::State(format!("no source for input {}", plan.input)))?;
            let variation = render_one(ctx, blobs, spec, request, source, *plan, bypass_cache).await?;
            progress.item_done(Stage::Generation);
            Ok::<_, StageError>(variation)
        }
    }))
    .await?;
    let (variations, hits): (Vec<_>, Vec<_>) = variations.into_iter().unzip();
    Ok(Timed::since(started, blobs.write_seconds(), variations).reusing(hits))
}

/// One source photo: its bytes and mask read, their hashes for the cache
/// key, the pixels decoded on first need.
struct Source {
    input: Bytes,
    mask: Bytes,
    /// Content hashes of the input and the mask (empty with the cache off).
    input_hash: String,
    mask_hash: String,
    analysis: Arc<atelier_core::analysis::ImageAnalysis>,
    decoded: OnceCell<(Arc<RgbImage>, Arc<GrayImage>)>,
}

impl Source {
    /// The decoded photo and mask, decoded by the first variation that needs them.
    async fn pixels(&self, ctx: &StageContext) -> Result<&(Arc<RgbImage>, Arc<GrayImage>), StageError> {
        self.decoded
            .get_or_try_init(|| async {
                let (decoded, mask) = tokio::try_join!(
                    load::decode_bytes(ctx, self.input.clone()),
                    load::decode_mask(self.mask.clone())
                )?;
                Ok::<_, StageError>((Arc::new(decoded.rgb), mask))
            })
            .await
    }
}

async fn load_source(
    ctx: &StageContext,
    blobs: &JobBlobs,
    spec: &JobSpec,
    analyses: &[AnalysisOutput],
    input: usize,
) -> Result<(usize, Source), StageError> {
    let analysis = analyses
        .iter()
        .find(|a| a.input == input)
        .ok_or_else(|| StageError::State(format!("input {input} has no analysis")))?;
    let stored = spec
        .inputs
        .get(input)
        .ok_or_else(|| StageError::State(format!("no stored input {input}")))?;
    let (photo, mask) = tokio::try_join!(blobs.get(&stored.key), blobs.get(&analysis.mask_key))?;
    let (input_hash, mask_hash) = if ctx.cache.enabled() {
        tokio::try_join!(content_hash(photo.clone()), content_hash(mask.clone()))?
    } else {
        Default::default()
    };
    Ok((
        input,
        Source {
            input: photo,
            mask,
            input_hash,
            mask_hash,
            analysis: Arc::new(analysis.analysis.clone()),
            decoded: OnceCell::new(),
        },
    ))
}

/// What the cache keeps of a variation besides its JPEG.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
struct Rendered {
    width: u32,
    height: u32,
}

/// The generation cache key of one variation: the photo's and mask's content,
/// the analysis, the plan's view, background and ordinal, the seed where the
/// generator uses it, the generator's identity and version, the JPEG quality,
/// and the request minus what does not change pixels.
fn key(
    ctx: &StageContext,
    spec: &JobSpec,
    request: &str,
    source: &Source,
    plan: VariationPlan,
    seed: u64,
) -> Option<CacheKey> {
    let generator = &ctx.providers.generator;
    // What decided the analysis (the photo, the analyzer and its settings)
    // rather than its JSON: floats that went through the stage messages do
    // not print the same as those read back from the cache.
    let context = PromptContext {
        product_type: spec.request.product_type,
        gender: spec.request.gender,
        view: plan.view,
        text: spec.request.text.clone(),
    };
    let analysis = match crate::analysis::key(ctx, &source.input_hash, &context) {
        Some(key) => key.digest().to_string(),
        None => serde_json::to_string(&*source.analysis).ok()?,
    };
    let mut key = KeyBuilder::new(Stage::Generation)
        .part("input", &source.input_hash)
        .part("mask", &source.mask_hash)
        .part("analysis", analysis)
        .part("view", plan.view.as_str())
        .part("background", plan.background.as_str())
        .part("ordinal", plan.ordinal.to_string())
        .part("generator", generator.cache_id()?)
        .part("jpeg_quality", ctx.settings.output.jpeg_quality.to_string())
        .part("request", request);
    if generator.uses_seed(plan.background) {
        key = key.part("seed", seed.to_string());
    }
    Some(key.finish())
}

async fn render_one(
    ctx: &StageContext,
    blobs: &JobBlobs,
    spec: &JobSpec,
    request: &str,
    source: &Source,
    plan: VariationPlan,
    bypass: bool,
) -> Result<(Variation, bool), StageError> {
    let started = Instant::now();
    let seed = spec.id.seed(plan.index as u64);
    let cache_key = if ctx.cache.enabled() {
        key(ctx, spec, request, source, plan, seed)
    } else {
        None
    };
    let key = keys::variation(plan.index);
    let lookup = Lookup {
        key: cache_key.as_ref(),
        target: &key,
        ext: "jpg",
        bypass,
    };
    let (rendered, hit) = ctx
        .cache
        .reuse_or_make(blobs, lookup, move || async move {
            let rendered = render(ctx, blobs, spec, source, plan, seed, lookup.target).await?;
            Ok(Made::reusable(rendered))
        })
        .await?;
    Ok((
        Variation {
            plan,
            key,
            width: rendered.width,
            height: rendered.height,
            seconds: started.elapsed().as_secs_f64(),
        },
        hit,
    ))
}

/// Renders one variation and stores it as a JPEG under `key`.
async fn render(
    ctx: &StageContext,
    blobs: &JobBlobs,
    spec: &JobSpec,
    source: &Source,
    plan: VariationPlan,
    seed: u64,
    key: &str,
) -> Result<Rendered, StageError> {
    let (rgb, mask) = source.pixels(ctx).await?;
    let input = GenerateInput {
        source: Arc::clone(rgb),
        mask: Arc::clone(mask),
        analysis: Arc::clone(&source.analysis),
        plan,
        seed,
        context: PromptContext {
            product_type: spec.request.product_type,
            gender: spec.request.gender,
            view: plan.view,
            text: spec.request.text.clone(),
        },
    };
    let image = {
        let _slot = ctx
            .generation_slots
            .acquire()
            .await
            .map_err(|_| StageError::Task("generation semaphore closed".into()))?;
        ctx.providers
            .generator
            .generate(input)
            .await
            .map_err(|error| StageError::Provider {
                stage: "generation",
                error,
            })?
    };
    let (width, height) = image.dimensions();
    let quality = ctx.settings.output.jpeg_quality;
    let jpeg = blocking("encode variation", move || encode::jpeg(&image, quality)).await??;
    blobs.put(key, jpeg).await?;
    Ok(Rendered { width, height })
}

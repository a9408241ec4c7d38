//! Stage 2: render every requested variation onto its background.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Instant;

use atelier_core::job::JobSpec;
use atelier_core::keys;
use atelier_core::output::OutputSpec;
use atelier_core::pipeline::{
    AnalysisOutput, Stage, Variation, VariationPlan, plan_variations, variation_seed,
};
use atelier_core::request::BackgroundKind;
use atelier_core::settings::{GenerationSettings, GeneratorKind};
use atelier_imaging::encode::{self, Pixels};
use atelier_imaging::{generate, resize};
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
/// time across the process, and stores each in the request's output format
/// (JPEG by default) on its canvas; a variation rendered before for the same
/// photo, analysis and parameters is reused instead.
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
    // The gateway resolved the same request at intake; failing here means the
    // settings changed in between, and retrying will not help.
    let output = spec
        .request
        .output_spec(&ctx.settings)
        .map_err(|e| StageError::State(format!("the request's output no longer fits the settings: {e}")))?;
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
            let variation =
                render_one(ctx, blobs, spec, request, source, *plan, output, bypass_cache).await?;
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
    ///
    /// For the local generator, which only ever shrinks a large photo onto the
    /// canvas, a JPEG is decoded reduced to the size the placement needs
    /// (`generate::placement_scale`, rounded up to libjpeg's eighths): the
    /// 24-megapixel photo of issue 13 decodes at 3/8, a seventh of the pixels,
    /// in a fraction of the time. Remote generators get the photo in full.
    async fn pixels(
        &self,
        ctx: &StageContext,
        output: &OutputSpec,
    ) -> Result<&(Arc<RgbImage>, Arc<GrayImage>), StageError> {
        let scale = reduces_source(ctx)
            .then(|| {
                let settings = GenerationSettings {
                    canvas_width: output.width,
                    canvas_height: output.height,
                    padding: output.margin,
                    ..ctx.settings.generation.clone()
                };
                generate::placement_scale(&self.analysis, &settings)
            })
            .flatten();
        let (aw, ah) = (self.analysis.width, self.analysis.height);
        // The scale is per pixel of the analysed photo; the decode's fraction is
        // of the stored one (the same size, unless something resized between).
        let fraction = move |probe: &atelier_imaging::decode::Probe| {
            scale.map_or(1.0, |scale| {
                let kx = f64::from(aw) / f64::from(probe.width.max(1));
                let ky = f64::from(ah) / f64::from(probe.height.max(1));
                scale * kx.max(ky)
            })
        };
        self.decoded
            .get_or_try_init(|| async {
                let (decoded, mask) = tokio::try_join!(
                    load::decode_reduced(ctx, self.input.clone(), fraction),
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

/// What the cache keeps of a variation besides its image.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
struct Rendered {
    width: u32,
    height: u32,
}

/// The generation cache key of one variation: the photo's and mask's content,
/// the analysis, the plan's view, background and ordinal, the seed where the
/// generator uses it, the generator's identity and version, the resolved
/// output (format, quality, canvas, margin, colour, alpha: settings included),
/// and the request minus what does not change pixels.
fn key(
    ctx: &StageContext,
    spec: &JobSpec,
    request: &str,
    source: &Source,
    plan: VariationPlan,
    seed: u64,
    output: &OutputSpec,
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
        // The local generator's source is decoded reduced (`Source::pixels`),
        // which changes its pixels slightly from a full decode.
        .part(
            "source",
            if reduces_source(ctx) {
                "reduced-to-placement"
            } else {
                "full"
            },
        )
        .part("output", format!("{output:?}"))
        .part("request", request);
    if !output.transparent && generator.uses_seed(plan.background) {
        key = key.part("seed", seed.to_string());
    }
    Some(key.finish())
}

/// Whether the source photo is decoded reduced to the placement's scale: for
/// the local generator, which only ever shrinks it (see `Source::pixels`).
fn reduces_source(ctx: &StageContext) -> bool {
    ctx.settings.providers.generator == GeneratorKind::Local
}

#[allow(clippy::too_many_arguments)] // one variation's whole context, passed once
async fn render_one(
    ctx: &StageContext,
    blobs: &JobBlobs,
    spec: &JobSpec,
    request: &str,
    source: &Source,
    plan: VariationPlan,
    output: OutputSpec,
    bypass: bool,
) -> Result<(Variation, bool), StageError> {
    let started = Instant::now();
    let seed = variation_seed(&spec.id, spec.request.seed, &plan);
    let cache_key = if ctx.cache.enabled() {
        key(ctx, spec, request, source, plan, seed, &output)
    } else {
        None
    };
    let key = keys::variation(plan.index, output.format.extension());
    let lookup = Lookup {
        key: cache_key.as_ref(),
        target: &key,
        ext: output.format.extension(),
        bypass,
    };
    let (rendered, hit) = ctx
        .cache
        .reuse_or_make(blobs, lookup, move || async move {
            let rendered = render(ctx, blobs, spec, source, plan, seed, output, lookup.target).await?;
            Ok(Made::reusable(rendered))
        })
        .await?;
    Ok((
        Variation {
            plan,
            seed: (plan.background == BackgroundKind::Random && !output.transparent).then_some(seed),
            key,
            width: rendered.width,
            height: rendered.height,
            seconds: started.elapsed().as_secs_f64(),
        },
        hit,
    ))
}

/// Renders one variation on its canvas and stores it, in the output's
/// format, under `key`.
#[allow(clippy::too_many_arguments)] // one variation's whole context, passed once
async fn render(
    ctx: &StageContext,
    blobs: &JobBlobs,
    spec: &JobSpec,
    source: &Source,
    plan: VariationPlan,
    seed: u64,
    output: OutputSpec,
    key: &str,
) -> Result<Rendered, StageError> {
    let (rgb, mask) = source.pixels(ctx, &output).await?;
    let pixels = {
        let _slot = ctx
            .generation_slots
            .acquire()
            .await
            .map_err(|_| StageError::Task("generation semaphore closed".into()))?;
        if output.transparent {
            cut_out(ctx, rgb, mask, &source.analysis, output).await?
        } else {
            let input = GenerateInput {
                source: Arc::clone(rgb),
                mask: Arc::clone(mask),
                analysis: Arc::clone(&source.analysis),
                plan,
                seed,
                output,
                context: PromptContext {
                    product_type: spec.request.product_type,
                    gender: spec.request.gender,
                    view: plan.view,
                    text: spec.request.text.clone(),
                },
            };
            let image =
                ctx.providers
                    .generator
                    .generate(input)
                    .await
                    .map_err(|error| StageError::Provider {
                        stage: "generation",
                        error,
                    })?;
            Pixels::Rgb(if image.dimensions() == (output.width, output.height) {
                image
            } else {
                blocking("fit variation", move || {
                    resize::cover(&image, output.width, output.height)
                })
                .await??
            })
        }
    };
    let (width, height) = pixels.dimensions();
    let bytes = blocking("encode variation", move || {
        encode::encode(&pixels, output.format, output.quality)
    })
    .await??;
    blobs.put(key, bytes).await?;
    Ok(Rendered { width, height })
}

/// The garment alone with its alpha (`output.transparent`): no background to
/// generate, so no generator is asked, whichever is configured.
async fn cut_out(
    ctx: &StageContext,
    rgb: &Arc<RgbImage>,
    mask: &Arc<GrayImage>,
    analysis: &Arc<atelier_core::analysis::ImageAnalysis>,
    output: OutputSpec,
) -> Result<Pixels, StageError> {
    let settings = GenerationSettings {
        canvas_width: output.width,
        canvas_height: output.height,
        padding: output.margin,
        ..ctx.settings.generation.clone()
    };
    let (rgb, mask, analysis) = (Arc::clone(rgb), Arc::clone(mask), Arc::clone(analysis));
    let rgba = blocking("cut out", move || {
        generate::render_transparent(&rgb, &mask, &analysis, &settings)
    })
    .await??;
    Ok(Pixels::Rgba(rgba))
}

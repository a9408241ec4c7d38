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
use atelier_core::settings::GenerationSettings;
use atelier_imaging::encode::{self, Pixels};
use atelier_imaging::{generate, resize};
use atelier_providers::{GenerateInput, PromptContext};
use atelier_storage::JobBlobs;
use futures::future::try_join_all;
use image::{GrayImage, RgbImage};

use crate::load::{self, blocking};
use crate::{Progress, StageContext, StageError, Timed};

/// Renders every variation of `spec`, at most `max_concurrent_generations` at a
/// time across the process, and stores each in the request's output format
/// (JPEG by default) on its canvas.
pub async fn run(
    ctx: &StageContext,
    blobs: &JobBlobs,
    spec: &JobSpec,
    analyses: &[AnalysisOutput],
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

    // Decode each source photo and mask once, shared by all its variations.
    let needed: BTreeSet<usize> = plans.iter().map(|p| p.input).collect();
    let sources = try_join_all(
        needed
            .iter()
            .map(|&input| load_source(ctx, blobs, spec, analyses, input)),
    )
    .await?;
    let sources: BTreeMap<usize, Source> = sources.into_iter().collect();

    let variations = try_join_all(plans.iter().map(|plan| {
        let source = sources.get(&plan.input);
        async move {
            let source =
                source.ok_or_else(|| StageError::State(format!("no source for input {}", plan.input)))?;
            let variation = render_one(ctx, blobs, spec, source, *plan, output).await?;
            progress.item_done(Stage::Generation);
            Ok::<_, StageError>(variation)
        }
    }))
    .await?;
    Ok(Timed::since(started, blobs.write_seconds(), variations))
}

struct Source {
    rgb: Arc<RgbImage>,
    mask: Arc<GrayImage>,
    analysis: Arc<atelier_core::analysis::ImageAnalysis>,
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
    let (decoded, mask) = tokio::try_join!(
        load::image(ctx, blobs, &stored.key),
        load::mask(blobs, &analysis.mask_key)
    )?;
    Ok((
        input,
        Source {
            rgb: Arc::new(decoded.rgb),
            mask,
            analysis: Arc::new(analysis.analysis.clone()),
        },
    ))
}

async fn render_one(
    ctx: &StageContext,
    blobs: &JobBlobs,
    spec: &JobSpec,
    source: &Source,
    plan: VariationPlan,
    output: OutputSpec,
) -> Result<Variation, StageError> {
    let started = Instant::now();
    let seed = variation_seed(&spec.id, spec.request.seed, &plan);
    let pixels = {
        let _slot = ctx
            .generation_slots
            .acquire()
            .await
            .map_err(|_| StageError::Task("generation semaphore closed".into()))?;
        if output.transparent {
            cut_out(ctx, source, output).await?
        } else {
            let input = GenerateInput {
                source: Arc::clone(&source.rgb),
                mask: Arc::clone(&source.mask),
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
    let key = keys::variation(plan.index, output.format.extension());
    blobs.put(&key, bytes).await?;
    Ok(Variation {
        plan,
        seed: (plan.background == BackgroundKind::Random && !output.transparent).then_some(seed),
        key,
        width,
        height,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// The garment alone with its alpha (`output.transparent`): no background to
/// generate, so no generator is asked, whichever is configured.
async fn cut_out(ctx: &StageContext, source: &Source, output: OutputSpec) -> Result<Pixels, StageError> {
    let settings = GenerationSettings {
        canvas_width: output.width,
        canvas_height: output.height,
        padding: output.margin,
        ..ctx.settings.generation.clone()
    };
    let (rgb, mask, analysis) = (
        Arc::clone(&source.rgb),
        Arc::clone(&source.mask),
        Arc::clone(&source.analysis),
    );
    let rgba = blocking("cut out", move || {
        generate::render_transparent(&rgb, &mask, &analysis, &settings)
    })
    .await??;
    Ok(Pixels::Rgba(rgba))
}

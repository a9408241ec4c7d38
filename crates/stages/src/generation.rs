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
use futures::future::try_join_all;
use image::{GrayImage, RgbImage};

use crate::load::{self, blocking};
use crate::{Progress, StageContext, StageError, Timed};

/// Renders every variation of `spec`, at most `max_concurrent_generations` at a
/// time across the process, and stores each as a JPEG.
pub async fn run(
    ctx: &StageContext,
    blobs: &JobBlobs,
    spec: &JobSpec,
    analyses: &[AnalysisOutput],
    progress: &dyn Progress,
) -> Result<Timed<Vec<Variation>>, StageError> {
    let started = Instant::now();
    let plans = plan_variations(&spec.request);
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
            let variation = render_one(ctx, blobs, spec, source, *plan).await?;
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
) -> Result<Variation, StageError> {
    let started = Instant::now();
    let input = GenerateInput {
        source: Arc::clone(&source.rgb),
        mask: Arc::clone(&source.mask),
        analysis: Arc::clone(&source.analysis),
        plan,
        seed: spec.id.seed(plan.index as u64),
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
    let key = keys::variation(plan.index);
    blobs.put(&key, jpeg).await?;
    Ok(Variation {
        plan,
        key,
        width,
        height,
        seconds: started.elapsed().as_secs_f64(),
    })
}

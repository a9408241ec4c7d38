//! Running stages: one at a time for the worker services ([`run_stage`]), or the
//! whole pipeline in this process for `atelier process` ([`run_job`]).

use std::time::Instant;

use atelier_core::job::JobSpec;
use atelier_core::keys;
use atelier_core::pipeline::{JobState, Stage};
use atelier_core::response::GenerateResponse;
use atelier_storage::JobBlobs;
use tracing::Instrument;

use crate::{Progress, StageContext, StageError, Timed, analysis, generation, postprocess, upscaling};

/// Runs one stage on `state` and records its output and timings there.
pub async fn run_stage(
    stage: Stage,
    ctx: &StageContext,
    blobs: &JobBlobs,
    state: &mut JobState,
    progress: &dyn Progress,
) -> Result<(), StageError> {
    let span = tracing::info_span!("stage", stage = stage.as_str(), job = %state.spec.id);
    dispatch(stage, ctx, blobs, state, progress)
        .instrument(span)
        .await
}

async fn dispatch(
    stage: Stage,
    ctx: &StageContext,
    blobs: &JobBlobs,
    state: &mut JobState,
    progress: &dyn Progress,
) -> Result<(), StageError> {
    // A fresh timer per stage, so `saving` adds each stage's writes exactly once.
    let blobs = &blobs.with_fresh_timer();
    let bypass = state.cache.bypassed;
    match stage {
        Stage::Analysis => {
            let t = analysis::run(ctx, blobs, &state.spec, bypass, progress).await?;
            record(state, stage, t, |s, out| s.analyses = out);
        }
        Stage::Generation => {
            let t = generation::run(ctx, blobs, &state.spec, &state.analyses, bypass, progress).await?;
            record(state, stage, t, |s, out| s.variations = out);
        }
        Stage::Upscaling => {
            let t = upscaling::run(ctx, blobs, &state.spec, &state.variations, bypass, progress).await?;
            record(state, stage, t, |s, out| s.upscaled = out);
        }
        Stage::PostProcessing => {
            let t = postprocess::run(ctx, blobs, state, progress).await?;
            record(state, stage, t, |s, out| s.post = out);
        }
    }
    let seconds = state.times.get(stage);
    progress.stage_finished(stage, seconds);
    tracing::info!(seconds, "stage finished");
    Ok(())
}

/// Stores a stage's output in `state` with `put` and adds its timings and
/// cache counts.
pub fn record<T>(state: &mut JobState, stage: Stage, timed: Timed<T>, put: impl FnOnce(&mut JobState, T)) {
    state.times.set(stage, timed.seconds);
    state.cache.set(stage, timed.cache);
    state.times.saving += timed.saving_seconds;
    put(state, timed.output);
}

/// Milliseconds since the Unix epoch, the clock job submission times use.
pub use atelier_core::clock::now_ms;

/// Runs all four stages in order in this process, then writes `result.json`
/// (the response body, with URLs made by `url_for`). Returns the final state.
pub async fn run_job(
    ctx: &StageContext,
    blobs: &JobBlobs,
    spec: JobSpec,
    url_for: &(dyn Fn(&str) -> String + Sync),
    progress: &dyn Progress,
) -> Result<JobState, StageError> {
    let started = Instant::now();
    let waited_ms = now_ms().saturating_sub(spec.submitted_at_ms);
    let mut state = JobState::new(spec);
    state.times.queue_wait = waited_ms as f64 / 1000.0;
    for stage in [Stage::Analysis, Stage::Generation] {
        run_stage(stage, ctx, blobs, &mut state, progress).await?;
    }
    // The video needs only the variations: start it now, on its own task, so it
    // overlaps upscaling (libx264 and the upscaler then share the cores) instead
    // of waiting for it. Post-processing then makes the report and awaits it.
    let video = state.spec.kind.wants_media().then(|| {
        let (ctx, blobs, variations) = (ctx.clone(), blobs.with_fresh_timer(), state.variations.clone());
        let bypass = state.cache.bypassed;
        tokio::spawn(async move { postprocess::video(&ctx, &blobs, &variations, bypass).await })
    });
    if let Err(e) = run_stage(Stage::Upscaling, ctx, blobs, &mut state, progress).await {
        // Nobody will await the video: stop it rather than store it for a failed job.
        if let Some(task) = &video {
            task.abort();
        }
        return Err(e);
    }
    let video = video.map(|task| -> postprocess::PendingVideo<'static> {
        Box::pin(async move { task.await.map_err(|e| StageError::Task(format!("video: {e}")))? })
    });
    let blobs_post = blobs.with_fresh_timer();
    let timed = postprocess::run_with_video(ctx, &blobs_post, &state, progress, video)
        .instrument(
            tracing::info_span!("stage", stage = Stage::PostProcessing.as_str(), job = %state.spec.id),
        )
        .await?;
    record(&mut state, Stage::PostProcessing, timed, |s, out| s.post = out);
    let seconds = state.times.get(Stage::PostProcessing);
    progress.stage_finished(Stage::PostProcessing, seconds);
    tracing::info!(seconds, stage = Stage::PostProcessing.as_str(), "stage finished");
    state.times.total = state.times.queue_wait + started.elapsed().as_secs_f64();
    let body = serde_json::to_vec_pretty(&GenerateResponse::from_state(&state, url_for))
        .map_err(|e| StageError::State(format!("result does not serialise: {e}")))?;
    blobs.put(keys::RESULT, body).await?;
    Ok(state)
}

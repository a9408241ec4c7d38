//! Stage 4: the slideshow video and the Excel report, made in parallel, for
//! `/api/v1/generate` jobs (images-only jobs skip it).
//!
//! The video needs only the variations, so a runner that has them early (`atelier
//! process`, see `runner::run_job`) starts it with [`video`] alongside upscaling
//! and hands the pending result to [`run_with_video`].

use std::future::Future;
use std::pin::Pin;
use std::time::Instant;

use atelier_core::keys;
use atelier_core::pipeline::{JobState, PostOutput, Stage, Variation, VideoOutput};
use atelier_imaging::report::{self, ImageKind, ReportImage};
use atelier_imaging::video;
use atelier_storage::JobBlobs;
use futures::future::try_join_all;
use image::RgbImage;

use crate::load::{self, blocking};
use crate::{Progress, StageContext, StageError, Timed};

/// A video already on its way (see [`video`]).
pub type PendingVideo<'a> = Pin<Box<dyn Future<Output = Result<VideoOutput, StageError>> + Send + 'a>>;

/// Makes the video and the report of a finished set of images.
pub async fn run(
    ctx: &StageContext,
    blobs: &JobBlobs,
    state: &JobState,
    progress: &dyn Progress,
) -> Result<Timed<PostOutput>, StageError> {
    run_with_video(ctx, blobs, state, progress, None).await
}

/// Makes the video of `variations` alone: decodes them and renders the slideshow.
pub async fn video(
    ctx: &StageContext,
    blobs: &JobBlobs,
    variations: &[Variation],
) -> Result<VideoOutput, StageError> {
    let images = load_all(ctx, blobs, variations).await?;
    make_video(ctx, blobs, images).await
}

/// [`run`], with the video already started elsewhere when `video` is given (then
/// only the report is made here, and the video awaited).
pub async fn run_with_video(
    ctx: &StageContext,
    blobs: &JobBlobs,
    state: &JobState,
    progress: &dyn Progress,
    video: Option<PendingVideo<'_>>,
) -> Result<Timed<PostOutput>, StageError> {
    let started = Instant::now();
    if !state.spec.kind.wants_media() {
        progress.stage_started(Stage::PostProcessing, 0);
        return Ok(Timed::since(started, 0.0, PostOutput::default()));
    }
    progress.stage_started(Stage::PostProcessing, 2);
    let images = load_all(ctx, blobs, &state.variations).await?;
    // Thumbnails first (cheap), so the video can then own the full images.
    let height = ctx.settings.report.thumbnail_height;
    let (images, thumbs) = blocking("thumbnails", move || {
        let thumbs = images
            .iter()
            .map(|img| report::thumbnail(img, height))
            .collect::<Result<Vec<_>, _>>();
        (images, thumbs)
    })
    .await?;
    let thumbs = thumbs?;

    let (video, report_key) = tokio::try_join!(
        async {
            let out = match video {
                Some(pending) => {
                    drop(images);
                    pending.await?
                }
                None => make_video(ctx, blobs, images).await?,
            };
            progress.item_done(Stage::PostProcessing);
            Ok::<_, StageError>(out)
        },
        async {
            let out = make_report(ctx, blobs, state, thumbs).await?;
            progress.item_done(Stage::PostProcessing);
            Ok::<_, StageError>(out)
        }
    )?;
    Ok(Timed::since(
        started,
        blobs.write_seconds(),
        PostOutput {
            video: Some(video),
            report_key: Some(report_key),
        },
    ))
}

async fn load_all(
    ctx: &StageContext,
    blobs: &JobBlobs,
    variations: &[Variation],
) -> Result<Vec<RgbImage>, StageError> {
    try_join_all(
        variations
            .iter()
            // A transparent cut-out is shown on white in the slideshow and report.
            .map(|v| async move { Ok::<_, StageError>(load::image(ctx, blobs, &v.key).await?.on_white()) }),
    )
    .await
}

async fn make_video(
    ctx: &StageContext,
    blobs: &JobBlobs,
    images: Vec<RgbImage>,
) -> Result<VideoOutput, StageError> {
    let settings = ctx.settings.video.clone();
    let (info, bytes) = blocking("video", move || {
        let file = tempfile::Builder::new()
            .prefix("atelier-video-")
            .suffix(".mp4")
            .tempfile()?;
        let info = video::render_slideshow(&images, &settings, file.path())?;
        let bytes = std::fs::read(file.path())?;
        Ok::<_, atelier_imaging::ImagingError>((info, bytes))
    })
    .await??;
    blobs.put(keys::VIDEO, bytes).await?;
    Ok(VideoOutput {
        key: keys::VIDEO.to_string(),
        width: info.width,
        height: info.height,
        frames: info.frames,
        duration_seconds: info.duration_seconds,
    })
}

async fn make_report(
    ctx: &StageContext,
    blobs: &JobBlobs,
    state: &JobState,
    thumbs: Vec<RgbImage>,
) -> Result<String, StageError> {
    let settings = ctx.settings.report.clone();
    let state = state.clone();
    let bytes = blocking("report", move || {
        let mut rows = Vec::with_capacity(state.variations.len() + state.upscaled.len());
        for (v, thumb) in state.variations.iter().zip(&thumbs) {
            rows.push(ReportImage {
                kind: ImageKind::Variation,
                index: v.plan.index,
                input: v.plan.input,
                background: v.plan.background.as_str().to_string(),
                width: v.width,
                height: v.height,
                file: v.key.clone(),
                seconds: v.seconds,
                note: None,
                thumbnail: thumb.clone(),
            });
        }
        for u in &state.upscaled {
            // An upscale shows the same picture as its variation: reuse that thumbnail.
            let Some((v, thumb)) = state
                .variations
                .iter()
                .zip(&thumbs)
                .find(|(v, _)| v.plan.index == u.variation)
            else {
                continue;
            };
            rows.push(ReportImage {
                kind: ImageKind::Upscaled,
                index: u.variation,
                input: v.plan.input,
                background: v.plan.background.as_str().to_string(),
                width: u.width,
                height: u.height,
                file: u.key.clone(),
                seconds: u.seconds,
                note: u.fallback.clone(),
                thumbnail: thumb.clone(),
            });
        }
        report::build_report(&state, &rows, &settings)
    })
    .await??;
    blobs.put(keys::REPORT, bytes).await?;
    Ok(keys::REPORT.to_string())
}

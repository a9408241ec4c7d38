//! Stage 4: the slideshow video and the Excel report, made in parallel, for
//! `/api/v1/generate` jobs (images-only jobs skip it).
//!
//! The video needs only the variations, so a runner that has them early (`atelier
//! process`, see `runner::run_job`) starts it with [`video`] alongside upscaling
//! and hands the pending result to [`run_with_video`].
//!
//! The video of the same images with the same settings is reused from the
//! result cache; the report names its job and its timings, so it is always made.

use std::future::Future;
use std::pin::Pin;
use std::time::Instant;

use atelier_core::keys;
use atelier_core::pipeline::{JobState, PostOutput, Stage, Variation, VideoOutput};
use atelier_imaging::report::{self, ImageKind, ReportImage};
use atelier_imaging::video;
use atelier_storage::JobBlobs;
use bytes::Bytes;
use futures::future::try_join_all;
use image::RgbImage;

use crate::cache::key::content_hash;
use crate::cache::{CacheKey, KeyBuilder, Lookup, Made};
use crate::load::{self, blocking};

/// The slideshow's version in cache keys: bump the revision when the video
/// made of the same images and settings changes.
const VIDEO_VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), "+video.1");
use crate::{Progress, StageContext, StageError, Timed};

/// A video already on its way (see [`video`]), and whether it was reused.
pub type PendingVideo<'a> =
    Pin<Box<dyn Future<Output = Result<(VideoOutput, bool), StageError>> + Send + 'a>>;

/// Makes the video and the report of a finished set of images.
pub async fn run(
    ctx: &StageContext,
    blobs: &JobBlobs,
    state: &JobState,
    progress: &dyn Progress,
) -> Result<Timed<PostOutput>, StageError> {
    run_with_video(ctx, blobs, state, progress, None).await
}

/// Makes the video of `variations` alone: renders the slideshow of their
/// files, or reuses the video of the same images (true).
pub async fn video(
    ctx: &StageContext,
    blobs: &JobBlobs,
    variations: &[Variation],
    bypass_cache: bool,
) -> Result<(VideoOutput, bool), StageError> {
    let bytes = fetch_all(blobs, variations).await?;
    cached_video(ctx, blobs, bytes, None, bypass_cache).await
}

/// The video cache key: every image's content in order, the video settings
/// and the encoder's version.
async fn video_key(ctx: &StageContext, images: &[Bytes]) -> Result<Option<CacheKey>, StageError> {
    if !ctx.cache.enabled() {
        return Ok(None);
    }
    let hashes = try_join_all(images.iter().map(|b| content_hash(b.clone()))).await?;
    Ok(Some(
        KeyBuilder::new(Stage::PostProcessing)
            .part("images", hashes.join(","))
            .part("video", format!("{:?}", ctx.settings.video))
            .part("encoder", VIDEO_VERSION)
            .finish(),
    ))
}

/// The video of the images in `bytes` (already decoded in `images` when
/// given), reused when the cache has it.
async fn cached_video(
    ctx: &StageContext,
    blobs: &JobBlobs,
    bytes: Vec<Bytes>,
    images: Option<Vec<RgbImage>>,
    bypass: bool,
) -> Result<(VideoOutput, bool), StageError> {
    let key = video_key(ctx, &bytes).await?;
    let lookup = Lookup {
        key: key.as_ref(),
        target: keys::VIDEO,
        ext: "mp4",
        bypass,
    };
    ctx.cache
        .reuse_or_make(blobs, lookup, move || async move {
            Ok(Made::reusable(make_video(ctx, blobs, bytes, images).await?))
        })
        .await
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
    let bytes = fetch_all(blobs, &state.variations).await?;
    let images = decode_all(ctx, bytes.clone()).await?;
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
                None => cached_video(ctx, blobs, bytes, Some(images), state.cache.bypassed).await?,
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
    let (video, reused) = video;
    Ok(Timed::since(
        started,
        blobs.write_seconds(),
        PostOutput {
            video: Some(video),
            report_key: Some(report_key),
        },
    )
    .reusing([reused]))
}

async fn fetch_all(blobs: &JobBlobs, variations: &[Variation]) -> Result<Vec<Bytes>, StageError> {
    Ok(try_join_all(variations.iter().map(|v| blobs.get(&v.key))).await?)
}

async fn decode_all(ctx: &StageContext, images: Vec<Bytes>) -> Result<Vec<RgbImage>, StageError> {
    try_join_all(images.into_iter().map(|bytes| async move {
        // A transparent cut-out is shown on white in the slideshow and report.
        Ok::<_, StageError>(load::decode_bytes(ctx, bytes).await?.on_white())
    }))
    .await
}

/// The slideshow of the image `files`. An encoder in this process (the
/// post-processing worker) needs pixels: `images` when the caller decoded them,
/// else decoded here. The helper process (`atelier process`, `atelier serve`)
/// is sent the files and decodes them itself, one per core at a time, so
/// neither process holds every image decoded at once.
async fn make_video(
    ctx: &StageContext,
    blobs: &JobBlobs,
    files: Vec<Bytes>,
    images: Option<Vec<RgbImage>>,
) -> Result<VideoOutput, StageError> {
    let images = match images {
        _ if !video::in_process() => None,
        Some(images) => Some(images),
        None => Some(decode_all(ctx, files.clone()).await?),
    };
    let settings = ctx.settings.video.clone();
    let limits = ctx.settings.limits.clone();
    let (info, bytes) = blocking("video", move || {
        let file = tempfile::Builder::new()
            .prefix("atelier-video-")
            .suffix(".mp4")
            .tempfile()?;
        let files: Vec<&[u8]> = files.iter().map(AsRef::as_ref).collect();
        let info = video::render_files(&files, images.as_deref(), &limits, &settings, file.path())?;
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

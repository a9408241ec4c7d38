//! The slideshow encoder: the job's images in an H.264 MP4 (yuv420p, faststart),
//! each on screen for `seconds_per_image` with a slow centred zoom and a crossfade
//! into the next. The only crate that links FFmpeg (see `atelier_imaging::video`
//! for why, and for the contract: [`frame_count`], [`VideoInfo`]).
//!
//! Speed comes from doing each expensive step once: every image is letterboxed and
//! converted to YUV 4:2:0 once; frames are then made on the YUV planes (a two-tap
//! SIMD bilinear crop-resize per frame for the zoom, an integer mix for the
//! crossfade), frames that do not change are not recomputed, and raw frames go
//! straight to libx264 through ffmpeg-next with settings measured for slideshow
//! content (see `encode`). Frames are made on a helper thread while the calling
//! thread feeds the encoder, whose own threads do the rest. (The ffmpeg CLI with
//! `-loop 1` + `xfade` re-decodes the image for every frame and costs several
//! times more.)
//!
//! Used two ways: in-process by the post-processing worker ([`install`]), and by
//! the `atelier-video` helper binary ([`helper::main`]) that `atelier process` and
//! `atelier serve` hand their images to.

mod encode;
mod frames;
pub mod helper;
mod probe;
mod timeline;
mod yuv;

use std::io::Write;
use std::path::Path;
use std::sync::{OnceLock, mpsc};

use ffmpeg_next as ffmpeg;
use image::RgbImage;

use atelier_core::settings::{DecodeLimits, VideoSettings};
pub use atelier_imaging::ImagingError;
use atelier_imaging::video::{SlideshowEncoder, Still};
pub use atelier_imaging::video::{VideoInfo, frame_count};

use encode::H264Writer;
use frames::Slide;
use timeline::{FrameSpec, Timeline};
use yuv::Planes;

pub use probe::{StreamInfo, decode_frame, probe, stream_info};

/// The FFmpeg encoder in this process, for `atelier_imaging::video::install`.
#[derive(Debug, Clone, Copy, Default)]
pub struct InProcess;

impl SlideshowEncoder for InProcess {
    fn render(
        &self,
        images: &[RgbImage],
        settings: &VideoSettings,
        path: &Path,
    ) -> Result<VideoInfo, ImagingError> {
        render_slideshow(images, settings, path)
    }
}

/// Makes this process encode slideshows itself (no helper process): for the
/// post-processing worker and for tests.
pub fn install() {
    atelier_imaging::video::install(&InProcess);
}

/// Knobs for measuring the encoder (the `atelier-video render` bench command);
/// the defaults are what the product uses.
#[derive(Default)]
pub struct RenderOptions<'a> {
    /// Every frame handed to the encoder, as raw yuv420p, in display order: the
    /// reference the decoded video's SSIM/PSNR is measured against.
    pub frames_out: Option<&'a mut dyn Write>,
    /// libx264 options (`key=value:…`) replacing the tuned ones.
    pub x264_params: Option<String>,
}

impl std::fmt::Debug for RenderOptions<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RenderOptions")
            .field("frames_out", &self.frames_out.is_some())
            .field("x264_params", &self.x264_params)
            .finish()
    }
}

/// Renders `images` as a slideshow MP4 at `path` (replaced atomically if it
/// exists) and returns what was written.
///
/// Each image is fitted inside `settings.width`×`settings.height` on white.
/// Errors (no images, bad settings, libx264 missing, I/O) are
/// [`ImagingError::Video`]; nothing is left at `path` when rendering fails.
pub fn render_slideshow(
    images: &[RgbImage],
    settings: &VideoSettings,
    path: &Path,
) -> Result<VideoInfo, ImagingError> {
    render_with(images, settings, path, RenderOptions::default())
}

/// [`render_slideshow`] with measuring knobs.
pub fn render_with(
    images: &[RgbImage],
    settings: &VideoSettings,
    path: &Path,
    options: RenderOptions<'_>,
) -> Result<VideoInfo, ImagingError> {
    let stills: Vec<Still<'_>> = images
        .iter()
        .map(|img| Still::Rgb(std::borrow::Cow::Borrowed(img)))
        .collect();
    // Pixels only: nothing is decoded, so no limits apply.
    render_stills(&stills, None, settings, path, options)
}

/// [`render_with`] for images given as pixels or as stored files (decoded under
/// `limits`, which files require). A file is decoded only when its slide is made, one per core at a
/// time, and its pixels are dropped as soon as the 1 MB YUV slide exists: a
/// slideshow of a dozen 960×1280 images holds a dozen slides, not a dozen
/// 3.7 MB images.
pub fn render_stills(
    stills: &[Still<'_>],
    limits: Option<&DecodeLimits>,
    settings: &VideoSettings,
    path: &Path,
    mut options: RenderOptions<'_>,
) -> Result<VideoInfo, ImagingError> {
    check(stills.len(), settings)?;
    let timeline = Timeline::new(stills.len(), settings);
    let (width, height) = (settings.width, settings.height);
    // Canvas at the deepest zoom's resolution: every frame is then a downscale.
    let margin = timeline.max_scale();
    let even = |side: u32| -> u32 { ((f64::from(side) * margin / 2.0).ceil() as u32) * 2 };
    let (canvas_w, canvas_h) = (even(width), even(height));
    let slides = prepare_slides(stills, limits, canvas_w, canvas_h)?;

    let mut writer = H264Writer::create(path, settings, options.x264_params.as_deref())?;
    // Frames are made on a helper thread while this one feeds the encoder, so
    // producing frame n+1 overlaps with libx264's work on frame n.
    let frames = std::thread::scope(|scope| {
        let (tx, rx) = mpsc::sync_channel(LOOKAHEAD);
        let (timeline, slides) = (&timeline, &slides);
        scope.spawn(move || produce(timeline, slides, width, height, &tx));
        let mut last: Option<Planes> = None;
        for step in rx {
            match step? {
                Step::Picture(picture) => {
                    writer.push(&picture)?;
                    last = Some(picture);
                }
                Step::Repeat => writer.repeat()?,
            }
            if let (Some(out), Some(picture)) = (options.frames_out.as_mut(), &last) {
                picture.write_raw(out)?;
            }
        }
        writer.finish(path)
    })?;
    if frames != timeline.frames() {
        // Cannot happen (the producer makes every frame or reports an error), but
        // a short video must not pass for a good one.
        let _ = std::fs::remove_file(path);
        return Err(ImagingError::Video(format!(
            "wrote {frames} frames instead of {}",
            timeline.frames()
        )));
    }
    Ok(VideoInfo {
        width,
        height,
        frames,
        duration_seconds: f64::from(frames) / f64::from(settings.fps),
    })
}

/// Makes the slides of `stills` on up to one thread per core, each thread
/// taking the next still when it is done with one.
fn prepare_slides(
    stills: &[Still<'_>],
    limits: Option<&DecodeLimits>,
    width: u32,
    height: u32,
) -> Result<Vec<Slide>, ImagingError> {
    let threads = std::thread::available_parallelism()
        .map_or(1, usize::from)
        .min(stills.len())
        .max(1);
    let next = std::sync::atomic::AtomicUsize::new(0);
    let made = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| {
                    let mut made = Vec::new();
                    loop {
                        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let Some(still) = stills.get(i) else { break };
                        let pixels = match (still, limits) {
                            (Still::File(_), None) => Err(ImagingError::Video(format!(
                                "image {i} is a file but no decode limits were given"
                            ))),
                            (_, Some(limits)) => still.pixels(limits),
                            (Still::Rgb(image), None) => Ok(std::borrow::Cow::Borrowed(&**image)),
                        };
                        let slide = pixels.and_then(|image| {
                            check_image(i, &image)?;
                            Slide::prepare(&image, width, height)
                        });
                        let failed = slide.is_err();
                        made.push((i, slide));
                        if failed {
                            break;
                        }
                    }
                    made
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| {
                w.join()
                    .map_err(|_| ImagingError::Video("preparing a slide panicked".into()))
            })
            .collect::<Result<Vec<_>, _>>()
    })?;
    // Every index taken was pushed, so all are here unless an error stopped a
    // worker; the first error in image order is the one reported.
    let mut made: Vec<(usize, Result<Slide, ImagingError>)> = made.into_iter().flatten().collect();
    made.sort_by_key(|(i, _)| *i);
    let slides = made
        .into_iter()
        .map(|(_, slide)| slide)
        .collect::<Result<Vec<_>, _>>()?;
    if slides.len() != stills.len() {
        return Err(ImagingError::Video("a slide was not made".into()));
    }
    Ok(slides)
}

/// Frames that may wait, made, between the producer and the encoder.
const LOOKAHEAD: usize = 3;

/// One frame of the stream handed to the encoder.
enum Step {
    /// A new picture.
    Picture(Planes),
    /// The previous picture again (a still stretch: nothing to compute).
    Repeat,
}

/// Makes every frame of `timeline` in order and sends it to `tx`, stopping at the
/// first error (which is sent on) or when the receiver has gone away.
fn produce(
    timeline: &Timeline,
    slides: &[Slide],
    width: u32,
    height: u32,
    tx: &mpsc::SyncSender<Result<Step, ImagingError>>,
) {
    let mut previous = None;
    for index in 0..timeline.frames() {
        let spec = timeline.frame(index);
        let step = if previous == Some(spec) {
            Ok(Step::Repeat)
        } else {
            previous = Some(spec);
            picture(slides, spec, width, height).map(Step::Picture)
        };
        let failed = step.is_err();
        if tx.send(step).is_err() || failed {
            return;
        }
    }
}

/// The picture one frame shows.
fn picture(slides: &[Slide], spec: FrameSpec, width: u32, height: u32) -> Result<Planes, ImagingError> {
    match spec {
        FrameSpec::Single(layer) => slide(slides, layer.image)?.render(layer.scale, width, height),
        FrameSpec::Blend { from, to, weight } => {
            let a = slide(slides, from.image)?.render(from.scale, width, height)?;
            let b = slide(slides, to.image)?.render(to.scale, width, height)?;
            Planes::blend(&a, &b, weight)
        }
    }
}

fn slide(slides: &[Slide], index: usize) -> Result<&Slide, ImagingError> {
    slides
        .get(index)
        .ok_or_else(|| ImagingError::Video(format!("slideshow timeline refers to missing image {index}")))
}

/// Refuses an empty image of the slideshow (`i`-th), with a message that says
/// which.
fn check_image(i: usize, img: &RgbImage) -> Result<(), ImagingError> {
    if img.width() == 0 || img.height() == 0 {
        return Err(ImagingError::Video(format!(
            "image {i} of the slideshow is empty ({}x{})",
            img.width(),
            img.height()
        )));
    }
    Ok(())
}

/// Refuses `images` images and settings that cannot make a video, with a
/// message that says which. Settings are validated when loaded too; this
/// guards direct callers.
fn check(images: usize, s: &VideoSettings) -> Result<(), ImagingError> {
    let bad = |m: String| Err(ImagingError::Video(m));
    if images == 0 {
        return bad("a slideshow needs at least one image".into());
    }
    if s.width < 16
        || s.height < 16
        || !s.width.is_multiple_of(2)
        || !s.height.is_multiple_of(2)
        || s.width > 8192
        || s.height > 8192
    {
        return bad(format!(
            "video size {}x{} must be even and within 16..=8192",
            s.width, s.height
        ));
    }
    if !(1..=240).contains(&s.fps) {
        return bad(format!("video frame rate {} must be within 1..=240", s.fps));
    }
    let slot = f64::from(s.seconds_per_image) * f64::from(s.fps);
    if !slot.is_finite() || slot < 1.0 || s.seconds_per_image > 3600.0 {
        return bad(format!(
            "seconds_per_image {} must give each image at least one frame and at most an hour",
            s.seconds_per_image
        ));
    }
    if !s.transition_seconds.is_finite() || s.transition_seconds < 0.0 {
        return bad(format!(
            "transition_seconds {} must be zero or more",
            s.transition_seconds
        ));
    }
    if !s.zoom.is_finite() || !(0.0..=1.0).contains(&s.zoom) {
        return bad(format!("zoom {} must be within 0..=1", s.zoom));
    }
    if frame_count(images, s) > 1_000_000 {
        return bad(format!("{images} images make too long a video"));
    }
    Ok(())
}

/// Initialises FFmpeg once per process and turns its own logging down to
/// warnings, so x264's per-run statistics do not clutter the terminal.
fn init() -> Result<(), ImagingError> {
    static INIT: OnceLock<Result<(), String>> = OnceLock::new();
    INIT.get_or_init(|| {
        ffmpeg::init().map_err(|e| e.to_string())?;
        ffmpeg::util::log::set_level(ffmpeg::util::log::Level::Warning);
        Ok(())
    })
    .clone()
    .map_err(|e| ImagingError::Video(format!("initialising FFmpeg: {e}")))
}

/// Maps an FFmpeg error to [`ImagingError::Video`], saying what was being done.
fn ffmpeg_error(context: &str) -> impl FnOnce(ffmpeg::Error) -> ImagingError + '_ {
    move |e| ImagingError::Video(format!("{context}: {e}"))
}

/// FFmpeg takes paths as C strings; ffmpeg-next panics on a path that is not UTF-8
/// or holds a NUL, so those are refused here first.
fn utf8_path(path: &Path) -> Result<&str, ImagingError> {
    path.to_str()
        .filter(|p| !p.contains('\0'))
        .ok_or_else(|| ImagingError::Video(format!("video path {} is not valid UTF-8", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> VideoSettings {
        VideoSettings {
            width: 64,
            height: 48,
            fps: 10,
            seconds_per_image: 0.5,
            transition_seconds: 0.2,
            zoom: 0.04,
            preset: "ultrafast".into(),
            crf: 30,
        }
    }

    #[test]
    fn bad_inputs_are_video_errors_not_panics() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("v.mp4");
        let img = RgbImage::from_pixel(8, 8, image::Rgb([1, 2, 3]));
        let cases: Vec<(Vec<RgbImage>, VideoSettings)> = vec![
            (vec![], settings()),
            (vec![RgbImage::new(0, 4)], settings()),
            (
                vec![img.clone()],
                VideoSettings {
                    width: 65,
                    ..settings()
                },
            ),
            (vec![img.clone()], VideoSettings { fps: 0, ..settings() }),
            (
                vec![img.clone()],
                VideoSettings {
                    seconds_per_image: f32::NAN,
                    ..settings()
                },
            ),
            (
                vec![img.clone()],
                VideoSettings {
                    seconds_per_image: 0.01,
                    ..settings()
                },
            ),
            (
                vec![img.clone()],
                VideoSettings {
                    zoom: -1.0,
                    ..settings()
                },
            ),
            (
                vec![img.clone()],
                VideoSettings {
                    preset: "fast\0".into(),
                    ..settings()
                },
            ),
            (
                vec![img.clone()],
                VideoSettings {
                    preset: "no-such-preset".into(),
                    ..settings()
                },
            ),
            (
                vec![img.clone()],
                VideoSettings {
                    preset: "nosuchpreset".into(),
                    ..settings()
                },
            ),
        ];
        for (images, s) in cases {
            match render_slideshow(&images, &s, &path) {
                Err(ImagingError::Video(msg)) => assert!(!msg.is_empty()),
                other => panic!("expected a video error for {s:?}, got {other:?}"),
            }
            assert!(!path.exists(), "a failed render leaves nothing behind");
        }
        let missing = dir.path().join("no-such-dir").join("v.mp4");
        assert!(matches!(
            render_slideshow(&[img], &settings(), &missing),
            Err(ImagingError::Video(_))
        ));
        assert!(matches!(
            probe(&dir.path().join("absent.mp4")),
            Err(ImagingError::Video(_))
        ));
    }

    #[test]
    fn renders_a_small_video_that_probes_back() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("small.mp4");
        let images = [
            RgbImage::from_pixel(30, 40, image::Rgb([200, 30, 30])),
            RgbImage::from_pixel(50, 20, image::Rgb([30, 30, 200])),
        ];
        let info = render_slideshow(&images, &settings(), &path).expect("render");
        assert_eq!(info.frames, 10);
        let back = probe(&path).expect("probe");
        assert_eq!((back.width, back.height, back.frames), (64, 48, 10));
        assert!((back.duration_seconds - 1.0).abs() < 0.1 + 1e-9, "{back:?}");
        // Nothing else is left in the folder (the temporary file was renamed).
        assert_eq!(std::fs::read_dir(dir.path()).expect("ls").count(), 1);
    }
}

//! The slideshow video as the rest of Atelier sees it: what a slideshow of N
//! images contains ([`frame_count`], [`VideoInfo`]) and one call that renders it
//! ([`render_slideshow`]), without linking FFmpeg.
//!
//! Why the split: FFmpeg's libraries (libavcodec, libavformat and their ~130
//! codec dependencies) cost about 35 ms of dynamic loading at every process
//! start, and only the slideshow needs them. The encoder lives in the
//! `atelier-video` crate. A process that encodes video in-process (the
//! post-processing worker) installs it with [`install`]; any other process that
//! needs a video (`atelier process`, `atelier serve`) hands the images to the
//! `atelier-video` helper binary through a pipe ([`helper`]), so `atelier
//! --help`, `atelier upscale` and the other workers never load FFmpeg.

pub mod helper;

use std::borrow::Cow;
use std::path::Path;
use std::sync::OnceLock;

use atelier_core::settings::{DecodeLimits, VideoSettings};
use image::RgbImage;

use crate::ImagingError;

/// What a rendered (or probed) video contains.
#[derive(Debug, Clone, PartialEq)]
pub struct VideoInfo {
    pub width: u32,
    pub height: u32,
    pub frames: u32,
    pub duration_seconds: f64,
}

/// One image of a slideshow: decoded pixels, or the file (JPEG, PNG or WebP) it
/// is stored as, decoded by whoever renders it, as late as possible.
#[derive(Debug, Clone, PartialEq)]
pub enum Still<'a> {
    Rgb(Cow<'a, RgbImage>),
    File(Cow<'a, [u8]>),
}

impl Still<'_> {
    /// The pixels: borrowed, or decoded under `limits` (a transparent image on
    /// white, as the slideshow shows it).
    pub fn pixels(&self, limits: &DecodeLimits) -> Result<Cow<'_, RgbImage>, ImagingError> {
        match self {
            Self::Rgb(image) => Ok(Cow::Borrowed(&**image)),
            Self::File(bytes) => Ok(Cow::Owned(crate::decode::decode(bytes, limits)?.on_white())),
        }
    }
}

/// Something that turns images into the slideshow MP4: the in-process FFmpeg
/// encoder of `atelier-video`, or the [`helper::Helper`] process.
pub trait SlideshowEncoder: Send + Sync + std::fmt::Debug {
    /// Renders `images` as a slideshow MP4 at `path` (replaced atomically if it
    /// exists; nothing is left there on failure) and returns what was written.
    fn render(
        &self,
        images: &[RgbImage],
        settings: &VideoSettings,
        path: &Path,
    ) -> Result<VideoInfo, ImagingError>;
}

static ENCODER: OnceLock<&'static dyn SlideshowEncoder> = OnceLock::new();

/// Makes `encoder` the one [`render_slideshow`] uses in this process. The first
/// call wins; returns whether this one did.
pub fn install(encoder: &'static dyn SlideshowEncoder) -> bool {
    ENCODER.set(encoder).is_ok()
}

/// Renders `images` as a slideshow MP4 at `path` with the installed encoder, or
/// through the `atelier-video` helper process when none is installed.
///
/// Each image is fitted inside `settings.width`×`settings.height` on white, shown
/// for `seconds_per_image` with a slow centred zoom and a crossfade into the next.
/// Errors (no images, bad settings, libx264 missing, no helper, I/O) are
/// [`ImagingError::Video`]; nothing is left at `path` when rendering fails.
pub fn render_slideshow(
    images: &[RgbImage],
    settings: &VideoSettings,
    path: &Path,
) -> Result<VideoInfo, ImagingError> {
    match ENCODER.get() {
        Some(encoder) => encoder.render(images, settings, path),
        None => helper::Helper::locate()?.render(images, settings, path),
    }
}

/// Whether this process encodes slideshows itself ([`install`]); otherwise
/// [`render_files`] hands the files to the helper process undecoded.
pub fn in_process() -> bool {
    ENCODER.get().is_some()
}

/// Renders the stored image `files` (decoded under `limits`) as a slideshow MP4
/// at `path`, like [`render_slideshow`]. With an installed encoder they are
/// decoded here (`decoded`, when the caller already has the pixels, saves that);
/// otherwise the files themselves go to the helper, which decodes them one
/// per core at a time (see [`helper`]) and this process decodes nothing.
pub fn render_files(
    files: &[&[u8]],
    decoded: Option<&[RgbImage]>,
    limits: &DecodeLimits,
    settings: &VideoSettings,
    path: &Path,
) -> Result<VideoInfo, ImagingError> {
    match ENCODER.get() {
        Some(encoder) => match decoded {
            Some(images) => encoder.render(images, settings, path),
            None => {
                let images = files
                    .iter()
                    .map(|file| Ok(crate::decode::decode(file, limits)?.on_white()))
                    .collect::<Result<Vec<_>, ImagingError>>()?;
                encoder.render(&images, settings, path)
            }
        },
        None => {
            let stills: Vec<Still<'_>> = files.iter().map(|f| Still::File(Cow::Borrowed(*f))).collect();
            helper::Helper::locate()?.render_stills(&stills, limits, settings, path)
        }
    }
}

/// The decimal a person wrote in the settings file, recovered from its `f32`.
///
/// `1.55_f32` is really 1.5499999523…, which would make `3 × 1.55 s × 30 fps`
/// round to 139 frames instead of 140; rounding to the microsecond undoes that.
pub fn decimal(value: f32) -> f64 {
    (f64::from(value) * 1e6).round() / 1e6
}

/// Frames a slideshow of `images` images has: `round(images × seconds_per_image ×
/// fps)`. Crossfades overlap inside the slots, so they add nothing. This is the
/// contract the verification checks the decoded video against.
pub fn frame_count(images: usize, settings: &VideoSettings) -> u32 {
    let frames = images as f64 * decimal(settings.seconds_per_image) * f64::from(settings.fps);
    // `as` saturates; absurd settings are refused before anything relies on this.
    frames.round() as u32
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
    fn frame_count_is_images_times_slot() {
        assert_eq!(frame_count(3, &settings()), 15);
        assert_eq!(frame_count(0, &settings()), 0);
        let odd = VideoSettings {
            seconds_per_image: 1.55,
            fps: 30,
            ..settings()
        };
        assert_eq!(frame_count(3, &odd), 140); // 139.5 rounds up
    }
}

//! The pipe between a process that needs a slideshow and the `atelier-video`
//! helper binary that encodes it, both halves in one place.
//!
//! Request on the helper's stdin: a text header, then each image, as raw pixels
//! or as the encoded file it is stored as.
//!
//! ```text
//! atelier-video 2
//! <width> <height> <fps> <seconds_per_image> <transition_seconds> <zoom> <crf> <preset>
//! <output path>
//! <max_bytes> <max_pixels> <min_side> <max_side> <max_jpeg_scans>   ← decode limits for files
//! <image count>
//! rgb <w> <h>        ← per image, followed by exactly w × h × 3 bytes of RGB, or
//! file <n>           ← followed by exactly n bytes of JPEG, PNG or WebP
//! ```
//!
//! Reply on its stdout: `ok <width> <height> <frames> <duration_seconds>`; on
//! failure it exits non-zero with the error on stderr. Numbers are printed with
//! Rust's shortest round-trip formatting, so settings arrive bit-exact.
//!
//! Why files: a job's variations are already stored encoded, and the helper
//! turns each image into a 1 MB YUV slide at once. Sent as files, the helper
//! decodes one image per core at a time and drops the pixels as soon as its
//! slide is made, while the sender decodes nothing; sent as raw RGB (3.7 MB per
//! 960×1280 variation), both processes held every image decoded at once, which
//! was a fifth of the 24-megapixel job's peak memory (issue 13). Raw RGB stays
//! for callers that only have pixels.

use std::borrow::Cow;
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use atelier_core::settings::{DecodeLimits, VideoSettings};
use image::RgbImage;

use super::{SlideshowEncoder, Still, VideoInfo};
use crate::ImagingError;

/// First line of every request: the protocol and its version.
const MAGIC: &str = "atelier-video 2";
/// Largest encoded image one request may carry, whatever the limits say.
const MAX_FILE_BYTES: u64 = 1 << 30;
/// Environment variable naming the helper binary, overriding the search.
pub const HELPER_ENV: &str = "ATELIER_VIDEO_HELPER";
/// File name of the helper binary, looked for beside the running executable.
pub const HELPER_NAME: &str = "atelier-video";
/// Most images one request may carry (the API allows far fewer).
const MAX_IMAGES: usize = 1024;
/// Longest image side one request may carry.
const MAX_SIDE: u32 = 16_384;

fn video_error(message: impl Into<String>) -> ImagingError {
    ImagingError::Video(message.into())
}

/// The helper binary, run once per video.
#[derive(Debug, Clone)]
pub struct Helper {
    program: PathBuf,
}

impl Helper {
    /// A helper at `program`.
    pub fn new(program: impl Into<PathBuf>) -> Self {
        Self {
            program: program.into(),
        }
    }

    /// Finds the helper: `$ATELIER_VIDEO_HELPER`, else `atelier-video` beside the
    /// running executable or one folder up (where test binaries run from).
    pub fn locate() -> Result<Self, ImagingError> {
        if let Some(path) = std::env::var_os(HELPER_ENV) {
            return Ok(Self::new(path));
        }
        let exe = std::env::current_exe()?;
        let name = format!("{HELPER_NAME}{}", std::env::consts::EXE_SUFFIX);
        exe.ancestors()
            .skip(1)
            .take(2)
            .map(|dir| dir.join(&name))
            .find(|candidate| candidate.is_file())
            .map(Self::new)
            .ok_or_else(|| {
                video_error(format!(
                    "the {HELPER_NAME} helper binary is not beside {} (build it, or set {HELPER_ENV})",
                    exe.display()
                ))
            })
    }
}

impl Helper {
    /// Renders `stills` (pixels or encoded files, decoded under `limits`) as a
    /// slideshow MP4 at `path` in the helper process.
    pub fn render_stills(
        &self,
        stills: &[Still<'_>],
        limits: &DecodeLimits,
        settings: &VideoSettings,
        path: &Path,
    ) -> Result<VideoInfo, ImagingError> {
        let mut child = Command::new(&self.program)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| video_error(format!("starting {}: {e}", self.program.display())))?;
        let mut stdin = child
            .stdin
            .take()
            .ok_or_else(|| video_error("the helper has no stdin"))?;
        // Write on a second thread while this one collects stdout and stderr, so
        // neither side can block the other on a full pipe.
        let (written, output) = std::thread::scope(|scope| {
            let writer = scope.spawn(move || write_request(&mut stdin, stills, limits, settings, path));
            let output = child.wait_with_output();
            (writer.join(), output)
        });
        let output = output?;
        let stderr = String::from_utf8_lossy(&output.stderr);
        if !output.status.success() {
            return Err(video_error(format!(
                "{} failed ({}): {}",
                HELPER_NAME,
                output.status,
                stderr.trim()
            )));
        }
        // The helper succeeded, so it read everything: a write error here is ours.
        written
            .map_err(|_| video_error("the helper writer panicked"))?
            .map_err(|e| video_error(format!("sending images to {HELPER_NAME}: {e}")))?;
        parse_reply(&String::from_utf8_lossy(&output.stdout))
    }
}

impl SlideshowEncoder for Helper {
    fn render(
        &self,
        images: &[RgbImage],
        settings: &VideoSettings,
        path: &Path,
    ) -> Result<VideoInfo, ImagingError> {
        let stills: Vec<Still<'_>> = images.iter().map(|img| Still::Rgb(Cow::Borrowed(img))).collect();
        // Raw pixels only: the limits apply to files.
        let limits = DecodeLimits {
            max_bytes: 0,
            max_pixels: 0,
            min_side: 0,
            max_side: 0,
            decode_budget_bytes: 0,
            max_jpeg_scans: 0,
        };
        self.render_stills(&stills, &limits, settings, path)
    }
}

/// Writes one request (see the module docs).
pub fn write_request(
    out: &mut impl Write,
    stills: &[Still<'_>],
    limits: &DecodeLimits,
    s: &VideoSettings,
    path: &Path,
) -> Result<(), ImagingError> {
    let path = path
        .to_str()
        .filter(|p| !p.contains(['\n', '\r', '\0']))
        .ok_or_else(|| {
            video_error(format!(
                "video path {} cannot be sent to the helper",
                path.display()
            ))
        })?;
    if s.preset.is_empty() || s.preset.contains(char::is_whitespace) {
        return Err(video_error(format!("invalid x264 preset {:?}", s.preset)));
    }
    let mut header = format!(
        "{MAGIC}\n{} {} {} {} {} {} {} {}\n{path}\n{} {} {} {} {}\n{}\n",
        s.width,
        s.height,
        s.fps,
        s.seconds_per_image,
        s.transition_seconds,
        s.zoom,
        s.crf,
        s.preset,
        limits.max_bytes,
        limits.max_pixels,
        limits.min_side,
        limits.max_side,
        limits.max_jpeg_scans,
        stills.len()
    );
    let mut out = std::io::BufWriter::new(out);
    for still in stills {
        let body: &[u8] = match still {
            Still::Rgb(image) => {
                header.push_str(&format!("rgb {} {}\n", image.width(), image.height()));
                image.as_raw()
            }
            Still::File(bytes) => {
                header.push_str(&format!("file {}\n", bytes.len()));
                bytes
            }
        };
        out.write_all(header.as_bytes())?;
        out.write_all(body)?;
        header.clear();
    }
    out.write_all(header.as_bytes())?;
    out.flush()?;
    Ok(())
}

/// One decoded request: what to render, where, and the limits its files are
/// decoded under.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    pub images: Vec<Still<'static>>,
    pub settings: VideoSettings,
    pub limits: DecodeLimits,
    pub path: PathBuf,
}

/// Reads one request written by [`write_request`], refusing anything malformed
/// or oversized before allocating for it.
pub fn read_request(input: &mut impl BufRead) -> Result<Request, ImagingError> {
    let mut next_line = |what: &str| read_line(input, what);
    if next_line("header")? != MAGIC {
        return Err(video_error(format!("not an `{MAGIC}` request")));
    }
    let fields = next_line("settings")?;
    let f: Vec<&str> = fields.split(' ').collect();
    let bad = |what: &str| video_error(format!("bad {what} in the request settings"));
    let [width, height, fps, seconds, transition, zoom, crf, preset] = f[..] else {
        return Err(bad("field count"));
    };
    let settings = VideoSettings {
        width: width.parse().map_err(|_| bad("width"))?,
        height: height.parse().map_err(|_| bad("height"))?,
        fps: fps.parse().map_err(|_| bad("fps"))?,
        seconds_per_image: seconds.parse().map_err(|_| bad("seconds_per_image"))?,
        transition_seconds: transition.parse().map_err(|_| bad("transition_seconds"))?,
        zoom: zoom.parse().map_err(|_| bad("zoom"))?,
        crf: crf.parse().map_err(|_| bad("crf"))?,
        preset: preset.to_owned(),
    };
    let path = PathBuf::from(next_line("path")?);
    let limits = next_line("limits")?;
    let l: Vec<&str> = limits.split(' ').collect();
    let [max_bytes, max_pixels, min_side, max_side, max_jpeg_scans] = l[..] else {
        return Err(video_error("bad field count in the request limits"));
    };
    let limit = |v: &str| {
        v.parse::<u64>()
            .map_err(|_| video_error(format!("bad limit {v:?}")))
    };
    let side = |v: &str| {
        v.parse::<u32>()
            .map_err(|_| video_error(format!("bad limit {v:?}")))
    };
    let limits = DecodeLimits {
        max_bytes: limit(max_bytes)?,
        max_pixels: limit(max_pixels)?,
        min_side: side(min_side)?,
        max_side: side(max_side)?,
        // One process, one video: the helper holds one decode per core.
        decode_budget_bytes: u64::MAX,
        max_jpeg_scans: side(max_jpeg_scans)?,
    };
    let count: usize = next_line("image count")?
        .parse()
        .map_err(|_| bad("image count"))?;
    if count > MAX_IMAGES {
        return Err(video_error(format!("{count} images, at most {MAX_IMAGES}")));
    }
    let mut images = Vec::with_capacity(count);
    for i in 0..count {
        let line = read_line(input, "image header")?;
        let fields: Vec<&str> = line.split(' ').collect();
        let still = match fields[..] {
            ["rgb", w, h] => {
                let (w, h) = match (w.parse::<u32>(), h.parse::<u32>()) {
                    (Ok(w), Ok(h)) if w <= MAX_SIDE && h <= MAX_SIDE => (w, h),
                    _ => return Err(video_error(format!("bad size {line:?} of image {i}"))),
                };
                let mut pixels = vec![0u8; w as usize * h as usize * 3];
                input
                    .read_exact(&mut pixels)
                    .map_err(|e| video_error(format!("image {i} is cut short: {e}")))?;
                Still::Rgb(Cow::Owned(
                    RgbImage::from_raw(w, h, pixels)
                        .ok_or_else(|| video_error(format!("image {i} has a bad size")))?,
                ))
            }
            ["file", n] => {
                let n = n
                    .parse::<u64>()
                    .ok()
                    .filter(|&n| n <= MAX_FILE_BYTES.min(limits.max_bytes))
                    .ok_or_else(|| video_error(format!("bad length {line:?} of image {i}")))?;
                let mut bytes = vec![0u8; n as usize];
                input
                    .read_exact(&mut bytes)
                    .map_err(|e| video_error(format!("image {i} is cut short: {e}")))?;
                Still::File(Cow::Owned(bytes))
            }
            _ => return Err(video_error(format!("bad header {line:?} of image {i}"))),
        };
        images.push(still);
    }
    Ok(Request {
        images,
        settings,
        limits,
        path,
    })
}

/// One header line, without its newline; the request is cut short without one.
fn read_line(input: &mut impl BufRead, what: &str) -> Result<String, ImagingError> {
    let mut line = String::new();
    input.read_line(&mut line)?;
    line.strip_suffix('\n')
        .map(str::to_owned)
        .ok_or_else(|| video_error(format!("request ends before its {what}")))
}

/// The helper's success line.
pub fn format_reply(info: &VideoInfo) -> String {
    format!(
        "ok {} {} {} {}\n",
        info.width, info.height, info.frames, info.duration_seconds
    )
}

fn parse_reply(reply: &str) -> Result<VideoInfo, ImagingError> {
    let bad = || video_error(format!("unexpected reply from {HELPER_NAME}: {:?}", reply.trim()));
    let fields: Vec<&str> = reply.split_whitespace().collect();
    let ["ok", width, height, frames, duration] = fields[..] else {
        return Err(bad());
    };
    Ok(VideoInfo {
        width: width.parse().map_err(|_| bad())?,
        height: height.parse().map_err(|_| bad())?,
        frames: frames.parse().map_err(|_| bad())?,
        duration_seconds: duration.parse().map_err(|_| bad())?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> VideoSettings {
        VideoSettings {
            width: 64,
            height: 48,
            fps: 30,
            seconds_per_image: 1.55,
            transition_seconds: 0.4,
            zoom: 0.04,
            preset: "veryfast".into(),
            crf: 23,
        }
    }

    fn limits() -> DecodeLimits {
        atelier_core::settings::Settings::defaults().limits
    }

    #[test]
    fn requests_round_trip_bit_exact() {
        let images = [
            RgbImage::from_fn(5, 3, |x, y| image::Rgb([x as u8, y as u8, 7])),
            RgbImage::from_pixel(2, 9, image::Rgb([1, 2, 3])),
        ];
        let file = crate::encode::jpeg(&images[0], 90).expect("jpeg");
        let stills = [
            Still::Rgb(Cow::Borrowed(&images[0])),
            Still::File(Cow::Borrowed(&file)),
            Still::Rgb(Cow::Borrowed(&images[1])),
        ];
        let mut bytes = Vec::new();
        write_request(
            &mut bytes,
            &stills,
            &limits(),
            &settings(),
            Path::new("/tmp/a b/v.mp4"),
        )
        .expect("write");
        let back = read_request(&mut bytes.as_slice()).expect("read");
        assert_eq!(back.images, stills);
        assert_eq!(back.settings, settings());
        let sent = limits();
        assert_eq!(
            (
                back.limits.max_bytes,
                back.limits.max_pixels,
                back.limits.min_side
            ),
            (sent.max_bytes, sent.max_pixels, sent.min_side)
        );
        assert_eq!(
            (back.limits.max_side, back.limits.max_jpeg_scans),
            (sent.max_side, sent.max_jpeg_scans)
        );
        assert_eq!(back.path, PathBuf::from("/tmp/a b/v.mp4"));
    }

    #[test]
    fn malformed_requests_are_refused() {
        let image = RgbImage::from_pixel(4, 4, image::Rgb([9, 9, 9]));
        let file = vec![0xFF, 0xD8, 0xFF, 0xE0];
        let stills = [
            Still::Rgb(Cow::Borrowed(&image)),
            Still::File(Cow::Borrowed(&file)),
        ];
        let mut bytes = Vec::new();
        write_request(&mut bytes, &stills, &limits(), &settings(), Path::new("v.mp4")).expect("write");
        // Cut short anywhere: an error, never a panic or a partial image.
        for cut in [0, 5, 20, 90, bytes.len() - 1] {
            assert!(read_request(&mut &bytes[..cut]).is_err(), "cut at {cut}");
        }
        let head = "atelier-video 2\n64 48 30 1.5 0.4 0.04 23 fast\nv.mp4\n1000 1000 1 100 10\n1\n";
        for bad in ["rgb 99999 99999\n", "file 1001\n", "jpeg 4\n", "file\n"] {
            let request = format!("{head}{bad}");
            assert!(read_request(&mut request.as_bytes()).is_err(), "{bad:?}");
        }
        assert!(write_request(&mut Vec::new(), &[], &limits(), &settings(), Path::new("a\nb")).is_err());
    }

    #[test]
    fn replies_parse_and_garbage_is_an_error() {
        let info = VideoInfo {
            width: 720,
            height: 960,
            frames: 135,
            duration_seconds: 4.5,
        };
        assert_eq!(parse_reply(&format_reply(&info)).expect("parse"), info);
        assert!(parse_reply("ok 1 2").is_err());
        assert!(parse_reply("").is_err());
    }

    #[test]
    fn a_missing_helper_is_a_video_error() {
        let helper = Helper::new("/nonexistent/atelier-video");
        let err = helper
            .render(&[RgbImage::new(2, 2)], &settings(), Path::new("/tmp/x.mp4"))
            .expect_err("no such program");
        assert!(matches!(err, ImagingError::Video(_)), "{err:?}");
    }
}

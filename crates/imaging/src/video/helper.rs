//! The pipe between a process that needs a slideshow and the `atelier-video`
//! helper binary that encodes it, both halves in one place.
//!
//! Request on the helper's stdin: a text header, then raw pixels.
//!
//! ```text
//! atelier-video 1
//! <width> <height> <fps> <seconds_per_image> <transition_seconds> <zoom> <crf> <preset>
//! <output path>
//! <image count>
//! <w> <h>            ← per image, followed by exactly w × h × 3 bytes of RGB
//! ```
//!
//! Reply on its stdout: `ok <width> <height> <frames> <duration_seconds>`; on
//! failure it exits non-zero with the error on stderr. Numbers are printed with
//! Rust's shortest round-trip formatting, so settings arrive bit-exact. Raw RGB
//! (about 11 MB for the standard job's three 960×1280 images) costs a few
//! milliseconds through a pipe, far less than encoding and decoding JPEGs again.

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use atelier_core::settings::VideoSettings;
use image::RgbImage;

use super::{SlideshowEncoder, VideoInfo};
use crate::ImagingError;

/// First line of every request: the protocol and its version.
const MAGIC: &str = "atelier-video 1";
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

impl SlideshowEncoder for Helper {
    fn render(
        &self,
        images: &[RgbImage],
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
            let writer = scope.spawn(move || write_request(&mut stdin, images, settings, path));
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

/// Writes one request (see the module docs).
pub fn write_request(
    out: &mut impl Write,
    images: &[RgbImage],
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
        "{MAGIC}\n{} {} {} {} {} {} {} {}\n{path}\n{}\n",
        s.width,
        s.height,
        s.fps,
        s.seconds_per_image,
        s.transition_seconds,
        s.zoom,
        s.crf,
        s.preset,
        images.len()
    );
    let mut out = std::io::BufWriter::new(out);
    for image in images {
        header.push_str(&format!("{} {}\n", image.width(), image.height()));
        out.write_all(header.as_bytes())?;
        out.write_all(image.as_raw())?;
        header.clear();
    }
    out.write_all(header.as_bytes())?;
    out.flush()?;
    Ok(())
}

/// One decoded request: what to render and where.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    pub images: Vec<RgbImage>,
    pub settings: VideoSettings,
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
    let count: usize = next_line("image count")?
        .parse()
        .map_err(|_| bad("image count"))?;
    if count > MAX_IMAGES {
        return Err(video_error(format!("{count} images, at most {MAX_IMAGES}")));
    }
    let mut images = Vec::with_capacity(count);
    for i in 0..count {
        let dims = read_line(input, "image size")?;
        let (w, h) = dims
            .split_once(' ')
            .and_then(|(w, h)| Some((w.parse::<u32>().ok()?, h.parse::<u32>().ok()?)))
            .filter(|&(w, h)| w <= MAX_SIDE && h <= MAX_SIDE)
            .ok_or_else(|| video_error(format!("bad size {dims:?} of image {i}")))?;
        let mut pixels = vec![0u8; w as usize * h as usize * 3];
        input
            .read_exact(&mut pixels)
            .map_err(|e| video_error(format!("image {i} is cut short: {e}")))?;
        images.push(
            RgbImage::from_raw(w, h, pixels)
                .ok_or_else(|| video_error(format!("image {i} has a bad size")))?,
        );
    }
    Ok(Request {
        images,
        settings,
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

    #[test]
    fn requests_round_trip_bit_exact() {
        let images = vec![
            RgbImage::from_fn(5, 3, |x, y| image::Rgb([x as u8, y as u8, 7])),
            RgbImage::from_pixel(2, 9, image::Rgb([1, 2, 3])),
        ];
        let mut bytes = Vec::new();
        write_request(&mut bytes, &images, &settings(), Path::new("/tmp/a b/v.mp4")).expect("write");
        let back = read_request(&mut bytes.as_slice()).expect("read");
        assert_eq!(back.images, images);
        assert_eq!(back.settings, settings());
        assert_eq!(back.path, PathBuf::from("/tmp/a b/v.mp4"));
    }

    #[test]
    fn malformed_requests_are_refused() {
        let image = RgbImage::from_pixel(4, 4, image::Rgb([9, 9, 9]));
        let mut bytes = Vec::new();
        write_request(&mut bytes, &[image], &settings(), Path::new("v.mp4")).expect("write");
        // Cut short anywhere: an error, never a panic or a partial image.
        for cut in [0, 5, 20, bytes.len() - 1] {
            assert!(read_request(&mut &bytes[..cut]).is_err(), "cut at {cut}");
        }
        let huge = b"atelier-video 1\n64 48 30 1.5 0.4 0.04 23 fast\nv.mp4\n1\n99999 99999\n";
        assert!(read_request(&mut &huge[..]).is_err());
        assert!(write_request(&mut Vec::new(), &[], &settings(), Path::new("a\nb")).is_err());
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

//! The H.264/MP4 writer: YUV 4:2:0 frames in, a faststart MP4 out.
//!
//! Frames arrive already in YUV 4:2:0 planes and are handed to libx264, which runs
//! its own threads. Two FFmpeg 5.1 quirks are handled here: libx264 packets carry
//! `duration == 0` (the MP4 would end one frame short), so each gets one frame's
//! duration before rescaling; and the MP4 muxer picks its own stream time base in
//! `write_header()`, so it is read back afterwards.
//!
//! The file is written to a temporary sibling and renamed into place only when
//! complete, so a failed or interrupted render never leaves a truncated video at
//! the target path.

use std::path::Path;

use ffmpeg::util::color;
use ffmpeg::{Dictionary, Packet, Rational, codec, encoder, format, frame};
use ffmpeg_next as ffmpeg;
use image::GrayImage;

use atelier_core::settings::VideoSettings;

use super::yuv::Planes;
use super::{ffmpeg_error, init, utf8_path};
use atelier_imaging::ImagingError;

/// libx264 options on top of the preset (`ultrafast` in config/default.toml),
/// chosen with `scripts/bench/video.sh` for slideshow content. Ultrafast alone
/// is ~40 % cheaper than `veryfast` but 9× larger; CABAC and three fixed
/// B-frames (a slow zoom is exactly what bidirectional prediction is for) win
/// back two thirds of the size for ~5 % of the time, and with crf 28 the file
/// is within 1.5× of veryfast's at equal or better SSIM/PSNR (docs/benchmarks.md).
/// Deblocking, adaptive B-frames and mb-tree lookahead cost more than they save
/// here; the keyframe interval stays x264's default (250 frames, one per video
/// for the standard job; a shorter one only grows the file).
pub(super) const X264_PARAMS: &str = "cabac=1:bframes=3:b-adapt=0";

/// An open MP4 file with one H.264 stream, accepting frames in display order.
pub(super) struct H264Writer {
    output: format::context::Output,
    encoder: encoder::Video,
    /// The last frame sent, kept so identical frames are not converted again.
    last: Option<frame::Video>,
    stream_index: usize,
    encoder_time_base: Rational,
    stream_time_base: Rational,
    next_pts: i64,
    temp: tempfile::TempPath,
    width: u32,
    height: u32,
}

impl std::fmt::Debug for H264Writer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("H264Writer")
            .field("width", &self.width)
            .field("height", &self.height)
            .field("frames", &self.next_pts)
            .field("temp", &self.temp)
            .finish_non_exhaustive()
    }
}

impl H264Writer {
    /// Opens the encoder and writes the MP4 header to a temporary file beside
    /// `path`.
    /// `x264_params` replaces [`X264_PARAMS`] (for measuring alternatives).
    pub(super) fn create(
        path: &Path,
        settings: &VideoSettings,
        x264_params: Option<&str>,
    ) -> Result<Self, ImagingError> {
        init()?;
        let (width, height) = (settings.width, settings.height);
        let fps = i32::try_from(settings.fps)
            .map_err(|_| ImagingError::Video(format!("frame rate {} is out of range", settings.fps)))?;
        if settings.preset.is_empty() || !settings.preset.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(ImagingError::Video(format!(
                "invalid x264 preset {:?}",
                settings.preset
            )));
        }
        let codec = encoder::find_by_name("libx264").ok_or_else(|| {
            ImagingError::Video("the libx264 encoder is not available in this FFmpeg build".into())
        })?;

        let dir = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        let temp = tempfile::Builder::new()
            .prefix(".atelier-video-")
            .suffix(".mp4")
            .tempfile_in(dir)
            .map_err(|e| ImagingError::Video(format!("cannot create a file in {}: {e}", dir.display())))?
            .into_temp_path();
        let mut output =
            format::output_as(utf8_path(&temp)?, "mp4").map_err(ffmpeg_error("opening the MP4 muxer"))?;
        let global_header = output.format().flags().contains(format::Flags::GLOBAL_HEADER);

        let encoder_time_base = Rational::new(1, fps);
        let mut context = codec::context::Context::new_with_codec(codec)
            .encoder()
            .video()
            .map_err(ffmpeg_error("creating the H.264 encoder"))?;
        context.set_width(width);
        context.set_height(height);
        context.set_format(format::Pixel::YUV420P);
        context.set_time_base(encoder_time_base);
        context.set_frame_rate(Some(Rational::new(fps, 1)));
        // Frames are BT.601 limited range (see `yuv`); say so, so players do not
        // guess BT.709 and shift the colours of the products.
        context.set_colorspace(color::Space::SMPTE170M);
        context.set_color_range(color::Range::MPEG);
        context.set_color_primaries(color::Primaries::BT709);
        context.set_color_transfer_characteristic(color::TransferCharacteristic::BT709);
        if global_header {
            context.set_flags(codec::Flags::GLOBAL_HEADER);
        }
        let mut options = Dictionary::new();
        options.set("preset", &settings.preset);
        options.set("crf", &settings.crf.to_string());
        let params = x264_params.unwrap_or(X264_PARAMS);
        if !params.is_empty() {
            options.set("x264-params", params);
        }
        let encoder = context.open_with(options).map_err(ffmpeg_error(&format!(
            "opening libx264 (preset {}, crf {})",
            settings.preset, settings.crf
        )))?;

        let stream_index = {
            let mut stream = output
                .add_stream(codec)
                .map_err(ffmpeg_error("adding the video stream"))?;
            stream.set_parameters(&encoder);
            stream.set_time_base(encoder_time_base);
            stream.set_avg_frame_rate(Rational::new(fps, 1));
            stream.set_rate(Rational::new(fps, 1));
            stream.index()
        };
        let mut muxer_options = Dictionary::new();
        muxer_options.set("movflags", "+faststart");
        output
            .write_header_with(muxer_options)
            .map_err(ffmpeg_error("writing the MP4 header"))?;
        let stream_time_base = output
            .stream(stream_index)
            .map(|s| s.time_base())
            .ok_or_else(|| ImagingError::Video("the MP4 muxer lost the video stream".into()))?;

        Ok(Self {
            output,
            encoder,
            last: None,
            stream_index,
            encoder_time_base,
            stream_time_base,
            next_pts: 0,
            temp,
            width,
            height,
        })
    }

    /// Encodes `picture` as the next frame. It must be exactly the video's size.
    pub(super) fn push(&mut self, picture: &Planes) -> Result<(), ImagingError> {
        if picture.dimensions() != (self.width, self.height) {
            return Err(ImagingError::Video(format!(
                "frame is {}x{}, the video is {}x{}",
                picture.y.width(),
                picture.y.height(),
                self.width,
                self.height
            )));
        }
        // A fresh frame each time: the encoder may still hold a reference to the
        // previous one, which must not change under it.
        let mut frame = frame::Video::new(format::Pixel::YUV420P, self.width, self.height);
        for (index, plane) in [&picture.y, &picture.u, &picture.v].into_iter().enumerate() {
            copy_plane(&mut frame, index, plane)?;
        }
        self.send(frame)
    }

    /// Encodes the previous frame again. Nothing is converted or copied, and x264
    /// codes an unchanged frame as skipped macroblocks, a few bytes each.
    pub(super) fn repeat(&mut self) -> Result<(), ImagingError> {
        match self.last.take() {
            Some(frame) => self.send(frame),
            None => Err(ImagingError::Video("no frame to repeat yet".into())),
        }
    }

    fn send(&mut self, mut frame: frame::Video) -> Result<(), ImagingError> {
        frame.set_pts(Some(self.next_pts));
        self.encoder
            .send_frame(&frame)
            .map_err(ffmpeg_error("sending a frame to libx264"))?;
        self.next_pts += 1;
        self.last = Some(frame);
        self.drain()
    }

    /// Writes every packet the encoder has ready.
    fn drain(&mut self) -> Result<(), ImagingError> {
        let mut packet = Packet::empty();
        loop {
            match self.encoder.receive_packet(&mut packet) {
                Ok(()) => {}
                Err(ffmpeg::Error::Other {
                    errno: ffmpeg::error::EAGAIN,
                })
                | Err(ffmpeg::Error::Eof) => {
                    return Ok(());
                }
                Err(e) => return Err(ffmpeg_error("encoding with libx264")(e)),
            }
            if packet.duration() <= 0 {
                packet.set_duration(1);
            }
            packet.set_stream(self.stream_index);
            packet.rescale_ts(self.encoder_time_base, self.stream_time_base);
            packet
                .write_interleaved(&mut self.output)
                .map_err(ffmpeg_error("writing a packet to the MP4"))?;
        }
    }

    /// Flushes the encoder, writes the index (moved to the front: faststart) and
    /// moves the file to `path`. Returns the number of frames written.
    pub(super) fn finish(mut self, path: &Path) -> Result<u32, ImagingError> {
        self.last = None;
        self.encoder
            .send_eof()
            .map_err(ffmpeg_error("flushing libx264"))?;
        self.drain()?;
        self.output
            .write_trailer()
            .map_err(ffmpeg_error("writing the MP4 index"))?;
        let frames = u32::try_from(self.next_pts)
            .map_err(|_| ImagingError::Video("too many frames for one video".into()))?;
        let Self { output, temp, .. } = self;
        // Close the file before moving it.
        drop(output);
        temp.persist(path).map_err(|e| {
            ImagingError::Video(format!(
                "cannot move the video to {}: {}",
                path.display(),
                e.error
            ))
        })?;
        Ok(frames)
    }
}

/// Copies `plane` into plane `index` of `frame`, row by row: FFmpeg pads its rows,
/// so `stride(index)` is at least the plane's width.
fn copy_plane(frame: &mut frame::Video, index: usize, plane: &GrayImage) -> Result<(), ImagingError> {
    let width = plane.width() as usize;
    let stride = frame.stride(index);
    if width == 0 || stride < width {
        return Err(ImagingError::Video(format!(
            "plane {index} of {width} columns does not fit FFmpeg's row stride {stride}"
        )));
    }
    let rows = frame.data_mut(index).chunks_mut(stride);
    for (dst, src) in rows.zip(plane.as_raw().chunks_exact(width)) {
        if let Some(dst) = dst.get_mut(..width) {
            dst.copy_from_slice(src);
        }
    }
    Ok(())
}

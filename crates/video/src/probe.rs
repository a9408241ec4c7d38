//! Reading a video back: stream facts from the container, frames by decoding.
//!
//! Used to verify what the encoder wrote (the frame count is counted, not taken
//! from the header) and by tests to look at individual frames.

use std::path::Path;

use ffmpeg::{Packet, codec, decoder, format, frame, media, software::scaling};
use ffmpeg_next as ffmpeg;
use image::RgbImage;

use super::{VideoInfo, ffmpeg_error, init, utf8_path};
use atelier_imaging::ImagingError;

/// The container's description of a video stream, before any decoding.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamInfo {
    /// Codec short name, e.g. `h264`.
    pub codec: String,
    /// Pixel format name, e.g. `yuv420p`.
    pub pixel_format: String,
    pub width: u32,
    pub height: u32,
    /// Stream duration in seconds (0 when the container does not say).
    pub duration_seconds: f64,
}

/// An opened file, its best video stream and a decoder for it.
struct Source {
    input: format::context::Input,
    stream: usize,
    decoder: decoder::Video,
    info: StreamInfo,
}

fn open(path: &Path) -> Result<Source, ImagingError> {
    init()?;
    let context = format!("opening {}", path.display());
    let input = format::input(utf8_path(path)?).map_err(ffmpeg_error(&context))?;
    let stream = input
        .streams()
        .best(media::Type::Video)
        .ok_or_else(|| ImagingError::Video(format!("{} has no video stream", path.display())))?;
    let index = stream.index();
    let time_base = f64::from(stream.time_base());
    let duration = if stream.duration() > 0 {
        stream.duration() as f64 * time_base
    } else if input.duration() > 0 {
        input.duration() as f64 * f64::from(ffmpeg::rescale::TIME_BASE)
    } else {
        0.0
    };
    let parameters = stream.parameters();
    let codec_name = parameters.id().name().to_string();
    let decoder = codec::context::Context::from_parameters(parameters)
        .and_then(|c| c.decoder().video())
        .map_err(ffmpeg_error(&format!("opening a decoder for {}", path.display())))?;
    let pixel_format = decoder
        .format()
        .descriptor()
        .map_or_else(|| "unknown".to_string(), |d| d.name().to_string());
    let info = StreamInfo {
        codec: codec_name,
        pixel_format,
        width: decoder.width(),
        height: decoder.height(),
        duration_seconds: duration,
    };
    Ok(Source {
        input,
        stream: index,
        decoder,
        info,
    })
}

impl Source {
    /// Decodes every frame in order, calling `visit` with each frame and its index
    /// until it returns `false`. Returns the number of frames visited.
    fn decode(
        &mut self,
        mut visit: impl FnMut(u32, &frame::Video) -> Result<bool, ImagingError>,
    ) -> Result<u32, ImagingError> {
        let mut count = 0u32;
        let mut frame = frame::Video::empty();
        let mut packet = Packet::empty();
        let mut more = true;
        let mut receive = |decoder: &mut decoder::Video, count: &mut u32| -> Result<bool, ImagingError> {
            while decoder.receive_frame(&mut frame).is_ok() {
                let keep_going = visit(*count, &frame)?;
                *count += 1;
                if !keep_going {
                    return Ok(false);
                }
            }
            Ok(true)
        };
        while more {
            match packet.read(&mut self.input) {
                Ok(()) => {}
                Err(ffmpeg::Error::Eof) => break,
                Err(e) => return Err(ffmpeg_error("reading the video")(e)),
            }
            if packet.stream() != self.stream {
                continue;
            }
            self.decoder
                .send_packet(&packet)
                .map_err(ffmpeg_error("decoding the video"))?;
            more = receive(&mut self.decoder, &mut count)?;
        }
        if more {
            self.decoder
                .send_eof()
                .map_err(ffmpeg_error("flushing the decoder"))?;
            receive(&mut self.decoder, &mut count)?;
        }
        Ok(count)
    }
}

/// Stream facts from the container alone (codec, pixel format, size, duration).
pub fn stream_info(path: &Path) -> Result<StreamInfo, ImagingError> {
    Ok(open(path)?.info)
}

/// Decodes the whole video to count its frames; size and duration come from the
/// stream. This is how a written video is verified.
pub fn probe(path: &Path) -> Result<VideoInfo, ImagingError> {
    let mut source = open(path)?;
    let frames = source.decode(|_, _| Ok(true))?;
    Ok(VideoInfo {
        width: source.info.width,
        height: source.info.height,
        frames,
        duration_seconds: source.info.duration_seconds,
    })
}

/// Decodes frame `index` (0-based, display order) to RGB.
pub fn decode_frame(path: &Path, index: u32) -> Result<RgbImage, ImagingError> {
    let mut source = open(path)?;
    let mut found = None;
    let frames = source.decode(|i, frame| {
        if i == index {
            found = Some(to_rgb(frame)?);
            return Ok(false);
        }
        Ok(true)
    })?;
    found.ok_or_else(|| {
        ImagingError::Video(format!(
            "{} has {frames} frames, no frame {index}",
            path.display()
        ))
    })
}

/// Converts a decoded frame to a packed RGB image, copying row by row because
/// FFmpeg pads its rows (`stride(0)` ≥ width × 3).
fn to_rgb(frame: &frame::Video) -> Result<RgbImage, ImagingError> {
    let (width, height) = (frame.width(), frame.height());
    let mut scaler = scaling::Context::get(
        frame.format(),
        width,
        height,
        format::Pixel::RGB24,
        width,
        height,
        scaling::Flags::BILINEAR,
    )
    .map_err(ffmpeg_error("creating the YUV to RGB converter"))?;
    let mut rgb = frame::Video::empty();
    scaler
        .run(frame, &mut rgb)
        .map_err(ffmpeg_error("converting a frame to RGB"))?;
    let row = width as usize * 3;
    let stride = rgb.stride(0);
    if row == 0 || stride < row {
        return Err(ImagingError::Video(format!(
            "decoded frame of {width}x{height} does not fit its row stride {stride}"
        )));
    }
    let mut out = Vec::with_capacity(row * height as usize);
    for line in rgb.data(0).chunks(stride).take(height as usize) {
        let line = line
            .get(..row)
            .ok_or_else(|| ImagingError::Video("decoded frame is shorter than its size".into()))?;
        out.extend_from_slice(line);
    }
    RgbImage::from_raw(width, height, out)
        .ok_or_else(|| ImagingError::Video("decoded frame is shorter than its size".into()))
}

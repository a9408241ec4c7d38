//! Decoding client images with limits: the first thing every job does, and the
//! place where hostile or broken input must be stopped cheaply.
//!
//! Order of checks, each before anything expensive happens:
//! 1. byte length against `max_bytes`;
//! 2. format sniffed from the magic bytes (never from a name or declared type);
//! 3. width and height read from the header alone, checked against `max_side`,
//!    `max_pixels` and `min_side` before any pixel buffer exists, so a PNG that
//!    claims 50000×50000 is refused in microseconds;
//! 4. the real decode, with `image::Limits` (`max_alloc`) as a second guard.
//!
//! JPEG goes through libjpeg-turbo (see [`jpeg`] for why and the measured figures),
//! PNG and WebP through the `image` crate. The result is always upright (EXIF
//! orientation applied) and 8-bit RGB, with the alpha channel kept apart and only
//! when it actually makes something transparent.

mod jpeg;
mod sniff;

use std::fmt;
use std::io::Cursor;

use atelier_core::settings::DecodeLimits;
use image::codecs::png::PngDecoder;
use image::codecs::webp::WebPDecoder;
use image::metadata::Orientation;
use image::{DynamicImage, GrayImage, ImageDecoder, ImageError, RgbImage};

use crate::ImagingError;

/// The input formats Atelier reads, as sniffed from content.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum InputFormat {
    Jpeg,
    Png,
    WebP,
}

impl InputFormat {
    /// File extension for storing the original under its real type.
    pub fn extension(self) -> &'static str {
        match self {
            Self::Jpeg => "jpg",
            Self::Png => "png",
            Self::WebP => "webp",
        }
    }

    /// MIME type for serving the original back with the right `Content-Type`.
    pub fn mime(self) -> &'static str {
        match self {
            Self::Jpeg => "image/jpeg",
            Self::Png => "image/png",
            Self::WebP => "image/webp",
        }
    }
}

impl fmt::Display for InputFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Jpeg => "JPEG",
            Self::Png => "PNG",
            Self::WebP => "WebP",
        })
    }
}

/// What a header says about an input, learnt without decoding pixels: lets the
/// gateway refuse a request before it queues any work.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Probe {
    pub format: InputFormat,
    /// Upright width (after EXIF orientation), as the decoded image will have it.
    pub width: u32,
    /// Upright height (after EXIF orientation).
    pub height: u32,
    /// Bytes the decode allocates at its peak (the decoder's own buffer, bit
    /// depth and channels counted, and the 8-bit result), for a memory budget.
    pub decoded_bytes: u64,
}

/// A decoded, upright, 8-bit image.
#[derive(Debug, Clone)]
pub struct Decoded {
    pub rgb: RgbImage,
    /// The alpha channel, only when at least one pixel is not fully opaque: analysis
    /// then takes the garment mask from it instead of estimating one.
    pub alpha: Option<GrayImage>,
    pub format: InputFormat,
}

impl Decoded {
    /// The image composited over white: what a slideshow or a report shows of a
    /// transparent cut-out (opaque images come back unchanged).
    pub fn on_white(self) -> RgbImage {
        let Some(alpha) = self.alpha else {
            return self.rgb;
        };
        let mut rgb = self.rgb;
        for (px, a) in rgb.pixels_mut().zip(alpha.iter()) {
            let a = u32::from(*a);
            for c in &mut px.0 {
                *c = ((u32::from(*c) * a + 255 * (255 - a) + 127) / 255) as u8;
            }
        }
        rgb
    }

    /// The pixels with their alpha, if any, joined again for re-encoding.
    pub fn into_pixels(self) -> crate::encode::Pixels {
        match self.alpha {
            None => crate::encode::Pixels::Rgb(self.rgb),
            Some(alpha) => {
                let (w, h) = self.rgb.dimensions();
                let mut out = image::RgbaImage::new(w, h);
                for ((o, c), a) in out.pixels_mut().zip(self.rgb.pixels()).zip(alpha.iter()) {
                    o.0 = [c.0[0], c.0[1], c.0[2], *a];
                }
                crate::encode::Pixels::Rgba(out)
            }
        }
    }
}

/// Checks an input against the limits from its header alone and says what it is.
///
/// Never allocates a pixel buffer; cost is independent of the claimed image size.
pub fn probe(bytes: &[u8], limits: &DecodeLimits) -> Result<Probe, ImagingError> {
    let opened = open(bytes, limits)?;
    let (width, height) = upright(opened.width, opened.height, opened.orientation);
    let pixels = u64::from(width) * u64::from(height);
    // The result is 8-bit RGB plus an alpha plane at most.
    let result = pixels * 4;
    let native = match &opened.pending {
        // libjpeg-turbo decodes straight into the RGB result.
        Pending::Jpeg(_) => 0,
        Pending::Generic(decoder) => decoder.total_bytes(),
    };
    Ok(Probe {
        format: opened.format,
        width,
        height,
        decoded_bytes: native.saturating_add(result),
    })
}

/// Decodes an input to upright 8-bit RGB (+ alpha when it has transparency).
///
/// Errors: `TooLarge` / `TooSmall` from the limits, `UnsupportedFormat` for
/// anything but JPEG, PNG and WebP, `Corrupt` for truncated or damaged data.
pub fn decode(bytes: &[u8], limits: &DecodeLimits) -> Result<Decoded, ImagingError> {
    decode_reduced(bytes, limits, 1.0)
}

/// [`decode`] for a consumer that will shrink the image to `scale` (0–1) of its
/// size anyway: a JPEG is decoded at the smallest eighth of its size, sides
/// rounded up, that is still at least `scale` of it (libjpeg's reduced inverse
/// DCT, see `jpeg::decode`), so the consumer's own resize still only reduces.
/// For a 24-megapixel photo placed on a 960×1280 canvas that is 3/8: about a
/// seventh of the pixels and memory and a fraction of the decode time. Other
/// formats, and any `scale` of 1 or more (or not a number), decode in full.
pub fn decode_reduced(bytes: &[u8], limits: &DecodeLimits, scale: f64) -> Result<Decoded, ImagingError> {
    let opened = open(bytes, limits)?;
    let format = opened.format;
    let mut img = match opened.pending {
        Pending::Jpeg(header) => {
            DynamicImage::ImageRgb8(jpeg::decode(bytes, header, reduced_eighths(scale))?)
        }
        Pending::Generic(mut decoder) => {
            let mut guard = image_limits(limits);
            guard
                .reserve(decoder.total_bytes())
                .map_err(|e| from_image(format, e))?;
            decoder.set_limits(guard).map_err(|e| from_image(format, e))?;
            DynamicImage::from_decoder(decoder).map_err(|e| from_image(format, e))?
        }
    };
    img.apply_orientation(opened.orientation);
    let (rgb, alpha) = split_alpha(img);
    Ok(Decoded { rgb, alpha, format })
}

/// The fewest eighths (1–8) whose fraction is at least `scale`.
fn reduced_eighths(scale: f64) -> u8 {
    let eighths = f64::from(jpeg::EIGHTHS);
    if scale.is_nan() || scale >= 1.0 {
        return jpeg::EIGHTHS;
    }
    // A hair of tolerance so that a scale of exactly k/8 computed in floating
    // point does not round up to (k+1)/8.
    ((scale * eighths - 1e-9).ceil().clamp(1.0, eighths)) as u8
}

/// Reads back a mask written by `crate::encode::png_gray` (any PNG is accepted and
/// converted to 8-bit grey). Masks are our own artefacts, so no client limits apply
/// beyond the `image` crate's default allocation cap.
pub fn decode_mask(bytes: &[u8]) -> Result<GrayImage, ImagingError> {
    let format = sniff::sniff(bytes)?;
    if format != InputFormat::Png {
        return Err(ImagingError::UnsupportedFormat(Some(format!(
            "masks are grey PNGs, got {format}"
        ))));
    }
    let decoder = PngDecoder::with_limits(Cursor::new(bytes), image::Limits::default())
        .map_err(|e| from_image(format, e))?;
    let img = DynamicImage::from_decoder(decoder).map_err(|e| from_image(format, e))?;
    Ok(img.into_luma8())
}

/// An input whose header passed the limits, ready for the pixel decode.
struct Opened<'a> {
    format: InputFormat,
    width: u32,
    height: u32,
    orientation: Orientation,
    pending: Pending<'a>,
}

enum Pending<'a> {
    Jpeg(jpeg::Header),
    Generic(Box<dyn ImageDecoder + 'a>),
}

fn open<'a>(bytes: &'a [u8], limits: &DecodeLimits) -> Result<Opened<'a>, ImagingError> {
    let len = bytes.len() as u64;
    if len > limits.max_bytes {
        return Err(ImagingError::TooLarge(format!(
            "the file is {len} bytes, the limit is {} bytes",
            limits.max_bytes
        )));
    }
    let format = sniff::sniff(bytes)?;
    match format {
        InputFormat::Jpeg => {
            let header = jpeg::header(bytes)?;
            check_dimensions(header.width, header.height, limits)?;
            let scans = jpeg::count_scans(bytes, limits.max_jpeg_scans);
            if scans > limits.max_jpeg_scans {
                return Err(ImagingError::TooComplex(format!(
                    "a JPEG with more than {} scans (each is a full pass over the image)",
                    limits.max_jpeg_scans
                )));
            }
            let orientation = jpeg::orientation(bytes);
            Ok(Opened {
                format,
                width: header.width,
                height: header.height,
                orientation,
                pending: Pending::Jpeg(header),
            })
        }
        InputFormat::Png => {
            // Our own IHDR read: the check must not depend on how far the PNG
            // decoder reads (and allocates) before it reports dimensions.
            let (width, height) = png_ihdr(bytes)?;
            check_dimensions(width, height, limits)?;
            let decoder = PngDecoder::with_limits(Cursor::new(bytes), image_limits(limits))
                .map_err(|e| from_image(format, e))?;
            generic(format, Box::new(decoder), limits)
        }
        InputFormat::WebP => {
            let decoder = WebPDecoder::new(Cursor::new(bytes)).map_err(|e| from_image(format, e))?;
            generic(format, Box::new(decoder), limits)
        }
    }
}

fn generic<'a>(
    format: InputFormat,
    mut decoder: Box<dyn ImageDecoder + 'a>,
    limits: &DecodeLimits,
) -> Result<Opened<'a>, ImagingError> {
    let (width, height) = decoder.dimensions();
    check_dimensions(width, height, limits)?;
    // Broken metadata must not cost the image: fall back to "as stored".
    let orientation = decoder.orientation().unwrap_or(Orientation::NoTransforms);
    Ok(Opened {
        format,
        width,
        height,
        orientation,
        pending: Pending::Generic(decoder),
    })
}

/// Width and height from a PNG's IHDR chunk, which the format requires first.
fn png_ihdr(bytes: &[u8]) -> Result<(u32, u32), ImagingError> {
    let field = |at: usize| {
        bytes
            .get(at..at + 4)
            .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    };
    match (bytes.get(12..16), field(16), field(20)) {
        (Some(b"IHDR"), Some(w), Some(h)) => Ok((w, h)),
        (Some(b"IHDR"), ..) | (None, ..) => {
            Err(ImagingError::Corrupt("PNG is truncated inside its header".into()))
        }
        (Some(_), ..) => Err(ImagingError::Corrupt(
            "PNG does not start with an IHDR chunk".into(),
        )),
    }
}

fn check_dimensions(width: u32, height: u32, limits: &DecodeLimits) -> Result<(), ImagingError> {
    if width > limits.max_side || height > limits.max_side {
        return Err(ImagingError::TooLarge(format!(
            "{width}x{height} px, each side must be at most {} px",
            limits.max_side
        )));
    }
    let pixels = u64::from(width) * u64::from(height);
    if pixels > limits.max_pixels {
        return Err(ImagingError::TooLarge(format!(
            "{width}x{height} px is {:.1} megapixels, the limit is {:.1}",
            pixels as f64 / 1e6,
            limits.max_pixels as f64 / 1e6
        )));
    }
    if width.min(height) < limits.min_side {
        return Err(ImagingError::TooSmall {
            width,
            height,
            min_side: limits.min_side,
        });
    }
    Ok(())
}

/// The `image` crate's own guard, set from ours: strict side limits, and an
/// allocation cap that fits the largest allowed image at 16-bit RGBA plus slack for
/// the decoder's working buffers.
fn image_limits(limits: &DecodeLimits) -> image::Limits {
    let mut l = image::Limits::default();
    l.max_image_width = Some(limits.max_side);
    l.max_image_height = Some(limits.max_side);
    l.max_alloc = Some(limits.max_pixels.saturating_mul(8).saturating_add(64 << 20));
    l
}

fn from_image(format: InputFormat, e: ImageError) -> ImagingError {
    match e {
        ImageError::Limits(l) => ImagingError::TooLarge(format!("{format}: {l}")),
        ImageError::Unsupported(u) => ImagingError::UnsupportedFormat(Some(format!("{format}: {u}"))),
        ImageError::IoError(io) if io.kind() == std::io::ErrorKind::UnexpectedEof => {
            ImagingError::Corrupt(format!("{format} is truncated: {io}"))
        }
        other => ImagingError::Corrupt(format!("{format}: {other}")),
    }
}

fn upright(width: u32, height: u32, orientation: Orientation) -> (u32, u32) {
    match orientation {
        Orientation::Rotate90
        | Orientation::Rotate270
        | Orientation::Rotate90FlipH
        | Orientation::Rotate270FlipH => (height, width),
        _ => (width, height),
    }
}

/// Splits off the alpha channel, dropping it when every pixel is opaque.
fn split_alpha(img: DynamicImage) -> (RgbImage, Option<GrayImage>) {
    if !img.color().has_alpha() {
        return (img.into_rgb8(), None);
    }
    let rgba = img.into_rgba8();
    let (w, h) = rgba.dimensions();
    let mut rgb = Vec::with_capacity(rgba.len() / 4 * 3);
    let mut alpha = Vec::with_capacity(rgba.len() / 4);
    let mut min_alpha = u8::MAX;
    for px in rgba.as_raw().chunks_exact(4) {
        rgb.extend_from_slice(&px[..3]);
        alpha.push(px[3]);
        min_alpha = min_alpha.min(px[3]);
    }
    let rgb = RgbImage::from_raw(w, h, rgb).expect("three bytes were pushed for each of w*h pixels");
    let alpha = (min_alpha < u8::MAX).then(|| GrayImage::from_raw(w, h, alpha).expect("one byte per pixel"));
    (rgb, alpha)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> DecodeLimits {
        DecodeLimits {
            max_bytes: 1 << 20,
            max_pixels: 1_000_000,
            min_side: 64,
            max_side: 2000,
            decode_budget_bytes: 1 << 30,
            max_jpeg_scans: 100,
        }
    }

    #[test]
    fn dimension_checks_name_the_right_limit() {
        let l = limits();
        assert!(check_dimensions(64, 2000, &l).is_ok());
        assert!(matches!(
            check_dimensions(2001, 100, &l),
            Err(ImagingError::TooLarge(_))
        ));
        let too_many = check_dimensions(1001, 1000, &l);
        assert!(matches!(too_many, Err(ImagingError::TooLarge(m)) if m.contains("megapixels")));
        assert!(matches!(
            check_dimensions(63, 500, &l),
            Err(ImagingError::TooSmall {
                width: 63,
                height: 500,
                min_side: 64
            })
        ));
    }

    #[test]
    fn transparency_composites_on_white_and_rejoins() {
        let rgba =
            image::RgbaImage::from_fn(3, 1, |x, _| image::Rgba([0, 100, 200, [0, 128, 255][x as usize]]));
        let (rgb, alpha) = split_alpha(DynamicImage::ImageRgba8(rgba.clone()));
        let decoded = Decoded {
            rgb,
            alpha,
            format: InputFormat::Png,
        };
        assert_eq!(decoded.clone().into_pixels(), crate::encode::Pixels::Rgba(rgba));
        let white = decoded.on_white();
        assert_eq!(white.get_pixel(0, 0).0, [255, 255, 255]);
        assert_eq!(white.get_pixel(1, 0).0, [127, 177, 227]);
        assert_eq!(white.get_pixel(2, 0).0, [0, 100, 200]);
    }

    #[test]
    fn opaque_alpha_is_dropped_and_real_alpha_kept() {
        let opaque = image::RgbaImage::from_pixel(4, 3, image::Rgba([1, 2, 3, 255]));
        let (rgb, alpha) = split_alpha(DynamicImage::ImageRgba8(opaque));
        assert_eq!(rgb.get_pixel(3, 2), &image::Rgb([1, 2, 3]));
        assert!(alpha.is_none());

        let mut cut = image::RgbaImage::from_pixel(4, 3, image::Rgba([9, 8, 7, 255]));
        cut.put_pixel(1, 2, image::Rgba([9, 8, 7, 10]));
        let (rgb, alpha) = split_alpha(DynamicImage::ImageRgba8(cut));
        let alpha = alpha.expect("one transparent pixel keeps the channel");
        assert_eq!(alpha.get_pixel(1, 2).0, [10]);
        assert_eq!(alpha.get_pixel(0, 0).0, [255]);
        assert_eq!(rgb.get_pixel(1, 2), &image::Rgb([9, 8, 7]));
    }

    #[test]
    fn png_header_is_read_without_a_decoder() {
        let mut bytes = b"\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR".to_vec();
        bytes.extend(50_000u32.to_be_bytes());
        bytes.extend(40_000u32.to_be_bytes());
        assert_eq!(png_ihdr(&bytes).ok(), Some((50_000, 40_000)));
        assert!(matches!(png_ihdr(&bytes[..18]), Err(ImagingError::Corrupt(_))));
    }

    #[test]
    fn extensions_and_mime_types_match() {
        for (f, ext, mime) in [
            (InputFormat::Jpeg, "jpg", "image/jpeg"),
            (InputFormat::Png, "png", "image/png"),
            (InputFormat::WebP, "webp", "image/webp"),
        ] {
            assert_eq!((f.extension(), f.mime()), (ext, mime));
        }
    }

    #[test]
    fn a_reduced_jpeg_decode_takes_the_first_eighth_at_or_above_the_scale() {
        assert_eq!(reduced_eighths(1.0), 8);
        assert_eq!(reduced_eighths(f64::NAN), 8);
        assert_eq!(reduced_eighths(0.25), 2);
        assert_eq!(reduced_eighths(0.2501), 3);
        assert_eq!(reduced_eighths(0.01), 1);
        assert_eq!(reduced_eighths(0.0), 1);
        let img = RgbImage::from_fn(803, 605, |x, y| {
            image::Rgb([(x % 256) as u8, (y % 256) as u8, 90])
        });
        let jpeg = crate::encode::jpeg(&img, 95).expect("jpeg");
        let full = decode(&jpeg, &limits()).expect("full").rgb;
        let half = decode_reduced(&jpeg, &limits(), 0.5).expect("half").rgb;
        assert_eq!(full.dimensions(), (803, 605));
        assert_eq!(half.dimensions(), (402, 303), "sides round up");
        // The reduced decode is the picture, not a crop: a pixel matches the mean
        // of the 2×2 it stands for.
        for (x, y) in [(10u32, 10u32), (200, 150), (390, 290)] {
            let mean = |c: usize| {
                (0..4)
                    .map(|i| u32::from(full.get_pixel(2 * x + i % 2, 2 * y + i / 2)[c]))
                    .sum::<u32>() as f64
                    / 4.0
            };
            for c in 0..3 {
                let got = f64::from(half.get_pixel(x, y)[c]);
                assert!(
                    (got - mean(c)).abs() <= 6.0,
                    "({x},{y}) channel {c}: {got} vs {}",
                    mean(c)
                );
            }
        }
        // Other formats decode in full whatever the scale.
        let png = crate::encode::encode(
            &crate::encode::Pixels::Rgb(img.clone()),
            atelier_core::output::ImageFormat::Png,
            90,
        )
        .expect("png");
        assert_eq!(
            decode_reduced(&png, &limits(), 0.3)
                .expect("png")
                .rgb
                .dimensions(),
            (803, 605)
        );
    }
}

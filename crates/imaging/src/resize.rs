//! Every resize in Atelier goes through fast_image_resize (SIMD convolution, about
//! 20× faster than `image::imageops::resize` here), with one reusable entry point
//! per pixel type so no module hand-rolls its own sampling.

use fast_image_resize::{FilterType, IntoImageView, IntoImageViewMut, ResizeAlg, ResizeOptions, Resizer};
use image::{GrayImage, RgbImage};

use crate::ImagingError;

/// Resampling kernel to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Filter {
    /// Sharp, best for photos (upscaling, final output).
    Lanczos3,
    /// Smooth and ringing-free, best for masks and soft shadows.
    Bilinear,
    /// Area averaging, best for heavy reductions (analysis working copies, thumbnails).
    Box,
}

impl Filter {
    fn alg(self) -> ResizeAlg {
        ResizeAlg::Convolution(match self {
            Self::Lanczos3 => FilterType::Lanczos3,
            Self::Bilinear => FilterType::Bilinear,
            Self::Box => FilterType::Box,
        })
    }
}

/// A rectangle of a source image, in pixels (fractional edges allowed).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Crop {
    pub left: f64,
    pub top: f64,
    pub width: f64,
    pub height: f64,
}

fn run(
    src: &impl IntoImageView,
    dst: &mut impl IntoImageViewMut,
    filter: Filter,
    crop: Option<Crop>,
) -> Result<(), ImagingError> {
    let mut options = ResizeOptions::new().resize_alg(filter.alg());
    if let Some(c) = crop {
        options = options.crop(c.left, c.top, c.width, c.height);
    }
    Resizer::new()
        .resize(src, dst, &options)
        .map_err(|e| ImagingError::Resize(e.to_string()))
}

fn check(width: u32, height: u32) -> Result<(), ImagingError> {
    if width == 0 || height == 0 {
        return Err(ImagingError::Resize(format!(
            "target size {width}x{height} is empty"
        )));
    }
    Ok(())
}

/// Resizes an RGB image to exactly `width`×`height`.
pub fn rgb(src: &RgbImage, width: u32, height: u32, filter: Filter) -> Result<RgbImage, ImagingError> {
    check(width, height)?;
    let mut dst = RgbImage::new(width, height);
    run(src, &mut dst, filter, None)?;
    Ok(dst)
}

/// Resizes the `crop` region of an RGB image to exactly `width`×`height`.
pub fn rgb_crop(
    src: &RgbImage,
    crop: Crop,
    width: u32,
    height: u32,
    filter: Filter,
) -> Result<RgbImage, ImagingError> {
    check(width, height)?;
    let mut dst = RgbImage::new(width, height);
    run(src, &mut dst, filter, Some(crop))?;
    Ok(dst)
}

/// Resizes a grey image (mask, alpha, luminance) to exactly `width`×`height`.
pub fn gray(src: &GrayImage, width: u32, height: u32, filter: Filter) -> Result<GrayImage, ImagingError> {
    check(width, height)?;
    let mut dst = GrayImage::new(width, height);
    run(src, &mut dst, filter, None)?;
    Ok(dst)
}

/// Resizes the `crop` region of a grey image to exactly `width`×`height`.
pub fn gray_crop(
    src: &GrayImage,
    crop: Crop,
    width: u32,
    height: u32,
    filter: Filter,
) -> Result<GrayImage, ImagingError> {
    check(width, height)?;
    let mut dst = GrayImage::new(width, height);
    run(src, &mut dst, filter, Some(crop))?;
    Ok(dst)
}

/// Resamples the `crop` region of a grey image to `width`×`height` by plain
/// bilinear interpolation: two taps per axis, 8-bit weights.
///
/// Unlike [`gray_crop`] the kernel is not widened when reducing, so this is only
/// right for scales close to 1, such as a zoom or pan animated frame by frame
/// (the slideshow video). There it is about 3× faster than the convolution, whose
/// per-pixel overhead dominates at two taps, and sub-pixel motion stays smooth.
pub fn gray_crop_interpolate(
    src: &GrayImage,
    crop: Crop,
    width: u32,
    height: u32,
) -> Result<GrayImage, ImagingError> {
    check(width, height)?;
    let (sw, sh) = (src.width() as usize, src.height() as usize);
    let finite = [crop.left, crop.top, crop.width, crop.height]
        .iter()
        .all(|v| v.is_finite());
    if sw == 0 || sh == 0 || !finite || crop.width <= 0.0 || crop.height <= 0.0 {
        return Err(ImagingError::Resize(format!(
            "cannot take {crop:?} from a {sw}x{sh} image"
        )));
    }
    // For each output column (row): the first source column (row) and the weight
    // of the next one, in 1/256.
    let taps = |start: f64, span: f64, out: u32, len: usize| -> Vec<(usize, u32)> {
        let step = span / f64::from(out);
        (0..out)
            .map(|i| {
                let pos = (start + (f64::from(i) + 0.5) * step - 0.5).clamp(0.0, (len - 1) as f64);
                let base = (pos as usize).min(len.saturating_sub(2));
                (
                    base,
                    ((pos - base as f64) * 256.0).round().clamp(0.0, 256.0) as u32,
                )
            })
            .collect()
    };
    let xs = taps(crop.left, crop.width, width, sw);
    let ys = taps(crop.top, crop.height, height, sh);
    // Only the source columns the crop reads are blended vertically.
    let x0 = xs.first().map_or(0, |t| t.0);
    let x1 = xs.last().map_or(sw, |t| (t.0 + 2).min(sw));
    let last = x1 - x0 - 1;
    let raw = src.as_raw();
    let mut row = vec![0u32; x1 - x0];
    let mut out = vec![0u8; width as usize * height as usize];
    for (dst, &(y, fy)) in out.chunks_exact_mut(width as usize).zip(&ys) {
        let next = (y + 1).min(sh - 1);
        let r0 = &raw[y * sw + x0..y * sw + x1];
        let r1 = &raw[next * sw + x0..next * sw + x1];
        for ((t, &p), &q) in row.iter_mut().zip(r0).zip(r1) {
            *t = u32::from(p) * (256 - fy) + u32::from(q) * fy;
        }
        for (o, &(x, fx)) in dst.iter_mut().zip(&xs) {
            let i = x - x0;
            let (p, q) = (row[i], row[(i + 1).min(last)]);
            *o = ((p * (256 - fx) + q * fx + 32768) >> 16) as u8;
        }
    }
    GrayImage::from_raw(width, height, out).ok_or_else(|| ImagingError::Resize("output size overflow".into()))
}

/// Size that fits `width`×`height` inside a `max_side` square, keeping the aspect
/// ratio and never enlarging.
pub fn fit_within(width: u32, height: u32, max_side: u32) -> (u32, u32) {
    let longest = width.max(height);
    if longest <= max_side {
        return (width, height);
    }
    let scale = max_side as f64 / longest as f64;
    let w = ((width as f64 * scale).round() as u32).max(1);
    let h = ((height as f64 * scale).round() as u32).max(1);
    (w, h)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resizes_to_the_requested_size_and_keeps_flat_colour() {
        let src = RgbImage::from_pixel(100, 60, image::Rgb([200, 100, 50]));
        let out = rgb(&src, 250, 150, Filter::Lanczos3).expect("resize");
        assert_eq!(out.dimensions(), (250, 150));
        assert_eq!(out.get_pixel(125, 75), &image::Rgb([200, 100, 50]));
    }

    #[test]
    fn crop_takes_the_named_region() {
        let mut src = GrayImage::new(100, 100);
        for y in 0..100 {
            for x in 50..100 {
                src.put_pixel(x, y, image::Luma([255]));
            }
        }
        let crop = Crop {
            left: 50.0,
            top: 0.0,
            width: 50.0,
            height: 100.0,
        };
        let out = gray_crop(&src, crop, 10, 20, Filter::Box).expect("resize");
        assert!(out.pixels().all(|p| p.0[0] == 255));
    }

    #[test]
    fn interpolated_crop_keeps_flat_areas_and_places_edges() {
        // Left half 0, right half 200: a centred crop at scale 1 keeps the edge in
        // the middle, and flat areas stay exact.
        let src = GrayImage::from_fn(100, 40, |x, _| image::Luma([if x < 50 { 0 } else { 200 }]));
        let crop = Crop {
            left: 0.0,
            top: 0.0,
            width: 100.0,
            height: 40.0,
        };
        let out = gray_crop_interpolate(&src, crop, 100, 40).expect("resize");
        assert_eq!(out, src);
        let zoom = Crop {
            left: 25.0,
            top: 10.0,
            width: 50.0,
            height: 20.0,
        };
        let out = gray_crop_interpolate(&src, zoom, 100, 40).expect("resize");
        assert_eq!((out.get_pixel(10, 20).0[0], out.get_pixel(90, 20).0[0]), (0, 200));
        let mid = out.get_pixel(49, 5).0[0];
        assert!(
            mid < 100 && out.get_pixel(50, 5).0[0] > 100,
            "edge at the centre ({mid})"
        );
        let bad = Crop {
            left: f64::NAN,
            ..crop
        };
        assert!(gray_crop_interpolate(&src, bad, 10, 10).is_err());
        assert!(gray_crop_interpolate(&GrayImage::new(1, 1), crop, 3, 3).is_ok());
    }

    #[test]
    fn empty_target_is_an_error_not_a_panic() {
        let src = GrayImage::new(10, 10);
        assert!(gray(&src, 0, 5, Filter::Bilinear).is_err());
    }

    #[test]
    fn fit_within_never_enlarges() {
        assert_eq!(fit_within(1200, 1600, 1024), (768, 1024));
        assert_eq!(fit_within(300, 200, 1024), (300, 200));
    }
}

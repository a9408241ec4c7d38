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

/// Scales `src` to cover `width`×`height` and crops the overflow evenly from
/// both sides: how a remote generator's picture of another size or aspect is
/// brought to the canvas the client asked for (nothing is stretched).
pub fn cover(src: &RgbImage, width: u32, height: u32) -> Result<RgbImage, ImagingError> {
    let (sw, sh) = (f64::from(src.width()), f64::from(src.height()));
    if src.dimensions() == (width, height) {
        return Ok(src.clone());
    }
    let (tw, th) = (f64::from(width), f64::from(height));
    let scale = (tw / sw).max(th / sh);
    let (cw, ch) = ((tw / scale).min(sw), (th / scale).min(sh));
    let crop = Crop {
        left: (sw - cw) / 2.0,
        top: (sh - ch) / 2.0,
        width: cw,
        height: ch,
    };
    rgb_crop(src, crop, width, height, Filter::Lanczos3)
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
/// bilinear interpolation: two taps per axis, 8-bit fixed-point weights.
///
/// Unlike [`gray_crop`] the kernel is not widened when reducing, so this is only
/// right for scales close to 1, such as a zoom or pan animated frame by frame
/// (the slideshow video), where two taps are all a sub-pixel step needs.
///
/// Why not fast_image_resize here: profiled on the video, its one-channel
/// horizontal pass was a quarter of the helper's CPU. At a scale near 1 the
/// source column under output column `x` is `x + k` with `k` constant over long
/// runs (it changes once every `1 / (1 − scale)` columns), so each run is a
/// blend of two *contiguous* slices with per-column weights: no gathers, and the
/// compiler vectorises both passes (16-bit lanes). A 720×960 plane takes a few
/// tenths of a millisecond.
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
    let xs = taps(crop.left, crop.width, width, sw);
    let ys = taps(crop.top, crop.height, height, sh);
    // Only the source columns the crop reads are blended vertically.
    let x0 = xs.first().map_or(0, |t| t.0);
    let x1 = xs.last().map_or(sw, |t| (t.0 + 2).min(sw));
    let runs = runs(&xs, x0);
    let weights: Vec<u16> = xs.iter().map(|t| t.1).collect();
    let raw = src.as_raw();
    let mut column = vec![0u8; x1 - x0 + 1];
    let mut out = vec![0u8; width as usize * height as usize];
    for (dst, &(y, fy)) in out.chunks_exact_mut(width as usize).zip(&ys) {
        let next = (y + 1).min(sh - 1);
        let r0 = &raw[y * sw + x0..y * sw + x1];
        let r1 = &raw[next * sw + x0..next * sw + x1];
        for ((t, &p), &q) in column.iter_mut().zip(r0).zip(r1) {
            *t = lerp(p, q, fy);
        }
        // One past the used columns repeats the last (read only with weight 0).
        column[x1 - x0] = column[x1 - x0 - 1];
        for run in &runs {
            let n = run.end - run.start;
            let (a, b) = (
                &column[run.src..run.src + n],
                &column[run.src + 1..run.src + 1 + n],
            );
            let (w, o) = (&weights[run.start..run.end], &mut dst[run.start..run.end]);
            for (((o, &p), &q), &f) in o.iter_mut().zip(a).zip(b).zip(w) {
                *o = lerp(p, q, f);
            }
        }
    }
    GrayImage::from_raw(width, height, out).ok_or_else(|| ImagingError::Resize("output size overflow".into()))
}

/// Weight denominator of [`gray_crop_interpolate`]: 8 bits, so a blend fits u16.
const ONE: u16 = 256;

/// `p` and `q` mixed with `f`/256 of `q`, rounded.
#[inline(always)]
fn lerp(p: u8, q: u8, f: u16) -> u8 {
    ((u16::from(p) * (ONE - f) + u16::from(q) * f + ONE / 2) >> 8) as u8
}

/// For each output column (row) over `span` source pixels from `start`: the first
/// of its two source columns (rows) and the weight of the second, in 1/256.
fn taps(start: f64, span: f64, out: u32, len: usize) -> Vec<(usize, u16)> {
    let step = span / f64::from(out);
    (0..out)
        .map(|i| {
            let pos = (start + (f64::from(i) + 0.5) * step - 0.5).clamp(0.0, (len - 1) as f64);
            let base = (pos as usize).min(len.saturating_sub(2));
            let weight = ((pos - base as f64) * f64::from(ONE)).round();
            (base, weight.clamp(0.0, f64::from(ONE)) as u16)
        })
        .collect()
}

/// Output columns `start..end` read source columns `src + (x − start)` and the one
/// after (indices relative to the first column read).
#[derive(Debug, Clone, Copy, PartialEq)]
struct Run {
    start: usize,
    end: usize,
    src: usize,
}

/// Splits the columns into maximal runs over contiguous source columns.
fn runs(xs: &[(usize, u16)], x0: usize) -> Vec<Run> {
    let mut runs: Vec<Run> = Vec::new();
    for (x, &(base, _)) in xs.iter().enumerate() {
        let src = base - x0;
        match runs.last_mut() {
            Some(run) if run.src + (x - run.start) == src => run.end = x + 1,
            _ => runs.push(Run {
                start: x,
                end: x + 1,
                src,
            }),
        }
    }
    runs
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
    fn interpolated_zoom_matches_a_float_bilinear_reference() {
        // A zoom step of the slideshow (4 % in, off-centre fraction) on a busy
        // pattern: every pixel within one level of exact bilinear interpolation.
        let src = GrayImage::from_fn(97, 61, |x, y| image::Luma([((x * 37 + y * 11) % 256) as u8]));
        let crop = Crop {
            left: 1.7,
            top: 1.2,
            width: 93.1,
            height: 58.6,
        };
        let (w, h) = (90, 57);
        let out = gray_crop_interpolate(&src, crop, w, h).expect("resize");
        let at = |x: f64, y: f64| f64::from(src.get_pixel(x as u32, y as u32).0[0]);
        for oy in 0..h {
            for ox in 0..w {
                let sx =
                    (crop.left + (f64::from(ox) + 0.5) * crop.width / f64::from(w) - 0.5).clamp(0.0, 95.999);
                let sy =
                    (crop.top + (f64::from(oy) + 0.5) * crop.height / f64::from(h) - 0.5).clamp(0.0, 59.999);
                let (fx, fy) = (sx.fract(), sy.fract());
                let (x0, y0) = (sx.floor(), sy.floor());
                let top = at(x0, y0) * (1.0 - fx) + at(x0 + 1.0, y0) * fx;
                let bottom = at(x0, y0 + 1.0) * (1.0 - fx) + at(x0 + 1.0, y0 + 1.0) * fx;
                let exact = top * (1.0 - fy) + bottom * fy;
                let got = f64::from(out.get_pixel(ox, oy).0[0]);
                assert!((got - exact).abs() <= 1.5, "({ox},{oy}): {got} vs {exact:.2}");
            }
        }
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

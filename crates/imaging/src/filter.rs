//! Fast blurs shared across the crate: box, Gaussian and wide (shadow-sized) blurs
//! on 8-bit grey and RGB images.
//!
//! Every blur is separable and built from box passes whose cost per pixel does not
//! depend on the radius (see `passes`). A Gaussian is approximated by three box
//! passes (error under 3% of the peak), and a very wide Gaussian is done at reduced
//! resolution and scaled back up, which is indistinguishable for soft shadows and
//! an order of magnitude cheaper.
//!
//! Edges are handled by clamping (the border pixel repeats), so a flat image stays
//! exactly flat and nothing darkens at the border.

use image::{GrayImage, RgbImage};

mod passes;

use crate::ImagingError;
use crate::resize::{self, Filter};

use passes::{MAX_RADIUS, blur_planes};

/// Below this sigma [`wide_blur_gray`] blurs at full resolution.
const WIDE_DIRECT_SIGMA: f32 = 8.0;

/// Box blur of a grey image with a `(2·radius+1)²` window. Radius 0 returns a copy.
pub fn box_blur_gray(img: &GrayImage, radius: u32) -> GrayImage {
    let mut out = img.clone();
    let (w, h) = out.dimensions();
    blur_planes::<1>(&mut out, w as usize, h as usize, &[radius as usize]);
    out
}

/// Gaussian blur of a grey image (three box passes). `sigma` ≤ about 0.5, NaN or
/// negative returns a copy.
pub fn gaussian_blur_gray(img: &GrayImage, sigma: f32) -> GrayImage {
    let mut out = img.clone();
    gaussian_blur_gray_mut(&mut out, sigma);
    out
}

/// In-place [`gaussian_blur_gray`], for callers that own a buffer they no longer need
/// unblurred (saves one allocation and copy of the image).
pub fn gaussian_blur_gray_mut(img: &mut GrayImage, sigma: f32) {
    let (w, h) = img.dimensions();
    blur_planes::<1>(img, w as usize, h as usize, &gauss_radii(sigma));
}

/// Gaussian blur of an RGB image (three box passes per channel, interleaved), for
/// unsharp masking and soft colour fields.
pub fn gaussian_blur_rgb(img: &RgbImage, sigma: f32) -> RgbImage {
    let mut out = img.clone();
    let (w, h) = out.dimensions();
    blur_planes::<3>(&mut out, w as usize, h as usize, &gauss_radii(sigma));
    out
}

/// A Gaussian blur for large radii (soft shadows, glows): the image is reduced with
/// an area filter, blurred at the small size and enlarged bilinearly. The result
/// has the input's size; the reduction and enlargement are folded into the blur so
/// the total spread still matches `sigma`. Small sigmas blur directly.
pub fn wide_blur_gray(img: &GrayImage, sigma: f32) -> Result<GrayImage, ImagingError> {
    let (w, h) = img.dimensions();
    if sigma.is_nan() || sigma <= WIDE_DIRECT_SIGMA || w == 0 || h == 0 {
        return Ok(gaussian_blur_gray(img, sigma));
    }
    // Reduce so the remaining blur is 4–8 px at the small size.
    let factor = (sigma / 4.0).floor().max(2.0);
    let small_w = ((w as f32 / factor).round() as u32).max(1);
    let small_h = ((h as f32 / factor).round() as u32).max(1);
    let mut small = resize::gray(img, small_w, small_h, Filter::Box)?;
    // The area reduction (σ ≈ 0.29·f) and the bilinear enlargement (σ ≈ 0.41·f) blur
    // too; take their share out of the blur done at the small size.
    let residual = (sigma * sigma - 0.25 * factor * factor).max(0.0).sqrt() / factor;
    gaussian_blur_gray_mut(&mut small, residual);
    resize::gray(&small, w, h, Filter::Bilinear)
}

/// Box radii of three passes whose combination approximates a Gaussian of `sigma`
/// (the "boxes for Gauss" construction: the variances of the boxes add up to σ²).
pub(crate) fn gauss_radii(sigma: f32) -> [usize; 3] {
    const PASSES: f32 = 3.0;
    if sigma.is_nan() || sigma <= 0.0 {
        return [0; 3];
    }
    let sigma = sigma.min(MAX_RADIUS as f32);
    let var12 = 12.0 * sigma * sigma;
    let ideal = (var12 / PASSES + 1.0).sqrt();
    let mut lower = ideal.floor() as i64;
    if lower % 2 == 0 {
        lower -= 1;
    }
    let lower = lower.max(1);
    let upper = lower + 2;
    let l = lower as f32;
    let m = ((var12 - PASSES * l * l - 4.0 * PASSES * l - 3.0 * PASSES) / (-4.0 * l - 4.0)).round() as i64;
    let mut radii = [0; 3];
    for (i, r) in radii.iter_mut().enumerate() {
        let size = if (i as i64) < m { lower } else { upper };
        *r = ((size - 1) / 2) as usize;
    }
    radii
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::Luma;

    fn impulse(w: u32, h: u32, x: u32, y: u32, v: u8) -> GrayImage {
        let mut img = GrayImage::new(w, h);
        img.put_pixel(x, y, Luma([v]));
        img
    }

    fn mass(img: &GrayImage) -> u64 {
        img.as_raw().iter().map(|&v| u64::from(v)).sum()
    }

    #[test]
    fn flat_stays_exactly_flat() {
        let img = GrayImage::from_pixel(37, 23, Luma([173]));
        for out in [
            box_blur_gray(&img, 5),
            gaussian_blur_gray(&img, 3.3),
            gaussian_blur_gray(&img, 40.0),
        ] {
            assert!(out.pixels().all(|p| p.0[0] == 173));
        }
        let rgb = RgbImage::from_pixel(19, 31, image::Rgb([10, 200, 255]));
        assert!(
            gaussian_blur_rgb(&rgb, 2.5)
                .pixels()
                .all(|p| p.0 == [10, 200, 255])
        );
    }

    #[test]
    fn mass_is_preserved_away_from_the_border() {
        // A block of 255 in the middle spreads without gaining or losing light
        // (up to rounding of each output pixel).
        let mut img = GrayImage::new(96, 96);
        for y in 40..56 {
            for x in 40..56 {
                img.put_pixel(x, y, Luma([255]));
            }
        }
        let before = mass(&img) as f64;
        for out in [box_blur_gray(&img, 4), gaussian_blur_gray(&img, 4.0)] {
            let after = mass(&out) as f64;
            assert!((after - before).abs() / before < 0.01, "{before} → {after}");
        }
    }

    #[test]
    fn box_blur_averages_the_window() {
        let out = box_blur_gray(&impulse(21, 21, 10, 10, 225), 1);
        // 225 / 9 = 25 over the 3×3 window, zero outside.
        assert_eq!(out.get_pixel(9, 9).0[0], 25);
        assert_eq!(out.get_pixel(11, 10).0[0], 25);
        assert_eq!(out.get_pixel(12, 10).0[0], 0);
    }

    #[test]
    fn gaussian_softens_an_edge_monotonically() {
        let mut img = GrayImage::new(64, 8);
        for (x, _, p) in img.enumerate_pixels_mut() {
            p.0[0] = if x < 32 { 0 } else { 255 };
        }
        let out = gaussian_blur_gray(&img, 3.0);
        let row: Vec<u8> = (0..64).map(|x| out.get_pixel(x, 4).0[0]).collect();
        assert!(row.windows(2).all(|p| p[0] <= p[1]), "{row:?}");
        assert_eq!(row[0], 0);
        assert_eq!(row[63], 255);
        assert!(
            (100..=155).contains(&row[32]) || (100..=155).contains(&row[31]),
            "{row:?}"
        );
        // Softened over several pixels, not a step.
        let partial = row.iter().filter(|&&v| v > 10 && v < 245).count();
        assert!(partial >= 6, "{row:?}");
    }

    #[test]
    fn gaussian_spread_matches_sigma() {
        // The variance of the blurred impulse equals sigma² within a few percent.
        let sigma = 5.0f32;
        let out = gaussian_blur_gray(&impulse(101, 1, 50, 0, 255), sigma);
        let weights: Vec<f64> = (0..101).map(|x| f64::from(out.get_pixel(x, 0).0[0])).collect();
        let total: f64 = weights.iter().sum();
        let var: f64 = weights
            .iter()
            .enumerate()
            .map(|(x, w)| w * (x as f64 - 50.0).powi(2))
            .sum::<f64>()
            / total;
        assert!(
            (var.sqrt() - f64::from(sigma)).abs() < 0.5,
            "sigma measured {}",
            var.sqrt()
        );
    }

    #[test]
    fn radius_zero_and_tiny_sigma_are_identity() {
        let img = impulse(9, 7, 3, 2, 200);
        assert_eq!(box_blur_gray(&img, 0), img);
        assert_eq!(gaussian_blur_gray(&img, 0.0), img);
        assert_eq!(gaussian_blur_gray(&img, f32::NAN), img);
        assert_eq!(gaussian_blur_gray(&img, -3.0), img);
    }

    #[test]
    fn tiny_and_degenerate_images_do_not_panic() {
        for (w, h) in [(0, 0), (0, 5), (5, 0), (1, 1), (1, 9), (9, 1), (2, 2)] {
            let img = GrayImage::from_pixel(w, h, Luma([99]));
            assert_eq!(box_blur_gray(&img, 50).dimensions(), (w, h));
            assert_eq!(gaussian_blur_gray(&img, 30.0).dimensions(), (w, h));
            assert_eq!(
                wide_blur_gray(&img, 60.0).expect("wide blur").dimensions(),
                (w, h)
            );
            assert!(box_blur_gray(&img, 50).pixels().all(|p| p.0[0] == 99));
        }
        let huge_radius = box_blur_gray(&impulse(4, 4, 0, 0, 255), u32::MAX);
        assert_eq!(huge_radius.dimensions(), (4, 4));
    }

    #[test]
    fn wide_blur_spreads_like_a_gaussian() {
        let mut img = GrayImage::new(400, 400);
        for y in 150..250 {
            for x in 150..250 {
                img.put_pixel(x, y, Luma([255]));
            }
        }
        let sigma = 24.0;
        let wide = wide_blur_gray(&img, sigma).expect("wide blur");
        let direct = gaussian_blur_gray(&img, sigma);
        assert_eq!(wide.dimensions(), (400, 400));
        // Same profile as the full-resolution blur, within a few levels.
        let max_diff = wide
            .as_raw()
            .iter()
            .zip(direct.as_raw())
            .map(|(&a, &b)| (i32::from(a) - i32::from(b)).abs())
            .max()
            .unwrap_or(0);
        assert!(max_diff <= 12, "max difference {max_diff}");
        // Far corners stay untouched.
        assert_eq!(wide.get_pixel(0, 0).0[0], 0);
        assert_eq!(wide.get_pixel(399, 399).0[0], 0);
    }

    #[test]
    fn radii_cover_the_variance() {
        for sigma in [0.8f32, 1.5, 3.0, 7.7, 20.0] {
            let var: f32 = gauss_radii(sigma)
                .iter()
                .map(|&r| {
                    let n = (2 * r + 1) as f32;
                    (n * n - 1.0) / 12.0
                })
                .sum();
            assert!((var.sqrt() - sigma).abs() < 0.6, "sigma {sigma} → {}", var.sqrt());
        }
    }
}

//! A smooth model of the studio backdrop, fitted to the photo's border.
//!
//! Product photos are shot on a sweep whose colour drifts across the frame: a
//! vertical gradient from the light falloff, a vignette from the lens. Both are
//! smooth, so each OKLab channel is modelled as a quadratic in the normalised
//! coordinates (u, v) ∈ (-1, 1)²: `c0 + c1·u + c2·v + c3·u² + c4·u·v + c5·v²`, which
//! represents a linear gradient and a radial vignette (u² + v²) exactly.
//!
//! The model is fitted to samples from a band along the four borders by
//! iteratively reweighted least squares with Tukey's biweight, starting from the
//! per-channel median. A garment touching an edge (trouser hems, a cropped sleeve)
//! puts outliers into the band; as long as it covers less than half of the band
//! the median start and the biweight's hard rejection keep it out of the fit.

use image::RgbImage;

use crate::color;

/// Fraction of the longer side used as the border band's width.
const BAND_FRACTION: f32 = 0.02;
/// About this many band pixels are sampled (more adds time, not accuracy).
const TARGET_SAMPLES: usize = 4000;
/// IRLS iterations; the fit settles in three or four.
const ITERATIONS: usize = 8;
/// Tukey's biweight tuning constant (95% efficiency under Gaussian noise).
const TUKEY_C: f64 = 4.685;
/// Floor on the residual scale, in OKLab units: a perfectly flat synthetic backdrop
/// has zero spread, and the biweight must still accept JPEG-level wobble.
const MIN_SCALE: f64 = 0.004;

/// Border band pixels sampled on a regular grid, as (x, y), in scan order. The
/// same positions serve the fit and the mask threshold's noise estimate.
pub(super) fn border_samples(width: u32, height: u32) -> Vec<(u32, u32)> {
    if width == 0 || height == 0 {
        return Vec::new();
    }
    let band = ((width.max(height) as f32 * BAND_FRACTION).round() as u32).clamp(1, width.min(height));
    let in_band = |x: u32, y: u32| x < band || y < band || x >= width - band || y >= height - band;
    let area = 2 * band as u64 * (width as u64 + height as u64);
    let step = (((area as f64 / TARGET_SAMPLES as f64).sqrt().floor() as u32).max(1)).min(band.max(1));
    let mut out = Vec::with_capacity(TARGET_SAMPLES * 2);
    let mut y = 0;
    while y < height {
        let mut x = 0;
        while x < width {
            if in_band(x, y) {
                out.push((x, y));
                // Inside a row that crosses the interior, jump straight to the right band.
                if y >= band && y < height - band && x < band && x + step >= band {
                    x = (width - band).max(x + step);
                    continue;
                }
            }
            x += step;
        }
        y += step;
    }
    out
}

/// The fitted backdrop: three quadratic surfaces (L, a, b) over the frame.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct BackdropModel {
    coef: [[f32; 6]; 3],
    width: u32,
    height: u32,
}

/// Per-row form of the model: for each channel, `k0 + k1·u + k2·u²`.
#[derive(Debug, Clone, Copy)]
pub(super) struct RowModel {
    k: [[f32; 3]; 3],
    /// Maps a pixel column to u.
    scale: f32,
}

impl RowModel {
    /// Predicted OKLab backdrop at column `x` of this row.
    #[inline]
    pub fn at(&self, x: usize) -> [f32; 3] {
        let u = (x as f32 + 0.5) * self.scale - 1.0;
        std::array::from_fn(|c| self.k[c][0] + u * (self.k[c][1] + u * self.k[c][2]))
    }
}

#[inline]
fn basis(u: f64, v: f64) -> [f64; 6] {
    [1.0, u, v, u * u, u * v, v * v]
}

impl BackdropModel {
    /// The model specialised to row `y`.
    pub fn row(&self, y: u32) -> RowModel {
        let v = (y as f32 + 0.5) * 2.0 / self.height as f32 - 1.0;
        let k = self
            .coef
            .map(|c| [c[0] + c[2] * v + c[5] * v * v, c[1] + c[4] * v, c[3]]);
        RowModel {
            k,
            scale: 2.0 / self.width as f32,
        }
    }

    /// Predicted OKLab backdrop at the frame's centre (u = v = 0).
    pub fn centre(&self) -> [f32; 3] {
        self.coef.map(|c| c[0])
    }
}

/// One border sample: normalised position and OKLab colour.
struct Sample {
    phi: [f64; 6],
    lab: [f64; 3],
}

/// Fits the backdrop model to the border band of `image` (the working copy).
// Index loops mirror the textbook normal equations and elimination; iterator
// chains over three parallel arrays would hide the algebra.
#[allow(clippy::needless_range_loop)]
pub(super) fn fit(image: &RgbImage, positions: &[(u32, u32)]) -> BackdropModel {
    let (width, height) = image.dimensions();
    let lut = color::srgb_lut();
    let samples: Vec<Sample> = positions
        .iter()
        .map(|&(x, y)| {
            let u = (x as f64 + 0.5) * 2.0 / width as f64 - 1.0;
            let v = (y as f64 + 0.5) * 2.0 / height as f64 - 1.0;
            let lab = color::srgb_to_oklab_fast(image.get_pixel(x, y).0, lut).map(f64::from);
            Sample {
                phi: basis(u, v),
                lab,
            }
        })
        .collect();
    let mut coef = [[0.0f64; 6]; 3];
    for (c, coefs) in coef.iter_mut().enumerate() {
        coefs[0] = median(samples.iter().map(|s| s.lab[c]).collect());
    }
    let mut residuals = vec![0.0f64; samples.len()];
    for _ in 0..ITERATIONS {
        for (r, s) in residuals.iter_mut().zip(&samples) {
            *r = distance(&coef, s);
        }
        let scale = (1.4826 * median(residuals.clone())).max(MIN_SCALE);
        let cutoff = TUKEY_C * scale;
        let mut normal = [[0.0f64; 6]; 6];
        let mut rhs = [[0.0f64; 3]; 6];
        for (s, &r) in samples.iter().zip(&residuals) {
            if r >= cutoff {
                continue;
            }
            let t = 1.0 - (r / cutoff).powi(2);
            let w = t * t;
            for i in 0..6 {
                for j in 0..6 {
                    normal[i][j] += w * s.phi[i] * s.phi[j];
                }
                for c in 0..3 {
                    rhs[i][c] += w * s.phi[i] * s.lab[c];
                }
            }
        }
        match solve(normal, rhs) {
            Some(solution) => coef = solution,
            None => break,
        }
    }
    BackdropModel {
        coef: coef.map(|c| c.map(|v| v as f32)),
        width: width.max(1),
        height: height.max(1),
    }
}

// Index loops mirror the textbook normal equations and elimination; iterator
// chains over three parallel arrays would hide the algebra.
#[allow(clippy::needless_range_loop)]
fn distance(coef: &[[f64; 6]; 3], s: &Sample) -> f64 {
    let mut sum = 0.0;
    for c in 0..3 {
        let pred: f64 = coef[c].iter().zip(&s.phi).map(|(k, p)| k * p).sum();
        sum += (s.lab[c] - pred).powi(2);
    }
    sum.sqrt()
}

/// Median of the values (0 when empty).
fn median(mut values: Vec<f64>) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    let mid = values.len() / 2;
    let (_, m, _) = values.select_nth_unstable_by(mid, f64::total_cmp);
    *m
}

/// Solves `normal · X = rhs` (X is 6×3) by Gaussian elimination with partial
/// pivoting. A tiny ridge keeps degenerate layouts (a one-pixel-high image, all
/// samples on one line) solvable; `None` only when nothing carries weight.
// Index loops mirror the textbook normal equations and elimination; iterator
// chains over three parallel arrays would hide the algebra.
#[allow(clippy::needless_range_loop)]
fn solve(mut a: [[f64; 6]; 6], mut b: [[f64; 3]; 6]) -> Option<[[f64; 6]; 3]> {
    let trace: f64 = (0..6).map(|i| a[i][i]).sum();
    if trace.is_nan() || trace <= 0.0 {
        return None;
    }
    for (i, row) in a.iter_mut().enumerate() {
        row[i] += 1e-9 * trace;
    }
    for col in 0..6 {
        let pivot = (col..6).max_by(|&i, &j| a[i][col].abs().total_cmp(&a[j][col].abs()))?;
        a.swap(col, pivot);
        b.swap(col, pivot);
        let p = a[col][col];
        if p.abs() < 1e-300 {
            return None;
        }
        for r in col + 1..6 {
            let f = a[r][col] / p;
            for k in col..6 {
                a[r][k] -= f * a[col][k];
            }
            for c in 0..3 {
                b[r][c] -= f * b[col][c];
            }
        }
    }
    let mut x = [[0.0f64; 6]; 3];
    for c in 0..3 {
        for i in (0..6).rev() {
            let tail: f64 = (i + 1..6).map(|k| a[i][k] * x[c][k]).sum();
            x[c][i] = (b[i][c] - tail) / a[i][i];
        }
    }
    x.iter().flatten().all(|v| v.is_finite()).then_some(x)
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::Rgb;

    #[test]
    fn samples_lie_in_the_band_and_cover_all_four_sides() {
        let (w, h) = (300, 400);
        let s = border_samples(w, h);
        assert!(s.len() > 500 && s.len() < 12_000, "{} samples", s.len());
        let band = 8;
        assert!(
            s.iter()
                .all(|&(x, y)| x < band || y < band || x >= w - band || y >= h - band)
        );
        assert!(s.iter().any(|&(x, _)| x >= w - band) && s.iter().any(|&(_, y)| y >= h - band));
        assert!(border_samples(1, 1) == vec![(0, 0)]);
        assert!(border_samples(0, 5).is_empty());
    }

    #[test]
    fn recovers_a_gradient_with_vignette_despite_an_object_on_the_edge() {
        let (w, h) = (240u32, 320u32);
        let mut img = RgbImage::from_fn(w, h, |x, y| {
            let u = (x as f32 + 0.5) / w as f32 * 2.0 - 1.0;
            let v = (y as f32 + 0.5) / h as f32 * 2.0 - 1.0;
            let g = 230.0 - 30.0 * (v + 1.0) / 2.0 - 20.0 * (u * u + v * v) / 2.0;
            Rgb([g as u8, g as u8, (g + 5.0) as u8])
        });
        let centre_truth = color::srgb_to_oklab(img.get_pixel(w / 2, h / 2).0);
        // A dark red object touching the bottom edge over a third of its width.
        for y in 200..h {
            for x in 80..160 {
                img.put_pixel(x, y, Rgb([120, 20, 30]));
            }
        }
        let model = fit(&img, &border_samples(w, h));
        let centre = model.centre();
        for c in 0..3 {
            assert!(
                (centre[c] - centre_truth[c]).abs() < 0.01,
                "{centre:?} vs {centre_truth:?}"
            );
        }
        let corner = model.row(h - 1).at(0);
        let corner_truth = color::srgb_to_oklab(img.get_pixel(0, h - 1).0);
        assert!(
            (corner[0] - corner_truth[0]).abs() < 0.01,
            "{corner:?} vs {corner_truth:?}"
        );
    }

    #[test]
    fn degenerate_frames_still_fit() {
        let img = RgbImage::from_pixel(50, 1, Rgb([10, 200, 30]));
        let model = fit(&img, &border_samples(50, 1));
        let truth = color::srgb_to_oklab([10, 200, 30]);
        let got = model.row(0).at(25);
        assert!((got[0] - truth[0]).abs() < 1e-3 && (got[1] - truth[1]).abs() < 1e-3);
    }
}

//! Whole-image brightness and sharpness statistics, at full resolution.
//!
//! Both are measured on the original pixels, not the analysis working copy:
//! downscaling averages away exactly the fine detail that sharpness measures, and
//! clipped highlights are a per-pixel property. One streaming pass computes both,
//! in bands of rows on the rayon pool, each keeping only three rows of grey values
//! alive.

use atelier_core::analysis::Exposure;
use image::RgbImage;
use rayon::prelude::*;

/// A pixel at or below this grey level counts as a clipped shadow (2/255).
const SHADOW_CLIP: usize = 2;
/// A pixel at or above this grey level counts as a clipped highlight (253/255).
const HIGHLIGHT_CLIP: usize = 253;

/// Exposure and sharpness of one image.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct FullResStats {
    pub exposure: Exposure,
    /// Variance of the 4-neighbour Laplacian of the grey image, in squared 8-bit grey
    /// levels (the usual scale: sharp photos score hundreds or more, blurred ones
    /// tens). Zero for images under 3×3.
    pub sharpness: f64,
}

/// Integer Rec. 709 luma of 8-bit sRGB values (weights 54/256, 183/256, 19/256),
/// exact to within one level and cheap enough for every pixel.
#[inline]
fn luma(r: u8, g: u8, b: u8) -> i32 {
    (54 * r as i32 + 183 * g as i32 + 19 * b as i32 + 128) >> 8
}

/// Rows per parallel band of [`measure`]: large enough that a band's histogram
/// and the two extra rows of luma it recomputes at its edges cost nothing.
const BAND_ROWS: usize = 64;

/// Sums, histogram and Laplacian moments of one band of rows.
#[derive(Clone)]
struct Partial {
    sums: [u64; 3],
    hist: [u64; 256],
    lap_sum: i64,
    lap_sq: i64,
    lap_n: u64,
}

impl Partial {
    fn zero() -> Self {
        Self {
            sums: [0; 3],
            hist: [0; 256],
            lap_sum: 0,
            lap_sq: 0,
            lap_n: 0,
        }
    }

    fn add(mut self, other: Self) -> Self {
        for (s, o) in self.sums.iter_mut().zip(other.sums) {
            *s += o;
        }
        for (s, o) in self.hist.iter_mut().zip(other.hist) {
            *s += o;
        }
        self.lap_sum += other.lap_sum;
        self.lap_sq += other.lap_sq;
        self.lap_n += other.lap_n;
        self
    }
}

/// Luma of one row of packed RGB into `out`.
fn luma_row(line: &[u8], out: &mut [i32]) {
    for (g, px) in out.iter_mut().zip(line.chunks_exact(3)) {
        *g = luma(px[0], px[1], px[2]);
    }
}

/// Luma of one row of packed RGB into `out`, and the row's channel sums (in the
/// same pass: a separate one would read the row again).
fn luma_and_sums(line: &[u8], out: &mut [i32]) -> [u32; 3] {
    let mut sums = [0u32; 3];
    for (g, px) in out.iter_mut().zip(line.chunks_exact(3)) {
        let (r, gr, b) = (px[0], px[1], px[2]);
        sums[0] += u32::from(r);
        sums[1] += u32::from(gr);
        sums[2] += u32::from(b);
        *g = luma(r, gr, b);
    }
    sums
}

/// Sums, histogram and the Laplacian of the rows `y0..y1` (the Laplacian at each
/// row with a neighbour above and below in the image; the band reads one row
/// beyond each of its ends for that).
fn band(raw: &[u8], w: usize, h: usize, y0: usize, y1: usize) -> Partial {
    let mut p = Partial::zero();
    let line = |y: usize| &raw[y * w * 3..][..w * 3];
    let mut rows = [vec![0i32; w], vec![0i32; w], vec![0i32; w]];
    // rows[k % 3] holds the luma of image row k once loaded.
    let first = y0.saturating_sub(1);
    let last = (y1 + 1).min(h);
    for y in first..last {
        if (y0..y1).contains(&y) {
            let row_sums = luma_and_sums(line(y), &mut rows[y % 3]);
            for (s, r) in p.sums.iter_mut().zip(row_sums) {
                *s += r as u64;
            }
            // Four interleaved histograms: a run of equal grey levels (a plain
            // backdrop) would otherwise make every increment wait for the last.
            let mut hists = [[0u32; 256]; 4];
            let grey = &rows[y % 3];
            let quads = grey.chunks_exact(4);
            let rest = quads.remainder();
            for quad in quads {
                for (hist, &g) in hists.iter_mut().zip(quad) {
                    hist[g as usize] += 1;
                }
            }
            for &g in rest {
                hists[0][g as usize] += 1;
            }
            for (k, total) in p.hist.iter_mut().enumerate() {
                *total += hists.iter().map(|hist| u64::from(hist[k])).sum::<u64>();
            }
        } else {
            luma_row(line(y), &mut rows[y % 3]);
        }
        // The Laplacian centred on row y - 1, when that row is the band's.
        if y >= 2 && w >= 3 && (y0..y1).contains(&(y - 1)) {
            let (up, mid, down) = (&rows[(y - 2) % 3], &rows[(y - 1) % 3], &rows[y % 3]);
            let (mut s, mut sq) = (0i64, 0i64);
            // Slices instead of indices: no bounds checks in the loop. |l| ≤
            // 8·255, so l² fits in an i32.
            let centre = mid[1..w - 1]
                .iter()
                .zip(&mid[..w - 2])
                .zip(&mid[2..])
                .zip(&up[1..w - 1])
                .zip(&down[1..w - 1]);
            for ((((&c, &left), &right), &above), &below) in centre {
                let l = 4 * c - left - right - above - below;
                s += i64::from(l);
                sq += i64::from(l * l);
            }
            p.lap_sum += s;
            p.lap_sq += sq;
            p.lap_n += (w - 2) as u64;
        }
    }
    p
}

/// Measures exposure and sharpness of `rgb`: bands of rows in parallel on the
/// current rayon pool (a 12-megapixel photo is 36 MB to stream; one core would
/// take as long as the whole cut-out), summed.
pub(super) fn measure(rgb: &RgbImage) -> FullResStats {
    let (w, h) = (rgb.width() as usize, rgb.height() as usize);
    let n = (w * h) as f64;
    if w == 0 || h == 0 {
        let exposure = Exposure {
            mean_luminance: 0.0,
            clipped_shadows: 0.0,
            clipped_highlights: 0.0,
        };
        return FullResStats {
            exposure,
            sharpness: 0.0,
        };
    }
    let raw = rgb.as_raw();
    let p = (0..h.div_ceil(BAND_ROWS))
        .into_par_iter()
        .map(|b| band(raw, w, h, b * BAND_ROWS, ((b + 1) * BAND_ROWS).min(h)))
        .reduce(Partial::zero, Partial::add);
    let (sums, hist) = (p.sums, p.hist);
    let (lap_sum, lap_sq, lap_n) = (p.lap_sum, p.lap_sq, p.lap_n);
    let mean = |s: u64| s as f64 / (n * 255.0);
    let mean_luminance = 0.2126 * mean(sums[0]) + 0.7152 * mean(sums[1]) + 0.0722 * mean(sums[2]);
    let share = |range: std::ops::RangeInclusive<usize>| (hist[range].iter().sum::<u64>() as f64 / n) as f32;
    let sharpness = if lap_n == 0 {
        0.0
    } else {
        let m = lap_sum as f64 / lap_n as f64;
        (lap_sq as f64 / lap_n as f64 - m * m).max(0.0)
    };
    FullResStats {
        exposure: Exposure {
            mean_luminance: mean_luminance as f32,
            clipped_shadows: share(0..=SHADOW_CLIP),
            clipped_highlights: share(HIGHLIGHT_CLIP..=255),
        },
        sharpness,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::Rgb;

    #[test]
    fn flat_grey_has_no_detail_and_no_clipping() {
        let s = measure(&RgbImage::from_pixel(20, 10, Rgb([128, 128, 128])));
        assert!((s.exposure.mean_luminance - 128.0 / 255.0).abs() < 1e-4);
        assert_eq!(s.exposure.clipped_shadows, 0.0);
        assert_eq!(s.exposure.clipped_highlights, 0.0);
        assert_eq!(s.sharpness, 0.0);
    }

    /// Alternating 0/255 pixels.
    fn checkerboard(w: u32, h: u32) -> RgbImage {
        RgbImage::from_fn(w, h, |x, y| {
            if (x + y) % 2 == 0 {
                Rgb([255; 3])
            } else {
                Rgb([0; 3])
            }
        })
    }

    /// The checkerboard's Laplacian is ±4·255 everywhere inside.
    fn assert_laplacian_of_a_checkerboard(s: &FullResStats) {
        assert!(
            (s.sharpness - (4.0f64 * 255.0).powi(2)).abs() < 1.0,
            "{}",
            s.sharpness
        );
    }

    #[test]
    fn checkerboard_has_the_analytic_laplacian_variance() {
        // Alternating 0/255 pixels: the Laplacian is ±4·255 everywhere inside.
        let s = measure(&checkerboard(16, 16));
        assert_laplacian_of_a_checkerboard(&s);
        assert!((s.exposure.clipped_shadows - 0.5).abs() < 1e-6);
        assert!((s.exposure.clipped_highlights - 0.5).abs() < 1e-6);
    }

    #[test]
    fn bands_add_up_to_the_whole_image() {
        // Taller than several bands and not a multiple of one: the checkerboard's
        // Laplacian is the same everywhere, so any row lost or counted twice at a
        // band's edge would show in the exact figures.
        let (w, h) = (37u32, 3 * BAND_ROWS as u32 + 5);
        let s = measure(&checkerboard(w, h));
        assert_laplacian_of_a_checkerboard(&s);
        let dark = ((w * h) / 2) as f32 / (w * h) as f32;
        assert!((s.exposure.clipped_shadows - dark).abs() < 1e-6);
        // A ramp down the rows: the mean is exact only if every row counts once.
        let ramp = RgbImage::from_fn(10, h, |_, y| Rgb([(y % 256) as u8; 3]));
        let expected = (0..h).map(|y| f64::from(y % 256)).sum::<f64>() / f64::from(h) / 255.0;
        assert!((f64::from(measure(&ramp).exposure.mean_luminance) - expected).abs() < 1e-4);
    }

    #[test]
    fn rec709_weights_apply_to_the_mean() {
        let s = measure(&RgbImage::from_pixel(4, 4, Rgb([0, 255, 0])));
        assert!((s.exposure.mean_luminance - 0.7152).abs() < 1e-4);
    }

    #[test]
    fn tiny_images_do_not_panic() {
        for (w, h) in [(1, 1), (2, 5), (5, 2), (0, 0)] {
            let s = measure(&RgbImage::new(w, h));
            assert_eq!(s.sharpness, 0.0);
        }
    }
}

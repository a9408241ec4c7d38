//! Per-pixel distance from the backdrop, raw and noise-averaged, in one streaming
//! pass.
//!
//! The score compares a pixel's OKLab colour with the backdrop model's prediction
//! at that spot, in a way that forgives shadows: a shadow on the sweep is the
//! backdrop under less light, which in OKLab scales L, a and b by the same factor.
//! So the chroma difference is taken against the prediction scaled to the pixel's
//! lightness (a shadow has none), and pure darkening counts only [`DARK_WEIGHT`]
//! as much as brightening or a change of colour.
//!
//! Two scores come out per pixel: the raw one, and one of the colours averaged
//! over a (2r+1)² box, which is what defeats sensor noise (a distance is never
//! negative, so averaging noisy *scores* would keep their upward bias; averaging
//! colours removes it). The image is cut into bands of rows processed in parallel;
//! each band converts every row to OKLab once and keeps only a ring of 2r+1
//! horizontally summed rows, so memory stays at the two output planes instead of
//! several full-size colour buffers (fresh multi-megabyte buffers cost more in
//! page faults than the arithmetic here).

use image::RgbImage;
use rayon::prelude::*;

use super::backdrop::BackdropModel;
use crate::color;

/// Weight of pure darkening relative to chroma and brightening differences.
pub(super) const DARK_WEIGHT: f32 = 0.12;
/// Rows per parallel band: large enough that the 2r overlap rows are cheap.
const BAND_ROWS: usize = 64;

/// Distance of pixel `p` from the backdrop prediction `q`, both OKLab.
#[inline]
pub(super) fn score(p: [f32; 3], q: [f32; 3]) -> f32 {
    let ratio = (p[0] / q[0].max(1e-3)).clamp(0.0, 1.0);
    let da = p[1] - ratio * q[1];
    let db = p[2] - ratio * q[2];
    let dl = p[0] - q[0];
    let dl = if dl < 0.0 { DARK_WEIGHT * dl } else { dl };
    (da * da + db * db + dl * dl).sqrt()
}

/// Raw scores at the given positions only (for the noise estimate that picks the
/// smoothing radius before the full pass).
pub(super) fn raw_at(image: &RgbImage, model: &BackdropModel, positions: &[(u32, u32)]) -> Vec<f32> {
    let lut = color::srgb_lut();
    positions
        .iter()
        .map(|&(x, y)| {
            score(
                color::srgb_to_oklab_approx(image.get_pixel(x, y).0, lut),
                model.row(y).at(x as usize),
            )
        })
        .collect()
}

/// The box-averaged (radius `r`) score of every pixel, with the OKLab colour and
/// the backdrop prediction of every pixel that the pass computes on its way (the
/// cut-out needs all three; one pass converts each pixel to OKLab once).
pub(super) fn smoothed_with_colours(
    image: &RgbImage,
    model: &BackdropModel,
    r: usize,
) -> (Vec<f32>, Vec<[f32; 3]>, Vec<[f32; 3]>) {
    let (w, h) = (image.width() as usize, image.height() as usize);
    let mut smooth = vec![0.0f32; w * h];
    let mut lab = vec![[0.0f32; 3]; w * h];
    let mut backdrop = vec![[0.0f32; 3]; w * h];
    if w == 0 || h == 0 {
        return (smooth, lab, backdrop);
    }
    smooth
        .par_chunks_mut(BAND_ROWS * w)
        .zip(lab.par_chunks_mut(BAND_ROWS * w))
        .zip(backdrop.par_chunks_mut(BAND_ROWS * w))
        .enumerate()
        .for_each(|(band, ((smooth, lab_out), backdrop_out))| {
            Band {
                image,
                model,
                w,
                h,
                r,
            }
            .run(band * BAND_ROWS, smooth, |i, lab, backdrop| {
                interleave(lab, &mut lab_out[i * w..][..w]);
                interleave(backdrop, &mut backdrop_out[i * w..][..w]);
            });
        });
    (smooth, lab, backdrop)
}

/// One row of three channel planes as per-pixel triples.
fn interleave(planes: &Planes, out: &mut [[f32; 3]]) {
    let [l, a, b] = &planes.c;
    for (((o, l), a), b) in out.iter_mut().zip(l).zip(a).zip(b) {
        *o = [*l, *a, *b];
    }
}

/// One band's worth of context.
struct Band<'a> {
    image: &'a RgbImage,
    model: &'a BackdropModel,
    w: usize,
    h: usize,
    r: usize,
}

/// Three channel planes of `len` values each (structure of arrays, so the
/// per-pixel arithmetic vectorises).
struct Planes {
    c: [Vec<f32>; 3],
}

impl Planes {
    fn new(len: usize) -> Self {
        Self {
            c: std::array::from_fn(|_| vec![0.0; len]),
        }
    }
}

impl Band<'_> {
    /// Scores rows `y0 .. y0 + smooth.len() / w` into `smooth`, and hands each of
    /// them, as band-local row index, OKLab colours and backdrop prediction, to
    /// `row`.
    fn run(&self, y0: usize, smooth: &mut [f32], mut row: impl FnMut(usize, &Planes, &Planes)) {
        let (w, r) = (self.w, self.r);
        let rows = smooth.len() / w;
        let k = 2 * r + 1;
        let norm = 1.0 / (k * k) as f32;
        let mut lab = Planes::new(w);
        let mut ring = Planes::new(k * w);
        let mut acc = Planes::new(w);
        let mut backdrop = Planes::new(w);
        // Sequence number s loads image row y0 - r + s (clamped) into ring slot s % k.
        for s in 0..k {
            self.load(
                y0,
                rows,
                s,
                &mut lab,
                &mut ring,
                &mut acc,
                &mut backdrop,
                &mut row,
            );
        }
        for i in 0..rows {
            self.predict(y0 + i, &mut backdrop);
            for c in 0..3 {
                for v in lab.c[c].iter_mut().zip(&acc.c[c]) {
                    *v.0 = v.1 * norm;
                }
            }
            score_row(&lab, &backdrop, &mut smooth[i * w..][..w]);
            if i + 1 < rows {
                for c in 0..3 {
                    let leaving = &ring.c[c][(i % k) * w..][..w];
                    for (a, v) in acc.c[c].iter_mut().zip(leaving) {
                        *a -= v;
                    }
                }
                self.load(
                    y0,
                    rows,
                    i + k,
                    &mut lab,
                    &mut ring,
                    &mut acc,
                    &mut backdrop,
                    &mut row,
                );
            }
        }
    }

    /// Converts image row `y0 - r + s` (clamped to the image), hands it to `row`
    /// when it belongs to the band, and adds its horizontal sums to the ring and
    /// the accumulator.
    #[allow(clippy::too_many_arguments)] // Scratch buffers, kept out of the per-row loop.
    fn load(
        &self,
        y0: usize,
        rows: usize,
        s: usize,
        lab: &mut Planes,
        ring: &mut Planes,
        acc: &mut Planes,
        backdrop: &mut Planes,
        row: &mut impl FnMut(usize, &Planes, &Planes),
    ) {
        let w = self.w;
        let y = (y0 + s) as isize - self.r as isize;
        let src = y.clamp(0, self.h as isize - 1) as usize;
        self.convert(src, lab);
        let local = y - y0 as isize;
        if (0..rows as isize).contains(&local) {
            self.predict(src, backdrop);
            row(local as usize, lab, backdrop);
        }
        let slot = (s % (2 * self.r + 1)) * w;
        for c in 0..3 {
            let out = &mut ring.c[c][slot..][..w];
            horizontal_sums(&lab.c[c], self.r, out);
            for (a, v) in acc.c[c].iter_mut().zip(out.iter()) {
                *a += v;
            }
        }
    }

    /// OKLab of image row `y`: a table lookup per channel, then arithmetic only.
    fn convert(&self, y: usize, out: &mut Planes) {
        let lut = color::srgb_lut();
        let line = &self.image.as_raw()[y * self.w * 3..][..self.w * 3];
        let [l, a, b] = &mut out.c;
        for (((l, a), b), px) in l
            .iter_mut()
            .zip(a.iter_mut())
            .zip(b.iter_mut())
            .zip(line.chunks_exact(3))
        {
            (*l, *a, *b) = (lut[px[0] as usize], lut[px[1] as usize], lut[px[2] as usize]);
        }
        for ((l, a), b) in l.iter_mut().zip(a.iter_mut()).zip(b.iter_mut()) {
            [*l, *a, *b] = color::linear_to_oklab_approx([*l, *a, *b]);
        }
    }

    /// The backdrop model's prediction along row `y`.
    fn predict(&self, y: usize, out: &mut Planes) {
        let row = self.model.row(y as u32);
        let [l, a, b] = &mut out.c;
        for (x, ((l, a), b)) in l.iter_mut().zip(a.iter_mut()).zip(b.iter_mut()).enumerate() {
            [*l, *a, *b] = row.at(x);
        }
    }
}

/// Scores one row of colours against one row of predictions.
fn score_row(p: &Planes, q: &Planes, out: &mut [f32]) {
    let [pl, pa, pb] = &p.c;
    let [ql, qa, qb] = &q.c;
    for (x, o) in out.iter_mut().enumerate() {
        *o = score([pl[x], pa[x], pb[x]], [ql[x], qa[x], qb[x]]);
    }
}

/// Sums over `x - r ..= x + r` of one row (edges clamped), by a running sum.
fn horizontal_sums(row: &[f32], r: usize, out: &mut [f32]) {
    let w = row.len();
    let at = |i: isize| row[i.clamp(0, w as isize - 1) as usize];
    let r = r as isize;
    let mut sum: f32 = (-r..=r).map(at).sum();
    for (x, o) in out.iter_mut().enumerate() {
        *o = sum;
        let x = x as isize;
        sum += at(x + r + 1) - at(x - r);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::backdrop;
    use image::Rgb;

    fn lab(rgb: [u8; 3]) -> [f32; 3] {
        color::srgb_to_oklab(rgb)
    }

    #[test]
    fn shadows_score_low_and_garments_high() {
        let bar = 0.03;
        let backdrop = lab([230, 228, 224]);
        let shadow = lab([161, 160, 157]); // 30% darker, same chroma
        assert!(score(shadow, backdrop) < bar, "{}", score(shadow, backdrop));
        let garments = [
            [38, 62, 110],
            [176, 84, 62],
            [20, 20, 20],
            [120, 120, 120],
            [255, 255, 255],
            [200, 220, 240],
        ];
        for garment in garments {
            assert!(score(lab(garment), backdrop) > bar, "{garment:?}");
        }
        // A coloured sweep in shadow keeps its hue: still backdrop.
        let blue = lab([170, 190, 220]);
        let blue_shadow = lab([128, 143, 166]);
        assert!(score(blue_shadow, blue) < bar, "{}", score(blue_shadow, blue));
    }

    /// Straightforward reference: average OKLab over the clamped window, then score.
    fn reference(image: &RgbImage, model: &BackdropModel, r: usize, x: usize, y: usize) -> f32 {
        let (w, h) = (image.width() as isize, image.height() as isize);
        let mut sum = [0.0f32; 3];
        let add = |a: [f32; 3], b: [f32; 3]| [a[0] + b[0], a[1] + b[1], a[2] + b[2]];
        for dy in -(r as isize)..=r as isize {
            for dx in -(r as isize)..=r as isize {
                let (sx, sy) = (
                    (x as isize + dx).clamp(0, w - 1),
                    (y as isize + dy).clamp(0, h - 1),
                );
                sum = add(sum, lab(image.get_pixel(sx as u32, sy as u32).0));
            }
        }
        let n = ((2 * r + 1) * (2 * r + 1)) as f32;
        score(sum.map(|v| v / n), model.row(y as u32).at(x))
    }

    #[test]
    fn streaming_bands_match_the_direct_computation() {
        // Taller than two bands so band seams and both image edges are covered.
        let (w, h) = (37u32, 2 * BAND_ROWS as u32 + 21);
        let image = RgbImage::from_fn(w, h, |x, y| {
            Rgb([(x * 7 % 256) as u8, (y * 3 % 256) as u8, ((x * y) % 251) as u8])
        });
        let model = backdrop::fit(&image, &backdrop::border_samples(w, h));
        let points = [
            (0, 0),
            (36, 0),
            (5, 63),
            (5, 64),
            (20, 65),
            (36, h - 1),
            (0, h - 2),
        ];
        let raw = raw_at(&image, &model, &points);
        for r in [1, 3] {
            let (smooth, colours, backdrops) = smoothed_with_colours(&image, &model, r);
            for (&(x, y), raw) in points.iter().zip(&raw) {
                let i = y as usize * w as usize + x as usize;
                let direct = score(lab(image.get_pixel(x, y).0), model.row(y).at(x as usize));
                assert!((raw - direct).abs() < 1e-4, "raw at ({x}, {y})");
                let want = reference(&image, &model, r, x as usize, y as usize);
                assert!(
                    (smooth[i] - want).abs() < 1e-3,
                    "r={r} at ({x}, {y}): {} vs {want}",
                    smooth[i]
                );
                // The colours the pass hands the cut-out are the pixel's own.
                let own = lab(image.get_pixel(x, y).0);
                assert!(
                    colours[i].iter().zip(own).all(|(a, b)| (a - b).abs() < 1e-4),
                    "lab at ({x}, {y})"
                );
                assert_eq!(
                    backdrops[i],
                    model.row(y).at(x as usize),
                    "backdrop at ({x}, {y})"
                );
            }
        }
    }
}

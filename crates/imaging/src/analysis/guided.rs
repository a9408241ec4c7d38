//! He, Sun and Tang's guided filter, evaluated only where it can change anything.
//!
//! The filter smooths an input p so that it follows the edges of a guide I
//! (locally, output = a·I + b, with a and b fitted over (2r+1)² windows and then
//! averaged over the same windows). Where p is one constant over the 2r
//! neighbourhood of a pixel, every window that touches the pixel has zero
//! covariance between I and p, so a = 0, b = p and the output is p itself. The
//! cut-out's p is 0 or 1 everywhere except in a band a few pixels wide around the
//! garment's outline, so the frame is cut into [`TILE`]² tiles and the filter runs
//! only on tiles where p takes more than one value over the tile and its 2r
//! margin (on that margin too, which gives exactly the whole-frame result on the
//! tile); every other pixel keeps p. That is a few percent of the frame instead of all of it.
//!
//! Box means use running sums (O(1) per pixel whatever the radius) in single
//! precision. The guide is centred on its mean first (the filter's output does
//! not change when a constant is added to the guide), so the variance
//! mean(I²) − mean(I)² is not a difference of two nearly equal large numbers.

use rayon::prelude::*;

/// Side of the tiles the band is found in: large against the filter's 2r margin
/// (computed twice, for both tiles it joins) and small against the frame, so the
/// tiles cover little more than the band.
const TILE: usize = 32;

/// Box means of `src` (w×h) over (2r+1)² windows, shrunk at the frame's edges (the
/// mean over the pixels that exist), by running sums.
pub(super) fn box_mean(src: &[f32], w: usize, h: usize, r: usize) -> Vec<f32> {
    let mut rows = vec![0.0f32; w * h];
    // Horizontal window sums per row.
    for (line, out) in src.chunks_exact(w).zip(rows.chunks_exact_mut(w)) {
        let mut sum: f32 = line[..(r + 1).min(w)].iter().sum();
        for x in 0..w {
            out[x] = sum;
            if x + r + 1 < w {
                sum += line[x + r + 1];
            }
            if x >= r {
                sum -= line[x - r];
            }
        }
    }
    // Vertical window sums of those, divided by the window's pixel count.
    let mut out = vec![0.0f32; w * h];
    let mut column = vec![0.0f32; w];
    for line in rows.chunks_exact(w).take(r + 1) {
        for (c, v) in column.iter_mut().zip(line) {
            *c += v;
        }
    }
    // Reciprocal window widths per column (the window shrinks at the edges).
    let span = |c: usize, n: usize| ((c + r + 1).min(n) - c.saturating_sub(r)) as f32;
    let inv_width: Vec<f32> = (0..w).map(|x| 1.0 / span(x, w)).collect();
    for y in 0..h {
        let inv_height = 1.0 / span(y, h);
        for ((o, c), iw) in out[y * w..][..w].iter_mut().zip(&column).zip(&inv_width) {
            *o = c * inv_height * iw;
        }
        if y + r + 1 < h {
            for (c, v) in column.iter_mut().zip(&rows[(y + r + 1) * w..][..w]) {
                *c += v;
            }
        }
        if y >= r {
            for (c, v) in column.iter_mut().zip(&rows[(y - r) * w..][..w]) {
                *c -= v;
            }
        }
    }
    out
}

/// The guided filter over a whole plane (w×h) of guide `i` and input `p`.
pub(super) fn guided_plane(i: &[f32], p: &[f32], w: usize, h: usize, r: usize, eps: f32) -> Vec<f32> {
    let centre = i.iter().sum::<f32>() / i.len().max(1) as f32;
    let i: Vec<f32> = i.iter().map(|v| v - centre).collect();
    let ip: Vec<f32> = i.iter().zip(p).map(|(a, b)| a * b).collect();
    let ii: Vec<f32> = i.iter().map(|a| a * a).collect();
    let (mean_i, mean_p, mean_ip, mean_ii) = (
        box_mean(&i, w, h, r),
        box_mean(p, w, h, r),
        box_mean(&ip, w, h, r),
        box_mean(&ii, w, h, r),
    );
    let mut a = vec![0.0f32; w * h];
    let mut b = vec![0.0f32; w * h];
    for k in 0..w * h {
        let var = mean_ii[k] - mean_i[k] * mean_i[k];
        let cov = mean_ip[k] - mean_i[k] * mean_p[k];
        a[k] = cov / (var + eps);
        b[k] = mean_p[k] - a[k] * mean_i[k];
    }
    let (ma, mb) = (box_mean(&a, w, h, r), box_mean(&b, w, h, r));
    (0..w * h).map(|k| ma[k] * i[k] + mb[k]).collect()
}

/// The guided filter of `p` (w×h) with guide `i`, computed only on the tiles where
/// p is not one constant over the 2r neighbourhood; identical to
/// [`guided_plane`] over the whole frame up to rounding.
pub(super) fn guided_filter(i: &[f32], p: &[f32], w: usize, h: usize, r: usize, eps: f32) -> Vec<f32> {
    let (tw, th) = (w.div_ceil(TILE), h.div_ceil(TILE));
    // The tile with its 2r margin (cut at the frame's edges, where the windows
    // shrink in the same way as over the whole frame).
    let region = |t: usize| {
        let (x0, y0) = ((t % tw) * TILE, (t / tw) * TILE);
        let (x1, y1) = ((x0 + TILE).min(w), (y0 + TILE).min(h));
        let outer = (
            x0.saturating_sub(2 * r),
            y0.saturating_sub(2 * r),
            (x1 + 2 * r).min(w),
            (y1 + 2 * r).min(h),
        );
        ((x0, y0, x1, y1), outer)
    };
    let filtered: Vec<(usize, Vec<f32>)> = (0..tw * th)
        .into_par_iter()
        .filter_map(|t| {
            let ((x0, y0, x1, y1), (rx0, ry0, rx1, ry1)) = region(t);
            // Only where p is not one constant over the tile and its margin.
            let first = p[ry0 * w + rx0];
            let constant = (ry0..ry1).all(|y| p[y * w + rx0..y * w + rx1].iter().all(|&v| v == first));
            if constant {
                return None;
            }
            let rw = rx1 - rx0;
            let cut = |plane: &[f32]| -> Vec<f32> {
                (ry0..ry1)
                    .flat_map(|y| plane[y * w + rx0..y * w + rx1].iter().copied())
                    .collect()
            };
            let out = guided_plane(&cut(i), &cut(p), rw, ry1 - ry0, r, eps);
            let values = (y0..y1)
                .flat_map(|y| {
                    let row = (y - ry0) * rw;
                    out[row + x0 - rx0..row + x1 - rx0].to_vec()
                })
                .collect();
            Some((t, values))
        })
        .collect();
    let mut out = p.to_vec();
    for (t, values) in filtered {
        let (x0, y0) = ((t % tw) * TILE, (t / tw) * TILE);
        let x1 = (x0 + TILE).min(w);
        for (row, y) in values.chunks_exact(x1 - x0).zip(y0..) {
            out[y * w + x0..y * w + x1].copy_from_slice(row);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Box means by summing each window directly.
    fn naive_box_mean(src: &[f32], w: usize, h: usize, r: usize) -> Vec<f32> {
        (0..w * h)
            .map(|k| {
                let (x, y) = (k % w, k / w);
                let (mut sum, mut n) = (0.0f64, 0);
                for yy in y.saturating_sub(r)..(y + r + 1).min(h) {
                    for xx in x.saturating_sub(r)..(x + r + 1).min(w) {
                        sum += f64::from(src[yy * w + xx]);
                        n += 1;
                    }
                }
                (sum / f64::from(n)) as f32
            })
            .collect()
    }

    /// A frame with a bright diagonal band on a dark ground, some texture.
    fn guide(w: usize, h: usize) -> Vec<f32> {
        (0..w * h)
            .map(|k| {
                let (x, y) = ((k % w) as f32, (k / w) as f32);
                let band = if (x - 0.7 * y).abs() < 9.0 { 0.9 } else { 0.3 };
                band + 0.02 * ((x * 0.7).sin() * (y * 1.3).cos())
            })
            .collect()
    }

    #[test]
    fn running_sums_equal_the_naive_box_mean() {
        for (w, h, r) in [(23, 17, 2), (5, 4, 3), (1, 9, 1), (40, 3, 0), (12, 12, 6)] {
            let src: Vec<f32> = (0..w * h).map(|k| ((k * 37 % 101) as f32) / 101.0).collect();
            let fast = box_mean(&src, w, h, r);
            let slow = naive_box_mean(&src, w, h, r);
            for (a, b) in fast.iter().zip(&slow) {
                assert!((a - b).abs() < 1e-5, "{w}x{h} r={r}: {a} vs {b}");
            }
        }
    }

    #[test]
    fn the_band_limited_filter_equals_the_whole_frame_filter() {
        // Frame sizes that are and are not multiples of the tile, a mask edge
        // that is soft in places and a hard step elsewhere (no intermediate
        // values at all, as a one-pixel block upsampling gives).
        for (w, h) in [(100, 70), (64, 64), (33, 95)] {
            let i = guide(w, h);
            let p: Vec<f32> = (0..w * h)
                .map(|k| {
                    let (x, y) = ((k % w) as f32, (k / w) as f32);
                    let d = 30.0 - ((x - 40.0).powi(2) + (y - 35.0).powi(2)).sqrt();
                    if y < 35.0 {
                        (d / 3.0 + 0.5).clamp(0.0, 1.0)
                    } else {
                        f32::from(d > 0.0)
                    }
                })
                .collect();
            let whole = guided_plane(&i, &p, w, h, 2, 2e-4);
            let band = guided_filter(&i, &p, w, h, 2, 2e-4);
            for (k, (a, b)) in band.iter().zip(&whole).enumerate() {
                assert!((a - b).abs() < 1e-3, "{w}x{h} at {k}: {a} vs {b}");
            }
        }
    }

    #[test]
    fn the_filter_follows_the_guide_and_keeps_constant_regions() {
        let (w, h) = (60, 60);
        let i = guide(w, h);
        // The input is the guide's band, blurred by a one-pixel shift: the filter
        // pulls its edge back onto the guide's.
        let p: Vec<f32> = (0..w * h)
            .map(|k| {
                let (x, y) = ((k % w) as f32, (k / w) as f32);
                f32::from((x + 1.0 - 0.7 * y).abs() < 9.0)
            })
            .collect();
        let out = guided_filter(&i, &p, w, h, 2, 2e-4);
        let at = |x: usize, y: usize| out[y * w + x];
        // Column 36 of row 40 is inside the guide's band (|36 − 28| < 9) but not
        // the input's; column 38 is outside both.
        assert!(at(36, 40) > 0.5, "inside: {}", at(36, 40));
        assert!(at(38, 40) < 0.5, "outside: {}", at(38, 40));
        // Far from the edge the input is kept exactly.
        assert_eq!(at(5, 59), 0.0);
        let empty = vec![0.0f32; w * h];
        assert_eq!(guided_filter(&i, &empty, w, h, 2, 2e-4), empty);
    }
}

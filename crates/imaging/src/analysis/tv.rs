//! Weighted-TV segmentation (the convex relaxation of a binary min-cut), solved by
//! Chambolle–Pock primal–dual iterations until the labelling settles.
//!
//! Minimises `λ·Σ wᵢ|∇u|ᵢ + Σ dataᵢ·uᵢ` over u ∈ [0, 1]; thresholding u at ½
//! gives a global minimiser of the binary energy (Chan, Esedoglu and Nikolova
//! 2006). The cut-out solves it once per GrabCut round with a data term that
//! changes only a little between rounds, so [`Solver`] keeps the primal and dual
//! variables and the next round starts where the last one stopped (a warm start),
//! and each solve stops as soon as the thresholded labelling has not changed for
//! [`STABLE_SWEEPS`] sweeps and u itself has all but stopped moving.
//!
//! Each iteration is one fused sweep over the rows on the calling thread: the dual
//! step of row y needs only rows y and y + 1 of the over-relaxed primal from the
//! previous iteration, and the primal step of row y only the new duals of rows
//! y and y − 1, so one pass does both with no scratch buffers. A sweep over the
//! 50 000 cells of the cut-out's grid is about a million instructions, a fraction
//! of a millisecond; splitting it across the pool would add a synchronisation per
//! iteration, which on a loaded machine costs more than the sweep.

/// Primal and dual step sizes: τ·σ·‖∇‖² < 1 with ‖∇‖² ≤ 8 on a 4-neighbour grid.
const TAU: f32 = 0.35;
const SIGMA: f32 = 0.35;
/// Most iterations per solve: a bounded cost even when a cell keeps oscillating.
/// The labelling of the cut-out's grids settles well within this (the former
/// fixed count).
const MAX_ITERATIONS: usize = 120;
/// Fewest iterations per solve, so that a cold start has spread the smoothness
/// term beyond the cells next to the data term's sign changes before the
/// stability test can stop it.
const MIN_ITERATIONS: usize = 20;
/// Consecutive sweeps without a label change (u crossing ½) after which the
/// labelling counts as settled.
const STABLE_SWEEPS: usize = 10;
/// Mean |Δu| per cell and sweep below which u has all but stopped moving (a
/// thousandth of u's range per sweep, on average): together with a labelling
/// unchanged for [`STABLE_SWEEPS`] sweeps, further sweeps would only polish
/// values far from the ½ threshold.
const TOLERANCE: f32 = 1e-3;

/// Primal (`u`, its over-relaxation `bar`) and dual (`px`, `py`) variables of the
/// solve, kept between solves for a warm start.
#[derive(Debug, Clone)]
pub(super) struct Solver {
    w: usize,
    h: usize,
    u: Vec<f32>,
    bar: Vec<f32>,
    px: Vec<f32>,
    py: Vec<f32>,
    /// A row of zeros: the dual above the first row.
    zeros: Vec<f32>,
}

impl Solver {
    /// A cold start: u is 1 where `data` favours garment (< 0), duals zero.
    pub fn new(data: &[f32], w: usize, h: usize) -> Self {
        let u: Vec<f32> = data.iter().map(|&d| if d < 0.0 { 1.0 } else { 0.0 }).collect();
        Self {
            w,
            h,
            bar: u.clone(),
            u,
            px: vec![0.0; w * h],
            py: vec![0.0; w * h],
            zeros: vec![0.0; w],
        }
    }

    /// The relaxed labelling (threshold at ½).
    pub fn u(&self) -> &[f32] {
        &self.u
    }

    /// Runs the primal–dual iterations from the current state until the labelling
    /// settles (at most [`MAX_ITERATIONS`]); returns the number of iterations.
    /// `data` < 0 favours garment; `weights` scale the smoothness per cell, and
    /// `lambda` weighs it against the data term.
    pub fn solve(&mut self, data: &[f32], weights: &[f32], lambda: f32) -> usize {
        let n = self.w * self.h;
        assert!(
            data.len() == n && weights.len() == n,
            "data and weights have one value per cell"
        );
        // A warm start continues the previous iterates; the over-relaxed point
        // restarts at u (the first step is then a plain primal–dual step).
        self.bar.copy_from_slice(&self.u);
        let scale = 1.0 / lambda;
        let mut stable = 0;
        for iteration in 1..=MAX_ITERATIONS {
            let (change, flips) = self.sweep(data, weights, scale);
            if flips == 0 && change < TOLERANCE * n as f32 {
                stable += 1;
            } else {
                stable = 0;
            }
            if stable >= STABLE_SWEEPS && iteration >= MIN_ITERATIONS {
                return iteration;
            }
        }
        MAX_ITERATIONS
    }

    /// One fused primal–dual iteration; returns Σ|Δu| and how many cells crossed ½.
    ///
    /// The loops run over whole rows as slices, without per-cell branches, so
    /// they vectorise: the frame's last column and row have no forward
    /// difference, so their duals stay zero (they start at zero and are only
    /// ever scaled), which makes the divergence's usual boundary cases implicit;
    /// the first column and row read a zero neighbour instead.
    fn sweep(&mut self, data: &[f32], weights: &[f32], scale: f32) -> (f32, usize) {
        let (w, h) = (self.w, self.h);
        let Self {
            u,
            bar,
            px,
            py,
            zeros,
            ..
        } = self;
        let (mut change, mut flips) = (0u64, 0usize);
        for y in 0..h {
            let row = y * w..(y + 1) * w;
            // Dual ascent with projection onto |p| ≤ weight, from the previous
            // iteration's over-relaxed rows y and y + 1 (not yet rewritten). The
            // last row takes itself as the row below: no vertical difference.
            let b = &bar[row.clone()];
            let below = if y + 1 < h { &bar[row.end..row.end + w] } else { b };
            let (pxr, pyr) = (&mut px[row.clone()], &mut py[row.clone()]);
            let dual = |pxv: &mut f32, pyv: &mut f32, weight: f32, gx: f32, gy: f32| {
                let (nx, ny) = (*pxv + SIGMA * gx, *pyv + SIGMA * gy);
                let k = (weight / (nx * nx + ny * ny).sqrt()).min(1.0);
                *pxv = nx * k;
                *pyv = ny * k;
            };
            let cells = pxr[..w - 1]
                .iter_mut()
                .zip(pyr[..w - 1].iter_mut())
                .zip(&weights[row.start..row.end - 1])
                .zip(b[..w - 1].iter().zip(&b[1..]))
                .zip(&below[..w - 1]);
            for ((((pxv, pyv), &weight), (&here, &right)), &down) in cells {
                dual(pxv, pyv, weight, right - here, down - here);
            }
            // The last column has no horizontal difference.
            let last = w - 1;
            dual(
                &mut pxr[last],
                &mut pyr[last],
                weights[row.end - 1],
                0.0,
                below[last] - b[last],
            );
            // Primal descent, clamped to [0, 1], and over-relaxation, from the new
            // duals of rows y and y − 1.
            let (above, rest) = py.split_at(row.start);
            let pyr = &rest[..w];
            let pyu = if y > 0 {
                &above[row.start - w..]
            } else {
                &zeros[..]
            };
            let pxr = &px[row.clone()];
            let (mut moved, mut crossed) = (0u32, 0u32);
            let mut primal = |uv: &mut f32, barv: &mut f32, d: f32, div: f32| {
                let old = *uv;
                let next = (old + TAU * (div - scale * d)).clamp(0.0, 1.0);
                // |Δu| in units of 2⁻¹⁶ (an integer sum vectorises, a float one
                // would have to keep its order).
                moved += ((next - old).abs() * CHANGE_UNIT) as u32;
                crossed += u32::from((next >= 0.5) != (old >= 0.5));
                *barv = 2.0 * next - old;
                *uv = next;
            };
            let (ur, barr) = (&mut u[row.clone()], &mut bar[row.clone()]);
            // The first column has no left neighbour.
            primal(
                &mut ur[0],
                &mut barr[0],
                data[row.start],
                pxr[0] + pyr[0] - pyu[0],
            );
            let cells = ur[1..]
                .iter_mut()
                .zip(barr[1..].iter_mut())
                .zip(&data[row.start + 1..row.end])
                .zip(pxr[1..].iter().zip(&pxr[..w - 1]))
                .zip(pyr[1..].iter().zip(&pyu[1..]));
            for ((((uv, barv), &d), (&pxv, &pxl)), (&pyv, &pyl)) in cells {
                primal(uv, barv, d, pxv - pxl + pyv - pyl);
            }
            change += u64::from(moved);
            flips += crossed as usize;
        }
        (change as f32 / CHANGE_UNIT, flips)
    }
}

/// Scale of the integer sum of |Δu| (2¹⁶: changes below 1.5e-5 per cell, far
/// under [`TOLERANCE`], are not counted; a row sum cannot overflow below 65 536
/// cells per row).
const CHANGE_UNIT: f32 = 65_536.0;

#[cfg(test)]
mod tests {
    use super::*;

    /// The former solver: separate dual and primal passes, a fixed iteration count.
    fn reference(
        data: &[f32],
        weights: &[f32],
        w: usize,
        h: usize,
        lambda: f32,
        iterations: usize,
    ) -> Vec<f32> {
        let n = w * h;
        let mut u: Vec<f32> = data.iter().map(|&d| if d < 0.0 { 1.0 } else { 0.0 }).collect();
        let mut bar = u.clone();
        let (mut px, mut py) = (vec![0.0f32; n], vec![0.0f32; n]);
        for _ in 0..iterations {
            for i in 0..n {
                let (x, y) = (i % w, i / w);
                let gx = if x + 1 < w { bar[i + 1] - bar[i] } else { 0.0 };
                let gy = if y + 1 < h { bar[i + w] - bar[i] } else { 0.0 };
                let (nx, ny) = (px[i] + SIGMA * gx, py[i] + SIGMA * gy);
                let norm = (nx * nx + ny * ny).sqrt();
                let k = if norm > weights[i] { weights[i] / norm } else { 1.0 };
                px[i] = nx * k;
                py[i] = ny * k;
            }
            let next: Vec<f32> = (0..n)
                .map(|i| {
                    let (x, y) = (i % w, i / w);
                    let mut div = if x + 1 < w { px[i] } else { 0.0 } - if x > 0 { px[i - 1] } else { 0.0 };
                    div += if y + 1 < h { py[i] } else { 0.0 } - if y > 0 { py[i - w] } else { 0.0 };
                    (u[i] + TAU * (div - data[i] / lambda)).clamp(0.0, 1.0)
                })
                .collect();
            for i in 0..n {
                bar[i] = 2.0 * next[i] - u[i];
            }
            u = next;
        }
        u
    }

    /// A noisy disc: data favours garment inside radius 12 of (20, 16), with every
    /// seventh cell's sign flipped; a wall (low weight) along x = 30.
    fn noisy_disc() -> (Vec<f32>, Vec<f32>, usize, usize) {
        let (w, h) = (40, 32);
        let data = (0..w * h)
            .map(|i| {
                let (x, y) = ((i % w) as f32 - 20.0, (i / w) as f32 - 16.0);
                let d = if x * x + y * y < 144.0 { -1.0 } else { 1.0 };
                if i % 7 == 0 { -d } else { d }
            })
            .collect();
        let weights = (0..w * h).map(|i| if i % w == 30 { 0.1 } else { 1.0 }).collect();
        (data, weights, w, h)
    }

    fn labels(u: &[f32]) -> Vec<bool> {
        u.iter().map(|&v| v >= 0.5).collect()
    }

    #[test]
    fn the_fused_sweep_is_the_two_pass_iteration() {
        let (data, weights, w, h) = noisy_disc();
        let mut solver = Solver::new(&data, w, h);
        for _ in 0..37 {
            solver.sweep(&data, &weights, 1.0 / 1.5);
        }
        let want = reference(&data, &weights, w, h, 1.5, 37);
        for (a, b) in solver.u().iter().zip(&want) {
            assert!((a - b).abs() < 1e-5, "{a} vs {b}");
        }
    }

    #[test]
    fn stops_early_with_the_fixed_count_labelling_and_removes_the_noise() {
        let (data, weights, w, h) = noisy_disc();
        let mut solver = Solver::new(&data, w, h);
        let iterations = solver.solve(&data, &weights, 1.5);
        assert!(iterations < MAX_ITERATIONS, "settled after {iterations}");
        let full = reference(&data, &weights, w, h, 1.5, MAX_ITERATIONS);
        assert_eq!(labels(solver.u()), labels(&full));
        // The isolated flipped cells are smoothed away: inside garment, outside not.
        assert!(solver.u()[16 * w + 20] >= 0.5 && solver.u()[16 * w + 21] >= 0.5);
        assert!(solver.u()[2 * w + 2] < 0.5 && solver.u()[w + 7] < 0.5);
    }

    #[test]
    fn a_warm_start_from_a_nearby_problem_settles_faster_to_the_same_labelling() {
        let (data, weights, w, h) = noisy_disc();
        let mut solver = Solver::new(&data, w, h);
        let cold = solver.solve(&data, &weights, 1.5);
        // A slightly stronger data term, as a refitted colour model gives.
        let next: Vec<f32> = data.iter().map(|d| d * 1.1).collect();
        let warm = solver.solve(&next, &weights, 1.5);
        assert!(warm < cold, "warm {warm} vs cold {cold}");
        let mut fresh = Solver::new(&next, w, h);
        fresh.solve(&next, &weights, 1.5);
        assert_eq!(labels(solver.u()), labels(fresh.u()));
    }
}

//! Peels a contact shadow or glow off the coarse garment's outline.
//!
//! A soft contact shadow (or the glow a composite leaves around its subject) is
//! darker than the sweep at the sweep's chroma, so its colour never counts against
//! the garment (see `Models::llr`), and it changes slowly, so it holds no wall. The
//! coarse labelling's outline cells mix it with the subject's edge and keep it: a
//! band a few pixels wide of false garment around the whole outline, which on a
//! small subject (arms 20 px wide) costs a tenth of the IoU.
//!
//! At the working resolution, the pixels of the outline band that the backdrop
//! reaches through shadow-like or backdrop-like pixels without crossing a wall are
//! backdrop. Two guards keep the flood out of a light-grey or shaded garment,
//! whose colour is shadow-like too:
//!
//! * **Walls by hysteresis** (as Canny's edge detector): a pixel whose gradient is
//!   above [`WEAK_WALL`] of the wall threshold is a wall when it is connected to
//!   one above the threshold itself, so a faint stretch of a real outline blocks
//!   the flood while isolated noise in the shadow does not.
//! * **Straight paths only**: a pixel is peeled only when its distance from the
//!   backdrop along the flood is at most [`DETOUR`] times its straight-line
//!   distance. A shadow is reached straight from the backdrop beside it; the
//!   inside of a garment reached through a gap in its outline is not (the path
//!   runs round the outline), so a gap costs a few pixels, not the band.
//!
//! The band is the coarse garment within [`BAND_CELLS`] cells of its backdrop;
//! nothing deeper changes. Where the outline moved, the [`REOPEN`] pixels inside
//! the new outline are made uncertain, so the soft alpha places the edge there
//! from each pixel's own colour, as it does in the upsampling's band elsewhere.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use super::{Grid, HOLE_DEVIATION, Planes, is_shadow_like, kmeans};

/// Depth of the band, in grid cells from the coarse backdrop (Chebyshev).
const BAND_CELLS: usize = 2;
/// Share of the wall threshold from which a pixel connected to a wall is a wall.
const WEAK_WALL: f32 = 0.6;
/// Largest ratio of the flood's path length to the straight-line distance.
const DETOUR: f32 = 1.1;
/// Chamfer steps (a 5-7 metric: straight and diagonal) and the slack allowed on
/// top of the detour, one pixel.
const STEP: u32 = 5;
const DIAGONAL: u32 = 7;
const SLACK: f32 = 5.0;
/// Pixels within this many steps of a peeled one, inside the garment, are made
/// uncertain again (the guided filter's radius), and the level they get.
const REOPEN: usize = 2;
const UNCERTAIN: f32 = 0.5;

/// Sets `up` (the upsampled coarse garment, 0–1 per working pixel) to 0 on the
/// pixels of the outline band that are shadow or backdrop reached from the
/// backdrop (`up` = 0) without crossing a wall or going round one.
pub(super) fn peel_shadow_band(up: &mut [f32], planes: &Planes, coarse: &[u8], grid: &Grid, edge_bar: f32) {
    let (w, h) = (planes.w, planes.h);
    let band = band(planes, coarse, grid);
    let wall = walls(&planes.grad, &band, w, h, edge_bar);
    let passable = |i: usize| {
        band[i]
            && !wall[i]
            && (is_shadow_like(planes.lab[i], planes.backdrop[i])
                || kmeans::dist2(&planes.lab[i], &planes.backdrop[i]).sqrt() < HOLE_DEVIATION)
    };
    let seeds: Vec<bool> = up.iter().map(|&u| u <= 0.0).collect();
    let straight = chamfer(&seeds, w, h);
    // Dijkstra from the seeds' edge over passable pixels, in chamfer units.
    let mut path = vec![u32::MAX; w * h];
    let mut heap = BinaryHeap::new();
    for (i, _) in seeds.iter().enumerate().filter(|&(_, &s)| s) {
        let (x, y) = (i % w, i / w);
        let edge = neighbours4(x, y, w, h).any(|j| !seeds[j]);
        if edge {
            path[i] = 0;
            heap.push(Reverse((0u32, i)));
        }
    }
    let mut peeled = Vec::new();
    while let Some(Reverse((d, i))) = heap.pop() {
        if d > path[i] {
            continue;
        }
        if up[i] > 0.0 {
            peeled.push(i);
        }
        up[i] = 0.0;
        let (x, y) = (i % w, i / w);
        for yy in y.saturating_sub(1)..(y + 2).min(h) {
            for xx in x.saturating_sub(1)..(x + 2).min(w) {
                let j = yy * w + xx;
                if j == i || seeds[j] || !passable(j) {
                    continue;
                }
                let next = d + if xx != x && yy != y { DIAGONAL } else { STEP };
                if next < path[j] && next as f32 <= DETOUR * straight[j] as f32 + SLACK {
                    path[j] = next;
                    heap.push(Reverse((next, j)));
                }
            }
        }
    }
    reopen(up, &peeled, w, h);
}

/// Where the peel moved the outline, the pixels just inside it are uncertain again
/// (as the upsampling's band is elsewhere), so their own colour evidence and the
/// guided filter place the edge: the flood stops at the first wall pixel, which
/// may still be the shadow's darkest rim or a mixed pixel.
fn reopen(up: &mut [f32], peeled: &[usize], w: usize, h: usize) {
    let mut seen = vec![false; w * h];
    let mut frontier = peeled.to_vec();
    for &i in peeled {
        seen[i] = true;
    }
    for _ in 0..REOPEN {
        let mut next = Vec::new();
        for &i in &frontier {
            for j in neighbours4(i % w, i / w, w, h) {
                if !seen[j] && up[j] > 0.0 {
                    seen[j] = true;
                    up[j] = up[j].min(UNCERTAIN);
                    next.push(j);
                }
            }
        }
        frontier = next;
    }
}

/// Working pixels whose grid cell is coarse garment within [`BAND_CELLS`] of the
/// coarse backdrop (or is backdrop itself).
fn band(planes: &Planes, coarse: &[u8], grid: &Grid) -> Vec<bool> {
    let (gw, gh) = (grid.w, grid.h);
    let mut near = vec![false; gw * gh];
    for (c, _) in coarse.iter().enumerate().filter(|&(_, &v)| v == 0) {
        let (cx, cy) = (c % gw, c / gw);
        for yy in cy.saturating_sub(BAND_CELLS)..(cy + BAND_CELLS + 1).min(gh) {
            for xx in cx.saturating_sub(BAND_CELLS)..(cx + BAND_CELLS + 1).min(gw) {
                near[yy * gw + xx] = true;
            }
        }
    }
    let b = grid.block;
    (0..planes.w * planes.h)
        .map(|i| near[(i / planes.w / b) * gw + (i % planes.w) / b])
        .collect()
}

/// Walls in the band by hysteresis: above `edge_bar`, or above [`WEAK_WALL`] of
/// it and 8-connected to such a pixel.
fn walls(grad: &[f32], band: &[bool], w: usize, h: usize, edge_bar: f32) -> Vec<bool> {
    let weak = WEAK_WALL * edge_bar;
    let mut wall = vec![false; w * h];
    let mut stack: Vec<usize> = (0..w * h).filter(|&i| band[i] && grad[i] >= edge_bar).collect();
    for &i in &stack {
        wall[i] = true;
    }
    while let Some(i) = stack.pop() {
        let (x, y) = (i % w, i / w);
        for yy in y.saturating_sub(1)..(y + 2).min(h) {
            for xx in x.saturating_sub(1)..(x + 2).min(w) {
                let j = yy * w + xx;
                if !wall[j] && band[j] && grad[j] >= weak {
                    wall[j] = true;
                    stack.push(j);
                }
            }
        }
    }
    wall
}

/// The 4-neighbours of (x, y) inside a w×h frame, as indices.
fn neighbours4(x: usize, y: usize, w: usize, h: usize) -> impl Iterator<Item = usize> {
    [
        (x.wrapping_sub(1), y),
        (x + 1, y),
        (x, y.wrapping_sub(1)),
        (x, y + 1),
    ]
    .into_iter()
    .filter(move |&(xx, yy)| xx < w && yy < h)
    .map(move |(xx, yy)| yy * w + xx)
}

/// Chamfer (5-7) distance of every pixel to the nearest seed: two raster passes.
fn chamfer(seeds: &[bool], w: usize, h: usize) -> Vec<u32> {
    let far = u32::MAX / 2;
    let mut d: Vec<u32> = seeds.iter().map(|&s| if s { 0 } else { far }).collect();
    for y in 0..h {
        for x in 0..w {
            let i = y * w + x;
            let mut v = d[i];
            if x > 0 {
                v = v.min(d[i - 1] + STEP);
            }
            if y > 0 {
                v = v.min(d[i - w] + STEP);
                if x > 0 {
                    v = v.min(d[i - w - 1] + DIAGONAL);
                }
                if x + 1 < w {
                    v = v.min(d[i - w + 1] + DIAGONAL);
                }
            }
            d[i] = v;
        }
    }
    for y in (0..h).rev() {
        for x in (0..w).rev() {
            let i = y * w + x;
            let mut v = d[i];
            if x + 1 < w {
                v = v.min(d[i + 1] + STEP);
            }
            if y + 1 < h {
                v = v.min(d[i + w] + STEP);
                if x + 1 < w {
                    v = v.min(d[i + w + 1] + DIAGONAL);
                }
                if x > 0 {
                    v = v.min(d[i + w - 1] + DIAGONAL);
                }
            }
            d[i] = v;
        }
    }
    d
}

#[cfg(test)]
mod tests {
    use super::super::{Grid, Planes};
    use super::*;

    const SWEEP: [f32; 3] = [0.95, 0.0, 0.01];
    /// The sweep darkened at its own chroma: a shadow, or a light-grey garment.
    const GREY: [f32; 3] = [0.85, 0.0, 0.009];
    const SKIN: [f32; 3] = [0.6, 0.05, 0.06];
    const W: usize = 40;
    const H: usize = 20;

    /// A frame whose coarse garment (one-pixel cells) starts at column 16;
    /// `colour(x, y)` and `grad(x, y)` (in wall-threshold units) describe it.
    fn frame(
        colour: impl Fn(usize, usize) -> [f32; 3],
        grad: impl Fn(usize, usize) -> f32,
    ) -> (Planes, Grid, Vec<u8>) {
        let n = W * H;
        let at = |f: &dyn Fn(usize, usize) -> [f32; 3]| (0..n).map(|i| f(i % W, i / W)).collect::<Vec<_>>();
        let lab = at(&colour);
        let planes = Planes {
            w: W,
            h: H,
            lab: lab.clone(),
            backdrop: vec![SWEEP; n],
            score: vec![0.0; n],
            lightness: lab.iter().map(|p| p[0]).collect(),
            grad: (0..n).map(|i| grad(i % W, i / W)).collect(),
        };
        let grid = Grid {
            w: W,
            h: H,
            block: 1,
            lab,
            backdrop: vec![SWEEP; n],
            wall: vec![0.0; n],
            texture: vec![1.0; n],
            colour_fg: vec![false; n],
        };
        let coarse = (0..n).map(|i| u8::from(i % W >= 16)).collect();
        (planes, grid, coarse)
    }

    fn peeled(planes: &Planes, grid: &Grid, coarse: &[u8]) -> Vec<f32> {
        let mut up: Vec<f32> = coarse.iter().map(|&c| f32::from(c)).collect();
        peel_shadow_band(&mut up, planes, coarse, grid, 1.0);
        up
    }

    #[test]
    fn a_contact_shadow_outside_the_outline_is_peeled_and_the_new_edge_reopened() {
        // Columns 16–17 are the subject's shadow, the subject (skin) starts at 18
        // behind a wall; the coarse labelling kept the shadow.
        let colour = |x: usize, _| {
            if x >= 18 {
                SKIN
            } else if x >= 16 {
                GREY
            } else {
                SWEEP
            }
        };
        let grad = |x: usize, _| if x == 18 { 3.0 } else { 0.2 };
        let (planes, grid, coarse) = frame(colour, grad);
        let up = peeled(&planes, &grid, &coarse);
        for y in 0..H {
            assert_eq!(up[y * W + 16], 0.0, "row {y}: shadow kept");
            assert_eq!(up[y * W + 17], 0.0, "row {y}: shadow kept");
            // The new outline's inner pixels are uncertain again, the rest kept.
            assert_eq!(up[y * W + 18], UNCERTAIN, "row {y}: subject's edge not reopened");
            assert_eq!(up[y * W + 19], UNCERTAIN, "row {y}: subject's edge not reopened");
            assert_eq!(up[y * W + 20], 1.0, "row {y}: subject peeled");
        }
    }

    #[test]
    fn a_grey_garment_behind_a_faint_outline_with_a_gap_is_kept() {
        // A light-grey garment (shadow-like) from column 16, its outline at column
        // 16 faint (0.7 of the threshold) but joined to a crisp stretch at row 10,
        // and open at rows 0–1. The faint outline blocks by hysteresis; through the
        // gap the garment is reached only round the outline.
        let colour = |x: usize, _| if x >= 16 { GREY } else { SWEEP };
        let grad = |x: usize, y: usize| match (x, y) {
            (16, 10) => 2.0,
            (16, 2..) => 0.7,
            _ => 0.1,
        };
        let (planes, grid, coarse) = frame(colour, grad);
        let up = peeled(&planes, &grid, &coarse);
        for y in 5..H {
            assert_eq!(up[y * W + 17], 1.0, "row {y}: garment behind its outline peeled");
        }
    }
}

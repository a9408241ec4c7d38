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
//! backdrop. Three guards keep the flood out of a light-grey or shaded garment,
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
//! * **Leaks**: where the flood reaches the band's inner edge and could go on
//!   (the next pixel inward is as passable), nothing bounded it; over a front of
//!   [`LEAK_FRONT`] band depths or more that is shaded cloth, not a shadow outside
//!   an edge, and the peel is undone within [`LEAK_REACH`] band depths of it.
//!
//! The band is the coarse garment within [`BAND_CELLS`] cells of its backdrop;
//! nothing deeper changes. Where the outline moved, the [`REOPEN`] pixels inside
//! the new outline are made uncertain, so the soft alpha places the edge there
//! from each pixel's own colour, as it does in the upsampling's band elsewhere.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use super::{Grid, HOLE_DEVIATION, Planes, is_shadow_like, kmeans, morph};

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
/// Shortest leak front, in band depths, that undoes the peel: a slip through a
/// short gap in a wall leaves a few pixels, shaded cloth a long front.
const LEAK_FRONT: usize = 1;
/// How far from a leak front the peel is undone, in band depths.
const LEAK_REACH: u32 = 2;

/// Sets `up` (the upsampled coarse garment, 0–1 per working pixel) to 0 on the
/// pixels of the outline band that are shadow or backdrop reached from the
/// backdrop (`up` = 0) without crossing a wall or going round one.
///
/// Everything runs on the band's pixels only (a few percent of the working copy):
/// the backdrop's own pixels are the flood's sources, never its steps.
pub(super) fn peel_shadow_band(up: &mut [f32], planes: &Planes, coarse: &[u8], grid: &Grid, edge_bar: f32) {
    let (w, h) = (planes.w, planes.h);
    let (in_band, pixels) = band(up, coarse, grid, w, h);
    if pixels.is_empty() {
        return;
    }
    let wall = walls(&planes.grad, &in_band, &pixels, w, h, edge_bar);
    // The backdrop's pixels that touch the band: where both spreads start.
    let mut sources: Vec<usize> = pixels
        .iter()
        .flat_map(|&i| neighbours4(i % w, i / w, w, h))
        .filter(|&j| up[j] <= 0.0)
        .collect();
    sources.sort_unstable();
    sources.dedup();
    // Straight-line (chamfer) distance to the backdrop, then the flood's own
    // distance through passable pixels, kept only along nearly straight paths.
    let straight = spread(&sources, w, h, |j| in_band[j], |_, _| true);
    let passable = |i: usize| in_band[i] && !wall[i] && shade_or_sweep(planes, i);
    let flood = spread(&sources, w, h, passable, |j, d| {
        d as f32 <= DETOUR * straight[j] as f32 + SLACK
    });
    // Leaks: where the flood would go on past the band's inner edge (the next
    // pixel inward is passable too), no wall bounded it: that is shaded cloth, not
    // a shadow lying outside an edge. The peel is undone near them.
    let open_inward = |j: usize| {
        !in_band[j] && up[j] > 0.0 && planes.grad[j] < WEAK_WALL * edge_bar && shade_or_sweep(planes, j)
    };
    let leaks: Vec<usize> = pixels
        .iter()
        .copied()
        .filter(|&i| flood[i] != u32::MAX && neighbours4(i % w, i / w, w, h).any(open_inward))
        .collect();
    let leaks = morph::in_large_pieces(&leaks, w, h, LEAK_FRONT * grid.block * BAND_CELLS);
    let reach = LEAK_REACH * STEP * (grid.block * BAND_CELLS) as u32;
    let leaked = spread(&leaks, w, h, |j| flood[j] != u32::MAX, |_, d| d <= reach);
    let peeled: Vec<usize> = pixels
        .into_iter()
        .filter(|&i| flood[i] != u32::MAX && leaked[i] == u32::MAX)
        .collect();
    for &i in &peeled {
        up[i] = 0.0;
    }
    reopen(up, &peeled, w, h);
}

/// Shadow-like or within a hair of the backdrop: what the flood may cross.
fn shade_or_sweep(planes: &Planes, i: usize) -> bool {
    is_shadow_like(planes.lab[i], planes.backdrop[i])
        || kmeans::dist2(&planes.lab[i], &planes.backdrop[i]).sqrt() < HOLE_DEVIATION
}

/// Chamfer-metric Dijkstra (steps of [`STEP`], diagonals [`DIAGONAL`]) from
/// `sources` through the pixels `open` admits, a step to pixel j at distance d
/// taken only when `keep(j, d)`. Unreached pixels stay at `u32::MAX`.
fn spread(
    sources: &[usize],
    w: usize,
    h: usize,
    open: impl Fn(usize) -> bool,
    keep: impl Fn(usize, u32) -> bool,
) -> Vec<u32> {
    let mut dist = vec![u32::MAX; w * h];
    let mut heap = BinaryHeap::with_capacity(sources.len());
    for &i in sources {
        dist[i] = 0;
        heap.push(Reverse((0u32, i)));
    }
    while let Some(Reverse((d, i))) = heap.pop() {
        if d > dist[i] {
            continue;
        }
        let (x, y) = (i % w, i / w);
        for yy in y.saturating_sub(1)..(y + 2).min(h) {
            for xx in x.saturating_sub(1)..(x + 2).min(w) {
                let j = yy * w + xx;
                if j == i || !open(j) {
                    continue;
                }
                let next = d + if xx != x && yy != y { DIAGONAL } else { STEP };
                if next < dist[j] && keep(j, next) {
                    dist[j] = next;
                    heap.push(Reverse((next, j)));
                }
            }
        }
    }
    dist
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

/// The band: working pixels that are not backdrop (`up` > 0) in grid cells that
/// are coarse garment within [`BAND_CELLS`] of the coarse backdrop, or backdrop
/// cells next to the garment (the upsampling's band reaches into them). Returns
/// the membership per pixel and the list.
fn band(up: &[f32], coarse: &[u8], grid: &Grid, w: usize, h: usize) -> (Vec<bool>, Vec<usize>) {
    let (gw, gh) = (grid.w, grid.h);
    let within = |c: usize, r: usize, want: u8| {
        let (cx, cy) = (c % gw, c / gw);
        (cy.saturating_sub(r)..(cy + r + 1).min(gh))
            .any(|yy| (cx.saturating_sub(r)..(cx + r + 1).min(gw)).any(|xx| coarse[yy * gw + xx] == want))
    };
    let mut in_band = vec![false; w * h];
    let mut pixels = Vec::new();
    let b = grid.block;
    for (c, &cell) in coarse.iter().enumerate() {
        let keep = if cell != 0 {
            within(c, BAND_CELLS, 0)
        } else {
            within(c, 1, 1)
        };
        if !keep {
            continue;
        }
        let (x0, y0) = ((c % gw) * b, (c / gw) * b);
        for y in y0..(y0 + b).min(h) {
            for x in x0..(x0 + b).min(w) {
                let i = y * w + x;
                if up[i] > 0.0 {
                    in_band[i] = true;
                    pixels.push(i);
                }
            }
        }
    }
    (in_band, pixels)
}

/// Walls in the band by hysteresis: above `edge_bar`, or above [`WEAK_WALL`] of
/// it and 8-connected to such a pixel.
fn walls(grad: &[f32], band: &[bool], pixels: &[usize], w: usize, h: usize, edge_bar: f32) -> Vec<bool> {
    let weak = WEAK_WALL * edge_bar;
    let mut wall = vec![false; w * h];
    let mut stack: Vec<usize> = pixels.iter().copied().filter(|&i| grad[i] >= edge_bar).collect();
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
    fn shaded_cloth_the_flood_runs_through_to_the_bands_inner_edge_is_kept() {
        // A light-grey garment (shadow-like) from column 16 with no outline at
        // all: the flood crosses the whole band and would go on inward, so this is
        // cloth, not a shadow outside an edge.
        let colour = |x: usize, _| if x >= 16 { GREY } else { SWEEP };
        let (planes, grid, coarse) = frame(colour, |_, _| 0.1);
        let up = peeled(&planes, &grid, &coarse);
        for y in 0..H {
            assert_eq!(up[y * W + 16], 1.0, "row {y}: shaded cloth peeled");
            assert_eq!(up[y * W + 17], 1.0, "row {y}: shaded cloth peeled");
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

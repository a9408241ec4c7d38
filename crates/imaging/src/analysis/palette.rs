//! The garment's dominant colours: k-means in OKLab over its pixels.
//!
//! Clustering in OKLab makes "close" mean "looks alike", so a fold's lighter and
//! darker halves end up near each other and a stripe of another hue far away.
//! Samples are taken with a fixed stride from the mask's interior (the soft edge
//! mixes in backdrop), centres are seeded by k-means++ from a fixed seed so the
//! same photo always yields the same palette, and after convergence clusters
//! closer than [`MERGE_DISTANCE`] are merged: k is an upper bound, and a plain
//! garment reports one colour, not five shades of it. Small clusters lying on the
//! line between two larger ones are the pixels where those two colours meet (a
//! stripe's edge, softened by the lens and the downscale), not colours of their
//! own; they are split between their parents.

use atelier_core::analysis::{ColorShare, hex};
use image::RgbImage;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::color;

/// Clusters closer than this in OKLab (about 4–5 ΔE76) are one colour.
const MERGE_DISTANCE: f32 = 0.05;
/// Clusters holding less than this share are dropped as edge or noise debris.
const MIN_SHARE: f32 = 0.01;
/// A cluster under this share lying between two larger ones is their blend.
const BLEND_MAX_SHARE: f32 = 0.1;
/// Lloyd iterations at most; convergence usually takes under fifteen.
const MAX_ITERATIONS: usize = 30;
/// Centres moving less than this (OKLab) in an iteration have converged: far below
/// what the hex output can show.
const CONVERGED: f32 = 1e-4;
/// Mask level counted as solid garment, away from the soft edge.
const INTERIOR: u8 = 250;
/// Fewer interior samples than this and the soft edge is sampled too.
const MIN_INTERIOR: usize = 64;
/// The k-means++ seed: fixed, so results are reproducible.
const SEED: u64 = 0x0a7e_11e7;

#[inline]
fn dist2(a: &[f32; 3], b: &[f32; 3]) -> f32 {
    (a[0] - b[0]).powi(2) + (a[1] - b[1]).powi(2) + (a[2] - b[2]).powi(2)
}

/// OKLab samples of the garment: every `stride`-th pixel with mask ≥ `level`.
fn samples(image: &RgbImage, mask: &[u8], max_samples: usize) -> Vec<[f32; 3]> {
    let pick = |level: u8| mask.iter().filter(|&&m| m >= level).count();
    let (mut level, mut count) = (INTERIOR, pick(INTERIOR));
    if count < MIN_INTERIOR {
        (level, count) = (128, pick(128));
    }
    if count == 0 || max_samples == 0 {
        return Vec::new();
    }
    let stride = count.div_ceil(max_samples);
    let lut = color::srgb_lut();
    image
        .as_raw()
        .chunks_exact(3)
        .zip(mask)
        .filter(|&(_, &m)| m >= level)
        .step_by(stride)
        .map(|(px, _)| color::srgb_to_oklab_fast([px[0], px[1], px[2]], lut))
        .collect()
}

/// Index of the nearest centre.
#[inline]
fn nearest(p: &[f32; 3], centres: &[[f32; 3]]) -> usize {
    let mut best = (0, f32::INFINITY);
    for (i, c) in centres.iter().enumerate() {
        let d = dist2(p, c);
        if d < best.1 {
            best = (i, d);
        }
    }
    best.0
}

/// k-means++ seeding: each next centre drawn with probability ∝ squared distance.
fn seed_centres(points: &[[f32; 3]], k: usize, rng: &mut ChaCha8Rng) -> Vec<[f32; 3]> {
    let mut centres = vec![points[rng.random_range(0..points.len())]];
    let mut d2: Vec<f32> = points.iter().map(|p| dist2(p, &centres[0])).collect();
    while centres.len() < k {
        let total: f64 = d2.iter().map(|&d| d as f64).sum();
        if total <= 0.0 {
            break; // Fewer distinct colours than k.
        }
        let mut target = rng.random_range(0.0..total);
        let mut chosen = points.len() - 1;
        for (i, &d) in d2.iter().enumerate() {
            target -= d as f64;
            if target < 0.0 {
                chosen = i;
                break;
            }
        }
        let c = points[chosen];
        centres.push(c);
        for (d, p) in d2.iter_mut().zip(points) {
            *d = d.min(dist2(p, &c));
        }
    }
    centres
}

/// Lloyd's algorithm from the given centres; returns centres and member counts
/// (empty clusters removed).
fn lloyd(points: &[[f32; 3]], mut centres: Vec<[f32; 3]>) -> Vec<([f32; 3], usize)> {
    let mut assignment = vec![usize::MAX; points.len()];
    let mut counts = vec![0usize; centres.len()];
    for _ in 0..MAX_ITERATIONS {
        let mut changed = false;
        let mut sums = vec![[0.0f64; 3]; centres.len()];
        counts.fill(0);
        for (p, a) in points.iter().zip(assignment.iter_mut()) {
            let i = nearest(p, &centres);
            changed |= *a != i;
            *a = i;
            counts[i] += 1;
            for c in 0..3 {
                sums[i][c] += p[c] as f64;
            }
        }
        let mut shift = 0.0f32;
        for ((centre, sum), &n) in centres.iter_mut().zip(&sums).zip(&counts) {
            if n > 0 {
                let next = sum.map(|s| (s / n as f64) as f32);
                shift = shift.max(dist2(centre, &next));
                *centre = next;
            }
        }
        if !changed || shift < CONVERGED * CONVERGED {
            break;
        }
    }
    centres.into_iter().zip(counts).filter(|&(_, n)| n > 0).collect()
}

/// Merges the closest pair of clusters while it is closer than [`MERGE_DISTANCE`],
/// the merged centre being the count-weighted mean.
fn merge(mut clusters: Vec<([f32; 3], usize)>) -> Vec<([f32; 3], usize)> {
    loop {
        let mut best: Option<(usize, usize, f32)> = None;
        for i in 0..clusters.len() {
            for j in i + 1..clusters.len() {
                let d = dist2(&clusters[i].0, &clusters[j].0);
                if d < MERGE_DISTANCE * MERGE_DISTANCE && best.is_none_or(|b| d < b.2) {
                    best = Some((i, j, d));
                }
            }
        }
        let Some((i, j, _)) = best else { return clusters };
        let (cj, nj) = clusters.swap_remove(j);
        let (ci, ni) = clusters[i];
        let total = (ni + nj) as f32;
        let mixed = std::array::from_fn(|c| (ci[c] * ni as f32 + cj[c] * nj as f32) / total);
        clusters[i] = (mixed, ni + nj);
    }
}

/// Splits each small cluster that lies between two larger ones (within
/// [`MERGE_DISTANCE`] of the segment joining them, not at its ends) between those
/// two, in proportion to where it sits. Input and output are sorted by weight,
/// largest first.
fn absorb_blends(mut clusters: Vec<([f32; 3], f32)>, total: f32) -> Vec<([f32; 3], f32)> {
    for i in (2..clusters.len()).rev() {
        let (c, weight) = clusters[i];
        if weight >= BLEND_MAX_SHARE * total {
            continue;
        }
        let mut best: Option<(usize, usize, f32, f32)> = None;
        for a in 0..i {
            for b in a + 1..i {
                let (pa, pb) = (clusters[a].0, clusters[b].0);
                let ab: [f32; 3] = std::array::from_fn(|k| pb[k] - pa[k]);
                let len2 = dist2(&pa, &pb);
                if len2 <= 0.0 {
                    continue;
                }
                let t = (0..3).map(|k| (c[k] - pa[k]) * ab[k]).sum::<f32>() / len2;
                if !(0.05..=0.95).contains(&t) {
                    continue;
                }
                let foot: [f32; 3] = std::array::from_fn(|k| pa[k] + t * ab[k]);
                let d = dist2(&c, &foot);
                if d < MERGE_DISTANCE * MERGE_DISTANCE && best.is_none_or(|b| d < b.3) {
                    best = Some((a, b, t, d));
                }
            }
        }
        if let Some((a, b, t, _)) = best {
            clusters[a].1 += (1.0 - t) * weight;
            clusters[b].1 += t * weight;
            clusters.remove(i);
        }
    }
    clusters.sort_by(|x, y| y.1.total_cmp(&x.1));
    clusters
}

/// The dominant colours of the pixels under `mask` (same size as `image`), at most
/// `k`, largest share first, shares summing to 1. Empty when the mask is empty or
/// `k` is 0.
pub(super) fn dominant(image: &RgbImage, mask: &[u8], k: usize, max_samples: usize) -> Vec<ColorShare> {
    let points = samples(image, mask, max_samples);
    if points.is_empty() || k == 0 {
        return Vec::new();
    }
    let mut rng = ChaCha8Rng::seed_from_u64(SEED);
    let centres = seed_centres(&points, k.min(points.len()), &mut rng);
    let mut merged: Vec<([f32; 3], f32)> = merge(lloyd(&points, centres))
        .into_iter()
        .map(|(c, n)| (c, n as f32))
        .collect();
    merged.sort_by(|a, b| b.1.total_cmp(&a.1));
    let total = points.len() as f32;
    let mut clusters = absorb_blends(merged, total);
    // Never drop the largest cluster, even when k is so large that all are small.
    let floor = clusters.first().map_or(0.0, |c| c.1).min(MIN_SHARE * total);
    clusters.retain(|&(_, n)| n >= floor);
    let kept: f32 = clusters.iter().map(|c| c.1).sum();
    clusters
        .into_iter()
        .map(|(centre, n)| ColorShare {
            hex: hex(color::oklab_to_srgb(centre)),
            share: n / kept,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use atelier_core::analysis::parse_hex;
    use image::Rgb;

    #[test]
    fn two_colour_garment_gives_two_clusters_in_proportion() {
        // 70% navy, 30% mustard, with ±6 levels of deterministic wobble.
        let image = RgbImage::from_fn(100, 100, |x, y| {
            let wobble = ((x * 7 + y * 13) % 13) as u8;
            if y < 70 {
                Rgb([32 + wobble, 52 + wobble, 92 + wobble])
            } else {
                Rgb([208 + wobble, 172, 64])
            }
        });
        let mask = vec![255u8; 100 * 100];
        let palette = dominant(&image, &mask, 5, 20_000);
        assert_eq!(palette.len(), 2, "{palette:?}");
        assert!((palette[0].share - 0.7).abs() < 0.01);
        let first = parse_hex(&palette[0].hex).expect("hex");
        let lab = color::srgb_to_lab(first);
        assert!(
            color::delta_e76(lab, color::srgb_to_lab([38, 58, 98])) < 3.0,
            "{first:?}"
        );
        let total: f32 = palette.iter().map(|c| c.share).sum();
        assert!((total - 1.0).abs() < 1e-5);
    }

    #[test]
    fn blends_between_two_colours_are_split_between_them() {
        let navy = color::srgb_to_oklab([36, 52, 92]);
        let mustard = color::srgb_to_oklab([214, 178, 70]);
        let mid: [f32; 3] = std::array::from_fn(|k| 0.5 * (navy[k] + mustard[k]));
        let red = color::srgb_to_oklab([200, 20, 30]);
        let clusters = vec![(navy, 60.0), (mustard, 30.0), (mid, 6.0), (red, 4.0)];
        let out = absorb_blends(clusters, 100.0);
        assert_eq!(out.len(), 3, "{out:?}");
        assert!(
            (out[0].1 - 63.0).abs() < 0.5 && (out[1].1 - 33.0).abs() < 0.5,
            "{out:?}"
        );
        assert_eq!(out[2].0, red, "a colour off the line is kept");
    }

    #[test]
    fn deterministic_and_respects_the_mask() {
        let image = RgbImage::from_fn(64, 64, |x, _| {
            if x < 32 {
                Rgb([200, 0, 0])
            } else {
                Rgb([0, 0, 200])
            }
        });
        let mask: Vec<u8> = (0..64 * 64).map(|i| if i % 64 < 32 { 255 } else { 0 }).collect();
        let a = dominant(&image, &mask, 4, 500);
        assert_eq!(a, dominant(&image, &mask, 4, 500));
        assert_eq!(a.len(), 1);
        assert_eq!(a[0].hex, "#c80000");
    }

    #[test]
    fn empty_inputs_give_an_empty_palette() {
        let image = RgbImage::new(8, 8);
        assert!(dominant(&image, &[0; 64], 5, 100).is_empty());
        assert!(dominant(&image, &[255; 64], 0, 100).is_empty());
        assert!(dominant(&image, &[255; 64], 5, 0).is_empty());
    }
}

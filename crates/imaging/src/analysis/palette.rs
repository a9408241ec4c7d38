//! The garment's dominant colours: k-means in OKLab over its pixels.
//!
//! Clustering in OKLab makes "close" mean "looks alike", so a fold's lighter and
//! darker halves end up near each other and a stripe of another hue far away.
//! Samples are taken with a fixed stride from the mask's interior (the soft edge
//! mixes in backdrop), each the average of its 3×3 neighbourhood so that sensor
//! noise neither spreads the clusters nor biases their centres, and clustered by
//! the seeded, deterministic k-means of the `kmeans` module. Afterwards:
//!
//! - clusters closer than [`MERGE_DISTANCE`], or closer than their own spread (a
//!   noisy colour that k-means cut into pieces), are merged: k is an upper bound,
//!   and a plain garment reports one colour, not five shades of it;
//! - small clusters lying on the line between two larger ones are the pixels where
//!   those two colours meet (a stripe's edge, softened by the lens and the
//!   downscale), not colours of their own, and are split between them;
//! - what is left under [`MIN_SHARE`] is dropped and the shares renormalised.

use atelier_core::analysis::{ColorShare, hex};
use image::RgbImage;

use super::kmeans::{Cluster, dist2, kmeans};
use crate::color;

/// Clusters closer than this in OKLab (about 4–5 ΔE76) are one colour.
const MERGE_DISTANCE: f32 = 0.05;
/// Clusters whose centres are closer than this many times their combined spread
/// (root of the summed mean squared distances) are pieces of one noisy colour.
const SPREAD_MERGE: f32 = 1.0;
/// Clusters holding less than this share are dropped as edge or noise debris.
const MIN_SHARE: f32 = 0.01;
/// A cluster under this share lying between two larger ones is their blend.
const BLEND_MAX_SHARE: f32 = 0.1;
/// Mask level counted as solid garment, away from the soft edge.
const INTERIOR: u8 = 250;
/// Fewer interior samples than this and the soft edge is sampled too.
const MIN_INTERIOR: usize = 64;
/// The k-means++ seed: fixed, so results are reproducible.
const SEED: u64 = 0x0a7e_11e7;

/// OKLab samples of the garment: every `stride`-th pixel with mask ≥ `level`, each
/// averaged in sRGB with those of its 3×3 neighbours (edges clamped) that also are.
fn samples(image: &RgbImage, mask: &[u8], max_samples: usize) -> Vec<[f32; 3]> {
    let (w, h) = (image.width() as usize, image.height() as usize);
    if mask.len() != w * h || max_samples == 0 {
        return Vec::new();
    }
    let pick = |level: u8| mask.iter().filter(|&&m| m >= level).count();
    let (mut level, mut count) = (INTERIOR, pick(INTERIOR));
    if count < MIN_INTERIOR {
        (level, count) = (128, pick(128));
    }
    if count == 0 {
        return Vec::new();
    }
    let stride = count.div_ceil(max_samples);
    let lut = color::srgb_lut();
    let raw = image.as_raw();
    // Neighbours outside the garment are left out, so the rim does not mix in backdrop.
    let average = |i: usize| {
        let (x, y) = (i % w, i / w);
        let (mut sum, mut n) = ([0u32; 3], 0u32);
        for sy in [y.saturating_sub(1), y, (y + 1).min(h - 1)] {
            for sx in [x.saturating_sub(1), x, (x + 1).min(w - 1)] {
                let j = sy * w + sx;
                if mask[j] >= level {
                    let p = &raw[j * 3..][..3];
                    for c in 0..3 {
                        sum[c] += u32::from(p[c]);
                    }
                    n += 1;
                }
            }
        }
        // The centre itself passed the filter, so n ≥ 1.
        sum.map(|s| ((s + n / 2) / n.max(1)) as u8)
    };
    mask.iter()
        .enumerate()
        .filter(|&(_, &m)| m >= level)
        .step_by(stride)
        .map(|(i, _)| color::srgb_to_oklab_fast(average(i), lut))
        .collect()
}

/// Whether two clusters are one colour.
fn same_colour(a: &Cluster, b: &Cluster) -> bool {
    let d2 = dist2(&a.centre, &b.centre);
    d2 < MERGE_DISTANCE * MERGE_DISTANCE || d2 < SPREAD_MERGE * SPREAD_MERGE * (a.spread + b.spread)
}

/// Merges the closest pair of clusters that are [`same_colour`] until none are;
/// the merged centre is the weighted mean and the spread that of the union.
fn merge(mut clusters: Vec<Cluster>) -> Vec<Cluster> {
    loop {
        let mut best: Option<(usize, usize, f32)> = None;
        for i in 0..clusters.len() {
            for j in i + 1..clusters.len() {
                let d = dist2(&clusters[i].centre, &clusters[j].centre);
                if same_colour(&clusters[i], &clusters[j]) && best.is_none_or(|b| d < b.2) {
                    best = Some((i, j, d));
                }
            }
        }
        let Some((i, j, _)) = best else { return clusters };
        let b = clusters.swap_remove(j);
        let a = clusters[i];
        let weight = a.weight + b.weight;
        let centre = std::array::from_fn(|c| (a.centre[c] * a.weight + b.centre[c] * b.weight) / weight);
        let spread = (a.weight * (a.spread + dist2(&a.centre, &centre))
            + b.weight * (b.spread + dist2(&b.centre, &centre)))
            / weight;
        clusters[i] = Cluster {
            centre,
            weight,
            spread,
        };
    }
}

/// Splits each small cluster that lies between two larger ones (within
/// [`MERGE_DISTANCE`] of the segment joining them, not at its ends) between those
/// two, in proportion to where it sits. Returns the clusters sorted by weight,
/// largest first.
fn absorb_blends(mut clusters: Vec<Cluster>, total: f32) -> Vec<Cluster> {
    clusters.sort_by(|x, y| y.weight.total_cmp(&x.weight));
    for i in (2..clusters.len()).rev() {
        let Cluster {
            centre: c, weight, ..
        } = clusters[i];
        if weight >= BLEND_MAX_SHARE * total {
            continue;
        }
        let mut best: Option<(usize, usize, f32, f32)> = None;
        for a in 0..i {
            for b in a + 1..i {
                let (pa, pb) = (clusters[a].centre, clusters[b].centre);
                let len2 = dist2(&pa, &pb);
                if len2 <= 0.0 {
                    continue;
                }
                let t = (0..3).map(|k| (c[k] - pa[k]) * (pb[k] - pa[k])).sum::<f32>() / len2;
                if !(0.05..=0.95).contains(&t) {
                    continue;
                }
                let foot: [f32; 3] = std::array::from_fn(|k| pa[k] + t * (pb[k] - pa[k]));
                let d = dist2(&c, &foot);
                if d < MERGE_DISTANCE * MERGE_DISTANCE && best.is_none_or(|b| d < b.3) {
                    best = Some((a, b, t, d));
                }
            }
        }
        if let Some((a, b, t, _)) = best {
            clusters[a].weight += (1.0 - t) * weight;
            clusters[b].weight += t * weight;
            clusters.remove(i);
        }
    }
    clusters.sort_by(|x, y| y.weight.total_cmp(&x.weight));
    clusters
}

/// The dominant colours of the pixels under `mask` (same size as `image`), at most
/// `k`, largest share first, shares summing to 1. Empty when the mask is empty or
/// `k` is 0.
pub(super) fn dominant(image: &RgbImage, mask: &[u8], k: usize, max_samples: usize) -> Vec<ColorShare> {
    let points = samples(image, mask, max_samples);
    let total = points.len() as f32;
    let mut clusters = absorb_blends(merge(kmeans(&points, k, SEED)), total);
    // Never drop the largest cluster, even when k is so large that all are small.
    let floor = clusters.first().map_or(0.0, |c| c.weight).min(MIN_SHARE * total);
    clusters.retain(|c| c.weight >= floor);
    let kept: f32 = clusters.iter().map(|c| c.weight).sum();
    clusters
        .into_iter()
        .map(|c| ColorShare {
            hex: hex(color::oklab_to_srgb(c.centre)),
            share: c.weight / kept,
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
        let cluster = |centre, weight| Cluster {
            centre,
            weight,
            spread: 0.0,
        };
        let clusters = vec![
            cluster(navy, 60.0),
            cluster(mustard, 30.0),
            cluster(mid, 6.0),
            cluster(red, 4.0),
        ];
        let out = absorb_blends(clusters, 100.0);
        assert_eq!(out.len(), 3, "{out:?}");
        assert!(
            (out[0].weight - 63.0).abs() < 0.5 && (out[1].weight - 33.0).abs() < 0.5,
            "{out:?}"
        );
        assert_eq!(out[2].centre, red, "a colour off the line is kept");
    }

    #[test]
    fn pieces_of_one_noisy_colour_merge_but_distinct_colours_do_not() {
        let piece = |l: f32| Cluster {
            centre: [l, 0.0, 0.0],
            weight: 10.0,
            spread: 0.01,
        };
        // 0.08 apart, more than MERGE_DISTANCE, but each piece spreads 0.1 (rms).
        let merged = merge(vec![piece(0.5), piece(0.58)]);
        assert_eq!(merged.len(), 1);
        assert!((merged[0].centre[0] - 0.54).abs() < 1e-6);
        assert!(merged[0].spread > 0.01, "the union spreads more than each piece");
        let tight = |l: f32| Cluster {
            spread: 0.0001,
            ..piece(l)
        };
        assert_eq!(merge(vec![tight(0.5), tight(0.58)]).len(), 2);
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

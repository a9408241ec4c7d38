//! Deterministic k-means over OKLab colours: k-means++ seeding from a fixed seed,
//! then Lloyd iterations until the assignment or the centres settle.
//!
//! Besides each cluster's centre and size it reports its spread (mean squared
//! distance of its members to the centre), which lets the palette tell a noisy
//! colour that k-means cut into pieces from genuinely different colours.

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Lloyd iterations at most; convergence usually takes under fifteen.
const MAX_ITERATIONS: usize = 30;
/// Centres moving less than this (OKLab) in an iteration have converged: far below
/// what the hex output can show.
const CONVERGED: f32 = 1e-4;

/// One cluster of colours.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Cluster {
    /// Mean OKLab colour of the members.
    pub centre: [f32; 3],
    /// Number of members (fractional once blends are shared out).
    pub weight: f32,
    /// Mean squared OKLab distance of the members to the centre.
    pub spread: f32,
}

/// Squared OKLab distance.
#[inline]
pub(super) fn dist2(a: &[f32; 3], b: &[f32; 3]) -> f32 {
    (a[0] - b[0]).powi(2) + (a[1] - b[1]).powi(2) + (a[2] - b[2]).powi(2)
}

/// Index of the nearest centre and the squared distance to it.
#[inline]
fn nearest(p: &[f32; 3], centres: &[[f32; 3]]) -> (usize, f32) {
    let mut best = (0, f32::INFINITY);
    for (i, c) in centres.iter().enumerate() {
        let d = dist2(p, c);
        if d < best.1 {
            best = (i, d);
        }
    }
    best
}

/// k-means++ seeding: each next centre drawn with probability ∝ squared distance
/// to the nearest centre so far. Stops early when every point is a centre.
fn seed_centres(points: &[[f32; 3]], k: usize, rng: &mut ChaCha8Rng) -> Vec<[f32; 3]> {
    let mut centres = vec![points[rng.random_range(0..points.len())]];
    let mut d2: Vec<f32> = points.iter().map(|p| dist2(p, &centres[0])).collect();
    while centres.len() < k {
        let total: f64 = d2.iter().map(|&d| f64::from(d)).sum();
        if total <= 0.0 {
            break; // Fewer distinct colours than k.
        }
        let mut target = rng.random_range(0.0..total);
        let mut chosen = points.len() - 1;
        for (i, &d) in d2.iter().enumerate() {
            target -= f64::from(d);
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

/// Clusters `points` into at most `k` groups (empty ones dropped), reproducibly
/// for a given `seed`. Empty input or `k == 0` gives no clusters.
pub(super) fn kmeans(points: &[[f32; 3]], k: usize, seed: u64) -> Vec<Cluster> {
    if points.is_empty() || k == 0 {
        return Vec::new();
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut centres = seed_centres(points, k.min(points.len()), &mut rng);
    let mut assignment = vec![usize::MAX; points.len()];
    for _ in 0..MAX_ITERATIONS {
        let mut changed = false;
        let mut sums = vec![[0.0f64; 3]; centres.len()];
        let mut counts = vec![0usize; centres.len()];
        for (p, a) in points.iter().zip(assignment.iter_mut()) {
            let (i, _) = nearest(p, &centres);
            changed |= *a != i;
            *a = i;
            counts[i] += 1;
            for c in 0..3 {
                sums[i][c] += f64::from(p[c]);
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
    // Final membership and spread against the settled centres.
    let mut clusters: Vec<Cluster> = centres
        .iter()
        .map(|&centre| Cluster {
            centre,
            weight: 0.0,
            spread: 0.0,
        })
        .collect();
    for p in points {
        let (i, d) = nearest(p, &centres);
        clusters[i].weight += 1.0;
        clusters[i].spread += d;
    }
    clusters.retain(|c| c.weight > 0.0);
    for c in &mut clusters {
        c.spread /= c.weight;
    }
    clusters
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn separates_well_apart_groups_and_measures_their_spread() {
        let mut points = Vec::new();
        for i in 0..300 {
            let j = (i % 7) as f32 * 0.001;
            points.push([0.3 + j, 0.0, 0.0]);
            if i % 3 == 0 {
                points.push([0.8 - j, 0.1, 0.0]);
            }
        }
        let mut clusters = kmeans(&points, 2, 1);
        clusters.sort_by(|a, b| b.weight.total_cmp(&a.weight));
        assert_eq!(clusters.len(), 2);
        assert_eq!(clusters[0].weight, 300.0);
        assert!((clusters[0].centre[0] - 0.303).abs() < 1e-3, "{clusters:?}");
        assert!(clusters[0].spread < 1e-5 && clusters[0].spread > 0.0);
        assert!((clusters[1].centre[1] - 0.1).abs() < 1e-6);
    }

    #[test]
    fn same_seed_same_result_and_k_is_an_upper_bound() {
        let points: Vec<[f32; 3]> = (0..500)
            .map(|i| [(i % 17) as f32 * 0.01, (i % 5) as f32 * 0.02, 0.0])
            .collect();
        assert_eq!(kmeans(&points, 5, 9), kmeans(&points, 5, 9));
        let flat = vec![[0.5, 0.0, 0.0]; 40];
        let c = kmeans(&flat, 5, 9);
        assert_eq!(c.len(), 1, "identical points make one cluster");
        assert_eq!(c[0].weight, 40.0);
        assert!(kmeans(&[], 3, 1).is_empty());
        assert!(kmeans(&flat, 0, 1).is_empty());
    }
}

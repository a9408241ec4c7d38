//! The colour evidence's bar: how far from the fitted backdrop a pixel's score
//! must be to count as garment by colour.
//!
//! Every pixel gets two scores (see the `score` module): its own distance from
//! the backdrop and that of its colours averaged over a box whose radius grows
//! with the noise measured on the border. The bar is `max(MIN_THRESHOLD, median +
//! NOISE_K·σ)` of the border's averaged scores, σ from their median absolute
//! deviation, so noisy photos get a proportionally higher bar. The cut-out (the
//! `cutout` module) uses colour as one cue of several: a garment whose colour is
//! within the bar of the backdrop's (white on white, cream on ivory, light grey
//! that reads like a shadow) is found by its edges and by region coherence there.

/// Lowest threshold (OKLab units): a chroma shift of 0.03 (pastels on white are
/// around 0.04), a brightening of 0.03 or a darkening of 0.25 in L (with the
/// score's darkening weight of 0.12).
const MIN_THRESHOLD: f32 = 0.03;
/// Border noise multiplier for the adaptive threshold.
const NOISE_K: f32 = 6.0;
/// Median raw border score per step of smoothing radius (radius 1 below it).
const NOISE_PER_RADIUS: f32 = 0.015;
/// Largest smoothing radius (a 7×7 box), for very noisy photos.
const MAX_RADIUS: usize = 3;

/// Smoothing radius for the noise level of the raw border scores.
pub(super) fn radius_for(raw_border: &mut [f32]) -> usize {
    let noise = median(raw_border);
    ((noise / NOISE_PER_RADIUS).round() as usize).clamp(1, MAX_RADIUS)
}

/// The adaptive threshold from the border's smoothed scores.
pub(super) fn threshold(border: &mut [f32]) -> f32 {
    if border.is_empty() {
        return MIN_THRESHOLD;
    }
    let median = median(border);
    let mut deviations: Vec<f32> = border.iter().map(|s| (s - median).abs()).collect();
    let sigma = 1.4826 * self::median(&mut deviations);
    (median + NOISE_K * sigma).max(MIN_THRESHOLD)
}

/// Median (0 when empty); reorders `values`.
fn median(values: &mut [f32]) -> f32 {
    if values.is_empty() {
        return 0.0;
    }
    let mid = values.len() / 2;
    *values.select_nth_unstable_by(mid, f32::total_cmp).1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn threshold_and_radius_rise_with_border_noise() {
        assert_eq!(threshold(&mut [0.001f32; 10]), MIN_THRESHOLD);
        let mut noisy: Vec<f32> = (0..10).map(|i| if i % 2 == 0 { 0.0 } else { 0.04 }).collect();
        assert!(threshold(&mut noisy) > 0.1);
        assert_eq!(radius_for(&mut [0.002f32; 9]), 1);
        assert_eq!(radius_for(&mut [0.031f32; 9]), 2);
        assert_eq!(radius_for(&mut [0.5f32; 9]), MAX_RADIUS);
    }
}

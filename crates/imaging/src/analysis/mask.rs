//! Foreground mask by separation from the fitted backdrop.
//!
//! Every pixel gets two scores (see the `score` module): its own distance from
//! the backdrop and that of its colours averaged over a box whose radius grows
//! with the noise measured on the border. The bar is `max(MIN_THRESHOLD, median +
//! NOISE_K·σ)` of the border's averaged scores, σ from their median absolute
//! deviation, so noisy photos get a proportionally higher bar. A pixel is garment
//! when both scores clear it: the averaged one rejects noise, the raw one keeps a
//! strong edge where it is (averaging alone would grow it by the radius). Noise
//! lifts the raw scores of garment pixels as much as those of the backdrop, so the
//! second test costs little on noisy photos. The result is cleaned up (specks,
//! holes) and its edge softened by the `morph` module.
//!
//! Limits, by construction: a garment whose chroma is within about 0.03 of the
//! backdrop's and whose lightness is within about a quarter of the OKLab range
//! below it (light grey on a white sweep, white on white, cream on ivory) is
//! indistinguishable from a soft shadow and is not found; shadows more than
//! about 35% darker than the sweep read as garment.

use image::RgbImage;

use super::backdrop::BackdropModel;
use super::{morph, score};

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
fn radius_for(raw_border: &mut [f32]) -> usize {
    let noise = median(raw_border);
    ((noise / NOISE_PER_RADIUS).round() as usize).clamp(1, MAX_RADIUS)
}

/// The adaptive threshold from the border's smoothed scores.
fn threshold(border: &mut [f32]) -> f32 {
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

/// The garment's mask at the working copy's resolution (0–255, soft edge), or
/// `None` when nothing separates from the backdrop.
pub(super) fn segment(image: &RgbImage, model: &BackdropModel, positions: &[(u32, u32)]) -> Option<Vec<u8>> {
    let (w, h) = (image.width() as usize, image.height() as usize);
    if w == 0 || h == 0 {
        return None;
    }
    let radius = radius_for(&mut score::raw_at(image, model, positions));
    let (raw, smoothed) = score::planes(image, model, radius);
    let mut border: Vec<f32> = positions
        .iter()
        .map(|&(x, y)| smoothed[y as usize * w + x as usize])
        .collect();
    let t = threshold(&mut border);
    let fg: Vec<u8> = raw
        .iter()
        .zip(&smoothed)
        .map(|(&r, &s)| u8::from(s > t && r > t))
        .collect();
    let silhouette = morph::clean(&fg, w, h)?;
    Some(morph::soften(&silhouette, w, h))
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

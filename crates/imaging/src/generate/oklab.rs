//! Thin OKLCh helpers over [`crate::color`] for the backgrounds: a named-field
//! `Lch`, unquantised sRGB output (so smooth gradients are built before rounding)
//! and gamut mapping that returns OKLab, so mapped tones can still be mixed.
//!
//! These run per colour or per row, never per pixel.

use crate::color;

/// A colour in OKLCh: lightness 0–1, chroma ≥ 0, hue in degrees.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Lch {
    pub l: f32,
    pub c: f32,
    pub h: f32,
}

/// sRGB bytes to OKLab `[L, a, b]`.
pub(super) fn srgb8_to_oklab(rgb: [u8; 3]) -> [f32; 3] {
    color::srgb_to_oklab(rgb)
}

/// OKLab to sRGB bytes, rounded (gamut-safe: chroma is reduced, not clipped).
pub(super) fn oklab_to_srgb8(lab: [f32; 3]) -> [u8; 3] {
    color::oklab_to_srgb(lab)
}

/// OKLab to sRGB on a 0–255 scale, unrounded, each channel clamped into range.
pub(super) fn oklab_to_srgb_f32(lab: [f32; 3]) -> [f32; 3] {
    color::oklab_to_linear(lab).map(|v| color::linear_to_srgb_unit(v.clamp(0.0, 1.0)) * 255.0)
}

/// `[L, a, b]` to OKLCh.
pub(super) fn to_lch(lab: [f32; 3]) -> Lch {
    let [l, c, h] = color::oklab_to_oklch(lab);
    Lch { l, c, h }
}

/// OKLCh to `[L, a, b]`.
pub(super) fn from_lch(c: Lch) -> [f32; 3] {
    color::oklch_to_oklab([c.l, c.c, c.h])
}

fn in_gamut(lab: [f32; 3]) -> bool {
    const EPS: f32 = 1e-4;
    color::oklab_to_linear(lab)
        .iter()
        .all(|v| (-EPS..=1.0 + EPS).contains(v))
}

/// The colour with `lch`'s lightness and hue and the largest chroma up to `lch.c`
/// that sRGB can show (bisection on chroma), so light tints never clip to a
/// different hue.
pub(super) fn gamut_map(lch: Lch) -> [f32; 3] {
    let lch = Lch {
        l: lch.l.clamp(0.0, 1.0),
        c: lch.c.max(0.0),
        h: lch.h,
    };
    if in_gamut(from_lch(lch)) {
        return from_lch(lch);
    }
    let (mut lo, mut hi) = (0.0f32, lch.c);
    for _ in 0..20 {
        let mid = (lo + hi) / 2.0;
        if in_gamut(from_lch(Lch { c: mid, ..lch })) {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    from_lch(Lch { c: lo, ..lch })
}

/// Smallest angle between two hues, in degrees (0–180).
#[cfg(test)]
pub(super) fn hue_distance(a: f32, b: f32) -> f32 {
    let d = (a - b).rem_euclid(360.0);
    d.min(360.0 - d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unrounded_output_matches_the_bytes() {
        for rgb in [
            [0u8, 0, 0],
            [255, 255, 255],
            [31, 58, 95],
            [200, 30, 30],
            [12, 250, 90],
        ] {
            let back = oklab_to_srgb_f32(srgb8_to_oklab(rgb));
            for (b, v) in back.iter().zip(rgb) {
                assert!((b - f32::from(v)).abs() < 0.01, "{rgb:?} → {back:?}");
            }
        }
    }

    #[test]
    fn gamut_map_keeps_hue_and_lightness() {
        let wanted = Lch {
            l: 0.97,
            c: 0.3,
            h: 260.0,
        };
        let lab = gamut_map(wanted);
        assert!(in_gamut(lab));
        let got = to_lch(lab);
        assert!((got.l - 0.97).abs() < 1e-4 && hue_distance(got.h, 260.0) < 0.5 && got.c < 0.3);
    }

    #[test]
    fn hue_distance_wraps() {
        assert_eq!(hue_distance(350.0, 10.0), 20.0);
        assert_eq!(hue_distance(10.0, 190.0), 180.0);
    }
}

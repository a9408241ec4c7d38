//! Colour science: sRGB transfer, OKLab/OKLCh and CIELAB (D65) with ΔE76 and
//! CIEDE2000.
//!
//! Atelier reasons about colour in perceptual spaces. OKLab is used for
//! clustering garment colours and for backdrop separation (distances there track
//! perceived differences and it is cheap to compute); OKLCh is its polar form, the
//! natural place to derive harmonised tones by turning hue or lowering chroma at a
//! fixed lightness; CIELAB with ΔE76/ΔE2000 is the industry's yardstick for "how far
//! apart are these two colours", used to judge results. All sRGB values are 8-bit
//! with the standard IEC 61966-2-1 transfer curve; linear values are `0..=1`.

use std::sync::LazyLock;

/// sRGB byte → linear light, tabulated once (the transfer curve's `powf` is the
/// expensive part of every conversion, and there are only 256 inputs).
static SRGB_TO_LINEAR: LazyLock<[f32; 256]> =
    LazyLock::new(|| std::array::from_fn(|i| srgb_unit_to_linear(i as f32 / 255.0)));

/// The decoding table, for hot loops that convert many pixels.
pub(crate) fn srgb_lut() -> &'static [f32; 256] {
    &SRGB_TO_LINEAR
}

/// sRGB-encoded value (`0..=1`) → linear light.
pub fn srgb_unit_to_linear(c: f32) -> f32 {
    if c <= 0.04045 {
        c / 12.92
    } else {
        ((c + 0.055) / 1.055).powf(2.4)
    }
}

/// Linear light (`0..=1`) → sRGB-encoded value, unclamped.
pub fn linear_to_srgb_unit(l: f32) -> f32 {
    if l <= 0.003_130_8 {
        12.92 * l
    } else {
        1.055 * l.powf(1.0 / 2.4) - 0.055
    }
}

/// sRGB byte → linear light.
pub fn srgb_to_linear(c: u8) -> f32 {
    SRGB_TO_LINEAR[c as usize]
}

/// Linear light → sRGB byte, clamped to the displayable range (NaN → 0).
pub fn linear_to_srgb(l: f32) -> u8 {
    let v = linear_to_srgb_unit(if l.is_finite() { l.clamp(0.0, 1.0) } else { 0.0 });
    (v * 255.0).round().clamp(0.0, 255.0) as u8
}

/// Linear sRGB → OKLab `[L, a, b]` (L is `0..=1` for displayable colours).
pub fn linear_to_oklab(rgb: [f32; 3]) -> [f32; 3] {
    lms_to_oklab(linear_to_lms(rgb).map(f32::cbrt))
}

/// OKLab → linear sRGB, unclamped (components may fall outside `0..=1` when the
/// colour is outside the sRGB gamut).
pub fn oklab_to_linear(lab: [f32; 3]) -> [f32; 3] {
    let [l, a, b] = lab;
    let l_ = l + 0.396_337_78 * a + 0.215_803_76 * b;
    let m_ = l - 0.105_561_346 * a - 0.063_854_17 * b;
    let s_ = l - 0.089_484_18 * a - 1.291_485_5 * b;
    let (l3, m3, s3) = (l_ * l_ * l_, m_ * m_ * m_, s_ * s_ * s_);
    [
        4.076_741_7 * l3 - 3.307_711_6 * m3 + 0.230_969_94 * s3,
        -1.268_438 * l3 + 2.609_757_4 * m3 - 0.341_319_38 * s3,
        -0.004_196_086_3 * l3 - 0.703_418_6 * m3 + 1.707_614_7 * s3,
    ]
}

#[inline]
fn linear_to_lms([r, g, b]: [f32; 3]) -> [f32; 3] {
    [
        0.412_221_46 * r + 0.536_332_55 * g + 0.051_445_995 * b,
        0.211_903_5 * r + 0.680_699_5 * g + 0.107_396_96 * b,
        0.088_302_46 * r + 0.281_718_85 * g + 0.629_978_7 * b,
    ]
}

#[inline]
fn lms_to_oklab([l, m, s]: [f32; 3]) -> [f32; 3] {
    [
        0.210_454_26 * l + 0.793_617_8 * m - 0.004_072_047 * s,
        1.977_998_5 * l - 2.428_592_2 * m + 0.450_593_7 * s,
        0.025_904_037 * l + 0.782_771_77 * m - 0.808_675_77 * s,
    ]
}

/// sRGB bytes → OKLab.
pub fn srgb_to_oklab(rgb: [u8; 3]) -> [f32; 3] {
    linear_to_oklab(rgb.map(srgb_to_linear))
}

/// sRGB bytes → OKLab with a fast cube root (relative error below 1e-6): the same
/// result as [`srgb_to_oklab`] to float precision, for loops over many pixels.
#[inline]
pub(crate) fn srgb_to_oklab_fast(rgb: [u8; 3], lut: &[f32; 256]) -> [f32; 3] {
    let lin = [lut[rgb[0] as usize], lut[rgb[1] as usize], lut[rgb[2] as usize]];
    lms_to_oklab(linear_to_lms(lin).map(cbrt_fast::<2>))
}

/// sRGB bytes → OKLab to about 1e-4: one refinement step fewer than
/// [`srgb_to_oklab_fast`], for per-pixel decisions (masks) whose thresholds are
/// hundreds of times coarser.
#[inline]
pub(crate) fn srgb_to_oklab_approx(rgb: [u8; 3], lut: &[f32; 256]) -> [f32; 3] {
    linear_to_oklab_approx([lut[rgb[0] as usize], lut[rgb[1] as usize], lut[rgb[2] as usize]])
}

/// Linear sRGB → OKLab to about 1e-4, branch-free so loops over it vectorise.
#[inline]
pub(crate) fn linear_to_oklab_approx(rgb: [f32; 3]) -> [f32; 3] {
    lms_to_oklab(linear_to_lms(rgb).map(cbrt_fast::<1>))
}

/// Cube root by a bit-level first guess refined with `STEPS` Halley steps (each
/// cubes the relative error: ~3% → ~3e-5 → float precision). Several times faster
/// than `f32::cbrt` for the non-negative, finite inputs colour conversion produces
/// (odd-symmetric for negatives; zero maps to ~1e-10).
#[inline]
pub(crate) fn cbrt_fast<const STEPS: usize>(x: f32) -> f32 {
    let ax = x.abs().max(1e-30);
    // A third of the bit pattern (plus Kahan's bias) divides the exponent by three:
    // a first guess within ~3%. The division is done in float, which vectorises and
    // whose rounding (a few units in 2^30) is far below the guess's own error.
    let third = (ax.to_bits() as f32 * (1.0 / 3.0)) as u32;
    let mut y = f32::from_bits(third + 709_921_077);
    for _ in 0..STEPS {
        let y3 = y * y * y;
        y *= (y3 + 2.0 * ax) / (2.0 * y3 + ax);
    }
    y.copysign(x)
}

/// OKLab → sRGB bytes, gamut-safe: lightness is clamped to `0..=1` and an
/// out-of-gamut colour keeps its lightness and hue while its chroma is reduced until
/// it fits (rather than clipping each channel, which shifts hue). NaN counts as 0.
pub fn oklab_to_srgb(lab: [f32; 3]) -> [u8; 3] {
    let [l, a, b] = lab.map(|v| if v.is_finite() { v } else { 0.0 });
    let l = l.clamp(0.0, 1.0);
    let fits = |rgb: [f32; 3]| rgb.iter().all(|c| (-1e-4..=1.0 + 1e-4).contains(c));
    let mut rgb = oklab_to_linear([l, a, b]);
    if !fits(rgb) {
        // Bisection on the chroma scale: 0 (grey, always displayable) .. 1 (asked).
        let (mut lo, mut hi) = (0.0f32, 1.0f32);
        for _ in 0..20 {
            let mid = 0.5 * (lo + hi);
            if fits(oklab_to_linear([l, a * mid, b * mid])) {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        rgb = oklab_to_linear([l, a * lo, b * lo]);
    }
    rgb.map(linear_to_srgb)
}

/// OKLab → OKLCh `[L, C, h]`, hue in degrees `0..360`.
pub fn oklab_to_oklch([l, a, b]: [f32; 3]) -> [f32; 3] {
    let c = a.hypot(b);
    let h = b.atan2(a).to_degrees().rem_euclid(360.0);
    [l, c, if h >= 360.0 { 0.0 } else { h }]
}

/// OKLCh (hue in degrees) → OKLab.
pub fn oklch_to_oklab([l, c, h]: [f32; 3]) -> [f32; 3] {
    let (sin, cos) = h.to_radians().sin_cos();
    [l, c * cos, c * sin]
}

/// sRGB bytes → OKLCh.
pub fn srgb_to_oklch(rgb: [u8; 3]) -> [f32; 3] {
    oklab_to_oklch(srgb_to_oklab(rgb))
}

/// OKLCh → sRGB bytes, gamut-safe as [`oklab_to_srgb`].
pub fn oklch_to_srgb(lch: [f32; 3]) -> [u8; 3] {
    oklab_to_srgb(oklch_to_oklab(lch))
}

/// D65 reference white in XYZ (Y = 1).
const WHITE_D65: [f32; 3] = [0.950_47, 1.0, 1.088_83];

/// sRGB bytes → CIELAB `[L*, a*, b*]` under D65 (L* is `0..=100`).
pub fn srgb_to_lab(rgb: [u8; 3]) -> [f32; 3] {
    let [r, g, b] = rgb.map(srgb_to_linear);
    let xyz = [
        0.412_456_4 * r + 0.357_576_1 * g + 0.180_437_5 * b,
        0.212_672_9 * r + 0.715_152_2 * g + 0.072_175 * b,
        0.019_333_9 * r + 0.119_192 * g + 0.950_304_1 * b,
    ];
    let f = |t: f32| {
        const EPS: f32 = 216.0 / 24_389.0; // (6/29)³
        const KAPPA: f32 = 24_389.0 / 27.0; // (29/3)³
        if t > EPS {
            t.cbrt()
        } else {
            (KAPPA * t + 16.0) / 116.0
        }
    };
    let [fx, fy, fz] = [
        f(xyz[0] / WHITE_D65[0]),
        f(xyz[1] / WHITE_D65[1]),
        f(xyz[2] / WHITE_D65[2]),
    ];
    [116.0 * fy - 16.0, 500.0 * (fx - fy), 200.0 * (fy - fz)]
}

/// CIE 1976 colour difference: Euclidean distance in CIELAB. About 2.3 is a just
/// noticeable difference; simple and what most specifications quote.
pub fn delta_e76(a: [f32; 3], b: [f32; 3]) -> f32 {
    ((a[0] - b[0]).powi(2) + (a[1] - b[1]).powi(2) + (a[2] - b[2]).powi(2)).sqrt()
}

/// CIEDE2000 colour difference (kL = kC = kH = 1), which corrects ΔE76's
/// overestimate for saturated colours and its blue-region hue errors.
pub fn delta_e2000(lab1: [f32; 3], lab2: [f32; 3]) -> f32 {
    let [l1, a1, b1] = lab1.map(f64::from);
    let [l2, a2, b2] = lab2.map(f64::from);
    let c_bar = (a1.hypot(b1) + a2.hypot(b2)) / 2.0;
    let c7 = c_bar.powi(7);
    let g = 0.5 * (1.0 - (c7 / (c7 + 25f64.powi(7))).sqrt());
    let (a1p, a2p) = ((1.0 + g) * a1, (1.0 + g) * a2);
    let (c1p, c2p) = (a1p.hypot(b1), a2p.hypot(b2));
    let hue = |b: f64, a: f64| {
        if b == 0.0 && a == 0.0 {
            0.0
        } else {
            b.atan2(a).to_degrees().rem_euclid(360.0)
        }
    };
    let (h1p, h2p) = (hue(b1, a1p), hue(b2, a2p));
    let dl = l2 - l1;
    let dc = c2p - c1p;
    let dh = if c1p * c2p == 0.0 {
        0.0
    } else if (h2p - h1p).abs() <= 180.0 {
        h2p - h1p
    } else if h2p - h1p > 180.0 {
        h2p - h1p - 360.0
    } else {
        h2p - h1p + 360.0
    };
    let d_big_h = 2.0 * (c1p * c2p).sqrt() * (dh / 2.0).to_radians().sin();
    let l_bar = (l1 + l2) / 2.0;
    let cp_bar = (c1p + c2p) / 2.0;
    let hp_bar = if c1p * c2p == 0.0 {
        h1p + h2p
    } else if (h1p - h2p).abs() <= 180.0 {
        (h1p + h2p) / 2.0
    } else if h1p + h2p < 360.0 {
        (h1p + h2p + 360.0) / 2.0
    } else {
        (h1p + h2p - 360.0) / 2.0
    };
    let t = 1.0 - 0.17 * (hp_bar - 30.0).to_radians().cos()
        + 0.24 * (2.0 * hp_bar).to_radians().cos()
        + 0.32 * (3.0 * hp_bar + 6.0).to_radians().cos()
        - 0.20 * (4.0 * hp_bar - 63.0).to_radians().cos();
    let d_theta = 30.0 * (-((hp_bar - 275.0) / 25.0).powi(2)).exp();
    let cp7 = cp_bar.powi(7);
    let r_c = 2.0 * (cp7 / (cp7 + 25f64.powi(7))).sqrt();
    let l50 = (l_bar - 50.0).powi(2);
    let s_l = 1.0 + 0.015 * l50 / (20.0 + l50).sqrt();
    let s_c = 1.0 + 0.045 * cp_bar;
    let s_h = 1.0 + 0.015 * cp_bar * t;
    let r_t = -(2.0 * d_theta).to_radians().sin() * r_c;
    let (tl, tc, th) = (dl / s_l, dc / s_c, d_big_h / s_h);
    (tl * tl + tc * tc + th * th + r_t * tc * th).sqrt() as f32
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: [f32; 3], b: [f32; 3], tol: f32) -> bool {
        a.iter().zip(b).all(|(x, y)| (x - y).abs() <= tol)
    }

    #[test]
    fn srgb_transfer_round_trips_every_byte() {
        assert_eq!(srgb_to_linear(0), 0.0);
        assert!((srgb_to_linear(255) - 1.0).abs() < 1e-6);
        assert!((srgb_to_linear(128) - 0.215_861).abs() < 1e-5);
        for v in 0..=255u8 {
            assert_eq!(linear_to_srgb(srgb_to_linear(v)), v);
        }
        assert_eq!(linear_to_srgb(f32::NAN), 0);
        assert_eq!(linear_to_srgb(7.0), 255);
    }

    #[test]
    fn oklab_matches_published_reference_values() {
        // Reference values from Björn Ottosson's OKLab post and the CSS Color 4 spec.
        assert!(close(srgb_to_oklab([255, 255, 255]), [1.0, 0.0, 0.0], 1e-3));
        assert!(close(
            srgb_to_oklab([255, 0, 0]),
            [0.627_955, 0.224_863, 0.125_846],
            1e-3
        ));
        assert!(close(
            srgb_to_oklab([0, 255, 0]),
            [0.866_440, -0.233_888, 0.179_498],
            1e-3
        ));
        assert!(close(
            srgb_to_oklab([0, 0, 255]),
            [0.452_014, -0.032_457, -0.311_528],
            1e-3
        ));
        assert!(close(srgb_to_oklab([0, 0, 0]), [0.0, 0.0, 0.0], 1e-6));
    }

    #[test]
    fn oklab_round_trips_through_srgb() {
        for rgb in [
            [0, 0, 0],
            [255, 255, 255],
            [31, 58, 95],
            [200, 30, 40],
            [12, 250, 99],
            [128, 128, 128],
        ] {
            assert_eq!(oklab_to_srgb(srgb_to_oklab(rgb)), rgb, "{rgb:?}");
            assert_eq!(oklch_to_srgb(srgb_to_oklch(rgb)), rgb, "{rgb:?}");
        }
    }

    #[test]
    fn fast_conversion_agrees_with_the_exact_one() {
        let lut = srgb_lut();
        for r in (0..=255u8).step_by(15) {
            for g in (0..=255u8).step_by(17) {
                for b in (0..=255u8).step_by(51) {
                    let exact = srgb_to_oklab([r, g, b]);
                    assert!(
                        close(srgb_to_oklab_fast([r, g, b], lut), exact, 1e-5),
                        "{:?}",
                        [r, g, b]
                    );
                }
            }
        }
        for x in [1e-6f32, 0.001, 0.2, 0.5, 1.0, 8.0, -27.0] {
            let exact = x.cbrt();
            assert!((cbrt_fast::<2>(x) - exact).abs() <= 1e-6 * exact.abs(), "{x}");
            assert!((cbrt_fast::<1>(x) - exact).abs() <= 1e-4 * exact.abs(), "{x}");
        }
        assert!(cbrt_fast::<2>(0.0).abs() < 1e-9);
        for r in (0..=255u8).step_by(5) {
            for b in (0..=255u8).step_by(15) {
                let exact = srgb_to_oklab([r, 128, b]);
                assert!(
                    close(srgb_to_oklab_approx([r, 128, b], lut), exact, 2e-4),
                    "{:?}",
                    [r, 128, b]
                );
            }
        }
    }

    #[test]
    fn out_of_gamut_keeps_lightness_and_hue() {
        // A vivid OKLCh green far beyond sRGB's chroma.
        let asked = [0.8, 0.4, 140.0];
        let rgb = oklch_to_srgb(asked);
        let got = srgb_to_oklch(rgb);
        assert!((got[0] - 0.8).abs() < 0.01, "lightness {got:?}");
        assert!((got[2] - 140.0).abs() < 2.0, "hue {got:?}");
        assert!(got[1] < 0.4);
        assert_eq!(oklab_to_srgb([1.5, 0.0, 0.0]), [255, 255, 255]);
        // NaN lightness reads as 0: black, give or take the gamut tolerance.
        assert!(oklab_to_srgb([f32::NAN, 0.3, -0.2]).iter().all(|&c| c <= 2));
    }

    #[test]
    fn oklch_is_the_polar_form() {
        let [l, c, h] = oklab_to_oklch([0.5, 0.0, 0.1]);
        assert!((l - 0.5).abs() < 1e-6 && (c - 0.1).abs() < 1e-6 && (h - 90.0).abs() < 1e-3);
        assert!((oklab_to_oklch([0.5, 0.0, -0.1])[2] - 270.0).abs() < 1e-3);
        assert!(close(oklch_to_oklab([0.5, 0.1, 180.0]), [0.5, -0.1, 0.0], 1e-6));
    }

    #[test]
    fn cielab_matches_reference_values() {
        assert!(close(srgb_to_lab([255, 255, 255]), [100.0, 0.0, 0.0], 0.01));
        assert!(close(srgb_to_lab([255, 0, 0]), [53.24, 80.09, 67.20], 0.05));
        assert!(close(srgb_to_lab([0, 0, 255]), [32.30, 79.19, -107.86], 0.05));
        assert!(close(srgb_to_lab([0, 0, 0]), [0.0, 0.0, 0.0], 1e-4));
        assert!((srgb_to_lab([119, 119, 119])[0] - 50.0).abs() < 0.3);
    }

    #[test]
    fn delta_e76_is_euclidean() {
        assert_eq!(delta_e76([50.0, 0.0, 0.0], [53.0, 4.0, 0.0]), 5.0);
        assert_eq!(delta_e76([10.0, 20.0, 30.0], [10.0, 20.0, 30.0]), 0.0);
    }

    #[test]
    fn delta_e2000_matches_sharma_test_data() {
        // Pairs 1, 7, 17, 25 and 34 of Sharma, Wu & Dalal (2005), Table 1.
        let cases = [
            ([50.0, 2.6772, -79.7751], [50.0, 0.0, -82.7485], 2.0425),
            ([50.0, 0.0, 0.0], [50.0, -1.0, 2.0], 2.3669),
            ([50.0, 2.5, 0.0], [73.0, 25.0, -18.0], 27.1492),
            ([60.2574, -34.0099, 36.2677], [60.4626, -34.1751, 39.4387], 1.2644),
            ([2.0776, 0.0795, -1.1350], [0.9033, -0.0636, -0.5514], 0.9082),
        ];
        for (a, b, expected) in cases {
            let got = delta_e2000(a, b);
            assert!((got - expected).abs() < 1e-3, "{a:?} {b:?}: {got} vs {expected}");
            assert!((delta_e2000(b, a) - expected).abs() < 1e-3, "symmetric");
        }
    }
}

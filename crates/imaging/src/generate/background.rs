//! Plain background colours harmonised with the garment.
//!
//! A plain background takes the hue of the garment's dominant colour and shows it
//! as a light, quiet tint (high OKLab lightness, low chroma), so the product stands
//! out while the page still feels composed for it. Successive ordinals step through
//! a short table of lightness and small hue offsets, so the plain images of one job
//! differ visibly without leaving the hue family (the fourth is a calm complement).
//! A near-neutral garment (grey, black, white, beige at low chroma) gets warm and
//! cool neutrals instead of an arbitrary hue that would clash.

use atelier_core::analysis::{ImageAnalysis, parse_hex};

use super::oklab::{self, Lch};

/// Garments with less chroma than this are treated as neutral.
const NEUTRAL_CHROMA: f32 = 0.035;
/// Hue of the warm neutrals (a soft ivory/greige) and of the cool ones (pale slate).
const WARM_HUE: f32 = 75.0;
const COOL_HUE: f32 = 250.0;

/// One entry of a tone table: hue offset (degrees), OKLab lightness, chroma factor.
type Tone = (f32, f32, f32);

/// Tones for coloured garments; chroma factors scale [`tint_chroma`].
const TINTS: [Tone; 6] = [
    (0.0, 0.94, 1.0),
    (18.0, 0.895, 1.15),
    (-18.0, 0.965, 0.7),
    (180.0, 0.935, 0.75),
    (34.0, 0.915, 0.9),
    (-34.0, 0.95, 0.9),
];

/// Tones for neutral garments: absolute hue, lightness, chroma.
const NEUTRALS: [Tone; 6] = [
    (WARM_HUE, 0.955, 0.012),
    (COOL_HUE, 0.925, 0.012),
    (WARM_HUE + 15.0, 0.9, 0.016),
    (COOL_HUE - 25.0, 0.965, 0.008),
    (WARM_HUE - 10.0, 0.975, 0.016),
    (COOL_HUE + 15.0, 0.945, 0.014),
];

/// After a full table, each further cycle shifts lightness and hue a little, so
/// ordinals stay distinct well past the table's length.
const CYCLE_LIGHTNESS: [f32; 4] = [0.0, -0.03, 0.015, -0.045];
const CYCLE_HUE: f32 = 7.0;

/// The garment's dominant colour (first palette entry), mid grey when the analysis
/// has none.
pub(super) fn garment_color(analysis: &ImageAnalysis) -> [u8; 3] {
    analysis
        .palette
        .iter()
        .find_map(|c| parse_hex(&c.hex))
        .unwrap_or([128, 128, 128])
}

/// The `ordinal`-th plain background colour for the garment of `analysis`: light
/// (OKLab L ≥ 0.85), low in chroma and in the garment's hue family.
pub fn plain_color(analysis: &ImageAnalysis, ordinal: u8) -> [u8; 3] {
    let garment = oklab::to_lch(oklab::srgb8_to_oklab(garment_color(analysis)));
    let index = usize::from(ordinal) % TINTS.len();
    let cycle = usize::from(ordinal) / TINTS.len();
    let shift_l = CYCLE_LIGHTNESS[cycle % CYCLE_LIGHTNESS.len()];
    let shift_h = CYCLE_HUE * cycle as f32;
    let lch = if garment.c < NEUTRAL_CHROMA {
        let (h, l, c) = NEUTRALS[index];
        Lch {
            l: l + shift_l,
            c,
            h: h + shift_h,
        }
    } else {
        let (dh, l, k) = TINTS[index];
        Lch {
            l: l + shift_l,
            c: tint_chroma(garment.c) * k,
            h: garment.h + dh + shift_h,
        }
    };
    oklab::oklab_to_srgb8(oklab::gamut_map(Lch {
        l: lch.l.clamp(0.86, 0.98),
        ..lch
    }))
}

/// Background chroma for a garment of chroma `c`: a vivid garment gets a slightly
/// more noticeable tint than a muted one, always far below the garment itself.
fn tint_chroma(c: f32) -> f32 {
    (0.012 + 0.2 * c).clamp(0.018, 0.042)
}

#[cfg(test)]
mod tests {
    use super::*;
    use atelier_core::analysis::{BoundingBox, ColorShare, Exposure, MaskSource, hex};

    fn analysis_with(color: [u8; 3]) -> ImageAnalysis {
        ImageAnalysis {
            width: 100,
            height: 100,
            mask_source: MaskSource::Backdrop,
            bounding_box: BoundingBox {
                x: 10,
                y: 10,
                width: 80,
                height: 80,
            },
            coverage: 0.5,
            mask_confidence: 1.0,
            backdrop_color: "#ffffff".into(),
            palette: vec![ColorShare {
                hex: hex(color),
                share: 0.8,
            }],
            exposure: Exposure {
                mean_luminance: 0.5,
                clipped_shadows: 0.0,
                clipped_highlights: 0.0,
            },
            sharpness: 10.0,
            ai: None,
        }
    }

    fn lch(rgb: [u8; 3]) -> Lch {
        oklab::to_lch(oklab::srgb8_to_oklab(rgb))
    }

    fn distance(a: [u8; 3], b: [u8; 3]) -> f32 {
        let (a, b) = (oklab::srgb8_to_oklab(a), oklab::srgb8_to_oklab(b));
        ((a[0] - b[0]).powi(2) + (a[1] - b[1]).powi(2) + (a[2] - b[2]).powi(2)).sqrt()
    }

    #[test]
    fn tints_are_light_quiet_and_in_the_hue_family() {
        for garment in [
            [200u8, 30, 30],
            [31, 58, 95],
            [40, 140, 60],
            [230, 200, 40],
            [120, 60, 160],
        ] {
            let g = lch(garment);
            for ordinal in [0u8, 1, 2, 4, 5] {
                let bg = lch(plain_color(&analysis_with(garment), ordinal));
                assert!(bg.l > 0.85, "{garment:?} #{ordinal}: L {}", bg.l);
                assert!(bg.c < 0.05, "{garment:?} #{ordinal}: C {}", bg.c);
                assert!(
                    oklab::hue_distance(bg.h, g.h) < 40.0,
                    "{garment:?} #{ordinal}: h {} vs {}",
                    bg.h,
                    g.h
                );
            }
        }
    }

    #[test]
    fn ordinals_give_distinct_tones() {
        for garment in [[200u8, 30, 30], [128, 128, 128], [20, 20, 20]] {
            let a = analysis_with(garment);
            let colors: Vec<[u8; 3]> = (0..12).map(|o| plain_color(&a, o)).collect();
            for (i, x) in colors.iter().enumerate() {
                for (j, y) in colors.iter().enumerate().skip(i + 1) {
                    // Clearly distinct within one table (a job asks for at most four),
                    // still distinct in the next cycle.
                    let min = if j < TINTS.len() { 0.02 } else { 0.008 };
                    assert!(distance(*x, *y) > min, "{garment:?} #{i} {x:?} vs #{j} {y:?}");
                }
            }
        }
    }

    #[test]
    fn neutral_garments_get_warm_and_cool_neutrals() {
        let a = analysis_with([90, 90, 92]);
        let warm = lch(plain_color(&a, 0));
        let cool = lch(plain_color(&a, 1));
        assert!(warm.c < 0.02 && cool.c < 0.02);
        assert!(
            oklab::hue_distance(warm.h, WARM_HUE) < 20.0,
            "warm hue {}",
            warm.h
        );
        assert!(
            oklab::hue_distance(cool.h, COOL_HUE) < 20.0,
            "cool hue {}",
            cool.h
        );
    }

    #[test]
    fn missing_palette_is_neutral_not_a_panic() {
        let mut a = analysis_with([0, 0, 0]);
        a.palette.clear();
        assert!(lch(plain_color(&a, 255)).l > 0.85);
        a.palette.push(ColorShare {
            hex: "not a colour".into(),
            share: 1.0,
        });
        assert!(lch(plain_color(&a, 3)).c < 0.02);
    }
}

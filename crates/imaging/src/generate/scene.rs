//! The random background: a seeded procedural photo-studio backdrop.
//!
//! A wall that curves into a floor (a studio sweep: two light tones joined by a
//! smooth cove with a hint of shade), lit by one broad soft key light, with a gentle
//! vignette, a faint mottled low-frequency texture like a painted backdrop, and fine
//! film grain (which also dithers the gradients so they never band). The palette is
//! derived from the seed and the garment's colour: light (OKLab L ≈ 0.85–0.96), low
//! in chroma, and related to the garment's hue (analogous, complementary or a warm
//! or cool neutral), so it never fights the product.
//!
//! Determinism: every parameter is drawn from a `ChaCha8Rng` seeded with the seed,
//! in a fixed order, and the pixels are a pure function of those parameters, so one
//! seed always gives the same image.
//!
//! Speed: everything but the grain is separable into per-row and per-column terms
//! computed once, so each pixel costs a handful of multiply-adds and one table
//! lookup; no per-pixel allocation or randomness.

use image::RgbImage;
use rand::{Rng, RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::oklab::{self, Lch};

/// Garments with less chroma than this get a neutral or freely tinted scene.
const NEUTRAL_CHROMA: f32 = 0.035;
/// Side of the square grain tile (a power of two, so wrapping is a mask).
const GRAIN_TILE: usize = 256;
/// Number of cosine components in the backdrop texture.
const TEXTURE_WAVES: usize = 4;

/// Renders the studio backdrop alone at `width`×`height`. The same arguments always
/// give the same pixels; different seeds give visibly different scenes. Zero sizes
/// give an empty image.
pub fn scene(width: u32, height: u32, seed: u64, garment_color: [u8; 3]) -> RgbImage {
    let mut out = RgbImage::new(width, height);
    if width == 0 || height == 0 {
        return out;
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let garment = oklab::to_lch(oklab::srgb8_to_oklab(garment_color));
    let p = Params::draw(&mut rng, garment);
    let grain = grain_tile(&mut rng, p.grain);
    let row_shifts: Vec<u8> = (0..height).map(|_| rng.random::<u8>()).collect();

    let (w, h) = (width as usize, height as usize);
    let columns = Columns::new(&p, w);
    // Per-row scratch: the light multiplier and the grain of each pixel.
    let mut light = vec![0f32; w];
    let mut grain_row = vec![0f32; w];
    for ((y, row), &shift) in out.chunks_exact_mut(w * 3).enumerate().zip(&row_shifts) {
        let r = RowTerms::new(&p, y, h);
        columns.light_row(&r, p.vignette, &mut light);
        let tile = (y % GRAIN_TILE) * GRAIN_TILE;
        fill_cycled(
            &grain[tile..tile + GRAIN_TILE],
            usize::from(shift),
            &mut grain_row,
        );
        let [c0, c1, c2] = r.color;
        for ((px, &m), &g) in row.chunks_exact_mut(3).zip(&light).zip(&grain_row) {
            px[0] = to_u8(c0 * m + g);
            px[1] = to_u8(c1 * m + g);
            px[2] = to_u8(c2 * m + g);
        }
    }
    out
}

/// Rounds and clamps to a byte without a per-element saturating cast (adding
/// 1.5·2²³ leaves the rounded value in the low mantissa bits), so loops vectorise.
#[inline(always)]
fn to_u8(v: f32) -> u8 {
    const ROUND: f32 = 12_582_912.0;
    (v.clamp(0.0, 255.0) + ROUND).to_bits() as u8
}

/// Fills `out` with `tile` read cyclically from `start`.
fn fill_cycled(tile: &[f32], start: usize, out: &mut [f32]) {
    let mut from = start % tile.len().max(1);
    let mut done = 0;
    while done < out.len() {
        let n = (tile.len() - from).min(out.len() - done);
        out[done..done + n].copy_from_slice(&tile[from..from + n]);
        done += n;
        from = 0;
    }
}

/// Everything random about one scene, drawn in a fixed order.
#[derive(Debug, Clone)]
struct Params {
    /// Wall colour at the top and just above the cove (OKLab).
    wall_top: [f32; 3],
    wall_low: [f32; 3],
    /// Floor colour just below the cove and at the front edge (OKLab).
    floor_back: [f32; 3],
    floor_front: [f32; 3],
    /// Centre of the cove, as a fraction of the height, and its half-width.
    horizon: f32,
    sweep: f32,
    /// Lightness lost in the cove's shade.
    crease: f32,
    /// Key light centre (fractions of width/height), spread (fractions) and gain.
    light_x: f32,
    light_y: f32,
    light_sx: f32,
    light_sy: f32,
    light_gain: f32,
    /// Corner darkening, 0–1.
    vignette: f32,
    /// Texture waves: amplitude, cycles across the width and height, phases.
    waves: [(f32, f32, f32, f32, f32); TEXTURE_WAVES],
    /// Grain amplitude in 8-bit levels.
    grain: f32,
}

impl Params {
    fn draw(rng: &mut ChaCha8Rng, garment: Lch) -> Self {
        let (hue, chroma) = scene_hue(rng, garment);
        let wall_l = rng.random_range(0.86f32..0.95);
        let wall_low_l = (wall_l + rng.random_range(-0.02f32..0.035)).min(0.97);
        let floor_l = wall_low_l - rng.random_range(0.03f32..0.075);
        let floor_front_l = (floor_l + rng.random_range(-0.01f32..0.04)).min(0.97);
        let floor_hue = hue + rng.random_range(-8.0f32..8.0);
        let floor_chroma = chroma * rng.random_range(0.8f32..1.3);
        let tone = |l: f32, c: f32, h: f32| oklab::gamut_map(Lch { l, c, h });
        let mut waves = [(0.0, 0.0, 0.0, 0.0, 0.0); TEXTURE_WAVES];
        for wave in &mut waves {
            *wave = (
                rng.random_range(0.002f32..0.006),
                rng.random_range(0.6f32..3.5),
                rng.random_range(0.6f32..3.5),
                rng.random_range(0.0f32..std::f32::consts::TAU),
                rng.random_range(0.0f32..std::f32::consts::TAU),
            );
        }
        Self {
            wall_top: tone(wall_l, chroma, hue),
            wall_low: tone(wall_low_l, chroma, hue),
            floor_back: tone(floor_l, floor_chroma, floor_hue),
            floor_front: tone(floor_front_l, floor_chroma, floor_hue),
            horizon: rng.random_range(0.58f32..0.8),
            sweep: rng.random_range(0.05f32..0.14),
            crease: rng.random_range(0.0f32..0.025),
            light_x: rng.random_range(0.2f32..0.8),
            light_y: rng.random_range(0.1f32..0.45),
            light_sx: rng.random_range(0.35f32..0.8),
            light_sy: rng.random_range(0.35f32..0.7),
            light_gain: rng.random_range(0.03f32..0.08),
            vignette: rng.random_range(0.04f32..0.12),
            waves,
            grain: rng.random_range(1.2f32..2.6),
        }
    }
}

/// Picks the scene's hue and chroma in relation to the garment's: analogous either
/// way, complementary, or a warm or cool neutral. Neutral garments suit any hue
/// at low chroma.
fn scene_hue(rng: &mut ChaCha8Rng, garment: Lch) -> (f32, f32) {
    let relation = rng.random_range(0u8..6);
    let tint = rng.random_range(0.015f32..0.04);
    let neutral = rng.random_range(0.005f32..0.015);
    let jitter = rng.random_range(-10.0f32..10.0);
    if garment.c < NEUTRAL_CHROMA {
        let free_hue = rng.random_range(0.0f32..360.0);
        return match relation {
            0..=2 => (free_hue, tint * 0.7),
            3 | 4 => (75.0 + jitter, neutral),
            _ => (250.0 + jitter, neutral),
        };
    }
    match relation {
        0 => (garment.h + jitter, tint),
        1 => (garment.h + 35.0 + jitter, tint),
        2 => (garment.h - 35.0 + jitter, tint),
        3 => (garment.h + 180.0 + jitter, tint * 0.8),
        4 => (75.0 + jitter, neutral),
        _ => (250.0 + jitter, neutral),
    }
}

/// A square tile of grain in 8-bit levels, triangular distribution within
/// ±`amplitude`, read with a random shift per row so no repetition is visible.
fn grain_tile(rng: &mut ChaCha8Rng, amplitude: f32) -> Vec<f32> {
    let mut bytes = vec![0u8; GRAIN_TILE * GRAIN_TILE * 2];
    rng.fill_bytes(&mut bytes);
    let scale = amplitude / 255.0;
    bytes
        .chunks_exact(2)
        .map(|p| (f32::from(p[0]) - f32::from(p[1])) * scale)
        .collect()
}

/// Per-column terms: the key light's horizontal falloff, the vignette's horizontal
/// radius term and each texture wave's horizontal factor.
#[derive(Debug)]
struct Columns {
    spot: Vec<f32>,
    radial: Vec<f32>,
    texture: [Vec<f32>; TEXTURE_WAVES],
}

impl Columns {
    fn new(p: &Params, w: usize) -> Self {
        let u = |x: usize| (x as f32 + 0.5) / w as f32;
        let spot = (0..w)
            .map(|x| (-0.5 * ((u(x) - p.light_x) / p.light_sx).powi(2)).exp())
            .collect();
        let radial = (0..w).map(|x| 2.0 * (u(x) - 0.5).powi(2)).collect();
        let texture = p.waves.map(|(_, fx, _, px, _)| {
            (0..w)
                .map(|x| (std::f32::consts::TAU * fx * u(x) + px).cos())
                .collect()
        });
        Self {
            spot,
            radial,
            texture,
        }
    }

    /// The light multiplier of every pixel of one row: key light × vignette ×
    /// texture, over plain slices so the loop vectorises.
    fn light_row(&self, r: &RowTerms, vignette: f32, out: &mut [f32]) {
        let w = out.len();
        let (spot, radial) = (&self.spot[..w], &self.radial[..w]);
        let [t0, t1, t2, t3] = [
            &self.texture[0][..w],
            &self.texture[1][..w],
            &self.texture[2][..w],
            &self.texture[3][..w],
        ];
        let [a0, a1, a2, a3] = r.texture;
        for x in 0..w {
            let light = 1.0 + r.spot * spot[x];
            let q = radial[x] + r.radial;
            let vignette = 1.0 - vignette * q * q;
            let texture = 1.0 + a0 * t0[x] + a1 * t1[x] + a2 * t2[x] + a3 * t3[x];
            out[x] = light * vignette * texture;
        }
    }
}

/// Per-row terms: the base colour (wall, cove or floor, 0–255 sRGB, unrounded), the
/// key light's vertical factor, the vignette's vertical radius term and each
/// texture wave's amplitude times its vertical factor.
#[derive(Debug)]
struct RowTerms {
    color: [f32; 3],
    spot: f32,
    radial: f32,
    texture: [f32; TEXTURE_WAVES],
}

impl RowTerms {
    fn new(p: &Params, y: usize, h: usize) -> Self {
        let v = (y as f32 + 0.5) / h as f32;
        // Wall above the cove, floor below, blended by a smoothstep across the cove.
        let wall_t = (v / p.horizon).clamp(0.0, 1.0);
        let floor_t = ((v - p.horizon) / (1.0 - p.horizon)).clamp(0.0, 1.0);
        let wall = lerp3(p.wall_top, p.wall_low, wall_t);
        let floor = lerp3(p.floor_back, p.floor_front, floor_t);
        let s = smoothstep((v - (p.horizon - p.sweep)) / (2.0 * p.sweep));
        let mut lab = lerp3(wall, floor, s);
        lab[0] -= p.crease * (-((v - p.horizon - 0.3 * p.sweep) / p.sweep).powi(2)).exp();
        Self {
            color: oklab::oklab_to_srgb_f32(lab),
            spot: p.light_gain * (-0.5 * ((v - p.light_y) / p.light_sy).powi(2)).exp(),
            radial: 2.0 * (v - 0.5).powi(2),
            texture: p
                .waves
                .map(|(a, _, fy, _, py)| a * (std::f32::consts::TAU * fy * v + py).cos()),
        }
    }
}

fn lerp3(a: [f32; 3], b: [f32; 3], t: f32) -> [f32; 3] {
    [
        a[0] + (b[0] - a[0]) * t,
        a[1] + (b[1] - a[1]) * t,
        a[2] + (b[2] - a[2]) * t,
    ]
}

fn smoothstep(t: f32) -> f32 {
    let t = t.clamp(0.0, 1.0);
    t * t * (3.0 - 2.0 * t)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resize::{self, Filter};

    /// The scene without its grain: a box-reduced copy.
    fn smooth(img: &RgbImage) -> RgbImage {
        resize::rgb(img, img.width() / 16, img.height() / 16, Filter::Box).expect("reduce")
    }

    fn mean_abs_diff(a: &RgbImage, b: &RgbImage) -> f64 {
        let sum: u64 = a
            .as_raw()
            .iter()
            .zip(b.as_raw())
            .map(|(&x, &y)| u64::from(x.abs_diff(y)))
            .sum();
        sum as f64 / a.as_raw().len() as f64
    }

    #[test]
    fn same_seed_same_pixels() {
        let a = scene(120, 160, 42, [200, 30, 30]);
        let b = scene(120, 160, 42, [200, 30, 30]);
        assert_eq!(a, b);
    }

    #[test]
    fn different_seeds_look_different() {
        let scenes: Vec<RgbImage> = (0..6)
            .map(|s| smooth(&scene(240, 320, s, [31, 58, 95])))
            .collect();
        for (i, a) in scenes.iter().enumerate() {
            for b in &scenes[i + 1..] {
                let d = mean_abs_diff(a, b);
                assert!(d > 2.0, "scenes too alike: {d}");
            }
        }
    }

    #[test]
    fn scenes_are_light_and_quiet() {
        for seed in 0..24 {
            let img = smooth(&scene(240, 320, seed, [200, 30, 30]));
            for p in img.pixels() {
                let lch = oklab::to_lch(oklab::srgb8_to_oklab(p.0));
                assert!(lch.l > 0.72, "seed {seed}: too dark {:?}", p.0);
                assert!(lch.c < 0.06, "seed {seed}: too colourful {:?}", p.0);
            }
        }
    }

    #[test]
    fn scene_has_structure_and_grain() {
        let img = scene(240, 320, 7, [128, 128, 128]);
        // Not flat: the top and the bottom differ (wall against floor, light, vignette).
        let top = img.get_pixel(120, 10).0;
        let bottom = img.get_pixel(120, 310).0;
        assert!(
            top.iter().zip(bottom).any(|(a, b)| a.abs_diff(b) > 3),
            "{top:?} {bottom:?}"
        );
        // Grain: neighbouring pixels are not all equal.
        let row: Vec<u8> = (100..140).map(|x| img.get_pixel(x, 100).0[1]).collect();
        assert!(row.windows(2).any(|p| p[0] != p[1]));
    }

    #[test]
    fn odd_and_empty_sizes_do_not_panic() {
        for (w, h) in [(0, 0), (0, 3), (1, 1), (1, 700), (700, 1), (3, 5)] {
            assert_eq!(scene(w, h, 3, [0, 0, 0]).dimensions(), (w, h));
        }
    }
}

//! Soft shadows that seat the garment on its background: a faint, wide drop shadow
//! of the garment's own silhouette (offset downwards) and an elliptical contact
//! shadow under its hem.
//!
//! Both darken the background multiplicatively (`bg · (1 − opacity · s)`), so they
//! read as shade on any colour, and both are applied in 8-bit fixed point that is an
//! exact identity where the shadow is zero: far from the garment a white background
//! stays exactly #FFFFFF.

use image::{GrayImage, RgbImage};

use super::composite::CutOut;
use crate::ImagingError;
use crate::filter;

/// Alpha at or above this counts as the garment's silhouette.
const SOLID: u8 = 128;
/// Drop-shadow blur, as a fraction of the garment's larger side.
const DROP_SIGMA: f32 = 0.022;
/// Drop-shadow offset downwards, as a fraction of the garment's height.
const DROP_OFFSET: f32 = 0.012;
/// Drop-shadow strength relative to the configured opacity: a hint of depth only.
const DROP_STRENGTH: f32 = 0.35;
/// Rows at the bottom of the garment measured for the hem's width, as a fraction of
/// its height.
const HEM_BAND: f32 = 0.04;
/// Contact-shadow half-height, as a fraction of the garment's height.
const CONTACT_HEIGHT: f32 = 0.028;
/// Contact shadow reaches a little beyond the hem on each side.
const CONTACT_WIDEN: f32 = 1.08;

/// The garment's solid extent inside the cut-out.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Extent {
    left: usize,
    right: usize,
    top: usize,
    bottom: usize,
    hem_left: usize,
    hem_right: usize,
}

impl Extent {
    /// Measures the silhouette (alpha ≥ [`SOLID`]); `None` when there is none.
    fn measure(alpha: &GrayImage) -> Option<Self> {
        let w = alpha.width() as usize;
        if w == 0 {
            return None;
        }
        let spans: Vec<Option<(usize, usize)>> = alpha
            .as_raw()
            .chunks_exact(w)
            .map(|row| {
                let first = row.iter().position(|&a| a >= SOLID)?;
                let last = row.iter().rposition(|&a| a >= SOLID)?;
                Some((first, last))
            })
            .collect();
        let top = spans.iter().position(Option::is_some)?;
        let bottom = spans.iter().rposition(Option::is_some)?;
        let (mut left, mut right) = (usize::MAX, 0);
        for &(l, r) in spans.iter().flatten() {
            left = left.min(l);
            right = right.max(r);
        }
        let band = ((bottom - top) as f32 * HEM_BAND).ceil() as usize;
        let (mut hem_left, mut hem_right) = (usize::MAX, 0);
        for &(l, r) in spans[bottom.saturating_sub(band).max(top)..=bottom]
            .iter()
            .flatten()
        {
            hem_left = hem_left.min(l);
            hem_right = hem_right.max(r);
        }
        Some(Self {
            left,
            right,
            top,
            bottom,
            hem_left,
            hem_right,
        })
    }

    fn width(&self) -> f32 {
        (self.right - self.left + 1) as f32
    }

    fn height(&self) -> f32 {
        (self.bottom - self.top + 1) as f32
    }
}

/// Darkens `canvas` under and around the cut-out; `opacity` is the contact shadow's
/// darkness at its core (0–1).
pub(super) fn cast(canvas: &mut RgbImage, cut: &CutOut, opacity: f32) -> Result<(), ImagingError> {
    if opacity <= 0.0 {
        return Ok(());
    }
    let Some(extent) = Extent::measure(&cut.alpha) else {
        return Ok(());
    };
    drop_shadow(canvas, cut, &extent, opacity * DROP_STRENGTH)?;
    contact_shadow(canvas, cut, &extent, opacity);
    Ok(())
}

/// Fixed-point multipliers (256 = unchanged) for shadow coverage 0–255 at `strength`.
fn multipliers(strength: f32) -> [u16; 256] {
    let mut lut = [256u16; 256];
    for (v, m) in (0u16..).zip(lut.iter_mut()) {
        *m = (256.0 * (1.0 - strength * f32::from(v) / 255.0))
            .round()
            .clamp(0.0, 256.0) as u16;
    }
    lut
}

/// The silhouette, blurred wide and shifted down, multiplied into the background.
fn drop_shadow(
    canvas: &mut RgbImage,
    cut: &CutOut,
    extent: &Extent,
    strength: f32,
) -> Result<(), ImagingError> {
    let sigma = (DROP_SIGMA * extent.width().max(extent.height())).max(1.0);
    let pad = (3.0 * sigma).ceil() as usize + 2;
    let offset = (DROP_OFFSET * extent.height()).round() as i64;
    let (w, h) = (cut.alpha.width() as usize, cut.alpha.height() as usize);
    let (pw, ph) = (w + 2 * pad, h + 2 * pad);
    let mut plane = vec![0u8; pw * ph];
    for (dst, src) in plane
        .chunks_exact_mut(pw)
        .skip(pad)
        .zip(cut.alpha.as_raw().chunks_exact(w))
    {
        dst[pad..pad + w].copy_from_slice(src);
    }
    let plane = GrayImage::from_raw(pw as u32, ph as u32, plane)
        .ok_or_else(|| ImagingError::Resize("shadow plane has the wrong length".into()))?;
    let blurred = filter::wide_blur_gray(&plane, sigma)?;
    let left = i64::from(cut.x) - pad as i64;
    let top = i64::from(cut.y) - pad as i64 + offset;
    multiply_region(canvas, &blurred, left, top, &multipliers(strength));
    Ok(())
}

/// Multiplies `shade` (coverage, placed with its top-left at `left`,`top`) into the
/// canvas through the `lut` multipliers, clipping to the canvas.
fn multiply_region(canvas: &mut RgbImage, shade: &GrayImage, left: i64, top: i64, lut: &[u16; 256]) {
    let (cw, ch) = (i64::from(canvas.width()), i64::from(canvas.height()));
    let sw = i64::from(shade.width());
    let x0 = left.max(0);
    let x1 = (left + sw).min(cw);
    if x1 <= x0 || sw == 0 {
        return;
    }
    let stride = canvas.width() as usize * 3;
    let buf: &mut [u8] = canvas;
    for (sy, shade_row) in shade.as_raw().chunks_exact(sw as usize).enumerate() {
        let cy = top + sy as i64;
        if cy < 0 || cy >= ch {
            continue;
        }
        let shade_row = &shade_row[(x0 - left) as usize..(x1 - left) as usize];
        if shade_row.iter().all(|&s| s == 0) {
            continue;
        }
        let row_start = cy as usize * stride;
        let out = &mut buf[row_start + x0 as usize * 3..row_start + x1 as usize * 3];
        for (px, &s) in out.chunks_exact_mut(3).zip(shade_row) {
            let m = u32::from(lut[usize::from(s)]);
            for c in px {
                *c = ((u32::from(*c) * m + 128) >> 8) as u8;
            }
        }
    }
}

/// An elliptical shade under the hem, darkest at its centre line and fading to
/// nothing at its rim.
fn contact_shadow(canvas: &mut RgbImage, cut: &CutOut, extent: &Extent, opacity: f32) {
    let (cw, ch) = (canvas.width() as usize, canvas.height() as usize);
    let cx = cut.x as f32 + (extent.hem_left + extent.hem_right) as f32 / 2.0 + 0.5;
    let cy = cut.y as f32 + extent.bottom as f32 + 0.5;
    let rx = ((extent.hem_right - extent.hem_left + 1) as f32 / 2.0 * CONTACT_WIDEN).max(2.0);
    let ry = (CONTACT_HEIGHT * extent.height()).max(2.0);
    let x0 = (cx - rx).floor().max(0.0) as usize;
    let x1 = ((cx + rx).ceil().max(0.0) as usize).min(cw);
    let y0 = (cy - ry).floor().max(0.0) as usize;
    let y1 = ((cy + ry).ceil().max(0.0) as usize).min(ch);
    if x1 <= x0 || y1 <= y0 {
        return;
    }
    // Horizontal term of the ellipse equation, once per column.
    let dx2: Vec<f32> = (x0..x1).map(|x| ((x as f32 + 0.5 - cx) / rx).powi(2)).collect();
    let stride = cw * 3;
    let buf: &mut [u8] = canvas;
    for y in y0..y1 {
        let dy2 = ((y as f32 + 0.5 - cy) / ry).powi(2);
        if dy2 >= 1.0 {
            continue;
        }
        let row = &mut buf[y * stride + x0 * 3..y * stride + x1 * 3];
        for (px, &d) in row.chunks_exact_mut(3).zip(&dx2) {
            let t = 1.0 - (d + dy2);
            if t <= 0.0 {
                continue;
            }
            let m = (256.0 * (1.0 - opacity * t * t)).round() as u32;
            for c in px {
                *c = ((u32::from(*c) * m + 128) >> 8) as u8;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::{Luma, Rgb};

    fn block_cut(x: u32, y: u32) -> CutOut {
        let mut alpha = GrayImage::new(100, 160);
        for yy in 10..150 {
            for xx in 20..80 {
                alpha.put_pixel(xx, yy, Luma([255]));
            }
        }
        CutOut {
            x,
            y,
            color: RgbImage::new(100, 160),
            alpha,
        }
    }

    #[test]
    fn extent_finds_the_silhouette_and_its_hem() {
        let mut cut = block_cut(0, 0);
        // A narrower hem: the bottom rows only span 40..60.
        for yy in 140..150 {
            for xx in 20..80 {
                let v = if (40..60).contains(&xx) { 255 } else { 0 };
                cut.alpha.put_pixel(xx, yy, Luma([v]));
            }
        }
        let e = Extent::measure(&cut.alpha).expect("silhouette");
        assert_eq!((e.left, e.right, e.top, e.bottom), (20, 79, 10, 149));
        assert_eq!((e.hem_left, e.hem_right), (40, 59));
        assert!(Extent::measure(&GrayImage::new(5, 5)).is_none());
    }

    #[test]
    fn shadow_darkens_below_the_garment_and_nowhere_far() {
        let mut canvas = RgbImage::from_pixel(200, 260, Rgb([255, 255, 255]));
        let cut = block_cut(50, 40);
        cast(&mut canvas, &cut, 0.3).expect("shadow");
        // Just under the hem (garment bottom at canvas row 40 + 149).
        let under = canvas.get_pixel(100, 192).0[0];
        assert!(under < 235, "contact shadow too faint: {under}");
        // Far corners untouched, exactly.
        for (x, y) in [(0, 0), (199, 0), (0, 259), (199, 259)] {
            assert_eq!(canvas.get_pixel(x, y).0, [255, 255, 255]);
        }
        // Grey stays grey (multiplicative, all channels alike).
        let p = canvas.get_pixel(100, 192).0;
        assert!(p[0] == p[1] && p[1] == p[2]);
    }

    #[test]
    fn zero_opacity_changes_nothing() {
        let mut canvas = RgbImage::from_pixel(200, 260, Rgb([120, 130, 140]));
        let before = canvas.clone();
        cast(&mut canvas, &block_cut(50, 40), 0.0).expect("shadow");
        assert_eq!(canvas, before);
    }

    #[test]
    fn shadow_hanging_off_the_canvas_is_clipped() {
        let mut canvas = RgbImage::from_pixel(60, 60, Rgb([255, 255, 255]));
        cast(&mut canvas, &block_cut(10, 0), 1.0).expect("shadow");
        assert_eq!(canvas.dimensions(), (60, 60));
    }

    #[test]
    fn multipliers_are_identity_at_zero_coverage() {
        let lut = multipliers(0.5);
        assert_eq!(lut[0], 256);
        assert_eq!(lut[255], 128);
    }
}

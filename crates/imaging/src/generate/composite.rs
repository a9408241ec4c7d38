//! Cutting the garment out (resampled colour plus a feathered alpha) and blending it
//! over a background.
//!
//! Edge treatment, so no fringe of the photo's old backdrop is carried onto the new
//! one:
//! - the mask is feathered with a Gaussian and then *choked* (alpha below one half
//!   becomes transparent, the rest is stretched back to 0–255), so the visible edge
//!   sits slightly inside the mask's boundary, where the photo is garment rather
//!   than a mix with the backdrop (one table lookup per pixel);
//! - the few pixels left semi-transparent take their colour from the fully opaque
//!   garment pixels around them, so the soft rim shows garment colour fading into
//!   the new background instead of the old backdrop's tint. Only the rim is
//!   touched, so this costs well under a millisecond.

use image::{GrayImage, RgbImage};

use super::Placement;
use crate::ImagingError;
use crate::filter;
use crate::resize::{self, Filter};

/// Mask values at or above this count as garment when checking that there is one.
const PRESENT: u8 = 32;
/// Rim pixels take the mean colour of the opaque pixels up to this many pixels away.
const PULL_RADIUS: usize = 3;
/// After feathering, alpha at or below this becomes fully transparent…
const CHOKE_LOW: u32 = 128;
/// …and at or above this fully opaque.
const CHOKE_HIGH: u32 = 242;

/// The garment resampled to its place on the canvas.
#[derive(Debug, Clone)]
pub(super) struct CutOut {
    /// Canvas column of the left edge of `color`/`alpha`.
    pub x: u32,
    /// Canvas row of the top edge.
    pub y: u32,
    /// The photo's pixels over the destination rectangle.
    pub color: RgbImage,
    /// Coverage of each pixel of `color`, 0 (background) to 255 (garment).
    pub alpha: GrayImage,
}

/// Resamples the placed region of `src` (Lanczos3) and of `mask` (bilinear), and
/// feathers the mask by `feather` canvas pixels.
pub(super) fn cut_out(
    src: &RgbImage,
    mask: &GrayImage,
    placement: &Placement,
    feather: f32,
) -> Result<CutOut, ImagingError> {
    if !region_has_foreground(mask, placement) {
        return Err(ImagingError::NoForeground(
            "the mask is empty inside the garment's box".into(),
        ));
    }
    let (x, y, w, h) = placement.dest;
    let mut color = resize::rgb_crop(src, placement.src_crop, w, h, Filter::Lanczos3)?;
    let mut alpha = resize::gray_crop(mask, placement.mask_crop, w, h, Filter::Bilinear)?;
    if feather > 0.0 {
        filter::gaussian_blur_gray_mut(&mut alpha, feather);
        let lut = choke_lut();
        for a in alpha.iter_mut() {
            *a = lut[usize::from(*a)];
        }
    }
    if alpha.iter().all(|&a| a == 0) {
        return Err(ImagingError::NoForeground(
            "the mask is too faint to cut anything out".into(),
        ));
    }
    pull_rim_colours(&mut color, &alpha);
    Ok(CutOut { x, y, color, alpha })
}

/// Gives every semi-transparent pixel the mean colour of the fully opaque pixels
/// on a cross through it, up to [`PULL_RADIUS`] away in each direction (when there
/// are any), replacing colours mixed with the old backdrop by the garment's own.
/// A cross rather than a square keeps the cost bounded (13 reads per rim pixel)
/// even for a mask that is soft everywhere, and still reaches inwards from any
/// edge. Reads only opaque pixels and writes only semi-transparent ones, so one
/// buffer serves both.
fn pull_rim_colours(color: &mut RgbImage, alpha: &GrayImage) {
    let (w, h) = (alpha.width() as usize, alpha.height() as usize);
    if w == 0 || color.width() as usize != w || color.height() as usize != h {
        return;
    }
    let a = alpha.as_raw();
    let rgb: &mut [u8] = color;
    let is_rim = |v: u8| v > 0 && v < 255;
    for y in 0..h {
        let row = &a[y * w..(y + 1) * w];
        if !row.iter().any(|&v| is_rim(v)) {
            continue;
        }
        let (y0, y1) = (y.saturating_sub(PULL_RADIUS), (y + PULL_RADIUS + 1).min(h));
        for x in (0..w).filter(|&x| is_rim(row[x])) {
            let (x0, x1) = (x.saturating_sub(PULL_RADIUS), (x + PULL_RADIUS + 1).min(w));
            let across = (x0..x1).map(|xx| y * w + xx);
            let down = (y0..y1).filter(|&yy| yy != y).map(|yy| yy * w + x);
            let (mut sum, mut n) = ([0u32; 3], 0u32);
            for i in across.chain(down).filter(|&i| a[i] == 255) {
                for (s, &v) in sum.iter_mut().zip(&rgb[i * 3..i * 3 + 3]) {
                    *s += u32::from(v);
                }
                n += 1;
            }
            // No opaque pixel nearby (n = 0): keep the pixel's own colour.
            let i = (y * w + x) * 3;
            for (dst, s) in rgb[i..i + 3].iter_mut().zip(sum) {
                if let Some(mean) = (s + n / 2).checked_div(n) {
                    *dst = mean.min(255) as u8;
                }
            }
        }
    }
}

/// Cheap early check, before any resampling: does the mask hold anything in the
/// region that will be cut out?
fn region_has_foreground(mask: &GrayImage, placement: &Placement) -> bool {
    let c = placement.mask_crop;
    let (mw, mh) = (mask.width() as usize, mask.height() as usize);
    if mw == 0 {
        return false;
    }
    let x0 = (c.left.floor().max(0.0) as usize).min(mw);
    let x1 = ((c.left + c.width).ceil().max(0.0) as usize).clamp(x0, mw);
    let y0 = (c.top.floor().max(0.0) as usize).min(mh);
    let y1 = ((c.top + c.height).ceil().max(0.0) as usize).clamp(y0, mh);
    mask.as_raw()
        .chunks_exact(mw)
        .take(y1)
        .skip(y0)
        .any(|row| row[x0..x1].iter().any(|&v| v >= PRESENT))
}

/// The choke curve as a lookup table: `CHOKE_LOW..=CHOKE_HIGH` stretched to `0..=255`.
fn choke_lut() -> [u8; 256] {
    let mut lut = [0u8; 256];
    let span = CHOKE_HIGH - CHOKE_LOW;
    for (v, out) in (0u32..).zip(lut.iter_mut()) {
        let t = v.saturating_sub(CHOKE_LOW).min(span);
        *out = ((t * 255 + span / 2) / span) as u8;
    }
    lut
}

/// Blends the cut-out over `canvas`: `out = fg·a + bg·(1−a)` in 8-bit fixed point,
/// exact at a = 0 and a = 255.
pub(super) fn blend(canvas: &mut RgbImage, cut: &CutOut) {
    let (cw, ch) = (canvas.width() as usize, canvas.height() as usize);
    let (x, y) = (cut.x as usize, cut.y as usize);
    let (w, h) = (cut.color.width() as usize, cut.color.height() as usize);
    // The placement keeps the cut-out on the canvas; clip anyway so a bug there can
    // never index out of bounds.
    let w = w.min(cw.saturating_sub(x));
    let h = h.min(ch.saturating_sub(y));
    if w == 0 || h == 0 {
        return;
    }
    let canvas_stride = cw * 3;
    let fg_stride = cut.color.width() as usize * 3;
    let alpha_stride = cut.alpha.width() as usize;
    // Alpha widened to one value per channel, so the blend is one straight loop over
    // bytes that the compiler vectorises.
    let mut alpha3 = vec![0u8; w * 3];
    let rows = canvas
        .chunks_exact_mut(canvas_stride)
        .skip(y)
        .zip(cut.color.chunks_exact(fg_stride))
        .zip(cut.alpha.chunks_exact(alpha_stride))
        .take(h);
    for ((out_row, fg_row), a_row) in rows {
        let a_row = &a_row[..w];
        if a_row.iter().all(|&a| a == 0) {
            continue;
        }
        for (dst, &a) in alpha3.chunks_exact_mut(3).zip(a_row) {
            dst.fill(a);
        }
        let out = &mut out_row[x * 3..(x + w) * 3];
        for ((o, &f), &a) in out.iter_mut().zip(&fg_row[..w * 3]).zip(&alpha3) {
            let a = u16::from(a);
            let v = u16::from(f) * a + u16::from(*o) * (255 - a) + 128;
            *o = ((v + (v >> 8)) >> 8) as u8;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resize::Crop;
    use image::{Luma, Rgb};

    fn whole(w: u32, h: u32) -> Placement {
        let crop = Crop {
            left: 0.0,
            top: 0.0,
            width: f64::from(w),
            height: f64::from(h),
        };
        Placement {
            src_crop: crop,
            mask_crop: crop,
            dest: (0, 0, w, h),
        }
    }

    #[test]
    fn blend_is_exact_at_the_ends_and_mixes_in_between() {
        let mut canvas = RgbImage::from_pixel(4, 1, Rgb([255, 255, 255]));
        let color = RgbImage::from_pixel(3, 1, Rgb([10, 20, 30]));
        let alpha = GrayImage::from_raw(3, 1, vec![0, 255, 128]).expect("3 values");
        blend(
            &mut canvas,
            &CutOut {
                x: 1,
                y: 0,
                color,
                alpha,
            },
        );
        assert_eq!(canvas.get_pixel(0, 0).0, [255, 255, 255]);
        assert_eq!(canvas.get_pixel(1, 0).0, [255, 255, 255]);
        assert_eq!(canvas.get_pixel(2, 0).0, [10, 20, 30]);
        let mid = canvas.get_pixel(3, 0).0;
        for (m, f) in mid.iter().zip([10u8, 20, 30]) {
            let expected = (f32::from(f) * 128.0 + 255.0 * 127.0) / 255.0;
            assert!((f32::from(*m) - expected).abs() <= 1.0, "{mid:?}");
        }
    }

    #[test]
    fn blend_clips_a_cut_out_hanging_off_the_canvas() {
        let mut canvas = RgbImage::new(3, 3);
        let cut = CutOut {
            x: 2,
            y: 2,
            color: RgbImage::from_pixel(5, 5, Rgb([9, 9, 9])),
            alpha: GrayImage::from_pixel(5, 5, Luma([255])),
        };
        blend(&mut canvas, &cut);
        assert_eq!(canvas.get_pixel(2, 2).0, [9, 9, 9]);
        assert_eq!(canvas.get_pixel(1, 1).0, [0, 0, 0]);
    }

    #[test]
    fn choke_moves_the_edge_inwards_and_keeps_the_core() {
        let lut = choke_lut();
        assert_eq!(lut[0], 0);
        assert_eq!(lut[128], 0);
        assert_eq!(lut[242], 255);
        assert_eq!(lut[255], 255);
        assert!(lut.windows(2).all(|p| p[0] <= p[1]));
    }

    #[test]
    fn feathered_cut_out_is_soft_only_at_the_edge() {
        let src = RgbImage::from_pixel(40, 40, Rgb([200, 30, 30]));
        let mut mask = GrayImage::new(40, 40);
        for y in 10..30 {
            for x in 10..30 {
                mask.put_pixel(x, y, Luma([255]));
            }
        }
        let cut = cut_out(&src, &mask, &whole(40, 40), 1.5).expect("cut out");
        assert_eq!(cut.alpha.get_pixel(20, 20).0[0], 255);
        assert_eq!(cut.alpha.get_pixel(5, 20).0[0], 0);
        // Nothing outside the mask's boundary becomes visible (the choke).
        assert!((0..10).all(|x| cut.alpha.get_pixel(x, 20).0[0] == 0));
        // The edge ramps over a few pixels inside it.
        let ramp = (10..16)
            .filter(|&x| (1..255).contains(&cut.alpha.get_pixel(x, 20).0[0]))
            .count();
        assert!(ramp >= 1, "edge is hard");
    }

    #[test]
    fn rim_takes_the_colour_of_the_opaque_interior() {
        // Interior red, rim contaminated with grey; only the rim changes.
        let mut color = RgbImage::from_pixel(9, 1, Rgb([128, 128, 128]));
        for x in 0..4 {
            color.put_pixel(x, 0, Rgb([200, 20, 20]));
        }
        let alpha = GrayImage::from_raw(9, 1, vec![255, 255, 255, 255, 180, 90, 0, 0, 0]).expect("9 values");
        pull_rim_colours(&mut color, &alpha);
        assert_eq!(color.get_pixel(4, 0).0, [200, 20, 20]);
        assert_eq!(color.get_pixel(5, 0).0, [200, 20, 20]);
        // Transparent pixels are left alone (they are never shown).
        assert_eq!(color.get_pixel(7, 0).0, [128, 128, 128]);
    }

    #[test]
    fn empty_or_faint_masks_are_no_foreground() {
        let src = RgbImage::new(16, 16);
        let empty = GrayImage::new(16, 16);
        assert!(matches!(
            cut_out(&src, &empty, &whole(16, 16), 1.5),
            Err(ImagingError::NoForeground(_))
        ));
        let mut speck = GrayImage::new(16, 16);
        speck.put_pixel(3, 3, Luma([40]));
        assert!(matches!(
            cut_out(&src, &speck, &whole(16, 16), 2.0),
            Err(ImagingError::NoForeground(_))
        ));
    }
}

//! Pictures in the encoder's own layout: YUV 4:2:0, one grey plane per component.
//!
//! Each slideshow image is converted from RGB once; every per-frame operation
//! (zoom resize, crossfade mix) then runs on the planes. That halves the bytes each
//! frame touches (1.5 instead of 3 per pixel) and removes a colour conversion per
//! frame. Resizing and mixing are linear, so doing them on Y'CbCr gives the same
//! picture as doing them on R'G'B' first.
//!
//! The matrix is BT.601 with limited ("TV") range, what swscale also assumes by
//! default; the encoder tags the stream accordingly.

use image::{GrayImage, Luma, RgbImage};

use atelier_imaging::ImagingError;

/// A 4:2:0 picture: `y` at full size, `u` and `v` at half width and height.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Planes {
    pub y: GrayImage,
    pub u: GrayImage,
    pub v: GrayImage,
}

/// BT.601 limited-range luma of an sRGB pixel (8-bit fixed point, as libyuv).
fn luma(r: i32, g: i32, b: i32) -> u8 {
    (((66 * r + 129 * g + 25 * b + 128) >> 8) + 16) as u8
}

/// BT.601 limited-range chroma of an sRGB pixel.
fn chroma(r: i32, g: i32, b: i32) -> (u8, u8) {
    let u = ((-38 * r - 74 * g + 112 * b + 128) >> 8) + 128;
    let v = ((112 * r - 94 * g - 18 * b + 128) >> 8) + 128;
    (u.clamp(0, 255) as u8, v.clamp(0, 255) as u8)
}

impl Planes {
    /// Converts an RGB image with even sides, averaging each 2×2 block for chroma.
    pub(super) fn from_rgb(rgb: &RgbImage) -> Result<Self, ImagingError> {
        let (w, h) = rgb.dimensions();
        if w == 0 || h == 0 || !w.is_multiple_of(2) || !h.is_multiple_of(2) {
            return Err(ImagingError::Video(format!(
                "cannot subsample a {w}x{h} picture to 4:2:0"
            )));
        }
        let y = GrayImage::from_fn(w, h, |x, y| {
            let p = rgb.get_pixel(x, y).0;
            Luma([luma(i32::from(p[0]), i32::from(p[1]), i32::from(p[2]))])
        });
        let (cw, ch) = (w / 2, h / 2);
        let mut u = GrayImage::new(cw, ch);
        let mut v = GrayImage::new(cw, ch);
        for cy in 0..ch {
            for cx in 0..cw {
                let mut sum = [0i32; 3];
                for (dx, dy) in [(0, 0), (1, 0), (0, 1), (1, 1)] {
                    let p = rgb.get_pixel(cx * 2 + dx, cy * 2 + dy).0;
                    for (s, c) in sum.iter_mut().zip(p) {
                        *s += i32::from(c);
                    }
                }
                let (pu, pv) = chroma((sum[0] + 2) >> 2, (sum[1] + 2) >> 2, (sum[2] + 2) >> 2);
                u.put_pixel(cx, cy, Luma([pu]));
                v.put_pixel(cx, cy, Luma([pv]));
            }
        }
        Ok(Self { y, u, v })
    }

    /// Writes the planes one after the other, as raw yuv420p.
    pub(super) fn write_raw(&self, out: &mut dyn std::io::Write) -> Result<(), ImagingError> {
        for plane in [&self.y, &self.u, &self.v] {
            out.write_all(plane.as_raw())?;
        }
        Ok(())
    }

    /// Width and height of the luma plane.
    pub(super) fn dimensions(&self) -> (u32, u32) {
        self.y.dimensions()
    }

    /// Mixes `to` over `from` plane by plane: `weight` 0 is all `from`, 256 all
    /// `to`. Both must have the same size.
    pub(super) fn blend(from: &Self, to: &Self, weight: u16) -> Result<Self, ImagingError> {
        if from.dimensions() != to.dimensions() {
            return Err(ImagingError::Video(format!(
                "cannot blend frames of different sizes: {:?} and {:?}",
                from.dimensions(),
                to.dimensions()
            )));
        }
        Ok(Self {
            y: mix(&from.y, &to.y, weight)?,
            u: mix(&from.u, &to.u, weight)?,
            v: mix(&from.v, &to.v, weight)?,
        })
    }
}

fn mix(a: &GrayImage, b: &GrayImage, weight: u16) -> Result<GrayImage, ImagingError> {
    let w = u32::from(weight.min(256));
    let keep = 256 - w;
    // A plain loop over equal-length slices: the compiler vectorises it.
    let out: Vec<u8> = a
        .as_raw()
        .iter()
        .zip(b.as_raw())
        .map(|(&p, &q)| ((u32::from(p) * keep + u32::from(q) * w + 128) >> 8) as u8)
        .collect();
    GrayImage::from_raw(a.width(), a.height(), out)
        .ok_or_else(|| ImagingError::Video("blended plane has the wrong length".into()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::Rgb;

    #[test]
    fn primaries_and_greys_match_bt601_limited_range() {
        // Reference values of the BT.601 studio-swing matrix.
        assert_eq!(luma(0, 0, 0), 16);
        assert_eq!(luma(255, 255, 255), 235);
        assert_eq!(chroma(128, 128, 128), (128, 128));
        assert_eq!(luma(255, 0, 0), 82);
        assert_eq!(chroma(255, 0, 0), (90, 240));
        assert_eq!(chroma(0, 0, 255), (240, 110));
    }

    #[test]
    fn chroma_is_the_average_of_each_block() {
        // Left half red, right half blue, split inside a 2×2 block column pair.
        let rgb = RgbImage::from_fn(
            4,
            2,
            |x, _| if x < 2 { Rgb([255, 0, 0]) } else { Rgb([0, 0, 255]) },
        );
        let p = Planes::from_rgb(&rgb).expect("convert");
        assert_eq!(p.y.dimensions(), (4, 2));
        assert_eq!(p.u.dimensions(), (2, 1));
        assert_eq!(
            (p.u.get_pixel(0, 0).0[0], p.v.get_pixel(0, 0).0[0]),
            chroma(255, 0, 0)
        );
        assert_eq!(
            (p.u.get_pixel(1, 0).0[0], p.v.get_pixel(1, 0).0[0]),
            chroma(0, 0, 255)
        );
        assert_eq!(p.y.get_pixel(3, 1).0[0], luma(0, 0, 255));
    }

    #[test]
    fn odd_sizes_are_refused() {
        assert!(Planes::from_rgb(&RgbImage::new(3, 2)).is_err());
        assert!(Planes::from_rgb(&RgbImage::new(0, 0)).is_err());
    }

    #[test]
    fn blend_mixes_linearly_and_refuses_mismatched_sizes() {
        let a = Planes::from_rgb(&RgbImage::from_pixel(4, 2, Rgb([0, 0, 0]))).expect("a");
        let b = Planes::from_rgb(&RgbImage::from_pixel(4, 2, Rgb([255, 255, 255]))).expect("b");
        let mid = Planes::blend(&a, &b, 128).expect("blend");
        // Halfway between black (16) and white (235), rounded.
        assert_eq!(mid.y.get_pixel(1, 1).0[0], 126);
        assert_eq!(Planes::blend(&a, &b, 0).expect("blend"), a);
        assert_eq!(Planes::blend(&a, &b, 256).expect("blend"), b);
        let small = Planes::from_rgb(&RgbImage::new(2, 2)).expect("small");
        assert!(Planes::blend(&a, &small, 10).is_err());
    }
}

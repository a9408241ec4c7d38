//! Slideshow pixels: each image is letterboxed once onto a white canvas a little
//! larger than the video frame and converted to YUV 4:2:0 once; every output frame
//! is then a centred crop of those planes resized down to the frame (the slow
//! zoom), or an integer mix of two such crops (the crossfade, see [`Planes::blend`]).
//!
//! Preparing the canvas at the largest zoom's resolution means every per-frame
//! resize is a reduction by at most a few percent, where plain two-tap bilinear
//! interpolation ([`resize::gray_crop_interpolate`], SIMD fixed point) is sharp,
//! smooth in motion and cheaper than a widened convolution.

use image::{GrayImage, Rgb, RgbImage};

use super::yuv::Planes;
use atelier_imaging::ImagingError;
use atelier_imaging::resize::{self, Crop, Filter};

/// Backdrop of the letterbox: the product shots sit on light backgrounds.
const BACKDROP: Rgb<u8> = Rgb([255, 255, 255]);

/// One image, fitted and centred on its white canvas, ready to be zoomed.
#[derive(Debug, Clone)]
pub(super) struct Slide {
    canvas: Planes,
}

impl Slide {
    /// Letterboxes `image` on a `width`×`height` white canvas (see [`letterbox`])
    /// and converts the canvas to YUV. `width` and `height` must be even.
    pub(super) fn prepare(image: &RgbImage, width: u32, height: u32) -> Result<Self, ImagingError> {
        Ok(Self {
            canvas: Planes::from_rgb(&letterbox(image, width, height)?)?,
        })
    }

    /// The canvas magnified by `scale` around its centre and resized to
    /// `width`×`height` (even). `scale` 1 shows the whole canvas.
    pub(super) fn render(&self, scale: f64, width: u32, height: u32) -> Result<Planes, ImagingError> {
        let scale = if scale.is_finite() { scale.max(1.0) } else { 1.0 };
        let (half_w, half_h) = (width / 2, height / 2);
        Ok(Planes {
            y: zoom(&self.canvas.y, scale, width, height)?,
            u: zoom(&self.canvas.u, scale, half_w, half_h)?,
            v: zoom(&self.canvas.v, scale, half_w, half_h)?,
        })
    }
}

/// The centre `1/scale` of `plane`, resized to `width`×`height`.
fn zoom(plane: &GrayImage, scale: f64, width: u32, height: u32) -> Result<GrayImage, ImagingError> {
    let (pw, ph) = (f64::from(plane.width()), f64::from(plane.height()));
    let (w, h) = (pw / scale, ph / scale);
    let crop = Crop {
        left: (pw - w) / 2.0,
        top: (ph - h) / 2.0,
        width: w,
        height: h,
    };
    resize::gray_crop_interpolate(plane, crop, width, height)
}

/// Fits `image` inside a `width`×`height` canvas, keeping its aspect ratio
/// (enlarging or reducing with Lanczos3), and centres it on white.
fn letterbox(image: &RgbImage, width: u32, height: u32) -> Result<RgbImage, ImagingError> {
    let (iw, ih) = image.dimensions();
    if iw == 0 || ih == 0 {
        return Err(ImagingError::Video(format!(
            "an image of the slideshow is empty ({iw}x{ih})"
        )));
    }
    let fit = (f64::from(width) / f64::from(iw)).min(f64::from(height) / f64::from(ih));
    let fw = ((f64::from(iw) * fit).round() as u32).clamp(1, width);
    let fh = ((f64::from(ih) * fit).round() as u32).clamp(1, height);
    let fitted;
    let source = if (fw, fh) == (iw, ih) {
        image
    } else {
        fitted = resize::rgb(image, fw, fh, Filter::Lanczos3)?;
        &fitted
    };
    let mut canvas = RgbImage::from_pixel(width, height, BACKDROP);
    paste(&mut canvas, source, (width - fw) / 2, (height - fh) / 2);
    Ok(canvas)
}

/// Copies `src` into `dst` with its top-left corner at (`x`, `y`); the caller
/// guarantees it fits.
fn paste(dst: &mut RgbImage, src: &RgbImage, x: u32, y: u32) {
    let dst_stride = dst.width() as usize * 3;
    let src_stride = src.width() as usize * 3;
    let offset = x as usize * 3;
    let rows = dst.chunks_exact_mut(dst_stride).skip(y as usize);
    for (dst_row, src_row) in rows.zip(src.chunks_exact(src_stride)) {
        if let Some(target) = dst_row.get_mut(offset..offset + src_stride) {
            target.copy_from_slice(src_row);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wide_images_are_letterboxed_top_and_bottom_on_white() {
        let img = RgbImage::from_pixel(400, 100, Rgb([200, 10, 10]));
        let canvas = letterbox(&img, 200, 200).expect("letterbox");
        assert_eq!(canvas.dimensions(), (200, 200));
        assert_eq!(canvas.get_pixel(100, 100), &Rgb([200, 10, 10]));
        assert_eq!(canvas.get_pixel(100, 10), &BACKDROP);
        assert_eq!(canvas.get_pixel(100, 190), &BACKDROP);
        // The band is 50 rows high and centred: rows 75..125.
        assert_eq!(canvas.get_pixel(0, 75), &Rgb([200, 10, 10]));
        assert_eq!(canvas.get_pixel(0, 74), &BACKDROP);
        assert_eq!(canvas.get_pixel(0, 124), &Rgb([200, 10, 10]));
        assert_eq!(canvas.get_pixel(0, 125), &BACKDROP);
    }

    #[test]
    fn small_images_are_enlarged_to_fit() {
        let img = RgbImage::from_pixel(10, 20, Rgb([0, 0, 255]));
        let canvas = letterbox(&img, 100, 100).expect("letterbox");
        assert_eq!(canvas.get_pixel(30, 5), &Rgb([0, 0, 255]));
        assert_eq!(canvas.get_pixel(20, 50), &BACKDROP);
    }

    #[test]
    fn zooming_in_pushes_the_border_out_of_frame() {
        // A red square with a 10 px black border: at scale 1 the border shows at
        // the frame's edge, at scale 1.5 only red remains there.
        let img = RgbImage::from_fn(100, 100, |x, y| {
            let edge = x < 10 || y < 10 || x >= 90 || y >= 90;
            if edge { Rgb([0, 0, 0]) } else { Rgb([255, 0, 0]) }
        });
        let slide = Slide::prepare(&img, 100, 100).expect("prepare");
        let whole = slide.render(1.0, 50, 50).expect("render");
        assert_eq!(whole.dimensions(), (50, 50));
        assert_eq!(whole.u.dimensions(), (25, 25));
        assert!(whole.y.get_pixel(1, 25).0[0] < 20, "black border: Y near 16");
        let zoomed = slide.render(1.5, 50, 50).expect("render");
        assert!(
            (78..=86).contains(&zoomed.y.get_pixel(1, 25).0[0]),
            "red: Y near 82"
        );
        assert!(zoomed.v.get_pixel(0, 12).0[0] > 230, "red: V near 240");
        // Nonsense scales fall back to the whole canvas instead of failing.
        assert_eq!(slide.render(f64::NAN, 50, 50).expect("render"), whole);
    }

    #[test]
    fn empty_images_are_an_error() {
        assert!(Slide::prepare(&RgbImage::new(0, 5), 10, 10).is_err());
    }
}

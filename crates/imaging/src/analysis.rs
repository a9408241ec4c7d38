//! Local garment analysis: where the garment is, what colours it has, and how well
//! the photo is exposed and focused.
//!
//! [`analyze`] is the whole analysis stage of the local analyser. It works on a
//! working copy no larger than `working_max_side` (box-filtered, which also
//! averages away sensor noise), finds the garment either from the photo's alpha
//! channel or by cutting it out against a smooth backdrop model fitted to the
//! borders (colour, edges, texture and region coherence, a GrabCut-style
//! refinement and a guided-filter alpha: see the `cutout` submodule for how, and
//! for the limits), and clusters its colours in OKLab. Exposure and sharpness are measured on the
//! full-resolution pixels alongside (the current rayon pool runs both, and
//! the per-pixel passes of the mask split rows across it).
//!
//! Pipeline: working copy → (alpha | border fit → cut-out) → box, coverage,
//! palette. See docs/benchmarks.md for the time (`cargo bench -p atelier-imaging
//! --bench cutout`).

mod backdrop;
mod cutout;
mod guided;
mod kmeans;
mod mask;
mod morph;
mod palette;
mod prior;
mod score;
mod stats;
mod tv;

use std::borrow::Cow;

use atelier_core::analysis::{BoundingBox, ImageAnalysis, MaskSource, hex};
use atelier_core::settings::AnalysisSettings;
use image::{GrayImage, RgbImage};

use crate::resize::{self, Filter};
use crate::{ImagingError, color};

pub use prior::{MaskPrior, PriorSource};

/// An alpha channel is used as the mask only when at least this share of the
/// pixels is transparent; a fully opaque alpha (common in PNG exports of ordinary
/// photos) says nothing about the garment, so the backdrop is analysed instead.
const MIN_TRANSPARENT_SHARE: f64 = 0.01;
/// Mask level from which a pixel counts as garment (box and coverage).
const SOLID: u8 = 128;
/// The backdrop reported for a cut-out: it has none, and is shown on white.
const CUT_OUT_BACKDROP: [u8; 3] = [255, 255, 255];

/// The analysis of one photo plus the garment mask the generation stage cuts with.
#[derive(Debug, Clone)]
pub struct Analyzed {
    /// What the result and the report show.
    pub analysis: ImageAnalysis,
    /// The garment's mask at the working resolution
    /// (`resize::fit_within(width, height, working_max_side)`): 255 inside, 0 on the
    /// backdrop, intermediate on a one-pixel soft edge. Scale it up to cut the
    /// full-resolution photo.
    pub mask: GrayImage,
}

/// The mask and what it was derived from.
struct Separation {
    mask: Vec<u8>,
    source: MaskSource,
    backdrop: [u8; 3],
    /// 1 for the photo's own alpha, the cut-out's confidence otherwise.
    confidence: f32,
}

/// Analyses one decoded, orientation-corrected photo.
///
/// `alpha`, when the input had an alpha channel, is used as the garment mask
/// (resized to the working copy; it should have the photo's size) unless it is
/// essentially opaque. Bounding box and coverage refer to the full-resolution
/// photo; sharpness is the variance of the Laplacian of the full-resolution grey
/// image, exposure is over all of its pixels.
///
/// # Errors
///
/// [`ImagingError::NoForeground`] when the image is empty or nothing in it stands
/// out from the backdrop (a blank frame, an all-transparent cut-out);
/// [`ImagingError::Resize`] if the working copy cannot be made.
pub fn analyze(
    rgb: &RgbImage,
    alpha: Option<&GrayImage>,
    settings: &AnalysisSettings,
) -> Result<Analyzed, ImagingError> {
    analyze_with_prior(rgb, alpha, settings, None)
}

/// [`analyze`], with the cut-out's first labelling taken from `prior` (a
/// segmentation model) instead of the classic region labelling; the mask is then
/// reported as [`MaskSource::Model`]. The prior is asked for only when the cut-out
/// runs (an informative alpha channel still wins), with the working copy.
///
/// # Errors
///
/// Those of [`analyze`], and [`ImagingError::Segmentation`] when the prior fails.
pub fn analyze_with_prior(
    rgb: &RgbImage,
    alpha: Option<&GrayImage>,
    settings: &AnalysisSettings,
    prior: Option<&dyn PriorSource>,
) -> Result<Analyzed, ImagingError> {
    let (width, height) = rgb.dimensions();
    if width == 0 || height == 0 {
        return Err(ImagingError::NoForeground(format!(
            "the image is empty ({width}x{height})"
        )));
    }
    let (ww, wh) = resize::fit_within(width, height, settings.working_max_side.max(1));
    let work: Cow<'_, RgbImage> = if (ww, wh) == (width, height) {
        Cow::Borrowed(rgb)
    } else {
        Cow::Owned(resize::rgb(rgb, ww, wh, Filter::Box)?)
    };

    // The full-resolution statistics and the mask are independent: run them side by side.
    let (full, separation) = rayon::join(|| stats::measure(rgb), || separate(&work, alpha, prior));
    let separation = separation?;

    let extent = match alpha {
        Some(a) if separation.source == MaskSource::Alpha && a.dimensions() == (width, height) => {
            extent(a.as_raw(), width, height)
        }
        _ => extent(&separation.mask, ww, wh).map(|e| e.scaled((ww, wh), (width, height))),
    }
    .ok_or_else(|| ImagingError::NoForeground("the mask is empty".into()))?;

    let palette = palette::dominant(
        &work,
        &separation.mask,
        settings.palette_size,
        settings.max_color_samples,
    );
    let mask = GrayImage::from_raw(ww, wh, separation.mask)
        .expect("the mask has exactly one byte per working-copy pixel by construction");
    Ok(Analyzed {
        analysis: ImageAnalysis {
            width,
            height,
            mask_source: separation.source,
            bounding_box: extent.bbox,
            coverage: extent.coverage,
            mask_confidence: separation.confidence,
            backdrop_color: hex(separation.backdrop),
            palette,
            exposure: full.exposure,
            sharpness: full.sharpness,
            ai: None,
        },
        mask,
    })
}

/// Finds the garment in the working copy: from `alpha` when it is informative,
/// otherwise by separation from the fitted backdrop, starting from `prior`'s map
/// when there is one.
fn separate(
    work: &RgbImage,
    alpha: Option<&GrayImage>,
    prior: Option<&dyn PriorSource>,
) -> Result<Separation, ImagingError> {
    let (w, h) = work.dimensions();
    if let Some(alpha) = alpha {
        let small = if alpha.dimensions() == (w, h) {
            alpha.as_raw().clone()
        } else {
            resize::gray(alpha, w, h, Filter::Box)?.into_raw()
        };
        let transparent = small.iter().filter(|&&a| a < SOLID).count();
        if transparent as f64 >= MIN_TRANSPARENT_SHARE * small.len() as f64 {
            return Ok(Separation {
                mask: small,
                source: MaskSource::Alpha,
                backdrop: CUT_OUT_BACKDROP,
                confidence: 1.0,
            });
        }
    }
    let positions = backdrop::border_samples(w, h);
    let model = backdrop::fit(work, &positions);
    let map = match prior {
        Some(source) => Some(source.prior(work)?.probabilities_at(w, h)?),
        None => None,
    };
    let cut = cutout::cut(work, &model, &positions, map.as_deref()).ok_or_else(|| {
        ImagingError::NoForeground(if map.is_some() {
            "the segmentation model found no garment".into()
        } else {
            "nothing stands out from the backdrop".into()
        })
    })?;
    Ok(Separation {
        confidence: cut.evidence.confidence(),
        mask: cut.alpha,
        source: if map.is_some() {
            MaskSource::Model
        } else {
            MaskSource::Backdrop
        },
        backdrop: color::oklab_to_srgb(model.centre()),
    })
}

/// Where the solid part of a mask lies.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Extent {
    bbox: BoundingBox,
    coverage: f32,
}

impl Extent {
    /// The same extent in a frame of another size (edges rounded to the nearest pixel).
    fn scaled(self, from: (u32, u32), to: (u32, u32)) -> Self {
        let edge = |v: u32, f: u32, t: u32| ((v as f64 * t as f64 / f as f64).round() as u32).min(t);
        let b = self.bbox;
        let (x0, y0) = (edge(b.x, from.0, to.0), edge(b.y, from.1, to.1));
        let x1 = edge(b.x + b.width, from.0, to.0).max(x0 + 1).min(to.0);
        let y1 = edge(b.y + b.height, from.1, to.1).max(y0 + 1).min(to.1);
        let x0 = x0.min(x1 - 1);
        let y0 = y0.min(y1 - 1);
        Self {
            bbox: BoundingBox {
                x: x0,
                y: y0,
                width: x1 - x0,
                height: y1 - y0,
            },
            coverage: self.coverage,
        }
    }
}

/// Box and covered share of the pixels at or above [`SOLID`]; `None` when there are none.
fn extent(mask: &[u8], width: u32, height: u32) -> Option<Extent> {
    let w = width as usize;
    let (mut x0, mut y0, mut x1, mut y1, mut count) = (usize::MAX, usize::MAX, 0, 0, 0usize);
    for (y, row) in mask.chunks_exact(w.max(1)).take(height as usize).enumerate() {
        let Some(first) = row.iter().position(|&m| m >= SOLID) else {
            continue;
        };
        let last = row.iter().rposition(|&m| m >= SOLID).unwrap_or(first);
        count += row[first..=last].iter().filter(|&&m| m >= SOLID).count();
        x0 = x0.min(first);
        x1 = x1.max(last);
        y0 = y0.min(y);
        y1 = y;
    }
    (count > 0).then(|| Extent {
        bbox: BoundingBox {
            x: x0 as u32,
            y: y0 as u32,
            width: (x1 - x0 + 1) as u32,
            height: (y1 - y0 + 1) as u32,
        },
        coverage: (count as f64 / (width as f64 * height as f64)) as f32,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use atelier_core::settings::Settings;
    use image::{Luma, Rgb};

    fn settings() -> AnalysisSettings {
        AnalysisSettings {
            working_max_side: 256,
            ..Settings::defaults().analysis
        }
    }

    #[test]
    fn extent_finds_the_solid_box_and_scales_to_the_full_frame() {
        let mut mask = vec![0u8; 10 * 8];
        for y in 2..5 {
            for x in 3..7 {
                mask[y * 10 + x] = 255;
            }
        }
        mask[6 * 10 + 9] = 100; // soft, not solid
        let e = extent(&mask, 10, 8).expect("extent");
        assert_eq!(
            e.bbox,
            BoundingBox {
                x: 3,
                y: 2,
                width: 4,
                height: 3
            }
        );
        assert!((e.coverage - 12.0 / 80.0).abs() < 1e-6);
        let big = e.scaled((10, 8), (100, 80));
        assert_eq!(
            big.bbox,
            BoundingBox {
                x: 30,
                y: 20,
                width: 40,
                height: 30
            }
        );
        assert!(extent(&[0; 4], 2, 2).is_none());
    }

    #[test]
    fn blank_and_empty_images_are_no_foreground() {
        let blank = RgbImage::from_pixel(300, 200, Rgb([240, 240, 240]));
        assert!(matches!(
            analyze(&blank, None, &settings()),
            Err(ImagingError::NoForeground(_))
        ));
        let empty = RgbImage::new(0, 0);
        assert!(matches!(
            analyze(&empty, None, &settings()),
            Err(ImagingError::NoForeground(_))
        ));
        let transparent = GrayImage::new(300, 200);
        let result = analyze(&blank, Some(&transparent), &settings());
        assert!(matches!(result, Err(ImagingError::NoForeground(_))));
    }

    #[test]
    fn tiny_images_do_not_panic() {
        for (w, h) in [(1, 1), (2, 3), (7, 1), (3, 40)] {
            let img = RgbImage::from_fn(w, h, |x, y| Rgb([(x * 40) as u8, (y * 7) as u8, 9]));
            let _ = analyze(&img, None, &settings());
        }
    }

    #[test]
    fn opaque_alpha_falls_back_to_the_backdrop() {
        let img = RgbImage::from_fn(200, 200, |x, y| {
            if (60..140).contains(&x) && (50..150).contains(&y) {
                Rgb([30, 60, 120])
            } else {
                Rgb([235; 3])
            }
        });
        let opaque = GrayImage::from_pixel(200, 200, Luma([255]));
        let a = analyze(&img, Some(&opaque), &settings()).expect("garment");
        assert_eq!(a.analysis.mask_source, MaskSource::Backdrop);
        assert_eq!(
            a.analysis.bounding_box,
            BoundingBox {
                x: 60,
                y: 50,
                width: 80,
                height: 100
            }
        );
        assert_eq!(a.analysis.backdrop_color, "#ebebeb");
        assert_eq!(a.mask.dimensions(), (200, 200));
    }

    /// A prior that marks a fixed box of its (any-size) frame, in fractions.
    struct BoxPrior {
        side: u32,
        frac: (f32, f32, f32, f32),
    }

    impl PriorSource for BoxPrior {
        fn prior(&self, _work: &RgbImage) -> Result<MaskPrior, ImagingError> {
            let s = self.side;
            let (x0, y0, x1, y1) = self.frac;
            let values: Vec<f32> = (0..s * s)
                .map(|i| {
                    let (x, y) = ((i % s) as f32 / s as f32, (i / s) as f32 / s as f32);
                    if (x0..x1).contains(&x) && (y0..y1).contains(&y) {
                        0.9
                    } else {
                        0.1
                    }
                })
                .collect();
            MaskPrior::from_probabilities(s, s, &values)
        }
    }

    #[test]
    fn a_prior_starts_the_cut_out_and_is_refined_to_the_garment() {
        // Garment at x 60..140, y 50..150 of 200²; the prior is a looser box
        // (x 25%..75%, y 20%..80%), as a coarse 32² model map would be.
        let img = RgbImage::from_fn(200, 200, |x, y| {
            if (60..140).contains(&x) && (50..150).contains(&y) {
                Rgb([30, 60, 120])
            } else {
                Rgb([235; 3])
            }
        });
        let prior = BoxPrior {
            side: 32,
            frac: (0.25, 0.2, 0.75, 0.8),
        };
        let a = analyze_with_prior(&img, None, &settings(), Some(&prior)).expect("garment");
        assert_eq!(a.analysis.mask_source, MaskSource::Model);
        let b = a.analysis.bounding_box;
        let near = |v: u32, want: u32| v.abs_diff(want) <= 3;
        assert!(
            near(b.x, 60) && near(b.y, 50) && near(b.width, 80) && near(b.height, 100),
            "the colour models pull the loose prior onto the garment: {b:?}"
        );

        // A prior that finds nothing is no garment, named as the model's finding.
        let empty = BoxPrior {
            side: 16,
            frac: (0.0, 0.0, 0.0, 0.0),
        };
        match analyze_with_prior(&img, None, &settings(), Some(&empty)) {
            Err(ImagingError::NoForeground(m)) => assert!(m.contains("segmentation model"), "{m}"),
            other => panic!("expected no foreground, got {other:?}"),
        }
    }
}

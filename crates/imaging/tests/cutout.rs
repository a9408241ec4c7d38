//! Known-answer tests of the local cut-out on the hard studio kinds of
//! `atelier_fixtures::Kind` (white on white, cream on beige, thin straps, sleeve
//! gaps, hanger, lace, folds, soft shadows, noise, JPEG, vignetting, white
//! balance), and its refusal of cluttered scenes through the mask confidence.
//!
//! The per-kind figures, and how to print them for more seeds and the real
//! photos, are in docs/benchmarks.md (`--example cutout_iou`).

use atelier_core::settings::Settings;
use atelier_fixtures::{Kind, iou, studio};
use atelier_imaging::analysis::analyze;

/// 3:4 and larger than the working copy, so the downscale is exercised.
const W: u32 = 900;
const H: u32 = 1200;
/// The target for every studio kind.
const TARGET_IOU: f64 = 0.95;

#[test]
fn every_studio_kind_is_cut_out_to_the_target_iou() {
    let settings = Settings::defaults().analysis;
    let mut failures = Vec::new();
    for kind in Kind::ALL.into_iter().filter(|k| k.is_studio()) {
        let g = studio(kind, W, H, 1);
        let a = analyze(&g.image, None, &settings).unwrap_or_else(|e| panic!("{kind:?}: {e}"));
        let v = iou(&a.mask, &g.mask);
        if v < TARGET_IOU {
            failures.push(format!("{}: IoU {v:.3} < {TARGET_IOU}", kind.name()));
        }
        assert!(
            a.analysis.mask_confidence >= settings.min_mask_confidence,
            "{kind:?}: a studio photo must be trusted, confidence {}",
            a.analysis.mask_confidence
        );
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

/// Every other seed the benchmark uses (2–5), for every studio kind but the JPEG
/// one (well cut or refused, below): the shaded and white-balanced white tees and
/// the dense soft shadow were below the target on one of them before the solve
/// stopped carving deep into the outline and the peel stopped at leaks.
#[test]
fn every_studio_kind_holds_the_target_on_every_benchmark_seed() {
    let settings = Settings::defaults().analysis;
    let mut failures = Vec::new();
    for kind in Kind::ALL
        .into_iter()
        .filter(|&k| k.is_studio() && k != Kind::Jpeg)
    {
        for seed in 2..=5 {
            let g = studio(kind, W, H, seed);
            match analyze(&g.image, None, &settings) {
                Ok(a) => {
                    let v = iou(&a.mask, &g.mask);
                    if v < TARGET_IOU || a.analysis.mask_confidence < settings.min_mask_confidence {
                        failures.push(format!(
                            "{} seed {seed}: IoU {v:.3}, confidence {:.2}",
                            kind.name(),
                            a.analysis.mask_confidence
                        ));
                    }
                }
                Err(e) => failures.push(format!("{} seed {seed}: {e}", kind.name())),
            }
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

/// The hardest studio kind on every seed the benchmark uses: a low-quality JPEG
/// of a white tee is either cut out well or not trusted, never a broken mask
/// passed on (seed 2 lost the inside and kept a band along the outline).
#[test]
fn a_jpeg_white_tee_is_cut_out_well_or_refused() {
    let settings = Settings::defaults().analysis;
    for seed in 1..=5 {
        let g = studio(Kind::Jpeg, W, H, seed);
        if let Ok(a) = analyze(&g.image, None, &settings)
            && a.analysis.mask_confidence >= settings.min_mask_confidence
        {
            let v = iou(&a.mask, &g.mask);
            assert!(
                v >= 0.9,
                "seed {seed}: trusted (confidence {}) with IoU {v:.3}",
                a.analysis.mask_confidence
            );
        }
    }
}

#[test]
fn cluttered_scenes_are_not_trusted() {
    let settings = Settings::defaults().analysis;
    for seed in 1..=3 {
        let g = studio(Kind::Clutter, W, H, seed);
        match analyze(&g.image, None, &settings) {
            Err(_) => {}
            Ok(a) => assert!(
                a.analysis.mask_confidence < settings.min_mask_confidence,
                "seed {seed}: clutter trusted with confidence {} (IoU {:.2})",
                a.analysis.mask_confidence,
                iou(&a.mask, &g.mask)
            ),
        }
    }
}

#[test]
fn an_alpha_cut_out_is_fully_trusted() {
    let settings = Settings::defaults().analysis;
    let scene = atelier_fixtures::Scene::example(atelier_fixtures::GarmentShape::Dress, 300, 400, 2);
    let (rgba, truth) = atelier_fixtures::render_rgba(&scene);
    let rgb = image::DynamicImage::ImageRgba8(rgba.clone()).to_rgb8();
    let alpha = image::GrayImage::from_fn(300, 400, |x, y| image::Luma([rgba.get_pixel(x, y).0[3]]));
    let a = analyze(&rgb, Some(&alpha), &settings).expect("alpha");
    assert_eq!(a.analysis.mask_confidence, 1.0);
    assert!(iou(&a.mask, &truth) > 0.98);
}

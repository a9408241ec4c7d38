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
use rayon::prelude::*;

/// 3:4 and larger than the working copy, so the downscale is exercised.
const W: u32 = 900;
const H: u32 = 1200;
/// Seeds every kind is measured on (each seed moves the garment, its folds,
/// shadow and noise).
const SEEDS: [u64; 3] = [1, 2, 3];
/// The target for every studio kind.
const TARGET_IOU: f64 = 0.95;
/// Kinds the cut-out does not reach the target on yet, with the floor it does
/// reach (so a regression still fails): see "Open cases" in docs/benchmarks.md.
const SHORT_OF_TARGET: [(Kind, f64); 3] = [
    (Kind::Hanger, 0.8),
    (Kind::SleeveGap, 0.94),
    (Kind::SoftShadow, 0.8),
];

#[test]
fn every_studio_kind_is_cut_out_to_the_target_iou() {
    let settings = Settings::defaults().analysis;
    let cases: Vec<(Kind, u64)> = Kind::ALL
        .into_iter()
        .filter(|k| k.is_studio())
        .flat_map(|k| SEEDS.map(|s| (k, s)))
        .collect();
    let failures: Vec<String> = cases
        .par_iter()
        .filter_map(|&(kind, seed)| {
            let g = studio(kind, W, H, seed);
            let a = match analyze(&g.image, None, &settings) {
                Ok(a) => a,
                Err(e) => return Some(format!("{} seed {seed}: refused ({e})", kind.name())),
            };
            let v = iou(&a.mask, &g.mask);
            let bar = SHORT_OF_TARGET
                .iter()
                .find(|(k, _)| *k == kind)
                .map_or(TARGET_IOU, |(_, floor)| *floor);
            if v < bar {
                Some(format!("{} seed {seed}: IoU {v:.3} < {bar}", kind.name()))
            } else if a.analysis.mask_confidence < settings.min_mask_confidence {
                Some(format!(
                    "{} seed {seed}: a studio photo must be trusted, confidence {}",
                    kind.name(),
                    a.analysis.mask_confidence
                ))
            } else {
                None
            }
        })
        .collect();
    assert!(failures.is_empty(), "{failures:#?}");
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

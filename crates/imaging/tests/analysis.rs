//! Known-answer tests of the local garment analysis on synthetic photos from
//! `atelier-fixtures`, whose true silhouette, box and fabric colour are known.
//!
//! Every shape is checked on a plain backdrop, a strong gradient with vignette, with
//! a soft cast shadow, with heavy sensor noise and with stripes; then the alpha
//! path, JPEG input, a garment cut by the frame, exposure, sharpness and inputs
//! with nothing to find.

use atelier_core::analysis::{MaskSource, parse_hex};
use atelier_core::settings::{AnalysisSettings, Settings};
use atelier_fixtures::{Backdrop, Garment, GarmentShape, Scene, render, render_backdrop, render_rgba};
use atelier_imaging::ImagingError;
use atelier_imaging::analysis::{Analyzed, analyze};
use atelier_imaging::color::{delta_e76, srgb_to_lab};
use atelier_imaging::resize::{self, Filter};
use image::{GrayImage, Luma, Rgb, RgbImage};

/// 3:4 like most product photos, and larger than the working copy, so the
/// downscale and the box's mapping back to full resolution are exercised.
const W: u32 = 900;
const H: u32 = 1200;

fn settings() -> AnalysisSettings {
    Settings::defaults().analysis
}

#[derive(Debug, Clone, Copy)]
enum Condition {
    Plain,
    Gradient,
    Shadow,
    Noise,
    Stripes,
}

const CONDITIONS: [Condition; 5] = [
    Condition::Plain,
    Condition::Gradient,
    Condition::Shadow,
    Condition::Noise,
    Condition::Stripes,
];

fn fabric(shape: GarmentShape) -> [u8; 3] {
    match shape {
        GarmentShape::TShirt => [38, 62, 110],
        GarmentShape::Dress => [176, 84, 62],
        GarmentShape::Trousers => [92, 98, 62],
        GarmentShape::Camisole => [150, 60, 90],
        GarmentShape::LongSleeve => [70, 70, 76],
    }
}

const STRIPE: [u8; 3] = [214, 178, 70];
const PLAIN: [u8; 3] = [232, 232, 230];

fn scene(shape: GarmentShape, condition: Condition, seed: u64) -> Scene {
    let mut scene = Scene {
        width: W,
        height: H,
        shape,
        fabric: fabric(shape),
        stripes: None,
        backdrop: Backdrop::plain(PLAIN),
        shadow: 0.0,
        noise: 0.0,
        seed,
    };
    match condition {
        Condition::Plain => {}
        Condition::Gradient => {
            scene.backdrop = Backdrop {
                top: [248, 246, 242],
                bottom: [178, 180, 188],
                vignette: 0.3,
            };
        }
        Condition::Shadow => scene.shadow = 0.3,
        Condition::Noise => {
            scene.noise = 8.0;
            scene.backdrop = Backdrop {
                top: [236, 236, 236],
                bottom: [214, 214, 218],
                vignette: 0.1,
            };
        }
        Condition::Stripes => scene.stripes = Some(STRIPE),
    }
    scene
}

fn lab_distance(hex: &str, rgb: [u8; 3]) -> f32 {
    let got = parse_hex(hex).expect("palette colours are #rrggbb");
    delta_e76(srgb_to_lab(got), srgb_to_lab(rgb))
}

/// Intersection over union of the analysis mask (scaled up to the photo, as the
/// generation stage uses it) and the truth.
fn iou(mask: &GrayImage, truth: &GrayImage) -> f64 {
    let (w, h) = truth.dimensions();
    let full = resize::gray(mask, w, h, Filter::Bilinear).expect("resize");
    let (mut inter, mut union) = (0u64, 0u64);
    for (a, b) in full.pixels().zip(truth.pixels()) {
        let (a, b) = (a.0[0] >= 128, b.0[0] >= 128);
        inter += u64::from(a && b);
        union += u64::from(a || b);
    }
    inter as f64 / union.max(1) as f64
}

fn truth_coverage(truth: &GrayImage) -> f64 {
    truth.pixels().filter(|p| p.0[0] >= 128).count() as f64 / (truth.width() as f64 * truth.height() as f64)
}

/// The known-answer checks shared by every photo of a garment on a backdrop.
fn check(label: &str, a: &Analyzed, truth: &Garment) {
    let r = &a.analysis;
    let (w, h) = truth.image.dimensions();
    assert_eq!((r.width, r.height), (w, h), "{label}");
    assert_eq!(r.mask_source, MaskSource::Backdrop, "{label}");
    let (tx, ty, tw, th) = truth.bbox;
    let b = r.bounding_box;
    // The brief allows 2% of the side and IoU 0.9; the analysis does several times
    // better on these scenes, so the bar sits at 1% and 0.97 to catch regressions.
    let (sx, sy) = (0.01 * w as f64, 0.01 * h as f64);
    let near = |got: u32, want: u32, tol: f64| (got as f64 - want as f64).abs() <= tol;
    assert!(
        near(b.x, tx, sx)
            && near(b.y, ty, sy)
            && near(b.x + b.width, tx + tw, sx)
            && near(b.y + b.height, ty + th, sy),
        "{label}: box {b:?} vs truth {:?}",
        truth.bbox
    );
    let overlap = iou(&a.mask, &truth.mask);
    assert!(overlap >= 0.97, "{label}: IoU {overlap:.3}");
    let coverage = truth_coverage(&truth.mask);
    assert!(
        (r.coverage as f64 - coverage).abs() <= 0.03 * coverage,
        "{label}: coverage {} vs {coverage:.4}",
        r.coverage
    );
    let dominant = r
        .palette
        .first()
        .unwrap_or_else(|| panic!("{label}: empty palette"));
    let de = lab_distance(&dominant.hex, truth.fabric);
    assert!(
        de <= 6.0,
        "{label}: dominant {} is ΔE76 {de:.1} from the fabric",
        dominant.hex
    );
    let total: f32 = r.palette.iter().map(|c| c.share).sum();
    assert!((total - 1.0).abs() < 1e-3, "{label}: shares sum to {total}");
    assert!(
        r.palette.windows(2).all(|p| p[0].share >= p[1].share),
        "{label}: palette order"
    );
}

#[test]
fn every_shape_under_every_condition_matches_the_truth() {
    for (i, shape) in GarmentShape::ALL.into_iter().enumerate() {
        for (j, condition) in CONDITIONS.into_iter().enumerate() {
            let s = scene(shape, condition, (i * 10 + j) as u64);
            let truth = render(&s);
            let a = analyze(&truth.image, None, &settings()).expect("a garment is found");
            let label = format!("{shape:?}/{condition:?}");
            check(&label, &a, &truth);
            match condition {
                Condition::Plain | Condition::Shadow => {
                    let de = lab_distance(&a.analysis.backdrop_color, PLAIN);
                    assert!(
                        de <= 2.0,
                        "{label}: backdrop {} ΔE {de:.1}",
                        a.analysis.backdrop_color
                    );
                }
                Condition::Stripes => {
                    let de = a
                        .analysis
                        .palette
                        .iter()
                        .map(|c| lab_distance(&c.hex, STRIPE))
                        .fold(f32::MAX, f32::min);
                    assert!(de <= 8.0, "{label}: no stripe colour in {:?}", a.analysis.palette);
                }
                Condition::Gradient | Condition::Noise => {}
            }
        }
    }
}

#[test]
fn pastel_garment_on_a_white_sweep_is_found() {
    let s = Scene {
        fabric: [200, 220, 240],
        backdrop: Backdrop {
            top: [248, 248, 248],
            bottom: [238, 238, 240],
            vignette: 0.05,
        },
        shadow: 0.2,
        noise: 2.0,
        ..scene(GarmentShape::TShirt, Condition::Plain, 12)
    };
    let truth = render(&s);
    let a = analyze(&truth.image, None, &settings()).expect("garment");
    check("pastel", &a, &truth);
}

#[test]
fn heavy_noise_raises_the_bar_instead_of_breaking_the_mask() {
    for (i, shape) in GarmentShape::ALL.into_iter().enumerate() {
        let mut s = scene(shape, Condition::Noise, 40 + i as u64);
        s.noise = 24.0; // a dim room at high ISO
        let truth = render(&s);
        let a = analyze(&truth.image, None, &settings()).expect("a garment is found");
        let overlap = iou(&a.mask, &truth.mask);
        assert!(overlap >= 0.95, "{shape:?}: IoU {overlap:.3}");
        let de = lab_distance(&a.analysis.palette[0].hex, s.fabric);
        assert!(de <= 6.0, "{shape:?}: dominant ΔE {de:.1}");
    }
}

#[test]
fn gradient_backdrop_colour_is_the_centre_of_the_sweep() {
    let truth = render(&scene(GarmentShape::Dress, Condition::Gradient, 1));
    let a = analyze(&truth.image, None, &settings()).expect("garment");
    // The renderer's sweep at the centre: the mean of top and bottom, no vignette there.
    let centre = [213, 213, 215];
    let de = lab_distance(&a.analysis.backdrop_color, centre);
    assert!(
        de <= 3.0,
        "backdrop {} is ΔE {de:.1} from {centre:?}",
        a.analysis.backdrop_color
    );
}

#[test]
fn jpeg_input_like_the_examples_is_analysed_as_well() {
    let s = Scene::example(GarmentShape::TShirt, 1200, 1600, 7);
    let truth = render(&s);
    let bytes = atelier_fixtures::jpeg(&truth.image, 80);
    let decoded = image::load_from_memory(&bytes).expect("decodes").to_rgb8();
    let a = analyze(&decoded, None, &settings()).expect("garment");
    check("jpeg", &a, &truth);
}

#[test]
fn garment_cut_by_the_frame_edge_does_not_poison_the_backdrop() {
    let s = scene(GarmentShape::Trousers, Condition::Gradient, 3);
    let full = render(&s);
    // Crop so the hems run off the bottom edge.
    let (_, y, _, th) = full.bbox;
    let bottom = y + th - th / 6;
    let crop = |img: &RgbImage| image::imageops::crop_imm(img, 0, 0, W, bottom).to_image();
    let mask = image::imageops::crop_imm(&full.mask, 0, 0, W, bottom).to_image();
    let truth = Garment {
        image: crop(&full.image),
        bbox: atelier_fixtures::bounding_box(&mask),
        mask,
        fabric: full.fabric,
    };
    let a = analyze(&truth.image, None, &settings()).expect("garment");
    check("cropped", &a, &truth);
    assert_eq!(
        a.analysis.bounding_box.y + a.analysis.bounding_box.height,
        bottom,
        "reaches the edge"
    );
}

#[test]
fn cut_out_uses_its_alpha_channel() {
    for shape in GarmentShape::ALL {
        let s = scene(shape, Condition::Plain, 5);
        let (rgba, truth) = render_rgba(&s);
        let rgb = RgbImage::from_fn(W, H, |x, y| {
            let p = rgba.get_pixel(x, y).0;
            Rgb([p[0], p[1], p[2]])
        });
        let alpha = GrayImage::from_fn(W, H, |x, y| Luma([rgba.get_pixel(x, y).0[3]]));
        let a = analyze(&rgb, Some(&alpha), &settings()).expect("garment");
        let r = &a.analysis;
        assert_eq!(r.mask_source, MaskSource::Alpha, "{shape:?}");
        let (tx, ty, tw, th) = atelier_fixtures::bounding_box(&truth);
        let b = r.bounding_box;
        assert_eq!(
            (b.x, b.y, b.width, b.height),
            (tx, ty, tw, th),
            "{shape:?}: box from the full-size alpha"
        );
        assert!(iou(&a.mask, &truth) >= 0.97, "{shape:?}");
        assert_eq!(r.backdrop_color, "#ffffff");
        let de = lab_distance(&r.palette[0].hex, s.fabric);
        assert!(de <= 6.0, "{shape:?}: dominant ΔE {de:.1}");
    }
}

#[test]
fn exposure_of_half_black_half_white_is_exact() {
    let rgb = RgbImage::from_fn(200, 100, |x, _| if x < 100 { Rgb([0; 3]) } else { Rgb([255; 3]) });
    // A cut-out mask, so the analysis has a garment; exposure is over the whole frame.
    let alpha = GrayImage::from_fn(200, 100, |x, y| {
        Luma([if (50..150).contains(&x) && (25..75).contains(&y) {
            255
        } else {
            0
        }])
    });
    let e = analyze(&rgb, Some(&alpha), &settings())
        .expect("garment")
        .analysis
        .exposure;
    assert!((e.mean_luminance - 0.5).abs() < 1e-4, "{e:?}");
    assert!((e.clipped_shadows - 0.5).abs() < 1e-6, "{e:?}");
    assert!((e.clipped_highlights - 0.5).abs() < 1e-6, "{e:?}");
}

#[test]
fn blur_lowers_sharpness() {
    let mut s = scene(GarmentShape::TShirt, Condition::Stripes, 2);
    s.noise = 1.0;
    let sharp = render(&s).image;
    let small = resize::rgb(&sharp, W / 6, H / 6, Filter::Box).expect("resize");
    let blurred = resize::rgb(&small, W, H, Filter::Bilinear).expect("resize");
    let a = analyze(&sharp, None, &settings())
        .expect("garment")
        .analysis
        .sharpness;
    let b = analyze(&blurred, None, &settings())
        .expect("garment")
        .analysis
        .sharpness;
    assert!(a > 4.0 * b && b > 0.0, "sharp {a:.1}, blurred {b:.1}");
}

#[test]
fn frames_without_a_garment_are_no_foreground() {
    let sweep = scene(GarmentShape::Dress, Condition::Gradient, 4);
    let noisy = scene(GarmentShape::Dress, Condition::Noise, 4);
    let cases = [
        ("blank", RgbImage::from_pixel(640, 480, Rgb([250, 250, 250]))),
        ("black", RgbImage::new(300, 300)),
        ("gradient and vignette", render_backdrop(&sweep)),
        ("noisy sweep", render_backdrop(&noisy)),
    ];
    for (label, img) in cases {
        match analyze(&img, None, &settings()) {
            Err(ImagingError::NoForeground(_)) => {}
            other => panic!(
                "{label}: expected NoForeground, got {:?}",
                other.map(|a| a.analysis)
            ),
        }
    }
}

#[test]
fn results_are_deterministic() {
    let truth = render(&scene(GarmentShape::Dress, Condition::Stripes, 8));
    let a = analyze(&truth.image, None, &settings()).expect("garment");
    let b = analyze(&truth.image, None, &settings()).expect("garment");
    assert_eq!(a.analysis, b.analysis);
    assert_eq!(a.mask, b.mask);
}

//! Known-answer tests of the local generator on synthetic photos: a flat-coloured
//! elliptical garment on a grey backdrop with an exact mask, so placement, colour
//! and background can be checked against numbers rather than eyeballed; plus a
//! realistic fixture garment (folds, noise, gradient backdrop).

use atelier_core::analysis::{BoundingBox, ColorShare, Exposure, ImageAnalysis, MaskSource, hex};
use atelier_core::settings::GenerationSettings;
use atelier_fixtures::{GarmentShape, Scene};
use atelier_imaging::ImagingError;
use atelier_imaging::color::srgb_to_oklch;
use atelier_imaging::generate::{Background, plain_color, render, scene};
use atelier_imaging::resize::{self, Filter};
use image::{GrayImage, Luma, Rgb, RgbImage};

const BACKDROP: [u8; 3] = [200, 200, 200];

/// A synthetic photo with its mask (at analysis working resolution) and analysis.
struct Photo {
    image: RgbImage,
    mask: GrayImage,
    analysis: ImageAnalysis,
}

/// Coverage of an ellipse centred at (`cx`, `cy`) with radii `rx`, `ry` at pixel
/// (x, y): a one-pixel antialiased edge.
fn ellipse_coverage(x: u32, y: u32, (cx, cy, rx, ry): (f32, f32, f32, f32)) -> f32 {
    let dx = (x as f32 + 0.5 - cx) / rx;
    let dy = (y as f32 + 0.5 - cy) / ry;
    let signed = ((dx * dx + dy * dy).sqrt() - 1.0) * rx.min(ry);
    (0.5 - signed).clamp(0.0, 1.0)
}

/// A `w`×`h` photo of an ellipse (fractions of the frame) of `color` on `backdrop`,
/// with a mask at the analysis's working size (longest side ≤ 1024).
fn photo_on(w: u32, h: u32, ellipse: (f32, f32, f32, f32), color: [u8; 3], backdrop: [u8; 3]) -> Photo {
    let (fx, fy, frx, fry) = ellipse;
    let geometry = (fx * w as f32, fy * h as f32, frx * w as f32, fry * h as f32);
    let image = RgbImage::from_fn(w, h, |x, y| {
        let a = ellipse_coverage(x, y, geometry);
        Rgb(std::array::from_fn(|c| {
            (f32::from(color[c]) * a + f32::from(backdrop[c]) * (1.0 - a)).round() as u8
        }))
    });
    let (mw, mh) = resize::fit_within(w, h, 1024);
    let mask_geometry = (fx * mw as f32, fy * mh as f32, frx * mw as f32, fry * mh as f32);
    let mask = GrayImage::from_fn(mw, mh, |x, y| {
        Luma([(ellipse_coverage(x, y, mask_geometry) * 255.0) as u8])
    });
    let (cx, cy, rx, ry) = geometry;
    let x0 = (cx - rx).floor().max(0.0) as u32;
    let y0 = (cy - ry).floor().max(0.0) as u32;
    let x1 = ((cx + rx).ceil() as u32).min(w);
    let y1 = ((cy + ry).ceil() as u32).min(h);
    let bbox = BoundingBox {
        x: x0,
        y: y0,
        width: x1.saturating_sub(x0),
        height: y1.saturating_sub(y0),
    };
    Photo {
        image,
        mask,
        analysis: analysis(w, h, bbox, color),
    }
}

fn photo(w: u32, h: u32, ellipse: (f32, f32, f32, f32), color: [u8; 3]) -> Photo {
    photo_on(w, h, ellipse, color, BACKDROP)
}

fn analysis(w: u32, h: u32, bbox: BoundingBox, color: [u8; 3]) -> ImageAnalysis {
    ImageAnalysis {
        width: w,
        height: h,
        mask_source: MaskSource::Backdrop,
        bounding_box: bbox,
        coverage: 0.3,
        mask_confidence: 1.0,
        backdrop_color: hex(BACKDROP),
        palette: vec![ColorShare {
            hex: hex(color),
            share: 0.9,
        }],
        exposure: Exposure {
            mean_luminance: 0.6,
            clipped_shadows: 0.0,
            clipped_highlights: 0.0,
        },
        sharpness: 50.0,
        ai: None,
    }
}

fn settings() -> GenerationSettings {
    GenerationSettings {
        canvas_width: 960,
        canvas_height: 1280,
        padding: 0.08,
        feather_px: 1.5,
        shadow_opacity: 0.28,
        max_concurrent_generations: 4,
    }
}

fn no_shadow() -> GenerationSettings {
    GenerationSettings {
        shadow_opacity: 0.0,
        ..settings()
    }
}

fn draw(p: &Photo, background: Background, s: &GenerationSettings) -> RgbImage {
    render(&p.image, &p.mask, &p.analysis, background, s).expect("render")
}

/// Left, top, right and bottom margins of the pixels that differ from `bg` by more
/// than a few levels.
fn margins(img: &RgbImage, bg: [u8; 3]) -> (u32, u32, u32, u32) {
    let (mut x0, mut y0, mut x1, mut y1) = (u32::MAX, u32::MAX, 0, 0);
    for (x, y, p) in img.enumerate_pixels() {
        if p.0.iter().zip(bg).any(|(&a, b)| a.abs_diff(b) > 8) {
            x0 = x0.min(x);
            y0 = y0.min(y);
            x1 = x1.max(x);
            y1 = y1.max(y);
        }
    }
    assert!(x0 != u32::MAX, "nothing was drawn");
    (x0, y0, img.width() - 1 - x1, img.height() - 1 - y1)
}

fn close(a: [u8; 3], b: [u8; 3], tolerance: u8) -> bool {
    a.iter().zip(b).all(|(&x, y)| x.abs_diff(y) <= tolerance)
}

const NAVY: [u8; 3] = [31, 58, 95];
const WIDE: (f32, f32, f32, f32) = (0.5, 0.5, 0.42, 0.2);
const TALL: (f32, f32, f32, f32) = (0.45, 0.52, 0.2, 0.43);

#[test]
fn output_is_exactly_the_canvas_size() {
    let p = photo(1200, 1600, WIDE, NAVY);
    for (w, h) in [(960, 1280), (500, 500), (301, 999), (1000, 200)] {
        let s = GenerationSettings {
            canvas_width: w,
            canvas_height: h,
            ..settings()
        };
        for bg in [
            Background::White,
            Background::Plain { ordinal: 2 },
            Background::Random { seed: 9 },
        ] {
            assert_eq!(draw(&p, bg, &s).dimensions(), (w, h), "{bg:?}");
        }
    }
}

#[test]
fn wide_garment_is_centred_with_padding_on_the_width() {
    let p = photo(1200, 1600, WIDE, NAVY);
    let (left, top, right, bottom) = margins(&draw(&p, Background::White, &no_shadow()), [255; 3]);
    assert!(left.abs_diff(right) <= 3, "left {left} right {right}");
    assert!(top.abs_diff(bottom) <= 3, "top {top} bottom {bottom}");
    // Width is the tighter axis: its margin is padding × canvas width (76.8 px).
    assert!((f64::from(left) - 76.8).abs() <= 3.0, "left margin {left}");
    assert!(top > 300, "top margin {top}");
}

#[test]
fn tall_garment_is_centred_with_padding_on_the_height() {
    let p = photo(1200, 1600, TALL, NAVY);
    let (left, top, right, bottom) = margins(&draw(&p, Background::White, &no_shadow()), [255; 3]);
    assert!(left.abs_diff(right) <= 3, "left {left} right {right}");
    assert!(top.abs_diff(bottom) <= 3, "top {top} bottom {bottom}");
    // Height is the tighter axis: padding × canvas height (102.4 px).
    assert!((f64::from(top) - 102.4).abs() <= 3.0, "top margin {top}");
    assert!(left > 102, "left margin {left}");
}

#[test]
fn white_is_exactly_white_away_from_the_garment_and_its_shadow() {
    let p = photo(1200, 1600, WIDE, NAVY);
    let out = draw(&p, Background::White, &settings());
    // Garment spans rows ≈ 398–882; its shadow reaches a few dozen rows further.
    for (x, y, px) in out.enumerate_pixels() {
        if !(300..=980).contains(&y) || !(40..=920).contains(&x) {
            assert_eq!(px.0, [255, 255, 255], "({x}, {y})");
        }
    }
    // There is a shadow just under the garment's bottom edge.
    let (_, _, _, bottom) = margins(&draw(&p, Background::White, &no_shadow()), [255; 3]);
    let below = 1280 - bottom + 4;
    let shade = out.get_pixel(480, below).0;
    assert!(
        shade[0] < 245 && shade[0] == shade[2],
        "no contact shadow at row {below}: {shade:?}"
    );
}

#[test]
fn garment_keeps_its_colour_on_every_background() {
    let colors = [NAVY, [200, 40, 40], [240, 210, 60], [30, 30, 30]];
    for color in colors {
        let p = photo(1200, 1600, WIDE, color);
        for bg in [
            Background::White,
            Background::Plain { ordinal: 0 },
            Background::Random { seed: 4 },
        ] {
            let out = draw(&p, bg, &settings());
            for (x, y) in [(480, 640), (300, 600), (700, 700)] {
                let got = out.get_pixel(x, y).0;
                assert!(close(got, color, 2), "{bg:?} {color:?} at ({x}, {y}): {got:?}");
            }
        }
    }
}

#[test]
fn old_backdrop_does_not_fringe_the_edge() {
    // A light garment shot on a dark backdrop: any of the backdrop carried along the
    // edge would show as a dark rim on white.
    let yellow = [250, 220, 60];
    let p = photo_on(1200, 1600, WIDE, yellow, [50, 50, 50]);
    let out = draw(&p, Background::White, &no_shadow());
    let darkest_red = (0..960).map(|x| out.get_pixel(x, 640).0[0]).min().unwrap_or(0);
    assert!(darkest_red >= 215, "dark fringe: red falls to {darkest_red}");
}

#[test]
fn plain_backgrounds_are_light_distinct_and_in_the_garment_hue_family() {
    let p = photo(1200, 1600, WIDE, NAVY);
    let garment = srgb_to_oklch(NAVY);
    let mut seen = Vec::new();
    for ordinal in [0u8, 1] {
        let out = draw(&p, Background::Plain { ordinal }, &settings());
        let corner = out.get_pixel(5, 5).0;
        assert_eq!(
            corner,
            plain_color(&p.analysis, ordinal),
            "the background is the plain colour"
        );
        let [l, c, h] = srgb_to_oklch(corner);
        assert!(l > 0.85, "#{ordinal}: L {l}");
        assert!(c < 0.05, "#{ordinal}: C {c}");
        let dh = (h - garment[2]).rem_euclid(360.0);
        assert!(
            dh.min(360.0 - dh) < 40.0,
            "#{ordinal}: hue {h} vs garment {}",
            garment[2]
        );
        seen.push(corner);
    }
    assert_ne!(seen[0], seen[1]);
}

#[test]
fn random_scene_is_deterministic_per_seed_and_varies_across_seeds() {
    let p = photo(600, 800, WIDE, NAVY);
    let s = GenerationSettings {
        canvas_width: 480,
        canvas_height: 640,
        ..settings()
    };
    let a = draw(&p, Background::Random { seed: 11 }, &s);
    assert_eq!(a, draw(&p, Background::Random { seed: 11 }, &s));
    let b = draw(&p, Background::Random { seed: 12 }, &s);
    let diff: u64 = a
        .as_raw()
        .iter()
        .zip(b.as_raw())
        .map(|(&x, &y)| u64::from(x.abs_diff(y)))
        .sum();
    let mean = diff as f64 / a.as_raw().len() as f64;
    assert!(mean > 2.0, "seeds 11 and 12 look alike: mean difference {mean}");
    // The scene behind the garment is the standalone scene.
    let backdrop = scene(480, 640, 11, NAVY);
    assert_eq!(a.get_pixel(3, 3), backdrop.get_pixel(3, 3));
}

#[test]
fn empty_mask_or_box_is_no_foreground() {
    let p = photo(300, 400, WIDE, NAVY);
    let empty = GrayImage::new(p.mask.width(), p.mask.height());
    let err = render(&p.image, &empty, &p.analysis, Background::White, &settings());
    assert!(matches!(err, Err(ImagingError::NoForeground(_))), "{err:?}");

    let mut boxless = p.analysis.clone();
    boxless.bounding_box = BoundingBox {
        x: 0,
        y: 0,
        width: 0,
        height: 0,
    };
    let err = render(&p.image, &p.mask, &boxless, Background::White, &settings());
    assert!(matches!(err, Err(ImagingError::NoForeground(_))), "{err:?}");

    let no_mask = GrayImage::new(0, 0);
    let err = render(
        &p.image,
        &no_mask,
        &p.analysis,
        Background::Random { seed: 1 },
        &settings(),
    );
    assert!(matches!(err, Err(ImagingError::NoForeground(_))), "{err:?}");
}

#[test]
fn unusable_canvas_is_an_error() {
    let p = photo(300, 400, WIDE, NAVY);
    let s = GenerationSettings {
        canvas_width: 0,
        ..settings()
    };
    assert!(matches!(
        render(&p.image, &p.mask, &p.analysis, Background::White, &s),
        Err(ImagingError::Resize(_))
    ));
}

#[test]
fn tiny_and_odd_sizes_work() {
    for (w, h) in [(1, 1), (2, 3), (7, 500), (500, 7), (33, 17)] {
        // The whole frame is garment.
        let image = RgbImage::from_pixel(w, h, Rgb(NAVY));
        let mask = GrayImage::from_pixel(w.div_ceil(2), h.div_ceil(2), Luma([255]));
        let bbox = BoundingBox {
            x: 0,
            y: 0,
            width: w,
            height: h,
        };
        let a = analysis(w, h, bbox, NAVY);
        for (cw, ch) in [(1, 1), (2, 3), (961, 1279), (64, 7)] {
            let s = GenerationSettings {
                canvas_width: cw,
                canvas_height: ch,
                ..settings()
            };
            for bg in [
                Background::White,
                Background::Plain { ordinal: 200 },
                Background::Random { seed: u64::MAX },
            ] {
                let out = render(&image, &mask, &a, bg, &s).expect("render");
                assert_eq!(out.dimensions(), (cw, ch), "{w}x{h} → {cw}x{ch} {bg:?}");
            }
        }
    }
}

#[test]
fn box_outside_the_photo_is_clipped_not_a_panic() {
    let p = photo(300, 400, WIDE, NAVY);
    let mut a = p.analysis.clone();
    a.bounding_box = BoundingBox {
        x: 250,
        y: 350,
        width: 1000,
        height: 1000,
    };
    // The clipped box still holds part of the ellipse's edge.
    let out = render(&p.image, &p.mask, &a, Background::White, &settings());
    assert!(matches!(out, Ok(_) | Err(ImagingError::NoForeground(_))));
}

#[test]
fn fixture_garment_is_cut_out_centred_and_true_to_colour() {
    let g = atelier_fixtures::render(&Scene::example(GarmentShape::TShirt, 1200, 1600, 5));
    let (mw, mh) = resize::fit_within(1200, 1600, 1024);
    let mask = resize::gray(&g.mask, mw, mh, Filter::Bilinear).expect("mask");
    let (x, y, w, h) = g.bbox;
    let a = analysis(
        1200,
        1600,
        BoundingBox {
            x,
            y,
            width: w,
            height: h,
        },
        g.fabric,
    );
    let out = render(&g.image, &mask, &a, Background::White, &no_shadow()).expect("render");
    let (left, top, right, bottom) = margins(&out, [255; 3]);
    assert!(
        left.abs_diff(right) <= 4 && top.abs_diff(bottom) <= 4,
        "{left} {top} {right} {bottom}"
    );
    // The middle of the shirt is its fabric (folds shade it a little).
    let centre = out.get_pixel(480, 640).0;
    let [l, ..] = srgb_to_oklch(centre);
    let [lf, ..] = srgb_to_oklch(g.fabric);
    assert!(
        (l - lf).abs() < 0.08,
        "centre {centre:?} vs fabric {:?}",
        g.fabric
    );
    // Nothing of the grey studio backdrop survives on the white canvas.
    assert_eq!(out.get_pixel(10, 10).0, [255, 255, 255]);
}

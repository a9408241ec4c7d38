//! Generation benchmarks: one variation (white, plain, random) into the default
//! 960×1280 canvas from a 1200×1600 and a 2048×2048 synthetic photo, plus the blur
//! and the backdrop alone.
//!
//! Run with `cargo bench -p atelier-imaging --bench generate`.

use std::hint::black_box;
use std::time::Duration;

use atelier_core::analysis::{BoundingBox, ColorShare, Exposure, ImageAnalysis, MaskSource, hex};
use atelier_core::settings::GenerationSettings;
use atelier_fixtures::{GarmentShape, Scene};
use atelier_imaging::filter;
use atelier_imaging::generate::{self, Background};
use atelier_imaging::resize::{self, Filter};
use criterion::{Criterion, criterion_group, criterion_main};
use image::{GrayImage, RgbImage};

/// A fixture photo with its mask at the analysis's working size and a matching
/// analysis, as the generation stage receives them.
fn input(shape: GarmentShape, w: u32, h: u32) -> (RgbImage, GrayImage, ImageAnalysis) {
    let g = atelier_fixtures::render(&Scene::example(shape, w, h, 1));
    let (mw, mh) = resize::fit_within(w, h, 1024);
    let mask = resize::gray(&g.mask, mw, mh, Filter::Bilinear).expect("mask resize");
    let (x, y, width, height) = g.bbox;
    let analysis = ImageAnalysis {
        width: w,
        height: h,
        mask_source: MaskSource::Backdrop,
        bounding_box: BoundingBox { x, y, width, height },
        coverage: 0.3,
        mask_confidence: 1.0,
        backdrop_color: "#e6e4df".into(),
        palette: vec![ColorShare {
            hex: hex(g.fabric),
            share: 0.9,
        }],
        exposure: Exposure {
            mean_luminance: 0.7,
            clipped_shadows: 0.0,
            clipped_highlights: 0.0,
        },
        sharpness: 100.0,
        ai: None,
    };
    (g.image, mask, analysis)
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

fn render(c: &mut Criterion) {
    let s = settings();
    for (label, shape, w, h) in [
        ("1200x1600", GarmentShape::TShirt, 1200, 1600),
        ("2048x2048", GarmentShape::Dress, 2048, 2048),
    ] {
        let (src, mask, analysis) = input(shape, w, h);
        let mut group = c.benchmark_group(format!("generate/{label}"));
        group
            .sample_size(10)
            .warm_up_time(Duration::from_millis(500))
            .measurement_time(Duration::from_secs(2));
        for (name, bg) in [
            ("white", Background::White),
            ("plain", Background::Plain { ordinal: 1 }),
            ("random", Background::Random { seed: 7 }),
        ] {
            group.bench_function(name, |b| {
                b.iter(|| generate::render(black_box(&src), &mask, &analysis, bg, &s).expect("render"))
            });
        }
        group.finish();
    }
}

fn parts(c: &mut Criterion) {
    let mut group = c.benchmark_group("generate/parts");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    group.bench_function("scene 960x1280", |b| {
        b.iter(|| generate::scene(960, 1280, black_box(7), [38, 62, 110]))
    });
    let (_, mask, _) = input(GarmentShape::TShirt, 960, 1280);
    group.bench_function("gaussian sigma 1.5 960x1280", |b| {
        b.iter(|| filter::gaussian_blur_gray(black_box(&mask), 1.5))
    });
    group.bench_function("wide blur sigma 24 960x1280", |b| {
        b.iter(|| filter::wide_blur_gray(black_box(&mask), 24.0).expect("blur"))
    });
    group.finish();
}

criterion_group!(benches, render, parts);
criterion_main!(benches);

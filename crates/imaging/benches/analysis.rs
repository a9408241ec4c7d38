//! Local garment analysis on synthetic product photos (garment on a gradient
//! backdrop with vignette, shadow and noise), at 1024², 2048² and the 1200×1600
//! size of the bundled examples, plus the fixture renderer itself.
//!
//! `cargo bench -p atelier-imaging --bench analysis` (about half a minute).

use std::hint::black_box;
use std::time::Duration;

use atelier_core::settings::Settings;
use atelier_fixtures::{GarmentShape, Scene, render};
use atelier_imaging::analysis::analyze;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

fn config() -> Criterion {
    Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
}

fn bench_analysis(c: &mut Criterion) {
    let settings = Settings::defaults().analysis;
    let mut group = c.benchmark_group("analysis");
    for (w, h) in [(1024u32, 1024u32), (1200, 1600), (2048, 2048)] {
        let photo = render(&Scene::example(GarmentShape::TShirt, w, h, 7)).image;
        group.throughput(Throughput::Elements(u64::from(w) * u64::from(h)));
        group.bench_function(format!("analyze_{w}x{h}"), |b| {
            b.iter(|| analyze(black_box(&photo), None, &settings).expect("a garment is found"))
        });
    }
    group.finish();
}

fn bench_fixtures(c: &mut Criterion) {
    let mut group = c.benchmark_group("fixtures");
    let scene = Scene::example(GarmentShape::Dress, 2048, 2048, 3);
    group.bench_function("render_2048x2048", |b| b.iter(|| render(black_box(&scene))));
    group.finish();
}

criterion_group! {
    name = benches;
    config = config();
    targets = bench_analysis, bench_fixtures
}
criterion_main!(benches);

//! The local cut-out (the whole `analyze` call, which is what a job pays for one
//! input) on a hard studio photo (white t-shirt on a white sweep) at 2, 12 and
//! 24 megapixels.
//!
//! `cargo bench -p atelier-imaging --bench cutout` (about a minute).

use std::hint::black_box;
use std::time::Duration;

use atelier_core::settings::Settings;
use atelier_fixtures::{Kind, studio};
use atelier_imaging::analysis::analyze;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

fn config() -> Criterion {
    Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3))
}

fn bench_cutout(c: &mut Criterion) {
    let settings = Settings::defaults().analysis;
    let mut group = c.benchmark_group("cutout");
    // 3:4 frames of about 2, 12 and 24 MP.
    for (w, h, label) in [
        (1224u32, 1632u32, "2MP"),
        (3000, 4000, "12MP"),
        (4242, 5656, "24MP"),
    ] {
        let photo = studio(Kind::WhiteOnWhite, w, h, 1).image;
        group.throughput(Throughput::Elements(u64::from(w) * u64::from(h)));
        group.bench_function(format!("analyze_{label}_{w}x{h}"), |b| {
            b.iter(|| analyze(black_box(&photo), None, &settings).expect("a garment is found"))
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = config();
    targets = bench_cutout
}
criterion_main!(benches);

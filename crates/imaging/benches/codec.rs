//! Decode and upscale benchmarks on generated photo-like inputs.
//!
//! `cargo bench -p atelier-imaging --bench codec` (a couple of minutes). The
//! `decode_jpeg_4mp` group keeps the measurement behind decoding JPEG with
//! libjpeg-turbo rather than the `image` crate's zune-jpeg; `upscale_pipeline` is
//! the in-memory part of `atelier upscale` (decode, ×2, sharpen, encode q90).

use std::hint::black_box;
use std::time::Duration;

use atelier_core::settings::Settings;
use atelier_imaging::{decode, encode, upscale};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use image::{Rgb, RgbImage};

/// Smooth gradients, a woven-fabric-like texture and grain: JPEG sizes and decode
/// costs close to a real product photo (flat synthetic images flatter every codec).
fn photo(w: u32, h: u32) -> RgbImage {
    let mut seed = 0x9E37_79B9u32;
    RgbImage::from_fn(w, h, |x, y| {
        seed ^= seed << 13;
        seed ^= seed >> 17;
        seed ^= seed << 5;
        let grain = (seed >> 27) as f32 - 16.0;
        let (fx, fy) = (x as f32 / w as f32, y as f32 / h as f32);
        let weave = (x as f32 * 0.9).sin() * (y as f32 * 0.7).cos() * 14.0;
        let folds = ((fx * 9.0 + fy * 4.0).sin() * 30.0) * (1.0 - fy);
        let c = |v: f32| v.clamp(0.0, 255.0) as u8;
        Rgb([
            c(70.0 + 140.0 * fx + folds + weave + grain),
            c(90.0 + 90.0 * fy + folds - weave + grain),
            c(170.0 - 70.0 * fx * fy + folds + grain),
        ])
    })
}

fn jpeg_of(side: u32) -> Vec<u8> {
    encode::jpeg(&photo(side, side), 90).expect("encode fixture")
}

fn config() -> Criterion {
    Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
}

fn bench_decode(c: &mut Criterion) {
    let limits = Settings::defaults().limits;
    let mut group = c.benchmark_group("decode");
    for side in [1024u32, 2048] {
        let bytes = jpeg_of(side);
        group.throughput(Throughput::Elements(u64::from(side * side)));
        group.bench_with_input(BenchmarkId::new("jpeg", side), &bytes, |b, bytes| {
            b.iter(|| decode::decode(black_box(bytes), &limits).expect("decode"))
        });
    }
    let png = {
        let img = photo(1024, 1024);
        let mut out = Vec::new();
        image::ImageEncoder::write_image(
            image::codecs::png::PngEncoder::new(&mut out),
            img.as_raw(),
            1024,
            1024,
            image::ExtendedColorType::Rgb8,
        )
        .expect("png fixture");
        out
    };
    group.bench_function("png/1024", |b| {
        b.iter(|| decode::decode(black_box(&png), &limits).expect("decode"))
    });
    group.finish();

    // The measured decision: libjpeg-turbo against the `image` crate (zune-jpeg).
    let bytes = jpeg_of(2048);
    let mut group = c.benchmark_group("decode_jpeg_4mp");
    group.bench_function("image_zune", |b| {
        b.iter(|| {
            image::load_from_memory(black_box(&bytes))
                .expect("decode")
                .into_rgb8()
        })
    });
    group.bench_function("turbojpeg", |b| {
        b.iter(|| turbojpeg::decompress(black_box(&bytes), turbojpeg::PixelFormat::RGB).expect("decode"))
    });
    group.bench_function("atelier_decode", |b| {
        b.iter(|| decode::decode(black_box(&bytes), &limits).expect("decode"))
    });
    group.finish();
}

fn bench_upscale(c: &mut Criterion) {
    let sharpen = Settings::defaults().upscaler.sharpen;
    let mut group = c.benchmark_group("upscale");
    for (side, factor) in [(1024u32, 2u32), (1024, 4), (2048, 2)] {
        let img = photo(side, side);
        group.throughput(Throughput::Elements(u64::from(side * side * factor * factor)));
        group.bench_with_input(BenchmarkId::new(format!("x{factor}"), side), &img, |b, img| {
            b.iter(|| upscale::upscale(black_box(img), factor, sharpen).expect("upscale"))
        });
    }
    group.finish();

    let mut group = c.benchmark_group("sharpen");
    let big = upscale::upscale(&photo(1024, 1024), 2, 0.0).expect("upscale");
    group.bench_function("4mp", |b| {
        b.iter_batched_ref(
            || big.clone(),
            |img| upscale::sharpen(img, sharpen),
            criterion::BatchSize::LargeInput,
        )
    });
    group.finish();

    let limits = Settings::defaults().limits;
    let bytes = jpeg_of(1024);
    let mut group = c.benchmark_group("upscale_pipeline");
    group.bench_function("x2_1024_jpeg_q90", |b| {
        b.iter(|| {
            let decoded = decode::decode(black_box(&bytes), &limits).expect("decode");
            let up = upscale::upscale(&decoded.rgb, 2, sharpen).expect("upscale");
            encode::jpeg(&up, 90).expect("encode")
        })
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = config();
    targets = bench_decode, bench_upscale
}
criterion_main!(benches);

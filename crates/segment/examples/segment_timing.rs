//! Times the segmentation path on this machine with the generated test model:
//! start-up (read, optimise, warm up) and one photo's map (resize to S×S,
//! normalise, run, sigmoid check), at S = 320 and 1024, next to the classic
//! cut-out and the model-prior cut-out of the same photo.
//!
//!     nice -n 10 cargo run --example segment_timing
//!
//! The saliency test model is one 1×1 convolution: its figures are the fixed
//! cost of the path around a network. The last two lines time a graph of
//! U²-Netp's layer structure with random weights: what a real network adds.

#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::time::{Duration, Instant};

use atelier_core::settings::{SegmenterKind, Settings};
use atelier_fixtures::{GarmentShape, Scene};
use atelier_imaging::analysis;
use atelier_segment::test_models::{self, Kind};
use atelier_segment::{InputSpec, OnnxSegmenter};

/// Timed runs per figure (the median is reported).
const RUNS: usize = 15;

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn time<T>(mut f: impl FnMut() -> T) -> Duration {
    let runs = (0..RUNS)
        .map(|_| {
            let t = Instant::now();
            std::hint::black_box(f());
            t.elapsed()
        })
        .collect();
    median(runs)
}

fn main() {
    let dir = tempfile::tempdir().expect("tempdir");
    let defaults = Settings::defaults().analysis;
    let photo = atelier_fixtures::render(&Scene::example(GarmentShape::TShirt, 1536, 2048, 7)).image;
    let (ww, wh) =
        atelier_imaging::resize::fit_within(photo.width(), photo.height(), defaults.working_max_side);
    let work =
        atelier_imaging::resize::rgb(&photo, ww, wh, atelier_imaging::resize::Filter::Box).expect("work");
    println!(
        "photo {}x{}, working copy {ww}x{wh}, median of {RUNS} runs",
        photo.width(),
        photo.height()
    );
    let classic = time(|| analysis::analyze(&photo, None, &defaults).expect("classic"));
    println!("classic analysis (whole photo):          {classic:>10.1?}");
    for size in [320, 1024] {
        let spec = InputSpec {
            size,
            ..InputSpec::from_settings(&defaults)
        };
        let path = dir.path().join(format!("saliency-{size}.onnx"));
        test_models::write(&path, Kind::Saliency, &spec).expect("model");
        let started = Instant::now();
        let model = OnnxSegmenter::load(&path, spec).expect("load");
        let load = started.elapsed();
        let map = time(|| model.map(&work).expect("map"));
        let mut settings = defaults.clone();
        settings.segmenter = SegmenterKind::Onnx;
        settings.onnx_input_size = size;
        let whole =
            time(|| analysis::analyze_with_prior(&photo, None, &settings, Some(&model)).expect("analysis"));
        println!("S = {size:>4}: load + optimise + warm-up  {load:>10.1?}");
        println!("S = {size:>4}: map of the working copy    {map:>10.1?}");
        println!("S = {size:>4}: analysis with the prior    {whole:>10.1?}");
    }
    // A network of U²-Netp's shape (random weights) at its 320²: what a real
    // model adds on top of the path.
    let spec = InputSpec {
        size: 320,
        ..InputSpec::from_settings(&defaults)
    };
    let path = dir.path().join("u2netp-like.onnx");
    test_models::write(&path, Kind::U2netpLike, &spec).expect("model");
    let started = Instant::now();
    let model = OnnxSegmenter::load(&path, spec).expect("load");
    let load = started.elapsed();
    let map = time(|| model.map(&work).expect("map"));
    println!("U²-Netp-shaped, S = 320: load + optimise + warm-up {load:>10.1?}");
    println!("U²-Netp-shaped, S = 320: map of the working copy   {map:>10.1?}");
}

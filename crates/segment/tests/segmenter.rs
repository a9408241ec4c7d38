//! The loading, checking and inference path of `OnnxSegmenter`, on models the
//! crate writes itself (`atelier_segment::test_models`).

use std::path::{Path, PathBuf};

use atelier_core::analysis::MaskSource;
use atelier_core::settings::{AnalysisSettings, SegmenterKind, Settings};
use atelier_imaging::analysis;
use atelier_segment::test_models::{self, Kind};
use atelier_segment::{InputSpec, OnnxSegmenter, SegmentError};
use image::{Rgb, RgbImage};

const SIDE: u32 = 64;
const GARMENT: [u8; 3] = [40, 50, 70];
const SWEEP: [u8; 3] = [236, 234, 230];

fn spec(size: u32) -> InputSpec {
    InputSpec::from_settings(&onnx_settings(size))
}

/// The default `[analysis]` switched to a model of input side `size`.
fn onnx_settings(size: u32) -> AnalysisSettings {
    AnalysisSettings {
        segmenter: SegmenterKind::Onnx,
        onnx_input_size: size,
        ..Settings::defaults().analysis
    }
}

fn written(dir: &Path, kind: Kind, model_side: u32) -> PathBuf {
    let path = dir.join(format!("{kind:?}-{model_side}.onnx"));
    test_models::write(&path, kind, &spec(model_side)).expect("write model");
    path
}

/// A dark garment in the middle 50 % × 60 % of a light sweep.
fn photo(width: u32, height: u32) -> RgbImage {
    RgbImage::from_fn(width, height, |x, y| {
        let inside = (width / 4..width * 3 / 4).contains(&x) && (height / 5..height * 4 / 5).contains(&y);
        Rgb(if inside { GARMENT } else { SWEEP })
    })
}

/// Checks a map of the [`photo`] against the saliency model's known answer.
fn assert_matches_photo(map: &image::GrayImage) {
    let (w, h) = map.dimensions();
    let inside = test_models::expected(GARMENT);
    let outside = test_models::expected(SWEEP);
    assert!(inside > 0.95 && outside < 0.05, "{inside} {outside}");
    for (x, y, v) in map.enumerate_pixels() {
        // Skip the resize's one-pixel blend at the garment's edge.
        let near_edge = [w / 4, w * 3 / 4].iter().any(|&e| x.abs_diff(e) <= 1)
            || [h / 5, h * 4 / 5].iter().any(|&e| y.abs_diff(e) <= 1);
        if near_edge {
            continue;
        }
        let is_inside = (w / 4..w * 3 / 4).contains(&x) && (h / 5..h * 4 / 5).contains(&y);
        let want = if is_inside { inside } else { outside };
        let got = f32::from(v[0]) / 255.0;
        assert!((got - want).abs() < 0.02, "({x}, {y}): {got} vs {want}");
    }
}

#[test]
fn segmenter_saliency_model_lights_up_the_garment() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = written(dir.path(), Kind::Saliency, SIDE);
    let model = OnnxSegmenter::load(&path, spec(SIDE)).expect("load");
    // Any photo size: it is resized to the model's input.
    let prior = model.map(&photo(3 * SIDE, 2 * SIDE)).expect("map");
    assert_eq!(prior.map().dimensions(), (SIDE, SIDE));
    assert_matches_photo(prior.map());
}

#[test]
fn segmenter_applies_a_sigmoid_to_logits_and_accepts_a_rank3_map() {
    let dir = tempfile::tempdir().expect("tempdir");
    let reference = OnnxSegmenter::load(&written(dir.path(), Kind::Saliency, SIDE), spec(SIDE))
        .expect("load")
        .map(&photo(SIDE, SIDE))
        .expect("map");
    for kind in [Kind::Logits, Kind::Rank3Output] {
        let model = OnnxSegmenter::load(&written(dir.path(), kind, SIDE), spec(SIDE)).expect("load");
        let prior = model.map(&photo(SIDE, SIDE)).expect("map");
        for (a, b) in prior.map().pixels().zip(reference.map().pixels()) {
            assert!(a[0].abs_diff(b[0]) <= 1, "{kind:?}: {} vs {}", a[0], b[0]);
        }
    }
}

/// The start-up error of a model, as text, after checking it names the setting and the file.
fn startup_error(path: &Path, spec: InputSpec) -> (SegmentError, String) {
    let error = OnnxSegmenter::load(path, spec).expect_err("must not load");
    let text = error.to_string();
    assert!(text.contains("analysis.onnx_model"), "{text}");
    assert!(text.contains(&path.display().to_string()), "{text}");
    (error, text)
}

#[test]
fn segmenter_refuses_wrong_shapes_at_start_up() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (error, text) = startup_error(&written(dir.path(), Kind::RgbOutput, SIDE), spec(SIDE));
    assert!(matches!(error, SegmentError::Shape { .. }), "{error:?}");
    assert!(text.contains("1,3,64,64"), "names the output found: {text}");

    let (error, text) = startup_error(&written(dir.path(), Kind::Rank3Input, SIDE), spec(SIDE));
    assert!(matches!(error, SegmentError::Shape { .. }), "{error:?}");
    assert!(text.contains("input 3,64,64"), "names the input found: {text}");

    // A model exported for 64² with analysis.onnx_input_size = 32.
    let (error, text) = startup_error(&written(dir.path(), Kind::Saliency, SIDE), spec(SIDE / 2));
    assert!(matches!(error, SegmentError::Shape { .. }), "{error:?}");
    assert!(text.contains("onnx_input_size = 32"), "{text}");
}

#[test]
fn segmenter_refuses_missing_and_corrupt_files_at_start_up() {
    let dir = tempfile::tempdir().expect("tempdir");
    let missing = dir.path().join("nope.onnx");
    let (error, _) = startup_error(&missing, spec(SIDE));
    assert!(matches!(error, SegmentError::Read { .. }), "{error:?}");

    let corrupt = dir.path().join("corrupt.onnx");
    std::fs::write(&corrupt, b"\x08\x07 this is not a protobuf \xff\xff\xff").expect("write");
    let (error, _) = startup_error(&corrupt, spec(SIDE));
    assert!(matches!(error, SegmentError::Load { .. }), "{error:?}");
}

#[test]
fn segmenter_identity_follows_the_file_contents() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("model.onnx");
    test_models::write(&path, Kind::Saliency, &spec(SIDE)).expect("write");
    let first = OnnxSegmenter::load(&path, spec(SIDE)).expect("load").identity();
    test_models::write(&path, Kind::Logits, &spec(SIDE)).expect("write");
    let second = OnnxSegmenter::load(&path, spec(SIDE)).expect("load").identity();
    assert_ne!(first, second, "same path, new model: a new cache identity");
}

#[test]
fn segmenter_prior_drives_the_local_cut_out() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut settings = onnx_settings(SIDE);
    settings.working_max_side = 256;
    settings.onnx_model = written(dir.path(), Kind::Saliency, SIDE).display().to_string();
    let model = OnnxSegmenter::from_settings(&settings).expect("load");
    let img = photo(400, 300);
    let a = analysis::analyze_with_prior(&img, None, &settings, Some(&model)).expect("analysis");
    assert_eq!(a.analysis.mask_source, MaskSource::Model);
    let b = a.analysis.bounding_box;
    let near = |v: u32, want: u32| v.abs_diff(want) <= 4;
    assert!(
        near(b.x, 100) && near(b.y, 60) && near(b.width, 200) && near(b.height, 180),
        "{b:?}"
    );
    assert!(a.analysis.mask_confidence > 0.5, "{}", a.analysis.mask_confidence);
}

#[test]
fn segmenter_cut_out_of_a_garment_photo_matches_its_truth() {
    use atelier_fixtures::{GarmentShape, Scene};
    let dir = tempfile::tempdir().expect("tempdir");
    let mut settings = onnx_settings(320);
    settings.onnx_model = written(dir.path(), Kind::Saliency, 320).display().to_string();
    let model = OnnxSegmenter::from_settings(&settings).expect("load");
    for (shape, seed) in [
        (GarmentShape::TShirt, 3),
        (GarmentShape::Trousers, 4),
        (GarmentShape::LongSleeve, 5),
    ] {
        let truth = atelier_fixtures::render(&Scene::example(shape, 600, 800, seed));
        let a = analysis::analyze_with_prior(&truth.image, None, &settings, Some(&model)).expect("analysis");
        assert_eq!(a.analysis.mask_source, MaskSource::Model);
        let iou = atelier_fixtures::iou(&a.mask, &truth.mask);
        assert!(iou >= 0.9, "{shape:?}: IoU {iou:.3}");
    }
}

#[test]
fn segmenter_runs_a_network_of_u2netp_shape() {
    // Dilated 3×3 convolutions, ceil-mode pooling, bilinear Resize, Concat and
    // residual adds: the operators a real U²-Netp export uses, at its 320².
    let dir = tempfile::tempdir().expect("tempdir");
    let path = written(dir.path(), Kind::U2netpLike, 320);
    let model = OnnxSegmenter::load(&path, spec(320)).expect("load");
    let prior = model.map(&photo(480, 640)).expect("map");
    assert_eq!(prior.map().dimensions(), (320, 320));
}

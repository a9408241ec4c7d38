//! `atelier process` and `atelier upscale` run as real processes.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use atelier_core::settings::Settings;
use atelier_fixtures::{GarmentShape, Scene};
use calamine::{Reader, Xlsx};
use serde_json::Value;

fn atelier(args: &[&str], cwd: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_atelier"))
        .args(args)
        .current_dir(cwd)
        // Small canvases keep the test quick; the code paths are the same.
        .env("ATELIER__GENERATION__CANVAS_WIDTH", "480")
        .env("ATELIER__GENERATION__CANVAS_HEIGHT", "640")
        .env("ATELIER__VIDEO__WIDTH", "240")
        .env("ATELIER__VIDEO__HEIGHT", "320")
        .output()
        .expect("atelier runs")
}

fn write_photo(dir: &Path, name: &str, shape: GarmentShape) -> PathBuf {
    let garment = atelier_fixtures::render(&Scene::example(shape, 600, 800, 11));
    let path = dir.join(name);
    std::fs::write(&path, atelier_fixtures::jpeg(&garment.image, 90)).expect("write photo");
    path
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn image_size(path: &Path) -> (u32, u32) {
    image::image_dimensions(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn process_writes_every_artefact_and_a_result_in_the_api_shape() {
    let dir = tempfile::tempdir().expect("tmp");
    write_photo(dir.path(), "shirt.jpg", GarmentShape::TShirt);
    let out = atelier(
        &[
            "process",
            "shirt.jpg",
            "--out",
            "out",
            "--upscale",
            "2",
            "--view",
            "front",
            "--text",
            "linen",
        ],
        dir.path(),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("post_processing"),
        "timings table printed: {}",
        stderr(&out)
    );
    let root = dir.path().join("out");
    let result: Value =
        serde_json::from_slice(&std::fs::read(root.join("result.json")).expect("result.json")).expect("json");

    assert_eq!(result["status"], "completed");
    assert!(result["request_id"].as_str().is_some_and(|s| s.len() == 36));
    let variations = result["image_variations"].as_array().expect("variations");
    assert_eq!(variations.len(), 3);
    for (i, (v, kind)) in variations.iter().zip(["white", "plain", "random"]).enumerate() {
        assert_eq!(v["background"], kind);
        assert_eq!(v["input"], 0);
        assert_eq!(v["view"], "front");
        assert_eq!(v["url"], format!("variations/{i}.jpg"));
        assert_eq!(
            (v["width"].as_u64(), v["height"].as_u64()),
            (Some(480), Some(640))
        );
        assert_eq!(
            image_size(&root.join(v["url"].as_str().expect("url"))),
            (480, 640)
        );
    }
    let upscaled = result["upscale_image"].as_array().expect("upscales");
    assert_eq!(upscaled.len(), 3);
    for (i, u) in upscaled.iter().enumerate() {
        assert_eq!(u["variation"], i);
        assert_eq!(u["factor"], 2);
        assert_eq!(
            image_size(&root.join(u["url"].as_str().expect("url"))),
            (960, 1280)
        );
    }
    assert_eq!(result["video_url"], "video.mp4");
    assert_eq!(result["excel_url"], "report.xlsx");
    let analysis = &result["analysis"][0];
    assert!(
        analysis["dominant_colors"][0]
            .as_str()
            .is_some_and(|c| c.starts_with('#') && c.len() == 7)
    );
    for key in ["bounding_box", "coverage", "exposure", "sharpness", "palette"] {
        assert!(analysis.get(key).is_some(), "analysis.{key} missing");
    }
    let times = &result["metadata"]["processing_times"];
    for key in [
        "queue_wait",
        "analysis",
        "generation",
        "upscaling",
        "post_processing",
        "saving",
        "total",
    ] {
        assert!(
            times[key].as_f64().is_some_and(|t| t >= 0.0),
            "processing_times.{key}: {times}"
        );
    }

    let settings = {
        let mut s = Settings::defaults();
        s.video.width = 240;
        s.video.height = 320;
        s
    };
    let video = atelier_video::probe(&root.join("video.mp4")).expect("video decodes");
    assert_eq!((video.width, video.height), (240, 320));
    assert_eq!(video.frames, atelier_video::frame_count(3, &settings.video));
    let expected = 3.0 * f64::from(settings.video.seconds_per_image);
    assert!((video.duration_seconds - expected).abs() < 0.05, "{video:?}");

    let mut book: Xlsx<_> = calamine::open_workbook(root.join("report.xlsx")).expect("report opens");
    let images = book.worksheet_range("Images").expect("Images sheet");
    assert_eq!(
        images.height(),
        1 + 3 + 3,
        "header, three variations, three upscales"
    );
}

#[test]
fn images_only_makes_no_video_or_report() {
    let dir = tempfile::tempdir().expect("tmp");
    write_photo(dir.path(), "dress.jpg", GarmentShape::Dress);
    let out = atelier(
        &[
            "process",
            "dress.jpg",
            "--out",
            "o",
            "--images-only",
            "--backgrounds",
            "0,1,0",
        ],
        dir.path(),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let result: Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("o/result.json")).expect("read"))
            .expect("json");
    assert_eq!(result["image_variations"].as_array().map(Vec::len), Some(1));
    assert!(result.get("video_url").is_none() && result.get("excel_url").is_none());
    assert!(!dir.path().join("o/video.mp4").exists());
}

#[test]
fn bad_inputs_name_the_file_and_the_reason() {
    let dir = tempfile::tempdir().expect("tmp");
    std::fs::write(dir.path().join("notes.jpg"), b"these are not pixels").expect("write");
    let tiny = image::RgbImage::from_pixel(40, 40, image::Rgb([200, 10, 10]));
    tiny.save(dir.path().join("tiny.png")).expect("write png");
    write_photo(dir.path(), "ok.jpg", GarmentShape::TShirt);

    let cases: [(&[&str], &str); 5] = [
        (&["process", "missing.jpg", "--out", "o"], "missing.jpg"),
        (
            &["process", "notes.jpg", "--out", "o"],
            "notes.jpg: unsupported image format",
        ),
        (
            &["process", "ok.jpg", "tiny.png", "--out", "o"],
            "tiny.png: image too small",
        ),
        (
            &["process", "ok.jpg", "--out", "o", "--backgrounds", "0,0,0"],
            "--backgrounds",
        ),
        (
            &["process", "ok.jpg", "--out", "o", "--backgrounds", "1,9,0"],
            "--backgrounds",
        ),
    ];
    for (args, expected) in cases {
        let out = atelier(args, dir.path());
        assert!(!out.status.success(), "{args:?} should fail");
        assert!(stderr(&out).contains(expected), "{args:?}: {}", stderr(&out));
        assert!(!stderr(&out).contains("panicked"), "{args:?}: {}", stderr(&out));
    }
    assert!(
        !dir.path().join("o/result.json").exists(),
        "no partial result for refused inputs"
    );
}

#[test]
fn upscale_doubles_an_image() {
    let dir = tempfile::tempdir().expect("tmp");
    write_photo(dir.path(), "in.jpg", GarmentShape::Trousers);
    let out = atelier(&["upscale", "in.jpg", "big.jpg", "--factor", "2"], dir.path());
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(image_size(&dir.path().join("big.jpg")), (1200, 1600));
    let out = atelier(&["upscale", "in.jpg", "big.png", "--factor", "4"], dir.path());
    assert!(
        !out.status.success() && stderr(&out).contains("big.png"),
        "{}",
        stderr(&out)
    );
    let out = atelier(&["upscale", "in.jpg", "big.jpg", "--factor", "3"], dir.path());
    assert!(!out.status.success());
}

#[test]
fn atelier_itself_does_not_link_ffmpeg_only_its_video_helper_does() {
    let linked = |binary: &str| {
        let out = Command::new("ldd").arg(binary).output().expect("ldd runs");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let atelier = linked(env!("CARGO_BIN_EXE_atelier"));
    assert!(
        !atelier.contains("libavcodec"),
        "atelier links FFmpeg:\n{atelier}"
    );
    assert!(linked(env!("CARGO_BIN_EXE_atelier-video")).contains("libavcodec"));
}

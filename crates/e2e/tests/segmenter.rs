//! The pluggable segmentation model end to end, on both targets: with
//! `analysis.segmenter = "onnx"` and a model the repository writes itself
//! (`atelier_segment::test_models`), a job's analysis says `mask_source:
//! "model"` and finds the garment; a wrong-shaped model stops the analysis
//! worker (stack) or `atelier serve` at start-up with a message naming
//! `analysis.onnx_model`, and a non-zero exit.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use atelier_e2e::{Options, System, Target, bin_dir, data_uri, free_port, on_both_targets, photo};
use atelier_fixtures::{GarmentShape, Scene};
use atelier_segment::InputSpec;
use atelier_segment::test_models::{self, Kind};
use serde_json::json;

on_both_targets!(segmenter_onnx_masks_the_job, segmenter_wrong_model_stops_start_up);

/// Input side of the test models: small, the code path is the same at 320².
const MODEL_SIDE: u32 = 64;
/// Longest wait for a service with a bad model to exit.
const EXIT_TIMEOUT: Duration = Duration::from_secs(60);

/// Writes a `kind` model into `dir`; returns the `ATELIER__ANALYSIS__*` settings that use it.
fn onnx_env(dir: &Path, kind: Kind) -> Vec<(String, String)> {
    let path = dir.join(format!("{kind:?}.onnx"));
    let defaults = atelier_core::settings::Settings::defaults().analysis;
    let spec = InputSpec {
        size: MODEL_SIDE,
        ..InputSpec::from_settings(&defaults)
    };
    test_models::write(&path, kind, &spec).expect("write the model");
    [
        ("ATELIER__ANALYSIS__SEGMENTER", "onnx".to_string()),
        ("ATELIER__ANALYSIS__ONNX_MODEL", path.display().to_string()),
        ("ATELIER__ANALYSIS__ONNX_INPUT_SIZE", MODEL_SIDE.to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

async fn segmenter_onnx_masks_the_job(target: Target) {
    let models = tempfile::tempdir().expect("tmp");
    let options = Options {
        env: onnx_env(models.path(), Kind::Saliency),
        ..Options::default()
    };
    let sys = System::start(target, options).await;
    let seed = 31;
    let body = json!({
        "inputImages": [ { "url": data_uri(&photo(GarmentShape::TShirt, seed)), "view": "front", "backgrounds": [1, 0, 0] } ],
        "productType": "tops",
        "gender": "unisex",
        "text": "model mask"
    });
    let (code, result) = sys.post(0, "/api/v1/generate/image", &body, &[]).await;
    assert_eq!(code, 200, "{result}\n{}", sys.logs());
    let analysis = &result["analysis"][0];
    assert_eq!(analysis["mask_source"], "model", "{analysis}");
    assert!(analysis["mask_confidence"].as_f64() > Some(0.5), "{analysis}");

    // The box is the garment's (the photo's truth, from the same generator).
    let truth = atelier_fixtures::render(&Scene::example(GarmentShape::TShirt, 480, 640, seed));
    let (x, y, w, h) = truth.bbox;
    let b = &analysis["bounding_box"];
    let near =
        |got: &serde_json::Value, want: u32| got.as_u64().is_some_and(|g| g.abs_diff(u64::from(want)) <= 8);
    assert!(
        near(&b["x"], x) && near(&b["y"], y) && near(&b["width"], w) && near(&b["height"], h),
        "box {b} against the truth {:?}",
        truth.bbox
    );
    assert_eq!(
        result["image_variations"].as_array().map(Vec::len),
        Some(1),
        "{result}"
    );
}

/// Runs `binary ARGS` with `env` until it exits (at most [`EXIT_TIMEOUT`]);
/// returns its exit status and everything it wrote.
fn run_to_exit(
    binary: &str,
    args: &[String],
    env: &[(String, String)],
    dir: &Path,
) -> (std::process::ExitStatus, String) {
    let log_path = dir.join(format!("{binary}.log"));
    let log = std::fs::File::create(&log_path).expect("log");
    let mut child = Command::new(bin_dir().join(binary))
        .args(args)
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .env_remove("ATELIER_ENV")
        .env("RUST_BACKTRACE", "0")
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("log"))
        .stderr(log)
        .spawn()
        .expect("the binary starts");
    let deadline = Instant::now() + EXIT_TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "{binary} kept running with a wrong-shaped model:\n{}",
                std::fs::read_to_string(&log_path).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    (status, std::fs::read_to_string(&log_path).unwrap_or_default())
}

async fn segmenter_wrong_model_stops_start_up(target: Target) {
    let dir = tempfile::tempdir().expect("tmp");
    let mut env = onnx_env(dir.path(), Kind::RgbOutput);
    let model = env[1].1.clone();
    env.push(("ATELIER__OPS__BIND".into(), format!("127.0.0.1:{}", free_port())));
    let (binary, args) = match target {
        // The analysis worker: it loads the model before it connects to anything.
        Target::Stack => ("atelier-analysis", Vec::new()),
        Target::Serve => (
            "atelier",
            vec![
                "serve".to_string(),
                "--bind".into(),
                format!("127.0.0.1:{}", free_port()),
                "--grpc".into(),
                format!("127.0.0.1:{}", free_port()),
                "--data".into(),
                dir.path().join("data").display().to_string(),
            ],
        ),
    };
    let (status, log) = tokio::task::spawn_blocking({
        let dir = dir.path().to_owned();
        move || run_to_exit(binary, &args, &env, &dir)
    })
    .await
    .expect("ran");
    assert!(!status.success(), "{binary} exited {status}:\n{log}");
    assert!(log.contains("analysis.onnx_model"), "{log}");
    assert!(log.contains(&model), "names the file: {log}");
    assert!(
        log.contains("wrong shape") && log.contains("1,3,64,64"),
        "names the shape found: {log}"
    );
}

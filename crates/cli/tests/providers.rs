//! `atelier process` with all three remote providers switched on and pointed at
//! faithful fakes of Gemini and Replicate (the same fakes the client tests use).

#[path = "../../providers/tests/fakes/mod.rs"]
mod fakes;

use std::path::Path;
use std::process::{Command, Output};

use atelier_fixtures::{GarmentShape, Scene};
use fakes::replicate::{Script, Size};
use serde_json::Value;
use wiremock::MockServer;

const VERSION: &str = "42fed1c4974146d4d2414e2be2c5277c7fcf05fcc3a73abf41610695738c1d7b";

fn process(cwd: &Path, gemini: &str, replicate: &str) -> Output {
    Command::new(env!("CARGO_BIN_EXE_atelier"))
        .args([
            "process",
            "shirt.jpg",
            "--out",
            "out",
            "--upscale",
            "2",
            "--view",
            "front",
            "--text",
            "organic cotton",
            "--images-only",
            "--analyzer",
            "gemini",
            "--generator",
            "replicate",
            "--upscaler",
            "replicate",
        ])
        .current_dir(cwd)
        .env("ATELIER__PROVIDERS__GEMINI__BASE_URL", gemini)
        .env("ATELIER__PROVIDERS__GEMINI__API_KEY", fakes::gemini::KEY)
        .env("ATELIER__PROVIDERS__REPLICATE__BASE_URL", replicate)
        .env(
            "ATELIER__PROVIDERS__REPLICATE__API_TOKEN",
            fakes::replicate::TOKEN,
        )
        .env("ATELIER__PROVIDERS__REPLICATE__WAIT_SECONDS", "1")
        .env("ATELIER__PROVIDERS__REPLICATE__POLL_INTERVAL_MS", "20")
        .env(
            "ATELIER__PROVIDERS__REPLICATE__GENERATOR__MODEL",
            "owner/background-model",
        )
        .env("ATELIER__PROVIDERS__REPLICATE__GENERATOR__VERSION", VERSION)
        .env("ATELIER__PROVIDERS__REPLICATE__UPSCALER__VERSION", VERSION)
        .output()
        .expect("atelier runs")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn process_runs_on_gemini_and_replicate_fakes() {
    let gemini = MockServer::start().await;
    fakes::gemini::Fake::new([fakes::gemini::Reply::Describe(fakes::gemini::description())])
        .mount(&gemini)
        .await;
    let replicate = MockServer::start().await;
    let fake = fakes::replicate::Fake::new(Script::succeeding(Size::Scaled));
    fake.mount(&replicate).await;

    let dir = tempfile::tempdir().expect("tmp");
    let garment = atelier_fixtures::render(&Scene::example(GarmentShape::TShirt, 300, 400, 11));
    std::fs::write(
        dir.path().join("shirt.jpg"),
        atelier_fixtures::jpeg(&garment.image, 90),
    )
    .expect("photo");
    let (cwd, g, r) = (dir.path().to_path_buf(), gemini.uri(), replicate.uri());
    let out = tokio::task::spawn_blocking(move || process(&cwd, &g, &r))
        .await
        .expect("joined");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    let root = dir.path().join("out");
    let result: Value =
        serde_json::from_slice(&std::fs::read(root.join("result.json")).expect("result.json")).expect("json");
    let analysis = &result["analysis"][0];
    assert_eq!(analysis["ai"]["category"], "t-shirt");
    assert_eq!(
        analysis["ai"]["generation_prompt"],
        "navy cotton crew-neck t-shirt with short sleeves"
    );
    assert!(
        analysis["dominant_colors"][0]
            .as_str()
            .is_some_and(|c| c.starts_with('#')),
        "local analysis kept"
    );

    let variations = result["image_variations"].as_array().expect("variations");
    assert_eq!(variations.len(), 3);
    // The fake answers at the photo's size (300×400); every variation is
    // brought to the output's canvas (the default 960×1280) all the same.
    for v in variations {
        assert_eq!(
            (v["width"].as_u64(), v["height"].as_u64()),
            (Some(960), Some(1280))
        );
        let file = root.join(v["url"].as_str().expect("url"));
        assert_eq!(
            image::image_dimensions(&file).expect("variation file"),
            (960, 1280)
        );
    }
    let upscaled = result["upscale_image"].as_array().expect("upscales");
    assert_eq!(upscaled.len(), 3);
    for u in upscaled {
        assert_eq!(u["factor"], 2);
        assert!(u.get("fallback").is_none(), "remote upscale used: {u}");
        let file = root.join(u["url"].as_str().expect("url"));
        assert_eq!(
            image::image_dimensions(&file).expect("upscaled file"),
            (1920, 2560)
        );
    }

    assert_eq!(
        gemini.received_requests().await.expect("recorded").len(),
        1,
        "one Gemini call per photo"
    );
    fake.seen(|seen| {
        assert_eq!(
            seen.creates, 6,
            "one prediction per variation for each of generation and upscaling"
        );
        let prompts: Vec<&str> = seen.inputs.iter().filter_map(|i| i["prompt"].as_str()).collect();
        assert_eq!(prompts.len(), 3);
        for prompt in &prompts {
            assert!(prompt.contains("navy cotton crew-neck t-shirt"), "{prompt}");
            assert!(prompt.contains("organic cotton"), "{prompt}");
        }
        // Generations run concurrently: each background once, in any order.
        for background in ["pure white", "plain, evenly lit", "lifestyle scene"] {
            assert_eq!(
                prompts.iter().filter(|p| p.contains(background)).count(),
                1,
                "{background}: {prompts:?}"
            );
        }
        assert!(seen.inputs.iter().filter(|i| i["scale"] == 2).count() == 3);
    });
}

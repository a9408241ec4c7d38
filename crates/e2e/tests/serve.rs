//! `atelier serve` as its users run it: one command, and jobs that survive a
//! crash of the process.

use std::time::{Duration, Instant};

use atelier_e2e::{Options, Serve, System, data_uri, files_under, photo_sized};
use atelier_fixtures::GarmentShape;
use serde_json::{Value, json};

const JOBS: u64 = 5;

async fn get(serve: &Serve, path: &str) -> Value {
    System::client_with_key(Some(&serve.key))
        .get(format!("{}{path}", serve.url))
        .send()
        .await
        .expect("answers")
        .json()
        .await
        .expect("json")
}

#[tokio::test(flavor = "multi_thread")]
async fn serve_killed_mid_run_resumes_every_job_with_its_artefacts_exactly_once() {
    let options = Options {
        env: vec![
            ("ATELIER__GENERATION__CANVAS_WIDTH".into(), "960".into()),
            ("ATELIER__GENERATION__CANVAS_HEIGHT".into(), "1280".into()),
            ("ATELIER__WORKER__CONCURRENCY".into(), "1".into()),
        ],
        ..Options::default()
    };
    let mut serve = Serve::start(&options).await;
    let http = System::client_with_key(Some(&serve.key));
    let bodies: Vec<Value> = (0..JOBS)
        .map(|n| {
            let jpeg = photo_sized(GarmentShape::TShirt, 40 + n, 1200, 1600);
            json!({
                "inputImages": [{ "url": data_uri(&jpeg), "backgrounds": [1, 0, 1] }],
                "upscale": true
            })
        })
        .collect();
    let mut ids = Vec::new();
    for body in &bodies {
        let answer: Value = http
            .post(format!("{}/api/v1/generate", serve.url))
            .header("Prefer", "respond-async")
            .json(body)
            .send()
            .await
            .expect("answers")
            .json()
            .await
            .expect("json");
        ids.push(answer["request_id"].as_str().expect("accepted").to_string());
    }
    // Kill it once work is under way, with all five still queued or running.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let mut statuses = Vec::new();
        for id in &ids {
            statuses.push(get(&serve, &format!("/api/v1/jobs/{id}")).await["status"].clone());
        }
        assert!(
            statuses.iter().all(|s| s == "queued" || s == "running"),
            "a job ended before the kill; the test would prove less: {statuses:?}"
        );
        if statuses.iter().any(|s| s == "running") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no job started: {statuses:?}\n{}",
            serve.logs()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    serve.kill9_and_restart().await;

    for id in &ids {
        let deadline = Instant::now() + Duration::from_secs(240);
        let job = loop {
            let job = get(&serve, &format!("/api/v1/jobs/{id}")).await;
            if matches!(job["status"].as_str(), Some("completed" | "failed" | "cancelled")) {
                break job;
            }
            assert!(
                Instant::now() < deadline,
                "job {id} never ended: {job}\n{}",
                serve.logs()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        assert_eq!(job["status"], "completed", "{job}\n{}", serve.logs());
        let result = &job["result"];
        assert_eq!(
            result["image_variations"].as_array().map(Vec::len),
            Some(2),
            "{job}"
        );
        assert_eq!(result["upscale_image"].as_array().map(Vec::len), Some(2), "{job}");
        // Exactly the job's artefacts, once each: nothing duplicated, nothing stray.
        let files = files_under(&serve.job_dir(id));
        assert_eq!(
            files,
            [
                "inputs/0.jpg",
                "masks/0.png",
                "report.xlsx",
                "upscaled/0.jpg",
                "upscaled/1.jpg",
                "variations/0.jpg",
                "variations/1.jpg",
                "video.mp4",
            ],
            "{id}"
        );
        for url in [&result["video_url"], &result["excel_url"]] {
            let resp = http
                .get(format!("{}{}", serve.url, url.as_str().expect("url")))
                .send()
                .await
                .expect("file");
            assert_eq!(resp.status().as_u16(), 200);
        }
    }
    let log = serve.service.log_text();
    assert!(
        log.contains("resumed from its checkpoint"),
        "nothing was resumed:\n{log}"
    );
}

//! Faults, end to end: workers killed with SIGKILL mid-job, a message that can
//! never succeed, an undecodable message. Every job completes or fails with a
//! stated reason; none vanish, and no artefact is written twice.

use std::time::{Duration, Instant};

use atelier_broker::{Admission, MessageMeta, Transport};
use atelier_core::pipeline::Stage;
use atelier_e2e::{Options, System, Target, WORKERS, data_uri, files_under, photo, photo_sized};
use atelier_fixtures::GarmentShape;
use serde_json::json;

/// Polls the job until it is running in `stage` (or has passed it).
async fn wait_for_stage(stack: &System, id: &str, stage: &str) -> bool {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (_, job) = stack.get_json(0, &format!("/api/v1/jobs/{id}")).await;
        if job["current_stage"] == stage && job["status"] == "running" {
            return true;
        }
        if matches!(job["status"].as_str(), Some("completed" | "failed" | "cancelled")) {
            return false;
        }
        assert!(Instant::now() < deadline, "job {id} never reached {stage}: {job}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn kill_9_of_each_worker_mid_job_loses_nothing_and_duplicates_nothing() {
    // Full-size canvases and one render at a time make every stage last long
    // enough to be killed in.
    let mut stack = System::start(
        Target::Stack,
        Options {
            env: vec![
                ("ATELIER__GENERATION__CANVAS_WIDTH".into(), "1200".into()),
                ("ATELIER__GENERATION__CANVAS_HEIGHT".into(), "1600".into()),
                (
                    "ATELIER__GENERATION__MAX_CONCURRENT_GENERATIONS".into(),
                    "1".into(),
                ),
                ("ATELIER__VIDEO__WIDTH".into(), "720".into()),
                ("ATELIER__VIDEO__HEIGHT".into(), "960".into()),
                ("ATELIER__VIDEO__PRESET".into(), "veryfast".into()),
                ("ATELIER__UPSCALER__MAX_WORKERS".into(), "1".into()),
            ],
            ..Options::default()
        },
    )
    .await;
    // Large photos make the analysis slow enough to be caught too.
    let inputs: Vec<_> = (0..6)
        .map(|n| {
            let jpeg = photo_sized(GarmentShape::TShirt, 20 + n, 1500, 2000);
            json!({ "url": data_uri(&jpeg), "view": "front", "backgrounds": [1, 0, 1] })
        })
        .collect();
    let body = json!({ "inputImages": inputs, "upscale": true, "upscaleFactor": 2 });
    let expected_variations = 12;

    for (name, stage) in WORKERS {
        let (code, accepted) = stack
            .post(0, "/api/v1/generate", &body, &[("Prefer", "respond-async")])
            .await;
        assert_eq!(code, 202, "{accepted}");
        let id = accepted["request_id"].as_str().expect("id").to_string();
        let killed_mid_stage = wait_for_stage(&stack, &id, stage.as_str()).await;
        stack.stack().worker(name).kill9();
        stack.stack().worker(name).restart();
        let job = stack.wait_terminal(&id, Duration::from_secs(240)).await;
        assert_eq!(job["status"], "completed", "{name}: {job}\n{}", stack.logs());
        assert!(
            killed_mid_stage,
            "{name}: the stage ended before the kill; the test proves nothing"
        );

        let files = files_under(&stack.job_dir(&id));
        let count = |p: &str| files.iter().filter(|f| f.starts_with(p)).count();
        assert_eq!(count("variations/"), expected_variations, "{name}: {files:?}");
        assert_eq!(count("upscaled/"), expected_variations, "{name}: {files:?}");
        assert_eq!(count("masks/"), 6, "{name}: {files:?}");
        assert_eq!(count("video.mp4"), 1, "{name}: {files:?}");
        assert_eq!(count("report.xlsx"), 1, "{name}: {files:?}");
        let expected_total = 6 /* inputs */ + 6 /* masks */ + 2 * expected_variations + 2;
        assert_eq!(files.len(), expected_total, "{name}: stray files {files:?}");
        let result = &job["result"];
        assert_eq!(
            result["image_variations"].as_array().map(Vec::len),
            Some(expected_variations)
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_message_that_always_fails_is_dead_lettered_and_the_job_fails_with_the_reason() {
    let mut stack = System::start(
        Target::Stack,
        Options {
            workers: false,
            ..Options::default()
        },
    )
    .await;
    let uri = data_uri(&photo(GarmentShape::TShirt, 31));
    let (code, accepted) = stack
        .post(
            0,
            "/api/v1/generate/image",
            &atelier_e2e::request(&uri, [1, 0, 0], false),
            &[("Prefer", "respond-async")],
        )
        .await;
    assert_eq!(code, 202, "{accepted}");
    let id = accepted["request_id"].as_str().expect("id").to_string();
    // A file where the analysis must create a folder: every attempt fails with a
    // storage error, which is transient, so it is retried until max_attempts.
    std::fs::write(stack.job_dir(&id).join("masks"), b"in the way").expect("block masks/");
    let broker = stack.stack().broker.clone();
    let dead_before = broker.dead_letter_count().await.expect("dlq");
    stack.stack().start_worker("analysis").await;

    let job = stack.wait_terminal(&id, Duration::from_secs(60)).await;
    assert_eq!(job["status"], "failed", "{job}");
    let error = job["error"]["message"].as_str().unwrap_or_default();
    assert!(
        error.contains("mask") || error.contains("blob"),
        "reason should say what failed: {error}"
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while broker.dead_letter_count().await.expect("dlq") <= dead_before {
        assert!(Instant::now() < deadline, "nothing reached the dead-letter queue");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let log = stack.stack().worker("analysis").log_text();
    assert!(
        stack.stack().worker("analysis").is_running(),
        "the worker died:\n{log}"
    );

    // Garbage on the queue goes to the dead-letter queue too, and the worker
    // carries on with the next good job.
    let meta = MessageMeta {
        job_id: "not-a-job".into(),
        attempt: 1,
        priority: 5,
        traceparent: None,
        deadline_ms: None,
    };
    broker
        .publish(
            Stage::Analysis,
            Admission::New,
            bytes::Bytes::from_static(b"\xff\xfe not protobuf"),
            &meta,
        )
        .await
        .expect("publish garbage");
    stack.stack().start_worker("generation").await;
    stack.stack().start_worker("upscaling").await;
    stack.stack().start_worker("postprocess").await;
    let (code, body) = stack
        .post(
            0,
            "/api/v1/generate/image",
            &atelier_e2e::request(&uri, [1, 0, 0], false),
            &[],
        )
        .await;
    assert_eq!(code, 200, "{body}\n{}", stack.logs());
}

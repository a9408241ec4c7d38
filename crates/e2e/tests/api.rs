//! The HTTP API end to end, on both targets: the distributed stack (real
//! binaries on the real RabbitMQ and PostgreSQL) and `atelier serve`. Every
//! response body is also checked against the OpenAPI document the system serves.

use std::time::Duration;

use atelier_e2e::{
    GatedGemini, Options, System, Target, data_uri, files_under, on_both_targets, photo, request, serve_photo,
};
use atelier_fixtures::GarmentShape;
use serde_json::{Value, json};

const IMAGE: &str = "/api/v1/generate/image";
const FULL: &str = "/api/v1/generate";

on_both_targets!(
    old_api_requests_return_every_artefact,
    five_concurrent_requests_all_complete,
    every_bad_input_gets_its_status_and_a_json_error,
    async_submit_events_idempotency_and_resume,
    cancel_skips_the_remaining_stages,
    a_full_queue_answers_503_and_loses_no_accepted_job,
    a_late_input_failure_answers_422_naming_the_input,
);

/// The OpenAPI document the system serves.
async fn contract(sys: &System) -> Value {
    let (code, doc) = sys.get_json(0, "/api/v1/openapi.json").await;
    assert_eq!(code, 200, "{doc}");
    assert_eq!(doc["openapi"].as_str().map(|v| &v[..2]), Some("3."), "{doc}");
    doc
}

/// Checks `value` against schema `name` of the OpenAPI document.
fn assert_schema(doc: &Value, name: &str, value: &Value) {
    let schema = json!({
        "$ref": format!("#/components/schemas/{name}"),
        "components": doc["components"].clone(),
    });
    let validator = jsonschema::validator_for(&schema).expect("a valid JSON schema");
    let errors: Vec<String> = validator
        .iter_errors(value)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "{name} does not match the contract: {errors:?}\n{value}"
    );
}

async fn old_api_requests_return_every_artefact(target: Target) {
    let stack = System::start(target, Options::default()).await;
    let doc = contract(&stack).await;
    let base = serve_photo(photo(GarmentShape::TShirt, 3)).await;

    // Images only, from a URL, upscaled.
    let (code, body) = stack
        .post(
            0,
            IMAGE,
            &request(&format!("{base}/shirt.jpg"), [1, 1, 1], true),
            &[],
        )
        .await;
    assert_eq!(code, 200, "{body}\n{}", stack.logs());
    assert_schema(&doc, "GenerateResponse", &body);
    assert_eq!(body["status"], "completed");
    let variations = body["image_variations"].as_array().expect("variations");
    assert_eq!(variations.len(), 3);
    let kinds: Vec<&str> = variations
        .iter()
        .filter_map(|v| v["background"].as_str())
        .collect();
    assert_eq!(kinds, ["white", "plain", "random"]);
    let upscaled = body["upscale_image"].as_array().expect("upscaled");
    assert_eq!(upscaled.len(), 3);
    for (v, u) in variations.iter().zip(upscaled) {
        assert_eq!(u["width"].as_u64(), v["width"].as_u64().map(|w| w * 2));
        assert_eq!(u["height"].as_u64(), v["height"].as_u64().map(|h| h * 2));
        let (status, ctype, bytes) = stack.file(u["url"].as_str().expect("url")).await;
        assert_eq!((status, ctype.as_str()), (200, "image/jpeg"));
        let (w, h) = image::ImageReader::new(std::io::Cursor::new(&bytes))
            .with_guessed_format()
            .expect("format")
            .into_dimensions()
            .expect("dims");
        assert_eq!(Some(u64::from(w)), u["width"].as_u64());
        assert_eq!(Some(u64::from(h)), u["height"].as_u64());
    }
    assert!(body.get("video_url").is_none_or(Value::is_null), "{body}");
    let times = &body["metadata"]["processing_times"];
    for key in ["analysis", "generation", "post_processing", "saving", "total"] {
        assert!(times[key].as_f64().is_some(), "missing {key}: {times}");
    }
    assert!(times["total"].as_f64() >= times["generation"].as_f64());

    // Everything, from a data: URI, not upscaled.
    let (code, body) = stack
        .post(
            0,
            FULL,
            &request(&data_uri(&photo(GarmentShape::Dress, 4)), [0, 1, 1], false),
            &[],
        )
        .await;
    assert_eq!(code, 200, "{body}\n{}", stack.logs());
    assert_eq!(body["image_variations"].as_array().map(Vec::len), Some(2));
    assert_eq!(body["upscale_image"], json!([]));
    let (status, ctype, video) = stack.file(body["video_url"].as_str().expect("video")).await;
    assert_eq!((status, ctype.as_str()), (200, "video/mp4"));
    assert_eq!(&video[4..8], b"ftyp");
    let (status, ctype, report) = stack.file(body["excel_url"].as_str().expect("excel")).await;
    assert_eq!(status, 200);
    assert!(ctype.contains("spreadsheetml"), "{ctype}");
    assert_eq!(&report[..2], b"PK");

    // The old queue endpoint keeps its keys and counts both jobs.
    let (code, q) = stack.get_json(0, "/api/v1/status/queue").await;
    assert_eq!(code, 200, "{q}");
    assert_schema(&doc, "QueueStatusBody", &q);
    let id = body["request_id"].as_str().expect("id");
    let (code, job) = stack.get_json(0, &format!("/api/v1/jobs/{id}")).await;
    assert_eq!(code, 200, "{job}");
    assert_schema(&doc, "JobResource", &job);
    for (path, schema) in [("/healthz", "HealthBody"), ("/readyz", "ReadyBody")] {
        let (code, answer) = stack.get_json(0, path).await;
        assert_eq!(code, 200, "{path}: {answer}");
        assert_schema(&doc, schema, &answer);
    }
    assert_eq!(q["status"], "success");
    for key in [
        "queue_size",
        "max_queue_size",
        "running_tasks",
        "max_workers",
        "completed_tasks",
        "failed_tasks",
        "is_running",
    ] {
        assert!(q["queue_info"].get(key).is_some(), "missing {key}: {q}");
    }
    assert!(q["queue_info"]["completed_tasks"].as_u64() >= Some(2), "{q}");
    assert_eq!(q["queue_info"]["is_running"], true, "{q}");
    assert_eq!(q["stages"].as_array().map(Vec::len), Some(4), "{q}");
    assert!(q["stages"][1]["p50"].as_f64().is_some_and(|p| p > 0.0), "{q}");
}

async fn five_concurrent_requests_all_complete(target: Target) {
    let stack = System::start(target, Options::default()).await;
    let uri = data_uri(&photo(GarmentShape::TShirt, 9));
    let body = request(&uri, [0, 1, 1], false);
    let calls = (0..5).map(|_| stack.post(0, IMAGE, &body, &[]));
    let answers = futures::future::join_all(calls).await;
    let mut ids = std::collections::HashSet::new();
    for (code, body) in &answers {
        assert_eq!(*code, 200, "{body}\n{}", stack.logs());
        assert_eq!(body["image_variations"].as_array().map(Vec::len), Some(2));
        ids.insert(body["request_id"].as_str().expect("id").to_string());
    }
    assert_eq!(ids.len(), 5);
}

async fn every_bad_input_gets_its_status_and_a_json_error(target: Target) {
    let stack = System::start(
        target,
        Options {
            env: vec![("ATELIER__GATEWAY__MAX_BODY_BYTES".into(), "1000000".into())],
            ..Options::default()
        },
    )
    .await;
    let doc = contract(&stack).await;
    let base = serve_photo(photo(GarmentShape::TShirt, 5)).await;
    let good = data_uri(&photo(GarmentShape::TShirt, 5));
    let closed = format!("http://127.0.0.1:{}/x.jpg", atelier_e2e::free_port());
    let tiny = {
        let img = image::RgbImage::from_pixel(16, 16, image::Rgb([200, 10, 10]));
        data_uri(&atelier_fixtures::jpeg(&img, 90))
    };
    let text_uri = format!("data:image/jpeg;base64,{}", base64_of(b"hello, not an image"));
    let with = |f: &dyn Fn(&mut Value)| {
        let mut body = request(&good, [0, 1, 0], false);
        f(&mut body);
        body
    };
    let cases: Vec<(&str, Value, u16, Option<&str>)> = vec![
        (
            "unknown field",
            with(&|b| b["callbackUrl"] = json!("https://x")),
            422,
            Some("callbackUrl"),
        ),
        (
            "bad view",
            with(&|b| b["inputImages"][0]["view"] = json!("top")),
            422,
            Some("inputImages[0].view"),
        ),
        (
            "no image asked",
            with(&|b| b["inputImages"][0]["backgrounds"] = json!([0, 0, 0])),
            422,
            None,
        ),
        (
            "too many per kind",
            with(&|b| b["inputImages"][0]["backgrounds"] = json!([5, 0, 0])),
            422,
            None,
        ),
        (
            "no inputs",
            with(&|b| b["inputImages"] = json!([])),
            422,
            Some("inputImages"),
        ),
        (
            "bad gender",
            with(&|b| b["gender"] = json!("robot")),
            422,
            Some("gender"),
        ),
        (
            "bad factor",
            with(&|b| b["upscaleFactor"] = json!(3)),
            422,
            Some("upscaleFactor"),
        ),
        (
            "bad priority",
            with(&|b| b["priority"] = json!(12)),
            422,
            Some("priority"),
        ),
        (
            "ftp scheme",
            with(&|b| b["inputImages"][0]["url"] = json!("ftp://x.test/a.jpg")),
            422,
            Some("inputImages[0].url"),
        ),
        (
            "file scheme",
            with(&|b| b["inputImages"][0]["url"] = json!("file:///etc/passwd")),
            422,
            Some("inputImages[0].url"),
        ),
        (
            "unreachable",
            with(&|b| b["inputImages"][0]["url"] = json!(closed)),
            422,
            Some("inputImages[0].url"),
        ),
        (
            "404 url",
            with(&|b| b["inputImages"][0]["url"] = json!(format!("{base}/gone.jpg"))),
            422,
            Some("inputImages[0].url"),
        ),
        (
            "html not image",
            with(&|b| b["inputImages"][0]["url"] = json!(format!("{base}/not-an-image.jpg"))),
            415,
            Some("inputImages[0].url"),
        ),
        (
            "text data uri",
            with(&|b| b["inputImages"][0]["url"] = json!(text_uri)),
            415,
            Some("inputImages[0].url"),
        ),
        (
            "not base64",
            with(&|b| b["inputImages"][0]["url"] = json!("data:image/jpeg;base64,@@@")),
            422,
            Some("inputImages[0].url"),
        ),
        (
            "too small",
            with(&|b| b["inputImages"][0]["url"] = json!(tiny)),
            422,
            Some("inputImages[0].url"),
        ),
    ];
    for (name, body, status, field) in cases {
        let (code, answer) = stack.post(0, IMAGE, &body, &[]).await;
        assert_eq!(code, status, "{name}: {answer}");
        assert_schema(&doc, "ErrorBody", &answer);
        let error = &answer["error"];
        if let Some(field) = field {
            assert_eq!(error["field"], field, "{name}: {answer}");
        }
        if name == "unreachable" || name == "404 url" {
            let message = error["message"].as_str().unwrap_or_default();
            assert!(
                message.contains("127.0.0.1"),
                "{name}: message should name the URL: {message}"
            );
        }
    }
    // Malformed JSON and an oversized body.
    let http = stack.http();
    let raw = |body: Vec<u8>| {
        http.post(format!("{}{IMAGE}", stack.url(0)))
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    let resp = raw(b"{\"inputImages\": [".to_vec()).await.expect("answer");
    assert_eq!(resp.status().as_u16(), 400);
    let body: Value = resp.json().await.expect("json error");
    assert_eq!(body["error"]["code"], "malformed_json");
    // The gateway answers before reading all of an oversized body and closes
    // that connection: send it on a client of its own.
    let resp = System::client_with_key(Some(stack.key()))
        .post(format!("{}{IMAGE}", stack.url(0)))
        .header("content-type", "application/json")
        .body(vec![b' '; 2_000_000])
        .send()
        .await
        .expect("answer");
    assert_eq!(resp.status().as_u16(), 413);
    let body: Value = resp.json().await.expect("json error");
    assert_eq!(body["error"]["code"], "too_large");
    // Unknown job and file.
    let (code, body) = stack
        .get_json(0, "/api/v1/jobs/00000000-0000-7000-8000-000000000000")
        .await;
    assert_eq!((code, body["error"]["code"].as_str()), (404, Some("not_found")));
    let (code, _) = stack.get_json(0, "/api/v1/files/not-a-job/x.jpg").await;
    assert_eq!(code, 404);

    // The services survived all of it: the next good request works.
    let (code, body) = stack.post(0, IMAGE, &request(&good, [1, 0, 0], false), &[]).await;
    assert_eq!(code, 200, "{body}\n{}", stack.logs());
    assert_eq!(body["image_variations"].as_array().map(Vec::len), Some(1));
}

fn base64_of(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

async fn async_submit_events_idempotency_and_resume(target: Target) {
    // Two gateways on the stack (a job submitted on one is awaited on the
    // other); `atelier serve` has one, which plays both parts.
    let stack = System::start(
        target,
        Options {
            gateways: 2,
            ..Options::default()
        },
    )
    .await;
    let doc = contract(&stack).await;
    let uri = data_uri(&photo(GarmentShape::Trousers, 6));
    let body = request(&uri, [1, 0, 1], false);

    // Asynchronous submission on gateway 0 with an idempotency key.
    let (code, accepted) = stack
        .post(
            0,
            FULL,
            &body,
            &[("Prefer", "respond-async"), ("Idempotency-Key", "order-42")],
        )
        .await;
    assert_eq!(code, 202, "{accepted}");
    assert_schema(&doc, "Accepted", &accepted);
    let id = accepted["request_id"].as_str().expect("id").to_string();
    assert_eq!(accepted["status_url"], format!("/api/v1/jobs/{id}"));

    // The same key on the *other* gateway, synchronously: same job, awaited there.
    let (code, done) = stack
        .post(1, FULL, &body, &[("Idempotency-Key", "order-42")])
        .await;
    assert_eq!(code, 200, "{done}\n{}", stack.logs());
    assert_eq!(done["request_id"], id.as_str());
    assert!(done["video_url"].is_string());

    // Readable through both gateways.
    for n in 0..2 {
        let (code, job) = stack.get_json(n, &format!("/api/v1/jobs/{id}")).await;
        assert_eq!(code, 200);
        assert_eq!(job["status"], "completed", "{job}");
        assert_eq!(job["result"]["request_id"], id.as_str());
        assert!(
            job["processing_times"]["analysis"]
                .as_f64()
                .is_some_and(|t| t > 0.0),
            "{job}"
        );
    }
    // A different key is a different job.
    let (code, other) = stack
        .post(
            0,
            IMAGE,
            &body,
            &[("Prefer", "respond-async"), ("Idempotency-Key", "order-43")],
        )
        .await;
    assert_eq!(code, 202);
    assert_ne!(other["request_id"], id.as_str());

    // The finished job's events replay in order and end with the final state.
    let events = |last_event_id: Option<String>| {
        let mut req = stack
            .http()
            .get(format!("{}/api/v1/jobs/{id}/events", stack.url(1)));
        if let Some(last) = last_event_id {
            req = req.header("Last-Event-ID", last);
        }
        async move { req.send().await.expect("sse").text().await.expect("sse body") }
    };
    let text = events(None).await;
    let kinds: Vec<&str> = text.lines().filter_map(|l| l.strip_prefix("event: ")).collect();
    assert_eq!(kinds.first(), Some(&"queued"), "{text}");
    assert_eq!(
        kinds.iter().filter(|k| **k == "stage_finished").count(),
        4,
        "{text}"
    );
    assert!(kinds.contains(&"completed"), "{text}");
    assert_eq!(kinds.last(), Some(&"final"), "{text}");
    for data in text
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .take(kinds.len() - 1)
    {
        assert_schema(
            &doc,
            "JobEventBody",
            &serde_json::from_str(data).expect("json data"),
        );
    }
    // Every event has an id; resuming after the third replays only the rest.
    let ids: Vec<&str> = text.lines().filter_map(|l| l.strip_prefix("id: ")).collect();
    assert_eq!(ids.len(), kinds.len() - 1, "{text}");
    let resumed = events(Some(ids[2].to_string())).await;
    let resumed_kinds: Vec<&str> = resumed
        .lines()
        .filter_map(|l| l.strip_prefix("event: "))
        .collect();
    assert_eq!(resumed_kinds, kinds[3..], "{resumed}");

    // Cancelling a finished job is refused; an unknown one is 404.
    let resp = stack
        .http()
        .delete(format!("{}/api/v1/jobs/{id}", stack.url(1)))
        .send()
        .await
        .expect("answer");
    assert_eq!(resp.status().as_u16(), 409);
    let other_id = other["request_id"].as_str().expect("id").to_string();
    let job = stack.wait_terminal(&other_id, Duration::from_secs(90)).await;
    assert_eq!(job["status"], "completed");
}

async fn cancel_skips_the_remaining_stages(target: Target) {
    // The analysis waits on a stand-in for Gemini until the test lets it go,
    // so the cancel lands while the job is in its first stage, on any target.
    let gemini = GatedGemini::start().await;
    let stack = System::start(
        target,
        Options {
            gateways: 2,
            env: gemini.env(),
            ..Options::default()
        },
    )
    .await;
    let uri = data_uri(&photo(GarmentShape::Dress, 8));
    let (code, accepted) = stack
        .post(
            0,
            FULL,
            &request(&uri, [1, 1, 1], true),
            &[("Prefer", "respond-async")],
        )
        .await;
    assert_eq!(code, 202, "{accepted}");
    let id = accepted["request_id"].as_str().expect("id").to_string();
    stack
        .wait_until(|| gemini.calls() == 1, "the analysis reached Gemini")
        .await;
    let resp = stack
        .http()
        .delete(format!("{}/api/v1/jobs/{id}", stack.url(1)))
        .send()
        .await
        .expect("answer");
    assert_eq!(resp.status().as_u16(), 202);
    let job = stack.wait_terminal(&id, Duration::from_secs(30)).await;
    assert_eq!(job["status"], "cancelled", "{job}");
    gemini.open();
    // The next job runs through every stage, after the cancelled one's analysis.
    let (code, second) = stack.post(0, IMAGE, &request(&uri, [1, 0, 0], false), &[]).await;
    assert_eq!(code, 200, "{second}\n{}", stack.logs());
    let files = files_under(&stack.job_dir(&id));
    assert!(
        files
            .iter()
            .all(|f| f.starts_with("inputs/") || f.starts_with("masks/") || f == "cancelled"),
        "stages ran for a cancelled job: {files:?}"
    );
    let (_, job) = stack.get_json(1, &format!("/api/v1/jobs/{id}")).await;
    assert_eq!(job["status"], "cancelled", "{job}");
}

async fn a_full_queue_answers_503_and_loses_no_accepted_job(target: Target) {
    // One analysis at a time, held by the stand-in for Gemini: the first job
    // runs, the next two fill the queue, the fourth is refused.
    let gemini = GatedGemini::start().await;
    let mut env = gemini.env();
    env.push(("ATELIER__PIPELINE__MAX_QUEUE_SIZE".into(), "2".into()));
    let stack = System::start(
        target,
        Options {
            env,
            ..Options::default()
        },
    )
    .await;
    let uri = data_uri(&photo(GarmentShape::TShirt, 12));
    let body = request(&uri, [1, 0, 0], false);
    let mut accepted = Vec::new();
    for n in 0..3 {
        let (code, a) = stack.post(0, IMAGE, &body, &[("Prefer", "respond-async")]).await;
        assert_eq!(code, 202, "{a}");
        accepted.push(a["request_id"].as_str().expect("id").to_string());
        if n == 0 {
            stack
                .wait_until(|| gemini.calls() == 1, "the first job is in analysis")
                .await;
        }
    }
    let resp = stack
        .http()
        .post(format!("{}{IMAGE}?wait=false", stack.url(0)))
        .json(&body)
        .send()
        .await
        .expect("answer");
    assert_eq!(resp.status().as_u16(), 503);
    assert!(resp.headers().get("retry-after").is_some());
    let error: Value = resp.json().await.expect("json");
    assert_eq!(error["error"]["code"], "queue_full");

    gemini.open();
    for id in &accepted {
        let job = stack.wait_terminal(id, Duration::from_secs(90)).await;
        assert_eq!(job["status"], "completed", "{job}");
    }
    // With room again, new work is accepted.
    let (code, _) = stack.post(0, IMAGE, &body, &[]).await;
    assert_eq!(code, 200, "{}", stack.logs());
}

async fn a_late_input_failure_answers_422_naming_the_input(target: Target) {
    let stack = System::start(target, Options::default()).await;
    // Its header is fine (the gateway's checks pass); its data ends early, which
    // only decoding finds.
    let jpeg = photo(GarmentShape::TShirt, 14);
    let truncated = &jpeg[..jpeg.len() * 3 / 5];
    let mut body = request(&data_uri(&jpeg), [1, 0, 0], false);
    body["inputImages"] = json!([
        { "url": data_uri(&jpeg), "backgrounds": [1, 0, 0] },
        { "url": data_uri(truncated), "backgrounds": [1, 0, 0] },
    ]);
    let (code, answer) = stack.post(0, IMAGE, &body, &[]).await;
    assert_eq!(code, 422, "{answer}\n{}", stack.logs());
    assert_eq!(answer["error"]["code"], "invalid_image", "{answer}");
    assert_eq!(answer["error"]["field"], "inputImages[1].url", "{answer}");
    let id = answer["error"]["request_id"].as_str().expect("the job is named");
    let (_, job) = stack.get_json(0, &format!("/api/v1/jobs/{id}")).await;
    assert_eq!(job["status"], "failed", "{job}");
    assert_eq!(job["error"]["field"], "inputImages[1].url", "{job}");
}

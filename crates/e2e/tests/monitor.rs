//! `atelier monitor` against the distributed stack and `atelier serve`: health
//! says up for a whole system and names the part that is down, the table and
//! a job's watch read the same status service.

use std::process::Output;
use std::time::{Duration, Instant};

use atelier_e2e::{Options, System, Target, data_uri, on_both_targets, photo, request};
use atelier_fixtures::GarmentShape;
use serde_json::Value;

/// Longest wait for the status service to notice a stopped worker (it reads
/// the queues every `status.rabbitmq_poll_ms`, 200 ms in tests).
const NOTICE_LIMIT: Duration = Duration::from_secs(30);

fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `atelier monitor health` once the status service has seen every stage's
/// consumer (it reads the broker every `status.rabbitmq_poll_ms`, so a system
/// that has just become ready may not show them yet), or the last answer when
/// that never happens within [`NOTICE_LIMIT`].
async fn health_once_settled(sys: &System) -> Output {
    let deadline = Instant::now() + NOTICE_LIMIT;
    loop {
        let out = sys.monitor(&["health"]);
        if out.status.success() || Instant::now() >= deadline {
            return out;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn monitor_health_is_up_for_a_whole_system(target: Target) {
    let sys = System::start(target, Options::default()).await;
    let out = health_once_settled(&sys).await;
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}\n{}", sys.logs());
    for service in [
        "gateway",
        "status",
        "broker",
        "analysis",
        "generation",
        "upscaling",
        "postprocess",
    ] {
        let line = stdout
            .lines()
            .find(|l| l.starts_with(service))
            .unwrap_or_else(|| panic!("no verdict for {service}:\n{stdout}"));
        assert!(line.contains(" up "), "{line}");
    }
    // The same as JSON, for scripts.
    let out = sys.monitor(&["health", "--json"]);
    let body: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(body["healthy"], true, "{body}");
    assert_eq!(body["services"].as_array().map(Vec::len), Some(7), "{body}");
}

async fn monitor_table_and_watch_follow_a_job(target: Target) {
    let sys = System::start(target, Options::default()).await;
    let body = request(&data_uri(&photo(GarmentShape::TShirt, 7)), [1, 0, 0], false);
    let (code, done) = sys.post(0, "/api/v1/generate/image", &body, &[]).await;
    assert_eq!(code, 200, "{done}");
    let id = done["request_id"].as_str().expect("id").to_string();

    // The job ended: its watch replays its events and exits 0.
    let out = sys.monitor(&["watch", &id, "--json"]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let kinds: Vec<String> = stdout
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).expect("json line")["kind"]
                .as_str()
                .unwrap_or("")
                .to_string()
        })
        .collect();
    assert_eq!(kinds.first().map(String::as_str), Some("queued"), "{stdout}");
    assert_eq!(kinds.last().map(String::as_str), Some("completed"), "{stdout}");
    assert!(
        kinds.iter().filter(|k| *k == "stage_finished").count() >= 4,
        "{stdout}"
    );

    // The table counts it, once, as JSON.
    let deadline = Instant::now() + NOTICE_LIMIT;
    loop {
        let out = sys.monitor(&["--once", "--json"]);
        let (stdout, stderr) = text(&out);
        assert!(out.status.success(), "{stdout}\n{stderr}");
        let table: Value = serde_json::from_str(stdout.trim()).expect("one JSON object");
        let stages = table["stages"].as_array().expect("stages");
        assert_eq!(stages.len(), 4, "{table}");
        let analysis = &stages[0];
        assert_eq!(analysis["stage"], "analysis");
        if table["completed"].as_u64() >= Some(1) && analysis["completed"].as_u64() >= Some(1) {
            assert!(analysis["consumers"].as_u64() >= Some(1), "{table}");
            assert!(
                analysis["capacity"].as_u64() >= analysis["consumers"].as_u64(),
                "{table}"
            );
            assert!(analysis["per_minute"].as_f64() > Some(0.0), "{table}");
            assert!(analysis["p50_seconds"].as_f64() > Some(0.0), "{table}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the table never counted the job: {table}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // And as text for a pipe: the header, one row per stage, the guidance.
    let out = sys.monitor(&["--once"]);
    let (stdout, _) = text(&out);
    assert!(
        stdout.contains("STAGE") && stdout.contains("post_processing"),
        "{stdout}"
    );
    assert!(stdout.contains("aim for 70–80%"), "{stdout}");

    // An unknown job is an error naming it, not a hang.
    let out = sys.monitor(&["watch", "0190f5c4-7b2a-7cc0-9a51-3f4f0e2d9c11"]);
    let (_, stderr) = text(&out);
    assert!(!out.status.success() && stderr.contains("no job"), "{stderr}");
}

on_both_targets!(
    monitor_health_is_up_for_a_whole_system,
    monitor_table_and_watch_follow_a_job
);

#[tokio::test(flavor = "multi_thread")]
async fn monitor_health_names_a_stopped_worker_and_a_missing_gateway() {
    let mut sys = System::start(Target::Stack, Options::default()).await;
    let out = health_once_settled(&sys).await;
    assert!(out.status.success(), "{:?}\n{}", text(&out), sys.logs());
    sys.stack().worker("upscaling").kill9();
    let deadline = Instant::now() + NOTICE_LIMIT;
    let (stdout, stderr) = loop {
        let out = sys.monitor(&["health"]);
        if !out.status.success() {
            break text(&out);
        }
        assert!(
            Instant::now() < deadline,
            "health never noticed the stopped worker"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let verdict = stdout
        .lines()
        .find(|l| l.starts_with("upscaling"))
        .unwrap_or_else(|| panic!("{stdout}"));
    assert!(
        verdict.contains("DOWN") && verdict.contains("no consumer"),
        "{verdict}"
    );
    assert!(stderr.contains("not healthy: upscaling"), "{stderr}");
    for other in ["analysis", "generation", "postprocess", "gateway", "status"] {
        let line = stdout.lines().find(|l| l.starts_with(other)).expect("verdict");
        assert!(line.contains(" up "), "{line}");
    }
    // The worker back: healthy again.
    sys.stack().start_worker("upscaling").await;
    let deadline = Instant::now() + NOTICE_LIMIT;
    while !sys.monitor(&["health"]).status.success() {
        assert!(Instant::now() < deadline, "health never saw the worker back");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // A gateway that does not answer is named too.
    sys.stack().gateways[0].0.kill9();
    let out = sys.monitor(&["health"]);
    let (stdout, stderr) = text(&out);
    assert!(!out.status.success(), "{stdout}");
    assert!(stderr.contains("not healthy: gateway"), "{stderr}");
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with("gateway") && l.contains("no answer")),
        "{stdout}"
    );
}

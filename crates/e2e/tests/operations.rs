//! Operating a running system, on both targets (the stack and `atelier
//! serve`): the jobs list, dead letters replayed once their fault is gone, and
//! retention with a short TTL.

use std::process::Command;
use std::time::{Duration, Instant};

use atelier_e2e::{GatedGemini, Options, System, Target, bin_dir, data_uri, on_both_targets, photo, request};
use atelier_fixtures::GarmentShape;
use serde_json::{Value, json};

const IMAGE: &str = "/api/v1/generate/image";
const LIST: &str = "/api/v1/jobs";
const DEAD: &str = "/api/v1/admin/dead-letters";
const ASYNC: [(&str, &str); 1] = [("Prefer", "respond-async")];

on_both_targets!(
    jobs_are_listed_newest_first_a_page_at_a_time_per_tenant,
    a_dead_letter_is_replayed_once_its_fault_is_gone_and_the_job_completes,
    retention_sweeps_finished_jobs_and_their_files_but_not_running_ones,
);

async fn get(client: &reqwest::Client, url: &str) -> (u16, Value) {
    System::send(client.get(url)).await
}

async fn submit(sys: &System, client: &reqwest::Client, seed: u64) -> String {
    let uri = data_uri(&photo(GarmentShape::TShirt, seed));
    let resp = client
        .post(format!("{}{IMAGE}", sys.url(0)))
        .header("Prefer", "respond-async")
        .json(&request(&uri, [1, 0, 0], false))
        .send()
        .await
        .expect("gateway answers");
    assert_eq!(resp.status().as_u16(), 202);
    let body: Value = resp.json().await.expect("json");
    body["request_id"].as_str().expect("id").to_string()
}

/// Checks `value` against schema `name` of the OpenAPI document the system serves.
async fn assert_schema(sys: &System, name: &str, value: &Value) {
    let (code, doc) = sys.get_json(0, "/api/v1/openapi.json").await;
    assert_eq!(code, 200, "{doc}");
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

fn ids(page: &Value) -> Vec<String> {
    page["jobs"]
        .as_array()
        .expect("jobs")
        .iter()
        .map(|j| j["request_id"].as_str().expect("id").to_string())
        .collect()
}

async fn jobs_are_listed_newest_first_a_page_at_a_time_per_tenant(target: Target) {
    let sys = System::start(target, Options::default()).await;
    // Unmetered keys: the test polls.
    let unmetered = |name: &str| {
        let key = sys.create_key(&["--name", name, "--rate-per-minute", "0", "--max-in-flight", "0"]);
        System::client_with_key(Some(&key))
    };
    let (alice, bob) = (unmetered("alice"), unmetered("bob"));
    let mut mine = Vec::new();
    for seed in 0..3 {
        mine.push(submit(&sys, &alice, 50 + seed).await);
    }
    let theirs = submit(&sys, &bob, 60).await;
    // Each job through its own tenant's key (another tenant's job is a 404).
    for (client, id) in mine.iter().map(|id| (&alice, id)).chain([(&bob, &theirs)]) {
        let job = sys.wait_terminal_with(client, id, Duration::from_secs(120)).await;
        assert_eq!(job["status"], "completed", "{job}");
    }
    let base = format!("{}{LIST}", sys.url(0));

    // Alice's jobs, two per page, newest first; the last page has no cursor.
    let (code, first) = get(&alice, &format!("{base}?limit=2")).await;
    assert_eq!(code, 200, "{first}");
    assert_eq!(ids(&first), [mine[2].clone(), mine[1].clone()]);
    assert_schema(&sys, "JobList", &first).await;
    let cursor = first["next_cursor"].as_str().expect("a next page");
    let (code, second) = get(&alice, &format!("{base}?limit=2&cursor={cursor}")).await;
    assert_eq!(code, 200, "{second}");
    assert_eq!(ids(&second), [mine[0].clone()]);
    assert_eq!(second["next_cursor"], Value::Null);
    // Each entry is the job exactly as GET /api/v1/jobs/{id} shows it.
    let (_, one) = get(&alice, &format!("{base}/{}", mine[2])).await;
    assert_eq!(first["jobs"][0], one);

    // A tenant sees its own jobs only; an admin key sees everyone's.
    let (_, of_bob) = get(&bob, &base).await;
    assert_eq!(ids(&of_bob), std::slice::from_ref(&theirs));
    let (_, all) = get(&sys.http(), &format!("{base}?status=completed")).await;
    let all = ids(&all);
    assert!(mine.iter().chain([&theirs]).all(|id| all.contains(id)), "{all:?}");
    let (_, none) = get(&alice, &format!("{base}?status=failed")).await;
    assert!(ids(&none).is_empty());
    let (_, later) = get(&alice, &format!("{base}?since=2100-01-01T00:00:00Z")).await;
    assert!(ids(&later).is_empty());
    let (_, since) = get(&alice, &format!("{base}?since=0&stage=post_processing")).await;
    assert_eq!(ids(&since).len(), 3);

    // Bad values: 422 naming the parameter.
    for (query, field) in [
        ("status=done", "status"),
        ("stage=video", "stage"),
        ("since=yesterday", "since"),
        ("limit=0", "limit"),
        ("limit=201", "limit"),
        ("cursor=forged", "cursor"),
    ] {
        let (code, body) = get(&alice, &format!("{base}?{query}")).await;
        assert_eq!(code, 422, "{query}: {body}");
        assert_eq!(body["error"]["field"], field, "{query}: {body}");
    }
    let (code, _) = get(&System::client_with_key(None), &base).await;
    assert_eq!(code, 401, "keys are required");
}

/// Runs `atelier dlq ARGS --url … --key … --json`; returns its JSON.
fn dlq(sys: &System, args: &[&str]) -> Value {
    let out = Command::new(bin_dir().join("atelier"))
        .arg("dlq")
        .args(args)
        .args(["--url", &sys.url(0), "--key", sys.key(), "--json"])
        .env_remove("ATELIER_ENV")
        .output()
        .expect("atelier runs");
    assert!(
        out.status.success(),
        "atelier dlq {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("JSON")
}

async fn dead_letter_of(sys: &System, job: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (code, body) = sys.get_json(0, DEAD).await;
        assert_eq!(code, 200, "{body}");
        let found = body["dead_letters"]
            .as_array()
            .expect("list")
            .iter()
            .find(|d| d["job_id"] == job)
            .cloned();
        if let Some(letter) = found {
            return letter;
        }
        assert!(
            Instant::now() < deadline,
            "no dead letter for {job}: {body}\n{}",
            sys.logs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn a_dead_letter_is_replayed_once_its_fault_is_gone_and_the_job_completes(target: Target) {
    // Gemini is down and required: every analysis attempt fails.
    let gemini = GatedGemini::start().await;
    gemini.open();
    gemini.fail_next(usize::MAX / 4);
    let mut env = gemini.env();
    env.push(("ATELIER__PROVIDERS__GEMINI__REQUIRED".into(), "true".into()));
    let sys = System::start(
        target,
        Options {
            env,
            ..Options::default()
        },
    )
    .await;
    let uri = data_uri(&photo(GarmentShape::TShirt, 71));
    let (code, accepted) = sys.post(0, IMAGE, &request(&uri, [1, 0, 0], false), &ASYNC).await;
    assert_eq!(code, 202, "{accepted}");
    let id = accepted["request_id"].as_str().expect("id").to_string();
    let failed = sys.wait_terminal(&id, Duration::from_secs(90)).await;
    assert_eq!(failed["status"], "failed", "{failed}");

    let letter = dead_letter_of(&sys, &id).await;
    assert_eq!(letter["stage"], "analysis", "{letter}");
    assert!(letter["attempts"].as_u64() >= Some(1), "{letter}");
    assert!(letter["dead_at_ms"].as_u64() > Some(0), "{letter}");
    assert!(
        !letter["reason"].as_str().unwrap_or_default().is_empty(),
        "{letter}"
    );
    let letter_id = letter["id"].as_str().expect("id").to_string();

    // Admin keys only.
    let plain = System::client_with_key(Some(&sys.create_key(&["--name", "plain"])));
    let (code, _) = get(&plain, &format!("{}{DEAD}", sys.url(0))).await;
    assert_eq!(code, 403);
    let (code, shown) = sys.get_json(0, &format!("{DEAD}/{letter_id}")).await;
    assert_eq!(code, 200, "{shown}");
    assert_eq!(shown["job"]["status"], "failed", "{shown}");
    assert_eq!(shown["job_id"], id.as_str());
    assert_schema(&sys, "DeadLetterDetail", &shown).await;
    let (_, listed) = sys.get_json(0, DEAD).await;
    assert_schema(&sys, "DeadLetterList", &listed).await;
    let (code, _) = sys.get_json(0, &format!("{DEAD}/no-such-letter")).await;
    assert_eq!(code, 404);
    for (body, status) in [
        (json!({}), 422),
        (json!({ "ids": [] }), 422),
        (json!({ "ids": ["x"], "all": true }), 422),
        (json!({ "ids": ["no-such-letter"] }), 404),
    ] {
        let (code, answer) = sys.post(0, &format!("{DEAD}/replay"), &body, &[]).await;
        assert_eq!(code, status, "{body}: {answer}");
    }
    let listed = dlq(&sys, &["list"]);
    assert!(
        listed["dead_letters"]
            .as_array()
            .expect("list")
            .iter()
            .any(|d| d["id"] == letter_id.as_str()),
        "{listed}"
    );

    // The fault is removed; the replay runs the job again from its stage.
    gemini.heal();
    let replayed = dlq(&sys, &["replay", &letter_id]);
    assert_eq!(replayed, json!({ "replayed": 1 }));
    let done = sys.wait_terminal(&id, Duration::from_secs(90)).await;
    assert_eq!(done["status"], "completed", "{done}\n{}", sys.logs());
    assert!(
        done["result"]["image_variations"]
            .as_array()
            .is_some_and(|v| !v.is_empty()),
        "{done}"
    );
    let after = dlq(&sys, &["list"]);
    assert!(
        after["dead_letters"]
            .as_array()
            .expect("list")
            .iter()
            .all(|d| d["job_id"] != id.as_str()),
        "{after}"
    );

    // A second failure, purged instead: the job stays failed.
    gemini.fail_next(usize::MAX / 4);
    let (code, accepted) = sys.post(0, IMAGE, &request(&uri, [1, 0, 0], false), &ASYNC).await;
    assert_eq!(code, 202, "{accepted}");
    let second = accepted["request_id"].as_str().expect("id").to_string();
    dead_letter_of(&sys, &second).await;
    let purged = dlq(&sys, &["purge", "--all"]);
    assert!(purged["purged"].as_u64() >= Some(1), "{purged}");
    let (_, list) = sys.get_json(0, DEAD).await;
    assert_eq!(list["dead_letters"], json!([]), "{list}");
    let job = sys.wait_terminal(&second, Duration::from_secs(30)).await;
    assert_eq!(job["status"], "failed");
}

/// Seconds as (fractional) days, the unit of `[retention]`.
fn days(seconds: f64) -> String {
    (seconds / 86_400.0).to_string()
}

async fn retention_sweeps_finished_jobs_and_their_files_but_not_running_ones(target: Target) {
    // Gemini holds the analysis, so a job stays running as long as the test needs.
    let gemini = GatedGemini::start().await;
    let mut env = gemini.env();
    env.extend([
        ("ATELIER__RETENTION__JOBS_DAYS".to_string(), days(2.0)),
        ("ATELIER__RETENTION__BLOBS_DAYS".to_string(), days(2.0)),
        (
            "ATELIER__RETENTION__INTERVAL_SECONDS".to_string(),
            "1".to_string(),
        ),
    ]);
    let sys = System::start(
        target,
        Options {
            env,
            ..Options::default()
        },
    )
    .await;
    let uri = data_uri(&photo(GarmentShape::TShirt, 81));
    let body = request(&uri, [1, 0, 0], false);
    let (code, accepted) = sys.post(0, IMAGE, &body, &ASYNC).await;
    assert_eq!(code, 202, "{accepted}");
    let done = accepted["request_id"].as_str().expect("id").to_string();
    gemini.release(1);
    let job = sys.wait_terminal(&done, Duration::from_secs(90)).await;
    assert_eq!(job["status"], "completed", "{job}");
    assert!(sys.job_dir(&done).exists());

    // A second job, held running in the analysis while the first one expires.
    let (code, accepted) = sys.post(0, IMAGE, &body, &ASYNC).await;
    assert_eq!(code, 202, "{accepted}");
    let running = accepted["request_id"].as_str().expect("id").to_string();
    sys.wait_until(|| gemini.calls() == 2, "the second job reached Gemini")
        .await;

    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (code, _) = sys.get_json(0, &format!("{LIST}/{done}")).await;
        if code == 404 && !sys.job_dir(&done).exists() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the finished job was never swept\n{}",
            sys.logs()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (_, listed) = sys.get_json(0, LIST).await;
    assert!(!ids(&listed).contains(&done), "{listed}");
    // Older than the TTL by now, but running: untouched, and it still finishes.
    let (code, held) = sys.get_json(0, &format!("{LIST}/{running}")).await;
    assert_eq!((code, &held["status"]), (200, &json!("running")), "{held}");
    assert!(sys.job_dir(&running).exists(), "a running job's files stay");
    gemini.open();
    let job = sys.wait_terminal(&running, Duration::from_secs(90)).await;
    assert_eq!(job["status"], "completed", "{job}\n{}", sys.logs());
}

/// A gateway whose keys are off (a development setting) serves the operators'
/// routes to anyone, as it serves the console; with keys on, a key is needed.
#[tokio::test(flavor = "multi_thread")]
async fn operator_routes_are_open_only_when_keys_are_off() {
    let open = System::start(
        Target::Serve,
        Options {
            env: vec![("ATELIER__GATEWAY__AUTH__REQUIRED".into(), "false".into())],
            ..Options::default()
        },
    )
    .await;
    let anonymous = System::client_with_key(None);
    let (code, body) = get(&anonymous, &format!("{}{DEAD}", open.url(0))).await;
    assert_eq!(code, 200, "{body}");
    assert!(body["dead_letters"].is_array(), "{body}");
    let unknown = "/api/v1/admin/console/jobs/01a22bb7-2957-7595-8e7e-7ef223c384ca";
    let (code, body) = get(&anonymous, &format!("{}{unknown}", open.url(0))).await;
    assert_eq!(code, 404, "an unknown job, not a refusal: {body}");
    drop(open);

    let locked = System::start(Target::Serve, Options::default()).await;
    let (code, body) = get(&anonymous, &format!("{}{DEAD}", locked.url(0))).await;
    assert_eq!(code, 401, "{body}");
    let tenant = System::client_with_key(Some(&locked.create_key(&["--name", "shop"])));
    let (code, body) = get(&tenant, &format!("{}{DEAD}", locked.url(0))).await;
    assert_eq!(code, 403, "{body}");
}

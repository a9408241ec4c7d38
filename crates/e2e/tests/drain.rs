//! A gateway told to stop (SIGTERM, as Kubernetes and compose do) while a
//! synchronous caller waits and an event stream is open: the caller gets its
//! 202 with the job's `status_url`, the stream ends with a `reconnect` event,
//! the process exits well within its grace, and the job completes through
//! another gateway.

use std::time::{Duration, Instant};

use atelier_e2e::{GatedGemini, Options, System, Target, data_uri, photo, request};
use atelier_fixtures::GarmentShape;
use serde_json::Value;

const IMAGE: &str = "/api/v1/generate/image";
/// The gateway's own grace in `config/default.toml`; it must exit before it.
const GRACE: Duration = Duration::from_secs(20);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigterm_answers_waiting_callers_ends_streams_and_exits_in_time() {
    let gemini = GatedGemini::start().await;
    let mut env = gemini.env();
    env.push(("ATELIER__GATEWAY__DRAIN_DELAY_SECONDS".into(), "1".into()));
    // Both jobs in analysis at once, so both are seen waiting on Gemini.
    env.push(("ATELIER__WORKER__CONCURRENCY".into(), "2".into()));
    let mut sys = System::start(
        Target::Stack,
        Options {
            gateways: 2,
            env,
            ..Options::default()
        },
    )
    .await;
    let (first, second) = (sys.url(0), sys.url(1));
    let client = sys.http();
    let body = request(&data_uri(&photo(GarmentShape::TShirt, 5)), [1, 0, 0], false);

    // A job followed over an event stream on the first gateway …
    let (code, accepted) = sys.post(0, IMAGE, &body, &[("Prefer", "respond-async")]).await;
    assert_eq!(code, 202, "{accepted}");
    let streamed = accepted["request_id"].as_str().expect("id").to_string();
    let events = client
        .get(format!("{first}/api/v1/jobs/{streamed}/events"))
        .send()
        .await
        .expect("stream opens");
    assert_eq!(events.status().as_u16(), 200);
    // … and a synchronous caller waiting on the same gateway. Both jobs are
    // held at analysis (Gemini answers nothing until opened).
    let waiting = tokio::spawn({
        let (client, url, body) = (client.clone(), format!("{first}{IMAGE}"), body.clone());
        async move {
            let resp = client.post(url).json(&body).send().await.expect("answered");
            let code = resp.status().as_u16();
            (code, resp.json::<Value>().await.expect("json"))
        }
    });
    sys.wait_until(|| gemini.calls() == 2, "both jobs reached analysis")
        .await;

    let started = Instant::now();
    let exit = tokio::task::block_in_place(|| sys.stack().gateways[0].0.terminate());
    let took = started.elapsed();
    assert!(
        exit.is_some_and(|s| s.success()),
        "the gateway exits cleanly: {exit:?}\n{}",
        sys.logs()
    );
    assert!(took < GRACE, "the gateway took {took:?} to exit");

    let (code, answer) = waiting.await.expect("task");
    assert_eq!(code, 202, "the waiting caller is told where to follow: {answer}");
    let status_url = answer["status_url"].as_str().expect("status_url");
    let waited = answer["request_id"].as_str().expect("id").to_string();
    let stream = events.text().await.expect("the stream ends");
    assert!(stream.contains("event: reconnect"), "{stream}");

    // The jobs go on; the other gateway answers for them.
    gemini.open();
    for id in [&streamed, &waited] {
        let deadline = Instant::now() + Duration::from_secs(120);
        let url = if id == &waited {
            format!("{second}{status_url}")
        } else {
            format!("{second}/api/v1/jobs/{id}")
        };
        loop {
            let job: Value = client
                .get(&url)
                .send()
                .await
                .expect("second gateway")
                .json()
                .await
                .expect("json");
            if job["status"] == "completed" {
                break;
            }
            assert!(Instant::now() < deadline, "{id} never completed: {job}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

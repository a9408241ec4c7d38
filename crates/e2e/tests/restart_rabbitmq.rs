//! RabbitMQ stopped and started under a running stack. Every test here is named
//! `restart_*`: scripts/test.sh runs them alone, after the rest of the suite,
//! because they take the shared broker away from every other test.

use std::process::Command;
use std::time::{Duration, Instant};

use atelier_e2e::{Options, System, Target, data_uri, photo, request};
use atelier_fixtures::GarmentShape;

/// Brings RabbitMQ back when dropped, even if the test fails half-way.
struct BrokerGuard;

fn rabbitmqctl(args: &[&str]) -> bool {
    Command::new("rabbitmqctl")
        .args(args)
        .output()
        .is_ok_and(|o| o.status.success())
}

impl Drop for BrokerGuard {
    fn drop(&mut self) {
        rabbitmqctl(&["start_app"]);
        rabbitmqctl(&["await_startup"]);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn restart_rabbitmq_mid_run_every_job_completes() {
    let mut stack = System::start(Target::Stack, Options::default()).await;
    let uri = data_uri(&photo(GarmentShape::Dress, 41));
    let body = request(&uri, [1, 1, 1], true);
    let mut ids = Vec::new();
    for _ in 0..3 {
        let (code, accepted) = stack
            .post(0, "/api/v1/generate", &body, &[("Prefer", "respond-async")])
            .await;
        assert_eq!(code, 202, "{accepted}");
        ids.push(accepted["request_id"].as_str().expect("id").to_string());
    }

    let guard = BrokerGuard;
    assert!(rabbitmqctl(&["stop_app"]), "rabbitmqctl stop_app failed");
    // While the broker is away, new work is refused quickly and clearly.
    let started = Instant::now();
    let (code, answer) = stack.post(0, "/api/v1/generate/image", &body, &[]).await;
    assert_eq!(code, 503, "{answer}");
    assert!(started.elapsed() < Duration::from_secs(30), "the refusal hung");
    assert!(rabbitmqctl(&["start_app"]), "rabbitmqctl start_app failed");
    drop(guard);

    for id in &ids {
        let job = stack.wait_terminal(id, Duration::from_secs(180)).await;
        assert_eq!(job["status"], "completed", "{job}\n{}", stack.logs());
    }
    // Everyone reconnected: a synchronous request goes all the way through.
    stack.stack().wait_ready(true).await;
    let (code, done) = stack.post(0, "/api/v1/generate/image", &body, &[]).await;
    assert_eq!(code, 200, "{done}\n{}", stack.logs());
}

//! RabbitMQ restart (`rabbitmqctl stop_app` / `start_app`): publishes fail fast
//! while it is down, and consumers and subscriptions resume afterwards.
//! Disturbs every other RabbitMQ user on the machine while it runs: run it
//! alone (`cargo nextest run -p atelier-broker -E 'test(/^restart_/)'`).

mod common;

use std::process::Command;
use std::time::Duration;

use atelier_broker::{
    Admission, Broker, BrokerError, EventFilter, EventKey, EventTopic, MessageMeta, Pipeline, Received,
    RetryPolicy, Transport,
};
use atelier_core::event::EventKind;
use atelier_core::pipeline::Stage;
use tokio_util::sync::CancellationToken;

use common::{Note, Scripted, eventually, note, settings};

const WAIT: Duration = Duration::from_secs(60);

fn rabbitmqctl(args: &[&str]) -> anyhow::Result<()> {
    let root = Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false);
    let status = if root {
        Command::new("rabbitmqctl").args(args).status()?
    } else {
        Command::new("sudo")
            .arg("-n")
            .arg("rabbitmqctl")
            .args(args)
            .status()?
    };
    anyhow::ensure!(status.success(), "rabbitmqctl {args:?} failed: {status}");
    Ok(())
}

/// Brings RabbitMQ back even when the test fails half-way.
struct Restore;

impl Drop for Restore {
    fn drop(&mut self) {
        let _ = rabbitmqctl(&["start_app"]);
        let _ = rabbitmqctl(&["await_startup"]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_consumer_and_subscription_resume() -> anyhow::Result<()> {
    let prefix = common::prefix();
    let broker = Broker::connect(settings(&prefix), 100, "restart-test").await?;
    let transport: std::sync::Arc<dyn Transport> = std::sync::Arc::new(broker.clone());
    let pipeline: Pipeline<Note> =
        Pipeline::new(transport.clone(), RetryPolicy::from_settings(&settings(&prefix))?);
    let events: EventTopic<Note> = EventTopic::new(transport.clone());
    let handler = Scripted::ok();
    let token = CancellationToken::new();
    let consumer = {
        let (p, h, t) = (pipeline.clone(), handler.clone(), token.clone());
        tokio::spawn(async move { atelier_broker::run_stage(&p, Stage::Generation, 2, h, t).await })
    };
    let mut subscription = events.subscribe(EventFilter::AllJobs).await?;
    let publish = |job: &'static str| {
        let pipeline = pipeline.clone();
        async move {
            pipeline
                .publish(
                    Stage::Generation,
                    Admission::Accepted,
                    &note(job),
                    &MessageMeta::new(job, 0),
                )
                .await
        }
    };

    publish("before").await?;
    eventually(WAIT, "first message", || {
        let n = handler.seen().len();
        async move { n == 1 }
    })
    .await?;

    let guard = Restore;
    rabbitmqctl(&["stop_app"])?;
    eventually(WAIT, "disconnect noticed", || {
        let c = broker.is_connected();
        async move { !c }
    })
    .await?;
    let started = std::time::Instant::now();
    let err = publish("down").await.expect_err("RabbitMQ is down");
    assert!(matches!(err, BrokerError::Unavailable(_)), "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(4));

    rabbitmqctl(&["start_app"])?;
    drop(guard);
    broker.wait_connected(WAIT).await?;

    // The consumer re-subscribes on its own (the topology is re-declared on reconnect).
    publish("after").await?;
    eventually(WAIT, "message after restart", || {
        let ids: Vec<String> = handler.seen().iter().map(|d| d.meta.job_id.clone()).collect();
        async move { ids.iter().any(|i| i == "after") }
    })
    .await?;

    // The exclusive event queue was re-created; poll-publish until it is bound again.
    let mut received = None;
    let deadline = std::time::Instant::now() + WAIT;
    let key = EventKey {
        job_id: "after",
        kind: EventKind::Completed,
    };
    while received.is_none() && std::time::Instant::now() < deadline {
        events.publish(key, &note("ev")).await?;
        if let Ok(Some(Received::Message(n))) =
            tokio::time::timeout(Duration::from_millis(200), subscription.next()).await
        {
            received = Some(n.text);
        }
    }
    assert_eq!(received.as_deref(), Some("ev"));

    token.cancel();
    tokio::time::timeout(WAIT, consumer).await???;
    broker.delete_topology().await?;
    broker.close().await;
    Ok(())
}

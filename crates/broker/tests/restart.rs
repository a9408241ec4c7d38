//! RabbitMQ restart (`rabbitmqctl stop_app` / `start_app`): publishes fail fast
//! while it is down, and consumers and subscriptions resume afterwards.
//! Disturbs every other RabbitMQ user on the machine while it runs: run it
//! alone (`cargo nextest run -p atelier-broker -E 'test(/^restart_/)'`).

mod common;

use std::process::Command;
use std::time::Duration;

use atelier_broker::{Broker, BrokerError, MessageMeta};
use atelier_core::pipeline::Stage;
use futures::StreamExt;
use tokio_util::sync::CancellationToken;

use common::{Scripted, eventually, settings};

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
    let handler = Scripted::new(|_| async { Ok(()) });
    let token = CancellationToken::new();
    let consumer = {
        let (b, h, t) = (broker.clone(), handler.clone(), token.clone());
        tokio::spawn(async move { b.run_stage_consumer(Stage::Generation, 2, h, t).await })
    };
    let mut events = broker.subscribe_events("job.#", None).await?;

    broker
        .publish_stage(Stage::Generation, b"before", &MessageMeta::new("before", 0))
        .await?;
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
    let err = broker
        .publish_stage(Stage::Generation, b"down", &MessageMeta::new("down", 0))
        .await
        .expect_err("RabbitMQ is down");
    assert!(matches!(err, BrokerError::Unavailable(_)), "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(4));

    rabbitmqctl(&["start_app"])?;
    drop(guard);
    broker.wait_connected(WAIT).await?;

    // The consumer re-subscribes on its own; publish until the new queue
    // declarations are in (the topology is re-declared on reconnect).
    broker
        .publish_stage(Stage::Generation, b"after", &MessageMeta::new("after", 0))
        .await?;
    eventually(WAIT, "message after restart", || {
        let ids: Vec<String> = handler.seen().iter().map(|d| d.meta.job_id.clone()).collect();
        async move { ids.iter().any(|i| i == "after") }
    })
    .await?;

    // The exclusive event queue was re-created; poll-publish until it is bound again.
    let mut received = None;
    let deadline = std::time::Instant::now() + WAIT;
    while received.is_none() && std::time::Instant::now() < deadline {
        broker.publish_event("job.after.finished", b"ev").await?;
        if let Ok(Some((body, acker))) = tokio::time::timeout(Duration::from_millis(200), events.next()).await
        {
            acker.ack().await?;
            received = Some(body);
        }
    }
    assert_eq!(received.as_deref(), Some(&b"ev"[..]));

    token.cancel();
    tokio::time::timeout(WAIT, consumer).await???;
    broker.delete_topology().await?;
    broker.close().await;
    Ok(())
}

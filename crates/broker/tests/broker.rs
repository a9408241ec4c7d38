//! Behaviour against a real RabbitMQ at 127.0.0.1:5672. Every test uses its own
//! prefix, so they run in parallel, and deletes its topology at the end.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use atelier_broker::lapin::options::{BasicConsumeOptions, BasicPublishOptions};
use atelier_broker::lapin::types::FieldTable;
use atelier_broker::lapin::{BasicProperties, Connection, ConnectionProperties};
use atelier_broker::{Broker, BrokerError, HandlerError, MessageMeta, declare_topology};
use atelier_core::pipeline::Stage;
use futures::StreamExt;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use common::{Scripted, eventually, settings};

const WAIT: Duration = Duration::from_secs(15);

fn meta(job: &str, priority: u8) -> MessageMeta {
    MessageMeta::new(job, priority)
}

/// Runs a consumer in the background; returns its token and join handle.
fn spawn_consumer(
    broker: &Broker,
    stage: Stage,
    concurrency: u16,
    handler: Arc<Scripted>,
) -> (
    CancellationToken,
    tokio::task::JoinHandle<Result<(), BrokerError>>,
) {
    let token = CancellationToken::new();
    let b = broker.clone();
    let t = token.clone();
    let handle = tokio::spawn(async move { b.run_stage_consumer(stage, concurrency, handler, t).await });
    (token, handle)
}

async fn stop(
    token: CancellationToken,
    handle: tokio::task::JoinHandle<Result<(), BrokerError>>,
) -> anyhow::Result<()> {
    token.cancel();
    tokio::time::timeout(WAIT, handle).await???;
    Ok(())
}

#[tokio::test]
async fn topology_declares_twice_and_concurrently() -> anyhow::Result<()> {
    let prefix = common::prefix();
    let s = settings(&prefix);
    let conn = Connection::connect(common::URL, ConnectionProperties::default()).await?;
    let ch = conn.create_channel().await?;
    declare_topology(&ch, &s, 5).await?;
    declare_topology(&ch, &s, 5).await?;
    // Concurrent declarers, each on its own connection like separate services.
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            let conn = Connection::connect(common::URL, ConnectionProperties::default()).await?;
            let ch = conn.create_channel().await?;
            declare_topology(&ch, &s, 5).await?;
            anyhow::Ok(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    let broker = Broker::connect(s.clone(), 5, "topology-test").await?;
    assert_eq!(broker.queue_stats(Stage::PostProcessing).await?.messages, 0);
    assert_eq!(broker.dead_letter_stats().await?.messages, 0);
    broker
        .named_queue_stats(&broker.names().retry_queue(Stage::Upscaling, 1))
        .await?;
    broker.named_queue_stats(&broker.names().status_queue()).await?;
    broker.delete_topology().await?;
    broker.close().await;
    Ok(())
}

#[tokio::test]
async fn bounded_analysis_queue_rejects_when_full() -> anyhow::Result<()> {
    let prefix = common::prefix();
    let broker = Broker::connect(settings(&prefix), 3, "bounded-test").await?;
    for i in 0..3 {
        broker
            .publish_stage(Stage::Analysis, b"x", &meta(&format!("j{i}"), 0))
            .await?;
    }
    let err = broker
        .publish_stage(Stage::Analysis, b"x", &meta("j3", 0))
        .await
        .expect_err("4th publish must be rejected");
    assert!(matches!(err, BrokerError::QueueFull), "{err:?}");
    assert_eq!(broker.queue_stats(Stage::Analysis).await?.messages, 3);
    // Later stages are unbounded.
    for i in 0..5 {
        broker
            .publish_stage(Stage::Generation, b"x", &meta(&format!("g{i}"), 0))
            .await?;
    }
    broker.delete_topology().await?;
    broker.close().await;
    Ok(())
}

#[tokio::test]
async fn unroutable_event_is_fine_but_stage_publish_is_checked() -> anyhow::Result<()> {
    let prefix = common::prefix();
    let broker = common::broker(&prefix).await?;
    // Nobody bound to `other.*`: events are best effort.
    broker.publish_event("other.thing", b"e").await?;
    broker.publish_control(b"c").await?;
    // A stage queue that is gone makes the stage publish unroutable.
    let ch = broker.channel().await?;
    ch.queue_delete(
        broker.names().stage_queue(Stage::Upscaling).into(),
        Default::default(),
    )
    .await?;
    let err = broker
        .publish_stage(Stage::Upscaling, b"x", &meta("j", 0))
        .await
        .expect_err("unroutable");
    assert!(matches!(err, BrokerError::Unroutable), "{err:?}");
    broker.delete_topology().await?;
    broker.close().await;
    Ok(())
}

#[tokio::test]
async fn higher_priority_is_consumed_first() -> anyhow::Result<()> {
    let prefix = common::prefix();
    let broker = common::broker(&prefix).await?;
    broker
        .publish_stage(Stage::Generation, b"low", &meta("low", 1))
        .await?;
    broker
        .publish_stage(Stage::Generation, b"high", &meta("high", 9))
        .await?;
    let handler = Scripted::new(|_| async { Ok(()) });
    let (token, handle) = spawn_consumer(&broker, Stage::Generation, 1, handler.clone());
    eventually(WAIT, "both handled", || {
        let n = handler.seen().len();
        async move { n == 2 }
    })
    .await?;
    stop(token, handle).await?;
    let order: Vec<String> = handler.seen().iter().map(|d| d.meta.job_id.clone()).collect();
    assert_eq!(order, ["high", "low"]);
    assert_eq!(handler.seen()[0].meta.priority, 9);
    broker.delete_topology().await?;
    broker.close().await;
    Ok(())
}

#[tokio::test]
async fn consumer_runs_at_most_concurrency_and_acks_after_ok() -> anyhow::Result<()> {
    let prefix = common::prefix();
    let broker = common::broker(&prefix).await?;
    for i in 0..6 {
        broker
            .publish_stage(Stage::Upscaling, b"x", &meta(&format!("j{i}"), 0))
            .await?;
    }
    let in_flight = Arc::new(AtomicUsize::new(0));
    let high_water = Arc::new(AtomicUsize::new(0));
    let gate = Arc::new(Semaphore::new(0));
    let handler = {
        let (in_flight, high_water, gate) = (in_flight.clone(), high_water.clone(), gate.clone());
        Scripted::new(move |_| {
            let (in_flight, high_water, gate) = (in_flight.clone(), high_water.clone(), gate.clone());
            async move {
                let now = in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                high_water.fetch_max(now, Ordering::SeqCst);
                let permit = gate
                    .acquire()
                    .await
                    .map_err(|e| HandlerError::Transient(e.to_string()))?;
                permit.forget();
                in_flight.fetch_sub(1, Ordering::SeqCst);
                Ok(())
            }
        })
    };
    let (token, handle) = spawn_consumer(&broker, Stage::Upscaling, 2, handler.clone());
    eventually(WAIT, "two handlers running", || {
        let n = in_flight.load(Ordering::SeqCst);
        async move { n == 2 }
    })
    .await?;
    // Prefetch = 2 and nothing acked yet: 4 still ready in the queue.
    eventually(WAIT, "4 ready messages", || {
        let b = broker.clone();
        async move { b.queue_stats(Stage::Upscaling).await.map(|s| s.messages).ok() == Some(4) }
    })
    .await?;
    assert_eq!(handler.seen().len(), 2);
    gate.add_permits(6);
    eventually(WAIT, "all handled", || {
        let n = handler.seen().len();
        async move { n == 6 }
    })
    .await?;
    eventually(WAIT, "queue drained", || {
        let b = broker.clone();
        async move { b.queue_stats(Stage::Upscaling).await.map(|s| s.messages).ok() == Some(0) }
    })
    .await?;
    stop(token, handle).await?;
    assert_eq!(high_water.load(Ordering::SeqCst), 2);
    // Everything was acked: nothing comes back after the consumer is gone.
    let stats = broker.queue_stats(Stage::Upscaling).await?;
    assert_eq!((stats.messages, stats.consumers), (0, 0));
    broker.delete_topology().await?;
    broker.close().await;
    Ok(())
}

#[tokio::test]
async fn transient_error_is_retried_then_succeeds() -> anyhow::Result<()> {
    let prefix = common::prefix();
    let broker = common::broker(&prefix).await?;
    let mut m = meta("job-t", 4);
    m.deadline_ms = Some(123_456);
    broker.publish_stage(Stage::Generation, b"body", &m).await?;
    let handler = Scripted::new(|d| async move {
        if d.meta.attempt == 1 {
            Err(HandlerError::Transient("provider timeout".into()))
        } else {
            Ok(())
        }
    });
    let started = Instant::now();
    let (token, handle) = spawn_consumer(&broker, Stage::Generation, 1, handler.clone());
    eventually(WAIT, "second attempt", || {
        let n = handler.seen().len();
        async move { n == 2 }
    })
    .await?;
    // The retry went through the 50 ms delay queue (jitter only shortens, ≤20 %).
    assert!(started.elapsed() >= Duration::from_millis(40));
    stop(token, handle).await?;
    let seen = handler.seen();
    assert_eq!(handler.attempts(), [1, 2]);
    assert_eq!(seen[1].body.as_ref(), b"body");
    assert_eq!(seen[1].meta.job_id, "job-t");
    assert_eq!(seen[1].meta.priority, 4);
    assert_eq!(seen[1].meta.deadline_ms, Some(123_456));
    assert_eq!(seen[1].meta.traceparent, m.traceparent);
    assert!(handler.dead().is_empty());
    assert_eq!(broker.dead_letter_stats().await?.messages, 0);
    broker.delete_topology().await?;
    broker.close().await;
    Ok(())
}

#[tokio::test]
async fn always_transient_ends_in_dead_letter_queue() -> anyhow::Result<()> {
    let prefix = common::prefix();
    let broker = common::broker(&prefix).await?;
    broker
        .publish_stage(Stage::Upscaling, b"doomed", &meta("job-d", 0))
        .await?;
    let handler = Scripted::new(|_| async { Err(HandlerError::Transient("flaky".into())) });
    let (token, handle) = spawn_consumer(&broker, Stage::Upscaling, 2, handler.clone());
    eventually(WAIT, "dead letter", || {
        let b = broker.clone();
        async move { b.dead_letter_stats().await.map(|s| s.messages).ok() == Some(1) }
    })
    .await?;
    eventually(WAIT, "dead called", || {
        let n = handler.dead().len();
        async move { n == 1 }
    })
    .await?;
    stop(token, handle).await?;
    // max_attempts = 3, and delays [50, 100]: attempts 1, 2, 3 then give up.
    assert_eq!(handler.attempts(), [1, 2, 3]);
    let dead = handler.dead();
    assert_eq!(dead.len(), 1);
    assert!(dead[0].1.contains("flaky"), "{}", dead[0].1);
    let peek = broker.dead_letters_peek(5).await?;
    assert_eq!(peek.len(), 1);
    assert_eq!(broker.dead_letter_stats().await?.messages, 1, "peek keeps it");
    let dl = broker.get_dead_letter().await?.expect("a dead letter");
    assert_eq!(dl.body.as_ref(), b"doomed");
    assert!(
        dl.reason().is_some_and(|r| r.contains("3 attempts")),
        "{:?}",
        dl.headers
    );
    assert_eq!(dl.headers.get("x-stage").map(String::as_str), Some("upscaling"));
    assert_eq!(dl.headers.get("x-attempt").map(String::as_str), Some("3"));
    assert_eq!(dl.meta.job_id, "job-d");
    assert_eq!(broker.dead_letter_stats().await?.messages, 0);
    broker.delete_topology().await?;
    broker.close().await;
    Ok(())
}

#[tokio::test]
async fn permanent_error_is_not_retried() -> anyhow::Result<()> {
    let prefix = common::prefix();
    let broker = common::broker(&prefix).await?;
    broker
        .publish_stage(Stage::Analysis, b"bad image", &meta("job-p", 0))
        .await?;
    let handler = Scripted::new(|_| async { Err(HandlerError::Permanent("undecodable image".into())) });
    let (token, handle) = spawn_consumer(&broker, Stage::Analysis, 1, handler.clone());
    eventually(WAIT, "dead called", || {
        let n = handler.dead().len();
        async move { n == 1 }
    })
    .await?;
    stop(token, handle).await?;
    assert_eq!(handler.attempts(), [1]);
    assert_eq!(handler.dead()[0].1, "undecodable image");
    assert_eq!(broker.queue_stats(Stage::Analysis).await?.messages, 0);
    let dl = broker.get_dead_letter().await?.expect("kept for operators");
    assert_eq!(dl.reason(), Some("undecodable image"));
    broker.delete_topology().await?;
    broker.close().await;
    Ok(())
}

/// Takes one message with a raw channel and closes it unacked, as a crashed
/// worker would: RabbitMQ requeues it with `redelivered = true`.
async fn take_and_crash(broker: &Broker, stage: Stage) -> anyhow::Result<()> {
    let conn = Connection::connect(common::URL, ConnectionProperties::default()).await?;
    let ch = conn.create_channel().await?;
    let mut consumer = ch
        .basic_consume(
            broker.names().stage_queue(stage).into(),
            "crasher".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await?;
    let d = tokio::time::timeout(WAIT, consumer.next())
        .await?
        .ok_or_else(|| anyhow::anyhow!("no delivery"))??;
    assert!(!d.redelivered);
    conn.close(200, "crash".into()).await?;
    Ok(())
}

#[tokio::test]
async fn redelivery_counts_as_an_attempt() -> anyhow::Result<()> {
    let prefix = common::prefix();
    let broker = common::broker(&prefix).await?;
    broker
        .publish_stage(Stage::Upscaling, b"x", &meta("job-r", 0))
        .await?;
    take_and_crash(&broker, Stage::Upscaling).await?;
    let handler = Scripted::new(|_| async { Ok(()) });
    let (token, handle) = spawn_consumer(&broker, Stage::Upscaling, 1, handler.clone());
    eventually(WAIT, "handled", || {
        let n = handler.seen().len();
        async move { n == 1 }
    })
    .await?;
    stop(token, handle).await?;
    let seen = handler.seen();
    assert_eq!(seen[0].meta.attempt, 2);
    assert!(!seen[0].redelivered);
    assert_eq!(seen[0].meta.job_id, "job-r");

    // At the last attempt a crash redelivery goes to the dead-letter queue unrun.
    let mut last = meta("job-k", 0);
    last.attempt = 3;
    broker.publish_stage(Stage::Upscaling, b"killer", &last).await?;
    take_and_crash(&broker, Stage::Upscaling).await?;
    let handler = Scripted::new(|_| async { Ok(()) });
    let (token, handle) = spawn_consumer(&broker, Stage::Upscaling, 1, handler.clone());
    eventually(WAIT, "dead called", || {
        let n = handler.dead().len();
        async move { n == 1 }
    })
    .await?;
    stop(token, handle).await?;
    assert!(handler.seen().is_empty(), "a killer message is not run again");
    let dl = broker.get_dead_letter().await?.expect("dead letter");
    assert!(
        dl.reason().is_some_and(|r| r.contains("redelivered")),
        "{:?}",
        dl.headers
    );
    broker.delete_topology().await?;
    broker.close().await;
    Ok(())
}

#[tokio::test]
async fn missing_headers_default_to_attempt_one() -> anyhow::Result<()> {
    let prefix = common::prefix();
    let broker = common::broker(&prefix).await?;
    let ch = broker.channel().await?;
    ch.basic_publish(
        broker.names().pipeline_exchange().into(),
        broker.names().stage_queue(Stage::PostProcessing).into(),
        BasicPublishOptions::default(),
        b"raw",
        BasicProperties::default().with_message_id("job-m".into()),
    )
    .await?
    .await?;
    let handler = Scripted::new(|d| async move {
        if d.meta.attempt == 1 {
            Err(HandlerError::Transient("again".into()))
        } else {
            Ok(())
        }
    });
    let (token, handle) = spawn_consumer(&broker, Stage::PostProcessing, 1, handler.clone());
    eventually(WAIT, "retried", || {
        let n = handler.seen().len();
        async move { n == 2 }
    })
    .await?;
    stop(token, handle).await?;
    assert_eq!(handler.attempts(), [1, 2]);
    assert_eq!(handler.seen()[0].meta.job_id, "job-m");
    broker.delete_topology().await?;
    broker.close().await;
    Ok(())
}

#[tokio::test]
async fn graceful_shutdown_waits_for_in_flight_handler() -> anyhow::Result<()> {
    let prefix = common::prefix();
    let broker = common::broker(&prefix).await?;
    broker
        .publish_stage(Stage::Generation, b"x", &meta("job-s", 0))
        .await?;
    let gate = Arc::new(Semaphore::new(0));
    let handler = {
        let gate = gate.clone();
        Scripted::new(move |_| {
            let gate = gate.clone();
            async move {
                let _p = gate
                    .acquire()
                    .await
                    .map_err(|e| HandlerError::Transient(e.to_string()))?;
                Ok(())
            }
        })
    };
    let (token, handle) = spawn_consumer(&broker, Stage::Generation, 2, handler.clone());
    eventually(WAIT, "handler started", || {
        let n = handler.seen().len();
        async move { n == 1 }
    })
    .await?;
    token.cancel();
    // The consumer is cancelled at once (no new deliveries) ...
    eventually(WAIT, "consumer cancelled", || {
        let b = broker.clone();
        async move { b.queue_stats(Stage::Generation).await.map(|s| s.consumers).ok() == Some(0) }
    })
    .await?;
    // ... but the runtime waits for the running handler.
    assert!(!handle.is_finished());
    broker
        .publish_stage(Stage::Generation, b"y", &meta("job-after", 0))
        .await?;
    gate.add_permits(1);
    tokio::time::timeout(WAIT, handle).await???;
    assert_eq!(handler.seen().len(), 1, "nothing taken after shutdown");
    // The in-flight message was acked; only the later one waits.
    assert_eq!(broker.queue_stats(Stage::Generation).await?.messages, 1);
    broker.delete_topology().await?;
    broker.close().await;
    Ok(())
}

#[tokio::test]
async fn unreachable_broker_is_unavailable_quickly() -> anyhow::Result<()> {
    let mut s = settings(&common::prefix());
    s.url = "amqp://guest:guest@127.0.0.1:1/%2f".into();
    s.publish_timeout_ms = 1_000;
    let started = Instant::now();
    let err = Broker::connect(s.clone(), 10, "unreachable")
        .await
        .expect_err("nothing listens on port 1");
    assert!(matches!(err, BrokerError::Unavailable(_)), "{err:?}");
    let lazy = Broker::connect_lazy(s, 10, "unreachable-lazy");
    assert!(!lazy.is_connected());
    let err = lazy
        .publish_stage(Stage::Analysis, b"x", &meta("j", 0))
        .await
        .expect_err("not connected");
    assert!(matches!(err, BrokerError::Unavailable(_)), "{err:?}");
    let err = lazy.publish_event("job.j.done", b"e").await.expect_err("down");
    assert!(matches!(err, BrokerError::Unavailable(_)), "{err:?}");
    assert!(matches!(
        lazy.wait_connected(Duration::from_millis(200)).await,
        Err(BrokerError::Timeout)
    ));
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    lazy.close().await;
    Ok(())
}

#[tokio::test]
async fn subscriptions_receive_events_and_control() -> anyhow::Result<()> {
    let prefix = common::prefix();
    let broker = common::broker(&prefix).await?;
    let mut job = broker.subscribe_events("job.j1.#", None).await?;
    let mut control = broker.subscribe_control().await?;
    let status_queue = broker.names().status_queue();
    let mut status = broker.subscribe_events("job.#", Some(&status_queue)).await?;
    broker.publish_event("job.j2.stage.finished", b"other").await?;
    broker.publish_event("job.j1.finished", b"mine").await?;
    broker.publish_control(b"cancel j1").await?;

    let (body, acker) = tokio::time::timeout(WAIT, job.next()).await?.expect("event");
    assert_eq!(body.as_ref(), b"mine");
    acker.ack().await?;
    let (body, acker) = tokio::time::timeout(WAIT, control.next())
        .await?
        .expect("control");
    assert_eq!(body.as_ref(), b"cancel j1");
    acker.ack().await?;
    let mut got = Vec::new();
    for _ in 0..2 {
        let (body, acker) = tokio::time::timeout(WAIT, status.next()).await?.expect("status");
        got.push(body);
        acker.ack().await?;
    }
    assert_eq!(got, [&b"other"[..], &b"mine"[..]]);
    drop((job, control, status));
    broker.delete_topology().await?;
    broker.close().await;
    Ok(())
}

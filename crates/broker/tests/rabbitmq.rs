//! What only RabbitMQ has: the declared topology, connection failures, raw
//! messages from other clients, and a worker whose connection dies.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use atelier_broker::lapin::options::{BasicConsumeOptions, BasicPublishOptions};
use atelier_broker::lapin::types::FieldTable;
use atelier_broker::lapin::{BasicProperties, Connection, ConnectionProperties};
use atelier_broker::{Admission, Broker, BrokerError, Transport, declare_topology};
use atelier_core::pipeline::Stage;
use bytes::Bytes;
use futures::StreamExt;
use prost::Message;

use common::{Env, Kind, Scripted, WAIT, eventually, meta, note, settings, stop};

#[tokio::test]
async fn topology_declares_twice_and_concurrently() -> anyhow::Result<()> {
    let s = settings(&common::prefix());
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
    let names = broker.names().clone();
    for queue in [
        names.stage_queue(Stage::PostProcessing),
        names.resume_queue(Stage::Analysis),
        names.delay_queue(Stage::Upscaling, 1),
        names.dead_letter_queue(),
        names.status_queue(),
    ] {
        assert_eq!(broker.named_queue_stats(&queue).await?.messages, 0, "{queue}");
    }
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
        .publish(
            Stage::Analysis,
            Admission::New,
            Bytes::from_static(b"x"),
            &meta("j", 0),
        )
        .await
        .expect_err("not connected");
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
async fn a_raw_message_without_headers_runs_as_attempt_one() -> anyhow::Result<()> {
    let env = Env::new(Kind::RabbitMq, 100).await?;
    let broker = env.broker().expect("rabbitmq").clone();
    let ch = broker.channel().await?;
    ch.basic_publish(
        broker.names().pipeline_exchange().into(),
        broker.names().stage_queue(Stage::PostProcessing).into(),
        BasicPublishOptions::default(),
        &note("raw").encode_to_vec(),
        BasicProperties::default().with_message_id("job-m".into()),
    )
    .await?
    .await?;
    let handler = Scripted::new(|d| async move {
        if d.meta.attempt == 1 {
            Err(atelier_broker::HandlerError::Transient("again".into()))
        } else {
            Ok(())
        }
    });
    let (token, handle) = env.spawn(Stage::PostProcessing, 1, handler.clone());
    eventually(WAIT, "retried", || {
        let n = handler.seen().len();
        async move { n == 2 }
    })
    .await?;
    stop(token, handle).await?;
    assert_eq!(handler.attempts(), [1, 2]);
    assert_eq!(handler.seen()[0].meta.job_id, "job-m");
    env.finish().await
}

#[tokio::test]
async fn a_worker_whose_connection_dies_costs_the_message_an_attempt() -> anyhow::Result<()> {
    let env = Env::new(Kind::RabbitMq, 100).await?;
    let broker = env.broker().expect("rabbitmq").clone();
    env.pipeline
        .publish(
            Stage::Upscaling,
            Admission::Accepted,
            &note("x"),
            &meta("job-c", 0),
        )
        .await?;
    // Take it on a raw connection and close that connection unacked.
    let conn = Connection::connect(common::URL, ConnectionProperties::default()).await?;
    let ch = conn.create_channel().await?;
    let mut consumer = ch
        .basic_consume(
            broker.names().stage_queue(Stage::Upscaling).into(),
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
    let handler = Scripted::ok();
    let (token, handle) = env.spawn(Stage::Upscaling, 1, handler.clone());
    eventually(WAIT, "handled", || {
        let n = handler.seen().len();
        async move { n == 1 }
    })
    .await?;
    stop(token, handle).await?;
    assert_eq!(handler.attempts(), [2]);
    env.finish().await
}

#[tokio::test]
async fn prefetched_deliveries_are_handed_back_without_costing_an_attempt() -> anyhow::Result<()> {
    let env = Env::new(Kind::RabbitMq, 100).await?;
    for i in 0..3 {
        env.pipeline
            .publish(
                Stage::Generation,
                Admission::Accepted,
                &note("x"),
                &meta(&format!("j{i}"), 0),
            )
            .await?;
    }
    let mut deliveries = env.pipeline.consume(Stage::Generation, 3).await?;
    let first = tokio::time::timeout(WAIT, deliveries.next())
        .await?
        .expect("delivery");
    first.expect("decodes").ack().await;
    // RabbitMQ has pushed the other two into this consumer's prefetch by now.
    eventually(WAIT, "prefetched", || async {
        env.depth(Stage::Generation).await == 0
    })
    .await?;
    deliveries.close().await;
    let handler: Arc<Scripted> = Scripted::ok();
    let (token, handle) = env.spawn(Stage::Generation, 1, handler.clone());
    eventually(WAIT, "the two handed back run", || {
        let n = handler.seen().len();
        async move { n == 2 }
    })
    .await?;
    stop(token, handle).await?;
    assert_eq!(handler.attempts(), [1, 1], "a hand-back is not an attempt");
    env.finish().await
}

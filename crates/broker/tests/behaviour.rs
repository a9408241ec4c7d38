//! The transport behaviour suite: every test runs on RabbitMQ (at
//! 127.0.0.1:5672, each with its own prefix, topology deleted at the end) and
//! on the in-process transport. The two must be indistinguishable to the
//! typed layer and the consumer runtime.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use atelier_broker::{Admission, BrokerError, EventFilter, EventKey, HandlerError, Origin, Received};
use atelier_core::event::EventKind;
use atelier_core::pipeline::Stage;
use bytes::Bytes;
use tokio::sync::Semaphore;

use common::{Env, Kind, Scripted, WAIT, eventually, meta, note, stop};

/// Declares each named test once per transport.
macro_rules! on_both_transports {
    ($($name:ident),* $(,)?) => {
        mod rabbitmq {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() -> anyhow::Result<()> {
                    super::$name(super::Kind::RabbitMq).await
                }
            )*
        }
        mod in_process {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() -> anyhow::Result<()> {
                    super::$name(super::Kind::InProcess).await
                }
            )*
        }
    };
}

on_both_transports!(
    bounded_first_queue_refuses_new_jobs_only,
    higher_priority_is_consumed_first,
    consumer_runs_at_most_concurrency_and_acks_after_ok,
    transient_error_is_retried_then_succeeds,
    always_transient_ends_in_dead_letter_queue,
    permanent_error_is_not_retried,
    a_panicking_handler_costs_an_attempt,
    an_abandoned_delivery_comes_back_as_its_next_attempt,
    an_undecodable_message_is_dead_lettered_and_the_next_runs,
    a_retry_is_never_dropped_by_a_full_first_queue,
    graceful_shutdown_waits_for_in_flight_handler,
    subscriptions_receive_events_and_control,
    the_status_feed_acknowledges_or_dead_letters,
);

async fn bounded_first_queue_refuses_new_jobs_only(kind: Kind) -> anyhow::Result<()> {
    let env = Env::new(kind, 3).await?;
    for i in 0..3 {
        env.pipeline
            .publish(
                Stage::Analysis,
                Admission::New,
                &note("x"),
                &meta(&format!("j{i}"), 0),
            )
            .await?;
    }
    let err = env
        .pipeline
        .publish(Stage::Analysis, Admission::New, &note("x"), &meta("j3", 0))
        .await
        .expect_err("the 4th new job must be refused");
    assert!(matches!(err, BrokerError::QueueFull), "{err:?}");
    // Work the system already accepted is never refused by the bound.
    env.pipeline
        .publish(
            Stage::Analysis,
            Admission::Accepted,
            &note("retry"),
            &meta("r", 0),
        )
        .await?;
    assert_eq!(env.depth(Stage::Analysis).await, 4);
    // Later stages are unbounded.
    for i in 0..5 {
        env.pipeline
            .publish(
                Stage::Generation,
                Admission::New,
                &note("x"),
                &meta(&format!("g{i}"), 0),
            )
            .await?;
    }
    assert_eq!(env.depth(Stage::Generation).await, 5);
    env.finish().await
}

async fn higher_priority_is_consumed_first(kind: Kind) -> anyhow::Result<()> {
    let env = Env::new(kind, 100).await?;
    for (text, priority) in [("low", 1), ("high", 9), ("mid", 5)] {
        env.pipeline
            .publish(
                Stage::Generation,
                Admission::Accepted,
                &note(text),
                &meta(text, priority),
            )
            .await?;
    }
    let handler = Scripted::ok();
    let (token, handle) = env.spawn(Stage::Generation, 1, handler.clone());
    eventually(WAIT, "all handled", || {
        let n = handler.seen().len();
        async move { n == 3 }
    })
    .await?;
    stop(token, handle).await?;
    assert_eq!(handler.texts(), ["high", "mid", "low"]);
    assert_eq!(handler.seen()[0].meta.priority, 9);
    env.finish().await
}

async fn consumer_runs_at_most_concurrency_and_acks_after_ok(kind: Kind) -> anyhow::Result<()> {
    let env = Env::new(kind, 100).await?;
    for i in 0..6 {
        env.pipeline
            .publish(
                Stage::Upscaling,
                Admission::Accepted,
                &note("x"),
                &meta(&format!("j{i}"), 0),
            )
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
    let (token, handle) = env.spawn(Stage::Upscaling, 2, handler.clone());
    eventually(WAIT, "two handlers running", || {
        let n = in_flight.load(Ordering::SeqCst);
        async move { n == 2 }
    })
    .await?;
    // Prefetch = 2 and nothing settled yet: 4 still wait in the queue.
    eventually(WAIT, "4 ready messages", || async {
        env.depth(Stage::Upscaling).await == 4
    })
    .await?;
    assert_eq!(handler.seen().len(), 2);
    gate.add_permits(6);
    eventually(WAIT, "all handled", || {
        let n = handler.seen().len();
        async move { n == 6 }
    })
    .await?;
    stop(token, handle).await?;
    assert_eq!(high_water.load(Ordering::SeqCst), 2);
    // Everything was acknowledged: nothing comes back after the consumer is gone.
    let stats = env.transport.queue_stats(Stage::Upscaling).await?;
    assert_eq!((stats.messages, stats.unacked, stats.consumers), (0, 0, 0));
    env.finish().await
}

async fn transient_error_is_retried_then_succeeds(kind: Kind) -> anyhow::Result<()> {
    let env = Env::new(kind, 100).await?;
    let mut m = meta("job-t", 4);
    m.deadline_ms = Some(123_456);
    env.pipeline
        .publish(Stage::Generation, Admission::Accepted, &note("body"), &m)
        .await?;
    let handler = Scripted::new(|d| async move {
        if d.meta.attempt == 1 {
            Err(HandlerError::Transient("provider timeout".into()))
        } else {
            Ok(())
        }
    });
    let started = Instant::now();
    let (token, handle) = env.spawn(Stage::Generation, 1, handler.clone());
    eventually(WAIT, "second attempt", || {
        let n = handler.seen().len();
        async move { n == 2 }
    })
    .await?;
    // The retry waited its 50 ms delay (jitter only shortens, by at most 20 %).
    assert!(started.elapsed() >= Duration::from_millis(40));
    stop(token, handle).await?;
    let seen = handler.seen();
    assert_eq!(handler.attempts(), [1, 2]);
    assert_eq!(seen[1].note.text, "body");
    assert_eq!(seen[1].meta.job_id, "job-t");
    assert_eq!(seen[1].meta.priority, 4);
    assert_eq!(seen[1].meta.deadline_ms, Some(123_456));
    assert_eq!(seen[1].meta.traceparent, m.traceparent);
    assert!(handler.dead().is_empty());
    assert_eq!(env.dead().await, 0);
    env.finish().await
}

async fn always_transient_ends_in_dead_letter_queue(kind: Kind) -> anyhow::Result<()> {
    let env = Env::new(kind, 100).await?;
    env.pipeline
        .publish(
            Stage::Upscaling,
            Admission::Accepted,
            &note("doomed"),
            &meta("job-d", 0),
        )
        .await?;
    let handler = Scripted::new(|_| async { Err(HandlerError::Transient("flaky".into())) });
    let (token, handle) = env.spawn(Stage::Upscaling, 2, handler.clone());
    eventually(WAIT, "dead called", || {
        let n = handler.dead().len();
        async move { n == 1 }
    })
    .await?;
    stop(token, handle).await?;
    // max_attempts = 3: attempts 1, 2, 3, then give up.
    assert_eq!(handler.attempts(), [1, 2, 3]);
    let dead = handler.dead();
    assert!(
        dead[0].1.contains("3 attempts") && dead[0].1.contains("flaky"),
        "{}",
        dead[0].1
    );
    assert_eq!(env.dead().await, 1);
    let listed = env.transport.dead_letters(5).await?;
    assert_eq!(listed.len(), 1);
    assert_eq!(env.dead().await, 1, "listing keeps it");
    let letter = &listed[0];
    assert_eq!(letter.origin, Some(Origin::Stage(Stage::Upscaling)));
    assert_eq!(letter.meta.job_id, "job-d");
    assert_eq!(letter.meta.attempt, 3);
    assert!(letter.reason.contains("3 attempts"), "{}", letter.reason);
    assert!(letter.at_ms > 0);
    // Taken by its id.
    assert!(
        env.transport
            .take_dead_letter(Some("no-such-id"))
            .await?
            .is_none()
    );
    let taken = env
        .transport
        .take_dead_letter(Some(&letter.id))
        .await?
        .expect("the letter");
    assert_eq!(taken.body, letter.body);
    assert_eq!(env.dead().await, 0);
    env.finish().await
}

async fn permanent_error_is_not_retried(kind: Kind) -> anyhow::Result<()> {
    let env = Env::new(kind, 100).await?;
    env.pipeline
        .publish(
            Stage::Analysis,
            Admission::New,
            &note("bad image"),
            &meta("job-p", 0),
        )
        .await?;
    let handler = Scripted::new(|_| async { Err(HandlerError::Permanent("undecodable image".into())) });
    let (token, handle) = env.spawn(Stage::Analysis, 1, handler.clone());
    eventually(WAIT, "dead called", || {
        let n = handler.dead().len();
        async move { n == 1 }
    })
    .await?;
    stop(token, handle).await?;
    assert_eq!(handler.attempts(), [1]);
    assert_eq!(handler.dead()[0].1, "undecodable image");
    assert_eq!(env.depth(Stage::Analysis).await, 0);
    let letter = env
        .transport
        .take_dead_letter(None)
        .await?
        .expect("kept for operators");
    assert_eq!(letter.reason, "undecodable image");
    env.finish().await
}

async fn a_panicking_handler_costs_an_attempt(kind: Kind) -> anyhow::Result<()> {
    let env = Env::new(kind, 100).await?;
    env.pipeline
        .publish(
            Stage::Generation,
            Admission::Accepted,
            &note("once"),
            &meta("job-once", 0),
        )
        .await?;
    env.pipeline
        .publish(
            Stage::Generation,
            Admission::Accepted,
            &note("always"),
            &meta("job-always", 0),
        )
        .await?;
    let handler = Scripted::new(|d| async move {
        assert!(
            !(d.note.text == "always" || d.meta.attempt == 1),
            "a handler bug on {}",
            d.note.text
        );
        Ok(())
    });
    let (token, handle) = env.spawn(Stage::Generation, 1, handler.clone());
    eventually(WAIT, "the always-panicking one given up", || {
        let n = handler.dead().len();
        async move { n == 1 }
    })
    .await?;
    stop(token, handle).await?;
    let once: Vec<u32> = handler
        .seen()
        .iter()
        .filter(|s| s.note.text == "once")
        .map(|s| s.meta.attempt)
        .collect();
    assert_eq!(once, [1, 2], "a panic is a failed attempt, retried");
    let (dead_meta, reason) = &handler.dead()[0];
    assert_eq!(dead_meta.job_id, "job-always");
    assert!(reason.contains("panicked"), "{reason}");
    assert_eq!(env.dead().await, 1);
    env.finish().await
}

async fn an_abandoned_delivery_comes_back_as_its_next_attempt(kind: Kind) -> anyhow::Result<()> {
    let env = Env::new(kind, 100).await?;
    env.pipeline
        .publish(
            Stage::Upscaling,
            Admission::Accepted,
            &note("x"),
            &meta("job-r", 0),
        )
        .await?;
    // A worker takes it and dies without settling it.
    {
        let mut deliveries = env.pipeline.consume(Stage::Upscaling, 1).await?;
        let taken = tokio::time::timeout(WAIT, deliveries.next())
            .await?
            .expect("a delivery");
        drop(taken.expect("decodes"));
        deliveries.close().await;
    }
    let handler = Scripted::ok();
    let (token, handle) = env.spawn(Stage::Upscaling, 1, handler.clone());
    eventually(WAIT, "handled", || {
        let n = handler.seen().len();
        async move { n == 1 }
    })
    .await?;
    stop(token, handle).await?;
    assert_eq!(handler.seen()[0].meta.attempt, 2);
    assert_eq!(handler.seen()[0].meta.job_id, "job-r");

    // At the last attempt an abandoned delivery goes to the dead-letter queue unrun.
    let mut last = meta("job-k", 0);
    last.attempt = 3;
    env.pipeline
        .publish(Stage::Upscaling, Admission::Accepted, &note("killer"), &last)
        .await?;
    let mut deliveries = env.pipeline.consume(Stage::Upscaling, 1).await?;
    let taken = tokio::time::timeout(WAIT, deliveries.next())
        .await?
        .expect("a delivery");
    drop(taken.expect("decodes"));
    let rejected = tokio::time::timeout(WAIT, deliveries.next())
        .await?
        .expect("an item")
        .expect_err("the killer is not handed out again");
    assert_eq!(rejected.meta.job_id, "job-k");
    assert!(rejected.reason.contains("redelivered"), "{}", rejected.reason);
    deliveries.close().await;
    let letter = env.transport.take_dead_letter(None).await?.expect("dead letter");
    assert!(letter.reason.contains("redelivered"), "{}", letter.reason);
    env.finish().await
}

async fn an_undecodable_message_is_dead_lettered_and_the_next_runs(kind: Kind) -> anyhow::Result<()> {
    let env = Env::new(kind, 100).await?;
    env.transport
        .publish(
            Stage::PostProcessing,
            Admission::Accepted,
            Bytes::from_static(b"\xff\xff\xff"),
            &meta("job-garbage", 0),
        )
        .await?;
    env.pipeline
        .publish(
            Stage::PostProcessing,
            Admission::Accepted,
            &note("fine"),
            &meta("job-fine", 0),
        )
        .await?;
    let handler = Scripted::ok();
    let (token, handle) = env.spawn(Stage::PostProcessing, 1, handler.clone());
    eventually(WAIT, "both dealt with", || {
        let (seen, dead) = (handler.seen().len(), handler.dead().len());
        async move { seen == 1 && dead == 1 }
    })
    .await?;
    stop(token, handle).await?;
    assert_eq!(handler.texts(), ["fine"]);
    let (dead_meta, reason) = &handler.dead()[0];
    assert_eq!(dead_meta.job_id, "job-garbage");
    assert!(reason.contains("undecodable"), "{reason}");
    assert_eq!(env.dead().await, 1);
    env.finish().await
}

async fn a_retry_is_never_dropped_by_a_full_first_queue(kind: Kind) -> anyhow::Result<()> {
    const BOUND: u32 = 2;
    let env = Env::new(kind, BOUND).await?;
    env.pipeline
        .publish(
            Stage::Analysis,
            Admission::New,
            &note("retried"),
            &meta("job-r", 0),
        )
        .await?;
    let gate = Arc::new(Semaphore::new(0));
    let handler = {
        let gate = gate.clone();
        Scripted::new(move |d| {
            let gate = gate.clone();
            async move {
                if d.note.text == "retried" && d.meta.attempt == 1 {
                    // Fail only once the intake is full, so the retry comes due then.
                    let permit = gate
                        .acquire()
                        .await
                        .map_err(|e| HandlerError::Transient(e.to_string()))?;
                    permit.forget();
                    return Err(HandlerError::Transient("provider timeout".into()));
                }
                Ok(())
            }
        })
    };
    let (token, handle) = env.spawn(Stage::Analysis, 1, handler.clone());
    eventually(WAIT, "first attempt running", || {
        let n = handler.seen().len();
        async move { n == 1 }
    })
    .await?;
    for i in 0..BOUND {
        env.pipeline
            .publish(
                Stage::Analysis,
                Admission::New,
                &note("filler"),
                &meta(&format!("f{i}"), 0),
            )
            .await?;
    }
    let err = env
        .pipeline
        .publish(
            Stage::Analysis,
            Admission::New,
            &note("refused"),
            &meta("over", 0),
        )
        .await
        .expect_err("the intake is full");
    assert!(matches!(err, BrokerError::QueueFull));
    gate.add_permits(1);
    eventually(WAIT, "the retry ran", || {
        let attempts: Vec<u32> = handler
            .seen()
            .iter()
            .filter(|s| s.note.text == "retried")
            .map(|s| s.meta.attempt)
            .collect();
        async move { attempts == [1, 2] }
    })
    .await?;
    eventually(WAIT, "fillers handled", || {
        let n = handler.texts().iter().filter(|t| *t == "filler").count();
        async move { n == 2 }
    })
    .await?;
    stop(token, handle).await?;
    assert_eq!(env.dead().await, 0, "nothing was given up");
    env.finish().await
}

async fn graceful_shutdown_waits_for_in_flight_handler(kind: Kind) -> anyhow::Result<()> {
    let env = Env::new(kind, 100).await?;
    env.pipeline
        .publish(
            Stage::Generation,
            Admission::Accepted,
            &note("x"),
            &meta("job-s", 0),
        )
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
    let (token, handle) = env.spawn(Stage::Generation, 2, handler.clone());
    eventually(WAIT, "handler started", || {
        let n = handler.seen().len();
        async move { n == 1 }
    })
    .await?;
    token.cancel();
    // Consuming stops at once (no new deliveries) ...
    eventually(WAIT, "consumer gone", || async {
        env.transport
            .queue_stats(Stage::Generation)
            .await
            .is_ok_and(|s| s.consumers == 0)
    })
    .await?;
    // ... but the runtime waits for the running handler.
    assert!(!handle.is_finished());
    env.pipeline
        .publish(
            Stage::Generation,
            Admission::Accepted,
            &note("y"),
            &meta("job-after", 0),
        )
        .await?;
    gate.add_permits(1);
    tokio::time::timeout(WAIT, handle).await???;
    assert_eq!(handler.seen().len(), 1, "nothing taken after shutdown");
    // The in-flight message was acknowledged; only the later one waits.
    assert_eq!(env.depth(Stage::Generation).await, 1);
    env.finish().await
}

async fn subscriptions_receive_events_and_control(kind: Kind) -> anyhow::Result<()> {
    let env = Env::new(kind, 100).await?;
    let mut one_job = env.events.subscribe(EventFilter::Job("j1".into())).await?;
    let mut all = env.events.subscribe(EventFilter::AllJobs).await?;
    let mut control = env.control.subscribe().await?;
    let key = |job_id| EventKey {
        job_id,
        kind: EventKind::StageFinished,
    };
    env.events.publish(key("j2"), &note("other")).await?;
    env.events.publish(key("j1"), &note("mine")).await?;
    env.control.broadcast(&note("cancel j1")).await?;

    let got = tokio::time::timeout(WAIT, one_job.next()).await?.expect("event");
    assert!(matches!(got, Received::Message(n) if n.text == "mine"));
    for want in ["other", "mine"] {
        let got = tokio::time::timeout(WAIT, all.next()).await?.expect("event");
        assert!(matches!(&got, Received::Message(n) if n.text == want), "{got:?}");
    }
    let got = tokio::time::timeout(WAIT, control.next())
        .await?
        .expect("control");
    assert!(matches!(got, Received::Message(n) if n.text == "cancel j1"));
    drop((one_job, all, control));
    env.finish().await
}

async fn the_status_feed_acknowledges_or_dead_letters(kind: Kind) -> anyhow::Result<()> {
    let env = Env::new(kind, 100).await?;
    let mut status = env.events.subscribe_status().await?;
    let key = |job_id| EventKey {
        job_id,
        kind: EventKind::Failed,
    };
    for text in ["first", "poison", "third"] {
        env.events.publish(key(text), &note(text)).await?;
    }
    let mut recorded = Vec::new();
    for _ in 0..3 {
        let acked = tokio::time::timeout(WAIT, status.next()).await?.expect("event");
        let text = acked.event().map(|n| n.text.clone()).unwrap_or_default();
        if text == "poison" {
            acked.dead_letter("the store refuses it").await?;
        } else {
            recorded.push(text);
            acked.ack().await;
        }
    }
    assert_eq!(recorded, ["first", "third"]);
    let letter = env.transport.take_dead_letter(None).await?.expect("dead event");
    assert_eq!(letter.origin, Some(Origin::StatusEvents));
    assert_eq!(letter.reason, "the store refuses it");
    env.finish().await
}

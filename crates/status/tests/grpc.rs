//! The status service in process, on the real RabbitMQ and PostgreSQL, through
//! real gRPC clients: health, reflection (v1 and v1alpha, so grpcurl works
//! without the proto), and the StatusService calls.

use std::path::Path;
use std::time::{Duration, Instant};

use atelier_bus::JobBus;
use atelier_core::event::{EventKind, JobEvent, JobFailure};
use atelier_core::job::{JobId, JobKind, JobSpec};
use atelier_core::pipeline::{JobState, Stage};
use atelier_core::settings::Settings;
use atelier_jobs::{JobStore, NewJob, PgJobStore};
use atelier_proto::v1;
use atelier_proto::v1::status_service_client::StatusServiceClient;
use futures::StreamExt;
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;

async fn start() -> (Settings, Channel, CancellationToken) {
    let (settings, channel, shutdown, _) = start_with(&[]).await;
    (settings, channel, shutdown)
}

type Served = tokio::task::JoinHandle<Result<(), atelier_status::StatusError>>;

/// The status service with extra settings, and its task (to see it stop).
async fn start_with(extra: &[(&str, &str)]) -> (Settings, Channel, CancellationToken, Served) {
    let tag = uuid::Uuid::new_v4().simple().to_string();
    let mut vars = vec![
        ("ATELIER__BROKER__PREFIX".to_string(), format!("ts{}", &tag[..12])),
        (
            "ATELIER__DATABASE__SCHEMA".to_string(),
            format!("ts_{}", &tag[..12]),
        ),
        ("ATELIER__STATUS__BIND".to_string(), "127.0.0.1:0".to_string()),
        ("ATELIER__STATUS__RABBITMQ_POLL_MS".to_string(), "100".to_string()),
        // The retention sweeper's blobs: nothing written under the crate.
        ("ATELIER__BLOBS__URL".to_string(), "memory://".to_string()),
    ];
    vars.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    let settings = Settings::load_from(Path::new("/nonexistent"), None, vars).expect("settings");
    let shutdown = CancellationToken::new();
    let (tx, rx) = tokio::sync::oneshot::channel();
    let served = tokio::spawn(atelier_status::serve(
        settings.clone(),
        None,
        shutdown.clone(),
        Some(tx),
    ));
    let addr = rx.await.expect("status service listens");
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .expect("endpoint")
        .connect()
        .await
        .expect("connects");
    (settings, channel, shutdown, served)
}

/// Drops the test's schema and queues (best effort).
async fn cleanup(settings: &Settings) {
    let _ = std::process::Command::new("psql")
        .args(["-h", "127.0.0.1", "-U", "postgres", "-q", "-c"])
        .arg(format!(
            "DROP SCHEMA IF EXISTS {} CASCADE",
            settings.database.schema
        ))
        .output();
    if let Ok(broker) = atelier_broker::Broker::connect(settings.broker.clone(), 100, "cleanup").await {
        let _ = broker.delete_topology().await;
    }
}

/// A job as the gateway creates it.
async fn create_job(store: &dyn JobStore) -> JobId {
    let request = serde_json::from_value(serde_json::json!({
        "inputImages": [{ "url": "https://shop.example/a.jpg", "backgrounds": [1, 0, 0] }]
    }))
    .expect("request");
    let state = JobState::new(JobSpec {
        id: JobId::new(),
        kind: JobKind::Images,
        request,
        inputs: vec![],
        submitted_at_ms: 0,
    });
    let id = state.spec.id;
    store.create(NewJob::new(state, None)).await.expect("create");
    id
}

#[tokio::test(flavor = "multi_thread")]
async fn health_and_reflection_answer_generic_clients() {
    let (settings, channel, shutdown) = start().await;
    let mut health = tonic_health::pb::health_client::HealthClient::new(channel.clone());
    let serving = health
        .check(tonic_health::pb::HealthCheckRequest {
            service: "atelier.v1.StatusService".into(),
        })
        .await
        .expect("health answers")
        .into_inner();
    assert_eq!(
        serving.status,
        tonic_health::pb::health_check_response::ServingStatus::Serving as i32
    );

    use tonic_reflection::pb::v1alpha::ServerReflectionRequest;
    use tonic_reflection::pb::v1alpha::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1alpha::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1alpha::server_reflection_response::MessageResponse;
    let mut reflection = ServerReflectionClient::new(channel.clone());
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut answers = reflection
        .server_reflection_info(futures::stream::iter([request]))
        .await
        .expect("reflection answers")
        .into_inner();
    let answer = answers.next().await.expect("one answer").expect("ok");
    let Some(MessageResponse::ListServicesResponse(list)) = answer.message_response else {
        panic!("unexpected reflection answer");
    };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    assert!(
        names.contains(&"atelier.v1.StatusService".to_string()),
        "{names:?}"
    );
    assert!(names.contains(&"grpc.health.v1.Health".to_string()), "{names:?}");

    // v1 too (newer grpcurl).
    use tonic_reflection::pb::v1 as r1;
    let mut reflection = r1::server_reflection_client::ServerReflectionClient::new(channel);
    let request = r1::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(
            r1::server_reflection_request::MessageRequest::FileContainingSymbol(
                "atelier.v1.StatusService".into(),
            ),
        ),
    };
    let mut answers = reflection
        .server_reflection_info(futures::stream::iter([request]))
        .await
        .expect("reflection v1 answers")
        .into_inner();
    let answer = answers.next().await.expect("one answer").expect("ok");
    assert!(matches!(
        answer.message_response,
        Some(r1::server_reflection_response::MessageResponse::FileDescriptorResponse(_))
    ));
    shutdown.cancel();
    cleanup(&settings).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn jobs_progress_from_events_and_calls_answer() {
    let (settings, channel, shutdown) = start().await;
    let mut client = StatusServiceClient::new(channel);

    // Bad and unknown ids.
    let err = client
        .get_job(v1::GetJobRequest {
            job_id: "nope".into(),
        })
        .await
        .expect_err("invalid id");
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    let err = client
        .get_job(v1::GetJobRequest {
            job_id: JobId::new().to_string(),
        })
        .await
        .expect_err("unknown id");
    assert_eq!(err.code(), tonic::Code::NotFound);

    // A job created as the gateway does, progressed by events as the workers do.
    let store = PgJobStore::connect(&settings.database).await.expect("store");
    let id = create_job(&store).await;
    let bus = JobBus::rabbitmq(&settings, "status-test").await.expect("bus");
    let mut watch = client
        .watch_job(v1::GetJobRequest {
            job_id: id.to_string(),
        })
        .await
        .expect("watch")
        .into_inner();
    let stage = Stage::Generation;
    for (kind, seconds) in [
        (EventKind::StageStarted, 0.0),
        (EventKind::StageFinished, 0.25),
        (EventKind::Failed, 0.0),
    ] {
        let mut event = JobEvent::new(id, kind, "test")
            .in_stage(stage, 1)
            .seconds(seconds);
        if kind == EventKind::Failed {
            event = event.failure(JobFailure::stage("it broke"));
        }
        bus.emit(&event).await.expect("publish");
    }
    let mut kinds = Vec::new();
    while let Some(event) = tokio::time::timeout(Duration::from_secs(10), watch.next())
        .await
        .expect("watch yields")
    {
        kinds.push(event.expect("event").kind);
    }
    assert_eq!(
        kinds,
        vec![
            v1::EventKind::StageStarted as i32,
            v1::EventKind::StageFinished as i32,
            v1::EventKind::Failed as i32
        ]
    );
    let job = client
        .get_job(v1::GetJobRequest {
            job_id: id.to_string(),
        })
        .await
        .expect("job")
        .into_inner();
    assert_eq!(job.state, v1::JobState::Failed as i32);
    assert_eq!(job.error.as_deref(), Some("it broke"));
    assert_eq!(job.error_code.as_deref(), Some(JobFailure::STAGE_FAILED));

    let timings = client
        .get_stage_timings(v1::GetStageTimingsRequest { window_seconds: 0 })
        .await
        .expect("timings")
        .into_inner();
    let generation = timings
        .stages
        .iter()
        .find(|s| s.stage == v1::Stage::Generation as i32)
        .expect("generation row");
    assert_eq!(generation.count, 1);
    assert!((generation.p50_seconds - 0.25).abs() < 1e-9);

    // Queue status sees the stage queues (no consumers here) and the failure.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let q = client
            .get_queue_status(v1::GetQueueStatusRequest {})
            .await
            .expect("queue status")
            .into_inner();
        if q.stages.len() == 4 && q.failed_tasks == 1 {
            assert!(
                !q.is_running,
                "no worker consumes, so the pipeline is not running"
            );
            assert_eq!(q.max_queue_size, settings.pipeline.max_queue_size);
            break;
        }
        assert!(Instant::now() < deadline, "{q:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    shutdown.cancel();
    cleanup(&settings).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_event_the_store_refuses_is_dead_lettered_and_the_rest_flow_on() {
    let (settings, _channel, shutdown) = start().await;
    let store = PgJobStore::connect(&settings.database).await.expect("store");
    let poisoned = create_job(&store).await;
    let healthy = create_job(&store).await;
    let bus = JobBus::rabbitmq(&settings, "status-test").await.expect("bus");
    // PostgreSQL refuses NUL in text: this event can never be stored.
    let poison = JobEvent::new(poisoned, EventKind::Failed, "test").failure(JobFailure::stage("a\u{0}b"));
    bus.emit(&poison).await.expect("publish");
    bus.emit(&JobEvent::new(healthy, EventKind::Cancelled, "test"))
        .await
        .expect("publish");
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let job = store.get(healthy).await.expect("get").expect("job");
        if job.status.is_terminal() && bus.dead_letter_count().await.expect("count") == 1 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the event behind the poison was not recorded"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let dead = bus.dead_letters(10).await.expect("dead letters");
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].origin, Some(atelier_broker::Origin::StatusEvents));
    assert!(dead[0].reason.contains("refused"), "{}", dead[0].reason);
    assert_eq!(
        store.get(poisoned).await.expect("get").expect("job").status,
        atelier_core::event::JobStatus::Queued
    );
    shutdown.cancel();
    cleanup(&settings).await;
}

/// SIGTERM (the shutdown token): health says NOT_SERVING at once while calls
/// are still answered; after the drain delay an open WatchJob stream ends with
/// UNAVAILABLE (the client reconnects elsewhere) and the service stops.
#[tokio::test(flavor = "multi_thread")]
async fn shutdown_fails_health_first_then_ends_streams_and_stops() {
    const DRAIN_SECONDS: u64 = 2;
    /// Room for the stop itself on a loaded machine.
    const MARGIN: Duration = Duration::from_secs(8);
    let drain = DRAIN_SECONDS.to_string();
    let (settings, channel, shutdown, served) =
        start_with(&[("ATELIER__STATUS__DRAIN_DELAY_SECONDS", &drain)]).await;
    let store = PgJobStore::connect(&settings.database).await.expect("store");
    let id = create_job(&store).await;
    let mut client = StatusServiceClient::new(channel.clone());
    let mut watch = client
        .watch_job(v1::GetJobRequest {
            job_id: id.to_string(),
        })
        .await
        .expect("watch")
        .into_inner();

    let started = Instant::now();
    shutdown.cancel();
    let mut health = tonic_health::pb::health_client::HealthClient::new(channel);
    let not_serving = tonic_health::pb::health_check_response::ServingStatus::NotServing as i32;
    loop {
        let status = health
            .check(tonic_health::pb::HealthCheckRequest {
                service: String::new(),
            })
            .await
            .expect("health still answers while draining")
            .into_inner()
            .status;
        if status == not_serving {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(DRAIN_SECONDS),
            "health still SERVING after the drain delay"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Still answering calls during the drain.
    client
        .get_job(v1::GetJobRequest {
            job_id: id.to_string(),
        })
        .await
        .expect("calls answered while draining");

    let ended = tokio::time::timeout(Duration::from_secs(DRAIN_SECONDS) + MARGIN, watch.next())
        .await
        .expect("the stream ends within the drain")
        .expect("a last message");
    let status = ended.expect_err("the stream ends with a status");
    assert_eq!(status.code(), tonic::Code::Unavailable);
    assert!(
        started.elapsed() >= Duration::from_secs(DRAIN_SECONDS),
        "streams ended before the drain delay: {:?}",
        started.elapsed()
    );
    tokio::time::timeout(MARGIN, served)
        .await
        .expect("the service stops after its drain")
        .expect("task")
        .expect("stops cleanly");
    cleanup(&settings).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn list_jobs_pages_newest_first_and_filters() {
    let (settings, channel, shutdown) = start().await;
    let mut client = StatusServiceClient::new(channel);
    let store = PgJobStore::connect(&settings.database).await.expect("store");
    let mut ids = Vec::new();
    for (n, tenant) in ["a", "b", "a"].into_iter().enumerate() {
        let request = serde_json::from_value(serde_json::json!({
            "inputImages": [{ "url": "https://shop.example/a.jpg", "backgrounds": [1, 0, 0] }]
        }))
        .expect("request");
        let state = JobState::new(JobSpec {
            id: JobId::new(),
            kind: JobKind::Images,
            request,
            inputs: vec![],
            submitted_at_ms: 1_000 + n as u64,
        });
        ids.push(state.spec.id.to_string());
        store
            .create(NewJob::new(state, None).for_tenant(tenant))
            .await
            .expect("create");
    }
    let listed = |r: &v1::ListJobsResponse| r.jobs.iter().map(|j| j.job_id.clone()).collect::<Vec<_>>();

    let first = client
        .list_jobs(v1::ListJobsRequest {
            limit: 2,
            ..Default::default()
        })
        .await
        .expect("list")
        .into_inner();
    assert_eq!(listed(&first), [ids[2].clone(), ids[1].clone()], "newest first");
    assert!(!first.next_cursor.is_empty());
    assert_eq!(first.jobs[0].tenant, "a");
    assert_eq!(first.jobs[0].created_at_ms, 1_002);
    let second = client
        .list_jobs(v1::ListJobsRequest {
            limit: 2,
            cursor: first.next_cursor.clone(),
            ..Default::default()
        })
        .await
        .expect("list")
        .into_inner();
    assert_eq!(listed(&second), [ids[0].clone()]);
    assert!(second.next_cursor.is_empty(), "the last page");

    let of_b = client
        .list_jobs(v1::ListJobsRequest {
            tenant: "b".into(),
            status: v1::JobState::Queued.into(),
            ..Default::default()
        })
        .await
        .expect("list")
        .into_inner();
    assert_eq!(listed(&of_b), [ids[1].clone()]);
    let none_running = client
        .list_jobs(v1::ListJobsRequest {
            status: v1::JobState::Running.into(),
            ..Default::default()
        })
        .await
        .expect("list")
        .into_inner();
    assert!(none_running.jobs.is_empty());

    for (bad, field) in [
        (
            v1::ListJobsRequest {
                limit: 201,
                ..Default::default()
            },
            "limit",
        ),
        (
            v1::ListJobsRequest {
                cursor: "forged".into(),
                ..Default::default()
            },
            "cursor",
        ),
        (
            v1::ListJobsRequest {
                status: 99,
                ..Default::default()
            },
            "status",
        ),
        (
            v1::ListJobsRequest {
                stage: 99,
                ..Default::default()
            },
            "stage",
        ),
    ] {
        let err = client.list_jobs(bad).await.expect_err("invalid");
        assert_eq!(err.code(), tonic::Code::InvalidArgument);
        assert!(err.message().starts_with(field), "{}", err.message());
    }
    store.pool().close().await;
    shutdown.cancel();
    cleanup(&settings).await;
}

//! What an operator sees of a job: every service's `/metrics` (names, types,
//! HELP, histogram buckets, process metrics) once a job went through, and one
//! OpenTelemetry trace per job across the gateway, the four workers, the AI
//! vendor call and the status service, continuing the client's `traceparent`,
//! on the distributed stack and on `atelier serve`.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use atelier_e2e::prometheus::{Family, parse};
use atelier_e2e::{GatedGemini, Options, OtlpReceiver, ReceivedSpan, System, Target, data_uri, photo};
use atelier_fixtures::GarmentShape;
use serde_json::json;

/// The client's own trace: the gateway must continue it.
const CLIENT_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CLIENT_SPAN: &str = "00f067aa0ba902b7";
const TRACE_WAIT: Duration = Duration::from_secs(60);
const JOB_WAIT: Duration = Duration::from_secs(120);
/// How long a worker may take to record a message it already handed on.
const SETTLE_WAIT: Duration = Duration::from_secs(10);
/// OTLP span kinds.
const SERVER: i32 = 2;
const CLIENT: i32 = 3;
const CONSUMER: i32 = 5;
/// Each stage's label (`stage=`, span names) and its service.
const STAGES: [(&str, &str); 4] = [
    ("analysis", "analysis"),
    ("generation", "generation"),
    ("upscaling", "upscaling"),
    ("post_processing", "postprocess"),
];

/// Submits one full job synchronously with the client's `traceparent`; returns its id.
async fn run_traced_job(sys: &System) -> String {
    let body = json!({
        "inputImages": [{ "url": data_uri(&photo(GarmentShape::TShirt, 7)), "backgrounds": [1, 0, 0] }],
        "upscale": true
    });
    let traceparent = format!("00-{CLIENT_TRACE}-{CLIENT_SPAN}-01");
    let (code, answer) = sys
        .post(
            0,
            "/api/v1/generate",
            &body,
            &[("traceparent", traceparent.as_str())],
        )
        .await;
    assert_eq!(code, 200, "{answer}\n{}", sys.logs());
    let id = answer["request_id"].as_str().expect("request_id").to_string();
    let job = sys.wait_terminal(&id, JOB_WAIT).await;
    assert_eq!(job["status"], "completed", "{job}");
    id
}

/// `span`'s ancestors in `spans`, nearest first (stops at a parent not received).
fn ancestors<'a>(span: &'a ReceivedSpan, spans: &'a [ReceivedSpan]) -> Vec<&'a ReceivedSpan> {
    let by_id: BTreeMap<&str, &ReceivedSpan> = spans.iter().map(|s| (s.span_id.as_str(), s)).collect();
    let mut chain = Vec::new();
    let mut next = by_id.get(span.parent_span_id.as_str());
    while let Some(parent) = next {
        assert!(chain.len() <= spans.len(), "a cycle of parents");
        chain.push(*parent);
        next = by_id.get(parent.parent_span_id.as_str());
    }
    chain
}

/// The gateway's request span: it ends only once the response is sent, so it
/// may reach the receiver in a later batch than the stages' spans.
fn is_gateway_span(span: &ReceivedSpan) -> bool {
    span.kind == SERVER && span.name == "POST /api/v1/generate"
}

fn stage_span<'a>(spans: &'a [ReceivedSpan], stage: &str) -> Option<&'a ReceivedSpan> {
    spans
        .iter()
        .find(|s| s.kind == CONSUMER && s.name == format!("{stage} process"))
}

/// The trace is whole: a server span continuing the client's span, every stage
/// (and every recorded event, and each vendor call) under it.
fn assert_one_trace(spans: &[ReceivedSpan], services: &BTreeMap<&str, &str>) {
    let gateway: Vec<_> = spans.iter().filter(|s| is_gateway_span(s)).collect();
    assert_eq!(gateway.len(), 1, "one gateway span: {spans:#?}");
    let gateway = gateway[0];
    assert_eq!(
        gateway.parent_span_id, CLIENT_SPAN,
        "the client's span is the root's parent"
    );
    assert_eq!(gateway.service, services["gateway"]);
    assert_eq!(
        gateway.attributes.get("http.route").map(String::as_str),
        Some("/api/v1/generate")
    );
    assert!(spans.iter().all(|s| s.trace_id == CLIENT_TRACE));
    let mut previous = gateway;
    for (stage, service) in STAGES {
        let span = stage_span(spans, stage).unwrap_or_else(|| panic!("no {stage} span: {spans:#?}"));
        assert_eq!(span.service, services[service], "{stage}");
        assert_eq!(
            span.parent_span_id, previous.span_id,
            "{stage} is a child of the hop before it"
        );
        assert!(
            ancestors(span, spans)
                .iter()
                .any(|a| a.span_id == gateway.span_id),
            "{stage}'s parent chain leads to the gateway span"
        );
        previous = span;
    }
    let records: Vec<_> = spans.iter().filter(|s| s.name.starts_with("record ")).collect();
    let kinds: BTreeSet<&str> = records.iter().map(|s| s.name.as_str()).collect();
    for kind in [
        "record queued",
        "record stage_started",
        "record stage_finished",
        "record completed",
    ] {
        assert!(kinds.contains(kind), "no `{kind}` span: {kinds:?}");
    }
    for record in &records {
        assert_eq!(record.service, services["status"]);
        let chain = ancestors(record, spans);
        assert!(
            chain.iter().any(|a| a.span_id == gateway.span_id),
            "{} hangs under the gateway span",
            record.name
        );
    }
}

fn metrics_of(text: &str, service: &str) -> BTreeMap<String, Family> {
    let families = parse(text);
    for (name, family) in &families {
        assert!(!family.help.is_empty(), "{service}: {name} has no HELP");
        assert!(!family.kind.is_empty(), "{service}: {name} has no TYPE");
        assert_ne!(
            family.kind, "summary",
            "{service}: {name} is a summary, not a histogram"
        );
    }
    families
}

/// `name` is there with type `kind` (and, for histograms, real buckets up to +Inf).
fn assert_family<'a>(
    families: &'a BTreeMap<String, Family>,
    service: &str,
    name: &str,
    kind: &str,
) -> &'a Family {
    let family = families.get(name).unwrap_or_else(|| {
        panic!(
            "{service} has no {name}: {:?}",
            families.keys().collect::<Vec<_>>()
        )
    });
    assert_eq!(family.kind, kind, "{service}: {name}");
    if kind == "histogram" {
        let buckets: Vec<_> = family
            .samples
            .iter()
            .filter(|s| s.name == format!("{name}_bucket"))
            .collect();
        assert!(
            buckets.len() > 2,
            "{service}: {name} has {} buckets",
            buckets.len()
        );
        assert!(
            buckets
                .iter()
                .any(|b| b.labels.get("le").map(String::as_str) == Some("+Inf"))
        );
        assert!(family.find(&format!("{name}_count"), &[]).any(|s| s.value >= 1.0));
    }
    family
}

fn assert_process_metrics(families: &BTreeMap<String, Family>, service: &str) {
    for (name, kind) in [
        ("process_resident_memory_bytes", "gauge"),
        ("process_cpu_seconds_total", "counter"),
        ("process_open_fds", "gauge"),
        ("process_start_time_seconds", "gauge"),
    ] {
        let family = assert_family(families, service, name, kind);
        // The metrics crate's counters are integers: CPU counts whole seconds.
        if name != "process_cpu_seconds_total" {
            assert!(
                family.samples.iter().any(|s| s.value > 0.0),
                "{service}: {name} is 0"
            );
        }
    }
}

/// A worker's families once its handler has finished with the job's message:
/// the job turns terminal as soon as the last stage publishes, a moment before
/// that stage's handler records its outcome and releases the message.
async fn scrape_settled(url: &str, service: &str, stage: &str) -> BTreeMap<String, Family> {
    let deadline = tokio::time::Instant::now() + SETTLE_WAIT;
    loop {
        let families = metrics_of(&scrape(url).await, service);
        let settled = families.get("atelier_stage_messages_total").is_some_and(|f| {
            f.find(
                "atelier_stage_messages_total",
                &[("stage", stage), ("outcome", "ok")],
            )
            .any(|s| s.value >= 1.0)
        }) && families.get("atelier_queue_messages").is_some_and(|f| {
            f.find(
                "atelier_queue_messages",
                &[("stage", stage), ("state", "unacked")],
            )
            .all(|s| s.value == 0.0)
        });
        if settled || tokio::time::Instant::now() >= deadline {
            return families;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn scrape(url: &str) -> String {
    let response = reqwest::get(format!("{url}/metrics"))
        .await
        .expect("ops listener answers");
    assert_eq!(response.status(), 200, "{url}/metrics");
    let kind = response.headers()["content-type"]
        .to_str()
        .unwrap_or_default()
        .to_string();
    assert!(kind.starts_with("text/plain"), "{url}: {kind}");
    response.text().await.expect("body")
}

#[tokio::test(flavor = "multi_thread")]
async fn stack_metrics_from_every_service_and_one_trace_per_job() {
    let otlp = OtlpReceiver::start().await;
    let gemini = GatedGemini::start().await;
    gemini.open();
    // One retry on the first Gemini call (retries_total), then answers.
    gemini.fail_next(1);
    let mut env = otlp.env();
    env.extend(gemini.env());
    env.push(("ATELIER__PROVIDERS__GEMINI__MAX_RETRIES".into(), "1".into()));
    env.push(("ATELIER__PROVIDERS__GEMINI__RETRY_BASE_MS".into(), "10".into()));
    let mut sys = System::start(
        Target::Stack,
        Options {
            env,
            ..Options::default()
        },
    )
    .await;
    run_traced_job(&sys).await;

    let services: BTreeMap<&str, &str> = [
        ("gateway", "atelier-gateway"),
        ("status", "atelier-status"),
        ("analysis", "atelier-analysis"),
        ("generation", "atelier-generation"),
        ("upscaling", "atelier-upscaling"),
        ("postprocess", "atelier-postprocess"),
    ]
    .into_iter()
    .collect();
    let spans = otlp
        .wait_for_trace(CLIENT_TRACE, TRACE_WAIT, |spans| {
            STAGES.iter().all(|(stage, _)| stage_span(spans, stage).is_some())
                && spans.iter().any(is_gateway_span)
                && spans.iter().any(|s| s.name == "record completed")
                && spans.iter().any(|s| s.kind == CLIENT)
        })
        .await;
    assert_one_trace(&spans, &services);
    // The vendor call: a client span under the analysis stage, whose context
    // went out in the request's traceparent.
    let call = spans.iter().find(|s| s.kind == CLIENT).expect("a provider span");
    assert_eq!(call.service, "atelier-analysis");
    assert_eq!(call.name, "gemini generate_content");
    let chain = ancestors(call, &spans);
    assert!(
        chain
            .iter()
            .any(|p| p.kind == CONSUMER && p.name == "analysis process")
            && chain.iter().any(|a| a.kind == SERVER),
        "the vendor call hangs under an analysis stage span under the gateway's: {call:#?} {chain:#?}\n{spans:#?}"
    );
    let sent = gemini.traceparents();
    assert!(
        sent.iter()
            .any(|tp| tp == &format!("00-{CLIENT_TRACE}-{}-01", call.span_id)),
        "vendor calls carried {sent:?}, expected the call span {}",
        call.span_id
    );

    // Every service's /metrics after that job.
    let stack = sys.stack();
    let gateway = metrics_of(&scrape(&stack.ops[0]).await, "gateway");
    assert_process_metrics(&gateway, "gateway");
    let requests = assert_family(&gateway, "gateway", "atelier_http_requests_total", "counter");
    assert!(
        requests
            .find(
                "atelier_http_requests_total",
                &[
                    ("route", "/api/v1/generate"),
                    ("status", "200"),
                    ("method", "POST")
                ]
            )
            .any(|s| s.value >= 1.0),
        "{requests:?}"
    );
    let latency = assert_family(
        &gateway,
        "gateway",
        "atelier_http_request_duration_seconds",
        "histogram",
    );
    assert!(
        latency
            .find(
                "atelier_http_request_duration_seconds_bucket",
                &[("route", "/api/v1/generate")]
            )
            .count()
            > 2
    );
    assert_family(
        &gateway,
        "gateway",
        "atelier_gateway_jobs_submitted_total",
        "counter",
    );

    for (stage, service) in STAGES {
        let families = scrape_settled(&stack.service_ops[service], service, stage).await;
        assert_process_metrics(&families, service);
        let duration = assert_family(&families, service, "atelier_stage_duration_seconds", "histogram");
        assert!(
            duration
                .find("atelier_stage_duration_seconds_count", &[("stage", stage)])
                .any(|s| s.value >= 1.0)
        );
        let messages = assert_family(&families, service, "atelier_stage_messages_total", "counter");
        assert!(
            messages
                .find(
                    "atelier_stage_messages_total",
                    &[("stage", stage), ("outcome", "ok")]
                )
                .any(|s| s.value >= 1.0)
        );
        let held = assert_family(&families, service, "atelier_queue_messages", "gauge");
        assert!(
            held.find(
                "atelier_queue_messages",
                &[("stage", stage), ("state", "unacked")]
            )
            .all(|s| s.value == 0.0)
        );
    }
    let analysis = metrics_of(&scrape(&stack.service_ops["analysis"]).await, "analysis");
    let calls = assert_family(&analysis, "analysis", "atelier_provider_calls_total", "counter");
    assert!(
        calls
            .find(
                "atelier_provider_calls_total",
                &[("provider", "gemini"), ("outcome", "ok")]
            )
            .any(|s| s.value >= 1.0)
    );
    assert_family(
        &analysis,
        "analysis",
        "atelier_provider_call_duration_seconds",
        "histogram",
    );
    let retries = assert_family(&analysis, "analysis", "atelier_provider_retries_total", "counter");
    assert!(retries.samples.iter().any(|s| s.value >= 1.0), "{retries:?}");

    let status = metrics_of(&scrape(&stack.service_ops["status"]).await, "status");
    assert_process_metrics(&status, "status");
    let jobs = assert_family(&status, "status", "atelier_jobs_total", "counter");
    assert!(
        jobs.find("atelier_jobs_total", &[("outcome", "completed")])
            .any(|s| s.value >= 1.0)
    );
    let queues = assert_family(&status, "status", "atelier_queue_messages", "gauge");
    for (stage, _) in STAGES {
        assert_eq!(
            queues
                .find("atelier_queue_messages", &[("stage", stage), ("state", "ready")])
                .count(),
            1
        );
    }
    assert_family(&status, "status", "atelier_queue_consumers", "gauge");
    assert_family(&status, "status", "atelier_dead_letters", "gauge");
    assert_family(&status, "status", "atelier_broker_up", "gauge");

    // Readiness on every ops listener.
    for url in stack.service_ops.values().chain(&stack.ops) {
        let ready = reqwest::get(format!("{url}/readyz")).await.expect("answers");
        assert_eq!(ready.status(), 200, "{url}/readyz");
        let health = reqwest::get(format!("{url}/healthz")).await.expect("answers");
        assert_eq!(health.status(), 200, "{url}/healthz");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn serve_one_trace_per_job_and_its_metrics() {
    let otlp = OtlpReceiver::start().await;
    let sys = System::start(
        Target::Serve,
        Options {
            env: otlp.env(),
            ..Options::default()
        },
    )
    .await;
    run_traced_job(&sys).await;
    let spans = otlp
        .wait_for_trace(CLIENT_TRACE, TRACE_WAIT, |spans| {
            STAGES.iter().all(|(stage, _)| stage_span(spans, stage).is_some())
                && spans.iter().any(is_gateway_span)
                && spans.iter().any(|s| s.name == "record completed")
        })
        .await;
    let services: BTreeMap<&str, &str> = [
        "gateway",
        "status",
        "analysis",
        "generation",
        "upscaling",
        "postprocess",
    ]
    .into_iter()
    .map(|s| (s, "atelier"))
    .collect();
    assert_one_trace(&spans, &services);

    let families = metrics_of(&scrape(&sys.ops(0)).await, "serve");
    assert_process_metrics(&families, "serve");
    assert_family(
        &families,
        "serve",
        "atelier_http_request_duration_seconds",
        "histogram",
    );
    let stages = assert_family(&families, "serve", "atelier_stage_duration_seconds", "histogram");
    assert_eq!(
        stages
            .find("atelier_stage_duration_seconds_count", &[])
            .map(|s| s.labels["stage"].clone())
            .collect::<BTreeSet<_>>()
            .len(),
        4
    );
    let jobs = assert_family(&families, "serve", "atelier_jobs_total", "counter");
    assert!(
        jobs.find("atelier_jobs_total", &[("outcome", "completed")])
            .any(|s| s.value >= 1.0)
    );
}

//! The Prometheus side: one recorder per process, every metric Atelier
//! exports named and described here (HELP text, base units), real histograms
//! with buckets chosen per metric, and the `process_*` metrics read at each
//! scrape. Recording crates use the names below, so a dashboard, an alert and
//! the code cannot drift apart.

use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
use metrics_exporter_prometheus::{BuildError, Matcher, PrometheusBuilder, PrometheusHandle};

/// Requests answered by the HTTP API, by `method`, `route` (the matched path
/// template) and `status`.
pub const HTTP_REQUESTS: &str = "atelier_http_requests_total";
/// Latency of HTTP API requests by `method` and `route` (event streams excluded:
/// they last as long as the client listens).
pub const HTTP_REQUEST_DURATION: &str = "atelier_http_request_duration_seconds";
/// Jobs accepted by the gateway, by `kind`.
pub const JOBS_SUBMITTED: &str = "atelier_gateway_jobs_submitted_total";
/// Cancels asked through the gateway.
pub const JOBS_CANCELLED: &str = "atelier_gateway_jobs_cancelled_total";
/// One stage's run of one job (a message handled), by `stage`.
pub const STAGE_DURATION: &str = "atelier_stage_duration_seconds";
/// Stage messages handled, by `stage` and `outcome` (`ok`, `retry`, `failed`).
pub const STAGE_MESSAGES: &str = "atelier_stage_messages_total";
/// Calls to AI vendors, by `provider`, `op` and `outcome`.
pub const PROVIDER_CALLS: &str = "atelier_provider_calls_total";
/// Latency of calls to AI vendors (retries included), by `provider` and `op`.
pub const PROVIDER_CALL_DURATION: &str = "atelier_provider_call_duration_seconds";
/// Retries of calls to AI vendors, by `provider` and `op`.
pub const PROVIDER_RETRIES: &str = "atelier_provider_retries_total";
/// Remote results replaced by the local path, by `provider`, `stage`, `reason`.
pub const PROVIDER_FALLBACKS: &str = "atelier_provider_fallbacks_total";
/// Result-cache lookups by the stages, by `stage` (`analysis`, `generation`,
/// `upscaling`, `post_processing`) and `outcome` (`hit`, `miss`, `bypass`,
/// `waited`: reused after waiting for another replica's claim).
pub const CACHE_LOOKUPS: &str = "atelier_cache_lookups_total";
/// Jobs that ended, by `outcome` (`completed`, `failed`, `cancelled`), as recorded
/// by the status service.
pub const JOBS: &str = "atelier_jobs_total";
/// Messages in a stage's queue, by `stage` and `state` (`ready`, `unacked`).
pub const QUEUE_MESSAGES: &str = "atelier_queue_messages";
/// Consumers of a stage's queue, by `stage`.
pub const QUEUE_CONSUMERS: &str = "atelier_queue_consumers";
/// Messages in the dead-letter queue.
pub const DEAD_LETTERS: &str = "atelier_dead_letters";
/// Whether the status service reaches the broker (1) or not (0).
pub const BROKER_UP: &str = "atelier_broker_up";

/// HTTP latency buckets: from a cached answer to a synchronous call that waited
/// for its job (up to `gateway.sync_wait_seconds`, 300 s by default).
const HTTP_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0,
];
/// Stage buckets: analysis of a small photo (tens of ms) to a long video or a
/// remote upscale (minutes).
const STAGE_BUCKETS: &[f64] = &[
    0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0, 600.0,
];
/// Provider buckets: a quick JSON answer to a prediction at its deadline.
const PROVIDER_BUCKETS: &[f64] = &[
    0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0,
];

/// The process's Prometheus registry. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Metrics {
    handle: PrometheusHandle,
    process: metrics_process::Collector,
}

impl Metrics {
    /// Installs the global recorder with Atelier's buckets and describes every
    /// metric. Once per process: a second call fails (the recorder is global).
    pub fn install() -> Result<Self, BuildError> {
        let handle = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Full(HTTP_REQUEST_DURATION.into()), HTTP_BUCKETS)?
            .set_buckets_for_metric(Matcher::Full(STAGE_DURATION.into()), STAGE_BUCKETS)?
            .set_buckets_for_metric(Matcher::Full(PROVIDER_CALL_DURATION.into()), PROVIDER_BUCKETS)?
            .install_recorder()?;
        describe();
        let process = metrics_process::Collector::default();
        process.describe();
        process.collect();
        Ok(Self { handle, process })
    }

    /// The Prometheus text exposition, with the process metrics read now.
    pub fn render(&self) -> String {
        self.process.collect();
        self.handle.run_upkeep();
        self.handle.render()
    }
}

/// HELP text and unit of every metric above (the `process_*` ones describe
/// themselves).
fn describe() {
    describe_counter!(
        HTTP_REQUESTS,
        Unit::Count,
        "HTTP API requests answered, by method, route template and status."
    );
    describe_histogram!(
        HTTP_REQUEST_DURATION,
        Unit::Seconds,
        "HTTP API request latency by method and route template; event streams are not timed."
    );
    describe_counter!(
        JOBS_SUBMITTED,
        Unit::Count,
        "Jobs accepted by this gateway, by kind."
    );
    describe_counter!(
        CACHE_LOOKUPS,
        Unit::Count,
        "Result-cache lookups of the stages, by stage and outcome (hit, miss, bypass, waited)."
    );
    describe_counter!(
        JOBS_CANCELLED,
        Unit::Count,
        "Job cancels asked through this gateway."
    );
    describe_histogram!(
        STAGE_DURATION,
        Unit::Seconds,
        "Time one stage spent on one job message, by stage (failed attempts included)."
    );
    describe_counter!(
        STAGE_MESSAGES,
        Unit::Count,
        "Stage messages handled, by stage and outcome: ok (forwarded or completed), retry (transient failure), failed (permanent failure)."
    );
    describe_counter!(
        PROVIDER_CALLS,
        Unit::Count,
        "Calls to AI vendors, by provider, operation and outcome."
    );
    describe_histogram!(
        PROVIDER_CALL_DURATION,
        Unit::Seconds,
        "Latency of calls to AI vendors including their retries, by provider and operation."
    );
    describe_counter!(
        PROVIDER_RETRIES,
        Unit::Count,
        "Retried calls to AI vendors, by provider and operation."
    );
    describe_counter!(
        PROVIDER_FALLBACKS,
        Unit::Count,
        "Remote AI results replaced by the local path, by provider, stage and reason."
    );
    describe_counter!(
        JOBS,
        Unit::Count,
        "Jobs that ended, by outcome (completed, failed, cancelled), as recorded by the status service."
    );
    describe_gauge!(
        QUEUE_MESSAGES,
        Unit::Count,
        "Messages in a stage's queue by stage and state (ready, unacked), as last read from the broker."
    );
    describe_gauge!(
        QUEUE_CONSUMERS,
        Unit::Count,
        "Consumers of a stage's queue, as last read from the broker."
    );
    describe_gauge!(
        DEAD_LETTERS,
        Unit::Count,
        "Messages in the dead-letter queue, as last read from the broker."
    );
    describe_gauge!(
        BROKER_UP,
        Unit::Count,
        "1 when the status service's last read of the queues reached the broker, else 0."
    );
}

//! Typed settings, layered by the `config` crate:
//! built-in `config/default.toml` → `{config_dir}/default.toml` (optional) →
//! `{config_dir}/{ATELIER_ENV}.toml` (required when `ATELIER_ENV` is set) →
//! `ATELIER__SECTION__KEY` environment variables.

use std::fmt;
use std::path::{Path, PathBuf};

use config::{Config, Environment, File, FileFormat};
use serde::Deserialize;

use crate::CoreError;

mod providers;
pub use providers::{
    AnalyzerKind, GEMINI_KEY_ENV, GeminiSettings, GeneratorKind, HttpSettings, ProviderSettings,
    REPLICATE_MAX_WAIT_SECONDS, REPLICATE_MIN_DEADLINE_SECONDS, REPLICATE_TOKEN_ENV, ReplicateModel,
    ReplicateSettings, Secret, UpscalerKind,
};

/// The defaults, compiled in so every binary runs from any working directory.
pub const DEFAULT_TOML: &str = include_str!("../../../config/default.toml");

/// Every knob of Atelier. Sections mirror `config/default.toml`, where each key is
/// documented.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    pub limits: DecodeLimits,
    pub analysis: AnalysisSettings,
    pub generation: GenerationSettings,
    pub upscaler: UpscalerSettings,
    pub video: VideoSettings,
    pub report: ReportSettings,
    pub output: OutputSettings,
    pub pipeline: PipelineSettings,
    pub telemetry: TelemetrySettings,
    pub blobs: BlobSettings,
    pub broker: BrokerSettings,
    pub database: DatabaseSettings,
    pub worker: WorkerSettings,
    pub gateway: GatewaySettings,
    pub status: StatusSettings,
    pub reaper: ReaperSettings,
    pub retention: RetentionSettings,
    pub cache: CacheSettings,
    pub ops: OpsSettings,
    pub providers: ProviderSettings,
    pub console: ConsoleSettings,
    pub webhooks: WebhookSettings,
}

/// Signed webhooks (`callbackUrl`): how deliveries are signed and retried.
/// Endpoints are held to `gateway.fetch`'s address rules, as inputs are.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookSettings {
    /// The `whsec_…` signing secret when API keys are off (keys carry their own).
    pub secret: Secret,
    /// Pause before each retry after a failed attempt; one attempt more than
    /// there are pauses.
    #[serde(deserialize_with = "one_or_many")]
    pub retry_delays_ms: Vec<u64>,
    /// Each pause is drawn from ±this fraction around its value.
    pub retry_jitter: f64,
    /// One attempt's limit, from connecting to the end of the answer.
    pub attempt_timeout_ms: u64,
    /// Requests in flight to one endpoint (scheme, host and port) at once.
    pub max_in_flight_per_endpoint: usize,
    /// Requests in flight from one sender at once.
    pub max_in_flight: usize,
    /// How often the sender looks for due deliveries made elsewhere (manual
    /// retries through a gateway, another replica's leftovers).
    pub poll_interval_ms: u64,
}

/// Limits checked on every input before any pixel buffer is allocated.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DecodeLimits {
    pub max_bytes: u64,
    pub max_pixels: u64,
    pub min_side: u32,
    pub max_side: u32,
    /// Bytes of decoded pixels this process holds at once, over all decodes.
    pub decode_budget_bytes: u64,
    /// Most scans a (progressive) JPEG may have.
    pub max_jpeg_scans: u32,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AnalysisSettings {
    pub working_max_side: u32,
    pub palette_size: usize,
    pub max_color_samples: usize,
    /// Below this `mask_confidence` the local path refuses a photo
    /// (`unsuitable_photo`) instead of compositing a broken cut-out.
    pub min_mask_confidence: f32,
    /// Which segmenter gives the cut-out its first labelling.
    pub segmenter: SegmenterKind,
    /// ONNX segmentation model (`segmenter = "onnx"`): file path, square input
    /// side, and per-channel normalisation of RGB in 0–1 (`(x - mean) / std`).
    pub onnx_model: String,
    pub onnx_input_size: u32,
    pub onnx_mean: [f32; 3],
    pub onnx_std: [f32; 3],
}

/// The first labelling of the local cut-out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SegmenterKind {
    /// Edges, colour, texture and region coherence (no model).
    Classic,
    /// A salient-object segmentation model through tract-onnx, refined by the
    /// classic cut-out's colour models, smoothness term and guided filter.
    Onnx,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenerationSettings {
    pub canvas_width: u32,
    pub canvas_height: u32,
    pub padding: f32,
    pub feather_px: f32,
    pub shadow_opacity: f32,
    pub max_concurrent_generations: usize,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpscalerSettings {
    pub max_workers: usize,
    pub sharpen: f32,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VideoSettings {
    pub width: u32,
    pub height: u32,
    pub fps: u32,
    pub seconds_per_image: f32,
    pub transition_seconds: f32,
    pub zoom: f32,
    pub preset: String,
    pub crf: u8,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReportSettings {
    pub thumbnail_height: u32,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutputSettings {
    pub jpeg_quality: u8,
    /// Longest canvas side a request's `output.size` or preset may ask for.
    pub max_side: u32,
    /// Shortest canvas side a request may ask for.
    pub min_side: u32,
    /// Most canvas pixels a request may ask for.
    pub max_pixels: u64,
    /// Most pixels of one upscaled image (canvas × factor²).
    pub max_upscaled_pixels: u64,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PipelineSettings {
    pub max_workers: usize,
    pub max_queue_size: u32,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TelemetrySettings {
    pub log_format: LogFormat,
    pub log_filter: String,
}

/// Where the services keep blobs.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BlobSettings {
    /// `file:///abs/path`, a relative folder, or `memory://` (tests).
    pub url: String,
}

/// RabbitMQ connection, naming and retry policy, shared by every service.
#[derive(Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BrokerSettings {
    pub url: String,
    pub prefix: String,
    pub max_attempts: u32,
    #[serde(deserialize_with = "one_or_many")]
    pub retry_delays_ms: Vec<u64>,
    pub retry_jitter: f64,
    pub publish_timeout_ms: u64,
    pub reconnect_initial_ms: u64,
    pub reconnect_max_ms: u64,
}

/// The job store.
#[derive(Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseSettings {
    pub url: String,
    pub schema: String,
    pub max_connections: u32,
    pub connect_timeout_ms: u64,
}

impl fmt::Debug for BrokerSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BrokerSettings")
            .field("url", &redact_url(&self.url))
            .field("prefix", &self.prefix)
            .field("max_attempts", &self.max_attempts)
            .field("retry_delays_ms", &self.retry_delays_ms)
            .field("retry_jitter", &self.retry_jitter)
            .field("publish_timeout_ms", &self.publish_timeout_ms)
            .field("reconnect_initial_ms", &self.reconnect_initial_ms)
            .field("reconnect_max_ms", &self.reconnect_max_ms)
            .finish()
    }
}

impl fmt::Debug for DatabaseSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DatabaseSettings")
            .field("url", &redact_url(&self.url))
            .field("schema", &self.schema)
            .field("max_connections", &self.max_connections)
            .field("connect_timeout_ms", &self.connect_timeout_ms)
            .finish()
    }
}

/// `url` without its password, for messages, logs and `Debug`.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let userinfo = &url[scheme_end + 3..at];
            match userinfo.split_once(':') {
                Some((user, _)) => format!("{}://{user}:***@{}", &url[..scheme_end], &url[at + 1..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

/// Worker services.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkerSettings {
    /// Jobs one worker process runs at once (= prefetch); 0 = `pipeline.max_workers`.
    pub concurrency: u16,
    pub shutdown_grace_seconds: u64,
}

/// The HTTP gateway.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatewaySettings {
    pub bind: String,
    pub sync_wait_seconds: u64,
    pub max_body_bytes: usize,
    pub retry_after_seconds: u64,
    pub status_url: String,
    pub status_timeout_ms: u64,
    /// Connections held at once; kept below the file-descriptor limit.
    pub max_connections: usize,
    pub header_read_timeout_seconds: u64,
    pub body_timeout_seconds: u64,
    /// HTTP/2 keep-alive ping interval; idle HTTP/1.1 connections end at the
    /// header-read timeout instead.
    pub idle_timeout_seconds: u64,
    /// Submissions handled at once by one gateway (beyond: 503).
    pub max_concurrent_submissions: usize,
    /// How long an idempotency key holds after its job was created.
    pub idempotency_ttl_seconds: u64,
    /// On SIGTERM: seconds readiness fails while connections are still accepted.
    pub drain_delay_seconds: u64,
    /// On SIGTERM: seconds open connections get to finish after the drain delay.
    pub shutdown_grace_seconds: u64,
    pub auth: AuthSettings,
    pub fetch: FetchSettings,
    pub cors: CorsSettings,
    pub uploads: UploadSettings,
}

/// Direct uploads: `multipart/form-data` generate requests, read as they
/// arrive (each file streamed to the blob store, never held whole). Each file
/// is also held to `limits.max_bytes`, and the `request` part to
/// `gateway.max_body_bytes`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UploadSettings {
    /// Largest multipart body, every part and boundary counted; refused (413)
    /// as soon as the bytes read pass it.
    pub max_body_bytes: u64,
    /// Most parts in one body (the `request` part included).
    pub max_parts: usize,
}

/// Cross-origin calls from browsers.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CorsSettings {
    /// Origins allowed to call the API (`scheme://host[:port]`, or `*`); empty
    /// turns CORS off.
    #[serde(deserialize_with = "one_or_many")]
    pub allowed_origins: Vec<String>,
    /// Seconds a browser may cache a preflight answer.
    pub max_age_seconds: u64,
}

/// API keys.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthSettings {
    /// Keys required on `/api/v1/*` (`false`: one anonymous tenant, for migrating).
    pub required: bool,
    /// Seconds a key lookup is cached per gateway (a revocation takes at most this long).
    pub cache_seconds: u64,
    /// Limits of keys created without their own (0 = none).
    pub default_rate_per_minute: u32,
    pub default_max_in_flight: u32,
    /// Requests a key may send at once above its steady rate (the GCRA burst).
    pub burst: u32,
}

/// Fetching client URLs (inputs, and webhooks).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FetchSettings {
    /// Whether loopback, private, link-local … addresses may be fetched.
    pub allow_private_networks: bool,
    /// `host` or `host:port` fetched even when they resolve to private addresses.
    #[serde(deserialize_with = "one_or_many")]
    pub allowed_hosts: Vec<String>,
    pub connect_timeout_ms: u64,
    pub timeout_ms: u64,
    pub max_redirects: usize,
    /// Bytes one request may download over all its inputs.
    pub max_total_bytes: u64,
    /// Fetches in flight at once from one gateway.
    pub max_concurrent: usize,
}

/// Every service's ops listener: `/healthz`, `/readyz`, `/metrics`, kept off
/// the public port.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpsSettings {
    /// Address to listen on; empty = 127.0.0.1 and the service's own port
    /// (see [`OpsSettings::default_port`]).
    pub bind: String,
}

impl OpsSettings {
    /// The ops port of `service` when `ops.bind` is empty.
    pub fn default_port(service: &str) -> u16 {
        match service {
            "status" => 9101,
            "analysis" => 9102,
            "generation" => 9103,
            "upscaling" => 9104,
            "postprocess" => 9105,
            // The gateway, and `atelier serve` (the whole API in one process).
            _ => 9100,
        }
    }

    /// Where `service`'s ops listener listens.
    pub fn bind_for(&self, service: &str) -> String {
        if self.bind.is_empty() {
            format!("127.0.0.1:{}", Self::default_port(service))
        } else {
            self.bind.clone()
        }
    }
}

/// The reaper: jobs that stopped making progress.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReaperSettings {
    pub interval_seconds: u64,
    /// A running job without progress for this long, whose stage queue is empty, is put back.
    pub stalled_after_seconds: u64,
    /// A job accepted but never handed to the pipeline (its gateway died) is put in after this long.
    pub pending_after_seconds: u64,
    /// Times a job is put back before it is failed.
    pub max_resumes: u32,
}

/// How long finished jobs, their events and blobs are kept, and how often the
/// sweeper (one at a time, cluster-wide) deletes what is older.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetentionSettings {
    /// How often the sweeper runs.
    pub interval_seconds: u64,
    /// Finished jobs (completed, failed, cancelled) and their events are
    /// deleted this many days after they finished; 0 = kept forever.
    /// Fractions are allowed (tests sweep after seconds).
    pub jobs_days: f64,
    /// A finished job's blobs (inputs, images, video, report) are deleted this
    /// many days after it finished; 0 = kept forever.
    pub blobs_days: f64,
    /// Most jobs one sweep deletes per round trip (it goes on until none are left).
    pub batch_size: u32,
}

/// The result cache: stage outputs reused by later requests with the same
/// input content, parameters and provider versions (see docs/operations.md).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CacheSettings {
    /// Whether stages look up and store their outputs under `cache/` in the
    /// blob store. Off: every job computes everything (and reports misses).
    pub enabled: bool,
    /// Entries older than this many days are deleted by the retention
    /// sweeper; 0 = kept forever. Fractions are allowed.
    pub ttl_days: f64,
    /// Single flight across processes: a replica about to compute an entry
    /// first creates a claim blob (a conditional create); others wait for the
    /// entry while the claim is younger than this, then compute it themselves.
    /// Longer than the slowest single item (a remote render at its deadline).
    pub claim_lease_seconds: u64,
    /// How often a replica waiting on another's claim looks for the entry.
    pub claim_poll_ms: u64,
}

impl CacheSettings {
    /// Age in ms after which an entry goes (`None`: kept forever).
    pub fn max_age_ms(&self) -> Option<u64> {
        days_to_ms(self.ttl_days)
    }
}

/// Milliseconds in a day, for retention ages.
pub const MS_PER_DAY: u64 = 86_400_000;

impl RetentionSettings {
    /// Age in ms after which a finished job goes (`None`: kept forever).
    pub fn jobs_max_age_ms(&self) -> Option<u64> {
        days_to_ms(self.jobs_days)
    }

    /// Age in ms after which a finished job's blobs go (`None`: kept forever).
    pub fn blobs_max_age_ms(&self) -> Option<u64> {
        days_to_ms(self.blobs_days)
    }
}

/// `days` in whole milliseconds (at least 1); `None` for 0 (forever).
fn days_to_ms(days: f64) -> Option<u64> {
    // Validated finite and non-negative; a float's saturating cast caps the rest.
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss
    )]
    let ms = (days * MS_PER_DAY as f64).round() as u64;
    (days > 0.0).then_some(ms.max(1))
}

/// The status service.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatusSettings {
    pub bind: String,
    pub timing_window_seconds: u32,
    pub rabbitmq_poll_ms: u64,
    /// On SIGTERM, how long health answers NOT_SERVING while calls are still
    /// served (so load balancers and clients move away) before `WatchJob`
    /// streams end with UNAVAILABLE and the server stops.
    pub drain_delay_seconds: u64,
}

/// The web console at `/console` on the gateway (and `atelier serve`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsoleSettings {
    /// How often the console's event stream sends a fresh snapshot of the
    /// queues and timings.
    pub refresh_ms: u64,
    /// Window over which a stage's throughput per minute is counted.
    pub throughput_window_seconds: u32,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines for terminals.
    Text,
    /// One JSON object per line, for log collectors.
    Json,
}

impl Settings {
    /// Loads settings from `ATELIER_CONFIG_DIR` (default `config`), `ATELIER_ENV`
    /// and the process environment.
    pub fn load() -> Result<Self, CoreError> {
        let dir = std::env::var_os("ATELIER_CONFIG_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("config"));
        let env = std::env::var("ATELIER_ENV").ok().filter(|e| !e.is_empty());
        Self::load_from(&dir, env.as_deref(), std::env::vars())
    }

    /// Loads settings from explicit sources, so tests need not touch the process
    /// environment.
    pub fn load_from(
        dir: &Path,
        env_name: Option<&str>,
        vars: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, CoreError> {
        let vars: config::Map<String, String> = vars
            .into_iter()
            .filter(|(k, _)| k.starts_with("ATELIER__"))
            .collect();
        let mut builder = Config::builder()
            .add_source(File::from_str(DEFAULT_TOML, FileFormat::Toml))
            .add_source(File::from(dir.join("default.toml")).required(false));
        if let Some(env_name) = env_name {
            builder = builder.add_source(File::from(dir.join(format!("{env_name}.toml"))).required(true));
        }
        let settings: Settings = builder
            .add_source(
                Environment::with_prefix("ATELIER")
                    .prefix_separator("__")
                    .separator("__")
                    .try_parsing(true)
                    // Lists come from the environment comma-separated
                    // (`ATELIER__BROKER__RETRY_DELAYS_MS=100,200`).
                    .list_separator(",")
                    .with_list_parse_key("broker.retry_delays_ms")
                    .with_list_parse_key("gateway.fetch.allowed_hosts")
                    .with_list_parse_key("gateway.cors.allowed_origins")
                    .with_list_parse_key("webhooks.retry_delays_ms")
                    .source(Some(vars)),
            )
            .build()
            .and_then(Config::try_deserialize)
            .map_err(CoreError::Config)?;
        settings.validate()?;
        Ok(settings)
    }

    /// The built-in defaults alone.
    pub fn defaults() -> Self {
        Self::load_from(Path::new("/nonexistent"), None, std::iter::empty())
            .expect("the built-in config/default.toml is valid")
    }

    /// Rejects values that parse but cannot work.
    pub fn validate(&self) -> Result<(), CoreError> {
        let bad = |m: &str| Err(CoreError::InvalidSetting(m.to_string()));
        let g = &self.generation;
        if g.canvas_width < 64 || g.canvas_height < 64 {
            return bad("generation.canvas_width and canvas_height must be at least 64");
        }
        if !(0.0..0.45).contains(&g.padding) {
            return bad("generation.padding must be in [0, 0.45)");
        }
        if g.max_concurrent_generations == 0 {
            return bad("generation.max_concurrent_generations must be at least 1");
        }
        let v = &self.video;
        if v.width < 16 || v.height < 16 || !v.width.is_multiple_of(2) || !v.height.is_multiple_of(2) {
            return bad("video.width and video.height must be even and at least 16");
        }
        if v.fps == 0 || v.seconds_per_image <= 0.0 {
            return bad("video.fps and video.seconds_per_image must be positive");
        }
        if v.transition_seconds < 0.0 || v.transition_seconds >= v.seconds_per_image {
            return bad("video.transition_seconds must be in [0, seconds_per_image)");
        }
        if !(1..=100).contains(&self.output.jpeg_quality) {
            return bad("output.jpeg_quality must be in 1..=100");
        }
        let o = &self.output;
        if o.min_side == 0 || o.min_side > o.max_side || o.max_pixels == 0 {
            return bad(
                "output.min_side must be positive and at most output.max_side, output.max_pixels positive",
            );
        }
        if o.max_side > self.limits.max_side || o.max_pixels > self.limits.max_pixels {
            // The upscaling stage decodes each variation with the input limits.
            return bad(
                "output.max_side and output.max_pixels must fit limits.max_side and limits.max_pixels",
            );
        }
        let (cw, ch) = (g.canvas_width, g.canvas_height);
        if cw.max(ch) > o.max_side || u64::from(cw) * u64::from(ch) > o.max_pixels || cw.min(ch) < o.min_side
        {
            return bad(
                "generation.canvas_width x canvas_height must fit output.min_side, max_side and max_pixels",
            );
        }
        if self.limits.min_side == 0 || self.limits.max_pixels == 0 || self.limits.max_bytes == 0 {
            return bad("limits must be positive");
        }
        if self.analysis.palette_size == 0 || self.analysis.working_max_side < 64 {
            return bad("analysis.palette_size must be positive and working_max_side at least 64");
        }
        let a = &self.analysis;
        if !(0.0..=1.0).contains(&a.min_mask_confidence) {
            return bad("analysis.min_mask_confidence must be in [0, 1]");
        }
        if a.segmenter == SegmenterKind::Onnx
            && (a.onnx_model.trim().is_empty()
                || a.onnx_input_size < 16
                || a.onnx_std.iter().any(|s| *s <= 0.0))
        {
            return bad(
                "analysis.segmenter = \"onnx\" needs analysis.onnx_model, onnx_input_size >= 16 and positive onnx_std",
            );
        }
        if self.broker.max_attempts == 0 || self.broker.retry_delays_ms.is_empty() {
            return bad("broker.max_attempts must be at least 1 and broker.retry_delays_ms not empty");
        }
        if !(0.0..=1.0).contains(&self.broker.retry_jitter) {
            return bad("broker.retry_jitter must be in [0, 1]");
        }
        if self.broker.prefix.is_empty() || !self.broker.prefix.bytes().all(|b| b.is_ascii_graphic()) {
            return bad("broker.prefix must be non-empty printable ASCII");
        }
        if !is_identifier(&self.database.schema) {
            return bad("database.schema must be a lowercase SQL identifier ([a-z_][a-z0-9_]*)");
        }
        let gw = &self.gateway;
        if gw.max_connections == 0 || gw.max_concurrent_submissions == 0 || gw.fetch.max_concurrent == 0 {
            return bad(
                "gateway.max_connections, max_concurrent_submissions and fetch.max_concurrent must be at least 1",
            );
        }
        if gw.header_read_timeout_seconds == 0 || gw.body_timeout_seconds == 0 || gw.idle_timeout_seconds == 0
        {
            return bad("gateway timeouts must be positive");
        }
        if gw.uploads.max_body_bytes == 0 || gw.uploads.max_parts < 2 {
            return bad(
                "gateway.uploads.max_body_bytes must be positive and gateway.uploads.max_parts at least 2 (the request and one file)",
            );
        }
        let w = &self.webhooks;
        if w.attempt_timeout_ms == 0
            || w.max_in_flight == 0
            || w.max_in_flight_per_endpoint == 0
            || w.poll_interval_ms == 0
        {
            return bad(
                "webhooks.attempt_timeout_ms, max_in_flight, max_in_flight_per_endpoint and poll_interval_ms must be positive",
            );
        }
        if !(0.0..=1.0).contains(&w.retry_jitter) {
            return bad("webhooks.retry_jitter must be in [0, 1]");
        }
        if !w.secret.is_empty() && !w.secret.expose().starts_with("whsec_") {
            return bad("webhooks.secret must be a Standard Webhooks secret: whsec_ and base64");
        }
        if let Some(origin) = gw.cors.allowed_origins.iter().find(|o| !is_origin(o)) {
            return Err(CoreError::InvalidSetting(format!(
                "gateway.cors.allowed_origins: {origin:?} is not `*` or scheme://host[:port]"
            )));
        }
        if self.limits.decode_budget_bytes == 0 || self.limits.max_jpeg_scans == 0 {
            return bad("limits.decode_budget_bytes and limits.max_jpeg_scans must be positive");
        }
        if self.reaper.interval_seconds == 0 {
            return bad("reaper.interval_seconds must be positive");
        }
        let retention = &self.retention;
        if retention.interval_seconds == 0 || retention.batch_size == 0 {
            return bad("retention.interval_seconds and retention.batch_size must be positive");
        }
        if [retention.jobs_days, retention.blobs_days]
            .iter()
            .any(|d| !d.is_finite() || *d < 0.0)
        {
            return bad("retention.jobs_days and retention.blobs_days must be 0 (keep forever) or more");
        }
        if !self.cache.ttl_days.is_finite() || self.cache.ttl_days < 0.0 {
            return bad("cache.ttl_days must be 0 (keep forever) or more");
        }
        if self.cache.claim_lease_seconds == 0 || self.cache.claim_poll_ms == 0 {
            return bad("cache.claim_lease_seconds and cache.claim_poll_ms must be positive");
        }
        if self.pipeline.max_queue_size == 0 || self.pipeline.max_workers == 0 {
            return bad("pipeline.max_queue_size and pipeline.max_workers must be at least 1");
        }
        self.providers.validate()
    }

    /// Jobs one worker runs at once (its prefetch).
    pub fn worker_concurrency(&self) -> u16 {
        match self.worker.concurrency {
            0 => u16::try_from(self.pipeline.max_workers).unwrap_or(u16::MAX),
            n => n,
        }
    }

    /// Threads for the CPU pool of the upscaler (0 in the file means one per core).
    pub fn upscaler_threads(&self) -> usize {
        match self.upscaler.max_workers {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        }
    }
}

/// `*`, or a browser origin: `http(s)://host[:port]` without path, query or
/// trailing slash (browsers send it exactly so).
fn is_origin(s: &str) -> bool {
    if s == "*" {
        return true;
    }
    let Some((scheme, rest)) = s.split_once("://") else {
        return false;
    };
    matches!(scheme, "http" | "https")
        && !rest.is_empty()
        && rest
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']'))
}

fn is_identifier(s: &str) -> bool {
    let mut bytes = s.bytes();
    matches!(bytes.next(), Some(b'a'..=b'z' | b'_'))
        && bytes.all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'_'))
        && s.len() <= 63
}

/// A list setting that also takes one value: `config` parses a lone
/// `ATELIER__BROKER__RETRY_DELAYS_MS=3000` as a number, not a one-item list.
fn one_or_many<'de, D, T>(deserializer: D) -> Result<Vec<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    use serde::de::value::{I64Deserializer, StrDeserializer, U64Deserializer};
    use serde::de::{Error, SeqAccess, Visitor};

    struct List<T>(std::marker::PhantomData<T>);

    impl<'de, T: Deserialize<'de>> Visitor<'de> for List<T> {
        type Value = Vec<T>;

        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a list, or a single value")
        }

        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<T>, A::Error> {
            let mut items = Vec::new();
            while let Some(item) = seq.next_element()? {
                items.push(item);
            }
            Ok(items)
        }

        fn visit_u64<E: Error>(self, v: u64) -> Result<Vec<T>, E> {
            T::deserialize(U64Deserializer::<E>::new(v)).map(|item| vec![item])
        }

        fn visit_i64<E: Error>(self, v: i64) -> Result<Vec<T>, E> {
            T::deserialize(I64Deserializer::<E>::new(v)).map(|item| vec![item])
        }

        fn visit_str<E: Error>(self, v: &str) -> Result<Vec<T>, E> {
            T::deserialize(StrDeserializer::<E>::new(v)).map(|item| vec![item])
        }
    }

    deserializer.deserialize_any(List(std::marker::PhantomData))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_load_and_validate() {
        let s = Settings::defaults();
        assert_eq!(s.limits.max_bytes, 30_000_000);
        assert_eq!(s.limits.max_pixels, 40_000_000);
        assert_eq!(
            (s.generation.canvas_width, s.generation.canvas_height),
            (960, 1280)
        );
    }

    #[test]
    fn env_vars_override_nested_keys() {
        let vars = [
            ("ATELIER__GENERATION__CANVAS_WIDTH".to_string(), "600".to_string()),
            ("ATELIER__UPSCALER__MAX_WORKERS".to_string(), "3".to_string()),
            ("UNRELATED".to_string(), "x".to_string()),
        ];
        let s = Settings::load_from(Path::new("/nonexistent"), None, vars).expect("loads");
        assert_eq!(s.generation.canvas_width, 600);
        assert_eq!(s.upscaler_threads(), 3);
    }

    #[test]
    fn env_lists_are_comma_separated() {
        let vars = [(
            "ATELIER__BROKER__RETRY_DELAYS_MS".to_string(),
            "100,250".to_string(),
        )];
        let s = Settings::load_from(Path::new("/nonexistent"), None, vars).expect("loads");
        assert_eq!(s.broker.retry_delays_ms, vec![100, 250]);
        let one = [
            ("ATELIER__BROKER__RETRY_DELAYS_MS".to_string(), "3000".to_string()),
            (
                "ATELIER__GATEWAY__FETCH__ALLOWED_HOSTS".to_string(),
                "cdn.example".to_string(),
            ),
        ];
        let s = Settings::load_from(Path::new("/nonexistent"), None, one).expect("one value loads");
        assert_eq!(s.broker.retry_delays_ms, vec![3000]);
        assert_eq!(s.gateway.fetch.allowed_hosts, vec!["cdn.example".to_string()]);
    }

    #[test]
    fn cors_is_off_by_default_and_takes_only_origins() {
        assert!(Settings::defaults().gateway.cors.allowed_origins.is_empty());
        let load = |origins: &str| {
            let vars = [(
                "ATELIER__GATEWAY__CORS__ALLOWED_ORIGINS".to_string(),
                origins.to_string(),
            )];
            Settings::load_from(Path::new("/nonexistent"), None, vars)
        };
        let s = load("https://shop.example,http://127.0.0.1:3000").expect("origins load");
        assert_eq!(
            s.gateway.cors.allowed_origins,
            ["https://shop.example", "http://127.0.0.1:3000"]
        );
        assert!(load("*").is_ok());
        for bad in [
            "shop.example",
            "https://shop.example/",
            "ftp://x",
            "https://a.example/path",
        ] {
            let err = load(bad).expect_err(bad);
            assert!(err.to_string().contains("gateway.cors.allowed_origins"), "{err}");
        }
    }

    #[test]
    fn env_file_layers_over_defaults_and_must_exist_when_named() {
        let dir = std::env::temp_dir().join(format!("atelier-cfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("tmp dir");
        std::fs::write(dir.join("prod.toml"), "[output]\njpeg_quality = 80\n").expect("write");
        let s = Settings::load_from(&dir, Some("prod"), std::iter::empty()).expect("loads");
        assert_eq!(s.output.jpeg_quality, 80);
        assert!(Settings::load_from(&dir, Some("missing"), std::iter::empty()).is_err());
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn providers_are_local_by_default_and_switch_by_env() {
        let s = Settings::defaults();
        assert_eq!(s.providers.analyzer, AnalyzerKind::Local);
        assert_eq!(s.providers.replicate.creations_per_minute, 600);
        assert_eq!(s.providers.replicate.data_url_max_bytes, 262_144);
        let vars = [
            ("ATELIER__PROVIDERS__ANALYZER", "gemini"),
            ("ATELIER__PROVIDERS__GENERATOR", "replicate"),
            ("ATELIER__PROVIDERS__GEMINI__API_KEY", "g-secret"),
            ("ATELIER__PROVIDERS__GEMINI__BASE_URL", "http://127.0.0.1:9"),
            ("ATELIER__PROVIDERS__REPLICATE__GENERATOR__MODEL", "owner/model"),
            (
                "ATELIER__PROVIDERS__REPLICATE__GENERATOR__EXTRA_INPUT",
                r#"{"num_outputs": 1}"#,
            ),
        ]
        .map(|(k, v)| (k.to_string(), v.to_string()));
        let s = Settings::load_from(Path::new("/nonexistent"), None, vars).expect("loads");
        assert_eq!(s.providers.analyzer, AnalyzerKind::Gemini);
        assert_eq!(s.providers.generator, GeneratorKind::Replicate);
        assert_eq!(s.providers.gemini.api_key.expose(), "g-secret");
        assert_eq!(s.providers.gemini.base_url, "http://127.0.0.1:9");
        assert_eq!(
            s.providers.replicate.generator.owner_name(),
            Some(("owner", "model"))
        );
        assert!(!format!("{s:?}").contains("g-secret"), "secrets never print");
    }

    #[test]
    fn connection_passwords_never_print() {
        let vars = [
            (
                "ATELIER__BROKER__URL".to_string(),
                "amqp://app:s3cret@rabbit:5672/%2f".to_string(),
            ),
            (
                "ATELIER__DATABASE__URL".to_string(),
                "postgres://app:hunter2@db/atelier".to_string(),
            ),
        ];
        let s = Settings::load_from(Path::new("/nonexistent"), None, vars).expect("loads");
        let shown = format!("{s:?}");
        assert!(!shown.contains("s3cret") && !shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("amqp://app:***@rabbit:5672/%2f"), "{shown}");
        assert_eq!(redact_url("postgres://db/x"), "postgres://db/x");
    }

    #[test]
    fn a_remote_provider_needs_its_model_and_sane_limits() {
        let load = |vars: &[(&str, &str)]| {
            let vars = vars.iter().map(|(k, v)| (k.to_string(), v.to_string()));
            Settings::load_from(Path::new("/nonexistent"), None, vars)
        };
        let err = load(&[("ATELIER__PROVIDERS__GENERATOR", "replicate")]).unwrap_err();
        assert!(
            err.to_string().contains("providers.replicate.generator.model"),
            "{err}"
        );
        let err = load(&[
            ("ATELIER__PROVIDERS__UPSCALER", "replicate"),
            ("ATELIER__PROVIDERS__REPLICATE__WAIT_SECONDS", "61"),
        ])
        .unwrap_err();
        assert!(err.to_string().contains("wait_seconds"), "{err}");
        assert!(load(&[("ATELIER__PROVIDERS__ANALYZER", "openai")]).is_err());
        assert!(load(&[("ATELIER__PROVIDERS__UPSCALER", "replicate")]).is_ok());
    }

    #[test]
    fn nonsense_values_are_refused() {
        let vars = [("ATELIER__VIDEO__WIDTH".to_string(), "721".to_string())];
        let err = Settings::load_from(Path::new("/nonexistent"), None, vars).unwrap_err();
        assert!(err.to_string().contains("video.width"), "{err}");
        let vars = [("ATELIER__OUTPUT__JPEG_QUALITI".to_string(), "7".to_string())];
        assert!(Settings::load_from(Path::new("/nonexistent"), None, vars).is_err());
    }
}

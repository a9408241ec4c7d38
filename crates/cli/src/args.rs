//! Command-line arguments.

use std::path::PathBuf;

use atelier_core::CoreError;
use atelier_core::output::{ImageFormat, Preset};
use atelier_core::request::{Gender, ProductType, UpscaleFactor, View};
use atelier_core::settings::{AnalyzerKind, GeneratorKind, Settings, UpscalerKind};
use clap::{Args, Parser, Subcommand, ValueEnum};

/// Atelier: fashion product photos on white, plain and scene backgrounds,
/// upscaled, with a video and an Excel report.
#[derive(Debug, Parser)]
#[command(name = "atelier", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the whole pipeline on local photos, in this process.
    Process(ProcessArgs),
    /// Upscale one image (Lanczos3 with mild sharpening) to a JPEG.
    Upscale(UpscaleArgs),
    /// Load-test a running stack (or `atelier process` with --embedded): latency
    /// percentiles, success rate and jobs per minute.
    Bench(BenchArgs),
    /// Serve the whole HTTP API (and the gRPC status service) from this
    /// process, with an embedded job store: nothing else to install or start.
    Serve(ServeArgs),
    /// Manage API keys (in the job store every gateway reads).
    Keys(KeysArgs),
    /// Dead letters: messages the pipeline gave up on. List, show, replay
    /// (the job runs again from the stage that gave up) or purge them,
    /// through a gateway with an admin key.
    Dlq(DlqArgs),
    /// Watch a running stack or `atelier serve`: a live table of the stages
    /// (default), a one-shot health check, or a job's events.
    Monitor(MonitorArgs),
}

#[derive(Debug, Args)]
pub struct DlqArgs {
    /// The gateway's base URL (default: http:// and gateway.bind).
    #[arg(long, env = "ATELIER_URL", value_name = "URL", global = true)]
    pub url: Option<String>,
    /// An admin API key.
    #[arg(
        long,
        env = "ATELIER_API_KEY",
        value_name = "KEY",
        hide_env_values = true,
        global = true
    )]
    pub key: Option<String>,
    /// Print JSON (the default when stdout is not a terminal).
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub command: DlqCommand,
}

#[derive(Debug, Subcommand)]
pub enum DlqCommand {
    /// The dead letters, oldest first.
    List {
        /// At most this many (1 to 1000).
        #[arg(long, default_value_t = 100)]
        limit: u32,
    },
    /// One dead letter, with its job and headers.
    Show { id: String },
    /// Put dead letters back into the stage that gave up, attempts reset; their
    /// jobs run again from there.
    Replay(DlqSelection),
    /// Delete dead letters without replaying them (their jobs stay failed).
    Purge(DlqSelection),
}

/// Which dead letters: ids, or `--all`.
#[derive(Debug, Args)]
#[group(required = true, multiple = false)]
pub struct DlqSelection {
    /// Dead letter ids (from `atelier dlq list`).
    pub ids: Vec<String>,
    /// Every dead letter there is now.
    #[arg(long)]
    pub all: bool,
}

#[derive(Debug, Args)]
pub struct MonitorArgs {
    /// gRPC URL of the status service (default: gateway.status_url; `atelier
    /// serve` listens for it on its --grpc address).
    #[arg(long, value_name = "URL", global = true)]
    pub status: Option<String>,
    /// Base URL of the gateway, for its readiness (default: http:// and gateway.bind).
    #[arg(long, value_name = "URL", global = true)]
    pub gateway: Option<String>,
    /// One JSON object per line instead of text, for scripts.
    #[arg(long, global = true)]
    pub json: bool,
    /// Seconds between refreshes of the live table.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u64).range(1..))]
    pub interval: u64,
    /// Print the table once and exit.
    #[arg(long)]
    pub once: bool,
    #[command(subcommand)]
    pub command: Option<MonitorCommand>,
}

#[derive(Debug, Subcommand)]
pub enum MonitorCommand {
    /// Check the gateway, the status service, the broker and every stage's
    /// consumers once; exits non-zero naming what is down.
    Health,
    /// Follow one job's events until it ends (exit 0 when it completed), or
    /// every job's events without an id.
    Watch {
        /// The job's request_id.
        job_id: Option<String>,
    },
}

#[derive(Debug, Args)]
pub struct KeysArgs {
    /// The `--data` folder of `atelier serve` (default: the database of the settings).
    #[arg(long, value_name = "DIR", global = true)]
    pub data: Option<PathBuf>,
    #[command(subcommand)]
    pub command: KeysCommand,
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Create a key; prints the key alone on stdout (shown once).
    Create {
        /// Unique name of the key.
        #[arg(long)]
        name: String,
        /// Tenant whose jobs the key reads and writes (default: the name; give
        /// an existing tenant to rotate its key).
        #[arg(long)]
        tenant: Option<String>,
        /// May call the admin routes.
        #[arg(long)]
        admin: bool,
        /// Requests per minute (default gateway.auth.default_rate_per_minute; 0 = unlimited).
        #[arg(long)]
        rate_per_minute: Option<u32>,
        /// Unfinished jobs at once (default gateway.auth.default_max_in_flight; 0 = unlimited).
        #[arg(long)]
        max_in_flight: Option<u32>,
    },
    /// List the keys (never their secrets).
    List,
    /// Revoke a key by name.
    Revoke { name: String },
    /// Replace a key's webhook signing secret; prints the new one.
    RotateWebhookSecret { name: String },
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// HTTP address of the API (default: gateway.bind, 127.0.0.1:8080).
    #[arg(long, value_name = "ADDR")]
    pub bind: Option<String>,
    /// gRPC address of the status service (default: status.bind, 127.0.0.1:50051).
    #[arg(long, value_name = "ADDR")]
    pub grpc: Option<String>,
    /// Folder for the job database and the blobs (created when missing).
    #[arg(long, value_name = "DIR", default_value = ".atelier")]
    pub data: PathBuf,
}

#[derive(Debug, Args)]
pub struct ProcessArgs {
    /// Garment photos (JPEG, PNG or WebP), at most 8.
    #[arg(required = true, value_name = "IMAGE")]
    pub inputs: Vec<PathBuf>,
    /// Output folder (created when missing).
    #[arg(long, short)]
    pub out: PathBuf,
    /// Images per input on white, plain and random backgrounds, e.g. 1,1,1.
    #[arg(long, default_value = "1,1,1", value_parser = parse_backgrounds)]
    pub backgrounds: Backgrounds,
    /// Upscale every variation by this factor (off when not given).
    #[arg(long, value_enum)]
    pub upscale: Option<Factor>,
    /// View of the photos: once for all inputs, or once per input in order.
    #[arg(long)]
    pub view: Vec<View>,
    /// Product type: general, tops, bottoms, dresses, outerwear, shoes, accessories.
    #[arg(long, default_value = "general")]
    pub product_type: ProductType,
    /// Gender: male, female, unisex.
    #[arg(long, default_value = "unisex")]
    pub gender: Gender,
    /// Free text passed to generation as a prompt.
    #[arg(long)]
    pub text: Option<String>,
    /// Images only (the /generate/image flavour): no video, no report.
    #[arg(long)]
    pub images_only: bool,
    /// Image format: jpeg (default), png or webp (the request's `output.format`).
    #[arg(long)]
    pub format: Option<ImageFormat>,
    /// Marketplace canvas: default, amazon, shopify or zalando (`output.preset`).
    #[arg(long, conflicts_with = "size")]
    pub preset: Option<Preset>,
    /// Canvas size WxH, e.g. 1200x1600 (`output.size`).
    #[arg(long)]
    pub size: Option<String>,
    /// A cut-out with alpha and no background; needs --format png or webp.
    #[arg(long)]
    pub transparent: bool,
    /// Seed of the random backgrounds: the same seed, the same scenes.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Analysis backend (overrides providers.analyzer).
    #[arg(long, value_enum)]
    pub analyzer: Option<AnalyzerChoice>,
    /// Generation backend (overrides providers.generator).
    #[arg(long, value_enum)]
    pub generator: Option<GeneratorChoice>,
    /// Upscaling backend (overrides providers.upscaler).
    #[arg(long, value_enum)]
    pub upscaler: Option<UpscalerChoice>,
}

/// `--analyzer`: local only, or local enriched by Gemini.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AnalyzerChoice {
    Local,
    Gemini,
}

/// `--generator`: local compositing or a Replicate model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum GeneratorChoice {
    Local,
    Replicate,
}

/// `--upscaler`: local Lanczos3 or a Replicate model (local as fallback).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum UpscalerChoice {
    Local,
    Replicate,
}

impl ProcessArgs {
    /// Applies the provider switches to `settings` and checks the result.
    pub fn apply_providers(&self, settings: &mut Settings) -> Result<(), CoreError> {
        let p = &mut settings.providers;
        if let Some(choice) = self.analyzer {
            p.analyzer = match choice {
                AnalyzerChoice::Local => AnalyzerKind::Local,
                AnalyzerChoice::Gemini => AnalyzerKind::Gemini,
            };
        }
        if let Some(choice) = self.generator {
            p.generator = match choice {
                GeneratorChoice::Local => GeneratorKind::Local,
                GeneratorChoice::Replicate => GeneratorKind::Replicate,
            };
        }
        if let Some(choice) = self.upscaler {
            p.upscaler = match choice {
                UpscalerChoice::Local => UpscalerKind::Local,
                UpscalerChoice::Replicate => UpscalerKind::Replicate,
            };
        }
        settings.validate()
    }
}

/// Counts of white, plain and random images per input.
#[derive(Debug, Clone, Copy)]
pub struct Backgrounds(pub [u8; 3]);

fn parse_backgrounds(s: &str) -> Result<Backgrounds, String> {
    let parts: Vec<&str> = s.split(',').map(str::trim).collect();
    let [w, p, r] = parts.as_slice() else {
        return Err(format!(
            "expected three counts like 1,1,1 (white, plain, random), got `{s}`"
        ));
    };
    let n = |v: &str| {
        v.parse::<u8>()
            .map_err(|_| format!("`{v}` is not a count from 0 to 4"))
    };
    Ok(Backgrounds([n(w)?, n(p)?, n(r)?]))
}

#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Base URL of the gateway.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub url: String,
    /// Jobs to send in total (per run with --compare).
    #[arg(long, short = 'n', default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..))]
    pub requests: u32,
    /// Clients sending at the same time.
    #[arg(long, short = 'c', default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..))]
    pub concurrency: u32,
    /// `image`: POST /api/v1/generate/image; `full`: POST /api/v1/generate (video and report).
    #[arg(long, value_enum, default_value = "image")]
    pub endpoint: Endpoint,
    /// Garment photo sent as a data: URI (default: a synthetic 900x1200 t-shirt).
    #[arg(long, value_name = "PATH")]
    pub image: Option<PathBuf>,
    /// Images on white, plain and random backgrounds, e.g. 1,1,1.
    #[arg(long, default_value = "1,1,1", value_parser = parse_backgrounds)]
    pub backgrounds: Backgrounds,
    /// Ask for every variation upscaled x2.
    #[arg(long)]
    pub upscale: bool,
    /// Run with concurrency 1 and then with --concurrency, and print the ratio.
    #[arg(long)]
    pub compare: bool,
    /// Run the same job with `atelier process` (one process per job, no broker)
    /// instead of calling the gateway.
    #[arg(long)]
    pub embedded: bool,
    /// Longest wait for one job, in seconds.
    #[arg(long, default_value_t = 600)]
    pub timeout: u64,
    /// API key sent to the gateway (make one with `atelier keys create`).
    #[arg(long, env = "ATELIER_API_KEY", hide_env_values = true)]
    pub key: Option<String>,
    /// Also draw the runs to this SVG file: latency distribution and throughput.
    #[arg(long, value_name = "FILE.svg")]
    pub plot: Option<PathBuf>,
    /// Let the gateway reuse earlier identical jobs' results (the result
    /// cache). Without it every job is sent with `Cache-Control: no-cache`, so
    /// the same photo sent again measures the pipeline, not the cache.
    #[arg(long)]
    pub reuse: bool,
}

/// Which of the old API's generate endpoints to call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Endpoint {
    /// POST /api/v1/generate/image: images only.
    Image,
    /// POST /api/v1/generate: images, video and Excel report.
    Full,
}

#[derive(Debug, Args)]
pub struct UpscaleArgs {
    /// Image to upscale (JPEG, PNG or WebP).
    pub input: PathBuf,
    /// Output JPEG.
    pub output: PathBuf,
    /// Enlargement factor.
    #[arg(long, value_enum, default_value = "2")]
    pub factor: Factor,
}

/// An upscale factor as typed on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Factor {
    #[value(name = "2")]
    Two,
    #[value(name = "4")]
    Four,
}

impl From<Factor> for UpscaleFactor {
    fn from(f: Factor) -> Self {
        match f {
            Factor::Two => UpscaleFactor::X2,
            Factor::Four => UpscaleFactor::X4,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn arguments_are_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn backgrounds_parse_and_reject() {
        assert_eq!(parse_backgrounds("1, 0,2").expect("valid").0, [1, 0, 2]);
        assert!(parse_backgrounds("1,1").is_err());
        assert!(parse_backgrounds("1,x,1").is_err());
    }
}

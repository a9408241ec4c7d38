//! `atelier process`: the main job in one process, outputs in a folder.

use std::io::{IsTerminal, Read};
use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, bail};
use atelier_core::job::{JobId, JobKind, JobSpec, StoredInput};
use atelier_core::keys;
use atelier_core::output::OutputOptions;
use atelier_core::request::{GenerateRequest, InputImage};
use atelier_core::settings::Settings;
use atelier_imaging::decode;
use atelier_providers::Providers;
use atelier_stages::runner::{now_ms, run_job};
use atelier_stages::{NoProgress, Progress, StageContext};
use atelier_storage::BlobStore;

use atelier_core::request::UpscaleFactor;

use crate::args::ProcessArgs;
use crate::bars::{Bars, timings_table};

/// Runs the pipeline on the given photos and writes everything to `args.out`.
pub fn run(mut settings: Settings, args: ProcessArgs) -> anyhow::Result<()> {
    args.apply_providers(&mut settings)?;
    let request = build_request(&args)?;
    request
        .output_spec(&settings)
        .map_err(|e| anyhow::anyhow!("{}: {}", option_of(&e.field), e.message))?;
    let kind = if args.images_only {
        JobKind::Images
    } else {
        JobKind::Full
    };
    // Refuse unusable inputs before any work starts, naming the file.
    let inputs: Vec<(Vec<u8>, decode::InputFormat)> = args
        .inputs
        .iter()
        .map(|path| {
            let bytes = read_limited(path, settings.limits.max_bytes)?;
            let probe =
                decode::probe(&bytes, &settings.limits).with_context(|| path.display().to_string())?;
            Ok((bytes, probe.format))
        })
        .collect::<anyhow::Result<_>>()?;

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let state = runtime.block_on(async {
        let store = BlobStore::local(&args.out).context("opening the output folder")?;
        let blobs = store.scoped("");
        let mut stored = Vec::with_capacity(inputs.len());
        for (n, ((bytes, format), path)) in inputs.into_iter().zip(&args.inputs).enumerate() {
            let key = keys::input(n, format.extension());
            blobs
                .put(&key, bytes)
                .await
                .with_context(|| format!("storing {}", path.display()))?;
            stored.push(StoredInput {
                key,
                source: path.display().to_string(),
            });
        }
        let spec = JobSpec {
            id: JobId::new(),
            kind,
            request,
            inputs: stored,
            submitted_at_ms: now_ms(),
        };
        // One run writes into the user's output folder: no cache/ beside the
        // results, and no earlier run to reuse.
        let mut settings = settings;
        settings.cache.enabled = false;
        let providers = Providers::from_settings(&settings)?;
        let ctx = StageContext::new(Arc::new(settings), providers);
        let bars = Bars::default();
        let progress: &dyn Progress = if std::io::stderr().is_terminal() {
            &bars
        } else {
            &NoProgress
        };
        let state = run_job(&ctx, &blobs, spec, &|key: &str| key.to_string(), progress).await?;
        anyhow::Ok(state)
    })?;

    eprint!("{}", timings_table(&state.times));
    println!("{}", args.out.join(keys::RESULT).display());
    Ok(())
}

/// Turns the arguments into the same request the HTTP API takes, so the same
/// validation applies; errors name the command-line option.
fn build_request(args: &ProcessArgs) -> anyhow::Result<GenerateRequest> {
    let views = &args.view;
    if views.len() > 1 && views.len() != args.inputs.len() {
        bail!(
            "--view: give one view for all inputs or one per input ({} inputs, {} views)",
            args.inputs.len(),
            views.len()
        );
    }
    let request = GenerateRequest {
        input_images: args
            .inputs
            .iter()
            .enumerate()
            .map(|(i, path)| InputImage {
                url: path.display().to_string(),
                view: views.get(i).or(views.first()).copied().unwrap_or_default(),
                backgrounds: args.backgrounds.0,
            })
            .collect(),
        product_type: args.product_type,
        gender: args.gender,
        text: args.text.clone(),
        upscale: args.upscale.is_some(),
        upscale_factor: args.upscale.map(|f| u8::from(UpscaleFactor::from(f))),
        priority: None,
        callback_url: None,
        callback_events: None,
        seed: args.seed,
        output: (args.format.is_some() || args.preset.is_some() || args.size.is_some() || args.transparent)
            .then(|| OutputOptions {
                format: args.format,
                preset: args.preset,
                size: args.size.clone(),
                transparent: args.transparent.then_some(true),
                ..OutputOptions::default()
            }),
    };
    request.validate().map_err(|e| {
        let option = match e.field.as_str() {
            "inputImages" if args.inputs.len() > atelier_core::request::MAX_INPUT_IMAGES => "IMAGE",
            "inputImages" => "--backgrounds",
            other => option_of(other),
        };
        anyhow::anyhow!("{option}: {}", e.message)
    })?;
    Ok(request)
}

/// The command-line option behind a request field.
fn option_of(field: &str) -> &'static str {
    match field {
        "text" => "--text",
        f if f.ends_with("backgrounds") => "--backgrounds",
        "seed" => "--seed",
        "output.format" => "--format",
        "output.preset" => "--preset",
        "output.size" => "--size",
        "output.transparent" => "--transparent",
        "upscaleFactor" => "--upscale",
        _ => "arguments",
    }
}

/// Reads a file, refusing it before reading when it is over `max_bytes`.
pub fn read_limited(path: &Path, max_bytes: u64) -> anyhow::Result<Vec<u8>> {
    let name = || path.display().to_string();
    let file = std::fs::File::open(path).with_context(name)?;
    let len = file.metadata().with_context(name)?.len();
    if len > max_bytes {
        bail!(
            "{}: image too large: {len} bytes, the limit is {max_bytes}",
            name()
        );
    }
    let mut bytes = Vec::with_capacity(len as usize);
    file.take(max_bytes + 1)
        .read_to_end(&mut bytes)
        .with_context(name)?;
    if bytes.len() as u64 > max_bytes {
        bail!("{}: image too large: over {max_bytes} bytes", name());
    }
    Ok(bytes)
}

//! `atelier upscale IN OUT --factor N`: one image, synchronously, as fast as the
//! machine allows (this is the command compared against vips and Pillow).

use std::path::Path;

use anyhow::{Context, bail};
use atelier_core::request::UpscaleFactor;
use atelier_core::settings::Settings;
use atelier_imaging::{decode, encode, upscale};

use crate::args::UpscaleArgs;

/// Reads, upscales and writes one image.
pub fn run(settings: &Settings, args: &UpscaleArgs) -> anyhow::Result<()> {
    ensure_jpeg_name(&args.output)?;
    let bytes = crate::process::read_limited(&args.input, settings.limits.max_bytes)?;
    let decoded =
        decode::decode(&bytes, &settings.limits).with_context(|| format!("{}", args.input.display()))?;
    let out = upscale::upscale(
        &decoded.rgb,
        UpscaleFactor::from(args.factor).get(),
        settings.upscaler.sharpen,
    )
    .with_context(|| format!("upscaling {}", args.input.display()))?;
    let jpeg = encode::jpeg(&out, settings.output.jpeg_quality)?;
    std::fs::write(&args.output, jpeg).with_context(|| format!("writing {}", args.output.display()))?;
    Ok(())
}

fn ensure_jpeg_name(path: &Path) -> anyhow::Result<()> {
    match path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        Some("jpg" | "jpeg") => Ok(()),
        _ => bail!("{}: the output is a JPEG, name it .jpg or .jpeg", path.display()),
    }
}

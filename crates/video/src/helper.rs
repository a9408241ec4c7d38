//! The `atelier-video` helper binary's logic (the binary itself is a one-line
//! `main`): with no arguments it reads one request from stdin (the protocol of
//! `atelier_imaging::video::helper`), renders it and replies on stdout; with
//! `render` it is the encoder bench (`scripts/bench/video.sh`):
//!
//! ```text
//! atelier-video render --out OUT.mp4 [--frames-out REF.yuv] [--x264-params K=V:…] IMAGE…
//! ```
//!
//! which renders the images with the configured `[video]` settings, optionally
//! writes the frames it fed the encoder as raw yuv420p (the reference for SSIM and
//! PSNR), and prints `seconds=… frames=… bytes=…`.

use std::io::{BufReader, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use atelier_core::settings::Settings;
use atelier_imaging::ImagingError;
use atelier_imaging::video::helper::{format_reply, read_request};

use crate::{RenderOptions, render_stills, render_with};

/// Runs the helper with the process's arguments; the exit code says whether it
/// worked, and errors go to stderr.
pub fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        None => serve_stdin(),
        Some("render") => bench(&args[1..]),
        Some(other) => Err(format!(
            "unknown command {other:?}: run with no arguments (request on stdin) or `render`"
        )),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("atelier-video: {message}");
            ExitCode::FAILURE
        }
    }
}

/// One request from stdin, one reply on stdout.
fn serve_stdin() -> Result<(), String> {
    let request = read_request(&mut BufReader::new(std::io::stdin().lock())).map_err(|e| e.to_string())?;
    let info = render_stills(
        &request.images,
        Some(&request.limits),
        &request.settings,
        &request.path,
        RenderOptions::default(),
    )
    .map_err(|e| e.to_string())?;
    let mut out = std::io::stdout().lock();
    out.write_all(format_reply(&info).as_bytes())
        .and_then(|()| out.flush())
        .map_err(|e| e.to_string())
}

/// `render`: encodes image files with the configured settings and reports how
/// long it took.
fn bench(args: &[String]) -> Result<(), String> {
    let mut out = None;
    let mut frames_out = None;
    let mut x264_params = None;
    let mut inputs = Vec::new();
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        let mut value = || args.next().cloned().ok_or_else(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--out" => out = Some(PathBuf::from(value()?)),
            "--frames-out" => frames_out = Some(PathBuf::from(value()?)),
            "--x264-params" => x264_params = Some(value()?),
            flag if flag.starts_with("--") => return Err(format!("unknown option {flag}")),
            path => inputs.push(PathBuf::from(path)),
        }
    }
    let out = out.ok_or("--out is required")?;
    let settings = Settings::load().map_err(|e| e.to_string())?;
    let images = inputs
        .iter()
        .map(|path| {
            let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
            atelier_imaging::decode::decode(&bytes, &settings.limits)
                .map(|d| d.rgb)
                .map_err(|e| format!("{}: {e}", path.display()))
        })
        .collect::<Result<Vec<_>, String>>()?;
    let mut reference = frames_out
        .map(|p| std::fs::File::create(&p).map(std::io::BufWriter::new))
        .transpose()
        .map_err(|e| e.to_string())?;
    let started = Instant::now();
    let info = render_with(
        &images,
        &settings.video,
        &out,
        RenderOptions {
            frames_out: reference.as_mut().map(|w| w as &mut dyn Write),
            x264_params,
        },
    )
    .map_err(|e: ImagingError| e.to_string())?;
    let seconds = started.elapsed().as_secs_f64();
    let bytes = std::fs::metadata(&out).map_err(|e| e.to_string())?.len();
    println!("seconds={seconds:.4} frames={} bytes={bytes}", info.frames);
    Ok(())
}

//! `atelier`: the whole Atelier pipeline in one process, no broker needed.
//!
//! `atelier process shirt.jpg --out out/` analyses the photos, renders the
//! variations, upscales them, and writes the video, the report and result.json;
//! `atelier upscale in.jpg out.jpg --factor 2` upscales one image;
//! `atelier bench` load-tests a running stack; `atelier serve` runs the whole
//! API in this process; `atelier monitor` watches either.

mod args;
mod bars;
mod bench;
mod dlq;
mod keys;
mod monitor;
mod process;
mod serve;
mod upscale;

use std::process::ExitCode;

use atelier_core::settings::Settings;
use clap::Parser;

use crate::args::{Cli, Command};

fn main() -> ExitCode {
    atelier_imaging::memory::return_large_buffers_to_the_system();
    let cli = Cli::parse();
    let result = Settings::load()
        .map_err(anyhow::Error::from)
        .and_then(|settings| {
            // `atelier serve` is the service `atelier` in traces; other
            // commands log warnings only (their progress bars stay readable).
            let _telemetry = if matches!(cli.command, Command::Serve(_)) {
                atelier_telemetry::init(&settings.telemetry, "atelier")
            } else {
                atelier_telemetry::init_with_filter(&settings.telemetry, "warn", "atelier")
            };
            match cli.command {
                Command::Process(args) => process::run(settings, args),
                Command::Upscale(args) => upscale::run(&settings, &args),
                Command::Bench(args) => bench::run(&args),
                Command::Keys(args) => keys::run(settings, args),
                Command::Dlq(args) => dlq::run(&settings, args),
                Command::Monitor(args) => monitor::run(&settings, &args),
                Command::Serve(args) => serve::run(settings, args),
            }
        });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

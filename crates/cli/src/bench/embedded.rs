//! The embedded side of the benchmark: the same job run by `atelier process`,
//! one process per job (no broker, no gateway), `concurrency` at a time.

use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Instant;

use anyhow::Context;

use super::Plan;
use super::stats::{Outcome, Report};
use crate::args::Endpoint;

/// Runs `plan.requests` jobs on `photo` with this very binary's `process` command.
pub fn run(plan: &Plan<'_>, photo: &[u8], mime: &str) -> anyhow::Result<Report> {
    let exe = std::env::current_exe().context("finding the atelier binary")?;
    let work = tempfile::tempdir().context("creating a scratch folder")?;
    let ext = mime.trim_start_matches("image/");
    let input = work.path().join(format!("garment.{ext}"));
    std::fs::write(&input, photo).with_context(|| input.display().to_string())?;
    let args = plan.args;
    let [w, p, r] = args.backgrounds.0;
    let next = AtomicU32::new(0);
    let started = Instant::now();
    let samples = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..plan.concurrency)
            .map(|_| {
                scope.spawn(|| {
                    let mut samples = Vec::new();
                    loop {
                        let n = next.fetch_add(1, Ordering::Relaxed);
                        if n >= plan.requests {
                            break samples;
                        }
                        let out = work.path().join(format!("job-{n}"));
                        let mut cmd = Command::new(&exe);
                        cmd.arg("process")
                            .arg(&input)
                            .arg("--out")
                            .arg(&out)
                            .arg("--backgrounds")
                            .arg(format!("{w},{p},{r}"))
                            .arg("--text")
                            .arg("atelier bench")
                            .stdin(Stdio::null())
                            .stdout(Stdio::null())
                            .stderr(Stdio::piped());
                        if args.upscale {
                            cmd.args(["--upscale", "2"]);
                        }
                        if args.endpoint == Endpoint::Image {
                            cmd.arg("--images-only");
                        }
                        let start = Instant::now();
                        let outcome = match cmd.output() {
                            Ok(o) if o.status.success() => Outcome::Ok,
                            Ok(o) => Outcome::Failed(last_line(&o.stderr)),
                            Err(e) => Outcome::Failed(format!("spawn: {e}")),
                        };
                        samples.push((start.elapsed(), outcome));
                        let _ = std::fs::remove_dir_all(&out);
                    }
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().unwrap_or_default())
            .collect::<Vec<_>>()
    });
    Ok(Report::new(
        "embedded atelier process",
        plan.concurrency,
        &samples,
        started.elapsed(),
    ))
}

fn last_line(stderr: &[u8]) -> String {
    let text = String::from_utf8_lossy(stderr);
    text.lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("exit status not 0")
        .trim()
        .to_string()
}

//! Times the whole `analyze` call on one fixture photo, for profiling the
//! cut-out outside criterion (under `perf` or `valgrind --tool=callgrind`).
//!
//! ```text
//! cargo run --release -p atelier-imaging --example cutout_time -- [WIDTH HEIGHT [RUNS]]
//! ```

use std::time::Instant;

use atelier_core::settings::Settings;
use atelier_fixtures::{Kind, studio};
use atelier_imaging::analysis::analyze;

fn main() {
    let args: Vec<u32> = std::env::args().skip(1).filter_map(|a| a.parse().ok()).collect();
    let (w, h) = (
        args.first().copied().unwrap_or(3000),
        args.get(1).copied().unwrap_or(4000),
    );
    let runs = args.get(2).copied().unwrap_or(5).max(1);
    let settings = Settings::defaults().analysis;
    let photo = studio(Kind::WhiteOnWhite, w, h, 1).image;
    let mut ms: Vec<f64> = (0..runs)
        .map(|_| {
            let started = Instant::now();
            let a = analyze(&photo, None, &settings).expect("a garment is found");
            std::hint::black_box(a);
            started.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    ms.sort_by(f64::total_cmp);
    println!(
        "{w}x{h}: median {:.1} ms over {runs} runs (min {:.1}, max {:.1})",
        ms[ms.len() / 2],
        ms[0],
        ms[ms.len() - 1]
    );
}

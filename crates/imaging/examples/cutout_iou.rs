//! Measures the local cut-out: IoU against the truth for every fixture kind
//! (`atelier_fixtures::Kind`), whether scene-like photos are refused, and, when
//! the directory exists, the IoU on real studio photos with exact masks
//! (`NAME-studio.jpg` + `NAME-studio.mask.png`).
//!
//! ```text
//! cargo run --release -p atelier-imaging --example cutout_iou -- [--seeds N] [--real DIR] [--out DIR] [--kinds a,b]
//! ```
//!
//! `--real` defaults to `../shared/real-photos` beside the workspace; it is
//! skipped when absent. `--out` writes each predicted mask as a PNG for a look.
//! `--kinds` measures only the named kinds (`Kind::name`, comma-separated; the
//! real photos as `real`).

use std::path::{Path, PathBuf};
use std::time::Instant;

use atelier_core::settings::Settings;
use atelier_fixtures::{Kind, iou, studio};
use atelier_imaging::analysis::analyze;
use image::GrayImage;

const W: u32 = 900;
const H: u32 = 1200;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let arg = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let seeds: u64 = arg("--seeds").and_then(|s| s.parse().ok()).unwrap_or(3);
    let out = arg("--out").map(PathBuf::from);
    let real = arg("--real")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/real-photos"));
    if let Some(dir) = &out {
        std::fs::create_dir_all(dir).expect("output directory");
    }
    let settings = Settings::defaults().analysis;
    let kinds = arg("--kinds");
    let wanted = |name: &str| kinds.as_ref().is_none_or(|k| k.split(',').any(|n| n == name));

    println!(
        "{:<16} {:>8} {:>8} {:>8}  notes",
        "kind", "min IoU", "mean IoU", "ms"
    );
    let mut studio_ious = Vec::new();
    for kind in Kind::ALL.into_iter().filter(|k| wanted(k.name())) {
        let (mut ious, mut notes, mut ms) = (Vec::new(), Vec::new(), 0.0);
        for seed in 0..seeds {
            let g = studio(kind, W, H, seed + 1);
            let started = Instant::now();
            let result = analyze(&g.image, None, &settings);
            ms += started.elapsed().as_secs_f64() * 1e3;
            match result {
                Ok(a) => {
                    let v = iou(&a.mask, &g.mask);
                    ious.push(v);
                    notes.push(confidence_note(&a));
                    if let Some(dir) = &out {
                        save(
                            dir,
                            &format!("{}-{seed}", kind.name()),
                            &a.mask,
                            &g.mask,
                            &g.image,
                        );
                    }
                }
                Err(e) => {
                    ious.push(0.0);
                    notes.push(format!("refused: {e}"));
                }
            }
        }
        if kind.is_studio() {
            studio_ious.extend(ious.iter().copied());
        }
        let min = ious.iter().copied().fold(f64::INFINITY, f64::min);
        let mean = ious.iter().sum::<f64>() / ious.len().max(1) as f64;
        println!(
            "{:<16} {:>8.3} {:>8.3} {:>8.1}  {}",
            kind.name(),
            min,
            mean,
            ms / seeds.max(1) as f64,
            notes.join("; ")
        );
    }
    let mean = studio_ious.iter().sum::<f64>() / studio_ious.len().max(1) as f64;
    let min = studio_ious.iter().copied().fold(f64::INFINITY, f64::min);
    println!("studio kinds: mean IoU {mean:.3}, min {min:.3}");

    if wanted("real") {
        real_photos(&real, &settings, out.as_deref());
    }
}

fn confidence_note(a: &atelier_imaging::analysis::Analyzed) -> String {
    format!("confidence {:.2}", a.analysis.mask_confidence)
}

/// Writes the photo with the errors painted in: red where the mask claims
/// backdrop as garment, blue where it misses garment.
fn save(dir: &Path, name: &str, mask: &GrayImage, truth: &GrayImage, photo: &image::RgbImage) {
    let (w, h) = truth.dimensions();
    let mask = image::imageops::resize(mask, w, h, image::imageops::FilterType::Triangle);
    let view = image::RgbImage::from_fn(w, h, |x, y| {
        let (p, t) = (
            mask.get_pixel(x, y).0[0] >= 128,
            truth.get_pixel(x, y).0[0] >= 128,
        );
        match (p, t) {
            (true, false) => image::Rgb([255, 0, 0]),
            (false, true) => image::Rgb([0, 0, 255]),
            _ => *photo.get_pixel(x, y),
        }
    });
    let _ = view.save(dir.join(format!("{name}.errors.png")));
}

fn real_photos(dir: &Path, settings: &atelier_core::settings::AnalysisSettings, out: Option<&Path>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        println!("real photos: {} not found, skipped", dir.display());
        return;
    };
    let mut names: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.to_string_lossy().ends_with("-studio.jpg"))
        .collect();
    names.sort();
    let mut ious = Vec::new();
    for photo_path in names {
        let mask_path = PathBuf::from(photo_path.to_string_lossy().replace(".jpg", ".mask.png"));
        let (Ok(photo), Ok(truth)) = (image::open(&photo_path), image::open(&mask_path)) else {
            println!("{}: unreadable, skipped", photo_path.display());
            continue;
        };
        let (photo, truth) = (photo.to_rgb8(), truth.to_luma8());
        let name = photo_path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let started = Instant::now();
        match analyze(&photo, None, settings) {
            Ok(a) => {
                let v = iou(&a.mask, &truth);
                ious.push(v);
                println!(
                    "real {name}: IoU {v:.3} ({}x{}, {:.0} ms, {})",
                    photo.width(),
                    photo.height(),
                    started.elapsed().as_secs_f64() * 1e3,
                    confidence_note(&a)
                );
                if let Some(dir) = out {
                    save(dir, &name, &a.mask, &truth, &photo);
                }
            }
            Err(e) => {
                ious.push(0.0);
                println!("real {name}: refused ({e})");
            }
        }
    }
    if !ious.is_empty() {
        println!(
            "real photos: mean IoU {:.3}",
            ious.iter().sum::<f64>() / ious.len() as f64
        );
    }
}

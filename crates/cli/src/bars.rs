//! Progress bars per stage on a terminal, and the closing timings table.

use std::collections::HashMap;
use std::sync::Mutex;

use atelier_core::pipeline::{ProcessingTimes, Stage};
use atelier_stages::Progress;
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

/// One bar per stage, drawn on stderr.
#[derive(Debug, Default)]
pub struct Bars {
    multi: MultiProgress,
    bars: Mutex<HashMap<Stage, ProgressBar>>,
}

impl Bars {
    fn bar(&self, stage: Stage) -> Option<ProgressBar> {
        self.bars.lock().ok()?.get(&stage).cloned()
    }
}

impl Progress for Bars {
    fn stage_started(&self, stage: Stage, items: usize) {
        let bar = self.multi.add(ProgressBar::new(items as u64));
        let style = ProgressStyle::with_template("{prefix:>16} [{bar:30}] {pos}/{len} {msg}")
            .map(|s| s.progress_chars("=> "))
            .unwrap_or_else(|_| ProgressStyle::default_bar());
        bar.set_style(style);
        bar.set_prefix(stage.as_str());
        if let Ok(mut bars) = self.bars.lock() {
            bars.insert(stage, bar);
        }
    }

    fn item_done(&self, stage: Stage) {
        if let Some(bar) = self.bar(stage) {
            bar.inc(1);
        }
    }

    fn stage_finished(&self, stage: Stage, seconds: f64) {
        if let Some(bar) = self.bar(stage) {
            let msg = if bar.length() == Some(0) {
                "skipped".to_string()
            } else {
                format!("{seconds:.2} s")
            };
            bar.finish_with_message(msg);
        }
    }
}

/// The stage timings as an aligned two-column table.
pub fn timings_table(times: &ProcessingTimes) -> String {
    let mut out = format!("{:<16} {:>9}\n", "stage", "seconds");
    for (name, secs) in times.entries() {
        out.push_str(&format!("{name:<16} {secs:>9.3}\n"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_lists_every_old_key() {
        let t = timings_table(&ProcessingTimes {
            total: 1.25,
            ..Default::default()
        });
        for key in ["analysis", "generation", "post_processing", "saving", "total"] {
            assert!(t.contains(key), "{t}");
        }
        assert!(t.contains("1.250"));
    }
}

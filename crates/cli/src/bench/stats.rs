//! What a benchmark run measured, and its summary: success rate, latency
//! percentiles (nearest rank, over successful jobs) and jobs per minute.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

/// How one job ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Finished: 200 from the gateway, exit 0 from `atelier process`.
    Ok,
    /// Accepted but not finished within the gateway's wait (202).
    Accepted,
    /// Anything else, with a short reason (`HTTP 503`, `timeout`, ...).
    Failed(String),
}

/// The summary of one run.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    pub label: String,
    pub concurrency: u32,
    pub requests: usize,
    pub ok: usize,
    pub accepted: usize,
    pub errors: BTreeMap<String, usize>,
    pub wall: Duration,
    /// p50, p95, p99 of successful jobs; `None` when none succeeded.
    pub latency: Option<[Duration; 3]>,
    pub mean: Option<Duration>,
    /// Every successful job's latency, sorted (for `--plot`).
    pub latencies: Vec<Duration>,
}

/// The `p`-th percentile (0–100) of sorted samples, nearest-rank method: the
/// smallest sample with at least p % of the samples at or below it.
pub fn percentile(sorted: &[Duration], p: f64) -> Option<Duration> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (p.clamp(0.0, 100.0) / 100.0 * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

impl Report {
    /// Summarises `samples` (latency and outcome per job) over `wall` time.
    pub fn new(label: &str, concurrency: u32, samples: &[(Duration, Outcome)], wall: Duration) -> Self {
        let mut ok: Vec<Duration> = Vec::new();
        let mut accepted = 0;
        let mut errors = BTreeMap::new();
        for (latency, outcome) in samples {
            match outcome {
                Outcome::Ok => ok.push(*latency),
                Outcome::Accepted => accepted += 1,
                Outcome::Failed(why) => *errors.entry(why.clone()).or_insert(0) += 1,
            }
        }
        ok.sort_unstable();
        let latency = match [50.0, 95.0, 99.0].map(|p| percentile(&ok, p)) {
            [Some(a), Some(b), Some(c)] => Some([a, b, c]),
            _ => None,
        };
        let mean = (!ok.is_empty()).then(|| ok.iter().sum::<Duration>() / ok.len() as u32);
        Self {
            label: label.to_string(),
            concurrency,
            requests: samples.len(),
            ok: ok.len(),
            accepted,
            errors,
            wall,
            latency,
            mean,
            latencies: ok,
        }
    }

    /// Share of jobs that finished, 0–1.
    pub fn success_rate(&self) -> f64 {
        if self.requests == 0 {
            0.0
        } else {
            self.ok as f64 / self.requests as f64
        }
    }

    /// Finished jobs per minute of wall time.
    pub fn jobs_per_minute(&self) -> f64 {
        let secs = self.wall.as_secs_f64();
        if secs > 0.0 {
            self.ok as f64 * 60.0 / secs
        } else {
            0.0
        }
    }

    /// One line comparing a run at concurrency 1 with one at higher concurrency.
    pub fn comparison(one: &Report, many: &Report) -> String {
        let ratio = |a: f64, b: f64| {
            if b > 0.0 {
                format!("x{:.2}", a / b)
            } else {
                "n/a".into()
            }
        };
        let p50 = |r: &Report| r.latency.map_or(0.0, |l| l[0].as_secs_f64());
        format!(
            "concurrency {} vs {}: throughput {} ({:.1} vs {:.1} jobs/min), p50 latency {}",
            many.concurrency,
            one.concurrency,
            ratio(many.jobs_per_minute(), one.jobs_per_minute()),
            many.jobs_per_minute(),
            one.jobs_per_minute(),
            ratio(p50(many), p50(one)),
        )
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secs = |d: Duration| format!("{:.3}s", d.as_secs_f64());
        writeln!(
            f,
            "{} — {} jobs, concurrency {}",
            self.label, self.requests, self.concurrency
        )?;
        writeln!(
            f,
            "  success   {}/{} ({:.1} %){}",
            self.ok,
            self.requests,
            self.success_rate() * 100.0,
            if self.accepted > 0 {
                format!(", {} answered 202 (still running)", self.accepted)
            } else {
                String::new()
            }
        )?;
        for (why, n) in &self.errors {
            writeln!(f, "  failed    {n} × {why}")?;
        }
        match (self.latency, self.mean) {
            (Some([p50, p95, p99]), Some(mean)) => writeln!(
                f,
                "  latency   p50 {}  p95 {}  p99 {}  mean {}",
                secs(p50),
                secs(p95),
                secs(p99),
                secs(mean)
            )?,
            _ => writeln!(f, "  latency   - (no job finished)")?,
        }
        write!(
            f,
            "  throughput {:.1} jobs/min over {}",
            self.jobs_per_minute(),
            secs(self.wall)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(v: u64) -> Duration {
        Duration::from_millis(v)
    }

    #[test]
    fn nearest_rank_percentiles() {
        let sorted: Vec<Duration> = (1..=100).map(ms).collect();
        assert_eq!(percentile(&sorted, 50.0), Some(ms(50)));
        assert_eq!(percentile(&sorted, 95.0), Some(ms(95)));
        assert_eq!(percentile(&sorted, 99.0), Some(ms(99)));
        assert_eq!(percentile(&sorted, 100.0), Some(ms(100)));
        assert_eq!(percentile(&sorted, 0.0), Some(ms(1)));
        let few = [ms(10), ms(20), ms(30), ms(40), ms(50)];
        assert_eq!(percentile(&few, 50.0), Some(ms(30)));
        assert_eq!(percentile(&few, 95.0), Some(ms(50)));
        assert_eq!(percentile(&[ms(7)], 99.0), Some(ms(7)));
        assert_eq!(percentile(&[], 50.0), None);
    }

    #[test]
    fn report_counts_outcomes_and_rates() {
        let samples = vec![
            (ms(300), Outcome::Ok),
            (ms(100), Outcome::Ok),
            (ms(200), Outcome::Ok),
            (ms(5), Outcome::Failed("HTTP 503".into())),
            (ms(9), Outcome::Failed("HTTP 503".into())),
            (ms(900), Outcome::Accepted),
        ];
        let r = Report::new("stack", 3, &samples, Duration::from_secs(30));
        assert_eq!((r.requests, r.ok, r.accepted), (6, 3, 1));
        assert_eq!(r.errors.get("HTTP 503"), Some(&2));
        assert_eq!(r.latency, Some([ms(200), ms(300), ms(300)]));
        assert_eq!(r.mean, Some(ms(200)));
        assert!((r.success_rate() - 0.5).abs() < 1e-9);
        assert!((r.jobs_per_minute() - 6.0).abs() < 1e-9);
        let text = r.to_string();
        assert!(
            text.contains("3/6 (50.0 %)") && text.contains("2 × HTTP 503"),
            "{text}"
        );
        assert!(text.contains("p50 0.200s"), "{text}");
    }

    #[test]
    fn empty_and_failed_runs_report_no_latency() {
        let r = Report::new(
            "x",
            1,
            &[(ms(1), Outcome::Failed("connect".into()))],
            Duration::ZERO,
        );
        assert_eq!((r.latency, r.mean), (None, None));
        assert_eq!(r.jobs_per_minute(), 0.0);
        assert!(r.to_string().contains("no job finished"));
    }

    #[test]
    fn comparison_gives_the_throughput_ratio() {
        let one = Report::new("a", 1, &[(ms(1000), Outcome::Ok)], Duration::from_secs(60));
        let many = Report::new("b", 4, &vec![(ms(2000), Outcome::Ok); 3], Duration::from_secs(60));
        let line = Report::comparison(&one, &many);
        assert!(
            line.contains("throughput x3.00") && line.contains("p50 latency x2.00"),
            "{line}"
        );
    }
}

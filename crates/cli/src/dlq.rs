//! `atelier dlq`: the gateway's dead-letter admin API from a terminal. A table
//! for people, JSON (`--json`, or whenever stdout is not a terminal) for
//! scripts.

use std::io::IsTerminal;
use std::time::Duration;

use anyhow::{Context, bail};
use atelier_core::settings::Settings;
use atelier_gateway::{DeadLetterBody, DeadLetterDetail, DeadLetterList, Purged, Replayed, Selection};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::args::{DlqArgs, DlqCommand, DlqSelection};

/// Longest wait for one answer (a replay of many letters takes a while).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(120);
/// Characters of a reason shown in the table (the JSON has all of it).
const REASON_WIDTH: usize = 60;

pub fn run(settings: &Settings, args: DlqArgs) -> anyhow::Result<()> {
    let base = args
        .url
        .clone()
        .unwrap_or_else(|| format!("http://{}", settings.gateway.bind));
    let Some(key) = args.key.clone() else {
        bail!("an admin API key is needed: --key KEY or ATELIER_API_KEY");
    };
    let api = Api {
        http: reqwest::Client::builder().timeout(REQUEST_TIMEOUT).build()?,
        base: format!("{}/api/v1/admin/dead-letters", base.trim_end_matches('/')),
        key,
    };
    let json = args.json || !std::io::stdout().is_terminal();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        match args.command {
            DlqCommand::List { limit } => {
                let list: DeadLetterList = api.send(api.get(&format!("?limit={limit}"))).await?;
                if json {
                    print_json(&list)
                } else {
                    print_table(&list.dead_letters);
                    Ok(())
                }
            }
            DlqCommand::Show { id } => {
                let path = format!("/{}", url_segment(&id));
                let letter: DeadLetterDetail = api.send(api.get(&path)).await?;
                if json {
                    print_json(&letter)
                } else {
                    print_detail(&letter);
                    Ok(())
                }
            }
            DlqCommand::Replay(which) => {
                let request = api
                    .http
                    .post(format!("{}/replay", api.base))
                    .json(&selection(which));
                let done: Replayed = api.send(request).await?;
                report(json, &done, &format!("replayed {}", done.replayed))
            }
            DlqCommand::Purge(which) => {
                let request = api.http.delete(&api.base).json(&selection(which));
                let done: Purged = api.send(request).await?;
                report(json, &done, &format!("purged {}", done.purged))
            }
        }
    })
}

/// The gateway's dead-letter routes with a key.
struct Api {
    http: reqwest::Client,
    base: String,
    key: String,
}

impl Api {
    fn get(&self, suffix: &str) -> reqwest::RequestBuilder {
        self.http.get(format!("{}{suffix}", self.base))
    }

    /// Sends `request` with the key; an error answer becomes its message.
    async fn send<T: DeserializeOwned>(&self, request: reqwest::RequestBuilder) -> anyhow::Result<T> {
        let response = request
            .bearer_auth(&self.key)
            .send()
            .await
            .with_context(|| format!("calling {}", self.base))?;
        let status = response.status();
        let text = response.text().await.context("reading the answer")?;
        if !status.is_success() {
            let message = serde_json::from_str::<serde_json::Value>(&text)
                .ok()
                .and_then(|v| v["error"]["message"].as_str().map(str::to_string))
                .unwrap_or(text);
            bail!("the gateway answered {status}: {message}");
        }
        serde_json::from_str(&text).with_context(|| format!("unexpected answer: {text}"))
    }
}

fn selection(which: DlqSelection) -> Selection {
    if which.all {
        Selection {
            ids: None,
            all: Some(true),
        }
    } else {
        Selection {
            ids: Some(which.ids),
            all: None,
        }
    }
}

/// A dead letter id as one path segment (ids are hex or UUIDs; anything else
/// is escaped rather than trusted).
fn url_segment(id: &str) -> String {
    id.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b == b'-' || b == b'_' {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn print_json<T: Serialize>(value: &T) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

fn report<T: Serialize>(json: bool, value: &T, line: &str) -> anyhow::Result<()> {
    if json {
        print_json(value)
    } else {
        println!("{line}");
        Ok(())
    }
}

fn print_table(letters: &[DeadLetterBody]) {
    if letters.is_empty() {
        println!("no dead letters");
        return;
    }
    println!(
        "{:<36}  {:<36}  {:<15}  {:>8}  {:<20}  REASON",
        "ID", "JOB", "STAGE", "ATTEMPTS", "DEAD AT (UTC)"
    );
    for d in letters {
        println!(
            "{:<36}  {:<36}  {:<15}  {:>8}  {:<20}  {}",
            d.id,
            d.job_id.as_deref().unwrap_or("-"),
            d.stage,
            d.attempts,
            when(d.dead_at_ms),
            shorten(&d.reason, REASON_WIDTH)
        );
    }
}

fn print_detail(d: &DeadLetterDetail) {
    let l = &d.letter;
    println!("id        {}", l.id);
    println!("job       {}", l.job_id.as_deref().unwrap_or("-"));
    if let Some(job) = &d.job {
        println!("job state {:?} (stage {:?})", job.status, job.current_stage);
    }
    println!("stage     {}", l.stage);
    println!("attempts  {}", l.attempts);
    println!("dead at   {}", when(l.dead_at_ms));
    println!("reason    {}", l.reason);
    for (name, value) in &d.headers {
        println!("  {name}: {value}");
    }
}

/// Epoch milliseconds as `YYYY-MM-DD HH:MM:SS`; `-` when unknown.
fn when(ms: u64) -> String {
    if ms == 0 {
        return "-".to_string();
    }
    let seconds = i64::try_from(ms / 1_000).unwrap_or(i64::MAX);
    let days = seconds.div_euclid(86_400);
    let rest = seconds.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}",
        rest / 3_600,
        rest % 3_600 / 60,
        rest % 60
    )
}

/// Days since 1970-01-01 as a proleptic Gregorian date (Howard Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

fn shorten(text: &str, width: usize) -> String {
    let line = text.lines().next().unwrap_or_default();
    if line.chars().count() <= width {
        line.to_string()
    } else {
        let cut: String = line.chars().take(width.saturating_sub(1)).collect();
        format!("{cut}…")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_read_as_utc() {
        assert_eq!(when(0), "-");
        assert_eq!(when(1_796_025_600_500), "2026-11-30 08:00:00");
        assert_eq!(when(951_782_400_000), "2000-02-29 00:00:00");
    }

    #[test]
    fn ids_stay_one_segment_and_reasons_one_short_line() {
        assert_eq!(url_segment("0196-ab_C"), "0196-ab_C");
        assert_eq!(url_segment("a/b c"), "a%2Fb%20c");
        assert_eq!(shorten("short", 10), "short");
        assert_eq!(shorten("0123456789abc\nsecond", 5), "0123…");
    }
}

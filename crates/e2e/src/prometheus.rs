//! A strict reader of the Prometheus text exposition format (0.0.4), enough
//! to check what a service's `/metrics` says: families with their TYPE and
//! HELP, and samples with labels.

use std::collections::BTreeMap;

/// One sample line.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

/// A metric family: its `# TYPE`, `# HELP` and samples (a histogram's
/// `_bucket`, `_sum` and `_count` included).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Family {
    pub kind: String,
    pub help: String,
    pub samples: Vec<Sample>,
}

impl Family {
    /// Samples named `name` whose labels include every pair of `labels`.
    pub fn find<'a>(
        &'a self,
        name: &'a str,
        labels: &'a [(&str, &str)],
    ) -> impl Iterator<Item = &'a Sample> + 'a {
        self.samples.iter().filter(move |s| {
            s.name == name
                && labels
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
    }
}

/// Parses `text`; panics naming the line it cannot read.
pub fn parse(text: &str) -> BTreeMap<String, Family> {
    let mut families: BTreeMap<String, Family> = BTreeMap::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, help) = rest.split_once(' ').unwrap_or((rest, ""));
            families.entry(name.to_string()).or_default().help = help.to_string();
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest
                .split_once(' ')
                .unwrap_or_else(|| panic!("bad TYPE line: {line}"));
            families.entry(name.to_string()).or_default().kind = kind.to_string();
        } else if line.starts_with('#') {
            continue;
        } else {
            let sample = sample(line);
            let family = family_of(&families, &sample.name);
            families.entry(family).or_default().samples.push(sample);
        }
    }
    families
}

/// The family a sample belongs to: itself, or a histogram/summary it suffixes.
fn family_of(families: &BTreeMap<String, Family>, name: &str) -> String {
    for suffix in ["_bucket", "_sum", "_count"] {
        if let Some(base) = name.strip_suffix(suffix)
            && families
                .get(base)
                .is_some_and(|f| f.kind == "histogram" || f.kind == "summary")
        {
            return base.to_string();
        }
    }
    name.to_string()
}

fn sample(line: &str) -> Sample {
    let (head, value) = line
        .rsplit_once(' ')
        .unwrap_or_else(|| panic!("bad sample: {line}"));
    let value: f64 = match value {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        v => v.parse().unwrap_or_else(|_| panic!("bad value in: {line}")),
    };
    let (name, labels) = match head.split_once('{') {
        Some((name, rest)) => (
            name,
            labels(
                rest.strip_suffix('}')
                    .unwrap_or_else(|| panic!("bad labels: {line}")),
            ),
        ),
        None => (head, BTreeMap::new()),
    };
    Sample {
        name: name.to_string(),
        labels,
        value,
    }
}

fn labels(text: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut rest = text;
    while !rest.is_empty() {
        let (key, after) = rest
            .split_once("=\"")
            .unwrap_or_else(|| panic!("bad labels: {text}"));
        let mut value = String::new();
        let mut chars = after.char_indices();
        let mut end = None;
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => {
                    if let Some((_, e)) = chars.next() {
                        value.push(match e {
                            'n' => '\n',
                            other => other,
                        });
                    }
                }
                '"' => {
                    end = Some(i);
                    break;
                }
                c => value.push(c),
            }
        }
        let end = end.unwrap_or_else(|| panic!("unterminated label in: {text}"));
        out.insert(key.trim_start_matches(',').to_string(), value);
        rest = after[end + 1..].trim_start_matches(',');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_histograms_with_their_buckets_help_and_labels() {
        let text = "# HELP x_seconds How long.\n# TYPE x_seconds histogram\n\
            x_seconds_bucket{stage=\"a\",le=\"0.5\"} 1\nx_seconds_bucket{stage=\"a\",le=\"+Inf\"} 2\n\
            x_seconds_sum{stage=\"a\"} 1.5\nx_seconds_count{stage=\"a\"} 2\n\
            # TYPE y_total counter\ny_total{why=\"a \\\"quoted\\\", b\"} 3\n";
        let families = parse(text);
        let x = &families["x_seconds"];
        assert_eq!((x.kind.as_str(), x.help.as_str()), ("histogram", "How long."));
        assert_eq!(
            x.find("x_seconds_bucket", &[("le", "+Inf")])
                .next()
                .map(|s| s.value),
            Some(2.0)
        );
        assert_eq!(x.samples.len(), 4);
        let y = &families["y_total"];
        assert_eq!(y.samples[0].labels["why"], "a \"quoted\", b");
        assert!(y.help.is_empty());
    }
}

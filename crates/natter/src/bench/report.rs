//! What a workload reports: a table on stdout, optional JSON for machines, and the progress bars
//! shown on stderr while it runs.

use super::stats::Histogram;
use anyhow::Context;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::{Map, Value, json};
use std::borrow::Cow;
use std::io::IsTerminal;
use std::path::Path;
use std::time::Duration;

/// Which latency a histogram holds.
#[derive(Debug, Clone, Copy)]
pub enum Latency {
    /// From sending a message to its receipt by another connection.
    Delivery,
    /// From a request to its reply.
    Reply,
}

/// The results of one run.
#[derive(Debug)]
pub struct Report {
    pub workload: &'static str,
    /// The server's URL; with several nodes, every node's URL, separated by spaces.
    pub url: String,
    /// The workload's parameters, as given on the command line.
    pub parameters: Map<String, Value>,
    /// What was prepared before the measurement, and how long that took.
    pub setup: String,
    pub setup_secs: f64,
    /// What exactly the figures measure.
    pub measured: String,
    /// Named figures, in display order: (key, value, unit).
    pub figures: Vec<(&'static str, f64, &'static str)>,
    /// Named counts, in display order (per-node counts have names made at run time).
    pub counts: Vec<(Cow<'static, str>, u64)>,
    /// The correctness check: what it checks, and the failures found (none: passed).
    pub check: String,
    pub failures: Vec<String>,
}

impl Report {
    /// An empty report for `workload`.
    pub fn new(workload: &'static str, url: &str) -> Self {
        Self {
            workload,
            url: url.to_owned(),
            parameters: Map::new(),
            setup: String::new(),
            setup_secs: 0.0,
            measured: String::new(),
            figures: Vec::new(),
            counts: Vec::new(),
            check: String::new(),
            failures: Vec::new(),
        }
    }

    /// Add a parameter.
    pub fn param(&mut self, key: &str, value: impl Into<Value>) {
        self.parameters.insert(key.to_owned(), value.into());
    }

    /// Add a figure.
    pub fn figure(&mut self, key: &'static str, value: f64, unit: &'static str) {
        self.figures.push((key, value, unit));
    }

    /// Add p50, p99 and max of a latency histogram in milliseconds, as `latency_*` or `reply_*`.
    pub fn latencies(&mut self, prefix: Latency, h: &Histogram) {
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        let [p50, p99, max] = match prefix {
            Latency::Delivery => ["latency_p50_ms", "latency_p99_ms", "latency_max_ms"],
            Latency::Reply => ["reply_p50_ms", "reply_p99_ms", "reply_max_ms"],
        };
        self.figure(p50, ms(h.quantile(0.50)), "ms");
        self.figure(p99, ms(h.quantile(0.99)), "ms");
        self.figure(max, ms(h.max()), "ms");
    }

    /// Add a count.
    pub fn count(&mut self, key: impl Into<Cow<'static, str>>, value: u64) {
        self.counts.push((key.into(), value));
    }

    /// Whether the correctness check passed.
    pub fn passed(&self) -> bool {
        self.failures.is_empty()
    }

    /// The report as JSON.
    pub fn to_json(&self) -> Value {
        let figures: Map<String, Value> = self
            .figures
            .iter()
            .map(|(k, v, _)| ((*k).to_owned(), json!(v)))
            .collect();
        let counts: Map<String, Value> = self
            .counts
            .iter()
            .map(|(k, v)| (k.to_string(), json!(v)))
            .collect();
        json!({
            "workload": self.workload,
            "url": self.url,
            "parameters": self.parameters,
            "setup": {"description": self.setup, "seconds": self.setup_secs},
            "measured": self.measured,
            "figures": figures,
            "counts": counts,
            "checks": {"description": self.check, "passed": self.passed(), "failures": self.failures},
        })
    }

    /// Write the JSON report to `path`.
    ///
    /// # Errors
    /// The file cannot be written.
    pub fn write_json(&self, path: &Path) -> anyhow::Result<()> {
        let text = serde_json::to_string_pretty(&self.to_json())?;
        std::fs::write(path, text + "\n")
            .with_context(|| format!("cannot write {}", path.display()))
    }

    /// The results table, as printed on stdout.
    pub fn table(&self) -> String {
        let mut rows: Vec<(String, String)> = Vec::new();
        rows.push(("workload".into(), self.workload.into()));
        let params: Vec<String> = self
            .parameters
            .iter()
            .map(|(k, v)| match v.as_str() {
                Some(s) => format!("{k}={s}"),
                None => format!("{k}={v}"),
            })
            .collect();
        rows.push(("parameters".into(), params.join(" ")));
        rows.push((
            "set-up".into(),
            format!("{} ({:.1} s, not measured)", self.setup, self.setup_secs),
        ));
        rows.push(("measured".into(), self.measured.clone()));
        for (k, v, unit) in &self.figures {
            rows.push(((*k).into(), format!("{} {unit}", number(*v))));
        }
        for (k, v) in &self.counts {
            rows.push((k.to_string(), v.to_string()));
        }
        let verdict = if self.passed() {
            format!("PASSED: {}", self.check)
        } else {
            format!("FAILED: {}", self.failures.join("; "))
        };
        rows.push(("check".into(), verdict));
        let width = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
        rows.iter()
            .map(|(k, v)| format!("{k:<width$}  {v}\n"))
            .collect()
    }
}

/// A number for people: no decimals when large, three significant decimals when small.
fn number(v: f64) -> String {
    if v.abs() >= 100.0 {
        let whole = format!("{:.0}", v);
        let (sign, digits) = whole.split_at(usize::from(whole.starts_with('-')));
        let mut out = String::new();
        for (i, c) in digits.chars().enumerate() {
            if i > 0 && (digits.len() - i) % 3 == 0 {
                out.push(',');
            }
            out.push(c);
        }
        format!("{sign}{out}")
    } else {
        format!("{v:.3}")
    }
}

/// A progress bar on stderr for `len` steps of `what`; hidden when stderr is not a terminal.
pub fn progress(len: u64, what: &str) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::stderr());
    if let Ok(style) =
        ProgressStyle::with_template("{msg:>24} [{bar:40}] {pos}/{len} {percent}% {elapsed}")
    {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message(what.to_owned());
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}

/// A line on stderr about what the run is doing (kept apart from the results on stdout).
pub fn note(line: &str) {
    eprintln!("natter bench: {line}");
}

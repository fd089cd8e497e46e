//! Evaluation records: per-task metrics with standard errors and the results file of one
//! evaluation (`results.json`), with its Markdown table and before/after comparison.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::Result;

/// A metric value and, for means of per-sample values, its standard error.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Metric {
    /// The value.
    pub value: f64,
    /// Its standard error, when it is a mean of per-sample values.
    pub stderr: Option<f64>,
}

/// The result of one task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskResult {
    /// The task's name.
    pub task: String,
    /// In-context examples.
    pub shots: usize,
    /// Samples (questions or documents) scored.
    pub n: usize,
    /// Metric name → value.
    pub metrics: BTreeMap<String, Metric>,
}
/// Mean of 0/1 values with the sample standard error sqrt(p (1 - p) / (n - 1))
/// (lm-evaluation-harness's `mean_stderr`).
pub fn mean_with_stderr(values: &[bool]) -> Metric {
    let n = values.len();
    let p = values.iter().filter(|&&v| v).count() as f64 / n.max(1) as f64;
    Metric { value: p, stderr: (n > 1).then(|| (p * (1.0 - p) / (n - 1) as f64).sqrt()) }
}

/// One document of a perplexity task, as scored (`samples/NAME.ppl.jsonl`): what paired
/// before/after deltas and their standard errors are computed from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct DocScore {
    /// Total NLL of the document's predicted tokens, nats.
    pub nll: f64,
    /// Predicted tokens.
    pub tokens: u64,
    /// UTF-8 bytes of its text.
    pub bytes: u64,
    /// Unicode scalars of its text.
    pub chars: u64,
}

/// The standard error of a ratio of sums `R = Σy / Σx` over `n` independent documents (the
/// delta method: `sqrt(Σ(y_i - R x_i)² / (n (n-1))) / mean(x)`): how bits per character and
/// per byte (`y` = NLL in bits, `x` = characters or bytes) vary with the documents drawn.
pub fn ratio_stderr(y: &[f64], x: &[f64]) -> Option<f64> {
    let n = y.len();
    if n < 2 || x.len() != n {
        return None;
    }
    let (sy, sx): (f64, f64) = (y.iter().sum(), x.iter().sum());
    if sx <= 0.0 {
        return None;
    }
    let r = sy / sx;
    let ss: f64 = y.iter().zip(x).map(|(y, x)| (y - r * x).powi(2)).sum();
    Some((ss / (n * (n - 1)) as f64).sqrt() / (sx / n as f64))
}

/// Per-token NLL, bits per byte and bits per character of `docs`, each with its
/// [`ratio_stderr`].
pub fn ppl_metrics(docs: &[DocScore]) -> BTreeMap<String, Metric> {
    let bits: Vec<f64> = docs.iter().map(|d| d.nll / std::f64::consts::LN_2).collect();
    let nats: Vec<f64> = docs.iter().map(|d| d.nll).collect();
    let per = |y: &[f64], x: Vec<f64>| {
        let total: f64 = x.iter().sum();
        Metric { value: y.iter().sum::<f64>() / total.max(1.0), stderr: ratio_stderr(y, &x) }
    };
    let nll = per(&nats, docs.iter().map(|d| d.tokens as f64).collect());
    [
        ("perplexity".to_string(), Metric { value: nll.value.exp(), stderr: nll.stderr.map(|s| s * nll.value.exp()) }),
        ("nll".to_string(), nll),
        ("bits_per_byte".to_string(), per(&bits, docs.iter().map(|d| d.bytes as f64).collect())),
        ("bits_per_char".to_string(), per(&bits, docs.iter().map(|d| d.chars as f64).collect())),
    ]
    .into()
}

/// The change of a perplexity metric from `before` to `after` on the same documents (in the same
/// order), with the paired standard error: the ratio estimator of the per-document differences.
/// `metric` is `nll`, `bits_per_byte` or `bits_per_char`.
pub fn paired_ppl_delta(before: &[DocScore], after: &[DocScore], metric: &str) -> Option<Metric> {
    if before.len() != after.len() || before.is_empty() {
        return None;
    }
    let scale = if metric == "nll" { 1.0 } else { 1.0 / std::f64::consts::LN_2 };
    let unit = |d: &DocScore| match metric {
        "nll" => Some(d.tokens as f64),
        "bits_per_byte" => Some(d.bytes as f64),
        "bits_per_char" => Some(d.chars as f64),
        _ => None,
    };
    let mut x = Vec::with_capacity(before.len());
    for (b, a) in before.iter().zip(after) {
        let ub = unit(b)?;
        if ub != unit(a)? {
            return None;
        }
        x.push(ub);
    }
    let y: Vec<f64> = before.iter().zip(after).map(|(b, a)| (a.nll - b.nll) * scale).collect();
    Some(Metric { value: y.iter().sum::<f64>() / x.iter().sum::<f64>().max(1.0), stderr: ratio_stderr(&y, &x) })
}

/// What a ledger row measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LedgerKind {
    /// A benchmark (higher is better).
    Benchmark,
    /// A held-out set of a source the run trains on (lower is better).
    Heldout,
    /// A retention set: text the run never trains on (lower is better; a rise is forgetting).
    Retention,
}

/// One metric of one task: the base model, the trained model and the change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LedgerRow {
    /// The task.
    pub task: String,
    /// Its key in the results (`NAME:Kshot`, or the perplexity task's name).
    pub key: String,
    /// What it measures.
    pub kind: LedgerKind,
    /// The metric (`acc`, `bits_per_char`, ...).
    pub metric: String,
    /// Items scored (the smaller of the two evaluations).
    pub n: usize,
    /// The base model's value.
    pub before: f64,
    /// The trained model's value.
    pub after: f64,
    /// `after - before`.
    pub delta: f64,
    /// Its standard error.
    pub stderr: Option<f64>,
    /// The error is paired (same items in both evaluations).
    pub paired: bool,
    /// A rise is an improvement (benchmarks), else a fall is (perplexities).
    pub higher_is_better: bool,
}

impl LedgerRow {
    /// The change is beyond two standard errors (`None`: no standard error).
    pub fn beyond_noise(&self) -> Option<bool> {
        self.stderr.map(|s| self.delta.abs() > 2.0 * s)
    }

    /// The change is a loss beyond noise: what the ledger calls forgetting.
    pub fn forgotten(&self) -> bool {
        self.beyond_noise() == Some(true) && (self.delta < 0.0) == self.higher_is_better
    }
}

/// The forgetting ledger of a run (`eval/ledger.json`): every metric of the trained model's
/// evaluation against the base model's.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Ledger {
    /// In task-key order.
    pub rows: Vec<LedgerRow>,
}

impl Ledger {
    /// A Markdown table.
    pub fn markdown(&self) -> String {
        let mut s = "| task | kind | metric | n | base | trained | change | stderr | beyond 2σ |\n|---|---|---|---|---|---|---|---|---|\n".to_string();
        for r in &self.rows {
            let kind = match r.kind {
                LedgerKind::Benchmark => "benchmark",
                LedgerKind::Heldout => "held-out",
                LedgerKind::Retention => "retention",
            };
            let verdict = match r.beyond_noise() {
                None => "–",
                Some(false) => "no",
                Some(true) if r.forgotten() => "yes (worse)",
                Some(true) => "yes (better)",
            };
            s += &format!(
                "| {} | {kind} | {} | {} | {:.4} | {:.4} | {:+.4} | {}{} | {verdict} |\n",
                r.key,
                r.metric,
                r.n,
                r.before,
                r.after,
                r.delta,
                r.stderr.map_or("–".into(), |e| format!("{e:.4}")),
                if r.paired { " (paired)" } else { "" }
            );
        }
        s
    }
}

impl TaskResult {
    /// Accuracy and length-normalised accuracy from per-question correctness.
    pub fn from_correct(task: &str, shots: usize, acc: &[bool], acc_norm: &[bool]) -> TaskResult {
        let metrics = [("acc".to_string(), mean_with_stderr(acc)), ("acc_norm".to_string(), mean_with_stderr(acc_norm))].into();
        TaskResult { task: task.to_string(), shots, n: acc.len(), metrics }
    }
}

/// What was evaluated.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelIdentity {
    /// The model's path.
    pub path: PathBuf,
    /// sha256 of the weights file (the GGUF, or the folder's model.safetensors / index).
    pub sha256: String,
}

/// The results file of one evaluation (`results.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunResults {
    /// What was evaluated.
    pub model: ModelIdentity,
    /// The settings that produced the numbers (tasks, shots, limit, window, tokenizer hash).
    pub config: serde_json::Value,
    /// Task key (`NAME:Kshot`, or a perplexity task's name) → result.
    pub results: BTreeMap<String, TaskResult>,
}

impl RunResults {
    /// Read a results file; an error names it.
    pub fn load(path: &Path) -> Result<RunResults> {
        super::read_json(path)
    }

    /// A Markdown table: task, shots, n, metric, value ± stderr.
    pub fn markdown(&self) -> String {
        let mut s = format!(
            "Model: `{}` (sha256 {})\n\n| task | shots | n | metric | value | stderr |\n|---|---|---|---|---|---|\n",
            self.model.path.display(),
            &self.model.sha256[..12.min(self.model.sha256.len())]
        );
        for r in self.results.values() {
            for (m, v) in &r.metrics {
                s += &format!("| {} | {} | {} | {m} | {:.4} | {} |\n", r.task, r.shots, r.n, v.value, v.stderr.map_or("–".into(), |e| format!("{e:.4}")));
            }
        }
        s
    }
}

/// A before/after table of the metrics two runs share: value A, value B, B − A, and whether the
/// difference exceeds twice the combined standard error.
pub fn compare(a: &RunResults, b: &RunResults) -> String {
    let mut s = "| task | metric | A | B | B − A | beyond 2σ |\n|---|---|---|---|---|---|\n".to_string();
    for (task, ra) in &a.results {
        let Some(rb) = b.results.get(task) else { continue };
        for (m, va) in &ra.metrics {
            let Some(vb) = rb.metrics.get(m) else { continue };
            let d = vb.value - va.value;
            let sig = match (va.stderr, vb.stderr) {
                (Some(x), Some(y)) => {
                    if d.abs() > 2.0 * (x * x + y * y).sqrt() {
                        "yes"
                    } else {
                        "no"
                    }
                }
                _ => "–",
            };
            s += &format!("| {task} | {m} | {:.4} | {:.4} | {d:+.4} | {sig} |\n", va.value, vb.value);
        }
    }
    s
}

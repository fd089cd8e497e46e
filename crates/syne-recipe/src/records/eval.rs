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

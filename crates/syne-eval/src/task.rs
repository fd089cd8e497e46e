//! Task definitions: multiple-choice and generation tasks, their items, load options and the
//! count of skipped rows. The loaders are [`crate::olmo`] (installed benchmarks),
//! [`crate::external`] (public releases) and [`crate::custom`]; [`crate::load::load_task`]
//! picks one by name.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{EvalError, Result};

/// One multiple-choice question: a context and the continuations to rank.
#[derive(Debug, Clone, PartialEq)]
pub struct McItem {
    /// The dataset's own id of the question.
    pub id: String,
    /// The prompt the choices continue (worked examples included).
    pub context: String,
    /// Continuations in choice order (each usually starts with a space).
    pub choices: Vec<String>,
    /// Index of the correct choice.
    pub gold: usize,
}

/// A multiple-choice task.
#[derive(Debug, Clone)]
pub struct McTask {
    /// The task's name.
    pub name: String,
    /// Worked examples in the prompt.
    pub shots: usize,
    /// The file or folder the items came from.
    pub source: PathBuf,
    /// sha256 of the task's data files: earlier samples are reused only for the same data.
    pub fingerprint: String,
    /// The questions.
    pub items: Vec<McItem>,
    /// Malformed rows counted and skipped.
    pub skipped: Skipped,
}

/// How loaders treat malformed rows.
#[derive(Debug, Clone, Copy, Default)]
pub struct LoadOptions {
    /// Keep the first N questions.
    pub limit: Option<usize>,
    /// Fail on the first malformed row instead of counting and skipping it.
    pub strict: bool,
}

/// Rows a loader skipped: how many, and the first few reasons (file, line, what was wrong).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Skipped {
    /// Rows skipped.
    pub count: usize,
    /// The first reasons (file, line, what was wrong).
    pub first: Vec<String>,
}

impl Skipped {
    /// Record a malformed row, or fail with it under `strict`.
    pub fn row(&mut self, strict: bool, err: EvalError) -> Result<()> {
        if strict {
            return Err(err);
        }
        self.count += 1;
        if self.first.len() < 5 {
            self.first.push(err.to_string());
        }
        Ok(())
    }
}

/// The JSON lines of a (plain) file with their 1-based line numbers; malformed lines go to
/// `skipped` (or fail under `strict`).
pub(crate) fn read_json_lines(path: &Path, opts: LoadOptions, skipped: &mut Skipped) -> Result<Vec<(usize, serde_json::Value)>> {
    let text = std::fs::read_to_string(path).map_err(|e| syne_data::DataError::io(path, "cannot read task data", e))?;
    let mut rows = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str(line) {
            Ok(v) => rows.push((n + 1, v)),
            Err(e) => skipped.row(opts.strict, EvalError::Task { path: path.to_path_buf(), detail: format!("line {}: invalid JSON: {e}", n + 1) })?,
        }
    }
    Ok(rows)
}

/// How a generation task's completions are judged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GenMetric {
    /// The final number of a chain of thought equals the gold number (GSM8K, ASDiv, MAWPS).
    FinalNumber,
    /// The final `\boxed{}` / "final answer is" answer is equivalent to the gold (MATH).
    MathAnswer,
    /// The program (prefix + completion + tests) runs to completion in the sandbox (pass@1).
    Program,
    /// The first letter choice `(A)`..`(E)` or `A.` in the completion equals the gold letter.
    Letter,
    /// The completion, trimmed, equals the gold text (numbers compared as numbers).
    ExactMatch,
}

/// One generation question.
#[derive(Debug, Clone, PartialEq)]
pub struct GenItem {
    /// The dataset's own id of the question.
    pub id: String,
    /// The prompt (worked examples included).
    pub prompt: String,
    /// The reference answer (a number, a LaTeX answer, a letter; empty for programs).
    pub gold: String,
    /// For code tasks: what goes before the completion (HumanEval's prompt, MBPP's setup code)
    /// and the tests after it.
    pub program_prefix: String,
    /// For code tasks: the tests run after the completion.
    pub tests: String,
    /// The dataset's reference completion (worked solution, canonical program), for checking
    /// the checker: it must be judged correct.
    pub reference: String,
}

/// A generation task: greedy completions up to a stop sequence, then an answer check.
#[derive(Debug, Clone)]
pub struct GenTask {
    /// The task's name.
    pub name: String,
    /// Worked examples in the prompt.
    pub shots: usize,
    /// The file or folder the items came from.
    pub source: PathBuf,
    /// sha256 of the task's data files: earlier samples are reused only for the same data.
    pub fingerprint: String,
    /// The questions.
    pub items: Vec<GenItem>,
    /// Generation stops at any of these.
    pub stop: Vec<String>,
    /// Generation stops after this many new tokens.
    pub max_new_tokens: usize,
    /// How completions are judged.
    pub metric: GenMetric,
    /// Malformed rows counted and skipped.
    pub skipped: Skipped,
}

/// A task of either kind.
#[derive(Debug, Clone)]
pub enum Task {
    /// A multiple-choice task.
    Mc(McTask),
    /// A generation task.
    Gen(GenTask),
}

impl Task {
    /// The task's name.
    pub fn name(&self) -> &str {
        match self {
            Task::Mc(t) => &t.name,
            Task::Gen(t) => &t.name,
        }
    }
    /// Worked examples in the prompt.
    pub fn shots(&self) -> usize {
        match self {
            Task::Mc(t) => t.shots,
            Task::Gen(t) => t.shots,
        }
    }
    /// Questions.
    pub fn len(&self) -> usize {
        match self {
            Task::Mc(t) => t.items.len(),
            Task::Gen(t) => t.items.len(),
        }
    }
    /// No questions.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Rows the loader skipped.
    pub fn skipped(&self) -> &Skipped {
        match self {
            Task::Mc(t) => &t.skipped,
            Task::Gen(t) => &t.skipped,
        }
    }
}

//! Custom tasks from a TOML file (`syne eval --tasks-file tasks.toml`), so a user can add a
//! benchmark without writing Rust:
//!
//! ```toml
//! [[task]]
//! name = "capitals"
//! kind = "multiple_choice"          # or "generation"
//! path = "capitals.jsonl"           # JSON lines; relative to the TOML file
//! prompt = "Question: {question}\nAnswer:"
//! choices_field = "options"         # a list of strings in each row ...
//! choice = " {choice}"              # ... each rendered with this template
//! # choices = [" A", " B", " C"]    # ... or a fixed list of templates instead
//! gold_field = "answer"             # an index, a letter, or the text of the right choice
//! shots = 2                         # worked examples: the first rows of `fewshot_path`
//! fewshot_path = "capitals-dev.jsonl"  # (default: the first rows of `path`, then not scored)
//! separator = "\n\n"
//!
//! [[task]]
//! name = "sums"
//! kind = "generation"
//! path = "sums.jsonl"
//! prompt = "Q: {q}\nA:"
//! gold_field = "a"
//! metric = "final_number"           # exact_match | final_number | math_answer | letter
//! stop = ["\n"]
//! max_new_tokens = 64
//! ```
//!
//! `{field}` in a template is the row's field (strings as they are, numbers and booleans
//! written out); `{{` and `}}` are literal braces. A row missing a field is a malformed row.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::answer;
use crate::error::{EvalError, Result};
use crate::task::{GenItem, GenMetric, GenTask, LoadOptions, McItem, McTask, Skipped, Task};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
/// What a custom task asks of the model.
pub enum Kind {
    /// Rank the choices by log-likelihood (`acc`, `acc_norm`, `acc_per_char`).
    MultipleChoice,
    /// Complete the prompt greedily, then check the answer with `metric`.
    Generation,
}

/// How a custom generation task is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum CustomMetric {
    /// The completion, trimmed, equals the gold text.
    #[default]
    ExactMatch,
    /// The last number of the completion equals the gold number.
    FinalNumber,
    /// The `\boxed{}` / "final answer is" answer is equivalent to the gold.
    MathAnswer,
    /// The first answer letter equals the gold letter.
    Letter,
}

/// One `[[task]]` of a tasks file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskSpec {
    /// The task's name in the results.
    pub name: String,
    /// Multiple choice or generation.
    pub kind: Kind,
    /// The rows (JSON lines; relative to the TOML file).
    pub path: PathBuf,
    /// The prompt template (`{field}` = the row's field).
    pub prompt: String,
    #[serde(default)]
    /// A row field holding the list of choices ...
    pub choices_field: Option<String>,
    #[serde(default = "default_choice")]
    /// ... each rendered with this template (`{choice}`).
    pub choice: String,
    #[serde(default)]
    /// Or a fixed list of choice templates instead.
    pub choices: Option<Vec<String>>,
    /// The row field holding the gold answer: an index, a letter, or the text of the right choice.
    pub gold_field: String,
    #[serde(default)]
    /// Worked examples before each question.
    pub shots: usize,
    #[serde(default)]
    /// Rows the worked examples come from (default: the first rows of `path`, then not scored).
    pub fewshot_path: Option<PathBuf>,
    #[serde(default = "default_separator")]
    /// Between worked examples and the question.
    pub separator: String,
    #[serde(default)]
    /// How a generation task's completion is checked.
    pub metric: CustomMetric,
    #[serde(default)]
    /// Generation stops at any of these.
    pub stop: Vec<String>,
    #[serde(default = "default_max_new_tokens")]
    /// Generation stops after this many new tokens.
    pub max_new_tokens: usize,
}

fn default_choice() -> String {
    " {choice}".into()
}
fn default_separator() -> String {
    "\n\n".into()
}
fn default_max_new_tokens() -> usize {
    256
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TasksFile {
    task: Vec<TaskSpec>,
}

/// The task specs of a TOML file (errors name the file and what is wrong).
pub fn read_tasks_file(path: &Path) -> Result<Vec<TaskSpec>> {
    let text = std::fs::read_to_string(path).map_err(|e| syne_data::DataError::io(path, "cannot read tasks file", e))?;
    let file: TasksFile = toml::from_str(&text).map_err(|e| EvalError::Task { path: path.to_path_buf(), detail: format!("invalid tasks file: {e}") })?;
    let base = path.parent().unwrap_or(Path::new("."));
    let mut specs = file.task;
    for s in &mut specs {
        let bad = |d: String| EvalError::Task { path: path.to_path_buf(), detail: format!("task `{}`: {d}", s.name) };
        if s.kind == Kind::MultipleChoice && s.choices_field.is_none() && s.choices.is_none() {
            return Err(bad("a multiple_choice task needs `choices_field` or `choices`".into()));
        }
        for p in [Some(&mut s.path), s.fewshot_path.as_mut()].into_iter().flatten() {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        }
    }
    Ok(specs)
}

/// `template` with `{field}` replaced by the row's fields.
pub fn render(template: &str, row: &serde_json::Value) -> std::result::Result<String, String> {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(i) = rest.find(['{', '}']) {
        out += &rest[..i];
        let c = rest.as_bytes()[i];
        if rest[i + 1..].starts_with(c as char) {
            out.push(c as char);
            rest = &rest[i + 2..];
            continue;
        }
        if c == b'}' {
            return Err(format!("unmatched `}}` in template {template:?}"));
        }
        let end = rest[i..].find('}').ok_or_else(|| format!("unclosed `{{` in template {template:?}"))? + i;
        let field = &rest[i + 1..end];
        out += &match row.get(field) {
            Some(serde_json::Value::String(s)) => s.clone(),
            Some(v @ (serde_json::Value::Number(_) | serde_json::Value::Bool(_))) => v.to_string(),
            Some(_) => return Err(format!("field `{field}` is not a string, number or boolean")),
            None => return Err(format!("no field `{field}`")),
        };
        rest = &rest[end + 1..];
    }
    out += rest;
    Ok(out)
}

/// A row rendered: prompt, choices (multiple choice), gold index or gold text.
struct Rendered {
    prompt: String,
    choices: Vec<String>,
    gold_index: usize,
    gold_text: String,
}

fn render_row(spec: &TaskSpec, row: &serde_json::Value) -> std::result::Result<Rendered, String> {
    let prompt = render(&spec.prompt, row)?;
    let gold = row.get(&spec.gold_field).ok_or_else(|| format!("no field `{}`", spec.gold_field))?;
    let gold_text = match gold {
        serde_json::Value::String(s) => s.clone(),
        v => v.to_string(),
    };
    if spec.kind == Kind::Generation {
        return Ok(Rendered { prompt, choices: Vec::new(), gold_index: 0, gold_text });
    }
    let (choices, raw): (Vec<String>, Vec<String>) = match (&spec.choices, &spec.choices_field) {
        (Some(fixed), _) => {
            let c = fixed.iter().map(|t| render(t, row)).collect::<std::result::Result<Vec<_>, _>>()?;
            (c.clone(), c)
        }
        (None, Some(field)) => {
            let list = row.get(field).and_then(|v| v.as_array()).ok_or_else(|| format!("field `{field}` is not a list"))?;
            let raw: Vec<String> = list.iter().map(|v| v.as_str().map(str::to_owned).unwrap_or_else(|| v.to_string())).collect();
            let c = raw.iter().map(|r| render(&spec.choice, &serde_json::json!({"choice": r}))).collect::<std::result::Result<Vec<_>, _>>()?;
            (c, raw)
        }
        (None, None) => unreachable!("checked when the file was read"),
    };
    let n = choices.len();
    let gold_index = match gold {
        serde_json::Value::Number(x) => x.as_u64().map(|i| i as usize),
        serde_json::Value::String(s) => {
            let t = s.trim();
            raw.iter().position(|r| r.trim() == t).or_else(|| {
                let c = t.chars().next()?;
                (t.chars().count() == 1 && c.is_ascii_uppercase()).then(|| (c as u8 - b'A') as usize)
            })
        }
        _ => None,
    }
    .filter(|&i| i < n)
    .ok_or_else(|| format!("gold `{gold_text}` is not an index, letter or text of the {n} choices"))?;
    Ok(Rendered { prompt, choices, gold_index, gold_text })
}

/// Load a custom task.
pub fn load_custom(spec: &TaskSpec, opts: LoadOptions) -> Result<Task> {
    let mut skipped = Skipped::default();
    let rendered = |path: &Path, skipped: &mut Skipped| -> Result<Vec<(usize, Rendered)>> {
        let mut out = Vec::new();
        for (line, row) in crate::task::read_json_lines(path, opts, skipped)? {
            match render_row(spec, &row) {
                Ok(r) => out.push((line, r)),
                Err(d) => skipped.row(opts.strict, EvalError::Task { path: path.to_path_buf(), detail: format!("line {line}: {d}") })?,
            }
        }
        Ok(out)
    };
    let mut rows = rendered(&spec.path, &mut skipped)?;
    let shots: Vec<(usize, Rendered)> = match &spec.fewshot_path {
        Some(p) => rendered(p, &mut skipped)?.into_iter().take(spec.shots).collect(),
        None => rows.drain(..spec.shots.min(rows.len())).collect(),
    };
    if shots.len() < spec.shots {
        return Err(EvalError::Task { path: spec.path.clone(), detail: format!("task `{}`: {} rows for {} shots", spec.name, shots.len(), spec.shots) });
    }
    let prefix: String = shots
        .iter()
        .map(|(_, s)| {
            let answer = if spec.kind == Kind::MultipleChoice { s.choices[s.gold_index].clone() } else { format!(" {}", s.gold_text) };
            format!("{}{answer}{}", s.prompt, spec.separator)
        })
        .collect();
    rows.truncate(opts.limit.unwrap_or(usize::MAX));
    let mut files = vec![spec.path.as_path()];
    files.extend(spec.fewshot_path.as_deref());
    let mut h = <sha2::Sha256 as sha2::Digest>::new();
    for f in files {
        sha2::Digest::update(&mut h, syne_data::io::sha256_file(f)?.as_bytes());
    }
    // The spec is part of the fingerprint: a changed template must not reuse old samples.
    sha2::Digest::update(&mut h, format!("{spec:?}").as_bytes());
    let fingerprint = hex::encode(sha2::Digest::finalize(h));
    Ok(match spec.kind {
        Kind::MultipleChoice => Task::Mc(McTask {
            name: spec.name.clone(),
            shots: spec.shots,
            source: spec.path.clone(),
            fingerprint,
            items: rows
                .into_iter()
                .map(|(line, r)| McItem { id: line.to_string(), context: format!("{prefix}{}", r.prompt), choices: r.choices, gold: r.gold_index })
                .collect(),
            skipped,
        }),
        Kind::Generation => Task::Gen(GenTask {
            name: spec.name.clone(),
            shots: spec.shots,
            source: spec.path.clone(),
            fingerprint,
            items: rows
                .into_iter()
                .map(|(line, r)| GenItem {
                    id: line.to_string(),
                    prompt: format!("{prefix}{}", r.prompt),
                    reference: format!(" {}", r.gold_text),
                    gold: r.gold_text,
                    program_prefix: String::new(),
                    tests: String::new(),
                })
                .collect(),
            stop: spec.stop.clone(),
            max_new_tokens: spec.max_new_tokens,
            metric: match spec.metric {
                CustomMetric::ExactMatch => GenMetric::ExactMatch,
                CustomMetric::FinalNumber => GenMetric::FinalNumber,
                CustomMetric::MathAnswer => GenMetric::MathAnswer,
                CustomMetric::Letter => GenMetric::Letter,
            },
            skipped,
        }),
    })
}

/// Whether a completion equals the gold text (trimmed), for [`GenMetric::ExactMatch`].
pub fn exact_match(completion: &str, gold: &str) -> bool {
    completion.trim() == gold.trim() || answer::numbers_equal(completion.trim(), gold.trim()) && !gold.trim().is_empty() && gold.trim().parse::<f64>().is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_fill_fields_and_keep_escaped_braces() {
        let row = serde_json::json!({"q": "2+2", "n": 4, "ok": true, "list": [1]});
        assert_eq!(render("Q: {q} = {n} ({ok}) {{x}}", &row).unwrap(), "Q: 2+2 = 4 (true) {x}");
        assert!(render("{missing}", &row).unwrap_err().contains("no field `missing`"));
        assert!(render("{list}", &row).unwrap_err().contains("not a string"));
        assert!(render("{q", &row).unwrap_err().contains("unclosed"));
        assert!(render("q}", &row).unwrap_err().contains("unmatched"));
    }
}

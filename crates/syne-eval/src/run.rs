//! Scoring tasks with a local model, resumably.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use syne_data::tokenizer::TextTokenizer;
use syne_model::heldout::{LoadedSet, ValidationSet};
use syne_model::lm::LanguageModel;

use crate::answer;
use crate::backend::{Backend, Question};
use crate::error::{EvalError, Result};
use crate::results::{mean_with_stderr, ModelIdentity, TaskResult};
use crate::sandbox::Sandbox;
use crate::task::{GenItem, GenMetric, GenTask, McTask};

/// Scoring settings of the local model.
#[derive(Debug, Clone, Serialize)]
pub struct EvalOptions {
    /// Most tokens of context + continuation the model sees (contexts are cut from the left).
    pub max_len: usize,
    /// Padded tokens per forward pass.
    pub batch_tokens: usize,
    /// Questions scored (and written) together: the resume granularity.
    pub chunk: usize,
    /// Perplexity tasks score each document's first this many characters (all when absent).
    pub ppl_max_chars: Option<usize>,
}

impl Default for EvalOptions {
    fn default() -> Self {
        EvalOptions { max_len: 2048, batch_tokens: 4096, chunk: 32, ppl_max_chars: None }
    }
}

/// The sha256 of a model's weights file, for the results' model identity.
pub fn model_identity(path: &Path) -> Result<ModelIdentity> {
    let file = if path.is_dir() {
        ["model.safetensors", "model.safetensors.index.json"]
            .iter()
            .map(|f| path.join(f))
            .find(|p| p.exists())
            .ok_or_else(|| EvalError::Task { path: path.to_path_buf(), detail: "no model.safetensors or model.safetensors.index.json".into() })?
    } else {
        path.to_path_buf()
    };
    Ok(ModelIdentity { path: path.to_path_buf(), sha256: syne_data::io::sha256_file(&file)? })
}

/// One line of `samples/TASK.jsonl`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct McSample {
    /// The question's id.
    pub id: String,
    /// The context the choices continue.
    pub context: String,
    /// The continuations.
    pub choices: Vec<String>,
    /// The right choice.
    pub gold: usize,
    /// Log-likelihood of each choice's continuation.
    pub logprobs: Vec<f64>,
    /// Whether each continuation is the model's greedy output.
    pub greedy: Vec<bool>,
    /// Argmax of the log-likelihoods (`acc`), of the log-likelihoods per character of the choice
    /// text (`acc_norm`, lm-evaluation-harness) and per character of the whole continuation
    /// (`acc_per_char`, OLMES); see [`McPrediction`].
    pub pred: usize,
    /// See `pred`.
    pub pred_norm: usize,
    /// See `pred`.
    pub pred_per_char: usize,
    /// `pred` is the gold choice (`acc`).
    pub correct: bool,
    /// `pred_norm` is the gold choice (`acc_norm`).
    pub correct_norm: bool,
    /// `pred_per_char` is the gold choice (`acc_per_char`).
    pub correct_per_char: bool,
}

/// The three rankings of a multiple-choice question's log-likelihoods.
///
/// lm-evaluation-harness scores the continuation `target_delimiter + choice` (the delimiter is
/// one space) and defines `acc_norm` as the argmax of log-likelihood / `len(choice)` — the
/// choice's characters without the delimiter. OLMES' `acc_per_char` divides by the characters of
/// the whole continuation, the leading space included. Our continuations carry the delimiter
/// (`" Paris"`), so `acc_norm` drops one leading space before counting and `acc_per_char` does
/// not; on choices without a leading space (`"A"` after `答案：`) the two agree.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct McPrediction {
    /// Argmax of the log-likelihoods.
    pub pred: usize,
    /// Argmax of log-likelihood / characters of the choice without its leading space.
    pub pred_norm: usize,
    /// Argmax of log-likelihood / characters of the continuation.
    pub pred_per_char: usize,
}

impl McPrediction {
    /// Rank `logprobs` (one per continuation in `choices`); ties go to the first choice.
    pub fn new(logprobs: &[f64], choices: &[String]) -> McPrediction {
        let chars = |c: &str| c.chars().count().max(1) as f64;
        McPrediction {
            pred: argmax(logprobs.iter().copied()),
            pred_norm: argmax(logprobs.iter().zip(choices).map(|(l, c)| l / chars(c.strip_prefix(' ').unwrap_or(c)))),
            pred_per_char: argmax(logprobs.iter().zip(choices).map(|(l, c)| l / chars(c))),
        }
    }
}

/// One line of `samples/TASK.jsonl` for a generation task.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GenSample {
    /// The question's id.
    pub id: String,
    /// The prompt.
    pub prompt: String,
    /// The model's completion (up to the stop sequence).
    pub completion: String,
    /// The reference answer.
    pub gold: String,
    /// The answer read from the completion (none for programs, or when nothing was found).
    pub extracted: Option<String>,
    /// For programs: how the sandboxed run ended ...
    pub execution: Option<crate::sandbox::Outcome>,
    /// ... and its stderr (the last 2,000 characters).
    pub stderr: Option<String>,
    /// The completion was judged right.
    pub correct: bool,
}

trait Sample: Serialize + serde::de::DeserializeOwned {
    fn id(&self) -> &str;
}

impl Sample for McSample {
    fn id(&self) -> &str {
        &self.id
    }
}

impl Sample for GenSample {
    fn id(&self) -> &str {
        &self.id
    }
}

/// The per-sample file of a task: the records an earlier run under the same key completed
/// (in task order; a torn last line ends them), rewritten, and an append handle for the rest.
struct SampleLog<S> {
    path: PathBuf,
    file: std::fs::File,
    done: Vec<S>,
}

impl<S: Sample> SampleLog<S> {
    fn open(out: &Path, stem: &str, key: &str, ids: &[&str]) -> Result<SampleLog<S>> {
        let dir = out.join("samples");
        std::fs::create_dir_all(&dir).map_err(|e| syne_data::DataError::io(&dir, "cannot create", e))?;
        let path = dir.join(format!("{stem}.jsonl"));
        let key_path = path.with_extension("key");
        let key = hex::encode(Sha256::digest(key.as_bytes()));
        let mut done: Vec<S> = Vec::new();
        if std::fs::read_to_string(&key_path).is_ok_and(|k| k.trim() == key) {
            if let Ok(text) = std::fs::read_to_string(&path) {
                for line in text.lines() {
                    let Ok(s) = serde_json::from_str::<S>(line) else { break };
                    if done.len() >= ids.len() || ids[done.len()] != s.id() {
                        break;
                    }
                    done.push(s);
                }
            }
        }
        // Rewrite the reusable prefix, then append: the file never holds a partial line for long.
        let mut text = String::new();
        for s in &done {
            text += &serde_json::to_string(s).expect("json");
            text.push('\n');
        }
        syne_data::io::write_atomic(&path, text.as_bytes())?;
        syne_data::io::write_atomic(&key_path, key.as_bytes())?;
        let file = std::fs::OpenOptions::new().append(true).open(&path).map_err(|e| syne_data::DataError::io(&path, "cannot open", e))?;
        Ok(SampleLog { path, file, done })
    }

    fn append(&mut self, samples: Vec<S>) -> Result<()> {
        let mut lines = String::new();
        for s in &samples {
            lines += &serde_json::to_string(s).expect("json");
            lines.push('\n');
        }
        self.file.write_all(lines.as_bytes()).and_then(|_| self.file.flush()).map_err(|e| syne_data::DataError::io(&self.path, "cannot write", e))?;
        self.done.extend(samples);
        Ok(())
    }
}

fn argmax(v: impl Iterator<Item = f64>) -> usize {
    let mut best = (0, f64::NEG_INFINITY);
    for (i, x) in v.enumerate() {
        if x > best.1 {
            best = (i, x);
        }
    }
    best.0
}

/// Score a multiple-choice task: every choice's continuation log-likelihood given the context;
/// `acc` ranks by log-likelihood, `acc_norm` by log-likelihood per character of the choice
/// (lm-evaluation-harness's definition), `acc_per_char` per character of the continuation
/// (OLMES'); see [`McPrediction`]. Samples go to
/// `out/samples/TASK-{SHOTS}shot.jsonl`, written per chunk of `chunk` questions; a run killed
/// and restarted with the same backend key and task continues after the last complete chunk,
/// and a finished task is read back instead of rescored. Returns the result and the number of
/// questions reused from an earlier run.
pub fn run_mc(backend: &dyn Backend, task: &McTask, out: &Path, chunk: usize, progress: &dyn Fn(usize)) -> Result<(TaskResult, usize)> {
    let ids: Vec<&str> = task.items.iter().map(|i| i.id.as_str()).collect();
    let key = format!("{}\n{}\n{}", backend.cache_key(), task.fingerprint, task.shots);
    let mut log = SampleLog::<McSample>::open(out, &format!("{}-{}shot", task.name, task.shots), &key, &ids)?;
    let reused = log.done.len();
    progress(reused);
    for chunk in task.items[reused..].chunks(chunk.max(1)) {
        let questions: Vec<Question> = chunk.iter().map(|i| Question { context: &i.context, choices: &i.choices }).collect();
        let scores = backend.score(&questions)?;
        let samples = chunk
            .iter()
            .zip(scores)
            .map(|(item, s)| {
                let logprobs: Vec<f64> = s.iter().map(|x| x.logprob).collect();
                let McPrediction { pred, pred_norm, pred_per_char } = McPrediction::new(&logprobs, &item.choices);
                McSample {
                    id: item.id.clone(),
                    context: item.context.clone(),
                    choices: item.choices.clone(),
                    gold: item.gold,
                    greedy: s.iter().map(|x| x.greedy).collect(),
                    logprobs,
                    pred,
                    pred_norm,
                    pred_per_char,
                    correct: pred == item.gold,
                    correct_norm: pred_norm == item.gold,
                    correct_per_char: pred_per_char == item.gold,
                }
            })
            .collect();
        log.append(samples)?;
        progress(log.done.len());
    }
    let acc: Vec<bool> = log.done.iter().map(|s| s.correct).collect();
    let acc_norm: Vec<bool> = log.done.iter().map(|s| s.correct_norm).collect();
    let acc_per_char: Vec<bool> = log.done.iter().map(|s| s.correct_per_char).collect();
    let mut result = TaskResult::from_correct(&task.name, task.shots, &acc, &acc_norm);
    result.metrics.insert("acc_per_char".into(), crate::results::mean_with_stderr(&acc_per_char));
    Ok((result, reused))
}

/// The first answer letter in a completion: `(B)`, `B.`, `B)` or a bare `B` word.
fn first_letter(completion: &str) -> Option<String> {
    static LETTER: std::sync::LazyLock<regex::Regex> = std::sync::LazyLock::new(|| regex::Regex::new(r"\(([A-J])\)|\b([A-J])\b").unwrap());
    LETTER.captures(completion).and_then(|c| c.get(1).or(c.get(2))).map(|m| m.as_str().to_string())
}

/// Judge one completion: the extracted answer, the sandboxed execution, whether it is right.
fn judge(task: &GenTask, item: &GenItem, completion: &str, sandbox: Option<&Sandbox>) -> Result<GenSample> {
    let mut sample = GenSample {
        id: item.id.clone(),
        prompt: item.prompt.clone(),
        completion: completion.to_string(),
        gold: item.gold.clone(),
        extracted: None,
        execution: None,
        stderr: None,
        correct: false,
    };
    match task.metric {
        GenMetric::FinalNumber => {
            sample.extracted = answer::extract_final_number(completion);
            sample.correct = sample.extracted.as_deref().is_some_and(|p| answer::numbers_equal(p, &item.gold));
        }
        GenMetric::MathAnswer => {
            sample.extracted = answer::extract_math_answer(completion);
            sample.correct = sample.extracted.as_deref().is_some_and(|p| answer::math_equivalent(p, &item.gold));
        }
        GenMetric::ExactMatch => {
            let first_line = completion.trim().lines().next().unwrap_or("").to_string();
            sample.correct = crate::custom::exact_match(&first_line, &item.gold);
            sample.extracted = Some(first_line);
        }
        GenMetric::Letter => {
            sample.extracted = first_letter(completion);
            sample.correct = sample.extracted.as_deref() == Some(item.gold.trim());
        }
        GenMetric::Program => {
            let sandbox = sandbox.ok_or_else(|| EvalError::Usage(format!("task `{}` runs generated code and needs a sandbox", task.name)))?;
            let program = format!("{}{}\n\n{}", item.program_prefix, completion, item.tests);
            let run = sandbox.run_python(&program)?;
            sample.correct = run.passed();
            // The temporary directory's name is dropped so the record does not depend on it.
            let stderr = run.stderr.replace(&format!("{}/", run.workdir.display()), "");
            sample.stderr = (!stderr.is_empty()).then(|| stderr.chars().rev().take(2000).collect::<Vec<_>>().into_iter().rev().collect());
            sample.execution = Some(run.outcome);
        }
    }
    Ok(sample)
}

/// Judge a chunk's completions; programs run `sandbox.jobs()` at a time.
fn judge_all(task: &GenTask, items: &[GenItem], completions: &[String], sandbox: Option<&Sandbox>) -> Result<Vec<GenSample>> {
    let jobs = sandbox.filter(|_| task.metric == GenMetric::Program).map_or(1, |s| s.jobs()).clamp(1, items.len().max(1));
    if jobs == 1 {
        return items.iter().zip(completions).map(|(item, c)| judge(task, item, c, sandbox)).collect();
    }
    let next = std::sync::atomic::AtomicUsize::new(0);
    let mut results: Vec<Option<Result<GenSample>>> = (0..items.len()).map(|_| None).collect();
    let done = std::sync::Mutex::new(&mut results);
    std::thread::scope(|scope| {
        for _ in 0..jobs {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= items.len() {
                    break;
                }
                let r = judge(task, &items[i], &completions[i], sandbox);
                done.lock().expect("no panics while holding the lock")[i] = Some(r);
            });
        }
    });
    results.into_iter().map(|r| r.expect("every item judged")).collect()
}

/// Run a generation task: greedy completions (stop sequences, token limit), then the task's
/// check — final number (GSM8K), equivalent `\boxed{}` answer (MATH), answer letter, or the
/// program run in `sandbox` (HumanEval, MBPP; pass@1). Resumable like [`run_mc`]; the metric is
/// `exact_match` or `pass@1`.
pub fn run_gen(
    backend: &dyn Backend,
    task: &GenTask,
    sandbox: Option<&Sandbox>,
    out: &Path,
    chunk: usize,
    progress: &dyn Fn(usize),
) -> Result<(TaskResult, usize)> {
    if task.metric == GenMetric::Program && sandbox.is_none() {
        return Err(EvalError::Usage(format!("task `{}` runs generated code and needs a sandbox", task.name)));
    }
    let ids: Vec<&str> = task.items.iter().map(|i| i.id.as_str()).collect();
    let key = format!("{}\n{}\n{}\n{:?}\n{}", backend.cache_key(), task.fingerprint, task.shots, task.stop, task.max_new_tokens);
    let mut log = SampleLog::<GenSample>::open(out, &format!("{}-{}shot", task.name, task.shots), &key, &ids)?;
    let reused = log.done.len();
    progress(reused);
    for chunk in task.items[reused..].chunks(chunk.max(1)) {
        let prompts: Vec<&str> = chunk.iter().map(|i| i.prompt.as_str()).collect();
        let completions = backend.generate(&prompts, &task.stop, task.max_new_tokens)?;
        let samples = judge_all(task, chunk, &completions, sandbox)?;
        log.append(samples)?;
        progress(log.done.len());
    }
    let correct: Vec<bool> = log.done.iter().map(|s| s.correct).collect();
    let metric = if task.metric == GenMetric::Program { "pass@1" } else { "exact_match" };
    let metrics = [(metric.to_string(), mean_with_stderr(&correct))].into();
    Ok((TaskResult { task: task.name.clone(), shots: task.shots, n: correct.len(), metrics }, reused))
}

/// A held-out perplexity task: the first `max_docs` documents of a corpus file scored whole
/// (windows of `opts.max_len`): mean NLL per token, perplexity, bits per byte and per character,
/// each with its standard error over documents. Every document's score goes to
/// `OUT/samples/NAME.ppl.jsonl` (when `out` is given): paired before/after deltas read them.
pub fn run_ppl(
    model: &impl LanguageModel,
    tok: &TextTokenizer,
    name: &str,
    path: &Path,
    max_docs: usize,
    opts: &EvalOptions,
    out: Option<&Path>,
) -> Result<TaskResult> {
    let set = ValidationSet {
        name: name.to_string(),
        path: PathBuf::from(path),
        max_docs,
        text_field: "text".into(),
        topic_field: None,
        max_chars: opts.ppl_max_chars,
    };
    let (m, docs) = LoadedSet::load(&set, tok)?.evaluate_docs(model, opts.max_len, opts.batch_tokens);
    if let Some(out) = out {
        let file = ppl_samples_path(out, name);
        let dir = file.parent().expect("samples folder");
        std::fs::create_dir_all(dir).map_err(|e| syne_data::DataError::io(dir, "cannot create", e))?;
        let text: String = docs.iter().map(|d| serde_json::to_string(d).expect("a score serialises") + "\n").collect();
        syne_data::io::write_atomic(&file, text.as_bytes())?;
    }
    Ok(TaskResult { task: name.to_string(), shots: 0, n: m.docs, metrics: syne_recipe::records::eval::ppl_metrics(&docs) })
}

/// Where [`run_ppl`] writes the per-document scores of task `name` of an evaluation in `out`.
pub fn ppl_samples_path(out: &Path, name: &str) -> PathBuf {
    out.join("samples").join(format!("{name}.ppl.jsonl"))
}

//! Scoring tasks with a local model, resumably.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use syne_data::tokenizer::{BosPolicy, TextTokenizer};
use syne_model::heldout::{LoadedSet, ValidationSet};
use syne_model::lm::LanguageModel;
use syne_model::score::{score_continuations, score_next_tokens, ContinuationScore};

use crate::error::{EvalError, Result};
use crate::results::{Metric, ModelIdentity, TaskResult};
use crate::task::McTask;

/// Scoring settings.
#[derive(Debug, Clone, Serialize)]
pub struct EvalOptions {
    /// Most tokens of context + continuation the model sees (contexts are cut from the left).
    pub max_len: usize,
    /// Padded tokens per forward pass.
    pub batch_tokens: usize,
    /// Questions scored (and written) together: the resume granularity.
    pub chunk: usize,
}

impl Default for EvalOptions {
    fn default() -> Self {
        EvalOptions { max_len: 2048, batch_tokens: 4096, chunk: 32 }
    }
}

/// The sha256 of a model's weights file, for the results' model identity.
pub fn model_identity(path: &Path) -> Result<ModelIdentity> {
    let file = if path.is_dir() {
        ["model.safetensors", "model.safetensors.index.json"].iter().map(|f| path.join(f)).find(|p| p.exists()).ok_or_else(|| {
            EvalError::Task { path: path.to_path_buf(), detail: "no model.safetensors or model.safetensors.index.json".into() }
        })?
    } else {
        path.to_path_buf()
    };
    Ok(ModelIdentity { path: path.to_path_buf(), sha256: syne_data::io::sha256_file(&file)? })
}

/// One line of `samples/TASK.jsonl`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct McSample {
    pub id: String,
    pub context: String,
    pub choices: Vec<String>,
    pub gold: usize,
    /// Log-likelihood of each choice's continuation.
    pub logprobs: Vec<f64>,
    /// Whether each continuation is the model's greedy output.
    pub greedy: Vec<bool>,
    /// Argmax of the log-likelihoods, and of the log-likelihoods per character.
    pub pred: usize,
    pub pred_norm: usize,
    pub correct: bool,
    pub correct_norm: bool,
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

/// Score `task` with `model`: every choice's continuation log-likelihood given the context
/// (BOS first when the model wants it); `acc` ranks by log-likelihood, `acc_norm` by
/// log-likelihood per character of the continuation (lm-evaluation-harness's definitions).
/// Samples go to `out/samples/TASK-{SHOTS}shot.jsonl`, written per chunk; a run killed and
/// restarted with the same model, tokenizer and settings continues after the last complete
/// chunk, and a finished task is read back instead of rescored. Returns the result and the
/// number of questions reused from an earlier run.
pub fn run_mc(
    model: &impl LanguageModel,
    tok: &TextTokenizer,
    identity: &ModelIdentity,
    task: &McTask,
    out: &Path,
    opts: &EvalOptions,
    progress: &dyn Fn(usize),
) -> Result<(TaskResult, usize)> {
    let dir = out.join("samples");
    std::fs::create_dir_all(&dir).map_err(|e| syne_data::DataError::io(&dir, "cannot create", e))?;
    let path = dir.join(format!("{}-{}shot.jsonl", task.name, task.shots));
    let key_path = path.with_extension("key");
    // Earlier samples count only if model, tokenizer, window and task file are the same.
    let key = hex::encode(Sha256::digest(
        format!("{}\n{}\n{}\n{}\n{}", identity.sha256, tok.hash(), opts.max_len, task.fingerprint, task.shots).as_bytes(),
    ));
    let mut done: Vec<McSample> = Vec::new();
    if std::fs::read_to_string(&key_path).is_ok_and(|k| k.trim() == key) {
        if let Ok(text) = std::fs::read_to_string(&path) {
            for line in text.lines() {
                // A torn last line (killed mid-write) ends what is reused.
                let Ok(s) = serde_json::from_str::<McSample>(line) else { break };
                if done.len() >= task.items.len() || task.items[done.len()].id != s.id {
                    break;
                }
                done.push(s);
            }
        }
    }
    let reused = done.len();
    // Rewrite the reusable prefix, then append: the file never holds a partial line for long.
    let mut text = String::new();
    for s in &done {
        text += &serde_json::to_string(s).expect("json");
        text.push('\n');
    }
    syne_data::io::write_atomic(&path, text.as_bytes())?;
    syne_data::io::write_atomic(&key_path, key.as_bytes())?;
    let mut file = std::fs::OpenOptions::new().append(true).open(&path).map_err(|e| syne_data::DataError::io(&path, "cannot open", e))?;
    let bos: Vec<u32> = if tok.adds_bos(BosPolicy::Model) { tok.bos_id().into_iter().collect() } else { Vec::new() };
    progress(done.len());
    for chunk in task.items[reused..].chunks(opts.chunk.max(1)) {
        let mut contexts = Vec::with_capacity(chunk.len());
        let mut conts = Vec::with_capacity(chunk.len());
        for item in chunk {
            let mut ctx = bos.clone();
            ctx.extend(tok.encode(&item.context)?);
            if ctx.is_empty() {
                ctx.extend(tok.eos_id());
            }
            contexts.push(ctx);
            conts.push(item.choices.iter().map(|c| tok.encode(c)).collect::<std::result::Result<Vec<_>, _>>()?);
        }
        // Single-token choices (MMLU's " A".." D") share one forward pass per question.
        let single = contexts.iter().all(|c| !c.is_empty()) && conts.iter().flatten().all(|c| c.len() == 1);
        let scores: Vec<ContinuationScore> = if single {
            let candidates: Vec<Vec<u32>> = conts.iter().map(|cs| cs.iter().map(|c| c[0]).collect()).collect();
            score_next_tokens(model, &contexts, &candidates, opts.max_len, opts.batch_tokens).into_iter().flatten().collect()
        } else {
            let requests: Vec<(Vec<u32>, Vec<u32>)> =
                contexts.iter().zip(&conts).flat_map(|(ctx, cs)| cs.iter().map(move |c| (ctx.clone(), c.clone()))).collect();
            score_continuations(model, &requests, opts.max_len, opts.batch_tokens)
        };
        let mut k = 0;
        let mut lines = String::new();
        for item in chunk {
            let s = &scores[k..k + item.choices.len()];
            k += item.choices.len();
            let logprobs: Vec<f64> = s.iter().map(|x| x.logprob).collect();
            let pred = argmax(logprobs.iter().copied());
            let pred_norm = argmax(logprobs.iter().zip(&item.choices).map(|(l, c)| l / c.chars().count().max(1) as f64));
            let sample = McSample {
                id: item.id.clone(),
                context: item.context.clone(),
                choices: item.choices.clone(),
                gold: item.gold,
                greedy: s.iter().map(|x| x.greedy).collect(),
                logprobs,
                pred,
                pred_norm,
                correct: pred == item.gold,
                correct_norm: pred_norm == item.gold,
            };
            lines += &serde_json::to_string(&sample).expect("json");
            lines.push('\n');
            done.push(sample);
        }
        file.write_all(lines.as_bytes()).and_then(|_| file.flush()).map_err(|e| syne_data::DataError::io(&path, "cannot write", e))?;
        progress(done.len());
    }
    let acc: Vec<bool> = done.iter().map(|s| s.correct).collect();
    let acc_norm: Vec<bool> = done.iter().map(|s| s.correct_norm).collect();
    Ok((TaskResult::from_correct(&task.name, task.shots, &acc, &acc_norm), reused))
}

/// A held-out perplexity task: the first `max_docs` documents of a corpus file scored whole
/// (windows of `opts.max_len`): mean NLL per token, perplexity, bits per byte and per character.
pub fn run_ppl(model: &impl LanguageModel, tok: &TextTokenizer, name: &str, path: &Path, max_docs: usize, opts: &EvalOptions) -> Result<TaskResult> {
    let set = ValidationSet { name: name.to_string(), path: PathBuf::from(path), max_docs, text_field: "text".into(), topic_field: None };
    let m = LoadedSet::load(&set, tok)?.evaluate(model, opts.max_len, opts.batch_tokens);
    let metric = |value| Metric { value, stderr: None };
    let metrics = [
        ("nll".to_string(), metric(m.loss)),
        ("perplexity".to_string(), metric(m.perplexity)),
        ("bits_per_byte".to_string(), metric(m.bits_per_byte)),
        ("bits_per_char".to_string(), metric(m.bits_per_char)),
    ]
    .into();
    Ok(TaskResult { task: name.to_string(), shots: 0, n: m.docs, metrics })
}

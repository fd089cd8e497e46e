//! The training loop: packed sequences from token shards, gradient accumulation to a global
//! batch in tokens, clipping, AdamW, token-based LR schedule, JSON-lines metrics, and atomic
//! checkpoints (weights in HF layout, optimizer state, counters, data position) from which
//! `--resume` continues exactly: the final weights equal an uninterrupted run's bit for bit.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::{Deserialize, Serialize};
use syne_data::prepare::Manifest;
use syne_data::shards::ShardReader;
use syne_data::stream::{PackedSequence, SequenceSource};
use syne_data::text::splitmix64;
use syne_data::tokenizer::TextTokenizer;
use syne_model::llama::{Attention, Llama, Precision};
use tch::{Device, Tensor};

use crate::optimizer::AdamW;
use crate::validation::{LoadedSet, ValidationReport};

pub use crate::error::TrainError;
use syne_recipe::records::mixture::{MixtureLogLine, MixtureState};
pub use syne_recipe::records::train::StepMetrics;
pub use syne_recipe::TrainSettings;

type Result<T> = std::result::Result<T, TrainError>;

/// Read the `[train]` table of a `syne train` file: relative paths resolve against its folder,
/// and `data`, `out` and `total_tokens` must be given (`syne run` sets them from the recipe).
pub fn load_settings(path: &Path) -> Result<TrainSettings> {
    #[derive(Deserialize)]
    struct File {
        train: TrainSettings,
    }
    let cfg_err = |detail: String| TrainError::Config { path: path.to_path_buf(), detail };
    let text = std::fs::read_to_string(path).map_err(|e| cfg_err(format!("cannot read: {e}")))?;
    let mut cfg: TrainSettings = toml::from_str::<File>(&text).map_err(|e| cfg_err(e.to_string()))?.train;
    cfg.resolve(path.parent().unwrap_or(Path::new(".")));
    cfg.check().map_err(|(key, detail)| cfg_err(format!("{key}: {detail}")))?;
    if cfg.out.as_os_str().is_empty() {
        return Err(cfg_err("train.out: missing (the run folder)".into()));
    }
    Ok(cfg)
}

/// All training tokens as one stream over the shards, cut into sequences of `seq_len + 1`
/// tokens (stride `seq_len`), visited in a seeded random order that is reshuffled every epoch.
pub struct TokenStream {
    shards: Vec<ShardReader>,
    starts: Vec<u64>,
    /// Global number of each shard's first document.
    doc_bases: Vec<u64>,
    total: u64,
    seq_len: usize,
    seed: u64,
}

impl TokenStream {
    /// The shards of `data` (prepared folders or shard base paths) as one stream of `seq_len + 1`-token sequences in a seeded order.
    pub fn open(data: &[PathBuf], seq_len: usize, seed: u64) -> Result<TokenStream> {
        let mut shards = Vec::new();
        for d in data {
            if d.join("manifest.json").exists() {
                let m = Manifest::load(d)?;
                shards.extend(m.open_shards(d)?);
            } else {
                shards.push(ShardReader::open(d)?);
            }
        }
        let mut starts = Vec::with_capacity(shards.len());
        let mut doc_bases = Vec::with_capacity(shards.len());
        let (mut total, mut docs) = (0, 0);
        for s in &shards {
            starts.push(total);
            doc_bases.push(docs);
            total += s.num_tokens();
            docs += s.num_docs() as u64;
        }
        if total < seq_len as u64 + 1 {
            return Err(TrainError::Config {
                path: data.first().cloned().unwrap_or_default(),
                detail: format!("{total} training tokens cannot fill one sequence of {} tokens", seq_len + 1),
            });
        }
        Ok(TokenStream { shards, starts, doc_bases, total, seq_len, seed })
    }

    /// Sequences per epoch.
    pub fn sequences(&self) -> u64 {
        (self.total - 1) / self.seq_len as u64
    }

    fn read(&self, mut start: u64, len: usize) -> Vec<i64> {
        let mut out = Vec::with_capacity(len);
        while out.len() < len {
            let s = self.starts.partition_point(|&x| x <= start) - 1;
            let shard = &self.shards[s];
            let local = start - self.starts[s];
            let take = ((shard.num_tokens() - local) as usize).min(len - out.len());
            let toks = shard.token_range(local, local + take as u64);
            out.extend((0..take).map(|i| i64::from(toks.get(i))));
            start += take as u64;
        }
        out
    }

    /// Global document number of each token of `start..start + len`.
    fn read_segments(&self, start: u64, len: usize) -> Vec<i64> {
        (start..start + len as u64)
            .map(|g| {
                let s = self.starts.partition_point(|&x| x <= g) - 1;
                let local = g - self.starts[s];
                let doc = self.shards[s].offsets().partition_point(|&o| o <= local) - 1;
                (self.doc_bases[s] + doc as u64) as i64
            })
            .collect()
    }

    /// The `position`-th sequence of the run (epochs continue the count).
    pub fn sequence(&self, position: u64) -> Vec<i64> {
        self.read(self.sequence_start(position), self.seq_len + 1)
    }

    /// The `position`-th sequence and the document number of each of its tokens.
    pub fn sequence_with_segments(&self, position: u64) -> (Vec<i64>, Vec<i64>) {
        let start = self.sequence_start(position);
        (self.read(start, self.seq_len + 1), self.read_segments(start, self.seq_len + 1))
    }

    fn sequence_start(&self, position: u64) -> u64 {
        let n = self.sequences();
        let (epoch, i) = (position / n, position % n);
        // Each epoch visits the sequences in the order of an affine bijection of 0..n,
        // i -> (a * i + b) mod n with gcd(a, n) = 1, drawn from the seed: a shuffle that needs
        // no memory and is recomputed exactly from the position alone (which makes resume exact).
        let mut st = self.seed ^ epoch.wrapping_mul(0xA076_1D64_78BD_642F);
        let b = splitmix64(&mut st) % n;
        let mut a = if n > 1 { 1 + splitmix64(&mut st) % (n - 1) } else { 1 };
        while gcd(a, n) != 1 {
            a = if a + 1 < n { a + 1 } else { 1 };
        }
        let idx = ((a as u128 * i as u128 + b as u128) % n as u128) as u64;
        idx * self.seq_len as u64
    }
}

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

impl SequenceSource for TokenStream {
    fn sequence(&mut self, position: u64, with_segments: bool) -> syne_data::Result<PackedSequence> {
        Ok(if with_segments {
            let (tokens, segments) = self.sequence_with_segments(position);
            PackedSequence { tokens, segments }
        } else {
            PackedSequence { tokens: TokenStream::sequence(self, position), segments: Vec::new() }
        })
    }
}

/// Counters saved in every checkpoint (`trainer.json`).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct TrainState {
    /// Optimizer steps done.
    pub step: u64,
    /// Tokens trained.
    pub tokens: u64,
    /// Sequences consumed (the data position).
    pub position: u64,
    /// AdamW's step counter (its bias correction).
    pub adam_step: u64,
}

fn ckpt_err(path: &Path, detail: impl Into<String>) -> TrainError {
    TrainError::Checkpoint { path: path.to_path_buf(), detail: detail.into() }
}

/// Complete checkpoints of a run, oldest first.
pub fn checkpoints(out: &Path) -> Vec<PathBuf> {
    let dir = out.join("checkpoints");
    let mut v: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map(|r| r.flatten().map(|e| e.path()).filter(|p| p.join("trainer.json").exists() && !p.to_string_lossy().ends_with(".partial")).collect())
        .unwrap_or_default();
    v.sort();
    v
}

fn save_checkpoint(
    model: &Llama,
    opt: &AdamW,
    state: &TrainState,
    data: &dyn SequenceSource,
    out: &Path,
    keep: usize,
    tokenizer: Option<&TextTokenizer>,
) -> Result<PathBuf> {
    let dir = out.join("checkpoints").join(format!("step-{:09}", state.step));
    let tmp = syne_data::io::partial_path(&dir);
    // The model goes through save_hf (its own .partial + rename) into the temporary folder.
    model.save_hf(&tmp.join("model"), tokenizer)?;
    let st = tmp.join("optimizer.safetensors");
    let named: Vec<(String, Tensor)> = opt.state().into_iter().map(|(k, v)| (k, v.to_device(Device::Cpu))).collect();
    Tensor::write_safetensors(&named, &st).map_err(|e| ckpt_err(&st, e.to_string()))?;
    let dj = tmp.join("data.json");
    std::fs::write(&dj, serde_json::to_vec_pretty(&data.state()).expect("json")).map_err(|e| ckpt_err(&dj, e.to_string()))?;
    // trainer.json last: its presence marks the checkpoint complete.
    let tj = tmp.join("trainer.json");
    std::fs::write(&tj, serde_json::to_vec_pretty(state).expect("json")).map_err(|e| ckpt_err(&tj, e.to_string()))?;
    if dir.exists() {
        std::fs::remove_dir_all(&dir).map_err(|e| ckpt_err(&dir, e.to_string()))?;
    }
    std::fs::rename(&tmp, &dir).map_err(|e| ckpt_err(&dir, e.to_string()))?;
    let all = checkpoints(out);
    for old in &all[..all.len().saturating_sub(keep)] {
        std::fs::remove_dir_all(old).map_err(|e| ckpt_err(old, e.to_string()))?;
    }
    Ok(dir)
}

/// One optimizer step: `global_batch_tokens` from `data` at `state.position` in micro-batches
/// (gradient accumulation), clipping, AdamW at the schedule's learning rate; advances `state`.
/// Fails on a non-finite loss before touching the weights.
pub fn train_step(
    model: &Llama,
    opt: &mut AdamW,
    data: &mut dyn SequenceSource,
    state: &mut TrainState,
    cfg: &TrainSettings,
    device: Device,
) -> Result<StepMetrics> {
    let started = Instant::now();
    let micro_tokens = (cfg.micro_batch * cfg.seq_len) as u64;
    let accum = cfg.global_batch_tokens / micro_tokens;
    let (b, t) = (cfg.micro_batch as i64, cfg.seq_len as i64);
    opt.zero_grad();
    let mut loss_sum = 0.0;
    for _ in 0..accum {
        let mut ids = Vec::with_capacity(cfg.micro_batch * (cfg.seq_len + 1));
        let mut segments = Vec::new();
        for _ in 0..cfg.micro_batch {
            let seq = data.sequence(state.position, cfg.doc_masking)?;
            if seq.tokens.len() != cfg.seq_len + 1 || (cfg.doc_masking && seq.segments.len() != cfg.seq_len + 1) {
                return Err(TrainError::Config {
                    path: cfg.out.clone(),
                    detail: format!("the data source returned {} tokens at position {}, expected {}", seq.tokens.len(), state.position, cfg.seq_len + 1),
                });
            }
            ids.extend(seq.tokens);
            segments.extend(seq.segments);
            state.position += 1;
        }
        let ids = Tensor::from_slice(&ids).view([b, t + 1]).to_device(device);
        let attention = if cfg.doc_masking {
            Attention::Packed { segments: Tensor::from_slice(&segments).view([b, t + 1]).narrow(1, 0, t).to_device(device) }
        } else {
            Attention::Causal
        };
        loss_sum += model.loss_backward(&ids.narrow(1, 0, t), &ids.narrow(1, 1, t), &attention, 1.0 / accum as f64, cfg.activation_checkpointing);
    }
    let loss = loss_sum / accum as f64;
    if !loss.is_finite() {
        return Err(TrainError::NonFinite { step: state.step + 1, tokens: state.tokens, loss });
    }
    let grad_norm = opt.clip_grad_norm(cfg.clip);
    let lr = cfg.schedule.lr(state.tokens);
    opt.step(lr).map_err(|detail| TrainError::Optimizer { step: state.step + 1, detail })?;
    state.step += 1;
    state.adam_step = opt.step;
    state.tokens += cfg.global_batch_tokens;
    Ok(StepMetrics {
        step: state.step,
        tokens: state.tokens,
        loss,
        lr,
        grad_norm,
        tokens_per_s: cfg.global_batch_tokens as f64 / started.elapsed().as_secs_f64(),
    })
}

/// Receives what a run reports: every optimizer step, and every validation (with the per-topic
/// losses the topic mixture re-weights by). Both methods do nothing by default.
pub trait TrainObserver {
    /// After every optimizer step.
    fn on_step(&mut self, _metrics: &StepMetrics) {}
    /// After every validation.
    fn on_validation(&mut self, _report: &ValidationReport) {}
}

/// An observer that ignores everything.
pub struct NoObserver;

impl TrainObserver for NoObserver {}

/// Keep the JSON lines of `path` whose `step` is at most `step` (what a resumed run redoes
/// after that is appended again).
fn truncate_log_after(path: &Path, step: u64) -> Result<()> {
    #[derive(Deserialize)]
    struct Step {
        step: u64,
    }
    if let Ok(text) = std::fs::read_to_string(path) {
        let kept: String = text.lines().filter(|l| serde_json::from_str::<Step>(l).is_ok_and(|m| m.step <= step)).map(|l| format!("{l}\n")).collect();
        syne_data::io::write_atomic(path, kept.as_bytes())?;
    }
    Ok(())
}

fn append_line<T: Serialize>(file: &mut std::fs::File, path: &Path, value: &T) -> Result<()> {
    let mut line = serde_json::to_vec(value).expect("json");
    line.push(b'\n');
    file.write_all(&line).map_err(|e| ckpt_err(path, e.to_string()))
}

fn open_append(path: &Path) -> Result<std::fs::File> {
    std::fs::OpenOptions::new().create(true).append(true).open(path).map_err(|e| ckpt_err(path, e.to_string()))
}

/// The tokenizer of the run: the configured one, else the model's own when it has one.
fn run_tokenizer(cfg: &TrainSettings) -> Result<Option<TextTokenizer>> {
    let path = cfg.tokenizer.clone().unwrap_or_else(|| cfg.model.clone());
    if cfg.tokenizer.is_none() && path.is_dir() && !path.join("tokenizer.json").exists() {
        if !cfg.validation.is_empty() {
            return Err(TrainError::Config {
                path: path.clone(),
                detail: "validation needs a tokenizer: the model folder has no tokenizer.json; set train.tokenizer".into(),
            });
        }
        return Ok(None);
    }
    Ok(Some(TextTokenizer::load(&path)?))
}

/// Run (or, with `resume`, continue) training as `cfg` says on the shards of `cfg.data`;
/// `observer` sees every step's metrics (for a progress bar) and every validation. Returns the
/// final state; the final weights are in `OUT/final` (HF layout, with the tokenizer when there
/// is one).
pub fn train(cfg: &TrainSettings, resume: bool, device: Device, observer: &mut dyn TrainObserver) -> Result<TrainState> {
    let mut data = TokenStream::open(&cfg.data, cfg.seq_len, cfg.seed)?;
    let vocab = syne_model::llama::LlamaConfig::read(&cfg.model)?.vocab_size;
    if data.shards.iter().any(|s| {
        let t = s.tokens();
        (0..t.len()).any(|i| t.get(i) as usize >= vocab)
    }) {
        return Err(TrainError::Config { path: cfg.data[0].clone(), detail: format!("token ids reach beyond the model's vocabulary of {vocab}") });
    }
    train_on(cfg, resume, device, observer, &mut data)
}

/// [`train`] on any [`SequenceSource`] (`cfg.data` is not read): the mixture sampler of a
/// recipe run. The source's state is saved in every checkpoint (`data.json`) and restored on
/// resume; what it reports at validations is logged to `OUT/mixture.jsonl`. A source with a plan
/// must be consumed exactly: `total_tokens` must equal its sequences x `seq_len`. The caller
/// checks that the source's token ids fit the model's vocabulary.
pub fn train_on(cfg: &TrainSettings, resume: bool, device: Device, observer: &mut dyn TrainObserver, data: &mut dyn SequenceSource) -> Result<TrainState> {
    let out = &cfg.out;
    if let Some(n) = data.planned_sequences() {
        if n * cfg.seq_len as u64 != cfg.total_tokens || !cfg.total_tokens.is_multiple_of(cfg.global_batch_tokens) {
            return Err(TrainError::Config {
                path: out.clone(),
                detail: format!(
                    "the data plan holds {n} sequences of {} tokens ({} tokens) but train.total_tokens is {}; it must equal the plan and be a multiple of global_batch_tokens ({})",
                    cfg.seq_len,
                    n * cfg.seq_len as u64,
                    cfg.total_tokens,
                    cfg.global_batch_tokens
                ),
            });
        }
    }
    std::fs::create_dir_all(out.join("checkpoints")).map_err(|e| ckpt_err(out, e.to_string()))?;
    // A checkpoint a killed run was writing is incomplete: remove it.
    for e in std::fs::read_dir(out.join("checkpoints")).map_err(|e| ckpt_err(out, e.to_string()))?.flatten() {
        if e.path().to_string_lossy().ends_with(".partial") {
            std::fs::remove_dir_all(e.path()).map_err(|x| ckpt_err(&e.path(), x.to_string()))?;
        }
    }
    let mut model = Llama::load(&cfg.model, device)?;
    model.set_precision(cfg.precision.unwrap_or(if device.is_cuda() { Precision::Bf16 } else { Precision::F32 }));
    let tokenizer = run_tokenizer(cfg)?;
    let vocab = model.config.vocab_size;
    let mut val_sets = Vec::new();
    for v in &cfg.validation {
        let set = LoadedSet::load(v, tokenizer.as_ref().expect("run_tokenizer returns one when validating"))?;
        if set.max_token().is_some_and(|t| t as usize >= vocab) {
            return Err(TrainError::Config { path: v.path.clone(), detail: format!("the tokenizer yields ids beyond the model's vocabulary of {vocab}") });
        }
        val_sets.push(set);
    }
    let mut opt = AdamW::new(model.vs.variables(), cfg.optimizer.clone());
    let mut state = TrainState::default();
    let metrics_path = out.join("metrics.jsonl");
    let validation_path = out.join("validation.jsonl");
    let mixture_path = out.join("mixture.jsonl");
    let logs = [&metrics_path, &validation_path, &mixture_path];
    if resume && checkpoints(out).is_empty() {
        // Nothing to resume from: start over (dropping logs of a run killed before its first
        // checkpoint).
        logs.iter().for_each(|p| drop(std::fs::remove_file(p)));
    }
    if resume {
        if let Some(last) = checkpoints(out).pop() {
            let tj = last.join("trainer.json");
            state = serde_json::from_slice(&std::fs::read(&tj).map_err(|e| ckpt_err(&tj, e.to_string()))?).map_err(|e| ckpt_err(&tj, e.to_string()))?;
            let weights = Tensor::read_safetensors(last.join("model/model.safetensors")).map_err(|e| ckpt_err(&last, e.to_string()))?;
            model.load_named(&weights, &last)?;
            let st = Tensor::read_safetensors(last.join("optimizer.safetensors")).map_err(|e| ckpt_err(&last, e.to_string()))?;
            opt.load_state(&st, state.adam_step).map_err(|e| ckpt_err(&last, e))?;
            let dj = last.join("data.json");
            let data_state: Option<MixtureState> = match std::fs::read(&dj) {
                Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| ckpt_err(&dj, e.to_string()))?,
                Err(_) => None,
            };
            data.restore(state.position, data_state.as_ref()).map_err(|e| ckpt_err(&dj, e.to_string()))?;
            // Drop log lines of steps after the checkpoint: they are about to be redone.
            for p in logs {
                truncate_log_after(p, state.step)?;
            }
        }
    } else if !checkpoints(out).is_empty() {
        return Err(ckpt_err(out, "holds checkpoints of an earlier run: pass --resume to continue it, or use another out folder"));
    } else {
        logs.iter().for_each(|p| drop(std::fs::remove_file(p)));
    }
    let mut metrics = open_append(&metrics_path)?;
    let mut validation_log = open_append(&validation_path)?;
    let mut mixture_log = open_append(&mixture_path)?;
    let mut validate = |model: &Llama, state: &TrainState, observer: &mut dyn TrainObserver, data: &mut dyn SequenceSource| -> Result<()> {
        if val_sets.is_empty() {
            return Ok(());
        }
        let batch_tokens = (cfg.micro_batch * cfg.seq_len).max(cfg.seq_len * 2);
        let report = ValidationReport {
            step: state.step,
            tokens: state.tokens,
            domains: val_sets.iter().map(|s| s.evaluate(model, cfg.seq_len, batch_tokens)).collect(),
        };
        append_line(&mut validation_log, &validation_path, &report)?;
        observer.on_validation(&report);
        let event = data.observe_validation(state.tokens, &report.mixture_losses())?;
        if !event.is_empty() {
            append_line(&mut mixture_log, &mixture_path, &MixtureLogLine { step: state.step, tokens: state.tokens, event })?;
        }
        Ok(())
    };
    if state.step == 0 {
        validate(&model, &state, observer, data)?;
    }
    while state.tokens < cfg.total_tokens {
        let before = state.tokens;
        let m = train_step(&model, &mut opt, data, &mut state, cfg, device)?;
        append_line(&mut metrics, &metrics_path, &m)?;
        observer.on_step(&m);
        let finished = state.tokens >= cfg.total_tokens;
        // Validate before checkpointing: a run killed in between redoes both on resume.
        if let Some(every) = cfg.validate_every_tokens {
            if before / every != state.tokens / every || finished {
                validate(&model, &state, observer, data)?;
            }
        } else if finished {
            validate(&model, &state, observer, data)?;
        }
        let every = cfg.checkpoint_every_tokens;
        if before / every != state.tokens / every || finished {
            save_checkpoint(&model, &opt, &state, data, out, cfg.keep_checkpoints, tokenizer.as_ref())?;
        }
    }
    model.save_hf(&out.join("final"), tokenizer.as_ref())?;
    Ok(state)
}

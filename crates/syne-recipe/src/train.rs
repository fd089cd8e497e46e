//! `[train]`: the trainer's settings (syne-train runs them): model, shapes, batch, learning-rate
//! schedule, AdamW, clipping, checkpoints, validation. `syne run` fills `data`, `out` and
//! `total_tokens` from the recipe; a `syne train` file gives them itself.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::prepare::clean_path;

/// Arithmetic of the forward pass. Parameters (and optimizer state) stay f32 masters either way.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    /// Everything in f32.
    #[default]
    F32,
    /// Matrix products and attention in bf16 with f32 accumulation; norms, residual stream,
    /// softmax of the loss and the weights in f32 (the `torch.autocast(bfloat16)` recipe).
    Bf16,
}

/// AdamW hyper-parameters (a `[train.optimizer]` table may give any subset; the rest default).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdamWConfig {
    /// First-moment decay.
    pub beta1: f64,
    /// Second-moment decay.
    pub beta2: f64,
    /// Denominator epsilon.
    pub eps: f64,
    /// Decoupled weight decay.
    pub weight_decay: f64,
    /// Parameters whose name contains any of these get no weight decay (norms, biases, ...).
    pub no_decay: Vec<String>,
}

impl Default for AdamWConfig {
    /// The paper's betas (0.9, 0.95), weight decay 0.1, none on norm weights and biases.
    fn default() -> Self {
        AdamWConfig { beta1: 0.9, beta2: 0.95, eps: 1e-8, weight_decay: 0.1, no_decay: vec!["norm".into(), "bias".into()] }
    }
}

/// One `[[train.validation]]` table: a held-out domain scored before training, every
/// `validate_every_tokens` and at the end.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ValidationSet {
    /// Domain name in the metrics (e.g. "zh", "en").
    pub name: String,
    /// Corpus file of held-out documents.
    pub path: PathBuf,
    /// Documents read from the start of the file.
    #[serde(default = "default_max_docs")]
    pub max_docs: usize,
    /// The records' text field.
    #[serde(default = "default_text_field")]
    pub text_field: String,
    /// Field with each document's topic label, for per-topic losses.
    #[serde(default)]
    pub topic_field: Option<String>,
    /// Score only each document's first `max_chars` characters (all when absent): long
    /// documentation pages otherwise dominate the cost of every validation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_chars: Option<usize>,
}

fn default_max_docs() -> usize {
    200
}

fn default_text_field() -> String {
    "text".into()
}

/// The `[train]` table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainSettings {
    /// Initial model: a llama GGUF or an HF folder.
    pub model: PathBuf,
    /// Output folders of `syne prepare` and/or shard base paths (`X` for `X.bin` + `X.idx`);
    /// `syne run` trains on its mixture instead and refuses this key.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub data: Vec<PathBuf>,
    /// Run folder: metrics.jsonl, checkpoints/, final/ (`syne run` sets it: RUN/train).
    #[serde(default)]
    pub out: PathBuf,
    /// Tokens per training sequence.
    pub seq_len: usize,
    /// Sequences per forward pass.
    pub micro_batch: usize,
    /// Tokens per optimizer step (a multiple of micro_batch x seq_len).
    pub global_batch_tokens: u64,
    /// Tokens of the whole run (`syne run`: the stages' total, which a recipe may only repeat).
    #[serde(default)]
    pub total_tokens: u64,
    /// The learning rate over tokens.
    pub schedule: LrSchedule,
    /// AdamW's hyper-parameters.
    #[serde(default)]
    pub optimizer: AdamWConfig,
    /// Global gradient-norm clip (the paper: 1.0).
    #[serde(default)]
    pub clip: Option<f64>,
    /// Tokens between checkpoints.
    pub checkpoint_every_tokens: u64,
    /// Checkpoints kept (older ones are removed).
    #[serde(default = "default_keep")]
    pub keep_checkpoints: usize,
    /// Seed of the data order and of everything random in training.
    #[serde(default)]
    pub seed: u64,
    /// Attend only within each packed document and restart positions at its first token
    /// (documents come from the shard index).
    #[serde(default)]
    pub doc_masking: bool,
    /// Recompute each layer's activations in the backward pass instead of keeping them.
    #[serde(default)]
    pub activation_checkpointing: bool,
    /// "f32" or "bf16" (default: bf16 on a GPU, f32 on the CPU).
    #[serde(default)]
    pub precision: Option<Precision>,
    /// Tokenizer for validation texts and for the saved folders (default: the model's own,
    /// from the GGUF metadata or the HF folder's tokenizer.json).
    #[serde(default)]
    pub tokenizer: Option<PathBuf>,
    /// Held-out domains scored before training, every `validate_every_tokens` and at the end.
    #[serde(default)]
    pub validation: Vec<ValidationSet>,
    /// Tokens between validations (`syne run`: the topic interval when not given).
    #[serde(default)]
    pub validate_every_tokens: Option<u64>,
}

fn default_keep() -> usize {
    2
}

impl TrainSettings {
    /// Relative paths anchored at `base` (the file's folder).
    pub fn resolve(&mut self, base: &Path) {
        self.model = clean_path(&base.join(&self.model));
        if !self.out.as_os_str().is_empty() {
            self.out = clean_path(&base.join(&self.out));
        }
        self.data = self.data.iter().map(|d| clean_path(&base.join(d))).collect();
        self.tokenizer = self.tokenizer.as_ref().map(|t| clean_path(&base.join(t)));
        for v in &mut self.validation {
            v.path = clean_path(&base.join(&v.path));
        }
    }

    /// Checks that need no files; `Err((key, detail))` names the key.
    pub fn check(&self) -> Result<(), (String, String)> {
        let err = |k: &str, d: String| Err((format!("train.{k}"), d));
        if self.validate_every_tokens == Some(0) {
            return err("validate_every_tokens", "must be positive".into());
        }
        let mut names = HashSet::new();
        if let Some(v) = self.validation.iter().find(|v| !names.insert(v.name.clone())) {
            return err("validation", format!("the name `{}` is used twice", v.name));
        }
        let per_micro = (self.micro_batch * self.seq_len) as u64;
        if self.seq_len < 2 || self.micro_batch == 0 || per_micro == 0 || !self.global_batch_tokens.is_multiple_of(per_micro) {
            return err("global_batch_tokens", format!("({}) must be a positive multiple of micro_batch x seq_len ({per_micro})", self.global_batch_tokens));
        }
        if self.checkpoint_every_tokens == 0 {
            return err("checkpoint_every_tokens", "must be positive".into());
        }
        if self.keep_checkpoints == 0 {
            return err("keep_checkpoints", "must be positive".into());
        }
        if let Some(c) = self.clip {
            if !(c.is_finite() && c > 0.0) {
                return err("clip", format!("{c}: must be a positive number"));
            }
        }
        Ok(())
    }
}

/// A schedule; `lr(tokens)` gives the learning rate after `tokens` training tokens.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum LrSchedule {
    /// Linear warmup from 0, then constant.
    Constant {
        /// The learning rate after warmup.
        peak: f64,
        /// Tokens of linear warmup.
        warmup_tokens: u64,
    },
    /// Linear warmup, then cosine decay to `floor` at `total_tokens`.
    Cosine {
        /// The learning rate after warmup.
        peak: f64,
        /// Tokens of linear warmup.
        warmup_tokens: u64,
        /// Where the decay reaches `floor`.
        total_tokens: u64,
        /// The final learning rate.
        floor: f64,
    },
    /// Warmup-stable-decay (the paper's): warmup, constant, then a linear decay over the last
    /// `decay_fraction` of `total_tokens` down to `floor`.
    WarmupStableDecay {
        /// The learning rate after warmup.
        peak: f64,
        /// Tokens of linear warmup.
        warmup_tokens: u64,
        /// Where the decay reaches `floor`.
        total_tokens: u64,
        /// The share of `total_tokens` the decay takes.
        decay_fraction: f64,
        /// The final learning rate.
        floor: f64,
    },
}

fn warm(peak: f64, warmup: u64, t: u64) -> Option<f64> {
    (t < warmup).then(|| peak * (t + 1) as f64 / warmup as f64)
}

impl LrSchedule {
    /// The learning rate after warmup.
    pub fn peak(&self) -> f64 {
        match *self {
            LrSchedule::Constant { peak, .. } | LrSchedule::Cosine { peak, .. } | LrSchedule::WarmupStableDecay { peak, .. } => peak,
        }
    }

    /// Tokens of linear warmup.
    pub fn warmup_tokens(&self) -> u64 {
        match *self {
            LrSchedule::Constant { warmup_tokens, .. } | LrSchedule::Cosine { warmup_tokens, .. } | LrSchedule::WarmupStableDecay { warmup_tokens, .. } => {
                warmup_tokens
            }
        }
    }

    /// The learning rate after `tokens` training tokens.
    pub fn lr(&self, tokens: u64) -> f64 {
        match *self {
            LrSchedule::Constant { peak, warmup_tokens } => warm(peak, warmup_tokens, tokens).unwrap_or(peak),
            LrSchedule::Cosine { peak, warmup_tokens, total_tokens, floor } => warm(peak, warmup_tokens, tokens).unwrap_or_else(|| {
                let span = total_tokens.saturating_sub(warmup_tokens).max(1) as f64;
                let p = ((tokens - warmup_tokens) as f64 / span).min(1.0);
                floor + 0.5 * (peak - floor) * (1.0 + (std::f64::consts::PI * p).cos())
            }),
            LrSchedule::WarmupStableDecay { peak, warmup_tokens, total_tokens, decay_fraction, floor } => {
                warm(peak, warmup_tokens, tokens).unwrap_or_else(|| {
                    let decay_start = (total_tokens as f64 * (1.0 - decay_fraction.clamp(0.0, 1.0))) as u64;
                    if tokens < decay_start {
                        peak
                    } else {
                        let span = total_tokens.saturating_sub(decay_start).max(1) as f64;
                        let p = ((tokens - decay_start) as f64 / span).min(1.0);
                        peak + (floor - peak) * p
                    }
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constant_with_warmup() {
        let s = LrSchedule::Constant { peak: 1e-3, warmup_tokens: 4 };
        assert_eq!(s.lr(0), 2.5e-4);
        assert_eq!(s.lr(3), 1e-3);
        assert_eq!(s.lr(1_000_000), 1e-3);
    }

    #[test]
    fn cosine_reaches_floor_and_stays() {
        let s = LrSchedule::Cosine { peak: 1.0, warmup_tokens: 10, total_tokens: 110, floor: 0.1 };
        assert_eq!(s.lr(10), 1.0);
        assert!((s.lr(60) - 0.55).abs() < 1e-12, "midpoint is halfway between peak and floor");
        assert!((s.lr(110) - 0.1).abs() < 1e-12);
        assert!((s.lr(500) - 0.1).abs() < 1e-12);
    }

    #[test]
    fn warmup_stable_decay_shape() {
        let s = LrSchedule::WarmupStableDecay { peak: 1.0, warmup_tokens: 10, total_tokens: 100, decay_fraction: 0.2, floor: 0.0 };
        assert_eq!(s.lr(5), 0.6);
        assert_eq!(s.lr(50), 1.0);
        assert_eq!(s.lr(79), 1.0);
        assert!((s.lr(90) - 0.5).abs() < 1e-12);
        assert_eq!(s.lr(100), 0.0);
        // Without decay it is warmup + constant.
        let flat = LrSchedule::WarmupStableDecay { peak: 1.0, warmup_tokens: 0, total_tokens: 100, decay_fraction: 0.0, floor: 0.0 };
        assert_eq!(flat.lr(99), 1.0);
    }
}

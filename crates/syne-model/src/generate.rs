//! Text generation with a KV cache: greedy or sampled (temperature, top-k, top-p), repetition
//! penalty, stop strings, end-of-sequence tokens and a token limit, for a batch of prompts.
//!
//! Prompts of different lengths are left-padded into one batch; padding is masked out of the
//! attention and positions count from each prompt's first real token, so a prompt's completion
//! does not depend on its batch-mates (tested against one-at-a-time decoding). Sequences that
//! finish leave the batch (their cache rows are dropped), so a long completion does not make the
//! short ones pay. Sampling draws from one seeded generator per prompt, so results are
//! reproducible and independent of batching. The logits processors follow `transformers`'
//! order and definitions: repetition penalty, then temperature, top-k, top-p.

use serde::{Deserialize, Serialize};
use syne_data::text::splitmix64;
use syne_data::tokenizer::TextTokenizer;
use tch::{Device, Kind, Tensor};

use crate::error::{ModelError, Result};
use crate::llama::KvCache;
use crate::lm::LanguageModel;

/// Decoding settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SamplingConfig {
    /// Tokens to generate at most per prompt.
    pub max_new_tokens: usize,
    /// 0 = greedy (argmax); otherwise logits are divided by it before sampling.
    pub temperature: f64,
    /// Keep the k most likely tokens (0 = all).
    pub top_k: usize,
    /// Keep the smallest set of most likely tokens whose probability reaches p (1 = all).
    pub top_p: f64,
    /// `transformers`' repetition penalty over prompt and completion tokens (1 = none).
    pub repetition_penalty: f64,
    /// Stop when the completion contains one of these; the text is cut before it.
    pub stop: Vec<String>,
    /// Stop at the model's end-of-sequence token(s).
    pub stop_at_eos: bool,
    /// Sampling seed (unused by greedy decoding).
    pub seed: u64,
}

impl Default for SamplingConfig {
    fn default() -> Self {
        SamplingConfig { max_new_tokens: 128, temperature: 0.0, top_k: 0, top_p: 1.0, repetition_penalty: 1.0, stop: Vec::new(), stop_at_eos: true, seed: 0 }
    }
}

impl SamplingConfig {
    /// Reject settings that cannot mean anything, naming the setting.
    pub fn validate(&self) -> std::result::Result<(), String> {
        if !(self.temperature >= 0.0 && self.temperature.is_finite()) {
            return Err(format!("temperature must be a finite number >= 0, got {}", self.temperature));
        }
        if !(self.top_p > 0.0 && self.top_p <= 1.0) {
            return Err(format!("top_p must be in (0, 1], got {}", self.top_p));
        }
        if !(self.repetition_penalty > 0.0 && self.repetition_penalty.is_finite()) {
            return Err(format!("repetition_penalty must be a finite number > 0, got {}", self.repetition_penalty));
        }
        if self.stop.iter().any(String::is_empty) {
            return Err("stop strings must not be empty".into());
        }
        Ok(())
    }
}

/// Why a completion ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FinishReason {
    /// A stop string appeared.
    Stop,
    /// The end-of-sequence token was generated.
    Eos,
    /// `max_new_tokens` were generated.
    Length,
}

/// One prompt's completion.
#[derive(Debug, Clone, Serialize)]
pub struct Completion {
    /// Generated token ids (including a final EOS or the tokens of a stop string).
    pub tokens: Vec<u32>,
    /// Decoded completion, cut before the stop string (without the EOS token).
    pub text: String,
    /// Why decoding stopped.
    pub finish: FinishReason,
}

/// Generate a completion for each prompt (token ids, non-empty) in one batch.
pub fn generate(model: &impl LanguageModel, tok: &TextTokenizer, prompts: &[Vec<u32>], cfg: &SamplingConfig) -> Result<Vec<Completion>> {
    generate_at(model, tok, prompts, 0, cfg)
}

/// [`generate`] for prompts `first..first + prompts.len()` of a longer list: prompt `i` samples
/// from the stream of `(cfg.seed, i)`, so a list's completions do not depend on how it is cut
/// into batches.
pub fn generate_at(model: &impl LanguageModel, tok: &TextTokenizer, prompts: &[Vec<u32>], first: u64, cfg: &SamplingConfig) -> Result<Vec<Completion>> {
    let seeds: Vec<u64> = (0..prompts.len() as u64).map(|i| cfg.seed ^ (first + i).wrapping_mul(0x9E37_79B9_7F4A_7C15)).collect();
    generate_seeded(model, tok, prompts, &seeds, cfg)
}

/// [`generate`] with a sampling seed per prompt (`cfg.seed` unused): prompt `i` samples from the
/// stream of `seeds[i]`, as it would alone with `cfg.seed = seeds[i]` — how independent requests
/// (each with its own seed) share one batch.
pub fn generate_seeded(model: &impl LanguageModel, tok: &TextTokenizer, prompts: &[Vec<u32>], seeds: &[u64], cfg: &SamplingConfig) -> Result<Vec<Completion>> {
    let bad = |detail: String| ModelError::Config { path: tok.path().to_path_buf(), detail };
    cfg.validate().map_err(bad)?;
    if let Some(i) = prompts.iter().position(Vec::is_empty) {
        return Err(bad(format!("prompt {i} is empty: generation needs at least one token")));
    }
    let vocab = model.vocab_size();
    if let Some(t) = prompts.iter().flatten().find(|&&t| t as usize >= vocab) {
        return Err(bad(format!("prompt token {t} is outside the model's vocabulary of {vocab}")));
    }
    let eos: Vec<u32> = if cfg.stop_at_eos { tok.eos_id().into_iter().collect() } else { Vec::new() };
    let mut out: Vec<Option<Completion>> = vec![None; prompts.len()];
    if prompts.is_empty() {
        return Ok(Vec::new());
    }
    let device = model.device();
    let b = prompts.len();
    let width = prompts.iter().map(Vec::len).max().unwrap_or(0);
    // Left padding: row r's real tokens occupy the last len_r columns.
    let mut ids = vec![0i64; b * width];
    let mut positions = vec![0i64; b * width];
    // key_valid[r][c]: whether cached position c of row r is a real token.
    let mut key_valid: Vec<Vec<bool>> = Vec::with_capacity(b);
    for (r, p) in prompts.iter().enumerate() {
        let pad = width - p.len();
        for (c, &t) in p.iter().enumerate() {
            ids[r * width + pad + c] = i64::from(t);
            positions[r * width + pad + c] = c as i64;
        }
        key_valid.push((0..width).map(|c| c >= pad).collect());
    }
    let w = width as i64;
    let mut mask = vec![false; b * width * width];
    for (r, valid) in key_valid.iter().enumerate() {
        for q in 0..width {
            for k in 0..=q {
                // A padding query attends to itself only, so no row of the softmax is empty
                // (an all-masked row would give NaN, and 0 x NaN poisons real rows).
                mask[(r * width + q) * width + k] = (valid[k] && valid[q]) || k == q;
            }
        }
    }
    let mut cache = KvCache::new();
    let logits = tch::no_grad(|| {
        model.logits_cached(
            &Tensor::from_slice(&ids).view([b as i64, w]).to_device(device),
            &Tensor::from_slice(&positions).view([b as i64, w]).to_device(device),
            &Tensor::from_slice(&mask).view([b as i64, 1, w, w]).to_device(device),
            &mut cache,
        )
    });
    let mut last = logits.select(1, w - 1);
    let mut active: Vec<usize> = (0..b).collect();
    let mut history: Vec<Vec<u32>> = prompts.to_vec();
    let mut generated: Vec<Vec<u32>> = vec![Vec::new(); b];
    let mut next_pos: Vec<i64> = prompts.iter().map(|p| p.len() as i64).collect();
    if seeds.len() != b {
        return Err(bad(format!("{} seeds for {b} prompts", seeds.len())));
    }
    let mut rngs: Vec<u64> = seeds.to_vec();
    for step in 0..cfg.max_new_tokens {
        let host = Vec::<f32>::try_from(last.to_kind(Kind::Float).to_device(Device::Cpu).reshape([-1])).expect("logits");
        let mut keep = Vec::with_capacity(active.len());
        let mut chosen = Vec::with_capacity(active.len());
        for (j, &r) in active.iter().enumerate() {
            let mut row = host[j * vocab..(j + 1) * vocab].to_vec();
            let t = choose(&mut row, &history[r], cfg, &mut rngs[r]);
            history[r].push(t);
            generated[r].push(t);
            let finish = if eos.contains(&t) {
                let text = tok.decode(&generated[r][..generated[r].len() - 1])?;
                Some((FinishReason::Eos, text))
            } else if !cfg.stop.is_empty() {
                let text = tok.decode(&generated[r])?;
                match cfg.stop.iter().filter_map(|s| text.find(s.as_str())).min() {
                    Some(cut) => Some((FinishReason::Stop, text[..cut].to_string())),
                    None if step + 1 == cfg.max_new_tokens => Some((FinishReason::Length, text)),
                    None => None,
                }
            } else if step + 1 == cfg.max_new_tokens {
                Some((FinishReason::Length, tok.decode(&generated[r])?))
            } else {
                None
            };
            match finish {
                Some((finish, text)) => out[r] = Some(Completion { tokens: std::mem::take(&mut generated[r]), text, finish }),
                None => {
                    keep.push(j as i64);
                    chosen.push(i64::from(t));
                }
            }
        }
        if keep.is_empty() {
            break;
        }
        if keep.len() < active.len() {
            cache.select_rows(&Tensor::from_slice(&keep).to_device(device));
            let kept: Vec<usize> = keep.iter().map(|&j| active[j as usize]).collect();
            key_valid = keep.iter().map(|&j| std::mem::take(&mut key_valid[j as usize])).collect();
            active = kept;
        }
        let k = active.len() as i64;
        let pos: Vec<i64> = active.iter().map(|&r| next_pos[r]).collect();
        for v in key_valid.iter_mut() {
            v.push(true);
        }
        let total = key_valid[0].len() as i64;
        let m: Vec<bool> = key_valid.iter().flatten().copied().collect();
        let logits = tch::no_grad(|| {
            model.logits_cached(
                &Tensor::from_slice(&chosen).view([k, 1]).to_device(device),
                &Tensor::from_slice(&pos).view([k, 1]).to_device(device),
                &Tensor::from_slice(&m).view([k, 1, 1, total]).to_device(device),
                &mut cache,
            )
        });
        for &r in &active {
            next_pos[r] += 1;
        }
        last = logits.select(1, 0);
    }
    // max_new_tokens = 0: nothing generated.
    for (r, o) in out.iter_mut().enumerate() {
        if o.is_none() {
            *o = Some(Completion { tokens: std::mem::take(&mut generated[r]), text: String::new(), finish: FinishReason::Length });
        }
    }
    Ok(out.into_iter().map(|o| o.expect("every prompt finished")).collect())
}

/// Pick the next token from one row of logits.
fn choose(logits: &mut [f32], history: &[u32], cfg: &SamplingConfig, rng: &mut u64) -> u32 {
    if cfg.repetition_penalty != 1.0 {
        let p = cfg.repetition_penalty as f32;
        let mut seen = history.to_vec();
        seen.sort_unstable();
        seen.dedup();
        for t in seen {
            let l = &mut logits[t as usize];
            *l = if *l < 0.0 { *l * p } else { *l / p };
        }
    }
    if cfg.temperature == 0.0 {
        // The first maximum, as torch.argmax.
        let mut best = 0;
        for (i, &l) in logits.iter().enumerate() {
            if l > logits[best] {
                best = i;
            }
        }
        return best as u32;
    }
    let inv_t = 1.0 / cfg.temperature;
    let mut order: Vec<u32> = (0..logits.len() as u32).collect();
    let by_logit = |a: &u32, b: &u32| logits[*b as usize].total_cmp(&logits[*a as usize]).then(a.cmp(b));
    if cfg.top_k > 0 && cfg.top_k < order.len() {
        order.select_nth_unstable_by(cfg.top_k - 1, by_logit);
        order.truncate(cfg.top_k);
    }
    order.sort_unstable_by(by_logit);
    let top = f64::from(logits[order[0] as usize]) * inv_t;
    let mut probs: Vec<f64> = order.iter().map(|&i| (f64::from(logits[i as usize]) * inv_t - top).exp()).collect();
    let sum: f64 = probs.iter().sum();
    probs.iter_mut().for_each(|p| *p /= sum);
    if cfg.top_p < 1.0 {
        let mut cum = 0.0;
        let mut n = 0;
        while n < probs.len() {
            cum += probs[n];
            n += 1;
            if cum >= cfg.top_p {
                break;
            }
        }
        probs.truncate(n);
        let kept: f64 = probs.iter().sum();
        probs.iter_mut().for_each(|p| *p /= kept);
    }
    let u = (splitmix64(rng) >> 11) as f64 / (1u64 << 53) as f64;
    let mut cum = 0.0;
    for (k, p) in probs.iter().enumerate() {
        cum += p;
        if u < cum {
            return order[k];
        }
    }
    order[probs.len() - 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(temperature: f64, top_k: usize, top_p: f64) -> SamplingConfig {
        SamplingConfig { temperature, top_k, top_p, ..Default::default() }
    }

    #[test]
    fn greedy_takes_the_first_maximum() {
        let mut l = vec![0.5, 2.0, 2.0, -1.0];
        assert_eq!(choose(&mut l, &[], &cfg(0.0, 0, 1.0), &mut 1), 1);
    }

    #[test]
    fn repetition_penalty_follows_transformers() {
        // Positive logits are divided, negative multiplied: a repeated token loses its lead.
        let c = SamplingConfig { repetition_penalty: 2.0, ..Default::default() };
        let mut l = vec![3.0, 2.0, -1.0];
        assert_eq!(choose(&mut l, &[0, 2, 0], &c, &mut 1), 1);
        assert_eq!(l, vec![1.5, 2.0, -2.0]);
    }

    #[test]
    fn top_k_one_and_tiny_top_p_are_greedy() {
        let logits = vec![0.1f32, 3.0, 2.9, 0.0, -5.0];
        for seed in 0..50 {
            assert_eq!(choose(&mut logits.clone(), &[], &cfg(1.0, 1, 1.0), &mut { seed }), 1);
            assert_eq!(choose(&mut logits.clone(), &[], &cfg(1.0, 0, 1e-6), &mut { seed }), 1);
        }
    }

    #[test]
    fn sampling_frequencies_follow_the_tempered_distribution() {
        // Two tokens with logits ln 3 and 0: probabilities 3/4 and 1/4 at temperature 1,
        // sqrt(3)/(1+sqrt(3)) at temperature 2; top_k = 2 cuts the third, unlikely one.
        let logits = vec![3f32.ln(), 0.0, -30.0];
        for (t, expected) in [(1.0, 0.75), (2.0, 3f64.sqrt() / (1.0 + 3f64.sqrt()))] {
            let mut rng = 7;
            let n = 20_000;
            let hits = (0..n).filter(|_| choose(&mut logits.clone(), &[], &cfg(t, 2, 1.0), &mut rng) == 0).count();
            let freq = hits as f64 / n as f64;
            assert!((freq - expected).abs() < 0.015, "temperature {t}: {freq} vs {expected}");
        }
    }

    #[test]
    fn top_p_keeps_the_smallest_set_reaching_p() {
        // Probabilities 0.5, 0.3, 0.2: top_p 0.7 keeps the first two only.
        let logits = vec![0.5f32.ln(), 0.3f32.ln(), 0.2f32.ln()];
        let mut rng = 3;
        let picks: Vec<u32> = (0..2000).map(|_| choose(&mut logits.clone(), &[], &cfg(1.0, 0, 0.7), &mut rng)).collect();
        assert!(!picks.contains(&2));
        let first = picks.iter().filter(|&&p| p == 0).count() as f64 / 2000.0;
        assert!((first - 0.625).abs() < 0.04, "{first}");
    }

    #[test]
    fn bad_settings_are_named() {
        assert!(SamplingConfig { top_p: 0.0, ..Default::default() }.validate().unwrap_err().contains("top_p"));
        assert!(SamplingConfig { temperature: -1.0, ..Default::default() }.validate().unwrap_err().contains("temperature"));
        assert!(SamplingConfig { stop: vec![String::new()], ..Default::default() }.validate().unwrap_err().contains("stop"));
    }
}

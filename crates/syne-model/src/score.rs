//! Batched, no-grad scoring of whole documents: total negative log-likelihood and number of
//! predicted tokens per document (the perplexity the curriculum sorts by).
//!
//! Documents longer than `max_len` are scored in consecutive windows of `max_len` tokens (each
//! window's first token is predicted from the previous window's context only through the
//! window boundary, as `transformers` does with a stride equal to the window). Documents are
//! grouped by length and right-padded; causal attention makes padding invisible to real tokens,
//! so a document's score does not depend on its batch-mates (tested).

use tch::{Device, Kind, Tensor};

use crate::lm::LanguageModel;

/// One document's score.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DocScore {
    /// Tokens whose probability was evaluated (document length minus one per window).
    pub predicted: usize,
    /// Sum of their negative log-likelihoods, in nats.
    pub nll_sum: f64,
}

impl DocScore {
    /// Mean NLL per predicted token (NaN for a document too short to predict anything).
    pub fn mean_nll(&self) -> f64 {
        if self.predicted == 0 {
            f64::NAN
        } else {
            self.nll_sum / self.predicted as f64
        }
    }

    /// exp(mean NLL).
    pub fn perplexity(&self) -> f64 {
        self.mean_nll().exp()
    }
}

/// Score `docs` (token ids) with `model`. `batch_tokens` bounds the padded tokens per forward
/// pass (memory is about `batch_tokens x vocab x 4` bytes of logits).
pub fn score_documents(model: &impl LanguageModel, docs: &[Vec<u32>], max_len: usize, batch_tokens: usize) -> Vec<DocScore> {
    let max_len = max_len.max(2);
    // Cut documents into windows: (doc index, window tokens).
    let mut windows: Vec<(usize, &[u32])> = Vec::new();
    for (i, d) in docs.iter().enumerate() {
        for w in d.chunks(max_len) {
            if w.len() >= 2 {
                windows.push((i, w));
            }
        }
    }
    // Inputs are a window without its last token; targets are the window from its second.
    let seqs: Vec<Vec<i64>> = windows.iter().map(|(_, w)| w[..w.len() - 1].iter().map(|&t| i64::from(t)).collect()).collect();
    let device = model.device();
    let mut scores = vec![DocScore { predicted: 0, nll_sum: 0.0 }; docs.len()];
    for_each_batch(model, &seqs, batch_tokens, |batch, logits| {
        let (b, t) = (batch.len(), logits.size()[1] as usize);
        let mut target = vec![0i64; b * t];
        let mut mask = vec![0f32; b * t];
        for (r, &k) in batch.iter().enumerate() {
            for (c, &tok) in windows[k].1[1..].iter().enumerate() {
                target[r * t + c] = i64::from(tok);
                mask[r * t + c] = 1.0;
            }
        }
        let target = Tensor::from_slice(&target).view([b as i64, t as i64, 1]).to_device(device);
        let mask = Tensor::from_slice(&mask).view([b as i64, t as i64]).to_device(device);
        let nll = -logits.to_kind(Kind::Float).log_softmax(-1, Kind::Float).gather(-1, &target, false).squeeze_dim(-1);
        let sums = Vec::<f64>::try_from((nll * &mask).sum_dim_intlist(-1, false, Kind::Double).to_device(Device::Cpu)).expect("row sums");
        for (&k, sum) in batch.iter().zip(sums) {
            let (doc, w) = windows[k];
            scores[doc].predicted += w.len() - 1;
            scores[doc].nll_sum += sum;
        }
    });
    scores
}

/// Log-likelihood of a continuation after its context (multiple-choice scoring).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ContinuationScore {
    /// Sum of the continuation tokens' log-probabilities, nats.
    pub logprob: f64,
    /// Whether every continuation token is the model's argmax (lm-evaluation-harness's
    /// `is_greedy`).
    pub greedy: bool,
    /// Continuation tokens scored.
    pub tokens: usize,
}

/// Run the non-empty `seqs` through the model in right-padded batches of about `batch_tokens`
/// tokens, longest first (so a batch holds sequences of similar length: little padding), with no
/// gradient, and hand `f` each batch: the indices of its sequences and their logits
/// `[batch, longest, vocab]`. Causal attention makes each row independent of its batch-mates
/// and of the padding after it.
fn for_each_batch(model: &impl LanguageModel, seqs: &[Vec<i64>], batch_tokens: usize, mut f: impl FnMut(&[usize], &Tensor)) {
    let mut order: Vec<usize> = (0..seqs.len()).filter(|&k| !seqs[k].is_empty()).collect();
    order.sort_by_key(|&k| (std::cmp::Reverse(seqs[k].len()), k));
    let device = model.device();
    let mut start = 0;
    while start < order.len() {
        let longest = seqs[order[start]].len();
        let batch = &order[start..(start + (batch_tokens / longest).max(1)).min(order.len())];
        start += batch.len();
        let mut ids = vec![0i64; batch.len() * longest];
        for (r, &k) in batch.iter().enumerate() {
            ids[r * longest..r * longest + seqs[k].len()].copy_from_slice(&seqs[k]);
        }
        let ids = Tensor::from_slice(&ids).view([batch.len() as i64, longest as i64]).to_device(device);
        tch::no_grad(|| f(batch, &model.logits(&ids)));
    }
}

/// Where a continuation's scores are read: the input position predicting its first scored token,
/// and the scored tokens.
type ScoredSpan<'a> = (usize, &'a [u32]);

/// Score `(context, continuation)` token pairs: the log-probability of the continuation given
/// the context, keeping at most `max_len` tokens of context + continuation (the context is cut
/// from the left, as lm-evaluation-harness does). Batched by [`for_each_batch`], so a score
/// does not depend on its batch-mates. An empty continuation scores 0.
pub fn score_continuations(model: &impl LanguageModel, requests: &[(Vec<u32>, Vec<u32>)], max_len: usize, batch_tokens: usize) -> Vec<ContinuationScore> {
    let max_len = max_len.max(2);
    // Input tokens (all but the last of context + continuation, cut to max_len) and the
    // index in them of the position predicting the first scored continuation token.
    let (seqs, spans): (Vec<Vec<i64>>, Vec<ScoredSpan>) = requests
        .iter()
        .map(|(ctx, cont)| {
            let cont = &cont[cont.len().saturating_sub(max_len)..];
            let mut seq: Vec<i64> = ctx.iter().chain(cont).map(|&t| i64::from(t)).collect();
            let keep = (max_len + 1).min(seq.len());
            seq.drain(..seq.len() - keep);
            seq.pop();
            // With an empty context the first continuation token has nothing to be predicted
            // from (callers put BOS or EOS first, as lm-evaluation-harness does); it is skipped.
            let cont = &cont[cont.len() - cont.len().min(seq.len())..];
            let first = seq.len() - cont.len();
            (if cont.is_empty() { Vec::new() } else { seq }, (first, cont))
        })
        .unzip();
    let device = model.device();
    let mut out = vec![ContinuationScore { logprob: 0.0, greedy: true, tokens: 0 }; requests.len()];
    for_each_batch(model, &seqs, batch_tokens, |batch, logits| {
        for (r, &k) in batch.iter().enumerate() {
            let (first, cont) = spans[k];
            let lp = logits.get(r as i64).narrow(0, first as i64, cont.len() as i64).to_kind(Kind::Float).log_softmax(-1, Kind::Float);
            let target = Tensor::from_slice(&cont.iter().map(|&t| i64::from(t)).collect::<Vec<_>>()).to_device(device);
            let logprob = f64::try_from(lp.gather(-1, &target.unsqueeze(-1), false).sum(Kind::Double)).expect("scalar");
            let greedy = bool::try_from(lp.argmax(-1, false).eq_tensor(&target).all()).expect("scalar");
            out[k] = ContinuationScore { logprob, greedy, tokens: cont.len() };
        }
    });
    out
}

/// Score every choice of a question in one sequence: the context once, then each choice's tokens
/// with positions continuing from the context and an attention mask that lets a choice token see
/// the context and the earlier tokens of its own choice only. Equal to [`score_continuations`]
/// on (context, choice) pairs (tested to 1e-4), at `c + Σk` tokens per question instead of
/// `n (c + k)`. The context (non-empty) is cut from the left so that it and the longest choice
/// fit `max_len`; questions are batched up to `batch_tokens` padded tokens and padding is masked
/// out, so a score does not depend on its batch-mates.
pub fn score_choices_shared(
    model: &impl LanguageModel,
    contexts: &[Vec<u32>],
    choices: &[Vec<Vec<u32>>],
    max_len: usize,
    batch_tokens: usize,
) -> Vec<Vec<ContinuationScore>> {
    let max_len = max_len.max(2);
    // Per question: the tokens, positions and block (0 = context, j + 1 = choice j) of its row.
    struct Row {
        ids: Vec<i64>,
        positions: Vec<i64>,
        blocks: Vec<usize>,
        context: usize,
    }
    let rows: Vec<Row> = contexts
        .iter()
        .zip(choices)
        .map(|(ctx, cs)| {
            let cs: Vec<&[u32]> = cs.iter().map(|c| &c[c.len().saturating_sub(max_len - 1)..]).collect();
            let longest = cs.iter().map(|c| c.len()).max().unwrap_or(0);
            // longest ≤ max_len - 1, so at least one context token stays.
            let ctx = &ctx[ctx.len().saturating_sub(max_len - longest)..];
            let mut row = Row {
                ids: ctx.iter().map(|&t| i64::from(t)).collect(),
                positions: (0..ctx.len() as i64).collect(),
                blocks: vec![0; ctx.len()],
                context: ctx.len(),
            };
            for (j, c) in cs.iter().enumerate() {
                row.ids.extend(c.iter().map(|&t| i64::from(t)));
                row.positions.extend((0..c.len() as i64).map(|p| ctx.len() as i64 + p));
                row.blocks.extend(std::iter::repeat_n(j + 1, c.len()));
            }
            row
        })
        .collect();
    let device = model.device();
    let mut out: Vec<Vec<ContinuationScore>> = choices.iter().map(|cs| vec![ContinuationScore { logprob: 0.0, greedy: true, tokens: 0 }; cs.len()]).collect();
    // Longest rows first, batched up to batch_tokens padded tokens.
    let mut order: Vec<usize> = (0..rows.len()).filter(|&q| rows[q].context > 0).collect();
    order.sort_by_key(|&q| std::cmp::Reverse(rows[q].ids.len()));
    let mut start = 0;
    while start < order.len() {
        let t = rows[order[start]].ids.len();
        let b = (batch_tokens / t.max(1)).clamp(1, order.len() - start);
        let batch = &order[start..start + b];
        start += b;
        let mut ids = vec![0i64; b * t];
        let mut positions = vec![0i64; b * t];
        let mut mask = vec![false; b * t * t];
        for (r, &q) in batch.iter().enumerate() {
            let row = &rows[q];
            let n = row.ids.len();
            ids[r * t..r * t + n].copy_from_slice(&row.ids);
            positions[r * t..r * t + n].copy_from_slice(&row.positions);
            for i in 0..t {
                let m = &mut mask[(r * t + i) * t..(r * t + i + 1) * t];
                if i >= n {
                    // Padding attends to itself only (a row of no keys would give NaN).
                    m[i] = true;
                    continue;
                }
                for (j, allowed) in m.iter_mut().enumerate().take(i + 1) {
                    *allowed = row.blocks[j] == 0 || row.blocks[j] == row.blocks[i];
                }
            }
        }
        let ids = Tensor::from_slice(&ids).view([b as i64, t as i64]).to_device(device);
        let positions = Tensor::from_slice(&positions).view([b as i64, t as i64]).to_device(device);
        let mask = Tensor::from_slice(&mask).view([b as i64, 1, t as i64, t as i64]).to_device(device);
        let logits = tch::no_grad(|| model.logits_cached(&ids, &positions, &mask, &mut crate::llama::KvCache::new()));
        for (r, &q) in batch.iter().enumerate() {
            let row = &rows[q];
            let mut offset = row.context;
            for (j, c) in choices[q].iter().enumerate() {
                let k = row.blocks[offset..].iter().take_while(|&&bl| bl == j + 1).count();
                if k == 0 {
                    continue;
                }
                let cont = &row.ids[offset..offset + k];
                // The context's last position predicts the first token; each choice position the next.
                let from: Vec<i64> = std::iter::once(row.context as i64 - 1).chain((offset..offset + k - 1).map(|p| p as i64)).collect();
                let lp = logits.get(r as i64).index_select(0, &Tensor::from_slice(&from).to_device(device)).to_kind(Kind::Float).log_softmax(-1, Kind::Float);
                let target = Tensor::from_slice(cont).to_device(device);
                let logprob = f64::try_from(lp.gather(-1, &target.unsqueeze(-1), false).sum(Kind::Double)).expect("scalar");
                let greedy = bool::try_from(lp.argmax(-1, false).eq_tensor(&target).all()).expect("scalar");
                out[q][j] = ContinuationScore { logprob, greedy, tokens: k.min(c.len()) };
                offset += k;
            }
        }
    }
    out
}

/// Score single-token continuations that share a context in one pass: for each context (cut
/// from the left to `max_len` tokens; non-empty), the log-probability of each candidate token
/// as the next token, and whether it is the argmax. Equal to [`score_continuations`] with
/// one-token continuations, at one forward pass per context instead of one per candidate.
pub fn score_next_tokens(
    model: &impl LanguageModel,
    contexts: &[Vec<u32>],
    candidates: &[Vec<u32>],
    max_len: usize,
    batch_tokens: usize,
) -> Vec<Vec<ContinuationScore>> {
    let max_len = max_len.max(1);
    let seqs: Vec<Vec<i64>> = contexts.iter().map(|c| c[c.len().saturating_sub(max_len)..].iter().map(|&t| i64::from(t)).collect()).collect();
    let device = model.device();
    let mut out = vec![Vec::new(); contexts.len()];
    for_each_batch(model, &seqs, batch_tokens, |batch, logits| {
        for (r, &k) in batch.iter().enumerate() {
            let lp = logits.get(r as i64).get(seqs[k].len() as i64 - 1).to_kind(Kind::Float).log_softmax(-1, Kind::Float);
            let best = i64::try_from(lp.argmax(-1, false)).expect("scalar");
            let ids: Vec<i64> = candidates[k].iter().map(|&t| i64::from(t)).collect();
            let vals = Vec::<f64>::try_from(lp.index_select(0, &Tensor::from_slice(&ids).to_device(device)).to_kind(Kind::Double)).expect("values");
            out[k] = vals.into_iter().zip(&ids).map(|(logprob, &t)| ContinuationScore { logprob, greedy: t == best, tokens: 1 }).collect();
        }
    });
    out
}

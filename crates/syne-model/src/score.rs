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
    // Longest first, so each batch holds windows of similar length (little padding).
    let mut order: Vec<usize> = (0..windows.len()).collect();
    order.sort_by_key(|&k| (std::cmp::Reverse(windows[k].1.len()), k));
    let device = model.device();
    let mut scores = vec![DocScore { predicted: 0, nll_sum: 0.0 }; docs.len()];
    let mut start = 0;
    while start < order.len() {
        let longest = windows[order[start]].1.len();
        let per_batch = (batch_tokens / longest).max(1);
        let batch: Vec<usize> = order[start..(start + per_batch).min(order.len())].to_vec();
        start += batch.len();
        let (b, t) = (batch.len() as i64, longest as i64);
        let mut ids = vec![0i64; batch.len() * longest];
        let mut mask = vec![0f32; batch.len() * (longest - 1)];
        for (r, &k) in batch.iter().enumerate() {
            let w = windows[k].1;
            for (c, &tok) in w.iter().enumerate() {
                ids[r * longest + c] = i64::from(tok);
            }
            for c in 0..w.len() - 1 {
                mask[r * (longest - 1) + c] = 1.0;
            }
        }
        let ids = Tensor::from_slice(&ids).view([b, t]).to_device(device);
        let mask = Tensor::from_slice(&mask).view([b, t - 1]).to_device(device);
        let per_row: Vec<f64> = tch::no_grad(|| {
            let logits = model.logits(&ids.narrow(1, 0, t - 1)).to_kind(Kind::Float);
            let logp = logits.log_softmax(-1, Kind::Float);
            let target = ids.narrow(1, 1, t - 1).unsqueeze(-1);
            let nll = -logp.gather(-1, &target, false).squeeze_dim(-1);
            let sums = (nll * &mask).sum_dim_intlist(-1, false, Kind::Double).to_device(Device::Cpu);
            Vec::<f64>::try_from(sums).expect("row sums")
        });
        for (r, &k) in batch.iter().enumerate() {
            let (doc, w) = windows[k];
            scores[doc].predicted += w.len() - 1;
            scores[doc].nll_sum += per_row[r];
        }
    }
    scores
}

//! The engine interface: what scoring, generation and evaluation need from a causal language
//! model. [`crate::llama::Llama`] implements it; another engine (another architecture, or a
//! non-tch backend) would implement the same four methods.

use tch::{Device, Tensor};

use crate::llama::KvCache;

/// A causal language model over token ids.
pub trait LanguageModel {
    /// Rows of the output distribution.
    fn vocab_size(&self) -> usize;

    /// Where the model's tensors live; inputs are moved there.
    fn device(&self) -> Device;

    /// f32 logits `[b, t, vocab]` of ids `[b, t]` under causal attention, positions `0..t`.
    fn logits(&self, ids: &Tensor) -> Tensor;

    /// Incremental decoding: logits of `ids` `[b, t]` at `positions` `[b, t]` attending as the
    /// boolean `mask` `[b, 1, t, cached + t]` allows; appends the new keys/values to `cache`.
    fn logits_cached(&self, ids: &Tensor, positions: &Tensor, mask: &Tensor, cache: &mut KvCache) -> Tensor;
}

impl LanguageModel for crate::llama::Llama {
    fn vocab_size(&self) -> usize {
        self.config.vocab_size
    }

    fn device(&self) -> Device {
        self.vs.device()
    }

    fn logits(&self, ids: &Tensor) -> Tensor {
        self.forward(ids)
    }

    fn logits_cached(&self, ids: &Tensor, positions: &Tensor, mask: &Tensor, cache: &mut KvCache) -> Tensor {
        self.forward_cached(ids, positions, mask, cache)
    }
}

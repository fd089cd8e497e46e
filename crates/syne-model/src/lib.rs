//! `syne-model`: Llama-family models for syne on tch (libtorch 2.11).
//!
//! - Real checkpoints: GGUF tensors dequantised to f32 ([`dequant`], [`weights`]) in Hugging
//!   Face layout (Q/K rows un-permuted, verified against gguf-py), or (sharded) safetensors.
//! - [`llama`]: the model (GQA, RoPE with `linear`/`llama3` scaling, RMSNorm, SwiGLU), packed-
//!   document attention, activation checkpointing, bf16 compute over f32 masters, HF saving;
//!   logits equal transformers' on the reference fixtures.
//! - [`native`]: libtorch facilities tch does not bind (fused AdamW, a CPU caching allocator).
//! - [`lm`]: the `LanguageModel` trait scoring and generation use (another engine can be added
//!   behind it); [`score`] and [`ppl`]: batch-invariant document scoring and `syne ppl`;
//!   [`generate`]: KV-cache decoding (greedy, temperature, top-k/p, repetition penalty, stops);
//!   [`heldout`]: validation sets scored to loss, perplexity, bits per byte and per character,
//!   per topic.
//!
//! Dequantising one Q4_1 block:
//!
//! ```
//! use syne_model::dequant::{dequantize, GgmlType};
//! // One Q4_1 block: scale 0.5, minimum -1.0, nibbles 0..15 then 15..0.
//! let mut block = half::f16::from_f32(0.5).to_le_bytes().to_vec();
//! block.extend(half::f16::from_f32(-1.0).to_le_bytes());
//! block.extend((0..16u8).map(|i| i | ((15 - i) << 4)));
//! let y = dequantize(GgmlType::Q4_1, &block, 32).unwrap();
//! assert_eq!((y[0], y[15], y[16]), (-1.0, 6.5, 6.5));
//! ```

#![warn(missing_docs)]

pub mod dequant;
pub mod error;
pub mod generate;
pub mod heldout;
pub mod llama;
pub mod lm;
pub mod native;
pub mod ppl;
pub mod score;
pub mod weights;

pub use error::{ModelError, Result};

/// Whether libtorch sees a CUDA device (the same binary runs on CPU-only machines).
pub fn cuda_available() -> bool {
    tch::Cuda::is_available()
}

#[cfg(test)]
mod torch_tests {
    #[test]
    fn libtorch_is_linked_and_computes() {
        let t = tch::Tensor::from_slice(&[1.0f32, 2.0, 3.0]);
        assert_eq!(f64::try_from(t.sum(tch::Kind::Float)).unwrap(), 6.0);
    }
}

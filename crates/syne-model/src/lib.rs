//! `syne-model`: Llama-family models for syne. This first part reads real checkpoints:
//! GGUF tensors dequantised to f32 ([`dequant`], [`weights`]) in Hugging Face layout (Q/K rows
//! un-permuted), verified against gguf-py.
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

pub mod dequant;
pub mod error;
pub mod generate;
pub mod heldout;
pub mod llama;
pub mod lm;
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

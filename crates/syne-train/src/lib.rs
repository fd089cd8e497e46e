//! `syne-train`: the training loop ([`trainer`]: packed sequences from token shards or any
//! `syne_data::stream::SequenceSource` such as syne-mix's mixture stream, gradient
//! accumulation, clipping, metrics, atomic checkpoints and exact resume), AdamW with
//! checkpointable state and PyTorch's numerics ([`optimizer`]), and learning-rate schedules
//! counted in tokens ([`schedule`]).
//!
//! ```
//! use syne_train::schedule::LrSchedule;
//! let wsd = LrSchedule::WarmupStableDecay { peak: 1e-5, warmup_tokens: 1_000, total_tokens: 100_000,
//!                                           decay_fraction: 0.1, floor: 1e-6 };
//! assert_eq!(wsd.lr(50_000), 1e-5);
//! assert!((wsd.lr(100_000) - 1e-6).abs() < 1e-15);
//! ```

#![warn(missing_docs)]

pub mod error;
pub mod optimizer;
pub mod schedule;
pub mod trainer;
/// Held-out validation sets (defined in `syne-model`, shared with evaluation).
pub use syne_model::heldout as validation;

pub use error::TrainError;
pub use trainer::{train, train_on, TrainSettings};

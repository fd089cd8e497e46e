//! The crate's one error type.

use std::path::PathBuf;

/// Errors of a training run; each names the file or setting at fault.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// A setting is invalid.
    #[error("{path}: {detail}")]
    Config {
        /// The settings file (or recipe).
        path: PathBuf,
        /// What is wrong, with the key.
        detail: String,
    },
    /// A checkpoint cannot be written or read back.
    #[error("{path}: {detail}")]
    Checkpoint {
        /// The checkpoint's file.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
    /// The loss stopped being finite.
    #[error("loss became {loss} at step {step} ({tokens} tokens); stopped, the last good checkpoint is intact")]
    NonFinite {
        /// The optimizer step.
        step: u64,
        /// Tokens trained.
        tokens: u64,
        /// The loss.
        loss: f64,
    },
    /// libtorch rejected the optimizer update.
    #[error("optimizer step {step}: {detail}")]
    Optimizer {
        /// The optimizer step that failed.
        step: u64,
        /// libtorch's message.
        detail: String,
    },
    /// From the model.
    #[error(transparent)]
    Model(#[from] syne_model::ModelError),
    /// From the data.
    #[error(transparent)]
    Data(#[from] syne_data::DataError),
}

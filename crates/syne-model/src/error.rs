//! The one error type of `syne-model`: every message names the file and tensor at fault.

use std::path::PathBuf;

/// Errors of model loading and dequantisation.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// A tensor is missing, has the wrong shape or type, or its data is truncated.
    #[error("{path}: tensor `{tensor}`: {detail}")]
    Tensor {
        /// The model file.
        path: PathBuf,
        /// The tensor's name.
        tensor: String,
        /// What is wrong with it.
        detail: String,
    },

    /// The file's metadata/config does not describe a supported model.
    #[error("{path}: {detail}")]
    Config {
        /// The model file or folder.
        path: PathBuf,
        /// What is wrong or unsupported.
        detail: String,
    },

    /// Errors from the container readers (GGUF parsing, I/O).
    #[error(transparent)]
    Data(#[from] syne_data::DataError),
}

/// Result alias for this crate.
pub type Result<T, E = ModelError> = std::result::Result<T, E>;

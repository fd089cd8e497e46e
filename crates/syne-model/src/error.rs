//! The one error type of `syne-model`: every message names the file and tensor at fault.

use std::path::PathBuf;

/// Errors of model loading and dequantisation.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// A tensor is missing, has the wrong shape or type, or its data is truncated.
    #[error("{path}: tensor `{tensor}`: {detail}")]
    Tensor { path: PathBuf, tensor: String, detail: String },

    /// The file's metadata/config does not describe a supported model.
    #[error("{path}: {detail}")]
    Config { path: PathBuf, detail: String },

    /// Errors from the container readers (GGUF parsing, I/O).
    #[error(transparent)]
    Data(#[from] syne_data::DataError),
}

/// Result alias for this crate.
pub type Result<T, E = ModelError> = std::result::Result<T, E>;

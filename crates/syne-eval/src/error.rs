//! The one error type of `syne-eval`: every message names the file (and line) or setting at fault.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    /// A task file is missing or malformed.
    #[error("{path}: {detail}")]
    Task { path: PathBuf, detail: String },
    /// Generated code could not be run in the sandbox.
    #[error("sandbox: {0}")]
    Sandbox(String),
    /// An OpenAI-compatible server failed or answered something unusable.
    #[error("{url}: {detail}")]
    Server { url: String, detail: String },
    /// A bad option or results file.
    #[error("{0}")]
    Usage(String),
    /// A settings or records file (syne-recipe's error, with file and key).
    #[error(transparent)]
    Recipe(#[from] syne_recipe::RecipeError),
    #[error(transparent)]
    Model(#[from] syne_model::ModelError),
    #[error(transparent)]
    Data(#[from] syne_data::DataError),
}

pub type Result<T, E = EvalError> = std::result::Result<T, E>;

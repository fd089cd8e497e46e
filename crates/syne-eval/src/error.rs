//! The one error type of `syne-eval`: every message names the file (and line) or setting at fault.

use std::path::PathBuf;

/// Every error of syne-eval, with the file, server or row at fault.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    /// A task file is missing or malformed.
    #[error("{path}: {detail}")]
    Task {
        /// The task file or folder.
        path: PathBuf,
        /// What is wrong (with the line, where there is one).
        detail: String,
    },
    /// Generated code could not be run in the sandbox.
    #[error("sandbox: {0}")]
    Sandbox(String),
    /// An OpenAI-compatible server failed or answered something unusable.
    #[error("{url}: {detail}")]
    Server {
        /// The server's URL.
        url: String,
        /// What went wrong.
        detail: String,
    },
    /// A bad option or results file.
    #[error("{0}")]
    Usage(String),
    /// A settings or records file (syne-recipe's error, with file and key).
    #[error(transparent)]
    Recipe(#[from] syne_recipe::RecipeError),
    /// A model could not be loaded or run.
    #[error(transparent)]
    Model(#[from] syne_model::ModelError),
    /// A corpus or tokenizer could not be read.
    #[error(transparent)]
    Data(#[from] syne_data::DataError),
}

/// syne-eval's result type.
pub type Result<T, E = EvalError> = std::result::Result<T, E>;

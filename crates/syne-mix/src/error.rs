//! The one error type of `syne-mix`: messages name the recipe file and the key at fault.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum MixError {
    /// The recipe cannot be read or parsed.
    #[error("{path}: {detail}")]
    Recipe { path: PathBuf, detail: String },
    /// A recipe key has an invalid value: `key` is its dotted path (`stages[1].groups.syn`).
    #[error("{path}: `{key}`: {detail}")]
    Key { path: PathBuf, key: String, detail: String },
    /// The corpora cannot supply what the plan asks for.
    #[error("{0}")]
    Plan(String),
    #[error(transparent)]
    Data(#[from] syne_data::DataError),
}

pub type Result<T, E = MixError> = std::result::Result<T, E>;

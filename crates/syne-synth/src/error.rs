//! The one error type of `syne-synth`: messages name the file, line, key or endpoint at fault.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum SynthError {
    /// The configuration cannot be read or has an invalid key.
    #[error("{path}: `{key}`: {detail}")]
    Config { path: PathBuf, key: String, detail: String },
    /// The journal is damaged beyond its last line (which a crash may leave half-written).
    #[error("{path}:{line}: {detail}")]
    Journal { path: PathBuf, line: usize, detail: String },
    /// A request the run cannot make at all (no endpoint, no API key).
    #[error("{0}")]
    Request(String),
    #[error(transparent)]
    Data(#[from] syne_data::DataError),
}

pub type Result<T, E = SynthError> = std::result::Result<T, E>;

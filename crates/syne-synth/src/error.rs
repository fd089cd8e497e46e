//! The one error type of `syne-synth`: messages name the file, line, key or endpoint at fault.

use std::path::PathBuf;

/// Every error of syne-synth, naming the file, line, key or endpoint at fault.
#[derive(Debug, thiserror::Error)]
pub enum SynthError {
    /// The configuration cannot be read or has an invalid key.
    #[error("{path}: `{key}`: {detail}")]
    Config {
        /// The configuration file.
        path: PathBuf,
        /// The key at fault.
        key: String,
        /// What is wrong with it.
        detail: String,
    },
    /// The journal is damaged beyond its last line (which a crash may leave half-written).
    #[error("{path}:{line}: {detail}")]
    Journal {
        /// The journal file.
        path: PathBuf,
        /// The damaged line (1-based).
        line: usize,
        /// What is wrong with it.
        detail: String,
    },
    /// A request the run cannot make at all (no endpoint, no API key).
    #[error("{0}")]
    Request(String),
    /// A seed corpus or output file could not be read or written.
    #[error(transparent)]
    Data(#[from] syne_data::DataError),
}

/// syne-synth's result type.
pub type Result<T, E = SynthError> = std::result::Result<T, E>;

//! The one error type of `syne-data`. Every variant names the file (and where it applies the
//! line, row, key or tensor) at fault, so a user can go straight to the bad input.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

/// Why a single input record could not be used. Bad records are skipped and counted by default;
/// `--strict` turns the first one into a failing exit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BadRecordKind {
    /// The line is not valid JSON, or not a JSON object.
    MalformedJson,
    /// The line's bytes are not valid UTF-8.
    InvalidUtf8,
    /// The configured text field is absent or null.
    MissingText,
    /// The configured text field is present but not a string.
    NonStringText,
    /// The text is empty (or only whitespace) before any filtering.
    EmptyText,
}

impl BadRecordKind {
    /// Stable snake_case name used in summaries and manifests.
    pub fn name(self) -> &'static str {
        match self {
            BadRecordKind::MalformedJson => "malformed_json",
            BadRecordKind::InvalidUtf8 => "invalid_utf8",
            BadRecordKind::MissingText => "missing_text",
            BadRecordKind::NonStringText => "non_string_text",
            BadRecordKind::EmptyText => "empty_text",
        }
    }
}

/// Errors of the data pipeline.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// A file could not be opened, read or written.
    #[error("{path}: {action}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What was being done (`cannot open`, `cannot write`, ...).
        action: &'static str,
        /// The operating system's error.
        source: std::io::Error,
    },

    /// One record is unusable (see [`BadRecordKind`]); the rest of the file is still readable.
    #[error("{pos}: {kind:?}: {detail}")]
    BadRecord {
        /// Where the record is.
        pos: Position,
        /// What is wrong with it.
        kind: BadRecordKind,
        /// The details (the JSON error, the field's type, ...).
        detail: String,
    },

    /// The file itself is damaged (truncated compression stream, bad Parquet footer, ...);
    /// reading stops at `pos`, and records before it were delivered.
    #[error("{pos}: corrupt or truncated input: {detail}")]
    Corrupt {
        /// How far reading got.
        pos: Position,
        /// The decoder's error.
        detail: String,
    },

    /// The file name does not tell which corpus format it holds.
    #[error("{path}: unknown corpus format (expected .jsonl, .jsonl.gz, .jsonl.zst or .parquet)")]
    UnknownFormat {
        /// The file.
        path: PathBuf,
    },

    /// A tokenizer could not be loaded or built.
    #[error("{path}: tokenizer: {detail}")]
    Tokenizer {
        /// The tokenizer file or model.
        path: PathBuf,
        /// What went wrong.
        detail: String,
    },

    /// A GGUF file is malformed; `at` says which key, tensor or byte offset.
    #[error("{path}: GGUF {at}: {detail}")]
    Gguf {
        /// The GGUF file.
        path: PathBuf,
        /// The key, tensor or byte offset at fault.
        at: String,
        /// What is wrong.
        detail: String,
    },

    /// A configuration file is invalid; `key` names the offending setting.
    #[error("{path}: config key `{key}`: {detail}")]
    Config {
        /// The configuration file.
        path: PathBuf,
        /// The setting at fault.
        key: String,
        /// What is wrong with it.
        detail: String,
    },

    /// A token shard set or Megatron dataset is malformed or inconsistent.
    #[error("{path}: shard: {detail}")]
    Shard {
        /// The shard or dataset.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },

    /// A sequence source (the mixture sampler) cannot deliver what the trainer asks, or cannot
    /// take back a checkpoint's state: `source_name` names the sampler, `detail` the mismatch.
    #[error("{source_name}: {detail}")]
    Sequence {
        /// The sampler.
        source_name: String,
        /// The mismatch.
        detail: String,
    },

    /// Processing was stopped deliberately (strict mode, a failed consistency check, ...).
    #[error("{0}")]
    Aborted(String),
}

impl DataError {
    /// Shorthand for an I/O error on `path` while doing `action`.
    pub fn io(path: impl Into<PathBuf>, action: &'static str, source: std::io::Error) -> Self {
        DataError::Io { path: path.into(), action, source }
    }
}

/// Result alias for this crate.
pub type Result<T, E = DataError> = std::result::Result<T, E>;

/// Where a record came from: file plus 1-based line (JSONL) or 0-based row (Parquet).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Position {
    /// The file.
    pub file: Arc<PathBuf>,
    /// 1-based line for JSONL formats, 0-based row for Parquet.
    pub index: u64,
    /// `index` counts Parquet rows (else JSONL lines).
    pub is_row: bool,
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_row {
            write!(f, "{}: row {}", self.file.display(), self.index)
        } else {
            write!(f, "{}:{}", self.file.display(), self.index)
        }
    }
}

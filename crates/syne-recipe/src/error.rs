//! The crate's one error type.

use std::path::PathBuf;

/// What can go wrong reading or checking a recipe; every variant names the file, and the key
/// when one is at fault (`stages[1].groups.syn`).
#[derive(Debug, thiserror::Error)]
pub enum RecipeError {
    /// The file cannot be read.
    #[error("{}: cannot read: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The text is not valid TOML for the schema (unknown key, wrong type, missing key).
    #[error("{}: `{key}`: {detail}", path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// The dotted key at fault, as near as the parser locates it.
        key: String,
        /// What is wrong.
        detail: String,
    },
    /// A value is valid TOML but not a valid setting.
    #[error("{}: `{key}`: {detail}", path.display())]
    Key {
        /// The file.
        path: PathBuf,
        /// The dotted key at fault.
        key: String,
        /// What is wrong.
        detail: String,
    },
}

/// `Result` with [`RecipeError`].
pub type Result<T, E = RecipeError> = std::result::Result<T, E>;

impl RecipeError {
    /// A [`RecipeError::Key`].
    pub fn key(path: impl Into<PathBuf>, key: impl Into<String>, detail: impl Into<String>) -> RecipeError {
        RecipeError::Key { path: path.into(), key: key.into(), detail: detail.into() }
    }

    /// A TOML error in `text` (read from `path`), located at its dotted key.
    pub fn toml(path: impl Into<PathBuf>, text: &str, e: &toml::de::Error) -> RecipeError {
        let key = e.span().map(|s| key_at(text, s.start)).unwrap_or_else(|| "?".into());
        RecipeError::Parse { path: path.into(), key, detail: e.message().to_string() }
    }
}

/// The dotted key path at byte `offset` of a TOML text (for error messages): the innermost
/// table header above it plus the key on its line.
pub fn key_at(text: &str, offset: usize) -> String {
    let before = &text[..offset.min(text.len())];
    let table = before.lines().rev().find_map(|l| l.trim().strip_prefix('[').and_then(|l| l.strip_suffix(']'))).map(|t| t.trim_matches(['[', ']']).to_string());
    let line = text[before.rfind('\n').map(|i| i + 1).unwrap_or(0)..].lines().next().unwrap_or("");
    let key = line.split('=').next().map(str::trim).filter(|k| !k.is_empty() && !k.starts_with('['));
    match (table, key) {
        (Some(t), Some(k)) => format!("{t}.{k}"),
        (Some(t), None) => t,
        (None, Some(k)) => k.to_string(),
        (None, None) => "?".into(),
    }
}

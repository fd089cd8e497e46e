//! The records a run writes, one type per file format: the mixture's log and checkpoint state
//! ([`mixture`]), the trainer's metrics and validation reports ([`train`]), evaluation results
//! ([`eval`]), the run's manifest ([`run`]) and a sweep's ([`sweep`]). Every crate that writes one of these files and
//! every crate that reads it (syne-report) uses the same type, so a field cannot be renamed on
//! one side only.

pub mod eval;
pub mod mixture;
pub mod run;
pub mod sweep;
pub mod train;

use std::path::Path;

use serde::de::DeserializeOwned;

use crate::error::{RecipeError, Result};

/// Read a JSON record file; a missing or mistyped field is an error naming the file.
pub fn read_json<T: DeserializeOwned>(path: &Path) -> Result<T> {
    let bytes = std::fs::read(path).map_err(|source| RecipeError::Read { path: path.to_path_buf(), source })?;
    serde_json::from_slice(&bytes).map_err(|e| RecipeError::Parse {
        path: path.to_path_buf(),
        key: format!("line {} column {}", e.line(), e.column()),
        detail: e.to_string(),
    })
}

/// Read a JSON-lines record file, one `T` per line; an error names the file and line.
pub fn read_jsonl<T: DeserializeOwned>(path: &Path) -> Result<Vec<T>> {
    let text = std::fs::read_to_string(path).map_err(|source| RecipeError::Read { path: path.to_path_buf(), source })?;
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            serde_json::from_str(l).map_err(|e| RecipeError::Parse { path: path.to_path_buf(), key: format!("line {}", i + 1), detail: e.to_string() })
        })
        .collect()
}

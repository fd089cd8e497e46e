//! A shared step cache: the work many runs of one sweep have in common, done once.
//!
//! Runs that differ only in what they train on (ratios, curriculum order, mixer, learning rate)
//! share their prepared shards (one `[prepare]` output folder per distinct preparation, set by
//! the sweep), their topic classifiers, their per-source notes (topic labels and the backbone's
//! perplexity scores) and the backbone's evaluation. Each item is stored under the sha256 of
//! everything that determines it (the prepared manifest, the source, the classifier's bytes, the
//! scoring model's bytes and settings; the evaluated model's bytes and the evaluation settings
//! with every file replaced by its content hash), so two runs share an item exactly when they
//! would have computed the same bytes. Items are written under a temporary name and renamed
//! into place: a killed run never leaves a partial item, and two runs storing the same item at
//! once both store complete copies.

use std::path::{Path, PathBuf};

use serde::Serialize;
use sha2::{Digest, Sha256};
use syne_data::io::partial_path;
use syne_data::DataError;

use crate::error::Result;

/// A folder of content-keyed items (files or folders).
#[derive(Debug, Clone)]
pub struct StepCache {
    dir: PathBuf,
}

/// The sha256 (hex) of `kind` and the JSON of `what`: an item's key.
pub fn content_key<T: Serialize>(kind: &str, what: &T) -> String {
    let mut h = Sha256::new();
    h.update(kind.as_bytes());
    h.update([0]);
    h.update(serde_json::to_vec(what).expect("a cache key serialises"));
    hex::encode(h.finalize())
}

fn copy_tree(from: &Path, to: &Path) -> Result<()> {
    if from.is_dir() {
        std::fs::create_dir_all(to).map_err(|e| DataError::io(to, "cannot create", e))?;
        for entry in std::fs::read_dir(from).map_err(|e| DataError::io(from, "cannot list", e))? {
            let entry = entry.map_err(|e| DataError::io(from, "cannot list", e))?;
            copy_tree(&entry.path(), &to.join(entry.file_name()))?;
        }
        Ok(())
    } else {
        std::fs::copy(from, to).map(drop).map_err(|e| DataError::io(to, "cannot copy a cached item to", e).into())
    }
}

/// Copy `from` to `to` through a temporary name, so that `to` is complete whenever it exists.
fn copy_atomic(from: &Path, to: &Path) -> Result<()> {
    let tmp = partial_path(to);
    if tmp.is_dir() {
        std::fs::remove_dir_all(&tmp).map_err(|e| DataError::io(&tmp, "cannot remove a stale copy", e))?;
    }
    if let Some(parent) = to.parent() {
        std::fs::create_dir_all(parent).map_err(|e| DataError::io(parent, "cannot create", e))?;
    }
    copy_tree(from, &tmp)?;
    if to.is_dir() {
        // Another run stored the same item meanwhile: it holds the same bytes.
        std::fs::remove_dir_all(&tmp).map_err(|e| DataError::io(&tmp, "cannot remove", e))?;
        return Ok(());
    }
    std::fs::rename(&tmp, to).map_err(|e| DataError::io(to, "cannot rename into place", e).into())
}

impl StepCache {
    /// The cache in `dir` (created on first store).
    pub fn new(dir: impl Into<PathBuf>) -> StepCache {
        StepCache { dir: dir.into() }
    }

    /// The cache's folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn item(&self, kind: &str, key: &str) -> PathBuf {
        self.dir.join(kind).join(key)
    }

    /// Copy item `kind/key` to `dest` when the cache holds it; `Ok(false)` when it does not.
    pub fn fetch(&self, kind: &str, key: &str, dest: &Path) -> Result<bool> {
        let item = self.item(kind, key);
        if !item.exists() {
            return Ok(false);
        }
        copy_atomic(&item, dest)?;
        Ok(true)
    }

    /// Store `src` (a file or a folder) as item `kind/key`, unless it is there already.
    pub fn store(&self, kind: &str, key: &str, src: &Path) -> Result<()> {
        let item = self.item(kind, key);
        if item.exists() {
            return Ok(());
        }
        copy_atomic(src, &item)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn items_round_trip_by_content_key() {
        let dir = tempfile::tempdir().unwrap();
        let cache = StepCache::new(dir.path().join("cache"));
        let k1 = content_key("notes", &("web", 3));
        assert_eq!(k1, content_key("notes", &("web", 3)));
        assert_ne!(k1, content_key("notes", &("web", 4)));
        assert_ne!(k1, content_key("eval", &("web", 3)));
        let file = dir.path().join("a.jsonl");
        std::fs::write(&file, "x\n").unwrap();
        assert!(!cache.fetch("notes", &k1, &dir.path().join("b.jsonl")).unwrap());
        cache.store("notes", &k1, &file).unwrap();
        assert!(cache.fetch("notes", &k1, &dir.path().join("b.jsonl")).unwrap());
        assert_eq!(std::fs::read_to_string(dir.path().join("b.jsonl")).unwrap(), "x\n");
        // Folders too, whole.
        let folder = dir.path().join("before");
        std::fs::create_dir_all(folder.join("samples")).unwrap();
        std::fs::write(folder.join("results.json"), "{}").unwrap();
        std::fs::write(folder.join("samples/t.jsonl"), "1\n").unwrap();
        cache.store("eval", "k", &folder).unwrap();
        let copy = dir.path().join("run/eval/before");
        assert!(cache.fetch("eval", "k", &copy).unwrap());
        assert_eq!(std::fs::read_to_string(copy.join("samples/t.jsonl")).unwrap(), "1\n");
        assert!(!partial_path(&copy).exists());
    }
}

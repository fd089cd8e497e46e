//! Shared helpers for tests on the real assets installed by `scripts/fetch-assets`.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The assets folder (`$SYNE_ASSETS` or `<workspace>/assets`). Panics with the command to run
/// when it is missing: tests on real data must fail loudly, never skip.
pub fn assets() -> PathBuf {
    let dir = std::env::var_os("SYNE_ASSETS").map(PathBuf::from).unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../assets"));
    assert!(dir.join("corpora").is_dir() && dir.join("vocab").is_dir(), "real assets missing under {}: run scripts/fetch-assets", dir.display());
    dir
}

pub fn asset(rel: &str) -> PathBuf {
    let p = assets().join(rel);
    assert!(p.exists(), "asset {} missing: run scripts/fetch-assets", p.display());
    p
}

/// Every file under `dir` (relative path -> bytes).
pub fn tree(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.insert(p.strip_prefix(dir).unwrap().display().to_string(), std::fs::read(&p).unwrap());
            }
        }
    }
    out
}

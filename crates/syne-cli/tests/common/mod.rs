//! Helpers shared by the `syne` binary's integration tests.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The assets folder (`$SYNE_ASSETS` or `<workspace>/assets`); panics with the command to run
/// when it is missing, so tests on real data fail loudly instead of skipping.
pub fn assets() -> PathBuf {
    let dir = std::env::var_os("SYNE_ASSETS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../assets"));
    assert!(dir.join("corpora").is_dir(), "real assets missing under {}: run scripts/fetch-assets", dir.display());
    dir
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

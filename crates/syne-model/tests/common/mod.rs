//! Paths shared by the syne-model tests.
#![allow(dead_code)]

use std::path::PathBuf;

/// The committed reference fixtures.
pub fn fixtures() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures"))
}

/// The real SmolLM2-135M-Instruct GGUF from `scripts/fetch-assets` (or `$SYNE_ASSETS`).
pub fn gguf() -> PathBuf {
    let assets = std::env::var_os("SYNE_ASSETS").map(PathBuf::from).unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../assets"));
    let p = assets.join("models/SmolLM2-135M-Instruct.Q4_1.gguf");
    assert!(p.exists(), "{} missing: run scripts/fetch-assets", p.display());
    p
}

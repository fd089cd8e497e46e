//! Helpers shared by the `syne` binary's integration tests.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

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

/// Start `command()` again and again, killing each run with SIGKILL after a delay that grows
/// by `growth` from `first`, until a run finishes on its own (it must succeed). `before_each`
/// runs before every start. Returns how many runs were killed.
pub fn kill_until_done(
    mut command: impl FnMut() -> Command,
    first: Duration,
    growth: f64,
    max_kills: usize,
    mut before_each: impl FnMut(),
) -> usize {
    let mut kills = 0;
    let mut delay = first;
    loop {
        before_each();
        let mut child = command().spawn().unwrap();
        let start = Instant::now();
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                assert!(status.success(), "resumed run failed after {kills} kills");
                return kills;
            }
            if start.elapsed() >= delay {
                child.kill().unwrap(); // SIGKILL
                child.wait().unwrap();
                break;
            }
            std::thread::sleep(Duration::from_millis(3));
        }
        kills += 1;
        delay = delay.mul_f64(growth);
        assert!(kills < max_kills, "never finished");
    }
}

//! Helpers shared by the `syne` binary's integration tests.
#![allow(dead_code)]

use std::process::Command;
use std::time::{Duration, Instant};

// `assets()` and `tree()` are syne-data's test helpers, compiled into these tests too.
#[path = "../../../syne-data/tests/common/mod.rs"]
mod data_common;
#[allow(unused_imports)] // each test binary uses its own subset
pub use data_common::{assets, tree};

/// Start `command()` again and again, killing each run with SIGKILL after a delay that grows
/// by `growth` from `first`, until a run finishes on its own (it must succeed). `before_each`
/// runs before every start. Returns how many runs were killed.
pub fn kill_until_done(mut command: impl FnMut() -> Command, first: Duration, growth: f64, max_kills: usize, mut before_each: impl FnMut()) -> usize {
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

/// Start `command()` `kills` times, killing each run with SIGKILL once `progress()` has grown
/// past its value when the run started (plus `extra` times the kill number modulo 3, so kills
/// land at different points after the progress mark), then start it once more and let it finish
/// (it must succeed). Progress-driven, so a slow or loaded machine still kills every run after it
/// got somewhere. Returns the kills made (fewer when a run finished first).
pub fn kill_after_progress(mut command: impl FnMut() -> Command, progress: impl Fn() -> u64, kills: usize, extra: Duration, timeout: Duration) -> usize {
    for k in 0..kills {
        let mut child = command().spawn().unwrap();
        let p0 = progress();
        let start = Instant::now();
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                assert!(status.success(), "run {k} failed");
                return k;
            }
            if progress() > p0 {
                break;
            }
            assert!(start.elapsed() < timeout, "run {k} made no progress in {timeout:?}");
            std::thread::sleep(Duration::from_millis(2));
        }
        std::thread::sleep(extra * (k % 3) as u32);
        child.kill().unwrap();
        child.wait().unwrap();
    }
    let status = command().status().unwrap();
    assert!(status.success(), "the last run failed after {kills} kills");
    kills
}

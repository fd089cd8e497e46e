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

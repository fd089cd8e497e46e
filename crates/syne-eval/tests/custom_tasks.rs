//! Custom tasks from TOML (tests/fixtures/custom): templates, gold as index / letter / text,
//! shots from the front, malformed rows counted or fatal, and a run with the real SmolLM2.

use std::path::PathBuf;

use syne_data::tokenizer::TextTokenizer;
use syne_eval::backend::LocalBackend;
use syne_eval::custom::{load_custom, read_tasks_file};
use syne_eval::run::{model_identity, run_gen, run_mc};
use syne_eval::task::{GenMetric, LoadOptions, Task};
use syne_model::llama::Llama;
use tch::Device;

fn fixture() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/custom/tasks.toml")
}

#[test]
fn tasks_file_defines_multiple_choice_and_generation_tasks() {
    let specs = read_tasks_file(&fixture()).unwrap();
    assert_eq!(specs.len(), 2);
    let Task::Mc(cap) = load_custom(&specs[0], LoadOptions::default()).unwrap() else { panic!() };
    assert_eq!(cap.items.len(), 3, "one shot row, one bad gold skipped");
    assert_eq!(cap.skipped.count, 1);
    assert!(
        cap.skipped.first[0].contains("capitals.jsonl") && cap.skipped.first[0].contains("line 4") && cap.skipped.first[0].contains("Barcelona"),
        "{:?}",
        cap.skipped
    );
    let first = &cap.items[0];
    assert_eq!(first.context, "Question: What is the capital of France?\nAnswer: Paris\n\nQuestion: What is the capital of Japan?\nAnswer:");
    assert_eq!((first.choices.clone(), first.gold), (vec![" Tokyo".to_string(), " Seoul".into(), " Beijing".into()], 0));
    assert_eq!(cap.items[1].gold, 0, "letter A");
    let e = load_custom(&specs[0], LoadOptions { limit: None, strict: true }).unwrap_err().to_string();
    assert!(e.contains("line 4"), "{e}");
    let Task::Gen(sums) = load_custom(&specs[1], LoadOptions::default()).unwrap() else { panic!() };
    assert_eq!((sums.items.len(), sums.skipped.count, sums.metric), (2, 1, GenMetric::FinalNumber));
    assert!(sums.skipped.first[0].contains("no field `a`"));
    assert_eq!(sums.items[0].prompt, "Q: What is 2 plus 3?\nA: 5\n\nQ: What is 10 plus 20?\nA: 30\n\nQ: What is 7 plus 1?\nA:");
    assert_eq!(sums.items[0].gold, "8");
    // A malformed file names itself.
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("t.toml");
    std::fs::write(&bad, "[[task]]\nname = \"x\"\nkind = \"multiple_choice\"\npath = \"x.jsonl\"\nprompt = \"{q}\"\ngold_field = \"a\"\n").unwrap();
    let e = read_tasks_file(&bad).unwrap_err().to_string();
    assert!(e.contains("t.toml") && e.contains("choices_field"), "{e}");
    std::fs::write(&bad, "[[task]]\nname = \"x\"\nkind = \"quiz\"\n").unwrap();
    assert!(read_tasks_file(&bad).unwrap_err().to_string().contains("t.toml"));
}

#[test]
fn custom_tasks_run_with_smollm2() {
    tch::set_num_threads(2);
    let assets = std::env::var_os("SYNE_ASSETS").map(PathBuf::from).unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../assets"));
    let gguf = assets.join("models/SmolLM2-135M-Instruct.Q4_1.gguf");
    let (model, tok) = (Llama::from_gguf(&gguf, Device::Cpu).unwrap(), TextTokenizer::load(&gguf).unwrap());
    let backend = LocalBackend { model: &model, tok: &tok, identity: model_identity(&gguf).unwrap(), max_len: 2048, batch_tokens: 4096, generate_batch: 4 };
    let specs = read_tasks_file(&fixture()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let Task::Mc(cap) = load_custom(&specs[0], LoadOptions::default()).unwrap() else { panic!() };
    let (r, _) = run_mc(&backend, &cap, dir.path(), 8, &|_| {}).unwrap();
    assert_eq!(r.n, 3);
    // Capitals are easy even for a 135M model.
    assert!(r.metrics["acc"].value >= 2.0 / 3.0, "{r:?}");
    let Task::Gen(sums) = load_custom(&specs[1], LoadOptions::default()).unwrap() else { panic!() };
    let (g, _) = run_gen(&backend, &sums, None, dir.path(), 4, &|_| {}).unwrap();
    assert_eq!(g.n, 2);
    assert!(g.metrics.contains_key("exact_match"));
}

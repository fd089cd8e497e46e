//! `ppl_files` on real text: one line per document, bad records skipped and counted, and a
//! partial output (with a torn last line) is resumed to the same result as a clean run.

use std::path::PathBuf;

use syne_data::tokenizer::TextTokenizer;
use syne_model::llama::Llama;
use syne_model::ppl::{ppl_files, PplOptions};
use tch::Device;

#[test]
fn scores_every_document_and_resumes_a_torn_output() {
    tch::set_num_threads(2);
    let assets = std::env::var_os("SYNE_ASSETS").map(PathBuf::from).unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../assets"));
    let gguf = assets.join("models/SmolLM2-135M-Instruct.Q4_1.gguf");
    assert!(gguf.exists(), "run scripts/fetch-assets");
    let model = Llama::from_gguf(&gguf, Device::Cpu).unwrap();
    let tok = TextTokenizer::load(&gguf).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let reviews = std::fs::read_to_string(assets.join("corpora/zh-reviews.jsonl")).unwrap();
    let mut lines: Vec<String> = reviews.lines().take(12).map(str::to_owned).collect();
    lines.insert(3, "{not json".into());
    let input = dir.path().join("in.jsonl");
    std::fs::write(&input, lines.join("\n") + "\n").unwrap();
    let opts = PplOptions { chunk_docs: 4, ..Default::default() };

    let clean = dir.path().join("clean.jsonl");
    let s = ppl_files(&model, &tok, std::slice::from_ref(&input), &clean, &opts, &|_| {}).unwrap();
    assert_eq!((s.docs, s.bad_records), (12, 1));
    let want = std::fs::read_to_string(&clean).unwrap();
    assert_eq!(want.lines().count(), 12);
    for l in want.lines() {
        let v: serde_json::Value = serde_json::from_str(l).unwrap();
        let ppl = v["ppl"].as_f64().unwrap();
        assert!(ppl > 1.0 && ppl < 10_000.0, "{l}");
    }

    // A killed run left 5 complete lines and half of the sixth.
    let out = dir.path().join("resumed.jsonl");
    let cut: usize = want.lines().take(5).map(|l| l.len() + 1).sum::<usize>() + 10;
    std::fs::write(dir.path().join("resumed.jsonl.partial"), &want.as_bytes()[..cut]).unwrap();
    let s = ppl_files(&model, &tok, &[input], &out, &opts, &|_| {}).unwrap();
    assert_eq!((s.resumed_docs, s.docs), (5, 7));
    let got = std::fs::read_to_string(&out).unwrap();
    assert_eq!(got.lines().count(), 12);
    for (a, b) in got.lines().zip(want.lines()) {
        let (a, b): (serde_json::Value, serde_json::Value) = (serde_json::from_str(a).unwrap(), serde_json::from_str(b).unwrap());
        assert_eq!(a["id"], b["id"]);
        assert!((a["mean_nll"].as_f64().unwrap() - b["mean_nll"].as_f64().unwrap()).abs() < 1e-5);
    }
    assert!(!dir.path().join("resumed.jsonl.partial").exists());
}

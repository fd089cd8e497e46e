//! Near-duplicate detection on a planted set built from real text by
//! `scripts/make_planted_dups.py`: recall and precision must both reach 0.95.

use crate::common;

use std::collections::HashSet;
use std::process::Command;

use syne_data::dedup::{dedup_corpus, DedupConfig};
use syne_data::io::FieldSpec;

#[test]
fn planted_near_duplicates_are_found_with_high_precision_and_recall() {
    common::assets();
    let dir = tempfile::tempdir().unwrap();
    let planted = dir.path().join("planted.jsonl");
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../../scripts/make_planted_dups.py");
    let status = Command::new("python3").args([script, "--out", planted.to_str().unwrap(), "--bases", "400", "--seed", "7"]).status().expect("python3 runs");
    assert!(status.success());
    let docs: Vec<serde_json::Value> = std::fs::read_to_string(&planted).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    // Ground truth: every document after the first of its cluster is a duplicate.
    let mut seen = HashSet::new();
    let truth: HashSet<String> =
        docs.iter().filter(|d| !seen.insert(d["cluster"].as_str().unwrap().to_string())).map(|d| d["id"].as_str().unwrap().to_string()).collect();
    assert!(truth.len() > 300, "too few planted duplicates: {}", truth.len());

    let out = dir.path().join("kept.jsonl");
    let report = dedup_corpus(&[planted], &FieldSpec::default(), &DedupConfig::default(), &out).unwrap();
    let removed: HashSet<String> = report.removed.iter().cloned().collect();
    let tp = removed.intersection(&truth).count() as f64;
    let precision = tp / removed.len() as f64;
    let recall = tp / truth.len() as f64;
    eprintln!("planted: {} docs, {} duplicates; removed {}; precision {precision:.4} recall {recall:.4}", docs.len(), truth.len(), removed.len());
    assert!(precision >= 0.95, "precision {precision}");
    assert!(recall >= 0.95, "recall {recall}");
    assert_eq!(report.docs_out as usize + removed.len(), docs.len());
    // The output holds exactly the kept documents.
    assert_eq!(std::fs::read_to_string(&out).unwrap().lines().count() as u64, report.docs_out);
}

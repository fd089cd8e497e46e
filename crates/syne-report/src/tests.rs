use super::*;
use syne_recipe::records::mixture::MixtureEvent;

/// A small run folder written with the records `syne run` writes: two stages, a topic source
/// re-weighted twice, a curriculum source with 4 buckets, two held-out domains, before/after
/// evaluation.
fn fixture(dir: &Path) {
    use syne_recipe::records::eval::{Metric, ModelIdentity, TaskResult};
    use syne_recipe::records::mixture::{Account, Adjustment, BucketRange, Consumed, SourceAccount, StageAccount, TopicState};
    use syne_recipe::records::run::{NotesSummary, TrainSummary};
    use syne_recipe::records::train::{DomainMetrics, TopicLoss};
    let w = |p: &str, s: String| {
        let path = dir.join(p);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, s).unwrap();
    };
    let lines = |v: Vec<serde_json::Value>| v.iter().map(|x| format!("{x}\n")).collect::<String>();
    fn json<T: serde::Serialize>(x: &T) -> serde_json::Value {
        serde_json::to_value(x).unwrap()
    }
    let metrics: Vec<serde_json::Value> =
        (1..=8).map(|i| json(&StepMetrics { step: i, tokens: i * 1024, loss: 3.0 - 0.1 * i as f64, lr: 1e-4, grad_norm: 1.0, tokens_per_s: 1000.0 })).collect();
    w("train/metrics.jsonl", lines(metrics));
    let val = |t: u64, zh: f64, en: f64| {
        let topic = |docs, tokens, loss| TopicLoss { docs, tokens, loss };
        let zh = DomainMetrics { name: "zh-news".into(), docs: 8, loss: zh, perplexity: zh.exp(), bits_per_char: zh * 2.0, ..Default::default() };
        let en = DomainMetrics {
            name: "en-wiki".into(),
            docs: 4,
            loss: en,
            perplexity: en.exp(),
            bits_per_char: 1.0,
            topics: [("STEM".to_string(), topic(2, 100, en + 0.2)), ("Humanities".to_string(), topic(2, 90, en - 0.1))].into(),
            ..Default::default()
        };
        json(&ValidationReport { step: t / 1024, tokens: t, domains: vec![zh, en] })
    };
    w("train/validation.jsonl", lines(vec![val(0, 3.0, 2.5), val(4096, 2.6, 2.5), val(8192, 2.4, 2.45)]));
    let adjust = |tokens: u64, ratios: Vec<f64>| {
        let adjustment = |ratios| Adjustment { before: vec![], previous_losses: vec![], losses: vec![], changes: vec![], factors: vec![], ratios };
        // The group `all` mixed over its two sources moves beside the topics.
        let group = vec![1.0 - ratios[0] / 2.0, ratios[0] / 2.0];
        json(&MixtureLogLine {
            step: tokens / 1024,
            tokens,
            event: vec![
                MixtureEvent::Adjustment { source: "en-wiki".into(), topics: vec!["STEM".into(), "Humanities".into()], adjustment: adjustment(ratios) },
                MixtureEvent::Adjustment { source: "group:all".into(), topics: vec!["en-wiki".into(), "zh-news".into()], adjustment: adjustment(group) },
            ],
        })
    };
    w("train/mixture.jsonl", lines(vec![adjust(4096, vec![0.55, 0.45]), adjust(8192, vec![0.6, 0.4])]));
    let notes: Vec<serde_json::Value> = (0..40).map(|i| json(&NoteLine { topic: None, topic_prob: None, perplexity: Some(5.0 + i as f64) })).collect();
    w("notes/zh-news.jsonl", lines(notes));
    let results = |acc: f64, ppl: f64| {
        let metric = |value, stderr| Metric { value, stderr };
        let arc = TaskResult { task: "arc_easy".into(), shots: 0, n: 200, metrics: [("acc".to_string(), metric(acc, Some(0.03)))].into() };
        let zh = TaskResult {
            task: "zh-news".into(),
            shots: 0,
            n: 8,
            metrics: [("perplexity".to_string(), metric(ppl, None)), ("bits_per_char".to_string(), metric(ppl.ln() * 2.0, None))].into(),
        };
        let model = ModelIdentity { path: "model.gguf".into(), sha256: "0".repeat(64) };
        json(&RunResults { model, config: serde_json::json!({}), results: [("arc_easy:0shot".to_string(), arc), ("zh-news".to_string(), zh)].into() })
            .to_string()
    };
    w("eval/before/results.json", results(0.50, 20.0));
    w("eval/after/results.json", results(0.49, 12.0));
    let consumed = |tokens: u64, buckets: &[(&str, u64)]| Consumed {
        tokens,
        sequences: tokens / 256,
        topics: Default::default(),
        buckets: buckets.iter().map(|(b, n)| (b.to_string(), *n)).collect(),
    };
    let stage = |name: &str, zh: u64, en: u64, buckets: &[(&str, u64)]| StageAccount {
        name: name.into(),
        planned_tokens: [("zh-news".to_string(), zh), ("en-wiki".to_string(), en)].into(),
        consumed: [("zh-news".to_string(), consumed(zh, buckets)), ("en-wiki".to_string(), consumed(en, &[]))].into(),
    };
    let bucket = |b: usize, lo: f64, hi: f64| BucketRange { bucket: b, docs: 10, min_perplexity: lo, max_perplexity: hi };
    let source = |buckets| SourceAccount { train_docs: 40, heldout_docs: 0, train_tokens: 4096, buckets, topic_tokens: Default::default() };
    let topics = TopicState {
        topics: vec!["STEM".into(), "Humanities".into()],
        ratios: vec![0.6, 0.4],
        credits: vec![0.0, 0.0],
        reads: vec![0, 0],
        exhausted: vec![false, false],
        last_losses: None,
        last_adjusted_tokens: 8192,
        initial_ratios: vec![0.5, 0.5],
        mixer: None,
    };
    let account = Account {
        seq_len: 256,
        position: 32,
        planned_sequences: 32,
        stages: vec![stage("one", 2048, 4096, &[("0", 1024), ("1", 1024)]), stage("two", 1024, 1024, &[("2", 512), ("3", 512)])],
        topics: [("en-wiki".to_string(), topics.clone())].into(),
        groups: [("all".to_string(), TopicState { topics: vec!["en-wiki".into(), "zh-news".into()], initial_ratios: vec![0.5, 0.5], ..topics.clone() })].into(),
        sources: [
            ("zh-news".to_string(), source(vec![bucket(0, 5.0, 14.0), bucket(1, 15.0, 24.0), bucket(2, 25.0, 34.0), bucket(3, 35.0, 44.0)])),
            ("en-wiki".to_string(), source(vec![])),
        ]
        .into(),
    };
    let notes_file = dir.join("notes/zh-news.jsonl");
    let manifest = RunManifest {
        recipe: "recipes/demo.toml".into(),
        recipe_sha256: "0123456789abcdef".into(),
        prepared: dir.join("data"),
        prepared_manifest_sha256: "0".repeat(64),
        plan: dir.join("plan.json"),
        notes: [(
            "zh-news".to_string(),
            NotesSummary { file: notes_file, sha256: "0".repeat(64), docs: 40, heldout_docs: 0, scored_docs: 40, topics: Default::default() },
        )]
        .into(),
        heldout: Default::default(),
        train: TrainSummary {
            out: dir.join("train"),
            steps: 8,
            tokens: 8192,
            final_model: dir.join("train/final"),
            mixture_log: dir.join("train/mixture.jsonl"),
        },
        account,
        eval: [("before".to_string(), dir.join("eval/before/results.json")), ("after".to_string(), dir.join("eval/after/results.json"))].into(),
        steps: Vec::new(),
    };
    w("manifest.json", json(&manifest).to_string());
}

#[test]
fn the_report_shows_every_section_from_the_run_files() {
    let dir = tempfile::tempdir().unwrap();
    fixture(dir.path());
    let r = write_report(dir.path()).unwrap();
    let md = std::fs::read_to_string(&r.markdown).unwrap();
    // Before/after with deltas and verdicts: ARC 0.50 → 0.49 on 200 items is noise; the
    // perplexity fell 40%.
    assert!(md.contains("| arc_easy:0shot | acc | 200 | 0.5000 | 0.4900 | -0.0100 (-2.0%) | within noise |"), "{md}");
    assert!(md.contains("| zh-news | perplexity | 8 | 20.0000 | 12.0000 | -8.0000 (-40.0%) | better |"), "{md}");
    // Held-out text from the trainer's first and last validation: loss 3.0 → 2.4.
    assert!(md.contains("| held-out zh-news | perplexity | 8 | 20.0855 | 11.0232 | -9.0624 (-45.1%) | better |"), "{md}");
    // Per-domain validation: first against last.
    assert!(md.contains("| zh-news | 20.086 | 11.023 |"), "{md}");
    // Topic weights: initial shares and the last adjustment.
    assert!(md.contains("en-wiki: 2 re-weightings") && md.contains("| STEM | 0.5000 | 0.6000 |"), "{md}");
    // Planned against consumed, per stage and source.
    assert!(md.contains("| two | zh-news | 1,024 | 1,024 | = |"), "{md}");
    // The curriculum's buckets with the tokens each stage read from them.
    assert!(md.contains("| 2 | 10 | 25.00 | 34.00 | 0 | 512 |"), "{md}");
    // A group mixed over its sources: its weights from the [mixture] shares, and the sources' losses.
    assert!(md.contains("group all: 2 re-weightings") && md.contains("| zh-news | 0.5000 | 0.3000 |"), "{md}");
    let plots = [
        "training-loss",
        "validation-loss",
        "source-loss-group-all",
        "source-weights-group-all",
        "topic-loss-en-wiki",
        "topic-weights-en-wiki",
        "tokens-per-source",
        "curriculum-zh-news",
    ];
    for p in plots {
        assert!(md.contains(&format!("(plots/{p}.svg)")), "{p}");
        let svg = std::fs::read_to_string(dir.path().join(format!("report/plots/{p}.svg"))).unwrap();
        assert!(svg.starts_with("<svg") && svg.contains("<polyline") || svg.contains("<rect"), "{p}");
    }
    assert_eq!(r.plots.len(), plots.len());
    // The HTML page holds every plot inline (no file or network reference).
    let html = std::fs::read_to_string(&r.html).unwrap();
    assert_eq!(html.matches("src=\"data:image/svg+xml;base64,").count(), plots.len());
    assert!(!html.contains("src=\"plots/") && !html.contains("http"));
    assert!(html.contains("<td>zh-news</td>"));
}

#[test]
fn a_bad_run_file_is_named_with_its_line() {
    let dir = tempfile::tempdir().unwrap();
    fixture(dir.path());
    let p = dir.path().join("train/validation.jsonl");
    let text = std::fs::read_to_string(&p).unwrap();
    let line2 = text.lines().nth(1).unwrap();
    assert!(line2.contains("\"loss\":2.6"), "{line2}");
    std::fs::write(&p, text.replacen("\"loss\":2.6", "\"loss\":\"x\"", 1)).unwrap();
    let e = write_report(dir.path()).unwrap_err().to_string();
    assert!(e.contains("validation.jsonl") && e.contains("line 2") && e.contains("invalid type"), "{e}");
    std::fs::remove_file(dir.path().join("manifest.json")).unwrap();
    let e = write_report(dir.path()).unwrap_err().to_string();
    assert!(e.contains("manifest.json: cannot read"), "{e}");
    // A manifest missing a field is refused with the field's name, not read with a default.
    fixture(dir.path());
    let m = dir.path().join("manifest.json");
    let text = std::fs::read_to_string(&m).unwrap().replace("\"recipe_sha256\"", "\"recipe_sha\"");
    std::fs::write(&m, text).unwrap();
    let e = write_report(dir.path()).unwrap_err().to_string();
    assert!(e.contains("manifest.json") && e.contains("recipe_sha256"), "{e}");
    assert!(!dir.path().join("report/report.html").exists(), "no half report");
}

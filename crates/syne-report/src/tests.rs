use super::*;

/// A small run folder in `syne run`'s formats: two stages, a topic source re-weighted twice, a
/// curriculum source with 4 buckets, two held-out domains, before/after evaluation.
fn fixture(dir: &Path) {
    let w = |p: &str, s: String| {
        let path = dir.join(p);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, s).unwrap();
    };
    let metrics: String = (1..=8).map(|i| format!("{{\"step\":{i},\"tokens\":{},\"loss\":{}}}\n", i * 1024, 3.0 - 0.1 * i as f64)).collect();
    w("train/metrics.jsonl", metrics);
    let val = |t: u64, zh: f64, en: f64| {
        format!(
            "{{\"tokens\":{t},\"domains\":[{{\"name\":\"zh-news\",\"docs\":8,\"loss\":{zh},\"perplexity\":{},\"bits_per_char\":{}}},{{\"name\":\"en-wiki\",\"loss\":{en},\"perplexity\":{},\"bits_per_char\":1.0,\"topics\":{{\"STEM\":{{\"docs\":2,\"tokens\":100,\"loss\":{}}},\"Humanities\":{{\"docs\":2,\"tokens\":90,\"loss\":{}}}}}}}]}}\n",
            zh.exp(),
            zh * 2.0,
            en.exp(),
            en + 0.2,
            en - 0.1
        )
    };
    w("train/validation.jsonl", val(0, 3.0, 2.5) + &val(4096, 2.6, 2.5) + &val(8192, 2.4, 2.45));
    w(
        "train/mixture.jsonl",
        "{\"tokens\":4096,\"event\":[{\"source\":\"en-wiki\",\"adjustment\":{\"ratios\":[0.55,0.45]}}]}\n{\"tokens\":8192,\"event\":[{\"source\":\"en-wiki\",\"adjustment\":{\"ratios\":[0.6,0.4]}}]}\n".into(),
    );
    let notes: String = (0..40).map(|i| format!("{{\"topic\":null,\"topic_prob\":null,\"perplexity\":{}}}\n", 5.0 + i as f64)).collect();
    w("notes/zh-news.jsonl", notes);
    let results = |acc: f64, ppl: f64| {
        format!(
            "{{\"model\":{{}},\"config\":{{}},\"results\":{{\"arc_easy:0shot\":{{\"task\":\"arc_easy\",\"shots\":0,\"n\":200,\"metrics\":{{\"acc\":{{\"value\":{acc},\"stderr\":0.03}}}}}},\"zh-news\":{{\"task\":\"zh-news\",\"n\":8,\"metrics\":{{\"perplexity\":{{\"value\":{ppl}}},\"bits_per_char\":{{\"value\":{}}}}}}}}}}}",
            ppl.ln() * 2.0
        )
    };
    w("eval/before/results.json", results(0.50, 20.0));
    w("eval/after/results.json", results(0.49, 12.0));
    let d = dir.display();
    w(
        "manifest.json",
        format!(
            r#"{{"recipe":"recipes/demo.toml","recipe_sha256":"0123456789abcdef","train":{{"tokens":8192,"steps":8}},
            "eval":{{"before":"{d}/eval/before/results.json","after":"{d}/eval/after/results.json"}},
            "notes":{{"zh-news":{{"file":"{d}/notes/zh-news.jsonl"}}}},
            "account":{{"stages":[
              {{"name":"one","planned_tokens":{{"zh-news":2048,"en-wiki":4096}},"consumed":{{"zh-news":{{"tokens":2048,"buckets":{{"0":1024,"1":1024}}}},"en-wiki":{{"tokens":4096}}}}}},
              {{"name":"two","planned_tokens":{{"zh-news":1024,"en-wiki":1024}},"consumed":{{"zh-news":{{"tokens":1024,"buckets":{{"2":512,"3":512}}}},"en-wiki":{{"tokens":1024}}}}}}],
             "topics":{{"en-wiki":{{"topics":["STEM","Humanities"],"initial_ratios":[0.5,0.5]}}}},
             "sources":{{"zh-news":{{"buckets":[
               {{"bucket":0,"docs":10,"min_perplexity":5,"max_perplexity":14}},{{"bucket":1,"docs":10,"min_perplexity":15,"max_perplexity":24}},
               {{"bucket":2,"docs":10,"min_perplexity":25,"max_perplexity":34}},{{"bucket":3,"docs":10,"min_perplexity":35,"max_perplexity":44}}]}},
               "en-wiki":{{"buckets":[]}}}}}}}}"#
        ),
    );
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
    let plots = ["training-loss", "validation-loss", "topic-loss-en-wiki", "topic-weights-en-wiki", "tokens-per-source", "curriculum-zh-news"];
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
    std::fs::write(&p, text.replacen("\"loss\":2.6", "\"loss\":\"x\"", 1)).unwrap();
    let e = write_report(dir.path()).unwrap_err().to_string();
    assert!(e.contains("validation.jsonl:2: field `loss` is missing or not a number"), "{e}");
    std::fs::remove_file(dir.path().join("manifest.json")).unwrap();
    let e = write_report(dir.path()).unwrap_err().to_string();
    assert!(e.contains("manifest.json: cannot read"), "{e}");
    assert!(!dir.path().join("report/report.html").exists(), "no half report");
}

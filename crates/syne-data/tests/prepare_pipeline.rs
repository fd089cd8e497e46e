//! `syne prepare` end to end, as a library: bad input of every kind is skipped and counted
//! with its file and line (or fails in strict mode), formats are equivalent, and output is
//! identical across thread counts, on real corpora.

use crate::common;

use common::tree;

use std::io::Write;
use std::path::{Path, PathBuf};

use syne_data::io::write_parquet;
use syne_data::prepare::{run_prepare, run_prepare_config, Manifest, PrepareConfig, PrepareOptions};
use syne_data::shards::ShardReader;
use syne_data::BadRecordKind;

fn quiet(threads: usize) -> PrepareOptions {
    PrepareOptions { threads, strict: false, progress: false, keep_work: false }
}

/// The first `n` lines of a real corpus, copied to `dir/name`.
fn real_subset(corpus: &str, n: usize, dir: &Path, name: &str) -> PathBuf {
    let text = std::fs::read_to_string(common::asset(&format!("corpora/{corpus}.jsonl"))).unwrap();
    let out = dir.join(name);
    let lines: Vec<&str> = text.lines().take(n).collect();
    std::fs::write(&out, lines.join("\n") + "\n").unwrap();
    out
}

fn config(tokenizer: &Path, sources: &str) -> String {
    format!(
        "[prepare]\noutput = \"out\"\ntokenizer = \"{}\"\nbatch_docs = 64\nmegatron = true\n\
         [prepare.filters]\nmin_chars = 5\n{sources}",
        tokenizer.display()
    )
}

#[test]
fn bad_records_are_skipped_counted_and_located() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let good = "线粒体是一种存在于大多数真核细胞中的细胞器，由两层膜包被，是细胞中制造能量的结构。";
    // A JSONL file with one bad record of every kind between good ones.
    let mut f = std::fs::File::create(d.join("mixed.jsonl")).unwrap();
    writeln!(f, "{}", serde_json::json!({"id": "a", "text": good})).unwrap(); // line 1
    writeln!(f, "{{\"id\": \"b\", \"text\": \"unterminated").unwrap(); // line 2: malformed
    f.write_all(b"{\"id\": \"c\", \"text\": \"bad \xff\xfe utf8\"}\n").unwrap(); // line 3
    writeln!(f, "{}", serde_json::json!({"id": "d", "body": good})).unwrap(); // line 4: missing
    writeln!(f, "{}", serde_json::json!({"id": "e", "text": 42})).unwrap(); // line 5: non-string
    writeln!(f, "{}", serde_json::json!({"id": "f", "text": "   "})).unwrap(); // line 6: empty
    writeln!(f, "[1, 2, 3]").unwrap(); // line 7: not an object
                                       // line 8: a single 50 MB document (dropped by the max_chars rule, not a crash).
    let huge = "这是一个非常长的文档。".repeat(50_000_000 / 33);
    writeln!(f, "{}", serde_json::json!({"id": "huge", "text": huge})).unwrap();
    drop(huge);
    let other = "北京是中华人民共和国的首都，是全国的政治中心、文化中心，也是历史悠久的古都。";
    writeln!(f, "{}", serde_json::json!({"id": "g", "text": other})).unwrap(); // line 9
    drop(f);

    // Truncated gzip and zstd streams, a truncated Parquet file, an unreadable file.
    // Distinct documents (no near-duplicates among them or with the ones above).
    let docs: Vec<String> = (0..400u64)
        .map(|i| {
            let chars: String = (0..40u64).map(|k| char::from_u32(0x4E00 + ((i * 7919 + k * 104_729) % 20_000) as u32).unwrap()).collect();
            format!("第{i}号文档：{chars}。")
        })
        .collect();
    let lines: String = docs.iter().enumerate().map(|(i, t)| serde_json::json!({"id": format!("z{i}"), "text": t}).to_string() + "\n").collect();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(lines.as_bytes()).unwrap();
    let gz = gz.finish().unwrap();
    std::fs::write(d.join("trunc.jsonl.gz"), &gz[..gz.len() / 2]).unwrap();
    let zst = zstd::encode_all(lines.as_bytes(), 3).unwrap();
    std::fs::write(d.join("trunc.jsonl.zst"), &zst[..zst.len() / 2]).unwrap();
    let pq: Vec<(Option<String>, String)> = docs.iter().map(|t| (None, t.clone())).collect();
    write_parquet(&d.join("full.parquet"), &pq, 50).unwrap();
    let bytes = std::fs::read(d.join("full.parquet")).unwrap();
    std::fs::write(d.join("trunc.parquet"), &bytes[..bytes.len() - 100]).unwrap();
    std::os::unix::fs::symlink(d.join("does-not-exist.jsonl"), d.join("unreadable.jsonl")).unwrap();

    let tok = common::asset("tokenizers/llama3/tokenizer.json");
    let sources = "[sources.mixed]\npaths = [\"mixed.jsonl\"]\nlanguage = \"zh\"\n\
        [sources.damaged]\npaths = [\"trunc.jsonl.gz\", \"trunc.jsonl.zst\", \"trunc.parquet\"]\nlanguage = \"zh\"\n";
    // An input that cannot be opened fails the run before any work, naming the file.
    let with_missing = sources.replace("\"trunc.parquet\"]", "\"trunc.parquet\", \"unreadable.jsonl\"]");
    std::fs::write(d.join("missing.toml"), config(&tok, &with_missing)).unwrap();
    let err = run_prepare(&d.join("missing.toml"), None, &quiet(2)).unwrap_err().to_string();
    assert!(err.contains("unreadable.jsonl"), "{err}");
    assert!(!d.join("out/manifest.json").exists());
    std::fs::write(d.join("prep.toml"), config(&tok, sources)).unwrap();

    let r = run_prepare(&d.join("prep.toml"), None, &quiet(2)).unwrap();
    let m = &r.manifest;
    let mixed = &m.sources["mixed"];
    assert_eq!(mixed.docs_in, 9);
    for kind in [BadRecordKind::MalformedJson, BadRecordKind::InvalidUtf8, BadRecordKind::MissingText, BadRecordKind::NonStringText, BadRecordKind::EmptyText] {
        assert!(mixed.bad_records.get(&kind).copied().unwrap_or(0) >= 1, "{kind:?} not counted: {:?}", mixed.bad_records);
    }
    assert_eq!(mixed.bad_records[&BadRecordKind::MalformedJson], 2, "line 2 and the array on line 7");
    assert_eq!(mixed.filtered.get("max_chars"), Some(&1), "the 50 MB document");
    assert_eq!(mixed.docs_out, 2);
    let errors = m.errors.join("\n");
    let mixed_path = d.join("mixed.jsonl");
    for line in [2, 3, 4, 5, 6, 7] {
        assert!(errors.contains(&format!("{}:{line}:", mixed_path.display())), "line {line} not reported:\n{errors}");
    }
    let damaged = &m.sources["damaged"];
    assert_eq!(damaged.damaged_files, 3, "{errors}");
    assert!(damaged.docs_out > 0 && damaged.docs_out < 3 * 400, "records before the damage are kept");
    for name in ["trunc.jsonl.gz", "trunc.jsonl.zst", "trunc.parquet"] {
        assert!(errors.contains(name), "{name} not reported:\n{errors}");
    }
    assert_eq!(m.total.accounted(), m.total.docs_in, "every document is accounted for");
    assert!(r.out_dir.join("manifest.json").exists());

    // Strict mode: the first bad record fails the run, naming file and line; no manifest.
    let strict = PrepareOptions { strict: true, ..quiet(1) };
    let out = d.join("strict-out");
    let err = run_prepare(&d.join("prep.toml"), Some(&out), &strict).unwrap_err().to_string();
    assert!(err.contains("trunc.jsonl.gz:") && err.contains("incomplete"), "{err}");
    assert!(!out.join("manifest.json").exists());
    let only_mixed = "[sources.mixed]\npaths = [\"mixed.jsonl\"]\nlanguage = \"zh\"\n";
    std::fs::write(d.join("strict.toml"), config(&tok, only_mixed)).unwrap();
    // (The folder of the failed run refuses a different configuration: use another one.)
    let err = run_prepare(&d.join("strict.toml"), Some(&out), &strict).unwrap_err().to_string();
    assert!(err.contains("different configuration"), "{err}");
    let out2 = d.join("strict-out2");
    let err = run_prepare(&d.join("strict.toml"), Some(&out2), &strict).unwrap_err().to_string();
    assert!(err.contains(&format!("{}:2", mixed_path.display())), "{err}");
    assert!(!out2.join("manifest.json").exists());
}

#[test]
fn configuration_errors_name_the_key_and_file() {
    let dir = tempfile::tempdir().unwrap();
    let tok = common::asset("tokenizers/llama3/tokenizer.json");
    let path = dir.path().join("bad.toml");
    std::fs::write(&path, config(&tok, "[sources.x]\npaths = [\"a.jsonl\"]\nlanguage = \"zh\"\nshard_size = 3\n")).unwrap();
    let err = PrepareConfig::load(&path).unwrap_err().to_string();
    assert!(err.contains("bad.toml") && err.contains("shard_size"), "{err}");

    std::fs::write(&path, config(&tok, "[sources.x]\npaths = [\"a.jsonl\"]\nlanguage = \"klingon\"\n")).unwrap();
    let err = PrepareConfig::load(&path).unwrap_err().to_string();
    assert!(err.contains("sources.x.language") || err.contains("klingon"), "{err}");

    std::fs::write(&path, config(&tok, "[sources.x]\npaths = [\"a.jsonl\"]\nlanguage = \"zh\"\nfilters = { min_chars = \"ten\" }\n")).unwrap();
    let err = PrepareConfig::load(&path).unwrap_err().to_string();
    assert!(err.contains("sources.x.filters"), "{err}");

    std::fs::write(dir.path().join("a.jsonl"), "{\"text\": \"hello world, this is a document\"}\n").unwrap();
    std::fs::write(&path, config(Path::new("/no/such/tokenizer.json"), "[sources.x]\npaths = [\"a.jsonl\"]\nlanguage = \"en\"\n")).unwrap();
    let err = run_prepare(&path, None, &quiet(1)).unwrap_err().to_string();
    assert!(err.contains("/no/such/tokenizer.json"), "{err}");
}

#[test]
fn output_is_identical_across_thread_counts_on_real_corpora() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    real_subset("zh-peoples-daily", 600, d, "news.jsonl");
    real_subset("en-wiki-summaries", 1500, d, "wiki.jsonl");
    real_subset("zh-reviews", 3000, d, "reviews.jsonl");
    let tok = common::asset("models/SmolLM2-135M-Instruct.Q4_1.gguf");
    let sources = "[sources.news]\npaths = [\"news.jsonl\"]\nlanguage = \"zh\"\n\
        [sources.wiki]\npaths = [\"wiki.jsonl\"]\nlanguage = \"en\"\n\
        [sources.reviews]\npaths = [\"reviews.jsonl\"]\nlanguage = \"auto\"\n";
    let cfg = PrepareConfig::parse(&config(&tok, sources), &d.join("x.toml")).unwrap();
    let one = run_prepare_config(&cfg, d, &d.join("t1"), &quiet(1)).unwrap();
    let two = run_prepare_config(&cfg, d, &d.join("t2"), &quiet(2)).unwrap();
    let (a, b) = (tree(&d.join("t1")), tree(&d.join("t2")));
    assert_eq!(a.keys().collect::<Vec<_>>(), b.keys().collect::<Vec<_>>());
    for (k, v) in &a {
        assert!(v == &b[k], "{k} differs between 1 and 2 threads");
    }
    let m = &one.manifest;
    assert_eq!(m.total.docs_in, 5100);
    assert!(m.total.exact_duplicates > 0, "the review corpus holds exact duplicates");
    assert!(m.total.tokens_out > 1_000_000);
    assert_eq!(m.tokenizer.vocab_size, 49_152);
    // Shards decode back to the documents: EOS ends every document, SmolLM2 adds no BOS.
    let shards = Manifest::load(&d.join("t1")).unwrap().open_shards(&d.join("t1")).unwrap();
    for s in &shards {
        for i in 0..s.num_docs() {
            let doc = s.doc(i);
            assert_eq!(doc.get(doc.len() - 1), 2);
            assert_ne!(doc.get(0), 1);
        }
    }
    assert_eq!(two.manifest.config_sha256, m.config_sha256);
    // A second run on a finished folder does nothing and changes nothing.
    let again = run_prepare_config(&cfg, d, &d.join("t1"), &quiet(2)).unwrap();
    assert!(again.already_complete);
    assert_eq!(tree(&d.join("t1")), a);
}

#[test]
fn all_input_formats_give_the_same_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let src = real_subset("en-wiki-summaries", 300, d, "plain.jsonl");
    let text = std::fs::read(&src).unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&text).unwrap();
    std::fs::write(d.join("g.jsonl.gz"), gz.finish().unwrap()).unwrap();
    std::fs::write(d.join("z.jsonl.zst"), zstd::encode_all(&text[..], 3).unwrap()).unwrap();
    let docs: Vec<(Option<String>, String)> = String::from_utf8(text)
        .unwrap()
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            (v["id"].as_str().map(str::to_owned), v["text"].as_str().unwrap().to_owned())
        })
        .collect();
    write_parquet(&d.join("p.parquet"), &docs, 64).unwrap();
    let tok = common::asset("tokenizers/llama3/tokenizer.json");
    let mut tokens = Vec::new();
    for (i, file) in ["plain.jsonl", "g.jsonl.gz", "z.jsonl.zst", "p.parquet"].iter().enumerate() {
        let sources = format!("[sources.s]\npaths = [\"{file}\"]\nlanguage = \"en\"\n");
        let cfg = PrepareConfig::parse(&config(&tok, &sources), &d.join("x.toml")).unwrap();
        let out = d.join(format!("o{i}"));
        let r = run_prepare_config(&cfg, d, &out, &quiet(2)).unwrap();
        assert_eq!(r.manifest.total.docs_in, 300, "{file}");
        let shard = ShardReader::open(&out.join("shards").join(&r.manifest.shards[0].name)).unwrap();
        assert_eq!(shard.width(), syne_data::shards::TokenWidth::U32, "Llama-3 ids need u32");
        tokens.push(shard.tokens().to_vec());
    }
    for t in &tokens[1..] {
        assert_eq!(t, &tokens[0]);
    }
}

#[test]
fn topic_and_perplexity_fields_reach_the_document_metadata() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let text = std::fs::read_to_string(common::asset("corpora/en-wiki-summaries.jsonl")).unwrap();
    let mut lines = String::new();
    for (i, l) in text.lines().take(50).enumerate() {
        let mut v: serde_json::Value = serde_json::from_str(l).unwrap();
        v["topic"] = serde_json::json!(if i % 2 == 0 { "science" } else { "history" });
        v["ppl"] = serde_json::json!(10.0 + i as f64 / 4.0);
        lines.push_str(&v.to_string());
        lines.push('\n');
    }
    std::fs::write(d.join("t.jsonl"), lines).unwrap();
    let tok = common::asset("tokenizers/llama3/tokenizer.json");
    let sources = "[sources.wiki]\npaths = [\"t.jsonl\"]\nlanguage = \"en\"\ntopic_field = \"topic\"\nperplexity_field = \"ppl\"\n";
    let cfg = PrepareConfig::parse(&config(&tok, sources), &d.join("x.toml")).unwrap();
    let r = run_prepare_config(&cfg, d, &d.join("o"), &quiet(2)).unwrap();
    let shard = &r.manifest.shards[0];
    let meta = std::fs::read_to_string(d.join("o/shards").join(format!("{}.docs.jsonl", shard.name))).unwrap();
    let metas: Vec<syne_data::prepare::DocMeta> = meta.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(metas.len() as u64, shard.docs);
    assert!(metas.iter().all(|m| m.topic.as_deref() == Some("science") || m.topic.as_deref() == Some("history")));
    assert!(metas.iter().all(|m| m.perplexity.is_some_and(|p| (10.0..23.0).contains(&p))));
    assert!(metas.iter().all(|m| m.pos.contains("t.jsonl:") && m.content_hash.len() == 32));
}

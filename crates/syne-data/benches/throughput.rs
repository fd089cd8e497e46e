//! Throughput of pipeline stages on a given input, for the peer comparisons in scripts/bench/.
//! Not a criterion bench: each mode runs one measured pass over real data and prints one JSON
//! line, so a shell script can run the peer on the same input in the same run.
//!
//! cargo bench -p syne-data --bench throughput -- tokenize FILE.jsonl TOKENIZER THREADS
//! cargo bench -p syne-data --bench throughput -- dedup OUT.jsonl THREADS NGRAM BANDS ROWS FILE...

use std::path::PathBuf;
use std::time::Instant;

use syne_data::dedup::{dedup_corpus, DedupConfig};
use syne_data::io::{CorpusReader, FieldSpec};
use syne_data::tokenizer::TextTokenizer;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| a != "--bench").collect();
    let threads = |i: usize| args.get(i).map(|s| s.parse::<usize>().expect("THREADS")).unwrap_or(2);
    match args.first().map(String::as_str) {
        Some("tokenize") => {
            let texts: Vec<String> =
                CorpusReader::open(&PathBuf::from(&args[1]), &FieldSpec::default()).expect("input").map(|d| d.expect("record").text).collect();
            let bytes: usize = texts.iter().map(String::len).sum();
            let tok = TextTokenizer::load(&PathBuf::from(&args[2])).expect("tokenizer");
            let pool = rayon::ThreadPoolBuilder::new().num_threads(threads(3)).build().unwrap();
            // Warm-up on a small slice (BPE caches, page faults), then one measured pass in the
            // pipeline's batch size.
            pool.install(|| tok.encode_batch(&texts[..texts.len().min(200)]).unwrap());
            let t = Instant::now();
            let tokens: usize = pool.install(|| texts.chunks(1024).map(|c| tok.encode_batch(c).unwrap().iter().map(Vec::len).sum::<usize>()).sum());
            let s = t.elapsed().as_secs_f64();
            println!(
                "{}",
                serde_json::json!({"impl": "syne", "docs": texts.len(), "bytes": bytes, "tokens": tokens,
                    "seconds": s, "mb_per_s": bytes as f64 / 1e6 / s})
            );
        }
        Some("dedup") => {
            let cfg =
                DedupConfig { ngram: args[3].parse().unwrap(), bands: args[4].parse().unwrap(), rows: args[5].parse().unwrap(), ..DedupConfig::default() };
            let inputs: Vec<PathBuf> = args[6..].iter().map(PathBuf::from).collect();
            let pool = rayon::ThreadPoolBuilder::new().num_threads(threads(2)).build().unwrap();
            let t = Instant::now();
            let r = pool.install(|| dedup_corpus(&inputs, &FieldSpec::default(), &cfg, &PathBuf::from(&args[1]))).expect("dedup");
            let s = t.elapsed().as_secs_f64();
            println!(
                "{}",
                serde_json::json!({"impl": "syne", "docs": r.docs_in, "removed": r.removed, "seconds": s,
                    "docs_per_s": r.docs_in as f64 / s})
            );
        }
        _ => {
            eprintln!("usage: throughput tokenize FILE TOKENIZER [THREADS] | dedup OUT THREADS NGRAM BANDS ROWS FILE...");
            std::process::exit(2);
        }
    }
}

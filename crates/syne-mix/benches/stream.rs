//! The mixture stream's cost per training sequence, against a SmolLM2-135M training step.
//!
//! ```text
//! cargo bench -p syne-mix --bench stream -- [PREPARED_DIR] [--seq-len N] [--step-seconds S]
//! ```
//!
//! Reads the shards of a `syne prepare` output (default `runs/demo/data`, the demo corpora
//! prepared for SmolLM2: `scripts/demo` or `syne prepare recipes/demo.toml`), plans two stages
//! over every source found (the first with topics on the largest English source, 11 topics, and
//! the curriculum on every Chinese source, 10 buckets), then draws every sequence of the plan
//! with segment ids (what `syne run` asks for) and reports ns per sequence and the overhead per
//! optimizer step of 4 x SEQ tokens against `--step-seconds` (default 14.1 s: 2,048 tokens at the
//! 145 tokens/s SmolLM2-135M trains at on 2 cores, BENCHMARKS.md).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

use syne_data::prepare::Manifest;
use syne_data::shards::ShardReader;
use syne_data::stream::SequenceSource;
use syne_mix::plan::Plan;
use syne_mix::recipe::Recipe;
use syne_mix::sampler::Schedule;
use syne_mix::stream::{DocNote, GroupMixing, MixtureStream, SourceInput, StreamSettings};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| a != "--bench").collect();
    let flag = |name: &str| args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).map(String::as_str);
    let seq_len: usize = flag("--seq-len").map_or(512, |v| v.parse().expect("--seq-len"));
    let step_seconds: f64 = flag("--step-seconds").map_or(14.1, |v| v.parse().expect("--step-seconds"));
    let dir = args
        .iter()
        .find(|a| !a.starts_with("--") && flag("--seq-len") != Some(a.as_str()) && flag("--step-seconds") != Some(a.as_str()))
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../runs/demo/data"));
    let manifest = Manifest::load(&dir).unwrap_or_else(|e| panic!("{e}: prepare the demo corpora first (scripts/demo)"));
    let mut by_lang: BTreeMap<String, Vec<(String, u64)>> = BTreeMap::new();
    for (name, c) in &manifest.sources {
        let lang = manifest.shards.iter().find(|s| &s.source == name).map(|s| s.lang.clone()).unwrap_or_default();
        by_lang.entry(lang).or_default().push((name.clone(), c.tokens_out));
    }
    let topic_source = by_lang.get("en").and_then(|v| v.iter().max_by_key(|(_, t)| *t)).map(|(n, _)| n.clone());
    // Recipe: both stages read ~90% of every source at the languages' natural shares.
    let total: u64 = manifest.sources.values().map(|c| c.tokens_out).sum();
    let mut text = String::from("[run]\nname = \"bench\"\noutput = \"out\"\n[topics]\ninterval_tokens = 1000000\nclassifier = \"unused\"\n[curriculum]\norder = \"ascending\"\nbuckets = 10\n");
    for (lang, srcs) in &by_lang {
        let lt: u64 = srcs.iter().map(|(_, t)| t).sum();
        text += &format!("[mixture.{lang}]\n");
        let mut shares: Vec<f64> = srcs.iter().map(|(_, t)| (*t as f64 / lt as f64 * 1000.0).floor() / 1000.0).collect();
        let rest = 1.0 - shares.iter().sum::<f64>();
        shares[0] = ((shares[0] + rest) * 1000.0).round() / 1000.0;
        for ((n, _), s) in srcs.iter().zip(shares) {
            text += &format!("\"{n}\" = {s}\n");
        }
        for (n, _) in srcs {
            text += &format!("[sources.\"{n}\"]\nlanguage = \"{lang}\"\n");
        }
    }
    let mut groups: Vec<(String, f64)> =
        by_lang.iter().map(|(l, s)| (l.clone(), (s.iter().map(|(_, t)| *t).sum::<u64>() as f64 / total as f64 * 1000.0).floor() / 1000.0)).collect();
    let rest = 1.0 - groups.iter().map(|g| g.1).sum::<f64>();
    groups[0].1 = ((groups[0].1 + rest) * 1000.0).round() / 1000.0;
    let g = groups.iter().map(|(l, s)| format!("{l} = {s}")).collect::<Vec<_>>().join(", ");
    let budget = (total as f64 * 0.9) as u64 / 2;
    for name in ["one", "two"] {
        text += &format!("[[stages]]\nname = \"{name}\"\ntokens = {budget}\ngroups = {{ {g} }}\n");
    }
    let recipe = Recipe::from_str_at(&text, std::path::Path::new("bench.toml")).expect("recipe");
    let schedule = Schedule::from_plan(&Plan::new(&recipe), seq_len as u64, 1).expect("schedule");
    let inputs: Vec<SourceInput> = manifest
        .sources
        .keys()
        .map(|name| {
            let shards: Vec<ShardReader> =
                manifest.shards.iter().filter(|s| &s.source == name).map(|s| ShardReader::open(&dir.join("shards").join(&s.name)).expect("shard")).collect();
            let docs: usize = shards.iter().map(|s| s.num_docs()).sum();
            let topics = topic_source.as_deref() == Some(name.as_str());
            let curriculum = by_lang.get("zh").is_some_and(|v| v.iter().any(|(n, _)| n == name));
            // Stand-in labels and scores (the stream's cost does not depend on their values).
            let notes =
                (0..docs).map(|i| DocNote { topic: topics.then_some((i % 11) as u16), perplexity: Some((i * 7919 % 1000) as f64), heldout: false }).collect();
            SourceInput {
                name: name.clone(),
                shards,
                topics: if topics { (0..11).map(|t| format!("t{t}")).collect() } else { vec![] },
                notes,
                curriculum,
                max_epochs: 1.0,
            }
        })
        .collect();
    let settings = StreamSettings {
        seq_len,
        seed: 1,
        curriculum: recipe.curriculum.clone(),
        topics: recipe.topics.clone(),
        source_mixing: GroupMixing::from_recipe(&recipe),
    };
    let built = Instant::now();
    let mut stream = MixtureStream::new(schedule, inputs, settings).expect("stream");
    let build_s = built.elapsed().as_secs_f64();
    let n = stream.planned_sequences().expect("planned");
    let started = Instant::now();
    let mut checksum = 0i64;
    for p in 0..n {
        let s = stream.sequence(p, true).expect("sequence");
        checksum = checksum.wrapping_add(s.tokens[0]).wrapping_add(s.segments[seq_len]);
    }
    let secs = started.elapsed().as_secs_f64();
    let per_seq = secs / n as f64;
    let per_step = per_seq * 4.0;
    println!(
        "{} ({} tokens, {} sources): {n} sequences of {seq_len} tokens drawn in {secs:.3} s (stream built in {build_s:.3} s)",
        dir.display(),
        total,
        manifest.sources.len()
    );
    println!(
        "per sequence: {:.1} µs; per step of 4 sequences: {:.1} µs = {:.5}% of a {step_seconds} s SmolLM2-135M step (checksum {checksum})",
        per_seq * 1e6,
        per_step * 1e6,
        per_step / step_seconds * 100.0
    );
}

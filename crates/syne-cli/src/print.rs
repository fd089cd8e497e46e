//! What the commands print on standard output (tables, summaries); progress and notes go to
//! standard error through [`crate::progress`].

use syne_data::prepare::{Counts, PrepareReport};
use syne_pipeline::inspect::Inspection;

/// `syne prepare`'s table: per source, where every document read went.
pub fn prepare_summary(r: &PrepareReport) {
    let m = &r.manifest;
    if r.already_complete {
        println!("{} is already complete (same configuration); nothing to do.", r.out_dir.display());
    }
    println!(
        "{:<24} {:>9} {:>7} {:>9} {:>7} {:>8} {:>8} {:>7} {:>9} {:>12}",
        "source", "docs in", "bad", "filtered", "lang", "exact", "near", "short", "docs out", "tokens out"
    );
    let row = |name: &str, c: &Counts| {
        println!(
            "{:<24} {:>9} {:>7} {:>9} {:>7} {:>8} {:>8} {:>7} {:>9} {:>12}",
            name,
            c.docs_in,
            c.bad_records.values().sum::<u64>(),
            c.filtered.values().sum::<u64>(),
            c.language_mismatch,
            c.exact_duplicates,
            c.near_duplicates,
            c.too_few_tokens,
            c.docs_out,
            c.tokens_out
        );
    };
    for (name, c) in &m.sources {
        row(name, c);
    }
    row("TOTAL", &m.total);
    if !m.total.filtered.is_empty() {
        let parts: Vec<String> = m.total.filtered.iter().map(|(k, v)| format!("{k}={v}")).collect();
        println!("filtered by rule: {}", parts.join(", "));
    }
    if !m.total.bad_records.is_empty() || m.total.damaged_files > 0 {
        let parts: Vec<String> = m.total.bad_records.iter().map(|(k, v)| format!("{}={v}", k.name())).collect();
        println!("bad records: {}; damaged files: {}", parts.join(", "), m.total.damaged_files);
        for e in &m.errors {
            println!("  {e}");
        }
    }
    for (lang, c) in &m.total.languages {
        println!("language {lang}: {} documents, {} tokens", c.docs, c.tokens);
    }
    let mb = r.input_bytes_processed as f64 / 1e6;
    println!(
        "{} shards in {}; tokenizer {} (sha256 {}); {:.1} MB processed in {:.1} s ({:.2} MB/s){}",
        m.shards.len(),
        r.out_dir.join("shards").display(),
        m.tokenizer.path.display(),
        &m.tokenizer.sha256[..12],
        mb,
        r.seconds,
        if r.seconds > 0.0 { mb / r.seconds } else { 0.0 },
        if r.units_resumed > 0 { format!("; resumed {} completed units", r.units_resumed) } else { String::new() }
    );
}

/// `syne inspect`'s listing.
pub fn inspection(dir: &std::path::Path, i: &Inspection) {
    let m = &i.manifest;
    println!(
        "{}: format {}, tokenizer {} ({} tokens, {:?} ids)",
        dir.display(),
        m.format,
        m.tokenizer.path.display(),
        m.tokenizer.vocab_size,
        m.tokenizer.token_width
    );
    println!("{} inputs, {} documents in, {} out, {} tokens", m.inputs.len(), m.total.docs_in, m.total.docs_out, m.total.tokens_out);
    for s in &m.shards {
        println!("  {:<48} {:>4} {:>9} docs {:>12} tokens", s.name, s.lang, s.docs, s.tokens);
    }
    if let Some(n) = i.verified_docs {
        println!("verified {} shards, {n} documents: hashes, counts and metadata agree with the manifest", m.shards.len());
    }
    for s in &i.samples {
        println!("--- {} doc {} ({} tokens) ---\n{}", s.shard, s.doc, s.tokens, s.preview);
    }
}

//! `syne inspect`: what a prepared folder holds, checked against its manifest, with a sample of
//! its documents decoded.

use std::path::Path;

use syne_data::prepare::{verify_output, Manifest};
use syne_data::shards::ShardReader;
use syne_data::tokenizer::TextTokenizer;

use crate::error::{run_err, Result};

/// One decoded document.
pub struct SampleDoc {
    /// Its shard.
    pub shard: String,
    /// Its number in the shard.
    pub doc: usize,
    /// Its tokens.
    pub tokens: usize,
    /// Its first characters.
    pub preview: String,
}

/// What [`inspect`] found.
pub struct Inspection {
    /// The folder's manifest.
    pub manifest: Manifest,
    /// Documents verified against the manifest (when asked).
    pub verified_docs: Option<u64>,
    /// The decoded sample.
    pub samples: Vec<SampleDoc>,
}

/// Read `dir`'s manifest, verify every shard when `verify`, and decode `sample` documents (the
/// first of each shard, then evenly spread), `chars` characters each.
pub fn inspect(dir: &Path, sample: usize, chars: usize, verify: bool) -> Result<Inspection> {
    let manifest = Manifest::load(dir)?;
    let verified_docs = if verify { Some(verify_output(dir)? as u64) } else { None };
    let mut samples = Vec::new();
    if sample > 0 && !manifest.shards.is_empty() {
        let tok = TextTokenizer::load(&manifest.tokenizer.path)?;
        if tok.hash() != manifest.tokenizer.sha256 {
            return Err(run_err(
                &manifest.tokenizer.path,
                format!("no longer matches the tokenizer the shards were made with (sha256 {} != {})", tok.hash(), manifest.tokenizer.sha256),
            ));
        }
        let shards = manifest.open_shards(dir)?;
        let total: usize = shards.iter().map(ShardReader::num_docs).sum();
        let step = (total / sample).max(1);
        let mut global = 0usize;
        'outer: for (entry, shard) in manifest.shards.iter().zip(&shards) {
            for d in 0..shard.num_docs() {
                if global.is_multiple_of(step) {
                    let ids = shard.doc(d).to_vec();
                    let preview: String = tok.decode(&ids)?.chars().take(chars).collect();
                    samples.push(SampleDoc { shard: entry.name.clone(), doc: d, tokens: ids.len(), preview });
                    if samples.len() >= sample {
                        break 'outer;
                    }
                }
                global += 1;
            }
        }
    }
    Ok(Inspection { manifest, verified_docs, samples })
}

//! Step 3 of a run: each document's topic (the recipe's classifier) and the backbone's
//! perplexity on its opening, written per source to `notes/SOURCE.jsonl` chunk by chunk (a
//! killed run keeps the finished chunks), and the held-out documents chosen from them.

use std::collections::BTreeMap;
use std::path::Path;

use syne_data::io::ResumableJsonl;
use syne_data::prepare::Manifest;
use syne_data::shards::ShardReader;
use syne_data::tokenizer::TextTokenizer;
use syne_mix::topics::TopicModel;
use syne_model::llama::Llama;
use syne_model::score::score_documents;
use syne_recipe::records::read_jsonl;
use syne_recipe::records::run::NoteLine;

use crate::error::{run_err, Result};
use crate::observer::{RunObserver, Unit};

/// Documents per annotation chunk (a killed run loses at most one).
const CHUNK_DOCS: usize = 64;

/// The shards of one source in a prepared folder.
pub fn source_shards(dir: &Path, manifest: &Manifest, source: &str) -> Result<Vec<ShardReader>> {
    Ok(manifest.shards.iter().filter(|s| s.source == source).map(|s| ShardReader::open(&dir.join("shards").join(&s.name))).collect::<Result<_, _>>()?)
}

/// The notes of a finished annotation file.
pub fn read_notes(file: &Path) -> Result<Vec<NoteLine>> {
    Ok(read_jsonl(file)?)
}

/// What annotating needs.
pub struct Annotator<'a> {
    /// The shards' tokenizer (documents are classified as text).
    pub tok: &'a TextTokenizer,
    /// The topic classifier, when topic sources are annotated.
    pub topics: Option<&'a TopicModel>,
    /// The backbone, when curriculum sources are scored.
    pub scorer: Option<&'a Llama>,
}

impl Annotator<'_> {
    /// A document's text without the BOS/EOS the shards added.
    pub fn text(&self, ids: &[u32]) -> Result<String> {
        let special = [self.tok.bos_id(), self.tok.eos_id()];
        let ids: Vec<u32> = ids.iter().copied().filter(|t| !special.contains(&Some(*t))).collect();
        Ok(self.tok.decode(&ids)?)
    }

    /// Notes for every document of `shards` into `out` (resumable); `name` is the source;
    /// `perplexity`: the backbone scores each document's first this many tokens.
    pub fn annotate(
        &self,
        name: &str,
        shards: &[ShardReader],
        topics: bool,
        perplexity: Option<usize>,
        out: &Path,
        observer: &mut dyn RunObserver,
    ) -> Result<Vec<NoteLine>> {
        let docs = syne_data::shards::doc_refs(shards);
        if !out.exists() {
            let (mut writer, mut notes): (ResumableJsonl, Vec<NoteLine>) = ResumableJsonl::open(out)?;
            if !notes.is_empty() {
                observer.say(&format!("{name}: {} of {} documents already annotated", notes.len(), docs.len()));
            }
            let bar = observer.progress(&format!("annotating {name}"), Some(docs.len() as u64), Unit::Documents);
            bar.set_position(notes.len() as u64);
            for chunk in docs[notes.len().min(docs.len())..].chunks(CHUNK_DOCS) {
                let ids: Vec<Vec<u32>> = chunk.iter().map(|&(s, d)| shards[s].doc(d).to_vec()).collect();
                let ppl: Vec<Option<f64>> = match (perplexity, self.scorer) {
                    (Some(score_tokens), Some(model)) => {
                        let heads: Vec<Vec<u32>> = ids.iter().map(|d| d[..d.len().min(score_tokens)].to_vec()).collect();
                        score_documents(model, &heads, score_tokens, 8 * score_tokens)
                            .into_iter()
                            .map(|s| (s.predicted > 0).then(|| (s.nll_sum / s.predicted as f64).exp()))
                            .collect()
                    }
                    _ => vec![None; ids.len()],
                };
                let mut lines = Vec::with_capacity(ids.len());
                for (d, p) in ids.iter().zip(ppl) {
                    let (topic, topic_prob) = match (topics, self.topics) {
                        (true, Some(m)) => m.predict(&self.text(d)?).map_or((None, None), |(t, p)| (Some(t.to_string()), Some(p))),
                        _ => (None, None),
                    };
                    lines.push(NoteLine { topic, topic_prob, perplexity: p });
                }
                writer.append(&lines)?;
                bar.inc(lines.len() as u64);
                notes.extend(lines);
            }
            bar.finish();
            writer.finish()?;
        }
        let notes = read_notes(out)?;
        if notes.len() != docs.len() {
            return Err(run_err(out, format!("{} notes for {} documents; remove it to annotate again", notes.len(), docs.len())));
        }
        Ok(notes)
    }
}

/// `per_topic` documents of each topic, chosen by a seeded hash of their number: the held-out set.
pub fn choose_heldout(notes: &[NoteLine], per_topic: usize, seed: u64) -> Vec<bool> {
    let mut by_topic: BTreeMap<&str, Vec<(u64, usize)>> = BTreeMap::new();
    for (i, n) in notes.iter().enumerate() {
        if let Some(t) = &n.topic {
            let key = syne_data::text::mix64(seed ^ syne_data::text::mix64(i as u64));
            by_topic.entry(t).or_default().push((key, i));
        }
    }
    let mut held = vec![false; notes.len()];
    for docs in by_topic.values_mut() {
        docs.sort_unstable();
        // Never hold out a topic's last documents: keep at least half of them for training.
        for &(_, i) in docs.iter().take(per_topic.min(docs.len() / 2)) {
            held[i] = true;
        }
    }
    held
}

/// `n` documents held out of `docs`, chosen by a seeded hash of their number (none when that
/// would leave fewer than half of them for training).
pub fn choose_heldout_plain(docs: usize, n: usize, seed: u64) -> Vec<bool> {
    let mut keys: Vec<(u64, usize)> = (0..docs).map(|i| (syne_data::text::mix64(seed ^ syne_data::text::mix64(i as u64 ^ 0x5eed)), i)).collect();
    keys.sort_unstable();
    let mut held = vec![false; docs];
    for &(_, i) in keys.iter().take(n.min(docs / 2)) {
        held[i] = true;
    }
    held
}

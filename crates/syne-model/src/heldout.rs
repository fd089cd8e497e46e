//! Held-out text scoring (the trainer's validation sets and `syne eval`'s perplexity tasks): loss, perplexity, bits per byte and bits per character for each
//! held-out domain (e.g. Chinese and English), and per topic when the documents carry a topic
//! label: the per-topic losses are what the topic mixture re-weights by.
//!
//! A set is a corpus file (JSONL, .gz, .zst, parquet); its first `max_docs` good documents are
//! tokenized once (BOS as the model wants it, no EOS) and scored whole, window by window, with no
//! gradient. Bits per byte = total NLL / ln 2 / UTF-8 bytes of the texts; bits per character
//! likewise per Unicode scalar (the fairer unit across scripts: a Chinese character is 3 bytes).

use std::collections::BTreeMap;

use crate::error::ModelError;
use crate::lm::LanguageModel;
use crate::score::score_documents;
use syne_data::io::{CorpusReader, FieldSpec};
use syne_data::tokenizer::{BosPolicy, TextTokenizer};
use syne_data::DataError;

pub use syne_recipe::records::eval::DocScore;
pub use syne_recipe::records::train::{DomainMetrics, TopicLoss, ValidationReport};
pub use syne_recipe::train::ValidationSet;

/// A validation set, tokenized.
pub struct LoadedSet {
    /// The set's name (its validation domain).
    pub name: String,
    docs: Vec<Vec<u32>>,
    bytes: Vec<usize>,
    chars: Vec<usize>,
    topics: Vec<Option<String>>,
    /// Bad records skipped while reading (counted in the report).
    pub bad_records: u64,
}

impl LoadedSet {
    /// Read and tokenize `set`.
    pub fn load(set: &ValidationSet, tok: &TextTokenizer) -> Result<LoadedSet, ModelError> {
        let fields = FieldSpec { text: set.text_field.clone(), id: None, topic: set.topic_field.clone(), perplexity: None };
        let mut reader = CorpusReader::open(&set.path, &fields)?;
        let (mut texts, mut topics, mut bad) = (Vec::new(), Vec::new(), 0u64);
        while texts.len() < set.max_docs {
            match reader.next() {
                None => break,
                Some(Ok(mut d)) => {
                    if let Some((cut, _)) = set.max_chars.and_then(|n| d.text.char_indices().nth(n)) {
                        d.text.truncate(cut);
                    }
                    texts.push(d.text);
                    topics.push(d.topic);
                }
                Some(Err(DataError::BadRecord { .. })) => bad += 1,
                Some(Err(e)) => return Err(e.into()),
            }
        }
        if texts.is_empty() {
            return Err(ModelError::Config {
                path: set.path.clone(),
                detail: format!("validation set `{}` has no usable document ({bad} bad records)", set.name),
            });
        }
        let docs: Vec<Vec<u32>> = tok.encode_batch(&texts)?.into_iter().map(|d| tok.with_bos(d, BosPolicy::Model)).collect();
        Ok(LoadedSet {
            name: set.name.clone(),
            bytes: texts.iter().map(String::len).collect(),
            chars: texts.iter().map(|t| t.chars().count()).collect(),
            docs,
            topics,
            bad_records: bad,
        })
    }

    /// Largest token id (checked against the model's vocabulary).
    pub fn max_token(&self) -> Option<u32> {
        self.docs.iter().flatten().copied().max()
    }

    /// Score the set with `model` (windows of `max_len` tokens, `batch_tokens` per pass).
    pub fn evaluate(&self, model: &impl LanguageModel, max_len: usize, batch_tokens: usize) -> DomainMetrics {
        self.evaluate_docs(model, max_len, batch_tokens).0
    }

    /// [`LoadedSet::evaluate`], with every document's score (in the set's order).
    pub fn evaluate_docs(&self, model: &impl LanguageModel, max_len: usize, batch_tokens: usize) -> (DomainMetrics, Vec<DocScore>) {
        let scores = score_documents(model, &self.docs, max_len, batch_tokens);
        let per_doc = scores
            .iter()
            .enumerate()
            .map(|(i, s)| DocScore { nll: s.nll_sum, tokens: s.predicted as u64, bytes: self.bytes[i] as u64, chars: self.chars[i] as u64 })
            .collect();
        let mut m = DomainMetrics { name: self.name.clone(), docs: self.docs.len(), bad_records: self.bad_records, ..Default::default() };
        let mut nll = 0.0;
        let mut topics: BTreeMap<String, (usize, usize, f64)> = BTreeMap::new();
        for (i, s) in scores.iter().enumerate() {
            nll += s.nll_sum;
            m.tokens += s.predicted as u64;
            m.bytes += self.bytes[i] as u64;
            m.chars += self.chars[i] as u64;
            if let Some(t) = &self.topics[i] {
                let e = topics.entry(t.clone()).or_default();
                e.0 += 1;
                e.1 += s.predicted;
                e.2 += s.nll_sum;
            }
        }
        m.loss = nll / m.tokens.max(1) as f64;
        m.perplexity = m.loss.exp();
        m.bits_per_byte = nll / std::f64::consts::LN_2 / m.bytes.max(1) as f64;
        m.bits_per_char = nll / std::f64::consts::LN_2 / m.chars.max(1) as f64;
        m.topics =
            topics.into_iter().map(|(k, (docs, tokens, nll))| (k, TopicLoss { docs, tokens: tokens as u64, loss: nll / tokens.max(1) as f64 })).collect();
        (m, per_doc)
    }
}

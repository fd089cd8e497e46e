//! Counts of what happened to every document, and the files of one work unit.

#[allow(unused_imports)]
use super::*;

// ------------------------------------------------------------------------------------------
// Statistics

/// Counts of one unit, source or run. Every document read ends in exactly one bucket:
/// `docs_in = sum(bad_records) + sum(filtered) + language_mismatch + exact_duplicates +
/// near_duplicates + too_few_tokens + docs_out`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Counts {
    /// Records read (good and bad).
    pub docs_in: u64,
    /// Uncompressed text bytes of the good records read.
    pub text_bytes_in: u64,
    /// Malformed records, per kind.
    pub bad_records: BTreeMap<BadRecordKind, u64>,
    /// Documents dropped by each quality rule (and `empty_after_normalize`).
    pub filtered: BTreeMap<String, u64>,
    /// Documents dropped as another language than their source's.
    pub language_mismatch: u64,
    /// Documents byte-identical (after normalisation) to an earlier one.
    pub exact_duplicates: u64,
    /// Near-duplicates of an earlier kept document.
    pub near_duplicates: u64,
    /// Documents under `min_doc_tokens`.
    pub too_few_tokens: u64,
    /// Documents written.
    pub docs_out: u64,
    /// Tokens written (BOS/EOS included).
    pub tokens_out: u64,
    /// Output documents and tokens per language.
    pub languages: BTreeMap<String, LangCounts>,
    /// Files that could not be read to the end (unreadable, truncated, corrupt).
    pub damaged_files: u64,
}

/// Output documents and tokens of one language.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LangCounts {
    /// Documents.
    pub docs: u64,
    /// Tokens.
    pub tokens: u64,
}

impl Counts {
    pub(super) fn add(&mut self, o: &Counts) {
        self.docs_in += o.docs_in;
        self.text_bytes_in += o.text_bytes_in;
        for (k, v) in &o.bad_records {
            *self.bad_records.entry(*k).or_default() += v;
        }
        for (k, v) in &o.filtered {
            *self.filtered.entry(k.clone()).or_default() += v;
        }
        self.language_mismatch += o.language_mismatch;
        self.exact_duplicates += o.exact_duplicates;
        self.near_duplicates += o.near_duplicates;
        self.too_few_tokens += o.too_few_tokens;
        self.docs_out += o.docs_out;
        self.tokens_out += o.tokens_out;
        for (k, v) in &o.languages {
            let e = self.languages.entry(k.clone()).or_default();
            e.docs += v.docs;
            e.tokens += v.tokens;
        }
        self.damaged_files += o.damaged_files;
    }

    /// Documents accounted for in some bucket (equals `docs_in` when nothing was lost).
    pub fn accounted(&self) -> u64 {
        self.bad_records.values().sum::<u64>()
            + self.filtered.values().sum::<u64>()
            + self.language_mismatch
            + self.exact_duplicates
            + self.near_duplicates
            + self.too_few_tokens
            + self.docs_out
    }
}

// ------------------------------------------------------------------------------------------
// Work-unit files

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct FilteredDoc {
    pub(super) text: String,
    pub(super) id: Option<String>,
    pub(super) pos: String,
    pub(super) lang: Lang,
    pub(super) lang_conf: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) topic: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) perplexity: Option<f64>,
}

/// Phase-1 result of one unit (its file is the unit's completion marker).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct FilterStats {
    pub(super) source: String,
    pub(super) input: PathBuf,
    pub(super) input_sha256: String,
    pub(super) input_bytes: u64,
    pub(super) kept: u64,
    pub(super) counts: Counts,
    pub(super) errors: Vec<String>,
}

/// One shard written by phase 3.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ShardEntry {
    /// Base name under `shards/` (`NAME.bin`, `NAME.idx`, `NAME.docs.jsonl`).
    pub name: String,
    /// The source.
    pub source: String,
    /// The language (`zh`, `en`, `other`).
    pub lang: String,
    /// Documents in it.
    pub docs: u64,
    /// Tokens in it.
    pub tokens: u64,
    /// sha256 of its `.bin` file.
    pub bin_sha256: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct PackStats {
    pub(super) counts: Counts,
    pub(super) shards: Vec<ShardEntry>,
}

/// Per-document metadata written beside each shard (`NAME.docs.jsonl`, one line per document
/// in shard order).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DocMeta {
    /// The record's id field, if any.
    pub id: Option<String>,
    /// The source.
    pub source: String,
    /// The detected (or the source's) language.
    pub lang: Lang,
    /// Confidence of the language detection (0..=1).
    pub lang_conf: f64,
    /// Where the document came from (`file:line` or `file: row N`).
    pub pos: String,
    /// xxh3-128 of the normalised text, hex.
    pub content_hash: String,
    /// Tokens in the shard, BOS/EOS included.
    pub tokens: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    /// The record's topic label, when the source has a topic field.
    pub topic: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    /// The record's perplexity score, when the source has a perplexity field.
    pub perplexity: Option<f64>,
}

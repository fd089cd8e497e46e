//! `[prepare]`: how the sources are cleaned, filtered, deduplicated, tokenized and packed
//! (syne-data runs it).

use std::path::{Component, Path, PathBuf};

use serde::{Deserialize, Serialize};

/// `path` made absolute (against the current folder) with `.` and `..` removed lexically: the
/// one spelling of a path in manifests and identities.
pub fn clean_path(path: &Path) -> PathBuf {
    let abs = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let mut out = PathBuf::new();
    for c in abs.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

/// Whether documents start with the BOS token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum BosPolicy {
    /// Follow the model: GGUF `tokenizer.ggml.add_bos_token`, or `add_bos_token` /
    /// the post-processor of a `tokenizer.json`.
    #[default]
    Model,
    /// Always prepend BOS.
    Always,
    /// Never prepend BOS.
    Never,
}

/// Unicode normalisation form applied to every document.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum UnicodeForm {
    /// Leave code points as they are.
    None,
    /// Canonical composition: safe for every script.
    #[default]
    Nfc,
    /// Compatibility composition: also folds full-width ASCII (common in Chinese text, e.g.
    /// "１９９８") and ligatures to their plain forms.
    Nfkc,
}

/// Normalisation settings (the `[prepare.normalize]` table).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NormalizeConfig {
    /// The Unicode normalisation form.
    pub form: UnicodeForm,
    /// Drop control characters other than `\n` and `\t` (C0, C1, DEL), zero-width
    /// characters and byte-order marks; turn `\r\n` and lone `\r` into `\n`.
    pub strip_control: bool,
    /// Remove trailing spaces of lines and collapse runs of more than two newlines.
    pub tidy_whitespace: bool,
}

impl Default for NormalizeConfig {
    fn default() -> Self {
        NormalizeConfig { form: UnicodeForm::Nfc, strip_control: true, tidy_whitespace: true }
    }
}

/// MinHash-LSH settings (the `[prepare.dedup]` table).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DedupConfig {
    /// Drop documents whose normalised text is byte-identical to an earlier one.
    pub exact: bool,
    /// Drop near-duplicates found by MinHash-LSH.
    pub near: bool,
    /// Shingle size in simplified words (a CJK character is a word).
    pub ngram: usize,
    /// Number of LSH bands.
    pub bands: usize,
    /// Hash functions per band.
    pub rows: usize,
    /// Seed of the hash-function parameters.
    pub seed: u64,
}

impl Default for DedupConfig {
    /// 14 bands x 8 rows, 5-gram shingles: datatrove's defaults (detection probability 50%
    /// at Jaccard ~0.72, 95% at ~0.84).
    fn default() -> Self {
        DedupConfig { exact: true, near: true, ngram: 5, bands: 14, rows: 8, seed: 0x5eed_5e1e }
    }
}

/// One list of quality rules gives both the thresholds ([`QualityConfig`]) and the typed
/// overrides a `[prepare.filters]` or `sources.NAME.filters` table gives ([`FilterOverrides`]):
/// a rule added here is known to both, and to the merge.
macro_rules! quality_rules {
    ($( $(#[$doc:meta])* $name:ident : $ty:ty ),* $(,)?) => {
        /// Quality-filter thresholds (the `[prepare.filters]` table over these defaults; a source
        /// may override any key).
        #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
        #[serde(default, deny_unknown_fields)]
        pub struct QualityConfig {
            $( $(#[$doc])* pub $name: $ty, )*
        }

        /// The keys a `filters` table sets; every other rule keeps its value.
        #[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
        #[serde(default, deny_unknown_fields)]
        pub struct FilterOverrides {
            $( $(#[$doc])* #[serde(skip_serializing_if = "Option::is_none")] pub $name: Option<$ty>, )*
        }

        impl FilterOverrides {
            /// `base` with the keys given here replaced.
            pub fn apply(&self, mut base: QualityConfig) -> QualityConfig {
                $( if let Some(v) = &self.$name { base.$name = v.clone(); } )*
                base
            }
        }
    };
}

quality_rules! {
    /// Minimum number of non-whitespace characters.
    min_chars: Option<usize>,
    /// Maximum number of non-whitespace characters.
    max_chars: Option<usize>,
    /// Minimum number of CJK-aware words.
    min_words: Option<usize>,
    /// Maximum number of CJK-aware words.
    max_words: Option<usize>,
    /// Allowed mean length (in characters) of non-CJK words; checked only when most words are
    /// not CJK.
    mean_word_length: Option<(f64, f64)>,
    /// Maximum ratio of `#` and ellipsis (`...`, `…`) occurrences to words.
    max_hash_ellipsis_ratio: Option<f64>,
    /// Maximum fraction of lines that start with a bullet.
    max_bullet_lines_frac: Option<f64>,
    /// Maximum fraction of lines that end with an ellipsis.
    max_ellipsis_lines_frac: Option<f64>,
    /// Minimum fraction of words that contain a letter (CJK characters count as letters).
    min_alpha_words_frac: Option<f64>,
    /// Maximum fraction of non-whitespace characters that are digits.
    max_digit_frac: Option<f64>,
    /// Maximum fraction of non-whitespace characters that are symbols (not letters, digits,
    /// CJK characters or ordinary punctuation).
    max_symbol_frac: Option<f64>,
    /// Maximum fraction of lines that repeat an earlier line.
    max_dup_line_frac: Option<f64>,
    /// Maximum fraction of characters in repeated lines.
    max_dup_line_char_frac: Option<f64>,
    /// Maximum fraction of paragraphs that repeat an earlier paragraph.
    max_dup_para_frac: Option<f64>,
    /// Maximum fraction of characters in repeated paragraphs.
    max_dup_para_char_frac: Option<f64>,
    /// `(n, max)`: the most frequent n-gram may cover at most `max` of the characters.
    top_ngram_char_frac: Vec<(usize, f64)>,
    /// `(n, max)`: n-grams that occur more than once may cover at most `max` of the characters.
    dup_ngram_char_frac: Vec<(usize, f64)>,
    /// Factor applied to the n of the two n-gram rules for CJK-dominant documents.
    cjk_ngram_scale: usize,
}

impl Default for QualityConfig {
    /// Gopher's published thresholds (Rae et al. 2021), with length bounds in characters.
    fn default() -> Self {
        QualityConfig {
            min_chars: Some(20),
            max_chars: Some(2_000_000),
            min_words: None,
            max_words: Some(200_000),
            mean_word_length: Some((3.0, 10.0)),
            max_hash_ellipsis_ratio: Some(0.1),
            max_bullet_lines_frac: Some(0.9),
            max_ellipsis_lines_frac: Some(0.3),
            min_alpha_words_frac: Some(0.8),
            max_digit_frac: Some(0.3),
            max_symbol_frac: Some(0.25),
            max_dup_line_frac: Some(0.3),
            max_dup_line_char_frac: Some(0.2),
            max_dup_para_frac: Some(0.3),
            max_dup_para_char_frac: Some(0.2),
            top_ngram_char_frac: vec![(2, 0.20), (3, 0.18), (4, 0.16)],
            dup_ngram_char_frac: vec![(5, 0.15), (6, 0.14), (7, 0.13), (8, 0.12), (9, 0.11), (10, 0.10)],
            cjk_ngram_scale: 2,
        }
    }
}

impl QualityConfig {
    /// A configuration with every rule disabled.
    pub fn permissive() -> Self {
        QualityConfig {
            min_chars: None,
            max_chars: None,
            min_words: None,
            max_words: None,
            mean_word_length: None,
            max_hash_ellipsis_ratio: None,
            max_bullet_lines_frac: None,
            max_ellipsis_lines_frac: None,
            min_alpha_words_frac: None,
            max_digit_frac: None,
            max_symbol_frac: None,
            max_dup_line_frac: None,
            max_dup_line_char_frac: None,
            max_dup_para_frac: None,
            max_dup_para_char_frac: None,
            top_ngram_char_frac: vec![],
            dup_ngram_char_frac: vec![],
            cjk_ngram_scale: 1,
        }
    }
}

/// What `[prepare.filters]` and a source's `filters` are applied over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum QualityBase {
    /// Gopher's published thresholds ([`QualityConfig::default`]).
    #[default]
    Gopher,
    /// No rule ([`QualityConfig::permissive`]): only what the overrides switch on.
    None,
}

impl QualityBase {
    /// The thresholds of the base.
    pub fn config(self) -> QualityConfig {
        match self {
            QualityBase::Gopher => QualityConfig::default(),
            QualityBase::None => QualityConfig::permissive(),
        }
    }
}

/// Which documents of a source are kept, by detected language.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SourceLanguage {
    /// Keep Chinese documents only.
    Zh,
    /// Keep English documents only.
    En,
    /// Keep everything; route each document to its detected language (`zh`/`en`/`other`).
    Auto,
    /// Keep everything in one group without judging language (code, formulas).
    Any,
}

impl SourceLanguage {
    /// The name a recipe spells it with (and the group a source is in by default).
    pub fn as_str(self) -> &'static str {
        match self {
            SourceLanguage::Zh => "zh",
            SourceLanguage::En => "en",
            SourceLanguage::Auto => "auto",
            SourceLanguage::Any => "any",
        }
    }
}

/// The `[prepare]` table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrepareSettings {
    /// Output directory (relative paths are relative to the recipe file).
    pub output: PathBuf,
    /// `tokenizer.json`, a directory holding one, or a GGUF model.
    pub tokenizer: PathBuf,
    /// Whether documents start with BOS.
    #[serde(default)]
    pub bos: BosPolicy,
    /// Append the EOS token to every document.
    #[serde(default = "yes")]
    pub eos: bool,
    /// Drop documents with fewer tokens than this (before BOS/EOS); the paper's scripts use 20.
    #[serde(default)]
    pub min_doc_tokens: usize,
    /// A shard is closed once it holds this many tokens.
    #[serde(default = "default_shard_tokens")]
    pub shard_max_tokens: u64,
    /// Documents per parallel batch.
    #[serde(default = "default_batch_docs")]
    pub batch_docs: usize,
    /// A batch is also closed once it holds this many bytes of text (bounds memory when
    /// documents are huge).
    #[serde(default = "default_batch_bytes")]
    pub batch_bytes: usize,
    /// Documents whose detected language differs from the source's with at least this
    /// confidence are dropped.
    #[serde(default = "default_lang_conf")]
    pub min_lang_confidence: f64,
    /// Also write a Megatron-LM indexed dataset per source and language.
    #[serde(default)]
    pub megatron: bool,
    /// Unicode normalisation.
    #[serde(default)]
    pub normalize: NormalizeConfig,
    /// The rules the quality filters start from: Gopher's thresholds (web crawls), or none
    /// (corpora already cleaned by their publisher, as the paper's released data).
    #[serde(default)]
    pub quality: QualityBase,
    /// Quality filters over the `quality` base; keys left out keep its values.
    #[serde(default)]
    pub filters: FilterOverrides,
    /// Drop documents detected as another language than their source's (with at least
    /// `min_lang_confidence`); off keeps every document of a `zh`/`en` source.
    #[serde(default = "yes")]
    pub language_filter: bool,
    /// Exact and near-duplicate removal.
    #[serde(default)]
    pub dedup: DedupConfig,
}

fn yes() -> bool {
    true
}
fn default_shard_tokens() -> u64 {
    256 * 1024 * 1024
}
fn default_batch_docs() -> usize {
    1024
}
fn default_batch_bytes() -> usize {
    64 << 20
}
fn default_lang_conf() -> f64 {
    0.5
}

impl PrepareSettings {
    /// Checks that need no files; `Err((key, detail))` names the key under `prepare`.
    pub fn check(&self) -> Result<(), (String, String)> {
        if self.batch_docs == 0 {
            return Err(("prepare.batch_docs".into(), "must be at least 1".into()));
        }
        if self.shard_max_tokens == 0 {
            return Err(("prepare.shard_max_tokens".into(), "must be at least 1".into()));
        }
        let d = &self.dedup;
        if d.near && (d.bands == 0 || d.rows == 0 || d.ngram == 0) {
            return Err(("prepare.dedup".into(), "bands, rows and ngram must be positive".into()));
        }
        Ok(())
    }

    /// Relative paths anchored at `base` (the recipe's folder).
    pub fn resolve(&mut self, base: &Path) {
        self.output = clean_path(&base.join(&self.output));
        self.tokenizer = clean_path(&base.join(&self.tokenizer));
    }
}

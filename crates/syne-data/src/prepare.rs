//! `syne prepare`: read, normalise, filter, route, deduplicate, tokenize and pack every source
//! of a TOML file into token shards with a manifest, resumably.
//!
//! The run is cut into phases whose outputs are written atomically under `OUT/.work`:
//!
//! 1. **filter** (one work unit per input file): stream records in batches, process each batch
//!    in parallel (normalise, quality rules, language id, content hash, MinHash band keys), and
//!    write the surviving documents plus their dedup keys. The unit's stats file is written last
//!    and marks it complete.
//! 2. **dedup**: load every unit's keys (memory = keys, never text), decide keep/duplicate for
//!    all documents in input order.
//! 3. **pack** (per unit): tokenize the kept documents in parallel and append them, with
//!    BOS/EOS, to the unit's shards; a per-unit marker file completes it.
//! 4. **manifest** (and optional Megatron export), written last.
//!
//! A run killed at any point (even SIGKILL) and started again skips completed units and redoes
//! the rest; every unit's output depends only on its input and the configuration, so the final
//! output is byte-identical to an uninterrupted run, whatever the thread count.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::time::Instant;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::dedup::{content_hash, decide, Decision, DedupConfig, MinHasher};
use crate::error::{BadRecordKind, DataError, Result};
use crate::io::{expand_inputs, sha256_file, write_atomic, CorpusReader, FieldSpec, JsonlWriter};
use crate::langid::{detect, Lang};
use crate::normalize::{normalize, NormalizeConfig};
use crate::quality::{check, QualityConfig};
use crate::shards::{export_megatron, ShardReader, ShardWriter, TokenWidth};
use crate::tokenizer::{BosPolicy, TextTokenizer};

/// Bumped whenever the on-disk layout of `.work` or of the shards changes.
const PIPELINE_VERSION: &str = "syne-prepare/1";
/// How many bad-record messages the manifest keeps (all are counted).
const MAX_EXAMPLES: usize = 20;

// ------------------------------------------------------------------------------------------
// Configuration

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

/// One `[sources.NAME]` table.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceConfig {
    /// Files (.jsonl, .jsonl.gz, .jsonl.zst, .parquet) or directories holding them.
    pub paths: Vec<PathBuf>,
    pub language: SourceLanguage,
    #[serde(default = "default_text_field")]
    pub text_field: String,
    #[serde(default = "default_id_field")]
    pub id_field: Option<String>,
    /// Record field carrying a topic label, copied to the shard metadata.
    #[serde(default)]
    pub topic_field: Option<String>,
    /// Record field carrying a perplexity score, copied to the shard metadata.
    #[serde(default)]
    pub perplexity_field: Option<String>,
    /// Overrides of `[prepare.filters]` for this source.
    #[serde(default)]
    pub filters: Option<toml::Table>,
    /// Override of `[prepare].min_lang_confidence`.
    #[serde(default)]
    pub min_lang_confidence: Option<f64>,
}

fn default_text_field() -> String {
    "text".into()
}

fn default_id_field() -> Option<String> {
    Some("id".into())
}

/// The `[prepare]` table.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrepareSection {
    /// Output directory (relative paths are relative to the config file).
    pub output: PathBuf,
    /// `tokenizer.json`, a directory holding one, or a GGUF model.
    pub tokenizer: PathBuf,
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
    #[serde(default)]
    pub normalize: NormalizeConfig,
    /// Quality filters (see [`QualityConfig`]); keys left out keep their defaults.
    #[serde(default)]
    pub filters: toml::Table,
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

/// A TOML file with `[prepare]` and `[sources.*]` (other top-level tables, e.g. a full recipe's
/// `[stages]`, are ignored here).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PrepareConfig {
    pub prepare: PrepareSection,
    pub sources: BTreeMap<String, SourceConfig>,
}

/// A source after validation: paths resolved, input files listed, filters merged.
#[derive(Debug, Clone, Serialize)]
pub struct ResolvedSource {
    pub name: String,
    pub language: SourceLanguage,
    pub fields: ResolvedFields,
    pub files: Vec<PathBuf>,
    pub quality: QualityConfig,
    pub min_lang_confidence: f64,
}

/// Field names read from each record.
#[derive(Debug, Clone, Serialize)]
pub struct ResolvedFields {
    pub text: String,
    pub id: Option<String>,
    pub topic: Option<String>,
    pub perplexity: Option<String>,
}

impl PrepareConfig {
    /// Parse a TOML file; errors name the file and the key at fault.
    pub fn load(path: &Path) -> Result<PrepareConfig> {
        let text = std::fs::read_to_string(path).map_err(|e| DataError::io(path, "cannot read config", e))?;
        Self::parse(&text, path)
    }

    /// Parse TOML text (`path` is used for error messages).
    pub fn parse(text: &str, path: &Path) -> Result<PrepareConfig> {
        #[derive(Deserialize)]
        struct Whole {
            prepare: Option<PrepareSection>,
            #[serde(default)]
            sources: BTreeMap<String, SourceConfig>,
            #[serde(flatten)]
            _rest: BTreeMap<String, toml::Value>,
        }
        let whole: Whole = toml::from_str(text).map_err(|e| DataError::Config {
            path: path.to_path_buf(),
            key: e.span().map(|s| key_at(text, s.start)).unwrap_or_else(|| "?".into()),
            detail: e.message().to_string(),
        })?;
        let cfg_err = |key: &str, detail: String| DataError::Config { path: path.to_path_buf(), key: key.into(), detail };
        let prepare = whole.prepare.ok_or_else(|| cfg_err("prepare", "the [prepare] table is missing".into()))?;
        if whole.sources.is_empty() {
            return Err(cfg_err("sources", "no [sources.NAME] tables".into()));
        }
        if prepare.batch_docs == 0 {
            return Err(cfg_err("prepare.batch_docs", "must be at least 1".into()));
        }
        if prepare.shard_max_tokens == 0 {
            return Err(cfg_err("prepare.shard_max_tokens", "must be at least 1".into()));
        }
        let d = &prepare.dedup;
        if d.near && (d.bands == 0 || d.rows == 0 || d.ngram == 0) {
            return Err(cfg_err("prepare.dedup", "bands, rows and ngram must be positive".into()));
        }
        for (name, src) in &whole.sources {
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)) {
                return Err(cfg_err(&format!("sources.{name}"), "source names may hold only ASCII letters, digits, '-', '_' and '.'".into()));
            }
            if src.paths.is_empty() {
                return Err(cfg_err(&format!("sources.{name}.paths"), "must list at least one file or directory".into()));
            }
            merged_quality(&prepare.filters, src.filters.as_ref()).map_err(|e| cfg_err(&format!("sources.{name}.filters"), e))?;
        }
        Ok(PrepareConfig { prepare, sources: whole.sources })
    }

    /// Resolve relative paths against `base` (the config file's folder), list input files.
    pub fn resolve(&self, base: &Path) -> Result<Vec<ResolvedSource>> {
        let mut out = Vec::new();
        for (name, src) in &self.sources {
            let paths: Vec<PathBuf> = src.paths.iter().map(|p| clean_path(&base.join(p))).collect();
            let files = expand_inputs(&paths)?;
            if files.is_empty() {
                return Err(DataError::Config { path: base.to_path_buf(), key: format!("sources.{name}.paths"), detail: "no corpus files found".into() });
            }
            let quality = merged_quality(&self.prepare.filters, src.filters.as_ref()).map_err(|detail| DataError::Config {
                path: base.to_path_buf(),
                key: format!("sources.{name}.filters"),
                detail,
            })?;
            out.push(ResolvedSource {
                name: name.clone(),
                language: src.language,
                fields: ResolvedFields {
                    text: src.text_field.clone(),
                    id: src.id_field.clone(),
                    topic: src.topic_field.clone(),
                    perplexity: src.perplexity_field.clone(),
                },
                files,
                quality,
                min_lang_confidence: src.min_lang_confidence.unwrap_or(self.prepare.min_lang_confidence),
            });
        }
        Ok(out)
    }
}

/// The dotted key path at byte `offset` of a TOML text (for error messages): the innermost
/// table header above it plus the key on its line.
fn key_at(text: &str, offset: usize) -> String {
    let before = &text[..offset.min(text.len())];
    let table = before.lines().rev().find_map(|l| l.trim().strip_prefix('[').and_then(|l| l.strip_suffix(']'))).map(|t| t.trim_matches(['[', ']']).to_string());
    let line = text[before.rfind('\n').map(|i| i + 1).unwrap_or(0)..].lines().next().unwrap_or("");
    let key = line.split('=').next().map(str::trim).filter(|k| !k.is_empty() && !k.starts_with('['));
    match (table, key) {
        (Some(t), Some(k)) => format!("{t}.{k}"),
        (Some(t), None) => t,
        (None, Some(k)) => k.to_string(),
        (None, None) => "?".into(),
    }
}

fn merged_quality(global: &toml::Table, over: Option<&toml::Table>) -> std::result::Result<QualityConfig, String> {
    let mut t = global.clone();
    if let Some(o) = over {
        for (k, v) in o {
            t.insert(k.clone(), v.clone());
        }
    }
    toml::Value::Table(t).try_into().map_err(|e: toml::de::Error| e.message().to_string())
}

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
    pub bad_records: BTreeMap<BadRecordKind, u64>,
    /// Documents dropped by each quality rule (and `empty_after_normalize`).
    pub filtered: BTreeMap<String, u64>,
    pub language_mismatch: u64,
    pub exact_duplicates: u64,
    pub near_duplicates: u64,
    pub too_few_tokens: u64,
    pub docs_out: u64,
    pub tokens_out: u64,
    /// Output documents and tokens per language.
    pub languages: BTreeMap<String, LangCounts>,
    /// Files that could not be read to the end (unreadable, truncated, corrupt).
    pub damaged_files: u64,
}

/// Output documents and tokens of one language.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LangCounts {
    pub docs: u64,
    pub tokens: u64,
}

impl Counts {
    fn add(&mut self, o: &Counts) {
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
struct FilteredDoc {
    text: String,
    id: Option<String>,
    pos: String,
    lang: Lang,
    lang_conf: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    topic: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    perplexity: Option<f64>,
}

/// Phase-1 result of one unit (its file is the unit's completion marker).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct FilterStats {
    source: String,
    input: PathBuf,
    input_sha256: String,
    input_bytes: u64,
    kept: u64,
    counts: Counts,
    errors: Vec<String>,
}

/// One shard written by phase 3.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ShardEntry {
    /// Base name under `shards/` (`NAME.bin`, `NAME.idx`, `NAME.docs.jsonl`).
    pub name: String,
    pub source: String,
    pub lang: String,
    pub docs: u64,
    pub tokens: u64,
    pub bin_sha256: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct PackStats {
    counts: Counts,
    shards: Vec<ShardEntry>,
}

/// Per-document metadata written beside each shard (`NAME.docs.jsonl`, one line per document
/// in shard order).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DocMeta {
    pub id: Option<String>,
    pub source: String,
    pub lang: Lang,
    pub lang_conf: f64,
    /// Where the document came from (`file:line` or `file: row N`).
    pub pos: String,
    /// xxh3-128 of the normalised text, hex.
    pub content_hash: String,
    /// Tokens in the shard, BOS/EOS included.
    pub tokens: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub topic: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub perplexity: Option<f64>,
}

// ------------------------------------------------------------------------------------------
// Manifest

/// What one input file contributed.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct InputEntry {
    pub source: String,
    pub path: PathBuf,
    pub sha256: String,
    pub bytes: u64,
}

/// Tokenizer identity recorded in the manifest.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TokenizerEntry {
    pub path: PathBuf,
    /// sha256 of the canonical tokenizer.json serialisation (see [`TextTokenizer::hash`]).
    pub sha256: String,
    pub vocab_size: usize,
    pub bos_id: Option<u32>,
    pub eos_id: Option<u32>,
    pub adds_bos: bool,
    pub adds_eos: bool,
    pub token_width: TokenWidth,
}

/// A Megatron-LM dataset written by the run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MegatronEntry {
    /// Prefix under the output folder (`PREFIX.bin`, `PREFIX.idx`).
    pub prefix: String,
    pub source: String,
    pub lang: String,
    pub sequences: u64,
    pub tokens: u64,
}

/// `manifest.json`: exactly what a run consumed and produced. It holds no timestamps or
/// timings, so an interrupted-and-resumed run and an uninterrupted one write the same bytes.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    pub format: String,
    pub config_sha256: String,
    pub tokenizer: TokenizerEntry,
    pub inputs: Vec<InputEntry>,
    pub total: Counts,
    pub sources: BTreeMap<String, Counts>,
    pub shards: Vec<ShardEntry>,
    pub megatron: Vec<MegatronEntry>,
    /// The first messages about bad records and damaged files (all are counted in `total`).
    pub errors: Vec<String>,
}

impl Manifest {
    /// Read `DIR/manifest.json`.
    pub fn load(dir: &Path) -> Result<Manifest> {
        let path = dir.join("manifest.json");
        let bytes = std::fs::read(&path).map_err(|e| DataError::io(&path, "cannot read manifest", e))?;
        serde_json::from_slice(&bytes).map_err(|e| DataError::Shard { path, detail: format!("invalid manifest: {e}") })
    }

    /// Open every shard listed, in order.
    pub fn open_shards(&self, dir: &Path) -> Result<Vec<ShardReader>> {
        self.shards.iter().map(|s| ShardReader::open(&dir.join("shards").join(&s.name))).collect()
    }
}

// ------------------------------------------------------------------------------------------
// The run

/// Run-time options that do not change the output.
#[derive(Debug, Clone)]
pub struct PrepareOptions {
    /// Worker threads (0 = all cores).
    pub threads: usize,
    /// Fail on the first bad record or damaged file instead of skipping and counting it.
    pub strict: bool,
    /// Show progress bars on stderr (when it is a terminal).
    pub progress: bool,
    /// Keep `.work` (filtered text and keys) after a successful run.
    pub keep_work: bool,
}

impl Default for PrepareOptions {
    fn default() -> Self {
        PrepareOptions { threads: 0, strict: false, progress: true, keep_work: false }
    }
}

/// What a finished run returns: the manifest plus timings (not stored in the manifest).
#[derive(Debug, Clone)]
pub struct PrepareReport {
    pub manifest: Manifest,
    pub out_dir: PathBuf,
    pub seconds: f64,
    /// Input bytes (on disk) processed by this invocation's filter phase.
    pub input_bytes_processed: u64,
    /// Units skipped because an earlier (interrupted) run had completed them.
    pub units_resumed: usize,
    pub already_complete: bool,
}

struct Unit {
    source: usize,
    file: PathBuf,
    /// `SOURCE.NNNNN`: names the unit's files.
    name: String,
}

struct Ctx<'a> {
    out: PathBuf,
    work: PathBuf,
    cfg: &'a PrepareSection,
    sources: Vec<ResolvedSource>,
    units: Vec<Unit>,
    opts: &'a PrepareOptions,
}

impl Ctx<'_> {
    fn filtered_path(&self, u: &Unit) -> PathBuf {
        self.work.join("filtered").join(format!("{}.jsonl.zst", u.name))
    }
    fn keys_path(&self, u: &Unit) -> PathBuf {
        self.work.join("filtered").join(format!("{}.keys", u.name))
    }
    fn filter_stats_path(&self, u: &Unit) -> PathBuf {
        self.work.join("filtered").join(format!("{}.stats.json", u.name))
    }
    fn pack_stats_path(&self, u: &Unit) -> PathBuf {
        self.work.join("packed").join(format!("{}.json", u.name))
    }
    fn bar(&self, len: u64, what: &str, bytes: bool) -> ProgressBar {
        if !self.opts.progress {
            return ProgressBar::hidden();
        }
        let tpl = if bytes {
            "{msg:>8} [{elapsed_precise}] {wide_bar} {bytes}/{total_bytes} ({bytes_per_sec}, eta {eta})"
        } else {
            "{msg:>8} [{elapsed_precise}] {wide_bar} {human_pos}/{human_len} docs ({per_sec}, eta {eta})"
        };
        let pb = ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::stderr());
        pb.set_style(ProgressStyle::with_template(tpl).expect("static template"));
        pb.set_message(what.to_string());
        pb
    }
}

fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<T> {
    let bytes = std::fs::read(path).map_err(|e| DataError::io(path, "cannot read", e))?;
    serde_json::from_slice(&bytes).map_err(|e| DataError::Shard { path: path.to_path_buf(), detail: format!("invalid JSON: {e}") })
}

fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    let mut bytes = serde_json::to_vec_pretty(value).map_err(|e| DataError::Aborted(format!("cannot serialise {}: {e}", path.display())))?;
    bytes.push(b'\n');
    write_atomic(path, &bytes)
}

fn mkdir(p: &Path) -> Result<()> {
    std::fs::create_dir_all(p).map_err(|e| DataError::io(p, "cannot create directory", e))
}

/// Remove `*.partial` files left by a killed run.
fn remove_partials(dir: &Path) -> Result<()> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Ok(()) };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            remove_partials(&p)?;
        } else if p.extension().is_some_and(|x| x == "partial") {
            std::fs::remove_file(&p).map_err(|e| DataError::io(&p, "cannot remove stale partial file", e))?;
        }
    }
    Ok(())
}

/// Run `syne prepare` for the config file at `config_path`; `out_override` replaces
/// `[prepare].output`.
pub fn run_prepare(config_path: &Path, out_override: Option<&Path>, opts: &PrepareOptions) -> Result<PrepareReport> {
    let cfg = PrepareConfig::load(config_path)?;
    let base = clean_path(config_path.parent().unwrap_or(Path::new("")));
    let out = out_override.map(clean_path).unwrap_or_else(|| clean_path(&base.join(&cfg.prepare.output)));
    run_prepare_config(&cfg, &base, &out, opts)
}

/// `path` made absolute (against the current directory) with `.` and `..` removed lexically,
/// so the same file is named the same way in manifests whatever the working directory was.
/// Symbolic links are kept as they are.
pub fn clean_path(path: &Path) -> PathBuf {
    let abs = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let mut out = PathBuf::new();
    for c in abs.components() {
        match c {
            std::path::Component::CurDir => {}
            std::path::Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

/// Run with an already parsed config; relative paths resolve against `base`.
pub fn run_prepare_config(cfg: &PrepareConfig, base: &Path, out: &Path, opts: &PrepareOptions) -> Result<PrepareReport> {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(opts.threads)
        .build()
        .map_err(|e| DataError::Aborted(format!("cannot start {} worker threads: {e}", opts.threads)))?;
    pool.install(|| run_inner(cfg, base, out, opts))
}

fn run_inner(cfg: &PrepareConfig, base: &Path, out: &Path, opts: &PrepareOptions) -> Result<PrepareReport> {
    let started = Instant::now();
    let sources = cfg.resolve(base)?;
    let tokenizer_path = clean_path(&base.join(&cfg.prepare.tokenizer));
    let tokenizer = TextTokenizer::load(&tokenizer_path)?;

    // The identity of this run: configuration (resolved), input files (size and mtime) and
    // tokenizer. A resumed run must match it exactly.
    let mut inputs_fingerprint = Vec::new();
    for s in &sources {
        for f in &s.files {
            let m = std::fs::metadata(f).map_err(|e| DataError::io(f, "cannot access input", e))?;
            let mtime = m.modified().ok().and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok()).map(|d| d.as_nanos());
            inputs_fingerprint.push(serde_json::json!({"source": s.name, "path": f, "bytes": m.len(), "mtime_ns": mtime.map(|v| v.to_string())}));
        }
    }
    let identity = serde_json::json!({
        "pipeline": PIPELINE_VERSION,
        "prepare": {
            "bos": cfg.prepare.bos, "eos": cfg.prepare.eos, "min_doc_tokens": cfg.prepare.min_doc_tokens,
            // batch_docs / batch_bytes are left out: they change speed and memory, never output.
            "shard_max_tokens": cfg.prepare.shard_max_tokens, "min_lang_confidence": cfg.prepare.min_lang_confidence,
            "megatron": cfg.prepare.megatron, "normalize": cfg.prepare.normalize, "dedup": cfg.prepare.dedup,
        },
        "sources": sources,
        "tokenizer_sha256": tokenizer.hash(),
    });
    // The manifest's config hash leaves out file times, so that copying the inputs elsewhere
    // and re-running gives the same manifest.
    let config_sha256 = hex::encode(Sha256::digest(serde_json::to_vec(&identity).expect("json")));
    let run_identity = serde_json::json!({"config": identity, "inputs": inputs_fingerprint});

    let work = out.join(".work");
    let manifest_path = out.join("manifest.json");
    let identity_path = work.join("run.json");
    if manifest_path.exists() {
        let m = Manifest::load(out)?;
        if m.config_sha256 == config_sha256 && !work.exists() {
            return Ok(PrepareReport {
                manifest: m,
                out_dir: out.to_path_buf(),
                seconds: started.elapsed().as_secs_f64(),
                input_bytes_processed: 0,
                units_resumed: 0,
                already_complete: true,
            });
        }
        if m.config_sha256 != config_sha256 {
            return Err(DataError::Aborted(format!(
                "{} holds the output of a different configuration; remove it or choose another output folder",
                out.display()
            )));
        }
    }
    if work.exists() {
        if identity_path.exists() {
            let previous: serde_json::Value = read_json(&identity_path)?;
            if previous != run_identity {
                return Err(DataError::Aborted(format!(
                    "{} holds an interrupted run of a different configuration or of changed input files; \
                     remove {} to start over",
                    out.display(),
                    work.display()
                )));
            }
        }
        remove_partials(out)?;
    }
    mkdir(&work.join("filtered"))?;
    mkdir(&work.join("packed"))?;
    mkdir(&out.join("shards"))?;
    write_json(&identity_path, &run_identity)?;

    let mut units = Vec::new();
    for (si, s) in sources.iter().enumerate() {
        for (fi, f) in s.files.iter().enumerate() {
            units.push(Unit { source: si, file: f.clone(), name: format!("{}.{fi:05}", s.name) });
        }
    }
    let ctx = Ctx { out: out.to_path_buf(), work: work.clone(), cfg: &cfg.prepare, sources, units, opts };

    // Phase 1: filter.
    let total_bytes: u64 = ctx.units.iter().map(|u| std::fs::metadata(&u.file).map(|m| m.len()).unwrap_or(0)).sum();
    let bar = ctx.bar(total_bytes, "filter", true);
    let hasher = ctx.cfg.dedup.near.then(|| MinHasher::new(&ctx.cfg.dedup));
    let mut filter_stats = Vec::with_capacity(ctx.units.len());
    let (mut processed_bytes, mut resumed) = (0u64, 0usize);
    for u in &ctx.units {
        let stats_path = ctx.filter_stats_path(u);
        let stats: FilterStats = if stats_path.exists() {
            resumed += 1;
            read_json(&stats_path)?
        } else {
            let s = filter_unit(&ctx, u, hasher.as_ref(), &bar)?;
            processed_bytes += s.input_bytes;
            s
        };
        bar.inc(0);
        filter_stats.push(stats);
    }
    bar.finish_and_clear();
    tracing::info!("filter phase: {} units ({resumed} resumed) in {:.2} s", ctx.units.len(), started.elapsed().as_secs_f64());
    let phase = Instant::now();

    // Phase 2: dedup over all kept documents in input order.
    let dedup_path = work.join("dedup.bin");
    let decisions: Vec<u8> = if dedup_path.exists() {
        let d = std::fs::read(&dedup_path).map_err(|e| DataError::io(&dedup_path, "cannot read", e))?;
        let want: u64 = filter_stats.iter().map(|s| s.kept).sum();
        if d.len() as u64 != want {
            return Err(DataError::Shard { path: dedup_path, detail: format!("holds {} decisions, expected {want}", d.len()) });
        }
        d
    } else {
        let d = dedup_all(&ctx, &filter_stats, hasher.as_ref().map(|h| h.bands()).unwrap_or(0))?;
        write_atomic(&dedup_path, &d)?;
        d
    };

    tracing::info!("dedup phase: {} documents in {:.2} s", decisions.len(), phase.elapsed().as_secs_f64());
    let phase = Instant::now();

    // Phase 3: tokenize and pack.
    let total_kept: u64 = filter_stats.iter().map(|s| s.kept).sum();
    let bar = ctx.bar(total_kept, "pack", false);
    let width = TokenWidth::for_vocab(tokenizer.vocab_size());
    let mut offset = 0usize;
    let mut pack_stats = Vec::with_capacity(ctx.units.len());
    for (u, fs) in ctx.units.iter().zip(&filter_stats) {
        let d = &decisions[offset..offset + fs.kept as usize];
        offset += fs.kept as usize;
        let path = ctx.pack_stats_path(u);
        let ps: PackStats = if path.exists() {
            read_json(&path)?
        } else {
            let ps = pack_unit(&ctx, u, d, &tokenizer, width, &bar)?;
            write_json(&path, &ps)?;
            ps
        };
        bar.inc(fs.kept);
        pack_stats.push(ps);
    }
    bar.finish_and_clear();
    tracing::info!("pack phase: {} documents in {:.2} s", total_kept, phase.elapsed().as_secs_f64());

    // Phase 4: manifest (and Megatron export).
    let mut total = Counts::default();
    let mut per_source: BTreeMap<String, Counts> = BTreeMap::new();
    let mut errors = Vec::new();
    let mut inputs = Vec::new();
    let mut shards = Vec::new();
    for ((u, fs), ps) in ctx.units.iter().zip(&filter_stats).zip(&pack_stats) {
        let mut c = fs.counts.clone();
        c.add(&ps.counts);
        total.add(&c);
        per_source.entry(ctx.sources[u.source].name.clone()).or_default().add(&c);
        for e in &fs.errors {
            if errors.len() < MAX_EXAMPLES {
                errors.push(e.clone());
            }
        }
        inputs.push(InputEntry { source: fs.source.clone(), path: fs.input.clone(), sha256: fs.input_sha256.clone(), bytes: fs.input_bytes });
        shards.extend(ps.shards.iter().cloned());
    }
    debug_assert_eq!(total.accounted(), total.docs_in);
    if total.accounted() != total.docs_in {
        return Err(DataError::Aborted(format!("internal accounting error: {} documents read but {} accounted for", total.docs_in, total.accounted())));
    }
    let mut megatron = Vec::new();
    if ctx.cfg.megatron {
        mkdir(&out.join("megatron"))?;
        let mut groups: BTreeMap<(String, String), Vec<&ShardEntry>> = BTreeMap::new();
        for s in &shards {
            groups.entry((s.source.clone(), s.lang.clone())).or_default().push(s);
        }
        for ((source, lang), entries) in groups {
            let readers = entries.iter().map(|e| ShardReader::open(&out.join("shards").join(&e.name))).collect::<Result<Vec<_>>>()?;
            let prefix = format!("megatron/{source}.{lang}");
            let (sequences, tokens) = export_megatron(&readers, &out.join(&prefix), tokenizer.vocab_size())?;
            megatron.push(MegatronEntry { prefix, source, lang, sequences, tokens });
        }
    }
    let manifest = Manifest {
        format: PIPELINE_VERSION.into(),
        config_sha256,
        tokenizer: TokenizerEntry {
            path: tokenizer_path.clone(),
            sha256: tokenizer.hash().to_string(),
            vocab_size: tokenizer.vocab_size(),
            bos_id: tokenizer.bos_id(),
            eos_id: tokenizer.eos_id(),
            adds_bos: tokenizer.adds_bos(ctx.cfg.bos),
            adds_eos: ctx.cfg.eos && tokenizer.eos_id().is_some(),
            token_width: width,
        },
        inputs,
        total,
        sources: per_source,
        shards,
        megatron,
        errors,
    };
    write_json(&manifest_path, &manifest)?;
    if !opts.keep_work {
        std::fs::remove_dir_all(&work).map_err(|e| DataError::io(&work, "cannot remove work folder", e))?;
    }
    Ok(PrepareReport {
        manifest,
        out_dir: out.to_path_buf(),
        seconds: started.elapsed().as_secs_f64(),
        input_bytes_processed: processed_bytes,
        units_resumed: resumed,
        already_complete: false,
    })
}

/// What happened to one record in phase 1.
enum Outcome {
    Bad(BadRecordKind, String),
    Dropped(&'static str),
    WrongLanguage,
    Kept(Box<FilteredDoc>, u128, Vec<u64>),
}

fn filter_unit(ctx: &Ctx, u: &Unit, hasher: Option<&MinHasher>, bar: &ProgressBar) -> Result<FilterStats> {
    let src = &ctx.sources[u.source];
    let fields =
        FieldSpec { text: src.fields.text.clone(), id: src.fields.id.clone(), topic: src.fields.topic.clone(), perplexity: src.fields.perplexity.clone() };
    let mut counts = Counts::default();
    let mut errors = Vec::new();
    let input_bytes = std::fs::metadata(&u.file).map(|m| m.len()).unwrap_or(0);
    let bar_start = bar.position();

    let mut writer = JsonlWriter::create_with_level(&ctx.filtered_path(u), 1)?;
    let keys_path = ctx.keys_path(u);
    let keys_tmp = crate::io::partial_path(&keys_path);
    let mut keys = BufWriter::new(File::create(&keys_tmp).map_err(|e| DataError::io(&keys_tmp, "cannot create", e))?);
    let mut kept = 0u64;

    let mut note_error = |counts: &mut Counts, msg: String| -> Result<()> {
        if ctx.opts.strict {
            return Err(DataError::Aborted(format!("strict mode: {msg}")));
        }
        if errors.len() < MAX_EXAMPLES {
            tracing::warn!("{msg}");
            errors.push(msg);
        }
        let _ = counts;
        Ok(())
    };

    let mut reader = match CorpusReader::open(&u.file, &fields) {
        Ok(r) => Some(r),
        Err(e) => {
            counts.damaged_files += 1;
            note_error(&mut counts, e.to_string())?;
            None
        }
    };
    let counter = reader.as_ref().map(|r| r.raw_bytes_counter());
    while let Some(r) = reader.as_mut() {
        // Gather a batch (bounded in documents and bytes).
        let mut batch: Vec<Result<crate::io::Document>> = Vec::with_capacity(ctx.cfg.batch_docs);
        let mut bytes = 0usize;
        let mut fatal = None;
        while batch.len() < ctx.cfg.batch_docs && bytes < ctx.cfg.batch_bytes {
            match r.next() {
                None => break,
                Some(Err(e @ (DataError::Corrupt { .. } | DataError::Io { .. }))) => {
                    fatal = Some(e);
                    break;
                }
                Some(item) => {
                    if let Ok(d) = &item {
                        bytes += d.text.len();
                    }
                    batch.push(item);
                }
            }
        }
        let end_of_file = batch.is_empty() || fatal.is_some();
        let outcomes: Vec<Outcome> = batch
            .into_par_iter()
            .map(|item| match item {
                Err(DataError::BadRecord { pos, kind, detail }) => Outcome::Bad(kind, format!("{pos}: {}: {detail}", kind.name())),
                Err(other) => Outcome::Bad(BadRecordKind::MalformedJson, other.to_string()),
                Ok(doc) => process_doc(doc, src, ctx.cfg, hasher),
            })
            .collect();
        for o in outcomes {
            counts.docs_in += 1;
            match o {
                Outcome::Bad(kind, msg) => {
                    *counts.bad_records.entry(kind).or_default() += 1;
                    note_error(&mut counts, msg)?;
                }
                Outcome::Dropped(rule) => *counts.filtered.entry(rule.to_string()).or_default() += 1,
                Outcome::WrongLanguage => counts.language_mismatch += 1,
                Outcome::Kept(doc, hash, band_keys) => {
                    counts.text_bytes_in += doc.text.len() as u64;
                    writer.write(&*doc)?;
                    let mut rec = Vec::with_capacity(16 + 8 * band_keys.len());
                    rec.extend_from_slice(&hash.to_le_bytes());
                    band_keys.iter().for_each(|k| rec.extend_from_slice(&k.to_le_bytes()));
                    keys.write_all(&rec).map_err(|e| DataError::io(&keys_tmp, "cannot write", e))?;
                    kept += 1;
                }
            }
        }
        if let Some(c) = &counter {
            bar.set_position(bar_start + c.load(Ordering::Relaxed));
        }
        if let Some(e) = fatal {
            counts.damaged_files += 1;
            note_error(&mut counts, e.to_string())?;
        }
        if end_of_file {
            break;
        }
    }
    // Hash the input as consumed (line formats hash while reading; Parquet is hashed here).
    let input_sha256 = match reader.as_ref().and_then(CorpusReader::content_sha256) {
        Some(h) => h,
        None => sha256_file(&u.file).unwrap_or_else(|_| "unreadable".into()),
    };
    bar.set_position(bar_start + input_bytes);
    let f = keys.into_inner().map_err(|e| DataError::io(&keys_tmp, "cannot flush", e.into_error()))?;
    f.sync_all().map_err(|e| DataError::io(&keys_tmp, "cannot sync", e))?;
    std::fs::rename(&keys_tmp, &keys_path).map_err(|e| DataError::io(&keys_path, "cannot rename into place", e))?;
    writer.finish()?;
    let stats = FilterStats { source: ctx.sources[u.source].name.clone(), input: u.file.clone(), input_sha256, input_bytes, kept, counts, errors };
    // Written last: the unit is complete once this file exists.
    write_json(&ctx.filter_stats_path(u), &stats)?;
    Ok(stats)
}

fn process_doc(doc: crate::io::Document, src: &ResolvedSource, cfg: &PrepareSection, hasher: Option<&MinHasher>) -> Outcome {
    let text = normalize(&doc.text, &cfg.normalize);
    if text.is_empty() {
        return Outcome::Dropped("empty_after_normalize");
    }
    if let Err(rule) = check(&text, &src.quality) {
        return Outcome::Dropped(rule);
    }
    let guess = detect(&text);
    let wanted = match src.language {
        SourceLanguage::Zh => Some(Lang::Zh),
        SourceLanguage::En => Some(Lang::En),
        SourceLanguage::Auto | SourceLanguage::Any => None,
    };
    if let Some(w) = wanted {
        if guess.lang != w && guess.confidence >= src.min_lang_confidence {
            return Outcome::WrongLanguage;
        }
    }
    let lang = match src.language {
        SourceLanguage::Zh => Lang::Zh,
        SourceLanguage::En => Lang::En,
        SourceLanguage::Auto | SourceLanguage::Any => guess.lang,
    };
    let hash = content_hash(&text);
    let band_keys = hasher.map(|h| h.band_keys(&h.signature(&text))).unwrap_or_default();
    let pos = doc.pos.to_string();
    Outcome::Kept(
        Box::new(FilteredDoc { text, id: doc.id, pos, lang, lang_conf: guess.confidence, topic: doc.topic, perplexity: doc.perplexity }),
        hash,
        band_keys,
    )
}

fn dedup_all(ctx: &Ctx, stats: &[FilterStats], bands: usize) -> Result<Vec<u8>> {
    let n: u64 = stats.iter().map(|s| s.kept).sum();
    let n = usize::try_from(n).map_err(|_| DataError::Aborted("too many documents".into()))?;
    let mut hashes = Vec::with_capacity(n);
    let mut band_keys = Vec::with_capacity(n * bands);
    let rec = 16 + 8 * bands;
    for (u, s) in ctx.units.iter().zip(stats) {
        let path = ctx.keys_path(u);
        let mut f = BufReader::new(File::open(&path).map_err(|e| DataError::io(&path, "cannot open", e))?);
        let mut buf = vec![0u8; rec];
        for _ in 0..s.kept {
            f.read_exact(&mut buf).map_err(|e| DataError::io(&path, "truncated dedup keys", e))?;
            hashes.push(u128::from_le_bytes(buf[..16].try_into().expect("16")));
            band_keys.extend(buf[16..].chunks_exact(8).map(|c| u64::from_le_bytes(c.try_into().expect("8"))));
        }
    }
    let decisions = decide(n, &hashes, ctx.cfg.dedup.exact, &band_keys, if ctx.cfg.dedup.near { bands } else { 0 });
    Ok(decisions
        .into_iter()
        .map(|d| match d {
            Decision::Keep => 0,
            Decision::ExactDuplicateOf(_) => 1,
            Decision::NearDuplicateOf(_) => 2,
        })
        .collect())
}

struct OpenShard {
    writer: ShardWriter,
    meta: JsonlWriter,
    name: String,
    lang: String,
}

fn pack_unit(ctx: &Ctx, u: &Unit, decisions: &[u8], tok: &TextTokenizer, width: TokenWidth, bar: &ProgressBar) -> Result<PackStats> {
    let src = &ctx.sources[u.source];
    let path = ctx.filtered_path(u);
    let file = File::open(&path).map_err(|e| DataError::io(&path, "cannot open", e))?;
    let dec = zstd::stream::read::Decoder::new(file).map_err(|e| DataError::io(&path, "cannot start zstd", e))?;
    let mut lines = BufReader::with_capacity(1 << 20, dec).lines();
    let mut counts = Counts::default();
    let mut shards: Vec<ShardEntry> = Vec::new();
    let mut open: BTreeMap<String, OpenShard> = BTreeMap::new();
    let mut parts: BTreeMap<String, usize> = BTreeMap::new();
    let add_bos = tok.adds_bos(ctx.cfg.bos);
    let add_eos = ctx.cfg.eos;
    let shard_dir = ctx.out.join("shards");

    let mut i = 0usize;
    while i < decisions.len() {
        let mut batch: Vec<FilteredDoc> = Vec::with_capacity(ctx.cfg.batch_docs);
        let mut bytes = 0usize;
        while i < decisions.len() && batch.len() < ctx.cfg.batch_docs && bytes < ctx.cfg.batch_bytes {
            let line = lines
                .next()
                .ok_or_else(|| DataError::Shard { path: path.clone(), detail: format!("ends after {i} documents, expected {}", decisions.len()) })?
                .map_err(|e| DataError::io(&path, "cannot read", e))?;
            match decisions[i] {
                0 => {
                    let d: FilteredDoc =
                        serde_json::from_str(&line).map_err(|e| DataError::Shard { path: path.clone(), detail: format!("line {}: {e}", i + 1) })?;
                    bytes += d.text.len();
                    batch.push(d);
                }
                1 => counts.exact_duplicates += 1,
                _ => counts.near_duplicates += 1,
            }
            i += 1;
        }
        let ids = tok.encode_batch(&batch.iter().map(|d| d.text.as_str()).collect::<Vec<_>>())?;
        for (doc, ids) in batch.into_iter().zip(ids) {
            if ids.len() < ctx.cfg.min_doc_tokens {
                counts.too_few_tokens += 1;
                continue;
            }
            let mut toks = Vec::with_capacity(ids.len() + 2);
            if add_bos {
                toks.extend(tok.bos_id());
            }
            toks.extend_from_slice(&ids);
            if add_eos {
                toks.extend(tok.eos_id());
            }
            let lang = doc.lang.code().to_string();
            let group = match src.language {
                SourceLanguage::Any => "any".to_string(),
                _ => lang.clone(),
            };
            if !open.contains_key(&group) {
                let part = parts.entry(group.clone()).or_default();
                let name = format!("{}.{group}.{}.{part:04}", src.name, &u.name[src.name.len() + 1..]);
                *part += 1;
                let writer = ShardWriter::create(&shard_dir.join(&name), width)?;
                let meta = JsonlWriter::create(&shard_dir.join(format!("{name}.docs.jsonl")))?;
                open.insert(group.clone(), OpenShard { writer, meta, name, lang: group.clone() });
            }
            let shard = open.get_mut(&group).expect("inserted above");
            shard.meta.write(&DocMeta {
                id: doc.id,
                source: src.name.clone(),
                lang: doc.lang,
                lang_conf: doc.lang_conf,
                pos: doc.pos,
                content_hash: format!("{:032x}", content_hash(&doc.text)),
                tokens: toks.len() as u64,
                topic: doc.topic,
                perplexity: doc.perplexity,
            })?;
            shard.writer.push(&toks)?;
            counts.docs_out += 1;
            counts.tokens_out += toks.len() as u64;
            let lc = counts.languages.entry(lang).or_default();
            lc.docs += 1;
            lc.tokens += toks.len() as u64;
            if shard.writer.tokens() >= ctx.cfg.shard_max_tokens {
                let s = open.remove(&group).expect("present");
                shards.push(close_shard(s, &src.name)?);
            }
        }
        bar.tick();
    }
    for (_, s) in std::mem::take(&mut open) {
        shards.push(close_shard(s, &src.name)?);
    }
    shards.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(PackStats { counts, shards })
}

fn close_shard(s: OpenShard, source: &str) -> Result<ShardEntry> {
    let docs = s.writer.docs() as u64;
    let tokens = s.writer.tokens();
    s.meta.finish()?;
    let (bin, _) = s.writer.finish()?;
    Ok(ShardEntry { name: s.name, source: source.to_string(), lang: s.lang, docs, tokens, bin_sha256: sha256_file(&bin)? })
}

/// Check a finished output folder: every shard listed in the manifest opens, its `.bin`
/// matches its hash, and the document metadata agrees with the index. Returns the number of
/// documents verified.
pub fn verify_output(dir: &Path) -> Result<u64> {
    let m = Manifest::load(dir)?;
    let mut docs = 0;
    for s in &m.shards {
        let base = dir.join("shards").join(&s.name);
        let r = ShardReader::open(&base)?;
        let bin = base.with_file_name(format!("{}.bin", s.name));
        if sha256_file(&bin)? != s.bin_sha256 {
            return Err(DataError::Shard { path: bin, detail: "content does not match the manifest's sha256".into() });
        }
        let meta_path = base.with_file_name(format!("{}.docs.jsonl", s.name));
        let meta = std::fs::read_to_string(&meta_path).map_err(|e| DataError::io(&meta_path, "cannot read", e))?;
        let lines: Vec<&str> = meta.lines().collect();
        if lines.len() != r.num_docs() || r.num_docs() as u64 != s.docs || r.num_tokens() != s.tokens {
            return Err(DataError::Shard { path: meta_path, detail: "document count disagrees with the index or manifest".into() });
        }
        for (i, l) in lines.iter().enumerate() {
            let d: DocMeta = serde_json::from_str(l).map_err(|e| DataError::Shard { path: meta_path.clone(), detail: format!("line {}: {e}", i + 1) })?;
            if d.tokens != r.doc(i).len() as u64 {
                return Err(DataError::Shard { path: meta_path.clone(), detail: format!("line {}: token count disagrees with the index", i + 1) });
            }
        }
        docs += s.docs;
    }
    Ok(docs)
}

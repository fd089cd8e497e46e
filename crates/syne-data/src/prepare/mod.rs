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

mod config;
mod filter;
mod manifest;
mod pack;
mod stats;

pub use config::*;
use filter::*;
pub use manifest::*;
use pack::*;
pub use stats::*;

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

use crate::dedup::{content_hash, decide, Decision, MinHasher};
use crate::error::{BadRecordKind, DataError, Result};
use crate::io::{expand_inputs, sha256_file, write_atomic, CorpusReader, FieldSpec, JsonlWriter};
use crate::langid::{detect, Lang};
use crate::normalize::normalize;
use crate::quality::{check, QualityConfig};
use crate::shards::{export_megatron, ShardReader, ShardWriter, TokenWidth};
use crate::tokenizer::TextTokenizer;

/// Bumped whenever the on-disk layout of `.work` or of the shards changes.
const PIPELINE_VERSION: &str = "syne-prepare/1";
/// How many bad-record messages the manifest keeps (all are counted).
const MAX_EXAMPLES: usize = 20;

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
    /// What the run consumed and produced.
    pub manifest: Manifest,
    /// The output folder.
    pub out_dir: PathBuf,
    /// Wall-clock seconds of this invocation.
    pub seconds: f64,
    /// Input bytes (on disk) processed by this invocation's filter phase.
    pub input_bytes_processed: u64,
    /// Units skipped because an earlier (interrupted) run had completed them.
    pub units_resumed: usize,
    /// The output was already complete: nothing was done.
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
    cfg: &'a PrepareSettings,
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
    let mut identity = serde_json::json!({
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
    if !cfg.prepare.language_filter {
        // (Only when off, so that the identities of earlier preparations stay what they were.)
        identity["prepare"]["language_filter"] = false.into();
    }
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

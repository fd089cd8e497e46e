//! The manifest of a prepared folder, and its verification against the shards.

#[allow(unused_imports)]
use super::*;

// ------------------------------------------------------------------------------------------
// Manifest

/// What one input file contributed.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct InputEntry {
    /// The source it belongs to.
    pub source: String,
    /// The file.
    pub path: PathBuf,
    /// Its sha256.
    pub sha256: String,
    /// Its size.
    pub bytes: u64,
}

/// Tokenizer identity recorded in the manifest.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TokenizerEntry {
    /// Where the tokenizer was loaded from.
    pub path: PathBuf,
    /// sha256 of the canonical tokenizer.json serialisation (see [`TextTokenizer::hash`]).
    pub sha256: String,
    /// Vocabulary entries.
    pub vocab_size: usize,
    /// The BOS token.
    pub bos_id: Option<u32>,
    /// The EOS token.
    pub eos_id: Option<u32>,
    /// Documents start with BOS.
    pub adds_bos: bool,
    /// Documents end with EOS.
    pub adds_eos: bool,
    /// Bytes per token in the shards.
    pub token_width: TokenWidth,
}

/// A Megatron-LM dataset written by the run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MegatronEntry {
    /// Prefix under the output folder (`PREFIX.bin`, `PREFIX.idx`).
    pub prefix: String,
    /// The source.
    pub source: String,
    /// The language (`zh`, `en`, `other`).
    pub lang: String,
    /// Sequences (documents) in it.
    pub sequences: u64,
    /// Tokens in it.
    pub tokens: u64,
}

/// `manifest.json`: exactly what a run consumed and produced. It holds no timestamps or
/// timings, so an interrupted-and-resumed run and an uninterrupted one write the same bytes.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    /// The manifest format's name and version.
    pub format: String,
    /// sha256 of the settings that decide the output (not timings, not paths of the machine).
    pub config_sha256: String,
    /// The tokenizer.
    pub tokenizer: TokenizerEntry,
    /// Every input file.
    pub inputs: Vec<InputEntry>,
    /// Counts over all sources.
    pub total: Counts,
    /// Counts per source.
    pub sources: BTreeMap<String, Counts>,
    /// The shards written.
    pub shards: Vec<ShardEntry>,
    /// The Megatron-LM datasets written (with `megatron = true`).
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

//! Token shards (syne's own format) and Megatron-LM indexed datasets, writers and
//! memory-mapped readers.
//!
//! A syne shard `NAME` is two files:
//! * `NAME.bin`: little-endian token ids, `u16` when every id fits (vocabulary <= 65,536),
//!   else `u32`; documents back to back (each already carrying its BOS/EOS).
//! * `NAME.idx`: magic `SYNESHD\0`, `u32` version (1), `u8` token width in bytes, 3 padding
//!   bytes, `u64` document count D, `u64` token count, then `u64[D + 1]` token offsets
//!   (document i is tokens `offsets[i]..offsets[i + 1]`).
//!
//! Megatron's `.bin`/`.idx` layout is in reference/anchors.md §1.4; one document is one
//! sequence, so `document_indices = 0..=S`.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use memmap2::Mmap;

use crate::error::{DataError, Result};
use crate::io::partial_path;

const SYNE_MAGIC: &[u8; 8] = b"SYNESHD\0";
const SYNE_VERSION: u32 = 1;
const MEGATRON_MAGIC: &[u8; 9] = b"MMIDIDX\x00\x00";

/// Token id width on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenWidth {
    /// Two bytes per token (vocabularies under 65,536).
    U16,
    /// Four bytes per token.
    U32,
}

impl TokenWidth {
    /// The narrowest width that holds every id of a vocabulary of `vocab_size`.
    pub fn for_vocab(vocab_size: usize) -> TokenWidth {
        if vocab_size <= 1 << 16 {
            TokenWidth::U16
        } else {
            TokenWidth::U32
        }
    }

    /// Bytes per token.
    pub fn bytes(self) -> usize {
        match self {
            TokenWidth::U16 => 2,
            TokenWidth::U32 => 4,
        }
    }
}

fn shard_err(path: &Path, detail: impl Into<String>) -> DataError {
    DataError::Shard { path: path.to_path_buf(), detail: detail.into() }
}

fn with_ext(base: &Path, ext: &str) -> PathBuf {
    let mut s = base.as_os_str().to_os_string();
    s.push(ext);
    PathBuf::from(s)
}

/// Writes one shard; files appear under their final names only after [`ShardWriter::finish`].
pub struct ShardWriter {
    base: PathBuf,
    width: TokenWidth,
    bin: Option<BufWriter<File>>,
    offsets: Vec<u64>,
    finished: bool,
}

impl ShardWriter {
    /// Start a shard at `base` (`base.bin` and `base.idx` are written).
    pub fn create(base: &Path, width: TokenWidth) -> Result<ShardWriter> {
        let bin_tmp = partial_path(&with_ext(base, ".bin"));
        let f = File::create(&bin_tmp).map_err(|e| DataError::io(&bin_tmp, "cannot create", e))?;
        Ok(ShardWriter { base: base.to_path_buf(), width, bin: Some(BufWriter::with_capacity(1 << 20, f)), offsets: vec![0], finished: false })
    }

    /// Append one document's tokens.
    pub fn push(&mut self, tokens: &[u32]) -> Result<()> {
        let bin_tmp = partial_path(&with_ext(&self.base, ".bin"));
        let w = self.bin.as_mut().expect("push after finish");
        let mut buf = Vec::with_capacity(tokens.len() * self.width.bytes());
        match self.width {
            TokenWidth::U16 => {
                for &t in tokens {
                    let t16 = u16::try_from(t).map_err(|_| shard_err(&self.base, format!("token id {t} does not fit a u16 shard")))?;
                    buf.extend_from_slice(&t16.to_le_bytes());
                }
            }
            TokenWidth::U32 => tokens.iter().for_each(|t| buf.extend_from_slice(&t.to_le_bytes())),
        }
        w.write_all(&buf).map_err(|e| DataError::io(&bin_tmp, "cannot write", e))?;
        let last = *self.offsets.last().expect("offsets start with 0");
        self.offsets.push(last + tokens.len() as u64);
        Ok(())
    }

    /// Documents written so far.
    pub fn docs(&self) -> usize {
        self.offsets.len() - 1
    }

    /// Tokens written so far.
    pub fn tokens(&self) -> u64 {
        *self.offsets.last().expect("offsets start with 0")
    }

    /// Flush, sync, write the index and rename both files into place.
    pub fn finish(mut self) -> Result<(PathBuf, PathBuf)> {
        let bin_path = with_ext(&self.base, ".bin");
        let idx_path = with_ext(&self.base, ".idx");
        let bin_tmp = partial_path(&bin_path);
        let f = self.bin.take().expect("finish once").into_inner().map_err(|e| DataError::io(&bin_tmp, "cannot flush", e.into_error()))?;
        f.sync_all().map_err(|e| DataError::io(&bin_tmp, "cannot sync", e))?;
        let mut idx = Vec::with_capacity(32 + 8 * self.offsets.len());
        idx.extend_from_slice(SYNE_MAGIC);
        idx.extend_from_slice(&SYNE_VERSION.to_le_bytes());
        idx.push(self.width.bytes() as u8);
        idx.extend_from_slice(&[0, 0, 0]);
        idx.extend_from_slice(&(self.docs() as u64).to_le_bytes());
        idx.extend_from_slice(&self.tokens().to_le_bytes());
        self.offsets.iter().for_each(|o| idx.extend_from_slice(&o.to_le_bytes()));
        // The .bin goes into place first; the .idx (written atomically) marks the shard complete.
        std::fs::rename(&bin_tmp, &bin_path).map_err(|e| DataError::io(&bin_path, "cannot rename into place", e))?;
        crate::io::write_atomic(&idx_path, &idx)?;
        self.finished = true;
        Ok((bin_path, idx_path))
    }
}

impl Drop for ShardWriter {
    fn drop(&mut self) {
        if !self.finished {
            let _ = std::fs::remove_file(partial_path(&with_ext(&self.base, ".bin")));
        }
    }
}

/// A borrowed view of token ids in either width.
#[derive(Debug, Clone, Copy)]
pub enum Tokens<'a> {
    /// Little-endian u16 tokens.
    U16(&'a [u8]),
    /// Little-endian u32 tokens.
    U32(&'a [u8]),
}

impl Tokens<'_> {
    /// Tokens.
    pub fn len(&self) -> usize {
        match self {
            Tokens::U16(b) => b.len() / 2,
            Tokens::U32(b) => b.len() / 4,
        }
    }

    /// No tokens.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Token `i`.
    pub fn get(&self, i: usize) -> u32 {
        match self {
            Tokens::U16(b) => u16::from_le_bytes([b[2 * i], b[2 * i + 1]]).into(),
            Tokens::U32(b) => u32::from_le_bytes(b[4 * i..4 * i + 4].try_into().expect("4 bytes")),
        }
    }

    /// The tokens as u32.
    pub fn to_vec(&self) -> Vec<u32> {
        (0..self.len()).map(|i| self.get(i)).collect()
    }
}

/// Memory-mapped reader for a syne shard.
pub struct ShardReader {
    base: PathBuf,
    bin: Option<Mmap>,
    width: TokenWidth,
    offsets: Vec<u64>,
}

impl ShardReader {
    /// Open `base.bin` + `base.idx`, validating the index against the data size.
    pub fn open(base: &Path) -> Result<ShardReader> {
        let idx_path = with_ext(base, ".idx");
        let bin_path = with_ext(base, ".bin");
        let idx = std::fs::read(&idx_path).map_err(|e| DataError::io(&idx_path, "cannot read shard index", e))?;
        if idx.len() < 32 || &idx[..8] != SYNE_MAGIC {
            return Err(shard_err(&idx_path, "not a syne shard index (bad magic or too short)"));
        }
        let version = u32::from_le_bytes(idx[8..12].try_into().expect("4"));
        if version != SYNE_VERSION {
            return Err(shard_err(&idx_path, format!("unsupported shard version {version}")));
        }
        let width = match idx[12] {
            2 => TokenWidth::U16,
            4 => TokenWidth::U32,
            w => return Err(shard_err(&idx_path, format!("bad token width {w}"))),
        };
        let docs = u64::from_le_bytes(idx[16..24].try_into().expect("8"));
        let tokens = u64::from_le_bytes(idx[24..32].try_into().expect("8"));
        let expected_len = 32u64.checked_add(docs.saturating_add(1).saturating_mul(8));
        if expected_len != Some(idx.len() as u64) {
            return Err(shard_err(&idx_path, format!("index holds {} bytes, expected {expected_len:?} for {docs} documents", idx.len())));
        }
        let offsets: Vec<u64> = idx[32..].chunks_exact(8).map(|c| u64::from_le_bytes(c.try_into().expect("8"))).collect();
        if offsets[0] != 0 || offsets.windows(2).any(|w| w[0] > w[1]) || *offsets.last().expect("D+1") != tokens {
            return Err(shard_err(&idx_path, "document offsets are not monotone from 0 to the token count"));
        }
        let file = File::open(&bin_path).map_err(|e| DataError::io(&bin_path, "cannot open shard data", e))?;
        let len = file.metadata().map_err(|e| DataError::io(&bin_path, "cannot stat", e))?.len();
        if len != tokens * width.bytes() as u64 {
            return Err(shard_err(&bin_path, format!("holds {len} bytes, index says {tokens} tokens of {} bytes", width.bytes())));
        }
        // SAFETY: read-only mapping of a file we do not modify; an empty file is not mapped.
        let bin = if len == 0 { None } else { Some(unsafe { Mmap::map(&file) }.map_err(|e| DataError::io(&bin_path, "cannot map", e))?) };
        Ok(ShardReader { base: base.to_path_buf(), bin, width, offsets })
    }

    /// The shard's path without extension.
    pub fn base(&self) -> &Path {
        &self.base
    }

    /// Its token width.
    pub fn width(&self) -> TokenWidth {
        self.width
    }

    /// Documents in it.
    pub fn num_docs(&self) -> usize {
        self.offsets.len() - 1
    }

    /// Tokens in it.
    pub fn num_tokens(&self) -> u64 {
        *self.offsets.last().expect("D+1 offsets")
    }

    /// Token range of every document.
    pub fn offsets(&self) -> &[u64] {
        &self.offsets
    }

    /// All tokens of the shard.
    pub fn tokens(&self) -> Tokens<'_> {
        let bytes: &[u8] = self.bin.as_deref().unwrap_or(&[]);
        match self.width {
            TokenWidth::U16 => Tokens::U16(bytes),
            TokenWidth::U32 => Tokens::U32(bytes),
        }
    }

    /// Tokens `start..end` (token indices) of the shard.
    pub fn token_range(&self, start: u64, end: u64) -> Tokens<'_> {
        let w = self.width.bytes();
        let bytes: &[u8] = self.bin.as_deref().unwrap_or(&[]);
        let s = &bytes[start as usize * w..end as usize * w];
        match self.width {
            TokenWidth::U16 => Tokens::U16(s),
            TokenWidth::U32 => Tokens::U32(s),
        }
    }

    /// Document `i`'s tokens.
    pub fn doc(&self, i: usize) -> Tokens<'_> {
        self.token_range(self.offsets[i], self.offsets[i + 1])
    }
}

/// Write a Megatron-LM indexed dataset at `prefix` (`prefix.bin`, `prefix.idx`) from shards,
/// one sequence per document, in the given order.
pub fn export_megatron(shards: &[ShardReader], prefix: &Path, vocab_size: usize) -> Result<(u64, u64)> {
    export_megatron_docs(shards, &doc_refs(shards), prefix, vocab_size)
}

/// Every document of `shards` as (shard index, document index), in shard order.
pub fn doc_refs(shards: &[ShardReader]) -> Vec<(usize, usize)> {
    shards.iter().enumerate().flat_map(|(s, sh)| (0..sh.num_docs()).map(move |d| (s, d))).collect()
}

/// [`export_megatron`] of the documents `docs` (shard index, document index), in that order.
pub fn export_megatron_docs(shards: &[ShardReader], docs: &[(usize, usize)], prefix: &Path, vocab_size: usize) -> Result<(u64, u64)> {
    let mut w = MegatronWriter::create(prefix, vocab_size)?;
    for &(s, d) in docs {
        let shard = &shards[s];
        let toks = shard.doc(d);
        w.push((0..toks.len()).map(|i| toks.get(i))).map_err(|e| match e {
            DataError::Shard { detail, .. } => shard_err(shard.base(), format!("document {d}: {detail}")),
            other => other,
        })?;
    }
    w.finish()
}

/// A Megatron-LM indexed dataset (`prefix.bin` + `prefix.idx`, the `MMIDIDX` format of
/// megatron-core's `IndexedDataset`) written one sequence at a time; the `.bin` grows under a
/// temporary name and both files take their names only in [`MegatronWriter::finish`], so an
/// interrupted export never leaves a dataset that looks complete.
pub struct MegatronWriter {
    bin_path: PathBuf,
    idx_path: PathBuf,
    bin_tmp: PathBuf,
    bin: BufWriter<File>,
    /// Megatron's dtype code and the token width in bytes.
    code: u8,
    width: usize,
    lengths: Vec<i32>,
    buf: Vec<u8>,
}

impl MegatronWriter {
    /// Start `prefix.bin` / `prefix.idx` for a vocabulary of `vocab_size` entries.
    pub fn create(prefix: &Path, vocab_size: usize) -> Result<MegatronWriter> {
        // Megatron's DType.optimal_dtype: uint16 below 65,500 entries, else int32.
        let (code, width): (u8, usize) = if vocab_size < 65_500 { (8, 2) } else { (4, 4) };
        let bin_path = with_ext(prefix, ".bin");
        let bin_tmp = partial_path(&bin_path);
        let bin = BufWriter::with_capacity(1 << 20, File::create(&bin_tmp).map_err(|e| DataError::io(&bin_tmp, "cannot create", e))?);
        Ok(MegatronWriter { idx_path: with_ext(prefix, ".idx"), bin_path, bin_tmp, bin, code, width, lengths: Vec::new(), buf: Vec::new() })
    }

    /// Append one sequence (a Megatron "document").
    pub fn push(&mut self, tokens: impl IntoIterator<Item = u32>) -> Result<()> {
        self.buf.clear();
        let mut n = 0usize;
        for t in tokens {
            if self.width == 2 {
                let t = u16::try_from(t).map_err(|_| shard_err(&self.bin_path, format!("token {t} exceeds uint16")))?;
                self.buf.extend_from_slice(&t.to_le_bytes());
            } else {
                let t = i32::try_from(t).map_err(|_| shard_err(&self.bin_path, format!("token {t} exceeds int32")))?;
                self.buf.extend_from_slice(&t.to_le_bytes());
            }
            n += 1;
        }
        let len = i32::try_from(n).map_err(|_| shard_err(&self.bin_path, "a sequence of more than 2^31 tokens".to_string()))?;
        self.bin.write_all(&self.buf).map_err(|e| DataError::io(&self.bin_tmp, "cannot write", e))?;
        self.lengths.push(len);
        Ok(())
    }

    /// Write the index, sync and rename both files into place; returns (sequences, tokens).
    pub fn finish(self) -> Result<(u64, u64)> {
        let MegatronWriter { bin_path, idx_path, bin_tmp, bin, code, width, lengths, .. } = self;
        let f = bin.into_inner().map_err(|e| DataError::io(&bin_tmp, "cannot flush", e.into_error()))?;
        f.sync_all().map_err(|e| DataError::io(&bin_tmp, "cannot sync", e))?;
        let s = lengths.len() as u64;
        let mut idx = Vec::with_capacity(34 + 12 * lengths.len() + 8 * (lengths.len() + 1));
        idx.extend_from_slice(MEGATRON_MAGIC);
        idx.extend_from_slice(&1u64.to_le_bytes());
        idx.push(code);
        idx.extend_from_slice(&s.to_le_bytes());
        idx.extend_from_slice(&(s + 1).to_le_bytes());
        lengths.iter().for_each(|l| idx.extend_from_slice(&l.to_le_bytes()));
        let mut ptr: i64 = 0;
        for l in &lengths {
            idx.extend_from_slice(&ptr.to_le_bytes());
            ptr += i64::from(*l) * width as i64;
        }
        (0..=s).for_each(|d| idx.extend_from_slice(&(d as i64).to_le_bytes()));
        std::fs::rename(&bin_tmp, &bin_path).map_err(|e| DataError::io(&bin_path, "cannot rename into place", e))?;
        crate::io::write_atomic(&idx_path, &idx)?;
        let tokens: u64 = lengths.iter().map(|&l| l as u64).sum();
        Ok((s, tokens))
    }
}

/// Memory-mapped reader for a Megatron-LM indexed dataset.
pub struct MegatronReader {
    bin: Option<Mmap>,
    width: TokenWidth,
    lengths: Vec<i32>,
    pointers: Vec<i64>,
    doc_indices: Vec<i64>,
}

impl MegatronReader {
    /// Open `prefix.idx` + `prefix.bin` (dtypes uint16 and int32 are supported).
    pub fn open(prefix: &Path) -> Result<MegatronReader> {
        let idx_path = with_ext(prefix, ".idx");
        let bin_path = with_ext(prefix, ".bin");
        let idx = std::fs::read(&idx_path).map_err(|e| DataError::io(&idx_path, "cannot read Megatron index", e))?;
        if idx.len() < 34 || &idx[..9] != MEGATRON_MAGIC {
            return Err(shard_err(&idx_path, "not a Megatron .idx (bad magic or too short)"));
        }
        let version = u64::from_le_bytes(idx[9..17].try_into().expect("8"));
        if version != 1 {
            return Err(shard_err(&idx_path, format!("unsupported version {version}")));
        }
        let width = match idx[17] {
            8 => TokenWidth::U16,
            4 => TokenWidth::U32,
            c => return Err(shard_err(&idx_path, format!("dtype code {c} not supported (8 = uint16, 4 = int32)"))),
        };
        let s = u64::from_le_bytes(idx[18..26].try_into().expect("8")) as usize;
        let d = u64::from_le_bytes(idx[26..34].try_into().expect("8")) as usize;
        let need = 34usize.saturating_add(s.saturating_mul(12)).saturating_add(d.saturating_mul(8));
        if need > idx.len() {
            return Err(shard_err(&idx_path, format!("{s} sequences and {d} document indices do not fit in {} bytes", idx.len())));
        }
        let mut p = 34;
        let lengths: Vec<i32> = (0..s).map(|i| i32::from_le_bytes(idx[p + 4 * i..p + 4 * i + 4].try_into().expect("4"))).collect();
        p += 4 * s;
        let pointers: Vec<i64> = (0..s).map(|i| i64::from_le_bytes(idx[p + 8 * i..p + 8 * i + 8].try_into().expect("8"))).collect();
        p += 8 * s;
        let doc_indices: Vec<i64> = (0..d).map(|i| i64::from_le_bytes(idx[p + 8 * i..p + 8 * i + 8].try_into().expect("8"))).collect();
        if doc_indices.last().copied() != Some(s as i64) {
            return Err(shard_err(&idx_path, "last document index must equal the sequence count"));
        }
        let file = File::open(&bin_path).map_err(|e| DataError::io(&bin_path, "cannot open", e))?;
        let len = file.metadata().map_err(|e| DataError::io(&bin_path, "cannot stat", e))?.len();
        let total: i64 = lengths.iter().map(|&l| i64::from(l)).sum::<i64>() * width.bytes() as i64;
        if len as i64 != total {
            return Err(shard_err(&bin_path, format!("holds {len} bytes, the index describes {total}")));
        }
        // SAFETY: read-only mapping of a file we do not modify.
        let bin = if len == 0 { None } else { Some(unsafe { Mmap::map(&file) }.map_err(|e| DataError::io(&bin_path, "cannot map", e))?) };
        Ok(MegatronReader { bin, width, lengths, pointers, doc_indices })
    }

    /// Sequences (documents) in the dataset.
    pub fn num_sequences(&self) -> usize {
        self.lengths.len()
    }

    /// Megatron's document index (sequence boundaries of each document).
    pub fn document_indices(&self) -> &[i64] {
        &self.doc_indices
    }

    /// Sequence `i`'s tokens.
    pub fn sequence(&self, i: usize) -> Tokens<'_> {
        let bytes: &[u8] = self.bin.as_deref().unwrap_or(&[]);
        let start = self.pointers[i] as usize;
        let s = &bytes[start..start + self.lengths[i] as usize * self.width.bytes()];
        match self.width {
            TokenWidth::U16 => Tokens::U16(s),
            TokenWidth::U32 => Tokens::U32(s),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shard_round_trip_both_widths() {
        let dir = tempfile::tempdir().unwrap();
        for (width, big) in [(TokenWidth::U16, 65_535u32), (TokenWidth::U32, 128_255)] {
            let base = dir.path().join(format!("s{}", width.bytes()));
            let mut w = ShardWriter::create(&base, width).unwrap();
            w.push(&[1, 2, 3]).unwrap();
            w.push(&[]).unwrap();
            w.push(&[big, 0]).unwrap();
            w.finish().unwrap();
            let r = ShardReader::open(&base).unwrap();
            assert_eq!(r.num_docs(), 3);
            assert_eq!(r.num_tokens(), 5);
            assert_eq!(r.doc(0).to_vec(), vec![1, 2, 3]);
            assert!(r.doc(1).is_empty());
            assert_eq!(r.doc(2).to_vec(), vec![big, 0]);
        }
    }

    #[test]
    fn u16_shard_rejects_large_ids_and_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().join("s");
        let mut w = ShardWriter::create(&base, TokenWidth::U16).unwrap();
        assert!(w.push(&[70_000]).is_err());
        drop(w);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn truncated_shard_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().join("s");
        let mut w = ShardWriter::create(&base, TokenWidth::U32).unwrap();
        w.push(&[1, 2, 3, 4]).unwrap();
        w.finish().unwrap();
        let bin = dir.path().join("s.bin");
        let data = std::fs::read(&bin).unwrap();
        std::fs::write(&bin, &data[..6]).unwrap();
        let err = ShardReader::open(&base).err().expect("must fail").to_string();
        assert!(err.contains("s.bin") && err.contains("holds 6 bytes"), "{err}");
    }

    #[test]
    fn megatron_layout_matches_the_spec() {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().join("s");
        let mut w = ShardWriter::create(&base, TokenWidth::U16).unwrap();
        w.push(&[5, 6, 7]).unwrap();
        w.push(&[8]).unwrap();
        w.finish().unwrap();
        let prefix = dir.path().join("m");
        let (s, t) = export_megatron(&[ShardReader::open(&base).unwrap()], &prefix, 49_152).unwrap();
        assert_eq!((s, t), (2, 4));
        let idx = std::fs::read(dir.path().join("m.idx")).unwrap();
        let mut want = b"MMIDIDX\x00\x00".to_vec();
        want.extend_from_slice(&1u64.to_le_bytes());
        want.push(8);
        want.extend_from_slice(&2u64.to_le_bytes());
        want.extend_from_slice(&3u64.to_le_bytes());
        want.extend_from_slice(&3i32.to_le_bytes());
        want.extend_from_slice(&1i32.to_le_bytes());
        want.extend_from_slice(&0i64.to_le_bytes());
        want.extend_from_slice(&6i64.to_le_bytes());
        for d in 0..3i64 {
            want.extend_from_slice(&d.to_le_bytes());
        }
        assert_eq!(idx, want);
        assert_eq!(std::fs::read(dir.path().join("m.bin")).unwrap(), vec![5, 0, 6, 0, 7, 0, 8, 0]);
        let r = MegatronReader::open(&prefix).unwrap();
        assert_eq!(r.num_sequences(), 2);
        assert_eq!(r.sequence(0).to_vec(), vec![5, 6, 7]);
        assert_eq!(r.sequence(1).to_vec(), vec![8]);
        assert_eq!(r.document_indices(), &[0, 1, 2]);
    }
}

//! Exact (content hash) and near-duplicate (MinHash-LSH) deduplication.
//!
//! * Shingles are n-grams of [`crate::text::simplified_words`]: lower-cased words with
//!   punctuation removed, where every CJK character is a word, so a Chinese shingle of size 5
//!   is five characters (character shingles) and an English one five words.
//! * `bands x rows` hash functions `h_i(x) = (a_i * x + b_i) >> 32` (multiply-shift, a
//!   2-universal family) over 32-bit shingle hashes; `a_i, b_i` come from a seeded SplitMix64
//!   stream, so signatures are identical across runs, machines and thread counts.
//! * Each band of `rows` values is hashed to one 64-bit key; documents sharing a key in any band
//!   are joined with union-find whose root is always the smallest document index, and the
//!   document kept from each cluster is its first one in input order.
//!
//! Memory is bounded by the per-document keys (16 bytes of content hash plus 8 bytes per band),
//! never by the text.

use serde::{Deserialize, Serialize};
use xxhash_rust::xxh3::{xxh3_128, xxh3_64, xxh3_64_with_seed};

use crate::text::{for_each_simplified_word, ngram_hashes, splitmix64, PrehashedMap};

pub use syne_recipe::prepare::DedupConfig;

/// Computes MinHash signatures and LSH band keys.
#[derive(Debug, Clone)]
pub struct MinHasher {
    ngram: usize,
    bands: usize,
    rows: usize,
    a: Vec<u64>,
    b: Vec<u64>,
}

impl MinHasher {
    /// Hash functions for `cfg` (panics on zero bands/rows/ngram; the config loader rejects them).
    pub fn new(cfg: &DedupConfig) -> MinHasher {
        assert!(cfg.bands > 0 && cfg.rows > 0 && cfg.ngram > 0, "bands, rows and ngram must be positive");
        let n = cfg.bands * cfg.rows;
        let mut state = cfg.seed;
        let (mut a, mut b) = (Vec::with_capacity(n), Vec::with_capacity(n));
        for _ in 0..n {
            a.push(splitmix64(&mut state) | 1); // odd multiplier
            b.push(splitmix64(&mut state));
        }
        MinHasher { ngram: cfg.ngram, bands: cfg.bands, rows: cfg.rows, a, b }
    }

    /// Number of LSH bands (band keys per document).
    pub fn bands(&self) -> usize {
        self.bands
    }

    /// 32-bit hashes of the document's shingles (deduplicated and sorted).
    pub fn shingles(&self, text: &str) -> Vec<u32> {
        let mut words: Vec<u64> = Vec::new();
        for_each_simplified_word(text, |w| words.push(xxh3_64(w.as_bytes())));
        // A document shorter than one shingle is one shingle of all its words.
        let n = self.ngram.min(words.len());
        let mut out: Vec<u32> = ngram_hashes(&words, n).into_iter().map(|h| h as u32).collect();
        out.sort_unstable();
        out.dedup();
        out
    }

    /// The MinHash signature (`bands * rows` values). An empty document has all values at
    /// `u32::MAX`.
    pub fn signature(&self, text: &str) -> Vec<u32> {
        let shingles = self.shingles(text);
        let mut sig = vec![u64::MAX; self.a.len()];
        for &x in &shingles {
            let x = u64::from(x);
            // Written over plain slices so that the compiler vectorises the inner loop.
            for ((s, &a), &b) in sig.iter_mut().zip(&self.a).zip(&self.b) {
                let h = a.wrapping_mul(x).wrapping_add(b) >> 32;
                *s = (*s).min(h);
            }
        }
        sig.into_iter().map(|v| v.min(u64::from(u32::MAX)) as u32).collect()
    }

    /// One 64-bit key per band.
    pub fn band_keys(&self, signature: &[u32]) -> Vec<u64> {
        signature
            .chunks(self.rows)
            .enumerate()
            .map(|(band, rows)| {
                let bytes: Vec<u8> = rows.iter().flat_map(|v| v.to_le_bytes()).collect();
                xxh3_64_with_seed(&bytes, band as u64)
            })
            .collect()
    }
}

/// Content hash used for exact deduplication.
pub fn content_hash(text: &str) -> u128 {
    xxh3_128(text.as_bytes())
}

/// Estimated Jaccard similarity of two signatures (fraction of equal values).
pub fn estimated_jaccard(a: &[u32], b: &[u32]) -> f64 {
    if a.is_empty() {
        return 0.0;
    }
    a.iter().zip(b).filter(|(x, y)| x == y).count() as f64 / a.len() as f64
}

/// What happened to one document.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Decision {
    /// Kept: the first of its kind.
    Keep,
    /// Byte-identical (after normalisation) to the document with this index.
    ExactDuplicateOf(u32),
    /// In the same MinHash-LSH cluster as the kept document with this index.
    NearDuplicateOf(u32),
}

/// Union-find over document indices whose root is always the smallest index of its set.
struct MinRootUnionFind {
    parent: Vec<u32>,
}

impl MinRootUnionFind {
    fn new(n: usize) -> Self {
        MinRootUnionFind { parent: (0..n as u32).collect() }
    }

    fn find(&mut self, mut x: u32) -> u32 {
        let mut root = x;
        while self.parent[root as usize] != root {
            root = self.parent[root as usize];
        }
        while self.parent[x as usize] != root {
            let next = self.parent[x as usize];
            self.parent[x as usize] = root;
            x = next;
        }
        root
    }

    fn union(&mut self, a: u32, b: u32) {
        let (ra, rb) = (self.find(a), self.find(b));
        if ra != rb {
            let (lo, hi) = if ra < rb { (ra, rb) } else { (rb, ra) };
            self.parent[hi as usize] = lo;
        }
    }
}

/// Decide, for `n` documents in input order, which to keep.
///
/// `hashes[i]` is document i's [`content_hash`] (ignored unless `exact`), and
/// `band_keys[i * bands..(i + 1) * bands]` its band keys (ignored when `bands == 0`).
/// The result depends only on the inputs, never on thread count or hash-map order.
pub fn decide(n: usize, hashes: &[u128], exact: bool, band_keys: &[u64], bands: usize) -> Vec<Decision> {
    assert!(n <= u32::MAX as usize, "at most 2^32 documents per dedup run");
    let mut decisions = vec![Decision::Keep; n];
    if exact {
        let mut first: PrehashedMap<u128, u32> = PrehashedMap::with_capacity_and_hasher(n, Default::default());
        for (i, h) in hashes.iter().enumerate().take(n) {
            let f = *first.entry(*h).or_insert(i as u32);
            if f != i as u32 {
                decisions[i] = Decision::ExactDuplicateOf(f);
            }
        }
    }
    if bands == 0 {
        return decisions;
    }
    assert_eq!(band_keys.len(), n * bands, "band_keys must hold `bands` keys per document");
    let mut uf = MinRootUnionFind::new(n);
    let mut pairs: Vec<(u64, u32)> = Vec::with_capacity(n);
    for band in 0..bands {
        pairs.clear();
        pairs.extend((0..n).filter(|&i| decisions[i] == Decision::Keep).map(|i| (band_keys[i * bands + band], i as u32)));
        pairs.sort_unstable();
        for w in pairs.windows(2) {
            if w[0].0 == w[1].0 {
                uf.union(w[0].1, w[1].1);
            }
        }
    }
    for (i, d) in decisions.iter_mut().enumerate() {
        if *d == Decision::Keep {
            let root = uf.find(i as u32);
            if root != i as u32 {
                *d = Decision::NearDuplicateOf(root);
            }
        }
    }
    decisions
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(h: &MinHasher, texts: &[&str]) -> (Vec<u128>, Vec<u64>) {
        let hashes = texts.iter().map(|t| content_hash(t)).collect();
        let keys = texts.iter().flat_map(|t| h.band_keys(&h.signature(t))).collect();
        (hashes, keys)
    }

    const BASE: &str = "The mitochondrion is an organelle found in the cells of most eukaryotes, such as animals, \
        plants and fungi. Mitochondria have a double membrane structure and use aerobic respiration to generate \
        adenosine triphosphate, which is used throughout the cell as a source of chemical energy. They were \
        discovered by Albert von Kolliker in 1857 in the voluntary muscles of insects.";

    #[test]
    fn signatures_are_deterministic_and_seeded() {
        let cfg = DedupConfig::default();
        let a = MinHasher::new(&cfg).signature(BASE);
        assert_eq!(a, MinHasher::new(&cfg).signature(BASE));
        let other = MinHasher::new(&DedupConfig { seed: 7, ..cfg }).signature(BASE);
        assert_ne!(a, other);
        assert_eq!(a.len(), 14 * 8);
    }

    #[test]
    fn near_duplicates_cluster_and_first_is_kept() {
        let h = MinHasher::new(&DedupConfig::default());
        let edited = BASE.replace("1857", "1858").replace(", such as", " such as");
        let unrelated = "Photosynthesis is the process by which green plants and some other organisms use sunlight \
            to synthesize foods from carbon dioxide and water, generating oxygen as a by-product.";
        let texts = [unrelated, BASE, edited.as_str(), BASE];
        let (hashes, k) = keys(&h, &texts);
        let d = decide(texts.len(), &hashes, true, &k, h.bands());
        assert_eq!(d, vec![Decision::Keep, Decision::Keep, Decision::NearDuplicateOf(1), Decision::ExactDuplicateOf(1)]);
        let sim = estimated_jaccard(&h.signature(BASE), &h.signature(&edited));
        assert!(sim > 0.6, "similarity {sim}");
    }

    #[test]
    fn chinese_uses_character_shingles() {
        let h = MinHasher::new(&DedupConfig::default());
        let a = "中华人民共和国是位于东亚的社会主义国家，首都是北京，人口超过十四亿，是世界上人口最多的国家之一。";
        let b = "中华人民共和国是位于东亚的社会主义国家，首都是北京。人口超过十四亿，是世界上人口最多的国家之一！";
        // Punctuation changes only: identical simplified words, identical signatures.
        assert_eq!(h.signature(a), h.signature(b));
        assert!(h.shingles(a).len() > 30);
    }

    #[test]
    fn union_find_chains_keep_the_smallest() {
        // 0-1 share band 0, 1-2 share band 1: one cluster rooted at 0.
        let keys = vec![1, 100, 1, 2, 3, 2];
        let d = decide(3, &[1, 2, 3], false, &keys, 2);
        assert_eq!(d, vec![Decision::Keep, Decision::NearDuplicateOf(0), Decision::NearDuplicateOf(0)]);
    }
}

/// Counts of a standalone dedup run ([`dedup_corpus`]).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct DedupReport {
    /// Records read.
    pub docs_in: u64,
    /// Malformed records (counted, skipped).
    pub bad_records: u64,
    /// Documents byte-identical (after normalisation) to an earlier one.
    pub exact_duplicates: u64,
    /// Near-duplicates of an earlier kept document.
    pub near_duplicates: u64,
    /// Documents written.
    pub docs_out: u64,
    /// Ids (or positions, for records without id) of the removed documents, in input order.
    pub removed: Vec<String>,
}

/// Deduplicate corpus files into one JSONL output (exact and/or MinHash-LSH, as `cfg` says),
/// streaming: pass one computes keys in parallel batches, the decision is made on keys only,
/// pass two re-reads the input and writes the kept records unchanged (`{"id", "text"}`).
/// Bad records are skipped and counted.
pub fn dedup_corpus(inputs: &[std::path::PathBuf], fields: &crate::io::FieldSpec, cfg: &DedupConfig, out: &std::path::Path) -> crate::Result<DedupReport> {
    use rayon::prelude::*;

    use crate::io::CorpusReader;
    let hasher = MinHasher::new(cfg);
    let bands = if cfg.near { hasher.bands() } else { 0 };
    let mut hashes = Vec::new();
    let mut keys = Vec::new();
    let mut report = DedupReport::default();
    const BATCH: usize = 2048;
    for path in inputs {
        let mut reader = CorpusReader::open(path, fields)?;
        loop {
            let batch: Vec<_> = reader.by_ref().take(BATCH).collect();
            if batch.is_empty() {
                break;
            }
            let computed: Vec<Option<(u128, Vec<u64>)>> = batch
                .par_iter()
                .map(|r| {
                    r.as_ref().ok().map(|d| {
                        let k = if cfg.near { hasher.band_keys(&hasher.signature(&d.text)) } else { Vec::new() };
                        (content_hash(&d.text), k)
                    })
                })
                .collect();
            for c in computed {
                report.docs_in += 1;
                match c {
                    Some((h, k)) => {
                        hashes.push(h);
                        keys.extend(k);
                    }
                    None => report.bad_records += 1,
                }
            }
        }
    }
    let decisions = decide(hashes.len(), &hashes, cfg.exact, &keys, bands);
    drop(keys);
    let mut writer = crate::io::JsonlWriter::create(out)?;
    let mut i = 0usize;
    for path in inputs {
        for doc in CorpusReader::open(path, fields)?.flatten() {
            match decisions[i] {
                Decision::Keep => {
                    writer.write(&serde_json::json!({"id": doc.id, "text": doc.text}))?;
                    report.docs_out += 1;
                }
                d => {
                    if matches!(d, Decision::ExactDuplicateOf(_)) {
                        report.exact_duplicates += 1;
                    } else {
                        report.near_duplicates += 1;
                    }
                    report.removed.push(doc.id.clone().unwrap_or_else(|| doc.pos.to_string()));
                }
            }
            i += 1;
        }
    }
    writer.finish()?;
    Ok(report)
}

//! `syne-data`: the first stage of syne's data journey.
//!
//! Raw documents (JSONL, JSONL.gz, JSONL.zst, Parquet) are read with exact positions
//! ([`io`]), normalised ([`normalize`]), filtered with CJK-aware heuristics ([`quality`]),
//! routed by language ([`langid`]), deduplicated exactly and with MinHash-LSH ([`dedup`]),
//! tokenized with a `tokenizer.json` or a GGUF-embedded tokenizer ([`tokenizer`]) and packed
//! into memory-mapped token shards with a manifest, exportable to Megatron-LM ([`shards`]).
//! [`prepare`] runs all of it, resumably, over the sources of a TOML file.
//!
//! # Example
//!
//! Clean, filter and deduplicate a few documents, then pack token ids into a shard and read
//! them back (a real run gets its ids from [`tokenizer::TextTokenizer`]):
//!
//! ```
//! use syne_data::dedup::{content_hash, decide, DedupConfig, Decision, MinHasher};
//! use syne_data::langid::{detect, Lang};
//! use syne_data::normalize::{normalize, NormalizeConfig};
//! use syne_data::quality::{check, QualityConfig};
//! use syne_data::shards::{ShardReader, ShardWriter, TokenWidth};
//!
//! let raw = [
//!     "线粒体是一种存在于大多数真核细胞中的细胞器，由两层膜包被，是细胞中制造能量的结构。\r\n",
//!     "线粒体是一种存在于大多数真核细胞中的细胞器, 由两层膜包被, 是细胞中制造能量的结构!",
//!     "The mitochondrion is an organelle found in the cells of most eukaryotes; it makes energy.",
//! ];
//! let docs: Vec<String> = raw.iter().map(|t| normalize(t, &NormalizeConfig::default())).collect();
//! assert!(docs.iter().all(|d| check(d, &QualityConfig::default()).is_ok()));
//! assert_eq!(detect(&docs[0]).lang, Lang::Zh);
//! assert_eq!(detect(&docs[2]).lang, Lang::En);
//!
//! // The second document differs from the first only in punctuation: a near-duplicate.
//! let hasher = MinHasher::new(&DedupConfig::default());
//! let hashes: Vec<u128> = docs.iter().map(|d| content_hash(d)).collect();
//! let keys: Vec<u64> = docs.iter().flat_map(|d| hasher.band_keys(&hasher.signature(d))).collect();
//! let decisions = decide(docs.len(), &hashes, true, &keys, hasher.bands());
//! assert_eq!(decisions, vec![Decision::Keep, Decision::NearDuplicateOf(0), Decision::Keep]);
//!
//! let dir = std::env::temp_dir().join(format!("syne-doc-{}", std::process::id()));
//! std::fs::create_dir_all(&dir)?;
//! let mut shard = ShardWriter::create(&dir.join("s"), TokenWidth::for_vocab(49_152))?;
//! shard.push(&[101, 102, 2])?;
//! shard.push(&[201, 2])?;
//! shard.finish()?;
//! let reader = ShardReader::open(&dir.join("s"))?;
//! assert_eq!(reader.doc(1).to_vec(), vec![201, 2]);
//! std::fs::remove_dir_all(&dir)?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![warn(missing_docs)]

pub mod dedup;
pub mod error;
pub mod gguf;
pub mod io;
pub mod langid;
pub mod normalize;
pub mod prepare;
pub mod quality;
pub mod shards;
pub mod stream;
pub mod text;
pub mod tokenizer;

pub use error::{BadRecordKind, DataError, Result};

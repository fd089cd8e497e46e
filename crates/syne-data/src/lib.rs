//! `syne-data`: the first stage of syne's data journey.
//!
//! Raw documents (JSONL, JSONL.gz, JSONL.zst, Parquet) are read with exact positions
//! ([`io`]), normalised ([`normalize`]), filtered with CJK-aware heuristics ([`quality`]),
//! routed by language ([`langid`]), deduplicated exactly and with MinHash-LSH ([`dedup`]),
//! tokenized with a `tokenizer.json` or a GGUF-embedded tokenizer ([`tokenizer`]) and packed
//! into memory-mapped token shards with a manifest, exportable to Megatron-LM ([`shards`]).
//! [`prepare`] runs all of it, resumably, over the sources of a TOML file.

pub mod dedup;
pub mod error;
pub mod gguf;
pub mod io;
pub mod langid;
pub mod normalize;
pub mod prepare;
pub mod quality;
pub mod shards;
pub mod text;
pub mod tokenizer;

pub use error::{BadRecordKind, DataError, Result};

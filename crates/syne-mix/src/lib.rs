//! `syne-mix`: the data mixture of a continual pre-training run.
//!
//! - [`recipe`]: the recipe (one TOML file for a whole run): sources with their group
//!   (language, or `syn` for synthetic data) and category, stages with token budgets and group
//!   ratios, within-group source ratios, topic-mixture and curriculum settings; validation errors
//!   name the key.
//! - [`plan`]: the exact per-stage, per-source token plan (integer tokens, rounding remainders
//!   assigned by largest remainder so every stage sums to its budget), checked against the
//!   corpora's manifests: a source short of its quota is an error unless it may repeat.
//! - [`reweight`]: the paper's topic re-weighting rule.
//! - [`mixer`]: the topic mixers as one trait — the paper's rule, static shares, stratified,
//!   ODM (EXP3, arXiv 2312.02406) and ADO (per-topic scaling laws, arXiv 2410.11820), over a
//!   source's topics or over the sources of a language group (`[source_mixing]`).
//! - [`sampler`]: the schedule of sources per training sequence (exact quotas, smooth weighted
//!   round-robin, sources read on across stages, cursors recomputed exactly from a position).
//! - [`stream`]: the schedule as the trainer's packed sequences (syne-data's `SequenceSource`):
//!   curriculum arrangement, per-topic sub-streams re-weighted from validation losses, exact
//!   resume from a checkpoint's state, planned vs consumed per stage, source, topic and bucket.
//! - [`megatron`]: each stage as a Megatron-LM `--data-path` blend over the prepared
//!   `.bin/.idx` files, with a launch snippet matching the recipe's hyper-parameters.
//! - [`curriculum`]: perplexity quantile buckets ordered easy-to-hard (or the ablations).
//! - [`topics`]: a fastText-style topic classifier (hashed word, subword and CJK n-grams,
//!   averaged embeddings, softmax), the 11-topic English taxonomy and its MMLU mapping.
//!
//! ```
//! use syne_mix::reweight::{reweight, ReweightConfig};
//! // Topic 0's validation loss rose by 10% (it is being forgotten), topic 1's did not move:
//! // with the default `relative` normalisation topic 0 gains weight (the paper's Figure 1).
//! let cfg = ReweightConfig::default();
//! let r = reweight(&[0.5, 0.5], &[2.0, 3.0], &[2.2, 3.0], &[1.0, 1.0], &[false, false], &cfg).unwrap();
//! assert!(r.ratios[0] > 0.5 && (r.ratios[0] + r.ratios[1] - 1.0).abs() < 1e-12);
//! ```

#![warn(missing_docs)]

pub mod curriculum;
pub mod error;
pub mod megatron;
pub mod mixer;
pub mod plan;
pub mod recipe;
pub mod reweight;
pub mod sampler;
pub mod stream;
pub mod topics;

pub use error::{MixError, Result};

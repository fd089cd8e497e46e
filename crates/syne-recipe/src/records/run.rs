//! The run's records: its manifest (`manifest.json`: what each step consumed and produced, and
//! the token account) and the per-document notes of the annotation step.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::mixture::Account;

/// One line of `notes/SOURCE.jsonl`: what annotation found for one document (in shard order).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NoteLine {
    /// The classifier's topic.
    pub topic: Option<String>,
    /// Its probability.
    pub topic_prob: Option<f32>,
    /// The backbone's perplexity on the document's opening (curriculum sources).
    pub perplexity: Option<f64>,
}

/// One line of `heldout/SOURCE.jsonl`: a held-out document as text.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HeldoutLine {
    /// The document's text.
    pub text: String,
    /// Its topic (topic sources).
    pub topic: Option<String>,
}

/// The run's record (`manifest.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunManifest {
    /// The recipe file.
    pub recipe: PathBuf,
    /// sha256 of the recipe's copy in the run folder.
    pub recipe_sha256: String,
    /// The prepared folder.
    pub prepared: PathBuf,
    /// sha256 of its manifest.
    pub prepared_manifest_sha256: String,
    /// `plan.json`.
    pub plan: PathBuf,
    /// Per annotated source, its notes.
    pub notes: BTreeMap<String, NotesSummary>,
    /// Per source, the documents held out of training (its validation set).
    #[serde(default)]
    pub heldout: BTreeMap<String, HeldoutSummary>,
    /// What training did.
    pub train: TrainSummary,
    /// Planned against consumed tokens.
    pub account: Account,
    /// `before` / `after` → results file.
    pub eval: BTreeMap<String, PathBuf>,
    /// What each step of the invocation that finished the run cost, and which came from a
    /// shared step cache (a sweep's).
    #[serde(default)]
    pub steps: Vec<StepRecord>,
}

/// One step of a run's last invocation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepRecord {
    /// `synth`, `prepare`, `plan`, `annotate`, `train`, `eval-before`, `eval-after`, or a shared
    /// item: `classifier:TAXONOMY`, `notes:SOURCE`.
    pub step: String,
    /// Wall seconds.
    pub seconds: f64,
    /// For an item of a shared step cache: its key, and whether it was reused (`true`) or
    /// computed here and stored (`false`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shared: Option<SharedItem>,
}

/// An item of a shared step cache.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SharedItem {
    /// The content key (sha256 of everything that determines the item).
    pub key: String,
    /// Taken from the cache rather than computed.
    pub reused: bool,
}

/// The notes of one source.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NotesSummary {
    /// `notes/SOURCE.jsonl`.
    pub file: PathBuf,
    /// Its sha256.
    pub sha256: String,
    /// Documents annotated.
    pub docs: u64,
    /// Documents held out.
    pub heldout_docs: u64,
    /// Documents with a perplexity.
    pub scored_docs: u64,
    /// Documents per topic (`-`: none).
    pub topics: BTreeMap<String, u64>,
}

/// The held-out set of one source.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HeldoutSummary {
    /// `heldout/SOURCE.jsonl`.
    pub file: PathBuf,
    /// Its sha256.
    pub sha256: String,
    /// Documents in it.
    pub docs: u64,
}

/// What training did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainSummary {
    /// The training folder.
    pub out: PathBuf,
    /// Optimizer steps.
    pub steps: u64,
    /// Tokens trained.
    pub tokens: u64,
    /// The final weights' folder.
    pub final_model: PathBuf,
    /// `mixture.jsonl`.
    pub mixture_log: PathBuf,
}

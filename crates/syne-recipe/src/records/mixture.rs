//! The mixture's records: `train/mixture.jsonl` (what moved the topic ratios, and when), the
//! state a checkpoint keeps, and the run's token account (`train/account.json`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// One adjustment of the paper's rule, as logged: the inputs and what they produced.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Adjustment {
    /// Topic ratios before.
    pub before: Vec<f64>,
    /// Per-topic losses at the previous adjustment point.
    pub previous_losses: Vec<f64>,
    /// Per-topic losses now.
    pub losses: Vec<f64>,
    /// The normalised loss changes `d_i`.
    pub changes: Vec<f64>,
    /// The clipped factors `f_i`.
    pub factors: Vec<f64>,
    /// Topic ratios after.
    pub ratios: Vec<f64>,
}

/// What a validation point did to one topic source's mixture.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
// Untagged, as the log has always been written; `Adjustment` comes first because a
// `Baseline` (whose one other field is optional) would match any event.
#[serde(untagged)]
pub enum MixtureEvent {
    /// The ratios moved.
    Adjustment {
        /// The topic source.
        source: String,
        /// Its topics, in the order of the adjustment's vectors.
        topics: Vec<String>,
        /// The rule's inputs and outputs.
        adjustment: Adjustment,
    },
    /// The first validation: the losses later changes are measured from.
    Baseline {
        /// The topic source.
        source: String,
        /// Per-topic losses (`None`: a topic without held-out text).
        baseline: Option<Vec<Option<f64>>>,
    },
}

impl MixtureEvent {
    /// The topic source the event is about.
    pub fn source(&self) -> &str {
        match self {
            MixtureEvent::Baseline { source, .. } | MixtureEvent::Adjustment { source, .. } => source,
        }
    }
}

/// One line of `train/mixture.jsonl`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MixtureLogLine {
    /// Optimizer steps done.
    pub step: u64,
    /// Tokens trained.
    pub tokens: u64,
    /// What happened at this validation point.
    pub event: Vec<MixtureEvent>,
}

/// Topic mixture state of a source with topics (saved in checkpoints).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TopicState {
    /// The source's topics.
    pub topics: Vec<String>,
    /// The ratios now.
    pub ratios: Vec<f64>,
    /// Smooth weighted round-robin credits.
    pub credits: Vec<f64>,
    /// Sequences read per topic.
    pub reads: Vec<u64>,
    /// Topics with no data left.
    pub exhausted: Vec<bool>,
    /// Losses at the last adjustment point (the baseline of the next change; `None` for a
    /// topic without held-out text).
    pub last_losses: Option<Vec<Option<f64>>>,
    /// Tokens trained at the last adjustment.
    pub last_adjusted_tokens: u64,
    /// Ratios at the start of the run.
    pub initial_ratios: Vec<f64>,
}

/// Trained tokens of one stage and source, in total and per topic and curriculum bucket.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Consumed {
    /// Tokens trained.
    pub tokens: u64,
    /// Sequences trained.
    pub sequences: u64,
    /// Tokens per topic.
    pub topics: BTreeMap<String, u64>,
    /// Tokens per curriculum bucket.
    pub buckets: BTreeMap<String, u64>,
}

/// Everything the mixture saves with a checkpoint.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MixtureState {
    /// Sequences delivered.
    pub position: u64,
    /// Per topic source, its mixture state.
    pub topics: BTreeMap<String, TopicState>,
    /// Stage → source → consumption.
    pub consumed: Vec<BTreeMap<String, Consumed>>,
}

/// The run's account: planned against consumed, per stage and source (with topics and buckets),
/// and the topic ratios where they stand.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Account {
    /// Tokens per sequence.
    pub seq_len: u64,
    /// Sequences delivered.
    pub position: u64,
    /// Sequences planned.
    pub planned_sequences: u64,
    /// Per stage, planned and consumed.
    pub stages: Vec<StageAccount>,
    /// Per topic source, its mixture state at the end.
    pub topics: BTreeMap<String, TopicState>,
    /// Per source: documents held out, trained on, and per curriculum bucket the perplexity range.
    pub sources: BTreeMap<String, SourceAccount>,
}

/// One stage of the account.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StageAccount {
    /// The stage's name.
    pub name: String,
    /// Source → planned tokens.
    pub planned_tokens: BTreeMap<String, u64>,
    /// Source → what was trained.
    pub consumed: BTreeMap<String, Consumed>,
}

/// One source of the account.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SourceAccount {
    /// Documents trained on.
    pub train_docs: u64,
    /// Documents held out.
    pub heldout_docs: u64,
    /// Tokens of the training documents.
    pub train_tokens: u64,
    /// Per bucket: documents and the perplexity range (curriculum sources).
    pub buckets: Vec<BucketRange>,
    /// Tokens per topic (training documents).
    pub topic_tokens: BTreeMap<String, u64>,
}

/// One curriculum bucket of a source.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BucketRange {
    /// The bucket (0 = easiest).
    pub bucket: usize,
    /// Its documents.
    pub docs: u64,
    /// The lowest perplexity in it.
    pub min_perplexity: f64,
    /// The highest perplexity in it.
    pub max_perplexity: f64,
}

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

/// The `source` of the events of a group mixed over its sources: `group:NAME` (source names
/// hold no `:`).
pub fn group_label(group: &str) -> String {
    format!("group:{group}")
}

/// What a validation point did to one topic source's mixture (or a mixed group's: its `source`
/// is [`group_label`], its `topics` the group's sources).
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
    /// An online mixer (ODM, ADO) moved the ratios.
    Update {
        /// The topic source.
        source: String,
        /// Its topics, in the order of the update's vectors.
        topics: Vec<String>,
        /// The mixer's inputs and outputs.
        update: MixerUpdate,
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
            MixtureEvent::Baseline { source, .. } | MixtureEvent::Adjustment { source, .. } | MixtureEvent::Update { source, .. } => source,
        }
    }

    /// The topic ratios after the event, when it moved them (any mixer).
    pub fn ratios_after(&self) -> Option<&[f64]> {
        match self {
            MixtureEvent::Adjustment { adjustment, .. } => Some(&adjustment.ratios),
            MixtureEvent::Update { update, .. } => Some(&update.ratios),
            MixtureEvent::Baseline { .. } => None,
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

/// Mixture state of a source with topics, or of a group mixed over its sources
/// (`[source_mixing]`; then `topics` holds the group's source names), saved in checkpoints.
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
    /// What an online mixer (ODM, ADO) carries from one update to the next.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mixer: Option<MixerState>,
}

/// The state of an online mixer between updates (exact resume needs all of it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MixerState {
    /// ODM's EXP3 bandit.
    Odm {
        /// Updates done (`t`).
        updates: u64,
        /// The exploration rate `ε_t` of the last update (`1/K` before the first).
        epsilon: f64,
        /// Cumulative importance-weighted reward `R̂_i` per topic.
        cumulative_reward: Vec<f64>,
    },
    /// ADO's scaling-law policy.
    Ado {
        /// Updates done.
        updates: u64,
        /// Every validation point the fits read: sequences trained and per-topic loss.
        points: Vec<LossPoint>,
        /// The credit-assignment history `h`: a decaying average of the shares actually drawn.
        history: Vec<f64>,
        /// The running average `π̄` of the preference distributions.
        average: Vec<f64>,
        /// Sequences read per topic at the last update (the shares drawn since come from it).
        reads_at_update: Vec<u64>,
    },
}

/// One validation point of a topic source: what ADO fits its power laws on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LossPoint {
    /// Sequences of the whole run trained before the validation.
    pub sequences: u64,
    /// Per-topic held-out loss (`None`: a topic without held-out text).
    pub losses: Vec<Option<f64>>,
}

/// One update of an online mixer (ODM, ADO), as logged.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MixerUpdate {
    /// The mixer.
    pub mixer: crate::TopicMixer,
    /// Topic ratios before.
    pub before: Vec<f64>,
    /// The per-topic losses the update read.
    pub losses: Vec<Option<f64>>,
    /// Topic ratios after.
    pub ratios: Vec<f64>,
    /// The mixer's own quantities.
    pub detail: MixerDetail,
}

/// What an online mixer computed on the way to its ratios.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MixerDetail {
    /// ODM.
    Odm {
        /// `ε_t`.
        epsilon: f64,
        /// `R̂_i` after the update.
        cumulative_reward: Vec<f64>,
    },
    /// ADO.
    Ado {
        /// The fitted law `L(n) = exp(e) + exp(a) / n^alpha` per topic (`None`: not fitted).
        fits: Vec<Option<PowerLaw>>,
        /// The preference `ρ` before smoothing.
        preference: Vec<f64>,
    },
}

/// A fitted power law of loss against sequences trained: `L(n) = exp(e) + exp(a) / n^alpha`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PowerLaw {
    /// Log of the reducible loss's scale.
    pub a: f64,
    /// Log of the irreducible loss.
    pub e: f64,
    /// The exponent.
    pub alpha: f64,
    /// The fit's objective at its optimum (Huber loss in log space).
    pub objective: f64,
}

impl PowerLaw {
    /// The law's loss after `n` sequences.
    pub fn loss(&self, n: f64) -> f64 {
        self.e.exp() + self.a.exp() / n.powf(self.alpha)
    }
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
    /// Per group mixed over its sources (`[source_mixing]`), its state (`topics` = sources).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub groups: BTreeMap<String, TopicState>,
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
    /// Per group mixed over its sources, its state at the end (`topics` = sources).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub groups: BTreeMap<String, TopicState>,
    /// Per source: documents held out, trained on, and per curriculum bucket the perplexity range.
    pub sources: BTreeMap<String, SourceAccount>,
}

impl Account {
    /// Every mixture's final state under the `source` its events carry: the topic sources by
    /// name, the groups mixed over their sources as [`group_label`].
    pub fn mixtures(&self) -> impl Iterator<Item = (String, &TopicState)> {
        self.topics.iter().map(|(s, t)| (s.clone(), t)).chain(self.groups.iter().map(|(g, t)| (group_label(g), t)))
    }
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

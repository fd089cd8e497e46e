//! The trainer's records: `train/metrics.jsonl` (one line per optimizer step) and
//! `train/validation.jsonl` (every held-out domain at one point of training).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// One line of `metrics.jsonl`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepMetrics {
    /// Optimizer steps done.
    pub step: u64,
    /// Tokens trained.
    pub tokens: u64,
    /// Mean training loss of the step (nats per token).
    pub loss: f64,
    /// Learning rate of the step.
    pub lr: f64,
    /// Global gradient norm before clipping.
    pub grad_norm: f64,
    /// Throughput of the step.
    pub tokens_per_s: f64,
}

/// Loss of one topic within a domain.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TopicLoss {
    /// Documents of the topic.
    pub docs: usize,
    /// Predicted tokens.
    pub tokens: u64,
    /// Mean NLL per predicted token, nats.
    pub loss: f64,
}

/// Validation figures of one domain.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DomainMetrics {
    /// The domain (the validation set's name).
    pub name: String,
    /// Documents scored.
    pub docs: usize,
    /// Bad records skipped reading the set.
    pub bad_records: u64,
    /// Predicted tokens.
    pub tokens: u64,
    /// UTF-8 bytes of the texts.
    pub bytes: u64,
    /// Unicode scalars of the texts.
    pub chars: u64,
    /// Mean NLL per predicted token, nats.
    pub loss: f64,
    /// `exp(loss)`.
    pub perplexity: f64,
    /// Total NLL in bits per UTF-8 byte.
    pub bits_per_byte: f64,
    /// Total NLL in bits per character.
    pub bits_per_char: f64,
    /// Per-topic losses (documents with a topic label only).
    pub topics: BTreeMap<String, TopicLoss>,
}

/// One line of `validation.jsonl`: every domain at one point of training.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ValidationReport {
    /// Optimizer steps done.
    pub step: u64,
    /// Tokens trained.
    pub tokens: u64,
    /// Every held-out domain.
    pub domains: Vec<DomainMetrics>,
}

impl ValidationReport {
    /// What the mixers read: every domain's loss keyed by its name (a source's held-out set is
    /// named after the source) and its per-topic losses keyed `domain/topic`.
    pub fn mixture_losses(&self) -> BTreeMap<String, f64> {
        let topics = self.domains.iter().flat_map(|d| d.topics.iter().map(move |(t, l)| (format!("{}/{t}", d.name), l.loss)));
        self.domains.iter().map(|d| (d.name.clone(), d.loss)).chain(topics).collect()
    }
}

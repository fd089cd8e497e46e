//! The one interface between a data pipeline and the trainer: a source of packed training
//! sequences, addressed by the run's sequence position.
//!
//! The trainer asks for sequences `0, 1, 2, ...` in order, reports its validation losses, and
//! saves / restores the source's state with each checkpoint. A plain shard stream is a pure
//! function of the position (its state is empty); the mixture sampler of `syne-mix` also keeps
//! topic ratios that move with the validation losses, which is why the trait carries that
//! feedback and the state: it is the small seam through which per-topic losses flow from
//! `syne-train` to `syne-mix` without either crate knowing the other.

use std::collections::BTreeMap;

use syne_recipe::records::mixture::{MixtureEvent, MixtureState};

use crate::error::Result;

/// One training sequence: `seq_len + 1` token ids (inputs are the first `seq_len`, targets the
/// last `seq_len`) and, when asked for, the document number of each token (for document
/// masking; any numbering that differs between neighbouring documents will do).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PackedSequence {
    /// The `seq_len + 1` tokens (inputs and the last label).
    pub tokens: Vec<i64>,
    /// Each token's document (for document masking; empty when not asked for).
    pub segments: Vec<i64>,
}

/// A source of packed training sequences.
pub trait SequenceSource {
    /// The sequence at `position` (sequences consumed before it). A sampler with state may
    /// require positions in order and return an error otherwise.
    fn sequence(&mut self, position: u64, with_segments: bool) -> Result<PackedSequence>;

    /// Sequences the source is planned to deliver, when it has a plan (`None`: endless).
    fn planned_sequences(&self) -> Option<u64> {
        None
    }

    /// A validation point at `tokens` trained tokens with each domain's loss keyed by its name
    /// and per-topic losses keyed `domain/topic`; returns what the source changed, to be logged
    /// (empty: nothing).
    fn observe_validation(&mut self, _tokens: u64, _losses: &BTreeMap<String, f64>) -> Result<Vec<MixtureEvent>> {
        Ok(Vec::new())
    }

    /// State to save with a checkpoint (`None` for a stateless source).
    fn state(&self) -> Option<MixtureState> {
        None
    }

    /// Continue from a checkpoint: `position` sequences consumed and the saved `state`
    /// (`None` when the checkpoint has none).
    fn restore(&mut self, _position: u64, _state: Option<&MixtureState>) -> Result<()> {
        Ok(())
    }
}

//! `syne plan RECIPE --megatron OUT`: the same method at scale. The exact ordered sequence
//! stream syne's own trainer consumes for the recipe — packed sequences in curriculum order,
//! sources continuing across stages, the topic ratios of every interval — written as one
//! Megatron-LM indexed dataset of pre-packed sequences (`OUT/stream.{bin,idx}`, one "document"
//! per sequence of `seq_len + 1` tokens), with `OUT/export.json` (each stage's range and the
//! sha256 of its tokens), a dataset provider for megatron-core that serves it in order
//! (`OUT/syne_megatron.py`, `OUT/pretrain_syne.py`) and one launch snippet per stage.
//!
//! The stream is built as a run builds it (prepare, plan, annotate — each reused when the run
//! folder has it). Topic ratios move with the validation losses, so when the run folder holds a
//! (surrogate) run's `train/validation.jsonl`, its validations are replayed at the positions
//! they happened, and the mixture events they produce must equal the run's
//! `train/mixture.jsonl` (an error otherwise): the export is the stream that run trained on.
//! Without one, the ratios stay at their starting values. What Megatron does not get: in-loop
//! re-weighting from the big model's own losses.

use std::path::{Path, PathBuf};

use serde::Serialize;
use sha2::{Digest, Sha256};
use syne_data::io::write_atomic;
use syne_data::shards::MegatronWriter;
use syne_data::stream::SequenceSource;
use syne_data::DataError;
use syne_mix::stream::MixtureStream;
use syne_recipe::records::mixture::{Account, MixtureLogLine};
use syne_recipe::records::read_jsonl;
use syne_recipe::records::train::ValidationReport;

use crate::error::{run_err, Result};
use crate::observer::{RunObserver, Unit};
use crate::run::{Annotated, Pipeline};

/// The dataset provider copied next to every export.
const PROVIDER: &str = include_str!("../../../python/syne_megatron.py");
/// Megatron-LM's `pretrain_gpt.py` with the provider, copied next to every export.
const PRETRAIN: &str = include_str!("../../../python/pretrain_syne.py");

/// One stage of the export.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ExportedStage {
    /// The stage.
    pub name: String,
    /// Its first sequence in the stream.
    pub first: u64,
    /// Its sequences.
    pub sequences: u64,
    /// sha256 of its sequences' tokens (little-endian u32, in order).
    pub sha256: String,
    /// Its launch snippet (file name in the export folder).
    pub launch: String,
}

/// `OUT/export.json`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MegatronExport {
    /// The recipe.
    pub recipe: PathBuf,
    /// The dataset prefix in the export folder (`stream`).
    pub prefix: String,
    /// Tokens per training sequence (each stored sequence has one more: the last label).
    pub seq_len: u64,
    /// Sequences of the whole run.
    pub sequences: u64,
    /// Sequences per optimizer step.
    pub step_sequences: u64,
    /// The recipe trains with document masking (the provider then resets attention at EOD).
    pub doc_masking: bool,
    /// The EOD (end-of-document) token.
    pub eod: Option<u32>,
    /// The stages' ranges of the stream.
    pub stages: Vec<ExportedStage>,
    /// Validations of the run replayed into the stream (0: the topic ratios never move).
    pub replayed_validations: usize,
    /// Tokens of the last replayed validation.
    pub replayed_until_tokens: Option<u64>,
    /// What the stream delivered: per stage, source, topic and bucket (equal to a finished
    /// run's account).
    pub account: Account,
}

impl Pipeline {
    /// Write the recipe's exact training stream for Megatron-LM into `out` (see the module docs).
    pub fn export_megatron(&self, out: &Path, observer: &mut dyn RunObserver) -> Result<MegatronExport> {
        let recipe = &self.recipe;
        let dir = recipe.run.output.clone();
        let train = recipe.train.clone().ok_or_else(|| run_err(&recipe.path, "the Megatron export needs a [train] section (sequence length, batch)"))?;
        // A run of another recipe in the folder could not be replayed.
        self.run_folder_recipe()?;
        std::fs::create_dir_all(&dir).map_err(|e| DataError::io(&dir, "cannot create run folder", e))?;
        let Annotated { manifest, schedule, train, inputs, .. } = self.through_annotate(&dir, train, observer)?;
        let mut stream = self.mixture_stream(schedule.clone(), inputs, &train)?;
        let seq_len = train.seq_len as u64;

        // The run's validations, replayed where they happened; what they do must be what the run logged.
        let validation_path = dir.join("train/validation.jsonl");
        let mixture_path = dir.join("train/mixture.jsonl");
        let validations: Vec<ValidationReport> = if validation_path.exists() { read_jsonl(&validation_path)? } else { Vec::new() };
        let logged: Vec<MixtureLogLine> = if mixture_path.exists() { read_jsonl(&mixture_path)? } else { Vec::new() };
        if (recipe.topics.is_some() || recipe.source_mixing.is_some()) && validations.is_empty() {
            observer.say(&format!("megatron: no run in {} to replay: the topic and source ratios stay at their starting values", dir.display()));
        }
        let mut replayed: Vec<MixtureLogLine> = Vec::new();
        let mut next_validation = 0;
        // What the trainer did at a validation: the mixture's events, logged when there are any.
        let mut replay = |stream: &mut MixtureStream, v: &ValidationReport| -> Result<()> {
            let event = stream.observe_validation(v.tokens, &v.mixture_losses())?;
            if !event.is_empty() {
                replayed.push(MixtureLogLine { step: v.step, tokens: v.tokens, event });
            }
            Ok(())
        };

        std::fs::create_dir_all(out).map_err(|e| DataError::io(out, "cannot create", e))?;
        let mut writer = MegatronWriter::create(&out.join("stream"), manifest.tokenizer.vocab_size)?;
        let bar = observer.progress("megatron export", Some(schedule.sequences()), Unit::Sequences);
        let (mut position, mut stages) = (0u64, Vec::new());
        for (k, st) in schedule.stages.iter().enumerate() {
            let first = position;
            let mut hash = Sha256::new();
            for _ in 0..st.sequences {
                while let Some(v) = validations.get(next_validation).filter(|v| v.tokens / seq_len <= position) {
                    replay(&mut stream, v)?;
                    next_validation += 1;
                }
                let seq = stream.sequence(position, false)?;
                let tokens: Vec<u32> = seq.tokens.iter().map(|&t| t as u32).collect();
                tokens.iter().for_each(|t| hash.update(t.to_le_bytes()));
                writer.push(tokens)?;
                position += 1;
                bar.inc(1);
            }
            let launch = format!("stage-{}-{}.sh", k + 1, st.name);
            let what = format!("Stage {} `{}`", k + 1, st.name);
            write_atomic(&out.join(&launch), syne_mix::megatron::ordered_launch_script(recipe, &what, first, st.sequences, seq_len, out).as_bytes())?;
            stages.push(ExportedStage { name: st.name.clone(), first, sequences: st.sequences, sha256: hex::encode(hash.finalize()), launch });
        }
        bar.finish();
        writer.finish()?;
        // Validations after the last sequence (the run's final one) change no sequence, but their
        // events are in the log: replay them too before comparing.
        for v in &validations[next_validation..] {
            replay(&mut stream, v)?;
        }
        if !validations.is_empty() && replayed != logged {
            return Err(run_err(
                &mixture_path,
                format!("replaying {} gives other topic adjustments than the run logged: the run folder does not match this recipe", validation_path.display()),
            ));
        }
        write_atomic(&out.join("syne_megatron.py"), PROVIDER.as_bytes())?;
        write_atomic(&out.join("pretrain_syne.py"), PRETRAIN.as_bytes())?;
        let export = MegatronExport {
            recipe: recipe.path.clone(),
            prefix: "stream".into(),
            seq_len,
            sequences: position,
            step_sequences: schedule.step_sequences,
            doc_masking: train.doc_masking,
            eod: manifest.tokenizer.eos_id,
            stages,
            replayed_validations: validations.len(),
            replayed_until_tokens: validations.last().map(|v| v.tokens),
            account: stream.account(),
        };
        write_atomic(&out.join("export.json"), serde_json::to_string_pretty(&export).expect("export serialises").as_bytes())?;
        Ok(export)
    }
}

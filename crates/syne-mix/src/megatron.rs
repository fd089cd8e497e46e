//! Scale-out export: each stage's mixture as a Megatron-LM blend over the `.bin/.idx` files
//! `syne prepare` wrote (one per source and language), plus a launch snippet whose
//! hyper-parameters match the recipe, so a cluster run uses Megatron with our mixture.
//!
//! Megatron's `--data-path` takes `WEIGHT PREFIX WEIGHT PREFIX ...` and normalises the weights;
//! here each weight is the source's planned tokens in the stage (split over a source's language
//! files in proportion to their tokens), written as a fraction of the stage with 9 decimals.

use std::path::{Path, PathBuf};

use crate::error::{MixError, Result};
use crate::plan::Plan;
use crate::recipe::Recipe;

/// The files written for one stage.
#[derive(Debug, Clone, PartialEq)]
pub struct StageExport {
    /// The stage's name.
    pub stage: String,
    /// `WEIGHT PREFIX` pairs, one per line (the `--data-path` arguments).
    pub blend: PathBuf,
    /// A bash snippet launching Megatron-LM's `pretrain_gpt.py` on that blend.
    pub launch: PathBuf,
}

/// Sequence length of the export when the recipe has no `[train]` (Megatron's usual 4096).
const DEFAULT_SEQ_LEN: u64 = 4096;

fn seq_len(recipe: &Recipe) -> u64 {
    recipe.train.as_ref().map_or(DEFAULT_SEQ_LEN, |t| t.seq_len as u64)
}

/// A topic source's per-topic Megatron datasets and how its topic ratios moved (from a
/// `syne run`): the stages are cut at every adjustment into one blend per interval.
#[derive(Debug, Clone, PartialEq)]
pub struct TopicDatasets {
    /// The topic source.
    pub source: String,
    /// Per topic: the dataset prefix of its training documents (`None`: no documents).
    pub prefixes: Vec<Option<PathBuf>>,
    /// The topic ratios the run started from.
    pub initial_ratios: Vec<f64>,
    /// (trained tokens at the adjustment, ratios from then on), in order.
    pub adjustments: Vec<(u64, Vec<f64>)>,
}

impl TopicDatasets {
    fn ratios_at(&self, tokens: u64) -> &[f64] {
        self.adjustments.iter().rev().find(|(t, _)| *t <= tokens).map_or(&self.initial_ratios, |(_, r)| r)
    }
}

/// Write `OUT/stage-K-NAME.blend` and `OUT/stage-K-NAME.sh` for every stage of `plan`, reading
/// the Megatron files listed in the prepare manifest at `prepared` (a folder).
pub fn export(recipe: &Recipe, plan: &Plan, prepared: &Path, out: &Path) -> Result<Vec<StageExport>> {
    export_with_topics(recipe, plan, prepared, &[], out)
}

/// [`export`] with topic sources read from their per-topic datasets: each stage is cut at the
/// topic adjustments inside it into parts (`stage-K-NAME.part-J.blend/.sh`), each weighting a
/// topic source's topics by the ratios in effect — the re-weighting as a sequence of blends.
/// Every launch snippet sets `--train-samples` to the run's cumulative sequences at its end, so
/// each part continues from the previous part's checkpoint.
pub fn export_with_topics(recipe: &Recipe, plan: &Plan, prepared: &Path, topics: &[TopicDatasets], out: &Path) -> Result<Vec<StageExport>> {
    let manifest = syne_data::prepare::Manifest::load(prepared)?;
    if manifest.megatron.is_empty() {
        return Err(MixError::Plan(format!(
            "{}: the prepare run wrote no Megatron files (set `megatron = true` in [prepare])",
            prepared.join("manifest.json").display()
        )));
    }
    std::fs::create_dir_all(out).map_err(|e| syne_data::DataError::io(out, "cannot create", e))?;
    let prepared = prepared.canonicalize().map_err(|e| syne_data::DataError::io(prepared, "cannot resolve", e))?;
    let seq_len = seq_len(recipe);
    let mut written = Vec::new();
    let mut stage_start = 0u64;
    for (k, st) in plan.stages.iter().enumerate() {
        let stage_end = stage_start + st.tokens;
        // Cut points: the adjustments strictly inside the stage.
        let mut cuts: Vec<u64> = topics.iter().flat_map(|t| t.adjustments.iter().map(|a| a.0)).filter(|&t| t > stage_start && t < stage_end).collect();
        cuts.sort_unstable();
        cuts.dedup();
        let bounds: Vec<u64> = std::iter::once(stage_start).chain(cuts).chain(std::iter::once(stage_end)).collect();
        let parts = bounds.len() - 1;
        for (j, w) in bounds.windows(2).enumerate() {
            let mut lines = String::new();
            for sp in st.sources.iter().filter(|s| s.tokens > 0) {
                let share = sp.tokens as f64 / st.tokens as f64;
                if let Some(td) = topics.iter().find(|t| t.source == sp.source) {
                    let ratios = td.ratios_at(w[0]);
                    let live: f64 = ratios.iter().zip(&td.prefixes).filter(|(_, p)| p.is_some()).map(|(r, _)| r).sum();
                    for (r, p) in ratios.iter().zip(&td.prefixes) {
                        if let (Some(p), true) = (p, *r > 0.0 && live > 0.0) {
                            lines += &format!("{:.9} {}\n", share * r / live, p.display());
                        }
                    }
                    continue;
                }
                let files: Vec<_> = manifest.megatron.iter().filter(|m| m.source == sp.source && m.tokens > 0).collect();
                if files.is_empty() {
                    return Err(MixError::Plan(format!(
                        "stage `{}`: source `{}` has no Megatron file in {}",
                        st.name,
                        sp.source,
                        prepared.join("manifest.json").display()
                    )));
                }
                let source_tokens: u64 = files.iter().map(|m| m.tokens).sum();
                for m in files {
                    let w = share * m.tokens as f64 / source_tokens as f64;
                    lines += &format!("{w:.9} {}\n", prepared.join(&m.prefix).display());
                }
            }
            let stem = if parts == 1 { format!("stage-{}-{}", k + 1, st.name) } else { format!("stage-{}-{}.part-{}", k + 1, st.name, j + 1) };
            let blend = out.join(format!("{stem}.blend"));
            syne_data::io::write_atomic(&blend, lines.as_bytes())?;
            let launch = out.join(format!("{stem}.sh"));
            let what = if parts == 1 {
                format!("Stage {} `{}`", k + 1, st.name)
            } else {
                format!("Stage {} `{}`, part {} of {parts} (topic ratios of tokens {}..{})", k + 1, st.name, j + 1, w[0], w[1])
            };
            syne_data::io::write_atomic(&launch, launch_script(recipe, &what, w[1] - w[0], w[1] / seq_len, seq_len, &blend).as_bytes())?;
            written.push(StageExport { stage: st.name.clone(), blend, launch });
        }
        stage_start = stage_end;
    }
    Ok(written)
}

/// The training flags of a Megatron-LM launch from the recipe's own settings and defaults
/// (syne-recipe's, written once): tokenizer, sequence length, the run's cumulative
/// `--train-samples`, the same peak learning rate and warmup, AdamW and clipping (none =
/// Megatron's `--clip-grad 0`).
fn training_flags(recipe: &Recipe, seq_len: u64, total_samples: u64) -> String {
    let train = recipe.train.as_ref();
    let (lr, warmup_tokens) = train.map_or((1e-5, 0), |t| (t.schedule.peak(), t.schedule.warmup_tokens()));
    let clip = train.and_then(|t| t.clip).unwrap_or(0.0);
    let adam = train.map(|t| t.optimizer.clone()).unwrap_or_default();
    let (beta1, beta2, wd) = (adam.beta1, adam.beta2, adam.weight_decay);
    let tokenizer = recipe.prepare.as_ref().map_or("TOKENIZER".to_string(), |p| p.tokenizer.display().to_string());
    format!(
        "\x20   --tokenizer-type HuggingFaceTokenizer --tokenizer-model '{tokenizer}' \\\n\
         \x20   --seq-length {seq_len} --max-position-embeddings {seq_len} \\\n\
         \x20   --train-samples {total_samples} --lr {lr:e} --min-lr {lr:e} --lr-decay-style constant --lr-warmup-samples {warmup} \\\n\
         \x20   --clip-grad {clip} --adam-beta1 {beta1} --adam-beta2 {beta2} --weight-decay {wd} --bf16 \\\n",
        warmup = warmup_tokens / seq_len,
    )
}

/// A bash snippet running Megatron-LM's `pretrain_gpt.py` on `blend` until the run has consumed
/// `total_samples` sequences (cumulative: a part continues from the previous checkpoint).
fn launch_script(recipe: &Recipe, what: &str, tokens: u64, total_samples: u64, seq_len: u64, blend: &Path) -> String {
    format!(
        "#!/usr/bin/env bash\n# {what} of recipe {recipe}: {tokens} tokens = {samples} sequences of {seq_len}\n\
         # (the run's sequences {from}..{total_samples}).\n\
         # Generated by syne; run from a Megatron-LM checkout with its usual distributed launcher\n\
         # variables (GPUS_PER_NODE, NNODES, ...), model-size flags and checkpoint flags set.\n\
         set -euo pipefail\nBLEND=\"$(cat '{blend}')\"\n\
         torchrun --nproc_per_node \"${{GPUS_PER_NODE:-8}}\" --nnodes \"${{NNODES:-1}}\" pretrain_gpt.py \\\n\
         \x20   ${{MODEL_ARGS:?set the model-size flags of your checkpoint}} \\\n\
         \x20   --data-path $BLEND --split 100,0,0 \\\n\
         {flags}\
         \x20   ${{CHECKPOINT_ARGS:-}}\n",
        recipe = recipe.path.display(),
        samples = tokens / seq_len,
        from = total_samples - tokens / seq_len,
        blend = blend.display(),
        flags = training_flags(recipe, seq_len, total_samples),
    )
}

/// A bash snippet training stage `what` on the ordered export in `export` (`stream.{bin,idx}`
/// served in order by `pretrain_syne.py` and `syne_megatron.py`, copied next to it) until the
/// run has consumed `total_samples` sequences: each stage's launch continues from the previous
/// stage's checkpoint, and Megatron's sequential sampler continues in the stream where it
/// stopped.
pub fn ordered_launch_script(recipe: &Recipe, what: &str, first: u64, sequences: u64, seq_len: u64, export: &Path) -> String {
    let total_samples = first + sequences;
    format!(
        "#!/usr/bin/env bash\n# {what} of recipe {recipe}: the run's sequences {first}..{total_samples} ({sequences} of {seq_len} tokens)\n\
         # in the order syne's trainer reads them. Generated by syne; run with Megatron-LM on PYTHONPATH\n\
         # (pretrain_syne.py imports its pretrain_gpt), its launcher variables, model-size and checkpoint flags.\n\
         set -euo pipefail\nexport SYNE_EXPORT='{export}'\n\
         torchrun --nproc_per_node \"${{GPUS_PER_NODE:-8}}\" --nnodes \"${{NNODES:-1}}\" \"$SYNE_EXPORT/pretrain_syne.py\" \\\n\
         \x20   ${{MODEL_ARGS:?set the model-size flags of your checkpoint}} \\\n\
         \x20   --dataloader-type single --split 100,0,0 --eval-iters 0 \\\n\
         {flags}\
         \x20   ${{CHECKPOINT_ARGS:-}}\n",
        recipe = recipe.path.display(),
        export = export.display(),
        flags = training_flags(recipe, seq_len, total_samples),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blends_weight_sources_by_plan_and_split_languages_by_tokens() {
        let dir = tempfile::tempdir().unwrap();
        let prepared = dir.path().join("data");
        std::fs::create_dir_all(&prepared).unwrap();
        // A manifest with two sources, one of them in two language files.
        use syne_data::prepare::{Counts, Manifest, MegatronEntry, TokenizerEntry};
        let entry = |prefix: &str, source: &str, lang: &str, tokens: u64| MegatronEntry {
            prefix: prefix.into(),
            source: source.into(),
            lang: lang.into(),
            sequences: 1,
            tokens,
        };
        let manifest = Manifest {
            format: "test".into(),
            config_sha256: String::new(),
            tokenizer: TokenizerEntry {
                path: "t".into(),
                sha256: String::new(),
                vocab_size: 10,
                bos_id: None,
                eos_id: None,
                adds_bos: false,
                adds_eos: false,
                token_width: syne_data::shards::TokenWidth::U16,
            },
            inputs: Vec::new(),
            total: Counts::default(),
            sources: Default::default(),
            shards: Vec::new(),
            megatron: vec![entry("megatron/a.en", "a", "en", 300), entry("megatron/a.zh", "a", "zh", 100), entry("megatron/b.en", "b", "en", 50)],
            errors: Vec::new(),
        };
        std::fs::write(prepared.join("manifest.json"), serde_json::to_string(&manifest).unwrap()).unwrap();
        let recipe_text = "[run]\nname = \"t\"\noutput = \"out\"\n[sources.a]\nlanguage = \"en\"\n[sources.b]\nlanguage = \"en\"\n[[stages]]\nname = \"s\"\ntokens = 1000\ngroups = { en = 1.0 }\n[mixture.en]\na = 0.8\nb = 0.2\n[train]\nmodel = \"m.gguf\"\nseq_len = 100\nmicro_batch = 1\nglobal_batch_tokens = 100\ncheckpoint_every_tokens = 1000\nclip = 0.5\nschedule = { kind = \"constant\", peak = 2e-5, warmup_tokens = 500 }\n";
        let recipe = Recipe::from_str_at(recipe_text, &dir.path().join("r.toml")).unwrap();
        let plan = Plan::new(&recipe);
        let out = export(&recipe, &plan, &prepared, &dir.path().join("megatron")).unwrap();
        let blend = std::fs::read_to_string(&out[0].blend).unwrap();
        let w: Vec<(f64, String)> = blend
            .lines()
            .map(|l| {
                let (a, b) = l.split_once(' ').unwrap();
                (a.parse().unwrap(), b.to_string())
            })
            .collect();
        assert_eq!(w.len(), 3);
        assert!((w[0].0 - 0.6).abs() < 1e-9 && w[0].1.ends_with("megatron/a.en"));
        assert!((w[1].0 - 0.2).abs() < 1e-9 && w[1].1.ends_with("megatron/a.zh"));
        assert!((w[2].0 - 0.2).abs() < 1e-9 && w[2].1.ends_with("megatron/b.en"));
        let sh = std::fs::read_to_string(&out[0].launch).unwrap();
        assert!(
            sh.contains("--train-samples 10 ") && sh.contains("--lr 2e-5") && sh.contains("--lr-warmup-samples 5") && sh.contains("--clip-grad 0.5"),
            "{sh}"
        );
        assert!(sh.contains("--seq-length 100"));
        // AdamW and clipping as the trainer uses them (its default weight decay is 0.1).
        assert!(sh.contains("--weight-decay 0.1 ") && sh.contains("--adam-beta2 0.95"), "{sh}");
        // The topic re-weighting of a run as a sequence of blends: source `a` in two topic
        // datasets, adjusted at 300 and 700 tokens (and once past the end, ignored).
        let topics = TopicDatasets {
            source: "a".into(),
            prefixes: vec![Some(dir.path().join("t0")), Some(dir.path().join("t1")), None],
            initial_ratios: vec![0.5, 0.3, 0.2],
            adjustments: vec![(300, vec![0.8, 0.2, 0.0]), (700, vec![0.25, 0.75, 0.0]), (1000, vec![1.0, 0.0, 0.0])],
        };
        let parts = export_with_topics(&recipe, &plan, &prepared, &[topics], &dir.path().join("topics")).unwrap();
        assert_eq!(parts.len(), 3);
        let read = |i: usize| -> Vec<f64> {
            std::fs::read_to_string(&parts[i].blend).unwrap().lines().map(|l| l.split_once(' ').unwrap().0.parse().unwrap()).collect()
        };
        // Part 1: a's 0.8 split 0.5:0.3 over the topics with data (the third has none), b 0.2.
        let p1 = read(0);
        assert!((p1[0] - 0.8 * 0.5 / 0.8).abs() < 1e-9 && (p1[1] - 0.8 * 0.3 / 0.8).abs() < 1e-9 && (p1[2] - 0.2).abs() < 1e-9, "{p1:?}");
        assert!((read(1)[0] - 0.64).abs() < 1e-9 && (read(2)[1] - 0.6).abs() < 1e-9);
        let sh = std::fs::read_to_string(&parts[1].launch).unwrap();
        assert!(parts[1].blend.ends_with("stage-1-s.part-2.blend") && sh.contains("--train-samples 7 ") && sh.contains("sequences 3..7"), "{sh}");
    }
}

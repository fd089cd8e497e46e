//! `syne demo`: the embedded default. The demo recipe (`recipes/demo.toml`) run end to end
//! (synthesis, prepare, plan, annotate, train, evaluate before and after), then its report.
//!
//! [`DemoScale`] scales the demo without editing the recipe: `tokens` (the stages, the
//! learning-rate schedule and the intervals in proportion, in whole optimizer steps),
//! `synth_requests`, `eval_limit` and `docs` (the first N documents of every corpus file). A
//! scaled demo is a different run: everything it derives (prepared shards, synthesis, seed
//! file, training, evaluation) moves to its own folder, so it never mixes with the default run.

use std::path::{Path, PathBuf};

use syne_data::DataError;
use syne_recipe::records::run::RunManifest;
use syne_recipe::{clean_path, LrSchedule, Recipe};

use crate::error::{run_err, PipelineError, Result};
use crate::observer::RunObserver;
use crate::run::{Pipeline, PipelineOptions};
use crate::topics::write_mmlu_seed;

/// How to scale the demo (every field `None`: the recipe as it is).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DemoScale {
    /// Training tokens of all stages together.
    pub tokens: Option<u64>,
    /// Synthesis requests.
    pub synth_requests: Option<usize>,
    /// Questions per benchmark.
    pub eval_limit: Option<usize>,
    /// Documents read from every corpus file.
    pub docs: Option<usize>,
    /// The run folder (default: the recipe's, with the scale in its name).
    pub out: Option<PathBuf>,
}

impl DemoScale {
    fn is_none(&self) -> bool {
        *self == DemoScale::default()
    }
}

/// `n` rounded to a multiple of `step`, at least `step`.
fn round_to(n: f64, step: u64) -> u64 {
    ((n / step as f64).round() as u64).max(1) * step
}

/// Apply `scale` to `recipe` (resolved: its paths are absolute).
pub fn scale_recipe(recipe: &mut Recipe, scale: &DemoScale) -> Result<()> {
    if scale.is_none() {
        return Ok(());
    }
    let path = recipe.path.clone();
    let bad = |m: String| run_err(&path, m);
    let old_out = recipe.run.output.clone();
    let out = match &scale.out {
        Some(o) => clean_path(o),
        None => {
            let mut name = old_out.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "demo".into());
            for (flag, v) in [("t", scale.tokens.map(|v| v as usize)), ("r", scale.synth_requests), ("l", scale.eval_limit), ("d", scale.docs)] {
                if let Some(v) = v {
                    name += &format!("-{flag}{v}");
                }
            }
            old_out.with_file_name(name)
        }
    };
    // Corpus and model paths stay; everything under the old run folder moves.
    for p in recipe.paths_mut() {
        if let Ok(rest) = p.strip_prefix(&old_out) {
            *p = out.join(rest);
        }
    }
    if let Some(tokens) = scale.tokens {
        let train = recipe.train.as_mut().ok_or_else(|| bad("no [train] section".into()))?;
        let batch = train.global_batch_tokens;
        let old: Vec<u64> = recipe.stages.iter().map(|s| s.tokens).collect();
        let old_total: u64 = old.iter().sum();
        if tokens < batch * old.len() as u64 {
            return Err(PipelineError::Request(format!("--tokens {tokens}: at least one step of {batch} tokens per stage ({} stages)", old.len())));
        }
        // Every stage keeps its share, in whole steps; the last takes what rounding left.
        let total = round_to(tokens as f64, batch);
        let mut given = 0;
        for (i, s) in recipe.stages.iter_mut().enumerate() {
            let t = if i + 1 == old.len() {
                total - given
            } else {
                round_to(total as f64 * old[i] as f64 / old_total as f64, batch).min(total - given - batch * (old.len() - i - 1) as u64)
            };
            given += t;
            s.tokens = t;
        }
        let factor = total as f64 / old_total as f64;
        train.checkpoint_every_tokens = round_to(train.checkpoint_every_tokens as f64 * factor, batch);
        match &mut train.schedule {
            LrSchedule::Constant { warmup_tokens, .. } => *warmup_tokens = round_to(*warmup_tokens as f64 * factor, 1),
            LrSchedule::Cosine { warmup_tokens, total_tokens, .. } | LrSchedule::WarmupStableDecay { warmup_tokens, total_tokens, .. } => {
                *total_tokens = total;
                *warmup_tokens = round_to(*warmup_tokens as f64 * factor, 1);
            }
        }
        if let Some(t) = &mut recipe.topics {
            t.interval_tokens = round_to(t.interval_tokens as f64 * factor, batch);
        }
    }
    if let Some(n) = scale.synth_requests {
        recipe.synth.as_mut().ok_or_else(|| bad("--synth-requests: the recipe has no [synth]".into()))?.max_requests = n;
    }
    if let Some(n) = scale.eval_limit {
        recipe.eval.as_mut().ok_or_else(|| bad("--eval-limit: the recipe has no [eval]".into()))?.limit = Some(n);
    }
    if let Some(n) = scale.docs {
        // The first n documents of every corpus file, copied into the run folder.
        let inputs = out.join("inputs").join("corpora");
        std::fs::create_dir_all(&inputs).map_err(|e| DataError::io(&inputs, "cannot create", e))?;
        for src in recipe.sources.values_mut() {
            for p in src.paths.iter_mut().filter(|p| !p.starts_with(&out)) {
                // (paths under the run folder are written by the run itself: the synthesis)
                let text = std::fs::read_to_string(&*p).map_err(|e| DataError::io(&*p, "cannot read a demo corpus", e))?;
                let slice = inputs.join(p.file_name().unwrap_or_default());
                let kept: String = text.lines().take(n).map(|l| format!("{l}\n")).collect();
                syne_data::io::write_atomic(&slice, kept.as_bytes())?;
                *p = slice;
            }
        }
    }
    recipe.validate()?;
    Ok(())
}

/// The demo's topic classifier seed, when the recipe's `[topics] seed` is missing: MMLU's test
/// questions labelled with the paper's topics, from `[eval] data_dir`.
pub fn write_topic_seed(recipe: &Recipe, observer: &mut dyn RunObserver) -> Result<()> {
    if let Some(seed) = recipe.topics.as_ref().and_then(|t| t.seed.clone()).filter(|s| !s.exists()) {
        let data_dir = recipe
            .eval
            .as_ref()
            .and_then(|e| e.data_dir.clone())
            .ok_or_else(|| run_err(&recipe.path, format!("the topic seed {} is missing and [eval] data_dir (MMLU) is not set", seed.display())))?;
        let n = write_mmlu_seed(&data_dir, "test", &seed)?;
        observer.say(&format!("topic seed: {n} labelled MMLU questions → {}", seed.display()));
    }
    Ok(())
}

/// What [`run_demo`] produced.
pub struct DemoRun {
    /// The run folder.
    pub dir: PathBuf,
    /// Its manifest.
    pub manifest: RunManifest,
    /// Its report.
    pub report: syne_report::Report,
}

/// Run the demo recipe at `recipe_path` with `scale`, then write its report.
pub fn run_demo(recipe_path: &Path, scale: &DemoScale, options: PipelineOptions, observer: &mut dyn RunObserver) -> Result<DemoRun> {
    if !recipe_path.exists() {
        return Err(run_err(recipe_path, "no such recipe (run `syne demo` from the repository root, or pass --recipe)"));
    }
    let mut recipe = Recipe::load(recipe_path)?;
    scale_recipe(&mut recipe, scale)?;
    write_topic_seed(&recipe, observer)?;
    let dir = recipe.run.output.clone();
    let manifest = Pipeline::new(recipe, options).run(observer)?;
    let report = syne_report::write_report(&dir)?;
    Ok(DemoRun { dir, manifest, report })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn demo() -> Recipe {
        Recipe::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../../recipes/demo.toml")).unwrap()
    }

    #[test]
    fn scaling_keeps_stage_shares_in_whole_steps_and_moves_every_derived_path() {
        let original = demo();
        let mut same = demo();
        scale_recipe(&mut same, &DemoScale::default()).unwrap();
        assert_eq!(same, original, "no scale: the recipe as it is");
        let mut r = demo();
        scale_recipe(&mut r, &DemoScale { tokens: Some(10_000), synth_requests: Some(3), eval_limit: Some(5), ..Default::default() }).unwrap();
        // 10,000 → 10,240 (5 steps of 2,048): 4 + 1 steps (stage I holds 80% of the original).
        assert_eq!(r.stages.iter().map(|s| s.tokens).collect::<Vec<_>>(), vec![8192, 2048]);
        assert!(r.run.output.ends_with("runs/demo-t10000-r3-l5"), "{}", r.run.output.display());
        let train = r.train.as_ref().unwrap();
        assert!(matches!(train.schedule, LrSchedule::WarmupStableDecay { total_tokens: 10_240, .. }), "{:?}", train.schedule);
        assert_eq!(r.topics.as_ref().unwrap().interval_tokens % 2048, 0);
        assert!(r.topics.as_ref().unwrap().seed.as_ref().unwrap().starts_with(&r.run.output));
        let synth = r.synth.as_ref().unwrap();
        assert_eq!(synth.max_requests, 3);
        assert!(synth.output.ends_with("demo-t10000-r3-l5/synth"));
        assert!(r.sources["synthesis-en"].paths[0].ends_with("demo-t10000-r3-l5/synth/synthesis.jsonl"));
        assert!(r.prepare.as_ref().unwrap().output.ends_with("demo-t10000-r3-l5/data"));
        // Corpora and the model are where they were.
        assert_eq!(r.sources["zh-news"].paths, original.sources["zh-news"].paths);
        assert_eq!(train.model, original.train.as_ref().unwrap().model);
        assert_eq!(r.eval.as_ref().unwrap().limit, Some(5));
        // Too small a budget is refused with the reason.
        let e = scale_recipe(&mut demo(), &DemoScale { tokens: Some(100), ..Default::default() }).unwrap_err().to_string();
        assert!(e.contains("at least one step of 2048 tokens per stage"), "{e}");
    }
}

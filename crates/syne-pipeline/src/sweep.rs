//! `syne sweep SWEEP.toml`: surrogate ablations — every variant of a [`SweepSpec`] at every seed
//! is a full run ([`Pipeline`]) in its own folder, and the work they share is done once.
//!
//! The base recipe is scaled to the sweep's budget as `syne demo --tokens` scales the demo
//! ([`scale_recipe`]), with everything it derives (prepared shards, synthesis, the topic seed)
//! moved to `SWEEP/shared`. A variant that changes `[prepare]`, the sources or `[synth]` gets its
//! own prepared (or synthesis) folder there, keyed by the settings' hash; all others read the
//! same shards. Classifiers, per-source notes (topic labels, perplexity scores) and the
//! backbone's evaluation go through one [`StepCache`] (`SWEEP/cache`), keyed by content, so a
//! variant reuses exactly what it would have computed identically.
//!
//! Cells (variant × seed) run one after another (`parallel = 1`) or, after the first (which
//! fills the cache), `parallel` at a time with the threads split between them. `SWEEP/sweep.json`
//! is rewritten after every cell; a killed sweep started again skips every finished cell (its
//! run folder holds its manifest and the same recipe) and resumes the unfinished ones where their
//! runs stopped.

use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Instant;

use syne_data::io::{sha256_file, write_atomic};
use syne_recipe::records::eval::{Ledger, LedgerKind, LedgerRow};
use syne_recipe::records::mixture::{Account, MixtureLogLine};
use syne_recipe::records::run::RunManifest;
use syne_recipe::records::sweep::{
    CellRecord, Comparison, MetricSummary, NoiseBasis, SweepCost, SweepManifest, SweepSummary, Trajectory, VariantSummary, Verdict,
};
use syne_recipe::records::train::StepMetrics;
use syne_recipe::sweep::{apply_overrides, SweepSpec, Variant};
use syne_recipe::Recipe;

use crate::cache::{content_key, StepCache};
use crate::demo::{scale_recipe, write_topic_seed, DemoScale};
use crate::error::{run_err, Result};
use crate::observer::{Quiet, RunObserver};
use crate::run::{Pipeline, PipelineOptions};

/// How a sweep runs (none of it changes the results).
#[derive(Debug, Clone, Copy)]
pub struct SweepOptions {
    /// Cells run at once after the first (threads are split between them).
    pub parallel: usize,
    /// Each run's options (`threads`: all of them together).
    pub pipeline: PipelineOptions,
}

/// One cell, ready to run.
pub struct Cell {
    /// The variant.
    pub variant: Variant,
    /// `train.seed`.
    pub seed: u64,
    /// Its recipe (validated; run folder under `SWEEP/runs`).
    pub recipe: Recipe,
}

/// The sweep's base recipe: scaled to the budget, derived paths under `SWEEP/shared`.
fn base_recipe(spec: &SweepSpec) -> Result<Recipe> {
    let s = &spec.sweep;
    let mut base = Recipe::load(&s.base)?;
    let scale = DemoScale { tokens: s.tokens, synth_requests: s.synth_requests, eval_limit: s.eval_limit, docs: s.docs, out: Some(s.output.join("shared")) };
    scale_recipe(&mut base, &scale)?;
    Ok(base)
}

/// A short hash of what determines a shared folder.
fn folder_key<T: serde::Serialize>(kind: &str, what: &T) -> String {
    content_key(kind, what)[..12].to_string()
}

/// Every cell of `spec`, its recipe built and validated (nothing runs).
pub fn cells(spec: &SweepSpec) -> Result<Vec<Cell>> {
    let base = base_recipe(spec)?;
    let dir = spec.path.parent().unwrap_or(Path::new(".")).to_path_buf();
    let shared = spec.sweep.output.join("shared");
    let mut out = Vec::new();
    for variant in spec.variants()? {
        for &seed in spec.seeds_of(&variant.name) {
            let mut set = variant.set.clone();
            set.insert("train.seed".into(), toml::Value::Integer(seed as i64));
            let mut recipe = apply_overrides(&base, &set, &dir, &spec.path)?;
            recipe.run.output = spec.sweep.output.join("runs").join(&variant.name).join(format!("seed-{seed}"));
            // A variant that synthesises differently writes its own synthesis (and the sources
            // that read it follow).
            if let (Some(mine), Some(theirs)) = (&recipe.synth, &base.synth) {
                let strip = |s: &syne_recipe::synth::SynthSettings| {
                    let mut s = s.clone();
                    s.output = PathBuf::new();
                    s
                };
                if strip(mine) != strip(theirs) {
                    let old = mine.output.clone();
                    let new = shared.join(format!("synth-{}", folder_key("synth", &strip(mine))));
                    for p in recipe.sources.values_mut().flat_map(|s| s.paths.iter_mut()) {
                        if let Ok(rest) = p.strip_prefix(&old) {
                            *p = new.join(rest);
                        }
                    }
                    recipe.synth.as_mut().expect("has synth").output = new;
                }
            }
            // A variant that prepares differently (settings or sources) gets its own shards.
            if let (Some(mine), Some(theirs)) = (&recipe.prepare, &base.prepare) {
                let strip = |p: &syne_recipe::PrepareSettings| {
                    let mut p = p.clone();
                    p.output = PathBuf::new();
                    p
                };
                let preparations = |r: &Recipe| r.sources.iter().map(|(n, s)| (n.clone(), s.preparation())).collect::<Vec<_>>();
                if strip(mine) != strip(theirs) || preparations(&recipe) != preparations(&base) {
                    let key = folder_key("prepare", &(strip(mine), preparations(&recipe)));
                    recipe.prepare.as_mut().expect("has prepare").output = shared.join(format!("data-{key}"));
                }
            }
            recipe.validate()?;
            out.push(Cell { variant: variant.clone(), seed, recipe });
        }
    }
    Ok(out)
}

/// A finished cell's run manifest (its folder holds the manifest and the same recipe).
fn finished(recipe: &Recipe) -> Option<RunManifest> {
    let dir = &recipe.run.output;
    let copy = std::fs::read_to_string(dir.join("recipe.toml")).ok()?;
    if copy != toml::to_string(recipe).ok()? {
        return None;
    }
    syne_recipe::records::read_json(&dir.join("manifest.json")).ok()
}

fn write_manifest(path: &Path, m: &SweepManifest) -> Result<()> {
    write_atomic(path, serde_json::to_string_pretty(m).expect("sweep manifest serialises").as_bytes())?;
    Ok(())
}

/// Run every cell of `spec` not yet finished; returns the sweep's record (also `SWEEP/sweep.json`).
pub fn run_sweep(spec: &SweepSpec, options: SweepOptions, observer: &mut dyn RunObserver) -> Result<SweepManifest> {
    let out = &spec.sweep.output;
    let cells = cells(spec)?;
    // Every recipe is checked before anything runs (inputs the sweep produces excepted).
    for c in &cells {
        crate::check::check(&c.recipe)?;
    }
    std::fs::create_dir_all(out).map_err(|e| syne_data::DataError::io(out, "cannot create the sweep folder", e))?;
    let manifest_path = out.join("sweep.json");
    let earlier: Option<SweepManifest> = syne_recipe::records::read_json(&manifest_path).ok();
    let axes = spec.axes.iter().map(|a| (a.name.clone(), Vec::new())).collect::<Vec<(String, Vec<String>)>>();
    let mut manifest = SweepManifest {
        name: spec.sweep.name.clone(),
        spec: spec.path.clone(),
        spec_sha256: sha256_file(&spec.path)?,
        control: spec.sweep.control.clone(),
        axes,
        shared: out.join("shared"),
        cache: out.join("cache"),
        cells: Vec::new(),
    };
    for c in &cells {
        for (axis, label) in &c.variant.axes {
            if let Some((_, labels)) = manifest.axes.iter_mut().find(|(a, _)| a == axis) {
                if !labels.contains(label) {
                    labels.push(label.clone());
                }
            }
        }
        let before = earlier.as_ref().and_then(|m| m.cells.iter().find(|x| x.variant == c.variant.name && x.seed == c.seed));
        let done = finished(&c.recipe);
        manifest.cells.push(CellRecord {
            variant: c.variant.name.clone(),
            seed: c.seed,
            axes: c.variant.axes.clone(),
            run_dir: c.recipe.run.output.clone(),
            done: done.is_some(),
            seconds: before.map_or(0.0, |b| b.seconds),
            steps: done.map(|m| m.steps).unwrap_or_default(),
        });
    }
    write_manifest(&manifest_path, &manifest)?;
    let todo: Vec<usize> = (0..cells.len()).filter(|&i| !manifest.cells[i].done).collect();
    observer.say(&format!(
        "sweep {}: {} variants at {} seeds (the control at {}) = {} runs, {} finished, {} to run → {}",
        spec.sweep.name,
        spec.variants()?.len(),
        spec.sweep.seeds.len(),
        spec.seeds_of(&spec.sweep.control).len(),
        cells.len(),
        cells.len() - todo.len(),
        todo.len(),
        out.display()
    ));
    if let Some(c) = cells.first() {
        write_topic_seed(&c.recipe, observer)?;
    }
    let cache = StepCache::new(out.join("cache"));
    let run_cell = |i: usize, opts: PipelineOptions, observer: &mut dyn RunObserver| -> Result<(f64, RunManifest)> {
        let t = Instant::now();
        let m = Pipeline::new(cells[i].recipe.clone(), opts).with_cache(cache.clone()).run(observer)?;
        if !spec.sweep.keep_checkpoints {
            // The run is finished (its manifest written): its final weights are what the sweep
            // compares, the checkpoints only served a resume.
            let ckpt = m.train.out.join("checkpoints");
            if ckpt.exists() {
                std::fs::remove_dir_all(&ckpt).map_err(|e| syne_data::DataError::io(&ckpt, "cannot remove a finished run's checkpoints", e))?;
            }
        }
        Ok((t.elapsed().as_secs_f64(), m))
    };
    let record = |manifest: &mut SweepManifest, i: usize, seconds: f64, m: RunManifest| {
        let cell = &mut manifest.cells[i];
        cell.done = true;
        cell.seconds += seconds;
        cell.steps = m.steps;
    };
    let parallel = options.parallel.max(1);
    let mut queue: VecDeque<usize> = todo.into_iter().collect();
    // One after another: every cell, or with `parallel` the first alone (it fills the cache
    // the others read).
    let one_by_one = if parallel == 1 { queue.len() } else { 1 };
    for i in queue.drain(..one_by_one.min(queue.len())).collect::<Vec<_>>() {
        observer.say(&format!("sweep: {} seed {} ({})", cells[i].variant.name, cells[i].seed, cells[i].recipe.run.output.display()));
        let (seconds, m) = run_cell(i, options.pipeline, observer)?;
        record(&mut manifest, i, seconds, m);
        write_manifest(&manifest_path, &manifest)?;
        observer.say(&format!("sweep: {} seed {} finished in {seconds:.0} s", cells[i].variant.name, cells[i].seed));
    }
    if !queue.is_empty() {
        let threads = options.pipeline.threads;
        let total = if threads == 0 { std::thread::available_parallelism().map_or(1, |n| n.get()) } else { threads };
        let opts = PipelineOptions { threads: (total / parallel).max(1), progress: false, ..options.pipeline };
        let queue = Mutex::new(queue);
        let (tx, rx) = std::sync::mpsc::channel::<(usize, Result<(f64, RunManifest)>)>();
        std::thread::scope(|scope| -> Result<()> {
            for _ in 0..parallel {
                let tx = tx.clone();
                let queue = &queue;
                let run_cell = &run_cell;
                scope.spawn(move || loop {
                    let Some(i) = queue.lock().expect("queue").pop_front() else { break };
                    let r = run_cell(i, opts, &mut Quiet);
                    let failed = r.is_err();
                    if tx.send((i, r)).is_err() || failed {
                        break;
                    }
                });
            }
            drop(tx);
            let mut first_error = None;
            for (i, r) in rx {
                match r {
                    Ok((seconds, m)) => {
                        record(&mut manifest, i, seconds, m);
                        write_manifest(&manifest_path, &manifest)?;
                        observer.say(&format!("sweep: {} seed {} finished in {seconds:.0} s", cells[i].variant.name, cells[i].seed));
                    }
                    Err(e) => {
                        // Stop handing out cells; the running ones finish.
                        queue.lock().expect("queue").clear();
                        first_error.get_or_insert(e);
                    }
                }
            }
            first_error.map_or(Ok(()), Err)
        })?;
    }
    if manifest.cells.iter().any(|c| !c.done) {
        return Err(run_err(&manifest_path, "some cells did not finish"));
    }
    Ok(manifest)
}

/// The summary of the sweep in `dir` and its report (`DIR/report/sweep.{md,html,json}`).
pub fn report(dir: &Path) -> Result<(SweepSummary, syne_report::Report)> {
    let summary = summarise(dir)?;
    let report = syne_report::sweep::write_sweep_report(dir, &summary)?;
    Ok((summary, report))
}

/// Per-seed differences `(delta, paired stderr)` combined into one [`Comparison`]. With two or
/// more seeds the error is the spread of the per-seed differences; with one, the paired
/// evaluation error, plus `seed_sd² · seed_factor` when the control's spread across its seeds is
/// known.
fn combine(per_seed: &[(f64, Option<f64>)], seed_sd: Option<f64>, seed_factor: f64, higher_is_better: bool) -> Comparison {
    let k = per_seed.len().max(1) as f64;
    let delta = per_seed.iter().map(|d| d.0).sum::<f64>() / k;
    let (stderr, noise) = if per_seed.len() >= 2 {
        let var = per_seed.iter().map(|d| (d.0 - delta).powi(2)).sum::<f64>() / (k - 1.0);
        (Some((var / k).sqrt()), NoiseBasis::Seeds)
    } else {
        let items = per_seed.first().and_then(|d| d.1);
        match (items, seed_sd) {
            (Some(e), Some(s)) => (Some((e * e + s * s * seed_factor).sqrt()), NoiseBasis::ItemsAndControlSeeds),
            (Some(e), None) => (Some(e), NoiseBasis::ItemsOnly),
            (None, Some(s)) => (Some(s * seed_factor.sqrt()), NoiseBasis::ItemsAndControlSeeds),
            (None, None) => (None, NoiseBasis::ItemsOnly),
        }
    };
    Comparison { delta, stderr, noise, verdict: Verdict::of(delta, stderr, higher_is_better) }
}

/// A run's mean training throughput (first step excluded: it includes warm-up).
fn tokens_per_s(run: &Path) -> Result<f64> {
    let path = run.join("train/metrics.jsonl");
    let steps: Vec<StepMetrics> = if path.exists() { syne_recipe::records::read_jsonl(&path)? } else { Vec::new() };
    let rest: Vec<f64> = steps.iter().skip(1).map(|m| m.tokens_per_s).collect();
    Ok(if rest.is_empty() { steps.first().map_or(0.0, |m| m.tokens_per_s) } else { rest.iter().sum::<f64>() / rest.len() as f64 })
}

/// The topic weights of a run's mixture, per topic source.
fn trajectories(run: &Path) -> Result<Vec<Trajectory>> {
    let account_path = run.join("train/account.json");
    if !account_path.exists() {
        return Ok(Vec::new());
    }
    let account: Account = syne_recipe::records::read_json(&account_path)?;
    let mut out: Vec<Trajectory> =
        account.mixtures().map(|(s, t)| Trajectory { source: s, topics: t.topics.clone(), points: vec![(0, t.initial_ratios.clone())] }).collect();
    let log = run.join("train/mixture.jsonl");
    let lines: Vec<MixtureLogLine> = if log.exists() { syne_recipe::records::read_jsonl(&log)? } else { Vec::new() };
    for line in lines {
        for ev in &line.event {
            if let (Some(r), Some(t)) = (ev.ratios_after(), out.iter_mut().find(|t| t.source == ev.source())) {
                t.points.push((line.tokens, r.to_vec()));
            }
        }
    }
    Ok(out)
}

/// The summary of the sweep in `dir` (its `sweep.json` and every finished run's ledger).
pub fn summarise(dir: &Path) -> Result<SweepSummary> {
    let mpath = dir.join("sweep.json");
    let m: SweepManifest = syne_recipe::records::read_json(&mpath)?;
    let done: Vec<&CellRecord> = m.cells.iter().filter(|c| c.done).collect();
    let mut names: Vec<String> = Vec::new();
    for c in &m.cells {
        if !names.contains(&c.variant) {
            names.push(c.variant.clone());
        }
    }
    if let Some(i) = names.iter().position(|n| *n == m.control) {
        let c = names.remove(i);
        names.insert(0, c);
    }
    let ledger_of = |c: &CellRecord| -> Result<Ledger> { Ok(syne_recipe::records::read_json(&c.run_dir.join("eval/ledger.json"))?) };
    let control: Vec<&CellRecord> = done.iter().copied().filter(|c| c.variant == m.control).collect();
    let control_ledgers: Vec<Ledger> = control.iter().map(|c| ledger_of(c)).collect::<Result<_>>()?;
    // The control's spread across its seeds, per metric: of its change against the base model
    // (the seed also draws the held-out documents, whose own spread the paired change cancels).
    let mut control_values: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    for l in &control_ledgers {
        for r in &l.rows {
            control_values.entry(format!("{} {}", r.key, r.metric)).or_default().push(r.delta);
        }
    }
    let seed_sd: BTreeMap<String, f64> = control_values
        .iter()
        .filter(|(_, v)| v.len() >= 2)
        .map(|(k, v)| {
            let mean = v.iter().sum::<f64>() / v.len() as f64;
            (k.clone(), (v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (v.len() - 1) as f64).sqrt())
        })
        .collect();
    let kinds = |l: &Ledger, kind: LedgerKind| -> Vec<String> {
        let mut v: Vec<String> = l.rows.iter().filter(|r| r.kind == kind).map(|r| r.task.clone()).collect();
        v.dedup();
        v
    };
    let k_control = control.len().max(1) as f64;
    let mut variants = Vec::new();
    for name in &names {
        let cells: Vec<&CellRecord> = done.iter().copied().filter(|c| &c.variant == name).collect();
        if cells.is_empty() {
            continue;
        }
        let ledgers: Vec<Ledger> = cells.iter().map(|c| ledger_of(c)).collect::<Result<_>>()?;
        // Paired against the control's run at the same seed (else its first).
        let mut vs_control: Vec<Ledger> = Vec::new();
        if *name != m.control {
            for c in &cells {
                let Some(ctrl) = control.iter().find(|x| x.seed == c.seed).or(control.first()) else { continue };
                let l = &ledgers[0];
                vs_control.push(syne_eval::ledger::ledger(
                    &ctrl.run_dir.join("eval/after"),
                    &c.run_dir.join("eval/after"),
                    &kinds(l, LedgerKind::Heldout),
                    &kinds(l, LedgerKind::Retention),
                )?);
            }
        }
        let mut metrics = Vec::new();
        for row in &ledgers[0].rows {
            let key = format!("{} {}", row.key, row.metric);
            let find = |l: &Ledger| l.rows.iter().find(|r| r.key == row.key && r.metric == row.metric).cloned();
            let per_seed: Vec<LedgerRow> = ledgers.iter().filter_map(find).collect();
            let k = per_seed.len().max(1) as f64;
            let sd = seed_sd.get(&key).copied();
            let vs_base = combine(&per_seed.iter().map(|r| (r.delta, r.stderr)).collect::<Vec<_>>(), sd, 1.0, row.higher_is_better);
            let vs_ctrl = (!vs_control.is_empty()).then(|| {
                let d: Vec<(f64, Option<f64>)> = vs_control.iter().filter_map(find).map(|r| (r.delta, r.stderr)).collect();
                combine(&d, sd, 1.0 + 1.0 / k_control, row.higher_is_better)
            });
            metrics.push(MetricSummary {
                key,
                kind: row.kind,
                higher_is_better: row.higher_is_better,
                value: per_seed.iter().map(|r| r.after).sum::<f64>() / k,
                base: row.before,
                vs_base,
                vs_control: vs_ctrl,
            });
        }
        let mut tps = 0.0;
        for c in &cells {
            tps += tokens_per_s(&c.run_dir)?;
        }
        variants.push(VariantSummary {
            name: name.clone(),
            axes: cells[0].axes.clone(),
            seeds: cells.iter().map(|c| c.seed).collect(),
            metrics,
            tokens_per_s: tps / cells.len() as f64,
            seconds: cells.iter().map(|c| c.seconds).sum(),
            trajectories: trajectories(&cells[0].run_dir)?,
        });
    }
    // Cost: each run's own training and evaluation against the work done once.
    let step = |c: &CellRecord, name: &str| c.steps.iter().filter(|s| s.step == name && s.shared.is_none()).map(|s| s.seconds).sum::<f64>();
    let train_seconds: f64 = done.iter().map(|c| step(c, "train")).sum();
    let eval_after_seconds: f64 = done.iter().map(|c| step(c, "eval-after")).sum();
    let first_shared = done
        .first()
        .map_or(0.0, |c| c.steps.iter().filter(|s| ["synth", "prepare", "annotate", "eval-before"].contains(&s.step.as_str())).map(|s| s.seconds).sum::<f64>());
    let later_shared: f64 = done.iter().skip(1).flat_map(|c| c.steps.iter()).filter(|s| s.shared.as_ref().is_some_and(|x| !x.reused)).map(|s| s.seconds).sum();
    let total_seconds: f64 = done.iter().map(|c| c.seconds).sum();
    let shared_seconds = first_shared + later_shared;
    let own = train_seconds + eval_after_seconds;
    let cost = SweepCost {
        cells: done.len(),
        total_seconds,
        train_seconds,
        eval_after_seconds,
        shared_seconds,
        overhead_factor: if own > 0.0 { (total_seconds - shared_seconds) / own } else { 0.0 },
    };
    Ok(SweepSummary { name: m.name, control: m.control, axes: m.axes, variants, cost })
}

//! A sweep's record (`SWEEP/sweep.json`): every cell (variant × seed), where it ran, whether it
//! is finished and what it cost.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::run::StepRecord;

/// `sweep.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SweepManifest {
    /// The sweep's name.
    pub name: String,
    /// The sweep file.
    pub spec: PathBuf,
    /// sha256 of the sweep file when the record was written.
    pub spec_sha256: String,
    /// The variant the others are compared with.
    pub control: String,
    /// The axes, in the file's order, each with its labels in order.
    pub axes: Vec<(String, Vec<String>)>,
    /// The folder of the work the cells share (prepared data, synthesis, seed files).
    pub shared: PathBuf,
    /// The shared step cache (classifiers, notes, the backbone's evaluation).
    pub cache: PathBuf,
    /// Every cell, in run order.
    pub cells: Vec<CellRecord>,
}

/// One variant at one seed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CellRecord {
    /// The variant.
    pub variant: String,
    /// `train.seed`.
    pub seed: u64,
    /// `(axis, label)` of each axis that set the variant (empty: a listed variant).
    pub axes: Vec<(String, String)>,
    /// Its run folder.
    pub run_dir: PathBuf,
    /// Its run finished (`RUN/manifest.json` written).
    pub done: bool,
    /// Wall seconds of the invocations that ran it (summed over resumes).
    pub seconds: f64,
    /// The steps of the invocation that finished it (from its run manifest).
    pub steps: Vec<StepRecord>,
}

/// What `syne sweep report` shows (`SWEEP/report/sweep.json`): every variant against the base
/// model and against the control.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SweepSummary {
    /// The sweep's name.
    pub name: String,
    /// The control variant.
    pub control: String,
    /// The axes with their labels in order.
    pub axes: Vec<(String, Vec<String>)>,
    /// Every variant, the control first.
    pub variants: Vec<VariantSummary>,
    /// What the sweep cost.
    pub cost: SweepCost,
}

/// One variant over its seeds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VariantSummary {
    /// The variant.
    pub name: String,
    /// `(axis, label)` of each axis that set it.
    pub axes: Vec<(String, String)>,
    /// The seeds it finished at.
    pub seeds: Vec<u64>,
    /// Every metric of its forgetting ledgers.
    pub metrics: Vec<MetricSummary>,
    /// Mean training throughput over its runs (tokens per second, first step excluded).
    pub tokens_per_s: f64,
    /// Wall seconds of its runs.
    pub seconds: f64,
    /// The topic weights its mixer used, per topic source (first seed).
    pub trajectories: Vec<Trajectory>,
}

/// How a comparison's standard error was estimated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NoiseBasis {
    /// Across the seeds both variants ran at (training and evaluation noise together).
    Seeds,
    /// The paired evaluation error of one seed plus the control's spread across its seeds.
    ItemsAndControlSeeds,
    /// The paired evaluation error only (one seed each): training noise is not in it.
    ItemsOnly,
}

/// A difference with its standard error and what it means.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Comparison {
    /// The difference.
    pub delta: f64,
    /// Its standard error (`None`: none can be estimated).
    pub stderr: Option<f64>,
    /// How the error was estimated.
    pub noise: NoiseBasis,
    /// Beyond two standard errors, and in which direction.
    pub verdict: Verdict,
}

/// The verdict of a comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Better beyond two standard errors.
    Better,
    /// Worse beyond two standard errors.
    Worse,
    /// Within two standard errors.
    WithinNoise,
    /// No standard error.
    Unknown,
}

impl Verdict {
    /// The verdict of `delta ± stderr` for a metric where higher is better or not.
    pub fn of(delta: f64, stderr: Option<f64>, higher_is_better: bool) -> Verdict {
        match stderr {
            None => Verdict::Unknown,
            Some(se) if delta.abs() <= 2.0 * se => Verdict::WithinNoise,
            Some(_) if (delta > 0.0) == higher_is_better => Verdict::Better,
            Some(_) => Verdict::Worse,
        }
    }
}

/// One metric of one variant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricSummary {
    /// Task key and metric (`zh-news bits_per_char`, `arc_easy:0shot acc`).
    pub key: String,
    /// What it measures.
    pub kind: super::eval::LedgerKind,
    /// A rise is an improvement.
    pub higher_is_better: bool,
    /// The trained model's value, mean over seeds.
    pub value: f64,
    /// The base model's value.
    pub base: f64,
    /// Against the base model (the forgetting ledger), mean over seeds.
    pub vs_base: Comparison,
    /// Against the control (`None` for the control itself).
    pub vs_control: Option<Comparison>,
}

/// Topic weights over training.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Trajectory {
    /// The topic source.
    pub source: String,
    /// Its topics.
    pub topics: Vec<String>,
    /// `(tokens trained, ratios)` from the start to the last update.
    pub points: Vec<(u64, Vec<f64>)>,
}

/// What the sweep cost, in wall seconds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SweepCost {
    /// Runs.
    pub cells: usize,
    /// All runs together.
    pub total_seconds: f64,
    /// Training, all runs.
    pub train_seconds: f64,
    /// Evaluation of the trained models, all runs.
    pub eval_after_seconds: f64,
    /// The work done once and shared: the first run's synthesis, preparation, annotation and
    /// backbone evaluation, and every shared item computed in any run.
    pub shared_seconds: f64,
    /// `(total − shared) / (train + eval after)`: what each run costs beyond its own training and
    /// evaluation (the target is at most 1.15).
    pub overhead_factor: f64,
}

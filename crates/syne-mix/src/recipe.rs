//! The recipe: one TOML file for a whole continual pre-training run.
//!
//! ```toml
//! [run]
//! name = "llama-3-syne"
//! output = "runs/paper"          # relative to the recipe file
//!
//! [sources.web-cn]               # the [sources.NAME] tables of `syne prepare` (paths, language,
//! group = "zh"                   # filters ...) plus: the group the stage ratios address
//! category = "web"               # (default: the language), a reporting category,
//! topics = true                  # topic re-weighting applies (web pages in the paper),
//! curriculum = true              # the perplexity curriculum orders it,
//! max_epochs = 1.0               # how often it may be repeated (default 1: never),
//! heldout_docs = 0               # and documents held out as its validation set.
//!
//! [[stages]]
//! name = "bilingual-adaptation"
//! tokens = 92_500_000_000
//! groups = { zh = 0.2, en = 0.8 }
//!
//! [mixture.zh]                   # within-group source ratios (every stage; a stage may
//! web-cn = 0.70                  # override them with its own `mixture` table)
//! ```
//!
//! `[prepare]`, `[topics]`, `[curriculum]`, `[train]` and `[eval]` are read by the steps that
//! use them; `syne plan` needs `[sources]`, `[[stages]]` and `[mixture]`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{MixError, Result};
use crate::reweight::ReweightConfig;

/// A source as the mixture sees it (the prepare keys are kept for `syne prepare`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Source {
    #[serde(default)]
    pub language: Option<String>,
    /// The group stage ratios address (default: `language`).
    #[serde(default)]
    pub group: Option<String>,
    /// Reporting category (web, encyclopedia, books, qa, paper, math, code, synthetic, ...).
    #[serde(default)]
    pub category: Option<String>,
    #[serde(default)]
    pub topics: bool,
    #[serde(default)]
    pub curriculum: bool,
    /// How many times the source may be read in the whole run (1 = no repetition).
    #[serde(default = "one")]
    pub max_epochs: f64,
    /// Documents held out of training as this source's validation set (a seeded choice; topic
    /// sources hold out `topics.heldout_docs` per topic instead).
    #[serde(default)]
    pub heldout_docs: usize,
    /// `syne prepare`'s keys (paths, filters, ...), not used by the planner.
    #[serde(flatten)]
    pub prepare: BTreeMap<String, toml::Value>,
}

fn one() -> f64 {
    1.0
}

impl Source {
    pub fn group(&self) -> Option<&str> {
        self.group.as_deref().or(self.language.as_deref())
    }
}

/// One stage: a token budget split across groups.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Stage {
    pub name: String,
    pub tokens: u64,
    /// Group → share of the stage's tokens.
    pub groups: BTreeMap<String, f64>,
    /// Per-stage override of the within-group source ratios.
    #[serde(default)]
    pub mixture: BTreeMap<String, BTreeMap<String, f64>>,
}

/// Topic re-weighting settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TopicSettings {
    /// Tokens between adjustments.
    pub interval_tokens: u64,
    #[serde(default)]
    pub reweight: ReweightConfig,
    /// Per-topic weights `w_i` (default 1).
    #[serde(default)]
    pub weights: BTreeMap<String, f64>,
    /// A trained classifier (`syne topics train`) that labels the topic sources' documents...
    #[serde(default)]
    pub classifier: Option<PathBuf>,
    /// ... or a labelled JSONL seed file (`text`, `topic`) `syne run` trains one from.
    #[serde(default)]
    pub seed: Option<PathBuf>,
    /// Documents per topic held out of training to measure the per-topic validation loss.
    #[serde(default = "default_heldout_docs")]
    pub heldout_docs: usize,
}

fn default_heldout_docs() -> usize {
    16
}

/// Perplexity curriculum settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CurriculumSettings {
    /// `ascending` (easy to hard, the paper), `descending` or `random` (ablations).
    pub order: String,
    /// Quantile buckets.
    pub buckets: usize,
    #[serde(default)]
    pub seed: u64,
    /// Tokens of each document the backbone scores (its first ones; a long document's
    /// perplexity is estimated from its opening).
    #[serde(default = "default_score_tokens")]
    pub score_tokens: usize,
}

fn default_score_tokens() -> usize {
    256
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunSettings {
    pub name: String,
    pub output: PathBuf,
}

/// A whole recipe.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Recipe {
    pub run: RunSettings,
    pub sources: BTreeMap<String, Source>,
    pub stages: Vec<Stage>,
    /// Group → source → share of the group.
    pub mixture: BTreeMap<String, BTreeMap<String, f64>>,
    #[serde(default)]
    pub topics: Option<TopicSettings>,
    #[serde(default)]
    pub curriculum: Option<CurriculumSettings>,
    /// `syne prepare`'s settings.
    #[serde(default)]
    pub prepare: Option<toml::Table>,
    /// `syne train`'s settings.
    #[serde(default)]
    pub train: Option<toml::Table>,
    /// `syne eval`'s settings.
    #[serde(default)]
    pub eval: Option<toml::Table>,
    /// `syne synth`'s settings: `syne run` synthesises before it prepares (the synthetic source
    /// reads its output).
    #[serde(default)]
    pub synth: Option<toml::Table>,
    /// The file it was read from (set by [`Recipe::load`]).
    #[serde(skip)]
    pub path: PathBuf,
}

/// Ratios must sum to 1 to this precision (decimal ratios are exact in the planner).
const SUM_TOLERANCE: f64 = 1e-9;

impl Recipe {
    /// Read and validate a recipe; relative paths resolve against its folder.
    pub fn load(path: &Path) -> Result<Recipe> {
        let text = std::fs::read_to_string(path).map_err(|e| syne_data::DataError::io(path, "cannot read recipe", e))?;
        Recipe::parse(&text, path)
    }

    /// Parse and validate recipe text (`path` names it in errors and anchors relative paths).
    pub fn parse(text: &str, path: &Path) -> Result<Recipe> {
        let mut r: Recipe = toml::from_str(text).map_err(|e| MixError::Recipe { path: path.to_path_buf(), detail: format!("invalid recipe: {e}") })?;
        r.path = path.to_path_buf();
        let base = path.parent().unwrap_or(Path::new("."));
        if r.run.output.is_relative() {
            r.run.output = syne_data::prepare::clean_path(&base.join(&r.run.output));
        }
        if let Some(t) = &mut r.topics {
            t.classifier = t.classifier.as_ref().map(|p| base.join(p));
            t.seed = t.seed.as_ref().map(|p| base.join(p));
        }
        r.validate()?;
        Ok(r)
    }

    fn key_err(&self, key: impl Into<String>, detail: impl Into<String>) -> MixError {
        MixError::Key { path: self.path.clone(), key: key.into(), detail: detail.into() }
    }

    fn check_ratios(&self, key: &str, ratios: &BTreeMap<String, f64>) -> Result<()> {
        if ratios.is_empty() {
            return Err(self.key_err(key, "no ratios"));
        }
        for (name, &v) in ratios {
            if !(v.is_finite() && v >= 0.0) {
                return Err(self.key_err(format!("{key}.{name}"), format!("ratio {v} must be a non-negative number")));
            }
        }
        let sum: f64 = ratios.values().sum();
        if (sum - 1.0).abs() > SUM_TOLERANCE {
            return Err(self.key_err(key, format!("ratios sum to {sum}, not 1")));
        }
        Ok(())
    }

    /// The within-group source ratios stage `s` uses.
    pub fn stage_mixture(&self, s: usize) -> BTreeMap<String, BTreeMap<String, f64>> {
        let mut m = self.mixture.clone();
        for (g, ratios) in &self.stages[s].mixture {
            m.insert(g.clone(), ratios.clone());
        }
        m
    }

    fn validate(&self) -> Result<()> {
        if self.stages.is_empty() {
            return Err(self.key_err("stages", "a recipe needs at least one [[stages]]"));
        }
        for (name, src) in &self.sources {
            if src.group().is_none() {
                return Err(self.key_err(format!("sources.{name}"), "needs `group` or `language`"));
            }
            if !(src.max_epochs.is_finite() && src.max_epochs > 0.0) {
                return Err(self.key_err(format!("sources.{name}.max_epochs"), "must be a positive number"));
            }
            if src.topics && src.heldout_docs > 0 {
                return Err(
                    self.key_err(format!("sources.{name}.heldout_docs"), "a topic source holds out `topics.heldout_docs` documents per topic; remove it")
                );
            }
        }
        for (g, ratios) in &self.mixture {
            self.check_ratios(&format!("mixture.{g}"), ratios)?;
        }
        for (i, st) in self.stages.iter().enumerate() {
            let key = format!("stages[{i}]");
            if st.tokens == 0 {
                return Err(self.key_err(format!("{key}.tokens"), "must be positive"));
            }
            self.check_ratios(&format!("{key}.groups"), &st.groups)?;
            for (g, ratios) in &st.mixture {
                self.check_ratios(&format!("{key}.mixture.{g}"), ratios)?;
            }
            let mixture = self.stage_mixture(i);
            for (g, &share) in &st.groups {
                let Some(sources) = mixture.get(g) else {
                    if share > 0.0 {
                        return Err(self.key_err(format!("{key}.groups.{g}"), format!("no [mixture.{g}] says which sources make up group `{g}`")));
                    }
                    continue;
                };
                for name in sources.keys() {
                    let Some(src) = self.sources.get(name) else {
                        return Err(self.key_err(format!("mixture.{g}.{name}"), format!("no [sources.{name}]")));
                    };
                    if src.group() != Some(g.as_str()) {
                        return Err(
                            self.key_err(format!("mixture.{g}.{name}"), format!("source `{name}` is in group `{}`, not `{g}`", src.group().unwrap_or("?")))
                        );
                    }
                }
            }
        }
        if let Some(c) = &self.curriculum {
            if !["ascending", "descending", "random"].contains(&c.order.as_str()) {
                return Err(self.key_err("curriculum.order", format!("`{}`: expected ascending, descending or random", c.order)));
            }
            if c.buckets == 0 || c.buckets > usize::from(u16::MAX) {
                return Err(self.key_err("curriculum.buckets", "must be between 1 and 65535"));
            }
            if c.score_tokens < 2 {
                return Err(self.key_err("curriculum.score_tokens", "must be at least 2"));
            }
        }
        if let Some(t) = &self.topics {
            if t.interval_tokens == 0 {
                return Err(self.key_err("topics.interval_tokens", "must be positive"));
            }
            if t.classifier.is_some() && t.seed.is_some() {
                return Err(self.key_err("topics", "give one of `classifier` (a trained model) or `seed` (labelled JSONL), not both"));
            }
        }
        Ok(())
    }
}

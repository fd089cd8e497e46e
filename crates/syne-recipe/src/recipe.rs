//! The recipe: one TOML file for a whole continual pre-training run.
//!
//! ```toml
//! [run]
//! name = "llama-3-syne"
//! output = "runs/paper"          # relative to the recipe file
//!
//! [sources.web-cn]               # paths, language and filters (what `syne prepare` reads)
//! paths = ["data/web-cn"]
//! language = "zh"
//! group = "zh"                   # plus: the group the stage ratios address (default: the
//! category = "web"               # language), a reporting category,
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
//! web-cn = 1.0                   # override them with its own `mixture` table)
//! ```
//!
//! `[prepare]`, `[topics]`, `[source_mixing]` ([`SourceMixing`]), `[curriculum]`, `[train]`,
//! `[eval]` and `[synth]` are typed sections ([`crate::prepare`], [`crate::train`], [`crate::eval`], [`crate::synth`]); `syne
//! plan` needs only `[sources]`, `[[stages]]` and `[mixture]`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::{RecipeError, Result};
use crate::eval::EvalSettings;
use crate::prepare::{clean_path, FilterOverrides, PrepareSettings, SourceLanguage};
use crate::synth::SynthSettings;
use crate::train::TrainSettings;

/// One `[sources.NAME]` table: where a source's documents are and how they are read and
/// filtered (`syne prepare`), and what the mixture does with them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceSpec {
    /// Files (.jsonl, .jsonl.gz, .jsonl.zst, .parquet) or directories holding them.
    #[serde(default)]
    pub paths: Vec<PathBuf>,
    /// Which documents are kept by detected language (`syne prepare` needs it).
    #[serde(default)]
    pub language: Option<SourceLanguage>,
    /// The records' text field.
    #[serde(default = "default_text_field")]
    pub text_field: String,
    /// The records' id field.
    #[serde(default = "default_id_field")]
    pub id_field: Option<String>,
    /// Record field carrying a topic label, copied to the shard metadata.
    #[serde(default)]
    pub topic_field: Option<String>,
    /// Record field carrying a perplexity score, copied to the shard metadata.
    #[serde(default)]
    pub perplexity_field: Option<String>,
    /// Overrides of `[prepare.filters]` for this source.
    #[serde(default)]
    pub filters: FilterOverrides,
    /// Override of `[prepare].min_lang_confidence`.
    #[serde(default)]
    pub min_lang_confidence: Option<f64>,
    /// The group stage ratios address (default: `language`).
    #[serde(default)]
    pub group: Option<String>,
    /// Reporting category (web, encyclopedia, books, qa, paper, math, code, synthetic, ...).
    #[serde(default)]
    pub category: Option<String>,
    /// Topic re-weighting applies to this source.
    #[serde(default)]
    pub topics: bool,
    /// The taxonomy that labels this topic source (`[topics.taxonomies.NAME]`; default: the
    /// `[topics]` classifier or seed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub taxonomy: Option<String>,
    /// The perplexity curriculum orders this source (any source may be in its scope; the
    /// paper's notes: the Chinese data).
    #[serde(default)]
    pub curriculum: bool,
    /// Tokens of each document the backbone scores for the curriculum (default:
    /// `curriculum.score_tokens`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub score_tokens: Option<usize>,
    /// How many times the source may be read in the whole run (1 = no repetition).
    #[serde(default = "one")]
    pub max_epochs: f64,
    /// Documents held out of training as this source's validation set (a seeded choice; topic
    /// sources hold out `topics.heldout_docs` per topic instead).
    #[serde(default)]
    pub heldout_docs: usize,
}

fn default_text_field() -> String {
    "text".into()
}

fn default_id_field() -> Option<String> {
    Some("id".into())
}

fn one() -> f64 {
    1.0
}

impl SourceSpec {
    /// What `syne prepare` reads of the source: the spec with the mixture's own keys (topics,
    /// taxonomy, curriculum, score tokens, epochs, held-out documents, group, category) at their
    /// defaults. Two specs with equal preparations give the same shards.
    pub fn preparation(&self) -> SourceSpec {
        SourceSpec {
            group: None,
            category: None,
            topics: false,
            taxonomy: None,
            curriculum: false,
            score_tokens: None,
            max_epochs: 1.0,
            heldout_docs: 0,
            ..self.clone()
        }
    }

    /// The group stage ratios address: `group`, else the language's name.
    pub fn group(&self) -> Option<&str> {
        self.group.as_deref().or(self.language.map(SourceLanguage::as_str))
    }

    /// The taxonomy that labels this source's topics.
    pub fn taxonomy(&self) -> &str {
        self.taxonomy.as_deref().unwrap_or(DEFAULT_TAXONOMY)
    }

    /// The checks a source named `name` must pass for anything (its name) and, when `prepare`,
    /// for `syne prepare` (paths and language): the one place both the recipe and syne-data's
    /// prepare settings call. `Err((key, detail))` names the key.
    pub fn check(&self, name: &str, prepare: bool) -> std::result::Result<(), (String, String)> {
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)) {
            return Err((format!("sources.{name}"), "source names may hold only ASCII letters, digits, '-', '_' and '.'".into()));
        }
        if prepare && self.paths.is_empty() {
            return Err((format!("sources.{name}.paths"), "must list at least one file or directory".into()));
        }
        if prepare && self.language.is_none() {
            return Err((format!("sources.{name}.language"), "`syne prepare` needs it: zh, en, auto or any".into()));
        }
        Ok(())
    }
}

/// One stage: a token budget split across groups.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Stage {
    /// The stage's name (plans, logs, Megatron blends).
    pub name: String,
    /// Training tokens of the stage.
    pub tokens: u64,
    /// Group → share of the stage's tokens.
    pub groups: BTreeMap<String, f64>,
    /// Per-stage override of the within-group source ratios.
    #[serde(default)]
    pub mixture: BTreeMap<String, BTreeMap<String, f64>>,
}

/// How loss changes are normalised into `d_i` by the paper's re-weighting rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Normalisation {
    /// `d_i = Δp_i / p_i(t-1)`: relative change (scale-free across topics).
    #[default]
    Relative,
    /// `d_i = Δp_i / max_j |Δp_j|`: the largest change is ±1.
    MaxAbs,
    /// `d_i = (Δp_i - mean Δp) / std Δp`: standardised across topics (0 when all moved alike).
    ZScore,
    /// `d_i = Δp_i`.
    None,
}

/// Settings of the paper's re-weighting rule (recipe `[topics.reweight]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReweightConfig {
    /// How loss changes are normalised.
    pub normalisation: Normalisation,
    /// Step size.
    pub alpha: f64,
    /// Lower bound of each factor `f_i`.
    pub min_factor: f64,
    /// Upper bound of each factor `f_i`.
    pub max_factor: f64,
}

impl Default for ReweightConfig {
    fn default() -> Self {
        ReweightConfig { normalisation: Normalisation::Relative, alpha: 1.0, min_factor: 0.5, max_factor: 2.0 }
    }
}

/// Topic re-weighting settings (`[topics]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TopicSettings {
    /// Tokens between adjustments.
    pub interval_tokens: u64,
    /// How the topic ratios are set and moved (default: the paper's rule).
    #[serde(default, skip_serializing_if = "TopicMixer::is_syne")]
    pub mixer: TopicMixer,
    /// The rule's settings.
    #[serde(default)]
    pub reweight: ReweightConfig,
    /// ODM's settings (`mixer = "odm"`).
    #[serde(default, skip_serializing_if = "OdmConfig::is_default")]
    pub odm: OdmConfig,
    /// ADO's settings (`mixer = "ado"`).
    #[serde(default, skip_serializing_if = "AdoConfig::is_default")]
    pub ado: AdoConfig,
    /// Per-topic weights `w_i` (default 1).
    #[serde(default)]
    pub weights: BTreeMap<String, f64>,
    /// A trained classifier (`syne topics train`) that labels the topic sources' documents...
    #[serde(default)]
    pub classifier: Option<PathBuf>,
    /// ... or a labelled JSONL seed file (`text`, `topic`) `syne run` trains one from. These two
    /// are the default taxonomy, for topic sources that name none.
    #[serde(default)]
    pub seed: Option<PathBuf>,
    /// Named taxonomies (`[topics.taxonomies.zh]`), each with its own classifier or seed: a
    /// topic source picks one with `taxonomy = "zh"` (the paper: 11 Chinese topics for the
    /// Chinese web pages, 11 English topics for the English ones). Each source is re-weighted
    /// over its own topics, from its own per-topic held-out set.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub taxonomies: BTreeMap<String, Taxonomy>,
    /// Documents per topic held out of training to measure the per-topic validation loss.
    #[serde(default = "default_heldout_docs")]
    pub heldout_docs: usize,
}

/// How a topic source's topic ratios are set and moved (`[topics] mixer`). The baselines a
/// sweep compares the paper's rule against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum TopicMixer {
    /// The paper's rule: start at the topics' token shares, re-weight from the per-topic
    /// validation losses every `interval_tokens` (`reweight`, `weights`).
    #[default]
    Syne,
    /// The topics' token shares, never moved.
    Static,
    /// Uniform over the topics with data (stratified sampling, Aioli's strong baseline,
    /// arXiv 2411.05735), never moved; an exhausted topic's share goes to the others.
    Stratified,
    /// Online Data Mixing (Albalak et al., arXiv 2312.02406): an EXP3 bandit whose reward is
    /// each topic's loss, so topics the model is worst at are drawn more (`[topics.odm]`).
    Odm,
    /// Adaptive Data Optimization (Jiang et al., arXiv 2410.11820): a power law of loss against
    /// tokens fitted per topic; topics whose loss is still falling fastest are drawn more
    /// (`[topics.ado]`).
    Ado,
}

/// ODM's settings (`[topics.odm]`), with the reference implementation's defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OdmConfig {
    /// Rewards (losses) are multiplied by this before they enter the cumulative estimate, so
    /// that it does not explode (the reference divides by 10).
    pub reward_scale: f64,
}

impl Default for OdmConfig {
    fn default() -> Self {
        OdmConfig { reward_scale: 0.1 }
    }
}

impl OdmConfig {
    /// The defaults (for serialisation: a recipe that sets none writes none).
    pub fn is_default(&self) -> bool {
        *self == OdmConfig::default()
    }
}

/// ADO's settings (`[topics.ado]`), with the reference implementation's defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdoConfig {
    /// Validation points (past the first, at 0 tokens) before the first fit: the power law has
    /// three parameters.
    pub min_points: usize,
    /// Decay of the credit-assignment history `h` of the sampled shares (`h ← γh + (1-γ)c`).
    pub history_decay: f64,
    /// Weight of the running average in the policy (`π = s·π̄ + (1-s)·ρ`).
    pub smoothing: f64,
    /// The smallest probability a topic with data keeps.
    pub min_probability: f64,
    /// Lower bound of a fitted exponent when the slope is computed.
    pub min_exponent: f64,
}

impl Default for AdoConfig {
    fn default() -> Self {
        AdoConfig { min_points: 3, history_decay: 0.9, smoothing: 0.9, min_probability: 0.01, min_exponent: 0.05 }
    }
}

impl AdoConfig {
    /// The defaults (for serialisation: a recipe that sets none writes none).
    pub fn is_default(&self) -> bool {
        *self == AdoConfig::default()
    }
}

impl TopicMixer {
    /// The default (for serialisation: a recipe that does not name one writes none).
    pub fn is_syne(&self) -> bool {
        *self == TopicMixer::Syne
    }

    /// The name a recipe gives it.
    pub fn as_str(self) -> &'static str {
        match self {
            TopicMixer::Syne => "syne",
            TopicMixer::Static => "static",
            TopicMixer::Stratified => "stratified",
            TopicMixer::Odm => "odm",
            TopicMixer::Ado => "ado",
        }
    }
}

/// Online mixing of the sources within language groups (`[source_mixing]`): in the named
/// groups, the source of each of the group's sequences is drawn by a mixer ([`TopicMixer`]'s
/// rules, applied to sources instead of topics) from each source's held-out loss, while the
/// group's share of every stage stays exactly what `[[stages]] groups` says. The ratios start at
/// the group's `[mixture.GROUP]` shares (uniform for `stratified`).
///
/// ```toml
/// [source_mixing]
/// groups = ["zh"]             # the groups whose sources move
/// mixer = "odm"               # syne | static | stratified | odm | ado
/// interval_tokens = 16_384    # tokens between updates (validation follows it)
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceMixing {
    /// The groups whose sources the mixer moves (each needs the same `[mixture.GROUP]` in every
    /// stage, and, for a mixer that moves, a held-out set per source).
    pub groups: Vec<String>,
    /// The rule.
    #[serde(default)]
    pub mixer: TopicMixer,
    /// Tokens between updates.
    pub interval_tokens: u64,
    /// The paper's rule's settings (`mixer = "syne"`).
    #[serde(default)]
    pub reweight: ReweightConfig,
    /// ODM's settings (`mixer = "odm"`).
    #[serde(default, skip_serializing_if = "OdmConfig::is_default")]
    pub odm: OdmConfig,
    /// ADO's settings (`mixer = "ado"`).
    #[serde(default, skip_serializing_if = "AdoConfig::is_default")]
    pub ado: AdoConfig,
    /// Per-source weights `w_i` of the paper's rule (default 1).
    #[serde(default)]
    pub weights: BTreeMap<String, f64>,
}

/// One `[topics.taxonomies.NAME]`: what labels the documents of the sources that name it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Taxonomy {
    /// A trained classifier (`syne topics train`) ...
    #[serde(default)]
    pub classifier: Option<PathBuf>,
    /// ... or a labelled JSONL seed file (`text`, `topic`) `syne run` trains one from.
    #[serde(default)]
    pub seed: Option<PathBuf>,
}

/// The name of the taxonomy given by `[topics] classifier` / `seed`.
pub const DEFAULT_TAXONOMY: &str = "default";

impl TopicSettings {
    /// The classifier and seed of taxonomy `name` ([`DEFAULT_TAXONOMY`]: the top-level ones).
    pub fn taxonomy(&self, name: &str) -> Option<Taxonomy> {
        if name == DEFAULT_TAXONOMY {
            return (self.classifier.is_some() || self.seed.is_some()).then(|| Taxonomy { classifier: self.classifier.clone(), seed: self.seed.clone() });
        }
        self.taxonomies.get(name).cloned()
    }
}

fn default_heldout_docs() -> usize {
    16
}

/// How a curriculum source's documents are ordered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CurriculumOrder {
    /// Perplexity buckets easy to hard, documents shuffled within a bucket (the paper).
    Ascending,
    /// Perplexity buckets hard to easy (an ablation).
    Descending,
    /// The perplexity buckets in a seeded random order, each read whole (an ablation; was
    /// `random`).
    #[serde(alias = "random")]
    RandomBuckets,
    /// Every document in a seeded random order, perplexity unused: the paper's random baseline
    /// (what a source without the curriculum gets). No scoring pass.
    Shuffled,
    /// The documents in the order the prepared shards hold them (the corpus order): no
    /// curriculum, no shuffle, no scoring pass.
    None,
}

impl CurriculumOrder {
    /// The order reads the backbone's perplexity scores (the annotate step computes them).
    pub fn needs_scores(self) -> bool {
        matches!(self, CurriculumOrder::Ascending | CurriculumOrder::Descending | CurriculumOrder::RandomBuckets)
    }
}

impl FromStr for CurriculumOrder {
    type Err = String;
    fn from_str(s: &str) -> Result<CurriculumOrder, String> {
        match s {
            "ascending" => Ok(CurriculumOrder::Ascending),
            "descending" => Ok(CurriculumOrder::Descending),
            "random" | "random_buckets" => Ok(CurriculumOrder::RandomBuckets),
            "shuffled" => Ok(CurriculumOrder::Shuffled),
            "none" => Ok(CurriculumOrder::None),
            other => Err(format!("`{other}`: expected ascending, descending, random_buckets, shuffled or none")),
        }
    }
}

/// Perplexity curriculum settings (`[curriculum]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CurriculumSettings {
    /// The order of the buckets.
    pub order: CurriculumOrder,
    /// Quantile buckets.
    pub buckets: usize,
    /// Seed of the shuffles (within buckets; of the bucket order for `random`).
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

/// `[run]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunSettings {
    /// The run's name.
    pub name: String,
    /// The run folder (relative to the recipe file).
    pub output: PathBuf,
}

/// A whole recipe, every section typed. [`Recipe::load`] / [`Recipe::from_str_at`] parse,
/// anchor every relative path at the recipe's folder ([`Recipe::resolve`]) and validate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Recipe {
    /// `[run]`.
    pub run: RunSettings,
    /// `[sources.NAME]`.
    pub sources: BTreeMap<String, SourceSpec>,
    /// `[[stages]]`.
    pub stages: Vec<Stage>,
    /// Group → source → share of the group.
    pub mixture: BTreeMap<String, BTreeMap<String, f64>>,
    /// `[topics]`: topic re-weighting.
    #[serde(default)]
    pub topics: Option<TopicSettings>,
    /// `[curriculum]`: the perplexity curriculum.
    #[serde(default)]
    pub curriculum: Option<CurriculumSettings>,
    /// `[prepare]`: `syne prepare`'s settings.
    #[serde(default)]
    pub prepare: Option<PrepareSettings>,
    /// `[train]`: the trainer's settings.
    #[serde(default)]
    pub train: Option<TrainSettings>,
    /// `[eval]`: the evaluation before and after training.
    #[serde(default)]
    pub eval: Option<EvalSettings>,
    /// `[synth]`: `syne run` synthesises before it prepares (the synthetic source reads its
    /// output).
    #[serde(default)]
    pub synth: Option<SynthSettings>,
    /// `[source_mixing]`: online mixing of the sources within groups.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_mixing: Option<SourceMixing>,
    /// The file it was read from (set by [`Recipe::load`] / [`Recipe::from_str_at`]).
    #[serde(skip)]
    pub path: PathBuf,
}

/// Ratios must sum to 1 to this precision (decimal ratios are exact in the planner).
const SUM_TOLERANCE: f64 = 1e-9;

impl Recipe {
    /// Read, resolve and validate a recipe; relative paths resolve against its folder.
    pub fn load(path: &Path) -> Result<Recipe> {
        let text = std::fs::read_to_string(path).map_err(|source| RecipeError::Read { path: path.to_path_buf(), source })?;
        Recipe::from_str_at(&text, path)
    }

    /// Parse, resolve and validate recipe text, read as if it were the file `path` (which
    /// names it in errors and anchors its relative paths).
    pub fn from_str_at(text: &str, path: &Path) -> Result<Recipe> {
        let path = clean_path(path);
        let mut r: Recipe = toml::from_str(text).map_err(|e| RecipeError::toml(&path, text, &e))?;
        r.path = path.clone();
        r.resolve(path.parent().unwrap_or(Path::new(".")));
        r.validate()?;
        Ok(r)
    }

    /// Anchor every relative path of every section at `base` (once; later steps see absolute
    /// paths only).
    pub fn resolve(&mut self, base: &Path) {
        let at = |p: &Path| clean_path(&base.join(p));
        self.run.output = at(&self.run.output);
        for src in self.sources.values_mut() {
            src.paths = src.paths.iter().map(|p| at(p)).collect();
        }
        if let Some(t) = &mut self.topics {
            t.classifier = t.classifier.as_deref().map(at);
            t.seed = t.seed.as_deref().map(at);
            for tax in t.taxonomies.values_mut() {
                tax.classifier = tax.classifier.as_deref().map(at);
                tax.seed = tax.seed.as_deref().map(at);
            }
        }
        if let Some(p) = &mut self.prepare {
            p.resolve(base);
        }
        if let Some(t) = &mut self.train {
            t.resolve(base);
        }
        if let Some(e) = &mut self.eval {
            e.resolve(base);
        }
        if let Some(s) = &mut self.synth {
            s.resolve(base);
        }
    }

    /// Every path the recipe holds (run folder, corpora, models, seeds, outputs of every
    /// section), for moving a run's derived files elsewhere or checking what exists.
    pub fn paths_mut(&mut self) -> Vec<&mut PathBuf> {
        let mut v: Vec<&mut PathBuf> = vec![&mut self.run.output];
        for src in self.sources.values_mut() {
            v.extend(src.paths.iter_mut());
        }
        if let Some(t) = &mut self.topics {
            v.extend(t.classifier.iter_mut().chain(t.seed.iter_mut()));
            for tax in t.taxonomies.values_mut() {
                v.extend(tax.classifier.iter_mut().chain(tax.seed.iter_mut()));
            }
        }
        if let Some(p) = &mut self.prepare {
            v.extend([&mut p.output, &mut p.tokenizer]);
        }
        if let Some(t) = &mut self.train {
            v.push(&mut t.model);
            v.extend(t.tokenizer.iter_mut());
            v.extend(t.validation.iter_mut().map(|s| &mut s.path));
        }
        if let Some(e) = &mut self.eval {
            v.extend(e.tasks_file.iter_mut().chain(e.data_dir.iter_mut()).chain(e.bench_dir.iter_mut()));
            v.extend(e.ppl.iter_mut().chain(e.retention.iter_mut()).map(|p| &mut p.file));
        }
        if let Some(s) = &mut self.synth {
            v.push(&mut s.output);
            v.extend(s.inputs.iter_mut().chain(s.code_inputs.iter_mut()));
            v.extend(s.science_prompt.iter_mut().chain(s.code_prompt.iter_mut()));
            v.extend(s.decontamination.data_dir.iter_mut().chain(s.backend.local_model.iter_mut()));
        }
        v
    }

    /// Every file or folder the run reads (not what it writes), with the key that names it:
    /// corpora, tokenizers, models, topic classifier and seed, validation sets, evaluation data,
    /// synthesis inputs and prompts. What `syne plan --check` looks for.
    pub fn inputs(&self) -> Vec<(String, &Path)> {
        let mut v: Vec<(String, &Path)> = Vec::new();
        for (name, src) in &self.sources {
            v.extend(src.paths.iter().enumerate().map(|(i, p)| (format!("sources.{name}.paths[{i}]"), p.as_path())));
        }
        if let Some(t) = &self.topics {
            v.extend(t.classifier.iter().map(|p| ("topics.classifier".to_string(), p.as_path())));
            v.extend(t.seed.iter().map(|p| ("topics.seed".to_string(), p.as_path())));
            for (name, tax) in &t.taxonomies {
                v.extend(tax.classifier.iter().map(|p| (format!("topics.taxonomies.{name}.classifier"), p.as_path())));
                v.extend(tax.seed.iter().map(|p| (format!("topics.taxonomies.{name}.seed"), p.as_path())));
            }
        }
        if let Some(p) = &self.prepare {
            v.push(("prepare.tokenizer".into(), &p.tokenizer));
        }
        if let Some(t) = &self.train {
            v.push(("train.model".into(), &t.model));
            v.extend(t.tokenizer.iter().map(|p| ("train.tokenizer".to_string(), p.as_path())));
            v.extend(t.validation.iter().enumerate().map(|(i, s)| (format!("train.validation[{i}].path"), s.path.as_path())));
        }
        if let Some(e) = &self.eval {
            v.extend(e.tasks_file.iter().map(|p| ("eval.tasks_file".to_string(), p.as_path())));
            v.extend(e.ppl.iter().map(|p| (format!("eval.ppl.{}", p.name), p.file.as_path())));
            v.extend(e.retention.iter().map(|p| (format!("eval.retention.{}", p.name), p.file.as_path())));
        }
        if let Some(s) = &self.synth {
            v.extend(s.inputs.iter().enumerate().map(|(i, p)| (format!("synth.inputs[{i}]"), p.as_path())));
            v.extend(s.code_inputs.iter().enumerate().map(|(i, p)| (format!("synth.code_inputs[{i}]"), p.as_path())));
            v.extend(s.science_prompt.iter().map(|p| ("synth.science_prompt".to_string(), p.as_path())));
            v.extend(s.code_prompt.iter().map(|p| ("synth.code_prompt".to_string(), p.as_path())));
            v.extend(s.backend.local_model.iter().map(|p| ("synth.backend.local_model".to_string(), p.as_path())));
        }
        v
    }

    /// The folders a run writes that other sections read from (`[synth] output`, which a
    /// synthetic source lists): an input under one of them is produced by the run itself.
    pub fn outputs(&self) -> Vec<&Path> {
        self.synth.iter().map(|s| s.output.as_path()).collect()
    }

    /// The folder relative paths were anchored at.
    pub fn base_dir(&self) -> &Path {
        self.path.parent().unwrap_or(Path::new("."))
    }

    fn key_err(&self, key: impl Into<String>, detail: impl Into<String>) -> RecipeError {
        RecipeError::key(&self.path, key, detail)
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

    /// ODM's and ADO's settings under `prefix` (`topics`, `source_mixing`).
    fn check_mixer_settings(&self, prefix: &str, odm: &OdmConfig, ado: &AdoConfig) -> Result<()> {
        let bad = [
            (!(odm.reward_scale > 0.0 && odm.reward_scale.is_finite()), "odm.reward_scale", "must be positive"),
            (ado.min_points < 2, "ado.min_points", "must be at least 2 (the law has three parameters; 3 is the default)"),
            (!(0.0..1.0).contains(&ado.history_decay), "ado.history_decay", "must be in [0, 1)"),
            (!(0.0..1.0).contains(&ado.smoothing), "ado.smoothing", "must be in [0, 1)"),
            (!(0.0..0.5).contains(&ado.min_probability), "ado.min_probability", "must be in [0, 0.5)"),
            (!(ado.min_exponent >= 0.0 && ado.min_exponent.is_finite()), "ado.min_exponent", "must be non-negative"),
        ];
        match bad.iter().find(|b| b.0) {
            Some((_, key, detail)) => Err(self.key_err(format!("{prefix}.{key}"), *detail)),
            None => Ok(()),
        }
    }

    /// `[source_mixing]`: its groups exist, keep one source mixture over the stages, and (for a
    /// mixer that moves) every source has a held-out set to be measured on.
    fn check_source_mixing(&self, m: &SourceMixing) -> Result<()> {
        if m.interval_tokens == 0 {
            return Err(self.key_err("source_mixing.interval_tokens", "must be positive"));
        }
        if m.groups.is_empty() {
            return Err(self.key_err("source_mixing.groups", "must name at least one group"));
        }
        self.check_mixer_settings("source_mixing", &m.odm, &m.ado)?;
        for (i, g) in m.groups.iter().enumerate() {
            let key = format!("source_mixing.groups[{i}]");
            if m.groups[..i].contains(g) {
                return Err(self.key_err(key, format!("group `{g}` is named twice")));
            }
            let Some(sources) = self.mixture.get(g) else {
                return Err(self.key_err(key, format!("no [mixture.{g}] says which sources make up group `{g}`")));
            };
            if let Some((s, _)) = self.stages.iter().enumerate().find(|(_, st)| st.mixture.get(g).is_some_and(|r| r != sources)) {
                return Err(self.key_err(
                    format!("stages[{s}].mixture.{g}"),
                    format!("group `{g}` is mixed online ([source_mixing]): its sources start from [mixture.{g}] in every stage; remove the stage's override"),
                ));
            }
            let moves = !matches!(m.mixer, TopicMixer::Static | TopicMixer::Stratified);
            for name in sources.keys() {
                let Some(src) = self.sources.get(name) else {
                    return Err(self.key_err(format!("mixture.{g}.{name}"), format!("no [sources.{name}]")));
                };
                if moves && !src.topics && src.heldout_docs == 0 {
                    return Err(self.key_err(
                        format!("sources.{name}.heldout_docs"),
                        format!(
                            "source `{name}` of group `{g}` is mixed online by `{}` from its held-out loss: hold out documents (heldout_docs > 0)",
                            m.mixer.as_str()
                        ),
                    ));
                }
            }
        }
        for name in m.weights.keys() {
            if !m.groups.iter().any(|g| self.mixture.get(g).is_some_and(|s| s.contains_key(name))) {
                return Err(self.key_err(format!("source_mixing.weights.{name}"), "is not a source of a mixed group"));
            }
        }
        Ok(())
    }

    /// Every check that needs no data: keys, ratios, groups, sections.
    pub fn validate(&self) -> Result<()> {
        let section = |r: std::result::Result<(), (String, String)>| r.map_err(|(k, d)| self.key_err(k, d));
        if self.stages.is_empty() {
            return Err(self.key_err("stages", "a recipe needs at least one [[stages]]"));
        }
        for (name, src) in &self.sources {
            section(src.check(name, false))?;
            if src.group().is_none() {
                return Err(self.key_err(format!("sources.{name}"), "needs `group` or `language`"));
            }
            if !(src.max_epochs.is_finite() && src.max_epochs > 0.0) {
                return Err(self.key_err(format!("sources.{name}.max_epochs"), "must be a positive number"));
            }
            if src.score_tokens.is_some_and(|n| n < 2) {
                return Err(self.key_err(format!("sources.{name}.score_tokens"), "must be at least 2"));
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
            self.check_mixer_settings("topics", &t.odm, &t.ado)?;
            if t.classifier.is_some() && t.seed.is_some() {
                return Err(self.key_err("topics", "give one of `classifier` (a trained model) or `seed` (labelled JSONL), not both"));
            }
            for (name, tax) in &t.taxonomies {
                let key = format!("topics.taxonomies.{name}");
                if name == DEFAULT_TAXONOMY {
                    return Err(self.key_err(key, format!("`{DEFAULT_TAXONOMY}` is the top-level [topics] classifier / seed; use another name")));
                }
                if tax.classifier.is_some() == tax.seed.is_some() {
                    return Err(self.key_err(key, "give one of `classifier` (a trained model) or `seed` (labelled JSONL)"));
                }
            }
        }
        if let Some(m) = &self.source_mixing {
            self.check_source_mixing(m)?;
        }
        if let Some(e) = &self.eval {
            for (i, r) in e.retention.iter().enumerate() {
                let key = format!("eval.retention.{}", r.name);
                if let Some((name, _)) = self.sources.iter().find(|(_, s)| s.paths.contains(&r.file)) {
                    return Err(
                        self.key_err(key, format!("{} is read by source `{name}`: a retention set must be text the run never trains on", r.file.display()))
                    );
                }
                if self.sources.contains_key(&r.name) || e.ppl.iter().any(|p| p.name == r.name) || e.retention[..i].iter().any(|p| p.name == r.name) {
                    return Err(self.key_err(key, "is also the name of a source or a perplexity task"));
                }
            }
        }
        for (name, src) in &self.sources {
            let Some(tax) = &src.taxonomy else { continue };
            if !src.topics {
                return Err(self.key_err(format!("sources.{name}.taxonomy"), "names a taxonomy but the source has no `topics = true`"));
            }
            if !self.topics.as_ref().is_some_and(|t| t.taxonomies.contains_key(tax)) {
                return Err(self.key_err(format!("sources.{name}.taxonomy"), format!("no [topics.taxonomies.{tax}]")));
            }
        }
        if let Some(p) = &self.prepare {
            section(p.check())?;
            for (name, src) in &self.sources {
                section(src.check(name, true))?;
            }
        }
        if let Some(t) = &self.train {
            section(t.check())?;
            // `syne run` owns these: the mixture is the data, the run folder the output.
            if !t.data.is_empty() {
                return Err(self.key_err("train.data", "is set by `syne run` (the mixture); remove it"));
            }
            if !t.out.as_os_str().is_empty() {
                return Err(self.key_err("train.out", "is set by `syne run` (RUN/train); remove it"));
            }
        }
        if let Some(e) = &self.eval {
            section(e.check())?;
        }
        if let Some(s) = &self.synth {
            section(s.check())?;
        }
        Ok(())
    }
}

//! A sweep (`syne sweep SWEEP.toml`): one base recipe, a surrogate budget, seeds, and variants —
//! named overrides of recipe keys.
//!
//! ```toml
//! [sweep]
//! name = "ablations"
//! base = "demo.toml"          # the recipe every variant starts from
//! output = "../runs/sweep"    # one folder per variant and seed under runs/, shared work under shared/
//! tokens = 24_576             # the surrogate budget: stages, schedule and intervals scaled to it
//! seeds = [1]                 # every variant runs once per seed (train.seed)
//! control = "control"         # the variant every other is compared with
//! control_seeds = [1, 2, 3]   # the control's own seeds: its spread is the training noise
//! set = { "eval.heldout" = true }   # applied to every variant
//!
//! [[variants]]
//! name = "control"
//!
//! [[variants]]
//! name = "lr-x2"
//! set = { "train.schedule.peak" = 4e-4 }
//!
//! [[axes]]                    # one variant per value: the control with that one key changed
//! name = "mixer"
//! key = "topics.mixer"
//! values = ["static", "stratified", "odm", "ado"]
//!
//! [[axes]]                    # values may set several keys at once (a ratio and its complement)
//! name = "zh-share"
//! labels = ["0.1", "0.3"]
//! values = [{ "stages[0].groups.zh" = 0.1, "stages[0].groups.en" = 0.9 },
//!           { "stages[0].groups.zh" = 0.3, "stages[0].groups.en" = 0.7 }]
//! ```
//!
//! An override's key is a dotted recipe key (`topics.mixer`, `stages[1].groups.syn`,
//! `sources.en-wiki.max_epochs`, `train.schedule.peak`); the value replaces (or adds) that key of
//! the base recipe, and the result is parsed and validated as a recipe, so a wrong key or type is
//! refused with the variant and key named. With `grid = true` the axes are crossed (every
//! combination) instead of varied one at a time around the control.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{RecipeError, Result};
use crate::prepare::clean_path;
use crate::recipe::Recipe;

/// `[sweep]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SweepSettings {
    /// The sweep's name.
    pub name: String,
    /// The base recipe (relative to the sweep file).
    pub base: PathBuf,
    /// The sweep's folder (relative to the sweep file).
    pub output: PathBuf,
    /// The surrogate budget: training tokens of all stages together (the base's when absent).
    #[serde(default)]
    pub tokens: Option<u64>,
    /// Training seeds; every variant runs once per seed.
    #[serde(default = "default_seeds")]
    pub seeds: Vec<u64>,
    /// The variant the others are compared with.
    #[serde(default = "default_control")]
    pub control: String,
    /// Seeds of the control when they differ from `seeds`: running the control at two or more
    /// seeds measures the training noise every comparison is judged against.
    #[serde(default)]
    pub control_seeds: Option<Vec<u64>>,
    /// Questions per benchmark (the base's when absent).
    #[serde(default)]
    pub eval_limit: Option<usize>,
    /// Documents read from every corpus file (all when absent).
    #[serde(default)]
    pub docs: Option<usize>,
    /// Synthesis requests (the base's when absent).
    #[serde(default)]
    pub synth_requests: Option<usize>,
    /// Cross the axes (every combination) instead of varying one at a time.
    #[serde(default)]
    pub grid: bool,
    /// Keep a finished run's checkpoints (by default they are removed once its manifest is
    /// written: a SmolLM2-135M run's two checkpoints are ~3 GB, its final weights stay).
    #[serde(default)]
    pub keep_checkpoints: bool,
    /// Overrides applied to every variant, the control included.
    #[serde(default)]
    pub set: Overrides,
}

fn default_seeds() -> Vec<u64> {
    vec![1]
}

fn default_control() -> String {
    "control".into()
}

/// `[[variants]]`: a named set of overrides.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VariantSpec {
    /// The variant's name (its folder).
    pub name: String,
    /// Dotted recipe key → value.
    #[serde(default)]
    pub set: Overrides,
}

/// `[[axes]]`: one key (or several) and the values it takes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AxisSpec {
    /// The axis's name (variants are named `NAME=LABEL`).
    pub name: String,
    /// The key every value sets; without it, each value is a table of key → value.
    #[serde(default)]
    pub key: Option<String>,
    /// The values.
    pub values: Vec<toml::Value>,
    /// A label per value (default: the value as written).
    #[serde(default)]
    pub labels: Vec<String>,
}

/// A whole sweep file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SweepSpec {
    /// `[sweep]`.
    pub sweep: SweepSettings,
    /// `[[variants]]`.
    #[serde(default)]
    pub variants: Vec<VariantSpec>,
    /// `[[axes]]`.
    #[serde(default)]
    pub axes: Vec<AxisSpec>,
    /// The file it was read from.
    #[serde(skip)]
    pub path: PathBuf,
}

/// One variant of a sweep, expanded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Variant {
    /// Its name.
    pub name: String,
    /// `(axis, label)` for each axis that set it (empty: a listed variant).
    pub axes: Vec<(String, String)>,
    /// Every override, `[sweep] set` first.
    pub set: Overrides,
}

/// Dotted recipe key → value.
pub type Overrides = BTreeMap<String, toml::Value>;

/// One value of one axis.
struct AxisValue {
    axis: String,
    label: String,
    set: Overrides,
}

fn label_of(v: &toml::Value) -> String {
    match v {
        toml::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

impl SweepSpec {
    /// The same sweep at another surrogate budget, in its own folder (`OUTPUT-tN`).
    pub fn with_tokens(&mut self, tokens: u64) {
        self.sweep.tokens = Some(tokens);
        let name = self.sweep.output.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        self.sweep.output = self.sweep.output.with_file_name(format!("{name}-t{tokens}"));
    }

    /// The seeds variant `name` runs at.
    pub fn seeds_of(&self, name: &str) -> &[u64] {
        match &self.sweep.control_seeds {
            Some(c) if name == self.sweep.control => c,
            _ => &self.sweep.seeds,
        }
    }

    /// Read and check a sweep file; relative paths resolve against its folder.
    pub fn load(path: &Path) -> Result<SweepSpec> {
        let text = std::fs::read_to_string(path).map_err(|source| RecipeError::Read { path: path.to_path_buf(), source })?;
        SweepSpec::from_str_at(&text, path)
    }

    /// Parse and check sweep text read as if it were the file `path`.
    pub fn from_str_at(text: &str, path: &Path) -> Result<SweepSpec> {
        let path = clean_path(path);
        let mut s: SweepSpec = toml::from_str(text).map_err(|e| RecipeError::toml(&path, text, &e))?;
        let base = path.parent().unwrap_or(Path::new(".")).to_path_buf();
        s.sweep.base = clean_path(&base.join(&s.sweep.base));
        s.sweep.output = clean_path(&base.join(&s.sweep.output));
        s.path = path;
        s.variants()?;
        Ok(s)
    }

    fn key_err(&self, key: impl Into<String>, detail: impl Into<String>) -> RecipeError {
        RecipeError::key(&self.path, key, detail)
    }

    /// Every variant: the listed ones, then the axes' (one at a time around the control, or
    /// crossed with `grid`). Names are unique and the control is among them.
    pub fn variants(&self) -> Result<Vec<Variant>> {
        let s = &self.sweep;
        if s.seeds.is_empty() || s.control_seeds.as_ref().is_some_and(Vec::is_empty) {
            return Err(self.key_err("sweep.seeds", "give at least one seed"));
        }
        let mut out: Vec<Variant> = Vec::new();
        for v in &self.variants {
            let mut set = s.set.clone();
            set.extend(v.set.clone());
            out.push(Variant { name: v.name.clone(), axes: Vec::new(), set });
        }
        let control_set = out.iter().find(|v| v.name == s.control).map(|v| v.set.clone()).unwrap_or_else(|| s.set.clone());
        if !out.iter().any(|v| v.name == s.control) {
            // The control is the base recipe with `[sweep] set` when no variant is named so.
            out.insert(0, Variant { name: s.control.clone(), axes: Vec::new(), set: s.set.clone() });
        }
        let mut axis_values: Vec<Vec<AxisValue>> = Vec::new();
        for (i, a) in self.axes.iter().enumerate() {
            if a.values.is_empty() {
                return Err(self.key_err(format!("axes[{i}].values"), "give at least one value"));
            }
            if !a.labels.is_empty() && a.labels.len() != a.values.len() {
                return Err(self.key_err(format!("axes[{i}].labels"), format!("{} labels for {} values", a.labels.len(), a.values.len())));
            }
            let mut vals = Vec::new();
            for (j, v) in a.values.iter().enumerate() {
                let set: Overrides = match (&a.key, v) {
                    (Some(k), v) => [(k.clone(), v.clone())].into(),
                    (None, toml::Value::Table(t)) => t.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
                    (None, _) => return Err(self.key_err(format!("axes[{i}].values[{j}]"), "without `key`, every value is a table of key = value")),
                };
                let label = a.labels.get(j).cloned().unwrap_or_else(|| match &a.key {
                    Some(_) => label_of(v),
                    None => set.values().map(label_of).collect::<Vec<_>>().join(","),
                });
                vals.push(AxisValue { axis: a.name.clone(), label, set });
            }
            axis_values.push(vals);
        }
        if s.grid && !axis_values.is_empty() {
            let mut combos: Vec<Vec<&AxisValue>> = vec![Vec::new()];
            for vals in &axis_values {
                combos = combos.into_iter().flat_map(|c| vals.iter().map(move |v| c.iter().copied().chain([v]).collect())).collect();
            }
            for c in combos {
                let mut set = control_set.clone();
                c.iter().for_each(|v| set.extend(v.set.clone()));
                let axes: Vec<(String, String)> = c.iter().map(|v| (v.axis.clone(), v.label.clone())).collect();
                let name = axes.iter().map(|(a, l)| format!("{a}={l}")).collect::<Vec<_>>().join(",");
                out.push(Variant { name, axes, set });
            }
        } else {
            for AxisValue { axis, label, set: values } in axis_values.into_iter().flatten() {
                let mut set = control_set.clone();
                set.extend(values);
                out.push(Variant { name: format!("{axis}={label}"), axes: vec![(axis, label)], set });
            }
        }
        let mut seen = std::collections::BTreeSet::new();
        for v in &out {
            if !seen.insert(v.name.as_str()) {
                return Err(self.key_err("variants", format!("two variants are named `{}`", v.name)));
            }
            if v.name.is_empty() || v.name.contains(['/', '\\']) || v.name.starts_with('.') {
                return Err(self.key_err("variants", format!("`{}` cannot name a folder", v.name)));
            }
        }
        Ok(out)
    }
}

/// One step of a dotted key: a table key, then any array indices.
fn parse_key(key: &str) -> Option<Vec<(String, Vec<usize>)>> {
    key.split('.')
        .map(|part| {
            let (name, rest) = part.split_once('[').map_or((part, ""), |(n, r)| (n, r));
            let mut idx = Vec::new();
            for i in rest.split('[').filter(|s| !s.is_empty()) {
                idx.push(i.strip_suffix(']')?.parse().ok()?);
            }
            (!name.is_empty()).then(|| (name.to_string(), idx))
        })
        .collect()
}

/// Set dotted `key` of `root` to `value`, creating missing tables.
fn set_key(root: &mut toml::Value, key: &str, value: toml::Value) -> std::result::Result<(), String> {
    let steps = parse_key(key).ok_or_else(|| "not a dotted key (`a.b`, `a[0].b`)".to_string())?;
    let mut at = root;
    for (n, (name, idx)) in steps.iter().enumerate() {
        let table = at.as_table_mut().ok_or_else(|| format!("`{name}` is under a value, not a table"))?;
        let last = n + 1 == steps.len();
        if last && idx.is_empty() {
            table.insert(name.clone(), value);
            return Ok(());
        }
        at = table.entry(name.clone()).or_insert_with(|| toml::Value::Table(Default::default()));
        for (k, &i) in idx.iter().enumerate() {
            let arr = at.as_array_mut().ok_or_else(|| format!("`{name}` is not an array"))?;
            let len = arr.len();
            let slot = arr.get_mut(i).ok_or_else(|| format!("`{name}` has {len} entries, no [{i}]"))?;
            if last && k + 1 == idx.len() {
                *slot = value;
                return Ok(());
            }
            at = slot;
        }
    }
    Ok(())
}

/// `base` (resolved) with every override of `set` applied, parsed and validated as a recipe.
/// Relative paths in the overrides resolve against `dir` (the sweep file's folder). Errors name
/// `origin` (the sweep file) and the key.
pub fn apply_overrides(base: &Recipe, set: &Overrides, dir: &Path, origin: &Path) -> Result<Recipe> {
    let mut value = toml::Value::try_from(base).map_err(|e| RecipeError::key(origin, "base", format!("cannot write the base recipe back: {e}")))?;
    for (key, v) in set {
        set_key(&mut value, key, v.clone()).map_err(|d| RecipeError::key(origin, key.clone(), d))?;
    }
    let mut recipe: Recipe =
        value.try_into().map_err(|e: toml::de::Error| RecipeError::key(origin, set.keys().cloned().collect::<Vec<_>>().join(", "), e.message().to_string()))?;
    recipe.path = base.path.clone();
    recipe.resolve(dir);
    recipe.validate().map_err(|e| match e {
        RecipeError::Key { key, detail, .. } => RecipeError::key(origin, key, detail),
        other => other,
    })?;
    Ok(recipe)
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = r#"
[run]
name = "b"
output = "runs/b"
[sources.zh]
paths = ["zh.jsonl"]
language = "zh"
[sources.en]
paths = ["en.jsonl"]
language = "en"
topics = true
[[stages]]
name = "one"
tokens = 4096
groups = { zh = 0.2, en = 0.8 }
[mixture.zh]
zh = 1.0
[mixture.en]
en = 1.0
[topics]
interval_tokens = 1024
seed = "seed.jsonl"
"#;

    fn base() -> Recipe {
        Recipe::from_str_at(BASE, Path::new("/w/recipes/base.toml")).unwrap()
    }

    #[test]
    fn axes_expand_one_at_a_time_around_the_control_or_crossed() {
        let text = r#"
[sweep]
name = "s"
base = "base.toml"
output = "../runs/s"
set = { "topics.heldout_docs" = 4 }
[[variants]]
name = "control"
set = { "topics.interval_tokens" = 2048 }
[[axes]]
name = "mixer"
key = "topics.mixer"
values = ["static", "odm"]
[[axes]]
name = "zh"
labels = ["0.1", "0.3"]
values = [{ "stages[0].groups.zh" = 0.1, "stages[0].groups.en" = 0.9 }, { "stages[0].groups.zh" = 0.3, "stages[0].groups.en" = 0.7 }]
"#;
        let spec = SweepSpec::from_str_at(text, Path::new("/w/recipes/s.toml")).unwrap();
        assert_eq!(spec.sweep.output, Path::new("/w/runs/s"));
        let v = spec.variants().unwrap();
        let names: Vec<&str> = v.iter().map(|v| v.name.as_str()).collect();
        assert_eq!(names, ["control", "mixer=static", "mixer=odm", "zh=0.1", "zh=0.3"]);
        // Every axis variant is the control with its own keys changed.
        assert_eq!(v[2].set["topics.interval_tokens"].as_integer(), Some(2048));
        assert_eq!(v[2].set["topics.heldout_docs"].as_integer(), Some(4));
        assert_eq!(v[2].set["topics.mixer"].as_str(), Some("odm"));
        assert!(!v[3].set.contains_key("topics.mixer"));
        let r = apply_overrides(&base(), &v[4].set, Path::new("/w/recipes"), &spec.path).unwrap();
        assert_eq!(r.stages[0].groups["zh"], 0.3);
        assert_eq!(r.topics.as_ref().unwrap().interval_tokens, 2048);
        let r = apply_overrides(&base(), &v[2].set, Path::new("/w/recipes"), &spec.path).unwrap();
        assert_eq!(r.topics.as_ref().unwrap().mixer, crate::TopicMixer::Odm);
        // Crossed: 2 x 2 combinations after the control.
        let grid =
            SweepSpec::from_str_at(&text.replace("output = \"../runs/s\"", "output = \"../runs/s\"\ngrid = true"), Path::new("/w/recipes/s.toml")).unwrap();
        let names: Vec<String> = grid.variants().unwrap().into_iter().map(|v| v.name).collect();
        assert_eq!(names, ["control", "mixer=static,zh=0.1", "mixer=static,zh=0.3", "mixer=odm,zh=0.1", "mixer=odm,zh=0.3"]);
    }

    #[test]
    fn bad_overrides_name_the_key() {
        let origin = Path::new("/w/recipes/s.toml");
        let dir = Path::new("/w/recipes");
        let err = |k: &str, v: toml::Value| apply_overrides(&base(), &[(k.to_string(), v)].into(), dir, origin).unwrap_err().to_string();
        let e = err("stages[0].groups.zh", toml::Value::Float(0.5));
        assert!(e.contains("s.toml") && e.contains("stages[0].groups"), "{e}");
        let e = err("topics.mixer", toml::Value::String("bandit".into()));
        assert!(e.contains("topics.mixer") && e.contains("bandit"), "{e}");
        let e = err("stages[3].tokens", toml::Value::Integer(1));
        assert!(e.contains("stages[3].tokens") && e.contains("no [3]"), "{e}");
        let e = err("train.seed", toml::Value::Integer(1));
        assert!(e.contains("train.seed"), "{e}");
        // A path in an override resolves against the sweep's folder.
        let r = apply_overrides(&base(), &[("topics.seed".to_string(), toml::Value::String("other.jsonl".into()))].into(), dir, origin).unwrap();
        assert_eq!(r.topics.unwrap().seed.unwrap(), Path::new("/w/recipes/other.jsonl"));
        // Duplicate names and empty axes are refused.
        let text = "[sweep]\nname = \"s\"\nbase = \"b.toml\"\noutput = \"o\"\n[[variants]]\nname = \"a\"\n[[variants]]\nname = \"a\"\n";
        assert!(SweepSpec::from_str_at(text, origin).unwrap_err().to_string().contains("two variants are named `a`"));
        let text = "[sweep]\nname = \"s\"\nbase = \"b.toml\"\noutput = \"o\"\n[[axes]]\nname = \"x\"\nkey = \"a\"\nvalues = []\n";
        assert!(SweepSpec::from_str_at(text, origin).unwrap_err().to_string().contains("axes[0].values"));
    }
}

//! `syne plan RECIPE --check`, and the first thing `syne run` does: everything about a recipe
//! that can be validated without its data, so that a recipe that cannot finish fails in
//! seconds, naming the key, instead of after days of preparation and scoring.
//!
//! Checked: every key typed and known (the recipe's own validation), every stage a whole number
//! of optimizer steps (the rounding stated per stage), the evaluation tasks and their shots
//! known (`syne eval --list-tasks`) and a tasks file readable, topic sources with a classifier
//! or a seed (and a classifier that loads), curriculum sources with a `[curriculum]`, and every
//! input path: present, produced by the run itself, or missing. [`check`] reports missing inputs;
//! `syne run` refuses to start with any ([`CheckReport::require_inputs`]).

use std::collections::BTreeSet;
use std::path::PathBuf;

use serde::Serialize;
use syne_mix::plan::Plan;
use syne_mix::sampler::StageRounding;
use syne_recipe::Recipe;

use crate::error::{PipelineError, Result};

/// One input of the recipe and whether it is here.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InputPath {
    /// The key that names it (`sources.web-cn.paths[0]`, `train.model`).
    pub key: String,
    /// The path, anchored at the recipe's folder.
    pub path: PathBuf,
    /// It exists.
    pub present: bool,
    /// It lies under a folder the run writes (`[run] output`, `[synth] output`): the run makes it.
    pub produced_by_run: bool,
}

/// One evaluation task as the recipe names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CheckedTask {
    /// The task's name.
    pub name: String,
    /// The shots it will be scored with.
    pub shots: usize,
    /// Whether it is the paper's benchmark with the paper's shots.
    pub paper_shots: bool,
}

/// What [`check`] found: the rounding of every stage, the tasks, the inputs.
#[derive(Debug, Clone, Serialize)]
pub struct CheckReport {
    /// The recipe file.
    pub recipe: PathBuf,
    /// Per stage, how its budget became whole optimizer steps (empty without `[train]`).
    pub rounding: Vec<StageRounding>,
    /// `[eval] tasks`, resolved.
    pub tasks: Vec<CheckedTask>,
    /// Every input path.
    pub inputs: Vec<InputPath>,
}

fn key_err(recipe: &Recipe, key: impl Into<String>, detail: impl Into<String>) -> PipelineError {
    syne_recipe::RecipeError::key(&recipe.path, key, detail).into()
}

/// Check a recipe without its data. Errors name the key at fault; missing inputs are listed in
/// the report, not errors (the paper's recipe names data that cannot be downloaded here).
pub fn check(recipe: &Recipe) -> Result<CheckReport> {
    recipe.validate()?;
    // Stages in whole optimizer steps.
    let plan = Plan::new(recipe);
    let rounding = match &recipe.train {
        Some(t) => {
            if let Some((i, st)) = recipe.stages.iter().enumerate().find(|(_, s)| s.tokens < t.global_batch_tokens) {
                return Err(key_err(
                    recipe,
                    format!("stages[{i}].tokens"),
                    format!(
                        "stage `{}` has {} tokens, less than one optimizer step (train.global_batch_tokens = {})",
                        st.name, st.tokens, t.global_batch_tokens
                    ),
                ));
            }
            // Every stage fills a step, so the plan's rounding is there.
            plan.rounding.clone()
        }
        None => Vec::new(),
    };
    // Topic and curriculum sources have what they need: every topic source a taxonomy with a
    // classifier or a seed; a classifier that exists loads, and the topic weights name its topics.
    let topic_sources: Vec<(&String, &syne_recipe::SourceSpec)> = recipe.sources.iter().filter(|(_, s)| s.topics).collect();
    if let Some((name, _)) = topic_sources.first().filter(|_| recipe.topics.is_none()) {
        return Err(key_err(recipe, format!("sources.{name}.topics"), "a topic source needs a [topics] section"));
    }
    if let Some(t) = &recipe.topics {
        if let Some((name, _)) = topic_sources.iter().find(|(_, s)| t.taxonomy(s.taxonomy()).is_none()) {
            return Err(key_err(
                recipe,
                "topics",
                format!("give `classifier` (a trained model) or `seed` (labelled JSONL) to label the topic source `{name}`, or a `taxonomy` for it"),
            ));
        }
        // The weights can be checked when every taxonomy's classifier is here (a seed's topics
        // are known only once `syne run` trains it): each classifier loaded once.
        let taxonomies: BTreeSet<&str> = topic_sources.iter().map(|(_, s)| s.taxonomy()).collect();
        let mut labels: Option<Vec<String>> = Some(Vec::new());
        for tax in taxonomies.into_iter().filter_map(|name| t.taxonomy(name)) {
            match (tax.classifier.as_ref().filter(|c| c.exists()), labels.as_mut()) {
                (Some(c), Some(l)) => l.extend(syne_mix::topics::TopicModel::load(c)?.labels),
                _ => labels = None,
            }
        }
        if let Some(labels) = labels.filter(|l| !l.is_empty()) {
            if let Some(topic) = t.weights.keys().find(|w| !labels.contains(w)) {
                return Err(key_err(recipe, format!("topics.weights.{topic}"), format!("no classifier of the topic sources has a topic `{topic}`")));
            }
        }
    }
    if recipe.curriculum.is_none() {
        if let Some((name, _)) = recipe.sources.iter().find(|(_, s)| s.curriculum) {
            return Err(key_err(recipe, format!("sources.{name}.curriculum"), "a curriculum source needs a [curriculum] section"));
        }
    }
    // Evaluation tasks and shots.
    let mut tasks = Vec::new();
    if let Some(e) = &recipe.eval {
        let data_dir = e.data_dir();
        for (i, spec) in e.tasks.iter().enumerate() {
            let (name, shots, info) = syne_eval::catalog::check_spec(spec).map_err(|d| key_err(recipe, format!("eval.tasks[{i}]"), d))?;
            if info.is_none() && !data_dir.join("oe_eval_tasks").join(&name).is_dir() {
                return Err(key_err(
                    recipe,
                    format!("eval.tasks[{i}]"),
                    format!("unknown task `{name}`: not in `syne eval --list-tasks` nor a folder of {}", data_dir.join("oe_eval_tasks").display()),
                ));
            }
            let paper_shots = info.is_some_and(|t| t.paper && t.default_shots == shots);
            tasks.push(CheckedTask { name, shots, paper_shots });
        }
        if let Some(file) = e.tasks_file.as_ref().filter(|f| f.exists()) {
            for spec in syne_eval::custom::read_tasks_file(file)? {
                tasks.push(CheckedTask { name: spec.name.clone(), shots: spec.shots, paper_shots: false });
            }
        }
    }
    let outputs = recipe.outputs();
    let inputs = recipe
        .inputs()
        .into_iter()
        .map(|(key, path)| InputPath { key, path: path.to_path_buf(), present: path.exists(), produced_by_run: outputs.iter().any(|o| path.starts_with(o)) })
        .collect();
    Ok(CheckReport { recipe: recipe.path.clone(), rounding, tasks, inputs })
}

impl CheckReport {
    /// Inputs that are neither here nor produced by the run.
    pub fn missing(&self) -> Vec<&InputPath> {
        self.inputs.iter().filter(|i| !i.present && !i.produced_by_run).collect()
    }

    /// An error naming every missing input, for a run that is about to start. Once the corpora
    /// are `prepared` (the shards' manifest exists), the raw corpora and the tokenizer they were
    /// read with are no longer needed.
    pub fn require_inputs(&self, prepared: bool) -> Result<()> {
        let missing: Vec<&InputPath> =
            self.missing().into_iter().filter(|i| !(prepared && (i.key.starts_with("sources.") || i.key == "prepare.tokenizer"))).collect();
        if missing.is_empty() {
            return Ok(());
        }
        let list: Vec<String> = missing.iter().map(|i| format!("{} = {}", i.key, i.path.display())).collect();
        Err(syne_recipe::RecipeError::key(&self.recipe, missing[0].key.clone(), format!("missing input(s): {}", list.join("; "))).into())
    }

    /// The report as Markdown.
    pub fn markdown(&self) -> String {
        let mut s = format!("Check of `{}`: OK\n", self.recipe.display());
        if self.rounding.is_empty() {
            s += "\nNo [train]: stages are not rounded to optimizer steps.\n";
        } else {
            s += "\n| stage | planned tokens | tokens / seq_len | sequences | steps | tokens trained | difference |\n|---|---|---|---|---|---|---|\n";
            for r in &self.rounding {
                s += &format!(
                    "| {} | {} | {:.1} | {} | {} | {} | {:+} |\n",
                    r.stage, r.planned_tokens, r.exact_sequences, r.sequences, r.steps, r.tokens, r.difference
                );
            }
        }
        if !self.tasks.is_empty() {
            let list: Vec<String> =
                self.tasks.iter().map(|t| format!("{}:{}{}", t.name, t.shots, if t.paper_shots { "" } else { " (not the paper's shots)" })).collect();
            s += &format!("\nEvaluation: {}\n", list.join(", "));
        }
        let missing = self.missing();
        let produced = self.inputs.iter().filter(|i| !i.present && i.produced_by_run).count();
        s += &format!("\nInputs: {} present, {produced} produced by the run, {} missing", self.inputs.len() - missing.len() - produced, missing.len());
        if missing.is_empty() {
            s += ".\n";
        } else {
            s += " (`syne run` needs them):\n";
            for i in missing {
                s += &format!("- `{}` = {}\n", i.key, i.path.display());
            }
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn recipes() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../recipes")
    }

    fn paper_with(edit: impl Fn(String) -> String) -> std::result::Result<CheckReport, String> {
        let text = edit(std::fs::read_to_string(recipes().join("paper.toml")).unwrap());
        let r = Recipe::from_str_at(&text, &recipes().join("paper.toml")).map_err(|e| e.to_string())?;
        check(&r).map_err(|e| e.to_string())
    }

    #[test]
    fn every_recipe_passes_and_the_paper_is_rounded_to_whole_steps() {
        for entry in std::fs::read_dir(recipes()).unwrap() {
            let path = entry.unwrap().path();
            // (synth-smollm2.toml is a `syne synth` file, not a whole recipe.)
            if path.extension().is_some_and(|e| e == "toml") && std::fs::read_to_string(&path).unwrap().contains("[[stages]]") {
                check(&Recipe::load(&path).unwrap()).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            }
        }
        let report = paper_with(|t| t).unwrap();
        let steps: Vec<u64> = report.rounding.iter().map(|r| r.steps).collect();
        assert_eq!(steps, [22_054, 1_788]);
        assert!(report.tasks.iter().all(|t| t.paper_shots), "{:?}", report.tasks);
        assert!(report.missing().iter().any(|i| i.key == "train.model"));
        let e = report.require_inputs(false).unwrap_err().to_string();
        assert!(e.contains("missing input(s)") && e.contains("sources.book-cn.paths[0]"), "{e}");
        let e = report.require_inputs(true).unwrap_err().to_string();
        assert!(!e.contains("sources.") && e.contains("train.model"), "{e}");
    }

    #[test]
    fn bad_recipes_fail_naming_the_key() {
        let e = paper_with(|t| t.replace("tasks = [\"mmlu\"", "tasks = [\"mmlu_nonsense_family_x\", \"nosuchtask\"")).unwrap_err();
        assert!(e.contains("eval.tasks[1]") && e.contains("unknown task `nosuchtask`"), "{e}");
        let e = paper_with(|t| t.replace("\"gsm8k\"", "\"gsm8k:12\"")).unwrap_err();
        assert!(e.contains("eval.tasks[4]") && e.contains("at most 8 shots"), "{e}");
        let e = paper_with(|t| t.replace("order = \"ascending\"", "order = \"sideways\"")).unwrap_err();
        assert!(e.contains("curriculum.order") || e.contains("sideways"), "{e}");
        let e = paper_with(|t| t.replace("tokens = 7_500_000_000", "tokens = 1_000")).unwrap_err();
        assert!(e.contains("stages[1].tokens") && e.contains("less than one optimizer step"), "{e}");
        let e = paper_with(|t| t.replace("[topics.taxonomies.zh]\nclassifier = \"../runs/paper/topics-zh.model\"\n", "")).unwrap_err();
        assert!(e.contains("sources.web-cn.taxonomy") && e.contains("no [topics.taxonomies.zh]"), "{e}");
        let e = paper_with(|t| t.replace("taxonomy = \"en\"", "")).unwrap_err();
        assert!(e.contains("topics") && e.contains("label the topic source `web-en`"), "{e}");
        let e = paper_with(|t| {
            let (a, b) = t.split_once("[curriculum]").unwrap();
            format!("{a}{}", &b[b.find("\n[").unwrap()..])
        })
        .unwrap_err();
        assert!(e.contains("sources.") && e.contains(".curriculum") && e.contains("[curriculum]"), "{e}");
    }
}

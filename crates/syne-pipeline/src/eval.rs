//! `syne eval`, and step 5 of a run: score a model (local, or served by an OpenAI-compatible
//! server) on the tasks of [`EvalSettings`], write `OUT/results.json` and `OUT/results.md`.
//! Questions already scored by an earlier, killed evaluation are reused from `OUT/samples`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use syne_data::tokenizer::TextTokenizer;
use syne_eval::backend::{Backend, LocalBackend};
use syne_eval::openai::OpenAiBackend;
use syne_eval::results::RunResults;
use syne_eval::task::{GenMetric, LoadOptions, Task};
use syne_model::llama::Llama;
use syne_recipe::EvalSettings;

use crate::error::{PipelineError, Result};
use crate::observer::{RunObserver, Unit};

/// What is evaluated.
pub enum EvalTarget {
    /// A local model: a llama GGUF or an HF folder, with its tokenizer (default: its own).
    Local {
        /// The model.
        model: PathBuf,
        /// Its tokenizer, when not the model's own.
        tokenizer: Option<PathBuf>,
    },
    /// A model served by an OpenAI-compatible server.
    Server(OpenAiBackend),
}

fn request(m: impl Into<String>) -> PipelineError {
    PipelineError::Request(m.into())
}

/// The tasks of `settings` (benchmarks, custom tasks), loaded; skipped malformed rows are said.
pub fn load_tasks(settings: &EvalSettings, observer: &mut dyn RunObserver) -> Result<Vec<Task>> {
    let mut tasks = Vec::new();
    let load_opts = LoadOptions { limit: settings.limit, strict: settings.strict };
    let (data_dir, bench_dir) = (settings.data_dir(), settings.bench_dir());
    for t in &settings.tasks {
        let (name, shots) = syne_eval::catalog::parse_spec(t).map_err(|e| request(format!("tasks: {e}")))?;
        let task = syne_eval::load::load_task(&data_dir, &bench_dir, name, shots, load_opts)?;
        let skipped = task.skipped();
        if skipped.count > 0 {
            observer.say(&format!("{name}: skipped {} malformed rows (--strict fails on them instead); first: {}", skipped.count, skipped.first.join("; ")));
        }
        tasks.push(task);
    }
    if let Some(file) = &settings.tasks_file {
        for spec in syne_eval::custom::read_tasks_file(file)? {
            let task = syne_eval::custom::load_custom(&spec, load_opts)?;
            if task.skipped().count > 0 {
                observer.say(&format!("{}: skipped {} malformed rows; first: {}", spec.name, task.skipped().count, task.skipped().first.join("; ")));
            }
            tasks.push(task);
        }
    }
    Ok(tasks)
}

/// Evaluate `target` with `settings` into `out` on `device`; returns the results (also written
/// as `out/results.json` and `out/results.md`).
pub fn evaluate(settings: &EvalSettings, target: &EvalTarget, out: &Path, device: tch::Device, observer: &mut dyn RunObserver) -> Result<RunResults> {
    if matches!(target, EvalTarget::Server(_)) && !settings.ppl.is_empty() {
        return Err(request("perplexity tasks score whole documents with the local model; they need a local model"));
    }
    if settings.tasks.is_empty() && settings.ppl.is_empty() && settings.tasks_file.is_none() {
        return Err(request("nothing to evaluate: give tasks, a tasks file and/or perplexity tasks (NAME=FILE)"));
    }
    let tasks = load_tasks(settings, observer)?;
    // Refuse before loading the model when generated code cannot be sandboxed.
    let needs_sandbox = tasks.iter().any(|t| matches!(t, Task::Gen(g) if g.metric == GenMetric::Program));
    let sandbox = if needs_sandbox {
        let limits = syne_eval::sandbox::SandboxLimits { wall_seconds: settings.code_timeout, ..Default::default() };
        Some(syne_eval::sandbox::Sandbox::new(&settings.python, limits, settings.unsafe_unsandboxed_code)?)
    } else {
        None
    };
    let local = match target {
        EvalTarget::Local { model, tokenizer } => {
            Some((Llama::load(model, device)?, TextTokenizer::load(tokenizer.as_deref().unwrap_or(model))?, syne_eval::run::model_identity(model)?))
        }
        EvalTarget::Server(_) => None,
    };
    let local_backend = local.as_ref().map(|(lm, tok, identity)| LocalBackend {
        model: lm,
        tok,
        identity: identity.clone(),
        max_len: settings.max_len,
        batch_tokens: settings.batch_tokens,
        generate_batch: settings.generate_batch,
    });
    let backend: &dyn Backend = match (&local_backend, target) {
        (Some(b), _) => b,
        (None, EvalTarget::Server(server)) => server,
        (None, EvalTarget::Local { .. }) => unreachable!("a local target has its model"),
    };
    let opts = syne_eval::run::EvalOptions {
        max_len: settings.max_len,
        batch_tokens: settings.batch_tokens,
        ppl_max_chars: settings.ppl_max_chars,
        ..Default::default()
    };
    let mut results = BTreeMap::new();
    for task in &tasks {
        let bar = observer.progress(&format!("{} {}-shot", task.name(), task.shots()), Some(task.len() as u64), Unit::Questions);
        let progress = |n: usize| bar.set_position(n as u64);
        let (r, reused) = match task {
            Task::Mc(t) => syne_eval::run::run_mc(backend, t, out, opts.chunk, &progress)?,
            // Generation chunks are smaller: a killed run loses less decoding.
            Task::Gen(t) => syne_eval::run::run_gen(backend, t, sandbox.as_ref(), out, settings.generate_batch.max(1), &progress)?,
        };
        bar.finish();
        if reused > 0 {
            observer.say(&format!("{}: {reused} of {} questions reused from {}", task.name(), task.len(), out.join("samples").display()));
        }
        results.insert(format!("{}:{}shot", task.name(), task.shots()), r);
    }
    // The paper's averages over sub-tasks (SciEval Avg, ARC Avg, GaoKao) where all were scored.
    for (key, avg) in syne_eval::catalog::averages(&results) {
        results.insert(key, avg);
    }
    if let Some((lm, tok, _)) = &local {
        for p in &settings.ppl {
            results.insert(p.name.clone(), syne_eval::run::run_ppl(lm, tok, &p.name, &p.file, settings.ppl_docs, &opts, Some(out))?);
        }
    }
    let ppl: Vec<String> = settings.ppl.iter().map(|p| format!("{}={}", p.name, p.file.display())).collect();
    let config = serde_json::json!({
        "tasks": settings.tasks, "tasks_file": settings.tasks_file, "ppl": ppl, "ppl_docs": settings.ppl_docs, "limit": settings.limit,
        "max_len": settings.max_len, "data_dir": settings.data_dir(), "bench_dir": settings.bench_dir(), "strict": settings.strict,
        "sandbox": sandbox.as_ref().map(|s| serde_json::json!({"isolation": s.isolation(), "limits": s.limits()})),
        "tokenizer_sha256": local.as_ref().map(|l| l.1.hash()),
        "api": match target { EvalTarget::Server(s) => Some(serde_json::json!({"base": s.base_url, "model": s.model, "chat": s.chat})), EvalTarget::Local { .. } => None },
        "device": format!("{device:?}"),
    });
    let run = RunResults { model: backend.identity().clone(), config, results };
    syne_data::io::write_atomic(&out.join("results.json"), serde_json::to_string_pretty(&run).expect("results serialise").as_bytes())?;
    syne_data::io::write_atomic(&out.join("results.md"), run.markdown().as_bytes())?;
    Ok(run)
}

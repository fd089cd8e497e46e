//! `syne`: continual pre-training of LLMs, end to end. This binary only parses arguments,
//! turns them into the library's typed settings, makes one library call per command, shows
//! progress and prints results; the work is done by the library crates (the whole run by
//! `syne-pipeline`).
//!
//! ```text
//! syne demo                                   # the embedded default, end to end, with its report
//! syne run recipes/paper.toml                 # a whole recipe (resumable step by step)
//! syne prepare recipes/demo.toml              # clean, dedup, tokenize, pack (resumable)
//! syne inspect runs/demo/data --verify        # counts, hashes, decoded samples
//! syne eval --model M.gguf --tasks arc_easy,sciq --out DIR
//! ```

use std::io::Read;
use std::process::ExitCode;

use clap::Parser;
use syne_data::prepare::{run_prepare, PrepareOptions};
use syne_data::tokenizer::{BosPolicy, TextTokenizer};
use syne_model::llama::Llama;
use syne_pipeline::demo::{run_demo, DemoScale};
use syne_pipeline::eval::{evaluate, EvalTarget};
use syne_pipeline::topics::{LabelMethod, LabelModel, LlmLabelRequest, Taxonomy};
use syne_pipeline::{torch_device, Pipeline, PipelineError, PipelineOptions, TrainProgress, Unit};
use syne_pipeline::{Result, RunObserver as _};
use syne_recipe::Recipe;

mod cli;
mod print;
mod progress;

use cli::{ApiArgs, Cli, Command, Common, EvalCmd, EvalSub, TopicsCmd};
use progress::Bars;

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_env("SYNE_LOG").unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")))
        .init();
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn usage(m: impl Into<String>) -> PipelineError {
    PipelineError::Request(m.into())
}

fn json(v: &impl serde::Serialize) -> String {
    serde_json::to_string_pretty(v).expect("results serialise")
}

fn options(c: Common) -> PipelineOptions {
    PipelineOptions { threads: c.threads, cpu: c.cpu, progress: !c.no_progress }
}

fn run(cli: Cli) -> Result<()> {
    let c = cli.common;
    let bars = |prefix: &'static str| Bars::new(prefix, !c.no_progress);
    match cli.command {
        Command::Prepare { config, out, strict, keep_work, json: as_json } => {
            let opts = PrepareOptions { threads: c.threads, strict, progress: !c.no_progress, keep_work };
            let report = run_prepare(&config, out.as_deref(), &opts)?;
            if as_json {
                let summary = serde_json::json!({
                    "out": report.out_dir, "total": report.manifest.total, "sources": report.manifest.sources,
                    "seconds": report.seconds, "resumed_units": report.units_resumed, "already_complete": report.already_complete,
                });
                println!("{}", json(&summary));
            } else {
                print::prepare_summary(&report);
            }
        }
        Command::Tokenize { tokenizer, text, parse_special, document } => {
            let tok = TextTokenizer::load(&tokenizer)?.with_parse_special(parse_special);
            let text = match text {
                Some(t) => t,
                None => {
                    let mut s = String::new();
                    std::io::stdin().read_to_string(&mut s).map_err(|e| usage(format!("cannot read standard input: {e}")))?;
                    s
                }
            };
            let ids = if document { tok.encode_document(&text, BosPolicy::Model, true)? } else { tok.encode(&text)? };
            println!("{}", serde_json::to_string(&ids).expect("ids serialise"));
        }
        Command::Inspect { dir, sample, chars, verify } => print::inspection(&dir, &syne_pipeline::inspect::inspect(&dir, sample, chars, verify)?),
        Command::Train { config, resume } => {
            let device = torch_device(c.threads, c.cpu);
            let cfg = syne_train::trainer::load_settings(&config)?;
            let mut progress = TrainProgress(bars("syne train").progress("training", Some(cfg.total_tokens), Unit::Tokens));
            let state = syne_train::trainer::train(&cfg, resume, device, &mut progress)?;
            progress.0.finish();
            println!(
                "{}: {} steps, {} tokens on {device:?}; final weights in {}",
                cfg.out.display(),
                state.step,
                state.tokens,
                cfg.out.join("final").display()
            );
        }
        Command::Generate {
            model,
            tokenizer,
            prompt,
            prompts_file,
            max_new_tokens,
            temperature,
            top_k,
            top_p,
            repetition_penalty,
            stop,
            ignore_eos,
            seed,
            batch_size,
            bos,
            out,
        } => {
            let mut prompts = prompt;
            if let Some(f) = &prompts_file {
                prompts.extend(syne_pipeline::tools::read_prompts(f)?);
            }
            if prompts.is_empty() {
                return Err(usage("no prompt: pass --prompt TEXT or --prompts-file FILE.jsonl"));
            }
            let lm = Llama::load(&model, torch_device(c.threads, c.cpu))?;
            let tok = TextTokenizer::load(tokenizer.as_deref().unwrap_or(&model))?;
            let cfg =
                syne_model::generate::SamplingConfig { max_new_tokens, temperature, top_k, top_p, repetition_penalty, stop, stop_at_eos: !ignore_eos, seed };
            let lines = syne_pipeline::tools::complete(&lm, &tok, &prompts, batch_size, bos, &cfg, &mut bars(""))?;
            let text: String = lines.iter().map(|l| format!("{}\n", serde_json::to_string(l).expect("a line serialises"))).collect();
            match out {
                Some(path) => syne_data::io::write_atomic(&path, text.as_bytes())?,
                None => print!("{text}"),
            }
        }
        Command::Eval(cmd) => eval(*cmd, c)?,
        Command::Synth { config, max_requests } => {
            let mut cfg = syne_synth::run::load_settings(&config)?;
            if let Some(n) = max_requests {
                cfg.max_requests = n;
            }
            let summary = syne_pipeline::synth::synthesise(&cfg, &config, &mut bars("syne synth"))?;
            println!("{}", json(&summary));
            eprintln!("{} items → {}", summary.kept, cfg.output.join("synthesis.jsonl").display());
        }
        Command::Run { recipe } => {
            let m = Pipeline::new(Recipe::load(&recipe)?, options(c)).run(&mut bars("syne run"))?;
            println!("{}", json(&serde_json::json!({"run": recipe, "train": m.train, "eval": m.eval})));
        }
        Command::Demo { recipe, tokens, synth_requests, eval_limit, docs, out } => {
            let scale = DemoScale { tokens, synth_requests, eval_limit, docs, out };
            let mut observer = bars("syne demo");
            let demo = run_demo(&recipe, &scale, options(c), &mut observer)?;
            observer.say(&format!(
                "trained {} tokens in {} steps; report: {} and {}",
                demo.manifest.train.tokens,
                demo.manifest.train.steps,
                demo.report.markdown.display(),
                demo.report.html.display()
            ));
            let md = demo.report.markdown;
            print!("{}", std::fs::read_to_string(&md).map_err(|e| syne_data::DataError::io(&md, "cannot read the report", e))?);
        }
        Command::Sweep { cmd: Some(cli::SweepCmd::Report { dir, json: as_json }), .. } => {
            let (summary, r) = syne_pipeline::sweep::report(&dir)?;
            if as_json {
                println!("{}", json(&summary));
            } else {
                print!("{}", std::fs::read_to_string(&r.markdown).map_err(|e| syne_data::DataError::io(&r.markdown, "cannot read the report", e))?);
            }
            eprintln!("report: {} and {}", r.markdown.display(), r.html.display());
        }
        Command::Sweep { cmd: None, file, parallel, check, tokens } => {
            let file = file.ok_or_else(|| PipelineError::Request("syne sweep: give a sweep file (or `syne sweep report DIR`)".into()))?;
            let mut spec = syne_recipe::sweep::SweepSpec::load(&file)?;
            if let Some(t) = tokens {
                spec.with_tokens(t);
            }
            if check {
                for cell in syne_pipeline::sweep::cells(&spec)? {
                    let report = syne_pipeline::check::check(&cell.recipe)?;
                    println!("{} seed {}: {} ({} inputs missing)", cell.variant.name, cell.seed, cell.recipe.run.output.display(), report.missing().len());
                }
                return Ok(());
            }
            let mut observer = bars("syne sweep");
            let opts = syne_pipeline::sweep::SweepOptions { parallel, pipeline: options(c) };
            syne_pipeline::sweep::run_sweep(&spec, opts, &mut observer)?;
            let (_, r) = syne_pipeline::sweep::report(&spec.sweep.output)?;
            print!("{}", std::fs::read_to_string(&r.markdown).map_err(|e| syne_data::DataError::io(&r.markdown, "cannot read the report", e))?);
            observer.say(&format!("report: {} and {}", r.markdown.display(), r.html.display()));
        }
        Command::Report { run } => {
            let r = syne_report::write_report(&run)?;
            eprintln!("report: {} and {}", r.markdown.display(), r.html.display());
        }
        Command::Topics { cmd } => topics(cmd, c)?,
        Command::Plan { recipe, json: as_json, check, megatron, blends, topics_from_run } => {
            let recipe = Recipe::load(&recipe)?;
            if check {
                let report = syne_pipeline::check::check(&recipe)?;
                if as_json {
                    println!("{}", json(&report));
                } else {
                    print!("{}", report.markdown());
                }
                return Ok(());
            }
            if let Some(out) = megatron.as_ref().filter(|_| !blends) {
                let export = Pipeline::new(recipe, options(c)).export_megatron(out, &mut bars("syne plan --megatron"))?;
                for st in &export.stages {
                    eprintln!("stage `{}`: sequences {}..{} → {}", st.name, st.first, st.first + st.sequences, out.join(&st.launch).display());
                }
                eprintln!(
                    "{}: {} sequences of {} tokens ({} validations of the run replayed)",
                    out.join("stream.bin").display(),
                    export.sequences,
                    export.seq_len,
                    export.replayed_validations
                );
                println!("{}", json(&export));
                return Ok(());
            }
            let mut plan = syne_mix::plan::Plan::new(&recipe);
            plan.check_prepared(&recipe)?;
            if let Some(out) = megatron {
                let prepared = plan
                    .manifest
                    .as_ref()
                    .and_then(|m| m.parent())
                    .ok_or_else(|| usage("--megatron needs the recipe's `syne prepare` output ([prepare] output with a manifest.json)"))?;
                if recipe.source_mixing.is_some() {
                    // Blends are fixed per stage: the online source mixing exists only in the stream.
                    eprintln!("--blends: the [source_mixing] groups are blended at their planned source shares; `syne plan --megatron DIR` (no --blends) writes the run's exact stream, online mixing included");
                }
                let topics = if topics_from_run { syne_pipeline::topics::topic_datasets(&recipe, &out)? } else { Vec::new() };
                for e in syne_mix::megatron::export_with_topics(&recipe, &plan, prepared, &topics, &out)? {
                    eprintln!("stage `{}`: {} and {}", e.stage, e.blend.display(), e.launch.display());
                }
            }
            if as_json {
                println!("{}", json(&plan));
            } else {
                print!("{}", plan.markdown());
            }
        }
        Command::ExportHf { model, out } => {
            let lm = Llama::load(&model, tch::Device::Cpu)?;
            // A GGUF carries its tokenizer; an HF folder may or may not have tokenizer.json.
            let tok = if !model.is_dir() || model.join("tokenizer.json").exists() { Some(TextTokenizer::load(&model)?) } else { None };
            lm.save_hf(&out, tok.as_ref())?;
            println!(
                "{}: config.json, model.safetensors, tokenizer.json ({} layers, {} parameters)",
                out.display(),
                lm.config.num_hidden_layers,
                lm.vs.trainable_variables().iter().map(|t| t.numel()).sum::<usize>()
            );
        }
        Command::Ppl { model, tokenizer, inputs, out, max_len, batch_tokens, text_field } => {
            let device = torch_device(c.threads, c.cpu);
            let lm = Llama::load(&model, device)?;
            let tok = TextTokenizer::load(tokenizer.as_deref().unwrap_or(&model))?;
            let files = syne_data::io::expand_inputs(&inputs)?;
            let fields = syne_data::io::FieldSpec { text: text_field, ..Default::default() };
            let opts = syne_model::ppl::PplOptions { max_len, batch_tokens, fields, ..Default::default() };
            let bar = bars("").progress("scoring", None, Unit::Documents);
            let started = std::time::Instant::now();
            let s = syne_model::ppl::ppl_files(&lm, &tok, &files, &out, &opts, &|n| bar.set_position(n))?;
            bar.finish();
            let nll = s.nll_sum / s.predicted.max(1) as f64;
            println!(
                "{}: {} documents scored ({} resumed, {} bad records skipped) on {device:?}, {} tokens; mean NLL {nll:.4} nats/token (perplexity {:.3}); {:.1} documents/s",
                out.display(),
                s.docs + s.resumed_docs,
                s.resumed_docs,
                s.bad_records,
                s.tokens,
                nll.exp(),
                s.docs as f64 / started.elapsed().as_secs_f64()
            );
        }
        Command::ExportMegatron { dir, out } => {
            for d in syne_pipeline::tools::export_megatron_folder(&dir, &out)? {
                println!("{}.{{bin,idx}}: {} documents, {} tokens", d.prefix.display(), d.documents, d.tokens);
            }
        }
    }
    Ok(())
}

/// The server backend of `--api-base`, when given.
fn server(api: &ApiArgs) -> Result<Option<syne_eval::openai::OpenAiBackend>> {
    let Some(base) = &api.api_base else { return Ok(None) };
    let key = match &api.api_key_env {
        Some(var) => Some(std::env::var(var).map_err(|_| usage(format!("--api-key-env {var}: the variable is not set")))?),
        None => None,
    };
    Ok(Some(syne_eval::openai::OpenAiBackend::new(base, &api.api_model, key, api.api_chat, api.api_timeout)))
}

fn eval(cmd: EvalCmd, c: Common) -> Result<()> {
    if let Some(EvalSub::Compare { a, b }) = &cmd.sub {
        use syne_eval::results::{compare, RunResults};
        print!("{}", compare(&RunResults::load(a)?, &RunResults::load(b)?));
        return Ok(());
    }
    if cmd.list_tasks {
        use syne_eval::catalog::{markdown, AVERAGES, TASKS};
        if cmd.json {
            println!("{}", json(&serde_json::json!({"tasks": TASKS, "averages": AVERAGES})));
        } else {
            print!("{}", markdown());
        }
        return Ok(());
    }
    cmd.settings.check().map_err(|(key, detail)| usage(format!("--{}: {detail}", key.trim_start_matches("eval.").replace('_', "-"))))?;
    let target = match (cmd.model, server(&cmd.api)?) {
        (Some(_), Some(_)) => return Err(usage("pass --model (local) or --api-base (a server), not both")),
        (Some(model), None) => EvalTarget::Local { model, tokenizer: cmd.tokenizer },
        (None, Some(s)) => EvalTarget::Server(s),
        (None, None) => return Err(usage("syne eval needs --model or --api-base (or: syne eval compare A.json B.json)")),
    };
    let out = cmd.out.ok_or_else(|| usage("syne eval needs --out DIR"))?;
    let results = evaluate(&cmd.settings, &target, &out, torch_device(c.threads, c.cpu), &mut Bars::new("", !c.no_progress))?;
    print!("{}", results.markdown());
    Ok(())
}

fn topics(cmd: TopicsCmd, c: Common) -> Result<()> {
    let mut bars = Bars::new("", !c.no_progress);
    match cmd {
        TopicsCmd::Train { inputs, out, text_field, label_field, dim, epochs, buckets_log2, seed } => {
            let settings = syne_mix::topics::ClassifierSettings { buckets: 1 << buckets_log2.min(28), dim, epochs, seed, ..Default::default() };
            let t = std::time::Instant::now();
            let (model, n, unlabelled) = syne_pipeline::topics::train_classifier(&inputs, &text_field, &label_field, &settings)?;
            if unlabelled > 0 {
                eprintln!("skipped {unlabelled} records without a `{label_field}` field");
            }
            model.save(&out)?;
            eprintln!("trained on {n} documents, {} topics in {:.1} s → {}", model.labels.len(), t.elapsed().as_secs_f64(), out.display());
        }
        TopicsCmd::Label { model, inputs, out, text_field } => {
            let model = syne_mix::topics::TopicModel::load(&model)?;
            let t = std::time::Instant::now();
            let n = syne_pipeline::tools::label_corpus(&model, &inputs, &text_field, &out, &mut bars)?;
            let secs = t.elapsed().as_secs_f64();
            eprintln!("labelled {n} documents in {secs:.2} s ({:.0} documents/s, reading and writing included) → {}", n as f64 / secs.max(1e-9), out.display());
        }
        TopicsCmd::LlmLabel { inputs, out, sample, seed, taxonomy, method, max_chars, text_field, model, tokenizer, api, batch } => {
            let taxonomy = match taxonomy.as_str() {
                "en" => Taxonomy::En,
                "zh" => Taxonomy::Zh,
                t => return Err(usage(format!("--taxonomy {t}: expected en or zh"))),
            };
            let method = match method.as_str() {
                "generate" => LabelMethod::Generate,
                "choose" => LabelMethod::Choose,
                m => return Err(usage(format!("--method {m}: expected generate or choose"))),
            };
            let label_model = match (model, server(&api)?) {
                (Some(_), Some(_)) => return Err(usage("pass --model (local) or --api-base (a server), not both")),
                (Some(model), None) => LabelModel::Local { model, tokenizer, threads: c.threads, cpu: c.cpu },
                (None, Some(s)) => LabelModel::Server(s),
                (None, None) => return Err(usage("syne topics llm-label needs --model or --api-base")),
            };
            let req = LlmLabelRequest { inputs, out, sample, seed, taxonomy, method, max_chars, text_field, batch };
            let s = syne_pipeline::topics::llm_label(&req, label_model, &mut bars)?;
            eprintln!(
                "{} of {} documents labelled by {method:?} → {}: {}",
                s.labelled,
                s.seen,
                req.out.display(),
                serde_json::to_string(&s.counts).expect("counts serialise")
            );
        }
        TopicsCmd::MmluSeed { data_dir, split, out } => {
            let n = syne_pipeline::topics::write_mmlu_seed(&data_dir, &split, &out)?;
            eprintln!("{n} labelled MMLU questions → {}", out.display());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;
    use std::path::Path;

    #[test]
    fn the_command_line_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn the_paper_recipe_loads_typed_with_every_section() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../recipes/paper.toml");
        let recipe = Recipe::load(&path).unwrap();
        let train = recipe.train.as_ref().unwrap();
        assert_eq!(train.seq_len, 8192);
        assert!(train.model.is_absolute() && train.model.ends_with("models/Meta-Llama-3-8B"));
        assert!(recipe.eval.as_ref().unwrap().tasks.iter().any(|t| t.starts_with("ceval")));
        // `syne run` owns train.data / train.out.
        let text = std::fs::read_to_string(&path).unwrap().replace("[train]\n", "[train]\nout = \"x\"\n");
        assert!(Recipe::from_str_at(&text, &path).unwrap_err().to_string().contains("train.out"));
        // [eval] keys are typed: an unknown one is refused, with its name.
        let text = std::fs::read_to_string(&path).unwrap().replace("[eval]\n", "[eval]\ntaks = [\"mmlu\"]\n");
        let e = Recipe::from_str_at(&text, &path).unwrap_err().to_string();
        assert!(e.contains("taks"), "{e}");
    }
}

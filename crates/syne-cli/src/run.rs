//! `syne run RECIPE`: a whole continual pre-training run from one recipe, resumable step by step.
//!
//! The steps, each skipped when its output is already complete, so that a killed run started
//! again continues where it stopped:
//!
//! 1. **prepare** the sources into token shards (`syne prepare`, itself resumable);
//! 2. **plan** the tokens per stage and source, checked against the shards (`plan.json`);
//! 3. **annotate** the topic and curriculum sources: each document's topic (the recipe's
//!    classifier, or one trained from its seed file) and the backbone's perplexity on it, written
//!    per source to `notes/SOURCE.jsonl` in chunks (a killed run keeps the finished chunks);
//!    `topics.heldout_docs` documents per topic are held out and become the per-topic validation
//!    sets (`heldout/SOURCE.jsonl`);
//! 4. **train** on the mixture stream (syne-mix) through every stage, validating per topic at each
//!    re-weighting interval; checkpoints hold the mixture state, so a resumed run draws exactly
//!    the sequences the killed one would have (`train/`);
//! 5. **evaluate** the backbone and the trained model with the recipe's `[eval]` tasks
//!    (`eval/before`, `eval/after`);
//!
//! and write `manifest.json`: what each step consumed and produced, and the token account
//! (planned against consumed per stage, source, topic and curriculum bucket).

use std::collections::BTreeMap;
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use syne_data::io::{partial_path, write_atomic};
use syne_data::prepare::{run_prepare_config, Manifest, PrepareConfig, PrepareOptions};
use syne_data::shards::ShardReader;
use syne_data::tokenizer::TextTokenizer;
use syne_data::DataError;
use syne_mix::plan::Plan;
use syne_mix::recipe::Recipe;
use syne_mix::sampler::Schedule;
use syne_mix::stream::{DocNote, MixtureStream, SourceInput, StreamSettings};
use syne_mix::topics::TopicModel;
use syne_model::llama::Llama;
use syne_model::score::score_documents;
use syne_train::trainer::{checkpoints, train_on, TrainConfig};
use syne_train::validation::ValidationSet;

use crate::CliError;

/// How `syne run` runs (none of it changes the results).
pub struct RunOptions {
    pub threads: usize,
    pub cpu: bool,
    pub progress: bool,
}

fn usage(m: impl Into<String>) -> CliError {
    CliError::Usage(m.into())
}

fn say(msg: impl AsRef<str>) {
    eprintln!("[syne run] {}", msg.as_ref());
}

/// The recipe's `[prepare]` and `[sources.*]` as `syne prepare` reads them (the mixture's own
/// source keys left out).
fn prepare_config(recipe: &Recipe) -> Result<PrepareConfig, CliError> {
    let prepare = recipe.prepare.clone().ok_or_else(|| usage(format!("{}: `syne run` needs a [prepare] table", recipe.path.display())))?;
    let mut sources = toml::Table::new();
    for (name, src) in &recipe.sources {
        let mut t: toml::Table = src.prepare.clone().into_iter().collect();
        if let Some(l) = &src.language {
            t.insert("language".into(), toml::Value::String(l.clone()));
        }
        sources.insert(name.clone(), toml::Value::Table(t));
    }
    let mut whole = toml::Table::new();
    whole.insert("prepare".into(), toml::Value::Table(prepare));
    whole.insert("sources".into(), toml::Value::Table(sources));
    Ok(PrepareConfig::parse(&toml::to_string(&whole).expect("toml"), &recipe.path)?)
}

/// The trainer's settings: the recipe's `[train]` table with the run's output folder, the token
/// total (the schedule's, set by the caller) and the validation interval (the topic interval)
/// filled in; paths resolve against the recipe's folder.
pub fn train_config(recipe: &Recipe, out: &Path) -> Result<TrainConfig, CliError> {
    let mut t = recipe.train.clone().ok_or_else(|| usage(format!("{}: `syne run` needs a [train] table", recipe.path.display())))?;
    for key in ["data", "out"] {
        if t.contains_key(key) {
            return Err(usage(format!("{}: `train.{key}` is set by `syne run` (the mixture and the run folder); remove it", recipe.path.display())));
        }
    }
    let base = recipe.path.parent().unwrap_or(Path::new("."));
    let anchor = |v: &mut toml::Value| {
        if let Some(p) = v.as_str() {
            *v = toml::Value::String(base.join(p).to_string_lossy().into_owned());
        }
    };
    for key in ["model", "tokenizer"] {
        t.get_mut(key).map(anchor);
    }
    for v in t.get_mut("validation").and_then(toml::Value::as_array_mut).into_iter().flatten() {
        v.get_mut("path").map(anchor);
    }
    t.insert("data".into(), toml::Value::Array(Vec::new()));
    t.insert("out".into(), toml::Value::String(out.to_string_lossy().into_owned()));
    t.entry("total_tokens").or_insert(toml::Value::Integer(0));
    if let (Some(topics), false) = (&recipe.topics, t.contains_key("validate_every_tokens")) {
        t.insert("validate_every_tokens".into(), toml::Value::Integer(topics.interval_tokens as i64));
    }
    let mut file = toml::Table::new();
    file.insert("train".into(), toml::Value::Table(t));
    // TrainConfig::load validates; every path in the table is absolute by now.
    std::fs::create_dir_all(out).map_err(|e| DataError::io(out, "cannot create", e))?;
    let tmp = out.join(format!(".train-config-{}.toml", std::process::id()));
    std::fs::write(&tmp, toml::to_string(&file).expect("toml")).map_err(|e| DataError::io(&tmp, "cannot write", e))?;
    let cfg = TrainConfig::load(&tmp).map_err(|e| usage(format!("{}: [train]: {e}", recipe.path.display())));
    let _ = std::fs::remove_file(&tmp);
    cfg
}

/// The recipe's `[synth]` table as `syne synth` reads it (paths relative to the recipe).
fn synth_config(recipe: &Recipe) -> Result<Option<syne_synth::run::SynthConfig>, CliError> {
    let Some(t) = &recipe.synth else { return Ok(None) };
    let mut whole = toml::Table::new();
    whole.insert("synth".into(), toml::Value::Table(t.clone()));
    Ok(Some(syne_synth::run::SynthConfig::parse(&toml::to_string(&whole).expect("toml"), &recipe.path)?))
}

/// One line of `notes/SOURCE.jsonl`.
#[derive(Debug, Serialize, Deserialize)]
struct NoteLine {
    topic: Option<String>,
    topic_prob: Option<f32>,
    perplexity: Option<f64>,
}

/// The shards of one source in a prepared folder.
fn source_shards(dir: &Path, manifest: &Manifest, source: &str) -> Result<Vec<ShardReader>, CliError> {
    manifest.shards.iter().filter(|s| s.source == source).map(|s| ShardReader::open(&dir.join("shards").join(&s.name)).map_err(CliError::from)).collect()
}

/// What annotating needs.
struct Annotator<'a> {
    tok: &'a TextTokenizer,
    topics: Option<&'a TopicModel>,
    scorer: Option<(&'a Llama, usize)>,
    progress: bool,
}

impl Annotator<'_> {
    fn text(&self, ids: &[u32]) -> Result<String, CliError> {
        let special = [self.tok.bos_id(), self.tok.eos_id()];
        let ids: Vec<u32> = ids.iter().copied().filter(|t| !special.contains(&Some(*t))).collect();
        Ok(self.tok.decode(&ids)?)
    }

    /// Notes for every document of `shards` into `out` (built in `out.partial` chunk by chunk;
    /// a restarted run keeps the complete lines).
    fn annotate(&self, name: &str, shards: &[ShardReader], topics: bool, perplexity: bool, out: &Path) -> Result<Vec<NoteLine>, CliError> {
        let docs = syne_data::shards::doc_refs(shards);
        if !out.exists() {
            let tmp = partial_path(out);
            let mut done = 0usize;
            if let Ok(f) = std::fs::File::open(&tmp) {
                // Keep the complete lines of the earlier partial output.
                let mut keep = 0u64;
                for line in std::io::BufReader::new(f).split(b'\n') {
                    let line = line.map_err(|e| DataError::io(&tmp, "cannot read", e))?;
                    if serde_json::from_slice::<NoteLine>(&line).is_err() {
                        break;
                    }
                    keep += line.len() as u64 + 1;
                    done += 1;
                }
                let f = std::fs::OpenOptions::new().write(true).open(&tmp).map_err(|e| DataError::io(&tmp, "cannot open", e))?;
                f.set_len(keep).map_err(|e| DataError::io(&tmp, "cannot truncate", e))?;
                if done > 0 {
                    say(format!("{name}: {done} of {} documents already annotated", docs.len()));
                }
            }
            let mut file = std::fs::OpenOptions::new().create(true).append(true).open(&tmp).map_err(|e| DataError::io(&tmp, "cannot open", e))?;
            let bar = if self.progress { indicatif::ProgressBar::new(docs.len() as u64) } else { indicatif::ProgressBar::hidden() };
            bar.set_style(indicatif::ProgressStyle::with_template("{msg} [{elapsed_precise}] {wide_bar} {pos}/{len} documents, eta {eta}").expect("template"));
            bar.set_message(format!("annotating {name}"));
            bar.set_position(done as u64);
            for chunk in docs[done.min(docs.len())..].chunks(64) {
                let ids: Vec<Vec<u32>> = chunk.iter().map(|&(s, d)| shards[s].doc(d).to_vec()).collect();
                let ppl: Vec<Option<f64>> = match (perplexity, self.scorer) {
                    (true, Some((model, score_tokens))) => {
                        let heads: Vec<Vec<u32>> = ids.iter().map(|d| d[..d.len().min(score_tokens)].to_vec()).collect();
                        score_documents(model, &heads, score_tokens, 8 * score_tokens)
                            .into_iter()
                            .map(|s| (s.predicted > 0).then(|| (s.nll_sum / s.predicted as f64).exp()))
                            .collect()
                    }
                    _ => vec![None; ids.len()],
                };
                let mut lines = Vec::new();
                for (d, p) in ids.iter().zip(ppl) {
                    let (topic, topic_prob) = match (topics, self.topics) {
                        (true, Some(m)) => m.predict(&self.text(d)?).map_or((None, None), |(t, p)| (Some(t.to_string()), Some(p))),
                        _ => (None, None),
                    };
                    lines.extend(serde_json::to_vec(&NoteLine { topic, topic_prob, perplexity: p }).expect("json"));
                    lines.push(b'\n');
                }
                file.write_all(&lines).map_err(|e| DataError::io(&tmp, "cannot write", e))?;
                file.flush().map_err(|e| DataError::io(&tmp, "cannot write", e))?;
                bar.inc(chunk.len() as u64);
            }
            bar.finish_and_clear();
            file.sync_all().map_err(|e| DataError::io(&tmp, "cannot sync", e))?;
            std::fs::rename(&tmp, out).map_err(|e| DataError::io(out, "cannot rename", e))?;
        }
        let text = std::fs::read_to_string(out).map_err(|e| DataError::io(out, "cannot read", e))?;
        let notes: Vec<NoteLine> = text
            .lines()
            .enumerate()
            .map(|(i, l)| serde_json::from_str(l).map_err(|e| usage(format!("{}:{}: {e}", out.display(), i + 1))))
            .collect::<Result<_, _>>()?;
        if notes.len() != docs.len() {
            return Err(usage(format!("{}: {} notes for {} documents; remove it to annotate again", out.display(), notes.len(), docs.len())));
        }
        Ok(notes)
    }
}

/// `per_topic` documents of each topic, chosen by a seeded hash of their number: the held-out set.
fn choose_heldout(notes: &[NoteLine], per_topic: usize, seed: u64) -> Vec<bool> {
    let mut by_topic: BTreeMap<&str, Vec<(u64, usize)>> = BTreeMap::new();
    for (i, n) in notes.iter().enumerate() {
        if let Some(t) = &n.topic {
            let key = syne_data::text::mix64(seed ^ syne_data::text::mix64(i as u64));
            by_topic.entry(t).or_default().push((key, i));
        }
    }
    let mut held = vec![false; notes.len()];
    for docs in by_topic.values_mut() {
        docs.sort_unstable();
        // Never hold out a topic's last documents: keep at least half of them for training.
        for &(_, i) in docs.iter().take(per_topic.min(docs.len() / 2)) {
            held[i] = true;
        }
    }
    held
}

/// `n` documents held out of `docs`, chosen by a seeded hash of their number (none when that
/// would leave fewer than half of them for training).
fn choose_heldout_plain(docs: usize, n: usize, seed: u64) -> Vec<bool> {
    let mut keys: Vec<(u64, usize)> = (0..docs).map(|i| (syne_data::text::mix64(seed ^ syne_data::text::mix64(i as u64 ^ 0x5eed)), i)).collect();
    keys.sort_unstable();
    let mut held = vec![false; docs];
    for &(_, i) in keys.iter().take(n.min(docs / 2)) {
        held[i] = true;
    }
    held
}

/// The run's record (`manifest.json`).
#[derive(Debug, Serialize, Deserialize)]
pub struct RunManifest {
    pub recipe: PathBuf,
    pub recipe_sha256: String,
    pub prepared: PathBuf,
    pub prepared_manifest_sha256: String,
    pub plan: PathBuf,
    pub notes: BTreeMap<String, NotesSummary>,
    /// Per source, the documents held out of training (its validation set).
    #[serde(default)]
    pub heldout: BTreeMap<String, HeldoutSummary>,
    pub train: TrainSummary,
    pub account: syne_mix::stream::Account,
    pub eval: BTreeMap<String, PathBuf>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct NotesSummary {
    pub file: PathBuf,
    pub sha256: String,
    pub docs: u64,
    pub heldout_docs: u64,
    pub scored_docs: u64,
    pub topics: BTreeMap<String, u64>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct HeldoutSummary {
    pub file: PathBuf,
    pub sha256: String,
    pub docs: u64,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct TrainSummary {
    pub out: PathBuf,
    pub steps: u64,
    pub tokens: u64,
    pub final_model: PathBuf,
    pub mixture_log: PathBuf,
}

/// Run the recipe at `path`.
pub fn run_recipe(path: &Path, opts: &RunOptions) -> Result<RunManifest, CliError> {
    let text = std::fs::read_to_string(path).map_err(|e| DataError::io(path, "cannot read recipe", e))?;
    run_recipe_text(&text, path, opts)
}

/// Run the recipe `text`, read as if it were the file `path` (its relative paths resolve against
/// that file's folder): how `syne demo` runs its recipe with another token budget.
pub fn run_recipe_text(text: &str, path: &Path, opts: &RunOptions) -> Result<RunManifest, CliError> {
    let path = &std::path::absolute(path).map_err(|e| DataError::io(path, "cannot resolve", e))?;
    let recipe = Recipe::parse(text, path)?;
    let dir = recipe.run.output.clone();
    std::fs::create_dir_all(&dir).map_err(|e| DataError::io(&dir, "cannot create run folder", e))?;
    let recipe_bytes = text.as_bytes().to_vec();
    // A run folder belongs to one recipe: resuming with another would mix two runs.
    let copy = dir.join("recipe.toml");
    match std::fs::read(&copy) {
        Ok(old) if old != recipe_bytes => {
            return Err(usage(format!("{} holds a run of a different recipe ({}); use another [run] output or remove it", dir.display(), copy.display())));
        }
        Ok(_) => say(format!("resuming the run in {}", dir.display())),
        Err(_) => write_atomic(&copy, &recipe_bytes)?,
    }
    let base = path.parent().unwrap_or(Path::new("."));
    // Settings read only later are checked now: a bad [synth], [train] or [eval] fails before
    // hours of work.
    synth_config(&recipe)?;
    let checked = train_config(&recipe, &dir.join("train"))?;
    if let Some(e) = &recipe.eval {
        crate::eval_argv(e, base, &checked.model, checked.tokenizer.as_deref(), &dir.join("eval"), opts)?;
    }

    // 0. synthesise (the synthetic source reads its output)
    if let Some(cfg) = synth_config(&recipe)? {
        let summary_path = cfg.output.join("summary.json");
        let done: Option<syne_synth::run::Summary> = std::fs::read(&summary_path).ok().and_then(|b| serde_json::from_slice(&b).ok());
        let summary = match done {
            Some(s) if s.requests == cfg.max_requests as u64 => {
                say(format!("synth: {} complete", cfg.output.display()));
                s
            }
            _ => crate::synth_with(cfg.clone(), path, !opts.progress)?,
        };
        say(format!("synth: {} of {} requests kept → {}", summary.kept, summary.requests, cfg.output.join("synthesis.jsonl").display()));
        if summary.kept == 0 {
            return Err(usage(format!(
                "{}: [synth] kept no item of {} requests (rejected: {:?}); raise [synth] max_requests or use a stronger model",
                path.display(),
                summary.requests,
                summary.rejected
            )));
        }
    }

    // 1. prepare
    let pcfg = prepare_config(&recipe)?;
    let data_dir = syne_data::prepare::clean_path(&base.join(&pcfg.prepare.output));
    let popts = PrepareOptions { threads: opts.threads, strict: false, progress: opts.progress, keep_work: false };
    let report = run_prepare_config(&pcfg, base, &data_dir, &popts)?;
    say(if report.already_complete {
        format!("prepare: {} complete", data_dir.display())
    } else {
        format!("prepare: {} written in {:.1} s", data_dir.display(), report.seconds)
    });
    let manifest = report.manifest;

    // 2. plan
    let mut plan = Plan::new(&recipe);
    plan.check_prepared(&recipe)?;
    let plan_path = dir.join("plan.json");
    write_atomic(&plan_path, serde_json::to_string_pretty(&plan).expect("json").as_bytes())?;
    let mut train_cfg = train_config(&recipe, &dir.join("train"))?;
    let schedule = Schedule::from_plan(&plan, train_cfg.seq_len as u64)?;
    train_cfg.total_tokens = match recipe.train.as_ref().and_then(|t| t.get("total_tokens")).and_then(toml::Value::as_integer) {
        Some(t) if t as u64 != schedule.sequences() * train_cfg.seq_len as u64 => {
            return Err(usage(format!(
                "{}: train.total_tokens = {t} but the stages hold {} sequences of {} tokens ({}); leave it out",
                path.display(),
                schedule.sequences(),
                train_cfg.seq_len,
                schedule.sequences() * train_cfg.seq_len as u64
            )));
        }
        _ => schedule.sequences() * train_cfg.seq_len as u64,
    };
    say(format!("plan: {} tokens in {} stages → {} sequences of {} tokens", plan.total_tokens, plan.stages.len(), schedule.sequences(), train_cfg.seq_len));

    // 3. annotate
    let device = crate::torch_device(opts.threads, opts.cpu);
    let tok = TextTokenizer::load(&syne_data::prepare::clean_path(&base.join(&pcfg.prepare.tokenizer)))?;
    let needs_topics: Vec<&String> = schedule.sources.iter().filter(|s| recipe.sources[*s].topics && recipe.topics.is_some()).collect();
    let needs_ppl: Vec<&String> = schedule.sources.iter().filter(|s| recipe.sources[*s].curriculum && recipe.curriculum.is_some()).collect();
    let topic_model = match (&recipe.topics, needs_topics.is_empty()) {
        (Some(t), false) => Some(match (&t.classifier, &t.seed) {
            (Some(c), _) => TopicModel::load(c)?,
            (None, Some(seed)) => {
                let model_path = dir.join("topics.model");
                if !model_path.exists() {
                    let fields = syne_data::io::FieldSpec { text: "text".into(), id: None, topic: Some("topic".into()), perplexity: None };
                    let mut examples = Vec::new();
                    for doc in syne_data::io::CorpusReader::open(seed, &fields)? {
                        let doc = doc?;
                        if let Some(t) = doc.topic {
                            examples.push((doc.text, t));
                        }
                    }
                    let mut labels: Vec<String> = examples.iter().map(|(_, l)| l.clone()).collect();
                    labels.sort();
                    labels.dedup();
                    TopicModel::train(&examples, &labels, &syne_mix::topics::TrainSettings::default())?.save(&model_path)?;
                    say(format!("topics: classifier trained on {} labelled documents of {} → {}", examples.len(), seed.display(), model_path.display()));
                }
                TopicModel::load(&model_path)?
            }
            (None, None) => {
                return Err(usage(format!(
                    "{}: `topics`: sources {needs_topics:?} are labelled by topic: give `classifier` (a trained model) or `seed` (labelled JSONL)",
                    path.display()
                )))
            }
        }),
        _ => None,
    };
    let scorer = if needs_ppl.is_empty() { None } else { Some(Llama::load(&train_cfg.model, device)?) };
    let annotator = Annotator {
        tok: &tok,
        topics: topic_model.as_ref(),
        scorer: scorer.as_ref().map(|m| (m, recipe.curriculum.as_ref().map_or(256, |c| c.score_tokens))),
        progress: opts.progress,
    };
    let mut inputs = Vec::new();
    let mut notes_summary = BTreeMap::new();
    let mut heldout_files = BTreeMap::new();
    let heldout_per_topic = recipe.topics.as_ref().map_or(0, |t| t.heldout_docs);
    for name in &schedule.sources {
        let src = &recipe.sources[name];
        let shards = source_shards(&data_dir, &manifest, name)?;
        let (topics, curriculum) = (needs_topics.contains(&name), needs_ppl.contains(&name));
        let mut input = SourceInput { name: name.clone(), shards, topics: Vec::new(), notes: Vec::new(), curriculum, max_epochs: src.max_epochs };
        let mut held = Vec::new();
        if topics || curriculum {
            let file = dir.join("notes").join(format!("{name}.jsonl"));
            std::fs::create_dir_all(file.parent().expect("notes folder")).map_err(|e| DataError::io(&file, "cannot create", e))?;
            let notes = annotator.annotate(name, &input.shards, topics, curriculum, &file)?;
            let labels: Vec<String> = topic_model.as_ref().filter(|_| topics).map(|m| m.labels.clone()).unwrap_or_default();
            held = if topics {
                choose_heldout(&notes, heldout_per_topic, train_cfg.seed)
            } else {
                choose_heldout_plain(notes.len(), src.heldout_docs, train_cfg.seed)
            };
            let mut topic_docs: BTreeMap<String, u64> = BTreeMap::new();
            for n in &notes {
                *topic_docs.entry(n.topic.clone().unwrap_or_else(|| "-".into())).or_default() += 1;
            }
            input.notes = notes
                .iter()
                .zip(&held)
                .map(|(n, &h)| DocNote {
                    topic: n.topic.as_ref().and_then(|t| labels.iter().position(|l| l == t)).map(|i| i as u16),
                    perplexity: n.perplexity,
                    heldout: h,
                })
                .collect();
            input.topics = labels;
            notes_summary.insert(
                name.clone(),
                NotesSummary {
                    file: file.clone(),
                    sha256: syne_data::io::sha256_file(&file)?,
                    docs: notes.len() as u64,
                    heldout_docs: held.iter().filter(|&&h| h).count() as u64,
                    scored_docs: notes.iter().filter(|n| n.perplexity.is_some()).count() as u64,
                    topics: topic_docs,
                },
            );
            say(format!("annotate: {name}: {} documents{}{}", notes.len(), if topics { ", topics" } else { "" }, if curriculum { ", perplexity" } else { "" }));
        } else if src.heldout_docs > 0 {
            let n = syne_data::shards::doc_refs(&input.shards).len();
            held = choose_heldout_plain(n, src.heldout_docs, train_cfg.seed);
            input.notes = held.iter().map(|&h| DocNote { topic: None, perplexity: None, heldout: h }).collect();
        }
        if held.iter().any(|&h| h) {
            // The held-out documents as text (with their topic, for topic sources): this source's
            // validation set, scored at every validation and by `[eval] heldout = true`.
            let mut lines = String::new();
            let docs = syne_data::shards::doc_refs(&input.shards);
            for (i, &(s, d)) in docs.iter().enumerate().filter(|(i, _)| held[*i]) {
                let text = annotator.text(&input.shards[s].doc(d).to_vec())?;
                let topic = input.notes[i].topic.map(|t| input.topics[t as usize].clone());
                lines += &serde_json::json!({"text": text, "topic": topic}).to_string();
                lines.push('\n');
            }
            let hfile = dir.join("heldout").join(format!("{name}.jsonl"));
            std::fs::create_dir_all(hfile.parent().expect("folder")).map_err(|e| DataError::io(&hfile, "cannot create", e))?;
            write_atomic(&hfile, lines.as_bytes())?;
            let topic_field = topics.then(|| "topic".to_string());
            train_cfg.validation.push(ValidationSet { name: name.clone(), path: hfile.clone(), max_docs: usize::MAX, text_field: "text".into(), topic_field });
            heldout_files.insert(
                name.clone(),
                HeldoutSummary { sha256: syne_data::io::sha256_file(&hfile)?, file: hfile, docs: held.iter().filter(|&&h| h).count() as u64 },
            );
        }
        inputs.push(input);
    }
    drop(scorer);

    // 4. train
    let settings = StreamSettings { seq_len: train_cfg.seq_len, seed: train_cfg.seed, curriculum: recipe.curriculum.clone(), topics: recipe.topics.clone() };
    let mut stream = MixtureStream::new(schedule, inputs, settings)?;
    let vocab = syne_model::llama::LlamaConfig::read(&train_cfg.model)?.vocab_size;
    if manifest.tokenizer.vocab_size > vocab {
        return Err(usage(format!(
            "{}: the shards' tokenizer has {} entries, the model's vocabulary {vocab}",
            data_dir.display(),
            manifest.tokenizer.vocab_size
        )));
    }
    let out = train_cfg.out.clone();
    let account_path = out.join("account.json");
    let final_dir = out.join("final");
    let (steps, tokens, account) = if final_dir.join("config.json").exists() && account_path.exists() {
        say(format!("train: {} complete", out.display()));
        let account: syne_mix::stream::Account =
            serde_json::from_slice(&std::fs::read(&account_path).map_err(|e| DataError::io(&account_path, "cannot read", e))?)
                .map_err(|e| usage(format!("{}: {e}", account_path.display())))?;
        (account.position * train_cfg.seq_len as u64 / train_cfg.global_batch_tokens, account.position * train_cfg.seq_len as u64, account)
    } else {
        let resume = !checkpoints(&out).is_empty();
        if resume {
            say(format!("train: resuming from {}", checkpoints(&out).last().expect("one").display()));
        }
        let bar = if opts.progress { indicatif::ProgressBar::new(train_cfg.total_tokens) } else { indicatif::ProgressBar::hidden() };
        bar.set_style(indicatif::ProgressStyle::with_template("[{elapsed_precise}] {wide_bar} {pos}/{len} tokens, eta {eta} {msg}").expect("template"));
        let mut observer = crate::TrainProgress { bar: &bar };
        let state = train_on(&train_cfg, resume, device, &mut observer, &mut stream)?;
        bar.finish_and_clear();
        let account = stream.account();
        write_atomic(&account_path, serde_json::to_string_pretty(&account).expect("json").as_bytes())?;
        say(format!("train: {} steps, {} tokens → {}", state.step, state.tokens, final_dir.display()));
        (state.step, state.tokens, account)
    };

    // 5. evaluate
    let mut eval = BTreeMap::new();
    if let Some(e) = &recipe.eval {
        let mut e = e.clone();
        if e.get("heldout").and_then(toml::Value::as_bool) == Some(true) {
            // Every held-out set becomes a perplexity task named after its source.
            let ppl = e.entry("ppl").or_insert_with(|| toml::Value::Table(toml::Table::new()));
            let ppl = ppl.as_table_mut().ok_or_else(|| usage(format!("{}: [eval].ppl: expected a table NAME = FILE", path.display())))?;
            for (name, h) in &heldout_files {
                ppl.entry(name.clone()).or_insert_with(|| toml::Value::String(h.file.to_string_lossy().into_owned()));
            }
        }
        let e = &e;
        for (label, model) in [("before", train_cfg.model.clone()), ("after", final_dir.clone())] {
            if label == "before" && e.get("before").and_then(toml::Value::as_bool) == Some(false) {
                continue;
            }
            let eval_out = dir.join("eval").join(label);
            if !eval_out.join("results.json").exists() {
                crate::eval_from_table(e, base, &model, train_cfg.tokenizer.as_deref(), &eval_out, opts)?;
            }
            say(format!("eval: {label} → {}", eval_out.join("results.json").display()));
            eval.insert(label.to_string(), eval_out.join("results.json"));
        }
    }

    let m = RunManifest {
        recipe: path.to_path_buf(),
        recipe_sha256: syne_data::io::sha256_file(&copy)?,
        prepared: data_dir.clone(),
        prepared_manifest_sha256: syne_data::io::sha256_file(&data_dir.join("manifest.json"))?,
        plan: plan_path,
        notes: notes_summary,
        heldout: heldout_files,
        train: TrainSummary { out: out.clone(), steps, tokens, final_model: final_dir, mixture_log: out.join("mixture.jsonl") },
        account,
        eval,
    };
    write_atomic(&dir.join("manifest.json"), serde_json::to_string_pretty(&m).expect("json").as_bytes())?;
    Ok(m)
}

/// The topic sources of a finished `syne run` of `recipe` as Megatron datasets, one per topic
/// (its training documents, written to `OUT/data/SOURCE.topic-NN.bin/.idx`), with the topic
/// ratios the run started from and every adjustment it made: the input of
/// [`syne_mix::megatron::export_with_topics`].
pub fn topic_datasets(recipe: &Recipe, out: &Path) -> Result<Vec<syne_mix::megatron::TopicDatasets>, CliError> {
    let dir = &recipe.run.output;
    let mpath = dir.join("manifest.json");
    let bytes =
        std::fs::read(&mpath).map_err(|e| DataError::io(&mpath, "no finished `syne run` of this recipe (run it, e.g. on a surrogate model, first)", e))?;
    let m: RunManifest = serde_json::from_slice(&bytes).map_err(|e| usage(format!("{}: {e}", mpath.display())))?;
    let prepared = Manifest::load(&m.prepared)?;
    let seed = train_config(recipe, &dir.join("train"))?.seed;
    let heldout_per_topic = recipe.topics.as_ref().map_or(0, |t| t.heldout_docs);
    // Adjustments per source, from the run's re-weighting log.
    let mut adjustments: BTreeMap<String, Vec<(u64, Vec<f64>)>> = BTreeMap::new();
    let log = std::fs::read_to_string(&m.train.mixture_log).map_err(|e| DataError::io(&m.train.mixture_log, "cannot read", e))?;
    for (n, line) in log.lines().enumerate() {
        let v: serde_json::Value = serde_json::from_str(line).map_err(|e| usage(format!("{}:{}: {e}", m.train.mixture_log.display(), n + 1)))?;
        let tokens = v["tokens"].as_u64().unwrap_or(0);
        for ev in v["event"].as_array().into_iter().flatten() {
            if let (Some(src), Some(r)) = (ev["source"].as_str(), ev["adjustment"]["ratios"].as_array()) {
                adjustments.entry(src.to_string()).or_default().push((tokens, r.iter().map(|x| x.as_f64().unwrap_or(0.0)).collect()));
            }
        }
    }
    let data = out.join("data");
    std::fs::create_dir_all(&data).map_err(|e| DataError::io(&data, "cannot create", e))?;
    let mut sets = Vec::new();
    for (source, ts) in &m.account.topics {
        let file = &m.notes.get(source).ok_or_else(|| usage(format!("{}: no notes for topic source `{source}`", mpath.display())))?.file;
        let text = std::fs::read_to_string(file).map_err(|e| DataError::io(file, "cannot read", e))?;
        let notes: Vec<NoteLine> = text
            .lines()
            .enumerate()
            .map(|(i, l)| serde_json::from_str(l).map_err(|e| usage(format!("{}:{}: {e}", file.display(), i + 1))))
            .collect::<Result<_, _>>()?;
        let held = choose_heldout(&notes, heldout_per_topic, seed);
        let shards = source_shards(&m.prepared, &prepared, source)?;
        let docs = syne_data::shards::doc_refs(&shards);
        if docs.len() != notes.len() {
            return Err(usage(format!("{}: {} notes for {} documents of `{source}`", file.display(), notes.len(), docs.len())));
        }
        let mut prefixes = Vec::new();
        for (t, name) in ts.topics.iter().enumerate() {
            let mine: Vec<(usize, usize)> =
                docs.iter().zip(&notes).zip(&held).filter(|((_, n), h)| !**h && n.topic.as_deref() == Some(name.as_str())).map(|((d, _), _)| *d).collect();
            if mine.is_empty() {
                prefixes.push(None);
                continue;
            }
            let prefix = data.join(format!("{source}.topic-{t:02}"));
            syne_data::shards::export_megatron_docs(&shards, &mine, &prefix, prepared.tokenizer.vocab_size)?;
            prefixes.push(Some(prefix));
        }
        sets.push(syne_mix::megatron::TopicDatasets {
            source: source.clone(),
            prefixes,
            initial_ratios: ts.initial_ratios.clone(),
            adjustments: adjustments.remove(source).unwrap_or_default(),
        });
    }
    Ok(sets)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_paper_recipe_gives_a_valid_trainer_config_and_prepare_config() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../recipes/paper.toml");
        let recipe = Recipe::load(&path).unwrap();
        let out = tempfile::tempdir().unwrap();
        let cfg = train_config(&recipe, out.path()).unwrap();
        assert_eq!(cfg.seq_len, 8192);
        assert_eq!(cfg.validate_every_tokens, Some(5_000_000_000), "validation follows the topic interval");
        assert!(cfg.model.is_absolute() && cfg.model.ends_with("models/Meta-Llama-3-8B"));
        let p = prepare_config(&recipe).unwrap();
        assert_eq!(p.sources.len(), recipe.sources.len());
        // `syne run` owns train.data / train.out.
        let text = std::fs::read_to_string(&path).unwrap().replace("[train]\n", "[train]\nout = \"x\"\n");
        let bad = Recipe::parse(&text, &path).unwrap();
        assert!(train_config(&bad, out.path()).unwrap_err().to_string().contains("train.out"));
        // [eval] is checked before the run starts: flags as the command's, unknown keys refused.
        let opts = RunOptions { threads: 1, cpu: true, progress: false };
        let argv = crate::eval_argv(recipe.eval.as_ref().unwrap(), out.path(), &cfg.model, None, out.path(), &opts).unwrap();
        assert!(argv.windows(2).any(|w| w[0] == "--tasks" && w[1].starts_with("mmlu,ceval,cmmlu")), "{argv:?}");
        let table: toml::Table = toml::from_str("taks = [\"mmlu\"]").unwrap();
        let e = crate::eval_argv(&table, out.path(), &cfg.model, None, out.path(), &opts).unwrap_err().to_string();
        assert!(e.contains("[eval].taks: unknown key"), "{e}");
    }
}

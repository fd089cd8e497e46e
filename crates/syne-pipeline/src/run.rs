//! [`Pipeline`]: a whole continual pre-training run from one typed [`Recipe`], resumable step by
//! step.
//!
//! Each step is skipped when its output is already complete, so that a killed run started again
//! continues where it stopped:
//!
//! 0. **synthesise** (`[synth]`): synthetic QA that a source reads (resumable by its journal);
//! 1. **prepare** the sources into token shards (itself resumable);
//! 2. **plan** the tokens per stage and source, checked against the shards (`plan.json`);
//! 3. **annotate** the topic and curriculum sources ([`crate::annotate`]): topics, backbone
//!    perplexity, and the held-out documents that become the per-source (and per-topic)
//!    validation sets (`heldout/SOURCE.jsonl`);
//! 4. **train** on the mixture stream through every stage, validating at each re-weighting
//!    interval; checkpoints hold the mixture state, so a resumed run draws exactly the sequences
//!    the killed one would have (`train/`);
//! 5. **evaluate** the backbone and the trained model with `[eval]` (`eval/before`, `eval/after`);
//!
//! and write `manifest.json`: what each step consumed and produced, and the token account
//! (planned against consumed per stage, source, topic and curriculum bucket).

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use syne_data::io::{sha256_file, write_atomic};
use syne_data::prepare::{run_prepare_config, Manifest, PrepareConfig, PrepareOptions};
use syne_data::tokenizer::TextTokenizer;
use syne_data::DataError;
use syne_mix::plan::Plan;
use syne_mix::sampler::Schedule;
use syne_mix::stream::{DocNote, GroupMixing, MixtureStream, SourceInput, StreamSettings};
use syne_mix::topics::{ClassifierSettings, TopicModel};
use syne_model::llama::Llama;
use syne_recipe::records::mixture::Account;
use syne_recipe::records::run::{HeldoutLine, HeldoutSummary, NotesSummary, RunManifest, SharedItem, StepRecord, TrainSummary};
use syne_recipe::train::ValidationSet;
use syne_recipe::{PplTask, Recipe, TrainSettings};
use syne_train::trainer::{checkpoints, train_on};

use crate::annotate::{choose_heldout, choose_heldout_plain, source_shards, Annotator};
use crate::cache::{content_key, StepCache};
use crate::device::torch_device;
use crate::error::{run_err, Result};
use crate::eval::{evaluate, EvalTarget};
use crate::observer::{RunObserver, TrainProgress, Unit};
use crate::synth::synthesise;
use crate::topics::train_classifier;

/// How a run runs (none of it changes the results).
#[derive(Debug, Clone, Copy, Default)]
pub struct PipelineOptions {
    /// Threads for CPU math and data preparation (0: all cores).
    pub threads: usize,
    /// Stay on the CPU even when a GPU is present.
    pub cpu: bool,
    /// Let `syne prepare` draw its own progress bars.
    pub progress: bool,
}

/// A run of one recipe.
pub struct Pipeline {
    pub(crate) recipe: Recipe,
    pub(crate) options: PipelineOptions,
    /// Items shared with other runs (a sweep's), when given.
    cache: Option<StepCache>,
    /// What each step of this invocation cost (for the manifest).
    steps: RefCell<Vec<StepRecord>>,
}

/// What the plan step settles for training.
struct Planned {
    plan_path: PathBuf,
    schedule: Schedule,
    train: TrainSettings,
}

/// What steps 0–3 leave for training (or for the Megatron export).
pub(crate) struct Annotated {
    pub(crate) data_dir: PathBuf,
    pub(crate) manifest: Manifest,
    pub(crate) plan_path: PathBuf,
    pub(crate) schedule: Schedule,
    /// The trainer's settings for this run (total tokens, output, validation sets).
    pub(crate) train: TrainSettings,
    pub(crate) inputs: Vec<SourceInput>,
    pub(crate) notes: BTreeMap<String, NotesSummary>,
    pub(crate) heldout: BTreeMap<String, HeldoutSummary>,
    pub(crate) device: tch::Device,
}

impl Pipeline {
    /// A run of `recipe` (already resolved and validated: [`Recipe::load`]).
    pub fn new(recipe: Recipe, options: PipelineOptions) -> Pipeline {
        Pipeline { recipe, options, cache: None, steps: RefCell::new(Vec::new()) }
    }

    /// Share topic classifiers, notes and the backbone's evaluation with the other runs that use
    /// `cache` ([`crate::cache`]): what a sweep's variants have in common is computed once.
    pub fn with_cache(mut self, cache: StepCache) -> Pipeline {
        self.cache = Some(cache);
        self
    }

    /// Time `f` as step `step` of this invocation.
    fn timed<T>(&self, step: &str, f: impl FnOnce() -> Result<T>) -> Result<T> {
        let t = Instant::now();
        let out = f()?;
        self.steps.borrow_mut().push(StepRecord { step: step.to_string(), seconds: t.elapsed().as_secs_f64(), shared: None });
        Ok(out)
    }

    /// Fetch item `kind/key` of the shared cache into `dest` (when there is a cache, `dest` is
    /// missing and the cache holds it); recorded as step `step`. `Ok(true)`: `dest` came from it.
    fn fetch_shared(&self, step: &str, kind: &str, key: &str, dest: &Path) -> Result<bool> {
        let Some(cache) = &self.cache else { return Ok(false) };
        if dest.exists() {
            return Ok(false);
        }
        let t = Instant::now();
        let hit = cache.fetch(kind, key, dest)?;
        if hit {
            let shared = Some(SharedItem { key: key.to_string(), reused: true });
            self.steps.borrow_mut().push(StepRecord { step: step.to_string(), seconds: t.elapsed().as_secs_f64(), shared });
        }
        Ok(hit)
    }

    /// Store `src` as item `kind/key` of the shared cache (when there is one), computed in
    /// `seconds`; recorded as step `step`.
    fn store_shared(&self, step: &str, kind: &str, key: &str, src: &Path, seconds: f64) -> Result<()> {
        let Some(cache) = &self.cache else { return Ok(()) };
        cache.store(kind, key, src)?;
        let shared = Some(SharedItem { key: key.to_string(), reused: false });
        self.steps.borrow_mut().push(StepRecord { step: step.to_string(), seconds, shared });
        Ok(())
    }

    /// The recipe being run.
    pub fn recipe(&self) -> &Recipe {
        &self.recipe
    }

    /// Run every step not yet complete; returns the run's manifest (also `RUN/manifest.json`).
    pub fn run(&self, observer: &mut dyn RunObserver) -> Result<RunManifest> {
        let recipe = &self.recipe;
        let dir = recipe.run.output.clone();
        let path = recipe.path.clone();
        let train = recipe.train.clone().ok_or_else(|| run_err(&path, "`syne run` needs a [train] section"))?;
        if recipe.prepare.is_none() {
            return Err(run_err(&path, "`syne run` needs a [prepare] section"));
        }
        // Everything that can be checked without the data, before any of it is touched.
        let prepared = recipe.prepare.as_ref().is_some_and(|p| p.output.join("manifest.json").exists());
        crate::check::check(recipe)?.require_inputs(prepared)?;
        std::fs::create_dir_all(&dir).map_err(|e| DataError::io(&dir, "cannot create run folder", e))?;
        let copy = dir.join("recipe.toml");
        match self.run_folder_recipe()? {
            Some(_) => observer.say(&format!("resuming the run in {}", dir.display())),
            None => write_atomic(&copy, toml::to_string(recipe).expect("checked by run_folder_recipe").as_bytes())?,
        }

        let Annotated { data_dir, manifest, plan_path, schedule, train, inputs, notes, heldout, device } = self.through_annotate(&dir, train, observer)?;
        let (steps, tokens, account) = self.timed("train", || self.train(&data_dir, &manifest, schedule, inputs, &train, device, observer))?;
        let eval = self.evaluate(&dir, &train, &heldout, device, observer)?;

        let m = RunManifest {
            recipe: path,
            recipe_sha256: sha256_file(&copy)?,
            prepared: data_dir.clone(),
            prepared_manifest_sha256: sha256_file(&data_dir.join("manifest.json"))?,
            plan: plan_path,
            notes,
            heldout,
            train: TrainSummary { out: train.out.clone(), steps, tokens, final_model: train.out.join("final"), mixture_log: train.out.join("mixture.jsonl") },
            account,
            eval,
            steps: self.steps.take(),
        };
        write_atomic(&dir.join("manifest.json"), serde_json::to_string_pretty(&m).expect("manifest serialises").as_bytes())?;
        Ok(m)
    }

    /// The run folder's copy of its recipe (`RUN/recipe.toml`), when it has one. A run folder
    /// belongs to one recipe: resuming with another would mix two runs, so a copy that differs
    /// from this recipe is an error. The copy is the typed, resolved recipe, so a reformatted but
    /// equal file still resumes.
    pub(crate) fn run_folder_recipe(&self) -> Result<Option<PathBuf>> {
        let dir = &self.recipe.run.output;
        let copy = dir.join("recipe.toml");
        let recipe_text = toml::to_string(&self.recipe).map_err(|e| run_err(&self.recipe.path, format!("cannot write the recipe back: {e}")))?;
        match std::fs::read(&copy) {
            Ok(old) if old != recipe_text.as_bytes() => {
                Err(run_err(dir, format!("holds a run of a different recipe ({}); use another [run] output or remove it", copy.display())))
            }
            Ok(_) => Ok(Some(copy)),
            Err(_) => Ok(None),
        }
    }

    /// Steps 0–3, shared by the run and the Megatron export: synthesis, prepared shards, the
    /// plan and its schedule, the annotated mixture inputs and held-out sets.
    pub(crate) fn through_annotate(&self, dir: &Path, train: TrainSettings, observer: &mut dyn RunObserver) -> Result<Annotated> {
        self.timed("synth", || self.synthesise(observer))?;
        let (data_dir, manifest) = self.timed("prepare", || self.prepare(observer))?;
        let Planned { plan_path, schedule, mut train } = self.timed("plan", || self.plan(dir, train, observer))?;
        let device = torch_device(self.options.threads, self.options.cpu);
        let (inputs, notes, heldout) = self.timed("annotate", || self.annotate(dir, &data_dir, &manifest, &schedule, &mut train, device, observer))?;
        Ok(Annotated { data_dir, manifest, plan_path, schedule, train, inputs, notes, heldout, device })
    }

    /// The mixture stream of `schedule` over `inputs`, with the recipe's curriculum and topics.
    pub(crate) fn mixture_stream(&self, schedule: Schedule, inputs: Vec<SourceInput>, train: &TrainSettings) -> Result<MixtureStream> {
        let recipe = &self.recipe;
        let settings = StreamSettings {
            seq_len: train.seq_len,
            seed: train.seed,
            curriculum: recipe.curriculum.clone(),
            topics: recipe.topics.clone(),
            source_mixing: GroupMixing::from_recipe(recipe),
        };
        Ok(MixtureStream::new(schedule, inputs, settings)?)
    }

    /// Step 0: the synthesis a source reads.
    fn synthesise(&self, observer: &mut dyn RunObserver) -> Result<()> {
        let Some(cfg) = &self.recipe.synth else { return Ok(()) };
        let summary_path = cfg.output.join("summary.json");
        let done: Option<syne_synth::run::Summary> = std::fs::read(&summary_path).ok().and_then(|b| serde_json::from_slice(&b).ok());
        let summary = match done {
            Some(s) if s.requests == cfg.max_requests as u64 => {
                observer.say(&format!("synth: {} complete", cfg.output.display()));
                s
            }
            _ => synthesise(cfg, &self.recipe.path, observer)?,
        };
        observer.say(&format!("synth: {} of {} requests kept → {}", summary.kept, summary.requests, cfg.output.join("synthesis.jsonl").display()));
        if summary.kept == 0 {
            return Err(run_err(
                &self.recipe.path,
                format!(
                    "[synth] kept no item of {} requests (rejected: {:?}); raise [synth] max_requests or use a stronger model",
                    summary.requests, summary.rejected
                ),
            ));
        }
        Ok(())
    }

    /// Step 1: the token shards.
    fn prepare(&self, observer: &mut dyn RunObserver) -> Result<(PathBuf, Manifest)> {
        let cfg = PrepareConfig::from_recipe(&self.recipe)?;
        let data_dir = cfg.prepare.output.clone();
        let popts = PrepareOptions { threads: self.options.threads, strict: false, progress: self.options.progress, keep_work: false };
        let report = run_prepare_config(&cfg, self.recipe.base_dir(), &data_dir, &popts)?;
        observer.say(&if report.already_complete {
            format!("prepare: {} complete", data_dir.display())
        } else {
            format!("prepare: {} written in {:.1} s", data_dir.display(), report.seconds)
        });
        Ok((data_dir, report.manifest))
    }

    /// Step 2: the plan, its schedule of sequences, and the trainer's settings for this run.
    fn plan(&self, dir: &Path, mut train: TrainSettings, observer: &mut dyn RunObserver) -> Result<Planned> {
        let recipe = &self.recipe;
        let mut plan = Plan::new(recipe);
        plan.check_prepared(recipe)?;
        let plan_path = dir.join("plan.json");
        write_atomic(&plan_path, serde_json::to_string_pretty(&plan).expect("plan serialises").as_bytes())?;
        let schedule = Schedule::from_plan(&plan, train.seq_len as u64, train.global_batch_tokens / train.seq_len as u64)?;
        let total = schedule.sequences() * train.seq_len as u64;
        if train.total_tokens != 0 && train.total_tokens != total {
            return Err(run_err(
                &recipe.path,
                format!(
                    "train.total_tokens = {} but the stages hold {} sequences of {} tokens ({total}); leave it out",
                    train.total_tokens,
                    schedule.sequences(),
                    train.seq_len
                ),
            ));
        }
        train.total_tokens = total;
        train.out = dir.join("train");
        // The retention sets are validation domains: forgetting is seen as it happens.
        for r in recipe.eval.iter().flat_map(|e| e.retention.iter().map(move |r| (r, e.retention_docs))) {
            let (r, max_docs) = r;
            let max_chars = recipe.eval.as_ref().and_then(|e| e.ppl_max_chars);
            train.validation.push(ValidationSet {
                name: r.name.clone(),
                path: r.file.clone(),
                max_docs,
                text_field: "text".into(),
                topic_field: None,
                max_chars,
            });
        }
        if train.validate_every_tokens.is_none() {
            // Validation follows the mixers' intervals (their greatest common divisor when both
            // the topics and the sources are mixed): they read its losses.
            let intervals = recipe.topics.iter().map(|t| t.interval_tokens).chain(recipe.source_mixing.iter().map(|m| m.interval_tokens));
            train.validate_every_tokens = intervals.reduce(gcd);
        }
        observer.say(&format!(
            "plan: {} tokens in {} stages → {} sequences of {} tokens",
            plan.total_tokens,
            plan.stages.len(),
            schedule.sequences(),
            train.seq_len
        ));
        Ok(Planned { plan_path, schedule, train })
    }

    /// The classifier of taxonomy `name` of `[topics]`: the given one, or one trained from its
    /// seed file (once, saved in the run folder: `topics.model` for the default taxonomy,
    /// `topics-NAME.model` for the others).
    fn topic_model(&self, dir: &Path, name: &str, observer: &mut dyn RunObserver) -> Result<TopicModel> {
        let t = self.recipe.topics.as_ref().expect("called for recipes with [topics]");
        let tax = t.taxonomy(name).unwrap_or(syne_recipe::Taxonomy { classifier: None, seed: None });
        match (&tax.classifier, &tax.seed) {
            (Some(c), _) => Ok(TopicModel::load(c)?),
            (None, Some(seed)) => {
                let file = if name == syne_recipe::DEFAULT_TAXONOMY { "topics.model".to_string() } else { format!("topics-{name}.model") };
                let model_path = dir.join(file);
                let settings = ClassifierSettings::default();
                let key = match &self.cache {
                    Some(_) => content_key("classifier", &(sha256_file(seed)?, &settings)),
                    None => String::new(),
                };
                let step = format!("classifier:{name}");
                // The model is two files (header, weights): cached as two items, weights first so
                // that a header present means a whole model.
                let [header, weights] = TopicModel::files(&model_path);
                let shared = !model_path.exists()
                    && self.fetch_shared(&format!("{step}.weights"), "classifier", &format!("{key}.weights"), &weights)?
                    && self.fetch_shared(&step, "classifier", &key, &header)?;
                if !model_path.exists() && !shared {
                    let t = Instant::now();
                    let (model, n, _) = train_classifier(std::slice::from_ref(seed), "text", "topic", &settings)?;
                    model.save(&model_path)?;
                    observer.say(&format!("topics: `{name}` classifier trained on {n} labelled documents of {} → {}", seed.display(), model_path.display()));
                    self.store_shared(&format!("{step}.weights"), "classifier", &format!("{key}.weights"), &weights, 0.0)?;
                    self.store_shared(&step, "classifier", &key, &header, t.elapsed().as_secs_f64())?;
                }
                Ok(TopicModel::load(&model_path)?)
            }
            (None, None) => {
                Err(run_err(&self.recipe.path, "`topics`: topic sources are labelled by topic: give `classifier` (a trained model) or `seed` (labelled JSONL)"))
            }
        }
    }

    /// Step 3: notes, held-out sets (added to `train.validation`) and the mixture's inputs.
    #[allow(clippy::too_many_arguments)]
    #[allow(clippy::type_complexity)]
    fn annotate(
        &self,
        dir: &Path,
        data_dir: &Path,
        manifest: &Manifest,
        schedule: &Schedule,
        train: &mut TrainSettings,
        device: tch::Device,
        observer: &mut dyn RunObserver,
    ) -> Result<(Vec<SourceInput>, BTreeMap<String, NotesSummary>, BTreeMap<String, HeldoutSummary>)> {
        let recipe = &self.recipe;
        let tokenizer = &recipe.prepare.as_ref().expect("checked by run").tokenizer;
        let tok = TextTokenizer::load(tokenizer)?;
        let needs_topics: Vec<&String> = schedule.sources.iter().filter(|s| recipe.sources[*s].topics && recipe.topics.is_some()).collect();
        let curriculum_sources: Vec<&String> = schedule.sources.iter().filter(|s| recipe.sources[*s].curriculum && recipe.curriculum.is_some()).collect();
        // Only the perplexity orders read scores: `shuffled` and `none` skip the scoring pass.
        let scores_needed = recipe.curriculum.as_ref().is_some_and(|c| c.order.needs_scores());
        let needs_ppl: Vec<&String> = curriculum_sources.iter().copied().filter(|_| scores_needed).collect();
        // One classifier per taxonomy the topic sources name.
        let mut topic_models: BTreeMap<String, TopicModel> = BTreeMap::new();
        for name in &needs_topics {
            if let std::collections::btree_map::Entry::Vacant(e) = topic_models.entry(recipe.sources[*name].taxonomy().to_string()) {
                let model = self.topic_model(dir, e.key(), observer)?;
                e.insert(model);
            }
        }
        let default_score_tokens = recipe.curriculum.as_ref().map_or(256, |c| c.score_tokens);
        // Notes another run of the sweep computed for the same data, classifier and scorer.
        let mut notes_keys: BTreeMap<String, String> = BTreeMap::new();
        if self.cache.is_some() {
            let prepared = sha256_file(&data_dir.join("manifest.json"))?;
            let scorer_sha = if needs_ppl.is_empty() { None } else { Some(syne_eval::run::model_identity(&train.model)?.sha256) };
            let mut classifier_sha: BTreeMap<&str, String> = BTreeMap::new();
            for (tax, m) in &topic_models {
                classifier_sha.insert(tax.as_str(), m.fingerprint());
            }
            for name in needs_topics.iter().chain(needs_ppl.iter()) {
                let src = &recipe.sources[*name];
                let topics = needs_topics.contains(name).then(|| classifier_sha.get(src.taxonomy()).cloned()).flatten();
                let score = needs_ppl.contains(name).then(|| (scorer_sha.clone(), src.score_tokens.unwrap_or(default_score_tokens)));
                let key = content_key("notes", &(&prepared, name.as_str(), topics, score));
                let file = dir.join("notes").join(format!("{name}.jsonl"));
                self.fetch_shared(&format!("notes:{name}"), "notes", &key, &file)?;
                notes_keys.insert(name.to_string(), key);
            }
        }
        // The backbone scores only the documents no notes file holds yet.
        let unscored = needs_ppl.iter().any(|n| !dir.join("notes").join(format!("{n}.jsonl")).exists());
        let scorer = if unscored { Some(Llama::load(&train.model, device)?) } else { None };

        let heldout_per_topic = recipe.topics.as_ref().map_or(0, |t| t.heldout_docs);
        let (mut inputs, mut notes_summary, mut heldout_files) = (Vec::new(), BTreeMap::new(), BTreeMap::new());
        for name in &schedule.sources {
            let src = &recipe.sources[name];
            let shards = source_shards(data_dir, manifest, name)?;
            let (topics, curriculum) = (needs_topics.contains(&name), needs_ppl.contains(&name));
            let topic_model = topic_models.get(src.taxonomy()).filter(|_| topics);
            let annotator = Annotator { tok: &tok, topics: topic_model, scorer: scorer.as_ref() };
            let in_curriculum = curriculum_sources.contains(&name);
            let mut input =
                SourceInput { name: name.clone(), shards, topics: Vec::new(), notes: Vec::new(), curriculum: in_curriculum, max_epochs: src.max_epochs };
            let mut held = Vec::new();
            if topics || curriculum {
                let file = dir.join("notes").join(format!("{name}.jsonl"));
                std::fs::create_dir_all(file.parent().expect("notes folder")).map_err(|e| DataError::io(&file, "cannot create", e))?;
                let score_tokens = curriculum.then(|| src.score_tokens.unwrap_or(default_score_tokens));
                let fresh = !file.exists();
                let t = Instant::now();
                let notes = annotator.annotate(name, &input.shards, topics, score_tokens, &file, observer)?;
                if let (true, Some(key)) = (fresh, notes_keys.get(name)) {
                    self.store_shared(&format!("notes:{name}"), "notes", key, &file, t.elapsed().as_secs_f64())?;
                }
                let labels: Vec<String> = topic_model.map(|m| m.labels.clone()).unwrap_or_default();
                held = if topics {
                    choose_heldout(&notes, heldout_per_topic, train.seed)
                } else {
                    choose_heldout_plain(notes.len(), src.heldout_docs, train.seed)
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
                        sha256: sha256_file(&file)?,
                        docs: notes.len() as u64,
                        heldout_docs: held.iter().filter(|&&h| h).count() as u64,
                        scored_docs: notes.iter().filter(|n| n.perplexity.is_some()).count() as u64,
                        topics: topic_docs,
                    },
                );
                observer.say(&format!(
                    "annotate: {name}: {} documents{}{}",
                    notes.len(),
                    if topics { ", topics" } else { "" },
                    if curriculum { ", perplexity" } else { "" }
                ));
            } else if src.heldout_docs > 0 {
                let n = syne_data::shards::doc_refs(&input.shards).len();
                held = choose_heldout_plain(n, src.heldout_docs, train.seed);
                input.notes = held.iter().map(|&h| DocNote { topic: None, perplexity: None, heldout: h }).collect();
            }
            if held.iter().any(|&h| h) {
                // The held-out documents as text (with their topic, for topic sources): this
                // source's validation set, scored at every validation and by `[eval] heldout`.
                let docs = syne_data::shards::doc_refs(&input.shards);
                let mut lines = String::new();
                for (i, &(s, d)) in docs.iter().enumerate().filter(|(i, _)| held[*i]) {
                    let line = HeldoutLine {
                        text: annotator.text(&input.shards[s].doc(d).to_vec())?,
                        topic: input.notes[i].topic.map(|t| input.topics[t as usize].clone()),
                    };
                    lines += &serde_json::to_string(&line).expect("a held-out line serialises");
                    lines.push('\n');
                }
                let hfile = dir.join("heldout").join(format!("{name}.jsonl"));
                std::fs::create_dir_all(hfile.parent().expect("folder")).map_err(|e| DataError::io(&hfile, "cannot create", e))?;
                write_atomic(&hfile, lines.as_bytes())?;
                let topic_field = topics.then(|| "topic".to_string());
                let max_chars = recipe.eval.as_ref().and_then(|e| e.ppl_max_chars);
                train.validation.push(ValidationSet {
                    name: name.clone(),
                    path: hfile.clone(),
                    max_docs: usize::MAX,
                    text_field: "text".into(),
                    topic_field,
                    max_chars,
                });
                heldout_files
                    .insert(name.clone(), HeldoutSummary { sha256: sha256_file(&hfile)?, file: hfile, docs: held.iter().filter(|&&h| h).count() as u64 });
            }
            inputs.push(input);
        }
        Ok((inputs, notes_summary, heldout_files))
    }

    /// Step 4: training on the mixture; returns steps, tokens and the token account.
    #[allow(clippy::too_many_arguments)]
    fn train(
        &self,
        data_dir: &Path,
        manifest: &Manifest,
        schedule: Schedule,
        inputs: Vec<SourceInput>,
        train: &TrainSettings,
        device: tch::Device,
        observer: &mut dyn RunObserver,
    ) -> Result<(u64, u64, Account)> {
        let mut stream = self.mixture_stream(schedule, inputs, train)?;
        let vocab = syne_model::llama::LlamaConfig::read(&train.model)?.vocab_size;
        if manifest.tokenizer.vocab_size > vocab {
            return Err(run_err(data_dir, format!("the shards' tokenizer has {} entries, the model's vocabulary {vocab}", manifest.tokenizer.vocab_size)));
        }
        let out = &train.out;
        let account_path = out.join("account.json");
        let final_dir = out.join("final");
        if final_dir.join("config.json").exists() && account_path.exists() {
            observer.say(&format!("train: {} complete", out.display()));
            let account: Account = syne_recipe::records::read_json(&account_path)?;
            let tokens = account.position * train.seq_len as u64;
            return Ok((tokens / train.global_batch_tokens, tokens, account));
        }
        let resume = !checkpoints(out).is_empty();
        if let Some(last) = checkpoints(out).last() {
            observer.say(&format!("train: resuming from {}", last.display()));
        }
        let mut progress = TrainProgress(observer.progress("training", Some(train.total_tokens), Unit::Tokens));
        let state = train_on(train, resume, device, &mut progress, &mut stream)?;
        progress.0.finish();
        let account = stream.account();
        write_atomic(&account_path, serde_json::to_string_pretty(&account).expect("account serialises").as_bytes())?;
        observer.say(&format!("train: {} steps, {} tokens → {}", state.step, state.tokens, final_dir.display()));
        Ok((state.step, state.tokens, account))
    }

    /// Step 5: `[eval]` on the backbone and on the trained model.
    fn evaluate(
        &self,
        dir: &Path,
        train: &TrainSettings,
        heldout: &BTreeMap<String, HeldoutSummary>,
        device: tch::Device,
        observer: &mut dyn RunObserver,
    ) -> Result<BTreeMap<String, PathBuf>> {
        let mut eval = BTreeMap::new();
        let Some(settings) = &self.recipe.eval else { return Ok(eval) };
        let mut settings = settings.clone();
        if settings.heldout {
            // Every held-out set becomes a perplexity task named after its source.
            for (name, h) in heldout {
                if !settings.ppl.iter().any(|p| &p.name == name) {
                    settings.ppl.push(PplTask { name: name.clone(), file: h.file.clone() });
                }
            }
        }
        // The retention sets are perplexity tasks too (the recipe checked their names are free).
        settings.ppl.extend(settings.retention.iter().cloned());
        for (label, model) in [("before", train.model.clone()), ("after", train.out.join("final"))] {
            if label == "before" && !settings.before {
                continue;
            }
            let eval_out = dir.join("eval").join(label);
            // The backbone's evaluation is the same in every run with the same settings and files.
            let key = match (&self.cache, label) {
                (Some(_), "before") => {
                    let mut keyed = settings.clone();
                    for p in keyed.ppl.iter_mut().chain(keyed.retention.iter_mut()) {
                        p.file = PathBuf::from(sha256_file(&p.file)?);
                    }
                    // A tokenizer folder is its tokenizer.json.
                    let tokenizer =
                        train.tokenizer.as_deref().map(|t| sha256_file(&if t.is_dir() { t.join("tokenizer.json") } else { t.to_path_buf() })).transpose()?;
                    Some(content_key("eval-before", &(syne_eval::run::model_identity(&model)?.sha256, tokenizer, &keyed)))
                }
                _ => None,
            };
            let step = format!("eval-{label}");
            let shared = match &key {
                Some(k) if !eval_out.join("results.json").exists() => self.fetch_shared(&step, "eval-before", k, &eval_out)?,
                _ => false,
            };
            if !shared && !eval_out.join("results.json").exists() {
                let t = Instant::now();
                evaluate(&settings, &EvalTarget::Local { model, tokenizer: train.tokenizer.clone() }, &eval_out, device, observer)?;
                match &key {
                    Some(k) => self.store_shared(&step, "eval-before", k, &eval_out, t.elapsed().as_secs_f64())?,
                    None => self.steps.borrow_mut().push(StepRecord { step, seconds: t.elapsed().as_secs_f64(), shared: None }),
                }
            }
            observer.say(&format!("eval: {label} → {}", eval_out.join("results.json").display()));
            eval.insert(label.to_string(), eval_out.join("results.json"));
        }
        if settings.before {
            // The forgetting ledger: every metric against the backbone's, with its error.
            let heldout_names: Vec<String> = if settings.heldout { heldout.keys().cloned().collect() } else { Vec::new() };
            let retention: Vec<String> = settings.retention.iter().map(|r| r.name.clone()).collect();
            let eval_dir = dir.join("eval");
            let ledger = syne_eval::ledger::ledger(&eval_dir.join("before"), &eval_dir.join("after"), &heldout_names, &retention)?;
            write_atomic(&eval_dir.join("ledger.json"), serde_json::to_string_pretty(&ledger).expect("ledger serialises").as_bytes())?;
            write_atomic(&eval_dir.join("ledger.md"), ledger.markdown().as_bytes())?;
            let forgotten: Vec<String> = ledger.rows.iter().filter(|r| r.forgotten()).map(|r| format!("{} {}", r.key, r.metric)).collect();
            observer.say(&format!(
                "eval: ledger → {} ({} metrics, {} worse beyond 2σ{}{})",
                eval_dir.join("ledger.md").display(),
                ledger.rows.len(),
                forgotten.len(),
                if forgotten.is_empty() { "" } else { ": " },
                forgotten.join(", ")
            ));
            eval.insert("ledger".to_string(), eval_dir.join("ledger.json"));
        }
        Ok(eval)
    }
}

/// Greatest common divisor (Euclid).
fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

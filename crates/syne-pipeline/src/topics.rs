//! Topic work outside a run's annotation: training a classifier from labelled files (one
//! implementation, used by `syne topics train` and by a run with `topics.seed`), MMLU's
//! questions as seed data, LLM labelling with the paper's prompt, and the export of a finished
//! run's topic sources for Megatron-LM.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use syne_data::io::{expand_inputs, CorpusReader, FieldSpec, JsonlWriter, ResumableJsonl};
use syne_data::DataError;
use syne_eval::backend::{Backend, LocalBackend, Question};
use syne_eval::openai::OpenAiBackend;
use syne_mix::topics::{labelling_prompt, mmlu_topic, parse_topic, ClassifierSettings, TopicModel, CHINESE_TOPICS, ENGLISH_TOPICS};
use syne_model::llama::Llama;
use syne_recipe::records::mixture::MixtureLogLine;
use syne_recipe::records::read_jsonl;
use syne_recipe::records::run::{NoteLine, RunManifest};
use syne_recipe::Recipe;

use crate::annotate::{choose_heldout, read_notes, source_shards};
use crate::device::torch_device;
use crate::error::{run_err, Result};
use crate::observer::{RunObserver, Unit};

/// A classifier trained on the labelled records of `inputs` (`text_field`, `label_field`);
/// returns it with how many records had a label and how many had none (skipped, counted).
pub fn train_classifier(inputs: &[PathBuf], text_field: &str, label_field: &str, settings: &ClassifierSettings) -> Result<(TopicModel, usize, u64)> {
    let fields = FieldSpec { text: text_field.to_string(), id: None, topic: Some(label_field.to_string()), perplexity: None };
    let mut examples = Vec::new();
    let mut unlabelled = 0u64;
    for path in expand_inputs(inputs)? {
        for doc in CorpusReader::open(&path, &fields)? {
            let doc = doc?;
            match doc.topic {
                Some(t) => examples.push((doc.text, t)),
                None => unlabelled += 1,
            }
        }
    }
    let mut labels: Vec<String> = examples.iter().map(|(_, l)| l.clone()).collect();
    labels.sort();
    labels.dedup();
    let model = TopicModel::train(&examples, &labels, settings)?;
    Ok((model, examples.len(), unlabelled))
}

/// One line of the MMLU seed file.
#[derive(Serialize)]
struct SeedLine<'a> {
    text: &'a str,
    topic: &'a str,
    subject: &'a str,
}

/// MMLU's `split` questions labelled with their subject's topic, as JSONL at `out` (the topic
/// classifier's seed); returns how many.
pub fn write_mmlu_seed(data_dir: &Path, split: &str, out: &Path) -> Result<u64> {
    if let Some(parent) = out.parent() {
        std::fs::create_dir_all(parent).map_err(|e| DataError::io(parent, "cannot create", e))?;
    }
    let mut writer = JsonlWriter::create(out)?;
    for (subject, text) in syne_eval::olmo::mmlu_questions(data_dir, split)? {
        let topic = mmlu_topic(&subject).ok_or_else(|| run_err(data_dir, format!("MMLU subject `{subject}` has no topic")))?;
        writer.write(&SeedLine { text: &text, topic, subject: &subject })?;
    }
    let n = writer.records();
    writer.finish()?;
    Ok(n)
}

/// The labels a model may give.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Taxonomy {
    /// 11 English topics from MMLU's subject groups.
    En,
    /// 11 Chinese topics from CMMLU's subjects.
    Zh,
}

impl Taxonomy {
    /// Its topic names.
    pub fn topics(self) -> &'static [&'static str] {
        match self {
            Taxonomy::En => &ENGLISH_TOPICS,
            Taxonomy::Zh => &CHINESE_TOPICS,
        }
    }
}

/// How the model labels a document.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LabelMethod {
    /// The paper: the model writes the topic's name.
    Generate,
    /// The topic name the model gives the highest likelihood (never unparseable).
    Choose,
}

/// What `syne topics llm-label` labels, and with what.
pub struct LlmLabelRequest {
    /// Corpus files or folders.
    pub inputs: Vec<PathBuf>,
    /// Output JSONL (`text`, `topic`, `answer`).
    pub out: PathBuf,
    /// Documents sampled (uniformly, seeded).
    pub sample: usize,
    /// The sample's seed.
    pub seed: u64,
    /// The topics.
    pub taxonomy: Taxonomy,
    /// Generate or choose.
    pub method: LabelMethod,
    /// Characters of each document shown to the model.
    pub max_chars: usize,
    /// The records' text field.
    pub text_field: String,
    /// Prompts per request batch.
    pub batch: usize,
}

/// One line of an LLM-labelled file.
#[derive(Debug, Serialize, Deserialize)]
pub struct LabelLine {
    /// The document.
    pub text: String,
    /// The topic the answer names (`None`: none; counted).
    pub topic: Option<String>,
    /// The model's answer.
    pub answer: String,
}

/// What [`llm_label`] did.
#[derive(Debug)]
pub struct LabelSummary {
    /// Documents read.
    pub seen: u64,
    /// Documents labelled (the sample).
    pub labelled: usize,
    /// Documents per topic (`(no topic named)` for answers that name none).
    pub counts: BTreeMap<String, u64>,
}

/// Label a seeded sample of a corpus with an LLM and the paper's prompt; resumable.
pub fn llm_label(req: &LlmLabelRequest, model: LabelModel, observer: &mut dyn RunObserver) -> Result<LabelSummary> {
    let topics = req.taxonomy.topics();
    // A seeded uniform sample (reservoir), in input order.
    let fields = FieldSpec { text: req.text_field.clone(), id: Some("id".into()), topic: None, perplexity: None };
    let mut rng = req.seed;
    let (mut reservoir, mut seen, mut bad) = (Vec::<(u64, String)>::new(), 0u64, 0u64);
    for path in expand_inputs(&req.inputs)? {
        for doc in CorpusReader::open(&path, &fields)? {
            let doc = match doc {
                Ok(d) => d,
                Err(DataError::BadRecord { .. }) => {
                    bad += 1;
                    continue;
                }
                Err(e) => return Err(e.into()),
            };
            if reservoir.len() < req.sample {
                reservoir.push((seen, doc.text));
            } else {
                let j = syne_data::text::splitmix64(&mut rng) % (seen + 1);
                if (j as usize) < req.sample {
                    reservoir[j as usize] = (seen, doc.text);
                }
            }
            seen += 1;
        }
    }
    reservoir.sort_by_key(|(i, _)| *i);
    if bad > 0 {
        observer.say(&format!("skipped {bad} malformed records"));
    }
    let (mut writer, mut done): (ResumableJsonl, Vec<LabelLine>) = ResumableJsonl::open(&req.out)?;
    let local = match &model {
        LabelModel::Local { model, tokenizer, threads, cpu } => Some((
            Llama::load(model, torch_device(*threads, *cpu))?,
            syne_data::tokenizer::TextTokenizer::load(tokenizer.as_deref().unwrap_or(model))?,
            syne_eval::run::model_identity(model)?,
        )),
        LabelModel::Server(_) => None,
    };
    let local_backend = local.as_ref().map(|(lm, tok, identity)| LocalBackend {
        model: lm,
        tok,
        identity: identity.clone(),
        max_len: 2048,
        batch_tokens: 8192,
        generate_batch: req.batch.max(1),
    });
    let backend: &dyn Backend = match (&local_backend, &model) {
        (Some(b), _) => b,
        (None, LabelModel::Server(s)) => s,
        (None, LabelModel::Local { .. }) => unreachable!("a local model is loaded"),
    };
    let bar = observer.progress("labelling", Some(reservoir.len() as u64), Unit::Documents);
    bar.set_position(done.len() as u64);
    let choices: Vec<String> = topics.iter().map(|t| format!(" {t}")).collect();
    for chunk in reservoir[done.len().min(reservoir.len())..].chunks(req.batch.max(1)) {
        let prompts: Vec<String> = chunk.iter().map(|(_, t)| labelling_prompt(topics, t, req.max_chars)).collect();
        let answers: Vec<String> = match req.method {
            // No stop sequence: small models often open with a newline; the parser finds the
            // first topic named in the answer.
            LabelMethod::Generate => backend.generate(&prompts.iter().map(String::as_str).collect::<Vec<_>>(), &[], 24)?,
            LabelMethod::Choose => {
                let qs: Vec<Question<'_>> = prompts.iter().map(|p| Question { context: p, choices: &choices }).collect();
                backend
                    .score(&qs)?
                    .iter()
                    .map(|s| {
                        let best = (0..s.len()).max_by(|&x, &y| s[x].logprob.total_cmp(&s[y].logprob)).unwrap_or(0);
                        topics[best].to_string()
                    })
                    .collect()
            }
        };
        let lines: Vec<LabelLine> = chunk
            .iter()
            .zip(answers)
            .map(|((_, text), answer)| LabelLine { text: text.clone(), topic: parse_topic(&answer, topics).map(str::to_owned), answer })
            .collect();
        writer.append(&lines)?;
        bar.inc(lines.len() as u64);
        done.extend(lines);
    }
    bar.finish();
    writer.finish()?;
    let mut counts = BTreeMap::new();
    for l in &done {
        *counts.entry(l.topic.clone().unwrap_or_else(|| "(no topic named)".into())).or_default() += 1;
    }
    Ok(LabelSummary { seen, labelled: done.len(), counts })
}

/// The model that labels.
pub enum LabelModel {
    /// A local model (llama GGUF or HF folder).
    Local {
        /// The model.
        model: PathBuf,
        /// Its tokenizer, when not its own.
        tokenizer: Option<PathBuf>,
        /// CPU math threads (0: all cores).
        threads: usize,
        /// Stay on the CPU.
        cpu: bool,
    },
    /// A served model.
    Server(OpenAiBackend),
}

/// The topic sources of a finished `syne run` of `recipe` as Megatron datasets, one per topic
/// (its training documents, written to `OUT/data/SOURCE.topic-NN.bin/.idx`), with the topic
/// ratios the run started from and every adjustment it made: the input of
/// [`syne_mix::megatron::export_with_topics`].
pub fn topic_datasets(recipe: &Recipe, out: &Path) -> Result<Vec<syne_mix::megatron::TopicDatasets>> {
    let dir = &recipe.run.output;
    let mpath = dir.join("manifest.json");
    if !mpath.exists() {
        return Err(run_err(&mpath, "no finished `syne run` of this recipe (run it, e.g. on a surrogate model, first)"));
    }
    let m: RunManifest = syne_recipe::records::read_json(&mpath)?;
    let prepared = syne_data::prepare::Manifest::load(&m.prepared)?;
    let seed = recipe.train.as_ref().map_or(0, |t| t.seed);
    let heldout_per_topic = recipe.topics.as_ref().map_or(0, |t| t.heldout_docs);
    // Adjustments per source, from the run's re-weighting log.
    let mut adjustments: BTreeMap<String, Vec<(u64, Vec<f64>)>> = BTreeMap::new();
    for line in read_jsonl::<MixtureLogLine>(&m.train.mixture_log)? {
        for ev in line.event {
            if let Some(ratios) = ev.ratios_after() {
                adjustments.entry(ev.source().to_string()).or_default().push((line.tokens, ratios.to_vec()));
            }
        }
    }
    let data = out.join("data");
    std::fs::create_dir_all(&data).map_err(|e| DataError::io(&data, "cannot create", e))?;
    let mut sets = Vec::new();
    for (source, ts) in &m.account.topics {
        let file = &m.notes.get(source).ok_or_else(|| run_err(&mpath, format!("no notes for topic source `{source}`")))?.file;
        let notes: Vec<NoteLine> = read_notes(file)?;
        let held = choose_heldout(&notes, heldout_per_topic, seed);
        let shards = source_shards(&m.prepared, &prepared, source)?;
        let docs = syne_data::shards::doc_refs(&shards);
        if docs.len() != notes.len() {
            return Err(run_err(file, format!("{} notes for {} documents of `{source}`", notes.len(), docs.len())));
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

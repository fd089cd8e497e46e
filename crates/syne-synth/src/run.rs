//! A whole `syne synth` run: seeds → prompts → requests (skipping those the journal has) →
//! client → journal → parsing, filters, near-dedup, decontamination → `synthesis.jsonl` (ready
//! to be a recipe's `synthesis-en` source, with provenance) and `summary.json`.
//!
//! The output is assembled from the journal in seed order, so it depends only on the seeds,
//! the settings and the answers: a run killed at any moment and started again ends with the
//! same files as an uninterrupted one.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use syne_data::io::{CorpusReader, FieldSpec};

use crate::client::{self, ClientSettings, Counters, GenRequest, Outcome};
use crate::error::{Result, SynthError};
use crate::journal::{request_key, Journal};
use crate::quality::{check, near_duplicates, parse, Decontaminator, Reject};
use crate::seeds::{discipline, snippets};

const SCIENCE_PROMPT: &str = include_str!("../prompts/science.txt");
const CODE_PROMPT: &str = include_str!("../prompts/code.txt");

pub use syne_recipe::synth::{Backend, Decontamination, Generation, SynthSettings};

/// Read the `[synth]` table of a `syne synth` file: relative paths resolve against its folder;
/// the settings are checked.
pub fn load_settings(path: &Path) -> Result<SynthSettings> {
    let text = std::fs::read_to_string(path).map_err(|e| SynthError::Data(syne_data::DataError::io(path, "cannot read", e)))?;
    #[derive(Deserialize)]
    struct File {
        synth: SynthSettings,
    }
    let err = |key: &str, detail: String| SynthError::Config { path: path.to_path_buf(), key: key.into(), detail };
    let mut c =
        toml::from_str::<File>(&text).map_err(|e| err(&syne_recipe::error::key_at(&text, e.span().map_or(0, |s| s.start)), e.message().to_string()))?.synth;
    c.resolve(path.parent().unwrap_or(Path::new(".")));
    c.check().map_err(|(key, detail)| err(&key, detail))?;
    Ok(c)
}

/// One seed and the request made from it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Seed {
    /// `science` or `code`.
    pub kind: String,
    /// The page's discipline (`Code` for code seeds).
    pub discipline: String,
    /// Where the seed document is (`file:line`) and its id.
    pub doc: String,
    /// Its id field, when it has one.
    pub doc_id: Option<String>,
    /// Where the snippet starts in the page (characters).
    pub snippet_start: usize,
    /// The snippet (science) or the worked problem (code).
    pub snippet: String,
    /// Code seeds: the worked problems shown in the request (the seed's own first), by place.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub demonstrations: Vec<Demonstration>,
}

/// A worked problem shown to the generator as an in-context example.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Demonstration {
    /// Where it is (`file:line`) and its id.
    pub doc: String,
    /// Its id field, when it has one.
    pub doc_id: Option<String>,
    /// The worked problem's text.
    pub text: String,
}

/// What the run did.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// Seed documents read.
    pub seed_docs: u64,
    /// Documents no discipline claimed.
    pub non_scientific_docs: u64,
    /// Malformed seed records (counted, skipped).
    pub bad_records: u64,
    /// Requests of the run.
    pub requests: u64,
    /// Requests answered by the journal of an earlier run.
    pub resumed: u64,
    /// Requests answered.
    pub done: u64,
    /// Requests failed after their retries.
    pub failed: u64,
    /// Requests not sent because the token budget was spent.
    pub not_sent: u64,
    /// Retries made.
    pub retries: u64,
    /// Tokens generated.
    pub generated_tokens: u64,
    /// Answers rejected, per reason.
    pub rejected: BTreeMap<Reject, u64>,
    /// Items written to `synthesis.jsonl`.
    pub kept: u64,
    /// Items kept per discipline.
    pub kept_by_discipline: BTreeMap<String, u64>,
    /// Benchmark items decontaminated against.
    pub decontamination_items: u64,
    /// Their distinct n-grams.
    pub decontamination_ngrams: u64,
    /// The journal's torn last line (a crash) was cut off.
    pub journal_repaired_tail: bool,
}

fn template(path: &Option<PathBuf>, builtin: &str) -> Result<String> {
    match path {
        Some(p) => std::fs::read_to_string(p).map_err(|e| SynthError::Data(syne_data::DataError::io(p, "cannot read prompt template", e))),
        None => Ok(builtin.to_string()),
    }
}

/// A seed's prompt: `{discipline}`, `{snippet}` and, for code, `{demonstrations}` (the worked
/// problems, numbered) filled in.
pub fn render(template: &str, seed: &Seed) -> String {
    let demos: String = seed.demonstrations.iter().enumerate().map(|(i, d)| format!("Example {}:\n{}\n\n", i + 1, d.text.trim())).collect();
    template.replace("{discipline}", &seed.discipline).replace("{snippet}", &seed.snippet).replace("{demonstrations}", demos.trim_end())
}

/// The worked problems of code request `j` of `pool`: problem `j` itself, then `k - 1` others
/// drawn without repetition by a splitmix64 stream seeded with `seed` and `j` (fewer when the
/// pool is smaller).
fn demonstration_indices(j: usize, pool: usize, k: usize, seed: u64) -> Vec<usize> {
    let mut chosen = vec![j];
    let mut rng = seed ^ (j as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    while chosen.len() < k.min(pool) {
        let i = (syne_data::text::splitmix64(&mut rng) % pool as u64) as usize;
        if !chosen.contains(&i) {
            chosen.push(i);
        }
    }
    chosen
}

/// The seeds of a run, in order (science and code interleaved by `code_share`), at most
/// `max_requests`. Counts documents into `summary`.
pub fn seeds(cfg: &SynthSettings, summary: &mut Summary) -> Result<Vec<Seed>> {
    let fields = FieldSpec { text: cfg.text_field.clone(), id: Some("id".into()), topic: None, perplexity: None };
    let mut science = Vec::new();
    'files: for path in &cfg.inputs {
        for doc in CorpusReader::open(path, &fields)? {
            let doc = match doc {
                Ok(d) => d,
                Err(syne_data::DataError::BadRecord { .. }) => {
                    summary.bad_records += 1;
                    continue;
                }
                Err(e) => return Err(e.into()),
            };
            summary.seed_docs += 1;
            let Some((d, _)) = discipline(&doc.text, &cfg.seeds) else {
                summary.non_scientific_docs += 1;
                continue;
            };
            for (start, s) in snippets(&doc.text, cfg.seeds.snippet_chars, cfg.seeds.snippets_per_doc) {
                science.push(Seed {
                    kind: "science".into(),
                    discipline: d.clone(),
                    doc: doc.pos.to_string(),
                    doc_id: doc.id.clone(),
                    snippet_start: start,
                    snippet: s,
                    demonstrations: Vec::new(),
                });
            }
            if science.len() >= cfg.max_requests {
                break 'files;
            }
        }
    }
    let mut code = Vec::new();
    for path in &cfg.code_inputs {
        for doc in CorpusReader::open(path, &fields)? {
            match doc {
                Ok(doc) => code.push(Seed {
                    kind: "code".into(),
                    discipline: "Code".into(),
                    doc: doc.pos.to_string(),
                    doc_id: doc.id.clone(),
                    snippet_start: 0,
                    snippet: doc.text,
                    demonstrations: Vec::new(),
                }),
                Err(syne_data::DataError::BadRecord { .. }) => summary.bad_records += 1,
                Err(e) => return Err(e.into()),
            }
            if code.len() >= cfg.max_requests {
                break;
            }
        }
    }
    // In-context learning: every code request shows `code_demonstrations` worked problems.
    let demos: Vec<Vec<Demonstration>> = (0..code.len())
        .map(|j| {
            demonstration_indices(j, code.len(), cfg.code_demonstrations, cfg.seed)
                .into_iter()
                .map(|i| Demonstration { doc: code[i].doc.clone(), doc_id: code[i].doc_id.clone(), text: code[i].snippet.clone() })
                .collect()
        })
        .collect();
    for (seed, d) in code.iter_mut().zip(demos) {
        seed.demonstrations = d;
    }
    let share = if code.is_empty() {
        0.0
    } else if science.is_empty() {
        1.0
    } else {
        cfg.code_share
    };
    let (mut s, mut c) = (science.into_iter(), code.into_iter());
    let mut out = Vec::new();
    let mut i = 0u64;
    while out.len() < cfg.max_requests {
        let want_code = ((i + 1) as f64 * share).floor() > (i as f64 * share).floor();
        let next = if want_code { c.next().or_else(|| s.next()) } else { s.next().or_else(|| c.next()) };
        match next {
            Some(x) => out.push(x),
            None => break,
        }
        i += 1;
    }
    Ok(out)
}

/// Run (or continue) the synthesis. `decontamination` holds the benchmark test items' texts;
/// `progress` is called with the live counters about every 100 ms; `local` answers instead of
/// the configured servers (the `local_model` of the backend, loaded by the caller).
pub fn run(
    cfg: &SynthSettings,
    decontamination: &[String],
    progress: &(dyn Fn(&Counters, u64) + Sync),
    local: Option<&dyn client::Generator>,
) -> Result<Summary> {
    let mut summary = Summary::default();
    let seeds = seeds(cfg, &mut summary)?;
    let (science_t, code_t) = (template(&cfg.science_prompt, SCIENCE_PROMPT)?, template(&cfg.code_prompt, CODE_PROMPT)?);
    let g = &cfg.generation;
    let requests: Vec<(String, String)> = seeds
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let prompt = render(if s.kind == "code" { &code_t } else { &science_t }, s);
            let seed = cfg.seed.wrapping_add(i as u64);
            (request_key(&cfg.backend.model, &prompt, g.max_tokens, g.temperature, g.top_p, Some(seed)), prompt)
        })
        .collect();
    std::fs::create_dir_all(&cfg.output).map_err(|e| SynthError::Data(syne_data::DataError::io(&cfg.output, "cannot create", e)))?;
    let mut journal = Journal::open(&cfg.output.join("journal.jsonl"))?;
    summary.journal_repaired_tail = journal.repaired_tail;
    summary.requests = requests.len() as u64;
    summary.resumed = requests.iter().filter(|(k, _)| journal.contains(k)).count() as u64;
    let api_key = match &cfg.backend.api_key_env {
        Some(var) => Some(std::env::var(var).map_err(|_| SynthError::Request(format!("synth.backend.api_key_env: the variable {var} is not set")))?),
        None => None,
    };
    let settings = ClientSettings {
        endpoints: cfg.backend.endpoints.clone(),
        model: cfg.backend.model.clone(),
        chat: cfg.backend.chat,
        api_key,
        concurrency: cfg.backend.concurrency,
        timeout: Duration::from_secs_f64(cfg.backend.timeout_s.max(0.001)),
        max_retries: cfg.backend.max_retries,
        backoff_base: Duration::from_millis(cfg.backend.backoff_base_ms),
        backoff_max: Duration::from_millis(cfg.backend.backoff_max_ms),
    };
    let counters = Counters::default();
    // Tokens of earlier runs count against the budget.
    let earlier_tokens: u64 = requests
        .iter()
        .filter_map(|(k, _)| journal.get(k))
        .map(|c| if let Outcome::Done { completion_tokens, .. } = c.outcome { completion_tokens } else { 0 })
        .sum();
    let budget = cfg.max_tokens_total;
    let todo: Vec<usize> = (0..requests.len()).filter(|&i| !journal.contains(&requests[i].0)).collect();
    let pending = todo.into_iter().map(|i| GenRequest {
        key: requests[i].0.clone(),
        prompt: requests[i].1.clone(),
        max_tokens: g.max_tokens,
        temperature: g.temperature,
        top_p: g.top_p,
        seed: Some(cfg.seed.wrapping_add(i as u64)),
    });
    let counters_ref = &counters;
    let pending = pending.take_while(move |_| budget == 0 || earlier_tokens + counters_ref.tokens.load(Ordering::Relaxed) < budget);
    let mut write_error = None;
    let mut last = std::time::Instant::now();
    let http = client::HttpGenerator::new(&settings);
    let generator: &dyn client::Generator = match local {
        Some(g) => g,
        None if settings.endpoints.is_empty() => {
            return Err(SynthError::Request("synth.backend: `local_model` is set but no local generator was given".into()))
        }
        None => &http,
    };
    client::run_with(generator, &settings, pending, &counters, |c| {
        if write_error.is_none() {
            if let Err(e) = journal.append(c) {
                write_error = Some(e);
            }
        }
        if last.elapsed() > Duration::from_millis(100) {
            progress(&counters, summary.resumed);
            last = std::time::Instant::now();
        }
    })
    .map_err(SynthError::Request)?;
    if let Some(e) = write_error {
        return Err(e);
    }
    journal.sync()?;
    progress(&counters, summary.resumed);

    // Assemble the output in seed order.
    let decon = Decontaminator::new(decontamination.iter().map(String::as_str), cfg.filters.decontamination_ngram.max(1));
    summary.decontamination_items = decon.items as u64;
    summary.decontamination_ngrams = decon.ngrams() as u64;
    let mut candidates = Vec::new();
    for (seed, (key, prompt)) in seeds.iter().zip(&requests) {
        let Some(c) = journal.get(key) else {
            summary.not_sent += 1;
            continue;
        };
        summary.retries += u64::from(c.attempts.saturating_sub(1));
        match &c.outcome {
            Outcome::Failed { .. } => {
                summary.failed += 1;
                *summary.rejected.entry(Reject::RequestFailed).or_default() += 1;
            }
            Outcome::Done { text, finish_reason, completion_tokens, .. } => {
                summary.done += 1;
                summary.generated_tokens += completion_tokens;
                match parse(text, finish_reason.as_deref()).and_then(|p| check(&p, &cfg.filters).map(|_| p)) {
                    Err(r) => *summary.rejected.entry(r).or_default() += 1,
                    Ok(pair) => candidates.push((seed, key, prompt, pair, finish_reason.clone(), *completion_tokens)),
                }
            }
        }
    }
    let dup = if cfg.filters.dedup { near_duplicates(&candidates.iter().map(|c| c.3.text()).collect::<Vec<_>>()) } else { vec![false; candidates.len()] };
    let mut lines = String::new();
    for (cand, is_dup) in candidates.iter().zip(dup) {
        let (seed, key, prompt, pair, finish, tokens) = cand;
        let text = pair.text();
        if is_dup {
            *summary.rejected.entry(Reject::NearDuplicate).or_default() += 1;
            continue;
        }
        if cfg.filters.decontamination_ngram > 0 && decon.contaminated(&text) {
            *summary.rejected.entry(Reject::Contaminated).or_default() += 1;
            continue;
        }
        summary.kept += 1;
        *summary.kept_by_discipline.entry(seed.discipline.clone()).or_default() += 1;
        let record = serde_json::json!({
            "text": text,
            "problem": pair.problem,
            "solution": pair.solution,
            "discipline": seed.discipline,
            "kind": seed.kind,
            "seed": {"doc": seed.doc, "id": seed.doc_id, "snippet_start": seed.snippet_start, "snippet": seed.snippet,
                     "demonstrations": seed.demonstrations.iter().map(|d| serde_json::json!({"doc": d.doc, "id": d.doc_id})).collect::<Vec<_>>()},
            "model": cfg.backend.model,
            "request_key": key,
            "prompt_sha256": hex::encode(Sha256::digest(prompt.as_bytes())),
            "params": {"max_tokens": g.max_tokens, "temperature": g.temperature, "top_p": g.top_p},
            "finish_reason": finish,
            "completion_tokens": tokens,
        });
        lines += &record.to_string();
        lines.push('\n');
    }
    syne_data::io::write_atomic(&cfg.output.join("synthesis.jsonl"), lines.as_bytes())?;
    syne_data::io::write_atomic(&cfg.output.join("summary.json"), serde_json::to_string_pretty(&summary).expect("json").as_bytes())?;
    Ok(summary)
}

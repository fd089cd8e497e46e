//! The small single-purpose commands: completing prompts, exporting a prepared folder to
//! Megatron-LM, labelling a corpus with a trained classifier, reading prompt files.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use syne_data::io::{expand_inputs, CorpusReader, FieldSpec, JsonlWriter};
use syne_data::prepare::Manifest;
use syne_data::shards::{export_megatron, ShardReader};
use syne_data::tokenizer::{BosPolicy, TextTokenizer};
use syne_data::DataError;
use syne_mix::topics::TopicModel;
use syne_model::generate::{generate_at, SamplingConfig};
use syne_model::llama::Llama;

use crate::error::{PipelineError, Result};
use crate::observer::{RunObserver, Unit};

/// One completed prompt (a line of `syne generate`'s output).
#[derive(Debug, Clone, Serialize)]
pub struct CompletionLine {
    /// The prompt.
    pub prompt: String,
    /// What the model wrote.
    pub completion: String,
    /// Tokens generated.
    pub tokens: usize,
    /// Why it stopped.
    pub finish: syne_model::generate::FinishReason,
}

/// Complete `prompts` with `model`, `batch` at a time (`bos`: BOS first as the model wants
/// it). Each prompt keeps the sampling stream of its position in the whole list.
pub fn complete(
    model: &Llama,
    tok: &TextTokenizer,
    prompts: &[String],
    batch: usize,
    bos: bool,
    cfg: &SamplingConfig,
    observer: &mut dyn RunObserver,
) -> Result<Vec<CompletionLine>> {
    cfg.validate().map_err(PipelineError::Request)?;
    let policy = if bos { BosPolicy::Model } else { BosPolicy::Never };
    let bar = observer.progress("generating", Some(prompts.len() as u64), Unit::Requests);
    let mut lines = Vec::new();
    for (chunk_no, chunk) in prompts.chunks(batch.max(1)).enumerate() {
        let ids = chunk.iter().map(|p| tok.encode_with_bos(p, policy)).collect::<Result<Vec<_>, _>>()?;
        let first = (chunk_no * batch.max(1)) as u64;
        for (p, c) in chunk.iter().zip(generate_at(model, tok, &ids, first, cfg)?) {
            lines.push(CompletionLine { prompt: p.clone(), completion: c.text, tokens: c.tokens.len(), finish: c.finish });
        }
        bar.inc(chunk.len() as u64);
    }
    bar.finish();
    Ok(lines)
}

/// Prompts of a JSONL file: the `prompt` field, else `text`.
pub fn read_prompts(path: &Path) -> Result<Vec<String>> {
    #[derive(Deserialize)]
    struct PromptLine {
        prompt: Option<String>,
        text: Option<String>,
    }
    let text = std::fs::read_to_string(path).map_err(|e| DataError::io(path, "cannot read prompts", e))?;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let at = |detail: String| PipelineError::Line { path: path.to_path_buf(), line: i + 1, detail };
        let v: PromptLine = serde_json::from_str(line).map_err(|e| at(format!("invalid: {e}")))?;
        out.push(v.prompt.or(v.text).ok_or_else(|| at("no string field `prompt` or `text`".into()))?);
    }
    Ok(out)
}

/// One Megatron dataset written by [`export_megatron_folder`].
pub struct MegatronDataset {
    /// `PREFIX` of `PREFIX.bin` / `PREFIX.idx`.
    pub prefix: PathBuf,
    /// Documents.
    pub documents: u64,
    /// Tokens.
    pub tokens: u64,
}

/// A prepared folder as Megatron-LM indexed datasets, one per source and language.
pub fn export_megatron_folder(dir: &Path, out: &Path) -> Result<Vec<MegatronDataset>> {
    let m = Manifest::load(dir)?;
    std::fs::create_dir_all(out).map_err(|e| DataError::io(out, "cannot create directory", e))?;
    let mut groups: BTreeMap<(String, String), Vec<ShardReader>> = BTreeMap::new();
    for s in &m.shards {
        groups.entry((s.source.clone(), s.lang.clone())).or_default().push(ShardReader::open(&dir.join("shards").join(&s.name))?);
    }
    let mut written = Vec::new();
    for ((source, lang), readers) in groups {
        let prefix = out.join(format!("{source}.{lang}"));
        let (documents, tokens) = export_megatron(&readers, &prefix, m.tokenizer.vocab_size)?;
        written.push(MegatronDataset { prefix, documents, tokens });
    }
    Ok(written)
}

/// One line of a classifier-labelled file.
#[derive(Serialize)]
struct LabelledLine<'a> {
    id: Option<&'a str>,
    text: &'a str,
    topic: Option<&'a str>,
    topic_prob: Option<f32>,
}

/// Label every record of `inputs` with `model` into JSONL `out` (`id`, `text`, `topic`,
/// `topic_prob`); returns how many.
pub fn label_corpus(model: &TopicModel, inputs: &[PathBuf], text_field: &str, out: &Path, observer: &mut dyn RunObserver) -> Result<u64> {
    let fields = FieldSpec { text: text_field.to_string(), id: Some("id".into()), topic: None, perplexity: None };
    let mut writer = JsonlWriter::create(out)?;
    let bar = observer.progress("labelling", None, Unit::Documents);
    let mut n = 0u64;
    for path in expand_inputs(inputs)? {
        for doc in CorpusReader::open(&path, &fields)? {
            let doc = doc?;
            let predicted = model.predict(&doc.text);
            writer.write(&LabelledLine {
                id: doc.id.as_deref(),
                text: &doc.text,
                topic: predicted.as_ref().map(|p| p.0),
                topic_prob: predicted.map(|p| p.1),
            })?;
            n += 1;
            bar.inc(1);
        }
    }
    writer.finish()?;
    bar.finish();
    Ok(n)
}

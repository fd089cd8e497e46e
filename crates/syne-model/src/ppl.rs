//! `syne ppl`: the perplexity of every document of corpus files, as JSONL, resumably.

use std::path::{Path, PathBuf};

use serde::Serialize;
use syne_data::io::{CorpusReader, FieldSpec, ResumableJsonl};
use syne_data::tokenizer::TextTokenizer;
use syne_data::DataError;

use crate::error::Result;
use crate::llama::Llama;
use crate::score::score_documents;

/// Settings of a scoring run.
#[derive(Debug, Clone)]
pub struct PplOptions {
    /// Window length in tokens (longer documents are scored window by window).
    pub max_len: usize,
    /// Padded tokens per forward pass.
    pub batch_tokens: usize,
    /// Documents read, tokenized and scored together (also the resume granularity).
    pub chunk_docs: usize,
    /// The records' text and id fields.
    pub fields: FieldSpec,
}

impl Default for PplOptions {
    fn default() -> Self {
        PplOptions { max_len: 1024, batch_tokens: 4096, chunk_docs: 256, fields: FieldSpec::default() }
    }
}

/// One output line.
#[derive(Debug, Serialize)]
struct PplRecord<'a> {
    id: Option<&'a str>,
    pos: String,
    tokens: usize,
    predicted: usize,
    mean_nll: Option<f64>,
    ppl: Option<f64>,
}

/// Summary of a run.
#[derive(Debug, Clone, Default)]
pub struct PplSummary {
    /// Documents scored in total.
    pub docs: u64,
    /// Of them, read back from an earlier, killed run.
    pub resumed_docs: u64,
    /// Malformed records (counted, skipped).
    pub bad_records: u64,
    /// Tokens of the scored documents.
    pub tokens: u64,
    /// Tokens predicted (each document's tokens after its first).
    pub predicted: u64,
    /// Sum of the predicted tokens' negative log-likelihoods (nats).
    pub nll_sum: f64,
}

/// Score every document of `inputs` and write one JSON line per document (bad records are
/// skipped, counted, and get no line) to `out`. The output is built in `OUT.partial`, flushed
/// per chunk; a killed run restarted with the same arguments continues after the last complete
/// line, and the file is renamed to `out` when everything is scored.
pub fn ppl_files(model: &Llama, tok: &TextTokenizer, inputs: &[PathBuf], out: &Path, opts: &PplOptions, progress: &dyn Fn(u64)) -> Result<PplSummary> {
    // Resume: the complete records of an earlier partial output are kept (syne-data's one
    // resumable JSONL writer); only their number matters here.
    let (mut w, kept): (ResumableJsonl, Vec<serde::de::IgnoredAny>) = ResumableJsonl::open(out)?;
    let done = kept.len() as u64;
    let mut summary = PplSummary { resumed_docs: done, ..Default::default() };
    let mut index = 0u64; // good documents seen, in input order
    for path in inputs {
        let mut reader = CorpusReader::open(path, &opts.fields)?;
        let mut ended = false;
        while !ended {
            let mut docs = Vec::with_capacity(opts.chunk_docs);
            while docs.len() < opts.chunk_docs {
                match reader.next() {
                    None => {
                        ended = true;
                        break;
                    }
                    Some(Ok(d)) => {
                        if index >= done {
                            docs.push(d);
                        }
                        index += 1;
                    }
                    Some(Err(DataError::BadRecord { .. })) => summary.bad_records += 1,
                    Some(Err(e)) => return Err(e.into()),
                }
            }
            if docs.is_empty() {
                continue;
            }
            let ids = tok.encode_batch(&docs.iter().map(|d| d.text.as_str()).collect::<Vec<_>>())?;
            let scores = score_documents(model, &ids, opts.max_len, opts.batch_tokens);
            let mut records = Vec::with_capacity(docs.len());
            for ((d, ids), s) in docs.iter().zip(&ids).zip(&scores) {
                let rec = PplRecord {
                    id: d.id.as_deref(),
                    pos: d.pos.to_string(),
                    tokens: ids.len(),
                    predicted: s.predicted,
                    mean_nll: (s.predicted > 0).then(|| s.mean_nll()),
                    ppl: (s.predicted > 0).then(|| s.perplexity()),
                };
                records.push(rec);
                summary.tokens += ids.len() as u64;
                summary.predicted += s.predicted as u64;
                summary.nll_sum += s.nll_sum;
            }
            w.append(&records)?;
            summary.docs += docs.len() as u64;
            progress(done + summary.docs);
        }
    }
    w.finish()?;
    Ok(summary)
}

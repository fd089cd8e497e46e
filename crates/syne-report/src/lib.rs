//! The report of a finished `syne run` (the demo's last step): `RUN/report/report.md` and a
//! self-contained `RUN/report/report.html` (plots embedded as SVG data URIs, no network), with
//! the plots also written as `RUN/report/plots/*.svg`.
//!
//! What it shows, all read from the run folder:
//! - training loss over tokens (`train/metrics.jsonl`);
//! - per-domain (per held-out source) validation loss over tokens (`train/validation.jsonl`);
//! - per-topic validation loss and the topic weights the mixture used over time
//!   (`train/validation.jsonl`, `train/mixture.jsonl`, the account's initial ratios);
//! - tokens per source per stage, planned against consumed (`manifest.json`'s account);
//! - the curriculum's perplexity profile (the backbone's perplexity of every document, sorted,
//!   with the bucket boundaries, from `notes/SOURCE.jsonl` and the account);
//! - the before/after benchmark table with deltas (`eval/before`, `eval/after` results.json).
//!
//! [`sweep`] writes the report of a whole sweep (`syne sweep report`) in the same style.
//!
//! ```no_run
//! let report = syne_report::write_report(std::path::Path::new("runs/demo")).unwrap();
//! println!("{}", report.html.display());
//! ```

#![warn(missing_docs)]

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use syne_recipe::records::eval::RunResults;
use syne_recipe::records::mixture::MixtureLogLine;
use syne_recipe::records::run::{NoteLine, RunManifest};
use syne_recipe::records::train::{StepMetrics, ValidationReport};

mod plot;
pub mod sweep;

/// What can go wrong reading a run or writing its report.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// A file cannot be read or written.
    #[error("{}: {action}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// What was being done.
        action: &'static str,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A run file that is not what `syne run` writes: a missing or mistyped field, named with
    /// the file and line (syne-recipe's record types are the schema).
    #[error(transparent)]
    Record(#[from] syne_recipe::RecipeError),
    /// A plot cannot be drawn.
    #[error("plot `{plot}`: {detail}")]
    Plot {
        /// The plot.
        plot: String,
        /// What went wrong.
        detail: String,
    },
}

type Result<T> = std::result::Result<T, ReportError>;

/// The files written.
#[derive(Debug, Clone)]
pub struct Report {
    /// `report/report.md`.
    pub markdown: PathBuf,
    /// `report/report.html` (self-contained).
    pub html: PathBuf,
    /// `report/plots/*.svg`.
    pub plots: Vec<PathBuf>,
}

/// Every record of a JSONL file (a missing file is empty: a run may not have validated yet).
fn read_jsonl<T: serde::de::DeserializeOwned>(path: &Path) -> Result<Vec<T>> {
    if !path.exists() {
        return Ok(Vec::new());
    }
    Ok(syne_recipe::records::read_jsonl(path)?)
}

/// One block of the report, rendered to Markdown and to HTML.
enum Block {
    Heading(String),
    Text(String),
    Table { header: Vec<String>, rows: Vec<Vec<String>> },
    Plot { title: String, file: String, svg: String },
}

fn md_cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// `**bold**` and `` `code` `` of the Markdown text, as HTML.
fn html_inline(s: &str) -> String {
    let mut out = String::new();
    for (i, part) in html_escape(s).split('`').enumerate() {
        if i % 2 == 1 {
            out += &format!("<code>{part}</code>");
        } else {
            for (j, p) in part.split("**").enumerate() {
                out += &if j % 2 == 1 { format!("<strong>{p}</strong>") } else { p.to_string() };
            }
        }
    }
    out
}

fn render_markdown(title: &str, blocks: &[Block]) -> String {
    let mut md = format!("# {title}\n\n");
    for b in blocks {
        match b {
            Block::Heading(h) => md += &format!("## {h}\n\n"),
            Block::Text(t) => md += &format!("{t}\n\n"),
            Block::Table { header, rows } => {
                md += &format!("| {} |\n|{}\n", header.iter().map(|h| md_cell(h)).collect::<Vec<_>>().join(" | "), "---|".repeat(header.len()));
                for r in rows {
                    md += &format!("| {} |\n", r.iter().map(|c| md_cell(c)).collect::<Vec<_>>().join(" | "));
                }
                md.push('\n');
            }
            Block::Plot { title, file, .. } => md += &format!("![{title}]({file})\n\n"),
        }
    }
    md
}

fn render_html(title: &str, blocks: &[Block]) -> String {
    let mut h = String::new();
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>{t}</title>\n<style>\n\
         body {{ font-family: sans-serif; max-width: 1000px; margin: 2em auto; padding: 0 1em; color: #222; }}\n\
         table {{ border-collapse: collapse; margin: 1em 0; font-size: 0.9em; display: block; overflow-x: auto; }}\n\
         th, td {{ border: 1px solid #bbb; padding: 0.25em 0.6em; text-align: right; }}\n\
         th:first-child, td:first-child {{ text-align: left; }}\n\
         img {{ max-width: 100%; border: 1px solid #ddd; margin: 0.5em 0; }}\n\
         code {{ background: #f3f3f3; padding: 0 0.2em; }}\n</style>\n</head>\n<body>\n<h1>{t}</h1>\n",
        t = html_escape(title)
    );
    for b in blocks {
        match b {
            Block::Heading(t) => h += &format!("<h2>{}</h2>\n", html_escape(t)),
            Block::Text(t) => h += &format!("<p>{}</p>\n", html_inline(t)),
            Block::Table { header, rows } => {
                h += "<table>\n<tr>";
                for c in header {
                    h += &format!("<th>{}</th>", html_inline(c));
                }
                h += "</tr>\n";
                for r in rows {
                    h += "<tr>";
                    for c in r {
                        h += &format!("<td>{}</td>", html_inline(c));
                    }
                    h += "</tr>\n";
                }
                h += "</table>\n";
            }
            Block::Plot { title, svg, .. } => {
                let data = base64::engine::general_purpose::STANDARD.encode(svg.as_bytes());
                h += &format!("<figure><img alt=\"{t}\" title=\"{t}\" src=\"data:image/svg+xml;base64,{data}\"></figure>\n", t = html_escape(title));
            }
        }
    }
    // Marks, once the page has loaded, how many of its images decoded (read by the browser test).
    h += "<script>\nwindow.addEventListener('load', () => {\n  const imgs = Array.from(document.images);\n  \
          document.body.dataset.images = imgs.length;\n  \
          document.body.dataset.imagesLoaded = imgs.filter(i => i.complete && i.naturalWidth > 0).length;\n});\n</script>\n</body>\n</html>\n";
    h
}

fn fmt_tokens(t: f64) -> String {
    let t = t.round() as u64;
    let s = t.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// The run's data the report draws on.
struct Run {
    dir: PathBuf,
    manifest: RunManifest,
    metrics: Vec<(f64, f64)>,
    /// tokens, domain → (loss, perplexity, bits per char, topic → loss)
    validations: Vec<(f64, BTreeMap<String, DomainPoint>)>,
    /// source → its topics and their ratios over time.
    topic_weights: BTreeMap<String, TopicWeights>,
}

/// A topic source's topic names and `(tokens, ratios)` points, the initial ratios at 0 first.
type TopicWeights = (Vec<String>, Vec<(f64, Vec<f64>)>);

struct DomainPoint {
    docs: u64,
    loss: f64,
    perplexity: f64,
    bits_per_char: f64,
    topics: BTreeMap<String, f64>,
}

impl Run {
    fn load(dir: &Path) -> Result<Run> {
        let manifest: RunManifest = syne_recipe::records::read_json(&dir.join("manifest.json"))?;
        let metrics = read_jsonl::<StepMetrics>(&dir.join("train/metrics.jsonl"))?.iter().map(|m| (m.tokens as f64, m.loss)).collect();
        let validations = read_jsonl::<ValidationReport>(&dir.join("train/validation.jsonl"))?
            .into_iter()
            .map(|v| {
                let domains = v
                    .domains
                    .into_iter()
                    .map(|d| {
                        let topics = d.topics.iter().map(|(k, l)| (k.clone(), l.loss)).collect();
                        (d.name, DomainPoint { docs: d.docs as u64, loss: d.loss, perplexity: d.perplexity, bits_per_char: d.bits_per_char, topics })
                    })
                    .collect();
                (v.tokens as f64, domains)
            })
            .collect();
        let mut topic_weights: BTreeMap<String, TopicWeights> =
            manifest.account.mixtures().map(|(source, t)| (source, (t.topics.clone(), vec![(0.0, t.initial_ratios.clone())]))).collect();
        for line in read_jsonl::<MixtureLogLine>(&dir.join("train/mixture.jsonl"))? {
            for ev in line.event {
                if let (Some(ratios), Some((_, series))) = (ev.ratios_after(), topic_weights.get_mut(ev.source())) {
                    series.push((line.tokens as f64, ratios.to_vec()));
                }
            }
        }
        Ok(Run { dir: dir.to_path_buf(), manifest, metrics, validations, topic_weights })
    }
}

/// One task of a results.json: how many items it scored and its metric values.
struct TaskScores {
    n: Option<u64>,
    metrics: BTreeMap<String, f64>,
}

/// Every task of one results.json, by name.
fn eval_results(path: &Path) -> Result<BTreeMap<String, TaskScores>> {
    let r = RunResults::load(path)?;
    Ok(r.results
        .into_iter()
        .map(|(task, r)| (task, TaskScores { n: Some(r.n as u64), metrics: r.metrics.into_iter().map(|(k, m)| (k, m.value)).collect() }))
        .collect())
}

/// Write the report of the run in `dir`.
pub fn write_report(dir: &Path) -> Result<Report> {
    let run = Run::load(dir)?;
    let out = dir.join("report");
    let plots_dir = out.join("plots");
    std::fs::create_dir_all(&plots_dir).map_err(|source| ReportError::Io { path: plots_dir.clone(), action: "cannot create", source })?;
    let mut blocks = Vec::new();
    let name = run.manifest.recipe.display().to_string();
    let tokens = run.manifest.train.tokens as f64;
    let steps = run.manifest.train.steps;
    blocks.push(Block::Text(format!(
        "Recipe `{name}` (sha256 `{}`): {} training tokens in {steps} steps. Every figure below is read from the run folder `{}`.",
        &run.manifest.recipe_sha256[..run.manifest.recipe_sha256.len().min(12)],
        fmt_tokens(tokens),
        run.dir.display()
    )));

    evaluation_section(&run, &mut blocks)?;
    training_section(&run, &mut blocks)?;
    topics_section(&run, &mut blocks)?;
    tokens_section(&run, &mut blocks)?;
    curriculum_section(&run, &mut blocks)?;

    let title = format!("syne run report: {}", run.dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default());
    write_blocks(&out, "report", &title, &blocks)
}

/// Write `blocks` under `out`: every plot as `out/plots/*.svg`, then `out/STEM.md` and the
/// self-contained `out/STEM.html`.
fn write_blocks(out: &Path, stem: &str, title: &str, blocks: &[Block]) -> Result<Report> {
    let mut files = Vec::new();
    for b in blocks {
        if let Block::Plot { file, svg, .. } = b {
            let p = out.join(file);
            write_atomic(&p, svg.as_bytes())?;
            files.push(p);
        }
    }
    let markdown = out.join(format!("{stem}.md"));
    write_atomic(&markdown, render_markdown(title, blocks).as_bytes())?;
    let html = out.join(format!("{stem}.html"));
    write_atomic(&html, render_html(title, blocks).as_bytes())?;
    Ok(Report { markdown, html, plots: files })
}

fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension(format!("{}.partial", path.extension().and_then(|e| e.to_str()).unwrap_or("")));
    std::fs::write(&tmp, bytes).map_err(|source| ReportError::Io { path: tmp.clone(), action: "cannot write", source })?;
    std::fs::rename(&tmp, path).map_err(|source| ReportError::Io { path: path.to_path_buf(), action: "cannot rename", source })
}

/// Metrics where lower is better (their delta reads as a gain when negative).
fn lower_is_better(metric: &str) -> bool {
    ["perplexity", "bits_per_byte", "bits_per_char", "loss"].iter().any(|m| metric.contains(m))
}

fn evaluation_section(run: &Run, blocks: &mut Vec<Block>) -> Result<()> {
    let before = run.manifest.eval.get("before").cloned();
    let after = run.manifest.eval.get("after").cloned();
    blocks.push(Block::Heading("Before and after".into()));
    let mut rows = Vec::new();
    // Held-out text: the trainer's first validation scores the backbone, its last the trained
    // model, on documents of each source that training never read.
    if let (Some((_, first)), Some((_, last))) = (run.validations.first(), run.validations.last().filter(|_| run.validations.len() > 1)) {
        for (name, p) in last {
            let Some(b) = first.get(name) else { continue };
            for (m, x, y) in [("perplexity", b.perplexity, p.perplexity), ("bits_per_char", b.bits_per_char, p.bits_per_char)] {
                let d = y - x;
                let verdict = if d < 0.0 {
                    "better"
                } else if d > 0.0 {
                    "worse"
                } else {
                    "unchanged"
                };
                rows.push(vec![
                    format!("held-out {name}"),
                    m.to_string(),
                    p.docs.to_string(),
                    format!("{x:.4}"),
                    format!("{y:.4}"),
                    format!("{d:+.4} ({:+.1}%)", 100.0 * d / x),
                    verdict.to_string(),
                ]);
            }
        }
    }
    let (Some(a), Some(b)) = (&after, &before) else {
        blocks.push(Block::Text("The run has no before/after benchmark evaluation (its recipe has no `[eval]`, or `before = false`).".into()));
        if !rows.is_empty() {
            blocks.push(Block::Table { header: ["task", "metric", "n", "before", "after", "delta", "verdict"].map(String::from).to_vec(), rows });
        }
        return Ok(());
    };
    let (before, after) = (eval_results(b)?, eval_results(a)?);
    for (task, scores) in &after {
        let Some(bm) = before.get(task).map(|b| &b.metrics) else { continue };
        let (n, am) = (scores.n, &scores.metrics);
        let chosen: Vec<&str> = ["acc", "acc_norm", "pass@1", "exact_match", "perplexity", "bits_per_char", "bits_per_byte"]
            .into_iter()
            .filter(|m| am.contains_key(*m) && bm.contains_key(*m))
            .collect();
        for m in chosen {
            let (x, y) = (bm[m], am[m]);
            let d = y - x;
            let better = if lower_is_better(m) { d < 0.0 } else { d > 0.0 };
            let rel = if x != 0.0 { format!(" ({:+.1}%)", 100.0 * d / x) } else { String::new() };
            // Accuracy noise: the binomial standard error of the difference of two runs on n items.
            let noise = n.filter(|_| !lower_is_better(m)).map(|n| 2.0 * (2.0 * x.clamp(0.0, 1.0) * (1.0 - x.clamp(0.0, 1.0)) / n.max(1) as f64).sqrt());
            let verdict = match noise {
                Some(z) if d.abs() <= z => "within noise".to_string(),
                _ if d == 0.0 => "unchanged".into(),
                _ => if better { "better" } else { "worse" }.to_string(),
            };
            rows.push(vec![
                task.clone(),
                m.to_string(),
                n.map(|n| n.to_string()).unwrap_or_default(),
                format!("{x:.4}"),
                format!("{y:.4}"),
                format!("{d:+.4}{rel}"),
                verdict,
            ]);
        }
    }
    blocks.push(Block::Text(
        "Backbone (before) against the trained model (after), on the same items. Held-out rows: perplexity and bits per character over documents of each source that training never read (n: documents), from the trainer's first and last validation. Accuracy deltas within two binomial standard errors of the difference are marked as noise.".into(),
    ));
    blocks.push(Block::Table { header: ["task", "metric", "n", "before", "after", "delta", "verdict"].map(String::from).to_vec(), rows });
    Ok(())
}

fn training_section(run: &Run, blocks: &mut Vec<Block>) -> Result<()> {
    blocks.push(Block::Heading("Training".into()));
    if run.metrics.is_empty() {
        blocks.push(Block::Text("No training steps were logged.".into()));
        return Ok(());
    }
    let first = run.metrics.first().map(|m| m.1).unwrap_or(0.0);
    let last = run.metrics.last().map(|m| m.1).unwrap_or(0.0);
    blocks.push(Block::Text(format!("Training loss {first:.4} at the first step, {last:.4} at the last ({} steps logged).", run.metrics.len())));
    let svg = plot::lines("Training loss", "tokens", "loss (nats/token)", &[("train".into(), run.metrics.clone())])?;
    push_plot(blocks, "Training loss over tokens", "training-loss", svg);
    if !run.validations.is_empty() {
        let mut domains: BTreeMap<String, Vec<(f64, f64)>> = BTreeMap::new();
        for (t, ds) in &run.validations {
            for (name, p) in ds {
                domains.entry(name.clone()).or_default().push((*t, p.loss));
            }
        }
        let series: Vec<(String, Vec<(f64, f64)>)> = domains.into_iter().collect();
        let svg = plot::lines("Validation loss per domain (held-out documents of each source)", "tokens", "loss (nats/token)", &series)?;
        push_plot(blocks, "Per-domain validation loss over tokens", "validation-loss", svg);
        let (t0, first) = &run.validations[0];
        let (t1, last) = run.validations.last().expect("one");
        let rows = last
            .iter()
            .filter_map(|(name, p)| {
                let b = first.get(name)?;
                Some(vec![
                    name.clone(),
                    format!("{:.3}", b.perplexity),
                    format!("{:.3}", p.perplexity),
                    format!("{:.4}", b.bits_per_char),
                    format!("{:.4}", p.bits_per_char),
                    format!("{:+.1}%", 100.0 * (p.perplexity - b.perplexity) / b.perplexity),
                ])
            })
            .collect();
        blocks.push(Block::Text(format!("Validation at {} tokens against {} tokens:", fmt_tokens(*t0), fmt_tokens(*t1))));
        blocks.push(Block::Table {
            header: ["domain", "perplexity before", "after", "bits/char before", "after", "perplexity change"].map(String::from).to_vec(),
            rows,
        });
    }
    Ok(())
}

fn push_plot(blocks: &mut Vec<Block>, title: &str, stem: &str, svg: String) {
    let file = format!("plots/{stem}.svg");
    blocks.push(Block::Plot { title: title.into(), file, svg });
}

fn topics_section(run: &Run, blocks: &mut Vec<Block>) -> Result<()> {
    if run.topic_weights.is_empty() {
        return Ok(());
    }
    blocks.push(Block::Heading("Topic and source mixture".into()));
    for (source, (names, series)) in &run.topic_weights {
        // A group mixed over its sources (`group:NAME`) moves from each source's held-out loss.
        let group = source.strip_prefix("group:");
        let (item, whole, stem) = match group {
            Some(g) => ("source", format!("group {g}"), format!("group-{g}")),
            None => ("topic", source.clone(), source.clone()),
        };
        let mut per_topic: BTreeMap<String, Vec<(f64, f64)>> = BTreeMap::new();
        for (t, ds) in &run.validations {
            match group {
                Some(_) => names.iter().filter_map(|n| ds.get(n).map(|d| (n, d.loss))).for_each(|(n, l)| per_topic.entry(n.clone()).or_default().push((*t, l))),
                None => {
                    if let Some(d) = ds.get(source) {
                        for (topic, loss) in &d.topics {
                            per_topic.entry(topic.clone()).or_default().push((*t, *loss));
                        }
                    }
                }
            }
        }
        if !per_topic.is_empty() {
            let s: Vec<(String, Vec<(f64, f64)>)> = per_topic.into_iter().collect();
            let svg = plot::lines(&format!("{whole}: validation loss per {item}"), "tokens", "loss (nats/token)", &s)?;
            push_plot(blocks, &format!("{whole}: per-{item} validation loss over tokens"), &format!("{item}-loss-{stem}"), svg);
        }
        // Ratios hold from one adjustment to the next: draw them as steps.
        let end = run.metrics.last().map_or(0.0, |m| m.0);
        let mut weights: Vec<(String, Vec<(f64, f64)>)> = names.iter().map(|n| (n.clone(), Vec::new())).collect();
        for (k, (t, ratios)) in series.iter().enumerate() {
            let next = series.get(k + 1).map_or(end.max(*t), |n| n.0);
            for (i, r) in ratios.iter().enumerate() {
                if let Some(w) = weights.get_mut(i) {
                    w.1.push((*t, *r));
                    w.1.push((next, *r));
                }
            }
        }
        let share = if group.is_some() { "share of the group's tokens" } else { "share of the source's tokens" };
        let svg = plot::lines(&format!("{whole}: {item} weights"), "tokens", share, &weights)?;
        push_plot(blocks, &format!("{whole}: {item} weights over time"), &format!("{item}-weights-{stem}"), svg);
        let rows = names
            .iter()
            .enumerate()
            .map(|(i, n)| {
                let first = series.first().and_then(|s| s.1.get(i)).copied().unwrap_or(0.0);
                let last = series.last().and_then(|s| s.1.get(i)).copied().unwrap_or(0.0);
                vec![n.clone(), format!("{first:.4}"), format!("{last:.4}")]
            })
            .collect();
        let start = if group.is_some() { "the group's [mixture] shares" } else { "the topics' token shares" };
        blocks.push(Block::Text(format!("{whole}: {} re-weightings; the weights at the start ({start}) and after the last:", series.len() - 1)));
        blocks.push(Block::Table { header: [item, "initial", "final"].map(String::from).to_vec(), rows });
    }
    Ok(())
}

fn tokens_section(run: &Run, blocks: &mut Vec<Block>) -> Result<()> {
    let stages = &run.manifest.account.stages;
    if stages.is_empty() {
        return Ok(());
    }
    blocks.push(Block::Heading("Tokens per source and stage".into()));
    let mut rows = Vec::new();
    let mut bars = Vec::new();
    for st in stages {
        for (source, &planned) in &st.planned_tokens {
            let consumed = st.consumed.get(source).map_or(0, |c| c.tokens);
            rows.push(vec![
                st.name.clone(),
                source.clone(),
                fmt_tokens(planned as f64),
                fmt_tokens(consumed as f64),
                if planned == consumed { "=".into() } else { format!("{:+}", consumed as i64 - planned as i64) },
            ]);
            bars.push((format!("{} / {source}", st.name), planned as f64, consumed as f64));
        }
    }
    let svg = plot::planned_consumed("Tokens per source and stage: planned and consumed", &bars)?;
    push_plot(blocks, "Tokens per source and stage, planned against consumed", "tokens-per-source", svg);
    blocks.push(Block::Table { header: ["stage", "source", "planned", "consumed", "difference"].map(String::from).to_vec(), rows });
    Ok(())
}

fn curriculum_section(run: &Run, blocks: &mut Vec<Block>) -> Result<()> {
    let curriculum: Vec<_> = run.manifest.account.sources.iter().filter(|(_, s)| !s.buckets.is_empty()).collect();
    if curriculum.is_empty() {
        return Ok(());
    }
    blocks.push(Block::Heading("Perplexity curriculum".into()));
    for (source, acc) in curriculum {
        let Some(notes) = run.manifest.notes.get(source) else { continue };
        let mut ppl: Vec<f64> = read_jsonl::<NoteLine>(&notes.file)?.iter().filter_map(|n| n.perplexity).collect();
        ppl.sort_by(f64::total_cmp);
        let n = ppl.len().max(1) as f64;
        let profile: Vec<(f64, f64)> = ppl.iter().enumerate().map(|(i, p)| (100.0 * (i as f64 + 0.5) / n, *p)).collect();
        let bounds: Vec<f64> = acc.buckets.iter().map(|b| b.max_perplexity).collect();
        let svg = plot::profile(&format!("{source}: the backbone's perplexity of each document, sorted (bucket edges dashed)"), &profile, &bounds)?;
        push_plot(blocks, &format!("{source}: curriculum perplexity profile"), &format!("curriculum-{source}"), svg);
        let stages = &run.manifest.account.stages;
        let mut header: Vec<String> = ["bucket", "documents", "perplexity from", "to"].map(String::from).to_vec();
        header.extend(stages.iter().map(|s| format!("tokens in {}", s.name)));
        let rows = acc
            .buckets
            .iter()
            .map(|b| {
                let mut r = vec![b.bucket.to_string(), b.docs.to_string(), format!("{:.2}", b.min_perplexity), format!("{:.2}", b.max_perplexity)];
                for s in stages {
                    let t = s.consumed.get(source).and_then(|c| c.buckets.get(&b.bucket.to_string())).copied().unwrap_or(0);
                    r.push(fmt_tokens(t as f64));
                }
                r
            })
            .collect();
        blocks.push(Block::Text(format!(
            "{source}: {} documents scored; buckets are perplexity quantiles, read easiest first. When a run reads only part of the source it takes that share of every bucket, in order, so the tokens below span all difficulties.",
            ppl.len()
        )));
        blocks.push(Block::Table { header, rows });
    }
    Ok(())
}

#[cfg(test)]
mod tests;

//! The report of a sweep (`syne sweep report DIR`): `DIR/report/sweep.md`, a self-contained
//! `DIR/report/sweep.html` (same style and browser check as the run report) and
//! `DIR/report/sweep.json`, from the sweep's [`SweepSummary`].
//!
//! - one row per variant: every held-out and retention set's bits per character and every
//!   benchmark's accuracy, as the mean over seeds with the change against the control and its
//!   two-standard-error verdict (▲ better, ▼ worse, · within noise);
//! - the forgetting ledger of each variant: every metric against the base model;
//! - per axis, the change against the control of each headline metric along the axis's values;
//! - the topic weights each online mixer used over training;
//! - what the sweep cost: all runs against their own training and evaluation.

use std::path::Path;

use syne_recipe::records::eval::LedgerKind;
use syne_recipe::records::sweep::{Comparison, MetricSummary, NoiseBasis, SweepSummary, Verdict};

use crate::{plot, push_plot, write_atomic, write_blocks, Block, Report, ReportError, Result};

/// The metrics a variant's row shows: bits per character of the held-out and retention sets,
/// accuracy of the benchmarks.
fn headline(m: &MetricSummary) -> bool {
    match m.kind {
        LedgerKind::Heldout | LedgerKind::Retention => m.key.ends_with(" bits_per_char"),
        LedgerKind::Benchmark => m.key.ends_with(" acc"),
    }
}

fn mark(v: Verdict) -> &'static str {
    match v {
        Verdict::Better => "▲",
        Verdict::Worse => "▼",
        Verdict::WithinNoise => "·",
        Verdict::Unknown => "?",
    }
}

fn fmt_cmp(c: &Comparison) -> String {
    match c.stderr {
        Some(se) => format!("{:+.4} ± {se:.4} {}", c.delta, mark(c.verdict)),
        None => format!("{:+.4} {}", c.delta, mark(c.verdict)),
    }
}

fn noise_note(s: &SweepSummary) -> &'static str {
    let bases: Vec<NoiseBasis> = s.variants.iter().flat_map(|v| v.metrics.iter().filter_map(|m| m.vs_control.as_ref().map(|c| c.noise))).collect();
    if bases.contains(&NoiseBasis::ItemsOnly) {
        "Errors are the paired evaluation errors of one seed: they do not hold training noise (run the control at two or more seeds for that)."
    } else if bases.contains(&NoiseBasis::ItemsAndControlSeeds) {
        "Errors combine the paired evaluation error of one seed with the control's spread across its seeds (training noise)."
    } else {
        "Errors are the spread of the per-seed differences (training and evaluation noise together)."
    }
}

/// Write the report of the sweep in `dir` from its summary.
pub fn write_sweep_report(dir: &Path, s: &SweepSummary) -> Result<Report> {
    let out = dir.join("report");
    let plots_dir = out.join("plots");
    std::fs::create_dir_all(&plots_dir).map_err(|source| ReportError::Io { path: plots_dir.clone(), action: "cannot create", source })?;
    let mut blocks = Vec::new();
    let seeds: usize = s.variants.iter().map(|v| v.seeds.len()).sum();
    blocks.push(Block::Text(format!(
        "Sweep `{}`: {} variants, {seeds} runs, control `{}`. Every figure is read from the runs' forgetting ledgers (`RUN/eval/ledger.json`) under `{}`. \
         Changes against the control are paired (same questions, same documents); ▲ better and ▼ worse beyond two standard errors, · within them. {}",
        s.name,
        s.variants.len(),
        s.control,
        dir.display(),
        noise_note(s)
    )));

    // The results table: one row per variant.
    let keys: Vec<String> = s.variants.first().map(|v| v.metrics.iter().filter(|m| headline(m)).map(|m| m.key.clone()).collect()).unwrap_or_default();
    blocks.push(Block::Heading("Variants against the control".into()));
    let mut header = vec!["variant".to_string(), "seeds".into(), "tokens/s".into()];
    header.extend(keys.iter().cloned());
    let mut rows = Vec::new();
    for v in &s.variants {
        let mut row = vec![v.name.clone(), v.seeds.len().to_string(), format!("{:.0}", v.tokens_per_s)];
        for k in &keys {
            row.push(match v.metrics.iter().find(|m| &m.key == k) {
                Some(m) => match &m.vs_control {
                    Some(c) => format!("{:.4} ({})", m.value, fmt_cmp(c)),
                    None => format!("{:.4}", m.value),
                },
                None => "–".into(),
            });
        }
        rows.push(row);
    }
    blocks.push(Block::Table { header, rows });

    // Forgetting: every headline metric against the base model.
    blocks.push(Block::Heading("Against the base model (forgetting ledger)".into()));
    blocks.push(Block::Text(
        "Each run's trained model against the backbone on the same items: held-out sets of the sources it trains on, retention sets it never trains on (a rise in bits per character there is forgetting), and the benchmarks.".into(),
    ));
    let mut header = vec!["variant".to_string()];
    header.extend(keys.iter().map(|k| format!("{k} (base)")));
    let mut rows = Vec::new();
    for v in &s.variants {
        let mut row = vec![v.name.clone()];
        for k in &keys {
            row.push(v.metrics.iter().find(|m| &m.key == k).map_or("–".into(), |m| format!("{:.4} → {:.4} ({})", m.base, m.value, fmt_cmp(&m.vs_base))));
        }
        rows.push(row);
    }
    blocks.push(Block::Table { header, rows });

    // Along each axis.
    for (axis, labels) in &s.axes {
        let on_axis: Vec<_> = s.variants.iter().filter(|v| v.axes.iter().any(|(a, _)| a == axis)).collect();
        if on_axis.is_empty() {
            continue;
        }
        blocks.push(Block::Heading(format!("Axis `{axis}`")));
        let legend: Vec<String> = labels.iter().enumerate().map(|(i, l)| format!("{} = `{l}`", i + 1)).collect();
        blocks.push(Block::Text(format!("x: {}; 0 is the control.", legend.join(", "))));
        for (group, wanted) in [("bits per character (lower is better)", true), ("accuracy (higher is better)", false)] {
            let series: Vec<(String, Vec<(f64, f64)>)> = keys
                .iter()
                .filter(|k| k.ends_with(" bits_per_char") == wanted)
                .map(|k| {
                    let pts = on_axis
                        .iter()
                        .filter_map(|v| {
                            let label = &v.axes.iter().find(|(a, _)| a == axis)?.1;
                            let x = labels.iter().position(|l| l == label)? as f64 + 1.0;
                            let c = v.metrics.iter().find(|m| &m.key == k)?.vs_control.as_ref()?;
                            Some((x, c.delta))
                        })
                        .collect::<Vec<(f64, f64)>>();
                    // The control sits at 0, by definition no change.
                    (k.clone(), std::iter::once((0.0, 0.0)).chain(pts).collect())
                })
                .filter(|(_, p): &(String, Vec<(f64, f64)>)| p.len() > 1)
                .collect();
            if series.is_empty() {
                continue;
            }
            let stem = format!("axis-{}-{}", axis.replace(|c: char| !c.is_ascii_alphanumeric(), "_"), if wanted { "bpc" } else { "acc" });
            let title = format!("{axis}: change against the control, {group}");
            push_plot(&mut blocks, &title, &stem, plot::category_lines(&title, "axis value (0: the control)", "change", &series, labels.len())?);
        }
    }

    // Topic weights.
    let moving: Vec<_> = s.variants.iter().flat_map(|v| v.trajectories.iter().map(move |t| (v, t))).filter(|(_, t)| t.points.len() > 1).collect();
    if !moving.is_empty() {
        blocks.push(Block::Heading("Topic weights over training".into()));
        for (v, t) in moving {
            let series: Vec<(String, Vec<(f64, f64)>)> =
                t.topics.iter().enumerate().map(|(i, topic)| (topic.clone(), t.points.iter().map(|(x, r)| (*x as f64, r[i])).collect())).collect();
            // A group mixed over its sources carries `group:NAME`: its weights are its sources'.
            let title = match t.source.strip_prefix("group:") {
                Some(g) => format!("{}: group {g} source weights", v.name),
                None => format!("{}: {} topic weights", v.name, t.source),
            };
            let file_safe = |x: &str| x.replace(|c: char| !c.is_ascii_alphanumeric() && c != '-', "_");
            let stem = format!("topics-{}-{}", file_safe(&v.name), file_safe(&t.source));
            push_plot(&mut blocks, &title, &stem, plot::lines(&title, "tokens trained", "weight", &series)?);
        }
    }

    // Cost.
    let c = &s.cost;
    blocks.push(Block::Heading("Cost".into()));
    blocks.push(Block::Table {
        header: vec!["runs".into(), "wall s".into(), "train s".into(), "eval after s".into(), "shared s".into(), "overhead factor".into()],
        rows: vec![vec![
            c.cells.to_string(),
            format!("{:.0}", c.total_seconds),
            format!("{:.0}", c.train_seconds),
            format!("{:.0}", c.eval_after_seconds),
            format!("{:.0}", c.shared_seconds),
            format!("{:.3}", c.overhead_factor),
        ]],
    });
    blocks.push(Block::Text(
        "Overhead factor: (all runs − the work shared once) / (every run's own training + evaluation of the trained model); 1.0 means the sweep costs nothing beyond its runs' own training and evaluation."
            .into(),
    ));

    let report = write_blocks(&out, "sweep", &format!("syne sweep report: {}", s.name), &blocks)?;
    write_atomic(&out.join("sweep.json"), serde_json::to_string_pretty(s).expect("summary serialises").as_bytes())?;
    Ok(report)
}

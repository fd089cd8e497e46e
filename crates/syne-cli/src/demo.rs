//! `syne demo`: the embedded default. The demo recipe (`recipes/demo.toml`) run end to end by
//! `syne run` (synthesis, prepare, plan, annotate, train, evaluate before and after), then its
//! report (`syne report`).
//!
//! Options scale the demo without editing the recipe: `--tokens` (the stages, the learning-rate
//! schedule and the intervals in proportion), `--synth-requests`, `--eval-limit` and `--docs`
//! (the first N documents of every corpus file). A scaled demo is a different run: everything
//! it derives (prepared shards, synthesis, seed file, training, evaluation) moves to its own
//! folder, so it never mixes with the default run's files.

use std::path::{Path, PathBuf};

use syne_data::DataError;

use crate::run::{run_recipe_text, RunOptions};
use crate::CliError;

/// How to scale the demo.
#[derive(Debug, Clone, Default)]
pub struct DemoScale {
    pub tokens: Option<u64>,
    pub synth_requests: Option<usize>,
    pub eval_limit: Option<u64>,
    pub docs: Option<usize>,
    pub out: Option<PathBuf>,
}

fn usage(m: impl Into<String>) -> CliError {
    CliError::Usage(m.into())
}

fn int(t: &toml::Table, key: &str) -> Option<u64> {
    t.get(key).and_then(toml::Value::as_integer).map(|v| v as u64)
}

/// Replace `old` by `new` at the start of every string value under `v` (paths into the run folder).
fn relocate(v: &mut toml::Value, old: &str, new: &str) {
    match v {
        toml::Value::String(s) if s.starts_with(old) => *s = format!("{new}{}", &s[old.len()..]),
        toml::Value::Array(a) => a.iter_mut().for_each(|x| relocate(x, old, new)),
        toml::Value::Table(t) => t.iter_mut().for_each(|(_, x)| relocate(x, old, new)),
        _ => {}
    }
}

/// `n` rounded to a multiple of `step`, at least `step`.
fn round_to(n: f64, step: u64) -> u64 {
    ((n / step as f64).round() as u64).max(1) * step
}

/// The recipe text with `scale` applied (unchanged text when nothing is scaled).
pub fn scaled_recipe(text: &str, recipe_path: &Path, scale: &DemoScale) -> Result<String, CliError> {
    let nothing = scale.tokens.is_none() && scale.synth_requests.is_none() && scale.eval_limit.is_none() && scale.docs.is_none() && scale.out.is_none();
    if nothing {
        return Ok(text.to_string());
    }
    let bad = |m: String| usage(format!("{}: {m}", recipe_path.display()));
    let mut doc: toml::Table = toml::from_str(text).map_err(|e| bad(format!("invalid recipe: {e}")))?;
    let base = recipe_path.parent().unwrap_or(Path::new("."));
    let old_out = doc.get("run").and_then(|r| r.get("output")).and_then(toml::Value::as_str).ok_or_else(|| bad("no [run] output".into()))?.to_string();
    // The scaled run's own folder (absolute, so the relocated paths need no anchor).
    let out = match &scale.out {
        Some(o) => std::path::absolute(o).map_err(|e| DataError::io(o, "cannot resolve", e))?,
        None => {
            let mut name = Path::new(&old_out).file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "demo".into());
            for (flag, v) in
                [("t", scale.tokens.map(|v| v as usize)), ("r", scale.synth_requests), ("l", scale.eval_limit.map(|v| v as usize)), ("d", scale.docs)]
            {
                if let Some(v) = v {
                    name += &format!("-{flag}{v}");
                }
            }
            syne_data::prepare::clean_path(&base.join(&old_out).with_file_name(name))
        }
    };
    let new_out = out.to_string_lossy().into_owned();
    // Corpus and model paths stay; everything under the old run folder moves.
    doc.iter_mut().for_each(|(_, v)| relocate(v, &old_out, &new_out));

    if let Some(tokens) = scale.tokens {
        let train = doc.get("train").and_then(toml::Value::as_table).ok_or_else(|| bad("no [train] table".into()))?;
        let batch = int(train, "global_batch_tokens").ok_or_else(|| bad("no train.global_batch_tokens".into()))?;
        let stages = doc.get_mut("stages").and_then(toml::Value::as_array_mut).ok_or_else(|| bad("no [[stages]]".into()))?;
        let old: Vec<u64> = stages.iter().map(|s| s.get("tokens").and_then(toml::Value::as_integer).unwrap_or(0) as u64).collect();
        let old_total: u64 = old.iter().sum();
        if tokens < batch * old.len() as u64 {
            return Err(usage(format!("--tokens {tokens}: at least one step of {batch} tokens per stage ({} stages)", old.len())));
        }
        // Every stage keeps its share, in whole steps; the last takes what rounding left.
        let total = round_to(tokens as f64, batch);
        let mut given = 0;
        for (i, s) in stages.iter_mut().enumerate() {
            let t = if i + 1 == old.len() {
                total - given
            } else {
                round_to(total as f64 * old[i] as f64 / old_total as f64, batch).min(total - given - batch * (old.len() - i - 1) as u64)
            };
            given += t;
            s.as_table_mut().expect("stage table").insert("tokens".into(), toml::Value::Integer(t as i64));
        }
        let factor = total as f64 / old_total as f64;
        let scaled = |t: &mut toml::Table, key: &str, step: u64| {
            if let Some(v) = int(t, key) {
                t.insert(key.into(), toml::Value::Integer(round_to(v as f64 * factor, step) as i64));
            }
        };
        let train = doc.get_mut("train").and_then(toml::Value::as_table_mut).expect("checked");
        scaled(train, "checkpoint_every_tokens", batch);
        if let Some(s) = train.get_mut("schedule").and_then(toml::Value::as_table_mut) {
            s.insert("total_tokens".into(), toml::Value::Integer(total as i64));
            scaled(s, "warmup_tokens", 1);
        }
        if let Some(t) = doc.get_mut("topics").and_then(toml::Value::as_table_mut) {
            scaled(t, "interval_tokens", batch);
        }
    }
    if let Some(n) = scale.synth_requests {
        let s = doc.get_mut("synth").and_then(toml::Value::as_table_mut).ok_or_else(|| bad("--synth-requests: the recipe has no [synth]".into()))?;
        s.insert("max_requests".into(), toml::Value::Integer(n as i64));
    }
    if let Some(n) = scale.eval_limit {
        let e = doc.get_mut("eval").and_then(toml::Value::as_table_mut).ok_or_else(|| bad("--eval-limit: the recipe has no [eval]".into()))?;
        e.insert("limit".into(), toml::Value::Integer(n as i64));
    }
    if let Some(n) = scale.docs {
        // The first n documents of every corpus file, copied into the run folder.
        let inputs = out.join("inputs").join("corpora");
        std::fs::create_dir_all(&inputs).map_err(|e| DataError::io(&inputs, "cannot create", e))?;
        let sources = doc.get_mut("sources").and_then(toml::Value::as_table_mut).ok_or_else(|| bad("no [sources]".into()))?;
        for (_, src) in sources.iter_mut() {
            let Some(paths) = src.get_mut("paths").and_then(toml::Value::as_array_mut) else { continue };
            for p in paths.iter_mut() {
                let Some(s) = p.as_str() else { continue };
                if s.starts_with(&new_out) {
                    continue; // written by the run itself (the synthesis)
                }
                let file = base.join(s);
                let text = std::fs::read_to_string(&file).map_err(|e| DataError::io(&file, "cannot read a demo corpus", e))?;
                let slice = inputs.join(file.file_name().unwrap_or_default());
                let kept: String = text.lines().take(n).map(|l| format!("{l}\n")).collect();
                syne_data::io::write_atomic(&slice, kept.as_bytes())?;
                *p = toml::Value::String(slice.to_string_lossy().into_owned());
            }
        }
    }
    Ok(format!("# {} scaled by `syne demo` ({scale:?})\n{}", recipe_path.display(), toml::to_string(&doc).expect("toml")))
}

/// Run the demo recipe at `recipe_path` with `scale`, then write its report; returns the run
/// folder.
pub fn run_demo(recipe_path: &Path, scale: &DemoScale, opts: &RunOptions) -> Result<PathBuf, CliError> {
    let text = std::fs::read_to_string(recipe_path)
        .map_err(|e| DataError::io(recipe_path, "cannot read recipe (run `syne demo` from the repository root, or pass --recipe)", e))?;
    let text = scaled_recipe(&text, recipe_path, scale)?;
    let recipe = syne_mix::recipe::Recipe::parse(&text, &std::path::absolute(recipe_path).map_err(|e| DataError::io(recipe_path, "cannot resolve", e))?)?;
    // The topic classifier's seed: MMLU's test questions labelled with the paper's topics.
    if let Some(seed) = recipe.topics.as_ref().and_then(|t| t.seed.as_ref()).filter(|s| !s.exists()) {
        let base = recipe.path.parent().unwrap_or(Path::new("."));
        let data_dir =
            recipe.eval.as_ref().and_then(|e| e.get("data_dir")).and_then(toml::Value::as_str).map(|d| base.join(d)).ok_or_else(|| {
                usage(format!("{}: the topic seed {} is missing and [eval] data_dir (MMLU) is not set", recipe_path.display(), seed.display()))
            })?;
        let n = crate::write_mmlu_seed(&data_dir, "test", seed)?;
        eprintln!("[syne demo] topic seed: {n} labelled MMLU questions → {}", syne_data::prepare::clean_path(seed).display());
    }
    let manifest = run_recipe_text(&text, recipe_path, opts)?;
    let dir = recipe.run.output.clone();
    let report = syne_report::write_report(&dir)?;
    eprintln!(
        "[syne demo] trained {} tokens in {} steps; report: {} and {}",
        manifest.train.tokens,
        manifest.train.steps,
        report.markdown.display(),
        report.html.display()
    );
    Ok(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn demo() -> (String, PathBuf) {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../recipes/demo.toml");
        (std::fs::read_to_string(&path).unwrap(), path)
    }

    #[test]
    fn scaling_keeps_stage_shares_in_whole_steps_and_moves_every_derived_path() {
        let (text, path) = demo();
        assert_eq!(scaled_recipe(&text, &path, &DemoScale::default()).unwrap(), text, "no scale: the recipe as it is");
        let scale = DemoScale { tokens: Some(10_000), synth_requests: Some(3), eval_limit: Some(5), ..Default::default() };
        let scaled = scaled_recipe(&text, &path, &scale).unwrap();
        let r = syne_mix::recipe::Recipe::parse(&scaled, &path).unwrap();
        let original = syne_mix::recipe::Recipe::parse(&text, &path).unwrap();
        // 10,000 → 10,240 (5 steps of 2,048): 4 + 1 steps (stage I holds 80% of the original).
        assert_eq!(r.stages.iter().map(|s| s.tokens).collect::<Vec<_>>(), vec![8192, 2048]);
        assert!(r.run.output.ends_with("runs/demo-t10000-r3-l5"), "{}", r.run.output.display());
        let schedule = &r.train.as_ref().unwrap()["schedule"];
        assert_eq!(schedule["total_tokens"].as_integer(), Some(10_240));
        assert_eq!(r.topics.as_ref().unwrap().interval_tokens % 2048, 0);
        assert!(r.topics.as_ref().unwrap().seed.as_ref().unwrap().starts_with(&r.run.output));
        let synth = r.synth.as_ref().unwrap();
        assert_eq!(synth["max_requests"].as_integer(), Some(3));
        assert!(synth["output"].as_str().unwrap().contains("demo-t10000-r3-l5/synth"));
        assert!(r.sources["synthesis-en"].prepare["paths"][0].as_str().unwrap().contains("demo-t10000-r3-l5/synth/synthesis.jsonl"));
        assert!(r.prepare.as_ref().unwrap()["output"].as_str().unwrap().contains("demo-t10000-r3-l5/data"));
        // Corpora and the model are where they were.
        assert_eq!(r.sources["zh-news"].prepare["paths"], original.sources["zh-news"].prepare["paths"]);
        assert_eq!(r.train.as_ref().unwrap()["model"], original.train.as_ref().unwrap()["model"]);
        assert_eq!(r.eval.as_ref().unwrap()["limit"].as_integer(), Some(5));
        // Too small a budget is refused with the reason.
        let e = scaled_recipe(&text, &path, &DemoScale { tokens: Some(100), ..Default::default() }).unwrap_err().to_string();
        assert!(e.contains("at least one step of 2048 tokens per stage"), "{e}");
    }
}

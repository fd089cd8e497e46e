//! The exact token plan: per stage, per source, in whole tokens.
//!
//! `tokens(stage, source) = stage.tokens × group share × source share`, computed with the ratios
//! read as the decimals written in the recipe (0.2 is 2/10, not the nearest binary float), in
//! 128-bit integers; the fractional tokens left by rounding down go to the sources with the
//! largest remainders, so every stage sums to its budget exactly and nothing is dropped silently
//! (the original planner dropped groups under 3B tokens).

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::error::{MixError, Result};
use crate::recipe::Recipe;

/// A ratio as the exact decimal its shortest representation spells (`0.05` → 5/100).
fn decimal(x: f64) -> (u128, u128) {
    let s = format!("{x}");
    let (int, frac) = s.split_once('.').unwrap_or((&s, ""));
    let den = 10u128.pow(frac.len() as u32);
    let num = format!("{int}{frac}").parse::<u128>().unwrap_or(0);
    (num, den)
}

/// One source's share of one stage.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SourcePlan {
    /// The source.
    pub source: String,
    /// Its group.
    pub group: String,
    /// Its reporting category.
    pub category: Option<String>,
    /// Share of the stage's tokens.
    pub fraction: f64,
    /// Its tokens in the stage.
    pub tokens: u64,
}

/// One stage of the plan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StagePlan {
    /// The stage's name.
    pub name: String,
    /// Its token budget.
    pub tokens: u64,
    /// Its sources and their tokens.
    pub sources: Vec<SourcePlan>,
    /// Tokens per group.
    pub groups: BTreeMap<String, u64>,
}

/// What a source's corpus holds against what the run takes from it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Supply {
    /// Tokens planned over the whole run.
    pub planned: u64,
    /// Tokens in the prepared corpus (its manifest), when known.
    pub available: Option<u64>,
    /// planned / available: above 1 the source is repeated (allowed by `max_epochs`).
    pub epochs: Option<f64>,
}

/// The whole run's plan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    /// The recipe file.
    pub recipe: PathBuf,
    /// Per stage, the tokens of every source.
    pub stages: Vec<StagePlan>,
    /// Tokens of all stages.
    pub total_tokens: u64,
    /// Whole-run tokens per source, with the corpus supply when a manifest was found.
    pub sources: BTreeMap<String, Supply>,
    /// Whole-run tokens per category (sources without one count as `other`).
    pub categories: BTreeMap<String, u64>,
    /// Whole-run tokens per group.
    pub groups: BTreeMap<String, u64>,
    /// The manifest the supply was read from, if any.
    pub manifest: Option<PathBuf>,
    /// With `[train]`: how each stage's tokens become whole optimizer steps (what is trained).
    #[serde(default)]
    pub rounding: Vec<crate::sampler::StageRounding>,
}

impl Plan {
    /// The plan of a recipe, without corpus checks.
    pub fn new(recipe: &Recipe) -> Plan {
        let mut stages = Vec::new();
        for (s, st) in recipe.stages.iter().enumerate() {
            let mixture = recipe.stage_mixture(s);
            // (source, group, exact numerator, denominator) of each share.
            let mut shares: Vec<(String, String, u128, u128)> = Vec::new();
            for (g, &gshare) in &st.groups {
                let (gn, gd) = decimal(gshare);
                for (name, &sshare) in mixture.get(g).into_iter().flatten() {
                    let (sn, sd) = decimal(sshare);
                    shares.push((name.clone(), g.clone(), gn * sn, gd * sd));
                }
            }
            let t = u128::from(st.tokens);
            let mut tokens: Vec<u128> = shares.iter().map(|(_, _, n, d)| t * n / d).collect();
            let assigned: u128 = tokens.iter().sum();
            // Largest remainders first (ties: recipe order), one token each, until the budget is met.
            let mut order: Vec<usize> = (0..shares.len()).collect();
            order.sort_by(|&a, &b| {
                let (ra, rb) = ((t * shares[a].2) % shares[a].3, (t * shares[b].2) % shares[b].3);
                // Compare ra/da with rb/db exactly.
                (rb * shares[a].3).cmp(&(ra * shares[b].3)).then(a.cmp(&b))
            });
            let missing = u128::from(st.tokens).saturating_sub(assigned);
            for &i in order.iter().cycle().take(missing as usize) {
                tokens[i] += 1;
            }
            let sources: Vec<SourcePlan> = shares
                .iter()
                .zip(&tokens)
                .map(|((name, g, n, d), &tok)| SourcePlan {
                    source: name.clone(),
                    group: g.clone(),
                    category: recipe.sources.get(name).and_then(|s| s.category.clone()),
                    fraction: *n as f64 / *d as f64,
                    tokens: tok as u64,
                })
                .collect();
            let mut groups = BTreeMap::new();
            for sp in &sources {
                *groups.entry(sp.group.clone()).or_insert(0) += sp.tokens;
            }
            stages.push(StagePlan { name: st.name.clone(), tokens: st.tokens, sources, groups });
        }
        let mut sources: BTreeMap<String, Supply> = BTreeMap::new();
        let mut categories = BTreeMap::new();
        let mut groups = BTreeMap::new();
        for sp in stages.iter().flat_map(|s| &s.sources) {
            sources.entry(sp.source.clone()).or_insert(Supply { planned: 0, available: None, epochs: None }).planned += sp.tokens;
            *categories.entry(sp.category.clone().unwrap_or_else(|| "other".into())).or_insert(0) += sp.tokens;
            *groups.entry(sp.group.clone()).or_insert(0) += sp.tokens;
        }
        let total_tokens = stages.iter().map(|s| s.tokens).sum();
        let mut plan = Plan { recipe: recipe.path.clone(), stages, total_tokens, sources, categories, groups, manifest: None, rounding: Vec::new() };
        if let Some(t) = &recipe.train {
            // (A stage under one step has no rounding: `syne plan --check` names it.)
            let step_sequences = t.global_batch_tokens / (t.seq_len as u64).max(1);
            plan.rounding = crate::sampler::Schedule::from_plan(&plan, t.seq_len as u64, step_sequences).map(|s| s.rounding()).unwrap_or_default();
        }
        plan
    }

    /// Check the plan against the tokens each source's corpus holds: a source that cannot
    /// supply its quota within `max_epochs` readings is an error naming it; repetition within
    /// the allowance is stated in `epochs`.
    pub fn check_supply(&mut self, recipe: &Recipe, available: &BTreeMap<String, u64>) -> Result<()> {
        let mut short = Vec::new();
        for (name, supply) in &mut self.sources {
            let Some(&have) = available.get(name) else { continue };
            supply.available = Some(have);
            supply.epochs = Some(if have == 0 { f64::INFINITY } else { supply.planned as f64 / have as f64 });
            let max_epochs = recipe.sources.get(name).map_or(1.0, |s| s.max_epochs);
            if supply.planned as f64 > have as f64 * max_epochs {
                short.push(format!(
                    "source `{name}` needs {} tokens over the run but its corpus has {have} (max_epochs = {max_epochs}: {:.3} epochs would be needed); add data or raise sources.{name}.max_epochs",
                    supply.planned,
                    supply.epochs.unwrap_or(f64::INFINITY)
                ));
            }
        }
        if short.is_empty() {
            Ok(())
        } else {
            Err(MixError::Plan(short.join("\n")))
        }
    }

    /// Read the corpora's supply from the `syne prepare` manifest of the recipe's
    /// `[prepare] output`, when it exists, and check it.
    pub fn check_prepared(&mut self, recipe: &Recipe) -> Result<()> {
        let Some(dir) = recipe.prepare.as_ref().map(|p| p.output.clone()) else { return Ok(()) };
        if !dir.join("manifest.json").exists() {
            return Ok(());
        }
        let manifest = syne_data::prepare::Manifest::load(&dir)?;
        let available: BTreeMap<String, u64> = manifest.sources.iter().map(|(k, c)| (k.clone(), c.tokens_out)).collect();
        self.manifest = Some(dir.join("manifest.json"));
        self.check_supply(recipe, &available)
    }

    /// The plan as Markdown tables.
    pub fn markdown(&self) -> String {
        let b = |t: u64| format!("{:.4}B", t as f64 / 1e9);
        let mut s = format!("Plan of `{}`: {} tokens ({})\n", self.recipe.display(), self.total_tokens, b(self.total_tokens));
        for st in &self.stages {
            s += &format!("\n## {} — {} tokens\n\n| source | group | category | fraction | tokens |\n|---|---|---|---|---|\n", st.name, st.tokens);
            for sp in &st.sources {
                s += &format!("| {} | {} | {} | {:.4} | {} |\n", sp.source, sp.group, sp.category.as_deref().unwrap_or("–"), sp.fraction, sp.tokens);
            }
            s += &format!("| **total** | | | 1.0000 | {} |\n", st.sources.iter().map(|x| x.tokens).sum::<u64>());
        }
        s += "\n## Whole run\n\n| source | planned | available | epochs |\n|---|---|---|---|\n";
        for (name, sup) in &self.sources {
            s += &format!(
                "| {name} | {} | {} | {} |\n",
                sup.planned,
                sup.available.map_or("–".into(), |a| a.to_string()),
                sup.epochs.map_or("–".into(), |e| format!("{e:.3}"))
            );
        }
        s += "\n| category | tokens | share |\n|---|---|---|\n";
        for (c, &t) in &self.categories {
            // Hundredths of a percent, rounded half up exactly (45.175% → 45.18%, as the paper).
            let total = u128::from(self.total_tokens.max(1));
            let bp = (u128::from(t) * 20_000 + total) / (2 * total);
            s += &format!("| {c} | {t} | {}.{:02}% |\n", bp / 100, bp % 100);
        }
        s += "\n| group | tokens |\n|---|---|\n";
        for (g, &t) in &self.groups {
            s += &format!("| {g} | {t} |\n");
        }
        if !self.rounding.is_empty() {
            // The token tables above are the recipe's exact figures; training takes whole steps.
            s += "\n## Trained: whole optimizer steps\n\n| stage | planned tokens | sequences | steps | tokens trained | difference |\n|---|---|---|---|---|---|\n";
            for r in &self.rounding {
                s += &format!("| {} | {} | {} | {} | {} | {:+} |\n", r.stage, r.planned_tokens, r.sequences, r.steps, r.tokens, r.difference);
            }
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals_are_exact() {
        assert_eq!(decimal(0.2), (2, 10));
        assert_eq!(decimal(0.05), (5, 100));
        assert_eq!(decimal(1.0), (1, 1));
        assert_eq!(decimal(0.105), (105, 1000));
    }

    #[test]
    fn rounding_keeps_every_stage_on_budget() {
        let text = r#"
[run]
name = "t"
output = "out"
[sources.a]
language = "en"
[sources.b]
language = "en"
[sources.c]
language = "en"
[[stages]]
name = "s"
tokens = 100
groups = { en = 1.0 }
[mixture.en]
a = 0.333
b = 0.333
c = 0.334
"#;
        let r = Recipe::from_str_at(text, std::path::Path::new("t.toml")).unwrap();
        let p = Plan::new(&r);
        let t: Vec<u64> = p.stages[0].sources.iter().map(|s| s.tokens).collect();
        assert_eq!(t.iter().sum::<u64>(), 100);
        assert_eq!(t, vec![33, 33, 34]);
        let mut p2 = p.clone();
        let e = p2.check_supply(&r, &[("a".to_string(), 20u64)].into()).unwrap_err().to_string();
        assert!(e.contains("source `a` needs 33 tokens") && e.contains("max_epochs"), "{e}");
        let mut p3 = p;
        p3.check_supply(&r, &[("a".to_string(), 40u64)].into()).unwrap();
        assert!((p3.sources["a"].epochs.unwrap() - 33.0 / 40.0).abs() < 1e-12);
    }
}

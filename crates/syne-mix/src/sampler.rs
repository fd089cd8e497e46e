//! The mixture schedule: which source each training sequence comes from.
//!
//! A stage's token budget becomes a whole number of optimizer steps (the nearest), and that a
//! whole number of sequences per source (its planned tokens / `seq_len`, remainders settled by
//! largest remainder so the stage's sequences add up). Within a
//! stage the sources are interleaved by smooth weighted round-robin with the quotas as weights:
//! every step each source's credit grows by its quota and the source with the most credit (ties:
//! recipe order) is drawn and pays the stage's total. Over the stage every source is drawn exactly
//! its quota, and at every prefix each source's count is within one draw of its share times the
//! prefix length — no long single-source blocks, no randomness to drift. Each source is read
//! in order across the whole run (stage II continues where stage I stopped), and a cursor is
//! recomputed exactly from a position, so a resumed run draws what the killed one would have.

use serde::{Deserialize, Serialize};

use crate::error::{MixError, Result};
use crate::plan::Plan;

/// One stage's quotas, in sequences.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StageSchedule {
    /// The stage's name.
    pub name: String,
    /// Source names (indices into [`Schedule::sources`] order).
    pub sources: Vec<usize>,
    /// Sequences of each of the stage's sources.
    pub quotas: Vec<u64>,
    /// Sequences of the stage: its planned tokens / `seq_len`, rounded to whole optimizer steps.
    pub sequences: u64,
    /// The stage's planned tokens (before the rounding).
    #[serde(default)]
    pub planned_tokens: u64,
}

/// How a stage's token budget became whole optimizer steps (`syne plan --check` prints it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StageRounding {
    /// The stage.
    pub stage: String,
    /// Its budget in the recipe.
    pub planned_tokens: u64,
    /// planned_tokens / seq_len, unrounded.
    pub exact_sequences: f64,
    /// Sequences trained.
    pub sequences: u64,
    /// Optimizer steps (sequences / sequences per step).
    pub steps: u64,
    /// Tokens trained (sequences x seq_len).
    pub tokens: u64,
    /// tokens − planned_tokens.
    pub difference: i64,
}

/// The whole run's schedule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Schedule {
    /// Tokens per sequence.
    pub seq_len: u64,
    /// Sequences per optimizer step (every stage is a whole number of steps).
    #[serde(default = "one")]
    pub step_sequences: u64,
    /// Every source of the run, in first-appearance order.
    pub sources: Vec<String>,
    /// The stages, in order.
    pub stages: Vec<StageSchedule>,
}

/// One drawn sequence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Draw {
    /// The stage the sequence belongs to.
    pub stage: usize,
    /// Index into [`Schedule::sources`].
    pub source: usize,
    /// The source's sequence number across the whole run (0, 1, 2, ... per source).
    pub index: u64,
}

fn one() -> u64 {
    1
}

impl Schedule {
    /// Quotas from a plan. Each stage becomes a whole number of optimizer steps of
    /// `step_sequences` sequences — its tokens / `seq_len`, rounded to the nearest step (halves
    /// down) — and its sources' quotas are their tokens / `seq_len` rounded down, then raised
    /// (largest remainders first) or lowered (smallest remainders first) to the stage's total.
    /// A stage of less than one step's tokens is an error naming it: the trainer could not take
    /// a single step of it.
    pub fn from_plan(plan: &Plan, seq_len: u64, step_sequences: u64) -> Result<Schedule> {
        if seq_len == 0 || step_sequences == 0 {
            return Err(MixError::Plan("sequence length and sequences per step must be positive".into()));
        }
        let step_tokens = seq_len * step_sequences;
        let mut sources: Vec<String> = Vec::new();
        let mut stages = Vec::new();
        for (i, st) in plan.stages.iter().enumerate() {
            if st.tokens < step_tokens {
                return Err(MixError::Plan(format!(
                    "stages[{i}].tokens: stage `{}` has {} tokens, less than one optimizer step ({step_sequences} sequences of {seq_len} = {step_tokens} tokens)",
                    st.name, st.tokens
                )));
            }
            let (whole, rest) = (st.tokens / step_tokens, st.tokens % step_tokens);
            let sequences = (whole + u64::from(2 * rest > step_tokens)) * step_sequences;
            let mut quotas: Vec<u64> = st.sources.iter().map(|s| s.tokens / seq_len).collect();
            let mut order: Vec<usize> = (0..quotas.len()).collect();
            order.sort_by_key(|&i| (std::cmp::Reverse(st.sources[i].tokens % seq_len), i));
            let floors: u64 = quotas.iter().sum();
            if sequences >= floors {
                for &i in order.iter().cycle().take((sequences - floors) as usize) {
                    quotas[i] += 1;
                }
            } else {
                // Rounded down to a whole step: the sources with the smallest remainders give.
                let mut excess = floors - sequences;
                while excess > 0 {
                    for &i in order.iter().rev() {
                        if excess > 0 && quotas[i] > 0 {
                            quotas[i] -= 1;
                            excess -= 1;
                        }
                    }
                }
            }
            let idx = st
                .sources
                .iter()
                .map(|s| match sources.iter().position(|x| x == &s.source) {
                    Some(i) => i,
                    None => {
                        sources.push(s.source.clone());
                        sources.len() - 1
                    }
                })
                .collect();
            stages.push(StageSchedule { name: st.name.clone(), sources: idx, quotas, sequences, planned_tokens: st.tokens });
        }
        Ok(Schedule { seq_len, step_sequences, sources, stages })
    }

    /// How each stage's budget was rounded to whole optimizer steps.
    pub fn rounding(&self) -> Vec<StageRounding> {
        self.stages
            .iter()
            .map(|st| {
                let tokens = st.sequences * self.seq_len;
                StageRounding {
                    stage: st.name.clone(),
                    planned_tokens: st.planned_tokens,
                    exact_sequences: st.planned_tokens as f64 / self.seq_len as f64,
                    sequences: st.sequences,
                    steps: st.sequences / self.step_sequences,
                    tokens,
                    difference: tokens as i64 - st.planned_tokens as i64,
                }
            })
            .collect()
    }

    /// Sequences in the whole run.
    pub fn sequences(&self) -> u64 {
        self.stages.iter().map(|s| s.sequences).sum()
    }

    /// A cursor at `position` (sequences already drawn), recomputed by replaying the draws
    /// (the cursor keeps its own copy of the schedule, which is small).
    pub fn cursor(&self, position: u64) -> Cursor {
        let mut c = Cursor { schedule: self.clone(), position: 0, stage: 0, step: 0, credit: Vec::new(), read: vec![0; self.sources.len()], drawn: Vec::new() };
        c.enter_stage(0);
        for _ in 0..position {
            if c.next().is_none() {
                break;
            }
        }
        c
    }
}

/// Where the schedule stands: the next draw, and everything drawn so far.
#[derive(Debug, Clone)]
pub struct Cursor {
    schedule: Schedule,
    /// Draws made (the run's sequence position).
    position: u64,
    stage: usize,
    /// Draws made in the current stage.
    step: u64,
    credit: Vec<i128>,
    /// Sequences read per source (whole run).
    read: Vec<u64>,
    /// Draws per stage per source (in the stage's source order).
    drawn: Vec<Vec<u64>>,
}

impl Cursor {
    fn enter_stage(&mut self, s: usize) {
        self.stage = s;
        self.step = 0;
        let n = self.schedule.stages.get(s).map_or(0, |st| st.sources.len());
        self.credit = vec![0; n];
        if self.drawn.len() <= s {
            self.drawn.push(vec![0; n]);
        }
    }

    /// Draws per stage per source so far (for the run's manifest: planned vs consumed).
    pub fn drawn(&self) -> &[Vec<u64>] {
        &self.drawn
    }

    /// The stage of the next draw.
    pub fn stage(&self) -> usize {
        self.stage
    }

    /// Sequences drawn so far.
    pub fn position(&self) -> u64 {
        self.position
    }

    /// The schedule being drawn from.
    pub fn schedule(&self) -> &Schedule {
        &self.schedule
    }
}

impl Iterator for Cursor {
    type Item = Draw;

    fn next(&mut self) -> Option<Draw> {
        loop {
            let st = self.schedule.stages.get(self.stage)?;
            if self.step < st.sequences {
                break;
            }
            self.enter_stage(self.stage + 1);
        }
        let st = &self.schedule.stages[self.stage];
        let total = i128::from(st.sequences);
        let mut best = 0;
        for (i, q) in st.quotas.iter().enumerate() {
            self.credit[i] += i128::from(*q);
            if self.credit[i] > self.credit[best] {
                best = i;
            }
        }
        self.credit[best] -= total;
        self.step += 1;
        self.position += 1;
        let source = st.sources[best];
        let index = self.read[source];
        self.read[source] += 1;
        self.drawn[self.stage][best] += 1;
        Some(Draw { stage: self.stage, source, index })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::recipe::Recipe;

    fn schedule(seq_len: u64) -> Schedule {
        let text = r#"
[run]
name = "t"
output = "out"
[sources.web]
language = "en"
[sources.book]
language = "en"
[sources.zh]
language = "zh"
[sources.syn]
language = "en"
group = "syn"
[[stages]]
name = "one"
tokens = 100_000
groups = { en = 0.8, zh = 0.2 }
[[stages]]
name = "two"
tokens = 20_000
groups = { en = 0.7, zh = 0.1, syn = 0.2 }
[mixture.en]
web = 0.75
book = 0.25
[mixture.zh]
zh = 1.0
[mixture.syn]
syn = 1.0
"#;
        let r = Recipe::from_str_at(text, std::path::Path::new("t.toml")).unwrap();
        Schedule::from_plan(&Plan::new(&r), seq_len, 1).unwrap()
    }

    #[test]
    fn quotas_are_met_exactly_and_interleaved_smoothly() {
        let s = schedule(100);
        assert_eq!(s.sequences(), 1200);
        assert_eq!(s.stages[0].quotas.iter().sum::<u64>(), 1000);
        let draws: Vec<Draw> = s.cursor(0).collect();
        assert_eq!(draws.len(), 1200);
        for (k, st) in s.stages.iter().enumerate() {
            for (j, &src) in st.sources.iter().enumerate() {
                let n = draws.iter().filter(|d| d.stage == k && d.source == src).count() as u64;
                assert_eq!(n, st.quotas[j], "stage {k} source {}", s.sources[src]);
            }
        }
        // Smooth: at every prefix of stage one, each source's count is within 1 of its share.
        let st = &s.stages[0];
        let mut counts = vec![0i64; st.sources.len()];
        for (n, d) in draws.iter().take(1000).enumerate() {
            let j = st.sources.iter().position(|&x| x == d.source).unwrap();
            counts[j] += 1;
            for (j, &q) in st.quotas.iter().enumerate() {
                let ideal = (n as f64 + 1.0) * q as f64 / 1000.0;
                assert!((counts[j] as f64 - ideal).abs() <= 1.0, "prefix {n}: source {j} {} vs {ideal}", counts[j]);
            }
        }
        // Sources are read on across stages: web continues numbering in stage two.
        let web = s.sources.iter().position(|x| x == "web").unwrap();
        let first_two = draws.iter().find(|d| d.stage == 1 && d.source == web).unwrap();
        assert_eq!(first_two.index, s.stages[0].quotas[s.stages[0].sources.iter().position(|&x| x == web).unwrap()]);
    }

    #[test]
    fn a_cursor_resumes_exactly() {
        let s = schedule(64);
        let all: Vec<Draw> = s.cursor(0).collect();
        for k in [0u64, 1, 17, 1560, all.len() as u64 - 1, all.len() as u64] {
            let rest: Vec<Draw> = s.cursor(k).collect();
            assert_eq!(rest, all[k as usize..], "resumed at {k}");
        }
        let mut c = s.cursor(0);
        for _ in 0..all.len() {
            c.next();
        }
        let planned: Vec<Vec<u64>> = s.stages.iter().map(|st| st.quotas.clone()).collect();
        assert_eq!(c.drawn(), planned.as_slice(), "consumed equals planned");
        // 120,000 tokens / 64 = 1875 sequences: stage budgets are floored per stage.
        assert_eq!(s.sequences(), 100_000 / 64 + 20_000 / 64);
    }
}

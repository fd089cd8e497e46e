//! Topic mixers: how a topic source's topic ratios start and how they move at validation points.
//!
//! Every mixer reads the same signal: the per-topic held-out loss the trainer measures at each
//! validation point (`SOURCE/TOPIC`). The stream ([`crate::stream`]) calls [`Mixer::update`]
//! once per topic source at each validation point past an interval of `topics.interval_tokens`
//! (the first validation, before any training, is every mixer's baseline), draws topics by smooth
//! weighted round-robin over the ratios, and saves the mixer's [`MixerState`] in every
//! checkpoint, so a resumed run moves its ratios exactly as an uninterrupted one.
//!
//! - [`SyneRule`] — the paper's rule (Llama-3-SynE §4.2, [`crate::reweight`]).
//! - [`StaticShares`] — the topics' token shares, never moved.
//! - [`Stratified`] — uniform over the topics with data, never moved: the baseline Aioli
//!   (Chen et al., *Aioli: A Unified Optimization Framework for Language Model Data Mixing*,
//!   arXiv 2411.05735) finds most online methods fail to beat.
//! - [`Odm`] — Online Data Mixing (Albalak et al., *Efficient Online Data Mixing For Language
//!   Model Pre-Training*, arXiv 2312.02406): EXP3 with the loss as reward. As the reference
//!   implementation's `group_update` (gpt-neox fork, `Exp3WeightUpdater`): rewards scaled by
//!   `reward_scale`, importance-weighted by the topic's current probability and summed into
//!   `R̂_i`; `ε_t = min(1/K, sqrt(ln K / (K t)))`; `π_i ∝ exp(ε_{t-1} R̂_i) (1 - K ε_t) / Σ_j
//!   exp(ε_{t-1} R̂_j) + ε_t`. The paper's reward is the training loss of the domain's batch;
//!   here it is the topic's held-out loss (the signal every mixer here reads), and `t` counts
//!   updates, not steps.
//! - [`Ado`] — Adaptive Data Optimization (Jiang et al., *Adaptive Data Optimization: Dynamic
//!   Sample Selection with Scaling Laws*, arXiv 2410.11820), as its reference `AdoSelector`
//!   with `y_axis = val_loss` and `use_same_step_size`: per topic, `L(n) = exp(e) + exp(a) /
//!   n^alpha` fitted to (sequences trained, held-out loss) by a Huber loss in log space with the
//!   reference's bounds; the slope `alpha (L(n) - exp(e)) / n` times the prior (token share) times
//!   the square root of the credit history `h` (a decaying average of the shares actually
//!   drawn) is the preference `ρ`, clipped below at `min_probability`; the policy is `π = s·π̄ +
//!   (1-s)·ρ` with `π̄` the running mean of the preferences. The reference runs L-BFGS from
//!   each of 512 grid points; here Nelder–Mead refines the 8 best grid points (the fits have a
//!   handful of points). `π̄`'s running mean counts updates, not steps.
//!
//! An exhausted topic (no data left) has ratio 0 in every mixer and the others share its weight.
//!
//! The same rules mix the sources of a language group (`[source_mixing]`,
//! [`source_mixer_for`]): the "topics" are then the group's sources, the losses each source's
//! held-out loss, the starting shares the group's `[mixture.GROUP]`; the group's share of every
//! stage stays the plan's ([`crate::stream`]).

use std::collections::BTreeMap;

use argmin::core::{CostFunction, Executor};
use argmin::solver::neldermead::NelderMead;

use crate::error::{MixError, Result};
use crate::recipe::TopicSettings;
use crate::reweight::reweight;
use syne_recipe::recipe::ReweightConfig;
use syne_recipe::records::mixture::{LossPoint, MixerDetail, MixerState, MixerUpdate, MixtureEvent, PowerLaw, TopicState};
use syne_recipe::{AdoConfig, OdmConfig, SourceMixing, TopicMixer};

/// What a mixer sees at a validation point.
#[derive(Debug, Clone, Copy)]
pub struct Observation<'a> {
    /// The topic source.
    pub source: &'a str,
    /// Tokens trained so far.
    pub tokens: u64,
    /// Sequences trained so far (the whole run's, every source).
    pub sequences: u64,
    /// Per-topic held-out loss now (`None`: a topic without held-out text).
    pub losses: &'a [Option<f64>],
}

/// A rule that sets a topic source's starting ratios and moves them from per-topic losses.
pub trait Mixer: Send {
    /// Which mixer this is.
    fn kind(&self) -> TopicMixer;

    /// The ratios at the start of the run, from the topics' token shares (`shares`, summing to
    /// 1) and which topics have any data (`with_data`).
    fn initial_ratios(&self, shares: &[f64], with_data: &[bool]) -> Vec<f64> {
        let _ = with_data;
        shares.to_vec()
    }

    /// The state the mixer carries between updates, at the start (`None`: it carries none
    /// beyond the ratios and the last losses).
    fn initial_state(&self, ratios: &[f64]) -> Option<MixerState> {
        let _ = ratios;
        None
    }

    /// Move `state.ratios` at an update point; returns what to log (`None`: the mixer never
    /// moves). `state.last_losses` holds the losses of the previous point (the caller sets them
    /// to `obs.losses` afterwards).
    fn update(&self, state: &mut TopicState, obs: &Observation) -> Result<Option<MixtureEvent>>;
}

/// The mixer `settings.mixer` names over a source's topics, with its settings.
pub fn mixer_for(settings: &TopicSettings) -> Box<dyn Mixer> {
    mixer_of(settings.mixer, &settings.reweight, &settings.weights, &settings.odm, &settings.ado)
}

/// The mixer `settings.mixer` names over a group's sources (`[source_mixing]`).
pub fn source_mixer_for(settings: &SourceMixing) -> Box<dyn Mixer> {
    mixer_of(settings.mixer, &settings.reweight, &settings.weights, &settings.odm, &settings.ado)
}

/// Mixer `kind` with its settings (`weights`: the paper's rule's per-domain weights).
pub fn mixer_of(kind: TopicMixer, reweight: &ReweightConfig, weights: &BTreeMap<String, f64>, odm: &OdmConfig, ado: &AdoConfig) -> Box<dyn Mixer> {
    match kind {
        TopicMixer::Syne => Box::new(SyneRule { reweight: reweight.clone(), weights: weights.clone() }),
        TopicMixer::Static => Box::new(StaticShares),
        TopicMixer::Stratified => Box::new(Stratified),
        TopicMixer::Odm => Box::new(Odm { config: odm.clone() }),
        TopicMixer::Ado => Box::new(Ado { config: ado.clone() }),
    }
}

fn mixer_err(source: &str, detail: impl std::fmt::Display) -> MixError {
    MixError::Plan(format!("source `{source}`: topic mixer: {detail}"))
}

/// The paper's rule ([`crate::reweight`]) with `[topics.reweight]` and `[topics] weights`
/// (or `[source_mixing]`'s).
pub struct SyneRule {
    /// The rule's settings.
    pub reweight: ReweightConfig,
    /// Per-domain (topic or source) weights `w_i` (default 1).
    pub weights: BTreeMap<String, f64>,
}

impl Mixer for SyneRule {
    fn kind(&self) -> TopicMixer {
        TopicMixer::Syne
    }

    fn update(&self, state: &mut TopicState, obs: &Observation) -> Result<Option<MixtureEvent>> {
        let previous = state.last_losses.clone().unwrap_or_else(|| vec![None; obs.losses.len()]);
        // A topic with no loss at either point counts as unchanged.
        let (prev, cur): (Vec<f64>, Vec<f64>) = obs
            .losses
            .iter()
            .zip(&previous)
            .map(|(c, p)| match (c, p) {
                (Some(c), Some(p)) => (*p, *c),
                _ => (1.0, 1.0),
            })
            .unzip();
        let weights: Vec<f64> = state.topics.iter().map(|t| self.weights.get(t).copied().unwrap_or(1.0)).collect();
        let adjustment = reweight(&state.ratios, &prev, &cur, &weights, &state.exhausted, &self.reweight).map_err(|e| mixer_err(obs.source, e))?;
        state.ratios = adjustment.ratios.clone();
        Ok(Some(MixtureEvent::Adjustment { source: obs.source.to_string(), topics: state.topics.clone(), adjustment }))
    }
}

/// The topics' token shares, never moved.
pub struct StaticShares;

impl Mixer for StaticShares {
    fn kind(&self) -> TopicMixer {
        TopicMixer::Static
    }

    fn update(&self, _state: &mut TopicState, _obs: &Observation) -> Result<Option<MixtureEvent>> {
        Ok(None)
    }
}

/// Uniform over the topics with data, never moved.
pub struct Stratified;

impl Mixer for Stratified {
    fn kind(&self) -> TopicMixer {
        TopicMixer::Stratified
    }

    fn initial_ratios(&self, _shares: &[f64], with_data: &[bool]) -> Vec<f64> {
        let n = with_data.iter().filter(|&&d| d).count().max(1) as f64;
        with_data.iter().map(|&d| if d { 1.0 / n } else { 0.0 }).collect()
    }

    fn update(&self, _state: &mut TopicState, _obs: &Observation) -> Result<Option<MixtureEvent>> {
        Ok(None)
    }
}

/// Indices of the topics that can still be drawn.
fn live_topics(state: &TopicState) -> Vec<usize> {
    (0..state.ratios.len()).filter(|&i| !state.exhausted[i]).collect()
}

/// Ratios over `live` only, summing to 1 (the others 0).
fn on_live(values: &[f64], live: &[usize]) -> Vec<f64> {
    let total: f64 = live.iter().map(|&i| values[i]).sum();
    (0..values.len()).map(|i| if live.contains(&i) && total > 0.0 { values[i] / total } else { 0.0 }).collect()
}

/// ODM: EXP3 over the topics with the loss as reward.
pub struct Odm {
    /// `[topics.odm]`.
    pub config: OdmConfig,
}

impl Mixer for Odm {
    fn kind(&self) -> TopicMixer {
        TopicMixer::Odm
    }

    fn initial_state(&self, ratios: &[f64]) -> Option<MixerState> {
        Some(MixerState::Odm { updates: 0, epsilon: 1.0 / ratios.len().max(1) as f64, cumulative_reward: vec![0.0; ratios.len()] })
    }

    fn update(&self, state: &mut TopicState, obs: &Observation) -> Result<Option<MixtureEvent>> {
        let live = live_topics(state);
        if live.is_empty() {
            return Err(mixer_err(obs.source, "every topic is exhausted"));
        }
        let Some(MixerState::Odm { updates, epsilon, cumulative_reward }) = state.mixer.as_mut() else {
            return Err(mixer_err(obs.source, "the saved state is not ODM's"));
        };
        let k = live.len() as f64;
        *updates += 1;
        let prev_epsilon = *epsilon;
        *epsilon = (1.0 / k).min((k.ln() / (k * *updates as f64)).sqrt());
        for &i in &live {
            if let Some(loss) = obs.losses[i] {
                if state.ratios[i] > 0.0 {
                    cumulative_reward[i] += self.config.reward_scale * loss / state.ratios[i];
                }
            }
        }
        // exp(ε R̂_i) / Σ_j exp(ε R̂_j), computed shifted by the largest exponent (the same value
        // without overflow).
        let top = live.iter().map(|&i| cumulative_reward[i] * prev_epsilon).fold(f64::NEG_INFINITY, f64::max);
        let total: f64 = live.iter().map(|&i| (cumulative_reward[i] * prev_epsilon - top).exp()).sum();
        let weights: Vec<f64> = (0..state.ratios.len())
            .map(|i| if live.contains(&i) { (cumulative_reward[i] * prev_epsilon - top).exp() * (1.0 - k * *epsilon) / total + *epsilon } else { 0.0 })
            .collect();
        let before = std::mem::replace(&mut state.ratios, on_live(&weights, &live));
        let detail = MixerDetail::Odm { epsilon: *epsilon, cumulative_reward: cumulative_reward.clone() };
        let update = MixerUpdate { mixer: TopicMixer::Odm, before, losses: obs.losses.to_vec(), ratios: state.ratios.clone(), detail };
        Ok(Some(MixtureEvent::Update { source: obs.source.to_string(), topics: state.topics.clone(), update }))
    }
}

/// ADO: per-topic power laws of loss against sequences trained.
pub struct Ado {
    /// `[topics.ado]`.
    pub config: AdoConfig,
}

impl Mixer for Ado {
    fn kind(&self) -> TopicMixer {
        TopicMixer::Ado
    }

    fn initial_state(&self, ratios: &[f64]) -> Option<MixerState> {
        Some(MixerState::Ado { updates: 0, points: Vec::new(), history: ratios.to_vec(), average: ratios.to_vec(), reads_at_update: vec![0; ratios.len()] })
    }

    fn update(&self, state: &mut TopicState, obs: &Observation) -> Result<Option<MixtureEvent>> {
        let cfg = &self.config;
        let prior = state.initial_ratios.clone();
        let live = live_topics(state);
        if live.is_empty() {
            return Err(mixer_err(obs.source, "every topic is exhausted"));
        }
        let Some(MixerState::Ado { updates, points, history, average, reads_at_update }) = state.mixer.as_mut() else {
            return Err(mixer_err(obs.source, "the saved state is not ADO's"));
        };
        *updates += 1;
        points.push(LossPoint { sequences: obs.sequences, losses: obs.losses.to_vec() });
        // Credit assignment: the shares actually drawn since the last update.
        let drawn: Vec<u64> = state.reads.iter().zip(reads_at_update.iter()).map(|(r, a)| r.saturating_sub(*a)).collect();
        let total_drawn: u64 = drawn.iter().sum();
        if total_drawn > 0 {
            for (h, d) in history.iter_mut().zip(&drawn) {
                *h = cfg.history_decay * *h + (1.0 - cfg.history_decay) * *d as f64 / total_drawn as f64;
            }
        }
        reads_at_update.clone_from(&state.reads);
        let n = obs.sequences.max(1) as f64;
        let fits: Vec<Option<PowerLaw>> = (0..state.ratios.len())
            .map(|i| {
                let data: Vec<(f64, f64)> =
                    points.iter().filter(|p| p.sequences > 0).filter_map(|p| p.losses[i].filter(|l| *l > 0.0).map(|l| (p.sequences as f64, l))).collect();
                (live.contains(&i) && data.len() >= cfg.min_points).then(|| fit_power_law(&data))
            })
            .collect();
        let before = state.ratios.clone();
        let mut preference = before.clone();
        if fits.iter().any(Option::is_some) {
            let slopes: Vec<Option<f64>> = fits.iter().map(|f| f.map(|f| f.alpha.max(cfg.min_exponent) * (f.loss(n) - f.e.exp()) / n)).collect();
            let known: Vec<f64> = slopes.iter().flatten().copied().collect();
            // A topic without a fit (no held-out text) takes the mean slope of the others.
            let mean_slope = known.iter().sum::<f64>() / known.len() as f64;
            let weighted: Vec<f64> = (0..before.len())
                .map(|i| if live.contains(&i) { slopes[i].unwrap_or(mean_slope).max(0.0) * prior[i] * history[i].sqrt() } else { 0.0 })
                .collect();
            let rho = on_live(&weighted, &live);
            if rho.iter().any(|r| *r > 0.0) {
                let rho = clip_min_probability(&rho, cfg.min_probability, &live);
                let policy: Vec<f64> = average.iter().zip(&rho).map(|(a, r)| cfg.smoothing * a + (1.0 - cfg.smoothing) * r).collect();
                let k = *updates as f64;
                for (a, r) in average.iter_mut().zip(&rho) {
                    *a = (1.0 - 1.0 / (k + 1.0)) * *a + r / (k + 1.0);
                }
                state.ratios = on_live(&policy, &live);
                preference = rho;
            }
        }
        let detail = MixerDetail::Ado { fits, preference };
        let update = MixerUpdate { mixer: TopicMixer::Ado, before, losses: obs.losses.to_vec(), ratios: state.ratios.clone(), detail };
        Ok(Some(MixtureEvent::Update { source: obs.source.to_string(), topics: state.topics.clone(), update }))
    }
}

/// The reference's `clip_min_probability` over the `live` topics: scale so that raising every
/// probability to `min_prob` keeps the total at 1, raise, renormalise.
pub fn clip_min_probability(probs: &[f64], min_prob: f64, live: &[usize]) -> Vec<f64> {
    let sum: f64 = live.iter().map(|&i| probs[i]).sum();
    let deficit = (min_prob * live.len() as f64 - sum).max(0.0);
    let scale = (1.0 - deficit) / sum;
    let clipped: Vec<f64> = (0..probs.len()).map(|i| if live.contains(&i) { (probs[i] * scale).max(min_prob) } else { 0.0 }).collect();
    on_live(&clipped, live)
}

/// The reference's fitting objective for `(n, loss)` points: Huber loss (δ = 1e-3) between
/// `log L` and `log(exp(a - alpha log n) + exp(e))`, plus its bounds (alpha ∈ [0, 0.8],
/// `a ≤ 6.5`, `e ≥ 0.5`) as linear penalties.
pub fn power_law_objective(params: &[f64], data: &[(f64, f64)]) -> f64 {
    let (a, e, alpha) = (params[0], params[1], params[2]);
    let huber = |d: f64| {
        let d = d.abs();
        const DELTA: f64 = 1e-3;
        if d > DELTA {
            DELTA * (d - 0.5 * DELTA)
        } else {
            0.5 * d * d
        }
    };
    let fit: f64 = data
        .iter()
        .map(|&(n, l)| {
            let x = a - alpha * n.ln();
            let m = x.max(e);
            let predicted = m + ((x - m).exp() + (e - m).exp()).ln();
            huber(l.ln() - predicted)
        })
        .sum();
    fit + (alpha - 0.8).max(0.0) - alpha.min(0.001) + (a - 6.5).max(0.0) - (e - 0.5).min(0.0)
}

struct PowerLawFit<'a>(&'a [(f64, f64)]);

impl CostFunction for PowerLawFit<'_> {
    type Param = Vec<f64>;
    type Output = f64;

    fn cost(&self, p: &Self::Param) -> std::result::Result<f64, argmin::core::Error> {
        Ok(power_law_objective(p, self.0))
    }
}

/// Fit `L(n) = exp(e) + exp(a) / n^alpha` to `data` (`(n, loss)`, n > 0): the reference's grid
/// of starts (a ∈ -2..6 by 1, e ∈ -2..2 by 0.5, alpha ∈ 0..0.8 by 0.1), the 8 best refined by
/// Nelder–Mead, the lowest objective kept.
pub fn fit_power_law(data: &[(f64, f64)]) -> PowerLaw {
    let mut grid = Vec::with_capacity(512);
    for ia in 0..8 {
        for ie in 0..8 {
            for ial in 0..8 {
                let p = vec![-2.0 + ia as f64, -2.0 + 0.5 * ie as f64, 0.1 * ial as f64];
                grid.push((power_law_objective(&p, data), p));
            }
        }
    }
    grid.sort_by(|x, y| x.0.total_cmp(&y.0));
    let mut best = PowerLaw { a: grid[0].1[0], e: grid[0].1[1], alpha: grid[0].1[2], objective: grid[0].0 };
    for (_, start) in grid.iter().take(8) {
        let simplex =
            vec![start.clone(), vec![start[0] + 0.5, start[1], start[2]], vec![start[0], start[1] + 0.25, start[2]], vec![start[0], start[1], start[2] + 0.05]];
        let Ok(solver) = NelderMead::new(simplex).with_sd_tolerance(1e-10) else { continue };
        let Ok(res) = Executor::new(PowerLawFit(data), solver).configure(|s| s.max_iters(400)).run() else { continue };
        let state = res.state();
        if let Some(p) = state.best_param.as_ref() {
            if state.best_cost < best.objective {
                best = PowerLaw { a: p[0], e: p[1], alpha: p[2], objective: state.best_cost };
            }
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(ratios: &[f64], mixer: &dyn Mixer) -> TopicState {
        TopicState {
            topics: (0..ratios.len()).map(|i| format!("t{i}")).collect(),
            ratios: ratios.to_vec(),
            credits: vec![0.0; ratios.len()],
            reads: vec![0; ratios.len()],
            exhausted: vec![false; ratios.len()],
            last_losses: None,
            last_adjusted_tokens: 0,
            initial_ratios: ratios.to_vec(),
            mixer: mixer.initial_state(ratios),
        }
    }

    fn close(a: &[f64], b: &[f64], tol: f64) -> bool {
        a.len() == b.len() && a.iter().zip(b).all(|(x, y)| (x - y).abs() < tol)
    }

    #[test]
    fn odm_matches_the_reference_group_update_by_hand() {
        let odm = Odm { config: OdmConfig::default() };
        let mut s = state(&[0.5, 0.3, 0.2], &odm);
        let obs = |l: &'static [Option<f64>]| Observation { source: "web", tokens: 0, sequences: 0, losses: l };
        // Update 1: ε_0 = 1/3; ε_1 = min(1/3, sqrt(ln 3 / 3)) = 1/3, so 1 - Kε = 0: uniform.
        odm.update(&mut s, &obs(&[Some(3.0), Some(2.0), Some(4.0)])).unwrap();
        let r1 = [0.1 * 3.0 / 0.5, 0.1 * 2.0 / 0.3, 0.1 * 4.0 / 0.2];
        assert!(close(&s.ratios, &[1.0 / 3.0; 3], 1e-12), "{:?}", s.ratios);
        // Update 2: ε_2 = min(1/3, sqrt(ln 3 / 6)) = 0.4279 > 1/3 → still 1/3; K = 3 → uniform
        // again. Use K = 2 instead to see the exponential weights move.
        let Some(MixerState::Odm { cumulative_reward, updates, .. }) = &s.mixer else { panic!() };
        assert!(close(cumulative_reward, &r1, 1e-12) && *updates == 1);

        let mut s = state(&[0.5, 0.5, 0.0], &odm);
        s.exhausted[2] = true;
        let e = |t: f64| (0.5f64).min(((2.0f64).ln() / (2.0 * t)).sqrt());
        odm.update(&mut s, &obs(&[Some(3.0), Some(2.0), None])).unwrap();
        let mut r = [0.1 * 3.0 / 0.5, 0.1 * 2.0 / 0.5];
        // ε_1 = min(0.5, sqrt(ln2/2) = 0.589) = 0.5 → uniform.
        assert!(close(&s.ratios, &[0.5, 0.5, 0.0], 1e-12));
        for t in 2..6 {
            let (prev, eps) = (e(t as f64 - 1.0), e(t as f64));
            let before = s.ratios.clone();
            odm.update(&mut s, &obs(&[Some(3.0), Some(2.0), None])).unwrap();
            r[0] += 0.1 * 3.0 / before[0];
            r[1] += 0.1 * 2.0 / before[1];
            let z = (r[0] * prev).exp() + (r[1] * prev).exp();
            let w = [(r[0] * prev).exp() * (1.0 - 2.0 * eps) / z + eps, (r[1] * prev).exp() * (1.0 - 2.0 * eps) / z + eps];
            let expected = [w[0] / (w[0] + w[1]), w[1] / (w[0] + w[1]), 0.0];
            assert!(close(&s.ratios, &expected, 1e-12), "t={t}: {:?} vs {expected:?}", s.ratios);
        }
        // The topic with the higher loss is drawn more.
        assert!(s.ratios[0] > s.ratios[1]);
    }

    #[test]
    fn the_power_law_fit_recovers_a_known_law() {
        let law = PowerLaw { a: 2.0, e: 0.8, alpha: 0.4, objective: 0.0 };
        let data: Vec<(f64, f64)> = [10.0, 20.0, 40.0, 80.0, 160.0, 320.0].iter().map(|&n| (n, law.loss(n))).collect();
        let fit = fit_power_law(&data);
        for &(n, l) in &data {
            assert!((fit.loss(n) - l).abs() / l < 2e-3, "n={n}: {} vs {l} ({fit:?})", fit.loss(n));
        }
        assert!(fit.objective < 1e-5, "{fit:?}");
        // The bounds hold: e ≥ 0.5 even when the data would have it lower.
        let low: Vec<(f64, f64)> = data.iter().map(|&(n, l)| (n, l * 0.3)).collect();
        assert!(fit_power_law(&low).e > 0.49);
    }

    #[test]
    fn clip_min_probability_as_the_reference() {
        // probs [0.995, 0.005, 0.0]: deficit = max(0.03 - 1, 0) = 0, scale 1, max(p, 0.01),
        // renormalised.
        let c = clip_min_probability(&[0.995, 0.005, 0.0], 0.01, &[0, 1, 2]);
        let raw = [0.995, 0.01, 0.01];
        let t: f64 = raw.iter().sum();
        assert!(close(&c, &[raw[0] / t, raw[1] / t, raw[2] / t], 1e-12));
        // Topics not live stay at 0.
        assert_eq!(clip_min_probability(&[0.9, 0.1, 0.0], 0.01, &[0, 1])[2], 0.0);
    }

    #[test]
    fn ado_policy_by_hand() {
        let cfg = AdoConfig { min_points: 3, ..AdoConfig::default() };
        let ado = Ado { config: cfg.clone() };
        let prior = [0.6, 0.4];
        let mut s = state(&prior, &ado);
        // Two laws: topic 0 flattens early (small exponent), topic 1 keeps falling.
        let laws = [PowerLaw { a: 1.0, e: 1.0, alpha: 0.3, objective: 0.0 }, PowerLaw { a: 2.5, e: 0.9, alpha: 0.6, objective: 0.0 }];
        let mut reads = [0u64; 2];
        let mut updates = Vec::new();
        for (k, n) in [10u64, 20, 40, 80].into_iter().enumerate() {
            // Draw 60/40 between points.
            reads[0] += 6;
            reads[1] += 4;
            s.reads = reads.to_vec();
            let losses: Vec<Option<f64>> = laws.iter().map(|l| Some(l.loss(n as f64))).collect();
            let ev = ado.update(&mut s, &Observation { source: "web", tokens: n * 256, sequences: n, losses: &losses }).unwrap().unwrap();
            let MixtureEvent::Update { update, .. } = ev else { panic!() };
            if k + 1 < 3 {
                // Fewer than min_points points: no fit, ratios kept.
                assert!(update.detail == MixerDetail::Ado { fits: vec![None, None], preference: update.before.clone() });
                assert!(close(&s.ratios, &prior, 1e-12));
            }
            updates.push(update);
        }
        // ρ by hand from the fitted laws of each fitting update: slope · prior · sqrt(h), h the
        // drawn shares (every interval drew exactly the prior's 0.6 / 0.4), clipped.
        let mut rhos = Vec::new();
        for (update, n) in updates[2..].iter().zip([40.0, 80.0]) {
            let MixerDetail::Ado { fits, preference } = &update.detail else { panic!() };
            let fits: Vec<PowerLaw> = fits.iter().map(|f| f.expect("fitted")).collect();
            for (f, l) in fits.iter().zip(&laws) {
                assert!((f.loss(n) - l.loss(n)).abs() < 5e-3, "{f:?} vs {l:?}");
            }
            let slope = |f: &PowerLaw| f.alpha.max(cfg.min_exponent) * (f.loss(n) - f.e.exp()) / n;
            let w = [slope(&fits[0]) * prior[0] * prior[0].sqrt(), slope(&fits[1]) * prior[1] * prior[1].sqrt()];
            let rho = clip_min_probability(&[w[0] / (w[0] + w[1]), w[1] / (w[0] + w[1])], cfg.min_probability, &[0, 1]);
            assert!(close(preference, &rho, 1e-12), "{preference:?} vs {rho:?}");
            rhos.push(rho);
        }
        // Update 3: π = 0.9·π̄ + 0.1·ρ₃ with π̄ still the prior, then π̄ ← (3/4)·prior + ρ₃/4;
        // update 4: π = 0.9·π̄ + 0.1·ρ₄.
        let pi3: Vec<f64> = (0..2).map(|i| 0.9 * prior[i] + 0.1 * rhos[0][i]).collect();
        assert!(close(&updates[2].ratios, &pi3, 1e-12), "{:?} vs {pi3:?}", updates[2].ratios);
        let avg3: Vec<f64> = (0..2).map(|i| 0.75 * prior[i] + 0.25 * rhos[0][i]).collect();
        let pi4: Vec<f64> = (0..2).map(|i| 0.9 * avg3[i] + 0.1 * rhos[1][i]).collect();
        assert!(close(&s.ratios, &pi4, 1e-12), "{:?} vs {pi4:?}", s.ratios);
        let Some(MixerState::Ado { updates: done, .. }) = &s.mixer else { panic!() };
        assert_eq!(*done, 4);
        assert!(rhos[1][1] > prior[1], "the topic still learning fast gains: {:?}", rhos[1]);
    }
}

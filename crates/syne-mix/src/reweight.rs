//! The paper's topic re-weighting rule (reference/paper-spec.md §4.2).
//!
//! At an adjustment point each topic i has its validation loss now, `p_i(t)`, and at the previous
//! point, `p_i(t-1)`. The change `Δp_i = p_i(t) - p_i(t-1)` is normalised to `d_i`, the factor
//! is `f_i = 1 + alpha · d_i · w_i` (clipped to `[min_factor, max_factor]`), and the ratios
//! become `r_i ← r_i · f_i / Σ_j r_j · f_j`. A topic whose loss rises (being forgotten) gains
//! weight, one that improved loses it. An exhausted topic (no data left) gets ratio 0 and the
//! others share its weight.

use crate::error::{MixError, Result};

pub use syne_recipe::recipe::{Normalisation, ReweightConfig};
pub use syne_recipe::records::mixture::Adjustment;

/// Apply the rule to `ratios` (non-negative, summing to 1) given the previous and current
/// per-topic losses, per-topic weights `w_i` and which topics are exhausted.
pub fn reweight(ratios: &[f64], previous: &[f64], current: &[f64], weights: &[f64], exhausted: &[bool], cfg: &ReweightConfig) -> Result<Adjustment> {
    let n = ratios.len();
    if [previous.len(), current.len(), weights.len(), exhausted.len()].iter().any(|&l| l != n) {
        return Err(MixError::Plan(format!("re-weighting needs one ratio, previous loss, loss, weight and exhausted flag per topic ({n} ratios)")));
    }
    if !(cfg.min_factor > 0.0 && cfg.min_factor <= 1.0 && cfg.max_factor >= 1.0) {
        return Err(MixError::Plan(format!("re-weighting bounds [{}, {}] must satisfy 0 < min ≤ 1 ≤ max", cfg.min_factor, cfg.max_factor)));
    }
    if let Some(i) = (0..n).find(|&i| !previous[i].is_finite() || !current[i].is_finite() || ratios[i] < 0.0) {
        return Err(MixError::Plan(format!("topic {i}: loss {} → {} or ratio {} is not usable", previous[i], current[i], ratios[i])));
    }
    let delta: Vec<f64> = previous.iter().zip(current).map(|(p, c)| c - p).collect();
    let changes: Vec<f64> = match cfg.normalisation {
        Normalisation::None => delta.clone(),
        Normalisation::Relative => delta.iter().zip(previous).map(|(d, p)| if *p != 0.0 { d / p.abs() } else { 0.0 }).collect(),
        Normalisation::MaxAbs => {
            let m = delta.iter().fold(0.0f64, |a, d| a.max(d.abs()));
            delta.iter().map(|d| if m > 0.0 { d / m } else { 0.0 }).collect()
        }
        Normalisation::ZScore => {
            let mean = delta.iter().sum::<f64>() / n.max(1) as f64;
            let std = (delta.iter().map(|d| (d - mean).powi(2)).sum::<f64>() / n.max(1) as f64).sqrt();
            delta.iter().map(|d| if std > 0.0 { (d - mean) / std } else { 0.0 }).collect()
        }
    };
    let factors: Vec<f64> =
        (0..n).map(|i| if exhausted[i] { 0.0 } else { (1.0 + cfg.alpha * changes[i] * weights[i]).clamp(cfg.min_factor, cfg.max_factor) }).collect();
    let total: f64 = ratios.iter().zip(&factors).map(|(r, f)| r * f).sum();
    if total <= 0.0 {
        return Err(MixError::Plan("re-weighting: every topic with a non-zero ratio is exhausted".into()));
    }
    let new = ratios.iter().zip(&factors).map(|(r, f)| r * f / total).collect();
    Ok(Adjustment { before: ratios.to_vec(), previous_losses: previous.to_vec(), losses: current.to_vec(), changes, factors, ratios: new })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: &[f64], b: &[f64]) -> bool {
        a.len() == b.len() && a.iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-12)
    }

    #[test]
    fn the_formula_by_hand() {
        // Figure 1's direction: 1.26→1.32 (up), 1.82→1.45 (down), 1.54→1.60 (up).
        let cfg = ReweightConfig { normalisation: Normalisation::None, alpha: 2.0, min_factor: 0.1, max_factor: 10.0 };
        let r = reweight(&[0.2, 0.5, 0.3], &[1.26, 1.82, 1.54], &[1.32, 1.45, 1.60], &[1.0, 1.0, 0.5], &[false; 3], &cfg).unwrap();
        let f = [1.0 + 2.0 * 0.06, 1.0 + 2.0 * -0.37, 1.0 + 2.0 * 0.06 * 0.5];
        let total = 0.2 * f[0] + 0.5 * f[1] + 0.3 * f[2];
        assert!(close(&r.factors, &f), "{:?}", r.factors);
        assert!(close(&r.ratios, &[0.2 * f[0] / total, 0.5 * f[1] / total, 0.3 * f[2] / total]));
        assert!(r.ratios[0] > 0.2 && r.ratios[1] < 0.5);
        assert!((r.ratios.iter().sum::<f64>() - 1.0).abs() < 1e-12);
    }

    #[test]
    fn normalisations() {
        let prev = [2.0, 4.0];
        let cur = [2.2, 3.6];
        let run =
            |n| reweight(&[0.5, 0.5], &prev, &cur, &[1.0, 1.0], &[false, false], &ReweightConfig { normalisation: n, ..Default::default() }).unwrap().changes;
        assert!(close(&run(Normalisation::Relative), &[0.1, -0.1]));
        assert!(close(&run(Normalisation::MaxAbs), &[0.5, -1.0]));
        assert!(close(&run(Normalisation::ZScore), &[1.0, -1.0]));
        assert!(close(&run(Normalisation::None), &[0.2, -0.4]));
    }

    #[test]
    fn edge_cases() {
        let cfg = ReweightConfig::default();
        // No change: ratios unchanged.
        let r = reweight(&[0.3, 0.7], &[2.0, 3.0], &[2.0, 3.0], &[1.0, 1.0], &[false, false], &cfg).unwrap();
        assert!(close(&r.ratios, &[0.3, 0.7]));
        // One topic: always 1.
        let r = reweight(&[1.0], &[2.0], &[5.0], &[1.0], &[false], &cfg).unwrap();
        assert!(close(&r.ratios, &[1.0]));
        // An exhausted topic gets 0; the others share its weight in proportion.
        let r = reweight(&[0.2, 0.3, 0.5], &[2.0; 3], &[2.0; 3], &[1.0; 3], &[false, true, false], &cfg).unwrap();
        assert!(close(&r.ratios, &[0.2 / 0.7, 0.0, 0.5 / 0.7]));
        // Factors are clipped.
        let r = reweight(&[0.5, 0.5], &[1.0, 1.0], &[10.0, 1.0], &[1.0, 1.0], &[false, false], &cfg).unwrap();
        assert_eq!(r.factors[0], 2.0);
        // All exhausted, mismatched lengths, bad bounds, NaN losses: errors.
        assert!(reweight(&[1.0], &[1.0], &[1.0], &[1.0], &[true], &cfg).is_err());
        assert!(reweight(&[0.5, 0.5], &[1.0], &[1.0, 1.0], &[1.0, 1.0], &[false, false], &cfg).is_err());
        assert!(reweight(&[1.0], &[1.0], &[1.0], &[1.0], &[false], &ReweightConfig { min_factor: 0.0, ..cfg.clone() }).is_err());
        assert!(reweight(&[1.0], &[f64::NAN], &[1.0], &[1.0], &[false], &cfg).is_err());
    }
}

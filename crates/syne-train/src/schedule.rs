//! Learning-rate schedules counted in tokens (not steps), so changing the batch size does not
//! change the schedule's shape.

use serde::{Deserialize, Serialize};

/// A schedule; `lr(tokens)` gives the learning rate after `tokens` training tokens.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum LrSchedule {
    /// Linear warmup from 0, then constant.
    Constant { peak: f64, warmup_tokens: u64 },
    /// Linear warmup, then cosine decay to `floor` at `total_tokens`.
    Cosine { peak: f64, warmup_tokens: u64, total_tokens: u64, floor: f64 },
    /// Warmup-stable-decay (the paper's): warmup, constant, then a linear decay over the last
    /// `decay_fraction` of `total_tokens` down to `floor`.
    WarmupStableDecay { peak: f64, warmup_tokens: u64, total_tokens: u64, decay_fraction: f64, floor: f64 },
}

fn warm(peak: f64, warmup: u64, t: u64) -> Option<f64> {
    (t < warmup).then(|| peak * (t + 1) as f64 / warmup as f64)
}

impl LrSchedule {
    pub fn lr(&self, tokens: u64) -> f64 {
        match *self {
            LrSchedule::Constant { peak, warmup_tokens } => warm(peak, warmup_tokens, tokens).unwrap_or(peak),
            LrSchedule::Cosine { peak, warmup_tokens, total_tokens, floor } => warm(peak, warmup_tokens, tokens).unwrap_or_else(|| {
                let span = total_tokens.saturating_sub(warmup_tokens).max(1) as f64;
                let p = ((tokens - warmup_tokens) as f64 / span).min(1.0);
                floor + 0.5 * (peak - floor) * (1.0 + (std::f64::consts::PI * p).cos())
            }),
            LrSchedule::WarmupStableDecay { peak, warmup_tokens, total_tokens, decay_fraction, floor } => {
                warm(peak, warmup_tokens, tokens).unwrap_or_else(|| {
                    let decay_start = (total_tokens as f64 * (1.0 - decay_fraction.clamp(0.0, 1.0))) as u64;
                    if tokens < decay_start {
                        peak
                    } else {
                        let span = total_tokens.saturating_sub(decay_start).max(1) as f64;
                        let p = ((tokens - decay_start) as f64 / span).min(1.0);
                        peak + (floor - peak) * p
                    }
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constant_with_warmup() {
        let s = LrSchedule::Constant { peak: 1e-3, warmup_tokens: 4 };
        assert_eq!(s.lr(0), 2.5e-4);
        assert_eq!(s.lr(3), 1e-3);
        assert_eq!(s.lr(1_000_000), 1e-3);
    }

    #[test]
    fn cosine_reaches_floor_and_stays() {
        let s = LrSchedule::Cosine { peak: 1.0, warmup_tokens: 10, total_tokens: 110, floor: 0.1 };
        assert_eq!(s.lr(10), 1.0);
        assert!((s.lr(60) - 0.55).abs() < 1e-12, "midpoint is halfway between peak and floor");
        assert!((s.lr(110) - 0.1).abs() < 1e-12);
        assert!((s.lr(500) - 0.1).abs() < 1e-12);
    }

    #[test]
    fn warmup_stable_decay_shape() {
        let s = LrSchedule::WarmupStableDecay { peak: 1.0, warmup_tokens: 10, total_tokens: 100, decay_fraction: 0.2, floor: 0.0 };
        assert_eq!(s.lr(5), 0.6);
        assert_eq!(s.lr(50), 1.0);
        assert_eq!(s.lr(79), 1.0);
        assert!((s.lr(90) - 0.5).abs() < 1e-12);
        assert_eq!(s.lr(100), 0.0);
        // Without decay it is warmup + constant.
        let flat = LrSchedule::WarmupStableDecay { peak: 1.0, warmup_tokens: 0, total_tokens: 100, decay_fraction: 0.0, floor: 0.0 };
        assert_eq!(flat.lr(99), 1.0);
    }
}

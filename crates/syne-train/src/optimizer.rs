//! AdamW with PyTorch's semantics (decoupled weight decay, bias correction) whose state is
//! ordinary named tensors, so a checkpoint can save and restore it exactly (tch's built-in
//! optimizers keep their state out of reach).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use tch::{Kind, Tensor};

/// AdamW hyper-parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdamWConfig {
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    pub weight_decay: f64,
    /// Parameters whose name contains any of these get no weight decay (norms, biases, ...).
    pub no_decay: Vec<String>,
}

impl Default for AdamWConfig {
    /// The paper's betas (0.9, 0.95), weight decay 0.1, none on norm weights and biases.
    fn default() -> Self {
        AdamWConfig { beta1: 0.9, beta2: 0.95, eps: 1e-8, weight_decay: 0.1, no_decay: vec!["norm".into(), "bias".into()] }
    }
}

struct Slot {
    param: Tensor,
    exp_avg: Tensor,
    exp_avg_sq: Tensor,
    decay: bool,
}

/// AdamW over a fixed set of named parameters.
pub struct AdamW {
    pub config: AdamWConfig,
    slots: BTreeMap<String, Slot>,
    /// Optimizer steps taken (for bias correction).
    pub step: u64,
}

impl AdamW {
    /// Track `params` (name -> trainable tensor), e.g. `VarStore::variables()`.
    pub fn new(params: impl IntoIterator<Item = (String, Tensor)>, config: AdamWConfig) -> AdamW {
        let slots = params
            .into_iter()
            .map(|(name, param)| {
                let decay = !config.no_decay.iter().any(|s| name.contains(s.as_str()));
                let exp_avg = param.zeros_like();
                let exp_avg_sq = param.zeros_like();
                (name, Slot { param, exp_avg, exp_avg_sq, decay })
            })
            .collect();
        AdamW { config, slots, step: 0 }
    }

    /// Zero every parameter's gradient.
    pub fn zero_grad(&mut self) {
        for s in self.slots.values_mut() {
            let mut g = s.param.grad();
            if g.defined() {
                let _ = g.zero_();
            }
        }
    }

    /// Global L2 norm of all gradients; when `max_norm` is given and exceeded, scale every
    /// gradient by `max_norm / (norm + 1e-6)` (as `torch.nn.utils.clip_grad_norm_`). Returns
    /// the norm before clipping.
    pub fn clip_grad_norm(&mut self, max_norm: Option<f64>) -> f64 {
        let grads: Vec<Tensor> = self.slots.values().map(|s| s.param.grad()).filter(Tensor::defined).collect();
        if grads.is_empty() {
            return 0.0;
        }
        let norms: Vec<Tensor> = grads.iter().map(|g| g.norm()).collect();
        let total = f64::try_from(Tensor::stack(&norms, 0).norm()).expect("scalar");
        if let Some(max) = max_norm {
            let coef = max / (total + 1e-6);
            if coef < 1.0 {
                tch::no_grad(|| {
                    for mut g in grads {
                        let _ = g.g_mul_scalar_(coef);
                    }
                });
            }
        }
        total
    }

    /// One AdamW step at learning rate `lr`.
    pub fn step(&mut self, lr: f64) {
        self.step += 1;
        let c = &self.config;
        let bc1 = 1.0 - c.beta1.powi(self.step as i32);
        let bc2_sqrt = (1.0 - c.beta2.powi(self.step as i32)).sqrt();
        tch::no_grad(|| {
            for s in self.slots.values_mut() {
                let g = s.param.grad();
                if !g.defined() {
                    continue;
                }
                if s.decay && c.weight_decay != 0.0 {
                    let _ = s.param.g_mul_scalar_(1.0 - lr * c.weight_decay);
                }
                let _ = s.exp_avg.lerp_(&g, 1.0 - c.beta1);
                let _ = s.exp_avg_sq.g_mul_scalar_(c.beta2);
                let _ = s.exp_avg_sq.addcmul_(&g, &g.g_mul_scalar(1.0 - c.beta2));
                let denom = s.exp_avg_sq.sqrt() / bc2_sqrt + c.eps;
                let update = (&s.exp_avg / &denom) * (lr / bc1);
                let _ = s.param.g_sub_(&update);
            }
        });
    }

    /// The optimizer state as named tensors (`NAME.exp_avg`, `NAME.exp_avg_sq`), for checkpoints.
    pub fn state(&self) -> Vec<(String, Tensor)> {
        let mut out = Vec::with_capacity(2 * self.slots.len());
        for (n, s) in &self.slots {
            out.push((format!("{n}.exp_avg"), s.exp_avg.shallow_clone()));
            out.push((format!("{n}.exp_avg_sq"), s.exp_avg_sq.shallow_clone()));
        }
        out
    }

    /// Restore state saved by [`AdamW::state`]; every slot must be present with its shape.
    pub fn load_state(&mut self, state: &[(String, Tensor)], step: u64) -> Result<(), String> {
        let map: BTreeMap<&str, &Tensor> = state.iter().map(|(k, v)| (k.as_str(), v)).collect();
        tch::no_grad(|| {
            for (n, s) in self.slots.iter_mut() {
                for (suffix, dst) in [("exp_avg", &mut s.exp_avg), ("exp_avg_sq", &mut s.exp_avg_sq)] {
                    let key = format!("{n}.{suffix}");
                    let src = map.get(key.as_str()).ok_or_else(|| format!("optimizer state `{key}` is missing"))?;
                    if src.size() != dst.size() {
                        return Err(format!("optimizer state `{key}`: expected shape {:?}, found {:?}", dst.size(), src.size()));
                    }
                    dst.copy_(&src.to_kind(Kind::Float).to_device(dst.device()));
                }
            }
            Ok(())
        })?;
        self.step = step;
        Ok(())
    }
}

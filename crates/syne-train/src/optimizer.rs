//! AdamW with PyTorch's semantics (decoupled weight decay, bias correction) whose state is
//! ordinary named tensors, so a checkpoint can save and restore it exactly (tch's built-in
//! optimizers keep their state out of reach).

use std::collections::BTreeMap;

use tch::{Kind, Tensor};

pub use syne_recipe::train::AdamWConfig;

/// Parameters sharing a weight-decay setting, stored back to back in one flat buffer: every
/// parameter tensor is re-pointed at its slice of `params`, and, once autograd has created its
/// gradient, the gradient tensor at its slice of `grads` (backward then accumulates straight
/// into the flat buffer). The update is a dozen whole-buffer operations instead of a dozen per
/// parameter (what PyTorch's multi-tensor AdamW does; on a GPU, per-parameter kernel launches
/// otherwise dominate a small model's optimizer step), with no copy of the gradients.
struct Group {
    decay: bool,
    /// (name, parameter, offset, numel) in name order.
    members: Vec<(String, Tensor, i64, i64)>,
    /// Whether each member's gradient already lives in `grads`.
    aliased: Vec<bool>,
    params: Tensor,
    grads: Tensor,
    exp_avg: Tensor,
    exp_avg_sq: Tensor,
}

impl Group {
    fn new(decay: bool, mut members: Vec<(String, Tensor)>) -> Group {
        members.sort_by(|a, b| a.0.cmp(&b.0));
        let total: i64 = members.iter().map(|(_, p)| p.numel() as i64).sum();
        let device = members.first().map_or(tch::Device::Cpu, |(_, p)| p.device());
        let params = Tensor::zeros([total], (Kind::Float, device));
        let mut placed = Vec::with_capacity(members.len());
        let mut offset = 0;
        tch::no_grad(|| {
            for (name, mut p) in members {
                let n = p.numel() as i64;
                let mut slice = params.narrow(0, offset, n);
                slice.copy_(&p.detach().reshape([-1]).to_kind(Kind::Float));
                // The parameter keeps its identity (autograd leaf, VarStore entry) and now
                // reads and writes its slice of the flat buffer.
                let _ = p.set_source_tensor_(&slice.view(p.size().as_slice()));
                placed.push((name, p, offset, n));
                offset += n;
            }
        });
        Group {
            decay,
            aliased: vec![false; placed.len()],
            members: placed,
            grads: params.zeros_like(),
            exp_avg: params.zeros_like(),
            exp_avg_sq: params.zeros_like(),
            params,
        }
    }

    /// Make `grads` hold every parameter's gradient: a gradient autograd created since the
    /// last call is copied in once and re-pointed at its slice (later backward passes add into
    /// the slice in place); a parameter without a gradient contributes zeros.
    fn gather(&mut self) {
        tch::no_grad(|| {
            for (i, (_, p, off, n)) in self.members.iter().enumerate() {
                if self.aliased[i] {
                    continue;
                }
                let mut g = p.grad();
                let mut dst = self.grads.narrow(0, *off, *n);
                if g.defined() {
                    dst.copy_(&g.reshape([-1]));
                    let _ = g.set_source_tensor_(&dst.view(p.size().as_slice()));
                    self.aliased[i] = true;
                } else {
                    let _ = dst.zero_();
                }
            }
        });
    }

    fn zero_grad(&mut self) {
        tch::no_grad(|| {
            let _ = self.grads.zero_();
            for (i, (_, p, _, _)) in self.members.iter().enumerate() {
                let mut g = p.grad();
                if !self.aliased[i] && g.defined() {
                    let _ = g.zero_();
                }
            }
        });
    }

    fn view_of(&self, flat: &Tensor, i: usize) -> Tensor {
        let (_, p, off, n) = &self.members[i];
        flat.narrow(0, *off, *n).view(p.size().as_slice())
    }
}

/// AdamW over named parameters; parameters whose name contains one of `no_decay` get no
/// weight decay.
pub struct AdamW {
    /// The hyper-parameters.
    pub config: AdamWConfig,
    groups: Vec<Group>,
    /// Whether this step's gradients are already in the flat buffers.
    gathered: bool,
    /// Completed optimizer steps (for bias correction).
    pub step: u64,
}

impl AdamW {
    /// Take over `params` (all f32, on one device): they are moved into flat buffers.
    pub fn new(params: impl IntoIterator<Item = (String, Tensor)>, config: AdamWConfig) -> AdamW {
        let (mut decay, mut no_decay) = (Vec::new(), Vec::new());
        for (name, p) in params {
            if config.no_decay.iter().any(|s| name.contains(s.as_str())) {
                no_decay.push((name, p));
            } else {
                decay.push((name, p));
            }
        }
        let groups = [(true, decay), (false, no_decay)].into_iter().filter(|(_, m)| !m.is_empty()).map(|(d, m)| Group::new(d, m)).collect();
        AdamW { config, groups, gathered: false, step: 0 }
    }

    /// Zero the gradients (before accumulating a new step's).
    pub fn zero_grad(&mut self) {
        self.groups.iter_mut().for_each(Group::zero_grad);
        self.gathered = false;
    }

    fn gather(&mut self) {
        if !self.gathered {
            self.groups.iter_mut().for_each(Group::gather);
            self.gathered = true;
        }
    }

    /// Global L2 norm of all gradients; with `max_norm`, scale them so that it is at most
    /// `max_norm` (PyTorch's `clip_grad_norm_`, coefficient `max / (norm + 1e-6)`).
    pub fn clip_grad_norm(&mut self, max_norm: Option<f64>) -> f64 {
        self.gather();
        if self.groups.is_empty() {
            return 0.0;
        }
        let norms: Vec<Tensor> = self.groups.iter().map(|g| g.grads.norm()).collect();
        let total = f64::try_from(Tensor::stack(&norms, 0).norm()).expect("scalar");
        if let Some(max) = max_norm {
            let coef = max / (total + 1e-6);
            if coef < 1.0 {
                tch::no_grad(|| {
                    for g in &mut self.groups {
                        let _ = g.grads.g_mul_scalar_(coef);
                    }
                });
            }
        }
        total
    }

    /// One AdamW update at learning rate `lr`.
    pub fn step(&mut self, lr: f64) {
        self.gather();
        self.step += 1;
        let c = self.config.clone();
        let bc1 = 1.0 - c.beta1.powi(self.step as i32);
        let bc2_sqrt = (1.0 - c.beta2.powi(self.step as i32)).sqrt();
        tch::no_grad(|| {
            for s in &mut self.groups {
                let g = &s.grads;
                if s.decay && c.weight_decay != 0.0 {
                    let _ = s.params.g_mul_scalar_(1.0 - lr * c.weight_decay);
                }
                let _ = s.exp_avg.lerp_(g, 1.0 - c.beta1);
                // exp_avg_sq = beta2 * exp_avg_sq + (1 - beta2) * g^2, as a lerp towards g^2:
                // two passes over the buffers fewer than mul + addcmul with a scaled copy.
                let _ = s.exp_avg_sq.lerp_(&g.square(), 1.0 - c.beta2);
                // param -= lr / bc1 * exp_avg / (sqrt(exp_avg_sq) / sqrt(bc2) + eps), with the
                // step size folded into the denominator so one addcdiv applies the update.
                // (lr = 0, e.g. the first warm-up step, changes nothing and would divide by 0.)
                if lr != 0.0 {
                    let mut t = s.exp_avg_sq.sqrt();
                    let _ = t.g_div_scalar_(bc2_sqrt);
                    let _ = t.g_add_scalar_(c.eps);
                    let _ = t.g_mul_scalar_(-bc1 / lr);
                    let _ = s.params.addcdiv_(&s.exp_avg, &t);
                }
            }
        });
        self.gathered = false;
    }

    /// The optimizer state as named tensors (`NAME.exp_avg`, `NAME.exp_avg_sq`), for checkpoints.
    pub fn state(&self) -> Vec<(String, Tensor)> {
        let mut out = Vec::new();
        for g in &self.groups {
            for (i, (n, ..)) in g.members.iter().enumerate() {
                out.push((format!("{n}.exp_avg"), g.view_of(&g.exp_avg, i)));
                out.push((format!("{n}.exp_avg_sq"), g.view_of(&g.exp_avg_sq, i)));
            }
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    /// Restore state saved by [`AdamW::state`]; every slot must be present with its shape.
    pub fn load_state(&mut self, state: &[(String, Tensor)], step: u64) -> Result<(), String> {
        let map: BTreeMap<&str, &Tensor> = state.iter().map(|(k, v)| (k.as_str(), v)).collect();
        tch::no_grad(|| {
            for g in &self.groups {
                for (i, (n, ..)) in g.members.iter().enumerate() {
                    for (suffix, flat) in [("exp_avg", &g.exp_avg), ("exp_avg_sq", &g.exp_avg_sq)] {
                        let key = format!("{n}.{suffix}");
                        let src = map.get(key.as_str()).ok_or_else(|| format!("optimizer state `{key}` is missing"))?;
                        let mut dst = g.view_of(flat, i);
                        if src.size() != dst.size() {
                            return Err(format!("optimizer state `{key}`: expected shape {:?}, found {:?}", dst.size(), src.size()));
                        }
                        dst.copy_(&src.to_kind(Kind::Float).to_device(dst.device()));
                    }
                }
            }
            Ok(())
        })?;
        self.step = step;
        Ok(())
    }
}

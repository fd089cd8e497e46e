//! AdamW with PyTorch's semantics (decoupled weight decay, bias correction) whose state is
//! ordinary named tensors, so a checkpoint can save and restore it exactly (tch's built-in
//! optimizers keep their state out of reach).

use std::collections::BTreeMap;

use tch::{Kind, Tensor};

pub use syne_recipe::train::AdamWConfig;

/// Parameters sharing a weight-decay setting, stored back to back in one flat buffer: every
/// parameter tensor is re-pointed at its slice of `params`, and, once autograd has created its
/// gradient, the gradient tensor at its slice of `grads` (backward then accumulates straight
/// into the flat buffer). The update is PyTorch's fused AdamW over the flat buffers
/// ([`syne_model::native::adamw`]): one pass reading gradient, parameter and moments once and writing
/// parameter and moments once, with the clipping folded in, instead of a dozen passes per
/// parameter (on a GPU, per-parameter kernel launches otherwise dominate a small model's
/// optimizer step; on the CPU, memory passes over 4 x N floats), with no copy of the gradients.
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
    /// The step count as the fused kernel reads it (a float32 scalar on the buffers' device).
    step: Tensor,
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
            step: Tensor::zeros([], (Kind::Float, device)),
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
    /// What the next [`AdamW::step`] divides the gradients by (set by
    /// [`AdamW::clip_grad_norm`] when the norm exceeds its bound; a scalar on the device).
    grad_scale: Option<Tensor>,
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
        AdamW { config, groups, gathered: false, grad_scale: None, step: 0 }
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

    /// Global L2 norm of all gradients; with `max_norm`, the gradients are scaled so that it is
    /// at most `max_norm` (PyTorch's `clip_grad_norm_`: coefficient `max / (norm + 1e-6)`,
    /// applied when below 1). The scaling happens inside the next [`AdamW::step`] (the fused
    /// update divides each gradient by `(norm + 1e-6) / max` as it reads it), which saves a
    /// read and a write of every gradient.
    pub fn clip_grad_norm(&mut self, max_norm: Option<f64>) -> f64 {
        self.gather();
        self.grad_scale = None;
        if self.groups.is_empty() {
            return 0.0;
        }
        let norms: Vec<Tensor> = self.groups.iter().map(|g| g.grads.norm()).collect();
        let total = Tensor::stack(&norms, 0).norm();
        let total_value = f64::try_from(&total).expect("scalar");
        if let Some(max) = max_norm {
            if max / (total_value + 1e-6) < 1.0 {
                // Derived from the norm tensor itself, on the buffers' device, so the fused
                // update reads its divisor there (the norm was already read back above, for
                // the step's metrics).
                self.grad_scale = Some(tch::no_grad(|| (total + 1e-6) / max));
            }
        }
        total_value
    }

    /// One AdamW update at learning rate `lr` (PyTorch's `AdamW(fused=True)`; see
    /// [`syne_model::native::adamw`]). Fails only if libtorch rejects the buffers (e.g. a device it
    /// has no fused kernel for), naming the reason.
    pub fn step(&mut self, lr: f64) -> Result<(), String> {
        self.gather();
        self.step += 1;
        let c = self.config.clone();
        let scale = self.grad_scale.take();
        tch::no_grad(|| {
            for s in &mut self.groups {
                let _ = s.step.fill_(self.step as f64);
                let step =
                    syne_model::native::AdamWStep { lr, beta1: c.beta1, beta2: c.beta2, weight_decay: if s.decay { c.weight_decay } else { 0.0 }, eps: c.eps };
                let buffers = syne_model::native::AdamWBuffers {
                    params: &[&s.params],
                    grads: &[&s.grads],
                    exp_avgs: &[&s.exp_avg],
                    exp_avg_sqs: &[&s.exp_avg_sq],
                    steps: &[&s.step],
                };
                syne_model::native::adamw(&buffers, step, scale.as_ref())?;
            }
            Ok::<(), String>(())
        })?;
        self.gathered = false;
        Ok(())
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

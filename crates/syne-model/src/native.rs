//! Safe wrappers over libtorch facilities tch does not bind, compiled from `csrc/native.cpp`
//! by the crate's build script against the libtorch torch-sys links: PyTorch's fused AdamW
//! step ([`adamw`]), a caching allocator for CPU tensor storage
//! ([`install_cpu_caching_allocator`]), RMSNorm ([`rms_norm`]), rotary position embedding
//! ([`rope`]) and SwiGLU with the down projection ([`swiglu_down`]) on the CPU as single
//! autograd nodes, and the output head with its cross-entropy, chunked over tokens, on any
//! device ([`linear_cross_entropy`]).

use std::ffi::{c_char, c_int, CStr};

use tch::Tensor;
use torch_sys::C_tensor;

extern "C" {
    fn syne_install_cpu_caching_allocator(limit_bytes: usize) -> c_int;
    fn syne_cpu_caching_allocator_stats(out: *mut u64);
    fn syne_swiglu_down(g: *mut C_tensor, u: *mut C_tensor, w: *mut C_tensor, out: *mut *mut C_tensor, err: *mut c_char, err_len: usize) -> c_int;
    fn syne_linear_cross_entropy(
        h: *mut C_tensor,
        w: *mut C_tensor,
        targets: *mut C_tensor,
        chunk: i64,
        out: *mut *mut C_tensor,
        err: *mut c_char,
        err_len: usize,
    ) -> c_int;
    fn syne_rope(x: *mut C_tensor, cos: *mut C_tensor, sin: *mut C_tensor, out: *mut *mut C_tensor, err: *mut c_char, err_len: usize) -> c_int;
    fn syne_rms_norm(x: *mut C_tensor, w: *mut C_tensor, eps: f64, out: *mut *mut C_tensor, err: *mut c_char, err_len: usize) -> c_int;
    fn syne_fused_adamw(
        params: *const *mut C_tensor,
        grads: *const *mut C_tensor,
        exp_avgs: *const *mut C_tensor,
        exp_avg_sqs: *const *mut C_tensor,
        steps: *const *mut C_tensor,
        n: usize,
        lr: f64,
        beta1: f64,
        beta2: f64,
        weight_decay: f64,
        eps: f64,
        grad_scale: *mut C_tensor,
        err: *mut c_char,
        err_len: usize,
    ) -> c_int;
}

/// The buffers of one fused AdamW update: parameters, their gradients, both moments and the
/// step count (a float32 scalar tensor already holding this step's number), all on one device,
/// equal shapes per position.
pub struct AdamWBuffers<'a> {
    /// Parameters, updated in place.
    pub params: &'a [&'a Tensor],
    /// Their gradients (divided in place by `grad_scale` when one is given).
    pub grads: &'a [&'a Tensor],
    /// First moments, updated in place.
    pub exp_avgs: &'a [&'a Tensor],
    /// Second moments, updated in place.
    pub exp_avg_sqs: &'a [&'a Tensor],
    /// Step counts for bias correction.
    pub steps: &'a [&'a Tensor],
}

/// Hyper-parameters of one fused AdamW update.
#[derive(Clone, Copy, Debug)]
pub struct AdamWStep {
    /// Learning rate.
    pub lr: f64,
    /// First-moment decay.
    pub beta1: f64,
    /// Second-moment decay.
    pub beta2: f64,
    /// Decoupled weight decay (`param *= 1 - lr * weight_decay`).
    pub weight_decay: f64,
    /// Denominator term.
    pub eps: f64,
}

/// PyTorch's fused AdamW (`torch.optim.AdamW(fused=True)`, `at::_fused_adamw_`) over `buffers`:
/// one pass reading each gradient, parameter and moment once and writing each parameter and
/// moment once, on the CPU (vectorised, parallel) and on CUDA (one multi-tensor kernel). With
/// `grad_scale`, gradients are first divided by it (clipping folded into the update).
pub fn adamw(buffers: &AdamWBuffers, step: AdamWStep, grad_scale: Option<&Tensor>) -> Result<(), String> {
    let n = buffers.params.len();
    let lists = [buffers.grads, buffers.exp_avgs, buffers.exp_avg_sqs, buffers.steps];
    if lists.iter().any(|l| l.len() != n) {
        return Err(format!("fused AdamW: {n} parameters but {:?} gradients/moments/steps", lists.map(<[_]>::len)));
    }
    // The C++ side only reads through these pointers (it copies each `at::Tensor` handle, which
    // shares the storage it then updates in place, as tch's own in-place operations do).
    let ptrs = |l: &[&Tensor]| l.iter().map(|t| t.as_ptr() as *mut C_tensor).collect::<Vec<_>>();
    let (p, g, m, v, s) = (ptrs(buffers.params), ptrs(buffers.grads), ptrs(buffers.exp_avgs), ptrs(buffers.exp_avg_sqs), ptrs(buffers.steps));
    let scale = grad_scale.map_or(std::ptr::null_mut(), |t| t.as_ptr() as *mut C_tensor);
    // SAFETY: every pointer is a live tch tensor borrowed for the duration of the call; the
    // lists have `n` entries each (checked above).
    call_shim(|err, err_len| unsafe {
        syne_fused_adamw(
            p.as_ptr(),
            g.as_ptr(),
            m.as_ptr(),
            v.as_ptr(),
            s.as_ptr(),
            n,
            step.lr,
            step.beta1,
            step.beta2,
            step.weight_decay,
            step.eps,
            scale,
            err,
            err_len,
        )
    })
}

/// Run a shim function that returns 0, or non-zero with a NUL-terminated message written to the
/// error buffer it is given (every C++ exception is caught on the other side).
fn call_shim(call: impl FnOnce(*mut c_char, usize) -> c_int) -> Result<(), String> {
    let mut err = vec![0 as c_char; 1024];
    if call(err.as_mut_ptr(), err.len()) == 0 {
        Ok(())
    } else {
        // SAFETY: the C++ side NUL-terminates the buffer.
        Err(unsafe { CStr::from_ptr(err.as_ptr()) }.to_string_lossy().into_owned())
    }
}

/// Make libtorch keep freed CPU tensor blocks of 1 MiB and more (up to `limit_bytes` held,
/// the least recently freed released first) and hand them out again for the same size class,
/// instead of returning them to the C library. glibc maps every block above 32 MiB afresh and
/// unmaps it on free (smaller ones are trimmed back too), so without this each training step
/// page-faults in, and the kernel zeroes, every large activation, logit and gradient buffer again
/// (about 4 GB a step for SmolLM2-135M at 2,048 tokens). Affects allocations made after the
/// call; installed once per process (returns whether this call installed it).
pub fn install_cpu_caching_allocator(limit_bytes: usize) -> bool {
    // SAFETY: no arguments but a size; the C++ side installs at most once.
    unsafe { syne_install_cpu_caching_allocator(limit_bytes) == 1 }
}

/// What the CPU caching allocator has done: blocks reused, blocks taken from the C library,
/// bytes it holds now (all 0 when it is not installed).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Allocations served from the cache.
    pub hits: u64,
    /// Cacheable allocations the cache could not serve.
    pub misses: u64,
    /// Bytes held for reuse.
    pub cached_bytes: u64,
}

/// The CPU caching allocator's counters.
pub fn cpu_caching_allocator_stats() -> CacheStats {
    let mut out = [0u64; 3];
    // SAFETY: `out` has the three slots the C++ side writes.
    unsafe { syne_cpu_caching_allocator_stats(out.as_mut_ptr()) };
    CacheStats { hits: out[0], misses: out[1], cached_bytes: out[2] }
}

/// The default bound on what the CPU caching allocator holds: 4 GiB (a SmolLM2-135M training step at 2,048 tokens frees ~4.7 GiB of cacheable blocks; the cache holds memory that was live at the step's peak, so it does not raise it).
pub const DEFAULT_CPU_CACHE_BYTES: usize = 4 << 30;

/// RMSNorm over the last dimension of `x` (`x * rsqrt(mean(x^2) + eps) * w`, HF's
/// `LlamaRMSNorm` in f32), for f32 CPU tensors, as one autograd node with hand-written loops:
/// the forward reads `x` once and writes the output once, the backward is one pass, and only
/// `x` and one value per row are kept for backward (the composed version runs six kernels
/// forward and about ten backward, and keeps their intermediates). Gradients reach `x` and `w`.
pub fn rms_norm(x: &Tensor, w: &Tensor, eps: f64) -> Result<Tensor, String> {
    // SAFETY: `x` and `w` are live tensors for the call.
    new_tensor("syne_rms_norm", |out, err, err_len| unsafe { syne_rms_norm(ptr(x), ptr(w), eps, out, err, err_len) })
}

/// The Llama MLP after its gate and up projections, `(silu(g) * u) @ w^T`, for f32 CPU tensors
/// (`g`, `u`: `[..., I]`; `w`: the down projection `[D, I]`), as one autograd node: one
/// vectorised pass makes the product, and only `g` and `u` are kept for backward, which
/// recomputes the product for `w`'s gradient. The composed version also keeps `silu(g)` and the
/// product (two more tensors of the MLP's width per token and layer: 0.75 GB for SmolLM2-135M at
/// 2,048 tokens) and runs about five element-wise kernels where this runs three loops.
/// Gradients reach `g`, `u` and `w`.
pub fn swiglu_down(g: &Tensor, u: &Tensor, w: &Tensor) -> Result<Tensor, String> {
    // SAFETY: the three tensors are live for the call.
    new_tensor("syne_swiglu_down", |out, err, err_len| unsafe { syne_swiglu_down(ptr(g), ptr(u), ptr(w), out, err, err_len) })
}

/// The mean cross-entropy of `targets` (`[n]`, int64, each a row of `w`) under the logits
/// `h @ w^T` (`h`: `[n, d]`, `w`: `[V, d]`, both f32 or both bf16; the logits are reduced in
/// f32), as one autograd node computed `chunk` tokens at a time on any device. The forward pass
/// also makes the gradients of `h` and `w` (softmax minus one-hot, written over each chunk's
/// logits and multiplied back through the two products), so at most one chunk's `chunk x V`
/// logits exist at a time; the backward only scales them. Equal to `cross_entropy(h @ w^T)` with
/// its gradients to rounding (tested).
pub fn linear_cross_entropy(h: &Tensor, w: &Tensor, targets: &Tensor, chunk: i64) -> Result<Tensor, String> {
    // SAFETY: the three tensors are live for the call.
    new_tensor("syne_linear_cross_entropy", |out, err, err_len| unsafe { syne_linear_cross_entropy(ptr(h), ptr(w), ptr(targets), chunk, out, err, err_len) })
}

fn ptr(t: &Tensor) -> *mut C_tensor {
    t.as_ptr() as *mut C_tensor
}

/// Run a shim function that writes a newly allocated tensor handle to its first argument.
fn new_tensor(name: &str, call: impl FnOnce(*mut *mut C_tensor, *mut c_char, usize) -> c_int) -> Result<Tensor, String> {
    let mut out: *mut C_tensor = std::ptr::null_mut();
    call_shim(|err, err_len| call(&mut out, err, err_len))?;
    if out.is_null() {
        return Err(format!("{name} returned no tensor"));
    }
    // SAFETY: `out` is a fresh `at::Tensor*` nothing else owns; `from_ptr` takes it over.
    Ok(unsafe { Tensor::from_ptr(out) })
}

/// Rotary position embedding of `x` `[b, t, heads, head_dim]` with tables `cos`, `sin`
/// `[1 or b, t, head_dim]` (`x * cos + cat(-x2, x1) * sin`, HF's `rotate_half` convention), for
/// f32 CPU tensors, as one autograd node: one pass forward and one backward over `x`, nothing of
/// `x` kept for backward (the composed version runs five kernels each way and keeps the rotated
/// copy). Gradients reach `x` only (the tables are constants).
pub fn rope(x: &Tensor, cos: &Tensor, sin: &Tensor) -> Result<Tensor, String> {
    // SAFETY: the three tensors are live for the call.
    new_tensor("syne_rope", |out, err, err_len| unsafe { syne_rope(ptr(x), ptr(cos), ptr(sin), out, err, err_len) })
}

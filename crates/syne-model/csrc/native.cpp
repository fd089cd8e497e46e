// libtorch facilities tch does not bind, called from `syne_model::native` through a C ABI:
//  - the fused AdamW step (tch skips functions that modify lists of tensors);
//  - a caching allocator for CPU tensor storage;
//  - RMSNorm on the CPU as one autograd node with hand-written loops (forward: one read of x,
//    one write of y; backward: one pass), where the composed version runs six kernels forward
//    and about ten backward over the hidden states and keeps their intermediates;
//  - RoPE on the CPU as one autograd node (one pass each way, nothing of x kept);
//  - SwiGLU and the down projection on the CPU as one autograd node that keeps only the gate
//    and up projections for backward (recomputing the product there);
//  - the output head and cross-entropy as one autograd node, chunk by chunk over tokens, on any
//    device: the gradients are made in the forward pass, so no chunk's logits outlive it.
// Tensors arrive as tch's `*mut C_tensor`, which is a `torch::Tensor*` (torch-sys's
// torch_api.h). Every C++ exception is caught here and returned as a message.
#include <ATen/core/Tensor.h>
#include <ATen/ops/_fused_adamw.h>
#include <c10/core/Allocator.h>
#include <c10/core/CPUAllocator.h>
#include <c10/core/impl/alloc_cpu.h>
#include <ATen/Parallel.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/empty_like.h>
#include <ATen/ops/zeros.h>
#include <ATen/ops/full.h>
#include <ATen/ops/logsumexp.h>
#include <ATen/ops/matmul.h>
#include <ATen/ops/mm.h>
#include <torch/csrc/autograd/custom_function.h>

#include <cmath>

#include <cstdint>
#include <cstring>
#include <exception>
#include <list>
#include <mutex>
#include <optional>
#include <unordered_map>
#include <vector>

namespace {
// Copy `msg` into the caller's buffer (always NUL-terminated, truncated to fit).
void write_error(const char *msg, char *err, size_t err_len) {
  if (err == nullptr || err_len == 0) return;
  std::strncpy(err, msg, err_len - 1);
  err[err_len - 1] = '\0';
}

// CPU tensor storage that is reused instead of returned to the C library. glibc serves every
// block above its mmap threshold (at most 32 MiB) with a fresh mapping and unmaps it on free,
// so each training step page-faults in (and the kernel zeroes) every large activation, logit
// and gradient buffer again: ~4 GB per SmolLM2 step, 6-8% of the step's CPU time in the kernel.
// A training or scoring loop allocates the same sizes every step, so freed blocks of at least
// `kMinCached` bytes are kept per size class (sizes rounded up to 1/8 of their power of two,
// at most 12.5% slack) and handed out again; at most `limit_` bytes are kept, the least
// recently freed released first. Smaller blocks go to the C library as before.
class CachingCpuAllocator final : public c10::Allocator {
 public:
  explicit CachingCpuAllocator(size_t limit) : limit_(limit) {}

  c10::DataPtr allocate(size_t n) override {
    void *p = nullptr;
    if (n >= kMinCached) {
      const size_t cls = size_class(n);
      {
        std::lock_guard<std::mutex> lock(mu_);
        auto it = free_.find(cls);
        if (it != free_.end() && !it->second.empty()) {
          auto node = it->second.back();
          it->second.pop_back();
          p = node->ptr;
          cached_ -= cls;
          lru_.erase(node);
          ++hits_;
        } else {
          ++misses_;
        }
      }
      if (p == nullptr) p = alloc_or_release(cls);
      std::lock_guard<std::mutex> lock(mu_);
      sizes_[p] = cls;
    } else {
      p = c10::alloc_cpu(n);
    }
    return {p, p, &CachingCpuAllocator::deleter, c10::Device(c10::DeviceType::CPU)};
  }

  c10::DeleterFnPtr raw_deleter() const override { return &CachingCpuAllocator::deleter; }

  void copy_data(void *dest, const void *src, std::size_t count) const override {
    default_copy_data(dest, src, count);
  }

  void release(void *p) {
    std::vector<void *> evicted;
    {
      std::lock_guard<std::mutex> lock(mu_);
      auto it = sizes_.find(p);
      if (it == sizes_.end()) {
        // Not one of the cached-size blocks: a small one, from the C library.
        c10::free_cpu(p);
        return;
      }
      const size_t cls = it->second;
      sizes_.erase(it);
      if (cls > limit_) {
        evicted.push_back(p);
      } else {
        while (cached_ + cls > limit_ && !lru_.empty()) {
          evict_oldest(evicted);
        }
        lru_.push_back({p, cls});
        free_[cls].push_back(std::prev(lru_.end()));
        cached_ += cls;
      }
    }
    for (void *q : evicted) c10::free_cpu(q);
  }

  void stats(uint64_t *out) {
    std::lock_guard<std::mutex> lock(mu_);
    out[0] = hits_;
    out[1] = misses_;
    out[2] = cached_;
  }

  static CachingCpuAllocator *instance;

 private:
  struct Block {
    void *ptr;
    size_t size;
  };
  static constexpr size_t kMinCached = size_t(1) << 20;

  static size_t size_class(size_t n) {
    size_t top = size_t(1) << (63 - __builtin_clzll(n));
    size_t step = top >> 3;
    return (n + step - 1) / step * step;
  }

  static void deleter(void *p) { instance->release(p); }

  // Requires `mu_`. Moves the least recently freed block to `out`.
  void evict_oldest(std::vector<void *> &out) {
    Block b = lru_.front();
    auto &v = free_[b.size];
    for (auto it = v.begin(); it != v.end(); ++it) {
      if ((*it)->ptr == b.ptr) {
        v.erase(it);
        break;
      }
    }
    lru_.pop_front();
    cached_ -= b.size;
    out.push_back(b.ptr);
  }

  // A fresh block; if the C library has none, give back every cached block and try once more.
  void *alloc_or_release(size_t n) {
    try {
      return c10::alloc_cpu(n);
    } catch (const c10::Error &) {
      std::vector<void *> evicted;
      {
        std::lock_guard<std::mutex> lock(mu_);
        while (!lru_.empty()) evict_oldest(evicted);
      }
      for (void *q : evicted) c10::free_cpu(q);
      return c10::alloc_cpu(n);
    }
  }

  const size_t limit_;
  std::mutex mu_;
  std::list<Block> lru_;
  std::unordered_map<size_t, std::vector<std::list<Block>::iterator>> free_;
  std::unordered_map<void *, size_t> sizes_;
  size_t cached_ = 0;
  uint64_t hits_ = 0, misses_ = 0;
};

CachingCpuAllocator *CachingCpuAllocator::instance = nullptr;
std::once_flag install_once;

using torch::autograd::AutogradContext;
using torch::autograd::tensor_list;

// y = x * rsqrt(mean(x^2, last dim) + eps) * w over contiguous f32 rows of length d (HF's
// LlamaRMSNorm in f32). Sums of squares and the backward's dot products accumulate in double.
// Saves x, w and the per-row rsqrt for backward:
//   dx_j = r * g_j - x_j * r^3 / d * sum_k g_k x_k,  g = dy * w;   dw = sum over rows dy * x * r.
struct RmsNormFn : public torch::autograd::Function<RmsNormFn> {
  static at::Tensor forward(AutogradContext *ctx, const at::Tensor &x_in, const at::Tensor &w_in, double eps) {
    at::Tensor x = x_in.contiguous(), w = w_in.contiguous();
    const int64_t d = x.size(-1), rows = x.numel() / d;
    at::Tensor y = at::empty_like(x), rstd = at::empty({rows}, x.options());
    const float *xp = x.const_data_ptr<float>(), *wp = w.const_data_ptr<float>();
    float *yp = y.data_ptr<float>(), *rp = rstd.data_ptr<float>();
    at::parallel_for(0, rows, 32, [&](int64_t begin, int64_t end) {
      for (int64_t r = begin; r < end; ++r) {
        const float *xr = xp + r * d;
        float *yr = yp + r * d;
        double ss = 0;
        for (int64_t k = 0; k < d; ++k) ss += double(xr[k]) * xr[k];
        const float rs = float(1.0 / std::sqrt(ss / double(d) + eps));
        rp[r] = rs;
        for (int64_t k = 0; k < d; ++k) yr[k] = (xr[k] * rs) * wp[k];
      }
    });
    ctx->save_for_backward({x, w, rstd});
    return y;
  }

  static tensor_list backward(AutogradContext *ctx, tensor_list grads) {
    auto saved = ctx->get_saved_variables();
    const at::Tensor &x = saved[0], &w = saved[1], &rstd = saved[2];
    at::Tensor dy = grads[0].contiguous();
    const int64_t d = x.size(-1), rows = x.numel() / d;
    at::Tensor dx = at::empty_like(x);
    // Per-thread partial sums of dw, added up at the end (no shared writes in the loop).
    const int64_t threads = at::get_num_threads();
    at::Tensor dw_parts = at::zeros({threads, d}, x.options().dtype(at::kDouble));
    const float *xp = x.const_data_ptr<float>(), *wp = w.const_data_ptr<float>(), *rp = rstd.const_data_ptr<float>();
    const float *gp = dy.const_data_ptr<float>();
    float *dxp = dx.data_ptr<float>();
    double *partp = dw_parts.data_ptr<double>();
    at::parallel_for(0, rows, 32, [&](int64_t begin, int64_t end) {
      double *dwp = partp + at::get_thread_num() * d;
      for (int64_t r = begin; r < end; ++r) {
        const float *xr = xp + r * d, *gr = gp + r * d;
        float *dxr = dxp + r * d;
        const float rs = rp[r];
        double dot = 0;
        for (int64_t k = 0; k < d; ++k) dot += double(gr[k]) * wp[k] * xr[k];
        const float c = float(dot * double(rs) * rs * rs / double(d));
        for (int64_t k = 0; k < d; ++k) {
          dxr[k] = rs * (gr[k] * wp[k]) - xr[k] * c;
          dwp[k] += double(gr[k]) * xr[k] * rs;
        }
      }
    });
    at::Tensor dw = dw_parts.sum(0).to(at::kFloat).view(w.sizes());
    return {dx, dw, at::Tensor()};
  }
};

// exp(x) for f32 without a library call, branch-free so that the loops below vectorise: Cephes'
// expf (round x / ln 2 to n by the 1.5 * 2^23 trick, a degree-6 polynomial on the remainder,
// scale by 2^n through the exponent bits), relative error about 2e-7 over the clamped range.
__attribute__((always_inline)) inline float exp_f32(float x) {
  // Ternaries, not fmin/fmax, so that they vectorise (NaN passes through and stays NaN).
  x = x < -87.3f ? -87.3f : x;
  x = x > 88.3f ? 88.3f : x;
  const float magic = 12582912.0f;  // 1.5 * 2^23: adding it rounds to an integer
  const float t = x * 1.44269504088896341f + magic;
  const float n = t - magic;
  const int32_t i = __builtin_bit_cast(int32_t, t) - __builtin_bit_cast(int32_t, magic);
  const float r = (x - n * 0.693359375f) - n * -2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  return p * __builtin_bit_cast(float, (i + 127) << 23);
}

// The SwiGLU loops: bodies inlined into an AVX2 + FMA build and an x86-64 baseline build of each,
// the first chosen when the CPU has both (checked once). Not `target_clones("arch=haswell")`:
// its resolver asks whether the CPU *is* a Haswell, so AMD's AVX2 machines got the baseline.

// h = silu(g) * u over n values, and s = sigmoid(g) where `s` is given (two loops, so that
// neither holds a branch and both vectorise).
__attribute__((always_inline)) inline void swiglu_forward_body(const float *__restrict g, const float *__restrict u,
                                                               float *__restrict h, float *__restrict s, int64_t n) {
  if (s == nullptr) {
    for (int64_t i = 0; i < n; ++i) h[i] = g[i] * u[i] / (1.0f + exp_f32(-g[i]));
    return;
  }
  for (int64_t i = 0; i < n; ++i) {
    const float sg = 1.0f / (1.0f + exp_f32(-g[i]));
    s[i] = sg;
    h[i] = g[i] * sg * u[i];
  }
}

// From dh (the gradient of h = silu(g) * u) and s = sigmoid(g): dg = dh * u * s * (1 + g (1 - s))
// written over dh, du = dh * g * s written over s.
__attribute__((always_inline)) inline void swiglu_backward_body(const float *__restrict g, const float *__restrict u,
                                                                float *__restrict dh_dg, float *__restrict s_du, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    const float sg = s_du[i], dh = dh_dg[i], gi = g[i];
    dh_dg[i] = dh * u[i] * sg * (1.0f + gi * (1.0f - sg));
    s_du[i] = dh * gi * sg;
  }
}

#if defined(__x86_64__) && defined(__GNUC__)
#define SYNE_X86_DISPATCH 1
__attribute__((target("avx2,fma"))) void swiglu_forward_avx2(const float *g, const float *u, float *h, float *s, int64_t n) {
  swiglu_forward_body(g, u, h, s, n);
}
__attribute__((target("avx2,fma"))) void swiglu_backward_avx2(const float *g, const float *u, float *dh_dg, float *s_du,
                                                               int64_t n) {
  swiglu_backward_body(g, u, dh_dg, s_du, n);
}
bool cpu_has_avx2_fma() {
  static const bool has = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  return has;
}
#endif

void swiglu_forward(const float *g, const float *u, float *h, float *s, int64_t n) {
#ifdef SYNE_X86_DISPATCH
  if (cpu_has_avx2_fma()) return swiglu_forward_avx2(g, u, h, s, n);
#endif
  swiglu_forward_body(g, u, h, s, n);
}

void swiglu_backward(const float *g, const float *u, float *dh_dg, float *s_du, int64_t n) {
#ifdef SYNE_X86_DISPATCH
  if (cpu_has_avx2_fma()) return swiglu_backward_avx2(g, u, dh_dg, s_du, n);
#endif
  swiglu_backward_body(g, u, dh_dg, s_du, n);
}

// y = (silu(g) * u) @ w^T for f32 CPU tensors g, u [..., I] and w [D, I] (the Llama MLP after its
// gate and up projections). Saves g, u and w; the backward recomputes h = silu(g) * u for the
// weight gradient, so neither silu(g) nor h is kept between the passes (the composed version
// keeps g, silu(g), u and h: two tensors of the MLP's width per token more).
struct SwigluDownFn : public torch::autograd::Function<SwigluDownFn> {
  static at::Tensor forward(AutogradContext *ctx, const at::Tensor &g_in, const at::Tensor &u_in, const at::Tensor &w) {
    at::Tensor g = g_in.contiguous(), u = u_in.contiguous();
    const int64_t n = g.numel();
    at::Tensor h = at::empty_like(g);
    const float *gp = g.const_data_ptr<float>(), *up = u.const_data_ptr<float>();
    float *hp = h.data_ptr<float>();
    at::parallel_for(0, n, 1 << 14, [&](int64_t begin, int64_t end) {
      swiglu_forward(gp + begin, up + begin, hp + begin, nullptr, end - begin);
    });
    ctx->save_for_backward({g, u, w});
    return at::matmul(h, w.t());
  }

  static tensor_list backward(AutogradContext *ctx, tensor_list grads) {
    auto saved = ctx->get_saved_variables();
    const at::Tensor &g = saved[0], &u = saved[1], &w = saved[2];
    const int64_t inner = g.size(-1), n = g.numel(), rows = n / inner;
    at::Tensor dy = grads[0].contiguous().view({rows, w.size(0)});
    at::Tensor h = at::empty_like(g), s = at::empty_like(g);
    const float *gp = g.const_data_ptr<float>(), *up = u.const_data_ptr<float>();
    float *hp = h.data_ptr<float>(), *sp = s.data_ptr<float>();
    at::parallel_for(0, n, 1 << 14, [&](int64_t begin, int64_t end) {
      swiglu_forward(gp + begin, up + begin, hp + begin, sp + begin, end - begin);
    });
    at::Tensor dw = at::mm(dy.t(), h.view({rows, inner}));
    h.reset();
    at::Tensor dh = at::mm(dy, w).view(g.sizes());
    float *dp = dh.data_ptr<float>();
    at::parallel_for(0, n, 1 << 14, [&](int64_t begin, int64_t end) {
      swiglu_backward(gp + begin, up + begin, dp + begin, sp + begin, end - begin);
    });
    return {dh, s, dw};
  }
};

// The mean cross-entropy of `targets` [n] (int64, each in [0, V)) under logits h @ w^T for h [n, d]
// and w [V, d] (same dtype: f32, or bf16 as autocast computes), the logits made and reduced in
// f32, `chunk` tokens at a time. The forward also makes the gradients (the softmax minus the
// one-hot target, divided by n, written over each chunk's logits and multiplied back through the
// two products), so each chunk's logits are dropped before the next: memory of one chunk's
// logits plus the gradients of h and w, where autograd's chunks each keep their logits,
// log-softmax and gradient alive until the head's backward. The backward scales them by the
// incoming gradient (in place: the node is run backward once, its saved tensors then freed).
struct LinearCrossEntropyFn : public torch::autograd::Function<LinearCrossEntropyFn> {
  static at::Tensor forward(AutogradContext *ctx, const at::Tensor &h, const at::Tensor &w, const at::Tensor &targets, int64_t chunk) {
    const int64_t n = h.size(0);
    const bool f32 = w.scalar_type() == at::kFloat;
    at::Tensor dh = at::empty_like(h);
    at::Tensor dw = at::zeros(w.sizes(), w.options().dtype(at::kFloat));
    at::Tensor total = at::zeros({}, h.options().dtype(at::kFloat));
    for (int64_t start = 0; start < n; start += chunk) {
      const int64_t len = std::min(chunk, n - start);
      at::Tensor hc = h.narrow(0, start, len), tc = targets.narrow(0, start, len).unsqueeze(1);
      at::Tensor logits = at::mm(hc, w.t());
      if (!f32) logits = logits.to(at::kFloat);
      at::Tensor lse = at::logsumexp(logits, {1}, /*keepdim=*/true);
      total.add_(lse.sub(logits.gather(1, tc)).sum());
      // softmax - one-hot, over n: the gradient of the mean loss with respect to the logits.
      logits.sub_(lse).exp_();
      logits.scatter_add_(1, tc, at::full({len, 1}, -1.0f, logits.options()));
      logits.mul_(1.0 / double(n));
      at::Tensor gl = f32 ? logits : logits.to(w.scalar_type());
      at::Tensor dhc = dh.narrow(0, start, len);
      at::mm_out(dhc, gl, w);
      if (f32) {
        dw.addmm_(gl.t(), hc);
      } else {
        dw.add_(at::mm(gl.t(), hc));
      }
    }
    ctx->save_for_backward({dh, dw});
    ctx->saved_data["w_dtype"] = static_cast<int64_t>(w.scalar_type());
    return total.div_(double(n));
  }

  static tensor_list backward(AutogradContext *ctx, tensor_list grads) {
    auto saved = ctx->get_saved_variables();
    at::Tensor dh = saved[0], dw = saved[1];
    const at::Tensor &go = grads[0];
    const auto w_dtype = static_cast<at::ScalarType>(ctx->saved_data["w_dtype"].toInt());
    dh.mul_(go.to(dh.scalar_type()));
    dw.mul_(go);
    return {dh, dw.to(w_dtype), at::Tensor(), at::Tensor()};
  }
};
// Rotary position embedding over contiguous f32 x [b, t, heads, head_dim] with tables cos/sin
// [pb, t, head_dim] (pb = b, or 1 broadcast over the batch): out = x * cos + rot(x) * sin,
// rot(x) = cat(-x[half:], x[:half]). Backward (cos/sin take no gradient):
//   dx_i = dy_i cos_i + (i < half ? dy_{i+half} sin_{i+half} : -dy_{i-half} sin_{i-half}).
void rope_rows(const float *xp, const float *cp, const float *sp, float *op, int64_t b, int64_t t, int64_t heads,
               int64_t hd, int64_t pb, bool backward) {
  const int64_t half = hd / 2;
  at::parallel_for(0, b * t, 16, [&](int64_t begin, int64_t end) {
    for (int64_t bt = begin; bt < end; ++bt) {
      const int64_t bi = bt / t, ti = bt % t;
      const float *c = cp + ((pb == 1 ? 0 : bi) * t + ti) * hd;
      const float *s = sp + ((pb == 1 ? 0 : bi) * t + ti) * hd;
      for (int64_t h = 0; h < heads; ++h) {
        const float *x = xp + (bt * heads + h) * hd;
        float *o = op + (bt * heads + h) * hd;
        if (!backward) {
          for (int64_t i = 0; i < half; ++i) o[i] = x[i] * c[i] + (-x[i + half]) * s[i];
          for (int64_t i = half; i < hd; ++i) o[i] = x[i] * c[i] + x[i - half] * s[i];
        } else {
          for (int64_t i = 0; i < half; ++i) o[i] = x[i] * c[i] + x[i + half] * s[i + half];
          for (int64_t i = half; i < hd; ++i) o[i] = x[i] * c[i] - x[i - half] * s[i - half];
        }
      }
    }
  });
}

struct RopeFn : public torch::autograd::Function<RopeFn> {
  static at::Tensor forward(AutogradContext *ctx, const at::Tensor &x_in, const at::Tensor &cos_in, const at::Tensor &sin_in) {
    at::Tensor x = x_in.contiguous(), cos = cos_in.contiguous(), sin = sin_in.contiguous();
    at::Tensor out = at::empty_like(x);
    rope_rows(x.const_data_ptr<float>(), cos.const_data_ptr<float>(), sin.const_data_ptr<float>(), out.data_ptr<float>(),
              x.size(0), x.size(1), x.size(2), x.size(3), cos.size(0), false);
    ctx->save_for_backward({cos, sin});
    return out;
  }

  static tensor_list backward(AutogradContext *ctx, tensor_list grads) {
    auto saved = ctx->get_saved_variables();
    at::Tensor dy = grads[0].contiguous();
    at::Tensor dx = at::empty_like(dy);
    rope_rows(dy.const_data_ptr<float>(), saved[0].const_data_ptr<float>(), saved[1].const_data_ptr<float>(),
              dx.data_ptr<float>(), dy.size(0), dy.size(1), dy.size(2), dy.size(3), saved[0].size(0), true);
    return {dx, at::Tensor(), at::Tensor()};
  }
};
// Run `body`; 0, or 1 with the message of the C++ exception it threw written to `err` (every
// entry point below returns through this: no exception crosses the C ABI).
template <class Body>
int guarded(char *err, size_t err_len, Body &&body) {
  try {
    body();
    return 0;
  } catch (const std::exception &e) {
    write_error(e.what(), err, err_len);
    return 1;
  }
}
}  // namespace

extern "C" {

// Make the caching allocator libtorch's CPU allocator for every later allocation (storage
// allocated before keeps its own deleter). Installed at most once per process; it is never
// destroyed (tensors may outlive any owner). Returns 1 if this call installed it, 0 if it was
// already installed.
int syne_install_cpu_caching_allocator(size_t limit_bytes) {
  int installed = 0;
  std::call_once(install_once, [&] {
    CachingCpuAllocator::instance = new CachingCpuAllocator(limit_bytes);
    // Priority above the default allocator's (0), so later registrations at 0 do not undo it.
    c10::SetCPUAllocator(CachingCpuAllocator::instance, /*priority=*/1);
    installed = 1;
  });
  return installed;
}

// RMSNorm of `x` (f32, CPU, last dimension normalised) with weight `w` as one autograd node.
// Writes a new tensor to `*out`; returns 0, or 1 with the error message in `err`.
int syne_rms_norm(at::Tensor *x, at::Tensor *w, double eps, at::Tensor **out, char *err, size_t err_len) {
  return guarded(err, err_len, [&] {
    TORCH_CHECK(x->device().is_cpu() && w->device().is_cpu(), "syne_rms_norm: CPU tensors only");
    TORCH_CHECK(x->scalar_type() == at::kFloat && w->scalar_type() == at::kFloat, "syne_rms_norm: f32 tensors only");
    TORCH_CHECK(x->dim() >= 1 && w->dim() == 1 && w->size(0) == x->size(-1), "syne_rms_norm: weight of ", w->sizes(),
                " for input of ", x->sizes());
    *out = new at::Tensor(RmsNormFn::apply(*x, *w, eps));
  });
}

// (silu(g) * u) @ w^T as one autograd node (f32, CPU; g and u of equal shapes [..., I], w [D, I]).
// Writes a new tensor to `*out`; returns 0, or 1 with the error message in `err`.
int syne_swiglu_down(at::Tensor *g, at::Tensor *u, at::Tensor *w, at::Tensor **out, char *err, size_t err_len) {
  return guarded(err, err_len, [&] {
    for (const at::Tensor *t : {g, u, w}) {
      TORCH_CHECK(t->device().is_cpu() && t->scalar_type() == at::kFloat, "syne_swiglu_down: f32 CPU tensors only, got ",
                  t->scalar_type(), " on ", t->device());
    }
    TORCH_CHECK(g->sizes() == u->sizes() && g->dim() >= 1, "syne_swiglu_down: gate ", g->sizes(), " and up ", u->sizes(),
                " differ");
    TORCH_CHECK(w->dim() == 2 && w->size(1) == g->size(-1), "syne_swiglu_down: down weight ", w->sizes(),
                " for a product of width ", g->size(-1));
    *out = new at::Tensor(SwigluDownFn::apply(*g, *u, *w));
  });
}

// Mean cross-entropy of `targets` under h @ w^T, `chunk` tokens at a time, as one autograd node.
// Writes the scalar loss to `*out`; returns 0, or 1 with the error message in `err`.
int syne_linear_cross_entropy(at::Tensor *h, at::Tensor *w, at::Tensor *targets, int64_t chunk, at::Tensor **out,
                              char *err, size_t err_len) {
  return guarded(err, err_len, [&] {
    TORCH_CHECK(h->dim() == 2 && w->dim() == 2 && h->size(1) == w->size(1), "syne_linear_cross_entropy: hidden states ",
                h->sizes(), " for a head of ", w->sizes());
    TORCH_CHECK(h->scalar_type() == w->scalar_type(), "syne_linear_cross_entropy: hidden states in ", h->scalar_type(),
                " but head in ", w->scalar_type());
    TORCH_CHECK(targets->dim() == 1 && targets->size(0) == h->size(0) && targets->scalar_type() == at::kLong,
                "syne_linear_cross_entropy: ", h->size(0), " hidden states but targets ", targets->sizes(), " of ",
                targets->scalar_type());
    TORCH_CHECK(h->device() == w->device() && h->device() == targets->device(), "syne_linear_cross_entropy: tensors on ",
                h->device(), ", ", w->device(), " and ", targets->device());
    TORCH_CHECK(chunk >= 1 && h->size(0) >= 1, "syne_linear_cross_entropy: chunk ", chunk, " over ", h->size(0), " tokens");
    *out = new at::Tensor(LinearCrossEntropyFn::apply(*h, *w, *targets, chunk));
  });
}

// RoPE of `x` [b, t, heads, head_dim] (f32, CPU) with tables [1 or b, t, head_dim] as one
// autograd node. Writes a new tensor to `*out`; returns 0, or 1 with the error in `err`.
int syne_rope(at::Tensor *x, at::Tensor *cos, at::Tensor *sin, at::Tensor **out, char *err, size_t err_len) {
  return guarded(err, err_len, [&] {
    TORCH_CHECK(x->device().is_cpu() && cos->device().is_cpu() && sin->device().is_cpu(), "syne_rope: CPU tensors only");
    TORCH_CHECK(x->scalar_type() == at::kFloat && cos->scalar_type() == at::kFloat && sin->scalar_type() == at::kFloat,
                "syne_rope: f32 tensors only");
    TORCH_CHECK(x->dim() == 4 && x->size(3) % 2 == 0, "syne_rope: input must be [b, t, heads, even head_dim], got ", x->sizes());
    TORCH_CHECK(cos->sizes() == sin->sizes() && cos->dim() == 3 && (cos->size(0) == 1 || cos->size(0) == x->size(0)) &&
                    cos->size(1) == x->size(1) && cos->size(2) == x->size(3),
                "syne_rope: tables of ", cos->sizes(), " for input of ", x->sizes());
    *out = new at::Tensor(RopeFn::apply(*x, *cos, *sin));
  });
}

// Hits, misses and bytes held of the caching allocator (zeros if it is not installed).
void syne_cpu_caching_allocator_stats(uint64_t *out) {
  out[0] = out[1] = out[2] = 0;
  if (CachingCpuAllocator::instance != nullptr) CachingCpuAllocator::instance->stats(out);
}

// One AdamW step (PyTorch's `torch.optim.AdamW(fused=True)`: decoupled weight decay, bias
// correction from `step`, a float32 scalar tensor per parameter that the caller has already
// incremented) over `n` parameters with their gradients and moments, in one pass over each
// buffer. With `grad_scale` (a float32 scalar tensor, or null) every gradient is first divided
// by it, and the divided gradient is written back: gradient clipping folded into the step.
// Returns 0, or 1 with the error message in `err`.
int syne_fused_adamw(at::Tensor **params, at::Tensor **grads, at::Tensor **exp_avgs, at::Tensor **exp_avg_sqs,
                     at::Tensor **steps, size_t n, double lr, double beta1, double beta2, double weight_decay,
                     double eps, at::Tensor *grad_scale, char *err, size_t err_len) {
  return guarded(err, err_len, [&] {
    std::vector<at::Tensor> p, g, m, v, s;
    for (size_t i = 0; i < n; ++i) {
      p.push_back(*params[i]);
      g.push_back(*grads[i]);
      m.push_back(*exp_avgs[i]);
      v.push_back(*exp_avg_sqs[i]);
      s.push_back(*steps[i]);
    }
    std::optional<at::Tensor> scale;
    if (grad_scale != nullptr) scale = *grad_scale;
    at::_fused_adamw_(p, g, m, v, /*max_exp_avg_sqs=*/{}, s, lr, beta1, beta2, weight_decay, eps,
                      /*amsgrad=*/false, /*maximize=*/false, scale, /*found_inf=*/std::nullopt);
  });
}
}

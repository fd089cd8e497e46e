// libtorch facilities tch does not bind, called from `syne_model::native` through a C ABI:
//  - the fused AdamW step (tch skips functions that modify lists of tensors);
//  - a caching allocator for CPU tensor storage;
//  - RMSNorm on the CPU as one autograd node with hand-written loops (forward: one read of x,
//    one write of y; backward: one pass), where the composed version runs six kernels forward
//    and about ten backward over the hidden states and keeps their intermediates.
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
  try {
    TORCH_CHECK(x->device().is_cpu() && w->device().is_cpu(), "syne_rms_norm: CPU tensors only");
    TORCH_CHECK(x->scalar_type() == at::kFloat && w->scalar_type() == at::kFloat, "syne_rms_norm: f32 tensors only");
    TORCH_CHECK(x->dim() >= 1 && w->dim() == 1 && w->size(0) == x->size(-1), "syne_rms_norm: weight of ", w->sizes(),
                " for input of ", x->sizes());
    *out = new at::Tensor(RmsNormFn::apply(*x, *w, eps));
    return 0;
  } catch (const std::exception &e) {
    write_error(e.what(), err, err_len);
    return 1;
  }
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
  try {
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
    return 0;
  } catch (const std::exception &e) {
    write_error(e.what(), err, err_len);
    return 1;
  }
}
}

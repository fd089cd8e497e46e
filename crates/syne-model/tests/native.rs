//! The libtorch facilities of `syne_model::native`: the CPU caching allocator reuses freed
//! blocks (and a reused block holds what the new tensor's operation wrote, never the old
//! contents), and the fused AdamW step equals the textbook update computed here.

use syne_model::native::{adamw, cpu_caching_allocator_stats, install_cpu_caching_allocator, AdamWBuffers, AdamWStep};
use tch::{Kind, Tensor};

#[test]
fn the_cpu_caching_allocator_reuses_freed_blocks_with_fresh_contents() {
    // Tests in this binary share the process: other tests' tensors may come from the cache
    // too, which is the point (everything must still compute the same).
    install_cpu_caching_allocator(256 << 20);
    let n = 3 << 20; // 12 MiB of f32: above glibc's default mmap threshold.
    let before = cpu_caching_allocator_stats();
    for i in 0..5 {
        let a = Tensor::full([n], i as f64, (Kind::Float, tch::Device::Cpu));
        assert_eq!(f64::try_from(a.sum(Kind::Double)).unwrap(), (i * n) as f64);
        let z = Tensor::zeros([n], (Kind::Float, tch::Device::Cpu));
        assert_eq!(f64::try_from(z.abs().max()).unwrap(), 0.0, "a reused block must be zeroed by zeros()");
    }
    let after = cpu_caching_allocator_stats();
    assert!(after.hits >= before.hits + 8, "blocks were not reused: {before:?} -> {after:?}");
    assert!(after.cached_bytes <= 256 << 20, "the cache holds more than its bound: {after:?}");
    // More than the bound freed at once: the cache keeps at most its bound.
    let big: Vec<Tensor> = (0..30).map(|_| Tensor::ones([n], (Kind::Float, tch::Device::Cpu))).collect();
    drop(big);
    assert!(cpu_caching_allocator_stats().cached_bytes <= 256 << 20);
}

#[test]
fn fused_adamw_matches_the_update_rule() {
    fused_adamw_on(tch::Device::Cpu);
    // The same kernel's CUDA implementation where a GPU is present (SYNE_REQUIRE_CUDA=1 makes
    // its absence a failure, as in the other GPU checks).
    if tch::Cuda::is_available() {
        fused_adamw_on(tch::Device::Cuda(0));
    } else {
        assert!(std::env::var_os("SYNE_REQUIRE_CUDA").is_none(), "SYNE_REQUIRE_CUDA is set but libtorch sees no GPU");
    }
}

fn fused_adamw_on(device: tch::Device) {
    tch::manual_seed(7);
    let p0 = Tensor::randn([1000], (Kind::Float, tch::Device::Cpu));
    let g = Tensor::randn([1000], (Kind::Float, tch::Device::Cpu));
    let (m0, v0) = (Tensor::randn([1000], (Kind::Float, tch::Device::Cpu)) * 0.1, Tensor::rand([1000], (Kind::Float, tch::Device::Cpu)) * 0.01);
    // `to_device` to the same device returns the same tensor: copy, so the originals stay put.
    let on = |t: &Tensor| t.to_device(device).copy();
    let (p, grad, m, v) = (on(&p0), on(&g), on(&m0), on(&v0));
    let step = on(&Tensor::from(3.0f32));
    let h = AdamWStep { lr: 1e-2, beta1: 0.9, beta2: 0.95, weight_decay: 0.1, eps: 1e-8 };
    let scale = on(&Tensor::from(2.0f32));
    adamw(&AdamWBuffers { params: &[&p], grads: &[&grad], exp_avgs: &[&m], exp_avg_sqs: &[&v], steps: &[&step] }, h, Some(&scale)).unwrap();
    // By hand, in f64: gradient divided by the scale, decoupled decay, bias-corrected moments.
    let d = |t: &Tensor| t.to_device(tch::Device::Cpu).to_kind(Kind::Double);
    let gs = d(&g) / 2.0;
    let m_want = d(&m0) * 0.9 + &gs * 0.1;
    let v_want = d(&v0) * 0.95 + gs.square() * 0.05;
    let (bc1, bc2) = (1.0 - 0.9f64.powi(3), 1.0 - 0.95f64.powi(3));
    let p_want = d(&p0) * (1.0 - 1e-2 * 0.1) - (&m_want / bc1) / ((&v_want / bc2).sqrt() + 1e-8) * 1e-2;
    for (name, got, want) in [("param", &p, &p_want), ("exp_avg", &m, &m_want), ("exp_avg_sq", &v, &v_want), ("grad", &grad, &gs)] {
        let err = f64::try_from((d(got) - want).abs().max()).unwrap();
        assert!(err < 1e-6, "{name} on {device:?}: max error {err}");
    }
    // Mismatched lists are refused with a message, not a crash.
    let e = adamw(&AdamWBuffers { params: &[&p], grads: &[], exp_avgs: &[&m], exp_avg_sqs: &[&v], steps: &[&step] }, h, None).unwrap_err();
    assert!(e.contains("1 parameters"), "{e}");
}

#[test]
fn fused_rms_norm_equals_the_composed_one_with_its_gradients() {
    tch::manual_seed(3);
    let x0 = Tensor::randn([3, 7, 96], (Kind::Float, tch::Device::Cpu)) * 2.0;
    let w0 = Tensor::rand([96], (Kind::Float, tch::Device::Cpu)) + 0.5;
    let dy = Tensor::randn([3, 7, 96], (Kind::Float, tch::Device::Cpu));
    let eps = 1e-5;
    let run = |fused: bool| {
        let x = x0.copy().set_requires_grad(true);
        let w = w0.copy().set_requires_grad(true);
        let y = if fused { syne_model::native::rms_norm(&x, &w, eps).unwrap() } else { &x * (x.square().mean_dim(-1, true, Kind::Float) + eps).rsqrt() * &w };
        (&y * &dy).sum(Kind::Float).backward();
        (y.detach(), x.grad(), w.grad())
    };
    let (fy, fx, fw) = run(true);
    let (cy, cx, cw) = run(false);
    for (name, a, b) in [("output", &fy, &cy), ("grad x", &fx, &cx), ("grad w", &fw, &cw)] {
        let err = f64::try_from((a - b).abs().max()).unwrap();
        let scale = f64::try_from(b.abs().max()).unwrap();
        assert!(err <= 1e-5 * scale.max(1.0), "{name}: max difference {err} (scale {scale})");
    }
    // Without a graph (inference) it is the same function.
    let y = tch::no_grad(|| syne_model::native::rms_norm(&x0, &w0, eps).unwrap());
    assert!(!y.requires_grad());
    assert!(f64::try_from((y - &cy).abs().max()).unwrap() <= 1e-5 * 10.0);
    // Wrong widths are refused with a message naming the shapes.
    let e = syne_model::native::rms_norm(&x0, &Tensor::ones([95], (Kind::Float, tch::Device::Cpu)), eps).unwrap_err();
    assert!(e.contains("95"), "{e}");
}

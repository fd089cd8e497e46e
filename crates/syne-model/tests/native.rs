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

#[test]
fn fused_swiglu_down_equals_the_composed_one_with_its_gradients() {
    tch::manual_seed(5);
    let cpu = (Kind::Float, tch::Device::Cpu);
    // Values out to +-12 reach both tails of the sigmoid; 5 x 37 x 70 = 12,950 values cross the
    // vector and thread chunk boundaries unevenly.
    let g0 = Tensor::randn([5, 37, 70], cpu) * 4.0;
    let u0 = Tensor::randn([5, 37, 70], cpu);
    let w0 = Tensor::randn([24, 70], cpu) * 0.1;
    let dy = Tensor::randn([5, 37, 24], cpu);
    let run = |fused: bool| {
        let (g, u, w) = (g0.copy().set_requires_grad(true), u0.copy().set_requires_grad(true), w0.copy().set_requires_grad(true));
        let y = if fused { syne_model::native::swiglu_down(&g, &u, &w).unwrap() } else { (g.silu() * &u).linear(&w, None::<Tensor>) };
        (&y * &dy).sum(Kind::Float).backward();
        (y.detach(), g.grad(), u.grad(), w.grad())
    };
    let (fy, fg, fu, fw) = run(true);
    let (cy, cg, cu, cw) = run(false);
    for (name, a, b) in [("output", &fy, &cy), ("grad gate", &fg, &cg), ("grad up", &fu, &cu), ("grad down", &fw, &cw)] {
        let err = f64::try_from((a - b).abs().max()).unwrap();
        let scale = f64::try_from(b.abs().max()).unwrap();
        assert!(err <= 2e-6 * scale.max(1.0), "{name}: max difference {err} (scale {scale})");
    }
    // Extreme gates stay finite and go to the limits: silu(-100) ~ 0, silu(100) = 100.
    let g = Tensor::from_slice(&[-100.0f32, 100.0, 0.0]).view([1, 3]);
    let y = tch::no_grad(|| syne_model::native::swiglu_down(&g, &Tensor::ones([1, 3], cpu), &Tensor::eye(3, cpu)).unwrap());
    let y = Vec::<f32>::try_from(y.view([-1])).unwrap();
    assert!(y[0].abs() < 1e-30 && y[1] == 100.0 && y[2] == 0.0, "{y:?}");
    // Mismatched shapes are refused with a message naming them.
    let e = syne_model::native::swiglu_down(&g0, &u0, &Tensor::zeros([24, 69], cpu)).unwrap_err();
    assert!(e.contains("69"), "{e}");
}

#[test]
fn fused_linear_cross_entropy_equals_the_composed_one_with_its_gradients() {
    tch::manual_seed(7);
    let cpu = (Kind::Float, tch::Device::Cpu);
    let (n, d, vocab) = (23, 16, 301);
    let h0 = Tensor::randn([n, d], cpu);
    let w0 = Tensor::randn([vocab, d], cpu) * 0.5;
    let targets = Tensor::randint(vocab, [n], (Kind::Int64, tch::Device::Cpu));
    let run = |chunk: Option<i64>| {
        let (h, w) = (h0.copy().set_requires_grad(true), w0.copy().set_requires_grad(true));
        let loss = match chunk {
            Some(c) => syne_model::native::linear_cross_entropy(&h, &w, &targets, c).unwrap(),
            None => h.linear(&w, None::<Tensor>).cross_entropy_for_logits(&targets),
        };
        // A scale other than 1 on the way back, as the trainer's accumulation applies.
        (&loss * 0.37).backward();
        (f64::try_from(loss).unwrap(), h.grad(), w.grad())
    };
    let (cl, ch, cw) = run(None);
    // One chunk, uneven chunks (the last of 23 tokens holds 2), one token at a time.
    for chunk in [64, 7, 1] {
        let (fl, fh, fw) = run(Some(chunk));
        assert!((fl - cl).abs() <= 1e-6 * cl.abs(), "chunk {chunk}: loss {fl} vs {cl}");
        for (name, a, b) in [("grad h", &fh, &ch), ("grad w", &fw, &cw)] {
            let err = f64::try_from((a - b).abs().max()).unwrap();
            let scale = f64::try_from(b.abs().max()).unwrap();
            assert!(err <= 1e-5 * scale, "chunk {chunk}, {name}: max difference {err} (scale {scale})");
        }
    }
    // bf16 hidden states and head (autocast's products), the loss reduced in f32.
    let (hb, wb) = (h0.to_kind(Kind::BFloat16).set_requires_grad(true), w0.to_kind(Kind::BFloat16).set_requires_grad(true));
    let loss = syne_model::native::linear_cross_entropy(&hb, &wb, &targets, 7).unwrap();
    assert_eq!(loss.kind(), Kind::Float);
    loss.backward();
    assert_eq!(wb.grad().kind(), Kind::BFloat16);
    assert!((f64::try_from(&loss).unwrap() - cl).abs() < 0.05 * cl, "bf16 loss {loss:?} vs {cl}");
    // Targets that do not match the hidden states are refused with a message naming them.
    let e = syne_model::native::linear_cross_entropy(&h0, &w0, &targets.narrow(0, 0, 5), 7).unwrap_err();
    assert!(e.contains("23 hidden states"), "{e}");
}

#[test]
fn fused_rope_equals_the_composed_one_with_its_gradient() {
    tch::manual_seed(5);
    let (b, t, heads, hd) = (2, 6, 3, 8);
    let x0 = Tensor::randn([b, t, heads, hd], (Kind::Float, tch::Device::Cpu));
    let dy = Tensor::randn([b, t, heads, hd], (Kind::Float, tch::Device::Cpu));
    for tables in [1, b] {
        let ang = Tensor::rand([tables, t, hd], (Kind::Float, tch::Device::Cpu)) * 6.0;
        let (cos, sin) = (ang.cos(), ang.sin());
        let run = |fused: bool| {
            let x = x0.copy().set_requires_grad(true);
            let y = if fused {
                syne_model::native::rope(&x, &cos, &sin).unwrap()
            } else {
                let half = hd / 2;
                let rot = Tensor::cat(&[x.narrow(3, half, half).neg(), x.narrow(3, 0, half)], 3);
                &x * cos.unsqueeze(2) + rot * sin.unsqueeze(2)
            };
            (&y * &dy).sum(Kind::Float).backward();
            (y.detach(), x.grad())
        };
        let ((fy, fx), (cy, cx)) = (run(true), run(false));
        for (name, a, c) in [("output", &fy, &cy), ("grad", &fx, &cx)] {
            let err = f64::try_from((a - c).abs().max()).unwrap();
            assert!(err <= 1e-6, "{name} with {tables} table row(s): max difference {err}");
        }
    }
    let bad = Tensor::ones([1, t + 1, hd], (Kind::Float, tch::Device::Cpu));
    let e = syne_model::native::rope(&x0, &bad, &bad).unwrap_err();
    assert!(e.contains("tables"), "{e}");
}

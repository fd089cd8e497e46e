//! Forward-pass variants against references: RoPE scaling (llama3, linear) against
//! transformers; document-boundary masking against separate forwards; activation
//! checkpointing against plain backprop; bf16 against f32; KV-cache generation against
//! transformers' greedy decoding of the real SmolLM2, against full recomputation, and across
//! batch compositions.

use crate::common;

use common::{fixtures, gguf};

use syne_data::tokenizer::TextTokenizer;
use syne_model::generate::{generate, generate_at, generate_seeded, FinishReason, SamplingConfig};
use syne_model::llama::{Attention, Llama, Precision};
use tch::{Device, Kind, Tensor};

fn max_diff(a: &Tensor, b: &Tensor) -> f64 {
    f64::try_from((a - b).abs().max()).unwrap()
}

#[test]
fn rope_scaled_logits_match_transformers() {
    tch::set_num_threads(2);
    for name in ["tiny-llama-rope-llama3", "tiny-llama-rope-linear"] {
        let dir = fixtures().join(name);
        let model = Llama::from_hf_dir(&dir, Device::Cpu).unwrap();
        assert!(model.config.rope_scaling.is_some() && model.config.tie_word_embeddings, "{name}");
        let reference: std::collections::HashMap<String, Tensor> = Tensor::read_safetensors(dir.join("reference.safetensors")).unwrap().into_iter().collect();
        let logits = tch::no_grad(|| model.forward(&reference["input_ids"]));
        let diff = max_diff(&logits, &reference["logits"]);
        assert!(diff <= 1e-4, "{name}: max |logits - reference| = {diff}");
        // The scaling matters at these positions: without it the logits are clearly different.
        let mut plain = Llama::from_hf_dir(&dir, Device::Cpu).unwrap();
        plain.config.rope_scaling = None;
        let unscaled = tch::no_grad(|| plain.forward(&reference["input_ids"]));
        assert!(max_diff(&unscaled, &reference["logits"]) > 1e-3, "{name}: scaling had no effect");
    }
}

fn tiny() -> Llama {
    Llama::from_hf_dir(&fixtures().join("tiny-llama"), Device::Cpu).unwrap()
}

fn ids(n: i64, seed: i64) -> Tensor {
    Tensor::arange(n, (Kind::Int64, Device::Cpu)).g_mul_scalar(seed * 7 + 3).remainder(251)
}

#[test]
fn packed_documents_see_only_themselves_with_positions_from_zero() {
    tch::set_num_threads(2);
    let model = tiny();
    let (a, b, c) = (ids(9, 1), ids(13, 2), ids(10, 3));
    let packed = Tensor::cat(&[&a, &b, &c], 0).unsqueeze(0);
    let segments = Tensor::cat(
        &[Tensor::zeros([9], (Kind::Int64, Device::Cpu)), Tensor::ones([13], (Kind::Int64, Device::Cpu)), Tensor::full([10], 2, (Kind::Int64, Device::Cpu))],
        0,
    )
    .unsqueeze(0);
    let (together, alone) = tch::no_grad(|| {
        let together = model.forward_with(&packed, &Attention::Packed { segments });
        let alone = Tensor::cat(&[model.forward(&a.unsqueeze(0)), model.forward(&b.unsqueeze(0)), model.forward(&c.unsqueeze(0))], 1);
        (together, alone)
    });
    let diff = max_diff(&together, &alone);
    assert!(diff < 1e-5, "packed vs separate: {diff}");
    // Plain causal attention over the same packed row differs (the mask does something).
    let causal = tch::no_grad(|| model.forward(&packed));
    assert!(max_diff(&causal, &alone) > 1e-3);
}

fn grads(model: &Llama) -> Vec<(String, Tensor)> {
    let mut v: Vec<(String, Tensor)> = model.vs.variables().into_iter().map(|(k, t)| (k, t.grad().copy())).collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

fn zero_grads(model: &Llama) {
    for (_, mut t) in model.vs.variables() {
        t.zero_grad();
    }
}

#[test]
fn activation_checkpointing_gives_the_same_gradients() {
    tch::set_num_threads(2);
    let model = tiny();
    let x = Tensor::stack(&[ids(17, 4), ids(17, 5)], 0);
    let segments = Tensor::cat(&[Tensor::zeros([2, 7], (Kind::Int64, Device::Cpu)), Tensor::ones([2, 9], (Kind::Int64, Device::Cpu))], 1);
    for attention in [Attention::Causal, Attention::Packed { segments }] {
        let (inputs, targets) = (x.narrow(1, 0, 16), x.narrow(1, 1, 16));
        zero_grads(&model);
        let plain_loss = model.loss_backward(&inputs, &targets, &attention, 0.5, false);
        let plain = grads(&model);
        zero_grads(&model);
        let ckpt_loss = model.loss_backward(&inputs, &targets, &attention, 0.5, true);
        let ckpt = grads(&model);
        assert!((plain_loss - ckpt_loss).abs() < 1e-6, "{plain_loss} vs {ckpt_loss}");
        for ((name, a), (_, b)) in plain.iter().zip(&ckpt) {
            let scale = f64::try_from(a.abs().max()).unwrap().max(1e-12);
            assert!(max_diff(a, b) / scale < 1e-5, "{name}: gradients differ by {}", max_diff(a, b));
        }
        assert!(plain.iter().all(|(_, g)| f64::try_from(g.abs().sum(Kind::Double)).unwrap() > 0.0));
    }
}

#[test]
fn a_chunked_head_gives_the_same_loss_and_gradients() {
    tch::set_num_threads(2);
    let model = tiny();
    let x = Tensor::stack(&[ids(17, 4), ids(17, 5)], 0);
    let (inputs, targets) = (x.narrow(1, 0, 16), x.narrow(1, 1, 16));
    // 32 tokens: one head pass, against chunks of 7 (the last one 4 tokens), with and without
    // activation checkpointing.
    zero_grads(&model);
    let whole_loss = model.loss_backward_chunked(&inputs, &targets, &Attention::Causal, 0.5, false, 32);
    let whole = grads(&model);
    for checkpoint in [false, true] {
        zero_grads(&model);
        let loss = model.loss_backward_chunked(&inputs, &targets, &Attention::Causal, 0.5, checkpoint, 7);
        let chunked = grads(&model);
        assert!((whole_loss - loss).abs() < 1e-6, "{whole_loss} vs {loss}");
        for ((name, a), (_, b)) in whole.iter().zip(&chunked) {
            let scale = f64::try_from(a.abs().max()).unwrap().max(1e-12);
            assert!(max_diff(a, b) / scale < 1e-5, "{name} (checkpoint {checkpoint}): gradients differ by {}", max_diff(a, b));
        }
    }
}

#[test]
fn bf16_forward_is_close_to_f32() {
    tch::set_num_threads(2);
    let mut model = tiny();
    let x = Tensor::stack(&[ids(24, 6), ids(24, 7)], 0);
    let f32_logits = tch::no_grad(|| model.forward(&x));
    model.set_precision(Precision::Bf16);
    let bf16_logits = tch::no_grad(|| model.forward(&x));
    assert_eq!(bf16_logits.kind(), Kind::Float);
    let scale = f64::try_from(f32_logits.abs().max()).unwrap();
    let diff = max_diff(&f32_logits, &bf16_logits);
    assert!(diff / scale < 0.05 && diff > 0.0, "bf16 vs f32: {diff} of {scale}");
}

#[derive(serde::Deserialize)]
struct GenCase {
    lang: String,
    prompt: Vec<u32>,
    repetition_penalty: f64,
    completion: Vec<u32>,
}

#[test]
fn smollm2_greedy_generation_matches_transformers() {
    tch::set_num_threads(2);
    let model = Llama::from_gguf(&gguf(), Device::Cpu).unwrap();
    let tok = TextTokenizer::load(&gguf()).unwrap();
    let cases: Vec<GenCase> = serde_json::from_slice(&std::fs::read(fixtures().join("smollm2-generate.json")).unwrap()).unwrap();
    for c in &cases {
        let cfg = SamplingConfig { max_new_tokens: 24, repetition_penalty: c.repetition_penalty, ..Default::default() };
        let got = generate(&model, &tok, std::slice::from_ref(&c.prompt), &cfg).unwrap().remove(0);
        assert_eq!(got.tokens, c.completion, "{} penalty {}", c.lang, c.repetition_penalty);
        let expect = if c.completion.len() < 24 { FinishReason::Eos } else { FinishReason::Length };
        assert_eq!(got.finish, expect);
    }
    // Batched (left-padded, mixed lengths) equals one at a time, and sampling is reproducible.
    let prompts: Vec<Vec<u32>> = cases.iter().step_by(2).map(|c| c.prompt.clone()).chain([cases[0].prompt[..9].to_vec()]).collect();
    for cfg in [
        SamplingConfig { max_new_tokens: 16, ..Default::default() },
        SamplingConfig { max_new_tokens: 16, temperature: 0.8, top_k: 40, top_p: 0.95, seed: 11, ..Default::default() },
    ] {
        let batched = generate(&model, &tok, &prompts, &cfg).unwrap();
        for (i, p) in prompts.iter().enumerate() {
            let single = generate_at(&model, &tok, std::slice::from_ref(p), i as u64, &cfg).unwrap().remove(0);
            assert_eq!(batched[i].tokens, single.tokens, "prompt {i}, temperature {}", cfg.temperature);
        }
    }
    // Independent requests with their own seeds share a batch: each row samples as its request
    // would alone (`syne synth`'s local generator).
    let cfg = SamplingConfig { max_new_tokens: 16, temperature: 0.8, top_p: 0.95, ..Default::default() };
    let seeds = [7u64, 1234, 7];
    let batched = generate_seeded(&model, &tok, &prompts, &seeds, &cfg).unwrap();
    for (i, p) in prompts.iter().enumerate() {
        let alone = generate(&model, &tok, std::slice::from_ref(p), &SamplingConfig { seed: seeds[i], ..cfg.clone() }).unwrap().remove(0);
        assert_eq!(batched[i].tokens, alone.tokens, "request {i}");
    }
    assert!(generate_seeded(&model, &tok, &prompts, &seeds[..2], &cfg).unwrap_err().to_string().contains("2 seeds for 3 prompts"));
    // Stop strings cut the text before the stop and end the completion.
    let en = &cases[0];
    let full = tok.decode(&en.completion).unwrap();
    let stop = full.split_whitespace().nth(3).unwrap().to_string();
    let cfg = SamplingConfig { max_new_tokens: 24, stop: vec![stop.clone()], ..Default::default() };
    let got = generate(&model, &tok, std::slice::from_ref(&en.prompt), &cfg).unwrap().remove(0);
    assert_eq!(got.finish, FinishReason::Stop);
    assert_eq!(got.text, full[..full.find(&stop).unwrap()]);
}

#[test]
fn kv_cache_decoding_equals_full_recomputation() {
    tch::set_num_threads(2);
    let model = tiny();
    let tok = TextTokenizer::load(&fixtures().join("byte-tokenizer.json")).unwrap();
    let prompt: Vec<u32> = (0..11).map(|i| (i * 37 + 5) % 256).collect();
    let cfg = SamplingConfig { max_new_tokens: 20, stop_at_eos: false, ..Default::default() };
    let cached = generate(&model, &tok, std::slice::from_ref(&prompt), &cfg).unwrap().remove(0);
    let mut seq: Vec<i64> = prompt.iter().map(|&t| i64::from(t)).collect();
    for _ in 0..20 {
        let logits = tch::no_grad(|| model.forward(&Tensor::from_slice(&seq).unsqueeze(0)));
        seq.push(i64::try_from(logits.select(1, -1).argmax(-1, false)).unwrap());
    }
    let full: Vec<u32> = seq[prompt.len()..].iter().map(|&t| t as u32).collect();
    assert_eq!(cached.tokens, full);
}

/// The variants on a GPU (bf16 through the flash/efficient SDPA kernels, boolean masks, the
/// KV cache): against the CPU f32 results. Without CUDA this returns at once; with
/// `SYNE_REQUIRE_CUDA=1` (the GPU runs) a missing GPU is a failure.
#[test]
fn variants_on_cuda_agree_with_the_cpu() {
    let require = std::env::var_os("SYNE_REQUIRE_CUDA").is_some();
    if !syne_model::cuda_available() {
        assert!(!require, "SYNE_REQUIRE_CUDA is set but libtorch sees no CUDA device");
        return;
    }
    let gpu = Device::Cuda(0);
    let cpu_model = tiny();
    let mut model = Llama::from_hf_dir(&fixtures().join("tiny-llama"), gpu).unwrap();
    let x = Tensor::stack(&[ids(40, 8), ids(40, 9)], 0);
    let segments = Tensor::cat(&[Tensor::zeros([2, 15], (Kind::Int64, Device::Cpu)), Tensor::ones([2, 25], (Kind::Int64, Device::Cpu))], 1);
    let packed = Attention::Packed { segments: segments.shallow_clone() };
    let (want, want_packed) = tch::no_grad(|| (cpu_model.forward(&x), cpu_model.forward_with(&x, &packed)));
    let xg = x.to_device(gpu);
    let packed_gpu = Attention::Packed { segments: segments.to_device(gpu) };
    let (got, got_packed) = tch::no_grad(|| (model.forward(&xg), model.forward_with(&xg, &packed_gpu)));
    let d = max_diff(&got.to_device(Device::Cpu), &want);
    let dp = max_diff(&got_packed.to_device(Device::Cpu), &want_packed);
    eprintln!("CUDA f32: causal {d:.2e}, packed {dp:.2e}");
    assert!(d < 1e-4 && dp < 1e-4);
    // Checkpointed gradients equal plain ones on the GPU too.
    let (inputs, targets) = (xg.narrow(1, 0, 39), xg.narrow(1, 1, 39));
    zero_grads(&model);
    let l1 = model.loss_backward(&inputs, &targets, &Attention::Causal, 1.0, false);
    let g1 = grads(&model);
    zero_grads(&model);
    let l2 = model.loss_backward(&inputs, &targets, &Attention::Causal, 1.0, true);
    let g2 = grads(&model);
    assert!((l1 - l2).abs() < 1e-5);
    for ((n, a), (_, b)) in g1.iter().zip(&g2) {
        let scale = f64::try_from(a.abs().max()).unwrap().max(1e-12);
        assert!(max_diff(a, b) / scale < 1e-4, "{n}");
    }
    // KV-cache decoding on the GPU gives the CPU's greedy tokens (batched, mixed lengths).
    let tok = TextTokenizer::load(&fixtures().join("byte-tokenizer.json")).unwrap();
    let prompts: Vec<Vec<u32>> = vec![(0..11).map(|i| (i * 37 + 5) % 256).collect(), (0..5).map(|i| (i * 11 + 2) % 256).collect()];
    let cfg = SamplingConfig { max_new_tokens: 16, stop_at_eos: false, ..Default::default() };
    let on_cpu: Vec<Vec<u32>> = generate(&cpu_model, &tok, &prompts, &cfg).unwrap().into_iter().map(|c| c.tokens).collect();
    let on_gpu: Vec<Vec<u32>> = generate(&model, &tok, &prompts, &cfg).unwrap().into_iter().map(|c| c.tokens).collect();
    assert_eq!(on_cpu, on_gpu);
    model.set_precision(Precision::Bf16);
    let bf = tch::no_grad(|| model.forward(&xg)).to_device(Device::Cpu);
    let scale = f64::try_from(want.abs().max()).unwrap();
    let db = max_diff(&bf, &want);
    eprintln!("CUDA bf16: max diff {db:.3e} of max |logit| {scale:.3}");
    assert!(db / scale < 0.05);
    // bf16 training step runs and yields finite gradients for the f32 masters.
    zero_grads(&model);
    let l = model.loss_backward(&inputs, &targets, &packed_gpu_narrow(&segments, gpu), 1.0, true);
    assert!(l.is_finite());
    assert!(grads(&model).iter().all(|(_, g)| g.kind() == Kind::Float && f64::try_from(g.isfinite().all().to_kind(Kind::Double)).unwrap() == 1.0));
}

fn packed_gpu_narrow(segments: &Tensor, gpu: Device) -> Attention {
    Attention::Packed { segments: segments.narrow(1, 0, 39).to_device(gpu) }
}

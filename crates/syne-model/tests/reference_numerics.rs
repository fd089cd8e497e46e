//! Numerics against PyTorch/transformers (fixtures of scripts/make_model_fixtures.py): logits of
//! a tiny random Llama loaded from HF safetensors, and the perplexity of the real SmolLM2-135M
//! GGUF on fixed English and Chinese paragraphs.

use crate::common;

use common::{fixtures, gguf};

use syne_data::tokenizer::TextTokenizer;
use syne_model::llama::{mean_nll, Llama};
use tch::{Device, Kind, Tensor};

#[test]
fn tiny_llama_logits_match_transformers() {
    tch::set_num_threads(2);
    let dir = fixtures().join("tiny-llama");
    let model = Llama::from_hf_dir(&dir, Device::Cpu).unwrap();
    let reference: std::collections::HashMap<String, Tensor> = Tensor::read_safetensors(dir.join("reference.safetensors")).unwrap().into_iter().collect();
    let ids = &reference["input_ids"];
    let logits = tch::no_grad(|| model.forward(ids));
    let diff = f64::try_from((&logits - &reference["logits"]).abs().max()).unwrap();
    assert!(diff <= 1e-4, "max |logits - reference| = {diff}");
    let loss = mean_nll(&model, ids);
    let want = f64::try_from(reference["loss"].to_kind(Kind::Double).sum(Kind::Double)).unwrap();
    assert!((loss - want).abs() < 1e-5, "loss {loss} vs {want}");
}

#[test]
fn smollm2_gguf_perplexity_matches_transformers_within_half_a_percent() {
    tch::set_num_threads(2);
    let model = Llama::from_gguf(&gguf(), Device::Cpu).unwrap();
    assert_eq!(model.config.num_hidden_layers, 30);
    assert_eq!((model.config.num_attention_heads, model.config.num_key_value_heads), (9, 3));
    assert!(model.config.tie_word_embeddings);
    let tok = TextTokenizer::load(&gguf()).unwrap();
    let f: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(fixtures().join("smollm2-ppl.json")).unwrap()).unwrap();
    for lang in ["en", "zh"] {
        let r = &f[lang];
        let ids: Vec<i64> = r["ids"].as_array().unwrap().iter().map(|v| v.as_i64().unwrap()).collect();
        // Our GGUF tokenizer agrees with transformers' on the same text.
        let ours: Vec<i64> = tok.encode(r["text"].as_str().unwrap()).unwrap().into_iter().map(i64::from).collect();
        assert_eq!(&ours[..ids.len()], &ids[..], "{lang}: tokenization differs from transformers");
        let nll = mean_nll(&model, &Tensor::from_slice(&ids).view([1, -1]));
        let (ppl, want) = (nll.exp(), r["ppl"].as_f64().unwrap());
        assert!(((ppl - want) / want).abs() < 0.005, "{lang}: perplexity {ppl} vs transformers {want}");
    }
}

#[test]
fn wrong_shapes_and_missing_tensors_name_the_tensor() {
    let dir = tempfile::tempdir().unwrap();
    let src = fixtures().join("tiny-llama");
    std::fs::copy(src.join("model.safetensors"), dir.path().join("model.safetensors")).unwrap();
    let cfg = std::fs::read_to_string(src.join("config.json")).unwrap().replace("\"intermediate_size\": 172", "\"intermediate_size\": 170");
    std::fs::write(dir.path().join("config.json"), cfg).unwrap();
    let e = Llama::from_hf_dir(dir.path(), Device::Cpu).err().unwrap().to_string();
    assert!(e.contains("model.layers.0.mlp.down_proj.weight") && e.contains("[64, 170]") && e.contains("[64, 172]"), "{e}");
    let cfg = std::fs::read_to_string(src.join("config.json")).unwrap().replace("\"num_hidden_layers\": 2", "\"num_hidden_layers\": 3");
    std::fs::write(dir.path().join("config.json"), cfg).unwrap();
    let e = Llama::from_hf_dir(dir.path(), Device::Cpu).err().unwrap().to_string();
    assert!(e.contains("model.layers.2.") && e.contains("missing"), "{e}");
}

#[test]
fn document_scores_are_batch_invariant_and_match_the_reference() {
    use syne_model::score::score_documents;
    tch::set_num_threads(2);
    let model = Llama::from_gguf(&gguf(), Device::Cpu).unwrap();
    let f: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(fixtures().join("smollm2-ppl.json")).unwrap()).unwrap();
    let ids = |lang: &str| -> Vec<u32> { f[lang]["ids"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as u32).collect() };
    let (en, zh) = (ids("en"), ids("zh"));
    let docs = vec![en.clone(), zh.clone(), en[..40].to_vec(), vec![5]];
    let batched = score_documents(&model, &docs, 1024, 4096);
    let single: Vec<_> = docs.iter().map(|d| score_documents(&model, std::slice::from_ref(d), 1024, 1)[0]).collect();
    for (i, (a, b)) in batched.iter().zip(&single).enumerate() {
        assert_eq!(a.predicted, b.predicted, "doc {i}");
        if a.predicted > 0 {
            assert!((a.mean_nll() - b.mean_nll()).abs() < 1e-5, "doc {i}: {} vs {}", a.mean_nll(), b.mean_nll());
        }
    }
    assert_eq!(batched[3].predicted, 0, "a one-token document predicts nothing");
    let want = f["en"]["ppl"].as_f64().unwrap();
    assert!(((batched[0].perplexity() - want) / want).abs() < 0.005);
    // Windows: a 64-token window gives more predictions than one long window would allow context for.
    let windowed = score_documents(&model, std::slice::from_ref(&zh), 64, 4096)[0];
    assert_eq!(windowed.predicted, zh.len() - zh.len().div_ceil(64));
}

#[test]
fn hf_save_round_trips_with_identical_logits() {
    tch::set_num_threads(2);
    let model = Llama::from_hf_dir(&fixtures().join("tiny-llama"), Device::Cpu).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("saved");
    model.save_hf(&out, None).unwrap();
    assert!(!dir.path().join("saved.partial").exists());
    let again = Llama::from_hf_dir(&out, Device::Cpu).unwrap();
    assert_eq!(again.config, model.config);
    let ids = Tensor::from_slice(&[1i64, 5, 9, 200, 3, 77]).view([1, 6]);
    let (a, b) = tch::no_grad(|| (model.forward(&ids), again.forward(&ids)));
    assert_eq!(f64::try_from((a - b).abs().max()).unwrap(), 0.0);
    let cfg: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(out.join("config.json")).unwrap()).unwrap();
    assert_eq!(cfg["model_type"], "llama");
    assert_eq!(cfg["architectures"][0], "LlamaForCausalLM");
}

/// The same check on a GPU. On a machine without CUDA it verifies that the binary still runs on
/// the CPU build path; with `SYNE_REQUIRE_CUDA=1` (the GPU runs) a missing GPU is a failure.
#[test]
fn tiny_llama_logits_match_transformers_on_cuda() {
    let require = std::env::var_os("SYNE_REQUIRE_CUDA").is_some();
    if !syne_model::cuda_available() {
        assert!(!require, "SYNE_REQUIRE_CUDA is set but libtorch sees no CUDA device");
        return;
    }
    let dir = fixtures().join("tiny-llama");
    let model = Llama::from_hf_dir(&dir, Device::Cuda(0)).unwrap();
    let reference: std::collections::HashMap<String, Tensor> = Tensor::read_safetensors(dir.join("reference.safetensors")).unwrap().into_iter().collect();
    let ids = reference["input_ids"].to_device(Device::Cuda(0));
    let logits = tch::no_grad(|| model.forward(&ids));
    assert_eq!(logits.device(), Device::Cuda(0));
    let diff = f64::try_from((logits.to_device(Device::Cpu) - &reference["logits"]).abs().max()).unwrap();
    eprintln!("CUDA: max |logits - transformers| = {diff:.3e}");
    assert!(diff <= 1e-4, "max |logits - reference| on CUDA = {diff}");
}

//! Golden tests: the GGUF-embedded tokenizers must reproduce llama.cpp's vocabulary test vectors
//! (`ggml-vocab-*.gguf.inp/.out`, shipped in llama-cpp-python 0.3.36's sdist) exactly, and the
//! Llama-3 `tokenizer.json` must agree with the GGUF-built Llama-3 tokenizer.

use crate::common;

use syne_data::tokenizer::TextTokenizer;

/// (text, expected ids) pairs of one vocabulary's test file.
fn vectors(name: &str) -> Vec<(String, Vec<u32>)> {
    let inp = std::fs::read_to_string(common::asset(&format!("vocab/ggml-vocab-{name}.gguf.inp"))).unwrap();
    let out = std::fs::read_to_string(common::asset(&format!("vocab/ggml-vocab-{name}.gguf.out"))).unwrap();
    let mut texts: Vec<&str> = inp.split("\n__ggml_vocab_test__\n").collect();
    if texts.last() == Some(&"") {
        texts.pop();
    }
    let ids: Vec<Vec<u32>> = out.lines().map(|l| l.split_whitespace().map(|t| t.parse().unwrap()).collect()).collect();
    assert_eq!(texts.len(), ids.len(), "{name}: .inp and .out disagree on the number of cases");
    assert!(texts.len() > 20, "{name}: too few cases");
    texts.into_iter().map(str::to_owned).zip(ids).collect()
}

fn check_vocab(name: &str) {
    let tok = TextTokenizer::load(&common::asset(&format!("vocab/ggml-vocab-{name}.gguf"))).unwrap();
    let cases = vectors(name);
    let mut failures = Vec::new();
    for (text, want) in &cases {
        let got = tok.encode(text).unwrap();
        if &got != want {
            failures.push(format!("{text:?}\n   want {want:?}\n    got {got:?}"));
        }
    }
    assert!(failures.is_empty(), "{name}: {}/{} cases differ:\n{}", failures.len(), cases.len(), failures.join("\n"));
}

#[test]
fn llama_bpe_matches_llama_cpp_vectors() {
    check_vocab("llama-bpe");
}

#[test]
fn gpt2_matches_llama_cpp_vectors() {
    check_vocab("gpt-2");
}

#[test]
fn qwen2_matches_llama_cpp_vectors() {
    check_vocab("qwen2");
}

#[test]
fn starcoder_digit_splitting_family_matches_llama_cpp_vectors() {
    // SmolLM2's pre-tokenizer ("smollm") is the same family as starcoder's in llama.cpp.
    check_vocab("starcoder");
}

#[test]
fn llama3_tokenizer_json_agrees_with_gguf_build_on_the_vectors() {
    let json = TextTokenizer::load(&common::asset("tokenizers/llama3/tokenizer.json")).unwrap();
    assert_eq!(json.encode("Hello").unwrap(), vec![9906]);
    for (text, want) in vectors("llama-bpe") {
        assert_eq!(json.encode(&text).unwrap(), want, "{text:?}");
    }
    assert_eq!(json.vocab_size(), 128_256);
    assert_eq!(json.eos_id(), Some(128_001));
}

#[test]
fn smollm2_gguf_tokenizer_round_trips_real_text() {
    let tok = TextTokenizer::load(&common::asset("models/SmolLM2-135M-Instruct.Q4_1.gguf")).unwrap();
    assert_eq!(tok.vocab_size(), 49_152);
    assert_eq!(tok.bos_id(), Some(1));
    assert_eq!(tok.eos_id(), Some(2));
    let mut checked = 0;
    for corpus in ["en-wiki-summaries", "zh-peoples-daily", "en-python-docs", "zh-manpages"] {
        let text = std::fs::read_to_string(common::asset(&format!("corpora/{corpus}.jsonl"))).unwrap();
        for line in text.lines().take(200) {
            let doc: serde_json::Value = serde_json::from_str(line).unwrap();
            let t = doc["text"].as_str().unwrap();
            let ids = tok.encode(t).unwrap();
            assert!(!ids.is_empty());
            assert_eq!(tok.decode(&ids).unwrap(), t, "{corpus}: round trip failed");
            checked += 1;
        }
    }
    assert_eq!(checked, 800);
    // Digits are split one by one (SmolLM2's pre-tokenizer).
    let ids = tok.encode("2024").unwrap();
    assert_eq!(ids.len(), 4);
}

#[test]
fn special_token_text_is_plain_text_unless_asked() {
    let tok = TextTokenizer::load(&common::asset("tokenizers/llama3/tokenizer.json")).unwrap();
    let plain = tok.encode("a<|end_of_text|>b").unwrap();
    assert!(!plain.contains(&128_001));
    let parsed = tok.clone().with_parse_special(true).encode("a<|end_of_text|>b").unwrap();
    assert!(parsed.contains(&128_001));
}

#[test]
fn wrong_tokenizer_path_names_the_file() {
    let err = TextTokenizer::load(std::path::Path::new("/nonexistent/tokenizer.json")).unwrap_err().to_string();
    assert!(err.contains("/nonexistent/tokenizer.json"), "{err}");
    let spm = TextTokenizer::load(&common::asset("vocab/ggml-vocab-llama-spm.gguf")).unwrap_err().to_string();
    assert!(spm.contains("ggml-vocab-llama-spm.gguf") && spm.contains("only byte-level BPE"), "{spm}");
}

#[test]
fn smollm2_chat_template_renders_chatml_and_encodes_its_special_tokens() {
    let tok = TextTokenizer::load(&common::asset("models/SmolLM2-135M-Instruct.Q4_1.gguf")).unwrap();
    assert!(tok.chat_template().is_some_and(|t| t.contains("<|im_start|>")));
    // What transformers' apply_chat_template(add_generation_prompt=True) gives for this template.
    let prompt = tok.render_chat(&[("user", "What is 2+2?")]).unwrap();
    assert_eq!(
        prompt,
        "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n\
         <|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n"
    );
    let ids = tok.clone().with_parse_special(true).encode(&prompt).unwrap();
    assert_eq!(ids[0], 1, "<|im_start|> is one special token");
    assert_eq!(ids.iter().filter(|&&i| i == 2).count(), 2, "two <|im_end|>");
    // A system message replaces the default one.
    let p = tok.render_chat(&[("system", "Be brief."), ("user", "Hi")]).unwrap();
    assert!(p.starts_with("<|im_start|>system\nBe brief.<|im_end|>\n") && !p.contains("SmolLM"));
    // Llama-3's template (tokenizer_config.json) opens with the BOS token and uses Jinja's
    // set/loop machinery.
    let l3 = TextTokenizer::load(&common::asset("tokenizers/llama3/tokenizer.json")).unwrap();
    let p = l3.render_chat(&[("user", "Hi")]).unwrap();
    assert!(p.starts_with("<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>"), "{p:?}");
    assert!(p.ends_with("<|start_header_id|>assistant<|end_header_id|>\n\n"), "{p:?}");
    // A GGUF without a template says so.
    let bare = TextTokenizer::load(&common::asset("vocab/ggml-vocab-gpt-2.gguf")).unwrap();
    assert!(bare.render_chat(&[("user", "x")]).unwrap_err().to_string().contains("no chat template"));
}

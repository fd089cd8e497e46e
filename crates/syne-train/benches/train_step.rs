//! Training throughput of the real step loop (`syne_train::trainer::train_step`: token stream
//! from a shard, micro-batches, loss and backward, clipping, AdamW) on a randomly initialised
//! Llama of a named shape from `scripts/bench/train_configs.json`. `scripts/bench/train` runs it
//! next to the same model in PyTorch eager (`scripts/bench/torch_train.py`) and prints the ratio.
//!
//! ```text
//! cargo bench -p syne-train --bench train_step -- CONFIG [--steps N] [--warm N] [--threads N]
//!     [--device cpu|cuda] [--precision f32|bf16] [--checkpointing] [--head-chunk TOKENS]
//!     [--cpu-cache-mib MIB (0: glibc's allocator alone)]
//! ```
//! Prints one `RESULT key=value ...` line: tokens/s over the timed steps, FLOP/token
//! (6N + 12 L T d, the framework-spike convention), peak RSS.

use std::path::PathBuf;

use syne_data::shards::{ShardWriter, TokenWidth};
use syne_model::llama::{Llama, LlamaConfig, Precision};
use syne_train::optimizer::{AdamW, AdamWConfig};
use syne_train::schedule::LrSchedule;
use syne_train::trainer::{train_step, TokenStream, TrainSettings, TrainState};
use tch::Device;

fn arg<T: std::str::FromStr>(args: &[String], name: &str, default: T) -> T {
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status.lines().find_map(|l| l.strip_prefix("VmHWM:")).and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok()).map_or(0.0, |kb| kb / 1024.0)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| a != "--bench").collect();
    let name = args.first().cloned().unwrap_or_else(|| "small".into());
    let steps: usize = arg(&args, "--steps", 20);
    let warm: usize = arg(&args, "--warm", 3);
    let threads: i32 = arg(&args, "--threads", 2);
    let device = if arg(&args, "--device", String::from("cpu")) == "cuda" { Device::Cuda(0) } else { Device::Cpu };
    let precision = if arg(&args, "--precision", String::from("f32")) == "bf16" { Precision::Bf16 } else { Precision::F32 };
    let checkpointing = args.iter().any(|a| a == "--checkpointing");
    // As `syne` does (syne_pipeline::device::torch_device), unless `--cpu-cache-mib 0`.
    let cpu_cache_mib: usize = arg(&args, "--cpu-cache-mib", syne_model::native::DEFAULT_CPU_CACHE_BYTES >> 20);
    if cpu_cache_mib > 0 {
        syne_model::native::install_cpu_caching_allocator(cpu_cache_mib << 20);
    }
    tch::set_num_threads(threads);

    let configs = std::env::var_os("SYNE_TRAIN_CONFIGS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../scripts/bench/train_configs.json"));
    let all: serde_json::Value = serde_json::from_slice(&std::fs::read(&configs).expect("train_configs.json")).expect("json");
    let c = all.get(&name).unwrap_or_else(|| panic!("no config `{name}` in {}", configs.display())).clone();
    let (seq, batch) = (c["seq_len"].as_u64().unwrap() as usize, c["micro_batch"].as_u64().unwrap() as usize);
    let config: LlamaConfig = serde_json::from_value(c.clone()).expect("llama config");

    let dir = tempfile::tempdir().expect("tempdir");
    tch::manual_seed(0);
    let mut model = Llama::new(config.clone(), device);
    model.set_precision(precision);
    let head_chunk: i64 = arg(&args, "--head-chunk", syne_model::llama::HEAD_CHUNK_TOKENS);
    model.set_head_chunk_tokens(head_chunk);
    // Random tokens over a 64-symbol alphabet, as the framework spike's inputs.
    let shard = dir.path().join("tokens");
    let mut w = ShardWriter::create(&shard, TokenWidth::for_vocab(config.vocab_size)).expect("shard");
    let mut rng = 1u64;
    let need = (warm + steps + 1) * batch * seq + 1;
    let toks: Vec<u32> = (0..need).map(|_| (syne_data::text::splitmix64(&mut rng) % 64) as u32).collect();
    w.push(&toks).expect("push");
    w.finish().expect("finish");
    let tokens_per_step = (batch * seq) as u64;
    let cfg = TrainSettings {
        model: PathBuf::new(),
        data: vec![shard.clone()],
        out: dir.path().join("run"),
        seq_len: seq,
        micro_batch: batch,
        global_batch_tokens: tokens_per_step,
        total_tokens: tokens_per_step * (warm + steps) as u64,
        schedule: LrSchedule::Constant { peak: 3e-4, warmup_tokens: 0 },
        optimizer: AdamWConfig::default(),
        clip: Some(1.0),
        checkpoint_every_tokens: u64::MAX,
        keep_checkpoints: 1,
        seed: 0,
        doc_masking: false,
        activation_checkpointing: checkpointing,
        precision: Some(precision),
        tokenizer: None,
        validation: Vec::new(),
        validate_every_tokens: None,
    };
    let mut data = TokenStream::open(&cfg.data, seq, 0).expect("token stream");
    let mut opt = AdamW::new(model.vs.variables(), cfg.optimizer.clone());
    let mut state = TrainState::default();
    let (mut first, mut last, mut timed) = (0.0, 0.0, 0.0);
    for i in 0..warm + steps {
        let started = std::time::Instant::now();
        let m = train_step(&model, &mut opt, &mut data, &mut state, &cfg, device).expect("step");
        if device.is_cuda() {
            tch::Cuda::synchronize(0);
        }
        if i >= warm {
            timed += started.elapsed().as_secs_f64();
        }
        if i == 0 {
            first = m.loss;
        }
        last = m.loss;
    }
    let (l, d, v) = (config.num_hidden_layers as f64, config.hidden_size as f64, config.vocab_size as f64);
    let hd = config.head_dim() as f64;
    let (nh, kv, ff) = (config.num_attention_heads as f64, config.num_key_value_heads as f64, config.intermediate_size as f64);
    let per_layer = d * nh * hd * 2.0 + d * kv * hd * 2.0 + 3.0 * d * ff;
    let n_matmul = l * per_layer + v * d;
    let flop_per_token = 6.0 * n_matmul + 12.0 * l * seq as f64 * d;
    let params: i64 = model.vs.trainable_variables().iter().map(|t| t.numel() as i64).sum();
    println!(
        "RESULT framework=syne-tch cfg={name} device={device:?} precision={precision:?} checkpointing={checkpointing} head_chunk={head_chunk} cpu_cache_mib={cpu_cache_mib} params={params} \
         steps={steps} secs={timed:.3} tok_per_s={:.1} flop_per_token={flop_per_token:.4e} loss_first={first:.4} loss_last={last:.4} peak_rss_mib={:.0}",
        (steps as u64 * tokens_per_step) as f64 / timed,
        peak_rss_mib()
    );
    let cache = syne_model::native::cpu_caching_allocator_stats();
    println!("CPU cache: {} hits, {} misses, {:.0} MiB held", cache.hits, cache.misses, cache.cached_bytes as f64 / 1048576.0);
}

//! `syne train` killed with SIGKILL again and again, resumed each time with `--resume`, ends
//! with final weights bit-identical to an uninterrupted run; metrics and checkpoints are sane.

use crate::common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{assets, kill_after_progress};
use syne_data::shards::{ShardWriter, TokenWidth};

fn config(dir: &Path, name: &str, shard: &Path) -> std::path::PathBuf {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("../syne-model/tests/fixtures");
    let tiny = fixtures.join("tiny-llama");
    let p = dir.join(format!("{name}.toml"));
    std::fs::write(
        &p,
        format!(
            "[train]\nmodel = \"{}\"\ndata = [\"{}\"]\nout = \"{name}\"\nseq_len = 32\nmicro_batch = 4\n\
             global_batch_tokens = 256\ntotal_tokens = 30720\nclip = 1.0\ncheckpoint_every_tokens = 2560\nkeep_checkpoints = 2\nseed = 7\n\
             doc_masking = true\nactivation_checkpointing = true\ntokenizer = \"{}\"\nvalidate_every_tokens = 7680\n\
             [[train.validation]]\nname = \"zh\"\npath = \"val-zh.jsonl\"\ntopic_field = \"topic\"\n\
             [[train.validation]]\nname = \"en\"\npath = \"val-en.jsonl\"\nmax_docs = 6\n\
             [train.schedule]\nkind = \"warmup_stable_decay\"\npeak = 0.002\nwarmup_tokens = 2560\ntotal_tokens = 30720\ndecay_fraction = 0.2\nfloor = 0.0002\n",
            tiny.display(),
            shard.display(),
            fixtures.join("byte-tokenizer.json").display()
        ),
    )
    .unwrap();
    p
}

fn train(cfg: &Path, resume: bool) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_syne"));
    c.args(["train", cfg.to_str().unwrap(), "--threads", "2", "--cpu", "--no-progress"]);
    if resume {
        c.arg("--resume");
    }
    c.stdout(Stdio::null()).stderr(Stdio::piped());
    c
}

#[test]
fn sigkill_then_resume_gives_bit_identical_weights() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // Real text as bytes: the tiny model's 256-entry vocabulary is a byte vocabulary.
    let text = std::fs::read(assets().join("corpora/zh-peoples-daily.jsonl")).unwrap();
    let shard = d.join("bytes");
    let mut w = ShardWriter::create(&shard, TokenWidth::U16).unwrap();
    for doc in text[..200_000].chunks(2_000) {
        w.push(&doc.iter().map(|&b| u32::from(b)).collect::<Vec<_>>()).unwrap();
    }
    w.finish().unwrap();
    // Held-out sets: later People's Daily articles (two topic labels) and English summaries.
    let zh: Vec<String> = String::from_utf8_lossy(&text[400_000..])
        .lines()
        .skip(1)
        .take(8)
        .enumerate()
        .map(|(i, l)| {
            let mut v: serde_json::Value = serde_json::from_str(l).unwrap();
            v["text"] = serde_json::json!(v["text"].as_str().unwrap().chars().take(120).collect::<String>());
            v["topic"] = serde_json::json!(if i % 2 == 0 { "even" } else { "odd" });
            v.to_string()
        })
        .collect();
    std::fs::write(d.join("val-zh.jsonl"), zh.join("\n")).unwrap();
    let en = std::fs::read_to_string(assets().join("corpora/en-wiki-summaries.jsonl")).unwrap();
    std::fs::write(d.join("val-en.jsonl"), en.lines().take(6).collect::<Vec<_>>().join("\n")).unwrap();

    let reference = config(d, "reference", &shard);
    let out = train(&reference, false).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let want = std::fs::read(d.join("reference/final/model.safetensors")).unwrap();
    let metrics = std::fs::read_to_string(d.join("reference/metrics.jsonl")).unwrap();
    let lines: Vec<serde_json::Value> = metrics.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 120);
    let (first, last) = (lines[0]["loss"].as_f64().unwrap(), lines[119]["loss"].as_f64().unwrap());
    assert!(last < first - 1.0, "loss should fall on real text: {first} -> {last}");
    assert_eq!(std::fs::read_dir(d.join("reference/checkpoints")).unwrap().count(), 2, "keep_checkpoints = 2");

    // Validation: before training, every 7680 tokens, per domain and per topic.
    let validation = std::fs::read_to_string(d.join("reference/validation.jsonl")).unwrap();
    let reports: Vec<serde_json::Value> = validation.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let at: Vec<u64> = reports.iter().map(|r| r["tokens"].as_u64().unwrap()).collect();
    assert_eq!(at, vec![0, 7680, 15360, 23040, 30720]);
    let zh_loss = |r: &serde_json::Value| r["domains"][0]["loss"].as_f64().unwrap();
    assert!(zh_loss(&reports[4]) < zh_loss(&reports[0]) - 0.5, "held-out zh loss should fall");
    for r in &reports {
        let (zh, en) = (&r["domains"][0], &r["domains"][1]);
        assert_eq!((zh["name"].as_str(), zh["docs"].as_u64(), en["docs"].as_u64()), (Some("zh"), Some(8), Some(6)));
        let bpb = zh["bits_per_byte"].as_f64().unwrap();
        // Byte tokens (no BOS): every byte but the first of each 32-token window is predicted.
        let (tokens, bytes) = (zh["tokens"].as_u64().unwrap(), zh["bytes"].as_u64().unwrap());
        assert!(tokens < bytes && tokens >= bytes - bytes.div_ceil(32) - 8, "{tokens} of {bytes}");
        let want = zh["loss"].as_f64().unwrap() / std::f64::consts::LN_2 * tokens as f64 / bytes as f64;
        assert!((bpb - want).abs() < 1e-9, "{bpb} vs {want}");
        assert_eq!(zh["topics"].as_object().unwrap().len(), 2);
        assert!(en["topics"].as_object().unwrap().is_empty());
    }
    // The saved folders carry the tokenizer.
    assert!(d.join("reference/final/tokenizer.json").exists());

    let killed = config(d, "killed", &shard);
    let checkpoints = d.join("killed/checkpoints");
    // The newest complete checkpoint's step: each run is killed after it wrote a new one (and a
    // little later each time), so every restart resumes from a checkpoint.
    let newest = || -> u64 {
        std::fs::read_dir(&checkpoints)
            .map(|r| {
                r.flatten()
                    .filter(|e| e.path().join("trainer.json").exists())
                    .filter_map(|e| e.file_name().to_string_lossy().strip_prefix("step-").and_then(|s| s.parse().ok()))
                    .max()
                    .unwrap_or(0)
            })
            .unwrap_or(0)
    };
    let kills = kill_after_progress(|| train(&killed, true), newest, 5, Duration::from_millis(40), Duration::from_secs(300));
    assert!(kills >= 3, "only {kills} kills before the run finished");
    let got = std::fs::read(d.join("killed/final/model.safetensors")).unwrap();
    assert!(got == want, "final weights differ after {kills} kills");
    let m = std::fs::read_to_string(d.join("killed/metrics.jsonl")).unwrap();
    let steps: Vec<u64> = m.lines().map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["step"].as_u64().unwrap()).collect();
    assert_eq!(steps, (1..=120).collect::<Vec<_>>(), "metrics hold each step once");
    assert_eq!(std::fs::read_to_string(d.join("killed/validation.jsonl")).unwrap(), validation, "validation log differs");
    eprintln!("{kills} SIGKILLs, each after a new checkpoint: final weights identical");
}

//! Dequantisation against gguf-py (the reference fixtures of scripts/make_dequant_fixtures.py):
//! random blocks of every supported type, and real SmolLM2-135M tensors.

use std::path::PathBuf;

use syne_model::dequant::{dequantize, GgmlType};
use syne_model::weights::GgufWeights;

fn fixture() -> serde_json::Value {
    let p = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/dequant.json");
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

fn hex(s: &str) -> Vec<u8> {
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
}

#[test]
fn every_block_type_matches_gguf_py_exactly() {
    let f = fixture();
    let blocks = f["blocks"].as_object().unwrap();
    assert_eq!(blocks.len(), 9);
    for (name, b) in blocks {
        let ty = GgmlType::from_id(b["id"].as_u64().unwrap() as u32).unwrap();
        assert_eq!(ty.name(), name.as_str());
        let n = b["n"].as_u64().unwrap() as usize;
        let got = dequantize(ty, &hex(b["hex"].as_str().unwrap()), n).unwrap();
        let want: Vec<f32> = b["values"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap() as f32).collect();
        assert_eq!(got.len(), want.len(), "{name}");
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            // gguf-py computes in f32 too; allow one ulp-scale difference from operation order.
            assert!((g - w).abs() <= 1e-6 * w.abs().max(1.0), "{name}[{i}]: {g} vs {w}");
        }
    }
}

#[test]
fn real_smollm2_tensors_match_gguf_py() {
    let assets = std::env::var_os("SYNE_ASSETS").map(PathBuf::from).unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../assets"));
    let path = assets.join("models/SmolLM2-135M-Instruct.Q4_1.gguf");
    assert!(path.exists(), "{} missing: run scripts/fetch-assets", path.display());
    let w = GgufWeights::open(&path).unwrap();
    let f = fixture();
    for (name, r) in f["smollm2"].as_object().unwrap() {
        let t = w.tensor(name, None).unwrap();
        assert_eq!(t.data.len() as u64, r["n"].as_u64().unwrap(), "{name}");
        for (i, v) in r["first"].as_array().unwrap().iter().enumerate() {
            assert!((t.data[i] as f64 - v.as_f64().unwrap()).abs() < 1e-6, "{name}[{i}]");
        }
        let sum: f64 = t.data.iter().map(|&x| x as f64).sum();
        let abs: f64 = t.data.iter().map(|&x| (x as f64).abs()).sum();
        let (rs, ra) = (r["sum"].as_f64().unwrap(), r["abs_sum"].as_f64().unwrap());
        assert!((sum - rs).abs() <= 1e-6 * ra, "{name}: sum {sum} vs {rs}");
        assert!((abs - ra).abs() <= 1e-6 * ra, "{name}: abs sum {abs} vs {ra}");
    }
    // Shapes in PyTorch order, and errors that name the tensor.
    let q = w.tensor("blk.0.attn_q.weight", Some(&[576, 576])).unwrap();
    assert_eq!(q.shape, vec![576, 576]);
    let e = w.tensor("blk.0.attn_k.weight", Some(&[576, 576])).unwrap_err().to_string();
    assert!(e.contains("blk.0.attn_k.weight") && e.contains("[192, 576]") && e.contains("SmolLM2"), "{e}");
    let e = w.tensor("blk.99.attn_q.weight", None).unwrap_err().to_string();
    assert!(e.contains("blk.99.attn_q.weight") && e.contains("missing"), "{e}");
}

//! AdamW + clipping against torch.optim.AdamW (fixture of scripts/make_train_fixtures.py): six
//! steps of the tiny Llama on its reference batch give the same losses, gradient norms and
//! final weights; and restoring saved optimizer state continues identically.

use std::path::PathBuf;

use syne_model::llama::Llama;
use syne_train::optimizer::{AdamW, AdamWConfig};
use tch::{Device, Kind, Tensor};

fn tiny() -> (Llama, Tensor) {
    let dir = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../syne-model/tests/fixtures/tiny-llama"));
    let model = Llama::from_hf_dir(&dir, Device::Cpu).unwrap();
    let reference: std::collections::HashMap<String, Tensor> = Tensor::read_safetensors(dir.join("reference.safetensors")).unwrap().into_iter().collect();
    (model, reference["input_ids"].shallow_clone())
}

fn loss(model: &Llama, ids: &Tensor) -> Tensor {
    let t = ids.size()[1];
    let logits = model.forward(ids);
    let v = logits.size()[2];
    logits.narrow(1, 0, t - 1).reshape([-1, v]).cross_entropy_for_logits(&ids.narrow(1, 1, t - 1).reshape([-1]))
}

fn config(f: &serde_json::Value) -> AdamWConfig {
    AdamWConfig {
        beta1: f["betas"][0].as_f64().unwrap(),
        beta2: f["betas"][1].as_f64().unwrap(),
        eps: f["eps"].as_f64().unwrap(),
        weight_decay: f["weight_decay"].as_f64().unwrap(),
        no_decay: vec!["norm".into()],
    }
}

fn train(model: &Llama, opt: &mut AdamW, ids: &Tensor, steps: usize, lr: f64, clip: f64) -> (Vec<f64>, Vec<f64>) {
    let (mut losses, mut norms) = (vec![], vec![]);
    for _ in 0..steps {
        opt.zero_grad();
        let l = loss(model, ids);
        l.backward();
        norms.push(opt.clip_grad_norm(Some(clip)));
        opt.step(lr).expect("adamw step");
        losses.push(f64::try_from(l).unwrap());
    }
    (losses, norms)
}

#[test]
fn six_adamw_steps_match_pytorch() {
    tch::set_num_threads(2);
    let f: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/adamw-tiny.json")).unwrap()).unwrap();
    let (model, ids) = tiny();
    let mut opt = AdamW::new(model.vs.variables(), config(&f));
    let (losses, norms) = train(&model, &mut opt, &ids, 6, f["lr"].as_f64().unwrap(), f["clip"].as_f64().unwrap());
    for (i, (l, w)) in losses.iter().zip(f["losses"].as_array().unwrap()).enumerate() {
        assert!((l - w.as_f64().unwrap()).abs() < 2e-5, "step {i}: loss {l} vs {w}");
    }
    for (i, (n, w)) in norms.iter().zip(f["grad_norms"].as_array().unwrap()).enumerate() {
        let w = w.as_f64().unwrap();
        assert!((n - w).abs() < 1e-4 * w, "step {i}: grad norm {n} vs {w}");
    }
    let params: Vec<Tensor> = model.vs.trainable_variables().iter().map(|t| t.reshape([-1]).to_kind(Kind::Double)).collect();
    let all = Tensor::cat(&params, 0);
    let abs = f64::try_from(all.abs().sum(Kind::Double)).unwrap();
    let want = f["param_abs_sum"].as_f64().unwrap();
    assert!((abs - want).abs() < 1e-5 * want, "final |params| sum {abs} vs {want}");
}

#[test]
fn restored_state_continues_bit_identically() {
    tch::set_num_threads(2);
    let cfg = AdamWConfig::default();
    // Run A: 5 steps straight.
    let (a, ids) = tiny();
    let mut opt_a = AdamW::new(a.vs.variables(), cfg.clone());
    let (la, _) = train(&a, &mut opt_a, &ids, 5, 1e-3, 1.0);
    // Run B: 2 steps, then parameters and optimizer state copied into a fresh model + optimizer.
    let (b, _) = tiny();
    let mut opt_b = AdamW::new(b.vs.variables(), cfg.clone());
    let (lb1, _) = train(&b, &mut opt_b, &ids, 2, 1e-3, 1.0);
    let (mut c, _) = tiny();
    let saved: Vec<(String, Tensor)> = b.vs.variables().into_iter().map(|(k, v)| (k, v.detach().copy())).collect();
    c.load_named(&saved, std::path::Path::new("memory")).unwrap();
    let mut opt_c = AdamW::new(c.vs.variables(), cfg);
    let state: Vec<(String, Tensor)> = opt_b.state().into_iter().map(|(k, v)| (k, v.copy())).collect();
    opt_c.load_state(&state, opt_b.step).unwrap();
    let (lc, _) = train(&c, &mut opt_c, &ids, 3, 1e-3, 1.0);
    assert_eq!([lb1, lc].concat(), la, "losses differ after restoring");
    for (name, va) in a.vs.variables() {
        let vc = &c.vs.variables()[&name];
        assert!(va.equal(vc), "{name} differs");
    }
    let missing = opt_c.load_state(&state[1..], 0).unwrap_err();
    assert!(missing.contains("missing"), "{missing}");
}

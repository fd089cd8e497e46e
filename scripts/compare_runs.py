#!/usr/bin/env python3
"""Compare two syne run folders record by record: training metrics (all but throughput), validation,
mixture log, token account, final weights (sha256), synthesis and evaluation results.

Usage: scripts/compare_runs.py RUN_A RUN_B   (exit 0 when all agree)
"""
import json, sys, hashlib, pathlib
a, b = map(pathlib.Path, sys.argv[1:3])
def jl(p): return [json.loads(l) for l in open(p) if l.strip()]
ok = True
def check(name, x, y):
    global ok
    same = x == y
    ok &= same
    print(f"{'same' if same else 'DIFFERENT'}: {name}")
ma, mb = jl(a/"train/metrics.jsonl"), jl(b/"train/metrics.jsonl")
strip = lambda m: [{k: v for k, v in r.items() if k != "tokens_per_s"} for r in m]
check(f"train/metrics.jsonl ({len(ma)} steps: step, tokens, loss, lr, grad_norm)", strip(ma), strip(mb))
check("train/validation.jsonl (every domain and topic at every validation)", jl(a/"train/validation.jsonl"), jl(b/"train/validation.jsonl"))
check("train/mixture.jsonl (re-weighting events)", jl(a/"train/mixture.jsonl"), jl(b/"train/mixture.jsonl"))
check("train/account.json", json.load(open(a/"train/account.json")), json.load(open(b/"train/account.json")))
h = lambda p: hashlib.sha256(open(p, "rb").read()).hexdigest()
check("train/final/model.safetensors (sha256)", h(a/"train/final/model.safetensors"), h(b/"train/final/model.safetensors"))
check("synth/synthesis.jsonl", h(a/"synth/synthesis.jsonl"), h(b/"synth/synthesis.jsonl"))
for d in ["before", "after"]:
    ra, rb = json.load(open(a/f"eval/{d}/results.json")), json.load(open(b/f"eval/{d}/results.json"))
    check(f"eval/{d}/results.json results", ra["results"], rb["results"])
print("first/last loss", ma[0]["loss"], ma[-1]["loss"]); 
va = jl(a/"train/validation.jsonl")
print("held-out first/last:", {d["name"]: round(d["perplexity"], 4) for d in va[0]["domains"]}, {d["name"]: round(d["perplexity"], 4) for d in va[-1]["domains"]})
sys.exit(0 if ok else 1)

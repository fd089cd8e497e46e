#!/usr/bin/env python3
"""Reference numerics for RoPE scaling and generation, produced with PyTorch + transformers
(run in .venv after `pip install transformers==4.57.3 gguf==0.19.0 accelerate==1.12.0`; the
outputs are committed).

1. tiny-llama-rope-llama3/ and tiny-llama-rope-linear/: random tiny Llamas (tied embeddings)
   whose configs carry `rope_scaling` (llama3: factor 8, low/high 1/4, original 32 positions, so
   the head's 8 frequencies fall in all three bands; linear: factor 4), in HF layout, each with
   reference.safetensors holding input ids [2, 48] and logits.
2. smollm2-generate.json: SmolLM2-135M-Instruct (the real GGUF) greedy completions of an
   English and a Chinese prompt (token ids from the real corpora), plain and with
   repetition_penalty 1.3, 24 new tokens each.

Usage: scripts/make_generate_fixtures.py OUT_DIR"""
import json
import os
import sys
from pathlib import Path

import torch
from safetensors.torch import save_file
from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaConfig, LlamaForCausalLM

ROOT = Path(__file__).resolve().parent.parent
ASSETS = Path(os.environ.get("SYNE_ASSETS", ROOT / "assets"))


def tiny(out, name, scaling, seed):
    torch.manual_seed(seed)
    cfg = LlamaConfig(vocab_size=256, hidden_size=64, intermediate_size=172, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, rms_norm_eps=1e-5, rope_theta=10000.0,
                      max_position_embeddings=256, tie_word_embeddings=True, rope_scaling=scaling,
                      attn_implementation="eager")
    model = LlamaForCausalLM(cfg).float().eval()
    d = out / name
    model.save_pretrained(d, safe_serialization=True)
    ids = torch.randint(0, 256, (2, 48), generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        logits = model(ids).logits
    save_file({"input_ids": ids.contiguous(), "logits": logits.contiguous()}, str(d / "reference.safetensors"))


def first_long(corpus, n):
    for line in open(ASSETS / "corpora" / f"{corpus}.jsonl", encoding="utf-8"):
        t = json.loads(line)["text"]
        if len(t) >= n:
            return t
    raise SystemExit(f"no document of {n} characters in {corpus}")


def main():
    out = Path(sys.argv[1])
    tiny(out, "tiny-llama-rope-llama3", {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                                         "high_freq_factor": 4.0, "original_max_position_embeddings": 32}, 2)
    tiny(out, "tiny-llama-rope-linear", {"rope_type": "linear", "factor": 4.0}, 3)

    gguf = ASSETS / "models" / "SmolLM2-135M-Instruct.Q4_1.gguf"
    tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    lm = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32).eval()
    res = []
    for lang, corpus, n in (("en", "en-wiki-summaries", 200), ("zh", "zh-peoples-daily", 120)):
        ids = tok(first_long(corpus, n), add_special_tokens=False).input_ids[:32]
        for penalty in (1.0, 1.3):
            with torch.no_grad():
                g = lm.generate(torch.tensor([ids]), max_new_tokens=24, do_sample=False,
                                repetition_penalty=penalty, pad_token_id=0)
            res.append({"lang": lang, "prompt": ids, "repetition_penalty": penalty,
                        "completion": g[0, len(ids):].tolist()})
    (out / "smollm2-generate.json").write_text(json.dumps(res))
    print(json.dumps([(r["lang"], r["repetition_penalty"], tok.decode(r["completion"])) for r in res], ensure_ascii=False))


if __name__ == "__main__":
    main()

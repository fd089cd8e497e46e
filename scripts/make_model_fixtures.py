#!/usr/bin/env python3
"""Reference numerics for syne-model, produced with PyTorch + transformers (run in .venv after
`pip install transformers==4.57.3 gguf==0.19.0 accelerate==1.12.0`; the outputs are committed).

1. tiny-llama/: a random Llama (GQA 4/2 heads, 2 layers, untied head) saved in HF layout, with
   reference.safetensors holding input ids [2, 24], logits [2, 24, 256] and the mean
   cross-entropy loss.
2. smollm2-ppl.json: SmolLM2-135M-Instruct (the real GGUF, dequantised by transformers/gguf-py)
   on a fixed English and a fixed Chinese paragraph from the real corpora: token ids (from the
   GGUF's tokenizer as transformers builds it), mean NLL and perplexity.

Usage: scripts/make_model_fixtures.py OUT_DIR"""
import json
import os
import sys
from pathlib import Path

import torch
from safetensors.torch import save_file
from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaConfig, LlamaForCausalLM

ROOT = Path(__file__).resolve().parent.parent
ASSETS = Path(os.environ.get("SYNE_ASSETS", ROOT / "assets"))


def first_long(corpus, n):
    for line in open(ASSETS / "corpora" / f"{corpus}.jsonl", encoding="utf-8"):
        t = json.loads(line)["text"]
        if len(t) >= n:
            return t[: n * 2]
    raise SystemExit(f"no document of {n} characters in {corpus}")


def main():
    out = Path(sys.argv[1])
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=256, hidden_size=64, intermediate_size=172, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, rms_norm_eps=1e-5, rope_theta=10000.0,
                      max_position_embeddings=128, tie_word_embeddings=False, attn_implementation="eager")
    model = LlamaForCausalLM(cfg).float().eval()
    tiny = out / "tiny-llama"
    model.save_pretrained(tiny, safe_serialization=True)
    ids = torch.randint(0, 256, (2, 24), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        logits = model(ids).logits
        loss = torch.nn.functional.cross_entropy(logits[:, :-1].reshape(-1, 256), ids[:, 1:].reshape(-1))
    save_file({"input_ids": ids.contiguous(), "logits": logits.contiguous(), "loss": loss.reshape(1)},
              str(tiny / "reference.safetensors"))

    gguf = ASSETS / "models" / "SmolLM2-135M-Instruct.Q4_1.gguf"
    tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    lm = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32).eval()
    res = {}
    for lang, corpus, n in (("en", "en-wiki-summaries", 600), ("zh", "zh-peoples-daily", 250)):
        text = first_long(corpus, n)
        t = tok(text, add_special_tokens=False, return_tensors="pt").input_ids[:, :256]
        with torch.no_grad():
            lg = lm(t).logits
            nll = torch.nn.functional.cross_entropy(lg[0, :-1], t[0, 1:]).item()
        res[lang] = {"text": text, "ids": t[0].tolist(), "nll": nll, "ppl": float(torch.exp(torch.tensor(nll)))}
    (out / "smollm2-ppl.json").write_text(json.dumps(res, ensure_ascii=False))
    print(f"tiny loss {loss.item():.6f}; SmolLM2 ppl en {res['en']['ppl']:.3f} zh {res['zh']['ppl']:.3f}")


if __name__ == "__main__":
    main()

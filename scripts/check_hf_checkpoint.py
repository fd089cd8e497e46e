#!/usr/bin/env python3
"""Check that a checkpoint folder written by `syne train` (final/ or checkpoints/step-N/model)
loads in transformers and scores documents as syne does: for every line of a `syne ppl` output
made from that folder, transformers' mean NLL of the same document (same windows) must agree.

Usage: .venv/bin/python scripts/check_hf_checkpoint.py CKPT_DIR CORPUS.jsonl PPL.jsonl MAX_LEN
(needs transformers==4.57.3 in .venv)"""
import json
import sys
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, PreTrainedTokenizerFast

ckpt, corpus, ppl, max_len = Path(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4])
torch.set_num_threads(2)
model = AutoModelForCausalLM.from_pretrained(ckpt, dtype=torch.float32).eval()
tok = PreTrainedTokenizerFast(tokenizer_file=str(ckpt / "tokenizer.json"))
docs = [json.loads(l) for l in open(corpus, encoding="utf-8")]
ours = [json.loads(l) for l in open(ppl, encoding="utf-8")]
assert len(docs) == len(ours), (len(docs), len(ours))
worst = 0.0
for d, o in zip(docs, ours):
    ids = tok(d["text"], add_special_tokens=False).input_ids
    assert len(ids) == o["tokens"], f"{o['pos']}: {len(ids)} tokens vs syne's {o['tokens']}"
    nll, n = 0.0, 0
    for s in range(0, len(ids), max_len):
        w = torch.tensor([ids[s:s + max_len]])
        if w.shape[1] < 2:
            continue
        with torch.no_grad():
            lg = model(w).logits[0, :-1]
        nll += torch.nn.functional.cross_entropy(lg, w[0, 1:], reduction="sum").item()
        n += w.shape[1] - 1
    worst = max(worst, abs(nll / n - o["mean_nll"]) / o["mean_nll"])
print(f"{ckpt}: loads in transformers; {len(docs)} documents, identical token counts; "
      f"largest relative difference of mean NLL vs syne: {worst:.2e}")
assert worst < 1e-4, worst

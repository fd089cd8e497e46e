#!/usr/bin/env python3
"""Reference AdamW training steps for syne-train, made with PyTorch (run in .venv; committed).

Loads the tiny Llama of crates/syne-model/tests/fixtures/tiny-llama, trains 6 steps on its
reference batch with torch.optim.AdamW (lr 1e-3, betas (0.9, 0.95), eps 1e-8, weight decay 0.1
on every parameter except the RMSNorm weights) and global-norm clipping at 0.5, and records the
loss and pre-clipping gradient norm of every step and the final parameters' sum and abs-sum.

Usage: scripts/make_train_fixtures.py OUT.json"""
import json
import os
import sys
from pathlib import Path

import torch
from safetensors.torch import load_file
from transformers import LlamaForCausalLM

ROOT = Path(__file__).resolve().parent.parent
TINY = ROOT / "crates/syne-model/tests/fixtures/tiny-llama"


def main():
    torch.manual_seed(0)
    model = LlamaForCausalLM.from_pretrained(TINY, dtype=torch.float32, attn_implementation="eager").train()
    ids = load_file(str(TINY / "reference.safetensors"))["input_ids"]
    decay = [p for n, p in model.named_parameters() if "norm" not in n]
    no_decay = [p for n, p in model.named_parameters() if "norm" in n]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0}],
                            lr=1e-3, betas=(0.9, 0.95), eps=1e-8, foreach=False)
    losses, norms = [], []
    for _ in range(6):
        opt.zero_grad()
        logits = model(ids).logits
        loss = torch.nn.functional.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]), ids[:, 1:].reshape(-1))
        loss.backward()
        norms.append(torch.nn.utils.clip_grad_norm_(model.parameters(), 0.5).item())
        opt.step()
        losses.append(loss.item())
    params = torch.cat([p.detach().reshape(-1) for p in model.parameters()]).double()
    out = {"lr": 1e-3, "betas": [0.9, 0.95], "eps": 1e-8, "weight_decay": 0.1, "no_decay": ["norm"], "clip": 0.5,
           "losses": losses, "grad_norms": norms, "param_sum": params.sum().item(), "param_abs_sum": params.abs().sum().item()}
    tmp = sys.argv[1] + ".partial"
    Path(tmp).write_text(json.dumps(out, indent=1))
    os.replace(tmp, sys.argv[1])
    print(f"losses {[round(x, 5) for x in losses]}")


if __name__ == "__main__":
    main()

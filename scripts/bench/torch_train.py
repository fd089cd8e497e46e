#!/usr/bin/env python3
"""The PyTorch-eager peer of `cargo bench -p syne-train --bench train_step`: the same Llama
(GQA by repeating K/V as transformers does, RoPE, RMSNorm in f32, SwiGLU, tied or untied head,
F.scaled_dot_product_attention), the same shapes from train_configs.json, random tokens over a
64-symbol alphabet, AdamW (0.9/0.95, eps 1e-8, wd 0.1 except norms, PyTorch's default
implementation for the device, or `--fused`), clip 1.0, optional bf16 autocast and activation
checkpointing, optionally `--compile`d (torch.compile of the model and loss: Inductor fuses the
element-wise work into generated C++/OpenMP kernels on the CPU and Triton kernels on CUDA; the
compilation happens in the warm-up steps, which are not timed). Needs only torch (runs on the
GPU machine's own PyTorch).

Usage: torch_train.py CONFIG [--steps N] [--warm N] [--threads N] [--device cpu|cuda]
                      [--precision f32|bf16] [--checkpointing] [--compile] [--fused]"""
import argparse
import json
import math
import resource
import time
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint

p = argparse.ArgumentParser()
p.add_argument("config")
p.add_argument("--steps", type=int, default=20)
p.add_argument("--warm", type=int, default=3)
p.add_argument("--threads", type=int, default=2)
p.add_argument("--device", default="cpu")
p.add_argument("--precision", default="f32")
p.add_argument("--checkpointing", action="store_true")
p.add_argument("--compile", action="store_true")
p.add_argument("--fused", action="store_true")
p.add_argument("--configs", default=str(Path(__file__).with_name("train_configs.json")))
a = p.parse_args()
torch.set_num_threads(a.threads)
C = json.loads(Path(a.configs).read_text())[a.config]
dev = torch.device(a.device)
torch.manual_seed(0)
D, H, KV = C["hidden_size"], C["num_attention_heads"], C["num_key_value_heads"]
HD = D // H
T, B = C["seq_len"], C["micro_batch"]


class RMSNorm(nn.Module):
    def __init__(s, d):
        super().__init__()
        s.weight = nn.Parameter(torch.ones(d))

    def forward(s, x):
        dt = x.dtype
        x = x.float()
        return (s.weight * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-5))).to(dt)


def rope(x, cos, sin):
    h = x.shape[-1] // 2
    return x * cos + torch.cat([-x[..., h:], x[..., :h]], -1) * sin


def lin(i, o):
    m = nn.Linear(i, o, bias=False)
    nn.init.normal_(m.weight, std=0.02)
    return m


class Block(nn.Module):
    def __init__(s):
        super().__init__()
        s.input_layernorm, s.post_attention_layernorm = RMSNorm(D), RMSNorm(D)
        s.q, s.k, s.v, s.o = lin(D, H * HD), lin(D, KV * HD), lin(D, KV * HD), lin(H * HD, D)
        s.gate, s.up, s.down = lin(D, C["intermediate_size"]), lin(D, C["intermediate_size"]), lin(C["intermediate_size"], D)

    def forward(s, x, cos, sin):
        b, t, _ = x.shape
        h = s.input_layernorm(x)
        q = rope(s.q(h).view(b, t, H, HD).transpose(1, 2), cos, sin)
        k = rope(s.k(h).view(b, t, KV, HD).transpose(1, 2), cos, sin)
        v = s.v(h).view(b, t, KV, HD).transpose(1, 2)
        if KV != H:
            k, v = k.repeat_interleave(H // KV, 1), v.repeat_interleave(H // KV, 1)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + s.o(y.transpose(1, 2).reshape(b, t, H * HD))
        h = s.post_attention_layernorm(x)
        return x + s.down(F.silu(s.gate(h)) * s.up(h))


class Model(nn.Module):
    def __init__(s):
        super().__init__()
        s.embed = nn.Embedding(C["vocab_size"], D)
        nn.init.normal_(s.embed.weight, std=0.02)
        s.layers = nn.ModuleList(Block() for _ in range(C["num_hidden_layers"]))
        s.norm = RMSNorm(D)
        s.head = None if C["tie_word_embeddings"] else lin(D, C["vocab_size"])
        theta = C.get("rope_theta", 10000.0)
        inv = 1.0 / (theta ** (torch.arange(0, HD // 2).float() * 2 / HD))
        ang = torch.outer(torch.arange(T).float(), inv)
        ang = torch.cat([ang, ang], -1)
        s.register_buffer("cos", ang.cos(), persistent=False)
        s.register_buffer("sin", ang.sin(), persistent=False)

    def forward(s, ids):
        x = s.embed(ids)
        dt = torch.bfloat16 if a.precision == "bf16" else torch.float32
        cos, sin = s.cos.to(dt), s.sin.to(dt)
        for l in s.layers:
            x = checkpoint(l, x, cos, sin, use_reentrant=False) if a.checkpointing else l(x, cos, sin)
        x = s.norm(x)
        return F.linear(x, s.head.weight if s.head is not None else s.embed.weight)


m = Model().to(dev)
nparams = sum(p.numel() for p in m.parameters())
decay = [p for n, p in m.named_parameters() if "norm" not in n]
no_decay = [p for n, p in m.named_parameters() if "norm" in n]
opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0}],
                        lr=3e-4, betas=(0.9, 0.95), eps=1e-8, **({"fused": True} if a.fused else {}))


def forward_loss(x, y):
    with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=a.precision == "bf16"):
        logits = m(x)
    return F.cross_entropy(logits.float().view(-1, C["vocab_size"]), y.reshape(-1))


if a.compile:
    forward_loss = torch.compile(forward_loss)
g = torch.Generator().manual_seed(1)
first = last = 0.0
timed = 0.0
for step in range(a.warm + a.steps):
    t0 = time.perf_counter()
    batch = torch.randint(0, 64, (B, T + 1), generator=g).to(dev)
    x, y = batch[:, :-1], batch[:, 1:]
    loss = forward_loss(x, y)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(m.parameters(), 1.0)
    opt.step()
    l = loss.item()
    if dev.type == "cuda":
        torch.cuda.synchronize()
    if step >= a.warm:
        timed += time.perf_counter() - t0
    if step == 0:
        first = l
    last = l
toks = a.steps * B * T
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
gpu = f" gpu_peak_alloc_mib={torch.cuda.max_memory_allocated() / 2**20:.0f}" if dev.type == "cuda" else ""
print(f"RESULT framework=pytorch-{torch.__version__} cfg={a.config} device={a.device} precision={a.precision} "
      f"checkpointing={a.checkpointing} compile={a.compile} fused={a.fused} params={nparams} steps={a.steps} secs={timed:.3f} tok_per_s={toks / timed:.1f} "
      f"loss_first={first:.4f} loss_last={last:.4f} peak_rss_mib={rss:.0f}{gpu}")

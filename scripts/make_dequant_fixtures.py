#!/usr/bin/env python3
"""Reference fixtures for syne-model's dequantisation, computed with gguf-py (PyPI gguf==0.19.0,
llama.cpp's own Python implementation of the ggml block formats).

1. Random blocks of every supported type (scale fields set to finite f16 values), with the
   values gguf-py dequantises them to.
2. Summaries of real tensors of SmolLM2-135M-Instruct (Q8_0, Q4_1, F32): the first 64 values,
   the sum and the sum of absolute values of the whole tensor, in GGUF (not HF) row order.

Usage: scripts/make_dequant_fixtures.py OUT.json   (needs numpy and gguf==0.19.0)"""
import json
import os
import sys
from pathlib import Path

import numpy as np
from gguf import GGMLQuantizationType as T, GGUFReader
from gguf.quants import dequantize

ROOT = Path(__file__).resolve().parent.parent
ASSETS = Path(os.environ.get("SYNE_ASSETS", ROOT / "assets"))

# type -> (block values, block bytes, byte offsets of f16 scale fields)
LAYOUT = {
    T.Q4_0: (32, 18, [0]), T.Q4_1: (32, 20, [0, 2]), T.Q5_0: (32, 22, [0]), T.Q5_1: (32, 24, [0, 2]),
    T.Q8_0: (32, 34, [0]), T.Q4_K: (256, 144, [0, 2]), T.Q6_K: (256, 210, [208]),
    T.F16: (1, 2, None), T.BF16: (1, 2, None),
}


def main():
    rng = np.random.default_rng(20261127)
    out = {"blocks": {}, "smollm2": {}}
    for ty, (per, size, scales) in LAYOUT.items():
        nblocks = 2 if per == 256 else (4 if per == 32 else 64)
        raw = bytearray(rng.integers(0, 256, size=nblocks * size, dtype=np.uint8).tobytes())
        if scales is None:
            vals = rng.uniform(-3, 3, size=nblocks).astype(np.float32)
            if ty == T.F16:
                raw = bytearray(vals.astype(np.float16).tobytes())
            else:
                raw = bytearray((vals.view(np.uint32) >> 16).astype(np.uint16).tobytes())
        else:
            for b in range(nblocks):
                for off in scales:
                    v = np.float16(rng.uniform(-0.1, 0.1))
                    raw[b * size + off:b * size + off + 2] = v.tobytes()
        y = dequantize(np.frombuffer(bytes(raw), dtype=np.uint8), ty).astype(np.float32).reshape(-1)
        out["blocks"][ty.name] = {"id": int(ty), "n": int(y.size), "hex": bytes(raw).hex(), "values": [float(v) for v in y]}
    reader = GGUFReader(ASSETS / "models" / "SmolLM2-135M-Instruct.Q4_1.gguf")
    wanted = {"token_embd.weight", "blk.0.attn_q.weight", "blk.0.attn_k.weight", "blk.3.ffn_down.weight", "blk.0.attn_norm.weight"}
    for t in reader.tensors:
        if t.name in wanted:
            y = dequantize(t.data, t.tensor_type).astype(np.float64).reshape(-1)
            out["smollm2"][t.name] = {
                "type": t.tensor_type.name, "first": [float(v) for v in y[:64]],
                "sum": float(y.sum()), "abs_sum": float(np.abs(y).sum()), "n": int(y.size),
            }
    tmp = sys.argv[1] + ".partial"
    with open(tmp, "w") as f:
        json.dump(out, f)
    os.replace(tmp, sys.argv[1])
    print(f"wrote {sys.argv[1]}: {len(out['blocks'])} block types, {len(out['smollm2'])} real tensors")


if __name__ == "__main__":
    main()

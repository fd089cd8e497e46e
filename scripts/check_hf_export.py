#!/usr/bin/env python3
"""Check that a folder written by `syne export-hf` loads in transformers and gives the same
logits as transformers' own load of the source GGUF (and the same token ids from the exported
tokenizer.json as from syne).

Usage: .venv/bin/python scripts/check_hf_export.py EXPORT_DIR SOURCE.gguf
(needs transformers==4.57.3 gguf==0.19.0 accelerate==1.12.0 in .venv)"""
import sys
from pathlib import Path

import torch
from tokenizers import pre_tokenizers
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedTokenizerFast

export, gguf = Path(sys.argv[1]), Path(sys.argv[2])
text = "The mitochondrion is the powerhouse of the cell. 线粒体是细胞中制造能量的结构。In 1857, 42 cells."
ours = AutoModelForCausalLM.from_pretrained(export, dtype=torch.float32).eval()
tok = PreTrainedTokenizerFast(tokenizer_file=str(export / "tokenizer.json"))
ref = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32).eval()
ref_tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
# transformers' GGUF converter drops SmolLM2's digit splitting; restore it for the reference.
ref_tok.backend_tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
    [pre_tokenizers.Digits(individual_digits=True), pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)])
ids = tok(text, add_special_tokens=False, return_tensors="pt").input_ids
ref_ids = ref_tok(text, add_special_tokens=False, return_tensors="pt").input_ids
assert torch.equal(ids, ref_ids), f"token ids differ:\n{ids}\n{ref_ids}"
with torch.no_grad():
    diff = (ours(ids).logits - ref(ids).logits).abs().max().item()
print(f"{export}: loads in transformers; {ids.shape[1]} tokens identical; max |logits diff| = {diff:.3e}")
assert diff < 1e-4, diff

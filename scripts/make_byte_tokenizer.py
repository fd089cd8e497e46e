#!/usr/bin/env python3
"""A byte-level tokenizer.json whose id i is byte i (256 tokens, no merges), for the tiny test
models' 256-entry vocabulary: lets tests tokenize real text (UTF-8 bytes) for the tiny Llama.
Run in .venv-bench (tokenizers==0.23.3). Usage: scripts/make_byte_tokenizer.py OUT.json"""
import sys

from tokenizers import Tokenizer, decoders, models, pre_tokenizers


def bytes_to_unicode():
    # GPT-2's reversible byte -> printable character map, which ByteLevel pre-tokenization uses.
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs)))


vocab = {ch: b for b, ch in bytes_to_unicode().items()}
tok = Tokenizer(models.BPE(vocab=vocab, merges=[]))
tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
tok.decoder = decoders.ByteLevel()
enc = tok.encode("héllo 你好")
assert enc.ids == list("héllo 你好".encode()), enc.ids
assert tok.decode(enc.ids) == "héllo 你好"
tok.save(sys.argv[1])

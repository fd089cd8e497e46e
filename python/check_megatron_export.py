"""Read a `syne plan --megatron OUT` export with megatron-core and check it is syne's stream.

megatron-core's own IndexedDataset reader returns the number of sequences export.json states,
each of seq_len + 1 tokens; every stage's range of them hashes (sha256 of the little-endian u32
tokens of its sequences, in order) to the sha256 syne computed from its own mixture stream while
writing; syne_megatron's dataset serves the same sequences, shifted into tokens and labels. Prints one JSON line per stage; exits non-zero on any difference.

    .venv/bin/python python/check_megatron_export.py OUT
"""
import hashlib
import json
import os
import sys

import numpy

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from megatron.core.datasets.indexed_dataset import IndexedDataset  # noqa: E402

from syne_megatron import SyneStreamDataset, read_export  # noqa: E402

out = sys.argv[1]
export = read_export(out)
prefix = os.path.join(out, export["prefix"])
index = IndexedDataset(prefix, multimodal=False, mmap=True)
ds = SyneStreamDataset(prefix, eod=export.get("eod"), reset_at_eod=export["doc_masking"])
ok = len(index) == export["sequences"] == len(ds)
for st in export["stages"]:
    h = hashlib.sha256()
    lengths = set()
    for i in range(st["first"], st["first"] + st["sequences"]):
        seq = numpy.asarray(index[i]).astype("<u4")
        lengths.add(len(seq))
        h.update(seq.tobytes())
    step = max(1, st["sequences"] // 16)
    shifted = all(
        (ds[i]["tokens"].numpy() == ds.sequence(i)[:-1]).all() and (ds[i]["labels"].numpy() == ds.sequence(i)[1:]).all()
        for i in range(st["first"], st["first"] + st["sequences"], step)
    )
    matches = lengths == {export["seq_len"] + 1} and h.hexdigest() == st["sha256"] and shifted
    ok &= matches
    print(json.dumps({"stage": st["name"], "first": st["first"], "sequences": st["sequences"], "sha256": h.hexdigest(), "matches": matches}))
print(json.dumps({"sequences": len(index), "matches": ok}))
sys.exit(0 if ok else 1)

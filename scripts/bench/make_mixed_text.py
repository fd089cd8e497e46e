#!/usr/bin/env python3
"""Write ~N MB of mixed Chinese/English documents (JSONL, {"id", "text"}) from the real corpora,
round-robin over the corpora so both languages are spread through the file. Deterministic.

Usage: make_mixed_text.py OUT.jsonl [MEGABYTES] [--repeat K]
--repeat K writes the set K times (ids suffixed), for scaling runs."""
import json
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ASSETS = Path(os.environ.get("SYNE_ASSETS", ROOT / "assets"))
CORPORA = ["zh-peoples-daily", "en-wiki-summaries", "zh-reviews", "en-python-docs", "zh-manpages", "en-scipy-docs"]


def main():
    out = sys.argv[1]
    target = float(sys.argv[2]) * 1e6 if len(sys.argv) > 2 and not sys.argv[2].startswith("--") else 20e6
    repeat = int(sys.argv[sys.argv.index("--repeat") + 1]) if "--repeat" in sys.argv else 1
    iters = [open(ASSETS / "corpora" / f"{c}.jsonl", encoding="utf-8") for c in CORPORA]
    docs, size = [], 0
    while size < target and iters:
        for f in list(iters):
            line = f.readline()
            if not line:
                iters.remove(f)
                continue
            d = json.loads(line)
            docs.append({"id": d["id"], "text": d["text"]})
            size += len(d["text"].encode())
            if size >= target:
                break
    tmp = out + ".partial"
    with open(tmp, "w", encoding="utf-8") as f:
        for r in range(repeat):
            for d in docs:
                rid = d["id"] if r == 0 else f"{d['id']}#{r}"
                f.write(json.dumps({"id": rid, "text": d["text"]}, ensure_ascii=False) + "\n")
    os.replace(tmp, out)
    print(f"{out}: {len(docs) * repeat} documents, {size * repeat / 1e6:.1f} MB of text", file=sys.stderr)


if __name__ == "__main__":
    main()

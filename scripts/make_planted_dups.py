#!/usr/bin/env python3
"""Generate a planted near-duplicate set from real text, for dedup tests and benchmarks.

Base documents come from the real corpora of scripts/fetch-assets (English Wikipedia summaries
and People's Daily articles). Each base document gets 0-3 near-duplicate variants made with
controlled edits: word/character deletions and insertions, two sentences swapped, and changed
punctuation. Every line of the output is {"id", "text", "cluster", "lang", "edits"}; documents
with the same "cluster" are duplicates of each other, and the first of a cluster in file order
is the original.

Deterministic for a given --seed.

Usage: scripts/make_planted_dups.py --out FILE [--bases N] [--seed S] [--lang en|zh|both]
"""
import argparse
import json
import os
import random
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ASSETS = Path(os.environ.get("SYNE_ASSETS", ROOT / "assets"))

ZH_PUNCT = {"，": ",", "。": ".", "：": ":", "；": ";", "！": "!", "？": "?"}
EN_PUNCT = {",": ";", ".": "!", ";": ",", ":": " -"}


def load(corpus, min_len, limit):
    out = []
    with open(ASSETS / "corpora" / f"{corpus}.jsonl", encoding="utf-8") as f:
        for line in f:
            t = json.loads(line)["text"]
            if len(t) >= min_len:
                out.append(t)
            if len(out) >= limit:
                break
    return out


def split_sentences(text, lang):
    pat = r"(?<=[。！？])" if lang == "zh" else r"(?<=[.!?])\s+"
    return [s for s in re.split(pat, text) if s]


def edit(text, lang, rng, donor):
    """One near-duplicate: a few light edits chosen at random, recorded by name."""
    edits = []
    sents = split_sentences(text, lang)
    if len(sents) >= 3 and rng.random() < 0.5:
        i = rng.randrange(len(sents) - 1)
        sents[i], sents[i + 1] = sents[i + 1], sents[i]
        edits.append("swap_sentences")
    joiner = "" if lang == "zh" else " "
    text = joiner.join(sents)
    units = list(text) if lang == "zh" else text.split(" ")
    donor_units = list(donor) if lang == "zh" else donor.split(" ")
    # About 0.3-1% of the units deleted and as many inserted from another document: enough to
    # change the text everywhere, light enough to stay a near-duplicate (word 5-gram Jaccard
    # mostly >= 0.8, see the summary the script prints).
    n = max(1, int(len(units) * rng.uniform(0.003, 0.01)))
    if rng.random() < 0.8:
        for _ in range(n):
            if len(units) > 10:
                del units[rng.randrange(len(units))]
        edits.append(f"delete_{n}")
    if rng.random() < 0.8:
        for _ in range(n):
            units.insert(rng.randrange(len(units) + 1), rng.choice(donor_units))
        edits.append(f"insert_{n}")
    text = joiner.join(units)
    if rng.random() < 0.6:
        table = ZH_PUNCT if lang == "zh" else EN_PUNCT
        text = "".join(table.get(c, c) if rng.random() < 0.5 else c for c in text)
        edits.append("punctuation")
    if not edits:
        text = text + (" " if lang == "en" else "") + rng.choice(donor_units)
        edits.append("append_1")
    return text, edits


def shingles(text, n=5):
    """Word 5-grams of simplified text (lower case, no punctuation, CJK characters as words),
    as syne and datatrove compare documents."""
    words = re.findall(r"[\u4e00-\u9fff]|[^\W_]+", text.lower())
    return {tuple(words[i:i + n]) for i in range(max(1, len(words) - n + 1))}


def jaccard(a, b):
    sa, sb = shingles(a), shingles(b)
    return len(sa & sb) / max(1, len(sa | sb))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True)
    ap.add_argument("--bases", type=int, default=1000, help="base documents per language")
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--lang", choices=["en", "zh", "both"], default="both")
    args = ap.parse_args()
    rng = random.Random(args.seed)
    langs = ["en", "zh"] if args.lang == "both" else [args.lang]
    docs = []
    for lang in langs:
        corpus, min_len = ("en-wiki-summaries", 800) if lang == "en" else ("zh-peoples-daily", 400)
        bases = load(corpus, min_len, args.bases)
        if len(bases) < args.bases:
            raise SystemExit(f"only {len(bases)} {lang} documents long enough in {corpus}")
        for i, base in enumerate(bases):
            cluster = f"{lang}-{i:05d}"
            docs.append({"id": f"{cluster}-orig", "text": base, "cluster": cluster, "lang": lang, "edits": []})
            for k in range(rng.choice([0, 0, 1, 1, 2, 3])):
                donor = bases[rng.randrange(len(bases))]
                text, edits = edit(base, lang, rng, donor)
                docs.append({"id": f"{cluster}-dup{k}", "text": text, "cluster": cluster, "lang": lang, "edits": edits})
    # Shuffle, but keep each original ahead of its variants so "first of a cluster" is the original.
    order = list(range(len(docs)))
    rng.shuffle(order)
    first = {}
    for pos, i in enumerate(order):
        first.setdefault(docs[i]["cluster"], pos)
    shuffled = [docs[i] for i in order]
    originals = {d["cluster"]: d for d in docs if d["id"].endswith("-orig")}
    result, placed = [], set()
    for d in shuffled:
        c = d["cluster"]
        if c not in placed:
            result.append(originals[c])
            placed.add(c)
        if not d["id"].endswith("-orig"):
            result.append(d)
    tmp = args.out + ".partial"
    with open(tmp, "w", encoding="utf-8") as f:
        for d in result:
            f.write(json.dumps(d, ensure_ascii=False) + "\n")
    os.replace(tmp, args.out)
    dups = [d for d in result if not d["id"].endswith("-orig")]
    sims = sorted(jaccard(originals[d["cluster"]]["text"], d["text"]) for d in dups)
    if sims:
        q = lambda f: sims[min(len(sims) - 1, int(f * len(sims)))]
        print(f"wrote {len(result)} documents ({len(dups)} planted near-duplicates) to {args.out}; "
              f"5-gram Jaccard to the original: min {sims[0]:.3f}, p5 {q(0.05):.3f}, median {q(0.5):.3f}")
    else:
        print(f"wrote {len(result)} documents (no planted near-duplicates) to {args.out}")


if __name__ == "__main__":
    main()

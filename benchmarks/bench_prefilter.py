"""Time the model-free filter saves in the ``quality`` chain on the mixed pool.

Two variants of the chain run on the same pool and budget: ``quality`` as shipped (exact and
near dedup, the token-length filter, then IFD and facility location) and ``no-prefilter``
(the same recipe without the model-free filter stage and its signal). Runs are interleaved
(A B, then B A, ...), each in a fresh subprocess with an empty signal cache, so every run
loads the models and scores its candidates. The table gives, per variant, the median of the
runs: total seconds, seconds in the model-free filters, seconds in the IFD stage (the
model), examples the model scored, and the share of the selection that the two variants have
in common (all of it with the built-in model: the filter drops only examples whose response
the model would cut, which the IFD stage drops).

    python benchmarks/bench_prefilter.py                      # the whole mixed pool, 3 runs
    python benchmarks/bench_prefilter.py --per-domain 5 --repeats 3   # a quick check
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from _machine import header, machine

OUT = Path(__file__).resolve().parent / "out"
DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "mixed_pool.jsonl"
VARIANTS = ("quality", "no-prefilter")

CHILD = r"""
import json, sys, time
from dataclasses import replace
from winnow.data import load_pool
from winnow.recipes.recipe import load_recipe
from winnow.recipes.runner import run_recipe
from winnow.store import Store
data, variant, budget, per_domain, cache, max_length = sys.argv[1:7]
pool = load_pool(data)
if int(per_domain):
    seen, rows = {}, []
    for i, d in enumerate(pool.extra["domain"]):
        seen[d] = seen.get(d, 0) + 1
        if seen[d] <= int(per_domain):
            rows.append(i)
    pool = pool.subset(rows)
recipe = load_recipe("quality")
if variant == "no-prefilter":
    recipe = replace(recipe, signals={k: v for k, v in recipe.signals.items()
                                      if k != "length"},
                     stages=[s for s in recipe.stages if not (
                         "filter" in s and "ifd" not in s["filter"])])
start = time.perf_counter()
result = run_recipe(recipe, pool, budget, store=Store(cache),
                    params={"max_length": int(max_length)})
total = time.perf_counter() - start
stages = [{k: s[k] for k in ("label", "in", "out", "seconds")} for s in result.stages]
print(json.dumps({"seconds": total, "n": len(pool), "stages": stages,
                  "selected": sorted(result.pool.ids[i] for i in result.selected)}))
"""


def run_child(variant: str, args) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
    with tempfile.TemporaryDirectory() as cache:
        out = subprocess.run([sys.executable, "-c", CHILD, str(args.data), variant, args.budget,
                              str(args.per_domain), cache, str(args.max_length)],
                             check=True, capture_output=True, text=True, env=env)
    return json.loads(out.stdout.strip().splitlines()[-1])


def summary(runs: list[dict]) -> dict:
    """Medians over runs: total, model-free filter and model (IFD stage) seconds, examples
    the model scored."""
    def stage_seconds(run, test):
        return sum(s["seconds"] for s in run["stages"] if test(s["label"]))

    def cheap(label):
        return label.startswith("filter") and "ifd" not in label

    def model(label):
        return label.startswith("filter") and "ifd" in label

    scored = [next(s["in"] for s in r["stages"] if model(s["label"])) for r in runs]
    return {"seconds": statistics.median(r["seconds"] for r in runs),
            "runs_s": [round(r["seconds"], 2) for r in runs],
            "prefilter_s": statistics.median(stage_seconds(r, cheap) for r in runs),
            "model_s": statistics.median(stage_seconds(r, model) for r in runs),
            "model_examples": statistics.median(scored),
            "stages": runs[-1]["stages"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--budget", default="5%")
    ap.add_argument("--per-domain", type=int, default=0,
                    help="first N examples of each domain (0: the whole pool)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--max-length", type=int, default=512)
    args = ap.parse_args()
    if args.repeats < 3:
        ap.error("--repeats must be at least 3 (the table gives medians)")
    info = machine(peak=False)
    print(header(info))
    runs: dict[str, list[dict]] = {v: [] for v in VARIANTS}
    for r in range(args.repeats):
        for variant in VARIANTS if r % 2 == 0 else VARIANTS[::-1]:
            runs[variant].append(run_child(variant, args))
            print(f"run {r + 1} {variant}: {runs[variant][-1]['seconds']:.1f} s", flush=True)
    rows = {v: summary(runs[v]) for v in VARIANTS}
    same = [len(set(a["selected"]) & set(b["selected"])) / max(len(a["selected"]), 1)
            for a, b in zip(runs["quality"], runs["no-prefilter"])]
    n = runs["quality"][0]["n"]
    print(f"\n{n} examples, budget {args.budget}, max_length {args.max_length}, "
          f"{args.threads} threads, median of {args.repeats} interleaved runs")
    print(f"{'variant':<14}{'total s':>9}{'prefilter s':>13}{'model s':>9}{'model scored':>14}")
    for v in VARIANTS:
        s = rows[v]
        print(f"{v:<14}{s['seconds']:>9.1f}{s['prefilter_s']:>13.2f}{s['model_s']:>9.1f}"
              f"{s['model_examples']:>14.0f}")
    saved = rows["no-prefilter"]["seconds"] - rows["quality"]["seconds"]
    print(f"saved: {saved:.1f} s ({saved / rows['no-prefilter']['seconds']:.0%} of the chain), "
          f"selection in common: {statistics.median(same):.0%}")
    OUT.mkdir(exist_ok=True)
    path = OUT / f"bench_prefilter_{n}.json"
    path.write_text(json.dumps({"command": " ".join(["python", *sys.argv]), "machine": info,
                                "n": n, "budget": args.budget, "max_length": args.max_length,
                                "threads": args.threads, "repeats": args.repeats,
                                "rows": rows, "saved_s": saved,
                                "selection_in_common": same}, indent=2))
    print(f"written: {path}")


if __name__ == "__main__":
    main()

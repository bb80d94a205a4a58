"""Targeted selection quality: how much of the selection comes from the target's domain.

Pool ``mixed_pool.jsonl`` (3322 examples, 142 from the ``mmlu`` domain = 4.3%); target
``targets/mmlu_heldout_subjects.jsonl`` (140 exemplars of 28 MMLU subjects *not* in the pool).
For each method: the share of the selected examples from each of the pool's domains (the
``mmlu`` share against its base rate), the wall time and where it went (the run's timings
per artifact, signal and stage; the gradient signals split into pool features, target
features and matching). Methods run through their recipes (``run_recipe``) in the order
given, on one cache: the gradient methods share the warmup and the pool's features (the
first one computes them; its row says so), NICE adds its policy-gradient target side. The
gradient ones run at a CPU scale set by the flags (LoRA rank, warmup epochs, tokens,
projection size, dtype), optionally on a seeded random subsample of the pool
(``--subsample``).

    python benchmarks/bench_targeted.py                                 # all methods, full pool
    python benchmarks/bench_targeted.py --methods tsds near random
    python benchmarks/bench_targeted.py --subsample 600 --methods less nice random
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
from _machine import header, machine

from winnow.data import load_pool
from winnow.recipes.runner import run_recipe
from winnow.store import Store

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"


def where(row: dict) -> str:
    """The run's timings (artifacts, signals: cached or computed, gradient features split)."""
    parts = []
    for key, sec in row["timings"].items():
        kind, _, name = key.partition(":")
        if kind == "signal" and row["cached"].get(name, {}).get("cached"):
            parts.append(f"{name} cached {sec:.0f}s")
            continue
        stats = row["signal_stats"].get(name, {})
        split = "; ".join(f"{k.removesuffix('_s').replace('_', ' ')} {v:.0f}s"
                          for k, v in stats.items() if k.endswith("_s"))
        extra = f", target reward {stats['reward_mean']:.3f}" if "reward_mean" in stats else ""
        parts.append(f"{name} {sec:.0f}s" + (f" ({split}{extra})" if split else ""))
    return ", ".join(parts)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--methods", nargs="+",
                    default=["less", "nice", "g2is", "cluster-ucb", "tsds", "near", "random"])
    ap.add_argument("--budget", default="5%")
    ap.add_argument("--subsample", type=int, default=0, help="pool examples (0: all)")
    ap.add_argument("--lora-r", type=int, default=8)
    ap.add_argument("--warmup-epochs", type=int, default=1)
    ap.add_argument("--grad-accum", type=int, default=8)
    ap.add_argument("--max-length", type=int, default=256)
    ap.add_argument("--proj-dim", type=int, default=8192)
    ap.add_argument("--dtype", default="auto",
                    help="forward passes of the gradient features (auto: bf16 where native)")
    ap.add_argument("--mc-samples", type=int, default=2)
    ap.add_argument("--max-new-tokens", type=int, default=64)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--cache", default=None, help="cache root (default: winnow's)")
    args = ap.parse_args()
    info = machine(peak=False)
    pool = load_pool(DATA / "mixed_pool.jsonl")
    if args.subsample:
        keep = np.sort(np.random.default_rng(args.seed).choice(len(pool), args.subsample,
                                                               replace=False))
        pool = pool.subset(keep)
    target = load_pool(DATA / "targets" / "mmlu_heldout_subjects.jsonl")
    domain = np.asarray(pool.extra["domain"])
    domains = sorted(set(domain), key=lambda d: -np.sum(domain == d))
    base = float(np.mean(domain == "mmlu"))
    grad = {"lora_r": args.lora_r, "lora_alpha": 4 * args.lora_r,
            "warmup_epochs": args.warmup_epochs, "grad_accum": args.grad_accum,
            "max_length": args.max_length, "proj_dim": args.proj_dim, "dtype": args.dtype}
    params = {"less": grad, "g2is": grad, "cluster-ucb": grad,
              "nice": {**grad, "mc_samples": args.mc_samples,
                       "max_new_tokens": args.max_new_tokens,
                       "max_prompt_length": args.max_length,
                       "reward_model_backend": "rule",
                       "reward_backend_params": {"rule": "exact_match"}}}
    store = Store(args.cache) if args.cache else Store()
    rows = []
    for method in args.methods:
        t = time.perf_counter()
        res = run_recipe(method, pool, args.budget, params=params.get(method), store=store,
                         seed=args.seed, target=target)
        sel = res.selected
        shares = {d: float(np.mean(domain[sel] == d)) if len(sel) else 0.0 for d in domains}
        stats = {k: v for k, v in res.signal_stats.items() if v}
        rows.append({"method": method, "selected": int(len(sel)),
                     "mmlu_fraction": shares["mmlu"], "domain_shares": shares,
                     "seconds": time.perf_counter() - t, "timings": res.timings,
                     "signal_stats": stats, "cached": res.signal_runs})
        print(f"{method}: {rows[-1]['mmlu_fraction']:.3f} of {len(sel)} "
              f"({rows[-1]['seconds']:.0f}s) {where(rows[-1])}", flush=True)
    command = "python benchmarks/bench_targeted.py " + " ".join(sys.argv[1:])
    result = {"command": command, "machine": info, "args": vars(args), "pool": len(pool),
              "target": len(target), "base_rate": base, "rows": rows}
    out = ROOT / "benchmarks" / "out" / "targeted.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(f"\n{header(info)}\n")
    print(f"Targeted selection: pool {len(pool)} examples (mixed_pool.jsonl), target "
          f"{len(target)} held-out MMLU exemplars, budget {args.budget}; mmlu base rate "
          f"{base:.3f}\n")
    print("| method | selected | from mmlu | x base rate | seconds | where the time went |")
    print("|---|---:|---:|---:|---:|---|")
    for r in rows:
        print(f"| {r['method']} | {r['selected']} | {r['mmlu_fraction']:.3f} | "
              f"{r['mmlu_fraction'] / base:.1f} | {r['seconds']:.0f} | {where(r)} |")
    print("\nShare of the selection per domain (pool: " + ", ".join(
        f"{d} {np.mean(domain == d):.3f}" for d in domains) + ")\n")
    print("| method | " + " | ".join(domains) + " |")
    print("|---|" + "---:|" * len(domains))
    for r in rows:
        print(f"| {r['method']} | " + " | ".join(f"{r['domain_shares'][d]:.3f}"
                                                 for d in domains) + " |")
    print(f"\ncommand: {command}")
    print(f"json: {out}")


if __name__ == "__main__":
    main()

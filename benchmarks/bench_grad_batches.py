"""Gradient features by batch size: throughput and peak memory per ``max_tokens``.

The ``grad`` signal's per-example gradients (batched backward with per-example hooks,
sparse sketch to ``--proj-dim``, bf16 autocast where the CPU runs bf16 natively) on
``--n`` examples of the mixed pool drawn at random (seed 0), SmolLM2 + LoRA r 8 on
q/k/v/o, max length 256. Each ``max_tokens`` value (padded tokens per batch) runs in its
own process, so its peak resident memory is its own; the values are interleaved over
``--runs`` rounds and the medians reported. Features of every value are compared with
those of the first (per-example cosine, over the examples with a gradient: one whose
response is cut off by the max length has none).

    python benchmarks/bench_grad_batches.py                       # 1024 2048 4096, 3 runs
    python benchmarks/bench_grad_batches.py --n 16 --runs 1       # smoke run
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "mixed_pool.jsonl"


def one(max_tokens: int, n: int, proj_dim: int, dtype: str, out: Path) -> None:
    """Child process: time the features of ``n`` examples at ``max_tokens``."""
    from winnow.data import load_pool
    from winnow.signals.gradients import GradientFeatures

    pool = load_pool(DATA)
    rows = np.sort(np.random.default_rng(0).choice(len(pool), n, replace=False))
    pool = pool.subset(rows)
    signal = GradientFeatures(gradient_type="sgd", proj_dim=proj_dim, max_length=256,
                              lora_r=8, lora_alpha=32,
                              lora_targets=["q_proj", "k_proj", "v_proj", "o_proj"],
                              dtype=dtype, max_tokens=max_tokens)
    signal.compute(pool, 0, min(4, n))  # loads the model; not timed
    start = time.perf_counter()
    grad = signal.compute(pool, 0, n)["grad"]
    seconds = time.perf_counter() - start
    np.save(out.with_suffix(".npy"), grad.astype(np.float32))
    out.write_text(json.dumps({"seconds": seconds, "peak_rss_gib":
                               resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=64)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--max-tokens", type=int, nargs="+", default=[1024, 2048, 4096])
    ap.add_argument("--proj-dim", type=int, default=8192)
    ap.add_argument("--dtype", default=None, help="bf16 | fp32 (default: bf16 where native)")
    ap.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--child-out", type=Path, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--out", type=Path,
                    default=ROOT / "benchmarks" / "out" / "grad_batches.json")
    args = ap.parse_args()
    if args.dtype is None:
        from winnow.models.device import cpu_has_bf16
        args.dtype = "bf16" if cpu_has_bf16() else "fp32"
    if args.child is not None:
        one(args.child, args.n, args.proj_dim, args.dtype, args.child_out)
        return

    sys.path.insert(0, str(Path(__file__).parent))
    from _machine import header, machine

    info = machine()
    results: dict[int, list[dict]] = {m: [] for m in args.max_tokens}
    with tempfile.TemporaryDirectory(prefix="grad-batches-") as tmp:
        features = {}
        for run in range(args.runs):
            for m in args.max_tokens:
                out = Path(tmp) / f"{m}-{run}.json"
                subprocess.run([sys.executable, __file__, "--child", str(m), "--child-out",
                                str(out), "--n", str(args.n), "--proj-dim", str(args.proj_dim),
                                "--dtype", args.dtype], check=True)
                results[m].append(json.loads(out.read_text()))
                features[m] = np.load(out.with_suffix(".npy"))
                print(f"run {run + 1}/{args.runs} max_tokens {m}: "
                      f"{results[m][-1]['seconds']:.1f} s", file=sys.stderr)
    first = features[args.max_tokens[0]]
    rows = []
    for m in args.max_tokens:
        f = features[m]
        norms = np.linalg.norm(f, axis=1) * np.linalg.norm(first, axis=1)
        live = norms > 0  # an example whose response was cut off entirely has no gradient
        cos = (f * first).sum(1)[live] / norms[live]
        sec = statistics.median(r["seconds"] for r in results[m])
        rows.append({"max_tokens": m, "seconds": sec, "features_per_s": args.n / sec,
                     "peak_rss_gib": statistics.median(r["peak_rss_gib"] for r in results[m]),
                     "runs_s": [r["seconds"] for r in results[m]],
                     "cosine_min": float(cos.min()), "zero_gradients": int((~live).sum())})
    command = "python benchmarks/bench_grad_batches.py " + " ".join(sys.argv[1:])
    print(f"\n{header(info)}\n")
    print(f"Gradient features ({args.dtype}, SGD, LoRA r 8 q/k/v/o, projected to "
          f"{args.proj_dim}) of {args.n} mixed-pool examples, max length 256; one process per "
          f"value, median of {args.runs} interleaved runs\n")
    print(f"| max_tokens | s | features/s | peak RSS GiB | min cosine vs {args.max_tokens[0]} "
          "| zero gradients |")
    print("|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['max_tokens']} | {r['seconds']:.1f} | {r['features_per_s']:.2f} | "
              f"{r['peak_rss_gib']:.2f} | {r['cosine_min']:.5f} | {r['zero_gradients']} |")
    print(f"\ncommand: {command}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"command": command, "machine": info, "n": args.n,
                                    "dtype": args.dtype, "rows": rows}, indent=2))
    print(f"json: {args.out}")


if __name__ == "__main__":
    main()

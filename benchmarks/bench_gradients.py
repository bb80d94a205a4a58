"""Gradient features per second on the SmolLM2-135M LoRA: winnow vs the LESS way.

``less-style``: what the official LESS code does (``collect_grad_reps.py``): one example at a
time, ``loss.backward()``, the full flattened LoRA gradient, Adam-preconditioned, then a
dense Rademacher projection generated block by block from its seed on every call (TRAK's
``BasicProjector`` regenerates its matrix blocks per call; here ``Projector(kind=
"rademacher", cache_bytes=0)``).
``winnow``: length-bucketed batches, per-example gradients from one backward pass
(``hooks``), Adam-preconditioned and projected block by block with the sparse sketch.
``winnow-loop``: winnow's pipeline with the per-example loop (isolates the projection).

All variants run side by side in one process on the same examples and adapter (Adam moments
from one real optimizer step), interleaved, median of ``--runs``. Prints a markdown table and
the command; writes ``benchmarks/out/gradients.json``.

    python benchmarks/bench_gradients.py                  # LoRA r 8, 16 examples, 3 runs
    python benchmarks/bench_gradients.py --lora-r 128     # LESS's rank: the dense projection
                                                          # alone takes minutes per example
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

from winnow.data import load_pool
from winnow.gradients.encode import encode_conversations
from winnow.gradients.features import project_examples
from winnow.gradients.lora import grad_dim
from winnow.gradients.per_example import example_losses
from winnow.gradients.projection import Projector
from winnow.gradients.signal import load_lora_model

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "mixed_pool.jsonl"


def moments_after_one_step(lm, items):
    """Real Adam moments: one AdamW step on a few examples."""
    from winnow.gradients.encode import collate

    params = [p for p in lm.model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-4)
    example_losses(lm.model, collate(items[:4], lm.pad_id, "cpu")).mean().backward()
    opt.step()
    return (torch.cat([opt.state[p]["exp_avg"].reshape(-1) for p in params]),
            torch.cat([opt.state[p]["exp_avg_sq"].reshape(-1) for p in params]))


def less_style(lm, items, proj_dim, moments):
    m, v = moments
    proj = Projector(grad_dim(lm.model), proj_dim, seed=0, kind="rademacher", cache_bytes=0)
    from winnow.gradients.encode import collate

    out = []
    for e in items:
        lm.model.zero_grad()
        example_losses(lm.model, collate([e], lm.pad_id, "cpu"))[0].backward()
        g = torch.cat([p.grad.reshape(-1) for p in lm.model.parameters() if p.grad is not None])
        g = (0.9 * m + 0.1 * g) / torch.sqrt(0.999 * v + 0.001 * g * g + 1e-8)
        out.append(proj.project(g[None])[0])
    lm.model.zero_grad()
    return torch.stack(out)


def winnow_features(lm, items, proj_dim, moments, method):
    proj = Projector(grad_dim(lm.model), proj_dim, seed=0, kind="sparse")
    return project_examples(lm.model, items, proj, pad_id=lm.pad_id, moments=moments,
                            method=method, max_batch=16, max_tokens=4096)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=16, help="examples")
    ap.add_argument("--lora-r", type=int, default=8)
    ap.add_argument("--proj-dim", type=int, default=8192)
    ap.add_argument("--max-length", type=int, default=256)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    pool = load_pool(DATA)
    lm = load_lora_model("default", lora_r=args.lora_r, lora_alpha=4 * args.lora_r,
                         device="cpu")
    idx = torch.randperm(len(pool), generator=torch.Generator().manual_seed(0))[:args.n]
    items = encode_conversations(lm.tokenizer, [pool.conversations[int(i)] for i in idx],
                                 args.max_length)
    moments = moments_after_one_step(lm, items)
    variants = {
        "less-style (loop + dense Rademacher)": lambda: less_style(lm, items, args.proj_dim,
                                                                   moments),
        "winnow-loop (loop + sparse)": lambda: winnow_features(lm, items, args.proj_dim,
                                                               moments, "loop"),
        "winnow (hooks + sparse)": lambda: winnow_features(lm, items, args.proj_dim,
                                                           moments, "hooks"),
    }
    times: dict[str, list[float]] = {k: [] for k in variants}
    for _ in range(args.runs):
        for name, fn in variants.items():
            t = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t)
    base = statistics.median(times["less-style (loop + dense Rademacher)"])
    rows = []
    for name, ts in times.items():
        med = statistics.median(ts)
        rows.append({"variant": name, "median_s": med, "features_per_s": args.n / med,
                     "speedup_vs_less_style": base / med, "runs": ts})
    tokens = sum(len(e.input_ids) for e in items)
    result = {"args": vars(args), "grad_dim": grad_dim(lm.model), "tokens": tokens,
              "torch_threads": torch.get_num_threads(), "machine": platform.platform(),
              "python": sys.version.split()[0], "torch": torch.__version__, "rows": rows}
    out = ROOT / "benchmarks" / "out" / "gradients.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(f"SmolLM2-135M LoRA r={args.lora_r} ({result['grad_dim']:,} parameters), "
          f"{args.n} examples ({tokens} tokens), proj_dim {args.proj_dim}, "
          f"{torch.get_num_threads()} threads\n")
    print("| variant | median s | features/s | speedup vs less-style |")
    print("|---|---:|---:|---:|")
    for r in rows:
        print(f"| {r['variant']} | {r['median_s']:.2f} | {r['features_per_s']:.2f} | "
              f"{r['speedup_vs_less_style']:.1f}x |")
    print(f"\ncommand: python benchmarks/bench_gradients.py {' '.join(sys.argv[1:])}")
    print(f"json: {out}")


if __name__ == "__main__":
    main()

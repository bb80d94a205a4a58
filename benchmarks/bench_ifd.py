"""IFD scoring throughput: winnow's batched scorer vs a plain per-example loop.

The loop scores one example at a time the way the official Cherry LLM script does
(``cherry_seletion/data_analysis.py``): fp32, two forward passes per example (the prompted
text and "### Response:" + response), ``model(input_ids, labels=labels).loss``. winnow
scores the same examples with ``score_conversations`` (length-bucketed batches under a
token budget, LM head only at response positions), in bf16 where the CPU supports it and
in fp32. All variants run side by side in one process, interleaved, median of ``--runs``.

Also measured: this machine's dense matmul throughput (fp32 and bf16, square ``torch.matmul``)
and the fraction of it each variant reaches, counting 2 x parameters FLOPs per token.

    python benchmarks/bench_ifd.py                 # 200 Alpaca examples, 3 runs
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

from winnow.data import load_pool
from winnow.models.causal_lm import load_causal_lm
from winnow.models.device import cpu_has_bf16
from winnow.signals.lm_scores import score_conversations

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "alpaca_en_demo.json"

CHERRY_INPUT = ("Below is an instruction that describes a task, paired with an input that "
                "provides further context. Write a response that appropriately completes the "
                "request.\n\n### Instruction:\n{instruction}\n\n### Input:\n{input}\n\n"
                "### Response:")
CHERRY_NO_INPUT = ("Below is an instruction that describes a task. Write a response that "
                   "appropriately completes the request.\n\n### Instruction:\n{instruction}\n\n"
                   "### Response:")


def per_example_loop(lm, records: list[dict], max_length: int) -> tuple[list[float], int]:
    """Cherry-style IFD, one example at a time; returns (ifd per example, tokens fed)."""
    tok, model = lm.tokenizer, lm.model
    out, tokens = [], 0

    def part(text: str, span: str, limit: int) -> float:
        nonlocal tokens
        ids = tok.encode(text, return_tensors="pt", truncation=True, max_length=limit)
        start = len(tok.encode(text[:text.rfind(span)]))
        labels = ids.clone()
        labels[0, :start] = -100
        tokens += ids.shape[1]
        with torch.no_grad():
            return model(ids.to(lm.device), labels=labels.to(lm.device)).loss.item()

    for rec in records:
        prompt = (CHERRY_INPUT if rec["input"] else CHERRY_NO_INPUT).format_map(rec)
        prompt_len = len(tok.encode(prompt, truncation=True, max_length=max_length))
        alone = part("### Response:" + rec["output"], rec["output"],
                     max_length - prompt_len + 4)
        cond = part(prompt + rec["output"], rec["output"], max_length)
        out.append(cond / alone)
    return out, tokens


def matmul_gflops(dtype: torch.dtype, n: int = 2048, repeats: int = 5) -> float:
    """Median GFLOP/s of an n x n x n matmul in ``dtype``."""
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    a @ b
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        a @ b
        times.append(time.perf_counter() - t)
    return 2 * n ** 3 / statistics.median(times) / 1e9


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=200, help="examples (first n of alpaca_en_demo)")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--max-length", type=int, default=512)
    ap.add_argument("--token-budget", type=int, default=None)
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "out" / "bench_ifd.json")
    args = ap.parse_args()

    pool = load_pool(args.data).subset(range(args.n))
    records = pool.records
    lm32 = load_causal_lm("default", dtype="fp32")
    variants = {"loop fp32 (per example)": None, "winnow fp32": lm32}
    if cpu_has_bf16() or lm32.device.type == "cuda":
        variants["winnow bf16"] = load_causal_lm("default", dtype="bf16")
    params = sum(p.numel() for p in lm32.model.parameters())

    times: dict[str, list[float]] = {k: [] for k in variants}
    tokens: dict[str, int] = {}
    results: dict[str, list[float]] = {}
    for run in range(args.runs):
        for name, lm in variants.items():
            t = time.perf_counter()
            if lm is None:
                ifd, tokens[name] = per_example_loop(lm32, records, args.max_length)
            else:
                cols = score_conversations(lm, pool.conversations, template="alpaca",
                                           max_length=args.max_length, ifd="cherry",
                                           token_budget=args.token_budget)
                ifd = cols["ifd"].tolist()
            times[name].append(time.perf_counter() - t)
            results[name] = ifd
            print(f"run {run + 1}/{args.runs} {name}: {times[name][-1]:.1f} s", file=sys.stderr)
    # every variant feeds the model the same token sequences
    for name in variants:
        tokens[name] = tokens["loop fp32 (per example)"]

    peak = {"fp32": matmul_gflops(torch.float32)}
    if "winnow bf16" in variants:
        peak["bf16"] = matmul_gflops(torch.bfloat16)
    base = statistics.median(times["loop fp32 (per example)"])
    rows = []
    for name in variants:
        sec = statistics.median(times[name])
        gflops = 2 * params * tokens[name] / sec / 1e9
        dt = "bf16" if "bf16" in name else "fp32"
        rows.append({"variant": name, "seconds": sec, "runs": times[name],
                     "examples_per_s": args.n / sec, "tokens_per_s": tokens[name] / sec,
                     "speedup": base / sec, "gflops": gflops, "dtype": dt,
                     "fraction_of_matmul": gflops / peak[dt]})

    command = "python benchmarks/bench_ifd.py " + " ".join(sys.argv[1:])
    print(f"\nIFD scoring, SmolLM2-135M-Instruct, {args.n} Alpaca examples, max_length "
          f"{args.max_length}, median of {args.runs} runs, {os.cpu_count()} CPUs "
          f"({platform.processor() or platform.machine()}), torch threads "
          f"{torch.get_num_threads()}\n")
    print("| variant | s | examples/s | tokens/s | speedup | GFLOP/s | of matmul peak |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['variant']} | {r['seconds']:.1f} | {r['examples_per_s']:.2f} | "
              f"{r['tokens_per_s']:.0f} | {r['speedup']:.2f}x | {r['gflops']:.1f} | "
              f"{r['fraction_of_matmul']:.0%} of {r['dtype']} |")
    print("\nmatmul 2048^3: " + ", ".join(f"{k} {v:.1f} GFLOP/s" for k, v in peak.items()))
    print(f"FLOPs counted as 2 x {params / 1e6:.1f}M params x tokens fed "
          f"({tokens['winnow fp32']} tokens)")
    print(f"\ncommand: {command}")

    args.out.parent.mkdir(parents=True, exist_ok=True)
    report = {"command": command, "n": args.n, "max_length": args.max_length,
              "runs": args.runs, "params": params, "tokens": tokens["winnow fp32"],
              "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
              "device": str(lm32.device), "matmul_gflops": peak, "rows": rows,
              "load_average": os.getloadavg()}
    args.out.write_text(json.dumps(report, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

"""Throughput of the in-context signals: nuggets per anchor count, prompt-uncertainty and
data-whisperer.

nuggets: ``--n`` Alpaca candidates scored against k-means anchors of the first
``max(n, anchors)`` examples (anchors chosen once, in fp32, and shared by every variant;
their choice is not timed). Each variant computes the anchors' zero-shot sums and every
candidate-anchor one-shot sum:

- "full sequence": every candidate + anchor concatenation scored by the batched scorer
  (``score_sequences``), the candidate's tokens run once per anchor;
- "prefix cache": ``score_after_prefixes``, the candidate's tokens run once and its KV
  cache serves every anchor (what the signal does), in fp32 and, where the CPU has bf16
  instructions, in bf16.

prompt-uncertainty: ``--pu-n`` Alpaca examples, k = 10 perturbed prompts each:

- "per-prompt loop": one forward pass per prompt (``model(ids, labels=labels).loss``);
- "batched": the signal's one length-bucketed pass over all prompts, fp32 and bf16.

data-whisperer: ``--dw-n`` Alpaca examples (two folds, rounds of 5 demonstrations and 3
queries, answers up to ``--dw-tokens`` tokens):

- "one round per call": each round's greedy answer and attention pass on its own (the
  official run.sh's ``PARALLEL=1``);
- "batched": ``batch_size`` 4 rounds per generation and attention batch (the signal's
  default), in fp32 and bf16.

Variants run interleaved in one process (A, B, C, A, B, C, ...) after one untimed round;
times are medians of ``--runs``. Agreement is printed against the fp32 reference of each
table: for nuggets the share of candidate-anchor comparisons (one-shot > zero-shot) that
flip and the largest change of a golden score; for prompt-uncertainty the largest relative
difference and Spearman's rank correlation of the uncertainty.

    python benchmarks/bench_incontext.py                                   # 32 / 100 anchors
    python benchmarks/bench_incontext.py --n 3 --anchors 2 --pu-n 2 --dw-n 10 --runs 3  # smoke
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
from _machine import header, machine
from scipy.stats import spearmanr

from winnow.data import load_pool
from winnow.models.causal_lm import load_causal_lm
from winnow.models.device import cpu_has_bf16
from winnow.models.token_scores import Sequence, score_after_prefixes, score_sequences
from winnow.signals.data_whisperer import DataWhisperer
from winnow.signals.embeddings import nuggets_parts
from winnow.signals.nuggets import Nuggets
from winnow.signals.prompt_uncertainty import PromptUncertainty, perturbations

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "alpaca_en_demo.json"


def sums(scores) -> np.ndarray:
    return np.array([s.nll.sum(dtype=np.float64) for s in scores])


def nuggets_full(lm, demos, seqs) -> tuple[np.ndarray, np.ndarray]:
    """(one-shot, zero-shot) summed NLL, every pair scored as one concatenated sequence."""
    pairs = [Sequence(np.concatenate([d, s.input_ids]),
                      np.concatenate([np.zeros(len(d), bool), s.targets]))
             for d in demos for s in seqs]
    return (sums(score_sequences(lm, pairs)).reshape(len(demos), len(seqs)),
            sums(score_sequences(lm, seqs)))


def nuggets_cache(lm, demos, seqs) -> tuple[np.ndarray, np.ndarray]:
    """(one-shot, zero-shot) summed NLL, each candidate's KV cache reused over the anchors."""
    return score_after_prefixes(lm, demos, seqs), sums(score_sequences(lm, seqs))


def pu_loop(lm, pool, k: int) -> np.ndarray:
    """prompt_uncertainty, one forward pass per prompt (alpaca template, gold response)."""
    from winnow.data.templates import encode, get_template

    tpl, out = get_template("alpaca"), []
    for conv in pool.conversations:
        probs = []
        for v in [conv, *perturbations(conv, k, 0.2, 0)]:
            e = encode(tpl.render(v, lm.tokenizer), lm.tokenizer, 512)
            ids = torch.from_numpy(e.input_ids)[None]
            labels = torch.where(torch.from_numpy(e.response_mask)[None], ids, -100)
            with torch.no_grad():
                probs.append(float(torch.exp(-lm.model(ids, labels=labels).loss)))
        out.append(np.abs(np.array(probs[1:]) - probs[0]).mean())
    return np.array(out)


def data_whisperer(pool, lms, tokens: int, runs: int) -> list[dict]:
    """Seconds per variant (a fresh signal each call, so no round is reused) and agreement
    of the scores with the batched fp32 ones (greedy answers can differ where batching
    changes the rounding)."""
    def run(dt: str, batch: int):
        signal = DataWhisperer(dtype=dt, max_new_tokens=tokens, batch_size=batch,
                               progress=False)
        return signal.compute(pool, 0, len(pool))["data_whisperer"]

    variants = {("one round per call", "fp32"): lambda: run("fp32", 1)}
    for dt in lms:
        variants["batched", dt] = lambda dt=dt: run(dt, 4)
    secs, outs = timed(variants, runs)
    ref, base, n = outs["batched", "fp32"], secs["one round per call", "fp32"], len(pool)
    print(f"\n**data-whisperer**: {n} examples, answers up to {tokens} tokens, median of "
          f"{runs}\n")
    print("| variant | dtype | s | examples/s | speed-up | max abs. diff vs batched fp32 | "
          "Spearman vs batched fp32 |\n|---|---|---:|---:|---:|---:|---:|")
    rows = []
    for (name, dt), s in secs.items():
        got = outs[name, dt]
        diff = float(np.abs(got - ref).max())
        rho = float(spearmanr(got, ref).statistic) if np.ptp(ref) > 0 else float("nan")
        rows.append({"variant": name, "dtype": dt, "seconds": s, "examples_per_s": n / s,
                     "speedup": base / s, "max_abs_diff": diff, "spearman": rho})
        print(f"| {name} | {dt} | {s:.1f} | {n / s:.2f} | {base / s:.2f}x | {diff:.3g} | "
              f"{rho:.4f} |")
    return rows


def timed(variants: dict, runs: int) -> tuple[dict, dict]:
    """Median seconds and the last output of each variant, run interleaved after one
    untimed round."""
    times: dict[str, list[float]] = {name: [] for name in variants}
    outputs = {}
    for r in range(runs + 1):
        for name, fn in variants.items():
            start = time.perf_counter()
            outputs[name] = fn()
            if r:
                times[name].append(time.perf_counter() - start)
    return {n: statistics.median(t) for n, t in times.items()}, outputs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=32, help="nuggets candidates")
    ap.add_argument("--anchors", default="32,100", help="anchor counts, comma-separated")
    ap.add_argument("--pu-n", type=int, default=32, help="prompt-uncertainty examples")
    ap.add_argument("--k", type=int, default=10, help="perturbed prompts per example")
    ap.add_argument("--dw-n", type=int, default=40, help="data-whisperer examples")
    ap.add_argument("--dw-tokens", type=int, default=256, help="data-whisperer answer cap")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--out", type=Path,
                    default=ROOT / "benchmarks" / "out" / "bench_incontext.json")
    args = ap.parse_args()
    command = "python benchmarks/bench_incontext.py " + " ".join(sys.argv[1:])
    info = machine()
    print(header(info) + "\n")
    bf16 = cpu_has_bf16()
    lms = {"fp32": load_causal_lm("default", dtype="fp32")}
    if bf16:
        lms["bf16"] = load_causal_lm("default", dtype="bf16")
    counts = [int(a) for a in args.anchors.split(",")]
    full_pool = load_pool(DATA)
    pool = full_pool.subset(range(max(args.n, *counts)))
    tok = lms["fp32"].tokenizer
    demos = [np.asarray(tok(nuggets_parts(c)[1])["input_ids"])
             for c in pool.conversations[:args.n]]
    report = {"command": command, "machine": info, "n": args.n, "runs": args.runs,
              "nuggets": [], "prompt_uncertainty": {}}

    print(f"**nuggets**: {args.n} candidates, median of {args.runs}\n")
    print("| anchors | variant | dtype | s | examples/s | speed-up | flipped comparisons | "
          "max golden-score change |\n|---:|---|---|---:|---:|---:|---:|---:|")
    for a in counts:
        signal = Nuggets(n_anchors=a, dtype="fp32", progress=False)
        _, seqs, _ = signal.anchors(pool)
        variants = {("full sequence", "fp32"):
                    lambda seqs=seqs: nuggets_full(lms["fp32"], demos, seqs)}
        for dt, lm in lms.items():
            variants["prefix cache", dt] = (lambda lm=lm, seqs=seqs:
                                            nuggets_cache(lm, demos, seqs))
        secs, outs = timed(variants, args.runs)
        ref_one, ref_zero = outs["prefix cache", "fp32"]
        ref_win = ref_one < ref_zero[None]
        base = secs["full sequence", "fp32"]
        for (name, dt), s in secs.items():
            one, zero = outs[name, dt]
            win = one < zero[None]
            row = {"anchors": a, "variant": name, "dtype": dt, "seconds": s,
                   "examples_per_s": args.n / s, "speedup": base / s,
                   "flipped": float((win != ref_win).mean()),
                   "max_golden_change": float(np.abs(win.mean(1) - ref_win.mean(1)).max())}
            report["nuggets"].append(row)
            print(f"| {a} | {name} | {dt} | {s:.1f} | {row['examples_per_s']:.2f} | "
                  f"{row['speedup']:.2f}x | {row['flipped']:.2%} | "
                  f"{row['max_golden_change']:.3f} |")

    pu_pool = full_pool.subset(range(args.pu_n))
    signals = {dt: PromptUncertainty(k=args.k, dtype=dt, progress=False) for dt in lms}
    variants = {("per-prompt loop", "fp32"): lambda: pu_loop(lms["fp32"], pu_pool, args.k)}
    for dt, sig in signals.items():
        variants["batched", dt] = (lambda sig=sig: sig.compute(pu_pool, 0, args.pu_n)
                                   ["prompt_uncertainty"])
    secs, outs = timed(variants, args.runs)
    ref = outs["batched", "fp32"]
    base = secs["per-prompt loop", "fp32"]
    print(f"\n**prompt-uncertainty**: {args.pu_n} examples, k = {args.k}, median of "
          f"{args.runs}\n")
    print("| variant | dtype | s | examples/s | speed-up | max rel. diff vs batched fp32 | "
          "Spearman vs batched fp32 |\n|---|---|---:|---:|---:|---:|---:|")
    rows = []
    for (name, dt), s in secs.items():
        got = outs[name, dt]
        rel = float(np.nanmax(np.abs(got - ref) / np.abs(ref)))
        rho = float(spearmanr(got, ref).statistic) if len(ref) > 2 else float("nan")
        rows.append({"variant": name, "dtype": dt, "seconds": s,
                     "examples_per_s": args.pu_n / s, "speedup": base / s,
                     "max_rel_diff": rel, "spearman": rho})
        print(f"| {name} | {dt} | {s:.1f} | {args.pu_n / s:.2f} | {base / s:.2f}x | "
              f"{rel:.2e} | {rho:.4f} |")
    report["prompt_uncertainty"] = {"n": args.pu_n, "k": args.k, "rows": rows}
    report["data_whisperer"] = data_whisperer(full_pool.subset(range(args.dw_n)), lms,
                                              args.dw_tokens, args.runs)
    print(f"\ncommand: {command}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2, default=str))
    print(f"json: {args.out}")


if __name__ == "__main__":
    main()

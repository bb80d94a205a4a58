"""IFD scoring throughput: winnow's batched scorer vs a plain per-example loop.

The loop scores one example at a time the way the official Cherry LLM script does
(``cherry_seletion/data_analysis.py``): fp32, two forward passes per example (the prompted
text and "### Response:" + response), ``model(input_ids, labels=labels).loss`` (the Hugging
Face loss: logits at every position). winnow scores the same examples with
``score_conversations`` (length-bucketed, right-padded batches under a token budget, LM head
only at response positions; it also computes entropy and margins), in fp32 and, where the
CPU has bf16 instructions, in bf16. The variants run interleaved in one process (loop,
fp32, bf16, loop, ...), no warm-up round, median of ``--runs`` (3 by default).

FLOPs are counted on useful tokens: forward hooks on the transformer body count the tokens
fed (padding included) and on the LM head the positions given logits. The real tokens are
those the per-example loop feeds, which has no padding (the same texts: the outputs agree);
FLOPs = 2 × (linear-layer parameters × real tokens + LM-head parameters × positions given
logits), attention scores not counted. Divided by the time and by this machine's measured
matmul peak in the variant's dtype (``_machine.py``).

The outputs are compared pairwise in the script: max relative difference of the
conditioned loss, the response-alone loss and IFD per pair, and Spearman's rank correlation
of IFD and loss.

    python benchmarks/bench_ifd.py                 # 200 Alpaca examples, 3 runs
    python benchmarks/bench_ifd.py --n 8 --runs 1  # smoke run
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from itertools import combinations
from pathlib import Path

import numpy as np
import torch
from _machine import header, machine
from scipy.stats import spearmanr

from winnow.data import load_pool
from winnow.models.causal_lm import load_causal_lm
from winnow.models.device import cpu_has_bf16
from winnow.signals.lm_scores import score_conversations

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "alpaca_en_demo.json"
LOOP = "loop fp32 (per example)"

CHERRY_INPUT = ("Below is an instruction that describes a task, paired with an input that "
                "provides further context. Write a response that appropriately completes the "
                "request.\n\n### Instruction:\n{instruction}\n\n### Input:\n{input}\n\n"
                "### Response:")
CHERRY_NO_INPUT = ("Below is an instruction that describes a task. Write a response that "
                   "appropriately completes the request.\n\n### Instruction:\n{instruction}\n\n"
                   "### Response:")


def per_example_loop(lm, records: list[dict], max_length: int) -> dict[str, np.ndarray]:
    """Cherry-style loss, loss alone and IFD, one example and one text at a time."""
    tok, model = lm.tokenizer, lm.model

    def part(text: str, span: str, limit: int) -> float:
        ids = tok.encode(text, return_tensors="pt", truncation=True, max_length=limit)
        start = len(tok.encode(text[:text.rfind(span)]))
        labels = ids.clone()
        labels[0, :start] = -100
        with torch.no_grad():
            return model(ids.to(lm.device), labels=labels.to(lm.device)).loss.item()

    loss, alone = [], []
    for rec in records:
        prompt = (CHERRY_INPUT if rec["input"] else CHERRY_NO_INPUT).format_map(rec)
        prompt_len = len(tok.encode(prompt, truncation=True, max_length=max_length))
        alone.append(part("### Response:" + rec["output"], rec["output"],
                          max_length - prompt_len + 4))
        loss.append(part(prompt + rec["output"], rec["output"], max_length))
    loss, alone = np.array(loss), np.array(alone)
    return {"loss": loss, "loss_alone": alone, "ifd": loss / alone}


class TokenCounter:
    """Tokens fed to the transformer body (padding included) and positions given logits, by
    forward hooks."""

    def __init__(self, model):
        self.fed = self.head = 0
        model.get_decoder().register_forward_pre_hook(self._fed, with_kwargs=True)
        model.get_output_embeddings().register_forward_hook(self._head)

    def _fed(self, module, args, kwargs):
        self.fed += kwargs.get("input_ids", args[0] if args else None).numel()

    def _head(self, module, inputs, output):
        self.head += inputs[0].shape[:-1].numel()


def linear_params(model) -> tuple[int, int]:
    """(parameters of the Linear layers other than the LM head, LM-head parameters)."""
    head = model.get_output_embeddings()
    body = sum(m.weight.numel() for m in model.modules()
               if isinstance(m, torch.nn.Linear) and m is not head)
    return body, head.weight.numel()


def compare(a: dict, b: dict) -> dict:
    """Max relative difference (relative to ``a``) of each output and Spearman of IFD, loss."""
    out = {}
    for key in ("loss", "loss_alone", "ifd"):
        x, y = np.asarray(a[key], np.float64), np.asarray(b[key], np.float64)
        ok = np.isfinite(x) & np.isfinite(y)
        out[f"{key}_max_rel_diff"] = float(np.max(np.abs(x[ok] - y[ok]) / np.abs(x[ok])))
        if key != "loss_alone":
            out[f"{key}_spearman"] = float(spearmanr(x[ok], y[ok]).statistic)
    return out


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
    lm32 = load_causal_lm("default", dtype="fp32")
    info = machine(device=lm32.device.type)
    variants = {LOOP: lm32, "winnow fp32": lm32}
    if cpu_has_bf16() or lm32.device.type == "cuda":
        variants["winnow bf16"] = load_causal_lm("default", dtype="bf16")
    counters = {id(lm.model): TokenCounter(lm.model) for lm in variants.values()}
    body, head = linear_params(lm32.model)

    times: dict[str, list[float]] = {k: [] for k in variants}
    tokens: dict[str, dict] = {}
    outputs: dict[str, dict] = {}
    for run in range(args.runs):
        for name, lm in variants.items():
            count = counters[id(lm.model)]
            count.fed = count.head = 0
            t = time.perf_counter()
            if name == LOOP:
                outputs[name] = per_example_loop(lm, pool.records, args.max_length)
            else:
                cols = score_conversations(lm, pool.conversations, template="alpaca",
                                           max_length=args.max_length, ifd="cherry",
                                           token_budget=args.token_budget)
                outputs[name] = {k: cols[k] for k in ("loss", "loss_alone", "ifd")}
            times[name].append(time.perf_counter() - t)
            tokens[name] = {"fed": count.fed, "given_logits": count.head}
            print(f"run {run + 1}/{args.runs} {name}: {times[name][-1]:.1f} s", file=sys.stderr)

    peak = info["peak_gflops"]
    base = statistics.median(times[LOOP])
    rows = []
    real = tokens[LOOP]["fed"]
    for name in variants:
        sec = statistics.median(times[name])
        dt = "bf16" if "bf16" in name else "fp32"
        flops = 2 * (body * real + head * tokens[name]["given_logits"])
        rows.append({"variant": name, "dtype": dt, "seconds": sec, "runs_s": times[name],
                     "examples_per_s": args.n / sec, "tokens": tokens[name],
                     "speedup": base / sec, "flops": flops, "gflops": flops / sec / 1e9,
                     "fraction_of_peak": flops / sec / 1e9 / peak[dt]})
    agreement = {f"{a} vs {b}": compare(outputs[a], outputs[b])
                 for a, b in combinations(variants, 2)}

    command = "python benchmarks/bench_ifd.py " + " ".join(sys.argv[1:])
    print(f"\n{header(info)}\n")
    print(f"IFD scoring on {info.get('gpu', info['cpu'])}, SmolLM2-135M-Instruct, "
          f"{args.n} Alpaca examples, max_length {args.max_length}, median of {args.runs} "
          "interleaved runs\n")
    print("| variant | dtype | s | examples/s | speed-up | tokens fed (with padding) | "
          "positions given logits | GFLOP/s | of matmul peak |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---|")
    for r in rows:
        print(f"| {r['variant']} | {r['dtype']} | {r['seconds']:.1f} | "
              f"{r['examples_per_s']:.2f} | {r['speedup']:.2f}x | {r['tokens']['fed']} | "
              f"{r['tokens']['given_logits']} | {r['gflops']:.1f} | "
              f"{r['fraction_of_peak']:.0%} of {r['dtype']} |")
    print(f"\nFLOPs = 2 x ({body / 1e6:.1f}M linear params x {real} real tokens + "
          f"{head / 1e6:.1f}M LM-head params x positions given logits), counted by hooks on "
          "the model; real tokens: those the per-example loop feeds\n")
    print("| pair | loss max rel. diff | loss alone max rel. diff | IFD max rel. diff | "
          "IFD Spearman | loss Spearman |\n|---|---:|---:|---:|---:|---:|")
    for pair, c in agreement.items():
        print(f"| {pair} | {c['loss_max_rel_diff']:.2e} | {c['loss_alone_max_rel_diff']:.2e} "
              f"| {c['ifd_max_rel_diff']:.2e} | {c['ifd_spearman']:.5f} | "
              f"{c['loss_spearman']:.5f} |")
    print(f"\ncommand: {command}")

    args.out.parent.mkdir(parents=True, exist_ok=True)
    report = {"command": command, "machine": info, "n": args.n,
              "max_length": args.max_length, "runs": args.runs, "linear_params": body,
              "head_params": head, "device": str(lm32.device), "rows": rows,
              "agreement": agreement}
    args.out.write_text(json.dumps(report, indent=2))
    print(f"json: {args.out}")


if __name__ == "__main__":
    main()

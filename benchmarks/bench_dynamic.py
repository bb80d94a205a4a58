"""Dynamic selection: the cost of re-scoring the pool inside LoRA training.

Part 1 (always): one re-scoring pass (every example's mean response loss under the live
LoRA model in eval mode) over the first ``--n`` Alpaca records, four ways, interleaved in
one process, median of ``--runs`` (speed-ups are against batches of 8 in pool order):

- ``index order, batch 1, fp32``: one example at a time in pool order, as DataFlex's
  ``loss`` selector does;
- ``index order, batch 8, fp32``: batches of 8 in pool order, the model in fp32 (how the
  pool was re-scored before, and how a DataLoader over the training set does it);
- ``length-sorted fp32``: :func:`winnow.train.scoring.example_losses`, fp32 (right-padded
  batches without an attention mask);
- ``length-sorted bf16``: the same through a bf16 copy of the model with its LoRA merged
  (what dynamic selectors use where the hardware runs bf16 natively; left out elsewhere).

All four compute the same losses (``label_nll``: LM head only at response positions).
FLOPs = 2 x (linear parameters, LoRA included, x tokens fed, padding included + LM-head
parameters x response positions); divided by the time and this machine's measured matmul
peak in the variant's dtype.

Part 2 (``--yaml FILE``): the whole DataFlex-style run of ``winnow train FILE``, timed, with
the seconds of every selection (warmup draws and loss updates) from the run's records.

    python benchmarks/bench_dynamic.py --n 200 --runs 3
    python benchmarks/bench_dynamic.py --n 200 --runs 3 --yaml examples/train/dynamic_loss.yaml
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import yaml
from _machine import header, machine
from scipy.stats import spearmanr

from winnow.data import load_pool
from winnow.data.tokenize import IGNORE_INDEX, Collator, tokenize_pool
from winnow.models.device import cpu_has_bf16
from winnow.models.token_scores import default_token_budget, label_nll
from winnow.train import TrainConfig, train
from winnow.train.lora import build_lora_model
from winnow.train.scoring import example_losses

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "alpaca_en_demo.json"
BATCH = 8  # rows per batch, both ways
BASE = f"index order, batch {BATCH}, fp32"
ONE = "index order, batch 1, fp32"  # DataFlex's loss selector: a DataLoader of batch 1


@torch.no_grad()
def index_order(model, items, collator, batch_size: int = 8) -> tuple[np.ndarray, int]:
    """(losses, tokens fed): batches of ``batch_size`` in pool order, fp32."""
    out, fed = [], 0
    for a in range(0, len(items), batch_size):
        batch = collator(items[a:a + batch_size])
        fed += batch["input_ids"].numel()
        mean = label_nll(model, batch).double().numpy()
        mean[(batch["labels"][:, 1:] != IGNORE_INDEX).sum(1).numpy() == 0] = np.nan
        out.append(mean)
    return np.concatenate(out), fed


def sorted_fed(items, batch_size: int, budget: int) -> int:
    """Tokens fed (padding included) by example_losses' length-sorted batches."""
    from winnow.data.tokenize import batches

    lengths = [len(x["input_ids"]) for x in items]
    return sum(len(g) * max(lengths[i] for i in g) for g in batches(lengths, budget, batch_size))


def rescoring(args, info) -> dict:
    cfg = TrainConfig.from_yaml(args.yaml) if args.yaml else TrainConfig()
    model, tokenizer, _ = build_lora_model(cfg.model_name_or_path, lora_rank=cfg.lora_rank,
                                           lora_alpha=cfg.lora_alpha, lora_dropout=0.0,
                                           lora_target=cfg.lora_target)
    model.eval()
    pool = load_pool(args.data).subset(range(args.n))
    items = tokenize_pool(pool, tokenizer, "alpaca", cfg.cutoff_len)
    collator = Collator(tokenizer.pad_token_id)
    idx = np.arange(len(items))
    response = sum(sum(t != IGNORE_INDEX for t in x["labels"][1:]) for x in items)
    head = model.get_output_embeddings().weight.numel()
    body = sum(m.weight.numel() for m in model.modules()
               if isinstance(m, torch.nn.Linear) and m is not model.get_output_embeddings())
    variants = [ONE, BASE, "length-sorted fp32"] + (["length-sorted bf16"] if cpu_has_bf16()
                                                    else [])
    times = {v: [] for v in variants}
    outputs, fed = {}, {}
    for run in range(args.runs):
        for v in variants:
            t = time.perf_counter()
            if v in (ONE, BASE):
                outputs[v], fed[v] = index_order(model, items, collator, 1 if v == ONE else BATCH)
            else:
                outputs[v] = example_losses(model, items, collator, idx, "cpu", BATCH,
                                            dtype=v.split()[-1])
                fed[v] = sorted_fed(items, BATCH, default_token_budget(torch.device("cpu")))
            times[v].append(time.perf_counter() - t)
            print(f"run {run + 1}/{args.runs} {v}: {times[v][-1]:.1f} s", file=sys.stderr)
    base = statistics.median(times[BASE])
    rows = []
    for v in variants:
        sec = statistics.median(times[v])
        dt = v.split()[-1]
        flops = 2 * (body * fed[v] + head * response)
        ref = outputs["length-sorted fp32"]
        rows.append({"variant": v, "dtype": dt, "seconds": sec, "runs_s": times[v],
                     "examples_per_s": args.n / sec, "tokens_fed": fed[v],
                     "speedup": base / sec, "gflops": flops / sec / 1e9,
                     "fraction_of_peak": flops / sec / 1e9 / info["peak_gflops"][dt],
                     "max_abs_diff_vs_fp32": float(np.nanmax(np.abs(outputs[v] - ref))),
                     "spearman_vs_fp32": float(spearmanr(outputs[v], ref,
                                                         nan_policy="omit").statistic)})
    return {"n": args.n, "runs": args.runs, "real_tokens": int(sum(len(x["input_ids"])
                                                                   for x in items)),
            "response_tokens": int(response), "rows": rows}


def whole_run(path: Path) -> dict:
    """Run ``winnow train`` on ``path`` (output in a temporary folder); time every phase."""
    data = yaml.safe_load(path.read_text())
    with tempfile.TemporaryDirectory() as tmp:
        data.update(output_dir=tmp, overwrite_output_dir=True)
        t = time.perf_counter()
        result = train(TrainConfig.from_dict(data, str(path)))
        seconds = time.perf_counter() - t
    phases = [{"step": r["step"], "kind": r["kind"], "selector": r["selector"],
               "seconds": r["seconds"]} for r in result.selections]
    updates = [p["seconds"] for p in phases if p["kind"] == "update"]
    return {"config": str(path), "seconds": seconds, "steps": result.global_step,
            "phases": phases, "update_seconds_median": statistics.median(updates),
            "selection_seconds": sum(p["seconds"] for p in phases)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=200, help="examples (first n of alpaca_en_demo)")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--yaml", type=Path, default=None,
                    help="a dynamic training config to run whole (part 2)")
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--out", type=Path,
                    default=ROOT / "benchmarks" / "out" / "bench_dynamic.json")
    args = ap.parse_args()
    info = machine()
    report = {"command": "python benchmarks/bench_dynamic.py " + " ".join(sys.argv[1:]),
              "machine": info, "rescoring": rescoring(args, info)}
    if args.yaml:
        report["run"] = whole_run(args.yaml)

    r = report["rescoring"]
    print(f"\n{header(info)}\n")
    print(f"One re-scoring pass over {r['n']} Alpaca examples ({r['real_tokens']} tokens, "
          f"{r['response_tokens']} response tokens), LoRA model in eval mode, median of "
          f"{r['runs']} interleaved runs\n")
    print("| variant | s | examples/s | speed-up | tokens fed | GFLOP/s | of matmul peak | "
          "max abs. diff vs fp32 | Spearman vs fp32 |")
    print("|---|---:|---:|---:|---:|---:|---|---:|---:|")
    for row in r["rows"]:
        print(f"| {row['variant']} | {row['seconds']:.1f} | {row['examples_per_s']:.2f} | "
              f"{row['speedup']:.2f}x | {row['tokens_fed']} | {row['gflops']:.1f} | "
              f"{row['fraction_of_peak']:.0%} of {row['dtype']} | "
              f"{row['max_abs_diff_vs_fp32']:.3g} | {row['spearman_vs_fp32']:.4f} |")
    if "run" in report:
        run = report["run"]
        print(f"\n`winnow train {run['config']}`: {run['steps']} steps in {run['seconds']:.1f} s "
              f"({run['seconds'] / 60:.1f} min); selections {run['selection_seconds']:.1f} s; "
              f"median update {run['update_seconds_median']:.1f} s\n")
        print("| step | phase | selector | s |\n|---:|---|---|---:|")
        for p in run["phases"]:
            print(f"| {p['step']} | {p['kind']} | {p['selector']} | {p['seconds']:.1f} |")
    print(f"\ncommand: {report['command']}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    print(f"json: {args.out}")


if __name__ == "__main__":
    main()

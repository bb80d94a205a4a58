"""The cost of ``winnow fit`` at test scale: InstructMining's rule and InstructionGPT-4's
regressor on a small Alpaca pool.

The pool is the first ``--pool`` Alpaca records whose texts are under 400 characters (as the
test suite's), the target the ``--target`` records after the first 100 of them. Each run is
a fresh process with an empty signal cache, timed from the outside; the command's own
per-subset lines give the fine-tuning seconds, the rest is loading, indicator signals and
the fit. ``instructmining`` uses all its default indicators (lengths, perplexity, MTLD,
6th-neighbour distance, the four p(Yes) judge stand-ins read in process). The two commands
run interleaved, median of ``--runs``.

    python benchmarks/bench_fit.py                 # 24 records, 5 subsets, 1 step, 3 runs
    python benchmarks/bench_fit.py --pool 60 --subsets 8 --subset-size 12 --steps 5
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _machine import header, machine

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "alpaca_en_demo.json"
TINY_TRAIN = ["--set", "per_device_train_batch_size=2", "--set", "cutoff_len=64",
              "--set", "lora_rank=2", "--set", "lora_target=q_proj,v_proj",
              "--set", "learning_rate=0.001"]
SUBSET_LINE = re.compile(r"subset \d+/\d+: .*\(([\d.]+) s\)")


def run(cmd: list[str]) -> tuple[float, float]:
    """(wall seconds, seconds of the per-subset fine-tuning the command printed)."""
    t = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - t
    if proc.returncode:
        sys.exit(f"{' '.join(cmd)} failed:\n{proc.stderr[-3000:]}")
    return wall, sum(float(s) for s in SUBSET_LINE.findall(proc.stdout + proc.stderr))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pool", type=int, default=24)
    ap.add_argument("--target", type=int, default=6)
    ap.add_argument("--subsets", type=int, default=5)
    ap.add_argument("--subset-size", type=int, default=6)
    ap.add_argument("--steps", type=int, default=1)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    info = machine()
    records = json.loads(DATA.read_text(encoding="utf-8"))
    short = [r for r in records if len(r["instruction"]) + len(r["input"]) + len(r["output"]) < 400]
    winnow = [sys.executable, "-m", "winnow.cli", "fit"]
    times: dict[str, list[tuple[float, float]]] = {"instructmining": [], "instructiongpt4": []}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        pool, target = tmp / "pool.json", tmp / "target.json"
        pool.write_text(json.dumps(short[:args.pool]), encoding="utf-8")
        target.write_text(json.dumps(short[100:100 + args.target]), encoding="utf-8")
        for r in range(args.runs):
            for name in times:
                out = tmp / f"{name}-{r}" / ("rule.yaml" if name == "instructmining"
                                             else "reg.safetensors")
                size = (["--subset-size", str(args.subset_size)]
                        if name == "instructmining" else [])
                cmd = [*winnow, name, "--data", str(pool), "--target", str(target),
                       "--out", str(out), "--subsets", str(args.subsets), *size,
                       "--steps", str(args.steps), "--cache-dir", str(tmp / f"cache-{name}-{r}"),
                       *TINY_TRAIN]
                times[name].append(run(cmd))
                print(f"run {r + 1}/{args.runs} {name}: {times[name][-1][0]:.1f} s",
                      file=sys.stderr)
    command = "python benchmarks/bench_fit.py " + " ".join(sys.argv[1:])
    print(f"\n{header(info)}\n")
    print(f"`winnow fit` on {args.pool} Alpaca records, target {args.target} records, "
          f"{args.subsets} subsets, {args.steps} training step(s) each (LoRA r 2 on q/v, "
          f"cutoff 64, batch 2); fresh process and empty cache per run, median of "
          f"{args.runs} interleaved runs\n")
    print("| command | wall s | fine-tuning the subsets s | the rest s |\n|---|---:|---:|---:|")
    rows = {}
    for name, ts in times.items():
        wall = statistics.median(t[0] for t in ts)
        train = statistics.median(t[1] for t in ts)
        rows[name] = {"wall_s": wall, "train_s": train, "runs": ts}
        print(f"| winnow fit {name} | {wall:.1f} | {train:.1f} | {wall - train:.1f} |")
    print(f"\ncommand: {command}")
    out = ROOT / "benchmarks" / "out" / "bench_fit.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"command": command, "machine": info, "args": vars(args),
                               "rows": rows}, indent=2))
    print(f"json: {out}")


if __name__ == "__main__":
    main()

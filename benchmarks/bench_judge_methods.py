"""What each judge-scored method costs on this machine with the built-in judge.

Each method (``winnow select METHOD``) runs from the CLI, as a user runs it, on the first
``--n`` examples of ``alpaca_en_demo.json`` (budget 10%, an empty cache each run, the
built-in SmolLM2 judge: the llama.cpp server for replies, DEITA's digit read-off in
process). Printed per method: the median wall time of ``--runs`` runs (methods interleaved:
A, B, ..., A, B, ...), examples per second, the projected hours for 1,000 examples, the
judge calls per example, and how many replies were unparseable (recorded as missing) or
fell back to an official default, from the manifest's ``signal_stats``.

    python benchmarks/bench_judge_methods.py                 # 100 examples, 1 run
    python benchmarks/bench_judge_methods.py --n 20 --runs 3
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _machine import header, machine

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "alpaca_en_demo.json"
METHODS = ("deita", "alpagasus", "instag", "mig", "self-curation", "lift", "wavecoder",
           "tree-instruct", "tegit", "qdit")


def run_once(method: str, data: Path, work: Path) -> dict:
    """One ``winnow select`` in a fresh cache: wall seconds and the judges' counts."""
    out = work / f"{method}.json"
    cmd = [sys.executable, "-m", "winnow.cli", "select", method, "--data", str(data),
           "--budget", "10%", "--out", str(out), "--cache-dir", str(work / "cache")]
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if proc.returncode:
        raise SystemExit(f"{method} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    manifest = json.loads(out.with_suffix(".manifest.json").read_text())
    totals: dict[str, float] = {}
    for stats in manifest.get("signal_stats", {}).values():
        for k, v in stats.items():
            totals[k] = totals.get(k, 0) + v
    return {"seconds": seconds, **totals}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=100)
    ap.add_argument("--runs", type=int, default=1)
    ap.add_argument("--methods", nargs="+", default=list(METHODS))
    ap.add_argument("--json", type=Path, help="also write the figures here")
    args = ap.parse_args()
    info = machine()
    print(header(info))
    records = json.loads(DATA.read_text())[: args.n]
    results: dict[str, list[dict]] = {m: [] for m in args.methods}
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / f"alpaca{args.n}.json"
        data.write_text(json.dumps(records))
        for r in range(args.runs):
            for method in args.methods:
                work = Path(tmp) / f"{method}-{r}"
                work.mkdir()
                results[method].append(run_once(method, data, work))
                print(f"  run {r + 1} {method}: {results[method][-1]['seconds']:.1f} s",
                      file=sys.stderr, flush=True)
    print(f"\n{args.n} examples of {DATA.name}, median of {args.runs} run(s), "
          f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}\n")
    print("| method | seconds | examples/s | hours per 1,000 | judge calls/example "
          "| unparseable | fallback |")
    print("|---|---|---|---|---|---|---|")
    table = {}
    for method, runs in results.items():
        sec = statistics.median(r["seconds"] for r in runs)
        last = runs[-1]
        row = {"seconds": sec, "examples_per_s": args.n / sec,
               "hours_per_1000": sec / args.n * 1000 / 3600,
               "calls_per_example": last.get("calls", 0) / args.n,
               "unparseable": last.get("unparseable", 0), "fallback": last.get("fallback", 0)}
        table[method] = row
        print(f"| {method} | {sec:.1f} | {row['examples_per_s']:.2f} | "
              f"{row['hours_per_1000']:.2f} | {row['calls_per_example']:.2f} | "
              f"{row['unparseable']} | {row['fallback']} |")
    if args.json:
        args.json.write_text(json.dumps({"machine": info, "n": args.n, "runs": args.runs,
                                         "methods": table}, indent=1))


if __name__ == "__main__":
    main()

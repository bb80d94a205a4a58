"""Pool I/O at scale: read, fingerprint and write a 5% subset of a 1M-record JSONL pool.

Generates a deterministic Alpaca-style JSONL pool (about 300 bytes a record, no ``id``
field, so ids are content hashes), then runs ``load_pool`` → ``Pool.fingerprint`` →
``write_subset`` in a fresh subprocess per run and reports the median time of each step
and the peak resident memory of the process (``ru_maxrss``). The subset written is checked
line by line against the input.

    python benchmarks/bench_pool_io.py                 # 1M records, 3 runs
    python benchmarks/bench_pool_io.py --n 100000 --runs 1
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path

from _machine import header, machine

OUT = Path(__file__).resolve().parent / "out"
LIMIT_GIB = 3.0
WORDS = (
    "the of and to in a is that for it as was with be by on not this are or from at which "
    "but have an they you were there one all would their we been has when who will more no "
    "if out so what up its about into than them can only other new some could time these "
    "two may then do first any like now over such our even most made after also did many "
    "before must through back years where much your way well down should because each just "
    "those people how too little state good very make world still own see work long get "
    "here between both life being under never day same another know while last might great "
    "old year off come since against go came right used take three water light energy plant "
    "city river market number system language music health history science story simple"
).split()


def generate(path: Path, n: int, seed: int = 0) -> None:
    """Write ``n`` Alpaca records (instruction, input, output) as JSONL, deterministically."""
    rng = random.Random(seed)
    tmp = path.with_suffix(".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        for i in range(n):
            instruction = " ".join(rng.choices(WORDS, k=rng.randint(6, 16))).capitalize() + "?"
            given = " ".join(rng.choices(WORDS, k=rng.randint(4, 12))) if i % 3 == 0 else ""
            output = " ".join(rng.choices(WORDS, k=rng.randint(25, 45))).capitalize() + "."
            rec = {"instruction": instruction, "input": given, "output": output}
            f.write(json.dumps(rec, ensure_ascii=False) + "\n")
    tmp.replace(path)


CHILD = r"""
import json, resource, sys, time
import numpy as np
from winnow.data import load_pool, write_subset
src, out, frac = sys.argv[1], sys.argv[2], float(sys.argv[3])
t0 = time.perf_counter()
pool = load_pool(src)
t1 = time.perf_counter()
fp = pool.fingerprint()
t2 = time.perf_counter()
idx = np.random.default_rng(0).choice(len(pool), int(len(pool) * frac), replace=False)
write_subset(pool, idx, out)
t3 = time.perf_counter()
print(json.dumps({"n": len(pool), "fingerprint": fp, "load_s": t1 - t0, "fingerprint_s": t2 - t1,
                  "write_s": t3 - t2, "total_s": t3 - t0, "indices": sorted(map(int, idx)),
                  "maxrss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))
"""


def run_once(src: Path, out: Path, frac: float) -> dict:
    proc = subprocess.run([sys.executable, "-c", CHILD, str(src), str(out), str(frac)],
                          capture_output=True, text=True, check=True)
    return json.loads(proc.stdout)


def check_subset(src: Path, out: Path, indices: list[int]) -> None:
    """Every output line is the input line at the chosen index, in order."""
    want = iter(indices)
    nxt = next(want, None)
    with open(src, "rb") as fin, open(out, "rb") as fout:
        for k, line in enumerate(fin):
            if k == nxt:
                assert fout.readline() == line, f"subset line for record {k} differs"
                nxt = next(want, None)
        assert nxt is None and fout.readline() == b"", "subset has the wrong number of lines"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1_000_000, help="records in the generated pool")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--frac", type=float, default=0.05, help="fraction written as a subset")
    ap.add_argument("--dir", type=Path, default=OUT, help="where the pool is generated")
    args = ap.parse_args()
    info = machine(peak=False)

    args.dir.mkdir(parents=True, exist_ok=True)
    src = args.dir / f"pool_{args.n}.jsonl"
    if not src.exists():
        t = time.perf_counter()
        generate(src, args.n)
        print(f"generated {src} in {time.perf_counter() - t:.1f}s")
    out = args.dir / f"pool_{args.n}_subset.jsonl"
    runs = []
    for _ in range(args.runs):
        r = run_once(src, out, args.frac)
        check_subset(src, out, r.pop("indices"))
        runs.append(r)
    assert len({r["fingerprint"] for r in runs}) == 1, "fingerprint differs between runs"

    size = src.stat().st_size
    med = {k: statistics.median(r[k] for r in runs)
           for k in ("load_s", "fingerprint_s", "write_s", "total_s")}
    peak_gib = max(r["maxrss_kib"] for r in runs) / 2**20
    result = {
        "records": runs[0]["n"], "file_bytes": size, "bytes_per_record": size / runs[0]["n"],
        "subset_fraction": args.frac, "runs": args.runs, "median_s": med,
        "peak_rss_gib": peak_gib, "limit_gib": LIMIT_GIB, "within_limit": peak_gib < LIMIT_GIB,
        "fingerprint": runs[0]["fingerprint"], "python": platform.python_version(),
        "machine": {**info, "platform": platform.platform()}, "per_run": runs,
        "command": "python " + " ".join(["benchmarks/bench_pool_io.py", *sys.argv[1:]]),
    }
    (OUT / "bench_pool_io.json").write_text(json.dumps(result, indent=2))

    print(f"\n{header(info)}\n")
    print(f"Pool I/O, {result['records']:,} Alpaca records in JSONL "
          f"({size / 2**20:.0f} MiB, {result['bytes_per_record']:.0f} B/record), "
          f"median of {args.runs} runs\n")
    print("| step | median time (s) |")
    print("|---|---|")
    print(f"| load_pool | {med['load_s']:.2f} |")
    print(f"| fingerprint | {med['fingerprint_s']:.2f} |")
    print(f"| write_subset ({args.frac:.0%}) | {med['write_s']:.2f} |")
    print(f"| total | {med['total_s']:.2f} |")
    print(f"\npeak RSS: {peak_gib:.2f} GiB (limit {LIMIT_GIB} GiB)")
    print(f"command: {result['command']}")
    print(f"results: {OUT / 'bench_pool_io.json'}")
    if not result["within_limit"]:
        sys.exit(f"peak RSS {peak_gib:.2f} GiB exceeds {LIMIT_GIB} GiB")


if __name__ == "__main__":
    main()

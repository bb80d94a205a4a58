"""Diversity selectors at scale, side by side in one run.

    python benchmarks/bench_diversity.py            # full scale (quiet machine)
    python benchmarks/bench_diversity.py --scale 0.05 --repeats 1   # quick check

1. facility location (winnow, dense lazy greedy) vs apricot on 20k x 384 -> 1k, same
   similarity matrix (max(0, cosine)); apricot's time includes building that matrix.
2. sparse facility location on 1M x 384 clustered synthetic embeddings -> 10k: time, peak RSS.
3. k-center greedy 1M x 384 -> 10k: time.
4. NovelSelect 100k -> 5k vs a direct implementation of the formula that recomputes every
   value each step (run for the first ``--direct-steps`` steps; the ratio is per step).
Median of ``--repeats`` runs. Prints a markdown table; JSON to benchmarks/out/diversity.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import psutil

from winnow.selectors._knn import normalize_rows
from winnow.selectors.base import get_selector
from winnow.selectors.facility_location import dense_similarity
from winnow.selectors.novelsum import local_density


def clustered(n: int, d: int = 384, clusters: int = 1000, spread: float = 0.35,
              seed: int = 0) -> np.ndarray:
    """(n, d) unit vectors around ``clusters`` random centres (float32)."""
    rng = np.random.default_rng(seed)
    centres = normalize_rows(rng.normal(size=(clusters, d)))
    X = np.empty((n, d), dtype=np.float32)
    for a in range(0, n, 100_000):
        b = min(n, a + 100_000)
        X[a:b] = centres[rng.integers(clusters, size=b - a)] + \
            spread / np.sqrt(d) * rng.normal(size=(b - a, d)).astype(np.float32)
    return normalize_rows(X)


def timed(fn, repeats: int):
    times, out = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), out


def rss_gib() -> float:
    return psutil.Process().memory_info().rss / 2**30


def bench_fl_vs_apricot(n, k, repeats):
    from apricot import FacilityLocationSelection

    X = clustered(n, clusters=max(10, n // 100), seed=1)
    ours_t, ours = timed(lambda: get_selector("facility_location", mode="dense").select(k, X=X),
                         repeats)

    def apricot_run():
        S = np.maximum(dense_similarity(X), 0).astype(np.float64)
        return FacilityLocationSelection(k, metric="precomputed", optimizer="lazy").fit(S)

    ap_t, ap = timed(apricot_run, repeats)
    from winnow.selectors.facility_location import facility_location_value
    return {"task": f"facility location {n}x384 -> {k}", "winnow_s": ours_t, "apricot_s": ap_t,
            "speedup": ap_t / ours_t, "objective_winnow": ours.trace["objective"],
            "objective_apricot": facility_location_value(X, ap.ranking)}


def bench_sparse_fl(n, k, repeats):
    X = clustered(n)
    t, sel = timed(lambda: get_selector("facility_location", mode="sparse", n_neighbors=16,
                                        index="auto").select(k, X=X), repeats)
    return {"task": f"sparse facility location {n}x384 -> {k}", "winnow_s": t,
            "peak_rss_gib": psutil.Process().memory_info().rss / 2**30,
            "objective": sel.trace["objective"]}


def bench_kcenter(n, k, repeats):
    X = clustered(n, seed=2)
    t, sel = timed(lambda: get_selector("kcenter").select(k, X=X), repeats)
    return {"task": f"k-center {n}x384 -> {k}", "winnow_s": t, "radius": sel.trace["radius"]}


def direct_novelselect(X, sigma, first, steps):
    """The formula recomputed from scratch every step (all candidates x all selected)."""
    Xn = normalize_rows(X)
    chosen = [first]
    for t in range(1, steps):
        V = (1 - Xn @ Xn[chosen].T) * (sigma[:, None] + sigma[chosen][None, :])
        V.sort(axis=1)
        value = (V / np.arange(1, t + 1)).mean(axis=1)
        value[chosen] = -np.inf
        chosen.append(int(np.argmax(value)))
    return chosen


def bench_novelselect(n, k, direct_steps, repeats):
    X = clustered(n, seed=3)
    sigma = local_density(X)
    t, sel = timed(lambda: get_selector("novelselect").select(k, X=X, density=sigma), repeats)
    steps = min(direct_steps, k)
    t_fast, fast = timed(lambda: get_selector("novelselect").select(steps, X=X, density=sigma),
                         repeats)
    t_direct, direct = timed(lambda: direct_novelselect(X, sigma, int(fast.indices[0]), steps),
                             repeats)
    return {"task": f"NovelSelect {n}x384 -> {k}", "winnow_s": t,
            "first_steps": steps, "winnow_first_steps_s": t_fast,
            "direct_first_steps_s": t_direct, "speedup_first_steps": t_direct / t_fast,
            "same_selection": list(map(int, fast.indices)) == direct}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--scale", type=float, default=1.0, help="fraction of the full sizes")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--direct-steps", type=int, default=300)
    ap.add_argument("--only", nargs="*", default=["fl", "sparse", "kcenter", "novel"])
    args = ap.parse_args()
    s = args.scale
    rows = []
    if "fl" in args.only:
        rows.append(bench_fl_vs_apricot(int(20_000 * s), int(1_000 * s), args.repeats))
    if "kcenter" in args.only:
        rows.append(bench_kcenter(int(1_000_000 * s), int(10_000 * s), args.repeats))
    if "novel" in args.only:
        rows.append(bench_novelselect(int(100_000 * s), int(5_000 * s), args.direct_steps,
                                      args.repeats))
    if "sparse" in args.only:  # last: its peak RSS is the process peak so far
        rows.append(bench_sparse_fl(int(1_000_000 * s), int(10_000 * s), args.repeats))
    cmd = "python " + " ".join(sys.argv)
    print(f"\n`{cmd}`  (cpu cores: {psutil.cpu_count()})\n")
    print("| task | winnow s | reference s | ratio | notes |\n|---|---|---|---|---|")
    for r in rows:
        ref = r.get("apricot_s", r.get("direct_first_steps_s"))
        ratio = r.get("speedup", r.get("speedup_first_steps"))
        notes = {k: v for k, v in r.items() if k not in
                 ("task", "winnow_s", "apricot_s", "direct_first_steps_s", "speedup",
                  "speedup_first_steps")}
        print(f"| {r['task']} | {r['winnow_s']:.2f} | "
              f"{'' if ref is None else f'{ref:.2f}'} | "
              f"{'' if ratio is None else f'{ratio:.1f}x'} | "
              f"{json.dumps(notes, default=float)} |")
    out = Path(__file__).parent / "out" / "diversity.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps({"command": cmd, "results": rows}, indent=2, default=float))


if __name__ == "__main__":
    main()

"""Diversity selectors at scale, side by side in one run.

    python benchmarks/bench_diversity.py                       # full scale (quiet machine)
    python benchmarks/bench_diversity.py --scale 0.05 --repeats 1   # quick check
    python benchmarks/bench_diversity.py --only kcenter        # one part

Every part runs in its own process (its peak RSS is its own) on clustered synthetic unit
embeddings (1000 centres, d = 384):

fl       facility location (winnow, dense greedy, from X) vs apricot's lazy greedy on
         20k x 384 -> 1k. apricot gets the same max(0, cosine) matrix precomputed in float64
         (building it is not in its time; ``ratio_from_embeddings`` adds it) and its numba
         code is compiled on a tiny input first (not in its time either); so is winnow's,
         and each side has one untimed full-size run first (the first touch of fresh
         memory is slow and erratic on this virtual machine: 1.3-3.8 s for the matrix).
         winnow is also timed on that same matrix (as float32, ``metric="precomputed"``,
         its symmetry and finiteness check included): ``ratio_same_input``. Objective of
         both selections.
sparse   facility location on a 16-NN graph (faiss IVF), 1M x 384 -> 10k: time, peak RSS.
kcenter  k-center greedy 1M x 384 -> 10k, and the plain algorithm (all n distances every
         step) for its first ``--plain-steps`` steps: same picks, time per step.
novel    NovelSelect 100k -> 5k; the direct formula (all values recomputed and sorted every
         step) side by side for the first ``--direct-steps`` steps, and one direct step at
         t = 5k from which its full run is estimated (k/2 steps of that cost; an
         underestimate since a step grows as t·log t).
Times are medians of ``--repeats`` runs. Prints a markdown table; JSON to
benchmarks/out/diversity.json (diversity_<parts>.json with --only).
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from winnow.selectors._knn import normalize_rows
from winnow.selectors.base import get_selector
from winnow.selectors.facility_location import dense_similarity, facility_location_value


def clustered(n: int, d: int = 384, clusters: int = 1000, spread: float = 0.35,
              seed: int = 0) -> np.ndarray:
    """(n, d) float32 unit vectors around ``clusters`` random unit centres."""
    rng = np.random.default_rng(seed)
    centres = normalize_rows(rng.normal(size=(clusters, d)))
    X = np.empty((n, d), dtype=np.float32)
    for a in range(0, n, 100_000):
        b = min(n, a + 100_000)
        X[a:b] = centres[rng.integers(clusters, size=b - a)] + \
            spread / np.sqrt(d) * rng.normal(size=(b - a, d)).astype(np.float32)
        X[a:b] /= np.linalg.norm(X[a:b], axis=1, keepdims=True)
    return X


def timed(fn, repeats: int, warmup: int = 0):
    """(median seconds, last result) of ``repeats`` calls after ``warmup`` untimed ones."""
    for _ in range(warmup):
        fn()
    times, out = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), out


def peak_rss_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def part_fl(n: int, k: int, repeats: int, **_) -> dict:
    from apricot import FacilityLocationSelection

    X = clustered(n, seed=1)
    tiny = np.maximum(dense_similarity(X[:50]), 0).astype(np.float64)
    FacilityLocationSelection(5, metric="precomputed", optimizer="lazy").fit(tiny)  # compile
    get_selector("facility_location", mode="dense").select(5, X=X[:50])              # compile
    t_ours, ours = timed(lambda: get_selector("facility_location", mode="dense").select(k, X=X),
                         repeats, warmup=1)
    start = time.perf_counter()
    S = np.maximum(dense_similarity(X), 0).astype(np.float64)
    t_matrix = time.perf_counter() - start
    S32 = S.astype(np.float32)    # the same values, in winnow's own precision
    t_ours_pre, ours_pre = timed(
        lambda: get_selector("facility_location", metric="precomputed").select(k, X=S32),
        repeats, warmup=1)
    t_ap, ap = timed(lambda: FacilityLocationSelection(k, metric="precomputed",
                                                       optimizer="lazy").fit(S), repeats,
                     warmup=1)
    f_ours = facility_location_value(X, ours.indices)
    f_ap = facility_location_value(X, ap.ranking)
    return {"task": f"facility location {n}x384 -> {k} (dense)", "winnow_s": t_ours,
            "reference": "apricot lazy (fit only)", "reference_s": t_ap,
            "ratio": t_ap / t_ours, "apricot_matrix_s": t_matrix,
            "winnow_precomputed_s": t_ours_pre, "ratio_same_input": t_ap / t_ours_pre,
            "ratio_from_embeddings": (t_matrix + t_ap) / t_ours,
            "objective_winnow": f_ours, "objective_apricot": f_ap,
            "entries_read_winnow": ours.trace["entries_read"],
            "same_selection": ours.indices.tolist() == ap.ranking.tolist()
            == ours_pre.indices.tolist()}


def part_sparse(n: int, k: int, repeats: int, **_) -> dict:
    X = clustered(n)
    before = peak_rss_gib()
    t, sel = timed(lambda: get_selector("facility_location", mode="sparse", n_neighbors=16,
                                        index="auto").select(k, X=X), repeats)
    return {"task": f"sparse facility location {n}x384 -> {k} (16-NN, IVF)", "winnow_s": t,
            "peak_rss_gib": peak_rss_gib(), "peak_rss_before_select_gib": before,
            "input_gib": X.nbytes / 2**30, "objective": sel.trace["objective"]}


def plain_kcenter(X: np.ndarray, first: int, steps: int) -> list[int]:
    """Farthest-first recomputing all n distances every step (float32 products)."""
    sq = np.einsum("ij,ij->i", X, X)
    chosen = [first]
    D = sq + sq[first] - 2 * (X @ X[first])
    for _ in range(steps - 1):
        s = int(np.argmax(D))
        chosen.append(s)
        np.minimum(D, sq + sq[s] - 2 * (X @ X[s]), out=D)
    return chosen


def part_kcenter(n: int, k: int, repeats: int, plain_steps: int, **_) -> dict:
    X = clustered(n, seed=2)
    t, sel = timed(lambda: get_selector("kcenter").select(k, X=X), repeats)
    steps = min(plain_steps, k)
    t_plain, plain = timed(lambda: plain_kcenter(X, int(sel.indices[0]), steps), 1)
    est = t_plain / steps * k
    return {"task": f"k-center {n}x384 -> {k}", "winnow_s": t,
            "reference": f"plain, est. from {steps} steps", "reference_s": est,
            "ratio": est / t, "plain_first_steps_s": t_plain,
            "same_first_steps": plain == sel.indices[:steps].tolist(),
            "radius": sel.trace["radius"]}


def direct_values(Xn, sigma, chosen, rows, chunk: int = 2000) -> np.ndarray:
    """The formula for ``rows`` given ``chosen``: all values recomputed and sorted."""
    t = len(chosen)
    w = 1.0 / np.arange(1, t + 1)
    out = np.empty(len(rows))
    for a in range(0, len(rows), chunk):
        r = rows[a:a + chunk]
        V = (1 - Xn[r] @ Xn[chosen].T) * (sigma[r][:, None] + sigma[chosen][None, :])
        V.sort(axis=1)
        out[a:a + chunk] = V @ w / t
    return out


def direct_novelselect(Xn, sigma, first, steps) -> list[int]:
    chosen = [first]
    rows = np.arange(len(Xn))
    for _ in range(1, steps):
        value = direct_values(Xn, sigma, chosen, rows)
        value[chosen] = -np.inf
        chosen.append(int(np.argmax(value)))
    return chosen


def part_novel(n: int, k: int, repeats: int, direct_steps: int, **_) -> dict:
    from winnow.selectors.novelsum import local_density

    X = clustered(n, seed=3)
    sigma = local_density(X)
    Xn = normalize_rows(X)
    t, sel = timed(lambda: get_selector("novelselect").select(k, X=X, density=sigma), repeats)
    steps = min(direct_steps, k)
    t_first, first = timed(lambda: get_selector("novelselect").select(steps, X=X,
                                                                     density=sigma), repeats)
    t_direct, direct = timed(lambda: direct_novelselect(Xn, sigma, int(sel.indices[0]), steps),
                             1)
    start = time.perf_counter()
    direct_values(Xn, sigma, sel.indices[:k - 1].tolist(), np.arange(n))
    t_last = time.perf_counter() - start
    est = t_last * k / 2
    return {"task": f"NovelSelect {n}x384 -> {k}", "winnow_s": t,
            "reference": "direct formula, est.", "reference_s": est, "ratio": est / t,
            "first_steps": steps, "winnow_first_steps_s": t_first,
            "direct_first_steps_s": t_direct, "ratio_first_steps": t_direct / t_first,
            "direct_step_at_k_s": t_last, "same_first_steps": first.indices.tolist() == direct,
            "evaluations": sel.trace["evaluations"]}


PARTS = {"fl": (part_fl, 20_000, 1_000), "sparse": (part_sparse, 1_000_000, 10_000),
         "kcenter": (part_kcenter, 1_000_000, 10_000), "novel": (part_novel, 100_000, 5_000)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--scale", type=float, default=1.0, help="fraction of the full sizes")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--direct-steps", type=int, default=100)
    ap.add_argument("--plain-steps", type=int, default=100)
    ap.add_argument("--only", nargs="*", default=list(PARTS))
    ap.add_argument("--part", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.part:
        fn, n, k = PARTS[args.part]
        row = fn(int(n * args.scale), max(2, int(k * args.scale)), args.repeats,
                 direct_steps=args.direct_steps, plain_steps=args.plain_steps)
        row.setdefault("peak_rss_gib", peak_rss_gib())
        print("RESULT " + json.dumps(row, default=float))
        return
    cmd = "python " + " ".join(sys.argv)
    rows = []
    for part in args.only:
        proc = subprocess.run([sys.executable, __file__, "--part", part, *sys.argv[1:]],
                              capture_output=True, text=True)
        if proc.returncode:
            sys.exit(f"part {part} failed:\n{proc.stderr}")
        rows.append(json.loads(proc.stdout.rsplit("RESULT ", 1)[1]))
        print(f"done: {rows[-1]['task']}", file=sys.stderr)
    print(f"\n`{cmd}`\n")
    print("| task | winnow s | reference | reference s | ratio | peak RSS GiB | notes |\n"
          "|---|---|---|---|---|---|---|")
    skip = {"task", "winnow_s", "reference", "reference_s", "ratio", "peak_rss_gib"}
    for r in rows:
        notes = ", ".join(f"{k}={v:.6g}" if isinstance(v, float) else f"{k}={v}"
                          for k, v in r.items() if k not in skip)
        ref_s, ratio = r.get("reference_s"), r.get("ratio")
        print(f"| {r['task']} | {r['winnow_s']:.1f} | {r.get('reference', '')} | "
              f"{'' if ref_s is None else f'{ref_s:.1f}'} | "
              f"{'' if ratio is None else f'{ratio:.1f}x'} | {r['peak_rss_gib']:.2f} | "
              f"{notes} |")
    name = "diversity" + ("" if args.only == list(PARTS) else "_" + "_".join(args.only))
    path = Path(__file__).parent / "out" / f"{name}.json"
    path.parent.mkdir(exist_ok=True)
    path.write_text(json.dumps({"command": cmd, "results": rows}, indent=2, default=float))


if __name__ == "__main__":
    main()

"""Diversity selectors at scale against their references, side by side in one run.

    python benchmarks/bench_diversity.py                              # full scale (quiet machine)
    python benchmarks/bench_diversity.py --scale 0.02 --check-scale 0.02 --repeats 1  # smoke
    python benchmarks/bench_diversity.py --only kcenter novel         # some parts

Every part runs in its own process (its peak RSS is its own) on clustered synthetic unit
embeddings (1000 centres, d = 384). Within a part, the variants being compared run
interleaved (A, B, A, B, ...) after one untimed round (none for ``sparse``; numba code is
also compiled on a tiny input first), and each time is the median of ``--repeats`` rounds.
``--scale`` scales the sizes, ``--check-scale`` those of the full checks.

fl       facility location 20k x 384 -> 1k, dense.
         From embeddings (the headline): winnow ``select(k, X=X)`` (its max(0, cos) matrix
         in float32, then the greedy) vs apricot ``FacilityLocationSelection(k,
         metric="cosine", optimizer="lazy").fit(X)`` (apricot's own matrix from X: its
         "cosine" similarity is cos², computed by sklearn in float32 and converted to
         float64 for its greedy). The similarities differ, so the picks may too: the
         objective Σ_v max(0, max_s cos) of both selections is reported.
         Same matrix: both given the same float64 max(0, cos) matrix (apricot runs in
         float64 and converts anything else to it; winnow converts it to float32 and checks
         it is symmetric and finite, inside its time): every pick compared.
sparse   facility location on a 16-NN graph (faiss IVF), 1M x 384 -> 10k: time, peak RSS.
kcenter  k-center greedy 1M x 384 -> 10k against the plain algorithm (all n distances
         recomputed every step), which is run for its first ``--plain-steps`` steps only:
         its time is extrapolated (labelled so) and those steps' picks compared. Then a
         full check at 100k -> 1k: both run to
         the end, measured, every pick compared.
novel    NovelSelect 100k -> 5k against the direct formula (every value recomputed and
         sorted every step): the direct formula runs its first ``--direct-steps`` steps
         (measured against winnow's first steps, picks compared) and one step at t = k - 1,
         from which its full run is extrapolated (k/2 steps of that cost; an underestimate,
         a step grows as t·log t), labelled so. Then a full check at 5k -> 300:
         both run to the end, measured, every pick compared.

Prints the machine, a markdown table and the command; JSON to benchmarks/out/diversity.json
(diversity_<parts>.json with --only).
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
from _machine import header, machine

from winnow.registry import get_selector
from winnow.selectors._knn import normalize_rows
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


def interleaved(variants: dict, repeats: int, warmup: int = 1):
    """Run the variants in rounds (A, B, A, B, ...), the first ``warmup`` rounds untimed.
    Returns ({name: median s}, {name: result of its last run}, {name: [timed s]})."""
    times: dict[str, list[float]] = {k: [] for k in variants}
    out = {}
    for r in range(warmup + repeats):
        for name, fn in variants.items():
            start = time.perf_counter()
            out[name] = fn()
            if r >= warmup:
                times[name].append(time.perf_counter() - start)
    return {k: statistics.median(v) for k, v in times.items()}, out, times


def same_picks(reference, ours) -> str:
    """'all N equal' or where the two pick lists first differ."""
    reference, ours = list(map(int, reference)), list(map(int, ours))
    if reference == ours:
        return f"all {len(reference)} equal"
    i = next((i for i, (a, b) in enumerate(zip(reference, ours)) if a != b),
             min(len(reference), len(ours)))
    return f"differ from pick {i + 1} of {len(reference)}"


def peak_rss_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def row(task, winnow, winnow_s, reference=None, reference_s=None, dtype="", picks="",
        **notes) -> dict:
    return {"task": task, "winnow": winnow, "winnow_s": winnow_s, "reference": reference,
            "reference_s": reference_s,
            "ratio": None if reference_s is None else reference_s / winnow_s,
            "dtype": dtype, "same_picks": picks, "notes": notes}


def shared_matrix(X: np.ndarray) -> np.ndarray:
    """max(0, cos) as float64, made exactly symmetric (BLAS may round S[i, j] and S[j, i]
    differently, e.g. for 50 rows)."""
    S = dense_similarity(X)
    return np.maximum(np.maximum(S, S.T), 0).astype(np.float64)


def part_fl(n: int, k: int, repeats: int, **_) -> list[dict]:
    from apricot import FacilityLocationSelection

    def apricot(metric, A, m):
        return FacilityLocationSelection(m, metric=metric, optimizer="lazy").fit(A).ranking

    def ours(A, m, **kw):
        sel = get_selector("facility_location", **kw).select(m, X=A)
        read[kw.get("metric", "cosine")] = sel.trace["entries_read"]
        return sel.indices

    read = {}  # similarity entries the greedy's updates read, per metric

    X = clustered(n, seed=1)
    tiny = shared_matrix(X[:50])
    for metric, A in (("cosine", X[:50]), ("precomputed", tiny)):  # compile the numba code
        apricot(metric, A, 5)
    ours(X[:50], 5, mode="dense")
    ours(tiny, 5, metric="precomputed")
    S = shared_matrix(X)
    med, picks, runs = interleaved({
        "winnow from X": lambda: ours(X, k, mode="dense"),
        "apricot from X": lambda: apricot("cosine", X, k),
        "winnow on S": lambda: ours(S, k, metric="precomputed"),
        "apricot on S": lambda: apricot("precomputed", S, k),
    }, repeats)
    start = time.perf_counter()
    dense_similarity(X)
    t_matrix = time.perf_counter() - start  # winnow's matrix alone, once, after the rounds
    obj = {name: facility_location_value(X, p) for name, p in picks.items()}
    overlap = len(set(picks["winnow from X"].tolist()) & set(picks["apricot from X"].tolist()))
    return [
        row(f"facility location {n:,} -> {k:,}, from embeddings",
            "from X: max(0, cos) matrix + greedy", med["winnow from X"],
            "apricot lazy greedy from X (metric='cosine': its cos² matrix via sklearn)",
            med["apricot from X"], "winnow float32; apricot float32 matrix, float64 greedy",
            f"not expected (different similarity); {overlap} of {k} in common",
            objective_winnow=obj["winnow from X"], objective_apricot=obj["apricot from X"],
            winnow_matrix_s=t_matrix, winnow_entries_read=read["cosine"],
            runs_s={m: runs[m] for m in ("winnow from X", "apricot from X")}),
        row(f"facility location {n:,} -> {k:,}, same matrix",
            "precomputed (converted to float32, symmetry and finiteness checked)",
            med["winnow on S"], "apricot lazy greedy, precomputed", med["apricot on S"],
            "float64 matrix given to both; winnow computes in float32, apricot in float64",
            same_picks(picks["apricot on S"], picks["winnow on S"]),
            objective_winnow=obj["winnow on S"], objective_apricot=obj["apricot on S"],
            winnow_on_S_vs_from_X=same_picks(picks["winnow from X"], picks["winnow on S"]),
            runs_s={m: runs[m] for m in ("winnow on S", "apricot on S")}),
    ]


def part_sparse(n: int, k: int, repeats: int, **_) -> list[dict]:
    X = clustered(n)
    before = peak_rss_gib()
    med, sel, runs = interleaved({"winnow": lambda: get_selector(
        "facility_location", mode="sparse", n_neighbors=16, index="auto").select(k, X=X)},
        repeats, warmup=0)
    return [row(f"sparse facility location {n:,} -> {k:,} (16-NN, IVF)", "sparse greedy",
                med["winnow"], dtype="float32", peak_rss_before_select_gib=before,
                input_gib=X.nbytes / 2**30, objective=sel["winnow"].trace["objective"],
                runs_s=runs["winnow"])]


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


def part_kcenter(n: int, k: int, repeats: int, plain_steps: int, check_n: int, check_k: int,
                 **_) -> list[dict]:
    X = clustered(n, seed=2)
    med, sel, runs = interleaved({"winnow": lambda: get_selector("kcenter").select(k, X=X)},
                                 repeats)
    picks = sel["winnow"].indices
    steps = min(plain_steps, k)
    start = time.perf_counter()
    plain = plain_kcenter(X, int(picks[0]), steps)
    t_plain = time.perf_counter() - start
    rows = [row(f"k-center {n:,} -> {k:,}", "lazy exact greedy", med["winnow"],
                f"plain farthest-first (extrapolated from {steps} steps)", t_plain / steps * k,
                "float32 both", f"{same_picks(plain, picks[:steps])} (the {steps} computed)",
                plain_steps_s=t_plain, radius=sel["winnow"].trace["radius"],
                runs_s=runs["winnow"])]
    X = None  # free the large input before the full check
    Xc = clustered(check_n, seed=4)
    first = int(get_selector("kcenter").select(1, X=Xc).indices[0])  # winnow's first pick
    med, out, runs = interleaved({
        "winnow": lambda: get_selector("kcenter").select(check_k, X=Xc).indices,
        "plain": lambda: plain_kcenter(Xc, first, check_k)}, repeats)
    rows.append(row(f"k-center {check_n:,} -> {check_k:,} (full check)", "lazy exact greedy",
                    med["winnow"], "plain farthest-first, run to the end", med["plain"],
                    "float32 both", same_picks(out["plain"], out["winnow"]), runs_s=runs))
    return rows


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


def part_novel(n: int, k: int, repeats: int, direct_steps: int, check_n: int, check_k: int,
               **_) -> list[dict]:
    from winnow.selectors.novelsum import local_density

    def ours(X, sigma, m):
        return get_selector("novelselect").select(m, X=X, density=sigma).indices

    X = clustered(n, seed=3)
    sigma = local_density(X)
    Xn = normalize_rows(X)
    med, sel, runs = interleaved({"winnow": lambda: ours(X, sigma, k)}, repeats)
    picks = sel["winnow"]
    steps = min(direct_steps, k)
    med_first, first, runs_first = interleaved({
        "winnow": lambda: ours(X, sigma, steps),
        "direct": lambda: direct_novelselect(Xn, sigma, int(picks[0]), steps)}, repeats)
    start = time.perf_counter()
    direct_values(Xn, sigma, picks[:k - 1].tolist(), np.arange(n))
    t_last = time.perf_counter() - start
    rows = [
        row(f"NovelSelect {n:,} -> {k:,}", "bounded exact greedy", med["winnow"],
            f"direct formula (extrapolated: one step at t = {k - 1:,} x {k // 2:,} steps)",
            t_last * k / 2, "float32 embeddings and products, float64 values, both",
            f"{same_picks(first['direct'], picks[:steps])} (the {steps} computed)",
            direct_step_at_k_s=t_last, runs_s=runs["winnow"]),
        row(f"NovelSelect {n:,} -> first {steps} steps", "bounded exact greedy",
            med_first["winnow"], "direct formula, measured", med_first["direct"],
            "as above", same_picks(first["direct"], first["winnow"]), runs_s=runs_first)]
    X = Xn = None  # free the large inputs before the full check
    Xc = clustered(check_n, seed=5)
    sc = local_density(Xc)
    Xcn = normalize_rows(Xc)
    start_pick = int(ours(Xc, sc, 1)[0])
    med, out, runs = interleaved({
        "winnow": lambda: ours(Xc, sc, check_k),
        "direct": lambda: direct_novelselect(Xcn, sc, start_pick, check_k)}, repeats)
    rows.append(row(f"NovelSelect {check_n:,} -> {check_k:,} (full check)",
                    "bounded exact greedy", med["winnow"], "direct formula, run to the end",
                    med["direct"], "as above", same_picks(out["direct"], out["winnow"]),
                    runs_s=runs))
    return rows


# part: (function, n, k, n and k of the full check)
PARTS = {"fl": (part_fl, 20_000, 1_000, None, None),
         "sparse": (part_sparse, 1_000_000, 10_000, None, None),
         "kcenter": (part_kcenter, 1_000_000, 10_000, 100_000, 1_000),
         "novel": (part_novel, 100_000, 5_000, 5_000, 300)}


def fmt(v) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scale", type=float, default=1.0, help="fraction of the full sizes")
    ap.add_argument("--check-scale", type=float, default=1.0,
                    help="fraction of the full-check sizes")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--direct-steps", type=int, default=100)
    ap.add_argument("--plain-steps", type=int, default=100)
    ap.add_argument("--only", nargs="*", default=list(PARTS), choices=list(PARTS))
    ap.add_argument("--part", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.part:
        fn, n, k, check_n, check_k = PARTS[args.part]
        rows = fn(int(n * args.scale), max(2, int(k * args.scale)), args.repeats,
                  direct_steps=args.direct_steps, plain_steps=args.plain_steps,
                  check_n=int((check_n or 0) * args.check_scale),
                  check_k=max(2, int((check_k or 0) * args.check_scale)))
        for r in rows:
            r["peak_rss_gib"] = peak_rss_gib()
        print("RESULT " + json.dumps(rows, default=float))
        return
    cmd = "python benchmarks/bench_diversity.py " + " ".join(sys.argv[1:])
    info = machine()
    rows = []
    for part in args.only:
        proc = subprocess.run([sys.executable, __file__, "--part", part, *sys.argv[1:]],
                              capture_output=True, text=True)
        if proc.returncode:
            sys.exit(f"part {part} failed:\n{proc.stderr}")
        rows += json.loads(proc.stdout.rsplit("RESULT ", 1)[1])
        print(f"done: {part}", file=sys.stderr)
    print(f"\n{header(info)}\n")
    print(f"Diversity selectors, clustered unit embeddings d = 384; medians of {args.repeats} "
          "interleaved rounds after one untimed round\n")
    print("| task | winnow | winnow s | reference | reference s | ratio | dtype | same picks "
          "| peak RSS GiB | notes |\n|---|---|---:|---|---:|---:|---|---|---:|---|")
    for r in rows:
        notes = ", ".join(f"{k}={fmt(v)}" for k, v in r["notes"].items() if k != "runs_s")
        ref_s, ratio = r["reference_s"], r["ratio"]
        print(f"| {r['task']} | {r['winnow']} | {r['winnow_s']:.2f} | {r['reference'] or ''} | "
              f"{'' if ref_s is None else f'{ref_s:.2f}'} | "
              f"{'' if ratio is None else f'{ratio:.1f}x'} | {r['dtype']} | "
              f"{r['same_picks']} | {r['peak_rss_gib']:.2f} | {notes} |")
    print(f"\ncommand: {cmd}")
    name = "diversity" + ("" if args.only == list(PARTS) else "_" + "_".join(args.only))
    path = Path(__file__).parent / "out" / f"{name}.json"
    path.parent.mkdir(exist_ok=True)
    path.write_text(json.dumps({"command": cmd, "machine": info, "results": rows}, indent=2,
                               default=float))
    print(f"json: {path}")


if __name__ == "__main__":
    main()

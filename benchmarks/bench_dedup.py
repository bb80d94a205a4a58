"""Dedup throughput and accuracy on synthetic records with planted duplicates.

Generates ``n`` Alpaca-style records (instruction, input, output; Zipf-distributed words
from a 30k-word vocabulary) of which ``--exact`` are copies of another record differing
only in case and whitespace, and ``--near`` are copies with about 2% of their output
words replaced (at least one). Copies sit at random positions. Each method runs in a fresh
subprocess per repeat; the table reports the median time, records/s, the process's peak
resident memory (``ru_maxrss``) and the part of it the method added on top of the loaded
texts, and recall/precision of the planted pairs:

- recall: planted pairs (of Jaccard >= threshold, for near) where one of the two was
  dropped as a duplicate of the other;
- precision: dropped records whose recorded duplicate is their planted partner.

``--semantic N`` also runs semantic dedup on N random 384-d unit vectors of which 5% are
copies plus Gaussian noise (cosine about 0.97 to their source; inverted-file search
beyond 20k), reporting the same figures.

``--compare N`` also measures MinHash+LSH with ``datasketch`` and ``rensa`` side by side
on N records (same shingles, same bands and rows): signatures/s, LSH build+query/s,
the mean absolute error of the Jaccard estimate on the planted pairs, and pair recall.
``datasketch`` comes with the ``bench`` extra (``scripts/setup.sh`` installs it); without it
``--compare`` stops with an error before anything runs.

    python benchmarks/bench_dedup.py                              # 1M records, 3 repeats
    python benchmarks/bench_dedup.py --n 100000 --repeats 1 --compare 20000 --semantic 100000
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from _machine import header, machine

OUT = Path(__file__).resolve().parent / "out"
VOCAB = 30000


def vocabulary(rng: np.random.Generator) -> np.ndarray:
    letters = np.array(list("abcdefghijklmnopqrstuvwxyz"))
    lengths = rng.integers(2, 10, size=VOCAB)
    words = {"".join(rng.choice(letters, size=k)) for k in lengths}
    return np.array(sorted(words))


def generate(path: Path, n: int, exact: int, near: int, seed: int = 0) -> dict:
    """Write ``n`` records as JSONL ({"text": [instruction, input, output], "group": g});
    records of one planted pair share ``group``. Returns the groups of the exact pairs and
    the Jaccard similarity of each near pair (by group)."""
    from winnow.dedup.text import jaccard, normalize, shingles

    rng = np.random.default_rng(seed)
    vocab = vocabulary(rng)
    cdf = np.cumsum(1.0 / (np.arange(len(vocab)) + 10.0))
    cdf /= cdf[-1]
    base_n = n - exact - near

    def words(k: int) -> list[str]:
        return vocab[np.searchsorted(cdf, rng.random(k))].tolist()

    base = []
    for i in range(base_n):
        instruction = " ".join(words(int(rng.integers(6, 21)))).capitalize() + "?"
        given = " ".join(words(int(rng.integers(4, 21)))) if i % 3 == 0 else ""
        output = " ".join(words(int(rng.integers(20, 151)))).capitalize() + "."
        base.append([instruction, given, output])
    records = [(t, i) for i, t in enumerate(base)]
    sources = rng.choice(base_n, size=exact + near, replace=False)
    near_sims = {}
    for k, src in enumerate(sources.tolist()):
        ins, given, out = base[src]
        if k < exact:
            copy = [ins.upper(), "  " + given, out.replace(" ", "  \n", 3)]
        else:
            ws = out.split(" ")
            for pos in rng.choice(len(ws), size=max(1, round(0.02 * len(ws))), replace=False):
                ws[pos] = str(vocab[rng.integers(len(vocab))])
            copy = [ins, given, " ".join(ws)]
            a, b = ("\x00".join(x) for x in (base[src], copy))
            near_sims[src] = jaccard(shingles(normalize(a, punctuation=True), 3),
                                     shingles(normalize(b, punctuation=True), 3))
        records.append((copy, src))
    order = rng.permutation(len(records))
    with open(path, "w", encoding="utf-8") as f:
        for i in order.tolist():
            text, group = records[i]
            f.write(json.dumps({"text": text, "group": group}) + "\n")
    return {"exact_groups": set(sources[:exact].tolist()), "near_jaccard": near_sims}


CHILD = r"""
import json, resource, sys, time
import numpy as np
from winnow.dedup import exact_duplicates, near_duplicates
path, method, threshold = sys.argv[1], sys.argv[2], float(sys.argv[3])
texts, groups = [], []
with open(path, encoding="utf-8") as f:
    for line in f:
        r = json.loads(line)
        texts.append("\x00".join(r["text"]))
        groups.append(r["group"])
groups = np.array(groups)
base_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
t = time.perf_counter()
if method == "exact":
    d = exact_duplicates(texts)
else:
    d = near_duplicates(texts, threshold=threshold)
seconds = time.perf_counter() - t
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
dropped = d.dropped
right = groups[dropped] == groups[d.duplicate_of[dropped]]
correct = int(right.sum())
found_groups = sorted(set(groups[dropped][right].tolist()))
print(json.dumps({"seconds": seconds, "dropped": int(len(dropped)), "correct": correct,
                  "found_groups": found_groups, "peak_rss_kib": peak, "base_rss_kib": base_rss}))
"""


SEMANTIC_CHILD = r"""
import json, resource, sys, time
import numpy as np
from winnow.dedup import semantic_duplicates
n, seed = int(sys.argv[1]), int(sys.argv[2])
rng = np.random.default_rng(seed)
copies = n // 20
X = rng.normal(size=(n - copies, 384)).astype(np.float32)
X /= np.linalg.norm(X, axis=1, keepdims=True)
src = rng.choice(n - copies, size=copies, replace=False)
noisy = X[src] + rng.normal(scale=0.25 / np.sqrt(384), size=(copies, 384)).astype(np.float32)
X = np.vstack([X, noisy])
groups = np.concatenate([np.arange(n - copies), src])
perm = rng.permutation(n)
X, groups = X[perm], groups[perm]
base_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
t = time.perf_counter()
d = semantic_duplicates(X, threshold=0.95, seed=seed)
seconds = time.perf_counter() - t
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
dropped = d.dropped
right = groups[dropped] == groups[d.duplicate_of[dropped]]
print(json.dumps({"seconds": seconds, "dropped": int(len(dropped)), "correct": int(right.sum()),
                  "found": int(len(set(groups[dropped][right].tolist()))), "planted": int(copies),
                  "peak_rss_kib": peak, "base_rss_kib": base_rss}))
"""


def run_semantic(n: int, seed: int) -> dict:
    out = subprocess.run([sys.executable, "-c", SEMANTIC_CHILD, str(n), str(seed)],
                         check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def run_child(path: Path, method: str, threshold: float) -> dict:
    out = subprocess.run([sys.executable, "-c", CHILD, str(path), method, str(threshold)],
                         check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def compare_libraries(path: Path, n: int, threshold: float, num_perm: int = 128) -> list[dict]:
    """datasketch vs rensa on the first ``n`` records: same shingles, bands and rows."""
    import datasketch
    import rensa

    from winnow.dedup.near import lsh_bands
    from winnow.dedup.text import jaccard, normalize, shingles

    texts, groups = [], []
    with open(path, encoding="utf-8") as f:
        for line in f:
            if len(texts) == n:
                break
            r = json.loads(line)
            texts.append("\x00".join(r["text"]))
            groups.append(r["group"])
    sets = [shingles(normalize(t, punctuation=True), 3) for t in texts]
    bands, rows = lsh_bands(threshold, num_perm)
    perms = bands * rows
    by_group: dict[int, list[int]] = {}
    for i, g in enumerate(groups):
        by_group.setdefault(g, []).append(i)
    pairs = [tuple(v) for v in by_group.values() if len(v) == 2]
    true = np.array([jaccard(sets[a], sets[b]) for a, b in pairs])
    results = []

    def measure(name, sketch, estimate, build_query):
        t = time.perf_counter()
        sk = sketch()
        t_sig = time.perf_counter() - t
        est = np.array([estimate(sk[a], sk[b]) for a, b in pairs])
        t = time.perf_counter()
        candidates = build_query(sk)
        t_lsh = time.perf_counter() - t
        hit = [b in candidates.get(a, ()) or a in candidates.get(b, ())
               for a, b in pairs if jaccard(sets[a], sets[b]) >= threshold]
        results.append({"library": name, "n": n, "bands": bands, "rows": rows,
                        "signatures_per_s": n / t_sig, "lsh_per_s": n / t_lsh,
                        "jaccard_mae": float(np.mean(np.abs(est - true))) if len(pairs) else None,
                        "pair_recall": float(np.mean(hit)) if hit else None})

    def rensa_sketch():
        return rensa.RMinHash.from_token_sets(sets, perms, 0)

    def rensa_lsh(sk):
        index = rensa.RMinHashLSH(threshold, perms, bands)
        out = {}
        for i, h in enumerate(sk):
            out[i] = set(index.query(h))
            index.insert(i, h)
        return out

    measure("rensa", rensa_sketch, lambda a, b: a.jaccard(b), rensa_lsh)

    def ds_sketch():
        return datasketch.MinHash.bulk([[s.encode() for s in x] for x in sets], num_perm=perms,
                                       seed=1)

    def ds_lsh(sk):
        index = datasketch.MinHashLSH(num_perm=perms, params=(bands, rows))
        out = {}
        for i, h in enumerate(sk):
            out[i] = set(index.query(h))
            index.insert(i, h)
        return out

    measure(f"datasketch {datasketch.__version__}", ds_sketch, lambda a, b: a.jaccard(b), ds_lsh)
    return results


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--exact", type=float, default=0.05, help="fraction of exact copies")
    ap.add_argument("--near", type=float, default=0.05, help="fraction of near copies")
    ap.add_argument("--threshold", type=float, default=0.8)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--compare", type=int, default=0, help="records for datasketch vs rensa")
    ap.add_argument("--semantic", type=int, default=0, help="vectors for semantic dedup")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    if args.compare:
        try:
            import datasketch  # noqa: F401
            import rensa  # noqa: F401
        except ImportError as e:
            sys.exit(f"--compare needs datasketch and rensa ({e}); install the bench extra: "
                     "pip install -e '.[bench]' (scripts/setup.sh does)")
    info = machine(peak=False)
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / f"dedup_pool_{args.n}.jsonl"
    n_exact, n_near = round(args.exact * args.n), round(args.near * args.n)
    t = time.perf_counter()
    meta = generate(path, args.n, n_exact, n_near, args.seed)
    print(f"generated {args.n} records in {time.perf_counter() - t:.1f}s: {path}",
          file=sys.stderr)
    exact_groups = meta["exact_groups"]
    near_above = {g for g, j in meta["near_jaccard"].items() if j >= args.threshold}
    sims = list(meta["near_jaccard"].values())
    rows = []
    for method in ("exact", "near"):
        runs = [run_child(path, method, args.threshold) for _ in range(args.repeats)]
        secs = statistics.median(r["seconds"] for r in runs)
        last = runs[-1]
        found = set(last["found_groups"])
        expected = exact_groups if method == "exact" else exact_groups | near_above
        rows.append({
            "method": method, "n": args.n, "seconds": secs, "records_per_s": args.n / secs,
            "runs": [r["seconds"] for r in runs], "dropped": last["dropped"],
            "planted_pairs": len(expected), "recall": len(found & expected) / len(expected),
            "precision": last["correct"] / last["dropped"] if last["dropped"] else 1.0,
            "peak_rss_gib": last["peak_rss_kib"] / 2**20,
            "method_rss_gib": (last["peak_rss_kib"] - last["base_rss_kib"]) / 2**20,
        })
    if args.semantic:
        runs = [run_semantic(args.semantic, args.seed) for _ in range(args.repeats)]
        secs = statistics.median(r["seconds"] for r in runs)
        last = runs[-1]
        rows.append({
            "method": "semantic (cosine 0.95)", "n": args.semantic, "seconds": secs,
            "records_per_s": args.semantic / secs, "runs": [r["seconds"] for r in runs],
            "dropped": last["dropped"], "planted_pairs": last["planted"],
            "recall": last["found"] / last["planted"],
            "precision": last["correct"] / last["dropped"] if last["dropped"] else 1.0,
            "peak_rss_gib": last["peak_rss_kib"] / 2**20,
            "method_rss_gib": (last["peak_rss_kib"] - last["base_rss_kib"]) / 2**20,
        })
    compare = compare_libraries(path, args.compare, args.threshold) if args.compare else []
    path.unlink()
    command = " ".join(["python", "benchmarks/bench_dedup.py", *sys.argv[1:]])
    doc = {"command": command, "machine": {**info, "platform": platform.platform(),
                                           "python": platform.python_version()},
           "planted": {"exact": n_exact, "near": n_near,
                       "near_at_or_above_threshold": len(near_above),
                       "near_jaccard_min": float(np.min(sims)),
                       "near_jaccard_median": float(np.median(sims))},
           "threshold": args.threshold, "results": rows, "libraries": compare}
    (OUT / f"bench_dedup_{args.n}.json").write_text(json.dumps(doc, indent=2))
    print(f"\n{header(info)}\n")
    print(f"{args.n} records, {n_exact} exact and {n_near} near copies planted "
          f"({len(near_above)} of the near at Jaccard >= {args.threshold}; median "
          f"{doc['planted']['near_jaccard_median']:.3f}).\n")
    print("| method | records | seconds (median) | records/s | recall | precision | "
          "peak RSS GiB | added by method GiB |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['method']} | {r['n']:,} | {r['seconds']:.1f} | {r['records_per_s']:,.0f} | "
              f"{r['recall']:.4f} | {r['precision']:.4f} | {r['peak_rss_gib']:.2f} | "
              f"{r['method_rss_gib']:.2f} |")
    if compare:
        print(f"\nMinHash + LSH libraries on {args.compare} records "
              f"({compare[0]['bands']} bands x {compare[0]['rows']} rows):\n")
        print("| library | signatures/s | LSH insert+query/s | Jaccard MAE | pair recall |")
        print("|---|---|---|---|---|")
        for r in compare:
            print(f"| {r['library']} | {r['signatures_per_s']:,.0f} | {r['lsh_per_s']:,.0f} | "
                  f"{r['jaccard_mae']:.4f} | {r['pair_recall']:.4f} |")
    print(f"\ncommand: {command}")
    print(f"json: {OUT / f'bench_dedup_{args.n}.json'}")


if __name__ == "__main__":
    main()

"""Fixed selection runs whose selections and scores are kept as files in
``tests/fixtures/regression``: a refactoring must reproduce them.

``python tests/regression_cases.py`` rewrites the files from the code as it is (do that only
when a change of results is intended, and say why in the commit).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from winnow.data import load_pool
from winnow.recipes.runner import run_recipe
from winnow.store import Store

FIXTURES = Path(__file__).parent / "fixtures" / "regression"
SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"

# fp32 everywhere: bf16 kernels differ between CPU kinds (AVX-512 BF16 vs AMX)
LESS_TINY = {"lora_r": 2, "lora_alpha": 8, "warmup_fraction": 0.5, "warmup_epochs": 2,
             "grad_accum": 2, "max_length": 192, "proj_dim": 64}
CHERRY_TINY = {"n_clusters": 3, "pre_budget": 6, "max_length": 128, "dtype": "fp32",
               "train": {"max_steps": 2, "per_device_train_batch_size": 2, "cutoff_len": 64,
                         "lora_rank": 2, "lora_target": "q_proj,v_proj",
                         "learning_rate": 1e-3}}


def _mixed_sample(data: Path, per_domain: int) -> list[int]:
    rows = [json.loads(line) for line in
            (data / "mixed_pool.jsonl").read_text(encoding="utf-8").splitlines()]
    seen: dict[str, int] = {}
    picked = []
    for i, r in enumerate(rows):
        if seen.get(r["domain"], 0) < per_domain:
            seen[r["domain"]] = seen.get(r["domain"], 0) + 1
            picked.append(i)
    return picked


def run_case(name: str, data: Path, store: Store):
    """One fixed run: (result, trained) where trained says whether a model was fine-tuned."""
    alpaca = load_pool(data / "alpaca_en_demo.json")
    if name == "ifd":
        return run_recipe("ifd", alpaca.subset(range(40)), 8, store=store,
                          params={"max_length": 256, "dtype": "fp32"}), False
    if name == "quality":
        mixed = load_pool(data / "mixed_pool.jsonl")
        return run_recipe("quality", mixed.subset(_mixed_sample(data, 5)), 8, store=store,
                          params={"max_length": 256, "dtype": "fp32"}), False
    if name == "kcenter":
        return run_recipe("kcenter", alpaca.subset(range(200)), 10, store=store, seed=3), False
    if name == "less":
        mixed = load_pool(data / "mixed_pool.jsonl")
        rows = [1, 5, 2200, 2500, 2800, 2300, 3200, 3201, 3210, 3250, 1000, 2000]
        target = load_pool(data / "targets" / "mmlu_heldout_subjects.jsonl")
        return run_recipe("less", mixed.subset(rows), 3, params=LESS_TINY, store=store,
                          target=target.subset([0, 1, 5, 6])), True
    if name == "cherry":
        return run_recipe("cherry", alpaca.subset(range(24)), 4, store=store,
                          params=CHERRY_TINY), True
    raise ValueError(name)


CASES = ("ifd", "quality", "kcenter", "less", "cherry")


def snapshot(result) -> dict:
    """Selections, per-example scalar columns and the stage each example left at."""
    cols = {k: [None if np.isnan(x) else float(x) for x in np.asarray(v, dtype=np.float64)]
            for k, v in sorted(result.scalar_columns().items())}
    return {"selected": [int(i) for i in result.selected], "columns": cols,
            "left_stage": [int(x) for x in result.left_stage]}


def main(out: Path = FIXTURES) -> None:
    import tempfile

    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(Path(tmp))
        for name in sys.argv[1:] or CASES:
            result, _ = run_case(name, SHARED_DATA, store)
            (out / f"{name}.json").write_text(json.dumps(snapshot(result), indent=0) + "\n")
            print(name, len(result.selected), "selected")


if __name__ == "__main__":
    main()

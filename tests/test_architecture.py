"""The layers of DESIGN.md hold (read from the imports), every method works from every
entry point and composes with other stages, and a wrong recipe fails fast."""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from winnow.data import load_pool
from winnow.recipes.recipe import Recipe
from winnow.recipes.runner import run_recipe
from winnow.store import Store

SRC = Path(__file__).resolve().parents[1] / "src" / "winnow"
TINY_TRAIN = {"max_steps": 2, "per_device_train_batch_size": 2, "cutoff_len": 64,
              "lora_rank": 2, "lora_target": "q_proj,v_proj", "learning_rate": 1e-3}
CHERRY_TINY = {"n_clusters": 3, "pre_budget": 6, "max_length": 128, "dtype": "fp32",
               "train": TINY_TRAIN}
ALL = {"cli", "report", "evaluate", "recipes", "train", "signals", "models", "selectors",
       "dedup", "metrics", "store", "data", "executors"}
# layer -> the winnow layers it must not import (DESIGN.md, "Layers and what each may touch")
FORBIDDEN = {
    "train": {"recipes", "evaluate", "report", "cli"},
    "signals": {"train", "recipes", "evaluate", "report", "cli"},
    "models": {"signals", "train", "recipes", "evaluate", "report", "cli", "selectors"},
    "selectors": ALL - {"selectors"},
    "evaluate": {"recipes", "report", "cli", "signals"},
    "report": {"recipes", "evaluate", "train", "signals", "models", "cli"},
    "data": ALL - {"data"},
    "store": ALL - {"store"},
}


def _imports(path: Path) -> set[str]:
    """winnow modules a file imports, statically or by a "winnow.x" string."""
    text = path.read_text()
    names = set()
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    names |= set(re.findall(r"['\"](winnow\.[a-z_.]+)", text))
    return {n for n in names if n.startswith("winnow.")}


def test_no_module_imports_a_layer_its_row_of_the_layer_table_forbids():
    bad = []
    for path in sorted(SRC.rglob("*.py")):
        parts = path.relative_to(SRC).parts
        if len(parts) < 2 or parts[0] not in FORBIDDEN:
            continue
        for name in _imports(path):
            if name.split(".")[1] in FORBIDDEN[parts[0]]:
                bad.append(f"{path.relative_to(SRC)} imports {name}")
    assert not bad, "\n".join(bad)


def test_the_layer_check_catches_a_forbidden_import(tmp_path):
    """The reader above sees both import statements and importlib strings."""
    f = tmp_path / "x.py"
    f.write_text("import winnow.recipes.runner\nfrom winnow.evaluate import target\n"
                 "NAME = 'winnow.report.plots'\n")
    assert _imports(f) == {"winnow.recipes.runner", "winnow.evaluate", "winnow.report.plots"}


def test_no_gradients_package_and_no_entry_points_for_built_in_code():
    assert not (SRC / "gradients").exists()
    assert "entry-points" not in (SRC.parents[1] / "pyproject.toml").read_text()


def _planted_pool(shared_data, tmp_path) -> tuple[Path, list[dict]]:
    records = json.loads((shared_data / "alpaca_en_demo.json").read_text())[:24]
    planted = records + [dict(records[3]), dict(records[10])]  # two exact copies
    path = tmp_path / "pool.json"
    path.write_text(json.dumps(planted))
    return path, planted


def test_exact_dedup_then_cherry_drops_the_copies_then_runs_cherry_on_the_rest(
        shared_data, tmp_path):
    path, records = _planted_pool(shared_data, tmp_path)
    pool = load_pool(path)
    recipe = Recipe.from_dict({"name": "dedup-cherry", "params": {"cherry": CHERRY_TINY},
                               "stages": [{"dedup": "exact"},
                                          {"recipe": "cherry", "params": "{cherry}"}]})
    result = run_recipe(recipe, pool, 4, store=Store(tmp_path / "cache"))
    fates = result.fates
    assert [i for i, f in enumerate(fates) if f["reason"] == "duplicate"] == [24, 25]
    assert fates[24]["detail"]["of"] == pool.ids[3]
    assert fates[25]["detail"]["of"] == pool.ids[10]
    assert len(result.selected) == 4 and not set(result.selected.tolist()) & {24, 25}
    # the cherry stage's choice is cherry's own choice on the de-duplicated pool
    alone = run_recipe("cherry", pool.subset(range(24)), 4, params=CHERRY_TINY,
                       store=Store(tmp_path / "cache"))
    assert result.selected.tolist() == alone.selected.tolist()
    np.testing.assert_allclose(result.columns["ifd"][:24], alone.columns["ifd"], rtol=1e-6)
    assert np.isnan(result.columns["ifd"][24:]).all()
    dropped = [f for f in fates[:24] if f["stage"] == 1]
    assert dropped and all(f["kind"] == "recipe" and f["reason"] == "sub-recipe"
                           and f["detail"]["recipe"] == "cherry" for f in dropped)


def test_evaluate_method_cherry_selects_with_the_recipe_then_trains(shared_data, tmp_path):
    import yaml

    path, _ = _planted_pool(shared_data, tmp_path)
    target_lines = (shared_data / "targets" / "mmlu_heldout_subjects.jsonl").read_text(
        encoding="utf-8").splitlines()[:4]
    target = tmp_path / "target.jsonl"
    target.write_text("\n".join(target_lines) + "\n", encoding="utf-8")
    sets = [a for k, v in {"n_clusters": 3, "pre_budget": 6, "max_length": 128,
                           "dtype": "fp32"}.items() for a in ("--param", f"{k}={v}")]
    sets += [a for k, v in TINY_TRAIN.items() for a in ("--param", f"train.{k}={v}")]
    out = tmp_path / "eval"
    proc = subprocess.run(
        [sys.executable, "-m", "winnow.cli", "evaluate", "--pool", str(path), "--target",
         str(target), "--method", "cherry", "--budget", "4", *sets, "--out", str(out),
         "--steps", "1", "--seeds", "1", "--set", "cutoff_len=64", "--set", "lora_rank=2",
         "--set", "lora_target=q_proj,v_proj", "--set", "per_device_train_batch_size=2",
         "--cache-dir", str(tmp_path / "cache")], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads((out / "evaluate.json").read_text())
    assert {r["arm"] for r in summary["rows"]} == {"cherry", "random"}
    assert [(r["arm"], r["n_train"]) for r in summary["runs"]] == [("cherry", 4),
                                                                    ("random", 4)]
    assert yaml.safe_load((out / "command.json").read_text())["method"] == "cherry"


def test_a_typo_in_a_selector_option_exits_2_within_5_seconds_naming_file_and_key(
        shared_data, tmp_path):
    recipe = tmp_path / "typo.yaml"
    recipe.write_text(
        "name: typo\n"
        "signals:\n  lm: {signal: lm_scores, model: default}\n"
        "  emb: {signal: embedding}\n"
        "stages:\n  - filter: 'ifd < 1'\n"
        "  - select: kcenter\n    inputs: {X: embedding}\n    n_grups: 4\n")
    cache = tmp_path / "cache"
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "winnow.cli", "select", str(recipe), "--data",
         str(shared_data / "alpaca_en_demo.json"), "--budget", "5", "--out",
         str(tmp_path / "s.json"), "--cache-dir", str(cache)],
        capture_output=True, text=True)
    seconds = time.perf_counter() - start
    assert proc.returncode == 2, proc.stderr
    assert str(recipe) in proc.stderr and "stages[1].n_grups" in proc.stderr
    assert "did you mean 'n_groups'" in proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    assert seconds < 5, seconds
    assert not cache.exists() or not any(cache.rglob("*.npy"))  # nothing was computed


@pytest.mark.parametrize("recipe, key, message", [
    ({"signals": {"lm": {"signal": "lm_scores", "model": "{modle}"}},
      "stages": [{"top": "ifd"}]}, "signals.lm.model", "placeholder {modle}"),
    ({"signals": {"lm": {"signal": "lm_scores", "max_lenght": 10}},
      "stages": [{"top": "ifd"}]}, "signals.lm.max_lenght", "no parameter"),
    ({"signals": {"lm": {"signal": "lm_scores"}}, "stages": [{"top": "idf"}]},
     "stages[0]", "column 'idf'"),
    ({"signals": {"l": {"signal": "less", "checkpoints": ["x"]}}, "stages": [{"top": "less"}]},
     "signals.l", "needs a target"),
    ({"stages": [{"top": "score", "kep": 3}]}, "stages[0].kep", "takes keep"),
    ({"stages": [{"dedup": "exact"}]}, "stages[0]", "must choose"),
    ({"signals": {"e": {"signal": "embedding"}},
      "stages": [{"select": "kcenter", "inputs": {"Y": "embedding"}}]},
     "stages[0]", "has no input 'Y'"),
    ({"artifacts": {"w": {"kind": "lora-warmup", "epochz": 1}},
      "signals": {"l": {"signal": "less", "checkpoints": "@w.checkpoints"}},
      "stages": [{"top": "less"}]}, "artifacts.w.epochz", "takes"),
])
def test_recipe_mistakes_are_found_before_any_compute(recipe, key, message):
    from winnow.data.pool import Pool, Source
    from winnow.recipes.validate import RecipeError, validate

    pool = Pool(ids=["e0"], conversations=[[{"role": "user", "content": "a"},
                                            {"role": "assistant", "content": "b"}]],
                records=[{}], source=Source("mem", "jsonl", "alpaca"), extra={"score": [1.0]})
    with pytest.raises(RecipeError, match=re.escape(f"recipe t.yaml: {key}: ") + ".*"
                       + re.escape(message)):
        validate(Recipe.from_dict({"name": "t", **recipe}, path="t.yaml"), pool=pool)

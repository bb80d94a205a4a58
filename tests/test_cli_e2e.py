"""End to end through the ``winnow`` command line, on small samples of the real data with the
built-in models: ``demo``, ``diversity``, ``evaluate``, and ``select`` with the recipes
superfilter, superfilter-d, deita, cherry-pre and nice (rule reward). Each checks what the
command wrote: subset size, subset records taken verbatim from the pool in its format, the
scores file's columns, the manifest, and the rule the recipe states, recomputed here."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from winnow.cli import app


def invoke(*args) -> str:
    result = CliRunner().invoke(app, [str(a) for a in args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def column(rows: list[dict], name: str) -> np.ndarray:
    return np.array([np.nan if r[name] is None else r[name] for r in rows], dtype=np.float64)


@pytest.fixture(scope="module")
def short_alpaca(shared_data, tmp_path_factory) -> tuple[Path, list[dict]]:
    """24 short real Alpaca records (each fits in 256 tokens), four of them given the answer
    of another record (mismatched, as in real noisy data), as an Alpaca JSON file."""
    records = json.loads((shared_data / "alpaca_en_demo.json").read_text(encoding="utf-8"))
    records = [r for r in records[:300] if len(json.dumps(r)) < 600][:24]
    records = [dict(r, output=records[(k + 7) % 24]["output"]) if k in (1, 3, 9, 11) else r
               for k, r in enumerate(records)]
    path = tmp_path_factory.mktemp("short") / "pool.json"
    path.write_text(json.dumps(records, ensure_ascii=False, indent=1), encoding="utf-8")
    return path, records


def check_run(out: Path, pool: list[dict], budget: int, recipe: str,
              columns: tuple[str, ...] = (), size: int | None = None) -> list[dict]:
    """The outputs of ``winnow select ... --out out``: ``budget`` (or ``size``) distinct
    records of the pool, verbatim, in pool order; a scores row per pool record (``columns``
    present), whose ``selected`` flags name the subset; a manifest naming the recipe and the
    budget. Returns the rows."""
    subset = json.loads(out.read_text(encoding="utf-8"))
    budget, asked = (budget if size is None else size), budget
    assert len(subset) == budget
    positions = [pool.index(r) for r in subset]  # ValueError if a record is not the pool's
    assert positions == sorted(set(positions))
    rows = read_jsonl(out.with_suffix(".scores.jsonl"))
    assert len(rows) == len(pool) and [r["selected"] for r in rows].count(True) == budget
    assert [k for k, r in enumerate(rows) if r["selected"]] == positions
    for c in columns:
        assert all(c in r for r in rows), c
    manifest = json.loads(out.with_suffix(".manifest.json").read_text())
    assert manifest["recipe"]["name"] == recipe and manifest["selected"] == budget
    assert manifest["budget"] == asked
    assert manifest["pool"]["n"] == len(pool)
    return rows


def test_demo_on_a_sample_of_the_builtin_pool(tmp_path, monkeypatch):
    """`winnow demo` (IFD on the built-in pool with the built-in model) on 40 of its
    records, broken kinds included: 20% selected, all with IFD < 1 and the highest IFD of
    the eligible ones; the issue table is printed."""
    import winnow.demo
    from winnow.data.demo import demo_pool_path

    lines = demo_pool_path().read_text(encoding="utf-8").splitlines()
    kinds: dict[str, list[str]] = {}
    for line in lines:
        kinds.setdefault(json.loads(line).get("issue", ""), []).append(line)
    sample = kinds[""][:28] + [line for k in sorted(kinds) if k for line in kinds[k][:4]]
    assert len(sample) == 40
    pool_file = tmp_path / "demo_pool.jsonl"
    pool_file.write_text("\n".join(sample) + "\n", encoding="utf-8")
    monkeypatch.setattr(winnow.demo, "demo_pool_path", lambda: pool_file)
    out = tmp_path / "demo"
    text = invoke("demo", "--out", out, "--cache-dir", tmp_path / "cache")
    assert "How IFD treats clean and broken examples" in text and "mismatched" in text
    subset = read_jsonl(out / "subset.jsonl")
    records = [json.loads(line) for line in sample]
    assert len(subset) == 8 and all(r in records for r in subset)
    rows = read_jsonl(out / "scores.jsonl")
    assert [r["id"] for r in rows] == [r["id"] for r in records]
    ifd, loss = column(rows, "ifd"), column(rows, "loss")
    scored = column(rows, "response_tokens") > 0  # an empty answer has no loss
    assert scored.sum() >= 36 and (np.isfinite(loss) == scored).all() and (loss[scored] > 0).all()
    chosen = np.array([r["selected"] for r in rows])
    eligible = np.isfinite(ifd) & (ifd < 1) & ~np.array([r["truncated"] for r in rows])
    assert eligible[chosen].all() and ifd[chosen].min() >= ifd[eligible & ~chosen].max()
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["recipe"]["name"] == "ifd" and manifest["selected"] == 8


def test_diversity_metrics_file(short_alpaca, tmp_path, monkeypatch):
    """`winnow diversity`: every metric written and finite; a set covers itself fully
    (coverage 1) and half of it covers less of the whole."""
    monkeypatch.setenv("WINNOW_CACHE_DIR", str(tmp_path / "cache"))
    path, records = short_alpaca
    half = tmp_path / "half.json"
    half.write_text(json.dumps(records[:12]), encoding="utf-8")
    invoke("diversity", "--data", path, "--reference", path, "--out", tmp_path / "self.json")
    invoke("diversity", "--data", half, "--reference", path, "--out", tmp_path / "half.json.m")
    whole = json.loads((tmp_path / "self.json").read_text())
    part = json.loads((tmp_path / "half.json.m").read_text())
    assert whole["data"] == str(path) and whole["reference"] == str(path)
    keys = {"n", "ttr", "vocd_d", "dist_sum", "knn_distance", "partition_entropy",
            "partition_entropy_normalized", "novelsum", "coverage"}
    for m in (whole["metrics"], part["metrics"]):
        assert set(m) == keys and all(math.isfinite(v) for v in m.values())
    assert whole["metrics"]["n"] == 24 and part["metrics"]["n"] == 12
    assert whole["metrics"]["coverage"] == pytest.approx(1.0, abs=1e-5)
    assert 0 < part["metrics"]["coverage"] < whole["metrics"]["coverage"] - 1e-3
    assert 0 < whole["metrics"]["ttr"] < 1 and whole["metrics"]["dist_sum"] > 0


def test_evaluate_a_subset_tiny(short_alpaca, shared_data, tmp_path):
    """`winnow evaluate --subset`: the subset and a random subset of the same size are each
    trained 2 steps and scored on the target; table, figure and command written."""
    path, records = short_alpaca
    subset = tmp_path / "subset.json"
    subset.write_text(json.dumps(records[:6]), encoding="utf-8")
    target_lines = (shared_data / "targets" / "mmlu_heldout_subjects.jsonl").read_text(
        encoding="utf-8").splitlines()[:4]
    target = tmp_path / "target.jsonl"
    target.write_text("\n".join(target_lines) + "\n", encoding="utf-8")
    out = tmp_path / "eval"
    invoke("evaluate", "--pool", path, "--target", target, "--subset", subset, "--out", out,
           "--steps", "2", "--seeds", "1", "--set", "cutoff_len=64", "--set", "lora_rank=2",
           "--set", "lora_target=q_proj,v_proj", "--set", "per_device_train_batch_size=2")
    for name in ("evaluate.json", "evaluate.md", "evaluate.png", "command.json"):
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    summary = json.loads((out / "evaluate.json").read_text())
    rows = {r["arm"]: r for r in summary["rows"]}
    assert set(rows) == {"subset", "random"}
    assert all(r["runs"] == 1 for r in rows.values())
    for r in rows.values():
        assert math.isfinite(r["target_loss_mean"]) and r["target_loss_mean"] > 0
        assert 0 <= r["accuracy_mean"] <= 1
    assert rows["subset"]["target_loss_vs_random"] == pytest.approx(
        rows["subset"]["target_loss_mean"] - rows["random"]["target_loss_mean"])
    assert [(r["arm"], r["n_train"], r["n_choice"]) for r in summary["runs"]] == [
        ("subset", 6, 4), ("random", 6, 4)]
    assert summary["n_pool"] == 24
    assert "| subset | 1 |" in (out / "evaluate.md").read_text()
    command = json.loads((out / "command.json").read_text())
    assert command["steps"] == 2 and command["seeds"] == 1 and command["subset"] == str(subset)


LM_SETS = ("--set", "max_length=256", "--set", "dtype=fp32")


def test_select_superfilter(short_alpaca, session_cache, tmp_path):
    """superfilter: IFD = PPL(a|q) / PPL(a) (checked against the ppl columns), IFD < 1 kept,
    the budget taken from the highest IFD."""
    path, pool = short_alpaca
    out = tmp_path / "sf.json"
    invoke("select", "superfilter", "--data", path, "--budget", "6", "--out", out, *LM_SETS,
           "--cache-dir", session_cache)
    rows = check_run(out, pool, 6, "superfilter", ("ifd", "ppl", "ppl_alone", "loss"))
    ifd, ppl, alone = column(rows, "ifd"), column(rows, "ppl"), column(rows, "ppl_alone")
    tiny = np.array([len(r["output"]) <= 4 for r in pool])  # e.g. "3": no token scored alone
    assert np.isfinite(ifd[~tiny]).all()  # every record fits in 256 tokens
    np.testing.assert_allclose(ifd, ppl / alone, rtol=1e-4, equal_nan=True)
    chosen = np.array([r["selected"] for r in rows])
    assert (ifd[chosen] < 1).all() and (ifd >= 1).any()
    assert ifd[chosen].min() >= ifd[(ifd < 1) & ~chosen].max()


def test_select_superfilter_d(short_alpaca, session_cache, tmp_path):
    """superfilter-d: IFD < 1, the highest IFD up to half the pool (the paper's "top 20%" is
    of the pool), then facility location on MiniLM embeddings down to the budget: the
    subset lies in that top."""
    path, pool = short_alpaca
    out = tmp_path / "sfd.json"
    invoke("select", "superfilter-d", "--data", path, "--budget", "4", "--out", out, *LM_SETS,
           "--set", "ifd_keep=50%", "--cache-dir", session_cache)
    rows = check_run(out, pool, 4, "superfilter-d", ("ifd", "ppl", "ppl_alone"))
    ifd = column(rows, "ifd")
    eligible = np.flatnonzero(ifd < 1)
    keep = min(len(pool) // 2, len(eligible))
    top = eligible[np.argsort(-ifd[eligible], kind="stable")][:keep]
    chosen = [k for k, r in enumerate(rows) if r["selected"]]
    assert keep > 4 and set(chosen) <= set(top.tolist())
    stages = json.loads(out.with_suffix(".manifest.json").read_text())["stages"]
    assert [(s["in"], s["out"]) for s in stages] == [(24, len(eligible)),
                                                     (len(eligible), keep), (keep, 4)]


def test_select_deita(short_alpaca, session_cache, tmp_path):
    """deita-columns with a score field: the walk goes down the score and skips an example whose
    embedding (SmolLM2's last hidden state) is within the cosine threshold of a kept one:
    a verbatim copy of the best-scored record is skipped, the next ones are kept."""
    path, records = short_alpaca
    scored = [dict(r, score=float(len(records) - k)) for k, r in enumerate(records)]
    scored.insert(1, dict(records[0], score=float(len(records)) - 0.5))  # copy of the best
    data = tmp_path / "scored.json"
    data.write_text(json.dumps(scored), encoding="utf-8")
    out = tmp_path / "deita.json"
    # threshold 0.999: SmolLM2's last-token states of different texts are within cosine
    # 0.99 of each other; a copy is at 1
    invoke("select", "deita-columns", "--data", data, "--budget", "5", "--out", out, "--set",
           "score=score", "--set", "complexity=null", "--set", "quality=null", "--set",
           "threshold=0.999", "--cache-dir", session_cache)
    rows = check_run(out, scored, 5, "deita-columns")
    assert [k for k, r in enumerate(rows) if r["selected"]] == [0, 2, 3, 4, 5]
    trace = json.loads(out.with_suffix(".manifest.json").read_text())["stages"][-1]["trace"]
    assert trace["examined"] == 6 and trace["skipped"] == 1
    assert "deita" in rows[1]["stage"]


def test_select_cherry_pre(short_alpaca, session_cache, tmp_path):
    """cherry-pre: k-means (3 clusters) on the LM's instruction embeddings; per cluster, as
    the official sample_middle_confidence_data (n = 2): a cluster of fewer than n gives all of
    its members, else those within its 25-75th percentile band of instruction perplexity,
    all of them when fewer than n, else n evenly spaced in pool order; no redistribution."""
    path, pool = short_alpaca
    out = tmp_path / "cp.json"
    invoke("select", "cherry-pre", "--data", path, "--budget", "6", "--out", out, "--set",
           "n_clusters=3", "--set", "max_length=256", "--set", "dtype=fp32",
           "--cache-dir", session_cache)
    labels = np.asarray(json.loads(out.with_suffix(".manifest.json").read_text())
                        ["stages"][-1]["trace"]["labels"])
    assert len(labels) == len(pool) and len(np.unique(labels)) == 3
    rows = read_jsonl(out.with_suffix(".scores.jsonl"))
    ppl = column(rows, "instruction_ppl")
    assert np.isfinite(ppl).all() and (ppl > 1).all()
    np.testing.assert_allclose(np.log(ppl), column(rows, "instruction_loss"), rtol=1e-4)
    n, expected, banded = 2, [], 0
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        if len(members) < n:
            expected += members.tolist()
            continue
        lo, hi = np.percentile(ppl[members], [25, 75])
        band = members[(ppl[members] >= lo) & (ppl[members] <= hi)]
        expected += (band if len(band) < n else band[::len(band) // n][:n]).tolist()
        banded += len(band) < len(members)
    assert banded >= 2  # the band rule left examples out in at least two clusters
    check_run(out, pool, 6, "cherry-pre", ("instruction_ppl", "instruction_loss"),
              size=len(expected))
    assert [k for k, r in enumerate(rows) if r["selected"]] == sorted(expected)


def test_select_nice_with_rule_reward(shared_data, tmp_path):
    """nice with the exact-match rule: a tiny LESS warmup, Adam pool features, policy
    gradients of sampled answers to arithmetic questions scored by exact match; the subset
    is the top of a finite, non-constant nice column."""
    records = json.loads((shared_data / "alpaca_en_demo.json").read_text(encoding="utf-8"))
    pool = [r for r in records[:200] if len(json.dumps(r)) < 400][:8]
    data = tmp_path / "pool.json"
    data.write_text(json.dumps(pool), encoding="utf-8")
    target = tmp_path / "target.jsonl"
    target.write_text("".join(json.dumps({"instruction": q, "input": "", "output": a}) + "\n"
                              for q, a in [("What is 2 + 3? Reply with the number.", "5"),
                                           ("What is 4 + 4? Reply with the number.", "8"),
                                           ("What is 10 - 7? Reply with the number.", "3")]))
    out = tmp_path / "nice.json"
    sets = {"warmup_fraction": 0.5, "warmup_epochs": 1, "grad_accum": 2, "lora_r": 2,
            "lora_alpha": 8, "max_length": 128, "proj_dim": 64, "mc_samples": 2,
            "max_new_tokens": 8, "max_prompt_length": 64}
    invoke("select", "nice", "--data", data, "--target", target, "--budget", "3", "--out", out,
           *[a for k, v in sets.items() for a in ("--set", f"{k}={v}")],
           "--cache-dir", tmp_path / "cache")
    rows = check_run(out, pool, 3, "nice", ("nice",))
    nice = column(rows, "nice")
    assert np.isfinite(nice).all() and np.ptp(nice) > 0
    chosen = np.array([r["selected"] for r in rows])
    assert nice[chosen].min() >= nice[~chosen].max()
    assert (np.abs(nice) <= 1 + 1e-3).all()

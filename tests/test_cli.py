"""End-to-end CLI runs on real data with the built-in model."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from winnow.cli import app

runner = CliRunner()


def invoke(*args: str):
    result = runner.invoke(app, [str(a) for a in args], catch_exceptions=False)
    return result


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_methods_lists_recipes():
    result = invoke("methods")
    assert result.exit_code == 0
    for name in ("ifd", "superfilter", "perplexity", "uncertainty", "random"):
        assert name in result.stdout


@pytest.mark.parametrize("scores_name", ["sc.jsonl"])
def test_select_ifd_alpaca(alpaca80, session_cache, tmp_path, scores_name):
    """`winnow select ifd` on 81 real Alpaca records: 10% of them, verbatim and in pool
    order, the highest IFD among those under 1; a scores row per record; the manifest."""
    src = alpaca80
    out, scores = tmp_path / "s.json", tmp_path / scores_name
    result = invoke("select", "ifd", "--data", src, "--budget", "10%", "--out", out,
                    "--scores", scores, "--cache-dir", session_cache)
    assert result.exit_code == 0, result.output
    pool = json.loads(src.read_text(encoding="utf-8"))
    subset = json.loads(out.read_text(encoding="utf-8"))
    assert len(subset) == 8
    last = -1
    for rec in subset:  # each record found after the previous one: pool order kept
        last = pool.index(rec, last + 1)
    rows = read_jsonl(scores)
    assert len(rows) == 81
    chosen = [r for r in rows if r["selected"]]
    assert len(chosen) == 8
    assert all(r["ifd"] < 1 for r in chosen)
    worst_chosen = min(r["ifd"] for r in chosen)
    dropped = [r for r in rows if not r["selected"] and r["ifd"] is not None and r["ifd"] < 1
               and not r["truncated"]]
    assert all(r["ifd"] <= worst_chosen for r in dropped), "top IFD among those kept"
    manifest = json.loads((tmp_path / "s.manifest.json").read_text())
    assert manifest["recipe"]["name"] == "ifd" and manifest["selected"] == 8
    assert manifest["pool"]["n"] == 81 and manifest["pool"]["sha256"]


def _small_copy(shared_data: Path, name: str, tmp_path: Path, n: int = 24) -> Path:
    records = json.loads((shared_data / name).read_text(encoding="utf-8"))[:n]
    path = tmp_path / name
    path.write_text(json.dumps(records, ensure_ascii=False, indent=2), encoding="utf-8")
    return path


def test_select_sharegpt_multiturn(shared_data, session_cache, tmp_path):
    src = _small_copy(shared_data, "glaive_toolcall_en_demo.json", tmp_path, n=12)
    out = tmp_path / "out.json"
    result = invoke("select", "ifd", "--data", src, "--budget", "5", "--out", out,
                    "--cache-dir", session_cache)
    assert result.exit_code == 0, result.output
    pool = json.loads(src.read_text(encoding="utf-8"))
    subset = json.loads(out.read_text(encoding="utf-8"))
    assert 1 <= len(subset) <= 5 and all(rec in pool for rec in subset)


def test_select_messages_jsonl(shared_data, session_cache, tmp_path):
    lines = (shared_data / "v1_sft_demo.jsonl").read_text(encoding="utf-8").splitlines()[:24]
    src = tmp_path / "m.jsonl"
    src.write_text("\n".join(lines) + "\n", encoding="utf-8")
    out = tmp_path / "out.jsonl"
    result = invoke("select", "perplexity", "--data", src, "--budget", "25%", "--out", out,
                    "--cache-dir", session_cache)
    assert result.exit_code == 0, result.output
    got = out.read_text(encoding="utf-8").splitlines()
    assert len(got) == 6 and all(line in lines for line in got)


def test_select_parquet_and_score(shared_data, session_cache, tmp_path):
    records = json.loads((shared_data / "alpaca_en_demo.json").read_text(encoding="utf-8"))[:24]
    src = tmp_path / "p.parquet"
    pq.write_table(pa.Table.from_pylist(records), src)
    out = tmp_path / "out.parquet"
    result = invoke("select", "uncertainty", "--data", src, "--budget", "4", "--out", out,
                    "--set", "criterion=min_margin", "--cache-dir", session_cache)
    assert result.exit_code == 0, result.output
    subset = pq.read_table(out).to_pylist()
    assert len(subset) == 4 and all(rec in records for rec in subset)
    scores = tmp_path / "scores.parquet"
    result = invoke("score", "loss", "ppl", "ifd", "uncertainty", "--data", src, "--out", scores,
                    "--cache-dir", session_cache)
    assert result.exit_code == 0, result.output
    table = pq.read_table(scores).to_pydict()
    for col in ("id", "loss", "ppl", "ifd", "loss_alone", "entropy", "least_confidence",
                "mean_margin", "min_margin"):
        assert len(table[col]) == 24


def test_select_dataset_info_entry(shared_data, session_cache, tmp_path):
    records = json.loads((shared_data / "alpaca_en_demo.json").read_text(encoding="utf-8"))[:24]
    renamed = [{"q": r["instruction"], "ctx": r["input"], "a": r["output"]} for r in records]
    (tmp_path / "mine.json").write_text(json.dumps(renamed), encoding="utf-8")
    (tmp_path / "dataset_info.json").write_text(json.dumps({"mine": {
        "file_name": "mine.json",
        "columns": {"prompt": "q", "query": "ctx", "response": "a"}}}), encoding="utf-8")
    out = tmp_path / "out.json"
    result = invoke("select", "ifd", "--data", tmp_path / "dataset_info.json",
                    "--dataset", "mine", "--budget", "3", "--out", out,
                    "--cache-dir", session_cache)
    assert result.exit_code == 0, result.output
    subset = json.loads(out.read_text(encoding="utf-8"))
    assert 1 <= len(subset) <= 3 and all(rec in renamed for rec in subset)
    assert set(subset[0]) == {"q", "ctx", "a"}


def test_bad_input_exits_2_naming_place(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"instruction": "a", "output": "b"}\n{"instruction": "c", "output": \n',
                   encoding="utf-8")
    result = invoke("select", "random", "--data", bad, "--budget", "1", "--out",
                    tmp_path / "o.jsonl")
    assert result.exit_code == 2
    assert "bad.jsonl" in result.output and "line 2" in result.output
    assert not (tmp_path / "o.jsonl").exists()
    result = invoke("select", "random", "--data", bad, "--budget", "1", "--out",
                    tmp_path / "o.jsonl", "--on-error", "skip")
    assert result.exit_code == 0, result.output
    assert len((tmp_path / "o.jsonl").read_text().splitlines()) == 1


def test_unknown_method_and_param(tmp_path, tiny_alpaca):
    data = tiny_alpaca
    result = invoke("select", "nope", "--data", data, "--budget", "1")
    assert result.exit_code == 2 and "unknown method" in result.output
    result = invoke("select", "ifd", "--data", data, "--budget", "1", "--set", "foo=1")
    assert result.exit_code == 2 and "unknown parameters" in result.output


def test_config_file_and_default_outputs(tiny_alpaca, tmp_path):
    config = tmp_path / "run.yaml"
    config.write_text(f"method: random\ndata: {tiny_alpaca}\n"
                      f"budget: 7\nout: {tmp_path / 'r.json'}\nseed: 3\n", encoding="utf-8")
    result = invoke("select", "--config", config)
    assert result.exit_code == 0, result.output
    assert len(json.loads((tmp_path / "r.json").read_text(encoding="utf-8"))) == 7
    rows = read_jsonl(tmp_path / "r.scores.jsonl")
    assert len(rows) == 10 and sum(r["selected"] for r in rows) == 7
    assert json.loads((tmp_path / "r.manifest.json").read_text())["recipe"]["name"] == "random"
    config.write_text("method: random\nbogus: 1\n", encoding="utf-8")
    result = invoke("select", "--config", config)
    assert result.exit_code == 2 and "bogus" in result.output


def test_threshold_recipe_needs_no_budget_and_budget_recipe_does(shared_data, tmp_path):
    """A recipe whose last stage keeps a fixed amount (every example over a threshold, as
    AlpaGasus) runs without --budget and keeps exactly the examples over the threshold; a
    method whose size the budget decides exits 2 without one."""
    recipe = tmp_path / "long.yaml"
    recipe.write_text("name: long\nsignals:\n  n: {signal: text_length}\nstages:\n"
                      "  - filter: 'length >= 300'\n  - top: length\n    keep: '100%'\n")
    out = tmp_path / "long.json"
    data = shared_data / "alpaca_en_demo.json"
    result = invoke("select", recipe, "--data", data, "--out", out)
    assert result.exit_code == 0, result.output
    rows = read_jsonl(tmp_path / "long.scores.jsonl")
    over = [r["id"] for r in rows if r["length"] >= 300]
    assert 0 < len(over) < len(rows)
    assert sorted(r["id"] for r in rows if r["selected"]) == sorted(over)
    assert len(json.loads(out.read_text(encoding="utf-8"))) == len(over)
    result = invoke("select", "random", "--data", data, "--out", tmp_path / "r.json")
    assert result.exit_code == 2 and "--budget is required" in result.output


def test_set_values_are_yaml_scalars_and_exponent_numbers_are_floats():
    from winnow.cli.common import parse_sets

    got = parse_sets(["lr=1e-3", "a=2.0e-4", "n=3", "flag=true", "name=e5", "none=null"])
    assert got == {"lr": 0.001, "a": 0.0002, "n": 3, "flag": True, "name": "e5",
                   "none": None}

"""``winnow explain``: an example's stage, reason and signal values from a real run's files."""

from __future__ import annotations

import json

import pytest
import typer
from typer.testing import CliRunner

from winnow.cli import app as winnow_app
from winnow.cli_explain import explain_cmd, explain_example, load_run

runner = CliRunner()
explain_app = typer.Typer()
explain_app.command()(explain_cmd)

RECIPE = """
name: explain-test
stages:
  - dedup: exact
    prefer: "highest:q"
  - dedup: near
    threshold: 0.8
  - filter: "q >= 10"
  - top: q
"""


@pytest.fixture(scope="module")
def run_files(shared_data, tmp_path_factory):
    """A select run over 150 Alpaca records plus two planted copies, with a score field."""
    tmp = tmp_path_factory.mktemp("explain")
    records = json.loads((shared_data / "alpaca_en_demo.json").read_text())[:150]
    rows = [{**r, "q": float(k)} for k, r in enumerate(records)]
    copy = dict(rows[120], q=500.0)  # an exact copy scored higher: it is kept, 120 goes
    copy["output"] = copy["output"].upper()
    rows.append(copy)
    near = dict(rows[30], q=3.0)
    near["output"] = near["output"].replace(" ", "  ", 3) + " extra"
    rows.append(near)
    data = tmp / "pool.jsonl"
    data.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    recipe = tmp / "recipe.yaml"
    recipe.write_text(RECIPE)
    scores = tmp / "scores.jsonl"
    result = runner.invoke(winnow_app, ["select", str(recipe), "--data", str(data),
                                        "--budget", "5", "--out", str(tmp / "subset.jsonl"),
                                        "--scores", str(scores),
                                        "--cache-dir", str(tmp / "cache")],
                           catch_exceptions=False)
    assert result.exit_code == 0, result.output
    ids = [json.loads(line)["id"] for line in scores.read_text().splitlines()]
    return {"scores": scores, "manifest": tmp / "subset.manifest.json", "ids": ids}


def test_explain_exact_duplicate(run_files):
    rows, manifest = load_run(run_files["manifest"])
    ids = run_files["ids"]
    e = explain_example(rows, ids[120], manifest)
    assert not e.selected and e.stage == 0 and e.stage_label == "dedup exact"
    assert e.reason == f"exact duplicate of {ids[150]}"
    assert e.duplicate_of == ids[150] and e.duplicate_fate == "selected"
    assert e.signals == {"q": 120.0}
    assert [s["kind"] for s in e.chain] == ["dedup", "dedup", "filter", "top"]
    assert e.chain[0]["in"] == 152 and e.chain[0]["out"] == 151


def test_explain_near_duplicate_filter_and_selected(run_files):
    rows, _ = load_run(run_files["scores"])
    ids = run_files["ids"]
    e = explain_example(rows, ids[151])
    assert e.stage == 1 and e.duplicate_of == ids[30]
    assert e.reason.startswith(f"near-duplicate of {ids[30]} (jaccard 0.")
    assert explain_example(rows, ids[3]).stage_label == "filter q >= 10"
    top = explain_example(rows, ids[150])
    assert top.selected and top.rank == 0 and top.stage is None
    assert explain_example(rows, ids[140]).stage == 3  # passed the filter, not in the top 5


def test_explain_command_output(run_files):
    ids = run_files["ids"]
    result = runner.invoke(explain_app, [ids[120], "--run", str(run_files["manifest"])])
    assert result.exit_code == 0, result.output
    assert "dropped at stage 0 (dedup exact)" in result.output
    assert f"exact duplicate of {ids[150]}" in result.output
    assert "120" in result.output
    as_json = runner.invoke(explain_app, [ids[150][:10], "--run", str(run_files["scores"]),
                                          "--json"])
    assert as_json.exit_code == 0 and json.loads(as_json.output)["selected"] is True
    missing = runner.invoke(explain_app, ["nope", "--run", str(run_files["scores"])])
    assert missing.exit_code == 2 and "no example with id 'nope'" in missing.output


def test_explain_reads_csv_and_parquet(run_files, tmp_path):
    import pyarrow as pa
    import pyarrow.csv as pcsv
    import pyarrow.parquet as pq

    rows, _ = load_run(run_files["scores"])
    table = pa.Table.from_pylist(rows)
    pcsv.write_csv(table, tmp_path / "s.csv")
    pq.write_table(table, tmp_path / "s.parquet")
    ids = run_files["ids"]
    for name in ("s.csv", "s.parquet"):
        e = explain_example(load_run(tmp_path / name)[0], ids[120])
        assert e.stage == 0 and e.duplicate_of == ids[150]

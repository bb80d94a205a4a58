"""``winnow explain``: an example's stage, reason and signal values from a run's files (the
structured ``fate_*`` columns of the scores file and the manifest)."""

from __future__ import annotations

import json

import pytest
import typer
from typer.testing import CliRunner

from winnow.cli import app as winnow_app
from winnow.cli.explain import explain_cmd
from winnow.report.explain import explain_example, load_run

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
    for name in ("scores.jsonl", "scores.csv", "scores.parquet"):
        result = runner.invoke(winnow_app, ["select", str(recipe), "--data", str(data),
                                            "--budget", "5",
                                            "--out", str(tmp / f"subset-{name}.jsonl"),
                                            "--scores", str(tmp / name),
                                            "--cache-dir", str(tmp / "cache")],
                               catch_exceptions=False)
        assert result.exit_code == 0, result.output
    scores = tmp / "scores.jsonl"
    ids = [json.loads(line)["id"] for line in scores.read_text().splitlines()]
    return {"dir": tmp, "scores": scores, "manifest": tmp / "subset-scores.jsonl.manifest.json",
            "ids": ids}


def test_explain_exact_duplicate(run_files):
    rows, manifest = load_run(run_files["manifest"])
    ids = run_files["ids"]
    e = explain_example(rows, ids[120], manifest)
    assert not e.selected and e.stage == 0 and e.stage_label == "dedup exact"
    assert e.kind == "dedup" and e.reason == "duplicate" and e.detail["method"] == "exact"
    assert e.why() == f"exact duplicate of {ids[150]}"
    assert e.duplicate_of == ids[150] and e.duplicate_fate == "selected"
    assert e.signals == {"q": 120.0}
    assert [s["kind"] for s in e.chain] == ["dedup", "dedup", "filter", "top"]
    assert [s["label"] for s in e.chain] == ["dedup exact", "dedup near", "filter q >= 10",
                                             "top q"]
    assert e.chain[0]["in"] == 152 and e.chain[0]["out"] == 151


def test_explain_near_duplicate_filter_and_selected(run_files):
    rows, _ = load_run(run_files["scores"])
    ids = run_files["ids"]
    e = explain_example(rows, ids[151])
    assert e.stage == 1 and e.duplicate_of == ids[30] and e.reason == "duplicate"
    assert e.detail["method"] == "near" and 0.8 <= e.detail["jaccard"] <= 1
    assert e.why().startswith(f"near duplicate of {ids[30]} (jaccard 0.")
    filtered = explain_example(rows, ids[3])
    assert (filtered.stage, filtered.kind, filtered.reason) == (2, "filter", "filtered")
    assert filtered.detail == {"expression": "q >= 10"} and filtered.stage_label == "filter"
    top = explain_example(rows, ids[150])
    assert top.selected and top.rank == 0 and top.stage is None and top.reason is None
    assert top.detail == {} and top.why() is None
    ranked = explain_example(rows, ids[140])  # passed the filter, not in the top 5
    assert ranked.stage == 3 and ranked.reason == "ranked-out" and ranked.detail["by"] == "q"


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


def test_explain_reads_csv_and_parquet(run_files):
    """The same fates from the .csv and .parquet scores files (details as JSON strings)."""
    ids = run_files["ids"]
    for name in ("scores.csv", "scores.parquet"):
        rows, _ = load_run(run_files["dir"] / name)
        e = explain_example(rows, ids[120])
        assert e.stage == 0 and e.duplicate_of == ids[150] and e.reason == "duplicate"
        near = explain_example(rows, ids[151])
        assert near.stage == 1 and near.detail["of"] == ids[30]
        top = explain_example(rows, ids[150])
        assert top.selected and top.stage is None and top.reason is None and top.detail == {}


ROWS = [
    {"id": "a1", "q": 3.0, "selected": False, "rank": None,
     "stage": "stage 1 (top q): ranked out", "fate_stage": 1, "fate_kind": "top",
     "fate_reason": "ranked-out", "fate_detail": '{"by": "q", "value": 3.0, "cutoff": 7.5}'},
    {"id": "b2", "q": 9.0, "selected": True, "rank": 0, "stage": "selected",
     "fate_stage": None, "fate_kind": "", "fate_reason": "", "fate_detail": ""},
]
MANIFEST = {"stages": [
    {"stage": 0, "kind": "filter", "spec": {"filter": "q > 0"}, "in": 2, "out": 2},
    {"stage": 1, "kind": "top", "spec": {"top": "q", "keep": 1}, "in": 2, "out": 1}]}


def test_explain_from_fate_columns():
    """Fates as a .csv file holds them: detail a JSON string, empty cells for the selected."""
    e = explain_example(ROWS, "a", MANIFEST)
    assert (e.id, e.stage, e.kind, e.reason) == ("a1", 1, "top", "ranked-out")
    assert e.detail == {"by": "q", "value": 3.0, "cutoff": 7.5} and e.stage_label == "top q"
    assert e.why() == "ranked-out (by q, value 3, cutoff 7.5)"
    assert e.duplicate_of is None and e.signals == {"q": 3.0}
    assert [s["label"] for s in e.chain] == ["filter q > 0", "top q"]
    kept = explain_example(ROWS, "b2", MANIFEST)
    assert kept.selected and kept.stage is None and kept.kind is None and kept.detail == {}


def test_explain_command_from_fate_columns(tmp_path):
    scores = tmp_path / "scores.jsonl"
    rows = [{**ROWS[0], "fate_detail": {"of": "b2", "method": "semantic", "similarity": 0.97}},
            ROWS[1]]
    rows[0].update(fate_stage=0, fate_kind="dedup", fate_reason="duplicate")
    scores.write_text("".join(json.dumps(r) + "\n" for r in rows))
    result = runner.invoke(explain_app, ["a1", "--run", str(scores)])
    assert result.exit_code == 0, result.output
    assert "dropped at stage 0 (dedup)" in result.output
    assert "why: semantic duplicate of b2 (similarity 0.97)" in result.output
    assert "b2 (kept instead): selected" in result.output


def test_explain_needs_fate_columns(tmp_path):
    old = tmp_path / "old.jsonl"
    old.write_text(json.dumps({"id": "a", "selected": True, "rank": 0, "stage": "selected"}))
    result = runner.invoke(explain_app, ["a", "--run", str(old)])
    assert result.exit_code == 2 and "fate_stage" in result.output

"""`winnow plan`: per-stage estimates from a calibration on samples, against the real run."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from winnow.cli import app

RECIPE = """name: wordy
signals:
  n: {signal: text_length, unit: words}
  lm: {signal: lm_scores, scope: candidates, max_length: 256}
stages:
  - filter: "words >= 40"
  - top: ifd
"""


def invoke(*args):
    result = CliRunner().invoke(app, [str(a) for a in args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result


def test_plan_estimates_the_stages_and_knows_what_is_cached(shared_data, tmp_path):
    """The plan of a two-stage recipe (a word filter, then the model on what passes) on 60
    real Alpaca records: the examples reaching each stage and the model's tokens are
    close to the real run's; rerun after the real run, the plan finds the word counts
    cached and costs them nothing."""
    records = json.loads((shared_data / "alpaca_en_demo.json").read_text(encoding="utf-8"))
    data = tmp_path / "pool.json"
    data.write_text(json.dumps(records[:60]), encoding="utf-8")
    recipe = tmp_path / "wordy.yaml"
    recipe.write_text(RECIPE)
    cache = tmp_path / "cache"
    common = ("--data", data, "--budget", "5", "--cache-dir", cache)
    printed = invoke("plan", recipe, *common, "--sample", "8", "--json", tmp_path / "p.json")
    assert "calibrat" in printed.output and "about" in printed.output
    plan = json.loads((tmp_path / "p.json").read_text())
    invoke("select", recipe, *common, "--out", tmp_path / "s.json", "--no-report")
    manifest = json.loads((tmp_path / "s.manifest.json").read_text())
    rows = [json.loads(line) for line in (tmp_path / "s.scores.jsonl").read_text().splitlines()]
    actual_in = [s["in"] for s in manifest["stages"]]
    estimated_in = [s["examples_in"] for s in plan["stages"]]
    assert estimated_in[0] == actual_in[0] == 60
    assert abs(estimated_in[1] - actual_in[1]) <= 0.35 * actual_in[1], (estimated_in, actual_in)
    assert plan["stages"][1]["examples_out"] == 5
    lm = next(e for e in plan["stages"][1]["signals"] if e["name"] == "signal:lm")
    assert lm["rows"] == estimated_in[1] and not lm["cached"] and lm["seconds"] > 0
    tokens = sum((r.get("prompt_tokens") or 0) + (r.get("response_tokens") or 0) for r in rows)
    assert abs(lm["tokens"] - tokens) <= 0.5 * tokens, (lm["tokens"], tokens)
    invoke("plan", recipe, *common, "--sample", "8", "--json", tmp_path / "p2.json")
    again = json.loads((tmp_path / "p2.json").read_text())
    words = again["stages"][0]["signals"][0]
    assert words["name"] == "signal:n" and words["cached"] and words["seconds"] == 0

"""``winnow report``: the data shaping of the run report (funnel, cuts, either side of a cut,
duplicate groups, composition) on hand-made runs, the diversity a run records, and a real
``winnow select`` run on the mixed pool whose report is opened in headless Chromium.

Set ``WINNOW_REPORT_SCREENSHOT=docs/img/report.png`` to refresh the README's screenshot.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from winnow.cli import app
from winnow.data import load_pool
from winnow.recipes.outputs import run_diversity
from winnow.recipes.runner import run_recipe
from winnow.report import summary
from winnow.report.explain import read_rows
from winnow.report.html import manifest_path, report_path

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]
RECIPE = """
name: report-test
summary: "Cheap chain for the report test: dedup, length filter and cut, k-center."
signals:
  chars: {signal: text_length}
  words: {signal: text_length, text: response, unit: words}
  emb: {signal: embedding, text: instruction, scope: candidates}
stages:
  - dedup: exact
  - dedup: near
    threshold: 0.7
  - filter: "length >= 60 and words >= 3"
  - bottom: length
    keep: 40%
  - select: kcenter
    inputs: {X: embedding}
"""


def row(i, stage=None, reason=None, detail=None, **values):
    return {"id": f"e{i}", **values, "selected": stage is None, "rank": None, "stage": "",
            "fate_stage": stage, "fate_kind": None, "fate_reason": reason,
            "fate_detail": detail}


MANIFEST = {
    "pool": {"n": 6},
    "stages": [
        {"stage": 0, "kind": "dedup", "label": "dedup near", "spec": {"dedup": "near"},
         "in": 6, "out": 4, "seconds": 0.1, "trace": {}, "computed": []},
        {"stage": 1, "kind": "filter", "label": "filter ifd < 1 and 3 <= tokens",
         "spec": {"filter": "ifd < 1 and 3 <= tokens"}, "in": 4, "out": 3, "seconds": 2.0,
         "trace": {}, "computed": ["signal:lm"]},
        {"stage": 2, "kind": "top", "label": "top ifd", "spec": {"top": "ifd"}, "in": 3,
         "out": 2, "seconds": 0.0, "trace": {"by": "ifd", "keep": 2, "threshold": 0.5}},
    ],
    "timings": {"signal:lm": 1.9},
    "signal_runs": {"lm": {"rows": 4, "cached": False}},
    "signal_stats": {},
}
ROWS = [
    row(0, None, ifd=0.7, tokens=10),
    row(1, 0, "duplicate", {"of": "e0", "method": "near", "jaccard": 0.9}),
    row(2, 0, "duplicate", json.dumps({"of": "e0", "method": "near", "jaccard": 0.8})),
    row(3, 1, "filtered", {"expression": "ifd < 1"}, ifd=1.2, tokens=10),
    row(4, 2, "ranked-out", {"by": "ifd", "cutoff": 0.5}, ifd=0.2, tokens=2.0),
    row(5, None, ifd=0.5, tokens=7),
]


def test_funnel_counts_the_drops_of_each_stage_by_reason_and_names_what_it_computed():
    stages = summary.funnel(MANIFEST, ROWS)
    assert [(s["in"], s["out"], s["dropped"]) for s in stages] == [(6, 4, 2), (4, 3, 1),
                                                                   (3, 2, 1)]
    assert [s["reasons"] for s in stages] == [{"duplicate": 2}, {"filtered": 1},
                                              {"ranked-out": 1}]
    assert stages[1]["work"] == [{"name": "signal lm", "seconds": 1.9, "rows": 4,
                                  "cached": False, "stats": {}}]
    assert stages[0]["work"] == [] and stages[2]["work"] == []  # older manifests: none


def test_numeric_columns_are_the_signal_columns_holding_numbers():
    rows = [dict(r, text="a", flag=True) for r in ROWS]
    assert summary.numeric_columns(rows) == ["ifd", "tokens"]


def test_cuts_come_from_filter_comparisons_ranking_thresholds_and_band_quantiles():
    manifest = {"stages": [*MANIFEST["stages"],
                           {"stage": 3, "kind": "band", "label": "band", "spec": {},
                            "trace": {"by": "tokens", "low": 4.0, "high": 9.5}},
                           {"stage": 4, "kind": "rank", "label": "rank ifd", "spec": {},
                            "trace": {"by": "ifd", "order": "middle", "threshold": 0.01}},
                           {"stage": 5, "kind": "top", "label": "top 2 * ifd", "spec": {},
                            "trace": {"by": "2 * ifd", "threshold": 3.0}},
                           {"stage": 6, "kind": "filter", "label": "filter", "trace": {},
                            "spec": {"filter": "ifd < 2 * tokens or tokens1 > tokens"}}]}
    got = [(c["column"], c["value"], c["stage"]) for c in summary.cuts(manifest,
                                                                        ["ifd", "tokens"])]
    assert got == [("ifd", 1.0, 1), ("tokens", 3.0, 1), ("ifd", 0.5, 2), ("tokens", 4.0, 3),
                   ("tokens", 9.5, 3)]


def test_either_side_of_a_cut_takes_the_examples_nearest_it_among_those_that_reached_it():
    rows = [row(i, None if i % 2 else 0, "filtered", x=float(i)) for i in range(10)]
    rows.append(row(10, 0, "filtered"))  # no value: last
    side = summary.either_side(rows, 0, "x", 4.6, n=3)
    assert [r["id"] for r in side["kept"]] == ["e5", "e3", "e7"]
    assert [r["id"] for r in side["dropped"]] == ["e4", "e6", "e2"]
    later = summary.either_side(ROWS, 2, n=5)  # no cut: pool order, only those reaching it
    assert [r["id"] for r in later["kept"]] == ["e0", "e5"]
    assert [r["id"] for r in later["dropped"]] == ["e4"]


def test_duplicate_groups_name_the_kept_example_its_fate_and_each_copy_with_similarity():
    groups = summary.duplicate_groups(ROWS, 0)
    assert groups == [{"kept": "e0", "kept_fate": "selected",
                       "members": [{"id": "e1", "similarity": 0.9},
                                   {"id": "e2", "similarity": 0.8}]}]
    assert summary.duplicate_groups(ROWS, 1) == []


def test_why_phrases_the_reason_with_its_detail():
    assert summary.why(ROWS[4]) == "ranked-out (by ifd, cutoff 0.5)"
    assert summary.why(ROWS[2]) == "near duplicate of e0 (jaccard 0.8)"
    assert summary.why(ROWS[0]) == "selected"


def test_composition_counts_pool_and_subset_per_value_and_skips_id_like_fields():
    extra = {"domain": ["a", "a", "b", "b", "c", None], "key": [f"x{i}" for i in range(6)],
             "score": [1.0] * 6, "one": ["z"] * 6}
    assert summary.categorical_columns(extra) == ["domain"]
    many = [f"x{i}" for i in range(summary.MAX_CATEGORIES + 1)] * 2
    assert summary.categorical_columns({"many": many, "some": many[:30] * 2}) == ["some"]
    counts = summary.composition(ROWS, dict(zip([r["id"] for r in ROWS], extra["domain"])))
    assert counts[0] == {"value": "a", "pool": 2, "subset": 1, "pool_share": 2 / 6,
                         "subset_share": 0.5}
    assert {c["value"]: c["subset"] for c in counts} == {"a": 1, "b": 0, "c": 0, "(none)": 1}


def test_report_and_manifest_paths_follow_the_subset_stem(tmp_path):
    assert report_path(tmp_path / "s.manifest.json") == tmp_path / "s.report.html"
    (tmp_path / "s.manifest.json").write_text("{}")
    assert manifest_path(tmp_path / "s.jsonl") == tmp_path / "s.manifest.json"
    assert manifest_path(tmp_path / "other.json") == tmp_path / "other.json"


def test_run_diversity_measures_pool_and_subset_with_and_without_embeddings(tiny_alpaca):
    pool = load_pool(tiny_alpaca)
    result = run_recipe("random", pool, 1)
    lexical = run_diversity(result)
    assert lexical["pool"]["n"] == 10 and lexical["subset"]["n"] == 1
    assert set(lexical["pool"]) == {"n", "ttr", "vocd_d"}
    X = np.random.default_rng(0).normal(size=(10, 8))
    X[:3] = np.nan  # computed for the candidates of a later stage only
    result.columns["embedding"] = X
    result.selected = np.array([5, 7])
    d = run_diversity(result)
    assert d["pool"]["embedded"] == 7 and d["subset"]["embedded"] == 2
    assert 0 < d["subset"]["coverage"] <= 1 and np.isfinite(d["pool"]["dist_sum"])


# -- a real run, opened in Chromium ---------------------------------------------------------


def _need_browser():
    """playwright's sync API, or skip (fail under CI) when it or Chromium is missing."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        sync_playwright = None
    if sync_playwright is None or not CHROMIUM.exists():
        message = (f"needs the playwright package and {CHROMIUM} "
                   "(bash scripts/setup.sh installs both)")
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(message)
        pytest.skip(message)
    return sync_playwright


def invoke(*args) -> str:
    result = CliRunner().invoke(app, [str(a) for a in args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


@pytest.fixture(scope="module")
def real_run(shared_data, tmp_path_factory):
    """``winnow select`` over 315 examples of the mixed pool (every 15th record and 100
    tool-call records with their duplicates) with a five-stage recipe."""
    tmp = tmp_path_factory.mktemp("report")
    lines = (shared_data / "mixed_pool.jsonl").read_text(encoding="utf-8").splitlines()
    pool = tmp / "pool.jsonl"
    pool.write_text("".join(line + "\n" for k, line in enumerate(lines)
                            if k % 15 == 0 or 2850 <= k < 2950), encoding="utf-8")
    recipe = tmp / "report-test.yaml"
    recipe.write_text(RECIPE)
    out = tmp / "s.jsonl"
    args = ["select", recipe.name, "--data", pool.name, "--budget", "10%", "--out", out.name]
    with pytest.MonkeyPatch.context() as mp:  # relative paths, as a user in that folder
        mp.chdir(tmp)
        mp.setattr(sys, "argv", ["winnow", *args])
        invoke(*args, "--cache-dir", tmp / "cache")
    return {"dir": tmp, "pool": pool, "recipe": recipe, "out": out,
            "manifest": tmp / "s.manifest.json", "report": tmp / "s.report.html"}


def test_select_writes_the_report_beside_the_subset_and_no_report_skips_it(real_run):
    assert real_run["report"].stat().st_size > 1_000_000  # plotly.js is inside
    manifest = json.loads(real_run["manifest"].read_text())
    assert set(manifest["diversity"]) == {"pool", "subset"}
    assert manifest["diversity"]["subset"]["embedded"] == manifest["selected"]
    assert [s["computed"] for s in manifest["stages"]] == [
        [], [], ["signal:chars", "signal:words"], [], ["signal:emb"]]
    tmp = real_run["dir"]
    invoke("select", real_run["recipe"], "--data", real_run["pool"], "--budget", "10%",
           "--out", tmp / "quiet.jsonl", "--cache-dir", tmp / "cache", "--no-report")
    assert (tmp / "quiet.manifest.json").exists() and not (tmp / "quiet.report.html").exists()
    again = json.loads((tmp / "quiet.manifest.json").read_text())
    assert "diversity" not in again
    assert again["signal_runs"]["emb"] == {"rows": manifest["signal_runs"]["emb"]["rows"],
                                           "cached": True}


def test_report_command_rewrites_the_page_and_says_when_the_pool_is_gone(real_run, tmp_path):
    moved = tmp_path / "pool.jsonl"
    shutil.copy(real_run["pool"], moved)
    manifest = json.loads(real_run["manifest"].read_text())
    manifest["pool"]["path"] = str(tmp_path / "gone.jsonl")
    manifest["outputs"]["scores"] = str(real_run["dir"] / "s.scores.jsonl")
    run = tmp_path / "s.manifest.json"
    run.write_text(json.dumps(manifest))
    invoke("report", run)
    page = (tmp_path / "s.report.html").read_text()
    assert "pool not read" in page and "composition by domain" not in page
    invoke("report", run, "--data", moved, "--out", tmp_path / "r.html")
    page = (tmp_path / "r.html").read_text()
    assert "pool not read" not in page and "composition by domain" in page
    bad = CliRunner().invoke(app, ["report", str(real_run["dir"] / "s.scores.jsonl")])
    assert bad.exit_code == 2 and "not a run manifest" in bad.output


def open_in_chromium(report: Path, screenshot: Path) -> tuple[list, list, list[dict]]:
    """(console errors, requested URLs, one dict per chart: kind, column, drawn size, marks,
    points, shapes) of ``report`` opened in headless Chromium; a screenshot is saved."""
    sync_playwright = _need_browser()
    errors, requests = [], []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 1700})
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.on("request", lambda r: requests.append(r.url))
            page.goto(report.resolve().as_uri(), wait_until="load")
            charts = page.evaluate("""() => [...document.querySelectorAll('figure')].map(f => {
                const gd = f.querySelector('.plotly-graph-div');
                const svg = gd && gd.querySelector('svg.main-svg');
                const box = svg ? svg.getBoundingClientRect() : {width: 0, height: 0};
                const marks = gd ? [...gd.querySelectorAll('.point path')].filter(
                    m => m.getBBox().width > 0 && m.getBBox().height > 0).length : 0;
                return {chart: f.dataset.chart, column: f.dataset.column || null,
                        width: box.width, height: box.height, marks: marks,
                        points: gd && gd.data ? gd.data[0].x.length : 0,
                        shapes: gd && gd.layout ? (gd.layout.shapes || []).length : 0};
            })""")
            page.screenshot(path=str(screenshot))
        finally:
            browser.close()
    return errors, [u for u in requests if not u.startswith(("file:", "data:", "blob:"))], \
        charts


def _keep_screenshot(shot: Path) -> None:
    from PIL import Image

    with Image.open(shot) as image:
        assert len(image.convert("RGB").getcolors(1 << 16) or range(1 << 16)) > 50
    target = os.environ.get("WINNOW_REPORT_SCREENSHOT")
    if target:
        Path(target).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, target)


def test_report_loads_offline_without_console_errors_and_draws_every_chart(real_run,
                                                                           tmp_path):
    manifest = json.loads(real_run["manifest"].read_text())
    columns = summary.numeric_columns(read_rows(real_run["dir"] / "s.scores.jsonl"))
    assert columns == ["length", "words"]
    errors, remote, charts = open_in_chromium(real_run["report"], tmp_path / "report.png")
    assert errors == [] and remote == []
    assert all(c["width"] > 0 and c["height"] > 0 and c["marks"] > 0 for c in charts), charts
    kinds = [(c["chart"], c["column"]) for c in charts]
    assert kinds == [("funnel", None), ("histogram", "length"), ("histogram", "words"),
                     ("composition", "domain")]
    assert charts[0]["points"] == len(manifest["stages"]) + 1  # the pool, then each stage
    assert [c["shapes"] for c in charts[1:3]] == [2, 1]  # length: 60 and the bottom cut
    if not os.environ.get("WINNOW_REPORT_FILE"):
        _keep_screenshot(tmp_path / "report.png")


@pytest.mark.skipif(not os.environ.get("WINNOW_REPORT_FILE"),
                    reason="set WINNOW_REPORT_FILE to a report written by winnow select")
def test_a_given_report_draws_the_funnel_a_histogram_per_signal_and_no_errors(tmp_path):
    """Any run's report (``WINNOW_REPORT_FILE=s.report.html``, its scores and manifest
    beside it): no console error or network request, the funnel with the pool and every
    stage, one drawn histogram per numeric signal column."""
    report = Path(os.environ["WINNOW_REPORT_FILE"])
    stem = str(report)[:-len(".report.html")]
    manifest = json.loads(Path(stem + ".manifest.json").read_text())
    columns = summary.numeric_columns(read_rows(Path(stem + ".scores.jsonl")))
    errors, remote, charts = open_in_chromium(report, tmp_path / "report.png")
    assert errors == [] and remote == []
    assert all(c["width"] > 0 and c["height"] > 0 and c["marks"] > 0 for c in charts), charts
    assert charts[0]["chart"] == "funnel"
    assert charts[0]["points"] == len(manifest["stages"]) + 1
    assert [c["column"] for c in charts if c["chart"] == "histogram"] == columns
    _keep_screenshot(tmp_path / "report.png")

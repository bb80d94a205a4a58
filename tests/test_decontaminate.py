"""Decontamination on real files: target examples' n-grams planted in a sample of the mixed
pool are dropped by `winnow select --decontaminate`, each with the file, the target id and
the shared n-gram as its reason, and the dropped set is exactly the examples that an
independent n-gram comparison finds."""

from __future__ import annotations

import json
import re
import unicodedata

import pytest
from typer.testing import CliRunner

from winnow.cli import app

CJK = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff"


def _rows(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def _grams(texts: list[str], n: int) -> set[tuple[str, ...]]:
    """Word n-grams of the texts joined: lower case, no punctuation, each CJK character a
    word; a text of fewer than n words is one n-gram."""
    text = " ".join(texts).lower()
    text = "".join(c for c in text if not unicodedata.category(c).startswith("P"))
    words = re.findall(f"[{CJK}]|[^\\s{CJK}]+", text)
    if len(words) < n:
        return {tuple(words)} if words else set()
    return {tuple(words[k:k + n]) for k in range(len(words) - n + 1)}


def _pool_grams(r: dict, n: int) -> set:
    return _grams([r["instruction"], r.get("input", ""), r["output"]], n)


@pytest.fixture(scope="module")
def planted(shared_data, tmp_path_factory):
    """Every 9th record of the mixed pool, with three plants: 13 words of an MMLU target in
    another case and punctuation (a), a BBH target's whole instruction (b), 12 words of an
    MMLU target (c, shorter than the n-gram)."""
    tmp = tmp_path_factory.mktemp("decontaminate")
    mmlu_path = shared_data / "targets" / "mmlu_heldout_subjects.jsonl"
    bbh_path = shared_data / "targets" / "bbh_heldout_tasks.jsonl"
    mmlu, bbh = _rows(mmlu_path), _rows(bbh_path)
    pool = _rows(shared_data / "mixed_pool.jsonl")[::9]
    a, b, c = pool[3], pool[40], pool[100]
    words = mmlu[10]["instruction"].split()
    a["output"] += " In short: " + ", ".join(w.upper() for w in words[3:16]) + "!"
    b["instruction"] = bbh[5]["instruction"]
    c["output"] += " " + " ".join(mmlu[20]["instruction"].split()[:12]) + " ... done."
    path = tmp / "pool.jsonl"
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in pool),
                    encoding="utf-8")
    return {"dir": tmp, "pool": path, "rows": pool, "mmlu": (mmlu_path, mmlu),
            "bbh": (bbh_path, bbh), "planted": {a["id"]: (mmlu_path, mmlu[10]["id"]),
                                                b["id"]: (bbh_path, bbh[5]["id"])},
            "short": c["id"]}


def _select(planted, out: str, *extra: str):
    result = CliRunner().invoke(app, [
        "select", "random", "--data", str(planted["pool"]), "--budget", "100%",
        "--out", str(planted["dir"] / out), "--cache-dir", str(planted["dir"] / "cache"),
        "--decontaminate", str(planted["mmlu"][0]), "--decontaminate", str(planted["bbh"][0]),
        *extra], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    scores = planted["dir"] / out.replace(".jsonl", ".scores.jsonl")
    return {r["id"]: r for r in _rows(scores)}


def _expected(planted, n: int) -> set[str]:
    targets = set()
    for _, rows in (planted["mmlu"], planted["bbh"]):
        for t in rows:
            targets |= _grams([t["instruction"], t["output"]], n)
    return {r["id"] for r in planted["rows"] if _pool_grams(r, n) & targets}


def test_planted_examples_are_dropped_with_file_and_ngram(planted):
    rows = _select(planted, "s.jsonl")
    dropped = {i for i, r in rows.items() if r["fate_reason"] == "contaminated"}
    assert dropped == _expected(planted, 13)
    assert set(planted["planted"]) <= dropped and planted["short"] not in dropped
    assert all(r["fate_stage"] == 0 and r["fate_kind"] == "decontaminate"
               for i, r in rows.items() if i in dropped)
    assert all(r["selected"] for i, r in rows.items() if i not in dropped)
    for pid, (file, source_id) in planted["planted"].items():
        detail = rows[pid]["fate_detail"]
        assert detail["file"] == str(file) and detail["n"] == 13
        gram = tuple(detail["ngram"].split())
        # the first target holding the n-gram: the planted one, or one sharing its text (BBH
        # examples of a task share the task's description)
        targets = {t["id"]: _grams([t["instruction"], t["output"]], 13) for t in _rows(file)}
        assert len(gram) == 13 and gram in targets[detail["of"]] and gram in targets[source_id]
        assert gram in _pool_grams(next(r for r in planted["rows"] if r["id"] == pid), 13)
        assert f"shares a 13-gram with {detail['of']} of {file}" in rows[pid]["stage"]
    manifest = json.loads((planted["dir"] / "s.manifest.json").read_text())
    trace = manifest["stages"][0]["trace"]
    assert trace["dropped"] == len(dropped) and [f["n"] for f in trace["files"]] == [
        len(planted["mmlu"][1]), len(planted["bbh"][1])]


def test_ngram_size_is_configurable(planted):
    rows = _select(planted, "s12.jsonl", "--decontaminate-ngram", "12")
    dropped = {i for i, r in rows.items() if r["fate_reason"] == "contaminated"}
    assert dropped == _expected(planted, 12) and planted["short"] in dropped
    assert rows[planted["short"]]["fate_detail"]["n"] == 12


def test_missing_file_stops_before_any_compute(planted, tmp_path):
    result = CliRunner().invoke(app, [
        "select", "random", "--data", str(planted["pool"]), "--budget", "5",
        "--out", str(tmp_path / "s.jsonl"), "--decontaminate", str(tmp_path / "absent.jsonl")])
    assert result.exit_code == 2 and "absent.jsonl" in result.output
    assert not (tmp_path / "s.jsonl").exists()

"""The built-in demo pool: reproducible, correct where checkable, broken where flagged."""

from __future__ import annotations

import json
import random
import re
from collections import Counter

from winnow.data import load_pool
from winnow.data.demo import demo_pool_path
from winnow.data.demo.make_demo_pool import EMPTY_ANSWERS, SEED, build, shuffled_items


def _records() -> list[dict]:
    return [json.loads(line) for line in demo_pool_path().read_text("utf-8").splitlines()]


def test_file_is_what_the_script_generates():
    text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in build())
    assert demo_pool_path().read_text(encoding="utf-8") == text


def test_loads_as_alpaca_with_ids_and_issue_column():
    pool = load_pool(demo_pool_path())
    assert pool.source.format == "alpaca" and pool.source.options["ids"] == "field"
    assert 250 <= len(pool) <= 320 and pool.ids[0] == "demo-0000"
    issues = Counter(pool.extra["issue"])
    assert issues == {"": len(pool) - 30, "mismatched": 10, "truncated": 10, "empty": 10}
    assert len(set(pool.extra["topic"])) >= 10


def test_broken_records_are_broken_as_flagged():
    """Each record against its correct answer: equal when clean, broken as flagged."""
    items = shuffled_items(random.Random(SEED))
    for r, (topic, instruction, given, answer) in zip(_records(), items, strict=True):
        assert (r["topic"], r["instruction"], r["input"]) == (topic, instruction, given)
        out = r["output"]
        if r["issue"] == "":
            assert out == answer
        elif r["issue"] == "empty":
            assert out in EMPTY_ANSWERS and len(out) <= 4
        elif r["issue"] == "truncated":
            assert answer.startswith(out) and len(out) < 0.7 * len(answer)
            assert len(out.split()) >= 4 and out[-1] not in ".!?"
        else:
            assert r["issue"] == "mismatched" and out != answer
            assert out in {a for t, _, _, a in items if t != topic}


def test_computed_answers_are_correct():
    """Arithmetic and temperature answers check out."""
    checked = 0
    ops = {"+": int.__add__, "-": int.__sub__, "×": int.__mul__, "÷": int.__floordiv__}
    for r in _records():
        if r["issue"]:
            continue
        m = re.fullmatch(r"(\d+) ([-+×÷]) (\d+) = (\d+)\.", r["output"])
        if m and r["topic"] == "arithmetic":
            a, op, b, c = int(m[1]), m[2], int(m[3]), int(m[4])
            assert ops[op](a, b) == c and (op != "÷" or a % b == 0), r
            checked += 1
        m = re.fullmatch(r"(-?\d+) °C = .* = (-?\d+) °F\.", r["output"])
        if m:
            assert int(m[1]) * 9 / 5 + 32 == int(m[2]), r
            checked += 1
    assert checked >= 35

"""Bad input: each error names the file, the line or record, and the field."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from winnow.data import DataError, load_pool, write_subset

GOOD = {"instruction": "Name a primary colour.", "input": "", "output": "Red."}


def _jsonl(path: Path, lines: list) -> Path:
    text = "".join((ln if isinstance(ln, str) else json.dumps(ln)) + "\n" for ln in lines)
    path.write_text(text, encoding="utf-8")
    return path


def _raises(path: Path, where: str, message: str, **kw) -> DataError:
    """load_pool fails with exactly ``<path>, <where>: <message...>``."""
    with pytest.raises(DataError) as info:
        load_pool(path, **kw)
    text = str(info.value)
    assert text.startswith(f"{path}, {where}: "), text
    assert re.search(message, text), text
    return info.value


@pytest.mark.parametrize("bad, where, message", [
    ('{"instruction": "x", "output": ', "line 5, record 3", "malformed JSON line"),
    ({"instruction": "x", "input": ""}, "line 5, record 3, field 'output'",
     "no response: field 'output' is missing"),
    ({"instruction": "x", "input": "", "output": ""}, "line 5, record 3, field 'output'",
     "empty response"),
    ({"instruction": "x", "input": "", "output": "  \n"}, "line 5, record 3, field 'output'",
     "empty response"),
    ({"instruction": "x", "input": "", "output": ["a", "b"]},
     "line 5, record 3, field 'output'", "output is a list, not a string"),
    ({"instruction": "x", "input": "", "output": 42}, "line 5, record 3, field 'output'",
     "output is an int, not a string"),
    ({"instruction": 7, "input": "", "output": "y"}, "line 5, record 3, field 'instruction'",
     "instruction is an int"),
    ({"input": "", "output": "y"}, "line 5, record 3, field 'instruction'", "no prompt"),
    ({"instruction": "x", "output": "y", "history": [["only one"]]},
     "line 5, record 3, field 'history[0]'", "pair"),
    ('[1, 2]', "line 5, record 3", "record is a list, not an object"),
])
def test_jsonl_bad_record(tmp_path, bad, where, message):
    # a blank line 4 makes line and record numbers differ
    path = _jsonl(tmp_path / "pool.jsonl", [GOOD, GOOD, GOOD, "", bad, GOOD])
    _raises(path, where, message)
    pool = load_pool(path, on_error="skip")
    assert len(pool) == 4 and pool.skipped == 1
    assert pool.source.options["errors"][0].startswith(f"{path}, {where}: ")


def test_sharegpt_bad_turns(tmp_path):
    def conv(*turns):
        return {"conversations": [{"from": f, "value": v} for f, v in turns]}

    ok = conv(("human", "hi"), ("gpt", "hello"))
    cases = [
        (conv(("human", "hi"), ("human", "anyone?")), "line 2, record 1, field 'conversations'",
         "no assistant turn"),
        (conv(("human", "hi"), ("bot", "hey")),
         "line 2, record 1, field 'conversations\\[1\\].from'", "unknown role 'bot'"),
        ({"conversations": [{"from": "human", "value": ["hi"]}, {"from": "gpt", "value": "x"}]},
         "line 2, record 1, field 'conversations\\[0\\].value\\[0\\]'",
         "a str, not a content part"),
        ({"conversations": [{"from": "human", "value": 3}, {"from": "gpt", "value": "x"}]},
         "line 2, record 1, field 'conversations\\[0\\].value'", "an int, not a string"),
        (conv(("human", "hi"), ("gpt", "")),
         "line 2, record 1, field 'conversations\\[1\\].value'", "empty response"),
        ({"conversations": "hi"}, "line 2, record 1, field 'conversations'", "not a list"),
        ({"conversations": [{"from": "human", "value": "hi"}], "chosen": "x"},
         "line 2, record 1, field 'conversations'", "map the chosen answer"),
    ]
    for k, (bad, where, message) in enumerate(cases):
        path = _jsonl(tmp_path / f"c{k}.jsonl", [ok, bad, ok])
        with pytest.raises(DataError) as info:
            load_pool(path)
        assert re.match(re.escape(f"{path}, ") + where + ": ", str(info.value)), str(info.value)
        assert re.search(message, str(info.value)), str(info.value)
        assert len(load_pool(path, on_error="skip")) == 2


def test_messages_non_text_part(tmp_path):
    bad = {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": "x"}]},
                        {"role": "assistant", "content": "A cat."}]}
    path = _jsonl(tmp_path / "m.jsonl", [bad])
    with pytest.raises(DataError, match=re.escape(
            "line 1, record 0, field 'messages[0].content[0]': content part of type "
            "'image_url' is not text")):
        load_pool(path)


def test_json_array_errors(tmp_path):
    recs = [GOOD, GOOD, {"instruction": "x", "input": ""}, GOOD]
    path = tmp_path / "a.json"
    path.write_text(json.dumps(recs, indent=2))
    # record 2 starts on line 12: "[" + 2 records of 5 lines each
    _raises(path, "line 12, record 2, field 'output'", "no response")
    assert load_pool(path, on_error="skip").skipped == 1

    path.write_text('[\n  {"instruction": "a", "output": "b"},\n'
                    '  {"instruction": "a" "output"}\n]')
    _raises(path, "line 3, record 1", "malformed JSON: Expecting ',' delimiter \\(column 23\\)")
    path.write_text('{"rows": [1, 2]}')  # one object: read as JSON Lines, not a record list
    with pytest.raises(DataError, match="unknown format: the first record has fields"):
        load_pool(path)


@pytest.mark.parametrize("name, text", [
    ("e.jsonl", ""), ("e2.jsonl", "\n  \n\n"), ("e.json", ""), ("e2.json", "[ ]\n"),
    ("e.csv", ""), ("h.csv", "instruction,input,output\n"),
])
def test_empty_files(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(DataError, match=re.escape(f"{path}: empty file")):
        load_pool(path)


def test_empty_parquet(tmp_path):
    path = tmp_path / "e.parquet"
    pq.write_table(pa.table({"instruction": pa.array([], pa.string()),
                             "output": pa.array([], pa.string())}), path)
    with pytest.raises(DataError, match="empty file"):
        load_pool(path)


def test_unknown_format_and_paths(tmp_path):
    path = _jsonl(tmp_path / "x.jsonl", [{"foo": 1, "bar": "x"}])
    with pytest.raises(DataError, match=re.escape(
            f"{path}: unknown format: the first record has fields ['bar', 'foo']")):
        load_pool(path)
    with pytest.raises(DataError, match="no such file"):
        load_pool(tmp_path / "nope.jsonl")
    (tmp_path / "x.txt").write_text("hi")
    with pytest.raises(DataError, match="unknown file type '.txt'"):
        load_pool(tmp_path / "x.txt")
    with pytest.raises(DataError, match="unknown format 'yaml'"):
        load_pool(path, format="yaml")
    with pytest.raises(DataError, match="needs a dataset_info.json"):
        load_pool(path, dataset="x")


def test_csv_errors(tmp_path):
    path = tmp_path / "p.csv"
    path.write_text('instruction,input,output\n'
                    'a,,b\n'
                    '"multi\nline",,c\n'
                    'd,,\n'
                    'e,,f,extra\n')
    _raises(path, "line 5, record 2, field 'output'", "empty response")
    pool = load_pool(path, on_error="skip")
    assert pool.skipped == 2 and [c[-1]["content"] for c in pool.conversations] == ["b", "c"]
    assert "line 6, record 3: 1 more cells than the header" in pool.source.options["errors"][1]


def test_parquet_null_response(tmp_path):
    path = tmp_path / "p.parquet"
    pq.write_table(pa.table({"instruction": ["a", "b", "c"], "output": ["x", None, "z"]}), path)
    _raises(path, "record 1, field 'output'", "no response")
    assert len(load_pool(path, on_error="skip")) == 2


def test_skip_counts_and_all_bad(tmp_path):
    lines = [GOOD if k % 3 else {"instruction": "x", "output": ""} for k in range(30)]
    path = _jsonl(tmp_path / "p.jsonl", lines)
    pool = load_pool(path, on_error="skip")
    assert pool.skipped == 10 and len(pool) == 20
    assert len(pool.source.options["errors"]) == 5  # only the first few are kept
    assert pool.source.options["errors"][1].startswith(f"{path}, line 4, record 3")
    write_subset(pool, [0, 1], tmp_path / "out.jsonl")  # raw lines of kept records
    assert (tmp_path / "out.jsonl").read_text().splitlines() == [json.dumps(GOOD)] * 2

    bad = _jsonl(tmp_path / "bad.jsonl", ["{", "{"])
    _raises(bad, "line 1, record 0", "malformed JSON line")
    with pytest.raises(DataError, match="no usable records: all 2 were bad"):
        load_pool(bad, on_error="skip")


def test_write_subset_atomic_and_bounds(tmp_path):
    pool = load_pool(_jsonl(tmp_path / "p.jsonl", [GOOD] * 3))
    out = tmp_path / "out.jsonl"
    out.write_text("previous\n")
    with pytest.raises(IndexError):
        write_subset(pool, [0, 3], out)
    with pytest.raises(DataError, match="unknown output type '.txt'"):
        write_subset(pool, [0], tmp_path / "out.txt")
    assert out.read_text() == "previous\n"  # untouched on failure
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.jsonl", "p.jsonl"]

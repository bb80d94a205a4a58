"""Reading every format from every file type, and writing subsets back unchanged."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from winnow.data import DataError, load_pool, write_subset
from winnow.data.files import as_record

PICK = [17, 3, 29, 3, 8, 0]  # unsorted, with a repeat: written sorted and once each
FILE_TYPES = ["json", "jsonl", "parquet", "csv", "arrow"]
FORMATS = ["alpaca", "columns", "sharegpt", "messages"]


def _read_json(path: Path) -> list[dict]:
    if path.suffix == ".jsonl":
        return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    return json.loads(path.read_text(encoding="utf-8"))


def _records(shared: Path, fmt: str, n: int = 30) -> list[dict]:
    if fmt == "alpaca":
        return _read_json(shared / "alpaca_en_demo.json")[:n]
    if fmt == "columns":
        recs = _read_json(shared / "mmlu_cot_targets.jsonl")[:n]
        return [{"question": r["instruction"], "answer": r["output"], "subject": r["subject"]}
                for r in recs]
    if fmt == "sharegpt":
        return _read_json(shared / "glaive_toolcall_en_demo.json")[:n]
    return _read_json(shared / "v1_sft_demo.jsonl")[:n]


def _write(records: list[dict], path: Path, file_type: str) -> Path:
    """Write test input with plain library calls (not winnow's writer)."""
    if file_type == "json":
        path.write_text(json.dumps(records, indent=2, ensure_ascii=False) + "\n", "utf-8")
    elif file_type == "jsonl":
        path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records),
                        "utf-8")
    elif file_type == "parquet":
        pq.write_table(pa.Table.from_pylist(records), path)
    elif file_type == "csv":
        with open(path, "w", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, fieldnames=list(records[0]))
            writer.writeheader()
            writer.writerows(records)
    else:
        from datasets import Dataset

        Dataset.from_list(records).save_to_disk(str(path))
    return path


def _suffix(file_type: str) -> str:
    return "" if file_type == "arrow" else f".{file_type}"


# CSV cells hold no nested turns: chat formats are not read from CSV
COMBOS = [(f, t) for f in FORMATS for t in FILE_TYPES
          if not (t == "csv" and f in ("sharegpt", "messages"))]


@pytest.mark.parametrize("fmt, file_type", COMBOS)
def test_round_trip(shared_data, tmp_path, fmt, file_type):
    """Every format × file type: read, write a subset, reread: records unchanged, in order."""
    records = _records(shared_data, fmt)
    src = tmp_path / f"pool{_suffix(file_type)}"
    _write(records, src, file_type)
    pool = load_pool(src)
    assert (pool.source.format, pool.source.file_type, len(pool)) == (fmt, file_type, 30)
    assert all(any(t["role"] == "assistant" for t in c) for c in pool.conversations)

    out = tmp_path / f"subset{_suffix(file_type)}"
    write_subset(pool, PICK, out)
    chosen = sorted(set(PICK))
    again = load_pool(out)
    assert again.source.format == fmt
    assert [as_record(r) for r in again.records] == [as_record(pool.records[i]) for i in chosen]
    assert again.conversations == [pool.conversations[i] for i in chosen]
    assert again.ids == [pool.ids[i] for i in chosen]
    if file_type in ("json", "jsonl"):  # the records as the source holds them
        assert [as_record(r) for r in again.records] == [records[i] for i in chosen]
    if file_type == "jsonl":  # raw lines copied byte for byte
        lines = src.read_bytes().splitlines(keepends=True)
        assert out.read_bytes() == b"".join(lines[i] for i in chosen)
    if file_type == "json":  # same layout as the source
        expect = json.dumps([records[i] for i in chosen], indent=2, ensure_ascii=False) + "\n"
        assert out.read_text(encoding="utf-8") == expect
    if file_type == "parquet":
        assert pq.read_schema(out) == pq.read_schema(src)
    if file_type == "csv":
        assert out.read_text(encoding="utf-8").splitlines()[0] == ",".join(records[0])


@pytest.mark.parametrize("out_type", ["json", "jsonl", "parquet", "csv"])
@pytest.mark.parametrize("in_type", ["json", "jsonl", "parquet", "arrow"])
def test_subset_in_another_file_type(shared_data, tmp_path, in_type, out_type):
    """An output suffix other than the input's writes that type, same record schema."""
    records = _records(shared_data, "alpaca")
    pool = load_pool(_write(records, tmp_path / f"pool{_suffix(in_type)}", in_type))
    out = tmp_path / f"out.{out_type}"
    write_subset(pool, PICK, out)
    again = load_pool(out)
    assert again.source.file_type == out_type
    assert [as_record(r) for r in again.records] == [records[i] for i in sorted(set(PICK))]


def test_nested_records_refuse_csv(shared_data, tmp_path):
    pool = load_pool(shared_data / "glaive_toolcall_en_demo.json")
    with pytest.raises(DataError, match="CSV cannot hold the nested field 'conversations'"):
        write_subset(pool, [0, 1], tmp_path / "out.csv")
    assert not (tmp_path / "out.csv").exists()


def test_full_rewrite_is_byte_identical(shared_data, tmp_path):
    """Writing every record of a shared file reproduces the file exactly."""
    for name in ("alpaca_en_demo.json", "glaive_toolcall_en_demo.json", "mixed_pool.jsonl"):
        pool = load_pool(shared_data / name)
        out = tmp_path / name
        write_subset(pool, range(len(pool)), out)
        assert out.read_bytes() == (shared_data / name).read_bytes(), name


def test_ids(shared_data, tmp_path):
    mixed = load_pool(shared_data / "mixed_pool.jsonl")
    assert len(mixed) == 3322 and mixed.ids[0] == "alpaca_en-0000"
    assert mixed.source.options["ids"] == "field"
    assert mixed.extra["domain"][0] == "general" and mixed.extra["domain"][-1] == "bbh"

    alpaca = load_pool(shared_data / "alpaca_en_demo.json")
    assert alpaca.source.options["ids"] == "content"
    assert len(set(alpaca.ids)) == 999  # unique although 14 records repeat
    assert sum("-" in i for i in alpaca.ids) == 14
    assert alpaca.ids == load_pool(shared_data / "alpaca_en_demo.json").ids  # stable
    # the same content in another file type has the same ids
    parquet = _write(_read_json(shared_data / "alpaca_en_demo.json"), tmp_path / "a.parquet",
                     "parquet")
    assert load_pool(parquet).ids == alpaca.ids
    assert load_pool(parquet).fingerprint() == alpaca.fingerprint()

    # repeated id values: fall back to content hashes
    recs = [{"id": "x", "instruction": f"q{k}", "input": "", "output": "a"} for k in range(3)]
    dup = load_pool(_write(recs, tmp_path / "dup.jsonl", "jsonl"))
    assert dup.source.options["ids"] == "content" and len(set(dup.ids)) == 3
    # integer ids are used as strings
    recs = [{"id": k, "instruction": f"q{k}", "output": "a"} for k in range(3)]
    assert load_pool(_write(recs, tmp_path / "int.jsonl", "jsonl")).ids == ["0", "1", "2"]


def test_extra_columns(shared_data):
    mmlu = load_pool(shared_data / "mmlu_cot_targets.jsonl")
    assert set(mmlu.extra) == {"subject", "answer"}
    assert mmlu.extra["subject"][0] == "abstract_algebra" and mmlu.extra["answer"][0] in "ABCD"
    sub = mmlu.subset([5, 1])
    assert sub.extra["subject"] == [mmlu.extra["subject"][5], mmlu.extra["subject"][1]]


def test_alpaca_system_and_history(tmp_path):
    recs = [{"instruction": "And 3 + 3?", "input": "", "output": "6", "system": "Be brief.",
             "history": [["What is 2 + 2?", "4"]]},
            {"instruction": "Translate", "input": "chat", "output": "cat"}]
    pool = load_pool(_write(recs, tmp_path / "a.json", "json"))
    assert pool.conversations[0] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "What is 2 + 2?"},
        {"role": "assistant", "content": "4"},
        {"role": "user", "content": "And 3 + 3?", "instruction": "And 3 + 3?", "input": ""},
        {"role": "assistant", "content": "6"}]
    assert pool.conversations[1][0] == {"role": "user", "content": "Translate\n\nchat",
                                        "instruction": "Translate", "input": "chat"}


def test_sharegpt_tools_system_function_calls(shared_data, tmp_path):
    pool = load_pool(shared_data / "glaive_toolcall_en_demo.json")
    assert pool.source.format == "sharegpt" and len(pool) == 300
    raw = _read_json(shared_data / "glaive_toolcall_en_demo.json")
    roles = {"human": "user", "gpt": "assistant", "function_call": "assistant",
             "observation": "tool"}
    for conv, rec, tools in zip(pool.conversations, raw, pool.extra["tools"]):
        assert conv == [{"role": roles[t["from"]], "content": t["value"]}
                        for t in rec["conversations"]]
        assert tools == (rec["tools"] or None)
    first = pool.conversations[0]
    assert [t["role"] for t in first[:6]] == ["user", "assistant", "user", "assistant", "tool",
                                          "assistant"]
    assert json.loads(first[3]["content"])["name"] == "search_recipes"
    # tools take part in the content id
    bare = [{"conversations": r["conversations"]} for r in raw[:3]]
    assert load_pool(_write(bare, tmp_path / "bare.json", "json")).ids != pool.ids[:3]

    # a system column, and a system turn in the messages (which overrides it)
    recs = [{"conversations": [{"from": "human", "value": "hi"}, {"from": "gpt", "value": "yo"}],
             "system": "Be kind."},
            {"conversations": [{"from": "system", "value": "Be terse."},
                               {"from": "human", "value": "hi"}, {"from": "gpt", "value": "."},
                               {"from": "human", "value": "bye"},
                               {"from": "gpt", "value": "Goodbye."}],
             "system": "ignored"}]
    sys_pool = load_pool(_write(recs, tmp_path / "s.jsonl", "jsonl"))
    assert sys_pool.conversations[0] == [{"role": "system", "content": "Be kind."},
                                         {"role": "user", "content": "hi"},
                                         {"role": "assistant", "content": "yo"}]
    assert [t["content"] for t in sys_pool.conversations[1]] == [
        "Be terse.", "hi", ".", "bye", "Goodbye."]


def test_messages_content_parts_and_tool_calls(shared_data, tmp_path):
    pool = load_pool(shared_data / "v1_sft_demo.jsonl")
    assert pool.source.format == "messages" and len(pool) == 500
    assert pool.conversations[0] == [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "Hello! I am {{name}}, an AI assistant developed by "
                                         "{{author}}. How can I assist you today?"}]
    recs = [{"messages": [
        {"role": "system", "content": "You can call tools."},
        {"role": "user", "content": [{"type": "text", "text": "Weather in "},
                                     {"type": "text", "text": "Paris?"}]},
        {"role": "assistant", "content": None, "tool_calls": [
            {"type": "function", "function": {"name": "weather", "arguments": "{\"city\": "
                                              "\"Paris\"}"}}]},
        {"role": "tool", "content": "{\"temp\": 18}"},
        {"role": "assistant", "content": "It is 18 °C in Paris."}]}]
    conv = load_pool(_write(recs, tmp_path / "m.jsonl", "jsonl")).conversations[0]
    assert [t["role"] for t in conv] == ["system", "user", "assistant", "tool", "assistant"]
    assert conv[1]["content"] == "Weather in Paris?"
    assert json.loads(conv[2]["content"]) == {"name": "weather",
                                              "arguments": "{\"city\": \"Paris\"}"}


def test_column_mapping(shared_data, tmp_path):
    recs = [{"q": "Capital of France?", "ctx": "", "a": "Paris.", "sys": "Answer briefly."},
            {"q": "2 + 2?", "ctx": "Use digits.", "a": "4", "sys": ""}]
    path = _write(recs, tmp_path / "p.csv", "csv")
    with pytest.raises(DataError, match="unknown format"):
        load_pool(path)
    cols = {"prompt": "q", "query": "ctx", "response": "a", "system": "sys"}
    pool = load_pool(path, columns=cols)
    assert pool.source.format == "columns" and pool.extra == {}
    assert pool.conversations[0][0] == {"role": "system", "content": "Answer briefly."}
    assert pool.conversations[1] == [
        {"role": "user", "content": "2 + 2?\n\nUse digits.", "instruction": "2 + 2?",
         "input": "Use digits."},
        {"role": "assistant", "content": "4"}]
    # sharegpt-style data under other keys, by column and tags
    recs = [{"dialog": [{"speaker": "U", "text": "hi"}, {"speaker": "B", "text": "hello"}]}]
    tags = {"messages": "dialog", "role_tag": "speaker", "content_tag": "text", "user_tag": "U",
            "assistant_tag": "B"}
    pool = load_pool(_write(recs, tmp_path / "d.json", "json"), format="sharegpt", columns=tags)
    assert pool.conversations[0] == [{"role": "user", "content": "hi"},
                                     {"role": "assistant", "content": "hello"}]


def test_dataset_info_entries(shared_data, tmp_path):
    for name in ("alpaca_en_demo.json", "glaive_toolcall_en_demo.json", "dpo_en_demo.json",
                 "v1_sft_demo.jsonl"):
        shutil.copy(shared_data / name, tmp_path / name)
    qa = [{"question": "Capital of Peru?", "answer": "Lima.", "sys": "Be brief.",
           "system": "not mapped"}]
    _write(qa, tmp_path / "qa.jsonl", "jsonl")
    _write(_read_json(shared_data / "alpaca_en_demo.json")[:12], tmp_path / "ds", "arrow")
    info = {
        "qa": {"file_name": "qa.jsonl", "columns": {"prompt": "question", "response": "answer",
                                                     "system": "sys"}},
        "qa_plain": {"file_name": "qa.jsonl",
                     "columns": {"prompt": "question", "response": "answer"}},
        "tools": {"file_name": "glaive_toolcall_en_demo.json", "formatting": "sharegpt",
                  "columns": {"messages": "conversations", "tools": "tools"}},
        "dpo": {"file_name": "dpo_en_demo.json", "ranking": True, "formatting": "sharegpt",
                "columns": {"messages": "conversations", "chosen": "chosen",
                            "rejected": "rejected"}},
        "v1": {"file_name": "v1_sft_demo.jsonl", "formatting": "sharegpt",
               "columns": {"messages": "messages"},
               "tags": {"role_tag": "role", "content_tag": "content", "user_tag": "user",
                        "assistant_tag": "assistant"}},
        "v1_openai": {"file_name": "v1_sft_demo.jsonl", "formatting": "openai",
                      "columns": {"messages": "messages"}},
        "saved": {"file_name": "ds"},
        "modelscope": {"ms_hub_url": "someone/data"},
        "gone": {"file_name": "missing.json"},
    }
    info_path = tmp_path / "dataset_info.json"
    info_path.write_text(json.dumps(info))

    qa_pool = load_pool(info_path, dataset="qa")
    assert qa_pool.conversations[0][0] == {"role": "system", "content": "Be brief."}
    assert qa_pool.extra == {"system": ["not mapped"]}
    # as in LLaMA-Factory, an unmapped system field is not read
    assert [t["role"] for t in load_pool(tmp_path, dataset="qa_plain").conversations[0]] == [
        "user", "assistant"]
    tools = load_pool(tmp_path, dataset="tools")
    assert len(tools) == 300 and tools.extra["tools"][0].startswith("[{")
    dpo = load_pool(tmp_path, dataset="dpo")
    raw = _read_json(shared_data / "dpo_en_demo.json")
    assert dpo.conversations[0][-1] == {"role": "assistant", "content": raw[0]["chosen"]["value"]}
    v1 = load_pool(tmp_path, dataset="v1")
    assert v1.source.format == "messages" and len(v1) == 500
    assert load_pool(tmp_path, dataset="v1_openai").conversations == v1.conversations
    saved = load_pool(tmp_path, dataset="saved")
    assert saved.source.file_type == "arrow" and len(saved) == 12

    write_subset(dpo, [4, 2], tmp_path / "dpo_sub.json")
    assert _read_json(tmp_path / "dpo_sub.json") == [raw[2], raw[4]]

    with pytest.raises(DataError, match="points to ms_hub_url 'someone/data'"):
        load_pool(info_path, dataset="modelscope")
    with pytest.raises(DataError, match="'missing.json', which does not exist"):
        load_pool(info_path, dataset="gone")
    with pytest.raises(DataError, match="no dataset entry 'qaa'; did you mean qa"):
        load_pool(info_path, dataset="qaa")
    with pytest.raises(DataError, match="name the dataset entry"):
        load_pool(info_path)


def test_shared_dataset_info(shared_data):
    """The real dataset_info.json, for its entries whose files are present."""
    info = json.loads((shared_data / "dataset_info.json").read_text())
    present = [k for k, v in info.items()
               if "file_name" in v and (shared_data / v["file_name"]).exists()]
    assert {"alpaca_en_demo", "glaive_toolcall_en_demo", "dpo_en_demo"} <= set(present)
    sizes = {"alpaca_en_demo": 999, "alpaca_zh_demo": 996, "glaive_toolcall_en_demo": 300,
             "dpo_en_demo": 300}
    for name in present:
        pool = load_pool(shared_data / "dataset_info.json", dataset=name)
        assert len(pool) == sizes[name]
    direct = load_pool(shared_data / "alpaca_en_demo.json")
    entry = load_pool(shared_data, dataset="alpaca_en_demo")
    assert entry.ids == direct.ids and entry.conversations == direct.conversations

"""Datasets in and out: subsets written as Alpaca, ShareGPT or OpenAI messages and read back,
their LLaMA-Factory dataset_info.json entries (read by winnow and by an independent reading
of LLaMA-Factory's rules), the Python API's Datasets, TRL's conversational rows, and
hf_hub_url entries read offline from a local Hugging Face cache."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import datasets
import huggingface_hub.constants
import pytest
from typer.testing import CliRunner

import winnow
from winnow.cli import app
from winnow.data import DataError, load_pool, write_subset
from winnow.data.dataset_info import read_info

PICK = [0, 3, 7, 12, 30, 64, 100, 211, 500, 998]

# A model-free recipe whose signal column and filter show up in the scores.
WORDS_RECIPE = """\
name: words-test
signals:
  length: {signal: text_length, text: conversation, unit: words}
stages:
  - filter: "words > 20"
  - top: words
"""


@pytest.fixture(autouse=True)
def _datasets_cache(tmp_path, monkeypatch):
    """``datasets`` prepares what these tests load under the test's folder, not ~/.cache."""
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "hf" / "datasets")


def _turns(conv: list[dict]) -> list[tuple[str, str]]:
    return [(t["role"], t["content"]) for t in conv]


def _read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def _llamafactory_read(folder: Path, name: str) -> list[dict]:
    """Entry ``name`` of ``folder/dataset_info.json`` as LLaMA-Factory 0.9 reads it, written
    here from its documented rules (not winnow's reader): the file loaded with ``datasets``
    by its extension; ``parser.get_dataset_list``'s defaults, where a listed ``columns`` (or
    ``tags``) mapping leaves every name it omits unset; the Alpaca converter (``history``
    pairs, prompt and query joined by a newline) and the ShareGPT one (a system turn first,
    then user|observation and assistant|function_call turns alternating, an even count;
    anything else is a broken example, here an assertion). Returns per example its
    ``system``, ``tools`` and ``turns`` (role, content) with LLaMA-Factory's role names."""
    attr = read_info(folder / "dataset_info.json")[name]
    assert set(attr) <= {"file_name", "formatting", "columns", "tags", "ranking"}, attr
    path = folder / attr["file_name"]
    builder = {".json": "json", ".jsonl": "json", ".parquet": "parquet", ".csv": "csv"}
    rows = datasets.load_dataset(builder[path.suffix], data_files=str(path), split="train")
    formatting = attr.get("formatting", "alpaca")
    assert formatting in ("alpaca", "sharegpt")
    cols = {"prompt": "instruction", "query": "input", "response": "output", "history": None,
            "messages": "conversations", "system": None, "tools": None}
    if "columns" in attr:
        names = ["system", "tools"] + (["prompt", "query", "response", "history"]
                                       if formatting == "alpaca" else ["messages"])
        cols.update({k: attr["columns"].get(k) for k in names})
    tags = {"role_tag": "from", "content_tag": "value", "user_tag": "human",
            "assistant_tag": "gpt", "observation_tag": "observation",
            "function_tag": "function_call", "system_tag": "system"}
    if formatting == "sharegpt" and "tags" in attr:
        tags = {k: attr["tags"].get(k) for k in tags}
    out = []
    for ex in rows:
        system = ex[cols["system"]] if cols["system"] else ""
        if formatting == "alpaca":
            turns = []
            if cols["history"] and isinstance(ex[cols["history"]], list):
                for old_prompt, old_response in ex[cols["history"]]:
                    turns += [("user", old_prompt), ("assistant", old_response)]
            query = [ex[c] for c in (cols["prompt"], cols["query"]) if c and ex[c]]
            turns += [("user", "\n".join(query)), ("assistant", ex[cols["response"]])]
        else:
            role, content = tags["role_tag"], tags["content_tag"]
            messages = ex[cols["messages"]]
            if tags["system_tag"] and messages and messages[0][role] == tags["system_tag"]:
                system, messages = messages[0][content], messages[1:]
            accept = ((tags["user_tag"], tags["observation_tag"]),
                      (tags["assistant_tag"], tags["function_tag"]))
            names = {tags["user_tag"]: "user", tags["assistant_tag"]: "assistant",
                     tags["observation_tag"]: "observation", tags["function_tag"]: "function"}
            for k, message in enumerate(messages):
                assert message[role] in accept[k % 2], (k, messages)
            assert len(messages) % 2 == 0, messages
            turns = [(names[m[role]], m[content]) for m in messages]
        out.append({"system": system or "", "tools": ex[cols["tools"]] if cols["tools"] else "",
                    "turns": turns})
    return out


def _as_winnow(example: dict) -> list[tuple[str, str]]:
    """A LLaMA-Factory reading as winnow's (role, content) turns."""
    roles = {"user": "user", "assistant": "assistant", "observation": "tool",
             "function": "assistant"}
    head = [("system", example["system"])] if example["system"] else []
    return head + [(roles[r], c) for r, c in example["turns"]]


@pytest.mark.parametrize("suffix", [".jsonl", ".json", ".parquet"])
def test_alpaca_round_trips_through_each_format(shared_data, tmp_path, suffix):
    pool = load_pool(shared_data / "alpaca_en_demo.json")
    want = [_turns(pool.conversations[i]) for i in PICK]
    for fmt in ("alpaca", "sharegpt", "messages"):
        out = tmp_path / f"sub_{fmt}{suffix}"
        info = write_subset(pool, PICK, out, out_format=fmt, dataset_info=True)
        assert info == tmp_path / "dataset_info.json"
        direct = load_pool(out)  # the format detected from the file alone
        assert direct.source.format == fmt
        assert [_turns(c) for c in direct.conversations] == want
        entry = load_pool(tmp_path, dataset=out.stem)  # through the written entry
        assert [_turns(c) for c in entry.conversations] == want
        assert entry.ids == direct.ids
    # the Alpaca rewrite keeps instruction and input apart
    rows = load_pool(tmp_path / f"sub_alpaca{suffix}")
    assert rows.conversations == [pool.conversations[i] for i in PICK]


def test_sharegpt_with_tools_and_function_calls(shared_data, tmp_path):
    pool = load_pool(shared_data / "glaive_toolcall_en_demo.json")
    raw = json.loads((shared_data / "glaive_toolcall_en_demo.json").read_text())
    for fmt in ("sharegpt", "messages"):
        out = tmp_path / f"tools_{fmt}.jsonl"
        write_subset(pool, range(40), out, out_format=fmt, dataset_info=True)
        back = load_pool(tmp_path, dataset=out.stem)
        assert back.conversations == pool.conversations[:40]
        assert back.extra["tools"] == pool.extra["tools"][:40]
    # ShareGPT gets the file's own turns back, function calls included
    assert [r["conversations"] for r in _read_jsonl(tmp_path / "tools_sharegpt.jsonl")] == [
        r["conversations"] for r in raw[:40]]
    with pytest.raises(DataError, match=r"glaive_toolcall_en_demo.json, record 0: example "
                       r"'\w+' cannot be written as alpaca: turn 4 is tool.*no tool turns"):
        write_subset(pool, [0], tmp_path / "tools.json", out_format="alpaca")


def test_pool_fields_and_ids_are_kept(shared_data, tmp_path):
    pool = load_pool(shared_data / "mixed_pool.jsonl")
    pick = [0, 500, 1500, 3000]
    for fmt in ("alpaca", "sharegpt", "messages"):
        out = tmp_path / f"mixed_{fmt}.jsonl"
        write_subset(pool, pick, out, out_format=fmt)
        back = load_pool(out)
        assert back.ids == [pool.ids[i] for i in pick]
        assert back.extra["domain"] == [pool.extra["domain"][i] for i in pick]
    assert list(_read_jsonl(tmp_path / "mixed_messages.jsonl")[0]) == ["messages", "domain",
                                                                       "id"]


def test_multi_turn_and_system_as_alpaca(shared_data, tmp_path):
    """Earlier exchanges become Alpaca history and the system turn its system field; a
    conversation that does not end with an assistant turn is refused."""
    recs = [{"messages": [{"role": "system", "content": "Be brief."},
                          {"role": "user", "content": "Hi"},
                          {"role": "assistant", "content": "Hello."},
                          {"role": "user", "content": "Capital of Peru?"},
                          {"role": "assistant", "content": "Lima."}]},
            {"messages": [{"role": "user", "content": "2+2?"},
                          {"role": "assistant", "content": "4"}]},
            {"messages": [{"role": "user", "content": "Q"}, {"role": "assistant", "content": "A"},
                          {"role": "user", "content": "trailing"}]}]
    src = tmp_path / "chat.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in recs))
    pool = load_pool(src)
    out = tmp_path / "chat_alpaca.json"
    write_subset(pool, [0, 1], out, out_format="alpaca", dataset_info=True)
    rows = json.loads(out.read_text())
    assert rows[0] == {"instruction": "Capital of Peru?", "input": "", "output": "Lima.",
                       "system": "Be brief.", "history": [["Hi", "Hello."]]}
    assert rows[1]["system"] == "" and rows[1]["history"] == []
    assert [_turns(c) for c in load_pool(tmp_path, dataset="chat_alpaca").conversations] == [
        _turns(pool.conversations[0]), _turns(pool.conversations[1])]
    lf = _llamafactory_read(tmp_path, "chat_alpaca")
    assert [_as_winnow(e) for e in lf] == [_turns(pool.conversations[0]),
                                          _turns(pool.conversations[1])]
    for fmt in ("alpaca", "messages"):
        with pytest.raises(DataError, match=r"chat.jsonl, record 2: .*does not end with an "
                           "assistant turn"):
            write_subset(pool, [2], tmp_path / "x.jsonl", out_format=fmt)


def test_dataset_info_entries_follow_llamafactory(shared_data, tmp_path):
    """Entries merge into an existing dataset_info.json, name the file by its stem, and
    LLaMA-Factory (read independently) sees winnow's conversations in every format."""
    shutil.copy(shared_data / "dataset_info.json", tmp_path / "dataset_info.json")
    shutil.copy(shared_data / "alpaca_en_demo.json", tmp_path / "alpaca_en_demo.json")
    before = read_info(tmp_path / "dataset_info.json")
    alpaca = load_pool(tmp_path, dataset="alpaca_en_demo")
    tools = load_pool(shared_data / "glaive_toolcall_en_demo.json")
    written = {}
    for fmt in (None, "alpaca", "sharegpt", "messages"):
        for pool, tag in ((alpaca, "a"), (tools, "t")):
            if fmt == "alpaca" and tag == "t":
                continue
            out = tmp_path / f"{tag}_{fmt or 'own'}.jsonl"
            write_subset(pool, PICK[:6], out, out_format=fmt, dataset_info=True)
            written[out.stem] = pool, fmt
    info = read_info(tmp_path / "dataset_info.json")
    assert {k: info[k] for k in before} == before  # the 112 entries are untouched
    assert set(info) - set(before) == set(written)
    assert info["a_messages"] == {
        "file_name": "a_messages.jsonl", "formatting": "sharegpt",
        "columns": {"messages": "messages"},
        "tags": {"role_tag": "role", "content_tag": "content", "user_tag": "user",
                 "assistant_tag": "assistant", "observation_tag": "tool",
                 "function_tag": "function_call", "system_tag": "system"}}
    assert info["a_alpaca"] == {"file_name": "a_alpaca.jsonl", "columns": {
        "prompt": "instruction", "query": "input", "response": "output"}}
    assert info["t_sharegpt"]["columns"] == {"messages": "conversations", "tools": "tools"}
    for name, (pool, fmt) in written.items():
        lf = _llamafactory_read(tmp_path, name)
        want = [_turns(pool.conversations[i]) for i in PICK[:6]]
        if pool is alpaca and fmt in (None, "alpaca"):
            # LLaMA-Factory joins an Alpaca instruction and input with one newline
            want = [[(r, c.replace("\n\n", "\n", 1) if r == "user" and t.get("input") else c)
                     for (r, c), t in zip(w, pool.conversations[i])]
                    for w, i in zip(want, PICK[:6])]
        assert [_as_winnow(e) for e in lf] == want, name
        if pool is tools:
            assert [e["tools"] for e in lf] == [pool.extra["tools"][i] for i in PICK[:6]]
        back = load_pool(tmp_path, dataset=name)
        assert [_turns(c) for c in back.conversations] == [
            _turns(pool.conversations[i]) for i in PICK[:6]]
    # the same subset written again replaces its own entry; another file's entry is kept
    write_subset(alpaca, PICK[:2], tmp_path / "a_own.jsonl", dataset_info=True)
    assert read_info(tmp_path / "dataset_info.json") == info
    with pytest.raises(DataError, match=r"dataset_info.json, field 'alpaca_en_demo': entry "
                       "'alpaca_en_demo' already describes other data"):
        write_subset(alpaca, PICK[:2], tmp_path / "sub" / ".." / "alpaca_en_demo.jsonl",
                     dataset_info=True)
    assert read_info(tmp_path / "dataset_info.json") == info


def test_python_api_returns_datasets(shared_data, tmp_path):
    recipe = tmp_path / "words.yaml"
    recipe.write_text(WORDS_RECIPE)
    ds = datasets.Dataset.from_json(str(shared_data / "mixed_pool.jsonl"))
    result = winnow.select(ds, str(recipe), budget=25, cache_dir=tmp_path / "cache")
    assert isinstance(result, winnow.SelectResult)
    manifest = result.write(tmp_path / "s.jsonl")
    assert manifest["outputs"]["dataset_info"] == str(tmp_path / "dataset_info.json")
    subset_rows = _read_jsonl(tmp_path / "s.jsonl")
    score_rows = _read_jsonl(tmp_path / "s.scores.jsonl")

    subset = result.subset
    assert isinstance(subset, datasets.Dataset) and len(subset) == 25
    assert subset.features["domain"] == ds.features["domain"]  # the pool's features kept
    assert subset.column_names == [*ds.column_names, "words", "rank"]  # own ids: no copy
    chosen = {r["id"]: r for r in score_rows if r["selected"]}
    for row, written in zip(subset, subset_rows):
        assert {k: row[k] for k in written} == written
        assert row["words"] == chosen[row["id"]]["words"] > 20
        assert row["rank"] == chosen[row["id"]]["rank"]
    assert sorted(subset["rank"]) == list(range(25))

    scores = result.scores
    assert isinstance(scores, datasets.Dataset) and len(scores) == len(ds)
    for row, written in zip(scores, score_rows):
        detail = row.pop("fate_detail")
        assert (json.loads(detail) if detail is not None else None) == written.pop(
            "fate_detail")
        assert row == written
    assert set(scores["fate_reason"]) == {None, "filtered", "ranked-out"}

    messages = winnow.select(ds, str(recipe), budget=25, cache_dir=tmp_path / "cache",
                             out_format="messages")
    messages.write(tmp_path / "m.jsonl")
    m_rows = _read_jsonl(tmp_path / "m.jsonl")
    assert [{k: r[k] for k in m_rows[0]} for r in messages.subset] == m_rows
    assert messages.subset["id"] == subset["id"]
    assert read_info(tmp_path / "dataset_info.json")["m"]["columns"] == {
        "messages": "messages"}

    with pytest.raises(ValueError, match="out_format must be one of"):
        winnow.select(ds, "random", budget=3, out_format="chatml")
    by_path = winnow.select(shared_data / "alpaca_en_demo.json", "random", budget=5, seed=3)
    assert by_path.subset.column_names == ["instruction", "input", "output", "id", "rank"]
    assert by_path.data == str(shared_data / "alpaca_en_demo.json")


def test_messages_rows_suit_trl(shared_data, tmp_path):
    """TRL's own data utilities take the messages rows as conversational data and render
    them with the built-in model's chat template."""
    from trl.data_utils import apply_chat_template, is_conversational

    from winnow.models.causal_lm import load_tokenizer

    pool = load_pool(shared_data / "glaive_toolcall_en_demo.json")
    result = winnow.select(shared_data / "alpaca_en_demo.json", "random", budget=8, seed=0,
                           out_format="messages")
    write_subset(pool, range(8), tmp_path / "tools.jsonl", out_format="messages")
    tokenizer = load_tokenizer()
    rows = list(result.subset) + _read_jsonl(tmp_path / "tools.jsonl")
    for row in rows:
        roles = [m["role"] for m in row["messages"]]
        assert roles[-1] == "assistant" and "system" not in roles[1:]
        turns = roles[1:] if roles[0] == "system" else roles
        assert turns[0::2] == ["user" if r == "user" else "tool" for r in turns[0::2]]
        assert set(turns[1::2]) == {"assistant"}
        assert is_conversational(row)
        text = apply_chat_template({"messages": row["messages"]}, tokenizer)["text"]
        position = 0
        for message in row["messages"]:
            position = text.index(message["content"], position)
    # TRL's SFTTrainer json-parses a tools string into the chat template's tool list
    assert all(isinstance(json.loads(r["tools"]), list) for r in rows[8:] if r["tools"])


def _hub_snapshot(cache: Path, repo: str, files: dict[str, str]) -> str:
    """A Hugging Face hub cache holding one snapshot of dataset ``repo``, laid out as a
    download leaves it (content-addressed blobs, a snapshot of links to them, refs/main);
    returns the commit."""
    base = cache / ("datasets--" + repo.replace("/", "--"))
    commit = hashlib.sha1(repo.encode()).hexdigest()
    for rel, text in files.items():
        blob = base / "blobs" / hashlib.sha256(text.encode()).hexdigest()
        blob.parent.mkdir(parents=True, exist_ok=True)
        blob.write_text(text, encoding="utf-8")
        link = base / "snapshots" / commit / rel
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(os.path.relpath(blob, link.parent))
    (base / "refs").mkdir()
    (base / "refs" / "main").write_text(commit)
    return commit


def test_hub_entries_load_offline_from_the_local_cache(shared_data, tmp_path, monkeypatch):
    hub = tmp_path / "hf" / "hub"
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(hub))
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    alpaca = json.loads((shared_data / "alpaca_en_demo.json").read_text())[:30]
    tools = json.loads((shared_data / "glaive_toolcall_en_demo.json").read_text())[:12]
    readme = ("---\nconfigs:\n- config_name: default\n  data_files:\n  - split: train\n"
              "    path: data/train.jsonl\n- config_name: tools\n  data_files:\n"
              "  - split: train\n    path: tools/train.json\n---\n# test dataset\n")
    commit = _hub_snapshot(hub, "winnow-test/demo", {
        "README.md": readme,
        "data/train.jsonl": "".join(json.dumps(r) + "\n" for r in alpaca),
        "tools/train.json": json.dumps(tools)})
    _hub_snapshot(hub, "winnow-test/folders", {
        "v2/train.jsonl": "".join(json.dumps(r) + "\n" for r in alpaca[10:20]),
        "v2/test.jsonl": "".join(json.dumps(r) + "\n" for r in alpaca[20:25])})
    info = {
        "demo": {"hf_hub_url": "winnow-test/demo", "ms_hub_url": "elsewhere/demo"},
        "demo_pinned": {"hf_hub_url": "winnow-test/demo", "revision": commit},
        "demo_tools": {"hf_hub_url": "winnow-test/demo", "subset": "tools",
                       "formatting": "sharegpt",
                       "columns": {"messages": "conversations", "tools": "tools"}},
        "folder_test": {"hf_hub_url": "winnow-test/folders", "folder": "v2", "split": "test"},
        "not_cached": {"hf_hub_url": "winnow-test/absent"},
        "old_revision": {"hf_hub_url": "winnow-test/demo", "revision": "0" * 40},
        "no_subset": {"hf_hub_url": "winnow-test/demo", "subset": "missing"},
    }
    (tmp_path / "dataset_info.json").write_text(json.dumps(info))
    direct = load_pool(shared_data / "alpaca_en_demo.json")

    demo = load_pool(tmp_path, dataset="demo")
    assert demo.source.path == "hf://datasets/winnow-test/demo"
    assert demo.source.file_type == "dataset" and demo.conversations == direct.conversations[:30]
    assert load_pool(tmp_path, dataset="demo_pinned").ids == demo.ids
    demo_tools = load_pool(tmp_path, dataset="demo_tools")
    glaive = load_pool(shared_data / "glaive_toolcall_en_demo.json")
    assert demo_tools.conversations == glaive.conversations[:12]
    assert demo_tools.extra["tools"] == glaive.extra["tools"][:12]
    assert load_pool(tmp_path, dataset="folder_test").ids == direct.ids[20:25]

    for name, message in (
            ("not_cached", "field 'not_cached.hf_hub_url': entry 'not_cached': the Hugging "
                           "Face dataset 'winnow-test/absent' is not in the local cache"),
            ("old_revision", "'winnow-test/demo' at revision '0000000000000000000000000000"),
            ("no_subset", "field 'no_subset': entry 'no_subset': cannot load the cached copy")):
        with pytest.raises(DataError, match=message):
            load_pool(tmp_path, dataset=name)

    runner = CliRunner()
    out = tmp_path / "out" / "picked.jsonl"
    args = ["select", "random", "--data", str(tmp_path / "dataset_info.json"), "--budget",
            "5", "--out", str(out), "--no-report", "--cache-dir", str(tmp_path / "cache")]
    done = runner.invoke(app, [*args, "--dataset", "demo"], catch_exceptions=False)
    assert done.exit_code == 0, done.output
    picked = _read_jsonl(out)
    assert len(picked) == 5 and all(r in alpaca for r in picked)
    assert read_info(out.parent / "dataset_info.json")["picked"]["columns"] == {
        "prompt": "instruction", "query": "input", "response": "output"}
    refused = runner.invoke(app, [*args, "--dataset", "not_cached"], catch_exceptions=False)
    assert refused.exit_code == 2
    assert str(tmp_path / "dataset_info.json") in refused.output
    assert "entry 'not_cached'" in refused.output and "hf download" in refused.output


def test_dataset_pool_errors():
    ds = datasets.Dataset.from_list([{"instruction": "Hi", "output": "Hello."},
                                     {"instruction": "Bye", "output": None}])
    with pytest.raises(DataError, match=r"<datasets.Dataset>, record 1, field 'output'"):
        load_pool(ds)
    assert load_pool(ds, on_error="skip").ids == load_pool(ds.select([0])).ids
    with pytest.raises(DataError, match="a DatasetDict: pass one split"):
        load_pool(datasets.DatasetDict({"train": ds}))
    with pytest.raises(TypeError, match="not list"):
        load_pool([{"instruction": "Hi", "output": "Hello."}])


def test_messages_output_trains_a_few_steps_in_trls_sft_trainer(shared_data, tmp_path):
    """`winnow select --out-format messages` writes a file that TRL's SFTTrainer loads
    through `datasets` and trains the built-in model on: two steps, each with a finite
    positive loss."""
    import math

    from datasets import load_dataset
    from transformers import AutoModelForCausalLM
    from trl import SFTConfig, SFTTrainer

    from winnow.models.causal_lm import ensure_default_model, load_tokenizer

    out = tmp_path / "subset.jsonl"
    result = CliRunner().invoke(app, ["select", "random", "--data",
                                      str(shared_data / "alpaca_en_demo.json"), "--budget",
                                      "8", "--out", str(out), "--out-format", "messages",
                                      "--no-report"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    train = load_dataset("json", data_files=str(out), split="train",
                         cache_dir=str(tmp_path / "hf"))
    tokenizer = load_tokenizer()
    model = AutoModelForCausalLM.from_pretrained(ensure_default_model())
    config = SFTConfig(output_dir=str(tmp_path / "sft"), max_steps=2,
                       per_device_train_batch_size=4, max_length=256, learning_rate=1e-5,
                       logging_steps=1, report_to=[], save_strategy="no", use_cpu=True,
                       dataset_num_proc=None, bf16=False)
    trainer = SFTTrainer(model=model, args=config, train_dataset=train,
                         processing_class=tokenizer)
    assert trainer.train_dataset.num_rows == 8
    history = trainer.train().metrics
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    assert len(losses) == 2 and all(math.isfinite(x) and x > 0 for x in losses), history

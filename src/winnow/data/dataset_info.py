"""LLaMA-Factory ``dataset_info.json`` entries: a name → a local file (or a Hugging Face
dataset in the local cache) and how to read it; and the entry that describes a written
subset.

An entry has ``file_name`` (relative to the folder of ``dataset_info.json``) or
``hf_hub_url`` (with optional ``subset``, ``folder``, ``split`` and ``revision``; as in
LLaMA-Factory it takes precedence over ``file_name``), ``formatting`` (``alpaca``, the
default, ``sharegpt``, or ``openai``), ``columns`` (prompt/query/response/history/system/
tools for Alpaca; messages/system/tools for ShareGPT; chosen/rejected with
``ranking: true``) and ``tags`` (ShareGPT role and content keys). As in LLaMA-Factory, only
the mapped columns are read: an Alpaca entry uses no system prompt or history unless it maps
them. Preference entries are read with the chosen answer as the response.
"""

from __future__ import annotations

import difflib
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from winnow.data.errors import DataError
from winnow.data.formats import Spec, make_spec

INFO_NAME = "dataset_info.json"
HUB_KEYS = ("ms_hub_url", "om_hub_url", "script_url", "cloud_file_name")  # not read
HF_KEYS = ("hf_hub_url", "subset", "folder", "split", "revision")
TAG_NAMES = ("role_tag", "content_tag", "user_tag", "assistant_tag", "observation_tag",
             "function_tag", "system_tag")


@dataclass(frozen=True)
class Entry:
    """A resolved entry: its name, the data file (or save_to_disk folder) or, for an
    ``hf_hub_url`` entry, ``hub`` (its ``HF_KEYS``), and the spec."""

    name: str
    path: Path | None
    spec: Spec
    hub: dict[str, str] | None = None


def info_path_of(path: Path) -> Path | None:
    """``path`` itself if it is a dataset_info.json, the one inside a LLaMA-Factory data
    folder, else ``None``."""
    if path.is_file() and path.name == INFO_NAME:
        return path
    if path.is_dir() and (path / INFO_NAME).is_file() and not (path / "state.json").exists():
        return path / INFO_NAME
    return None


def read_info(info_path: Path) -> dict[str, dict]:
    """The entries of a dataset_info.json."""
    try:
        info = json.loads(info_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise DataError(f"malformed JSON: {e.msg}", str(info_path), line=e.lineno) from None
    if not isinstance(info, dict):
        raise DataError("dataset_info.json must map dataset names to entries", str(info_path))
    return info


def resolve_entry(info_path: Path, name: str | None,
                  columns: dict[str, str | None] | None = None) -> Entry:
    """The entry ``name`` of ``info_path``; ``columns`` (and tags) override the entry's."""
    info_path = Path(info_path)
    info = read_info(info_path)
    if name is None:
        local = [k for k, v in info.items() if isinstance(v, dict) and "file_name" in v]
        raise DataError("name the dataset entry to read (--dataset NAME); entries with local "
                        f"files: {', '.join(local[:20])}{' ...' if len(local) > 20 else ''}",
                        str(info_path))
    if name not in info:
        close = difflib.get_close_matches(name, list(info), n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise DataError(f"no dataset entry {name!r}{hint}", str(info_path), field=name)
    entry = info[name]
    if not isinstance(entry, dict):
        raise DataError("entry must be an object", str(info_path), field=name)
    hub, path = None, None
    if entry.get("hf_hub_url"):
        hub = {k: str(entry[k]) for k in HF_KEYS if entry.get(k) is not None}
    elif "file_name" not in entry:
        other = [k for k in HUB_KEYS if k in entry]
        why = (f"it points to {other[0]} {entry[other[0]]!r}; winnow reads local files and "
               "Hugging Face datasets (hf_hub_url) in the local cache" if other
               else "it has no file_name")
        raise DataError(f"entry {name!r} cannot be read: {why}", str(info_path),
                        field=f"{name}.file_name")
    else:
        path = info_path.parent / entry["file_name"]
    if path is not None and not path.exists():
        raise DataError(f"entry {name!r} names {entry['file_name']!r}, which does not exist "
                        f"next to {INFO_NAME}", str(path), field=f"{name}.file_name")
    formatting = entry.get("formatting", "alpaca")
    if formatting not in ("alpaca", "sharegpt", "openai"):
        raise DataError(f"unknown formatting {formatting!r}", str(info_path),
                        field=f"{name}.formatting")
    cols = {k: v for k, v in (entry.get("columns") or {}).items()
            if k in ("prompt", "query", "response", "history", "messages", "system", "tools")}
    if entry.get("ranking"):
        cols["chosen"] = (entry.get("columns") or {}).get("chosen", "chosen")
    tags = dict(entry.get("tags") or {})
    cols.update(columns or {})
    try:
        if formatting == "alpaca":
            spec = make_spec("alpaca", cols, defaults=False)
        else:
            if formatting == "openai":
                tags = {"role_tag": "role", "content_tag": "content", "user_tag": "user",
                        "assistant_tag": "assistant", "observation_tag": "tool",
                        "system_tag": "system"} | tags
            fmt = "messages" if tags.get("role_tag") == "role" else "sharegpt"
            cols.setdefault("messages", "conversations")
            spec = make_spec(fmt, cols, tags, defaults=False)
    except ValueError as e:
        raise DataError(str(e), str(info_path), field=name) from None
    return Entry(name, path, spec, hub)


def load_hub(info_path: Path, entry: Entry):
    """The ``datasets.Dataset`` of an ``hf_hub_url`` entry, from the local Hugging Face hub
    cache (``HF_HUB_CACHE``; a snapshot that ``hf download`` or an earlier
    ``datasets.load_dataset`` left there), loaded with ``datasets.load_dataset`` as
    LLaMA-Factory loads it (subset, folder, split). Never downloads: a dataset that is not
    cached is a ``DataError`` naming the file and the entry."""
    from datasets import load_dataset
    from huggingface_hub import constants, snapshot_download

    hub = entry.hub or {}
    repo, revision = hub["hf_hub_url"], hub.get("revision")
    where = f"{repo!r}" + (f" at revision {revision!r}" if revision else "")
    try:
        folder = snapshot_download(repo, repo_type="dataset", revision=revision,
                                   local_files_only=True)
    except (FileNotFoundError, ValueError):  # not cached; or not a valid repo id
        raise DataError(f"entry {entry.name!r}: the Hugging Face dataset {where} is not in the "
                        f"local cache ({constants.HF_HUB_CACHE}); winnow does not download: "
                        f"fetch it once (hf download {repo} --repo-type dataset) and run again",
                        str(info_path), field=f"{entry.name}.hf_hub_url") from None
    try:
        return load_dataset(folder, name=hub.get("subset"), data_dir=hub.get("folder"),
                            split=hub.get("split", "train"))
    except (FileNotFoundError, ValueError, KeyError) as e:
        raise DataError(f"entry {entry.name!r}: cannot load the cached copy of {where} "
                        f"({folder}): {e}", str(info_path), field=entry.name) from None


def subset_entry(file_name: str, spec: Spec, fields: set[str]) -> dict[str, Any]:
    """The LLaMA-Factory entry of a file of records read by ``spec`` whose fields are
    ``fields``: ``formatting``, and every column and tag written out (LLaMA-Factory reads an
    unlisted column as absent, and an unlisted tag as none)."""
    if spec.chat:
        roles = ("messages", "system", "tools")
    else:
        roles = ("prompt", "query", "response", "history", "system", "tools")
    columns = {r: spec.columns[r] for r in roles if spec.columns.get(r) in fields}
    entry: dict[str, Any] = {"file_name": file_name}
    if spec.columns.get("chosen"):  # preference data keeps its pairs
        entry["ranking"] = True
        columns.pop("response", None)
        columns["chosen"] = spec.columns["chosen"]
        if "rejected" in fields:
            columns["rejected"] = "rejected"
    if spec.chat:
        entry["formatting"] = "sharegpt"
    entry["columns"] = columns
    if spec.chat:
        entry["tags"] = {k: spec.tags[k] for k in TAG_NAMES if spec.tags.get(k)}
    return entry


def add_entry(info_path: Path, name: str, entry: dict[str, Any]) -> None:
    """Add (or replace) entry ``name`` of ``info_path``, keeping every other entry; an
    existing entry of that name for another file is a ``DataError``. The write is atomic."""
    info_path = Path(info_path)
    info = read_info(info_path) if info_path.exists() else {}
    old = info.get(name)
    if old is not None and (not isinstance(old, dict)
                            or old.get("file_name") != entry["file_name"]
                            or any(k in old for k in ("hf_hub_url", *HUB_KEYS))):
        raise DataError(f"entry {name!r} already describes other data ({json.dumps(old)}); "
                        "name the subset file differently", str(info_path), field=name)
    info[name] = entry
    fd, tmp = tempfile.mkstemp(dir=info_path.parent, prefix=f".{INFO_NAME}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(json.dumps(info, indent=2, ensure_ascii=False) + "\n")
        os.replace(tmp, info_path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise

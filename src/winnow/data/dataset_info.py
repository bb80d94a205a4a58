"""LLaMA-Factory ``dataset_info.json`` entries: a name → a local file and how to read it.

An entry has ``file_name`` (relative to the folder of ``dataset_info.json``), ``formatting``
(``alpaca``, the default, ``sharegpt``, or ``openai``), ``columns`` (prompt/query/response/
history/system/tools for Alpaca; messages/system/tools for ShareGPT; chosen/rejected with
``ranking: true``) and ``tags`` (ShareGPT role and content keys). As in LLaMA-Factory, only
the mapped columns are read: an Alpaca entry uses no system prompt or history unless it maps
them. Preference entries are read with the chosen answer as the response.
"""

from __future__ import annotations

import difflib
import json
from dataclasses import dataclass
from pathlib import Path

from winnow.data.errors import DataError
from winnow.data.formats import Spec, make_spec

INFO_NAME = "dataset_info.json"
HUB_KEYS = ("hf_hub_url", "ms_hub_url", "om_hub_url", "script_url", "cloud_file_name")


@dataclass(frozen=True)
class Entry:
    """A resolved entry: its name, the data file (or save_to_disk folder) and the spec."""

    name: str
    path: Path
    spec: Spec


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
    if "file_name" not in entry:
        hub = [k for k in HUB_KEYS if k in entry]
        why = (f"it points to {hub[0]} {entry[hub[0]]!r}; winnow reads local files only"
               if hub else "it has no file_name")
        raise DataError(f"entry {name!r} cannot be read: {why}", str(info_path),
                        field=f"{name}.file_name")
    path = info_path.parent / entry["file_name"]
    if not path.exists():
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
    return Entry(name, path, spec)

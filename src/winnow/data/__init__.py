"""The data layer: read a pool of examples from any supported file and write subsets back.

>>> pool = load_pool("alpaca_en_demo.json")                # format and file type detected
>>> write_subset(pool, [3, 1, 4], "subset.json")           # same schema, records unchanged
>>> write_subset(pool, [3, 1, 4], "subset.jsonl", out_format="messages", dataset_info=True)

``load_pool`` reads .json (array or JSON Lines), .jsonl, .parquet, .csv, a ``datasets``
folder saved with ``save_to_disk``, a ``datasets.Dataset``, or an entry of a LLaMA-Factory
``dataset_info.json`` (a local file, or a Hugging Face dataset in the local cache), in the
Alpaca, ShareGPT, OpenAI messages or plain prompt/response formats.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from itertools import chain, islice
from os import PathLike
from pathlib import Path
from typing import Any

import numpy as np

from winnow.data.convert import OUT_FORMATS, convert_records
from winnow.data.dataset_info import (
    INFO_NAME,
    add_entry,
    info_path_of,
    load_hub,
    resolve_entry,
    subset_entry,
)
from winnow.data.errors import DataError
from winnow.data.files import (
    as_record,
    dataset_rows,
    file_type_of,
    out_type_of,
    read_rows,
    write_records,
)
from winnow.data.formats import (
    FORMATS,
    RecordError,
    Spec,
    detect_format,
    extra_fields,
    make_spec,
    to_conversation,
)
from winnow.data.pool import ROLES, Pool, Source, content_id, last_exchange

__all__ = ["FORMATS", "OUT_FORMATS", "ROLES", "DataError", "Pool", "Source", "content_id",
           "last_exchange", "load_pool", "subset_records", "write_subset"]

DETECT_ROWS = 100  # records looked at to detect the format
MAX_ERRORS = 5  # errors kept in ``pool.source.options["errors"]`` when skipping


DATASET_LABEL = "<datasets.Dataset>"  # the source path of a pool read from a Dataset


def load_pool(path, *, format: str | None = None,
              columns: dict[str, str | None] | None = None, dataset: str | None = None,
              on_error: str = "raise") -> Pool:
    """Read a pool of examples.

    path : a data file, a save_to_disk folder, a ``datasets.Dataset``, or a LLaMA-Factory
        ``dataset_info.json`` (or the folder holding one) together with ``dataset``, the
        entry name (its ``file_name``, or its ``hf_hub_url`` read from the local Hugging
        Face cache, see :func:`~winnow.data.dataset_info.load_hub`).
    format : "alpaca" | "columns" | "sharegpt" | "messages"; detected from the first
        records when ``None``.
    columns : field names by LLaMA-Factory column role (``prompt``, ``query``, ``response``,
        ``history``, ``system``, ``tools``, ``messages``, ``chosen``, ``id``) and tags
        (``role_tag``, ``content_tag``, ``user_tag``, ``assistant_tag``, ...), e.g.
        ``{"prompt": "question", "response": "answer"}``.
    on_error : "raise" (first bad record raises ``DataError``) or "skip" (bad records are
        left out; ``pool.skipped`` counts them and ``pool.source.options["errors"]`` keeps
        the first few messages).

    Ids are the records' ``id`` field when every record has one and they are unique, else a
    content hash (repeats of identical content get ``-2``, ``-3``, ... suffixes). Scalar
    fields outside the conversation (``domain``, ``category``, ...) go to ``pool.extra``;
    a record's tool description goes to ``pool.extra["tools"]``.
    """
    if on_error not in ("raise", "skip"):
        raise ValueError(f"on_error must be 'raise' or 'skip', not {on_error!r}")
    path, file_type, spec, options, rows = _open(path, format, columns, dataset)
    head = list(islice(rows, DETECT_ROWS))
    if not head:
        raise DataError("empty file: no records", path)
    if spec is None:
        spec = _detect(path, head, rows, columns, on_error)

    ids_field = spec.columns.get("id")
    given_ids: list[Any] | None = []
    records: list[Any] = []
    conversations: list[list[dict[str, str]]] = []
    extra: dict[str, list[Any]] = {}
    errors: list[str] = []
    skipped = 0
    for row in chain(head, rows):
        try:
            if row.error:
                raise RecordError(row.error)
            conv, tools = to_conversation(row.value, spec)
        except RecordError as e:
            err = DataError(e.message, str(path), record=row.index, line=row.line,
                            field=e.field)
            if on_error == "raise":
                raise err from None
            skipped += 1
            if len(errors) < MAX_ERRORS:
                errors.append(str(err))
            continue
        n = len(records)
        fields = extra_fields(row.value, spec)
        if tools is not None:
            fields["tools"] = tools
        for key, value in fields.items():
            column = extra.get(key)
            if column is None:
                column = extra[key] = [None] * n
            column.append(value)
        if len(extra) > len(fields):
            for column in extra.values():
                if len(column) == n:
                    column.append(None)
        if given_ids is not None:
            rid = row.value.get(ids_field) if ids_field else None
            if isinstance(rid, (str, int)) and not isinstance(rid, bool):
                given_ids.append(str(rid))
            else:
                given_ids = None
        records.append(row.raw)
        conversations.append(conv)
    if not records:
        raise DataError(f"no usable records: all {skipped} were bad; first error: "
                        f"{errors[0] if errors else '?'}", str(path))

    if given_ids is not None and len(set(given_ids)) == len(given_ids):
        ids, id_source = given_ids, "field"
    else:
        ids, id_source = _content_ids(conversations, extra.get("tools")), "content"
    options.update(columns={k: v for k, v in spec.columns.items() if v}, tags=spec.tags,
                   ids=id_source, errors=errors)
    source = Source(str(path), file_type, spec.format, options)
    return Pool(ids, conversations, records, source, extra, skipped=skipped)


def _open(data, format: str | None, columns: dict[str, str | None] | None,
          dataset: str | None) -> tuple[str, str, Spec | None, dict[str, Any], Iterator]:
    """(source path, file type, the spec when known before reading, source options, rows)
    of what ``load_pool`` was given."""
    datasets = sys.modules.get("datasets")  # a Dataset exists only once datasets is imported
    if datasets is not None and isinstance(data, datasets.DatasetDict):
        raise DataError("a DatasetDict: pass one split (e.g. ds['train'])", DATASET_LABEL)
    if datasets is not None and isinstance(data, datasets.Dataset):
        if dataset is not None:
            raise DataError("a dataset entry name needs a dataset_info.json, not a "
                            "datasets.Dataset", DATASET_LABEL)
        options, rows = dataset_rows(data)
        return (DATASET_LABEL, "dataset", _given_spec(format, columns, DATASET_LABEL), options,
                rows)
    if not isinstance(data, (str, PathLike)):
        raise TypeError(f"a pool is read from a path or a datasets.Dataset, not "
                        f"{type(data).__name__}")
    path = Path(data)
    info = info_path_of(path)
    if info is None and dataset is None:
        file_type = file_type_of(path)
        options, rows = read_rows(path, file_type)
        return str(path), file_type, _given_spec(format, columns, str(path)), options, rows
    if info is None:
        raise DataError("a dataset name needs a dataset_info.json (or the folder holding "
                        "one) as the data path", str(path))
    entry = resolve_entry(info, dataset, columns)
    if format is not None and format != entry.spec.format:
        raise DataError(f"entry {entry.name!r} is {entry.spec.format}, not {format}",
                        str(info), field=entry.name)
    options = {"dataset": entry.name, "dataset_info": str(info)}
    if entry.hub is not None:
        file_options, rows = dataset_rows(load_hub(info, entry))
        return (f"hf://datasets/{entry.hub['hf_hub_url']}", "dataset", entry.spec,
                options | {"hub": entry.hub} | file_options, rows)
    file_type = file_type_of(entry.path)
    file_options, rows = read_rows(entry.path, file_type)
    return str(entry.path), file_type, entry.spec, options | file_options, rows


def _given_spec(format: str | None, columns: dict[str, str | None] | None,
                where: str) -> Spec | None:
    """The spec of an explicit ``format``; ``None`` to detect it."""
    if format is None:
        return None
    try:
        return make_spec(format, columns)
    except ValueError as e:
        raise DataError(str(e), where) from None


def _detect(path: str, head: list, rows: Iterator, columns: dict[str, str | None] | None,
            on_error: str) -> Spec:
    """The spec of the records in ``head``; when skipping, rows are read into ``head``
    until one is a JSON object."""
    values = [r.value for r in head if isinstance(r.value, dict)]
    while not values and on_error == "skip":
        row = next(rows, None)
        if row is None:
            break
        head.append(row)
        if isinstance(row.value, dict):
            values.append(row.value)
    if not values:
        bad = next((r for r in head if r.error), None)
        if bad is not None and on_error == "raise":
            raise DataError(bad.error, str(path), record=bad.index, line=bad.line)
        if bad is not None:
            first = DataError(bad.error, str(path), record=bad.index, line=bad.line)
            raise DataError(f"no usable records: all {len(head)} were bad; first error: "
                            f"{first}", str(path))
        raise DataError("unknown format: no record is a JSON object", str(path))
    try:
        return detect_format(values, columns)
    except (RecordError, ValueError) as e:
        raise DataError(str(e), str(path)) from None


def _content_ids(conversations: list[list[dict[str, str]]],
                 tools: list[str | None] | None) -> list[str]:
    """Content hashes, made unique by suffixing repeats with -2, -3, ..."""
    ids: list[str] = []
    seen: dict[str, int] = {}
    for k, conv in enumerate(conversations):
        key = conv if not tools or tools[k] is None else [*conv, {"tools": tools[k]}]
        cid = content_id(key)
        count = seen.get(cid, 0) + 1
        seen[cid] = count
        ids.append(cid if count == 1 else f"{cid}-{count}")
    return ids


def subset_records(pool: Pool, indices, out_format: str | None = None) -> list[Any]:
    """The records at ``indices`` (sorted, repeats dropped): the pool's own (raw JSONL
    lines stay bytes) or, with ``out_format`` (one of ``OUT_FORMATS``), converted by
    :func:`~winnow.data.convert.convert_records`."""
    idx = np.unique(np.asarray(indices, dtype=np.int64).reshape(-1))
    if idx.size and (idx[0] < 0 or idx[-1] >= len(pool)):
        raise IndexError(f"indices must lie in [0, {len(pool)}); got {idx[0]}..{idx[-1]}")
    if out_format is None:
        return [pool.records[i] for i in idx]
    return convert_records(pool, idx.tolist(), out_format)


def write_subset(pool: Pool, indices, out_path: str | PathLike, *,
                 out_format: str | None = None, dataset_info: bool = False) -> Path | None:
    """Write the records at ``indices`` (positions in ``pool``) to ``out_path``.

    Records are written in pool order (indices are sorted, repeats dropped): unchanged, in
    the input's schema, or converted to ``out_format`` (``alpaca``, ``sharegpt`` or
    ``messages``). The file type is the input's when ``out_path`` has the input's suffix,
    else the one its suffix names (.json, .jsonl, .parquet, .csv). Unchanged JSONL lines
    are copied byte for byte; JSON arrays keep the input's indentation; parquet and
    save_to_disk output keep the input's schema. The write is atomic.

    With ``dataset_info``, the file's LLaMA-Factory entry (named after the file's stem, so
    that ``dataset: <stem>`` trains on it) is added to the ``dataset_info.json`` beside it,
    other entries kept; returns that file's path, or ``None`` for a save_to_disk folder,
    which LLaMA-Factory does not read.
    """
    records = subset_records(pool, indices, out_format)
    out_path = Path(out_path)
    src = pool.source
    out_type = out_type_of(out_path, src.path, src.file_type)
    if out_format is None:
        write_records(records, out_path, out_type, src.path, src.file_type, src.options)
        spec = Spec(src.format, src.options["columns"], src.options["tags"])
    else:  # new records: no source layout to reuse
        write_records(records, out_path, out_type, "", out_format, {})
        spec = make_spec(out_format, {"tools": "tools"})
    if not dataset_info or out_type == "arrow":
        return None
    fields = {key for rec in records for key in as_record(rec)}
    info_path = out_path.parent / INFO_NAME
    add_entry(info_path, out_path.stem, subset_entry(out_path.name, spec, fields))
    return info_path

"""Reading and writing record files: .json (array), .jsonl, .parquet, .csv and ``datasets``
folders saved with ``save_to_disk`` ("arrow"); and reading an in-memory ``datasets.Dataset``
("dataset").

Readers yield ``Row``s in file order and keep what the writer needs to reproduce the file:
JSONL rows keep their raw line bytes (written back byte for byte), JSON arrays their
indentation, parquet/arrow their schema (re-read from the source at write time), CSV its
header. Every write is atomic: a temporary file (or folder) renamed into place.
"""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from winnow.data.errors import DataError

FILE_TYPES = ("json", "jsonl", "parquet", "csv", "arrow")
SUFFIXES = {".json": "json", ".jsonl": "jsonl", ".ndjson": "jsonl", ".parquet": "parquet",
            ".csv": "csv"}


@dataclass
class Row:
    """One record as read.

    index : 0-based record index in the file.
    line : 1-based line where the record starts (text files), else ``None``.
    raw : what a writer writes back (line bytes for JSONL, the record otherwise).
    value : the parsed record, or ``None`` when ``error`` says why it could not be parsed.
    """

    index: int
    line: int | None
    raw: Any
    value: Any
    error: str | None = None


def file_type_of(path: Path) -> str:
    """The file type of an input path; ``DataError`` when it is not one winnow reads."""
    if path.is_dir():
        if (path / "state.json").exists():
            return "arrow"
        if (path / "dataset_dict.json").exists():
            raise DataError("this is a DatasetDict saved with save_to_disk; pass the folder of "
                            "one split (e.g. <folder>/train)", str(path))
        raise DataError("folder is neither a save_to_disk dataset (state.json) nor a "
                        "LLaMA-Factory data folder (dataset_info.json)", str(path))
    if not path.exists():
        raise DataError("no such file", str(path))
    kind = SUFFIXES.get(path.suffix.lower())
    if kind is None:
        raise DataError(f"unknown file type {path.suffix!r}; use .json, .jsonl, .parquet, "
                        ".csv or a save_to_disk folder", str(path))
    if kind == "json" and _first_char(path) == "{":
        return "jsonl"  # JSON Lines under a .json name, as datasets' json loader accepts
    return kind


def out_type_of(out_path: Path, source_path: str, source_type: str) -> str:
    """The file type to write at ``out_path``: the source's type when the suffix is the
    same (or absent, for a save_to_disk source), else the type its suffix names."""
    suffix = out_path.suffix.lower()
    if suffix == Path(source_path).suffix.lower() and (suffix or source_type == "arrow"):
        return source_type
    if suffix in SUFFIXES:
        return SUFFIXES[suffix]
    raise DataError(f"unknown output type {out_path.suffix!r}; use .json, .jsonl, .parquet "
                    "or .csv", str(out_path))


def _first_char(path: Path) -> str:
    with open(path, "rb") as f:
        head = f.read(4096).lstrip(b"\xef\xbb\xbf \t\r\n")
    return head[:1].decode("latin-1")


def read_rows(path: Path, file_type: str) -> tuple[dict[str, Any], Iterator[Row]]:
    """(options a writer needs, rows in file order) of a file of type ``file_type``."""
    path = Path(path)
    if file_type == "jsonl":
        return {}, _jsonl_rows(path)
    if file_type == "json":
        return _json_rows(path)
    if file_type == "csv":
        return _csv_rows(path)
    if file_type == "parquet":
        import pyarrow.parquet as pq

        try:
            table = pq.read_table(path)
        except Exception as e:  # pyarrow raises several types for corrupt files
            raise DataError(f"cannot read parquet: {e}", str(path)) from None
        return {}, _dict_rows(table.to_pylist())
    if file_type == "arrow":
        from datasets import load_from_disk

        return {}, _dict_rows(load_from_disk(str(path)).to_list())
    raise ValueError(f"unknown file type {file_type!r}")


def dataset_rows(ds) -> tuple[dict[str, Any], Iterator[Row]]:
    """(options, rows) of a ``datasets.Dataset``; the options keep its ``features``."""
    return {"features": ds.features}, _dict_rows(ds.to_list())


def _dict_rows(records: list[dict]) -> Iterator[Row]:
    for i, rec in enumerate(records):
        yield Row(i, None, rec, rec)


def _jsonl_rows(path: Path) -> Iterator[Row]:
    index = 0
    with open(path, "rb") as f:
        for lineno, line in enumerate(f, 1):
            if line.endswith(b"\n"):
                line = line[:-1]
            if lineno == 1 and line.startswith(b"\xef\xbb\xbf"):
                line = line[3:]
            if not line.strip():
                continue
            try:
                yield Row(index, lineno, line, json.loads(line))
            except (json.JSONDecodeError, UnicodeDecodeError) as e:
                msg = getattr(e, "msg", None) or str(e)
                yield Row(index, lineno, line, None, f"malformed JSON line: {msg}")
            index += 1


_INDENT = re.compile(r"\[\s*?\n([ \t]+)\S")


def _json_rows(path: Path) -> tuple[dict[str, Any], Iterator[Row]]:
    """A JSON array of records; each row's line is where its value starts."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as e:
        raise DataError(f"not UTF-8 text ({e.reason} at byte {e.start})", str(path)) from None
    m = _INDENT.match(text.lstrip())
    indent: int | str | None = None
    if m:
        ws = m.group(1)
        indent = len(ws) if set(ws) == {" "} else ws
    options = {"indent": indent, "newline": text.endswith("\n")}
    decoder = json.JSONDecoder()
    pos = _skip_ws(text, 0)
    if pos == len(text):
        return options, iter(())
    if text[pos] != "[":
        raise DataError("a .json file must hold a JSON array of records (or JSON Lines)",
                        str(path), line=text.count("\n", 0, pos) + 1)

    def rows() -> Iterator[Row]:
        p, line, seen, index = _skip_ws(text, pos + 1), 1, 0, 0
        if p < len(text) and text[p] == "]":
            return
        while True:
            line += text.count("\n", seen, p)
            seen = p
            try:
                value, end = decoder.raw_decode(text, p)
            except json.JSONDecodeError as e:
                raise DataError(f"malformed JSON: {e.msg} (column {e.colno})", str(path),
                                record=index, line=e.lineno) from None
            yield Row(index, line, value, value)
            index += 1
            p = _skip_ws(text, end)
            if p < len(text) and text[p] == ",":
                p = _skip_ws(text, p + 1)
                continue
            if p < len(text) and text[p] == "]":
                return
            raise DataError("malformed JSON: expected ',' or ']' after a record", str(path),
                            record=index - 1, line=text.count("\n", 0, p) + 1)

    return options, rows()


def _skip_ws(text: str, pos: int) -> int:
    n = len(text)
    while pos < n and text[pos] in " \t\r\n":
        pos += 1
    return pos


def _csv_rows(path: Path) -> tuple[dict[str, Any], Iterator[Row]]:
    """Comma-separated values with a header row; every value is a string."""
    f = open(path, newline="", encoding="utf-8-sig")
    try:
        reader = csv.DictReader(f)
        fieldnames = list(reader.fieldnames or [])
    except BaseException:
        f.close()
        raise
    options = {"fieldnames": fieldnames}

    def rows() -> Iterator[Row]:
        with f:
            start = reader.line_num + 1
            for index, rec in enumerate(reader):
                error = None
                if None in rec:
                    error = f"{len(rec.pop(None))} more cells than the header has columns"
                yield Row(index, start, rec, None if error else rec, error)
                start = reader.line_num + 1

    return options, rows()


# ---------------------------------------------------------------------------- writing


def as_record(raw: Any) -> Any:
    """A raw row (line bytes or record) as a record."""
    return json.loads(raw) if isinstance(raw, bytes) else raw


def write_records(raws: list[Any], out_path: Path, out_type: str, source_path: str,
                  source_type: str, options: dict[str, Any]) -> None:
    """Write raw rows to ``out_path`` as ``out_type``, reusing the source's layout options."""
    out_path = Path(out_path)
    if out_type == "arrow":
        _write_arrow(raws, out_path, source_path if source_type == "arrow" else None)
        return
    out_path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=out_path.parent, prefix=f".{out_path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        if out_type == "jsonl":
            _write_jsonl(raws, tmp)
        elif out_type == "json":
            same = source_type == "json"
            _write_json(raws, tmp, options.get("indent", 2) if same else 2,
                        options.get("newline", True) if same else True)
        elif out_type == "csv":
            _write_csv(raws, tmp, options if source_type == "csv" else {}, out_path)
        elif out_type == "parquet":
            _write_parquet(raws, tmp, source_path if source_type == "parquet" else None)
        else:
            raise ValueError(f"unknown file type {out_type!r}")
        os.replace(tmp, out_path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _write_jsonl(raws: list[Any], tmp: str) -> None:
    with open(tmp, "wb") as f:
        for raw in raws:
            if not isinstance(raw, bytes):
                raw = json.dumps(raw, ensure_ascii=False, default=str).encode()
            f.write(raw)
            f.write(b"\n")


def _write_json(raws: list[Any], tmp: str, indent: int | str | None, newline: bool) -> None:
    records = [as_record(r) for r in raws]
    text = json.dumps(records, ensure_ascii=False, indent=indent, default=str)
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text + ("\n" if newline else ""))


def _write_csv(raws: list[Any], tmp: str, options: dict[str, Any], out_path: Path) -> None:
    records = [as_record(r) for r in raws]
    fieldnames = list(options.get("fieldnames") or [])
    for rec in records:
        for key, value in rec.items():
            if key not in fieldnames:
                fieldnames.append(key)
            if isinstance(value, (list, dict)):
                raise DataError(f"CSV cannot hold the nested field '{key}'; write .jsonl, "
                                ".json or .parquet instead", str(out_path), field=key)
    with open(tmp, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=fieldnames)
        writer.writeheader()
        writer.writerows(records)


def _write_parquet(raws: list[Any], tmp: str, source_path: str | None) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    records = [as_record(r) for r in raws]
    schema = pq.read_schema(source_path) if source_path and Path(source_path).exists() else None
    pq.write_table(pa.Table.from_pylist(records, schema=schema), tmp)


def _write_arrow(raws: list[Any], out_path: Path, source_path: str | None) -> None:
    from datasets import Dataset, load_from_disk

    records = [as_record(r) for r in raws]
    features = None
    if source_path and Path(source_path).exists():
        features = load_from_disk(source_path).features
    ds = Dataset.from_list(records, features=features)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out_path.parent, prefix=f".{out_path.name}.", suffix=".tmp"))
    try:
        ds.save_to_disk(str(tmp))
        old = None
        if out_path.exists():
            old = out_path.with_name(f".{out_path.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(out_path, old)
        os.replace(tmp, out_path)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise

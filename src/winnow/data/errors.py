"""Errors raised on bad input: they always say where (file, record, field) and what to do."""

from __future__ import annotations


class DataError(ValueError):
    """A problem with an input file, located as precisely as possible.

    Parameters
    ----------
    message : what is wrong and, where possible, what to do about it.
    path : the file being read.
    record : 0-based record index (JSON array item, JSONL/CSV line index, parquet row).
    line : 1-based line number in a text file, when known.
    field : the field (column / key path) at fault.
    """

    def __init__(self, message: str, path: str | None = None, record: int | None = None,
                 line: int | None = None, field: str | None = None):
        self.message, self.path, self.record, self.line, self.field = (
            message, path, record, line, field)
        super().__init__(str(self))

    def __str__(self) -> str:
        where = []
        if self.path:
            where.append(str(self.path))
        if self.line is not None:
            where.append(f"line {self.line}")
        if self.record is not None:
            where.append(f"record {self.record}")
        if self.field:
            where.append(f"field '{self.field}'")
        return f"{', '.join(where)}: {self.message}" if where else self.message

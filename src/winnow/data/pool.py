"""The Pool: n examples with stable ids, normalised conversations and their original records.

Every format reader produces a Pool; every writer takes a Pool (or a subset of one) and
reproduces the input's schema and file type.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np

ROLES = ("system", "user", "assistant", "tool")


@dataclass(frozen=True)
class Source:
    """Where a pool came from, and everything a writer needs to reproduce it.

    path : the file or folder read.
    file_type : "json" | "jsonl" | "parquet" | "csv" | "arrow" (a ``save_to_disk`` folder).
    format : "alpaca" | "sharegpt" | "messages" | "columns".
    options : format details the writer needs (column mapping, JSON indentation, ...).
    """

    path: str
    file_type: str
    format: str
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class Pool:
    """A pool of instruction-tuning examples.

    ids : list of n unique string ids (the record's ``id`` field, or a content hash).
    conversations : list of n conversations, each a list of ``{"role", "content"}`` dicts
        with role in ``ROLES``; at least one assistant turn. Tool calls and observations
        are ``assistant`` / ``tool`` turns whose content is the call or result text. A user
        turn read from an Alpaca record also keeps its ``instruction`` and ``input`` keys
        (content is ``instruction + "\n\n" + input``) so the Alpaca template is exact.
    records : list of n original records (or raw JSONL lines as ``bytes``) for writing back.
    source : where it came from.
    extra : optional per-example columns taken from the records (e.g. ``domain``, ``subject``).
    skipped : how many bad records were skipped on reading (``on_error="skip"``).
    """

    ids: list[str]
    conversations: list[list[dict[str, str]]]
    records: list[Any]
    source: Source
    extra: dict[str, list[Any]] = field(default_factory=dict)
    skipped: int = 0
    _fingerprint: str | None = field(default=None, repr=False)

    def __len__(self) -> int:
        return len(self.ids)

    def fingerprint(self) -> str:
        """sha256 of ids and conversations: equal pools have equal fingerprints."""
        if self._fingerprint is None:
            h = hashlib.sha256()
            for i, conv in zip(self.ids, self.conversations):
                h.update(i.encode())
                h.update(b"\x00")
                for turn in conv:
                    for key in sorted(turn):
                        h.update(key.encode())
                        h.update(b"\x01")
                        h.update(str(turn[key]).encode())
                        h.update(b"\x02")
                h.update(b"\x03")
            self._fingerprint = h.hexdigest()
        return self._fingerprint

    def subset(self, indices) -> Pool:
        """The examples at ``indices``, in the given order."""
        idx = [int(i) for i in np.asarray(indices).reshape(-1)]
        return Pool(
            ids=[self.ids[i] for i in idx],
            conversations=[self.conversations[i] for i in idx],
            records=[self.records[i] for i in idx],
            source=self.source,
            extra={k: [v[i] for i in idx] for k, v in self.extra.items()},
        )

    def index_of(self, example_id: str) -> int:
        """Position of an example id; KeyError naming the id when absent."""
        try:
            return self.ids.index(example_id)
        except ValueError:
            raise KeyError(f"no example with id {example_id!r} in {self.source.path}") from None


def content_id(conversation: list[dict[str, str]]) -> str:
    """A stable id from the content of a conversation (first 16 hex digits of sha256)."""
    blob = json.dumps(conversation, ensure_ascii=False, sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def last_exchange(conversation: list[dict[str, str]]) -> tuple[str, str]:
    """(instruction, response) of the last user→assistant exchange."""
    response = ""
    for k in range(len(conversation) - 1, -1, -1):
        if conversation[k]["role"] == "assistant":
            response = conversation[k]["content"]
            for j in range(k - 1, -1, -1):
                if conversation[j]["role"] == "user":
                    return conversation[j]["content"], response
            return "", response
    return "", response

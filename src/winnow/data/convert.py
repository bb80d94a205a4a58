"""Write a pool's examples in another record format: Alpaca, ShareGPT or OpenAI messages
(``{"messages": [{"role", "content"}, ...]}``, the conversational rows TRL's SFTTrainer
takes).

A written conversation has the shape LLaMA-Factory trains on: an optional system turn, then
user (or tool) and assistant turns alternating, ending with an assistant turn; Alpaca also
has no tool turns. ShareGPT marks an assistant turn that a tool turn answers as a
``function_call``. An example of another shape is an error that names it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from winnow.data.errors import DataError
from winnow.data.files import as_record
from winnow.data.pool import Pool

OUT_FORMATS = ("alpaca", "sharegpt", "messages")
# Field names each format reads; a pool field of the same name is not carried over.
RESERVED = {"alpaca": {"instruction", "input", "output", "system", "history", "tools"},
            "sharegpt": {"conversations", "system", "tools"},
            "messages": {"messages", "system", "tools"}}
SHAREGPT_ROLES = {"user": "human", "assistant": "gpt", "tool": "observation"}


def convert_records(pool: Pool, indices: Iterable[int], fmt: str) -> list[dict[str, Any]]:
    """The examples at ``indices`` as ``fmt`` records.

    The conversation fields come first, then the example's scalar fields (``domain``, its
    ``id`` field, ...). Optional fields (``system``, ``history``, ``tools``) are on every
    record (empty, or null ``tools``, where an example has none: TRL parses any tools
    string) when any example has one, else on none.
    """
    if fmt not in OUT_FORMATS:
        raise ValueError(f"unknown output format {fmt!r}; choose one of "
                         f"{', '.join(OUT_FORMATS)}")
    tools = pool.extra.get("tools")
    id_field = pool.source.options.get("columns", {}).get("id")
    records = []
    for i in indices:
        system, turns = _split(pool, i, fmt)
        rec = WRITERS[fmt](system, turns, tools[i] if tools else None)
        for key, column in pool.extra.items():
            if key not in RESERVED[fmt]:
                rec[key] = column[i]
        raw = as_record(pool.records[i]) if id_field else {}
        if id_field in raw and id_field not in RESERVED[fmt]:
            rec[id_field] = raw[id_field]
        records.append(rec)
    for key in ("system", "history", "tools"):
        if records and key in records[0] and not any(rec[key] for rec in records):
            for rec in records:
                del rec[key]
    return records


def _split(pool: Pool, i: int, fmt: str) -> tuple[str, list[dict[str, str]]]:
    """(system prompt, the other turns) of example ``i``, checked against the shape above."""
    conv = pool.conversations[i]
    system = conv[0]["content"] if conv[0]["role"] == "system" else ""
    turns = conv[1:] if conv[0]["role"] == "system" else conv
    expected = ("user", "tool") if fmt != "alpaca" else ("user",)
    for k, turn in enumerate(turns):
        want = expected if k % 2 == 0 else ("assistant",)
        if turn["role"] not in want:
            hint = (" (Alpaca has no tool turns; write sharegpt or messages)"
                    if turn["role"] == "tool" and fmt == "alpaca" else "")
            raise DataError(f"example {pool.ids[i]!r} cannot be written as {fmt}: turn {k} is "
                            f"{turn['role']}, expected {' or '.join(want)}{hint}",
                            pool.source.path, record=i)
    if not turns or len(turns) % 2:
        raise DataError(f"example {pool.ids[i]!r} cannot be written as {fmt}: it does not end "
                        "with an assistant turn", pool.source.path, record=i)
    return system, turns


def _alpaca(system: str, turns: list[dict[str, str]], tools: str | None) -> dict[str, Any]:
    user, answer = turns[-2], turns[-1]
    history = [[turns[k]["content"], turns[k + 1]["content"]]
               for k in range(0, len(turns) - 2, 2)]
    return {"instruction": user.get("instruction", user["content"]),
            "input": user.get("input", ""), "output": answer["content"], "system": system,
            "history": history, "tools": tools}


def _sharegpt(system: str, turns: list[dict[str, str]], tools: str | None) -> dict[str, Any]:
    conv = []
    for k, turn in enumerate(turns):
        called = turn["role"] == "assistant" and k + 1 < len(turns) and turns[k + 1][
            "role"] == "tool"
        conv.append({"from": "function_call" if called else SHAREGPT_ROLES[turn["role"]],
                     "value": turn["content"]})
    return {"conversations": conv, "system": system, "tools": tools}


def _messages(system: str, turns: list[dict[str, str]], tools: str | None) -> dict[str, Any]:
    head = [{"role": "system", "content": system}] if system else []
    return {"messages": head + [{"role": t["role"], "content": t["content"]} for t in turns],
            "tools": tools}


WRITERS = {"alpaca": _alpaca, "sharegpt": _sharegpt, "messages": _messages}

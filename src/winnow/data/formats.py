"""Record formats: detect Alpaca / ShareGPT / OpenAI messages / plain columns and normalise
one record to a conversation (a list of ``{"role", "content"}`` turns, see ``pool.ROLES``).

The column and tag vocabulary is LLaMA-Factory's (``dataset_info.json``):

- columns: ``prompt`` ``query`` ``response`` ``history`` ``system`` ``tools`` (Alpaca
  family), ``messages`` ``system`` ``tools`` (ShareGPT family), ``chosen`` (preference data:
  the chosen answer is read as the response), ``id`` (winnow's own: the id field).
- tags (ShareGPT family): ``role_tag`` ``content_tag`` ``user_tag`` ``assistant_tag``
  ``observation_tag`` ``function_tag`` ``system_tag``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

FORMATS = ("alpaca", "columns", "sharegpt", "messages")

ALPACA_COLUMNS = {"prompt": "instruction", "query": "input", "response": "output",
                  "history": "history", "system": "system", "tools": None, "chosen": None,
                  "id": "id"}
CHAT_COLUMNS = {"messages": "conversations", "system": "system", "tools": "tools",
                "chosen": None, "id": "id"}
SHAREGPT_TAGS = {"role_tag": "from", "content_tag": "value", "user_tag": "human",
                 "assistant_tag": "gpt", "observation_tag": "observation",
                 "function_tag": "function_call", "system_tag": "system"}
MESSAGES_TAGS = {"role_tag": "role", "content_tag": "content", "user_tag": "user",
                 "assistant_tag": "assistant", "observation_tag": "tool",
                 "function_tag": "function_call", "system_tag": "system"}

# Role names met in the wild, mapped to pool roles; explicit tags take precedence.
ROLE_ALIASES = {
    "human": "user", "user": "user",
    "gpt": "assistant", "assistant": "assistant", "chatgpt": "assistant", "model": "assistant",
    "function_call": "assistant",
    "observation": "tool", "tool": "tool", "function": "tool",
    "system": "system",
}
SCALARS = (str, int, float, bool, type(None))
# Fields a prompt/response file may use when no column mapping is given.
PLAIN_PAIRS = (("prompt", "response"), ("prompt", "completion"), ("question", "answer"))


class RecordError(ValueError):
    """A bad record; the reader adds file, line and record index."""

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.message, self.field = message, field


@dataclass(frozen=True)
class Spec:
    """How to read a record.

    format : one of ``FORMATS``.
    columns : logical column → field name (``None``: not read).
    tags : ShareGPT-family tags (empty for the Alpaca family).
    """

    format: str
    columns: dict[str, str | None]
    tags: dict[str, str] = field(default_factory=dict)

    @property
    def chat(self) -> bool:
        return self.format in ("sharegpt", "messages")

    def consumed(self) -> set[str]:
        """Record fields this spec turns into the conversation (or the id)."""
        return {v for v in self.columns.values() if v}


def make_spec(format: str, columns: dict[str, str | None] | None = None,
              tags: dict[str, str] | None = None, defaults: bool = True) -> Spec:
    """A spec for ``format`` with LLaMA-Factory-style ``columns``/``tags`` overrides.

    ``columns`` may also hold tags (keys ending in ``_tag``). With ``defaults=False`` only
    the columns LLaMA-Factory reads by default are used (no implicit system/history/tools).
    """
    if format not in FORMATS:
        raise ValueError(f"unknown format {format!r}; choose one of {', '.join(FORMATS)}")
    columns = dict(columns or {})
    tags = dict(tags or {}) | {k: columns.pop(k) for k in list(columns) if k.endswith("_tag")}
    if format in ("alpaca", "columns"):
        base = dict(ALPACA_COLUMNS)
        if not defaults:
            base.update(history=None, system=None)
        unknown = set(columns) - set(base)
        if unknown:
            raise ValueError(f"unknown column role(s) {sorted(unknown)} for format {format}; "
                             f"known: {', '.join(base)}")
        return Spec(format, base | columns)
    base = dict(CHAT_COLUMNS)
    if format == "messages":
        base["messages"] = "messages"
    if not defaults:
        base.update(system=None, tools=None)
    unknown = set(columns) - set(base)
    if unknown:
        raise ValueError(f"unknown column role(s) {sorted(unknown)} for format {format}; "
                         f"known: {', '.join(base)}")
    base_tags = MESSAGES_TAGS if format == "messages" else SHAREGPT_TAGS
    return Spec(format, base | columns, base_tags | tags)


def _turn_list_key(record: dict, names: tuple[str, ...]) -> tuple[str, str] | None:
    """(field, role key) of the first field holding a list of role-tagged turns."""
    for name in names:
        turns = record.get(name)
        if isinstance(turns, list) and turns and isinstance(turns[0], dict):
            for key in ("role", "from"):
                if key in turns[0]:
                    return name, key
    return None


def detect_format(records: list[dict], columns: dict[str, str | None] | None = None) -> Spec:
    """Guess the spec from the first records (dicts); ``columns`` overrides field names.

    Raises ``RecordError`` when no known format fits.
    """
    columns = dict(columns or {})
    keys = [k for k in columns if not k.endswith("_tag")]
    if "messages" in keys:
        names = (columns["messages"],)
    elif keys:
        return make_spec("columns" if _non_alpaca(columns) else "alpaca", columns)
    else:
        names = ("messages", "conversations", "conversation")
    for rec in records:
        found = _turn_list_key(rec, names)
        if found:
            name, role_key = found
            fmt = "messages" if role_key == "role" else "sharegpt"
            return make_spec(fmt, columns | {"messages": name})
        if "messages" in keys:
            continue
        if "instruction" in rec or ("output" in rec and "input" in rec):
            return make_spec("alpaca", columns)
        for prompt, response in PLAIN_PAIRS:
            if prompt in rec and response in rec:
                return make_spec("columns", {"prompt": prompt, "response": response})
    first = sorted(records[0]) if records else []
    raise RecordError(
        f"unknown format: the first record has fields {first}; expected Alpaca "
        "(instruction/input/output), ShareGPT (conversations with from/value), OpenAI "
        "messages (messages with role/content) or prompt/response; pass the format and a "
        "column mapping (e.g. --format columns --columns prompt=question,response=answer)")


def _non_alpaca(columns: dict[str, str | None]) -> bool:
    return any(columns.get(k) not in (None, ALPACA_COLUMNS[k])
               for k in ("prompt", "query", "response") if k in columns)


def _text(value: Any, where: str, required: bool = True) -> str:
    """A string field: ``None`` reads as empty (nullable columns), anything else is an error."""
    if isinstance(value, str):
        return value
    if value is None and not required:
        return ""
    kind = "missing" if value is None else f"{_a(type(value).__name__)}, not a string"
    raise RecordError(f"{where} is {kind}", where)


def _a(noun: str) -> str:
    return f"{'an' if noun[0] in 'aeiou' else 'a'} {noun}"


def _content(value: Any, where: str) -> str:
    """Message content: a string, or a list of ``{type: text, text|value}`` parts (joined)."""
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        parts = []
        for k, part in enumerate(value):
            if not isinstance(part, dict):
                raise RecordError(f"{where}[{k}] is {_a(type(part).__name__)}, not a content "
                                  "part like {type: text, text: ...}", f"{where}[{k}]")
            if part.get("type", "text") != "text":
                raise RecordError(f"content part of type {part.get('type')!r} is not text; "
                                  "only text content is supported", f"{where}[{k}]")
            text = part.get("text", part.get("value"))
            parts.append(_text(text, f"{where}[{k}].text"))
        return "".join(parts)
    return _text(value, where)


def to_conversation(record: Any, spec: Spec) -> tuple[list[dict[str, str]], str | None]:
    """(conversation, tools) of one record; ``RecordError`` names the bad field.

    ``tools`` is the record's tool description as text (JSON-encoded if it was not a
    string), or ``None``.
    """
    if not isinstance(record, dict):
        raise RecordError(f"record is {_a(type(record).__name__)}, not an object")
    conv = _chat(record, spec) if spec.chat else _alpaca(record, spec)
    tools = None
    tools_col = spec.columns.get("tools")
    if tools_col and record.get(tools_col) not in (None, "", []):
        value = record[tools_col]
        tools = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return conv, tools


def _alpaca(record: dict, spec: Spec) -> list[dict[str, str]]:
    col = spec.columns
    conv: list[dict[str, str]] = []
    if col["system"] and record.get(col["system"]):
        conv.append({"role": "system", "content": _text(record[col["system"]], col["system"])})
    if col["history"] and record.get(col["history"]):
        conv.extend(_history(record[col["history"]], col["history"]))
    if col["prompt"] not in record:
        raise RecordError(f"no prompt: field '{col['prompt']}' is missing", col["prompt"])
    instruction = _text(record[col["prompt"]], col["prompt"], required=False)
    query = _text(record.get(col["query"]), col["query"], required=False) if col["query"] else ""
    content = instruction + "\n\n" + query if instruction and query else instruction or query
    conv.append({"role": "user", "content": content, "instruction": instruction,
                 "input": query})
    name = col["chosen"] or col["response"]
    response = _response(record.get(name) if name else None, name or "output")
    conv.append({"role": "assistant", "content": response})
    return conv


def _response(value: Any, where: str) -> str:
    if isinstance(value, dict):  # a preference answer given as a turn
        value = value.get("value", value.get("content"))
        where = where + ".value"
    if value is None:
        raise RecordError(f"no response: field '{where}' is missing", where)
    text = _text(value, where)
    if not text.strip():
        raise RecordError(f"empty response in field '{where}'", where)
    return text


def _history(history: Any, where: str) -> list[dict[str, str]]:
    if not isinstance(history, list):
        raise RecordError(f"{where} must be a list of [prompt, response] pairs", where)
    turns = []
    for k, pair in enumerate(history):
        if not isinstance(pair, (list, tuple)) or len(pair) != 2:
            raise RecordError(f"{where}[{k}] must be a [prompt, response] pair",
                              f"{where}[{k}]")
        turns.append({"role": "user", "content": _text(pair[0], f"{where}[{k}][0]")})
        turns.append({"role": "assistant", "content": _text(pair[1], f"{where}[{k}][1]")})
    return turns


def _chat(record: dict, spec: Spec) -> list[dict[str, str]]:
    col, tags = spec.columns, spec.tags
    name = col["messages"]
    turns = record.get(name)
    if turns is None:
        raise RecordError(f"no conversation: field '{name}' is missing", name)
    if not isinstance(turns, list):
        raise RecordError(f"{name} is {_a(type(turns).__name__)}, not a list of turns", name)
    roles = ROLE_ALIASES | {tags["user_tag"]: "user", tags["assistant_tag"]: "assistant",
                            tags["observation_tag"]: "tool", tags["function_tag"]: "assistant",
                            tags["system_tag"]: "system"}
    role_key, content_key = tags["role_tag"], tags["content_tag"]
    conv: list[dict[str, str]] = []
    paths: list[str] = []  # the field each turn came from, for error messages
    if col["system"] and record.get(col["system"]):
        conv.append({"role": "system", "content": _text(record[col["system"]], col["system"])})
        paths.append(col["system"])
    for k, turn in enumerate(turns):
        where = f"{name}[{k}]"
        if not isinstance(turn, dict):
            raise RecordError(f"{where} is {_a(type(turn).__name__)}, not an object", where)
        tag = turn.get(role_key)
        role = roles.get(tag) if isinstance(tag, str) else None
        if role is None:
            raise RecordError(f"unknown role {tag!r} in {where}.{role_key}",
                              f"{where}.{role_key}")
        if role == "system" and k == 0 and conv:
            conv.pop(0)  # a system turn in the messages overrides the system column
            paths.pop(0)
        content = turn.get(content_key)
        if content is None and turn.get("tool_calls"):
            content = _tool_calls(turn["tool_calls"], f"{where}.tool_calls")
        conv.append({"role": role, "content": _content(content, f"{where}.{content_key}")})
        paths.append(f"{where}.{content_key}")
    if col["chosen"]:
        conv.append({"role": "assistant",
                     "content": _response(record.get(col["chosen"]), col["chosen"])})
        paths.append(col["chosen"])
    last = max((k for k, t in enumerate(conv) if t["role"] == "assistant"), default=None)
    if last is None:
        hint = ("; for preference data map the chosen answer (columns chosen=chosen)"
                if "chosen" in record else "")
        raise RecordError(f"no response: {name} has no assistant turn{hint}", name)
    if not conv[last]["content"].strip():
        raise RecordError(f"empty response in {paths[last]}", paths[last])
    return conv


def _tool_calls(calls: Any, where: str) -> str:
    """OpenAI ``tool_calls`` as the JSON text of their functions."""
    if not isinstance(calls, list):
        raise RecordError(f"{where} must be a list", where)
    functions = [c.get("function", c) if isinstance(c, dict) else c for c in calls]
    return json.dumps(functions[0] if len(functions) == 1 else functions, ensure_ascii=False)


def extra_fields(record: dict, spec: Spec) -> dict[str, Any]:
    """Scalar fields of a record that are not part of its conversation."""
    used = spec.consumed()
    return {k: v for k, v in record.items() if k not in used and isinstance(v, SCALARS)}

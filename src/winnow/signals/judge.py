"""The generic judge signal: ask a judge model about every example with a prompt file.

A **prompt file** (YAML; shipped ones live in ``winnow/signals/prompts/<name>.yaml``) holds:

- ``template`` (required): the text sent, with the fields ``{instruction}``, ``{input}``,
  ``{response}`` and ``{query}`` (the user turn: instruction and input) filled from the
  example's last (user, assistant) exchange, or from each one with ``per_turn``. Other braces
  are left as they are (JSON examples need no escaping).
- ``template_no_input``: the text sent instead when the exchange's input is empty (methods
  whose official prompt drops the Input block then, e.g. LIFT).
- ``endpoint``: ``chat`` (the template is the user message; ``system`` the system message) or
  ``completion`` (the template is raw text, no chat template, no system message).
- ``parse``: a parser of :mod:`winnow.signals.judge_parsers`; ``parse_options``: its options
  (``digits``, ``fallback``, ``top_logprobs``).
- ``temperature``, ``max_tokens``: sampling parameters sent with each request (the signal's
  ``max_tokens`` parameter overrides the file's: a cap on a judge's cost, part of the cache
  key since it changes the replies).
- ``source`` (the official repository and file the text comes from), ``notes``.

**Columns** (``column`` defaults to the prompt's name with ``-`` → ``_``):

- ``<column>``: the parsed value (float, NaN when missing; for ``json-tags`` the list of tags,
  None when missing); with ``per_turn``, the turns' values reduced by ``turn_reduce``
  (``sum``, ``mean`` or ``first``; NaN when a turn is NaN).
- ``<column>_reply``: the raw reply text (None when no reply came, and for
  ``backend: transformers``, which reads logits instead of generating); a list per turn with
  ``per_turn``.
- ``<column>_error``: why the value is missing or a fallback (the HTTP failure, ``unparseable:
  ...``, ``fallback: ...``), None when it was read; turns prefixed ``turn k:``.
- ``<column>_fallback`` (parsers with a fallback): True where the declared fallback was used.
- ``<column>_turns`` (``per_turn``): the list of per-turn values.

Object columns are cached as JSON text (nothing is pickled) and returned as object arrays.

**Judge**: ``backend: server`` asks the built-in llama.cpp server (started for the call and
stopped after it; ``gguf``, ``slots``, ``threads``, ``ctx_size``) or, with ``url``, any
OpenAI-compatible endpoint (``model``, ``api_key_env``: the *name* of the variable holding
the key). ``backend: transformers`` reads next-token probabilities in process from a causal LM
(``model``: HF id or path, default the built-in SmolLM2; ``dtype``): the digits for
``digits-expectation``, every one-token spelling of yes and no (" Yes", "no", ...) for
``yes-no`` (p(yes) over the whole vocabulary's softmax, renormalised over yes and no).

**Caching**: the columns are cached per shard by the Store; every reply is also cached as it
arrives under ``<store root>/judge-replies/``, so a run killed mid-shard asks again only for
what has no reply. Columns with requests that got no reply (after the client's retries) are
returned but not kept, so that a rerun asks for those again. The cache key holds the prompt's
content, the parser and its options, the column layout and the judge's identity (the GGUF's
sha256, the endpoint's model name, or the transformers model's identity and dtype); ``url``,
``api_key_env``, ``slots``, ``threads``, ``ctx_size``, ``concurrency``, ``retries``,
``timeout`` and ``batch_size`` only decide how the work runs. Shards run in this process
whatever the executor: the parallelism is the judge's.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from importlib import resources
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import yaml

from winnow.data.pool import Pool
from winnow.data.templates import user_parts
from winnow.models.chat import DEFAULT_KEY_ENV, Result
from winnow.signals.base import Columns, Signal
from winnow.signals.judge_parsers import ParseError, Parser, make_parser
from winnow.store import Store

log = logging.getLogger(__name__)

PROMPT_KEYS = {"system", "template", "template_no_input", "endpoint", "parse",
               "parse_options", "temperature", "max_tokens", "source", "notes"}
FIELDS = ("instruction", "input", "response", "query")
REDUCE = ("sum", "mean", "first")
BACKENDS = ("server", "transformers")
REPLY_DIR = "judge-replies"
STAT_KEYS = ("calls", "cached", "failed", "unparseable", "fallback", "prompt_tokens",
             "completion_tokens", "seconds")


@dataclass(frozen=True)
class Prompt:
    """A loaded prompt file (see the module docstring)."""

    name: str
    path: str
    template: str
    system: str | None = None
    endpoint: str = "chat"
    parse: str | None = None
    parse_options: dict[str, Any] | None = None
    temperature: float = 0.0
    max_tokens: int = 256
    source: str = ""
    notes: str = ""
    template_no_input: str | None = None

    def content_key(self) -> str:
        """sha256 of what is sent (system, templates, endpoint, sampling)."""
        sent = [self.system, self.template, self.endpoint, self.temperature, self.max_tokens]
        if self.template_no_input is not None:
            sent.append(self.template_no_input)
        blob = json.dumps(sent, ensure_ascii=False).encode()
        return hashlib.sha256(blob).hexdigest()

    def fill(self, fields: dict[str, str]) -> str:
        out = self.template
        if self.template_no_input is not None and not fields["input"]:
            out = self.template_no_input
        for name in FIELDS:
            out = out.replace("{" + name + "}", fields[name])
        return out


def shipped_prompts() -> list[str]:
    """Names of the prompt files shipped with winnow."""
    folder = resources.files("winnow.signals") / "prompts"
    if not folder.is_dir():
        return []
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".yaml"))


def load_prompt(prompt: str | Path) -> Prompt:
    """A shipped prompt by name, or a prompt file by path; errors name the file and key."""
    shipped = resources.files("winnow.signals") / "prompts" / f"{prompt}.yaml"
    if shipped.is_file():
        path, text = str(shipped), shipped.read_text(encoding="utf-8")
    else:
        p = Path(prompt).expanduser()
        if not p.is_file():
            raise ValueError(f"judge prompt {prompt!r}: neither a shipped prompt (known: "
                             f"{', '.join(shipped_prompts()) or 'none'}) nor a file")
        path, text = str(p), p.read_text(encoding="utf-8")
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ValueError(f"judge prompt {path}: not valid YAML ({e})") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("template"), str):
        raise ValueError(f"judge prompt {path}: a mapping with a 'template' text is required")
    if not isinstance(doc.get("template_no_input", ""), str):
        raise ValueError(f"judge prompt {path}: template_no_input is a text")
    unknown = sorted(set(doc) - PROMPT_KEYS)
    if unknown:
        raise ValueError(f"judge prompt {path}: unknown keys {unknown}; "
                         f"allowed: {sorted(PROMPT_KEYS)}")
    endpoint = doc.get("endpoint", "chat")
    if endpoint not in ("chat", "completion"):
        raise ValueError(f"judge prompt {path}: endpoint is chat or completion, not {endpoint!r}")
    if endpoint == "completion" and doc.get("system"):
        raise ValueError(f"judge prompt {path}: a completion prompt has no system message; "
                         f"write it into the template")
    if not isinstance(doc.get("parse_options") or {}, dict):
        raise ValueError(f"judge prompt {path}: parse_options is a mapping")
    name = Path(path).name[:-5] if path.endswith(".yaml") else Path(path).stem
    return Prompt(name=name, path=path, template=doc["template"], system=doc.get("system"),
                  endpoint=endpoint, parse=doc.get("parse"),
                  parse_options=doc.get("parse_options"),
                  temperature=float(doc.get("temperature", 0.0)),
                  max_tokens=int(doc.get("max_tokens", 256)),
                  source=str(doc.get("source") or ""), notes=str(doc.get("notes") or ""),
                  template_no_input=doc.get("template_no_input"))


def exchanges(conversation: list[dict[str, Any]]) -> list[tuple[dict[str, Any] | None, str]]:
    """(user turn, assistant reply) of each user turn with the last assistant turn before
    the next user turn; a leading assistant turn counts only when there is no user turn."""
    pairs: list[tuple[dict[str, Any] | None, str]] = []
    user, answer = None, None
    for turn in conversation:
        if turn["role"] == "user":
            if answer is not None:
                pairs.append((user, answer))
            user, answer = turn, None
        elif turn["role"] == "assistant":
            answer = turn["content"]
    if answer is not None:
        pairs.append((user, answer))
    asked = [p for p in pairs if p[0] is not None]
    return asked or pairs


def fields_of(user: dict[str, Any] | None, response: str) -> dict[str, str]:
    """The template fields of one exchange."""
    if user is None:
        return {"instruction": "", "input": "", "query": "", "response": response}
    instruction, inp = user_parts(user)
    return {"instruction": instruction, "input": inp, "query": str(user["content"]),
            "response": response}


class Judge(Signal):
    """Ask a judge about every example (see the module docstring for every parameter)."""

    name: ClassVar[str] = "judge"
    version: ClassVar[str] = "1"
    shard_size: ClassVar[int] = 256

    def __init__(self, prompt: str, parse: str | None = None,
                 parse_options: dict[str, Any] | None = None, column: str | None = None,
                 per_turn: bool = False, turn_reduce: str = "sum", *,
                 backend: str = "server", url: str | None = None, model: str | None = None,
                 api_key_env: str = DEFAULT_KEY_ENV, gguf: str | None = None,
                 slots: int | None = None, threads: int | None = None,
                 ctx_size: int | None = None, concurrency: int | None = None,
                 retries: int = 4, timeout: float = 600.0, dtype: str = "fp32",
                 batch_size: int = 8, max_tokens: int | None = None):
        super().__init__()
        self.prompt = load_prompt(prompt)
        if max_tokens is not None:
            if int(max_tokens) < 1:
                raise ValueError(f"judge: max_tokens is a positive count, not {max_tokens!r}")
            self.prompt = replace(self.prompt, max_tokens=int(max_tokens))
        parse = parse or self.prompt.parse
        if not parse:
            raise ValueError(f"judge prompt {self.prompt.path}: no parser; set parse in the "
                             f"prompt file or as a signal parameter")
        options = {**(self.prompt.parse_options or {}), **(parse_options or {})}
        self.parser: Parser = make_parser(parse, **options)
        self.column = column or self.prompt.name.replace("-", "_")
        if turn_reduce not in REDUCE:
            raise ValueError(f"judge: turn_reduce is one of {', '.join(REDUCE)}, "
                             f"not {turn_reduce!r}")
        if per_turn and self.parser.object_valued:
            raise ValueError(f"judge: per_turn needs a numeric parser, not {self.parser.name}")
        if backend not in BACKENDS:
            raise ValueError(f"judge: backend is one of {', '.join(BACKENDS)}, not {backend!r}")
        server_options = {k: v for k, v in (("gguf", gguf), ("slots", slots),
                                            ("threads", threads), ("ctx_size", ctx_size))
                          if v is not None}
        if backend == "transformers":
            if self.parser.name not in ("digits-expectation", "yes-no"):
                raise ValueError("judge: backend transformers reads next-token probabilities; "
                                 "it needs parse digits-expectation or yes-no, not "
                                 f"{self.parser.name}")
            if url or server_options:
                raise ValueError("judge: url, gguf, slots, threads and ctx_size are options of "
                                 "backend server")
        elif url and server_options:
            raise ValueError(f"judge: {', '.join(server_options)} configure the built-in "
                             f"server; with url the endpoint is already running")
        elif url is None and model is not None:
            raise ValueError("judge: the built-in server serves a GGUF file; pass gguf, or "
                             "url with model for another endpoint")
        self.per_turn, self.turn_reduce, self.backend = bool(per_turn), turn_reduce, backend
        self.url, self.model, self.api_key_env = url, model, api_key_env
        self.server_options, self.concurrency = server_options, concurrency
        self.retries, self.timeout = retries, timeout
        self.dtype, self.batch_size = dtype, batch_size
        self._session: Any = None
        self._identity: dict[str, Any] | None = None
        self._stats = dict.fromkeys(STAT_KEYS, 0)

    # -- what the columns are ------------------------------------------------------------

    @classmethod
    def output_columns(cls, params: dict[str, Any]) -> tuple[str, ...]:
        if not params.get("prompt"):
            raise ValueError("signal 'judge' needs a prompt (a shipped prompt's name or a file)")
        prompt = load_prompt(params["prompt"])
        column = params.get("column") or prompt.name.replace("-", "_")
        parse = params.get("parse") or prompt.parse or ""
        parser = make_parser(parse, **{**(prompt.parse_options or {}),
                                       **(params.get("parse_options") or {})})
        return _layout(column, parser, bool(params.get("per_turn")))[0]

    def object_columns(self) -> tuple[str, ...]:
        return _layout(self.column, self.parser, self.per_turn)[1]

    def get_params(self) -> dict[str, Any]:
        """What decides the values: prompt name, parser and its options, column layout,
        backend (the judge itself is in :meth:`identity`)."""
        out = {"prompt": self.prompt.name, "parse": self.parser.name,
               "parse_options": self.parser.get_params(), "column": self.column,
               "per_turn": self.per_turn, "turn_reduce": self.turn_reduce,
               "backend": self.backend}
        if self.backend == "server" and self.parser.top_logprobs:
            out["top_logprobs"] = self.parser.top_logprobs
        return out

    def identity(self) -> dict[str, Any]:
        if self._identity is None:
            judge: dict[str, Any]
            if self.backend == "transformers":
                from winnow.models.causal_lm import model_identity
                from winnow.models.device import dtype_name, resolve_device, resolve_dtype

                dtype = resolve_dtype(self.dtype, resolve_device("auto"))
                judge = {**(model_identity(self.model or "default") or {"name": self.model}),
                         "dtype": dtype_name(dtype)}
            elif self.url is None:
                from winnow.models.judge_server import gguf_identity

                judge = gguf_identity(self.server_options.get("gguf"))
            else:
                from winnow.models.judge import served_model

                judge = {"model": self.model or served_model(self.url, self.api_key_env)}
            self._identity = {"judge": judge, "prompt": self.prompt.content_key()}
        return self._identity

    # -- running ---------------------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        """Counts of the last call: ``calls`` (requests answered or failed, not from the reply
        cache), ``cached`` (replies read from it), ``failed`` (no reply after retries),
        ``unparseable``, ``fallback``, ``prompt_tokens`` and ``completion_tokens`` (of the
        calls, as the server reported them), ``seconds`` (wall time)."""
        return {k: round(v, 4) if k == "seconds" else v for k, v in self._stats.items()}

    def __call__(self, pool: Pool, store: Store | None = None, run_shards=None) -> Columns:
        """All columns for ``pool``: from the cache, else asked shard by shard (in this
        process; the judge is started only when something is missing)."""
        store = store or Store()
        self._stats = dict.fromkeys(STAT_KEYS, 0)
        key = self.key(pool)
        cols = store.load(self.name, key)
        if cols is None:
            start = time.perf_counter()
            try:
                with self._open(store.root / REPLY_DIR):
                    cols = super().__call__(pool, store)
            finally:
                self._stats["seconds"] += time.perf_counter() - start
            if self._stats["failed"]:
                cols = {k: np.array(v) for k, v in cols.items()}
                shutil.rmtree(store.path(self.name, key), ignore_errors=True)
                log.warning("judge %s: %d requests got no reply (see %s_error); the columns "
                            "are not cached: run again to ask for those only",
                            self.prompt.name, self._stats["failed"], self.column)
        return self._decode(cols)

    @contextlib.contextmanager
    def _open(self, cache_dir: Path | None) -> Iterator[None]:
        """Keep the judge (client and server, or the loaded model) open for the block."""
        if self._session is not None:
            yield
            return
        if self.backend == "transformers":
            from winnow.models.causal_lm import load_causal_lm

            self._session = load_causal_lm(self.model or "default", dtype=self.dtype)
            try:
                yield
            finally:
                self._session = None
            return
        from winnow.models.judge import judge_client

        model = self.identity()["judge"]["model"] if self.url else None
        with judge_client(self.url, model, api_key_env=self.api_key_env,
                          concurrency=self.concurrency, cache_dir=cache_dir,
                          retries=self.retries, timeout=self.timeout,
                          **self.server_options) as client:
            self._session = client
            try:
                yield
            finally:
                self._session = None

    def compute(self, pool: Pool, start: int, stop: int) -> Columns:
        with self._open(None):
            jobs = [(i, fields_of(user, response))
                    for i in range(start, stop)
                    for user, response in self._exchanges(pool.conversations[i])]
            t = time.perf_counter()
            results = self._ask([f for _, f in jobs])
            log.info("judge %s: examples %d-%d, %d requests in %.1f s", self.prompt.name,
                     start, stop, len(jobs), time.perf_counter() - t)
        per_example: dict[int, list[tuple[Any, str | None, bool, str | None]]] = {
            i: [] for i in range(start, stop)}
        for (i, _), result in zip(jobs, results):
            per_example[i].append(self._read(result))
        return self._columns([per_example[i] for i in range(start, stop)])

    def _exchanges(self, conversation: list[dict[str, Any]]):
        pairs = exchanges(conversation)
        return pairs if self.per_turn else pairs[-1:]

    def _ask(self, fields: list[dict[str, str]]) -> list[Result]:
        if not fields:
            return []
        if self.backend == "transformers":
            return self._logits(fields)
        sampling: dict[str, Any] = {"temperature": self.prompt.temperature,
                                    "max_tokens": self.prompt.max_tokens}
        if self.parser.top_logprobs:
            sampling |= {"logprobs": True, "top_logprobs": self.parser.top_logprobs}
        requests = [{**self._message(f), **sampling} for f in fields]
        results = self._session.map(requests)
        for r in results:
            self._stats["cached" if r.cached else "calls"] += 1
            self._stats["failed"] += r.text is None
            if not r.cached and r.usage:
                self._stats["prompt_tokens"] += int(r.usage.get("prompt_tokens") or 0)
                self._stats["completion_tokens"] += int(r.usage.get("completion_tokens") or 0)
        return results

    def _message(self, fields: dict[str, str]) -> dict[str, Any]:
        text = self.prompt.fill(fields)
        if self.prompt.endpoint == "completion":
            return {"prompt": text}
        system = [{"role": "system", "content": self.prompt.system}] if self.prompt.system else []
        return {"messages": [*system, {"role": "user", "content": text}]}

    def _logits(self, fields: list[dict[str, str]]) -> list[Result]:
        from winnow.models.judge import next_token_logprobs, prompt_ids

        lm = self._session
        prompts = []
        for f in fields:
            message = self._message(f)
            prompts.append(prompt_ids(lm.tokenizer, message.get("prompt") or message["messages"]))
        if self.parser.name == "yes-no":  # every one-token spelling of yes and no
            from winnow.models.judge import yes_no_tokens

            entries, texts = zip(*yes_no_tokens(lm.tokenizer))
        else:
            entries = texts = tuple(self.parser.digits)
        lp = next_token_logprobs(lm, prompts, list(entries), batch_size=self.batch_size)
        self._stats["calls"] += len(prompts)
        self._stats["prompt_tokens"] += sum(len(p) for p in prompts)
        first = self.parser.name == "yes-no"  # the read-off's own most likely alternative
        return [Result(text=None, logprobs=[{
            "token": texts[int(np.argmax(row))] if first else None,
            "top_logprobs": [{"token": t, "logprob": float(v)} for t, v in zip(texts, row)]}])
            for row in lp]

    def _read(self, result: Result) -> tuple[Any, str | None, bool, str | None]:
        """(value, reply, fallback used, error) of one result."""
        missing = None if self.parser.object_valued else math.nan
        if result.logprobs is None and result.text is None:
            return missing, None, False, result.reason
        try:
            parsed = self.parser(result.text or "", result.logprobs)
        except ParseError as e:
            self._stats["unparseable"] += 1
            return missing, result.text, False, f"unparseable: {e}"
        if parsed.fallback is not None:
            self._stats["fallback"] += 1
            return parsed.value, result.text, True, f"fallback: {parsed.fallback}"
        return parsed.value, result.text, False, None

    def _columns(self, rows: list[list[tuple[Any, str | None, bool, str | None]]]) -> Columns:
        c = self.column
        values, replies, errors, fallbacks, turns = [], [], [], [], []
        for turns_of in rows:
            vals = [v for v, _, _, _ in turns_of]
            errs = [e for _, _, _, e in turns_of]
            if self.per_turn:
                turns.append(vals)
                values.append(_reduce(vals, self.turn_reduce))
                replies.append([r for _, r, _, _ in turns_of])
                noted = [f"turn {k}: {e}" for k, e in enumerate(errs) if e]
                if not turns_of:
                    noted = ["no (user, assistant) exchange"]
                errors.append("; ".join(noted) or None)
            else:
                value, reply, _, error = turns_of[0]
                values.append(value)
                replies.append(reply)
                errors.append(error)
            fallbacks.append(any(f for _, _, f, _ in turns_of))
        out: Columns = {c: _json_column(values) if self.parser.object_valued
                        else np.asarray(values, dtype=np.float64),
                        f"{c}_reply": _json_column(replies), f"{c}_error": _json_column(errors)}
        if self.parser.has_fallback:
            out[f"{c}_fallback"] = np.asarray(fallbacks, dtype=bool)
        if self.per_turn:
            out[f"{c}_turns"] = _json_column(turns)
        return out

    def _decode(self, cols: Columns) -> Columns:
        objects = set(self.object_columns())
        return {k: _from_json(v) if k in objects else v for k, v in cols.items()}


def _layout(column: str, parser: Parser, per_turn: bool) -> tuple[tuple[str, ...],
                                                                  tuple[str, ...]]:
    """(all columns, object columns) of a judge signal."""
    objects = [f"{column}_reply", f"{column}_error"]
    if parser.object_valued:
        objects.insert(0, column)
    if per_turn:
        objects.append(f"{column}_turns")
    columns = [column, f"{column}_reply", f"{column}_error"]
    if parser.has_fallback:
        columns.append(f"{column}_fallback")
    if per_turn:
        columns.append(f"{column}_turns")
    return tuple(columns), tuple(objects)


def _reduce(values: list[float], how: str) -> float:
    if not values or any(math.isnan(v) for v in (values[:1] if how == "first" else values)):
        return math.nan
    if how == "first":
        return values[0]
    return float(sum(values) / (len(values) if how == "mean" else 1))


def _json_column(values: list[Any]) -> np.ndarray:
    """Objects as JSON text (the Store keeps no pickles)."""
    return np.asarray([json.dumps(v, ensure_ascii=False) for v in values], dtype=np.str_)


def _from_json(arr: np.ndarray) -> np.ndarray:
    out = np.empty(len(arr), dtype=object)
    for i, text in enumerate(arr):
        out[i] = json.loads(str(text))
    return out


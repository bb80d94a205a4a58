"""One client for any OpenAI-compatible endpoint: ``/v1/chat/completions`` and ``/v1/completions``.

A request is a dict: ``messages`` (chat) or ``prompt`` (completions), plus the sampling
parameters sent as they are (``temperature``, ``max_tokens``, ``top_p``, ``seed``, ``stop``
...). ``logprobs=True`` with ``top_logprobs=k`` asks for token log-probabilities on either
endpoint (a completions request gets the legacy ``logprobs: k``).

Rules, the same for every caller:

- **Key**: the client knows only the *name* of the environment variable holding the API key
  (``WINNOW_API_KEY`` unless told otherwise); it reads it when a request is sent (unset: no
  ``Authorization`` header, as local servers want). The key is never kept on the object and
  never reaches a repr, a log line, a failure reason or the cache.
- **Failures**: connection errors, timeouts, 408, 429 and 5xx are retried with exponential
  backoff (``backoff`` seconds, doubling, at most 60 s; never shorter than ``Retry-After``).
  Other 4xx and a 200 whose body is not a completion are not retried. A request that still
  fails is a :class:`Result` with ``value=None`` and its ``reason``, never an exception and
  never a default value. A parse hook that raises or returns None makes the reason
  ``unparseable`` and keeps the raw reply.
- **Cache** (with ``cache_dir``): every reply is written as soon as it arrives, atomically,
  to ``cache_dir/<key[:2]>/<key>.json`` (``{"request": body, "reply": server JSON}``), where
  the key hashes the endpoint, the model name, the prompt or messages and the sampling
  parameters. A rerun, or a run resumed after a kill, asks only for what has no reply yet.
  Identical requests share one reply: to sample the same prompt twice, vary ``seed``.
  Failures are not cached. Without a cache every request is sent.
"""

from __future__ import annotations

import email.utils
import json
import logging
import os
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from winnow.store import atomic_write, cache_key

log = logging.getLogger(__name__)

DEFAULT_KEY_ENV = "WINNOW_API_KEY"
MAX_BACKOFF = 60.0
_RETRIED = {408, 429}


@dataclass(frozen=True)
class Result:
    """The outcome of one request.

    value : the parsed reply (the reply text without a parse hook); None when missing.
    text : the raw reply text; None when no reply came.
    reason : why ``value`` is None (``unparseable ...``, ``HTTP 503 after 5 attempts`` ...).
    logprobs : when asked, one dict per generated token: ``token``, ``logprob``,
        ``top_logprobs`` (a list of ``{"token", "logprob"}``) and what else the server sent
        (``id``, ``bytes``).
    cached : the reply was read from the cache.
    usage : the reply's token counts as the server sent them (``prompt_tokens``,
        ``completion_tokens`` ...); None when it sent none.
    """

    value: Any = None
    text: str | None = None
    reason: str | None = None
    logprobs: list[dict[str, Any]] | None = None
    cached: bool = False
    usage: dict[str, Any] | None = None

    @property
    def ok(self) -> bool:
        return self.reason is None


class ChatClient:
    """An OpenAI-compatible endpoint (see the module docstring for the rules).

    base_url : e.g. ``http://localhost:8080/v1`` (a URL ending in ``/chat/completions`` or
        ``/completions`` is accepted too). model : the model name sent.
    api_key_env : name of the environment variable holding the key.
    timeout : seconds per attempt. retries : attempts after the first. backoff : first wait
        in seconds. concurrency : requests in flight in :meth:`map`.
    cache_dir : folder of the reply cache (None: no cache), e.g. a subfolder of a
        :class:`winnow.store.Store` root.
    """

    def __init__(self, base_url: str, model: str, api_key_env: str = DEFAULT_KEY_ENV, *,
                 timeout: float = 60.0, retries: int = 4, backoff: float = 1.0,
                 concurrency: int = 4, cache_dir: str | os.PathLike | None = None):
        if concurrency < 1 or retries < 0:
            raise ValueError("concurrency must be at least 1 and retries at least 0")
        base = base_url.rstrip("/")
        for tail in ("/chat/completions", "/completions"):
            if base.endswith(tail):
                base = base[:-len(tail)]
                break
        self.base_url, self.model, self.api_key_env = base, model, api_key_env
        self.timeout, self.retries, self.backoff = timeout, retries, backoff
        self.concurrency = concurrency
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
        self._http = httpx.Client(timeout=timeout,
                                  limits=httpx.Limits(max_connections=concurrency))

    def __repr__(self) -> str:
        return (f"ChatClient(base_url={self.base_url!r}, model={self.model!r}, "
                f"api_key_env={self.api_key_env!r}, cache_dir={self.cache_dir!r})")

    def chat(self, messages: str | list[dict[str, Any]], parse: Callable[[str], Any] | None = None,
             **sampling: Any) -> Result:
        """One chat request; a string is sent as a single user message."""
        if isinstance(messages, str):
            messages = [{"role": "user", "content": messages}]
        return self.map([{"messages": messages, **sampling}], parse)[0]

    def complete(self, prompt: str, parse: Callable[[str], Any] | None = None,
                 **sampling: Any) -> Result:
        """One completions request."""
        return self.map([{"prompt": prompt, **sampling}], parse)[0]

    def map(self, requests: Sequence[dict[str, Any]],
            parse: Callable[[str], Any] | None = None) -> list[Result]:
        """Results of ``requests`` in their order: cached replies first, then the others with
        at most ``concurrency`` in flight, each cached as it arrives (identical requests are
        asked once when there is a cache). ``parse(text)`` runs in the calling thread."""
        jobs = [self._body(r) for r in requests]
        slots = [key if self.cache_dir else i for i, (_, _, key) in enumerate(jobs)]
        replies: dict[str | int, tuple[dict | None, str | None, bool]] = {}
        todo: dict[str | int, tuple[str, dict, str]] = {}
        for slot, job in zip(slots, jobs):
            if slot in replies or slot in todo:
                continue
            reply = self._cached(job[2])
            if reply is not None:
                replies[slot] = (reply, None, True)
            else:
                todo[slot] = job
        if todo:
            pool = ThreadPoolExecutor(min(self.concurrency, len(todo)))
            try:
                futures = {pool.submit(self._fetch, *job): slot for slot, job in todo.items()}
                for future in as_completed(futures):
                    replies[futures[future]] = (*future.result(), False)
            finally:  # on Ctrl-C, wait for the requests in flight only (their replies are cached)
                pool.shutdown(cancel_futures=True)
        results = [_result(*replies[slot], endpoint, parse)
                   for slot, (endpoint, _, _) in zip(slots, jobs)]
        failed = [r.reason for r in results if r.text is None]
        if failed:
            log.warning("%s (%s): %d of %d requests failed; first: %s", self.base_url,
                        self.model, len(failed), len(results), failed[0])
        return results

    def close(self) -> None:
        self._http.close()

    def _body(self, request: dict[str, Any]) -> tuple[str, dict[str, Any], str]:
        """(endpoint, JSON body, cache key) of a request."""
        body = {"model": self.model, **request}
        if "messages" in body:
            endpoint = "chat/completions"
        elif "prompt" in body:
            endpoint = "completions"
            if body.get("logprobs") is True or "top_logprobs" in body:
                body["logprobs"] = body.pop("top_logprobs", 0) or 1
        else:
            raise ValueError(f"a request needs 'messages' or 'prompt'; got keys {sorted(request)}")
        return endpoint, body, cache_key({"endpoint": endpoint, "body": body})

    def _cached(self, key: str) -> dict | None:
        """The cached reply, or None (none yet, or unreadable: then it is asked again)."""
        if self.cache_dir is None:
            return None
        try:
            return json.loads(_entry(self.cache_dir, key).read_bytes())["reply"]
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def _fetch(self, endpoint: str, body: dict, key: str) -> tuple[dict | None, str | None]:
        """(reply JSON, None) or (None, reason); a reply is cached before it is returned."""
        reply, reason = self._post(endpoint, body)
        if reply is not None:
            try:
                _text(reply, endpoint)
                _logprobs(reply)
            except (KeyError, IndexError, TypeError, AttributeError) as e:
                return None, f"unreadable reply ({type(e).__name__}: {e})"
            if self.cache_dir is not None:
                data = json.dumps({"request": body, "reply": reply}, ensure_ascii=False).encode()
                atomic_write(_entry(self.cache_dir, key), lambda f: f.write(data))
        return reply, reason

    def _post(self, endpoint: str, body: dict) -> tuple[dict | None, str | None]:
        url = f"{self.base_url}/{endpoint}"
        problem = ""
        for attempt in range(self.retries + 1):
            key = os.environ.get(self.api_key_env) if self.api_key_env else None
            headers = {"Authorization": f"Bearer {key}"} if key else {}
            retry_after = 0.0
            try:
                r = self._http.post(url, json=body, headers=headers)
            except httpx.TransportError as e:
                problem = type(e).__name__
            else:
                if r.status_code == 200:
                    try:
                        return r.json(), None
                    except ValueError:
                        return None, "unreadable reply (not JSON)"
                problem = f"HTTP {r.status_code}"
                if r.status_code not in _RETRIED and r.status_code < 500:
                    detail = r.text[:200].replace(key, "***") if key else r.text[:200]
                    return None, f"{problem} (not retried)" + (f": {detail}" if detail else "")
                retry_after = _seconds(r.headers.get("retry-after"))
            if attempt < self.retries:
                delay = max(min(self.backoff * 2 ** attempt, MAX_BACKOFF), retry_after)
                log.info("%s: %s; retry %d in %.2fs", url, problem, attempt + 1, delay)
                time.sleep(delay)
        attempts = self.retries + 1
        return None, f"{problem} after {attempts} attempt{'s' if attempts > 1 else ''}"


def _entry(cache_dir: Path, key: str) -> Path:
    return cache_dir / key[:2] / f"{key}.json"


def _seconds(retry_after: str | None) -> float:
    """Seconds asked by a ``Retry-After`` header (a number or an HTTP date); 0 if none."""
    if not retry_after:
        return 0.0
    try:
        return max(float(retry_after), 0.0)
    except ValueError:
        pass
    try:
        return max(email.utils.parsedate_to_datetime(retry_after).timestamp() - time.time(), 0)
    except (TypeError, ValueError):
        return 0.0


def _text(reply: dict, endpoint: str) -> str:
    choice = reply["choices"][0]
    text = choice["message"]["content"] if endpoint == "chat/completions" else choice["text"]
    return text or ""


def _logprobs(reply: dict) -> list[dict[str, Any]] | None:
    """Per-token log-probabilities of either endpoint's format, as chat's ``content`` list."""
    lp = reply["choices"][0].get("logprobs")
    if not lp:
        return None
    if lp.get("content") is not None:
        return [{**t, "top_logprobs": t.get("top_logprobs") or []} for t in lp["content"]]
    tops = lp.get("top_logprobs") or [None] * len(lp["tokens"])
    return [{"token": t, "logprob": p,
             "top_logprobs": [{"token": k, "logprob": v} for k, v in (top or {}).items()]}
            for t, p, top in zip(lp["tokens"], lp["token_logprobs"], tops)]


def _result(reply: dict | None, reason: str | None, cached: bool, endpoint: str,
            parse: Callable[[str], Any] | None) -> Result:
    if reply is None:
        return Result(reason=reason)
    text, logprobs = _text(reply, endpoint), _logprobs(reply)
    usage = reply.get("usage") if isinstance(reply.get("usage"), dict) else None
    if parse is None:
        return Result(text, text, None, logprobs, cached, usage)
    try:
        value = parse(text)
    except Exception as e:  # a parse hook's failure is the reply's, not the batch's
        return Result(None, text, f"unparseable ({type(e).__name__}: {e})", logprobs, cached,
                      usage)
    return Result(value, text, "unparseable" if value is None else None, logprobs, cached, usage)

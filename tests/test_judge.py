"""The built-in judge server and the judge signal, against real servers started by the tests.

One llama.cpp server (SmolLM2 GGUF, 2 slots, 1 thread: llama.cpp's spinning threads crawl on
a busy 2-core machine) serves the session; the scripted ``chat_server`` injects 5xx, garbage
and fixed replies. Nothing is mocked.
"""

from __future__ import annotations

import json
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
import torch
from chat_server import ChatServer
from typer.testing import CliRunner

from winnow.cli import app
from winnow.data import load_pool
from winnow.models import judge_server
from winnow.models.chat import ChatClient
from winnow.models.judge_server import JudgeServer
from winnow.signals.judge import Judge
from winnow.store import Store

COMPLEXITY = """\
template: "You are a helpful assistant. Please identify the complexity score of the following \
user query on a scale of 1 to 6.\\n##Query: {query}\\n##Complexity: "
endpoint: completion
parse: digits-expectation
parse_options: {top_logprobs: 1000, fallback: 3.0}
max_tokens: 1
source: "a shortened DEITA complexity prompt, written for these tests"
"""

RATING = """\
system: "You rate questions."
template: "Rate how clear this question is from 0 to 5. First output a single line containing \
only the value.\\nQuestion: {instruction}"
parse: first-number
max_tokens: 6
"""

SCORED = """\
template: "Score: {response}"
parse: last-score
max_tokens: 8
"""


@pytest.fixture(scope="session")
def server():
    with JudgeServer(slots=2, threads=1) as s:
        yield s


@pytest.fixture(scope="session")
def alpaca(shared_data, tmp_path_factory) -> Path:
    """The first 10 records of the real Alpaca demo file."""
    records = json.loads((shared_data / "alpaca_en_demo.json").read_text(encoding="utf-8"))
    path = tmp_path_factory.mktemp("judge-data") / "alpaca10.json"
    path.write_text(json.dumps(records[:10]), encoding="utf-8")
    return path


def prompt_file(folder: Path, name: str, text: str) -> str:
    path = folder / f"{name}.yaml"
    path.write_text(text, encoding="utf-8")
    return str(path)


def replies(store_root: Path) -> list[Path]:
    return sorted((store_root / "judge-replies").glob("*/*.json"))


def port_free(port: int) -> bool:
    """Whether a new server can listen on ``port`` (as servers do, with SO_REUSEADDR: the
    closed connections' TIME_WAIT does not count)."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def test_server_answers_chat_and_completions_with_logprobs_and_frees_its_port(request):
    with pytest.raises(KeyError), JudgeServer(threads=1) as s:
        port = int(s.url.rsplit(":", 1)[1].split("/")[0])
        client = ChatClient(s.url, s.model, api_key_env="")
        request.addfinalizer(client.close)
        chat = client.chat("Name a colour.", max_tokens=4, temperature=0, logprobs=True,
                           top_logprobs=5)
        text = client.complete("The capital of France is", max_tokens=2, temperature=0,
                               logprobs=True, top_logprobs=3)
        assert chat.ok and text.ok and text.text.startswith(" Paris")
        assert chat.usage["completion_tokens"] >= 1 and text.usage["prompt_tokens"] == 5
        first = text.logprobs[0]
        assert first["token"] == " Paris" and isinstance(first["id"], int)
        assert [t["token"] for t in first["top_logprobs"]][0] == " Paris"
        assert len(first["top_logprobs"]) == 3 and len(chat.logprobs[0]["top_logprobs"]) == 5
        models = httpx.get(f"{s.url}/models").json()["data"]
        assert models[0]["id"] == s.model and s.model.startswith("SmolLM2-135M-Instruct")
        raise KeyError("an error inside the block")  # the server still stops
    assert not s.running and port_free(port)
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{port}/health", timeout=2)
    with pytest.raises(RuntimeError, match="could not serve"):
        JudgeServer(__file__).start()  # not a GGUF file


def test_rerun_sends_nothing_and_lost_columns_come_from_the_reply_cache(server, alpaca,
                                                                        tmp_path):
    pool, prompt = load_pool(alpaca), prompt_file(tmp_path, "complexity", COMPLEXITY)
    store = Store(tmp_path / "cache")
    judge = Judge(prompt, url=server.url)
    first = judge(pool, store)
    assert judge.stats()["calls"] == 10 and judge.stats()["cached"] == 0
    assert judge.stats()["prompt_tokens"] > 10 * 30 and judge.stats()["completion_tokens"] == 10
    assert len(replies(store.root)) == 10
    assert set(first) == set(Judge.output_columns({"prompt": prompt}))
    values = np.asarray(first["complexity"])
    assert np.all((values >= 1) & (values <= 6)) and not first["complexity_fallback"].any()
    again = Judge(prompt, url=server.url)
    np.testing.assert_array_equal(again(pool, store)["complexity"], values)
    assert again.stats()["calls"] == again.stats()["cached"] == 0  # the columns' cache
    shutil.rmtree(store.root / "signals")  # lose the columns, keep the replies
    third = Judge(prompt, url=server.url)
    np.testing.assert_array_equal(third(pool, store)["complexity"], values)
    assert third.stats()["calls"] == 0 and third.stats()["cached"] == 10


SIGNAL_AFTER_REPLY = """
import os, signal, sys, threading, time
from winnow.models.chat import ChatClient

def signal_after_reply(count, sig):
    # send sig to this process right after the count-th reply is cached, from the thread
    # that fetched it: no polling can miss the moment, however busy the machine
    fetch, lock, seen = ChatClient._fetch, threading.Lock(), []

    def fetch_then_signal(self, *args):
        reply = fetch(self, *args)  # cached before it returns
        with lock:
            seen.append(reply)
            if len(seen) == count:
                print("signal at", time.monotonic(), flush=True)
                os.kill(os.getpid(), sig)
        return reply

    ChatClient._fetch = fetch_then_signal
"""

CHILD = SIGNAL_AFTER_REPLY + """
from winnow.data import load_pool
from winnow.signals.judge import Judge
from winnow.store import Store
signal_after_reply(3, signal.SIGKILL)
Judge(sys.argv[1], url=sys.argv[2], concurrency=1)(load_pool(sys.argv[3]), Store(sys.argv[4]))
"""


def test_a_run_killed_mid_shard_asks_only_for_the_rest(server, alpaca, tmp_path):
    prompt = prompt_file(tmp_path, "rating", RATING)
    root = tmp_path / "cache"
    child = subprocess.run([sys.executable, "-c", CHILD, prompt, server.url, str(alpaca),
                            str(root)], capture_output=True, text=True, timeout=180)
    done = len(replies(root))
    assert child.returncode == -signal.SIGKILL and 3 <= done < 10, child.stderr
    assert not list((root / "signals").glob("*/*/columns"))  # the shard never finished
    judge = Judge(prompt, url=server.url, concurrency=2)
    cols = judge(load_pool(alpaca), Store(root))
    assert judge.stats()["cached"] == done and judge.stats()["calls"] == 10 - done
    assert len(replies(root)) == 10
    # replies a 135M model gives to "first output a single line containing only the value"
    # are mostly not numbers: each is kept with its reason, none becomes a default value
    values, errors, texts = cols["rating"], cols["rating_error"], cols["rating_reply"]
    assert judge.stats()["unparseable"] == int(np.isnan(values).sum()) >= 1
    for v, err, text in zip(values, errors, texts):
        assert isinstance(text, str)
        if np.isnan(v):
            assert err.startswith("unparseable: ")
        else:
            assert err is None


INTERRUPTED = SIGNAL_AFTER_REPLY + """
from winnow.data import load_pool
from winnow.signals.judge import Judge
from winnow.store import Store
signal_after_reply(1, signal.SIGINT)
try:
    Judge(sys.argv[1], threads=1)(load_pool(sys.argv[2]), Store(sys.argv[3]))
except KeyboardInterrupt:
    from winnow.models import judge_server
    print("running servers:", len(judge_server._running))
    raise
"""


def test_ctrl_c_stops_the_run_and_its_server_promptly(alpaca, tmp_path):
    """Ctrl-C (SIGINT, sent by the child to itself right after its first reply is cached)
    stops the run within seconds: the queued requests are not sent, the in-process server
    is stopped, and the replies so far stay cached."""
    prompt = prompt_file(tmp_path, "rating", RATING)
    root = tmp_path / "cache"
    child = subprocess.run([sys.executable, "-c", INTERRUPTED, prompt, str(alpaca), str(root)],
                           capture_output=True, text=True, timeout=180)
    ended = time.monotonic()
    state = f"exit {child.returncode}; stdout {child.stdout!r}; stderr {child.stderr[-1500:]!r}"
    assert "running servers: 0" in child.stdout and "KeyboardInterrupt" in child.stderr, state
    sent = float(child.stdout.split("signal at ")[1].split()[0])
    assert ended - sent < 10, state  # the queued requests were not sent
    assert 1 <= len(replies(root)) < 10


def test_digit_expectation_over_http_matches_the_transformers_logits(server, alpaca,
                                                                     tmp_path, request):
    """The same SmolLM2 weights both ways: llama.cpp runs the Q4_1 GGUF (activations
    quantised to 8 bits in its dot products, fp16 KV cache); transformers runs those Q4_1
    weights dequantised to fp32. Expected scores here span ~3.0-3.4, so a logit error of a
    few hundredths moves them by a few hundredths (measured: at most 0.09, Pearson 0.98);
    0.2 and a correlation of 0.8 leave room for other CPUs' kernels."""
    pool, prompt = load_pool(alpaca), prompt_file(tmp_path, "complexity", COMPLEXITY)
    store = Store(tmp_path / "cache")
    http = Judge(prompt, url=server.url)(pool, store)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # torch's spinning threads crawl on a busy 2-core machine too
    request.addfinalizer(lambda: torch.set_num_threads(threads))
    local = Judge(prompt, backend="transformers", batch_size=4)
    logits = local(pool, store)
    assert local.stats()["calls"] == 10 and not logits["complexity_fallback"].any()
    assert all(r is None for r in logits["complexity_reply"])
    a, b = np.asarray(http["complexity"]), np.asarray(logits["complexity"])
    assert np.abs(a - b).max() < 0.2
    assert np.corrcoef(a, b)[0, 1] > 0.8


def test_the_signal_starts_and_stops_its_own_server(alpaca, tmp_path):
    pool = load_pool(alpaca).subset(range(3))
    judge = Judge(prompt_file(tmp_path, "complexity", COMPLEXITY), slots=2, threads=1)
    before = set(judge_server._running)
    cols = judge(pool, Store(tmp_path / "cache"))
    assert judge.stats()["calls"] == 3 and np.isfinite(cols["complexity"]).all()
    assert set(judge_server._running) == before  # its own server stopped when the call ended
    assert judge.identity()["judge"]["gguf"] == "SmolLM2-135M-Instruct.Q4_1.gguf"


def test_failures_are_reasons_and_only_failures_are_asked_again(tmp_path):
    path = tmp_path / "numbers.json"
    path.write_text(json.dumps([{"instruction": f"q{i}", "input": "", "output": str(i)}
                                for i in range(1, 6)]))
    pool, prompt = load_pool(path), prompt_file(tmp_path, "scored", SCORED)
    store = Store(tmp_path / "cache")
    with ChatServer() as fake:
        fake.faults.extend(["500", "500", "badjson", "text:no score here"])
        judge = Judge(prompt, url=fake.url, model="m", concurrency=1, retries=1)
        cols = judge(pool, store)
        assert list(cols["scored"][2:]) == [pytest.approx(np.nan, nan_ok=True), 4.0, 5.0]
        assert list(cols["scored_error"]) == [
            "HTTP 500 after 2 attempts", "unreadable reply (not JSON)",
            "unparseable: no 'Score: <number>' in the reply", None, None]
        assert list(cols["scored_reply"]) == [None, None, "no score here", "echo: Score: 4",
                                              "echo: Score: 5"]
        assert {k: judge.stats()[k] for k in ("calls", "failed", "unparseable")} == {
            "calls": 5, "failed": 2, "unparseable": 1}
        again = Judge(prompt, url=fake.url, model="m", concurrency=1, retries=1)
        cols = again(pool, store)  # failed requests were not cached, the rest were
        assert again.stats()["calls"] == 2 and again.stats()["cached"] == 3
        assert list(cols["scored"][:2]) == [1.0, 2.0] and np.isnan(cols["scored"][2])
        assert len(fake.requests) == 6 + 2


def test_per_turn_scores_and_object_columns_survive_the_cache(tmp_path):
    convs = [[("a", "2"), ("b", "3")], [("c", "5")]]
    path = tmp_path / "chats.jsonl"
    path.write_text("\n".join(json.dumps({"messages": [
        m for q, a in turns for m in ({"role": "user", "content": q},
                                      {"role": "assistant", "content": a})]})
        for turns in convs))
    tags = tmp_path / "tags.json"
    tags.write_text(json.dumps([{"instruction": "q", "input": "", "output": json.dumps(
        [{"tag": "maths", "explanation": "x"}, {"tag": "logic", "explanation": "y"}])}]))
    tagger = prompt_file(tmp_path, "tagger", 'template: "{response}"\nparse: json-tags\n')
    with ChatServer() as fake:
        for _ in range(2):  # computed, then read back from the Store's JSON text
            judge = Judge(prompt_file(tmp_path, "scored", SCORED), url=fake.url, model="m",
                          per_turn=True, turn_reduce="mean", column="s")
            cols = judge(load_pool(path), Store(tmp_path / "cache"))
            assert list(cols["s"]) == [2.5, 5.0]
            assert list(cols["s_turns"]) == [[2.0, 3.0], [5.0]]
            assert list(cols["s_reply"]) == [["echo: Score: 2", "echo: Score: 3"],
                                             ["echo: Score: 5"]]
            assert list(cols["s_error"]) == [None, None] and cols["s"].dtype == np.float64
            tagged = Judge(tagger, url=fake.url, model="m")(load_pool(tags),
                                                            Store(tmp_path / "cache"))
            assert tagged["tagger"][0] == ["maths", "logic"]
            assert set(tagged) == {"tagger", "tagger_reply", "tagger_error"}
        assert len(fake.requests) == 3 + 1


def test_bad_prompts_and_parameters_are_named(tmp_path):
    with pytest.raises(ValueError, match="neither a shipped prompt"):
        Judge("no-such-prompt")
    bad = prompt_file(tmp_path, "bad", "template: x\nparser: first-number\n")
    with pytest.raises(ValueError, match=r"bad.yaml: unknown keys \['parser'\]"):
        Judge(bad)
    ok = prompt_file(tmp_path, "ok", SCORED)
    with pytest.raises(ValueError, match="needs parse digits-expectation"):
        Judge(ok, backend="transformers")
    with pytest.raises(ValueError, match="slots configure the built-in server"):
        Judge(ok, url="http://127.0.0.1:9/v1", slots=2)
    with pytest.raises(ValueError, match="per_turn needs a numeric parser"):
        Judge(ok, parse="json-tags", per_turn=True)


def test_judge_url_reaches_the_judge_of_a_recipe_and_of_a_recipe_run_as_a_stage(server, alpaca,
                                                                                 tmp_path):
    prompt = prompt_file(tmp_path, "complexity", COMPLEXITY)
    recipe = tmp_path / "judged.yaml"
    recipe.write_text(f"name: judged\nsignals:\n  j: {{signal: judge, prompt: {prompt}}}\n"
                      "stages:\n  - top: complexity\n")
    out = tmp_path / "subset.json"
    result = CliRunner().invoke(app, [
        "select", str(recipe), "--data", str(alpaca), "--budget", "3", "--out", str(out),
        "--cache-dir", str(tmp_path / "cache"), "--judge-url", server.url], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    manifest = json.loads(out.with_suffix(".manifest.json").read_text())
    assert manifest["signal_stats"]["j"]["calls"] == 10
    assert manifest["judge"] == {"url": server.url}
    assert len(json.loads(out.read_text())) == 3
    # the same recipe as a stage of a chain: the options reach its judge, which is then the
    # same judge (the key holds the judge's identity), so every reply comes from the cache
    chain = tmp_path / "chain.yaml"
    chain.write_text(f"name: chain\nstages:\n  - recipe: {recipe}\n")
    result = CliRunner().invoke(app, [
        "select", str(chain), "--data", str(alpaca), "--budget", "3", "--out", str(out),
        "--cache-dir", str(tmp_path / "cache"), "--judge-url", server.url],
        catch_exceptions=False)
    assert result.exit_code == 0, result.output
    chained = json.loads(out.with_suffix(".manifest.json").read_text())
    assert chained["signal_cache_keys"]["judged/j"] == manifest["signal_cache_keys"]["j"]
    assert chained["signal_runs"]["judged/j"]["cached"] is True
    refused = CliRunner().invoke(app, ["select", "random", "--data", str(alpaca), "--budget",
                                       "3", "--judge-slots", "2"])
    assert refused.exit_code != 0 and "asks no judge server; --judge-slots" in refused.output

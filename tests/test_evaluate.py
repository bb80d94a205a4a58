"""`winnow evaluate`: subset vs random by training, target loss, option accuracy, judge."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import numpy as np
import pytest

from winnow.data import load_pool
from winnow.evaluate.finetune import EvalSettings, evaluate_subset, markdown_table
from winnow.evaluate.judge import Judge, combine, win_rate
from winnow.evaluate.target import option_letters
from winnow.report.plots import plot_evaluate
from winnow.train import TrainConfig


class _LengthJudge(BaseHTTPRequestHandler):
    """An OpenAI-compatible endpoint that prefers the longer response; the first request
    fails with 500 (the client must retry)."""

    calls = 0

    def do_POST(self):  # noqa: N802
        type(self).calls += 1
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        if type(self).calls == 1:
            self.send_response(500)
            self.end_headers()
            return
        text = body["messages"][0]["content"]
        first = text.split("[Response 1]\n", 1)[1].split("\n\n[Response 2]", 1)[0]
        second = text.split("[Response 2]\n", 1)[1].split("\n\nWhich response", 1)[0]
        verdict = ("Tie" if len(first) == len(second)
                   else "Response 1" if len(first) > len(second) else "Response 2")
        reply = json.dumps({"choices": [{"message": {"content": verdict}}]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)

    def log_message(self, *args):
        pass


@pytest.fixture()
def judge_url():
    _LengthJudge.calls = 0
    server = HTTPServer(("127.0.0.1", 0), _LengthJudge)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/v1"
    server.shutdown()


def test_win_needs_both_orders():
    assert combine(1, 2) == 1   # A first wins, A second wins
    assert combine(1, 0) == 1   # wins one, ties the other
    assert combine(1, 1) == 0   # wins one, loses the other: a tie
    assert combine(2, 1) == -1
    assert combine(0, 0) == 0


def test_judge_retries_and_swaps_order(judge_url):
    judge = Judge(judge_url, retries=2, timeout=10)
    rates = win_rate(judge, ["q1", "q2", "q3"], ["long answer", "same", "x"],
                     ["short", "same", "longer one"])
    assert rates["outcomes"] == [1, 0, -1]
    assert _LengthJudge.calls == 1 + 6  # one failure, then two orders per prompt
    dead = Judge("http://127.0.0.1:9/v1", retries=0, timeout=1)
    assert dead.ask("hi") is None
    assert dead.verdicts([("q", "a", "b")])[0].reason == "ConnectError after 1 attempt"
    assert win_rate(dead, ["q"], ["a"], ["b"]) == {"win": None, "tie": None, "loss": None,
                                                  "n": 0, "missing": 1, "outcomes": [None]}


def test_option_letters():
    assert option_letters("Pick one (A) x (B) y (C) z (D) w") == ["A", "B", "C", "D"]
    assert option_letters("no options") == []


def test_evaluate_subset_vs_random_tiny(shared_data, tmp_path, judge_url):
    pool = load_pool(shared_data / "alpaca_en_demo.json").subset(range(30))
    target = load_pool(shared_data / "targets" / "mmlu_heldout_subjects.jsonl").subset(range(4))
    base = TrainConfig(model_name_or_path="default", lora_rank=2, lora_target="q_proj,v_proj",
                       cutoff_len=96, per_device_train_batch_size=2, learning_rate=1e-3,
                       template="alpaca", logging_steps=1, report_to="none")
    settings = EvalSettings(steps=2, seeds=(0, 1), judge=Judge(judge_url), judge_prompts=2,
                            max_new_tokens=4)
    summary = evaluate_subset(pool, np.array([1, 5, 7, 11]), target, base, tmp_path, settings,
                              name="mine")
    rows = {r["arm"]: r for r in summary["rows"]}
    assert rows["mine"]["runs"] == 1 and rows["random"]["runs"] == 2
    for row in rows.values():
        assert np.isfinite(row["target_loss_mean"]) and 0 <= row["accuracy_mean"] <= 1
    assert rows["random"]["target_loss_vs_random"] == 0
    assert rows["mine"]["target_loss_vs_random"] == pytest.approx(
        rows["mine"]["target_loss_mean"] - rows["random"]["target_loss_mean"])
    assert 0 <= rows["mine"]["win_vs_random_mean"] <= 1
    assert [r["n_choice"] for r in summary["runs"]] == [4, 4, 4]
    table = markdown_table(summary)
    assert "| random | 2 |" in table and "±" in table
    assert summary["name"] == "mine" and summary["metrics"] == ["target_loss", "accuracy"]
    assert plot_evaluate(summary, tmp_path / "evaluate.png").stat().st_size > 0
    stamp = (tmp_path / "random-s1" / "metrics.json").stat().st_mtime_ns
    again = evaluate_subset(pool, np.array([1, 5, 7, 11]), target, base, tmp_path, settings,
                            name="mine")  # finished runs are reused
    assert (tmp_path / "random-s1" / "metrics.json").stat().st_mtime_ns == stamp
    assert again["rows"][0]["target_loss_mean"] == rows["mine"]["target_loss_mean"]

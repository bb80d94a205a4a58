"""Pairwise win rate with a judge behind an OpenAI-compatible chat endpoint.

Each comparison is asked twice, with the two answers in both orders. A model *wins* a
prompt when it wins both orders, or wins one and ties the other; it *loses* in the mirror
case; anything else is a tie. The API key is read from the environment, never logged.
"""

from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass
from typing import Any

import httpx

JUDGE_PROMPT = """You are comparing two responses to the same instruction.

[Instruction]
{instruction}

[Response 1]
{first}

[Response 2]
{second}

Which response is more helpful, correct and relevant? Answer with exactly one of:
"Response 1", "Response 2" or "Tie"."""

_VERDICT = re.compile(r"response\s*([12])|\b(tie)\b", re.IGNORECASE)


@dataclass
class Judge:
    """An OpenAI-compatible chat endpoint used as a pairwise judge.

    base_url : e.g. ``http://localhost:8080/v1`` (``/chat/completions`` is appended).
    model : the model name sent in requests.
    api_key_env : environment variable holding the key (may be unset for local servers).
    timeout : seconds per request; retries : attempts after the first, with backoff.
    """

    base_url: str
    model: str = "judge"
    api_key_env: str = "WINNOW_JUDGE_API_KEY"
    timeout: float = 60.0
    retries: int = 3
    max_tokens: int = 16

    def _headers(self) -> dict[str, str]:
        key = os.environ.get(self.api_key_env)
        return {"Authorization": f"Bearer {key}"} if key else {}

    def ask(self, prompt: str) -> str:
        """The judge's reply text to one user message (temperature 0)."""
        url = self.base_url.rstrip("/") + "/chat/completions"
        body = {"model": self.model, "temperature": 0, "max_tokens": self.max_tokens,
                "messages": [{"role": "user", "content": prompt}]}
        error: Exception | None = None
        for attempt in range(self.retries + 1):
            try:
                r = httpx.post(url, json=body, headers=self._headers(), timeout=self.timeout)
                r.raise_for_status()
                return r.json()["choices"][0]["message"]["content"] or ""
            except (httpx.HTTPError, KeyError, IndexError, ValueError) as e:
                error = e
                if attempt < self.retries:
                    time.sleep(min(2 ** attempt, 10))
        raise RuntimeError(f"judge at {url} failed after {self.retries + 1} attempts: "
                           f"{type(error).__name__}: {error}")

    def verdict(self, instruction: str, first: str, second: str) -> int:
        """1 or 2 for the better response, 0 for a tie (or an unreadable reply)."""
        reply = self.ask(JUDGE_PROMPT.format(instruction=instruction, first=first,
                                             second=second))
        m = _VERDICT.search(reply)
        if not m or m.group(2):
            return 0
        return int(m.group(1))


def combine(first_order: int, swapped: int) -> int:
    """+1 (A wins), -1 (B wins) or 0 from the verdicts with A first, then B first."""
    a = {1: 1, 2: -1, 0: 0}[first_order] + {2: 1, 1: -1, 0: 0}[swapped]
    return (a > 0) - (a < 0)


def win_rate(judge: Judge, instructions: list[str], answers_a: list[str],
             answers_b: list[str]) -> dict[str, Any]:
    """A vs B over prompts: ``{"win", "tie", "loss", "n", "outcomes"}`` (rates in [0, 1])."""
    outcomes = []
    for q, a, b in zip(instructions, answers_a, answers_b):
        outcomes.append(combine(judge.verdict(q, a, b), judge.verdict(q, b, a)))
    n = len(outcomes)
    return {"win": outcomes.count(1) / n if n else None,
            "tie": outcomes.count(0) / n if n else None,
            "loss": outcomes.count(-1) / n if n else None, "n": n, "outcomes": outcomes}

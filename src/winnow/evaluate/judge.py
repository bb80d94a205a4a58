"""Pairwise win rate with a judge behind an OpenAI-compatible chat endpoint.

Each comparison is asked twice, with the two answers in both orders. A model *wins* a
prompt when it wins both orders, or wins one and ties the other; it *loses* in the mirror
case; anything else is a tie. Requests go through :class:`winnow.models.chat.ChatClient`
(its rules for the key, retries and failures): a verdict that never came, or a reply naming
no response, is missing, and its prompt is left out of the rates.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import Any

from winnow.models.chat import DEFAULT_KEY_ENV, ChatClient, Result

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


def parse_verdict(reply: str) -> int | None:
    """1 or 2 for the better response, 0 for a tie, None when the reply names neither."""
    m = _VERDICT.search(reply)
    if not m:
        return None
    return 0 if m.group(2) else int(m.group(1))


@dataclass
class Judge:
    """An OpenAI-compatible chat endpoint used as a pairwise judge (temperature 0).

    base_url : e.g. ``http://localhost:8080/v1`` (``/chat/completions`` is appended).
    model : the model name sent in requests.
    api_key_env : environment variable holding the key (may be unset for local servers).
    timeout : seconds per request; retries : attempts after the first, with backoff from
    ``backoff`` seconds. concurrency : requests in flight. cache_dir : reply cache folder.
    """

    base_url: str
    model: str = "judge"
    api_key_env: str = DEFAULT_KEY_ENV
    timeout: float = 60.0
    retries: int = 3
    max_tokens: int = 16
    backoff: float = 1.0
    concurrency: int = 4
    cache_dir: str | os.PathLike | None = None
    client: ChatClient = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        self.client = ChatClient(self.base_url, self.model, self.api_key_env,
                                 timeout=self.timeout, retries=self.retries,
                                 backoff=self.backoff, concurrency=self.concurrency,
                                 cache_dir=self.cache_dir)

    def ask(self, prompt: str) -> str | None:
        """The judge's reply text to one user message, or None once the retries are spent."""
        return self.client.chat(prompt, temperature=0, max_tokens=self.max_tokens).text

    def verdicts(self, comparisons: list[tuple[str, str, str]]) -> list[Result]:
        """Verdicts on ``(instruction, first, second)`` comparisons, asked concurrently:
        each value is :func:`parse_verdict`'s, or None with the reason."""
        return self.client.map(
            [{"messages": [{"role": "user", "content": JUDGE_PROMPT.format(
                instruction=q, first=a, second=b)}], "temperature": 0,
              "max_tokens": self.max_tokens} for q, a, b in comparisons], parse_verdict)

    def verdict(self, instruction: str, first: str, second: str) -> int | None:
        """1 or 2 for the better response, 0 for a tie, None when missing."""
        return self.verdicts([(instruction, first, second)])[0].value


def combine(first_order: int, swapped: int) -> int:
    """+1 (A wins), -1 (B wins) or 0 from the verdicts with A first, then B first."""
    a = {1: 1, 2: -1, 0: 0}[first_order] + {2: 1, 1: -1, 0: 0}[swapped]
    return (a > 0) - (a < 0)


def win_rate(judge: Judge, instructions: list[str], answers_a: list[str],
             answers_b: list[str]) -> dict[str, Any]:
    """A vs B over prompts: ``{"win", "tie", "loss", "n", "missing", "outcomes"}``; rates in
    [0, 1] over the ``n`` prompts with both verdicts; a prompt with a missing verdict has
    outcome None and is counted in ``missing``."""
    results = judge.verdicts([c for q, a, b in zip(instructions, answers_a, answers_b)
                              for c in ((q, a, b), (q, b, a))])
    outcomes = [None if x.value is None or y.value is None else combine(x.value, y.value)
                for x, y in zip(results[::2], results[1::2])]
    judged = [o for o in outcomes if o is not None]
    n = len(judged)
    return {"win": judged.count(1) / n if n else None,
            "tie": judged.count(0) / n if n else None,
            "loss": judged.count(-1) / n if n else None, "n": n,
            "missing": len(outcomes) - n, "outcomes": outcomes}

"""Parsers of judge replies: text (and token log-probabilities) → a value.

A parser is called with the reply text and, when the server sent them, the per-token
log-probabilities (``[{"token", "logprob", "top_logprobs": [{"token", "logprob"}, ...]}, ...]``,
as :class:`winnow.models.chat.Result` gives them). It returns a :class:`Parsed` or raises
:class:`ParseError` with the reason; it never invents a value. A declared fallback (DEITA's
3.0) is returned as ``Parsed(fallback, fallback=reason)`` so that callers can flag it.

Built-in parsers (``PARSERS``):

- ``first-number``: AlpaGasus (gpt4life/alpagasus, ``rating/filter.py``): the float of the
  first line; else the number after the first ``score:`` (then ``Score:``). The official code
  reads ``float`` of the rest of that line (and, after ``Score:``, of one character only),
  raising on anything else; here a leading number on that line is read.
- ``last-score``: self-curation (Instruction Backtranslation): the number of the last
  ``Score: k`` in the reply.
- ``yes-no``: p(Yes): at the first generated token that is "yes" or "no" (any case, spaces
  stripped), p(yes) / (p(yes) + p(no)) summed over the variants in its top log-probabilities
  (an alternative absent from the top-k counts 0); without log-probabilities, 1.0 or 0.0 from
  the reply's first word.
- ``json-tags``: InsTag: the ``tag`` of each object of the JSON list in the reply (the first
  ``[`` to the last ``]``), else every ``"tag": "..."`` the reply contains; a list of strings.
- ``first-line-integer``: LIFT (``quality_curation/generate_gpt_score.py``): the first run
  of digits on the first line, as an integer (the official 0 for none is left to the recipe).
- ``overall-answer``: WaveCoder's discriminator (``llm_gen_dis/main.py``, ``extract_answer``):
  the block from ``- step 1:`` to the end of the ``- reasons:`` line, its ``- Overall answer:``
  line lower-cased and stripped; 1.0 when it holds no "no" (the official keep rule, a
  substring test), else 0.0. No such block or line is unparseable.
- ``json-tree-size``: Tree-Instruct (approximation): the number of nodes of the JSON tree in
  the reply (the first ``{`` to the last ``}``): every object with a ``node`` key, at any
  depth.
- ``digits-expectation``: DEITA (hkust-nlp/deita, ``selection/scorer``): at the first
  generated position keep the tokens that are exactly one of ``digits`` ("1".."6"), softmax
  over their log-probabilities, score = Σ k·p_k. A digit missing from the top
  log-probabilities (or no log-probabilities at all) gives ``fallback`` when one is declared
  (the official 3.0), flagged; else the reply is unparseable. Ask for enough
  ``top_logprobs`` (the official API path asked for 1000; OpenAI allows at most 20).
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Any, ClassVar

Logprobs = list[dict[str, Any]] | None

_NUMBER = r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)"


class ParseError(ValueError):
    """A reply the parser cannot read; the message is the reason."""


@dataclass(frozen=True)
class Parsed:
    """value : the parsed value. fallback : why the declared fallback value was used
    (None when the value was read from the reply)."""

    value: Any
    fallback: str | None = None


class Parser:
    """Base class. ``object_valued``: values are objects (lists), not floats.
    ``has_fallback``: it may return a flagged fallback. ``top_logprobs``: log-probabilities
    per generated token the request asks for (0: none)."""

    name: ClassVar[str]
    object_valued: ClassVar[bool] = False
    has_fallback: ClassVar[bool] = False
    top_logprobs: int = 0

    def __call__(self, text: str, logprobs: Logprobs = None) -> Parsed:
        raise NotImplementedError

    def get_params(self) -> dict[str, Any]:
        """Options that change the parsed values (part of the signal's cache key)."""
        return {}


class FirstNumber(Parser):
    name = "first-number"

    def __call__(self, text: str, logprobs: Logprobs = None) -> Parsed:
        try:
            return Parsed(float(text.split("\n")[0]))
        except ValueError:
            pass
        for marker in ("score:", "Score:"):
            if marker in text:
                m = re.match(rf"\s*({_NUMBER})", text.split(marker, 1)[1].split("\n")[0])
                if m:
                    return Parsed(float(m.group(1)))
                raise ParseError(f"no number after {marker!r}")
        raise ParseError("the first line is not a number and there is no 'score:'")


class LastScore(Parser):
    name = "last-score"

    def __call__(self, text: str, logprobs: Logprobs = None) -> Parsed:
        found = re.findall(rf"Score:\s*({_NUMBER})", text)
        if not found:
            raise ParseError("no 'Score: <number>' in the reply")
        return Parsed(float(found[-1]))


class YesNo(Parser):
    name = "yes-no"

    def __init__(self, top_logprobs: int = 10):
        self.top_logprobs = int(top_logprobs)

    def __call__(self, text: str, logprobs: Logprobs = None) -> Parsed:
        for tok in logprobs or ():
            if _yes_no(tok.get("token")) is None:
                continue
            p = {"yes": 0.0, "no": 0.0}
            for alt in tok.get("top_logprobs") or [tok]:
                word = _yes_no(alt.get("token"))
                if word is not None:
                    p[word] += math.exp(alt["logprob"])
            total = p["yes"] + p["no"]
            if total > 0:
                return Parsed(p["yes"] / total)
        words = re.findall(r"[A-Za-z]+", text)
        word = _yes_no(words[0]) if words else None
        if word is None:
            raise ParseError("the reply does not start with yes or no")
        return Parsed(1.0 if word == "yes" else 0.0)


def _yes_no(token: Any) -> str | None:
    word = str(token or "").strip().lower()
    return word if word in ("yes", "no") else None


class JsonTags(Parser):
    name = "json-tags"
    object_valued = True

    def __call__(self, text: str, logprobs: Logprobs = None) -> Parsed:
        start, stop = text.find("["), text.rfind("]")
        if 0 <= start < stop:
            try:
                items = json.loads(text[start:stop + 1])
            except ValueError:
                items = None
            if isinstance(items, list) and all(isinstance(i, dict) and "tag" in i
                                               for i in items):
                return Parsed([str(i["tag"]) for i in items])
        tags = re.findall(r'"tag"\s*:\s*"((?:[^"\\]|\\.)*)"', text)
        if tags:
            return Parsed(tags)
        raise ParseError('no JSON list of {"tag": ...} objects and no "tag": "..." in the reply')


class FirstLineInteger(Parser):
    name = "first-line-integer"

    def __call__(self, text: str, logprobs: Logprobs = None) -> Parsed:
        m = re.search(r"\d+", text.split("\n")[0])
        if not m:
            raise ParseError("no digits on the first line")
        return Parsed(float(int(m.group())))


class OverallAnswer(Parser):
    name = "overall-answer"

    def __call__(self, text: str, logprobs: Logprobs = None) -> Parsed:
        block = re.search(r"(- step 1:.*?- reasons:.*?)\n", text + "\n", flags=re.DOTALL)
        if not block:
            raise ParseError("no '- step 1: ... - reasons:' block")
        overall = re.search(r"-\s*Overall answer:\s*(.*?)\n", block.group(1))
        if not overall:
            raise ParseError("no '- Overall answer:' line before '- reasons:'")
        return Parsed(0.0 if "no" in overall.group(1).lower().strip() else 1.0)


class JsonTreeSize(Parser):
    name = "json-tree-size"

    def __call__(self, text: str, logprobs: Logprobs = None) -> Parsed:
        start, stop = text.find("{"), text.rfind("}")
        try:
            tree = json.loads(text[start:stop + 1]) if 0 <= start < stop else None
        except ValueError:
            raise ParseError("the reply's {...} is not valid JSON") from None
        size = _nodes(tree)
        if not size:
            raise ParseError('no JSON object with a "node" key in the reply')
        return Parsed(float(size))


def _nodes(obj: Any) -> int:
    """Objects with a ``node`` key inside ``obj``, at any depth."""
    if isinstance(obj, dict):
        return ("node" in obj) + sum(_nodes(v) for v in obj.values())
    if isinstance(obj, list):
        return sum(_nodes(v) for v in obj)
    return 0


class DigitsExpectation(Parser):
    name = "digits-expectation"
    has_fallback = True

    def __init__(self, digits: str = "123456", fallback: float | None = None,
                 top_logprobs: int = 20):
        if not digits or not all(d.isdigit() for d in digits) or len(set(digits)) != len(digits):
            raise ValueError(f"digits must be distinct digit characters, not {digits!r}")
        self.digits, self.top_logprobs = str(digits), int(top_logprobs)
        self.fallback = None if fallback is None else float(fallback)

    def get_params(self) -> dict[str, Any]:
        return {"digits": self.digits, "fallback": self.fallback}

    def expectation(self, logprobs: dict[str, float]) -> float:
        """Σ k·p_k with p the softmax over the digits' log-probabilities."""
        m = max(logprobs[d] for d in self.digits)
        w = {d: math.exp(logprobs[d] - m) for d in self.digits}
        return sum(int(d) * w[d] for d in self.digits) / sum(w.values())

    def __call__(self, text: str, logprobs: Logprobs = None) -> Parsed:
        if not logprobs:
            return self._missing("no log-probabilities in the reply")
        top = {}
        for alt in logprobs[0].get("top_logprobs") or ():
            if alt.get("token") in tuple(self.digits) and alt["token"] not in top:
                top[alt["token"]] = alt["logprob"]
        missing = [d for d in self.digits if d not in top]
        if missing:
            return self._missing(f"digits {''.join(missing)} not in the top "
                                 f"{len(logprobs[0].get('top_logprobs') or ())} log-probabilities")
        return Parsed(self.expectation(top))

    def _missing(self, reason: str) -> Parsed:
        if self.fallback is None:
            raise ParseError(reason)
        return Parsed(self.fallback, fallback=reason)


PARSERS: dict[str, type[Parser]] = {
    p.name: p for p in (FirstNumber, LastScore, YesNo, JsonTags, FirstLineInteger,
                        OverallAnswer, JsonTreeSize, DigitsExpectation)}


def make_parser(name: str, **options: Any) -> Parser:
    """The parser ``name`` (hyphens or underscores) with its options."""
    key = str(name).strip().lower().replace("_", "-")
    if key not in PARSERS:
        raise ValueError(f"unknown parser {name!r}; known: {', '.join(sorted(PARSERS))}")
    try:
        return PARSERS[key](**options)
    except TypeError as e:
        raise ValueError(f"parser {key!r}: {e}") from None

"""Reward backends for NICE: score a generated response to a target example.

``api``   an OpenAI-compatible chat endpoint asked to rate the response with a number
          (DataFlex's judge prompt, 0.0 worst to 1.0 best; with the target's reference
          answer when it has one), through :class:`winnow.models.chat.ChatClient`: retries,
          the key (read from the environment variable named by ``api_key_env``) and failures
          follow its rules; a reply without a number, or a request that still fails, is a
          *missing* reward (``None``), never an exception.
``local`` a sequence-classification reward model (path or HF id) scoring (prompt, response);
          one logit → sigmoid (DataFlex) or the raw logit (``squash: none``, NICE's code),
          several → probability of the last class.
``rule``  ``exact_match`` of the final answer ("The answer is (B)", last number, ...) against
          the target's ``answer`` field or its reference response's final answer; or a
          Python callable ``"module:function"`` taking (prediction, example) → float.

``example`` is a dict with ``instruction`` (the prompt text), ``input``, ``reference`` (the
target's response) and the target's extra fields (``answer``, ``subject`` ...).
"""

from __future__ import annotations

import importlib
import math
import re
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any

import numpy as np

from winnow.models.chat import DEFAULT_KEY_ENV, ChatClient, Result

PROMPT_WITH_REF = (
    "You are a reward model. Evaluate the candidate response to the instruction against the "
    "reference answer. Reply with a single score between 0.0 (worst) and 1.0 (best): 1.0 "
    "means correct, helpful and in agreement with the reference; 0.0 means incorrect, "
    "unhelpful or contradicting it.\n\n"
    "### Instruction:\n{instruction}\n### Input:\n{input}\n### Reference:\n{reference}\n"
    "### Candidate:\n{prediction}\nScore:")
PROMPT_NO_REF = (
    "You are a reward model. Evaluate the candidate response to the instruction. Reply with a "
    "single score between 0.0 (worst) and 1.0 (best): 1.0 means correct, helpful and safe; "
    "0.0 means incorrect, unhelpful or unsafe.\n\n"
    "### Instruction:\n{instruction}\n### Input:\n{input}\n### Candidate:\n{prediction}\n"
    "Score:")

_NUMBER = re.compile(r"[-+]?\d*\.?\d+(?:[eE][-+]?\d+)?")
_ANSWER = re.compile(r"answer\s+is\s*[:\s]*\(?\s*([A-Za-z0-9][A-Za-z0-9.,\-/]*?)\s*\)?\s*(?:\.|$)",
                     re.IGNORECASE | re.MULTILINE)


def parse_score(text: str) -> float | None:
    """The first number in a reply, or None."""
    m = _NUMBER.search(text or "")
    if not m:
        return None
    value = float(m.group())
    return value if math.isfinite(value) else None


def final_answer(text: str) -> str:
    """The answer a response commits to: after the last "answer is", else its last number,
    else the stripped text; lower-cased, without trailing punctuation or a thousands comma."""
    found = _ANSWER.findall(text or "")
    if found:
        ans = found[-1]
    else:
        nums = re.findall(r"-?\d[\d,]*\.?\d*", text or "")
        ans = nums[-1] if nums else (text or "").strip()
    return ans.strip().strip(".").replace(",", "").lower()


class RewardBackend(ABC):
    """Scores responses; ``None`` marks a missing reward."""

    name: str = ""

    @abstractmethod
    def score(self, example: dict[str, Any], prediction: str) -> float | None: ...

    def identity(self) -> dict[str, Any]:
        """What determines the scores (for cache keys); never a secret."""
        return {"backend": self.name}


class ApiReward(RewardBackend):
    """LLM judge over an OpenAI-compatible chat endpoint (see module docstring), asked through
    :class:`~winnow.models.chat.ChatClient` and its rules for keys, retries and failures.

    url : the endpoint (``.../v1``, or ``.../v1/chat/completions``).
    model : model name sent. api_key_env : variable holding the key (unset: no auth header).
    temperature, max_tokens : sampling of the judge. timeout : seconds per request.
    retries : attempts after the first. backoff : first wait in seconds (doubles each time).
    cache_dir : folder of the reply cache (None: none); a rerun asks only what is missing.
    """

    name = "api"

    def __init__(self, url: str, model: str = "gpt-4o", api_key_env: str = DEFAULT_KEY_ENV,
                 temperature: float = 0.0, max_tokens: int = 16, timeout: float = 60.0,
                 retries: int = 4, backoff: float = 1.0, prompt_with_ref: str = PROMPT_WITH_REF,
                 prompt_no_ref: str = PROMPT_NO_REF, cache_dir: str | None = None):
        self.client = ChatClient(url, model, api_key_env, timeout=timeout, retries=retries,
                                 backoff=backoff, cache_dir=cache_dir)
        self.url = self.client.base_url + "/chat/completions"
        self.model, self.api_key_env = model, api_key_env
        self.temperature, self.max_tokens = temperature, max_tokens
        self.prompt_with_ref, self.prompt_no_ref = prompt_with_ref, prompt_no_ref
        self.failures = 0

    def identity(self) -> dict[str, Any]:
        return {"backend": "api", "url": self.url, "model": self.model,
                "temperature": self.temperature, "prompt": self.prompt_with_ref,
                "prompt_no_ref": self.prompt_no_ref}

    def prompt(self, example: dict[str, Any], prediction: str) -> str:
        fields = {"instruction": example.get("instruction", "").strip(),
                  "input": (example.get("input") or "").strip() or "No additional input.",
                  "reference": (example.get("reference") or "").strip(),
                  "prediction": prediction.strip() or "No response."}
        template = self.prompt_with_ref if fields["reference"] else self.prompt_no_ref
        return template.format(**fields)

    def ask(self, content: str) -> str | None:
        """The reply text, or None once the retries are spent."""
        return self._chat(content).text

    def score(self, example: dict[str, Any], prediction: str) -> float | None:
        return self._chat(self.prompt(example, prediction), parse_score).value

    def _chat(self, content: str, parse: Callable[[str], Any] | None = None) -> Result:
        result = self.client.chat(content, parse, temperature=self.temperature,
                                  max_tokens=self.max_tokens)
        if result.text is None:
            self.failures += 1
        return result


class LocalReward(RewardBackend):
    """A sequence-classification reward model scoring (prompt, response) pairs: the tokenizer's
    pair encoding, truncated longest-first to ``max_length`` tokens.

    squash : with one logit, ``sigmoid`` (DataFlex) or ``none`` (the raw logit, NICE's code);
        with several, the probability of the last class.
    logit : score by this raw logit instead, whatever the head (MoDS: 0).
    """

    name = "local"

    def __init__(self, model: str, squash: str = "sigmoid", device: str = "auto",
                 max_length: int = 4096, logit: int | None = None):
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        from winnow.models.device import resolve_device

        if squash not in ("sigmoid", "none"):
            raise ValueError("squash must be 'sigmoid' or 'none'")
        self.path, self.squash, self.max_length, self.logit = model, squash, max_length, logit
        self.device = resolve_device(device)
        self.tokenizer = AutoTokenizer.from_pretrained(model)
        self.model = AutoModelForSequenceClassification.from_pretrained(model).to(self.device)
        self.model.eval()
        if self.tokenizer.pad_token is None:  # batches pad with EOS, and the head skips it
            self.tokenizer.pad_token = self.tokenizer.eos_token
            self.model.config.pad_token_id = self.tokenizer.pad_token_id
        elif self.model.config.pad_token_id is None:
            self.model.config.pad_token_id = self.tokenizer.pad_token_id

    def identity(self) -> dict[str, Any]:
        ident = {"backend": "local", "model": self.path, "squash": self.squash}
        return ident if self.logit is None else {**ident, "logit": self.logit}

    def score(self, example: dict[str, Any], prediction: str) -> float | None:
        prompt = "\n\n".join(x for x in (example.get("instruction", ""), example.get("input"))
                             if x)
        return float(self.score_pairs([prompt], [prediction])[0])

    def score_pairs(self, prompts: list[str], responses: list[str],
                    batch_size: int = 8) -> np.ndarray:
        """Scores (n,) float32 of the pairs ``(prompts[i], responses[i])``, ``batch_size``
        pairs per forward pass (padded)."""
        import torch

        out = []
        with torch.no_grad():
            for a in range(0, len(prompts), batch_size):
                enc = self.tokenizer(prompts[a:a + batch_size], responses[a:a + batch_size],
                                     truncation=True, max_length=self.max_length, padding=True,
                                     return_tensors="pt").to(self.device)
                logits = self.model(**enc).logits.float()
                if self.logit is not None:
                    scores = logits[:, self.logit]
                elif logits.shape[1] == 1:
                    scores = torch.sigmoid(logits[:, 0]) if self.squash == "sigmoid" \
                        else logits[:, 0]
                else:
                    scores = torch.softmax(logits, -1)[:, -1]
                out.append(scores.cpu().numpy())
        return np.concatenate(out) if out else np.zeros(0, dtype=np.float32)


class RuleReward(RewardBackend):
    """``exact_match`` of final answers, or a callable ``"module:function"``."""

    name = "rule"

    def __init__(self, rule: str | Callable[[str, dict], float] = "exact_match"):
        self.rule_name = rule if isinstance(rule, str) else \
            f"{rule.__module__}:{rule.__qualname__}"
        if callable(rule):
            self.fn = rule
        elif rule == "exact_match":
            self.fn = exact_match
        elif ":" in rule:
            module, _, attr = rule.partition(":")
            self.fn = getattr(importlib.import_module(module), attr)
        else:
            raise ValueError(f"rule {rule!r}: use exact_match or module:function")

    def identity(self) -> dict[str, Any]:
        return {"backend": "rule", "rule": self.rule_name}

    def score(self, example: dict[str, Any], prediction: str) -> float | None:
        value = self.fn(prediction, example)
        return None if value is None else float(value)


def exact_match(prediction: str, example: dict[str, Any]) -> float:
    """1.0 when the final answers agree, else 0.0."""
    ref = example.get("answer")
    ref = final_answer(str(ref)) if ref not in (None, "") else final_answer(
        example.get("reference", ""))
    return float(final_answer(prediction) == ref)


def make_reward(backend: str, params: dict[str, Any] | None = None) -> RewardBackend:
    """A backend from DataFlex-style settings: ``backend`` and its params, given flat or
    nested under the backend's name (``reward_backend_params: {api: {...}}``).

    DataFlex's api keys are accepted: ``api_url`` (url), ``model_name`` (model), ``api_key``
    (the *name* of the environment variable holding the key).
    """
    params = dict(params or {})
    if backend in params and isinstance(params[backend], dict):
        params = params[backend]
    if backend == "api":
        renames = {"api_url": "url", "model_name": "model", "api_key": "api_key_env"}
        return ApiReward(**{renames.get(k, k): v for k, v in params.items()})
    if backend == "local":
        renames = {"hf_model_name_or_path": "model", "model_path": "model"}
        return LocalReward(**{renames.get(k, k): v for k, v in params.items()})
    if backend == "rule":
        return RuleReward(**params)
    if backend == "local_vllm":
        raise ValueError("reward backend local_vllm is DataFlex's vLLM server; run any "
                         "OpenAI-compatible server (vLLM, llama.cpp) and use backend: api")
    raise ValueError(f"unknown reward backend {backend!r}; choose api, local or rule")


def reward_scores(model: str, prompts: list[str], responses: list[str], *, logit: int = 0,
                  max_length: int = 512, batch_size: int = 8,
                  device: str = "auto") -> np.ndarray:
    """MoDS's reward: raw logit ``logit`` of a sequence-classification model on each
    (prompt, response) pair, truncated to ``max_length`` tokens; (n,) float32."""
    return LocalReward(model, device=device, max_length=max_length,
                       logit=logit).score_pairs(prompts, responses, batch_size)

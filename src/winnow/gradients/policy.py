"""NICE target features: projected policy gradients of rewarded generations.

For a target example with prompt x: sample ``mc_samples`` responses y_s from the model being
selected for (temperature ``temperature``, nucleus ``top_p`` 0.95 and ``top_k`` 50 as NICE's
``collect_generation.py`` samples, at most ``max_new_tokens``, prompt left-truncated to
``max_prompt_length``), score each with a reward backend, and take the gradient of
(1/S) Σ_s r_s · NLL(y_s | x), NLL summed over the response tokens (NICE's un-normalised
policy-gradient loss; DataFlex's NICE averages over the samples the same way). Samples
whose reward is missing are left out of the sum and of S. Sampling is seeded per example:
seed + 997 · position (as DataFlex), so reruns draw the same responses.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from winnow.data.pool import Pool, last_exchange
from winnow.gradients.encode import prompt_ids, with_response
from winnow.gradients.features import normalise, project_examples
from winnow.gradients.signal import GradientFeatures
from winnow.models.reward import RewardBackend, make_reward
from winnow.signals.base import Columns


def reward_example(pool: Pool, i: int) -> dict[str, Any]:
    """What a reward backend sees of target example ``i``."""
    user = next((t for t in reversed(pool.conversations[i]) if t["role"] == "user"), {})
    instruction, reference = last_exchange(pool.conversations[i])
    return {**{k: v[i] for k, v in pool.extra.items()},
            "instruction": user.get("instruction", instruction), "input": user.get("input", ""),
            "reference": reference}


def generate(model, tokenizer, prompt: list[int], n: int, *, temperature: float,
             max_new_tokens: int, seed: int, top_p: float = 0.95,
             top_k: int = 50) -> list[list[int]]:
    """``n`` sampled continuations of ``prompt`` (token ids, EOS kept when produced)."""
    device = next(model.parameters()).device
    ids = torch.tensor([prompt], device=device)
    torch.manual_seed(seed)
    with torch.no_grad():
        out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), do_sample=True,
                             temperature=temperature, top_p=top_p, top_k=top_k,
                             max_new_tokens=max_new_tokens, num_return_sequences=n,
                             pad_token_id=tokenizer.pad_token_id)
    result = []
    for row in out[:, len(prompt):].tolist():
        if tokenizer.eos_token_id in row:
            row = row[: row.index(tokenizer.eos_token_id) + 1]
        while row and row[-1] == tokenizer.pad_token_id and tokenizer.pad_token_id != \
                tokenizer.eos_token_id:
            row.pop()
        result.append(row)
    return result


def policy_features(model, tokenizer, pool: Pool, rows, reward: RewardBackend, projector, *,
                    pad_id: int, mc_samples: int, temperature: float, max_new_tokens: int,
                    max_prompt_length: int, seed: int, template: str | None,
                    top_p: float = 0.95, top_k: int = 50, max_tokens: int = 4096,
                    max_batch: int = 16) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(features (len(rows), proj_dim) float32, mean reward, missing rewards) of target rows."""
    feats, means, missing = [], [], []
    for i in rows:
        prompt = prompt_ids(tokenizer, pool.conversations[i], max_prompt_length, template)
        samples = generate(model, tokenizer, prompt, mc_samples, temperature=temperature,
                           max_new_tokens=max_new_tokens, seed=seed + 997 * int(i),
                           top_p=top_p, top_k=top_k)
        example = reward_example(pool, i)
        rewards = [reward.score(example, tokenizer.decode(s, skip_special_tokens=True))
                   for s in samples]
        kept = [(s, r) for s, r in zip(samples, rewards) if r is not None and s]
        missing.append(sum(r is None for r in rewards))
        means.append(float(np.mean([r for _, r in kept])) if kept else np.nan)
        if not kept or all(r == 0 for _, r in kept):
            feats.append(np.zeros(projector.proj_dim, dtype=np.float32))
            continue
        items = [with_response(prompt, s) for s, _ in kept]
        with torch.enable_grad():
            proj = project_examples(model, items, projector, pad_id=pad_id,
                                    weights=[r for _, r in kept], reduction="sum",
                                    max_tokens=max_tokens, max_batch=max_batch)
        feats.append(proj.sum(0) / len(kept))
    return np.stack(feats), np.array(means), np.array(missing, dtype=np.int64)


class PolicyGradientFeatures(GradientFeatures):
    """NICE target features (see module docstring), computed on the *target* pool.

    Extra parameters: ``reward_backend`` and ``reward_params`` (see
    :func:`winnow.models.reward.make_reward`), ``mc_samples``, ``temperature``, ``top_p``,
    ``top_k``, ``max_new_tokens``, ``max_prompt_length``, ``seed``.
    Columns: ``grad`` (m, proj_dim) float16 unit rows, ``grad_norm``, ``reward_mean`` (mean
    reward of the scored samples, NaN when none) and ``rewards_missing`` (count).
    """

    name = "policy_gradient_features"
    columns = ("grad", "grad_norm", "reward_mean", "rewards_missing")
    shard_size = 16

    def __init__(self, *, reward_backend: str = "rule", reward_params: dict | None = None,
                 mc_samples: int = 4, temperature: float = 0.7, top_p: float = 0.95,
                 top_k: int = 50, max_new_tokens: int = 512, max_prompt_length: int = 4096,
                 seed: int = 0, **params: Any):
        params.setdefault("gradient_type", "sgd")
        super().__init__(**params)
        self.reward: RewardBackend = make_reward(reward_backend, reward_params)
        self.params.update(reward=self.reward.identity(), mc_samples=int(mc_samples),
                           temperature=float(temperature), top_p=float(top_p),
                           top_k=int(top_k), max_new_tokens=int(max_new_tokens),
                           max_prompt_length=int(max_prompt_length), seed=int(seed))

    def compute(self, pool: Pool, start: int, stop: int) -> Columns:
        lm = self.lora_model()
        p = self.params
        feats, means, missing = policy_features(
            lm.model, lm.tokenizer, pool, range(start, stop), self.reward, self.projector(),
            pad_id=lm.pad_id, mc_samples=p["mc_samples"], temperature=p["temperature"],
            max_new_tokens=p["max_new_tokens"], max_prompt_length=p["max_prompt_length"],
            seed=p["seed"], template=p["template"], top_p=p["top_p"], top_k=p["top_k"],
            max_tokens=p["max_tokens"],
            max_batch=p["max_batch"])
        unit, norms = normalise(feats)
        return {"grad": unit, "grad_norm": norms, "reward_mean": means,
                "rewards_missing": missing}

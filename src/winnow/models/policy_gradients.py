"""NICE target features: projected policy gradients of rewarded generations.

For a target example with prompt x: sample ``mc_samples`` responses y_s from the model being
selected for (temperature ``temperature``, nucleus ``top_p`` 0.95 and ``top_k`` 50 as NICE's
``collect_generation.py`` samples, at most ``max_new_tokens``, prompt left-truncated to
``max_prompt_length``), score each with a reward backend, and take the gradient of
(1/S) Σ_s r_s · NLL(y_s | x), NLL summed over the response tokens (NICE's un-normalised
policy-gradient loss; DataFlex's NICE averages over the samples the same way). Samples
whose reward is missing are left out of the sum and of S. The samples of ``gen_batch``
prompts come from one batched generate call (left-padded prompts, ``mc_samples`` rows each),
seeded by seed + 997 · position of the batch's first example (DataFlex seeds per example the
same way), so reruns with the same batching draw the same responses.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from winnow.data.pool import Pool, last_exchange
from winnow.data.tokenize import prompt_ids, with_response
from winnow.models.generate import generate_ids
from winnow.models.grad_features import project_examples
from winnow.models.reward import RewardBackend


def reward_example(pool: Pool, i: int) -> dict[str, Any]:
    """What a reward backend sees of target example ``i``."""
    user = next((t for t in reversed(pool.conversations[i]) if t["role"] == "user"), {})
    instruction, reference = last_exchange(pool.conversations[i])
    return {**{k: v[i] for k, v in pool.extra.items()},
            "instruction": user.get("instruction", instruction), "input": user.get("input", ""),
            "reference": reference}


def sample_responses(model, tokenizer, prompts: list[list[int]], n: int, *, temperature: float,
                     max_new_tokens: int, seed: int, top_p: float = 0.95, top_k: int = 50,
                     batch_size: int = 8) -> list[list[list[int]]]:
    """``n`` sampled continuations of each prompt (token ids, EOS kept when produced), per
    prompt, ``batch_size`` prompts (x ``n`` rows) per generate call, drawn after
    ``torch.manual_seed(seed)`` with NICE's nucleus settings."""
    flat = generate_ids(model, tokenizer, prompts, max_new_tokens, do_sample=True,
                        temperature=temperature, top_p=top_p, top_k=top_k,
                        num_return_sequences=n, batch_size=batch_size, seed=seed)
    return [flat[k * n:(k + 1) * n] for k in range(len(prompts))]


def policy_features(model, tokenizer, pool: Pool, rows, reward: RewardBackend, projector, *,
                    pad_id: int, mc_samples: int, temperature: float, max_new_tokens: int,
                    max_prompt_length: int, seed: int, template: str | None,
                    top_p: float = 0.95, top_k: int = 50, max_tokens: int | None = None,
                    max_batch: int = 16, gen_batch: int = 8, dtype: str = "fp32"
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(features (len(rows), proj_dim) float32, mean reward, missing rewards) of target rows."""
    rows = [int(i) for i in rows]
    prompts = [prompt_ids(tokenizer, pool.conversations[i], max_prompt_length, template)
               for i in rows]
    samples: list[list[list[int]]] = []
    for a in range(0, len(rows), gen_batch):
        samples += sample_responses(model, tokenizer, prompts[a:a + gen_batch], mc_samples,
                                    temperature=temperature, max_new_tokens=max_new_tokens,
                                    seed=seed + 997 * rows[a], top_p=top_p, top_k=top_k,
                                    batch_size=gen_batch)
    feats, means, missing = [], [], []
    for i, prompt, drawn in zip(rows, prompts, samples):
        example = reward_example(pool, i)
        rewards = [reward.score(example, tokenizer.decode(s, skip_special_tokens=True))
                   for s in drawn]
        kept = [(s, r) for s, r in zip(drawn, rewards) if r is not None and s]
        missing.append(sum(r is None for r in rewards))
        means.append(float(np.mean([r for _, r in kept])) if kept else np.nan)
        if not kept or all(r == 0 for _, r in kept):
            feats.append(np.zeros(projector.proj_dim, dtype=np.float32))
            continue
        items = [with_response(prompt, s) for s, _ in kept]
        with torch.enable_grad():
            proj = project_examples(model, items, projector, pad_id=pad_id,
                                    weights=[r for _, r in kept], reduction="sum",
                                    max_tokens=max_tokens, max_batch=max_batch, dtype=dtype)
        feats.append(proj.sum(0) / len(kept))
    return np.stack(feats), np.array(means), np.array(missing, dtype=np.int64)

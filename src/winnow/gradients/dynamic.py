"""LESS, NICE and ClusterUCB as dynamic selectors of ``winnow train``
(``component_name: less | nice | cluster-ucb``).

At each update the live model and the trainer's optimizer give the features: pool
gradients Adam-preconditioned with the optimizer's current moments (``gradient_type:
adam``; plain with ``sgd``, or before the first optimizer step), target gradients plain
(LESS, ClusterUCB) or policy gradients of rewarded samples from the live model (NICE). The
target is ``extras["target"]`` when the caller passes one, else the run's eval set
(``eval_dataset``, as DataFlex uses it). Scores are LESS's: cosine, mean per target subtask,
max over subtasks. Pool examples are taken as tokenized for training (same template and
cutoff); the model is switched to eval mode (no dropout) while features are computed.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from winnow.data.pool import Pool
from winnow.gradients.encode import Encoded, encode_conversations
from winnow.gradients.features import normalise, project_examples
from winnow.gradients.less import resolve_subtask
from winnow.gradients.lora import trainable
from winnow.gradients.matching import influence, subtask_ids
from winnow.gradients.policy import policy_features
from winnow.gradients.projection import Projector
from winnow.models.reward import make_reward
from winnow.selectors.base import Selection
from winnow.selectors.cluster_ucb import ClusterUCB
from winnow.train.dynamic.base import DynamicSelector, SelectionState, register_dynamic_selector


def optimizer_moments(model, optimizer) -> tuple[torch.Tensor, torch.Tensor] | None:
    """Flat (exp_avg, exp_avg_sq) of the trainable parameters; None before the first step."""
    params = [p for _, p in trainable(model)]
    states = [optimizer.state.get(p, {}) if optimizer is not None else {} for p in params]
    if not all("exp_avg" in s for s in states):
        return None
    return (torch.cat([s["exp_avg"].reshape(-1).float() for s in states]),
            torch.cat([s["exp_avg_sq"].reshape(-1).float() for s in states]))


class GradientDynamic(DynamicSelector):
    """Shared machinery; parameters (DataFlex names): gradient_type (adam), proj_dim,
    seed (projection seed), projection (sparse), subtask (auto), max_batch, max_tokens."""

    name = "gradient"

    def __init__(self, gradient_type: str = "adam", proj_dim: int = 8192, seed: int = 0,
                 projection: str = "sparse", subtask: str | None = "auto",
                 max_batch: int = 16, max_tokens: int = 4096, **extra: Any):
        self.params = {"gradient_type": gradient_type, "proj_dim": int(proj_dim),
                       "seed": int(seed), "projection": projection, "subtask": subtask,
                       "max_batch": int(max_batch), "max_tokens": int(max_tokens), **extra}

    def target(self, state: SelectionState) -> Pool:
        target = state.extras.get("target") or state.extras.get("eval_pool")
        if target is None:
            raise ValueError(f"dynamic selector {self.name!r} needs a target set: set "
                             "eval_dataset (or pass extras={'target': pool})")
        return target

    def projector(self, model) -> Projector:
        dim = sum(p.numel() for _, p in trainable(model))
        return Projector(dim, self.params["proj_dim"], self.params["seed"],
                         self.params["projection"], next(model.parameters()).device)

    def pool_features(self, model, tokenizer, rows, state, optimizer, projector) -> np.ndarray:
        items = [Encoded(list(state.dataset[int(i)]["input_ids"]),
                         list(state.dataset[int(i)]["labels"])) for i in rows]
        moments = (optimizer_moments(model, optimizer)
                   if self.params["gradient_type"] == "adam" else None)
        raw = project_examples(model, items, projector, pad_id=tokenizer.pad_token_id,
                               moments=moments, max_tokens=self.params["max_tokens"],
                               max_batch=self.params["max_batch"])
        return normalise(raw)[0]

    def target_features(self, model, tokenizer, target: Pool, state, projector) -> np.ndarray:
        items = encode_conversations(tokenizer, target.conversations,
                                     state.extras.get("cutoff_len", 2048),
                                     state.extras.get("template"))
        raw = project_examples(model, items, projector, pad_id=tokenizer.pad_token_id,
                               max_tokens=self.params["max_tokens"],
                               max_batch=self.params["max_batch"])
        return normalise(raw)[0]

    def scores(self, pool_feats, target_feats, target: Pool) -> np.ndarray:
        col = resolve_subtask(target, self.params["subtask"])
        groups = subtask_ids(target.extra[col], len(target)) if col else None
        return influence([pool_feats], [target_feats], None, groups)

    def select(self, model, tokenizer, pool, step, budget, optimizer, state):
        target = self.target(state)
        was_training = model.training
        model.eval()
        try:
            with torch.enable_grad():
                return self._select(model, tokenizer, pool, budget, optimizer, state, target)
        finally:
            model.train(was_training)

    def _select(self, model, tokenizer, pool, budget, optimizer, state, target) -> Selection:
        proj = self.projector(model)
        tf = self.target_features(model, tokenizer, target, state, proj)
        pf = self.pool_features(model, tokenizer, range(len(pool)), state, optimizer, proj)
        s = self.scores(pf, tf, target)
        idx = np.argsort(-s, kind="stable")[:budget]
        return Selection(idx, s[idx], {"target": len(target)})


@register_dynamic_selector
class LessDynamic(GradientDynamic):
    """LESS at every update: top ``budget`` pool examples by influence on the target."""

    name = "less"


@register_dynamic_selector
class NiceDynamic(GradientDynamic):
    """NICE at every update: target features are policy gradients of rewarded samples of
    the live model. DataFlex keys: reward_model_backend (rule), reward_backend_params,
    mc_samples (4), max_new_tokens (512), generation_temperature (0.7), max_prompt_length
    (4096); proj_dim defaults to 4096. Sampling uses NICE's top_p (0.95) and top_k (50).
    ``cache_dir`` and ``save_interval`` are accepted (the run's selection log already
    records and resumes every update)."""

    name = "nice"

    def __init__(self, proj_dim: int = 4096, reward_model_backend: str = "rule",
                 reward_backend_params: dict | None = None, mc_samples: int = 4,
                 max_new_tokens: int = 512, generation_temperature: float = 0.7,
                 top_p: float = 0.95, top_k: int = 50, max_prompt_length: int = 4096,
                 cache_dir: str | None = None, save_interval: int | None = None,
                 **params: Any):
        super().__init__(proj_dim=proj_dim, reward_model_backend=reward_model_backend,
                         reward_backend_params=dict(reward_backend_params or {}),
                         mc_samples=int(mc_samples), max_new_tokens=int(max_new_tokens),
                         generation_temperature=float(generation_temperature),
                         top_p=float(top_p), top_k=int(top_k),
                         max_prompt_length=int(max_prompt_length), **params)
        self.reward = make_reward(reward_model_backend, reward_backend_params)

    def target_features(self, model, tokenizer, target, state, projector) -> np.ndarray:
        p = self.params
        raw, _, _ = policy_features(
            model, tokenizer, target, range(len(target)), self.reward, projector,
            pad_id=tokenizer.pad_token_id, mc_samples=p["mc_samples"],
            temperature=p["generation_temperature"], max_new_tokens=p["max_new_tokens"],
            max_prompt_length=p["max_prompt_length"], seed=p["seed"] + state.phase.start,
            template=state.extras.get("template"), top_p=p["top_p"], top_k=p["top_k"],
            max_tokens=p["max_tokens"],
            max_batch=p["max_batch"])
        return normalise(raw)[0]


@register_dynamic_selector
class ClusterUCBDynamic(GradientDynamic):
    """ClusterUCB at every update: clusters of the pool features from the first update;
    afterwards only the examples the bandit draws (``budget_fraction`` of the pool) get
    gradients. Parameters: n_clusters (20), beta (1), budget_fraction (0.2), cold_start (0)."""

    name = "cluster_ucb"

    def __init__(self, n_clusters: int = 20, beta: float = 1.0, budget_fraction: float = 0.2,
                 cold_start: float = 0.0, **params: Any):
        super().__init__(n_clusters=int(n_clusters), beta=float(beta),
                         budget_fraction=float(budget_fraction), cold_start=float(cold_start),
                         **params)
        self._cluster_features: np.ndarray | None = None

    def _select(self, model, tokenizer, pool, budget, optimizer, state, target) -> Selection:
        proj = self.projector(model)
        tf = self.target_features(model, tokenizer, target, state, proj)
        if self._cluster_features is None:
            self._cluster_features = self.pool_features(model, tokenizer, range(len(pool)),
                                                        state, optimizer, proj)

        def score_fn(rows):
            pf = self.pool_features(model, tokenizer, rows, state, optimizer, proj)
            return self.scores(pf, tf, target)

        p = self.params
        ucb = ClusterUCB(p["n_clusters"], p["beta"], p["budget_fraction"], p["cold_start"],
                         random_state=state.seed + state.phase.start)
        return ucb.select(budget, X=self._cluster_features, score_fn=score_fn)

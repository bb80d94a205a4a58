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
from winnow.data.tokenize import tokenize_conversations
from winnow.models.grad_features import normalise, project_examples
from winnow.models.lora import grad_dim, optimizer_moments
from winnow.models.policy_gradients import policy_features
from winnow.models.projection import Projector
from winnow.models.reward import make_reward
from winnow.selectors.base import Selection
from winnow.selectors.cluster_ucb import ClusterUCB
from winnow.signals.influence import influence, resolve_subtask, subtask_ids
from winnow.train.dynamic.base import DynamicSelector, SelectionState


class GradientDynamic(DynamicSelector):
    """Shared machinery; parameters (DataFlex names): gradient_type (adam), proj_dim,
    seed (projection seed), projection (sparse), subtask (auto), max_batch, max_tokens.
    DataFlex's ``cache_dir`` and ``save_interval`` are accepted (the run's selection log
    already records and resumes every update)."""

    name = "gradient"

    def __init__(self, gradient_type: str = "adam", proj_dim: int = 8192, seed: int = 0,
                 projection: str = "sparse", subtask: str | None = "auto",
                 max_batch: int = 16, max_tokens: int | None = None, cache_dir: str | None = None,
                 save_interval: int | None = None):
        self.gradient_type, self.proj_dim, self.seed = gradient_type, int(proj_dim), int(seed)
        self.projection, self.subtask = projection, subtask
        self.max_batch = int(max_batch)
        self.max_tokens = None if max_tokens is None else int(max_tokens)
        self.cache_dir, self.save_interval = cache_dir, save_interval

    def target(self, state: SelectionState) -> Pool:
        target = state.extras.get("target") or state.extras.get("eval_pool")
        if target is None:
            raise ValueError(f"dynamic selector {self.name!r} needs a target set: set "
                             "eval_dataset (or pass extras={'target': pool})")
        return target

    def projector(self, model) -> Projector:
        return Projector(grad_dim(model), self.proj_dim, self.seed, self.projection,
                         next(model.parameters()).device)

    def pool_features(self, model, tokenizer, rows, state, optimizer, projector) -> np.ndarray:
        items = [state.dataset[int(i)] for i in rows]
        moments = optimizer_moments(model, optimizer) if self.gradient_type == "adam" else None
        raw = project_examples(model, items, projector, pad_id=tokenizer.pad_token_id,
                               moments=moments, max_tokens=self.max_tokens,
                               max_batch=self.max_batch)
        return normalise(raw)[0]

    def target_features(self, model, tokenizer, target: Pool, state, projector) -> np.ndarray:
        items = tokenize_conversations(tokenizer, target.conversations,
                                       state.extras.get("template"),
                                       state.extras.get("cutoff_len", 2048),
                                       truncation="right", source=target.source.path)
        raw = project_examples(model, items, projector, pad_id=tokenizer.pad_token_id,
                               max_tokens=self.max_tokens, max_batch=self.max_batch)
        return normalise(raw)[0]

    def scores(self, pool_feats, target_feats, target: Pool) -> np.ndarray:
        col = resolve_subtask(target, self.subtask)
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


class LessDynamic(GradientDynamic):
    """LESS at every update: top ``budget`` pool examples by influence on the target."""

    name = "less"


class NiceDynamic(GradientDynamic):
    """NICE at every update: target features are policy gradients of rewarded samples of
    the live model. DataFlex keys: reward_model_backend (rule), reward_backend_params,
    mc_samples (4), max_new_tokens (512), generation_temperature (0.7), max_prompt_length
    (4096); proj_dim defaults to 4096. Sampling uses NICE's top_p (0.95) and top_k (50)."""

    name = "nice"

    def __init__(self, proj_dim: int = 4096, reward_model_backend: str = "rule",
                 reward_backend_params: dict | None = None, mc_samples: int = 4,
                 max_new_tokens: int = 512, generation_temperature: float = 0.7,
                 top_p: float = 0.95, top_k: int = 50, max_prompt_length: int = 4096,
                 **params: Any):
        super().__init__(proj_dim=proj_dim, **params)
        self.reward_model_backend = reward_model_backend
        self.reward_backend_params = dict(reward_backend_params or {})
        self.mc_samples, self.max_new_tokens = int(mc_samples), int(max_new_tokens)
        self.generation_temperature = float(generation_temperature)
        self.top_p, self.top_k = float(top_p), int(top_k)
        self.max_prompt_length = int(max_prompt_length)
        self.reward = make_reward(reward_model_backend, reward_backend_params)

    def target_features(self, model, tokenizer, target, state, projector) -> np.ndarray:
        raw, _, _ = policy_features(
            model, tokenizer, target, range(len(target)), self.reward, projector,
            pad_id=tokenizer.pad_token_id, mc_samples=self.mc_samples,
            temperature=self.generation_temperature, max_new_tokens=self.max_new_tokens,
            max_prompt_length=self.max_prompt_length, seed=self.seed + state.phase.start,
            template=state.extras.get("template"), top_p=self.top_p, top_k=self.top_k,
            max_tokens=self.max_tokens, max_batch=self.max_batch)
        return normalise(raw)[0]


class ClusterUCBDynamic(GradientDynamic):
    """ClusterUCB at every update: clusters of the pool features from the first update;
    afterwards only the examples the bandit draws (``budget_fraction`` of the pool) get
    gradients. Parameters: n_clusters (20), beta (1), budget_fraction (0.2), cold_start (0)."""

    name = "cluster_ucb"

    def __init__(self, n_clusters: int = 20, beta: float = 1.0, budget_fraction: float = 0.2,
                 cold_start: float = 0.0, **params: Any):
        super().__init__(**params)
        self.n_clusters, self.beta = int(n_clusters), float(beta)
        self.budget_fraction, self.cold_start = float(budget_fraction), float(cold_start)
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

        ucb = ClusterUCB(self.n_clusters, self.beta, self.budget_fraction, self.cold_start,
                         random_state=state.seed + state.phase.start)
        return ucb.select(budget, X=self._cluster_features, score_fn=score_fn)

"""The ``nice`` signal: LESS with policy-gradient target features.

Wang et al., "NICE Data Selection for Instruction Tuning in LLMs with Non-differentiable
Evaluation Metric" (ICML 2025); official code JTWang2000/NICE; DataFlex's ``nice`` selector.
Pool features and matching are LESS's (:mod:`winnow.gradients.less`); the target side is
:class:`~winnow.gradients.policy.PolicyGradientFeatures`: rewarded samples from the model at
each checkpoint (the model being selected for, not a separate frozen copy).

DataFlex's configuration keys are accepted with its defaults: ``gradient_type`` (adam),
``proj_dim`` (4096), ``seed`` (projection and sampling seed), ``save_interval`` (target
examples per cached shard), ``reward_model_backend`` (api | local | rule) with
``reward_backend_params``, ``mc_samples`` (4; NICE's code uses 20), ``max_new_tokens`` (512),
``generation_temperature`` (0.7), ``max_prompt_length`` (4096), ``cache_dir`` (the cache
root for this signal's work). Sampling uses NICE's own nucleus settings, ``top_p`` (0.95)
and ``top_k`` (50); DataFlex leaves them to the model's generation config. Two DataFlex
defects are not reproduced: its Adam transform of the pool gradients is computed and then
discarded (plain gradients are used), and its selector requires
``policy_model_path``/``reward_model_path`` that its shipped config never passes.
"""

from __future__ import annotations

from typing import Any

from winnow.data.pool import Pool
from winnow.gradients.less import LessInfluence
from winnow.gradients.policy import PolicyGradientFeatures
from winnow.signals.base import Columns, Signal
from winnow.store import Store


class NiceInfluence(LessInfluence):
    """NICE scores of the pool for ``target`` (see module docstring); columns ``nice``
    (the score) and ``grad`` (the last checkpoint's pool features)."""

    name = "nice"
    columns = ("nice", "grad")

    def __init__(self, target: Pool | None = None, *, gradient_type: str = "adam",
                 proj_dim: int = 4096, seed: int = 0, save_interval: int = 16,
                 reward_model_backend: str = "rule", reward_backend_params: dict | None = None,
                 mc_samples: int = 4, max_new_tokens: int = 512,
                 generation_temperature: float = 0.7, top_p: float = 0.95, top_k: int = 50,
                 max_prompt_length: int = 4096, cache_dir: str | None = None,
                 **less_params: Any):
        super().__init__(target, gradient_type=gradient_type, proj_dim=proj_dim,
                         proj_seed=seed, **less_params)
        self.params.update(seed=int(seed), save_interval=int(save_interval),
                           reward_model_backend=reward_model_backend,
                           reward_backend_params=dict(reward_backend_params or {}),
                           mc_samples=int(mc_samples), max_new_tokens=int(max_new_tokens),
                           generation_temperature=float(generation_temperature),
                           top_p=float(top_p), top_k=int(top_k),
                           max_prompt_length=int(max_prompt_length), cache_dir=cache_dir)

    def get_params(self) -> dict[str, Any]:
        params = super().get_params()
        params.pop("cache_dir", None)  # where, not what
        params.pop("save_interval", None)
        return params  # reward_backend_params name no secret: api_key is a variable name

    def target_features(self, ckpt: str) -> Signal:
        p = self.params
        sig = PolicyGradientFeatures(
            model=p["model"], checkpoint=ckpt, proj_dim=p["proj_dim"], proj_seed=p["proj_seed"],
            projection=p["projection"], max_length=p["max_length"], template=p["template"],
            method=p["method"], device=p["device"], dtype=p["dtype"],
            reward_backend=p["reward_model_backend"], reward_params=p["reward_backend_params"],
            mc_samples=p["mc_samples"], temperature=p["generation_temperature"],
            top_p=p["top_p"], top_k=p["top_k"], max_new_tokens=p["max_new_tokens"],
            max_prompt_length=p["max_prompt_length"], seed=p["seed"])
        sig.shard_size = p["save_interval"]
        return sig

    def __call__(self, pool: Pool, store: Store | None = None, run_shards=None) -> Columns:
        if self.params["cache_dir"]:
            store = Store(self.params["cache_dir"])
        cols = super().__call__(pool, store, run_shards)
        return {"nice": cols["less"], "grad": cols["grad"]}

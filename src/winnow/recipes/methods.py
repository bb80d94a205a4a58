"""Stage kinds in Python for methods that train between their steps: Small2Large's
learning percentage, DiverseEvol's rounds and MoDS's generate-and-score.

Each runs on the candidates that reach it (so it chains after dedup or filter stages) and
keeps its training runs in a folder of the Store keyed by those candidates, its parameters,
budget and seed: an interrupted run resumes them. Its parameters are the mapping under the
kind's key, e.g. ``- small2large: {epochs: 3, n_clusters: 1000}``.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from winnow.data.pool import Pool, last_exchange
from winnow.recipes.context import RunContext, scatter
from winnow.recipes.stages import Reason, StageResult, stage_kind
from winnow.recipes.training import merged_model, train_config, train_on
from winnow.registry import get_selector, get_signal
from winnow.store import cache_key


@dataclass
class Outcome:
    """What a method chose from its pool: positions (in choice order), their scores,
    per-example columns, the steps it took and each dropped position's reason."""

    selected: np.ndarray
    scores: np.ndarray | None
    columns: dict[str, np.ndarray]
    steps: list[dict[str, Any]]
    reasons: dict[int, Reason] = field(default_factory=dict)


@dataclass
class MethodRun:
    """What a method stage works with: its store, seed, target, folder and budget."""

    ctx: RunContext
    pool: Pool
    budget: int
    folder: Path

    def train(self, run: str, indices, params: dict[str, Any], **changes: Any):
        """Train run ``run`` of this stage on ``pool[indices]`` (resumed or reused)."""
        cfg = train_config(self.folder / run, model=params.get("model", "default"),
                           template=params.get("template", "alpaca"), seed=self.ctx.seed,
                           train=params.get("train"), **changes)
        return train_on(self.pool, indices, cfg)

    def merged(self, result, run: str) -> str:
        return merged_model(result, self.folder / f"{run}-merged")

    def signal(self, name: str, **params: Any) -> dict[str, np.ndarray]:
        return get_signal(name, **params)(self.pool, self.ctx.store)


MethodFn = Callable[..., Outcome]


def method_stage(kind: str, columns: tuple[str, ...] = ()) -> Callable[[MethodFn], Any]:
    """Make ``fn(run: MethodRun, **params) -> Outcome`` a stage kind named ``kind``."""
    def wrap(fn: MethodFn):
        @stage_kind(options=("keep",), columns=columns)
        def stage(ctx: RunContext, spec, candidates, keep) -> StageResult:
            params = dict(spec[kind] or {})
            pool = ctx.pool.subset(candidates)
            budget = len(candidates) if keep is None else min(keep, len(candidates))
            key = cache_key({"pool": pool.fingerprint(), "params": params, "budget": budget,
                             "seed": ctx.seed})
            folder = ctx.store.root / "stages" / kind / key
            folder.mkdir(parents=True, exist_ok=True)
            out = fn(MethodRun(ctx, pool, budget, folder), **params)
            n = len(ctx.pool)
            return StageResult(
                candidates[np.asarray(out.selected, dtype=np.int64)], out.scores,
                trace={"steps": out.steps, "work_dir": str(folder)},
                reason=Reason("not-chosen", {"method": kind}),
                reasons={int(candidates[i]): r for i, r in out.reasons.items()},
                columns={c: scatter(n, candidates, v) for c, v in out.columns.items()})

        def check(spec: dict[str, Any]) -> None:
            accepted = set(inspect.signature(fn).parameters) - {"run"}
            unknown = sorted(set(spec[kind] or {}) - accepted)
            if unknown:
                raise ValueError(f"stage {kind} has no parameter {unknown[0]!r}; it takes "
                                 f"{', '.join(sorted(accepted))}")

        stage.check = check
        stage.__doc__ = fn.__doc__
        return stage
    return wrap


def learning_percentage(ppl: np.ndarray, mode: str = "exact") -> np.ndarray:
    """LP(1) from perplexities ``ppl`` (epochs + 1, n): P_0 before training, P_i after
    epoch i. ``exact``: (P0 − P1) / (P0 − Pn); ``approx``: (P0 − P1) / P0."""
    p0, p1, pn = ppl[0], ppl[1], ppl[-1]
    with np.errstate(divide="ignore", invalid="ignore"):
        lp = (p0 - p1) / (p0 - pn) if mode == "exact" else (p0 - p1) / p0
    return np.where(np.isfinite(lp), lp, np.nan)


def _small2large(run: MethodRun, *, model: str = "default", template: str = "alpaca",
                 max_length: int = 512, dtype: str = "auto", epochs: int = 3,
                 lp: str = "exact", n_clusters: int = 1000, embedder: str = "default",
                 embed_text: str = "small2large", cluster_seed: int = 42,
                 minibatch: bool = False, train: dict[str, Any] | None = None) -> Outcome:
    """Small2Large: fine-tune a small model on the pool for ``epochs`` epochs, scoring every
    example's response perplexity before and after each epoch; LP(1) (exact or approx);
    k-means (seed ``cluster_seed``) on MiniLM embeddings of the ``embed_text`` text; in each
    cluster keep the lowest-LP share."""
    params = {"model": model, "template": template, "train": train}
    lm = {"template": template, "max_length": max_length, "dtype": dtype}
    n = len(run.pool)
    epochs = int(epochs)
    cfg = train_config(run.folder / "small", train=train)
    per_epoch = -(-n // (cfg.per_device_train_batch_size * cfg.gradient_accumulation_steps))
    result = run.train("small", np.arange(n), params, num_train_epochs=float(epochs),
                       save_steps=per_epoch)
    models = [model]
    for k, ckpt in enumerate(result.checkpoints[:epochs], start=1):
        folder = run.folder / f"epoch{k}-merged"
        if not (folder / "config.json").is_file():
            from winnow.train.export import export_merged

            export_merged(ckpt, folder, base=model)
        models.append(str(folder))
    ppl = np.stack([np.asarray(run.signal("lm_scores", model=m, **lm)["ppl"], dtype=np.float64)
                    for m in models])
    lp_values = learning_percentage(ppl, lp)
    X = np.asarray(run.signal("embedding", model=embedder, text=embed_text)["embedding"])
    sel = get_selector("kmeans", n_clusters=int(n_clusters), quota="proportional",
                       rule="bottom", redistribute=True, minibatch=bool(minibatch),
                       random_state=int(cluster_seed)).select(
        run.budget, X=X, scores=np.nan_to_num(lp_values, nan=np.inf))
    columns = {f"ppl_{k}": ppl[k] for k in range(len(ppl))}
    columns.update(lp=lp_values, lp_approx=learning_percentage(ppl, "approx"),
                   lp_exact=learning_percentage(ppl, "exact"))
    return Outcome(sel.indices, lp_values[sel.indices], columns,
                   [{"step": f"train small model {epochs} epochs",
                     "steps": result.global_step},
                    {"step": "perplexity per epoch", "models": len(models)},
                    {"step": f"kmeans lowest LP(1) {lp}", "out": len(sel.indices),
                     "clusters": sel.trace.get("n_clusters")}])


small2large_stage = method_stage("small2large", ("lp", "lp_approx", "lp_exact"))(_small2large)


def _diverse_evol(run: MethodRun, *, model: str = "default", template: str = "alpaca",
                  max_length: int = 512, init_size: int = 100, step_size: int = 100,
                  text: str = "instruction_response",
                  train: dict[str, Any] | None = None) -> Outcome:
    """DiverseEvol: start from ``init_size`` random examples; each round train on the
    current selection (from the base model), embed the pool with that model's mean last
    hidden state, and add ``step_size`` examples by k-center greedy from the selection."""
    params = {"model": model, "template": template, "train": train}
    n = len(run.pool)
    seed = run.ctx.seed
    rng = np.random.default_rng(seed)
    chosen = list(rng.choice(n, size=min(int(init_size), run.budget, n), replace=False))
    steps = [{"step": "random seed set", "out": len(chosen)}]
    round_ = 0
    while len(chosen) < run.budget:
        round_ += 1
        result = run.train(f"round{round_}", chosen, params)
        merged = run.merged(result, f"round{round_}")
        X = np.asarray(run.signal("lm_embedding", model=merged, pooling="mean", text=text,
                                  max_length=max_length)["embedding"])
        add = min(int(step_size), run.budget - len(chosen))
        new = get_selector("kcenter", random_state=seed).select(
            add, X=X, initial=np.asarray(chosen)).indices
        chosen.extend(int(i) for i in new)
        steps.append({"step": f"round {round_}", "train_steps": result.global_step,
                      "added": len(new), "total": len(chosen)})
        if len(new) == 0:
            break
    order = np.asarray(chosen, dtype=np.int64)
    first = min(int(init_size), len(order))
    rounds = np.full(n, np.nan)
    rounds[order] = [0] * first + [1 + k // int(step_size) for k in range(len(order) - first)]
    return Outcome(order, rounds[order], {"round_added": rounds}, steps)


diverse_evol_stage = method_stage("diverse-evol", ("round_added",))(_diverse_evol)


def _similarity(embedder: str, a: list[str], b: list[str]) -> np.ndarray:
    """Cosine similarity of MiniLM embeddings of paired texts."""
    from winnow.models.embedder import load_embedder

    emb = load_embedder(embedder)
    return (emb.encode(a) * emb.encode(b)).sum(axis=1)


def _mods(run: MethodRun, *, model: str = "default", template: str = "alpaca",
          reward_model: str | None = None, score_column: str | None = None,
          quality_threshold: float = 0.0, necessity_threshold: float | None = None,
          seed_size: int = 1000, num_beams: int = 4, max_new_tokens: int = 1024,
          embedder: str = "default", train: dict[str, Any] | None = None) -> Outcome:
    """MoDS: quality filter (reward model or a score column, ≥ ``quality_threshold``) →
    k-center seed set → train a seed model → generate answers to the other high-quality
    instructions (beam search: ``num_beams``, ``max_new_tokens``) → keep those whose
    answers score below ``necessity_threshold`` ("necessary") → k-center among them to fill
    the budget → seed ∪ necessary."""
    from winnow.models.generate import generate_answers
    from winnow.models.reward import reward_scores

    params = {"model": model, "template": template, "train": train}
    pool, seed_value = run.pool, run.ctx.seed
    n = len(pool)
    pairs = [last_exchange(c) for c in pool.conversations]
    if reward_model:
        quality = reward_scores(reward_model, [q for q, _ in pairs], [a for _, a in pairs])
    elif score_column:
        quality = np.asarray(pool.extra[score_column], dtype=np.float64)
    else:
        raise ValueError("mods needs reward_model (a sequence-classification model) or "
                         "score_column (a per-example score field of the pool)")
    good = np.flatnonzero(np.nan_to_num(quality, nan=-np.inf) >= float(quality_threshold))
    reasons = {int(i): Reason("low-quality", {"quality": float(quality[i]),
                                              "threshold": float(quality_threshold)},
                              f"quality {quality[i]:.3g} < {quality_threshold}")
               for i in np.setdiff1d(np.arange(n), good)}
    X = np.asarray(run.signal("embedding", model=embedder, text="instruction")["embedding"])
    size = min(int(seed_size), run.budget, len(good))
    seed = good[get_selector("kcenter", random_state=seed_value).select(
        size, X=X[good]).indices]
    result = run.train("seed", seed, params)
    rest = np.setdiff1d(good, seed)
    prompts = [[t for t in pool.conversations[i] if t["role"] != "assistant"] for i in rest]
    answers = generate_answers(result.model, result.tokenizer, result.template, prompts,
                               int(max_new_tokens), num_beams=int(num_beams))
    if reward_model:
        necessity = reward_scores(reward_model, [pairs[i][0] for i in rest], answers)
        scorer = "reward"
    else:  # no reward model: how close the seed model's answer is to the reference
        necessity = _similarity(embedder, answers, [pairs[i][1] for i in rest])
        scorer = "similarity to reference"
    threshold = necessity_threshold
    if threshold is None:
        threshold = 0.0 if reward_model else 0.5
    necessary = rest[necessity < float(threshold)]
    room = run.budget - len(seed)
    if len(necessary) > room:
        pick = get_selector("kcenter", random_state=seed_value).select(
            room, X=X[necessary]).indices
        necessary = necessary[pick]
    for i in rest:
        reasons.setdefault(int(i), Reason("not-necessary", {"scorer": scorer},
                                          "the seed model already answers it well"))
    chosen = np.concatenate([seed, necessary]).astype(np.int64)
    necessity_col = np.full(n, np.nan)
    necessity_col[rest] = necessity
    return Outcome(chosen, None, {"quality": quality, "necessity": necessity_col},
                   [{"step": "quality filter", "in": n, "out": len(good)},
                    {"step": "k-center seed", "out": len(seed)},
                    {"step": "train seed model", "steps": result.global_step},
                    {"step": f"generate and score ({scorer})", "in": len(rest),
                     "out": len(necessary)}], reasons)


mods_stage = method_stage("mods", ("quality", "necessity"))(_mods)

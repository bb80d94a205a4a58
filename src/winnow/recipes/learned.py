"""Stage kinds of the learned selectors and their files: InstructMining's linear rule and
InstructionGPT-4's regressor.

``- linear-rule: RULE`` ranks the candidates by a rule's predicted log-loss, lowest first.
RULE is ``paper`` (the InstructMining paper's published rule) or a rule file (YAML or JSON,
as ``winnow fit instructmining`` writes it)::

    intercept: 1.0694
    coefficients: {reward: -0.1498, output_tokens: 8.257e-05, knn6: -0.935}
    target: log_loss

Each coefficient names a column (a signal's, the pool's or an earlier stage's); the stage adds
``predicted_log_loss``.

``- instructiongpt4: {regressor: FILE, n_clusters: 30}`` scores the candidates with a
regressor fitted by ``winnow fit instructiongpt4`` (a safetensors file: the network's
weights, the PCA and standardisation it was fitted with, and its feature columns in the
metadata; nothing is unpickled), clusters their embeddings with k-means and keeps the lowest
predicted loss of each cluster, the budget split equally (``predicted_loss``, ``cluster``
columns).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from winnow.recipes.context import RunContext, scatter
from winnow.recipes.stages import Reason, StageResult, stage_kind
from winnow.selectors.learned import (
    PAPER_RULE,
    LinearRule,
    StratifiedLowest,
    attention_regressor,
    pca_apply,
    predict_linear,
    predict_regressor,
    standardize_apply,
)

RULE_PRESETS = {"paper": PAPER_RULE}
REGRESSOR_FORMAT = "winnow-instructiongpt4-regressor/1"


def load_rule(ref: Any) -> dict[str, Any]:
    """The rule ``ref`` names: a preset (``paper``) or a YAML/JSON rule file; ValueError
    naming the file and the key when it is not a rule."""
    if isinstance(ref, dict):
        doc, where = ref, "the rule mapping"
    elif str(ref) in RULE_PRESETS:
        return RULE_PRESETS[str(ref)]
    else:
        path = Path(str(ref)).expanduser()
        if not path.is_file():
            raise ValueError(f"rule {ref!r}: neither a preset ({', '.join(RULE_PRESETS)}) nor "
                             "a file; write one with `winnow fit instructmining`")
        where = str(path)
        try:
            doc = yaml.safe_load(path.read_text(encoding="utf-8"))
        except yaml.YAMLError as e:
            raise ValueError(f"rule {where}: not valid YAML or JSON ({e})") from None
    if not isinstance(doc, dict):
        raise ValueError(f"rule {where}: a mapping with intercept and coefficients is required")
    coefs = doc.get("coefficients")
    if not isinstance(coefs, dict) or not coefs:
        raise ValueError(f"rule {where}: coefficients: a mapping of column name to number")
    try:
        rule = {"intercept": float(doc.get("intercept", 0.0)),
                "coefficients": {str(k): float(v) for k, v in coefs.items()}}
    except (TypeError, ValueError):
        raise ValueError(f"rule {where}: intercept and every coefficient must be numbers") \
            from None
    return {**doc, **rule}


def _arg(spec: dict[str, Any], name: str) -> Any:
    """The value under the stage's own key (spelt with hyphens or underscores)."""
    for key in (name, name.replace("-", "_")):
        if key in spec:
            return spec[key]
    raise KeyError(f"stage {name}: missing its key")


@stage_kind(options=("keep",), columns=("predicted_log_loss",))
def linear_rule_stage(ctx: RunContext, spec, candidates, keep):
    """Rank the candidates by a linear rule's predicted log-loss (lowest first) and keep
    ``keep`` (the budget when last)."""
    rule = load_rule(_arg(spec, "linear-rule"))
    names = list(rule["coefficients"])
    X = np.column_stack([np.asarray(ctx.column(c), dtype=np.float64)[candidates]
                         for c in names])
    budget = len(candidates) if keep is None else min(keep, len(candidates))
    coefs = [rule["coefficients"][c] for c in names]
    sel = LinearRule(coefficients=coefs, intercept=rule["intercept"]).select(budget, X=X)
    pred = predict_linear(X, rule["intercept"], np.asarray(coefs))
    ctx.effective["selector:linear-rule"] = {"intercept": rule["intercept"],
                                             "coefficients": rule["coefficients"]}
    cutoff = sel.trace.get("cutoff")
    return StageResult(candidates[sel.indices], sel.scores,
                       trace={"indicators": names, **sel.trace},
                       reason=Reason("ranked-out", {"by": "predicted_log_loss", "order": "asc",
                                                    "cutoff": cutoff}),
                       columns={"predicted_log_loss": scatter(len(ctx.pool), candidates, pred)})


linear_rule_stage.check = lambda spec: load_rule(_arg(spec, "linear-rule"))
linear_rule_stage.reads = lambda spec: tuple(load_rule(_arg(spec, "linear-rule"))[
    "coefficients"])


# -- InstructionGPT-4 -------------------------------------------------------------------


def save_regressor(path: str | Path, model: Any, *, features: list[str], embedding: str,
                   pca_mean: np.ndarray, pca_components: np.ndarray, feature_mean: np.ndarray,
                   feature_std: np.ndarray, label_mean: float, label_std: float,
                   config: dict[str, Any], fit: dict[str, Any]) -> Path:
    """Write a fitted InstructionGPT-4 regressor as safetensors: the network's tensors plus
    ``pca_mean``, ``pca_components``, ``feature_mean`` and ``feature_std``; the feature
    columns, embedding column, label scale, network config and fit record in the metadata."""
    import torch
    from safetensors.torch import save_file

    tensors = {f"net.{k}": v.detach().contiguous() for k, v in model.state_dict().items()}
    for name, arr in (("pca_mean", pca_mean), ("pca_components", pca_components),
                      ("feature_mean", feature_mean), ("feature_std", feature_std)):
        tensors[name] = torch.as_tensor(np.asarray(arr, dtype=np.float64))
    meta = {"format": REGRESSOR_FORMAT, "features": json.dumps(features),
            "embedding": embedding, "label_mean": repr(float(label_mean)),
            "label_std": repr(float(label_std)), "config": json.dumps(config),
            "fit": json.dumps(fit, default=str)}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(path), metadata=meta)
    return path


def load_regressor(path: str | Path) -> dict[str, Any]:
    """A regressor file written by :func:`save_regressor`: ``model`` (torch, eval mode),
    ``features``, ``embedding``, ``pca_mean``, ``pca_components``, ``feature_mean``,
    ``feature_std``, ``label_mean``, ``label_std``, ``config``, ``fit``."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    p = Path(str(path)).expanduser()
    if not p.is_file():
        raise ValueError(f"regressor {path}: no such file; write one with "
                         "`winnow fit instructiongpt4`")
    try:
        with safe_open(str(p), framework="pt") as f:
            meta = f.metadata() or {}
        tensors = load_file(str(p))
    except Exception as e:  # noqa: BLE001 - any unreadable file gets the same message
        raise ValueError(f"regressor {p}: not a safetensors file ({e})") from None
    if meta.get("format") != REGRESSOR_FORMAT:
        raise ValueError(f"regressor {p}: metadata format is {meta.get('format')!r}, expected "
                         f"{REGRESSOR_FORMAT!r}")
    features = json.loads(meta["features"])
    config = json.loads(meta["config"])
    model = attention_regressor(len(features), **config)
    model.load_state_dict({k[4:]: v for k, v in tensors.items() if k.startswith("net.")})
    model.eval()
    out = {k: tensors[k].double().numpy() for k in ("pca_mean", "pca_components",
                                                    "feature_mean", "feature_std")}
    return {**out, "model": model, "features": features, "embedding": meta["embedding"],
            "label_mean": float(meta["label_mean"]), "label_std": float(meta["label_std"]),
            "config": config, "fit": json.loads(meta.get("fit", "{}")), "path": str(p)}


def pca_columns(features: list[str]) -> list[str]:
    """The names of the PCA coordinates among ``features`` (``pca1``, ``pca2``, ...)."""
    return [f for f in features if f.startswith("pca") and f[3:].isdigit()]


def regressor_features(column, rows: np.ndarray, reg: dict[str, Any]) -> np.ndarray:
    """(len(rows), k) raw features of ``rows`` in the regressor's order: its scalar columns
    read with ``column(name)``, then the PCA coordinates of its embedding column."""
    scalar = [f for f in reg["features"] if f not in pca_columns(reg["features"])]
    parts = [np.asarray(column(c), dtype=np.float64)[rows][:, None] for c in scalar]
    E = np.asarray(column(reg["embedding"]), dtype=np.float64)[rows]
    parts.append(pca_apply(E, reg["pca_mean"], reg["pca_components"]))
    return np.concatenate(parts, axis=1)


def predicted_loss(reg: dict[str, Any], F: np.ndarray) -> np.ndarray:
    """The regressor's predicted target loss for raw features ``F`` (label units)."""
    Z = standardize_apply(F, reg["feature_mean"], reg["feature_std"])
    return predict_regressor(reg["model"], Z) * reg["label_std"] + reg["label_mean"]


@stage_kind(options=("keep",), columns=("predicted_loss", "cluster"))
def instructiongpt4_stage(ctx: RunContext, spec, candidates, keep):
    """Predict each candidate's loss with a fitted regressor, cluster the candidates'
    embeddings with k-means (``n_clusters``, the run's seed) and keep the lowest predicted
    loss of every cluster, the budget split equally."""
    from winnow.selectors.kmeans import kmeans_labels

    cfg = dict(_arg(spec, "instructiongpt4") or {})
    if not cfg.get("regressor"):
        raise ValueError("instructiongpt4 needs a fitted regressor: run `winnow fit "
                         "instructiongpt4 --data POOL --target TARGET --out reg.safetensors`, "
                         "then select with --set regressor=reg.safetensors")
    reg = load_regressor(cfg["regressor"])
    F = regressor_features(ctx.column, candidates, reg)
    pred = predicted_loss(reg, F)
    E = np.asarray(ctx.column(reg["embedding"]), dtype=np.float32)[candidates]
    labels = kmeans_labels(E, int(cfg.get("n_clusters", 30)), random_state=ctx.seed)
    budget = len(candidates) if keep is None else min(keep, len(candidates))
    sel = StratifiedLowest().select(budget, scores=pred, labels=labels)
    n = len(ctx.pool)
    return StageResult(candidates[sel.indices], sel.scores,
                       trace={"regressor": reg["path"], "features": reg["features"],
                              **sel.trace},
                       reason=Reason("not-chosen", {"selector": "stratified-lowest"}),
                       columns={"predicted_loss": scatter(n, candidates, pred),
                                "cluster": scatter(n, candidates, labels.astype(np.float64))})


def _check_ig4(spec: dict[str, Any]) -> None:
    cfg = _arg(spec, "instructiongpt4") or {}
    if not isinstance(cfg, dict):
        raise ValueError("instructiongpt4 takes a mapping: {regressor: FILE, n_clusters: N}")
    unknown = sorted(set(cfg) - {"regressor", "n_clusters"})
    if unknown:
        raise ValueError(f"stage instructiongpt4 has no parameter {unknown[0]!r}; it takes "
                         "n_clusters, regressor")
    if cfg.get("regressor"):
        load_regressor(cfg["regressor"])


def _reads_ig4(spec: dict[str, Any]) -> tuple[str, ...]:
    cfg = _arg(spec, "instructiongpt4") or {}
    if not cfg.get("regressor"):
        return ()
    reg = load_regressor(cfg["regressor"])
    return (*[f for f in reg["features"] if f not in pca_columns(reg["features"])],
            reg["embedding"])


instructiongpt4_stage.check = _check_ig4
instructiongpt4_stage.reads = _reads_ig4

"""Learned data selectors: the arithmetic of InstructMining's linear rule and of
InstructionGPT-4's self-attention regressor, on arrays only.

Both methods learn how a subset's indicators predict what training on it does to a target
loss: sample subsets of the pool, train on each, measure the loss (the evaluate layer
does that part), then fit a model from subset indicators to the measured loss and rank
examples with it. Everything here is pure: subsets from a seed, means over subsets, the
least-squares fit, the regressor and the rankings.

InstructMining (Cao et al., 2023) fits ``log L = b0 + sum_k b_k * mean_k(indicator)`` by
least squares over the sampled subsets and ranks examples by the rule applied to their own
indicators (lowest predicted loss first). InstructionGPT-4 (Wei et al., 2023) trains a small
self-attention network on subset-level labels and keeps the best-predicted examples of each
cluster.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from winnow.selectors.base import Seed, Selection, Selector, check_random_state, int_seed

# The rule published by the InstructMining paper (Cao et al., "Instruction Mining: When Data
# Mining Meets Large Language Model Finetuning", the estimate on its OpenOrca/Dolly subsets):
#     log L_loss = 1.0694 - 0.1498 Rew + 8.257e-5 Len - 0.9350 Knn6
# Rew is a reward model's score, Len the response length, Knn6 the distance to the 6th
# nearest neighbour in a sentence-embedding space. Keys are the indicator columns of the
# ``instructmining`` recipe that stand for them.
PAPER_RULE: dict[str, Any] = {
    "intercept": 1.0694,
    "coefficients": {"reward": -0.1498, "output_tokens": 8.257e-5, "knn6": -0.9350},
    "target": "log_loss",
    "source": "Cao et al., InstructMining (2023): log L = 1.0694 - 0.1498 Rew + 8.257e-5 Len "
              "- 0.9350 Knn6",
}


def sample_subsets(n: int, count: int, size: int, random_state: Seed = None) -> list[np.ndarray]:
    """``count`` subsets of ``range(n)``, each ``size`` distinct indices drawn uniformly
    without replacement (subsets drawn independently of each other), sorted, from one
    generator seeded by ``random_state``."""
    if n < 1 or count < 1 or size < 1:
        raise ValueError(f"need a non-empty pool, count >= 1 and size >= 1 "
                         f"(n={n}, count={count}, size={size})")
    if size > n:
        raise ValueError(f"subset size {size} is larger than the pool ({n} examples)")
    rng = check_random_state(random_state)
    return [np.sort(rng.choice(n, size=size, replace=False)) for _ in range(count)]


def subset_means(X: np.ndarray, subsets: list[np.ndarray]) -> np.ndarray:
    """(s, k) the mean of each indicator column of ``X`` (n, k) over each subset, NaN left
    out (an all-NaN column of a subset gives NaN)."""
    X = np.asarray(X, dtype=np.float64)
    out = np.empty((len(subsets), X.shape[1]))
    for i, idx in enumerate(subsets):
        rows = X[np.asarray(idx, dtype=np.int64)]
        with np.errstate(invalid="ignore"):
            count = np.sum(~np.isnan(rows), axis=0)
            out[i] = np.where(count > 0, np.nansum(rows, axis=0) / np.maximum(count, 1), np.nan)
    return out


@dataclass
class LinearFit:
    """A least-squares fit ``y ≈ intercept + M @ coefficients``.

    coefficients : (k,). r2 : coefficient of determination on the fitted rows (NaN when
    ``y`` is constant). rank : rank of the design matrix [1, M]; below k + 1 the system is
    underdetermined and the minimum-norm solution is returned. residuals : (s,) y - fit.
    """

    intercept: float
    coefficients: np.ndarray
    r2: float
    rank: int
    residuals: np.ndarray


def fit_linear_rule(M: np.ndarray, y: np.ndarray) -> LinearFit:
    """Least squares of ``y`` (s,) on the columns of ``M`` (s, k) plus an intercept
    (``numpy.linalg.lstsq``). Rows with a NaN anywhere are left out."""
    M = np.asarray(M, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64).reshape(-1)
    if M.ndim != 2 or len(M) != len(y):
        raise ValueError(f"M must be (s, k) and y (s,), got {M.shape} and {y.shape}")
    ok = ~np.isnan(M).any(axis=1) & ~np.isnan(y)
    if ok.sum() < 2:
        raise ValueError(f"need at least 2 subsets with every indicator and a loss, "
                         f"got {int(ok.sum())}")
    A = np.column_stack([np.ones(int(ok.sum())), M[ok]])
    coef, _, rank, _ = np.linalg.lstsq(A, y[ok], rcond=None)
    fitted = np.full(len(y), np.nan)
    fitted[ok] = A @ coef
    resid = y - fitted
    ss_tot = float(np.sum((y[ok] - y[ok].mean()) ** 2))
    r2 = 1.0 - float(np.sum(resid[ok] ** 2)) / ss_tot if ss_tot > 0 else float("nan")
    return LinearFit(float(coef[0]), coef[1:], r2, int(rank), resid)


def predict_linear(X: np.ndarray, intercept: float, coefficients: np.ndarray) -> np.ndarray:
    """(n,) ``intercept + X @ coefficients`` for ``X`` (n, k); NaN where a row has NaN."""
    X = np.asarray(X, dtype=np.float64)
    return float(intercept) + X @ np.asarray(coefficients, dtype=np.float64)


class LinearRule(Selector):
    """InstructMining's ranking: predicted log-loss ``intercept + X @ coefficients`` of
    each example's indicators ``X`` (n, k, columns in the order of ``coefficients``); the
    ``budget`` lowest first (NaN predictions last; ties to the lower index). Scores are the
    predictions."""

    name = "linear-rule"
    inputs = required_inputs = ("X",)

    def __init__(self, coefficients: list[float] | tuple[float, ...] = (),
                 intercept: float = 0.0):
        self.coefficients = coefficients
        self.intercept = intercept

    def select(self, budget: int, *, X: np.ndarray) -> Selection:
        X = np.asarray(X, dtype=np.float64).reshape(len(X), -1)
        coef = np.asarray(self.coefficients, dtype=np.float64)
        if X.shape[1] != len(coef):
            raise ValueError(f"X has {X.shape[1]} indicator columns, the rule "
                             f"{len(coef)} coefficients")
        pred = predict_linear(X, self.intercept, coef)
        key = np.where(np.isnan(pred), np.inf, pred)
        idx = np.argsort(key, kind="stable")[:budget]
        return Selection(idx, pred[idx], {"predicted_min": _finite(pred, np.nanmin),
                                          "predicted_max": _finite(pred, np.nanmax),
                                          "cutoff": float(pred[idx[-1]]) if len(idx) else None,
                                          "missing": int(np.isnan(pred).sum())})


def _finite(values: np.ndarray, fn) -> float | None:
    return float(fn(values)) if np.isfinite(values).any() else None


# -- InstructionGPT-4 -------------------------------------------------------------------


def pca_fit(X: np.ndarray, dims: int) -> tuple[np.ndarray, np.ndarray]:
    """(mean (d,), components (dims, d)): the top ``dims`` principal directions of ``X``
    (n, d) by SVD of the centred rows, each oriented so that its largest-magnitude entry is
    positive (a deterministic sign). Fewer rows or columns than ``dims`` give fewer
    components."""
    X = np.asarray(X, dtype=np.float64)
    mean = X.mean(axis=0)
    _, _, vt = np.linalg.svd(X - mean, full_matrices=False)
    comps = vt[:min(int(dims), len(vt))]
    signs = np.sign(comps[np.arange(len(comps)), np.argmax(np.abs(comps), axis=1)])
    return mean, comps * np.where(signs == 0, 1.0, signs)[:, None]


def pca_apply(X: np.ndarray, mean: np.ndarray, components: np.ndarray) -> np.ndarray:
    """(n, dims) coordinates of ``X`` (n, d) on ``components`` (dims, d) around ``mean``."""
    return (np.asarray(X, dtype=np.float64) - mean) @ np.asarray(components).T


def standardize_fit(F: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(mean, std) per column of ``F`` (n, k), NaN left out; a constant column gets std 1."""
    F = np.asarray(F, dtype=np.float64)
    mean = np.nan_to_num(np.nanmean(F, axis=0))
    std = np.nan_to_num(np.nanstd(F, axis=0))
    return mean, np.where(std > 0, std, 1.0)


def standardize_apply(F: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    """``(F - mean) / std`` with NaN set to 0 (the column's mean)."""
    Z = (np.asarray(F, dtype=np.float64) - mean) / std
    return np.nan_to_num(Z, nan=0.0)


def attention_regressor(n_features: int, d_model: int = 16, heads: int = 4, layers: int = 2,
                        ff: int = 32):
    """A small self-attention regressor (torch ``nn.Module``): each of an example's
    ``n_features`` indicators is one token (its value times a learnt vector plus a learnt
    per-indicator embedding), ``layers`` transformer encoder layers with ``heads`` heads
    (no dropout) mix the tokens, the mean token goes through a linear head to one number.
    Input (b, n_features) → output (b,)."""
    import torch
    from torch import nn

    class _Regressor(nn.Module):
        def __init__(self):
            super().__init__()
            self.value = nn.Parameter(torch.randn(n_features, d_model) * 0.1)
            self.position = nn.Parameter(torch.randn(n_features, d_model) * 0.1)
            layer = nn.TransformerEncoderLayer(d_model, heads, dim_feedforward=ff,
                                               dropout=0.0, batch_first=True)
            self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
            self.head = nn.Linear(d_model, 1)

        def forward(self, x):
            tokens = x.unsqueeze(-1) * self.value + self.position
            return self.head(self.encoder(tokens).mean(dim=1)).squeeze(-1)

    return _Regressor()


def train_attention_regressor(F: np.ndarray, y: np.ndarray, *, epochs: int = 20,
                              lr: float = 0.01, batch_size: int = 32, d_model: int = 16,
                              heads: int = 4, layers: int = 2,
                              random_state: Seed = 0) -> tuple[Any, list[float]]:
    """Train :func:`attention_regressor` on standardised features ``F`` (n, k) and labels
    ``y`` (n,) with MSE and Adam (``lr``) for ``epochs`` passes over shuffled mini-batches;
    torch and the shuffles are seeded by ``random_state``. Returns (model in eval mode, the
    mean training loss of each epoch)."""
    import torch

    seed = int_seed(random_state)
    torch.manual_seed(seed)
    rng = check_random_state(seed)
    F_t = torch.as_tensor(np.asarray(F, dtype=np.float32))
    y_t = torch.as_tensor(np.asarray(y, dtype=np.float32))
    model = attention_regressor(F_t.shape[1], d_model=d_model, heads=heads, layers=layers)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    history = []
    model.train()
    for _ in range(int(epochs)):
        order = torch.as_tensor(rng.permutation(len(F_t)))
        total = 0.0
        for start in range(0, len(order), batch_size):
            rows = order[start:start + batch_size]
            opt.zero_grad()
            loss = torch.nn.functional.mse_loss(model(F_t[rows]), y_t[rows])
            loss.backward()
            opt.step()
            total += loss.item() * len(rows)
        history.append(total / max(len(order), 1))
    model.eval()
    return model, history


def predict_regressor(model: Any, F: np.ndarray, batch_size: int = 1024) -> np.ndarray:
    """(n,) the regressor's outputs for standardised features ``F`` (n, k)."""
    import torch

    F_t = torch.as_tensor(np.asarray(F, dtype=np.float32))
    out = []
    with torch.inference_mode():
        for start in range(0, len(F_t), batch_size):
            out.append(model(F_t[start:start + batch_size]).double().numpy())
    return np.concatenate(out) if out else np.zeros(0)


def stratified_lowest(scores: np.ndarray, labels: np.ndarray, budget: int) -> np.ndarray:
    """Cluster-stratified choice: every cluster (``labels``) gets an equal share of the
    ``budget`` (largest remainders to the larger clusters' leftovers), filled with its
    lowest ``scores`` (ties to the lower index); what a small cluster cannot fill goes to
    the others in turns. Returns pool positions ordered by score."""
    scores = np.asarray(scores, dtype=np.float64)
    labels = np.asarray(labels)
    budget = min(int(budget), len(scores))
    key = np.where(np.isnan(scores), np.inf, scores)
    members = [np.flatnonzero(labels == c) for c in np.unique(labels)]
    members = [m[np.argsort(key[m], kind="stable")] for m in members]
    taken = np.zeros(len(members), dtype=np.int64)
    left = budget
    while left > 0:
        open_ = [c for c, m in enumerate(members) if taken[c] < len(m)]
        if not open_:
            break
        share = max(left // len(open_), 1)
        for c in sorted(open_, key=lambda c: -(len(members[c]) - taken[c])):
            add = min(share, len(members[c]) - taken[c], left)
            taken[c] += add
            left -= add
            if left == 0:
                break
    chosen = np.concatenate([m[:t] for m, t in zip(members, taken)]) if members else []
    chosen = np.asarray(chosen, dtype=np.int64)
    return chosen[np.argsort(key[chosen], kind="stable")]


class StratifiedLowest(Selector):
    """Cluster-stratified top-k (InstructionGPT-4's final choice): ``labels`` (n,) cluster
    of each item, ``scores`` (n,) lower is better (a predicted loss); the budget split
    equally over clusters, each filled with its lowest scores (see
    :func:`stratified_lowest`)."""

    name = "stratified-lowest"
    inputs = required_inputs = ("scores", "labels")

    def select(self, budget: int, *, scores: np.ndarray, labels: np.ndarray) -> Selection:
        idx = stratified_lowest(scores, labels, budget)
        s = np.asarray(scores, dtype=np.float64)
        return Selection(idx, s[idx], {"clusters": int(len(np.unique(labels))),
                                       "clusters_used": int(len(np.unique(
                                           np.asarray(labels)[idx])))})

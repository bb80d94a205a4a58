"""MIG: maximise the information gain in a label space (Chen et al., ACL 2025 Findings;
official code yichengchen24/MIG, ``mig/label.py`` and ``mig/sampler.py``).

Each item is a vector over L labels: its score on each of its labels (the official CLI;
``spread=True`` gives each label score/|labels|), times the propagation matrix P of the
label graph: W = cosine of the label embeddings with entries below ``threshold`` set to 0
(diagonal 1), off-diagonal entries scaled by ``prop_weight``, then each column divided by
its sum. The information of a set S is Σ_l φ(x_l) with x = Σ_{i∈S} v_i and φ concave;
each greedy step adds the item of largest first-order gain v_i · φ′(x), as the official
sampler does, with φ′(x) = b·(x + a)^(b−1) ("pow", a = 1e-6, b = 0.8) or α·e^(−αx) ("exp").

Item vectors are kept sparse (an item touches only its labels and their neighbours), so a
step costs one sparse product; the official code keeps them dense in float32, winnow in
float64. Ties go to the lower index, as ``torch.argmax``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp

from winnow.selectors.base import Selection, Selector
from winnow.selectors.turns import reduce_turn_products

PHIS = ("pow", "exp")


def turn_mean(n: int, *parts) -> np.ndarray:
    """(n,) the mean over turns of the product of the given per-item scores (MIG's
    quality × complexity), each part (n,), (n, T) or n per-turn sequences, None parts
    left out, a one-value part applied to every turn; ones when none is given. An item
    whose parts disagree on the number of turns gets NaN."""
    return reduce_turn_products(n, parts, np.mean)


def label_matrix(labels: Sequence, scores: np.ndarray, vocab: Sequence[str] | None = None,
                 spread: bool = False) -> tuple[sp.csr_matrix, list[str]]:
    """(n, L) CSR matrix of each item's ``scores`` (n,) on each of its ``labels`` (per item
    a list of names), ÷ its number of labels when ``spread``; and the L label names
    (``vocab``, or the sorted names seen; names outside ``vocab`` are left out)."""
    vocab = sorted({t for item in labels for t in item}) if vocab is None else list(vocab)
    index = {t: j for j, t in enumerate(vocab)}
    rows, cols, vals = [], [], []
    for i, item in enumerate(labels):
        item = list(dict.fromkeys(item))
        value = float(scores[i]) / len(item) if spread and item else float(scores[i])
        for t in item:
            if t in index:
                rows.append(i)
                cols.append(index[t])
                vals.append(value)
    X = sp.csr_matrix((vals, (rows, cols)), shape=(len(labels), len(vocab)), dtype=np.float64)
    return X, vocab


def label_graph(E: np.ndarray, threshold: float = 0.9, block: int = 2048) -> sp.csr_matrix:
    """(L, L) sparse cosine similarities of the rows of ``E`` (L, d), entries below
    ``threshold`` set to 0, diagonal 1."""
    E = np.asarray(E, dtype=np.float64)
    E = E / np.maximum(np.linalg.norm(E, axis=1, keepdims=True), 1e-12)
    L = len(E)
    parts = []
    for a in range(0, L, block):
        S = E[a:a + block] @ E.T
        S[S < threshold] = 0.0
        S[np.arange(len(S)), np.arange(a, a + len(S))] = 1.0
        parts.append(sp.csr_matrix(S))
    return sp.vstack(parts, format="csr") if parts else sp.csr_matrix((0, 0))


def propagation_matrix(W, prop_weight: float = 1.0) -> sp.csr_matrix:
    """(L, L) propagation matrix of a label graph ``W``: diagonal kept, off-diagonal
    entries × ``prop_weight``, each column divided by its sum."""
    W = sp.csr_matrix(W, dtype=np.float64)
    diag = sp.diags(W.diagonal())
    P = diag + (W - diag) * float(prop_weight)
    sums = np.asarray(P.sum(axis=0)).ravel()
    if (sums <= 0).any():
        bad = np.flatnonzero(sums <= 0)
        raise ValueError(f"label graph columns {bad[:5].tolist()} sum to {sums[bad[0]]}; "
                         "every label needs a positive weight on itself")
    return sp.csr_matrix(P @ sp.diags(1.0 / sums))


class MIG(Selector):
    """Greedy information-gain sampling over item vectors in a label space.

    Parameters
    ----------
    phi : "pow" (φ′(x) = phi_b·(x + phi_a)^(phi_b − 1)) or "exp" (φ′(x) =
        phi_alpha·e^(−phi_alpha·x)).
    phi_a, phi_b, phi_alpha : the constants of φ′ (official defaults 1e-6, 0.8, 1.0).

    ``select(budget, X=(n, L) dense or sparse label scores (non-negative),
    propagation=(L, L) optional, the identity when absent)``: items are v_i = X_i · P;
    scores are each pick's gain v_i · φ′(x) when picked; the trace gives the number of
    labels and the information Σ_l φ(x_l) − φ(0) of the selection (φ(x) = (x + a)^b or
    1 − e^(−αx)).
    """

    name = "mig"
    inputs = ("X", "propagation")
    required_inputs = ("X",)

    def __init__(self, phi: str = "pow", phi_a: float = 1e-6, phi_b: float = 0.8,
                 phi_alpha: float = 1.0):
        if phi not in PHIS:
            raise ValueError(f"phi must be one of {PHIS}, not {phi!r}")
        self.phi, self.phi_a, self.phi_b, self.phi_alpha = phi, phi_a, phi_b, phi_alpha

    def d_phi(self, x: np.ndarray) -> np.ndarray:
        """φ′ at each label's information ``x`` (L,)."""
        if self.phi == "pow":
            return self.phi_b * (x + self.phi_a) ** (self.phi_b - 1)
        return self.phi_alpha * np.exp(-self.phi_alpha * x)

    def information(self, x: np.ndarray) -> float:
        """Σ_l φ(x_l) − φ(0)."""
        if self.phi == "pow":
            return float(((x + self.phi_a) ** self.phi_b - self.phi_a ** self.phi_b).sum())
        return float((1 - np.exp(-self.phi_alpha * x)).sum())

    def select(self, budget: int, *, X, propagation=None) -> Selection:
        V = sp.csr_matrix(X, dtype=np.float64)
        if propagation is not None:
            V = sp.csr_matrix(V @ sp.csr_matrix(propagation, dtype=np.float64))
        if not np.isfinite(V.data).all():
            raise ValueError("mig: the item vectors are not finite (NaN scores?)")
        if self.phi == "pow" and (V.data < 0).any():
            rows = np.unique(np.repeat(np.arange(V.shape[0]), np.diff(V.indptr))[V.data < 0])
            raise ValueError(f"mig: phi 'pow' needs non-negative scores; rows "
                             f"{rows[:5].tolist()} are negative")
        n, L = V.shape
        m = min(int(budget), n)
        x = np.zeros(L)
        free = np.ones(n, dtype=bool)
        chosen, gains = np.empty(m, dtype=np.int64), np.empty(m)
        for k in range(m):
            g = V @ self.d_phi(x)
            g[~free] = -np.inf
            i = int(np.argmax(g))
            chosen[k], gains[k] = i, g[i]
            free[i] = False
            row = slice(V.indptr[i], V.indptr[i + 1])
            x[V.indices[row]] += V.data[row]
        return Selection(chosen, gains, {"method": "mig", "phi": self.phi, "n_labels": L,
                                         "information": self.information(x)})

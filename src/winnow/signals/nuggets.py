"""Nuggets' golden score: how often an example helps as a one-shot demonstration.

Nuggets (Li et al., "One-Shot Learning as Instruction Data Prospector for Large Language
Models", ACL 2024; official code pldlgb/nuggets) scores every example against a fixed set
of anchor examples:

- anchors: k-means (``n_anchors`` clusters, ``random_state=seed``, 10 initialisations) over
  the model's mean-pooled last hidden states of each example's text, and the pool example
  nearest to each centroid (``kmeans_sample.py``; two centroids may share an anchor, which
  then counts twice, as there);
- every text is Nuggets' prompt ``Instruction:\\n{q}\\n[Input:\\n{x}\\n]Response:\\n{a}``
  (``tasks/alpaca.py``, fields stripped; see ``embeddings.nuggets_parts``);
- zero-shot score of an anchor: the summed log-likelihood of its response tokens, the anchor
  read alone without special tokens and cut to ``max_length`` tokens (200, as the official
  loader pads and truncates to);
- one-shot score: the same with the candidate's whole text (with the tokenizer's special
  tokens, e.g. BOS) directly before the anchor's tokens;
- golden score = the fraction of anchors whose one-shot score is strictly greater than
  their zero-shot score (``instruction_main.py`` / ``tasks/alpaca.py`` ``post_process``).

The zero-shot scores are computed once per pool; each candidate's prefix runs once and its
KV cache serves every anchor (:func:`winnow.models.token_scores.score_after_prefixes`).
"""

from __future__ import annotations

import numpy as np

from winnow.data.pool import Pool
from winnow.signals.base import CausalLMSignal, Columns
from winnow.signals.embeddings import LMEmbedding, nuggets_parts
from winnow.store import Store


class Nuggets(CausalLMSignal):
    """Golden score of every example against k-means anchors (see the module doc).

    Parameters: model ("default" or any causal LM), n_anchors (100; fewer when the pool is
    smaller), seed (k-means ``random_state``, 0 as the official code), max_length (anchor
    tokens kept, 200), embed_max_length (tokens embedded for the k-means, 512), dtype (fp32 by
    default: bf16 is faster but flips close one-shot/zero-shot comparisons; auto | bf16 |
    fp16), device, revision, token_budget (anchor tokens per batch), progress.

    Columns: ``golden_score`` (float32, in [0, 1]) and ``is_anchor`` (bool).
    """

    name = "nuggets"
    version = "1"
    columns = ("golden_score", "is_anchor")
    shard_size = 64

    def __init__(self, model: str = "default", n_anchors: int = 100, seed: int = 0,
                 max_length: int = 200, embed_max_length: int = 512, dtype: str = "fp32",
                 device: str = "auto", revision: str | None = None,
                 token_budget: int | None = None, progress: bool = True):
        from winnow.models.device import dtype_name, resolve_device, resolve_dtype

        if int(n_anchors) < 1:
            raise ValueError(f"n_anchors must be at least 1, not {n_anchors}")
        self.device = str(resolve_device(device))
        self.token_budget = int(token_budget) if token_budget else None
        self.progress = progress
        super().__init__(model=str(model), n_anchors=int(n_anchors), seed=int(seed),
                         max_length=int(max_length), embed_max_length=int(embed_max_length),
                         dtype=dtype_name(resolve_dtype(dtype, resolve_device(self.device))),
                         revision=revision)
        self._anchors: tuple[str, np.ndarray, list, np.ndarray] | None = None


    def _embedder(self) -> LMEmbedding:
        p = self.params
        return LMEmbedding(model=p["model"], pooling="mean", text="nuggets",
                           max_length=p["embed_max_length"], dtype=p["dtype"],
                           device=self.device, revision=p["revision"], progress=self.progress)

    def anchors(self, pool: Pool, store: Store | None = None, run_shards=None
                ) -> tuple[np.ndarray, list, np.ndarray]:
        """(anchor pool indices, anchor sequences, zero-shot summed NLL of each anchor), for
        ``pool``; computed once per pool. With a ``store`` the embeddings are cached there."""
        from sklearn.cluster import KMeans

        from winnow.models.token_scores import Sequence, score_sequences

        if self._anchors is not None and self._anchors[0] == pool.fingerprint():
            return self._anchors[1:]
        embedder = self._embedder()
        X = (embedder(pool, store, run_shards=run_shards) if store is not None
             else embedder.compute(pool, 0, len(pool)))["embedding"]
        k = min(self.params["n_anchors"], len(pool))
        centers = KMeans(n_clusters=k, random_state=self.params["seed"],
                         n_init=10).fit(X).cluster_centers_
        idx = np.array([int(((X - c) ** 2).sum(1).argmin()) for c in centers], dtype=np.int64)
        tok = self.lm.tokenizer
        seqs = []
        for i in idx:
            query, full = nuggets_parts(pool.conversations[i])
            ids = tok(full, add_special_tokens=False)["input_ids"][:self.params["max_length"]]
            start = len(tok(query, add_special_tokens=False)["input_ids"])
            seqs.append(Sequence(np.asarray(ids, dtype=np.int64), np.arange(len(ids)) >= start))
        scores = score_sequences(self.lm, seqs, token_budget=self.token_budget,
                                 desc="nuggets zero-shot")
        zero = np.array([s.nll.sum(dtype=np.float64) for s in scores])
        self._anchors = (pool.fingerprint(), idx, seqs, zero)
        return idx, seqs, zero

    def __call__(self, pool: Pool, store: Store | None = None, run_shards=None) -> Columns:
        store = store or Store()
        if store.load(self.name, self.key(pool)) is None:  # work to do: anchors first, once
            self.anchors(pool, store, run_shards)  # (shards sent to workers carry them)
        return super().__call__(pool, store, run_shards)

    def compute(self, pool: Pool, start: int, stop: int) -> Columns:
        from winnow.models.token_scores import score_after_prefixes

        idx, seqs, zero = self.anchors(pool)
        tok = self.lm.tokenizer
        demos = [np.asarray(tok(nuggets_parts(c)[1])["input_ids"], dtype=np.int64)
                 for c in pool.conversations[start:stop]]
        one_shot = score_after_prefixes(self.lm, demos, seqs, token_budget=self.token_budget,
                                        progress=self.progress,
                                        desc=f"nuggets ({len(seqs)} anchors)")
        return {"golden_score": (one_shot < zero[None, :]).mean(1).astype(np.float32),
                "is_anchor": np.isin(np.arange(start, stop), idx)}

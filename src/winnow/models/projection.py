"""Seeded random projections of gradient vectors, generated chunk by chunk.

A projector maps vectors of ``grad_dim`` coordinates to ``proj_dim`` coordinates. Its
random numbers come from numpy's Philox generator keyed by ``(seed, chunk)``, so the same
seed gives the same projection on every run and every machine, and any range of
coordinates can be projected on its own (:meth:`Projector.project_block`): a gradient is
projected parameter block by parameter block and the full vector is never assembled.

kinds
-----
``sparse`` (default): a count sketch. Coordinate j adds ``sign(j) * x_j`` to output
    ``bucket(j)``; O(grad_dim) work and memory, E|Px|^2 = |x|^2.
``rademacher``: dense ±1/sqrt(proj_dim) entries (the TRAK/LESS projection).
``gaussian``: dense N(0, 1/proj_dim) entries.
Dense matrices are generated in row chunks and kept in memory only up to
``cache_bytes``; beyond that, chunks are regenerated on every call.
"""

from __future__ import annotations

import numpy as np
import torch

KINDS = ("sparse", "rademacher", "gaussian")
SPARSE_CHUNK = 1 << 20  # coordinates per generated chunk (sparse)
DENSE_CHUNK = 1024  # matrix rows per generated chunk (dense)


def _rng(seed: int, kind: str, chunk: int) -> np.random.Generator:
    tag = KINDS.index(kind)
    return np.random.Generator(np.random.Philox(np.random.SeedSequence([seed, tag, chunk])))


class Projector:
    """Random projection R^grad_dim -> R^proj_dim.

    Parameters
    ----------
    grad_dim, proj_dim : input and output dimensions.
    seed : the projection's seed.
    kind : ``"sparse"``, ``"rademacher"`` or ``"gaussian"``.
    device : where the projection runs (tensors are moved there).
    cache_bytes : memory allowed for keeping generated random numbers.
    """

    def __init__(self, grad_dim: int, proj_dim: int, seed: int = 0, kind: str = "sparse",
                 device: str | torch.device = "cpu", cache_bytes: int = 1 << 30):
        if kind not in KINDS:
            raise ValueError(f"projection kind must be one of {KINDS}, not {kind!r}")
        if grad_dim < 1 or proj_dim < 1:
            raise ValueError("grad_dim and proj_dim must be positive")
        self.grad_dim, self.proj_dim, self.seed, self.kind = grad_dim, proj_dim, seed, kind
        self.device = torch.device(device)
        self.cache_bytes = cache_bytes
        self._cache: dict[int, tuple[torch.Tensor, ...]] = {}
        self._cached = 0

    def identity(self) -> dict:
        return {"kind": self.kind, "proj_dim": self.proj_dim, "seed": self.seed,
                "grad_dim": self.grad_dim}

    def project(self, x: torch.Tensor) -> torch.Tensor:
        """(b, grad_dim) -> (b, proj_dim) float32."""
        if x.shape[-1] != self.grad_dim:
            raise ValueError(f"expected {self.grad_dim} coordinates, got {x.shape[-1]}")
        return self.project_block(x, 0)

    def project_block(self, x: torch.Tensor, offset: int) -> torch.Tensor:
        """Contribution of coordinates ``offset : offset + x.shape[1]``: (b, len) -> (b, proj_dim).

        Summing the blocks of a vector gives the projection of the whole vector.
        """
        stop = offset + x.shape[1]
        if offset < 0 or stop > self.grad_dim:
            raise ValueError(f"block {offset}:{stop} outside 0:{self.grad_dim}")
        x = x.to(self.device, torch.float32)
        out = torch.zeros(x.shape[0], self.proj_dim, device=self.device, dtype=torch.float32)
        size = SPARSE_CHUNK if self.kind == "sparse" else DENSE_CHUNK
        for chunk in range(offset // size, (stop - 1) // size + 1):
            lo, hi = max(offset, chunk * size), min(stop, (chunk + 1) * size)
            part = x[:, lo - offset:hi - offset]
            a, b = lo - chunk * size, hi - chunk * size
            if self.kind == "sparse":
                bucket, sign = self._chunk(chunk)
                out.index_add_(1, bucket[a:b], part * sign[a:b])
            else:
                (matrix,) = self._chunk(chunk)
                out.addmm_(part, matrix[a:b])
        return out

    def _chunk(self, chunk: int) -> tuple[torch.Tensor, ...]:
        if chunk in self._cache:
            return self._cache[chunk]
        rng = _rng(self.seed, self.kind, chunk)
        if self.kind == "sparse":
            n = min(SPARSE_CHUNK, self.grad_dim - chunk * SPARSE_CHUNK)
            bucket = torch.from_numpy(rng.integers(0, self.proj_dim, n, dtype=np.int64))
            sign = torch.from_numpy(rng.integers(0, 2, n, dtype=np.int8).astype(np.float32) * 2 - 1)
            tensors = (bucket.to(self.device), sign.to(self.device))
        else:
            rows = min(DENSE_CHUNK, self.grad_dim - chunk * DENSE_CHUNK)
            if self.kind == "rademacher":
                m = rng.integers(0, 2, (rows, self.proj_dim), dtype=np.int8).astype(np.float32)
                m = (m * 2 - 1) / np.sqrt(self.proj_dim)
            else:
                m = rng.standard_normal((rows, self.proj_dim), dtype=np.float32)
                m /= np.sqrt(self.proj_dim)
            tensors = (torch.from_numpy(m.astype(np.float32)).to(self.device),)
        nbytes = sum(t.numel() * t.element_size() for t in tensors)
        if self._cached + nbytes <= self.cache_bytes:
            self._cache[chunk] = tensors
            self._cached += nbytes
        return tensors

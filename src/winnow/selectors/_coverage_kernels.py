"""Compiled inner loops of facility location (numba): gain sums fused into one pass over
a dense row or a CSR row, summed in float64, and the extraction of live entries. The dense
loops run candidates (rows) in parallel threads; each row's sum stays sequential."""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(fastmath=True, cache=True, nogil=True, parallel=True)
def dense_gains(S, cand, cur):
    """Σ_v max(S[c, v] − cur[v], 0) for c in ``cand``, and how many terms are > 0."""
    out = np.empty(len(cand))
    live = 0
    for j in numba.prange(len(cand)):
        row = S[cand[j]]
        acc = 0.0
        for v in range(row.shape[0]):
            d = np.float64(row[v]) - cur[v]
            acc += max(d, 0.0)
            live += d > 0
        out[j] = acc
    return out, live


@numba.njit(fastmath=True, cache=True, nogil=True)
def sparse_gains(indptr, covered, sims, cand, cur):
    """:func:`dense_gains` over CSR rows: (gains, terms > 0, terms read)."""
    out = np.empty(len(cand))
    live = 0
    read = 0
    for j in range(len(cand)):
        c = cand[j]
        acc = 0.0
        for p in range(indptr[c], indptr[c + 1]):
            d = np.float64(sims[p]) - cur[covered[p]]
            acc += max(d, 0.0)
            live += d > 0
        read += indptr[c + 1] - indptr[c]
        out[j] = acc
    return out, live, read


@numba.njit(cache=True, nogil=True, parallel=True)
def live_entries(S, cur):
    """CSR (indptr, covered, sims) of the entries S[c, v] > cur[v] of a dense matrix."""
    n, m = S.shape
    counts = np.zeros(n, dtype=np.int64)
    for c in numba.prange(n):
        k = 0
        for v in range(m):
            k += S[c, v] > cur[v]
        counts[c] = k
    indptr = np.zeros(n + 1, dtype=np.int64)
    indptr[1:] = np.cumsum(counts)
    covered = np.empty(indptr[n], dtype=np.int32)
    sims = np.empty(indptr[n], dtype=np.float32)
    for c in numba.prange(n):
        p = indptr[c]
        for v in range(m):
            if S[c, v] > cur[v]:
                covered[p] = v
                sims[p] = S[c, v]
                p += 1
    return indptr, covered, sims

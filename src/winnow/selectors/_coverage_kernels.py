"""Compiled inner loops of facility location (numba).

Gain sums are fused into one pass over a dense row or a CSR row and summed in float64;
dense rows are evaluated by parallel threads. :func:`lazy_steps` runs the whole lazy
greedy loop over a binary max-heap of gain bounds, so no Python runs between picks.
"""

from __future__ import annotations

import numba
import numpy as np

DONE, COMPACT = 0, 1    # why lazy_steps returned: budget reached, or storage should shrink


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


# A heap is (keys float64 (n,), items int64 (n,), size): the root is the largest key, the
# lowest item on equal keys, so the greedy takes the lowest index among equal gains.

@numba.njit(cache=True, inline="always")
def _above(keys, items, a, b):
    return keys[a] > keys[b] or (keys[a] == keys[b] and items[a] < items[b])


@numba.njit(cache=True)
def _sift_down(keys, items, size, i):
    while True:
        top, left = i, 2 * i + 1
        if left < size and _above(keys, items, left, top):
            top = left
        if left + 1 < size and _above(keys, items, left + 1, top):
            top = left + 1
        if top == i:
            return
        keys[i], keys[top] = keys[top], keys[i]
        items[i], items[top] = items[top], items[i]
        i = top


@numba.njit(cache=True)
def _push(keys, items, size, key, item):
    i = size
    keys[i], items[i] = key, item
    while i > 0 and _above(keys, items, i, (i - 1) // 2):
        p = (i - 1) // 2
        keys[i], keys[p] = keys[p], keys[i]
        items[i], items[p] = items[p], items[i]
        i = p
    return size + 1


@numba.njit(cache=True)
def _pop(keys, items, size):
    key, item = keys[0], items[0]
    size -= 1
    keys[0], items[0] = keys[size], items[size]
    _sift_down(keys, items, size, 0)
    return key, item, size


@numba.njit(cache=True)
def heapify(keys):
    """Heap of ``keys`` (items 0..n−1): (keys, items)."""
    keys = keys.copy()
    items = np.arange(len(keys))
    for i in range(len(keys) // 2 - 1, -1, -1):
        _sift_down(keys, items, len(keys), i)
    return keys, items


@numba.njit(cache=True, nogil=True)
def lazy_steps(S, indptr, covered, sims, keys, items, state, fresh, cur, mod, weight,
               chosen, gains, stats, batch):
    """Lazy greedy picks ``chosen[state[0]:]``, on the dense matrix ``S`` if it is not
    empty, else on the CSR store (indptr, covered, sims).

    ``state`` = [next step, heap size, gain evaluations] and the heap (keys, items) of
    gain bounds carry over between calls; ``fresh[c]`` is the step at which c's bound
    was last evaluated. While the top bound is stale, the ``batch`` largest stale bounds
    above the first fresh one are evaluated together; a fresh top is taken. ``stats`` =
    [entries read in all, read since the last compaction, of those still live]. Returns
    COMPACT once most entries read are dead (the caller then shrinks the storage), DONE
    when ``chosen`` is full.
    """
    dense = S.shape[0] > 0
    size = state[1]
    cand = np.empty(batch, dtype=np.int64)
    for step in range(state[0], len(chosen)):
        while True:
            if fresh[items[0]] == step:
                break
            k = 0
            while k < batch and size > 0 and fresh[items[0]] != step:
                _, cand[k], size = _pop(keys, items, size)
                k += 1
            if dense:
                g, live = dense_gains(S, cand[:k], cur)
                read = k * S.shape[1]
            else:
                g, live, read = sparse_gains(indptr, covered, sims, cand[:k], cur)
            stats[0] += read
            stats[1] += read
            stats[2] += live
            state[2] += k
            for j in range(k):
                fresh[cand[j]] = step
                size = _push(keys, items, size, weight * g[j] + mod[cand[j]], cand[j])
        gains[step], chosen[step], size = _pop(keys, items, size)
        c = chosen[step]
        if dense:
            for v in range(S.shape[1]):
                cur[v] = max(cur[v], S[c, v])
        else:
            for p in range(indptr[c], indptr[c + 1]):
                cur[covered[p]] = max(cur[covered[p]], sims[p])
        state[0], state[1] = step + 1, size
        if dense:
            wants = 4 * stats[0] >= S.size and stats[1] > 0 and 32 * stats[2] < stats[1]
            stats[1] = stats[2] = 0
        else:
            wants = 4 * stats[1] >= len(sims) and 2 * stats[2] < stats[1]
        if wants and step + 1 < len(chosen):
            return COMPACT
    return DONE

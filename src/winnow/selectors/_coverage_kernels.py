"""Compiled greedy of facility location (numba).

Every candidate's gain g[c] = Σ_v max(sim(c, v) − cur[v], 0) is kept exact: when a pick
raises the coverage cur[v] of some points v, each candidate that covers such a v loses
what that term loses, min(max(sim(c, v) − old, 0), new − old). Only the points whose
coverage rises are read (their rows), never a candidate's whole row. Gains only fall,
so a max-heap of keys that may be stale (a key is never below its current value) finds
the best one: a popped key that no longer equals its value goes back with the value.
"""

from __future__ import annotations

import numba
import numpy as np

BLOCK = 2048   # candidates per thread task in the dense update


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
def _heapify(g, mod, weight):
    """Heap of the values weight·g + mod of the candidates 0..n−1."""
    keys = np.empty(len(g))
    for c in range(len(g)):
        keys[c] = weight * g[c] + mod[c]
    items = np.arange(len(keys))
    for i in range(len(keys) // 2 - 1, -1, -1):
        _sift_down(keys, items, len(keys), i)
    return keys, items


@numba.njit(cache=True)
def _take(keys, items, size, g, mod, weight):
    """Pop the candidate of largest value weight·g + mod: (value, candidate, new size)."""
    c = items[0]
    value = weight * g[c] + mod[c]
    while value != keys[0]:         # a stale key: put it back with the current value
        keys[0] = value
        _sift_down(keys, items, size, 0)
        c = items[0]
        value = weight * g[c] + mod[c]
    size -= 1
    keys[0], items[0] = keys[size], items[size]
    _sift_down(keys, items, size, 0)
    return value, c, size


@numba.njit(cache=True, inline="always")
def _lost(s, old, rise):
    """What a term max(s − cur, 0) loses when cur rises from ``old`` by ``rise``."""
    return min(max(s - old, 0.0), rise)


@numba.njit(fastmath=True, cache=True, nogil=True, parallel=True)
def _dense_update(S, c, cur, g):
    """Raise cur to S[c] and lower the gains g accordingly (S symmetric): reads the rows
    of the points whose coverage rises, four at a time; returns how many entries."""
    n = len(cur)
    rising = np.flatnonzero(S[c] > cur)
    old = cur[rising].astype(np.float64)
    rise = S[c][rising] - old
    m = len(rising)
    for b in numba.prange((n + BLOCK - 1) // BLOCK):
        lo, hi = b * BLOCK, min(n, (b + 1) * BLOCK)
        loss = np.zeros(hi - lo)
        for i in range(0, m - m % 4, 4):
            s0, s1 = S[rising[i], lo:hi], S[rising[i + 1], lo:hi]
            s2, s3 = S[rising[i + 2], lo:hi], S[rising[i + 3], lo:hi]
            o0, o1, o2, o3 = old[i], old[i + 1], old[i + 2], old[i + 3]
            r0, r1, r2, r3 = rise[i], rise[i + 1], rise[i + 2], rise[i + 3]
            for j in range(hi - lo):
                loss[j] += ((_lost(s0[j], o0, r0) + _lost(s1[j], o1, r1))
                            + (_lost(s2[j], o2, r2) + _lost(s3[j], o3, r3)))
        for i in range(m - m % 4, m):
            sv = S[rising[i], lo:hi]
            for j in range(hi - lo):
                loss[j] += _lost(sv[j], old[i], rise[i])
        g[lo:hi] -= loss
    cur[rising] = S[c][rising]
    return m * n


@numba.njit(fastmath=True, cache=True, nogil=True, parallel=True)
def _dense_gains(S):
    out = np.empty(len(S))
    for c in numba.prange(len(S)):
        acc = 0.0
        for v in range(S.shape[1]):
            acc += max(np.float64(S[c, v]), 0.0)
        out[c] = acc
    return out


@numba.njit(cache=True, nogil=True)
def dense_greedy(S, mod, weight, m):
    """Greedy facility location on a symmetric (n, n) similarity matrix: (picks (m,),
    their values (m,), final coverage (n,), entries read)."""
    g = _dense_gains(S)
    keys, items = _heapify(g, mod, weight)
    size = len(g)
    cur = np.zeros(len(g), dtype=np.float32)
    chosen, values = np.empty(m, dtype=np.int64), np.empty(m)
    read = 0
    for step in range(m):
        values[step], chosen[step], size = _take(keys, items, size, g, mod, weight)
        read += _dense_update(S, chosen[step], cur, g)
    return chosen, values, cur, read


@numba.njit(fastmath=True, cache=True, nogil=True)
def sparse_greedy(indptr, covered, sims, vptr, vcand, vsims, mod, weight, m):
    """:func:`dense_greedy` on sparse similarities stored twice: by candidate (candidate c
    covers covered[indptr[c]:indptr[c+1]] with sims there) and by point (point v is
    covered by vcand[vptr[v]:vptr[v+1]] with vsims there)."""
    n = len(indptr) - 1
    g = np.zeros(n)
    for c in range(n):
        for p in range(indptr[c], indptr[c + 1]):
            g[c] += max(np.float64(sims[p]), 0.0)
    keys, items = _heapify(g, mod, weight)
    size = n
    cur = np.zeros(len(vptr) - 1, dtype=np.float32)
    chosen, values = np.empty(m, dtype=np.int64), np.empty(m)
    read = 0
    for step in range(m):
        values[step], c, size = _take(keys, items, size, g, mod, weight)
        chosen[step] = c
        for p in range(indptr[c], indptr[c + 1]):
            v, new = covered[p], sims[p]
            old = np.float64(cur[v])
            if new > old:
                for q in range(vptr[v], vptr[v + 1]):
                    g[vcand[q]] -= _lost(vsims[q], old, new - old)
                read += vptr[v + 1] - vptr[v]
                cur[v] = new
    return chosen, values, cur, read


@numba.njit(fastmath=False, cache=True, nogil=True, parallel=True)
def asymmetric_and_nonfinite(S, tile=128):
    """How many pairs i < j have S[i, j] != S[j, i], and how many entries on or above the
    diagonal are not finite. Each tile above the diagonal is compared with a transposed
    copy of its mirror; the tiles are shared evenly between threads."""
    n = len(S)
    tiles = (n + tile - 1) // tile
    pairs = np.array([(a, b) for a in range(tiles) for b in range(a, tiles)])
    asymmetric = nonfinite = 0
    for p in numba.prange(len(pairs)):
        a, b = pairs[p, 0] * tile, pairs[p, 1] * tile
        ha, hb = min(n, a + tile) - a, min(n, b + tile) - b
        mirror = np.ascontiguousarray(S[b:b + hb, a:a + ha].T)
        for i in range(ha):
            row = S[a + i, b:b + hb]
            for j in range(i if a == b else 0, hb):
                asymmetric += row[j] != mirror[i, j]
                nonfinite += not np.isfinite(row[j])
    return asymmetric, nonfinite

"""Group equal rows of an integer matrix, fast: a score that depends only on a node's row is
computed once per distinct row and broadcast (most nodes of a cluster look alike).

Rows are hashed (fixed odd multipliers, 64-bit wrap-around) and grouped by hash, then every row is
compared with its group's first row; a row that differs (a hash collision) gets a group of its
own, so the grouping is exact.
"""

from __future__ import annotations

import numpy as np

_MULTIPLIERS = np.array([((0x9E3779B97F4A7C15 * (i + 1)) & 0xFFFFFFFFFFFFFFFF) | 1 for i in range(128)],
                        dtype=np.uint64)


def group_rows(matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(first, inverse): `matrix[first[g]]` is group g's representative and row i is in group `inverse[i]`."""
    if len(matrix) == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    width = matrix.shape[1]
    if width > len(_MULTIPLIERS):
        raise ValueError(f"at most {len(_MULTIPLIERS)} columns")
    hashes = (matrix.astype(np.uint64) * _MULTIPLIERS[:width]).sum(axis=1, dtype=np.uint64)
    _, first, inverse = np.unique(hashes, return_index=True, return_inverse=True)
    inverse = inverse.reshape(-1)
    clash = (matrix != matrix[first[inverse]]).any(axis=1)
    if clash.any():
        extra = np.flatnonzero(clash)
        inverse = inverse.copy()
        inverse[extra] = len(first) + np.arange(len(extra))
        first = np.concatenate([first, extra])
    return first.astype(np.int64), inverse.astype(np.int64)

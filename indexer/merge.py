"""Merging top-k result lists that were searched apart (shards of a collection).

FAISS has the merge (``merge_knn_results``, a heap over the sorted lists, in C++); this
module feeds it hits of any id type by merging positions instead of ids.
"""

from __future__ import annotations

from collections.abc import Sequence

import faiss
import numpy as np

from indexer.points import Hit

__all__ = ["merge_hits"]


def merge_hits(parts: Sequence[Sequence[Hit]], k: int, *, higher_is_better: bool) -> list[Hit]:
    """The best ``k`` of several hit lists, each sorted best first, best first.

    Ties keep the order of ``parts`` (the first list's hit first), so a merge of the same
    lists always gives the same answer.
    """
    width = max((len(part) for part in parts), default=0)
    if width == 0:
        return []
    worst = -np.inf if higher_is_better else np.inf
    scores = np.full((len(parts), 1, width), worst, dtype=np.float32)
    positions = np.full((len(parts), 1, width), -1, dtype=np.int64)
    for p, part in enumerate(parts):
        n = len(part)
        scores[p, 0, :n] = [hit.score for hit in part]
        positions[p, 0, :n] = np.arange(p * width, p * width + n)
    k = min(k, sum(len(part) for part in parts))
    if k <= width:
        scores, positions = scores[:, :, :k].copy(), positions[:, :, :k].copy()
    else:
        scores, positions = _pad(scores, k, worst), _pad(positions, k, -1)
    _, merged = faiss.merge_knn_results(scores, positions, keep_max=higher_is_better)
    return [parts[int(i) // width][int(i) % width] for i in merged[0] if i >= 0]


def _pad(array: np.ndarray, k: int, fill: float) -> np.ndarray:
    """``array`` [nshard, nq, width] widened to [nshard, nq, k] with ``fill``."""
    out = np.full((*array.shape[:2], k), fill, dtype=array.dtype)
    out[:, :, : array.shape[2]] = array
    return out

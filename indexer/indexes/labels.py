"""Labels as FAISS sees them: sets of labels with their selector, where labels sit in an
index's id map, views on an index's own arrays, and results filtered by label."""

from __future__ import annotations

from typing import Any

import faiss
import numpy as np


class LabelSet:
    """A sorted set of labels, with its FAISS selector built once on first use."""

    def __init__(self, labels: np.ndarray) -> None:
        self.labels = labels
        self._selector: Any = None
        self._bitmap: np.ndarray | None = None  # the selector reads it: kept alive with it

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def selector(self) -> Any:
        """A bitmap over the labels up to the largest: built in a millisecond for a
        million labels, where a hash set (IDSelectorBatch) takes tens."""
        if self._selector is None:
            top = int(self.labels[-1]) + 1 if len(self.labels) else 0
            mask = np.zeros(top, dtype=bool)
            mask[self.labels] = True
            self._bitmap = np.packbits(mask, bitorder="little")
            self._selector = faiss.IDSelectorBitmap(len(self._bitmap), faiss.swig_ptr(self._bitmap))
        return self._selector

    def contains(self, labels: np.ndarray) -> np.ndarray:
        """A boolean mask: which of ``labels`` are in the set."""
        if not len(self.labels):
            return np.zeros(labels.shape, dtype=bool)
        pos = np.minimum(np.searchsorted(self.labels, labels), len(self.labels) - 1)
        return np.asarray(self.labels[pos] == labels)


class LabelPositions:
    """Where each label sits in an id map (labels by position), found by binary search in
    the labels sorted, kept between calls: an index appends new labels, in increasing
    order but for a few (its calibration queries are added last), so the sort is
    extended rather than redone. A lookup checks what it finds, so a map changed in
    another way (removals shift positions) is told by the check and sorted afresh."""

    def __init__(self) -> None:
        # (how many positions of the map it covers, labels sorted, their positions)
        self._sorted: tuple[int, np.ndarray, np.ndarray] = (
            0,
            np.empty(0, dtype=np.int64),
            np.empty(0, dtype=np.int64),
        )

    def of(self, labels: np.ndarray, ids: np.ndarray, fresh: bool) -> np.ndarray | None:
        """The positions in ``ids`` of ``labels``, or None where one is not found;
        ``fresh``: sort the whole map again first."""
        covered, ordered, positions = self._sorted
        if fresh or covered > len(ids):
            covered, ordered, positions = 0, ordered[:0], positions[:0]
        if covered < len(ids):
            tail = ids[covered:]
            if (len(ordered) and (tail <= ordered[-1]).any()) or (np.diff(tail) <= 0).any():
                # Out of order: sort the whole map (-1 marks a position of no label),
                # unless it is sorted (removals keep the order of what is left).
                at = np.flatnonzero(ids >= 0)
                ordered, positions = ids[at], at
                if (np.diff(ordered) <= 0).any():
                    order = np.argsort(ordered, kind="stable")
                    ordered, positions = ordered[order], at[order]
            else:
                kept = np.flatnonzero(tail >= 0)
                ordered = np.concatenate([ordered, tail[kept]])
                positions = np.concatenate([positions, covered + kept])
            covered = len(ids)
            # Readers share it: each assignment replaces it whole.
            self._sorted = (covered, ordered, positions)
        if not len(ordered):
            return None
        found = positions[np.minimum(np.searchsorted(ordered, labels), len(ordered) - 1)]
        if not np.array_equal(ids[found], labels):
            return None
        return found


def id_map_view(index: Any) -> np.ndarray:
    """The labels by position of a FAISS IndexIDMap, a view on its own array (writes go
    through, and it is valid until the index next changes)."""
    id_map = index.id_map
    if not id_map.size():
        return np.empty(0, dtype=np.int64)
    ids: np.ndarray = faiss.rev_swig_ptr(id_map.data(), id_map.size())
    return ids


def float_vectors(flat: Any) -> np.ndarray:
    """The vectors of a FAISS IndexFlat [n, dim], a view on its own array."""
    if not flat.ntotal:
        return np.empty((0, flat.d), dtype=np.float32)
    xb: np.ndarray = faiss.rev_swig_ptr(flat.get_xb(), flat.ntotal * flat.d)
    return xb.reshape(flat.ntotal, flat.d)


def keep_labels(
    distances: np.ndarray, labels: np.ndarray, mask: np.ndarray, k: int
) -> tuple[np.ndarray, np.ndarray]:
    """Keep the first k entries of each row where ``mask`` holds, padding with -1."""
    order = np.argsort(~mask, axis=1, kind="stable")[:, :k]
    kept_labels = np.take_along_axis(np.where(mask, labels, -1), order, axis=1)
    kept_distances = np.take_along_axis(distances, order, axis=1)
    return kept_distances, kept_labels

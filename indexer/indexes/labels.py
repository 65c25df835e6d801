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
    """Where each label sits in an id map (labels by position): a table of positions by
    label (-1 for none), kept between calls. The store hands labels out in increasing
    order, so the table is about as long as the map, and an index that appends labels
    extends it rather than building it again; a lookup is one gather, where a binary
    search in the labels sorted cost 18 ms for 100,000 labels of 1,000,000. A lookup
    checks what it finds, so a map changed in another way (removals shift positions) is
    told by the check and tabled afresh."""

    def __init__(self) -> None:
        # (how many positions of the map it covers, position by label)
        self._table: tuple[int, np.ndarray] = (0, np.empty(0, dtype=np.int64))

    def of(self, labels: np.ndarray, ids: np.ndarray, fresh: bool) -> np.ndarray | None:
        """The positions in ``ids`` of ``labels``, or None where one is not found;
        ``fresh``: table the whole map again first."""
        covered, table = self._table
        if fresh or covered > len(ids):
            covered, table = 0, np.full(len(table), -1, dtype=np.int64)
        if covered < len(ids):
            tail = ids[covered:]
            kept = np.flatnonzero(tail >= 0)  # -1 marks a position of no label
            top = int(tail[kept].max()) + 1 if len(kept) else 0
            if top > len(table):  # grown by a quarter more, for the appends to come
                grown = np.full(top + top // 4, -1, dtype=np.int64)
                grown[: len(table)] = table
                table = grown
            # Readers share the table: entries written here are those of labels that
            # had none, and any lookup checks what it finds.
            table[tail[kept]] = covered + kept
            covered = len(ids)
            self._table = (covered, table)  # replaced whole
        if not len(labels) or labels.min() < 0 or labels.max() >= len(table):
            return None
        found: np.ndarray = table[labels]
        if (found < 0).any() or not np.array_equal(ids[found], labels):
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

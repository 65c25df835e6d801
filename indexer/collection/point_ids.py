"""Labels and user ids. FAISS and the store know a point by its label, an int64 never
reused (an update takes a new one); callers know it by its id, a string or an integer."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import orjson

from indexer.collection.results import padded
from indexer.points import PointId, encode_id

# Batches of at least this many hits read ids from an array (see PointIds.ids), built only
# while there are at most ID_TABLE_MAX_SPREAD labels, live or deleted, to each live point.
ID_TABLE_MIN_HITS = 1024
ID_TABLE_MAX_SPREAD = 4


class PointIds:
    """label <-> user id for the live points."""

    def __init__(self, keys: Iterable[tuple[int, str]]) -> None:
        """``keys``: (label, id key) of every live point, in label order."""
        rows = list(keys)
        labels = [label for label, _ in rows]
        texts = [key for _, key in rows]
        # Keys are JSON texts: a million of them parse as one array at C speed.
        ids: list[PointId] = orjson.loads("[" + ",".join(texts) + "]")
        self._ids: dict[int, PointId] = dict(zip(labels, ids, strict=True))  # label -> id
        self._labels: dict[str, int] = dict(zip(texts, labels, strict=True))  # key -> label
        self._table = np.empty(0, dtype=object)  # label -> user id; see ids()

    def __len__(self) -> int:
        return len(self._ids)

    def label(self, point_id: PointId) -> int | None:
        return self._labels.get(encode_id(point_id))

    def live(self) -> np.ndarray:
        """Every live label, sorted."""
        live = np.fromiter(self._ids, dtype=np.int64, count=len(self._ids))
        live.sort()
        return live

    def upserted(
        self, keys: Sequence[str], labels: np.ndarray, ids: Sequence[PointId], replaced: np.ndarray
    ) -> None:
        """Points ``ids`` (encoded: ``keys``) now have ``labels``; ``replaced`` are gone."""
        for old in replaced.tolist():
            del self._ids[old]
        for key, label, point_id in zip(keys, labels.tolist(), ids, strict=True):
            self._labels[key] = label
            self._ids[label] = point_id

    def deleted(self, labels: np.ndarray) -> None:
        for label in labels.tolist():
            self._labels.pop(encode_id(self._ids.pop(label)), None)

    def ids(self, labels: np.ndarray) -> list[PointId]:
        """The user ids of live ``labels``, in order.

        A large batch reads them from ``self._table``, an array indexed by label: once a
        search has pushed the ``self._ids`` dict out of the CPU caches, a lookup in it
        costs four times as much. Labels are never reused, so after writes the array is
        still right for every label it covers (deleted ones are never looked up); labels
        newer than it are read from the dict, and it is rebuilt when they are more than
        an eighth of a batch.
        """
        if len(labels) < ID_TABLE_MIN_HITS:
            return list(map(self._ids.__getitem__, labels.tolist()))
        table = self._table
        if len(table) and int(labels.max()) < len(table):  # the usual case: one take
            covered: list[PointId] = table[labels].tolist()
            return covered
        newer = labels >= len(table)
        if 8 * int(newer.sum()) > len(labels):
            table = self._table = self._build_table()
            newer = labels >= len(table)
        if newer.all():
            return list(map(self._ids.__getitem__, labels.tolist()))
        ids = table[np.where(newer, 0, labels)]
        ids[newer] = [self._ids[label] for label in labels[newer].tolist()]
        point_ids: list[PointId] = ids.tolist()
        return point_ids

    def ids_of(self, labels: list[int]) -> list[PointId]:
        """:meth:`ids` of a few labels given as a list."""
        return list(map(self._ids.__getitem__, labels))

    def id_array(self, labels: np.ndarray) -> np.ndarray:
        """:meth:`ids` as an object array, taken from the table without a list in between
        where it can be."""
        table = self._table
        if len(labels) >= ID_TABLE_MIN_HITS and len(table) and int(labels.max()) < len(table):
            found: np.ndarray = table[labels]
            return found
        ids = np.empty(len(labels), dtype=object)
        ids[:] = self.ids(labels)
        return ids

    def id_grid(self, labels: np.ndarray) -> np.ndarray:
        """The user ids of search results [nq, k] as an object array, None where -1 pads."""
        if not padded(labels):  # the usual case: no row short of k
            return self.id_array(labels.ravel()).reshape(labels.shape)
        found = labels >= 0
        ids = np.full(labels.shape, None, dtype=object)
        ids[found] = self.id_array(labels[found])
        return ids

    def _build_table(self) -> np.ndarray:
        """label -> user id for the live labels, or an empty array while labels are too
        sparse for one (many updates leave gaps: each takes a new label)."""
        n = len(self._ids)
        # Labels enter the dict in increasing order, so its last key is the largest.
        if not n or next(reversed(self._ids)) >= ID_TABLE_MAX_SPREAD * n:
            return np.empty(0, dtype=object)
        labels = np.fromiter(self._ids, dtype=np.int64, count=n)
        table = np.empty(int(labels.max()) + 1, dtype=object)
        table[labels] = np.fromiter(self._ids.values(), dtype=object, count=n)
        return table

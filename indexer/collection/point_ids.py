"""Labels and user ids. FAISS and the store know a point by its label, an int64 never
reused (an update takes a new one); callers know it by its id, a string or an integer."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import orjson

from indexer.collection.results import padded
from indexer.points import PointId, encode_id

# Ids are read from an array indexed by label (see PointIds.ids) while there are at most
# ID_TABLE_MAX_SPREAD labels, live or deleted, to each live point (each update takes a new
# label, so many updates spread them); below ID_TABLE_MIN_LABELS labels, always.
ID_TABLE_MAX_SPREAD = 4
ID_TABLE_MIN_LABELS = 1 << 16


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
        self._top = labels[-1] + 1 if labels else 0  # past the largest label handed out
        self._table = self._built_table()

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
        listed = labels.tolist()
        for key, label, point_id in zip(keys, listed, ids, strict=True):
            self._labels[key] = label
            self._ids[label] = point_id
        if listed:
            self._top = max(self._top, max(listed) + 1)
            self._tabled(labels, ids)

    def deleted(self, labels: np.ndarray) -> None:
        """Forget ``labels``. The table keeps their ids: labels are never reused, and no
        search finds a deleted one, so they are never read again."""
        for label in labels.tolist():
            self._labels.pop(encode_id(self._ids.pop(label)), None)

    def ids(self, labels: np.ndarray) -> list[PointId]:
        """The user ids of live ``labels``, in order.

        They are read from ``self._table``, an array indexed by label, in one take: once a
        search has pushed the ``self._ids`` dict out of the CPU caches, a lookup in it
        costs four times as much (and an int64 table hands out ids without reading a
        Python object each). The dict answers while labels are too sparse for a table."""
        table = self._table
        if table is None:
            return list(map(self._ids.__getitem__, labels.tolist()))
        found: list[PointId] = table[labels].tolist()
        return found

    def id_array(self, labels: np.ndarray) -> np.ndarray:
        """:meth:`ids` as an object array, taken from the table without a list in between
        where it can be."""
        table = self._table
        if table is not None:
            found: np.ndarray = table[labels].astype(object, copy=False)
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

    def _dense(self) -> bool:
        """Whether labels are dense enough for a table (see ID_TABLE_MAX_SPREAD)."""
        return self._top <= max(ID_TABLE_MIN_LABELS, ID_TABLE_MAX_SPREAD * len(self._ids))

    def _built_table(self) -> np.ndarray | None:
        """label -> user id for the live labels: int64 while every id is an integer,
        objects otherwise; None while labels are too sparse for one."""
        if not self._dense():
            return None
        ids = list(self._ids.values())
        table = self._empty_table(self._top, all(type(i) is int for i in ids))
        table[np.fromiter(self._ids, dtype=np.int64, count=len(ids))] = ids
        return table

    def _tabled(self, labels: np.ndarray, ids: Sequence[PointId]) -> None:
        """Enter an upsert's ids in the table, grown (to twice its size, so a stream of
        single upserts copies it rarely) or made one of objects where it must be. The
        table is dropped once labels spread too far, and built again when they are half
        as spread: a collection at the bound does not build one an upsert to drop it the
        next."""
        table = self._table
        if table is None:
            if self._top <= max(ID_TABLE_MIN_LABELS, ID_TABLE_MAX_SPREAD * len(self._ids) // 2):
                self._table = self._built_table()
            return
        if not self._dense():
            self._table = None
            return
        integers = table.dtype != object and all(type(i) is int for i in ids)
        if self._top > len(table) or (table.dtype != object and not integers):
            grown = self._empty_table(max(self._top, 2 * len(table)), integers)
            grown[: len(table)] = table
            table = self._table = grown
        table[labels] = ids

    @staticmethod
    def _empty_table(size: int, integers: bool) -> np.ndarray:
        if integers:
            return np.zeros(size, dtype=np.int64)
        return np.full(size, None, dtype=object)

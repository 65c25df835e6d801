"""The most common search, in as few steps as can answer it: one query vector, its k
nearest points, no filter, no search parameters, no vectors (payloads if asked).

After an index search has streamed through the CPU caches, every step that follows finds
its code and data cold, and costs microseconds: a single HNSW search takes 60 µs, so each
step counts. The way here is short: a vector checked in one numpy call, the read lock,
one FAISS call (:meth:`FaissIndex.search_one`), ids taken from an array by label, scores
converted in plain Python. Whatever it cannot answer so (a batch, a list of the wrong
length, tombstones in the index, fewer than k found...) it hands back as None, and the
collection's general search takes it, which answers it (or refuses it) the same way.
"""

from __future__ import annotations

from collections.abc import Iterable
from itertools import repeat
from math import isfinite
from typing import Any

import numpy as np
import orjson

try:  # np.einsum without its Python wrapper, as indexer.points takes it
    from numpy._core.multiarray import c_einsum
except ImportError:  # numpy 1.x
    from numpy.core.multiarray import c_einsum  # type: ignore[no-redef]

from indexer.collection.lifecycle import Lifecycle
from indexer.collection.point_ids import PointIds
from indexer.collection.results import Rows
from indexer.collection.served_index import ServedIndex
from indexer.collection.validation import MAX_K
from indexer.locks import ReadWriteLock
from indexer.metric import Metric
from indexer.points import Hit, PointId, single_vector_and_squares


class PlainSearch:
    """A collection's plain single-query search, as hits or as arrays. Once the collection
    has closed (``lifecycle.closed``) it answers None: the general search raises the
    error."""

    __slots__ = (
        "_dim",
        "_lifecycle",
        "_metric",
        "_point_ids",
        "_read",
        "_rows",
        "_served",
        "_shape",
    )

    def __init__(
        self,
        dim: int,
        metric: Metric,
        lock: ReadWriteLock,
        served: ServedIndex,
        point_ids: PointIds,
        lifecycle: Lifecycle,
        rows: Rows,
    ) -> None:
        self._dim = dim
        self._shape = (dim,)
        self._metric = metric
        self._read = lock.read()
        self._served = served
        self._point_ids = point_ids
        self._lifecycle = lifecycle
        self._rows = rows  # stored rows (payloads, no vectors) by label

    def hits(self, query: object, k: object, with_payload: bool = False) -> list[Hit] | None:
        """The hits of one query, with their payloads if asked; None where this way
        cannot answer."""
        found = self._search(query, k, with_payload)
        if found is None:
            return None
        ids, scores, rows = found
        payloads: Iterable[dict[str, Any] | None] = _NONE
        if rows is not None:  # as results.hits reads them (None for a point deleted since)
            payloads = [orjson.loads(row[0]) if row else None for row in rows]
        # bare_hits() or full_hits(), inline: each call on this way costs as much as the work.
        built: list[Hit] = list(
            map(_new_tuple, _HIT, zip(ids, scores, payloads, _NONE, strict=False))
        )
        return built

    def arrays(self, query: object, k: object) -> tuple[np.ndarray, np.ndarray] | None:
        """:meth:`hits` as :meth:`Collection.search_arrays` gives them: ids [1, k] (an
        object array) and float32 scores [1, k]."""
        found = self._search(query, k, False)
        if found is None:
            return None
        ids = np.empty((1, len(found[0])), dtype=object)
        ids[0] = found[0]
        return ids, np.array([found[1]], dtype=np.float32)

    def _search(
        self, query: object, k: object, with_rows: bool
    ) -> tuple[list[PointId], list[float], list[tuple[str, bytes | None] | None] | None] | None:
        """The ids and scores of one query's k nearest points, and their stored rows if
        asked (None for a point deleted since), read under the lock."""
        if type(k) is not int or not 0 < k <= MAX_K:
            return None
        if (
            type(query) is np.ndarray
            and query.dtype == _FLOAT32
            and query.shape == self._shape
            and query.flags.c_contiguous
        ):  # as numpy callers give it: no conversion, one numpy call
            squares = float(c_einsum("i,i", query, query))  # as single_vector_and_squares
            if not isfinite(squares):
                return None
            vector = query
        else:
            single = single_vector_and_squares(query, self._dim)
            if single is None:
                return None
            vector, squares = single
        metric = self._metric
        factor = metric.query_factor(squares) if metric is Metric.COSINE else 1.0
        if factor is None:
            return None
        with self._read:
            if self._lifecycle.closed:
                return None
            found = self._served.index.search_one(vector, k)
            if found is None:
                return None
            labels = found[1]
            ids = self._point_ids.ids(labels)
            rows = None
            if with_rows:
                by_label = self._rows(labels)
                rows = [by_label.get(label) for label in labels.tolist()]
        return ids, metric.score_list(found[0].tolist(), factor), rows


_FLOAT32 = np.dtype(np.float32)
_new_tuple = tuple.__new__
_HIT = repeat(Hit)  # never exhausted: shared by every call, as are the Nones
_NONE = repeat(None)

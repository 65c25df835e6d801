"""The collection's reads: filters to labels, searches, hits, points, pages, thumbnails
and recommendations, answered from the index it serves and the store.

:class:`Reader` takes none of the collection's locks: the facade calls it with the read
lock held (the query vectors are prepared before, outside the lock).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

import numpy as np
import orjson

from indexer.collection import recommend as recommending
from indexer.collection.filtered_pages import page_of
from indexer.collection.point_ids import PointIds
from indexer.collection.recommend import Example, Strategy
from indexer.collection.results import hits, query_hits, score_grid, vector
from indexer.collection.search import (
    CachedLabels,
    FilterCache,
    PlanCounts,
    StoredVectors,
    search,
)
from indexer.errors import PointNotFound
from indexer.filters import compile_filter
from indexer.indexes import FaissIndex, LabelSet
from indexer.metric import Metric
from indexer.payload_index import PayloadIndexes
from indexer.points import (
    Hit,
    Point,
    PointId,
    decode_id,
    encode_id,
    vector_batch_and_squares,
)
from indexer.spec import SearchParams
from indexer.store import SqliteStore


class Reader:
    """Answers reads from a collection's index (``index()``, the one it serves now), its
    point ids and its store; keeps the cache of the labels recent filters matched."""

    def __init__(
        self,
        store: SqliteStore,
        dim: int,
        metric: Metric,
        point_ids: PointIds,
        index: Callable[[], FaissIndex],
        stored: StoredVectors,
        payload_indexes: PayloadIndexes,
    ) -> None:
        self._store = store
        self._dim = dim
        self._metric = metric
        self._point_ids = point_ids
        self._index = index
        self._stored = stored
        self._payload_indexes = payload_indexes
        self.filter_cache = FilterCache()
        self.plan_counts = PlanCounts()
        self._filter_cache_lock = threading.Lock()

    def allowed(self, filter: dict[str, Any]) -> LabelSet:
        """The labels matching a filter: from the payload indexes when they answer it,
        else from the store, cached. A write leaves a cached filter to be brought up to
        date, not read again: the points deleted since are dropped, and only the rows
        written since are read."""
        compiled = compile_filter(filter)
        indexed = self._payload_indexes.select(filter)
        if indexed is not None:
            return LabelSet(indexed)
        key = (compiled.where, compiled.params)
        top, deletes = self._payload_indexes.top, self._payload_indexes.deletes
        # Readers share the cache: its lock keeps one reader's eviction from landing
        # between another's lookup and its move to the end.
        with self._filter_cache_lock:
            cached = self.filter_cache.get(key)
        if cached is not None and (cached.top, cached.deletes) == (top, deletes):
            return cached.labels
        if cached is None:
            labels = self._store.select_labels(compiled.where, compiled.params)
        else:
            labels = cached.labels.labels
            if cached.deletes != deletes:
                labels = labels[self._payload_indexes.live(labels)]
            if cached.top != top:
                written = self._store.select_labels(
                    f"({compiled.where}) AND label >= ?", (*compiled.params, cached.top)
                )
                labels = np.concatenate([labels, written])
        allowed = LabelSet(labels)
        with self._filter_cache_lock:
            self.filter_cache.put(key, CachedLabels(allowed, top, deletes))
        return allowed

    def queries(self, queries: Any) -> tuple[np.ndarray, np.ndarray | None]:
        """Validated query vectors as the index takes them, and the factors for their
        distances (see :meth:`Metric.prepare_queries`)."""
        vecs, squares = vector_batch_and_squares(queries, self._dim)
        return self._metric.prepare_queries(vecs, squares)

    def search(
        self,
        queries: np.ndarray,
        k: int,
        params: SearchParams,
        allowed: LabelSet | None,
        scale: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        index, stored, metric, counts = self._index(), self._stored, self._metric, self.plan_counts
        return search(index, queries, k, params, allowed, stored, metric, scale, counts)

    def nearest(
        self,
        queries: np.ndarray,
        k: int,
        params: SearchParams,
        filter: dict[str, Any] | None,
        scale: np.ndarray | None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`search` among the points matching ``filter`` (all of them for None)."""
        allowed = self.allowed(filter) if filter is not None else None
        # search() itself, not self.search: a call less on the path of every search.
        index, stored, metric, counts = self._index(), self._stored, self._metric, self.plan_counts
        return search(index, queries, k, params, allowed, stored, metric, scale, counts)

    def hits(
        self, scores: np.ndarray, labels: np.ndarray, with_payload: bool, with_vectors: bool
    ) -> list[list[Hit]]:
        rows = None
        if with_payload or with_vectors:
            rows = partial(self._store.rows, with_vectors=with_vectors)
        return hits(scores, labels, self._point_ids.ids, rows, with_payload)

    def found_hits(
        self, distances: np.ndarray, labels: np.ndarray, *, payload: bool, vectors: bool
    ) -> list[list[Hit]]:
        """The hits of a search's distances and labels [nq, k]."""
        if not (payload or vectors) and len(labels) == 1:
            return [query_hits(distances[0], labels[0], self._metric, self._point_ids.ids)]
        return self.hits(self._metric.scores(distances), labels, payload, vectors)

    def found_arrays(
        self, distances: np.ndarray, labels: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """A search's distances and labels as :meth:`Collection.search_arrays` gives them."""
        return self._point_ids.id_grid(labels), score_grid(self._metric, distances, labels)

    def rows(
        self, ids: Sequence[PointId], with_vectors: bool
    ) -> tuple[list[tuple[PointId, int | None]], dict[int, tuple[str, bytes | None]]]:
        """The label of each id (None where it does not exist) and the stored rows of
        those that do, for :func:`points` to decode outside the lock."""
        found = [(i, self._point_ids.label(i)) for i in ids]
        labels = np.array([lb for _, lb in found if lb is not None], dtype=np.int64)
        return found, self._store.rows(labels, with_vectors=with_vectors)

    def page(
        self, cursor: str | None, limit: int, filter: dict[str, Any] | None, with_vectors: bool
    ) -> list[tuple[int, str, str, bytes | None]]:
        """Up to ``limit`` stored rows after ``cursor`` in key order, matching ``filter``:
        from the payload indexes when they answer it, else from the store."""
        compiled = compile_filter(filter) if filter is not None else None
        indexed = self._payload_indexes.select(filter) if filter is not None else None
        if indexed is not None:
            allowed = LabelSet(indexed)
            return page_of(self._store, self._point_ids, allowed, cursor, limit, with_vectors)
        return self._store.page(
            cursor,
            limit,
            compiled.where if compiled else None,
            compiled.params if compiled else (),
            with_vectors=with_vectors,
        )

    def thumbnail(self, id: PointId, collection: str) -> bytes | None:
        """The stored thumbnail of a point, None if it has none; raises
        :class:`PointNotFound` if the point does not exist."""
        if self._point_ids.label(id) is None:
            raise PointNotFound(f"collection {collection!r} has no point with id {id!r}")
        return self._store.thumbnail(encode_id(id))

    def recommend(
        self,
        strategy: Strategy,
        positive: Sequence[Example],
        negative: Sequence[Example],
        k: int,
        filter: dict[str, Any] | None,
        params: SearchParams,
    ) -> tuple[np.ndarray, np.ndarray]:
        """(scores [1, k'], labels [1, k']) of :meth:`Collection.recommend`."""
        stored = partial(self._store.vectors, dim=self._dim)
        parts = (self._dim, self._metric, self._point_ids.label, stored)
        pos, pos_labels = recommending.examples(positive, *parts)
        neg, neg_labels = recommending.examples(negative, *parts)
        return recommending.recommend(
            strategy,
            pos,
            neg,
            np.union1d(pos_labels, neg_labels),
            k,
            self.allowed(filter) if filter is not None else None,
            lambda queries, n, allowed: self.search(queries, n, params, allowed),
            stored,
            self._metric,
        )


def points(
    found: list[tuple[PointId, int | None]], rows: dict[int, tuple[str, bytes | None]]
) -> list[Point]:
    """The points of :meth:`Reader.rows`, in the order asked; missing ids left out."""
    return [
        Point(point_id, orjson.loads(rows[label][0]), vector(rows[label][1]))
        for point_id, label in found
        if label is not None and label in rows
    ]


def page_points(
    rows: list[tuple[int, str, str, bytes | None]], limit: int
) -> tuple[list[Point], str | None]:
    """A page of :meth:`Reader.page` rows (fetched one past ``limit``) as points, and the
    cursor of the next page (None at the end)."""
    points = [Point(decode_id(key), orjson.loads(p), vector(v)) for _, key, p, v in rows[:limit]]
    return points, (rows[limit - 1][1] if len(rows) > limit else None)

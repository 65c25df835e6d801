"""The collection's side of hybrid retrieval: the query pipeline's source of rankings, and
the background indexing of a full-text backlog.

:class:`CollectionSource` answers the pipeline's stages from one collection (dense stages
from its FAISS index, lexical ones from its FTS5 table); :class:`FullTextIndexer` works
through the points that were there before a full-text declaration, in batches, each its
own short transaction under the collection's write lock.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from indexer.collection.background import BatchedWork
from indexer.errors import FullTextNotDeclared, PointNotFound
from indexer.filters import compile_filter
from indexer.fulltext import FullTextSpec
from indexer.indexes import LabelSet
from indexer.points import Hit, PointId, validate_id
from indexer.query.fusion import Ranking
from indexer.query.lexical import match_expression
from indexer.query.plan import DenseQuery, LexicalQuery
from indexer.spec import SearchParams
from indexer.store import SqliteStore

if TYPE_CHECKING:
    from indexer.collection import Collection

FULL_TEXT_BATCH = 2000  # points a background batch indexes, in one short transaction


@dataclass(frozen=True, slots=True)
class _PreparedDense:
    vectors: np.ndarray | None  # [1, dim] as the index takes them, or None for a point id
    scale: np.ndarray | None
    point_id: PointId | None
    params: SearchParams


class CollectionSource:
    """The :class:`~indexer.query.pipeline.QuerySource` of one collection."""

    def __init__(self, collection: Collection) -> None:
        self._c = collection

    @contextmanager
    def reading(self) -> Iterator[None]:
        with self._c._rw.read():
            self._c._check_open()
            yield

    def prepare_dense(self, query: DenseQuery) -> _PreparedDense:
        params = SearchParams.parse(query.params)
        if query.point_id is not None:
            return _PreparedDense(None, None, validate_id(query.point_id), params)
        if query.vector is not None:
            vectors, scale = self._c._reader.queries(query.vector)
        else:
            kind, given = (
                ("texts", [query.text]) if query.text is not None else ("images", [query.image])
            )
            vectors, scale = self._c._reader.queries(self._c._embed(kind, given))
        return _PreparedDense(vectors, scale, None, params)

    def dense_ranking(
        self, prepared: _PreparedDense, limit: int, filter: dict[str, Any] | None
    ) -> Ranking:
        c = self._c
        allowed = c._reader.allowed(filter) if filter is not None else None
        vectors, scale, exclude = prepared.vectors, prepared.scale, None
        if prepared.point_id is not None:
            exclude = c._point_ids.label(prepared.point_id)
            if exclude is None:
                raise PointNotFound(f"point {prepared.point_id!r} does not exist")
            label = np.array([exclude], dtype=np.int64)
            vectors = c.metric.prepare(c.store.vectors(label, c.dim))
            if allowed is not None:
                allowed = LabelSet(allowed.labels[allowed.labels != exclude])
            else:
                limit += 1  # the point itself comes first; it is dropped below
        assert vectors is not None
        distances, labels = c._reader.search(vectors, limit, prepared.params, allowed, scale)
        found = labels[0] >= 0
        if exclude is not None:
            found &= labels[0] != exclude
        scores = c.metric.scores(distances[0][found]).astype(np.float64)
        return Ranking(labels[0][found][:limit], scores[:limit])

    def lexical_ranking(
        self, query: LexicalQuery, limit: int, filter: dict[str, Any] | None
    ) -> Ranking:
        store = self._c.store
        spec = store.full_text
        if spec is None:
            raise FullTextNotDeclared(
                f"collection {self._c.name!r} has no full-text fields; declare them first"
            )
        match = match_expression(query.text, query.match)
        if match is None:
            return Ranking(np.empty(0, np.int64), np.empty(0))
        compiled = compile_filter(filter) if filter is not None else None
        labels, scores = store.lexical(
            spec,
            match,
            limit,
            compiled.where if compiled else None,
            compiled.params if compiled else (),
        )
        return Ranking(labels, scores)

    def full_text_partial(self) -> dict[str, int] | None:
        if not self._c.store.has_full_text_backlog():
            return None  # the usual case, answered without counting points
        pending, total = self._c.store.full_text_backlog()
        return {"indexed": total - pending, "total": total} if pending else None

    def vectors(self, labels: np.ndarray) -> np.ndarray:
        c = self._c
        prepared: np.ndarray = c.metric.prepare(c.store.vectors(labels, c.dim))
        return prepared

    def hits(
        self, labels: np.ndarray, scores: np.ndarray, *, payload: bool, vectors: bool
    ) -> list[Hit]:
        if not len(labels):
            return []
        return self._c._reader.hits(scores[None, :], labels[None, :], payload, vectors)[0]


class FullTextIndexer(BatchedWork):
    """Indexes a collection's full-text backlog, batch by batch: in a thread when the
    engine runs background work, else on ``optimize()`` (:meth:`run_now`)."""

    def __init__(self, collection: Collection, background: bool) -> None:
        self._c = collection
        self._background = background
        super().__init__(
            f"vecserve-{collection.name}-full-text",
            f"collection {collection.name}: full-text indexing failed",
        )

    def declare(self, spec: FullTextSpec | None) -> None:
        """Declare the full-text fields (None: drop them), then :meth:`resume`."""
        with self._c._write_lock, self._c._transaction() as txn:
            txn.set_full_text(spec)
        self.resume()

    def resume(self) -> None:
        """Work through the backlog, if there is one, in a thread (with background work)."""
        if self._background and self._c.store.has_full_text_backlog():
            self.start()

    def step(self) -> bool:
        """Index one batch; whether a backlog remains."""
        c = self._c
        if c._is_closed() or not c.store.has_full_text_backlog():
            return False  # nothing to write: no transaction (each one bumps the seq)
        with c._write_lock:
            if c._is_closed():
                return False
            with c._transaction() as txn:
                more: bool = txn.index_full_text(FULL_TEXT_BATCH)
        return more


def full_text_status(store: SqliteStore) -> dict[str, Any] | None:
    """The full-text declaration and its progress (see :attr:`Collection.full_text`)."""
    spec = store.full_text
    if spec is None:
        return None
    pending, total = store.full_text_backlog()
    return {
        **spec.model_dump(mode="json"),
        "state": "indexing" if pending else "ready",
        "indexed": total - pending,
        "total": total,
    }

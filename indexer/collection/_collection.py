"""The collection facade: the public API and all the locking; the work is done by the
package's lock-free parts."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from indexer.collection.background import BackgroundWork
from indexer.collection.config import CollectionConfig, stored_uid
from indexer.collection.hybrid import CollectionSource, FullTextIndexer, full_text_status
from indexer.collection.lifecycle import Lifecycle
from indexer.collection.payload_fields import PayloadIndexBuilder
from indexer.collection.plain_search import PlainSearch
from indexer.collection.point_ids import PointIds
from indexer.collection.reader import Reader, page_points, points
from indexer.collection.recommend import Example, Strategy, check_request
from indexer.collection.served_index import RebuildBacklog, ServedIndex
from indexer.collection.upkeep import IndexBuildObserver, IndexUpkeep
from indexer.collection.validation import check_k, check_limit
from indexer.collection.writes import delete_rows, delete_target, prepare_upsert
from indexer.devices import Placement
from indexer.embedders import Embedder, EmbedderRegistry, ImageInput, inputs
from indexer.errors import CollectionNotFound, ThumbnailNotFound
from indexer.field_index import FieldType
from indexer.fulltext import FullTextSpec
from indexer.indexes import FaissIndex
from indexer.locks import ReadWriteLock
from indexer.metric import Metric
from indexer.payload_index import PayloadIndexes, parse_declaration
from indexer.points import Hit, Point, PointId, validate_id, validate_ids
from indexer.query import QueryPlan, QueryResult, RerankerRegistry, run_query
from indexer.spec import SearchParams
from indexer.store import SqliteStore

_Answer = TypeVar("_Answer")


class Collection:
    """A named set of points: ids, vectors and JSON payloads.

    Writes commit to SQLite before they return; searches run on the FAISS index, which is
    kept up to date under a readers-writer lock, so a search never sees half a batch.
    Obtain collections from :class:`indexer.Engine`.
    """

    def __init__(
        self,
        folder: Path,
        store: SqliteStore,
        *,
        placement: Placement,
        background: bool,
        embedders: EmbedderRegistry,
        rerankers: RerankerRegistry | None = None,
        on_index_build: IndexBuildObserver | None = None,
    ) -> None:
        self.folder = folder
        self.store = store
        self.config = CollectionConfig.model_validate(store.get_meta("config"))
        self.uid = stored_uid(store)
        self._embedders = embedders
        self._rerankers = rerankers or RerankerRegistry()
        self._rw = ReadWriteLock()
        self._write_lock = threading.Lock()  # one writer at a time, before the RW lock
        self._backlog = RebuildBacklog()
        self._point_ids = PointIds(store.all_keys())
        self._payload_indexes = PayloadIndexes(self._point_ids.live())
        self._payload_indexes.declare(parse_declaration(store.get_meta("payload_indexes") or {}))
        self._stored = partial(store.iter_vectors, self.dim)
        upkeep = IndexUpkeep(self.config, folder, placement, on_index_build)
        self._served = ServedIndex(upkeep, self._stored, store.seq, self._point_ids.live())
        self._reader = Reader(
            store,
            self.dim,
            self.metric,
            self._point_ids,
            lambda: self._served.index,
            self._stored,
            self._payload_indexes,
        )
        self._full_text_indexer = FullTextIndexer(self, background)
        self._payload_builder = PayloadIndexBuilder(self, background)
        self._maintenance = BackgroundWork(
            f"vecserve-{self.name}",
            self.optimize,
            f"collection {self.name}: background maintenance failed",
        )
        self._lifecycle = Lifecycle(
            self._served,
            self._point_ids,
            self._backlog,
            write_lock=self._write_lock,
            rw=self._rw,
            seq=lambda: store.seq,
            close_store=store.close,
            maintenance=self._maintenance,
            background=background,
            batched=(self._full_text_indexer, self._payload_builder),
        )
        self._plain = PlainSearch(
            self.dim,
            self.metric,
            self._rw,
            self._served,
            self._point_ids,
            self._lifecycle,
            partial(store.rows, with_vectors=False),
        )
        self._full_text_indexer.resume()  # a backlog left by a restart, or a restore
        self._payload_builder.backfill()  # the points already there, whose values are on disk

    # -- properties ----------------------------------------------------------------------

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def dim(self) -> int:
        return self.config.dim

    @property
    def metric(self) -> Metric:
        return self.config.metric

    @property
    def writing(self) -> bool:
        """Whether a write holds the index, or waits for it: a search starting now would
        wait for the write (a hint: it may change the next moment)."""
        return self._rw.readers_wait

    @property
    def index_info(self) -> dict[str, Any]:
        """What serves the collection now: family, storage, device, default knob."""
        return self._served.index.info

    @property
    def search_plans(self) -> dict[str, int]:
        """How many searches each plan answered since the collection opened (see
        :class:`indexer.collection.search.PlanCounts`): with a filter, an exact scan of
        the matches, the index with a widened knob, or an over-fetch kept to the matches."""
        return self._reader.plan_counts.snapshot()

    @property
    def full_text(self) -> dict[str, Any] | None:
        """The full-text declaration and its progress, or None without one: ``{fields,
        tokenizer, state: "indexing" | "ready", indexed, total}``."""
        return full_text_status(self.store)

    @property
    def payload_indexes(self) -> dict[str, dict[str, Any]]:
        """The indexed payload fields and their progress: ``{path: {type, state:
        "indexing" | "ready", indexed, total}}``."""
        with self._rw.read():
            self._check_open()
            return self._payload_indexes.status()

    @property
    def payload_fields(self) -> dict[str, FieldType]:
        """The declared payload indexes: ``{path: type}``."""
        return self._payload_indexes.declared()

    def count(self, filter: dict[str, Any] | None = None) -> int:
        """Points in the collection, or matching ``filter``."""
        with self._rw.read():
            self._check_open()
            return len(self._point_ids) if filter is None else len(self._reader.allowed(filter))

    # -- writes ------------------------------------------------------------------------

    def upsert(
        self,
        ids: Sequence[PointId],
        vectors: Any = None,
        payloads: Sequence[dict[str, Any] | None] | None = None,
        *,
        texts: Sequence[str] | None = None,
        images: Sequence[ImageInput] | None = None,
        store_source: bool | None = None,
    ) -> int:
        """Insert or replace points (vector and whole payload), from exactly one of
        ``vectors``, ``texts`` or ``images``; all of the batch or none of it, committed
        when it returns. Returns the count. ``store_source`` keeps each text, or image
        hash, in the payload under ``"_source"``."""
        batch = prepare_upsert(
            self.config, self._embed, ids, vectors, payloads, texts, images, store_source
        )
        self._backlog.wait_for_room(len(batch.ids), lambda: len(self._point_ids))
        with self._write_lock, self._transaction() as txn:
            labels, replaced = txn.upsert(
                batch.keys, batch.vectors, batch.payloads, batch.thumbnails
            )
            staged = self._served.stage(labels, batch.prepared, self._rw.write)
            try:
                with self._rw.write():
                    txn.commit()
                    self._point_ids.upserted(batch.keys, labels, batch.ids, replaced)
                    self._payload_indexes.upserted(labels, batch.payload_values, replaced)
                    self._served.upserted(
                        labels, batch.prepared, replaced, staged, self._point_ids.live
                    )
            finally:
                if staged and not txn.committed:
                    with self._rw.write():
                        self._served.index.unstage()
        self._lifecycle.wrote(len(batch.ids))
        return len(batch.ids)

    def delete(
        self, ids: Sequence[PointId] | None = None, *, filter: dict[str, Any] | None = None
    ) -> int:
        """Delete points by id or by filter (exactly one); returns how many were deleted
        (ids that do not exist are ignored)."""
        keys, compiled = delete_target(ids, filter)
        with self._write_lock, self._transaction() as txn:
            # The payload indexes change only under the write lock: they match the store.
            indexed = self._payload_indexes.select(filter) if filter is not None else None
            labels = delete_rows(txn, keys, compiled, indexed)
            if not len(labels):
                return 0
            with self._rw.write():
                txn.commit()
                self._point_ids.deleted(labels)
                self._payload_indexes.deleted(labels)
                self._served.apply(lambda index: index.remove(labels), self._point_ids.live)
        self._lifecycle.wrote(len(labels))
        return len(labels)

    def set_full_text(self, full_text: FullTextSpec | dict[str, Any] | list[Any] | None) -> None:
        """Declare the full-text fields (replacing any before), or drop them with None:
        ``{"fields": [{"path": "title", "weight": 2}, "_source.text"], "tokenizer":
        "unicode61" | "porter" | "trigram"}``, or a list of fields. The points already
        there are indexed in the background (see :attr:`full_text`), or by :meth:`optimize`.
        """
        self._full_text_indexer.declare(
            None if full_text is None else FullTextSpec.parse(full_text)
        )

    def create_payload_index(self, field: str, type: FieldType) -> None:
        """Index a payload field for filters (replacing its index of another type):
        ``type`` is ``"keyword"`` (strings, booleans, arrays of them) or ``"number"``. The
        points already there are indexed in the background (see :attr:`payload_indexes`),
        or now when the engine runs no background work."""
        self._payload_builder.declare(lambda fields: {**fields, field: type})

    def drop_payload_index(self, field: str) -> None:
        """Stop indexing a payload field (nothing happens if it is not indexed)."""
        self._payload_builder.declare(
            lambda fields: {p: t for p, t in fields.items() if p != field}
        )

    # -- reads ---------------------------------------------------------------------------

    def get(self, ids: Sequence[PointId], *, with_vectors: bool = True) -> list[Point]:
        """The points with these ids, in the order asked; ids that do not exist are left out."""
        checked = validate_ids(ids, unique=False)
        with self._rw.read():
            self._check_open()
            found, rows = self._reader.rows(checked, with_vectors)
        return points(found, rows)

    def thumbnail(self, id: PointId) -> bytes:
        """The thumbnail (a JPEG) of an image point, kept when the collection was made with
        ``thumbnails=True``. Raises PointNotFound, or ThumbnailNotFound for a point without
        one."""
        checked = validate_id(id)
        with self._rw.read():
            self._check_open()
            image = self._reader.thumbnail(checked, self.name)
        if image is None:
            raise ThumbnailNotFound(f"point {id!r} of collection {self.name!r} has no thumbnail")
        return image

    def scroll(
        self,
        limit: int = 100,
        cursor: str | None = None,
        *,
        filter: dict[str, Any] | None = None,
        with_vectors: bool = False,
    ) -> tuple[list[Point], str | None]:
        """A page of points in a stable order, and the cursor of the next page (None at the end)."""
        check_limit(limit)
        with self._rw.read():
            self._check_open()
            rows = self._reader.page(cursor, limit + 1, filter, with_vectors)
        return page_points(rows, limit)

    def search(
        self,
        queries: Any = None,
        k: int = 10,
        *,
        texts: Sequence[str] | None = None,
        images: Sequence[ImageInput] | None = None,
        filter: dict[str, Any] | None = None,
        params: SearchParams | dict[str, Any] | None = None,
        with_payload: bool = True,
        with_vectors: bool = False,
    ) -> list[list[Hit]]:
        """The k nearest points to each query (one vector or a batch [nq, dim], or
        ``texts`` or ``images`` to embed), best first: one list of hits per query. With
        ``filter``, k matching points whenever k match; ``params`` tunes the index
        (``nprobe``, ``ef_search``) or asks for an ``exact`` search."""
        if texts is not None or images is not None or queries is None:
            kind, given = inputs.one_input("search", queries, texts, images)
            if kind != "vectors":
                queries = self._embed(kind, given)
        elif filter is None and params is None and not with_vectors:
            one = self._plain.hits(queries, k, with_payload)  # the most common search, first
            if one is not None:
                return [one]
        found = partial(self._reader.found_hits, payload=with_payload, vectors=with_vectors)
        return self._searched(queries, k, filter, params, found)

    def query(self, plan: QueryPlan | dict[str, Any]) -> QueryResult:
        """Run a query pipeline (see :mod:`indexer.query.plan`): prefetch stages, fusion,
        an optional rerank, then offset and limit.

        >>> collection.query({"prefetch": [{"dense": {"text": "red shoes"}},
        ...                                {"lexical": {"text": "red shoes"}}],
        ...                   "fusion": {"method": "rrf"}, "limit": 10}).hits
        """
        return run_query(QueryPlan.parse(plan), CollectionSource(self), self._rerankers)

    def search_arrays(
        self,
        queries: Any,
        k: int = 10,
        *,
        filter: dict[str, Any] | None = None,
        params: SearchParams | dict[str, Any] | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`search` as arrays for batch work, without hit objects or payloads:
        ``(ids, scores)``, an object array of user ids and float32 scores [nq, k'], best
        first, with k' = min(k, the points that may match); a row that found fewer ends in
        ``None`` ids and NaN scores."""
        if filter is None and params is None:
            one = self._plain.arrays(queries, k)  # the most common search, first
            if one is not None:
                return one
        return self._searched(queries, k, filter, params, self._reader.found_arrays)

    def _searched(
        self,
        queries: Any,
        k: object,
        filter: dict[str, Any] | None,
        params: SearchParams | dict[str, Any] | None,
        found: Callable[[np.ndarray, np.ndarray], _Answer],
    ) -> _Answer:
        """``found(distances, labels)`` of the ``k`` nearest points to ``queries``, under
        the read lock (the most common search, one vector and nothing else, has been
        offered to :class:`PlainSearch` first)."""
        vecs, scale = self._reader.queries(queries)
        checked_k = check_k(k)
        search_params = SearchParams.parse(params)
        with self._rw.read():
            self._check_open()
            distances, labels = self._reader.nearest(vecs, checked_k, search_params, filter, scale)
            return found(distances, labels)

    def recommend(
        self,
        positive: Sequence[Example],
        negative: Sequence[Example] = (),
        k: int = 10,
        *,
        strategy: Strategy = "average",
        filter: dict[str, Any] | None = None,
        params: SearchParams | dict[str, Any] | None = None,
        with_payload: bool = True,
        with_vectors: bool = False,
    ) -> list[Hit]:
        """Points like the ``positive`` examples and unlike the ``negative`` ones (point
        ids or vectors, never in the results); the strategies are in
        :mod:`indexer.collection.recommend`."""
        check_request(positive, strategy)
        k = check_k(k)
        search_params = SearchParams.parse(params)
        with self._rw.read():
            self._check_open()
            scores, labels = self._reader.recommend(
                strategy, positive, negative, k, filter, search_params
            )
            return self._reader.hits(scores, labels, with_payload, with_vectors)[0]

    # -- embedding -----------------------------------------------------------------------

    @property
    def embedder(self) -> Embedder:
        """The model that embeds this collection's texts and images, loaded on first use
        (InvalidEmbedderInput without one, EmbedderUnavailable if it cannot load)."""
        return inputs.embedder_for(
            self._embedders, self.name, self.config.embedder, self.config.dim
        )

    def embed(
        self, *, texts: Sequence[str] | None = None, images: Sequence[ImageInput] | None = None
    ) -> np.ndarray:
        """Vectors of ``texts`` or ``images`` by the collection's embedder, [n, dim] float32
        of unit norm: what upsert and search would use (and examples for recommend)."""
        kind, given = inputs.one_input("embed", None, texts, images)
        return self._embed(kind, given)

    def _embed(self, kind: str, given: Any) -> np.ndarray:
        return inputs.embed(self.embedder, kind, given)

    # -- maintenance and close: see indexer.collection.lifecycle ------------------------

    def optimize(self) -> None:
        """Do now what maintenance would do in the background: move to the right index
        family, retrain, compact tombstones, save the index, and index the full-text
        and payload backlogs."""
        self._lifecycle.optimize()

    def close(self) -> None:
        """Finish background work, save the index if it is far behind its file, and close
        the store, once the writes and searches in flight are done; later calls raise
        :class:`CollectionNotFound`."""
        self._lifecycle.close()

    @property
    def _index(self) -> FaissIndex:
        """The index served now (tests and benchmarks look inside it)."""
        return self._served.index

    def _is_closed(self) -> bool:
        return self._lifecycle.closed

    def _check_open(self) -> None:
        if self._lifecycle.closed:
            raise CollectionNotFound(
                f"collection {self.name!r} was dropped (or its engine closed) during the call"
            )

    def _transaction(self) -> Any:
        """The store's write transaction, for a collection still open (write lock held)."""
        self._check_open()
        return self.store.transaction()

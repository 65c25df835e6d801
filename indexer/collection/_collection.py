"""The collection facade: the public API and all the locking; the work is done by the
package's lock-free parts."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from indexer.collection.background import BackgroundWork
from indexer.collection.config import CollectionConfig, stored_uid
from indexer.collection.hybrid import CollectionSource, FullTextIndexer, full_text_status
from indexer.collection.payload_fields import PayloadIndexBuilder
from indexer.collection.point_ids import PointIds
from indexer.collection.reader import Reader, page_points, points
from indexer.collection.recommend import Example, Strategy, check_request
from indexer.collection.results import score_grid
from indexer.collection.served_index import RebuildBacklog, ServedIndex
from indexer.collection.upkeep import IndexBuildObserver, IndexUpkeep
from indexer.collection.validation import MAX_K, check_k, check_limit
from indexer.collection.writes import delete_rows, delete_target, prepare_upsert
from indexer.devices import Placement
from indexer.embedders import Embedder, EmbedderRegistry, ImageInput, inputs
from indexer.errors import CollectionNotFound, ThumbnailNotFound
from indexer.fulltext import FullTextSpec
from indexer.indexes import FaissIndex
from indexer.locks import ReadWriteLock
from indexer.metric import Metric
from indexer.payload_index import FieldType, PayloadIndexes, parse_declaration
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
        self._background = background
        self._rw = ReadWriteLock()
        self._write_lock = threading.Lock()  # one writer at a time, before the RW lock
        self._optimize_lock = threading.Lock()
        self._backlog = RebuildBacklog()
        self._point_ids = PointIds(store.all_keys())
        self._payload_indexes = PayloadIndexes(self._point_ids.live())
        self._payload_indexes.declare(parse_declaration(store.get_meta("payload_indexes") or {}))
        self._stored = partial(store.iter_vectors, self.dim)
        upkeep = IndexUpkeep(self.config, folder, placement, on_index_build)
        self._served = ServedIndex(upkeep, self._stored, store.seq, self._point_ids.live())
        self._closed = False
        self._reader = Reader(
            store,
            self.dim,
            self.metric,
            self._point_ids,
            lambda: self._served.index,
            self._stored,
            self._payload_indexes,
        )
        self._maintenance = BackgroundWork(
            f"vecserve-{self.name}",
            self.optimize,
            f"collection {self.name}: background maintenance failed",
        )
        self._full_text_indexer = FullTextIndexer(self)
        if self._background:
            self._full_text_indexer.start()  # a backlog left by a restart, or a restore
        self._payload_builder = PayloadIndexBuilder(self, background)
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
    def full_text(self) -> dict[str, Any] | None:
        """The full-text declaration and its progress, or None without one:
        ``{fields, tokenizer, state: "indexing" | "ready", indexed, total}``. While
        ``indexing``, lexical search covers the ``indexed`` points so far (the points
        written since the declaration among them)."""
        return full_text_status(self.store)

    @property
    def payload_indexes(self) -> dict[str, dict[str, Any]]:
        """The indexed payload fields and their progress: ``{path: {type, state:
        "indexing" | "ready", indexed, total}}``. While ``indexing``, filters on the field
        are answered from the payloads, as on a field not indexed."""
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
        """Insert or replace points; all of the batch or none of it. Returns the count.

        Give exactly one of ``vectors``, ``texts`` or ``images``; texts and images are
        embedded by the collection's embedder. ``store_source`` (default: the collection's
        setting) keeps each text, or image hash, in the payload under ``"_source"``.
        Replacing an id replaces its vector and its whole payload. The call returns once
        the batch is committed to the store.
        """
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
        self._after_write(len(batch.ids))
        return len(batch.ids)

    def delete(
        self, ids: Sequence[PointId] | None = None, *, filter: dict[str, Any] | None = None
    ) -> int:
        """Delete points by id or by filter (exactly one); returns how many were deleted.

        Ids that do not exist are ignored, so a repeated delete is harmless.
        """
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
        self._after_write(len(labels))
        return len(labels)

    def set_full_text(self, full_text: FullTextSpec | dict[str, Any] | list[Any] | None) -> None:
        """Declare the full-text fields (replacing any before), or drop them with None.

        ``full_text``: ``{"fields": [{"path": "title", "weight": 2}, "_source.text"],
        "tokenizer": "unicode61" | "porter" | "trigram"}``, or a list of fields. Points
        written from now on are indexed with their write; those already there are indexed
        in the background in batches (see :attr:`full_text` for progress), or now by
        :meth:`optimize` when the engine runs no background work.
        """
        spec = None if full_text is None else FullTextSpec.parse(full_text)
        with self._write_lock, self._transaction() as txn:
            txn.set_full_text(spec)
        if self._background:
            self._full_text_indexer.start()

    def create_payload_index(self, field: str, type: FieldType) -> None:
        """Index a payload field for filters (replacing its index of another type).

        ``type``: ``"keyword"`` (strings and booleans, and arrays of them: equality,
        ``$in``, ``$ne``, ``$nin`` and ranges of strings) or ``"number"`` (integers and
        floats: those and ranges of numbers); either answers ``$exists`` and nulls too.
        A filter whose every condition is on indexed fields is then answered from the
        indexes, without reading payloads. Points written from now on are indexed with
        their write; those already there in the background (see :attr:`payload_indexes`),
        or now when the engine runs no background work.
        """
        self._declare_payload_indexes(lambda fields: {**fields, field: type})

    def drop_payload_index(self, field: str) -> None:
        """Stop indexing a payload field (nothing happens if it is not indexed)."""
        self._declare_payload_indexes(
            lambda fields: {p: t for p, t in fields.items() if p != field}
        )

    def _declare_payload_indexes(
        self, change: Callable[[dict[str, FieldType]], dict[str, Any]]
    ) -> None:
        with self._write_lock:
            fields = parse_declaration(change(self.payload_fields))
            with self._transaction() as txn:
                txn.set_payload_indexes(dict(fields))
                with self._rw.write():
                    txn.commit()
                    self._payload_indexes.declare(fields)
        self._payload_builder.backfill()

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
        ``thumbnails=True``.

        Raises:
            PointNotFound: no point has this id.
            ThumbnailNotFound: the point has none (not an image, or written before
                thumbnails were kept).
        """
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
        """The k nearest points to each query, best first: one list of hits per query.

        ``queries`` is one vector or a batch [nq, dim]; or give ``texts`` or ``images``
        instead, which the collection's embedder turns into query vectors. With ``filter``,
        only matching points are returned, and k of them whenever k points match.
        ``params`` tunes the index (``nprobe``, ``ef_search``) or asks for an ``exact``
        search.
        """
        if texts is not None or images is not None or queries is None:
            kind, given = inputs.one_input("search", queries, texts, images)
            if kind != "vectors":
                queries = self._embed(kind, given)
        elif not (with_payload or with_vectors):
            found = self._plain_single(queries, k, filter, params, self._reader.single_hits)
            if found is not None:
                return [found]
        with self._nearest(queries, k, filter, params) as (distances, labels):
            if len(labels) == 1 and not (with_payload or with_vectors):
                return [self._reader.query_hits(distances[0], labels[0])]
            scores = self.metric.scores(distances)
            return self._reader.hits(scores, labels, with_payload, with_vectors)

    def query(self, plan: QueryPlan | dict[str, Any]) -> QueryResult:
        """Run a query pipeline: prefetch stages (dense by vector, text, image or point id;
        lexical by text), fusion, an optional rerank, then offset and limit. See
        :mod:`indexer.query.plan` for the plan and :mod:`indexer.query.fusion` for what the
        fused scores mean.

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
        """The same search as :meth:`search`, as arrays for batch work: ``(ids, scores)``.

        ``ids`` is an object array [nq, k'] of user ids and ``scores`` a float32 array
        [nq, k'], best first, with k' = min(k, the points that may match: all of them, or
        those matching ``filter``); where a row found fewer than k', it ends in ``None``
        ids and NaN scores. No hit objects are built and no payloads read, so a large batch
        costs little more than the FAISS search itself.
        """
        found = self._plain_single(queries, k, filter, params, self._reader.single_arrays)
        if found is not None:
            return found
        with self._nearest(queries, k, filter, params) as (distances, labels):
            ids = self._point_ids.id_grid(labels)
        return ids, score_grid(self.metric, distances, labels)

    def _plain_single(
        self,
        queries: Any,
        k: object,
        filter: dict[str, Any] | None,
        params: SearchParams | dict[str, Any] | None,
        answer: Callable[[np.ndarray, float, int], _Answer | None],
    ) -> _Answer | None:
        """``answer`` (the reader's hits or arrays of one query) for the most common
        search, one vector and nothing else, in as few steps as can answer it (see
        :meth:`FaissIndex.search_one`); None where the search is another, or the index
        cannot answer it in one call: :meth:`_nearest` takes it then."""
        if filter is not None or params is not None or type(k) is not int or not 0 < k <= MAX_K:
            return None
        single = self._reader.single_query(queries)
        if single is None:
            return None
        with self._rw.read():
            self._check_open()
            return answer(single[0], single[1], k)

    @contextmanager
    def _nearest(
        self,
        queries: Any,
        k: int,
        filter: dict[str, Any] | None,
        params: SearchParams | dict[str, Any] | None,
    ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """The distances and labels of the ``k`` nearest points to ``queries``, with the
        read lock held until the caller is done with them."""
        vecs, scale = self._reader.queries(queries)
        k = check_k(k)
        search_params = SearchParams.parse(params)
        with self._rw.read():
            self._check_open()
            yield self._reader.nearest(vecs, k, search_params, filter, scale)

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
        """Points like the positive examples and unlike the negative ones.

        Examples are point ids or vectors; example points never appear in the results.

        - ``average`` searches from ``p + (p - n)``, with p and n the means of the positive
          and negative examples (made unit length for cosine); scores are ordinary search
          scores.
        - ``best_score`` takes candidates near each positive example. One nearer (more
          similar) to its best positive than to every negative scores ``s(best positive
          similarity)`` in (0, 1); any other scores ``-s(best negative similarity)`` in
          (-1, 0), so points like a negative example rank last. s(x) = (x / (1 + |x|) + 1) / 2
          keeps the order of similarities; for l2, similarity is minus the distance.
        """
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
        """The model that embeds this collection's texts and images, loaded on first use.

        Raises:
            InvalidEmbedderInput: the collection has no embedder.
            EmbedderUnavailable: the model cannot be loaded on this server.
        """
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

    # -- maintenance: rebuilds, compaction, checkpoints -----------------------------------

    def _after_write(self, changed: int) -> None:
        self._backlog.wrote(changed)
        self._served.wrote(changed)
        if self._background and self._served.needs_upkeep(len(self._point_ids)):
            self._maintenance.start()

    def optimize(self) -> None:
        """Do now what maintenance would do in the background: move to the right index
        family, retrain, compact tombstones, save the index, and index the full-text
        backlog."""
        with self._optimize_lock:
            if self._closed:
                return
            if self._served.needs_rebuild(len(self._point_ids)):
                if not self._rebuild():
                    return
            elif self._served.needs_calibration():
                self._served.recalibrate(self._live(), self._search_labels)
            if self._served.unsaved:
                # Writes wait meanwhile, searches do not: under the read lock, a write
                # waiting for it would queue every search behind it for the whole save.
                with self._write_lock:
                    self._save_now()
        self._full_text_indexer.run_now()
        self._payload_builder.run_now()

    def _rebuild(self) -> bool:
        """Build a new index from the store and serve it; False if the collection closed
        meanwhile. Searches and writes go on with the old index all along: the points
        written during the build are added to the new one outside any lock, in rounds,
        and only the last few with writes held off (searches still go on); the lock that
        searches wait for is held for the swap alone."""
        with self._backlog.rebuilding():
            index = self._served.rebuilt(len(self._point_ids), self._live)
            with self._write_lock:  # no write starts: the index catches up with the last
                if self._is_closed():
                    return False
                self._served.catch_up(index, self._point_ids.live())
                with self._rw.write():
                    self._served.swap(index, len(self._point_ids))
            return True

    def _live(self) -> np.ndarray:
        """The live labels (a short hold of the read lock)."""
        with self._rw.read():
            return self._point_ids.live()

    def _search_labels(self, queries: np.ndarray, k: int, params: SearchParams) -> np.ndarray:
        """The serving index's labels for ``queries`` (a short hold of the read lock)."""
        with self._rw.read():
            return self._served.index.search(queries, k, params, None)[1]

    def _save_now(self) -> None:
        """Save the index (write lock held: nothing changes it)."""
        if self._closed:  # saved by close(); the folder may hold another collection now
            return
        self._served.save(self.store.seq)

    def close(self) -> None:
        """Finish background work, save the index if it is far behind its file (a few
        changes are cheaper to replay from the store on the next open than a rewrite of
        the whole file), and close the store.

        Writes and searches in flight finish first; later calls raise
        :class:`CollectionNotFound` (the collection was dropped, or its engine closed).
        """
        self._maintenance.stop()  # no maintenance starts from here on
        self._full_text_indexer.stop()
        self._payload_builder.stop()
        with self._write_lock:  # no write is running, and none starts
            if self._closed:
                return
            if self._served.save_on_close:
                self._save_now()
            with self._rw.write():  # the searches in flight are done
                self._closed = True
                self._served.index.release()
                self.store.close()

    @property
    def _index(self) -> FaissIndex:
        """The index served now (tests and benchmarks look inside it)."""
        return self._served.index

    def _is_closed(self) -> bool:
        return self._closed

    def _check_open(self) -> None:
        if self._closed:
            raise CollectionNotFound(
                f"collection {self.name!r} was dropped (or its engine closed) during the call"
            )

    def _transaction(self) -> Any:
        """The store's write transaction, for a collection still open (write lock held)."""
        self._check_open()
        return self.store.transaction()

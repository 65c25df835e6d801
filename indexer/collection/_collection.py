"""The collection facade: the public API and all the locking; the work is done by the
package's lock-free parts."""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from indexer.collection import recommend as recommending
from indexer.collection.config import CollectionConfig, new_uid
from indexer.collection.hybrid import CollectionSource, FullTextIndexer
from indexer.collection.point_ids import PointIds
from indexer.collection.recommend import Example, Strategy
from indexer.collection.results import hits, vector
from indexer.collection.search import FilterCache, search
from indexer.collection.upkeep import IndexBuildObserver, IndexUpkeep
from indexer.collection.validation import MAX_K, check_k, payload_json
from indexer.devices import Placement
from indexer.embedders import Embedder, EmbedderRegistry, ImageInput, inputs
from indexer.errors import CollectionNotFound, InvalidInput, PointNotFound, ThumbnailNotFound
from indexer.filters import compile_filter
from indexer.fulltext import FullTextSpec
from indexer.indexes import LabelSet
from indexer.locks import ReadWriteLock
from indexer.metric import Metric
from indexer.points import (
    Hit,
    Point,
    PointId,
    decode_id,
    encode_id,
    ensure_lengths,
    validate_id,
    validate_ids,
    vector_batch_and_squares,
)
from indexer.query import QueryPlan, QueryResult, RerankerRegistry, run_query
from indexer.spec import SearchParams
from indexer.store import SqliteStore
from indexer.thumbnails import make_thumbnail

log = logging.getLogger(__name__)


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
        uid = store.get_meta("uid")
        if not isinstance(uid, str):  # made by a version without identities
            uid = store.set_meta_once("uid", new_uid())
        self.uid: str = str(uid)
        self._embedders = embedders
        self._rerankers = rerankers or RerankerRegistry()
        self._background = background
        self._rw = ReadWriteLock()
        self._write_lock = threading.Lock()  # one writer at a time, before the RW lock
        self._maintain_lock = threading.Lock()
        self._optimize_lock = threading.Lock()
        self._maintain_thread: threading.Thread | None = None
        self._filter_cache = FilterCache()
        self._filter_cache_lock = threading.Lock()
        self._point_ids = PointIds(store.all_keys())
        self._stored = partial(store.iter_vectors, self.dim)
        self._upkeep = IndexUpkeep(self.config, folder, placement, on_index_build)
        self._closing = False
        self._closed = False
        self._index, behind = self._upkeep.open(store.seq, self._point_ids.live(), self._stored)
        self._unsaved = int(behind)
        self._full_text_indexer = FullTextIndexer(self)
        if self._background:
            self._full_text_indexer.start()  # a backlog left by a restart, or a restore

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
    def index_info(self) -> dict[str, Any]:
        """What serves the collection now: family, storage, device, default knob."""
        return self._index.info

    @property
    def full_text(self) -> dict[str, Any] | None:
        """The full-text declaration and its progress, or None without one:
        ``{fields, tokenizer, state: "indexing" | "ready", indexed, total}``. While
        ``indexing``, lexical search covers the ``indexed`` points so far (the points
        written since the declaration among them)."""
        spec = self.store.full_text
        if spec is None:
            return None
        pending, total = self.store.full_text_backlog()
        return {
            **spec.model_dump(mode="json"),
            "state": "indexing" if pending else "ready",
            "indexed": total - pending,
            "total": total,
        }

    def count(self, filter: dict[str, Any] | None = None) -> int:
        """Points in the collection, or matching ``filter``."""
        with self._rw.read():
            self._check_open()
            return len(self._point_ids) if filter is None else len(self._allowed(filter))

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
        checked = validate_ids(ids)
        if payloads is None:
            payloads = [None] * len(checked)
        kind, given = inputs.one_input("upsert", vectors, texts, images)
        thumbnails = None
        if kind != "vectors":
            ensure_lengths(kind, given, len(checked))
            vectors = self._embed(kind, given)
            if self.config.store_source if store_source is None else store_source:
                payloads = inputs.with_sources(payloads, kind, given)
            if kind == "images" and self.config.thumbnails:
                thumbnails = [make_thumbnail(image) for image in given]
        vecs, squares = vector_batch_and_squares(vectors, self.dim)
        ensure_lengths("vectors", vecs, len(checked))
        ensure_lengths("payloads", payloads, len(checked))
        payload_texts = [payload_json(p, i) for i, p in enumerate(payloads)]
        prepared = self.metric.prepare(vecs, squares)
        keys = [encode_id(i) for i in checked]
        with self._write_lock, self._transaction() as txn:
            labels, replaced = txn.upsert(keys, vecs, payload_texts, thumbnails)
            with self._rw.write():
                txn.commit()
                self._point_ids.upserted(keys, labels, checked, replaced)
                self._apply(lambda index: (index.remove(replaced), index.add(labels, prepared)))
        self._after_write(len(checked))
        return len(checked)

    def delete(
        self, ids: Sequence[PointId] | None = None, *, filter: dict[str, Any] | None = None
    ) -> int:
        """Delete points by id or by filter (exactly one); returns how many were deleted.

        Ids that do not exist are ignored, so a repeated delete is harmless.
        """
        if (ids is None) == (filter is None):
            raise InvalidInput("delete takes either ids or a filter")
        compiled = compile_filter(filter) if filter is not None else None
        keys = [encode_id(i) for i in validate_ids(ids)] if ids is not None else []
        with self._write_lock, self._transaction() as txn:
            if compiled is not None:
                labels = txn.delete_where(compiled.where, compiled.params)
            else:
                labels = txn.delete_keys(keys)
            if not len(labels):
                return 0
            with self._rw.write():
                txn.commit()
                self._point_ids.deleted(labels)
                self._apply(lambda index: index.remove(labels))
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

    def _apply(self, change: Any) -> None:
        """Apply a committed change to the index (write lock held). The store is already
        the truth: if the index fails to follow, it is reconciled with the store at once."""
        self._filter_cache.clear()
        try:
            change(self._index)
        except Exception:
            log.exception(
                "collection %s: index update failed; reconciling with the store", self.name
            )
            self._upkeep.reconcile(self._index, self._point_ids.live(), self._stored)

    # -- reads ---------------------------------------------------------------------------

    def get(self, ids: Sequence[PointId], *, with_vectors: bool = True) -> list[Point]:
        """The points with these ids, in the order asked; ids that do not exist are left out."""
        checked = validate_ids(ids, unique=False)
        with self._rw.read():
            self._check_open()
            found = [(i, self._point_ids.label(i)) for i in checked]
            labels = np.array([lb for _, lb in found if lb is not None], dtype=np.int64)
            rows = self.store.rows(labels, with_vectors=with_vectors)
        return [
            Point(point_id, orjson.loads(rows[label][0]), vector(rows[label][1]))
            for point_id, label in found
            if label is not None and label in rows
        ]

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
            if self._point_ids.label(checked) is None:
                raise PointNotFound(f"collection {self.name!r} has no point with id {id!r}")
            image = self.store.thumbnail(encode_id(checked))
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
        if not 1 <= limit <= MAX_K:
            raise InvalidInput(f"limit must be between 1 and {MAX_K}, got {limit}")
        compiled = compile_filter(filter) if filter is not None else None
        with self._rw.read():
            self._check_open()
            rows = self.store.page(
                cursor,
                limit + 1,
                compiled.where if compiled else None,
                compiled.params if compiled else (),
                with_vectors=with_vectors,
            )
        points = [
            Point(decode_id(key), orjson.loads(p), vector(v)) for _, key, p, v in rows[:limit]
        ]
        return points, (rows[limit - 1][1] if len(rows) > limit else None)

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
        kind, given = inputs.one_input("search", queries, texts, images)
        if kind != "vectors":
            queries = self._embed(kind, given)
        vecs, scale = self._queries(queries)
        k = check_k(k)
        search_params = SearchParams.parse(params)
        with self._rw.read():
            self._check_open()
            allowed = self._allowed(filter) if filter is not None else None
            distances, labels = self._search(vecs, k, search_params, allowed, scale)
            return self._hits(self.metric.scores(distances), labels, with_payload, with_vectors)

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
        vecs, scale = self._queries(queries)
        k = check_k(k)
        search_params = SearchParams.parse(params)
        with self._rw.read():
            self._check_open()
            allowed = self._allowed(filter) if filter is not None else None
            distances, labels = self._search(vecs, k, search_params, allowed, scale)
            ids = self._point_ids.id_grid(labels)
        scores = self.metric.scores(distances).astype(np.float32, copy=False)
        scores[labels < 0] = np.nan
        return ids, scores

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
        if len(positive) == 0:  # not `not positive`: an array of vectors has no truth value
            raise InvalidInput("recommend needs at least one positive example")
        if strategy not in ("average", "best_score"):
            raise InvalidInput(f"unknown strategy {strategy!r}; use 'average' or 'best_score'")
        k = check_k(k)
        search_params = SearchParams.parse(params)
        stored = partial(self.store.vectors, dim=self.dim)
        with self._rw.read():
            self._check_open()
            parts = (self.dim, self.metric, self._point_ids.label, stored)
            pos, pos_labels = recommending.examples(positive, *parts)
            neg, neg_labels = recommending.examples(negative, *parts)
            scores, labels = recommending.recommend(
                strategy,
                pos,
                neg,
                np.union1d(pos_labels, neg_labels),
                k,
                self._allowed(filter) if filter is not None else None,
                lambda queries, n, allowed: self._search(queries, n, search_params, allowed),
                stored,
                self.metric,
            )
            return self._hits(scores, labels, with_payload, with_vectors)[0]

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

    # -- searching (read lock held) ------------------------------------------------------

    def _allowed(self, filter: dict[str, Any]) -> LabelSet:
        """The labels matching a filter, cached until the next write."""
        compiled = compile_filter(filter)
        key = (compiled.where, compiled.params)
        # Readers share the cache: its lock keeps one reader's eviction from landing
        # between another's lookup and its move to the end.
        with self._filter_cache_lock:
            cached = self._filter_cache.get(key)
        if cached is not None:
            return cached
        allowed = LabelSet(self.store.select_labels(compiled.where, compiled.params))
        with self._filter_cache_lock:
            self._filter_cache.put(key, allowed)
        return allowed

    def _queries(self, queries: Any) -> tuple[np.ndarray, np.ndarray | None]:
        """Validated query vectors as the index takes them, and the factors for their
        distances (see :meth:`Metric.prepare_queries`)."""
        vecs, squares = vector_batch_and_squares(queries, self.dim)
        return self.metric.prepare_queries(vecs, squares)

    def _search(
        self,
        queries: np.ndarray,
        k: int,
        params: SearchParams,
        allowed: LabelSet | None,
        scale: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        return search(self._index, queries, k, params, allowed, self._stored, self.metric, scale)

    def _hits(
        self, scores: np.ndarray, labels: np.ndarray, with_payload: bool, with_vectors: bool
    ) -> list[list[Hit]]:
        rows = None
        if with_payload or with_vectors:
            rows = partial(self.store.rows, with_vectors=with_vectors)
        return hits(scores, labels, self._point_ids.ids, rows, with_payload)

    # -- maintenance: rebuilds, compaction, checkpoints -----------------------------------

    def _after_write(self, changed: int) -> None:
        self._unsaved += changed
        if self._background and self._upkeep.needs_upkeep(
            self._index, len(self._point_ids), self._unsaved
        ):
            with self._maintain_lock:
                if self._closing:
                    return
                if self._maintain_thread is None or not self._maintain_thread.is_alive():
                    self._maintain_thread = threading.Thread(
                        target=self._maintain_in_background,
                        name=f"vecserve-{self.name}",
                        daemon=True,
                    )
                    self._maintain_thread.start()

    def _maintain_in_background(self) -> None:
        try:
            self.optimize()
        except Exception:
            log.exception("collection %s: background maintenance failed", self.name)

    def optimize(self) -> None:
        """Do now what maintenance would do in the background: move to the right index
        family, retrain, compact tombstones, save the index, and index the full-text
        backlog."""
        with self._optimize_lock:
            if self._closed:
                return
            if self._upkeep.needs_rebuild(self._index, len(self._point_ids)):
                index = self._upkeep.build(self._stored, self._index.family)
                with self._write_lock, self._rw.write():
                    if self._is_closed():  # closed while the index was built
                        return
                    self._upkeep.reconcile(index, self._point_ids.live(), self._stored)
                    self._index.release()
                    self._upkeep.place(index)
                    self._index = index
                    self._filter_cache.clear()
                self._unsaved = 1
            if self._unsaved:
                self._save()
        self._full_text_indexer.run_now()

    def _save(self) -> None:
        with self._rw.read():
            if self._closed:  # saved by close(); the folder may hold another collection now
                return
            self._upkeep.save(self._index, self.store.seq)
            self._unsaved = 0

    def close(self) -> None:
        """Finish background work, save the index if it is behind, and close the store.

        Writes and searches in flight finish first; later calls raise
        :class:`CollectionNotFound` (the collection was dropped, or its engine closed).
        """
        with self._maintain_lock:
            self._closing = True  # no maintenance starts from here on
            thread = self._maintain_thread
        if thread is not None:
            thread.join()
        self._full_text_indexer.stop()
        with self._write_lock:  # no write is running, and none starts
            if self._closed:
                return
            if self._unsaved:
                self._save()
            with self._rw.write():  # the searches in flight are done
                self._closed = True
                self._index.release()
                self.store.close()

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

"""A collection: points in a SQLite store of record, served from a FAISS index cache."""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import accumulate
from pathlib import Path
from typing import Any, Literal

import faiss
import numpy as np
import orjson
from pydantic import BaseModel, ConfigDict, Field

from indexer import embedding
from indexer.devices import GPU_MAX_K, Placement
from indexer.embedders import Embedder, EmbedderRegistry, ImageInput
from indexer.errors import (
    CollectionNotFound,
    InvalidInput,
    InvalidK,
    InvalidPayload,
    PointNotFound,
)
from indexer.filters import compile_filter
from indexer.indexes import FaissIndex, LabelSet, family_for, load_index, save_index
from indexer.indexes.base import CALIBRATION_QUERIES
from indexer.locks import ReadWriteLock
from indexer.metric import Metric
from indexer.points import (
    Hit,
    Point,
    PointId,
    as_vector_batch,
    decode_id,
    encode_id,
    ensure_lengths,
    validate_id,
    validate_ids,
    vector_batch_and_squares,
)
from indexer.spec import IndexSpec, SearchParams
from indexer.store import SqliteStore

log = logging.getLogger(__name__)

MAX_K = 10_000
MAX_DIM = 65_536
# With a selective filter an approximate index finds few matches; below this many
# candidates, scanning their exact vectors from the store is both faster and exact.
EXACT_SCAN_MAX = 4096
# Rebuild an index once this share of it is tombstones, or an IVF index once the
# collection has grown this many times past the data it was trained on.
MAX_DEAD_FRACTION = 0.2
RETRAIN_GROWTH = 4
CALIBRATION_MIN_POINTS = 1000
FILTER_CACHE_SIZE = 32
# Batches of at least this many hits read ids from an array (_point_ids), built only while
# there are at most ID_TABLE_MAX_SPREAD labels, live or deleted, to each live point.
ID_TABLE_MIN_HITS = 1024
ID_TABLE_MAX_SPREAD = 4
TRAIN_SAMPLE_MAX = 256 * 1024
INDEX_FILE = "index.vsi"  # in the collection's folder, beside the store

Example = PointId | np.integer[Any] | Sequence[float] | np.ndarray


@dataclass(frozen=True, slots=True)
class IndexBuild:
    """An index built from a collection's whole store: on open (missing or damaged index
    file), or when maintenance moves it to another family, retrains or compacts it."""

    collection: str
    family: str
    points: int
    seconds: float


IndexBuildObserver = Callable[[IndexBuild], None]


def new_uid() -> str:
    """A collection's identity: new for each collection made, dropped and made again, or
    restored from a snapshot, so that what outlives a collection (a batch job's checkpoint)
    can tell it from another of the same name."""
    return uuid.uuid4().hex


class CollectionConfig(BaseModel):
    """What a collection is; fixed at creation."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    dim: int = Field(ge=1, le=MAX_DIM)
    metric: Metric = Metric.COSINE
    index: IndexSpec = IndexSpec()
    embedder: str | None = None
    # Keep each point's text (or image hash) in its payload; see indexer.embedding.
    store_source: bool = False


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
        self._placement = placement
        self._gpus = placement.gpus
        self._background = background
        self._on_index_build = on_index_build
        self._rw = ReadWriteLock()
        self._write_lock = threading.Lock()  # one writer at a time, before the RW lock
        self._maintain_lock = threading.Lock()
        self._optimize_lock = threading.Lock()
        self._maintain_thread: threading.Thread | None = None
        self._filter_cache: OrderedDict[tuple[str, tuple[Any, ...]], LabelSet] = OrderedDict()
        self._filter_cache_lock = threading.Lock()
        self._ids: dict[int, PointId] = {}  # label -> user id
        self._labels: dict[str, int] = {}  # id key -> label
        self._id_table = np.empty(0, dtype=object)  # label -> user id; see _point_ids
        for label, key in store.all_keys():
            self._ids[label] = decode_id(key)
            self._labels[key] = label
        self._unsaved = 0
        self._closing = False
        self._closed = False
        self._index = self._open_index()

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
        index = self._index
        return {
            "family": index.family,
            "storage": index.storage,
            "device": "gpu" if index.on_gpu else "cpu",
            "gpu_bytes": index.gpu_bytes,
            "placement_note": index.placement_note,
            "size": index.size,
            "default_params": {index.knob: index.default_knob} if index.knob else {},
        }

    def count(self, filter: dict[str, Any] | None = None) -> int:
        """Points in the collection, or matching ``filter``."""
        with self._rw.read():
            self._check_open()
            return len(self._ids) if filter is None else len(self._allowed(filter))

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
        kind, given = embedding.one_input("upsert", vectors, texts, images)
        if kind != "vectors":
            ensure_lengths(kind, given, len(checked))
            vectors = self._embed(kind, given)
            if self.config.store_source if store_source is None else store_source:
                payloads = embedding.with_sources(payloads, kind, given)
        vecs, squares = vector_batch_and_squares(vectors, self.dim)
        ensure_lengths("vectors", vecs, len(checked))
        ensure_lengths("payloads", payloads, len(checked))
        payload_json = [_payload_json(p, i) for i, p in enumerate(payloads)]
        prepared = self.metric.prepare(vecs, squares)
        keys = [encode_id(i) for i in checked]
        with self._write_lock, self._transaction() as txn:
            labels, replaced = txn.upsert(keys, vecs, payload_json)
            with self._rw.write():
                txn.commit()
                for old in replaced.tolist():
                    del self._ids[old]
                for key, label, point_id in zip(keys, labels.tolist(), checked, strict=True):
                    self._labels[key] = label
                    self._ids[label] = point_id
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
                for label in labels.tolist():
                    self._labels.pop(encode_id(self._ids.pop(label)), None)
                self._apply(lambda index: index.remove(labels))
        self._after_write(len(labels))
        return len(labels)

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
            self._reconcile(self._index)

    # -- reads ---------------------------------------------------------------------------

    def get(self, ids: Sequence[PointId], *, with_vectors: bool = True) -> list[Point]:
        """The points with these ids, in the order asked; ids that do not exist are left out."""
        checked = validate_ids(ids, unique=False)
        with self._rw.read():
            self._check_open()
            found = [(i, self._labels.get(encode_id(i))) for i in checked]
            labels = np.array([lb for _, lb in found if lb is not None], dtype=np.int64)
            rows = self.store.rows(labels, with_vectors=with_vectors)
        return [
            Point(point_id, orjson.loads(rows[label][0]), _vector(rows[label][1]))
            for point_id, label in found
            if label is not None and label in rows
        ]

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
            Point(decode_id(key), orjson.loads(p), _vector(v)) for _, key, p, v in rows[:limit]
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
        kind, given = embedding.one_input("search", queries, texts, images)
        if kind != "vectors":
            queries = self._embed(kind, given)
        vecs, scale = self._queries(queries)
        k = _check_k(k)
        search_params = SearchParams.parse(params)
        with self._rw.read():
            self._check_open()
            allowed = self._allowed(filter) if filter is not None else None
            distances, labels = self._search(vecs, k, search_params, allowed, scale)
            return self._hits(distances, labels, with_payload, with_vectors)

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
        k = _check_k(k)
        search_params = SearchParams.parse(params)
        with self._rw.read():
            self._check_open()
            allowed = self._allowed(filter) if filter is not None else None
            distances, labels = self._search(vecs, k, search_params, allowed, scale)
            found = labels >= 0
            if found.all():  # the usual case: no row short of k
                ids = self._point_id_array(labels.ravel()).reshape(labels.shape)
            else:
                ids = np.full(labels.shape, None, dtype=object)
                ids[found] = self._point_id_array(labels[found])
        scores = self.metric.scores(distances).astype(np.float32, copy=False)
        if not found.all():
            scores[~found] = np.nan
        return ids, scores

    def recommend(
        self,
        positive: Sequence[Example],
        negative: Sequence[Example] = (),
        k: int = 10,
        *,
        strategy: Literal["average", "best_score"] = "average",
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
        k = _check_k(k)
        search_params = SearchParams.parse(params)
        with self._rw.read():
            self._check_open()
            pos, pos_labels = self._examples(positive)
            neg, neg_labels = self._examples(negative)
            exclude = np.union1d(pos_labels, neg_labels)
            allowed = self._allowed(filter) if filter is not None else None
            if allowed is not None and len(exclude):
                allowed = LabelSet(allowed.labels[~np.isin(allowed.labels, exclude)])
            wanted = k + (0 if allowed is not None else len(exclude))
            if strategy == "average":
                p = pos.mean(0)
                query = self._recommend_query((2 * p - neg.mean(0)) if len(neg) else p)
                distances, labels = self._search(query[None, :], wanted, search_params, allowed)
                keep = ~np.isin(labels[0], exclude)
                hits = self._hits(
                    distances[:, keep][:, :k], labels[:, keep][:, :k], with_payload, with_vectors
                )
                return hits[0]
            return self._best_score(
                pos, neg, k, wanted, exclude, allowed, search_params, with_payload, with_vectors
            )

    def _recommend_query(self, query: np.ndarray) -> np.ndarray:
        """The average strategy's query, of unit length for cosine so that its scores are
        cosine similarities like any search's."""
        if self.metric is not Metric.COSINE:
            return query
        if not np.linalg.norm(query) > 0:
            raise InvalidInput(
                "the positive and negative examples cancel out: their average has no "
                "direction to search in; use strategy 'best_score' or other examples"
            )
        prepared: np.ndarray = self.metric.prepare(query[None, :])[0]
        return prepared

    def _best_score(
        self,
        pos: np.ndarray,
        neg: np.ndarray,
        k: int,
        wanted: int,
        exclude: np.ndarray,
        allowed: LabelSet | None,
        params: SearchParams,
        with_payload: bool,
        with_vectors: bool,
    ) -> list[Hit]:
        per_example = min(MAX_K, max(4 * wanted, 64))
        _, found = self._search(pos, per_example, params, allowed)
        candidates = np.setdiff1d(found[found >= 0], exclude)
        if not len(candidates):
            return []
        vecs = self.metric.prepare(self.store.vectors(candidates, self.dim))
        best_pos = self.metric.similarities(pos, vecs).max(0)
        scores = _squash(best_pos)
        if len(neg):
            best_neg = self.metric.similarities(neg, vecs).max(0)
            scores = np.where(best_pos > best_neg, scores, -_squash(best_neg))
        order = np.argsort(-scores, kind="stable")[:k]
        # These are final scores, not FAISS distances: no metric conversion.
        hits = self._hits(
            scores[order][None, :], candidates[order][None, :], with_payload, with_vectors, raw=True
        )
        return hits[0]

    # -- embedding -----------------------------------------------------------------------

    @property
    def embedder(self) -> Embedder:
        """The model that embeds this collection's texts and images, loaded on first use.

        Raises:
            InvalidEmbedderInput: the collection has no embedder.
            EmbedderUnavailable: the model cannot be loaded on this server.
        """
        return embedding.embedder_for(
            self._embedders, self.name, self.config.embedder, self.config.dim
        )

    def embed(
        self, *, texts: Sequence[str] | None = None, images: Sequence[ImageInput] | None = None
    ) -> np.ndarray:
        """Vectors of ``texts`` or ``images`` by the collection's embedder, [n, dim] float32
        of unit norm: what upsert and search would use (and examples for recommend)."""
        kind, given = embedding.one_input("embed", None, texts, images)
        return self._embed(kind, given)

    def _embed(self, kind: str, inputs: Any) -> np.ndarray:
        return embedding.embed(self.embedder, kind, inputs)

    def _examples(self, examples: Sequence[Example]) -> tuple[np.ndarray, np.ndarray]:
        """Example vectors (prepared) and the labels of those given as ids."""
        vectors: list[np.ndarray] = []
        labels: list[int] = []
        for example in examples:
            if isinstance(example, np.integer):
                example = int(example)
            if isinstance(example, str | int) and not isinstance(example, bool):
                label = self._labels.get(encode_id(validate_id(example)))
                if label is None:
                    raise PointNotFound(f"example point {example!r} does not exist")
                labels.append(label)
                vectors.append(self.store.vectors(np.array([label], dtype=np.int64), self.dim)[0])
            else:
                vectors.append(as_vector_batch(example, self.dim)[0])
        if not vectors:
            return np.empty((0, self.dim), dtype=np.float32), np.empty(0, dtype=np.int64)
        prepared = self.metric.prepare(np.stack(vectors))
        return prepared, np.array(sorted(labels), dtype=np.int64)

    def _allowed(self, filter: dict[str, Any]) -> LabelSet:
        """The labels matching a filter (read lock held), cached until the next write."""
        compiled = compile_filter(filter)
        key = (compiled.where, compiled.params)
        # Readers share the cache: its lock keeps one reader's eviction from landing
        # between another's lookup and its move to the end.
        with self._filter_cache_lock:
            cached = self._filter_cache.get(key)
            if cached is not None:
                self._filter_cache.move_to_end(key)
                return cached
        allowed = LabelSet(self.store.select_labels(compiled.where, compiled.params))
        with self._filter_cache_lock:
            self._filter_cache[key] = allowed
            while len(self._filter_cache) > FILTER_CACHE_SIZE:
                self._filter_cache.popitem(last=False)
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
        """FAISS-style (distances, labels) [nq, k'] with k' = min(k, candidates).

        ``scale``: a factor per query that its distances are multiplied by, for queries
        given to the index unnormalised (their ranking does not depend on it)."""
        distances, labels = self._search_prepared(queries, k, params, allowed)
        if scale is not None:
            with np.errstate(over="ignore"):  # the -FLT_MAX that pads short rows may overflow
                distances *= scale[:, None]
        return distances, labels

    def _search_prepared(
        self, queries: np.ndarray, k: int, params: SearchParams, allowed: LabelSet | None
    ) -> tuple[np.ndarray, np.ndarray]:
        index = self._index
        candidates = len(allowed) if allowed is not None else index.size
        k = min(k, candidates)
        if k == 0:
            return np.empty((len(queries), 0), np.float32), np.empty((len(queries), 0), np.int64)
        subset = allowed.labels if allowed is not None else None
        exact_index = index.family == "flat" and index.storage == "float32"
        small = allowed is not None and len(allowed) <= EXACT_SCAN_MAX
        beyond_gpu = index.on_gpu and k > GPU_MAX_K  # FAISS GPU k-selection stops there
        # A small filtered set is scanned exactly, except by a CPU flat index, which takes
        # it as an ID selector; a GPU takes no selector and would have to over-fetch.
        small_scan = small and (index.on_gpu or not exact_index)
        if beyond_gpu or small_scan or (params.exact and not exact_index):
            return self._exact(queries, k, subset)
        if allowed is not None and not index.supports_selector:
            # GPU indexes take no ID selector: over-fetch, then keep the allowed labels.
            fetch = min(GPU_MAX_K if index.on_gpu else MAX_K, 8 * k)
            distances, labels = index.search(queries, fetch, params, None)
            distances, labels = _keep(distances, labels, allowed.contains(labels), k)
        else:
            distances, labels = index.search(queries, k, params, allowed)
        short = (labels >= 0).sum(1) < k
        if short.any():
            # An approximate index missed some of the k that exist: answer those exactly.
            distances[short], labels[short] = self._exact(queries[short], k, subset)
        return distances, labels

    def _exact(
        self, queries: np.ndarray, k: int, subset: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Exact top-k over the stored vectors (all, or ``subset``), read in chunks."""
        heap = faiss.ResultHeap(len(queries), k, keep_max=self.metric.higher_is_better)
        for labels, vecs in self.store.iter_vectors(self.dim, subset):
            chunk_k = min(k, len(labels))
            distances, positions = faiss.knn(
                queries, self.metric.prepare(vecs), chunk_k, metric=self.metric.faiss_metric
            )
            heap.add_result(distances, np.where(positions >= 0, labels[positions], -1))
        heap.finalize()
        return heap.D, heap.I

    def _hits(
        self,
        distances: np.ndarray,
        labels: np.ndarray,
        with_payload: bool,
        with_vectors: bool,
        *,
        raw: bool = False,
    ) -> list[list[Hit]]:
        found = labels >= 0  # -1 pads the rows where fewer than k were found
        hit_labels = labels[found]
        scores = (distances if raw else self.metric.scores(distances))[found].tolist()
        ids = self._point_ids(hit_labels)
        # Hits are built in C-level passes over the batch: at ~10k hits a batch, a Python
        # loop per hit would cost a fifth of a fast FAISS search.
        if with_payload or with_vectors:
            rows = self.store.rows(np.unique(hit_labels), with_vectors=with_vectors)
            fetched = [rows.get(label) for label in hit_labels.tolist()]
            payloads = [orjson.loads(row[0]) if with_payload and row else None for row in fetched]
            vectors = [_vector(row[1]) if row else None for row in fetched]
            hits = list(map(Hit, ids, scores, payloads, vectors))
        else:
            hits = list(map(Hit, ids, scores))
        ends = list(accumulate(found.sum(1).tolist()))
        return [hits[start:end] for start, end in zip([0, *ends[:-1]], ends, strict=True)]

    def _point_ids(self, labels: np.ndarray) -> list[PointId]:
        """The user ids of live ``labels`` (read lock held), in order.

        A large batch reads them from ``self._id_table``, an array indexed by label: once
        a search has pushed the ``self._ids`` dict out of the CPU caches, a lookup in it
        costs four times as much. Labels are never reused, so after writes the array is
        still right for every label it covers (deleted ones are never looked up); labels
        newer than it are read from the dict, and it is rebuilt when they are more than
        an eighth of a batch.
        """
        if len(labels) < ID_TABLE_MIN_HITS:
            return list(map(self._ids.__getitem__, labels.tolist()))
        table = self._id_table
        newer = labels >= len(table)
        if 8 * int(newer.sum()) > len(labels):
            table = self._id_table = self._build_id_table()
            newer = labels >= len(table)
        if newer.all():
            return list(map(self._ids.__getitem__, labels.tolist()))
        ids = table[np.where(newer, 0, labels)]
        ids[newer] = [self._ids[label] for label in labels[newer].tolist()]
        point_ids: list[PointId] = ids.tolist()
        return point_ids

    def _point_id_array(self, labels: np.ndarray) -> np.ndarray:
        """:meth:`_point_ids` as an object array, taken from the id table without a list
        in between where it can be."""
        table = self._id_table
        if len(labels) >= ID_TABLE_MIN_HITS and len(table) and int(labels.max()) < len(table):
            found: np.ndarray = table[labels]
            return found
        ids = np.empty(len(labels), dtype=object)
        ids[:] = self._point_ids(labels)
        return ids

    def _build_id_table(self) -> np.ndarray:
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

    # -- the index: opening, rebuilding, saving -----------------------------------------

    @property
    def _index_path(self) -> Path:
        return self.folder / INDEX_FILE

    def _open_index(self) -> FaissIndex:
        loaded = load_index(self._index_path, self.metric, self.dim)
        if loaded is None:
            index = self._build()
            self._save(index)
        else:
            index, seq = loaded
            if seq != self.store.seq:
                self._reconcile(index)
                self._unsaved = 1
        self._place(index)
        return index

    def _place(self, index: FaissIndex) -> None:
        """Put ``index`` on the GPUs when there are any and it fits (else it says why)."""
        if self._gpus:
            index.place_on_gpu(
                self._placement, self.config.index.model_copy(update={"storage": index.storage})
            )

    def _reconcile(self, index: FaissIndex) -> None:
        """Bring ``index`` in line with the store: add what it lacks, drop what is gone."""
        live = np.fromiter(self._ids, dtype=np.int64, count=len(self._ids))
        live.sort()
        have = index.labels()
        gone = np.setdiff1d(have, live, assume_unique=True)
        missing = np.setdiff1d(live, have, assume_unique=True)
        index.remove(gone)
        for labels, vecs in self.store.iter_vectors(self.dim, missing):
            index.add(labels, self.metric.prepare(vecs))
        if len(gone) or len(missing):
            log.info(
                "collection %s: index caught up (+%d, -%d)", self.name, len(missing), len(gone)
            )

    def _build(self, current: str | None = None) -> FaissIndex:
        """A fresh index of the right family from the whole store, calibrated; ``current``
        is the family serving now, if any (see :meth:`_family`)."""
        started = time.perf_counter()
        labels, vecs = self._all_vectors()
        family, spec = self._family(len(labels), current)
        rng = np.random.default_rng(0)
        train = vecs
        if len(vecs) > TRAIN_SAMPLE_MAX:
            train = vecs[rng.choice(len(vecs), TRAIN_SAMPLE_MAX, replace=False)]
        index = family.build(self.dim, self.metric, spec, train, self._placement)
        if index.knob is None or len(labels) < CALIBRATION_MIN_POINTS:
            index.add(labels, vecs)
        else:
            # Calibrate on points held out of the index, as real queries are, then add them.
            held_out = np.zeros(len(labels), dtype=bool)
            held_out[rng.choice(len(labels), CALIBRATION_QUERIES, replace=False)] = True
            index.add(labels[~held_out], vecs[~held_out])
            self._calibrate(index, vecs[held_out], labels[~held_out], vecs[~held_out])
            index.add(labels[held_out], vecs[held_out])
        build = IndexBuild(self.name, index.family, len(labels), time.perf_counter() - started)
        log.info(
            "collection %s: built %s index over %d points in %.1fs",
            build.collection,
            build.family,
            build.points,
            build.seconds,
        )
        if self._on_index_build is not None:
            try:
                self._on_index_build(build)
            except Exception:  # an observer's failure must not fail a build
                log.exception("collection %s: index build observer failed", self.name)
        return index

    def _family(self, n: int, current: str | None = None) -> tuple[type[FaissIndex], IndexSpec]:
        """The family (and spec) to serve ``n`` points with: ``family_for``, except that an
        empty collection serves flat. A bulk load into a new HNSW collection then builds its
        graph once, from every point, and calibrates it, rather than growing it point by
        point only for the first calibration to rebuild it.

        A collection that shrinks below the size its ``current`` family needs keeps that
        family until it has half that size: one that hovers at a threshold would otherwise
        rebuild its whole index at each crossing."""
        spec = self.config.index
        if n == 0:
            spec = spec.model_copy(update={"kind": "flat"})
        family, chosen = family_for(spec, self.dim, n, self._gpus)
        if n and current not in (None, family.family) and family.family == "flat":
            kept, kept_spec = family_for(spec, self.dim, 2 * n, self._gpus)
            if kept.family == current:
                return kept, kept_spec
        return family, chosen

    def _all_vectors(self) -> tuple[np.ndarray, np.ndarray]:
        """Every label and its prepared vector, from the store."""
        labels_parts, vec_parts = [], []
        for labels, vecs in self.store.iter_vectors(self.dim):
            labels_parts.append(labels)
            vec_parts.append(self.metric.prepare(vecs))
        if not labels_parts:
            return np.empty(0, np.int64), np.empty((0, self.dim), np.float32)
        return np.concatenate(labels_parts), np.concatenate(vec_parts)

    def _calibrate(
        self, index: FaissIndex, queries: np.ndarray, labels: np.ndarray, vecs: np.ndarray
    ) -> None:
        k = 10
        _, positions = faiss.knn(queries, vecs, k, metric=self.metric.faiss_metric)
        recall = index.calibrate(queries, labels[positions], self.config.index.target_recall)
        log.info(
            "collection %s: %s=%s gives recall@%d %.3f on held-out points",
            self.name,
            index.knob,
            index.default_knob,
            k,
            recall,
        )

    def _save(self, index: FaissIndex | None = None) -> None:
        with self._rw.read():
            if self._closed:  # saved by close(); the folder may hold another collection now
                return
            index = index or self._index
            save_index(self._index_path, index, self.store.seq)
            self._unsaved = 0

    # -- maintenance: rebuilds, compaction, checkpoints -----------------------------------

    def _needs_rebuild(self) -> bool:
        index = self._index
        family, spec = self._family(len(self._ids), index.family)
        return (
            family.family != index.family
            or index.over_budget
            or spec.storage != index.storage
            or index.dead_fraction > MAX_DEAD_FRACTION
            or (
                index.family.startswith("ivf")
                and len(self._ids) > RETRAIN_GROWTH * index.trained_on
            )
            or self._needs_calibration()
        )

    def _needs_calibration(self) -> bool:
        """A tuned index is rebuilt, and so recalibrated, each time it doubles in size."""
        index = self._index
        return (
            index.knob is not None
            and index.size >= CALIBRATION_MIN_POINTS
            and index.size >= 2 * index.calibrated_on
        )

    def _needs_save(self) -> bool:
        return self._unsaved > max(10_000, len(self._ids) // 10)

    def _after_write(self, changed: int) -> None:
        self._unsaved += changed
        maintenance = (self._needs_rebuild, self._needs_save)
        if self._background and any(needed() for needed in maintenance):
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
        family, retrain, compact tombstones, and save the index."""
        with self._optimize_lock:
            if self._closed:
                return
            if self._needs_rebuild():
                index = self._build(self._index.family)
                with self._write_lock, self._rw.write():
                    if self._is_closed():  # closed while the index was built
                        return
                    self._reconcile(index)
                    self._index.release()
                    self._place(index)
                    self._index = index
                    self._filter_cache.clear()
                self._unsaved = 1
            if self._unsaved:
                self._save()

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


def _squash(similarity: np.ndarray) -> np.ndarray:
    """An order-keeping map of any similarity into (0, 1)."""
    return np.asarray((similarity / (1 + np.abs(similarity)) + 1) / 2)


def _check_k(k: object) -> int:
    if isinstance(k, np.integer):
        k = int(k)
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= MAX_K:
        raise InvalidK(f"k must be an integer from 1 to {MAX_K}, got {k!r}")
    return k


def _payload_json(payload: dict[str, Any] | None, row: int) -> str:
    if payload is None:
        return "{}"
    if not isinstance(payload, dict):
        raise InvalidPayload(f"payload {row} must be a JSON object, got {type(payload).__name__}")
    try:
        text = orjson.dumps(payload, option=orjson.OPT_SERIALIZE_NUMPY).decode()
    except TypeError as exc:
        raise InvalidPayload(f"payload {row} is not JSON: {exc}") from None
    # orjson writes NaN and infinity as null: refuse them rather than change the payload.
    if "null" in text and not _all_finite(payload):
        raise InvalidPayload(f"payload {row} holds NaN or infinity, which JSON cannot carry")
    return text


def _all_finite(value: object) -> bool:
    """Whether every float in a JSON-like value is finite."""
    if isinstance(value, float | np.floating):
        return bool(np.isfinite(value))
    if isinstance(value, dict):
        return all(_all_finite(v) for v in value.values())
    if isinstance(value, list | tuple):
        return all(_all_finite(v) for v in value)
    if isinstance(value, np.ndarray) and value.dtype.kind in "fc":
        return bool(np.isfinite(value).all())
    return True


def _vector(blob: bytes | None) -> np.ndarray | None:
    return None if blob is None else np.frombuffer(blob, dtype=np.float32).copy()


def _keep(
    distances: np.ndarray, labels: np.ndarray, mask: np.ndarray, k: int
) -> tuple[np.ndarray, np.ndarray]:
    """Keep the first k entries of each row where ``mask`` holds, padding with -1."""
    order = np.argsort(~mask, axis=1, kind="stable")[:, :k]
    kept_labels = np.take_along_axis(np.where(mask, labels, -1), order, axis=1)
    kept_distances = np.take_along_axis(distances, order, axis=1)
    return kept_distances, kept_labels

"""Search planning: how one search runs over an index, a filter's labels and the stored
vectors, and the cache of the labels that recent filters matched."""

from __future__ import annotations

import math
import threading
from collections import Counter, OrderedDict
from collections.abc import Callable, Hashable, Iterable, Iterator
from dataclasses import dataclass, replace
from typing import Literal

import faiss
import numpy as np

from indexer.collection.results import padded
from indexer.collection.validation import MAX_K
from indexer.devices import GPU_MAX_K
from indexer.indexes import FaissIndex, LabelSet
from indexer.indexes.labels import keep_labels
from indexer.metric import Metric
from indexer.spec import SearchParams

# A GPU index takes no ID selector: a filter matching at most this many points is scanned
# exactly from the store rather than over-fetched.
EXACT_SCAN_MAX = 4096
# What reading a vector costs, counted in vector comparisons of a scan over contiguous
# vectors, as plan() counts every cost. From the store: a SQLite row, as much as comparing
# STORED_ROW_COST dimensions (measured 5-20 us a row of 384 floats, by 300,000, where a
# comparison takes 0.06-0.1 us). From the index's memory (held vectors), a random read of
# the row, out of the CPU caches, and its copy: HELD_ROW_COST comparisons (measured 2 us a
# 384-d row of 300,000 on 2 busy cores, 5-10 times a step of a filtered HNSW search). A
# scan of m vectors for nq queries costs m * (nq + the cost of reading one).
STORED_ROW_COST = 40_000
HELD_ROW_COST = 25
# Compared where the index holds it (FAISS's *_by_idx kernels read each row in place, in
# the order of the labels, which is the order of the rows for points loaded in order), a
# row costs IN_PLACE_ROW_COST comparisons for each query, without a copy: measured 0.9 us
# a 384-d row, 100,000 of 1,000,000 rows for one query, where their copy and scan took
# 2.2 us (HELD_ROW_COST + 1), on the same busy machine. A scan of m held vectors costs
# the least of m * (nq + HELD_ROW_COST) and m * nq * IN_PLACE_ROW_COST.
IN_PLACE_ROW_COST = 10
HELD_CHUNK = 16_384  # vectors gathered from the index's memory at a time
FILTER_CACHE_SIZE = 32
FILTER_MARGIN = 2  # see plan()
# A filtered search on an index of approximate distances (product quantisation) takes this
# many candidates per result (at least RESCORE_MIN) and ranks them by their stored vectors:
# the true top 10 of a filter's matches are among the first 64 by PQ distance.
RESCORE_FACTOR = 8
RESCORE_MIN = 64
FLT_MAX = float(np.finfo(np.float32).max)  # pads rows short of k, as FAISS does

StoredVectors = Callable[[np.ndarray | None], Iterable[tuple[np.ndarray, np.ndarray]]]
"""(labels, vectors as stored) in chunks: of the labels given, or of every point for None."""


@dataclass(frozen=True, slots=True)
class Plan:
    """How a search runs: ``exact`` scans the stored vectors; ``index`` asks the index,
    which applies the filter itself (an ID selector); ``over_fetch`` asks an index that
    cannot for ``fetch`` neighbours and keeps the allowed ones. ``params``: the index's
    parameters, widened for a filter. ``rescore``: the index's candidates (``fetch`` of
    them) are ranked again by their stored vectors."""

    how: Literal["exact", "index", "over_fetch"]
    fetch: int
    params: SearchParams
    rescore: bool = False
    in_place: bool = False  # an exact scan compares the index's held vectors in place

    def describe(self, index: FaissIndex) -> str:
        """The plan in a few words, as :class:`PlanCounts` counts it: e.g. ``exact scan
        (in place)``, ``index, ef_search 2048``, ``over-fetch 400, rescored``."""
        if self.how == "exact":
            return "exact scan (in place)" if self.in_place else "exact scan"
        knob = f", {index.knob} {index.knob_for(self.params)}" if index.knob else ""
        head = "index" if self.how == "index" else f"over-fetch {self.fetch}"
        return f"{head}{knob}{', rescored' if self.rescore else ''}"


def plan(
    index: FaissIndex,
    k: int,
    params: SearchParams,
    allowed: int | None,
    queries: tuple[int, int],
) -> Plan:
    """How to find the top ``k`` in ``index`` for ``queries`` (their count and dimension),
    of the ``allowed`` points matching a filter (None: no filter), ``k`` being at most
    the points there are.

    A filter matching a fraction f of the points leaves an approximate index f times the
    matches among the candidates it looks at, so its knob (ef_search, nprobe) is divided
    by f: it then meets as many matches as an unfiltered search meets points, and the
    recall its calibration gave holds at any selectivity. A graph walked under a filter
    loses a little more than that (single queries at ef_search 16 / f reach recall 0.95
    where unfiltered ones reach 1.0), so a filter of fewer than all the points divides by
    f / FILTER_MARGIN. Where the matches cost less to scan exactly than that widened
    search (or than a flat index's pass over every vector), they are scanned: their
    vectors read from the index's memory where it holds them (compared in place there,
    for a few queries), else from the store."""
    exact_index = index.family == "flat" and index.storage == "float32"
    beyond_gpu = index.on_gpu and k > GPU_MAX_K  # FAISS GPU k-selection stops there
    if beyond_gpu or (params.exact and not exact_index):
        return Plan("exact", k, params)
    if allowed is None:
        return Plan("index", k, params)
    fraction = allowed / max(index.size, allowed, 1)
    if index.knob is not None:
        margin = FILTER_MARGIN if fraction < 1 else 1
        widened = min(index.knob_max, math.ceil(index.knob_for(params) * margin / fraction))
        params = params.model_copy(update={index.knob: max(widened, index.knob_for(params))})
    limit = GPU_MAX_K if index.on_gpu else MAX_K
    rescore = index.approximate_distances
    wanted = min(limit, max(k, RESCORE_FACTOR * k, RESCORE_MIN)) if rescore else k
    if index.supports_selector:
        n, dim = queries
        scanned, in_place = scan_cost(allowed, queries, index.holds_vectors)
        searched = n * index.search_cost(params) + (n * wanted * STORED_ROW_COST / dim) * rescore
        if scanned <= searched:
            return Plan("exact", k, params, in_place=in_place)
        return Plan("index", wanted, params, rescore)
    if allowed <= EXACT_SCAN_MAX:
        return Plan("exact", k, params)
    fetch = min(limit, max(8 * wanted, math.ceil(2 * wanted / fraction)))
    return Plan("over_fetch", fetch, params, rescore)


class PlanCounts:
    """How many searches each plan answered (by :meth:`Plan.describe`), and how many rows
    an approximate index left short of k were answered by an exact scan (``rows short of
    k, scanned``): what a collection's filtered searches did, for its stats and for the
    benchmarks. Plain searches on the CPU (no filter, no exact scan asked) always ask the
    index and are not counted: their path stays as short as it can."""

    SHORT = "rows short of k, scanned"

    def __init__(self) -> None:
        self._counts: Counter[str] = Counter()
        self._lock = threading.Lock()  # readers share it

    def add(self, what: str, count: int = 1) -> None:
        with self._lock:
            self._counts[what] += count

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counts)


def scan_cost(allowed: int, queries: tuple[int, int], held: bool) -> tuple[float, bool]:
    """What an exact scan of ``allowed`` points costs ``queries`` (their count and
    dimension), counted as :func:`plan` counts, and whether it compares them in place:
    ``held``, where the index holds their vectors, else read from the store."""
    n, dim = queries
    if not held:
        return allowed * (n + STORED_ROW_COST / dim), False
    in_place = n * IN_PLACE_ROW_COST < n + HELD_ROW_COST
    return allowed * min(n * IN_PLACE_ROW_COST, n + HELD_ROW_COST), in_place


def search(
    index: FaissIndex,
    queries: np.ndarray,
    k: int,
    params: SearchParams,
    allowed: LabelSet | None,
    stored: StoredVectors,
    metric: Metric,
    scale: np.ndarray | None = None,
    counts: PlanCounts | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """FAISS-style (distances, labels) [nq, k'] with k' = min(k, candidates), -1 labels
    padding rows short of k'.

    ``scale``: a factor per query that its distances are multiplied by, for queries
    given to the index unnormalised (their ranking does not depend on it). ``counts``:
    where the plan taken is counted."""
    k = min(k, len(allowed) if allowed is not None else index.size)
    if k == 0:
        return np.empty((len(queries), 0), np.float32), np.empty((len(queries), 0), np.int64)
    subset = allowed.labels if allowed is not None else None
    if allowed is None and not params.exact and not index.on_gpu:
        # Without a filter, an exact scan asked or a GPU, plan() can only answer "search
        # the index": every plain search comes this way, which skips asking it, because
        # each call on this path costs microseconds (an index search streams through the
        # CPU caches, so the code that runs next finds itself cold).
        distances, labels = index.search(queries, k, params, None)
    else:
        matching = len(allowed) if allowed is not None else None
        chosen = plan(index, k, params, matching, (len(queries), queries.shape[1]))
        found = None
        if chosen.in_place and subset is not None:
            found = scan_in_place(index, queries, k, subset, metric)
        if found is None and chosen.in_place:  # the index holds none of them now
            chosen = replace(chosen, in_place=False)
        if counts is not None:
            counts.add(chosen.describe(index))
        if found is not None:
            distances, labels = found
        elif chosen.how == "exact":
            distances, labels = scan(
                queries, k, index_vectors(index, stored, metric, subset), metric
            )
        elif chosen.how == "over_fetch" and allowed is not None:
            distances, labels = index.search(queries, chosen.fetch, chosen.params, None)
            kept = (
                min(chosen.fetch, max(k, RESCORE_FACTOR * k, RESCORE_MIN)) if chosen.rescore else k
            )
            distances, labels = keep_labels(distances, labels, allowed.contains(labels), kept)
        else:
            distances, labels = index.search(queries, chosen.fetch, chosen.params, allowed)
        if chosen.rescore:
            distances, labels = rescored(queries, labels, k, stored, metric)
    if padded(labels):
        # An approximate index missed some of the k that exist (an exact scan finds them
        # all): answer those exactly.
        short = (labels >= 0).sum(1) < k
        if counts is not None:
            counts.add(PlanCounts.SHORT, int(short.sum()))
        distances[short], labels[short] = scan(
            queries[short], k, index_vectors(index, stored, metric, subset), metric
        )
    if scale is not None:
        if padded(labels):
            with np.errstate(over="ignore"):  # the -FLT_MAX that pads short rows may overflow
                distances *= scale[:, None]
        else:  # no padding to overflow, and no error state to set and restore
            distances *= scale[:, None]
    return distances, labels


def rescored(
    queries: np.ndarray,
    candidates: np.ndarray,
    k: int,
    stored: StoredVectors,
    metric: Metric,
) -> tuple[np.ndarray, np.ndarray]:
    """The best k of each row's ``candidates`` (-1 for none) by exact distance to its
    query, from the stored vectors; as FAISS gives them (rows short of k end in -1)."""
    sign = -1.0 if metric.higher_is_better else 1.0
    found = candidates >= 0
    unique = np.unique(candidates[found])
    vectors = np.zeros((len(unique) + 1, queries.shape[1]), dtype=np.float32)  # last: none
    for chunk_labels, vecs in stored(unique):
        vectors[np.searchsorted(unique, chunk_labels)] = metric.prepare(vecs)
    rows = np.where(found, np.searchsorted(unique, candidates), len(unique))
    distances = np.empty(candidates.shape, dtype=np.float32)
    for i, query in enumerate(queries):  # one row at a time: [fetch, dim], never [nq, ...]
        near = vectors[rows[i]]
        if metric.faiss_metric == faiss.METRIC_INNER_PRODUCT:
            distances[i] = near @ query
        else:
            distances[i] = ((near - query) ** 2).sum(axis=1)
    distances[~found] = -sign * FLT_MAX
    order = np.argsort(sign * distances, axis=1, kind="stable")[:, :k]
    labels = np.take_along_axis(np.where(found, candidates, -1), order, axis=1)
    return np.take_along_axis(distances, order, axis=1), labels


def scan_in_place(
    index: FaissIndex, queries: np.ndarray, k: int, labels: np.ndarray, metric: Metric
) -> tuple[np.ndarray, np.ndarray] | None:
    """:func:`scan` of the vectors of ``labels`` (sorted, served, at least k of them)
    where the index holds them, compared in place, one query at a time: no copy of the
    rows, which costs more than comparing them once (see IN_PLACE_ROW_COST). None where
    the index does not hold them."""
    held = index.held_rows(labels)
    if held is None:
        return None
    vectors, positions = held
    inner = metric.faiss_metric == faiss.METRIC_INNER_PRODUCT
    by_index = faiss.fvec_inner_products_by_idx if inner else faiss.fvec_L2sqr_by_idx
    sign = -1.0 if metric.higher_is_better else 1.0
    count, dim = len(positions), vectors.shape[1]
    row = np.empty(count, dtype=np.float32)
    distances = np.empty((len(queries), k), dtype=np.float32)
    found = np.empty((len(queries), k), dtype=np.int64)
    ptr = faiss.swig_ptr
    for i in range(len(queries)):
        query = np.ascontiguousarray(queries[i])
        by_index(ptr(row), ptr(query), ptr(vectors), ptr(positions), dim, 1, count)
        ranked = sign * row
        top = np.argpartition(ranked, k - 1)[:k] if k < count else np.arange(count)
        top = top[np.argsort(ranked[top], kind="stable")]
        distances[i], found[i] = row[top], labels[top]
    return distances, found


def index_vectors(
    index: FaissIndex, stored: StoredVectors, metric: Metric, labels: np.ndarray | None
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(labels, vectors as the index holds them) in chunks, of ``labels`` or of every
    point for None: gathered from the index's own memory where it holds them (see
    :meth:`FaissIndex.held_vectors`), else read from the store and prepared."""
    start = 0
    if labels is not None and index.holds_vectors:
        for start in range(0, len(labels), HELD_CHUNK):
            chunk = labels[start : start + HELD_CHUNK]
            held = index.held_vectors(chunk)
            if held is None:
                break
            yield chunk, held
        else:
            return
    rest = labels[start:] if labels is not None else None
    for chunk, vecs in stored(rest):
        yield chunk, metric.prepare(vecs)


def exact(
    queries: np.ndarray,
    k: int,
    chunks: Iterable[tuple[np.ndarray, np.ndarray]],
    metric: Metric,
) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-k over (labels, stored vectors) chunks, as FAISS gives it: rows short of
    k end in -1 labels."""
    return scan(queries, k, ((labels, metric.prepare(vecs)) for labels, vecs in chunks), metric)


def scan(
    queries: np.ndarray,
    k: int,
    chunks: Iterable[tuple[np.ndarray, np.ndarray]],
    metric: Metric,
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`exact` over chunks of vectors as the index holds them (prepared).

    Each chunk's top k is merged into the running top k with numpy: FAISS's ResultHeap
    does it with OpenMP passes whose start-up costs milliseconds, most of a small scan."""
    sign = -1.0 if metric.higher_is_better else 1.0  # sorts the best distances first
    distances = np.full((len(queries), 0), -sign * FLT_MAX, dtype=np.float32)
    labels = np.full((len(queries), 0), -1, dtype=np.int64)
    for chunk_labels, vecs in chunks:
        found, positions = faiss.knn(
            queries, vecs, min(k, len(chunk_labels)), metric=metric.faiss_metric
        )
        distances = np.concatenate([distances, found], axis=1)
        labels = np.concatenate([labels, chunk_labels[positions]], axis=1)
        if distances.shape[1] > k:
            order = np.argsort(sign * distances, axis=1, kind="stable")[:, :k]
            distances = np.take_along_axis(distances, order, axis=1)
            labels = np.take_along_axis(labels, order, axis=1)
    short = k - distances.shape[1]
    if short > 0:
        distances = np.pad(distances, ((0, 0), (0, short)), constant_values=-sign * FLT_MAX)
        labels = np.pad(labels, ((0, 0), (0, short)), constant_values=-1)
    return distances, labels


@dataclass(frozen=True, slots=True)
class CachedLabels:
    """The labels a filter matched when labels were all below ``top`` and ``deletes``
    points had been deleted (see :class:`indexer.payload_index.PayloadIndexes`). Labels
    are never reused, so after writes it is still right but for the points deleted since
    and those with labels from ``top`` on."""

    labels: LabelSet
    top: int
    deletes: int


class FilterCache:
    """The labels that recent filters matched, least recently used dropped first; its
    owner locks around each call (readers share it)."""

    def __init__(self, size: int = FILTER_CACHE_SIZE) -> None:
        self._size = size
        self._entries: OrderedDict[Hashable, CachedLabels] = OrderedDict()

    def get(self, key: Hashable) -> CachedLabels | None:
        found = self._entries.get(key)
        if found is not None:
            self._entries.move_to_end(key)
        return found

    def put(self, key: Hashable, labels: CachedLabels) -> None:
        self._entries[key] = labels
        while len(self._entries) > self._size:
            self._entries.popitem(last=False)

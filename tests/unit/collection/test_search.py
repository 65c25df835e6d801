"""Search planning on real FAISS indexes, with stored vectors as plain arrays."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest

from indexer.collection.search import (
    EXACT_SCAN_MAX,
    FILTER_MARGIN,
    CachedLabels,
    FilterCache,
    Plan,
    PlanCounts,
    StoredVectors,
    exact,
    plan,
    scan_cost,
    search,
)
from indexer.devices import GPU_MAX_K
from indexer.indexes import FAMILIES, FaissIndex, LabelSet
from indexer.metric import Metric
from indexer.spec import IndexSpec, SearchParams

DIM = 16
N = 6000
PARAMS = SearchParams()


@pytest.fixture(scope="module")
def vectors() -> np.ndarray:
    return np.random.default_rng(1).standard_normal((N, DIM)).astype(np.float32)


@pytest.fixture(scope="module")
def many() -> np.ndarray:
    return np.random.default_rng(5).standard_normal((5 * N, DIM)).astype(np.float32)


def stored_from(vectors: np.ndarray, chunk: int = 1000) -> StoredVectors:
    def chunks(labels: np.ndarray | None) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        labels = np.arange(len(vectors)) if labels is None else labels
        for start in range(0, len(labels), chunk):
            part = labels[start : start + chunk]
            yield part, vectors[part]

    return chunks


def built(family: str, vectors: np.ndarray, metric: Metric = Metric.L2) -> FaissIndex:
    spec = IndexSpec(kind=family, nlist=16)  # type: ignore[arg-type]
    index = FAMILIES[family].build(DIM, metric, spec, vectors)
    index.add(np.arange(len(vectors)), vectors)
    return index


@pytest.fixture(scope="module")
def hnsw_many(many: np.ndarray) -> FaissIndex:
    """An HNSW graph of ``many`` (the tests only search it)."""
    return built("hnsw", many)


def truth(queries: np.ndarray, vectors: np.ndarray, labels: np.ndarray, k: int) -> np.ndarray:
    distances = ((queries[:, None, :] - vectors[labels][None, :, :]) ** 2).sum(-1)
    return labels[np.argsort(distances, axis=1, kind="stable")[:, :k]]


def test_exact_scans_chunks_into_one_top_k(vectors: np.ndarray) -> None:
    queries = vectors[:3] + 0.01
    subset = np.arange(0, N, 7)
    distances, labels = exact(queries, 5, stored_from(vectors, 100)(subset), Metric.L2)
    assert labels.tolist() == truth(queries, vectors, subset, 5).tolist()
    assert np.all(np.diff(distances, axis=1) >= 0)
    similar, _ = exact(queries, 5, stored_from(vectors, 100)(subset), Metric.DOT)
    assert np.all(np.diff(similar, axis=1) <= 0)  # best first: the largest inner products


def test_exact_pads_with_minus_one_when_fewer_exist(vectors: np.ndarray) -> None:
    _, labels = exact(vectors[:1], 4, stored_from(vectors)(np.array([5, 9])), Metric.L2)
    assert sorted(labels[0, :2].tolist()) == [5, 9]
    assert labels[0, 2:].tolist() == [-1, -1]
    _, none = exact(vectors[:2], 3, iter(()), Metric.DOT)
    assert none.tolist() == [[-1, -1, -1]] * 2


ONE = (1, DIM)  # one query of the test's dimension


def test_unfiltered_and_exact_searches_plan_as_asked(vectors: np.ndarray) -> None:
    flat, hnsw = built("flat", vectors), built("hnsw", vectors)
    assert plan(flat, 10, PARAMS, None, ONE) == Plan("index", 10, PARAMS)
    assert plan(flat, 10, PARAMS, 5, ONE) == Plan("exact", 10, PARAMS, in_place=True)  # not 6,000
    assert plan(flat, 10, PARAMS, N // 2, ONE) == Plan("index", 10, PARAMS)
    assert plan(hnsw, 10, PARAMS, None, ONE) == Plan("index", 10, PARAMS)
    exact_params = SearchParams(exact=True)
    assert plan(hnsw, 10, exact_params, None, ONE) == Plan("exact", 10, exact_params)
    assert plan(flat, 10, exact_params, None, ONE).how == "index"  # exact already


def test_a_filter_widens_hnsw_by_the_inverse_of_its_fraction_and_a_margin(
    vectors: np.ndarray,
) -> None:
    hnsw = built("hnsw", vectors)  # not calibrated: ef_search 64
    half = plan(hnsw, 10, PARAMS, N // 2, ONE)
    assert half.params.ef_search == 64 * 2 * FILTER_MARGIN
    tenth = plan(hnsw, 10, SearchParams(ef_search=30), N // 10, ONE)
    assert tenth.params.ef_search == 300 * FILTER_MARGIN
    assert plan(hnsw, 10, PARAMS, N, ONE).params.ef_search == 64


def test_a_filter_widens_ivf_up_to_every_list(vectors: np.ndarray) -> None:
    ivf = built("ivf_flat", vectors)  # 16 lists, nprobe 16 uncalibrated
    assert plan(ivf, 10, SearchParams(nprobe=2), N // 4, ONE).params.nprobe == 8 * FILTER_MARGIN
    assert plan(ivf, 10, SearchParams(nprobe=2), N // 20, ONE).params.nprobe == 16


def test_few_matches_or_many_queries_are_scanned_exactly(
    many: np.ndarray, hnsw_many: FaissIndex
) -> None:
    hnsw = hnsw_many
    # ef 64/f over 64 neighbours a candidate, against reading and comparing the matches
    assert plan(hnsw, 10, PARAMS, 100, ONE).how == "exact"
    narrow = SearchParams(ef_search=16)  # 64 widened to 256 costs about a scan of half
    assert plan(hnsw, 10, narrow, len(many) // 2, ONE).how == "index"
    assert plan(hnsw, 10, PARAMS, len(many) // 2, (100_000, DIM)).how == "exact"
    flat_fp16 = FAMILIES["flat"].build(DIM, Metric.L2, IndexSpec(storage="float16"), many)
    flat_fp16.add(np.arange(len(many)), many)
    assert plan(flat_fp16, 10, PARAMS, 5, ONE).how == "exact"
    assert plan(flat_fp16, 10, PARAMS, len(many) // 2, ONE).how == "index"


def test_an_index_without_a_selector_over_fetches_or_scans(many: np.ndarray) -> None:
    gpu_like = built("flat", many)
    gpu_like.on_gpu = True  # what a GPU index reports: no ID selector, k up to GPU_MAX_K
    assert not gpu_like.supports_selector
    assert plan(gpu_like, 10, PARAMS, 15_000, ONE) == Plan("over_fetch", 80, PARAMS)
    assert plan(gpu_like, 10, PARAMS, 6000, ONE).fetch == 100  # 2k / f past 8k
    assert plan(gpu_like, 10, PARAMS, EXACT_SCAN_MAX, ONE).how == "exact"
    assert plan(gpu_like, GPU_MAX_K + 1, PARAMS, None, ONE).how == "exact"
    assert plan(gpu_like, 1000, PARAMS, 15_000, ONE).fetch == GPU_MAX_K


@pytest.mark.parametrize("family", ["flat", "hnsw", "ivf_flat"])
@pytest.mark.parametrize("matching", [40, N // 20, N // 2])
def test_filtered_searches_find_the_allowed_nearest(
    vectors: np.ndarray, family: str, matching: int
) -> None:
    index = built(family, vectors)
    allowed = LabelSet(np.sort(np.random.default_rng(2).choice(N, matching, replace=False)))
    queries = vectors[:20] + 0.05
    params = SearchParams(ef_search=256, nprobe=16)
    _, labels = search(index, queries, 10, params, allowed, stored_from(vectors), Metric.L2)
    assert allowed.contains(labels).all()
    expected = truth(queries, vectors, allowed.labels, 10)
    recall = np.mean(
        [len(np.intersect1d(a, b)) / 10 for a, b in zip(labels, expected, strict=True)]
    )
    assert recall >= 0.95


def test_over_fetching_keeps_only_allowed_labels(many: np.ndarray) -> None:
    index = built("flat", many)
    index.on_gpu = True
    allowed = LabelSet(np.arange(0, len(many), 2))
    queries = many[1:40:2]  # odd labels: their own vectors are not allowed
    assert plan(index, 5, PARAMS, len(allowed), (len(queries), DIM)).how == "over_fetch"
    _, labels = search(index, queries, 5, PARAMS, allowed, stored_from(many), Metric.L2)
    assert labels.tolist() == truth(queries, many, allowed.labels, 5).tolist()


def test_k_is_cut_to_the_candidates_and_distances_are_scaled(vectors: np.ndarray) -> None:
    index = built("flat", vectors, Metric.DOT)
    allowed = LabelSet(np.array([3, 8]))
    scale = np.array([2.0], dtype=np.float32)
    stored = stored_from(vectors)
    distances, labels = search(index, vectors[:1], 10, PARAMS, allowed, stored, Metric.DOT, scale)
    assert labels.shape == (1, 2)
    assert np.allclose(sorted(distances[0]), sorted(2 * vectors[[3, 8]] @ vectors[0]), rtol=1e-5)
    empty = LabelSet(np.empty(0, np.int64))
    assert search(index, vectors[:2], 10, PARAMS, empty, stored, Metric.DOT)[1].shape == (2, 0)


def test_the_filter_cache_drops_the_least_recently_used() -> None:
    cache = FilterCache(size=2)
    a, b, c = (CachedLabels(LabelSet(np.array([i])), i + 1, 0) for i in range(3))
    cache.put("a", a)
    cache.put("b", b)
    assert cache.get("a") is a  # now the most recently used
    cache.put("c", c)
    assert (cache.get("a"), cache.get("b"), cache.get("c")) == (a, None, c)


@pytest.mark.parametrize("family", ["flat", "ivf_flat", "ivf_pq", "hnsw"])
def test_a_lone_query_in_one_call_finds_what_search_finds(vectors: np.ndarray, family: str) -> None:
    index = built(family, vectors)
    params = SearchParams()
    for knob in index.knob_values[:2] if index.knob else (None,):
        index.default_knob = knob  # a new calibration: search_one follows it
        for query in vectors[:5] + 0.01:
            found = index.search_one(query, 10)
            assert found is not None
            distances, labels = index.search(query[None, :], 10, params, None)
            assert (found[0].tolist(), found[1].tolist()) == (
                distances[0].tolist(),
                labels[0].tolist(),
            )


def test_a_lone_query_leaves_deleted_and_missing_points_to_search(vectors: np.ndarray) -> None:
    index = built("hnsw", vectors)
    assert index.search_one(vectors[0], N + 1) is None  # more than there are
    index.remove(np.array([3]))  # a tombstone, which only search() leaves out
    assert index.search_one(vectors[0], 10) is None


def test_a_lone_query_follows_a_calibration_made_while_it_builds_its_parameters(
    vectors: np.ndarray, monkeypatch: pytest.MonkeyPatch
) -> None:
    index = built("ivf_flat", vectors)  # 16 lists: 1 probe and 16 find different points
    index.default_knob = 1
    build = index.search_parameters

    def calibrated_meanwhile(params: SearchParams, selector: object) -> object:
        made = build(params, selector)  # at the old knob
        index.default_knob = 16  # a recalibration (it takes no lock) lands here
        return made

    monkeypatch.setattr(index, "search_parameters", calibrated_meanwhile)
    index.search_one(vectors[0], 10)
    monkeypatch.setattr(index, "search_parameters", build)
    queries = vectors[:20] + 0.5
    distances, labels = index.search(queries, 10, PARAMS, None)
    found = [index.search_one(query, 10) for query in queries]
    assert [(d.tolist(), lb.tolist()) for d, lb in found] == list(
        zip(distances.tolist(), labels.tolist(), strict=True)
    )


def unread(labels: np.ndarray | None) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """A store that must not be read: the index holds the vectors asked for."""
    raise AssertionError(f"the store was read for {labels!r}")


def counting(stored: StoredVectors, reads: list[int]) -> StoredVectors:
    """``stored``, counting in ``reads`` the vectors read."""

    def chunks(labels: np.ndarray | None) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        for part, vecs in stored(labels):
            reads.append(len(part))
            yield part, vecs

    return chunks


@pytest.mark.parametrize("family", ["flat", "hnsw"])
def test_an_index_of_float32_vectors_hands_them_out_as_it_holds_them(
    vectors: np.ndarray, family: str
) -> None:
    cosine = Metric.COSINE
    index = FAMILIES[family].build(DIM, cosine, IndexSpec(kind=family), vectors)  # type: ignore[arg-type]
    # Labels in increasing order but for a tail of older ones, as a build adds its
    # held-out calibration queries last; then newer ones.
    held_out = np.arange(0, 1000, 10)
    first = np.setdiff1d(np.arange(N // 2), held_out)
    for labels in (first, held_out, np.arange(N // 2, N)):
        index.add(labels, cosine.prepare(vectors[labels]))
    assert index.holds_vectors
    asked = np.sort(np.random.default_rng(3).choice(N, 500, replace=False))
    held = index.held_vectors(asked)
    assert held is not None
    assert np.array_equal(held, cosine.prepare(vectors[asked]))  # to the bit
    index.remove(asked[:100])  # a flat index moves the vectors after them down
    assert np.array_equal(index.held_vectors(asked[100:]), cosine.prepare(vectors[asked[100:]]))


def test_an_index_of_codes_or_lists_holds_no_vectors_to_hand_out(vectors: np.ndarray) -> None:
    flat_fp16 = FAMILIES["flat"].build(DIM, Metric.L2, IndexSpec(storage="float16"), vectors)
    flat_fp16.add(np.arange(N), vectors)
    for index in (flat_fp16, built("ivf_flat", vectors)):
        assert not index.holds_vectors
        assert index.held_vectors(np.arange(10)) is None


@pytest.mark.parametrize("family", ["flat", "hnsw"])
def test_few_matches_are_scanned_from_the_vectors_the_index_holds(
    many: np.ndarray, hnsw_many: FaissIndex, family: str
) -> None:
    index = hnsw_many if family == "hnsw" else built(family, many)
    allowed = LabelSet(np.sort(np.random.default_rng(4).choice(len(many), 300, replace=False)))
    queries = many[:5] + 0.05
    assert plan(index, 10, PARAMS, len(allowed), (5, DIM)).how == "exact"
    _, labels = search(index, queries, 10, PARAMS, allowed, unread, Metric.L2)
    assert labels.tolist() == truth(queries, many, allowed.labels, 10).tolist()


def test_matches_an_index_does_not_hold_cost_a_store_read_each(
    many: np.ndarray, hnsw_many: FaissIndex
) -> None:
    """An HNSW graph over float16 codes holds no float32 vector: a filter's matches are
    read from the store while they are few, and left to the graph's filtered search
    once their reads cost more; over float32 vectors the same matches are gathered."""
    spec = IndexSpec(kind="hnsw", storage="float16", hnsw_m=16, ef_construction=64)
    codes = FAMILIES["hnsw"].build(DIM, Metric.L2, spec, many)
    codes.add(np.arange(len(many)), many)
    floats = hnsw_many
    rng = np.random.default_rng(6)
    queries = many[:5] + 0.05
    for matching, with_codes in ((30, "exact"), (len(many) // 10, "index")):
        allowed = LabelSet(np.sort(rng.choice(len(many), matching, replace=False)))
        expected = truth(queries, many, allowed.labels, 10)
        assert plan(floats, 10, PARAMS, matching, (5, DIM)).how == "exact"
        _, labels = search(floats, queries, 10, PARAMS, allowed, unread, Metric.L2)
        assert labels.tolist() == expected.tolist()
        assert plan(codes, 10, PARAMS, matching, (5, DIM)).how == with_codes
        reads: list[int] = []
        stored = counting(stored_from(many), reads)
        _, labels = search(codes, queries, 10, PARAMS, allowed, stored, Metric.L2)
        assert allowed.contains(labels).all()
        if with_codes == "exact":
            assert sum(reads) == matching
            assert labels.tolist() == expected.tolist()
        else:
            assert sum(reads) == 0
            hits = sum(len(np.intersect1d(a, b)) for a, b in zip(labels, expected, strict=True))
            assert hits / expected.size >= 0.95


def test_a_lone_query_scans_a_tenth_of_a_million_held_vectors_rather_than_walk_the_graph(
    vectors: np.ndarray,
) -> None:
    """At 10% of 1M 384-d points an M16 graph calibrated at ef_search 512, walked with
    a selector at 512 * FILTER_MARGIN / 0.1, took 78 ms and reached recall 0.93 at any
    ef (bench.filters): comparing the 100,000 matches in place costs less."""
    spec = IndexSpec(kind="hnsw", hnsw_m=16, ef_construction=64)
    m16 = FAMILIES["hnsw"].build(DIM, Metric.L2, spec, vectors)
    m16.add(np.arange(len(vectors)), vectors)
    graph = m16.search_cost(SearchParams(ef_search=512 * FILTER_MARGIN * 10))
    scanned, in_place = scan_cost(100_000, (1, 384), held=True)
    assert in_place
    assert scanned < graph
    batch, batch_in_place = scan_cost(100_000, (64, 384), held=True)
    assert not batch_in_place  # a batch copies the rows once for all its queries
    assert batch < 64 * graph


@pytest.mark.parametrize("metric", [Metric.L2, Metric.DOT])
@pytest.mark.parametrize("count", [1, 2])
def test_an_exact_scan_in_place_finds_what_a_copied_scan_finds(
    many: np.ndarray, metric: Metric, count: int
) -> None:
    index = built("hnsw", many, metric)
    allowed = LabelSet(np.sort(np.random.default_rng(7).choice(len(many), 2000, replace=False)))
    queries = many[10 : 10 + count] + 0.05
    chosen = plan(index, 10, PARAMS, len(allowed), (count, DIM))
    assert (chosen.how, chosen.in_place) == ("exact", True)
    counts = PlanCounts()
    found = search(index, queries, 10, PARAMS, allowed, unread, metric, counts=counts)
    copied = exact(queries, 10, stored_from(many)(allowed.labels), metric)
    assert found[1].tolist() == copied[1].tolist()
    np.testing.assert_allclose(found[0], copied[0], rtol=1e-5, atol=1e-5)
    assert counts.snapshot() == {"exact scan (in place)": 1}


def test_plan_counts_name_the_plan_and_its_widened_knob(hnsw_many: FaissIndex) -> None:
    counts = PlanCounts()
    allowed = LabelSet(np.arange(0, 5 * N, 2))  # half: the graph, widened twice
    queries = np.random.default_rng(8).standard_normal((2, DIM)).astype(np.float32)
    params = SearchParams(ef_search=16)
    chosen = plan(hnsw_many, 10, params, len(allowed), (2, DIM))
    assert chosen.how == "index"
    search(hnsw_many, queries, 10, params, allowed, unread, Metric.L2, counts=counts)
    assert counts.snapshot() == {f"index, ef_search {chosen.params.ef_search}": 1}

"""The embedded API: collections, points, search, recommend, and what bad input does."""

from __future__ import annotations

import sqlite3
import threading
from contextlib import closing
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from indexer import Engine, errors
from indexer.collection import Collection
from tests.support.vectors import NormalVectors

vectors = NormalVectors(seed=7, dim=8)


@pytest.fixture
def col(engine: Engine) -> Collection:
    c = engine.create_collection("items", dim=8, metric="cosine")
    c.upsert(list(range(20)), vectors(20), [{"n": i, "even": i % 2 == 0} for i in range(20)])
    return c


def snapshot(c: Collection) -> list[tuple[Any, Any, list[float]]]:
    points, _ = c.scroll(limit=1000, with_vectors=True)
    return sorted(
        ((repr(p.id), p.payload, p.vector.tolist()) for p in points if p.vector is not None),
        key=lambda t: t[0],
    )


def test_collections_are_created_listed_fetched_and_dropped(engine: Engine) -> None:
    engine.create_collection("b", dim=4)
    engine.create_collection("a", dim=4, metric="l2", index="hnsw")
    assert engine.list_collections() == ["a", "b"]
    assert engine.get_collection("a").config.index.kind == "hnsw"
    engine.drop_collection("a")
    assert engine.list_collections() == ["b"]
    with pytest.raises(errors.CollectionNotFound):
        engine.get_collection("a")
    with pytest.raises(errors.CollectionNotFound):
        engine.drop_collection("a")


def test_create_is_idempotent_only_for_an_identical_configuration(engine: Engine) -> None:
    first = engine.create_collection("c", dim=4)
    assert engine.create_collection("c", dim=4, exist_ok=True) is first
    with pytest.raises(errors.CollectionExists, match="another configuration"):
        engine.create_collection("c", dim=5, exist_ok=True)
    with pytest.raises(errors.CollectionExists):
        engine.create_collection("c", dim=4)


@pytest.mark.parametrize("name", ["../x", "a/b", "", "x" * 65, ".hidden", "a b", "é"])
def test_collection_names_must_be_plain(engine: Engine, name: str) -> None:
    with pytest.raises(errors.InvalidName):
        engine.create_collection(name, dim=4)
    assert engine.list_collections() == []


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"dim": 0}, errors.InvalidInput),
        ({"dim": 4, "metric": "hamming"}, errors.InvalidInput),
        ({"dim": 4, "index": "lsh"}, errors.InvalidIndexSpec),
        ({"dim": 4, "index": {"kind": "hnsw", "hnsw_m": 1}}, errors.InvalidIndexSpec),
        ({"dim": 4, "index": {"kind": "hnsw", "bogus": 1}}, errors.InvalidIndexSpec),
        ({"dim": 10, "index": {"kind": "ivf_pq", "pq_m": 3}}, errors.InvalidIndexSpec),
        ({"dim": 4, "index": {"kind": "ivf_pq", "pq_m": 8}}, errors.InvalidIndexSpec),
    ],
)
def test_bad_collection_configurations_are_refused(
    engine: Engine, kwargs: dict[str, Any], error: type[Exception]
) -> None:
    with pytest.raises(error):
        engine.create_collection("c", **kwargs)
    assert engine.list_collections() == []


def test_ids_are_strings_or_integers_and_7_is_not_seven(col: Collection) -> None:
    col.upsert(["7"], vectors(1), [{"kind": "string"}])
    assert col.get([7])[0].payload["n"] == 7
    assert col.get(["7"])[0].payload == {"kind": "string"}
    assert col.count() == 21


def test_upsert_replaces_vector_and_payload(col: Collection) -> None:
    new = vectors(1)
    col.upsert([3], new, [{"replaced": True}])
    point = col.get([3])[0]
    assert point.payload == {"replaced": True}
    np.testing.assert_array_equal(point.vector, new[0])
    assert col.count() == 20
    assert col.search(new, k=1)[0][0].id == 3


def test_get_keeps_request_order_and_skips_missing_ids(col: Collection) -> None:
    assert [p.id for p in col.get([5, "nope", 2])] == [5, 2]


def test_delete_by_ids_and_by_filter(col: Collection) -> None:
    assert col.delete([1, 2, 999]) == 2
    assert col.delete(filter={"even": True}) == 9
    assert col.count() == 9
    assert all(p.payload["even"] is False for p in col.scroll(limit=100)[0])
    assert col.delete([1]) == 0


def test_scroll_pages_through_every_point_once(col: Collection) -> None:
    seen, cursor = [], None
    while True:
        page, cursor = col.scroll(limit=6, cursor=cursor)
        seen.extend(p.id for p in page)
        if cursor is None:
            break
    assert sorted(seen) == list(range(20))


def test_search_returns_one_list_per_query_best_first(col: Collection) -> None:
    data = col.get(list(range(20)))
    queries = np.stack([data[4].vector, data[9].vector])  # type: ignore[list-item]
    hits = col.search(queries, k=5)
    assert [row[0].id for row in hits] == [4, 9]
    for row in hits:
        scores = [h.score for h in row]
        assert scores == sorted(scores, reverse=True)
        assert row[0].score == pytest.approx(1.0, abs=1e-5)
    assert hits[0][0].payload == {"n": 4, "even": True}


def test_search_with_vectors_returns_the_stored_vectors(col: Collection) -> None:
    stored = col.get([4])[0].vector
    hit = col.search(stored, k=1, with_payload=False, with_vectors=True)[0][0]
    assert hit.payload is None
    np.testing.assert_array_equal(hit.vector, stored)


def test_l2_scores_are_euclidean_distances(engine: Engine) -> None:
    c = engine.create_collection("l2", dim=2, metric="l2")
    c.upsert(["o", "far"], np.array([[0, 0], [3, 4]], dtype=np.float32))
    hits = c.search(np.array([0, 0], dtype=np.float32), k=2)[0]
    assert [(h.id, h.score) for h in hits] == [("o", 0.0), ("far", pytest.approx(5.0))]


def test_k_larger_than_the_collection_returns_every_point(col: Collection) -> None:
    assert len(col.search(vectors(1), k=100)[0]) == 20


def test_recommend_average_moves_towards_positives_and_away_from_negatives(engine: Engine) -> None:
    c = engine.create_collection("rec", dim=2, metric="l2")
    c.upsert(
        ["p", "n", "near_p", "near_n", "beyond_p"],
        np.array([[1, 0], [-1, 0], [1.1, 0], [-1.1, 0], [2.5, 0]], dtype=np.float32),
    )
    hits = c.recommend(positive=["p"], negative=["n"], k=3)
    # The query is p + (p - n) = (3, 0): examples themselves are never returned.
    assert [h.id for h in hits] == ["beyond_p", "near_p", "near_n"]


def test_recommend_average_scores_are_cosines_of_the_normalised_query(
    engine: Engine,
) -> None:
    c = engine.create_collection("cos", dim=8, metric="cosine")
    data = vectors(50)
    c.upsert(list(range(50)), data)
    hits = c.recommend(positive=[0, 1, 2], negative=[3], k=5)
    unit = data / np.linalg.norm(data, axis=1, keepdims=True)
    query = 2 * unit[:3].mean(0) - unit[3]
    expected = unit[4:] @ (query / np.linalg.norm(query))
    order = np.argsort(-expected)[:5]
    assert [h.id for h in hits] == [int(i) + 4 for i in order]
    assert [h.score for h in hits] == pytest.approx(expected[order].tolist(), abs=1e-5)
    assert all(-1 <= h.score <= 1 for h in hits)
    with pytest.raises(errors.InvalidInput, match="cancel out"):
        c.recommend(positive=[data[0], -data[0]], k=1)  # their mean is 0


def test_recommend_best_score_prefers_points_nearer_a_positive_than_any_negative(
    engine: Engine,
) -> None:
    c = engine.create_collection("best", dim=2, metric="l2")
    c.upsert(
        ["p1", "p2", "n", "by_p1", "by_p2", "by_n"],
        np.array([[0, 5], [5, 0], [0, -5], [0, 4], [4, 0], [0, -4]], dtype=np.float32),
    )
    hits = c.recommend(["p1", "p2"], ["n"], k=3, strategy="best_score")
    assert {h.id for h in hits[:2]} == {"by_p1", "by_p2"}
    assert hits[2].id == "by_n"
    assert hits[0].score > hits[2].score


def test_recommend_accepts_vectors_and_filters(col: Collection) -> None:
    hits = col.recommend([vectors(1)[0], 0], k=5, filter={"even": False})
    assert len(hits) == 5
    assert all(h.payload is not None and h.payload["even"] is False for h in hits)
    with pytest.raises(errors.PointNotFound):
        col.recommend(["missing"])
    with pytest.raises(errors.InvalidInput):
        col.recommend([])


def test_recommend_and_search_take_numpy_values_and_check_example_ids(col: Collection) -> None:
    v0 = col.get([0], with_vectors=True)[0].vector
    assert v0 is not None
    by_array = col.recommend(np.stack([v0, -v0 + 0.5]), k=3)  # a 2-d array of examples
    assert [h.id for h in by_array] == [h.id for h in col.recommend([v0, -v0 + 0.5], k=3)]
    assert [h.id for h in col.recommend([np.int64(0)], k=3)] == [
        h.id for h in col.recommend([0], k=3)
    ]
    assert len(col.search(vectors(1), k=np.int64(4))[0]) == 4
    with pytest.raises(errors.InvalidId):
        col.recommend([2**70])
    with pytest.raises(errors.InvalidId):
        col.recommend([""])


def test_numpy_integer_ids_are_integer_ids(engine: Engine) -> None:
    c = engine.create_collection("np", dim=8)
    assert c.upsert(np.arange(5, dtype=np.int64), vectors(5)) == 5
    assert c.upsert(np.array([7], dtype=np.uint32), vectors(1)) == 1
    assert [p.id for p in c.get(np.array([3, 7]))] == [3, 7]
    assert all(type(p.id) is int for p in c.get([0, 1]))
    assert c.get(["3"]) == []  # still not the string "3"
    assert c.delete(np.array([0, 1])) == 2
    with pytest.raises(errors.InvalidId):
        c.upsert(np.array([2**63], dtype=np.uint64), vectors(1))


def test_payloads_with_nulls_are_kept(col: Collection) -> None:
    col.upsert(["n"], vectors(1), [{"a": None, "b": [None, 1.5]}])
    assert col.get(["n"])[0].payload == {"a": None, "b": [None, 1.5]}


BAD_UPSERTS: list[tuple[str, dict[str, Any], type[Exception]]] = [
    ("wrong dimension", {"ids": [1], "vectors": np.zeros((1, 9))}, errors.DimensionMismatch),
    ("NaN", {"ids": [1], "vectors": np.full((1, 8), np.nan)}, errors.InvalidVector),
    ("infinity", {"ids": [1], "vectors": np.full((1, 8), np.inf)}, errors.InvalidVector),
    ("zero vector for cosine", {"ids": [1], "vectors": np.zeros((1, 8))}, errors.InvalidVector),
    ("not numbers", {"ids": [1], "vectors": [["a"] * 8]}, errors.InvalidVector),
    ("3-d array", {"ids": [1], "vectors": np.ones((1, 1, 8))}, errors.InvalidVector),
    ("empty batch", {"ids": [], "vectors": np.zeros((0, 8))}, errors.EmptyBatch),
    ("duplicate ids", {"ids": [1, 1], "vectors": np.ones((2, 8))}, errors.DuplicateIds),
    ("float id", {"ids": [1.5], "vectors": np.ones((1, 8))}, errors.InvalidId),
    ("bool id", {"ids": [True], "vectors": np.ones((1, 8))}, errors.InvalidId),
    ("empty string id", {"ids": [""], "vectors": np.ones((1, 8))}, errors.InvalidId),
    ("huge int id", {"ids": [2**70], "vectors": np.ones((1, 8))}, errors.InvalidId),
    ("fewer vectors than ids", {"ids": [1, 2], "vectors": np.ones((1, 8))}, errors.InvalidInput),
    (
        "payload not an object",
        {"ids": [1], "vectors": np.ones((1, 8)), "payloads": [[1]]},
        errors.InvalidPayload,
    ),
    (
        "payload not JSON",
        {"ids": [1], "vectors": np.ones((1, 8)), "payloads": [{"x": object()}]},
        errors.InvalidPayload,
    ),
    (
        "NaN in a payload",
        {"ids": [1], "vectors": np.ones((1, 8)), "payloads": [{"a": {"b": [1.0, float("nan")]}}]},
        errors.InvalidPayload,
    ),
    (
        "infinity in a payload",
        {"ids": [1], "vectors": np.ones((1, 8)), "payloads": [{"x": None, "y": np.float32("inf")}]},
        errors.InvalidPayload,
    ),
    (
        "second row bad",
        {"ids": [100, 101], "vectors": np.array([[1.0] * 8, [np.nan] * 8])},
        errors.InvalidVector,
    ),
]


@pytest.mark.parametrize(("case", "kwargs", "error"), BAD_UPSERTS, ids=[c[0] for c in BAD_UPSERTS])
def test_a_bad_upsert_raises_a_typed_error_and_changes_nothing(
    col: Collection, case: str, kwargs: dict[str, Any], error: type[Exception]
) -> None:
    before = snapshot(col)
    with pytest.raises(error) as info:
        col.upsert(**kwargs)
    assert str(info.value)  # a message a person can act on
    assert snapshot(col) == before


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"k": 0}, errors.InvalidK),
        ({"k": -1}, errors.InvalidK),
        ({"k": 10**9}, errors.InvalidK),
        ({"k": 2.5}, errors.InvalidK),
        ({"filter": {"n": {"$regex": "x"}}}, errors.InvalidFilter),
        ({"params": {"nprobe": 0}}, errors.InvalidInput),
        ({"params": {"ef": 10}}, errors.InvalidInput),
    ],
)
def test_bad_searches_raise_typed_errors(
    col: Collection, kwargs: dict[str, Any], error: type[Exception]
) -> None:
    with pytest.raises(error):
        col.search(vectors(1), **kwargs)


def test_search_with_the_wrong_dimension_is_refused(col: Collection) -> None:
    with pytest.raises(errors.DimensionMismatch):
        col.search(np.ones(3))


def test_a_failed_delete_changes_nothing(col: Collection) -> None:
    before = snapshot(col)
    with pytest.raises(errors.InvalidFilter):
        col.delete(filter={"$nor": [{"n": 1}]})
    with pytest.raises(errors.InvalidInput):
        col.delete()
    with pytest.raises(errors.InvalidInput):
        col.delete([1], filter={"n": 1})
    assert snapshot(col) == before


def test_writes_and_deletes_work_on_every_index_family(engine: Engine) -> None:
    data = vectors(12_000)
    for kind in ["flat", "hnsw", "ivf_flat", "ivf_pq"]:
        c = engine.create_collection(kind.replace("_", "-"), dim=8, metric="l2", index=kind)
        c.upsert(list(range(12_000)), data)
        c.optimize()
        assert c.index_info["family"] == kind
        c.delete(list(range(0, 12_000, 2)))
        moved = vectors(1)
        c.upsert([1], moved)
        assert c.count() == 6_000
        assert c.index_info["size"] == 6_000
        found = c.search(data[[2, 4]], k=10, with_payload=False)
        assert not {h.id for row in found for h in row} & {2, 4}  # deleted ids never return
        assert c.search(moved, k=1, params={"exact": True})[0][0].id == 1


def test_tombstoned_hnsw_is_compacted_by_a_rebuild(engine: Engine) -> None:
    c = engine.create_collection("h", dim=8, index="hnsw")
    c.upsert(list(range(2_000)), vectors(2_000))
    c.optimize()
    c.delete(list(range(1_000)))
    assert c.index_info["size"] == 1_000
    c.optimize()  # half the graph is tombstones: rebuilt without them
    assert c.index_info["size"] == 1_000
    assert c._index.dead_fraction == 0.0


def test_an_ivf_collection_serves_exactly_until_it_can_train(engine: Engine) -> None:
    c = engine.create_collection("ivf", dim=8, index="ivf_flat")
    c.upsert(list(range(500)), vectors(500))
    c.optimize()
    assert c.index_info["family"] == "flat"
    c.upsert(list(range(500, 12_000)), vectors(11_500))
    c.optimize()
    assert c.index_info["family"] == "ivf_flat"
    assert c.index_info["default_params"]["nprobe"] >= 1


def test_background_maintenance_moves_auto_to_hnsw(tmp_path: Path) -> None:
    with Engine(tmp_path) as engine:  # background maintenance on
        c = engine.create_collection("auto", dim=8, index={"kind": "auto", "auto_threshold": 1_500})
        c.upsert(list(range(2_000)), vectors(2_000))
        thread = c._maintenance.thread
        assert thread is not None
        thread.join(timeout=60)
        assert c.index_info["family"] == "hnsw"
        assert c.count() == 2_000


def test_a_collection_dropped_under_a_caller_says_so(engine: Engine) -> None:
    """A caller holding a collection object that is dropped meanwhile gets
    CollectionNotFound from every call, not an error from a closed store."""
    c = engine.create_collection("gone", dim=8)
    c.upsert([1, 2], vectors(2))
    engine.drop_collection("gone")
    calls = [
        lambda: c.search(vectors(1), k=1),
        lambda: c.search_arrays(vectors(1), k=1),
        lambda: c.recommend([1], k=1),
        lambda: c.get([1]),
        lambda: c.scroll(),
        lambda: c.count(),
        lambda: c.upsert([3], vectors(1)),
        lambda: c.delete(ids=[1]),
    ]
    for call in calls:
        with pytest.raises(errors.CollectionNotFound, match="dropped"):
            call()


def test_a_collection_keeps_its_identity_and_one_made_again_gets_another(
    tmp_path: Path,
) -> None:
    with Engine(tmp_path, background=False) as engine:
        uid = engine.create_collection("c", dim=8).uid
    with Engine(tmp_path, background=False) as engine:
        assert engine.get_collection("c").uid == uid  # kept in the store
        engine.drop_collection("c")
        assert engine.create_collection("c", dim=8).uid != uid


def test_a_collection_made_before_identities_gets_one_that_lasts(tmp_path: Path) -> None:
    with Engine(tmp_path, background=False) as engine:
        engine.create_collection("old", dim=8)
    store = tmp_path / "collections" / "old" / "store.sqlite3"
    with closing(sqlite3.connect(store)) as conn, conn:
        conn.execute("DELETE FROM meta WHERE key = 'uid'")
    with Engine(tmp_path, background=False) as engine:
        uid = engine.get_collection("old").uid
    with Engine(tmp_path, background=False) as engine:
        assert engine.get_collection("old").uid == uid


def test_a_dropped_collections_store_never_opens_its_path_again(
    engine: Engine, tmp_path: Path
) -> None:
    """A thread that never read the dropped store must not connect to its path, where a
    new collection of the same name lives now."""
    stale = engine.create_collection("c", dim=8)
    stale.upsert([1], vectors(1))
    engine.drop_collection("c")
    engine.create_collection("c", dim=8).upsert(["new"], vectors(1))
    raised: list[BaseException] = []

    def read_stale() -> None:
        try:
            stale.store.get_meta("seq")
        except BaseException as exc:
            raised.append(exc)

    thread = threading.Thread(target=read_stale)
    thread.start()
    thread.join()
    assert [type(exc) for exc in raised] == [errors.CollectionNotFound]
    with pytest.raises(errors.CollectionNotFound):
        stale.store.backup_to(tmp_path / "copy.sqlite3")


def test_dropping_a_collection_waits_for_a_search_in_flight(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    c = engine.create_collection("busy", dim=8)
    c.upsert(list(range(10)), vectors(10))
    inside, go_on = threading.Event(), threading.Event()
    search = c._index.search

    def held_search(*args: Any, **kwargs: Any) -> Any:
        inside.set()
        go_on.wait(10)
        return search(*args, **kwargs)

    monkeypatch.setattr(c._index, "search", held_search)
    answers: list[Any] = []
    searcher = threading.Thread(target=lambda: answers.append(c.search(vectors(1), k=3)))
    searcher.start()
    assert inside.wait(10)
    dropper = threading.Thread(target=engine.drop_collection, args=("busy",))
    dropper.start()
    dropper.join(0.3)
    assert dropper.is_alive()  # the drop waits for the search...
    go_on.set()
    searcher.join(10)
    dropper.join(10)
    assert not dropper.is_alive()
    assert len(answers[0][0]) == 3  # ...which finishes with its answer
    assert engine.list_collections() == []


def test_concurrent_filtered_reads_share_the_filter_cache_safely(engine: Engine) -> None:
    """Readers hold the lock only in shared mode, yet each moves its filter to the end of
    the LRU cache or evicts the oldest: more filters than the cache holds, from several
    threads switching often, must all be answered."""
    import sys

    col = engine.create_collection("race", dim=4, metric="l2")
    col.upsert(
        list(range(200)),
        np.random.default_rng(0).random((200, 4)),
        [{"v": i % 50} for i in range(200)],
    )
    errors: list[BaseException] = []

    def read(seed: int) -> None:
        rng = np.random.default_rng(seed)
        try:
            for _ in range(3_000):
                v = int(rng.integers(0, 40))  # 40 filters for a cache of 32
                assert col.count({"v": v}) == 4
        except BaseException as exc:  # reported below
            errors.append(exc)

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        threads = [threading.Thread(target=read, args=(seed,)) for seed in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        sys.setswitchinterval(interval)
    assert not errors, errors[:3]


def test_auto_keeps_its_index_until_the_collection_halves(tmp_path: Path) -> None:
    """A collection hovering at auto's threshold must not rebuild at every crossing."""
    builds: list[Any] = []
    with Engine(tmp_path, background=False, on_index_build=builds.append) as engine:
        c = engine.create_collection("hover", dim=8, metric="l2", index={"auto_threshold": 400})
        c.upsert(list(range(400)), vectors(400))
        c.optimize()
        assert c.index_info["family"] == "hnsw"
        built = len(builds)
        for _ in range(3):
            c.delete(ids=[0])
            c.optimize()
            c.upsert([0], vectors(1))
            c.optimize()
        assert len(builds) == built  # no rebuild at any crossing
        c.delete(ids=list(range(150)))
        c.optimize()
        assert c.index_info["family"] == "hnsw"  # 250 points: more than half of 400
        c.delete(ids=list(range(150, 201)))
        c.optimize()
        assert c.index_info["family"] == "flat"  # 199 points
        c.upsert(list(range(201)), vectors(201))
        c.optimize()
        assert c.index_info["family"] == "hnsw"
    with Engine(tmp_path, background=False) as engine:  # the saved index serves on
        c = engine.get_collection("hover")
        c.delete(ids=list(range(100)))
        c.optimize()
        assert c.index_info["family"] == "hnsw"

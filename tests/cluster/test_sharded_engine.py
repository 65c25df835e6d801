"""The router's sharded engine answers as one engine holding the same points.

Shards here are real engines in folders of their own, reached in-process (the Ray
adapter only carries the same calls between processes; tests/cluster/test_ray_serve.py
covers it).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from indexer import Engine, Hit
from indexer.errors import (
    CollectionNotFound,
    DimensionMismatch,
    InvalidFilter,
    PointNotFound,
    ShardUnavailable,
)
from indexer.merge import merge_hits
from service.cluster.fanout import shard_of
from service.cluster.shard import ShardServer
from service.cluster.sharded import ShardedEngine
from tests.cluster.conftest import LocalLink

SHARDS = 3
N = 3000
DIM = 16


@pytest.fixture(scope="module")
def points() -> tuple[list[Any], np.ndarray, list[dict[str, Any]]]:
    rng = np.random.default_rng(7)
    vectors = rng.standard_normal((N, DIM)).astype(np.float32)
    ids: list[Any] = [i if i % 3 else f"p{i}" for i in range(N)]
    payloads = [{"cat": i % 7, "price": float(i % 100), "tags": [f"t{i % 5}"]} for i in range(N)]
    return ids, vectors, payloads


@pytest.fixture(scope="module")
def engines(
    tmp_path_factory: pytest.TempPathFactory, points: tuple[list[Any], np.ndarray, list[Any]]
) -> Iterator[tuple[Engine, ShardedEngine, list[LocalLink]]]:
    root = tmp_path_factory.mktemp("cluster")
    single = Engine(root / "single", device="cpu", background=False)
    links = [
        LocalLink(f"shard-{i}", ShardServer(str(root / f"shard-{i}"), [], "cpu"))
        for i in range(SHARDS)
    ]
    sharded = ShardedEngine(links, retry_s=0.5)
    ids, vectors, payloads = points
    for index in ("flat", "hnsw", "ivf_flat"):
        for metric in ("l2", "cosine"):
            name = f"{index}-{metric}"
            for engine in (single, sharded):
                collection = engine.create_collection(name, DIM, metric, index)
                collection.upsert(ids, vectors, payloads)
                collection.optimize()
    yield single, sharded, links
    sharded.close()
    single.close()
    for link in links:
        link.server.close()


def _ids(hits: list[Hit]) -> list[Any]:
    return [hit.id for hit in hits]


def _scores(hits: list[Hit]) -> np.ndarray:
    return np.array([hit.score for hit in hits])


def test_points_spread_over_every_shard(engines: Any) -> None:
    _, sharded, _ = engines
    shards = sharded.get_collection("flat-l2").index_info["shards"]
    counts = [shard["points"] for shard in shards]
    assert sum(counts) == N
    assert min(counts) > N / SHARDS / 2


def test_shard_of_is_stable_and_spreads() -> None:
    owners = [shard_of(f"k{i}", 4) for i in range(4000)]
    assert owners == [shard_of(f"k{i}", 4) for i in range(4000)]
    assert min(np.bincount(owners)) > 800


@pytest.mark.parametrize("metric", ["l2", "cosine"])
def test_flat_search_gives_the_same_ids_and_scores(engines: Any, metric: str) -> None:
    single, sharded, _ = engines
    queries = np.random.default_rng(1).standard_normal((20, DIM)).astype(np.float32)
    for k in (1, 10, 250):
        want = single.get_collection(f"flat-{metric}").search(queries, k)
        got = sharded.get_collection(f"flat-{metric}").search(queries, k)
        for w, g in zip(want, got, strict=True):
            assert _ids(g) == _ids(w)
            np.testing.assert_allclose(_scores(g), _scores(w), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("flt", [{"cat": 3}, {"price": {"$lt": 2}}, {"tags": "t1", "cat": 1}])
def test_filtered_flat_search_gives_the_same_hits(engines: Any, flt: dict[str, Any]) -> None:
    single, sharded, _ = engines
    queries = np.random.default_rng(2).standard_normal((5, DIM)).astype(np.float32)
    want = single.get_collection("flat-l2").search(queries, 50, filter=flt)
    got = sharded.get_collection("flat-l2").search(queries, 50, filter=flt)
    assert [_ids(h) for h in got] == [_ids(h) for h in want]
    assert sharded.get_collection("flat-l2").count(flt) == single.get_collection("flat-l2").count(
        flt
    )


@pytest.mark.parametrize("index", ["hnsw", "ivf_flat"])
def test_approximate_recall_is_within_a_hundredth_of_one_engine(engines: Any, index: str) -> None:
    single, sharded, _ = engines
    queries = np.random.default_rng(3).standard_normal((100, DIM)).astype(np.float32)
    exact = [set(_ids(h)) for h in single.get_collection("flat-l2").search(queries, 10)]

    def recall(engine: Any) -> float:
        found = engine.get_collection(f"{index}-l2").search(queries, 10)
        return float(
            np.mean([len(set(_ids(h)) & e) / 10 for h, e in zip(found, exact, strict=True)])
        )

    assert recall(sharded) >= recall(single) - 0.01


@pytest.mark.parametrize("strategy", ["average", "best_score"])
def test_recommend_gives_the_same_hits(engines: Any, strategy: str) -> None:
    single, sharded, _ = engines
    positive, negative = [1, "p3", 10], [4]
    want = single.get_collection("flat-cosine").recommend(positive, negative, 20, strategy=strategy)
    got = sharded.get_collection("flat-cosine").recommend(positive, negative, 20, strategy=strategy)
    assert _ids(got) == _ids(want)
    np.testing.assert_allclose(_scores(got), _scores(want), rtol=1e-5, atol=1e-5)
    assert not {1, "p3", 10, 4} & set(_ids(got))


def test_recommend_from_a_missing_point_is_point_not_found(engines: Any) -> None:
    _, sharded, _ = engines
    with pytest.raises(PointNotFound):
        sharded.get_collection("flat-l2").recommend(["nope"])


def test_scroll_pages_through_every_point_in_id_order(engines: Any) -> None:
    single, sharded, _ = engines
    for flt in (None, {"cat": 2}):
        pages: list[list[Any]] = []
        cursor = None
        while True:
            page, cursor = sharded.get_collection("flat-l2").scroll(
                400, cursor, filter=flt, with_vectors=True
            )
            pages.append([p.id for p in page])
            if cursor is None:
                break
        want: list[Any] = []
        cursor = None
        while True:
            page, cursor = single.get_collection("flat-l2").scroll(400, cursor, filter=flt)
            want.extend(p.id for p in page)
            if cursor is None:
                break
        assert [i for page in pages for i in page] == want


def test_get_keeps_the_order_asked_and_leaves_out_missing_ids(engines: Any) -> None:
    _, sharded, _ = engines
    points = sharded.get_collection("flat-l2").get([5, "missing", "p6", 5], with_vectors=True)
    assert [p.id for p in points] == [5, "p6", 5]
    assert points[0].vector is not None
    assert points[0].vector.shape == (DIM,)


def test_writes_and_deletes_by_filter_span_the_shards(engines: Any) -> None:
    _, sharded, _ = engines
    collection = sharded.create_collection("scratch", DIM, "l2", "flat")
    vectors = np.random.default_rng(4).standard_normal((200, DIM)).astype(np.float32)
    assert collection.upsert(list(range(200)), vectors, [{"odd": i % 2} for i in range(200)]) == 200
    assert collection.delete(filter={"odd": 1}) == 100
    assert collection.count() == 100
    assert collection.delete([0, 2, 999]) == 2
    assert collection.count() == 98
    sharded.drop_collection("scratch")
    with pytest.raises(CollectionNotFound):
        sharded.get_collection("scratch").count()


def test_errors_keep_their_names(engines: Any) -> None:
    _, sharded, _ = engines
    collection = sharded.get_collection("flat-l2")
    with pytest.raises(DimensionMismatch):
        collection.search(np.zeros(DIM + 1, dtype=np.float32))
    with pytest.raises(InvalidFilter):
        collection.search(np.zeros(DIM, dtype=np.float32), filter={"$bogus": 1})
    with pytest.raises(CollectionNotFound):
        sharded.get_collection("nothing")


def test_a_shard_down_fails_reads_clearly_never_partially(engines: Any) -> None:
    _, sharded, links = engines
    collection = sharded.get_collection("flat-l2")
    links[1].down = True
    try:
        with pytest.raises(ShardUnavailable, match="shard-1"):
            collection.search(np.zeros(DIM, dtype=np.float32), 10)
        with pytest.raises(ShardUnavailable, match="shard-1"):
            collection.count()
    finally:
        links[1].down = False
    assert collection.count() == N


def test_merge_hits_takes_the_best_of_each_list_in_order() -> None:
    a = [Hit("a1", 0.9), Hit("a2", 0.5)]
    b = [Hit("b1", 0.8), Hit("b2", 0.7), Hit("b3", 0.1)]
    assert _ids(merge_hits([a, b], 3, higher_is_better=True)) == ["a1", "b1", "b2"]
    assert _ids(merge_hits([a, b], 10, higher_is_better=True)) == ["a1", "b1", "b2", "a2", "b3"]
    near = [Hit("n1", 0.1), Hit("n2", 0.5)]
    far = [Hit("f1", 0.2), Hit("f2", 0.9)]
    assert _ids(merge_hits([near, [], far], 3, higher_is_better=False)) == ["n1", "f1", "n2"]
    assert merge_hits([[], []], 5, higher_is_better=True) == []


def test_read_replica_follows_its_shard(tmp_path: Path) -> None:
    from service.cluster.replica import ReplicaServer

    shard = ShardServer(str(tmp_path / "shard"), [], "cpu")
    replica = ReplicaServer(
        str(tmp_path / "replicas"),
        [],
        "cpu",
        lambda m, *a: getattr(shard, m)(*a),
        replica_id="r1",
        interval_s=3600,
    )
    try:
        shard.engine.create_collection("c", 4, "l2", "flat")
        primary = shard.engine.get_collection("c")
        primary.upsert([1, 2, 3], np.eye(3, 4, dtype=np.float32), [{"n": 1}, {"n": 2}, {"n": 3}])
        replica.sync_once()
        assert replica.engine.get_collection("c").count() == 3
        primary.upsert([2], np.ones((1, 4), dtype=np.float32), [{"n": 20}])
        primary.delete([3])
        replica.sync_once()
        copy = replica.engine.get_collection("c")
        assert sorted(p.id for p in copy.scroll(10)[0]) == [1, 2]
        assert copy.get([2])[0].payload == {"n": 20}
        lag = shard.collection_call("c", "describe", (), {})[1]["replicas"]
        assert lag[0]["replica"] == "r1"
        assert lag[0]["lag_writes"] <= 3
        shard.engine.drop_collection("c")
        replica.sync_once()
        assert replica.engine.list_collections() == []
    finally:
        replica.close()
        shard.close()


def test_full_text_is_declared_on_every_shard(engines: Any) -> None:
    _, sharded, _ = engines
    collection = sharded.create_collection("texts", DIM, "l2", "flat", full_text=["title"])
    vectors = np.random.default_rng(9).standard_normal((30, DIM)).astype(np.float32)
    collection.upsert(list(range(30)), vectors, [{"title": f"item {i}"} for i in range(30)])
    declared = collection.full_text
    assert declared is not None
    assert (declared["state"], declared["indexed"], declared["total"]) == ("ready", 30, 30)
    collection.set_full_text(None)
    assert collection.full_text is None
    sharded.drop_collection("texts")


def test_payload_indexes_are_declared_on_every_shard(engines: Any) -> None:
    _, sharded, _ = engines
    collection = sharded.create_collection(
        "indexed", DIM, "l2", "flat", payload_indexes={"cat": "keyword"}
    )
    vectors = np.random.default_rng(10).standard_normal((30, DIM)).astype(np.float32)
    collection.upsert(list(range(30)), vectors, [{"cat": f"c{i % 3}", "n": i} for i in range(30)])
    collection.create_payload_index("n", "number")
    deadline = time.monotonic() + 10  # shards may build it in the background
    while (fields := collection.payload_indexes)["n"]["state"] != "ready":
        assert time.monotonic() < deadline, fields
        time.sleep(0.01)
    assert fields["cat"] == {"type": "keyword", "state": "ready", "indexed": 30, "total": 30}
    assert fields["n"]["indexed"] == 30
    assert collection.count({"cat": "c1", "n": {"$lt": 20}}) == 7
    collection.drop_payload_index("cat")
    assert set(collection.payload_indexes) == {"n"}
    sharded.drop_collection("indexed")

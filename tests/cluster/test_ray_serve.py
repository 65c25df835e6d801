"""A cluster on a local Ray (127.0.0.1): two shards with a read replica each, behind the
router, driven by the real SDK over HTTP."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import numpy as np
import pytest
import ray
from ray import serve

from indexer import Engine
from indexer.points import encode_id
from service.cluster import serving
from service.cluster.fanout import shard_of
from service.settings import Settings
from tests.cluster.conftest import start_ray
from tests.support.server import free_port
from vecserve_client import (
    Client,
    CollectionNotFound,
    DimensionMismatch,
    Forbidden,
    NotSupported,
    Retries,
    ShardUnavailable,
    Unauthorized,
)

KEY = "cluster-test-key-0123456789"
DIM = 12
N = 800


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    start_ray(num_cpus=2)
    port = free_port()
    data = tmp_path_factory.mktemp("cluster")
    settings = Settings(data_dir=data, host="127.0.0.1", port=port, api_keys=[KEY], device="cpu")
    # A partial read waits less than Ray takes to restart a killed shard (about 1.5 s on
    # an idle machine), so that a partial answer can be seen while one is down.
    serving.run(settings, shards=2, replicas=1, sync_interval_s=0.2, partial_wait_s=0.3)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        serving.shutdown()
        serve.shutdown()
        ray.shutdown()


@pytest.fixture(scope="module")
def client(cluster: str) -> Iterator[Client]:
    with Client(cluster, api_key=KEY, timeout=60) as c:
        yield c


@pytest.fixture(scope="module")
def loaded(client: Client, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    """The same points in the cluster and in one engine."""
    rng = np.random.default_rng(11)
    vectors = rng.standard_normal((N, DIM)).astype(np.float32)
    ids: list[Any] = [i if i % 2 else f"doc-{i}" for i in range(N)]
    payloads = [{"group": i % 5, "price": i % 50} for i in range(N)]
    client.create_collection("items", dim=DIM, metric="l2", index="flat")
    client.upsert("items", ids, vectors, payloads=payloads)
    single = Engine(tmp_path_factory.mktemp("single"), device="cpu", background=False)
    single.create_collection("items", DIM, "l2", "flat").upsert(ids, vectors, payloads)
    yield single
    single.close()


def _wait_for_replicas(client: Client, name: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        shards = client.get_collection(name).serving["shards"]
        lags = [r["lag_writes"] for s in shards for r in s["replicas"]]
        if lags and all(lag == 0 for lag in lags):
            return
        time.sleep(0.2)
    raise AssertionError(f"replicas still behind: {shards}")


def test_search_answers_exactly_as_one_engine(client: Client, loaded: Engine) -> None:
    queries = np.random.default_rng(5).standard_normal((8, DIM)).astype(np.float32)
    for flt in (None, {"group": 3}, {"price": {"$lt": 3}}):
        want = loaded.get_collection("items").search(queries, 25, filter=flt)
        for query, expected in zip(queries, want, strict=True):
            hits = client.search("items", query, k=25, filter=flt)
            assert [h.id for h in hits] == [h.id for h in expected]
            np.testing.assert_allclose(
                [h.score for h in hits], [h.score for h in expected], rtol=1e-5, atol=1e-5
            )


def test_reads_from_replicas_agree_once_they_caught_up(client: Client, loaded: Engine) -> None:
    _wait_for_replicas(client, "items")
    time.sleep(2.0)  # past the router's read-your-writes window: reads go to replicas
    info = client.get_collection("items")
    assert info.count == N
    assert [len(s["replicas"]) for s in info.serving["shards"]] == [1, 1]
    query = np.ones(DIM, dtype=np.float32)
    want = loaded.get_collection("items").search(query, 10)[0]
    assert [h.id for h in client.search("items", query, k=10)] == [h.id for h in want]


def test_recommend_scroll_get_and_count_span_the_shards(client: Client, loaded: Engine) -> None:
    single = loaded.get_collection("items")
    want = single.recommend([1, "doc-2"], [3], 15)
    got = client.recommend("items", [1, "doc-2"], [3], k=15)
    assert [h.id for h in got] == [h.id for h in want]
    seen: list[Any] = [p.id for p in client.scroll("items", filter={"group": 1})]
    assert seen == [p.id for p in single.scroll(10_000, filter={"group": 1})[0]]
    assert [p.id for p in client.get("items", [7, "doc-8", "nope"])] == [7, "doc-8"]


def test_errors_and_auth_are_the_single_node_ones(cluster: str, client: Client) -> None:
    with pytest.raises(CollectionNotFound):
        client.get_collection("missing")
    with pytest.raises(DimensionMismatch):
        client.search("items", np.zeros(DIM + 1, dtype=np.float32))
    with pytest.raises(NotSupported):
        client.create_snapshot("items")
    with Client(cluster) as anonymous, pytest.raises(Unauthorized):
        anonymous.list_collections()
    with (
        Client(cluster, api_key="wrong-key-0123456789abcdef") as wrong,
        pytest.raises((Unauthorized, Forbidden)),
    ):
        wrong.list_collections()


def _dense_plan(seed: int) -> list[dict[str, Any]]:
    a, b = np.random.default_rng(seed).standard_normal((2, DIM))
    return [
        {"dense": {"vector": a.tolist()}, "limit": 40},
        {"dense": {"vector": b.tolist()}, "filter": {"group": 1}, "limit": 40},
    ]


def test_a_multi_stage_query_fuses_over_the_shards_as_one_engine(
    client: Client, loaded: Engine
) -> None:
    for method in ("rrf", "relative_score"):
        prefetch = _dense_plan(3)
        fusion = {"method": method}
        want = loaded.get_collection("items").query(
            {"prefetch": prefetch, "fusion": fusion, "limit": 12, "explain": True}
        )
        got = client.query("items", prefetch, fusion=fusion, limit=12, explain=True)
        assert [h.id for h in got.hits] == [h.id for h in want.hits]
        assert [h.explain for h in got.hits] == [h.explain for h in want.hits]
        assert got.missing_shards is None


@contextmanager
def shard_1_frozen() -> Iterator[None]:
    """shard-1 and its read replica stopped (SIGSTOP) and then resumed: alive to Ray and
    to Serve, so not replaced, but taking no call, as a hung or cut-off node takes none.
    (A killed shard is back in a second or two, too soon to ask it anything reliably.)"""
    pids = [
        serve.get_deployment_handle(name, app_name=serving.APP_NAME)
        .where.remote()
        .result(timeout_s=30)["pid"]
        for name in ("shard-1", "shard-1-read")
    ]
    for pid in pids:
        os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        for pid in pids:
            os.kill(pid, signal.SIGCONT)


def test_a_partial_query_answers_from_the_live_shard_while_one_does_not_answer(
    cluster: str, client: Client, loaded: Engine, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """While shard-1 takes no call, a query that asks for a partial answer gets shard-0's
    best at once, naming shard-1; without ``partial`` the query fails with 503
    ShardUnavailable naming shard-1 once the router has retried it, never answering
    partially; once shard-1 answers again, the whole answer is back."""
    prefetch, fusion = _dense_plan(4), {"method": "rrf"}
    points, _ = loaded.get_collection("items").scroll(10_000, with_vectors=True)
    live = [p for p in points if shard_of(encode_id(p.id), 2) == 0]
    alone = Engine(tmp_path_factory.mktemp("shard-0-alone"), device="cpu", background=False)
    items = alone.create_collection("items", DIM, "l2", "flat")
    items.upsert(
        [p.id for p in live], np.stack([p.vector for p in live]), [p.payload for p in live]
    )
    plan = {"prefetch": prefetch, "fusion": fusion, "limit": 10}
    want_partial = [h.id for h in items.query(plan).hits]
    query = np.asarray(prefetch[0]["dense"]["vector"], dtype=np.float32)
    want_search = [h.id for h in items.search(query, 10)[0]]
    want_full = [h.id for h in loaded.get_collection("items").query(plan).hits]
    alone.close()
    assert set(want_partial) != set(want_full)
    _wait_for_replicas(client, "items")
    time.sleep(2.0)  # past the read-your-writes window: reads go to the replicas

    with (
        Client(cluster, api_key=KEY, timeout=60, retries=Retries(max_retries=0)) as once,
        shard_1_frozen(),
    ):
        result = once.query("items", prefetch, fusion=fusion, limit=10, partial=True)
        assert result.missing_shards == ["shard-1"]
        assert [h.id for h in result.hits] == want_partial
        # A plain search asks for a partial answer over HTTP (the SDK's search has no
        # way to return the missing shards' names; its query has).
        search = httpx.post(
            f"{cluster}/collections/items/search",
            json={"vector": query.tolist(), "k": 10, "partial": True},
            headers={"authorization": f"Bearer {KEY}"},
            timeout=60,
        )
        assert search.status_code == 200, search.text
        assert search.json()["missing_shards"] == ["shard-1"]
        assert [h["id"] for h in search.json()["hits"]] == want_search
        started = time.monotonic()
        with pytest.raises(ShardUnavailable, match="shard-1"):
            once.query("items", prefetch, fusion=fusion, limit=10)
        # The router's retries (10 s) and a try of each copy, not a wait for the shard.
        assert time.monotonic() - started < 20

    deadline = time.monotonic() + 60
    while True:  # until shard-1 takes calls again
        try:
            whole = client.query("items", prefetch, fusion=fusion, limit=10)
            break
        except ShardUnavailable:
            assert time.monotonic() < deadline, "shard-1 did not answer again in 60 s"
    assert whole.missing_shards is None
    assert [h.id for h in whole.hits] == want_full


def test_delete_by_filter_spans_the_shards(client: Client) -> None:
    client.create_collection("scratch", dim=4, metric="l2", index="flat")
    vectors = np.random.default_rng(1).standard_normal((100, 4)).astype(np.float32)
    client.upsert(
        "scratch", list(range(100)), vectors, payloads=[{"odd": i % 2} for i in range(100)]
    )
    assert client.delete("scratch", filter={"odd": 1}) == 100 // 2
    assert client.get_collection("scratch").count == 50
    client.delete_collection("scratch")


def test_a_killed_shard_loses_no_acknowledged_write(client: Client) -> None:
    """SIGKILL shard-0's process during writes and searches: every acknowledged write is
    there once Ray has restarted it; meanwhile calls fail with ShardUnavailable (or wait
    and succeed), never with another error or a partial answer."""
    client.create_collection("durable", dim=4, metric="l2", index="flat")
    acknowledged: list[int] = []
    failures: list[BaseException] = []
    stop = threading.Event()

    def write() -> None:
        next_id = 0
        while not stop.is_set():
            ids = list(range(next_id, next_id + 20))
            try:
                client.upsert("durable", ids, np.ones((20, 4), dtype=np.float32))
                acknowledged.extend(ids)
            except ShardUnavailable:
                pass
            except BaseException as exc:
                failures.append(exc)
            next_id += 20

    def search() -> None:
        while not stop.is_set():
            known = len(acknowledged)
            try:
                hits = client.search("durable", np.ones(4, dtype=np.float32), k=5)
                assert len(hits) >= min(5, known), "a partial answer"
            except ShardUnavailable:
                pass
            except BaseException as exc:
                failures.append(exc)

    threads = [threading.Thread(target=write), threading.Thread(target=search)]
    for thread in threads:
        thread.start()
    time.sleep(1.0)
    shard = serve.get_deployment_handle("shard-0", app_name=serving.APP_NAME)
    pid = shard.where.remote().result(timeout_s=30)["pid"]
    os.kill(pid, signal.SIGKILL)
    time.sleep(4.0)
    stop.set()
    for thread in threads:
        thread.join()
    assert not failures, failures[:3]
    deadline = time.monotonic() + 60
    while True:  # until Ray has restarted the shard from its folder
        try:
            found = client.get("durable", acknowledged)
            break
        except ShardUnavailable:
            assert time.monotonic() < deadline, "shard-0 did not come back in 60 s"
            time.sleep(0.5)
    assert len(found) == len(acknowledged)
    assert shard.where.remote().result(timeout_s=30)["pid"] != pid

"""Several Ray nodes on one machine (Ray's own test cluster): shards placed on the nodes
that declare them, and a read replica taking the reads when another dies."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import ray
from ray import serve
from ray.cluster_utils import Cluster

from service.cluster import serving
from service.settings import Settings
from tests.cluster.conftest import start_ray
from tests.support.server import free_port
from vecserve_client import Client


@pytest.fixture(scope="module")
def nodes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, dict[str, str]]]:
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    shard_nodes = {
        f"shard-{i}": cluster.add_node(num_cpus=1, resources={f"vecserve-shard-{i}": 1}).node_id
        for i in range(2)
    }
    start_ray(address=cluster.address)
    port = free_port()
    settings = Settings(
        data_dir=tmp_path_factory.mktemp("nodes"), host="127.0.0.1", port=port, device="cpu"
    )
    serving.run(settings, shards=2, replicas=2, sync_interval_s=0.2)
    try:
        yield f"http://127.0.0.1:{port}", shard_nodes
    finally:
        serving.shutdown()
        serve.shutdown()
        ray.shutdown()
        cluster.shutdown()


def _where(deployment: str, calls: int = 1) -> list[dict[str, Any]]:
    handle = serve.get_deployment_handle(deployment, app_name=serving.APP_NAME)
    return [handle.where.remote().result(timeout_s=30) for _ in range(calls)]


def test_each_shard_runs_on_the_node_that_declares_it(nodes: tuple[str, dict[str, str]]) -> None:
    _, shard_nodes = nodes
    placed = {name: _where(name)[0]["node"] for name in shard_nodes}
    assert placed == shard_nodes
    assert placed["shard-0"] != placed["shard-1"]


def test_a_replica_takes_the_reads_when_another_dies(nodes: tuple[str, dict[str, str]]) -> None:
    url, _ = nodes
    with Client(url, timeout=60) as client:
        client.create_collection("photos", dim=8, metric="cosine", index="flat")
        vectors = np.random.default_rng(3).standard_normal((300, 8)).astype(np.float32)
        client.upsert("photos", list(range(300)), vectors)
        deadline = time.monotonic() + 30
        while any(
            replica["lag_writes"]
            for shard in client.get_collection("photos").serving["shards"]
            for replica in shard["replicas"]
        ):
            assert time.monotonic() < deadline, "replicas did not catch up in 30 s"
            time.sleep(0.2)
        time.sleep(2.0)  # past the router's read-your-writes window: reads go to replicas
        pids = {w["pid"] for w in _where("shard-0-read", calls=20)}
        assert len(pids) == 2, "both replicas of shard-0 answer reads"
        os.kill(pids.pop(), signal.SIGKILL)
        want = [h.id for h in client.search("photos", vectors[0], k=10)]
        for _ in range(40):  # reads keep answering, from the live replica or the shard
            assert [h.id for h in client.search("photos", vectors[0], k=10)] == want
            time.sleep(0.05)
